//! `HTTPServer` + `Application` as users meet it: through real clients —
//! curl, Python's requests, httpx, aiohttp and Tornado's `AsyncHTTPClient`,
//! `nc -N` (or a Python socket) for a half-close — and raw sockets for the
//! malformed requests no client library will send. Every client is a
//! subprocess with a hard time limit (`http_kit::run` kills it), and every
//! Python script sets its own timeouts below that limit.

#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;

#[path = "common/peers.rs"]
mod need;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use http_kit::{closed_within, connect, python, raw_request, read_reply, run, TestServer};
use need::Peer;
use squall::web::{Application, Exchange, RequestHandler};
use squall::{Error, ErrorKind, IOLoop};

/// The hard limit on one client subprocess.
const LIMIT: Duration = Duration::from_secs(60);

struct Hello;
impl RequestHandler for Hello {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write("Hello, world");
        Ok(())
    }
}

/// Echoes the body, and says in `X-Framing` how it came: `chunked` or
/// `length:N`, so a test knows the client really sent what it meant to.
struct Echo;
impl RequestHandler for Echo {
    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        let headers = x.request().headers();
        let framing = match (
            headers.get("Transfer-Encoding"),
            headers.get("Content-Length"),
        ) {
            (Some(te), _) => te.to_ascii_lowercase(),
            (None, Some(n)) => format!("length:{n}"),
            (None, None) => "none".to_owned(),
        };
        x.set_header("X-Framing", framing)?;
        x.set_header("Content-Type", "application/octet-stream")?;
        x.write(x.request().body());
        Ok(())
    }
    fn put(&mut self, x: &Exchange) -> Result<(), Error> {
        self.post(x)
    }
}

/// The client's address: the same port twice means the same connection.
struct WhoAmI;
impl RequestHandler for WhoAmI {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write(x.request().remote_addr().to_string());
        Ok(())
    }
}

/// A 204 whose handler writes a body anyway: the body must be dropped, not
/// sent ahead of the next response on the connection.
struct NoContent;
impl RequestHandler for NoContent {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_status(204);
        x.write("leaked-204-body");
        Ok(())
    }
}

/// A 304, likewise with a body that must not reach the wire.
struct NotModified;
impl RequestHandler for NotModified {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_status(304);
        x.set_header("ETag", "\"v1\"")?;
        x.write("leaked-304-body");
        Ok(())
    }
}

/// Sets its own `Content-Length`: it must go out once.
struct OwnLength;
impl RequestHandler for OwnLength {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_header("Content-Length", "5")?;
        x.write("12345");
        Ok(())
    }
}

/// Streams three pieces, flushed one by one, 30 ms apart (chunked).
struct Stream;
impl RequestHandler for Stream {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_async();
        x.write("one,");
        drop(x.flush());
        let x = x.clone();
        IOLoop::current().call_later(Duration::from_millis(30), move || {
            x.write("two,");
            drop(x.flush());
            let x2 = x.clone();
            IOLoop::current().call_later(Duration::from_millis(30), move || {
                x2.write("three");
                let _ = x2.finish();
            });
        });
        Ok(())
    }
}

/// Copies the query argument `v` into a response header: with `?` an
/// invalid value fails the handler (500); nothing of it may be sent.
struct InjectHeader;
impl RequestHandler for InjectHeader {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let v = x.request().get_query_argument("v").unwrap_or_default();
        x.set_header("X-Echo", v)?;
        x.write("echoed");
        Ok(())
    }
}

/// Redirects to the query argument `to`; an invalid target is a 400.
struct InjectRedirect;
impl RequestHandler for InjectRedirect {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let to = x.request().get_query_argument("to").unwrap_or_default();
        match x.redirect(&to) {
            Err(e) if e.kind() == ErrorKind::InvalidArgument => {
                x.send_error(400);
                Ok(())
            }
            other => other,
        }
    }
}

/// The size of `/big`'s body: 4 MiB.
const BIG: usize = 4 << 20;

/// `/big`'s body: 16-byte lines, each its own offset (`000000000000016\n`),
/// so a lost or repeated piece shows where.
fn big_body() -> Vec<u8> {
    let mut body = Vec::with_capacity(BIG);
    for i in 0..BIG / 16 {
        body.extend_from_slice(format!("{:015}\n", i * 16).as_bytes());
    }
    body
}

