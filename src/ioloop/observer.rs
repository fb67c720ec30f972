//! The loop's one observer hook: told when each iteration begins, when each
//! callback, timeout, fd handler or message from another thread begins and
//! ends, and when the poll begins and ends.
//!
//! The blocking log ([`IOLoop::set_blocking_log_threshold`]) and the
//! `trace` feature's recorder are observers; so can your metrics be:
//!
//! ```
//! use std::cell::Cell;
//! use std::rc::Rc;
//! use std::time::{Duration, Instant};
//! use squall::ioloop::{Observer, Span, SpanKind};
//! use squall::IOLoop;
//!
//! /// Counts the timeouts run and their total time.
//! #[derive(Default)]
//! struct TimeoutMeter {
//!     count: Cell<u32>,
//!     busy: Cell<Duration>,
//! }
//!
//! impl Observer for TimeoutMeter {
//!     fn ended(&self, span: &Span, started: Instant, now: Instant) {
//!         if span.kind == SpanKind::Timeout {
//!             self.count.set(self.count.get() + 1);
//!             self.busy.set(self.busy.get() + (now - started));
//!         }
//!     }
//! }
//!
//! let io_loop = IOLoop::new()?;
//! let meter = Rc::new(TimeoutMeter::default());
//! io_loop.add_observer(meter.clone());
//! let l = io_loop.clone();
//! io_loop.call_later(Duration::from_millis(1), move || l.stop());
//! io_loop.start()?;
//! assert_eq!(meter.count.get(), 1);
//! # Ok::<(), squall::Error>(())
//! ```
//!
//! # What it costs
//! With no observer installed, each event costs the loop one predictable
//! branch and nothing else: no clock read, no call, the [`Span`] never
//! made. With one, the loop reads the system's monotonic clock once at the
//! end of each span (a span's start is the previous one's end when nothing
//! but the loop ran in between) and calls each observer's methods through
//! a `dyn` pointer; the blocking log, which servers keep on, is called
//! directly instead, and costs about what it did before it was an observer
//! (`bench/http_callgrind.sh`: within 1% of a request).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::os::unix::io::RawFd;
use std::panic::Location;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::blocking::BlockingLog;
use super::{ticks, Events, IOLoop};

/// What the loop is running: the argument of [`Observer::began`] and
/// [`Observer::ended`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Span {
    /// Which kind of user code.
    pub kind: SpanKind,
    /// The Rust type name of the closure.
    pub name: &'static str,
    /// Where it was scheduled (`add_callback`, `add_timeout`, `add_handler`
    /// call site); known only with the `trace` feature, which stores it.
    pub site: Option<&'static Location<'static>>,
}

impl Span {
    pub(crate) fn new(
        kind: SpanKind,
        name: &'static str,
        site: Option<&'static Location<'static>>,
    ) -> Span {
        Span { kind, name, site }
    }
}

/// The kinds of user code the loop runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpanKind {
    /// A callback from `add_callback` / `spawn_callback` / `add_future`.
    Callback,
    /// A timeout's callback (`add_timeout`, `call_later`, `call_at`).
    Timeout,
    /// An fd handler called for `events` on `fd`.
    Handler {
        /// The file descriptor.
        fd: RawFd,
        /// What it was ready for.
        events: Events,
    },
    /// A callback sent through a [`Remote`](crate::Remote), or a value
    /// through a [`remote_channel`](crate::IOLoop::remote_channel).
    Remote,
}

impl fmt::Display for SpanKind {
    /// The words of the loop's log lines: `callback`, `timeout callback`,
    /// `handler for fd 7`, `remote callback`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpanKind::Callback => f.write_str("callback"),
            SpanKind::Timeout => f.write_str("timeout callback"),
            SpanKind::Handler { fd, .. } => write!(f, "handler for fd {fd}"),
            SpanKind::Remote => f.write_str("remote callback"),
        }
    }
}

