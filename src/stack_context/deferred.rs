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
//!
//! A frame deferred right on top of an unmade one, for a short while (a
//! coroutine's first poll inside a request's method, the usual async
//! handler), can [ride](defer_riding) on it instead of taking a place of
//! its own: it is made right after the frame it rides on, and left
//! before it; deferring and leaving it is then one check and one store.

use std::rc::Rc;

use super::{Context, FrameKind, CURRENT};

/// A frame to make when the stack is first captured.
pub(crate) trait Deferred {
    /// Makes the frame over the current stack (which is the stack it was
    /// deferred on) and returns the stack to make current, or `None` to
    /// enter nothing after all.
    fn make(self: Rc<Self>) -> Option<Context>;

    /// A frame riding on this one, carried by this one's owner (see
    /// [`leave_carried_rider`]): made right after it, over it, before any
    /// frame deferred above it. The request's frame carries its first
    /// coroutine's this way, so that the coroutine's first poll costs no
    /// look at the thread's stack.
    fn rider(&self) -> Option<Rc<dyn Deferred>> {
        None
    }
}

/// A deferred frame not yet left (in `Current::pending`).
pub(super) struct Pending {
    /// `None`: left out of turn (see `Deferral::drop`), popped once the
    /// frames above it are.
    frame: Option<Rc<dyn Deferred>>,
    made: bool,
    /// Once made (and entered): the stack current before, back when left.
    prev: Option<Context>,
    /// Unmade and the oldest of the unmade frames on top of the stack:
    /// that stack (the marker stands for it and them meanwhile).
    base: Option<Context>,
    /// Its carried rider ([`Deferred::rider`]) made and entered: this
    /// frame's stack, back when the rider is left.
    rider_prev: Option<Context>,
}

/// A frame riding on a pending one (see [`defer_riding`]): one per thread.
pub(crate) struct Rider {
    /// The pending frame it rides on (its place).
    at: usize,
    frame: Rc<dyn Deferred>,
    /// Once made (and entered): the stack current before, back when left.
    prev: Option<Context>,
    made: bool,
}

/// Takes the rider if it rides on the frame at `at`.
trait TakeIfAt {
    fn take_if_at(&mut self, at: usize) -> Option<Rider>;
}

impl TakeIfAt for Option<Rider> {
    #[inline]
    fn take_if_at(&mut self, at: usize) -> Option<Rider> {
        debug_assert!(
            self.as_ref().map_or(true, |r| r.at != at),
            "a deferred frame was left before its rider"
        );
        match self {
            Some(r) if r.at == at => self.take(),
            _ => None,
        }
    }
}

/// The place a riding [`Deferral`] names instead of a pending one's.
const RIDING: usize = usize::MAX;

/// [`defer`], but riding on the innermost deferred frame if it is the
/// current one, unmade, and carries no rider yet (the usual case inside
/// an `async` handler's method: the request's frame); else as `defer`.
/// Observably the same as `defer`: made over the frame it rides on, right
/// after it, at the first capture; left when the deferral is dropped,
/// which is before the frame it rides on is left.
#[inline]
pub(crate) fn defer_riding(frame: Rc<dyn Deferred>) -> Deferral {
    let frame = CURRENT.with(|c| {
        let c = &mut *c.borrow_mut();
        let rides = c.rider.is_none()
            && c.ctx.is_marker()
            && c.pending.last().is_some_and(|e| {
                // (Not on a frame that carries a rider of its own.)
                !e.made && e.frame.as_ref().is_some_and(|f| f.rider().is_none())
            });
        if !rides {
            return Some(frame);
        }
        c.rider = Some(Rider {
            at: c.pending.len() - 1,
            frame,
            prev: None,
            made: false,
        });
        None
    });
    match frame {
        None => Deferral(RIDING),
        Some(frame) => defer(frame),
    }
}

