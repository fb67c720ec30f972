//! The first seed article, in squall: an asynchronous client with a connect
//! that does not block and a timeout on every call.
//!
//! The client speaks a memcached-like line protocol (`get KEY\n`, answered by
//! `VALUE DATA\n` or `NOT_FOUND\n`). Each call is started inside two
//! contexts, as the article does:
//! - a `StackContext` that tags everything the call does with its number
//!   (the guard sets a thread-local "current request" for log lines), and
//! - an `ExceptionStackContext`, the article's `_cleanup`: whatever goes wrong,
//!   in whichever callback, it ends the call (removes the timeout and the IO
//!   handler, closes the socket) and turns the client's own errors into the
//!   caller's `fail_callback`. Anything else (a bug) it leaves to the log.
//!
//! The call sets its timeout with `add_timeout(deadline, wrap(on_timeout))`;
//! `on_timeout` marks the server dead and *raises* the client's timeout
//! error, which the context turns into a failure. The article's lesson: the
//! timeout is removed on success and on every error path, or it would fire
//! later against a finished call. The program checks that none is left.
//!
//! A slow server runs on 127.0.0.1 in a thread: it answers `greeting` and
//! `answer` after 20 ms and `slow` after a second, too late. Run:
//! `cargo run --example stack_context_timeout`

use std::cell::{Cell, RefCell};
use std::error::Error as _;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::io::{AsRawFd, RawFd};
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

use squall::stack_context::{raise, wrap, ExceptionStackContext, StackContext};
use squall::{Error, ErrorKind, Events, Future, IOLoop, TimeoutHandle};

const REQUEST_TIMEOUT: Duration = Duration::from_millis(200);
const DEAD_RETRY_AFTER: Duration = Duration::from_secs(30);

// ----- log lines tagged with the current request --------------------------------

thread_local! {
    static STARTED: Instant = Instant::now();
    /// Set by the request's `StackContext` guard while its code runs.
    static CURRENT_REQUEST: Cell<Option<u32>> = const { Cell::new(None) };
}

macro_rules! say {
    ($($arg:tt)*) => {{
        let ms = STARTED.with(|t| t.elapsed().as_secs_f64() * 1000.0);
        let tag = match CURRENT_REQUEST.with(Cell::get) {
            Some(id) => format!("#{id}"),
            None => "  ".to_owned(),
        };
        println!("[{ms:6.1} ms] {tag} {}", format!($($arg)*));
    }};
}

/// The guard of the tagging context: restores the previous tag when dropped.
struct Tag(Option<u32>);

impl Drop for Tag {
    fn drop(&mut self) {
        CURRENT_REQUEST.with(|c| c.set(self.0));
    }
}

fn tag_context(id: u32) -> StackContext {
    StackContext::new(move || Tag(CURRENT_REQUEST.with(|c| c.replace(Some(id)))))
}

// ----- the slow server ----------------------------------------------------------

fn start_slow_server() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            thread::spawn(move || -> io::Result<()> {
                let mut line = String::new();
                BufReader::new(conn.try_clone()?).read_line(&mut line)?;
                let key = line.trim().strip_prefix("get ").unwrap_or("");
                let (delay, answer) = match key {
                    "greeting" => (Duration::from_millis(20), "VALUE hello"),
                    "answer" => (Duration::from_millis(20), "VALUE 42"),
                    "slow" => (Duration::from_secs(1), "VALUE too late"),
                    _ => (Duration::from_millis(20), "NOT_FOUND"),
                };
                thread::sleep(delay);
                // The client may have given up and closed: that is fine.
                conn.write_all(format!("{answer}\n").as_bytes())
            });
        }
    });
    Ok(addr)
}

// ----- the client's own error type ---------------------------------------------

