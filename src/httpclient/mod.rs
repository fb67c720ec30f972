//! A non-blocking HTTP/1.1 client: Tornado's `AsyncHTTPClient`.
//!
//! [`AsyncHTTPClient::fetch`] takes a URL or an [`HTTPRequest`] and returns a
//! [`Future`](crate::Future) of the [`HTTPResponse`]. Here the server is a
//! tiny [`TCPServer`](crate::TCPServer) on the same loop:
//!
//! ```
//! use std::net::SocketAddr;
//! use squall::httpclient::{AsyncHTTPClient, HTTPError, HTTPRequest, HTTPResponse};
//! use squall::{netutil::BindOptions, ErrorKind, Future, IOLoop, IOStream, TCPServer};
//!
//! let io_loop = IOLoop::new()?;
//! let (hello, missing) = io_loop.run_sync(|| {
//!     // A server answering every request on a connection: `/` with a
//!     // greeting, anything else with a 404.
//!     let server = TCPServer::new(|stream: IOStream, _: SocketAddr| serve(stream));
//!     fn serve(stream: IOStream) {
//!         let s = stream.clone();
//!         stream.read_until_max_bytes(b"\r\n\r\n", 65536).add_done_callback(move |head: &Future<Vec<u8>>| {
//!             let Ok(head) = head.take_result() else { return };
//!             let reply: &[u8] = if head.starts_with(b"GET / ") {
//!                 b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, world!"
//!             } else {
//!                 b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
//!             };
//!             s.write(reply);
//!             serve(s); // keep-alive: wait for the next request
//!         });
//!     }
//!     server.listen_with(0, BindOptions::new().address("127.0.0.1")).expect("listen");
//!     let base = format!("http://{}", server.local_addrs()[0]);
//!
//!     let client = AsyncHTTPClient::new();
//!     let done = Future::new();
//!     let d = done.clone();
//!     let (c, b) = (client.clone(), base.clone());
//!     client.fetch(base.as_str()).add_done_callback(move |hello: &Future<HTTPResponse>| {
//!         let hello = hello.take_result()?;
//!         // A 404 is an error carrying the response (raise_error)...
//!         c.fetch(format!("{b}/nowhere")).add_done_callback(move |missing: &Future<HTTPResponse>| {
//!             let err = missing.take_result().unwrap_err();
//!             let code = HTTPError::from_error(&err).map(|e| e.code);
//!             server.stop();
//!             d.set_result((hello.text(), code))
//!         });
//!         Ok(())
//!     });
//!     done
//! }, None)?;
//! assert_eq!(hello, "Hello, world!");
//! assert_eq!(missing, Some(404));
//! # Ok::<(), squall::Error>(())
//! ```
//!
//! # What it does
//! - HTTP/1.1 over TCP, and over TLS for `https://` (feature `tls`, on by
//!   default): the server's certificate is verified against the system's
//!   roots unless the request says otherwise (`HTTPRequest::validate_cert`,
//!   `HTTPRequest::ca_certs`, `HTTPRequest::client_cert`, Tornado's
//!   keywords); the handshake counts as connecting, within
//!   `connect_timeout`. Answers are parsed with `httparse`; bodies framed
//!   by `Content-Length`, chunked coding or the server's close; no body for
//!   `HEAD`, 204 and 304; 1xx answers skipped.
//! - Keep-alive: after a complete answer the connection goes back to a pool
//!   per host:port (and, for `https://`, per TLS options) and the next
//!   request to that host reuses it. The pool is bounded:
//!   [`ClientConfig::max_clients`] requests in flight (the rest wait in a
//!   FIFO queue, as Tornado's `max_clients`) and as many open connections
//!   at most, [`ClientConfig::max_per_host`] per host. A pooled connection
//!   the server closed is noticed and dropped; if the server closes it just
//!   as a request goes out, an idempotent request is sent once more on a
//!   new connection.
//! - Redirects (301, 302, 303, 307, 308), between `http://` and `https://`
//!   too, are followed up to [`HTTPRequest::max_redirects`]; 303 (and 301/302 after a non-GET)
//!   become a `GET` without body, 307/308 keep method and body.
//! - Names are resolved by a [`Resolver`](crate::netutil::Resolver) (a
//!   thread pool by default; IP literals directly), so the loop never
//!   blocks on DNS; [`ClientConfig::resolver`] replaces it.
//! - [`HTTPClient`] is the blocking wrapper for scripts and tests, on a
//!   private loop.
//!
//! # Errors and limits
//! A fetch fails with a typed [`Error`](crate::Error): `Io` (refused,
//! unresolvable), `Timeout` with an [`HTTPTimeoutError`] saying which phase
//! (queue, connect, request), `StreamClosed` (the server hung up early),
//! `Tls` (a certificate that does not verify, a failed handshake),
//! `HttpProtocol` (a malformed answer, a head over `max_header_size`, a body
//! over `max_body_size`), `HttpStatus` for a non-2xx answer (with
//! `raise_error`, the default), whose [`HTTPError`] carries the response.
//! Every path removes its timeout and closes (or pools) its connection;
//! [`AsyncHTTPClient::close`] closes the rest.

mod blocking;
mod client;
mod config;
mod exchange;
pub(crate) mod parse;
mod pool;
mod request;
mod response;
pub(crate) mod url;

/// The header map, shared with the server (re-exported from [`httputil`](crate::httputil)).
pub use crate::httputil::HTTPHeaders;
pub use blocking::HTTPClient;
pub use client::AsyncHTTPClient;
pub use config::ClientConfig;
pub use pool::ClientStats;
pub use request::{HTTPRequest, DEFAULT_MAX_REDIRECTS, DEFAULT_TIMEOUT};
pub use response::{HTTPError, HTTPResponse, HTTPTimeoutError, TimeoutPhase};
