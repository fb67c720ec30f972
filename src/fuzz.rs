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
        xheaders: data.first().is_some_and(|b| b & 1 == 1),
        default_content_type: None,
        heads: Rc::new(crate::http::Heads::new(None)),
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

/// The chunked-body decoder: decoding the input in one call and in random
/// pieces (the first 8 bytes seed the split) must agree.
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
    let _ = writer.write(chunks[i].clone());
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
        let _ = done.set_result(());
        return;
    }
    let read = match &ops[i] {
        Op::Until(d) => reader.read_until(d, None),
        Op::Bytes(n) => reader.read_bytes(*n, false),
    };
    let r = reader.clone();
    read.add_done_callback(move |f: &Future<Vec<u8>>| match f.take_result() {
        Ok(bytes) => {
            got.borrow_mut().push(Some(bytes));
            read_next(r, ops, i + 1, got, done);
        }
        Err(_) => {
            got.borrow_mut().push(None);
            let _ = done.set_result(());
        }
    });
}

/// The urlencoded form parser, and the other text parsers of forms and
/// escapes: never a panic; a pair past the limits is refused only when a
/// limit is really passed, and what is accepted keeps within them.
pub fn form(data: &[u8]) {
    use crate::httputil::{Arguments, FormLimit, FormLimits};
    let limits = FormLimits {
        max_fields: 16,
        max_field_size: 64,
        ..FormLimits::default()
    };
    let mut args = Arguments::new();
    match httputil::parse_form_urlencoded(data, &mut args, &limits) {
        Ok(()) => {
            let values: usize = args.values().map(Vec::len).sum();
            assert!(values <= limits.max_fields, "{values} values accepted");
            // Decoding never makes a value longer.
            assert!(args
                .values()
                .flatten()
                .all(|v| v.len() <= limits.max_field_size));
        }
        Err(err) => {
            let pairs = 1 + data.iter().filter(|&&b| b == b'&').count();
            let longest = data
                .split(|&b| b == b'&')
                .map(|p| {
                    p.iter()
                        .position(|&b| b == b'=')
                        .map_or(0, |i| p.len() - i - 1)
                })
                .max()
                .unwrap_or(0);
            match FormLimit::from_error(&err) {
                Some(FormLimit::Fields) => assert!(pairs > limits.max_fields),
                Some(FormLimit::FieldSize) => assert!(longest > limits.max_field_size),
                other => panic!("urlencoded error {err} ({other:?})"),
            }
            assert!(args.is_empty(), "an error added arguments");
        }
    }
    let text = String::from_utf8_lossy(data);
    let (_, params) = httputil::parse_header(&text);
    assert!(params.keys().all(|k| *k == k.to_ascii_lowercase()));
    let _ = httputil::multipart_boundary(&text);
    let unescaped = crate::escape::xhtml_unescape(&text);
    assert_eq!(
        crate::escape::xhtml_unescape(&crate::escape::xhtml_escape(&text)),
        text
    );
    let _ = crate::escape::squeeze(&unescaped);
    let plus = data.first().is_some_and(|b| b & 1 == 1);
    let url = crate::escape::url_escape(&text, plus);
    assert_eq!(crate::escape::url_unescape(&url, plus), text);
}

/// The multipart parser: the first 8 bytes seed how the rest is split; the
/// rest is the body under boundary `ab` (the seed's first byte picks a
/// quoted one, or a longer one). Whole or in pieces it must agree (parts,
/// values, success), events must come in order, and what it holds between
/// pieces stays within a header block and a delimiter.
pub fn multipart(data: &[u8]) {
    use crate::httputil::{FormLimits, MultipartEvent, MultipartParser};
    let (seed, body) = data.split_at(data.len().min(8));
    let boundary: &[u8] = match seed.first().map(|b| b % 3) {
        Some(1) => b"\"ab\"",
        Some(2) => b"--ab-\r",
        _ => b"ab",
    };
    let limits = FormLimits {
        max_parts: 8,
        max_part_header_size: 256,
        max_field_size: 512,
        ..FormLimits::default()
    };
    type Parts = Vec<(String, Option<String>, Vec<u8>)>;
    let run = |pieces: &mut dyn FnMut() -> usize| -> Result<Parts, crate::Error> {
        let mut parser = MultipartParser::new(boundary, limits.clone())?;
        let mut parts: Parts = Vec::new();
        let mut open = false;
        let mut at = 0;
        while at < body.len() {
            let end = (at + pieces()).min(body.len());
            parser.feed(&body[at..end], |e| {
                match e {
                    MultipartEvent::PartStart(p) => {
                        assert!(!open, "a part inside a part");
                        assert!(!p.name.is_empty());
                        open = true;
                        parts.push((p.name, p.filename, Vec::new()));
                    }
                    MultipartEvent::Data(d) => {
                        assert!(open && !d.is_empty(), "stray data");
                        let value = &mut parts.last_mut().expect("a part").2;
                        value.extend_from_slice(d);
                    }
                    MultipartEvent::PartEnd => {
                        assert!(open, "an end without a start");
                        open = false;
                    }
                }
                Ok(())
            })?;
            assert!(
                parser.buffered() <= 256 + 4 + 8,
                "held {}",
                parser.buffered()
            );
            assert!(parser.parts() <= 8);
            at = end;
        }
        parser.finish()?;
        assert!(!open);
        Ok(parts)
    };
    let whole = run(&mut || usize::MAX);
    let mut rng = Rng::new(seed);
    let split = run(&mut || 1 + rng.below(12));
    match (&whole, &split) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "the split disagrees"),
        (Err(_), Err(_)) => {}
        _ => panic!("whole {whole:?} but split {split:?}"),
    }
    if let Ok(parts) = whole {
        for (_, filename, value) in parts {
            if filename.is_none() {
                assert!(value.len() <= 512);
            }
        }
    }
}
