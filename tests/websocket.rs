//! WebSocket through the public API, named after the Autobahn|Testsuite
//! cases they port (sections 1-7 and 9): a squall server (`accept` in a raw
//! HTTP delegate) driven by a raw-socket client that sends exactly the
//! frames a case calls for, good and bad; a squall client against a
//! raw-socket server; and the handshake's refusals.
#![cfg(feature = "websocket")]

#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;
#[path = "common/ws.rs"]
mod ws_kit;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use http_kit::TestServer;
use squall::http::{HTTPConnection, HTTPServerRequest};
use squall::websocket::{
    self, Handled, Message, WebSocketConnection, WebSocketHandler, WebSocketOptions,
};
use squall::{ErrorKind, Future, IOLoop};
use ws_kit::{RawWs, BINARY, CLOSE, CONT, PING, PONG, TEXT};

/// Echoes every message; on `/slow`, holds each message 20 ms before the
/// next is read (a coroutine on_message); on `/deflate`, offers
/// permessage-deflate.
struct Echo {
    slow: bool,
    deflate: bool,
}

impl WebSocketHandler for Echo {
    fn on_message(&mut self, ws: &WebSocketConnection, message: Message) -> Handled {
        if let Message::Text(text) = &message {
            if text == "close me" {
                ws.close_with(4000, "as you asked");
                return Ok(None);
            }
        }
        if !self.slow {
            drop(ws.write_message(message));
            return Ok(None);
        }
        let done = Future::new();
        let (d, ws) = (done.clone(), ws.clone());
        IOLoop::current().call_later(Duration::from_millis(20), move || {
            drop(ws.write_message(message));
            d.set_result(())
        });
        Ok(Some(done))
    }

    fn get_compression_options(&self) -> Option<websocket::CompressionOptions> {
        self.deflate.then(Default::default)
    }

    fn select_subprotocol(&self, offered: &[String]) -> Option<String> {
        offered.iter().find(|p| *p == "chat.v2").cloned()
    }
}

fn server() -> TestServer {
    TestServer::start(
        || {
            |req: &HTTPServerRequest, conn: &HTTPConnection| {
                let mut options = WebSocketOptions::new()
                    .max_message_size(1 << 20)
                    .close_timeout(Duration::from_millis(300));
                if req.path() == "/ping" {
                    options = options
                        .ping_interval(Duration::from_millis(100))
                        .ping_timeout(Duration::from_millis(200));
                }
                let echo = Echo {
                    slow: req.path() == "/slow",
                    deflate: req.path() == "/deflate",
                };
                websocket::accept(req, conn, echo, options).map(drop)
            }
        },
        |_| {},
    )
}

fn echo_case(ws: &mut RawWs, opcode: u8, payload: &[u8]) {
    ws.send(true, opcode, payload);
    let frame = ws.recv().expect("an echo");
    assert_eq!((frame.fin, frame.opcode), (true, opcode));
    assert!(
        frame.payload == payload,
        "echo of {} bytes differs",
        payload.len()
    );
}

// ----- 1: framing -------------------------------------------------------------

#[test]
fn case_1_1_and_1_2_text_and_binary_of_every_length_form() {
    let s = server();
    let mut ws = RawWs::connect(s.addr, "/echo");
    for len in [0, 125, 126, 127, 128, 65535, 65536] {
        echo_case(&mut ws, TEXT, &vec![b'*'; len]);
        echo_case(&mut ws, BINARY, &vec![0xfe; len]);
    }
    // Autobahn 1.1.8: 65536 bytes sent in chunks of 997.
    let frame = ws.frame_bytes(0x80 | TEXT, &vec![b'*'; 65536]);
    for chunk in frame.chunks(997) {
        ws.send_raw(chunk);
    }
    assert_eq!(ws.recv().unwrap().payload.len(), 65536);
}

// ----- 2: pings and pongs -------------------------------------------------------

