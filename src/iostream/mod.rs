//! `IOStream`: a buffered, non-blocking stream whose operations return futures.
//!
//! ```
//! use std::io::{Read, Write};
//! use squall::iostream::IOStream;
//! use squall::IOLoop;
//!
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! let server = std::thread::spawn(move || {
//!     let (mut conn, _) = listener.accept().unwrap();
//!     conn.write_all(b"hello\r\nworld").unwrap();
//! });
//!
//! let io_loop = IOLoop::new()?;
//! let line = io_loop.run_sync(|| {
//!     let reply = squall::Future::new();
//!     let r = reply.clone();
//!     IOStream::connect(addr).add_done_callback(move |connected: &squall::Future<IOStream>| {
//!         match connected.result() {
//!             Ok(stream) => squall::chain_future(&stream.read_until(b"\r\n"), &r),
//!             Err(err) => { r.try_set_error(err); }
//!         }
//!     });
//!     reply
//! }, None)?;
//! assert_eq!(line, b"hello\r\n");
//! server.join().unwrap();
//! # Ok::<(), squall::Error>(())
//! ```
//!
//! # How it uses the loop
//! A stream registers one edge-triggered handler for READ and WRITE when it is
//! created, and never changes it: reads and writes are attempted at once, and
//! the loop only says when the socket has something new. So reading and
//! writing cost no `epoll_ctl` calls. Reads land in one buffer, 4 KiB at a
//! time at first and up to 64 KiB once the peer sends in bulk; `read_until`
//! searches only the bytes that are new since its last look. A stream that
//! holds no unread bytes owns no buffer memory: its reads borrow a region
//! its loop lends to all its streams, given back once the reader has taken
//! everything (a few bytes left over, such as a partial request head, move
//! to a region of their own size). So an idle connection, or one whose
//! peer trickles bytes, costs no 4 KiB buffer, and a busy one allocates none.
//!
//! A read goes on until the socket would block, even after a short read: the
//! data and the peer's FIN can come in one edge, and stopping at the data
//! would miss the end for good. Two things stop it sooner: a pending
//! `read_bytes` that now has its bytes, and a budget of 1 MiB per turn, so one
//! fast peer can neither delay its own reader nor starve the loop's other
//! streams while it fills the buffer. A socket left undrained is read again
//! on the loop's next iteration, as an edge would have it.
//!
//! # The end of the stream
//! A read that returns 0 means the peer has shut its side: it may only have
//! half-closed (`shutdown(SHUT_WR)`, `nc -N`, an HTTP/1.0 client), and still
//! be reading. So the end closes the stream for reading only:
//! - reads the buffered data satisfies are still delivered; a read it cannot
//!   satisfy fails with [`ErrorKind::StreamClosed`], as on a closed stream;
//! - writes still queued are not dropped: the stream stays open (`closed()`
//!   is false, further writes are accepted and queue behind them, `flushed`
//!   and write futures resolve as usual) and closes once the queue is empty,
//!   or when a write fails (a peer that went away for good resets, and the
//!   write error closes the stream);
//! - with nothing queued, it closes at once.
//!
//! The handler stays edge-triggered meanwhile: a socket at its end is
//! readable for good, but that is no new edge, and the stream reads it no
//! more, so the drain costs one call per write edge and no spinning.
//! [`close`](IOStream::close) still closes at once, queue or not.

mod buffer;
mod connect;
mod hook;
mod read;
mod socket;
#[cfg(feature = "tls")]
mod ssl;
#[cfg(feature = "tls")]
mod tls;
mod write;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::os::unix::io::{AsRawFd, RawFd};
use std::rc::Rc;

use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::ioloop::{Events, IOLoop, TimeoutHandle};
use buffer::ReadBuffer;
use read::PendingRead;
pub(crate) use socket::WeakIOStream;
pub use socket::{IntoSocket, Pipe, PipeIOStream, Socket};
#[cfg(feature = "tls")]
pub use ssl::SSLIOStream;

/// How much the first `read` of a stream asks the kernel for...
const FIRST_READ_CHUNK: usize = 4 * 1024;
/// ...doubling each time a read fills it, up to this.
const READ_CHUNK: usize = 64 * 1024;
/// The most one turn of reading takes from a socket before it lets the loop
/// serve the others (it goes on at the next iteration).
const READ_BUDGET: usize = 1024 * 1024;
/// Tornado's default `max_buffer_size`.
pub const DEFAULT_MAX_BUFFER_SIZE: usize = 100 * 1024 * 1024;

struct State {
    rbuf: ReadBuffer,
    /// The room asked of the read buffer for the next `read`.
    read_chunk: usize,
    /// A read of an undrained socket is scheduled for the next iteration.
    pump_scheduled: bool,
    /// The last read saw `WouldBlock` and no READ edge came since: the
    /// socket has nothing for us, so a new read need not ask it (one `recv`
    /// saved per message).
    drained: bool,
    /// An event said the peer closed its side (`READ_CLOSED`): read on to
    /// the end of the stream, never stop at a short read.
    peer_closing: bool,
    read: Option<PendingRead>,
    /// The peer has closed its side (a read returned 0), or the stream is
    /// closed. Open with `eof` set: the stream is draining its queued
    /// writes, and closes once they are out (see `IOStream::end_of_stream`).
    eof: bool,
    wbuf: VecDeque<Vec<u8>>,
    /// Bytes of `wbuf`'s front chunk already written.
    wpos: usize,
    /// Bytes queued in `wbuf` and not yet written.
    wlen: usize,
    /// (total bytes written when this future is done, the future)
    write_futures: VecDeque<(u64, Future<()>)>,
    queued_total: u64,
    written_total: u64,
    connecting: Option<Future<IOStream>>,
    connect_timeout: Option<TimeoutHandle>,
    close_callback: Option<Box<dyn FnOnce()>>,
    error: Option<Error>,
    closed: bool,
    /// Whether the loop accepted this stream's handler.
    registered: bool,
    max_buffer_size: usize,
    max_write_buffer_size: Option<usize>,
    /// The low-level reader (see [`IOStream::set_read_hook`]); `None` while
    /// it runs.
    read_hook: Option<ReadHook>,
    /// Bumped by every set/clear, so a hook replaced while it ran is not
    /// put back.
    hook_gen: u64,
    /// The hook has been run with `eof` set. While the stream drains its
    /// writes after the end, events keep coming (each write edge reports
    /// the socket readable at its end too): they must not run it again.
    hook_heard_eof: bool,
    /// A TLS handshake runs: `check_handshake` watches for its end.
    handshaking: bool,
    /// `wait_for_handshake` futures (and `start_tls`'s).
    handshake_waiters: Vec<Future<IOStream>>,
    /// The deadline for the handshake, if one was set.
    handshake_timeout: Option<TimeoutHandle>,
}

/// A low-level reader: gets the buffered bytes and whether the peer has
/// closed; returns how many bytes it consumed.
type ReadHook = Box<dyn FnMut(&[u8], bool) -> usize>;

struct Inner {
    io_loop: IOLoop,
    fd: RawFd,
    socket: RefCell<Option<Socket>>,
    state: RefCell<State>,
}

/// A buffered non-blocking stream over a socket; Tornado's `IOStream`.
///
/// A cheap-to-clone handle. Every operation returns a [`Future`]; one read may
/// be pending at a time, writes queue in order. When the stream closes, every
/// pending future fails with [`ErrorKind::StreamClosed`] carrying the cause.
/// When the peer closes its side, the stream closes once its queued writes
/// have gone out (a half-closed peer still gets its reply). See the
/// [module docs](self).
///
/// A read that buffered data satisfies is done when it is returned, and a
/// future runs its done-callbacks at once: a read loop written as "on done,
/// read again" recurses once per buffered message. Loop instead while the
/// returned future is `done()`, or go through the loop (`add_future`).
#[derive(Clone)]
pub struct IOStream {
    inner: Rc<Inner>,
}

impl IOStream {
    /// Wraps a connected socket, on the current loop.
    ///
    /// # Errors
    /// If the socket cannot be made non-blocking or registered with the loop.
    pub fn new(socket: impl IntoSocket) -> Result<IOStream, Error> {
        IOStream::with_loop(socket, &IOLoop::current())
    }

    /// Wraps a connected socket, on `io_loop`.
    ///
    /// # Errors
    /// If the socket cannot be made non-blocking or registered with the loop.
    pub fn with_loop(socket: impl IntoSocket, io_loop: &IOLoop) -> Result<IOStream, Error> {
        IOStream::open(socket.into_socket()?, io_loop, None)
    }

    fn open(
        socket: Socket,
        io_loop: &IOLoop,
        connecting: Option<Future<IOStream>>,
    ) -> Result<IOStream, Error> {
        let fd = socket.as_raw_fd();
        let handshaking = socket.handshaking();
        let stream = IOStream {
            inner: Rc::new(Inner {
                io_loop: io_loop.clone(),
                fd,
                socket: RefCell::new(Some(socket)),
                state: RefCell::new(State {
                    rbuf: ReadBuffer::new(),
                    read_chunk: FIRST_READ_CHUNK,
                    pump_scheduled: false,
                    drained: false,
                    peer_closing: false,
                    read: None,
                    eof: false,
                    wbuf: VecDeque::new(),
                    wpos: 0,
                    wlen: 0,
                    write_futures: VecDeque::new(),
                    queued_total: 0,
                    written_total: 0,
                    connecting,
                    connect_timeout: None,
                    close_callback: None,
                    error: None,
                    closed: false,
                    registered: false,
                    max_buffer_size: DEFAULT_MAX_BUFFER_SIZE,
                    max_write_buffer_size: None,
                    read_hook: None,
                    hook_gen: 0,
                    hook_heard_eof: false,
                    handshaking,
                    handshake_waiters: Vec::new(),
                    handshake_timeout: None,
                }),
            }),
        };
        // As in Tornado, the loop holds an open stream: it lives until it is
        // closed (by either side), whether or not the user keeps a handle.
        // Closing removes the handler, and with it this reference.
        let me = LoopHold(stream.clone());
        let registered = io_loop.add_edge_handler(
            fd,
            move |_fd, events| me.0.handle_events(events),
            Events::READ | Events::WRITE,
        );
        if let Err(err) = registered {
            // Not ours to unregister (the fd may be another's, on a loop
            // that already watches it): close the socket quietly, so the
            // drop does not remove a handler this stream never had.
            stream.inner.state.borrow_mut().closed = true;
            let socket = stream.inner.socket.borrow_mut().take();
            drop(socket);
            return Err(err);
        }
        stream.inner.state.borrow_mut().registered = true;
        Ok(stream)
    }

    /// The loop this stream runs on.
    pub fn io_loop(&self) -> &IOLoop {
        &self.inner.io_loop
    }

    // ----- events ----------------------------------------------------------

    fn handle_events(&self, events: Events) {
        // A served connection's usual edge (a request came in, and was
        // answered) first, on a path of its own: see `pump_hook_usual`.
        // Not for an error or the peer's end, which the general path reads
        // to the end.
        if events.is_readable() && !events.is_error() && !events.is_read_closed() {
            match self.pump_hook_usual(true) {
                hook::Usual::Idle => return,
                hook::Usual::Done => return self.after_read_edge(events),
                hook::Usual::ReadOn => {
                    self.pump_hook_with(false, true);
                    return self.after_read_edge(events);
                }
                hook::Usual::No => {}
            }
        }
        if self.inner.state.borrow().connecting.is_some() {
            self.finish_connect();
            if !self.is_open() {
                return;
            }
        }
        if events.is_readable() || events.is_error() {
            // A new edge: the socket may have something again.
            let hooked = {
                let mut st = self.inner.state.borrow_mut();
                st.drained = false;
                st.peer_closing |= events.is_read_closed();
                st.read_hook.is_some()
            };
            if hooked {
                self.pump_hook(false);
            } else {
                self.pump_read();
            }
        }
        self.after_read_edge(events);
    }

    /// `handle_events` once the read side has had its turn: the write
    /// side's, errors, a handshake's end.
    fn after_read_edge(&self, events: Events) {
        let (closed, unsent, draining) = {
            let st = self.inner.state.borrow();
            (st.closed, st.wlen > 0 || self.pending_output(), st.eof)
        };
        if closed {
            return;
        }
        // Draining after the peer's end, an error event tries the write as
        // well: it may be all there is (a pipe whose reader went away with
        // the pipe full reports no write edge and no socket error), and the
        // write's failure is what closes the stream.
        if unsent && (events.is_writable() || (draining && events.is_error())) {
            self.flush();
        }
        if events.is_error() && self.is_open() {
            let err = self.socket_error();
            if let Some(err) = err {
                self.close_with(Some(err));
            }
        }
        self.check_handshake();
    }

    /// Whether data written is still below the stream (TLS ciphertext the
    /// socket has not taken).
    #[inline]
    fn pending_output(&self) -> bool {
        self.inner
            .socket
            .borrow()
            .as_ref()
            .is_some_and(Socket::pending_output)
    }

    /// Plaintext written but not out yet (TLS ciphertext waiting).
    #[inline]
    pub(super) fn unsent_plaintext(&self) -> usize {
        self.inner
            .socket
            .borrow()
            .as_ref()
            .map_or(0, Socket::unsent_plaintext)
    }

    /// Notices the end of a TLS handshake: resolves `wait_for_handshake`,
    /// removes its deadline, and sends what was queued meanwhile. One
    /// flag test on a plain stream.
    #[inline]
    pub(super) fn check_handshake(&self) {
        if self.inner.state.borrow().handshaking {
            self.handshake_progress();
        }
    }

    #[cold]
    fn handshake_progress(&self) {
        let still = {
            let socket = self.inner.socket.borrow();
            match socket.as_ref() {
                Some(socket) => socket.handshaking(),
                None => return, // closed: close_with failed the waiters
            }
        };
        if still {
            return;
        }
        let (waiters, timeout) = {
            let mut st = self.inner.state.borrow_mut();
            st.handshaking = false;
            (
                std::mem::take(&mut st.handshake_waiters),
                st.handshake_timeout.take(),
            )
        };
        if let Some(timeout) = timeout {
            self.inner.io_loop.remove_timeout(timeout);
        }
        // Writes queued during the handshake can go now.
        self.flush();
        for waiter in waiters {
            waiter.try_set_result(self.clone());
        }
    }

    fn socket_error(&self) -> Option<Error> {
        let socket = self.inner.socket.borrow();
        let socket = socket.as_ref()?;
        match socket.take_error() {
            Ok(Some(err)) | Err(err) => Some(err.into()),
            Ok(None) => None,
        }
    }

    // ----- closing ---------------------------------------------------------

    /// Closes the stream at once: the socket is closed, pending futures fail
    /// with [`ErrorKind::StreamClosed`] (unsent writes included: they are
    /// dropped), and the close callback is scheduled. Data already buffered
    /// can still be read. Closing twice is harmless. (At the peer's end of
    /// stream the stream closes by itself once its writes are out; see the
    /// [module docs](self#the-end-of-the-stream).)
    pub fn close(&self) {
        self.close_with(None);
    }

    fn close_with(&self, cause: Option<Error>) {
        let hook;
        let handshake;
        let (read, writes, connecting, timeout, callback, socket, err) = {
            let mut st = self.inner.state.borrow_mut();
            if st.closed {
                return;
            }
            st.closed = true;
            if st.error.is_none() {
                st.error = cause;
            }
            st.eof = true;
            st.wbuf.clear();
            st.wlen = 0;
            // The hook usually holds its owner, which holds this stream.
            hook = st.read_hook.take();
            let writes: Vec<_> = st.write_futures.drain(..).map(|(_, f)| f).collect();
            handshake = std::mem::take(&mut st.handshake_waiters);
            st.handshaking = false;
            if let Some(timeout) = st.handshake_timeout.take() {
                self.inner.io_loop.remove_timeout(timeout);
            }
            (
                st.read.is_some(),
                writes,
                st.connecting.take(),
                st.connect_timeout.take(),
                st.close_callback.take(),
                self.inner.socket.borrow_mut().take(),
                st.error.clone(),
            )
        };
        self.inner.io_loop.remove_handler(self.inner.fd);
        #[cfg(feature = "tls")]
        if let Some(Socket::Tls(tls)) = &socket {
            tls.close_notify();
        }
        drop(socket);
        drop(hook);
        if let Some(timeout) = timeout {
            self.inner.io_loop.remove_timeout(timeout);
        }
        // The handshake's waiters hear the cause itself (a certificate
        // refused is `Tls`, a deadline `Timeout`), as a connect's does.
        for waiter in handshake {
            waiter.try_set_error(err.clone().unwrap_or_else(|| closed_error(None)));
        }
        if let Some(connecting) = connecting {
            let err = err.clone().unwrap_or_else(|| closed_error(None));
            connecting.try_set_error(err);
        }
        let closed = closed_error(err.as_ref());
        for future in writes {
            future.try_set_error(closed.clone());
            // As Tornado does: the close is the news, and is seen by whoever
            // cares; a write future nobody reads must not log it again.
            future.mark_observed();
        }
        if read {
            // Buffered data may still satisfy it (read_until_close always is).
            if !self.try_complete_read() {
                self.fail_read_if_ended();
            }
        }
        if let Some(callback) = callback {
            // It carries the context it was set under (wrapped); the closer's
            // context must not leak into it, as in Tornado.
            self.inner.io_loop.spawn_callback(callback);
        }
    }

    /// Runs `f` (on the loop's next iteration) when the stream closes; at
    /// once (next iteration) if it is closed already.
    pub fn set_close_callback<R, F>(&self, f: F)
    where
        R: crate::CallbackReturn,
        F: FnOnce() -> R + 'static,
    {
        let closed = self.inner.state.borrow().closed;
        if closed {
            self.inner.io_loop.add_callback(f);
        } else {
            let ctx_wrapped = crate::stack_context::wrap(f);
            self.inner.state.borrow_mut().close_callback = Some(Box::new(ctx_wrapped));
        }
    }

    /// Whether the stream is closed.
    pub fn closed(&self) -> bool {
        self.inner.state.borrow().closed
    }

    fn is_open(&self) -> bool {
        !self.closed()
    }

    /// Why the stream closed, if it closed on an error.
    pub fn error(&self) -> Option<Error> {
        self.inner.state.borrow().error.clone()
    }

    /// Whether a read is pending.
    pub fn reading(&self) -> bool {
        self.inner.state.borrow().read.is_some()
    }

    /// Whether written data is waiting for the socket.
    pub fn writing(&self) -> bool {
        self.inner.state.borrow().wlen > 0
    }

    /// Bytes received and not yet read.
    pub fn buffered(&self) -> usize {
        self.inner.state.borrow().rbuf.len()
    }

    /// Frees the write queue and gives the read region back to the loop if
    /// they hold no data (a stream with nothing buffered holds no read
    /// region anyway, see the [module docs](self)), and starts reads again
    /// with a small chunk (4 KiB). For protocols with their own idle clock
    /// (the HTTP server calls it once a keep-alive connection has been
    /// quiet for a timer tick); calling it on a busy stream costs little.
    pub fn release_buffers(&self) {
        let mut st = self.inner.state.borrow_mut();
        if st.rbuf.len() == 0 {
            // (Back to the thread's spare region, if it was that.)
            st.rbuf.give_back(self.inner.io_loop.read_spare());
            st.read_chunk = FIRST_READ_CHUNK;
        }
        if st.wlen == 0 {
            st.wbuf = VecDeque::new();
            st.wpos = 0;
        }
    }

    /// Sets `TCP_NODELAY` (a no-op on Unix sockets).
    ///
    /// # Errors
    /// If the socket is closed or the option is refused.
    pub fn set_nodelay(&self, nodelay: bool) -> Result<(), Error> {
        match self.inner.socket.borrow().as_ref().map(Socket::plain) {
            Some(Socket::Tcp(s)) => Ok(s.set_nodelay(nodelay)?),
            Some(_) => Ok(()),
            None => Err(closed_error(None)),
        }
    }

    /// The read buffer's limit (default 100 MiB): a read that needs more
    /// closes the stream with an error.
    pub fn set_max_buffer_size(&self, max: usize) {
        self.inner.state.borrow_mut().max_buffer_size = max.max(1);
    }

    /// The write buffer's limit (default none).
    pub fn set_max_write_buffer_size(&self, max: Option<usize>) {
        self.inner.state.borrow_mut().max_write_buffer_size = max;
    }

    /// The peer's address (TCP only).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        match self.inner.socket.borrow().as_ref().map(Socket::plain) {
            Some(Socket::Tcp(s)) => s.peer_addr().ok(),
            _ => None,
        }
    }

    /// Whether the stream runs over TLS (an `SSLIOStream`; always false
    /// without the `tls` feature).
    pub fn is_tls(&self) -> bool {
        !matches!(
            self.inner.socket.borrow().as_ref(),
            Some(Socket::Tcp(_) | Socket::Unix(_) | Socket::Pipe(_)) | None
        )
    }

    /// The underlying fd (still owned by the stream).
    pub fn fd(&self) -> RawFd {
        self.inner.fd
    }
}

