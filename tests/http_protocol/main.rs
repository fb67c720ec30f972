//! The HTTP protocol layer through its public API: raw delegates (a closure
//! of the request, a message delegate of one's own), streamed request
//! bodies with backpressure, connection hand-off after `101`, framing the
//! server owns (no body after 304/204/HEAD, the handler's own
//! `Content-Length`), and the request checks real clients tripped on
//! (Host, Content-Length, chunked framing, header injection, obs-text),
//! and blank lines before a request line.
//! Raw sockets, as Tornado's `HTTPServerRawTest`.

#[allow(dead_code)]
#[path = "../common/http.rs"]
mod http_kit;

mod blank_lines;
mod delegates;
mod errors;
mod framing;
mod regressions;

use squall::netutil::BindOptions;
use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use http_kit::{answers, closed_within, connect, raw_request, read_reply, TestServer};
use squall::http::{
    HTTPConnection, HTTPMessageDelegate, HTTPServer, HTTPServerConnectionDelegate,
    HTTPServerRequest,
};
use squall::httputil::HTTPHeaders;
use squall::web::{Application, Exchange, RequestHandler};
use squall::{Error, ErrorKind, Future, IOLoop};

fn echo_server() -> TestServer {
    TestServer::start(
        || {
            |req: &HTTPServerRequest, conn: &HTTPConnection| {
                let mut headers = HTTPHeaders::new();
                headers.add("X-Method", req.method());
                conn.write_response(200, &headers, req.body())
            }
        },
        |_| {},
    )
}
