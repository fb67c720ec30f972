//! The `std` waker an `async` coroutine polls with once a clone of its
//! first one got out (see `task.rs`): a waker whose clones are counted,
//! so that when the last clone out there is let go of, unwoken, the
//! thread's table stops holding the coroutine (nobody can wake it now).
//!
//! A waker made from [`std::task::Wake`] cannot tell: a clone of it is
//! its `Arc` counted once more, and nothing runs when a clone goes but
//! the last. So this one is a `RawWaker` of its own: two vtables over one
//! `Arc<Counting>`. `OWN` is the coroutine's own handle (in its `Polling`:
//! what `cx.waker()` lends), which does not count; `OUT` is every clone
//! (of the own handle or of another clone), which does. A clone or a wake
//! costs what a `Wake` waker's does plus one atomic add or subtract.
//!
//! A wake (by value) of the last clone does not tell the home thread that
//! the clones are gone: the wake queues a poll, whose end looks at the
//! count again anyway (`AsyncDriver::hold_if_waker_escaped`). Only a
//! clone dropped unwoken does, the one case nothing else would notice.

use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{RawWaker, RawWakerVTable, Waker};

use super::task::{at_home, let_go, undeliverable, wake_at_home, TaskId};
use crate::ioloop::Remote;

/// What a counting waker names: the coroutine's entry in its thread's
/// table, the thread, its loop's door, and how many clones are out.
pub(super) struct Counting {
    id: TaskId,
    home: u64,
    remote: Option<Remote>,
    /// Clones out there, on any thread (a wake on its way home is one).
    out: AtomicUsize,
    /// The thread's table holds the coroutine for the clones out there.
    /// Read and written on the home thread only (atomic only so that this
    /// is `Sync`, as a waker's data must be).
    held: AtomicBool,
}

impl Counting {
    /// A counting waker's data for coroutine `id` of thread `home`.
    pub(super) fn new(id: TaskId, home: u64, remote: Option<Remote>) -> Arc<Counting> {
        Arc::new(Counting {
            id,
            home,
            remote,
            out: AtomicUsize::new(0),
            held: AtomicBool::new(false),
        })
    }

    /// The coroutine's own handle, to poll with: its clones count.
    pub(super) fn own_waker(self: &Arc<Self>) -> Waker {
        let ptr = Arc::into_raw(self.clone()).cast::<()>();
        // SAFETY: `ptr` is a strong handle on an `Arc<Counting>`, just
        // made, which is what `OWN`'s functions take their pointer to be
        // (`drop_own` gives it back).
        unsafe { Waker::from_raw(RawWaker::new(ptr, &OWN)) }
    }

    /// Whether any clone is out there.
    #[inline]
    pub(super) fn out(&self) -> bool {
        self.out.load(Ordering::Acquire) > 0
    }

    /// Whether the thread's table holds the coroutine for its clones.
    #[inline]
    pub(super) fn held(&self) -> bool {
        self.held.load(Ordering::Relaxed)
    }

    /// Notes whether the table holds the coroutine (home thread only).
    #[inline]
    pub(super) fn set_held(&self, held: bool) {
        self.held.store(held, Ordering::Relaxed);
    }

    /// One clone fewer out there. If it was the last and `tell`, the home
    /// thread looks whether to let the coroutine go.
    #[inline]
    fn release(&self, tell: bool) {
        if self.out.fetch_sub(1, Ordering::AcqRel) == 1 && tell {
            let_go(self.id, self.home, self.remote.as_ref());
        }
    }

    #[inline]
    fn wake_by_ref(self: &Arc<Self>) {
        if at_home(self.home) {
            wake_at_home(self.id);
            return;
        }
        match &self.remote {
            Some(remote) => {
                // The wake carries a clone of its own: until it is home,
                // the coroutine looks awaited, even if the waker that sent
                // it is dropped at once.
                let carried = Carried::new(self);
                // A closed loop runs nothing again: there is nobody to
                // wake (the clone carried is dropped, and counted out).
                drop(remote.add_callback(move || carried.arrive()));
            }
            None => undeliverable(),
        }
    }
}

