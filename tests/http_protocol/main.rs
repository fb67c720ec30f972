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

use squall::netutil::BindOptions;
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

fn echo_server() -> TestServer {
    TestServer::start(
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
                stream.read_until_max_bytes(b"\n", 1024).add_done_callback(
                    move |f: &Future<Vec<u8>>| {
                        let Ok(line) = f.result() else { return };
                        if line == b"bye\n" {
                            s.close();
                            return;
                        }
                        drop(s.write(line.to_ascii_uppercase()));
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
            drop(x.flush());
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
                    let redirect = x.redirect(&v);
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

/// Heads are kept as bytes and each value is made text on its own: in one
/// pipelined batch, a Latin-1 value, a UTF-8 one, and a value cut inside a
/// UTF-8 sequence each come out right, and the framing fields of a head
/// with obs-text elsewhere still count (`Connection: close` ends it).
#[test]
fn obs_text_in_a_pipelined_batch_is_text_per_value() {
    let s = TestServer::start(framing_app, |_| {});
    let mut conn = connect(s.addr);
    conn.write_all(
        b"GET /bytes HTTP/1.1\r\nHost: a\r\nX-Name: Jos\xe9\r\n\r\n\
          GET /bytes HTTP/1.1\r\nHost: a\r\nX-Name: Jos\xc3\xa9\r\n\r\n\
          GET /bytes HTTP/1.1\r\nX-Name: a\xc3\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    let r = read_reply(&mut conn, &mut buf, false).unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "[74, 111, 115, 233] José")
    );
    let r = read_reply(&mut conn, &mut buf, false).unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "[74, 111, 115, 195, 169] José")
    );
    let r = read_reply(&mut conn, &mut buf, false).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "[97, 195] aÃ"));
    assert_eq!(r.header("Connection").as_deref(), Some("close"));
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty() && buf.is_empty(), "{rest:?} {buf:?}");
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

