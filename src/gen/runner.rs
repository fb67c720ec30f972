//! The `Runner`: the state machine that drives a generator.
//!
//! It holds the yield point the generator is waiting on, the keys of the
//! callbacks it registered (`pending_callbacks`) and the results that arrived
//! for them. Each time a result arrives, `run()` checks whether the current
//! yield point is ready; if so it resumes the generator with the result (or
//! throws the error in), and starts whatever the generator yields next.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::mem::ManuallyDrop;
use std::rc::Rc;

use super::{Resume, Step, Value, YieldPoint};
use crate::callback::{self, Origin};
use crate::error::{Error, ErrorKind};
use crate::future::Wake;

use crate::stack_context::{Context, Deactivate, ExceptionStackContext};

mod first;
mod keys;

pub use keys::{FreshKey, Key, ResultCallback};
use keys::{Keys, Slot};

/// A generator with its output type erased, so `Runner` is one type.
pub(crate) trait ErasedGen {
    fn resume(&mut self, input: Resume, runner: &Runner) -> Option<Box<dyn YieldPoint>>;
    /// Delivers the output; `err` overrides it (a leaked callback).
    fn finish(self: Box<Self>, err: Option<Error>);
    fn failed(&self) -> bool;
    /// Whether its runner's parts go back to a pool when it finishes (an
    /// `async` coroutine's, see `shell.rs`): the pool then deactivates the
    /// runner's context, unless it reuses it.
    fn retires(&self) -> bool {
        false
    }
    /// The generator's type name, for the trace.
    #[cfg(feature = "trace")]
    fn name(&self) -> &'static str;
}

pub(crate) struct Driver<G: super::Generator> {
    pub(crate) gen: G,
    pub(crate) output: Option<Result<G::Output, Error>>,
    pub(crate) done: Box<dyn FnOnce(Result<G::Output, Error>)>,
}

impl<G: super::Generator> ErasedGen for Driver<G> {
    fn resume(&mut self, input: Resume, _runner: &Runner) -> Option<Box<dyn YieldPoint>> {
        let gen = &mut self.gen;
        match callback::catch_value(|| gen.resume(input)) {
            Ok(Step::Yield(point)) => Some(point),
            Ok(Step::Return(result)) => {
                self.output = Some(result);
                None
            }
            Err(panic) => {
                self.output = Some(Err(panic));
                None
            }
        }
    }

    fn finish(self: Box<Self>, err: Option<Error>) {
        let Driver { output, done, .. } = *self;
        let result = match (err, output) {
            (Some(err), _) => Err(err),
            (None, Some(result)) => result,
            (None, None) => Err(Error::new(
                ErrorKind::InvalidState,
                "generator finished without a result",
            )),
        };
        done(result);
    }

    fn failed(&self) -> bool {
        matches!(self.output, Some(Err(_)))
    }

    #[cfg(feature = "trace")]
    fn name(&self) -> &'static str {
        std::any::type_name::<G>()
    }
}

struct Inner {
    gen: RefCell<Option<Box<dyn ErasedGen>>>,
    point: RefCell<Option<Box<dyn YieldPoint>>>,
    keys: RefCell<Keys>,
    /// An error to throw into the generator on the next step (Tornado's `exc_info`).
    pending_error: RefCell<Option<Error>>,
    started: Cell<bool>,
    running: Cell<bool>,
    finished: Cell<bool>,
    had_exception: Cell<bool>,
    /// Its context frame may sit on some stack: made by `Deferred::make`
    /// (or at birth) and not lifted off since.
    seated: Cell<bool>,
    /// The caller's context plus the runner's own exception handler.
    ctx: RefCell<Context>,
    deactivate: RefCell<Option<Deactivate>>,
    /// Something arrived since the generator last ran (a result, a wake):
    /// what an `async` coroutine's suspension waits for.
    woken: Cell<bool>,
    /// Keys registered while an `.await` starts its yield point, so that
    /// dropping the `.await` can give them up.
    recording: RefCell<Option<Vec<Key>>>,
}