/// A clone carried home by a wake from another thread, counted out there
/// until it arrives.
struct Carried(Option<Arc<Counting>>);

impl Carried {
    fn new(counting: &Arc<Counting>) -> Carried {
        counting.out.fetch_add(1, Ordering::Relaxed);
        Carried(Some(counting.clone()))
    }

    /// Home: the wake is queued, and the poll it makes looks at the clones
    /// out there again (so this one goes without telling).
    fn arrive(mut self) {
        if let Some(counting) = self.0.take() {
            wake_at_home(counting.id);
            counting.release(false);
        }
    }
}

impl Drop for Carried {
    fn drop(&mut self) {
        // Dropped on its way (the loop closed): a clone let go of.
        if let Some(counting) = self.0.take() {
            counting.release(true);
        }
    }
}

/// The coroutine's own handle.
static OWN: RawWakerVTable = RawWakerVTable::new(clone, wake_own, wake_by_ref, drop_own);
/// A clone: counted out there until it goes.
static OUT: RawWakerVTable = RawWakerVTable::new(clone, wake_out, wake_by_ref, drop_out);

/// The `Arc` a handle's pointer is, borrowed (it stays the handle's).
///
/// # Safety
/// `ptr` is the pointer of a live `OWN` or `OUT` handle: a strong handle
/// on an `Arc<Counting>`, held for as long as the borrow is used.
#[inline]
unsafe fn borrowed(ptr: *const ()) -> ManuallyDrop<Arc<Counting>> {
    // SAFETY: see the function's contract; `ManuallyDrop` keeps the
    // strong count the handle's.
    ManuallyDrop::new(unsafe { Arc::from_raw(ptr.cast::<Counting>()) })
}

/// Clones a handle (either kind): a clone, counted out.
unsafe fn clone(ptr: *const ()) -> RawWaker {
    // SAFETY: `ptr` is the live handle being cloned (the vtable contract).
    let this = unsafe { borrowed(ptr) };
    this.out.fetch_add(1, Ordering::Relaxed);
    // SAFETY: `ptr` came from `Arc::into_raw` and the handle cloned holds
    // it: one more strong handle, the clone's (released by `drop_out`).
    unsafe { Arc::increment_strong_count(ptr.cast::<Counting>()) };
    RawWaker::new(ptr, &OUT)
}

unsafe fn wake_by_ref(ptr: *const ()) {
    // SAFETY: `ptr` is the live handle woken (the vtable contract).
    let this = unsafe { borrowed(ptr) };
    this.wake_by_ref();
}

/// The own handle woken by value (nothing does: it is only ever lent).
unsafe fn wake_own(ptr: *const ()) {
    // SAFETY: `ptr` is the live handle woken, consumed after the wake.
    unsafe {
        wake_by_ref(ptr);
        drop_own(ptr);
    }
}

/// A clone woken by value: it goes without telling (the wake's poll
/// looks at the clones out there again).
unsafe fn wake_out(ptr: *const ()) {
    // SAFETY: `ptr` is the clone's strong handle, consumed here.
    let this = unsafe { Arc::from_raw(ptr.cast::<Counting>()) };
    this.wake_by_ref();
    this.release(false);
}

unsafe fn drop_own(ptr: *const ()) {
    // SAFETY: `ptr` is the own handle's strong handle, given back here.
    drop(unsafe { Arc::from_raw(ptr.cast::<Counting>()) });
}

/// A clone dropped (unwoken): if it was the last out there, the home
/// thread hears of it.
unsafe fn drop_out(ptr: *const ()) {
    // SAFETY: `ptr` is the clone's strong handle, given back here (after
    // the release, which may still read the fields).
    let this = unsafe { Arc::from_raw(ptr.cast::<Counting>()) };
    this.release(true);
}
