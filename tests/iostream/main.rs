//! IOStream's behaviour through its public API: a port of what Tornado's
//! `tornado/test/iostream_test.py` covers (minus SSL, pipes, streaming
//! callbacks and `read_into`, which squall does not have), plus limits,
//! connect errors, many clients and throughput.
//!
//! Tests are written as chains of futures on an `AsyncTest` loop. A failed
//! assertion inside a step fails the test's future at once, with the panic's
//! message, instead of waiting for the timeout.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

#[path = "../common/mod.rs"]
mod common;
use common::{and_then, panic_message, pseudo_random, std_tcp_pair, then, R};

use squall::iostream::IOStream;
use squall::testing::AsyncTest;
use squall::{Error, ErrorKind, Events, Future, IOLoop};

// ----- helpers -------------------------------------------------------------

/// The error of a future expected to fail.
fn expect_err<T: 'static>(fut: &Future<T>) -> Future<Error> {
    then(fut, |r| match r {
        Ok(_) => Future::failed(Error::other("expected an error, got a value")),
        Err(e) => Future::ready(e),
    })
}

/// The error of a future that must already be done (failed).
fn failed_now<T: 'static>(fut: &Future<T>) -> Error {
    assert!(fut.done(), "the future should be done at once");
    fut.take_result()
        .err()
        .expect("the future should have failed")
}

/// The value of a future that must already be done.
fn value_now<T: 'static>(fut: &Future<T>) -> T {
    assert!(fut.done(), "the future should be done at once");
    fut.take_result().expect("the future should have succeeded")
}

/// Resolves after `delay`.
fn sleep(io_loop: &IOLoop, delay: Duration) -> Future<()> {
    let f = Future::new();
    let f2 = f.clone();
    io_loop.call_later(delay, move || f2.set_result(()));
    f
}

/// Resolves on the loop's next iteration (when the loop is running).
fn next_turn(io_loop: &IOLoop) -> Future<()> {
    let f = Future::new();
    let f2 = f.clone();
    io_loop.add_callback(move || f2.set_result(()));
    f
}

/// Resolves once `cond()` holds, checking every millisecond (the test's
/// timeout bounds the wait). For "the data has arrived", which no fixed
/// sleep can promise on a loaded machine.
fn until(io_loop: &IOLoop, cond: impl Fn() -> bool + 'static) -> Future<()> {
    fn check(io_loop: IOLoop, cond: Rc<dyn Fn() -> bool>, done: Future<()>) {
        if cond() {
            done.try_set_result(());
        } else {
            let l = io_loop.clone();
            io_loop.call_later(Duration::from_millis(1), move || check(l, cond, done));
        }
    }
    let done = Future::new();
    let (l, d) = (io_loop.clone(), done.clone());
    io_loop.add_callback(move || check(l, Rc::new(cond), d));
    done
}

/// Runs `step(i)` on `n` successive loop iterations (one call per iteration),
/// then resolves. A panic in `step` fails the future.
fn each_turn(io_loop: &IOLoop, n: usize, step: impl FnMut(usize) + 'static) -> Future<()> {
    struct State<F> {
        i: usize,
        n: usize,
        step: F,
        done: Future<()>,
        io_loop: IOLoop,
    }
    fn turn<F: FnMut(usize) + 'static>(st: Rc<RefCell<State<F>>>) {
        let mut s = st.borrow_mut();
        if s.i == s.n {
            s.done.try_set_result(());
            return;
        }
        let i = s.i;
        s.i += 1;
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| (s.step)(i))) {
            s.done
                .try_set_error(Error::other(format!("step {i}: {}", panic_message(panic))));
            return;
        }
        let l = s.io_loop.clone();
        drop(s);
        l.add_callback(move || turn(st));
    }
    let done = Future::new();
    let st = Rc::new(RefCell::new(State {
        i: 0,
        n,
        step,
        done: done.clone(),
        io_loop: io_loop.clone(),
    }));
    io_loop.add_callback(move || turn(st));
    done
}

/// Resolves with every outcome once all `futures` are done.
fn join_all<T: 'static>(futures: Vec<Future<T>>) -> Future<Vec<R<T>>> {
    let out = Future::new();
    let n = futures.len();
    if n == 0 {
        out.try_set_result(Vec::new());
        return out;
    }
    let results: Rc<RefCell<Vec<Option<R<T>>>>> =
        Rc::new(RefCell::new((0..n).map(|_| None).collect()));
    let left = Rc::new(Cell::new(n));
    for (i, f) in futures.into_iter().enumerate() {
        let (results, left, out) = (results.clone(), left.clone(), out.clone());
        f.add_done_callback(move |done: &Future<T>| {
            results.borrow_mut()[i] = Some(done.take_result());
            left.set(left.get() - 1);
            if left.get() == 0 {
                let all = results.borrow_mut().drain(..).map(Option::unwrap).collect();
                out.try_set_result(all);
            }
        });
    }
    out
}

/// A future resolved by the stream's close callback, and the number of times
/// the callback ran.
fn on_close(stream: &IOStream) -> (Future<()>, Rc<Cell<usize>>) {
    let closed = Future::new();
    let count = Rc::new(Cell::new(0));
    let (c, n) = (closed.clone(), count.clone());
    stream.set_close_callback(move || {
        n.set(n.get() + 1);
        c.try_set_result(());
    });
    (closed, count)
}

/// Two connected IOStreams over a Unix socketpair.
fn unix_pair() -> (IOStream, IOStream) {
    let (a, b) = UnixStream::pair().unwrap();
    (IOStream::new(a).unwrap(), IOStream::new(b).unwrap())
}

/// Two connected IOStreams over loopback TCP.
fn tcp_pair() -> (IOStream, IOStream) {
    let (c, s) = std_tcp_pair();
    (IOStream::new(c).unwrap(), IOStream::new(s).unwrap())
}

/// An address that refuses connections: a port just bound and released.
fn refusing_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// An order-sensitive checksum, word at a time (fast enough in debug builds).
fn checksum(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ data.len() as u64;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().unwrap());
        h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn assert_closed_error(err: &Error) {
    assert_eq!(err.kind(), ErrorKind::StreamClosed, "{err}");
}

/// The cause a StreamClosed error carries, if any.
fn cause_of(err: &Error) -> Option<Error> {
    std::error::Error::source(err)
        .and_then(|s| s.downcast_ref::<Error>())
        .cloned()
}

// ----- read_until ----------------------------------------------------------

