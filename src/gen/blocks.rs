//! The boxes `async` blocks are pinned in, kept per block type and reused:
//! a server starts the same handler's block request after request, and
//! most finish in their first poll; the box is the one allocation such a
//! coroutine would still make.
//!
//! A block is pinned in a `Pin<Box<Option<F>>>`: it is dropped *in place*
//! when it ends (`Pin::set(None)`), and the next block of its type is
//! written in place (`Pin::set(Some(..))`), so nothing pinned ever moves.
//! The box kept is type-erased (`Box<dyn Any>`, the slot inside), one per
//! thread: the last block's, the usual server's one handler type. A block
//! of another type gets a box of its own, as ever, and leaves the kept one
//! be; it is kept in turn if there is none.
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
use std::cell::Cell;
use std::mem::ManuallyDrop;
use std::pin::Pin;

/// Where a block is pinned: `None` once it has gone (the box kept).
pub(super) type Slot<F> = Pin<Box<Option<F>>>;

thread_local! {
    // No destructor (`ManuallyDrop`), and a `Cell`: each access is a move
    // in or out, inlined. `drain`, called by the shells' janitor
    // (registered before any block is boxed: a shell is taken first),
    // empties it when the thread ends.
    static KEPT: ManuallyDrop<Cell<Option<Box<dyn Any>>>> =
        const { ManuallyDrop::new(Cell::new(None)) };
    /// `drain` ran: the thread is ending, nothing is kept now.
    static DRAINED: Cell<bool> = const { Cell::new(false) };
}

/// A block pinned for its first poll: in a kept box, or a new one.
pub(super) enum Pinned<F> {
    Kept(Box<dyn Any>),
    New(Slot<F>),
}

impl<F: 'static> Pinned<F> {
    /// `block`, pinned in the kept box if it is of its type.
    #[inline]
    pub(super) fn new(block: F) -> Pinned<F> {
        match KEPT.with(|k| k.take()) {
            Some(mut kept) if kept.is::<Slot<F>>() => {
                slot_of::<F>(&mut kept).as_mut().set(Some(block));
                Pinned::Kept(kept)
            }
            // Another type's (or none): left where it was.
            other => {
                KEPT.with(|k| k.set(other));
                Pinned::New(Box::pin(Some(block)))
            }
        }
    }

    /// The slot the block is pinned in.
    #[inline]
    pub(super) fn slot(&mut self) -> &mut Slot<F> {
        match self {
            Pinned::Kept(kept) => slot_of::<F>(kept),
            Pinned::New(slot) => slot,
        }
    }

    /// The slot alone, for a coroutine that waits (its driver polls it
    /// from now on, with no type to look up).
    pub(super) fn into_slot(self) -> Slot<F> {
        match self {
            Pinned::Kept(kept) => match kept.downcast::<Slot<F>>() {
                Ok(slot) => *slot,
                // (Not reached: `Kept` holds a slot of its type.)
                Err(_) => Box::pin(None),
            },
            Pinned::New(slot) => slot,
        }
    }

    /// Drops the block in place (what it holds goes now), and keeps the
    /// box for the next block of its type if none is kept.
    #[inline]
    pub(super) fn give_back(mut self) {
        self.slot().as_mut().set(None);
        let kept = match self {
            Pinned::Kept(kept) => kept,
            Pinned::New(slot) => {
                if DRAINED.with(Cell::get) || is_kept() {
                    // One kept already (another type's).
                    return;
                }
                Box::new(slot)
            }
        };
        keep(kept);
    }
}

/// The slot inside a kept box.
#[inline]
fn slot_of<F: 'static>(kept: &mut Box<dyn Any>) -> &mut Slot<F> {
    // (`Kept` is only ever made from a box of this type.)
    kept.downcast_mut::<Slot<F>>()
        .expect("a kept box holds a slot of its block's type")
}

/// Whether a box is kept.
fn is_kept() -> bool {
    let kept = KEPT.with(|k| k.take());
    let is = kept.is_some();
    KEPT.with(|k| k.set(kept));
    is
}

/// Keeps `kept` (an empty slot), unless the thread is ending.
#[inline]
fn keep(kept: Box<dyn Any>) {
    if DRAINED.with(Cell::get) {
        return;
    }
    // (A box that was there, another's put in meanwhile, goes.)
    drop(KEPT.with(|k| k.replace(Some(kept))));
}

/// Drops the kept box (empty: no user value in it); nothing is kept
/// after it. When the thread ends.
pub(super) fn drain() {
    DRAINED.with(|d| d.set(true));
    drop(KEPT.with(|k| k.take()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept() -> usize {
        usize::from(is_kept())
    }

    #[test]
    fn a_box_is_reused_for_the_next_block_of_its_type_and_the_block_dropped_in_place() {
        let before = kept();
        let dropped = std::rc::Rc::new(Cell::new(0));
        let make = |tag: u32| {
            let guard = Guard(dropped.clone());
            async move {
                let _guard = guard;
                tag
            }
        };
        let mut first = Pinned::new(make(1));
        let at = &**first.slot() as *const Option<_>;
        assert!(matches!(first, Pinned::New(_)) || before > 0);
        first.give_back();
        assert_eq!(dropped.get(), 1, "dropped when given back");
        let mut second = Pinned::new(make(2));
        assert!(matches!(second, Pinned::Kept(_)));
        assert_eq!(&**second.slot() as *const Option<_>, at, "the same box");
        // Waiting: the slot goes to its driver, the box is not kept.
        let slot = second.into_slot();
        assert!(slot.is_some());
        drop(slot);
        assert_eq!(dropped.get(), 2);
        assert_eq!(kept(), before);
    }

    #[test]
    fn a_block_of_another_type_leaves_the_kept_box_be() {
        async fn block<const N: usize>() -> usize {
            N
        }
        Pinned::new(block::<1>()).give_back();
        let mut one = Pinned::new(block::<1>());
        let at = &**one.slot() as *const Option<_> as *const ();
        one.give_back();
        // Another type: a box of its own, not kept (one is).
        let two = Pinned::new(block::<2>());
        assert!(matches!(two, Pinned::New(_)));
        two.give_back();
        assert_eq!(kept(), 1);
        let mut again = Pinned::new(block::<1>());
        assert!(matches!(again, Pinned::Kept(_)));
        assert_eq!(&**again.slot() as *const Option<_> as *const (), at);
        again.give_back();
    }

    struct Guard(std::rc::Rc<Cell<u32>>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
}
