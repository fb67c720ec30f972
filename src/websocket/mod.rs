//! WebSocket (RFC 6455), server and client: Tornado's `tornado.websocket`.
//!
//! A server answers an upgrade request with [`accept`] and a
//! [`WebSocketHandler`]; a client connects with [`websocket_connect`]:
//!
//! ```
//! use squall::netutil::BindOptions;
//! use squall::http::{HTTPConnection, HTTPServer, HTTPServerRequest};
//! use squall::websocket::{self, Handled, Message, WebSocketConnection, WebSocketHandler};
//! use squall::IOLoop;
//!
//! /// Tornado's EchoWebSocket.
//! struct Echo;
//! impl WebSocketHandler for Echo {
//!     fn on_message(&mut self, ws: &WebSocketConnection, message: Message) -> Handled {
//!         ws.write_message(message);
//!         Ok(None)
//!     }
//! }
//!
//! let io_loop = IOLoop::new()?;
//! let reply = io_loop.run_sync(|| {
//!     let server = HTTPServer::new(|req: &HTTPServerRequest, conn: &HTTPConnection| {
//!         websocket::accept(req, conn, Echo, Default::default()).map(drop)
//!     });
//!     server.listen_with(0, BindOptions::new().address("127.0.0.1")).expect("listening");
//!     let url = format!("ws://127.0.0.1:{}/echo", server.local_addrs()[0].port());
//!     let reply = squall::Future::new();
//!     let r = reply.clone();
//!     websocket::websocket_connect(url).add_done_callback(move |ws: &squall::Future<_>| {
//!         let ws: websocket::WebSocketClientConnection = ws.take_result()?;
//!         ws.write_message("hello");
//!         squall::chain_future(&ws.read_message(), &r);
//!         Ok(())
//!     });
//!     reply
//! }, None)?;
//! assert_eq!(reply, Some(Message::Text("hello".into())));
//! # Ok::<(), squall::Error>(())
//! ```
//!
//! # What is checked
//! Everything RFC 6455 asks of a receiver: masking by direction (a server
//! refuses unmasked frames, a client masked ones), reserved bits and
//! opcodes, control frames (at most 125 bytes, never fragmented, allowed
//! between the fragments of a message), fragmentation, UTF-8 of text
//! messages (as it arrives, failing at the first impossible byte) and of
//! close reasons, close codes. A violation closes the connection with 1002
//! (protocol), 1007 (invalid data) or 1009 (too big: a message over
//! `max_message_size`, decided from the frame header, before its payload
//! is read). Nothing is allocated for a declared length: buffers grow with
//! the bytes that arrive.
//!
//! permessage-deflate (RFC 7692) is used when a handler's
//! `get_compression_options` (or a client's `compression_options`) asks
//! for it and the peer agrees; a compressed message is inflated only up to
//! `max_message_size`.

mod client;
mod deflate;
mod frame;
#[cfg(feature = "stackful")]
mod green;
mod handshake;
mod protocol;
mod server;
mod utf8;

use std::time::Duration;

pub use client::{
    websocket_connect, websocket_connect_with, ConnectOptions, WebSocketClientConnection,
};
pub use deflate::CompressionOptions;
#[cfg(feature = "stackful")]
pub use green::GreenWebSocket;
pub use protocol::{Handled, WebSocketConnection};
pub use server::{accept, handler, handler_with, Upgrade, WebSocketHandler};

use crate::error::{Error, ErrorKind};

/// A complete message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message: valid UTF-8.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl Message {
    /// The message's bytes (text as UTF-8).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(data) => data,
        }
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Message {
        Message::Text(text.to_string())
    }
}
impl From<String> for Message {
    fn from(text: String) -> Message {
        Message::Text(text)
    }
}
impl From<Vec<u8>> for Message {
    fn from(data: Vec<u8>) -> Message {
        Message::Binary(data)
    }
}
impl From<&[u8]> for Message {
    fn from(data: &[u8]) -> Message {
        Message::Binary(data.to_vec())
    }
}

/// A close status code (RFC 6455 section 7.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection is fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: going away (a server shutting down, a page left).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL: CloseCode = CloseCode(1002);
    /// 1003: a kind of data this end cannot accept.
    pub const UNSUPPORTED: CloseCode = CloseCode(1003);
    /// 1007: data inconsistent with its type (text that is not UTF-8).
    pub const INVALID_DATA: CloseCode = CloseCode(1007);
    /// 1008: a policy was violated.
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: a message too big to process.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);

    /// Whether a peer may send this code in a close frame: 1000-1003,
    /// 1007-1014 (1004-1006 and 1015 are reserved, never sent), and the
    /// ranges for libraries and applications, 3000-4999.
    pub fn may_be_received(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

/// Settings of a connection, either side (Tornado's application settings
/// `websocket_ping_interval`, `websocket_ping_timeout`,
/// `websocket_max_message_size`, and `websocket_connect`'s arguments).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WebSocketOptions {
    /// The largest message accepted (10 MiB, as Tornado): a larger one
    /// closes the connection with 1009.
    pub max_message_size: usize,
    /// Send a ping this often (default: never).
    pub ping_interval: Option<Duration>,
    /// Close a peer that has not answered a ping within this (default: the
    /// ping interval).
    pub ping_timeout: Option<Duration>,
    /// How long to wait for the peer's close frame (or, on a client, for
    /// the server to close the TCP connection) after ours: 5 s, as Tornado.
    pub close_timeout: Duration,
}

impl Default for WebSocketOptions {
    fn default() -> WebSocketOptions {
        WebSocketOptions {
            max_message_size: 10 * 1024 * 1024,
            ping_interval: None,
            ping_timeout: None,
            close_timeout: Duration::from_secs(5),
        }
    }
}

impl WebSocketOptions {
    /// The defaults.
    pub fn new() -> WebSocketOptions {
        WebSocketOptions::default()
    }

    /// Sets `max_message_size`.
    pub fn max_message_size(mut self, max: usize) -> WebSocketOptions {
        self.max_message_size = max;
        self
    }

    /// Sets `ping_interval`.
    pub fn ping_interval(mut self, interval: Duration) -> WebSocketOptions {
        self.ping_interval = Some(interval);
        self
    }

    /// Sets `ping_timeout`.
    pub fn ping_timeout(mut self, timeout: Duration) -> WebSocketOptions {
        self.ping_timeout = Some(timeout);
        self
    }

    /// Sets `close_timeout`.
    pub fn close_timeout(mut self, timeout: Duration) -> WebSocketOptions {
        self.close_timeout = timeout;
        self
    }
}

/// Tornado's `WebSocketClosedError`.
fn closed_error() -> Error {
    Error::new(ErrorKind::WebSocketClosed, "the WebSocket is closed")
}