#[derive(Debug)]
enum ClientError {
    Timeout(SocketAddr, Duration),
    ServerDead(SocketAddr),
    Connect(SocketAddr, io::Error),
    Closed,
    Protocol(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Timeout(addr, after) => write!(f, "{addr} did not answer in {after:?}"),
            ClientError::ServerDead(addr) => write!(f, "{addr} is marked dead"),
            ClientError::Connect(addr, err) => write!(f, "cannot connect to {addr}: {err}"),
            ClientError::Closed => f.write_str("server closed the connection"),
            ClientError::Protocol(line) => write!(f, "unexpected answer {line:?}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl ClientError {
    /// As a `squall::Error`, with the client error as its source.
    fn into_error(self) -> Error {
        let kind = match self {
            ClientError::Timeout(..) => ErrorKind::Timeout,
            ClientError::Closed => ErrorKind::StreamClosed,
            ClientError::Connect(..) | ClientError::ServerDead(_) => ErrorKind::Io,
            ClientError::Protocol(_) => ErrorKind::Other,
        };
        Error::with_source(kind, self.to_string(), self)
    }

    /// The client error inside `err`, if it is one ("except ClientError").
    fn of(err: &Error) -> Option<&ClientError> {
        err.source()?.downcast_ref()
    }
}

// ----- the client --------------------------------------------------------------

struct Server {
    addr: SocketAddr,
    dead_until: Cell<Option<Instant>>,
}

struct Client {
    io_loop: IOLoop,
    server: Rc<Server>,
    request_timeout: Duration,
    next_id: Cell<u32>,
}

type ValueCallback = Box<dyn FnOnce(Option<String>)>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting,
    Sending,
    Reading,
}

/// One `get` in flight.
struct Request {
    io_loop: IOLoop,
    server: Rc<Server>,
    request_timeout: Duration,
    key: String,
    stream: RefCell<Option<mio::net::TcpStream>>,
    fd: Cell<Option<RawFd>>,
    state: Cell<State>,
    outbuf: RefCell<Vec<u8>>,
    inbuf: RefCell<Vec<u8>>,
    timeout: Cell<Option<TimeoutHandle>>,
    callback: RefCell<Option<ValueCallback>>,
}

impl Client {
    fn new(io_loop: &IOLoop, addr: SocketAddr, request_timeout: Duration) -> Client {
        Client {
            io_loop: io_loop.clone(),
            server: Rc::new(Server {
                addr,
                dead_until: Cell::new(None),
            }),
            request_timeout,
            next_id: Cell::new(1),
        }
    }

    /// Looks `key` up; calls `callback` with the value (or `None`), or
    /// `fail_callback` with the client's error. Exactly one of them is called.
    fn get(
        &self,
        key: &str,
        callback: impl FnOnce(Option<String>) + 'static,
        fail_callback: impl FnOnce(Error) + 'static,
    ) {
        let id = self.next_id.replace(self.next_id.get() + 1);
        let request = Rc::new(Request {
            io_loop: self.io_loop.clone(),
            server: self.server.clone(),
            request_timeout: self.request_timeout,
            key: key.to_owned(),
            stream: RefCell::new(None),
            fd: Cell::new(None),
            state: Cell::new(State::Connecting),
            outbuf: RefCell::new(format!("get {key}\n").into_bytes()),
            inbuf: RefCell::new(Vec::new()),
            timeout: Cell::new(None),
            callback: RefCell::new(Some(Box::new(callback))),
        });
        // The article's `_cleanup(fail_callback)`.
        let fail_callback = RefCell::new(Some(fail_callback));
        let r = request.clone();
        let cleanup = ExceptionStackContext::new(move |err: &Error| {
            r.finish();
            if ClientError::of(err).is_none() {
                return false; // not ours: a bug, for the log
            }
            let fail = fail_callback.borrow_mut().take();
            if let Some(fail) = fail {
                fail(err.clone());
            }
            true
        });
        tag_context(id).run(|| {
            cleanup.run(|| request.start());
        });
    }
}

impl Request {
    fn start(self: &Rc<Self>) -> Result<(), Error> {
        let server = &self.server;
        if let Some(until) = server.dead_until.get() {
            if self.io_loop.time() < until {
                // Raised synchronously: the context still turns it into a failure.
                return Err(ClientError::ServerDead(server.addr).into_error());
            }
            server.dead_until.set(None);
        }
        say!("get {}: connecting to {}", self.key, server.addr);
        // A non-blocking connect: it returns at once; WRITE says when it is done.
        let stream = mio::net::TcpStream::connect(server.addr)
            .map_err(|err| ClientError::Connect(server.addr, err).into_error())?;
        let fd = stream.as_raw_fd();
        *self.stream.borrow_mut() = Some(stream);
        let me = self.clone();
        self.io_loop
            .add_handler(fd, move |_fd, events| me.on_events(events), Events::WRITE)?;
        self.fd.set(Some(fd));
        // The article's timeout. (The loop captures the context by itself too;
        // wrapping as well is harmless: nothing is entered twice.)
        let me = self.clone();
        let timeout = self
            .io_loop
            .add_timeout(self.request_timeout, wrap(move || me.on_timeout()));
        self.timeout.set(Some(timeout));
        Ok(())
    }

