//! squall's HTTP client against real servers: Python Tornado (keep-alive,
//! chunked answers, redirects, errors, large bodies, slow handlers),
//! `python3 -m http.server` (HTTP/1.0, one connection per request) and
//! scripted raw TCP servers (malformed answers, servers that close pooled
//! connections, slow answers).
//!
//! Needs `python3` with Tornado on PATH (`.ci/run` installs it in a venv).

mod common;
#[path = "httpclient/peers.rs"]
mod peers;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use peers::{read_request, reply, PyServer, RawServer};
use squall::httpclient::{
    AsyncHTTPClient, ClientConfig, HTTPClient, HTTPError, HTTPRequest, HTTPResponse,
    HTTPTimeoutError, TimeoutPhase,
};
use squall::{Error, ErrorKind, Future, IOLoop};

/// Every fetch in these tests is bounded by this, on top of its own timeouts.
const LIMIT: Duration = Duration::from_secs(15);

fn setup(config: ClientConfig) -> (IOLoop, AsyncHTTPClient) {
    let io_loop = IOLoop::new().expect("loop");
    let client = AsyncHTTPClient::with_config(&io_loop, config);
    (io_loop, client)
}

fn fetch(
    io_loop: &IOLoop,
    client: &AsyncHTTPClient,
    req: impl Into<HTTPRequest>,
) -> Result<HTTPResponse, Error> {
    let req = req.into();
    io_loop.run_sync(|| client.fetch(req), Some(LIMIT))
}

/// Runs several fetches at once; their outcomes in order.
fn fetch_all(
    io_loop: &IOLoop,
    client: &AsyncHTTPClient,
    reqs: Vec<HTTPRequest>,
) -> Vec<Result<HTTPResponse, Error>> {
    let joined = io_loop.run_sync(
        || {
            let all = Future::new();
            let futures: Vec<_> = reqs.into_iter().map(|r| client.fetch(r)).collect();
            let n = futures.len();
            let results = std::rc::Rc::new(std::cell::RefCell::new(
                (0..n).map(|_| None).collect::<Vec<_>>(),
            ));
            for (i, f) in futures.into_iter().enumerate() {
                let (results, all) = (results.clone(), all.clone());
                f.add_done_callback(move |f: &Future<HTTPResponse>| {
                    results.borrow_mut()[i] = Some(f.take_result());
                    if results.borrow().iter().all(Option::is_some) {
                        let out: Vec<_> = results.borrow_mut().drain(..).flatten().collect();
                        let _ = all.set_result(out);
                    }
                });
            }
            all
        },
        Some(LIMIT),
    );
    joined.expect("fetches did not finish")
}

fn ok(result: Result<HTTPResponse, Error>) -> HTTPResponse {
    result.unwrap_or_else(|err| panic!("fetch failed: {err}"))
}

fn kind(result: Result<HTTPResponse, Error>) -> (ErrorKind, Error) {
    let err = result.expect_err("fetch succeeded, but should have failed");
    (err.kind(), err)
}

fn timeout_phase(err: &Error) -> Option<TimeoutPhase> {
    HTTPTimeoutError::from_error(err).map(|t| t.phase)
}

/// After the client is closed: no timeout left behind on the loop.
fn assert_clean(io_loop: &IOLoop, client: &AsyncHTTPClient) {
    client.close();
    assert_eq!(io_loop.timer_stats().pending, 0, "pending timeouts left");
    let stats = client.stats();
    assert_eq!((stats.active, stats.queued, stats.idle), (0, 0, 0));
}

// ----- Tornado ---------------------------------------------------------------

