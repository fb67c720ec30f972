//! The response side of one connection; Tornado's `HTTP1Connection` as a
//! server uses it: `write_headers`, `write`, `finish`, `detach`.
//!
//! It owns HTTP/1.1 framing, so no delegate can frame a response wrong:
//! `Content-Length` (the delegate's own, checked against what it writes, or
//! worked out from a whole body), chunked when a streamed response has no
//! length, the end of the body when an HTTP/1.0 client's connection closes;
//! no body at all for `HEAD`, 1xx, 204 and 304; `Connection` to match
//! keep-alive. Header names and values are checked: no CR, LF or NUL ever
//! reaches the wire.
//!
//! ```
//! use squall::http::{HTTPConnection, HTTPServer, HTTPServerRequest};
//! use squall::httputil::HTTPHeaders;
//!
//! // A streamed response: the head now, the body in pieces, then the end.
//! let server = HTTPServer::new(|_req: &HTTPServerRequest, conn: &HTTPConnection| {
//!     let mut headers = HTTPHeaders::new();
//!     headers.add("Content-Type", "text/plain");
//!     conn.write_headers(200, &headers)?; // no length: chunked on HTTP/1.1
//!     conn.write(b"one, ")?;
//!     conn.write(b"two")?;
//!     conn.finish()
//! });
//! # let _ = server;
//! ```

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::{Rc, Weak};

/// The response's head and body framing (`Core::write_head` and kin).
mod framing;

use super::heads::{write_status_line, write_usize};
use super::request::{HTTPServerRequest, Method, Version};
use super::Options;
use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::httputil::{self, HTTPHeaders};
use crate::iostream::IOStream;
use framing::Response;

/// Buffers larger than this are not kept for reuse.
pub(crate) const SPARE_MAX: usize = 16 * 1024;

/// Where the reading of requests stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for (the rest of) a request head.
    Head,
    /// Reading a request body.
    Body(Body),
    /// The request is read; its response is not finished.
    Busy,
    /// Nothing more is read: an error answer was sent, the peer left, or
    /// the connection was detached.
    Done,
}

/// How a request body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    /// This many bytes still to come.
    Length(u64),
    /// The reader's decoder knows where it stands.
    Chunked,
}

/// What the connection's reader (generic over the delegate) is told from
/// the response side. Only on the slow paths: a response finished inside
/// the read hook is noticed by the reader itself.
pub(crate) trait Reader {
    /// The response was finished outside the read hook.
    fn response_done(&self);
    /// The connection was detached: forget the stream.
    fn detached(&self);
}

/// The connection a request came in on, and its response; Tornado's
/// `HTTP1Connection` (the `request.connection` a handler writes to).
///
/// A cheap-to-clone handle. A response is a head
/// ([`write_headers`](Self::write_headers)), body pieces
/// ([`write`](Self::write)), and the end ([`finish`](Self::finish)); or all
/// three at once with [`write_response`](Self::write_response). Writes are
/// buffered while the server is handling what it just read (the responses
/// of pipelined requests go out in one write), and sent at once otherwise;
/// [`flush`](Self::flush) says when they have gone.
///
/// It owns HTTP/1.1 framing, so no delegate can frame a response wrong:
/// `Content-Length` (the delegate's own, held to what it writes, or worked
/// out from a whole body), chunked when a streamed response has no length,
/// the end of the body when an HTTP/1.0 client's connection closes; no body
/// at all for `HEAD`, 1xx, 204 and 304; `Connection` to match keep-alive.
/// Header names and values are checked: no CR, LF or NUL reaches the wire.
///
/// ```
/// use squall::http::{HTTPConnection, HTTPServer, HTTPServerRequest};
/// use squall::httputil::HTTPHeaders;
///
/// // A streamed response: the head now, the body in pieces, then the end.
/// let server = HTTPServer::new(|_req: &HTTPServerRequest, conn: &HTTPConnection| {
///     let mut headers = HTTPHeaders::new();
///     headers.add("Content-Type", "text/plain");
///     conn.write_headers(200, &headers)?; // no length: chunked on HTTP/1.1
///     conn.write(b"one, ")?;
///     conn.write(b"two")?;
///     conn.finish()
/// });
/// # let _ = server;
/// ```
#[derive(Clone)]
pub struct HTTPConnection {
    pub(crate) core: Rc<Core>,
}