/// Enters `frame` lazily, on top of the current stack (see the module
/// docs), until the returned [`Deferral`] is dropped. Deferrals nest as
/// entered contexts do: each is dropped while the stack it made current is
/// current again (after any context entered since has ended), last first.
#[inline]
pub(crate) fn defer(frame: Rc<dyn Deferred>) -> Deferral {
    CURRENT.with(|c| {
        let c = &mut *c.borrow_mut();
        let base = if c.ctx.is_marker() {
            // On top of unmade ones: the oldest keeps the stack.
            None
        } else {
            let marker = c
                .marker
                .get_or_insert_with(|| Context(None).push(FrameKind::Deferred));
            Some(std::mem::replace(&mut c.ctx, marker.clone()))
        };
        c.pending.push(Pending {
            frame: Some(frame),
            made: false,
            prev: None,
            base,
            rider_prev: None,
        });
        Deferral(c.pending.len() - 1)
    })
}

/// [`defer`], if the current stack is the one `id` names (see
/// [`current_id`](super::current_id)); `None`, with nothing deferred,
/// if it is another. One look at the thread's stack for both.
#[inline]
pub(crate) fn defer_on(frame: Rc<dyn Deferred>, id: usize) -> Option<Deferral> {
    let deferred = CURRENT.with(|c| {
        let c = &mut *c.borrow_mut();
        if c.ctx.is_marker() {
            // Unmade frames current: `current_id` makes them first.
            return Err(frame);
        }
        if c.ctx.id() != id {
            return Ok(None);
        }
        let marker = match &c.marker {
            Some(marker) => marker.clone(),
            None => return Err(frame),
        };
        let base = Some(std::mem::replace(&mut c.ctx, marker));
        c.pending.push(Pending {
            frame: Some(frame),
            made: false,
            prev: None,
            base,
            rider_prev: None,
        });
        Ok(Some(Deferral(c.pending.len() - 1)))
    });
    match deferred {
        Ok(deferral) => deferral,
        // The unusual cases, the long way.
        Err(frame) => (super::current_id() == id).then(|| defer(frame)),
    }
}

/// [`Context::capture`] with the marker current: the unmade frames on top
/// of the stack are made, oldest first, then the stack captured.
#[cold]
#[inline(never)]
pub(super) fn capture_making() -> Context {
    // The unmade frames the marker stands for: the innermost ones down to
    // the oldest (which keeps the stack); the stack current again first,
    // for each `make` to capture the stack below its frame.
    let oldest = CURRENT.with(|c| {
        let c = &mut *c.borrow_mut();
        let (at, base) = c
            .pending
            .iter_mut()
            .enumerate()
            .rev()
            .filter(|(_, e)| !e.made && e.frame.is_some())
            .find_map(|(at, e)| Some((at, e.base.take()?)))?;
        let marker = std::mem::replace(&mut c.ctx, base);
        Some((at, marker))
    });
    let Some((oldest, marker)) = oldest else {
        // Not reached (the marker is current only over unmade frames, and
        // deferrals are left in the order they were made: last first);
        // were it, the stack below is lost: the empty one stands in.
        debug_assert!(false, "a deferred frame was left out of order");
        let lost = CURRENT.with(|c| std::mem::take(&mut c.borrow_mut().ctx));
        drop(lost);
        return Context(None);
    };
    drop(marker);
    let mut at = oldest;
    loop {
        let next = CURRENT.with(|c| {
            let c = c.borrow();
            let e = c.pending.get(at)?;
            Some((!e.made).then(|| e.frame.clone()).flatten())
        });
        let Some(frame) = next else { break };
        if let Some(frame) = frame {
            // Library code (the web layer's request frame, a runner's),
            // with no borrow held: it may capture, which finds the stack
            // made.
            let carried = frame.rider();
            let made = frame.make();
            CURRENT.with(|c| {
                let c = &mut *c.borrow_mut();
                let prev = made.map(|ctx| std::mem::replace(&mut c.ctx, ctx));
                let e = &mut c.pending[at];
                e.made = true;
                e.prev = prev;
            });
            // The rider it carries, made over it (library code, no borrow
            // held).
            if let Some(carried) = carried {
                let made = carried.make();
                CURRENT.with(|c| {
                    let c = &mut *c.borrow_mut();
                    let prev = made.map(|ctx| std::mem::replace(&mut c.ctx, ctx));
                    c.pending[at].rider_prev = prev;
                });
            }
            let rider = CURRENT.with(|c| {
                let c = &mut *c.borrow_mut();
                // Its rider, made next: over it, before the frames above.
                c.rider
                    .as_ref()
                    .filter(|r| r.at == at && !r.made)
                    .map(|r| r.frame.clone())
            });
            if let Some(rider) = rider {
                let made = rider.make();
                CURRENT.with(|c| {
                    let c = &mut *c.borrow_mut();
                    let prev = made.map(|ctx| std::mem::replace(&mut c.ctx, ctx));
                    if let Some(r) = c.rider.as_mut() {
                        r.made = true;
                        r.prev = prev;
                    }
                });
            }
        }
        at += 1;
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
        if at == RIDING {
            return leave_riding();
        }
        // The usual case: the innermost frame, unmade. Its handle goes
        // with no borrow held.
        let quick = CURRENT.with(|c| {
            let c = &mut *c.borrow_mut();
            // (A rider still on it, not reached: riders are left first.)
            if at + 1 != c.pending.len() || c.pending[at].made || c.rider.is_some() {
                return Err(());
            }
            let e = c.pending.pop().expect("checked");
            // The oldest unmade: its stack current again, for the marker.
            let marker = e.base.map(|base| std::mem::replace(&mut c.ctx, base));
            Ok((e.frame, marker))
        });
        match quick {
            Ok(left) => drop(left),
            Err(()) => leave(at),
        }
    }
}

