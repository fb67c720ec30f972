//! An echo client written as straight-line code (feature `stackful`), the
//! way TorMySQL writes its MySQL driver: each call looks blocking, but runs
//! in a child coroutine that switches to the loop while it waits.
//!
//! ```text
//! greenlet_client                  self-test (what CI runs): start an echo
//!                                  server with a 200 ms delay on an ephemeral
//!                                  port, run one client, then 100 at once;
//!                                  check every echo, print the timings, exit 0
//! greenlet_client ADDR [N]         N clients (default 100) against an echo
//!                                  server at ADDR (e.g. examples/echo_server)
//! ```
//!
//! Run: `cargo run --release --features stackful --example greenlet_client`.
//! The 100 clients finish in about the time of one: while one waits for its
//! echo, the loop runs the others.

use squall::netutil::BindOptions;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use squall::greenlet::{self, Stream};
use squall::{Error, ErrorKind, Future, IOLoop, IOStream, TCPServer};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const SELF_TEST_DELAY: Duration = Duration::from_millis(200);
const DEFAULT_CLIENTS: usize = 100;

/// One client, top to bottom: connect (with a timeout), send a line, read
/// the echo, close.
fn echo_client(addr: SocketAddr, id: usize) -> Result<Vec<u8>, Error> {
    // As in the article: the connect gets its own loop timeout, and that
    // timeout is removed the moment the connect completes (the self-test
    // checks that no timeout is left on the loop at the end).
    let stream = Stream::connect(addr, Some(CONNECT_TIMEOUT))?;
    stream.write(format!("hello from client {id}\n"))?;
    let echo = stream.read_until_max_bytes(b"\n", 64 * 1024)?;
    stream.close();
    Ok(echo)
}

/// `n` clients at once on this loop; returns how many got their own line back.
fn run_clients(io_loop: &IOLoop, addr: SocketAddr, n: usize) -> Result<usize, Error> {
    io_loop.run_sync(
        move || {
            let clients: Vec<Future<Vec<u8>>> = (0..n)
                .map(|id| greenlet::async_call_method(move || echo_client(addr, id)))
                .collect();
            // The collector is straight-line code too.
            greenlet::spawn(move || {
                let mut correct = 0;
                for (id, client) in clients.into_iter().enumerate() {
                    let echo = greenlet::wait(client)?;
                    if echo == format!("hello from client {id}\n").as_bytes() {
                        correct += 1;
                    }
                }
                Ok(correct)
            })
        },
        Some(Duration::from_secs(60)),
    )
}

/// The seed article's echo server, as a child per connection: read a line,
/// sleep `delay`, write it back, close.
fn start_echo_server(delay: Duration) -> Result<(TCPServer, SocketAddr), Error> {
    let server = TCPServer::new(move |stream: IOStream, _peer: SocketAddr| {
        greenlet::spawn(move || {
            let stream = Stream::from(stream);
            let line = match stream.read_until_max_bytes(b"\n", 64 * 1024) {
                Ok(line) => line,
                Err(err) if err.kind() == ErrorKind::StreamClosed => return Ok(()),
                Err(err) => return Err(err),
            };
            greenlet::sleep(delay)?;
            stream.write(line)?;
            stream.close();
            Ok(())
        })
    });
    server.listen_with(0, BindOptions::new().address("127.0.0.1"))?;
    let addr = server.local_addrs()[0];
    Ok((server, addr))
}

/// Open file descriptors of this process (0 where /proc is not there).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn self_test() -> Result<(), Error> {
    let fds_before = open_fds();
    let io_loop = IOLoop::new()?;
    io_loop.make_current();
    let (server, addr) = start_echo_server(SELF_TEST_DELAY)?;
    println!("echo server on {addr}, answering after {SELF_TEST_DELAY:?}");

    let t0 = Instant::now();
    let one = run_clients(&io_loop, addr, 1)?;
    let one_took = t0.elapsed();
    println!("1 client:    {one}/1 correct in {one_took:?}");

    let t0 = Instant::now();
    let all = run_clients(&io_loop, addr, DEFAULT_CLIENTS)?;
    let all_took = t0.elapsed();
    println!("{DEFAULT_CLIENTS} clients: {all}/{DEFAULT_CLIENTS} correct in {all_took:?}");
    println!(
        "sequential would take about {:?}",
        one_took * DEFAULT_CLIENTS as u32
    );

    // Every connect timeout (5 s) was removed when its connect succeeded.
    let left = io_loop.timer_stats().pending;
    println!("timeouts left on the loop: {left}");
    server.stop();
    io_loop.close();
    drop(io_loop);
    IOLoop::clear_current();
    let fds_after = open_fds();
    println!("open fds: {fds_before} before, {fds_after} after");
    assert_eq!(fds_after, fds_before, "a socket was leaked");
    assert_eq!(left, 0, "a connect timeout was left behind");
    assert_eq!(one, 1);
    assert_eq!(all, DEFAULT_CLIENTS);
    // About the time of one: all of them waited for their echo at once.
    assert!(
        all_took < one_took * 2 + Duration::from_millis(500),
        "100 concurrent clients took {all_took:?}, one took {one_took:?}"
    );
    assert_eq!(greenlet::stack_stats().live, 0, "every child finished");
    println!("ok");
    Ok(())
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => self_test(),
        [flag] if flag == "--self-test" => self_test(),
        [addr, rest @ ..] if rest.len() <= 1 => {
            let addr: SocketAddr = addr
                .parse()
                .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("{addr}: {e}")))?;
            let n = match rest.first() {
                Some(n) => n
                    .parse()
                    .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("{n}: {e}")))?,
                None => DEFAULT_CLIENTS,
            };
            let io_loop = IOLoop::new()?;
            let t0 = Instant::now();
            let correct = run_clients(&io_loop, addr, n)?;
            println!("{n} clients: {correct}/{n} correct in {:?}", t0.elapsed());
            if correct == n {
                Ok(())
            } else {
                Err(Error::other("some echoes were wrong"))
            }
        }
        _ => Err(Error::new(
            ErrorKind::InvalidArgument,
            "usage: greenlet_client [--self-test | ADDR [N]]",
        )),
    }
}
