//! Entry points shared by the fuzz targets in `fuzz/` and their replay in
//! `tests/fuzz_regressions.rs`. Not API: hidden, behind the `fuzzing`
//! feature. Each function takes arbitrary bytes and panics on a bug.

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::time::Duration;

use crate::future::Future;
use crate::http::conn::Conn;
use crate::http::Options;
use crate::httpclient::parse;
use crate::httputil::{self, ChunkedDecoder};
use crate::web::Application;
use crate::{IOLoop, IOStream};

#[path = "fuzz/web_parsers.rs"]
mod web_parsers;
pub use web_parsers::{cookie, form, multipart, range};
#[cfg(feature = "template")]
pub use web_parsers::{template, template_render};

/// A small deterministic generator (xorshift64*), seeded from input bytes.
struct Rng(u64);

impl Rng {
    fn new(seed: &[u8]) -> Rng {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for &b in seed {
            s = (s ^ u64::from(b)).wrapping_mul(0x1000_0000_01b3);
        }
        Rng(s | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The HTTP server's request-head parser and body framing, end to end: the
/// bytes are one client's whole input (then it half-closes) to a connection
/// of an empty application (every request gets 404). The server must
/// answer with HTTP responses only and close, without hanging.
pub fn http_server(data: &[u8]) {
    let data = &data[..data.len().min(64 * 1024)];
    let io_loop = IOLoop::new().expect("loop");
    let (server, mut client) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    client.write_all(data).expect("write");
    client
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let opts = Rc::new(Options {
        max_header_size: 2048,
        max_body_size: 4096,
        header_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        body_timeout: Duration::from_secs(30),
        body_min_rate: 500,
        xheaders: data.first().is_some_and(|b| b & 1 == 1),
        default_content_type: None,
        heads: Rc::new(crate::http::Heads::new(None)),
        // Half the inputs with gzipped bodies decoded (feature `gzip`).
        decompress_request: data.first().is_some_and(|b| b & 2 == 2),
    });
    let server = IOStream::with_loop(server, &io_loop).expect("server stream");
    let peer = "127.0.0.1:1".parse().expect("addr");
    Conn::start(server, peer, Rc::new(Application::new()), opts).expect("start");
    let client = IOStream::with_loop(client, &io_loop).expect("client stream");
    let out = io_loop
        .run_sync(|| client.read_until_close(), Some(Duration::from_secs(10)))
        .expect("the server neither answered nor closed");
    assert!(
        out.is_empty() || out.starts_with(b"HTTP/1."),
        "not an HTTP response: {:?}",
        String::from_utf8_lossy(&out[..out.len().min(200)])
    );
    io_loop.close();
}

/// The chunked-body decoder: decoding the input in one call (as the
/// server's read hook does), in random pieces (the first 8 bytes seed the
/// split) and piece by piece as the decoder asks (as the HTTP client reads:
/// a line through its LF, or exactly the bytes it wants) must agree.
pub fn chunked(data: &[u8]) {
    let (seed, input) = data.split_at(data.len().min(8));
    let max_body = 1 << 16;

    let mut whole = ChunkedDecoder::new(max_body);
    let mut whole_body = Vec::new();
    let whole_result = whole.decode(input, &mut whole_body);
    if let Ok(used) = whole_result {
        assert!(used <= input.len());
        assert_eq!(whole.body_len(), whole_body.len());
        if !whole.is_done() {
            // Not done: it may only be waiting for the end of a line (a size
            // or trailer line, or the CRLF after data), which it leaves
            // unconsumed for the next call, as the server keeps it buffered.
            assert!(
                !input[used..].contains(&b'\n'),
                "stopped before a complete line without being done"
            );
        }
    }

    let mut rng = Rng::new(seed);
    let mut pieces = ChunkedDecoder::new(max_body);
    let mut body = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut consumed = 0;
    let mut at = 0;
    let mut failed = false;
    while at < input.len() && !pieces.is_done() {
        let n = 1 + rng.below(16);
        let end = (at + n).min(input.len());
        pending.extend_from_slice(&input[at..end]);
        at = end;
        match pieces.decode(&pending, &mut body) {
            Ok(used) => {
                assert!(used <= pending.len());
                pending.drain(..used);
                consumed += used;
            }
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    match whole_result {
        Ok(used) => {
            assert!(!failed, "pieces failed where the whole input decoded");
            assert_eq!(body, whole_body, "bodies differ");
            assert_eq!(pieces.is_done(), whole.is_done());
            if whole.is_done() {
                assert_eq!(consumed, used, "consumed differs");
            }
        }
        Err(_) => {
            // The pieces may stop before the bad byte only if it never came.
            assert!(
                failed || !pieces.is_done(),
                "the whole input failed but the pieces decoded a body"
            );
        }
    }
    let whole_done = whole.is_done();
    chunked_as_the_client_reads(input, max_body, &whole_result, whole_done, &whole_body);
}

/// The client's way through a chunked body ([`ChunkedDecoder::wants`]): it
/// must take every piece it asked for whole (the client fails a body
/// "out of step" otherwise) and agree with the whole-input decoding.
fn chunked_as_the_client_reads(
    input: &[u8],
    max_body: usize,
    whole: &Result<usize, crate::Error>,
    whole_done: bool,
    whole_body: &[u8],
) {
    use crate::httputil::ChunkedWants;

    let mut decoder = ChunkedDecoder::new(max_body);
    let mut body = Vec::new();
    let mut at = 0;
    let mut failed = false;
    loop {
        let rest = &input[at..];
        let piece = match decoder.wants() {
            ChunkedWants::Done => break,
            ChunkedWants::Line => match memchr::memchr(b'\n', rest) {
                Some(nl) => &rest[..=nl],
                // The client would wait for the rest of the line.
                None => break,
            },
            ChunkedWants::Bytes(n) => match usize::try_from(n) {
                Ok(n) if n <= rest.len() => &rest[..n],
                _ => break,
            },
        };
        match decoder.decode(piece, &mut body) {
            Ok(used) => {
                assert_eq!(used, piece.len(), "a piece asked for was not taken whole");
                at += used;
            }
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    match whole {
        Ok(used) => {
            // Every piece the whole decoding took was there to be read.
            assert!(
                !failed,
                "the client's reads failed where the whole input decoded"
            );
            assert_eq!(decoder.is_done(), whole_done, "done differs");
            assert!(whole_body.starts_with(&body), "bodies differ");
            if whole_done {
                assert_eq!(body, whole_body, "bodies differ");
                assert_eq!(at, *used, "consumed differs");
            }
        }
        // It may stop before the bad byte only if it never came.
        Err(_) => assert!(
            failed || !decoder.is_done(),
            "the whole input failed but the client's reads decoded a body"
        ),
    }
}

/// The `Accept-Encoding` parser: never panics, weights stay in 0..=1000,
/// and what it says agrees with itself when the value is extended.
pub fn accept_encoding(data: &[u8]) {
    let header = String::from_utf8_lossy(&data[..data.len().min(8192)]);
    let gzip = httputil::accept_encoding_weight(&header, "gzip");
    let x_gzip = httputil::accept_encoding_weight(&header, "x-gzip");
    let star = httputil::accept_encoding_weight(&header, "*");
    assert!(gzip <= 1000 && x_gzip <= 1000 && star <= 1000);
    let accepted = httputil::accepts_gzip(&header);
    if accepted {
        assert!(gzip > 0 || x_gzip > 0, "{header:?}");
    }
    // An entry `gzip` (weight 1) outweighs anything before it.
    let more = format!("{header}, gzip");
    assert_eq!(httputil::accept_encoding_weight(&more, "gzip"), 1000);
    assert!(httputil::accepts_gzip(&more), "{more:?}");
    // `gzip;q=0` after a value naming no gzip refuses it, whatever `*` says.
    let named = header.split(',').any(|e| {
        let name = e.split(';').next().unwrap_or("").trim_matches([' ', '\t']);
        name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip")
    });
    if !named {
        let refused = format!("{header},gzip;q=0");
        assert!(!httputil::accepts_gzip(&refused), "{refused:?}");
    }
}

/// The bounded gzip decoder: arbitrary input decoded whole and in random
/// pieces must agree (and never pass the limit); compressed data with
/// random flush points must come back as it was. The first byte picks.
#[cfg(feature = "gzip")]
pub fn gunzip(data: &[u8]) {
    use crate::httputil::gzip::{Gunzip, GzipStream};
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (seed, input) = rest.split_at(rest.len().min(8));
    let mut rng = Rng::new(seed);
    if mode & 1 == 0 {
        // Arbitrary bytes (mutated gzip, mostly): whole vs pieces.
        let max = 1 << 16;
        let whole = crate::httputil::gzip::gunzip(input, max);
        let mut decoder = Gunzip::new(max);
        let mut body = Vec::new();
        let mut at = 0;
        let mut result = Ok(());
        while at < input.len() && result.is_ok() {
            let end = (at + 1 + rng.below(64)).min(input.len());
            result = decoder.feed(&input[at..end], &mut |p| body.extend_from_slice(p));
            at = end;
        }
        if result.is_ok() {
            result = decoder.finish(&mut |p| body.extend_from_slice(p));
        }
        assert!(body.len() <= max);
        match (whole, result) {
            (Ok(w), Ok(())) => assert_eq!(w, body),
            (Err(_), Err(_)) => {}
            (w, p) => panic!("whole {:?} but pieces {p:?}", w.map(|b| b.len())),
        }
    } else {
        // A round trip, flushed at random points.
        let mut stream = GzipStream::new();
        let mut wire = Vec::new();
        let mut at = 0;
        while at < input.len() {
            let end = (at + 1 + rng.below(256)).min(input.len());
            stream.write(&input[at..end], &mut wire, false);
            at = end;
        }
        stream.write(b"", &mut wire, true);
        let back = crate::httputil::gzip::gunzip(&wire, input.len()).expect("round trip");
        assert_eq!(back, input);
        let whole = crate::httputil::gzip::gzip(input);
        assert_eq!(
            crate::httputil::gzip::gunzip(&whole, input.len()).expect("whole"),
            input
        );
    }
}

/// The server's short path for the usual request head
/// (src/http/conn/usual_head.rs) against httparse, which reads every other
/// head: whatever head the short path takes, httparse must take with the
/// same length, method, target, version and fields at the same places, and
/// the short path must decline whatever httparse refuses or finds
/// incomplete, prefixes of a head it took among them (a head split across
/// reads). The first byte frames the rest, so that mutations reach
/// every part of a head: 0 the bytes as they are; 1 after `GET `; 2 after
/// a request line; 3 as fields between `Host: x` and the blank line.
pub fn usual_head(data: &[u8]) {
    let Some((&frame, rest)) = data.split_first() else {
        return;
    };
    let framed: Vec<u8> = match frame % 4 {
        0 => rest.to_vec(),
        1 => [&b"GET "[..], rest].concat(),
        2 => [&b"GET / HTTP/1.1\r\n"[..], rest].concat(),
        _ => [&b"GET / HTTP/1.1\r\nHost: x\r\n"[..], rest, b"\r\n\r\n"].concat(),
    };
    crate::http::conn::usual_head_differential::check_with_prefixes(&framed);
}

/// The HTTP client's response-head parser and framing decisions.
pub fn http_client_head(data: &[u8]) {
    if let Ok(head) = parse::parse_head(data) {
        for method in ["GET", "HEAD", "POST"] {
            if let Ok(framing) = parse::framing(&head, method) {
                let _ = parse::keep_alive(&head, framing);
            }
        }
    }
    // The strict Content-Length parse (the framing above uses it): what it
    // accepts is `1*DIGIT`, or a list of that one string repeated, and the
    // number is that string's value.
    for line in data.split(|&b| b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let value = line
            .split_once(':')
            .map_or(line, |(_, v)| v)
            .trim_matches([' ', '\t', '\r']);
        if let Ok(n) = httputil::parse_content_length(value) {
            let first = value.split(',').next().unwrap_or_default();
            assert!(
                !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()),
                "accepted Content-Length {value:?}"
            );
            let trimmed = first.trim_start_matches('0');
            assert_eq!(
                if trimmed.is_empty() {
                    Ok(0)
                } else {
                    trimmed.parse::<u64>()
                },
                Ok(n),
                "{value:?}"
            );
        }
    }
}

/// One step of [`iostream_framing`]'s reader.
#[derive(Clone, Debug)]
enum Op {
    Until(Vec<u8>),
    Bytes(usize),
}

/// IOStream's `read_until` / `read_bytes` on a byte stream written in random
/// chunks must return exactly what splitting the stream by the model gives.
/// Input: 8 seed bytes, a delimiter length (1..=3) and delimiter, the stream.
pub fn iostream_framing(data: &[u8]) {
    let (seed, rest) = data.split_at(data.len().min(8));
    let Some((&k, rest)) = rest.split_first() else {
        return;
    };
    let k = 1 + usize::from(k % 3);
    if rest.len() < k {
        return;
    }
    let (delim, stream) = rest.split_at(k);
    let stream = &stream[..stream.len().min(16 * 1024)];
    let mut rng = Rng::new(seed);

    // The chunks written and the reads made.
    let mut chunks = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let n = 1 + rng.below(64);
        let end = (at + n).min(stream.len());
        chunks.push(stream[at..end].to_vec());
        at = end;
    }
    let mut ops = Vec::new();
    for _ in 0..(1 + rng.below(64)) {
        ops.push(if rng.below(2) == 0 {
            Op::Until(delim.to_vec())
        } else {
            Op::Bytes(rng.below(40))
        });
    }

    // The model: a cursor over the stream.
    let mut expected: Vec<Option<Vec<u8>>> = Vec::new();
    let mut cursor = 0;
    for op in &ops {
        let got = match op {
            Op::Until(d) => {
                memchr::memmem::find(&stream[cursor..], d).map(|i| cursor + i + d.len())
            }
            Op::Bytes(n) => Some(cursor + n).filter(|&end| end <= stream.len()),
        };
        match got {
            Some(end) => {
                expected.push(Some(stream[cursor..end].to_vec()));
                cursor = end;
            }
            None => {
                expected.push(None);
                break;
            }
        }
    }

    let io_loop = IOLoop::new().expect("loop");
    let (r, w) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    let reader = IOStream::with_loop(r, &io_loop).expect("reader");
    let writer = IOStream::with_loop(w, &io_loop).expect("writer");
    feed(&io_loop, writer, Rc::new(chunks), 0);
    let got: Rc<RefCell<Vec<Option<Vec<u8>>>>> = Rc::default();
    let done = Future::new();
    read_next(reader, Rc::new(ops), 0, got.clone(), done.clone());
    io_loop
        .run_sync(move || done, Some(Duration::from_secs(10)))
        .expect("the reads did not finish");
    io_loop.close();
    assert_eq!(*got.borrow(), expected, "delimiter {delim:?}");
}

fn feed(io_loop: &IOLoop, writer: IOStream, chunks: Rc<Vec<Vec<u8>>>, i: usize) {
    if i == chunks.len() {
        let w = writer.clone();
        writer
            .flushed()
            .add_done_callback(move |_: &Future<()>| w.close());
        return;
    }
    drop(writer.write(chunks[i].clone()));
    let l = io_loop.clone();
    io_loop.add_callback(move || feed(&l, writer, chunks, i + 1));
}

fn read_next(
    reader: IOStream,
    ops: Rc<Vec<Op>>,
    i: usize,
    got: Rc<RefCell<Vec<Option<Vec<u8>>>>>,
    done: Future<()>,
) {
    if i == ops.len() {
        done.try_set_result(());
        return;
    }
    let read = match &ops[i] {
        Op::Until(d) => reader.read_until(d),
        Op::Bytes(n) => reader.read_bytes(*n),
    };
    let r = reader.clone();
    read.add_done_callback(move |f: &Future<Vec<u8>>| match f.take_result() {
        Ok(bytes) => {
            got.borrow_mut().push(Some(bytes));
            read_next(r, ops, i + 1, got, done);
        }
        Err(_) => {
            got.borrow_mut().push(None);
            done.try_set_result(());
        }
    });
}