/// Something told what the loop does, installed with
/// [`IOLoop::add_observer`]. Every method does nothing unless overridden.
///
/// Times are readings of the system's monotonic clock (`Instant::now()`),
/// whatever the loop's own [`Clock`](crate::ioloop::Clock): how long user
/// code blocks the loop is real time.
///
/// An observer runs on the loop's thread between two pieces of user code;
/// everything it takes is the loop's time, so it should be quick. It may
/// add or remove observers; the change applies from the next span, as each
/// span's end goes to the observers that heard it begin. A panic in an
/// observer is not caught: it is a bug in the observer.
pub trait Observer {
    /// Iteration number `iteration` (counted from 1) begins.
    fn iteration_began(&self, iteration: u64) {
        let _ = iteration;
    }

    /// `span` is about to run, at `now`.
    fn began(&self, span: &Span, now: Instant) {
        let _ = (span, now);
    }

    /// `span`, which began at `started`, ended at `now`.
    fn ended(&self, span: &Span, started: Instant, now: Instant) {
        let _ = (span, started, now);
    }

    /// The loop is about to poll for IO, waiting at most `timeout` (`None`:
    /// until an event).
    fn poll_began(&self, timeout: Option<Duration>, now: Instant) {
        let _ = (timeout, now);
    }

    /// The poll that began at `started` returned at `now` with `events`
    /// ready fds.
    fn poll_ended(&self, timeout: Option<Duration>, events: usize, started: Instant, now: Instant) {
        let _ = (timeout, events, started, now);
    }
}

/// What `IOLoop::observed` carries across a span.
enum Watch {
    /// No observer.
    Off,
    /// The blocking log alone: the span's start, in ticks.
    Blocking(u64),
    /// Observers in the list too.
    List(Started),
}

/// The observers installed at one moment.
type List = Rc<[Rc<dyn Observer>]>;

/// What a span's end needs from its beginning: when it began (in the
/// loop's ticks, see `ticks`), and the observers (beyond the blocking log)
/// that heard it begin.
pub(super) type Started = (u64, Option<List>);

/// The loop's observers, and the clock reading they share.
pub(crate) struct Observers {
    /// Whether any observer is installed: the one branch the loop pays per
    /// event when none is.
    active: Cell<bool>,
    /// The blocking log, held in place and called directly: `hello_server`
    /// keeps it on, and a list walk and two `dyn` calls per span cost that
    /// hot path 5% of a request. It is an `Observer` like the others.
    blocking: BlockingLog,
    /// The others, replaced, never changed in place: the dispatch clones
    /// the `Rc` and holds no borrow while observers run (they may add or
    /// remove some). A span's end goes to the list its beginning went to,
    /// so every observer hears both ends of a span or neither.
    list: RefCell<Option<List>>,
    /// Whether `list` is `Some`: a `Cell` read, cheaper than the borrow.
    listening: Cell<bool>,
    /// While observers are installed: the clock read when the last span
    /// ended, if only the loop's own bookkeeping ran since. Forgotten when
    /// the loop is about to wait or has been away (`forget_reading`). In
    /// ticks: the loop's timers use it as it is.
    last: Cell<Option<u64>>,
}

impl Default for Observers {
    fn default() -> Observers {
        Observers {
            active: Cell::new(false),
            blocking: BlockingLog::default(),
            list: RefCell::new(None),
            listening: Cell::new(false),
            last: Cell::new(None),
        }
    }
}

impl Observers {
    pub(crate) fn add(&self, observer: Rc<dyn Observer>) {
        let mut list = self.list.borrow_mut();
        let mut grown: Vec<Rc<dyn Observer>> =
            list.iter().flat_map(|l| l.iter()).cloned().collect();
        grown.push(observer);
        *list = Some(grown.into());
        drop(list);
        self.update_active();
    }

    /// Removes the observer at `ptr` (compared by address); returns whether
    /// it was there.
    pub(crate) fn remove(&self, ptr: *const ()) -> bool {
        let old = {
            let mut list = self.list.borrow_mut();
            let Some(old) = list.as_ref() else {
                return false;
            };
            if !old.iter().any(|o| same(o, ptr)) {
                return false;
            }
            let kept: Vec<Rc<dyn Observer>> =
                old.iter().filter(|o| !same(o, ptr)).cloned().collect();
            let kept = (!kept.is_empty()).then(|| kept.into());
            std::mem::replace(&mut *list, kept)
        };
        self.update_active();
        // Dropped with no borrow held: the observer's drop is user code.
        drop(old);
        true
    }

