//! The protocol after the handshake (RFC 6455 sections 5-7), the same for
//! both sides but for masking: frames in, messages out, pings answered, the
//! closing handshake, and every violation turned into the right close code.
//!
//! Reading is a read hook on the stream: frames are parsed where they lie
//! in the stream's buffer, and a frame is taken only once it is all there
//! (its length was checked against `max_message_size` from its header, so
//! waiting for it is bounded). While a handler's `on_message` future is
//! pending, the hook takes nothing more, and the next message waits, as in
//! Tornado 6.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use super::deflate::{Agreed, CompressionOptions, Deflater, InflateError, Inflater};
use super::frame::{self, Header, Opcode, Rules};
use super::utf8::Utf8Validator;
use super::{closed_error, CloseCode, Message, WebSocketOptions};
use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::http::HTTPServerRequest;
use crate::ioloop::TimeoutHandle;
use crate::iostream::IOStream;

/// Which end of the connection this is: a client masks what it sends and
/// reads unmasked frames; a server the other way round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Server,
    Client,
}

/// What `on_message` returns: `Ok(None)` when done with the message,
/// `Ok(Some(future))` to hold the next message back until the future is
/// done (Tornado 6's coroutine `on_message`), or an error (logged; the
/// connection is closed with 1011).
pub type Handled = Result<Option<Future<()>>, Error>;

/// The callbacks a connection makes: a server's handler, or a client's
/// message queue.
pub(crate) trait Events: 'static {
    fn on_message(&mut self, conn: &WebSocketConnection, message: Message) -> Handled;
    fn on_ping(&mut self, _conn: &WebSocketConnection, _data: &[u8]) {}
    fn on_pong(&mut self, _conn: &WebSocketConnection, _data: &[u8]) {}
    fn on_close(&mut self, _conn: &WebSocketConnection) {}
    /// A server's `open`, before any message is read.
    fn open(
        &mut self,
        _conn: &WebSocketConnection,
        _request: &HTTPServerRequest,
    ) -> Result<(), Error> {
        Ok(())
    }
}

/// One WebSocket connection, either side: what handlers and clients write
/// through. A cheap-to-clone handle.
#[derive(Clone)]
pub struct WebSocketConnection {
    core: Rc<Core>,
}

struct Core {
    stream: IOStream,
    side: Side,
    options: WebSocketOptions,
    subprotocol: Option<String>,
    /// permessage-deflate, when agreed: (ours, theirs).
    deflate: Option<RefCell<(Deflater, Inflater)>>,
    st: RefCell<State>,
    /// Taken out while a callback runs: never borrowed across user code.
    events: RefCell<Option<Box<dyn Events>>>,
}

#[derive(Default)]
struct State {
    /// The message being assembled: its kind and the bytes so far.
    message: Option<(Kind, Vec<u8>)>,
    utf8: Utf8Validator,
    /// An `on_message` future is pending: take no more frames.
    paused: bool,
    close_sent: bool,
    close_received: bool,
    /// The close code and reason the peer sent (Tornado's `close_code`,
    /// `close_reason`).
    close_code: Option<u16>,
    close_reason: Option<String>,
    /// The peer broke the protocol: nothing more is read.
    failed: bool,
    /// `on_close` has run.
    reported: bool,
    close_timer: Option<TimeoutHandle>,
    ping_timer: Option<TimeoutHandle>,
    /// When the oldest ping still without a pong was sent.
    unanswered_since: Option<Instant>,
}

impl WebSocketConnection {
    /// Starts the protocol on a stream whose handshake is done.
    pub(crate) fn start(
        stream: IOStream,
        side: Side,
        options: WebSocketOptions,
        subprotocol: Option<String>,
        deflate: Option<(Agreed, CompressionOptions)>,
        events: Box<dyn Events>,
    ) -> Result<WebSocketConnection, Error> {
        // Each side resets its own compressor, and its reader of the
        // other's, as the agreed parameters say.
        let deflate = deflate.map(|(agreed, compression)| {
            let (ours, theirs) = match side {
                Side::Server => (
                    agreed.server_no_context_takeover,
                    agreed.client_no_context_takeover,
                ),
                Side::Client => (
                    agreed.client_no_context_takeover,
                    agreed.server_no_context_takeover,
                ),
            };
            RefCell::new((Deflater::new(compression, ours), Inflater::new(theirs)))
        });
        // A whole frame waits in the stream's buffer: room for the largest.
        stream.set_max_buffer_size(options.max_message_size.saturating_add(64 * 1024));
        let conn = WebSocketConnection {
            core: Rc::new(Core {
                stream: stream.clone(),
                side,
                options,
                subprotocol,
                deflate,
                st: RefCell::new(State::default()),
                events: RefCell::new(Some(events)),
            }),
        };
        let me = conn.clone();
        stream.set_close_callback(move || me.on_stream_closed());
        Ok(conn)
    }

