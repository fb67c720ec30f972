//! One HTTP/1.x connection's reading side: parses requests in place from
//! the stream's read buffer (a read hook, no future per request), hands
//! each to its delegate, and enforces the limits and timeouts. The response
//! side is [`HTTPConnection`] (connection.rs).
//!
//! Everything the hook produces in one call (the responses of every
//! pipelined request a synchronous delegate finished) goes out in one write.

use std::cell::{Cell, RefCell};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use super::connection::{Body, Core, HTTPConnection, Phase, Reader};
use super::delegate::{HTTPMessageDelegate, HTTPServerConnectionDelegate};
use super::request::{HTTPServerRequest, Method, Version};
use super::Options;
use crate::error::ErrorKind;
use crate::httputil::{self, ChunkedDecoder};
use crate::ioloop::TimeoutHandle;
use crate::iostream::IOStream;

mod refuse;

/// Headers a request may have (more is a 431).
const MAX_HEADERS: usize = 100;

pub(crate) struct Conn<D: HTTPServerConnectionDelegate> {
    me: Weak<Conn<D>>,
    handle: HTTPConnection,
    delegate: Rc<D>,
    /// The current request's delegate, while it is not being called.
    message: Cell<Option<D::Message>>,
    /// A finished request's delegate that asked to serve the next one
    /// ([`HTTPMessageDelegate::reuse`]): none built and dropped per request.
    idle: Cell<Option<D::Message>>,
    /// The message delegate asked to pause the body.
    paused: Cell<bool>,
    /// Decoded pieces of a chunked body, on their way to the delegate.
    scratch: RefCell<Vec<u8>>,
    /// The chunked body's decoder, while one is read.
    decoder: RefCell<Option<Box<ChunkedDecoder>>>,
    waiting_for_drain: Cell<bool>,
    /// When a partial request head started arriving.
    head_start: Cell<Option<Instant>>,
    /// The body's clock: (when the timer first saw it coming, time it was
    /// held back by a pause since). Set by the timer, not per request.
    body_clock: Cell<Option<(Instant, Duration)>>,
    /// Body bytes received (for the minimum rate).
    body_bytes: Cell<u64>,
    /// Something happened since the last tick of the timer.
    active: Cell<bool>,
    /// Ticks in a row with nothing happening.
    quiet_ticks: Cell<u32>,
    timer: Cell<Option<TimeoutHandle>>,
    /// The last `Host` value found valid here.
    host: HostCache,
    /// The decoder of a gzipped body being read (`decompress_request`).
    #[cfg(feature = "gzip")]
    gunzip: Cell<Option<Box<super::gzip::RequestGunzip>>>,
}

/// What a request head says of its body; `Err(status)` to refuse it.
/// `Ok(None)`: incomplete. Else the head's length, the request, its body,
/// and whether the client expects `100 Continue`.
type Parsed = Result<Option<(usize, Box<HTTPServerRequest>, Option<Body>, bool)>, u16>;

impl<D: HTTPServerConnectionDelegate> Conn<D> {
    pub(crate) fn start(
        stream: IOStream,
        peer: SocketAddr,
        delegate: Rc<D>,
        opts: Rc<Options>,
    ) -> Result<(), crate::Error> {
        // Unconsumed bytes are heads of pipelined requests (bodies are
        // consumed as they come): a head-sized cap is backpressure enough.
        stream.set_max_buffer_size(opts.max_header_size.saturating_add(64 * 1024));
        let handle = HTTPConnection::new(stream.clone(), peer, opts);
        let conn = Rc::new_cyclic(|me| Conn {
            me: me.clone(),
            handle,
            delegate,
            message: Cell::new(None),
            idle: Cell::new(None),
            paused: Cell::new(false),
            scratch: RefCell::new(Vec::new()),
            decoder: RefCell::new(None),
            waiting_for_drain: Cell::new(false),
            head_start: Cell::new(None),
            body_clock: Cell::new(None),
            body_bytes: Cell::new(0),
            active: Cell::new(false),
            quiet_ticks: Cell::new(0),
            timer: Cell::new(None),
            host: HostCache::default(),
            #[cfg(feature = "gzip")]
            gunzip: Cell::new(None),
        });
        let weak: Weak<dyn Reader> = conn.me.clone();
        *conn.core().reader.borrow_mut() = Some(weak);
        // Strong: a connection whose response is pending lives until the
        // stream closes (the callback is dropped then, ending the cycle).
        let c = conn.clone();
        stream.set_close_callback(move || c.on_stream_closed());
        conn.arm();
        let c = conn.clone();
        stream.set_read_hook(move |buf: &[u8], eof: bool| c.on_read(buf, eof))
    }

