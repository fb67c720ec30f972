//! One request and the response being written to it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use super::{AppInner, Entered, ErrorPage, HTTPError, RequestHandler, Settings};
use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::http::{HTTPConnection, HTTPServerRequest, SPARE_MAX};
use crate::httputil::{check_header, HTTPHeaders};

/// The state behind an [`Exchange`].
pub(crate) struct Inner {
    /// `None` only while pooled.
    conn: Option<HTTPConnection>,
    /// `None` only while pooled, or dropping.
    request: Option<Box<HTTPServerRequest>>,
    status: Cell<u16>,
    pub(super) headers: RefCell<HTTPHeaders>,
    body: RefCell<Vec<u8>>,
    finished: Cell<bool>,
    pub(super) asynchronous: Cell<bool>,
    /// The handler of an asynchronous response, for its `on_finish` or
    /// `on_connection_close`.
    pub(super) handler: Cell<Option<Box<dyn RequestHandler>>>,
    /// For the access log (only read when it is enabled).
    start: Option<Instant>,
    /// The application it serves (and is pooled by).
    pub(super) app: std::rc::Weak<AppInner>,
    /// The application's settings.
    settings: Rc<Settings>,
    /// The stack the handler's method started under
    /// (`stack_context::current_id`),
    /// while it runs: `set_async` enters the request context if it is
    /// still the current one.
    method_stack: Cell<Option<usize>>,
    /// The request context, entered by `set_async` until the method returns.
    pub(super) entered: RefCell<Option<Entered>>,
    /// The route's handler's `write_error`.
    error_page: Cell<ErrorPage>,
    /// Cookies, XSRF token and current user, made on first use (see
    /// cookies.rs): a request that uses none pays nothing.
    cookie_state: std::cell::OnceCell<Box<super::cookies::CookieState>>,
    /// The compressor of a response being gzipped piece by piece
    /// (`compress_response`; see gzip.rs).
    #[cfg(feature = "gzip")]
    pub(super) gzip: RefCell<Option<crate::httputil::gzip::GzipStream>>,
    /// The request's arguments, parsed when first asked for.
    arguments: super::arguments::ArgumentCache,
    /// The `async` block of `run_async`, if one runs (see coroutine.rs).
    pub(super) coroutine: super::coroutine::CoroutineSlot,
}

/// Finished exchanges, emptied, kept by an application for its next
/// requests: a request's exchange costs no allocation.
#[derive(Default)]
pub(crate) struct Pool(RefCell<Vec<Rc<Inner>>>);

/// How many emptied exchanges a pool keeps (each may hold a small body
/// buffer): enough for the requests one loop iteration answers at once.
const POOL_MAX: usize = 32;

/// One HTTP exchange: the request, and the response a handler writes
/// (Tornado's `RequestHandler` methods `set_status`, `set_header`, `write`,
/// `flush`, `finish`, `redirect`, `send_error`).
///
/// A cheap-to-clone handle: an asynchronous handler keeps a clone in its
/// callbacks and calls [`finish`](Exchange::finish) from there.
#[derive(Clone)]
pub struct Exchange {
    pub(super) inner: Rc<Inner>,
}

impl Exchange {
    pub(super) fn new(
        app: &Rc<AppInner>,
        conn: &HTTPConnection,
        request: Box<HTTPServerRequest>,
    ) -> Exchange {
        let start =
            log::log_enabled!(target: "squall::access", log::Level::Info).then(Instant::now);
        let pooled = app.pool.0.borrow_mut().pop();
        if let Some(mut inner) = pooled {
            if let Some(fresh) = Rc::get_mut(&mut inner) {
                fresh.conn = Some(conn.clone());
                fresh.request = Some(request);
                fresh.start = start;
                return Exchange { inner };
            }
        }
        Exchange {
            inner: Rc::new(Inner {
                conn: Some(conn.clone()),
                request: Some(request),
                status: Cell::new(200),
                headers: RefCell::new(HTTPHeaders::new()),
                body: RefCell::new(Vec::new()),
                finished: Cell::new(false),
                asynchronous: Cell::new(false),
                handler: Cell::new(None),
                start,
                app: Rc::downgrade(app),
                settings: app.settings.clone(),
                method_stack: Cell::new(None),
                entered: RefCell::new(None),
                error_page: Cell::new(default_error_page),
                cookie_state: std::cell::OnceCell::new(),
                #[cfg(feature = "gzip")]
                gzip: RefCell::new(None),
                arguments: Default::default(),
                coroutine: Default::default(),
            }),
        }
    }

