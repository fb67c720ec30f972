//! What an `async` coroutine costs in allocations (issue #24): one that
//! finishes in its first poll, one that waits, and an `async` handler
//! next to a plain one. Counted by a global allocator, so the figures are
//! exact; the tests count the whole process, so they run one at a time.

#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Poll, Waker};

use http_kit::TestServer;
use squall::web::{Application, Exchange, RequestHandler};
use squall::{gen, Error, Future, IOLoop};

/// Allocations made so far, all threads (a `realloc` counts as one).
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Allocations made so far by this thread (no destructor, so using it
    /// inside the allocator allocates nothing).
    static HERE: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    let _ = HERE.try_with(|h| h.set(h.get() + 1));
}

struct Counting;

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// This thread's allocations per run of `f`, over `n` runs after a
/// warm-up.
fn allocations_here_per(n: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..16 {
        f();
    }
    let before = HERE.with(Cell::get);
    for _ in 0..n {
        f();
    }
    (HERE.with(Cell::get) - before) as f64 / n as f64
}

/// The process's allocations per run of `f`, over `n` runs after a
/// warm-up.
fn allocations_per(n: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..16 {
        f();
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..n {
        f();
    }
    (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / n as f64
}

#[test]
fn a_coroutine_that_finishes_at_once_allocates_only_what_it_awaits_and_its_future() {
    let _serial = serial();
    let io_loop = IOLoop::new().unwrap();
    io_loop.make_current();
    let per = allocations_here_per(1000, || {
        let done = gen::coroutine(async { Ok(Future::ready(20).await? + 1) });
        assert_eq!(done.result().unwrap(), 21);
    });
    eprintln!("finished at once: {per} allocations per coroutine");
    // Future::ready (1), the Future `coroutine` returns (1); the block's
    // box is the last one of its type's, kept. It was 13: also a runner,
    // its context (3), a waker, the `Polling` record, the generator's box,
    // the `done` closure's and two more, each coroutine; then 3.
    assert!(per <= 2.0, "{per} allocations per coroutine");
    IOLoop::clear_current();
}

#[test]
fn a_coroutine_that_waits_reuses_its_runner_once_it_is_done() {
    let _serial = serial();
    let io_loop = IOLoop::new().unwrap();
    io_loop.make_current();
    let per = allocations_here_per(1000, || {
        let later = Future::<u32>::new();
        let awaited = later.clone();
        let done = gen::coroutine(async move { Ok(awaited.await? + 1) });
        assert!(!done.done());
        later.set_result(1);
        assert_eq!(done.result().unwrap(), 2);
    });
    eprintln!("waited once: {per} allocations per coroutine");
    // The awaited Future (1), the block's box (1), its driver's (1), the
    // returned Future (1): the runner and its parts come back from the
    // pool. It was 13.
    assert!(per <= 4.0, "{per} allocations per coroutine");
    IOLoop::clear_current();
}

#[test]
fn a_coroutine_whose_waker_got_out_reuses_its_runner_once_it_is_done() {
    thread_local! {
        /// Where the foreign side keeps the waker (no allocation to fill).
        static KEPT: RefCell<Option<Waker>> = const { RefCell::new(None) };
    }
    let _serial = serial();
    // No loop: a wake at home is delivered at once.
    IOLoop::clear_current();
    let per = allocations_here_per(1000, || {
        let mut polled = false;
        let done = gen::coroutine(async move {
            std::future::poll_fn(|cx| {
                if std::mem::replace(&mut polled, true) {
                    return Poll::Ready(());
                }
                KEPT.with(|k| *k.borrow_mut() = Some(cx.waker().clone()));
                Poll::Pending
            })
            .await;
            Ok(1)
        });
        assert!(!done.done());
        KEPT.with(|k| k.borrow_mut().take()).expect("kept").wake();
        assert_eq!(done.result().unwrap(), 1);
    });
    eprintln!("waker got out, woke it: {per} allocations per coroutine");
    // The block's box (1), its driver's (1), the returned Future (1): the
    // waker the clone came from is the shell's, counting its handles from
    // the start, so the runner and its parts come back from the pool as
    // for any coroutine that waited. (A coroutine once switched to a
    // second waker when its first got out, and was not reused.)
    assert!(per <= 3.0, "{per} allocations per coroutine");
}

#[test]
fn an_error_from_a_callback_still_reaches_a_reused_runner() {
    // A pooled runner's context is the new coroutine's: an error raised
    // later by a callback the coroutine scheduled ends it, as ever.
    let _serial = serial();
    let io_loop = IOLoop::new().unwrap();
    for round in 0..3 {
        let l = io_loop.clone();
        let err = io_loop
            .run_sync(
                move || {
                    // One at once first: its shell goes back to the pool.
                    let quick = gen::coroutine(async { Ok(1) });
                    assert_eq!(quick.result().unwrap(), 1);
                    gen::coroutine(async move {
                        l.add_callback(move || Err::<(), _>(Error::other(format!("late {round}"))));
                        gen::sleep(std::time::Duration::from_secs(5)).await?;
                        Ok(())
                    })
                },
                None,
            )
            .unwrap_err();
        assert_eq!(err.message(), format!("late {round}"));
    }
}

struct Plain;
impl RequestHandler for Plain {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write("Hello, world");
        Ok(())
    }
}

struct Async;
impl RequestHandler for Async {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.run_async(|x| async move {
            x.write("Hello, world");
            Ok(())
        })
    }
}

