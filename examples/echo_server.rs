//! The third seed article's echo server: a `TCPServer` whose `handle_stream`
//! reads a line, waits, writes the line back and closes.
//!
//! The wait is a loop timeout (`call_later`), not a sleep: while one client
//! waits its 2 seconds, the loop serves everyone else, so 200 clients are
//! answered in about 2 seconds, not 400.
//!
//! The article's `handle_stream` is a `@gen.coroutine`; its Tornado 6 form,
//! a native coroutine, is [`handle_echo_async`] here, served with `--async`:
//!
//! ```python
//! class EchoServer(TCPServer):
//!     async def handle_stream(self, stream, address):
//!         try:
//!             data = await stream.read_until(b"\n")
//!         except StreamClosedError:
//!             return
//!         await gen.sleep(2)
//!         await stream.write(data)
//!         stream.close()
//! ```
//!
//! Usage:
//!
//! ```text
//! echo_server                    self-test (what CI runs): serve on an ephemeral
//!                                port, run 20 clients against it with a 200 ms
//!                                delay, check every echo and the timing, exit 0;
//!                                then the same against the async form
//! echo_server --self-test        the same
//! echo_server PORT [DELAY_SECS]  serve forever on 127.0.0.1:PORT (delay 2 s)
//! echo_server --serve            serve forever on 127.0.0.1:8888, delay 2 s
//! echo_server --async ...        any of the above, with the async handler
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

use squall::{gen, Error, ErrorKind, Future, IOLoop, IOStream, TCPServer};

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
                    d.try_set_result(());
                    return;
                }
                Err(err) => {
                    s.close();
                    d.try_set_error(err);
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
                        d.try_complete(written.take_result());
                    });
            });
        });
    done
}

/// The same connection as a native coroutine (Tornado 6's `async def
/// handle_stream`): one `.await` where the callback form has one callback.
fn handle_echo_async(stream: IOStream, peer: SocketAddr, delay: Duration) -> Future<()> {
    gen::coroutine(async move {
        let line = match stream.read_until(b"\n").await {
            Ok(line) => line,
            // The client left before sending a whole line: nothing to do.
            Err(err) if err.kind() == ErrorKind::StreamClosed => {
                log::debug!("{peer} left early: {err}");
                return Ok(());
            }
            Err(err) => {
                stream.close();
                return Err(err);
            }
        };
        log::debug!("{peer} sent {} bytes; answering in {delay:?}", line.len());
        gen::sleep(delay).await?;
        let written = stream.write(line).await;
        stream.close();
        written
    })
}

/// Which `handle_stream` the server runs.
#[derive(Clone, Copy, Debug)]
enum Form {
    Callbacks,
    Async,
}

fn echo_server(delay: Duration, form: Form) -> TCPServer {
    TCPServer::new(move |stream: IOStream, peer: SocketAddr| match form {
        Form::Callbacks => handle_echo(stream, peer, delay),
        Form::Async => handle_echo_async(stream, peer, delay),
    })
}

/// A client: connect, send `line`, read until the server closes.
fn client(addr: SocketAddr, line: String) -> Future<Vec<u8>> {
    let reply = Future::new();
    let r = reply.clone();
    IOStream::connect(addr).add_done_callback(move |conn: &Future<IOStream>| {
        let conn = match conn.take_result() {
            Ok(conn) => conn,
            Err(err) => {
                r.try_set_error(err);
                return;
            }
        };
        drop(conn.write(line.into_bytes()));
        squall::chain_future(&conn.read_until_close(), &r);
    });
    reply
}

/// The async form of [`client`].
async fn client_async(addr: SocketAddr, line: String) -> Result<Vec<u8>, Error> {
    let conn = IOStream::connect(addr).await?;
    conn.write(line.into_bytes()).await?;
    conn.read_until_close().await
}

fn self_test(forms: &[Form]) -> Result<(), Box<dyn std::error::Error>> {
    for &form in forms {
        self_test_form(form)?;
    }
    println!("ok");
    Ok(())
}

fn self_test_form(form: Form) -> Result<(), Box<dyn std::error::Error>> {
    let io_loop = IOLoop::new()?;
    let started = Instant::now();
    let replies = io_loop.run_sync(
        move || {
            let server = echo_server(SELF_TEST_DELAY, form);
            server
                .listen_with(0, BindOptions::new().address("127.0.0.1"))
                .expect("cannot listen on 127.0.0.1");
            let addr = server.local_addrs()[0];
            println!("{form:?} echo server on {addr}, delay {SELF_TEST_DELAY:?}");

            let all: Future<Vec<Result<Vec<u8>, squall::Error>>> = Future::new();
            let left = Rc::new(Cell::new(SELF_TEST_CLIENTS));
            let replies: Rc<Vec<Future<Vec<u8>>>> = Rc::new(
                (0..SELF_TEST_CLIENTS)
                    .map(|i| {
                        let line = format!("hello from client {i}\n");
                        match form {
                            Form::Callbacks => client(addr, line),
                            Form::Async => gen::coroutine(client_async(addr, line)),
                        }
                    })
                    .collect(),
            );
            for reply in replies.iter() {
                let (all, left, replies, server) =
                    (all.clone(), left.clone(), replies.clone(), server.clone());
                reply.add_done_callback(move |reply: &Future<Vec<u8>>| {
                    if let Some(err) = reply.error() {
                        all.try_set_error(err);
                        return;
                    }
                    left.set(left.get() - 1);
                    if left.get() == 0 {
                        server.stop();
                        all.try_set_result(replies.iter().map(|r| r.result()).collect());
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
    Ok(())
}

fn serve(port: u16, delay: Duration, form: Form) -> Result<(), Box<dyn std::error::Error>> {
    let io_loop = IOLoop::new()?;
    io_loop.make_current();
    let server = echo_server(delay, form);
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
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let form = match args.first().map(String::as_str) {
        Some("--async") => {
            args.remove(0);
            Some(Form::Async)
        }
        _ => None,
    };
    match args.first().map(String::as_str) {
        None | Some("--self-test") => match form {
            Some(form) => self_test(&[form]),
            None => self_test(&[Form::Callbacks, Form::Async]),
        },
        Some("--serve") => serve(DEFAULT_PORT, DEFAULT_DELAY, form.unwrap_or(Form::Callbacks)),
        Some("-h") | Some("--help") => {
            println!("usage: echo_server [--async] [--self-test | --serve | PORT [DELAY_SECS]]");
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
            serve(port, delay, form.unwrap_or(Form::Callbacks))
        }
    }
}
