//! The one choke point every user callback runs through.
//!
//! Callbacks, timeouts, IO handlers, done-callbacks and remote callbacks all end
//! up in [`invoke`]: it re-establishes the stack context captured when the
//! callback was scheduled, catches a panic, and hands an error (returned or
//! panicked) to that context, or logs it. Keeping this in one place is what lets
//! `stack_context` route errors without the loop knowing about it.
//!
//! It sits on [`stack_context`](crate::stack_context), which sits on `catch`
//! (what a callback's return value or panic means: [`CallbackReturn`]); the
//! [`Future`](crate::Future) sits on it. Nothing below imports from above.
//!
//! ```
//! use squall::{CallbackReturn, Error};
//!
//! fn check<R: CallbackReturn>(_: impl FnOnce() -> R) {}
//! check(|| ());
//! check(|| -> Result<u32, Error> { Ok(7) });
//! ```

use crate::error::Error;
use crate::stack_context::{self, Context};

// What the rest of the crate reaches through this module: the layer below.
#[cfg(feature = "stackful")]
pub(crate) use crate::catch::swap_catch_depth;
pub use crate::catch::CallbackReturn;
pub(crate) use crate::catch::{
    begin_capture, catch, catch_value, end_capture, report_unhandled, Origin,
};

/// A callback erased to the form the loop stores.
pub(crate) type BoxedCallback = Box<dyn FnOnce() -> Result<(), Error>>;

/// Runs `f` under `ctx`, catching panics, and routes any error.
///
/// `name` is the callback's type name, logged so a failure says what failed.
#[inline]
pub(crate) fn invoke<F>(ctx: &Context, origin: Origin, name: &'static str, f: F)
where
    F: FnOnce() -> Result<(), Error>,
{
    // The catch is outside `enter`, so a panicking guard factory is caught too,
    // and the guards are dropped before the error is routed.
    let result = catch(|| stack_context::enter(ctx, f));
    if let Err(err) = result {
        stack_context::route(ctx, err, origin, name);
    }
}
