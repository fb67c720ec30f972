//! An HTTP/1.1 server as a protocol layer; Tornado's `httpserver` and
//! `http1connection`.
//!
//! An [`HTTPServer`] serves any [`HTTPServerConnectionDelegate`]: for each
//! request it asks the delegate for an [`HTTPMessageDelegate`], tells it the
//! head, the body as it arrives and the end, and hands it the
//! [`HTTPConnection`] the response goes to, which owns the framing.
//! [`web::Application`](crate::web::Application) is one delegate; a closure
//! of the whole request is the smallest:
//!
//! ```no_run
//! use squall::http::{HTTPConnection, HTTPServer, HTTPServerRequest};
//! use squall::httputil::HTTPHeaders;
//! use squall::{netutil::BindOptions, Error, IOLoop};
//!
//! let server = HTTPServer::new(|req: &HTTPServerRequest, conn: &HTTPConnection| {
//!     let mut headers = HTTPHeaders::new();
//!     headers.add("Content-Type", "text/plain");
//!     conn.write_response(200, &headers, format!("{} {}\n", req.method(), req.uri()).as_bytes())
//! });
//! server.listen_with(8888, BindOptions::new().address("127.0.0.1"))?;
//! IOLoop::current().start()?;
//! # Ok::<(), Error>(())
//! ```
//!
//! The server handles keep-alive (and HTTP/1.0, with or without
//! `Connection: keep-alive`), pipelined requests answered in order,
//! `Content-Length` and chunked request bodies (streamed to the delegate,
//! with backpressure), chunked responses when a response is streamed
//! without a length, `HEAD`, `Expect: 100-continue`, `Date` and `Server`
//! headers, connection hand-off ([`HTTPConnection::detach`]), and (through
//! `web`) an access-log line per request (`log::info!`, target
//! `squall::access`).
//!
//! With [`web`](crate::web):
//!
//! ```no_run
//! use squall::http::HTTPServer;
//! use squall::web::{Application, Exchange, RequestHandler};
//! use squall::{netutil::BindOptions, Error, IOLoop};
//!
//! struct MainHandler;
//! impl RequestHandler for MainHandler {
//!     fn get(&mut self, x: &Exchange) -> Result<(), Error> {
//!         x.write("Hello, world");
//!         Ok(())
//!     }
//! }
//!
//! let app = Application::new().route("/", || MainHandler);
//! let server = HTTPServer::new(app);
//! server.listen_with(8888, BindOptions::new().address("127.0.0.1"))?;
//! IOLoop::current().start()?;
//! # Ok::<(), Error>(())
//! ```
//!
//! # What a request must be
//! A request is refused with 400 (and the connection closed) if it could be
//! read two ways: an HTTP/1.1 request without exactly one valid `Host`; a
//! `Content-Length` that is not `1*DIGIT` or that differs from another; a
//! `Transfer-Encoding` of `chunked` twice, or with a `Content-Length`; chunk
//! sizes with blanks, chunked framing lines not ending in CRLF. Header
//! values with bytes 0x80-0xFF (obs-text) are served:
//! [`HTTPHeaders::get`](crate::httputil::HTTPHeaders::get) gives them
//! decoded as Latin-1 and
//! [`get_bytes`](crate::httputil::HTTPHeaders::get_bytes) as they came.
//!
//! # Limits
//! Each is answered, never a panic, a hang or unbounded memory: a header
//! block over [`set_max_header_size`](HTTPServer::set_max_header_size)
//! (64 KiB) gets 431; a body over [`set_max_body_size`](HTTPServer::set_max_body_size)
//! (100 MiB) 413; a malformed request line or header 400; a transfer coding
//! other than `chunked` 501; an `Expect` other than `100-continue` 417. After
//! an error answer the connection closes. A client whose request head takes
//! longer than [`set_header_timeout`](HTTPServer::set_header_timeout) (blank
//! lines before it included), or that stays idle (or stalls a body) past
//! [`set_idle_timeout`](HTTPServer::set_idle_timeout), is disconnected; a
//! body that trickles in slower than
//! [`set_body_min_rate`](HTTPServer::set_body_min_rate) past
//! [`set_body_timeout`](HTTPServer::set_body_timeout) gets 408.
//!
//! These answers are the server's own short `text/plain` ones, unless the
//! delegate writes its own page: [`HTTPServerConnectionDelegate::on_protocol_error`]
//! for a refused head whose request line could be read,
//! [`HTTPMessageDelegate::on_protocol_error`] for a body refused after the
//! head was handed on. [`web::Application`](crate::web::Application) answers
//! them with the routed handler's `write_error` page.
//!
//! # How a request flows
//! The connection parses heads with `httparse` straight from the stream's
//! read buffer ([`IOStream::set_read_hook`](crate::IOStream::set_read_hook)),
//! copying each head once into its [`HTTPServerRequest`], and hands body
//! bytes to the delegate as slices of that buffer. Every pipelined request
//! in the buffer is handled in turn, and the responses of one read go out in
//! one write. A response that is not finished at once holds the connection:
//! later pipelined requests wait in the buffer, in order. A client that
//! half-closes after its request still gets a response written while its
//! request is handled (the stream writes what is queued before it closes);
//! one that leaves before its response is finished is reported to the
//! delegate ([`HTTPMessageDelegate::on_connection_close`]), as Tornado does.

