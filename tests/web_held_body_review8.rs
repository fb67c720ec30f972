//! Review of the fixes of review6's findings (18d3f22, 22e73ed): the
//! streaming handler held in its exchange for its `async` prepare, the
//! verb after an `async` prepare that ended (`prepare_ended`), the body's
//! limit and `100 Continue` after the hold (`begin_body_after`), and a
//! gzipped body's pieces each waiting for the last one's `data_received`
//! (`RequestGunzip`'s kept-back bytes).
//!
//! Servers listen on 127.0.0.1, on ports the system picks (`TestServer`).

#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;

use http_kit::{connect, raw_request, read_reply, Events, TestServer};
use squall::gen;
use squall::http::HTTPServer;
use squall::web::{Application, Exchange, RequestHandler};
use squall::{Error, Future, IOLoop};

// ----- helpers ---------------------------------------------------------------

fn no_config(_: &HTTPServer) {}

/// Lets the server's callbacks that follow a reply run.
fn settle() {
    std::thread::sleep(Duration::from_millis(150));
}

/// `n` requests `raw` on one kept-alive connection: their replies.
fn on_one_connection(s: &TestServer, raw: &str, n: usize) -> Vec<(u16, String)> {
    let mut conn = connect(s.addr);
    conn.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = Vec::new();
    (0..n)
        .map(|_| {
            conn.write_all(raw.as_bytes()).unwrap();
            let r = read_reply(&mut conn, &mut buf, false).expect("a reply");
            (r.status, r.text())
        })
        .collect()
}

// ----- the exchange after an async prepare that ended at once ----------------

/// A handler (not streaming) whose `prepare` starts an `async` block that
/// waits `wait_ms` (0: ends in its first poll, inside `prepare`) and whose
/// `get` answers synchronously; `get` notes which exchange it got (its
/// address, through the connection handle it holds).
struct Addressed {
    events: &'static Events,
    wait_ms: Option<u64>,
}

impl RequestHandler for Addressed {
    fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
        let Some(ms) = self.wait_ms else {
            return Ok(());
        };
        x.run_async(move |_x| async move {
            if ms > 0 {
                gen::sleep(Duration::from_millis(ms)).await?;
            }
            Ok(())
        })
    }
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        self.events
            .push(format!("exchange {:p}", x.connection() as *const _));
        x.write("got");
        Ok(())
    }
}

static ADDR_PLAIN: Events = Events::new();
static ADDR_WAITS: Events = Events::new();
static ADDR_AT_ONCE: Events = Events::new();

fn addressed_app() -> Application {
    Application::new()
        .route("/plain", || Addressed {
            events: &ADDR_PLAIN,
            wait_ms: None,
        })
        .route("/waits", || Addressed {
            events: &ADDR_WAITS,
            wait_ms: Some(1),
        })
        .route("/at_once", || Addressed {
            events: &ADDR_AT_ONCE,
            wait_ms: Some(0),
        })
}

/// How many exchanges `n` kept-alive GETs of `path` were answered with.
fn exchanges_for(s: &TestServer, path: &str, events: &Events, n: usize) -> usize {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    for r in on_one_connection(s, &raw, n) {
        assert_eq!(r, (200, "got".to_owned()));
    }
    settle();
    let seen = events.starting("exchange ");
    assert_eq!(seen.len(), n);
    seen.into_iter().collect::<HashSet<_>>().len()
}

// Controls: a plain prepare, and an `async` prepare that waits, reuse
// their connection's exchange request after request.
#[test]
fn kept_alive_requests_reuse_their_exchange_after_a_plain_or_waiting_prepare() {
    let s = TestServer::start(addressed_app, no_config);
    assert!(exchanges_for(&s, "/plain", &ADDR_PLAIN, 40) <= 2);
    assert!(exchanges_for(&s, "/waits", &ADDR_WAITS, 40) <= 2);
}

// 18d3f22's `prepare_ended` clears `asynchronous` inside the method call
// (`handler::steps`: prepare and verb run in one `AppInner::in_method`).
// The block's `run_async` had deferred the request's stack context
// (`set_async_deferred`: `inner.entered` = a `Deferral` whose pending
// frame in the thread's stack-context state holds an `Rc` of the
// exchange). `in_method`'s end leaves it only `if x.is_async()`
// (`take_entered`), so the deferral is never dropped: the exchange is kept
// by the thread-local `pending` list for good (a cycle through
// `inner.entered`), with its request and body, one per request, and the
// thread's stack context stays on the deferred frame after the method.
// Here: every request gets a fresh exchange at a new address (none is
// freed to be reused).
#[test]
fn kept_alive_requests_reuse_their_exchange_after_an_async_prepare_that_ended_at_once() {
    let s = TestServer::start(addressed_app, no_config);
    let n = exchanges_for(&s, "/at_once", &ADDR_AT_ONCE, 40);
    assert!(n <= 2, "40 requests, {n} exchanges");
}

/// The process's resident set, in KiB.
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