struct Big;
impl RequestHandler for Big {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_header("Content-Type", "text/plain")?;
        x.write(big_body());
        Ok(())
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
        .route("/echo", || Echo)
        .route("/whoami", || WhoAmI)
        .route("/no_content", || NoContent)
        .route("/not_modified", || NotModified)
        .route("/own_length", || OwnLength)
        .route("/stream", || Stream)
        .route("/inject", || InjectHeader)
        .route("/inject_redirect", || InjectRedirect)
        .route("/big", || Big)
        .route("/header", || HeaderEcho)
}

fn server() -> TestServer {
    TestServer::start(app, |s| {
        s.set_max_body_size(8 << 20);
        s.set_header_timeout(Duration::from_secs(10));
        s.set_idle_timeout(Duration::from_secs(30));
    })
}

/// Runs a Python client script with the server's base URL; it asserts on
/// its own and prints `ALL OK` last.
fn python_client(s: &TestServer, script: &str) {
    let (ok, out, err) = run(
        Command::new(python()).args(["-c", script, &s.url("")]),
        None,
        LIMIT,
    );
    assert!(
        ok && out.trim_end().ends_with("ALL OK"),
        "client failed:\nstdout:\n{out}\nstderr:\n{err}"
    );
}

// --- 1. The ordinary things, through each client ---------------------------

/// `-w` after each URL: status, new connections made, and the size read.
const CURL_W: &str = "|%{http_code} %{num_connects} %{size_download}\n";

#[test]
fn curl_get_post_head_and_keep_alive_across_204_304() {
    if !need::ready(&[Peer::Curl]) {
        return;
    }
    let s = server();
    // One curl, one connection, several requests: the bodies of the 204 and
    // 304 must not be sent, or curl sees garbage and reconnects.
    let (ok, out, err) = run(
        Command::new("curl").args([
            "-sv",
            "--max-time",
            "30",
            "-w",
            CURL_W,
            &s.url("/"),
            &s.url("/no_content"),
            &s.url("/not_modified"),
            &s.url("/own_length"),
            &s.url("/stream"),
            &s.url("/"),
        ]),
        None,
        LIMIT,
    );
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "Hello, world|200 1 12\n\
         |204 0 0\n\
         |304 0 0\n\
         12345|200 0 5\n\
         one,two,three|200 0 13\n\
         Hello, world|200 0 12\n",
        "{err}"
    );
    assert_eq!(
        err.matches("Re-using existing connection").count(),
        5,
        "{err}"
    );
    assert!(!err.contains("leaked"), "{err}");
    // The handler's own Content-Length went out once; the stream was chunked.
    let own: Vec<&str> = err
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("< content-length:"))
        .collect();
    assert_eq!(
        own,
        [
            "< Content-Length: 12",
            "< Content-Length: 5",
            "< Content-Length: 12"
        ],
        "{err}"
    );
    assert!(err.contains("< Transfer-Encoding: chunked"), "{err}");

    // HEAD: the headers of a GET, no body.
    let (ok, out, err) = run(
        Command::new("curl").args(["-sI", "--max-time", "30", &s.url("/")]),
        None,
        LIMIT,
    );
    assert!(ok, "{err}");
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("Content-Length: 12\r\n"), "{out}");

    // POST with a Content-Length, then a chunked upload from stdin.
    let body: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    for chunked in [false, true] {
        let mut cmd = Command::new("curl");
        cmd.args(["-sv", "--max-time", "30", "--data-binary", "@-"]);
        if chunked {
            cmd.args(["-H", "Transfer-Encoding: chunked"]);
        }
        let (ok, out, err) = run(cmd.arg(s.url("/echo")), Some(&body), LIMIT);
        assert!(ok, "{err}");
        let framing = if chunked {
            "< X-Framing: chunked".to_owned()
        } else {
            format!("< X-Framing: length:{}", body.len())
        };
        assert!(err.contains(&framing), "{framing} in {err}");
        assert_eq!(out.as_bytes(), &body[..], "chunked: {chunked}");
    }
}

const REQUESTS_CLIENT: &str = r#"
import sys, requests
base = sys.argv[1]
T = 20
s = requests.Session()

def whoami():
    r = s.get(base + "/whoami", timeout=T)
    assert r.status_code == 200, r
    return r.text

me = whoami()
assert whoami() == me, "a Session reuses its connection"

