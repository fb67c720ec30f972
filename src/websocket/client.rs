//! The client side: `websocket_connect` (Tornado's), `ws://` and `wss://`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use super::deflate::{self, Agreed, CompressionOptions};
use super::handshake;
use super::protocol::{Events, Handled, Side, WebSocketConnection};
use super::{Message, WebSocketOptions};
use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::httpclient::url::Url;
use crate::httpclient::{HTTPError, HTTPRequest};
use crate::httputil::HTTPHeaders;
use crate::iostream::IOStream;
use crate::tcpclient::TCPClient;

/// The largest handshake answer head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// `websocket_connect`'s other arguments (Tornado's keywords).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// The subprotocols to offer, most preferred first.
    pub subprotocols: Vec<String>,
    /// The connection's settings (`max_message_size`, pings...).
    pub websocket: WebSocketOptions,
    /// Offer permessage-deflate (Tornado's `compression_options`; default
    /// `None`: no compression).
    pub compression_options: Option<CompressionOptions>,
}

impl ConnectOptions {
    /// No subprotocols, the default settings.
    pub fn new() -> ConnectOptions {
        ConnectOptions::default()
    }

    /// Sets `subprotocols`.
    pub fn subprotocols(mut self, subprotocols: &[&str]) -> ConnectOptions {
        self.subprotocols = subprotocols.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Offers compression.
    pub fn compression_options(mut self, options: CompressionOptions) -> ConnectOptions {
        self.compression_options = Some(options);
        self
    }

    /// Sets the connection's settings.
    pub fn websocket(mut self, options: WebSocketOptions) -> ConnectOptions {
        self.websocket = options;
        self
    }
}

/// A client's connection: [`read_message`](Self::read_message) as in
/// Tornado, plus everything a [`WebSocketConnection`] does (it derefs to
/// one: `write_message`, `ping`, `close`, `close_code`...).
#[derive(Clone)]
pub struct WebSocketClientConnection {
    conn: WebSocketConnection,
    inbox: Rc<RefCell<Inbox>>,
}

/// How many unread messages a client holds before it stops reading from
/// the socket (the server then meets TCP's backpressure).
const INBOX_LIMIT: usize = 16;

#[derive(Default)]
struct Inbox {
    /// Messages nobody has asked for yet; `None` marks the end.
    queue: VecDeque<Option<Message>>,
    waiting: Option<Future<Option<Message>>>,
    /// Done when the queue has room again: reading from the socket waits
    /// for it (what `on_message` returned).
    room: Option<Future<()>>,
}

impl std::ops::Deref for WebSocketClientConnection {
    type Target = WebSocketConnection;
    fn deref(&self) -> &WebSocketConnection {
        &self.conn
    }
}

impl WebSocketClientConnection {
    /// The next message, or `None` once the connection is closed (Tornado's
    /// `read_message`). One read at a time: a second while one is pending
    /// fails with [`ErrorKind::InvalidState`]. Messages that arrive with no
    /// read pending wait in order; past 16 of them the connection stops
    /// reading until they are read, so memory stays bounded.
    pub fn read_message(&self) -> Future<Option<Message>> {
        let mut inbox = self.inbox.borrow_mut();
        if inbox.waiting.is_some() {
            return Future::failed(Error::new(
                ErrorKind::InvalidState,
                "a read_message is already pending",
            ));
        }
        match inbox.queue.pop_front() {
            Some(message) => {
                if message.is_none() {
                    inbox.queue.push_back(None); // the end stays the end
                }
                let room = if inbox.queue.len() < INBOX_LIMIT {
                    inbox.room.take()
                } else {
                    None
                };
                drop(inbox);
                if let Some(room) = room {
                    room.try_set_result(());
                }
                Future::ready(message)
            }
            None => {
                let future = Future::new();
                inbox.waiting = Some(future.clone());
                future
            }
        }
    }