    /// Starts reading frames (those already buffered first) and pinging.
    pub(crate) fn begin(&self) -> Result<(), Error> {
        let me = self.clone();
        self.core
            .stream
            .set_read_hook(move |buf: &[u8], _eof: bool| me.on_bytes(buf))?;
        self.schedule_ping();
        Ok(())
    }

    /// A server's `open`, then reading. A failed `open` closes the
    /// connection with 1011.
    pub(crate) fn open_with(&self, request: &HTTPServerRequest) -> Result<(), Error> {
        let opened = self.with_events(|events, conn| events.open(conn, request));
        if let Some(Err(err)) = opened {
            log::error!("WebSocket open failed: {err}");
            self.close_with(CloseCode::INTERNAL_ERROR.0, "internal error");
            return Err(err);
        }
        self.begin()
    }

    // ----- reading ---------------------------------------------------------

    fn rules(&self) -> Rules {
        Rules {
            masked: self.core.side == Side::Server,
            rsv1_allowed: self.core.deflate.is_some(),
            max_len: self.core.options.max_message_size as u64,
        }
    }

    /// The read hook: every whole frame in `buf`, until a handler pauses
    /// the connection. Returns the bytes taken.
    fn on_bytes(&self, buf: &[u8]) -> usize {
        let rules = self.rules();
        let mut used = 0;
        loop {
            {
                let st = self.core.st.borrow();
                if st.paused || st.failed || st.close_received {
                    // Paused: the rest waits. Closing: what follows a close
                    // frame is nothing (section 5.5.1); drop it.
                    return if st.paused { used } else { buf.len() };
                }
            }
            let header = match frame::parse(&buf[used..], &rules) {
                Ok(Some(header)) => header,
                Ok(None) => return used,
                Err(err) => {
                    self.fail(err.code, err.reason);
                    return buf.len();
                }
            };
            let end = header.header_len + header.len as usize;
            if buf.len() - used < end {
                return used; // the rest of the frame is on its way
            }
            let mut payload = buf[used + header.header_len..used + end].to_vec();
            if let Some(key) = header.mask {
                frame::apply_mask(&mut payload, key, 0);
            }
            used += end;
            self.on_frame(header, payload);
        }
    }

    fn on_frame(&self, header: Header, payload: Vec<u8>) {
        match header.opcode {
            Opcode::Text | Opcode::Binary => {
                if self.core.st.borrow().message.is_some() {
                    return self.fail(CloseCode::PROTOCOL, "a new message inside a fragmented one");
                }
                let kind = Kind {
                    text: header.opcode == Opcode::Text,
                    compressed: header.rsv1,
                };
                self.add_fragment(kind, payload, header.fin, true);
            }
            Opcode::Continuation => {
                if header.rsv1 {
                    // RFC 7692 6.1: only a message's first frame says so.
                    return self.fail(CloseCode::PROTOCOL, "RSV1 on a continuation frame");
                }
                let kind = self
                    .core
                    .st
                    .borrow()
                    .message
                    .as_ref()
                    .map(|(kind, _)| *kind);
                match kind {
                    Some(kind) => self.add_fragment(kind, payload, header.fin, false),
                    None => self.fail(CloseCode::PROTOCOL, "a continuation without a message"),
                }
            }
            Opcode::Ping => {
                if !self.core.st.borrow().close_sent {
                    let frame = self.frame(Opcode::Pong, &payload);
                    // A write that fails closes the stream, which this
                    // connection hears of: its future tells nothing more.
                    drop(self.core.stream.write(frame));
                }
                self.with_events(|events, conn| events.on_ping(conn, &payload));
            }
            Opcode::Pong => {
                self.core.st.borrow_mut().unanswered_since = None;
                self.with_events(|events, conn| events.on_pong(conn, &payload));
            }
            Opcode::Close => self.on_close_frame(&payload),
        }
    }

    /// Adds a data frame's payload to the message; delivers it on `fin`.
    fn add_fragment(&self, kind: Kind, payload: Vec<u8>, fin: bool, first: bool) {
        // Decided under the state's borrow, acted on after it.
        let step = self.assemble(kind, payload, fin, first);
        match step {
            Step::Wait => {}
            Step::Deliver(message) => self.deliver(message),
            Step::Fail(code, reason) => self.fail(code, reason),
        }
    }