#[test]
fn read_until_across_one_byte_writes() {
    AsyncTest::new().run(|io_loop| {
        let (rs, ws) = unix_pair();
        let message = b"GET / HTTP/1.0\r\nHost: example\r\n\r\nbody".to_vec();
        let head_len = message.len() - 4;
        let head = rs.read_until(b"\r\n\r\n");
        assert!(!head.done());
        // One byte per loop iteration: the reader sees it arrive in as many
        // reads, and must find the delimiter only when its last byte comes.
        let sent = {
            let (head, rs, msg) = (head.clone(), rs.clone(), message.clone());
            each_turn(io_loop, message.len(), move |i| {
                assert!(rs.buffered() <= i);
                if i < head_len {
                    assert!(!head.done(), "done after {i} bytes");
                    assert!(rs.reading());
                }
                drop(ws.write(&msg[i..=i]));
            })
        };
        and_then(&sent, move |()| {
            and_then(&head, move |line| {
                assert_eq!(line, b"GET / HTTP/1.0\r\nHost: example\r\n\r\n");
                // What came after the delimiter stays buffered (it may still
                // be arriving: read it as a separate read).
                rs.read_bytes(4)
            })
        })
    });
}

#[test]
fn read_until_with_delimiter_split_over_two_reads() {
    AsyncTest::new().run(|io_loop| {
        let delimiter: &'static [u8] = b"--boundary--";
        // Split the delimiter at every position; each round is a new pair.
        let rounds: Vec<Future<()>> = (1..delimiter.len())
            .map(|split| {
                let (rs, ws) = unix_pair();
                let line = rs.read_until(delimiter);
                let mut first = b"partial-boundary-".to_vec(); // a decoy prefix
                first.extend_from_slice(&delimiter[..split]);
                let mut second = delimiter[split..].to_vec();
                second.extend_from_slice(b"tail");
                drop(ws.write(first.clone()));
                let r = rs.clone();
                let want = first.len();
                let arrived = until(io_loop, move || r.buffered() >= want);
                and_then(&arrived, move |()| {
                    // The first part has arrived, and is not enough.
                    assert_eq!(rs.buffered(), first.len());
                    assert!(!line.done());
                    drop(ws.write(second));
                    and_then(&line, move |got| {
                        let mut want = first.clone();
                        want.extend_from_slice(&delimiter[split..]);
                        assert_eq!(got, want);
                        and_then(&rs.read_bytes(4), move |tail| {
                            assert_eq!(tail, b"tail");
                            drop(rs);
                            Future::ready(())
                        })
                    })
                })
            })
            .collect();
        then(&join_all(rounds), |all| {
            for r in all.unwrap() {
                r.unwrap();
            }
            Future::ready(())
        })
    });
}

#[test]
fn large_read_until_is_not_quadratic() {
    // Tornado's test_large_read_until: 4096 writes of 1 KiB, then the
    // delimiter; read_until used to rescan the whole buffer on each read.
    AsyncTest::new().timeout(Duration::from_secs(30)).run(|_| {
        let (rs, ws) = unix_pair();
        let started = Instant::now();
        for _ in 0..4096 {
            drop(ws.write(vec![b'A'; 1024]));
        }
        drop(ws.write(&b"\r\n"[..]));
        and_then(&rs.read_until(b"\r\n"), move |data| {
            assert_eq!(data.len(), 4096 * 1024 + 2);
            assert!(started.elapsed() < Duration::from_secs(10));
            drop(ws);
            Future::ready(())
        })
    });
}

#[test]
fn read_until_max_bytes() {
    AsyncTest::new().run(|_| {
        let (rs, ws) = unix_pair();
        let (closed, close_count) = on_close(&rs);
        // Room to spare.
        let f = rs.read_until_max_bytes(b"def", 50);
        drop(ws.write(&b"abcdef"[..]));
        and_then(&f, move |data| {
            assert_eq!(data, b"abcdef");
            // Just enough.
            let f = rs.read_until_max_bytes(b"def", 6);
            drop(ws.write(&b"abcdef"[..]));
            and_then(&f, move |data| {
                assert_eq!(data, b"abcdef");
                // Not enough: known only once the data comes.
                let f = rs.read_until_max_bytes(b"def", 5);
                assert!(!f.done());
                drop(ws.write(&b"123456"[..]));
                and_then(&expect_err(&f), move |err| {
                    assert_eq!(err.kind(), ErrorKind::UnsatisfiableRead, "{err}");
                    assert!(rs.closed());
                    assert_eq!(rs.error().unwrap().kind(), ErrorKind::UnsatisfiableRead);
                    and_then(&closed, move |()| {
                        assert_eq!(close_count.get(), 1);
                        drop(ws);
                        Future::ready(())
                    })
                })
            })
        })
    });
}

#[test]
fn read_until_max_bytes_inline() {
    // The data is already buffered: the read fails at once, and the stream
    // closes.
    AsyncTest::new().run(|io_loop| {
        let (rs, ws) = unix_pair();
        let (closed, _) = on_close(&rs);
        drop(ws.write(&b"123456"[..]));
        let r = rs.clone();
        and_then(&until(io_loop, move || r.buffered() == 6), move |()| {
            // Read into the buffer on arrival, with no read pending.
            assert_eq!(rs.buffered(), 6);
            let f = rs.read_until_max_bytes(b"def", 5);
            let err = failed_now(&f);
            assert_eq!(err.kind(), ErrorKind::UnsatisfiableRead);
            assert!(rs.closed());
            drop(ws);
            closed
        })
    });
}

#[test]
fn read_until_fails_when_the_delimiter_lies_beyond_max_bytes() {
    // Tornado's test_read_until_max_bytes_ignores_extra: the delimiter arrives
    // in the same chunk that crosses the limit; it is still too far.
    AsyncTest::new().run(|_| {
        let (rs, ws) = unix_pair();
        let (closed, _) = on_close(&rs);
        drop(ws.write(&b"abcdef"[..]));
        let f = rs.read_until_max_bytes(b"def", 5);
        and_then(&expect_err(&f), move |err| {
            assert_eq!(err.kind(), ErrorKind::UnsatisfiableRead);
            assert!(rs.closed());
            drop(ws);
            closed
        })
    });
}