pub(crate) mod conn;
pub(crate) mod connection;
mod delegate;
#[cfg(feature = "gzip")]
pub mod gzip;
mod heads;
mod request;

use std::net::TcpListener;
use std::rc::Rc;
use std::time::Duration;

use crate::error::Error;
use crate::ioloop::IOLoop;
use crate::netutil::BindOptions;
use crate::tcpserver::TCPServer;

pub(crate) use conn::Conn;
pub use connection::HTTPConnection;
pub(crate) use connection::{error_page, SPARE_MAX};
pub use delegate::{CallableMessage, HTTPMessageDelegate, HTTPServerConnectionDelegate};
pub(crate) use heads::Heads;
pub(crate) use request::Method;
pub use request::{HTTPServerRequest, Version};

/// The default [`HTTPServer::set_body_timeout`].
const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// The default [`HTTPServer::set_body_min_rate`] (Apache's `MinRate`).
const DEFAULT_BODY_MIN_RATE: u64 = 500;

/// The server's limits and timeouts.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) max_header_size: usize,
    pub(crate) max_body_size: usize,
    pub(crate) header_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) body_timeout: Duration,
    /// Bytes per second that each earn a body more time.
    pub(crate) body_min_rate: u64,
    pub(crate) xheaders: bool,
    /// The delegate's `Content-Type` for responses that set none.
    pub(crate) default_content_type: Option<&'static str>,
    /// The cached response-head lines, shared by the connections.
    pub(crate) heads: Rc<Heads>,
    /// Gzipped request bodies are decoded (`set_decompress_request`).
    #[cfg_attr(not(feature = "gzip"), allow(dead_code))]
    pub(crate) decompress_request: bool,
}

/// A non-blocking, single-threaded HTTP/1.1 server; Tornado's `HTTPServer`.
///
/// Created with what it serves (an [`HTTPServerConnectionDelegate`]: a
/// [`web::Application`](crate::web::Application), a closure of the request,
/// or a delegate of your own); listens like a
/// [`TCPServer`] (`listen`, `bind` + `start(n)`, `add_sockets`). Options
/// apply to connections accepted after they are set. See the
/// [module docs](self).
#[derive(Clone)]
pub struct HTTPServer {
    tcp: TCPServer,
    opts: Rc<std::cell::RefCell<Rc<Options>>>,
}

impl HTTPServer {
    /// A server for `delegate`, its sockets on the loop current when
    /// added: a [`web::Application`](crate::web::Application), a delegate
    /// of your own, or a closure that answers each whole request (its body
    /// buffered, up to [`set_max_body_size`](Self::set_max_body_size)):
    ///
    /// ```
    /// use squall::http::{HTTPConnection, HTTPServer, HTTPServerRequest};
    /// use squall::httputil::HTTPHeaders;
    ///
    /// let server = HTTPServer::new(|req: &HTTPServerRequest, conn: &HTTPConnection| {
    ///     let body = format!("you asked for {}", req.uri());
    ///     conn.write_response(200, &HTTPHeaders::new(), body.as_bytes())
    /// });
    /// # let _ = server;
    /// ```
    pub fn new<D: HTTPServerConnectionDelegate>(delegate: D) -> HTTPServer {
        HTTPServer::build(delegate, None)
    }

    /// A server for `delegate`, its sockets on `io_loop`.
    pub fn with_loop<D: HTTPServerConnectionDelegate>(io_loop: &IOLoop, delegate: D) -> HTTPServer {
        HTTPServer::build(delegate, Some(io_loop))
    }