    /// A parked exchange (see [`park`](Self::park)) with its connection,
    /// for the next request on that connection.
    /// (Parked means unshared: should it be shared after all, the request
    /// comes back, for a new exchange.) Always inlined: a few stores on
    /// every request's path.
    #[inline(always)]
    pub(super) fn refill(
        self,
        request: Box<HTTPServerRequest>,
    ) -> Result<Exchange, Box<HTTPServerRequest>> {
        let mut rc = self.inner;
        let Some(inner) = Rc::get_mut(&mut rc) else {
            return Err(request);
        };
        inner.request = Some(request);
        inner.start =
            log::log_enabled!(target: "squall::access", log::Level::Info).then(Instant::now);
        Ok(Exchange { inner: rc })
    }

    /// This request's cookie state (cookies.rs), made on first use.
    pub(super) fn cookie_state(&self) -> &super::cookies::CookieState {
        self.inner.cookie_state.get_or_init(Box::default)
    }

    /// The response headers, for cookies.rs to replace a `Set-Cookie`.
    pub(super) fn with_headers<R>(&self, f: impl FnOnce(&mut HTTPHeaders) -> R) -> R {
        f(&mut self.inner.headers.borrow_mut())
    }

    /// The application serving it (gone only if the server was dropped).
    pub(super) fn app(&self) -> Option<Rc<AppInner>> {
        self.inner.app.upgrade()
    }

    /// The request.
    #[inline]
    pub fn request(&self) -> &HTTPServerRequest {
        self.inner.request()
    }

    /// The request's parsed arguments (see `arguments.rs`).
    #[inline]
    pub(super) fn argument_cache(&self) -> &super::arguments::ArgumentCache {
        &self.inner.arguments
    }

