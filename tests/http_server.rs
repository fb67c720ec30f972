//! `HTTPServer` + `Application` through real clients: raw sockets, curl and
//! Python Tornado's `HTTPClient`.

#[path = "common/http.rs"]
mod http_kit;

#[path = "common/peers.rs"]
mod need;
use need::Peer;
use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_kit::{closed_within, connect, raw_request, read_reply, run, TestServer};
use squall::gen::{self, Generator, ResultCallback, Resume, Step, Task};
use squall::web::{Application, Exchange, HTTPError, RequestHandler};
use squall::{Error, IOLoop};

struct Hello;
impl RequestHandler for Hello {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write("Hello, world");
        Ok(())
    }
}

/// Echoes the body (POST/PUT) or the query argument `name` (GET).
struct Echo;
impl RequestHandler for Echo {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let name = x.request().get_query_argument("name").unwrap_or_default();
        x.set_header("Content-Type", "text/plain")?;
        x.write(format!("name={name}"));
        Ok(())
    }
    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_header("Content-Type", "application/octet-stream")?;
        x.write(x.request().body());
        Ok(())
    }
    fn put(&mut self, x: &Exchange) -> Result<(), Error> {
        self.post(x)
    }
}

struct User;
impl RequestHandler for User {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let id = x.request().path_arg("id").unwrap_or("?").to_owned();
        x.write(format!("user {id}"));
        Ok(())
    }
}

struct Panics;
impl RequestHandler for Panics {
    fn get(&mut self, _: &Exchange) -> Result<(), Error> {
        panic!("handler bug");
    }
    fn post(&mut self, _: &Exchange) -> Result<(), Error> {
        Err(Error::other("handler error"))
    }
}

/// Tornado's `raise HTTPError(403)`, and a status that is not one.
struct Refuses;
impl RequestHandler for Refuses {
    fn get(&mut self, _: &Exchange) -> Result<(), Error> {
        Err(HTTPError::new(403).log_message("not you").into())
    }
    fn post(&mut self, _: &Exchange) -> Result<(), Error> {
        Err(HTTPError::new(1000).into())
    }
}

/// Starts a chunked response, then panics: the connection must close.
struct PanicsLate;
impl RequestHandler for PanicsLate {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write("partial");
        drop(x.flush());
        panic!("late bug");
    }
}

/// Finishes from a timeout, 50 ms later.
struct Async;
impl RequestHandler for Async {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_async();
        let x = x.clone();
        IOLoop::current().call_later(Duration::from_millis(50), move || {
            x.write(format!("async {}", x.request().path()));
            x.finish()
        });
        Ok(())
    }
}

/// Streams three chunks, one per flush.
struct Stream;
impl RequestHandler for Stream {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_async();
        x.write("one,");
        drop(x.flush());
        let x = x.clone();
        IOLoop::current().call_later(Duration::from_millis(20), move || {
            x.write("two,");
            drop(x.flush());
            x.write("three");
            x.finish()
        });
        Ok(())
    }
}

/// Article 2: `yield gen.Task(self.method_while)` under `gen.engine`.
enum Get {
    Start(Exchange),
    Waiting(Exchange),
    Done,
}
impl Generator for Get {
    type Output = ();
    fn resume(&mut self, input: Resume) -> Step<()> {
        match std::mem::replace(self, Get::Done) {
            Get::Start(x) => {
                *self = Get::Waiting(x);
                Step::wait(Task::new(|cb: ResultCallback| {
                    IOLoop::current().call_later(Duration::from_millis(10), move || cb.call(7i32));
                }))
            }
            Get::Waiting(x) => {
                let v: i32 = match input.into_result() {
                    Ok(v) => v.unwrap_or_default(),
                    Err(e) => return Step::Return(Err(e)),
                };
                x.write(format!("engine {v}"));
                Step::Return(x.finish())
            }
            Get::Done => Step::Return(Ok(())),
        }
    }
}
struct Engine;
impl RequestHandler for Engine {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_async();
        gen::engine(Get::Start(x.clone()), |r: Result<(), Error>| r);
        Ok(())
    }
}

