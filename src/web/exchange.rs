//! One request and the response being written to it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use super::RequestHandler;
use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::http::{
    write_hex, write_status_line, write_usize, Conn, HTTPServerRequest, Method, Version,
    DEFAULT_CONTENT_TYPE,
};
use crate::httputil::{self, HTTPHeaders};

/// The state behind an [`Exchange`]; a connection keeps its last one for
/// reuse.
pub(crate) struct Inner {
    conn: Rc<Conn>,
    /// `None` only while dropping, when the box goes back to the connection.
    request: Option<Box<HTTPServerRequest>>,
    status: Cell<u16>,
    headers: RefCell<HTTPHeaders>,
    body: RefCell<Vec<u8>>,
    headers_written: Cell<bool>,
    chunked: Cell<bool>,
    finished: Cell<bool>,
    asynchronous: Cell<bool>,
    /// The handler of an asynchronous response, for its `on_finish` or
    /// `on_connection_close`.
    handler: RefCell<Option<Box<dyn RequestHandler>>>,
    /// For the access log (only read when it is enabled).
    start: Option<Instant>,
}

/// One HTTP exchange: the request, and the response a handler writes
/// (Tornado's `RequestHandler` methods `set_status`, `set_header`, `write`,
/// `flush`, `finish`, `redirect`, `send_error`).
///
/// A cheap-to-clone handle: an asynchronous handler keeps a clone in its
/// callbacks and calls [`finish`](Exchange::finish) from there.
#[derive(Clone)]
pub struct Exchange {
    inner: Rc<Inner>,
}

impl Exchange {
    pub(crate) fn new(conn: &Rc<Conn>, request: Box<HTTPServerRequest>) -> Exchange {
        conn.begin_response(&request);
        let start =
            log::log_enabled!(target: "squall::access", log::Level::Info).then(Instant::now);
        // The connection's last exchange, if nothing else holds it: reused
        // in place (emptied by `park`), saving an allocation per request.
        if let Some(mut inner) = conn.take_parked() {
            if let Some(fresh) = Rc::get_mut(&mut inner) {
                fresh.request = Some(request);
                fresh.start = start;
                return Exchange { inner };
            }
        }
        let conn = conn.clone();
        let body = conn.take_out_body();
        Exchange {
            inner: Rc::new(Inner {
                conn,
                request: Some(request),
                status: Cell::new(200),
                headers: RefCell::new(HTTPHeaders::new()),
                body: RefCell::new(body),
                headers_written: Cell::new(false),
                chunked: Cell::new(false),
                finished: Cell::new(false),
                asynchronous: Cell::new(false),
                handler: RefCell::new(None),
                start,
            }),
        }
    }

    /// The request.
    pub fn request(&self) -> &HTTPServerRequest {
        self.inner.request()
    }

    /// Sets the response status (default 200).
    pub fn set_status(&self, status: u16) {
        self.inner.status.set(status);
    }

    /// The response status.
    pub fn get_status(&self) -> u16 {
        self.inner.status.get()
    }

    /// Sets a response header, replacing any of that name. `Server`, `Date`
    /// and `Content-Type: text/html; charset=UTF-8` are set by default
    /// (this replaces the last).
    pub fn set_header(&self, name: &str, value: impl AsRef<str>) {
        self.inner.headers.borrow_mut().set(name, value);
    }

    /// Adds a response header (a name may repeat, as `Set-Cookie` does).
    pub fn add_header(&self, name: &str, value: impl AsRef<str>) {
        self.inner.headers.borrow_mut().add(name, value);
    }

    /// Removes a response header.
    pub fn clear_header(&self, name: &str) {
        self.inner.headers.borrow_mut().remove(name);
    }

    /// Appends to the response body (buffered until `flush` or `finish`).
    /// Ignored, with a warning, once the response is finished.
    pub fn write(&self, data: impl AsRef<[u8]>) {
        if self.inner.finished.get() {
            log::warn!("write() after finish() on {}", self.inner.request().uri());
            return;
        }
        self.inner
            .body
            .borrow_mut()
            .extend_from_slice(data.as_ref());
    }

