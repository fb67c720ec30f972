//! Async handlers under a mix: many `run_async` requests on one keep-alive
//! connection, with errors, panics, failing callbacks, nested coroutines,
//! wakers kept past their coroutine's end and woken later, and clients
//! leaving mid-await, each answer checked (the echoed `n` catches an answer
//! from the wrong coroutine); the loop's handlers and timeouts come back to
//! where they started. A review's stress test of the pooled first poll
//! (shells, kept block boxes, carried frames): `ASYNC_STRESS_N=10000` for
//! a longer run.

#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use http_kit::{connect, read_reply, TestServer};
use squall::web::{Application, Exchange, HTTPError, RequestHandler};
use squall::{gen, Error, IOLoop};

type Block = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>>>>;

struct A(fn(Exchange, String) -> Block);
impl RequestHandler for A {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let n = x.get_query_argument_or("n", "?")?;
        let f = self.0;
        x.run_async(move |x| f(x, n))
    }
}

/// Not boxed: its own block type (so the kept box of its type is reused).
struct Plain;
impl RequestHandler for Plain {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let n = x.get_query_argument_or("n", "?")?;
        x.run_async(move |x| async move {
            x.write(format!("plain {n}"));
            Ok(())
        })
    }
}

thread_local! {
    static STALE: RefCell<Option<Waker>> = const { RefCell::new(None) };
}

struct DropStarts;
impl Drop for DropStarts {
    fn drop(&mut self) {
        // A block's drop starts a coroutine of its own.
        let f = gen::coroutine(async { Ok(7u32) });
        assert_eq!(f.result().unwrap(), 7);
        IOLoop::current().add_callback(|| Ok::<(), Error>(()));
    }
}

fn app() -> Application {
    Application::new()
        .route("/plain", || Plain)
        .route("/ok", || {
            A(|x, n| {
                Box::pin(async move {
                    x.write(format!("ok {n}"));
                    Ok(())
                })
            })
        })
        .route("/err", || {
            A(|_, _| Box::pin(async move { Err(HTTPError::new(418).into()) }))
        })
        .route("/panic", || {
            A(|_, _| Box::pin(async move { panic!("boom in the block") }))
        })
        .route("/cbfail", || {
            A(|x, n| {
                Box::pin(async move {
                    IOLoop::current().add_callback(|| Err::<(), _>(Error::other("cb boom")));
                    gen::sleep(Duration::from_millis(300)).await?;
                    x.write(format!("not reached {n}"));
                    Ok(())
                })
            })
        })
        .route("/cbok", || {
            A(|x, n| {
                Box::pin(async move {
                    IOLoop::current().add_callback(|| Ok::<(), Error>(()));
                    x.write(format!("cbok {n}"));
                    Ok(())
                })
            })
        })
        .route("/wait", || {
            A(|x, n| {
                Box::pin(async move {
                    gen::moment().await?;
                    x.write(format!("wait {n}"));
                    Ok(())
                })
            })
        })
        .route("/keepwaker", || {
            A(|x, n| {
                Box::pin(async move {
                    std::future::poll_fn(|cx| {
                        STALE.with(|s| *s.borrow_mut() = Some(cx.waker().clone()));
                        Poll::Ready(())
                    })
                    .await;
                    x.write(format!("kept {n}"));
                    Ok(())
                })
            })
        })
        .route("/wakestale", || {
            A(|x, n| {
                Box::pin(async move {
                    // Wakes a waker an earlier (finished) coroutine
                    // kept, then waits on its own timer: polled again
                    // before the timer fired means the stale wake
                    // reached this coroutine.
                    let fired = std::rc::Rc::new(Cell::new(false));
                    let mut first = true;
                    let fired2 = fired.clone();
                    let spurious = std::future::poll_fn(move |cx| {
                        if first {
                            first = false;
                            if let Some(w) = STALE.with(|s| s.borrow_mut().take()) {
                                w.wake();
                            }
                            let w = cx.waker().clone();
                            let f = fired2.clone();
                            IOLoop::current().call_later(Duration::from_millis(5), move || {
                                f.set(true);
                                w.wake();
                                Ok::<(), Error>(())
                            });
                            return Poll::Pending;
                        }
                        Poll::Ready(!fired2.get())
                    })
                    .await;
                    let _ = fired;
                    x.write(format!("stale {n} spurious={spurious}"));
                    Ok(())
                })
            })
        })
        .route("/nested", || {
            A(|x, n| {
                Box::pin(async move {
                    let guard = DropStarts;
                    // A coroutine of the same (boxed) block type, first-
                    // polled inside this one's first poll.
                    let inner: Block = Box::pin(async { Ok(()) });
                    gen::coroutine(inner).result()?;
                    let v = gen::coroutine(async { Ok(5u32) }).result()?;
                    x.write(format!("nested {n} {v}"));
                    drop(guard);
                    let _g2 = DropStarts;
                    Ok(())
                })
            })
        })
        .route("/hang", || {
            A(|x, _| {
                Box::pin(async move {
                    gen::sleep(Duration::from_secs(3600)).await?;
                    x.write("never");
                    Ok(())
                })
            })
        })
}

