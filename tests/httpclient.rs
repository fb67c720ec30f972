//! squall's HTTP client against real servers: Python Tornado (keep-alive,
//! chunked answers, redirects, errors, large bodies, slow handlers) and
//! `python3 -m http.server` (HTTP/1.0, one connection per request), and
//! squall's own `HTTPServer`.
//! tests/httpclient_raw.rs has the scripted raw servers.
//!
//! Needs `python3` with Tornado on PATH (`.ci/run` installs it in a venv).

#[path = "httpclient/kit.rs"]
mod kit;
#[path = "httpclient/peers.rs"]
mod peers;

#[path = "common/peers.rs"]
mod need;
use need::Peer;
use squall::netutil::BindOptions;
use std::time::{Duration, Instant};

use kit::*;
use peers::PyServer;
use squall::httpclient::{
    ClientConfig, HTTPClient, HTTPError, HTTPRequest, HTTPResponse, TimeoutPhase,
};
use squall::{ErrorKind, Future};

// ----- Tornado ---------------------------------------------------------------

#[test]
fn tornado_get_and_keep_alive_reuse() {
    if !need::ready(&[Peer::Tornado]) {
        return;
    }
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
    if !need::ready(&[Peer::Tornado]) {
        return;
    }
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
    if !need::ready(&[Peer::Tornado]) {
        return;
    }
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
    if !need::ready(&[Peer::Tornado]) {
        return;
    }
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
    if !need::ready(&[Peer::Tornado]) {
        return;
    }
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
    if !need::ready(&[Peer::Tornado]) {
        return;
    }
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
    if !need::ready(&[Peer::Tornado]) {
        return;
    }
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
    if !need::ready(&[Peer::Tornado]) {
        return;
    }
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
    if !need::ready(&[Peer::Tornado]) {
        return;
    }
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
                                all.try_set_result(());
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
    if !need::ready(&[Peer::Python]) {
        return;
    }
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

#[test]
fn blocking_client_against_tornado() {
    if !need::ready(&[Peer::Tornado]) {
        return;
    }
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

// ----- squall's own HTTP server ------------------------------------------------

struct Chunks;
impl squall::web::RequestHandler for Chunks {
    fn get(&mut self, x: &squall::web::Exchange) -> Result<(), squall::Error> {
        // Flushed before finishing: a chunked answer.
        x.write("one;");
        drop(x.flush());
        x.write("two");
        Ok(())
    }
}

struct Echo;
impl squall::web::RequestHandler for Echo {
    fn post(&mut self, x: &squall::web::Exchange) -> Result<(), squall::Error> {
        let body = x.request().body().to_vec();
        x.write(body);
        Ok(())
    }
}

#[test]
fn squall_server_keep_alive_chunked_and_errors() {
    let (tx, rx) = std::sync::mpsc::channel();
    // The server on a thread of its own; the process ends it with the test.
    std::thread::spawn(move || {
        let io_loop = squall::IOLoop::new().unwrap();
        io_loop.make_current();
        let app = squall::web::Application::new()
            .route("/chunks", || Chunks)
            .route("/echo", || Echo)
            .route("/moved", || Moved);
        let server = squall::http::HTTPServer::new(app);
        server
            .listen_with(0, BindOptions::new().address("127.0.0.1"))
            .unwrap();
        tx.send((server.local_addrs()[0], io_loop.remote()))
            .unwrap();
        io_loop.start().unwrap();
    });
    struct Moved;
    impl squall::web::RequestHandler for Moved {
        fn get(&mut self, x: &squall::web::Exchange) -> Result<(), squall::Error> {
            x.redirect("/chunks")?;
            Ok(())
        }
    }
    let (addr, remote) = rx.recv_timeout(LIMIT).unwrap();
    let url = |p: &str| format!("http://{addr}{p}");
    let (io_loop, client) = setup(ClientConfig::new());
    let r = ok(fetch(&io_loop, &client, url("/chunks")));
    assert_eq!(r.text(), "one;two");
    assert_eq!(r.headers.get("Transfer-Encoding"), Some("chunked"));
    let big = vec![b'q'; 3 << 20];
    let r = ok(fetch(
        &io_loop,
        &client,
        HTTPRequest::new(url("/echo"))
            .method("POST")
            .body(big.clone()),
    ));
    assert!(r.body == big);
    let r = ok(fetch(&io_loop, &client, url("/moved")));
    assert_eq!(
        (r.text().as_str(), r.effective_url.as_str()),
        ("one;two", url("/chunks").as_str())
    );
    // One connection so far: chunked, large and redirected answers kept it.
    assert_eq!(client.stats().connections_opened, 1, "{:?}", client.stats());
    assert_eq!(client.stats().connections_reused, 3, "{:?}", client.stats());
    let head = ok(fetch(
        &io_loop,
        &client,
        HTTPRequest::new(url("/chunks")).method("HEAD"),
    ));
    assert!(head.body.is_empty());
    let (k, err) = kind(fetch(&io_loop, &client, url("/missing")));
    assert_eq!(k, ErrorKind::HttpStatus);
    assert_eq!(HTTPError::from_error(&err).unwrap().code, 404);
    // (squall's server sends chunk bytes after a HEAD answer whose handler
    // flushed, so the client does not reuse that connection: a new one.)
    assert!(
        client.stats().connections_opened <= 2,
        "{:?}",
        client.stats()
    );
    assert_clean(&io_loop, &client);
    let _ = remote.stop();
}
