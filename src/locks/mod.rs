//! Coordination between callbacks and coroutines on one loop: Tornado's
//! `tornado.locks`.
//!
//! [`Event`], [`Condition`], [`Semaphore`], [`BoundedSemaphore`] and [`Lock`]
//! hand out [`Future`]s, so they serve plain callbacks (`add_done_callback`)
//! and generators (yield a [`YieldFuture`](crate::gen::YieldFuture)) alike.
//! Like everything on a loop they are single-threaded (`!Send`, no atomics).
//!
//! - Waiters are served first come, first served.
//! - Every wait has a `*_timeout` form taking a [`Deadline`] (an `Instant` on
//!   the loop's clock, or a `Duration` from now). A waiter whose timeout fires
//!   leaves the line at once and is never woken later; a deadline already
//!   passed fails (or, for `Condition`, returns `false`) at once.
//! - A waiter is woken synchronously, from inside `set`, `notify` or
//!   `release` (Tornado before 5.0).
//! - A waiter whose future was dropped unseen (no clone, no done-callback) is
//!   skipped: it takes no permit and no notification.
//! - `acquire` resolves to a [`Guard`] that releases on drop; `release` is
//!   there too, as in Tornado.
//!
//! ```
//! use std::time::Duration;
//! use squall::locks::{Condition, Semaphore};
//! use squall::IOLoop;
//!
//! let sem = Semaphore::new(1);
//! let first = sem.acquire();  // granted at once
//! let second = sem.acquire(); // waits in line
//! assert!(first.done() && !second.done());
//! let guard = first.take_result()?;
//! drop(guard);                // releases: the next in line is served
//! assert!(second.done());
//!
//! // Timeouts run on the current loop.
//! let io_loop = IOLoop::new()?;
//! let notified = io_loop.run_sync(
//!     || Condition::new().wait_timeout(Duration::from_millis(10)),
//!     None,
//! )?;
//! assert!(!notified); // nobody called notify
//! # Ok::<(), squall::Error>(())
//! ```

mod semaphore;
pub(crate) mod waiters;

pub use semaphore::{BoundedSemaphore, Guard, Lock, Semaphore};

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use crate::future::Future;
use crate::ioloop::Deadline;
use waiters::{Waiter, Waiters};

// ----- Event ---------------------------------------------------------------

struct EventState {
    value: bool,
    waiters: Waiters<Waiter<()>>,
}

/// A flag coroutines can wait for: Tornado's `locks.Event`.
///
/// While it is clear, [`wait`](Event::wait) returns a pending future; [`set`](Event::set)
/// completes them all, and later waits are done at once until [`clear`](Event::clear).
/// Clones share one event.
///
/// ```
/// use squall::locks::Event;
///
/// let event = Event::new();
/// let waiting = event.wait();
/// assert!(!waiting.done());
/// event.set();
/// assert!(waiting.done() && event.wait().done());
/// ```
#[derive(Clone)]
pub struct Event {
    state: Rc<RefCell<EventState>>,
}

impl Default for Event {
    fn default() -> Self {
        Event::new()
    }
}

impl Event {
    /// A clear event.
    pub fn new() -> Event {
        Event {
            state: Rc::new(RefCell::new(EventState {
                value: false,
                waiters: Waiters::default(),
            })),
        }
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.state.borrow().value
    }

    /// Sets the flag and wakes every waiter, in the order they came.
    /// Setting a set event does nothing.
    pub fn set(&self) {
        let waiters = {
            let mut state = self.state.borrow_mut();
            if state.value {
                return;
            }
            state.value = true;
            state.waiters.take_all()
        };
        for waiter in waiters {
            waiter.resolve(Ok(()));
        }
    }

    /// Clears the flag: later waits block until the next [`set`](Event::set).
    pub fn clear(&self) {
        self.state.borrow_mut().value = false;
    }

    /// A future done when the flag is set (at once if it is set now).
    pub fn wait(&self) -> Future<()> {
        self.wait_inner(None)
    }