    #[inline]
    fn core(&self) -> &Core {
        &self.handle.core
    }

    /// The read hook: parses and hands on what it can.
    fn on_read(self: &Rc<Self>, buf: &[u8], _eof: bool) -> usize {
        let core = self.core();
        core.in_hook.set(true);
        let used = self.process(buf);
        core.in_hook.set(false);
        core.flush_out();
        // For the idle clock: no clock read per request, just a flag.
        self.active.set(true);
        used
    }

    fn process(self: &Rc<Self>, buf: &[u8]) -> usize {
        let core = self.core();
        let mut used = 0;
        // The longest UTF-8 prefix of (the start of) `buf`, worked out once
        // for every request head in it: one pass over a batch of pipelined
        // requests rather than one short, slower pass per head.
        let mut text: Option<&str> = None;
        loop {
            if core.closing.get() || self.paused.get() {
                return used;
            }
            match core.phase.get() {
                Phase::Done => return used,
                // The response to come resumes reading (`response_done`).
                Phase::Busy => return used,
                Phase::Head => {
                    if used == buf.len() {
                        return used;
                    }
                    // A peer that pipelines without reading its answers
                    // gets no more until it reads.
                    if core.stream.writing() {
                        self.wait_for_drain();
                        return used;
                    }
                    let text = *text.get_or_insert_with(|| utf8_prefix(buf));
                    match self.parse_head(&buf[used..], text.get(used..)) {
                        Ok(None) => return used,
                        Ok(Some((n, request, body, expect))) => {
                            used += n;
                            self.start_message(request, body, expect, buf.len() - used);
                            if core.detached.get() {
                                return used;
                            }
                        }
                        Err(status) => {
                            self.refuse_head(status, &buf[used..]);
                            return used;
                        }
                    }
                }
                Phase::Body(body) => {
                    let rest = &buf[used..];
                    let (n, complete) = match body {
                        Body::Length(left) => {
                            let take = left.min(rest.len() as u64) as usize;
                            let left = left - take as u64;
                            core.phase.set(Phase::Body(Body::Length(left)));
                            if take > 0 {
                                self.deliver(&rest[..take]);
                            }
                            (take, left == 0)
                        }
                        Body::Chunked => match self.decode_chunked(rest) {
                            Ok(done) => done,
                            Err(status) => {
                                self.refuse(status);
                                return used;
                            }
                        },
                    };
                    used += n;
                    self.body_bytes.set(self.body_bytes.get() + n as u64);
                    if core.detached.get() {
                        return used;
                    }
                    if complete {
                        self.body_clock.set(None);
                        self.body_bytes.set(0);
                        self.body_complete();
                    } else if n == rest.len() || n == 0 {
                        return used;
                    }
                }
            }
        }
    }

    /// Decodes what it can of a chunked body from `rest` and hands it on:
    /// (bytes used, whether the body is complete), or the status to refuse
    /// bad framing with.
    fn decode_chunked(self: &Rc<Self>, rest: &[u8]) -> Result<(usize, bool), u16> {
        let mut piece = std::mem::take(&mut *self.scratch.borrow_mut());
        piece.clear();
        let decoded = {
            let mut decoder = self.decoder.borrow_mut();
            let decoder = decoder.get_or_insert_with(|| Box::new(ChunkedDecoder::new(0)));
            decoder
                .decode(rest, &mut piece)
                .map(|n| (n, decoder.is_done()))
        };
        let result = match decoded {
            Ok(done) => {
                if !piece.is_empty() {
                    self.deliver(&piece);
                }
                Ok(done)
            }
            Err(err) if err.kind() == ErrorKind::BufferFull => Err(413),
            Err(_) => Err(400),
        };
        *self.scratch.borrow_mut() = piece;
        result
    }

