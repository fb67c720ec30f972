//! Greenlet-style coroutines: straight-line code on the loop (feature `stackful`).
//!
//! TorMySQL makes a blocking-style driver asynchronous by running it in a
//! child greenlet: each IO call starts a non-blocking operation, switches to
//! the parent (the loop), and the operation's callback switches back. This
//! module is that, on stackful coroutines ([corosensei]): a child runs on a
//! small stack of its own, and [`wait`] parks it until a [`Future`] is done
//! while the loop serves everyone else.
//!
//! ```
//! use std::time::Duration;
//! use squall::{greenlet, Future, IOLoop};
//!
//! // An asynchronous function, as any squall code has them.
//! fn slow_double(x: u64) -> Future<u64> {
//!     let future = Future::new();
//!     let f = future.clone();
//!     IOLoop::current().call_later(Duration::from_millis(5), move || f.set_result(2 * x));
//!     future
//! }
//!
//! let io_loop = IOLoop::new()?;
//! let answer = io_loop.run_sync(|| greenlet::async_call_method(|| {
//!     // Reads top to bottom; each wait lets the loop run.
//!     let a = greenlet::wait(slow_double(10))?;
//!     greenlet::sleep(Duration::from_millis(1))?;
//!     let b = greenlet::wait(slow_double(a + 1))?;
//!     Ok(b)
//! }), None)?;
//! assert_eq!(answer, 42);
//!
//! // Outside a child there is nothing to switch from: a clear error.
//! let err = greenlet::wait(Future::ready(1)).unwrap_err();
//! assert_eq!(err.kind(), squall::ErrorKind::NotInCoroutine);
//! # Ok::<(), squall::Error>(())
//! ```
//!
//! # One engine
//! A child is a generator like any other: [`async_call_method(f)`](async_call_method)
//! is `gen::coroutine(gen::stackful(..))`, and the [`Runner`](crate::gen::Runner)
//! drives it. Waiting hands a yield point to the Runner and switches out; the
//! Runner resumes the child with the point's result. So every yield point
//! works ([`yield_point`]: `Task`, `Multi`, `with_timeout`...), an error
//! raised later by a callback the child scheduled is thrown into its current
//! wait, and a callback dropped uncalled (a loop closed under a sleeping
//! child) makes the wait return [`ErrorKind::CallbackDropped`](crate::ErrorKind::CallbackDropped)
//! instead of parking the child for ever.
//!
//! # Rules
//! - A panic inside a child becomes the future's error (kind `Panic`); it
//!   never unwinds across a switch, and the loop goes on.
//! - A child starts at once, inside `async_call_method`, and runs until its
//!   first wait on something not done yet (Python's `child.switch()`).
//!   Waiting on a future that is already done does not switch at all.
//! - [`wait`] takes the future's value out ([`Future::take_result`]).
//! - Stacks are small (64 KiB by default, plus a guard page) and reused from
//!   a per-thread pool. Running off one aborts the process with a message
//!   saying so, never corrupts memory. Deep recursion needs a
//!   [`Builder::stack_size`].
//! - A child's stack is small, so only a few future completions and Runner
//!   runs nest on it: when code in a child completes a future that starts a
//!   long chain (coroutines waiting on each other), the first links run at
//!   once and the rest on the parent's stack as soon as the child switches
//!   out — wait on the end of the chain rather than polling it.
//! - A suspended child that is dropped (its generator dropped by hand, say)
//!   is unwound: the destructors of its locals run, and its stack goes back
//!   to the pool. From then on its waits fail at once.
//! - Everything is per thread, like the loop.
//!
//! [corosensei]: https://docs.rs/corosensei

mod ambient;
mod child;
mod overflow;
mod stack;
mod stream;

use std::time::Duration;

pub use child::{in_coroutine, stackful, Co, Stackful};
pub use stack::{
    default_stack_size, set_default_stack_size, set_stack_pool_limit, stack_stats, StackStats,
    DEFAULT_POOL_LIMIT, DEFAULT_STACK_SIZE, MAX_STACK_SIZE, MIN_STACK_SIZE,
};
pub use stream::Stream;

use crate::error::Error;
use crate::future::Future;
use crate::gen::{self, Value, YieldPoint};

