//! The client's servers: each one's dead-or-alive state, and the one
//! pipelined connection that carries every call to it.
//!
//! A connection is opened with a non-blocking connect and a connect timeout,
//! outside any caller's stack context (it serves all of them). Requests are
//! written in order, those of one loop iteration in one write, and replies
//! are matched to them in order; a connection that breaks fails every call
//! in flight on it with the reason.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::Instant;

use squall::stack_context::NullContext;
use squall::{Error, ErrorKind, Future, IOLoop, IOStream};

use super::client::{MemcacheError, Options};
use super::reply::{Expect, Reply, ReplyParser};

/// How much a connection asks its stream for at a time.
const READ_CHUNK: usize = 64 * 1024;

/// A server's state, for stats.
#[derive(Clone, Debug)]
pub struct ServerInfo {
    /// Its address.
    pub addr: SocketAddr,
    /// Whether it is marked dead now.
    pub dead: bool,
    /// Calls sent to it.
    pub calls: u64,
    /// Calls that failed (refusals by the server excluded).
    pub failures: u64,
    /// Calls that timed out.
    pub timeouts: u64,
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub io_loop: IOLoop,
    pub options: Rc<Options>,
    pub conn: RefCell<Option<Rc<Conn>>>,
    pub dead_until: Cell<Option<Instant>>,
    pub calls: Cell<u64>,
    pub failures: Cell<u64>,
    pub timeouts: Cell<u64>,
}

impl Upstream {
    /// A server at `addr`, alive, not connected yet.
    pub fn new(addr: SocketAddr, io_loop: &IOLoop, options: Rc<Options>) -> Upstream {
        Upstream {
            addr,
            io_loop: io_loop.clone(),
            options,
            conn: RefCell::new(None),
            dead_until: Cell::new(None),
            calls: Cell::new(0),
            failures: Cell::new(0),
            timeouts: Cell::new(0),
        }
    }

    /// Its state at `now`.
    pub fn info(&self, now: Instant) -> ServerInfo {
        ServerInfo {
            addr: self.addr,
            dead: self.dead_until.get().is_some_and(|until| now < until),
            calls: self.calls.get(),
            failures: self.failures.get(),
            timeouts: self.timeouts.get(),
        }
    }

    /// Closes its connection (calls in flight fail).
    pub fn close(&self) {
        let conn = self.conn.borrow_mut().take();
        if let Some(conn) = conn {
            conn.close(MemcacheError::Closed {
                server: self.addr,
                reason: "client closed".into(),
            });
        }
    }

    /// Fails (synchronously) if the server is marked dead and not due for a retry.
    pub fn check_alive(&self) -> Result<(), Error> {
        if let Some(until) = self.dead_until.get() {
            if self.io_loop.time() < until {
                return Err(MemcacheError::Dead { server: self.addr }.into_error());
            }
            log::info!("retrying upstream {}", self.addr);
            self.dead_until.set(None);
        }
        Ok(())
    }

    /// Marks the server dead and abandons its connection. The connection is
    /// closed on the next iteration, so the call that found the server dead
    /// reports why before its neighbours in the pipeline do.
    pub fn mark_dead(&self, why: &MemcacheError) {
        if self.dead_until.get().is_none() {
            log::warn!("{why}: marking it dead for {:?}", self.options.dead_retry);
        }
        self.dead_until
            .set(Some(self.io_loop.time() + self.options.dead_retry));
        if let Some(conn) = self.conn.borrow_mut().take() {
            let why = why.clone();
            self.io_loop.spawn_callback(move || conn.close(why));
        }
    }

    /// The open connection, or a new one.
    pub fn connection(self: &Rc<Self>) -> Rc<Conn> {
        if let Some(conn) = self.conn.borrow().as_ref() {
            if !conn.closed.get() {
                return conn.clone();
            }
        }
        // It serves every caller: it must not capture this one's contexts.
        let conn = NullContext::run(|| Conn::open(self));
        if !conn.closed.get() {
            *self.conn.borrow_mut() = Some(conn.clone());
        }
        conn
    }
}

struct Pending {
    expect: Expect,
    reply: Future<Reply>,
}

/// One pipelined connection to a server.
pub struct Conn {
    addr: SocketAddr,
    io_loop: IOLoop,
    upstream: Weak<Upstream>,
    /// `None` while connecting (and after closing).
    stream: RefCell<Option<IOStream>>,
    pending: RefCell<VecDeque<Pending>>,
    out: RefCell<Vec<u8>>,
    flush_scheduled: Cell<bool>,
    inbuf: RefCell<Vec<u8>>,
    parser: RefCell<ReplyParser>,
    pub closed: Cell<bool>,
    close_reason: RefCell<Option<MemcacheError>>,
}

impl Conn {
    fn open(upstream: &Rc<Upstream>) -> Rc<Conn> {
        let conn = Rc::new(Conn {
            addr: upstream.addr,
            io_loop: upstream.io_loop.clone(),
            upstream: Rc::downgrade(upstream),
            stream: RefCell::new(None),
            pending: RefCell::new(VecDeque::new()),
            out: RefCell::new(Vec::new()),
            flush_scheduled: Cell::new(false),
            inbuf: RefCell::new(Vec::new()),
            parser: RefCell::new(ReplyParser::new(upstream.options.max_value)),
            closed: Cell::new(false),
            close_reason: RefCell::new(None),
        });
        log::debug!("connecting to upstream {}", conn.addr);
        // A non-blocking connect with a deadline: IOStream closes the socket
        // and fails the future with a Timeout if the server does not accept.
        let connecting = IOStream::connect_with(
            conn.addr,
            Some(upstream.options.connect_timeout),
            &conn.io_loop,
        );
        let c = conn.clone();
        connecting.add_done_callback(move |f: &Future<IOStream>| c.on_connect(f.take_result()));
        conn
    }

