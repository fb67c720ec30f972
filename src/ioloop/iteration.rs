//! One turn of the loop: the timeouts due, the callbacks queued before it,
//! messages from other threads, then a poll and the fd handlers it reports.
//! Every piece of user code runs as an observed span (see `observer`).

use std::time::Duration;

use super::observer::{Span, SpanKind};
use super::remote::RemoteFn;
use super::timers::TimeoutKey;
use super::{ticks, Callback, Clock, IOLoop, Origin, RemoteMsg, WAKER_TOKEN};
use crate::callback;
use crate::error::Error;
use crate::stack_context::Context;

impl IOLoop {
    /// One iteration: Tornado's five steps (see the module docs of `ioloop`).
    pub(super) fn run_once(&self) -> Result<(), Error> {
        let inner = &*self.inner;
        let iteration = inner.iteration.get().wrapping_add(1);
        inner.iteration.set(iteration);
        self.observe_iteration(iteration);

        // 1. Note the timeouts due now, before any callback runs.
        let (due, now) = self.take_due_timeouts();

        // 2. Run the callbacks queued before this iteration, then the ones
        //    other threads sent.
        let ncallbacks = self.run_callbacks();
        let nremote = self.run_remote_callbacks() + self.run_channels();

        // 3. Run the due timeouts; one removed meanwhile is gone.
        let ntimeouts = self.run_timeouts(due);

        if inner.stopping.get() || inner.closed.get() {
            return Ok(());
        }

        // 4. Poll: at once if callbacks are queued, else until the next
        //    deadline. If nothing ran, the time read in step 1 is still now.
        let ran = ncallbacks + nremote + ntimeouts > 0;
        let timeout = self.poll_timeout(if ran { None } else { now });
        self.poll_unless_pointless(timeout)?;

        // 5. Call the handler of each ready fd.
        self.dispatch_events();

        self.log_iteration(ncallbacks, nremote, ntimeouts, timeout);
        Ok(())
    }

    /// Step 1: pops the timeouts due now, with the time read to decide (if
    /// the loop read it). The empty cases, the usual ones, skip the buffer
    /// juggling.
    #[inline]
    fn take_due_timeouts(&self) -> (Vec<TimeoutKey>, Option<u64>) {
        let inner = &*self.inner;
        let mut timers = inner.timers.borrow_mut();
        if timers.is_empty() {
            return (Vec::new(), None);
        }
        let mut spare = inner.due.borrow_mut();
        let now = self.loop_time();
        timers.pop_due(now, &mut spare);
        let due = if spare.is_empty() {
            Vec::new()
        } else {
            std::mem::take(&mut *spare)
        };
        (due, Some(now))
    }

    /// Step 2: the callbacks queued before this iteration began. The queue
    /// is swapped with last turn's emptied vector (kept for its capacity),
    /// so callbacks added meanwhile wait for the next turn.
    #[inline]
    fn run_callbacks(&self) -> usize {
        let inner = &*self.inner;
        if inner.callbacks.borrow().is_empty() {
            return 0;
        }
        let mut batch = {
            let mut spare = std::mem::take(&mut *inner.spare.borrow_mut());
            std::mem::swap(&mut spare, &mut *inner.callbacks.borrow_mut());
            spare
        };
        let count = batch.len();
        for cb in batch.drain(..) {
            if inner.closed.get() {
                // Closed by an earlier callback of this batch: the rest
                // are pending callbacks, and `close` drops those.
                drop(cb);
            } else {
                self.run_callback(cb, SpanKind::Callback, Origin::Callback);
            }
        }
        *inner.spare.borrow_mut() = batch;
        count
    }

    /// Step 3: the timeouts noted in step 1, in deadline order.
    #[inline]
    fn run_timeouts(&self, mut due: Vec<TimeoutKey>) -> usize {
        let count = due.len();
        if count == 0 {
            return 0;
        }
        for key in due.drain(..) {
            let cb = self.inner.timers.borrow_mut().take(key);
            if let Some(cb) = cb {
                self.run_callback(cb, SpanKind::Timeout, Origin::Timeout);
            }
        }
        *self.inner.due.borrow_mut() = due;
        count
    }

