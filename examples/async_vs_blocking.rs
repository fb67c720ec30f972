//! The third seed article, end to end: blocking versus asynchronous handlers
//! under load.
//!
//! Three parts, each on a thread with its own loop:
//! - an echo server (`TCPServer`): reads a line, waits 2 s *with the loop*,
//!   writes it back and closes;
//! - an HTTP server with three handlers that ask the echo server:
//!   `/blocking` with a plain std socket (`write`, then a blocking read: the
//!   whole server stalls 2 s per request), and `/async` with a raw
//!   non-blocking socket registered with `add_handler`, whose callback
//!   resolves a `Future` (removing the handler first) that finishes the
//!   response;
//!   and `/await`, the same asynchronous handler as Tornado 6 writes it
//!   (`async def get`, an `IOStream` awaited: connect, write, read until
//!   close);
//! - the load: 200 concurrent clients of squall's `AsyncHTTPClient`, each
//!   fetching again as soon as an answer comes, for 10 s per handler.
//!
//! ```python
//! class AwaitHandler(RequestHandler):
//!     async def get(self):
//!         stream = await TCPClient().connect("127.0.0.1", echo_port)
//!         await stream.write(b"hello\n")
//!         self.write(await stream.read_until_close())
//! ```
//!
//! The article measured 0.4 fetches/s blocking against 80 async with
//! http_load: 200 requests can wait 2 s each at the same time, but only if
//! nothing blocks the loop.
//!
//! Usage: `async_vs_blocking [SECONDS]` (10 by default, per handler). It
//! exits 0 by itself when both asynchronous forms beat blocking by at least
//! 10x (and `/await` keeps up with `/async`: the same loop does the work).

use squall::netutil::BindOptions;
use std::cell::{Cell, RefCell};
use std::io::{ErrorKind as IoErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::io::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use squall::http::HTTPServer;
use squall::httpclient::{AsyncHTTPClient, ClientConfig, HTTPRequest, HTTPResponse};
use squall::web::{Application, Exchange, RequestHandler};
use squall::{gen, Error, Events, Future, IOLoop, IOStream, TCPServer};

const CLIENTS: usize = 200;
const ECHO_DELAY: Duration = Duration::from_secs(2);

fn main() -> Result<(), Error> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("error")).init();
    let seconds: u64 = match std::env::args().nth(1) {
        Some(s) => s
            .parse()
            .map_err(|_| Error::other(format!("usage: async_vs_blocking [SECONDS], not {s:?}")))?,
        None => 10,
    };
    let window = Duration::from_secs(seconds.max(1));

    let echo = spawn_server(|| {
        let server = TCPServer::new(|stream: IOStream, _: SocketAddr| echo_later(stream));
        server.listen_with(0, BindOptions::new().address("127.0.0.1"))?;
        Ok(server.local_addrs()[0])
    })?;
    let http = spawn_server(move || {
        let app = Application::new()
            .route("/blocking", move || BlockingHandler { echo })
            .route("/async", move || AsyncHandler { echo })
            .route("/await", move || AwaitHandler { echo });
        let server = HTTPServer::new(app);
        server.listen_with(0, BindOptions::new().address("127.0.0.1"))?;
        Ok(server.local_addrs()[0])
    })?;
    println!("echo server on {echo} ({ECHO_DELAY:?} delay), HTTP server on {http}");
    println!("{CLIENTS} concurrent clients, {window:?} per handler");

    // Async first: when the blocking run ends, the server still owes the
    // requests it had not reached, and would stall anything after it.
    let io_loop = IOLoop::new()?;
    let asynchronous = load(&io_loop, format!("http://{http}/async"), window)?;
    let awaited = load(&io_loop, format!("http://{http}/await"), window)?;
    let blocking = load(&io_loop, format!("http://{http}/blocking"), window)?;
    println!("async:    {asynchronous}");
    println!("await:    {awaited}");
    println!("blocking: {blocking}");
    let ratio = asynchronous.rate() / blocking.rate().max(1e-9);
    let await_ratio = awaited.rate() / blocking.rate().max(1e-9);
    println!("async / blocking: {ratio:.0}x; await / blocking: {await_ratio:.0}x");
    if blocking.fetches == 0 || asynchronous.fetches < CLIENTS as u64 || ratio < 10.0 {
        return Err(Error::other("async did not beat blocking by 10x"));
    }
    if awaited.fetches < CLIENTS as u64 || await_ratio < 10.0 {
        return Err(Error::other("await did not beat blocking by 10x"));
    }
    // The servers' threads are left to the process exit (the blocking one
    // is still working through its backlog, 2 s a request).
    Ok(())
}