pub(crate) struct Core {
    pub(crate) stream: IOStream,
    pub(crate) opts: Rc<Options>,
    pub(crate) peer: SocketAddr,
    pub(crate) phase: Cell<Phase>,
    /// Output built during this batch, written once at its end.
    out: RefCell<Vec<u8>>,
    pub(crate) in_hook: Cell<bool>,
    /// Close once the output has gone out.
    pub(crate) closing: Cell<bool>,
    close_scheduled: Cell<bool>,
    pub(crate) detached: Cell<bool>,
    response: Cell<Response>,
    /// Whether the response in progress keeps the connection open.
    keep_alive: Cell<bool>,
    version: Cell<Version>,
    /// The request being answered is a `HEAD`.
    head_request: Cell<bool>,
    /// The body limit for the request being read.
    pub(crate) max_body_size: Cell<usize>,
    /// The last request, emptied, for the next one: a keep-alive
    /// connection parses without allocating.
    pub(crate) spare: Cell<Option<Box<HTTPServerRequest>>>,
    pub(crate) reader: RefCell<Option<Weak<dyn Reader>>>,
}

impl HTTPConnection {
    pub(crate) fn new(stream: IOStream, peer: SocketAddr, opts: Rc<Options>) -> HTTPConnection {
        HTTPConnection {
            core: Rc::new(Core {
                max_body_size: Cell::new(opts.max_body_size),
                stream,
                opts,
                peer,
                phase: Cell::new(Phase::Head),
                out: RefCell::new(Vec::new()),
                in_hook: Cell::new(false),
                closing: Cell::new(false),
                close_scheduled: Cell::new(false),
                detached: Cell::new(false),
                response: Cell::new(Response::Idle),
                keep_alive: Cell::new(true),
                version: Cell::new(Version::Http11),
                head_request: Cell::new(false),
                spare: Cell::new(None),
                reader: RefCell::new(None),
            }),
        }
    }

    /// Writes the response head: the status line, `Server`, `Date`, the
    /// server's default `Content-Type` unless `headers` has one, `headers`,
    /// and the framing. A `Content-Length` in `headers` is respected (and
    /// what is written is held to it); without one the body is chunked
    /// (HTTP/1.1) or ends with the connection (HTTP/1.0). A 1xx other than
    /// 101 is an interim head: another follows.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for a header name that is not a
    /// token, a value with CR, LF or NUL, a `Content-Length` that is not a
    /// number (or one on a 1xx or 204), or a `Transfer-Encoding` other than
    /// `chunked`; nothing is written then. [`ErrorKind::InvalidState`] if
    /// the head was already written, or no request is being answered.
    pub fn write_headers(&self, status: u16, headers: &HTTPHeaders) -> Result<(), Error> {
        self.core.write_head(status, headers, None)?;
        self.core.send_now();
        Ok(())
    }

    /// Writes a piece of the body (chunk-framed if the response is
    /// chunked; dropped if it may have no body, as for `HEAD` or 304).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidState`] before [`write_headers`](Self::write_headers)
    /// or after [`finish`](Self::finish); [`ErrorKind::HttpProtocol`] if it
    /// would pass the response's `Content-Length` (the connection is closed:
    /// its framing cannot be trusted any more).
    pub fn write(&self, chunk: &[u8]) -> Result<(), Error> {
        // What fits goes out even when the rest is refused.
        let written = self.core.write_body(chunk);
        self.core.send_now();
        written
    }

    /// A whole response at once: the head with `Content-Length` (the body's,
    /// unless `headers` sets one), the body, the end. The usual response (a
    /// 200 with no headers of its own, on a keep-alive HTTP/1.1 connection)
    /// takes one copy of a cached head.
    ///
    /// # Errors
    /// As [`write_headers`](Self::write_headers); a `Content-Length` in
    /// `headers` that `body` does not match is an [`ErrorKind::HttpProtocol`]
    /// error after what fits was sent, and the connection closes.
    ///
    /// Inlined, so that the usual response is written where it is given,
    /// without a call; any other takes the general path, out of line.
    #[inline]
    pub fn write_response(
        &self,
        status: u16,
        headers: &HTTPHeaders,
        body: &[u8],
    ) -> Result<(), Error> {
        let core = &*self.core;
        if status == 200
            && core.response.get() == Response::Pending
            && headers.is_empty()
            && core.keep_alive.get()
            && core.version.get() == Version::Http11
        {
            core.write_usual(body);
            core.response_done();
            return Ok(());
        }
        self.write_whole(status, headers, body)
    }

    /// `write_response` for all but the usual response.
    #[inline(never)]
    fn write_whole(&self, status: u16, headers: &HTTPHeaders, body: &[u8]) -> Result<(), Error> {
        let core = &*self.core;
        // A bad head writes nothing (and the caller may answer another
        // way); once it is out, the response ends here whatever else
        // fails, so the connection goes on or closes, never hangs.
        core.write_head(status, headers, Some(body.len()))?;
        let written = core.write_body(body);
        let finished = core.end();
        core.response_done();
        written.and(finished)
    }