#[test]
fn read_until_max_bytes_reached_by_small_pieces() {
    AsyncTest::new().run(|io_loop| {
        let (rs, ws) = unix_pair();
        let f = rs.read_until_max_bytes(b"\n", 10);
        let (fut, r, w) = (f.clone(), rs.clone(), ws.clone());
        // One byte a turn: the read stays pending for 9 bytes, and fails on
        // the 10th (a delimiter could now only end beyond the limit).
        let sent = each_turn(io_loop, 9, move |i| {
            assert!(!fut.done(), "failed after {i} bytes");
            assert!(!r.closed());
            drop(w.write(&b"x"[..]));
        });
        let io = io_loop.clone();
        and_then(&sent, move |()| {
            let r = rs.clone();
            and_then(&until(&io, move || r.buffered() == 9), move |()| {
                assert!(!f.done());
                assert_eq!(rs.buffered(), 9);
                drop(ws.write(&b"x"[..]));
                and_then(&expect_err(&f), move |err| {
                    assert_eq!(err.kind(), ErrorKind::UnsatisfiableRead);
                    assert!(rs.closed());
                    Future::ready(())
                })
            })
        })
    });
}

// ----- read_bytes / read_until_close ----------------------------------------

#[test]
fn read_bytes_exact() {
    AsyncTest::new().run(|_| {
        let (rs, ws) = unix_pair();
        let f = rs.read_bytes(10);
        drop(ws.write(&b"0123"[..]));
        drop(ws.write(&b"4567"[..]));
        drop(ws.write(&b"89abc"[..]));
        and_then(&f, move |data| {
            assert_eq!(data, b"0123456789");
            and_then(&rs.read_bytes(3), move |rest| {
                assert_eq!(rest, b"abc");
                // Zero bytes is done at once.
                assert_eq!(value_now(&rs.read_bytes(0)), b"");
                drop(ws);
                Future::ready(())
            })
        })
    });
}

/// Tornado's `read_into`: buffered bytes are copied in, the rest arrives
/// straight from the socket, and the caller's vector comes back (the same
/// allocation, its length unchanged) with the count of new bytes.
#[test]
fn read_into_fills_the_callers_buffer() {
    AsyncTest::new().run(|_| {
        let (rs, ws) = unix_pair();
        let buf = vec![0u8; 10];
        let at = buf.as_ptr() as usize;
        let f = rs.read_into(buf);
        drop(ws.write(&b"0123"[..]));
        drop(ws.write(&b"456789abc"[..]));
        and_then(&f, move |(buf, n)| {
            assert_eq!((&buf[..], n), (&b"0123456789"[..], 10));
            assert_eq!(buf.as_ptr() as usize, at, "the caller's allocation");
            // "abc" is buffered now: copied in; partial resolves with it.
            let (buf, n) = value_now(&rs.read_into_partial(buf));
            assert_eq!((&buf[..n], buf.len()), (&b"abc"[..], 10));
            // Nothing buffered: straight from the socket, partial.
            let f = rs.read_into_partial(vec![7; 64 * 1024]);
            let big = pseudo_random(200 * 1024, 9);
            drop(ws.write(big.clone()));
            let ws2 = ws.clone();
            and_then(&f, move |(first, n)| {
                assert!(n > 0 && n <= 64 * 1024 && first.len() == 64 * 1024);
                assert_eq!(first[..n], big[..n]);
                // The rest, whole: read_into(buf) waits for all of it.
                let f = rs.read_into(vec![0; big.len() - n]);
                and_then(&f, move |(second, m)| {
                    assert_eq!(m, big.len() - n);
                    assert_eq!(second[..], big[n..]);
                    // The peer leaves before a full read is filled: closed.
                    let f = rs.read_into(vec![0; 8]);
                    drop(ws2.write(&b"xyz"[..]));
                    ws2.close();
                    then(&f, |r| {
                        assert_closed_error(&r.expect_err("short read_into"));
                        Future::ready(())
                    })
                })
            })
        })
    });
}

#[test]
fn read_bytes_partial() {
    AsyncTest::new().run(|_| {
        let (rs, ws) = unix_pair();
        // More than there is: resolves with what comes.
        let f = rs.read_bytes_partial(50);
        drop(ws.write(&b"hello"[..]));
        and_then(&f, move |data| {
            assert_eq!(data, b"hello");
            // Less than there is: the count is still respected.
            let f = rs.read_bytes_partial(3);
            drop(ws.write(&b"world"[..]));
            and_then(&f, move |data| {
                assert_eq!(data, b"wor");
                // Partial reads never return nothing; read_bytes(0) does.
                assert_eq!(value_now(&rs.read_bytes_partial(0)), b"");
                assert_eq!(value_now(&rs.read_bytes_partial(10)), b"ld");
                drop(ws);
                Future::ready(())
            })
        })
    });
}

#[test]
fn read_until_close_returns_everything() {
    AsyncTest::new().run(|_| {
        let (rs, ws) = unix_pair();
        let (closed, _) = on_close(&rs);
        let all = rs.read_until_close();
        drop(ws.write(&b"hel"[..]));
        drop(ws.write(&b"lo "[..]));
        let w = ws.write(&b"world"[..]);
        and_then(&w, move |()| {
            ws.close();
            and_then(&all, move |data| {
                assert_eq!(data, b"hello world");
                assert!(rs.closed());
                // Nothing else to read: the error comes at once.
                assert_closed_error(&failed_now(&rs.read_bytes(1)));
                assert_closed_error(&failed_now(&rs.read_until(b"\n")));
                assert_eq!(value_now(&rs.read_until_close()), b"");
                closed
            })
        })
    });
}

#[test]
fn read_until_close_after_close() {
    AsyncTest::new().run(|_| {
        let (rs, ws) = unix_pair();
        drop(ws.write(&b"1234"[..]));
        ws.close();
        // The stream does not close before the data is read: the data is
        // buffered when it sees the end.
        and_then(&rs.read_bytes(1), move |one| {
            assert_eq!(one, b"1");
            and_then(&rs.read_until_close(), move |rest| {
                assert_eq!(rest, b"234");
                Future::ready(())
            })
        })
    });
}

#[test]
fn end_of_stream_arriving_with_the_data_is_seen() {
    // The data and the FIN arrive before the loop polls: one edge for both.
    // The stream must not stop at the data and miss the end.
    AsyncTest::new().run(|io_loop| {
        let (a, mut peer) = UnixStream::pair().unwrap();
        let rs = IOStream::new(a).unwrap();
        let all = rs.read_until_close();
        let (closed, _) = on_close(&rs);
        assert!(!all.done());
        io_loop.add_callback(move || {
            peer.write_all(b"last words").unwrap();
            drop(peer);
        });
        and_then(&all, move |data| {
            assert_eq!(data, b"last words");
            closed
        })
    });
}

