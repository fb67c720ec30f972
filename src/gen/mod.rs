//! Generator-style coroutines: explicit continuations driven by a `Runner`.
//!
//! Instead of `async`/`await`, a coroutine is a *generator*: a state machine
//! that is resumed with the result of each thing it yields. The [`Runner`]
//! drives it, holding the keys of the callbacks it waits for and their
//! results — Tornado 3's `gen.engine` / `gen.Task` design, with the machinery
//! in plain sight.
//!
//! ```
//! use squall::gen::{self, Resume, ResultCallback, Step, Task};
//! use squall::IOLoop;
//!
//! // Tornado: response = yield gen.Task(self.method_while)
//! fn method_while(callback: ResultCallback) {
//!     callback.call(1);
//! }
//!
//! let io_loop = IOLoop::new()?;
//! let result = io_loop.run_sync(|| {
//!     gen::coroutine(gen::from_fn((), |_, input| match input {
//!         Resume::Start => Task::new(method_while).into(),
//!         Resume::Value(v) => Step::Return(v.downcast::<i32>().map(|r| format!("response {r}"))),
//!         Resume::Error(err) => Step::Return(Err(err)),
//!     }))
//! }, None)?;
//! assert_eq!(result, "response 1");
//! # Ok::<(), squall::Error>(())
//! ```
//!
//! # How the Runner turns
//! `run()` loops without recursing: if the current yield point is not ready,
//! return and wait; else resume the generator with its result (`send`) or
//! error (`throw`); on `Yield`, `start()` the new point; on `Return`, finish.
//! A result that arrives while `run()` is on the stack is stored and picked up
//! by the running loop. Runners nest (a finishing coroutine resumes the one
//! waiting for it, inside its own `run()`), but only so deep: past that, a
//! run is queued for the outermost one, so a chain of ten thousand coroutines
//! does not overflow the stack. `RUST_LOG=squall::gen=trace` logs each step.
//!
//! # `async`/`await` is the Runner
//! An `async` block is a generator the compiler wrote: [`coroutine`] takes
//! one as readily as a [`Generator`], and the same `Runner` drives it. Each
//! resume polls the block once; while it is pending, it yields a
//! suspension point, ready once the runner is woken. A squall [`Future`]
//! awaited in it wakes the runner the moment it completes, as a yielded
//! [`YieldFuture`] does (no key, exactly as there); a yield point
//! awaited in it ([`Task`], [`sleep`], [`Callback`]/[`Wait`], [`Multi`],
//! [`WaitIterator::next`], [`with_timeout`]) is started on the same runner,
//! its keys the runner's. So stack contexts, [`LeakedCallback`](crate::ErrorKind::LeakedCallback),
//! the trace and the blocking log see both forms alike. An `.await` that is
//! dropped (see [`timeout`]) gives its keys up, and a [`Sleep`] removes its
//! timeout.
//!
//! ```
//! use std::time::Duration;
//! use squall::gen::{self, ResultCallback, Task};
//! use squall::{Future, IOLoop};
//!
//! let io_loop = IOLoop::new()?;
//! let total = io_loop.run_sync(|| gen::coroutine(async {
//!     let one: i32 = Task::new(|cb: ResultCallback| cb.call(1i32)).await?.downcast()?;
//!     gen::sleep(Duration::from_millis(1)).await?;
//!     let two = Future::ready(2).await?;
//!     Ok(one + two)
//! }), None)?;
//! assert_eq!(total, 3);
//! # Ok::<(), squall::Error>(())
//! ```
//!
//! An `async` block's error type is `squall::Error`; where the compiler
//! cannot see it (a block whose only `Ok` comes before any `?` on a squall
//! result), write `Ok::<_, squall::Error>(value)`.
//!
//! ## Futures from other crates
//! Any `std` future that needs only a waker runs here: `futures` channels,
//! `async-channel`, `event-listener`-based crates. Their waker is `Send`: woken
//! on the loop's thread it queues the coroutine for the next iteration (it
//! never polls in place, inside someone else's code), woken on another
//! thread it enters through the loop's [`Remote`](crate::Remote).
//!
//! A future that needs *another runtime's reactor* cannot work on this loop:
//! a tokio socket or timer is registered with tokio's reactor, which only a
//! tokio runtime drives. tokio checks this when such a future is created or
//! first polled and panics ("there is no reactor running"); the coroutine
//! catches the panic and fails with it ([`ErrorKind::Panic`](crate::ErrorKind::Panic)), so
//! it is an error, never a hang. To use a tokio library, run a tokio runtime
//! on a thread of its own and talk to it through channels: send the work
//! there with a channel or `Handle::spawn`, and await the answer here on a
//! `futures` oneshot (or use [`Remote::add_callback`](crate::Remote::add_callback)
//! to complete a squall `Future`). The same shape with a plain thread:
//!
//! ```
//! use squall::{gen, Error, IOLoop};
//!
//! let io_loop = IOLoop::new()?;
//! let answer = io_loop.run_sync(|| gen::coroutine(async {
//!     let (tx, rx) = futures_channel::oneshot::channel();
//!     // With tokio: `handle.spawn(async move { tx.send(fetch().await) })`.
//!     std::thread::spawn(move || tx.send(6 * 7));
//!     rx.await.map_err(|_| Error::other("the other side went away"))
//! }), None)?;
//! assert_eq!(answer, 42);
//! # Ok::<(), squall::Error>(())
//! ```

