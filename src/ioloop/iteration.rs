//! One turn of the loop: the timeouts due, the callbacks queued before it,
//! messages from other threads, then a poll and the fd handlers it reports;
//! and the blocking log, which times each callback and handler.

use std::time::{Duration, Instant};

use super::{Callback, Clock, IOLoop, Origin, RemoteMsg, WAKER_TOKEN};
use crate::callback;
use crate::error::Error;
use crate::stack_context::Context;

impl IOLoop {
    /// The blocking log's last clock reading, while the log is on (then it
    /// is kept fresh: taken when the last callback ended, or this one began).
    #[inline]
    pub(super) fn blocking_reading(&self) -> Option<Instant> {
        self.inner.blocking_threshold.get()?;
        self.inner.blocking_last.get()
    }

    pub(super) fn run_once(&self) -> Result<(), Error> {
        let inner = &*self.inner;
        inner.iteration.set(inner.iteration.get().wrapping_add(1));
        #[cfg(feature = "trace")]
        if inner.trace.is_enabled() {
            inner.trace.begin_iteration();
        }

        // 1. Timeouts due now (noted before callbacks run, as Tornado does).
        // The empty cases, the usual ones, skip the buffer juggling below.
        let mut due = Vec::new();
        let mut now = None;
        {
            let mut timers = inner.timers.borrow_mut();
            if !timers.is_empty() {
                let mut spare = inner.due.borrow_mut();
                let t = self.loop_time();
                now = Some(t);
                timers.pop_due(t, &mut spare);
                if !spare.is_empty() {
                    due = std::mem::take(&mut *spare);
                }
            }
        }

        // 2. Callbacks queued before this iteration, then remote ones.
        let mut ncallbacks = 0;
        if !inner.callbacks.borrow().is_empty() {
            let mut batch = {
                let mut spare = std::mem::take(&mut *inner.spare.borrow_mut());
                std::mem::swap(&mut spare, &mut *inner.callbacks.borrow_mut());
                spare
            };
            ncallbacks = batch.len();
            for cb in batch.drain(..) {
                if inner.closed.get() {
                    // Closed by an earlier callback of this batch: the rest
                    // are pending callbacks, and `close` drops those.
                    drop(cb);
                } else {
                    self.run_callback(cb, Origin::Callback);
                }
            }
            *inner.spare.borrow_mut() = batch;
        }
        let nremote = self.run_remote_callbacks() + self.run_channels();

        // 3. Due timeouts; one removed meanwhile is gone from the map.
        let ntimeouts = due.len();
        if ntimeouts > 0 {
            for key in due.drain(..) {
                let cb = inner.timers.borrow_mut().take(key);
                if let Some(cb) = cb {
                    self.run_callback(cb, Origin::Timeout);
                }
            }
            *inner.due.borrow_mut() = due;
        }

        if inner.stopping.get() || inner.closed.get() {
            return Ok(());
        }

        // 4. Poll. If nothing ran, the time read for the timers is still now.
        let ran = ncallbacks + nremote + ntimeouts > 0;
        let timeout = self.poll_timeout(if ran { None } else { now });
        // With no fd handler registered, a non-blocking poll could only
        // report the remote waker, and remote messages are read every
        // iteration anyway: skip the syscall.
        if timeout == Some(Duration::ZERO) && self.inner.handlers.borrow().map.is_empty() {
            // The last poll's events are spent.
            inner.events.borrow_mut().clear();
        } else {
            #[cfg(feature = "trace")]
            let started = inner.trace.is_enabled().then(|| inner.trace.now());
            // Time spent waiting here is nobody's fault.
            inner.blocking_last.set(None);
            self.poll(timeout)?;
            #[cfg(feature = "trace")]
            if let Some(started) = started {
                let kind = crate::trace::Kind::Poll {
                    timeout,
                    events: self.polled_events(),
                };
                inner.trace.record(kind, started, "", None);
            }
        }

        // 5. Handlers.
        self.dispatch_events();

        if log::log_enabled!(target: "squall::ioloop", log::Level::Trace) {
            log::trace!(
                target: "squall::ioloop",
                "iteration: {ncallbacks} callbacks, {nremote} remote, {ntimeouts} timeouts, \
                 poll timeout {timeout:?}, {} events",
                self.polled_events()
            );
        }
        Ok(())
    }