#[test]
fn end_of_stream_is_seen_without_a_pending_read() {
    // Data then FIN in one edge with no read pending: the stream buffers the
    // data and closes (its close callback runs); the data is still readable.
    AsyncTest::new().run(|io_loop| {
        let (a, mut peer) = UnixStream::pair().unwrap();
        let rs = IOStream::new(a).unwrap();
        let (closed, _) = on_close(&rs);
        io_loop.add_callback(move || {
            peer.write_all(b"bye").unwrap();
            drop(peer);
        });
        and_then(&closed, move |()| {
            assert!(rs.closed());
            assert_eq!(value_now(&rs.read_bytes(3)), b"bye");
            Future::ready(())
        })
    });
}

#[test]
fn delayed_close_callback() {
    // Tornado's test_future_delayed_close_callback and test_close_buffered_data.
    AsyncTest::new().run(|io_loop| {
        let (rs, ws) = unix_pair();
        drop(ws.write(vec![b'A'; 512]));
        let io = io_loop.clone();
        and_then(&rs.read_bytes(256), move |first| {
            assert_eq!(first, vec![b'A'; 256]);
            ws.close();
            and_then(&sleep(&io, Duration::from_millis(10)), move |()| {
                and_then(&rs.read_bytes(256), move |second| {
                    assert_eq!(second, vec![b'A'; 256]);
                    assert_closed_error(&failed_now(&rs.read_bytes(1)));
                    Future::ready(())
                })
            })
        })
    });
}

#[test]
fn buffered_data_satisfies_reads_without_a_loop_turn() {
    AsyncTest::new().run(|_| {
        let (rs, ws) = unix_pair();
        drop(ws.write(&b"abc\r\ndef\r\nghijkl"[..]));
        and_then(&rs.read_until(b"\r\n"), move |first| {
            assert_eq!(first, b"abc\r\n");
            // Everything else arrived in the same read: each of these is
            // done when returned.
            assert_eq!(value_now(&rs.read_until(b"\r\n")), b"def\r\n");
            assert_eq!(value_now(&rs.read_bytes(2)), b"gh");
            assert_eq!(value_now(&rs.read_bytes_partial(100)), b"ijkl");
            assert!(!rs.reading());
            assert_eq!(rs.buffered(), 0);
            // And with nothing buffered, a read waits.
            let f = rs.read_bytes(1);
            assert!(!f.done() && rs.reading());
            drop(ws.write(&b"z"[..]));
            and_then(&f, |z| {
                assert_eq!(z, b"z");
                Future::ready(())
            })
        })
    });
}

#[test]
fn many_mixed_reads_with_random_sizes() {
    // Tornado's test_many_mixed_reads: random write sizes, random read sizes
    // and kinds; the bytes come out in order.
    AsyncTest::new().timeout(Duration::from_secs(30)).run(|_| {
        let (rs, ws) = unix_pair();
        let total = 1_000_000;
        let data = pseudo_random(total, 42);
        let mut rng = 7u64;
        let mut next = move |max: usize| {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            1 + (rng >> 33) as usize % max
        };
        let mut off = 0;
        while off < total {
            let n = next(1000).min(total - off);
            drop(ws.write(&data[off..off + n]));
            off += n;
        }
        // Read iteratively: a read satisfied at once is consumed in the same
        // loop, so there is no recursion however much is buffered.
        let received = Rc::new(RefCell::new(Vec::with_capacity(total)));
        let done = Future::new();
        fn read_more(
            rs: IOStream,
            received: Rc<RefCell<Vec<u8>>>,
            total: usize,
            mut next: Box<dyn FnMut(usize) -> usize>,
            done: Future<()>,
        ) {
            loop {
                let have = received.borrow().len();
                if have == total {
                    done.try_set_result(());
                    return;
                }
                let want = next(1000).min(total - have);
                let f = match next(3) {
                    1 => rs.read_bytes(want),
                    2 => rs.read_bytes_partial(want),
                    _ => rs.read_bytes(want),
                };
                if f.done() {
                    match f.take_result() {
                        Ok(chunk) => received.borrow_mut().extend_from_slice(&chunk),
                        Err(e) => {
                            done.try_set_error(e);
                            return;
                        }
                    }
                    continue;
                }
                let (rs, received, done) = (rs.clone(), received.clone(), done.clone());
                f.add_done_callback(move |f: &Future<Vec<u8>>| match f.take_result() {
                    Ok(chunk) => {
                        received.borrow_mut().extend_from_slice(&chunk);
                        read_more(rs, received, total, next, done);
                    }
                    Err(e) => {
                        done.try_set_error(e);
                    }
                });
                return;
            }
        }
        read_more(rs, received.clone(), total, Box::new(next), done.clone());
        and_then(&done, move |()| {
            assert!(*received.borrow() == data, "the bytes differ");
            drop(ws);
            Future::ready(())
        })
    });
}

// ----- writes ----------------------------------------------------------------

#[test]
fn write_zero_bytes() {
    AsyncTest::new().run(|_| {
        let (rs, ws) = unix_pair();
        value_now(&ws.write(Vec::new()));
        ws.close();
        rs.close();
        Future::ready(())
    });
}

#[test]
fn hundred_mib_write_to_a_slow_reader_arrives_intact() {
    AsyncTest::new().timeout(Duration::from_secs(120)).run(|_| {
        const SIZE: usize = 100 * 1024 * 1024;
        let (client, server) = std_tcp_pair();
        let ws = IOStream::new(client).unwrap();
        let data = pseudo_random(SIZE, 1);
        let sum = checksum(&data);
        // The reader dawdles at first (so the writer has to queue and wait
        // for the socket), then reads as fast as it can.
        let reader = std::thread::spawn(move || {
            let mut server = server;
            let mut received = Vec::with_capacity(SIZE);
            let mut chunk = vec![0u8; 64 * 1024];
            for _ in 0..20 {
                std::thread::sleep(Duration::from_millis(2));
                let n = server.read(&mut chunk).unwrap();
                received.extend_from_slice(&chunk[..n]);
            }
            server.read_to_end(&mut received).unwrap();
            received
        });
        let written = ws.write(data);
        assert!(
            ws.writing(),
            "a 100 MiB write should not fit in the socket at once"
        );
        and_then(&written, move |()| {
            assert!(!ws.writing());
            ws.close();
            let received = reader.join().unwrap();
            assert_eq!(received.len(), SIZE);
            assert_eq!(checksum(&received), sum, "the data arrived corrupted");
            Future::ready(())
        })
    });
}

