//! `TCPServer`: accepts connections and hands each one, as an [`IOStream`],
//! to a closure; Tornado's `tcpserver.TCPServer`.
//!
//! ```
//! use std::net::SocketAddr;
//! use squall::{netutil::BindOptions, Future, IOLoop, IOStream, TCPServer};
//!
//! let io_loop = IOLoop::new()?;
//! let reply = io_loop.run_sync(|| {
//!     // An echo server: read a line, write it back, close.
//!     let server = TCPServer::new(|stream: IOStream, _peer: SocketAddr| {
//!         let s = stream.clone();
//!         stream.read_until(b"\n").add_done_callback(move |line: &Future<Vec<u8>>| {
//!             let line = line.take_result()?;
//!             let s2 = s.clone();
//!             s.write(line).add_done_callback(move |_: &Future<()>| s2.close());
//!             Ok(())
//!         });
//!     });
//!     server.listen_with(0, BindOptions::new().address("127.0.0.1")).expect("listening");
//!     let addr = server.local_addrs()[0];
//!
//!     // A client on the same loop.
//!     let reply = Future::new();
//!     let r = reply.clone();
//!     IOStream::connect(addr).add_done_callback(move |conn: &Future<IOStream>| {
//!         let conn = conn.take_result()?;
//!         conn.write(&b"hello\n"[..]);
//!         let all = conn.read_until_close();
//!         all.add_done_callback(move |all: &Future<Vec<u8>>| {
//!             server.stop();
//!             r.complete(all.take_result())
//!         });
//!         Ok(())
//!     });
//!     reply
//! }, None)?;
//! assert_eq!(reply, b"hello\n");
//! # Ok::<(), squall::Error>(())
//! ```
//!
//! # Starting
//! Three ways, as in Tornado:
//! - [`listen`](TCPServer::listen): bind and accept at once; single process.
//! - [`bind`](TCPServer::bind) then [`start`](TCPServer::start): bind first,
//!   accept when started. `start(1)` is the single-process case; `start(n)`
//!   forks `n` processes first (see [Several processes](#several-processes)).
//! - [`add_sockets`](TCPServer::add_sockets) with sockets from
//!   [`netutil::bind_sockets`]: the general form, e.g. sockets bound
//!   before forking.
//!
//! # Connections
//! Each accepted connection becomes an [`IOStream`] on the loop the server's
//! sockets were added on, and `handle_stream(stream, peer)` is called with
//! it. The stream lives until it is closed (by either side): the server does
//! not keep it, so [`stop`](TCPServer::stop) only stops accepting.
//!
//! `handle_stream` may return `()`, a `Result` or a [`Future`]
//! (see [`CallbackReturn`]). An error it returns, a failure of the future it
//! returns, or a panic is logged (or goes to the
//! [stack context](crate::stack_context) current when the sockets were
//! added), and the server goes on serving; a failed connection is not closed
//! for you, though: close the stream on your error paths.
//!
//! `TCP_NODELAY` is off by default, as in Tornado (whose HTTP layer sets it
//! per response); [`set_nodelay`](TCPServer::set_nodelay) turns it on for
//! every accepted stream, which suits request/response protocols made of
//! small writes. [`IOStream::set_nodelay`] does it for one stream.
//!
//! Memory: with glibc, whose `malloc` keeps what the heap freed, a server
//! that held many connections gives their memory back once most have
//! closed (`malloc_trim`, at most every 2 s and only after at least 1,024
//! connections closed and half of the peak gone; 10,000 closed connections
//! leave 5 MB of RSS rather than 63 MB). It costs nothing per connection
//! but a comparison at accept; a timer looks only while 256 or more
//! connections are tracked.
//!
//! # Several processes
//! `bind` then `start(n)` (`n == 0`: one per CPU) forks `n` children with
//! [`process::fork_processes`] and returns in each of them, which then
//! accepts on its own loop (so no loop may exist before; make it after
//! `start`). The parent never returns: it supervises the children.
//! - Sockets bound without `reuse_port` are shared: every child
//!   accepts on the same listening socket, and the kernel wakes them all
//!   for a connection that exactly one of them gets.
//! - Sockets bound with `reuse_port` ([`BindOptions::reuse_port`]) are not shared: each child binds
//!   its own `SO_REUSEPORT` socket on the same address and port, and the
//!   kernel spreads connections among them by a hash of the client's address
//!   and port. The parent keeps the port reserved with a socket that is bound
//!   but does not listen, so it takes no connections. Until a child listens,
//!   connections are refused; those queued on a child that dies are reset.
//!
//! In each child, `start(n)` also arranges for a graceful exit: on `SIGTERM`
//! or `SIGINT` (which the parent passes on), the child stops accepting,
//! gives the connections in flight up to [`DEFAULT_SHUTDOWN_GRACE`] to
//! finish, and stops its loop ([`shutdown_on_signals`](TCPServer::shutdown_on_signals)),
//! so `main` returns and the child exits with status 0.
//!
//! # Graceful shutdown
//! [`shutdown(grace)`](TCPServer::shutdown) stops accepting and returns a
//! future done when every connection the server accepted is closed; those
//! still open after `grace` are closed then. Any single-process server can
//! use it through `shutdown_on_signals` too.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::callback::CallbackReturn;
use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::ioloop::IOLoop;
use crate::iostream::{IOStream, WeakIOStream};
use crate::netutil::{self, BindOptions, RemoveHandle};
use crate::process;