r = s.get(base + "/", timeout=T)
assert (r.status_code, r.text) == (200, "Hello, world"), (r.status_code, r.text)
assert r.headers["Server"] == "squall", r.headers

body = bytes(range(256)) * 400
r = s.post(base + "/echo", data=body, timeout=T)
assert r.status_code == 200 and r.content == body, r
assert r.headers["X-Framing"] == "length:%d" % len(body), r.headers

def pieces():
    for i in range(64):
        yield bytes([97 + i % 26]) * 1500
r = s.post(base + "/echo", data=pieces(), timeout=T)
assert r.headers["X-Framing"] == "chunked", r.headers
assert r.content == b"".join(pieces()), len(r.content)

r = s.head(base + "/", timeout=T)
assert (r.status_code, r.content) == (200, b""), r
assert r.headers["Content-Length"] == "12", r.headers

r = s.get(base + "/no_content", timeout=T)
assert (r.status_code, r.content) == (204, b""), (r.status_code, r.content)
r = s.get(base + "/not_modified", timeout=T)
assert (r.status_code, r.content) == (304, b""), (r.status_code, r.content)
assert r.headers["ETag"] == '"v1"', r.headers
# Same connection, and a clean next response: nothing of the 204/304 leaked.
r = s.get(base + "/", timeout=T)
assert r.text == "Hello, world", r.text
assert whoami() == me, "the connection survived HEAD, 204 and 304"

r = s.get(base + "/own_length", timeout=T)
assert r.raw.headers.getlist("Content-Length") == ["5"], r.raw.headers
assert r.content == b"12345", r.content

r = s.get(base + "/stream", timeout=T, stream=True)
assert r.headers["Transfer-Encoding"] == "chunked", r.headers
assert b"".join(r.iter_content(None)) == b"one,two,three"
assert whoami() == me
print("ALL OK")
"#;

#[test]
fn python_requests_session() {
    if !need::ready(&[Peer::Requests]) {
        return;
    }
    python_client(&server(), REQUESTS_CLIENT);
}

const HTTPX_CLIENT: &str = r#"
import sys, httpx
base = sys.argv[1]
with httpx.Client(timeout=20) as c:
    def whoami():
        r = c.get(base + "/whoami")
        assert r.status_code == 200, r
        return r.text

    me = whoami()
    assert whoami() == me, "a Client reuses its connection"

    r = c.get(base + "/")
    assert (r.status_code, r.text) == (200, "Hello, world"), r

    body = b"q" * 100000
    r = c.post(base + "/echo", content=body)
    assert r.content == body and r.headers["X-Framing"] == "length:100000", r.headers

    def pieces():
        for i in range(40):
            yield b"%04d" % i * 250
    r = c.post(base + "/echo", content=pieces())
    assert r.headers["X-Framing"] == "chunked", r.headers
    assert r.content == b"".join(pieces())

    r = c.head(base + "/")
    assert (r.status_code, r.content, r.headers["Content-Length"]) == (200, b"", "12"), r

    # h11 refuses a response with bytes it cannot account for.
    for path, code in [("/no_content", 204), ("/not_modified", 304)]:
        r = c.get(base + path)
        assert (r.status_code, r.content) == (code, b""), (path, r.status_code, r.content)
        r = c.get(base + "/")
        assert r.text == "Hello, world", (path, r.text)
    assert whoami() == me

    r = c.get(base + "/own_length")
    assert r.headers.get_list("Content-Length") == ["5"], r.headers
    assert r.content == b"12345"

    with c.stream("GET", base + "/stream") as r:
        assert r.headers["Transfer-Encoding"] == "chunked", r.headers
        got = b"".join(r.iter_raw())
    assert got == b"one,two,three", got
    assert whoami() == me
print("ALL OK")
"#;

#[test]
fn python_httpx_client() {
    if !need::ready(&[Peer::Httpx]) {
        return;
    }
    python_client(&server(), HTTPX_CLIENT);
}

const AIOHTTP_CLIENT: &str = r#"
import sys, asyncio, aiohttp
base = sys.argv[1]

