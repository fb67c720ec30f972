//! Handler methods written as `async` blocks (`Exchange::run_async`,
//! Tornado 6's `async def get`) through a real server: awaiting a sleep and
//! an `AsyncHTTPClient` fetch of another route, errors answered with their
//! `HTTPError` status (tornado/test/web_test.py's `async def` handlers and
//! `ErrorResponseTest`, ported), and a client leaving mid-await leaving
//! nothing behind.

#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;

#[path = "common/web.rs"]
mod web_kit;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_kit::{connect, eventually, read_reply, TestServer};
use squall::httpclient::AsyncHTTPClient;
use squall::web::{Application, Exchange, HTTPError, RequestHandler};
use squall::{gen, Error, ErrorKind, IOLoop};
use web_kit::{get, serve};

/// What `A`'s function makes: the `async` block, boxed.
type Block = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>>>>;

/// A handler whose `get` is one `async` block, made by a plain function
/// (so routes stay one line each).
struct A(fn(Exchange) -> Block);

impl RequestHandler for A {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.run_async(self.0)
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A page that names the status, to see `write_error` used for a
/// coroutine's error.
struct Api;
impl RequestHandler for Api {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.run_async(|_x| async move {
            gen::sleep(ms(1)).await?;
            Err(HTTPError::new(403).log_message("no entry").into())
        })
    }
    fn write_error(x: &Exchange, status: u16, _error: Option<&Error>) {
        x.write(format!("api error {status}"));
    }
}

fn app() -> Application {
    Application::new()
        .route("/hello", || {
            A(|x| {
                Box::pin(async move {
                    x.write("hello from upstream");
                    Ok(())
                })
            })
        })
        // Tornado's `async def get`: a sleep, then a fetch of another
        // route of this very server, then the answer.
        .route("/proxy", || {
            A(|x| {
                Box::pin(async move {
                    gen::sleep(ms(5)).await?;
                    let url = format!("http://{}/hello", x.request().host());
                    let r = AsyncHTTPClient::new().fetch(url).await?;
                    x.write(format!("{} ", r.code));
                    x.write(r.body);
                    Ok(())
                })
            })
        })
        .route("/sleepy", || {
            A(|x| {
                Box::pin(async move {
                    gen::moment().await?;
                    gen::sleep(ms(2)).await?;
                    x.write(format!("slept on {}", x.request().path()));
                    Ok(())
                })
            })
        })
        .route("/forbidden", || Api)
        .route("/panic", || {
            A(|_x| {
                Box::pin(async move {
                    gen::moment().await?;
                    panic!("the coroutine panicked")
                })
            })
        })
        .route("/sync_error", || {
            // Fails before its first wait: still the coroutine's error.
            A(|_x| Box::pin(async move { Err(HTTPError::new(418).into()) }))
        })
        .route("/callback_error", || {
            // A callback the coroutine scheduled fails: thrown into the
            // coroutine (it is waiting for an hour), which ends it.
            A(|_x| {
                Box::pin(async move {
                    IOLoop::current()
                        .add_callback(|| Err::<(), _>(Error::other("boom in a callback")));
                    gen::sleep(Duration::from_secs(3600)).await?;
                    Ok(())
                })
            })
        })
        .route("/started", || {
            // The head went out; an error can only close the connection.
            A(|x| {
                Box::pin(async move {
                    x.write("partial");
                    x.flush().await?;
                    gen::sleep(ms(2)).await?;
                    Err(Error::other("failed after the head was sent"))
                })
            })
        })
        .route("/finish_early", || {
            // Finishes the response, then goes on working: nothing is
            // finished twice, and the work is not cut short.
            A(|x| {
                Box::pin(async move {
                    x.write("early");
                    x.finish()?;
                    gen::sleep(ms(20)).await?;
                    AFTER_FINISH.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                })
            })
        })
        .route("/twice", || Twice)
        .route("/after_finish", || AfterFinish)
        .route("/hang", || Hang)
}

static AFTER_FINISH: AtomicUsize = AtomicUsize::new(0);

struct Twice;
impl RequestHandler for Twice {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.run_async(|x| async move {
            gen::sleep(ms(1)).await?;
            x.write("first");
            Ok(())
        })?;
        let second = x.run_async(|_| async { unreachable!("never started") });
        let kind = second.err().map(|e| e.kind());
        x.set_header("X-Second", format!("{kind:?}"))
    }
}

struct AfterFinish;
impl RequestHandler for AfterFinish {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write("done");
        x.finish()?;
        let late = x.run_async(|_| async { unreachable!("never started") });
        assert_eq!(late.unwrap_err().kind(), ErrorKind::InvalidState);
        Ok(())
    }
}

// The /hang handler's story, for the client-leaves test.
static HANG_BLOCK_DROPPED: AtomicUsize = AtomicUsize::new(0);
static HANG_CONNECTION_CLOSE: AtomicUsize = AtomicUsize::new(0);
static HANG_ON_FINISH: AtomicUsize = AtomicUsize::new(0);
static HANG_STARTED: AtomicUsize = AtomicUsize::new(0);