#[test]
fn writes_complete_in_order() {
    // Many writes queue while the peer does not read; they reach it in order,
    // and their futures complete in order.
    AsyncTest::new().timeout(Duration::from_secs(30)).run(|_| {
        let (rs, ws) = unix_pair();
        let order = Rc::new(RefCell::new(Vec::new()));
        let mut expected = Vec::new();
        let mut futures = Vec::new();
        for i in 0..2000u32 {
            let chunk: Vec<u8> = format!("<{i}:{}>", "x".repeat(i as usize % 977)).into_bytes();
            expected.extend_from_slice(&chunk);
            let f = ws.write(chunk);
            let order = order.clone();
            f.add_done_callback(move |f: &Future<()>| {
                assert!(f.error().is_none());
                order.borrow_mut().push(i);
            });
            futures.push(f);
        }
        assert!(ws.writing(), "the writes should have queued");
        assert!(futures.last().map(|f| !f.done()).unwrap());
        let all = rs.read_bytes(expected.len());
        and_then(&all, move |data| {
            assert!(data == expected, "the bytes arrived out of order");
            and_then(&join_all(futures), move |results| {
                assert!(results.iter().all(Result::is_ok));
                let order = order.borrow();
                assert_eq!(order.len(), 2000);
                assert!(
                    order.windows(2).all(|w| w[0] < w[1]),
                    "futures out of order"
                );
                Future::ready(())
            })
        })
    });
}

#[test]
fn concurrent_producers_futures_are_never_orphaned() {
    // Tornado's test_future_write: several producers each await their own
    // writes while one consumer reads.
    AsyncTest::new().timeout(Duration::from_secs(30)).run(|_| {
        let (rs, ws) = unix_pair();
        let (m, n, producers) = (5000usize, 100usize, 10usize);
        let total = m * n * producers;
        fn produce(ws: IOStream, left: usize, m: usize, done: Future<()>) {
            if left == 0 {
                done.try_set_result(());
                return;
            }
            ws.write(vec![b'x'; m])
                .add_done_callback(move |f: &Future<()>| match f.error() {
                    Some(e) => {
                        done.try_set_error(e);
                    }
                    None => produce(ws, left - 1, m, done),
                });
        }
        let mut all = Vec::new();
        for _ in 0..producers {
            let done = Future::new();
            produce(ws.clone(), n, m, done.clone());
            all.push(done);
        }
        let consumed = rs.read_bytes(total);
        and_then(&consumed, move |data| {
            assert_eq!(data.len(), total);
            and_then(&join_all(all), |results| {
                for r in results {
                    r.unwrap();
                }
                Future::ready(())
            })
        })
    });
}

// ----- closing -----------------------------------------------------------------

#[test]
fn close_callback_runs_once() {
    AsyncTest::new().run(|io_loop| {
        let (rs, ws) = unix_pair();
        let (closed, count) = on_close(&rs);
        drop(ws.write(&b"a"[..]));
        let io = io_loop.clone();
        and_then(&rs.read_bytes(1), move |a| {
            assert_eq!(a, b"a");
            assert_eq!(count.get(), 0);
            ws.close();
            and_then(&closed, move |()| {
                assert!(rs.closed());
                assert!(rs.error().is_none(), "a clean close has no error");
                // Closing again changes nothing.
                rs.close();
                rs.close();
                and_then(&sleep(&io, Duration::from_millis(10)), move |()| {
                    assert_eq!(count.get(), 1);
                    // A callback set on a closed stream runs (once) too.
                    let (late, late_count) = on_close(&rs);
                    and_then(&late, move |()| {
                        assert_eq!(late_count.get(), 1);
                        assert_eq!(count.get(), 1);
                        Future::ready(())
                    })
                })
            })
        })
    });
}

#[test]
fn close_callback_with_pending_read() {
    AsyncTest::new().run(|_| {
        let (rs, ws) = unix_pair();
        let (closed, _) = on_close(&rs);
        drop(ws.write(&b"OK\r\n"[..]));
        and_then(&rs.read_until(b"\r\n"), move |ok| {
            assert_eq!(ok, b"OK\r\n");
            ws.close();
            let pending = rs.read_until(b"\r\n");
            and_then(&closed, move |()| {
                assert_closed_error(&failed_now(&pending));
                Future::ready(())
            })
        })
    });
}

#[test]
fn explicit_close_fails_pending_futures() {
    AsyncTest::new().run(|_| {
        let (rs, ws) = unix_pair();
        let read = rs.read_bytes(10);
        let write = rs.write(vec![0u8; 16 << 20]);
        assert!(!read.done() && !write.done());
        rs.close();
        assert_closed_error(&failed_now(&read));
        assert_closed_error(&failed_now(&write));
        assert!(!rs.reading() && !rs.writing());
        // Everything fails afterwards, without a loop turn.
        assert_closed_error(&failed_now(&rs.write(&b"x"[..])));
        assert_closed_error(&failed_now(&rs.read_bytes(1)));
        assert!(rs.set_nodelay(true).is_err());
        drop(ws);
        Future::ready(())
    });
}

#[test]
fn pending_futures_fail_when_the_peer_closes() {
    AsyncTest::new().run(|io_loop| {
        let (a, peer) = UnixStream::pair().unwrap();
        let rs = IOStream::new(a).unwrap();
        let (closed, _) = on_close(&rs);
        let read = rs.read_until(b"\n");
        let write1 = rs.write(vec![1u8; 8 << 20]);
        let write2 = rs.write(&b"more"[..]);
        assert!(rs.writing(), "the writes should have queued");
        io_loop.add_callback(move || drop(peer));
        and_then(&closed, move |()| {
            assert!(rs.closed());
            assert_closed_error(&failed_now(&read));
            assert_closed_error(&failed_now(&write1));
            assert_closed_error(&failed_now(&write2));
            Future::ready(())
        })
    });
}

#[test]
fn pending_futures_fail_when_the_peer_resets() {
    AsyncTest::new().run(|io_loop| {
        let (client, peer) = std_tcp_pair();
        let rs = IOStream::new(client).unwrap();
        let (closed, _) = on_close(&rs);
        let read = rs.read_bytes(1);
        let write = rs.write(vec![2u8; 64 << 20]);
        assert!(rs.writing(), "the write should have queued");
        // SO_LINGER 0: closing sends a RST.
        socket2::SockRef::from(&peer)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        io_loop.add_callback(move || drop(peer));
        and_then(&closed, move |()| {
            for err in [failed_now(&read), failed_now(&write)] {
                assert_closed_error(&err);
                let cause = cause_of(&err).expect("the error carries its cause");
                assert_eq!(cause.kind(), ErrorKind::Io);
                assert!(
                    matches!(
                        cause.io_error_kind(),
                        Some(std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe)
                    ),
                    "{cause:?}"
                );
            }
            let err = rs.error().expect("the stream keeps the cause");
            assert_eq!(err.kind(), ErrorKind::Io);
            Future::ready(())
        })
    });
}