    /// Sends what is buffered; the future is done when it has gone to the
    /// kernel (Tornado's `flush`): wait for it before writing more, and a
    /// large body goes out with bounded memory.
    pub fn flush(&self) -> Future<()> {
        // At once, even while the read hook runs (which would otherwise
        // send at its end): the future must wait for these very bytes.
        self.core.flush_out();
        self.core.stream.flushed()
    }

    /// Ends the response: the last chunk of a chunked body; then the
    /// connection reads the next request, or closes (`Connection: close`,
    /// HTTP/1.0, a body still unread, a body shorter than its
    /// `Content-Length`, which is logged).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidState`] before [`write_headers`](Self::write_headers)
    /// or if already finished; [`ErrorKind::HttpProtocol`] if the body was
    /// shorter than its `Content-Length` (the connection closes).
    pub fn finish(&self) -> Result<(), Error> {
        let result = self.core.end();
        if result
            .as_ref()
            .is_err_and(|e| e.kind() == ErrorKind::InvalidState)
        {
            return result;
        }
        self.core.response_done();
        result
    }

    /// Hands the connection's stream over and forgets it (Tornado's
    /// `detach`): what is written so far goes out first, and bytes the
    /// client sent after this request (read but not consumed) stay in the
    /// stream's buffer for its new owner. Typically after a
    /// `101 Switching Protocols` head, to speak another protocol.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidState`] if the connection was already detached,
    /// is closed, or no request is being answered.
    pub fn detach(&self) -> Result<IOStream, Error> {
        let core = &*self.core;
        if core.detached.get() || core.stream.closed() || core.response.get() == Response::Idle {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "detach(): no request being answered on an open connection",
            ));
        }
        core.detached.set(true);
        core.response.set(Response::Done);
        core.phase.set(Phase::Done);
        {
            let mut out = core.out.borrow_mut();
            if !out.is_empty() {
                let _ = core.stream.write_from(&mut out);
            }
        }
        core.stream.clear_read_hook();
        // The server's close callback holds the connection: let it go.
        core.stream.set_close_callback(|| {});
        let reader = core.reader.borrow_mut().take();
        if let Some(reader) = reader.and_then(|r| r.upgrade()) {
            reader.detached();
        }
        Ok(core.stream.clone())
    }

    /// Sets the largest body accepted for the request being read (larger
    /// gets 413); from
    /// [`headers_received`](super::HTTPMessageDelegate::headers_received),
    /// to raise the server's limit for an upload (Tornado's
    /// `request.connection.set_max_body_size`).
    pub fn set_max_body_size(&self, max: usize) {
        self.core.max_body_size.set(max);
    }

    /// Gives a request back when its delegate is done with it: the next one
    /// on this connection reuses its buffers (if they are small).
    #[inline]
    pub fn recycle_request(&self, mut request: Box<HTTPServerRequest>) {
        if request.recycle(SPARE_MAX) {
            self.core.spare.set(Some(request));
        }
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.core.peer
    }

    /// Whether the connection is closed.
    pub fn closed(&self) -> bool {
        self.core.stream.closed()
    }

    /// Whether the response in progress leaves the connection open for
    /// another request.
    pub fn keep_alive(&self) -> bool {
        self.core.keep_alive.get()
    }

    /// Whether the head of the response in progress has been written.
    pub fn headers_written(&self) -> bool {
        matches!(self.core.response.get(), Response::Body(_) | Response::Done)
    }

    /// The loop the connection runs on.
    pub fn io_loop(&self) -> &crate::IOLoop {
        self.core.stream.io_loop()
    }

    /// Answers a failed request: 500 if nothing was written, else closes
    /// (the response cannot be framed any more). Logged once.
    pub(crate) fn fail(&self, request: &HTTPServerRequest, err: Error) {
        log::error!(
            "uncaught error answering {} {}: {err}",
            request.method(),
            request.uri()
        );
        match self.core.response.get() {
            Response::Pending => {
                let _ = self.write_response(500, &HTTPHeaders::new(), error_page(500).as_bytes());
            }
            Response::Body(_) => self.abort(),
            Response::Idle | Response::Done => {}
        }
    }

    /// An error after the response started: the connection cannot be
    /// trusted to frame another response, so it closes.
    pub(crate) fn abort(&self) {
        let core = &*self.core;
        core.closing.set(true);
        if core.response.get() != Response::Idle {
            core.response.set(Response::Done);
        }
        core.phase.set(Phase::Done);
        core.send_now();
    }

    /// Whether a body is still to come for the request being read.
    #[inline]
    pub(crate) fn expects_body(&self) -> bool {
        matches!(self.core.phase.get(), Phase::Body(_))
    }

    /// Whether the response in progress is finished (or none is).
    pub(crate) fn response_finished(&self) -> bool {
        matches!(self.core.response.get(), Response::Done | Response::Idle)
    }
}