    /// A head was parsed: the delegate hears of it.
    fn start_message(
        self: &Rc<Self>,
        #[allow(unused_mut)] mut request: Box<HTTPServerRequest>,
        body: Option<Body>,
        expect_continue: bool,
        have: usize,
    ) {
        let core = self.core();
        core.begin(&request);
        // The phase first: a delegate may answer from `headers_received`
        // (before a body it does not want, say), and the response's end
        // moves the phase on from there.
        core.phase.set(match body {
            None => Phase::Busy,
            // A chunked body's decoder is made below, once the delegate
            // has had its say on the limit.
            Some(body) => Phase::Body(body),
        });
        // A gzipped body is decoded on its way (the delegate sees the
        // header renamed): one test when `decompress_request` is off.
        #[cfg(feature = "gzip")]
        let gzipped = core.opts.decompress_request
            && body.is_some()
            && super::gzip::take_gzip_coding(&mut request);
        let mut message = self.new_message();
        message.headers_received(request);
        let Some(body) = body else {
            if !core.detached.get() {
                message.finish();
            }
            self.keep_unless_finished(message);
            return;
        };
        let max = core.max_body_size.get();
        match core.phase.get() {
            // Its limit is the one the delegate left.
            Phase::Body(Body::Chunked) => {
                *self.decoder.borrow_mut() = Some(Box::new(ChunkedDecoder::new(max)));
            }
            Phase::Body(Body::Length(_)) => {}
            // Answered (or detached) already: the body is not read.
            Phase::Head | Phase::Busy | Phase::Done => {
                self.keep_unless_finished(message);
                return;
            }
        }
        self.message.set(Some(message));
        #[cfg(feature = "gzip")]
        if gzipped {
            // The decoded body is held to the limit the delegate left.
            let decoder = super::gzip::RequestGunzip::new(max);
            self.gunzip.set(Some(Box::new(decoder)));
        }
        if let Body::Length(n) = body {
            if n > max as u64 {
                self.refuse(413);
                return;
            }
        }
        // A client that asked waits for this before sending the body.
        if expect_continue && core.nothing_written() {
            let needs_more = match body {
                Body::Length(len) => (have as u64) < len,
                Body::Chunked => have == 0,
            };
            if needs_more {
                core.write_continue();
            }
        }
    }

    /// The next request's delegate: the last one if it asked to serve
    /// again, else a new one.
    #[inline]
    fn new_message(&self) -> D::Message {
        let idle = self.idle.take();
        match idle {
            Some(message) => message,
            None => self.delegate.start_request(&self.handle),
        }
    }

    /// Keeps `message` for what is to come; or, if its response is
    /// finished, for the next request if it asks to be reused, else lets
    /// it go (unborrowed: its drop may run user code). Always inlined: it
    /// ends every request, and a call costs about as much as its work.
    #[inline(always)]
    fn keep_unless_finished(&self, mut message: D::Message) {
        if self.core().detached.get() {
            drop(message);
        } else if !self.handle.response_finished() {
            self.message.set(Some(message));
        } else if message.reuse() {
            self.idle.set(Some(message));
        }
    }

    /// Hands a piece of the body to the message delegate (decoded first,
    /// if it is gzipped).
    fn deliver(self: &Rc<Self>, chunk: &[u8]) {
        #[cfg(feature = "gzip")]
        if let Some(mut gunzip) = self.gunzip.take() {
            // Out of its cell while the delegate runs.
            match gunzip.feed(chunk, &mut |piece| self.deliver_plain(piece)) {
                Ok(()) => self.gunzip.set(Some(gunzip)),
                Err(status) => self.refuse(status),
            }
            return;
        }
        self.deliver_plain(chunk);
    }

    /// Hands a piece of the body to the message delegate, as it is.
    fn deliver_plain(self: &Rc<Self>, chunk: &[u8]) {
        let message = self.message.take();
        let Some(mut message) = message else {
            return;
        };
        let wait = message.data_received(chunk);
        self.message.set(Some(message));
        if let Some(wait) = wait {
            if !wait.done() {
                self.paused.set(true);
                let conn = self.clone();
                wait.add_done_callback(move |_: &crate::Future<()>| {
                    conn.paused.set(false);
                    conn.active.set(true);
                    // Not a stream handed over meanwhile: its hook is
                    // someone else's now.
                    if !conn.core().detached.get() {
                        conn.core().stream.resume_read_hook();
                    }
                });
            }
        }
    }

