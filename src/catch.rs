//! The bottom layer of running user code: how whatever a callback ends with
//! — a value, an `Err`, a panic — becomes one `Result<(), Error>`, and where
//! an error ends up when nobody handles it.
//!
//! The layers above, each importing only the ones below it:
//! `catch` (this module) <- [`stack_context`](crate::stack_context)
//! (routes an error to a handler) <- `callback` (runs a scheduled callback
//! under its context) <- [`future`](crate::future) (done-callbacks are
//! callbacks; a callback may return a future).
//!
//! ```
//! use squall::{CallbackReturn, Error, Future};
//!
//! // Anything a callback may return: (), Result<T, Error> (the value is
//! // dropped, the error reported), a Future whose later failure is reported
//! // like a returned error, or nothing at all (a callback that panics).
//! fn check<R: CallbackReturn>(_: impl FnOnce() -> R) {}
//! fn step() -> std::io::Result<()> {
//!     Ok(())
//! }
//! check(|| ());
//! check(|| panic!("a panic is reported like an error"));
//! check(|| {
//!     step()?; // an io::Error converts with `?`: the error type is inferred
//!     Ok(())
//! });
//! check(|| -> Result<u32, Error> { Ok(7) });
//! check(|| Future::<u32>::new());
//! // Another error type converts at the end, as with `?` elsewhere:
//! check(|| step().map_err(Error::from));
//! ```
//!
//! In edition 2024 a closure that never returns has the return type `!`
//! (not `()`), which is a `CallbackReturn` too:
//!
//! ```edition2024
//! let io_loop = squall::IOLoop::new()?;
//! io_loop.add_callback(|| panic!("reported, and the loop goes on"));
//! io_loop.add_callback(|| unreachable!());
//! # Ok::<(), squall::Error>(())
//! ```

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};

use crate::error::{Error, ErrorKind};

/// What a callback's return value means for error handling.
///
/// Implemented for `()`, for `Result<T, Error>` (any `T`: the value is
/// dropped), for [`Future<T>`](crate::Future) and for the never type `!` (a
/// callback that only panics). A callback that returns a future has that
/// future's later failure reported exactly as if the callback had returned
/// the error, so errors are never silently dropped.
///
/// Why exactly these: the error type is [`Error`] and nothing else, so that
/// `|| { step()?; Ok(()) }` infers it (one `Result` implementation leaves the
/// compiler one choice; a generic `E: Into<Error>` would leave it none). A
/// callback with another error type converts at the end
/// (`.map_err(Error::from)`), as `?` would; one that can only fail names
/// its value type, which nothing else decides: `|| Err::<(), _>(err)`.
/// The `!` implementation is what
/// lets `|| panic!("..")` and `|| loop { .. }` compile: such a closure's
/// return type falls back to `()` in edition 2021 (an error on current Rust,
/// `dependency_on_unit_never_type_fallback`) and to `!` in edition 2024.
pub trait CallbackReturn: 'static {
    /// Turns the value into "ok" or the error to report.
    fn into_outcome(self) -> Result<(), Error>;
}

impl CallbackReturn for () {
    #[inline]
    fn into_outcome(self) -> Result<(), Error> {
        Ok(())
    }
}

impl<T: 'static> CallbackReturn for Result<T, Error> {
    #[inline]
    fn into_outcome(self) -> Result<(), Error> {
        // Tornado ignores a callback's return value; only the error matters.
        self.map(drop)
    }
}

// The implementation for `Future<T>` is in `future.rs`: a future is built on
// callbacks, not the other way round.

mod never {
    /// The output type of a function pointer type: `<fn() -> ! as
    /// FnOutput>::Output` names the never type on stable Rust, where `!` may
    /// only be written as a return type (the `never_type` feature is unstable).
    pub trait FnOutput {
        /// The function's return type.
        type Output;
    }

    impl<O> FnOutput for fn() -> O {
        type Output = O;
    }