    /// Step 4: polls, but not when it could only report the remote waker
    /// (no fd handler, no wait), since remote messages are read every
    /// iteration anyway: that skips a syscall.
    #[inline]
    fn poll_unless_pointless(&self, timeout: Option<Duration>) -> Result<(), Error> {
        if timeout == Some(Duration::ZERO) && self.inner.handlers.borrow().map.is_empty() {
            // The last poll's events are spent.
            self.inner.events.borrow_mut().clear();
            Ok(())
        } else {
            self.observed_poll(timeout)
        }
    }

    /// `RUST_LOG=squall=trace`: one line per iteration.
    #[inline]
    fn log_iteration(
        &self,
        ncallbacks: usize,
        nremote: usize,
        ntimeouts: usize,
        timeout: Option<Duration>,
    ) {
        if log::log_enabled!(target: "squall::ioloop", log::Level::Trace) {
            log::trace!(
                target: "squall::ioloop",
                "iteration: {ncallbacks} callbacks, {nremote} remote, {ntimeouts} timeouts, \
                 poll timeout {timeout:?}, {} events",
                self.polled_events()
            );
        }
    }

    /// `now` in ticks, if step 1 read it and it is still now.
    fn poll_timeout(&self, now: Option<u64>) -> Option<Duration> {
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

    /// The time for the loop's own timer decisions. While observers are
    /// installed (the blocking log, say), the loop read the system clock
    /// when the last span of user code ended, and only the loop's own
    /// bookkeeping ran since: that reading will do, and saves a clock read
    /// per iteration. Every span refreshes it and a poll forgets it, so it
    /// is never older than the loop's own work (see `Observers::recent`).
    /// In ticks (see `ticks`): what the timers compare and subtract.
    #[inline]
    fn loop_time(&self) -> u64 {
        let inner = &*self.inner;
        match (&inner.clock, inner.observers.recent()) {
            (Clock::System, Some(recent)) => recent,
            _ => self.now_ticks(),
        }
    }

    /// How many fd events the last poll reported (the waker's aside).
    pub(super) fn polled_events(&self) -> usize {
        let events = self.inner.events.borrow();
        events
            .iter()
            .filter(|event| event.token() != WAKER_TOKEN)
            .count()
    }

    /// Inlined into `observed_poll`, its one caller.
    #[inline]
    pub(super) fn poll(&self, timeout: Option<Duration>) -> Result<(), Error> {
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
                    manual.advance_to(ticks::base().instant(next));
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
                RemoteMsg::Callback(f, name) => self.run_remote(f, name),
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
        if !inner.has_channels.get() {
            return 0;
        }
        let count = inner.channels.borrow().len();
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
            let (n, done) = source.drain(self);
            handled += n;
            finished |= done;
        }
        if finished {
            let gone: Vec<_> = {
                let mut channels = inner.channels.borrow_mut();
                let all = std::mem::take(&mut *channels);
                let (gone, live): (Vec<_>, Vec<_>) = all.into_iter().partition(|s| s.finished());
                inner.has_channels.set(!live.is_empty());
                *channels = live;
                gone
            };
            drop(gone);
        }
        handled
    }

    /// Whether no typed channel holds a value. Asked before every sleeping
    /// poll; a loop with no channel at all (the usual server) answers from
    /// a `Cell` (see `has_channels`), not from a borrow and an iterator.
    #[inline]
    fn channels_empty(&self) -> bool {
        !self.inner.has_channels.get() || self.inner.channels.borrow().iter().all(|s| s.is_empty())
    }

    /// A callback or timeout, as one observed span.
    #[inline]
    fn run_callback(&self, cb: Callback, kind: SpanKind, origin: Origin) {
        let site = cb.site();
        let Callback { f, ctx, name, .. } = cb;
        let span = || Span::new(kind, name, site);
        self.observed(span, || callback::invoke(&ctx, origin, name, f));
    }

    /// A callback from another thread, as one observed span.
    pub(super) fn run_remote(&self, mut f: RemoteFn, name: &'static str) {
        let span = || Span::new(SpanKind::Remote, name, None);
        self.observed(span, || {
            callback::invoke(&Context::empty(), Origin::Remote, name, &mut *f)
        });
    }
}
