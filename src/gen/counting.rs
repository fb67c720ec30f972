//! The `std` waker of an `async` coroutine: a waker whose handles are
//! counted, so that when the last clone out there is let go of, unwoken,
//! the thread's table stops holding the coroutine (nobody can wake it
//! now).
//!
//! A waker made from [`std::task::Wake`] cannot tell: a clone of it is its
//! `Arc` counted once more, and nothing runs when a clone goes but the
//! last. So this one is a `RawWaker` of its own over one `Arc<Counting>`,
//! made with the coroutine's shell (`shell.rs`; by its driver, for one
//! started with none) and kept for its life: every coroutine polls with
//! it from its first poll, whether its waker ever gets out or not, so
//! there is nothing to switch to when it does (no second allocation, no
//! second `Polling`) and one wake path.
//!
//! **One vtable**, every handle counted (`handles`), the coroutine's own
//! (in its `Polling`: what `cx.waker()` lends) included: so a clone is the
//! same data pointer *and* vtable as the handle it was cloned from, and
//! [`Waker::will_wake`] holds between them (a foreign future that keeps
//! its clone while `will_wake` says so does not drop and clone it again
//! at every poll; `future::polling_wake` knows the coroutine's own waker
//! by it). "Nobody kept a clone, no wake from another thread is on its
//! way" is then `handles == 1`: the own handle only, one load (the
//! shell's reuse checks; a wake at home is seen by `task::wakes_queued`).
//! A clone or a wake at home costs what a `Wake` waker's does plus one
//! atomic add or subtract; a wake from another thread two more (the
//! handle it carries home, counted in and out).
//!
//! A handle dropped that leaves one (`handles` 2 -> 1) is the last clone
//! gone while the own handle stays, the one case nothing else would
//! notice: the home thread hears of it (`task::let_go`). (The own handle
//! goes only with the coroutine, after its table entry, when such a word
//! finds nothing to let go of.) A wake (by value) of the last clone does
//! not tell: the wake queues a poll, whose end looks at the count again
//! anyway (`AsyncDriver::hold_if_waker_escaped`).

use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{RawWaker, RawWakerVTable, Waker};

use super::task::{at_home, let_go, thread_tag, undeliverable, wake_at_home, TaskId};
use crate::ioloop::Remote;

/// What a coroutine's waker names: its entry in its thread's table, the
/// thread, its loop's door, and how many handles there are.
pub(super) struct Counting {
    id: TaskId,
    home: u64,
    remote: Option<Remote>,
    /// Waker handles, on any thread: the coroutine's own and every clone
    /// (a wake on its way home holds one too).
    handles: AtomicUsize,
    /// The thread's table holds the coroutine for the clones out there.
    /// Read and written on the home thread only (atomic only so that this
    /// is `Sync`, as a waker's data must be).
    held: AtomicBool,
}

// A waker's data is shared with every thread its clones reach: what a
// `std::task::Wake` impl would require, checked here as the RawWaker's
// vtable cannot.
const _: fn() = || {
    fn shared_across_threads<T: Send + Sync>() {}
    shared_across_threads::<Counting>();
};

impl Counting {
    /// The waker of coroutine `id` of this thread, whose loop (if any) is
    /// behind `remote`: its data, and the coroutine's own handle on it, to
    /// poll with. The data's `Arc` is the shell's (or driver's) to keep;
    /// the handle is counted.
    pub(super) fn new(id: TaskId, remote: Option<Remote>) -> (Arc<Counting>, Waker) {
        let counting = Arc::new(Counting {
            id,
            home: thread_tag(),
            remote,
            handles: AtomicUsize::new(1),
            held: AtomicBool::new(false),
        });
        let ptr = Arc::into_raw(counting.clone()).cast::<()>();
        // SAFETY: `ptr` is a strong handle on an `Arc<Counting>`, just made
        // and counted in `handles` (the 1 it starts at), which is what
        // `VTABLE`'s functions take their pointer to be (`drop_handle`
        // gives it back).
        let waker = unsafe { Waker::from_raw(RawWaker::new(ptr, &VTABLE)) };
        (counting, waker)
    }

    /// The door to the loop the coroutine runs on (`None`: no loop).
    pub(super) fn remote(&self) -> Option<&Remote> {
        self.remote.as_ref()
    }

    /// Whether the own handle is the only one: nobody kept a clone, and no
    /// wake from another thread is on its way. One load (the shell's
    /// reuse checks run it for every coroutine).
    #[inline]
    pub(super) fn alone(&self) -> bool {
        self.handles.load(Ordering::Acquire) == 1
    }

