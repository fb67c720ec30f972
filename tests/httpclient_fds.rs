//! The HTTP client releases every descriptor and timeout: after a mix of
//! keep-alive fetches, concurrent ones, errors, timeouts and a close in the
//! middle of fetches, the process has the fds it had before.
//!
//! Its own test binary, with a single test: no other test opens or closes fds
//! in this process while it counts them. The server is a Python Tornado
//! process, so its sockets are not ours.

mod common;

use common::open_fds;

#[path = "httpclient/peers.rs"]
mod peers;

#[path = "common/peers.rs"]
mod need;
use need::Peer;
use std::time::Duration;

use peers::PyServer;
use squall::httpclient::{AsyncHTTPClient, ClientConfig, HTTPRequest, HTTPResponse};
use squall::{Error, Future, IOLoop};

fn join(futures: Vec<Future<HTTPResponse>>) -> Future<Vec<Result<HTTPResponse, Error>>> {
    let all = Future::new();
    let n = futures.len();
    let results = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    for f in futures {
        let (results, all) = (results.clone(), all.clone());
        f.add_done_callback(move |f: &Future<HTTPResponse>| {
            results.borrow_mut().push(f.take_result());
            if results.borrow().len() == n {
                all.try_set_result(results.borrow_mut().drain(..).collect());
            }
        });
    }
    all
}

/// One round: returns (successes, failures).
fn round(server: &PyServer, refused: u16, close_midway: bool) -> (usize, usize) {
    let io_loop = IOLoop::new().unwrap();
    let client = AsyncHTTPClient::with_config(&io_loop, ClientConfig::new().max_clients(4));
    let before = open_fds();
    let mut reqs: Vec<HTTPRequest> = Vec::new();
    for i in 0..12 {
        reqs.push(HTTPRequest::new(server.url(match i % 6 {
            0 => "/hello",
            1 => "/chunked/3/10",
            2 => "/status/404",
            3 => "/redirect/302/1",
            4 => "/large/100000",
            _ => "/peer",
        })));
    }
    reqs.push(HTTPRequest::new(server.url("/sleep/2")).request_timeout(Duration::from_millis(100)));
    reqs.push(HTTPRequest::new(format!("http://127.0.0.1:{refused}/")));
    reqs.push(HTTPRequest::new(format!(
        "http://localhost:{}/hello",
        server.port
    )));
    let c = client.clone();
    let results = io_loop
        .run_sync(
            move || {
                let futures: Vec<_> = reqs.into_iter().map(|r| c.fetch(r)).collect();
                if close_midway {
                    let c = c.clone();
                    IOLoop::current().call_later(Duration::from_millis(20), move || c.close());
                }
                join(futures)
            },
            Some(Duration::from_secs(15)),
        )
        .unwrap();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    if close_midway {
        assert_eq!(
            io_loop.timer_stats().pending,
            0,
            "timeouts left after close"
        );
        drop(client);
    } else {
        assert!(client.stats().idle > 0, "nothing was kept alive");
        // Dropped without close(): pooled connections are closed anyway.
        drop(client);
        assert_eq!(io_loop.timer_stats().pending, 0, "timeouts left");
    }
    // Connects still in flight at the close finish (and close) on the loop.
    let l = io_loop.clone();
    io_loop.call_later(Duration::from_millis(100), move || l.stop());
    io_loop.start().unwrap();
    // Checked before the loop closes: closing it would close what the
    // client forgot.
    let after = open_fds();
    assert_eq!(
        after, before,
        "the client left fds open (close_midway: {close_midway})"
    );
    io_loop.close();
    (ok, results.len() - ok)
}

#[test]
fn no_fd_or_timeout_is_leaked_by_the_client() {
    if !need::ready(&[Peer::Tornado]) {
        return;
    }
    let server = PyServer::tornado();
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Warm up what is created once per process.
    round(&server, refused, false);

    let before = open_fds();
    let mut totals = (0, 0);
    for i in 0..6 {
        let (ok, failed) = round(&server, refused, i % 2 == 1);
        totals.0 += ok;
        totals.1 += failed;
    }
    // Name lookups run on threads that may still be exiting.
    std::thread::sleep(Duration::from_millis(50));
    let after = open_fds();
    assert_eq!(after, before, "fds leaked (ok/failed fetches: {totals:?})");
    // Both kinds happened: successes in full rounds, failures everywhere.
    assert!(totals.0 >= 3 * 10 && totals.1 >= 3 * 4, "{totals:?}");
}
