//! The event loop: callbacks, timeouts and file-descriptor handlers on one thread.
//!
//! ```
//! use std::time::Duration;
//! use squall::IOLoop;
//!
//! let io_loop = IOLoop::new()?;
//! let l = io_loop.clone();
//! io_loop.add_callback(|| println!("first iteration"));
//! io_loop.call_later(Duration::from_millis(10), move || {
//!     println!("10 ms later");
//!     l.stop();
//! });
//! io_loop.start()?;
//! # Ok::<(), squall::Error>(())
//! ```
//!
//! # One iteration
//! Like Tornado's, each turn of the loop:
//! 1. notes the timeouts that are due now;
//! 2. runs the callbacks queued *before* this iteration began (ones added
//!    meanwhile wait for the next turn, so a callback that re-adds itself
//!    cannot starve IO), then the callbacks sent from other threads;
//! 3. runs the due timeouts, in deadline order, ties in scheduling order;
//! 4. polls, without waiting if callbacks are queued, else until the next
//!    deadline (or forever);
//! 5. calls the handler of each ready fd.
//!
//! `RUST_LOG=squall=trace` prints a line per iteration.
//!
//! # Which loop
//! Everything that schedules work goes on *the thread's current loop* unless
//! given one. The current loop is the one running ([`start`](IOLoop::start),
//! [`run_sync`](IOLoop::run_sync), also while `run_sync` calls its
//! function), else the one [`make_current`](IOLoop::make_current) named,
//! else one that [`IOLoop::current`] creates on first use (Tornado's
//! `IOLoop.current()`), the *implicit* loop.
//!
//! | Uses the current loop | Takes a loop |
//! |---|---|
//! | `IOStream::new`, `connect`, `connect_timeout`, `from_pipe` | `IOStream::with_loop`, `connect_with`, `pipe_with_loop` |
//! | `TCPServer::new`, `HTTPServer::new` (when sockets are added), `netutil::add_accept_handler` | `TCPServer::with_loop`, `HTTPServer::with_loop`, `add_accept_handler_on` |
//! | `TCPClient::connect`, `AsyncHTTPClient::new`, `Resolver::resolve` | `AsyncHTTPClient::with_loop`/`with_config`, `Resolver::resolve_on` |
//! | `Subprocess::spawn`, `ThreadPoolExecutor::submit` | `Subprocess::spawn_on`, `ThreadPoolExecutor::submit_to` |
//! | `PeriodicCallback::start`; the timeouts of locks, queues, `gen::sleep`, `gen::with_timeout` | (the loop current when called) |
//!
//! So a program written Tornado's way, `TCPServer::new(..)` then
//! `IOLoop::current().start()`, runs on the implicit loop. The trap is an
//! object made *before* another loop runs: it lands on the implicit loop,
//! which never runs, and waits for good. [`start`](IOLoop::start) and
//! [`run_sync`](IOLoop::run_sync) refuse that with
//! [`ErrorKind::InvalidState`], naming what is stranded, when the thread's
//! current loop is an implicit one holding work (handlers, timeouts with a
//! deadline, callbacks, channels; not a `Duration::MAX` timeout, which
//! would never run there either) and is not the loop being run:
//!
//! ```
//! use squall::{ErrorKind, IOLoop, IOStream};
//!
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! // Made before any loop runs: on the implicit loop, not on `io_loop`.
//! let pending = IOStream::connect(listener.local_addr()?);
//! let io_loop = IOLoop::new()?;
//! let p = pending.clone();
//! let err = io_loop.run_sync(move || p, None).unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::InvalidState);
//! // The implicit loop is the one to run it (Tornado's way); or the stream
//! // is made inside `io_loop.run_sync(..)`, on the loop that runs.
//! let stream = IOLoop::current().run_sync(move || pending, None)?;
//! # drop(stream);
//! # Ok::<(), squall::Error>(())
//! ```
//!
//! # Errors in callbacks
//! Every callback, timeout and handler may return `()`, `Result<T, Error>`
//! (`|| { step()?; Ok(()) }` needs no annotation), or a [`Future`], or never
//! return (`|| panic!("..")`); see [`CallbackReturn`]. An `Err` or a panic
//! goes to the [stack context](crate::stack_context) captured when the callback
//! was scheduled; if none handles it, it is logged with `log::error!`. The loop
//! always goes on.

