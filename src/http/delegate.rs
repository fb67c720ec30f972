//! What the server calls: Tornado's `HTTPServerConnectionDelegate` (one per
//! server, asked for a message delegate per request) and
//! `HTTPMessageDelegate` (told the head, the body as it arrives, the end, or
//! that the client left).
//!
//! A plain function of the whole request is a delegate too: the closure
//! adapter (Tornado's `_CallableAdapter`) buffers the body and calls it once.
//!
//! ```
//! use squall::http::{HTTPConnection, HTTPMessageDelegate, HTTPServer,
//!                    HTTPServerConnectionDelegate, HTTPServerRequest};
//! use squall::httputil::HTTPHeaders;
//! use squall::Future;
//!
//! /// Counts the body's bytes as they come, without keeping them.
//! struct CountBytes;
//! struct Counting {
//!     conn: HTTPConnection,
//!     seen: usize,
//! }
//!
//! impl HTTPServerConnectionDelegate for CountBytes {
//!     type Message = Counting;
//!     fn start_request(&self, conn: &HTTPConnection) -> Counting {
//!         Counting { conn: conn.clone(), seen: 0 }
//!     }
//! }
//!
//! impl HTTPMessageDelegate for Counting {
//!     fn headers_received(&mut self, request: Box<HTTPServerRequest>) {
//!         // Uploads of any size: the body is never held whole.
//!         self.conn.set_max_body_size(u64::MAX as usize);
//!         self.conn.recycle_request(request);
//!     }
//!     fn data_received(&mut self, chunk: &[u8]) -> Option<Future<()>> {
//!         self.seen += chunk.len();
//!         None // consumed: read on
//!     }
//!     fn finish(&mut self) {
//!         let body = format!("{} bytes\n", self.seen);
//!         let _ = self.conn.write_response(200, &HTTPHeaders::new(), body.as_bytes());
//!     }
//! }
//!
//! let server = HTTPServer::new(CountBytes);
//! # let _ = server;
//! ```

use super::{HTTPConnection, HTTPServerRequest};
use crate::error::Error;
use crate::future::Future;

/// What an [`HTTPServer`](super::HTTPServer) serves; Tornado's
/// `HTTPServerConnectionDelegate`.
///
/// It makes one [`Message`](Self::Message) per request, handed the
/// connection the response goes to. [`web::Application`](crate::web::Application)
/// is one; a closure `Fn(&HTTPServerRequest, &HTTPConnection) -> Result<(), Error>`
/// is another (see [`HTTPServer::new`](super::HTTPServer::new)).
pub trait HTTPServerConnectionDelegate: 'static {
    /// The per-request delegate.
    type Message: HTTPMessageDelegate;

    /// A request has begun on `conn` (its head has been read); Tornado's
    /// `start_request`. The message delegate is told the rest.
    fn start_request(&self, conn: &HTTPConnection) -> Self::Message;

    /// The `Content-Type` of responses that set none, written as part of
    /// the server's cached response head. Default: none;
    /// [`web::Application`](crate::web::Application) says
    /// `text/html; charset=UTF-8`, as Tornado's `RequestHandler` does.
    fn default_content_type(&self) -> Option<&'static str> {
        None
    }

    /// The server refuses a request whose head it could not accept (a bad
    /// `Content-Length` or `Host`, a head over `max_header_size`: `status`
    /// 400, 431, 501...) before any message delegate was made for it:
    /// answer it through `conn` here, or leave it and the server sends its
    /// own short `text/plain` answer. Either way the connection closes
    /// after it (the response says `Connection: close`).
    ///
    /// `request` is what could be read of the head: its request line, and
    /// its headers if the head was complete (they may be the malformed
    /// ones: trust none of them). A head whose request line could not be
    /// read at all gets the server's answer without this being asked.
    /// Called at most once per connection; the response must be finished
    /// before it returns (one begun and left open is cut off). A panic
    /// here is caught and logged, and the server answers.
    ///
    /// [`web::Application`](crate::web::Application) answers with the
    /// routed handler's [`write_error`](crate::web::RequestHandler::write_error)
    /// page. Default: the server's answer.
    #[allow(unused_variables)]
    fn on_protocol_error(
        &self,
        conn: &HTTPConnection,
        status: u16,
        request: Box<HTTPServerRequest>,
    ) {
    }
}

