//! Closing: the close callback, pending futures failing on close, peer
//! close and reset, handlers and streams released, and fairness between
//! streams.

use super::*;

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
