//! `TCPServer`: serving, stopping, errors in `handle_stream`, and descriptors.
//!
//! Every server listens on loopback only. The descriptor count runs in a
//! child process (this binary again, selected by an env var), where no other
//! test opens or closes fds while it counts.

mod common;

use common::open_fds;

use squall::netutil::BindOptions;
use std::cell::{Cell, RefCell};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::io::BorrowedFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use socket2::SockRef;
use squall::testing::AsyncTest;
use squall::{Error, ErrorKind, Future, IOLoop, IOStream, TCPServer};

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// A future done when all of `futures` are, with their values in order; or
/// failed with the first error.
fn all<T: 'static>(futures: Vec<Future<T>>) -> Future<Vec<T>> {
    let result = Future::new();
    let n = futures.len();
    if n == 0 {
        result.try_set_result(Vec::new());
        return result;
    }
    let left = Rc::new(Cell::new(n));
    let shared = Rc::new(futures);
    for f in shared.iter() {
        let (left, shared, result) = (left.clone(), shared.clone(), result.clone());
        f.add_done_callback(move |f: &Future<T>| {
            if let Some(err) = f.error() {
                result.try_set_error(err);
                return;
            }
            left.set(left.get() - 1);
            if left.get() == 0 && !result.done() {
                let values = shared.iter().map(|f| f.take_result()).collect();
                result.try_complete(values);
            }
        });
    }
    result
}

/// An echo handler: each line back, until the client closes; after `delay`
/// per line if given.
fn echo_lines(stream: IOStream, delay: Option<Duration>) {
    let s = stream.clone();
    stream
        .read_until(b"\n")
        .add_done_callback(move |line: &Future<Vec<u8>>| {
            let Ok(line) = line.take_result() else {
                return; // the client went away
            };
            let io_loop = s.io_loop().clone();
            let write = move || {
                let s2 = s.clone();
                s.write(line)
                    .add_done_callback(move |_: &Future<()>| echo_lines(s2, delay));
            };
            match delay {
                Some(delay) => {
                    io_loop.call_later(delay, write);
                }
                None => write(),
            }
        });
}

/// A one-shot echo handler: one line back, then close.
fn echo_once(stream: IOStream) {
    let s = stream.clone();
    stream
        .read_until(b"\n")
        .add_done_callback(move |line: &Future<Vec<u8>>| {
            let Ok(line) = line.take_result() else {
                return s.close();
            };
            let s2 = s.clone();
            s.write(line)
                .add_done_callback(move |_: &Future<()>| s2.close());
        });
}

/// Connects, sends `line`, and returns everything read until the server
/// closes.
fn exchange(addr: SocketAddr, line: Vec<u8>) -> Future<Vec<u8>> {
    let result = Future::new();
    let r = result.clone();
    IOStream::connect(addr).add_done_callback(move |conn: &Future<IOStream>| {
        let conn = match conn.take_result() {
            Ok(conn) => conn,
            Err(err) => return r.set_error(err),
        };
        drop(conn.write(line));
        squall::chain_future(&conn.read_until_close(), &r);
    });
    result
}

/// Connects, sends `line`, returns the first line back (the stream stays open).
fn request(conn: &IOStream, line: &[u8]) -> Future<Vec<u8>> {
    drop(conn.write(line.to_vec()));
    conn.read_until(b"\n")
}

#[test]
fn echo_with_200_concurrent_clients() {
    const CLIENTS: usize = 200;
    const DELAY: Duration = Duration::from_millis(100);
    let started = Instant::now();
    let (replies, accepted) = AsyncTest::new().timeout(Duration::from_secs(20)).run(|_| {
        // Seed 3's echo server: one line, a delay, the line back, close.
        let server = TCPServer::new(|stream: IOStream, _peer: SocketAddr| -> Future<()> {
            let done = Future::new();
            let (s, d) = (stream.clone(), done.clone());
            stream
                .read_until(b"\n")
                .add_done_callback(move |line: &Future<Vec<u8>>| {
                    let line = match line.take_result() {
                        Ok(line) => line,
                        Err(err) => return d.set_error(err),
                    };
                    s.io_loop().clone().call_later(DELAY, move || {
                        let s2 = s.clone();
                        s.write(line).add_done_callback(move |w: &Future<()>| {
                            s2.close();
                            d.try_complete(w.take_result());
                        });
                    });
                });
            done
        });
        server
            .listen_with(0, BindOptions::new().address("127.0.0.1"))
            .unwrap();
        let addr = server.local_addrs()[0];
        let replies: Vec<Future<Vec<u8>>> = (0..CLIENTS)
            .map(|i| exchange(addr, format!("client {i}\n").into_bytes()))
            .collect();
        let result = Future::new();
        let r = result.clone();
        all(replies).add_done_callback(move |replies: &Future<Vec<Vec<u8>>>| {
            let accepted = server.accepted();
            server.stop();
            r.complete(replies.take_result().map(|v| (v, accepted)))
        });
        result
    });
    let took = started.elapsed();
    assert_eq!(accepted, CLIENTS as u64);
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(reply, format!("client {i}\n").as_bytes());
    }
    // Waiting side by side: about one delay, not 200 of them.
    assert!(took < DELAY * 20, "{CLIENTS} clients took {took:?}");
}