#[test]
fn closing_releases_the_handler() {
    AsyncTest::new().run(|_| {
        let io_loop = IOLoop::current();
        let base = io_loop.handler_count();
        let (rs, ws) = unix_pair();
        assert_eq!(io_loop.handler_count(), base + 2);
        let (ws_closed, _) = on_close(&ws);
        // The loop keeps `ws` open without any handle of ours.
        drop(ws);
        rs.close();
        assert_eq!(io_loop.handler_count(), base + 1);
        // `ws` sees the end and closes itself.
        and_then(&ws_closed, move |()| {
            assert_eq!(io_loop.handler_count(), base);
            // Connect-then-close on TCP too.
            let (c, s) = tcp_pair();
            assert_eq!(io_loop.handler_count(), base + 2);
            c.close();
            s.close();
            assert_eq!(io_loop.handler_count(), base);
            Future::ready(())
        })
    });
}

#[test]
fn dropped_open_stream_is_freed_when_its_loop_closes() {
    let io_loop = IOLoop::new().unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    let stream = IOStream::with_loop(a, &io_loop).unwrap();
    let dropped = Rc::new(Cell::new(false));
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let flag = Flag(dropped.clone());
    stream.set_close_callback(move || drop(flag));
    let read = stream.read_bytes(1);
    drop(stream);
    assert_eq!(io_loop.handler_count(), 1);
    assert!(!dropped.get(), "the loop holds an open stream");
    io_loop.close();
    assert!(dropped.get(), "the stream was not freed with its loop");
    assert_closed_error(&failed_now(&read));
}

#[test]
fn a_flooding_peer_does_not_starve_other_streams() {
    // One peer sends 64 MiB as fast as it can; a small message on another
    // stream of the same loop still gets through long before the flood ends,
    // and a pending read_bytes completes without the flood being buffered
    // first.
    AsyncTest::new()
        .timeout(Duration::from_secs(60))
        .run(|io_loop| {
            const FLOOD: usize = 64 << 20;
            let (a, mut flooder) = UnixStream::pair().unwrap();
            let flood = IOStream::new(a).unwrap();
            let writer = std::thread::spawn(move || {
                let block = vec![7u8; 1 << 20];
                for _ in 0..FLOOD >> 20 {
                    if flooder.write_all(&block).is_err() {
                        return;
                    }
                }
            });
            let (rs, ws) = unix_pair();
            let first = flood.read_bytes(1024);
            let io = io_loop.clone();
            and_then(&first, move |kb| {
                assert_eq!(kb.len(), 1024);
                assert!(
                    flood.buffered() < 64 * 1024,
                    "{} bytes buffered for a 1 KiB read",
                    flood.buffered()
                );
                let all = flood.read_until_close();
                let f = flood.clone();
                and_then(&until(&io, move || f.buffered() >= 2 << 20), move |()| {
                    let ping = rs.read_until(b"\n");
                    drop(ws.write(&b"ping\n"[..]));
                    and_then(&ping, move |line| {
                        assert_eq!(line, b"ping\n");
                        assert!(!all.done(), "the flood hogged the loop");
                        and_then(&all, move |data| {
                            assert_eq!(data.len() + 1024, FLOOD);
                            writer.join().unwrap();
                            drop(flood);
                            Future::ready(())
                        })
                    })
                })
            })
        });
}

#[test]
fn a_stream_over_an_fd_already_watched_is_refused() {
    AsyncTest::new().run(|io_loop| {
        let (a, _b) = UnixStream::pair().unwrap();
        let fd = std::os::unix::io::AsRawFd::as_raw_fd(&a);
        io_loop.add_handler(fd, |_, _| (), Events::READ).unwrap();
        let base = io_loop.handler_count();
        let err = IOStream::new(a).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
        // The failed stream must not take the other handler with it.
        assert_eq!(io_loop.handler_count(), base);
        assert!(io_loop.remove_handler(fd));
        Future::ready(())
    });
}

// ----- connect -------------------------------------------------------------------

#[test]
fn connect_write_and_read() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf).unwrap();
        conn.write_all(b"pong:").unwrap();
        conn.write_all(&buf).unwrap();
    });
    AsyncTest::new().run(|_| {
        let connected = IOStream::connect(addr);
        and_then(&connected, move |stream| {
            assert_eq!(stream.peer_addr(), Some(addr));
            stream.set_nodelay(true).unwrap();
            drop(stream.write(&b"ping!"[..]));
            and_then(&stream.read_until_close(), |data| {
                assert_eq!(data, b"pong:ping!");
                Future::ready(())
            })
        })
    });
    server.join().unwrap();
}

#[test]
fn connect_refused_is_an_error() {
    AsyncTest::new().run(|io_loop| {
        let base = io_loop.handler_count();
        let io = io_loop.clone();
        let f = IOStream::connect(refusing_addr());
        and_then(&expect_err(&f), move |err| {
            assert_eq!(err.kind(), ErrorKind::Io, "{err}");
            assert_eq!(
                err.io_error_kind(),
                Some(std::io::ErrorKind::ConnectionRefused),
                "{err:?}"
            );
            assert_eq!(io.handler_count(), base);
            Future::ready(())
        })
    });
}

/// A listener whose accept queue is full: a further connect gets no answer
/// (Linux drops the SYN), so it stays pending. Returns it and the sockets that
/// filled it.
fn full_listener() -> (socket2::Socket, SocketAddr, Vec<TcpStream>) {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    listener
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..16 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => fillers.push(s),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return (listener, addr, fillers),
            Err(e) => panic!("filling the backlog: {e}"),
        }
    }
    panic!("could not fill the listen backlog");
}

#[test]
fn connect_timeout() {
    let (_listener, addr, _fillers) = full_listener();
    AsyncTest::new().run(|io_loop| {
        let io = io_loop.clone();
        // Baselines once the loop runs (run_sync has its own timeout then).
        and_then(&next_turn(io_loop), move |()| {
            let base = io.handler_count();
            let timers = io.timer_stats().pending;
            let started = Instant::now();
            let f = IOStream::connect_timeout(addr, Duration::from_millis(50));
            and_then(&expect_err(&f), move |err| {
                assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
                let took = started.elapsed();
                assert!(took >= Duration::from_millis(50), "{took:?}");
                assert!(took < Duration::from_secs(2), "{took:?}");
                assert_eq!(io.handler_count(), base, "the socket is closed");
                assert_eq!(io.timer_stats().pending, timers);
                Future::ready(())
            })
        })
    });
}

