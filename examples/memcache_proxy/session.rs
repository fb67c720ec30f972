//! One client connection of the proxy, a [`Session`], and what all the
//! sessions of a proxy share ([`Shared`]: the upstream client, the counters
//! `stats` reports).
//!
//! Commands are parsed as they arrive and dispatched at once, pipelined:
//! each gets a slot in a queue, filled when its answer is ready, and answers
//! leave in slot order, so a client that sends many commands without
//! waiting gets them answered in order. A session reads no further while
//! it has [`MAX_PIPELINE`] commands in flight or answers waiting for the
//! socket, so a client that sends without reading cannot grow the proxy's
//! memory.
//!
//! A `get` is answered as memcached answers it, streamed: its keys are
//! fetched in windows of at most [`WINDOW_BYTES`] worth of values (keys ×
//! the item limit: 4 keys of 1 MiB), each window written to the client and
//! its write flushed to the socket before the next is fetched, so a session
//! holds at most one window of answer however many keys and however large
//! their values (the `max_connection_answer_bytes` stat). Commands after a
//! `get` wait until all its keys are asked for, so each still sees the
//! effects of the ones before it. If an upstream fails before any value of
//! the `get` went out, the whole answer is `SERVER_ERROR <reason>`, as for
//! any command; once values went out they cannot be taken back, so a later
//! window's failed keys are left out (answered as misses, counted in
//! `upstream_errors` and logged) and `END` still comes last.
//!
//! A session runs inside its own `ExceptionStackContext`; each call the
//! client makes runs inside a context nested in it. A call's own errors
//! (timeouts, dead servers) stop at the call's context and come back as the
//! call's `fail_callback`, which answers `SERVER_ERROR <reason>`; anything
//! else (a bug) travels on out to the session's context, which closes that
//! client's connection and nobody else's.
//!
//! [`WINDOW_BYTES`]: super::proxy::WINDOW_BYTES

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::Write as _;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use squall::stack_context::ExceptionStackContext;
use squall::{Error, Future, IOLoop, IOStream};

use super::answer::{Answer, GetStream, Pieces, Slot, Window};
use super::client::{Client, MemcacheError};
use super::protocol::{Command, CommandParser, Parsed};
use super::proxy::{Config, MAX_PIPELINE, MAX_WINDOW_KEYS, VERSION};
use super::reply::Item;

/// A safety net only: the windows keep a connection's answers far below it.
const MAX_WRITE_BUFFER: usize = 64 * 1024 * 1024;
/// How much a session asks its stream for at a time.
const READ_CHUNK: usize = 64 * 1024;

/// What all sessions of one proxy share: its loop, its upstream client and
/// the counters `stats` reports.
pub(super) struct Shared {
    io_loop: IOLoop,
    /// The upstream client (closed by `Proxy::stop`).
    pub(super) client: Client,
    started: Instant,
    curr_connections: Cell<u64>,
    total_connections: Cell<u64>,
    /// Sessions not yet dropped: once their connections closed and their
    /// calls finished, they must all be gone (a leak check).
    live_sessions: Cell<u64>,
    commands: Cell<u64>,
    upstream_errors: Cell<u64>,
    /// Keys of a `get` one connection may have in flight.
    window_keys: usize,
    /// The item size limit, for values from clients.
    max_value: usize,
    /// Answer bytes held for all connections (ready, or written and not
    /// yet taken by the kernel).
    answer_bytes: Cell<usize>,
    /// The most answer bytes one connection ever held at once.
    max_connection_answer_bytes: Cell<usize>,
}