#[test]
fn stop_stops_accepting_and_existing_connections_go_on() {
    let (first, second, refused, listening) = AsyncTest::new().run(|_| {
        let accepted = Future::new();
        let a = accepted.clone();
        let server = TCPServer::new(move |stream: IOStream, _peer: SocketAddr| {
            a.try_set_result(());
            echo_lines(stream, None);
        });
        server
            .listen_with(0, BindOptions::new().address("127.0.0.1"))
            .unwrap();
        assert!(server.is_listening());
        let addr = server.local_addrs()[0];
        let result = Future::new();
        let r = result.clone();
        IOStream::connect(addr).add_done_callback(move |conn: &Future<IOStream>| {
            let conn = conn.take_result()?;
            let (conn2, server2) = (conn.clone(), server.clone());
            request(&conn, b"before\n").add_done_callback(move |first: &Future<Vec<u8>>| {
                let first = first.take_result()?;
                server2.stop();
                server2.stop(); // harmless twice
                let listening = server2.is_listening();
                let conn3 = conn2.clone();
                request(&conn2, b"after stop\n").add_done_callback(
                    move |second: &Future<Vec<u8>>| {
                        let second = second.take_result()?;
                        conn3.close();
                        IOStream::connect(addr).add_done_callback(
                            move |again: &Future<IOStream>| {
                                let refused = again.error().map(|e| e.io_error_kind());
                                r.set_result((first, second, refused, listening))
                            },
                        );
                        Ok(())
                    },
                );
                Ok(())
            });
            Ok(())
        });
        assert!(!accepted.done());
        result
    });
    assert_eq!(first, b"before\n");
    assert_eq!(second, b"after stop\n", "the accepted connection goes on");
    assert!(!listening);
    assert_eq!(
        refused,
        Some(Some(std::io::ErrorKind::ConnectionRefused)),
        "the listening socket is closed"
    );
}

#[test]
fn handle_stream_errors_are_logged_and_the_server_keeps_serving() {
    let (result, unhandled) = AsyncTest::new()
        .allow_unhandled_errors()
        .try_run(|io_loop| {
            let n = Rc::new(Cell::new(0));
            let l = io_loop.clone();
            let server = TCPServer::new(move |stream: IOStream, _peer: SocketAddr| -> Future<()> {
                n.set(n.get() + 1);
                match n.get() {
                    1 => {
                        stream.close();
                        Future::failed(Error::other("failed at once"))
                    }
                    2 => {
                        stream.close();
                        panic!("handle_stream panicked")
                    }
                    3 => {
                        let later = Future::new();
                        let f = later.clone();
                        l.call_later(ms(5), move || {
                            stream.close();
                            f.set_error(Error::new(ErrorKind::Timeout, "failed later"))
                        });
                        later
                    }
                    _ => {
                        echo_lines(stream, None);
                        Future::ready(())
                    }
                }
            });
            server
                .listen_with(0, BindOptions::new().address("127.0.0.1"))
                .unwrap();
            let addr = server.local_addrs()[0];
            // One after the other, so that the server sees them in this order.
            let result = Future::new();
            let r = result.clone();
            fn chain(addr: SocketAddr, left: usize, got: Vec<Vec<u8>>, r: Future<Vec<Vec<u8>>>) {
                if left == 0 {
                    r.try_set_result(got);
                    return;
                }
                let reply = if left == 1 {
                    // The last one: the echo, then close.
                    let reply = Future::new();
                    let rr = reply.clone();
                    IOStream::connect(addr).add_done_callback(move |c: &Future<IOStream>| {
                        let c = c.take_result()?;
                        let c2 = c.clone();
                        request(&c, b"still serving\n").add_done_callback(
                            move |line: &Future<Vec<u8>>| {
                                c2.close();
                                rr.complete(line.take_result())
                            },
                        );
                        Ok(())
                    });
                    reply
                } else {
                    exchange(addr, b"x\n".to_vec())
                };
                reply.add_done_callback(move |reply: &Future<Vec<u8>>| {
                    let mut got = got;
                    got.push(reply.take_result().unwrap_or_default());
                    chain(addr, left - 1, got, r);
                });
            }
            chain(addr, 4, Vec::new(), r);
            let s = server.clone();
            result.add_done_callback(move |_: &Future<Vec<Vec<u8>>>| s.stop());
            result
        });
    let replies = result.unwrap();
    assert_eq!(replies.last().unwrap(), b"still serving\n");
    let mut messages: Vec<String> = unhandled.iter().map(|e| e.message().to_owned()).collect();
    messages.sort();
    assert_eq!(
        messages,
        ["failed at once", "failed later", "handle_stream panicked"],
        "{unhandled:?}"
    );
}

