//! What the gzip tests (tests/web_gzip.rs, tests/httpclient_gzip.rs)
//! share: gzip by flate2 directly (not squall's), and an application whose
//! handlers exercise `compress_response`. Include after `http_kit`
//! (common/http.rs).

use std::cell::RefCell;
use std::io::Write;

use flate2::write::GzDecoder;
use squall::web::{Application, Exchange, RequestHandler, Settings};
use squall::{Error, Future};

use super::http_kit::{self, raw_request, TestServer};

/// Tornado's `GzipTestCase` body: past `MIN_LENGTH`.
pub fn long_body() -> String {
    format!("hello world{}", "!".repeat(squall::web::gzip::MIN_LENGTH))
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut d = GzDecoder::new(Vec::new());
    d.write_all(data).unwrap();
    d.finish().unwrap()
}

/// Writes the long body; `?vary=` values become `Vary` headers, `?type=`
/// the `Content-Type`, `?encoding=` a `Content-Encoding` of its own,
/// `?status=` the status, `?length=1` a `Content-Length` of its own,
/// `?n=` the body's length instead.
pub struct Page;
impl RequestHandler for Page {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let q = x.request().query_arguments();
        for v in q.get("vary").into_iter().flatten() {
            x.add_header("Vary", v)?;
        }
        if let Some(t) = q.get("type") {
            x.set_header("Content-Type", &t[0])?;
        }
        if let Some(e) = q.get("encoding") {
            x.set_header("Content-Encoding", &e[0])?;
        }
        if let Some(s) = q.get("status") {
            x.set_status(s[0].parse().unwrap());
        }
        let body = match q.get("n") {
            Some(n) => "x".repeat(n[0].parse().unwrap()),
            None => long_body(),
        };
        if q.contains_key("length") {
            x.set_header("Content-Length", body.len().to_string())?;
        }
        x.write(body);
        Ok(())
    }
}

/// Echoes what the request looked like: its body and a few headers, as
/// `name=value` lines then the body.
pub struct Echo;
impl RequestHandler for Echo {
    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        let h = x.request().headers();
        let mut out = String::new();
        for name in [
            "Content-Encoding",
            "X-Consumed-Content-Encoding",
            "Accept-Encoding",
        ] {
            out.push_str(&format!("{name}={}\n", h.get(name).unwrap_or("-")));
        }
        x.set_header("Content-Type", "application/octet-stream")?;
        x.write(out);
        x.write(x.request().body());
        Ok(())
    }
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        self.post(x)
    }
}

thread_local! {
    /// A streamed response waiting for `/go` to send its second part.
    static WAITING: RefCell<Option<Exchange>> = const { RefCell::new(None) };
}

pub fn part(n: u8) -> String {
    format!("part {n}: {}\n", "abcdefgh".repeat(40))
}

/// Sends part 1 and flushes; part 2 waits for a request to `/go`.
pub struct Streamed;
impl RequestHandler for Streamed {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_async();
        x.set_header("Content-Type", "text/plain")?;
        // A length set before a flush no longer holds once compressed.
        if x.request().query().contains("length") {
            x.set_header("Content-Length", (2 * part(1).len()).to_string())?;
        }
        x.write(part(1));
        drop(x.flush());
        WAITING.with(|w| *w.borrow_mut() = Some(x.clone()));
        Ok(())
    }
}

pub struct Go;
impl RequestHandler for Go {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        if let Some(waiting) = WAITING.with(|w| w.borrow_mut().take()) {
            waiting.write(part(2));
            waiting.finish()?;
        }
        x.write("went");
        Ok(())
    }
}

/// Five flushed pieces, one per loop iteration, then the end.
pub struct Pieces;
impl RequestHandler for Pieces {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_async();
        x.set_header("Content-Type", "text/plain")?;
        fn next(x: Exchange, i: u8) {
            if i == 5 {
                let _ = x.finish();
                return;
            }
            x.write(part(i));
            let f = x.flush();
            f.add_done_callback(move |_: &Future<()>| next(x, i + 1));
        }
        next(x.clone(), 0);
        Ok(())
    }
}

pub fn pieces_body() -> String {
    (0..5).map(part).collect()
}

pub fn app(compress: bool) -> Application {
    Application::with_settings(Settings {
        compress_response: compress,
        ..Default::default()
    })
    .route("/", || Page)
    .route("/echo", || Echo)
    .route("/stream", || Streamed)
    .route("/go", || Go)
    .route("/pieces", || Pieces)
}

pub fn server() -> TestServer {
    TestServer::start(|| app(true), |_| {})
}

pub fn get(s: &TestServer, path: &str, accept: Option<&str>) -> http_kit::Reply {
    let ae = accept.map_or(String::new(), |a| format!("Accept-Encoding: {a}\r\n"));
    let raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{ae}\r\n");
    raw_request(s.addr, raw.as_bytes()).expect("a reply")
}