    /// The application's settings (Tornado's `self.settings`).
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The connection the response goes to (Tornado's
    /// `request.connection`): to raise its body limit, or
    /// [`detach`](HTTPConnection::detach) it after a `101`.
    pub fn connection(&self) -> &HTTPConnection {
        self.inner.conn()
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
    /// (this replaces them).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] if `name` is not a token or `value`
    /// holds CR, LF or NUL (as Tornado's `ValueError`): a value taken from
    /// a request cannot add headers of its own. Nothing is set then.
    pub fn set_header(&self, name: &str, value: impl AsRef<str>) -> Result<(), Error> {
        check_header(name, value.as_ref())?;
        self.inner.headers.borrow_mut().set(name, value);
        Ok(())
    }

    /// Adds a response header (a name may repeat, as `Set-Cookie` does).
    ///
    /// # Errors
    /// As [`set_header`](Self::set_header).
    pub fn add_header(&self, name: &str, value: impl AsRef<str>) -> Result<(), Error> {
        check_header(name, value.as_ref())?;
        self.inner.headers.borrow_mut().add(name, value);
        Ok(())
    }

    /// Removes a response header.
    pub fn clear_header(&self, name: &str) {
        self.inner.headers.borrow_mut().remove(name);
    }

    /// Appends to the response body (buffered until `flush` or `finish`).
    /// Ignored, with a warning, once the response is finished.
    #[inline]
    pub fn write(&self, data: impl AsRef<[u8]>) {
        self.write_bytes(data.as_ref());
    }

    /// `write`, once for every type of data.
    fn write_bytes(&self, data: &[u8]) {
        if self.inner.finished.get() {
            self.write_after_finish();
            return;
        }
        self.inner.body.borrow_mut().extend_from_slice(data);
    }

    /// Out of line: the usual `write` needs no room for a log line.
    #[cold]
    #[inline(never)]
    fn write_after_finish(&self) {
        log::warn!("write() after finish() on {}", self.inner.request().uri());
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
        self.set_header("Content-Type", "application/json; charset=UTF-8")?;
        self.write(json);
        Ok(())
    }

    /// Marks the response asynchronous (Tornado's `@web.asynchronous`): it
    /// stays open after the handler method returns, until
    /// [`finish`](Exchange::finish).
    ///
    /// Called from the handler's method, it also enters the request's stack
    /// context for the rest of the method: an `Err` or panic from any
    /// callback scheduled after it (however many callbacks later) answers
    /// 500, or closes the connection if the head went out, once. So call it
    /// before scheduling the work that will finish the response.
    pub fn set_async(&self) {
        self.inner.asynchronous.set(true);
        if self.inner.method_stack.get().is_some() && self.inner.entered.borrow().is_none() {
            self.enter_context();
        }
    }

    #[cold]
    fn enter_context(&self) {
        if let Some(app) = self.inner.app.upgrade() {
            let entered = app.enter_context(self);
            *self.inner.entered.borrow_mut() = entered;
        }
    }

    /// The handler's method starts (under this stack) or ends.
    #[inline]
    pub(super) fn method_running(&self, stack: Option<usize>) {
        self.inner.method_stack.set(stack);
    }

    /// The stack the running method started under.
    #[inline]
    pub(super) fn method_stack(&self) -> Option<usize> {
        self.inner.method_stack.get()
    }

    /// The request context entered by `set_async`, to leave.
    #[inline]
    pub(super) fn take_entered(&self) -> Option<Entered> {
        if !self.inner.asynchronous.get() {
            return None;
        }
        self.inner.entered.borrow_mut().take()
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

    /// Sends the headers and the body so far (chunked, on HTTP/1.1, unless
    /// a `Content-Length` was set); the response goes on. The future is
    /// done when it has been handed to the kernel: wait for it before
    /// writing more, and a large body goes out with bounded memory.
    pub fn flush(&self) -> Future<()> {
        let inner = &self.inner;
        let conn = inner.conn();
        if inner.finished.get() {
            if conn.closed() {
                // The client left: a flush a handler ignores on purpose
                // (a timer streaming to a client that went) logs nothing,
                // as Tornado marks its write futures' errors read.
                return Future::failed(Error::new(
                    ErrorKind::StreamClosed,
                    "flush(): the client closed the connection",
                ))
                .observed();
            }
            return Future::failed(Error::new(
                ErrorKind::InvalidState,
                "flush() after finish()",
            ));
        }
        let first = !conn.headers_written();
        if inner.settings.compress_response {
            self.transform_output(&mut inner.body.borrow_mut(), first, false);
        }
        if first {
            if let Err(err) = conn.write_headers(inner.status.get(), &inner.headers.borrow()) {
                return Future::failed(err);
            }
        }
        let mut body = inner.body.borrow_mut();
        let written = conn.write(&body);
        body.clear();
        drop(body);
        match written {
            Ok(()) => conn.flush(),
            Err(err) => Future::failed(err),
        }
    }

    /// Finishes the response: sends the headers (with `Content-Length`) if
    /// not yet sent, the body, and the end of a chunked body; then the
    /// connection goes on to the next request.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidState`] if already finished;
    /// [`ErrorKind::HttpProtocol`] if the body did not match a
    /// `Content-Length` the handler set (the connection is closed rather
    /// than framed wrong, and the error logged).
    pub fn finish(&self) -> Result<(), Error> {
        let inner = &self.inner;
        if inner.finished.replace(true) {
            return Err(Error::new(ErrorKind::InvalidState, "finish() called twice"));
        }
        let conn = inner.conn();
        // Each asked once: compressing writes no head and closes nothing.
        let closed = conn.closed();
        let first = !closed && !conn.headers_written();
        if inner.settings.compress_response && !closed {
            self.transform_output(&mut inner.body.borrow_mut(), first, true);
        }
        let result = if closed {
            Ok(())
        } else if first {
            let result = conn.write_response(
                inner.status.get(),
                &inner.headers.borrow(),
                &inner.body.borrow(),
            );
            if let Err(err) = &result {
                if !conn.headers_written() {
                    // Headers the connection refused (a `Content-Length`
                    // that is no number, say): nothing went out, so 500.
                    conn.fail(inner.request(), err.clone());
                }
            }
            result
        } else {
            let written = conn.write(&inner.body.borrow());
            written.and(conn.finish())
        };
        self.log_access();
        self.run_on_finish();
        result
    }

    /// Redirects to `url` with a 302 (Found) and finishes: Tornado's
    /// `redirect(url)`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] if `url` holds CR, LF or NUL (nothing
    /// is sent: a redirect target taken from a request cannot add headers);
    /// [`ErrorKind::InvalidState`] if the headers were already sent.
    pub fn redirect(&self, url: &str) -> Result<(), Error> {
        self.redirect_with_status(url, 302)
    }

    /// Redirects to `url` with a 301 (Moved Permanently) and finishes:
    /// Tornado's `redirect(url, permanent=True)`.
    ///
    /// # Errors
    /// As [`redirect`](Self::redirect).
    pub fn redirect_permanent(&self, url: &str) -> Result<(), Error> {
        self.redirect_with_status(url, 301)
    }

    /// Redirects to `url` with any 3xx `status` (303 after a `POST`, 307
    /// or 308 to keep the method) and finishes: Tornado's
    /// `redirect(url, status=...)`.
    ///
    /// # Errors
    /// As [`redirect`](Self::redirect), and
    /// [`ErrorKind::InvalidArgument`] if `status` is not 300-399.
    pub fn redirect_with_status(&self, url: &str, status: u16) -> Result<(), Error> {
        if !(300..400).contains(&status) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("redirect with status {status}: not a 3xx"),
            ));
        }
        if self.inner.conn().headers_written() {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "redirect() after the headers were sent",
            ));
        }
        self.set_header("Location", url)?;
        self.set_status(status);
        self.inner.body.borrow_mut().clear();
        self.finish()
    }

    /// Answers with an error page for `status` and finishes (Tornado's
    /// `send_error`). If the headers were already sent, it can only close
    /// the connection.
    pub fn send_error(&self, status: u16) {
        self.send_error_for(status, None);
    }

    /// `send_error`, with the error behind it (for `write_error`).
    fn send_error_for(&self, status: u16, error: Option<&Error>) {
        let inner = &self.inner;
        if inner.finished.get() {
            return;
        }
        if inner.conn().headers_written() {
            log::error!(
                "cannot send error {status} for {}: the response has started; closing",
                inner.request().uri()
            );
            inner.finished.set(true);
            inner.status.set(status);
            self.log_access();
            inner.conn().abort();
            self.run_on_finish();
            return;
        }
        inner.headers.borrow_mut().clear();
        inner.body.borrow_mut().clear();
        inner.status.set(status);
        let write_error = inner.error_page.get();
        if let Err(err) = crate::callback::catch_value(|| write_error(self, status, error)) {
            // A failing error page: the default one, rather than none.
            log::error!("write_error failed: {err}");
            inner.headers.borrow_mut().clear();
            inner.body.borrow_mut().clear();
            default_error_page(self, status, error);
        }
        let _ = self.finish();
    }

    /// The route's `write_error`, for the error pages of this exchange.
    #[inline]
    pub(super) fn set_error_page(&self, page: ErrorPage) {
        self.inner.error_page.set(page);
    }

    /// An error or panic out of the handler: 500 (or an [`HTTPError`]'s
    /// status), once.
    pub(crate) fn handler_failed(&self, err: Error) {
        let status = HTTPError::status_for(&err);
        let request = self.inner.request();
        if status == 500 {
            log::error!(
                "uncaught error in handler for {} {}: {err}",
                request.method(),
                request.uri()
            );
        } else {
            // Tornado logs an `HTTPError` as a warning: it is an answer.
            log::warn!("{} {}: {err}", request.method(), request.uri());
        }
        self.send_error_for(status, Some(&err));
    }

    /// Keeps the handler of a response left open, for its `on_finish` (or
    /// `on_connection_close`).
    pub(crate) fn park_handler(&self, handler: Box<dyn RequestHandler>) {
        self.inner.handler.set(Some(handler));
    }

    /// The handler parked by [`park_handler`](Self::park_handler), taken
    /// back.
    pub(crate) fn unpark_handler(&self) -> Option<Box<dyn RequestHandler>> {
        self.inner.handler.take()
    }

    /// The client left before the response was finished: the handler
    /// (the one given, or the one parked) hears of it, then `on_finish`.
    pub(crate) fn connection_closed(&self, handler: Option<Box<dyn RequestHandler>>) {
        if self.inner.finished.replace(true) {
            return;
        }
        // A `run_async` block waiting is dropped first (coroutine.rs).
        self.inner.coroutine.cancel();
        let handler = handler.or_else(|| self.inner.handler.take());
        if let Some(mut handler) = handler {
            handler.on_connection_close();
            handler.on_finish();
        }
    }

    #[inline]
    fn run_on_finish(&self) {
        let handler = self.inner.handler.take();
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
        let level = if status >= 500 {
            log::Level::Error
        } else if status >= 400 {
            log::Level::Warn
        } else {
            log::Level::Info
        };
        log::log!(
            target: "squall::access",
            level,
            "{status} {} {} ({}) {ms:.2}ms",
            request.method(),
            request.uri(),
            request.remote.ip()
        );
    }

    /// After a finished response: unless a handler kept a clone, empties
    /// the exchange, gives the request back to its connection, and keeps
    /// the exchange for a later request: in `spare` (with its connection,
    /// for the next request on it) if that is free, else in `pool`.
    pub(crate) fn park(self, pool: &Pool, spare: &mut Option<Exchange>) {
        let mut rc = self.inner;
        let Some(inner) = Rc::get_mut(&mut rc) else {
            return;
        };
        let request = inner.request.take();
        if let (Some(conn), Some(request)) = (&inner.conn, request) {
            conn.recycle_request(request);
        }
        let body = inner.body.get_mut();
        if body.capacity() > SPARE_MAX {
            *body = Vec::new();
        }
        body.clear();
        inner.status.set(200);
        inner.headers.get_mut().clear();
        inner.finished.set(false);
        inner.asynchronous.set(false);
        *inner.handler.get_mut() = None;
        inner.start = None;
        inner.error_page.set(default_error_page);
        if let Some(state) = inner.cookie_state.get_mut() {
            state.reset();
        }
        #[cfg(feature = "gzip")]
        {
            *inner.gzip.get_mut() = None;
        }
        inner.arguments.reset();
        if spare.is_none() {
            *spare = Some(Exchange { inner: rc });
            return;
        }
        let conn = inner.conn.take();
        if let Ok(mut pool) = pool.0.try_borrow_mut() {
            if pool.len() < POOL_MAX {
                pool.push(rc);
            }
        }
        drop(conn);
    }
}