    /// The connection underneath.
    pub fn connection(&self) -> &WebSocketConnection {
        &self.conn
    }
}

struct InboxEvents(Rc<RefCell<Inbox>>);

impl InboxEvents {
    fn push(&self, message: Option<Message>) {
        let waiting = {
            let mut inbox = self.0.borrow_mut();
            match inbox.waiting.take() {
                Some(waiting) => Some((waiting, message)),
                None => {
                    inbox.queue.push_back(message);
                    None
                }
            }
        };
        if let Some((waiting, message)) = waiting {
            waiting.try_set_result(message);
        }
    }
}

impl Events for InboxEvents {
    fn on_message(&mut self, _conn: &WebSocketConnection, message: Message) -> Handled {
        self.push(Some(message));
        let mut inbox = self.0.borrow_mut();
        if inbox.queue.len() < INBOX_LIMIT {
            return Ok(None);
        }
        // Full: the next message waits until `read_message` makes room.
        let room = Future::new();
        inbox.room = Some(room.clone());
        Ok(Some(room))
    }
    fn on_close(&mut self, _conn: &WebSocketConnection) {
        self.push(None);
    }
}

/// Connects to a `ws://` or `wss://` URL (a `&str`, or an [`HTTPRequest`]
/// for headers, `connect_timeout`, `request_timeout` for the handshake,
/// and TLS options): Tornado's `websocket_connect`. Redirects are not
/// followed (as Tornado). Fails with [`ErrorKind::HttpStatus`] (an
/// [`HTTPError`] with the code) if the server answers anything but 101.
pub fn websocket_connect(request: impl Into<HTTPRequest>) -> Future<WebSocketClientConnection> {
    websocket_connect_with(request, ConnectOptions::default())
}

/// [`websocket_connect`] with subprotocols and settings.
pub fn websocket_connect_with(
    request: impl Into<HTTPRequest>,
    options: ConnectOptions,
) -> Future<WebSocketClientConnection> {
    let request = request.into();
    match Handshake::start(request, options) {
        Ok(future) => future,
        Err(err) => Future::failed(err),
    }
}

struct Handshake {
    request: HTTPRequest,
    options: ConnectOptions,
    url: Url,
    key: String,
    out: Future<WebSocketClientConnection>,
}

impl Handshake {
    fn start(
        request: HTTPRequest,
        options: ConnectOptions,
    ) -> Result<Future<WebSocketClientConnection>, Error> {
        let url = parse_ws_url(&request.url)?;
        let connect = crate::tcpclient::ConnectOptions::new().timeout(request.connect_timeout);
        // wss://: TLS, verified as the HTTP client would (`validate_cert`,
        // `ca_certs`, `client_cert` of the request). Without the `tls`
        // feature, `Url::parse` has refused it already.
        #[cfg(feature = "tls")]
        let connect = if url.https {
            connect.ssl_options(request.tls_options().build()?)
        } else {
            connect
        };
        let hs = Rc::new(Handshake {
            key: handshake::new_key(),
            out: Future::new(),
            url,
            request,
            options,
        });
        let out = hs.out.clone();
        let h = hs.clone();
        TCPClient::new()
            .connect_with(&hs.url.host, hs.url.port, connect)
            .add_done_callback(
                move |stream: &Future<IOStream>| match stream.take_result() {
                    Ok(stream) => h.send(stream),
                    Err(err) => {
                        h.out.try_set_error(err);
                    }
                },
            );
        Ok(out)
    }

    fn send(self: &Rc<Self>, stream: IOStream) {
        let _ = stream.set_nodelay(true);
        let head = match self.head() {
            Ok(head) => head,
            Err(err) => {
                stream.close();
                self.out.try_set_error(err);
                return;
            }
        };
        drop(stream.write(head));
        // The handshake's answer within request_timeout.
        let s = stream.clone();
        let deadline = stream
            .io_loop()
            .call_later(self.request.request_timeout, move || {
                s.close();
            });
        let me = self.clone();
        let s = stream.clone();
        stream
            .read_until_max_bytes(b"\r\n\r\n", MAX_HEAD)
            .add_done_callback(move |head: &Future<Vec<u8>>| {
                s.io_loop().remove_timeout(deadline);
                let result = head.take_result().and_then(|head| me.check(&head));
                match result
                    .and_then(|(subprotocol, agreed)| me.open(s.clone(), subprotocol, agreed))
                {
                    Ok(conn) => {
                        me.out.try_set_result(conn);
                    }
                    Err(err) => {
                        s.close();
                        me.out.try_set_error(err);
                    }
                }
            });
    }