#[test]
fn connect_timeout_is_cancelled_on_success() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    AsyncTest::new().run(|io_loop| {
        let io = io_loop.clone();
        and_then(&next_turn(io_loop), move |()| {
            let timers = io.timer_stats().pending;
            let f = IOStream::connect_timeout(addr, Duration::from_secs(30));
            and_then(&f, move |stream| {
                assert_eq!(
                    io.timer_stats().pending,
                    timers,
                    "the timeout was left behind"
                );
                let (mut conn, _) = listener.accept().unwrap();
                conn.write_all(b"hi").unwrap();
                and_then(&stream.read_bytes(2), |hi| {
                    assert_eq!(hi, b"hi");
                    Future::ready(())
                })
            })
        })
    });
}

// ----- misuse and limits -------------------------------------------------------

#[test]
fn a_second_concurrent_read_is_invalid() {
    AsyncTest::new().run(|_| {
        let (rs, ws) = unix_pair();
        let first = rs.read_until(b"\n");
        for second in [rs.read_bytes(1), rs.read_until(b"x"), rs.read_until_close()] {
            assert_eq!(failed_now(&second).kind(), ErrorKind::InvalidState);
        }
        assert!(!rs.closed(), "a refused read leaves the stream alone");
        assert_eq!(
            failed_now(&rs.read_until(b"")).kind(),
            ErrorKind::InvalidArgument
        );
        drop(ws.write(&b"line\n"[..]));
        and_then(&first, |line| {
            assert_eq!(line, b"line\n");
            Future::ready(())
        })
    });
}

#[test]
fn read_buffer_limit_is_enforced() {
    AsyncTest::new().run(|_| {
        let (rs, ws) = unix_pair();
        rs.set_max_buffer_size(1024);
        let (closed, _) = on_close(&rs);
        let f = rs.read_until(b"\n");
        drop(ws.write(vec![b'x'; 4096]));
        and_then(&expect_err(&f), move |err| {
            assert_closed_error(&err);
            assert!(rs.closed());
            drop(ws);
            closed
        })
    });
}

#[test]
fn read_bytes_beyond_the_buffer_limit_fails() {
    AsyncTest::new().run(|_| {
        let (rs, ws) = unix_pair();
        rs.set_max_buffer_size(1024);
        let f = rs.read_bytes(4096);
        assert!(f.done(), "it can never be satisfied");
        assert_closed_error(&f.error().unwrap());
        assert!(rs.closed());
        // A partial read of more than the limit is fine: it takes what comes.
        let (rs, ws2) = unix_pair();
        rs.set_max_buffer_size(1024);
        let f = rs.read_bytes_partial(4096);
        drop(ws2.write(vec![b'y'; 100]));
        drop(ws);
        and_then(&f, move |data| {
            assert_eq!(data, vec![b'y'; 100]);
            drop(ws2);
            Future::ready(())
        })
    });
}

#[test]
fn small_reads_from_a_large_backlog_respect_the_limit() {
    // Tornado's test_small_reads_from_large_buffer and
    // test_small_read_untils_from_large_buffer: 100 KiB waiting, a 10 KiB
    // limit, 1 KiB reads. The stream must not fill its buffer past the limit
    // and fail.
    AsyncTest::new().run(|_| {
        let (rs, ws) = unix_pair();
        rs.set_max_buffer_size(10 * 1024);
        let mut data = Vec::new();
        for _ in 0..100 {
            data.extend_from_slice(&[b'a'; 1023]);
            data.push(b'\n');
        }
        drop(ws.write(data.clone()));
        drop(ws.write(data));
        let reads = Rc::new(Cell::new(0));
        let done = Future::new();
        fn next(rs: IOStream, reads: Rc<Cell<usize>>, done: Future<()>) {
            let n = reads.get();
            if n == 200 {
                done.try_set_result(());
                return;
            }
            assert!(rs.buffered() <= 10 * 1024 + 64 * 1024);
            let f = if n < 100 {
                rs.read_bytes(1024)
            } else {
                rs.read_until_max_bytes(b"\n", 4096)
            };
            f.add_done_callback(move |f: &Future<Vec<u8>>| match f.take_result() {
                Ok(line) => {
                    let mut want = vec![b'a'; 1023];
                    want.push(b'\n');
                    if line != want {
                        done.try_set_error(Error::other(format!("read {n}: wrong data")));
                        return;
                    }
                    reads.set(n + 1);
                    // Through the loop: no recursion on buffered data.
                    let io = rs.io_loop().clone();
                    io.add_callback(move || next(rs, reads, done));
                }
                Err(e) => {
                    done.try_set_error(e);
                }
            });
        }
        next(rs, reads, done.clone());
        and_then(&done, move |()| {
            drop(ws);
            Future::ready(())
        })
    });
}

#[test]
fn write_buffer_limit_is_enforced() {
    AsyncTest::new().run(|_| {
        let (rs, ws) = unix_pair();
        let limit = 1 << 20;
        ws.set_max_write_buffer_size(Some(limit));
        // Nobody reads `rs`: the socket fills, then the write buffer.
        let chunk = 256 * 1024;
        let mut accepted = 0usize;
        let mut refused = None;
        for i in 0..100u8 {
            let f = ws.write(vec![i; chunk]);
            if f.done() && f.error().is_some() {
                refused = Some((i, f.error().unwrap()));
                break;
            }
            accepted += chunk;
        }
        let (_, err) = refused.expect("the write buffer limit was never reached");
        assert_eq!(err.kind(), ErrorKind::BufferFull, "{err}");
        assert!(!ws.closed(), "a refused write leaves the stream open");
        // What was accepted arrives, and nothing of the refused write.
        and_then(&rs.read_bytes(accepted), move |data| {
            assert_eq!(data.len(), accepted);
            for (k, c) in data.chunks(chunk).enumerate() {
                assert!(c.iter().all(|&b| b == k as u8), "chunk {k} corrupted");
            }
            assert_eq!(rs.buffered(), 0);
            // Drained, the stream takes writes again.
            let f = ws.write(vec![9u8; chunk]);
            assert!(f.error().is_none());
            and_then(&rs.read_bytes(chunk), move |d| {
                assert!(d.iter().all(|&b| b == 9));
                drop(ws);
                Future::ready(())
            })
        })
    });
}

// ----- many clients ----------------------------------------------------------------