impl Wake for Inner {
    fn wake(self: Rc<Self>) {
        Runner { inner: self }.wake();
    }
    fn into_any(self: Rc<Self>) -> Rc<dyn std::any::Any> {
        self
    }
}

/// Drives a generator: Tornado's `gen.Runner`. See the [module docs](super).
///
/// Yield points receive it in `start`/`is_ready`/`get_result`, to register
/// keys and read results. It is a cheap handle (`Rc` inside).
#[derive(Clone)]
pub struct Runner {
    inner: Rc<Inner>,
}

impl Runner {
    pub(crate) fn new(gen: Box<dyn ErasedGen>) -> Runner {
        let runner = Runner::blank();
        *runner.inner.gen.borrow_mut() = Some(gen);
        runner
    }

    /// A runner with no generator yet, its context made over the current
    /// stack: what an `async` coroutine's first poll runs in (see
    /// `shell.rs`), the generator coming only if the block has to wait.
    pub(super) fn blank() -> Runner {
        let runner = Runner {
            inner: Rc::new(Inner {
                gen: RefCell::new(None),
                point: RefCell::new(None),
                keys: RefCell::new(Keys::default()),
                pending_error: RefCell::new(None),
                started: Cell::new(false),
                running: Cell::new(false),
                finished: Cell::new(false),
                had_exception: Cell::new(false),
                // Made over the stack current at its birth.
                seated: Cell::new(true),
                ctx: RefCell::new(Context::empty()),
                deactivate: RefCell::new(None),
                woken: Cell::new(false),
                recording: RefCell::new(None),
            }),
        };
        // Everything the generator schedules runs under this context, so an
        // error raised later in one of its callbacks is thrown into it.
        let weak = Rc::downgrade(&runner.inner);
        let handler = ExceptionStackContext::new(move |err: &Error| match weak.upgrade() {
            Some(inner) => Runner { inner }.handle_exception(err),
            None => false,
        });
        let mut ctx = Context::empty();
        let deactivate = handler.run(|| ctx = Context::capture());
        *runner.inner.ctx.borrow_mut() = ctx;
        *runner.inner.deactivate.borrow_mut() = Some(deactivate);
        runner
    }

    /// This runner as something a [`Future`](crate::Future) can wake.
    pub(crate) fn waker(&self) -> Rc<dyn Wake> {
        self.inner.clone()
    }

    /// Makes a fresh key, unique for this runner (not yet registered).
    pub fn fresh_key(&self) -> Key {
        Key::Fresh(self.inner.keys.borrow_mut().fresh.insert(Slot::default()))
    }

    /// Registers `key` as a callback the generator will wait for.
    ///
    /// # Errors
    /// [`ErrorKind::KeyReuse`] if `key` is already registered.
    pub fn register_callback(&self, key: impl Into<Key>) -> Result<(), Error> {
        let key = key.into();
        let mut keys = self.inner.keys.borrow_mut();
        let slot = match &key {
            Key::Fresh(k) => keys.fresh.get_mut(*k).ok_or_else(|| unknown(&key))?,
            label => keys.labels.entry(label.clone()).or_default(),
        };
        if slot.registered {
            return Err(Error::new(
                ErrorKind::KeyReuse,
                format!("key {key:?} is already registered"),
            ));
        }
        slot.registered = true;
        slot.cancelled = false;
        drop(keys);
        if let Some(recorded) = self.inner.recording.borrow_mut().as_mut() {
            recorded.push(key);
        }
        Ok(())
    }

    /// Runs `start` (a yield point's start, for an `.await`) and returns it
    /// with the keys it registered.
    pub(crate) fn recording_keys<R>(&self, start: impl FnOnce() -> R) -> (R, Vec<Key>) {
        let outer = self.inner.recording.borrow_mut().replace(Vec::new());
        let result = start();
        let keys = std::mem::replace(&mut *self.inner.recording.borrow_mut(), outer);
        (result, keys.unwrap_or_default())
    }

