//! Slow bodies with large declared lengths (issue #26): memory follows the
//! bytes that arrive, never the `Content-Length` a peer promises.
//!
//! 100 clients each declare a 50 MB body and send one byte. If any layer
//! (the HTTP connection, the web layer's body collection, the closure
//! adapter's, the HTTP client's, IOStream's `read_bytes`) reserved room
//! for the declared length, even capped at 1 MiB, the process would map
//! 100 MiB or more: its address space (`VmSize`) shows a reservation that
//! is never touched, its resident set (`VmRSS`) one that is zeroed. Both
//! must stay within a few MiB.
//!
//! One test function: `VmSize` is the whole process's, and a second test
//! on another harness thread (its stack, its malloc arena) would move it.

#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use http_kit::{connect, raw_request, TestServer};
use squall::http::{HTTPConnection, HTTPServerRequest};
use squall::httpclient::{AsyncHTTPClient, ClientConfig, HTTPRequest};
use squall::httputil::HTTPHeaders;
use squall::iostream::IOStream;
use squall::web::{Application, Exchange, RequestHandler};
use squall::{Error, IOLoop};

/// Clients at once, each declaring `DECLARED` bytes.
const CLIENTS: usize = 100;
/// 50 MB: under the server's and client's default 100 MiB `max_body_size`,
/// so the body is accepted and read.
const DECLARED: usize = 50_000_000;
/// What the process may grow by while the slow bodies are held (both
/// resident and mapped): 100 KiB per client. A 1 MiB reservation per
/// client would be ten times this.
const MARGIN: usize = 10 << 20;

/// A field of /proc/self/status, in bytes.
fn status_bytes(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"));
    let kb: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a number of kB");
    kb * 1024
}

/// (resident, mapped) bytes of the process, after freed heap pages went back.
fn memory() -> (usize, usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap memory.
    unsafe {
        libc::malloc_trim(0);
    }
    (status_bytes("VmRSS:"), status_bytes("VmSize:"))
}

/// Fails if either figure grew by `MARGIN` or more; prints them.
fn check_growth(what: &str, before: (usize, usize), after: (usize, usize)) {
    let rss = after.0.saturating_sub(before.0);
    let mapped = after.1.saturating_sub(before.1);
    println!(
        "{what}: {CLIENTS} bodies of {DECLARED} declared bytes, 1 received: \
         RSS +{} KiB ({} -> {} KiB), VmSize +{} KiB",
        rss / 1024,
        before.0 / 1024,
        after.0 / 1024,
        mapped / 1024
    );
    assert!(rss < MARGIN, "{what}: RSS grew {rss} bytes");
    assert!(mapped < MARGIN, "{what}: address space grew {mapped} bytes");
}

/// Answers a POST with its body's length.
struct Length;
impl RequestHandler for Length {
    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write(x.request().body().len().to_string());
        Ok(())
    }
}

fn slow_body_head(addr: SocketAddr) -> TcpStream {
    let mut conn = connect(addr);
    write!(
        conn,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {DECLARED}\r\n\r\nx"
    )
    .expect("send");
    conn
}

/// 100 slow bodies held by `server`: the process's growth while held.
fn hold_slow_bodies(what: &str, server: &TestServer) {
    // Warm up: a whole POST, so what is allocated once per server (buffers
    // reused between requests, the loop's tables) is there before.
    let reply = raw_request(
        server.addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .expect("warm-up answer");
    assert_eq!((reply.status, reply.text()), (200, "5".to_string()));
    let before = memory();
    let conns: Vec<TcpStream> = (0..CLIENTS).map(|_| slow_body_head(server.addr)).collect();
    // The server's loop handles events in order: once a later request is
    // answered, the slow heads and their byte have been read (the wait
    // covers a scheduler that runs the server's thread late).
    thread::sleep(Duration::from_millis(200));
    let reply = raw_request(
        server.addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    )
    .expect("an answer beside the slow bodies");
    assert_eq!((reply.status, reply.text()), (200, "2".to_string()));
    assert_eq!(
        server.loop_stats().0,
        1 + CLIENTS,
        "every slow body is held"
    );
    let after = memory();
    check_growth(what, before, after);
    drop(conns);
}

/// A raw server: the first connection gets a whole small answer, every
/// later one a head declaring `DECLARED` bytes and one byte of it. Counts
/// the slow answers sent; holds the connections until `stop` says.
fn slow_answers(counter: Arc<AtomicUsize>, stop: mpsc::Receiver<()>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    thread::spawn(move || {
        let mut held = Vec::new();
        let mut first = true;
        loop {
            if stop.try_recv().is_ok() {
                return;
            }
            let mut conn = match listener.accept() {
                Ok((conn, _)) => conn,
                Err(_) => {
                    thread::sleep(Duration::from_millis(2));
                    continue;
                }
            };
            conn.set_nonblocking(false).expect("blocking");
            conn.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            if first {
                // Not kept: a pooled connection would take a later fetch.
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
                first = false;
                continue;
            } else {
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Length: {DECLARED}\r\n\r\nx"
                );
                counter.fetch_add(1, Ordering::SeqCst);
            }
            held.push(conn);
        }
    });
    addr
}

