//! The stackful generator: a closure on a stack of its own, driven by the
//! same `Runner` as every other generator.
//!
//! Resuming it switches to its stack; the closure runs until it waits on a
//! yield point, which switches back and hands the point to the Runner, or
//! until it returns. All of squall's per-stack state (see `ambient`), the
//! "current coroutine" pointer and the guard page the overflow handler
//! checks are swapped on every switch, and restored even if the switch
//! unwinds.

use std::any::Any;
use std::cell::Cell;
use std::fmt;

use corosensei::{Coroutine, CoroutineResult, Yielder};

use super::ambient::{self, Ambient};
use super::overflow;
use super::stack::{self, PooledStack};
use crate::callback;
use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::gen::{Generator, Key, Resume, Runner, Step, Value, YieldPoint};
use crate::stack_context::Context;

type Yield = Box<dyn YieldPoint>;
type Body<T> = Coroutine<Resume, Yield, Result<T, Error>, PooledStack>;

thread_local! {
    /// The coroutine running on this thread, or null on a thread's own stack.
    static CURRENT: Cell<*const Co> = const { Cell::new(std::ptr::null()) };
    /// Whether the running coroutine is being unwound because it was dropped
    /// suspended: it may not switch out any more. Saved and restored by
    /// every switch, like `CURRENT`.
    static UNWINDING: Cell<bool> = const { Cell::new(false) };
}

/// The running coroutine's handle, handed to a [`stackful`] closure: waits
/// on yield points and futures by switching back to whoever resumed it.
///
/// The free functions of [`greenlet`](super) do the same for the innermost
/// running coroutine, without a handle.
pub struct Co {
    yielder: *const Yielder<Resume, Yield>,
}

impl Co {
    /// Waits for any gen [`YieldPoint`] (`Task`, `Multi`, `with_timeout`,
    /// `sleep`...): switches out, and comes back with its result.
    ///
    /// # Errors
    /// The point's error; [`ErrorKind::InvalidState`] if this is not the
    /// running coroutine; [`ErrorKind::CallbackDropped`] while the coroutine
    /// is being unwound (dropped while suspended) or its thread is panicking.
    pub fn yield_point(&self, point: impl YieldPoint) -> Result<Value, Error> {
        self.suspend(Box::new(point))
    }

    /// [`yield_point`](Co::yield_point) for a point already boxed.
    ///
    /// # Errors
    /// As [`yield_point`](Co::yield_point).
    pub fn yield_boxed(&self, point: Box<dyn YieldPoint>) -> Result<Value, Error> {
        self.suspend(point)
    }

    /// Waits for `future` and takes its result; a future already done
    /// returns at once, without a switch.
    ///
    /// # Errors
    /// The future's error; see [`yield_point`](Co::yield_point) for the rest.
    pub fn wait<T: 'static>(&self, future: Future<T>) -> Result<T, Error> {
        if future.done() {
            self.check_running()?;
            return future.take_result();
        }
        let value = self.suspend(Box::new(WaitFuture {
            future: Some(future),
            key: None,
        }))?;
        from_value(value)
    }

    fn check_running(&self) -> Result<(), Error> {
        if !std::ptr::eq(CURRENT.with(Cell::get), self) {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "a coroutine's handle used while another one is running",
            ));
        }
        Ok(())
    }

    fn suspend(&self, point: Yield) -> Result<Value, Error> {
        self.check_running()?;
        if UNWINDING.with(Cell::get) || std::thread::panicking() {
            // Switching out now would only be unwound again.
            return Err(Error::new(
                ErrorKind::CallbackDropped,
                "the coroutine is being unwound: it cannot wait any more",
            ));
        }
        // Back on this stack (or unwinding it), this is the running coroutine.
        let _back = Reenter(self);
        // SAFETY: `yielder` points to the yielder corosensei passed to this
        // coroutine's root, which lives for as long as the root's frame, and
        // `self` lives in that frame. `check_running` made sure this is the
        // running coroutine, so we are on its stack.
        let yielder = unsafe { &*self.yielder };
        match yielder.suspend(point) {
            Resume::Value(value) => Ok(value),
            Resume::Error(err) => Err(err),
            Resume::Start => Err(Error::new(
                ErrorKind::InvalidState,
                "a started coroutine was resumed with Resume::Start",
            )),
        }
    }
}

impl fmt::Debug for Co {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Co").finish_non_exhaustive()
    }
}

/// Makes `Co` the current coroutine when dropped (after a switch back in).
struct Reenter<'a>(&'a Co);

impl Drop for Reenter<'_> {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