    /// Like [`wait`](Event::wait), but the future fails with
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) if the flag is not
    /// set by `timeout`, measured on the current loop.
    pub fn wait_timeout(&self, timeout: impl Into<Deadline>) -> Future<()> {
        self.wait_inner(Some(timeout.into()))
    }

    fn wait_inner(&self, timeout: Option<Deadline>) -> Future<()> {
        if self.is_set() {
            return Future::ready(());
        }
        let future = Future::new();
        let timer = waiters::timer(
            timeout,
            &self.state,
            |state| state.borrow().waiters.next_id(),
            |state: &RefCell<EventState>, id| {
                let waiter = state.borrow_mut().waiters.remove(id);
                if let Some(waiter) = waiter {
                    waiter.resolve(Err(waiters::timed_out("Event.wait")));
                }
            },
        );
        let Ok(timer) = timer else {
            return Future::failed(waiters::timed_out("Event.wait"));
        };
        self.state.borrow_mut().waiters.push(Waiter {
            future: future.clone(),
            timer,
        });
        future
    }

    /// How many futures are waiting.
    pub fn waiters(&self) -> usize {
        self.state.borrow().waiters.len()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.borrow();
        let mut d = f.debug_struct("Event");
        d.field("state", &if state.value { "set" } else { "clear" });
        if !state.waiters.is_empty() {
            d.field("waiters", &state.waiters.len());
        }
        d.finish()
    }
}

// ----- Condition -----------------------------------------------------------

/// Lets coroutines wait until notified: Tornado's `locks.Condition`.
///
/// Unlike `std::sync::Condvar` there is no lock to hold: on one thread,
/// nothing runs between your check and your wait. Clones share one condition.
///
/// ```
/// use squall::locks::Condition;
///
/// let condition = Condition::new();
/// let (a, b) = (condition.wait(), condition.wait());
/// condition.notify(1);
/// assert_eq!((a.done(), b.done()), (true, false));
/// condition.notify_all();
/// assert!(b.result().unwrap());
/// ```
#[derive(Clone)]
pub struct Condition {
    state: Rc<RefCell<Waiters<Waiter<bool>>>>,
}

impl Default for Condition {
    fn default() -> Self {
        Condition::new()
    }
}

impl Condition {
    /// A condition nobody waits on.
    pub fn new() -> Condition {
        Condition {
            state: Rc::new(RefCell::new(Waiters::default())),
        }
    }

    /// A future that resolves to `true` when notified.
    pub fn wait(&self) -> Future<bool> {
        self.wait_inner(None)
    }

    /// Like [`wait`](Condition::wait), but resolves to `false` (not an error,
    /// as in Tornado) if no notification comes by `timeout`, measured on the
    /// current loop.
    pub fn wait_timeout(&self, timeout: impl Into<Deadline>) -> Future<bool> {
        self.wait_inner(Some(timeout.into()))
    }

    fn wait_inner(&self, timeout: Option<Deadline>) -> Future<bool> {
        let future = Future::new();
        let timer = waiters::timer(
            timeout,
            &self.state,
            |state| state.borrow().next_id(),
            |state: &RefCell<Waiters<Waiter<bool>>>, id| {
                let waiter = state.borrow_mut().remove(id);
                if let Some(waiter) = waiter {
                    waiter.resolve(Ok(false));
                }
            },
        );
        let Ok(timer) = timer else {
            return Future::ready(false);
        };
        self.state.borrow_mut().push(Waiter {
            future: future.clone(),
            timer,
        });
        future
    }

    /// Wakes the first `n` waiters (fewer if fewer wait), in the order they
    /// came. A waiter that timed out is gone and does not count. A waiter
    /// woken here that calls `notify` again wakes the ones after it: no
    /// notification is lost.
    pub fn notify(&self, n: usize) {
        let mut woken = Vec::new();
        let mut abandoned = Vec::new();
        {
            let mut state = self.state.borrow_mut();
            while woken.len() < n {
                match state.pop_front() {
                    Some(w) if w.future.is_abandoned() => abandoned.push(w),
                    Some(w) => woken.push(w),
                    None => break,
                }
            }
        }
        drop(abandoned);
        for waiter in woken {
            waiter.resolve(Ok(true));
        }
    }

    /// Wakes one waiter: `notify(1)`, Tornado's default.
    pub fn notify_one(&self) {
        self.notify(1);
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        let n = self.state.borrow().len();
        self.notify(n);
    }

    /// How many futures are waiting.
    pub fn waiters(&self) -> usize {
        self.state.borrow().len()
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Condition");
        let waiters = self.state.borrow().len();
        if waiters > 0 {
            d.field("waiters", &waiters);
        }
        d.finish()
    }
}