/// The loop's reference to an open stream, inside its handler. If the loop
/// drops the handler without the stream having closed (the loop itself was
/// closed), the stream closes: its pending futures fail, which breaks the
/// stream <-> callback cycles that would otherwise leak it and its fd.
struct LoopHold(IOStream);

impl Drop for LoopHold {
    fn drop(&mut self) {
        // Not registered: the registration failed, and the fd's handler (if
        // any) is someone else's.
        let registered = self.0.inner.state.borrow().registered;
        if registered && !self.0.closed() {
            self.0
                .close_with(Some(Error::new(ErrorKind::Closed, "the IOLoop was closed")));
        }
    }
}

fn closed_error(cause: Option<&Error>) -> Error {
    match cause {
        Some(cause) if cause.kind() == ErrorKind::StreamClosed => cause.clone(),
        Some(cause) => Error::with_source(
            ErrorKind::StreamClosed,
            // Display adds the kind ("stream closed: "); the message is the cause.
            cause.to_string(),
            cause.clone(),
        ),
        None => Error::new(ErrorKind::StreamClosed, "stream is closed"),
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: stop watching the fd before it closes, and
        // fail what is still pending rather than leave it hanging.
        let socket = self.socket.get_mut().take();
        if socket.is_some() {
            self.io_loop.remove_handler(self.fd);
        }
        drop(socket);
        let st = self.state.get_mut();
        if st.closed {
            return;
        }
        let err = Error::new(ErrorKind::StreamClosed, "stream dropped");
        if let Some(read) = st.read.take() {
            read.future.set_error(err.clone());
            read.future.mark_observed();
        }
        for (_, future) in st.write_futures.drain(..) {
            future.try_set_error(err.clone());
            future.mark_observed();
        }
        if let Some(connecting) = st.connecting.take() {
            connecting.try_set_error(err.clone());
        }
        for waiter in st.handshake_waiters.drain(..) {
            waiter.try_set_error(err.clone());
        }
    }
}

impl fmt::Debug for IOStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.state.borrow();
        f.debug_struct("IOStream")
            .field("fd", &self.inner.fd)
            .field("closed", &st.closed)
            .field("buffered", &st.rbuf.len())
            .field("write_pending", &st.wlen)
            .finish()
    }
}
