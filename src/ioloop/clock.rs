//! Where the loop gets its time: the system's monotonic clock, or a manual
//! one that tests drive by hand.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The clock an [`IOLoop`](crate::IOLoop) reads with [`time()`](crate::IOLoop::time).
///
/// ```
/// use std::time::Duration;
/// use squall::ioloop::{Clock, ManualClock};
/// use squall::IOLoop;
///
/// let clock = ManualClock::new();
/// let io_loop = IOLoop::with_clock(Clock::Manual(clock.clone()))?;
/// let t0 = io_loop.time();
/// clock.advance(Duration::from_secs(10));
/// assert_eq!(io_loop.time() - t0, Duration::from_secs(10));
/// # Ok::<(), squall::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// `Instant::now()`.
    #[default]
    System,
    /// Time that moves only when told to (see [`ManualClock`]).
    Manual(ManualClock),
}

impl Clock {
    /// The current time on this clock.
    #[inline]
    pub fn now(&self) -> Instant {
        match self {
            Clock::System => Instant::now(),
            Clock::Manual(manual) => manual.now(),
        }
    }

    pub(crate) fn as_manual(&self) -> Option<&ManualClock> {
        match self {
            Clock::System => None,
            Clock::Manual(manual) => Some(manual),
        }
    }
}

/// A clock for tests: it stands still until [`advance`](ManualClock::advance)d.
///
/// A loop built on a manual clock never sleeps for a timer: when it has
/// nothing to do but wait for the next deadline, it moves the clock to that
/// deadline at once (as tokio's paused clock does); a deadline meaning
/// "never" (`Duration::MAX`) is not one it jumps to. IO is still polled, without
/// waiting. So timer behaviour is tested exactly, and without `sleep`.
///
/// Clones share one time.
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Rc<Cell<Instant>>,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl ManualClock {
    /// A clock that starts at the real `Instant::now()` and then stands still.
    pub fn new() -> ManualClock {
        ManualClock {
            now: Rc::new(Cell::new(Instant::now())),
        }
    }

    /// The clock's current time.
    #[inline]
    pub fn now(&self) -> Instant {
        self.now.get()
    }

    /// Moves the clock forward by `by`; as far as an `Instant` goes, past
    /// that (`Duration::MAX` moves it to the end of time, not a panic).
    pub fn advance(&self, by: Duration) {
        self.now
            .set(super::timers::saturating_add(self.now.get(), by));
    }

    /// Moves the clock to `when`; a time in the past is ignored, because a
    /// monotonic clock never goes back.
    pub fn advance_to(&self, when: Instant) {
        if when > self.now.get() {
            self.now.set(when);
        }
    }
}