/// A coroutine's future finishes the response.
struct Coroutine;
impl RequestHandler for Coroutine {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let x2 = x.clone();
        let mut step = 0;
        let future = gen::coroutine(gen::from_fn((), move |_, input: Resume| {
            step += 1;
            match step {
                1 => Step::wait(gen::sleep(Duration::from_millis(10))),
                _ => {
                    if let Resume::Error(e) = input {
                        return Step::Return(Err(e));
                    }
                    x2.write("coroutine done");
                    Step::Return(Ok(()))
                }
            }
        }));
        x.finish_on(&future);
        Ok(())
    }
}

static CLOSED: AtomicUsize = AtomicUsize::new(0);
static FINISHED: AtomicUsize = AtomicUsize::new(0);

/// Never finishes; counts on_connection_close.
struct Hang;
impl RequestHandler for Hang {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_async();
        Ok(())
    }
    fn on_connection_close(&mut self) {
        CLOSED.fetch_add(1, Ordering::SeqCst);
    }
    fn on_finish(&mut self) {
        FINISHED.fetch_add(1, Ordering::SeqCst);
    }
}

struct Redirect;
impl RequestHandler for Redirect {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.redirect("/")?;
        Ok(())
    }
}

struct Forbidden;
impl RequestHandler for Forbidden {
    fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
        x.send_error(403);
        Ok(())
    }
    fn get(&mut self, _: &Exchange) -> Result<(), Error> {
        panic!("prepare finished the response; get must not run");
    }
}

/// Answers with the request's `X-Name` header.
struct HeaderEcho;
impl RequestHandler for HeaderEcho {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let name = x.request().headers().get("X-Name").unwrap_or("-");
        x.write(format!("x-name={name}"));
        Ok(())
    }
}

fn app() -> Application {
    Application::new()
        .route("/", || Hello)
        .route("/header", || HeaderEcho)
        .route("/echo", || Echo)
        .route("/user/{id}", || User)
        .route("/panic", || Panics)
        .route("/panic_late", || PanicsLate)
        .route("/async", || Async)
        .route("/stream", || Stream)
        .route("/engine", || Engine)
        .route("/coroutine", || Coroutine)
        .route("/hang", || Hang)
        .route("/redirect", || Redirect)
        .route("/forbidden", || Forbidden)
        .route("/refuses", || Refuses)
}

fn server() -> TestServer {
    server_with_idle(Duration::from_millis(500))
}

fn server_with_idle(idle: Duration) -> TestServer {
    TestServer::start(app, move |s| {
        s.set_max_header_size(4096);
        s.set_max_body_size(1 << 20);
        s.set_header_timeout(Duration::from_millis(300));
        s.set_body_timeout(Duration::from_millis(300));
        s.set_idle_timeout(idle);
    })
}