/// Runs `f` in a child coroutine on the current loop and returns a Future of
/// its result: TorMySQL's `async_call_method`.
///
/// The child starts at once and runs until it first waits; the future gets
/// its return value, its error, or its panic (as an error of kind `Panic`).
pub fn async_call_method<T, F>(f: F) -> Future<T>
where
    T: 'static,
    F: FnOnce() -> Result<T, Error> + 'static,
{
    Builder::new().spawn(f)
}

/// [`async_call_method`], shorter.
pub fn spawn<T, F>(f: F) -> Future<T>
where
    T: 'static,
    F: FnOnce() -> Result<T, Error> + 'static,
{
    async_call_method(f)
}

/// Options for a coroutine: its stack size.
///
/// ```
/// use squall::{greenlet, IOLoop};
///
/// fn depth(n: u64) -> u64 { if n == 0 { 0 } else { 1 + depth(n - 1) } }
///
/// let io_loop = IOLoop::new()?;
/// let deep = io_loop.run_sync(|| {
///     greenlet::Builder::new().stack_size(1 << 20).spawn(|| Ok(depth(std::hint::black_box(5_000))))
/// }, None)?;
/// assert_eq!(deep, 5_000);
/// # Ok::<(), squall::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Builder {
    stack_size: Option<usize>,
}

impl Builder {
    /// Default options.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Usable stack bytes (rounded up to whole pages; a guard page is
    /// added). Outside [`MIN_STACK_SIZE`]`..=`[`MAX_STACK_SIZE`], the
    /// coroutine fails at once with [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument).
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    fn size(&self) -> usize {
        self.stack_size.unwrap_or_else(default_stack_size)
    }

    /// [`stackful`] with these options.
    pub fn stackful<T, F>(&self, f: F) -> Stackful<T>
    where
        T: 'static,
        F: FnOnce(&Co) -> Result<T, Error> + 'static,
    {
        Stackful::new(self.size(), f)
    }

    /// [`async_call_method`] with these options.
    pub fn spawn<T, F>(&self, f: F) -> Future<T>
    where
        T: 'static,
        F: FnOnce() -> Result<T, Error> + 'static,
    {
        gen::coroutine(self.stackful(move |_| f()))
    }
}

/// Inside a child: switches to the loop until `future` is done, and returns
/// its result (taken out of the future). A future already done returns at
/// once.
///
/// # Errors
/// The future's error; [`ErrorKind::NotInCoroutine`](crate::ErrorKind::NotInCoroutine)
/// outside a child; [`ErrorKind::CallbackDropped`](crate::ErrorKind::CallbackDropped)
/// if the future is dropped without ever being completed.
pub fn wait<T: 'static>(future: Future<T>) -> Result<T, Error> {
    child::with_current(|co| co.wait(future))
}

/// Inside a child: waits for any gen [`YieldPoint`] (`Task`, `Multi`,
/// `with_timeout`, `WaitIterator::next`...) and returns its result.
///
/// # Errors
/// The point's error; [`ErrorKind::NotInCoroutine`](crate::ErrorKind::NotInCoroutine)
/// outside a child.
pub fn yield_point(point: impl YieldPoint) -> Result<Value, Error> {
    child::with_current(|co| co.yield_point(point))
}

/// Inside a child: lets the loop run for `delay` (Tornado's `gen.sleep`).
///
/// # Errors
/// [`ErrorKind::NotInCoroutine`](crate::ErrorKind::NotInCoroutine) outside a
/// child; [`ErrorKind::CallbackDropped`](crate::ErrorKind::CallbackDropped)
/// if the loop is closed first.
pub fn sleep(delay: Duration) -> Result<(), Error> {
    child::with_current(|co| co.yield_point(gen::sleep(delay)).map(drop))
}

/// Inside a child: lets the loop run the callbacks that are ready, then comes
/// back (Tornado's `gen.moment`).
///
/// # Errors
/// As [`sleep`].
pub fn moment() -> Result<(), Error> {
    child::with_current(|co| co.yield_point(gen::moment()).map(drop))
}

/// `Ok(())` inside a child, the [`NotInCoroutine`](crate::ErrorKind::NotInCoroutine)
/// error outside: check before starting an operation you would then wait for.
pub(crate) fn ensure_in_coroutine() -> Result<(), Error> {
    if in_coroutine() {
        Ok(())
    } else {
        Err(child::not_in_coroutine())
    }
}
