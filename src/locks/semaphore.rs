//! `Semaphore`, `BoundedSemaphore`, `Lock` and the `Guard` they hand out.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use super::waiters::{self, Waiter, Waiters};
use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::ioloop::Deadline;

struct SemState {
    value: usize,
    /// `Some(initial value)` for a bounded semaphore.
    bound: Option<usize>,
    waiters: Waiters<Waiter<Guard>>,
}

type Shared = Rc<RefCell<SemState>>;

/// One acquired permit of a [`Semaphore`], [`BoundedSemaphore`] or [`Lock`]:
/// released when dropped (Tornado's `with (yield sem.acquire()):`).
///
/// ```
/// use squall::locks::Lock;
///
/// let lock = Lock::new();
/// {
///     let _guard = lock.acquire().take_result()?;
///     assert!(lock.locked());
/// } // released here
/// assert!(!lock.locked());
/// # Ok::<(), squall::Error>(())
/// ```
#[must_use = "dropping the guard releases the permit at once"]
pub struct Guard {
    state: Option<Shared>,
}

impl Guard {
    fn new(state: Shared) -> Guard {
        Guard { state: Some(state) }
    }

    /// Releases the permit now; the first waiter in line gets it.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidState`] if a bounded semaphore (or lock) was
    /// already released past its initial value by hand meanwhile.
    pub fn release(mut self) -> Result<(), Error> {
        match self.state.take() {
            Some(state) => release(&state),
            None => Ok(()),
        }
    }

    /// Keeps the permit without a guard: the semaphore stays acquired until
    /// someone calls its `release` (Tornado's explicit style).
    pub fn forget(mut self) {
        self.state = None;
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            if let Err(err) = release(&state) {
                log::error!("dropping a lock guard: {err}");
            }
        }
    }
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("held", &self.state.is_some())
            .finish()
    }
}

/// Increments the counter and hands the permit to the first live waiter.
fn release(state: &Shared) -> Result<(), Error> {
    {
        let mut s = state.borrow_mut();
        if let Some(bound) = s.bound {
            if s.value >= bound {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "semaphore released too many times",
                ));
            }
        }
        s.value += 1;
    }
    loop {
        let (waiter, abandoned) = {
            let mut s = state.borrow_mut();
            let Some(waiter) = s.waiters.pop_front() else {
                return Ok(());
            };
            let abandoned = waiter.future.is_abandoned();
            if !abandoned {
                s.value -= 1;
            }
            (waiter, abandoned)
        };
        if abandoned {
            // Nobody would ever see the guard; try the next one.
            drop(waiter);
            continue;
        }
        waiter.resolve(Ok(Guard::new(state.clone())));
        return Ok(());
    }
}

fn acquire(state: &Shared, timeout: Option<Deadline>, what: &'static str) -> Future<Guard> {
    {
        let mut s = state.borrow_mut();
        if s.value > 0 {
            s.value -= 1;
            drop(s);
            return Future::ready(Guard::new(state.clone()));
        }
    }
    let future = Future::new();
    let timer = waiters::timer(
        timeout,
        state,
        |state| state.borrow().waiters.next_id(),
        |state: &RefCell<SemState>, id| {
            let waiter = state.borrow_mut().waiters.remove(id);
            if let Some(waiter) = waiter {
                waiter.resolve(Err(waiters::timed_out("acquire")));
            }
        },
    );
    let Ok(timer) = timer else {
        return Future::failed(waiters::timed_out(what));
    };
    state.borrow_mut().waiters.push(Waiter {
        future: future.clone(),
        timer,
    });
    future
}

fn new_state(value: usize, bound: Option<usize>) -> Shared {
    Rc::new(RefCell::new(SemState {
        value,
        bound,
        waiters: Waiters::default(),
    }))
}

/// A counter of permits: Tornado's `locks.Semaphore`.
///
/// [`acquire`](Semaphore::acquire) takes a permit, waiting in line while
/// there is none; [`release`](Semaphore::release) (or dropping the
/// [`Guard`]) gives one back. Releasing more than was acquired is allowed
/// and raises the count. Clones share one semaphore.
///
/// ```
/// use squall::locks::Semaphore;
///
/// let sem = Semaphore::new(2);
/// let (a, b, c) = (sem.acquire(), sem.acquire(), sem.acquire());
/// assert!(a.done() && b.done() && !c.done());
/// sem.release(); // a's permit given back by hand...
/// a.take_result()?.forget(); // ...so its guard must not release it again
/// assert!(c.done());
/// # Ok::<(), squall::Error>(())
/// ```
#[derive(Clone)]
pub struct Semaphore {
    state: Shared,
}

impl Default for Semaphore {
    fn default() -> Self {
        Semaphore::new(1)
    }
}

impl Semaphore {
    /// A semaphore with `value` permits (Tornado's default is 1).
    pub fn new(value: usize) -> Semaphore {
        Semaphore {
            state: new_state(value, None),
        }
    }

    /// A future of a [`Guard`]: done at once if a permit is free, else when
    /// one is released to this waiter (first come, first served).
    pub fn acquire(&self) -> Future<Guard> {
        acquire(&self.state, None, "Semaphore.acquire")
    }

    /// Like [`acquire`](Semaphore::acquire), but the future fails with
    /// [`ErrorKind::Timeout`] if no permit comes by `timeout` (on the current
    /// loop); the waiter then leaves the line and takes no permit.
    pub fn acquire_timeout(&self, timeout: impl Into<Deadline>) -> Future<Guard> {
        acquire(&self.state, Some(timeout.into()), "Semaphore.acquire")
    }