    fn on_timeout(&self) {
        self.timeout.set(None); // it fired: nothing to remove
        let server = &self.server;
        say!(
            "no answer in {:?}: marking {} dead",
            self.request_timeout,
            server.addr
        );
        server
            .dead_until
            .set(Some(self.io_loop.time() + DEAD_RETRY_AFTER));
        raise(ClientError::Timeout(server.addr, self.request_timeout).into_error())
    }

    fn on_events(&self, events: Events) -> Result<(), Error> {
        if self.state.get() == State::Connecting {
            let stream = self.stream.borrow();
            let stream = stream.as_ref().expect("the handler runs while connected");
            if let Some(err) = stream.take_error()? {
                return Err(ClientError::Connect(self.server.addr, err).into_error());
            }
            match stream.peer_addr() {
                Ok(_) => self.state.set(State::Sending),
                Err(err) if err.kind() == io::ErrorKind::NotConnected && !events.is_error() => {
                    return Ok(()); // not yet
                }
                Err(err) => return Err(ClientError::Connect(self.server.addr, err).into_error()),
            }
        }
        if self.state.get() == State::Sending {
            self.send()?;
        }
        if self.state.get() == State::Reading {
            self.receive()?;
        }
        Ok(())
    }

    fn send(&self) -> Result<(), Error> {
        let mut out = self.outbuf.borrow_mut();
        while !out.is_empty() {
            let written = {
                let stream = self.stream.borrow();
                let mut stream = stream.as_ref().expect("connected");
                match stream.write(&out) {
                    Ok(n) => n,
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(err) => return Err(err.into()),
                }
            };
            out.drain(..written);
        }
        self.state.set(State::Reading);
        let fd = self.fd.get().expect("registered");
        self.io_loop.update_handler(fd, Events::READ)
    }

    fn receive(&self) -> Result<(), Error> {
        let mut chunk = [0u8; 512];
        let n = {
            let stream = self.stream.borrow();
            let mut stream = stream.as_ref().expect("connected");
            match stream.read(&mut chunk) {
                Ok(0) => return Err(ClientError::Closed.into_error()),
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(err) => return Err(err.into()),
            }
        };
        let line = {
            let mut inbuf = self.inbuf.borrow_mut();
            inbuf.extend_from_slice(&chunk[..n]);
            let Some(end) = inbuf.iter().position(|&b| b == b'\n') else {
                return Ok(()); // a partial line: wait for more
            };
            String::from_utf8_lossy(&inbuf[..end]).into_owned()
        };
        let value = if let Some(value) = line.strip_prefix("VALUE ") {
            Some(value.to_owned())
        } else if line == "NOT_FOUND" {
            None
        } else {
            return Err(ClientError::Protocol(line).into_error());
        };
        // Success: end the call *before* handing over, so no timeout is left.
        self.finish();
        let callback = self.callback.borrow_mut().take();
        if let Some(callback) = callback {
            callback(value);
        }
        Ok(())
    }

