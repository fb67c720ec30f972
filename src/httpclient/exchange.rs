//! One request and its answer over one connection (one redirect hop):
//! connect or reuse, write, read the head, read the body, hand the
//! connection back. Every path ends in [`Exchange::finish`], which removes
//! the timeout, hands the slot back to the pool with the connection (or
//! closes it), and calls the release callback the client gave.

mod body;
use body::too_large;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use super::parse::{self, protocol_error, Framing, Head};
use super::pool::{HostKey, Pool};
use super::request::HTTPRequest;
use super::response::{HTTPTimeoutError, TimeoutPhase};
use super::url::Url;
use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::httputil::{has_token, ChunkedDecoder};
use crate::ioloop::saturating_add;
use crate::ioloop::TimeoutHandle;
use crate::iostream::IOStream;
use crate::netutil::AddressFamily;

/// The longest line read for a chunked body at least: the decoder's bound on
/// a chunk-size line (4096) and its CRLF. Trailer lines may be as long as
/// `max_header_size`; the decoder bounds them all together.
const MAX_CHUNK_LINE: usize = 4096 + 2;
/// How many informational (1xx) heads may precede the answer.
const MAX_INFORMATIONAL: u32 = 16;
/// How much a close-delimited body is read at a time.
const CLOSE_READ: usize = 64 * 1024;

/// What to do after a piece of the body arrived.
enum Next {
    /// Issue the next read.
    More,
    /// Done (finished or failed): stop reading.
    Stop,
}

/// Where the body reader is.
#[derive(Clone, Copy)]
enum BodyStep {
    Length(usize),
    /// Chunked: `ExState::chunked` says what to read next.
    Chunked,
    UntilClose,
}

struct ExState {
    done: bool,
    /// Bumped when a stale pooled connection is replaced: callbacks of the
    /// old attempt see a different number and stand down.
    attempt: u32,
    stream: Option<IOStream>,
    conn_id: u64,
    reused: bool,
    connecting: bool,
    /// When the current connect began (a retry connects afresh).
    connect_started: Instant,
    timeout: Option<(TimeoutHandle, TimeoutPhase)>,
    informational: u32,
    /// The lines of the head being read, up to its blank line.
    raw_head: Vec<u8>,
    head: Option<Head>,
    framing: Framing,
    body: Vec<u8>,
    /// The decoder of a chunked body: the one shared with the server, so
    /// that both refuse the same framing.
    chunked: Option<ChunkedDecoder>,
}

/// What one hop got back; the client makes it an `HTTPResponse`.
pub(crate) struct Answer {
    pub(crate) code: u16,
    pub(crate) reason: String,
    pub(crate) headers: crate::httputil::HTTPHeaders,
    pub(crate) body: Vec<u8>,
    pub(crate) url: String,
}

/// What an exchange calls when it ends, after handing its slot and its
/// connection back to the pool: the client's (Tornado's
/// `release_callback`), to start what waits.
pub(crate) type ReleaseCallback = Box<dyn FnOnce()>;

/// One hop of a fetch, from dequeue to the end of its answer.
pub(crate) struct Exchange {
    pub(crate) id: u64,
    /// The client's connections, loop and settings.
    pool: Rc<Pool>,
    /// Taken (and called) by [`finish`](Exchange::finish).
    release_callback: RefCell<Option<ReleaseCallback>>,
    request: Rc<HTTPRequest>,
    url: Url,
    key: HostKey,
    /// The encoded request; kept after sending only while a stale-connection
    /// retry may need it again.
    wire: RefCell<Option<Vec<u8>>>,
    future: Future<Answer>,
    started: Instant,
    st: RefCell<ExState>,
}

