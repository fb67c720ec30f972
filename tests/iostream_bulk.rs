//! Large reads and writes, which skip copies (a `read_bytes` that takes the
//! whole buffer takes its memory; a `write` goes straight from the caller's
//! bytes): data arrives intact and in order whatever mix of large, small,
//! exact and partial reads takes it, the end of the stream in the middle of a
//! large read behaves as for a small one, and borrowed and owned writes
//! queue in order behind a slow reader.

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::thread;

mod common;
use common::{pseudo_random, std_tcp_pair};

use squall::iostream::IOStream;
use squall::testing::AsyncTest;
use squall::{ErrorKind, Future};

/// Reads with each (size, partial) of `plan` in turn, cycling, until `total`
/// bytes came; resolves with them.
fn read_plan(
    stream: IOStream,
    plan: Rc<Vec<(usize, bool)>>,
    step: usize,
    total: usize,
    got: Rc<RefCell<Vec<u8>>>,
    done: Future<Vec<u8>>,
) {
    let left = total - got.borrow().len();
    if left == 0 {
        done.try_set_result(got.take());
        return;
    }
    let (n, partial) = plan[step % plan.len()];
    let n = if partial { n } else { n.min(left) };
    let read = if partial {
        stream.read_bytes_partial(n)
    } else {
        stream.read_bytes(n)
    };
    let (s, p, g, d) = (stream.clone(), plan.clone(), got.clone(), done.clone());
    // Through the loop, so buffered data does not recurse deeply.
    stream
        .io_loop()
        .add_future(&read, move |read: &Future<Vec<u8>>| {
            match read.take_result() {
                Ok(data) => {
                    if partial {
                        assert!(!data.is_empty() && data.len() <= n, "partial read of {n}");
                    } else {
                        assert_eq!(data.len(), n, "exact read");
                    }
                    g.borrow_mut().extend_from_slice(&data);
                    read_plan(s, p, step + 1, total, g, d);
                }
                Err(e) => {
                    d.try_set_error(e);
                }
            }
        });
}

#[test]
fn mixed_large_and_small_reads_get_every_byte_in_order() {
    const TOTAL: usize = 6 << 20;
    let data = pseudo_random(TOTAL, 7);
    let expected = data.clone();
    AsyncTest::new().run(move |_| {
        let (client, server) = std_tcp_pair();
        let writer = thread::spawn(move || {
            let mut client = client;
            // Uneven pieces, so reads meet the data at every offset.
            for piece in data.chunks(77_777) {
                client.write_all(piece).unwrap();
            }
        });
        let stream = IOStream::new(server).unwrap();
        let plan = vec![
            (64 * 1024, true),
            (40_000, false),
            (100, false),
            (20_000, true),
            (2 << 20, false), // past one turn's read budget
            (3, true),
            (16 * 1024, false),
        ];
        let done = Future::new();
        read_plan(
            stream.clone(),
            Rc::new(plan),
            0,
            TOTAL,
            Rc::new(RefCell::new(Vec::new())),
            done.clone(),
        );
        let out = Future::new();
        let o = out.clone();
        done.add_done_callback(move |d: &Future<Vec<u8>>| {
            writer.join().unwrap();
            let got = d.take_result().unwrap();
            assert!(got == expected, "bytes differ");
            assert_eq!(stream.buffered(), 0);
            stream.close();
            o.try_set_result(());
        });
        out
    });
}

#[test]
fn end_of_stream_during_a_large_read() {
    AsyncTest::new().run(|_| {
        let (mut client, server) = std_tcp_pair();
        client.write_all(&[9u8; 30_000]).unwrap();
        drop(client);
        let stream = IOStream::new(server).unwrap();
        // More than will ever come, exact: fails with StreamClosed; the
        // bytes stay for a partial read, as Tornado keeps them.
        let exact = stream.read_bytes(50_000);
        let s = stream.clone();
        let out = Future::new();
        let o = out.clone();
        stream
            .io_loop()
            .add_future(&exact, move |exact: &Future<Vec<u8>>| {
                let err = exact.take_result().unwrap_err();
                assert_eq!(err.kind(), ErrorKind::StreamClosed);
                assert!(s.closed());
                o.try_set_result(());
            });
        out
    });
    AsyncTest::new().run(|_| {
        let (mut client, server) = std_tcp_pair();
        client.write_all(&[9u8; 30_000]).unwrap();
        drop(client);
        let stream = IOStream::new(server).unwrap();
        let read = stream.read_bytes_partial(50_000);
        let out = Future::new();
        let o = out.clone();
        stream
            .io_loop()
            .add_future(&read, move |read: &Future<Vec<u8>>| {
                let data = read.take_result().unwrap();
                assert!(!data.is_empty() && data.iter().all(|&b| b == 9));
                o.try_set_result(());
            });
        out
    });
}

#[test]
fn borrowed_and_owned_writes_arrive_intact_and_in_order() {
    const PIECE: usize = 300_000;
    let data = pseudo_random(8 * PIECE, 11);
    let expected = data.clone();
    AsyncTest::new().run(move |_| {
        let (client, server) = std_tcp_pair();
        // A slow reader on another thread: most writes queue in part.
        let reader = thread::spawn(move || {
            use std::io::Read;
            let mut server = server;
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match server.read(&mut buf).unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&buf[..n]),
                }
                thread::sleep(std::time::Duration::from_micros(50));
            }
        });
        let stream = IOStream::new(client).unwrap();
        let mut last = Future::ready(());
        for (i, piece) in data.chunks(PIECE).enumerate() {
            last = if i % 2 == 0 {
                stream.write(piece)
            } else {
                stream.write(piece.to_vec())
            };
        }
        let empty = stream.write(&[][..]);
        assert!(empty.done());
        let out = Future::new();
        let o = out.clone();
        last.add_done_callback(move |done: &Future<()>| {
            done.take_result().unwrap();
            stream.close();
            let got = reader.join().unwrap();
            assert!(got == expected, "bytes differ");
            o.try_set_result(());
        });
        out
    });
}
