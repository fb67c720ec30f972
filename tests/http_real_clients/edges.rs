//! Edges of the request head: an obs-text header value is served;
//! framing errors get 400.

use super::*;

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
