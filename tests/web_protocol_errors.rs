//! The HTTP server's own refusals (413, 431, 400, 501, 408) through the
//! application's error page: the `write_error` of the route the request
//! asked for (of the host group its `Host` picks, or of the default
//! handler), and the server's bare answer where no request line could be
//! read, or for a delegate without the hook. After Tornado's
//! httpserver_test.py `MaxHeaderSizeTest` and `BodyLimitsTest` and
//! web_test.py's `ErrorResponseTest` (whose custom `write_error` pages are
//! here given for the protocol's errors as well).

#[path = "common/http.rs"]
#[allow(dead_code)]
mod http_kit;

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::time::Duration;

use http_kit::{closed_within, connect, raw_request, read_reply, Reply, TestServer};
use squall::http::{
    HTTPConnection, HTTPMessageDelegate, HTTPServerConnectionDelegate, HTTPServerRequest,
};
use squall::httputil::HTTPHeaders;
use squall::web::{Application, Exchange, RequestHandler, Routes};
use squall::{Error, Future};

/// An API that answers its errors in JSON, naming the method and path it
/// was asked for (so a test sees which request the page was written for).
struct Api;
impl RequestHandler for Api {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write("got");
        Ok(())
    }
    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write(format!("{} bytes", x.request().body().len()));
        Ok(())
    }
    fn write_error(x: &Exchange, status: u16, _error: Option<&Error>) {
        let _ = x.set_header("Content-Type", "application/json");
        let r = x.request();
        x.write(format!(
            "{{\"error\": {status}, \"method\": \"{}\", \"path\": \"{}\"}}",
            r.method(),
            r.path()
        ));
    }
}

/// The default handler's page: plain text.
struct Fallback;
impl RequestHandler for Fallback {
    fn write_error(x: &Exchange, status: u16, _error: Option<&Error>) {
        let _ = x.set_header("Content-Type", "text/plain");
        x.write(format!("fallback {status}"));
    }
}

/// A host group's page.
struct Admin;
impl RequestHandler for Admin {
    fn write_error(x: &Exchange, status: u16, _error: Option<&Error>) {
        x.write(format!("admin {status}"));
    }
}

thread_local! {
    /// What the streaming handler was told, in order.
    static EVENTS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Takes its body as it comes; records its life.
#[derive(Default)]
struct Upload {
    bytes: usize,
}
impl RequestHandler for Upload {
    fn stream_request_body() -> bool {
        true
    }
    fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
        EVENTS.with(|e| e.borrow_mut().push("prepare".into()));
        if x.request().query().contains("big") {
            x.connection().set_max_body_size(1 << 20);
        }
        Ok(())
    }
    fn data_received(&mut self, _x: &Exchange, chunk: &[u8]) -> Result<Option<Future<()>>, Error> {
        self.bytes += chunk.len();
        Ok(None)
    }
    fn put(&mut self, x: &Exchange) -> Result<(), Error> {
        EVENTS.with(|e| e.borrow_mut().push("put".into()));
        x.write(format!("{} bytes", self.bytes));
        Ok(())
    }
    fn on_connection_close(&mut self) {
        EVENTS.with(|e| e.borrow_mut().push("close".into()));
    }
    fn on_finish(&mut self) {
        EVENTS.with(|e| e.borrow_mut().push("finish".into()));
    }
    fn write_error(x: &Exchange, status: u16, _error: Option<&Error>) {
        EVENTS.with(|e| e.borrow_mut().push(format!("write_error {status}")));
        x.write(format!("upload refused: {status}"));
    }
}

fn app(with_fallback: bool) -> Application {
    let app = Application::new()
        .route("/api", || Api)
        .route("/upload", Upload::default)
        .route("/events", || EventsHandler)
        .add_handlers("admin.example", Routes::new().route("/api", || Admin));
    if with_fallback {
        app.default_handler(|| Fallback)
    } else {
        app
    }
}

/// Tells the streaming handler's events (they live on the server's thread).
struct EventsHandler;
impl RequestHandler for EventsHandler {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let events = EVENTS.with(|e| std::mem::take(&mut *e.borrow_mut()));
        x.write(events.join(","));
        Ok(())
    }
}

