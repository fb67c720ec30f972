//! `HTTPServer` + `Application` as users meet it: through real clients —
//! curl, Python's requests, httpx, aiohttp and Tornado's `AsyncHTTPClient`,
//! `nc -N` (or a Python socket) for a half-close — and raw sockets for the
//! malformed requests no client library will send. Every client is a
//! subprocess with a hard time limit (`http_kit::run` kills it), and every
//! Python script sets its own timeouts below that limit.

#[allow(dead_code)]
#[path = "../common/http.rs"]
mod http_kit;

#[path = "../common/peers.rs"]
mod need;

mod edges;
mod half_close;
mod injection;
mod ordinary;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use http_kit::{closed_within, connect, python, raw_request, read_reply, run, TestServer};
use need::Peer;
use squall::web::{Application, Exchange, RequestHandler};
use squall::{Error, ErrorKind, IOLoop};

/// The hard limit on one client subprocess.
const LIMIT: Duration = Duration::from_secs(60);

struct Hello;
impl RequestHandler for Hello {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write("Hello, world");
        Ok(())
    }
}

/// Echoes the body, and says in `X-Framing` how it came: `chunked` or
/// `length:N`, so a test knows the client really sent what it meant to.
struct Echo;
impl RequestHandler for Echo {
    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        let headers = x.request().headers();
        let framing = match (
            headers.get("Transfer-Encoding"),
            headers.get("Content-Length"),
        ) {
            (Some(te), _) => te.to_ascii_lowercase(),
            (None, Some(n)) => format!("length:{n}"),
            (None, None) => "none".to_owned(),
        };
        x.set_header("X-Framing", framing)?;
        x.set_header("Content-Type", "application/octet-stream")?;
        x.write(x.request().body());
        Ok(())
    }
    fn put(&mut self, x: &Exchange) -> Result<(), Error> {
        self.post(x)
    }
}

/// The client's address: the same port twice means the same connection.
struct WhoAmI;
impl RequestHandler for WhoAmI {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write(x.request().remote_addr().to_string());
        Ok(())
    }
}

/// A 204 whose handler writes a body anyway: the body must be dropped, not
/// sent ahead of the next response on the connection.
struct NoContent;
impl RequestHandler for NoContent {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_status(204);
        x.write("leaked-204-body");
        Ok(())
    }
}

/// A 304, likewise with a body that must not reach the wire.
struct NotModified;
impl RequestHandler for NotModified {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_status(304);
        x.set_header("ETag", "\"v1\"")?;
        x.write("leaked-304-body");
        Ok(())
    }
}

/// Sets its own `Content-Length`: it must go out once.
struct OwnLength;
impl RequestHandler for OwnLength {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_header("Content-Length", "5")?;
        x.write("12345");
        Ok(())
    }
}

/// Streams three pieces, flushed one by one, 30 ms apart (chunked).
struct Stream;
impl RequestHandler for Stream {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_async();
        x.write("one,");
        drop(x.flush());
        let x = x.clone();
        IOLoop::current().call_later(Duration::from_millis(30), move || {
            x.write("two,");
            drop(x.flush());
            let x2 = x.clone();
            IOLoop::current().call_later(Duration::from_millis(30), move || {
                x2.write("three");
                let _ = x2.finish();
            });
        });
        Ok(())
    }
}

/// Copies the query argument `v` into a response header: with `?` an
/// invalid value fails the handler (500); nothing of it may be sent.
struct InjectHeader;
impl RequestHandler for InjectHeader {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let v = x.request().get_query_argument("v").unwrap_or_default();
        x.set_header("X-Echo", v)?;
        x.write("echoed");
        Ok(())
    }
}

/// Redirects to the query argument `to`; an invalid target is a 400.
struct InjectRedirect;
impl RequestHandler for InjectRedirect {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let to = x.request().get_query_argument("to").unwrap_or_default();
        match x.redirect(&to) {
            Err(e) if e.kind() == ErrorKind::InvalidArgument => {
                x.send_error(400);
                Ok(())
            }
            other => other,
        }
    }
}

/// The size of `/big`'s body: 4 MiB.
const BIG: usize = 4 << 20;

/// `/big`'s body: 16-byte lines, each its own offset (`000000000000016\n`),
/// so a lost or repeated piece shows where.
fn big_body() -> Vec<u8> {
    let mut body = Vec::with_capacity(BIG);
    for i in 0..BIG / 16 {
        body.extend_from_slice(format!("{:015}\n", i * 16).as_bytes());
    }
    body
}

struct Big;
impl RequestHandler for Big {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_header("Content-Type", "text/plain")?;
        x.write(big_body());
        Ok(())
    }
}

/// Answers with the request's `X-Name` header.
struct HeaderEcho;
impl RequestHandler for HeaderEcho {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let name = x.request().headers().get("X-Name").unwrap_or("-");
        x.write(format!("x-name={name}"));
        Ok(())
    }
}

fn app() -> Application {
    Application::new()
        .route("/", || Hello)
        .route("/echo", || Echo)
        .route("/whoami", || WhoAmI)
        .route("/no_content", || NoContent)
        .route("/not_modified", || NotModified)
        .route("/own_length", || OwnLength)
        .route("/stream", || Stream)
        .route("/inject", || InjectHeader)
        .route("/inject_redirect", || InjectRedirect)
        .route("/big", || Big)
        .route("/header", || HeaderEcho)
}

fn server() -> TestServer {
    TestServer::start(app, |s| {
        s.set_max_body_size(8 << 20);
        s.set_header_timeout(Duration::from_secs(10));
        s.set_idle_timeout(Duration::from_secs(30));
    })
}

/// Runs a Python client script with the server's base URL; it asserts on
/// its own and prints `ALL OK` last.
fn python_client(s: &TestServer, script: &str) {
    let (ok, out, err) = run(
        Command::new(python()).args(["-c", script, &s.url("")]),
        None,
        LIMIT,
    );
    assert!(
        ok && out.trim_end().ends_with("ALL OK"),
        "client failed:\nstdout:\n{out}\nstderr:\n{err}"
    );
}

/// `-w` after each URL: status, new connections made, and the size read.
const CURL_W: &str = "|%{http_code} %{num_connects} %{size_download}\n";