/// Dropped with the coroutine's block.
struct Witness;
impl Drop for Witness {
    fn drop(&mut self) {
        HANG_BLOCK_DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

struct Hang;
impl RequestHandler for Hang {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.run_async(|x| async move {
            let _witness = Witness;
            HANG_STARTED.fetch_add(1, Ordering::SeqCst);
            gen::sleep(Duration::from_secs(3600)).await?;
            x.write("never");
            Ok(())
        })
    }
    fn on_connection_close(&mut self) {
        // The block went first: nothing of it runs after the client left.
        assert_eq!(
            HANG_BLOCK_DROPPED.load(Ordering::SeqCst),
            HANG_STARTED.load(Ordering::SeqCst)
        );
        HANG_CONNECTION_CLOSE.fetch_add(1, Ordering::SeqCst);
    }
    fn on_finish(&mut self) {
        HANG_ON_FINISH.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn async_get_awaits_a_sleep_and_a_fetch_of_another_route() {
    let s = serve(app);
    let r = get(s.addr, "/proxy", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text(), "200 hello from upstream");
    assert_eq!(r.header("Content-Length").as_deref(), Some("23"));
}

#[test]
fn async_error_answers_with_its_http_status_through_write_error() {
    let s = serve(app);
    let r = get(s.addr, "/forbidden", &[]);
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), "api error 403");
    let r = get(s.addr, "/sync_error", &[]);
    assert_eq!(r.status, 418);
    assert!(r.text().contains("418: I'm a Teapot"), "{}", r.text());
}

#[test]
fn async_panic_and_failing_callback_answer_500_and_the_server_goes_on() {
    let s = serve(app);
    let r = get(s.addr, "/panic", &[]);
    assert_eq!(r.status, 500);
    assert!(r.text().contains("500: Internal Server Error"));
    let r = get(s.addr, "/callback_error", &[]);
    assert_eq!(r.status, 500);
    // The hour-long sleep went with the coroutine.
    eventually("no timeout left", || s.loop_stats().1 == 0);
    assert_eq!(get(s.addr, "/hello", &[]).text(), "hello from upstream");
}

#[test]
fn async_error_after_the_head_went_out_closes_the_connection() {
    let s = serve(app);
    let mut conn = connect(s.addr);
    conn.write_all(b"GET /started HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // The head and the first chunk, then the connection closes without
    // the chunked body's end.
    let mut seen = Vec::new();
    let _ = conn.read_to_end(&mut seen);
    let seen = String::from_utf8_lossy(&seen).into_owned();
    assert!(seen.starts_with("HTTP/1.1 200 OK\r\n"), "{seen:?}");
    assert!(seen.contains("Transfer-Encoding: chunked"), "{seen:?}");
    assert!(seen.contains("\r\n7\r\npartial\r\n"), "{seen:?}");
    assert!(!seen.ends_with("0\r\n\r\n"), "{seen:?}");
}

#[test]
fn finishing_inside_the_coroutine_answers_at_once_and_the_work_goes_on() {
    let s = serve(app);
    let before = AFTER_FINISH.load(Ordering::SeqCst);
    let r = get(s.addr, "/finish_early", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "early"));
    eventually("the work after finish()", || {
        AFTER_FINISH.load(Ordering::SeqCst) == before + 1
    });
}

#[test]
fn one_coroutine_per_request_and_none_after_finish() {
    let s = serve(app);
    let r = get(s.addr, "/twice", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "first");
    assert_eq!(r.header("X-Second").as_deref(), Some("Some(InvalidState)"));
    let r = get(s.addr, "/after_finish", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "done"));
}

#[test]
fn keep_alive_requests_each_get_their_coroutine() {
    // The exchange is pooled and reused between requests: its coroutine
    // state must be fresh each time.
    let s = serve(app);
    let mut conn = connect(s.addr);
    let mut buf = Vec::new();
    let host = s.addr;
    for i in 0..5 {
        let path = if i % 2 == 0 { "/sleepy" } else { "/hello" };
        write!(conn, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
        let r = read_reply(&mut conn, &mut buf, false).expect("a reply");
        assert_eq!(r.status, 200);
        let want = if i % 2 == 0 {
            "slept on /sleepy"
        } else {
            "hello from upstream"
        };
        assert_eq!(r.text(), want);
    }
    // Pipelined: the second waits for the first coroutine.
    write!(
        conn,
        "GET /sleepy HTTP/1.1\r\nHost: {host}\r\n\r\nGET /proxy HTTP/1.1\r\nHost: {host}\r\n\r\n"
    )
    .unwrap();
    let a = read_reply(&mut conn, &mut buf, false).expect("a reply");
    let b = read_reply(&mut conn, &mut buf, false).expect("a reply");
    assert_eq!(a.text(), "slept on /sleepy");
    assert_eq!(b.text(), "200 hello from upstream");
}

#[test]
fn head_runs_the_async_get_without_the_body() {
    let s = serve(app);
    let mut conn = connect(s.addr);
    conn.write_all(b"HEAD /sleepy HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let r = read_reply(&mut conn, &mut Vec::new(), true).expect("a reply");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length").as_deref(), Some("16"));
    assert!(r.body.is_empty());
}

#[test]
fn client_leaving_mid_await_drops_the_coroutine_and_leaks_nothing() {
    let s = TestServer::start(app, |_| {});
    let (handlers, timeouts) = s.loop_stats();
    assert_eq!(timeouts, 0);
    for round in 1..=3 {
        let mut conn = connect(s.addr);
        conn.write_all(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        eventually("the coroutine waits", || {
            HANG_STARTED.load(Ordering::SeqCst) == round
        });
        // Its hour-long sleep is a timeout on the loop.
        assert!(s.loop_stats().1 > timeouts);
        drop(conn);
        eventually("the server saw the client go", || {
            HANG_ON_FINISH.load(Ordering::SeqCst) == round
        });
        assert_eq!(HANG_BLOCK_DROPPED.load(Ordering::SeqCst), round);
        assert_eq!(HANG_CONNECTION_CLOSE.load(Ordering::SeqCst), round);
        // The hour-long timeout is gone, and so is the connection's handler.
        eventually("the loop is as before", || {
            s.loop_stats() == (handlers, timeouts)
        });
    }
}
