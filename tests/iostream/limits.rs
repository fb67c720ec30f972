//! Misuse and limits: a second concurrent read, and the read and write
//! buffer limits.

use super::*;

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