/// `post` answers the body's length; `prepare` starts an `async` block
/// that ends in its first poll if `async_prepare`.
struct PostLen {
    async_prepare: bool,
}

impl RequestHandler for PostLen {
    fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
        if !self.async_prepare {
            return Ok(());
        }
        x.run_async(|_x| async move { Ok(()) })
    }
    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write(format!("{}", x.request().body().len()));
        Ok(())
    }
}

// The same leak, measured: each leaked exchange keeps its request's body.
// 200 POSTs of 256 KiB: RSS +~1.4 MiB after a plain prepare, +~51 MiB
// after an `async` prepare that ended at once (run alone: RSS is the
// process's, so other tests running beside it blur it).
#[test]
fn a_leaked_exchange_keeps_its_request_body() {
    let s = TestServer::start(
        || {
            Application::new()
                .route("/plain", || PostLen {
                    async_prepare: false,
                })
                .route("/at_once", || PostLen {
                    async_prepare: true,
                })
        },
        no_config,
    );
    let body = "x".repeat(256 * 1024);
    let mut grew = Vec::new();
    for path in ["/plain", "/at_once"] {
        let before = rss_kib();
        let raw = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        for r in on_one_connection(&s, &raw, 200) {
            assert_eq!(r, (200, body.len().to_string()));
        }
        settle();
        grew.push(rss_kib().saturating_sub(before));
    }
    eprintln!("RSS growth (KiB), plain then at_once: {grew:?}");
    assert!(grew[1] < 16 * 1024, "RSS growth (KiB): {grew:?}");
}

// ----- set_async in prepare on a kept-alive connection ------------------------

/// `prepare` calls `set_async()` (Tornado 3 style, nothing else); `get`
/// writes `a` and finishes with `b` 20 ms later.
struct AsyncByHand;

impl RequestHandler for AsyncByHand {
    fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_async();
        Ok(())
    }
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write("a");
        let x = x.clone();
        IOLoop::current().call_later(Duration::from_millis(20), move || {
            x.write("b");
            let _ = x.finish();
        });
        Ok(())
    }
}

// The exchange (and its coroutine slot) reused after an `async` prepare
// that waited: `preparing` resets `prepare_block`, so the next request's
// `set_async()` in a plain prepare is not undone by `prepare_ended`.
#[test]
fn set_async_in_a_plain_prepare_after_an_async_prepare_on_the_same_connection() {
    let s = TestServer::start(
        || {
            Application::new()
                .route("/waits", || Addressed {
                    events: &ADDR_UNUSED,
                    wait_ms: Some(1),
                })
                .route("/by_hand", || AsyncByHand)
        },
        no_config,
    );
    let mut conn = connect(s.addr);
    conn.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = Vec::new();
    for path in ["/waits", "/by_hand", "/waits", "/by_hand"] {
        conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let r = read_reply(&mut conn, &mut buf, false).expect("a reply");
        let want = if path == "/waits" { "got" } else { "ab" };
        assert_eq!((r.status, r.text().as_str()), (200, want), "{path}");
    }
}

static ADDR_UNUSED: Events = Events::new();

// ----- streaming: the hold, the limit, the clock, gzip ------------------------

/// A streaming handler: `prepare` waits `prepare_ms` in an `async` block
/// (0: a plain prepare); each `data_received` returns a future done
/// `data_ms` later (0: none); `post` answers the body's length and
/// checksum.
struct Stream {
    events: &'static Events,
    prepare_ms: u64,
    data_ms: u64,
    body: Rc<RefCell<Vec<u8>>>,
    pending: Rc<Cell<bool>>,
}

impl Stream {
    fn new(events: &'static Events, prepare_ms: u64, data_ms: u64) -> Stream {
        Stream {
            events,
            prepare_ms,
            data_ms,
            body: Rc::default(),
            pending: Rc::default(),
        }
    }
}

/// FNV-1a: a checksum that sees order, loss and duplication.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl RequestHandler for Stream {
    fn stream_request_body() -> bool {
        true
    }
    fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
        self.events.push("prepare");
        let ms = self.prepare_ms;
        if ms == 0 {
            return Ok(());
        }
        x.run_async(move |_x| async move {
            gen::sleep(Duration::from_millis(ms)).await?;
            Ok(())
        })
    }
    fn data_received(&mut self, _x: &Exchange, chunk: &[u8]) -> Result<Option<Future<()>>, Error> {
        self.events.push("data");
        if self.pending.get() {
            self.events.push("data while its last future pending");
        }
        self.body.borrow_mut().extend_from_slice(chunk);
        if self.data_ms == 0 {
            return Ok(None);
        }
        self.pending.set(true);
        let (done, pending) = (Future::new(), self.pending.clone());
        let d = done.clone();
        IOLoop::current().call_later(Duration::from_millis(self.data_ms), move || {
            pending.set(false);
            d.set_result(());
        });
        Ok(Some(done))
    }
    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        self.events.push("post");
        let body = self.body.borrow();
        x.write(format!("{} {:016x}", body.len(), fnv(&body)));
        Ok(())
    }
    fn on_finish(&mut self) {
        self.events.push("on_finish");
    }
}