    /// The whole body has come.
    fn body_complete(self: &Rc<Self>) {
        let core = self.core();
        #[cfg(feature = "gzip")]
        if let Some(mut gunzip) = self.gunzip.take() {
            // The gzip stream must have ended with the body.
            if let Err(status) = gunzip.finish(&mut |piece| self.deliver_plain(piece)) {
                self.refuse(status);
                return;
            }
        }
        if matches!(core.phase.get(), Phase::Body(_)) {
            core.phase.set(Phase::Busy);
        }
        let decoder = self.decoder.borrow_mut().take();
        drop(decoder);
        let message = self.message.take();
        if let Some(mut message) = message {
            message.finish();
            self.keep_unless_finished(message);
        }
        if !core.in_hook.get() {
            core.flush_out();
        }
    }

    fn wait_for_drain(self: &Rc<Self>) {
        if self.waiting_for_drain.replace(true) {
            return;
        }
        let conn = self.clone();
        self.core()
            .stream
            .flushed()
            .add_done_callback(move |_: &crate::Future<()>| {
                conn.waiting_for_drain.set(false);
                if !conn.core().detached.get() {
                    conn.core().stream.resume_read_hook();
                }
            });
    }

    /// Parses one request head from `buf`. `Err(status)`: answer with that
    /// status and close.
    ///
    /// `text`, if given, is a UTF-8 prefix of `buf` (perhaps all of it):
    /// header values within it need no check of their own.
    fn parse_head(&self, buf: &[u8], text: Option<&str>) -> Parsed {
        let core = self.core();
        let max_header = core.opts.max_header_size;
        // Tolerate blank lines between pipelined requests (RFC 9112 2.2).
        let skip = buf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        let buf = &buf[skip..];
        let text = text.and_then(|t| t.get(skip..));
        if buf.is_empty() {
            // Blank lines are the start of a head for the header timeout
            // (else a CRLF every few seconds holds a connection forever)
            // and count against its size.
            if skip > max_header {
                return Err(400);
            }
            if self.head_start.get().is_none() {
                self.head_start.set(Some(Instant::now()));
            }
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
        let mut request = core
            .spare
            .take()
            .unwrap_or_else(|| Box::new(HTTPServerRequest::empty(core.peer, core.stream.is_tls())));
        // The head is copied once, whole; the URI and the fields are ranges
        // of it. It is text: the request line and names are ASCII (httparse
        // checked). `text`, the batch's UTF-8 prefix, usually covers it;
        // past it the head is checked on its own. A head with bytes that are
        // not UTF-8 (obs-text: a Latin-1 `José`, which RFC 9110 5.5 allows)
        // takes the slow path: its text has them decoded as Latin-1 (as
        // Tornado decodes), offsets are mapped to the text's, and the bytes
        // are kept for `HTTPHeaders::get_bytes`.
        let at = |part: &[u8]| part.as_ptr() as usize - buf.as_ptr() as usize;
        let uri_at = at(uri.as_bytes());
        let fields = match text
            .and_then(|t| t.get(..n))
            .or_else(|| std::str::from_utf8(&buf[..n]).ok())
        {
            Some(head) => {
                request.headers.reset_to_block(head);
                request.uri = uri_at..uri_at + uri.len();
                scan_fields(
                    &mut request,
                    req.headers,
                    buf,
                    head,
                    |x| x,
                    None,
                    &self.host,
                )?
            }
            None => obs_text_head(
                &mut request,
                req.headers,
                &buf[..n],
                uri_at..uri_at + uri.len(),
            )?,
        };
        let Fields {
            length,
            host,
            chunked,
            continue_expected,
            close,
            keep_alive,
        } = fields;
        if version == Version::Http11 && !host {
            return Err(400);
        }
        let body = match (chunked, length) {
            (true, Some(_)) => return Err(400),
            (true, None) => Some(Body::Chunked),
            (false, Some(0)) | (false, None) => None,
            (false, Some(n)) => Some(Body::Length(n)),
        };
        let expect_continue = continue_expected && version == Version::Http11 && body.is_some();
        // Most paths are short: a plain scan beats memchr's set-up there.
        request.query_at = if uri.len() < 64 {
            uri.bytes().position(|b| b == b'?')
        } else {
            memchr::memchr(b'?', uri.as_bytes())
        }
        .unwrap_or(uri.len());
        request.method = Method::parse(method);
        request.version = version;
        // `remote` is already the peer's: the request was made for this
        // connection (`HTTPServerRequest::empty(self.peer)`) and stays with it.
        request.keep_alive = match version {
            Version::Http11 => !close,
            Version::Http10 => keep_alive,
        };
        if core.opts.xheaders {
            request.real_ip = super::request::forwarded_ip(&request.headers);
            request.forwarded_https = super::request::forwarded_https(&request.headers);
        }
        Ok(Some((skip + n, request, body, expect_continue)))
    }

    fn on_stream_closed(&self) {
        self.disarm();
        let core = self.core();
        core.phase.set(Phase::Done);
        let message = self.message.take();
        if let Some(mut message) = message {
            // The client left (or was sent away) before its answer.
            if core.answering() && !core.detached.get() {
                message.on_connection_close();
            }
        }
        let idle = self.idle.take();
        drop(idle);
    }

    // ----- timeouts ----------------------------------------------------------

    /// Ticks per idle timeout: a connection is closed after between
    /// `idle_timeout` and 1.25 times that with nothing happening.
    const TICKS: u32 = 4;

    /// The timer's period: a quarter of the shorter timeout. One timer per
    /// connection, re-armed every tick, never per request: requests only
    /// set the `active` flag.
    fn tick_period(&self) -> std::time::Duration {
        let opts = &self.core().opts;
        (opts
            .idle_timeout
            .min(opts.header_timeout)
            .min(opts.body_timeout)
            / Self::TICKS)
            .max(std::time::Duration::from_millis(1))
    }

    fn arm(&self) {
        let weak: Weak<Conn<D>> = self.me.clone();
        let io_loop = self.core().stream.io_loop();
        let handle = io_loop.call_later(self.tick_period(), move || {
            if let Some(conn) = weak.upgrade() {
                conn.timer.set(None);
                conn.on_tick();
            }
        });
        if let Some(old) = self.timer.replace(Some(handle)) {
            io_loop.remove_timeout(old);
        }
    }

    fn disarm(&self) {
        if let Some(handle) = self.timer.take() {
            self.core().stream.io_loop().remove_timeout(handle);
        }
    }

    fn on_tick(&self) {
        let core = self.core();
        if core.stream.closed() || core.close_scheduled() || core.detached.get() {
            return;
        }
        let (busy, reading_head) = match core.phase.get() {
            Phase::Busy => (true, false),
            Phase::Head => (false, true),
            Phase::Body(..) | Phase::Done => (false, false),
        };
        if matches!(core.phase.get(), Phase::Body(..)) {
            if self.body_too_slow() {
                log::debug!("408 for {}: body timeout", core.peer);
                self.refuse(408);
                return;
            }
        } else if self.body_clock.take().is_some() {
            self.body_bytes.set(0);
        }
        // A request head that takes too long, however steadily it trickles.
        let slow_head = reading_head
            && self
                .head_start
                .get()
                .is_some_and(|start| start.elapsed() >= core.opts.header_timeout);
        // A handler at work, or a delegate that paused the body, is not
        // idleness.
        if busy || self.paused.get() || self.active.replace(false) {
            self.quiet_ticks.set(0);
        } else {
            self.quiet_ticks.set(self.quiet_ticks.get() + 1);
            if self.quiet_ticks.get() == 1 && reading_head && self.head_start.get().is_none() {
                // Quiet between requests: hold no buffers while idle (the
                // read buffer alone is 4 KiB); a request allocates them
                // again. Not per request: that would cost the hot path.
                let freed = core.release_buffers();
                let idle = self.idle.take();
                let freed = freed || idle.is_some();
                drop(idle);
                if freed {
                    // glibc keeps what was freed: many of these make a trim.
                    crate::tcpserver::note_idle_release();
                }
            }
        }
        let idle = u128::from(self.quiet_ticks.get()) * self.tick_period().as_nanos()
            >= core.opts.idle_timeout.as_nanos();
        if slow_head || idle {
            log::debug!(
                "closing connection from {}: {}",
                core.peer,
                if slow_head {
                    "header timeout"
                } else {
                    "idle timeout"
                }
            );
            core.stream.close();
        } else {
            self.arm();
        }
    }
}

impl<D: HTTPServerConnectionDelegate> Conn<D> {
    /// Whether the body being read is past its time: the body timeout plus
    /// a second per `body_min_rate` bytes received, not counting time it
    /// was paused. Its clock starts at the first tick that sees it (within
    /// a tick of its start), so a request costs no clock reading.
    fn body_too_slow(&self) -> bool {
        let opts = &self.core().opts;
        let Some((start, mut held)) = self.body_clock.get() else {
            self.body_clock.set(Some((Instant::now(), Duration::ZERO)));
            return false;
        };
        if self.paused.get() {
            held += self.tick_period();
            self.body_clock.set(Some((start, held)));
            return false;
        }
        let earned = match opts.body_min_rate {
            0 => Duration::ZERO,
            rate => Duration::from_secs_f64(self.body_bytes.get() as f64 / rate as f64),
        };
        start.elapsed().saturating_sub(held) > opts.body_timeout + earned
    }
}

impl<D: HTTPServerConnectionDelegate> Reader for Conn<D> {
    fn response_done(&self) {
        // Finished outside the read hook: the message is done with, unless
        // its body is still coming (the connection closes then anyway).
        let core = self.core();
        if !matches!(core.phase.get(), Phase::Body(_)) {
            let message = self.message.take();
            drop(message);
        }
        if !core.closing.get() {
            self.active.set(true);
            // Pipelined requests may be waiting in the buffer.
            core.stream.resume_read_hook();
        }
    }