/// Runs `setup` on a new thread with a loop of its own, which then serves
/// forever; returns what `setup` returned.
fn spawn_server(
    setup: impl FnOnce() -> Result<SocketAddr, Error> + Send + 'static,
) -> Result<SocketAddr, Error> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let io_loop = match IOLoop::new() {
            Ok(l) => l,
            Err(err) => return drop(tx.send(Err(err))),
        };
        io_loop.make_current();
        let ready = setup();
        let ok = ready.is_ok();
        let _ = tx.send(ready);
        if ok {
            if let Err(err) = io_loop.start() {
                eprintln!("server loop: {err}");
            }
        }
    });
    rx.recv().map_err(|_| Error::other("server thread died"))?
}

// ----- the echo server ---------------------------------------------------------

fn echo_later(stream: IOStream) {
    let s = stream.clone();
    stream
        .read_until_max_bytes(b"\n", 1024)
        .add_done_callback(move |line: &Future<Vec<u8>>| {
            let Ok(line) = line.take_result() else {
                return s.close();
            };
            IOLoop::current().call_later(ECHO_DELAY, move || {
                let s2 = s.clone();
                s.write(line)
                    .add_done_callback(move |_: &Future<()>| s2.close());
            });
        });
}

// ----- the HTTP handlers ----------------------------------------------------------

/// Asks the echo server with a std socket: the loop waits 2 s in `read`.
struct BlockingHandler {
    echo: SocketAddr,
}

impl RequestHandler for BlockingHandler {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let mut sock = TcpStream::connect(self.echo)?;
        sock.write_all(b"hello\n")?;
        let mut reply = Vec::new();
        sock.read_to_end(&mut reply)?;
        x.write(reply);
        Ok(())
    }
}

/// Asks the echo server with a non-blocking socket watched by the loop.
struct AsyncHandler {
    echo: SocketAddr,
}

impl RequestHandler for AsyncHandler {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_async();
        let x = x.clone();
        get_data(self.echo)?.add_done_callback(move |reply: &Future<Vec<u8>>| {
            match reply.take_result() {
                Ok(reply) => x.write(reply),
                Err(err) => {
                    log::error!("echo: {err}");
                    x.set_status(502);
                }
            }
            x.finish()
        });
        Ok(())
    }
}

/// The Tornado 6 form of [`AsyncHandler`]: a native coroutine awaiting an
/// `IOStream`. The response finishes when the coroutine does; an error
/// answers 500.
struct AwaitHandler {
    echo: SocketAddr,
}

impl RequestHandler for AwaitHandler {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let (x2, echo) = (x.clone(), self.echo);
        x.finish_on(&gen::coroutine(async move {
            let stream = IOStream::connect(echo).await?;
            stream.write("hello\n").await?;
            x2.write(stream.read_until_close().await?);
            Ok(())
        }));
        Ok(())
    }
}