async def main():
    timeout = aiohttp.ClientTimeout(total=20)
    # One connection at most: every request below rides the same one.
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as s:
        async def get(path, method="GET", **kw):
            async with s.request(method, base + path, **kw) as r:
                return r.status, await r.read(), r.headers

        _, me, _ = await get("/whoami")
        assert (await get("/whoami"))[1] == me

        status, body, _ = await get("/")
        assert (status, body) == (200, b"Hello, world"), (status, body)

        payload = b"\x00\xff" * 40000
        status, body, headers = await get("/echo", "POST", data=payload)
        assert body == payload and headers["X-Framing"] == "length:80000", headers

        async def pieces():
            for i in range(30):
                yield b"%03d" % i * 100
        status, body, headers = await get("/echo", "POST", data=pieces())
        assert headers["X-Framing"] == "chunked", headers
        assert body == b"".join([b"%03d" % i * 100 for i in range(30)]), len(body)

        status, body, headers = await get("/", "HEAD")
        assert (status, body, headers["Content-Length"]) == (200, b"", "12"), headers

        for path, code in [("/no_content", 204), ("/not_modified", 304)]:
            status, body, _ = await get(path)
            assert (status, body) == (code, b""), (path, status, body)
            status, body, _ = await get("/")
            assert body == b"Hello, world", (path, body)
        assert (await get("/whoami"))[1] == me

        status, body, headers = await get("/own_length")
        assert headers.getall("Content-Length") == ["5"], headers
        assert body == b"12345"

        async with s.get(base + "/stream") as r:
            assert r.headers["Transfer-Encoding"] == "chunked", r.headers
            got = b""
            async for piece in r.content.iter_any():
                got += piece
        assert got == b"one,two,three", got
        assert (await get("/whoami"))[1] == me

asyncio.run(asyncio.wait_for(main(), 40))
print("ALL OK")
"#;

#[test]
fn python_aiohttp_client() {
    if !need::ready(&[Peer::Aiohttp]) {
        return;
    }
    python_client(&server(), AIOHTTP_CLIENT);
}

const TORNADO_ASYNC_CLIENT: &str = r#"
import sys
from tornado.httpclient import AsyncHTTPClient
from tornado.ioloop import IOLoop
base = sys.argv[1]

async def main():
    c = AsyncHTTPClient()
    kw = dict(request_timeout=20, raise_error=False)
    r = await c.fetch(base + "/", **kw)
    assert (r.code, r.body) == (200, b"Hello, world"), r

    body = b"t" * 150000
    r = await c.fetch(base + "/echo", method="POST", body=body, **kw)
    assert r.body == body and r.headers["X-Framing"] == "length:150000", r.headers

    # No Content-Length with a body_producer: Tornado sends it chunked.
    async def producer(write):
        for i in range(20):
            await write(b"%02d" % i * 500)
    r = await c.fetch(base + "/echo", method="POST", body_producer=producer, **kw)
    assert r.headers["X-Framing"] == "chunked", r.headers
    assert r.body == b"".join(b"%02d" % i * 500 for i in range(20)), len(r.body)

    r = await c.fetch(base + "/", method="HEAD", **kw)
    assert (r.code, r.body, r.headers["Content-Length"]) == (200, b"", "12"), r

    for path, code in [("/no_content", 204), ("/not_modified", 304)]:
        r = await c.fetch(base + path, **kw)
        assert (r.code, r.body) == (code, b""), (path, r.code, r.body)

    r = await c.fetch(base + "/own_length", **kw)
    assert r.headers.get_list("Content-Length") == ["5"], r.headers
    assert r.body == b"12345"

    pieces = []
    r = await c.fetch(base + "/stream", streaming_callback=pieces.append, **kw)
    assert r.code == 200 and b"".join(pieces) == b"one,two,three", pieces

IOLoop.current().run_sync(main, timeout=40)
print("ALL OK")
"#;

#[test]
fn python_tornado_async_http_client() {
    if !need::ready(&[Peer::Tornado]) {
        return;
    }
    python_client(&server(), TORNADO_ASYNC_CLIENT);
}

