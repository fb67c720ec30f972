//! The HTTP client's gzip (`HTTPRequest::decompress_response`, Tornado's
//! httpclient_test.py `test_gzip` and `test_invalid_gzip`): against
//! squall's `compress_response`, Python Tornado's, and answers of our own
//! (bombs, corrupt bodies); and Tornado's client against squall, both ways.

#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;

#[allow(dead_code)]
#[path = "common/gzip.rs"]
mod gzip_kit;

#[path = "common/peers.rs"]
mod need;

use std::process::Command;
use std::time::Duration;

use gzip_kit::*;
use http_kit::{python, python_server, run, TestServer};
use need::Peer;
use squall::http::{HTTPConnection, HTTPServerRequest};
use squall::httpclient::{ClientConfig, HTTPClient, HTTPRequest};
use squall::httputil::HTTPHeaders;
use squall::{ErrorKind, IOLoop};

const LIMIT: Duration = Duration::from_secs(60);

fn client() -> HTTPClient {
    HTTPClient::new().unwrap()
}

#[test]
fn the_client_asks_for_gzip_and_decodes_it() {
    let s = server();
    let c = client();
    let r = c.fetch(s.url("/")).unwrap();
    assert_eq!(r.text(), long_body());
    assert_eq!(r.headers.get("Content-Encoding"), None);
    assert_eq!(r.headers.get("X-Consumed-Content-Encoding"), Some("gzip"));
    // What it sent.
    let r = c.fetch(s.url("/echo")).unwrap();
    assert!(r.text().contains("Accept-Encoding=gzip\n"), "{}", r.text());
    // A flushed (chunked) gzipped answer.
    let r = c.fetch(s.url("/pieces")).unwrap();
    assert_eq!(r.text(), pieces_body());
    assert_eq!(r.headers.get("X-Consumed-Content-Encoding"), Some("gzip"));
    // The caller's own Accept-Encoding is kept.
    let r = c
        .fetch(HTTPRequest::new(s.url("/")).header("Accept-Encoding", "identity"))
        .unwrap();
    assert_eq!(r.headers.get("X-Consumed-Content-Encoding"), None);
    assert_eq!(r.text(), long_body());
    // use_gzip(false), Tornado's old name: none asked for.
    let r = c
        .fetch(HTTPRequest::new(s.url("/echo")).use_gzip(false))
        .unwrap();
    assert!(r.text().contains("Accept-Encoding=-\n"), "{}", r.text());
}

#[test]
fn decompress_response_false_keeps_the_body_as_it_came() {
    // Tornado's test_gzip: asked for by hand, left compressed.
    let s = server();
    let r = client()
        .fetch(
            HTTPRequest::new(s.url("/"))
                .decompress_response(false)
                .header("Accept-Encoding", "gzip"),
        )
        .unwrap();
    assert_eq!(r.headers.get("Content-Encoding"), Some("gzip"));
    assert_ne!(r.body, long_body().as_bytes());
    assert_eq!(gunzip(&r.body), long_body().as_bytes());
}

/// Answers with a fixed `Content-Encoding: gzip` body of its own.
fn raw_gzip_server(body: Vec<u8>, chunked: bool) -> TestServer {
    TestServer::start(
        move || {
            move |_req: &HTTPServerRequest, conn: &HTTPConnection| {
                let mut headers = HTTPHeaders::new();
                headers.add("Content-Encoding", "gzip");
                headers.add("Content-Type", "text/plain");
                if chunked {
                    conn.write_headers(200, &headers)?;
                    for piece in body.chunks(1000) {
                        conn.write(piece)?;
                    }
                    conn.finish()
                } else {
                    conn.write_response(200, &headers, &body)
                }
            }
        },
        |_| {},
    )
}

#[test]
fn the_client_refuses_a_gzip_bomb_and_corrupt_gzip() {
    let c = HTTPClient::with_config(ClientConfig::new().max_body_size(1 << 20)).unwrap();
    for chunked in [false, true] {
        let s = raw_gzip_server(gzip(&vec![0u8; 10 << 20]), chunked);
        let err = c.fetch(s.url("/")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::HttpProtocol, "{err}");
        assert!(err.to_string().contains("max_body_size"), "{err}");
    }
    // Tornado's test_invalid_gzip: trailing garbage after the member.
    let text: String = (0..9000).map(|i| format!("Hello World {i}\n")).collect();
    let mut body = gzip(&text.as_bytes()[..149_051]);
    body.push(0);
    let s = raw_gzip_server(body, false);
    let err = c.fetch(s.url("/")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::HttpProtocol, "{err}");
    assert!(err.to_string().contains("not valid gzip"), "{err}");
    // An empty gzip body (a HEAD-like answer) is an empty body.
    let s = raw_gzip_server(Vec::new(), false);
    let r = c.fetch(s.url("/")).unwrap();
    assert!(r.body.is_empty());
}