mod blocking;
pub mod channel;
mod clock;
/// The thread's current loop ("Which loop" above).
mod current;
mod handlers;
/// `run_once`, the five steps above, and the blocking log.
mod iteration;
/// `start`, `stop`, `run_sync`, `close`, and a drop without one.
mod lifecycle;
pub mod observer;
mod periodic;
mod remote;
mod shrink;
pub mod signal;
mod slab;
mod ticks;
mod timers;

pub use channel::RemoteSender;
pub use clock::{Clock, ManualClock};
pub use handlers::{Events, ToRawFd};
pub use observer::{Observer, Span, SpanKind};
pub use periodic::PeriodicCallback;
pub use remote::Remote;
/// `Instant + Duration` that never panics (a `Duration::MAX` timeout means
/// "never"): for anything that turns a user's duration into a deadline.
pub(crate) use timers::saturating_add;
pub use timers::{Deadline, TimeoutHandle, TimerStats};

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::Token;

use crate::callback::{BoxedCallback, CallbackReturn, Origin};
use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::stack_context::Context;
use handlers::Handlers;
use remote::RemoteMsg;
use timers::{TimeoutKey, Timers};

pub(super) const WAKER_TOKEN: Token = Token(usize::MAX);
const EVENTS_CAPACITY: usize = 1024;

/// A scheduled callback with the stack context it was scheduled under.
pub(crate) struct Callback {
    pub(crate) f: BoxedCallback,
    pub(crate) ctx: Context,
    pub(crate) name: &'static str,
    /// Where it was scheduled, for the trace.
    #[cfg(feature = "trace")]
    pub(crate) site: &'static std::panic::Location<'static>,
}

impl Callback {
    /// Where it was scheduled, if the build keeps that (feature `trace`).
    #[inline]
    pub(crate) fn site(&self) -> Option<&'static std::panic::Location<'static>> {
        #[cfg(feature = "trace")]
        return Some(self.site);
        #[cfg(not(feature = "trace"))]
        return None;
    }

    #[inline]
    #[cfg_attr(feature = "trace", track_caller)]
    fn new<R, F>(f: F, ctx: Context) -> Callback
    where
        R: CallbackReturn,
        F: FnOnce() -> R + 'static,
    {
        Callback {
            f: Box::new(move || f().into_outcome()),
            ctx,
            name: std::any::type_name::<F>(),
            #[cfg(feature = "trace")]
            site: std::panic::Location::caller(),
        }
    }
}

struct Inner {
    poll: RefCell<Option<mio::Poll>>,
    events: RefCell<mio::Events>,
    callbacks: RefCell<Vec<Callback>>,
    /// The previous iteration's emptied callback vector, kept for its capacity.
    spare: RefCell<Vec<Callback>>,
    timers: RefCell<Timers>,
    due: RefCell<Vec<TimeoutKey>>,
    handlers: RefCell<Handlers>,
    remote_rx: RefCell<Option<Receiver<RemoteMsg>>>,
    remote: Arc<remote::Shared>,
    /// Typed channels from other threads (`remote_channel`).
    channels: RefCell<Vec<Rc<dyn channel::Source>>>,
    /// Whether `channels` holds any: a `Cell` read where the iteration
    /// would borrow the `RefCell` twice (drain, and the check before a
    /// sleeping poll) for a list a server never uses.
    has_channels: Cell<bool>,
    clock: Clock,
    running: Cell<bool>,
    stopping: Cell<bool>,
    closed: Cell<bool>,
    /// Told of every span of user code and every poll (see `observer`).
    /// Shared with the tracer, which installs itself when enabled.
    observers: Rc<observer::Observers>,
    /// Iterations so far: lets per-iteration caches (the HTTP `Date`)
    /// know when to look at the clock again.
    iteration: Cell<u64>,
    /// Made by `IOLoop::current()` for a thread that had none (see
    /// "Which loop" in the module docs).
    implicit: Cell<bool>,
    /// Signal pipe and callbacks, once a signal handler is added.
    signals: RefCell<Option<signal::Signals>>,
    #[cfg(feature = "trace")]
    trace: Rc<crate::trace::Tracer>,
    /// Read buffer memory the loop's streams share: a stream holding no
    /// unread bytes owns none, and borrows this for its next read
    /// (iostream's `ReadBuffer`). Empty while lent.
    read_spare: Cell<Vec<u8>>,
}