/// A riding frame left: forgotten if unmade, else the stack it sat on
/// current again. What is left goes with no borrow held.
#[inline]
fn leave_riding() {
    // (Kept small, so that the thread-local access is inlined.)
    let rider = CURRENT.with(|c| c.borrow_mut().rider.take());
    let Some(rider) = rider else { return };
    if rider.made {
        return leave_made_rider(rider);
    }
    drop(rider);
}

/// [`leave_riding`] for a rider that was made.
#[cold]
#[inline(never)]
fn leave_made_rider(rider: Rider) {
    debug_assert!(
        CURRENT.with(|c| c.borrow().pending.len()) == rider.at + 1,
        "a riding frame was left after the frame it rides on"
    );
    let Rider { frame, prev, .. } = rider;
    let frame_ctx =
        prev.map(|prev| CURRENT.with(|c| std::mem::replace(&mut c.borrow_mut().ctx, prev)));
    drop((frame, frame_ctx));
}

/// Leaves the carried rider ([`Deferred::rider`]) of the innermost
/// deferred frame, if it was made: the frame's stack current again. (An
/// unmade one is left by its owner, who forgets it.) What is left goes
/// with no borrow held.
#[cold]
#[inline(never)]
pub(crate) fn leave_carried_rider() {
    let left = CURRENT.with(|c| {
        let c = &mut *c.borrow_mut();
        let prev = c.pending.last_mut()?.rider_prev.take()?;
        Some(std::mem::replace(&mut c.ctx, prev))
    });
    drop(left);
}