#[test]
fn the_client_decodes_python_tornado_compress_response() {
    if !need::ready(&[Peer::Tornado]) {
        return;
    }
    let (mut child, port) = python_server(
        r#"
import asyncio
from tornado.web import Application, RequestHandler
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

class Whole(RequestHandler):
    def get(self):
        self.set_header("Content-Type", "text/plain")
        self.write("tornado " * 1000)

class Streamed(RequestHandler):
    async def get(self):
        self.set_header("Content-Type", "text/plain")
        for i in range(5):
            self.write(("piece %d " % i) * 300)
            await self.flush()

class Upload(RequestHandler):
    def post(self):
        self.write(self.request.body)

async def main():
    sockets = bind_sockets(0, "127.0.0.1")
    app = Application([("/", Whole), ("/stream", Streamed), ("/upload", Upload)], compress_response=True)
    HTTPServer(app, decompress_request=True).add_sockets(sockets)
    print(sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"#,
    );
    let base = format!("http://127.0.0.1:{port}");
    let c = client();
    let whole = c.fetch(format!("{base}/"));
    let streamed = c.fetch(format!("{base}/stream"));
    let raw = c.fetch(
        HTTPRequest::new(format!("{base}/"))
            .decompress_response(false)
            .header("Accept-Encoding", "gzip"),
    );
    let _ = child.kill();
    let _ = child.wait();
    let whole = whole.unwrap();
    assert_eq!(whole.text(), "tornado ".repeat(1000));
    assert_eq!(
        whole.headers.get("X-Consumed-Content-Encoding"),
        Some("gzip")
    );
    let streamed = streamed.unwrap();
    let want: String = (0..5).map(|i| format!("piece {i} ").repeat(300)).collect();
    assert_eq!(streamed.text(), want);
    assert_eq!(
        streamed.headers.get("X-Consumed-Content-Encoding"),
        Some("gzip")
    );
    let raw = raw.unwrap();
    assert_eq!(raw.headers.get("Content-Encoding"), Some("gzip"));
    assert_eq!(gunzip(&raw.body), "tornado ".repeat(1000).as_bytes());
}

#[test]
fn python_tornado_client_decodes_squall_and_posts_gzip_to_it() {
    if !need::ready(&[Peer::Tornado]) {
        return;
    }
    let s = TestServer::start(|| app(true), |server| server.set_decompress_request(true));
    let script = r#"
import gzip, sys
from tornado.httpclient import AsyncHTTPClient
from tornado.ioloop import IOLoop

base, long_body, pieces = sys.argv[1], sys.argv[2], sys.argv[3]

async def main():
    c = AsyncHTTPClient()
    for path, want in (("/", long_body), ("/pieces", pieces)):
        r = await c.fetch(base + path, request_timeout=20)
        assert r.headers.get("X-Consumed-Content-Encoding") == "gzip", r.headers
        assert r.headers["Vary"] == "Accept-Encoding", r.headers
        assert r.body.decode() == want, (path, len(r.body))
    r = await c.fetch(base + "/echo", method="POST", body=gzip.compress(b"from tornado"),
                      headers={"Content-Encoding": "gzip"}, decompress_response=False,
                      request_timeout=20)
    assert r.body.endswith(b"\nfrom tornado"), r.body
    assert b"X-Consumed-Content-Encoding=gzip\n" in r.body, r.body
    print("ALL OK")

IOLoop.current().run_sync(main, timeout=40)
"#;
    let (ok, out, err) = run(
        Command::new(python()).args(["-c", script, &s.url(""), &long_body(), &pieces_body()]),
        None,
        LIMIT,
    );
    assert!(ok && out.contains("ALL OK"), "{out}\n{err}");
}

#[test]
fn async_client_on_a_loop_decodes_too() {
    let s = server();
    let url = s.url("/pieces");
    let io_loop = IOLoop::new().unwrap();
    let r = io_loop
        .run_sync(
            move || squall::httpclient::AsyncHTTPClient::new().fetch(url.as_str()),
            Some(Duration::from_secs(20)),
        )
        .unwrap();
    assert_eq!(r.text(), pieces_body());
}
