//! Half-close: a peer that sends its request and then shuts down its write
//! side (`shutdown(SHUT_WR)`, `nc -N`, HTTP/1.0 clients, load tools) still
//! gets the whole reply. The read EOF must not discard what is queued for
//! writing: the stream drains it, then closes.
//!
//! The replies are 4 MiB through a 64 KiB send buffer to a peer with a
//! 64 KiB receive buffer, so most of each reply is still queued in the
//! stream when it sees the end. Every wait is bounded: the loop by the
//! test's timeout, the peer thread by its socket timeouts.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::rc::Rc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod common;
use common::{and_then, drop_flag, pseudo_random, then};

use squall::iostream::IOStream;
use squall::testing::AsyncTest;
use squall::{Error, ErrorKind, Future, IOLoop};

// ----- helpers -------------------------------------------------------------

/// The reply each server writes once it has the request line.
const REPLY: usize = 4 << 20;

fn reply() -> Vec<u8> {
    pseudo_random(REPLY, 7)
}

/// Generous for a 4 MiB transfer on a loaded CI machine, and still bounded.
fn test_timeout() -> Duration {
    Duration::from_secs(30)
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

/// The cause a StreamClosed error carries, if any.
fn cause_of(err: &Error) -> Option<Error> {
    std::error::Error::source(err)
        .and_then(|s| s.downcast_ref::<Error>())
        .cloned()
}

/// This thread's CPU time so far (the loop runs on the test's thread).
fn thread_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    let ns = stat.split_whitespace().next().expect("schedstat field");
    Duration::from_nanos(ns.parse().expect("schedstat nanoseconds"))
}

/// What the peer does once it has sent its request and shut its write side.
#[derive(Clone, Copy)]
enum Then {
    /// Waits `delay` (the server sees the end meanwhile), then reads to
    /// the end, `pause` between 64 KiB reads.
    ReadAll { delay: Duration, pause: Duration },
    /// Waits `delay`, reads at least this many bytes, then resets the
    /// connection (SO_LINGER 0) without reading the rest.
    ResetAfter { delay: Duration, bytes: usize },
}

/// A connected (server-side socket, peer thread) pair. The peer sends
/// `request\n`, shuts down its write side, then does `then`; the thread
/// returns the bytes it read, or what went wrong.
fn half_closing_peer(then: Then) -> (TcpStream, JoinHandle<Result<Vec<u8>, String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = std::thread::spawn(move || -> Result<Vec<u8>, String> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .map_err(|e| e.to_string())?;
        // Small before connecting, so the window stays small: the reply
        // cannot all sit in kernel buffers.
        socket
            .set_recv_buffer_size(64 << 10)
            .map_err(|e| e.to_string())?;
        socket.connect(&addr.into()).map_err(|e| e.to_string())?;
        let mut conn: TcpStream = socket.into();
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(|e| e.to_string())?;
        conn.write_all(b"request\n").map_err(|e| e.to_string())?;
        conn.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
        let mut got = Vec::with_capacity(REPLY + 64);
        let mut chunk = vec![0u8; 64 << 10];
        match then {
            Then::ReadAll { delay, pause } => {
                std::thread::sleep(delay);
                loop {
                    match conn.read(&mut chunk) {
                        Ok(0) => return Ok(got),
                        Ok(n) => got.extend_from_slice(&chunk[..n]),
                        Err(e) => return Err(format!("read after {} bytes: {e}", got.len())),
                    }
                    std::thread::sleep(pause);
                }
            }
            Then::ResetAfter { delay, bytes } => {
                std::thread::sleep(delay);
                while got.len() < bytes {
                    match conn.read(&mut chunk) {
                        Ok(0) => return Err(format!("end of stream after {} bytes", got.len())),
                        Ok(n) => got.extend_from_slice(&chunk[..n]),
                        Err(e) => return Err(format!("read after {} bytes: {e}", got.len())),
                    }
                }
                socket2::SockRef::from(&conn)
                    .set_linger(Some(Duration::ZERO))
                    .map_err(|e| e.to_string())?;
                drop(conn);
                Ok(got)
            }
        }
    });
    let (server, _) = listener.accept().unwrap();
    // Small, so the stream keeps most of the reply queued.
    socket2::SockRef::from(&server)
        .set_send_buffer_size(64 << 10)
        .unwrap();
    (server, peer)
}