    fn build<D: HTTPServerConnectionDelegate>(delegate: D, io_loop: Option<&IOLoop>) -> HTTPServer {
        let content_type = delegate.default_content_type();
        let opts = Rc::new(std::cell::RefCell::new(Rc::new(Options {
            max_header_size: 64 * 1024,
            max_body_size: 100 * 1024 * 1024,
            header_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(300),
            body_timeout: DEFAULT_BODY_TIMEOUT,
            body_min_rate: DEFAULT_BODY_MIN_RATE,
            xheaders: false,
            default_content_type: content_type,
            heads: Rc::new(Heads::new(content_type)),
            decompress_request: false,
        })));
        let delegate = Rc::new(delegate);
        let o = opts.clone();
        let handle = move |stream, peer| {
            let opts = o.borrow().clone();
            Conn::start(stream, peer, delegate.clone(), opts)
        };
        let tcp = match io_loop {
            Some(io_loop) => TCPServer::with_loop(io_loop, handle),
            None => TCPServer::new(handle),
        };
        // Responses are written whole; Nagle would only delay them.
        tcp.set_nodelay(true);
        HTTPServer { tcp, opts }
    }

    fn update(&self, f: impl FnOnce(&mut Options)) {
        let mut opts = self.opts.borrow_mut();
        let mut new = Options::clone(&opts);
        f(&mut new);
        *opts = Rc::new(new);
    }

    /// The largest request head (request line and headers, with any blank
    /// lines before it) accepted; larger gets 431. Default 64 KiB; at least 64 bytes, at most
    /// `u32::MAX` (a head's fields are kept as 32-bit places in it).
    pub fn set_max_header_size(&self, max: usize) {
        self.update(|o| o.max_header_size = max.clamp(64, u32::MAX as usize));
    }

    /// The largest request body accepted; larger gets 413. Default 100 MiB.
    pub fn set_max_body_size(&self, max: usize) {
        self.update(|o| o.max_body_size = max);
    }

    /// Decodes request bodies sent with `Content-Encoding: gzip` before the
    /// delegate sees them (Tornado's `decompress_request`); default off.
    /// The decoded size is held to [`set_max_body_size`](Self::set_max_body_size)
    /// (413 past it); see [`http::gzip`](crate::http::gzip). Feature `gzip`.
    #[cfg(feature = "gzip")]
    pub fn set_decompress_request(&self, decompress: bool) {
        self.update(|o| o.decompress_request = decompress);
    }

    /// How long a client may take to send a request head, from its first
    /// byte. Default 60 s. Checked by the connection's timer, which ticks
    /// every quarter of the shorter of the two timeouts: a slow client is
    /// closed within 1.25 times this.
    pub fn set_header_timeout(&self, timeout: Duration) {
        self.update(|o| o.header_timeout = timeout);
    }

    /// How long a connection may sit idle between requests (or stall while
    /// sending a body); Tornado's `idle_connection_timeout`. Default 300 s.
    /// An idle connection is closed after between this and 1.25 times this
    /// (requests only set a flag; a timer ticks a few times per timeout).
    /// A handler still working on a response is not idleness.
    pub fn set_idle_timeout(&self, timeout: Duration) {
        self.update(|o| o.idle_timeout = timeout);
    }

    /// How long a request body may take (Tornado's `body_timeout`), plus
    /// one second for every [`body_min_rate`](Self::set_body_min_rate)
    /// bytes received: a body that trickles in slower than that rate runs
    /// out of time and is answered 408 (or, if a response has started, the
    /// connection is closed), however steadily it trickles (as Apache's
    /// `mod_reqtimeout` `body=20,MinRate=500`). Time the server itself
    /// holds the body back (a streaming handler's backpressure) does not
    /// count. Default 60 s: a 10 MB upload at 500 B/s still passes.
    pub fn set_body_timeout(&self, timeout: Duration) {
        self.update(|o| o.body_timeout = timeout);
    }

    /// The rate (bytes per second) a slow body must keep up to earn more
    /// time past the [`body_timeout`](Self::set_body_timeout). Default 500
    /// B/s, as Apache's `mod_reqtimeout`; 0 makes the body timeout a plain
    /// deadline.
    pub fn set_body_min_rate(&self, bytes_per_second: u64) {
        self.update(|o| o.body_min_rate = bytes_per_second);
    }

    /// Trusts `X-Real-IP` / `X-Forwarded-For` for
    /// [`HTTPServerRequest::remote_ip`] (Tornado's `xheaders=True`); default
    /// off. Turn it on only behind a proxy that sets them (nginx: see
    /// docs/deployment.md): a client reaching the server directly can send
    /// any value.
    pub fn set_xheaders(&self, trust: bool) {
        self.update(|o| o.xheaders = trust);
    }