fn server(with_fallback: bool) -> TestServer {
    TestServer::start(
        move || app(with_fallback),
        |s| {
            s.set_max_header_size(2048);
            s.set_max_body_size(1024);
            s.set_body_timeout(Duration::from_millis(300));
        },
    )
}

/// Sends `raw` and reads the reply; the server must close after it.
fn refused(s: &TestServer, raw: &[u8]) -> Reply {
    let mut conn = connect(s.addr);
    let _ = conn.write_all(raw);
    let reply = read_reply(&mut conn, &mut Vec::new(), false).expect("a reply");
    assert_eq!(
        reply.header("Connection").as_deref(),
        Some("close"),
        "{reply:?}"
    );
    assert!(closed_within(&mut conn, Duration::from_secs(3)));
    reply
}

fn api_page(status: u16, method: &str, path: &str) -> String {
    format!("{{\"error\": {status}, \"method\": \"{method}\", \"path\": \"{path}\"}}")
}

#[test]
fn a_body_over_the_limit_gets_the_routes_error_page() {
    let s = server(false);
    // Declared too long (Tornado's BodyLimitsTest.test_large_body_buffered,
    // which answers 400 where squall says 413).
    let r = refused(
        &s,
        b"POST /api?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\n\r\n",
    );
    assert_eq!(r.status, 413);
    assert_eq!(
        r.header("Content-Type").as_deref(),
        Some("application/json")
    );
    assert_eq!(r.text(), api_page(413, "POST", "/api"));
    // Chunked, found too long as it comes (test_large_body_buffered_chunked).
    let mut raw = b"POST /api HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        raw.extend_from_slice(b"200\r\n");
        raw.extend_from_slice(&[b'x'; 512]);
        raw.extend_from_slice(b"\r\n");
    }
    let r = refused(&s, &raw);
    assert_eq!(r.status, 413);
    assert_eq!(r.text(), api_page(413, "POST", "/api"));
    // Badly framed chunks: 400, the same page.
    let r = refused(
        &s,
        b"POST /api HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.text(), api_page(400, "POST", "/api"));
    // Within the limit, the handler answers as usual.
    let mut body = b"POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n".to_vec();
    body.extend_from_slice(&[b'y'; 1000]);
    let r = raw_request(s.addr, &body).unwrap();
    assert_eq!((r.status, r.text()), (200, "1000 bytes".to_owned()));
}

