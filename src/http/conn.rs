//! One HTTP/1.x connection: parses requests in place from the stream's read
//! buffer (a read hook, no future per request), answers them in order, and
//! enforces the limits and timeouts.
//!
//! Everything the hook produces in one call (the responses of every
//! pipelined request a synchronous handler finished) goes out in one write.

use std::cell::{Cell, RefCell, RefMut};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::Instant;

use super::heads::{write_status_line, write_usize};
use super::request::{HTTPServerRequest, Method, Version};
use super::Options;
use crate::error::ErrorKind;
use crate::httputil::{self, ChunkedDecoder};
use crate::ioloop::TimeoutHandle;
use crate::iostream::IOStream;

/// Headers a request may have (more is a 431).
const MAX_HEADERS: usize = 100;

/// What the connection does with each complete request.
pub(crate) trait Dispatch {
    /// Handles `request`; the response goes through `conn` (see
    /// [`Conn::begin_response`]) now or later.
    fn dispatch(&self, conn: &Rc<Conn>, request: Box<HTTPServerRequest>);
}

enum Body {
    Length(usize),
    /// Boxed: it is the rare case, and the parser hands a `Body` back on
    /// every request.
    Chunked(Box<ChunkedDecoder>),
}

enum Phase {
    /// Waiting for (the rest of) a request head.
    Head,
    /// Reading the body of this request.
    Body(Box<HTTPServerRequest>, Body),
    /// A request is being answered.
    Busy,
    /// An error answer was sent, or the peer left: nothing more is read.
    Done,
}

pub(crate) struct Conn {
    me: Weak<Conn>,
    stream: IOStream,
    dispatch: Rc<dyn Dispatch>,
    opts: Rc<Options>,
    peer: SocketAddr,
    phase: RefCell<Phase>,
    /// Output built during this batch, written once at its end.
    out: RefCell<Vec<u8>>,
    in_hook: Cell<bool>,
    /// Close once the output has gone out.
    closing: Cell<bool>,
    close_scheduled: Cell<bool>,
    waiting_for_drain: Cell<bool>,
    /// When a partial request head started arriving.
    head_start: Cell<Option<Instant>>,
    /// Something happened since the last tick of the timer.
    active: Cell<bool>,
    /// Ticks in a row with nothing happening.
    quiet_ticks: Cell<u32>,
    timer: Cell<Option<TimeoutHandle>>,
    /// Told when the peer goes away in the middle of a response.
    on_close: RefCell<Option<Box<dyn FnOnce()>>>,
    /// Whether the response in progress keeps the connection open.
    keep_alive: Cell<bool>,
    version: Cell<Version>,
    /// The last request's buffers, emptied, for the next one: a
    /// keep-alive connection parses without allocating.
    spare: RefCell<Spare>,
}

/// Buffers handed from one request to the next on a connection.
#[derive(Default)]
pub(crate) struct Spare {
    /// The last request, emptied: its strings, headers and body keep their
    /// capacity, and the box itself is reused, so a request moves from the
    /// parser to the handler and back as one pointer.
    pub(crate) request: Option<Box<HTTPServerRequest>>,
    /// For the response body.
    pub(crate) out_body: Vec<u8>,
    /// The last exchange (`web::Exchange`'s state), emptied, to be reused
    /// in place. It holds the connection: cleared when the stream closes or
    /// goes idle, ending that cycle.
    pub(crate) exchange: Option<Rc<crate::web::ExchangeState>>,
}

impl Spare {
    /// Keeps `request`, emptied, for the next one, if its buffers are small
    /// enough to be worth keeping.
    #[inline]
    fn keep_request(&mut self, mut request: Box<HTTPServerRequest>) {
        if request.recycle(SPARE_MAX) {
            self.request = Some(request);
        }
    }
}

/// Buffers larger than this are not kept for reuse.
pub(crate) const SPARE_MAX: usize = 16 * 1024;

