//! The HTTP protocol layer through its public API: raw delegates (a closure
//! of the request, a message delegate of one's own), streamed request
//! bodies with backpressure, connection hand-off after `101`, framing the
//! server owns (no body after 304/204/HEAD, the handler's own
//! `Content-Length`), and the request checks real clients tripped on
//! (Host, Content-Length, chunked framing, header injection, obs-text).
//! Raw sockets, as Tornado's `HTTPServerRawTest`.

#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use http_kit::{connect, raw_request, read_reply, TestServer};
use squall::http::{
    HTTPConnection, HTTPMessageDelegate, HTTPServer, HTTPServerConnectionDelegate,
    HTTPServerRequest,
};
use squall::httputil::HTTPHeaders;
use squall::web::{Application, Exchange, RequestHandler};
use squall::{Error, ErrorKind, Future, IOLoop};

/// A server on its own thread for any delegate (`TestServer` serves an
/// `Application`).
struct RawServer {
    addr: std::net::SocketAddr,
    remote: squall::Remote,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RawServer {
    fn start<D: HTTPServerConnectionDelegate>(
        make: impl FnOnce() -> D + Send + 'static,
        configure: impl FnOnce(&HTTPServer) + Send + 'static,
    ) -> RawServer {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let io_loop = IOLoop::new().expect("loop");
            io_loop.make_current();
            let server = HTTPServer::with_loop(&io_loop, make());
            configure(&server);
            server.listen(0, Some("127.0.0.1")).expect("listen");
            tx.send((server.local_addrs()[0], io_loop.remote()))
                .expect("send");
            io_loop.start().expect("loop");
            server.stop();
            io_loop.close();
        });
        let (addr, remote) = rx.recv().expect("started");
        RawServer {
            addr,
            remote,
            thread: Some(thread),
        }
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        let _ = self.remote.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn echo_server() -> RawServer {
    RawServer::start(
        || {
            |req: &HTTPServerRequest, conn: &HTTPConnection| {
                let mut headers = HTTPHeaders::new();
                headers.add("X-Method", req.method());
                conn.write_response(200, &headers, req.body())
            }
        },
        |_| {},
    )
}

#[test]
fn a_closure_serves_and_echoes_bodies() {
    let s = echo_server();
    let r = raw_request(
        s.addr,
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello");
    assert_eq!(r.header("X-Method").as_deref(), Some("POST"));
    // A raw server sets no Content-Type of its own.
    assert_eq!(r.header("Content-Type"), None);
    // Chunked, and keep-alive with pipelining.
    let mut conn = connect(s.addr);
    conn.write_all(
        b"PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n\
          GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    assert_eq!(
        read_reply(&mut conn, &mut buf, false).unwrap().text(),
        "abcde"
    );
    let r = read_reply(&mut conn, &mut buf, false).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, ""));
}

/// Counts the body as it streams, pausing on every piece for a timer:
/// memory stays bounded whatever the upload's size.
struct Counter;
struct Counting {
    conn: HTTPConnection,
    seen: u64,
    pieces: u64,
}

impl HTTPServerConnectionDelegate for Counter {
    type Message = Counting;
    fn start_request(&self, conn: &HTTPConnection) -> Counting {
        Counting {
            conn: conn.clone(),
            seen: 0,
            pieces: 0,
        }
    }
}

impl HTTPMessageDelegate for Counting {
    fn headers_received(&mut self, request: Box<HTTPServerRequest>) {
        self.conn.set_max_body_size(usize::MAX);
        self.conn.recycle_request(request);
    }
    fn data_received(&mut self, chunk: &[u8]) -> Option<Future<()>> {
        self.seen += chunk.len() as u64;
        self.pieces += 1;
        // Every 64th piece, wait a moment: the backpressure path.
        (self.pieces % 64 == 0).then(|| {
            let f = Future::new();
            let done = f.clone();
            self.conn
                .io_loop()
                .call_later(Duration::from_millis(1), move || done.set_result(()));
            f
        })
    }
    fn finish(&mut self) {
        let body = format!("{} {}", self.seen, rss_kib());
        let _ = self
            .conn
            .write_response(200, &HTTPHeaders::new(), body.as_bytes());
    }
}