    /// A guard now if a permit is free, else `None`; never waits.
    pub fn try_acquire(&self) -> Option<Guard> {
        try_acquire(&self.state)
    }

    /// Gives a permit back: the first waiter in line gets it, or the count
    /// goes up.
    pub fn release(&self) {
        // An unbounded semaphore cannot be over-released.
        let _ = release(&self.state);
    }

    /// The free permits.
    pub fn value(&self) -> usize {
        self.state.borrow().value
    }

    /// Whether no permit is free.
    pub fn locked(&self) -> bool {
        self.value() == 0
    }

    /// How many futures wait in line.
    pub fn waiters(&self) -> usize {
        self.state.borrow().waiters.len()
    }
}

fn try_acquire(state: &Shared) -> Option<Guard> {
    let mut s = state.borrow_mut();
    if s.value == 0 {
        return None;
    }
    s.value -= 1;
    Some(Guard::new(state.clone()))
}

fn debug(state: &Shared, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let s = state.borrow();
    let mut d = f.debug_struct(name);
    d.field("state", &if s.value == 0 { "locked" } else { "unlocked" })
        .field("value", &s.value);
    if !s.waiters.is_empty() {
        d.field("waiters", &s.waiters.len());
    }
    d.finish()
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug(&self.state, "Semaphore", f)
    }
}

/// A [`Semaphore`] that refuses to be released past its initial value:
/// Tornado's `locks.BoundedSemaphore`. Over-releasing is a bug, reported as
/// an error.
///
/// ```
/// use squall::locks::BoundedSemaphore;
/// use squall::ErrorKind;
///
/// let sem = BoundedSemaphore::new(1);
/// assert_eq!(sem.release().unwrap_err().kind(), ErrorKind::InvalidState);
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    state: Shared,
}

impl Default for BoundedSemaphore {
    fn default() -> Self {
        BoundedSemaphore::new(1)
    }
}

impl BoundedSemaphore {
    /// A semaphore with `value` permits, never more.
    pub fn new(value: usize) -> BoundedSemaphore {
        BoundedSemaphore {
            state: new_state(value, Some(value)),
        }
    }

    /// As [`Semaphore::acquire`].
    pub fn acquire(&self) -> Future<Guard> {
        acquire(&self.state, None, "BoundedSemaphore.acquire")
    }

    /// As [`Semaphore::acquire_timeout`].
    pub fn acquire_timeout(&self, timeout: impl Into<Deadline>) -> Future<Guard> {
        acquire(
            &self.state,
            Some(timeout.into()),
            "BoundedSemaphore.acquire",
        )
    }

    /// As [`Semaphore::try_acquire`].
    pub fn try_acquire(&self) -> Option<Guard> {
        try_acquire(&self.state)
    }

    /// Gives a permit back.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidState`] if every permit is already free
    /// (Tornado's `ValueError`); nothing changes.
    pub fn release(&self) -> Result<(), Error> {
        release(&self.state)
    }

    /// The free permits.
    pub fn value(&self) -> usize {
        self.state.borrow().value
    }

    /// Whether no permit is free.
    pub fn locked(&self) -> bool {
        self.value() == 0
    }

    /// How many futures wait in line.
    pub fn waiters(&self) -> usize {
        self.state.borrow().waiters.len()
    }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug(&self.state, "BoundedSemaphore", f)
    }
}

/// A mutual-exclusion lock for coroutines: Tornado's `locks.Lock`.
///
/// It starts unlocked; [`acquire`](Lock::acquire) locks it at once or waits
/// in line. Dropping the [`Guard`] unlocks it, as does [`release`](Lock::release).
/// Clones share one lock.
///
/// ```
/// use squall::locks::Lock;
///
/// let lock = Lock::new();
/// let held = lock.acquire().take_result()?;
/// let next = lock.acquire();
/// assert!(!next.done());
/// drop(held);
/// assert!(next.done() && lock.locked());
/// # Ok::<(), squall::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Lock {
    block: BoundedSemaphore,
}

impl Lock {
    /// An unlocked lock.
    pub fn new() -> Lock {
        Lock {
            block: BoundedSemaphore::new(1),
        }
    }

    /// A future of the [`Guard`] that holds the lock.
    pub fn acquire(&self) -> Future<Guard> {
        acquire(&self.block.state, None, "Lock.acquire")
    }

    /// Like [`acquire`](Lock::acquire), but fails with
    /// [`ErrorKind::Timeout`] if the lock is not ours by `timeout`; the lock
    /// is then left as it was.
    pub fn acquire_timeout(&self, timeout: impl Into<Deadline>) -> Future<Guard> {
        acquire(&self.block.state, Some(timeout.into()), "Lock.acquire")
    }

    /// The guard now if the lock is free, else `None`.
    pub fn try_acquire(&self) -> Option<Guard> {
        self.block.try_acquire()
    }

    /// Unlocks: the first waiter in line gets the lock.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidState`] if the lock is not locked (Tornado's
    /// `RuntimeError`).
    pub fn release(&self) -> Result<(), Error> {
        self.block
            .release()
            .map_err(|_| Error::new(ErrorKind::InvalidState, "release of an unlocked Lock"))
    }

    /// Whether the lock is held.
    pub fn locked(&self) -> bool {
        self.block.locked()
    }

    /// How many futures wait in line.
    pub fn waiters(&self) -> usize {
        self.block.waiters()
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug(&self.block.state, "Lock", f)
    }
}