#[test]
fn case_2_pings_are_answered_and_bad_ones_refused() {
    let s = server();
    let mut ws = RawWs::connect(s.addr, "/echo");
    // 2.1-2.3: empty, text and binary payloads come back in a pong.
    for payload in [&b""[..], b"Hello, world!", &[0x00, 0xff, 0xfe, 0xfd]] {
        ws.send(true, PING, payload);
        let pong = ws.recv().unwrap();
        assert_eq!((pong.opcode, &pong.payload[..]), (PONG, payload));
    }
    // 2.4: 125 bytes is the most a ping carries.
    ws.send(true, PING, &[b'x'; 125]);
    assert_eq!(ws.recv().unwrap().payload.len(), 125);
    // 2.7-2.8: an unsolicited pong is ignored.
    ws.send(true, PONG, b"unsolicited");
    echo_case(&mut ws, TEXT, b"still here");
    // 2.10: ten pings, ten pongs, in order.
    for i in 0..10u8 {
        ws.send(true, PING, &[i]);
    }
    for i in 0..10u8 {
        assert_eq!(ws.recv().unwrap().payload, [i]);
    }
    // 2.5: 126 bytes: protocol error.
    ws.send(true, PING, &[b'x'; 126]);
    assert_eq!(ws.expect_close(), Some(1002));
    assert!(ws.closed_within(Duration::from_secs(5)));

    // 2.6 / 5.2: a fragmented ping is a protocol error too.
    let mut ws = RawWs::connect(s.addr, "/echo");
    ws.send(false, PING, b"part");
    assert_eq!(ws.expect_close(), Some(1002));
}

// ----- 3 and 4: reserved bits and opcodes ----------------------------------------

#[test]
fn case_3_and_4_reserved_bits_and_opcodes_fail_the_connection() {
    let s = server();
    for b0 in [
        0x80 | 0x40 | TEXT, // 3.1 RSV1 (no extension agreed)
        0x80 | 0x20 | TEXT, // 3.2 RSV2
        0x80 | 0x10 | TEXT, // 3.3 RSV3
        0x80 | 0x70 | PING, // 3.7 all three, on a control frame
        0x80 | 0x3,         // 4.1.1 opcode 3
        0x80 | 0x7,         // 4.1.5 opcode 7
        0x80 | 0xB,         // 4.2.1 opcode 11
        0x80 | 0xF,         // 4.2.5 opcode 15
    ] {
        let mut ws = RawWs::connect(s.addr, "/echo");
        // 3.2: a valid message first, then the bad frame, then more.
        echo_case(&mut ws, TEXT, b"before");
        let bad = ws.frame_bytes(b0, b"reserved");
        ws.send_raw(&bad);
        ws.send(true, TEXT, b"after");
        assert_eq!(ws.expect_close(), Some(1002), "first byte {b0:#04x}");
        assert!(ws.closed_within(Duration::from_secs(5)));
    }
}

// ----- 5: fragmentation ------------------------------------------------------------

#[test]
fn case_5_fragments_with_pings_between_them() {
    let s = server();
    let mut ws = RawWs::connect(s.addr, "/echo");
    // 5.3-5.4: a text message in two fragments.
    ws.send(false, TEXT, b"frag");
    ws.send(true, CONT, b"ment");
    assert_eq!(ws.recv().unwrap().payload, b"fragment");
    // 5.6: a ping between the fragments is answered at once.
    ws.send(false, BINARY, b"one ");
    ws.send(true, PING, b"ping!");
    let pong = ws.recv().unwrap();
    assert_eq!((pong.opcode, &pong.payload[..]), (PONG, &b"ping!"[..]));
    ws.send(false, CONT, b"two ");
    ws.send(true, CONT, b"three");
    let whole = ws.recv().unwrap();
    assert_eq!(
        (whole.opcode, &whole.payload[..]),
        (BINARY, &b"one two three"[..])
    );
    // 5.19-ish: many fragments, one byte each.
    let text = "fragmented, one byte a frame";
    for (i, b) in text.bytes().enumerate() {
        let op = if i == 0 { TEXT } else { CONT };
        ws.send(i + 1 == text.len(), op, &[b]);
    }
    assert_eq!(ws.recv().unwrap().payload, text.as_bytes());
}