/// The peer's outcome, compared with `expected` without printing megabytes.
fn assert_peer_read(peer: JoinHandle<Result<Vec<u8>, String>>, expected: &[u8]) {
    let got = peer.join().expect("the peer thread panicked");
    let got = got.unwrap_or_else(|e| panic!("the peer failed: {e}"));
    assert_eq!(got.len(), expected.len(), "the peer got a short reply");
    assert!(got == expected, "the peer got the wrong bytes");
}

fn read_all_after(delay: Duration) -> Then {
    Then::ReadAll {
        delay,
        pause: Duration::ZERO,
    }
}

// ----- reads at the end of the stream ---------------------------------------

/// Reads the buffer satisfies are delivered after the end, one by one; the
/// next one fails as it always has. (This held before half-close too; it
/// guards the reordering at the end of the stream.)
#[test]
fn buffered_reads_are_delivered_after_the_end() {
    AsyncTest::new().run(|_io_loop: &IOLoop| {
        let (a, mut peer) = std::os::unix::net::UnixStream::pair().unwrap();
        let stream = IOStream::new(a).unwrap();
        let (c, mut peer2) = std::os::unix::net::UnixStream::pair().unwrap();
        let whole = IOStream::new(c).unwrap();
        for p in [&mut peer, &mut peer2] {
            p.write_all(b"a\nb\n").unwrap();
            p.shutdown(Shutdown::Write).unwrap();
        }
        let s = stream.clone();
        let lines = and_then(&stream.read_until(b"\n"), move |first| {
            assert_eq!(first, b"a\n");
            let s2 = s.clone();
            and_then(&s.read_until(b"\n"), move |second| {
                assert_eq!(second, b"b\n");
                then(&s2.read_until(b"\n"), |third| {
                    let err = third.expect_err("nothing is left to read");
                    assert_eq!(err.kind(), ErrorKind::StreamClosed, "{err}");
                    Future::ready(())
                })
            })
        });
        and_then(&lines, move |()| {
            and_then(&whole.read_until_close(), move |all| {
                assert_eq!(all, b"a\nb\n");
                assert!(whole.closed());
                drop((peer, peer2));
                Future::ready(())
            })
        })
    });
}

// ----- replies to a half-closed peer ---------------------------------------

/// The request is read with a future; the reply, written on it, reaches the
/// peer whole, and only then does the stream close.
#[test]
fn a_reply_to_a_future_read_reaches_a_half_closed_peer() {
    let (server, peer) = half_closing_peer(read_all_after(Duration::from_millis(100)));
    AsyncTest::new()
        .timeout(test_timeout())
        .run(move |io_loop: &IOLoop| {
            let stream = IOStream::new(server).unwrap();
            let (closed, closes) = on_close(&stream);
            let s = stream.clone();
            let wrote = and_then(&stream.read_until(b"\n"), move |line| {
                assert_eq!(line, b"request\n");
                s.write(reply())
            });
            let l = io_loop.clone();
            and_then(&wrote, move |()| {
                and_then(&closed, move |()| {
                    assert!(stream.closed());
                    assert!(stream.error().is_none(), "{:?}", stream.error());
                    assert_eq!(closes.get(), 1);
                    assert_eq!(l.handler_count(), 0, "the stream's handler is gone");
                    Future::ready(())
                })
            })
        });
    assert_peer_read(peer, &reply());
}

