//! A picture of the loop: what each iteration did, recorded into a bounded
//! ring buffer, printed as text or drawn as an SVG timeline.
//!
//! Behind the cargo feature `trace`. The tracer is one of the loop's
//! [observers](crate::ioloop::observer): it joins them when enabled and
//! leaves when disabled, so a loop whose tracing is off pays nothing for it
//! (the loop's one branch per event is there for every observer).
//! Recording costs a clock read at each end of a span. Turn it on with [`Tracer::enable`], read the records with
//! [`Tracer::snapshot`] or [`Tracer::drain`]:
//!
//! ```
//! use std::time::Duration;
//! use squall::trace::Kind;
//! use squall::IOLoop;
//!
//! let io_loop = IOLoop::new()?;
//! io_loop.trace().enable(1024);
//! io_loop.add_callback(|| std::thread::sleep(Duration::from_millis(2)));
//! let l = io_loop.clone();
//! io_loop.call_later(Duration::from_millis(1), move || l.stop());
//! io_loop.start()?;
//!
//! let records = io_loop.trace().drain();
//! let slow = records.iter().find(|r| r.kind == Kind::Callback).unwrap();
//! assert!(slow.duration >= Duration::from_millis(2));
//! // Where the callback was added: this very file.
//! assert!(slow.site.unwrap().file().ends_with(".rs"));
//! println!("{}", squall::trace::render_text(&records));
//! let svg = squall::trace::render_svg(&records);
//! assert!(svg.starts_with("<svg"));
//! # Ok::<(), squall::Error>(())
//! ```
//!
//! # What is recorded
//! Each [`Record`] is one span of one iteration: a callback, a due timeout,
//! an fd handler with its fd and events, a callback sent from another thread,
//! the poll with its timeout and how long it waited, and each step of a
//! generator [`Runner`](crate::gen::Runner) (which happens *inside* one of
//! the others: a step is what a coroutine did between two yields). Times are
//! read from the loop's clock, so on a [`ManualClock`](crate::ioloop::ManualClock)
//! they are exact and repeatable. Callbacks and timeouts carry the call site
//! of the `add_callback` / `add_timeout` that scheduled them.
//!
//! # What it costs
//! Measured with `benches/trace_cost.rs` (one callback per iteration, the
//! `add_callback_one` workload) under `valgrind --tool=callgrind`,
//! instructions per loop iteration: 516 without the feature, 524 with it
//! but tracing off (the call site stored with each callback; the loop's
//! branch for observers is there either way), 971 recording into a full
//! ring (two clock reads, the observer list walked at the iteration's start
//! and at each end of the span, and a record written). The bench's own doc
//! gives the commands.
//!
//! # For terminals
//! A record's `Display` is one line; [`render_text`] prints many. With
//! tracing enabled, every record is also logged at `trace` level on the
//! target `squall::trace`: `RUST_LOG=squall::trace=trace` shows them as they
//! happen.

mod ring;
mod svg;

pub use svg::{render_svg, render_svg_with, SvgOptions};

use std::cell::{Cell, RefCell};
use std::fmt;
use std::os::unix::io::RawFd;
use std::panic::Location;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use crate::ioloop::observer::Observers;
use crate::ioloop::{Clock, Events, Observer, Span, SpanKind};
use crate::IOLoop;
use ring::Ring;

/// What a [`Record`] spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
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
    /// A callback sent from another thread through a [`Remote`](crate::Remote).
    Remote,
    /// The loop asking the OS for IO readiness.
    Poll {
        /// How long it was allowed to wait (`None`: until an event).
        timeout: Option<Duration>,
        /// How many fds were ready.
        events: usize,
    },
    /// A generator coroutine run from one yield to the next (nested inside
    /// the callback, timeout or handler that resumed it).
    Step,
}

