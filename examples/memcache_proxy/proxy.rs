//! The proxy: a `TCPServer` speaking the memcached text protocol to its
//! clients and forwarding each command, through the [`Client`], to the
//! upstream server that owns the key.
//!
//! Each client connection is a [`Session`]. Commands are parsed as they
//! arrive and dispatched at once, pipelined: each gets a slot in a queue,
//! filled when its answer is ready, and answers leave in slot order, so a
//! client that sends many commands without waiting gets them answered in
//! order. A session reads no further while it has [`MAX_PIPELINE`] commands
//! in flight or answers waiting for the socket, so a client that sends
//! without reading cannot grow the proxy's memory.
//!
//! A session runs inside its own `ExceptionStackContext`; each call the
//! client makes runs inside a context nested in it. A call's own errors
//! (timeouts, dead servers) stop at the call's context and come back as the
//! call's `fail_callback`, which answers `SERVER_ERROR <reason>`; anything
//! else (a bug) travels on out to the session's context, which closes that
//! client's connection and nobody else's.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::VecDeque;
use std::io::Write as _;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

use squall::stack_context::ExceptionStackContext;
use squall::{Error, Future, IOLoop, IOStream, Remote, TCPServer};

use super::client::{Client, MemcacheError, Options};
use super::protocol::{Command, CommandParser, Parsed, ITEM_SIZE_MAX};
use super::reply::Item;

/// Commands one client may have in flight before the proxy stops reading it.
pub const MAX_PIPELINE: usize = 256;
/// The most answers queued for a client that does not read them.
const MAX_WRITE_BUFFER: usize = 64 * 1024 * 1024;
/// How much a session asks its stream for at a time.
const READ_CHUNK: usize = 64 * 1024;
/// What `version` answers.
pub const VERSION: &str = concat!("squall-memcache-proxy-", env!("CARGO_PKG_VERSION"));

/// What the proxy listens on and forwards to.
#[derive(Clone, Debug)]
pub struct Config {
    /// The address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// The upstream memcached servers.
    pub upstreams: Vec<SocketAddr>,
    /// The client's timeouts.
    pub options: Options,
}

struct Shared {
    io_loop: IOLoop,
    client: Client,
    started: Instant,
    curr_connections: Cell<u64>,
    total_connections: Cell<u64>,
    /// Sessions not yet dropped: once their connections closed and their
    /// calls finished, they must all be gone (a leak check).
    live_sessions: Cell<u64>,
    commands: Cell<u64>,
    upstream_errors: Cell<u64>,
}

impl Shared {
    fn new(io_loop: &IOLoop, config: &Config) -> Rc<Shared> {
        Rc::new(Shared {
            io_loop: io_loop.clone(),
            client: Client::new(io_loop, &config.upstreams, config.options.clone()),
            started: Instant::now(),
            curr_connections: Cell::new(0),
            total_connections: Cell::new(0),
            live_sessions: Cell::new(0),
            commands: Cell::new(0),
            upstream_errors: Cell::new(0),
        })
    }

    /// Counts a failure of the upstream side (not a refusal by a server).
    fn count_failure(&self, err: &Error) {
        if !matches!(MemcacheError::of(err), Some(MemcacheError::Refused { .. })) {
            self.upstream_errors.set(self.upstream_errors.get() + 1);
        }
    }
}

/// A running proxy on a loop.
pub struct Proxy {
    server: TCPServer,
    shared: Rc<Shared>,
}

impl Proxy {
    /// Listens on `config.listen` (on `io_loop`) and serves until stopped.
    pub fn start(io_loop: &IOLoop, config: &Config) -> Result<Proxy, Error> {
        let shared = Shared::new(io_loop, config);
        let s = shared.clone();
        let server = TCPServer::with_loop(io_loop, move |stream: IOStream, peer: SocketAddr| {
            Session::start(&s, stream, peer)
        });
        server.set_nodelay(true);
        let ip = config.listen.ip().to_string();
        server.listen(config.listen.port(), Some(&ip))?;
        Ok(Proxy { server, shared })
    }

    /// Serves from `processes` forked processes (`0`: one per CPU), Tornado's
    /// `bind` + `start(n)`: each child accepts on its own `SO_REUSEPORT`
    /// socket, with its own loop and its own upstream connections. Returns
    /// in each child, with its loop to run; the parent supervises the
    /// children and never returns. Must be called before any loop exists.
    pub fn start_processes(config: &Config, processes: usize) -> Result<(IOLoop, Proxy), Error> {
        // The server is made before the fork, its loop and client after:
        // the handler finds them here.
        let slot: Rc<OnceCell<Rc<Shared>>> = Rc::default();
        let s = slot.clone();
        let server = TCPServer::new(move |stream: IOStream, peer: SocketAddr| match s.get() {
            Some(shared) => Session::start(shared, stream, peer),
            None => stream.close(),
        });
        server.set_nodelay(true);
        let ip = config.listen.ip().to_string();
        server.bind(config.listen.port(), Some(&ip), None, true)?;
        server.start(processes)?;
        // In a child: the server's sockets are on this process's current loop.
        let io_loop = IOLoop::current();
        let shared = Shared::new(&io_loop, config);
        let _ = slot.set(shared.clone());
        Ok((io_loop, Proxy { server, shared }))
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addrs()[0]
    }

