//! One HTTP/1.x connection's reading side: parses requests in place from
//! the stream's read buffer (a read hook, no future per request), hands
//! each to its delegate, and enforces the limits and timeouts. The response
//! side is [`HTTPConnection`] (connection.rs).
//!
//! Everything the hook produces in one call (the responses of every
//! pipelined request a synchronous delegate finished) goes out in one write.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use super::connection::{Body, Core, HTTPConnection, Phase, Reader};
use super::delegate::{HTTPMessageDelegate, HTTPServerConnectionDelegate};
use super::request::HTTPServerRequest;
use super::Options;
use crate::error::ErrorKind;
use crate::httputil::ChunkedDecoder;
use crate::ioloop::TimeoutHandle;
use crate::iostream::IOStream;

mod head;
mod refuse;
mod usual_head;
#[cfg(feature = "fuzzing")]
pub(crate) use usual_head::differential as usual_head_differential;

use head::HostCache;

/// Headers a request may have (more is a 431).
const MAX_HEADERS: usize = 100;

/// An uninitialised header slot for httparse: `[UninitSlot::NEW; N]` sets
/// up a head's slots without writing them. (An associated const, not an
/// inline `const { }` block: that needs Rust 1.79, and the MSRV is 1.75.)
struct UninitSlot<'h>(PhantomData<&'h ()>);

impl<'h> UninitSlot<'h> {
    const NEW: MaybeUninit<httparse::Header<'h>> = MaybeUninit::uninit();
}

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
    /// The body's end came while it was paused: the body completes when
    /// the pause ends.
    end_held: Cell<bool>,
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
            end_held: Cell::new(false),
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
                    match self.parse_head(&buf[used..]) {
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
                    if complete && self.paused.get() {
                        // The last piece came with the end, and the
                        // delegate is still at it: the end waits for it
                        // as the next piece would (Tornado awaits each
                        // `data_received` before finishing the request).
                        self.end_held.set(true);
                        return used;
                    }
                    if complete {
                        self.body_ended();
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
        if !matches!(core.phase.get(), Phase::Body(_)) {
            // Answered (or detached) already: the body is not read.
            self.keep_unless_finished(message);
            return;
        }
        // The delegate may not be ready for the body yet; then its limit
        // and the `100 Continue` wait too (Tornado reads the body, and
        // answers `Expect`, once `headers_received`'s future is done).
        let hold = message.hold_body().filter(|hold| !hold.done());
        self.message.set(Some(message));
        #[cfg(not(feature = "gzip"))]
        let gzipped = false;
        match hold {
            None => self.begin_body(body, gzipped, expect_continue, have),
            Some(hold) => self.begin_body_after(hold, body, gzipped, expect_continue),
        }
    }

    /// The body is to be read: its decoders made and its declared length
    /// checked against the limit the delegate left, and a client that
    /// asked told to send it (`have`: bytes of it here already).
    fn begin_body(self: &Rc<Self>, body: Body, gzipped: bool, expect_continue: bool, have: usize) {
        let core = self.core();
        let max = core.max_body_size.get();
        if let Body::Chunked = body {
            *self.decoder.borrow_mut() = Some(Box::new(ChunkedDecoder::new(max)));
        }
        #[cfg(feature = "gzip")]
        if gzipped {
            // The decoded body is held to the limit the delegate left.
            let decoder = super::gzip::RequestGunzip::new(max);
            self.gunzip.set(Some(Box::new(decoder)));
        }
        #[cfg(not(feature = "gzip"))]
        let _ = gzipped;
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

    /// [`begin_body`](Self::begin_body) once `hold` is done (the
    /// delegate's [`hold_body`](HTTPMessageDelegate::hold_body)); nothing
    /// of the body is read before. Out of line: the usual request is not
    /// held.
    #[cold]
    #[inline(never)]
    fn begin_body_after(
        self: &Rc<Self>,
        hold: crate::Future<()>,
        body: Body,
        gzipped: bool,
        expect_continue: bool,
    ) {
        self.paused.set(true);
        let conn = self.clone();
        hold.add_done_callback(move |_: &crate::Future<()>| {
            conn.paused.set(false);
            conn.active.set(true);
            let core = conn.core();
            if core.detached.get() {
                return;
            }
            // Not if the response was finished meanwhile: the body is not
            // read then, and the connection closes after the answer.
            if !core.closing.get() && matches!(core.phase.get(), Phase::Body(_)) {
                // (What came of the body waits in the buffer: the client
                // may not have waited for a `100 Continue`.)
                conn.begin_body(body, gzipped, expect_continue, 0);
                if !core.in_hook.get() {
                    core.flush_out();
                }
            }
            core.stream.resume_read_hook();
        });
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
            // Piece by piece while the delegate does not pause: each
            // piece waits for the last one's `data_received` future.
            let fed = gunzip.feed(chunk, &mut |piece| {
                self.deliver_plain(piece);
                !self.paused.get()
            });
            match fed {
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
            self.pause_until(wait);
        }
    }

    /// Reads no more of the body until `wait` is done (at once if it is).
    /// Out of line: the usual request never pauses.
    #[inline(never)]
    fn pause_until(self: &Rc<Self>, wait: crate::Future<()>) {
        if wait.done() {
            return;
        }
        self.paused.set(true);
        let conn = self.clone();
        wait.add_done_callback(move |_: &crate::Future<()>| {
            conn.paused.set(false);
            conn.active.set(true);
            let core = conn.core();
            // Not a stream handed over meanwhile: its hook is someone
            // else's now.
            if core.detached.get() {
                return;
            }
            // Decoded pieces of what was read, kept back for this pause.
            #[cfg(feature = "gzip")]
            if conn.gzip_kept_back() {
                conn.deliver(&[]);
                if conn.paused.get() {
                    // Paused again: that pause's end goes on from here.
                    return;
                }
            }
            // The end that came with the last piece (nothing is left to
            // read for it: the hook would not run).
            let held = conn.end_held.replace(false);
            if held && !core.closing.get() && matches!(core.phase.get(), Phase::Body(_)) {
                conn.body_ended();
            }
            core.stream.resume_read_hook();
        });
    }

    /// Whether a gzipped body's decoder keeps compressed bytes back for a
    /// pause that ended (see `RequestGunzip::feed`).
    #[cfg(feature = "gzip")]
    fn gzip_kept_back(&self) -> bool {
        let gunzip = self.gunzip.take();
        let kept = gunzip.as_ref().is_some_and(|g| g.has_rest());
        self.gunzip.set(gunzip);
        kept && !self.core().closing.get()
    }

    /// The body is read to its end: its clocks stopped, the delegate told.
    fn body_ended(self: &Rc<Self>) {
        self.body_clock.set(None);
        self.body_bytes.set(0);
        self.body_complete();
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
            if self.paused.get() {
                // Its last piece paused: the end waits for it.
                self.end_held.set(true);
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
        start.elapsed().saturating_sub(held) > opts.body_timeout.saturating_add(earned)
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
        self.end_held.set(false);
        let message = self.message.take();
        drop(message);
        let idle = self.idle.take();
        drop(idle);
    }
}