static LIMIT_HELD: Events = Events::new();

// The limit checked once the hold is done (`begin_body_after`), not
// raised: 413 with the handler's page, no `100 Continue` before it, no
// data, no verb, `on_finish` once (the handler was parked: `State::Held`
// in `body_refused`).
#[test]
fn a_body_over_the_limit_after_the_hold_is_refused_once() {
    let s = TestServer::start(
        || Application::new().route("/", || Stream::new(&LIMIT_HELD, 50, 0)),
        |server| server.set_max_body_size(16),
    );
    let mut conn = connect(s.addr);
    conn.write_all(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let mut first = [0u8; 12];
    conn.read_exact(&mut first).unwrap();
    assert_eq!(
        &first,
        b"HTTP/1.1 413",
        "{}",
        String::from_utf8_lossy(&first)
    );
    let r = raw_request(
        s.addr,
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{}",
            "x".repeat(100)
        )
        .as_bytes(),
    )
    .expect("a reply");
    assert_eq!(r.status, 413);
    settle();
    let seen = LIMIT_HELD.get();
    assert_eq!(LIMIT_HELD.count("on_finish"), 2, "{seen:?}");
    assert_eq!(LIMIT_HELD.count("data"), 0, "{seen:?}");
    assert_eq!(LIMIT_HELD.count("post"), 0, "{seen:?}");
}

static CLOCK_HELD: Events = Events::new();

// The body's clock does not count the hold, nor a pause: a 300 ms body
// timeout, a prepare that takes 600 ms, then pieces each paused 100 ms.
#[test]
fn the_body_timeout_does_not_count_the_hold_or_the_pauses() {
    let s = TestServer::start(
        || Application::new().route("/", || Stream::new(&CLOCK_HELD, 600, 100)),
        |server| server.set_body_timeout(Duration::from_millis(300)),
    );
    let body = [7u8; 10];
    let mut conn = connect(s.addr);
    conn.write_all(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    // Four pieces in four reads, each taking a 100 ms pause.
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(150));
        conn.write_all(b"a\r\n\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\r\n")
            .unwrap();
    }
    conn.write_all(b"0\r\n\r\n").unwrap();
    let r = read_reply(&mut conn, &mut Vec::new(), false).expect("a reply");
    let all = body.repeat(4);
    assert_eq!(
        (r.status, r.text()),
        (200, format!("{} {:016x}", all.len(), fnv(&all))),
        "{:?}",
        CLOCK_HELD.get()
    );
}

/// Compressible but not uniform: order, loss and duplication show.
#[cfg(feature = "gzip")]
fn sample(n: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_u32;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if i % 64 < 48 {
                b"the quick brown fox "[i % 20]
            } else {
                (x % 7) as u8 + b'0'
            }
        })
        .collect()
}

#[cfg(feature = "gzip")]
fn gzipped(data: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(data).unwrap();
    z.finish().unwrap()
}

#[cfg(feature = "gzip")]
static GZIP_WHOLE: Events = Events::new();

// Every decoded piece pauses (10 ms): what the handler gets is the body,
// in order, nothing lost or twice, whether the compressed body comes in
// the head's write, in slow pieces, or chunked; and after a hold.
#[cfg(feature = "gzip")]
#[test]
fn a_gzipped_body_paused_at_every_piece_arrives_whole() {
    fn app() -> Application {
        Application::new()
            .route("/", || Stream::new(&GZIP_WHOLE, 0, 10))
            .route("/held", || Stream::new(&GZIP_WHOLE, 50, 10))
    }
    let s = TestServer::start(app, |server| server.set_decompress_request(true));
    let plain = sample(3 << 20);
    let z = gzipped(&plain);
    let want = format!("{} {:016x}", plain.len(), fnv(&plain));
    for path in ["/", "/held"] {
        // In the head's write.
        let mut raw = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            z.len()
        )
        .into_bytes();
        raw.extend_from_slice(&z);
        let r = raw_request(s.addr, &raw).expect("a reply");
        assert_eq!((r.status, r.text()), (200, want.clone()), "{path} whole");
        // Chunked, in odd pieces, some of them slow.
        let mut conn = connect(s.addr);
        conn.write_all(
            format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        for (i, piece) in z.chunks(7777).enumerate() {
            let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
            chunk.extend_from_slice(piece);
            chunk.extend_from_slice(b"\r\n");
            conn.write_all(&chunk).unwrap();
            if i % 5 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        conn.write_all(b"0\r\n\r\n").unwrap();
        let r = read_reply(&mut conn, &mut Vec::new(), false).expect("a reply");
        assert_eq!((r.status, r.text()), (200, want.clone()), "{path} chunked");
    }
    let seen = GZIP_WHOLE.get();
    assert!(
        !seen.iter().any(|e| e.contains("pending")),
        "pending overlap"
    );
}
