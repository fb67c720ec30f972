//! Frames entered lazily: a context that is *logically* current, but made
//! (seated on the stack, made current) only when something captures the
//! stack. Most requests and coroutines that enter a context schedule
//! nothing under it, and then there is nothing to make and nothing to
//! tear down.
//!
//! [`defer`] puts a frame on top of the current stack, unmade; while it is
//! unmade, [`Context::capture`] (and so every `add_callback`,
//! `add_timeout`, `add_done_callback`, `wrap`, ...) first makes the unmade
//! frames, oldest first, each over the one before, and then captures. A
//! context entered meanwhile ([`enter`](super::enter), `NullContext::run`,
//! another `ExceptionStackContext::run`) hides them, as it hides the
//! stack, until it ends. The [`Deferral`] leaves the frame when dropped:
//! an unmade frame is forgotten, a made one is left as any context is (the
//! stack before it current again).
//!
//! So what a callback captures is exactly what it would have captured had
//! the frame been entered eagerly; only the cost moved to the first
//! capture.

use std::rc::Rc;

use super::{Context, CURRENT};

/// A frame to make when the stack is first captured.
pub(crate) trait Deferred {
    /// Makes the frame over the current stack (which is the stack it was
    /// deferred on) and returns the stack to make current, or `None` to
    /// enter nothing after all.
    fn make(self: Rc<Self>) -> Option<Context>;
}

/// A deferred frame not yet left (in `Current::pending`).
pub(super) struct Pending {
    /// `None`: left out of turn (see `Deferral::drop`), popped once the
    /// frames above it are.
    frame: Option<Rc<dyn Deferred>>,
    made: bool,
    /// Once made (and entered): the stack current before, back when left.
    prev: Option<Context>,
}

/// Enters `frame` lazily, on top of the current stack (see the module
/// docs), until the returned [`Deferral`] is dropped.
#[inline]
pub(crate) fn defer(frame: Rc<dyn Deferred>) -> Deferral {
    CURRENT.with(|c| {
        let mut c = c.borrow_mut();
        c.pending.push(Pending {
            frame: Some(frame),
            made: false,
            prev: None,
        });
        c.unmade += 1;
        Deferral(c.pending.len() - 1)
    })
}

/// [`Context::capture`] with unmade frames on the current stack: they are
/// made, oldest first, then the stack captured.
#[cold]
#[inline(never)]
pub(super) fn capture_making() -> Context {
    // Zero first: what a frame's `make` captures is the stack below it.
    let unmade = CURRENT.with(|c| std::mem::replace(&mut c.borrow_mut().unmade, 0));
    for nth in (1..=unmade).rev() {
        // The `nth` unmade frame from the top; the others are made, or
        // hidden below a context entered after them.
        let found = CURRENT.with(|c| {
            let c = c.borrow();
            c.pending
                .iter()
                .enumerate()
                .rev()
                .filter(|(_, e)| !e.made && e.frame.is_some())
                .nth(nth - 1)
                .and_then(|(at, e)| Some((at, e.frame.clone()?)))
        });
        let Some((at, frame)) = found else {
            continue;
        };
        // Library code (the web layer's request frame, a runner's), with
        // no borrow held: it may capture, which finds nothing unmade.
        let made = frame.make();
        CURRENT.with(|c| {
            let c = &mut *c.borrow_mut();
            let prev = made.map(|ctx| std::mem::replace(&mut c.ctx, ctx));
            if let Some(e) = c.pending.get_mut(at) {
                e.made = true;
                e.prev = prev;
            }
        });
    }
    CURRENT.with(|c| c.borrow().ctx.clone())
}

/// A frame entered by [`defer`] (its place among the pending ones): left
/// when dropped (on unwinding too).
#[must_use = "dropping the deferral leaves the frame at once"]
pub(crate) struct Deferral(usize);

impl Drop for Deferral {
    fn drop(&mut self) {
        let at = self.0;
        // What is left goes with no borrow held: the frame's handle, and
        // the frame itself if it was made (what it holds).
        let left = CURRENT.with(|c| {
            let c = &mut *c.borrow_mut();
            let left = if at + 1 == c.pending.len() {
                // The innermost: the usual case.
                let left = c.pending.pop()?;
                while c.pending.last().is_some_and(|e| e.frame.is_none()) {
                    c.pending.pop();
                }
                left
            } else {
                // Out of turn, as a stackful coroutine's frames may be
                // (made when it switched, see `swap_current`): its place
                // stays, empty, so the others' do not move.
                let e = c.pending.get_mut(at)?;
                Pending {
                    frame: e.frame.take(),
                    made: e.made,
                    prev: e.prev.take(),
                }
            };
            let Pending { frame, made, prev } = left;
            if !made {
                c.unmade = c.unmade.saturating_sub(1);
                return Some((frame, None));
            }
            // As a context entered eagerly is left.
            let frame_ctx = prev.map(|prev| std::mem::replace(&mut c.ctx, prev));
            Some((frame, frame_ctx))
        });
        drop(left);
    }
}
