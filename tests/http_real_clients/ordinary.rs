//! The ordinary things, through each client: curl, requests, httpx,
//! aiohttp, Tornado's AsyncHTTPClient; 204 and 304 send no body on a
//! kept-alive connection.

use super::*;

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
