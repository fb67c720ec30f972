//! The boxes `async` blocks are pinned in, kept per block type and reused:
//! a server starts the same handler's block request after request, and
//! most finish in their first poll; the box is the one allocation such a
//! coroutine would still make.
//!
//! A block is pinned in a `Pin<Box<Option<F>>>`: it is dropped *in place*
//! when it ends (`Pin::set(None)`), and the next block of its type is
//! written in place (`Pin::set(Some(..))`), so nothing pinned ever moves.
//! The box kept is type-erased (`Box<dyn Any>`, the slot inside) and
//! travels with the coroutine shell it was last used with (`shell.rs`):
//! taking a shell brings its box, pooling it puts the box back, with no
//! look-up of its own. A block of another type gets a box of its own, as
//! ever, and leaves the kept one be (or is kept if the shell had none).
//!
//! ```
//! use squall::{gen, IOLoop};
//!
//! // The second block of this type is written into the first one's box.
//! let io_loop = IOLoop::new()?;
//! for i in 0..2 {
//!     let n = io_loop.run_sync(move || gen::coroutine(async move { Ok(i) }), None)?;
//!     assert_eq!(n, i);
//! }
//! # Ok::<(), squall::Error>(())
//! ```

use std::any::Any;
use std::pin::Pin;

/// Where a block is pinned: `None` once it has gone (the box kept).
pub(super) type Slot<F> = Pin<Box<Option<F>>>;

/// A block pinned for its first poll: in a kept box, or a new one. The
/// kept box's type is checked once, when the block is written into it:
/// from then on it is a box of this type, and reaching the slot costs no
/// look-up.
pub(super) enum Pinned<F> {
    Kept(Box<Slot<F>>),
    New(Slot<F>),
}

impl<F: 'static> Pinned<F> {
    /// `block`, pinned in `kept` if it is a box of its type; else in a
    /// new box, `kept` given back (to stay where it was).
    #[inline]
    pub(super) fn new(block: F, kept: Option<Box<dyn Any>>) -> (Pinned<F>, Option<Box<dyn Any>>) {
        match kept.map(|kept| kept.downcast::<Slot<F>>()) {
            Some(Ok(mut slot)) => {
                slot.as_mut().set(Some(block));
                (Pinned::Kept(slot), None)
            }
            Some(Err(other)) => (Pinned::New(Box::pin(Some(block))), Some(other)),
            None => (Pinned::New(Box::pin(Some(block))), None),
        }
    }

    /// The slot the block is pinned in.
    #[inline]
    pub(super) fn slot(&mut self) -> &mut Slot<F> {
        match self {
            Pinned::Kept(slot) => slot,
            Pinned::New(slot) => slot,
        }
    }

    /// The slot alone, for a coroutine that waits (its driver polls it
    /// from now on).
    pub(super) fn into_slot(self) -> Slot<F> {
        match self {
            Pinned::Kept(slot) => *slot,
            Pinned::New(slot) => slot,
        }
    }

    /// Drops the block in place (what it holds goes now) and gives its
    /// box back to keep: a kept one always, a new one only if `room`
    /// (none is kept already).
    #[inline]
    pub(super) fn give_back(mut self, room: bool) -> Option<Box<dyn Any>> {
        self.slot().as_mut().set(None);
        match self {
            Pinned::Kept(slot) => Some(slot),
            Pinned::New(slot) => room.then(|| Box::new(slot) as Box<dyn Any>),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_box_is_reused_for_the_next_block_of_its_type_and_the_block_dropped_in_place() {
        let dropped = std::rc::Rc::new(Cell::new(0));
        let make = |tag: u32| {
            let guard = Guard(dropped.clone());
            async move {
                let _guard = guard;
                tag
            }
        };
        let (mut first, none) = Pinned::new(make(1), None);
        assert!(matches!(first, Pinned::New(_)) && none.is_none());
        let at = &**first.slot() as *const Option<_>;
        let kept = first.give_back(true);
        assert_eq!(dropped.get(), 1, "dropped when given back");
        let (mut second, none) = Pinned::new(make(2), kept);
        assert!(matches!(second, Pinned::Kept(_)) && none.is_none());
        assert_eq!(&**second.slot() as *const Option<_>, at, "the same box");
        // Waiting: the slot goes to its driver.
        let slot = second.into_slot();
        assert!(slot.is_some());
        drop(slot);
        assert_eq!(dropped.get(), 2);
    }

    #[test]
    fn a_block_of_another_type_leaves_the_kept_box_be() {
        async fn block<const N: usize>() -> usize {
            N
        }
        let kept = Pinned::new(block::<1>(), None).0.give_back(true);
        let at = kept.as_ref().map(|k| &**k as *const dyn Any as *const ());
        // Another type: a box of its own; the kept one comes back as it was.
        let (two, kept) = Pinned::new(block::<2>(), kept);
        assert!(matches!(two, Pinned::New(_)));
        assert_eq!(
            kept.as_ref().map(|k| &**k as *const dyn Any as *const ()),
            at
        );
        assert!(two.give_back(false).is_none(), "no room: not kept");
        let (again, none) = Pinned::new(block::<1>(), kept);
        assert!(matches!(again, Pinned::Kept(_)) && none.is_none());
        assert!(
            again.give_back(false).is_some(),
            "a kept box is always kept"
        );
    }

    struct Guard(std::rc::Rc<Cell<u32>>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
}