#[test]
fn case_5_continuations_out_of_place_fail_the_connection() {
    let s = server();
    // 5.9: a continuation with no message begun.
    let mut ws = RawWs::connect(s.addr, "/echo");
    ws.send(true, CONT, b"orphan");
    assert_eq!(ws.expect_close(), Some(1002));
    // 5.18: a new text message inside a fragmented one.
    let mut ws = RawWs::connect(s.addr, "/echo");
    ws.send(false, TEXT, b"one");
    ws.send(true, TEXT, b"two");
    assert_eq!(ws.expect_close(), Some(1002));
}

// ----- 6: UTF-8 ----------------------------------------------------------------------

#[test]
fn case_6_utf8_checked_and_failing_fast() {
    let s = server();
    let mut ws = RawWs::connect(s.addr, "/echo");
    // 6.2: valid UTF-8 cut at every byte boundary across fragments.
    let text = "Hello-µ@ßöäüàá-UTF-8!! κόσμε 😀".as_bytes();
    for cut in 1..text.len() {
        ws.send(false, TEXT, &text[..cut]);
        ws.send(true, CONT, &text[cut..]);
        assert_eq!(ws.recv().unwrap().payload, text, "cut at {cut}");
    }
    // 6.3.1: invalid in one frame.
    ws.send(
        true,
        TEXT,
        &[
            0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
            0x65,
        ],
    );
    assert_eq!(ws.expect_close(), Some(1007));

    // 6.4.1: fail fast: the close comes after the bad first fragment,
    // before the message ends.
    let mut ws = RawWs::connect(s.addr, "/echo");
    ws.send(
        false,
        TEXT,
        &[
            0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xf4, 0x90,
        ],
    );
    assert_eq!(ws.expect_close(), Some(1007));

    // 6.x: text ending in the middle of a character.
    let mut ws = RawWs::connect(s.addr, "/echo");
    ws.send(true, TEXT, &[b'a', 0xe2, 0x82]);
    assert_eq!(ws.expect_close(), Some(1007));
}

// ----- 7: closing ----------------------------------------------------------------------

#[test]
fn case_7_close_handshake_and_codes() {
    let s = server();
    // 7.1.1 / 7.3.x: a close is echoed and the server closes the TCP
    // connection; data after it is ignored.
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ] {
        let mut ws = RawWs::connect(s.addr, "/echo");
        ws.send_close(code, b"bye");
        ws.send(true, TEXT, b"after close");
        assert_eq!(ws.expect_close(), Some(code));
        assert!(ws.closed_within(Duration::from_secs(5)), "code {code}");
    }
    // 7.3.1: a close without a payload is echoed without one.
    let mut ws = RawWs::connect(s.addr, "/echo");
    ws.send(true, CLOSE, b"");
    assert_eq!(ws.expect_close(), Some(0));
    // 7.9.x: invalid codes; 7.3.2: a one-byte payload.
    for code in [0u16, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999] {
        let mut ws = RawWs::connect(s.addr, "/echo");
        ws.send_close(code, b"");
        assert_eq!(ws.expect_close(), Some(1002), "code {code}");
    }
    let mut ws = RawWs::connect(s.addr, "/echo");
    ws.send(true, CLOSE, &[0x03]);
    assert_eq!(ws.expect_close(), Some(1002));
    // 7.5.1: a reason that is not UTF-8.
    let mut ws = RawWs::connect(s.addr, "/echo");
    ws.send_close(
        1000,
        &[
            0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
        ],
    );
    assert_eq!(ws.expect_close(), Some(1007));
}

#[test]
fn a_server_close_waits_for_the_peer_then_gives_up() {
    let s = server();
    // The handler closes with 4000; this client never answers: the server
    // closes the TCP connection after close_timeout (300 ms here).
    let mut ws = RawWs::connect(s.addr, "/echo");
    ws.send(true, TEXT, b"close me");
    let close = ws.recv().unwrap();
    assert_eq!(close.close_code(), Some(4000));
    assert_eq!(&close.payload[2..], b"as you asked");
    let started = Instant::now();
    assert!(ws.closed_within(Duration::from_secs(5)));
    assert!(started.elapsed() >= Duration::from_millis(200));
    // Unanswered pings close a peer too (ping_timeout).
    let mut ws = RawWs::connect(s.addr, "/ping");
    let ping = ws.recv().unwrap();
    assert_eq!(ping.opcode, PING);
    assert_eq!(ws.expect_close(), Some(1001));
    assert!(ws.closed_within(Duration::from_secs(5)));
}