    /// Gives up `key`: an `.await` was dropped before its result came. The
    /// key stops counting as pending; a result already there is dropped
    /// now, one still to come is dropped quietly when it comes.
    pub(crate) fn cancel(&self, key: &Key) {
        let removed = {
            let mut keys = self.inner.keys.borrow_mut();
            match keys.get_mut(key) {
                Some(slot) if slot.registered && slot.result.is_none() => {
                    slot.registered = false;
                    slot.cancelled = true;
                    None
                }
                Some(_) => keys.remove(key),
                None => None,
            }
        };
        // A result's value is the user's: dropped with no borrow held.
        drop(removed);
    }

    /// Every key slot the runner holds, registered or given up (tests).
    #[cfg(test)]
    pub(crate) fn key_slots(&self) -> usize {
        let keys = self.inner.keys.borrow();
        keys.fresh.len() + keys.labels.len()
    }

    /// A nudge: the next check for readiness of an `async` coroutine's
    /// suspension sees `woken`. Then the runner runs (or, if it is running,
    /// its loop picks the wake up).
    pub(crate) fn wake(&self) {
        self.inner.woken.set(true);
        self.run();
    }

    /// Whether something arrived since the last call (and clears it).
    pub(crate) fn take_woken(&self) -> bool {
        self.inner.woken.replace(false)
    }

    /// The runner of the `async` coroutine being polled on this thread, if
    /// `waker` is the one it polls with.
    pub(crate) fn polling(waker: &std::task::Waker) -> Option<Runner> {
        let wake = crate::future::polling_wake(waker)?;
        let inner = wake.into_any().downcast::<Inner>().ok()?;
        Some(Runner { inner })
    }

    /// A handle that does not keep the runner alive.
    pub(crate) fn downgrade(&self) -> WeakRunner {
        WeakRunner {
            inner: Rc::downgrade(&self.inner),
        }
    }

    /// The runner's wake-up as a weak `dyn Wake`, for [`crate::future::Polling`].
    pub(crate) fn weak_waker(&self) -> std::rc::Weak<dyn Wake> {
        let weak: std::rc::Weak<Inner> = Rc::downgrade(&self.inner);
        weak
    }

    /// Whether `key`'s result has arrived.
    ///
    /// # Errors
    /// [`ErrorKind::UnknownKey`] if `key` was never registered.
    pub fn is_ready(&self, key: &Key) -> Result<bool, Error> {
        match self.inner.keys.borrow_mut().get_mut(key) {
            Some(slot) if slot.registered => Ok(slot.result.is_some()),
            _ => Err(unknown(key)),
        }
    }

    /// Stores the result for `key` and runs the generator if it was waiting
    /// for it. A result for a finished runner, an unregistered key, or a key
    /// that already has one is logged and ignored.
    pub fn set_result(&self, key: &Key, result: Result<Value, Error>) {
        if self.inner.finished.get() {
            // An orphaned callback, or the result of a point abandoned when an
            // error was thrown in: Tornado ignores it too.
            log::warn!("result for key {key:?} arrived after the generator finished: ignored");
            return;
        }
        {
            let mut keys = self.inner.keys.borrow_mut();
            match keys.get_mut(key) {
                Some(slot) if slot.registered && slot.result.is_none() => {
                    slot.result = Some(result);
                    self.inner.woken.set(true);
                }
                Some(slot) if slot.cancelled => {
                    // An `.await` given up: nobody wants it. Dropped after
                    // the borrow, as it is the user's value.
                    let slot = keys.remove(key);
                    drop(keys);
                    drop((slot, result));
                    return;
                }
                Some(slot) if slot.registered => {
                    drop(keys);
                    report(
                        Error::new(
                            ErrorKind::InvalidState,
                            format!("a second result for key {key:?}: ignored"),
                        ),
                        "squall::gen::Runner::set_result",
                    );
                    return;
                }
                _ => {
                    log::error!("result for unregistered key {key:?}: ignored");
                    return;
                }
            }
        }
        self.run();
    }

