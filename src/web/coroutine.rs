//! Handler methods written as `async` blocks: Tornado 6's `async def get`.
//!
//! A handler's method starts its `async` block with
//! [`Exchange::run_async`] and returns; the response stays open until the
//! block ends, then finishes (unless the block finished it already). An
//! error out of the block goes the way of any handler error: the
//! [`HTTPError`](super::HTTPError)'s status or 500, through the handler's
//! `write_error`.
//!
//! ```
//! use std::time::Duration;
//! use squall::web::{Application, Exchange, RequestHandler};
//! use squall::{gen, Error};
//!
//! // Tornado:
//! //     async def get(self):
//! //         await gen.sleep(0.01)
//! //         self.write("slept")
//! struct Slow;
//! impl RequestHandler for Slow {
//!     fn get(&mut self, x: &Exchange) -> Result<(), Error> {
//!         x.run_async(|x| async move {
//!             gen::sleep(Duration::from_millis(10)).await?;
//!             x.write("slept");
//!             Ok(())
//!         })
//!     }
//! }
//! let app = Application::new().route("/slow", || Slow);
//! # let _ = app;
//! ```
//!
//! Started from [`prepare`](super::RequestHandler::prepare), the block is
//! Tornado 6's `async def prepare`: the verb method waits for it, and runs
//! when it ends `Ok` with the response still open (at once if it never
//! had to wait); an error answers instead, and a response it finished
//! (a redirect, say) skips the verb, as in Tornado. A
//! [streaming](super::RequestHandler::data_received) handler's body is
//! held back meanwhile: `data_received` sees its first byte once the
//! block has ended `Ok` (Tornado awaits `prepare` before reading the
//! body), and the verb method runs when the body is in.
//!
//! ```
//! use std::cell::RefCell;
//! use std::rc::Rc;
//! use std::time::Duration;
//! use squall::web::{Exchange, RequestHandler};
//! use squall::{gen, Error};
//!
//! // Tornado:
//! //     async def prepare(self):
//! //         self.user = await self.load_user()
//! //     def get(self):
//! //         self.write(f"hello {self.user}")
//! #[derive(Default)]
//! struct Greet {
//!     user: Rc<RefCell<String>>,
//! }
//! impl RequestHandler for Greet {
//!     fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
//!         let user = self.user.clone();
//!         x.run_async(|_x| async move {
//!             gen::sleep(Duration::from_millis(1)).await?; // a lookup
//!             *user.borrow_mut() = "ann".into();
//!             Ok(())
//!         })
//!     }
//!     fn get(&mut self, x: &Exchange) -> Result<(), Error> {
//!         x.write(format!("hello {}", self.user.borrow()));
//!         Ok(())
//!     }
//! }
//! # let _ = squall::web::Application::new().route("/", Greet::default);
//! ```
//!
//! The block is `'static`, as anything that outlives the method call: it
//! gets its own clone of the [`Exchange`], and takes clones of what it needs
//! from the handler (an `AsyncHTTPClient`, an `Rc` of shared state), as a
//! Tornado coroutine reads `self`.
//!
//! If the client goes away while the block is waiting, the block is
//! **dropped** there (what it awaited is given up: its timeouts removed,
//! its keys cancelled), then the handler's `on_connection_close` and
//! `on_finish` run: nothing is left running for a response nobody will
//! read. (Tornado lets the coroutine run on and fails its later writes; a
//! Rust future is cancelled by dropping it, and that is cheaper and leaves
//! nothing behind.) Once the response is finished, the block is no longer
//! tied to the connection: it runs to its end, as Tornado's does.

use std::cell::{Cell, RefCell};
use std::future::Future as StdFuture;
use std::rc::Rc;

use super::Exchange;
use crate::error::{Error, ErrorKind};
use crate::gen::{self, Runner};
use crate::ioloop::IOLoop;
use crate::stack_context;

/// The `async` block of an exchange, as its [`Exchange`] sees it: kept in
/// the exchange (no allocation of its own), so that the client leaving can
/// cancel it.
#[derive(Default)]
pub(crate) struct CoroutineSlot {
    /// A block is running for this exchange.
    running: Cell<bool>,
    /// The client left: the block is to be dropped at its next poll.
    cancelled: Cell<bool>,
    /// The block's runner, weakly (the runner holds the block, which holds
    /// the exchange: a strong handle here would be a cycle), set the first
    /// time the block waits.
    runner: RefCell<Option<gen::WeakRunner>>,
    /// The handler's `prepare` is running: a block started now is an
    /// `async` prepare.
    in_prepare: Cell<bool>,
    /// What carries the block's runner frame through its first poll.
    pub(super) carrier: Carrier,
    /// The running block is the handler's `async` prepare.
    prepare_block: Cell<bool>,
    /// The prepare block was still waiting when `prepare` returned: the
    /// verb method runs when it ends.
    verb_waits: Cell<bool>,
    /// A streaming handler's request body is held until the prepare block
    /// ends: done then (see [`Exchange::body_waits_for_prepare`]).
    body_gate: Cell<Option<crate::Future<()>>>,
}

