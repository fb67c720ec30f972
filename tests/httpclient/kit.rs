//! Helpers shared by the HTTP client tests: a loop and client, blocking
//! fetches with a bound, and canned raw servers.
#![allow(dead_code)]

use std::time::Duration;

use crate::peers::{read_request, reply, RawServer};
use squall::httpclient::{
    AsyncHTTPClient, ClientConfig, HTTPRequest, HTTPResponse, HTTPTimeoutError, TimeoutPhase,
};
use squall::{Error, ErrorKind, Future, IOLoop};

/// Every fetch in these tests is bounded by this, on top of its own timeouts.
pub const LIMIT: Duration = Duration::from_secs(15);

pub fn setup(config: ClientConfig) -> (IOLoop, AsyncHTTPClient) {
    let io_loop = IOLoop::new().expect("loop");
    let client = AsyncHTTPClient::with_config(&io_loop, config);
    (io_loop, client)
}

pub fn fetch(
    io_loop: &IOLoop,
    client: &AsyncHTTPClient,
    req: impl Into<HTTPRequest>,
) -> Result<HTTPResponse, Error> {
    let req = req.into();
    io_loop.run_sync(|| client.fetch(req), Some(LIMIT))
}

/// Runs several fetches at once; their outcomes in order.
pub fn fetch_all(
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
                        all.try_set_result(out);
                    }
                });
            }
            all
        },
        Some(LIMIT),
    );
    joined.expect("fetches did not finish")
}

pub fn ok(result: Result<HTTPResponse, Error>) -> HTTPResponse {
    result.unwrap_or_else(|err| panic!("fetch failed: {err}"))
}

pub fn kind(result: Result<HTTPResponse, Error>) -> (ErrorKind, Error) {
    let err = result.expect_err("fetch succeeded, but should have failed");
    (err.kind(), err)
}

pub fn timeout_phase(err: &Error) -> Option<TimeoutPhase> {
    HTTPTimeoutError::from_error(err).map(|t| t.phase)
}

/// After the client is closed: no timeout left behind on the loop.
pub fn assert_clean(io_loop: &IOLoop, client: &AsyncHTTPClient) {
    client.close();
    assert_eq!(io_loop.timer_stats().pending, 0, "pending timeouts left");
    let stats = client.stats();
    assert_eq!((stats.active, stats.queued, stats.idle), (0, 0, 0));
}

/// A server answering every request on every connection with `answer`.
pub fn answering(answer: &'static [u8]) -> RawServer {
    RawServer::start(move |_, mut conn| {
        while read_request(&mut conn).is_some() {
            reply(&mut conn, answer);
        }
    })
}

/// A server answering the first request of each connection with `answer`,
/// then closing.
pub fn answering_once(answer: &'static [u8]) -> RawServer {
    RawServer::start(move |_, mut conn| {
        if read_request(&mut conn).is_some() {
            reply(&mut conn, answer);
        }
    })
}