/// Tornado's error page: `<html><title>404: Not Found</title>...`.
pub(super) fn default_error_page(x: &Exchange, status: u16, _error: Option<&Error>) {
    x.write(crate::http::error_page(status));
}

impl Inner {
    #[inline]
    fn request(&self) -> &HTTPServerRequest {
        // Taken out only while pooled (no `Exchange` then) or dropping.
        self.request.as_deref().expect("request taken before drop")
    }

    #[inline]
    fn conn(&self) -> &HTTPConnection {
        self.conn.as_ref().expect("connection taken while pooled")
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // An exchange let go unpooled: its request goes back to its
        // connection for reuse.
        if let (Some(conn), Some(request)) = (&self.conn, self.request.take()) {
            conn.recycle_request(request);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::io::{Read, Write};
    use std::rc::{Rc, Weak};
    use std::time::Duration;

    use crate::http::HTTPServer;
    use crate::web::{Application, Exchange, RequestHandler};
    use crate::IOLoop;

    thread_local! {
        static CONNS: RefCell<Vec<Weak<crate::http::connection::Core>>> = const { RefCell::new(Vec::new()) };
    }

    struct Hello;
    impl RequestHandler for Hello {
        fn get(&mut self, x: &Exchange) -> Result<(), crate::Error> {
            CONNS.with(|c| c.borrow_mut().push(Rc::downgrade(&x.inner.conn().core)));
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
        let listeners = crate::netutil::bind_sockets_with(
            0,
            crate::netutil::BindOptions::new().address("127.0.0.1"),
        )
        .unwrap();
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