#[test]
fn handle_stream_may_return_a_result() {
    let (result, unhandled) = AsyncTest::new().allow_unhandled_errors().try_run(|_| {
        let server = TCPServer::new(|stream: IOStream, peer: SocketAddr| -> Result<(), Error> {
            stream.close();
            Err(Error::other(format!("no thanks, {}", peer.ip())))
        });
        server
            .listen_with(0, BindOptions::new().address("127.0.0.1"))
            .unwrap();
        let reply = exchange(server.local_addrs()[0], b"hi\n".to_vec());
        reply.add_done_callback(move |_: &Future<Vec<u8>>| server.stop());
        reply
    });
    assert_eq!(result.unwrap(), b"");
    assert_eq!(unhandled.len(), 1);
    assert_eq!(unhandled[0].message(), "no thanks, 127.0.0.1");
}

#[test]
fn bind_then_start() {
    let (before, after, reply) = AsyncTest::new().run(|io_loop| {
        let accepted = Rc::new(Cell::new(0));
        let a = accepted.clone();
        let server = TCPServer::new(move |stream: IOStream, _: SocketAddr| {
            a.set(a.get() + 1);
            echo_once(stream);
        });
        server
            .bind_with(0, BindOptions::new().address("127.0.0.1").backlog(32))
            .unwrap();
        assert!(!server.is_listening());
        let addr = server.local_addrs()[0];
        assert_ne!(addr.port(), 0);
        // Bound and listening in the kernel, but not accepted from yet.
        let reply = exchange(addr, b"queued\n".to_vec());
        let result = Future::new();
        let (r, l) = (result.clone(), io_loop.clone());
        io_loop.call_later(ms(50), move || {
            let before = accepted.get();
            server.start(1).unwrap();
            assert_eq!(
                server.start(1).unwrap_err().kind(),
                ErrorKind::InvalidState,
                "start twice"
            );
            assert!(server.is_listening());
            l.add_future(&reply, move |reply: &Future<Vec<u8>>| {
                server.stop();
                r.complete(reply.take_result().map(|v| (before, accepted.get(), v)))
            });
        });
        result
    });
    assert_eq!(before, 0, "nothing accepted before start(1)");
    assert_eq!(after, 1);
    assert_eq!(reply, b"queued\n");
}

#[test]
fn start_with_several_processes_is_refused_once_a_loop_exists() {
    AsyncTest::new().run(|_| {
        let server = TCPServer::new(|_s: IOStream, _: SocketAddr| ());
        server
            .bind_with(0, BindOptions::new().address("127.0.0.1"))
            .unwrap();
        for n in [0, 2, 8] {
            let err = server.start(n).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidState);
            assert!(err.message().contains("IOLoop"), "{err}");
        }
        assert!(!server.is_listening());
        server.start(1).unwrap();
        assert!(server.is_listening());
        server.stop();
        assert!(server.local_addrs().is_empty());
        Future::ready(())
    });
}

#[test]
fn add_socket_takes_a_std_listener_and_stop_from_handle_stream() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap(); // blocking
    let addr = listener.local_addr().unwrap();
    let clients: Vec<std::net::TcpStream> = (0..3)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let (count, peer_ok) = AsyncTest::new().run(|io_loop| {
        let count = Rc::new(Cell::new(0));
        let peer_ok = Rc::new(Cell::new(false));
        let me: Rc<RefCell<Option<TCPServer>>> = Rc::new(RefCell::new(None));
        let (c, p, m) = (count.clone(), peer_ok.clone(), me.clone());
        let server = TCPServer::new(move |stream: IOStream, peer: SocketAddr| {
            c.set(c.get() + 1);
            p.set(stream.peer_addr() == Some(peer));
            // Serve one, then stop: the other two stay queued, unaccepted.
            if let Some(server) = m.borrow_mut().take() {
                server.stop();
            }
        });
        *me.borrow_mut() = Some(server.clone());
        server.add_socket(listener).unwrap();
        assert_eq!(server.local_addrs(), vec![addr]);
        let result = Future::new();
        let r = result.clone();
        io_loop.call_later(ms(50), move || r.set_result((count.get(), peer_ok.get())));
        result
    });
    drop(clients);
    assert_eq!(count, 1);
    assert!(peer_ok);
}

