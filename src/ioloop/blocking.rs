//! The blocking log: an [`Observer`] that warns when one callback, timeout
//! or handler keeps the loop busy longer than a threshold (Tornado's
//! `set_blocking_log_threshold`).

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::observer::{Observer, Span};
use super::IOLoop;

/// Times every span. The loop's observer list holds it in place, off until
/// [`IOLoop::set_blocking_log_threshold`] gives it a threshold, and calls it
/// directly rather than through a `dyn` pointer (see `Observers::ended`).
#[derive(Default)]
pub(super) struct BlockingLog {
    threshold: Cell<Option<Duration>>,
    /// No later than the current span's start plus the threshold (`None`:
    /// not known yet, or beyond the clock). Only a span ending past it costs
    /// the subtraction: a span longer than the threshold must end past it,
    /// and most spans end long before.
    deadline: Cell<Option<Instant>>,
}

impl BlockingLog {
    pub(super) fn set(&self, threshold: Option<Duration>) {
        self.threshold.set(threshold);
        self.deadline.set(None);
    }

    #[inline]
    pub(super) fn is_on(&self) -> bool {
        self.threshold.get().is_some()
    }

    /// Whether a span ending at `now` may have blocked too long: only then
    /// is it looked at (see `past_deadline`).
    #[inline]
    pub(super) fn overdue(&self, now: Instant) -> bool {
        // Spans start no earlier than the previous one ended, so a deadline
        // set at an end stays early enough for every later span.
        !matches!(self.deadline.get(), Some(deadline) if now <= deadline)
    }

    #[cold]
    #[inline(never)]
    pub(super) fn past_deadline(&self, span: &Span, started: Instant, now: Instant) {
        let Some(threshold) = self.threshold.get() else {
            return;
        };
        let took = now.saturating_duration_since(started);
        if took > threshold {
            log::warn!(
                "{} `{}` blocked the IOLoop for {took:?}",
                span.kind,
                span.name
            );
        }
        // The next span starts at `now` or later.
        self.deadline.set(now.checked_add(threshold));
    }
}

impl Observer for BlockingLog {
    #[inline]
    fn ended(&self, span: &Span, started: Instant, now: Instant) {
        if self.overdue(now) {
            self.past_deadline(span, started, now);
        }
    }
}

impl IOLoop {
    /// Logs a warning whenever one callback or handler runs longer than
    /// `threshold` (`None` turns it off). One blocking call stalls every
    /// client of a single-threaded loop; this finds it.
    ///
    /// The log is one of the loop's [observers](crate::ioloop::observer).
    pub fn set_blocking_log_threshold(&self, threshold: Option<Duration>) {
        self.inner.observers.set_blocking_log(threshold);
    }
}
