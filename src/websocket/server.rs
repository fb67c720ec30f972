//! The server side: `WebSocketHandler` (Tornado's names) and [`accept`],
//! which answers an upgrade request and hands the connection to it.

use super::deflate::{self, CompressionOptions};
use super::handshake::{self, Refusal};
use super::protocol::{Events, Handled, Side, WebSocketConnection};
use super::{Message, WebSocketOptions};
use crate::error::Error;
use crate::http::{HTTPConnection, HTTPServerRequest};
use crate::httputil::HTTPHeaders;

/// What a WebSocket endpoint does: Tornado's `WebSocketHandler` methods.
/// Every method has a default but `on_message`.
pub trait WebSocketHandler: 'static {
    /// The connection is open (Tornado's `open`); messages may be sent.
    fn open(
        &mut self,
        _ws: &WebSocketConnection,
        _request: &HTTPServerRequest,
    ) -> Result<(), Error> {
        Ok(())
    }

    /// A message arrived. Return `Ok(Some(future))` to hold the next
    /// message back until the future is done (a coroutine `on_message` in
    /// Tornado 6); an error is logged and closes the connection with 1011.
    fn on_message(&mut self, ws: &WebSocketConnection, message: Message) -> Handled;

    /// A ping arrived (the pong is sent for you).
    fn on_ping(&mut self, _ws: &WebSocketConnection, _data: &[u8]) {}

    /// A pong arrived.
    fn on_pong(&mut self, _ws: &WebSocketConnection, _data: &[u8]) {}

    /// The connection closed, either side, cleanly or not; `ws.close_code()`
    /// and `close_reason()` say what the peer sent. Called once.
    fn on_close(&mut self, _ws: &WebSocketConnection) {}

    /// Whether to accept a browser's cross-origin request: by default only
    /// the same origin (the `Origin`'s host is the request's `Host`), as
    /// Tornado; a request without `Origin` (not a browser) is accepted.
    /// Refused: 403.
    fn check_origin(&self, origin: &str, request: &HTTPServerRequest) -> bool {
        same_origin(origin, request.host())
    }

    /// Whether to offer permessage-deflate compression, and how (Tornado's
    /// `get_compression_options`; default `None`: no compression).
    fn get_compression_options(&self) -> Option<CompressionOptions> {
        None
    }

    /// Picks one of the subprotocols the client offered (in its order), or
    /// none (Tornado's `select_subprotocol`).
    fn select_subprotocol(&self, _subprotocols: &[String]) -> Option<String> {
        None
    }
}