impl Exchange {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: u64,
        pool: Rc<Pool>,
        request: Rc<HTTPRequest>,
        url: Url,
        wire: Vec<u8>,
        future: Future<Answer>,
        release_callback: ReleaseCallback,
    ) -> Rc<Exchange> {
        let started = pool.io_loop.time();
        let key = HostKey::of(&url, &request);
        Rc::new(Exchange {
            id,
            pool,
            release_callback: RefCell::new(Some(release_callback)),
            request,
            url,
            key,
            wire: RefCell::new(Some(wire)),
            future,
            started,
            st: RefCell::new(ExState {
                done: false,
                attempt: 0,
                stream: None,
                conn_id: 0,
                reused: false,
                connecting: false,
                connect_started: started,
                timeout: None,
                informational: 0,
                raw_head: Vec::new(),
                head: None,
                framing: Framing::Empty,
                body: Vec::new(),
                chunked: None,
            }),
        })
    }

    /// Starts on a pooled connection, or connects.
    pub(crate) fn start(self: &Rc<Self>, pooled: Option<(u64, IOStream)>) {
        match pooled {
            Some((conn_id, stream)) => {
                self.arm_timer();
                self.send(conn_id, stream, true);
            }
            None => self.connect(),
        }
    }

    fn attempt(&self) -> u32 {
        self.st.borrow().attempt
    }

    /// Whether a callback of attempt `attempt` still matters.
    fn current(&self, attempt: u32) -> bool {
        let st = self.st.borrow();
        !st.done && st.attempt == attempt
    }

    fn deadlines(&self) -> (Instant, Instant) {
        (
            // Saturating: `Duration::MAX` is "no timeout", not a panic.
            saturating_add(
                self.st.borrow().connect_started,
                self.request.connect_timeout,
            ),
            saturating_add(self.started, self.request.request_timeout),
        )
    }

    /// One timer at a time: the connect deadline while connecting (if it
    /// comes first), then the request deadline.
    fn arm_timer(self: &Rc<Self>) {
        let (connect, request) = self.deadlines();
        let connecting = self.st.borrow().connecting;
        let (when, phase) = if connecting && connect < request {
            (connect, TimeoutPhase::Connect)
        } else {
            (request, TimeoutPhase::Request)
        };
        let old = {
            let mut st = self.st.borrow_mut();
            if st.done || st.timeout.as_ref().is_some_and(|(_, p)| *p == phase) {
                return;
            }
            st.timeout.take()
        };
        if let Some((handle, _)) = old {
            self.pool.io_loop.remove_timeout(handle);
        }
        let weak: Weak<Exchange> = Rc::downgrade(self);
        let handle = self.pool.io_loop.call_at(when, move || {
            if let Some(me) = weak.upgrade() {
                me.st.borrow_mut().timeout = None;
                let limit = match phase {
                    TimeoutPhase::Connect => me.request.connect_timeout,
                    _ => me.request.request_timeout,
                };
                me.finish(Err(HTTPTimeoutError::new_error(phase, limit)));
            }
        });
        self.st.borrow_mut().timeout = Some((handle, phase));
    }

    // ----- connecting ------------------------------------------------------

    fn connect(self: &Rc<Self>) {
        {
            let mut st = self.st.borrow_mut();
            st.connecting = true;
            st.connect_started = self.pool.io_loop.time();
        }
        self.arm_timer();
        let attempt = self.attempt();
        let me = self.clone();
        let addrs = self.pool.config.resolver.resolve_on(
            &self.pool.io_loop,
            &self.url.host,
            self.url.port,
            AddressFamily::Unspec,
        );
        addrs.add_done_callback(move |addrs: &Future<Vec<SocketAddr>>| {
            if !me.current(attempt) {
                return;
            }
            match addrs.take_result() {
                Ok(mut addrs) => {
                    // IPv4 first: a server bound to 127.0.0.1 is the common
                    // case for `localhost`, and each address is tried in
                    // turn only after the one before is refused.
                    addrs.sort_by_key(SocketAddr::is_ipv6);
                    me.try_addr(Rc::new(addrs), 0, attempt)
                }
                Err(err) => me.finish(Err(err)),
            }
        });
    }

    /// Connects to `addrs[i]`; on a refusal, tries the next one.
    fn try_addr(self: &Rc<Self>, addrs: Rc<Vec<SocketAddr>>, i: usize, attempt: u32) {
        let (connect, request) = self.deadlines();
        let now = self.pool.io_loop.time();
        // The stream's own connect timeout fires at our deadline too; it
        // tells a refused address (try the next) from a silent one.
        let left = connect
            .min(request)
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        let me = self.clone();
        let addr = addrs[i];
        let connected = match IOStream::connecting(addr, Some(left), &self.pool.io_loop) {
            Ok((stream, connected)) => {
                // Held while connecting, so that finishing early (a timeout,
                // the client's close) aborts the connect.
                self.st.borrow_mut().stream = Some(stream);
                connected
            }
            Err(err) => Future::failed(err),
        };
        connected.add_done_callback(move |conn: &Future<IOStream>| {
            let result = conn.take_result();
            if !me.current(attempt) {
                if let Ok(stream) = result {
                    stream.close();
                }
                return;
            }
            match result {
                #[cfg(feature = "tls")]
                Ok(stream) if me.url.https => me.handshake(stream, attempt),
                Ok(stream) => me.connected(stream),
                Err(err) if err.kind() == ErrorKind::Timeout => {
                    let phase = if connect <= request {
                        TimeoutPhase::Connect
                    } else {
                        TimeoutPhase::Request
                    };
                    let limit = match phase {
                        TimeoutPhase::Connect => me.request.connect_timeout,
                        _ => me.request.request_timeout,
                    };
                    me.finish(Err(HTTPTimeoutError::new_error(phase, limit)));
                }
                Err(_) if i + 1 < addrs.len() => me.try_addr(addrs, i + 1, attempt),
                Err(err) => me.finish(Err(err)),
            }
        });
    }

    /// The connection is made (and, for `https://`, its handshake done):
    /// the connect phase is over.
    fn connected(self: &Rc<Self>, stream: IOStream) {
        let conn_id = self.pool.adopt(&stream);
        self.st.borrow_mut().connecting = false;
        self.arm_timer();
        self.send(conn_id, stream, false);
    }

    /// `https://`: TLS over the new connection, still within the connect
    /// deadline (a server that stalls its handshake is a connect timeout).
    /// The TLS stream is held while it runs, so a deadline or the client's
    /// close ends it.
    #[cfg(feature = "tls")]
    fn handshake(self: &Rc<Self>, plain: IOStream, attempt: u32) {
        let upgraded = self
            .pool
            .tls_config(&self.key)
            .and_then(|config| plain.upgrade_tls(config.into(), Some(&self.url.host)));
        let tls = match upgraded {
            Ok(tls) => tls,
            Err(err) => {
                plain.close();
                return self.finish(Err(err));
            }
        };
        self.st.borrow_mut().stream = Some(tls.clone());
        let me = self.clone();
        tls.wait_for_handshake()
            .add_done_callback(move |done: &Future<IOStream>| {
                let result = done.take_result();
                if !me.current(attempt) {
                    if let Ok(stream) = result {
                        stream.close();
                    }
                    return;
                }
                match result {
                    Ok(stream) => me.connected(stream),
                    Err(err) => me.finish(Err(err)),
                }
            });
    }

    // ----- request and head ------------------------------------------------

    fn send(self: &Rc<Self>, conn_id: u64, stream: IOStream, reused: bool) {
        let attempt = {
            let mut st = self.st.borrow_mut();
            st.stream = Some(stream.clone());
            st.conn_id = conn_id;
            st.reused = reused;
            st.attempt
        };
        // A reused connection may prove stale: keep a copy for the retry.
        let wire = if reused && attempt == 0 && self.request.is_idempotent() {
            self.wire.borrow().clone()
        } else {
            self.wire.borrow_mut().take()
        };
        let me = self.clone();
        stream
            .write(wire.unwrap_or_default())
            .add_done_callback(move |written: &Future<()>| {
                if let Some(err) = written.error() {
                    if me.current(attempt) {
                        me.fail_early(err);
                    }
                }
            });
        self.read_head(attempt);
    }

    /// Reads a head line by line, to its blank line: lines may end in CRLF
    /// or a bare LF (as Tornado's client, curl and requests accept), which
    /// one `read_until(b"\r\n\r\n")` could not see. Lines already
    /// buffered are read without waiting, so a head costs one wake-up.
    fn read_head(self: &Rc<Self>, attempt: u32) {
        loop {
            let Some(stream) = self.stream_if_current(attempt) else {
                return;
            };
            let read = self.st.borrow().raw_head.len();
            let left = self.pool.config.max_header_size.saturating_sub(read);
            let line = stream.read_until_max_bytes(b"\n", left.max(1));
            if !line.done() {
                let me = self.clone();
                line.add_done_callback(move |line: &Future<Vec<u8>>| {
                    if me.current(attempt) && me.on_head_line(line.take_result()) {
                        me.read_head(attempt);
                    }
                });
                return;
            }
            if !self.on_head_line(line.take_result()) {
                return;
            }
        }
    }

    /// One line of a head; at the blank line, the head. Returns whether to
    /// read on.
    fn on_head_line(self: &Rc<Self>, line: Result<Vec<u8>, Error>) -> bool {
        let line = match line {
            Ok(line) => line,
            Err(err) => return self.on_head(Err(err)),
        };
        let blank = line == b"\n" || line == b"\r\n";
        let mut st = self.st.borrow_mut();
        if blank && st.raw_head.is_empty() {
            // A stray line end before a status line (after a 1xx, say).
            return true;
        }
        st.raw_head.extend_from_slice(&line);
        if !blank {
            return true;
        }
        let raw = std::mem::take(&mut st.raw_head);
        drop(st);
        self.on_head(Ok(raw))
    }

    fn stream_if_current(&self, attempt: u32) -> Option<IOStream> {
        let st = self.st.borrow();
        if st.done || st.attempt != attempt {
            return None;
        }
        st.stream.clone()
    }

    /// Handles a head; returns whether another head must be read (1xx).
    fn on_head(self: &Rc<Self>, raw: Result<Vec<u8>, Error>) -> bool {
        let raw = match raw {
            Ok(raw) => raw,
            Err(err) if err.kind() == ErrorKind::UnsatisfiableRead => {
                self.finish(Err(protocol_error(format!(
                    "response head larger than max_header_size ({} bytes)",
                    self.pool.config.max_header_size
                ))));
                return false;
            }
            Err(err) => {
                self.fail_early(err);
                return false;
            }
        };
        let head = match parse::parse_head(&raw) {
            Ok(head) => head,
            Err(err) => {
                self.finish(Err(err));
                return false;
            }
        };
        if (100..200).contains(&head.code) {
            if head.headers.contains("Content-Length") || head.headers.contains("Transfer-Encoding")
            {
                // An informational answer has no body; one that claims one
                // leaves us unsure where the next head starts (Tornado).
                self.finish(Err(protocol_error(format!(
                    "response code {} cannot have a body",
                    head.code
                ))));
                return false;
            }
            let mut st = self.st.borrow_mut();
            st.informational += 1;
            let too_many = st.informational > MAX_INFORMATIONAL;
            drop(st);
            if head.code == 101 || too_many {
                self.finish(Err(protocol_error(format!(
                    "unexpected informational answer {} {}",
                    head.code, head.reason
                ))));
                return false;
            }
            return true; // 100 Continue, 103 Early Hints...: skip
        }
        let framing = match parse::framing(&head, &self.request.method) {
            Ok(framing) => framing,
            Err(err) => {
                self.finish(Err(err));
                return false;
            }
        };
        let max = self.pool.config.max_body_size;
        if let Framing::Length(n) = framing {
            if n > max as u64 {
                self.finish(Err(too_large(n, max)));
                return false;
            }
        }
        {
            let mut st = self.st.borrow_mut();
            st.head = Some(head);
            st.framing = framing;
        }
        let first = match framing {
            Framing::Empty | Framing::Length(0) => {
                self.finish(Ok(()));
                return false;
            }
            Framing::Length(n) => BodyStep::Length(n as usize),
            Framing::Chunked => {
                self.st.borrow_mut().chunked = Some(
                    ChunkedDecoder::new(max).with_max_trailer(self.pool.config.max_header_size),
                );
                BodyStep::Chunked
            }
            Framing::Close => BodyStep::UntilClose,
        };
        self.read_body(self.attempt(), first);
        false
    }

    /// A failure before any answer arrived: on a reused connection, for an
    /// idempotent request, the server most likely closed the idle
    /// connection as we sent; try once more on a fresh one.
    fn fail_early(self: &Rc<Self>, err: Error) {
        let retry = {
            let mut st = self.st.borrow_mut();
            let nothing_received = st.head.is_none()
                && st.raw_head.is_empty()
                && st.informational == 0
                && st.stream.as_ref().is_some_and(|s| s.buffered() == 0);
            if !st.done
                && st.reused
                && st.attempt == 0
                && nothing_received
                && self.request.is_idempotent()
            {
                st.attempt += 1;
                st.reused = false;
                st.stream.take()
            } else {
                None
            }
        };
        match retry {
            Some(stale) => {
                log::debug!(
                    "{} {}: pooled connection was stale ({err}); retrying on a new one",
                    self.request.method,
                    self.url
                );
                stale.close();
                self.pool.note_retry();
                self.connect();
            }
            None => {
                // A stream closed by a TLS failure (the server's alert) says
                // so with the kind users match on, not as a mere close.
                let cause = self.st.borrow().stream.as_ref().and_then(IOStream::error);
                let err = match (err.kind(), cause) {
                    (ErrorKind::StreamClosed, Some(cause)) if cause.kind() == ErrorKind::Tls => {
                        cause
                    }
                    (ErrorKind::StreamClosed, _) => Error::with_source(
                        ErrorKind::StreamClosed,
                        format!(
                            "connection closed before a complete answer from {}",
                            self.url
                        ),
                        err,
                    ),
                    _ => err,
                };
                self.finish(Err(err));
            }
        }
    }

    // ----- the end ---------------------------------------------------------

    /// Ends the exchange (once): removes the timeout, pools or closes the
    /// connection, tells the client, and completes the hop's future.
    pub(crate) fn finish(self: &Rc<Self>, outcome: Result<(), Error>) {
        let (timeout, stream, conn_id, head, body) = {
            let mut st = self.st.borrow_mut();
            if st.done {
                return;
            }
            st.done = true;
            (
                st.timeout.take(),
                st.stream.take(),
                st.conn_id,
                st.head.take(),
                std::mem::take(&mut st.body),
            )
        };
        if let Some((handle, _)) = timeout {
            self.pool.io_loop.remove_timeout(handle);
        }
        let framing = self.st.borrow().framing;
        let reusable = outcome.is_ok()
            && head.as_ref().is_some_and(|h| parse::keep_alive(h, framing))
            && !self
                .request
                .headers
                .get_list("Connection")
                .iter()
                .any(|v| has_token(v, "close"))
            // An answer that came before the whole request went out (an
            // early 413, say) leaves the connection mid-request.
            && stream
                .as_ref()
                .is_some_and(|s| !s.closed() && s.buffered() == 0 && !s.writing());
        let pooled = match stream {
            Some(stream) if reusable => Some((conn_id, stream)),
            Some(stream) => {
                stream.close();
                None
            }
            None => None,
        };
        self.pool.release(&self.key, pooled);
        let release = self.release_callback.borrow_mut().take();
        if let Some(release) = release {
            release();
        }
        let result = outcome.and_then(|()| {
            #[allow(unused_mut)]
            let mut head = head.ok_or_else(|| protocol_error("no response head"))?;
            #[cfg(feature = "gzip")]
            let body = self.decoded(&mut head, body)?;
            Ok(Answer {
                code: head.code,
                reason: head.reason,
                headers: head.headers,
                body,
                url: self.url.to_string(),
            })
        });
        self.future.try_complete(result);
    }
}
