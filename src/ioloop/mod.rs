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
//! current loop is an implicit one holding work (handlers, timeouts,
//! callbacks, channels) and is not the loop being run:
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
mod handlers;
/// `run_once`, the five steps above, and the blocking log.
mod iteration;
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
pub use timers::{Deadline, TimeoutHandle, TimerStats};

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::Token;

use crate::callback::{self, BoxedCallback, CallbackReturn, Origin};
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

thread_local! {
    static CURRENT: RefCell<Option<IOLoop>> = const { RefCell::new(None) };
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

    /// This thread's current loop, created on first use (the *implicit*
    /// loop: see [which loop](self#which-loop) each constructor uses).
    ///
    /// # Panics
    /// If no loop is current and the OS refuses to create one (out of file
    /// descriptors); [`IOLoop::new`] reports that as an error instead.
    pub fn current() -> IOLoop {
        if let Some(current) = IOLoop::try_current() {
            return current;
        }
        let io_loop = IOLoop::new().expect("squall: cannot create the thread's IOLoop");
        io_loop.inner.implicit.set(true);
        io_loop.make_current();
        io_loop
    }

    /// This thread's current loop, if there is one; never creates one.
    pub fn try_current() -> Option<IOLoop> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// Makes this loop the thread's current loop. [`start`](IOLoop::start)
    /// does this too, for as long as it runs.
    pub fn make_current(&self) {
        let previous = CURRENT.with(|c| c.borrow_mut().replace(self.clone()));
        drop(previous);
    }

    /// Leaves the thread with no current loop.
    pub fn clear_current() {
        let previous = CURRENT.with(|c| c.borrow_mut().take());
        drop(previous);
    }

    /// Whether `self` and `other` are the same loop.
    pub fn ptr_eq(&self, other: &IOLoop) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    /// Whether `remote` is the door into this thread's current loop (`None`
    /// for none, if there is none), without a handle made for the asking:
    /// a pooled coroutine's waker checks it still fits.
    pub(crate) fn current_is(remote: Option<&Remote>) -> bool {
        CURRENT.with(|c| match (&*c.borrow(), remote) {
            (Some(l), Some(r)) => Arc::ptr_eq(&l.inner.remote, &r.shared),
            (None, None) => true,
            _ => false,
        })
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
            Clock::Manual(manual) => ticks::base().tick(manual.now()),
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
            Deadline::At(when) => ticks::base().tick(when),
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

    // ----- running ---------------------------------------------------------

    /// Runs the loop until [`stop`](IOLoop::stop) is called. The loop is the
    /// thread's current loop while it runs.
    ///
    /// A `stop()` before `start()` makes `start()` return at once.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidState`] if the loop is already running (a nested
    /// `start` would deadlock in Tornado; here it is refused);
    /// [`ErrorKind::Closed`] if the loop is closed; [`ErrorKind::Io`] if
    /// polling fails.
    pub fn start(&self) -> Result<(), Error> {
        let inner = &self.inner;
        if inner.closed.get() {
            return Err(closed());
        }
        if inner.running.get() {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "IOLoop is already running",
            ));
        }
        self.check_not_stranding()?;
        if inner.stopping.replace(false) {
            return Ok(());
        }
        inner.running.set(true);
        // Whatever happened since the last `start` is not the next
        // callback's doing, and the observers' last reading is old.
        inner.observers.forget_reading();
        let previous = CURRENT.with(|c| c.borrow_mut().replace(self.clone()));
        let result = self.run_until_stopped();
        let mine = CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), previous));
        drop(mine);
        inner.running.set(false);
        inner.stopping.set(false);
        result
    }

    /// Refuses to run this loop while the thread's current loop is an
    /// implicit one (made by [`IOLoop::current`]) holding work that could
    /// then never run: objects made before this loop ran, on the wrong loop
    /// (see [which loop](self#which-loop)). Otherwise they would wait for
    /// good, and a `run_sync` would end in a puzzling timeout.
    fn check_not_stranding(&self) -> Result<(), Error> {
        let stranded = CURRENT.with(|c| {
            let current = c.borrow();
            let other = current.as_ref()?;
            if other.ptr_eq(self) || !other.inner.implicit.get() {
                return None;
            }
            let inner = &other.inner;
            let handlers = inner.handlers.borrow().map.len();
            let timeouts = inner.timers.borrow().stats().pending;
            let callbacks = inner.callbacks.borrow().len();
            let channels = inner.channels.borrow().len();
            (handlers + timeouts + callbacks + channels > 0).then(|| {
                format!(
                    "{handlers} fd handler(s), {timeouts} timeout(s), {callbacks} callback(s), \
                     {channels} channel(s)"
                )
            })
        });
        match stranded {
            None => Ok(()),
            Some(work) => Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "this thread's current IOLoop was made implicitly by IOLoop::current() \
                     (which IOStream::connect, TCPServer::new, AsyncHTTPClient::new and others \
                     call when no loop is current) and holds {work} that would never run while \
                     another loop runs: make those objects inside run_sync or start, call \
                     make_current() on this loop before making them, or pass it to them \
                     (IOStream::with_loop, connect_with, TCPServer::with_loop, ...)"
                ),
            )),
        }
    }

    fn run_until_stopped(&self) -> Result<(), Error> {
        loop {
            self.run_once()?;
            if self.inner.stopping.get() || self.inner.closed.get() {
                return Ok(());
            }
        }
    }

    /// Asks the loop to return from [`start`](IOLoop::start) after the
    /// current iteration.
    pub fn stop(&self) {
        self.inner.stopping.set(true);
    }

    /// Whether the loop is inside [`start`](IOLoop::start).
    pub fn is_running(&self) -> bool {
        self.inner.running.get()
    }

    /// Closes the loop: drops every pending callback, timeout and handler,
    /// releases its epoll and eventfd descriptors, and makes [`Remote`]s
    /// report [`ErrorKind::Closed`]. Callbacks other threads sent before
    /// (their [`Remote::add_callback`] said `Ok`) are run now, the loop
    /// already closed, and the values queued in its
    /// [typed channels](IOLoop::remote_channel) handed to their handlers: a
    /// sender is never told `Ok` for a callback that does not run or a value
    /// that is not handled. Closing twice is harmless. The fds of registered handlers
    /// belong to their owners and are not closed.
    pub fn close(&self) {
        let inner = &self.inner;
        if inner.closed.replace(true) {
            return;
        }
        inner.remote.close();
        inner.stopping.set(true);
        let rx = inner.remote_rx.borrow_mut().take();
        if let Some(rx) = &rx {
            for msg in rx.try_iter() {
                if let RemoteMsg::Callback(f, name) = msg {
                    self.run_remote(f, name);
                }
            }
        }
        // Take everything out first, then drop it with no borrow held:
        // dropping a closure runs user code that may call back into the loop.
        let channels = std::mem::take(&mut *inner.channels.borrow_mut());
        inner.has_channels.set(false);
        // No value can enter a channel any more: what senders were told
        // `Ok` for is handled now, as the remote callbacks above.
        for source in &channels {
            source.close();
        }
        let callbacks = std::mem::take(&mut *inner.callbacks.borrow_mut());
        let spare = std::mem::take(&mut *inner.spare.borrow_mut());
        let timeouts = inner.timers.borrow_mut().drain();
        let handlers = std::mem::take(&mut *inner.handlers.borrow_mut());
        let signals = signal::take(inner);
        let poll = inner.poll.borrow_mut().take();
        // What they held goes now: coroutines waiting on it fail quietly.
        let _teardown = crate::catch::TeardownGuard::enter();
        drop(poll);
        drop(rx);
        drop(channels);
        drop(callbacks);
        drop(spare);
        drop(timeouts);
        drop(handlers);
        drop(signals);
    }

    /// Whether [`close`](IOLoop::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// Runs the loop until the future `f` returns is done, and returns its
    /// result. `f` is called with this loop current.
    ///
    /// # Errors
    /// The future's error; [`ErrorKind::Timeout`] if `timeout` (on the loop's
    /// clock) passes first; [`ErrorKind::Panic`] if `f` panics;
    /// [`ErrorKind::InvalidState`] if the loop is already running or is
    /// stopped by someone else first; [`ErrorKind::Closed`] if it is (or gets)
    /// closed first.
    pub fn run_sync<T, F>(&self, f: F, timeout: Option<Duration>) -> Result<T, Error>
    where
        T: 'static,
        F: FnOnce() -> Future<T>,
    {
        if self.is_running() {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "run_sync called on a running IOLoop",
            ));
        }
        if self.is_closed() {
            return Err(closed());
        }
        self.check_not_stranding()?;
        let previous = CURRENT.with(|c| c.borrow_mut().replace(self.clone()));
        let future = match callback::catch_value(f) {
            Ok(future) => future,
            Err(err) => {
                CURRENT.with(|c| *c.borrow_mut() = previous);
                return Err(err);
            }
        };
        CURRENT.with(|c| *c.borrow_mut() = previous);

        let outcome: Rc<RefCell<Option<Result<T, Error>>>> = Rc::new(RefCell::new(None));
        {
            // Weak: a future that outlives this call (one the loop itself
            // holds, say in a pending timeout) must not keep the loop alive,
            // a cycle no drop would break.
            let (outcome, weak) = (outcome.clone(), Rc::downgrade(&self.inner));
            future.add_done_callback(move |done: &Future<T>| {
                let mut slot = outcome.borrow_mut();
                if slot.is_none() {
                    *slot = Some(done.take_result());
                    if let Some(inner) = weak.upgrade() {
                        inner.stopping.set(true);
                    }
                }
            });
        }
        if outcome.borrow().is_some() {
            // Done synchronously; our stop() must not linger for the next start().
            self.inner.stopping.set(false);
            return outcome.borrow_mut().take().expect("checked above");
        }
        let timer = timeout.map(|limit| {
            let (outcome, weak) = (outcome.clone(), Rc::downgrade(&self.inner));
            self.call_later(limit, move || {
                let mut slot = outcome.borrow_mut();
                if slot.is_none() {
                    *slot = Some(Err(Error::new(
                        ErrorKind::Timeout,
                        format!("operation timed out after {limit:?}"),
                    )));
                    if let Some(inner) = weak.upgrade() {
                        inner.stopping.set(true);
                    }
                }
            })
        });
        let started = self.start();
        if let Some(timer) = timer {
            self.remove_timeout(timer);
        }
        let result = outcome.borrow_mut().take();
        // A late completion must find the slot taken and do nothing.
        *outcome.borrow_mut() = Some(Err(Error::other("run_sync finished")));
        started?;
        result.unwrap_or_else(|| {
            if self.is_closed() {
                return Err(Error::new(
                    ErrorKind::Closed,
                    "the IOLoop was closed before the future was done",
                ));
            }
            Err(Error::new(
                ErrorKind::InvalidState,
                "the IOLoop stopped before the future was done",
            ))
        })
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A loop dropped without `close()` is closed all the same for its
        // `Remote`s: they say so, and release the eventfd they share.
        self.remote.close();
        // And what they were told `Ok` for still runs (see `close`); there
        // is no loop left to observe it.
        if let Some(rx) = self.remote_rx.get_mut().take() {
            for msg in rx.try_iter() {
                if let RemoteMsg::Callback(mut f, name) = msg {
                    callback::invoke(&Context::empty(), Origin::Remote, name, &mut *f);
                }
            }
        }
        // And the values queued in its typed channels.
        let channels = std::mem::take(self.channels.get_mut());
        for source in &channels {
            source.close();
        }
        // What it still holds goes here rather than after, so that the
        // coroutines waiting on it know it is teardown (see `catch::TeardownGuard`).
        let _teardown = crate::catch::TeardownGuard::enter();
        drop(channels);
        drop(std::mem::take(self.callbacks.get_mut()));
        drop(std::mem::take(self.spare.get_mut()));
        drop(self.timers.get_mut().drain());
        drop(std::mem::take(self.handlers.get_mut()));
        drop(self.signals.get_mut().take());
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
