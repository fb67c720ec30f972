//! Connecting: success, refusal, timeouts (and their cancellation), and a
//! close that aborts a connect.

use super::*;

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