/// The article's `get_data`: send a line on a raw socket, register a READ
/// handler, return a Future that the handler resolves once the echo server
/// has answered and closed.
fn get_data(echo: SocketAddr) -> Result<Future<Vec<u8>>, Error> {
    let sock = TcpStream::connect(echo)?;
    sock.set_nonblocking(true)?;
    (&sock).write_all(b"hello\n")?;
    let fd = sock.as_raw_fd();
    let future = Future::new();
    let io_loop = IOLoop::current();
    let (f, l) = (future.clone(), io_loop.clone());
    // The handler owns the socket; it is closed after the handler is removed.
    let sock = RefCell::new(Some(sock));
    let received = RefCell::new(Vec::new());
    io_loop.add_handler(
        fd,
        move |_fd, _events| {
            let mut buf = [0u8; 1024];
            let outcome = {
                let mut guard = sock.borrow_mut();
                let Some(s) = guard.as_mut() else { return };
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => break Some(Ok(())),
                        Ok(n) => received.borrow_mut().extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == IoErrorKind::WouldBlock => break None,
                        Err(e) if e.kind() == IoErrorKind::Interrupted => continue,
                        Err(e) => break Some(Err(Error::from(e))),
                    }
                }
            };
            if let Some(outcome) = outcome {
                // Remove the handler first, then close the socket.
                l.remove_handler(fd);
                let socket = sock.borrow_mut().take();
                drop(socket);
                let data = received.take();
                f.try_complete(outcome.map(|()| data));
            }
        },
        Events::READ,
    )?;
    Ok(future)
}

// ----- the load ---------------------------------------------------------------------

struct Run {
    fetches: u64,
    errors: u64,
    elapsed: Duration,
}

impl Run {
    fn rate(&self) -> f64 {
        self.fetches as f64 / self.elapsed.as_secs_f64()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} fetches in {:.1?}: {:.1} fetches/s ({} errors)",
            self.fetches,
            self.elapsed,
            self.rate(),
            self.errors
        )
    }
}

struct Counts {
    fetches: Cell<u64>,
    errors: Cell<u64>,
    over: Cell<bool>,
}

/// `CLIENTS` clients fetching `url` back to back for `window`.
fn load(io_loop: &IOLoop, url: String, window: Duration) -> Result<Run, Error> {
    let started = Instant::now();
    let counts = Rc::new(Counts {
        fetches: Cell::new(0),
        errors: Cell::new(0),
        over: Cell::new(false),
    });
    let c = counts.clone();
    io_loop.run_sync(
        move || {
            let l = IOLoop::current();
            let client = AsyncHTTPClient::with_config(&l, ClientConfig::new().max_clients(CLIENTS));
            for _ in 0..CLIENTS {
                lane(client.clone(), url.clone(), c.clone());
            }
            let done = Future::new();
            let d = done.clone();
            l.call_later(window, move || {
                c.over.set(true);
                // What is still in flight does not count: drop it.
                client.close();
                d.set_result(())
            });
            done
        },
        Some(window * 3),
    )?;
    Ok(Run {
        fetches: counts.fetches.get(),
        errors: counts.errors.get(),
        elapsed: started.elapsed(),
    })
}

fn lane(client: AsyncHTTPClient, url: String, counts: Rc<Counts>) {
    let request = HTTPRequest::new(url.clone())
        .connect_timeout(Duration::from_secs(120))
        .request_timeout(Duration::from_secs(120));
    client
        .fetch(request)
        .add_done_callback(move |r: &Future<HTTPResponse>| {
            if counts.over.get() {
                return;
            }
            match r.take_result() {
                Ok(r) if r.body == b"hello\n" => counts.fetches.set(counts.fetches.get() + 1),
                Ok(r) => {
                    log::error!("unexpected answer {} {:?}", r.code, r.text());
                    counts.errors.set(counts.errors.get() + 1);
                }
                Err(err) => {
                    log::error!("fetch: {err}");
                    counts.errors.set(counts.errors.get() + 1);
                }
            }
            // Through the loop: a fast answer must not deepen the stack.
            let l = IOLoop::current();
            l.add_callback(move || lane(client, url, counts));
        });
}
