//! One chunked decoder, one verdict: the same `Transfer-Encoding: chunked`
//! bodies go to squall's server (as request bodies) and to squall's client
//! (as response bodies), and both read or refuse each one alike — both use
//! `httputil::ChunkedDecoder`. A bare LF is never a line end in chunked
//! framing (a size line, the CRLF after data, a trailer line): Tornado 6's
//! `_read_chunked_body` reads to CRLF and checks the two bytes after each
//! chunk, so it refuses the same inputs, which the last test checks against
//! Tornado's own server where Tornado decides the case.

#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;
#[path = "httpclient/kit.rs"]
mod kit;
#[path = "common/peers.rs"]
mod need;
#[path = "httpclient/peers.rs"]
mod peers;

use std::net::SocketAddr;

use http_kit::{python_server, raw_request, TestServer};
use kit::{fetch, setup};
use need::Peer;
use peers::{read_request, reply, RawServer};
use squall::http::{HTTPConnection, HTTPServerRequest};
use squall::httpclient::{AsyncHTTPClient, ClientConfig};
use squall::httputil::HTTPHeaders;
use squall::ErrorKind;

/// A chunked body on the wire, what it decodes to (`None`: refused), and
/// whether Tornado 6 decides it the same way (it refuses every chunk
/// extension and trailer field, which RFC 9112 7.1 has readers accept).
struct Case {
    wire: &'static str,
    body: Option<&'static str>,
    tornado: bool,
}

const fn ok(wire: &'static str, body: &'static str) -> Case {
    Case {
        wire,
        body: Some(body),
        tornado: true,
    }
}

const fn bad(wire: &'static str) -> Case {
    Case {
        wire,
        body: None,
        tornado: true,
    }
}

const CASES: &[Case] = &[
    // Tornado's `test_chunked_request_body`.
    ok("4\r\nfoo=\r\n3\r\nbar\r\n0\r\n\r\n", "foo=bar"),
    ok(
        "0005\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n",
        "hello0123456789",
    ),
    ok("0\r\n\r\n", ""),
    // Line ends inside the data are data: the size says where it ends.
    ok("2\r\n\n\n\r\n0\r\n\r\n", "\n\n"),
    ok("2\r\n\r\n\r\n0\r\n\r\n", "\r\n"),
    // RFC 9112 has these accepted; Tornado refuses them.
    Case {
        wire: "5;ext=1\r\nhello\r\n0\r\n\r\n",
        body: Some("hello"),
        tornado: false,
    },
    Case {
        wire: "5; a = \"q;\"\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n",
        body: Some("hello"),
        tornado: false,
    },
    // A bare LF ending a size line, the data, the last-chunk line, a
    // trailer line or the body.
    bad("5\nhello\r\n0\r\n\r\n"),
    bad("5\r\nhello\n0\r\n\r\n"),
    bad("5\r\nhello\r\n0\n\r\n"),
    Case {
        wire: "5\nhello\n0\n\n",
        body: None,
        // No CRLF at all: Tornado waits for one (up to 64 bytes).
        tornado: false,
    },
    Case {
        wire: "5\r\nhello\r\n0\r\n\n",
        body: None,
        // Tornado waits for a second byte after the LF.
        tornado: false,
    },
    Case {
        wire: "5\r\nhello\r\n0\r\nX: 1\n\r\n",
        body: None,
        tornado: true,
    },
    // Blanks around the size, a sign, a prefix, a non-hex digit
    // (Tornado's `test_chunked_request_body_invalid_size`).
    bad(" 5\r\nhello\r\n0\r\n\r\n"),
    bad("5 \r\nhello\r\n0\r\n\r\n"),
    bad("+5\r\nhello\r\n0\r\n\r\n"),
    bad("0x5\r\nhello\r\n0\r\n\r\n"),
    bad("1_a\r\n1234567890abcdef1234567890\r\n0\r\n\r\n"),
    // Data longer than its size.
    bad("3\r\nhello\r\n0\r\n\r\n"),
];

fn echo_server() -> TestServer {
    TestServer::start(
        || {
            |req: &HTTPServerRequest, conn: &HTTPConnection| {
                conn.write_response(200, &HTTPHeaders::new(), req.body())
            }
        },
        |_| {},
    )
}

/// What a server at `addr` made of `case` as a request body: the echoed
/// body on a 200, `None` on a 400 (anything else fails the test).
fn served(addr: SocketAddr, case: &Case) -> Option<String> {
    let request = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{}",
        case.wire
    );
    let reply = raw_request(addr, request.as_bytes())
        .unwrap_or_else(|| panic!("no answer to {:?}", case.wire));
    match reply.status {
        200 => Some(reply.text()),
        400 => None,
        status => panic!("{status} for {:?}", case.wire),
    }
}

#[test]
fn the_server_reads_each_case_as_the_table_says() {
    let server = echo_server();
    for case in CASES {
        assert_eq!(
            served(server.addr, case).as_deref(),
            case.body,
            "{:?}",
            case.wire
        );
    }
}

#[test]
fn the_client_reads_each_case_as_the_table_says() {
    let (io_loop, _) = setup(ClientConfig::new());
    for case in CASES {
        // A client per case: what one case leaves pooled is its own.
        let client = AsyncHTTPClient::with_config(&io_loop, ClientConfig::new());
        let answer = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{}",
            case.wire
        )
        .into_bytes();
        let server = RawServer::start(move |_, mut conn| {
            if read_request(&mut conn).is_some() {
                reply(&mut conn, &answer);
            }
        });
        match (fetch(&io_loop, &client, server.url("/")), case.body) {
            (Ok(response), Some(body)) => assert_eq!(response.text(), body, "{:?}", case.wire),
            (Err(err), None) => {
                assert_eq!(
                    err.kind(),
                    ErrorKind::HttpProtocol,
                    "{:?}: {err}",
                    case.wire
                )
            }
            (got, want) => panic!("{:?}: got {got:?}, want {want:?}", case.wire),
        }
        // A body read to its exact end leaves the connection pooled; a
        // refused framing leaves the stream out of step, and it is closed.
        let pooled = usize::from(case.body.is_some());
        assert_eq!(client.stats().idle, pooled, "{:?}", case.wire);
        client.close();
    }
}

#[test]
fn tornado_decides_alike_where_it_decides() {
    if !need::ready(&[Peer::Tornado]) {
        return;
    }
    let (mut child, port) = python_server(
        r#"
import asyncio
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

class Echo(RequestHandler):
    def post(self):
        self.write(self.request.body)

async def main():
    sockets = bind_sockets(0, "127.0.0.1")
    HTTPServer(Application([("/echo", Echo)])).add_sockets(sockets)
    print(sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"#,
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let squall = echo_server();
    let mut checked = 0;
    for case in CASES.iter().filter(|c| c.tornado) {
        assert_eq!(
            served(addr, case),
            served(squall.addr, case),
            "Tornado and squall differ on {:?}",
            case.wire
        );
        checked += 1;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(checked >= 14);
}
