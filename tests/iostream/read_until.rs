//! `read_until`: delimiters split across reads and one-byte writes, no
//! quadratic rescans, and `max_bytes` reached every way.

use super::*;

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