    fn poll_timeout(&self, now: Option<Instant>) -> Option<Duration> {
        let inner = &*self.inner;
        if !inner.callbacks.borrow().is_empty() {
            return Some(Duration::ZERO);
        }
        let mut timers = inner.timers.borrow_mut();
        if timers.is_empty() {
            return None;
        }
        timers.next_timeout(now.unwrap_or_else(|| self.loop_time()))
    }

    /// The time for the loop's own timer decisions. With the blocking log
    /// on (and the system clock), its last reading will do: it was taken when
    /// the last callback ended, and only the loop has run since. That saves
    /// a clock read or two per iteration.
    #[inline]
    fn loop_time(&self) -> Instant {
        let inner = &*self.inner;
        match (&inner.clock, self.blocking_reading()) {
            (Clock::System, Some(last)) => last,
            _ => self.time(),
        }
    }

    /// How many fd events the last poll reported (the waker's aside).
    fn polled_events(&self) -> usize {
        let events = self.inner.events.borrow();
        events
            .iter()
            .filter(|event| event.token() != WAKER_TOKEN)
            .count()
    }

    fn poll(&self, timeout: Option<Duration>) -> Result<(), Error> {
        let inner = &*self.inner;
        // A manual clock never waits for real time: poll without blocking and,
        // if nothing happened, jump to the next deadline.
        let manual = inner.clock.as_manual().filter(|_| timeout.is_some());
        let mut timeout = if manual.is_some() {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        // Announce the sleep to remote senders; if one slipped in, don't sleep.
        let mut sleeping = false;
        if timeout != Some(Duration::ZERO) {
            let remote = &inner.remote;
            if remote.prepare_sleep(|| remote.queued() == 0 && self.channels_empty()) {
                sleeping = true;
            } else {
                timeout = Some(Duration::ZERO);
            }
        }

        let mut events = inner.events.borrow_mut();
        let result = {
            let mut poll = inner.poll.borrow_mut();
            match poll.as_mut() {
                Some(poll) => poll.poll(&mut events, timeout),
                None => Ok(()),
            }
        };
        if sleeping {
            inner.remote.end_sleep();
        }
        match result {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err.into()),
        }
        // The handlers run straight from `events` (see `dispatch_events`).
        if let Some(manual) = manual {
            let nevents = events
                .iter()
                .filter(|event| event.token() != WAKER_TOKEN)
                .count();
            // Idle means no event, no callback, and no message from another
            // thread waiting to be run either.
            let remote_waiting = inner.remote.queued() > 0 || !self.channels_empty();
            if nevents == 0 && inner.callbacks.borrow().is_empty() && !remote_waiting {
                let next = inner.timers.borrow_mut().next_deadline();
                if let Some(next) = next {
                    manual.advance_to(next);
                }
            }
        }
        Ok(())
    }

    fn run_remote_callbacks(&self) -> usize {
        let inner = &*self.inner;
        // Only what was sent before this point: a flood from other threads
        // cannot keep the loop from its own work.
        let pending = inner.remote.queued();
        if pending == 0 {
            return 0;
        }
        let mut received = 0;
        for _ in 0..pending {
            let msg = match inner.remote_rx.borrow().as_ref() {
                Some(rx) => rx.try_recv().ok(),
                None => None,
            };
            let Some(msg) = msg else {
                break;
            };
            received += 1;
            match msg {
                RemoteMsg::Callback(mut f, name) => {
                    let started = self.blocking_clock();
                    #[cfg(feature = "trace")]
                    let traced = inner.trace.is_enabled().then(|| inner.trace.now());
                    callback::invoke(&Context::empty(), Origin::Remote, name, &mut *f);
                    #[cfg(feature = "trace")]
                    if let Some(traced) = traced {
                        inner
                            .trace
                            .record(crate::trace::Kind::Remote, traced, name, None);
                    }
                    self.check_blocking(started, Origin::Remote, name);
                }
                RemoteMsg::Stop => self.stop(),
            }
        }
        inner.remote.received(received);
        received
    }