    /// Serves HTTPS: TLS on every connection accepted from now on (Tornado's
    /// `HTTPServer(app, ssl_options=...)`). A configuration that offers no
    /// ALPN protocol is given `http/1.1`, so clients that ask get an answer.
    ///
    /// ```no_run
    /// use squall::http::HTTPServer;
    /// use squall::tls::ServerOptions;
    /// use squall::web::Application;
    ///
    /// let server = HTTPServer::new(Application::new());
    /// server.set_ssl_options(ServerOptions::new(
    ///     std::path::Path::new("/etc/ssl/example.pem"),
    ///     std::path::Path::new("/etc/ssl/example.key"),
    /// ))?;
    /// server.listen(443)?;
    /// # Ok::<(), squall::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Tls`](crate::ErrorKind::Tls) if the certificate or key
    /// cannot be loaded.
    #[cfg(feature = "tls")]
    pub fn set_ssl_options(
        &self,
        options: impl Into<crate::tls::ServerSslConfig>,
    ) -> Result<(), crate::Error> {
        let mut config = options.into().into_config()?;
        if config.alpn_protocols.is_empty() {
            std::sync::Arc::make_mut(&mut config).alpn_protocols = vec![b"http/1.1".to_vec()];
        }
        self.tcp.set_ssl_options(Some(config));
        Ok(())
    }

    /// Binds `port` on all interfaces and serves at once; see
    /// [`TCPServer::listen`].
    ///
    /// # Errors
    /// As [`TCPServer::listen`].
    pub fn listen(&self, port: u16) -> Result<(), Error> {
        self.tcp.listen(port)
    }

    /// [`listen`](HTTPServer::listen) with Tornado's keyword arguments
    /// (`address`, `family`, `backlog`, `reuse_port`); see
    /// [`TCPServer::listen_with`].
    ///
    /// # Errors
    /// As [`TCPServer::listen`].
    pub fn listen_with(&self, port: u16, options: BindOptions) -> Result<(), Error> {
        self.tcp.listen_with(port, options)
    }

    /// Binds `port` on all interfaces without serving yet; see
    /// [`TCPServer::bind`].
    ///
    /// # Errors
    /// As [`TCPServer::bind`].
    pub fn bind(&self, port: u16) -> Result<(), Error> {
        self.tcp.bind(port)
    }

    /// [`bind`](HTTPServer::bind) with Tornado's keyword arguments; see
    /// [`TCPServer::bind_with`].
    ///
    /// # Errors
    /// As [`TCPServer::bind`].
    pub fn bind_with(&self, port: u16, options: BindOptions) -> Result<(), Error> {
        self.tcp.bind_with(port, options)
    }

    /// Serves on the bound sockets, in `num_processes` processes; see
    /// [`TCPServer::start`].
    ///
    /// # Errors
    /// As [`TCPServer::start`].
    pub fn start(&self, num_processes: usize) -> Result<(), Error> {
        self.tcp.start(num_processes)
    }

    /// Serves on `listeners` (e.g. from [`netutil::bind_sockets`](crate::netutil::bind_sockets)).
    ///
    /// # Errors
    /// As [`TCPServer::add_sockets`].
    pub fn add_sockets(
        &self,
        listeners: impl IntoIterator<Item = TcpListener>,
    ) -> Result<(), Error> {
        self.tcp.add_sockets(listeners)
    }

    /// Stops accepting; connections in flight go on.
    pub fn stop(&self) {
        self.tcp.stop();
    }

    /// The addresses being listened on.
    pub fn local_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.tcp.local_addrs()
    }

    /// Stops accepting and lets the requests in flight finish; see
    /// [`TCPServer::shutdown`] (connections still open after `grace`,
    /// idle keep-alive ones included, are closed then).
    pub fn shutdown(&self, grace: Duration) -> crate::future::Future<()> {
        self.tcp.shutdown(grace)
    }

    /// Shuts down gracefully on the first of `signals` and stops the loop;
    /// see [`TCPServer::shutdown_on_signals`]. `start(n)` with `n != 1` does
    /// this in each child for `SIGTERM` and `SIGINT`.
    ///
    /// # Errors
    /// As [`IOLoop::add_signal_handler`].
    pub fn shutdown_on_signals(
        &self,
        io_loop: &IOLoop,
        signals: &[i32],
        grace: Duration,
    ) -> Result<(), Error> {
        self.tcp.shutdown_on_signals(io_loop, signals, grace)
    }

    /// The underlying TCP server.
    pub fn tcp_server(&self) -> &TCPServer {
        &self.tcp
    }
}
