//! The server reads a usual request head (ASCII, CRLF, up to 12 fields) on
//! a short path of its own and any other with httparse: its answers must
//! not depend on which of the two read a head. Each head here is sent as it
//! is (the short path) and with 12 filler fields more (too many for the
//! short path: httparse), and the two answers compared: the request as the
//! handler saw it, or the refusal. Then the `max_header_size` boundary on
//! both paths, and heads split across writes.

#[path = "common/http.rs"]
#[allow(dead_code)]
mod http_kit;

use std::io::Write;
use std::time::Duration;

use http_kit::{answers, connect, raw_request, read_reply, TestServer};
use squall::web::{Application, Exchange, RequestHandler};
use squall::Error;

/// Answers with the request as it saw it: method, target, version, the
/// fields (the fillers left out) and the body.
struct Describe;
impl Describe {
    fn describe(x: &Exchange) {
        let r = x.request();
        let mut out = format!("{} {} {:?}\n", r.method(), r.uri(), r.version());
        for (name, value) in r.headers().iter() {
            if name != "X-Fill" {
                out.push_str(&format!("{name}={value:?}\n"));
            }
        }
        out.push_str(&format!("body={:?}", String::from_utf8_lossy(r.body())));
        x.write(out);
    }
}
impl RequestHandler for Describe {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        Self::describe(x);
        Ok(())
    }
    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        Self::describe(x);
        Ok(())
    }
}

const MAX_HEAD: usize = 1024;

fn server() -> TestServer {
    TestServer::start(
        || Application::new().route("/d", || Describe),
        |s| {
            s.set_max_header_size(MAX_HEAD);
            s.set_max_body_size(4096);
        },
    )
}

/// `head` with 12 `X-Fill` fields after its request line (which ends at
/// the first LF after any blank lines): more than the short path takes.
fn filled(head: &[u8]) -> Vec<u8> {
    let blank = head
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let line_end = blank
        + head[blank..]
            .iter()
            .position(|&b| b == b'\n')
            .expect("a line")
        + 1;
    let mut out = head[..line_end].to_vec();
    for _ in 0..12 {
        out.extend_from_slice(b"X-Fill: 1\r\n");
    }
    out.extend_from_slice(&head[line_end..]);
    out
}

#[test]
fn both_parsers_give_the_same_answers() {
    let s = server();
    let heads: &[&[u8]] = &[
        b"GET /d HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /d?a=1&b=%20 HTTP/1.1\r\nHost: 127.0.0.1:8888\r\nX-Tab:\t a\tb \t\r\nX-Empty:\r\nX-Blank:  \r\n\r\n",
        b"\r\n\r\nGET /d HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /d HTTP/1.0\r\n\r\n",
        b"GET /d HTTP/1.1\r\n\r\n",
        b"POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /d?next HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /d HTTP/1.1\r\nHost: x\r\nContent-Length:  5 \r\n\r\nhello",
        b"POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
        b"POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"POST /d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"POST /d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST /d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        b"POST /d HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
        b"POST /d HTTP/1.1\r\nHost: x\r\nExpect: something\r\n\r\n",
        b"GET /d HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
        b"GET /d HTTP/1.1\r\nHost: a/b\r\n\r\n",
        b"GET /d HTTP/1.1\r\nHOST: x\r\nConnection: close\r\n\r\nGET /d HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /d HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /d?2 HTTP/1.0\r\n\r\n",
        b"GET /d HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET /d HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        b"GET /d HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
        b"GET /d HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n",
        b"GET /d HTTP/1.1\r\nHost: x\r\nX\0: a\r\n\r\n",
        b"GET /d HTTP/1.1\r\nHost: x\r\n: a\r\n\r\n",
        b"GET  /d HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /d HTTP/1.2\r\nHost: x\r\n\r\n",
    ];
    let mut refused = 0;
    for head in heads {
        let usual = answers(s.addr, head);
        assert!(!usual.is_empty(), "{:?}", String::from_utf8_lossy(head));
        let other = answers(s.addr, &filled(head));
        assert_eq!(usual, other, "{:?}", String::from_utf8_lossy(head));
        refused += usual.iter().filter(|(status, _)| *status >= 400).count();
    }
    // Pipelined requests after a body, and after a keep-alive HTTP/1.0
    // one, are answered (on both paths: the answers were equal).
    assert_eq!(answers(s.addr, heads[5]).len(), 2);
    assert_eq!(answers(s.addr, heads[18]).len(), 2);
    // `Connection: close`: the second request is not answered.
    assert_eq!(answers(s.addr, heads[17]).len(), 1);
    // Both kinds of answer were compared.
    assert!(refused >= 10, "{refused}");
    let first = answers(s.addr, heads[1]);
    assert_eq!(first[0].0, 200);
    assert!(first[0].1.contains("X-Tab=\"a\\tb\""), "{}", first[0].1);
}

/// A head of exactly `len` bytes: `fields` fields (the first `Host`, then
/// `extra` if given), the last padded to the length.
fn head_of(len: usize, fields: usize, extra: &[u8]) -> Vec<u8> {
    let mut head = b"GET /d HTTP/1.1\r\nHost: x\r\n".to_vec();
    head.extend_from_slice(extra);
    let extras = extra.iter().filter(|&&b| b == b'\n').count();
    for _ in 2 + extras..fields {
        head.extend_from_slice(b"X-Fill: 1\r\n");
    }
    head.extend_from_slice(b"X-Pad: ");
    let pad = len - head.len() - 4;
    head.extend(std::iter::repeat(b'p').take(pad));
    head.extend_from_slice(b"\r\n\r\n");
    assert_eq!(head.len(), len);
    head
}

/// `max_header_size` on both paths: a head of exactly the limit is served,
/// with a body after it in the same write too; one byte more is a 431.
#[test]
fn the_head_size_limit_is_the_same_on_both_paths() {
    let s = server();
    let status = |raw: &[u8]| raw_request(s.addr, raw).map(|r| r.status);
    for fields in [2, 13] {
        assert_eq!(
            status(&head_of(MAX_HEAD, fields, b"")),
            Some(200),
            "{fields} fields"
        );
        assert_eq!(status(&head_of(MAX_HEAD + 1, fields, b"")), Some(431));
        // The limit is on the head, not on what came with it.
        let mut raw = head_of(MAX_HEAD, fields, b"Content-Length: 9\r\n");
        raw.extend_from_slice(b"body12345");
        let replies = answers(s.addr, &raw);
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].0, 200, "{fields} fields");
        assert!(
            replies[0].1.ends_with("body=\"body12345\""),
            "{}",
            replies[0].1
        );
    }
}

/// A head split across writes, cut at the places a parser could mistake
/// for an end: in the request line, in a CRLF, between the two CRLFs that
/// end it, before its last byte. Each part is read before the next comes.
#[test]
fn a_head_split_across_writes() {
    let s = server();
    let head = b"POST /d?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
    let reference = answers(s.addr, head);
    assert_eq!(reference.len(), 1);
    assert_eq!(reference[0].0, 200);
    for head in [head.to_vec(), filled(head)] {
        let end = head.len() - 3;
        for cut in [4, 9, 21, end - 3, end - 2, end - 1] {
            let mut conn = connect(s.addr);
            conn.write_all(&head[..cut]).expect("write");
            std::thread::sleep(Duration::from_millis(20));
            conn.write_all(&head[cut..]).expect("write");
            let reply = read_reply(&mut conn, &mut Vec::new(), false).expect("reply");
            assert_eq!((reply.status, reply.text()), reference[0], "cut at {cut}");
        }
    }
}