fn get(server: &TestServer, path: &str) -> http_kit::Reply {
    raw_request(
        server.addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .unwrap_or_else(|| panic!("no reply to {path}"))
}

/// The `Date` of each response is the wall-clock second it was answered
/// in, over several seconds of one keep-alive connection: with and without
/// the blocking log, whose clock readings the `Date` cache reuses.
#[test]
fn date_follows_the_wall_clock() {
    for blocking_log in [false, true] {
        let s = TestServer::start(app, move |_| {
            if blocking_log {
                IOLoop::current().set_blocking_log_threshold(Some(Duration::from_secs(5)));
            }
        });
        let mut conn = connect(s.addr);
        let mut buf = Vec::new();
        let mut dates = std::collections::BTreeSet::new();
        let until = Instant::now() + Duration::from_millis(2300);
        while Instant::now() < until {
            let before = std::time::SystemTime::now();
            conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let r = read_reply(&mut conn, &mut buf, false).expect("reply");
            let after = std::time::SystemTime::now();
            let date = r.header("Date").expect("a Date header");
            let expected = [before, after].map(squall::httputil::format_timestamp);
            assert!(
                expected.contains(&date),
                "Date {date:?} is neither {expected:?} (blocking log {blocking_log})"
            );
            dates.insert(date);
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(dates.len() >= 2, "{dates:?}");
    }
}

#[test]
fn routes_statuses_and_headers() {
    let s = server();
    let r = get(&s, "/");
    assert_eq!((r.status, r.text().as_str()), (200, "Hello, world"));
    assert_eq!(r.header("Server").as_deref(), Some("squall"));
    assert!(r.header("Date").unwrap().ends_with(" GMT"));
    assert_eq!(r.header("Content-Length").as_deref(), Some("12"));
    assert_eq!(get(&s, "/user/42").text(), "user 42");
    assert_eq!(get(&s, "/user/a%20b").text(), "user a b");
    assert_eq!(get(&s, "/echo?name=J%C3%BCrgen+M").text(), "name=Jürgen M");
    assert_eq!(get(&s, "/nowhere").status, 404);
    assert_eq!(get(&s, "/user/").status, 404);
    let r = raw_request(s.addr, b"DELETE /echo HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(r.status, 405);
    let r = raw_request(s.addr, b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(r.status, 405);
    let r = get(&s, "/redirect");
    assert_eq!(
        (r.status, r.header("Location").as_deref()),
        (302, Some("/"))
    );
    assert_eq!(get(&s, "/forbidden").status, 403);
}

#[test]
fn handler_panic_and_error_give_500_and_the_server_goes_on() {
    let s = server();
    let r = get(&s, "/panic");
    assert_eq!(r.status, 500);
    assert!(r.text().contains("500: Internal Server Error"));
    let r = raw_request(
        s.addr,
        b"POST /panic HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 500);
    // The response had started: the connection closes, after the partial body.
    let mut conn = connect(s.addr);
    conn.write_all(b"GET /panic_late HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    let _ = std::io::Read::read_to_end(&mut conn, &mut raw);
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.contains("partial"), "{raw}");
    assert!(
        !raw.ends_with("0\r\n\r\n"),
        "a cut-short response must not look complete"
    );
    assert_eq!(get(&s, "/").status, 200);
}

/// An `HTTPError` from a handler answers its status, with the error page,
/// and never shows its log message; an invalid status answers 500.
#[test]
fn http_error_answers_its_status() {
    let s = server();
    let r = get(&s, "/refuses");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("403: Forbidden"), "{}", r.text());
    assert!(!r.text().contains("not you"));
    let r = raw_request(
        s.addr,
        b"POST /refuses HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(get(&s, "/").status, 200);
}

#[test]
fn asynchronous_handlers_finish_later() {
    let s = server();
    let t = Instant::now();
    let r = get(&s, "/async");
    assert_eq!(r.text(), "async /async");
    assert!(t.elapsed() >= Duration::from_millis(45));
    assert_eq!(get(&s, "/engine").text(), "engine 7");
    assert_eq!(get(&s, "/coroutine").text(), "coroutine done");
    let r = get(&s, "/stream");
    assert_eq!(r.header("Transfer-Encoding").as_deref(), Some("chunked"));
    assert_eq!(r.text(), "one,two,three");
    // HEAD of a streamed response: headers only, and the connection goes on.
    let mut conn = connect(s.addr);
    conn.write_all(b"HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let head = read_reply(&mut conn, &mut buf, true).unwrap();
    // No payload header for HEAD (as Tornado): neither framing is sent.
    assert_eq!(head.header("Transfer-Encoding"), None);
    assert_eq!(
        read_reply(&mut conn, &mut buf, false).unwrap().text(),
        "Hello, world"
    );
    // HTTP/1.0 cannot chunk: the body ends with the connection.
    let r = raw_request(s.addr, b"GET /stream HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(r.text(), "one,two,three");
    assert!(r.header("Transfer-Encoding").is_none());
}

#[test]
fn on_connection_close_runs_when_the_client_leaves() {
    let s = server();
    let before = CLOSED.load(Ordering::SeqCst);
    {
        let mut conn = connect(s.addr);
        conn.write_all(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = Instant::now();
    while CLOSED.load(Ordering::SeqCst) == before && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(CLOSED.load(Ordering::SeqCst), before + 1);
    assert!(FINISHED.load(Ordering::SeqCst) >= 1);
}

#[test]
fn keep_alive_pipelining_in_order_and_http10() {
    let s = server();
    let mut conn = connect(s.addr);
    // The async one first: the others wait for it, answers stay in order.
    conn.write_all(
        b"GET /async HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /user/1 HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
          HEAD / HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /user/2 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    let mut next = |head| read_reply(&mut conn, &mut buf, head).expect("reply");
    assert_eq!(next(false).text(), "async /async");
    assert_eq!(next(false).text(), "user 1");
    assert_eq!(next(false).text(), "hello");
    let head = next(true);
    assert_eq!(head.header("Content-Length").as_deref(), Some("12"));
    assert_eq!(next(false).text(), "user 2");
    // HEAD sent no body: the next reply parsed cleanly above.

    // HTTP/1.0 without keep-alive: closed after the answer.
    let mut conn = connect(s.addr);
    conn.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let r = read_reply(&mut conn, &mut buf, false).unwrap();
    assert_eq!(r.text(), "Hello, world");
    assert!(closed_within(&mut conn, Duration::from_secs(2)));
    // HTTP/1.0 with keep-alive: stays open, says so.
    let mut conn = connect(s.addr);
    let mut buf = Vec::new();
    for _ in 0..2 {
        conn.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let r = read_reply(&mut conn, &mut buf, false).unwrap();
        assert_eq!(r.header("Connection").as_deref(), Some("keep-alive"));
    }
    // HTTP/1.1 with Connection: close.
    let mut conn = connect(s.addr);
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let r = read_reply(&mut conn, &mut buf, false).unwrap();
    assert_eq!(r.header("Connection").as_deref(), Some("close"));
    assert!(closed_within(&mut conn, Duration::from_secs(2)));
}

/// Header values come out of the head as it arrived, in UTF-8: a batch of
/// pipelined heads is checked at once, and what follows bytes that are not
/// UTF-8 (a binary body) value by value; a value that is not UTF-8 is a 400.
#[test]
fn header_values_in_a_pipelined_batch() {
    let s = server();
    let mut conn = connect(s.addr);
    let mut batch = Vec::new();
    batch.extend_from_slice("GET /header HTTP/1.1\r\nHost: x\r\nX-Name: café\r\n\r\n".as_bytes());
    batch.extend_from_slice(b"\r\nGET /header HTTP/1.1\r\nX-Name:  plain \r\nHost: x\r\n\r\n");
    batch.extend_from_slice(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n\xff\x00\xfe\x80",
    );
    batch
        .extend_from_slice("GET /header HTTP/1.1\r\nHost: x\r\nX-Name: after ü\r\n\r\n".as_bytes());
    batch.extend_from_slice(b"GET /header HTTP/1.1\r\nHost: x\r\nX-Name: caf\xe9\r\n\r\n");
    conn.write_all(&batch).unwrap();
    let mut buf = Vec::new();
    let mut next = || read_reply(&mut conn, &mut buf, false).expect("reply");
    assert_eq!(next().text(), "x-name=café");
    assert_eq!(next().text(), "x-name=plain");
    assert_eq!(next().body, b"\xff\x00\xfe\x80");
    assert_eq!(next().text(), "x-name=after ü");
    // obs-text (RFC 9110 5.5): served, the value decoded as Latin-1.
    assert_eq!(next().text(), "x-name=café");
}

#[test]
fn request_bodies_content_length_and_chunked() {
    let s = server();
    let r = raw_request(
        s.addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.text(), "hello, world");
    // A body that arrives in pieces.
    let mut conn = connect(s.addr);
    conn.write_all(b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234")
        .unwrap();
    std::thread::sleep(Duration::from_millis(30));
    conn.write_all(b"56789").unwrap();
    let r = read_reply(&mut conn, &mut Vec::new(), false).unwrap();
    assert_eq!(r.text(), "0123456789");
}

#[test]
fn every_limit_gets_its_status() {
    let s = server();
    let status = |raw: &[u8]| raw_request(s.addr, raw).map(|r| r.status);
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(5000)
    );
    assert_eq!(status(big.as_bytes()), Some(431));
    let many: String = (0..150).map(|i| format!("X-{i}: 1\r\n")).collect();
    assert_eq!(
        status(format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes()),
        Some(431)
    );
    assert_eq!(
        status(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n"),
        Some(413)
    );
    assert_eq!(
        status(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n200000\r\n"),
        Some(413)
    );
    assert_eq!(status(b"GARBAGE\r\n\r\n"), Some(400));
    assert_eq!(status(b"GET / HTTP/1.1\r\nbad header\r\n\r\n"), Some(400));
    assert_eq!(
        status(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n"),
        Some(400)
    );
    assert_eq!(
        status(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
        ),
        Some(400)
    );
    assert_eq!(
        status(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        Some(400)
    );
    assert_eq!(
        status(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
        Some(501)
    );
    // And the server is fine.
    assert_eq!(get(&s, "/").status, 200);
}

#[test]
fn slow_headers_and_idle_connections_are_closed() {
    let s = server();
    // Slow loris: a byte every 50 ms never completes the head in 300 ms.
    let mut conn = connect(s.addr);
    let t = Instant::now();
    let mut closed = false;
    for b in
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter()
    {
        if conn.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        if t.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    assert!(closed || closed_within(&mut conn, Duration::from_secs(2)));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // Idle after a request: closed after about 500 ms.
    let mut conn = connect(s.addr);
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    read_reply(&mut conn, &mut buf, false).unwrap();
    assert!(closed_within(&mut conn, Duration::from_secs(3)));
    let idle = t.elapsed();
    assert!(idle >= Duration::from_millis(400), "{idle:?}");
    // A connection that never sends anything is idle too.
    let mut conn = connect(s.addr);
    assert!(closed_within(&mut conn, Duration::from_secs(3)));
}

/// Clients that hold a connection forever with a trickle of bytes that
/// each look like progress: blank lines before a request line (the header
/// timeout runs from the first of them), and a body at a byte every 100 ms
/// (the body timeout, stretched by the bytes received at the minimum rate,
/// runs out: 408). A body sent at a slow but honest rate passes.
#[test]
fn trickled_blank_lines_and_bodies_are_closed() {
    let s = server_with_idle(Duration::from_secs(30));
    let trickle = |conn: &mut TcpStream, bytes: &[u8], every: Duration| -> Duration {
        let t = Instant::now();
        for b in bytes {
            if conn.write_all(&[*b]).is_err() || t.elapsed() > Duration::from_secs(5) {
                break;
            }
            std::thread::sleep(every);
        }
        t.elapsed()
    };
    let mut conn = connect(s.addr);
    let t = Instant::now();
    let _ = trickle(&mut conn, &b"\r\n".repeat(30), Duration::from_millis(100));
    assert!(closed_within(&mut conn, Duration::from_secs(2)));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    let mut conn = connect(s.addr);
    conn.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n")
        .unwrap();
    let t = Instant::now();
    let _ = trickle(&mut conn, &[b'x'; 50], Duration::from_millis(100));
    let mut buf = Vec::new();
    let reply = read_reply(&mut conn, &mut buf, false);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(reply.map(|r| r.status), Some(408));
    assert!(closed_within(&mut conn, Duration::from_secs(2)));

    // 20 KB at about 40 KB/s: longer than the body timeout, well above
    // the minimum rate.
    let mut conn = connect(s.addr);
    conn.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n")
        .unwrap();
    for _ in 0..20 {
        conn.write_all(&[b'y'; 1000]).unwrap();
        std::thread::sleep(Duration::from_millis(25));
    }
    let reply = read_reply(&mut conn, &mut Vec::new(), false).unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), 20000);
}

#[test]
fn a_thousand_concurrent_keep_alive_clients() {
    let s = server_with_idle(Duration::from_secs(30));
    let mut conns: Vec<_> = (0..1000).map(|_| connect(s.addr)).collect();
    for round in 0..2 {
        for (i, c) in conns.iter_mut().enumerate() {
            write!(c, "GET /user/{i} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        }
        for (i, c) in conns.iter_mut().enumerate() {
            let r = read_reply(c, &mut Vec::new(), false)
                .unwrap_or_else(|| panic!("round {round}: client {i} got no reply"));
            assert_eq!(r.text(), format!("user {i}"));
        }
    }
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

#[test]
fn curl_keep_alive_head_chunked_upload_and_100_continue() {
    if !need::ready(&[Peer::Curl]) {
        return;
    }
    assert!(have("curl"), "curl is needed (.ci/run installs it)");
    let s = server();
    let limit = Duration::from_secs(20);
    // Two URLs, one connection.
    let (ok, out, err) = run(
        Command::new("curl").args(["-sv", &s.url("/"), &s.url("/user/9")]),
        None,
        limit,
    );
    assert!(ok, "{err}");
    assert_eq!(out, "Hello, worlduser 9");
    assert!(err.contains("Re-using existing connection"), "{err}");
    // HEAD.
    let (ok, out, _) = run(Command::new("curl").args(["-sI", &s.url("/")]), None, limit);
    assert!(ok);
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    assert!(out.contains("Content-Length: 12"), "{out}");
    // A chunked upload from stdin.
    let body: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let (ok, out, err) = run(
        Command::new("curl").args([
            "-sv",
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            "@-",
            &s.url("/echo"),
        ]),
        Some(&body),
        limit,
    );
    assert!(ok, "{err}");
    assert!(err.contains("Transfer-Encoding: chunked"), "{err}");
    assert_eq!(out.as_bytes(), &body[..]);
    // Expect: 100-continue is answered before curl sends the body.
    let (ok, out, err) = run(
        Command::new("curl").args([
            "-sv",
            "-H",
            "Expect: 100-continue",
            "--expect100-timeout",
            "10",
            "--data-binary",
            "@-",
            &s.url("/echo"),
        ]),
        Some(&body),
        limit,
    );
    assert!(ok, "{err}");
    assert!(err.contains("HTTP/1.1 100 Continue"), "{err}");
    assert_eq!(out.len(), body.len());
}

const TORNADO_CLIENT: &str = r#"
import sys
from tornado.httpclient import HTTPClient, HTTPClientError
base = sys.argv[1]
c = HTTPClient()
r = c.fetch(base + "/")
print(r.code, r.body.decode(), r.headers["Server"])
r = c.fetch(base + "/echo", method="POST", body=b"x" * 70000)
print(r.code, len(r.body))
print(c.fetch(base + "/user/tornado").body.decode())
print(c.fetch(base + "/stream").body.decode())
print(c.fetch(base + "/engine").body.decode())
try:
    c.fetch(base + "/nope")
except HTTPClientError as e:
    print(e.code)
try:
    c.fetch(base + "/panic")
except HTTPClientError as e:
    print(e.code)
print(c.fetch(base + "/redirect").body.decode())
"#;

#[test]
fn python_tornado_http_client() {
    if !need::ready(&[Peer::Tornado]) {
        return;
    }
    let s = server();
    let (ok, out, err) = run(
        Command::new(http_kit::python()).args(["-c", TORNADO_CLIENT, &s.url("")]),
        None,
        Duration::from_secs(30),
    );
    assert!(
        ok,
        "python3 with tornado is needed (.ci/run installs it): {err}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "200 Hello, world squall",
            "200 70000",
            "user tornado",
            "one,two,three",
            "engine 7",
            "404",
            "500",
            "Hello, world",
        ],
        "{err}"
    );
}

#[test]
fn connections_leave_no_handler_or_timeout_behind() {
    let s = server_with_idle(Duration::from_secs(30));
    let (handlers, timers) = s.loop_stats();
    assert_eq!((handlers, timers), (1, 0), "just the listener");
    {
        // Every way a connection ends: keep-alive then client close, an
        // error answer, a panic mid-response, a client leaving a pending
        // response, HTTP/1.0.
        let mut a = connect(s.addr);
        a.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        read_reply(&mut a, &mut Vec::new(), false).unwrap();
        let _ = raw_request(s.addr, b"GARBAGE\r\n\r\n");
        let _ = raw_request(s.addr, b"GET /panic_late HTTP/1.1\r\nHost: x\r\n\r\n");
        let _ = raw_request(s.addr, b"GET / HTTP/1.0\r\n\r\n");
        let mut h = connect(s.addr);
        h.write_all(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let (handlers, _) = s.loop_stats();
        assert!(handlers >= 3, "{handlers}");
    }
    let t = Instant::now();
    loop {
        let stats = s.loop_stats();
        if stats == (1, 0) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "left behind: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