/// Allocations per request (server and client: the client allocates
/// nothing) on one keep-alive connection.
fn per_request(server: &TestServer, path: &str) -> f64 {
    let mut conn = TcpStream::connect(server.addr).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut buf = [0u8; 4096];
    allocations_per(2000, || {
        conn.write_all(request.as_bytes()).unwrap();
        let mut got = 0;
        while !buf[..got].ends_with(b"Hello, world") {
            let n = conn.read(&mut buf[got..]).unwrap();
            assert!(n > 0);
            got += n;
        }
    })
}

#[test]
fn an_async_handler_that_answers_at_once_allocates_no_more_than_a_plain_one() {
    let _serial = serial();
    let server = TestServer::start(
        || {
            Application::new()
                .route("/plain", || Plain)
                .route("/async", || Async)
        },
        |_| {},
    );
    let plain = per_request(&server, "/plain");
    let with_async = per_request(&server, "/async");
    eprintln!("allocations per request: plain {plain}, async {with_async}");
    // Its block's box is the last request's (it was 1 more, and 11
    // before that).
    assert!(
        with_async - plain <= 0.05,
        "plain {plain}, async {with_async} allocations per request"
    );
}

#[test]
fn a_callback_kept_from_a_coroutine_that_finished_at_once_reports_to_the_caller() {
    // The coroutine's context was captured by a callback that outlives it:
    // its runner is not reused, and the callback's later error goes past
    // the finished coroutine to the caller's context, as before pooling.
    let _serial = serial();
    let io_loop = IOLoop::new().unwrap();
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let s = seen.clone();
    let l = io_loop.clone();
    io_loop.add_callback(move || {
        let caller = squall::stack_context::ExceptionStackContext::new(move |err: &Error| {
            s.borrow_mut().push(err.message().to_owned());
            true
        });
        let l2 = l.clone();
        caller.run(move || {
            for i in 0..3 {
                let l3 = l2.clone();
                let done = gen::coroutine(async move {
                    l3.add_callback(move || Err::<(), _>(Error::other(format!("late {i}"))));
                    Ok(i)
                });
                assert_eq!(done.result().unwrap(), i);
            }
            // And one that waits meanwhile, on whatever shell comes: it
            // sees none of those errors.
            let waiting = gen::coroutine(async {
                gen::sleep(std::time::Duration::from_millis(20)).await?;
                Ok(7)
            });
            let l4 = l2.clone();
            waiting.add_done_callback(move |f: &Future<i32>| {
                assert_eq!(f.result().unwrap(), 7);
                l4.stop();
            });
        });
    });
    io_loop.start().unwrap();
    assert_eq!(*seen.borrow(), ["late 0", "late 1", "late 2"]);
}