/// A framing field padded with an obs-text byte that decodes (as Latin-1)
/// to a Unicode space, U+00A0 or U+0085, is not `chunked`: only spaces and
/// tabs are a value's white space (RFC 9110 5.6.3). A proxy in front would
/// not read it as chunked either: taking it as chunked is request smuggling.
#[test]
fn a_transfer_encoding_padded_with_obs_text_is_not_chunked() {
    let s = echo_server();
    for raw in [
        &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\xa0\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x85chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    ] {
        let status = raw_request(s.addr, raw).map(|r| r.status);
        assert_eq!(status, Some(501), "{:?}", String::from_utf8_lossy(raw));
    }
    // Spaces and tabs around it are white space.
    let ok = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \t chunked \r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    assert_eq!(raw_request(s.addr, ok).map(|r| r.status), Some(200));
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
        a.listen_with(0, BindOptions::new().address("127.0.0.1"))
            .unwrap();
        b.listen_with(0, BindOptions::new().address("127.0.0.1"))
            .unwrap();
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

/// A message delegate that asks to be reused serves its connection's next
/// requests (`start_request` is not called again there); one that does not
/// is made anew for each request; a new connection always gets a new one.
#[test]
fn a_message_delegate_that_asks_is_reused_for_the_next_request() {
    struct Counting {
        made: std::cell::Cell<u32>,
        reuse: bool,
    }
    struct Served {
        conn: HTTPConnection,
        made: u32,
        served: u32,
        reuse: bool,
    }
    impl HTTPServerConnectionDelegate for Counting {
        type Message = Served;
        fn start_request(&self, conn: &HTTPConnection) -> Served {
            self.made.set(self.made.get() + 1);
            Served {
                conn: conn.clone(),
                made: self.made.get(),
                served: 0,
                reuse: self.reuse,
            }
        }
    }
    impl HTTPMessageDelegate for Served {
        fn headers_received(&mut self, request: Box<HTTPServerRequest>) {
            self.conn.recycle_request(request);
        }
        fn finish(&mut self) {
            self.served += 1;
            let body = format!("made {} served {}", self.made, self.served);
            let _ = self
                .conn
                .write_response(200, &HTTPHeaders::new(), body.as_bytes());
        }
        fn reuse(&mut self) -> bool {
            self.reuse
        }
    }
    for reuse in [true, false] {
        let s = TestServer::start(
            move || Counting {
                made: std::cell::Cell::new(0),
                reuse,
            },
            |_| {},
        );
        let mut conn = connect(s.addr);
        let mut buf = Vec::new();
        // One at a time, then two pipelined in one write.
        conn.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        let mut bodies = vec![read_reply(&mut conn, &mut buf, false).unwrap().text()];
        conn.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        for _ in 0..2 {
            bodies.push(read_reply(&mut conn, &mut buf, false).unwrap().text());
        }
        let other = raw_request(s.addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .text();
        if reuse {
            assert_eq!(
                bodies,
                ["made 1 served 1", "made 1 served 2", "made 1 served 3"]
            );
            assert_eq!(other, "made 2 served 1");
        } else {
            assert_eq!(
                bodies,
                ["made 1 served 1", "made 2 served 1", "made 3 served 1"]
            );
            assert_eq!(other, "made 4 served 1");
        }
    }
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

/// Section 2 of the protocol issue: an error raised by any callback a
/// handler scheduled, however late, answers 500 (or closes a response whose
/// head went out), once; the client never hangs.
fn late_errors_app() -> Application {
    use squall::IOLoop;
    struct LateErr;
    impl RequestHandler for LateErr {
        fn get(&mut self, x: &Exchange) -> Result<(), Error> {
            x.set_async();
            // Two callbacks later, an Err.
            IOLoop::current().add_callback(|| {
                IOLoop::current().call_later(Duration::from_millis(5), || {
                    Err::<(), _>(Error::new(ErrorKind::InvalidState, "backend said no"))
                });
            });
            Ok(())
        }
    }
    struct LatePanic;
    impl RequestHandler for LatePanic {
        fn get(&mut self, x: &Exchange) -> Result<(), Error> {
            x.set_async();
            IOLoop::current().call_later(Duration::from_millis(5), || -> () {
                panic!("a bug, later");
            });
            Ok(())
        }
    }
    struct LateAfterHead;
    impl RequestHandler for LateAfterHead {
        fn get(&mut self, x: &Exchange) -> Result<(), Error> {
            x.set_async();
            x.write("part of it");
            drop(x.flush());
            IOLoop::current().call_later(Duration::from_millis(5), || {
                Err::<(), _>(Error::new(ErrorKind::InvalidState, "half way"))
            });
            Ok(())
        }
    }
    struct LateAfterFinish;
    impl RequestHandler for LateAfterFinish {
        fn get(&mut self, x: &Exchange) -> Result<(), Error> {
            x.write("fine");
            IOLoop::current().call_later(Duration::from_millis(5), || {
                Err::<(), _>(Error::new(ErrorKind::InvalidState, "too late to matter"))
            });
            Ok(())
        }
    }
    Application::new()
        .route("/err", || LateErr)
        .route("/panic", || LatePanic)
        .route("/after_head", || LateAfterHead)
        .route("/after_finish", || LateAfterFinish)
}

#[test]
fn errors_several_callbacks_later_answer_500() {
    let s = TestServer::start(late_errors_app, |_| {});
    for path in ["/err", "/panic"] {
        let start = Instant::now();
        let r = raw_request(
            s.addr,
            format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes(),
        )
        .expect("an answer, not a hang");
        assert_eq!(r.status, 500, "{path}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }
    // The head went out: the connection closes (the chunked body never ends).
    let mut conn = connect(s.addr);
    conn.write_all(b"GET /after_head HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut all = Vec::new();
    conn.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "a clean end after an error: {text}"
    );
    // Finished first: the answer stands, and the connection goes on.
    let mut conn = connect(s.addr);
    conn.write_all(b"GET /after_finish HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    assert_eq!(
        read_reply(&mut conn, &mut buf, false).unwrap().text(),
        "fine"
    );
    std::thread::sleep(Duration::from_millis(30));
    conn.write_all(b"GET /after_finish HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_reply(&mut conn, &mut buf, false).unwrap().text(),
        "fine"
    );
}

#[test]
fn write_error_makes_the_error_pages_of_its_route() {
    struct Api;
    impl RequestHandler for Api {
        fn get(&mut self, x: &Exchange) -> Result<(), Error> {
            match x.request().query() {
                "missing" => {
                    x.send_error(404);
                    Ok(())
                }
                _ => Err(Error::new(ErrorKind::InvalidState, "db down")),
            }
        }
        fn write_error(x: &Exchange, status: u16, error: Option<&Error>) {
            let _ = x.set_header("Content-Type", "application/json");
            let why = error.map(|e| e.kind().to_string()).unwrap_or_default();
            x.write(format!("{{\"status\": {status}, \"why\": \"{why}\"}}"));
        }
    }
    let s = TestServer::start(|| Application::new().route("/api", || Api), |_| {});
    let r = raw_request(s.addr, b"GET /api?missing HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(
        r.header("Content-Type").as_deref(),
        Some("application/json")
    );
    assert_eq!(r.text(), "{\"status\": 404, \"why\": \"\"}");
    let r = raw_request(s.addr, b"GET /api HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(r.text(), "{\"status\": 500, \"why\": \"invalid state\"}");
    // No route: the default page.
    let r = raw_request(s.addr, b"GET /elsewhere HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(r.status, 404);
    assert!(r.text().starts_with("<html><title>404: Not Found</title>"));
}

#[test]
fn panics_in_factory_prepare_and_on_finish_are_caught_and_pipelined_answers_delivered() {
    struct Fine;
    impl RequestHandler for Fine {
        fn get(&mut self, x: &Exchange) -> Result<(), Error> {
            x.write("fine");
            Ok(())
        }
    }
    struct BadPrepare;
    impl RequestHandler for BadPrepare {
        fn prepare(&mut self, _x: &Exchange) -> Result<(), Error> {
            panic!("prepare broke");
        }
    }
    struct BadFinish;
    impl RequestHandler for BadFinish {
        fn get(&mut self, x: &Exchange) -> Result<(), Error> {
            x.write("answered");
            Ok(())
        }
        fn on_finish(&mut self) {
            panic!("on_finish broke");
        }
    }
    let s = TestServer::start(
        || {
            Application::new()
                .route("/fine", || Fine)
                .route("/factory", || -> Fine { panic!("factory broke") })
                .route("/prepare", || BadPrepare)
                .route("/on_finish", || BadFinish)
        },
        |_| {},
    );
    let mut conn = connect(s.addr);
    conn.write_all(
        b"GET /fine HTTP/1.1\r\nHost: a\r\n\r\nGET /factory HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /prepare HTTP/1.1\r\nHost: a\r\n\r\nGET /on_finish HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /fine HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    let mut next = || read_reply(&mut conn, &mut buf, false).expect("reply");
    assert_eq!(next().text(), "fine");
    assert_eq!(next().status, 500);
    assert_eq!(next().status, 500);
    let r = next();
    assert_eq!((r.status, r.text().as_str()), (200, "answered"));
    assert_eq!(next().text(), "fine");
}

// ----- regressions a review found ------------------------------------------

fn read_all(s: &mut std::net::TcpStream, limit: Duration) -> (String, bool) {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&out).into(), true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into(), false),
        }
    }
}

/// A body short of its `Content-Length`, finished from a later callback:
/// what there is goes out, and the connection closes (it used to hang).
struct AsyncShort;
impl RequestHandler for AsyncShort {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_async();
        x.set_header("Content-Length", "10")?;
        x.write("12345");
        let x = x.clone();
        IOLoop::current().call_later(Duration::from_millis(20), move || {
            let _ = x.finish();
        });
        Ok(())
    }
}
#[test]
fn a_short_body_finished_later_is_sent_and_the_connection_closes() {
    let srv = TestServer::start(
        || Application::new().route("/", || AsyncShort),
        |s| s.set_idle_timeout(Duration::from_millis(200)),
    );
    let mut c = connect(srv.addr);
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (got, closed) = read_all(&mut c, Duration::from_secs(2));
    assert!(
        closed,
        "connection still open after 2s (idle timeout 200ms); got {got:?}"
    );
    assert!(got.ends_with("\r\n\r\n12345"), "{got:?}");
}

/// A `Content-Length` the connection refuses: 500, not silence.
struct BadCl;
impl RequestHandler for BadCl {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_header("Content-Length", "abc")?;
        x.write("hi");
        Ok(())
    }
}
#[test]
fn a_content_length_that_is_no_number_gets_500_not_a_hang() {
    let srv = TestServer::start(
        || Application::new().route("/", || BadCl),
        |s| s.set_idle_timeout(Duration::from_millis(200)),
    );
    let mut c = connect(srv.addr);
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (got, closed) = read_all(&mut c, Duration::from_secs(2));
    assert!(got.starts_with("HTTP/1.1 500"), "{got:?} closed={closed}");
}

// A streaming handler whose body is refused (over its limit) hears the
// connection close.
thread_local! { static EV: std::cell::RefCell<Vec<&'static str>> = const { std::cell::RefCell::new(Vec::new()) }; }
struct Stream1;
impl RequestHandler for Stream1 {
    fn stream_request_body() -> bool {
        true
    }
    fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
        x.connection().set_max_body_size(10);
        EV.with(|e| e.borrow_mut().push("prepare"));
        Ok(())
    }
    fn data_received(
        &mut self,
        _x: &Exchange,
        _c: &[u8],
    ) -> Result<Option<squall::Future<()>>, Error> {
        EV.with(|e| e.borrow_mut().push("data"));
        Ok(None)
    }
    fn post(&mut self, _x: &Exchange) -> Result<(), Error> {
        EV.with(|e| e.borrow_mut().push("post"));
        Ok(())
    }
    fn on_connection_close(&mut self) {
        EV.with(|e| e.borrow_mut().push("close"));
    }
    fn on_finish(&mut self) {
        EV.with(|e| e.borrow_mut().push("finish"));
    }
}
impl Drop for Stream1 {
    fn drop(&mut self) {
        EV.with(|e| e.borrow_mut().push("drop"));
    }
}
#[test]
fn a_streaming_handler_refused_its_body_hears_the_close() {
    let (tx, rx) = std::sync::mpsc::channel();
    let srv = TestServer::start(
        move || {
            let tx = tx.clone();
            let l = IOLoop::current();
            fn poll(l: IOLoop, tx: std::sync::mpsc::Sender<Vec<&'static str>>) {
                let l2 = l.clone();
                l.call_later(Duration::from_millis(50), move || {
                    let _ = tx.send(EV.with(|e| e.borrow().clone()));
                    poll(l2, tx)
                });
            }
            poll(l, tx);
            Application::new().route("/", || Stream1)
        },
        |_| {},
    );
    let mut c = connect(srv.addr);
    c.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n").unwrap();
    let (got, _closed) = read_all(&mut c, Duration::from_secs(2));
    assert!(got.starts_with("HTTP/1.1 413"), "{got:?}");
    std::thread::sleep(Duration::from_millis(300));
    let mut ev = vec![];
    while let Ok(e) = rx.try_recv() {
        ev = e;
    }
    assert!(
        ev.contains(&"close") || ev.contains(&"finish"),
        "handler told nothing: {ev:?}"
    );
}

// `set_async` inside a context of the handler's own: the request's is not
// entered there, and no stale context outlives the method.
thread_local! { static CAUGHT: std::cell::Cell<u32> = const { std::cell::Cell::new(0) }; }
struct Nested;
impl RequestHandler for Nested {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let ctx = squall::stack_context::ExceptionStackContext::new(|_e: &Error| {
            CAUGHT.with(|c| c.set(c.get() + 1));
            true
        });
        ctx.run(|| x.set_async());
        x.finish()
    }
}
struct Later;
impl RequestHandler for Later {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        IOLoop::current().call_later(Duration::from_millis(10), || {
            Err::<(), _>(Error::new(squall::ErrorKind::Timeout, "late"))
        });
        x.write("later");
        Ok(())
    }
}
#[test]
fn set_async_inside_a_nested_context_leaves_no_stale_context() {
    let (tx, rx) = std::sync::mpsc::channel();
    let srv = TestServer::start(
        move || {
            let l = IOLoop::current();
            let l2 = l.clone();
            l.call_later(Duration::from_millis(500), move || {
                let _ = tx.send(CAUGHT.with(|c| c.get()));
                let _ = l2;
            });
            Application::new()
                .route("/n", || Nested)
                .route("/l", || Later)
        },
        |_| {},
    );
    let mut c = connect(srv.addr);
    c.write_all(b"GET /n HTTP/1.1\r\nHost: x\r\n\r\nGET /l HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let caught = rx.recv().unwrap();
    assert_eq!(caught, 0, "request /l's error went to request /n's context");
}