    /// The upgrade request (section 4.1).
    fn head(&self) -> Result<Vec<u8>, Error> {
        let mut headers = self.request.headers.clone();
        headers.set("Host", self.url.host_header());
        headers.set("Upgrade", "websocket");
        headers.set("Connection", "Upgrade");
        headers.set("Sec-WebSocket-Key", &self.key);
        headers.set("Sec-WebSocket-Version", "13");
        if self.options.compression_options.is_some() {
            headers.set("Sec-WebSocket-Extensions", deflate::client_offer());
        }
        if !self.options.subprotocols.is_empty() {
            headers.set(
                "Sec-WebSocket-Protocol",
                self.options.subprotocols.join(", "),
            );
        }
        let mut head = format!("GET {} HTTP/1.1\r\n", self.url.target).into_bytes();
        for (name, value) in headers.iter() {
            crate::httputil::check_header(name, value)?;
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        Ok(head)
    }

    /// Checks the answer (section 4.1, the client's duties); returns the
    /// subprotocol the server chose.
    fn check(&self, raw: &[u8]) -> Result<(Option<String>, Option<Agreed>), Error> {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut answer = httparse::Response::new(&mut fields);
        let parsed = answer.parse(raw).map_err(|e| {
            Error::new(
                ErrorKind::HttpProtocol,
                format!("bad handshake answer: {e}"),
            )
        })?;
        if parsed.is_partial() {
            return Err(Error::new(ErrorKind::HttpProtocol, "bad handshake answer"));
        }
        let code = answer.code.unwrap_or(0);
        let mut headers = HTTPHeaders::new();
        for field in answer.headers.iter() {
            headers.add(field.name, String::from_utf8_lossy(field.value));
        }
        if code != 101 {
            return Err(
                HTTPError::new(code, format!("WebSocket upgrade refused with {code}")).into_error(),
            );
        }
        let bad = |why: &str| {
            Error::new(
                ErrorKind::HttpProtocol,
                format!("bad handshake answer: {why}"),
            )
        };
        if !handshake::has_token(&headers, "Upgrade", "websocket") {
            return Err(bad("no Upgrade: websocket"));
        }
        if !handshake::has_token(&headers, "Connection", "upgrade") {
            return Err(bad("no Connection: Upgrade"));
        }
        if headers.get("Sec-WebSocket-Accept").map(str::trim)
            != Some(&handshake::accept_key(&self.key))
        {
            return Err(bad("wrong Sec-WebSocket-Accept"));
        }
        let agreed = match (
            headers.get("Sec-WebSocket-Extensions"),
            &self.options.compression_options,
        ) {
            (None, _) => None,
            (Some(answer), Some(_)) => Some(deflate::accept_answer(answer).map_err(bad)?),
            (Some(_), None) => return Err(bad("an extension we did not offer")),
        };
        let subprotocol = match headers.get("Sec-WebSocket-Protocol").map(str::trim) {
            None => None,
            Some(chosen) if self.options.subprotocols.iter().any(|p| p == chosen) => {
                Some(chosen.to_string())
            }
            Some(_) => return Err(bad("a subprotocol we did not offer")),
        };
        Ok((subprotocol, agreed))
    }

    fn open(
        &self,
        stream: IOStream,
        subprotocol: Option<String>,
        agreed: Option<Agreed>,
    ) -> Result<WebSocketClientConnection, Error> {
        let deflate = agreed.zip(self.options.compression_options);
        let inbox = Rc::new(RefCell::new(Inbox::default()));
        let conn = WebSocketConnection::start(
            stream,
            Side::Client,
            self.options.websocket.clone(),
            subprotocol,
            deflate,
            Box::new(InboxEvents(inbox.clone())),
        )?;
        // Frames the server sent right behind its answer are buffered: the
        // hook reads them first.
        conn.begin()?;
        Ok(WebSocketClientConnection { conn, inbox })
    }
}

/// `ws://` is `http://` and `wss://` is `https://` for the connection.
fn parse_ws_url(url: &str) -> Result<Url, Error> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("URL {url:?}: not absolute"),
        )
    })?;
    let http = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => "http",
        "wss" | "https" => "https",
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("URL {url:?}: a WebSocket URL is ws:// or wss://"),
            ))
        }
    };
    Url::parse(&format!("{http}://{rest}"))
}