    /// Appends `value` as JSON to the response body and sets
    /// `Content-Type: application/json; charset=UTF-8`: Tornado's
    /// `self.write(dict)`. Feature `json`.
    ///
    /// ```
    /// # #[cfg(feature = "json")]
    /// # fn f(x: &squall::web::Exchange) -> Result<(), squall::Error> {
    /// // Any `Serialize` type: a `#[derive(Serialize)]` struct, a map...
    /// x.write_json(&serde_json::json!({ "id": 7, "name": "ada" }))?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] if `value` cannot be serialized (a map
    /// with non-string keys, say); nothing is written then.
    #[cfg(feature = "json")]
    pub fn write_json<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<(), Error> {
        let json = serde_json::to_vec(value).map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("cannot write as JSON: {e}"),
            )
        })?;
        self.set_header("Content-Type", "application/json; charset=UTF-8");
        self.write(json);
        Ok(())
    }

    /// Marks the response asynchronous (Tornado's `@web.asynchronous`): it
    /// stays open after the handler method returns, until
    /// [`finish`](Exchange::finish).
    pub fn set_async(&self) {
        self.inner.asynchronous.set(true);
    }

    /// Whether the response was marked asynchronous.
    pub fn is_async(&self) -> bool {
        self.inner.asynchronous.get()
    }

    /// Whether the response is finished.
    pub fn finished(&self) -> bool {
        self.inner.finished.get()
    }

    /// Keeps the response open until `future` is done, then finishes it
    /// (a failed future answers 500): a handler that returns a pending
    /// future, e.g. a [`gen::coroutine`](crate::gen::coroutine)'s.
    pub fn finish_on<T: 'static>(&self, future: &Future<T>) {
        self.set_async();
        let x = self.clone();
        future.add_done_callback(move |f: &Future<T>| {
            if let Some(err) = f.error() {
                x.handler_failed(err);
            }
            if !x.finished() {
                let _ = x.finish();
            }
        });
    }

    fn is_head(&self) -> bool {
        self.inner.request().method == Method::Head
    }

    /// Writes the status line and headers; `length` is the body's for a
    /// complete response, `None` when streaming.
    fn write_head(&self, out: &mut Vec<u8>, length: Option<usize>) {
        let inner = &self.inner;
        let status = inner.status.get();
        let conn = &inner.conn;
        let headers = inner.headers.borrow();
        let bodiless = status < 200 || status == 204 || status == 304;
        match length {
            Some(n) if status == 200 && headers.is_empty() => {
                // The usual head: one copy and the digits.
                conn.write_ok_html_head(out, n);
            }
            _ => {
                write_status_line(out, status);
                conn.write_common_headers(out);
                if !headers.contains("Content-Type") {
                    out.extend_from_slice(DEFAULT_CONTENT_TYPE);
                }
                headers.write_to(out);
                self.write_framing(out, length, bodiless);
            }
        }
        match (conn.version(), conn.keep_alive()) {
            (Version::Http11, false) => out.extend_from_slice(b"Connection: close\r\n"),
            (Version::Http10, true) => out.extend_from_slice(b"Connection: keep-alive\r\n"),
            _ => {}
        }
        out.extend_from_slice(b"\r\n");
        inner.headers_written.set(true);
    }

    /// `Content-Length` or chunked framing, for all but the usual head.
    fn write_framing(&self, out: &mut Vec<u8>, length: Option<usize>, bodiless: bool) {
        let inner = &self.inner;
        let conn = &inner.conn;
        match length {
            _ if bodiless => {}
            Some(n) => {
                out.extend_from_slice(b"Content-Length: ");
                write_usize(out, n);
                out.extend_from_slice(b"\r\n");
            }
            None if conn.version() == Version::Http11 => {
                inner.chunked.set(true);
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            }
            // HTTP/1.0 has no chunks: the body ends when the connection does.
            None => conn.disable_keep_alive(),
        }
    }

    /// Sends the headers and the body so far (chunked, on HTTP/1.1); the
    /// response goes on. The future is done when it has been handed to the
    /// kernel.
    pub fn flush(&self) -> Future<()> {
        let inner = &self.inner;
        if inner.finished.get() {
            return Future::failed(Error::new(
                ErrorKind::InvalidState,
                "flush() after finish()",
            ));
        }
        {
            let mut out = inner.conn.out();
            if !inner.headers_written.get() {
                self.write_head(&mut out, None);
            }
            let mut body = inner.body.borrow_mut();
            if !body.is_empty() && !self.is_head() {
                write_chunk(&mut out, &body, inner.chunked.get());
            }
            body.clear();
        }
        inner.conn.flushed()
    }

    /// Finishes the response: sends the headers (with `Content-Length`) if
    /// not yet sent, the body, and the end of a chunked body; then the
    /// connection goes on to the next request.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidState`] if already finished.
    pub fn finish(&self) -> Result<(), Error> {
        let inner = &self.inner;
        if inner.finished.replace(true) {
            return Err(Error::new(ErrorKind::InvalidState, "finish() called twice"));
        }
        if inner.conn.closed() {
            self.log_access();
            self.run_on_finish();
            return Ok(());
        }
        {
            let conn = &inner.conn;
            let mut out = conn.out();
            let body = inner.body.borrow();
            let send_body = !self.is_head();
            if !inner.headers_written.get()
                && inner.status.get() == 200
                && conn.version() == Version::Http11
                && conn.keep_alive()
                && inner.headers.borrow().is_empty()
            {
                // The usual response: the cached head with the length, the
                // blank line, the body.
                conn.write_ok_html_head(&mut out, body.len());
                out.extend_from_slice(b"\r\n");
                if send_body {
                    out.extend_from_slice(&body);
                }
                inner.headers_written.set(true);
            } else if !inner.headers_written.get() {
                self.write_head(&mut out, Some(body.len()));
                let status = inner.status.get();
                if send_body && !(status < 200 || status == 204 || status == 304) {
                    out.extend_from_slice(&body);
                }
            } else if inner.chunked.get() {
                // A HEAD response has no body at all, not even the last chunk.
                if send_body {
                    if !body.is_empty() {
                        write_chunk(&mut out, &body, true);
                    }
                    out.extend_from_slice(b"0\r\n\r\n");
                }
            } else if send_body {
                out.extend_from_slice(&body);
            }
        }
        self.log_access();
        inner.conn.response_done();
        self.run_on_finish();
        Ok(())
    }

    /// Redirects to `url` (301 if `permanent`, else 302) and finishes.
    pub fn redirect(&self, url: &str, permanent: bool) {
        if self.inner.headers_written.get() {
            log::error!("redirect() after the headers were sent");
            return;
        }
        self.set_status(if permanent { 301 } else { 302 });
        self.set_header("Location", url);
        self.inner.body.borrow_mut().clear();
        let _ = self.finish();
    }

    /// Answers with an error page for `status` and finishes (Tornado's
    /// `send_error`). If the headers were already sent, it can only close
    /// the connection.
    pub fn send_error(&self, status: u16) {
        let inner = &self.inner;
        if inner.finished.get() {
            return;
        }
        if inner.headers_written.get() {
            log::error!(
                "cannot send error {status} for {}: the response has started; closing",
                inner.request().uri()
            );
            inner.finished.set(true);
            inner.status.set(status);
            self.log_access();
            inner.conn.abort();
            self.run_on_finish();
            return;
        }
        inner.headers.borrow_mut().clear();
        inner.status.set(status);
        let reason = httputil::responses(status);
        let page = format!(
            "<html><title>{status}: {reason}</title><body>{status}: {reason}</body></html>"
        );
        *inner.body.borrow_mut() = page.into_bytes();
        let _ = self.finish();
    }

    /// An error or panic out of the handler: 500, once.
    pub(crate) fn handler_failed(&self, err: Error) {
        log::error!(
            "uncaught error in handler for {} {}: {err}",
            self.inner.request().method(),
            self.inner.request().uri()
        );
        self.send_error(500);
    }

    /// Keeps the handler of a response left open, and arranges for it to
    /// hear if the client goes away first.
    pub(crate) fn park_handler(&self, handler: Box<dyn RequestHandler>) {
        *self.inner.handler.borrow_mut() = Some(handler);
        // The connection holds the open exchange (and so its handler) until
        // the response is finished or the client leaves.
        let inner = self.inner.clone();
        self.inner.conn.set_on_close(Box::new(move || {
            if inner.finished.replace(true) {
                return;
            }
            let handler = inner.handler.borrow_mut().take();
            if let Some(mut handler) = handler {
                handler.on_connection_close();
                handler.on_finish();
            }
        }));
    }

    #[inline]
    fn run_on_finish(&self) {
        let handler = self.inner.handler.borrow_mut().take();
        if let Some(mut handler) = handler {
            handler.on_finish();
        }
    }

    #[inline]
    fn log_access(&self) {
        if let Some(start) = self.inner.start {
            self.write_access_log(start);
        }
    }

    /// The access-log line (only when the log wants it).
    #[inline(never)]
    fn write_access_log(&self, start: Instant) {
        let status = self.inner.status.get();
        let request = self.inner.request();
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        let line = format_args!(
            "{status} {} {} ({}) {ms:.2}ms",
            request.method(),
            request.uri(),
            request.remote.ip()
        );
        if status >= 500 {
            log::error!(target: "squall::access", "{line}");
        } else if status >= 400 {
            log::warn!(target: "squall::access", "{line}");
        } else {
            log::info!(target: "squall::access", "{line}");
        }
    }
}

