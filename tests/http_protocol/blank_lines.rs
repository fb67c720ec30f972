//! Blank lines before a request line (RFC 9112 2.2: a server should ignore
//! at least one): served, alone or between pipelined requests, but counted
//! with the head against `max_header_size`, so that a client cannot make
//! the server hold more than the limit, nor keep a connection with a
//! stream of nothing but CRLFs.

use super::*;

const MAX_HEAD: usize = 1024;

/// A server that answers each request with its method and URI, with
/// `max_header_size` at `MAX_HEAD`.
fn server() -> TestServer {
    TestServer::start(
        || {
            |req: &HTTPServerRequest, conn: &HTTPConnection| {
                let body = format!("{} {} {}", req.method(), req.uri(), req.body().len());
                conn.write_response(200, &HTTPHeaders::new(), body.as_bytes())
            }
        },
        |s| s.set_max_header_size(MAX_HEAD),
    )
}

/// A `GET /h` head of exactly `len` bytes with `fields` fields (13: more
/// than the server's short path takes, so httparse reads it).
fn head_of(len: usize, fields: usize) -> Vec<u8> {
    let mut head = b"GET /h HTTP/1.1\r\nHost: x\r\n".to_vec();
    for _ in 2..fields {
        head.extend_from_slice(b"X-Fill: 1\r\n");
    }
    head.extend_from_slice(b"X-Pad: ");
    head.resize(len - 4, b'p');
    head.extend_from_slice(b"\r\n\r\n");
    head
}

/// What real clients send: a CRLF or two after a POST body, before the
/// next request, pipelined or on a connection of its own.
#[test]
fn a_request_after_one_or_two_blank_lines_is_served() {
    let s = server();
    let ok = |uri: &str, body: usize| (200, format!("GET {uri} {body}"));
    assert_eq!(
        answers(s.addr, b"\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n"),
        [ok("/a", 0)]
    );
    assert_eq!(
        answers(s.addr, b"\r\n\r\n\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n"),
        [ok("/a", 0)]
    );
    // Pipelined, with blank lines after a body and between two heads.
    let replies = answers(
        s.addr,
        b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\r\n\
          GET /a HTTP/1.1\r\nHost: x\r\n\r\n\r\n\r\n\
          GET /b HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(
        replies,
        [(200, "POST /p 3".to_owned()), ok("/a", 0), ok("/b", 0)]
    );
    // The same with each piece in a write of its own.
    let mut conn = connect(s.addr);
    let mut buf = Vec::new();
    for (piece, uri) in [
        (
            &b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"[..],
            "/p",
        ),
        (b"\r\n", ""),
        (b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "/a"),
        (b"\r\n\r\n", ""),
        (b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n", "/b"),
    ] {
        conn.write_all(piece).unwrap();
        if !uri.is_empty() {
            let reply = read_reply(&mut conn, &mut buf, false).expect("a reply");
            assert_eq!(reply.status, 200);
            assert!(reply.text().contains(uri), "{}", reply.text());
        }
    }
}

/// The blank lines and the head together must fit in `max_header_size`,
/// on both parsers' paths: exactly the limit is served, a byte more is the
/// 431 a head a byte too large gets (the blank lines used to be counted
/// only while nothing followed them, so twice the limit was held).
#[test]
fn blank_lines_and_the_head_together_fit_in_the_limit() {
    let s = server();
    let status = |raw: &[u8]| answers(s.addr, raw).first().map(|r| r.0);
    for fields in [2, 13] {
        let head = head_of(200, fields);
        let blanks = b"\r\n".repeat((MAX_HEAD - head.len()) / 2);
        let exact = [&blanks[..], &head].concat();
        assert_eq!(exact.len(), MAX_HEAD);
        assert_eq!(status(&exact), Some(200), "{fields} fields");
        let over = [b"\n", &exact[..]].concat();
        assert_eq!(status(&over), Some(431), "{fields} fields");
        // After a first request too: the blank lines belong to the next.
        let first = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        let replies = answers(s.addr, &[&first[..], &exact].concat());
        assert_eq!(replies.len(), 2, "{fields} fields");
        assert_eq!(replies[1].0, 200, "{fields} fields");
        let replies = answers(s.addr, &[&first[..], &over].concat());
        assert_eq!(
            replies.iter().map(|r| r.0).collect::<Vec<_>>(),
            [200, 431],
            "{fields} fields"
        );
    }
    // An incomplete head after the blank lines is refused as soon as
    // they and it are over the limit, not held until the head is complete.
    let mut conn = connect(s.addr);
    conn.write_all(&b"\r\n".repeat(MAX_HEAD / 2 - 10)).unwrap();
    conn.write_all(b"GET /h HTTP/1.1\r\nHost: x\r\nX-Pad: ")
        .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let reply = read_reply(&mut conn, &mut Vec::new(), false);
    assert_eq!(reply.map(|r| r.status), Some(431));
}

/// Megabytes of nothing but CRLFs: cut off, with the same 431 a too-large
/// head gets, once about `max_header_size` of them arrived; the client's
/// writes then fail.
#[test]
fn a_stream_of_blank_lines_is_cut_off_like_a_too_large_head() {
    let s = server();
    let mut conn = connect(s.addr);
    let mut writer = conn.try_clone().unwrap();
    let flood = std::thread::spawn(move || {
        let chunk = b"\r\n".repeat(32 * 1024);
        let mut sent = 0usize;
        while sent < 256 << 20 {
            if writer.write_all(&chunk).is_err() {
                return Err(sent);
            }
            sent += chunk.len();
        }
        Ok(sent)
    });
    let reply = read_reply(&mut conn, &mut Vec::new(), false);
    assert_eq!(reply.map(|r| r.status), Some(431));
    assert!(closed_within(&mut conn, Duration::from_secs(5)));
    let sent = flood.join().unwrap();
    assert!(sent.is_err(), "{sent:?} bytes went in: never cut off");
}