/// A single-threaded event loop, Tornado's `IOLoop`.
///
/// A cheap-to-clone handle: clones are the same loop. It is `!Send`; other
/// threads reach it through a [`Remote`]. See the [module docs](self).
#[derive(Clone)]
pub struct IOLoop {
    inner: Rc<Inner>,
}

/// Whether an `IOLoop` was ever created in this process.
static LOOP_CREATED: AtomicBool = AtomicBool::new(false);

/// Whether an [`IOLoop`] was ever created in this process (in any thread).
/// [`fork_processes`](crate::process::fork_processes) refuses to fork then.
pub fn loop_created() -> bool {
    LOOP_CREATED.load(Ordering::Relaxed)
}

impl IOLoop {
    /// A new loop on the system clock.
    ///
    /// # Errors
    /// If the OS refuses an epoll instance or an eventfd.
    pub fn new() -> Result<IOLoop, Error> {
        IOLoop::with_clock(Clock::System)
    }

    /// A new loop reading time from `clock`; with a [`ManualClock`], tests
    /// drive time by hand.
    ///
    /// # Errors
    /// If the OS refuses an epoll instance or an eventfd.
    pub fn with_clock(clock: Clock) -> Result<IOLoop, Error> {
        // Noted for fork_processes: a loop's epoll fd must not be shared
        // across a fork.
        LOOP_CREATED.store(true, Ordering::Relaxed);
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        let (remote, rx) = remote::Shared::new(waker);
        let observers = Rc::new(observer::Observers::default());
        Ok(IOLoop {
            inner: Rc::new(Inner {
                poll: RefCell::new(Some(poll)),
                events: RefCell::new(mio::Events::with_capacity(EVENTS_CAPACITY)),
                callbacks: RefCell::new(Vec::new()),
                spare: RefCell::new(Vec::new()),
                timers: RefCell::new(Timers::default()),
                due: RefCell::new(Vec::new()),
                handlers: RefCell::new(Handlers::default()),
                remote_rx: RefCell::new(Some(rx)),
                remote,
                channels: RefCell::new(Vec::new()),
                has_channels: Cell::new(false),
                running: Cell::new(false),
                stopping: Cell::new(false),
                closed: Cell::new(false),
                #[cfg(feature = "trace")]
                trace: crate::trace::Tracer::new(clock.clone(), Rc::downgrade(&observers)),
                observers,
                iteration: Cell::new(0),
                implicit: Cell::new(false),
                signals: RefCell::new(None),
                read_spare: Cell::new(Vec::new()),
                clock,
            }),
        })
    }

    /// Whether `self` and `other` are the same loop.
    pub fn ptr_eq(&self, other: &IOLoop) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    /// The loop's clock reading. Deadlines are on this clock.
    #[inline]
    pub fn time(&self) -> Instant {
        self.inner.clock.now()
    }

    /// A recent reading of the system's monotonic clock (not the loop's
    /// clock, which may be manual), in nanoseconds from an arbitrary zero:
    /// the one taken for the observers, no older than the span running
    /// now, or a fresh one. For caches of wall-clock things, such as the
    /// HTTP `Date`, that need not be exact. An integer, not an `Instant`:
    /// making an `Instant` of the observers' reading would cost the `Date`
    /// cache its saving (see `ticks`).
    #[inline]
    pub(crate) fn recent_ticks(&self) -> u64 {
        match self.inner.observers.recent() {
            Some(recent) => recent,
            None => ticks::now(),
        }
    }

    /// [`time()`](IOLoop::time) in the loop's ticks (see `ticks`): what the
    /// timers work in.
    #[inline]
    pub(super) fn now_ticks(&self) -> u64 {
        match &self.inner.clock {
            Clock::System => ticks::now(),
            // Kept below `NEVER`: a manual clock moved to the end of the
            // tick range still has a "now" that a timeout can come due at
            // (`call_later(Duration::ZERO)` there runs, as anywhere).
            Clock::Manual(manual) => ticks::base().tick(manual.now()).min(ticks::NEVER - 1),
        }
    }