    fn on_connect(self: &Rc<Self>, result: Result<IOStream, Error>) {
        match result {
            Ok(stream) if self.closed.get() => stream.close(),
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                *self.stream.borrow_mut() = Some(stream);
                self.flush();
                self.read_loop();
            }
            Err(err) => {
                let why = MemcacheError::Connect {
                    server: self.addr,
                    reason: if err.kind() == ErrorKind::Timeout {
                        "connect timed out".into()
                    } else {
                        err.message().to_owned()
                    },
                };
                if let Some(upstream) = self.upstream.upgrade() {
                    upstream.mark_dead(&why);
                }
                self.close(why);
            }
        }
    }

    /// Queues a request (written by `encode`) and returns the future of its reply.
    pub fn send(
        self: &Rc<Self>,
        expect: Expect,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> Future<Reply> {
        if self.closed.get() {
            return Future::failed(self.close_error());
        }
        let reply = Future::new();
        self.pending.borrow_mut().push_back(Pending {
            expect,
            reply: reply.clone(),
        });
        encode(&mut self.out.borrow_mut());
        if !self.flush_scheduled.replace(true) {
            // Every request of this iteration goes out in one write.
            let me = self.clone();
            self.io_loop.spawn_callback(move || me.flush());
        }
        reply
    }

    fn flush(&self) {
        self.flush_scheduled.set(false);
        let stream = self.stream.borrow().clone();
        if let Some(stream) = stream {
            let data = std::mem::take(&mut *self.out.borrow_mut());
            // A failed write closes the stream; the pending read hears of it.
            drop(stream.write(data));
        }
    }

    /// Keeps one read outstanding, so a server that goes away is noticed
    /// even while no call is in flight.
    fn read_loop(self: &Rc<Self>) {
        loop {
            let Some(stream) = self.stream.borrow().clone() else {
                return;
            };
            let data = stream.read_bytes_partial(READ_CHUNK);
            if !data.done() {
                let me = self.clone();
                data.add_done_callback(move |data: &Future<Vec<u8>>| {
                    if me.on_data(data.take_result()) {
                        me.read_loop();
                    }
                });
                return;
            }
            if !self.on_data(data.take_result()) {
                return;
            }
        }
    }

    /// Parses what arrived and completes the calls it answers. Returns
    /// whether to go on reading.
    fn on_data(&self, data: Result<Vec<u8>, Error>) -> bool {
        let data = match data {
            Ok(data) => data,
            Err(err) => {
                let reason = match err.kind() {
                    ErrorKind::StreamClosed if err.message() == "stream is closed" => {
                        "closed by the server".to_owned()
                    }
                    _ => err.to_string(),
                };
                self.close(MemcacheError::Closed {
                    server: self.addr,
                    reason,
                });
                return false;
            }
        };
        self.inbuf.borrow_mut().extend_from_slice(&data);
        let mut used = 0;
        loop {
            let Some(expect) = self.pending.borrow().front().map(|p| p.expect) else {
                break;
            };
            let parsed = {
                let inbuf = self.inbuf.borrow();
                self.parser.borrow_mut().parse(&inbuf[used..], expect)
            };
            match parsed {
                Ok((n, None)) => {
                    used += n;
                    break;
                }
                Ok((n, Some(reply))) => {
                    used += n;
                    let pending = self.pending.borrow_mut().pop_front();
                    if let Some(pending) = pending {
                        // Runs the call's callbacks, under the call's context.
                        pending.reply.try_set_result(reply);
                    }
                    if self.closed.get() {
                        return false;
                    }
                }
                Err(err) => {
                    self.close(MemcacheError::Protocol {
                        server: self.addr,
                        reason: err.0,
                    });
                    return false;
                }
            }
        }
        let mut inbuf = self.inbuf.borrow_mut();
        inbuf.drain(..used);
        if !inbuf.is_empty() && self.pending.borrow().is_empty() {
            drop(inbuf);
            self.close(MemcacheError::Protocol {
                server: self.addr,
                reason: "data nobody asked for".into(),
            });
            return false;
        }
        true
    }

    fn close_error(&self) -> Error {
        let reason = self.close_reason.borrow().clone();
        reason
            .unwrap_or(MemcacheError::Closed {
                server: self.addr,
                reason: "closed".into(),
            })
            .into_error()
    }

    /// Closes the connection; every call in flight on it fails with `why`.
    pub fn close(&self, why: MemcacheError) {
        if self.closed.replace(true) {
            return;
        }
        log::debug!("upstream connection to {} closed: {why}", self.addr);
        *self.close_reason.borrow_mut() = Some(why);
        if let Some(upstream) = self.upstream.upgrade() {
            let mut current = upstream.conn.borrow_mut();
            if current.as_ref().is_some_and(|c| std::ptr::eq(&**c, self)) {
                current.take();
            }
        }
        let stream = self.stream.borrow_mut().take();
        if let Some(stream) = stream {
            stream.close();
        }
        self.out.borrow_mut().clear();
        self.inbuf.borrow_mut().clear();
        let pending: Vec<Pending> = self.pending.borrow_mut().drain(..).collect();
        let err = self.close_error();
        for p in pending {
            p.reply.try_set_error(err.clone());
        }
    }
}