/// The request's frame as a carrier of its block's runner frame (see
/// `gen::Carrier`): state in `Cell`s, each step a load or a store.
#[derive(Default)]
pub(super) struct Carrier {
    /// The request's frame was deferred by the `run_async` whose block's
    /// first poll is starting, and is still unmade (so it is the innermost
    /// frame: nothing captured the stack since).
    pub(super) unmade: Cell<bool>,
    /// A runner frame is carried (`carried` holds it).
    carrying: Cell<bool>,
    carried: Cell<Option<Rc<dyn stack_context::Deferred>>>,
}

impl Carrier {
    /// Carries `frame` if the request's frame is deferred and unmade and
    /// carries none.
    #[inline]
    pub(super) fn carry(&self, frame: Rc<dyn stack_context::Deferred>) -> bool {
        if !self.unmade.get() || self.carrying.replace(true) {
            return false;
        }
        self.carried.set(Some(frame));
        true
    }

    /// Lets go of the frame carried.
    #[inline]
    pub(super) fn let_go(&self) {
        self.carrying.set(false);
        // The runner's handle (not its last).
        drop(self.carried.take());
    }

    /// The frame carried, if any.
    pub(super) fn rider(&self) -> Option<Rc<dyn stack_context::Deferred>> {
        if !self.carrying.get() {
            return None;
        }
        let carried = self.carried.take();
        let rider = carried.clone();
        self.carried.set(carried);
        rider
    }
}

impl CoroutineSlot {
    /// Runs `f`, the user's closure that makes the block: should it panic,
    /// no block runs, and the slot is not left marked running (the
    /// exchange serves the connection's next request).
    #[inline]
    fn making<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Unmark<'a>(&'a CoroutineSlot);
        impl Drop for Unmark<'_> {
            fn drop(&mut self) {
                self.0.running.set(false);
                self.0.carrier.unmade.set(false);
            }
        }
        let unmark = Unmark(self);
        let made = f();
        std::mem::forget(unmark);
        made
    }

    /// The client left before the response was finished: a waiting block
    /// is woken to be dropped, now. Called by `Exchange::connection_closed`
    /// with no borrow held (dropping the block runs user code).
    pub(crate) fn cancel(&self) {
        if !self.running.get() {
            return;
        }
        self.cancelled.set(true);
        let runner = self.runner.borrow_mut().take();
        if let Some(runner) = runner.and_then(|weak| weak.upgrade()) {
            runner.wake();
        }
    }
}

/// Where the block's result goes (`gen`'s driver calls it, see
/// `gen::Completion`): the slot reset, then the response finished or the
/// error answered. The driver asks it before each poll whether the client
/// left (the block is then dropped unpolled) and tells it the runner when
/// the block waits. Dropped uncalled (its coroutine dropped before it
/// finished, nobody left who could wake it), it answers 500 rather than
/// leave the response hanging.
struct BlockEnd {
    x: Exchange,
    /// The block is the handler's `async` prepare.
    is_prepare: bool,
    /// `complete` ran.
    completed: bool,
}

impl BlockEnd {
    /// The block has gone: the slot free for another.
    fn release(&self) {
        let slot = &self.x.inner.coroutine;
        slot.running.set(false);
        let runner = slot.runner.borrow_mut().take();
        drop(runner);
    }

    /// A gate still held when the block goes without completing (the
    /// client left, or the response is answered by its drop): never
    /// opened, as the body will not be read.
    fn drop_gate(&self) {
        let gate = self.x.inner.coroutine.body_gate.take();
        drop(gate);
    }
}

impl gen::Completion<()> for BlockEnd {
    #[inline]
    fn refused(&self) -> Option<Error> {
        self.x
            .inner
            .coroutine
            .cancelled
            .get()
            .then(|| Error::new(ErrorKind::StreamClosed, "the client closed the connection"))
    }

    /// Remembers the runner, to wake it should the client leave (once; it
    /// is the same runner each time).
    fn waiting(&mut self, runner: &Runner) {
        let mut slot = self.x.inner.coroutine.runner.borrow_mut();
        if slot.is_none() {
            *slot = Some(runner.downgrade());
        }
    }

    /// The request's frame, deferred just before the block was made.
    #[inline]
    fn carrier(&self) -> Option<std::rc::Rc<dyn gen::Carrier>> {
        Some(self.x.inner.clone())
    }