    /// How many iterations the loop has begun; what a cache of something
    /// read from the clock compares to know it is still fresh.
    #[inline]
    pub(crate) fn iteration(&self) -> u64 {
        self.inner.iteration.get()
    }

    /// The loop's shared read buffer memory (see the field).
    #[inline]
    pub(crate) fn read_spare(&self) -> &Cell<Vec<u8>> {
        &self.inner.read_spare
    }

    /// The clock this loop reads.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// This loop's recorder of what each iteration does (off until
    /// enabled). See the [`trace`](crate::trace) module.
    #[cfg(feature = "trace")]
    pub fn trace(&self) -> &crate::trace::Tracer {
        &self.inner.trace
    }

    // ----- callbacks -------------------------------------------------------

    /// Runs `f` on the next iteration of the loop.
    ///
    /// It captures the current stack context. On a closed loop the callback
    /// is dropped.
    #[inline]
    #[cfg_attr(feature = "trace", track_caller)]
    pub fn add_callback<R, F>(&self, f: F)
    where
        R: CallbackReturn,
        F: FnOnce() -> R + 'static,
    {
        self.push_callback(Callback::new(f, Context::capture()));
    }

    /// Like [`add_callback`](IOLoop::add_callback), but with no stack context:
    /// for independent work that must not report to the caller's handlers.
    #[cfg_attr(feature = "trace", track_caller)]
    pub fn spawn_callback<R, F>(&self, f: F)
    where
        R: CallbackReturn,
        F: FnOnce() -> R + 'static,
    {
        self.push_callback(Callback::new(f, Context::empty()));
    }

    #[inline]
    fn push_callback(&self, cb: Callback) {
        if self.inner.closed.get() {
            log::debug!("callback `{}` added to a closed IOLoop: dropped", cb.name);
            return;
        }
        self.inner.callbacks.borrow_mut().push(cb);
    }

    /// Runs `f(&future)` on the loop once `future` is done (on the iteration
    /// after it completes). `f` captures the current stack context.
    #[cfg_attr(feature = "trace", track_caller)]
    pub fn add_future<T, R, F>(&self, future: &Future<T>, f: F)
    where
        T: 'static,
        R: CallbackReturn,
        F: FnOnce(&Future<T>) -> R + 'static,
    {
        // Weak: a future that never completes must not keep the loop alive.
        let weak: Weak<Inner> = Rc::downgrade(&self.inner);
        #[cfg(feature = "trace")]
        let site = std::panic::Location::caller();
        future.add_done_callback(move |done: &Future<T>| {
            if let Some(inner) = weak.upgrade() {
                let done = done.clone();
                #[allow(unused_mut)]
                let mut cb = Callback::new(move || f(&done), Context::capture());
                #[cfg(feature = "trace")]
                {
                    cb.site = site;
                }
                IOLoop { inner }.push_callback(cb);
            }
        });
    }

    /// A handle for reaching this loop from other threads.
    pub fn remote(&self) -> Remote {
        Remote {
            shared: self.inner.remote.clone(),
        }
    }

    /// A typed channel into this loop: `handler` runs on the loop's thread
    /// with each value sent through the returned [`RemoteSender`] from any
    /// thread, with no allocation per message. Unbounded, like
    /// [`Remote::add_callback`]. See the [`channel`] module for details.
    pub fn remote_channel<T, R, F>(&self, handler: F) -> RemoteSender<T>
    where
        T: Send + 'static,
        R: CallbackReturn,
        F: FnMut(T) -> R + 'static,
    {
        self.make_channel(None, handler)
    }

    /// [`remote_channel`](IOLoop::remote_channel) holding at most `capacity`
    /// values: a full channel makes `send` wait and `try_send` fail with
    /// [`ErrorKind::BufferFull`], so a fast producer cannot grow memory
    /// without bound.
    pub fn remote_sync_channel<T, R, F>(&self, capacity: usize, handler: F) -> RemoteSender<T>
    where
        T: Send + 'static,
        R: CallbackReturn,
        F: FnMut(T) -> R + 'static,
    {
        self.make_channel(Some(capacity), handler)
    }

