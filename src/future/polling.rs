//! The `async` coroutine being polled on this thread, for the futures it
//! awaits to find its runner: a squall [`Future`](super::Future) polled
//! with the coroutine's own waker registers the runner (an `Rc`) instead
//! of the `std` waker: no atomics, no queue.

use std::cell::Cell;
use std::rc::{Rc, Weak};
use std::task::{Context as TaskContext, Waker};

use super::Wake;
use crate::error::Error;

/// The `async` coroutine being polled on this thread: the `Rc` that wakes
/// its `Runner` and the `std` waker it polls with. A future that is polled
/// with that very waker registers the `Rc` instead: no atomics, no queue.
pub(crate) struct Polling {
    /// The coroutine's runner (weak: the coroutine owns this).
    pub(crate) wake: Weak<dyn Wake>,
    /// The `std` waker the coroutine is polled with.
    pub(crate) waker: Waker,
    /// The runner was handed out ([`polling_wake`]) since this was last
    /// cleared: what tells a coroutine's first poll that nothing reached
    /// its runner (see `gen/shell.rs`).
    lent: Cell<bool>,
}

impl Polling {
    /// What a coroutine whose runner `wake` is polls with.
    pub(crate) fn new(wake: Weak<dyn Wake>, waker: Waker) -> Polling {
        Polling {
            wake,
            waker,
            lent: Cell::new(false),
        }
    }

    /// Whether the runner was handed out since [`take_lent`](Self::take_lent).
    #[inline]
    pub(crate) fn lent(&self) -> bool {
        self.lent.get()
    }

    /// Whether the runner was handed out since the last call; cleared.
    #[inline]
    pub(crate) fn take_lent(&self) -> bool {
        self.lent.replace(false)
    }
}

thread_local! {
    // No destructor (`ManuallyDrop`): read inline, with no check that one
    // is registered, twice per poll. Nothing to drop at the thread's end:
    // it holds a coroutine only while that one is polled. A `Cell`, not a
    // `RefCell`: each access is a move in or out, small enough to be
    // inlined where it is made.
    static POLLING: std::mem::ManuallyDrop<Cell<Option<Rc<Polling>>>> =
        const { std::mem::ManuallyDrop::new(Cell::new(None)) };
}

/// Runs `poll` with a context made from `polling`'s waker and `polling` as
/// this thread's current coroutine, a panic caught (as an error); the
/// previous one is back afterwards (polls nest when a completion inside
/// one resumes another coroutine). The catch is inside, so nothing
/// unwinds past the restore: no guard to drop.
#[inline]
pub(crate) fn poll_with<R>(
    polling: &Rc<Polling>,
    poll: impl FnOnce(&mut TaskContext<'_>) -> R,
) -> Result<R, Error> {
    let prev = POLLING.with(|p| p.replace(Some(polling.clone())));
    let mut cx = TaskContext::from_waker(&polling.waker);
    let polled = crate::catch::catch_value(|| poll(&mut cx));
    // Ours back out: dropped here, with nothing borrowed.
    drop(POLLING.with(|p| p.replace(prev)));
    polled
}

/// The current coroutine's `Rc` waker, if `waker` is the one it is polled
/// with (not a waker a combinator inside it made for its own children).
pub(crate) fn polling_wake(waker: &Waker) -> Option<Rc<dyn Wake>> {
    let current = POLLING.with(|p| p.take())?;
    let wake = if current.waker.will_wake(waker) {
        current.lent.set(true);
        current.wake.upgrade()
    } else {
        None
    };
    // Put back (nothing ran meanwhile that could have set another).
    POLLING.with(|p| p.set(Some(current)));
    wake
}
