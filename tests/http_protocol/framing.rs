//! Framing the server owns (no body after 304/204/HEAD, the handler's own
//! `Content-Length`) and the request checks real clients tripped on:
//! header injection, obs-text, smuggling-shaped heads.

use super::*;

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