mod trim;
pub(crate) use trim::note_idle_release;

/// The bound [`start(n)`](TCPServer::start) gives connections in flight
/// when a child is asked to stop.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long a TLS client may take over its handshake by default: 20 s, the
/// HTTP client's default connect timeout in Tornado.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// How often a shutting-down server looks whether its connections are closed.
const SHUTDOWN_POLL: Duration = Duration::from_millis(20);

type HandleStreamFn = Box<dyn FnMut(IOStream, SocketAddr) -> Result<(), Error>>;

/// What the accept handlers hold: the user's closure and the options. It
/// holds neither the server nor a loop, so no reference cycle goes through
/// the loop's handlers.
struct Shared {
    handle_stream: RefCell<HandleStreamFn>,
    /// `handle_stream`'s type name, for log lines.
    name: &'static str,
    nodelay: Cell<bool>,
    max_buffer_size: Cell<Option<usize>>,
    /// TLS for every accepted connection (Tornado's `ssl_options`).
    #[cfg(feature = "tls")]
    ssl_options: RefCell<Option<Arc<rustls::ServerConfig>>>,
    /// How long a TLS client has to finish its handshake.
    #[cfg(feature = "tls")]
    handshake_timeout: Cell<Duration>,
    /// Accepted streams (weak: a closed stream the user dropped is freed),
    /// pruned of closed ones now and then: what a graceful shutdown waits for.
    connections: RefCell<Vec<WeakIOStream>>,
    /// `connections.len()` after the last pruning.
    live_after_prune: Cell<usize>,
    /// Gives memory back after many connections have closed.
    trim: trim::TrimWatch,
}

impl Shared {
    fn handle_connection(self: &Rc<Self>, conn: TcpStream, peer: SocketAddr) -> Result<(), Error> {
        // The accept handler runs on the loop the socket was added on, which
        // is then the current one.
        let io_loop = IOLoop::current();
        // Accepted non-blocking: wrapping it costs no system call.
        let socket = mio::net::TcpStream::from_std(conn);
        let stream = self.open_stream(socket, &io_loop)?;
        if self.nodelay.get() {
            if let Err(err) = stream.set_nodelay(true) {
                // The peer may have reset the connection already.
                log::debug!("TCP_NODELAY on the connection from {peer}: {err}");
            }
        }
        if let Some(max) = self.max_buffer_size.get() {
            stream.set_max_buffer_size(max);
        }
        self.track(&stream);
        let mut handle_stream = self.handle_stream.try_borrow_mut().map_err(|_| {
            Error::new(
                ErrorKind::InvalidState,
                format!("handle_stream re-entered: connection from {peer} dropped"),
            )
        })?;
        handle_stream(stream, peer)
    }
}

impl Shared {
    /// The accepted connection as a stream: a plain one, or an
    /// `SSLIOStream` whose handshake runs as the client's bytes come (the
    /// handler gets it at once, as in Tornado; its first read waits for the
    /// handshake), closed if the handshake outlasts `handshake_timeout`.
    #[cfg(feature = "tls")]
    fn open_stream(
        &self,
        socket: mio::net::TcpStream,
        io_loop: &IOLoop,
    ) -> Result<IOStream, Error> {
        let config = self.ssl_options.borrow().clone();
        match config {
            None => IOStream::with_loop(socket, io_loop),
            Some(config) => {
                let stream = IOStream::with_ssl(socket, config, io_loop)?;
                stream.set_handshake_timeout(self.handshake_timeout.get());
                Ok(stream)
            }
        }
    }