    fn make_channel<T, R, F>(&self, capacity: Option<usize>, handler: F) -> RemoteSender<T>
    where
        T: Send + 'static,
        R: CallbackReturn,
        F: FnMut(T) -> R + 'static,
    {
        let (sender, source) = channel::new_channel(self.inner.remote.clone(), capacity, handler);
        if !self.inner.closed.get() {
            self.inner.channels.borrow_mut().push(source);
            self.inner.has_channels.set(true);
        }
        sender
    }

    // ----- timeouts --------------------------------------------------------

    /// Runs `f` at `deadline`: an `Instant` on the loop's clock, or a `Duration`
    /// from now. Returns a handle for [`remove_timeout`](IOLoop::remove_timeout).
    ///
    /// `f` captures the current stack context. On a closed loop it is dropped
    /// (and removing the handle returns `false`).
    ///
    /// A deadline past what the loop's clock counts to (`Duration::MAX`, or
    /// an `Instant` some 584 years on) means "never", on either clock: the
    /// timeout never runs and stays pending until removed, and a loop
    /// holding only such timeouts waits as one with none (a [`ManualClock`]
    /// does not jump to it).
    #[cfg_attr(feature = "trace", track_caller)]
    pub fn add_timeout<R, F>(&self, deadline: impl Into<Deadline>, f: F) -> TimeoutHandle
    where
        R: CallbackReturn,
        F: FnOnce() -> R + 'static,
    {
        // In ticks: a delay is added to an integer reading, no `Instant`
        // arithmetic (the HTTP server re-arms a timer per connection tick).
        let when = match deadline.into() {
            Deadline::At(when) => match ticks::base().tick(when) {
                // Past the tick range, yet not after now (a manual clock
                // moved there): due, not "never".
                ticks::NEVER if when <= self.time() => ticks::NEVER - 1,
                tick => tick,
            },
            Deadline::After(delay) => self.now_ticks().saturating_add(ticks::from_duration(delay)),
        };
        if self.inner.closed.get() {
            // Kept, it would never run, and a closure holding the loop would
            // keep the loop alive for good.
            log::debug!(
                "timeout `{}` added to a closed IOLoop: dropped",
                std::any::type_name::<F>()
            );
            drop(f);
            return TimeoutHandle::dangling();
        }
        let cb = Callback::new(f, Context::capture());
        self.inner.timers.borrow_mut().add(when, cb)
    }

    /// Runs `f` after `delay`; `Duration::MAX` is "never" (see
    /// [`add_timeout`](IOLoop::add_timeout)).
    #[cfg_attr(feature = "trace", track_caller)]
    pub fn call_later<R, F>(&self, delay: Duration, f: F) -> TimeoutHandle
    where
        R: CallbackReturn,
        F: FnOnce() -> R + 'static,
    {
        self.add_timeout(Deadline::After(delay), f)
    }

    /// Runs `f` at `when`, on the loop's clock; centuries on is "never" (see
    /// [`add_timeout`](IOLoop::add_timeout)).
    #[cfg_attr(feature = "trace", track_caller)]
    pub fn call_at<R, F>(&self, when: Instant, f: F) -> TimeoutHandle
    where
        R: CallbackReturn,
        F: FnOnce() -> R + 'static,
    {
        self.add_timeout(Deadline::At(when), f)
    }

    /// Cancels a timeout. O(1); harmless twice or after the timeout ran.
    /// Returns whether the timeout was still pending.
    pub fn remove_timeout(&self, handle: TimeoutHandle) -> bool {
        let removed = self.inner.timers.borrow_mut().remove(handle);
        // Dropped here, with no borrow held: dropping may run user code.
        removed.is_some()
    }

    /// Counters of the timeout heap (pending timeouts, heap size).
    pub fn timer_stats(&self) -> TimerStats {
        self.inner.timers.borrow().stats()
    }
}

fn closed() -> Error {
    Error::new(ErrorKind::Closed, "the IOLoop is closed")
}

impl fmt::Debug for IOLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IOLoop")
            .field("running", &self.inner.running.get())
            .field("closed", &self.inner.closed.get())
            .field("callbacks", &self.inner.callbacks.borrow().len())
            .field("timeouts", &self.inner.timers.borrow().stats().pending)
            .field("handlers", &self.inner.handlers.borrow().map.len())
            .finish()
    }
}