impl Kind {
    /// A short lower-case name: `callback`, `timeout`, `handler`, `remote`,
    /// `poll`, `step`.
    pub fn label(&self) -> &'static str {
        match self {
            Kind::Callback => "callback",
            Kind::Timeout => "timeout",
            Kind::Handler { .. } => "handler",
            Kind::Remote => "remote",
            Kind::Poll { .. } => "poll",
            Kind::Step => "step",
        }
    }

    /// Whether this span runs user code (everything but `Poll`).
    pub fn is_user_code(&self) -> bool {
        !matches!(self, Kind::Poll { .. })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Handler { fd, events } => write!(f, "handler fd {fd} {events:?}"),
            Kind::Poll { timeout, events } => {
                let s = if *events == 1 { "" } else { "s" };
                match timeout {
                    Some(t) => write!(f, "poll {events} event{s} (timeout {})", Ms(*t)),
                    None => write!(f, "poll {events} event{s} (no timeout)"),
                }
            }
            Kind::Remote => f.write_str("remote callback"),
            Kind::Step => f.write_str("runner step"),
            other => f.write_str(other.label()),
        }
    }
}

/// One span of one loop iteration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The iteration it happened in, counted from 1 since tracing was
    /// enabled; 0 for what ran before the loop's first iteration (such as
    /// the function given to [`run_sync`](crate::IOLoop::run_sync)).
    pub iteration: u64,
    /// When it began, since tracing was enabled ([`Tracer::origin`]), on the
    /// loop's clock.
    pub start: Duration,
    /// How long it took, on the loop's clock.
    pub duration: Duration,
    /// What it was.
    pub kind: Kind,
    /// The Rust type name of the closure or generator (empty for a poll).
    pub name: &'static str,
    /// Where it was scheduled (`add_callback`, `add_timeout`, `add_handler`
    /// call site), when known.
    pub site: Option<&'static Location<'static>>,
}

impl Record {
    /// When it ended, since tracing was enabled.
    pub fn end(&self) -> Duration {
        self.start + self.duration
    }

    /// Where it came from, for people: the call site if known, else the
    /// closure's type name without the `{{closure}}` noise; empty for a poll.
    pub fn origin(&self) -> String {
        match self.site {
            Some(site) => format!("{}:{}", site.file(), site.line()),
            None => short_name(self.name),
        }
    }
}

/// `name` without `::{{closure}}`s and squall's own module paths.
pub(crate) fn short_name(name: &str) -> String {
    name.replace("::{{closure}}", "")
        .replace("squall::gen::", "")
        .replace("squall::", "")
        .replace("core::option::", "")
        .replace("alloc::string::", "")
        .replace("alloc::vec::", "")
}

impl fmt::Display for Record {
    /// `#12  +3.250ms  handler fd 7 READ  0.041ms  src/tcpserver.rs:80`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind.to_string();
        write!(
            f,
            "#{:<5} +{:>10}  {:<42} {:>10}",
            self.iteration,
            Ms(self.start).to_string(),
            kind,
            Ms(self.duration).to_string()
        )?;
        let origin = self.origin();
        if !origin.is_empty() {
            write!(f, "  {origin}")?;
        }
        Ok(())
    }
}

/// A duration printed as milliseconds with microsecond precision.
pub(crate) struct Ms(pub(crate) Duration);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}ms", self.0.as_secs_f64() * 1e3)
    }
}

/// The records one per line, as their `Display` shows them, in order of
/// start time (a record is stored when it *ends*, so a runner step comes
/// before the callback that ran it; here it follows it).
pub fn render_text(records: &[Record]) -> String {
    let mut sorted: Vec<&Record> = records.iter().collect();
    sorted.sort_by_key(|r| (r.iteration, r.start));
    let mut out = String::new();
    for record in sorted {
        out.push_str(&record.to_string());
        out.push('\n');
    }
    out
}

thread_local! {
    /// How many tracers on this thread are enabled: runner steps look no
    /// further when it is zero.
    static ACTIVE: Cell<u32> = const { Cell::new(0) };
}

