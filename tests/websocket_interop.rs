//! squall's WebSocket against the peers users have: Python's `websockets`
//! and Tornado's `websocket_connect` as clients of a squall server (plain
//! and over TLS), and squall's client against a `websockets` server and a
//! Tornado `WebSocketHandler`. Each peer is a subprocess with a time limit.
#![cfg(all(feature = "websocket", feature = "tls"))]

#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;
#[path = "common/peers.rs"]
mod need;
#[path = "common/tls.rs"]
mod tls_kit;

use std::process::Command;
use std::time::Duration;

use http_kit::{python, python_server, run, TestServer};
use need::Peer;
use squall::http::{HTTPConnection, HTTPServerRequest};
use squall::httpclient::HTTPRequest;
use squall::websocket::{self, Handled, Message, WebSocketConnection, WebSocketHandler};
use squall::IOLoop;

const LIMIT: Duration = Duration::from_secs(60);

struct Echo;
impl WebSocketHandler for Echo {
    fn on_message(&mut self, ws: &WebSocketConnection, message: Message) -> Handled {
        if message == Message::from("bye") {
            ws.close_with(1000, "done");
        } else {
            drop(ws.write_message(message));
        }
        Ok(None)
    }
    fn check_origin(&self, _origin: &str, _request: &HTTPServerRequest) -> bool {
        true
    }
    fn get_compression_options(&self) -> Option<websocket::CompressionOptions> {
        Some(Default::default())
    }
}

fn echo_server(tls: Option<std::sync::Arc<squall::tls::rustls::ServerConfig>>) -> TestServer {
    TestServer::start(
        || {
            |req: &HTTPServerRequest, conn: &HTTPConnection| {
                websocket::accept(req, conn, Echo, Default::default()).map(drop)
            }
        },
        move |s| {
            if let Some(config) = tls {
                s.set_ssl_options(config).expect("ssl_options");
            }
        },
    )
}

/// A client script; it asserts on its own and prints `ALL OK` last.
fn python_client(script: &str, args: &[&str]) {
    let mut cmd = Command::new(python());
    cmd.arg("-c").arg(script).args(args);
    let (ok, out, err) = run(&mut cmd, None, LIMIT);
    assert!(
        ok && out.trim_end().ends_with("ALL OK"),
        "stdout:\n{out}\nstderr:\n{err}"
    );
}

const WEBSOCKETS_CLIENT: &str = r#"
import asyncio, ssl, sys
import websockets
async def main():
    url = sys.argv[1]
    ctx = None
    if url.startswith("wss"):
        ctx = ssl.create_default_context(cafile=sys.argv[2])
    async with websockets.connect(url, ssl=ctx, max_size=None, open_timeout=20) as ws:
        exts = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert "permessage-deflate" in exts, exts
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await ws.send(b"\x00\x01\xff" * 100000)
        assert await ws.recv() == b"\x00\x01\xff" * 100000
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 10)
        await ws.send("bye")
        try:
            await asyncio.wait_for(ws.recv(), 10)
            raise SystemExit("expected the close")
        except websockets.exceptions.ConnectionClosedOK as closed:
            assert closed.rcvd.code == 1000 and closed.rcvd.reason == "done", closed
    print("ALL OK")
asyncio.run(main())
"#;

#[test]
fn python_websockets_client_against_squall_plain_and_tls() {
    if !need::ready(&[Peer::Websockets]) {
        return;
    }
    let s = echo_server(None);
    python_client(
        WEBSOCKETS_CLIENT,
        &[&format!("ws://127.0.0.1:{}/", s.addr.port())],
    );

    let certs = tls_kit::Certs::new("ws interop CA");
    let files = certs.write_files(&tls_kit::temp_dir("ws-interop"));
    let s = echo_server(Some(certs.server_config()));
    python_client(
        WEBSOCKETS_CLIENT,
        &[
            &format!("wss://localhost:{}/", s.addr.port()),
            files.ca.to_str().unwrap(),
        ],
    );
}

#[test]
fn tornado_websocket_connect_against_squall() {
    if !need::ready(&[Peer::Tornado]) {
        return;
    }
    let s = echo_server(None);
    let script = r#"
import sys
from tornado.ioloop import IOLoop
from tornado.websocket import websocket_connect
async def main():
    ws = await websocket_connect(sys.argv[1], connect_timeout=20, compression_options={})
    ws.write_message("hello")
    assert await ws.read_message() == "hello"
    ws.write_message(b"\xfe" * 70000, binary=True)
    assert await ws.read_message() == b"\xfe" * 70000
    ws.write_message("bye")
    assert await ws.read_message() is None
    assert ws.close_code == 1000 and ws.close_reason == "done", (ws.close_code, ws.close_reason)
    print("ALL OK")
IOLoop.current().run_sync(main, timeout=30)
"#;
    python_client(script, &[&format!("ws://127.0.0.1:{}/", s.addr.port())]);
}

/// Echoes two messages with squall's client, then closes.
fn squall_client_round_trip(url: String) -> (Option<Message>, Option<Message>, Option<u16>) {
    let io_loop = IOLoop::new().unwrap();
    // Compression offered: both Python servers accept it.
    let options = websocket::ConnectOptions::new().compression_options(Default::default());
    let ws = io_loop
        .run_sync(
            move || websocket::websocket_connect_with(HTTPRequest::new(url), options),
            Some(Duration::from_secs(20)),
        )
        .expect("connected");
    drop(ws.write_message("hello"));
    let w = ws.clone();
    let first = io_loop
        .run_sync(move || w.read_message(), Some(Duration::from_secs(20)))
        .unwrap();
    drop(ws.write_message(vec![7u8; 300_000]));
    let w = ws.clone();
    let second = io_loop
        .run_sync(move || w.read_message(), Some(Duration::from_secs(20)))
        .unwrap();
    ws.close_with(1000, "client done");
    let w = ws.clone();
    let end = io_loop
        .run_sync(move || w.read_message(), Some(Duration::from_secs(20)))
        .unwrap();
    assert_eq!(end, None);
    (first, second, ws.close_code())
}

#[test]
fn squall_client_against_python_websockets_and_tornado_servers() {
    if !need::ready(&[Peer::Websockets, Peer::Tornado]) {
        return;
    }
    let (mut child, port) = python_server(
        r#"
import asyncio
import websockets
async def echo(ws):
    async for message in ws:
        await ws.send(message)
async def main():
    async with websockets.serve(echo, "127.0.0.1", 0, max_size=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(30)
asyncio.run(main())
"#,
    );
    let result = squall_client_round_trip(format!("ws://127.0.0.1:{port}/"));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        result,
        (
            Some(Message::from("hello")),
            Some(Message::from(vec![7u8; 300_000])),
            Some(1000)
        )
    );

    let (mut child, port) = python_server(
        r#"
import asyncio
import tornado.web, tornado.websocket
class Echo(tornado.websocket.WebSocketHandler):
    def get_compression_options(self):
        return {}
    def on_message(self, message):
        self.write_message(message, binary=isinstance(message, bytes))
async def main():
    app = tornado.web.Application([("/", Echo)])
    server = app.listen(0, "127.0.0.1")
    print(list(server._sockets.values())[0].getsockname()[1], flush=True)
    await asyncio.sleep(30)
asyncio.run(main())
"#,
    );
    let result = squall_client_round_trip(format!("ws://127.0.0.1:{port}/"));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        result,
        (
            Some(Message::from("hello")),
            Some(Message::from(vec![7u8; 300_000])),
            Some(1000)
        )
    );
}