impl Conn {
    pub(crate) fn start(
        stream: IOStream,
        peer: SocketAddr,
        dispatch: Rc<dyn Dispatch>,
        opts: Rc<Options>,
    ) -> Result<(), crate::Error> {
        // Unconsumed bytes are heads of pipelined requests (bodies are
        // consumed as they come): a head-sized cap is backpressure enough.
        stream.set_max_buffer_size(opts.max_header_size.saturating_add(64 * 1024));
        let conn = Rc::new_cyclic(|me| Conn {
            me: me.clone(),
            stream: stream.clone(),
            dispatch,
            opts,
            peer,
            phase: RefCell::new(Phase::Head),
            out: RefCell::new(Vec::new()),
            in_hook: Cell::new(false),
            closing: Cell::new(false),
            close_scheduled: Cell::new(false),
            waiting_for_drain: Cell::new(false),
            head_start: Cell::new(None),
            active: Cell::new(false),
            quiet_ticks: Cell::new(0),
            timer: Cell::new(None),
            on_close: RefCell::new(None),
            keep_alive: Cell::new(true),
            version: Cell::new(Version::Http11),
            spare: RefCell::new(Spare::default()),
        });
        // Strong: a connection whose response is pending lives until the
        // stream closes (the callback is dropped then, ending the cycle).
        let c = conn.clone();
        stream.set_close_callback(move || c.on_stream_closed());
        conn.arm();
        let c = conn.clone();
        stream.set_read_hook(move |buf: &[u8], eof: bool| c.on_read(buf, eof))
    }

    /// The read hook: parses and dispatches what it can.
    fn on_read(self: &Rc<Self>, buf: &[u8], _eof: bool) -> usize {
        self.in_hook.set(true);
        let used = self.process(buf);
        self.in_hook.set(false);
        self.flush_out();
        // For the idle clock: no clock read per request, just a flag.
        self.active.set(true);
        used
    }

    fn process(self: &Rc<Self>, buf: &[u8]) -> usize {
        let mut used = 0;
        // The longest UTF-8 prefix of (the start of) `buf`, worked out once
        // for every request head in it: one pass over a batch of pipelined
        // requests rather than one short, slower pass per head.
        let mut text: Option<&str> = None;
        loop {
            if self.closing.get() {
                return used;
            }
            let mut phase = self.phase.borrow_mut();
            match &mut *phase {
                Phase::Done | Phase::Busy => return used,
                Phase::Head => {
                    if used == buf.len() {
                        return used;
                    }
                    // A peer that pipelines without reading its answers
                    // gets no more until it reads.
                    if self.stream.writing() {
                        drop(phase);
                        self.wait_for_drain();
                        return used;
                    }
                    let text = *text.get_or_insert_with(|| utf8_prefix(buf));
                    match self.parse_head(&buf[used..], text.get(used..)) {
                        Ok(None) => return used,
                        Ok(Some((n, request, body))) => {
                            used += n;
                            match body {
                                None => {
                                    *phase = Phase::Busy;
                                    drop(phase);
                                    self.dispatch.dispatch(self, request);
                                }
                                Some(body) => *phase = Phase::Body(request, body),
                            }
                        }
                        Err(status) => {
                            *phase = Phase::Done;
                            drop(phase);
                            self.error_response(status);
                            return used;
                        }
                    }
                }
                Phase::Body(request, body) => {
                    let rest = &buf[used..];
                    let complete = match body {
                        Body::Length(left) => {
                            let take = (*left).min(rest.len());
                            request.body.extend_from_slice(&rest[..take]);
                            used += take;
                            *left -= take;
                            *left == 0
                        }
                        Body::Chunked(decoder) => match decoder.decode(rest, &mut request.body) {
                            Ok(n) => {
                                used += n;
                                decoder.is_done()
                            }
                            Err(err) => {
                                let status = if err.kind() == ErrorKind::BufferFull {
                                    413
                                } else {
                                    400
                                };
                                *phase = Phase::Done;
                                drop(phase);
                                self.error_response(status);
                                return used;
                            }
                        },
                    };
                    if !complete {
                        return used;
                    }
                    let Phase::Body(request, _) = std::mem::replace(&mut *phase, Phase::Busy)
                    else {
                        unreachable!()
                    };
                    drop(phase);
                    self.dispatch.dispatch(self, request);
                }
            }
        }
    }