#[test]
fn tornado_get_and_keep_alive_reuse() {
    let server = PyServer::tornado();
    let (io_loop, client) = setup(ClientConfig::new());
    let hello = ok(fetch(&io_loop, &client, server.url("/hello")));
    assert_eq!((hello.code, hello.reason.as_str()), (200, "OK"));
    assert_eq!(hello.body, b"Hello, world");
    assert_eq!(hello.effective_url, server.url("/hello"));
    assert!(hello
        .headers
        .get("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(hello.headers.get("Content-Length"), Some("12"));
    assert!(hello.request_time > Duration::ZERO && hello.request_time < LIMIT);
    assert_eq!(hello.request.url, server.url("/hello"));

    // Five more requests: one connection (the server sees one client port).
    let ports: Vec<String> = (0..5)
        .map(|_| ok(fetch(&io_loop, &client, server.url("/peer"))).text())
        .collect();
    assert!(ports.windows(2).all(|w| w[0] == w[1]), "{ports:?}");
    let stats = client.stats();
    assert_eq!(stats.connections_opened, 1, "{stats:?}");
    assert_eq!(stats.connections_reused, 5, "{stats:?}");
    assert_eq!(stats.idle, 1);
    assert_clean(&io_loop, &client);
}

#[test]
fn tornado_chunked_answers() {
    let server = PyServer::tornado();
    let (io_loop, client) = setup(ClientConfig::new());
    let small = ok(fetch(&io_loop, &client, server.url("/chunked/4/3")));
    assert_eq!(small.headers.get("Transfer-Encoding"), Some("chunked"));
    assert_eq!(small.text(), "0:ccc;1:ccc;2:ccc;3:ccc;");
    // Many chunks, 2.5 MB in all, on the same connection.
    let big = ok(fetch(&io_loop, &client, server.url("/chunked/50/50000")));
    assert_eq!(big.body.len(), 50 * (50_000 + 3) + 40);
    assert!(big.text().starts_with("0:ccc") && big.text().ends_with("c;"));
    assert_eq!(client.stats().connections_opened, 1);
    assert_clean(&io_loop, &client);
}

#[test]
fn tornado_post_bodies() {
    let server = PyServer::tornado();
    let (io_loop, client) = setup(ClientConfig::new());
    let echo = ok(fetch(
        &io_loop,
        &client,
        HTTPRequest::new(server.url("/echo"))
            .method("POST")
            .header("Content-Type", "application/json")
            .body(r#"{"a": 1}"#),
    ));
    assert_eq!(echo.body, br#"{"a": 1}"#);
    assert_eq!(echo.headers.get("content-type"), Some("application/json"));

    // An empty POST still says Content-Length: 0 (Tornado insists).
    let empty = ok(fetch(
        &io_loop,
        &client,
        HTTPRequest::new(server.url("/echo")).method("POST"),
    ));
    assert_eq!(empty.headers.get("X-Length"), Some("0"));

    // 8 MiB up and back.
    let big: Vec<u8> = (0..8 << 20).map(|i| (i % 251) as u8).collect();
    let echo = ok(fetch(
        &io_loop,
        &client,
        HTTPRequest::new(server.url("/echo"))
            .method("POST")
            .body(big.clone()),
    ));
    assert_eq!(echo.body.len(), big.len());
    assert!(echo.body == big);

    let put = ok(fetch(
        &io_loop,
        &client,
        HTTPRequest::new(server.url("/method"))
            .method("PUT")
            .body("x"),
    ));
    assert_eq!(put.text(), "PUT x");
    assert_eq!(client.stats().connections_opened, 1);
    assert_clean(&io_loop, &client);
}

#[test]
fn tornado_redirects() {
    let server = PyServer::tornado();
    let (io_loop, client) = setup(ClientConfig::new());
    // A chain of three 302s ends at /method.
    let r = ok(fetch(&io_loop, &client, server.url("/redirect/302/2")));
    assert_eq!(r.text(), "GET");
    assert_eq!(r.effective_url, server.url("/method"));
    assert_eq!(r.request.url, server.url("/redirect/302/2"));

    // 303 turns a POST into a GET; 301 and 302 too.
    for code in [301, 302, 303] {
        let r = ok(fetch(
            &io_loop,
            &client,
            HTTPRequest::new(server.url(&format!("/redirect/{code}/0")))
                .method("POST")
                .body("data"),
        ));
        assert_eq!(r.text(), "GET", "{code}");
    }
    // 307 and 308 keep method and body.
    for code in [307, 308] {
        let r = ok(fetch(
            &io_loop,
            &client,
            HTTPRequest::new(server.url(&format!("/redirect/{code}/1")))
                .method("POST")
                .body("data"),
        ));
        assert_eq!(r.text(), "POST data", "{code}");
    }

    // Over the limit: the last 3xx is the answer, an HTTPError by default.
    let (k, err) = kind(fetch(
        &io_loop,
        &client,
        HTTPRequest::new(server.url("/redirect/302/3")).max_redirects(2),
    ));
    assert_eq!(k, ErrorKind::HttpStatus);
    let http = HTTPError::from_error(&err).unwrap();
    assert_eq!(http.code, 302);
    let response = http.response.as_ref().unwrap();
    assert_eq!(response.effective_url, server.url("/redirect/302/1"));
    assert_eq!(response.headers.get("Location"), Some("/redirect/302/0"));

    // Not followed at all, and returned as a response.
    let r = ok(fetch(
        &io_loop,
        &client,
        HTTPRequest::new(server.url("/redirect/301/0"))
            .follow_redirects(false)
            .raise_error(false),
    ));
    assert_eq!(r.code, 301);
    assert_eq!(r.headers.get("location"), Some("/method"));
    assert_eq!(client.stats().connections_opened, 1);
    assert_clean(&io_loop, &client);
}

#[test]
fn tornado_error_statuses() {
    let server = PyServer::tornado();
    let (io_loop, client) = setup(ClientConfig::new());
    let (k, err) = kind(fetch(&io_loop, &client, server.url("/status/404")));
    assert_eq!(k, ErrorKind::HttpStatus);
    assert_eq!(err.to_string(), "HTTP error: HTTP 404: Not Found");
    let http = HTTPError::from_error(&err).unwrap();
    assert_eq!(http.code, 404);
    assert_eq!(http.response.as_ref().unwrap().body, b"status 404");

    let not_found = ok(fetch(
        &io_loop,
        &client,
        HTTPRequest::new(server.url("/nowhere")).raise_error(false),
    ));
    assert_eq!(not_found.code, 404);
    assert!(not_found.rethrow().is_err());
    let err500 = ok(fetch(
        &io_loop,
        &client,
        HTTPRequest::new(server.url("/status/500")).raise_error(false),
    ));
    assert_eq!((err500.code, err500.text().as_str()), (500, "status 500"));

    // No body: 204, 304 and HEAD; the connection stays usable after each.
    let no_content = ok(fetch(&io_loop, &client, server.url("/status/204")));
    assert_eq!((no_content.code, no_content.body.len()), (204, 0));
    let not_modified = ok(fetch(
        &io_loop,
        &client,
        HTTPRequest::new(server.url("/status/304")).raise_error(false),
    ));
    assert_eq!((not_modified.code, not_modified.body.len()), (304, 0));
    let head = ok(fetch(
        &io_loop,
        &client,
        HTTPRequest::new(server.url("/method")).method("HEAD"),
    ));
    assert_eq!(head.headers.get("Content-Length"), Some("3"));
    assert!(head.body.is_empty());
    assert_eq!(
        ok(fetch(&io_loop, &client, server.url("/method"))).text(),
        "GET"
    );
    assert_eq!(client.stats().connections_opened, 1);
    assert_clean(&io_loop, &client);
}

#[test]
fn tornado_large_bodies_and_the_limit() {
    let server = PyServer::tornado();
    let (io_loop, client) = setup(ClientConfig::new().max_body_size(4 << 20));
    let big = ok(fetch(&io_loop, &client, server.url("/large/4194304")));
    assert_eq!(big.body.len(), 4 << 20);
    assert!(big.body.iter().all(|&b| b == b'x'));
    // One byte over, by Content-Length: refused before reading it.
    let (k, err) = kind(fetch(&io_loop, &client, server.url("/large/4194305")));
    assert_eq!(k, ErrorKind::HttpProtocol, "{err}");
    assert!(err.message().contains("max_body_size"), "{err}");
    // Over by chunks.
    let (k, err) = kind(fetch(&io_loop, &client, server.url("/chunked/100/50000")));
    assert_eq!(k, ErrorKind::HttpProtocol, "{err}");
    assert!(err.message().contains("max_body_size"), "{err}");
    // The client goes on (on a new connection: the refused ones were closed).
    assert_eq!(
        ok(fetch(&io_loop, &client, server.url("/hello"))).text(),
        "Hello, world"
    );
    assert_eq!(client.stats().connections_opened, 3);
    assert_clean(&io_loop, &client);
}

#[test]
fn tornado_slow_handler_times_out() {
    let server = PyServer::tornado();
    let (io_loop, client) = setup(ClientConfig::new());
    let started = Instant::now();
    let (k, err) = kind(fetch(
        &io_loop,
        &client,
        HTTPRequest::new(server.url("/sleep/3")).request_timeout(Duration::from_millis(300)),
    ));
    assert_eq!(k, ErrorKind::Timeout, "{err}");
    assert_eq!(timeout_phase(&err), Some(TimeoutPhase::Request));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(io_loop.timer_stats().pending, 0);
    // The timed-out connection was closed, not pooled; the next fetch works.
    assert_eq!(client.stats().idle, 0);
    assert_eq!(
        ok(fetch(&io_loop, &client, server.url("/sleep/0.05"))).text(),
        "slept"
    );
    assert_clean(&io_loop, &client);
}

#[test]
fn tornado_max_clients_queue() {
    let server = PyServer::tornado();
    let (io_loop, client) = setup(ClientConfig::new().max_clients(2));
    let started = Instant::now();
    let reqs = (0..6)
        .map(|_| HTTPRequest::new(server.url("/sleep/0.2")))
        .collect();
    let results = fetch_all(&io_loop, &client, reqs);
    assert!(results.into_iter().all(|r| ok(r).text() == "slept"));
    // Two at a time: three rounds.
    assert!(started.elapsed() >= Duration::from_millis(600));
    let stats = client.stats();
    assert!(stats.connections_opened <= 2, "{stats:?}");
    assert_eq!(stats.idle, 2);

    // Waiting in the queue longer than the timeout allows.
    let reqs = vec![
        HTTPRequest::new(server.url("/sleep/1")),
        HTTPRequest::new(server.url("/sleep/1")),
        HTTPRequest::new(server.url("/hello")).request_timeout(Duration::from_millis(200)),
    ];
    let mut results = fetch_all(&io_loop, &client, reqs);
    let (k, err) = kind(results.pop().unwrap());
    assert_eq!(k, ErrorKind::Timeout);
    assert_eq!(timeout_phase(&err), Some(TimeoutPhase::Queue));
    assert!(results.into_iter().all(|r| r.is_ok()));
    assert_clean(&io_loop, &client);
}

#[test]
fn max_per_host_does_not_hold_back_other_hosts() {
    let slow = PyServer::tornado();
    let other = PyServer::tornado();
    let (io_loop, client) = setup(ClientConfig::new().max_clients(4).max_per_host(1));
    let started = Instant::now();
    let reqs = vec![
        HTTPRequest::new(slow.url("/sleep/0.5")),
        HTTPRequest::new(slow.url("/sleep/0.5")),
        HTTPRequest::new(other.url("/hello")),
    ];
    // Completion order shows the third did not wait behind the second.
    let order = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let o = order.clone();
    let c = client.clone();
    io_loop
        .run_sync(
            move || {
                let all = Future::new();
                let n = reqs.len();
                for (i, r) in reqs.into_iter().enumerate() {
                    let (o, all) = (o.clone(), all.clone());
                    c.fetch(r)
                        .add_done_callback(move |f: &Future<HTTPResponse>| {
                            assert!(f.take_result().is_ok());
                            o.borrow_mut().push(i);
                            if o.borrow().len() == n {
                                let _ = all.set_result(());
                            }
                        });
                }
                all
            },
            Some(LIMIT),
        )
        .unwrap();
    assert_eq!(*order.borrow(), [2, 0, 1]);
    assert!(started.elapsed() >= Duration::from_millis(1000));
    assert_clean(&io_loop, &client);
}

// ----- python3 -m http.server (HTTP/1.0) ------------------------------------

#[test]
fn http_server_http10_bodies() {
    let dir = std::env::temp_dir().join(format!("squall-httpclient-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a.txt"), "alpha\n").unwrap();
    let big: Vec<u8> = (0..300_000).map(|i| (i % 7) as u8 + b'0').collect();
    std::fs::write(dir.join("big.bin"), &big).unwrap();
    std::fs::write(dir.join("sub/b.txt"), "beta").unwrap();
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(dir.clone());
    let server = PyServer::http_server(&dir);
    let (io_loop, client) = setup(ClientConfig::new());

    let a = ok(fetch(&io_loop, &client, server.url("/a.txt")));
    assert_eq!(a.text(), "alpha\n");
    assert!(a.headers.get("Server").unwrap().contains("Python"));
    let b = ok(fetch(&io_loop, &client, server.url("/big.bin")));
    assert!(b.body == big);
    // A directory without its slash: a 301 to the slash, then the listing.
    let listing = ok(fetch(&io_loop, &client, server.url("/sub")));
    assert_eq!(listing.effective_url, server.url("/sub/"));
    assert!(listing.text().contains("b.txt"));
    let (k, err) = kind(fetch(&io_loop, &client, server.url("/missing")));
    assert_eq!(k, ErrorKind::HttpStatus);
    assert_eq!(HTTPError::from_error(&err).unwrap().code, 404);
    // HTTP/1.0 closes each connection: nothing pooled, one per request.
    let stats = client.stats();
    assert_eq!((stats.connections_opened, stats.idle), (5, 0), "{stats:?}");
    assert_clean(&io_loop, &client);
}

// ----- raw TCP servers --------------------------------------------------------

/// A server answering every request on every connection with `answer`.
fn answering(answer: &'static [u8]) -> RawServer {
    RawServer::start(move |_, mut conn| {
        while read_request(&mut conn).is_some() {
            reply(&mut conn, answer);
        }
    })
}

/// A server answering the first request of each connection with `answer`,
/// then closing.
fn answering_once(answer: &'static [u8]) -> RawServer {
    RawServer::start(move |_, mut conn| {
        if read_request(&mut conn).is_some() {
            reply(&mut conn, answer);
        }
    })
}

#[test]
fn malformed_answers_are_protocol_errors() {
    let (io_loop, client) = setup(ClientConfig::new().max_header_size(2048));
    let cases: [(&[u8], &str); 8] = [
        (b"garbage\r\n\r\n", "malformed"),
        (b"HTTP/1.1 abc OK\r\n\r\n", "malformed"),
        (b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n", "malformed"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
            "Content-Length",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "chunk size",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n",
            "CRLF",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            "Transfer-Encoding",
        ),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "informational"),
    ];
    for (answer, needle) in cases {
        let server = answering_once(answer);
        let (k, err) = kind(fetch(&io_loop, &client, server.url("/")));
        assert_eq!(
            k,
            ErrorKind::HttpProtocol,
            "{err} for {:?}",
            String::from_utf8_lossy(answer)
        );
        assert!(err.message().contains(needle), "{err}");
    }
    // A head past max_header_size.
    let server = RawServer::start(|_, mut conn| {
        read_request(&mut conn);
        let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..200 {
            big.extend_from_slice(format!("X-Filler-{i}: some value\r\n").as_bytes());
        }
        reply(&mut conn, &big);
        thread::sleep(Duration::from_millis(500));
    });
    let (k, err) = kind(fetch(&io_loop, &client, server.url("/")));
    assert_eq!(k, ErrorKind::HttpProtocol);
    assert!(err.message().contains("max_header_size"), "{err}");
    assert_eq!(client.stats().idle, 0);
    assert_clean(&io_loop, &client);
}

#[test]
fn close_delimited_truncated_and_informational_answers() {
    let (io_loop, client) = setup(ClientConfig::new().max_body_size(1000));
    // No length: the body runs to the close.
    let server = answering_once(b"HTTP/1.1 200 OK\r\nX: y\r\n\r\nuntil the end");
    let r = ok(fetch(&io_loop, &client, server.url("/")));
    assert_eq!(r.text(), "until the end");
    // ...within max_body_size.
    static BIG: [u8; 1100] = [b'z'; 1100];
    let server = RawServer::start(|_, mut conn| {
        read_request(&mut conn);
        reply(&mut conn, b"HTTP/1.0 200 OK\r\n\r\n");
        reply(&mut conn, &BIG);
    });
    let (k, err) = kind(fetch(&io_loop, &client, server.url("/")));
    assert_eq!(k, ErrorKind::HttpProtocol);
    assert!(err.message().contains("max_body_size"), "{err}");
    // Shorter than its Content-Length.
    let server = answering_once(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort");
    let (k, err) = kind(fetch(&io_loop, &client, server.url("/")));
    assert_eq!(k, ErrorKind::StreamClosed, "{err}");
    // Closed before any answer (on a fresh connection: no retry).
    let server = RawServer::start(|_, mut conn| {
        read_request(&mut conn);
    });
    let (k, err) = kind(fetch(&io_loop, &client, server.url("/")));
    assert_eq!(k, ErrorKind::StreamClosed, "{err}");
    assert_eq!(client.stats().stale_retries, 0);
    // 100 Continue and 103 Early Hints are skipped; chunked with trailer.
    let server = answering(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
          HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
          2;ext=1\r\nok\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    let r = ok(fetch(&io_loop, &client, server.url("/")));
    assert_eq!((r.code, r.text().as_str()), (200, "ok"));
    assert!(r.headers.get("Link").is_none());
    // ...and the connection is reused afterwards.
    let r = ok(fetch(&io_loop, &client, server.url("/")));
    assert_eq!(r.text(), "ok");
    assert_eq!(client.stats().connections_reused, 1);
    assert_clean(&io_loop, &client);
}

#[test]
fn pooled_connection_closed_by_the_server_is_not_reused() {
    // Each connection answers one request (keep-alive promised), then the
    // server closes it while it idles in the pool.
    let server = answering_once(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
    let (io_loop, client) = setup(ClientConfig::new());
    assert_eq!(ok(fetch(&io_loop, &client, server.url("/"))).text(), "hi");
    // Let the loop see the close.
    let l = io_loop.clone();
    io_loop.call_later(Duration::from_millis(200), move || l.stop());
    io_loop.start().unwrap();
    assert_eq!(
        client.stats().idle,
        0,
        "the closed connection is still pooled"
    );
    assert_eq!(ok(fetch(&io_loop, &client, server.url("/"))).text(), "hi");
    let stats = client.stats();
    assert_eq!(
        (stats.connections_opened, stats.stale_retries),
        (2, 0),
        "{stats:?}"
    );
    assert_clean(&io_loop, &client);
}

#[test]
fn stale_pooled_connection_is_retried_once_for_idempotent_requests() {
    // The first connection answers once, then reads the next request and
    // closes without answering (the race with an idle timeout); later
    // connections answer normally.
    let server = RawServer::start(|i, mut conn| {
        if i == 0 {
            if read_request(&mut conn).is_some() {
                reply(
                    &mut conn,
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst",
                );
                read_request(&mut conn);
            }
        } else {
            while let Some((head, body)) = read_request(&mut conn) {
                let method = head.split(' ').next().unwrap_or("").to_string();
                let text = format!("{method} {}", String::from_utf8_lossy(&body));
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
                    text.len()
                );
                reply(&mut conn, answer.as_bytes());
            }
        }
    });
    let (io_loop, client) = setup(ClientConfig::new());
    assert_eq!(
        ok(fetch(&io_loop, &client, server.url("/"))).text(),
        "first"
    );
    let r = ok(fetch(&io_loop, &client, server.url("/")));
    assert_eq!(r.text(), "GET ");
    let stats = client.stats();
    assert_eq!(
        (stats.connections_opened, stats.stale_retries),
        (2, 1),
        "{stats:?}"
    );
    client.close();

    // A POST is not repeated: the failure is the caller's to handle.
    let server = RawServer::start(|_, mut conn| {
        if read_request(&mut conn).is_some() {
            reply(
                &mut conn,
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst",
            );
            read_request(&mut conn);
        }
    });
    let client = AsyncHTTPClient::with_loop(&io_loop);
    assert_eq!(
        ok(fetch(&io_loop, &client, server.url("/"))).text(),
        "first"
    );
    let (k, err) = kind(fetch(
        &io_loop,
        &client,
        HTTPRequest::new(server.url("/"))
            .method("POST")
            .body("once"),
    ));
    assert_eq!(k, ErrorKind::StreamClosed, "{err}");
    assert_eq!(client.stats().stale_retries, 0);
    assert_clean(&io_loop, &client);
}

#[test]
fn slow_answers_time_out_per_phase() {
    // The head comes after 2 s.
    let server = RawServer::start(|_, mut conn| {
        read_request(&mut conn);
        thread::sleep(Duration::from_secs(2));
        reply(&mut conn, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    });
    let (io_loop, client) = setup(ClientConfig::new());
    let (k, err) = kind(fetch(
        &io_loop,
        &client,
        HTTPRequest::new(server.url("/")).request_timeout(Duration::from_millis(200)),
    ));
    assert_eq!(k, ErrorKind::Timeout);
    assert_eq!(timeout_phase(&err), Some(TimeoutPhase::Request));
    // The body trickles: the request timeout covers it too.
    let server = RawServer::start(|_, mut conn| {
        read_request(&mut conn);
        reply(&mut conn, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
        for _ in 0..100 {
            thread::sleep(Duration::from_millis(50));
            reply(&mut conn, b"x");
        }
    });
    let started = Instant::now();
    let (k, err) = kind(fetch(
        &io_loop,
        &client,
        HTTPRequest::new(server.url("/")).request_timeout(Duration::from_millis(300)),
    ));
    assert_eq!(k, ErrorKind::Timeout, "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_clean(&io_loop, &client);
}

#[test]
fn connect_errors() {
    let (io_loop, client) = setup(ClientConfig::new());
    // Refused: a port just freed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (k, err) = kind(fetch(
        &io_loop,
        &client,
        format!("http://127.0.0.1:{port}/"),
    ));
    assert_eq!(k, ErrorKind::Io, "{err}");
    assert_eq!(
        err.io_error_kind(),
        Some(std::io::ErrorKind::ConnectionRefused)
    );

    // Unsupported and malformed URLs fail at once.
    for url in ["https://127.0.0.1/", "ftp://x/", "not a url"] {
        let (k, err) = kind(fetch(&io_loop, &client, url));
        assert_eq!(k, ErrorKind::InvalidArgument, "{url}: {err}");
    }

    // A listener that never accepts, with its backlog full: SYNs go
    // unanswered and the connect times out.
    let listener =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    listener
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&addr.into());
        fillers.push(s);
    }
    thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    let (k, err) = kind(fetch(
        &io_loop,
        &client,
        HTTPRequest::new(format!("http://{addr}/")).connect_timeout(Duration::from_millis(300)),
    ));
    assert_eq!(k, ErrorKind::Timeout, "{err}");
    assert_eq!(timeout_phase(&err), Some(TimeoutPhase::Connect));
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(fillers);
    assert_clean(&io_loop, &client);
}

#[test]
fn resolves_names_off_the_loop() {
    let server = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nname");
    let (io_loop, client) = setup(ClientConfig::new());
    let url = format!("http://localhost:{}/", server.addr.port());
    let r = ok(fetch(&io_loop, &client, url.as_str()));
    assert_eq!(r.text(), "name");
    assert_eq!(r.effective_url, url);
    let (k, _) = kind(fetch(&io_loop, &client, "http://no-such-host.invalid/"));
    assert_eq!(k, ErrorKind::Io);
    assert_clean(&io_loop, &client);
}

#[test]
fn close_fails_queued_and_inflight_fetches() {
    let server = RawServer::start(|_, mut conn| {
        read_request(&mut conn);
        thread::sleep(Duration::from_secs(3));
    });
    let (io_loop, client) = setup(ClientConfig::new().max_clients(1));
    let c = client.clone();
    let url = server.url("/");
    let results = io_loop
        .run_sync(
            move || {
                let first = c.fetch(url.as_str());
                let second = c.fetch(url.as_str());
                assert_eq!(c.stats().queued, 1);
                let c2 = c.clone();
                let done = Future::new();
                let d = done.clone();
                IOLoop::current().call_later(Duration::from_millis(100), move || {
                    c2.close();
                    let _ = d.set_result((first.error(), second.error()));
                });
                done
            },
            Some(LIMIT),
        )
        .unwrap();
    assert_eq!(results.0.map(|e| e.kind()), Some(ErrorKind::Closed));
    assert_eq!(results.1.map(|e| e.kind()), Some(ErrorKind::Closed));
    assert_eq!(io_loop.timer_stats().pending, 0);
    let (k, _) = kind(fetch(&io_loop, &client, server.url("/")));
    assert_eq!(k, ErrorKind::Closed);
    assert_clean(&io_loop, &client);
}

#[test]
fn sockets_of_std_servers_see_well_formed_requests() {
    // What goes on the wire: request line, Host, body framing.
    let (tx, rx) = std::sync::mpsc::channel();
    let server = RawServer::start(move |_, mut conn: TcpStream| {
        if let Some((head, body)) = read_request(&mut conn) {
            let _ = tx.send((head, body));
            reply(&mut conn, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let (io_loop, client) = setup(ClientConfig::new());
    ok(fetch(
        &io_loop,
        &client,
        HTTPRequest::new(server.url("/p?q=1#frag"))
            .method("patch")
            .header("X-Custom", "v")
            .body("body"),
    ));
    let (head, body) = rx.recv_timeout(LIMIT).unwrap();
    let lines: Vec<&str> = head.split("\r\n").collect();
    assert_eq!(lines[0], "PATCH /p?q=1 HTTP/1.1");
    assert!(
        lines.contains(&format!("Host: {}", server.addr).as_str()),
        "{head}"
    );
    assert!(lines.contains(&"X-Custom: v"), "{head}");
    assert!(lines.contains(&"Content-Length: 4"), "{head}");
    assert_eq!(body, b"body");

    // Credentials from the URL (basic authentication), and a User-Agent.
    let url = format!("http://Aladdin:open%20sesame@{}/x", server.addr);
    let r = ok(fetch(
        &io_loop,
        &client,
        HTTPRequest::new(url).user_agent("squall-test"),
    ));
    assert_eq!(r.effective_url, server.url("/x"));
    let (head, _) = rx.recv_timeout(LIMIT).unwrap();
    assert!(
        head.contains("\r\nAuthorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nUser-Agent: squall-test\r\n"), "{head}");
    assert_clean(&io_loop, &client);
}

#[test]
fn connection_reuse_follows_the_server_s_word() {
    let (io_loop, client) = setup(ClientConfig::new());
    // `Connection: close` from an HTTP/1.1 server: not pooled.
    let server = answering(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na");
    ok(fetch(&io_loop, &client, server.url("/")));
    assert_eq!(client.stats().idle, 0);
    // HTTP/1.0 with `Connection: keep-alive` and a length: pooled, reused.
    let server =
        answering(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nb");
    ok(fetch(&io_loop, &client, server.url("/")));
    assert_eq!(client.stats().idle, 1);
    ok(fetch(&io_loop, &client, server.url("/")));
    assert_eq!(client.stats().connections_reused, 1);
    // The request's own `Connection: close`: not pooled either.
    ok(fetch(
        &io_loop,
        &client,
        HTTPRequest::new(server.url("/")).header("Connection", "close"),
    ));
    assert_eq!(client.stats().idle, 0);
    // Repeated fields keep their order; names compare without case.
    let server = answering(
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nContent-Length: 0\r\n\r\n",
    );
    let r = ok(fetch(&io_loop, &client, server.url("/")));
    assert_eq!(r.headers.get_list("SET-COOKIE"), ["a=1", "b=2"]);
    assert_clean(&io_loop, &client);
}

#[test]
fn redirects_to_https_or_without_location() {
    let (io_loop, client) = setup(ClientConfig::new());
    let server = answering(
        b"HTTP/1.1 302 Found\r\nLocation: https://127.0.0.1/\r\nContent-Length: 0\r\n\r\n",
    );
    let (k, err) = kind(fetch(&io_loop, &client, server.url("/")));
    assert_eq!(k, ErrorKind::InvalidArgument, "{err}");
    assert!(err.message().contains("https"), "{err}");
    // A 3xx without Location is simply the answer.
    let server = answering(b"HTTP/1.1 307 Temporary Redirect\r\nContent-Length: 0\r\n\r\n");
    let r = ok(fetch(
        &io_loop,
        &client,
        HTTPRequest::new(server.url("/")).raise_error(false),
    ));
    assert_eq!(r.code, 307);
    // A redirect loop ends at max_redirects.
    let server = answering(b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n");
    let (k, err) = kind(fetch(&io_loop, &client, server.url("/")));
    assert_eq!(k, ErrorKind::HttpStatus);
    let response = HTTPError::from_error(&err)
        .unwrap()
        .response
        .clone()
        .unwrap();
    assert_eq!(response.effective_url, server.url("/again"));
    assert_eq!(client.stats().connections_reused, 5);
    assert_clean(&io_loop, &client);
}

#[test]
fn queued_requests_start_in_order() {
    let server = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let (io_loop, client) = setup(ClientConfig::new().max_clients(1));
    let order = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let (o, c, url) = (order.clone(), client.clone(), server.url("/"));
    io_loop
        .run_sync(
            move || {
                let all = Future::new();
                for i in 0..20 {
                    let (o, all) = (o.clone(), all.clone());
                    c.fetch(url.as_str())
                        .add_done_callback(move |f: &Future<HTTPResponse>| {
                            assert!(f.take_result().is_ok());
                            o.borrow_mut().push(i);
                            if o.borrow().len() == 20 {
                                let _ = all.set_result(());
                            }
                        });
                }
                assert_eq!(c.stats().queued, 19);
                all
            },
            Some(LIMIT),
        )
        .unwrap();
    assert_eq!(*order.borrow(), (0..20).collect::<Vec<_>>());
    // One connection did it all.
    assert_eq!(client.stats().connections_opened, 1);
    assert_clean(&io_loop, &client);
}

#[test]
fn request_timeout_while_connecting() {
    // As in connect_errors: a listener whose backlog is full.
    let listener =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    listener
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&addr.into());
        fillers.push(s);
    }
    thread::sleep(Duration::from_millis(50));
    let (io_loop, client) = setup(ClientConfig::new());
    // The request timeout is the shorter: it is the one that fires.
    let (k, err) = kind(fetch(
        &io_loop,
        &client,
        HTTPRequest::new(format!("http://{addr}/"))
            .connect_timeout(Duration::from_secs(5))
            .request_timeout(Duration::from_millis(200)),
    ));
    assert_eq!(k, ErrorKind::Timeout, "{err}");
    assert_eq!(timeout_phase(&err), Some(TimeoutPhase::Request));
    // The aborted connect left no timeout and no handler behind.
    assert_eq!(io_loop.timer_stats().pending, 0);
    assert_eq!(io_loop.handler_count(), 0);
    assert_clean(&io_loop, &client);
}

#[test]
fn blocking_client_against_tornado() {
    let server = PyServer::tornado();
    let client = HTTPClient::new().unwrap();
    let ports: Vec<String> = (0..3)
        .map(|_| client.fetch(server.url("/peer").as_str()).unwrap().text())
        .collect();
    assert!(ports.windows(2).all(|w| w[0] == w[1]), "{ports:?}");
    let err = client
        .fetch(server.url("/status/418").as_str())
        .unwrap_err();
    assert_eq!(HTTPError::from_error(&err).map(|e| e.code), Some(418));
    let post = client
        .fetch(
            HTTPRequest::new(server.url("/method"))
                .method("POST")
                .body("b"),
        )
        .unwrap();
    assert_eq!(post.text(), "POST b");
    assert_eq!(client.stats().connections_opened, 1);
    client.close();
    assert!(client.fetch(server.url("/hello")).is_err());
}
