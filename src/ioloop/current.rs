//! Which loop is the thread's current one (see "Which loop" in the
//! [module docs](super#which-loop)): the thread-local, `current`,
//! `make_current` and their kin, and the check that refuses to run one loop
//! while the implicit current loop holds work stranded on it. Apart from
//! the loop itself because it is the one piece of per-thread state: the
//! loop's own methods never consult it, only where work lands by default.
//!
//! ```
//! use squall::IOLoop;
//!
//! let io_loop = IOLoop::new()?;
//! io_loop.make_current();
//! assert!(IOLoop::current().ptr_eq(&io_loop));
//! IOLoop::clear_current();
//! assert!(IOLoop::try_current().is_none());
//! # Ok::<(), squall::Error>(())
//! ```

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use super::{IOLoop, Remote};
use crate::error::{Error, ErrorKind};

thread_local! {
    static CURRENT: RefCell<Option<IOLoop>> = const { RefCell::new(None) };
    /// Moves on whenever `CURRENT` is set (see [`IOLoop::current_epoch`]).
    static EPOCH: Cell<u64> = const { Cell::new(0) };
}

/// Makes `io_loop` the thread's current loop (`None`: no loop); returns
/// the one before, for the caller to drop with no borrow held (it may be
/// a loop's last handle).
pub(super) fn replace_current(io_loop: Option<IOLoop>) -> Option<IOLoop> {
    EPOCH.with(|e| e.set(e.get().wrapping_add(1)));
    CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), io_loop))
}

impl IOLoop {
    /// This thread's current loop, created on first use (the *implicit*
    /// loop: see [which loop](super#which-loop) each constructor uses).
    ///
    /// # Panics
    /// If no loop is current and the OS refuses to create one (out of file
    /// descriptors); [`IOLoop::new`] reports that as an error instead.
    pub fn current() -> IOLoop {
        if let Some(current) = IOLoop::try_current() {
            return current;
        }
        let io_loop = IOLoop::new().expect("squall: cannot create the thread's IOLoop");
        io_loop.inner.implicit.set(true);
        io_loop.make_current();
        io_loop
    }

    /// This thread's current loop, if there is one; never creates one.
    pub fn try_current() -> Option<IOLoop> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// Makes this loop the thread's current loop. [`start`](IOLoop::start)
    /// does this too, for as long as it runs.
    pub fn make_current(&self) {
        drop(replace_current(Some(self.clone())));
    }

    /// Leaves the thread with no current loop.
    pub fn clear_current() {
        drop(replace_current(None));
    }

    /// A number that moves on whenever the thread's current loop is set
    /// (to another loop, to none, or to the same one again): something
    /// that noted it can tell the current loop has not changed since with
    /// one inlined load, where [`current_is`](Self::current_is) borrows
    /// the current loop. A pooled coroutine shell checks it (`gen/shell.rs`).
    #[inline]
    pub(crate) fn current_epoch() -> u64 {
        EPOCH.with(Cell::get)
    }

    /// Whether `remote` is the door into this thread's current loop (`None`
    /// for none, if there is none), without a handle made for the asking:
    /// a pooled coroutine's waker checks it still fits.
    pub(crate) fn current_is(remote: Option<&Remote>) -> bool {
        CURRENT.with(|c| match (&*c.borrow(), remote) {
            (Some(l), Some(r)) => Arc::ptr_eq(&l.inner.remote, &r.shared),
            (None, None) => true,
            _ => false,
        })
    }

    /// Refuses to run this loop while the thread's current loop is an
    /// implicit one (made by [`IOLoop::current`]) holding work that could
    /// then never run: objects made before this loop ran, on the wrong loop
    /// (see [which loop](super#which-loop)). Otherwise they would wait for
    /// good, and a `run_sync` would end in a puzzling timeout.
    pub(super) fn check_not_stranding(&self) -> Result<(), Error> {
        let stranded = CURRENT.with(|c| {
            let current = c.borrow();
            let other = current.as_ref()?;
            if other.ptr_eq(self) || !other.inner.implicit.get() {
                return None;
            }
            let inner = &other.inner;
            let handlers = inner.handlers.borrow().map.len();
            // A timeout at the "never" deadline (`Duration::MAX`) could not
            // run on that loop either: nothing stranded.
            let timeouts = inner.timers.borrow().pending_with_deadline();
            let callbacks = inner.callbacks.borrow().len();
            let channels = inner.channels.borrow().len();
            (handlers + timeouts + callbacks + channels > 0).then(|| {
                format!(
                    "{handlers} fd handler(s), {timeouts} timeout(s), {callbacks} callback(s), \
                     {channels} channel(s)"
                )
            })
        });
        match stranded {
            None => Ok(()),
            Some(work) => Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "this thread's current IOLoop was made implicitly by IOLoop::current() \
                     (which IOStream::connect, TCPServer::new, AsyncHTTPClient::new and others \
                     call when no loop is current) and holds {work} that would never run while \
                     another loop runs: make those objects inside run_sync or start, call \
                     make_current() on this loop before making them, or pass it to them \
                     (IOStream::with_loop, connect_with, TCPServer::with_loop, ...)"
                ),
            )),
        }
    }
}