/// Runs `f` with the innermost running coroutine's handle.
pub(crate) fn with_current<R>(f: impl FnOnce(&Co) -> Result<R, Error>) -> Result<R, Error> {
    let co = CURRENT.with(Cell::get);
    if co.is_null() {
        return Err(not_in_coroutine());
    }
    // SAFETY: CURRENT is non-null only while the coroutine whose root frame
    // holds this `Co` is the one running: its root sets it, its `Reenter`
    // puts it back after each switch in, and the `Switch` of whoever resumed
    // it restores that one's value as soon as it switches out or returns.
    f(unsafe { &*co })
}

/// Whether the caller runs inside a stackful coroutine.
pub fn in_coroutine() -> bool {
    !CURRENT.with(Cell::get).is_null()
}

pub(crate) fn not_in_coroutine() -> Error {
    Error::new(
        ErrorKind::NotInCoroutine,
        "greenlet::wait and friends only work inside a coroutine \
         (greenlet::async_call_method, gen::stackful)",
    )
}

/// A `Value` as a `T`, `Value` itself included.
fn from_value<T: 'static>(value: Value) -> Result<T, Error> {
    let mut slot = Some(value);
    if let Some(same) = (&mut slot as &mut dyn Any).downcast_mut::<Option<T>>() {
        return Ok(same.take().expect("set just above"));
    }
    slot.take().expect("set just above").downcast()
}

/// Waits for a future without keeping it: a future nobody else holds and
/// nobody can complete is dropped, which drops its callback, which delivers
/// `CallbackDropped` — the coroutine hears of it instead of leaking.
struct WaitFuture<T> {
    future: Option<Future<T>>,
    key: Option<Key>,
}

impl<T: 'static> YieldPoint for WaitFuture<T> {
    fn start(&mut self, runner: &Runner) -> Result<(), Error> {
        let Some(future) = self.future.take() else {
            return Err(Error::new(ErrorKind::InvalidState, "started twice"));
        };
        let key = runner.fresh_key();
        runner.register_callback(key.clone())?;
        let callback = runner.result_callback(key.clone());
        self.key = Some(key);
        future.add_done_callback(move |f: &Future<T>| callback.complete(f.take_result()));
        Ok(())
    }
    fn is_ready(&self, runner: &Runner) -> bool {
        self.key
            .as_ref()
            .map_or(true, |key| runner.is_ready(key).unwrap_or(true))
    }
    fn get_result(&mut self, runner: &Runner) -> Result<Value, Error> {
        match &self.key {
            Some(key) => runner.pop_result(key),
            None => Err(Error::new(ErrorKind::InvalidState, "not started")),
        }
    }
}

enum State<T> {
    Live(Body<T>),
    /// No stack could be had: the first resume returns this error.
    Failed(Error),
    Done,
}

/// A generator whose body is straight-line code on a stack of its own; see
/// [`stackful`].
pub struct Stackful<T> {
    state: State<T>,
    ambient: Ambient,
    guard: (usize, usize),
    size: usize,
}

/// A [`Generator`] from a closure that waits by calling `co.yield_point(..)`
/// or `co.wait(..)` (or [`greenlet::wait`](super::wait) and friends) instead
/// of returning a state: the Runner drives it like any other generator, and
/// the closure reads top to bottom.
///
/// The stack is [`default_stack_size`](super::default_stack_size) (64 KiB
/// unless changed) with a guard page; use [`Builder`](super::Builder) for
/// another size. A panic in the closure becomes the generator's error.
///
/// ```
/// use std::time::Duration;
/// use squall::gen::{self, Task, ResultCallback};
/// use squall::IOLoop;
///
/// let io_loop = IOLoop::new()?;
/// let total = io_loop.run_sync(|| gen::coroutine(gen::stackful(|co| {
///     let a = co.yield_point(Task::new(|cb: ResultCallback| cb.call(20u32)))?.downcast::<u32>()?;
///     co.yield_point(gen::sleep(Duration::from_millis(1)))?;
///     Ok(a + 22)
/// })), None)?;
/// assert_eq!(total, 42);
/// # Ok::<(), squall::Error>(())
/// ```
pub fn stackful<T, F>(f: F) -> Stackful<T>
where
    T: 'static,
    F: FnOnce(&Co) -> Result<T, Error> + 'static,
{
    Stackful::new(stack::default_stack_size(), f)
}