#[test]
fn a_bad_head_gets_the_page_of_the_route_it_names() {
    let s = server(false);
    // A Content-Length that is no number.
    let r = refused(
        &s,
        b"POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: ten\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.text(), api_page(400, "POST", "/api"));
    // Two that differ; a second Host; an unknown transfer coding (501).
    for (raw, status) in [
        (
            &b"PUT /api HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"[..],
            400,
        ),
        (b"GET /api HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET /api HTTP/1.1\r\n\r\n", 400),
        (
            b"POST /api HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
        ),
    ] {
        let r = refused(&s, raw);
        assert_eq!(r.status, status, "{r:?}");
        let method = std::str::from_utf8(raw).unwrap().split(' ').next().unwrap();
        assert_eq!(r.text(), api_page(status, method, "/api"));
    }
    // Tornado's MaxHeaderSizeTest: a small head passes, a large one is 431,
    // with the request line's route page (its fields are not kept).
    let small = format!(
        "GET /api HTTP/1.1\r\nHost: a\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(1000)
    );
    assert_eq!(raw_request(s.addr, small.as_bytes()).unwrap().text(), "got");
    let large = format!(
        "GET /api HTTP/1.1\r\nHost: a\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(5000)
    );
    let r = refused(&s, large.as_bytes());
    assert_eq!(r.status, 431);
    assert_eq!(r.text(), api_page(431, "GET", "/api"));
    // Still arriving when it passed the limit: the same.
    let mut conn = connect(s.addr);
    conn.write_all(
        format!(
            "GET /api HTTP/1.1\r\nHost: a\r\nX-Filler: {}",
            "b".repeat(3000)
        )
        .as_bytes(),
    )
    .unwrap();
    let r = read_reply(&mut conn, &mut Vec::new(), false).unwrap();
    assert_eq!((r.status, r.text()), (431, api_page(431, "GET", "/api")));
    // Too many fields.
    let many: String = (0..150).map(|i| format!("X-{i}: 1\r\n")).collect();
    let r = refused(
        &s,
        format!("GET /api HTTP/1.1\r\nHost: a\r\n{many}\r\n").as_bytes(),
    );
    assert_eq!((r.status, r.text()), (431, api_page(431, "GET", "/api")));
    // A field that is not one: the request line was read.
    let r = refused(&s, b"GET /api?q=1 HTTP/1.1\r\nbad header\r\n\r\n");
    assert_eq!((r.status, r.text()), (400, api_page(400, "GET", "/api")));
    // And the server goes on.
    let r = raw_request(s.addr, b"GET /api HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(r.text(), "got");
}

#[test]
fn unrouted_refusals_get_the_default_handler_or_tornados_page() {
    let bad = b"POST /nowhere HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n";
    let s = server(true);
    let r = refused(&s, bad);
    assert_eq!((r.status, r.text()), (400, "fallback 400".to_owned()));
    assert_eq!(r.header("Content-Type").as_deref(), Some("text/plain"));
    drop(s);
    let s = server(false);
    let r = refused(&s, bad);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text(),
        "<html><title>400: Bad Request</title><body>400: Bad Request</body></html>"
    );
    assert_eq!(
        r.header("Content-Type").as_deref(),
        Some("text/html; charset=UTF-8")
    );
    // The host group the Host names picks the page, bad head or big body.
    let r = refused(
        &s,
        b"POST /api HTTP/1.1\r\nHost: admin.example\r\nContent-Length: x\r\n\r\n",
    );
    assert_eq!((r.status, r.text()), (400, "admin 400".to_owned()));
    let r = refused(
        &s,
        b"POST /api HTTP/1.1\r\nHost: admin.example\r\nContent-Length: 5000\r\n\r\n",
    );
    assert_eq!((r.status, r.text()), (413, "admin 413".to_owned()));
}

#[test]
fn no_request_line_no_page() {
    let s = server(true);
    for raw in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /api HTTX/1.1\r\n\r\n",
        b"\x00\x01\r\n\r\n",
    ] {
        let r = refused(&s, raw);
        assert_eq!(r.status, 400);
        assert_eq!(r.text(), "400: Bad Request");
        assert_eq!(
            r.header("Content-Type").as_deref(),
            Some("text/plain; charset=UTF-8")
        );
    }
    // A request line still coming when it passed the head limit.
    let r = refused(&s, format!("GET /{}", "a".repeat(4000)).as_bytes());
    assert_eq!(
        (r.status, r.text()),
        (431, "431: Request Header Fields Too Large".to_owned())
    );
    // One that came whole, if too long, was read: its route's page.
    let r = refused(
        &s,
        format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(4000)).as_bytes(),
    );
    assert_eq!((r.status, r.text()), (431, "fallback 431".to_owned()));
}