    #[cfg(not(feature = "tls"))]
    fn open_stream(
        &self,
        socket: mio::net::TcpStream,
        io_loop: &IOLoop,
    ) -> Result<IOStream, Error> {
        IOStream::with_loop(socket, io_loop)
    }
}

impl Shared {
    /// Remembers an accepted stream; prunes the closed ones when the list has
    /// doubled since the last time (amortised O(1) per connection).
    fn track(self: &Rc<Self>, stream: &IOStream) {
        let tracked = {
            let mut connections = self.connections.borrow_mut();
            if connections.len() >= 2 * self.live_after_prune.get().max(32) {
                connections.retain(is_open);
                self.live_after_prune.set(connections.len());
            }
            connections.push(stream.downgrade());
            connections.len()
        };
        self.trim.accepted(self, tracked);
    }

    fn open_connections(&self) -> usize {
        let mut connections = self.connections.borrow_mut();
        connections.retain(is_open);
        self.live_after_prune.set(connections.len());
        connections.len()
    }
}

fn is_open(stream: &WeakIOStream) -> bool {
    stream.upgrade().is_some_and(|s| !s.closed())
}

struct Inner {
    shared: Rc<Shared>,
    /// The loop the sockets go on: given, or the current one at the first
    /// `add_sockets`.
    io_loop: RefCell<Option<IOLoop>>,
    /// One per socket being accepted on.
    handles: RefCell<Vec<RemoveHandle>>,
    /// Bound by `bind`, waiting for `start`.
    pending: RefCell<Vec<TcpListener>>,
    /// The backlog `bind` was given, for the children's own sockets.
    backlog: Cell<Option<u32>>,
    started: Cell<bool>,
}

/// A non-blocking, single-threaded TCP server; Tornado's `TCPServer`.
///
/// Created with the closure that handles each connection; a cheap-to-clone
/// handle (clones are the same server). See the [module docs](self).
///
/// The loop keeps a listening server alive: dropping every handle does not
/// stop it (as in Tornado); [`stop`](TCPServer::stop) or closing the loop
/// does. A `handle_stream` that holds a clone of its own server keeps it
/// alive until `stop()`.
#[derive(Clone)]
pub struct TCPServer {
    inner: Rc<Inner>,
}

impl TCPServer {
    /// A server that calls `handle_stream(stream, peer)` for each connection.
    /// Its sockets go on the loop current when they are added.
    pub fn new<R, F>(mut handle_stream: F) -> TCPServer
    where
        R: CallbackReturn,
        F: FnMut(IOStream, SocketAddr) -> R + 'static,
    {
        TCPServer {
            inner: Rc::new(Inner {
                shared: Rc::new(Shared {
                    handle_stream: RefCell::new(Box::new(move |stream, peer| {
                        handle_stream(stream, peer).into_outcome()
                    })),
                    name: std::any::type_name::<F>(),
                    nodelay: Cell::new(false),
                    max_buffer_size: Cell::new(None),
                    #[cfg(feature = "tls")]
                    ssl_options: RefCell::new(None),
                    #[cfg(feature = "tls")]
                    handshake_timeout: Cell::new(DEFAULT_HANDSHAKE_TIMEOUT),
                    connections: RefCell::new(Vec::new()),
                    live_after_prune: Cell::new(0),
                    trim: trim::TrimWatch::default(),
                }),
                io_loop: RefCell::new(None),
                handles: RefCell::new(Vec::new()),
                pending: RefCell::new(Vec::new()),
                backlog: Cell::new(None),
                started: Cell::new(false),
            }),
        }
    }

    /// Like [`new`](TCPServer::new), with its sockets on `io_loop`.
    pub fn with_loop<R, F>(io_loop: &IOLoop, handle_stream: F) -> TCPServer
    where
        R: CallbackReturn,
        F: FnMut(IOStream, SocketAddr) -> R + 'static,
    {
        let server = TCPServer::new(handle_stream);
        *server.inner.io_loop.borrow_mut() = Some(io_loop.clone());
        server
    }

