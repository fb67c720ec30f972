//! Tornado's `demos/websocket` chat, ported: a page with a little
//! JavaScript, a `WebSocketHandler` that broadcasts each message to every
//! connected client, and a cache of the last 200 messages that new visitors
//! see.
//!
//! Usage:
//!
//! ```text
//! websocket_chat              serve on http://127.0.0.1:8888/
//! websocket_chat PORT         serve on PORT
//! websocket_chat --self-test  serve on a free port, connect three squall
//!                             clients, check the broadcast and the cache
//! ```
//!
//! ci-args: --self-test

use squall::netutil::BindOptions;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use squall::http::HTTPServer;
use squall::web::{Application, Exchange, RequestHandler};
use squall::websocket::{
    self, CompressionOptions, Handled, Message, WebSocketConnection, WebSocketHandler,
};
use squall::{Error, ErrorKind, Future, IOLoop};

/// Tornado's `ChatSocketHandler.cache_size`.
const CACHE_SIZE: usize = 200;

/// What Tornado keeps in class attributes: the open sockets and the cache.
#[derive(Default)]
struct Chat {
    waiters: Vec<(u64, WebSocketConnection)>,
    cache: Vec<serde_json::Value>,
    next_id: u64,
}

type Shared = Rc<RefCell<Chat>>;

struct ChatSocketHandler {
    chat: Shared,
    id: u64,
}

impl WebSocketHandler for ChatSocketHandler {
    fn get_compression_options(&self) -> Option<CompressionOptions> {
        // Non-None enables compression with default options.
        Some(CompressionOptions::default())
    }

    fn open(
        &mut self,
        ws: &WebSocketConnection,
        _request: &squall::http::HTTPServerRequest,
    ) -> Result<(), Error> {
        let mut chat = self.chat.borrow_mut();
        chat.next_id += 1;
        self.id = chat.next_id;
        chat.waiters.push((self.id, ws.clone()));
        Ok(())
    }

    fn on_close(&mut self, _ws: &WebSocketConnection) {
        let id = self.id;
        self.chat.borrow_mut().waiters.retain(|(w, _)| *w != id);
    }

    fn on_message(&mut self, _ws: &WebSocketConnection, message: Message) -> Handled {
        let Message::Text(text) = message else {
            return Ok(None);
        };
        let parsed: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("not JSON: {e}")))?;
        let body = parsed["body"].as_str().unwrap_or("").to_string();
        let id = format!("{:016x}", random_id());
        let html = message_html(&id, &body);
        let chat = serde_json::json!({ "id": id, "body": body, "html": html });
        // update_cache, then send_updates (to a copy of the waiters: a
        // write never runs user code, but keep no borrow across it anyway).
        let waiters: Vec<WebSocketConnection> = {
            let mut state = self.chat.borrow_mut();
            state.cache.push(chat.clone());
            let excess = state.cache.len().saturating_sub(CACHE_SIZE);
            state.cache.drain(..excess);
            state.waiters.iter().map(|(_, w)| w.clone()).collect()
        };
        let text = chat.to_string();
        for waiter in waiters {
            if let Some(err) = waiter.write_message(text.as_str()).error() {
                log::error!("Error sending message: {err}");
            }
        }
        Ok(None)
    }
}

/// `message.html`: one message, escaped.
fn message_html(id: &str, body: &str) -> String {
    format!(r#"<div class="message" id="m{id}">{}</div>"#, escape(body))
}

/// `tornado.escape.xhtml_escape`.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A message id: Tornado uses `uuid4`; a random 64-bit number will do.
fn random_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .elapsed()
            .map_or(0, |d| d.as_nanos() as u64),
    );
    h.finish()
}

/// `index.html`, with the cached messages, and `chat.js` inline.
struct MainHandler {
    chat: Shared,
}

impl RequestHandler for MainHandler {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let messages: String = self
            .chat
            .borrow()
            .cache
            .iter()
            .map(|m| m["html"].as_str().unwrap_or("").to_string())
            .collect();
        x.write(INDEX.replace("{messages}", &messages));
        Ok(())
    }
}

const INDEX: &str = r#"<!DOCTYPE html>
<html><head><meta charset="UTF-8"><title>squall chat demo</title></head>
<body>
  <div id="inbox">{messages}</div>
  <form id="messageform">
    <input id="message" name="body" style="width:500px" autocomplete="off">
    <input type="submit" value="Post">
  </form>
  <script>
  const socket = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/chatsocket");
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (document.getElementById("m" + message.id)) return;
    document.getElementById("inbox").insertAdjacentHTML("beforeend", message.html);
  };
  document.getElementById("messageform").onsubmit = (event) => {
    event.preventDefault();
    const input = document.getElementById("message");
    socket.send(JSON.stringify({ body: input.value }));
    input.value = "";
  };
  </script>
</body></html>
"#;