/// This process's resident set, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_one_gib_upload_streams_in_bounded_memory() {
    let s = RawServer::start(|| Counter, |_| {});
    const SIZE: u64 = 1 << 30;
    let before = rss_kib();
    let mut conn = connect(s.addr);
    conn.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let head = format!("PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: {SIZE}\r\n\r\n");
    conn.write_all(head.as_bytes()).unwrap();
    let block = vec![b'x'; 1 << 20];
    let deadline = Instant::now() + Duration::from_secs(100);
    let mut peak = 0;
    for i in 0..(SIZE >> 20) {
        conn.write_all(&block).unwrap();
        if i % 64 == 0 {
            peak = peak.max(rss_kib());
        }
        assert!(Instant::now() < deadline, "upload too slow");
    }
    let r = read_reply(&mut conn, &mut Vec::new(), false).expect("reply");
    let text = r.text();
    let (seen, server_rss) = text.split_once(' ').unwrap();
    assert_eq!(seen.parse::<u64>().unwrap(), SIZE);
    // Client and server share this process: its growth bounds the
    // server's buffers (the client writes from one 1 MiB block).
    let grown = peak.max(server_rss.parse().unwrap()).saturating_sub(before);
    eprintln!("1 GiB upload: RSS before {before} KiB, peak {peak} KiB, server's {server_rss} KiB");
    assert!(
        grown < 64 * 1024,
        "RSS grew by {grown} KiB during a 1 GiB upload"
    );
}

/// Answers `101` and speaks a made-up protocol on the detached stream:
/// each line comes back upper-cased, `bye` ends it.
fn upgrade_server() -> TestServer {
    struct Upgrade;
    impl RequestHandler for Upgrade {
        fn get(&mut self, x: &Exchange) -> Result<(), Error> {
            let mut headers = HTTPHeaders::new();
            headers.add("Upgrade", "shout");
            headers.add("Connection", "Upgrade");
            let conn = x.connection();
            conn.write_headers(101, &headers)?;
            let stream = conn.detach()?;
            x.set_async(); // the response is no longer the server's
            fn next(stream: squall::IOStream) {
                let s = stream.clone();
                stream.read_until(b"\n", Some(1024)).add_done_callback(
                    move |f: &Future<Vec<u8>>| {
                        let Ok(line) = f.result() else { return };
                        if line == b"bye\n" {
                            s.close();
                            return;
                        }
                        s.write(line.to_ascii_uppercase());
                        next(s.clone());
                    },
                );
            }
            next(stream);
            Ok(())
        }
    }
    TestServer::start(|| Application::new().route("/shout", || Upgrade), |_| {})
}