    /// Takes `key`'s result and unregisters it.
    ///
    /// # Errors
    /// The result's own error; [`ErrorKind::UnknownKey`] if `key` is not
    /// registered; [`ErrorKind::InvalidState`] if its result has not arrived.
    pub fn pop_result(&self, key: &Key) -> Result<Value, Error> {
        let mut keys = self.inner.keys.borrow_mut();
        match keys.get_mut(key) {
            Some(slot) if slot.registered && slot.result.is_some() => {}
            Some(slot) if slot.registered => {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    format!("no result for key {key:?} yet"),
                ))
            }
            _ => return Err(unknown(key)),
        }
        let slot = keys.remove(key).expect("checked above");
        slot.result.expect("checked above")
    }

    /// A callback that delivers its value as `key`'s result.
    pub fn result_callback(&self, key: Key) -> ResultCallback {
        ResultCallback::new(self.clone(), key)
    }

    /// `None` if the runner finished; else whether `key` is registered and
    /// still without a result.
    fn awaits_result(&self, key: &Key) -> Option<bool> {
        if self.inner.finished.get() {
            return None;
        }
        Some(matches!(
            self.inner.keys.borrow_mut().get_mut(key),
            Some(slot) if slot.registered && slot.result.is_none()
        ))
    }

    /// Whether `key` was given up by a dropped `.await`.
    fn is_cancelled(&self, key: &Key) -> bool {
        matches!(self.inner.keys.borrow_mut().get_mut(key), Some(slot) if slot.cancelled)
    }

    /// Whether the generator has finished.
    pub fn finished(&self) -> bool {
        self.inner.finished.get()
    }

    /// The number of keys registered and not yet consumed.
    pub fn pending_callbacks(&self) -> usize {
        self.inner.keys.borrow().pending()
    }

    /// An error raised later by a callback scheduled under the generator's
    /// context: thrown into the generator if it is waiting.
    fn handle_exception(&self, err: &Error) -> bool {
        if self.inner.running.get() || self.inner.finished.get() {
            return false;
        }
        *self.inner.pending_error.borrow_mut() = Some(err.clone());
        self.run();
        true
    }

    /// Advances the generator as far as it can go without waiting.
    ///
    /// Iterative, never recursive: a generator that yields a million ready
    /// points runs in constant stack. A call while it is already running
    /// (a result arriving synchronously) only stores the result: the running
    /// loop picks it up.
    ///
    /// Runners do nest, though: a coroutine that finishes completes its
    /// future, which resumes the coroutine waiting for it, right there. So
    /// that a chain of thousands of coroutines awaiting each other cannot
    /// overflow the stack, a run nested more than `MAX_NESTED_RUNS` deep is
    /// queued instead, and the outermost run on the thread runs it when it is
    /// done: the whole chain still finishes before the first `run` returns.
    pub fn run(&self) {
        let inner = &*self.inner;
        if inner.running.get() || inner.finished.get() {
            return;
        }
        let depth = RUN_DEPTH.with(Cell::get);
        if depth >= MAX_NESTED_RUNS {
            log::trace!(target: "squall::gen", "nested {depth} deep: run queued");
            // (Registers the janitor, once: the queue may grow now.)
            let _ = PUT_OFF_JANITOR.try_with(|_| {});
            PUT_OFF.with(|q| q.borrow_mut().push_back(self.clone()));
            return;
        }
        self.run_here(depth);
        if depth == 0 {
            while let Some(runner) = PUT_OFF.with(|q| q.borrow_mut().pop_front()) {
                runner.run_here(0);
            }
        }
    }

    fn run_here(&self, depth: u32) {
        let inner = &*self.inner;
        if inner.running.get() || inner.finished.get() {
            return;
        }
        let _running = Running::enter(self, depth);
        let ctx = inner.ctx.borrow().clone();
        crate::stack_context::enter(&ctx, || self.steps());
    }

    fn steps(&self) {
        let inner = &*self.inner;
        loop {
            let input = if let Some(err) = inner.pending_error.borrow_mut().take() {
                Resume::Error(err)
            } else if !inner.started.replace(true) {
                Resume::Start
            } else {
                let Some(mut point) = inner.point.borrow_mut().take() else {
                    return;
                };
                let ready = callback::catch_value(|| point.is_ready(self));
                match ready {
                    Ok(true) => {}
                    Ok(false) => {
                        log::trace!(target: "squall::gen", "not ready: waiting");
                        *inner.point.borrow_mut() = Some(point);
                        return;
                    }
                    Err(err) => {
                        *inner.pending_error.borrow_mut() = Some(err);
                        continue;
                    }
                }
                match callback::catch_value(|| point.get_result(self)) {
                    Ok(Ok(value)) => Resume::Value(value),
                    Ok(Err(err)) | Err(err) => Resume::Error(err),
                }
            };
            if let Resume::Error(err) = &input {
                log::trace!(target: "squall::gen", "throw: {err}");
                inner.had_exception.set(true);
            } else {
                log::trace!(target: "squall::gen", "send");
            }
            let mut gen = inner
                .gen
                .borrow_mut()
                .take()
                .expect("generator present while running");
            #[cfg(feature = "trace")]
            let next = crate::trace::step(gen.name(), || gen.resume(input, self));
            #[cfg(not(feature = "trace"))]
            let next = gen.resume(input, self);
            match next {
                Some(mut point) => {
                    *inner.gen.borrow_mut() = Some(gen);
                    log::trace!(target: "squall::gen", "start yield point");
                    match callback::catch_value(|| point.start(self)) {
                        Ok(Ok(())) => {}
                        Ok(Err(err)) | Err(err) => *inner.pending_error.borrow_mut() = Some(err),
                    }
                    *inner.point.borrow_mut() = Some(point);
                }
                None => {
                    self.finish(gen);
                    return;
                }
            }
        }
    }

    fn finish(&self, gen: Box<dyn ErasedGen>) {
        let leaked = self.conclude(gen.failed(), !gen.retires());
        gen.finish(leaked);
    }

    /// The end of the generator, but for delivering its result: marks the
    /// runner finished, says whether callbacks leaked, deactivates the
    /// context (if `deactivate`: a pooled runner's first poll leaves that
    /// to its shell, which reuses a frame nobody captured) and drops what
    /// the generator left behind.
    pub(super) fn conclude(&self, failed: bool, deactivate: bool) -> Option<Error> {
        let inner = &*self.inner;
        inner.finished.set(true);
        let (pending, no_keys) = {
            let keys = inner.keys.borrow();
            match keys.is_empty() {
                true => (0, true),
                false => (keys.pending(), false),
            }
        };
        let leaked = (pending > 0 && !inner.had_exception.get() && !failed).then(|| {
            Error::new(
                ErrorKind::LeakedCallback,
                format!(
                    "generator finished with {pending} callback(s) registered but never waited for"
                ),
            )
        });
        log::trace!(target: "squall::gen", "return");
        if deactivate {
            self.deactivate_context();
        }
        // Drop what the generator left behind (results, its last yield point)
        // before delivering, with no borrow held.
        // (No keys, the usual case: nothing to take, no new empty table.)
        let keys = (!no_keys).then(|| std::mem::take(&mut *inner.keys.borrow_mut()));
        let point = inner.point.borrow_mut().take();
        drop(keys);
        drop(point);
        leaked
    }

    /// Turns the runner's exception context off for good.
    pub(super) fn deactivate_context(&self) {
        let deactivate = self.inner.deactivate.borrow_mut().take();
        if let Some(deactivate) = deactivate {
            deactivate.deactivate();
        }
    }
}