// ----- 9: limits -------------------------------------------------------------------------

#[test]
fn case_9_big_messages_and_the_limit() {
    let s = server();
    let mut ws = RawWs::connect(s.addr, "/echo");
    // 9.1.x / 9.2.x: up to the limit (1 MiB here), whole or in 64 KiB
    // fragments.
    echo_case(&mut ws, BINARY, &vec![7u8; 1 << 20]);
    let big = vec![b'a'; 1 << 20];
    for (i, piece) in big.chunks(64 * 1024).enumerate() {
        let op = if i == 0 { TEXT } else { CONT };
        ws.send((i + 1) * 64 * 1024 >= big.len(), op, piece);
    }
    assert_eq!(ws.recv().unwrap().payload.len(), 1 << 20);
    // Past it: 1009, from the header of a single frame...
    ws.send(true, BINARY, &vec![0u8; (1 << 20) + 1]);
    assert_eq!(ws.expect_close(), Some(1009));
    // ...or from the total of fragments.
    let mut ws = RawWs::connect(s.addr, "/echo");
    for i in 0..17 {
        let op = if i == 0 { BINARY } else { CONT };
        ws.send(false, op, &vec![0u8; 64 * 1024]);
    }
    assert_eq!(ws.expect_close(), Some(1009));
    // A header that declares 2^63 - 1 bytes: refused at once, nothing read
    // or allocated for it.
    let mut ws = RawWs::connect(s.addr, "/echo");
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&((1u64 << 63) - 1).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    ws.send_raw(&header);
    assert_eq!(ws.expect_close(), Some(1009));
    // And with the top bit set: a protocol error.
    let mut ws = RawWs::connect(s.addr, "/echo");
    header[2] |= 0x80;
    ws.send_raw(&header);
    assert_eq!(ws.expect_close(), Some(1002));
}

#[test]
fn an_unmasked_client_frame_is_refused() {
    let s = server();
    let mut ws = RawWs::connect(s.addr, "/echo");
    ws.mask = false;
    ws.send(true, TEXT, b"naked");
    assert_eq!(ws.expect_close(), Some(1002));
}

#[test]
fn a_pending_on_message_future_holds_the_next_message_back() {
    let s = server();
    let mut ws = RawWs::connect(s.addr, "/slow");
    for i in 0..5u8 {
        ws.send(true, BINARY, &[i]);
    }
    for i in 0..5u8 {
        assert_eq!(ws.recv().unwrap().payload, [i]);
    }
}

// ----- the handshake -----------------------------------------------------------------------

