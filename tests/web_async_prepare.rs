//! Tornado 6's `async def prepare`: a block started with
//! `Exchange::run_async` from `prepare` is awaited before the verb method,
//! which runs when it ends (unless it failed or finished the response).
//! tornado/test/web_test.py's `AsyncPrepareErrorHandler` ported, and what
//! the rest of `_execute` promises.

#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;

#[path = "common/web.rs"]
mod web_kit;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_kit::{connect, read_reply};
use squall::web::{Application, Exchange, HTTPError, RequestHandler};
use squall::{gen, Error};
use web_kit::{get, serve};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What the prepare found, for the verb method: a handler's state, shared
/// with its `'static` block as a Tornado coroutine shares `self`.
#[derive(Default)]
struct Prepared {
    user: Rc<RefCell<Option<String>>>,
    wait: bool,
    sync_get: bool,
}

impl RequestHandler for Prepared {
    fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
        let (user, wait) = (self.user.clone(), self.wait);
        x.run_async(move |x| async move {
            if wait {
                gen::sleep(ms(5)).await?;
            }
            let name = x.request().query().to_owned();
            *user.borrow_mut() = Some(name);
            x.write("prepared;");
            Ok(())
        })
    }

    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let user = self.user.borrow().clone().unwrap_or_default();
        if self.sync_get {
            // A plain method after an async prepare: finished on return.
            x.write(format!("get {user}"));
            return Ok(());
        }
        x.run_async(move |x| async move {
            gen::sleep(ms(1)).await?;
            x.write(format!("async get {user}"));
            Ok(())
        })
    }
}

/// `AsyncPrepareErrorHandler`: the prepare fails after a wait; the verb
/// never runs.
struct PrepareError;
static PREPARE_ERROR_GETS: AtomicUsize = AtomicUsize::new(0);

impl RequestHandler for PrepareError {
    fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
        x.run_async(|_x| async move {
            gen::moment().await?;
            Err(HTTPError::new(403).into())
        })
    }
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        PREPARE_ERROR_GETS.fetch_add(1, Ordering::SeqCst);
        x.write("ok");
        Ok(())
    }
}

/// The prepare answers (a redirect) after a wait: the verb is skipped.
struct PrepareAnswers;
static PREPARE_ANSWERS_GETS: AtomicUsize = AtomicUsize::new(0);

impl RequestHandler for PrepareAnswers {
    fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
        x.run_async(|x| async move {
            gen::sleep(ms(2)).await?;
            x.redirect("/elsewhere")
        })
    }
    fn get(&mut self, _x: &Exchange) -> Result<(), Error> {
        PREPARE_ANSWERS_GETS.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// The client leaves while the prepare waits.
struct PrepareLeft;
static LEFT_GETS: AtomicUsize = AtomicUsize::new(0);
static LEFT_CLOSES: AtomicUsize = AtomicUsize::new(0);
static LEFT_FINISHES: AtomicUsize = AtomicUsize::new(0);

impl RequestHandler for PrepareLeft {
    fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
        x.run_async(|_x| async move {
            gen::sleep(Duration::from_secs(3600)).await?;
            Ok(())
        })
    }
    fn get(&mut self, _x: &Exchange) -> Result<(), Error> {
        LEFT_GETS.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn on_connection_close(&mut self) {
        LEFT_CLOSES.fetch_add(1, Ordering::SeqCst);
    }
    fn on_finish(&mut self) {
        LEFT_FINISHES.fetch_add(1, Ordering::SeqCst);
    }
}

fn app() -> Application {
    Application::new()
        .route("/at_once", Prepared::default)
        .route("/waits", || Prepared {
            wait: true,
            ..Prepared::default()
        })
        .route("/waits_sync_get", || Prepared {
            wait: true,
            sync_get: true,
            ..Prepared::default()
        })
        .route("/async_prepare_error", || PrepareError)
        .route("/prepare_answers", || PrepareAnswers)
        .route("/left", || PrepareLeft)
}

#[test]
fn the_verb_runs_after_an_async_prepare_that_ends_at_once() {
    let s = serve(app);
    let r = get(s.addr, "/at_once?ann", &[]);
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "prepared;async get ann")
    );
}

#[test]
fn the_verb_waits_for_an_async_prepare_that_waits() {
    let s = serve(app);
    let r = get(s.addr, "/waits?bob", &[]);
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "prepared;async get bob")
    );
    // A plain verb method after it is finished when it returns.
    let r = get(s.addr, "/waits_sync_get?cy", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "prepared;get cy"));
}

#[test]
fn an_async_prepare_error_answers_and_skips_the_verb() {
    // tornado/test/web_test.py: test_async_prepare_error_handler.
    let s = serve(app);
    let r = get(s.addr, "/async_prepare_error", &[]);
    assert_eq!(r.status, 403);
    assert_eq!(PREPARE_ERROR_GETS.load(Ordering::SeqCst), 0);
}

#[test]
fn an_async_prepare_that_answers_skips_the_verb() {
    let s = serve(app);
    let r = get(s.addr, "/prepare_answers", &[]);
    assert_eq!(r.status, 302);
    assert_eq!(r.header("Location").as_deref(), Some("/elsewhere"));
    assert_eq!(PREPARE_ANSWERS_GETS.load(Ordering::SeqCst), 0);
}

#[test]
fn keep_alive_requests_alternate_waiting_and_immediate_prepares() {
    let s = serve(app);
    let mut conn = connect(s.addr);
    let mut buf = Vec::new();
    for i in 0..6 {
        let (path, want) = match i % 3 {
            0 => ("/waits?d", "prepared;async get d"),
            1 => ("/at_once?e", "prepared;async get e"),
            _ => ("/waits_sync_get?f", "prepared;get f"),
        };
        write!(conn, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let r = read_reply(&mut conn, &mut buf, false).expect("a reply");
        assert_eq!((r.status, r.text().as_str()), (200, want));
    }
}

#[test]
fn a_client_leaving_during_the_prepare_drops_it_and_the_verb_never_runs() {
    let s = serve(app);
    let mut conn = connect(s.addr);
    conn.write_all(b"GET /left HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // The prepare is waiting: its hour-long timeout is on the loop.
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.loop_stats().1 == 0 {
        assert!(Instant::now() < deadline, "the prepare never waited");
        std::thread::sleep(ms(5));
    }
    drop(conn);
    while LEFT_FINISHES.load(Ordering::SeqCst) == 0 || s.loop_stats().1 != 0 {
        assert!(Instant::now() < deadline, "the prepare was not dropped");
        std::thread::sleep(ms(5));
    }
    assert_eq!(LEFT_CLOSES.load(Ordering::SeqCst), 1);
    assert_eq!(LEFT_FINISHES.load(Ordering::SeqCst), 1);
    assert_eq!(LEFT_GETS.load(Ordering::SeqCst), 0);
    // The server goes on.
    let mut buf = [0u8; 1];
    let mut conn = connect(s.addr);
    conn.write_all(b"GET /at_once HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert!(conn.read(&mut buf).unwrap() > 0);
}