/// A [`Runner`] that may be gone: what an `async` coroutine's `std` waker
/// finds it through.
#[derive(Clone)]
pub(crate) struct WeakRunner {
    inner: std::rc::Weak<Inner>,
}

impl WeakRunner {
    /// The runner, if it is still alive.
    pub(crate) fn upgrade(&self) -> Option<Runner> {
        self.inner.upgrade().map(|inner| Runner { inner })
    }
}

/// How deep runs may nest on one thread before the next one is queued.
const MAX_NESTED_RUNS: u32 = 16;

thread_local! {
    /// How many `Runner::run`s are on this thread's stack.
    static RUN_DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Runs that would have nested too deep, for the outermost run to do.
    // No destructor (`ManuallyDrop`): read inline after every run, with no
    // check that one is registered; `PutOffJanitor` (registered by the
    // first run put off) drops what it holds when the thread ends.
    static PUT_OFF: ManuallyDrop<RefCell<VecDeque<Runner>>> =
        const { ManuallyDrop::new(RefCell::new(VecDeque::new())) };
    static PUT_OFF_JANITOR: PutOffJanitor = const { PutOffJanitor };
}

/// Drops [`PUT_OFF`]'s queue when the thread ends.
struct PutOffJanitor;

impl Drop for PutOffJanitor {
    fn drop(&mut self) {
        let queue = PUT_OFF.with(|q| q.try_borrow_mut().map(|mut q| std::mem::take(&mut *q)));
        drop(queue);
    }
}

