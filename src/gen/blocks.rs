//! The boxes `async` blocks are pinned in, kept per block type and reused:
//! a server starts the same handler's block request after request, and
//! most finish in their first poll; the box is the one allocation such a
//! coroutine would still make.
//!
//! A block is pinned in a `Pin<Box<Option<F>>>`: it is dropped *in place*
//! when it ends (`Pin::set(None)`), and the next block of its type is
//! written in place (`Pin::set(Some(..))`), so nothing pinned ever moves.
//! Kept boxes are type-erased (`Box<dyn Any>`, the slot inside) and found
//! again by type; a few are kept per thread.
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

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::mem::ManuallyDrop;
use std::pin::Pin;

/// Where a block is pinned: `None` once it has gone (the box kept).
pub(super) type Slot<F> = Pin<Box<Option<F>>>;

/// Boxes kept per thread (of as many block types).
const KEPT_MAX: usize = 8;

thread_local! {
    // No destructor (`ManuallyDrop`): read inline; `drain`, called by the
    // shells' janitor (registered before any block is boxed: a shell is
    // taken first), empties it when the thread ends.
    static KEPT: ManuallyDrop<RefCell<Vec<Box<dyn Any>>>> =
        const { ManuallyDrop::new(RefCell::new(Vec::new())) };
    /// `drain` ran: the thread is ending, nothing is kept now.
    static DRAINED: Cell<bool> = const { Cell::new(false) };
}

/// A block pinned for its first poll: in a kept box, or a new one.
pub(super) enum Pinned<F> {
    Kept(Box<dyn Any>),
    New(Slot<F>),
}

impl<F: 'static> Pinned<F> {
    /// `block`, pinned in a kept box of its type if there is one.
    #[inline]
    pub(super) fn new(block: F) -> Pinned<F> {
        let kept = KEPT.with(|k| {
            let mut k = k.borrow_mut();
            let at = k
                .iter()
                .rposition(|b| (**b).type_id() == TypeId::of::<Slot<F>>())?;
            Some(k.swap_remove(at))
        });
        match kept {
            Some(mut kept) => {
                slot_of::<F>(&mut kept).as_mut().set(Some(block));
                Pinned::Kept(kept)
            }
            None => Pinned::New(Box::pin(Some(block))),
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
    /// box for the next block of its type if there is room.
    #[inline]
    pub(super) fn give_back(mut self) {
        self.slot().as_mut().set(None);
        match self {
            Pinned::Kept(kept) => keep(kept),
            Pinned::New(slot) => {
                if has_room() {
                    keep(Box::new(slot));
                }
            }
        }
    }
}

/// The slot inside a kept box.
#[inline]
fn slot_of<F: 'static>(kept: &mut Box<dyn Any>) -> &mut Slot<F> {
    // (`Kept` is only ever made from a box of this type.)
    kept.downcast_mut::<Slot<F>>()
        .expect("a kept box holds a slot of its block's type")
}

fn has_room() -> bool {
    !DRAINED.with(Cell::get) && KEPT.with(|k| k.borrow().len() < KEPT_MAX)
}

/// Keeps `kept` (an empty slot) if there is room, else drops it.
#[inline]
fn keep(kept: Box<dyn Any>) {
    let full = KEPT.with(|k| {
        let mut k = k.borrow_mut();
        if k.len() >= KEPT_MAX || DRAINED.with(Cell::get) {
            return Some(kept);
        }
        k.push(kept);
        None
    });
    drop(full);
}

/// Drops the kept boxes (empty: no user value in them); nothing is kept
/// after it. When the thread ends.
pub(super) fn drain() {
    DRAINED.with(|d| d.set(true));
    let kept = KEPT.with(|k| k.try_borrow_mut().map(|mut k| std::mem::take(&mut *k)));
    drop(kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept() -> usize {
        KEPT.with(|k| k.borrow().len())
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
    fn a_few_are_kept_at_most() {
        fn block<const N: usize>() -> impl std::future::Future<Output = usize> {
            async { N }
        }
        Pinned::new(block::<1>()).give_back();
        Pinned::new(block::<2>()).give_back();
        Pinned::new(block::<3>()).give_back();
        Pinned::new(block::<4>()).give_back();
        Pinned::new(block::<5>()).give_back();
        Pinned::new(block::<6>()).give_back();
        Pinned::new(block::<7>()).give_back();
        Pinned::new(block::<8>()).give_back();
        Pinned::new(block::<9>()).give_back();
        assert!(kept() <= KEPT_MAX);
    }

    struct Guard(std::rc::Rc<Cell<u32>>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
}
