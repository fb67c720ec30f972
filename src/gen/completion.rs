//! Where an `async` coroutine's result goes, and what its driver tells
//! the receiver on the way: a crate-internal hook, so that a caller that
//! watches its coroutine (the web layer's `run_async`, which must be
//! able to end it when the client leaves and to know when it waits) does
//! so from the driver, without wrapping the block in a second `async`
//! block of its own.
//!
//! ```
//! use squall::{gen, Future, IOLoop};
//!
//! // What `gen::coroutine` does with an `async` block: its result goes
//! // to a plain closure, the future's completion (hooks unused).
//! let io_loop = IOLoop::new()?;
//! let n = io_loop.run_sync(|| gen::coroutine(async { Ok(Future::ready(1).await? + 1) }), None)?;
//! assert_eq!(n, 2);
//! # Ok::<(), squall::Error>(())
//! ```

use std::rc::Rc;

use super::Runner;
use crate::callback::{self, Origin};
use crate::error::Error;
use crate::stack_context::{Context, Deferred};

/// The receiver of an `async` coroutine's result (see the module docs).
pub(crate) trait Completion<T>: 'static {
    /// Asked before each poll: an error ends the coroutine instead, the
    /// block dropped unpolled, as if it had returned the error.
    #[inline]
    fn refused(&self) -> Option<Error> {
        None
    }

    /// The block's poll was pending: it waits, on `runner`.
    #[inline]
    fn waiting(&mut self, _runner: &Runner) {}

    /// The coroutine's result (the block dropped already).
    fn complete(self, result: Result<T, Error>);

    /// What can carry the coroutine's runner frame through its first poll
    /// instead of the thread's stack (see [`Carrier`]), if anything.
    #[inline]
    fn carrier(&self) -> Option<Rc<dyn Carrier>> {
        None
    }
}

/// The owner of a deferred frame that is current, unmade and innermost
/// (the web layer's request, just after `run_async` deferred its frame):
/// it can carry the coroutine's runner frame as its rider
/// ([`Deferred::rider`]) through the first poll, which then costs no look
/// at the thread's stack.
pub(crate) trait Carrier {
    /// Carries `frame`, if its own frame is still deferred and unmade and
    /// it carries none; whether it does.
    fn carry(&self, frame: Rc<dyn Deferred>) -> bool;
    /// Lets go of the frame it carries.
    fn let_go(&self);
}

/// A closure as a [`Completion`] with no hooks.
pub(crate) struct Plain<D>(pub(crate) D);

impl<T, D> Completion<T> for Plain<D>
where
    D: FnOnce(Result<T, Error>) + 'static,
{
    #[inline]
    fn complete(self, result: Result<T, Error>) {
        (self.0)(result)
    }
}

/// A [`Completion`] whose result is delivered under the stack its
/// coroutine was started on (`engine`'s way), for a coroutine that waited
/// and so ends on some later loop iteration; its hooks are `done`'s.
pub(crate) struct InCaller<D> {
    pub(crate) done: D,
    pub(crate) ctx: Context,
}

impl<T, D: Completion<T>> Completion<T> for InCaller<D> {
    #[inline]
    fn refused(&self) -> Option<Error> {
        self.done.refused()
    }

    #[inline]
    fn waiting(&mut self, runner: &Runner) {
        self.done.waiting(runner)
    }

    fn complete(self, result: Result<T, Error>) {
        let InCaller { done, ctx } = self;
        let name = std::any::type_name::<D>();
        callback::invoke(&ctx, Origin::Callback, name, || {
            done.complete(result);
            Ok(())
        })
    }
}