/// Replaces this thread's run depth, returning the old one: a stackful
/// coroutine keeps its own, as it has its own stack.
#[cfg(feature = "stackful")]
#[inline]
pub(crate) fn swap_run_depth(depth: u32) -> u32 {
    RUN_DEPTH.with(|d| d.replace(depth))
}

/// The run depth a stackful coroutine starts at: only `budget` runs nest on
/// its small stack before the deeper ones are queued.
#[cfg(feature = "stackful")]
pub(crate) fn child_run_depth(budget: u32) -> u32 {
    MAX_NESTED_RUNS.saturating_sub(budget)
}

/// Runs the queued runs if no run is on this stack: what the outermost run
/// would have done, for runs queued by a coroutine that has switched out.
#[cfg(feature = "stackful")]
pub(crate) fn drain_put_off() {
    if RUN_DEPTH.with(Cell::get) == 0 {
        while let Some(runner) = PUT_OFF.with(|q| q.borrow_mut().pop_front()) {
            runner.run_here(0);
        }
    }
}

/// Marks a runner as running, one level deeper; undone on drop, unwinding too.
struct Running<'a> {
    runner: &'a Runner,
    depth: u32,
}

impl<'a> Running<'a> {
    #[inline]
    fn enter(runner: &'a Runner, depth: u32) -> Running<'a> {
        runner.inner.running.set(true);
        RUN_DEPTH.with(|d| d.set(depth + 1));
        Running { runner, depth }
    }
}

impl Drop for Running<'_> {
    #[inline]
    fn drop(&mut self) {
        RUN_DEPTH.with(|d| d.set(self.depth));
        self.runner.inner.running.set(false);
    }
}

/// Reports an error that has nowhere to go (a second call of a callback,
/// the other failures of a `Multi`): logged, and collected by
/// [`testing::capture_unhandled`](crate::testing::capture_unhandled) and
/// [`AsyncTest`](crate::testing::AsyncTest) like any unhandled error.
pub(crate) fn report(err: Error, what: &'static str) {
    callback::report_unhandled(err, Origin::Callback, what);
}

fn unknown(key: &Key) -> Error {
    Error::new(
        ErrorKind::UnknownKey,
        format!("key {key:?} is not registered"),
    )
}

impl fmt::Debug for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner")
            .field("finished", &self.inner.finished.get())
            .field("pending_callbacks", &self.pending_callbacks())
            .finish()
    }
}