/// The HTTP client's side: 100 answers declaring 50 MB, one byte each.
fn client_reads_slow_answers() {
    let counter = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = mpsc::channel();
    let addr = slow_answers(counter.clone(), stop_rx);
    let io_loop = IOLoop::new().expect("loop");
    let config = ClientConfig::new()
        .max_clients(CLIENTS + 1)
        .max_per_host(CLIENTS + 1);
    let client = AsyncHTTPClient::with_config(&io_loop, config);
    let url = format!("http://{addr}/");
    let c = client.clone();
    let u = url.clone();
    let warm = io_loop
        .run_sync(
            move || c.fetch(HTTPRequest::new(u)),
            Some(Duration::from_secs(10)),
        )
        .expect("warm-up fetch");
    assert_eq!(warm.body, b"ok");
    let before = memory();
    let pending: Vec<_> = (0..CLIENTS)
        .map(|_| {
            client.fetch(HTTPRequest::new(url.clone()).request_timeout(Duration::from_secs(60)))
        })
        .collect();
    // Run the loop until every answer's byte was sent, and a little more
    // for the client to read it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while counter.load(Ordering::SeqCst) < CLIENTS && Instant::now() < deadline {
        run_for(&io_loop, Duration::from_millis(20));
    }
    assert_eq!(
        counter.load(Ordering::SeqCst),
        CLIENTS,
        "every fetch was answered"
    );
    run_for(&io_loop, Duration::from_millis(200));
    assert!(
        pending.iter().all(|f| !f.done()),
        "the bodies are still coming"
    );
    let after = memory();
    check_growth("AsyncHTTPClient", before, after);
    client.close();
    drop(pending);
    let _ = stop_tx.send(());
}

/// IOStream itself: `read_bytes` of 50 MB with one byte arrived.
fn stream_reads_declared_lengths() {
    let io_loop = IOLoop::new().expect("loop");
    let pairs: Vec<(UnixStream, UnixStream)> = (0..CLIENTS)
        .map(|_| UnixStream::pair().expect("socketpair"))
        .collect();
    let before = memory();
    let mut held = Vec::new();
    for (ours, mut theirs) in pairs {
        let stream = IOStream::with_loop(ours, &io_loop).expect("stream");
        let read = stream.read_bytes(DECLARED);
        theirs.write_all(b"x").expect("send");
        held.push((stream, read, theirs));
    }
    run_for(&io_loop, Duration::from_millis(200));
    assert!(
        held.iter().all(|(_, read, _)| !read.done()),
        "the reads wait for the rest"
    );
    let after = memory();
    check_growth("IOStream::read_bytes", before, after);
    for (stream, _, _) in &held {
        stream.close();
    }
}

/// Runs `io_loop` for `d`.
fn run_for(io_loop: &IOLoop, d: Duration) {
    let l = io_loop.clone();
    io_loop.call_later(d, move || l.stop());
    io_loop.start().expect("loop");
}

#[test]
fn slow_bodies_cost_the_bytes_received_not_the_length_declared() {
    // The web layer, which buffers a body for the handler.
    let server = TestServer::start(|| Application::new().route("/", || Length), |_| {});
    hold_slow_bodies("web::Application", &server);
    drop(server);

    // The closure adapter, which buffers it for the function.
    let server = TestServer::start(
        || {
            |req: &HTTPServerRequest, conn: &HTTPConnection| {
                let body = req.body().len().to_string();
                conn.write_response(200, &HTTPHeaders::new(), body.as_bytes())
            }
        },
        |_| {},
    );
    hold_slow_bodies("closure delegate", &server);
    drop(server);

    client_reads_slow_answers();
    stream_reads_declared_lengths();
}