    /// Ends the call: removes the timeout and the handler, then closes the
    /// socket (in that order: the loop does not own it). Idempotent.
    fn finish(&self) {
        if let Some(timeout) = self.timeout.take() {
            self.io_loop.remove_timeout(timeout);
        }
        if let Some(fd) = self.fd.take() {
            self.io_loop.remove_handler(fd);
        }
        let stream = self.stream.borrow_mut().take();
        drop(stream);
    }
}

// ----- the program -------------------------------------------------------------

type Outcome = Result<Option<String>, String>;

/// Starts a `get` for each key at once; resolves when all have finished.
fn get_all(client: &Rc<Client>, keys: &[&'static str]) -> Future<Vec<(&'static str, Outcome)>> {
    let done = Future::new();
    let results: Rc<RefCell<Vec<(&'static str, Outcome)>>> = Rc::default();
    let total = keys.len();
    let record = {
        let (done, results) = (done.clone(), results.clone());
        move |key: &'static str, outcome: Outcome| {
            results.borrow_mut().push((key, outcome));
            if results.borrow().len() == total {
                let all = results.take();
                done.try_set_result(all);
            }
        }
    };
    for &key in keys {
        let (ok, failed) = (record.clone(), record.clone());
        client.get(
            key,
            move |value| {
                say!("callback: {key} = {value:?}");
                ok(key, Ok(value));
            },
            move |err| {
                say!("fail_callback: {err}");
                failed(key, Err(err.kind().to_string()));
            },
        );
    }
    done
}

fn expect(got: &[(&str, Outcome)], key: &str, want: Outcome) -> Result<(), Error> {
    match got.iter().find(|(k, _)| *k == key) {
        Some((_, outcome)) if *outcome == want => Ok(()),
        other => Err(Error::other(format!(
            "{key}: expected {want:?}, got {other:?}"
        ))),
    }
}

fn main() -> Result<(), Error> {
    let _ = env_logger::try_init();
    let io_loop = IOLoop::new()?;
    let client = Rc::new(Client::new(&io_loop, start_slow_server()?, REQUEST_TIMEOUT));

    say!("three calls at once; `slow` will time out");
    let c = client.clone();
    let first = io_loop.run_sync(
        move || get_all(&c, &["greeting", "answer", "slow"]),
        Some(Duration::from_secs(5)),
    )?;
    expect(&first, "greeting", Ok(Some("hello".into())))?;
    expect(&first, "answer", Ok(Some("42".into())))?;
    expect(&first, "slow", Err("timeout".into()))?;

    say!("the server is marked dead now: the next call fails at once");
    let c = client.clone();
    let second = io_loop.run_sync(
        move || get_all(&c, &["greeting"]),
        Some(Duration::from_secs(5)),
    )?;
    expect(&second, "greeting", Err("I/O error".into()))?;

    say!("a server that refuses connections: the connect error path");
    let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?; // bound, then closed
    let refused = Rc::new(Client::new(&io_loop, closed, REQUEST_TIMEOUT));
    let third = io_loop.run_sync(
        move || get_all(&refused, &["greeting"]),
        Some(Duration::from_secs(5)),
    )?;
    expect(&third, "greeting", Err("I/O error".into()))?;

    // The article's lesson, checked: no timeout left to fire against a
    // finished call, and no handler left on a closed socket.
    let pending = io_loop.timer_stats().pending;
    let handlers = io_loop.handler_count();
    say!("pending timeouts: {pending}, IO handlers: {handlers}");
    if pending != 0 || handlers != 0 {
        return Err(Error::other(
            "a finished call left a timeout or a handler behind",
        ));
    }
    io_loop.close();
    say!("done");
    Ok(())
}
