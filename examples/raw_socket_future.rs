//! The third seed article's `get_data`: the lowest-level way to build an
//! asynchronous call.
//!
//! A plain non-blocking socket is connected to an echo server, the request is
//! sent, and the socket is registered with `io_loop.add_handler(fd, .., READ)`.
//! The call returns a `Future` at once; when the answer arrives, the handler
//! removes itself and resolves the future with the bytes read. No `IOStream`,
//! no buffer class: a socket, a handler and a future are all it takes.
//!
//! The echo server (a `TCPServer` answering each line after 500 ms) runs
//! in-process, on the same loop, on an ephemeral port. Twenty calls wait at
//! the same time, so they all finish after about 500 ms. The article's
//! blocking version (`recv` on a blocking socket) would take 20 × 500 ms, and
//! here could not even work: a blocked loop cannot run the server it waits for.
//!
//! Run: `cargo run --release --example raw_socket_future` (no arguments; it
//! checks its own results and exits 0, which is how CI runs it).

use squall::netutil::BindOptions;
use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::io::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use squall::{Error, Events, Future, IOLoop, IOStream, TCPServer};

const CALLS: usize = 20;
const SERVER_DELAY: Duration = Duration::from_millis(500);

/// Sends `message` to the echo server at `addr` and returns a future for the
/// line that comes back.
fn get_data(io_loop: &IOLoop, addr: SocketAddr, message: &str) -> Future<Vec<u8>> {
    let future = Future::new();
    let sent = (|| -> io::Result<TcpStream> {
        // A connect to loopback completes in the kernel at once (the server
        // accepts it later), and a short request fits in the socket buffer:
        // neither blocks.
        let mut sock = TcpStream::connect(addr)?;
        sock.write_all(message.as_bytes())?;
        sock.set_nonblocking(true)?;
        Ok(sock)
    })();
    let sock = match sent {
        Ok(sock) => sock,
        Err(err) => return Future::failed(err.into()),
    };

    let fd = sock.as_raw_fd();
    let mut received = Vec::new();
    let (l, f) = (io_loop.clone(), future.clone());
    // The handler owns the socket; removing the handler drops it, and so
    // closes the socket.
    let handle_data = move |fd: RawFd, _events: Events| {
        let mut buf = [0u8; 4096];
        let done = match (&sock).read(&mut buf) {
            Ok(0) => Ok(true), // the server closed: what we have is the answer
            Ok(n) => {
                received.extend_from_slice(&buf[..n]);
                Ok(received.ends_with(b"\n"))
            }
            // Level-triggered: if there is more, we are called again.
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(err) => Err(err),
        };
        match done {
            Ok(false) => {}
            Ok(true) => {
                l.remove_handler(fd);
                f.try_set_result(std::mem::take(&mut received));
            }
            Err(err) => {
                l.remove_handler(fd);
                f.try_set_error(err.into());
            }
        }
    };
    if let Err(err) = io_loop.add_handler(fd, handle_data, Events::READ) {
        return Future::failed(err);
    }
    future
}

/// The echo server: each line back after `SERVER_DELAY`, then close.
fn start_echo_server(io_loop: &IOLoop) -> Result<TCPServer, Error> {
    let server = TCPServer::with_loop(io_loop, |stream: IOStream, _peer: SocketAddr| {
        let s = stream.clone();
        stream
            .read_until(b"\n")
            .add_done_callback(move |line: &Future<Vec<u8>>| {
                let line = line.take_result()?;
                let io_loop = s.io_loop().clone();
                io_loop.call_later(SERVER_DELAY, move || {
                    let s2 = s.clone();
                    s.write(line)
                        .add_done_callback(move |_: &Future<()>| s2.close());
                });
                Ok(())
            });
    });
    server.listen_with(0, BindOptions::new().address("127.0.0.1"))?;
    Ok(server)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let io_loop = IOLoop::new()?;
    let server = start_echo_server(&io_loop)?;
    let addr = server.local_addrs()[0];
    println!("echo server on {addr}, answering after {SERVER_DELAY:?}");

    let started = Instant::now();
    let l = io_loop.clone();
    let answers = io_loop.run_sync(
        move || {
            let all: Future<Vec<Vec<u8>>> = Future::new();
            let calls: Rc<Vec<Future<Vec<u8>>>> = Rc::new(
                (0..CALLS)
                    .map(|i| get_data(&l, addr, &format!("request {i}\n")))
                    .collect(),
            );
            println!("{CALLS} calls started in {:.2?}", started.elapsed());
            let left = Rc::new(Cell::new(CALLS));
            let failed = Rc::new(RefCell::new(None));
            for call in calls.iter() {
                let (all, left, calls, failed) =
                    (all.clone(), left.clone(), calls.clone(), failed.clone());
                call.add_done_callback(move |call: &Future<Vec<u8>>| {
                    if let Some(err) = call.error() {
                        failed.borrow_mut().get_or_insert(err);
                    }
                    left.set(left.get() - 1);
                    if left.get() == 0 {
                        match failed.take() {
                            Some(err) => all.set_error(err),
                            None => all.set_result(
                                calls
                                    .iter()
                                    .map(|c| c.result().unwrap_or_default())
                                    .collect(),
                            ),
                        };
                    }
                });
            }
            all
        },
        Some(Duration::from_secs(10)),
    )?;
    let took = started.elapsed();
    server.stop();
    io_loop.close();

    for (i, answer) in answers.iter().enumerate() {
        let expected = format!("request {i}\n");
        if answer != expected.as_bytes() {
            return Err(format!(
                "call {i}: expected {expected:?}, got {:?}",
                String::from_utf8_lossy(answer)
            )
            .into());
        }
    }
    println!(
        "{CALLS} answers in {took:.2?} (one after the other: {:.2?})",
        SERVER_DELAY * CALLS as u32
    );
    if took >= SERVER_DELAY * 3 {
        return Err(format!("the calls did not wait side by side: {took:?}").into());
    }
    println!("ok");
    Ok(())
}
