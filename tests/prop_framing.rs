//! Property test of stream framing (issue 11): any split of a message stream
//! into chunks gives the same frames through `read_until` / `read_bytes`.
//! The frames are known up front (each a length-prefixed-by-read_bytes or a
//! delimited message), so the expected result needs no model beyond them.

use std::cell::RefCell;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use proptest::prelude::*;
use squall::{Future, IOLoop, IOStream};

/// One frame: read with `read_until(b"\r\n")` (its body has no `\r\n`) or
/// with `read_bytes(len)` (any bytes).
#[derive(Clone, Debug)]
enum Frame {
    Line(Vec<u8>),
    Bytes(Vec<u8>),
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|mut v| {
            // No "\r\n" inside a line: drop every '\n'.
            v.retain(|&b| b != b'\n');
            v.extend_from_slice(b"\r\n");
            Frame::Line(v)
        }),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Frame::Bytes),
    ]
}

fn read_frames(frames: &[Frame], cuts: &[usize]) -> Vec<Vec<u8>> {
    let stream: Vec<u8> = frames
        .iter()
        .flat_map(|f| match f {
            Frame::Line(v) | Frame::Bytes(v) => v.clone(),
        })
        .collect();
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
    let got: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let done = Future::new();
    read_next(
        reader,
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
    let _ = writer.write(chunks[i].clone());
    let l = io_loop.clone();
    io_loop.add_callback(move || feed(&l, writer, chunks, i + 1));
}

fn read_next(
    reader: IOStream,
    frames: Rc<Vec<Frame>>,
    i: usize,
    got: Rc<RefCell<Vec<Vec<u8>>>>,
    done: Future<()>,
) {
    if i == frames.len() {
        let _ = done.set_result(());
        return;
    }
    let read = match &frames[i] {
        Frame::Line(_) => reader.read_until(b"\r\n", None),
        Frame::Bytes(v) => reader.read_bytes(v.len(), false),
    };
    let r = reader.clone();
    read.add_done_callback(move |f: &Future<Vec<u8>>| match f.take_result() {
        Ok(bytes) => {
            got.borrow_mut().push(bytes);
            read_next(r, frames, i + 1, got, done);
        }
        Err(err) => {
            let _ = done.set_error(err);
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn any_split_gives_the_same_frames(
        frames in prop::collection::vec(frame(), 0..30),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
    ) {
        let expected: Vec<Vec<u8>> = frames
            .iter()
            .map(|f| match f {
                Frame::Line(v) | Frame::Bytes(v) => v.clone(),
            })
            .collect();
        prop_assert_eq!(read_frames(&frames, &cuts), expected);
    }
}