#[test]
fn nodelay_and_buffer_size_options_apply_to_accepted_streams() {
    fn nodelay(stream: &IOStream) -> bool {
        // SAFETY: the stream's fd is open while the stream is.
        let fd = unsafe { BorrowedFd::borrow_raw(stream.fd()) };
        SockRef::from(&fd).nodelay().unwrap()
    }
    let (seen, first, second) = AsyncTest::new().run(|_| {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        let server = TCPServer::new(move |stream: IOStream, _: SocketAddr| {
            s.borrow_mut().push(format!("nodelay={}", nodelay(&stream)));
            let (st, s2) = (stream.clone(), s.clone());
            stream
                .read_until(b"\n")
                .add_done_callback(move |line: &Future<Vec<u8>>| match line.take_result() {
                    Ok(line) => {
                        s2.borrow_mut().push("echo".to_owned());
                        let st2 = st.clone();
                        st.write(line)
                            .add_done_callback(move |_: &Future<()>| st2.close());
                    }
                    Err(_) => {
                        s2.borrow_mut()
                            .push(format!("overflow, closed={}", st.closed()));
                        st.close();
                    }
                });
        });
        server
            .listen_with(0, BindOptions::new().address("127.0.0.1"))
            .unwrap();
        let addr = server.local_addrs()[0];
        let mut line = vec![b'a'; 100];
        line.push(b'\n');
        let first = exchange(addr, line.clone());
        let result = Future::new();
        let r = result.clone();
        first.add_done_callback(move |first: &Future<Vec<u8>>| {
            let mut line = line;
            let first = first.take_result().unwrap_or_default();
            server.set_nodelay(true);
            server.set_max_buffer_size(Some(16));
            // No newline this time: 100 bytes fill the 16-byte buffer first.
            line.pop();
            exchange(addr, line).add_done_callback(move |second: &Future<Vec<u8>>| {
                server.stop();
                // The server closed on unread data: an empty read or a reset.
                let second = second.take_result().unwrap_or_default();
                r.set_result((seen.take(), first.len(), second.len()))
            });
        });
        result
    });
    assert_eq!(
        seen,
        [
            "nodelay=false",
            "echo",
            "nodelay=true",
            "overflow, closed=true"
        ],
        "TCP_NODELAY is off by default; the options apply to later streams"
    );
    assert_eq!(first, 101);
    assert_eq!(second, 0);
}

#[test]
fn listens_on_ipv6_loopback() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no ::1 on this host");
        return;
    }
    let reply = AsyncTest::new().run(|_| {
        let server = TCPServer::new(|stream: IOStream, peer: SocketAddr| {
            assert!(peer.is_ipv6());
            let s = stream.clone();
            stream
                .read_until(b"\n")
                .add_done_callback(move |line: &Future<Vec<u8>>| {
                    let line = line.take_result()?;
                    let s2 = s.clone();
                    s.write(line)
                        .add_done_callback(move |_: &Future<()>| s2.close());
                    Ok(())
                });
        });
        server
            .listen_with(0, BindOptions::new().address("::1"))
            .unwrap();
        let addr = server.local_addrs()[0];
        assert!(addr.is_ipv6());
        let reply = exchange(addr, b"six\n".to_vec());
        reply.add_done_callback(move |_: &Future<Vec<u8>>| server.stop());
        reply
    });
    assert_eq!(reply, b"six\n");
}

// ----- descriptors ------------------------------------------------------------

const CHILD_ENV: &str = "SQUALL_TCPSERVER_FD_CHILD";