    /// The never type `!`, for the implementation below.
    pub type Never = <fn() -> ! as FnOutput>::Output;
}

/// A callback that never returns (`|| panic!("..")`, `|| loop { .. }`).
impl CallbackReturn for never::Never {
    #[inline]
    fn into_outcome(self) -> Result<(), Error> {
        match self {}
    }
}

/// Where a callback came from, for log lines.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Origin {
    Callback,
    Timeout,
    Handler(i32),
    DoneCallback,
    Remote,
    Periodic,
    Context,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Callback => f.write_str("callback"),
            Origin::Timeout => f.write_str("timeout callback"),
            Origin::Handler(fd) => write!(f, "handler for fd {fd}"),
            Origin::DoneCallback => f.write_str("future done-callback"),
            Origin::Remote => f.write_str("remote callback"),
            Origin::Periodic => f.write_str("periodic callback"),
            Origin::Context => f.write_str("stack context"),
        }
    }
}

/// Runs `f`, turning a panic into an [`Error`] of kind `Panic`.
#[inline]
pub(crate) fn catch<F>(f: F) -> Result<(), Error>
where
    F: FnOnce() -> Result<(), Error>,
{
    match catch_unwind_counted(f) {
        Ok(result) => result,
        Err(payload) => Err(panic_to_error(payload)),
    }
}

/// Runs `f`, turning a panic into an [`Error`] of kind `Panic`, for any value.
#[inline]
pub(crate) fn catch_value<T>(f: impl FnOnce() -> T) -> Result<T, Error> {
    catch_unwind_counted(f).map_err(panic_to_error)
}

thread_local! {
    /// How many of squall's `catch`es are on this thread's stack right now.
    static CATCH_DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// `catch_unwind`, keeping [`CATCH_DEPTH`] up to date.
#[inline]
fn catch_unwind_counted<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    CATCH_DEPTH.with(|d| d.set(d.get() + 1));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CATCH_DEPTH.with(|d| d.set(d.get() - 1));
    result
}

/// Replaces this thread's catch depth, returning the old one: a stackful
/// coroutine keeps its own, as it has its own stack.
#[cfg(feature = "stackful")]
#[inline]
pub(crate) fn swap_catch_depth(depth: u32) -> u32 {
    CATCH_DEPTH.with(|d| d.replace(depth))
}

/// Whether a squall `catch` is on the stack: an [`unwind`] would land in it.
#[inline]
pub(crate) fn in_catch() -> bool {
    CATCH_DEPTH.with(|d| d.get() > 0)
}

/// Unwinds with `err` as the payload, without calling the panic hook: this is
/// control flow (`raise`, an error `wrap` passes back to its caller), not a
/// bug, and it is reported where it lands. Only call it when [`in_catch`].
pub(crate) fn unwind(err: Error) -> ! {
    debug_assert!(in_catch());
    panic::resume_unwind(Box::new(err))
}

/// Converts a panic payload: a `squall::Error` raised with
/// `std::panic::panic_any(err)` comes back as itself, kind and all.
pub(crate) fn panic_to_error(payload: Box<dyn Any + Send>) -> Error {
    let payload = match payload.downcast::<Error>() {
        Ok(err) => return *err,
        Err(payload) => payload,
    };
    let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    };
    Error::new(ErrorKind::Panic, message)
}

thread_local! {
    /// Set by `testing` to collect errors nobody handled, so a test can fail on them.
    static UNHANDLED_SINK: RefCell<Option<Vec<Error>>> = const { RefCell::new(None) };
}

/// The end of the line for an error no stack context handled: log it.
pub(crate) fn report_unhandled(err: Error, origin: Origin, name: &'static str) {
    // A coroutine failed because its loop went away (a worker spawned with
    // `spawn_callback`) is shutdown, not an error: see `TeardownGuard`.
    if is_teardown(&err) {
        log::debug!("at loop teardown, in {origin} `{name}`: {err}");
        return;
    }
    log::error!("uncaught error in {origin} `{name}`: {err}");
    UNHANDLED_SINK.with(|sink| {
        if let Some(errors) = sink.borrow_mut().as_mut() {
            errors.push(err);
        }
    });
}

