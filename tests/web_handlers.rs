//! How a route makes and runs its handlers, through a real server: a
//! handler with fields is made once per request and dropped once, whether
//! it answers at once, leaves its response open, or panics, and its
//! `on_finish` runs once; `set_async` enters the request's stack context
//! only where the method started (inside a stack context of the handler's
//! own, that one keeps its errors, the connection goes on unharmed, and
//! theirs is not left behind as the current stack).

#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_kit::{connect, read_reply, TestServer};
use squall::stack_context::ExceptionStackContext;
use squall::web::{Application, Exchange, RequestHandler};
use squall::{Error, IOLoop};

static MADE: AtomicUsize = AtomicUsize::new(0);
static DROPPED: AtomicUsize = AtomicUsize::new(0);
static FINISHED: AtomicUsize = AtomicUsize::new(0);
/// Errors that reached the handler's own stack context.
static THEIRS: AtomicUsize = AtomicUsize::new(0);
/// Errors that reached `OwnContextSync`'s context.
static THEIRS_SYNC: AtomicUsize = AtomicUsize::new(0);

/// A handler with fields (so not a zero-sized one), counting its lives.
struct Counted {
    name: String,
    mode: Mode,
}

#[derive(Clone, Copy)]
enum Mode {
    Sync,
    Async,
    Panic,
}

impl Counted {
    fn new(name: &str, mode: Mode) -> Counted {
        MADE.fetch_add(1, Ordering::SeqCst);
        Counted {
            name: name.to_owned(),
            mode,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

impl RequestHandler for Counted {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        match self.mode {
            Mode::Sync => x.write(format!("sync {}", self.name)),
            Mode::Async => {
                x.set_async();
                let x = x.clone();
                let name = self.name.clone();
                IOLoop::current().call_later(Duration::from_millis(5), move || {
                    x.write(format!("async {name}"));
                    x.finish()
                });
            }
            Mode::Panic => panic!("handler {} fails", self.name),
        }
        Ok(())
    }

    fn on_finish(&mut self) {
        // The fields are intact here, after the handler was boxed to wait.
        assert!(self.name.starts_with("h-"));
        FINISHED.fetch_add(1, Ordering::SeqCst);
    }
}

/// `set_async` inside a stack context of the handler's own; the callback
/// that finishes the response then fails: the error is theirs.
struct OwnContext;
impl RequestHandler for OwnContext {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let theirs = ExceptionStackContext::new(|_err| {
            THEIRS.fetch_add(1, Ordering::SeqCst);
            true
        });
        let x = x.clone();
        theirs.run(move || {
            x.set_async();
            IOLoop::current().call_later(Duration::from_millis(5), move || {
                x.write("theirs");
                x.finish()?;
                Err::<(), Error>(Error::other("after the finish, in their context"))
            });
        });
        Ok(())
    }
}

/// `set_async` inside a stack context of the handler's own, and the
/// response finished there too, before the method returns.
struct OwnContextSync;
impl RequestHandler for OwnContextSync {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let theirs = ExceptionStackContext::new(|_err| {
            THEIRS_SYNC.fetch_add(1, Ordering::SeqCst);
            true
        });
        theirs.run(|| {
            x.set_async();
            x.write("theirs, at once");
            x.finish()
        });
        Ok(())
    }
}

/// A synchronous handler whose callback fails after the answer: under the
/// stack the server runs handlers under, nobody's context hears of it.
struct Stray;
impl RequestHandler for Stray {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        IOLoop::current().add_callback(|| Err::<(), Error>(Error::other("stray")));
        x.write("stray");
        Ok(())
    }
}

/// `set_async` where the method started; a callback fails before the
/// finish: ours answers 500.
struct Ours;
impl RequestHandler for Ours {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_async();
        IOLoop::current().call_later(Duration::from_millis(5), || {
            Err::<(), Error>(Error::other("before the finish"))
        });
        Ok(())
    }
}