#[test]
fn thousand_concurrent_echo_clients() {
    use socket2::{Domain, Socket, Type};
    const CLIENTS: usize = 1000;
    AsyncTest::new()
        .timeout(Duration::from_secs(60))
        .run(|io_loop| {
            let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            sock.set_reuse_address(true).unwrap();
            sock.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
                .unwrap();
            sock.listen(CLIENTS as i32 + 24).unwrap();
            let listener: TcpListener = sock.into();
            listener.set_nonblocking(true).unwrap();
            let addr = listener.local_addr().unwrap();

            fn serve(stream: IOStream) {
                let s = stream.clone();
                stream.read_until_max_bytes(b"\n", 1024).add_done_callback(
                    move |f: &Future<Vec<u8>>| {
                        if let Ok(line) = f.take_result() {
                            drop(s.write(line));
                            serve(s);
                        }
                    },
                );
            }
            let accepted = Rc::new(Cell::new(0usize));
            let listener = Rc::new(listener);
            {
                let (l, accepted) = (listener.clone(), accepted.clone());
                io_loop
                    .add_handler(
                        &*listener,
                        move |_, _| loop {
                            match l.accept() {
                                Ok((conn, _)) => {
                                    accepted.set(accepted.get() + 1);
                                    serve(IOStream::new(conn).unwrap());
                                }
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                                Err(e) => panic!("accept: {e}"),
                            }
                        },
                        Events::READ,
                    )
                    .unwrap();
            }

            let answers: Vec<Future<()>> = (0..CLIENTS)
                .map(|i| {
                    and_then(&IOStream::connect(addr), move |stream| {
                        let msg = format!("hello from client {i}\n").into_bytes();
                        drop(stream.write(msg.clone()));
                        and_then(&stream.read_until(b"\n"), move |reply| {
                            assert_eq!(reply, msg);
                            stream.close();
                            Future::ready(())
                        })
                    })
                })
                .collect();
            let io = io_loop.clone();
            and_then(&join_all(answers), move |results| {
                let failures: Vec<String> = results
                    .iter()
                    .filter_map(|r| r.as_ref().err().map(ToString::to_string))
                    .collect();
                assert!(
                    failures.is_empty(),
                    "{} failed: {:?}",
                    failures.len(),
                    &failures[..failures.len().min(5)]
                );
                assert_eq!(accepted.get(), CLIENTS);
                io.remove_handler(&*listener);
                Future::ready(())
            })
        });
}

// ----- throughput ----------------------------------------------------------------

/// Reads `total` bytes through a socketpair in 64 KiB `read_bytes` calls, a
/// thread writing; returns the rate. A read satisfied from the buffer is
/// taken in a loop, not by recursion.
fn read_throughput(total: usize) -> f64 {
    const CHUNK: usize = 64 * 1024;
    let (a, mut b) = UnixStream::pair().unwrap();
    let writer = std::thread::spawn(move || {
        let block = pseudo_random(1 << 20, 3);
        let mut left = total;
        while left > 0 {
            let n = left.min(block.len());
            b.write_all(&block[..n]).unwrap();
            left -= n;
        }
        checksum(&block)
    });
    let started = Instant::now();
    let first_mib_sum = AsyncTest::new()
        .timeout(Duration::from_secs(120))
        .run(move |_| {
            let rs = IOStream::new(a).unwrap();
            let done = Future::new();
            struct St {
                rs: IOStream,
                got: usize,
                total: usize,
                first: Vec<u8>,
                max_buffered: usize,
                done: Future<u64>,
            }
            fn pump(st: Rc<RefCell<St>>) {
                loop {
                    let f = {
                        let s = st.borrow();
                        if s.got == s.total {
                            eprintln!("most buffered: {} KiB", s.max_buffered >> 10);
                            s.done.try_set_result(checksum(&s.first));
                            return;
                        }
                        s.rs.read_bytes(CHUNK.min(s.total - s.got))
                    };
                    if !f.done() {
                        let st = st.clone();
                        f.add_done_callback(move |f: &Future<Vec<u8>>| {
                            take_chunk(&st, f);
                            pump(st);
                        });
                        return;
                    }
                    take_chunk(&st, &f);
                }
            }
            fn take_chunk(st: &Rc<RefCell<St>>, f: &Future<Vec<u8>>) {
                let chunk = f.take_result().expect("read failed");
                let mut s = st.borrow_mut();
                assert_eq!(chunk.len(), CHUNK.min(s.total - s.got));
                if s.first.len() < 1 << 20 {
                    s.first.extend_from_slice(&chunk);
                }
                s.got += chunk.len();
                s.max_buffered = s.max_buffered.max(s.rs.buffered());
            }
            let st = Rc::new(RefCell::new(St {
                rs,
                got: 0,
                total,
                first: Vec::new(),
                max_buffered: 0,
                done: done.clone(),
            }));
            pump(st);
            done
        });
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let block_sum = writer.join().unwrap();
    if total >= 1 << 20 {
        assert_eq!(first_mib_sum, block_sum, "the first MiB arrived corrupted");
    }
    rate
}

#[test]
fn read_bytes_throughput() {
    // 1 GiB in release builds, where it should run at several GB/s; 128 MiB
    // in debug builds, only for correctness.
    let total = if cfg!(debug_assertions) {
        128 << 20
    } else {
        1 << 30
    };
    let rate = read_throughput(total);
    eprintln!(
        "read_bytes(64 KiB) over a socketpair: {:.2} GB/s ({} MiB)",
        rate / 1e9,
        total >> 20
    );
    if !cfg!(debug_assertions) {
        assert!(rate > 1e9, "only {:.2} GB/s", rate / 1e9);
    }
}

#[test]
fn closing_a_connecting_stream_aborts_the_connect() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let io_loop = IOLoop::new().unwrap();
    let (stream, connected) =
        IOStream::connecting(addr, Some(Duration::from_secs(30)), &io_loop).unwrap();
    assert_eq!(io_loop.timer_stats().pending, 1);
    assert!(!connected.done());
    stream.close();
    assert_eq!(
        connected.error().map(|e| e.kind()),
        Some(ErrorKind::StreamClosed)
    );
    assert_eq!(io_loop.timer_stats().pending, 0);
    assert_eq!(io_loop.handler_count(), 0);

    // Not closed, it connects as `connect_with` would.
    let (_stream, connected) = IOStream::connecting(addr, None, &io_loop).unwrap();
    let conn = io_loop.run_sync(|| connected, Some(Duration::from_secs(5)));
    assert!(conn.is_ok());
    io_loop.close();
}