/// A loop's recorder: [`IOLoop::trace`] returns it. Off until
/// [`enable`](Tracer::enable)d.
pub struct Tracer {
    enabled: Cell<bool>,
    iteration: Cell<u64>,
    clock: Clock,
    state: RefCell<State>,
    /// The loop's observers, joined while enabled (weak: the loop owns
    /// the tracer, not the other way round).
    observers: Weak<Observers>,
    /// Itself, to join them with.
    this: Weak<Tracer>,
    /// Loop-clock starts of the spans running now: a stack, as a span can
    /// run inside another (a `Remote`'s callbacks run by a `close()` that a
    /// callback called).
    starts: RefCell<Vec<Instant>>,
}

struct State {
    ring: Ring<Raw>,
    origin: Instant,
}

/// A record as stored: instants, turned into offsets only when read (the
/// subtractions cost more than the rest of recording).
#[derive(Clone)]
struct Raw {
    iteration: u64,
    started: Instant,
    ended: Instant,
    kind: Kind,
    name: &'static str,
    site: Option<&'static Location<'static>>,
}

impl Raw {
    fn to_record(&self, origin: Instant) -> Record {
        Record {
            iteration: self.iteration,
            start: self.started.saturating_duration_since(origin),
            duration: self.ended.saturating_duration_since(self.started),
            kind: self.kind,
            name: self.name,
            site: self.site,
        }
    }
}

impl Tracer {
    pub(crate) fn new(clock: Clock, observers: Weak<Observers>) -> Rc<Tracer> {
        let origin = clock.now();
        Rc::new_cyclic(|this| Tracer {
            enabled: Cell::new(false),
            iteration: Cell::new(0),
            clock,
            state: RefCell::new(State {
                ring: Ring::new(0),
                origin,
            }),
            observers,
            this: this.clone(),
            starts: RefCell::new(Vec::new()),
        })
    }

    /// Starts recording into a fresh ring of `capacity` records: when it is
    /// full, the oldest record is dropped (and counted, see
    /// [`dropped`](Tracer::dropped)). Resets the iteration count and the
    /// [`origin`](Tracer::origin) to now; earlier records are discarded.
    pub fn enable(&self, capacity: usize) {
        *self.state.borrow_mut() = State {
            ring: Ring::new(capacity),
            origin: self.clock.now(),
        };
        self.iteration.set(0);
        // A span begun before is not ours to end.
        self.starts.borrow_mut().clear();
        if !self.enabled.replace(true) {
            ACTIVE.with(|a| a.set(a.get() + 1));
            if let (Some(observers), Some(this)) = (self.observers.upgrade(), self.this.upgrade()) {
                observers.add(this);
            }
        }
    }

    /// Stops recording; the records so far stay readable.
    pub fn disable(&self) {
        if self.enabled.replace(false) {
            ACTIVE.with(|a| a.set(a.get() - 1));
            if let Some(observers) = self.observers.upgrade() {
                observers.remove((self as *const Tracer).cast::<()>());
            }
        }
    }

    /// Whether it is recording.
    #[inline]
    pub fn is_enabled(&self) -> bool {
        self.enabled.get()
    }

    /// A copy of the records held, oldest first.
    pub fn snapshot(&self) -> Vec<Record> {
        let state = self.state.borrow();
        state
            .ring
            .iter()
            .map(|raw| raw.to_record(state.origin))
            .collect()
    }

    /// Takes the records held, oldest first, leaving the ring empty (and
    /// recording, if it was).
    pub fn drain(&self) -> Vec<Record> {
        let mut state = self.state.borrow_mut();
        let origin = state.origin;
        state
            .ring
            .drain()
            .iter()
            .map(|raw| raw.to_record(origin))
            .collect()
    }

    /// How many records were dropped to make room since
    /// [`enable`](Tracer::enable).
    pub fn dropped(&self) -> u64 {
        self.state.borrow().ring.dropped()
    }

    /// How many records the ring holds at most.
    pub fn capacity(&self) -> usize {
        self.state.borrow().ring.capacity()
    }

    /// The loop-clock instant record times count from: when tracing was
    /// last enabled.
    pub fn origin(&self) -> Instant {
        self.state.borrow().origin
    }

