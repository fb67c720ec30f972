//! The blocking log: an [`Observer`] that warns when one callback, timeout
//! or handler keeps the loop busy longer than a threshold (Tornado's
//! `set_blocking_log_threshold`).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::observer::{Observer, Span};
use super::IOLoop;

/// Times every span; the loop installs it for
/// [`IOLoop::set_blocking_log_threshold`].
pub(super) struct BlockingLog {
    threshold: Duration,
    /// No later than the current span's start plus the threshold (`None`:
    /// not known yet, or beyond the clock). Only a span ending past it costs
    /// the subtraction: a span longer than the threshold must end past it,
    /// and most spans end long before.
    deadline: Cell<Option<Instant>>,
}

impl BlockingLog {
    pub(super) fn new(threshold: Duration) -> BlockingLog {
        BlockingLog {
            threshold,
            deadline: Cell::new(None),
        }
    }

    #[cold]
    #[inline(never)]
    fn past_deadline(&self, span: &Span, started: Instant, now: Instant) {
        let took = now.saturating_duration_since(started);
        if took > self.threshold {
            log::warn!("{} `{}` blocked the IOLoop for {took:?}", span.kind, span.name);
        }
        // The next span starts at `now` or later.
        self.deadline.set(now.checked_add(self.threshold));
    }
}

impl Observer for BlockingLog {
    #[inline]
    fn ended(&self, span: &Span, started: Instant, now: Instant) {
        // Spans start no earlier than the previous one ended, so a deadline
        // set at an end stays early enough for every later span.
        match self.deadline.get() {
            Some(deadline) if now <= deadline => {}
            _ => self.past_deadline(span, started, now),
        }
    }
}

impl IOLoop {
    /// Logs a warning whenever one callback or handler runs longer than
    /// `threshold` (`None` turns it off). One blocking call stalls every
    /// client of a single-threaded loop; this finds it.
    ///
    /// It is an [`Observer`](crate::ioloop::Observer) of the loop.
    pub fn set_blocking_log_threshold(&self, threshold: Option<Duration>) {
        let new = threshold.map(|t| Rc::new(BlockingLog::new(t)));
        if let Some(new) = &new {
            self.add_observer(new.clone());
        }
        let old = std::mem::replace(&mut *self.inner.blocking_log.borrow_mut(), new);
        if let Some(old) = old {
            self.remove_observer(&old);
        }
    }
}
