//! A WebSocket client for straight-line code in a greenlet child (feature
//! `stackful`): each call waits inside the child while the loop runs on.

use super::{websocket_connect_with, ConnectOptions, Message, WebSocketClientConnection};
use crate::error::Error;
use crate::greenlet::wait;
use crate::httpclient::HTTPRequest;

/// [`WebSocketClientConnection`] with calls that return values: for code
/// running in a [`greenlet`](crate::greenlet) child, written as a blocking
/// client would be.
///
/// ```
/// use squall::netutil::BindOptions;
/// use squall::greenlet;
/// use squall::http::{HTTPConnection, HTTPServer, HTTPServerRequest};
/// use squall::websocket::{self, GreenWebSocket, Handled, Message, WebSocketConnection, WebSocketHandler};
/// use squall::IOLoop;
///
/// struct Echo;
/// impl WebSocketHandler for Echo {
///     fn on_message(&mut self, ws: &WebSocketConnection, message: Message) -> Handled {
///         ws.write_message(message);
///         Ok(None)
///     }
/// }
///
/// let io_loop = IOLoop::new()?;
/// let reply = io_loop.run_sync(|| {
///     let server = HTTPServer::new(|req: &HTTPServerRequest, conn: &HTTPConnection| {
///         websocket::accept(req, conn, Echo, Default::default()).map(drop)
///     });
///     server.listen_with(0, BindOptions::new().address("127.0.0.1")).expect("listening");
///     let url = format!("ws://127.0.0.1:{}/", server.local_addrs()[0].port());
///     greenlet::spawn(move || {
///         let ws = GreenWebSocket::connect(url.as_str())?;
///         ws.write_message("hello")?;
///         let reply = ws.read_message()?;
///         ws.close_with(1000, "");
///         Ok(reply)
///     })
/// }, None)?;
/// assert_eq!(reply, Some(Message::from("hello")));
/// # Ok::<(), squall::Error>(())
/// ```
#[derive(Clone)]
pub struct GreenWebSocket {
    conn: WebSocketClientConnection,
}

impl GreenWebSocket {
    /// Connects (Tornado's `websocket_connect`), waiting in the child.
    ///
    /// # Errors
    /// As [`websocket_connect`](super::websocket_connect); `NotInCoroutine`.
    pub fn connect(request: impl Into<HTTPRequest>) -> Result<GreenWebSocket, Error> {
        GreenWebSocket::connect_with(request, ConnectOptions::default())
    }

    /// Connects with subprotocols, compression and settings.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub fn connect_with(
        request: impl Into<HTTPRequest>,
        options: ConnectOptions,
    ) -> Result<GreenWebSocket, Error> {
        crate::greenlet::ensure_in_coroutine()?;
        let conn = wait(websocket_connect_with(request, options))?;
        Ok(GreenWebSocket { conn })
    }

    /// Sends a message and waits until it is handed to the kernel.
    ///
    /// # Errors
    /// `WebSocketClosed` once closing; the stream's error.
    pub fn write_message(&self, message: impl Into<Message>) -> Result<(), Error> {
        wait(self.conn.write_message(message))
    }

    /// The next message, or `None` once the connection is closed.
    ///
    /// # Errors
    /// `NotInCoroutine` outside a child.
    pub fn read_message(&self) -> Result<Option<Message>, Error> {
        wait(self.conn.read_message())
    }

    /// Starts the closing handshake (returns at once), with no status code.
    pub fn close(&self) {
        self.conn.close();
    }

    /// Starts the closing handshake with Tornado's `code` and `reason`
    /// ([`WebSocketConnection::close_with`](super::WebSocketConnection::close_with)).
    pub fn close_with(&self, code: u16, reason: &str) {
        self.conn.close_with(code, reason);
    }

    /// The future-returning connection underneath.
    pub fn connection(&self) -> &WebSocketClientConnection {
        &self.conn
    }
}
