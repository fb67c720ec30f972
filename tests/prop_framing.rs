//! Property test of stream framing (issue 11): any split of a message stream
//! into chunks gives the same frames through `read_until` / `read_bytes`.
//!
//! The frames are not assumed but computed by a model: the bytes split at the
//! first delimiter (or counted off), `max_bytes` refusing a frame that would
//! be longer, and a read past the end failing with `StreamClosed`. Lines are
//! drawn from a small alphabet holding the delimiter's bytes, and the
//! delimiters include multi-byte and self-overlapping ones, so delimiters
//! split across chunks and near-misses are common.

use std::cell::RefCell;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use proptest::prelude::*;
use squall::{ErrorKind, Future, IOLoop, IOStream};

/// One piece of the stream and the read that takes it: a line read with
/// `read_until(delimiter, max_bytes)`, or bytes read with `read_bytes(len)`.
#[derive(Clone, Debug)]
enum Frame {
    Line(Vec<u8>, Option<usize>),
    Bytes(Vec<u8>),
}

const DELIMITERS: [&[u8]; 4] = [b"\r\n", b"\n", b"\r\n\r\n", b"aba"];

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        3 => (
            prop::collection::vec(prop::sample::select(b"ab\r\nxy".to_vec()), 0..40),
            prop::option::weighted(0.3, 0usize..48),
        )
            .prop_map(|(v, max)| Frame::Line(v, max)),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Frame::Bytes),
    ]
}

/// What the reads give, by the model: stops at the first error.
fn model(delimiter: &[u8], frames: &[Frame], stream: &[u8]) -> Vec<Result<Vec<u8>, ErrorKind>> {
    let mut out = Vec::new();
    let mut pos = 0;
    for f in frames.iter().map(Some).chain([None]) {
        let rest = &stream[pos..];
        let result = match f {
            Some(Frame::Bytes(v)) if rest.len() >= v.len() => Ok(rest[..v.len()].to_vec()),
            Some(Frame::Bytes(_)) => Err(ErrorKind::StreamClosed),
            Some(Frame::Line(_, max)) => until(delimiter, *max, rest),
            // One read past the end: it fails, it does not hang.
            None => until(delimiter, None, rest),
        };
        let failed = result.is_err();
        if let Ok(frame) = &result {
            pos += frame.len();
        }
        out.push(result);
        if failed {
            break;
        }
    }
    out
}

fn until(delimiter: &[u8], max: Option<usize>, rest: &[u8]) -> Result<Vec<u8>, ErrorKind> {
    let found = rest
        .windows(delimiter.len())
        .position(|w| w == delimiter)
        .map(|at| at + delimiter.len());
    match (found, max) {
        (Some(end), Some(m)) if end > m => Err(ErrorKind::UnsatisfiableRead),
        (Some(end), _) => Ok(rest[..end].to_vec()),
        (None, Some(m)) if rest.len() >= m => Err(ErrorKind::UnsatisfiableRead),
        (None, _) => Err(ErrorKind::StreamClosed),
    }
}

/// The bytes on the wire: each line followed by the delimiter.
fn wire(delimiter: &[u8], frames: &[Frame]) -> Vec<u8> {
    let mut stream = Vec::new();
    for f in frames {
        match f {
            Frame::Line(v, _) => {
                stream.extend_from_slice(v);
                stream.extend_from_slice(delimiter);
            }
            Frame::Bytes(v) => stream.extend_from_slice(v),
        }
    }
    stream
}

fn read_frames(
    delimiter: &'static [u8],
    frames: &[Frame],
    stream: &[u8],
    cuts: &[usize],
) -> Vec<Result<Vec<u8>, ErrorKind>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    cuts.push(0);
    cuts.push(stream.len());
    cuts.sort_unstable();
    cuts.dedup();
    let chunks: Vec<Vec<u8>> = cuts
        .windows(2)
        .map(|w| stream[w[0]..w[1]].to_vec())
        .collect();

    let io_loop = IOLoop::new().unwrap();
    let (r, w) = UnixStream::pair().unwrap();
    let reader = IOStream::with_loop(r, &io_loop).unwrap();
    let writer = IOStream::with_loop(w, &io_loop).unwrap();
    feed(&io_loop, writer, Rc::new(chunks), 0);
    let got: Got = Rc::default();
    let done = Future::new();
    read_next(
        reader,
        delimiter,
        Rc::new(frames.to_vec()),
        0,
        got.clone(),
        done.clone(),
    );
    io_loop
        .run_sync(move || done, Some(Duration::from_secs(10)))
        .unwrap();
    io_loop.close();
    let got = got.borrow().clone();
    got
}

/// Writes one chunk per loop iteration, then closes.
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

type Got = Rc<RefCell<Vec<Result<Vec<u8>, ErrorKind>>>>;

/// Reads frame `i` (or, past the last, one more line), then the next; the
/// first error ends it.
fn read_next(
    reader: IOStream,
    delimiter: &'static [u8],
    frames: Rc<Vec<Frame>>,
    i: usize,
    got: Got,
    done: Future<()>,
) {
    let read = match frames.get(i) {
        Some(Frame::Line(_, Some(max))) => reader.read_until_max_bytes(delimiter, *max),
        Some(Frame::Line(_, None)) => reader.read_until(delimiter),
        Some(Frame::Bytes(v)) => reader.read_bytes(v.len()),
        None => reader.read_until(delimiter),
    };
    let r = reader.clone();
    read.add_done_callback(move |f: &Future<Vec<u8>>| {
        let result = f.take_result().map_err(|e| e.kind());
        let last = result.is_err() || i == frames.len();
        got.borrow_mut().push(result);
        if last {
            done.try_set_result(());
        } else {
            read_next(r, delimiter, frames, i + 1, got, done);
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn any_split_gives_the_same_frames(
        delimiter in prop::sample::select(DELIMITERS.to_vec()),
        frames in prop::collection::vec(frame(), 0..30),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
    ) {
        let stream = wire(delimiter, &frames);
        let expected = model(delimiter, &frames, &stream);
        prop_assert_eq!(read_frames(delimiter, &frames, &stream, &cuts), expected);
    }
}

#[test]
fn a_delimiter_split_across_chunks_is_found() {
    // "\r\n\r\n" arriving a byte at a time after a near-miss "\r\n\r".
    let frames = [Frame::Line(b"x\r\n\rx".to_vec(), None)];
    let stream = wire(b"\r\n\r\n", &frames);
    let cuts: Vec<usize> = (0..stream.len()).collect();
    let got = read_frames(b"\r\n\r\n", &frames, &stream, &cuts);
    assert_eq!(got[0].as_deref(), Ok(&b"x\r\n\rx\r\n\r\n"[..]));
    assert_eq!(got[1], Err(ErrorKind::StreamClosed));
}