    pub(super) fn set_blocking_log(&self, threshold: Option<Duration>) {
        self.blocking.set(threshold);
        self.update_active();
    }

    fn update_active(&self) {
        self.listening.set(self.list.borrow().is_some());
        let active = self.blocking.is_on() || self.listening.get();
        self.active.set(active);
        // Whatever the change, the last reading is void: turned off,
        // nothing refreshes it any more; turned on (by a callback nobody
        // timed), it is the end of some earlier span, not now, and a poll
        // timeout worked out from it would wait too long.
        self.last.set(None);
    }

    #[inline]
    pub(super) fn active(&self) -> bool {
        self.active.get()
    }

    /// The last span's end, if it is still as good as now (see `last`).
    /// Only while observers are installed: one removed mid-span leaves a
    /// reading that nothing refreshes any more.
    #[inline]
    pub(super) fn recent(&self) -> Option<u64> {
        if self.active.get() {
            self.last.get()
        } else {
            None
        }
    }

    /// Something other than an observed span ran, or the loop waited: the
    /// last reading is no longer now.
    #[inline]
    pub(super) fn forget_reading(&self) {
        self.last.set(None);
    }

    #[inline]
    fn now(&self) -> u64 {
        match self.last.get() {
            Some(now) => now,
            None => {
                let now = ticks::now();
                self.last.set(Some(now));
                now
            }
        }
    }

    /// The observers beyond the blocking log, if any.
    #[inline]
    fn list(&self) -> Option<List> {
        self.list.borrow().clone()
    }

    #[inline(never)]
    pub(super) fn iteration_began(&self, iteration: u64) {
        if let Some(list) = self.list() {
            for observer in list.iter() {
                observer.iteration_began(iteration);
            }
        }
    }

    /// A span begins, with observers in the list: its start is the last
    /// span's end if nothing but the loop ran since (one clock read per
    /// span, not two). Out of line: user observers are not the hot path.
    #[inline(never)]
    fn began_with_list(&self, span: &Span) -> Started {
        let now = self.now();
        let list = self.list();
        if let Some(list) = &list {
            let at = ticks::base().instant(now);
            for observer in list.iter() {
                observer.began(span, at);
            }
        }
        (now, list)
    }

    /// A span that the list heard begin ends: one clock read, the blocking
    /// log's deadline compared with it, then the list.
    #[inline(never)]
    fn ended_with_list(&self, span: &Span, (started, list): Started) {
        let now = ticks::now();
        self.last.set(Some(now));
        if self.blocking.is_on() && self.blocking.overdue(now) {
            self.blocking.past_deadline(span, started, now);
        }
        if let Some(list) = list {
            list_ended(&list, span, started, now);
        }
    }

    /// A span ends: one clock read and the blocking log's deadline compared
    /// with it; the span is made only for a span past the deadline. Always
    /// inlined: it ends every callback and handler, and a call and a `Span`
    /// built per span cost the raw HTTP server 3% of a request
    /// (`bench/http_callgrind.sh squallraw`).
    #[inline(always)]
    fn ended_by_blocking_log(&self, span: &impl Fn() -> Span, started: u64) {
        let now = ticks::now();
        self.last.set(Some(now));
        if self.blocking.is_on() && self.blocking.overdue(now) {
            self.blocking.past_deadline(&span(), started, now);
        }
    }

    /// The loop is about to wait: the observers in the list hear of it,
    /// and the last reading is forgotten (waiting is nobody's span).
    #[inline]
    pub(super) fn poll_began(&self, timeout: Option<Duration>) -> Option<Started> {
        let started = if self.listening.get() {
            Some(self.list_poll_began(timeout))
        } else {
            None
        };
        self.last.set(None);
        started
    }