/// The same through the read hook: the reply is written from the hook, the
/// hook hears of the end once, and is dropped when the stream closes.
#[test]
fn a_reply_from_the_read_hook_reaches_a_half_closed_peer() {
    let (server, peer) = half_closing_peer(read_all_after(Duration::from_millis(100)));
    AsyncTest::new()
        .timeout(test_timeout())
        .run(move |io_loop: &IOLoop| {
            let stream = IOStream::new(server).unwrap();
            let (closed, closes) = on_close(&stream);
            let eofs = Rc::new(Cell::new(0));
            let wrote: Rc<RefCell<Option<Future<()>>>> = Rc::default();
            let (guard, hook_dropped) = drop_flag();
            let (s, e, w) = (stream.clone(), eofs.clone(), wrote.clone());
            stream
                .set_read_hook(move |buf: &[u8], eof: bool| {
                    let _held = &guard;
                    if eof {
                        e.set(e.get() + 1);
                    }
                    match buf.iter().position(|&b| b == b'\n') {
                        Some(i) if w.borrow().is_none() => {
                            assert_eq!(&buf[..=i], b"request\n");
                            *w.borrow_mut() = Some(s.write(reply()));
                            i + 1
                        }
                        _ => 0,
                    }
                })
                .unwrap();
            let l = io_loop.clone();
            and_then(&closed, move |()| {
                let wrote = wrote.borrow_mut().take().expect("the hook replied");
                assert!(wrote.done());
                wrote.result().expect("the reply went out");
                assert_eq!(eofs.get(), 1, "the hook hears of the end once");
                assert!(hook_dropped.get(), "the hook is dropped on close");
                assert!(stream.closed());
                assert!(stream.error().is_none(), "{:?}", stream.error());
                assert_eq!(closes.get(), 1);
                assert_eq!(l.handler_count(), 0, "the stream's handler is gone");
                Future::ready(())
            })
        });
    assert_peer_read(peer, &reply());
}

/// After the end, while the reply drains, the stream is open: a read fails
/// (nothing more will come), but writes are accepted, go out after the
/// reply, and the close waits for them; `flushed` resolves normally.
#[test]
fn writes_after_the_end_go_out_while_draining() {
    let (server, peer) = half_closing_peer(read_all_after(Duration::from_millis(200)));
    AsyncTest::new()
        .timeout(test_timeout())
        .run(move |_io_loop: &IOLoop| {
            let stream = IOStream::new(server).unwrap();
            let (closed, closes) = on_close(&stream);
            let s = stream.clone();
            let done = and_then(&stream.read_until(b"\n"), move |line| {
                assert_eq!(line, b"request\n");
                let first = s.write(reply());
                assert!(s.writing(), "the reply should have queued");
                let s2 = s.clone();
                then(&s.read_bytes(1), move |more| {
                    // The end: nothing more will come...
                    let err = more.expect_err("the peer sent nothing more");
                    assert_eq!(err.kind(), ErrorKind::StreamClosed, "{err}");
                    // ...but the reply is still going out.
                    assert!(!s2.closed(), "closed with the reply still queued");
                    assert!(s2.writing());
                    let tail = s2.write(&b"tail"[..]);
                    let flushed = s2.flushed();
                    let s3 = s2.clone();
                    and_then(&first, move |()| {
                        and_then(&tail, move |()| {
                            and_then(&flushed, move |()| {
                                assert!(!s3.writing());
                                Future::ready(())
                            })
                        })
                    })
                })
            });
            and_then(&done, move |()| {
                and_then(&closed, move |()| {
                    assert!(stream.closed());
                    assert!(stream.error().is_none(), "{:?}", stream.error());
                    assert_eq!(closes.get(), 1);
                    Future::ready(())
                })
            })
        });
    let mut expected = reply();
    expected.extend_from_slice(b"tail");
    assert_peer_read(peer, &expected);
}

/// A peer that reads slowly keeps the stream draining for a while; the
/// socket stays readable at its end all that time, and the loop must not
/// spin on it.
#[test]
fn draining_to_a_slow_reader_does_not_spin() {
    let (server, peer) = half_closing_peer(Then::ReadAll {
        delay: Duration::from_millis(100),
        pause: Duration::from_millis(5),
    });
    AsyncTest::new()
        .timeout(test_timeout())
        .run(move |_io_loop: &IOLoop| {
            let stream = IOStream::new(server).unwrap();
            let (closed, _) = on_close(&stream);
            let (wall, cpu) = (Instant::now(), thread_cpu_time());
            let s = stream.clone();
            let wrote = and_then(&stream.read_until(b"\n"), move |_line| s.write(reply()));
            and_then(&wrote, move |()| {
                and_then(&closed, move |()| {
                    let (wall, cpu) = (wall.elapsed(), thread_cpu_time() - cpu);
                    // 64 reads with 5 ms pauses: at least 320 ms of waiting,
                    // which a spinning loop would fill with CPU time.
                    assert!(wall >= Duration::from_millis(300), "{wall:?}");
                    assert!(cpu < wall / 3, "the loop spun: {cpu:?} CPU in {wall:?}");
                    Future::ready(())
                })
            })
        });
    assert_peer_read(peer, &reply());
}

