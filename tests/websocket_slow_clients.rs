//! 10,000 WebSocket clients that upgrade, send one byte of a frame and
//! then nothing — never finishing the frame, never reading, never
//! answering a ping — against a server with a ping interval: every one is
//! closed by the ping timeout (and the close timeout after it), memory per
//! connection stays small, every fd comes back, and a normal client keeps
//! getting its echoes all along.
//!
//! The slow clients are a Python process (tests/websocket_slow_clients.py),
//! so their 10,000 sockets do not count against this process's fd limit.
#![cfg(feature = "websocket")]

mod common;

use common::open_fds;

#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;
#[path = "common/peers.rs"]
mod need;
#[path = "common/ws.rs"]
mod ws_kit;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_kit::TestServer;
use need::Peer;
use squall::http::{HTTPConnection, HTTPServerRequest};
use squall::websocket::WebSocketOptions;
use squall::websocket::{self, Handled, Message, WebSocketConnection, WebSocketHandler};
use ws_kit::{RawWs, PING, PONG, TEXT};

const SLOW_CLIENTS: usize = 10_000;

/// `SQUALL_SLOW_CLIENTS` overrides the count (to try another size by hand).
fn slow_clients() -> usize {
    std::env::var("SQUALL_SLOW_CLIENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(SLOW_CLIENTS)
}

struct Counted {
    opened: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

impl WebSocketHandler for Counted {
    fn open(
        &mut self,
        _ws: &WebSocketConnection,
        _request: &HTTPServerRequest,
    ) -> Result<(), squall::Error> {
        self.opened.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn on_message(&mut self, ws: &WebSocketConnection, message: Message) -> Handled {
        drop(ws.write_message(message));
        Ok(None)
    }
    fn on_close(&mut self, _ws: &WebSocketConnection) {
        self.closed.fetch_add(1, Ordering::SeqCst);
    }
}

/// Kills the child when the test ends, however it ends.
struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// One echo round trip on the normal client, answering the server's
/// pings on the way; its duration.
fn echo(ws: &mut RawWs, i: usize) -> Duration {
    let start = Instant::now();
    let text = format!("message {i}");
    ws.send(true, TEXT, text.as_bytes());
    loop {
        let frame = ws.recv().expect("the normal client was closed");
        match frame.opcode {
            PING => ws.send(true, PONG, &frame.payload),
            TEXT => {
                assert_eq!(frame.payload, text.as_bytes());
                return start.elapsed();
            }
            other => panic!("unexpected opcode {other}"),
        }
    }
}

#[test]
fn ten_thousand_clients_that_never_finish_a_frame_are_closed() {
    let n = slow_clients();
    if !need::ready(&[Peer::Python]) {
        return;
    }
    let (opened, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (o, c) = (opened.clone(), closed.clone());
    let server = TestServer::start(
        move || {
            move |req: &HTTPServerRequest, conn: &HTTPConnection| {
                let options = WebSocketOptions::new()
                    .ping_interval(Duration::from_secs(3))
                    .ping_timeout(Duration::from_secs(2))
                    .close_timeout(Duration::from_millis(500));
                let handler = Counted {
                    opened: o.clone(),
                    closed: c.clone(),
                };
                websocket::accept(req, conn, handler, options).map(drop)
            }
        },
        |_| {},
    );
    let (rss_before, fds_before) = (rss_kib(), open_fds());
    // (Its reads time out after 10 s: a starved client fails the test.)
    let mut normal = RawWs::connect(server.addr, "/ws");

    let python = std::env::var("SQUALL_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/websocket_slow_clients.py"
    );
    let mut slow = Killed(
        Command::new(python)
            .args([script, &server.addr.port().to_string(), &n.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(slow.0.stdout.take().unwrap()).lines();

    // Echoes all along: while the slow clients connect, while they are
    // held, while they are closed.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut rtts = Vec::new();
    let mut peak_rss = 0;
    // The most slow clients open at once, and the RSS then.
    let (mut most_open, mut rss_most_open, mut fds_most_open) = (0, 0, 0);
    let mut all_opened_at = None;
    while closed.load(Ordering::SeqCst) < n {
        assert!(
            Instant::now() < deadline,
            "after 120 s: {} opened, {} closed",
            opened.load(Ordering::SeqCst),
            closed.load(Ordering::SeqCst)
        );
        rtts.push(echo(&mut normal, rtts.len()));
        let rss = rss_kib();
        peak_rss = peak_rss.max(rss);
        // (The normal client is one of the opened.)
        let (o, c) = (
            opened.load(Ordering::SeqCst) - 1,
            closed.load(Ordering::SeqCst),
        );
        if o - c > most_open {
            (most_open, rss_most_open, fds_most_open) = (o - c, rss, open_fds());
        }
        if all_opened_at.is_none() && o == n {
            all_opened_at = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = lines.next().unwrap().unwrap();
    let close_took = all_opened_at
        .unwrap_or_else(|| {
            panic!(
                "opened {}, closed {}",
                opened.load(Ordering::SeqCst),
                closed.load(Ordering::SeqCst)
            )
        })
        .elapsed();
    // The Python side still holds every socket: the server closed them.
    assert!(slow.0.try_wait().unwrap().is_none());
    drop(slow);

    rtts.sort();
    let p99 = rtts[rtts.len() * 99 / 100];
    let per_conn = (rss_most_open.saturating_sub(rss_before)) * 1024 / most_open;
    eprintln!(
        "{sent}; {} echoes, p50 {:?} p99 {:?} max {:?}; RSS {rss_before} KiB -> {rss_most_open} KiB \
         with {most_open} open at once ({per_conn} B each), peak {peak_rss} KiB; fds \
         {fds_before} -> {fds_most_open}; the last closed {close_took:?} after the last opened",
        rtts.len(),
        rtts[rtts.len() / 2],
        p99,
        rtts[rtts.len() - 1],
    );
    // Bounded memory per connection (a slow client costs its socket's
    // buffers and a little state, never a frame's declared length).
    assert!(per_conn < 32 * 1024, "{per_conn} B per slow connection");
    // The normal client was served throughout.
    assert!(p99 < Duration::from_secs(2), "p99 echo {p99:?}");
    // Every server-side fd came back (the normal client's two remain).
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds() > fds_before + 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        open_fds() <= fds_before + 2,
        "fds: {fds_before} before, {} after",
        open_fds()
    );
    assert!(
        server.loop_stats().0 <= 3,
        "handlers left: {:?}",
        server.loop_stats()
    );
}
