//! How a squall [`Future`](super::Future) is polled: its
//! `std::future::Future` impl, and the `async` coroutine being polled on
//! this thread, for the futures it awaits to find its runner: a squall
//! `Future` polled with the coroutine's own waker registers the runner (an
//! `Rc`) instead of the `std` waker: no atomics, no queue.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context as TaskContext, Poll, Waker};

use super::{DoneCallback, DoneFn, Future, Wake};
use crate::error::Error;
use crate::stack_context::Context;

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

impl<T: 'static> Future<T> {
    /// Registers whoever polls this pending future to be woken when it is
    /// done, once: an `async` coroutine of ours as its `Rc` (woken at once,
    /// like a generator), anyone else as their `std` waker. A future polled
    /// again while pending (by `select`-style code) does not pile up wakers.
    fn register_poller(&self, waker: &Waker) {
        let wake = polling_wake(waker);
        let state = self.state.borrow();
        let known = |cb: &DoneCallback<T>| match (&cb.f, &wake) {
            (DoneFn::Wake(w), Some(mine)) => same_rc(w, mine),
            (DoneFn::Waker(w), None) => w.will_wake(waker),
            _ => false,
        };
        // (Two looks, not a `chain`: which LLVM inlines or not from one
        // build of the crate to the next, 20 instructions a poll apart.)
        if state.first.as_ref().is_some_and(known) || state.rest.iter().any(known) {
            return;
        }
        drop(state);
        let name = "squall::Future (awaited)";
        match wake {
            Some(wake) => self.add_waker(wake, name),
            None => self.push_done_callback(DoneCallback {
                f: DoneFn::Waker(waker.clone()),
                ctx: Context::capture(),
                name,
            }),
        }
    }
}

/// Awaiting a `Future` gives its outcome: `let n = future.await?;`.
///
/// The value is *moved out* ([`take_result`](Future::take_result)): clones
/// that look afterwards see it taken, while done-callbacks, which run at
/// completion, before the awaiting coroutine resumes, still see it. Inside a
/// [`gen::coroutine`](crate::gen::coroutine) a pending future wakes the
/// coroutine the moment it completes, exactly as a yielded
/// [`YieldFuture`](crate::gen::YieldFuture) wakes a generator; polled by any
/// other executor, it wakes that executor's `std` waker.
impl<T: 'static> std::future::Future for Future<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        if self.done() {
            return Poll::Ready(self.take_result());
        }
        self.register_poller(cx.waker());
        Poll::Pending
    }
}

/// Whether two `Rc<dyn Wake>` are one object (compares addresses only, not
/// vtables, which may differ between codegen units).
fn same_rc(a: &Rc<dyn Wake>, b: &Rc<dyn Wake>) -> bool {
    std::ptr::eq(Rc::as_ptr(a) as *const (), Rc::as_ptr(b) as *const ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    /// A waker that counts its wakes, as another executor's would.
    struct Counting(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Counting {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn polled_by_another_executor_it_wakes_that_executor_once() {
        use std::future::Future as _;
        let counter = std::sync::Arc::new(Counting(Default::default()));
        let waker = Waker::from(counter.clone());
        let mut cx = TaskContext::from_waker(&waker);
        let mut f = Future::<u8>::new();
        // Polled three times while pending: one registration, not three.
        for _ in 0..3 {
            assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        }
        let clone = f.clone();
        clone.set_result(4);
        assert_eq!(counter.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(matches!(Pin::new(&mut f).poll(&mut cx), Poll::Ready(Ok(4))));
        // The value was moved out by the await.
        assert_eq!(
            clone.take_result().unwrap_err().kind(),
            ErrorKind::InvalidState
        );
    }
}
