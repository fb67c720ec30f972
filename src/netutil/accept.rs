//! The accept side of [`netutil`](super): a listener watched by the loop,
//! its batches, its pauses when descriptors run out, and the handle that
//! gives it back (see the module docs' "The accept loop").

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::io::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use super::{ACCEPT_BATCH, PAUSE_MAX, PAUSE_MIN};
use crate::callback::{self, CallbackReturn, Origin};
use crate::error::{Error, ErrorKind};
use crate::ioloop::{Events, IOLoop, TimeoutHandle};
use crate::stack_context::{self, Context};

// `errno` values, the same on Linux, the BSDs and macOS (libc is not a
// dependency of the library); used only to word the log line.
const ENFILE: i32 = 23;
const EMFILE: i32 = 24;

/// Watches `listener` on the current loop and calls `callback(stream, peer)`
/// for every connection it accepts; Tornado's `add_accept_handler`.
///
/// The listener is made non-blocking and owned by the handler from now on;
/// [`RemoveHandle::remove`] gives it back. The `stream` is non-blocking and
/// close-on-exec: ready for [`IOStream`](crate::IOStream). See the
/// [module docs](super) for how the accept loop batches connections and
/// survives running out of file descriptors.
///
/// `callback` may return `()`, a `Result` or a [`Future`](crate::Future)
/// ([`CallbackReturn`]); an error it returns (at once or later, through the
/// future) or a panic goes to the [stack context](crate::stack_context)
/// current when this function was called, or to the log, and accepting goes
/// on.
///
/// Dropping the returned handle does *not* stop accepting: the loop keeps the
/// handler until [`RemoveHandle::remove`] or [`IOLoop::close`].
///
/// # Errors
/// If the listener cannot be made non-blocking or watched by the loop
/// ([`ErrorKind::Closed`] on a closed loop); the listener is then closed.
pub fn add_accept_handler<R, F>(listener: TcpListener, callback: F) -> Result<RemoveHandle, Error>
where
    R: CallbackReturn,
    F: FnMut(TcpStream, SocketAddr) -> R + 'static,
{
    add_accept_handler_on(&IOLoop::current(), listener, callback)
}

/// [`add_accept_handler`] on a given loop rather than the current one.
///
/// # Errors
/// As [`add_accept_handler`].
pub fn add_accept_handler_on<R, F>(
    io_loop: &IOLoop,
    listener: TcpListener,
    mut callback: F,
) -> Result<RemoveHandle, Error>
where
    R: CallbackReturn,
    F: FnMut(TcpStream, SocketAddr) -> R + 'static,
{
    add_accept_handler_boxed(
        io_loop,
        listener,
        Box::new(move |stream, peer| callback(stream, peer).into_outcome()),
        std::any::type_name::<F>(),
    )
}

/// [`add_accept_handler_on`] with the callback already erased; `name` is the
/// callback's type name, for log lines.
pub(crate) fn add_accept_handler_boxed(
    io_loop: &IOLoop,
    listener: TcpListener,
    callback: AcceptFn,
    name: &'static str,
) -> Result<RemoveHandle, Error> {
    listener.set_nonblocking(true)?;
    let local_addr = listener.local_addr().ok();
    let acceptor = Rc::new(Acceptor {
        fd: listener.as_raw_fd(),
        local_addr,
        listener: RefCell::new(Some(mio::net::TcpListener::from_std(listener))),
        callback: RefCell::new(callback),
        callback_name: name,
        removed: Cell::new(false),
        resume: RefCell::new(None),
        backoff: Cell::new(Duration::ZERO),
        accepted: Cell::new(0),
        pauses: Cell::new(0),
    });
    acceptor.watch(io_loop)?;
    Ok(RemoveHandle {
        io_loop: io_loop.clone(),
        acceptor,
    })
}

pub(crate) type AcceptFn = Box<dyn FnMut(TcpStream, SocketAddr) -> Result<(), Error>>;

/// The state one accept handler shares with its [`RemoveHandle`].
///
/// It holds no [`IOLoop`]: the loop holds the handler, which holds this, and
/// a loop dropped without `close()` must not be kept alive by a cycle. The
/// handler finds its loop as the current one, which it is while it runs.
struct Acceptor {
    fd: RawFd,
    local_addr: Option<SocketAddr>,
    /// `None` once removed (the handle took it back).
    listener: RefCell<Option<mio::net::TcpListener>>,
    callback: RefCell<AcceptFn>,
    /// The callback's type name, for log lines.
    callback_name: &'static str,
    removed: Cell<bool>,
    /// While paused: the timeout that resumes accepting.
    resume: RefCell<Option<TimeoutHandle>>,
    /// The last pause; zero after a successful accept.
    backoff: Cell<Duration>,
    accepted: Cell<u64>,
    pauses: Cell<u64>,
}

impl Acceptor {
    fn watch(self: &Rc<Self>, io_loop: &IOLoop) -> Result<(), Error> {
        let me = self.clone();
        io_loop.add_handler(
            self.fd,
            move |_fd, events| me.on_readable(events),
            Events::READ,
        )
    }