    /// Sets `TCP_NODELAY` on every stream accepted from now on (default off;
    /// see the [module docs](self)).
    pub fn set_nodelay(&self, nodelay: bool) {
        self.inner.shared.nodelay.set(nodelay);
    }

    /// The read-buffer limit of every stream accepted from now on
    /// (Tornado's `max_buffer_size`); `None` keeps [`IOStream`]'s default.
    pub fn set_max_buffer_size(&self, max: Option<usize>) {
        self.inner.shared.max_buffer_size.set(max);
    }

    /// Serves TLS on every connection accepted from now on (Tornado's
    /// `ssl_options`); `None` goes back to plain TCP. Build the
    /// configuration with [`tls::ServerOptions`](crate::tls::ServerOptions)
    /// (certificate and key files) or bring a rustls `ServerConfig`. Set it
    /// before [`start(n)`](TCPServer::start): the forked children share it.
    #[cfg(feature = "tls")]
    pub fn set_ssl_options(&self, config: Option<Arc<rustls::ServerConfig>>) {
        *self.inner.shared.ssl_options.borrow_mut() = config;
    }

    /// How long a TLS client has to finish its handshake before its
    /// connection is closed (default [`DEFAULT_HANDSHAKE_TIMEOUT`], Tornado's
    /// connect timeout). A stalled handshake costs a socket and a timer, and
    /// never delays other connections.
    #[cfg(feature = "tls")]
    pub fn set_handshake_timeout(&self, timeout: Duration) {
        self.inner.shared.handshake_timeout.set(timeout);
    }

    /// Binds `port` on all interfaces and starts accepting at once: the
    /// single-process shortcut for `bind` + `start(1)`; Tornado's
    /// `listen(port)`. Port 0 is a free port (see
    /// [`local_addrs`](TCPServer::local_addrs)). [`listen_with`](TCPServer::listen_with)
    /// takes Tornado's keyword arguments (`address`, `backlog`, ...).
    ///
    /// # Errors
    /// If binding fails, or the loop cannot watch the sockets.
    pub fn listen(&self, port: u16) -> Result<(), Error> {
        self.listen_with(port, BindOptions::default())
    }

    /// [`listen`](TCPServer::listen) with Tornado's keyword arguments:
    /// `listen(port, address="127.0.0.1")` is
    /// `listen_with(port, BindOptions::new().address("127.0.0.1"))`. The
    /// options mean what they mean to [`netutil::bind_sockets_with`].
    ///
    /// # Errors
    /// If binding fails, or the loop cannot watch the sockets.
    pub fn listen_with(&self, port: u16, options: BindOptions) -> Result<(), Error> {
        let listeners = netutil::bind_sockets_with(port, options)?;
        self.add_sockets(listeners)
    }

    /// Binds `port` on all interfaces; accepting starts with
    /// [`start`](TCPServer::start), or at once if the server is started
    /// already. Tornado's `bind(port)`; [`bind_with`](TCPServer::bind_with)
    /// takes the keyword arguments.
    ///
    /// # Errors
    /// If binding fails.
    pub fn bind(&self, port: u16) -> Result<(), Error> {
        self.bind_with(port, BindOptions::default())
    }

    /// [`bind`](TCPServer::bind) with Tornado's keyword arguments (`address`,
    /// `family`, `backlog`, `reuse_port`; see [`BindOptions`]):
    /// `bind(8888, reuse_port=True)` is
    /// `bind_with(8888, BindOptions::new().reuse_port(true))`.
    ///
    /// # Errors
    /// If binding fails.
    pub fn bind_with(&self, port: u16, options: BindOptions) -> Result<(), Error> {
        let backlog = options.backlog;
        let listeners = netutil::bind_sockets_with(port, options)?;
        self.inner.backlog.set(backlog);
        if self.inner.started.get() {
            self.add_sockets(listeners)
        } else {
            self.inner.pending.borrow_mut().extend(listeners);
            Ok(())
        }
    }