fn app(chat: &Shared) -> Application {
    let (page, socket) = (chat.clone(), chat.clone());
    Application::new()
        .route("/", move || MainHandler { chat: page.clone() })
        .route(
            "/chatsocket",
            websocket::handler(move || ChatSocketHandler {
                chat: socket.clone(),
                id: 0,
            }),
        )
}

fn main() -> Result<(), Error> {
    env_logger::init();
    let arg = std::env::args().nth(1);
    let self_test = arg.as_deref() == Some("--self-test");
    let port: u16 = match (&arg, self_test) {
        (_, true) => 0,
        (Some(p), false) => p
            .parse()
            .map_err(|_| Error::new(ErrorKind::InvalidArgument, "PORT must be a number"))?,
        (None, false) => 8888,
    };
    let io_loop = IOLoop::new()?;
    io_loop.make_current();
    let chat: Shared = Rc::default();
    let server = HTTPServer::new(app(&chat));
    server.listen_with(port, BindOptions::new().address("127.0.0.1"))?;
    let port = server.local_addrs()[0].port();
    if !self_test {
        println!("chat on http://127.0.0.1:{port}/");
        return io_loop.start();
    }
    let got = io_loop.run_sync(
        move || self_test_clients(port),
        Some(Duration::from_secs(30)),
    )?;
    println!("{got}");
    server.stop();
    println!("self-test passed");
    Ok(())
}

/// Three clients; the first posts; all three get the broadcast, and the
/// page then shows the cached message.
fn self_test_clients(port: u16) -> Future<String> {
    let url = format!("ws://127.0.0.1:{port}/chatsocket");
    let connects: Vec<_> = (0..3)
        .map(|_| {
            websocket::websocket_connect_with(
                url.as_str(),
                websocket::ConnectOptions::new().compression_options(CompressionOptions::default()),
            )
        })
        .collect();
    let out = Future::new();
    let o = out.clone();
    let connected = all(connects);
    connected.add_done_callback(
        move |clients: &Future<Vec<websocket::WebSocketClientConnection>>| {
            let clients = match clients.take_result() {
                Ok(clients) => clients,
                Err(err) => return o.set_error(err),
            };
            drop(clients[0].write_message(r#"{"body": "hello <b>world</b>"}"#));
            let reads: Vec<_> = clients.iter().map(|c| c.read_message()).collect();
            let o2 = o.clone();
            all(reads).add_done_callback(move |got: &Future<Vec<Option<Message>>>| {
                let checked = got.take_result().and_then(|messages| {
                    for message in &messages {
                        let Some(Message::Text(text)) = message else {
                            return Err(Error::other("a client got no broadcast"));
                        };
                        let chat: serde_json::Value =
                            serde_json::from_str(text).map_err(|e| Error::other(e.to_string()))?;
                        if chat["body"] != "hello <b>world</b>"
                            || !chat["html"]
                                .as_str()
                                .unwrap_or("")
                                .contains("hello &lt;b&gt;world&lt;/b&gt;")
                        {
                            return Err(Error::other(format!("unexpected broadcast {text}")));
                        }
                    }
                    drop(clients);
                    Ok(format!("3 clients got the broadcast: {:?}", messages[0]))
                });
                let summary = match checked {
                    Ok(summary) => summary,
                    Err(err) => return o2.set_error(err),
                };
                // A new visitor's page shows the cached message.
                let page = squall::httpclient::AsyncHTTPClient::new()
                    .fetch(format!("http://127.0.0.1:{port}/"));
                page.add_done_callback(move |page: &Future<squall::httpclient::HTTPResponse>| {
                    let result = page.take_result().and_then(|page| {
                        if page.text().contains("hello &lt;b&gt;world&lt;/b&gt;") {
                            Ok(format!("{summary}; the page shows it"))
                        } else {
                            Err(Error::other("the page lacks the cached message"))
                        }
                    });
                    o2.try_complete(result);
                });
            });
        },
    );
    out
}

/// Tornado's `gen.multi_future`, in a few lines: one future for all of
/// `futures`' values, in order (the first error fails it).
fn all<T: 'static>(futures: Vec<Future<T>>) -> Future<Vec<T>> {
    let out = Future::new();
    let left = Rc::new(std::cell::Cell::new(futures.len()));
    let slots: Rc<Vec<Future<T>>> = Rc::new(futures);
    for f in slots.iter() {
        let (out, left, slots) = (out.clone(), left.clone(), slots.clone());
        f.add_done_callback(move |done: &Future<T>| {
            if out.done() {
                return;
            }
            if let Some(err) = done.error() {
                out.try_set_error(err);
                return;
            }
            left.set(left.get() - 1);
            if left.get() == 0 {
                let values = slots.iter().map(|f| f.take_result()).collect();
                out.try_complete(values);
            }
        });
    }
    out
}