    /// Stops accepting and closes the upstream connections.
    pub fn stop(&self) {
        self.server.stop();
        self.shared.client.close();
    }
}

/// One client connection.
struct Session {
    shared: Rc<Shared>,
    stream: IOStream,
    peer: SocketAddr,
    inbuf: RefCell<Vec<u8>>,
    parser: RefCell<CommandParser>,
    /// Answers in command order; `None` while the command is in flight.
    slots: RefCell<VecDeque<Option<Vec<u8>>>>,
    /// The sequence number of `slots[0]`.
    first_seq: Cell<u64>,
    /// A read is outstanding.
    reading: Cell<bool>,
    /// `process` is on the stack (answers that come synchronously must not
    /// re-enter it).
    processing: Cell<bool>,
    /// `read_more` is on the stack.
    in_read_more: Cell<bool>,
    /// `process` stopped at a full pipeline with commands still buffered.
    stalled: Cell<bool>,
    /// `quit` or a fatal error: close once the answers before it are out.
    closing: Cell<bool>,
}

impl Session {
    fn start(shared: &Rc<Shared>, stream: IOStream, peer: SocketAddr) {
        stream.set_max_write_buffer_size(Some(MAX_WRITE_BUFFER));
        let session = Rc::new(Session {
            shared: shared.clone(),
            stream: stream.clone(),
            peer,
            inbuf: RefCell::new(Vec::new()),
            parser: RefCell::new(CommandParser::new(ITEM_SIZE_MAX)),
            slots: RefCell::new(VecDeque::new()),
            first_seq: Cell::new(0),
            reading: Cell::new(false),
            processing: Cell::new(false),
            in_read_more: Cell::new(false),
            stalled: Cell::new(false),
            closing: Cell::new(false),
        });
        shared.live_sessions.set(shared.live_sessions.get() + 1);
        shared
            .curr_connections
            .set(shared.curr_connections.get() + 1);
        shared
            .total_connections
            .set(shared.total_connections.get() + 1);
        let s = shared.clone();
        stream.set_close_callback(move || s.curr_connections.set(s.curr_connections.get() - 1));
        // Whatever the calls do not handle themselves ends this connection only.
        let s = session.clone();
        let context = ExceptionStackContext::new(move |err: &Error| {
            log::error!("client {}: {err}; closing its connection", s.peer);
            s.stream.close();
            true
        });
        context.run(|| session.read_more());
    }

    fn can_read(&self) -> bool {
        !self.reading.get()
            && !self.closing.get()
            && !self.stream.closed()
            && !self.stream.writing()
            && self.slots.borrow().len() < MAX_PIPELINE
    }

    fn read_more(self: &Rc<Self>) {
        // Answers that come synchronously end up here again: the loop below
        // goes on with what they freed, without recursing.
        if self.in_read_more.replace(true) {
            return;
        }
        while self.can_read() {
            let data = self.stream.read_bytes(READ_CHUNK, true);
            if data.done() {
                self.on_data(data.take_result());
                continue;
            }
            self.reading.set(true);
            let me = self.clone();
            data.add_done_callback(move |data: &Future<Vec<u8>>| {
                me.reading.set(false);
                me.on_data(data.take_result());
                me.read_more();
            });
        }
        self.in_read_more.set(false);
    }

    fn on_data(self: &Rc<Self>, data: Result<Vec<u8>, Error>) {
        // An error means the client went away: answers in flight go nowhere.
        if let Ok(data) = data {
            self.inbuf.borrow_mut().extend_from_slice(&data);
            self.process();
        }
    }

    /// Parses and dispatches the buffered commands, while the pipeline has room.
    fn process(self: &Rc<Self>) {
        if self.processing.replace(true) {
            return;
        }
        let mut used = 0;
        loop {
            if self.closing.get() {
                break;
            }
            if self.slots.borrow().len() >= MAX_PIPELINE {
                self.stalled.set(true);
                break;
            }
            let (n, parsed) = {
                let inbuf = self.inbuf.borrow();
                self.parser.borrow_mut().parse(&inbuf[used..])
            };
            used += n;
            match parsed {
                Some(parsed) => self.dispatch(parsed),
                None if n == 0 => break,
                None => {}
            }
        }
        self.inbuf.borrow_mut().drain(..used);
        self.processing.set(false);
        self.flush();
    }