#[test]
fn bad_upgrades_are_refused_with_tornado_s_statuses() {
    let s = server();
    let (_, head) = RawWs::try_connect(s.addr, "/echo", "Origin: http://evil.example\r\n");
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let (_, head) = RawWs::try_connect(s.addr, "/echo", &format!("Origin: http://{}\r\n", s.addr));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // Version 8: 426 naming the version we speak.
    let mut peer = RawWs::server(std::net::TcpStream::connect(s.addr).unwrap());
    peer.send_raw(
        b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    );
    let answer = peer.read_head();
    assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");
    assert!(answer.contains("Sec-WebSocket-Version: 13"), "{answer}");
    // Not an upgrade at all: 400.
    let reply = http_kit::raw_request(
        s.addr,
        b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(reply.status, 400);
}

#[test]
fn squall_client_echo_subprotocols_and_close_codes() {
    let s = server();
    let io_loop = IOLoop::new().unwrap();
    let url = format!("ws://127.0.0.1:{}/echo", s.addr.port());
    let options = websocket::ConnectOptions::new().subprotocols(&["chat.v1", "chat.v2"]);
    let ws = io_loop
        .run_sync(
            move || websocket::websocket_connect_with(url.as_str(), options),
            Some(Duration::from_secs(10)),
        )
        .unwrap();
    assert_eq!(ws.selected_subprotocol(), Some("chat.v2"));
    for message in [
        Message::from("text"),
        Message::from(vec![0u8, 1, 2]),
        Message::from(vec![9u8; 200_000]),
    ] {
        drop(ws.write_message(message.clone()));
        let w = ws.clone();
        let got = io_loop
            .run_sync(move || w.read_message(), Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(got, Some(message));
    }
    // The server closes: read_message gives None, the code is known.
    drop(ws.write_message("close me"));
    let w = ws.clone();
    let end = io_loop
        .run_sync(move || w.read_message(), Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(end, None);
    assert_eq!(ws.close_code(), Some(4000));
    assert_eq!(ws.close_reason().as_deref(), Some("as you asked"));
    let err = ws.write_message("too late").result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WebSocketClosed);
}

#[test]
fn squall_client_refuses_a_masked_server_frame_and_a_bad_accept() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        // First: a correct handshake, then a masked frame.
        let (conn, _) = listener.accept().unwrap();
        let mut peer = RawWs::server(conn);
        let head = peer.read_head();
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap()
            .to_string();
        let accept = accept_key(&key);
        peer.send_raw(
            format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n")
                .as_bytes(),
        );
        peer.mask = true;
        peer.send(true, TEXT, b"masked by a server");
        let code = peer.expect_close();
        // Second: a wrong Sec-WebSocket-Accept.
        let (conn, _) = listener.accept().unwrap();
        let mut peer = RawWs::server(conn);
        peer.read_head();
        peer.send_raw(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: bm9wZQ==\r\n\r\n");
        let _ = peer.closed_within(Duration::from_secs(5));
        code
    });
    let io_loop = IOLoop::new().unwrap();
    let url = format!("ws://{addr}/");
    let u = url.clone();
    let ws = io_loop
        .run_sync(
            move || websocket::websocket_connect(u.as_str()),
            Some(Duration::from_secs(10)),
        )
        .unwrap();
    let w = ws.clone();
    let end = io_loop
        .run_sync(move || w.read_message(), Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(end, None);
    let err = io_loop
        .run_sync(
            move || websocket::websocket_connect(url.as_str()),
            Some(Duration::from_secs(10)),
        )
        .err()
        .expect("a wrong accept key is refused");
    assert_eq!(err.kind(), ErrorKind::HttpProtocol, "{err}");
    assert_eq!(server.join().unwrap(), Some(1002));
}

/// The accept key, computed independently (RFC 6455 4.2.2) with Python's
/// help would be nicer; the RFC's example checks the crate's own.
fn accept_key(key: &str) -> String {
    use std::process::Command;
    let out = Command::new("python3")
        .args([
            "-c",
            "import base64,hashlib,sys; print(base64.b64encode(hashlib.sha1((sys.argv[1]+'258EAFA5-E914-47DA-95CA-C5AB0DC85B11').encode()).digest()).decode())",
            key,
        ])
        .output()
        .expect("python3");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_handler_routed_in_an_application() {
    use squall::web::{Application, Exchange, RequestHandler};
    struct Plain;
    impl RequestHandler for Plain {
        fn get(&mut self, x: &Exchange) -> Result<(), squall::Error> {
            x.write("plain");
            Ok(())
        }
    }
    let s = TestServer::start(
        || {
            Application::new()
                .route(
                    "/ws",
                    websocket::handler(|| Echo {
                        slow: false,
                        deflate: false,
                    }),
                )
                .route("/", || Plain)
        },
        |_| {},
    );
    // Plain HTTP and WebSocket side by side; a refused upgrade is answered
    // and the connection goes on.
    let reply = http_kit::raw_request(
        s.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(reply.text(), "plain");
    let mut ws = RawWs::connect(s.addr, "/ws");
    echo_case(&mut ws, TEXT, b"through the application");
    ws.send_close(1000, b"");
    assert_eq!(ws.expect_close(), Some(1000));
    let reply = http_kit::raw_request(
        s.addr,
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(reply.status, 400);
    let reply = http_kit::raw_request(
        s.addr,
        b"POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(reply.status, 405);
}

/// A `websocket::handler` route takes the application's settings
/// (Tornado's `websocket_max_message_size`, `websocket_ping_interval`).
#[test]
fn application_settings_reach_a_handler_route() {
    use squall::web::{Application, Settings};
    let s = TestServer::start(
        || {
            Application::with_settings(Settings {
                websocket_max_message_size: 100,
                websocket_ping_interval: Some(Duration::from_millis(50)),
                ..Default::default()
            })
            .route(
                "/ws",
                websocket::handler(|| Echo {
                    slow: false,
                    deflate: false,
                }),
            )
        },
        |_| {},
    );
    let mut ws = RawWs::connect(s.addr, "/ws");
    // A ping comes from the interval.
    let frame = ws.recv().expect("a ping");
    assert_eq!(frame.opcode, PING);
    // The next frame that is not a ping (answered on the way).
    let next = |ws: &mut RawWs| loop {
        let frame = ws.recv().expect("a frame");
        if frame.opcode != PING {
            return frame;
        }
        ws.send(true, PONG, &frame.payload);
    };
    ws.send(true, PONG, &frame.payload);
    ws.send(true, TEXT, &[b'a'; 100]);
    assert_eq!(next(&mut ws).payload.len(), 100);
    ws.send(true, TEXT, &[b'a'; 101]);
    let frame = next(&mut ws);
    assert_eq!((frame.opcode, frame.close_code()), (CLOSE, Some(1009)));
}

// ----- 12 and 13: permessage-deflate ----------------------------------------------

/// A raw DEFLATE stream of `data`, sync-flushed, without the trailing
/// `00 00 ff ff` (RFC 7692 7.2.1), made here with flate2 directly.
fn deflate_raw(data: &[u8]) -> Vec<u8> {
    let mut c = flate2::Compress::new(flate2::Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() / 100 + 1024);
    let mut input = data;
    loop {
        out.reserve(64 * 1024);
        let before = c.total_in();
        c.compress_vec(input, &mut out, flate2::FlushCompress::Sync)
            .unwrap();
        input = &input[(c.total_in() - before) as usize..];
        if input.is_empty() && out.ends_with(&[0, 0, 0xff, 0xff]) {
            break;
        }
    }
    out.truncate(out.len() - 4);
    out
}

#[test]
fn case_12_13_compressed_messages_and_the_bomb() {
    let s = server();
    let (mut ws, head) = RawWs::try_connect(
        s.addr,
        "/deflate",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    );
    assert!(
        head.contains("Sec-WebSocket-Extensions: permessage-deflate"),
        "{head}"
    );
    // RFC 7692 7.2.3.1: "Hello", compressed, in one frame (RSV1).
    let frame = ws.frame_bytes(
        0x80 | 0x40 | TEXT,
        &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
    );
    ws.send_raw(&frame);
    let echo = ws.recv().unwrap();
    assert_eq!(
        (echo.opcode, echo.rsv),
        (TEXT, 0x4),
        "the echo is compressed too"
    );
    // A compressed message in fragments: RSV1 on the first only.
    let packed = deflate_raw(&vec![b'z'; 200_000]);
    let (a, b) = packed.split_at(packed.len() / 2);
    ws.send_raw(&ws.frame_bytes(0x40 | BINARY, a));
    ws.send(true, CONT, b);
    let echo = ws.recv().unwrap();
    assert_eq!(echo.rsv, 0x4);
    assert!(
        echo.payload.len() < 10_000,
        "sent compressed: {}",
        echo.payload.len()
    );
    // RSV1 on a continuation: 1002.
    ws.send_raw(&ws.frame_bytes(0x40 | BINARY, a));
    ws.send_raw(&ws.frame_bytes(0x80 | 0x40 | CONT, b));
    assert_eq!(ws.expect_close(), Some(1002));

    // A bomb: 50 MiB of zeros in about 50 kB: 1009 once the output passes
    // the 1 MiB limit, never more allocated.
    let (mut ws, _) = RawWs::try_connect(
        s.addr,
        "/deflate",
        "Sec-WebSocket-Extensions: permessage-deflate\r\n",
    );
    let bomb = deflate_raw(&vec![0u8; 50 << 20]);
    assert!(bomb.len() < (1 << 20));
    ws.send_raw(&ws.frame_bytes(0x80 | 0x40 | BINARY, &bomb));
    assert_eq!(ws.expect_close(), Some(1009));
    // Not DEFLATE at all: 1007.
    let (mut ws, _) = RawWs::try_connect(
        s.addr,
        "/deflate",
        "Sec-WebSocket-Extensions: permessage-deflate\r\n",
    );
    ws.send_raw(&ws.frame_bytes(0x80 | 0x40 | BINARY, &[0xff, 0xff, 0xff, 0xff]));
    assert_eq!(ws.expect_close(), Some(1007));
    // Without the extension agreed, RSV1 stays a protocol error.
    let mut ws = RawWs::connect(s.addr, "/echo");
    ws.send_raw(&ws.frame_bytes(
        0x80 | 0x40 | TEXT,
        &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
    ));
    assert_eq!(ws.expect_close(), Some(1002));
}

#[test]
fn squall_client_and_server_compress_both_ways() {
    let s = server();
    let io_loop = IOLoop::new().unwrap();
    let url = format!("ws://127.0.0.1:{}/deflate", s.addr.port());
    let options = websocket::ConnectOptions::new().compression_options(Default::default());
    let ws = io_loop
        .run_sync(
            move || websocket::websocket_connect_with(url.as_str(), options),
            Some(Duration::from_secs(10)),
        )
        .unwrap();
    for message in [
        Message::from("κόσμε ".repeat(1000)),
        Message::from(vec![1u8; 500_000]),
        Message::from(""),
        Message::from("again, with the window kept"),
    ] {
        drop(ws.write_message(message.clone()));
        let w = ws.clone();
        let got = io_loop
            .run_sync(move || w.read_message(), Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(got, Some(message));
    }
}

#[test]
fn an_unread_client_stops_reading_past_its_inbox_limit() {
    // A raw server floods 4,000 messages (16 MiB); the squall client reads
    // none for a while: it holds its inbox (16 messages) and a read buffer
    // of at most max_message_size (1 MiB here) plus a read, the rest stays
    // in the kernel's buffers, and every message still arrives, in order.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    const COUNT: u32 = 4000; // 16 MiB: more than the kernel's buffers hold
    let sent_all = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = sent_all.clone();
    let server = std::thread::spawn(move || {
        let sent_all = flag;
        let (conn, _) = listener.accept().unwrap();
        let mut peer = RawWs::server(conn);
        let head = peer.read_head();
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap()
            .to_string();
        peer.send_raw(
            format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n", accept_key(&key))
                .as_bytes(),
        );
        for i in 0..COUNT {
            peer.send(
                true,
                BINARY,
                &[&i.to_be_bytes()[..], &[0u8; 4096][..]].concat(),
            );
        }
        sent_all.store(true, std::sync::atomic::Ordering::SeqCst);
        peer.send_close(1000, b"");
        peer.expect_close()
    });
    let io_loop = IOLoop::new().unwrap();
    let url = format!("ws://{addr}/");
    let options = websocket::ConnectOptions::new()
        .websocket(WebSocketOptions::new().max_message_size(1 << 20));
    let ws = io_loop
        .run_sync(
            move || websocket::websocket_connect_with(url.as_str(), options),
            Some(Duration::from_secs(10)),
        )
        .unwrap();
    // Let the loop run with nobody reading.
    let l = io_loop.clone();
    io_loop
        .run_sync(
            move || {
                let slept = Future::new();
                let s = slept.clone();
                l.call_later(Duration::from_millis(300), move || s.set_result(()));
                slept
            },
            Some(Duration::from_secs(10)),
        )
        .unwrap();
    let buffered = ws.stream().buffered();
    assert!(
        buffered <= (1 << 20) + 128 * 1024,
        "the client buffered {buffered} bytes unread"
    );
    assert!(
        !sent_all.load(std::sync::atomic::Ordering::SeqCst),
        "the client took everything the server sent without reading it"
    );
    for i in 0..COUNT {
        let w = ws.clone();
        let got = io_loop
            .run_sync(move || w.read_message(), Some(Duration::from_secs(10)))
            .unwrap();
        match got {
            Some(Message::Binary(data)) => assert_eq!(&data[..4], &i.to_be_bytes()),
            other => panic!("message {i}: {other:?}"),
        }
    }
    let w = ws.clone();
    assert_eq!(
        io_loop
            .run_sync(move || w.read_message(), Some(Duration::from_secs(10)))
            .unwrap(),
        None
    );
    assert_eq!(server.join().unwrap(), Some(1000));
}