/// A deferred frame left that was made, or out of turn.
#[cold]
#[inline(never)]
fn leave(at: usize) {
    // What is left goes with no borrow held: the frame's handle, and the
    // frame itself if it was made (what it holds).
    let left = CURRENT.with(|c| {
        let c = &mut *c.borrow_mut();
        let left = if at + 1 == c.pending.len() {
            let left = c.pending.pop()?;
            while c.pending.last().is_some_and(|e| e.frame.is_none()) {
                c.pending.pop();
            }
            left
        } else {
            // Out of turn, as a stackful coroutine's frames may be (made
            // when it switched, see `swap_current`): its place stays,
            // empty, so the others' do not move.
            let e = c.pending.get_mut(at)?;
            Pending {
                frame: e.frame.take(),
                made: e.made,
                prev: e.prev.take(),
                base: e.base.take(),
                rider_prev: e.rider_prev.take(),
            }
        };
        // (Not reached, as in `Deferral::drop`: a made rider's stack is
        // left as the frame's is, below.)
        let rider = c.rider.take_if_at(at);
        let Pending {
            frame,
            made,
            prev,
            base,
            rider_prev,
        } = left;
        // (A carried rider still entered, not reached: it is left first.)
        drop(rider_prev);
        if !made {
            // The stack back if it was the oldest unmade (and current).
            let marker = base.map(|base| std::mem::replace(&mut c.ctx, base));
            return Some((frame, marker, rider));
        }
        // As a context entered eagerly is left.
        let frame_ctx = prev.map(|prev| std::mem::replace(&mut c.ctx, prev));
        Some((frame, frame_ctx, rider))
    });
    drop(left);
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;

    use super::super::{current_id, enter, Context, ExceptionStackContext, FrameKind, NullContext};
    use super::{defer, defer_on, defer_riding, leave_carried_rider, Deferred};
    use crate::error::Error;

    /// A frame that counts how often it is made and records the errors
    /// offered to it.
    struct Probe {
        made: Cell<u32>,
        seen: RefCell<Vec<String>>,
        me: RefCell<Option<std::rc::Weak<Probe>>>,
        /// A rider it carries (`Deferred::rider`).
        carries: RefCell<Option<Rc<dyn Deferred>>>,
    }

    impl Probe {
        fn new() -> Rc<Probe> {
            let probe = Rc::new(Probe {
                made: Cell::new(0),
                seen: RefCell::new(Vec::new()),
                me: RefCell::new(None),
                carries: RefCell::new(None),
            });
            *probe.me.borrow_mut() = Some(Rc::downgrade(&probe));
            probe
        }
    }

    impl Deferred for Probe {
        fn make(self: Rc<Self>) -> Option<Context> {
            self.made.set(self.made.get() + 1);
            let me = self.me.borrow().clone().expect("set");
            let handler = move |err: &Error| {
                if let Some(me) = me.upgrade() {
                    me.seen.borrow_mut().push(err.to_string());
                }
                true
            };
            let kind = FrameKind::Exception(Rc::new(handler), Rc::new(Cell::new(true)));
            Some(Context::capture().push(kind))
        }

        fn rider(&self) -> Option<Rc<dyn Deferred>> {
            self.carries.borrow().clone()
        }
    }

    fn raise_in(ctx: &Context, msg: &str) {
        super::super::route(
            ctx,
            Error::other(msg.to_owned()),
            crate::catch::Origin::Callback,
            "test",
        );
    }

    #[test]
    fn a_frame_nothing_captures_is_never_made_and_leaves_no_trace() {
        let before = current_id();
        let probe = Probe::new();
        let deferral = defer(probe.clone());
        drop(deferral);
        assert_eq!(probe.made.get(), 0);
        assert_eq!(current_id(), before);
        assert_eq!(Rc::strong_count(&probe), 1);
    }

    #[test]
    fn the_first_capture_makes_it_and_leaving_restores_the_stack() {
        let before = current_id();
        let probe = Probe::new();
        let deferral = defer(probe.clone());
        let captured = Context::capture();
        let again = Context::capture();
        assert_eq!(probe.made.get(), 1, "made once");
        assert!(captured.same(&again));
        assert_ne!(current_id(), before);
        drop(deferral);
        assert_eq!(current_id(), before);
        // What was captured still reaches the frame's handler.
        raise_in(&captured, "late");
        assert_eq!(*probe.seen.borrow(), ["error: late"]);
    }

    #[test]
    fn a_context_entered_meanwhile_hides_the_unmade_frame() {
        let probe = Probe::new();
        let deferral = defer(probe.clone());
        let inside = NullContext::run(Context::capture);
        assert!(inside.same(&Context::empty()));
        // Entering the very stack the frame sits on hides it too.
        let below = Context::empty();
        let entered = enter(&below, Context::capture);
        assert!(entered.same(&below));
        assert_eq!(probe.made.get(), 0);
        // And it is back once they end.
        let made = Context::capture();
        assert_eq!(probe.made.get(), 1);
        raise_in(&made, "after");
        assert_eq!(*probe.seen.borrow(), ["error: after"]);
        drop(deferral);
    }

    #[test]
    fn nested_frames_are_made_oldest_first_each_over_the_one_before() {
        let outer = Probe::new();
        let inner = Probe::new();
        let d_outer = defer(outer.clone());
        let d_inner = defer(inner.clone());
        let captured = Context::capture();
        assert_eq!((outer.made.get(), inner.made.get()), (1, 1));
        // The inner handler sees the error first (and handles it).
        raise_in(&captured, "boom");
        assert_eq!(*inner.seen.borrow(), ["error: boom"]);
        assert!(outer.seen.borrow().is_empty());
        drop(d_inner);
        // The outer frame is current again, the inner left.
        let outer_only = Context::capture();
        raise_in(&outer_only, "outer");
        assert_eq!(*outer.seen.borrow(), ["error: outer"]);
        drop(d_outer);
        assert!(Context::capture().same(&Context::empty()));
    }

    #[test]
    fn a_frame_deferred_inside_a_user_context_sits_on_it() {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        let user = ExceptionStackContext::new(move |err: &Error| {
            s.borrow_mut().push(err.to_string());
            true
        });
        let probe = Probe::new();
        let mut captured = None;
        let _ = user.run(|| {
            let deferral = defer(probe.clone());
            captured = Some(Context::capture());
            drop(deferral);
        });
        let captured = captured.expect("ran");
        assert!(
            !captured.parent().same(&Context::empty()),
            "over the user's frame"
        );
        raise_in(&captured, "x");
        assert_eq!(*probe.seen.borrow(), ["error: x"]);
        assert!(seen.borrow().is_empty());
    }

    #[test]
    fn a_rider_nothing_captures_costs_no_place_and_leaves_no_trace() {
        let before = current_id();
        let base = Probe::new();
        let rider = Probe::new();
        let d_base = defer(base.clone());
        let d_rider = defer_riding(rider.clone());
        assert_eq!(d_rider.0, super::RIDING, "rides on the unmade frame");
        super::CURRENT.with(|c| assert_eq!(c.borrow().pending.len(), 1));
        drop(d_rider);
        assert_eq!(Rc::strong_count(&rider), 1);
        drop(d_base);
        assert_eq!((base.made.get(), rider.made.get()), (0, 0));
        assert_eq!(current_id(), before);
        super::CURRENT.with(|c| assert!(c.borrow().rider.is_none()));
    }

    #[test]
    fn a_rider_is_made_over_its_frame_and_left_before_it() {
        let base = Probe::new();
        let rider = Probe::new();
        let d_base = defer(base.clone());
        let d_rider = defer_riding(rider.clone());
        let captured = Context::capture();
        assert_eq!((base.made.get(), rider.made.get()), (1, 1));
        // The rider's handler sees the error first (and handles it).
        raise_in(&captured, "inner");
        assert_eq!(*rider.seen.borrow(), ["error: inner"]);
        assert!(base.seen.borrow().is_empty());
        assert!(captured.parent().parent().same(&Context::empty()));
        drop(d_rider);
        // The frame it rode on is current again, made.
        let after = Context::capture();
        assert!(after.same(&captured.parent()));
        raise_in(&after, "outer");
        assert_eq!(*base.seen.borrow(), ["error: outer"]);
        drop(d_base);
        assert!(Context::capture().same(&Context::empty()));
    }

    #[test]
    fn with_nothing_to_ride_on_or_a_rider_there_it_takes_a_place() {
        // Nothing pending: as `defer`.
        let alone = Probe::new();
        let d_alone = defer_riding(alone.clone());
        assert_ne!(d_alone.0, super::RIDING);
        drop(d_alone);
        // A rider there already: the next one is pending above it, made
        // after it, and a frame deferred above a rider rides on nothing.
        let base = Probe::new();
        let first = Probe::new();
        let second = Probe::new();
        let d_base = defer(base.clone());
        let d_first = defer_riding(first.clone());
        let d_second = defer_riding(second.clone());
        assert_ne!(d_second.0, super::RIDING);
        let captured = Context::capture();
        assert_eq!(
            (base.made.get(), first.made.get(), second.made.get()),
            (1, 1, 1)
        );
        raise_in(&captured, "x");
        assert_eq!(*second.seen.borrow(), ["error: x"]);
        // second over first over base.
        raise_in(&captured.parent(), "y");
        assert_eq!(*first.seen.borrow(), ["error: y"]);
        raise_in(&captured.parent().parent(), "z");
        assert_eq!(*base.seen.borrow(), ["error: z"]);
        drop(d_second);
        assert!(Context::capture().same(&captured.parent()));
        drop(d_first);
        assert!(Context::capture().same(&captured.parent().parent()));
        drop(d_base);
        assert!(Context::capture().same(&Context::empty()));
    }

    #[test]
    fn a_context_entered_meanwhile_hides_the_rider_too() {
        let base = Probe::new();
        let rider = Probe::new();
        let d_base = defer(base.clone());
        let d_rider = defer_riding(rider.clone());
        let inside = NullContext::run(Context::capture);
        assert!(inside.same(&Context::empty()));
        assert_eq!((base.made.get(), rider.made.get()), (0, 0));
        drop(d_rider);
        // Captured after the rider left: only the frame it rode on.
        let made = Context::capture();
        assert_eq!((base.made.get(), rider.made.get()), (1, 0));
        raise_in(&made, "b");
        assert_eq!(*base.seen.borrow(), ["error: b"]);
        drop(d_base);
    }

    #[test]
    fn defer_on_defers_only_on_the_stack_it_names() {
        let before = current_id();
        let probe = Probe::new();
        // Another stack current now: nothing deferred.
        let user = ExceptionStackContext::new(|_: &Error| true);
        let _ = user.run(|| assert!(defer_on(probe.clone(), before).is_none()));
        assert_eq!(Rc::strong_count(&probe), 1);
        // The stack it names: deferred, as `defer` does.
        let deferral = defer_on(probe.clone(), before).expect("deferred");
        let made = Context::capture();
        assert_eq!(probe.made.get(), 1);
        raise_in(&made, "on");
        assert_eq!(*probe.seen.borrow(), ["error: on"]);
        drop(deferral);
        assert_eq!(current_id(), before);
        // Over unmade frames, their stack made first, as `current_id` does.
        let outer = Probe::new();
        let d_outer = defer(outer.clone());
        let inner = Probe::new();
        assert!(
            defer_on(inner.clone(), before).is_none(),
            "the outer frame's stack now"
        );
        assert_eq!(outer.made.get(), 1);
        drop(d_outer);
    }

    #[test]
    fn a_carried_rider_is_made_over_its_carrier_and_left_before_it() {
        let before = current_id();
        let base = Probe::new();
        let rider = Probe::new();
        let d_base = defer(base.clone());
        *base.carries.borrow_mut() = Some(rider.clone());
        // Carried: a frame deferred meanwhile does not ride on it too.
        let other = Probe::new();
        let d_other = defer_riding(other.clone());
        assert_ne!(d_other.0, super::RIDING);
        drop(d_other);
        // Nothing captured: let go of, never made, no trace.
        *base.carries.borrow_mut() = None;
        leave_carried_rider();
        assert_eq!((base.made.get(), rider.made.get()), (0, 0));
        // Captured while carried: made over the carrier, right after it.
        *base.carries.borrow_mut() = Some(rider.clone());
        let captured = Context::capture();
        assert_eq!((base.made.get(), rider.made.get()), (1, 1));
        raise_in(&captured, "inner");
        assert_eq!(*rider.seen.borrow(), ["error: inner"]);
        *base.carries.borrow_mut() = None;
        leave_carried_rider();
        // The carrier's frame current again.
        let after = Context::capture();
        assert!(after.same(&captured.parent()));
        raise_in(&after, "outer");
        assert_eq!(*base.seen.borrow(), ["error: outer"]);
        drop(d_base);
        assert_eq!(current_id(), before);
    }
}