    /// Drains each typed channel once; forgets the ones whose senders are
    /// all gone.
    fn run_channels(&self) -> usize {
        let inner = &*self.inner;
        let count = inner.channels.borrow().len();
        if count == 0 {
            return 0;
        }
        // Channel handlers run outside the blocking log, so its last
        // reading is no longer now for them (`recent_instant`), nor after
        // them (`loop_time`).
        inner.blocking_last.set(None);
        let mut handled = 0;
        let mut finished = false;
        for i in 0..count {
            // Cloned out so no borrow is held while handlers run (they may
            // make channels of their own).
            let Some(source) = inner.channels.borrow().get(i).cloned() else {
                break;
            };
            if inner.closed.get() {
                break;
            }
            let (n, done) = source.drain();
            if n > 0 {
                inner.blocking_last.set(None);
            }
            handled += n;
            finished |= done;
        }
        if finished {
            let gone: Vec<_> = {
                let mut channels = inner.channels.borrow_mut();
                let all = std::mem::take(&mut *channels);
                let (gone, live) = all.into_iter().partition(|s| s.finished());
                *channels = live;
                gone
            };
            drop(gone);
        }
        handled
    }

    fn channels_empty(&self) -> bool {
        self.inner.channels.borrow().iter().all(|s| s.is_empty())
    }

    #[inline]
    fn run_callback(&self, cb: Callback, origin: Origin) {
        #[cfg(feature = "trace")]
        let Callback { f, ctx, name, site } = cb;
        #[cfg(not(feature = "trace"))]
        let Callback { f, ctx, name } = cb;
        let started = self.blocking_clock();
        // One call of `invoke` on both paths, so it stays inlined.
        #[cfg(feature = "trace")]
        let traced = self
            .inner
            .trace
            .is_enabled()
            .then(|| self.inner.trace.now());
        callback::invoke(&ctx, origin, name, f);
        #[cfg(feature = "trace")]
        if let Some(traced) = traced {
            self.trace_callback(traced, origin, name, site);
        }
        self.check_blocking(started, origin, name);
    }

    #[cfg(feature = "trace")]
    #[cold]
    #[inline(never)]
    fn trace_callback(
        &self,
        started: Instant,
        origin: Origin,
        name: &'static str,
        site: &'static std::panic::Location<'static>,
    ) {
        let kind = match origin {
            Origin::Timeout => crate::trace::Kind::Timeout,
            _ => crate::trace::Kind::Callback,
        };
        self.inner.trace.record(kind, started, name, Some(site));
    }

    /// When the callback about to run starts, if the blocking log is on:
    /// the end of the previous one, when it ran in this stretch of work.
    #[inline]
    pub(super) fn blocking_clock(&self) -> Option<Instant> {
        let threshold = self.inner.blocking_threshold.get()?;
        if let Some(last) = self.inner.blocking_last.get() {
            return Some(last);
        }
        let now = Instant::now();
        self.inner.blocking_last.set(Some(now));
        self.inner.blocking_deadline.set(now.checked_add(threshold));
        Some(now)
    }

    /// After a callback that began at `started`: warns if it took longer
    /// than the threshold. A callback that takes longer than the threshold
    /// ends past the deadline (set at or before its start, at most a
    /// threshold ahead), so comparing with the deadline is enough until then.
    #[inline]
    pub(super) fn check_blocking(&self, started: Option<Instant>, origin: Origin, name: &str) {
        let Some(started) = started else {
            return;
        };
        let now = Instant::now();
        if self.inner.blocking_deadline.get().is_some_and(|d| now > d) {
            self.past_deadline(started, now, origin, name);
        }
        self.inner.blocking_last.set(Some(now));
    }

    #[cold]
    #[inline(never)]
    fn past_deadline(&self, started: Instant, now: Instant, origin: Origin, name: &str) {
        let Some(threshold) = self.inner.blocking_threshold.get() else {
            return;
        };
        let took = now.saturating_duration_since(started);
        if took > threshold {
            log::warn!("{origin} `{name}` blocked the IOLoop for {took:?}");
        }
        self.inner.blocking_deadline.set(now.checked_add(threshold));
    }
}