#[test]
fn detach_after_101_hands_the_stream_over_with_the_bytes_already_read() {
    let s = upgrade_server();
    let mut conn = connect(s.addr);
    // The first line of the new protocol comes in the same packet as the
    // request: it must reach the new owner.
    conn.write_all(
        b"GET /shout HTTP/1.1\r\nHost: a\r\nUpgrade: shout\r\nConnection: Upgrade\r\n\r\nhello\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    let head = read_reply(&mut conn, &mut buf, true).unwrap();
    assert_eq!(head.status, 101);
    assert_eq!(head.header("Content-Length"), None);
    assert_eq!(head.header("Transfer-Encoding"), None);
    assert_eq!(head.header("Connection").as_deref(), Some("Upgrade"));
    let mut rest = buf;
    conn.write_all(b"again\nbye\n").unwrap();
    let mut chunk = [0u8; 256];
    while !rest.ends_with(b"AGAIN\n") {
        let n = conn.read(&mut chunk).unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&rest));
        rest.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(rest, b"HELLO\nAGAIN\n");
    // `bye`: the new owner closes.
    assert_eq!(conn.read(&mut chunk).unwrap(), 0);
    // The server goes on.
    let r = raw_request(s.addr, b"GET /nothing HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(r.status, 404);
}

/// Handlers for the framing cases.
fn framing_app() -> Application {
    struct NotModified;
    impl RequestHandler for NotModified {
        fn get(&mut self, x: &Exchange) -> Result<(), Error> {
            x.set_status(304);
            x.write("a body that must never be sent");
            let _ = x.flush();
            x.write("nor this");
            Ok(())
        }
    }
    struct NoContent;
    impl RequestHandler for NoContent {
        fn get(&mut self, x: &Exchange) -> Result<(), Error> {
            x.set_status(204);
            x.write("leak");
            Ok(())
        }
    }
    struct OwnLength;
    impl RequestHandler for OwnLength {
        fn get(&mut self, x: &Exchange) -> Result<(), Error> {
            x.set_header("Content-Length", "5")?;
            x.write("hello");
            Ok(())
        }
    }
    struct WrongLength;
    impl RequestHandler for WrongLength {
        fn get(&mut self, x: &Exchange) -> Result<(), Error> {
            x.set_header("Content-Length", "50")?;
            x.write("short");
            Ok(())
        }
    }
    struct Inject;
    impl RequestHandler for Inject {
        fn get(&mut self, x: &Exchange) -> Result<(), Error> {
            let v = x.request().get_query_argument("v").unwrap_or_default();
            match x.set_header("X-Echo", &v) {
                Err(e) if e.kind() == ErrorKind::InvalidArgument => {
                    let redirect = x.redirect(&v, false);
                    assert_eq!(redirect.unwrap_err().kind(), ErrorKind::InvalidArgument);
                    x.set_status(400);
                    x.write("refused");
                    Ok(())
                }
                other => other,
            }
        }
    }
    struct Bytes;
    impl RequestHandler for Bytes {
        fn get(&mut self, x: &Exchange) -> Result<(), Error> {
            let h = x.request().headers();
            let bytes = h.get_bytes("X-Name").unwrap_or_default().to_vec();
            let text = h.get("X-Name").unwrap_or_default().to_owned();
            x.write(format!("{bytes:?} {text}"));
            Ok(())
        }
    }
    Application::new()
        .route("/304", || NotModified)
        .route("/204", || NoContent)
        .route("/own", || OwnLength)
        .route("/wrong", || WrongLength)
        .route("/inject", || Inject)
        .route("/bytes", || Bytes)
}

#[test]
fn bodiless_answers_carry_no_body_and_keep_alive_goes_on() {
    let s = TestServer::start(framing_app, |_| {});
    let mut conn = connect(s.addr);
    conn.write_all(
        b"GET /304 HTTP/1.1\r\nHost: a\r\n\r\nGET /204 HTTP/1.1\r\nHost: a\r\n\r\n\
          HEAD /own HTTP/1.1\r\nHost: a\r\n\r\nGET /own HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    let r = read_reply(&mut conn, &mut buf, false).unwrap();
    assert_eq!(r.status, 304);
    assert_eq!(r.header("Transfer-Encoding"), None);
    assert_eq!(r.header("Content-Type"), None);
    let r = read_reply(&mut conn, &mut buf, false).unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(r.header("Content-Length"), None);
    let head = read_reply(&mut conn, &mut buf, true).unwrap();
    assert_eq!(head.header("Content-Length").as_deref(), Some("5"));
    let r = read_reply(&mut conn, &mut buf, false).unwrap();
    // Had a body leaked, it would be read as this response's start.
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    // The handler's Content-Length, once.
    assert_eq!(r.head.matches("Content-Length").count(), 1, "{}", r.head);
}

#[test]
fn a_body_that_misses_its_content_length_closes_the_connection() {
    let s = TestServer::start(framing_app, |_| {});
    let mut conn = connect(s.addr);
    conn.write_all(b"GET /wrong HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut all = Vec::new();
    conn.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("\r\n\r\nshort"), "{text}");
}

#[test]
fn header_injection_is_refused() {
    let s = TestServer::start(framing_app, |_| {});
    let r = raw_request(
        s.addr,
        b"GET /inject?v=x%0d%0aSet-Cookie:%20evil=1 HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 400);
    assert!(!r.head.contains("evil"), "{}", r.head);
    let r = raw_request(s.addr, b"GET /inject?v=fine HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(r.header("X-Echo").as_deref(), Some("fine"));
}

#[test]
fn obs_text_values_are_served_as_bytes_and_latin_1_text() {
    let s = TestServer::start(framing_app, |_| {});
    let r = raw_request(
        s.addr,
        b"GET /bytes HTTP/1.1\r\nHost: a\r\nX-Name: Jos\xe9\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "[74, 111, 115, 233] José");
}

/// Each must be 400 (Tornado 6's `HTTPServerRawTest` and its invalid
/// framing cases; RFC 9112 3.2, 6.1, 6.3, 7.1; RFC 9110 8.6).
#[test]
fn requests_that_smuggle_get_400() {
    let s = echo_server();
    let cases: &[&[u8]] = &[
        // Host: missing on HTTP/1.1, twice, invalid.
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
        // Content-Length: a sign, inner blanks, two values, not a number.
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +10\r\n\r\n0123456789",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 0\r\n\r\n0123456789",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        // Chunked twice; chunked with a length.
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        // Chunk sizes with blanks; chunk lines ending in a bare LF.
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n 5 \r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n",
    ];
    for case in cases {
        let r = raw_request(s.addr, case);
        assert_eq!(
            r.as_ref().map(|r| r.status),
            Some(400),
            "{:?}",
            String::from_utf8_lossy(case)
        );
    }
    // HTTP/1.0 needs no Host; an empty Host is allowed.
    for ok in [
        &b"GET / HTTP/1.0\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n",
    ] {
        assert_eq!(raw_request(s.addr, ok).map(|r| r.status), Some(200));
    }
}

#[test]
fn on_connection_close_is_called_once_for_a_message_left_waiting() {
    thread_local! {
        static CLOSED: RefCell<u32> = const { RefCell::new(0) };
    }
    struct LongPoll;
    struct Waiting(#[allow(dead_code)] Rc<()>);
    impl HTTPServerConnectionDelegate for LongPoll {
        type Message = Waiting;
        fn start_request(&self, _conn: &HTTPConnection) -> Waiting {
            Waiting(Rc::new(()))
        }
    }
    impl HTTPMessageDelegate for Waiting {
        fn headers_received(&mut self, _request: Box<HTTPServerRequest>) {}
        fn finish(&mut self) {} // never answers
        fn on_connection_close(&mut self) {
            CLOSED.with(|c| *c.borrow_mut() += 1);
        }
    }
    struct Count;
    impl HTTPServerConnectionDelegate for Count {
        type Message = CountMessage;
        fn start_request(&self, conn: &HTTPConnection) -> CountMessage {
            CountMessage(conn.clone())
        }
    }
    struct CountMessage(HTTPConnection);
    impl HTTPMessageDelegate for CountMessage {
        fn headers_received(&mut self, _request: Box<HTTPServerRequest>) {}
        fn finish(&mut self) {
            let n = CLOSED.with(|c| *c.borrow());
            let _ = self
                .0
                .write_response(200, &HTTPHeaders::new(), n.to_string().as_bytes());
        }
    }
    // Two servers on one loop: the second reports what the first saw.
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let io_loop = IOLoop::new().unwrap();
        io_loop.make_current();
        let a = HTTPServer::with_loop(&io_loop, LongPoll);
        let b = HTTPServer::with_loop(&io_loop, Count);
        a.listen(0, Some("127.0.0.1")).unwrap();
        b.listen(0, Some("127.0.0.1")).unwrap();
        tx.send((a.local_addrs()[0], b.local_addrs()[0], io_loop.remote()))
            .unwrap();
        io_loop.start().unwrap();
        io_loop.close();
    });
    let (a, b, remote) = rx.recv().unwrap();
    for _ in 0..3 {
        let mut conn = connect(a);
        conn.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        drop(conn);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = raw_request(b, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .text();
        if n == "3" || Instant::now() > deadline {
            assert_eq!(n, "3");
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    remote.stop().unwrap();
    thread.join().unwrap();
}

#[test]
fn a_streaming_handler_gets_the_body_in_pieces_and_may_raise_the_limit() {
    #[derive(Default)]
    struct Upload {
        bytes: usize,
        pieces: usize,
    }
    impl RequestHandler for Upload {
        fn stream_request_body() -> bool {
            true
        }
        fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
            if x.request().get_query_argument("big").is_some() {
                x.connection().set_max_body_size(1 << 24);
            }
            Ok(())
        }
        fn data_received(
            &mut self,
            _x: &Exchange,
            chunk: &[u8],
        ) -> Result<Option<Future<()>>, Error> {
            self.bytes += chunk.len();
            self.pieces += 1;
            Ok(None)
        }
        fn put(&mut self, x: &Exchange) -> Result<(), Error> {
            assert!(x.request().body().is_empty());
            x.write(format!("{} bytes in {} pieces", self.bytes, self.pieces));
            Ok(())
        }
    }
    let s = TestServer::start(
        || Application::new().route("/up", Upload::default),
        |server| server.set_max_body_size(1 << 20),
    );
    let body = vec![b'z'; 4 << 20];
    let send = |path: &str| {
        let mut conn = connect(s.addr);
        let head = format!(
            "PUT {path} HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes()).unwrap();
        let _ = conn.write_all(&body);
        read_reply(&mut conn, &mut Vec::new(), false).unwrap()
    };
    // Over the server's limit: 413, unless the handler raised it.
    assert_eq!(send("/up").status, 413);
    let r = send("/up?big=1");
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.starts_with("4194304 bytes in "), "{text}");
    let pieces: usize = text.split(' ').nth(3).unwrap().parse().unwrap();
    assert!(pieces > 1, "{text}");
}