/// A peer that resets the connection while the reply drains ends the
/// draining: the write fails with the reset as its cause, the stream closes
/// (its close callback runs once, its hook and handler are released), and
/// nothing waits or spins on.
#[test]
fn a_reset_while_draining_closes_the_stream() {
    let (server, peer) = half_closing_peer(Then::ResetAfter {
        delay: Duration::from_millis(100),
        bytes: 1 << 20,
    });
    AsyncTest::new()
        .timeout(test_timeout())
        .run(move |io_loop: &IOLoop| {
            let stream = IOStream::new(server).unwrap();
            let (closed, closes) = on_close(&stream);
            let wrote: Rc<RefCell<Option<Future<()>>>> = Rc::default();
            let (guard, hook_dropped) = drop_flag();
            let (s, w) = (stream.clone(), wrote.clone());
            stream
                .set_read_hook(move |buf: &[u8], _eof: bool| {
                    let _held = &guard;
                    match buf.iter().position(|&b| b == b'\n') {
                        Some(i) if w.borrow().is_none() => {
                            *w.borrow_mut() = Some(s.write(reply()));
                            i + 1
                        }
                        _ => 0,
                    }
                })
                .unwrap();
            let l = io_loop.clone();
            and_then(&closed, move |()| {
                let wrote = wrote.borrow_mut().take().expect("the hook replied");
                let err = wrote.result().expect_err("the reply cannot have gone out");
                assert_eq!(err.kind(), ErrorKind::StreamClosed, "{err}");
                let cause = cause_of(&err).expect("the error carries the reset");
                assert_eq!(cause.kind(), ErrorKind::Io, "{cause}");
                assert!(
                    matches!(
                        cause.io_error_kind(),
                        Some(std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe)
                    ),
                    "{cause:?}"
                );
                assert!(stream.closed());
                assert_eq!(stream.error().map(|e| e.kind()), Some(ErrorKind::Io));
                assert_eq!(closes.get(), 1);
                assert!(hook_dropped.get(), "the hook is dropped on close");
                assert_eq!(l.handler_count(), 0, "the stream's handler is gone");
                Future::ready(())
            })
        });
    let got = peer.join().expect("the peer thread panicked");
    let got = got.unwrap_or_else(|e| panic!("the peer failed: {e}"));
    assert!(got.len() >= 1 << 20 && got[..] == reply()[..got.len()]);
}

/// A pipe's write end "reads" its end at once: when the reader goes away,
/// the error event makes it see one, with writes queued in a full pipe. No
/// write edge comes for a full pipe whose reader has gone, so the drain must
/// try the write on the error event, and its failure (EPIPE) closes the
/// stream rather than leave it draining for ever.
#[test]
fn a_pipe_writer_whose_reader_goes_away_closes() {
    AsyncTest::new().run(|io_loop: &IOLoop| {
        let (r, w) = squall::iostream::Pipe::pair().unwrap();
        let writer = IOStream::from_pipe(w).unwrap();
        let (closed, closes) = on_close(&writer);
        let wrote = writer.write(vec![3u8; 1 << 20]);
        assert!(writer.writing(), "the write should have queued");
        io_loop.add_callback(move || drop(r));
        and_then(&closed, move |()| {
            assert!(writer.closed());
            assert_eq!(closes.get(), 1);
            let err = wrote.result().expect_err("the reader went away");
            assert_eq!(err.kind(), ErrorKind::StreamClosed, "{err}");
            Future::ready(())
        })
    });
}