    fn complete(mut self, result: Result<(), Error>) {
        self.completed = true;
        self.release();
        let x = &self.x;
        if x.inner.coroutine.cancelled.get() {
            // The client left; the handler heard it already.
            return;
        }
        // A streaming handler's body, held for its prepare: read on once
        // the prepare's end is answered (an error finishes the response,
        // and the body is then not read).
        let gate = x.inner.coroutine.body_gate.take();
        let _open = gate.map(OpensOnDrop);
        match result {
            Err(err) => x.handler_failed(err),
            // Tornado awaits `prepare`, then calls the verb method: at
            // once if the block ended inside `prepare` (the caller does),
            // else now.
            Ok(()) if self.is_prepare => {
                if x.inner.coroutine.verb_waits.replace(false) && !x.finished() {
                    x.verb_after_prepare();
                }
                return;
            }
            Ok(()) => {}
        }
        if !x.finished() {
            let _ = x.finish();
        }
    }
}

/// Completes a gate future when dropped: after whatever the scope did.
struct OpensOnDrop(crate::Future<()>);

impl Drop for OpensOnDrop {
    fn drop(&mut self) {
        self.0.try_set_result(());
    }
}

impl Drop for BlockEnd {
    fn drop(&mut self) {
        if self.completed {
            return;
        }
        self.release();
        self.drop_gate();
        let slot = &self.x.inner.coroutine;
        if slot.cancelled.get() || self.x.finished() {
            return;
        }
        // Dropped unfinished (nobody left who could wake it). On the next
        // iteration, not inside the drop, which may be anywhere.
        let x = self.x.clone();
        let answer = move || {
            if !x.finished() {
                x.handler_failed(Error::new(
                    ErrorKind::InvalidState,
                    "the handler's coroutine was dropped before it finished",
                ));
            }
        };
        match IOLoop::try_current() {
            Some(io_loop) if !io_loop.is_closed() => io_loop.add_callback(answer),
            _ => answer(),
        }
    }
}

