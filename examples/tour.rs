//! A tour of squall's core, after the third seed article: many slow requests
//! waiting at once on one thread.
//!
//! A slow echo server (plain threads, standing in for a remote service) answers
//! each line after 200 ms. The loop sends 50 requests at once, each over its own
//! non-blocking socket watched with `add_handler`, each returning a `Future`
//! that the handler resolves. Because nothing blocks, all 50 wait together:
//! the batch takes about 200 ms, not 50 × 200 ms.
//!
//! Along the way: `add_callback` order, `call_later`, a `PeriodicCallback`
//! ticking while requests are in flight, a `Remote` bringing back the result of
//! blocking work done on another thread, and `run_sync` driving it all.
//!
//! Run: `cargo run --release --example tour`

use std::cell::{Cell, RefCell};
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

use squall::{Error, Events, Future, IOLoop, PeriodicCallback};

const CLIENTS: usize = 50;
const SERVER_DELAY: Duration = Duration::from_millis(200);

/// The slow service: one thread per connection, echoing each line after a delay.
fn start_slow_echo_server() -> io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || {
        for conn in listener.incoming().take(CLIENTS) {
            let Ok(mut conn) = conn else { continue };
            thread::spawn(move || {
                let mut line = String::new();
                let mut reader = BufReader::new(conn.try_clone()?);
                reader.read_line(&mut line)?;
                thread::sleep(SERVER_DELAY);
                conn.write_all(line.as_bytes())
            });
        }
    });
    Ok(addr)
}

/// Seed 3's asynchronous fetch: register the socket with `add_handler` and
/// return a Future that the handler resolves — removing itself first.
fn fetch(io_loop: &IOLoop, addr: std::net::SocketAddr, message: String) -> Future<String> {
    let future = Future::new();
    let result = (|| -> Result<(), Error> {
        // A blocking connect to loopback is immediate; the wait is for the answer.
        let mut sock = TcpStream::connect(addr)?;
        sock.write_all(format!("{message}\n").as_bytes())?;
        sock.set_nonblocking(true)?;
        let fd = sock.as_raw_fd();
        let received = RefCell::new(Vec::new());
        let (l, f) = (io_loop.clone(), future.clone());
        io_loop.add_handler(
            fd,
            move |fd, _events: Events| -> Result<(), Error> {
                let mut buf = [0u8; 256];
                // Level-triggered: read once; if more is there, we are called again.
                match sock.read(&mut buf) {
                    Ok(0) => {}
                    Ok(n) => {
                        received.borrow_mut().extend_from_slice(&buf[..n]);
                        if !received.borrow().ends_with(b"\n") {
                            return Ok(());
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => {
                        l.remove_handler(fd);
                        return f.set_error(e);
                    }
                }
                l.remove_handler(fd);
                let line = String::from_utf8_lossy(&received.borrow())
                    .trim()
                    .to_owned();
                f.set_result(line)
            },
            Events::READ,
        )
    })();
    if let Err(err) = result {
        let _ = future.set_error(err);
    }
    future
}

/// Waits for all futures; fails with the first error.
fn gather(futures: Vec<Future<String>>) -> Future<Vec<String>> {
    let all = Future::new();
    let remaining = Rc::new(Cell::new(futures.len()));
    for f in &futures {
        let (all, remaining, futures) = (all.clone(), remaining.clone(), futures.clone());
        f.add_done_callback(move |f: &Future<String>| {
            if let Some(err) = f.error() {
                let _ = all.set_error(err);
                return;
            }
            remaining.set(remaining.get() - 1);
            if remaining.get() == 0 && !all.done() {
                let values = futures.iter().map(|f| f.result().unwrap()).collect();
                let _ = all.set_result(values);
            }
        });
    }
    if futures.is_empty() {
        let _ = all.set_result(Vec::new());
    }
    all
}

fn main() -> Result<(), Error> {
    env_logger::init();
    let io_loop = IOLoop::new()?;
    io_loop.set_blocking_log_threshold(Some(Duration::from_millis(50)));

    // 1. Callbacks run in the order they were added, on the next iteration.
    io_loop.add_callback(|| println!("[callback] one"));
    io_loop.add_callback(|| println!("[callback] two"));
    let (l, t0) = (io_loop.clone(), io_loop.time());
    io_loop.call_later(Duration::from_millis(1), move || {
        println!(
            "[timeout ] fired {:?} after it was set for 1 ms",
            l.time() - t0
        );
    });

    // 2. Blocking work belongs on a thread; its result comes back through a Remote.
    let remote = io_loop.remote();
    thread::spawn(move || {
        let sum: u64 = (1..=1_000_000u64).sum(); // pretend this is slow
        remote
            .add_callback(move || println!("[remote  ] a worker thread computed {sum}"))
            .expect("loop is open");
    });

    // 3. A heartbeat that keeps ticking while 50 requests wait.
    let ticks = Rc::new(Cell::new(0u32));
    let t = ticks.clone();
    let heartbeat = PeriodicCallback::new(move || t.set(t.get() + 1), Duration::from_millis(20))?;

    let addr = start_slow_echo_server()?;
    let l = io_loop.clone();
    let hb = heartbeat.clone();
    let started = Instant::now();
    let replies = io_loop.run_sync(
        move || {
            hb.start();
            let futures = (0..CLIENTS)
                .map(|i| fetch(&l, addr, format!("hello {i}")))
                .collect();
            gather(futures)
        },
        Some(Duration::from_secs(10)),
    )?;
    let took = started.elapsed();
    heartbeat.stop();

    assert_eq!(replies.len(), CLIENTS);
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(reply, &format!("hello {i}"));
    }
    println!(
        "[fetch   ] {CLIENTS} requests, each answered after {SERVER_DELAY:?}, took {took:?} together \
         (blocking one by one would take {:?})",
        SERVER_DELAY * CLIENTS as u32
    );
    println!(
        "[periodic] the heartbeat ticked {} times meanwhile: the loop never blocked",
        ticks.get()
    );
    assert!(
        took < SERVER_DELAY * (CLIENTS as u32) / 4,
        "requests did not overlap"
    );
    io_loop.close();
    Ok(())
}