/// Tornado's default `check_origin`: the origin's host (and port) is the
/// `Host` the request was sent to.
fn same_origin(origin: &str, host: &str) -> bool {
    let origin = origin.trim().to_ascii_lowercase();
    let netloc = origin
        .split_once("://")
        .map_or(origin.as_str(), |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or("");
    !netloc.is_empty() && netloc == host.trim().to_ascii_lowercase()
}

/// Answers a WebSocket upgrade request on `conn` and runs `handler` on the
/// connection: checks the request (bad upgrades get 400, a wrong version
/// 426, a refused origin 403, a method other than GET 405), sends `101
/// Switching Protocols`, takes the stream over and calls `open`. Returns
/// the connection, or `None` when the request was refused (the refusal was
/// answered).
///
/// # Errors
/// If the answer cannot be written (the client went away) or `open` fails
/// (the connection is then closed with 1011).
pub fn accept(
    request: &HTTPServerRequest,
    conn: &HTTPConnection,
    handler: impl WebSocketHandler,
    options: WebSocketOptions,
) -> Result<Option<WebSocketConnection>, Error> {
    let headers = request.headers();
    let key = match handshake::check_request(request.method(), headers) {
        Ok(key) => key,
        Err(refusal) => return refuse(conn, refusal).map(|()| None),
    };
    if let Some(origin) = headers.get("Origin") {
        if !handler.check_origin(origin, request) {
            return refuse(
                conn,
                Refusal {
                    status: 403,
                    message: "Cross origin websockets not allowed",
                },
            )
            .map(|()| None);
        }
    }
    let offered = handshake::list(headers, "Sec-WebSocket-Protocol");
    let subprotocol = if offered.is_empty() {
        None
    } else {
        handler.select_subprotocol(&offered)
    };
    let mut answer = HTTPHeaders::new();
    answer.add("Upgrade", "websocket");
    answer.add("Connection", "Upgrade");
    answer.add("Sec-WebSocket-Accept", handshake::accept_key(&key));
    if let Some(protocol) = &subprotocol {
        answer.add("Sec-WebSocket-Protocol", protocol);
    }
    let deflate = handler.get_compression_options().and_then(|compression| {
        let offers = handshake::list(headers, "Sec-WebSocket-Extensions");
        let (agreed, reply) = deflate::accept_offer(&offers)?;
        answer.add("Sec-WebSocket-Extensions", reply);
        Some((agreed, compression))
    });
    conn.write_headers(101, &answer)?;
    let stream = conn.detach()?;
    let events = HandlerEvents { handler };
    let ws = WebSocketConnection::start(
        stream,
        Side::Server,
        options,
        subprotocol,
        deflate,
        Box::new(events),
    )?;
    ws.open_with(request)?;
    Ok(Some(ws))
}

fn refuse(conn: &HTTPConnection, refusal: Refusal) -> Result<(), Error> {
    let mut headers = HTTPHeaders::new();
    headers.add("Content-Type", "text/plain; charset=UTF-8");
    if refusal.status == 426 {
        headers.add("Sec-WebSocket-Version", "13");
    }
    conn.write_response(refusal.status, &headers, refusal.message.as_bytes())
}

/// A handler as the protocol's events.
struct HandlerEvents<H> {
    handler: H,
}

impl<H: WebSocketHandler> Events for HandlerEvents<H> {
    fn on_message(&mut self, conn: &WebSocketConnection, message: Message) -> Handled {
        self.handler.on_message(conn, message)
    }
    fn on_ping(&mut self, conn: &WebSocketConnection, data: &[u8]) {
        self.handler.on_ping(conn, data);
    }
    fn on_pong(&mut self, conn: &WebSocketConnection, data: &[u8]) {
        self.handler.on_pong(conn, data);
    }
    fn on_close(&mut self, conn: &WebSocketConnection) {
        self.handler.on_close(conn);
    }
    fn open(
        &mut self,
        conn: &WebSocketConnection,
        request: &HTTPServerRequest,
    ) -> Result<(), Error> {
        self.handler.open(conn, request)
    }
}

/// A route for a [`WebSocketHandler`] in a [`web::Application`](crate::web::Application):
/// Tornado's `Application([(r"/ws", EchoWebSocket)])`. `make` builds the
/// handler for each connection.
///
/// ```
/// use squall::web::Application;
/// use squall::websocket::{self, Handled, Message, WebSocketConnection, WebSocketHandler};
///
/// struct Echo;
/// impl WebSocketHandler for Echo {
///     fn on_message(&mut self, ws: &WebSocketConnection, message: Message) -> Handled {
///         ws.write_message(message);
///         Ok(None)
///     }
/// }
///
/// let app = Application::new().route("/ws", websocket::handler(|| Echo));
/// # let _ = app;
/// ```
///
/// Its connections take the application's settings, as Tornado's:
/// `websocket_ping_interval`, `websocket_ping_timeout` and
/// `websocket_max_message_size` in [`web::Settings`](crate::web::Settings).
pub fn handler<H, F>(make: F) -> impl Fn() -> Upgrade<H> + 'static
where
    H: WebSocketHandler,
    F: Fn() -> H + 'static,
{
    move || Upgrade {
        handler: Some(make()),
        options: None,
    }
}

/// [`handler`] with options of its own for this route, instead of the
/// application's settings.
pub fn handler_with<H, F>(make: F, options: WebSocketOptions) -> impl Fn() -> Upgrade<H> + 'static
where
    H: WebSocketHandler,
    F: Fn() -> H + 'static,
{
    move || Upgrade {
        handler: Some(make()),
        options: Some(options.clone()),
    }
}

/// The options a route without its own takes from the application's
/// settings (Tornado's `websocket_*` settings).
fn options_from(settings: &crate::web::Settings) -> WebSocketOptions {
    let mut options =
        WebSocketOptions::default().max_message_size(settings.websocket_max_message_size);
    options.ping_interval = settings.websocket_ping_interval;
    options.ping_timeout = settings.websocket_ping_timeout;
    options
}

/// The `RequestHandler` a [`handler`] route makes: its `get` answers the
/// upgrade with [`accept`] and hands the connection to the WebSocket
/// handler; other methods get 405.
pub struct Upgrade<H> {
    handler: Option<H>,
    /// `None`: the application's settings.
    options: Option<WebSocketOptions>,
}

impl<H: WebSocketHandler> crate::web::RequestHandler for Upgrade<H> {
    fn get(&mut self, x: &crate::web::Exchange) -> Result<(), Error> {
        let handler = self
            .handler
            .take()
            .ok_or_else(|| Error::new(crate::ErrorKind::InvalidState, "one upgrade per handler"))?;
        let options = match &self.options {
            Some(options) => options.clone(),
            None => options_from(x.settings()),
        };
        accept(x.request(), x.connection(), handler, options)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::same_origin;

    #[test]
    fn same_origin_compares_the_host_and_port() {
        assert!(same_origin("http://example.com", "example.com"));
        assert!(same_origin("https://Example.com:8443", "example.com:8443"));
        assert!(!same_origin("http://evil.com", "example.com"));
        assert!(!same_origin("http://example.com:81", "example.com"));
        assert!(!same_origin("null", "example.com"));
    }
}
