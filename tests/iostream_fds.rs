//! 10,000 IOStream connect/close cycles release every descriptor.
//!
//! Its own test binary, with a single test: no other test opens or closes fds
//! in this process while it counts them.

mod common;

use common::open_fds;

use std::cell::Cell;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::time::{Duration, Instant};

use squall::iostream::IOStream;
use squall::testing::AsyncTest;
use squall::{Events, Future, IOLoop};

/// Connections run side by side.
const LANES: usize = 16;

struct Counts {
    /// Client cycles finished.
    clients: Cell<usize>,
    /// Server-side streams closed.
    server_closes: Cell<usize>,
    accepted: Cell<usize>,
}

/// One cycle: connect, send a byte, close. Even cycles: the client closes at
/// once and the server stream sees the end. Odd cycles: the server closes
/// when told to, and the client's `read_until_close` sees it. Every 50th cycle also tries a
/// refused connect.
fn cycle(
    io_loop: IOLoop,
    addr: SocketAddr,
    refused: SocketAddr,
    i: usize,
    n: usize,
    counts: Rc<Counts>,
    done: Future<()>,
) {
    if i >= n {
        return;
    }
    let next = move |counts: Rc<Counts>| {
        counts.clients.set(counts.clients.get() + 1);
        if counts.clients.get() == n {
            done.try_set_result(());
        } else {
            let l = io_loop.clone();
            io_loop.add_callback(move || cycle(l, addr, refused, i + LANES, n, counts, done));
        }
    };
    if i % 50 == 49 {
        IOStream::connect(refused).add_done_callback(move |f: &Future<IOStream>| {
            assert!(f.error().is_some(), "connect to a closed port succeeded");
            next(counts);
        });
        return;
    }
    IOStream::connect(addr).add_done_callback(move |f: &Future<IOStream>| {
        let stream = f.take_result().expect("connect failed");
        if i % 2 == 0 {
            // "I close": the server waits for the end.
            drop(stream.write(&b"c"[..]));
            stream.close();
            next(counts);
        } else {
            // "You close".
            drop(stream.write(&b"s"[..]));
            stream
                .read_until_close()
                .add_done_callback(move |f: &Future<Vec<u8>>| {
                    assert!(f.take_result().is_ok());
                    assert!(stream.closed());
                    next(counts);
                });
        }
    });
}

fn run_cycles(n: usize) {
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    AsyncTest::new()
        .timeout(Duration::from_secs(120))
        .run(move |io_loop| {
            let listener = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
            listener.set_nonblocking(true).unwrap();
            let addr = listener.local_addr().unwrap();
            let counts = Rc::new(Counts {
                clients: Cell::new(0),
                server_closes: Cell::new(0),
                accepted: Cell::new(0),
            });
            {
                let (l, counts) = (listener.clone(), counts.clone());
                io_loop
                    .add_handler(
                        &*listener,
                        move |_, _| loop {
                            match l.accept() {
                                Ok((conn, _)) => {
                                    counts.accepted.set(counts.accepted.get() + 1);
                                    let stream = IOStream::new(conn).unwrap();
                                    let c = counts.clone();
                                    stream.set_close_callback(move || {
                                        c.server_closes.set(c.server_closes.get() + 1);
                                    });
                                    // The client says who closes.
                                    let s = stream.clone();
                                    stream.read_bytes(1).add_done_callback(
                                        move |f: &Future<Vec<u8>>| {
                                            if f.take_result().ok().as_deref() == Some(b"s") {
                                                s.close();
                                            }
                                            // Else the end closes it.
                                        },
                                    );
                                }
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                                Err(e) => panic!("accept: {e}"),
                            }
                        },
                        Events::READ,
                    )
                    .unwrap();
            }
            let done = Future::new();
            for lane in 0..LANES.min(n) {
                cycle(
                    io_loop.clone(),
                    addr,
                    refused,
                    lane,
                    n,
                    counts.clone(),
                    done.clone(),
                );
            }
            // Then wait for every server-side stream to close too.
            let all_closed = Future::new();
            let io = io_loop.clone();
            let ac = all_closed.clone();
            done.add_done_callback(move |_: &Future<()>| {
                fn wait(io: IOLoop, counts: Rc<Counts>, listener: Rc<TcpListener>, f: Future<()>) {
                    if counts.server_closes.get() == counts.accepted.get() {
                        assert!(io.remove_handler(&*listener));
                        // Each stream's handler is gone with it.
                        assert_eq!(io.handler_count(), 0);
                        f.try_set_result(());
                    } else {
                        let l = io.clone();
                        io.call_later(Duration::from_millis(1), move || {
                            wait(l, counts, listener, f)
                        });
                    }
                }
                wait(io, counts, listener, ac);
            });
            all_closed
        });
}

#[test]
fn no_fd_is_leaked_by_10000_connect_close_cycles() {
    // Warm up whatever is created once per process.
    run_cycles(100);
    eprintln!("warm-up done");
    IOLoop::clear_current();

    let before = open_fds();
    let started = Instant::now();
    run_cycles(10_000);
    let took = started.elapsed();
    let after = open_fds();
    eprintln!("10,000 connect/close cycles in {took:?}");
    assert_eq!(
        after, before,
        "fds leaked: {} before, {} after",
        before, after
    );
}