impl Core {
    /// A request's head is read: its response begins.
    pub(crate) fn begin(&self, request: &HTTPServerRequest) {
        self.keep_alive.set(request.keep_alive);
        self.version.set(request.version);
        self.head_request.set(request.method == Method::Head);
        self.response.set(Response::Pending);
        self.max_body_size.set(self.opts.max_body_size);
    }

    /// The request being read is refused: its response, whoever writes
    /// it, says `Connection: close`.
    pub(crate) fn refusing(&self) {
        self.keep_alive.set(false);
    }

    /// Whether a response has been begun and not finished.
    pub(crate) fn answering(&self) -> bool {
        matches!(self.response.get(), Response::Pending | Response::Body(_))
    }

    /// Whether nothing of the response is written yet.
    pub(crate) fn nothing_written(&self) -> bool {
        self.response.get() == Response::Pending
    }

    /// The response is complete: go on with the next request (or close).
    /// Inlined: the usual response ends inside the read hook, where this is
    /// a few flag updates; outside it, the rest is a call of its own.
    #[inline]
    pub(crate) fn response_done(&self) {
        if !self.keep_alive.get() {
            self.closing.set(true);
        }
        {
            match self.phase.get() {
                Phase::Busy => self.phase.set(Phase::Head),
                // Answered before the body was read: rather than read and
                // drop the rest, close.
                Phase::Body(_) => {
                    self.closing.set(true);
                    self.phase.set(Phase::Done);
                }
                Phase::Head | Phase::Done => {}
            }
        }
        if !self.in_hook.get() {
            self.response_done_outside_hook();
        }
    }

    /// A response finished from a later callback: it goes out now, and the
    /// reader goes on with what is waiting.
    #[inline(never)]
    fn response_done_outside_hook(&self) {
        self.flush_out();
        let reader = self.reader.borrow().clone();
        if let Some(reader) = reader.and_then(|r| r.upgrade()) {
            reader.response_done();
        }
    }

    /// Sends what is buffered now (unless the read hook is running: it
    /// sends everything at its end).
    #[inline]
    pub(crate) fn send_now(&self) {
        if !self.in_hook.get() {
            self.flush_out();
        }
    }

    pub(crate) fn flush_out(&self) {
        if self.detached.get() {
            return;
        }
        let mut out = self.out.borrow_mut();
        if !out.is_empty() {
            if let Err(err) = self.stream.write_from(&mut out) {
                log::debug!("write to {}: {err}", self.peer);
                out.clear();
            }
        }
        drop(out);
        if self.closing.get() && !self.close_scheduled.replace(true) {
            let stream = self.stream.clone();
            self.stream
                .flushed()
                .add_done_callback(move |_: &Future<()>| stream.close());
        }
    }

    /// Whether the connection is on its way to closing.
    pub(crate) fn close_scheduled(&self) -> bool {
        self.close_scheduled.get()
    }

    /// Answers a protocol error with `status` and closes.
    pub(crate) fn error_response(&self, status: u16) {
        log::info!(
            "{status} bad request from {} ({})",
            self.peer,
            httputil::responses(status)
        );
        let body = format!("{status}: {}", httputil::responses(status));
        let mut out = self.out.borrow_mut();
        write_status_line(&mut out, status);
        self.opts
            .heads
            .write_common(self.stream.io_loop(), &mut out, false, false);
        out.extend_from_slice(b"Content-Type: text/plain; charset=UTF-8\r\nContent-Length: ");
        write_usize(&mut out, body.len());
        out.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        out.extend_from_slice(body.as_bytes());
        drop(out);
        if self.response.get() != Response::Idle {
            self.response.set(Response::Done);
        }
        self.closing.set(true);
        self.phase.set(Phase::Done);
        if !self.in_hook.get() {
            self.flush_out();
        }
    }

    /// `100 Continue`, for a client waiting for it before sending a body.
    pub(crate) fn write_continue(&self) {
        self.out
            .borrow_mut()
            .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    /// Frees the idle connection's buffers (only those holding nothing);
    /// whether it had any of its own to free (a connection that never had
    /// a request has none).
    pub(crate) fn release_buffers(&self) -> bool {
        self.stream.release_buffers();
        let mut freed = false;
        if let Ok(mut out) = self.out.try_borrow_mut() {
            if out.is_empty() && out.capacity() > 0 {
                *out = Vec::new();
                freed = true;
            }
        }
        let spare = self.spare.take();
        freed |= spare.is_some();
        drop(spare);
        freed
    }
}

/// Tornado's error page: `<html><title>404: Not Found</title>...`.
pub(crate) fn error_page(status: u16) -> String {
    let reason = httputil::responses(status);
    format!("<html><title>{status}: {reason}</title><body>{status}: {reason}</body></html>")
}
