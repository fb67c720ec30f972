//! Request-smuggling-class checks of squall's HTTP client, against raw TCP
//! peers: what user code puts in a request is checked before anything is
//! written, and an answer whose framing two parties could read differently
//! fails the fetch. Several cases are ported from Tornado's
//! `httpclient_test.py` / `simple_httpclient_test.py` (named in comments).

#[path = "httpclient/kit.rs"]
mod kit;
#[path = "httpclient/peers.rs"]
mod peers;

use std::io::{ErrorKind as IoErrorKind, Read};
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use kit::*;
use peers::{read_request, reply, RawServer};
use squall::httpclient::{ClientConfig, HTTPRequest};
use squall::ErrorKind;

/// A server answering the first request of each connection with `answer`,
/// then closing.
fn serve_once(answer: Vec<u8>) -> RawServer {
    RawServer::start(move |_, mut conn| {
        if read_request(&mut conn).is_some() {
            reply(&mut conn, &answer);
        }
    })
}

/// A listener nobody answers on, to see whether the client connected (or
/// sent anything) at all.
struct Silent {
    listener: TcpListener,
}

impl Silent {
    fn new() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Silent { listener }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listener.local_addr().unwrap())
    }

    /// Fails if a connection came within a while, and says what it sent.
    fn assert_nothing_sent(&self) {
        let until = Instant::now() + Duration::from_millis(200);
        while Instant::now() < until {
            match self.listener.accept() {
                Ok((mut conn, _)) => {
                    conn.set_nonblocking(false).unwrap();
                    conn.set_read_timeout(Some(Duration::from_millis(200)))
                        .unwrap();
                    let mut sent = Vec::new();
                    let _ = conn.read_to_end(&mut sent);
                    panic!(
                        "the client connected and sent {:?}",
                        String::from_utf8_lossy(&sent)
                    );
                }
                Err(e) if e.kind() == IoErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }
}

/// Tornado's `test_header_crlf`: a CR, an LF or a CRLF in a header name or
/// value fails the fetch (Tornado: `ValueError`) and nothing is sent.
#[test]
fn header_crlf_fails_the_fetch_before_anything_is_sent() {
    let (io_loop, client) = setup(ClientConfig::new());
    let silent = Silent::new();
    for (bad, what) in [
        ("foo\rbar:", "cr"),
        ("foo\nbar:", "lf"),
        ("foo\r\nbar:", "crlf"),
        ("foo\0bar", "nul"),
    ] {
        let in_value = HTTPRequest::new(silent.url("/hello")).header("foo", bad);
        let (k, err) = kind(fetch(&io_loop, &client, in_value));
        assert_eq!(k, ErrorKind::InvalidArgument, "{what} in value: {err}");
        assert!(err.message().contains("Unsafe header value"), "{err}");
        assert!(err.message().contains("foo"), "{err}");
        let in_name = HTTPRequest::new(silent.url("/hello")).header(bad, "foo");
        let (k, err) = kind(fetch(&io_loop, &client, in_name));
        assert_eq!(k, ErrorKind::InvalidArgument, "{what} in name: {err}");
        assert!(err.message().contains("header name"), "{err}");
    }
    // A Host, User-Agent or method smuggling a second request.
    let host = HTTPRequest::new(silent.url("/")).header("Host", "x\r\n\r\nGET /admin HTTP/1.1");
    assert_eq!(
        kind(fetch(&io_loop, &client, host)).0,
        ErrorKind::InvalidArgument
    );
    let agent = HTTPRequest::new(silent.url("/")).user_agent("ua\r\nX-Admin: 1");
    assert_eq!(
        kind(fetch(&io_loop, &client, agent)).0,
        ErrorKind::InvalidArgument
    );
    for method in ["GET / HTTP/1.1\r\nX:", "GET\n", "G ET", ""] {
        let mut req = HTTPRequest::new(silent.url("/"));
        req.method = method.to_string();
        let (k, err) = kind(fetch(&io_loop, &client, req));
        assert_eq!(k, ErrorKind::InvalidArgument, "{method:?}: {err}");
    }
    // A request-target with a space, CR, LF or NUL.
    for path in ["/a b", "/a\r\nX: 1", "/a\nb", "/a\0", "/a\tb"] {
        let (k, err) = kind(fetch(&io_loop, &client, silent.url(path)));
        assert_eq!(k, ErrorKind::InvalidArgument, "{path:?}: {err}");
    }
    silent.assert_nothing_sent();
    assert_eq!(client.stats().connections_opened, 0);
    assert_clean(&io_loop, &client);
}

/// A safe request still goes out whole after refused ones.
#[test]
fn safe_headers_still_go_out() {
    let (tx, rx) = std::sync::mpsc::channel();
    let server = RawServer::start(move |_, mut conn| {
        if let Some((head, _)) = read_request(&mut conn) {
            let _ = tx.send(head);
            reply(&mut conn, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    let (io_loop, client) = setup(ClientConfig::new());
    let req = HTTPRequest::new(server.url("/p?q=a%20b"))
        .header("X-Tab", "a\tb")
        .header("X-Latin", "caf\u{e9}")
        .header("X-Empty", "");
    assert_eq!(ok(fetch(&io_loop, &client, req)).text(), "ok");
    let head = rx.recv_timeout(LIMIT).unwrap();
    assert!(head.starts_with("GET /p?q=a%20b HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nX-Tab: a\tb\r\n"), "{head}");
    assert!(head.contains("\r\nX-Empty: \r\n"), "{head}");
    assert_clean(&io_loop, &client);
}

/// Answers whose Content-Length is not `1*DIGIT` fail the fetch (Tornado's
/// `test_invalid_content_length`, from the server side, applies to both).
#[test]
fn content_length_must_be_digits() {
    let (io_loop, client) = setup(ClientConfig::new());
    for value in ["foo", "+10", "1_0", "-1", "0x10", "1 0", "10,", "1e1"] {
        let server = serve_once(
            format!("HTTP/1.1 200 OK\r\nContent-Length: {value}\r\n\r\n1234567890").into_bytes(),
        );
        let (k, err) = kind(fetch(&io_loop, &client, server.url("/")));
        assert_eq!(k, ErrorKind::HttpProtocol, "{value:?}: {err}");
        assert!(err.message().contains("Content-Length"), "{err}");
    }
    assert_clean(&io_loop, &client);
}

/// Tornado's `test_multiple_content_length_accepted`: a list of equal
/// values is that value, unequal ones fail; several fields are one list.
#[test]
fn repeated_content_lengths_must_agree() {
    let (io_loop, client) = setup(ClientConfig::new());
    for lengths in [
        "Content-Length: 2,2\r\n",
        "Content-Length: 2, 2,2\r\n",
        "Content-Length: 2\r\nContent-Length: 2\r\n",
    ] {
        let server = serve_once(format!("HTTP/1.1 200 OK\r\n{lengths}\r\nok").into_bytes());
        let r = ok(fetch(&io_loop, &client, server.url("/")));
        assert_eq!(r.text(), "ok", "{lengths:?}");
    }
    for lengths in [
        "Content-Length: 2,4\r\n",
        "Content-Length: 2, 2,3\r\n",
        "Content-Length: 2\r\nContent-Length: 4\r\n",
        "Content-Length: 2, 02\r\n",
    ] {
        let server = serve_once(format!("HTTP/1.1 200 OK\r\n{lengths}\r\nokok").into_bytes());
        let (k, err) = kind(fetch(&io_loop, &client, server.url("/")));
        assert_eq!(k, ErrorKind::HttpProtocol, "{lengths:?}: {err}");
    }
    assert_clean(&io_loop, &client);
}

/// Tornado's `test_chunked_with_content_length` (both is an error, in either
/// order), repeated or listed codings, and `test_204_invalid_content_length`
/// and `test_304_with_content_length`.
#[test]
fn conflicting_framing_fields() {
    let (io_loop, client) = setup(ClientConfig::new());
    for (answer, needle) in [
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 11\r\n\r\n\
             b\r\nHello world\r\n0\r\n\r\n",
            "both Transfer-Encoding and Content-Length",
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
             5\r\nhello\r\n0\r\n\r\n",
            "both Transfer-Encoding and Content-Length",
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n\
             5\r\nhello\r\n0\r\n\r\n",
            "Transfer-Encoding",
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
            "Transfer-Encoding",
        ),
        (
            "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
            "204",
        ),
        (
            "HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\n\r\n",
            "cannot have a body",
        ),
    ] {
        let server = serve_once(answer.as_bytes().to_vec());
        let (k, err) = kind(fetch(&io_loop, &client, server.url("/")));
        assert_eq!(k, ErrorKind::HttpProtocol, "{answer:?}: {err}");
        assert!(err.message().contains(needle), "{err}");
    }
    // 204 with Content-Length: 0 is fine; a 304 may carry the length of
    // what it stands for (Tornado: "some servers do it anyway").
    let server = answering(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
    let r = ok(fetch(&io_loop, &client, server.url("/")));
    assert_eq!((r.code, r.body.len()), (204, 0));
    let server = answering(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 42\r\n\r\n");
    let r = ok(fetch(
        &io_loop,
        &client,
        HTTPRequest::new(server.url("/")).raise_error(false),
    ));
    assert_eq!(r.code, 304);
    assert_eq!(r.headers.get("Content-Length"), Some("42"));
    assert_clean(&io_loop, &client);
}

/// Chunked framing that a lax reader would accept fails the fetch, and the
/// connection is not pooled.
#[test]
fn lax_chunked_framing_fails_the_fetch() {
    let (io_loop, client) = setup(ClientConfig::new());
    let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    for body in [
        " 5 \r\nhello\r\n0\r\n\r\n",
        "5 \r\nhello\r\n0\r\n\r\n",
        " 5\r\nhello\r\n0\r\n\r\n",
        "5\t\r\nhello\r\n0\r\n\r\n",
        "5 ;a=b\r\nhello\r\n0\r\n\r\n",
        "+5\r\nhello\r\n0\r\n\r\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
        // Tornado's `test_chunked_request_body_invalid_size`.
        "1_a\r\n1234567890abcdef1234567890\r\n0\r\n\r\n",
        "5;a=\"open\r\nhello\r\n0\r\n\r\n",
        // Bare LF as a line end, anywhere.
        "5\nhello\r\n0\r\n\r\n",
        "5\r\nhello\n0\r\n\r\n",
        "5\r\nhello\r\n0\n\r\n",
        "5\r\nhello\r\n0\r\n\n",
        "5\r\nhello\r\n0\r\nX-Trailer: 1\n\r\n",
        "5\nhello\n0\n\n",
        // Data longer or shorter than its size.
        "3\r\nhello\r\n0\r\n\r\n",
        // A bad trailer line.
        "5\r\nhello\r\n0\r\nno colon\r\n\r\n",
        "5\r\nhello\r\n0\r\nX: 1\r\n folded\r\n\r\n",
    ] {
        let server = serve_once(format!("{head}{body}").into_bytes());
        let (k, err) = kind(fetch(&io_loop, &client, server.url("/")));
        assert_eq!(k, ErrorKind::HttpProtocol, "{body:?}: {err}");
        assert_eq!(client.stats().idle, 0, "{body:?}");
    }
    assert_clean(&io_loop, &client);
}

/// What RFC 9112 allows still decodes, and the connection is reused after
/// it (the body's end was found exactly).
#[test]
fn strict_chunked_framing_still_reads_valid_bodies() {
    let server = answering(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;ext=1\r\nhello\r\n1;a=\"q;\\\"x\"\r\n \r\n6; b = c\r\nworld!\r\n\
          0\r\nX-Trailer: t\r\nX-Other: \t\r\n\r\n",
    );
    let (io_loop, client) = setup(ClientConfig::new());
    for _ in 0..2 {
        let r = ok(fetch(&io_loop, &client, server.url("/")));
        assert_eq!(r.text(), "hello world!");
        // Trailer fields are checked and skipped, not merged into headers.
        assert!(r.headers.get("X-Trailer").is_none());
    }
    assert_eq!(client.stats().connections_reused, 1);
    assert_clean(&io_loop, &client);
}

/// The trailer section is bounded by `max_header_size`, the body by
/// `max_body_size`.
#[test]
fn chunked_limits() {
    let (io_loop, client) = setup(ClientConfig::new().max_header_size(1024).max_body_size(10));
    let mut answer =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n".to_vec();
    for i in 0..100 {
        answer.extend_from_slice(format!("X-Trailer-{i}: some value\r\n").as_bytes());
    }
    answer.extend_from_slice(b"\r\n");
    let server = serve_once(answer);
    let (k, err) = kind(fetch(&io_loop, &client, server.url("/")));
    assert_eq!(k, ErrorKind::HttpProtocol, "{err}");
    assert!(err.message().contains("trailer"), "{err}");
    let server = serve_once(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n5\r\nghijk\r\n0\r\n\r\n"
            .to_vec(),
    );
    let (k, err) = kind(fetch(&io_loop, &client, server.url("/")));
    assert_eq!(k, ErrorKind::HttpProtocol, "{err}");
    assert!(err.message().contains("max_body_size"), "{err}");
    assert_clean(&io_loop, &client);
}
