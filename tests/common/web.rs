//! Helpers for the web-layer tests (tests/web_cookies.rs, tests/web_xsrf.rs):
//! a handler made of a function, a server of an `Application`, and one
//! request on a fresh connection. Include after `common/http.rs` as
//! `http_kit`.
#![allow(dead_code)]

use std::net::SocketAddr;

use crate::http_kit::{raw_request, Reply, TestServer};
use squall::web::{Application, Exchange, RequestHandler};
use squall::Error;

/// A handler running one function for every verb.
pub struct F(pub fn(&Exchange) -> Result<(), Error>);

impl RequestHandler for F {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        (self.0)(x)
    }
    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        (self.0)(x)
    }
    fn put(&mut self, x: &Exchange) -> Result<(), Error> {
        (self.0)(x)
    }
    fn delete(&mut self, x: &Exchange) -> Result<(), Error> {
        (self.0)(x)
    }
    fn patch(&mut self, x: &Exchange) -> Result<(), Error> {
        (self.0)(x)
    }
}

pub fn serve(make: fn() -> Application) -> TestServer {
    TestServer::start(make, |_| {})
}

/// One request: `method path` with extra header lines and a body.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
        addr.port()
    );
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    if method != "GET" && method != "HEAD" {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    raw_request(addr, raw.as_bytes()).expect("a response")
}

pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(addr, "GET", path, headers, "")
}

pub fn sorted_cookies(r: &Reply) -> Vec<String> {
    let mut v = r.headers_named("Set-Cookie");
    v.sort();
    v
}
