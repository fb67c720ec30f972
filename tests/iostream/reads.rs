//! `read_bytes`, `read_into` and `read_until_close`: exact and partial
//! reads, the end of the stream seen with or without a pending read, and
//! reads served from the buffer without a loop turn.

use super::*;

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