#[test]
fn a_streaming_handler_refused_writes_its_page_and_finishes() {
    let s = server(false);
    let events = || {
        raw_request(s.addr, b"GET /events HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .text()
    };
    // Over the server's limit (Tornado's test_large_body_streaming).
    let r = refused(
        &s,
        b"PUT /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 4000\r\n\r\n",
    );
    assert_eq!(
        (r.status, r.text()),
        (413, "upload refused: 413".to_owned())
    );
    assert_eq!(events(), "prepare,write_error 413,finish");
    // Raised in prepare (test_large_body_streaming_override), then
    // chunked past the raised limit.
    let mut conn = connect(s.addr);
    conn.write_all(b"PUT /upload?big HTTP/1.1\r\nHost: a\r\nContent-Length: 4000\r\n\r\n")
        .unwrap();
    conn.write_all(&[b'z'; 4000]).unwrap();
    let r = read_reply(&mut conn, &mut Vec::new(), false).unwrap();
    assert_eq!((r.status, r.text()), (200, "4000 bytes".to_owned()));
    assert_eq!(events(), "prepare,put,finish");
    // Too slow (test_timeout): 408, the handler's page.
    let mut conn = connect(s.addr);
    conn.write_all(b"PUT /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
        .unwrap();
    let r = read_reply(&mut conn, &mut Vec::new(), false).unwrap();
    assert_eq!(
        (r.status, r.text()),
        (408, "upload refused: 408".to_owned())
    );
    assert!(closed_within(&mut conn, Duration::from_secs(3)));
    assert_eq!(events(), "prepare,write_error 408,finish");
}

#[test]
fn a_buffered_body_too_slow_gets_the_routes_page() {
    let s = server(false);
    let mut conn = connect(s.addr);
    conn.write_all(b"POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
        .unwrap();
    let r = read_reply(&mut conn, &mut Vec::new(), false).unwrap();
    assert_eq!((r.status, r.text()), (408, api_page(408, "POST", "/api")));
    assert_eq!(r.header("Connection").as_deref(), Some("close"));
    assert!(closed_within(&mut conn, Duration::from_secs(3)));
}

/// A plain delegate's refusals are the server's, byte for byte (but the
/// date).
#[test]
fn a_delegate_without_the_hook_keeps_the_servers_answer() {
    let s = TestServer::start(
        || {
            |_r: &HTTPServerRequest, conn: &HTTPConnection| {
                conn.write_response(200, &HTTPHeaders::new(), b"ok")
            }
        },
        |s| s.set_max_body_size(100),
    );
    let expect = |status: u16, reason: &str| {
        let body = format!("{status}: {reason}");
        format!(
            "HTTP/1.1 {status} {reason}\r\nServer: squall\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    for (raw, status, reason) in [
        (
            &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n"[..],
            413,
            "Content Too Large",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ten\r\n\r\n",
            400,
            "Bad Request",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
            "Bad Request",
        ),
    ] {
        let mut conn = connect(s.addr);
        conn.write_all(raw).unwrap();
        let (got, closed) = read_all(&mut conn);
        assert!(closed);
        // Without its Date line.
        let got: String = got
            .split_inclusive("\r\n")
            .filter(|l| !l.starts_with("Date: "))
            .collect();
        assert_eq!(got, expect(status, reason));
    }
}

/// Everything until the server closes (or 5 s).
fn read_all(conn: &mut std::net::TcpStream) -> (String, bool) {
    use std::io::Read;
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Vec::new();
    let closed = conn.read_to_end(&mut out).is_ok();
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// A delegate of its own, through the hooks of the `http` traits: the head
/// refused is answered by the server delegate (the request line it was
/// given in the page), the body refused by the message delegate; a hook
/// that leaves its response open gets the connection cut.
#[test]
fn raw_delegates_answer_through_the_hooks() {
    struct Server;
    struct Message {
        conn: HTTPConnection,
        path: Rc<RefCell<String>>,
    }
    impl HTTPServerConnectionDelegate for Server {
        type Message = Message;
        fn start_request(&self, conn: &HTTPConnection) -> Message {
            Message {
                conn: conn.clone(),
                path: Rc::default(),
            }
        }
        fn on_protocol_error(
            &self,
            conn: &HTTPConnection,
            status: u16,
            request: Box<HTTPServerRequest>,
        ) {
            if request.path() == "/open" {
                // Begun and never finished: cut off.
                let _ = conn.write_headers(status, &HTTPHeaders::new());
                return;
            }
            if request.path() == "/none" {
                return;
            }
            if request.path() == "/panic" {
                panic!("the hook fails");
            }
            let page = format!("head {status} {} {}", request.method(), request.uri());
            let _ = conn.write_response(status, &HTTPHeaders::new(), page.as_bytes());
        }
    }
    impl HTTPMessageDelegate for Message {
        fn headers_received(&mut self, request: Box<HTTPServerRequest>) {
            *self.path.borrow_mut() = request.path().to_owned();
            self.conn.recycle_request(request);
        }
        fn finish(&mut self) {
            let _ = self.conn.write_response(200, &HTTPHeaders::new(), b"ok");
        }
        fn on_protocol_error(&mut self, status: u16) {
            if *self.path.borrow() == "/panic" {
                panic!("the hook fails");
            }
            let page = format!("body {status} {}", self.path.borrow());
            let _ = self
                .conn
                .write_response(status, &HTTPHeaders::new(), page.as_bytes());
        }
    }
    let s = TestServer::start(|| Server, |s| s.set_max_body_size(100));
    let r = refused(
        &s,
        b"POST /a?b HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
    );
    assert_eq!((r.status, r.text()), (400, "head 400 POST /a?b".to_owned()));
    let r = refused(
        &s,
        b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n",
    );
    assert_eq!((r.status, r.text()), (413, "body 413 /up".to_owned()));
    // Left unanswered, or failing: the server's own.
    let r = refused(
        &s,
        b"POST /none HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
    );
    assert_eq!((r.status, r.text()), (400, "400: Bad Request".to_owned()));
    let r = refused(
        &s,
        b"POST /panic HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
    );
    assert_eq!((r.status, r.text()), (400, "400: Bad Request".to_owned()));
    let r = refused(
        &s,
        b"POST /panic HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n",
    );
    assert_eq!(
        (r.status, r.text()),
        (413, "413: Content Too Large".to_owned())
    );
    // The server goes on.
    let r = raw_request(s.addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!((r.status, r.text()), (200, "ok".to_owned()));
    // Left open: the head that went out, then the connection closes.
    let mut conn = connect(s.addr);
    conn.write_all(b"POST /open HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n")
        .unwrap();
    let (got, closed) = read_all(&mut conn);
    assert!(closed);
    assert!(got.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{got:?}");
    assert!(got.contains("Transfer-Encoding: chunked"), "{got:?}");
    assert!(!got.ends_with("0\r\n\r\n"), "never finished: {got:?}");
}

/// A gzipped body (`set_decompress_request`) refused as it is decoded: a
/// small body that decodes past the limit (413) and one that is no gzip
/// (400) get the route's page too.
#[cfg(feature = "gzip")]
#[test]
fn a_gzipped_body_refused_gets_the_routes_page() {
    let s = TestServer::start(
        || app(false),
        |s| {
            s.set_decompress_request(true);
            s.set_max_body_size(1024);
        },
    );
    // 100,000 zero bytes gzipped (Python's `gzip.compress(..., mtime=0)`):
    // 132 bytes.
    let mut bomb = vec![
        31, 139, 8, 0, 0, 0, 0, 0, 2, 3, 237, 193, 49, 1, 0, 0, 0, 194, 160, 245, 79, 109, 13, 15,
        160,
    ];
    bomb.extend_from_slice(&[0; 96]);
    bomb.extend_from_slice(&[128, 87, 3, 125, 149, 17, 212, 160, 134, 1, 0]);
    assert_eq!(bomb.len(), 132);
    let post = |body: &[u8]| {
        let mut raw = format!(
            "POST /api HTTP/1.1\r\nHost: a\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        raw.extend_from_slice(body);
        refused(&s, &raw)
    };
    let r = post(&bomb);
    assert_eq!((r.status, r.text()), (413, api_page(413, "POST", "/api")));
    let r = post(b"this is not gzip at all");
    assert_eq!((r.status, r.text()), (400, api_page(400, "POST", "/api")));
}

/// A `write_error` that panics on a refusal: Tornado's page instead, and
/// the server goes on.
#[test]
fn a_failing_error_page_falls_back_to_tornados() {
    struct Broken;
    impl RequestHandler for Broken {
        fn write_error(_x: &Exchange, _status: u16, _error: Option<&Error>) {
            panic!("the error page is broken");
        }
    }
    let s = TestServer::start(
        || Application::new().route("/", || Broken),
        |s| s.set_max_body_size(10),
    );
    for (raw, status) in [
        (
            &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n"[..],
            413,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: z\r\n\r\n",
            400,
        ),
    ] {
        let r = refused(&s, raw);
        assert_eq!(r.status, status);
        let reason = if r.status == 413 {
            "Content Too Large"
        } else {
            "Bad Request"
        };
        assert_eq!(
            r.text(),
            format!(
                "<html><title>{0}: {reason}</title><body>{0}: {reason}</body></html>",
                r.status
            )
        );
    }
    let r = raw_request(s.addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(r.status, 405);
}