fn app() -> Application {
    Application::new()
        .route("/sync", || Counted::new("h-sync", Mode::Sync))
        .route("/async", || Counted::new("h-async", Mode::Async))
        .route("/panic", || Counted::new("h-panic", Mode::Panic))
        .route("/theirs", || OwnContext)
        .route("/ours", || Ours)
        .route("/theirs_sync", || OwnContextSync)
        .route("/stray", || Stray)
}

/// `paths` in turn on one keep-alive connection: (status, body) each.
fn ask(s: &TestServer, paths: &[&str]) -> Vec<(u16, String)> {
    let mut conn = connect(s.addr);
    let mut buf = Vec::new();
    paths
        .iter()
        .map(|path| {
            conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
                .unwrap();
            let r = read_reply(&mut conn, &mut buf, false).expect("an answer");
            (r.status, r.text())
        })
        .collect()
}

#[test]
fn a_handler_with_fields_lives_once_per_request() {
    let s = TestServer::start(app, |_| {});
    let paths = ["/sync", "/async", "/sync", "/async", "/async", "/sync"];
    let answers = ask(&s, &paths);
    for (path, (status, body)) in paths.iter().zip(&answers) {
        assert_eq!(*status, 200, "{path}");
        assert_eq!(*body, format!("{} h-{}", &path[1..], &path[1..]));
    }
    // A panic answers 500, and the connection goes on.
    let answers = ask(&s, &["/panic", "/sync", "/panic"]);
    assert_eq!(answers[0].0, 500);
    assert_eq!(answers[1], (200, "sync h-sync".to_owned()));
    assert_eq!(answers[2].0, 500);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let made = MADE.load(Ordering::SeqCst);
        let dropped = DROPPED.load(Ordering::SeqCst);
        let finished = FINISHED.load(Ordering::SeqCst);
        // Nine requests; the two panicking ones finish with a 500, and
        // their handlers' `on_finish` runs too.
        if made == 9 && dropped == 9 && finished == 9 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "made {made}, dropped {dropped}, on_finish {finished}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn set_async_enters_the_request_context_only_where_the_method_started() {
    let s = TestServer::start(app, |_| {});
    // Inside their context: theirs gets the error, the answer stands, and
    // the connection's next requests are served as usual (the stack was
    // left as it was found).
    let answers = ask(&s, &["/theirs", "/theirs", "/ours"]);
    assert_eq!(answers[0], (200, "theirs".to_owned()));
    assert_eq!(answers[1], (200, "theirs".to_owned()));
    // Where the method started: ours answers the error, 500.
    assert_eq!(answers[2].0, 500);
    let deadline = Instant::now() + Duration::from_secs(10);
    while THEIRS.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline, "their context heard nothing");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(THEIRS.load(Ordering::SeqCst), 2);
    // And again, on a fresh connection, after all that.
    assert_eq!(ask(&s, &["/ours"])[0].0, 500);
}

#[test]
fn a_context_of_the_handlers_own_ends_with_it() {
    let s = TestServer::start(app, |_| {});
    // Pipelined, so that both are answered in one read: the second
    // handler runs right after the first's method returned. Had the
    // request context been entered inside theirs, leaving it would have
    // put theirs back as the current stack, and the stray error would
    // reach it.
    let mut conn = connect(s.addr);
    conn.write_all(
        b"GET /theirs_sync HTTP/1.1\r\nHost: a\r\n\r\nGET /stray HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    let first = read_reply(&mut conn, &mut buf, false).expect("an answer");
    let second = read_reply(&mut conn, &mut buf, false).expect("an answer");
    assert_eq!(
        (first.status, first.text()),
        (200, "theirs, at once".to_owned())
    );
    assert_eq!((second.status, second.text()), (200, "stray".to_owned()));
    // The stray callback has run by the time a later request is answered.
    std::thread::sleep(Duration::from_millis(50));
    conn.write_all(b"GET /stray HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_reply(&mut conn, &mut buf, false)
            .expect("an answer")
            .status,
        200
    );
    assert_eq!(THEIRS_SYNC.load(Ordering::SeqCst), 0);
}
