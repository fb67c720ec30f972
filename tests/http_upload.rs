//! A 1 GiB upload streamed through a message delegate, and a 256 MiB
//! download streamed with `flush()`, each in bounded memory. In a test
//! binary of their own, one at a time: the checks read this process's RSS,
//! which other tests running beside them would move.

#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;

use std::io::Write;
use std::time::{Duration, Instant};

use http_kit::{connect, read_reply, TestServer};
use squall::http::{
    HTTPConnection, HTTPMessageDelegate, HTTPServerConnectionDelegate, HTTPServerRequest,
};
use squall::httputil::HTTPHeaders;
use squall::Future;

/// One RSS-measuring test at a time.
static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Counts the body as it streams, pausing on every piece for a timer:
/// memory stays bounded whatever the upload's size.
struct Counter;
struct Counting {
    conn: HTTPConnection,
    seen: u64,
    pieces: u64,
}

impl HTTPServerConnectionDelegate for Counter {
    type Message = Counting;
    fn start_request(&self, conn: &HTTPConnection) -> Counting {
        Counting {
            conn: conn.clone(),
            seen: 0,
            pieces: 0,
        }
    }
}

impl HTTPMessageDelegate for Counting {
    fn headers_received(&mut self, request: Box<HTTPServerRequest>) {
        self.conn.set_max_body_size(usize::MAX);
        self.conn.recycle_request(request);
    }
    fn data_received(&mut self, chunk: &[u8]) -> Option<Future<()>> {
        self.seen += chunk.len() as u64;
        self.pieces += 1;
        // Every 64th piece, wait a moment: the backpressure path.
        (self.pieces % 64 == 0).then(|| {
            let f = Future::new();
            let done = f.clone();
            self.conn
                .io_loop()
                .call_later(Duration::from_millis(1), move || done.set_result(()));
            f
        })
    }
    fn finish(&mut self) {
        let body = format!("{} {}", self.seen, rss_kib());
        let _ = self
            .conn
            .write_response(200, &HTTPHeaders::new(), body.as_bytes());
    }
}

/// This process's resident set, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_one_gib_upload_streams_in_bounded_memory() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let s = TestServer::start(|| Counter, |_| {});
    const SIZE: u64 = 1 << 30;
    let before = rss_kib();
    let mut conn = connect(s.addr);
    conn.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let head = format!("PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: {SIZE}\r\n\r\n");
    conn.write_all(head.as_bytes()).unwrap();
    let block = vec![b'x'; 1 << 20];
    let deadline = Instant::now() + Duration::from_secs(100);
    let mut peak = 0;
    for i in 0..(SIZE >> 20) {
        conn.write_all(&block).unwrap();
        if i % 64 == 0 {
            peak = peak.max(rss_kib());
        }
        assert!(Instant::now() < deadline, "upload too slow");
    }
    let r = read_reply(&mut conn, &mut Vec::new(), false).expect("reply");
    let text = r.text();
    let (seen, server_rss) = text.split_once(' ').unwrap();
    assert_eq!(seen.parse::<u64>().unwrap(), SIZE);
    // Client and server share this process: its growth bounds the
    // server's buffers (the client writes from one 1 MiB block).
    let grown = peak.max(server_rss.parse().unwrap()).saturating_sub(before);
    eprintln!("1 GiB upload: RSS before {before} KiB, peak {peak} KiB, server's {server_rss} KiB");
    assert!(
        grown < 64 * 1024,
        "RSS grew by {grown} KiB during a 1 GiB upload"
    );
}

/// Streams `TOTAL` bytes in pieces, writing each only when the last one's
/// `flush()` has resolved: memory stays bounded however big the response.
struct Download;
impl squall::web::RequestHandler for Download {
    fn get(&mut self, x: &squall::web::Exchange) -> Result<(), squall::Error> {
        x.set_async();
        x.set_header("Content-Length", TOTAL.to_string())?;
        fn next(x: squall::web::Exchange, sent: u64) {
            if sent == TOTAL {
                let _ = x.finish();
                return;
            }
            x.write(vec![b'y'; PIECE as usize]);
            let x2 = x.clone();
            x.flush().add_done_callback(move |f: &Future<()>| {
                if f.error().is_none() {
                    next(x2, sent + PIECE);
                }
            });
        }
        next(x.clone(), 0);
        Ok(())
    }
}

const TOTAL: u64 = 256 << 20;
const PIECE: u64 = 256 << 10;

#[test]
fn a_256_mib_response_streams_in_bounded_memory() {
    use std::io::Read;
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let s = TestServer::start(
        || squall::web::Application::new().route("/down", || Download),
        |_| {},
    );
    let before = rss_kib();
    let mut conn = connect(s.addr);
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    conn.write_all(b"GET /down HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 64 << 10];
    let (mut got, mut peak) = (0u64, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = conn.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got += n as u64;
        if got % (16 << 20) < n as u64 {
            peak = peak.max(rss_kib());
            // A slow reader: the server must wait, not buffer.
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(Instant::now() < deadline, "download too slow");
    }
    assert!(got > TOTAL, "{got} bytes (head and body)");
    let grown = peak.saturating_sub(before);
    eprintln!("256 MiB download: RSS before {before} KiB, peak {peak} KiB");
    assert!(
        grown < 64 * 1024,
        "RSS grew by {grown} KiB during a 256 MiB download"
    );
}