    /// Starts accepting on the sockets [`bind`](TCPServer::bind) made;
    /// Tornado's `start(num_processes)`.
    ///
    /// `start(1)` accepts in this process. Any other number forks that many
    /// processes first (`0`: one per CPU) with
    /// [`process::fork_processes`], at most
    /// [`process::DEFAULT_MAX_RESTARTS`] restarts, and returns in each child
    /// (the parent never returns); see [Several processes](self#several-processes).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidState`] if the server was started already, or if
    /// it cannot fork: an `IOLoop` exists already in the process (create it
    /// after `start`), or other threads run; or as
    /// [`add_sockets`](TCPServer::add_sockets). In a child: if its own
    /// `SO_REUSEPORT` socket cannot be bound.
    pub fn start(&self, num_processes: usize) -> Result<(), Error> {
        self.start_max_restarts(num_processes, process::DEFAULT_MAX_RESTARTS)
    }

    /// [`start`](TCPServer::start) with Tornado's `max_restarts` (for
    /// `start`: [`process::DEFAULT_MAX_RESTARTS`]), passed to
    /// [`process::fork_processes_max_restarts`].
    ///
    /// # Errors
    /// As [`start`](TCPServer::start).
    pub fn start_max_restarts(
        &self,
        num_processes: usize,
        max_restarts: usize,
    ) -> Result<(), Error> {
        if self.inner.started.get() {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "TCPServer::start called twice",
            ));
        }
        if num_processes == 1 {
            self.inner.started.set(true);
            let pending = std::mem::take(&mut *self.inner.pending.borrow_mut());
            return self.add_sockets(pending);
        }
        if let Err(why) = process::check_can_fork() {
            return Err(Error::new(ErrorKind::InvalidState, why));
        }
        // Reuse-port sockets become reservations: the parent holds the port
        // without listening, each child listens on its own socket.
        let pending = std::mem::take(&mut *self.inner.pending.borrow_mut());
        let mut shared = Vec::new();
        let mut reserved = Vec::new();
        for listener in pending {
            if SockRef::from(&listener).reuse_port().unwrap_or(false) {
                let addr = listener.local_addr()?;
                let backlog = self.inner.backlog.get();
                let reservation = reserve(addr)?;
                drop(listener);
                reserved.push((reservation, addr, backlog));
            } else {
                shared.push(listener);
            }
        }
        self.inner.started.set(true);
        process::fork_processes_max_restarts(num_processes, max_restarts)?;
        // In a child.
        let mut listeners = shared;
        for (reservation, addr, backlog) in reserved {
            let mut own = netutil::bind_addrs_with(
                &[addr],
                BindOptions {
                    backlog,
                    reuse_port: true,
                    ..BindOptions::default()
                },
            )?;
            drop(reservation);
            listeners.append(&mut own);
        }
        self.add_sockets(listeners)?;
        let io_loop = self.io_loop();
        self.shutdown_on_signals(
            &io_loop,
            &[libc::SIGTERM, libc::SIGINT],
            DEFAULT_SHUTDOWN_GRACE,
        )
    }

    /// The loop the server's sockets go on (chosen now if not yet).
    fn io_loop(&self) -> IOLoop {
        self.inner
            .io_loop
            .borrow_mut()
            .get_or_insert_with(IOLoop::current)
            .clone()
    }

    /// Stops accepting and lets the connections in flight finish: the future
    /// is done when every connection this server accepted is closed. Those
    /// still open after `grace` are closed then (their pending reads and
    /// writes fail with `StreamClosed`). Tornado leaves this to the
    /// application; see [`shutdown_on_signals`](TCPServer::shutdown_on_signals).
    pub fn shutdown(&self, grace: Duration) -> Future<()> {
        self.stop();
        let done = Future::new();
        let io_loop = self.io_loop();
        let deadline = crate::ioloop::saturating_add(io_loop.time(), grace);
        poll_drained(self.inner.shared.clone(), io_loop, deadline, done.clone());
        done
    }

    /// On the first of `signals` (e.g. `libc::SIGTERM`), runs
    /// [`shutdown(grace)`](TCPServer::shutdown) and stops `io_loop` when it is
    /// done: the loop's `start()` returns, and so can `main`, with status 0.
    /// [`start(n)`](TCPServer::start) does this in each child with `SIGTERM`
    /// and `SIGINT`; call it again there to change the bound. See
    /// [`process::on_shutdown_signals`], which HTTP-level servers reuse.
    ///
    /// # Errors
    /// As [`IOLoop::add_signal_handler`].
    pub fn shutdown_on_signals(
        &self,
        io_loop: &IOLoop,
        signals: &[i32],
        grace: Duration,
    ) -> Result<(), Error> {
        let server = self.clone();
        process::on_shutdown_signals(io_loop, signals, grace, move |grace| server.shutdown(grace))
    }

    /// The connections this server accepted that are still open.
    pub fn connection_count(&self) -> usize {
        self.inner.shared.open_connections()
    }

    /// Starts accepting on `listeners` (e.g. from [`netutil::bind_sockets`]).
    /// They are made non-blocking, and owned by the server from now on.
    ///
    /// # Errors
    /// If the loop cannot watch one of them ([`ErrorKind::Closed`] on a
    /// closed loop); the ones before it are accepted on, the rest closed.
    pub fn add_sockets(
        &self,
        listeners: impl IntoIterator<Item = TcpListener>,
    ) -> Result<(), Error> {
        let io_loop = self.io_loop();
        for listener in listeners {
            let shared = self.inner.shared.clone();
            let name = shared.name;
            let handle = netutil::add_accept_handler_boxed(
                &io_loop,
                listener,
                Box::new(move |conn, peer| shared.handle_connection(conn, peer)),
                name,
            )?;
            self.inner.handles.borrow_mut().push(handle);
        }
        Ok(())
    }

    /// Starts accepting on one listener; see [`add_sockets`](TCPServer::add_sockets).
    ///
    /// # Errors
    /// As [`add_sockets`](TCPServer::add_sockets).
    pub fn add_socket(&self, listener: TcpListener) -> Result<(), Error> {
        self.add_sockets([listener])
    }

    /// Stops accepting and closes the listening sockets (and any bound and
    /// not yet started). Connections already accepted go on. Harmless
    /// twice; may be called from `handle_stream`.
    pub fn stop(&self) {
        let handles = std::mem::take(&mut *self.inner.handles.borrow_mut());
        let pending = std::mem::take(&mut *self.inner.pending.borrow_mut());
        for handle in handles {
            drop(handle.remove());
        }
        drop(pending);
    }

    /// The addresses the server accepts on (with the port the OS picked, for
    /// port 0), then those bound and not yet started.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        let mut addrs: Vec<SocketAddr> = self
            .inner
            .handles
            .borrow()
            .iter()
            .filter_map(RemoveHandle::local_addr)
            .collect();
        addrs.extend(
            self.inner
                .pending
                .borrow()
                .iter()
                .filter_map(|l| l.local_addr().ok()),
        );
        addrs
    }

    /// How many connections the server accepted, on all its sockets (since
    /// they were added; a stopped server's count restarts).
    pub fn accepted(&self) -> u64 {
        self.inner
            .handles
            .borrow()
            .iter()
            .map(RemoveHandle::accepted)
            .sum()
    }

    /// Whether the server is accepting on at least one socket.
    pub fn is_listening(&self) -> bool {
        !self.inner.handles.borrow().is_empty()
    }
}