fn expect(path: &str, n: u64) -> (u16, Option<String>) {
    match path {
        "/plain" => (200, Some(format!("plain {n}"))),
        "/ok" => (200, Some(format!("ok {n}"))),
        "/err" => (418, None),
        "/panic" => (500, None),
        "/cbfail" => (500, None),
        "/cbok" => (200, Some(format!("cbok {n}"))),
        "/wait" => (200, Some(format!("wait {n}"))),
        "/keepwaker" => (200, Some(format!("kept {n}"))),
        "/wakestale" => (200, Some(format!("stale {n} spurious=false"))),
        "/nested" => (200, Some(format!("nested {n} 5"))),
        _ => unreachable!(),
    }
}

#[test]
fn mixed_async_requests_on_one_connection() {
    let s = TestServer::start(app, |_| {});
    let base = s.loop_stats();
    let paths = [
        "/plain",
        "/ok",
        "/err",
        "/ok",
        "/panic",
        "/plain",
        "/cbok",
        "/wait",
        "/keepwaker",
        "/ok",
        "/wakestale",
        "/nested",
        "/plain",
        "/cbfail",
        "/ok",
        "/keepwaker",
        "/plain",
        "/wakestale",
    ];
    let total: u64 = std::env::var("ASYNC_STRESS_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_800);
    let mut conn = connect(s.addr);
    conn.set_nodelay(true).unwrap();
    let mut buf = Vec::new();
    for i in 0..total {
        let path = paths[(i as usize + i as usize / paths.len()) % paths.len()];
        if i % 300 == 150 {
            // A client that leaves mid-await.
            let mut c = connect(s.addr);
            c.write_all(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            std::thread::sleep(Duration::from_millis(20));
            drop(c);
        }
        write!(conn, "GET {path}?n={i} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let r = read_reply(&mut conn, &mut buf, false)
            .unwrap_or_else(|| panic!("no reply to {path} #{i}"));
        let (status, body) = expect(path, i);
        assert_eq!(r.status, status, "{path} #{i}: {}", r.text());
        if let Some(body) = body {
            assert_eq!(r.text(), body, "{path} #{i}");
        }
    }
    drop(conn);
    comes_back(&s, base, Duration::from_secs(5));
}

#[test]
fn a_client_leaving_right_after_its_request() {
    let s = TestServer::start(app, |_| {});
    let base = s.loop_stats();
    let mut c = connect(s.addr);
    c.write_all(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    drop(c);
    comes_back(&s, base, Duration::from_secs(3));
}

/// Waits (up to `limit`) for the loop's handlers and timeouts to be back
/// at `base`: nothing left behind by the requests.
fn comes_back(s: &TestServer, base: (usize, usize), limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let now = s.loop_stats();
        if now == base {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "loop not back: {now:?} vs {base:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A block that finishes at once holding a value whose drop panics.
struct DropPanics;
impl RequestHandler for DropPanics {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.run_async(|x| async move {
            let _g = PanicsOnDrop;
            x.write("written");
            Ok(())
        })
    }
}

struct PanicsOnDrop;
impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("the block's drop panics");
        }
    }
}

/// `run_async` inside a stack context of the handler's own: a callback
/// its block schedules in the first poll fails, while the block waits.
struct InNullContext;
impl RequestHandler for InNullContext {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        squall::stack_context::NullContext::run(|| {
            x.run_async(|x| async move {
                IOLoop::current().add_callback(|| Err::<(), _>(Error::other("boom")));
                gen::sleep(Duration::from_millis(1500)).await?;
                x.write("slept through");
                Ok(())
            })
        })
    }
}

fn ask(s: &TestServer, path: &str) -> (u16, String) {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let r = http_kit::raw_request(s.addr, raw.as_bytes()).expect("an answer");
    (r.status, r.text())
}

#[test]
fn a_block_whose_drop_panics_answers_500_and_the_next_request_is_served() {
    let s = TestServer::start(
        || {
            app()
                .route("/drop_panics", || DropPanics)
                .route("/null", || InNullContext)
        },
        |_| {},
    );
    for i in 0..3 {
        assert_eq!(ask(&s, "/drop_panics").0, 500, "#{i}");
        assert_eq!(
            ask(&s, &format!("/plain?n={i}")),
            (200, format!("plain {i}"))
        );
    }
    // The failing callback still ends the request (with a 500), long
    // before the block's sleep would.
    let t0 = Instant::now();
    assert_eq!(ask(&s, "/null").0, 500);
    assert!(
        t0.elapsed() < Duration::from_millis(1000),
        "{:?}",
        t0.elapsed()
    );
}
