//! The loop's life: [`start`](IOLoop::start) and
//! [`stop`](IOLoop::stop), [`run_sync`](IOLoop::run_sync), and the end,
//! [`close`](IOLoop::close) or a drop without one. Apart from the loop's
//! making and its scheduling methods because this is where the loop hands
//! itself over to user code for good and takes everything back: the rules
//! for what runs at close (what other threads were told `Ok` for) and what
//! is dropped, with no borrow held, live here together.
//!
//! ```
//! use squall::{Future, IOLoop};
//!
//! let io_loop = IOLoop::new()?;
//! let answer = io_loop.run_sync(|| Future::ready(42), None)?;
//! assert_eq!(answer, 42);
//! io_loop.close();
//! assert!(io_loop.is_closed());
//! # Ok::<(), squall::Error>(())
//! ```

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use super::current::replace_current;
use super::{closed, signal, IOLoop, Inner, RemoteMsg};
use crate::callback::{self, Origin};
use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::stack_context::Context;

impl IOLoop {
    /// Runs the loop until [`stop`](IOLoop::stop) is called. The loop is the
    /// thread's current loop while it runs.
    ///
    /// A `stop()` before `start()` makes `start()` return at once.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidState`] if the loop is already running (a nested
    /// `start` would deadlock in Tornado; here it is refused);
    /// [`ErrorKind::Closed`] if the loop is closed; [`ErrorKind::Io`] if
    /// polling fails.
    pub fn start(&self) -> Result<(), Error> {
        let inner = &self.inner;
        if inner.closed.get() {
            return Err(closed());
        }
        if inner.running.get() {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "IOLoop is already running",
            ));
        }
        self.check_not_stranding()?;
        if inner.stopping.replace(false) {
            return Ok(());
        }
        inner.running.set(true);
        // Whatever happened since the last `start` is not the next
        // callback's doing, and the observers' last reading is old.
        inner.observers.forget_reading();
        let previous = replace_current(Some(self.clone()));
        let result = self.run_until_stopped();
        drop(replace_current(previous));
        inner.running.set(false);
        inner.stopping.set(false);
        result
    }

    fn run_until_stopped(&self) -> Result<(), Error> {
        loop {
            self.run_once()?;
            if self.inner.stopping.get() || self.inner.closed.get() {
                return Ok(());
            }
        }
    }

    /// Asks the loop to return from [`start`](IOLoop::start) after the
    /// current iteration.
    pub fn stop(&self) {
        self.inner.stopping.set(true);
    }

    /// Whether the loop is inside [`start`](IOLoop::start).
    pub fn is_running(&self) -> bool {
        self.inner.running.get()
    }

    /// Closes the loop: drops every pending callback, timeout and handler,
    /// releases its epoll and eventfd descriptors, and makes
    /// [`Remote`](super::Remote)s report [`ErrorKind::Closed`]. Callbacks
    /// other threads sent before (their
    /// [`Remote::add_callback`](super::Remote::add_callback) said `Ok`) are
    /// run now, the loop already closed, and the values queued in its
    /// [typed channels](IOLoop::remote_channel) handed to their handlers: a
    /// sender is never told `Ok` for a callback that does not run or a value
    /// that is not handled. Closing twice is harmless. The fds of registered handlers
    /// belong to their owners and are not closed.
    pub fn close(&self) {
        let inner = &self.inner;
        if inner.closed.replace(true) {
            return;
        }
        inner.remote.close();
        inner.stopping.set(true);
        let rx = inner.remote_rx.borrow_mut().take();
        if let Some(rx) = &rx {
            for msg in rx.try_iter() {
                if let RemoteMsg::Callback(f, name) = msg {
                    self.run_remote(f, name);
                }
            }
        }
        // Take everything out first, then drop it with no borrow held:
        // dropping a closure runs user code that may call back into the loop.
        let channels = std::mem::take(&mut *inner.channels.borrow_mut());
        inner.has_channels.set(false);
        // No value can enter a channel any more: what senders were told
        // `Ok` for is handled now, as the remote callbacks above.
        for source in &channels {
            source.close();
        }
        let callbacks = std::mem::take(&mut *inner.callbacks.borrow_mut());
        let spare = std::mem::take(&mut *inner.spare.borrow_mut());
        let timeouts = inner.timers.borrow_mut().drain();
        let handlers = std::mem::take(&mut *inner.handlers.borrow_mut());
        let signals = signal::take(inner);
        let poll = inner.poll.borrow_mut().take();
        // What they held goes now: coroutines waiting on it fail quietly.
        let _teardown = crate::catch::TeardownGuard::enter();
        drop(poll);
        drop(rx);
        drop(channels);
        drop(callbacks);
        drop(spare);
        drop(timeouts);
        drop(handlers);
        drop(signals);
    }

    /// Whether [`close`](IOLoop::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// Runs the loop until the future `f` returns is done, and returns its
    /// result. `f` is called with this loop current.
    ///
    /// # Errors
    /// The future's error; [`ErrorKind::Timeout`] if `timeout` (on the loop's
    /// clock) passes first; [`ErrorKind::Panic`] if `f` panics;
    /// [`ErrorKind::InvalidState`] if the loop is already running or is
    /// stopped by someone else first; [`ErrorKind::Closed`] if it is (or gets)
    /// closed first.
    pub fn run_sync<T, F>(&self, f: F, timeout: Option<Duration>) -> Result<T, Error>
    where
        T: 'static,
        F: FnOnce() -> Future<T>,
    {
        if self.is_running() {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "run_sync called on a running IOLoop",
            ));
        }
        if self.is_closed() {
            return Err(closed());
        }
        self.check_not_stranding()?;
        let previous = replace_current(Some(self.clone()));
        let future = match callback::catch_value(f) {
            Ok(future) => future,
            Err(err) => {
                drop(replace_current(previous));
                return Err(err);
            }
        };
        drop(replace_current(previous));

        let outcome: Rc<RefCell<Option<Result<T, Error>>>> = Rc::new(RefCell::new(None));
        {
            // Weak: a future that outlives this call (one the loop itself
            // holds, say in a pending timeout) must not keep the loop alive,
            // a cycle no drop would break.
            let (outcome, weak) = (outcome.clone(), Rc::downgrade(&self.inner));
            future.add_done_callback(move |done: &Future<T>| {
                let mut slot = outcome.borrow_mut();
                if slot.is_none() {
                    *slot = Some(done.take_result());
                    if let Some(inner) = weak.upgrade() {
                        inner.stopping.set(true);
                    }
                }
            });
        }
        if outcome.borrow().is_some() {
            // Done synchronously; our stop() must not linger for the next start().
            self.inner.stopping.set(false);
            return outcome.borrow_mut().take().expect("checked above");
        }
        let timer = timeout.map(|limit| {
            let (outcome, weak) = (outcome.clone(), Rc::downgrade(&self.inner));
            self.call_later(limit, move || {
                let mut slot = outcome.borrow_mut();
                if slot.is_none() {
                    *slot = Some(Err(Error::new(
                        ErrorKind::Timeout,
                        format!("operation timed out after {limit:?}"),
                    )));
                    if let Some(inner) = weak.upgrade() {
                        inner.stopping.set(true);
                    }
                }
            })
        });
        let started = self.start();
        if let Some(timer) = timer {
            self.remove_timeout(timer);
        }
        let result = outcome.borrow_mut().take();
        // A late completion must find the slot taken and do nothing.
        *outcome.borrow_mut() = Some(Err(Error::other("run_sync finished")));
        started?;
        result.unwrap_or_else(|| {
            if self.is_closed() {
                return Err(Error::new(
                    ErrorKind::Closed,
                    "the IOLoop was closed before the future was done",
                ));
            }
            Err(Error::new(
                ErrorKind::InvalidState,
                "the IOLoop stopped before the future was done",
            ))
        })
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A loop dropped without `close()` is closed all the same for its
        // `Remote`s: they say so, and release the eventfd they share.
        self.remote.close();
        // And what they were told `Ok` for still runs (see `close`); there
        // is no loop left to observe it.
        if let Some(rx) = self.remote_rx.get_mut().take() {
            for msg in rx.try_iter() {
                if let RemoteMsg::Callback(mut f, name) = msg {
                    callback::invoke(&Context::empty(), Origin::Remote, name, &mut *f);
                }
            }
        }
        // And the values queued in its typed channels.
        let channels = std::mem::take(self.channels.get_mut());
        for source in &channels {
            source.close();
        }
        // What it still holds goes here rather than after, so that the
        // coroutines waiting on it know it is teardown (see `catch::TeardownGuard`).
        let _teardown = crate::catch::TeardownGuard::enter();
        drop(channels);
        drop(std::mem::take(self.callbacks.get_mut()));
        drop(std::mem::take(self.spare.get_mut()));
        drop(self.timers.get_mut().drain());
        drop(std::mem::take(self.handlers.get_mut()));
        drop(self.signals.get_mut().take());
    }
}
