//! The access log (Tornado's `log_request`): one line per finished request
//! on the `squall::access` target, at info for 1xx-3xx, warn for 4xx and
//! error for 5xx, naming status, method, target and client.
//!
//! Its own test binary: the logger it installs is process-wide.

#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use http_kit::{raw_request, TestServer};
use log::{Level, LevelFilter, Log, Metadata, Record};
use squall::web::{Application, Exchange, HTTPError, RequestHandler};
use squall::Error;

/// Every `squall::access` line, with its level.
struct Access(Mutex<Vec<(Level, String)>>);

impl Log for Access {
    fn enabled(&self, m: &Metadata) -> bool {
        m.target() == "squall::access"
    }
    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            let line = (record.level(), record.args().to_string());
            self.0.lock().unwrap().push(line);
        }
    }
    fn flush(&self) {}
}

static LOGGER: Access = Access(Mutex::new(Vec::new()));

struct Answer;

impl RequestHandler for Answer {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        match x.request().path() {
            "/ok" => x.write("fine"),
            "/moved" => x.redirect("/ok")?,
            "/teapot" => return Err(HTTPError::new(418).into()),
            _ => return Err(HTTPError::new(503).into()),
        }
        Ok(())
    }
}

#[test]
fn each_request_logs_one_line_at_its_status_level() {
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(LevelFilter::Info);
    let s = TestServer::start(|| Application::new().route("/{page}", || Answer), |_| {});
    let ask = |path: &str| {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        raw_request(s.addr, raw.as_bytes())
            .expect("an answer")
            .status
    };
    assert_eq!(ask("/ok"), 200);
    assert_eq!(ask("/moved"), 302);
    assert_eq!(ask("/teapot"), 418);
    assert_eq!(ask("/down?x=1"), 503);
    // The line is written as the response finishes: at most a moment after
    // the client has it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while LOGGER.0.lock().unwrap().len() < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let lines = LOGGER.0.lock().unwrap().clone();
    let seen: Vec<(Level, &str)> = lines
        .iter()
        .map(|(level, line)| (*level, line.split(" (").next().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            (Level::Info, "200 GET /ok"),
            (Level::Info, "302 GET /moved"),
            (Level::Warn, "418 GET /teapot"),
            (Level::Error, "503 GET /down?x=1"),
        ],
        "{lines:?}"
    );
    for (_, line) in &lines {
        assert!(
            line.contains("(127.0.0.1) ") && line.ends_with("ms"),
            "{line}"
        );
    }
}