    /// The iteration being recorded (0 before the first).
    pub fn iteration(&self) -> u64 {
        self.iteration.get()
    }

    // ----- recording (while enabled) ---------------------------------------

    #[inline]
    pub(crate) fn now(&self) -> Instant {
        self.clock.now()
    }

    /// The loop clock's reading for an observer's `now`, a system-clock
    /// one: the same instant, unless the loop's clock is manual.
    fn loop_now(&self, system: Instant) -> Instant {
        match &self.clock {
            Clock::System => system,
            Clock::Manual(_) => self.clock.now(),
        }
    }

    fn push_start(&self) {
        let now = self.clock.now();
        self.starts.borrow_mut().push(now);
    }

    fn pop_start(&self, system_now: Instant) -> (Instant, Instant) {
        let ended = self.loop_now(system_now);
        let started = self.starts.borrow_mut().pop().unwrap_or(ended);
        (started, ended)
    }

    /// Records a span that began at `started` and ended at `ended`.
    pub(crate) fn record(
        &self,
        kind: Kind,
        started: Instant,
        ended: Instant,
        name: &'static str,
        site: Option<&'static Location<'static>>,
    ) {
        let raw = Raw {
            iteration: self.iteration.get(),
            started,
            ended,
            kind,
            name,
            site,
        };
        if log::log_enabled!(target: "squall::trace", log::Level::Trace) {
            let record = raw.to_record(self.origin());
            // No borrow held: a logger is user code.
            log::trace!(target: "squall::trace", "{record}");
        }
        self.state.borrow_mut().ring.push(raw);
    }
}

/// The loop tells the tracer what it does while tracing is enabled. Each
/// span's start is read here from the loop's clock (not taken from the
/// loop, whose reading may be the previous span's end), so the gaps the
/// loop's own work leaves between spans stay visible.
impl Observer for Tracer {
    fn iteration_began(&self, _iteration: u64) {
        self.iteration.set(self.iteration.get() + 1);
    }

    fn began(&self, _span: &Span, _now: Instant) {
        self.push_start();
    }

    fn ended(&self, span: &Span, _started: Instant, now: Instant) {
        let kind = match span.kind {
            SpanKind::Callback => Kind::Callback,
            SpanKind::Timeout => Kind::Timeout,
            SpanKind::Handler { fd, events } => Kind::Handler { fd, events },
            _ => Kind::Remote,
        };
        let (started, ended) = self.pop_start(now);
        self.record(kind, started, ended, span.name, span.site);
    }

    fn poll_began(&self, _timeout: Option<Duration>, _now: Instant) {
        self.push_start();
    }

    fn poll_ended(
        &self,
        timeout: Option<Duration>,
        events: usize,
        _started: Instant,
        now: Instant,
    ) {
        let (started, ended) = self.pop_start(now);
        self.record(Kind::Poll { timeout, events }, started, ended, "", None);
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        self.disable();
    }
}

impl fmt::Debug for Tracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.borrow();
        f.debug_struct("Tracer")
            .field("enabled", &self.enabled.get())
            .field("records", &state.ring.len())
            .field("capacity", &state.ring.capacity())
            .field("dropped", &state.ring.dropped())
            .finish()
    }
}

/// Runs one Runner step, recording it on the current loop if that loop is
/// tracing. One thread-local read when no tracer on the thread is enabled.
#[inline]
pub(crate) fn step<R>(name: &'static str, f: impl FnOnce() -> R) -> R {
    if ACTIVE.with(Cell::get) == 0 {
        return f();
    }
    step_traced(name, f)
}

#[cold]
fn step_traced<R>(name: &'static str, f: impl FnOnce() -> R) -> R {
    let Some(io_loop) = IOLoop::try_current() else {
        return f();
    };
    let tracer = io_loop.trace();
    if !tracer.is_enabled() {
        return f();
    }
    let started = tracer.now();
    let result = f();
    tracer.record(Kind::Step, started, tracer.now(), name, None);
    result
}
