//! The third seed article's echo server: a `TCPServer` whose `handle_stream`
//! reads a line, waits, writes the line back and closes.
//!
//! The wait is a loop timeout (`call_later`), not a sleep: while one client
//! waits its 2 seconds, the loop serves everyone else, so 200 clients are
//! answered in about 2 seconds, not 400.
//!
//! Usage:
//!
//! ```text
//! echo_server                    self-test (what CI runs): serve on an ephemeral
//!                                port, run 20 clients against it with a 200 ms
//!                                delay, check every echo and the timing, exit 0
//! echo_server --self-test        the same
//! echo_server PORT [DELAY_SECS]  serve forever on 127.0.0.1:PORT (delay 2 s)
//! echo_server --serve            serve forever on 127.0.0.1:8888, delay 2 s
//! ```
//!
//! Try it: `cargo run --release --example echo_server -- 8888`, then
//! `echo hello | nc 127.0.0.1 8888` in another terminal (or many at once).
//! `RUST_LOG=squall=debug` shows what the server does.

use squall::netutil::BindOptions;
use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use squall::{ErrorKind, Future, IOLoop, IOStream, TCPServer};

const DEFAULT_PORT: u16 = 8888;
const DEFAULT_DELAY: Duration = Duration::from_secs(2);
const SELF_TEST_CLIENTS: usize = 20;
const SELF_TEST_DELAY: Duration = Duration::from_millis(200);

/// One connection: read a line, wait `delay` with the loop, echo, close.
///
/// The returned future is what `TCPServer` watches: if it fails, the error is
/// logged, and the server goes on serving everyone else.
fn handle_echo(stream: IOStream, peer: SocketAddr, delay: Duration) -> Future<()> {
    let done = Future::new();
    let d = done.clone();
    let s = stream.clone();
    stream
        .read_until(b"\n")
        .add_done_callback(move |line: &Future<Vec<u8>>| {
            let line = match line.take_result() {
                Ok(line) => line,
                // The client left before sending a whole line: nothing to do.
                Err(err) if err.kind() == ErrorKind::StreamClosed => {
                    log::debug!("{peer} left early: {err}");
                    let _ = d.set_result(());
                    return;
                }
                Err(err) => {
                    s.close();
                    let _ = d.set_error(err);
                    return;
                }
            };
            log::debug!("{peer} sent {} bytes; answering in {delay:?}", line.len());
            let io_loop = s.io_loop().clone();
            io_loop.call_later(delay, move || {
                let s2 = s.clone();
                s.write(line)
                    .add_done_callback(move |written: &Future<()>| {
                        s2.close();
                        let _ = d.complete(written.take_result());
                    });
            });
        });
    done
}

fn echo_server(delay: Duration) -> TCPServer {
    TCPServer::new(move |stream: IOStream, peer: SocketAddr| handle_echo(stream, peer, delay))
}

/// A client: connect, send `line`, read until the server closes.
fn client(addr: SocketAddr, line: String) -> Future<Vec<u8>> {
    let reply = Future::new();
    let r = reply.clone();
    IOStream::connect(addr).add_done_callback(move |conn: &Future<IOStream>| {
        let conn = match conn.take_result() {
            Ok(conn) => conn,
            Err(err) => {
                let _ = r.set_error(err);
                return;
            }
        };
        conn.write(line.into_bytes());
        squall::chain_future(&conn.read_until_close(), &r);
    });
    reply
}

fn self_test() -> Result<(), Box<dyn std::error::Error>> {
    let io_loop = IOLoop::new()?;
    let started = Instant::now();
    let replies = io_loop.run_sync(
        || {
            let server = echo_server(SELF_TEST_DELAY);
            server
                .listen_with(0, BindOptions::new().address("127.0.0.1"))
                .expect("cannot listen on 127.0.0.1");
            let addr = server.local_addrs()[0];
            println!("echo server on {addr}, delay {SELF_TEST_DELAY:?}");

            let all: Future<Vec<Result<Vec<u8>, squall::Error>>> = Future::new();
            let left = Rc::new(Cell::new(SELF_TEST_CLIENTS));
            let replies: Rc<Vec<Future<Vec<u8>>>> = Rc::new(
                (0..SELF_TEST_CLIENTS)
                    .map(|i| client(addr, format!("hello from client {i}\n")))
                    .collect(),
            );
            for reply in replies.iter() {
                let (all, left, replies, server) =
                    (all.clone(), left.clone(), replies.clone(), server.clone());
                reply.add_done_callback(move |reply: &Future<Vec<u8>>| {
                    if let Some(err) = reply.error() {
                        let _ = all.set_error(err);
                        return;
                    }
                    left.set(left.get() - 1);
                    if left.get() == 0 {
                        server.stop();
                        let _ = all.set_result(replies.iter().map(|r| r.result()).collect());
                    }
                });
            }
            all
        },
        Some(Duration::from_secs(10)),
    )?;
    let took = started.elapsed();
    for (i, reply) in replies.into_iter().enumerate() {
        let reply = reply?;
        let expected = format!("hello from client {i}\n");
        if reply != expected.as_bytes() {
            return Err(format!(
                "client {i}: expected {expected:?}, got {:?}",
                String::from_utf8_lossy(&reply)
            )
            .into());
        }
    }
    println!(
        "{SELF_TEST_CLIENTS} clients, each answered after {SELF_TEST_DELAY:?}: all echoed in {took:.2?} \
         (one after the other would take {:.2?})",
        SELF_TEST_DELAY * SELF_TEST_CLIENTS as u32
    );
    // They waited side by side.
    if took >= SELF_TEST_DELAY * (SELF_TEST_CLIENTS as u32 / 2) {
        return Err(format!("the clients were served one by one: {took:?}").into());
    }
    io_loop.close();
    println!("ok");
    Ok(())
}

fn serve(port: u16, delay: Duration) -> Result<(), Box<dyn std::error::Error>> {
    let io_loop = IOLoop::new()?;
    io_loop.make_current();
    let server = echo_server(delay);
    server.listen_with(port, BindOptions::new().address("127.0.0.1"))?;
    println!(
        "echo server listening on {:?}, answering after {delay:?}; Ctrl-C to stop",
        server.local_addrs()
    );
    io_loop.start()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("--self-test") => self_test(),
        Some("--serve") => serve(DEFAULT_PORT, DEFAULT_DELAY),
        Some("-h") | Some("--help") => {
            println!("usage: echo_server [--self-test | --serve | PORT [DELAY_SECS]]");
            Ok(())
        }
        Some(port) => {
            let port: u16 = port.parse().map_err(|_| format!("bad port {port:?}"))?;
            let delay = match args.get(1) {
                Some(secs) => {
                    let secs: f64 = secs.parse().map_err(|_| format!("bad delay {secs:?}"))?;
                    Duration::try_from_secs_f64(secs).map_err(|e| format!("bad delay: {e}"))?
                }
                None => DEFAULT_DELAY,
            };
            serve(port, delay)
        }
    }
}