    fn assemble(&self, kind: Kind, payload: Vec<u8>, fin: bool, first: bool) -> Step {
        let max = self.core.options.max_message_size;
        let mut st = self.core.st.borrow_mut();
        let st = &mut *st;
        // Compressed text is checked once inflated, not as it comes.
        let text = kind.text;
        if text && !kind.compressed && !st.utf8.feed(&payload) {
            st.message = None;
            return Step::Fail(CloseCode::INVALID_DATA, "invalid UTF-8");
        }
        let data = if first {
            payload
        } else {
            let mut data = st.message.take().map(|(_, d)| d).unwrap_or_default();
            if data.len() + payload.len() > max {
                return Step::Fail(CloseCode::TOO_BIG, "message too big");
            }
            data.extend_from_slice(&payload);
            data
        };
        if !fin {
            st.message = Some((kind, data));
            return Step::Wait;
        }
        let data = if kind.compressed {
            let inflated = match &self.core.deflate {
                Some(deflate) => deflate.borrow_mut().1.inflate(&data, max),
                None => Err(InflateError::Invalid), // RSV1 was refused already
            };
            match inflated {
                Ok(data) => data,
                Err(InflateError::TooBig) => {
                    return Step::Fail(CloseCode::TOO_BIG, "message too big")
                }
                Err(InflateError::Invalid) => {
                    return Step::Fail(CloseCode::INVALID_DATA, "invalid compressed data")
                }
            }
        } else {
            data
        };
        if !text {
            return Step::Deliver(Message::Binary(data));
        }
        if !kind.compressed && !st.utf8.finish() {
            return Step::Fail(CloseCode::INVALID_DATA, "invalid UTF-8");
        }
        match String::from_utf8(data) {
            Ok(text) => Step::Deliver(Message::Text(text)),
            Err(_) => Step::Fail(CloseCode::INVALID_DATA, "invalid UTF-8"),
        }
    }

    fn deliver(&self, message: Message) {
        let handled = self.with_events(|events, conn| events.on_message(conn, message));
        match handled {
            None | Some(Ok(None)) => {}
            Some(Ok(Some(future))) if future.done() => {
                if let Some(err) = future.error() {
                    self.handler_failed(&err);
                }
            }
            Some(Ok(Some(future))) => {
                self.core.st.borrow_mut().paused = true;
                let me = self.clone();
                future.add_done_callback(move |done: &Future<()>| {
                    me.core.st.borrow_mut().paused = false;
                    if let Some(err) = done.error() {
                        me.handler_failed(&err);
                    }
                    me.core.stream.resume_read_hook();
                });
            }
            Some(Err(err)) => self.handler_failed(&err),
        }
    }

    fn handler_failed(&self, err: &Error) {
        log::error!("WebSocket on_message failed: {err}");
        self.close_with(CloseCode::INTERNAL_ERROR.0, "internal error");
    }

    fn on_close_frame(&self, payload: &[u8]) {
        let (code, reason) = match payload.len() {
            0 => (None, None),
            1 => return self.fail(CloseCode::PROTOCOL, "a close frame of one byte"),
            _ => {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                if !CloseCode(code).may_be_received() {
                    return self.fail(CloseCode::PROTOCOL, "an invalid close code");
                }
                match std::str::from_utf8(&payload[2..]) {
                    Ok(reason) => (Some(code), Some(reason.to_string())),
                    Err(_) => {
                        return self
                            .fail(CloseCode::INVALID_DATA, "a close reason that is not UTF-8")
                    }
                }
            }
        };
        let reply = {
            let mut st = self.core.st.borrow_mut();
            st.close_received = true;
            st.close_code = code;
            st.close_reason = reason;
            !std::mem::replace(&mut st.close_sent, true)
        };
        if reply {
            // Echo the code, as Tornado does (none if none came).
            let body = code.map(|c| c.to_be_bytes().to_vec()).unwrap_or_default();
            let frame = self.frame(Opcode::Close, &body);
            drop(self.core.stream.write(frame));
        }
        self.closing_handshake_done();
    }

    /// Both close frames have been sent: the server closes the TCP
    /// connection once its frames are out (section 7.1.1: the server
    /// closes first); a client waits for that, for `close_timeout` at most.
    fn closing_handshake_done(&self) {
        match self.core.side {
            Side::Server => self.close_after_flush(),
            Side::Client => self.arm_close_timer(),
        }
    }

