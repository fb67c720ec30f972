//! WebSocket echo with tokio-tungstenite on a tokio `current_thread`
//! runtime: the tokio peer of `ws_echo_squall` in `bench/websocket.sh`.
//!
//! ```text
//! cargo run --release --bin ws_echo_tungstenite -- 8888
//! ```
//!
//! The shape of tokio-tungstenite's own `echo-server` example: one task per
//! connection, `accept_async`, then every data message is sent back with
//! `SinkExt::send` (which flushes). Control frames are left to tungstenite
//! (it answers pings itself). `TCP_NODELAY` as squall sets it. The message
//! size limits are tungstenite's defaults (64 MiB messages, 16 MiB frames).

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};

async fn echo(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        // Pings are answered by tungstenite itself; pongs and the close
        // frame need nothing here (tungstenite replies to a close).
        if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
            return;
        }
    }
}

fn main() {
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p.parse().expect("usage: ws_echo_tungstenite [PORT]"),
        None => 8888,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        // The tasks run on this one thread: LocalSet-free `spawn` is fine on
        // a current_thread runtime.
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(echo(stream));
        }
    });
}