/// One server lifetime on a fresh loop: serve `clients` echo exchanges,
/// leave one connection open on a second server that keeps its streams
/// without reading, then stop the servers (or not) and close the loop.
///
/// (A stream with a read pending whose callback holds the stream itself is a
/// reference cycle that only closing the stream breaks: the loop's `close()`
/// does not, so such a stream would outlive it. Not the servers' business.)
fn serve_and_close(clients: usize, stop: bool) {
    let io_loop = IOLoop::new().unwrap();
    let l = io_loop.clone();
    let replies = io_loop
        .run_sync(
            move || {
                let server =
                    TCPServer::with_loop(&l, |stream: IOStream, _: SocketAddr| echo_once(stream));
                server
                    .listen_with(0, BindOptions::new().address("127.0.0.1"))
                    .unwrap();
                let kept = Rc::new(RefCell::new(Vec::new()));
                let k = kept.clone();
                let idle = TCPServer::with_loop(&l, move |stream: IOStream, _: SocketAddr| {
                    k.borrow_mut().push(stream);
                });
                idle.listen_with(0, BindOptions::new().address("127.0.0.1"))
                    .unwrap();
                let addr = server.local_addrs()[0];
                let replies: Vec<_> = (0..clients)
                    .map(|_| exchange(addr, b"ping\n".to_vec()))
                    .collect();
                let done = Future::new();
                let d = done.clone();
                // Open at close time: an accepted stream and a client stream.
                IOStream::connect(idle.local_addrs()[0]).add_done_callback(
                    move |_: &Future<IOStream>| {
                        all(replies).add_done_callback(move |r: &Future<Vec<Vec<u8>>>| {
                            assert_eq!(kept.borrow().len(), 1);
                            if stop {
                                server.stop();
                                idle.stop();
                            }
                            d.complete(r.take_result())
                        });
                    },
                );
                done
            },
            Some(Duration::from_secs(10)),
        )
        .unwrap();
    assert!(replies.iter().all(|r| r == b"ping\n"));
    io_loop.close();
}

/// The child's half of `no_fd_is_leaked`; a no-op in a normal test run.
#[test]
fn fd_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    serve_and_close(5, true); // warm-up: anything opened once per process
    let before = open_fds();
    for i in 0..20 {
        serve_and_close(10, i % 2 == 0);
    }
    let after = open_fds();
    println!("fds: {before} before, {after} after");
    assert_eq!(after, before, "descriptors leaked");
    println!("FD-CHILD-OK");
}

#[test]
fn no_fd_is_leaked_once_the_server_stops_and_the_loop_closes() {
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new(exe)
        .args(["--exact", "fd_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("FD-CHILD-OK"),
        "child failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

#[test]
fn shutdown_waits_for_open_connections_then_closes_the_stragglers() {
    // Two clients: one closes after 50 ms, the other never does. A shutdown
    // with a 300 ms grace stops accepting at once, is not done while the
    // first is open, and closes the second when the grace runs out.
    let (first_closed_before_done, took, open_at_end) = AsyncTest::new().run(|io_loop| {
        let accepted: Rc<RefCell<Vec<IOStream>>> = Rc::new(RefCell::new(Vec::new()));
        let a = accepted.clone();
        let server = TCPServer::new(move |stream: IOStream, _: SocketAddr| {
            a.borrow_mut().push(stream);
        });
        server
            .listen_with(0, BindOptions::new().address("127.0.0.1"))
            .unwrap();
        let addr = server.local_addrs()[0];
        let clients: Vec<_> = (0..2)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let done = Future::new();
        let (d, l, s) = (done.clone(), io_loop.clone(), server.clone());
        io_loop.add_timeout(Duration::from_millis(50), move || {
            assert_eq!(s.connection_count(), 2);
            let started = Instant::now();
            let shutdown = s.shutdown(Duration::from_millis(300));
            assert!(!s.is_listening());
            let first = accepted.borrow()[0].clone();
            let f = first.clone();
            l.add_timeout(Duration::from_millis(50), move || f.close());
            let s2 = s.clone();
            shutdown.add_done_callback(move |_: &Future<()>| {
                let _keep = clients;
                d.set_result((first.closed(), started.elapsed(), s2.connection_count()))
            });
        });
        done
    });
    assert!(first_closed_before_done);
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(open_at_end, 0, "the straggler was closed");
}

#[test]
fn shutdown_with_nothing_open_is_done_at_once() {
    AsyncTest::new().run(|_| {
        let server = TCPServer::new(|_s: IOStream, _: SocketAddr| ());
        server
            .listen_with(0, BindOptions::new().address("127.0.0.1"))
            .unwrap();
        let done = server.shutdown(Duration::from_secs(10));
        assert!(done.done());
        assert!(server.local_addrs().is_empty());
        done
    });
}

#[test]
fn a_grace_of_duration_max_waits_for_ever_rather_than_panicking() {
    AsyncTest::new().run(|_| {
        let server = TCPServer::new(|_s: IOStream, _: SocketAddr| ());
        server
            .listen_with(0, BindOptions::new().address("127.0.0.1"))
            .unwrap();
        let done = server.shutdown(Duration::MAX);
        assert!(done.done());
        done
    });
}