impl<T: 'static> Stackful<T> {
    pub(crate) fn new<F>(stack_size: usize, f: F) -> Stackful<T>
    where
        F: FnOnce(&Co) -> Result<T, Error> + 'static,
    {
        overflow::prepare();
        let mut this = Stackful {
            state: State::Done,
            ambient: Ambient::new(Context::empty()),
            guard: (0, 0),
            size: 0,
        };
        if let Err(err) = stack::check_size(stack_size) {
            this.state = State::Failed(err);
            return this;
        }
        match PooledStack::take(stack_size) {
            Ok(stack) => {
                this.guard = stack.guard();
                this.size = stack.size();
                let body =
                    Coroutine::with_stack(stack, move |yielder: &Yielder<Resume, Yield>, first| {
                        root(yielder, first, f)
                    });
                this.state = State::Live(body);
            }
            Err(err) => {
                this.state = State::Failed(Error::with_source(
                    ErrorKind::Io,
                    format!("cannot map a coroutine stack of {stack_size} bytes"),
                    err,
                ));
            }
        }
        this
    }

    /// Whether the body has returned (or failed, or was never started and
    /// had an error thrown in).
    pub fn finished(&self) -> bool {
        matches!(self.state, State::Done)
    }
}

/// The body's first frame on the new stack.
fn root<T, F>(yielder: &Yielder<Resume, Yield>, first: Resume, f: F) -> Result<T, Error>
where
    F: FnOnce(&Co) -> Result<T, Error>,
{
    let co = Co { yielder };
    CURRENT.with(|c| c.set(&co));
    match first {
        Resume::Start => {}
        Resume::Error(err) => return Err(err),
        Resume::Value(_) => {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "a stackful generator must be started with Resume::Start",
            ))
        }
    }
    // Nothing unwinds across the switch: a panic (or the unwinding of a
    // dropped coroutine, whose result nobody reads) stops here.
    callback::catch_value(|| f(&co)).and_then(|result| result)
}

/// The thread-local state of a switch into a coroutine, restored on drop
/// (after the switch back, or if it unwinds).
struct Switch<'a> {
    ambient: &'a mut Ambient,
    current: *const Co,
    unwinding: bool,
    guard: [usize; 3],
}

impl<'a> Switch<'a> {
    #[inline]
    fn enter(ambient: &'a mut Ambient, guard: (usize, usize), size: usize) -> Switch<'a> {
        ambient.swap();
        Switch {
            ambient,
            current: CURRENT.with(Cell::get),
            unwinding: UNWINDING.with(|u| u.replace(false)),
            guard: overflow::enter(guard, size),
        }
    }
}

impl Drop for Switch<'_> {
    #[inline]
    fn drop(&mut self) {
        overflow::restore(self.guard);
        UNWINDING.with(|u| u.set(self.unwinding));
        CURRENT.with(|c| c.set(self.current));
        self.ambient.swap();
    }
}

impl<T: 'static> Generator for Stackful<T> {
    type Output = T;

    fn resume(&mut self, input: Resume) -> Step<T> {
        let Stackful {
            state,
            ambient,
            guard,
            size,
            ..
        } = self;
        let body = match state {
            State::Live(body) => body,
            State::Failed(_) => {
                let State::Failed(err) = std::mem::replace(state, State::Done) else {
                    unreachable!()
                };
                return Step::Return(Err(err));
            }
            State::Done => {
                return Step::Return(Err(Error::new(
                    ErrorKind::InvalidState,
                    "stackful generator resumed after it finished",
                )))
            }
        };
        if !body.started() {
            if let Resume::Error(err) = input {
                // Thrown in before the first step: the body never runs.
                *state = State::Done;
                return Step::Return(Err(err));
            }
            // The body starts under the context its first resumer runs in
            // (a Runner's: errors from callbacks it schedules are thrown in).
            *ambient = Ambient::new(Context::capture());
        }
        let outcome = {
            let _switch = Switch::enter(ambient, *guard, *size);
            body.resume(input)
        };
        ambient::drain();
        match outcome {
            CoroutineResult::Yield(point) => Step::Yield(point),
            CoroutineResult::Return(result) => {
                // The stack goes back to the pool now, not when the Runner
                // lets go of the generator.
                *state = State::Done;
                Step::Return(result)
            }
        }
    }
}

impl<T> Drop for Stackful<T> {
    fn drop(&mut self) {
        let Stackful {
            state,
            ambient,
            guard,
            size,
        } = self;
        if let State::Live(body) = state {
            if body.started() && !body.done() {
                // Suspended: unwind its stack now, on its own terms (its
                // locals' destructors run as the coroutine), so nothing
                // leaks and the stack can be reused.
                {
                    let _switch = Switch::enter(ambient, *guard, *size);
                    UNWINDING.with(|u| u.set(true));
                    body.force_unwind();
                }
                ambient::drain();
            }
        }
    }
}

impl<T> fmt::Debug for Stackful<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Live(body) if body.started() => "suspended",
            State::Live(_) => "not started",
            State::Failed(_) => "failed",
            State::Done => "done",
        };
        f.debug_struct("Stackful").field("state", &state).finish()
    }
}