impl Shared {
    /// The shared state of a proxy with `config`, on `io_loop`.
    pub(super) fn new(io_loop: &IOLoop, config: &Config) -> Rc<Shared> {
        Rc::new(Shared {
            io_loop: io_loop.clone(),
            client: Client::new(io_loop, &config.upstreams, config.options.clone()),
            started: Instant::now(),
            curr_connections: Cell::new(0),
            total_connections: Cell::new(0),
            live_sessions: Cell::new(0),
            commands: Cell::new(0),
            upstream_errors: Cell::new(0),
            window_keys: (config.window_bytes / config.options.max_value.max(1))
                .clamp(1, MAX_WINDOW_KEYS),
            max_value: config.options.max_value,
            answer_bytes: Cell::new(0),
            max_connection_answer_bytes: Cell::new(0),
        })
    }

    /// Counts a failure of the upstream side (not a refusal by a server).
    fn count_failure(&self, err: &Error) {
        if !matches!(MemcacheError::of(err), Some(MemcacheError::Refused { .. })) {
            self.upstream_errors.set(self.upstream_errors.get() + 1);
        }
    }
}
/// One client connection.
pub(super) struct Session {
    shared: Rc<Shared>,
    stream: IOStream,
    peer: SocketAddr,
    inbuf: RefCell<Vec<u8>>,
    parser: RefCell<CommandParser>,
    /// Answers in command order.
    slots: RefCell<VecDeque<Slot>>,
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
    /// The `get` with keys not yet asked for: nothing after it is dispatched.
    open_get: RefCell<Option<Rc<GetStream>>>,
    /// Keys of `get` windows asked for and not yet written out.
    window_in_flight: Cell<usize>,
    /// Answer bytes ready or written and not yet taken by the kernel.
    held: Cell<usize>,
    /// `pump` is on the stack.
    pumping: Cell<bool>,
}