    fn close_after_flush(&self) {
        let stream = self.core.stream.clone();
        self.core
            .stream
            .flushed()
            .add_done_callback(move |_: &Future<()>| stream.close());
    }

    /// _Fail the WebSocket Connection_ (section 7.1.7): a close frame with
    /// `code` if none was sent, then the TCP connection closes.
    fn fail(&self, code: CloseCode, reason: &'static str) {
        log::debug!(
            "WebSocket peer broke the protocol: {reason} (closing with {})",
            code.0
        );
        let send = {
            let mut st = self.core.st.borrow_mut();
            st.failed = true;
            st.message = None;
            !std::mem::replace(&mut st.close_sent, true)
        };
        if send {
            let frame = self.frame(Opcode::Close, &close_body(code.0, reason));
            drop(self.core.stream.write(frame));
        }
        self.close_after_flush();
    }

    // ----- writing ---------------------------------------------------------

    /// A frame of `opcode` around `payload`, masked on a client.
    fn frame(&self, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
        self.frame_with(opcode, payload, false)
    }

    /// [`frame`](Self::frame), with RSV1 (a compressed message) if asked.
    fn frame_with(&self, opcode: Opcode, payload: &[u8], rsv1: bool) -> Vec<u8> {
        let mask = match self.core.side {
            Side::Client => {
                let mut key = [0u8; 4];
                super::handshake::random_bytes(&mut key);
                Some(key)
            }
            Side::Server => None,
        };
        let mut out = Vec::with_capacity(payload.len() + 14);
        frame::write_header(&mut out, true, rsv1, opcode, payload.len(), mask);
        let at = out.len();
        out.extend_from_slice(payload);
        if let Some(key) = mask {
            frame::apply_mask(&mut out[at..], key, 0);
        }
        out
    }

    /// Sends a message (text for a `&str` or `String`, binary for bytes);
    /// the future is done when it has been handed to the kernel. Fails with
    /// [`ErrorKind::WebSocketClosed`] once the connection is closing.
    pub fn write_message(&self, message: impl Into<Message>) -> Future<()> {
        if self.is_closing() {
            return Future::failed(closed_error());
        }
        match message.into() {
            Message::Text(text) => self.send_data(Opcode::Text, text.into_bytes()),
            Message::Binary(data) => self.send_data(Opcode::Binary, data),
        }
    }

    fn send_data(&self, opcode: Opcode, payload: Vec<u8>) -> Future<()> {
        let (payload, rsv1) = match &self.core.deflate {
            Some(deflate) => (deflate.borrow_mut().0.compress(&payload), true),
            None => (payload, false),
        };
        // A server's large payload goes out as it is, behind its header: no
        // copy. Everything else is one buffer (one write).
        if self.core.side == Side::Server && payload.len() >= 16 * 1024 {
            let mut head = Vec::with_capacity(10);
            frame::write_header(&mut head, true, rsv1, opcode, payload.len(), None);
            drop(self.core.stream.write(head));
            return self.core.stream.write(payload);
        }
        self.core
            .stream
            .write(self.frame_with(opcode, &payload, rsv1))
    }