    fn on_readable(self: &Rc<Self>, events: Events) {
        let Some(io_loop) = IOLoop::try_current() else {
            return;
        };
        for n in 0..ACCEPT_BATCH {
            if self.removed.get() {
                return;
            }
            // No borrow is held while the callback runs: it may remove us.
            let accepted = match self.listener.borrow().as_ref() {
                Some(listener) => listener.accept(),
                None => return,
            };
            match accepted {
                Ok((stream, peer)) => {
                    self.backoff.set(Duration::ZERO);
                    self.accepted.set(self.accepted.get() + 1);
                    // A panic is caught here, so that it costs one
                    // connection, not the rest of the batch.
                    let outcome = callback::catch(|| match self.callback.try_borrow_mut() {
                        Ok(mut callback) => callback(TcpStream::from(stream), peer),
                        Err(_) => Err(Error::new(
                            ErrorKind::InvalidState,
                            "accept callback re-entered: connection dropped",
                        )),
                    });
                    if let Err(err) = outcome {
                        // To the stack context this handler runs under (the
                        // one current when it was added), or the log; then on
                        // to the next connection.
                        let ctx = Context::capture();
                        let origin = Origin::Handler(self.fd);
                        stack_context::route(&ctx, err, origin, self.callback_name);
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    // An error event with nothing to accept would be reported
                    // again and again: treat it as a failed accept.
                    if n == 0 && events.is_error() {
                        let err = self
                            .listener
                            .borrow()
                            .as_ref()
                            .and_then(|l| l.take_error().ok().flatten())
                            .unwrap_or_else(|| {
                                io::Error::other("error event on the listening socket")
                            });
                        self.pause(&io_loop, &err);
                    }
                    return;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                    ) =>
                {
                    log::debug!("accept on {}: {err}: skipped", self.label());
                    continue;
                }
                Err(err) => {
                    self.pause(&io_loop, &err);
                    return;
                }
            }
        }
    }

    /// Takes the listener off the loop for a while after `accept` failed.
    fn pause(self: &Rc<Self>, io_loop: &IOLoop, err: &io::Error) {
        let delay = match self.backoff.get() {
            d if d.is_zero() => PAUSE_MIN,
            d => (d * 2).min(PAUSE_MAX),
        };
        self.backoff.set(delay);
        self.pauses.set(self.pauses.get() + 1);
        let why = match err.raw_os_error() {
            Some(EMFILE) | Some(ENFILE) => " (out of file descriptors)",
            _ => "",
        };
        log::error!(
            "accept on {} failed{why}: {err}; not accepting for {delay:?}",
            self.label()
        );
        io_loop.remove_handler(self.fd);
        let me = self.clone();
        let handle = io_loop.call_later(delay, move || me.resume());
        *self.resume.borrow_mut() = Some(handle);
    }

    fn resume(self: &Rc<Self>) {
        self.resume.borrow_mut().take();
        if self.removed.get() {
            return;
        }
        let Some(io_loop) = IOLoop::try_current() else {
            return;
        };
        log::debug!("accept on {}: resuming", self.label());
        if let Err(err) = self.watch(&io_loop) {
            log::error!("accept on {}: cannot resume: {err}", self.label());
        }
    }

    fn label(&self) -> String {
        match self.local_addr {
            Some(addr) => addr.to_string(),
            None => format!("fd {}", self.fd),
        }
    }
}

/// Stops an accept handler; returned by [`add_accept_handler`] (Tornado's
/// `add_accept_handler` returns a remove function).
///
/// Dropping it leaves the handler in place.
pub struct RemoveHandle {
    io_loop: IOLoop,
    acceptor: Rc<Acceptor>,
}

impl RemoveHandle {
    /// Stops accepting: removes the handler (and a pending resume after a
    /// pause) and gives the listener back, still listening; drop it to
    /// close it. `None` if it was removed already.
    ///
    /// Connections already accepted are not affected. May be called from
    /// inside the accept callback: no further connection is taken.
    pub fn remove(&self) -> Option<TcpListener> {
        let acceptor = &self.acceptor;
        if acceptor.removed.replace(true) {
            return None;
        }
        let resume = acceptor.resume.borrow_mut().take();
        if let Some(resume) = resume {
            self.io_loop.remove_timeout(resume);
        }
        // The fd is still open (we hold it), so its handler is ours.
        self.io_loop.remove_handler(acceptor.fd);
        let listener = acceptor.listener.borrow_mut().take();
        listener.map(TcpListener::from)
    }

    /// Whether [`remove`](RemoveHandle::remove) was called.
    pub fn is_removed(&self) -> bool {
        self.acceptor.removed.get()
    }

    /// Whether accepting is paused after a failed `accept` (see the
    /// [module docs](super)).
    pub fn is_paused(&self) -> bool {
        self.acceptor.resume.borrow().is_some()
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.acceptor.local_addr
    }

    /// The listener's fd.
    pub fn fd(&self) -> RawFd {
        self.acceptor.fd
    }

    /// How many connections were accepted so far.
    pub fn accepted(&self) -> u64 {
        self.acceptor.accepted.get()
    }

    /// How many times accepting was paused after a failed `accept`.
    pub fn pauses(&self) -> u64 {
        self.acceptor.pauses.get()
    }
}

impl fmt::Debug for RemoveHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoveHandle")
            .field("local_addr", &self.acceptor.local_addr)
            .field("fd", &self.acceptor.fd)
            .field("removed", &self.is_removed())
            .field("paused", &self.is_paused())
            .field("accepted", &self.accepted())
            .finish()
    }
}
