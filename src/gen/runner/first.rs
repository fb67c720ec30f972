//! A pooled runner's first step: what `shell.rs` drives an `async`
//! coroutine's first poll with (see there), apart from the runner proper.
//! The runner is made blank (no generator), its first step runs in place
//! of `run`'s, and if the coroutine finishes in it the runner is made
//! ready for the next coroutine instead of being dropped.

use std::cell::Cell;
use std::rc::Rc;

use super::{ErasedGen, Inner, Runner, Running, MAX_NESTED_RUNS, PUT_OFF, RUN_DEPTH};
use crate::gen::Carrier;
use crate::gen::YieldPoint;
use crate::stack_context::{Context, Deferred};

/// A pooled runner's context frame, entered lazily for its first poll:
/// seated on the caller's stack only if something captures the stack
/// during the poll (or the coroutine waits).
impl Deferred for Inner {
    fn make(self: Rc<Self>) -> Option<Context> {
        self.seated.set(true);
        let mut ctx = self.ctx.borrow_mut();
        let reseated = ctx.reparent(Context::capture());
        let made = ctx.clone();
        drop(ctx);
        // `Ok`: the stack it sat on while idle (the empty one), dropped
        // with no borrow held all the same. (`Err`, a frame shared already,
        // cannot happen: a fresh runner's frame is not shared, and a pooled
        // one was reparented when it was recycled.)
        drop(reseated);
        Some(made)
    }
}

impl Runner {
    /// Whether this is the only strong handle on the runner.
    pub(in crate::gen) fn is_only_handle(&self) -> bool {
        Rc::strong_count(&self.inner) == 1
    }

    /// Whether `run` would queue rather than run here (nested too deep).
    pub(in crate::gen) fn too_deep() -> bool {
        RUN_DEPTH.with(Cell::get) >= MAX_NESTED_RUNS
    }

    /// The first step of a runner made [`blank`](Self::blank): `first`
    /// runs as `resume` would, marked running, inside the runner's context
    /// (and the trace's step). If it returns `true` it has installed a
    /// generator waiting on a point (`wait_on`), and the runner goes on as
    /// `run` does. Not when [`too_deep`](Self::too_deep).
    ///
    /// The context is entered lazily (`stack_context::defer`): its frame
    /// is seated on the caller's stack, and made current, only when
    /// something captures the stack during the step, as anything that
    /// schedules a callback does; a coroutine that waits has it made
    /// before it goes on. One that finishes having scheduled nothing
    /// never had it made, and there is nothing to lift off.
    pub(in crate::gen) fn run_first<R>(
        &self,
        carrier: Option<&dyn Carrier>,
        first: impl FnOnce(&Runner) -> (bool, R),
    ) -> R {
        let inner = &*self.inner;
        let depth = RUN_DEPTH.with(Cell::get);
        inner.started.set(true);
        let value = {
            let _running = Running::enter(self, depth);
            // Carried by the caller's deferred frame (a request's), or
            // deferred on the thread's stack.
            let was_seated = inner.seated.get();
            let carried = carrier.filter(|c| c.carry(self.inner.clone()));
            let _deferral = match carried {
                None => Some(crate::stack_context::defer_riding(self.inner.clone())),
                Some(_) => None,
            };
            let _carried = carried.map(|carrier| Carried {
                carrier,
                runner: self,
                was_seated,
            });
            log::trace!(target: "squall::gen", "send");
            let (more, value) = first(self);
            if more {
                self.steps();
            }
            value
        };
        if depth == 0 {
            while let Some(runner) = PUT_OFF.with(|q| q.borrow_mut().pop_front()) {
                runner.run_here(0);
            }
        }
        value
    }

    /// Gives a blank runner its generator, waiting on `point` (started by
    /// the caller), as `steps` does when a generator yields.
    pub(in crate::gen) fn wait_on(&self, gen: Box<dyn ErasedGen>, point: Box<dyn YieldPoint>) {
        *self.inner.gen.borrow_mut() = Some(gen);
        log::trace!(target: "squall::gen", "start yield point");
        *self.inner.point.borrow_mut() = Some(point);
    }