thread_local! {
    /// How many loops of this thread are dropping what they held.
    static TEARDOWN: Cell<u32> = const { Cell::new(0) };
}

/// Held while a loop drops its callbacks, timeouts and handlers (its
/// `close`, or its last handle dropped). A coroutine still waiting then (a
/// background worker spawned with `spawn_callback`) is failed with
/// [`ErrorKind::CallbackDropped`] so that it does not wait forever, and
/// usually returns that error: a clean shutdown, not something the user
/// could act on (asyncio says at most "Task was destroyed but it is
/// pending!"). So its result future counts as read, and an unhandled one
/// is logged at `debug`. The same error while the loop runs (a user
/// dropped a callback unheard) is reported as ever.
pub(crate) struct TeardownGuard(());

impl TeardownGuard {
    pub(crate) fn enter() -> TeardownGuard {
        let _ = TEARDOWN.try_with(|d| d.set(d.get() + 1));
        TeardownGuard(())
    }
}

impl Drop for TeardownGuard {
    fn drop(&mut self) {
        let _ = TEARDOWN.try_with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// Whether a loop of this thread is going away (see [`TeardownGuard`]), or
/// the thread itself is exiting (its thread-locals, a current loop among
/// them, already dropping).
pub(crate) fn tearing_down() -> bool {
    TEARDOWN.try_with(|d| d.get() > 0).unwrap_or(true)
}

/// Whether `err` is a coroutine's wait cut short by its loop going away
/// (see [`TeardownGuard`]): not worth an error line.
pub(crate) fn is_teardown(err: &Error) -> bool {
    err.kind() == ErrorKind::CallbackDropped && tearing_down()
}

/// Starts collecting unhandled errors on this thread; returns what was being
/// collected before, to restore with [`end_capture`].
pub(crate) fn begin_capture() -> Option<Vec<Error>> {
    UNHANDLED_SINK.with(|sink| sink.borrow_mut().replace(Vec::new()))
}

/// Stops collecting and returns what was collected.
pub(crate) fn end_capture(previous: Option<Vec<Error>>) -> Vec<Error> {
    UNHANDLED_SINK
        .with(|sink| std::mem::replace(&mut *sink.borrow_mut(), previous))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_payloads_convert() {
        let err = catch(|| panic!("boom {}", 1)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Panic);
        assert_eq!(err.message(), "boom 1");
        let err = catch(|| panic!("static")).unwrap_err();
        assert_eq!(err.message(), "static");
        let raised = Error::new(ErrorKind::Timeout, "late");
        let err = catch(|| std::panic::panic_any(raised.clone())).unwrap_err();
        assert!(err.ptr_eq(&raised));
        let err = catch(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Panic);
    }

    #[test]
    fn catch_depth_is_counted_and_restored() {
        assert!(!in_catch());
        catch(|| {
            assert!(in_catch());
            let inner = catch(|| unwind(Error::other("quiet")));
            assert_eq!(inner.unwrap_err().message(), "quiet");
            assert!(in_catch());
            panic!("loud");
        })
        .unwrap_err();
        assert!(!in_catch());
        assert_eq!(catch_value(|| 5).unwrap(), 5);
        assert!(!in_catch());
    }

    #[test]
    fn capture_collects_and_restores() {
        let outer = begin_capture();
        report_unhandled(Error::other("a"), Origin::Callback, "x");
        let inner = begin_capture();
        report_unhandled(Error::other("b"), Origin::Callback, "y");
        let got_inner = end_capture(inner);
        let got_outer = end_capture(outer);
        assert_eq!(got_inner.len(), 1);
        assert_eq!(got_inner[0].message(), "b");
        assert_eq!(got_outer.len(), 1);
        assert_eq!(got_outer[0].message(), "a");
    }
}