/// Completes `done` once every connection of `shared` is closed, closing the
/// rest at `deadline`.
fn poll_drained(
    shared: Rc<Shared>,
    io_loop: IOLoop,
    deadline: std::time::Instant,
    done: Future<()>,
) {
    let open = shared.open_connections();
    if open == 0 {
        done.try_set_result(());
        return;
    }
    if io_loop.time() >= deadline {
        log::warn!("shutdown: closing {open} connections still open after the grace period");
        let streams = std::mem::take(&mut *shared.connections.borrow_mut());
        for stream in streams.iter().filter_map(WeakIOStream::upgrade) {
            stream.close();
        }
        done.try_set_result(());
        return;
    }
    let l = io_loop.clone();
    io_loop.call_later(SHUTDOWN_POLL, move || {
        poll_drained(shared, l, deadline, done)
    });
}

/// A socket bound to `addr` with `SO_REUSEPORT` that does not listen: it
/// holds the port for the children's own reuse-port sockets, and takes no
/// connection.
fn reserve(addr: SocketAddr) -> Result<Socket, Error> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_cloexec(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

impl fmt::Debug for TCPServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TCPServer")
            .field("local_addrs", &self.local_addrs())
            .field("started", &self.inner.started.get())
            .field("nodelay", &self.inner.shared.nodelay.get())
            .finish()
    }
}
