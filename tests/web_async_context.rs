//! The request's stack context around an `async` handler (issue #24): it
//! is entered lazily, made only when something captures the stack, and
//! that must not be observable. A callback the method schedules after
//! `run_async`, or the block schedules during its first poll, still
//! carries the request's context (and the coroutine's): its failure
//! answers 500, as Tornado's `@asynchronous` context does; a block that
//! schedules nothing and finishes at once leaves nothing behind, request
//! after request on one connection.

#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;

#[path = "common/web.rs"]
mod web_kit;

use std::time::Duration;

use squall::web::{Application, Exchange, RequestHandler};
use squall::{gen, Error, IOLoop};
use web_kit::{get, serve};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Starts a block that waits, then schedules a failing callback from the
/// method, after `run_async` returned: the request's context catches it.
struct FailsAfterRunAsync;
impl RequestHandler for FailsAfterRunAsync {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.run_async(|x| async move {
            gen::sleep(ms(200)).await?;
            x.write("the block answered");
            Ok(())
        })?;
        IOLoop::current().call_later(ms(5), || Err::<(), _>(Error::other("late failure")));
        Ok(())
    }
}

/// A block that schedules a failing callback in its first poll, then
/// waits longer than the callback takes: the error ends the coroutine
/// (thrown into it) and answers 500.
struct FailsFromFirstPoll;
impl RequestHandler for FailsFromFirstPoll {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.run_async(|x| async move {
            IOLoop::current().call_later(ms(5), || Err::<(), _>(Error::other("boom")));
            gen::sleep(ms(2_000)).await?;
            x.write("not reached");
            Ok(())
        })
    }
}

/// A block that finishes at once having scheduled nothing.
struct AtOnce;
impl RequestHandler for AtOnce {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.run_async(|x| async move {
            x.write("at once");
            Ok(())
        })
    }
}

/// A block that finishes at once but left a callback behind that fails
/// after the response went out: nothing to answer (logged), and the
/// connection serves on.
struct LeavesAFailingCallback;
impl RequestHandler for LeavesAFailingCallback {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.run_async(|x| async move {
            IOLoop::current().call_later(ms(1), || Err::<(), _>(Error::other("after the end")));
            x.write("done first");
            Ok(())
        })
    }
}

fn app() -> Application {
    Application::new()
        .route("/after", || FailsAfterRunAsync)
        .route("/first_poll", || FailsFromFirstPoll)
        .route("/at_once", || AtOnce)
        .route("/leaves", || LeavesAFailingCallback)
}

#[test]
fn a_callback_scheduled_after_run_async_carries_the_request_context() {
    let s = serve(app);
    let r = get(s.addr, "/after", &[]);
    assert_eq!(r.status, 500);
    // And again: the context the first request kept is its own.
    assert_eq!(get(s.addr, "/after", &[]).status, 500);
    assert_eq!(get(s.addr, "/at_once", &[]).text(), "at once");
}

#[test]
fn a_callback_scheduled_in_the_first_poll_ends_the_waiting_coroutine() {
    let s = serve(app);
    let started = std::time::Instant::now();
    let r = get(s.addr, "/first_poll", &[]);
    assert_eq!(r.status, 500);
    assert!(
        started.elapsed() < ms(1_500),
        "answered by the error, not the sleep"
    );
}

#[test]
fn immediate_blocks_mixed_with_ones_that_capture_keep_serving() {
    let s = serve(app);
    for _ in 0..20 {
        assert_eq!(get(s.addr, "/at_once", &[]).text(), "at once");
        assert_eq!(get(s.addr, "/leaves", &[]).text(), "done first");
    }
    assert_eq!(get(s.addr, "/after", &[]).status, 500);
    assert_eq!(get(s.addr, "/at_once", &[]).text(), "at once");
}