    /// Whether any clone is out there (the own handle is still held).
    #[inline]
    pub(super) fn out(&self) -> bool {
        self.handles.load(Ordering::Acquire) > 1
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

    /// One handle fewer. If that leaves one (the own handle, but for a
    /// coroutine already gone) and `tell`, the home thread looks whether
    /// to let the coroutine go.
    #[inline]
    fn release(&self, tell: bool) {
        if self.handles.fetch_sub(1, Ordering::AcqRel) == 2 && tell {
            let_go(self.id, self.home, self.remote.as_ref());
        }
    }

    /// The one wake path: queued at home; from another thread through the
    /// loop's door; with no loop, undeliverable. `spent`: the handle woken
    /// goes with the wake (woken by value), without telling, as the wake's
    /// poll looks at the clones out there again.
    #[inline]
    fn wake(self: &Arc<Self>, spent: bool) {
        if at_home(self.home) {
            // Gone first: with no loop the wake polls at once, and that
            // poll (its end, or the coroutine's) must not count it.
            if spent {
                self.release(false);
            }
            wake_at_home(self.id);
            return;
        }
        match &self.remote {
            Some(remote) => {
                // The wake carries a handle of its own (before the one
                // woken goes): until it is home, the coroutine looks
                // awaited, even if the waker that sent it is dropped at
                // once, before the poll that handed it out has returned.
                let carried = Carried::new(self);
                // A closed loop runs nothing again: there is nobody to
                // wake (the handle carried is dropped, and counted out).
                drop(remote.add_callback(move || carried.arrive()));
            }
            None => undeliverable(),
        }
        if spent {
            self.release(false);
        }
    }
}

/// A handle carried home by a wake from another thread, counted until it
/// arrives.
struct Carried(Option<Arc<Counting>>);

impl Carried {
    fn new(counting: &Arc<Counting>) -> Carried {
        counting.handles.fetch_add(1, Ordering::Relaxed);
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

/// Every handle's, the own one's and the clones' alike (see the module
/// docs: one vtable is what lets `will_wake` hold between them). A
/// `static`, not a `const`: one address, which `will_wake` compares.
static VTABLE: RawWakerVTable =
    RawWakerVTable::new(clone_handle, wake_handle, wake_by_ref_handle, drop_handle);

/// The `Arc` a handle's pointer is, borrowed (it stays the handle's).
///
/// # Safety
/// `ptr` is the pointer of a live handle: a strong handle on an
/// `Arc<Counting>`, held for as long as the borrow is used.
#[inline]
unsafe fn borrowed(ptr: *const ()) -> ManuallyDrop<Arc<Counting>> {
    // SAFETY: see the function's contract; `ManuallyDrop` keeps the
    // strong count the handle's.
    ManuallyDrop::new(unsafe { Arc::from_raw(ptr.cast::<Counting>()) })
}

/// Clones a handle: one more, counted.
unsafe fn clone_handle(ptr: *const ()) -> RawWaker {
    // SAFETY: `ptr` is the live handle being cloned (the vtable contract).
    let this = unsafe { borrowed(ptr) };
    this.handles.fetch_add(1, Ordering::Relaxed);
    // SAFETY: `ptr` came from `Arc::into_raw` and the handle cloned holds
    // it: one more strong handle, the clone's (released by `drop_handle`).
    unsafe { Arc::increment_strong_count(ptr.cast::<Counting>()) };
    RawWaker::new(ptr, &VTABLE)
}

unsafe fn wake_by_ref_handle(ptr: *const ()) {
    // SAFETY: `ptr` is the live handle woken (the vtable contract).
    let this = unsafe { borrowed(ptr) };
    this.wake(false);
}

/// A handle woken by value (a clone: the own one is only ever lent).
unsafe fn wake_handle(ptr: *const ()) {
    // SAFETY: `ptr` is the handle's strong handle, consumed here (its
    // count by `wake`, its `Arc` as `this` goes).
    let this = unsafe { Arc::from_raw(ptr.cast::<Counting>()) };
    this.wake(true);
}

/// A handle dropped (unwoken): if it leaves only one, the last clone went
/// and the home thread hears of it.
unsafe fn drop_handle(ptr: *const ()) {
    // SAFETY: `ptr` is the handle's strong handle, given back here (after
    // the release, which may still read the fields).
    let this = unsafe { Arc::from_raw(ptr.cast::<Counting>()) };
    this.release(true);
}
