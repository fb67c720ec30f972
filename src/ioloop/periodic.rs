//! `PeriodicCallback`: a callback run every `period`, skipping missed runs.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::callback::{self, CallbackReturn, Origin};
use crate::error::{Error, ErrorKind};
use crate::stack_context::Context;

use super::{IOLoop, TimeoutHandle};

type PeriodicFn = Box<dyn FnMut() -> Result<(), Error>>;

struct State {
    running: bool,
    io_loop: Option<IOLoop>,
    next: Option<Instant>,
    timeout: Option<TimeoutHandle>,
}

struct Inner {
    period: Duration,
    name: &'static str,
    /// Taken out while the callback runs, so it may call `stop`/`start`.
    callback: RefCell<Option<PeriodicFn>>,
    state: RefCell<State>,
}

/// Runs a callback every `period` on the current loop (Tornado's `PeriodicCallback`).
///
/// The first run is one period after [`start`](PeriodicCallback::start). If
/// the loop falls behind (a callback blocked), missed runs are skipped, not
/// run in a burst: the next run is the first multiple of `period` after now.
/// The loop holds the callback while it is started, as Tornado's does, so
/// dropping the handle does not stop it: call [`stop`](PeriodicCallback::stop).
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use std::time::Duration;
/// use squall::ioloop::{Clock, ManualClock, PeriodicCallback};
/// use squall::IOLoop;
///
/// let io_loop = IOLoop::with_clock(Clock::Manual(ManualClock::new()))?;
/// let count = Rc::new(Cell::new(0));
/// let (c, l) = (count.clone(), io_loop.clone());
/// let pc = PeriodicCallback::new(move || {
///     c.set(c.get() + 1);
///     if c.get() == 3 { l.stop() }
/// }, Duration::from_secs(60))?;
/// io_loop.make_current();
/// pc.start();
/// io_loop.start()?; // three minutes pass at once on the manual clock
/// assert_eq!(count.get(), 3);
/// pc.stop();
/// # Ok::<(), squall::Error>(())
/// ```
#[derive(Clone)]
pub struct PeriodicCallback {
    inner: Rc<Inner>,
}

impl PeriodicCallback {
    /// A stopped periodic callback.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] if `period` is zero.
    pub fn new<R, F>(mut f: F, period: Duration) -> Result<PeriodicCallback, Error>
    where
        R: CallbackReturn,
        F: FnMut() -> R + 'static,
    {
        if period.is_zero() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "PeriodicCallback period must be greater than zero",
            ));
        }
        Ok(PeriodicCallback {
            inner: Rc::new(Inner {
                period,
                name: std::any::type_name::<F>(),
                callback: RefCell::new(Some(Box::new(move || f().into_outcome()))),
                state: RefCell::new(State {
                    running: false,
                    io_loop: None,
                    next: None,
                    timeout: None,
                }),
            }),
        })
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.inner.period
    }

    /// Starts on the thread's current loop; the first run is one period from
    /// now. Starting a running callback does nothing. Runs capture the
    /// current stack context.
    pub fn start(&self) {
        let io_loop = {
            let mut state = self.inner.state.borrow_mut();
            if state.running {
                return;
            }
            let io_loop = IOLoop::current();
            state.running = true;
            state.next = Some(io_loop.time());
            state.io_loop = Some(io_loop.clone());
            io_loop
        };
        schedule_next(&self.inner, &io_loop);
    }

    /// Stops it; a pending run is cancelled.
    pub fn stop(&self) {
        let (timeout, io_loop) = {
            let mut state = self.inner.state.borrow_mut();
            state.running = false;
            state.next = None;
            (state.timeout.take(), state.io_loop.take())
        };
        if let (Some(timeout), Some(io_loop)) = (timeout, io_loop) {
            io_loop.remove_timeout(timeout);
        }
    }

    /// Whether it is started.
    pub fn is_running(&self) -> bool {
        self.inner.state.borrow().running
    }
}

fn schedule_next(inner: &Rc<Inner>, io_loop: &IOLoop) {
    let next = {
        let mut state = inner.state.borrow_mut();
        if !state.running || state.timeout.is_some() {
            return;
        }
        let Some(mut next) = state.next else { return };
        let now = io_loop.time();
        if next <= now {
            // Tornado's rule: next += (floor((now - next) / period) + 1) * period.
            let period = inner.period.as_nanos();
            let behind = (now - next).as_nanos();
            next = super::timers::saturating_add(next, nanos((behind / period + 1) * period));
        }
        state.next = Some(next);
        next
    };
    let me = inner.clone();
    let l = io_loop.clone();
    let handle = io_loop.call_at(next, move || run(&me, &l));
    inner.state.borrow_mut().timeout = Some(handle);
}

fn run(inner: &Rc<Inner>, io_loop: &IOLoop) {
    {
        let mut state = inner.state.borrow_mut();
        state.timeout = None;
        if !state.running {
            return;
        }
    }
    let f = inner.callback.borrow_mut().take();
    if let Some(mut f) = f {
        // Report an error and go on: one failed run must not end the series.
        callback::invoke(&Context::capture(), Origin::Periodic, inner.name, &mut f);
        *inner.callback.borrow_mut() = Some(f);
    }
    schedule_next(inner, io_loop);
}

fn nanos(n: u128) -> Duration {
    let secs = (n / 1_000_000_000).min(u64::MAX as u128) as u64;
    Duration::new(secs, (n % 1_000_000_000) as u32)
}

impl fmt::Debug for PeriodicCallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeriodicCallback")
            .field("period", &self.inner.period)
            .field("running", &self.is_running())
            .finish()
    }
}
