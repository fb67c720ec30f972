//! Hello world over HTTP/1.1 with may_minihttp (stackful coroutines on the
//! `may` runtime; TechEmpower's plaintext entries) and one worker: a peer of
//! squall's `examples/hello_server.rs` in `bench/http.sh`.
//!
//! ```text
//! cargo run --release --bin hello_may -- 8888
//! curl -i http://127.0.0.1:8888/
//! ```
//!
//! `set_workers(1)`: one worker thread runs the coroutines (the accept loop
//! and one coroutine per connection) and polls epoll; `may` also starts a
//! timer thread, and the main thread only waits. Worker pinning is off: may
//! pins its workers to the cores it is allowed by default, and here the
//! benchmark's `taskset` decides. may_minihttp answers every request alike
//! (`HTTP/1.1 200 Ok`, `Server: M`, `Date`, `Content-Length`, whatever the
//! path or method, never closing a connection itself), does not set
//! `TCP_NODELAY` and writes once per batch of pipelined requests. The answer
//! carries squall's `Content-Type`, so the bodies and most of the head match.

use std::io;

use may_minihttp::{HttpServer, HttpService, Request, Response};

#[derive(Clone)]
struct Hello;

impl HttpService for Hello {
    fn call(&mut self, _req: Request, rsp: &mut Response) -> io::Result<()> {
        rsp.header("Content-Type: text/html; charset=UTF-8")
            .body("Hello, world");
        Ok(())
    }
}

fn main() {
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p.parse().expect("usage: hello_may [PORT]"),
        None => 8888,
    };
    may::config().set_workers(1).set_worker_pin(false);
    let server = HttpServer(Hello)
        .start(("127.0.0.1", port))
        .expect("listening on 127.0.0.1");
    server.join().ok();
}