/// With raw sockets: a 204 and a 304 with handler-written bodies, pipelined
/// with a GET behind each; the bytes after each head are the next response.
#[test]
fn raw_204_and_304_send_no_body_on_keep_alive() {
    let s = server();
    let mut conn = connect(s.addr);
    conn.write_all(
        b"GET /no_content HTTP/1.1\r\nHost: x\r\n\r\n\
          GET / HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /not_modified HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /own_length HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    let r = read_reply(&mut conn, &mut buf, false).unwrap();
    assert_eq!(r.status, 204);
    assert!(r.headers_named("Content-Length").is_empty(), "{}", r.head);
    assert!(
        r.headers_named("Transfer-Encoding").is_empty(),
        "{}",
        r.head
    );
    assert!(
        buf.is_empty() || buf.starts_with(b"HTTP/1.1 200"),
        "{buf:?}"
    );
    assert_eq!(
        read_reply(&mut conn, &mut buf, false).unwrap().text(),
        "Hello, world"
    );
    let r = read_reply(&mut conn, &mut buf, false).unwrap();
    assert_eq!(r.status, 304);
    assert!(
        buf.is_empty() || buf.starts_with(b"HTTP/1.1 200"),
        "{buf:?}"
    );
    let r = read_reply(&mut conn, &mut buf, false).unwrap();
    assert_eq!(r.headers_named("Content-Length"), ["5"], "{}", r.head);
    assert_eq!(r.text(), "12345");
}

// --- 2. Header injection is refused ----------------------------------------

/// The query values that would split the response if copied verbatim.
const INJECTIONS: [&str; 4] = [
    "%0d%0aSet-Cookie:%20evil=1",
    "%0aSet-Cookie:%20evil=1",
    "%0dSet-Cookie:%20evil=1",
    "x%00%0d%0aSet-Cookie:%20evil=1",
];

#[test]
fn header_injection_is_refused_raw() {
    let s = server();
    for inj in INJECTIONS {
        for (path, expected) in [
            (format!("/inject?v={inj}"), 500),
            (format!("/inject_redirect?to=/a{inj}"), 400),
        ] {
            let mut conn = connect(s.addr);
            write!(conn, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut buf = Vec::new();
            let r = read_reply(&mut conn, &mut buf, false)
                .unwrap_or_else(|| panic!("no reply to {path}"));
            assert_eq!(r.status, expected, "{path}: {}", r.head);
            assert!(
                r.headers_named("Set-Cookie").is_empty(),
                "{path}: {}",
                r.head
            );
            assert!(r.headers_named("X-Echo").is_empty(), "{path}: {}", r.head);
            assert!(r.headers_named("Location").is_empty(), "{path}: {}", r.head);
            assert!(!r.head.contains("evil"), "{path}: {}", r.head);
            // The connection goes on after the refused response.
            conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let next = read_reply(&mut conn, &mut buf, false).expect("next reply");
            assert_eq!((next.status, next.text().as_str()), (200, "Hello, world"));
        }
    }
    // A harmless value still goes through.
    let r = raw_request(
        s.addr,
        b"GET /inject?v=hello%20there HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.header("X-Echo").as_deref(), Some("hello there"));
    let r = raw_request(
        s.addr,
        b"GET /inject_redirect?to=/ok HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    assert_eq!(
        (r.status, r.header("Location").as_deref()),
        (302, Some("/ok"))
    );
}

#[test]
fn header_injection_is_refused_curl() {
    if !need::ready(&[Peer::Curl]) {
        return;
    }
    let s = server();
    for inj in INJECTIONS {
        let urls = [
            s.url(&format!("/inject?v={inj}")),
            s.url(&format!("/inject_redirect?to=/a{inj}")),
            s.url("/"),
        ];
        let mut cmd = Command::new("curl");
        cmd.args(["-sv", "--max-time", "30", "-w", CURL_W]);
        for url in &urls {
            // `-o` applies to one URL: once each.
            cmd.args(["-o", "/dev/null", url]);
        }
        let (ok, out, err) = run(&mut cmd, None, LIMIT);
        assert!(ok, "{err}");
        // Status and new connections: the refusals kept the connection.
        assert_eq!(
            out.lines()
                .map(|l| l.rsplit_once(' ').map_or(l, |(a, _)| a))
                .collect::<Vec<_>>(),
            ["|500 1", "|400 0", "|200 0"],
            "{inj}: {out}\n{err}"
        );
        let headers: Vec<&str> = err.lines().filter(|l| l.starts_with("< ")).collect();
        assert!(
            !headers.iter().any(|h| {
                let h = h.to_ascii_lowercase();
                h.starts_with("< set-cookie") || h.starts_with("< x-echo") || h.contains("evil")
            }),
            "{inj}: {headers:#?}"
        );
    }
}

const REQUESTS_INJECTION: &str = r#"
import sys, requests
base = sys.argv[1]
s = requests.Session()
for inj in ["%0d%0aSet-Cookie:%20evil=1", "%0aSet-Cookie:%20evil=1"]:
    r = s.get(base + "/inject?v=" + inj, timeout=20)
    assert r.status_code == 500, r.status_code
    assert "Set-Cookie" not in r.headers and "X-Echo" not in r.headers, r.headers
    r = s.get(base + "/inject_redirect?to=/a" + inj, timeout=20, allow_redirects=False)
    assert r.status_code == 400, r.status_code
    assert "Set-Cookie" not in r.headers and "Location" not in r.headers, r.headers
    assert len(s.cookies) == 0, s.cookies
    assert s.get(base + "/", timeout=20).text == "Hello, world"
print("ALL OK")
"#;

#[test]
fn header_injection_is_refused_requests() {
    if !need::ready(&[Peer::Requests]) {
        return;
    }
    python_client(&server(), REQUESTS_INJECTION);
}

// --- 3. Half-close ---------------------------------------------------------

/// Checks a raw HTTP/1.1 response to `GET /big`: 200, `Content-Length`, and
/// the whole body, byte for byte.
fn check_big_response(raw: &[u8], who: &str) {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{who}: no head in {} bytes", raw.len()))
        + 4;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{who}: {head}");
    assert!(
        head.contains(&format!("Content-Length: {BIG}\r\n")),
        "{who}: {head}"
    );
    let body = &raw[head_end..];
    assert_eq!(body.len(), BIG, "{who}: the body arrived short or long");
    let expected = big_body();
    if let Some(at) = body.iter().zip(&expected).position(|(a, b)| a != b) {
        panic!("{who}: the body differs at byte {at}");
    }
}

/// Whether `nc` knows `-N` (shut the socket down for writing at EOF on
/// stdin): OpenBSD's does; the traditional one does not.
fn nc_has_shutdown_flag() -> bool {
    Command::new("nc").arg("-h").output().is_ok_and(|o| {
        let text = [o.stdout, o.stderr].concat();
        String::from_utf8_lossy(&text).contains("-N")
    })
}

const HALF_CLOSE_CLIENT: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
s.shutdown(socket.SHUT_WR)
got = bytearray()
while True:
    piece = s.recv(1 << 16)
    if not piece:
        break
    got += piece
sys.stdout.buffer.write(got)
"#;

/// The client sends its request and shuts its side down for writing at
/// once (`nc -N`): the server must still send the whole 4 MiB answer, then
/// close.
#[test]
fn half_closed_client_gets_the_whole_4mib_response() {
    if !need::ready(&[Peer::Python]) {
        return;
    }
    let s = server();
    let (host, port) = (s.addr.ip().to_string(), s.addr.port().to_string());
    if nc_has_shutdown_flag() {
        let (ok, out, err) = run(
            Command::new("nc").args(["-N", "-w", "20", &host, &port]),
            Some(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n"),
            LIMIT,
        );
        assert!(ok, "nc: {err}");
        check_big_response(out.as_bytes(), "nc -N");
    } else {
        eprintln!("nc -N not available: the Python socket client only");
    }
    let (ok, out, err) = run(
        Command::new(python()).args(["-c", HALF_CLOSE_CLIENT, &host, &port]),
        None,
        LIMIT,
    );
    assert!(ok, "python: {err}");
    check_big_response(out.as_bytes(), "python shutdown(SHUT_WR)");
    // The server is fine afterwards.
    assert_eq!(
        raw_request(s.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap()
            .text(),
        "Hello, world"
    );
}

// --- 4. obs-text in a header value -----------------------------------------

/// RFC 9110 5.5 allows obs-text (bytes 0x80-0xFF) in field values; Tornado
/// decodes header values as Latin-1 and serves them. `José` in Latin-1.
#[test]
fn obs_text_header_value_is_served() {
    let s = server();
    let r = raw_request(
        s.addr,
        b"GET /header HTTP/1.1\r\nHost: x\r\nX-Name: Jos\xe9\r\n\r\n",
    )
    .expect("a reply");
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(r.text().starts_with("x-name=Jos"), "{}", r.text());
    // And on a keep-alive connection, the next request is unaffected.
    let mut conn = connect(s.addr);
    conn.write_all(
        b"GET /header HTTP/1.1\r\nHost: x\r\nX-Name: \xc0\xff caf\xe9\r\n\r\n\
          GET /header HTTP/1.1\r\nHost: x\r\nX-Name: plain\r\n\r\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_reply(&mut conn, &mut buf, false).unwrap().status, 200);
    assert_eq!(
        read_reply(&mut conn, &mut buf, false).unwrap().text(),
        "x-name=plain"
    );
}

// --- 5. Framing errors: 400 ------------------------------------------------

/// Each request on its own connection must be answered 400, and the
/// connection closed (what follows a broken frame cannot be trusted).
/// Tornado's `HTTPServerRawTest` names are given where a case is theirs.
#[test]
fn invalid_framing_gets_400() {
    let s = server();
    let cases: &[(&str, &[u8])] = &[
        // test_malformed_first_line_response
        ("malformed first line", b"asdf\r\n\r\n"),
        // test_malformed_headers
        ("header without colon", b"GET / HTTP/1.0\r\nasdf\r\n\r\n"),
        // test_invalid_host_header_with_whitespace
        ("Host with a space", b"GET / HTTP/1.0\r\nHost: foo bar\r\n\r\n"),
        // RFC 9112 3.2: an HTTP/1.1 request must carry Host...
        ("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\n\r\n"),
        // ...exactly once.
        ("two Hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        // test_invalid_content_length: "leading plus"
        (
            "Content-Length +10",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +10\r\n\r\n1234567890",
        ),
        (
            "Content-Length 1 0",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1 0\r\n\r\n1234567890",
        ),
        // test_invalid_content_length: "internal underscore", "alphabetic"
        (
            "Content-Length 1_0",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1_0\r\n\r\n1234567890",
        ),
        (
            "Content-Length foo",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: foo\r\n\r\n1234567890",
        ),
        (
            "Content-Length -1",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        ),
        // Two different Content-Lengths (Tornado: "Multiple unequal
        // Content-Lengths").
        (
            "two Content-Lengths",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 10\r\n\r\nok12345678",
        ),
        (
            "Content-Length list 2, 10",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 10\r\n\r\nok12345678",
        ),
        // test_content_length_list_whitespace: only SP/HTAB after a comma.
        (
            "Content-Length 5,\\xa05",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5,\xa05\r\n\r\nhello",
        ),
        // test_chunked_request_body_duplicate_header
        (
            "Transfer-Encoding chunked twice (two headers)",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
              Transfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        ),
        (
            "Transfer-Encoding chunked, chunked",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n\
              2\r\nok\r\n0\r\n\r\n",
        ),
        // test_chunked_request_body_transfer_encoding_and_content_length
        (
            "Transfer-Encoding and Content-Length",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
              Content-Length: 2\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        ),
        // test_chunked_request_body_invalid_size
        (
            "chunk size 1_a",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
              1_a\r\n1234567890abcdef1234567890\r\n0\r\n\r\n",
        ),
        (
            "chunk size ' 5 '",
            // (Spelled out: a `\` line continuation would eat the space.)
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\x205 \r\nhello\r\n0\r\n\r\n",
        ),
        (
            "chunk size +5",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
              +5\r\nhello\r\n0\r\n\r\n",
        ),
        // Chunk lines ended by a bare LF (RFC 9112 7.1: CRLF).
        (
            "chunk lines with bare LF",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\nhello\n0\n\n",
        ),
        (
            "chunk size line with bare LF",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\nhello\r\n0\r\n\r\n",
        ),
        (
            "chunk data ended by bare LF",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\n0\r\n\r\n",
        ),
        (
            "chunk data longer than its size",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
              3\r\nhello\r\n0\r\n\r\n",
        ),
    ];
    let mut failures = Vec::new();
    for (name, raw) in cases {
        let mut conn = connect(s.addr);
        conn.write_all(raw).unwrap();
        // A request behind it, which must not be answered.
        let _ = conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut buf = Vec::new();
        match read_reply(&mut conn, &mut buf, false) {
            Some(r) if r.status == 400 => {
                if !buf.is_empty() || !closed_within(&mut conn, Duration::from_secs(5)) {
                    failures.push(format!("{name}: 400, but the connection went on"));
                }
            }
            Some(r) => failures.push(format!("{name}: {} instead of 400", r.status)),
            None => failures.push(format!("{name}: no reply")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // The server is fine.
    assert_eq!(
        raw_request(s.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap()
            .status,
        200
    );
}