/// One request's events; Tornado's `HTTPMessageDelegate`.
///
/// The connection calls, in order: [`headers_received`](Self::headers_received)
/// once; [`data_received`](Self::data_received) for each piece of the body
/// as it arrives (decoded, if it came chunked); [`finish`](Self::finish)
/// once the body is complete. If the client goes away (or the request turns
/// out malformed) before the response is finished,
/// [`on_connection_close`](Self::on_connection_close) instead, once.
///
/// The response goes through the [`HTTPConnection`] given to
/// [`start_request`](HTTPServerConnectionDelegate::start_request), at any
/// point: a delegate may answer (say, 401) before the body has come, and the
/// connection then closes after the response rather than read the rest.
///
/// The delegate is kept until the response is finished and the body read,
/// then dropped; or, if it asks to be [reused](Self::reuse), kept for the
/// connection's next request.
#[allow(unused_variables)]
pub trait HTTPMessageDelegate: 'static {
    /// The request head: method, target, headers. The request is the
    /// delegate's; give it back with
    /// [`HTTPConnection::recycle_request`] when done with it, and the next
    /// request on the connection reuses its buffers. Its body is empty: the
    /// body comes through [`data_received`](Self::data_received).
    ///
    /// The body's size limit ([`HTTPConnection::set_max_body_size`]) may
    /// still be changed here; the declared length is checked after this
    /// returns.
    fn headers_received(&mut self, request: Box<HTTPServerRequest>);

    /// Asked right after [`headers_received`](Self::headers_received)
    /// when a body follows: a pending [`Future`] holds the body back until
    /// it is done (nothing of it is read, nor handed to
    /// [`data_received`](Self::data_received), before then; the client's
    /// bytes wait in its socket). Tornado's `headers_received` returning an
    /// awaitable: how a streaming handler's `async def prepare` ends before
    /// its `data_received` sees a byte. `None` (the default) reads on. Not
    /// asked for a request with no body: its `finish` follows at once.
    fn hold_body(&mut self) -> Option<Future<()>> {
        None
    }

    /// A piece of the body. Returning a pending [`Future`] pauses reading
    /// until it is done (backpressure: the client's bytes wait in its
    /// socket, not in memory); `None` reads on.
    fn data_received(&mut self, chunk: &[u8]) -> Option<Future<()>> {
        None
    }

    /// The whole request has been read.
    fn finish(&mut self);

    /// The connection closed before the response was finished: the client
    /// left, or sent something malformed. Called at most once, and then
    /// nothing else is.
    fn on_connection_close(&mut self) {}

    /// The server refuses the request being read, after its head: its body
    /// is over the limit (`status` 413), badly framed or badly gzipped
    /// (400), or too slow in coming (408). Asked only while nothing of the
    /// response has been written: answer it through the connection here
    /// (finished before this returns; the response says
    /// `Connection: close`, and the connection closes after it), or leave
    /// it and the server sends its own short `text/plain` answer; then
    /// [`on_connection_close`](Self::on_connection_close) follows. Nothing
    /// else is called after this.
    ///
    /// [`web::Application`](crate::web::Application)'s delegate answers
    /// with the handler's [`write_error`](crate::web::RequestHandler::write_error)
    /// page. Default: the server's answer.
    fn on_protocol_error(&mut self, status: u16) {}

    /// The response is finished and the request read: return `true` to
    /// serve the connection's next request with this same delegate, made
    /// ready for it as if [`start_request`](HTTPServerConnectionDelegate::start_request)
    /// had just made it. `false` (the default) drops it, and the next
    /// request gets a new one.
    ///
    /// An optimisation for a keep-alive connection: no delegate built and
    /// dropped per request. Asked when the response was finished by the
    /// time the request was read (the usual, synchronous case); a delegate
    /// whose response finishes later, from a callback, is dropped then. An
    /// idle connection drops the one it keeps.
    fn reuse(&mut self) -> bool {
        false
    }
}

/// A boxed delegate is a delegate, for servers that choose one at run time.
impl HTTPMessageDelegate for Box<dyn HTTPMessageDelegate> {
    fn headers_received(&mut self, request: Box<HTTPServerRequest>) {
        (**self).headers_received(request);
    }
    fn hold_body(&mut self) -> Option<Future<()>> {
        (**self).hold_body()
    }
    fn data_received(&mut self, chunk: &[u8]) -> Option<Future<()>> {
        (**self).data_received(chunk)
    }
    fn finish(&mut self) {
        (**self).finish();
    }
    fn on_connection_close(&mut self) {
        (**self).on_connection_close();
    }
    fn on_protocol_error(&mut self, status: u16) {
        (**self).on_protocol_error(status);
    }
    fn reuse(&mut self) -> bool {
        (**self).reuse()
    }
}

/// A function of the whole request serves: the body is buffered (up to the
/// server's `max_body_size`), then `f(request, conn)` answers. An `Err` (or
/// a panic) answers 500 if nothing was written yet, and closes the
/// connection otherwise.
impl<F> HTTPServerConnectionDelegate for F
where
    F: Fn(&HTTPServerRequest, &HTTPConnection) -> Result<(), Error> + Clone + 'static,
{
    type Message = CallableMessage<F>;

    fn start_request(&self, conn: &HTTPConnection) -> CallableMessage<F> {
        CallableMessage {
            f: self.clone(),
            conn: conn.clone(),
            request: None,
        }
    }
}

/// The message delegate of a closure server: collects the body, then calls
/// the closure; Tornado's `_CallableAdapter`.
pub struct CallableMessage<F> {
    f: F,
    conn: HTTPConnection,
    request: Option<Box<HTTPServerRequest>>,
}

impl<F> HTTPMessageDelegate for CallableMessage<F>
where
    F: Fn(&HTTPServerRequest, &HTTPConnection) -> Result<(), Error> + 'static,
{
    fn headers_received(&mut self, request: Box<HTTPServerRequest>) {
        self.request = Some(request);
    }

    fn data_received(&mut self, chunk: &[u8]) -> Option<Future<()>> {
        if let Some(request) = &mut self.request {
            request.body.extend_from_slice(chunk);
        }
        None
    }

    fn finish(&mut self) {
        let Some(request) = self.request.take() else {
            return;
        };
        let conn = &self.conn;
        let result = crate::callback::catch_value(|| (self.f)(&request, conn));
        if let Ok(Err(err)) | Err(err) = result {
            conn.fail(&request, err);
        }
        conn.recycle_request(request);
    }

    /// Nothing of the last request is left (`finish` took it): ready.
    fn reuse(&mut self) -> bool {
        self.request.is_none()
    }
}