    fn push_slot(&self) -> u64 {
        let mut slots = self.slots.borrow_mut();
        slots.push_back(None);
        self.first_seq.get() + slots.len() as u64 - 1
    }

    /// Fills the slot of command `seq` with its answer and sends what is ready.
    fn complete(self: &Rc<Self>, seq: u64, answer: Vec<u8>) {
        {
            let mut slots = self.slots.borrow_mut();
            let index = (seq - self.first_seq.get()) as usize;
            slots[index] = Some(answer);
        }
        self.flush();
    }

    fn complete_line(self: &Rc<Self>, seq: u64, line: &str) {
        self.complete(seq, format!("{line}\r\n").into_bytes());
    }

    /// Writes the answers at the head of the queue that are ready, in one write.
    fn flush(self: &Rc<Self>) {
        let mut out = Vec::new();
        {
            let mut slots = self.slots.borrow_mut();
            while let Some(Some(_)) = slots.front() {
                out.extend_from_slice(&slots.pop_front().flatten().unwrap_or_default());
                self.first_seq.set(self.first_seq.get() + 1);
            }
        }
        if !out.is_empty() {
            let written = self.stream.write(out);
            if !written.done() {
                let me = self.clone();
                written.add_done_callback(move |_: &Future<()>| me.after_write());
                return;
            }
            if let Some(err) = written.error() {
                // A client that does not read its answers (the write buffer
                // is full) or is gone: its answers can no longer arrive in
                // order, so the connection ends.
                log::debug!("client {}: {err}; closing", self.peer);
                self.stream.close();
                return;
            }
        }
        self.after_write();
    }

    /// Closes after `quit`, or reads (and parses) more if there is room now.
    fn after_write(self: &Rc<Self>) {
        if self.stream.writing() {
            return; // an earlier write is still going: its callback comes back here
        }
        if self.closing.get() {
            if self.slots.borrow().is_empty() {
                self.stream.close();
            }
            return;
        }
        if self.stalled.get() && !self.processing.get() && self.slots.borrow().len() < MAX_PIPELINE
        {
            self.stalled.set(false);
            self.process(); // ends in flush, which comes back here
            return;
        }
        self.read_more();
    }

    fn dispatch(self: &Rc<Self>, parsed: Parsed) {
        let seq = match parsed {
            Parsed::Command(Command::Quit) => {
                self.closing.set(true);
                return;
            }
            Parsed::Command(command) => return self.command(command),
            Parsed::Error(line) => {
                let seq = self.push_slot();
                self.complete_line(seq, &line);
                seq
            }
            Parsed::Fatal(line) => {
                let seq = self.push_slot();
                self.complete_line(seq, &line);
                self.closing.set(true);
                seq
            }
        };
        log::debug!("client {}: bad command #{seq}", self.peer);
    }

    fn command(self: &Rc<Self>, command: Command) {
        let shared = &self.shared;
        shared.commands.set(shared.commands.get() + 1);
        let seq = self.push_slot();
        let noreply = command.noreply();
        let me = self.clone();
        let answer = move |line: String| {
            if noreply {
                me.complete(seq, Vec::new());
            } else {
                me.complete_line(seq, &line);
            }
        };
        let a = answer.clone();
        let s = shared.clone();
        let fail = move |err: Error| {
            s.count_failure(&err);
            a(error_line(&err))
        };
        let client = &shared.client;
        match command {
            Command::Get { keys, cas } => {
                let me = self.clone();
                let fail = {
                    let me = self.clone();
                    move |err: Error| {
                        me.shared.count_failure(&err);
                        me.complete_line(seq, &error_line(&err))
                    }
                };
                client.get_multi(
                    &keys,
                    cas,
                    move |values| me.complete(seq, format_values(&values)),
                    fail,
                );
            }
            Command::Store {
                op,
                key,
                flags,
                exptime,
                data,
                cas_unique,
                ..
            } => client.store(
                op,
                &key,
                flags,
                exptime,
                &data,
                cas_unique,
                move |status| answer(status.as_str().to_owned()),
                fail,
            ),
            Command::Delete { key, .. } => {
                client.delete(&key, move |status| answer(status.as_str().to_owned()), fail)
            }
            Command::Arith {
                incr, key, delta, ..
            } => client.incr_decr(
                incr,
                &key,
                delta,
                move |value| {
                    answer(value.map_or_else(|| "NOT_FOUND".to_owned(), |v| v.to_string()))
                },
                fail,
            ),
            Command::Touch { key, exptime, .. } => client.touch(
                &key,
                exptime,
                move |status| answer(status.as_str().to_owned()),
                fail,
            ),
            Command::FlushAll { delay, .. } => {
                client.flush_all(delay, move || answer("OK".to_owned()), fail)
            }
            Command::Version => answer(format!("VERSION {VERSION}")),
            Command::Stats => {
                let stats = self.stats();
                self.complete(seq, stats);
            }
            Command::Quit => unreachable!("handled by dispatch"),
        }
    }