mod awaitable;
mod blocks;
mod completion;
mod counting;
mod multi;
mod points;
mod runner;
mod shell;
mod task;
mod value;

#[cfg(feature = "stackful")]
pub use crate::greenlet::{stackful, Co, Stackful};
pub use awaitable::{timeout, PointFuture, Sleep, Timeout, Typed};
/// For the web layer's `run_async`: the coroutine it may have to cancel.
pub(crate) use completion::{Carrier, Completion};
pub use multi::{multi, multi_keyed};
pub use points::{
    moment, sleep, with_timeout, Callback, Multi, MultiKeyed, Next, Task, Wait, WaitAll,
    WaitIterator, YieldFuture, YieldPoint,
};
pub(crate) use runner::WeakRunner;
#[cfg(feature = "stackful")]
pub(crate) use runner::{child_run_depth, drain_put_off, swap_run_depth};
pub use runner::{FreshKey, Key, ResultCallback, Runner};
pub use value::Value;

use crate::callback::{self, CallbackReturn, Origin};
use crate::error::Error;
use crate::future::Future;
use crate::stack_context::Context;
use runner::Driver;

/// What a generator is resumed with: Python's `send(None)`, `send(value)`
/// and `throw(error)`.
#[derive(Debug)]
pub enum Resume {
    /// The first step.
    Start,
    /// The result of the last yield point.
    Value(Value),
    /// The error of the last yield point, thrown in.
    Error(Error),
}

impl Resume {
    /// The input as a `Result`: `Ok(None)` for `Start`, the value downcast to
    /// `T` for `Value`, and the error for `Error` — so a step reads
    /// `let n: Option<u32> = input.into_result()?;` in a closure returning
    /// `Result`.
    ///
    /// # Errors
    /// The thrown error, or [`ErrorKind::TypeMismatch`](crate::ErrorKind::TypeMismatch)
    /// if the value is not a `T`.
    pub fn into_result<T: 'static>(self) -> Result<Option<T>, Error> {
        match self {
            Resume::Start => Ok(None),
            Resume::Value(value) => value.downcast().map(Some),
            Resume::Error(err) => Err(err),
        }
    }
}

/// What a generator does next: wait on a point, or finish.
pub enum Step<T> {
    /// Wait on this point; resume with its result.
    Yield(Box<dyn YieldPoint>),
    /// Finish with this result.
    Return(Result<T, Error>),
}

impl<T> Step<T> {
    /// `Step::Yield(Box::new(point))`.
    pub fn wait(point: impl YieldPoint) -> Step<T> {
        Step::Yield(Box::new(point))
    }
}

impl<T, P: YieldPoint> From<P> for Step<T> {
    fn from(point: P) -> Step<T> {
        Step::Yield(Box::new(point))
    }
}