    fn wait_for_drain(self: &Rc<Self>) {
        if self.waiting_for_drain.replace(true) {
            return;
        }
        let conn = self.clone();
        self.stream
            .flushed()
            .add_done_callback(move |_: &crate::Future<()>| {
                conn.waiting_for_drain.set(false);
                conn.stream.resume_read_hook();
            });
    }

    /// Parses one request head from `buf`. `Ok(None)`: incomplete.
    /// `Err(status)`: answer with that status and close.
    #[allow(clippy::type_complexity)]
    ///
    /// `text`, if given, is a UTF-8 prefix of `buf` (perhaps all of it):
    /// header values within it need no check of their own.
    fn parse_head(
        &self,
        buf: &[u8],
        text: Option<&str>,
    ) -> Result<Option<(usize, Box<HTTPServerRequest>, Option<Body>)>, u16> {
        let max_header = self.opts.max_header_size;
        // Tolerate blank lines between pipelined requests (RFC 9112 2.2).
        let skip = buf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        let buf = &buf[skip..];
        let text = text.and_then(|t| t.get(skip..));
        if buf.is_empty() {
            return Ok(None);
        }
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let n = match req.parse_with_uninit_headers(buf, &mut slots) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                if buf.len() > max_header {
                    return Err(431);
                }
                if self.head_start.get().is_none() {
                    self.head_start.set(Some(Instant::now()));
                }
                return Ok(None);
            }
            Err(httparse::Error::TooManyHeaders) => return Err(431),
            Err(_) => return Err(400),
        };
        if n > max_header {
            return Err(431);
        }
        self.head_start.set(None);
        let version = match req.version {
            Some(0) => Version::Http10,
            _ => Version::Http11,
        };
        // A complete parse has both.
        let (Some(method), Some(uri)) = (req.method, req.path) else {
            return Err(400);
        };
        let mut request = self
            .spare
            .borrow_mut()
            .request
            .take()
            .unwrap_or_else(|| Box::new(HTTPServerRequest::empty(self.peer)));
        let mut length: Option<usize> = None;
        let mut chunked = false;
        let mut continue_expected = false;
        let mut connection: Option<&str> = None;
        // The head is copied once, whole; the URI and the fields are ranges
        // of it. It is text: the request line and names are ASCII (httparse
        // checked), and a value that is not UTF-8 is refused. `text`, the
        // batch's UTF-8 prefix, usually covers it; past it (obs-text bytes,
        // or beyond the prefix checked) the head is checked on its own.
        let Some(head) = text
            .and_then(|t| t.get(..n))
            .or_else(|| std::str::from_utf8(&buf[..n]).ok())
        else {
            return Err(400);
        };
        let at = |part: &[u8]| part.as_ptr() as usize - buf.as_ptr() as usize;
        request.headers.reset_to_block(head);
        let uri_at = at(uri.as_bytes());
        request.uri = uri_at..uri_at + uri.len();
        for h in req.headers.iter() {
            let name = h.name;
            let (ns, vs) = (at(name.as_bytes()), at(h.value));
            let value_range = vs..vs + h.value.len();
            // At char boundaries: see `push_within`.
            request
                .headers
                .push_within(ns..ns + name.len(), value_range.clone());
            // Four names matter here; their lengths rule most headers out
            // without a comparison (or a look at the value).
            if !matches!(name.len(), 6 | 10 | 14 | 17) {
                continue;
            }
            let value = head.get(value_range).unwrap_or_default();
            if name.len() == 10 {
                // The first one, as `HTTPHeaders::get` would give.
                if connection.is_none() && name.eq_ignore_ascii_case("connection") {
                    connection = Some(value);
                }
            } else if name.eq_ignore_ascii_case("content-length") {
                let Ok(n) = value.trim().parse::<usize>() else {
                    return Err(400);
                };
                if length.is_some_and(|l| l != n) {
                    return Err(400);
                }
                length = Some(n);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                // Only `chunked` is understood, and it must come last.
                if !value.trim().eq_ignore_ascii_case("chunked") || chunked {
                    return Err(501);
                }
                chunked = true;
            } else if name.eq_ignore_ascii_case("expect") {
                if value.trim().eq_ignore_ascii_case("100-continue") {
                    continue_expected = true;
                } else {
                    return Err(417);
                }
            }
        }
        let body = match (chunked, length) {
            (true, Some(_)) => return Err(400),
            (true, None) => Some(Body::Chunked(Box::new(ChunkedDecoder::new(
                self.opts.max_body_size,
            )))),
            (false, Some(n)) if n > self.opts.max_body_size => return Err(413),
            (false, Some(0)) | (false, None) => None,
            (false, Some(n)) => Some(Body::Length(n)),
        };
        if continue_expected && version == Version::Http11 {
            let have = buf.len() - n;
            let needs_more = match &body {
                Some(Body::Length(len)) => have < *len,
                Some(Body::Chunked(_)) => have == 0,
                None => false,
            };
            if needs_more {
                self.out
                    .borrow_mut()
                    .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
        }
        // Most paths are short: a plain scan beats memchr's set-up there.
        request.query_at = if uri.len() < 64 {
            uri.bytes().position(|b| b == b'?')
        } else {
            memchr::memchr(b'?', uri.as_bytes())
        }
        .unwrap_or(uri.len());
        if let Some(Body::Length(len)) = &body {
            // What the client claims, up to a bound: memory follows the bytes
            // that actually arrive, not a promise.
            request.body.reserve_exact((*len).min(1 << 20));
        }
        request.method = Method::parse(method);
        request.version = version;
        // `remote` is already the peer's: the request was made for this
        // connection (`HTTPServerRequest::empty(self.peer)`) and stays with it.
        request.keep_alive = match version {
            Version::Http11 => !connection.is_some_and(|c| httputil::has_token(c, "close")),
            Version::Http10 => connection.is_some_and(|c| httputil::has_token(c, "keep-alive")),
        };
        if self.opts.xheaders {
            request.real_ip = super::request::forwarded_ip(&request.headers);
        }
        Ok(Some((skip + n, request, body)))
    }

    /// Answers a protocol error with `status` and closes.
    fn error_response(&self, status: u16) {
        log::info!(
            "{status} bad request from {} ({})",
            self.peer,
            httputil::responses(status)
        );
        let body = format!("{status}: {}", httputil::responses(status));
        let mut out = self.out.borrow_mut();
        write_status_line(&mut out, status);
        self.write_common_headers(&mut out);
        out.extend_from_slice(b"Content-Type: text/plain; charset=UTF-8\r\nContent-Length: ");
        write_usize(&mut out, body.len());
        out.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        out.extend_from_slice(body.as_bytes());
        drop(out);
        self.closing.set(true);
        if !self.in_hook.get() {
            self.flush_out();
        }
    }

    // ----- the response side, used by the application ----------------------

    /// Takes the spare response-body buffer (empty).
    pub(crate) fn take_out_body(&self) -> Vec<u8> {
        std::mem::take(&mut self.spare.borrow_mut().out_body)
    }

    /// Gives a finished request back for the next one (emptied, if its
    /// buffers are small enough to keep).
    pub(crate) fn recycle_request(&self, request: Box<HTTPServerRequest>) {
        if let Ok(mut spare) = self.spare.try_borrow_mut() {
            spare.keep_request(request);
        }
    }

    /// Gives a finished response body's buffer back for the next response.
    pub(crate) fn recycle_body(&self, mut out_body: Vec<u8>) {
        if out_body.capacity() <= SPARE_MAX {
            if let Ok(mut spare) = self.spare.try_borrow_mut() {
                out_body.clear();
                spare.out_body = out_body;
            }
        }
    }

    /// Keeps `exchange` and its emptied `request` for the next request (see
    /// [`Spare`]), in one borrow. On a closed stream the exchange is let go
    /// (after the borrow: its drop runs code).
    pub(crate) fn park(
        &self,
        exchange: Rc<crate::web::ExchangeState>,
        request: Option<Box<HTTPServerRequest>>,
    ) {
        let Ok(mut spare) = self.spare.try_borrow_mut() else {
            return;
        };
        if let Some(request) = request {
            spare.keep_request(request);
        }
        if !self.stream.closed() {
            spare.exchange = Some(exchange);
        }
    }

    /// The exchange `park` kept, if any.
    pub(crate) fn take_parked(&self) -> Option<Rc<crate::web::ExchangeState>> {
        self.spare.try_borrow_mut().ok()?.exchange.take()
    }

    /// The output buffer, to append a response (or part of one) to.
    pub(crate) fn out(&self) -> RefMut<'_, Vec<u8>> {
        self.out.borrow_mut()
    }

    /// Records how the response of `request` is to end the exchange.
    pub(crate) fn begin_response(&self, request: &HTTPServerRequest) {
        self.keep_alive.set(request.keep_alive);
        self.version.set(request.version);
    }

    /// Whether the response in progress keeps the connection open.
    pub(crate) fn keep_alive(&self) -> bool {
        self.keep_alive.get()
    }

    /// The response will be close-delimited (or an error cut it short).
    pub(crate) fn disable_keep_alive(&self) {
        self.keep_alive.set(false);
    }

    /// The request version of the response in progress.
    pub(crate) fn version(&self) -> Version {
        self.version.get()
    }

    /// Sends what is buffered now (unless the read hook is running: it sends
    /// everything at its end).
    pub(crate) fn send_now(&self) {
        if !self.in_hook.get() {
            self.flush_out();
        }
    }

    /// Appends `Server` and `Date`.
    pub(crate) fn write_common_headers(&self, out: &mut Vec<u8>) {
        self.opts.heads.write_common(self.stream.io_loop(), out);
    }

    /// Appends the usual head (see `Heads::write_ok_html`).
    pub(crate) fn write_ok_html_head(&self, out: &mut Vec<u8>, length: usize) {
        self.opts
            .heads
            .write_ok_html(self.stream.io_loop(), out, length);
    }

    /// Whether the connection is gone.
    pub(crate) fn closed(&self) -> bool {
        self.stream.closed()
    }

    /// A future done when the output so far has gone to the kernel.
    pub(crate) fn flushed(&self) -> crate::Future<()> {
        self.send_now();
        self.stream.flushed()
    }

    /// Runs `f` if the peer goes away before the response is finished.
    pub(crate) fn set_on_close(&self, f: Box<dyn FnOnce()>) {
        *self.on_close.borrow_mut() = Some(f);
    }

    /// The response is complete: go on with the next request (or close).
    pub(crate) fn response_done(self: &Rc<Self>) {
        let on_close = self.on_close.borrow_mut().take();
        drop(on_close);
        {
            let mut phase = self.phase.borrow_mut();
            if matches!(*phase, Phase::Busy) {
                *phase = Phase::Head;
            }
        }
        if !self.keep_alive.get() {
            self.closing.set(true);
        }
        if !self.in_hook.get() {
            self.flush_out();
            if !self.closing.get() {
                self.active.set(true);
                // Pipelined requests may be waiting in the buffer.
                self.stream.resume_read_hook();
            }
        }
    }

    /// An error after the response started: the connection cannot be
    /// trusted to frame another response, so it closes.
    pub(crate) fn abort(&self) {
        self.closing.set(true);
        *self.phase.borrow_mut() = Phase::Done;
        self.send_now();
    }

    fn flush_out(&self) {
        let mut out = self.out.borrow_mut();
        if !out.is_empty() {
            if let Err(err) = self.stream.write_from(&mut out) {
                log::debug!("write to {}: {err}", self.peer);
                out.clear();
            }
        }
        drop(out);
        if self.closing.get() && !self.close_scheduled.replace(true) {
            self.disarm();
            let stream = self.stream.clone();
            self.stream
                .flushed()
                .add_done_callback(move |_: &crate::Future<()>| stream.close());
        }
    }

    fn on_stream_closed(&self) {
        self.disarm();
        // Drop the parked exchange, which holds this connection.
        let parked = self.take_parked();
        drop(parked);
        *self.phase.borrow_mut() = Phase::Done;
        let on_close = self.on_close.borrow_mut().take();
        if let Some(f) = on_close {
            f();
        }
    }

    // ----- timeouts ----------------------------------------------------------

    /// Ticks per idle timeout: a connection is closed after between
    /// `idle_timeout` and 1.25 times that with nothing happening.
    const TICKS: u32 = 4;

    /// The timer's period: a quarter of the shorter timeout. One timer per
    /// connection, re-armed every tick, never per request: requests only
    /// set the `active` flag.
    fn tick_period(&self) -> std::time::Duration {
        (self.opts.idle_timeout.min(self.opts.header_timeout) / Self::TICKS)
            .max(std::time::Duration::from_millis(1))
    }

    fn arm(&self) {
        let weak: Weak<Conn> = self.me.clone();
        let handle = self
            .stream
            .io_loop()
            .call_later(self.tick_period(), move || {
                if let Some(conn) = weak.upgrade() {
                    conn.timer.set(None);
                    conn.on_tick();
                }
            });
        if let Some(old) = self.timer.replace(Some(handle)) {
            self.stream.io_loop().remove_timeout(old);
        }
    }

    /// Frees the idle connection's buffers (only those holding nothing).
    fn release_buffers(&self) {
        self.stream.release_buffers();
        if let Ok(mut out) = self.out.try_borrow_mut() {
            if out.is_empty() {
                *out = Vec::new();
            }
        }
        // Dropped outside the borrow: the parked exchange's drop runs code.
        let old = match self.spare.try_borrow_mut() {
            Ok(mut spare) => std::mem::take(&mut *spare),
            Err(_) => return,
        };
        drop(old);
    }

    fn disarm(&self) {
        if let Some(handle) = self.timer.take() {
            self.stream.io_loop().remove_timeout(handle);
        }
    }

    fn on_tick(&self) {
        if self.stream.closed() || self.close_scheduled.get() {
            return;
        }
        let (busy, reading_head) = match &*self.phase.borrow() {
            Phase::Busy => (true, false),
            Phase::Head => (false, true),
            Phase::Body(..) | Phase::Done => (false, false),
        };
        // A request head that takes too long, however steadily it trickles.
        let slow_head = reading_head
            && self
                .head_start
                .get()
                .is_some_and(|start| start.elapsed() >= self.opts.header_timeout);
        if busy || self.active.replace(false) {
            // A handler at work is not idleness.
            self.quiet_ticks.set(0);
        } else {
            self.quiet_ticks.set(self.quiet_ticks.get() + 1);
            if self.quiet_ticks.get() == 1 && reading_head && self.head_start.get().is_none() {
                // Quiet between requests: hold no buffers while idle (the
                // read buffer alone is 4 KiB); a request allocates them
                // again. Not per request: that would cost the hot path.
                self.release_buffers();
            }
        }
        let idle = u128::from(self.quiet_ticks.get()) * self.tick_period().as_nanos()
            >= self.opts.idle_timeout.as_nanos();
        if slow_head || idle {
            log::debug!(
                "closing connection from {}: {}",
                self.peer,
                if slow_head {
                    "header timeout"
                } else {
                    "idle timeout"
                }
            );
            self.stream.close();
        } else {
            self.arm();
        }
    }
}

/// How much of `buf` is checked for UTF-8 at once: enough for a batch of
/// pipelined heads, not a large body behind them.
const TEXT_SCAN: usize = 16 * 1024;

/// The longest UTF-8 prefix of `buf`'s first [`TEXT_SCAN`] bytes.
fn utf8_prefix(buf: &[u8]) -> &str {
    let scan = &buf[..buf.len().min(TEXT_SCAN)];
    match std::str::from_utf8(scan) {
        Ok(text) => text,
        // A multi-byte character cut at the end of the scan, or bytes that
        // are not UTF-8 (a binary body, obs-text): stop before them.
        Err(err) => std::str::from_utf8(&scan[..err.valid_up_to()]).unwrap_or(""),
    }
}
