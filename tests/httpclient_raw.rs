//! squall's HTTP client against scripted raw TCP servers: malformed and
//! truncated answers, close-delimited bodies, 1xx, servers that close pooled
//! connections, slow answers, connect errors and timeouts, the queue, and
//! what goes on the wire.

mod common;
#[path = "httpclient/kit.rs"]
mod kit;
#[path = "httpclient/peers.rs"]
mod peers;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use kit::*;
use peers::{read_request, reply, RawServer};
use squall::httpclient::{
    AsyncHTTPClient, ClientConfig, HTTPError, HTTPRequest, HTTPResponse, TimeoutPhase,
};
use squall::{ErrorKind, Future, IOLoop};

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
    // The error says how much of the body came.
    assert!(err.message().contains("5 of 10 bytes"), "{err}");
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

    // Unsupported and malformed URLs fail at once (https:// too, in a
    // build without the `tls` feature).
    let mut bad = vec!["ftp://x/", "not a url"];
    if !cfg!(feature = "tls") {
        bad.push("https://127.0.0.1/");
    }
    for url in bad {
        let (k, err) = kind(fetch(&io_loop, &client, url));
        assert_eq!(k, ErrorKind::InvalidArgument, "{url}: {err}");
    }

    // A listener that never accepts, with its backlog full: SYNs go
    // unanswered and the connect times out.
    let silent = common::silent_listener(SocketAddr::from(([127, 0, 0, 1], 0)));
    let addr = silent.addr;
    let started = Instant::now();
    let (k, err) = kind(fetch(
        &io_loop,
        &client,
        HTTPRequest::new(format!("http://{addr}/")).connect_timeout(Duration::from_millis(300)),
    ));
    assert_eq!(k, ErrorKind::Timeout, "{err}");
    assert_eq!(timeout_phase(&err), Some(TimeoutPhase::Connect));
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(silent);
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
                    d.try_set_result((first.error(), second.error()));
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

/// Response heads whose lines end in a bare LF are read as Tornado's
/// client, curl and requests read them (it used to wait out the timeout).
#[test]
fn heads_with_bare_lf_line_ends() {
    let (io_loop, client) = setup(ClientConfig::new());
    for raw in [
        &b"HTTP/1.1 200 OK\nContent-Length: 2\nX-A: b\n\nok"[..],
        &b"HTTP/1.1 200 OK\r\nContent-Length: 2\nX-A: b\r\n\nok"[..],
        &b"HTTP/1.1 200 OK\nContent-Length: 2\r\nX-A: b\n\r\nok"[..],
    ] {
        let server = answering_once(raw);
        let r = ok(fetch(
            &io_loop,
            &client,
            HTTPRequest::new(server.url("/")).request_timeout(Duration::from_secs(2)),
        ));
        assert_eq!((r.code, r.text().as_str()), (200, "ok"));
        assert_eq!(r.headers.get("X-A"), Some("b"));
    }
    // A 100 Continue with bare LFs before the answer, and the answer too.
    let server =
        answering_once(b"HTTP/1.1 100 Continue\n\nHTTP/1.1 201 Created\nContent-Length: 0\n\n");
    let r = ok(fetch(&io_loop, &client, server.url("/")));
    assert_eq!(r.code, 201);
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
        b"HTTP/1.1 302 Found\r\nLocation: https://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n",
    );
    let (k, err) = kind(fetch(&io_loop, &client, server.url("/")));
    if cfg!(feature = "tls") {
        // Followed: nothing listens on port 1.
        assert_eq!(k, ErrorKind::Io, "{err}");
        assert_eq!(
            err.io_error_kind(),
            Some(std::io::ErrorKind::ConnectionRefused)
        );
    } else {
        assert_eq!(k, ErrorKind::InvalidArgument, "{err}");
        assert!(err.message().contains("https"), "{err}");
    }
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
                                all.try_set_result(());
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

/// Credentials are for the origin they were given to: on a redirect to
/// another origin (here another port) `Authorization`, `Cookie` and
/// `Proxy-Authorization` are dropped (as curl, requests and Tornado 6 do);
/// on the same origin they stay; other headers go on either way.
#[test]
fn credentials_do_not_follow_a_redirect_to_another_origin() {
    let (tx, rx) = std::sync::mpsc::channel();
    let target = RawServer::start(move |_, mut conn: TcpStream| {
        while let Some((head, _)) = read_request(&mut conn) {
            let _ = tx.send(head);
            reply(&mut conn, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let elsewhere = target.url("/landed");
    let (seen_tx, seen) = std::sync::mpsc::channel();
    let origin = RawServer::start(move |_, mut conn: TcpStream| {
        while let Some((head, _)) = read_request(&mut conn) {
            let _ = seen_tx.send(head.clone());
            let location = if head.starts_with("GET /away ") {
                elsewhere.clone()
            } else {
                "/landed".to_owned()
            };
            reply(
                &mut conn,
                format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    let (io_loop, client) = setup(ClientConfig::new());
    let with_credentials = |path: &str| {
        HTTPRequest::new(origin.url(path))
            .header("Cookie", "session=secret")
            .header("Proxy-Authorization", "Basic cHJveHk6cHc=")
            .header("Authorization", "Bearer token")
            .header("X-Trace", "7")
    };
    ok(fetch(&io_loop, &client, with_credentials("/away")));
    let head = rx.recv_timeout(LIMIT).unwrap();
    assert!(head.starts_with("GET /landed "), "{head}");
    for secret in ["Cookie:", "Proxy-Authorization:", "Authorization:"] {
        assert!(!head.contains(secret), "{secret} crossed origins:\n{head}");
    }
    assert!(head.contains("\r\nX-Trace: 7\r\n"), "{head}");

    // Same origin: /here redirects to /landed on the origin itself, which
    // redirects again (past max_redirects: the answer is that 302); the
    // second hop carried every header.
    let (k, _) = kind(fetch(
        &io_loop,
        &client,
        with_credentials("/here").max_redirects(1),
    ));
    assert_eq!(k, ErrorKind::HttpStatus);
    let heads: Vec<String> = seen.try_iter().collect();
    let landed = heads
        .iter()
        .find(|h| h.starts_with("GET /landed "))
        .unwrap();
    for kept in [
        "\r\nCookie: session=secret\r\n",
        "\r\nProxy-Authorization: Basic cHJveHk6cHc=\r\n",
        "\r\nAuthorization: Bearer token\r\n",
    ] {
        assert!(
            landed.contains(kept),
            "{kept:?} dropped on the same origin:\n{landed}"
        );
    }
    assert!(
        rx.try_recv().is_err(),
        "nothing more went to the other server"
    );
    assert_clean(&io_loop, &client);
}

#[test]
fn timeouts_of_duration_max_mean_none_not_a_panic() {
    let server = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nnever");
    let (io_loop, client) = setup(ClientConfig::new());
    let req = HTTPRequest::new(format!("http://{}/", server.addr))
        .connect_timeout(Duration::MAX)
        .request_timeout(Duration::MAX);
    assert_eq!(ok(fetch(&io_loop, &client, req)).text(), "never");
    assert_clean(&io_loop, &client);
}
