//! WebSocket echo with squall: the squall server of `bench/websocket.sh`.
//!
//! ```text
//! cargo run --release --bin ws_echo_squall -- 8888
//! ```
//!
//! What a user writes: a `WebSocketHandler` that writes every message back,
//! routed at `/` in a `web::Application` with `websocket::handler` (Tornado's
//! `Application([(r"/", EchoWebSocket)])`), no compression, default options
//! (10 MiB messages, so the 1 MiB throughput test fits).

use squall::http::HTTPServer;
use squall::netutil::BindOptions;
use squall::web::Application;
use squall::websocket::{self, Handled, Message, WebSocketConnection, WebSocketHandler};
use squall::IOLoop;

/// Tornado's `EchoWebSocket`.
struct Echo;

impl WebSocketHandler for Echo {
    fn on_message(&mut self, ws: &WebSocketConnection, message: Message) -> Handled {
        ws.write_message(message);
        Ok(None)
    }
}

fn main() -> Result<(), squall::Error> {
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p.parse().expect("usage: ws_echo_squall [PORT]"),
        None => 8888,
    };
    let io_loop = IOLoop::new()?;
    io_loop.make_current();
    let app = Application::new().route("/", websocket::handler(|| Echo));
    let server = HTTPServer::new(app);
    server.listen_with(port, BindOptions::new().address("127.0.0.1"))?;
    io_loop.start()
}
