//! The blocking log: an [`Observer`] that warns when one callback, timeout
//! or handler keeps the loop busy longer than a threshold (Tornado's
//! `set_blocking_log_threshold`).

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::observer::{Observer, Span};
use super::{ticks, IOLoop};

/// Times every span. The loop's observer list holds it in place, off until
/// [`IOLoop::set_blocking_log_threshold`] gives it a threshold, and calls it
/// directly rather than through a `dyn` pointer (see `Observers::ended`).
#[derive(Default)]
pub(super) struct BlockingLog {
    threshold: Cell<Option<Duration>>,
    /// The threshold in ticks (see `ticks`).
    threshold_ticks: Cell<u64>,
    /// No later than the current span's start plus the threshold, in ticks
    /// (0: not known yet). Only a span ending past it is looked at: a span
    /// longer than the threshold must end past it, and most spans end long
    /// before. An integer, so the check per span is one compare.
    deadline: Cell<u64>,
}

impl BlockingLog {
    pub(super) fn set(&self, threshold: Option<Duration>) {
        self.threshold.set(threshold);
        self.threshold_ticks
            .set(threshold.map_or(u64::MAX, ticks::from_duration));
        self.deadline.set(0);
    }

    #[inline]
    pub(super) fn is_on(&self) -> bool {
        self.threshold.get().is_some()
    }

    /// Whether a span ending at `now` may have blocked too long: only then
    /// is it looked at (see `past_deadline`).
    #[inline]
    pub(super) fn overdue(&self, now: u64) -> bool {
        // Spans start no earlier than the previous one ended, so a deadline
        // set at an end stays early enough for every later span.
        now > self.deadline.get()
    }

    /// `started` and `now` are ticks.
    #[cold]
    #[inline(never)]
    pub(super) fn past_deadline(&self, span: &Span, started: u64, now: u64) {
        if self.threshold.get().is_none() {
            return;
        }
        let took = now.saturating_sub(started);
        if took > self.threshold_ticks.get() {
            let took = Duration::from_nanos(took);
            log::warn!(
                "{} `{}` blocked the IOLoop for {took:?}",
                span.kind,
                span.name
            );
        }
        // The next span starts at `now` or later.
        self.deadline
            .set(now.saturating_add(self.threshold_ticks.get()));
    }
}

impl Observer for BlockingLog {
    #[inline]
    fn ended(&self, span: &Span, started: Instant, now: Instant) {
        // The loop calls it with ticks (see `Observers::ended`); this is
        // for the trait's sake.
        let base = ticks::base();
        let (started, now) = (base.tick(started), base.tick(now));
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
