//! gzip on the server, through the public API and real clients: the
//! `compress_response` setting (Tornado's `GzipTestCase`, web_test.py),
//! with curl, requests and httpx decoding what squall compressed; gzipped
//! request bodies with `HTTPServer::set_decompress_request`
//! (httpserver_test.py's `GzipTest` / `GzipUnsupportedTest`), gzip bombs
//! included; the `Accept-Encoding` parser against a model (proptest). The
//! client's side is tests/httpclient_gzip.rs.

mod common;

#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;

#[allow(dead_code)]
#[path = "common/gzip.rs"]
mod gzip_kit;

#[path = "common/peers.rs"]
mod need;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use flate2::write::GzDecoder;
use gzip_kit::*;
use http_kit::{connect, python, raw_request, read_reply, run, TestServer};
use need::Peer;
use proptest::prelude::*;
use squall::http::{HTTPConnection, HTTPServerRequest};
use squall::httputil::{accept_encoding_weight, accepts_gzip, HTTPHeaders};
use squall::web::{Exchange, RequestHandler};
use squall::{Error, Future};

const LIMIT: Duration = Duration::from_secs(60);

// ----- compress_response ---------------------------------------------------

#[test]
fn gzip_when_accepted_with_vary_and_the_compressed_length() {
    let s = server();
    let r = get(&s, "/", Some("gzip"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Encoding").as_deref(), Some("gzip"));
    assert_eq!(r.header("Vary").as_deref(), Some("Accept-Encoding"));
    assert_eq!(
        r.header("Content-Length"),
        Some(r.body.len().to_string()),
        "the length is the compressed body's"
    );
    assert!(r.body.len() < 100, "{} bytes", r.body.len());
    assert_eq!(gunzip(&r.body), long_body().as_bytes());
    // Tornado's test_gzip_not_requested: no Accept-Encoding, no gzip, but Vary.
    let r = get(&s, "/", None);
    assert_eq!(r.header("Content-Encoding"), None);
    assert_eq!(r.header("Vary").as_deref(), Some("Accept-Encoding"));
    assert_eq!(r.text(), long_body());
}

#[test]
fn accept_encoding_q_values_are_honoured() {
    let s = server();
    for (accept, gzipped) in [
        ("gzip;q=0", false),
        ("gzip;q=0, *", false),
        ("deflate, br", false),
        ("identity", false),
        ("*", true),
        ("x-gzip", true),
        ("br;q=1.0, gzip;q=0.8, *;q=0.1", true),
        ("GZIP", true),
        ("gzip;q=0.001", true),
        ("*;q=0, gzip", true),
        ("gzip;q=2", false),
    ] {
        let r = get(&s, "/", Some(accept));
        let got = r.header("Content-Encoding").is_some();
        assert_eq!(got, gzipped, "Accept-Encoding: {accept}");
        let body = if got { gunzip(&r.body) } else { r.body };
        assert_eq!(body, long_body().as_bytes(), "{accept}");
    }
}

#[test]
fn small_bodies_and_uncompressible_types_go_as_they_are() {
    let s = server();
    let cases = [
        ("/?n=1023", false),
        ("/?n=1024", true),
        ("/?n=0", false),
        ("/?type=image/png", false),
        ("/?type=application/octet-stream", false),
        ("/?type=application/json%3B%20charset=UTF-8", true),
        ("/?type=image/svg%2Bxml", true),
        ("/?type=text/css", true),
        ("/?encoding=br", false),
        ("/?status=204", false),
        ("/?status=304", false),
        ("/?status=404", true),
    ];
    for (path, gzipped) in cases {
        let r = get(&s, path, Some("gzip, deflate"));
        let encoding = r.header("Content-Encoding");
        if path.contains("encoding=br") {
            assert_eq!(encoding.as_deref(), Some("br"), "its own coding is kept");
        } else {
            assert_eq!(encoding.is_some(), gzipped, "{path}: {}", r.head);
        }
        assert_eq!(
            r.header("Vary").as_deref(),
            Some("Accept-Encoding"),
            "{path}"
        );
    }
}

#[test]
fn vary_already_present_gets_accept_encoding_added() {
    let s = server();
    // Tornado's test_vary_already_present and _multiple.
    for (query, want) in [
        (
            "vary=Accept-Language",
            vec!["Accept-Language", "Accept-Encoding"],
        ),
        (
            "vary=Accept-Language&vary=Cookie",
            vec!["Accept-Language", "Cookie", "Accept-Encoding"],
        ),
        ("vary=accept-encoding", vec!["accept-encoding"]),
        ("vary=*", vec!["*"]),
    ] {
        let r = get(&s, &format!("/?{query}"), Some("gzip"));
        assert_eq!(r.header("Content-Encoding").as_deref(), Some("gzip"));
        assert_eq!(r.headers_named("Vary").len(), 1, "{}", r.head);
        let vary = r.header("Vary").unwrap();
        let got: Vec<&str> = vary.split(',').map(str::trim).collect();
        assert_eq!(got, want, "{query}");
    }
}

#[test]
fn a_length_of_its_own_is_recomputed_and_head_says_the_compressed_one() {
    let s = server();
    let r = get(&s, "/?length=1", Some("gzip"));
    assert_eq!(r.header("Content-Encoding").as_deref(), Some("gzip"));
    assert_eq!(r.header("Content-Length"), Some(r.body.len().to_string()));
    assert_eq!(gunzip(&r.body), long_body().as_bytes());
    let whole_len = r.body.len();
    // HEAD: the headers a GET would get, no body.
    let mut conn = connect(s.addr);
    conn.write_all(b"HEAD / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
        .unwrap();
    let r = read_reply(&mut conn, &mut Vec::new(), true).unwrap();
    assert_eq!(r.header("Content-Encoding").as_deref(), Some("gzip"));
    assert_eq!(r.header("Content-Length"), Some(whole_len.to_string()));
}

#[test]
fn off_by_default() {
    let s = TestServer::start(|| app(false), |_| {});
    let r = get(&s, "/", Some("gzip"));
    assert_eq!(r.header("Content-Encoding"), None);
    assert_eq!(r.header("Vary"), None);
    assert_eq!(r.text(), long_body());
}

/// Takes the complete chunks at the start of `buf` (a chunked body):
/// their data, and whether the last chunk came.
fn take_chunks(buf: &mut Vec<u8>) -> (Vec<u8>, bool) {
    let mut data = Vec::new();
    loop {
        let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
            return (data, false);
        };
        let size = usize::from_str_radix(std::str::from_utf8(&buf[..eol]).unwrap(), 16).unwrap();
        if buf.len() < eol + 2 + size + 2 {
            return (data, false);
        }
        data.extend_from_slice(&buf[eol + 2..eol + 2 + size]);
        buf.drain(..eol + 2 + size + 2);
        if size == 0 {
            return (data, true);
        }
    }
}

#[test]
fn a_flushed_response_is_decodable_as_it_arrives() {
    let s = server();
    for path in ["/stream", "/stream?length=1"] {
        let mut conn = connect(s.addr);
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n");
        conn.write_all(request.as_bytes()).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = conn.read(&mut chunk).unwrap();
            assert!(n > 0, "closed before the head");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        buf.drain(..head_end);
        assert!(head.contains("content-encoding: gzip\r\n"), "{head}");
        assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
        assert!(head.contains("vary: accept-encoding\r\n"), "{head}");
        assert!(!head.contains("content-length"), "{head}");
        // Part 2 does not exist yet: part 1 must decode from what came.
        let mut decoder = GzDecoder::new(Vec::new());
        while decoder.get_ref().len() < part(1).len() {
            let (data, last) = take_chunks(&mut buf);
            assert!(!last);
            decoder.write_all(&data).unwrap();
            decoder.flush().unwrap();
            if decoder.get_ref().len() >= part(1).len() {
                break;
            }
            let n = conn
                .read(&mut chunk)
                .expect("part 1 decodable before part 2 is sent");
            assert!(n > 0);
            buf.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(decoder.get_ref(), part(1).as_bytes());
        // Now part 2, and the end.
        assert_eq!(get(&s, "/go", None).text(), "went");
        loop {
            let (data, last) = take_chunks(&mut buf);
            decoder.write_all(&data).unwrap();
            if last {
                break;
            }
            let n = conn.read(&mut chunk).unwrap();
            assert!(n > 0, "closed before the end");
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = decoder.finish().unwrap();
        assert_eq!(body, format!("{}{}", part(1), part(2)).as_bytes());
    }
}

#[test]
fn curl_compressed_decodes_whole_and_flushed_responses() {
    if !need::ready(&[Peer::Curl]) {
        return;
    }
    let s = server();
    for (path, want) in [("/", long_body()), ("/pieces", pieces_body())] {
        let (ok, out, err) = run(
            Command::new("curl").args([
                "-sS",
                "--compressed",
                "-D",
                "-",
                "--max-time",
                "20",
                &s.url(path),
            ]),
            None,
            LIMIT,
        );
        assert!(ok, "{err}");
        let (head, body) = out.split_once("\r\n\r\n").expect("head and body");
        let head = head.to_ascii_lowercase();
        assert!(head.contains("content-encoding: gzip"), "{head}");
        assert!(head.contains("vary: accept-encoding"), "{head}");
        assert_eq!(body, want, "{path}");
    }
}

#[test]
fn python_requests_and_httpx_decode_what_squall_compressed() {
    if !need::ready(&[Peer::Requests, Peer::Httpx]) {
        return;
    }
    let s = server();
    let script = r#"
import sys, requests, httpx
base, long_body, pieces = sys.argv[1], sys.argv[2], sys.argv[3]
for path, want in (("/", long_body), ("/pieces", pieces)):
    r = requests.get(base + path, timeout=20)
    assert r.headers["Content-Encoding"] == "gzip", r.headers
    assert r.headers["Vary"] == "Accept-Encoding", r.headers
    assert r.text == want, ("requests", path, len(r.text))
    h = httpx.get(base + path, timeout=20)
    assert h.headers["content-encoding"] == "gzip", h.headers
    assert h.text == want, ("httpx", path, len(h.text))
    # Asked not to: no gzip.
    r = requests.get(base + path, headers={"Accept-Encoding": "identity"}, timeout=20)
    assert "Content-Encoding" not in r.headers, r.headers
    assert r.text == want
print("ALL OK")
"#;
    let (ok, out, err) = run(
        Command::new(python()).args(["-c", script, &s.url(""), &long_body(), &pieces_body()]),
        None,
        LIMIT,
    );
    assert!(ok && out.contains("ALL OK"), "{out}\n{err}");
}

// ----- decompress_request --------------------------------------------------

fn decompressing(max: usize) -> TestServer {
    TestServer::start(
        || app(false).route("/upload", Upload::default),
        move |server| {
            server.set_decompress_request(true);
            server.set_max_body_size(max);
        },
    )
}

fn post(s: &TestServer, path: &str, encoding: &str, body: &[u8]) -> http_kit::Reply {
    let mut raw = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Encoding: {encoding}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    raw_request(s.addr, &raw).expect("a reply")
}

#[test]
fn gzipped_request_bodies_are_decoded_for_the_handler() {
    let s = decompressing(100);
    // Tornado's GzipTest.test_gzip and test_gzip_case_insensitive.
    for encoding in ["gzip", "GZIP"] {
        let r = post(&s, "/echo", encoding, &gzip(b"foo=bar"));
        assert_eq!(r.status, 200);
        assert_eq!(
            r.text(),
            format!("Content-Encoding=-\nX-Consumed-Content-Encoding={encoding}\nAccept-Encoding=-\nfoo=bar")
        );
    }
    // Uncompressed bodies and other codings pass as they are.
    let r = raw_request(
        s.addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\nfoo=bar",
    )
    .unwrap();
    assert!(r.text().ends_with("\nfoo=bar"), "{}", r.text());
    let r = post(&s, "/echo", "br", b"\x0bnot-brotli");
    assert!(
        r.text().starts_with("Content-Encoding=br\n"),
        "{}",
        r.text()
    );
    // Chunked framing, gzipped, in pieces.
    let z = gzip(b"chunked and gzipped");
    let mut raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for piece in z.chunks(7) {
        raw.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        raw.extend_from_slice(piece);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let r = raw_request(s.addr, &raw).unwrap();
    assert!(r.text().ends_with("\nchunked and gzipped"), "{}", r.text());
}

#[test]
fn decompress_request_off_leaves_the_body_compressed() {
    // Tornado's GzipUnsupportedTest: the body arrives as it was sent.
    let s = TestServer::start(|| app(false), |_| {});
    let z = gzip(b"foo=bar");
    let r = post(&s, "/echo", "gzip", &z);
    let head = "Content-Encoding=gzip\nX-Consumed-Content-Encoding=-\nAccept-Encoding=-\n";
    assert_eq!(&r.body[..head.len()], head.as_bytes());
    assert_eq!(&r.body[head.len()..], &z[..]);
}

#[test]
fn bad_gzip_bodies_answer_400() {
    let s = decompressing(1 << 20);
    let z = gzip(&vec![b'a'; 5000]);
    let mut trailing = z.clone();
    trailing.extend_from_slice(b"junk");
    let mut flipped = z.clone();
    let at = flipped.len() - 7;
    flipped[at] ^= 0x55;
    for (what, body) in [
        ("truncated", &z[..z.len() - 4]),
        ("not gzip", &b"plain text, not gzip"[..]),
        ("trailing bytes", &trailing[..]),
        ("bad checksum", &flipped[..]),
    ] {
        let r = post(&s, "/echo", "gzip", body);
        assert_eq!(r.status, 400, "{what}");
    }
}

/// Streams its body, counting the decoded bytes it was given.
#[derive(Default)]
struct Upload {
    bytes: usize,
    pieces: usize,
}
thread_local! {
    static MOST_SEEN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}
impl RequestHandler for Upload {
    fn stream_request_body() -> bool {
        true
    }
    fn data_received(&mut self, _x: &Exchange, chunk: &[u8]) -> Result<Option<Future<()>>, Error> {
        self.bytes += chunk.len();
        self.pieces += 1;
        MOST_SEEN.with(|m| m.set(m.get().max(self.bytes)));
        Ok(None)
    }
    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        let consumed = x
            .request()
            .headers()
            .get("X-Consumed-Content-Encoding")
            .unwrap_or("-")
            .to_owned();
        x.write(format!(
            "{} bytes in {} pieces, {consumed}",
            self.bytes, self.pieces
        ));
        Ok(())
    }
}

struct MostSeen;
impl RequestHandler for MostSeen {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write(MOST_SEEN.with(|m| m.get()).to_string());
        Ok(())
    }
}

#[test]
fn a_gzip_bomb_answers_413_and_is_never_decoded_past_the_limit() {
    let limit = 1 << 20;
    let s = TestServer::start(
        || {
            app(false)
                .route("/upload", Upload::default)
                .route("/most", || MostSeen)
        },
        move |server| {
            server.set_decompress_request(true);
            server.set_max_body_size(limit);
        },
    );
    // A streaming handler sees the body decoded, in pieces.
    let data = common::pseudo_random(300_000, 7);
    let r = post(&s, "/upload", "gzip", &gzip(&data));
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.starts_with("300000 bytes in "), "{text}");
    assert!(text.ends_with(", gzip"), "{text}");
    // 10 MB of zeros, about 10 KB compressed, against a 1 MB limit.
    let bomb = gzip(&vec![0u8; 10 << 20]);
    assert!(bomb.len() < 20_000, "{}", bomb.len());
    for path in ["/upload", "/echo"] {
        let r = post(&s, path, "gzip", &bomb);
        assert_eq!(r.status, 413, "{path}");
        assert_eq!(r.header("Connection").as_deref(), Some("close"));
    }
    let most: usize = get(&s, "/most", None).text().parse().unwrap();
    assert!(most <= limit, "the handler was given {most} bytes");
    // Right at the limit is fine.
    let r = post(&s, "/upload", "gzip", &gzip(&vec![0u8; limit]));
    assert_eq!(r.status, 200);
    assert!(
        r.text().starts_with(&format!("{limit} bytes")),
        "{}",
        r.text()
    );
}

#[test]
fn the_http_server_alone_decodes_for_a_closure_delegate() {
    let s = TestServer::start(
        || {
            |req: &HTTPServerRequest, conn: &HTTPConnection| {
                let body = format!(
                    "{} {:?}",
                    String::from_utf8_lossy(req.body()),
                    req.headers().get("Content-Encoding")
                );
                conn.write_response(200, &HTTPHeaders::new(), body.as_bytes())
            }
        },
        |server| server.set_decompress_request(true),
    );
    let r = post(&s, "/", "gzip", &gzip(b"closure"));
    assert_eq!(r.text(), "closure None");
}

// ----- the Accept-Encoding parser ------------------------------------------

/// One `Accept-Encoding` element: a coding and maybe a q.
fn element() -> impl Strategy<Value = (String, Option<u16>)> {
    (
        prop::sample::select(vec![
            "gzip", "GZip", "x-gzip", "br", "deflate", "*", "identity", "zstd",
        ]),
        prop::option::of(0u16..=1000),
    )
        .prop_map(|(c, q)| (c.to_owned(), q))
}

fn render(elements: &[(String, Option<u16>)], spaces: bool) -> String {
    let sep = if spaces { " , " } else { "," };
    elements
        .iter()
        .map(|(c, q)| match q {
            None => c.clone(),
            Some(1000) => format!("{c};q=1"),
            Some(q) if spaces => format!("{c} ; Q = 0.{q:03}"),
            Some(q) => format!("{c};q=0.{q:03}"),
        })
        .collect::<Vec<_>>()
        .join(sep)
}

proptest! {
    /// Against the RFC's reading: gzip's weight is the highest of its own
    /// entries (`gzip` or `x-gzip`), else `*`'s, else 0.
    #[test]
    fn accepts_gzip_matches_the_model(
        elements in prop::collection::vec(element(), 0..8),
        spaces in any::<bool>(),
    ) {
        let header = render(&elements, spaces);
        let weight = |pred: &dyn Fn(&str) -> bool| {
            elements.iter().filter(|(c, _)| pred(c)).map(|(_, q)| q.unwrap_or(1000)).max()
        };
        let own = weight(&|c| c.eq_ignore_ascii_case("gzip") || c.eq_ignore_ascii_case("x-gzip"));
        let star = weight(&|c| c == "*");
        let want = own.or(star).unwrap_or(0) > 0;
        prop_assert_eq!(accepts_gzip(&header), want, "{}", header);
        let br = weight(&|c| c == "br").or(star).unwrap_or(0);
        prop_assert_eq!(accept_encoding_weight(&header, "br"), br, "{}", header);
    }

    /// Any text at all: no panic, weights in range.
    #[test]
    fn the_parser_takes_anything(header in ".{0,200}") {
        prop_assert!(accept_encoding_weight(&header, "gzip") <= 1000);
        let _ = accepts_gzip(&header);
    }
}