    fn detached(&self) {
        self.disarm();
        self.paused.set(false);
        let message = self.message.take();
        drop(message);
        let idle = self.idle.take();
        drop(idle);
    }
}

/// What a head's fields say of its framing.
struct Fields {
    length: Option<u64>,
    host: bool,
    chunked: bool,
    continue_expected: bool,
    /// The first `Connection` value says `close`.
    close: bool,
    /// The first `Connection` value says `keep-alive`.
    keep_alive: bool,
}

/// Names `headers` (httparse's, over `buf`) in `request.headers`, whose
/// text is `head`, and reads the few that frame the request. `pos` takes an
/// offset in `buf` to one in `head` (the identity but for a decoded
/// obs-text head, whose value ranges in `buf` go to `raw`). Generic so that
/// the usual head's path has no mapping at all. `Err(status)` refuses it.
#[inline(always)]
fn scan_fields(
    request: &mut HTTPServerRequest,
    headers: &[httparse::Header<'_>],
    buf: &[u8],
    head: &str,
    pos: impl Fn(usize) -> usize,
    mut raw: Option<&mut Vec<(u32, u32)>>,
    hosts: &HostCache,
) -> Result<Fields, u16> {
    let at = |part: &[u8]| part.as_ptr() as usize - buf.as_ptr() as usize;
    let mut f = Fields {
        length: None,
        host: false,
        chunked: false,
        continue_expected: false,
        close: false,
        keep_alive: false,
    };
    let mut connection_seen = false;
    for h in headers {
        let name = h.name;
        let (ns, vs) = (at(name.as_bytes()), at(h.value));
        let value_range = pos(vs)..pos(vs + h.value.len());
        if let Some(raw) = raw.as_mut() {
            raw.push((vs as u32, (vs + h.value.len()) as u32));
        }
        // At char boundaries: see `push_within`.
        request
            .headers
            .push_within(pos(ns)..pos(ns + name.len()), value_range.clone());
        // Five names matter here; their lengths rule most headers out
        // without a comparison (or a look at the value).
        if !matches!(name.len(), 4 | 6 | 10 | 14 | 17) {
            continue;
        }
        let value = head.get(value_range).unwrap_or_default();
        if name.len() == 4 {
            if is_host(name.as_bytes()) {
                // One Host, and a valid one (RFC 9112 3.2): a second one is
                // a smuggling attempt or a broken proxy.
                if f.host || !hosts.valid(value) {
                    return Err(400);
                }
                f.host = true;
            }
        } else if name.len() == 10 {
            // The first one, as `HTTPHeaders::get` would give.
            if !connection_seen && name.eq_ignore_ascii_case("connection") {
                connection_seen = true;
                f.close = httputil::has_token(value, "close");
                f.keep_alive = httputil::has_token(value, "keep-alive");
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            // `1*DIGIT` only (RFC 9110 8.6): no sign, no inner blanks.
            let Ok(n) = httputil::parse_content_length(value) else {
                return Err(400);
            };
            if f.length.is_some_and(|l| l != n) {
                return Err(400);
            }
            f.length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only `chunked` is understood, once, and last.
            if f.chunked {
                return Err(400);
            }
            if !value.trim().eq_ignore_ascii_case("chunked") {
                return Err(if has_chunked_twice(value) { 400 } else { 501 });
            }
            f.chunked = true;
        } else if name.eq_ignore_ascii_case("expect") {
            if value.trim().eq_ignore_ascii_case("100-continue") {
                f.continue_expected = true;
            } else {
                return Err(417);
            }
        }
    }
    Ok(f)
}

/// The slow path of `parse_head`, out of line: a head with bytes that are
/// not UTF-8, decoded (see `decode_obs_text`), its fields named in the
/// decoded text, and their values kept as they came.
#[inline(never)]
#[cold]
fn obs_text_head(
    request: &mut HTTPServerRequest,
    headers: &[httparse::Header<'_>],
    head: &[u8],
    uri: std::ops::Range<usize>,
) -> Result<Fields, u16> {
    let (text, map) = decode_obs_text(head);
    let pos = |x: usize| map[x] as usize;
    request.headers.reset_to_block(&text);
    request.uri = pos(uri.start)..pos(uri.end);
    let mut raw = Vec::new();
    // A head like this one is rare: no cache for its Host.
    let host = HostCache::default();
    let fields = scan_fields(request, headers, head, &text, pos, Some(&mut raw), &host)?;
    request.headers.keep_raw(head, raw);
    Ok(fields)
}

/// `head` as text, with each byte that is not part of UTF-8 decoded as
/// Latin-1; and for each offset in `head` (and its end), the offset in the
/// text.
fn decode_obs_text(head: &[u8]) -> (String, Vec<u32>) {
    let mut text = String::with_capacity(head.len() + 16);
    let mut map = Vec::with_capacity(head.len() + 1);
    let mut rest = head;
    while !rest.is_empty() {
        let (valid, bad) = match std::str::from_utf8(rest) {
            Ok(all) => (all, 0),
            Err(e) => {
                let valid = std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap_or_default();
                (valid, e.error_len().unwrap_or(rest.len() - e.valid_up_to()))
            }
        };
        for (i, _) in valid.bytes().enumerate() {
            map.push((text.len() + i) as u32);
        }
        text.push_str(valid);
        for &b in &rest[valid.len()..valid.len() + bad] {
            map.push(text.len() as u32);
            text.push(char::from(b));
        }
        rest = &rest[valid.len() + bad..];
    }
    map.push(text.len() as u32);
    (text, map)
}

/// The last `Host` value a connection found valid, for [`valid_host`]
/// without the byte-by-byte check: a keep-alive client sends the same value
/// with every request, and comparing the whole of it with the last one is
/// cheaper. Exact: only a value equal, byte for byte, to one that passed
/// the check skips it. Values longer than the buffer are always checked.
#[derive(Default)]
struct HostCache(Cell<HostBytes>);

/// A `Host` value of up to 30 bytes, and its length.
#[derive(Clone, Copy, Default)]
struct HostBytes([u8; 30], u8);

impl HostCache {
    #[inline]
    fn valid(&self, value: &str) -> bool {
        let value = value.as_bytes();
        let HostBytes(bytes, len) = self.0.get();
        if bytes
            .get(..usize::from(len))
            .is_some_and(|last| same_short(last, value))
        {
            return true;
        }
        self.check(value)
    }

    /// A value not the same as the last: checked, and kept if it passes.
    #[inline(never)]
    fn check(&self, value: &[u8]) -> bool {
        if !valid_host(value) {
            return false;
        }
        let mut bytes = [0; 30];
        if let Some(slot) = bytes.get_mut(..value.len()) {
            slot.copy_from_slice(value);
            self.0.set(HostBytes(bytes, value.len() as u8));
        }
        true
    }
}

/// Whether two byte strings are equal; for 8 to 16 bytes (a usual `Host`,
/// `127.0.0.1:8080`) with two overlapping 8-byte loads from each, rather
/// than a call into `memcmp`, which costs more than the comparison here.
#[inline]
fn same_short(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if !(8..=16).contains(&n) {
        return a == b;
    }
    let word = |s: &[u8], at: usize| {
        let mut w = [0; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_ne_bytes(w)
    };
    word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8)
}

/// Whether a `Host` value is `uri-host [":" port]` (RFC 3986's reg-name,
/// IPv4 or bracketed IP literal), or empty (allowed when the target has no
/// authority). Every request has one: a table lookup per byte, no search.
fn valid_host(host: &[u8]) -> bool {
    // An IP literal opens with the only `[` a host may have.
    let host = host.strip_prefix(b"[").unwrap_or(host);
    // No early exit: a branch-free pass over a short value is cheaper than
    // a test per byte.
    host.iter()
        .fold(true, |ok, &b| ok & HOST_BYTES[usize::from(b)])
}

/// Whether a four-byte header name is `Host`, in any case: one compare of
/// the bytes with their case bit set (exact for letters, and `host` is all
/// letters). Every request has one.
#[inline]
fn is_host(name: &[u8]) -> bool {
    <[u8; 4]>::try_from(name)
        .is_ok_and(|n| u32::from_le_bytes(n) | 0x2020_2020 == u32::from_le_bytes(*b"host"))
}

/// The bytes a `Host` value may hold after its first: unreserved,
/// sub-delims, `%`, `:`, and the `]` that closes an IP literal.
static HOST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let extra = b"-._~!$&'()*+,;=%:]";
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
};

/// Whether a `Transfer-Encoding` list names `chunked` more than once (a 400)
/// rather than another coding (a 501).
fn has_chunked_twice(value: &str) -> bool {
    value
        .split(',')
        .filter(|c| c.trim().eq_ignore_ascii_case("chunked"))
        .count()
        > 1
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

#[cfg(test)]
mod tests {
    use super::HostCache;

    /// The cache skips the check only for the very bytes that passed it.
    #[test]
    fn host_cache_skips_the_check_only_for_the_same_valid_value() {
        let hosts = HostCache::default();
        assert!(hosts.valid(""), "empty is allowed");
        assert!(hosts.valid("example.com:8080"));
        assert!(hosts.valid("example.com:8080"), "again, from the cache");
        for bad in [
            "example.com:8080/",
            "example.com:808 ",
            "exa mple.com",
            "a@b",
            "[::1][",
        ] {
            assert!(!hosts.valid(bad), "{bad:?}");
        }
        assert!(hosts.valid("example.com:8080"));
        assert!(
            hosts.valid("example.com:808"),
            "a prefix is checked, and valid"
        );
        let long = "a-rather-long-host-name.example.com:8080";
        assert!(long.len() > 30);
        assert!(hosts.valid(long), "too long to keep: checked each time");
        assert!(hosts.valid(long));
        assert!(!hosts.valid(&format!("{long}/")));
    }

    #[test]
    fn same_short_is_equality() {
        let words = [
            "",
            "a",
            "1234567",
            "12345678",
            "127.0.0.1",
            "127.0.0.1:8080",
            "0123456789abcdef",
            "0123456789abcdefg",
        ];
        for a in words {
            for b in words {
                assert_eq!(
                    super::same_short(a.as_bytes(), b.as_bytes()),
                    a == b,
                    "{a:?} {b:?}"
                );
            }
        }
        // A difference anywhere in 8 to 16 bytes is seen.
        let base = *b"0123456789abcdef";
        for n in 8..=16 {
            for i in 0..n {
                let mut other = base;
                other[i] ^= 1;
                assert!(!super::same_short(&base[..n], &other[..n]), "{n} {i}");
            }
        }
    }
}