impl Exchange {
    /// After a finished response: unless a handler kept a clone, empties
    /// the exchange and leaves it with the connection for the next request.
    pub(crate) fn park(self) {
        let mut rc = self.inner;
        let Some(inner) = Rc::get_mut(&mut rc) else {
            return;
        };
        let request = inner.request.take();
        let body = inner.body.get_mut();
        if body.capacity() > crate::http::SPARE_MAX {
            *body = Vec::new();
        }
        body.clear();
        inner.status.set(200);
        inner.headers.get_mut().clear();
        inner.headers_written.set(false);
        inner.chunked.set(false);
        inner.finished.set(false);
        inner.asynchronous.set(false);
        *inner.handler.get_mut() = None;
        inner.start = None;
        let conn = inner.conn.clone();
        conn.park(rc, request);
    }
}

impl Inner {
    fn request(&self) -> &HTTPServerRequest {
        // Only `drop` takes it out.
        self.request.as_deref().expect("request taken before drop")
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A parked exchange (no request) is being let go with its
        // connection, or while idle: its buffers go, not back to the spare.
        if let Some(request) = self.request.take() {
            self.conn.recycle_request(request);
            self.conn.recycle_body(std::mem::take(self.body.get_mut()));
        }
    }
}

fn write_chunk(out: &mut Vec<u8>, data: &[u8], chunked: bool) {
    if chunked {
        write_hex(out, data.len());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::io::{Read, Write};
    use std::rc::{Rc, Weak};
    use std::time::Duration;

    use crate::http::{Conn, HTTPServer};
    use crate::web::{Application, Exchange, RequestHandler};
    use crate::IOLoop;

    thread_local! {
        static CONNS: RefCell<Vec<Weak<Conn>>> = const { RefCell::new(Vec::new()) };
    }

    struct Hello;
    impl RequestHandler for Hello {
        fn get(&mut self, x: &Exchange) -> Result<(), crate::Error> {
            CONNS.with(|c| c.borrow_mut().push(Rc::downgrade(&x.inner.conn)));
            x.write("hello");
            Ok(())
        }
    }

    fn run_for(io_loop: &IOLoop, d: Duration) {
        let l = io_loop.clone();
        io_loop.call_later(d, move || l.stop());
        io_loop.start().unwrap();
    }

    /// The exchange a connection keeps for reuse holds the connection: the
    /// cycle must end when the client leaves.
    #[test]
    fn parked_exchange_lets_the_connection_go() {
        let io_loop = IOLoop::new().unwrap();
        let server = HTTPServer::with_loop(&io_loop, Application::new().route("/", || Hello));
        let listeners = crate::netutil::bind_sockets(0, Some("127.0.0.1"), None, false).unwrap();
        let port = listeners[0].local_addr().unwrap().port();
        server.add_sockets(listeners).unwrap();
        let client = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            let mut answers = String::new();
            for _ in 0..3 {
                s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).unwrap();
                answers.push_str(std::str::from_utf8(&buf[..n]).unwrap());
            }
            answers
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !client.is_finished() && std::time::Instant::now() < deadline {
            run_for(&io_loop, Duration::from_millis(10));
        }
        let answers = client.join().unwrap();
        assert_eq!(answers.matches("hello").count(), 3, "{answers}");
        // The client closed its socket: let the server see it.
        run_for(&io_loop, Duration::from_millis(100));
        CONNS.with(|c| {
            let conns = c.borrow();
            assert_eq!(conns.len(), 3);
            assert!(
                conns.iter().all(|w| w.upgrade().is_none()),
                "connection leaked"
            );
        });
    }
}