    #[inline(never)]
    fn list_poll_began(&self, timeout: Option<Duration>) -> Started {
        let now = self.now();
        let list = self.list();
        let at = ticks::base().instant(now);
        for observer in list.iter().flat_map(|l| l.iter()) {
            observer.poll_began(timeout, at);
        }
        (now, list)
    }

    #[inline(never)]
    pub(super) fn poll_ended(&self, timeout: Option<Duration>, events: usize, started: Started) {
        let now = ticks::now();
        self.last.set(Some(now));
        let base = ticks::base();
        let (started_at, now) = (base.instant(started.0), base.instant(now));
        for observer in started.1.iter().flat_map(|l| l.iter()) {
            observer.poll_ended(timeout, events, started_at, now);
        }
    }
}

/// `started` and `now` are ticks, made `Instant`s here for the trait.
#[inline(never)]
fn list_ended(list: &List, span: &Span, started: u64, now: u64) {
    let base = ticks::base();
    let (started, now) = (base.instant(started), base.instant(now));
    for observer in list.iter() {
        observer.ended(span, started, now);
    }
}

fn same(observer: &Rc<dyn Observer>, ptr: *const ()) -> bool {
    Rc::as_ptr(observer).cast::<()>() == ptr
}

impl fmt::Debug for Observers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observers")
            .field("blocking_log", &self.blocking.is_on())
            .field(
                "others",
                &self.list.borrow().as_ref().map_or(0, |l| l.len()),
            )
            .finish()
    }
}

impl IOLoop {
    /// Installs `observer`: from the next event on, it is told when each
    /// iteration, span of user code and poll begins and ends. See the
    /// [`observer`](crate::ioloop::observer) module.
    pub fn add_observer(&self, observer: Rc<dyn Observer>) {
        self.inner.observers.add(observer);
    }

    /// Removes an observer installed with [`add_observer`](IOLoop::add_observer)
    /// (the same `Rc`, or a clone of it). Returns whether it was installed.
    pub fn remove_observer<O: Observer + ?Sized>(&self, observer: &Rc<O>) -> bool {
        self.inner
            .observers
            .remove(Rc::as_ptr(observer).cast::<()>())
    }

    // ----- the loop's side: one branch when no observer is installed -------

    /// Tells the observers an iteration begins.
    #[inline]
    pub(super) fn observe_iteration(&self, iteration: u64) {
        let observers = &*self.inner.observers;
        if observers.active() && observers.listening.get() {
            observers.iteration_began(iteration);
        }
    }

    /// Runs `f`, user code, as `span`: observers hear of its start and end.
    /// The span is made only for observers that look at it; `f` is called
    /// in one place, so it stays inlined.
    #[inline(always)]
    pub(super) fn observed<R>(&self, span: impl Fn() -> Span, f: impl FnOnce() -> R) -> R {
        let observers = &*self.inner.observers;
        // With the blocking log alone (a server's usual setting) only a
        // tick is carried across the span, not a `Started` with its list;
        // the list's own path is out of line. An observer added while the
        // span runs hears of the next one (see `Observer`).
        let watch = if !observers.active() {
            Watch::Off
        } else if !observers.listening.get() {
            Watch::Blocking(observers.now())
        } else {
            Watch::List(observers.began_with_list(&span()))
        };
        let result = f();
        match watch {
            Watch::Off => {}
            Watch::Blocking(started) => observers.ended_by_blocking_log(&span, started),
            Watch::List(started) => observers.ended_with_list(&span(), started),
        }
        result
    }

    /// Polls, telling observers when the wait began and ended. One call
    /// of `poll`, so that it is inlined here (and this into the iteration).
    #[inline]
    pub(super) fn observed_poll(&self, timeout: Option<Duration>) -> Result<(), crate::Error> {
        let observers = &*self.inner.observers;
        // (With no observer, `poll_began` only forgets a reading nobody
        // uses: cheaper than a branch around it.)
        let started = observers.poll_began(timeout);
        let result = self.poll(timeout);
        if let Some(started) = started {
            observers.poll_ended(timeout, self.polled_events(), started);
        }
        result
    }
}