    /// Sends a ping (at most 125 bytes of data); the peer answers with a
    /// pong (`on_pong`).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for more than 125 bytes,
    /// [`ErrorKind::WebSocketClosed`] once closing.
    pub fn ping(&self, data: &[u8]) -> Result<(), Error> {
        if data.len() > 125 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "a ping carries at most 125 bytes",
            ));
        }
        if self.is_closing() {
            return Err(closed_error());
        }
        drop(self.core.stream.write(self.frame(Opcode::Ping, data)));
        Ok(())
    }

    /// Starts the closing handshake: sends a close frame with no status
    /// code, then waits for the peer's for `close_timeout` before closing
    /// the connection (Tornado's `close()`). Harmless twice.
    pub fn close(&self) {
        self.close_frame(None, "");
    }

    /// [`close`](Self::close) with Tornado's `code` and `reason` (at most
    /// 123 bytes, cut at a character boundary): `close(code=4000,
    /// reason="bye")` is `close_with(4000, "bye")`.
    pub fn close_with(&self, code: u16, reason: &str) {
        self.close_frame(Some(code), reason);
    }

    fn close_frame(&self, code: Option<u16>, reason: &str) {
        let received = {
            let mut st = self.core.st.borrow_mut();
            if std::mem::replace(&mut st.close_sent, true) {
                return;
            }
            st.close_received
        };
        let body = match code {
            Some(code) => close_body(code, reason),
            None => Vec::new(),
        };
        let frame = self.frame(Opcode::Close, &body);
        drop(self.core.stream.write(frame));
        if received {
            self.closing_handshake_done();
        } else {
            self.arm_close_timer();
        }
    }

    /// Closes the TCP connection if the peer has not by `close_timeout`.
    fn arm_close_timer(&self) {
        if self.core.st.borrow().close_timer.is_some() {
            return;
        }
        let stream = self.core.stream.clone();
        let handle = self
            .core
            .stream
            .io_loop()
            .call_later(self.core.options.close_timeout, move || stream.close());
        self.core.st.borrow_mut().close_timer = Some(handle);
    }

    /// Whether a close frame was sent (by either `close` or a reply): no
    /// more messages go out.
    pub fn is_closing(&self) -> bool {
        self.core.st.borrow().close_sent || self.core.stream.closed()
    }

    /// The close code the peer sent, once it did (Tornado's `close_code`).
    pub fn close_code(&self) -> Option<u16> {
        self.core.st.borrow().close_code
    }

    /// The close reason the peer sent (Tornado's `close_reason`).
    pub fn close_reason(&self) -> Option<String> {
        self.core.st.borrow().close_reason.clone()
    }

    /// The subprotocol agreed in the handshake, if any.
    pub fn selected_subprotocol(&self) -> Option<&str> {
        self.core.subprotocol.as_deref()
    }

    /// The underlying stream.
    pub fn stream(&self) -> &IOStream {
        &self.core.stream
    }

    // ----- keeping alive, and the end --------------------------------------

    /// Pings every `ping_interval`; closes a peer that has not answered the
    /// last ping within `ping_timeout`.
    fn schedule_ping(&self) {
        let Some(interval) = self.core.options.ping_interval else {
            return;
        };
        let weak = Rc::downgrade(&self.core);
        let handle = self.core.stream.io_loop().call_later(interval, move || {
            let Some(core) = weak.upgrade() else { return };
            let conn = WebSocketConnection { core };
            conn.core.st.borrow_mut().ping_timer = None;
            if conn.is_closing() {
                return;
            }
            let now = conn.core.stream.io_loop().time();
            let timeout = conn.core.options.ping_timeout.unwrap_or(interval);
            // A ping has waited `timeout` for its pong: the peer is gone.
            let since = conn.core.st.borrow().unanswered_since;
            if since.is_some_and(|t| now.duration_since(t) >= timeout) {
                log::debug!("WebSocket peer did not answer a ping within {timeout:?}: closing");
                conn.close_with(CloseCode::GOING_AWAY.0, "ping timed out");
                return;
            }
            let _ = conn.ping(b"");
            conn.core
                .st
                .borrow_mut()
                .unanswered_since
                .get_or_insert(now);
            conn.schedule_ping();
        });
        self.core.st.borrow_mut().ping_timer = Some(handle);
    }

    fn on_stream_closed(&self) {
        let timers = {
            let mut st = self.core.st.borrow_mut();
            if std::mem::replace(&mut st.reported, true) {
                return;
            }
            [st.close_timer.take(), st.ping_timer.take()]
        };
        for timer in timers.into_iter().flatten() {
            self.core.stream.io_loop().remove_timeout(timer);
        }
        self.with_events(|events, conn| events.on_close(conn));
        // The handler may hold this connection: let it go.
        let events = self.core.events.borrow_mut().take();
        drop(events);
    }

    /// Runs `f` with the events taken out (no borrow across user code).
    /// `None` if they are out already (a callback re-entered) or gone.
    fn with_events<R>(
        &self,
        f: impl FnOnce(&mut dyn Events, &WebSocketConnection) -> R,
    ) -> Option<R> {
        let mut events = self.core.events.borrow_mut().take()?;
        let result = f(&mut *events, self);
        let mut slot = self.core.events.borrow_mut();
        if slot.is_none() && !self.core.st.borrow().reported {
            *slot = Some(events);
        } else {
            drop(slot);
            drop(events);
        }
        Some(result)
    }
}

/// A close frame's body: the code, then the reason cut to fit 125 bytes at
/// a character boundary.
fn close_body(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(&reason.as_bytes()[..end]);
    body
}

/// A message's kind, from its first frame.
#[derive(Clone, Copy, Debug)]
struct Kind {
    text: bool,
    /// RSV1 under permessage-deflate.
    compressed: bool,
}

/// What a data frame leads to.
enum Step {
    /// More fragments to come.
    Wait,
    Deliver(Message),
    Fail(CloseCode, &'static str),
}