/// A coroutine written as an explicit state machine.
pub trait Generator: 'static {
    /// What the generator returns.
    type Output: 'static;
    /// Advances to the next yield (or the end), given the last point's result.
    fn resume(&mut self, input: Resume) -> Step<Self::Output>;
}

/// A generator made of a state and a closure: `f(&mut state, input)`.
pub struct FromFn<S, F> {
    state: S,
    f: F,
}

/// What a [`from_fn`] step returns: a [`Step`], or a `Result` of one, so
/// that `?` works inside a step (an `Err` finishes the generator with that
/// error, as `Step::Return(Err(..))` would).
pub trait IntoStep {
    /// What the generator returns.
    type Output: 'static;
    /// The step.
    fn into_step(self) -> Step<Self::Output>;
}

impl<T: 'static> IntoStep for Step<T> {
    type Output = T;
    #[inline]
    fn into_step(self) -> Step<T> {
        self
    }
}

impl<T: 'static> IntoStep for Result<Step<T>, Error> {
    type Output = T;
    #[inline]
    fn into_step(self) -> Step<T> {
        self.unwrap_or_else(|err| Step::Return(Err(err)))
    }
}

/// Builds a small generator from a state and a closure.
///
/// A step returns a [`Step`], or `Result<Step<T>, Error>` so that `?`
/// works inside it:
///
/// ```
/// use squall::gen::{self, Resume, Step};
/// use squall::IOLoop;
///
/// let io_loop = IOLoop::new()?;
/// let doubled = io_loop.run_sync(|| {
///     gen::coroutine(gen::from_fn((), |_, input: Resume| {
///         // `Start` is `None`; the point's value, `Some(21)`.
///         match input.into_result::<u32>()? {
///             None => Ok(Step::wait(gen::Task::new(|cb: gen::ResultCallback| cb.call(21u32)))),
///             Some(n) => Ok(Step::Return(Ok(2 * n))),
///         }
///     }))
/// }, None)?;
/// assert_eq!(doubled, 42);
/// # Ok::<(), squall::Error>(())
/// ```
pub fn from_fn<S, R, F>(state: S, f: F) -> FromFn<S, F>
where
    S: 'static,
    R: IntoStep,
    F: FnMut(&mut S, Resume) -> R + 'static,
{
    FromFn { state, f }
}

impl<S, R, F> Generator for FromFn<S, F>
where
    S: 'static,
    R: IntoStep,
    F: FnMut(&mut S, Resume) -> R + 'static,
{
    type Output = R::Output;
    fn resume(&mut self, input: Resume) -> Step<R::Output> {
        (self.f)(&mut self.state, input).into_step()
    }
}

/// [`once`] for a point already boxed.
pub(crate) fn once_boxed(point: Box<dyn YieldPoint>) -> impl Generator<Output = Value> {
    let mut point = Some(point);
    from_fn((), move |_, input| match input {
        Resume::Start => match point.take() {
            Some(p) => Step::Yield(p),
            None => Step::Return(Err(Error::other("once: resumed twice"))),
        },
        Resume::Value(v) => Step::Return(Ok(v)),
        Resume::Error(err) => Step::Return(Err(err)),
    })
}

/// A generator that yields `point` once and returns its result.
pub(crate) fn once(point: impl YieldPoint) -> impl Generator<Output = Value> {
    once_boxed(Box::new(point))
}

/// What [`coroutine`] and [`engine`] run: a [`Generator`] or an `async`
/// block (any `std` future whose output is `Result<T, squall::Error>`).
///
/// `M` only tells the two impls apart (`Generator` or `Async`); it is
/// inferred, never written.
pub trait IntoCoroutine<M>: 'static {
    /// What the coroutine returns.
    type Output: 'static;
    #[doc(hidden)]
    fn start<D: FnOnce(Result<Self::Output, Error>) + 'static>(self, done: D);
}

/// [`IntoCoroutine`]'s marker for a hand-written [`Generator`].
pub enum GeneratorMarker {}
/// [`IntoCoroutine`]'s marker for an `async` block.
pub enum AsyncMarker {}