    /// The proxy's own `stats`: connections, commands, pending timeouts of
    /// the loop, and each upstream's state.
    fn stats(&self) -> Vec<u8> {
        let shared = &self.shared;
        let mut out = Vec::new();
        let mut stat = |name: &str, value: &dyn std::fmt::Display| {
            let _ = write!(out, "STAT {name} {value}\r\n");
        };
        stat("pid", &std::process::id());
        stat("uptime", &shared.started.elapsed().as_secs());
        stat("version", &VERSION);
        stat("curr_connections", &shared.curr_connections.get());
        stat("total_connections", &shared.total_connections.get());
        stat("live_sessions", &shared.live_sessions.get());
        stat("cmd_total", &shared.commands.get());
        stat("upstream_errors", &shared.upstream_errors.get());
        let timers = shared.io_loop.timer_stats();
        stat("pending_timeouts", &timers.pending);
        stat("io_handlers", &shared.io_loop.handler_count());
        for (i, server) in shared.client.servers().iter().enumerate() {
            stat(&format!("upstream_{i}_addr"), &server.addr);
            stat(
                &format!("upstream_{i}_state"),
                &if server.dead { "dead" } else { "up" },
            );
            stat(&format!("upstream_{i}_calls"), &server.calls);
            stat(&format!("upstream_{i}_failures"), &server.failures);
            stat(&format!("upstream_{i}_timeouts"), &server.timeouts);
        }
        out.extend_from_slice(b"END\r\n");
        out
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let live = &self.shared.live_sessions;
        live.set(live.get() - 1);
    }
}

/// The answer to a failed call: the server's own refusal as it said it, or
/// `SERVER_ERROR <reason>` for everything else.
fn error_line(err: &Error) -> String {
    match MemcacheError::of(err) {
        Some(MemcacheError::Refused { line, .. }) => line.clone(),
        Some(mc) => format!("SERVER_ERROR {}", one_line(&mc.to_string())),
        None => format!("SERVER_ERROR {}", one_line(&err.to_string())),
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

fn format_values(values: &[Option<Item>]) -> Vec<u8> {
    let size: usize = values
        .iter()
        .flatten()
        .map(|i| i.key.len() + i.data.len() + 64)
        .sum();
    let mut out = Vec::with_capacity(size + 5);
    for item in values.iter().flatten() {
        out.extend_from_slice(b"VALUE ");
        out.extend_from_slice(&item.key);
        let _ = match item.cas {
            Some(cas) => write!(out, " {} {} {cas}\r\n", item.flags, item.data.len()),
            None => write!(out, " {} {}\r\n", item.flags, item.data.len()),
        };
        out.extend_from_slice(&item.data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"END\r\n");
    out
}

/// A proxy running on its own thread and loop, stopped when dropped (for
/// the self-test, the tests and the benchmark).
pub struct ProxyThread {
    /// Where it listens.
    pub addr: SocketAddr,
    remote: Remote,
    thread: Option<JoinHandle<()>>,
}

impl ProxyThread {
    /// Starts a proxy with `config` on a new thread.
    pub fn spawn(config: Config) -> Result<ProxyThread, Error> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("memcache-proxy".into())
            .spawn(move || {
                let started = IOLoop::new().and_then(|io_loop| {
                    let proxy = Proxy::start(&io_loop, &config)?;
                    Ok((io_loop, proxy))
                });
                let (io_loop, proxy) = match started {
                    Ok(started) => started,
                    Err(err) => {
                        let _ = tx.send(Err(err));
                        return;
                    }
                };
                let _ = tx.send(Ok((proxy.local_addr(), io_loop.remote())));
                if let Err(err) = io_loop.start() {
                    log::error!("proxy loop: {err}");
                }
                proxy.stop();
                io_loop.close();
            })
            .map_err(Error::from)?;
        let (addr, remote) = rx
            .recv()
            .map_err(|_| Error::other("the proxy thread died"))??;
        Ok(ProxyThread {
            addr,
            remote,
            thread: Some(thread),
        })
    }
}

impl Drop for ProxyThread {
    fn drop(&mut self) {
        let _ = self.remote.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