impl Session {
    /// Serves the client on `stream` until it quits or goes away.
    pub(super) fn start(shared: &Rc<Shared>, stream: IOStream, peer: SocketAddr) {
        stream.set_max_write_buffer_size(Some(MAX_WRITE_BUFFER));
        let session = Rc::new(Session {
            shared: shared.clone(),
            stream: stream.clone(),
            peer,
            inbuf: RefCell::new(Vec::new()),
            parser: RefCell::new(CommandParser::new(shared.max_value)),
            slots: RefCell::new(VecDeque::new()),
            first_seq: Cell::new(0),
            reading: Cell::new(false),
            processing: Cell::new(false),
            in_read_more: Cell::new(false),
            stalled: Cell::new(false),
            closing: Cell::new(false),
            open_get: RefCell::new(None),
            window_in_flight: Cell::new(0),
            held: Cell::new(0),
            pumping: Cell::new(false),
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
            && !self.stalled.get()
            && self.slots.borrow().len() < MAX_PIPELINE
    }

    fn read_more(self: &Rc<Self>) {
        // Answers that come synchronously end up here again: the loop below
        // goes on with what they freed, without recursing.
        if self.in_read_more.replace(true) {
            return;
        }
        while self.can_read() {
            let data = self.stream.read_bytes_partial(READ_CHUNK);
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
            if self.slots.borrow().len() >= MAX_PIPELINE || self.open_get.borrow().is_some() {
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

    /// A slot at the end of the queue (reserving `keys` keys of a window).
    fn push_slot(&self, keys: usize) -> u64 {
        let mut slots = self.slots.borrow_mut();
        slots.push_back(Slot {
            answer: None,
            keys,
            bytes: 0,
        });
        self.first_seq.get() + slots.len() as u64 - 1
    }

    /// Fills the slot of command `seq` with its answer and sends what is ready.
    fn complete(self: &Rc<Self>, seq: u64, answer: Answer) {
        let bytes = answer.size();
        {
            let mut slots = self.slots.borrow_mut();
            let index = (seq - self.first_seq.get()) as usize;
            slots[index].answer = Some(answer);
            slots[index].bytes = bytes;
        }
        let held = self.held.get() + bytes;
        self.held.set(held);
        let shared = &self.shared;
        shared.answer_bytes.set(shared.answer_bytes.get() + bytes);
        if held > shared.max_connection_answer_bytes.get() {
            shared.max_connection_answer_bytes.set(held);
        }
        self.flush();
    }

    fn complete_line(self: &Rc<Self>, seq: u64, line: &str) {
        self.complete(seq, Answer::Bytes(format!("{line}\r\n").into_bytes()));
    }

    /// Writes the answers at the head of the queue that are ready: small
    /// pieces gathered, values as they are (never copied).
    fn flush(self: &Rc<Self>) {
        let mut out = Pieces::default();
        let (mut keys, mut bytes) = (0, 0);
        loop {
            let slot = {
                let mut slots = self.slots.borrow_mut();
                if !slots.front().is_some_and(|s| s.answer.is_some()) {
                    break;
                }
                self.first_seq.set(self.first_seq.get() + 1);
                slots.pop_front()
            };
            let Some(slot) = slot else { break };
            keys += slot.keys;
            bytes += slot.bytes;
            match slot.answer {
                Some(Answer::Bytes(answer)) => out.push(answer),
                Some(Answer::Window(window)) => self.write_window(window, &mut out),
                None => {}
            }
        }
        let mut last = None;
        for piece in out.pieces {
            let written = self.stream.write(piece);
            if let Some(err) = written.error() {
                // A client that does not read its answers (the write buffer
                // is full) or is gone: its answers can no longer arrive in
                // order, so the connection ends.
                log::debug!("client {}: {err}; closing", self.peer);
                self.stream.close();
                return;
            }
            last = Some(written);
        }
        match last {
            Some(written) if !written.done() => {
                let me = self.clone();
                written.add_done_callback(move |written: &Future<()>| {
                    if written.error().is_none() {
                        me.written(keys, bytes);
                    }
                    me.after_write();
                });
            }
            _ => {
                self.written(keys, bytes);
                self.after_write();
            }
        }
    }

    /// One window of a `get`, as it goes on the wire.
    fn write_window(&self, window: Window, out: &mut Pieces) {
        let get = &window.get;
        if get.aborted.get() {
            return; // answered already, with an error
        }
        if let Some(error) = window.error {
            if !get.sent.get() {
                // Nothing of it out yet: the error is the whole answer, as
                // for any command, and the rest of it is not fetched.
                out.push_slice(format!("{error}\r\n").as_bytes());
                get.aborted.set(true);
                let mut open = self.open_get.borrow_mut();
                if open.as_ref().is_some_and(|g| Rc::ptr_eq(g, get)) {
                    open.take();
                }
                return;
            }
            log::warn!(
                "client {}: {error}; keys of a get already half answered are left out",
                self.peer
            );
        }
        for item in window.values.into_iter().flatten() {
            out.push_item(item);
            get.sent.set(true);
        }
        if window.last {
            out.push_slice(b"END\r\n");
        }
    }

    /// Answers written are with the kernel: their window's room is free again.
    fn written(self: &Rc<Self>, keys: usize, bytes: usize) {
        self.window_in_flight
            .set(self.window_in_flight.get().saturating_sub(keys));
        self.held.set(self.held.get().saturating_sub(bytes));
        let total = &self.shared.answer_bytes;
        total.set(total.get().saturating_sub(bytes));
        self.pump();
    }

    /// Asks for the next windows of the open `get` while there is room.
    fn pump(self: &Rc<Self>) {
        // A window answered at once (a dead upstream) comes back here: the
        // loop below goes on with the room it freed, without recursing.
        if self.pumping.replace(true) {
            return;
        }
        loop {
            if self.closing.get() || self.stream.closed() {
                break;
            }
            let Some(get) = self.open_get.borrow().clone() else {
                break;
            };
            let room = self
                .shared
                .window_keys
                .saturating_sub(self.window_in_flight.get());
            if room == 0 {
                break;
            }
            let start = get.next.get();
            let end = (start + room).min(get.keys.len());
            get.next.set(end);
            let last = end == get.keys.len();
            if last {
                self.open_get.borrow_mut().take();
            }
            self.window_in_flight
                .set(self.window_in_flight.get() + end - start);
            let seq = self.push_slot(end - start);
            self.fetch_window(get, start..end, seq, last);
        }
        self.pumping.set(false);
    }

    /// Fetches keys `range` of `get`, from each upstream its own, and fills
    /// slot `seq` with them: a failed upstream fails its keys only.
    fn fetch_window(
        self: &Rc<Self>,
        get: Rc<GetStream>,
        range: std::ops::Range<usize>,
        seq: u64,
        last: bool,
    ) {
        struct Join {
            values: Vec<Option<Item>>,
            error: Option<String>,
            left: usize,
        }
        let client = &self.shared.client;
        // Positions in the window, by server (a window is a few keys).
        let mut groups: Vec<(Option<usize>, Vec<usize>)> = Vec::new();
        for (pos, i) in range.clone().enumerate() {
            let server = get.keys.get(i).and_then(|k| client.server_for(k));
            match groups.iter_mut().find(|(s, _)| *s == server) {
                Some((_, positions)) => positions.push(pos),
                None => groups.push((server, vec![pos])),
            }
        }
        let join = Rc::new(RefCell::new(Join {
            values: vec![None; range.len()],
            error: None,
            left: groups.len(),
        }));
        let done = {
            let (me, get, join) = (self.clone(), get.clone(), join.clone());
            Rc::new(move || {
                let window = {
                    let mut j = join.borrow_mut();
                    j.left -= 1;
                    if j.left > 0 {
                        return;
                    }
                    Window {
                        get: get.clone(),
                        values: std::mem::take(&mut j.values),
                        error: j.error.take(),
                        last,
                    }
                };
                me.complete(seq, Answer::Window(window));
            })
        };
        for (_, positions) in groups {
            let keys: Vec<&[u8]> = positions
                .iter()
                .filter_map(|&pos| get.keys.get(range.start + pos))
                .collect();
            let (ok_join, ok_done) = (join.clone(), done.clone());
            let (fail_join, fail_done, shared) = (join.clone(), done.clone(), self.shared.clone());
            client.get_multi(
                &keys,
                get.cas,
                move |values| {
                    {
                        let mut j = ok_join.borrow_mut();
                        for (pos, value) in positions.into_iter().zip(values) {
                            j.values[pos] = value;
                        }
                    }
                    ok_done();
                },
                move |err: Error| {
                    shared.count_failure(&err);
                    fail_join
                        .borrow_mut()
                        .error
                        .get_or_insert_with(|| error_line(&err));
                    fail_done();
                },
            );
        }
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
        if self.stalled.get()
            && !self.processing.get()
            && self.slots.borrow().len() < MAX_PIPELINE
            && self.open_get.borrow().is_none()
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
                let seq = self.push_slot(0);
                self.complete_line(seq, &line);
                seq
            }
            Parsed::Fatal(line) => {
                let seq = self.push_slot(0);
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
        if let Command::Get { keys, cas } = command {
            // Fetched in windows as there is room; what follows waits.
            *self.open_get.borrow_mut() = Some(Rc::new(GetStream {
                keys,
                cas,
                next: Cell::new(0),
                sent: Cell::new(false),
                aborted: Cell::new(false),
            }));
            self.pump();
            return;
        }
        let seq = self.push_slot(0);
        let noreply = command.noreply();
        let me = self.clone();
        let answer = move |line: String| {
            if noreply {
                me.complete(seq, Answer::Bytes(Vec::new()));
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
            Command::Get { .. } => unreachable!("handled above"),
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
                self.complete(seq, Answer::Bytes(stats));
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
        stat("window_keys", &shared.window_keys);
        stat("answer_bytes", &shared.answer_bytes.get());
        stat(
            "max_connection_answer_bytes",
            &shared.max_connection_answer_bytes.get(),
        );
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
        let total = &self.shared.answer_bytes;
        total.set(total.get().saturating_sub(self.held.get()));
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