impl<G: Generator> IntoCoroutine<GeneratorMarker> for G {
    type Output = G::Output;
    fn start<D: FnOnce(Result<G::Output, Error>) + 'static>(self, done: D) {
        Runner::new(Box::new(Driver {
            gen: self,
            output: None,
            done: Box::new(done),
        }))
        .run();
    }
}

impl<T, F> IntoCoroutine<AsyncMarker> for F
where
    T: 'static,
    F: std::future::Future<Output = Result<T, Error>> + 'static,
{
    type Output = T;
    fn start<D: FnOnce(Result<T, Error>) + 'static>(self, done: D) {
        // The first poll on a pooled runner; see `shell.rs`.
        shell::start(self, completion::Plain(done), |done, _| done);
    }
}

/// Runs a coroutine and returns a Future of its result (Tornado's
/// `@gen.coroutine`): a hand-written [`Generator`], or an `async` block,
/// which the same [`Runner`] drives (a pending `.await` is a yield point;
/// the keys are those of the points it awaits).
///
/// An error — returned, panicked, or thrown in and not caught — goes into the
/// future, never raised. The coroutine runs up to its first wait before
/// `coroutine` returns, as in Tornado.
///
/// A coroutine still waiting when its loop is closed or dropped (a
/// background worker that never ends) is failed with
/// [`ErrorKind::CallbackDropped`](crate::ErrorKind::CallbackDropped), so
/// that it does not wait forever. If it returns that error, its future
/// counts as read and a [`spawn_callback`](crate::IOLoop::spawn_callback)
/// that started it logs it at `debug` only: that is a clean shutdown, not
/// an error ("never retrieved" is for failures the user could act on).
///
/// ```
/// use std::time::Duration;
/// use squall::{gen, Future, IOLoop};
///
/// let io_loop = IOLoop::new()?;
/// let answer = io_loop.run_sync(|| gen::coroutine(async {
///     gen::sleep(Duration::from_millis(5)).await?;
///     let half: Future<u32> = Future::ready(21);
///     Ok(half.await? * 2)
/// }), None)?;
/// assert_eq!(answer, 42);
/// # Ok::<(), squall::Error>(())
/// ```
pub fn coroutine<M, C: IntoCoroutine<M>>(coro: C) -> Future<C::Output> {
    let future = Future::new();
    let f = future.clone();
    coro.start(move |result| {
        // Failed because its loop went away: nobody is left to read it.
        if matches!(&result, Err(err) if crate::catch::is_teardown(err)) {
            f.mark_observed();
        }
        f.try_complete(result);
    });
    future
}

/// Runs `gen` and calls `done` with its result (Tornado's `@gen.engine`).
///
/// The generator runs inside its own exception context (deactivated when it
/// finishes), so an error raised later by a callback it scheduled is thrown
/// into it. `done` runs under the caller's stack context: if it returns the
/// error (`|r| r.map(drop)`), the error travels to the caller's handlers, or
/// to the log. If the generator fails before its first yield, `done` is
/// called before `engine` returns.
pub fn engine<M, C, R, D>(coro: C, done: D)
where
    C: IntoCoroutine<M>,
    R: CallbackReturn,
    D: FnOnce(Result<C::Output, Error>) -> R + 'static,
{
    let ctx = Context::capture();
    let name = std::any::type_name::<D>();
    coro.start(move |result| {
        callback::invoke(&ctx, Origin::Callback, name, || done(result).into_outcome());
    });
}

/// [`engine`] for an `async` block whose `done` may run as a plain call
/// when the block finishes in its first poll: the caller's stack is
/// current then, and a panic out of `done` unwinds into the caller (who
/// catches it: the web layer's handler methods). A block that waits has
/// `done` delivered as `engine` does, under the caller's context, its
/// error or panic routed there.
pub(crate) fn engine_async<T, F, D>(future: F, done: D)
where
    T: 'static,
    F: std::future::Future<Output = Result<T, Error>> + 'static,
    D: Completion<T>,
{
    shell::start(future, done, |done, ctx| completion::InCaller { done, ctx });
}