impl Exchange {
    /// Runs the `async` block `f` makes (given its own clone of this
    /// exchange) as the handler's coroutine: Tornado 6's `async def get`.
    /// The response stays open while the block runs and is finished when
    /// it returns `Ok` (unless it was finished already, or the connection
    /// [detached](crate::http::HTTPConnection::detach)); an `Err` or a
    /// panic answers as one from the handler's method would: the
    /// [`HTTPError`](super::HTTPError)'s status or 500, through the
    /// handler's `write_error` (or, if the response had started, the
    /// connection is closed).
    ///
    /// Call it from a verb method and return what it returns. The block
    /// starts at once and runs up to its first wait before this returns;
    /// it runs in the request's stack context (as after
    /// [`set_async`](Self::set_async)), so an error in a callback it
    /// scheduled ends it the same way. If the client leaves while it waits,
    /// the block is dropped (its timeouts removed, its keys given up)
    /// before `on_connection_close` runs.
    ///
    /// ```
    /// use std::rc::Rc;
    /// use squall::httpclient::AsyncHTTPClient;
    /// use squall::web::{Exchange, HTTPError, RequestHandler};
    /// use squall::Error;
    ///
    /// // Tornado:
    /// //     async def get(self):
    /// //         r = await self.http.fetch(self.upstream)
    /// //         self.write(r.body)
    /// struct Proxy {
    ///     http: AsyncHTTPClient,
    ///     upstream: Rc<str>,
    /// }
    /// impl RequestHandler for Proxy {
    ///     fn get(&mut self, x: &Exchange) -> Result<(), Error> {
    ///         let (http, url) = (self.http.clone(), self.upstream.clone());
    ///         x.run_async(|x| async move {
    ///             let r = http.fetch(&*url).await?;
    ///             if r.code != 200 {
    ///                 return Err(HTTPError::new(502).into());
    ///             }
    ///             x.write(r.body);
    ///             Ok(())
    ///         })
    ///     }
    /// }
    /// ```
    ///
    /// Called from `prepare`, it is Tornado 6's `async def prepare`: the
    /// verb method runs when the block ends `Ok` and the response is still
    /// open (see [`RequestHandler::prepare`](super::RequestHandler::prepare)).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidState`] if the response is already finished, or
    /// a block started by an earlier call is still running (one coroutine
    /// answers a request); `f` is not called then.
    pub fn run_async<F, Fut>(&self, f: F) -> Result<(), Error>
    where
        F: FnOnce(Exchange) -> Fut,
        Fut: StdFuture<Output = Result<(), Error>> + 'static,
    {
        let slot = &self.inner.coroutine;
        if self.finished() {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "run_async() after the response was finished",
            ));
        }
        if slot.running.get() {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "run_async() while this request's coroutine is running",
            ));
        }
        slot.running.set(true);
        slot.cancelled.set(false);
        let is_prepare = slot.in_prepare.get();
        slot.prepare_block.set(is_prepare);
        slot.verb_waits.set(false);
        // The request's stack context, entered for the rest of the method
        // (lazily: made only if something captures the stack, the runner
        // of a block that waits, say).
        self.set_async_deferred();
        let block = slot.making(|| f(self.clone()));
        let end = BlockEnd {
            x: self.clone(),
            is_prepare,
            completed: false,
        };
        gen::engine_async(block, end);
        // The request's frame carries only the block of the `run_async`
        // that deferred it, and only through that block's first poll: a
        // later block in the same method (after an `async` prepare, say)
        // may start under a context entered since, or inside another
        // coroutine's first poll, where the frame is not the innermost.
        slot.carrier.unmade.set(false);
        Ok(())
    }

    /// Runs `prepare` (the handler's, given as `f`) with blocks started
    /// in it marked as an `async` prepare.
    #[inline]
    pub(super) fn preparing<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Preparing<'a>(&'a Cell<bool>);
        impl Drop for Preparing<'_> {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        let slot = &self.inner.coroutine;
        slot.in_prepare.set(true);
        // (Set again by a block this `prepare` starts.)
        slot.prepare_block.set(false);
        let _preparing = Preparing(&slot.in_prepare);
        f()
    }

    /// After a streaming handler's `prepare`: if its `async` block is still
    /// waiting, the future its request body waits for, done when the block
    /// ends (Tornado awaits `prepare` before reading the body). Not for a
    /// block that ended in `prepare`: the body is read at once.
    pub(super) fn body_waits_for_prepare(&self) -> Option<crate::Future<()>> {
        let slot = &self.inner.coroutine;
        if !slot.running.get() || !slot.prepare_block.get() {
            return None;
        }
        let gate = crate::Future::new();
        slot.body_gate.set(Some(gate.clone()));
        Some(gate)
    }

    /// After `prepare`: whether its `async` block is still waiting, so the
    /// verb method waits for it (and runs when it ends, if the response is
    /// not finished by then).
    #[inline]
    pub(super) fn verb_waits_for_prepare(&self) -> bool {
        let slot = &self.inner.coroutine;
        // One load for a handler whose prepare started no block, the
        // usual one.
        if !slot.prepare_block.get() {
            return false;
        }
        if !slot.running.get() {
            self.prepare_ended();
            return false;
        }
        slot.verb_waits.set(true);
        true
    }

    /// The `async` prepare's block ended (in `prepare`, or while a
    /// streaming body came): its `run_async` made the response
    /// asynchronous, and the verb method decides anew, as after a plain
    /// prepare (a verb that returns is finished for it).
    #[cold]
    fn prepare_ended(&self) {
        self.inner.coroutine.prepare_block.set(false);
        // The request's context its `run_async` entered (lazily), left now
        // as the method's end would have: the verb decides anew whether to
        // enter it, and the method's end, seeing a response not marked
        // asynchronous, leaves nothing. (Innermost: nothing was entered
        // since the prepare returned.)
        if let Some(entered) = self.take_entered() {
            self.inner.coroutine.carrier.unmade.set(false);
            match self.inner.app.upgrade() {
                Some(app) => app.leave_context(entered),
                None => drop(entered),
            }
        }
        self.inner.asynchronous.set(false);
    }

    /// The verb method of a handler whose `async` prepare has just ended
    /// (its handler parked in the exchange meanwhile), then the end the
    /// application gives any method: finished unless it went
    /// asynchronous, `on_finish` once finished, an error answered.
    fn verb_after_prepare(&self) {
        let (Some(app), Some(mut handler)) = (self.inner.app.upgrade(), self.inner.handler.take())
        else {
            // Not reached today (a response left open parks its handler,
            // and the application outlives its requests); were it, the
            // request must still end rather than hang.
            self.handler_failed(Error::new(
                ErrorKind::InvalidState,
                "the handler waiting for its async prepare is gone",
            ));
            if !self.finished() {
                let _ = self.finish();
            }
            return;
        };
        // The prepare's block made the response asynchronous; the verb
        // method decides anew, as it would have after a plain prepare.
        self.inner.asynchronous.set(false);
        let result = app.in_method(self, || {
            crate::callback::catch_value(|| -> Result<(), Error> {
                super::handler::call_verb(&mut *handler, self)?;
                if !self.finished() && !self.is_async() {
                    let _ = self.finish();
                }
                Ok(())
            })
        });
        if let Ok(Err(err)) | Err(err) = result {
            self.handler_failed(err);
            if !self.finished() && !self.is_async() {
                let _ = self.finish();
            }
        }
        if self.finished() {
            if let Err(err) = crate::callback::catch_value(|| handler.on_finish()) {
                log::error!("on_finish failed: {err}");
            }
        } else {
            self.park_handler(handler);
        }
    }
}