    /// Makes a finished runner (one [`conclude`](Self::conclude)d without
    /// deactivating) blank again for the next coroutine, if nothing but
    /// its caller and its own parts (`weak` weak handles) can reach it:
    /// nobody holds it, nobody captured its context. Its context is lifted
    /// off the stack it sat on (re-seated by [`reuse`](Self::reuse)). It
    /// stays marked finished meanwhile, so a stray `run` does nothing.
    pub(in crate::gen) fn recycle(&self, weak: usize) -> bool {
        let inner = &*self.inner;
        if Rc::strong_count(&self.inner) != 1
            || Rc::weak_count(&self.inner) != weak
            || !inner.finished.get()
            || inner.running.get()
            || inner.gen.borrow().is_some()
            || inner.pending_error.borrow().is_some()
            || inner.recording.borrow().is_some()
            || inner.deactivate.borrow().is_none()
            // A key or point made after the end (a yield point's `Drop`
            // registering a callback) would reach the next coroutine.
            || !inner.keys.borrow().is_empty()
            || inner.point.borrow().is_some()
        {
            return false;
        }
        let lifted = inner.ctx.borrow_mut().reparent(Context::empty());
        // The stack it sat on may end here: dropped with no borrow held.
        if lifted.is_err() {
            return false;
        }
        drop(lifted);
        inner.seated.set(false);
        inner.started.set(false);
        inner.had_exception.set(false);
        inner.woken.set(false);
        true
    }

    /// Lifts a finished runner's context frame off the stack it sat on,
    /// if nobody else holds the frame; whether it could. What the old
    /// stack held goes (dropped with no borrow held).
    pub(in crate::gen) fn lift_context(&self) -> bool {
        let lifted = self.inner.ctx.borrow_mut().reparent(Context::empty());
        let lifted = lifted.is_ok();
        if lifted {
            self.inner.seated.set(false);
        }
        lifted
    }

    /// After a first step ([`run_first`](Self::run_first)): whether
    /// nothing but its caller holds the runner and its context frame was
    /// never made. With a `Polling` that lent it to nobody (and a waker
    /// nobody kept or woke, see `shell.rs`), nothing reached it: it is as
    /// it was before the step, but for being started.
    #[inline]
    pub(in crate::gen) fn untouched(&self) -> bool {
        !self.seated() && Rc::strong_count(&self.inner) == 1
    }

    /// Whether its context frame may sit on some stack (made since it was
    /// last lifted off).
    #[inline]
    pub(in crate::gen) fn seated(&self) -> bool {
        self.inner.seated.get()
    }

    /// Ends an [`untouched`](Self::untouched) runner's first step: nothing
    /// registered, nothing to drop, its frame never made; it stays ready
    /// for the next coroutine, marked finished meanwhile (as a recycled
    /// one is) so that a stray `run` does nothing.
    #[inline]
    pub(in crate::gen) fn end_untouched(&self) {
        log::trace!(target: "squall::gen", "return");
        self.inner.finished.set(true);
        self.inner.started.set(false);
    }

    /// Unmarks a recycled runner finished: a new coroutine's runner, made
    /// without allocating. (Its context is seated on the caller's stack
    /// by [`run_first`](Self::run_first), lazily.)
    pub(in crate::gen) fn reuse(&self) -> bool {
        self.inner.finished.set(false);
        true
    }

    /// The stack the runner's context sits on: its caller's, once made
    /// (see [`run_first`](Self::run_first)).
    pub(in crate::gen) fn caller_context(&self) -> Context {
        // Made now if it was not: a coroutine that waits needs it.
        drop(Context::capture());
        self.inner.ctx.borrow().parent()
    }
}

/// A runner frame carried by its caller's deferred frame through a first
/// step: let go of when the step ends (on unwinding too); if something
/// made it meanwhile, the caller's frame is current again.
struct Carried<'a> {
    carrier: &'a dyn Carrier,
    runner: &'a Runner,
    /// Its frame sat on some stack before the step (a fresh runner's):
    /// whether it was made in the step cannot be told, so it is looked at.
    was_seated: bool,
}

impl Drop for Carried<'_> {
    #[inline]
    fn drop(&mut self) {
        self.carrier.let_go();
        if self.was_seated || self.runner.seated() {
            crate::stack_context::leave_carried_rider();
        }
    }
}
