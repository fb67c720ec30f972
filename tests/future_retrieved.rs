//! A failed `Future` dropped with its error unread logs it once ("Future
//! exception was never retrieved", as Tornado does); one whose error was
//! read, and a stream's futures failed by its close, log nothing. Its own
//! test binary: it installs a process-wide logger (`common::logs`).

mod common;
#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;
#[path = "common/web.rs"]
mod web_kit;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::logs::{errors, never_retrieved, never_retrieved_about};
use squall::gen::{self, ResultCallback, Resume, Step, Task};
use squall::queues::Queue;
use squall::{Error, ErrorKind, Future, IOLoop, IOStream};

#[test]
fn a_failed_future_dropped_unread_logs_its_error_once() {
    assert!(never_retrieved().is_empty());
    let future = Future::<u8>::new();
    let clone = future.clone();
    future.set_error(Error::new(ErrorKind::Timeout, "the backend was too slow"));
    drop(future);
    // A clone still holds it: nothing yet.
    assert!(never_retrieved().is_empty());
    drop(clone);
    let lines = never_retrieved();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("the backend was too slow"), "{lines:?}");

    // Failed from the start, the same.
    drop(Future::<()>::failed("nobody asked".into()));
    let lines = never_retrieved();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("nobody asked"));
}

#[test]
fn a_failed_future_whose_error_was_read_logs_nothing() {
    never_retrieved();
    let read = |look: &dyn Fn(&Future<u8>)| {
        let future = Future::<u8>::new();
        future.set_error("seen".into());
        look(&future);
    };
    read(&|f| assert!(f.error().is_some()));
    read(&|f| assert!(f.result().is_err()));
    read(&|f| assert!(f.take_result().is_err()));
    read(&|f| assert!(f.result_ref().is_err()));
    // A done-callback that hands the error on (to its stack context, or to
    // the log as an unhandled error: reported once, not twice).
    read(&|f| f.add_done_callback(|f: &Future<u8>| f.error().map_or(Ok(()), Err)));
    // Awaited, by run_sync.
    let io_loop = IOLoop::new().unwrap();
    let err = io_loop
        .run_sync(|| Future::<u8>::failed("awaited".into()), None)
        .unwrap_err();
    assert_eq!(err.message(), "awaited");
    // Succeeded, or lost a race: nothing to read.
    drop(Future::ready(1));
    let won = Future::ready(1);
    assert!(!won.try_set_error("too late".into()));
    drop(won);
    assert_eq!(never_retrieved(), Vec::<String>::new());
}

/// Tornado marks the futures a stream fails at its close as read: a server
/// that ignores its write futures must not log every client that resets.
#[test]
fn ignored_writes_to_a_stream_whose_peer_went_away_log_nothing() {
    never_retrieved();
    let io_loop = IOLoop::new().unwrap();
    let (ours, theirs) = common::socketpair();
    let stream = IOStream::with_loop(ours, &io_loop).unwrap();
    // Queued: more than the socket takes while nobody reads.
    for _ in 0..64 {
        drop(stream.write(vec![b'x'; 64 * 1024]));
    }
    drop(theirs);
    let s = stream.clone();
    let l = io_loop.clone();
    io_loop.add_callback(move || {
        // Written after the peer left, and after the stream closed.
        drop(s.write(b"more".to_vec()));
        let l2 = l.clone();
        let s2 = s.clone();
        l.call_later(Duration::from_millis(50), move || {
            assert!(s2.closed());
            drop(s2.write(b"after the close".to_vec()));
            l2.stop();
        });
    });
    io_loop.start().unwrap();
    assert!(stream.closed());
    drop(stream);
    io_loop.close();
    assert_eq!(never_retrieved(), Vec::<String>::new());
}

/// A background worker that waits forever, the way Tornado apps spawn them
/// (`spawn_callback(worker)`): on a queue nobody feeds (awaited, after a
/// first timer), and on timers. `?` ends it with the error.
async fn queue_worker(queue: Queue<u8>) -> Result<(), Error> {
    gen::sleep(Duration::from_millis(1)).await?;
    loop {
        queue.get().await?;
    }
}

async fn timer_worker() -> Result<(), Error> {
    loop {
        gen::sleep(Duration::from_secs(3600)).await?;
    }
}

/// The generator form of a worker waiting forever on a timer.
fn timer_generator() -> Future<()> {
    gen::coroutine(gen::from_fn((), |_, input| match input {
        Resume::Start | Resume::Value(_) => gen::sleep(Duration::from_secs(3600)).into(),
        Resume::Error(err) => Step::Return(Err(err)),
    }))
}

/// A generator waiting on a callback that the loop holds (a timeout far
/// away): the loop going away drops it, uncalled.
fn callback_generator() -> Future<()> {
    gen::coroutine(gen::from_fn((), |_, input| match input {
        Resume::Start => far_timeout().into(),
        Resume::Value(_) => Step::Return(Ok(())),
        Resume::Error(err) => Step::Return(Err(err)),
    }))
}

/// The same, `async`.
async fn callback_worker() -> Result<(), Error> {
    far_timeout().await?;
    Ok(())
}

/// A callback the loop holds, in a timeout far away. Unlike a [`gen::sleep`]
/// it holds no handle on the loop: a loop dropped with only these pending
/// is not kept alive by them, and goes.
fn far_timeout() -> Task {
    Task::new(|cb: ResultCallback| {
        IOLoop::current().call_later(Duration::from_secs(3600), move || cb.call(()));
    })
}

/// Runs `io_loop` until its workers wait: spawned fire-and-forget, and
/// started with their futures dropped, or kept in the returned `Vec`. With
/// `sleeps`, workers on [`gen::sleep`] too.
fn start_workers(io_loop: &IOLoop, sleeps: bool) -> Vec<Future<()>> {
    let queue = Queue::<u8>::new(0);
    let kept = Rc::new(RefCell::new(Vec::new()));
    let k = kept.clone();
    let start = move || {
        let io_loop = IOLoop::current();
        io_loop.spawn_callback(callback_generator);
        io_loop.spawn_callback(|| gen::coroutine(callback_worker()));
        drop(callback_generator());
        drop(gen::coroutine(callback_worker()));
        k.borrow_mut().push(callback_generator());
        k.borrow_mut().push(gen::coroutine(callback_worker()));
        if sleeps {
            let q = queue.clone();
            io_loop.spawn_callback(move || gen::coroutine(queue_worker(q)));
            io_loop.spawn_callback(|| gen::coroutine(timer_worker()));
            io_loop.spawn_callback(timer_generator);
            drop(gen::coroutine(timer_worker()));
            drop(timer_generator());
            k.borrow_mut().push(gen::coroutine(timer_worker()));
            k.borrow_mut().push(timer_generator());
        }
        gen::coroutine(async {
            gen::sleep(Duration::from_millis(20)).await?;
            Ok(())
        })
    };
    io_loop.run_sync(start, None).unwrap();
    let kept = kept.take();
    assert!(kept.iter().all(|f| !f.done()));
    kept
}

/// The coroutines still waiting when a loop goes away are failed with
/// `CallbackDropped` (they must not wait forever); that is teardown, not an
/// error anyone could act on: no error line (asyncio, the same case, warns
/// at most), whether the coroutine was spawned, or its future dropped.
#[test]
fn waiting_coroutines_at_a_loop_drop_or_close_log_nothing() {
    errors();
    let failed_by_teardown = |kept: &[Future<()>]| {
        for future in kept {
            assert_eq!(future.error().unwrap().kind(), ErrorKind::CallbackDropped);
        }
    };
    // Closed, its workers' futures dropped after.
    let io_loop = IOLoop::new().unwrap();
    let kept = start_workers(&io_loop, true);
    io_loop.close();
    failed_by_teardown(&kept);
    drop(kept);
    drop(io_loop);
    assert_eq!(errors(), Vec::<String>::new());

    // Closed while it runs, from a callback.
    let io_loop = IOLoop::new().unwrap();
    let kept = start_workers(&io_loop, true);
    let l = io_loop.clone();
    io_loop.add_callback(move || l.close());
    io_loop.start().unwrap();
    failed_by_teardown(&kept);
    drop((kept, io_loop));
    assert_eq!(errors(), Vec::<String>::new());

    // Dropped, never closed: made current, then no longer.
    let io_loop = IOLoop::new().unwrap();
    io_loop.make_current();
    let kept = start_workers(&io_loop, false);
    IOLoop::clear_current();
    drop(io_loop);
    failed_by_teardown(&kept);
    drop(kept);
    assert_eq!(errors(), Vec::<String>::new());

    // Dropped while another loop is current, which goes on.
    let other = IOLoop::new().unwrap();
    let io_loop = IOLoop::new().unwrap();
    let kept = start_workers(&io_loop, false);
    other.make_current();
    drop(io_loop);
    failed_by_teardown(&kept);
    drop(kept);
    other.run_sync(|| Future::ready(()), None).unwrap();
    IOLoop::clear_current();
    drop(other);
    assert_eq!(errors(), Vec::<String>::new());
}

/// Real failures still log, coroutines included: one that returns its own
/// error while its loop runs, and one whose callback a user dropped while
/// the loop runs normally (`CallbackDropped`, but not teardown). Spawned,
/// the loop reports them; their futures dropped unread, "never retrieved".
#[test]
fn a_coroutine_failing_while_its_loop_runs_still_logs_once() {
    errors();
    async fn gives_up() -> Result<(), Error> {
        gen::sleep(Duration::from_millis(1)).await?;
        Err(Error::new(ErrorKind::Timeout, "the worker gave up"))
    }
    fn loses_its_callback() -> Future<()> {
        gen::coroutine(gen::from_fn((), |_, input| match input {
            // The callback is dropped at once, never called.
            Resume::Start => Task::new(drop::<ResultCallback>).into(),
            Resume::Value(_) => Step::Return(Ok(())),
            Resume::Error(err) => Step::Return(Err(err)),
        }))
    }
    let io_loop = IOLoop::new().unwrap();
    let start = || {
        let io_loop = IOLoop::current();
        io_loop.spawn_callback(|| gen::coroutine(gives_up()));
        io_loop.spawn_callback(loses_its_callback);
        drop(gen::coroutine(gives_up()));
        drop(loses_its_callback());
        gen::coroutine(async {
            gen::sleep(Duration::from_millis(20)).await?;
            Ok(())
        })
    };
    io_loop.run_sync(start, None).unwrap();
    let mut lines = errors();
    lines.sort();
    assert_eq!(lines.len(), 4, "{lines:?}");
    let dropped = "callback dropped: the callback for key";
    assert!(lines[0].starts_with("Future exception was never retrieved: callback dropped"));
    assert!(lines[1].starts_with("Future exception was never retrieved: timeout: the worker"));
    assert!(lines[2].starts_with("uncaught error") && lines[2].contains(dropped));
    assert!(lines[3].starts_with("uncaught error") && lines[3].contains("the worker gave up"));
    io_loop.close();
    assert_eq!(errors(), Vec::<String>::new());
}

/// Streams a chunk every 10 ms, ignoring each flush's future (as the
/// `#[must_use]` note says to, with `drop`), 30 times.
fn stream_and_ignore_flushes(x: &squall::web::Exchange) -> Result<(), Error> {
    fn again(x: squall::web::Exchange, left: u32) {
        if left == 0 {
            return;
        }
        IOLoop::current().call_later(Duration::from_millis(10), move || {
            x.write("chunk\n");
            drop(x.flush());
            again(x, left - 1);
        });
    }
    x.set_async();
    x.write("first\n");
    drop(x.flush());
    again(x.clone(), 30);
    Ok(())
}

#[test]
fn ignored_flushes_to_a_client_that_left_log_nothing() {
    use std::io::{Read, Write};
    never_retrieved(); // (installs the logger)
    let server = http_kit::TestServer::start(
        || squall::web::Application::new().route("/", || web_kit::F(stream_and_ignore_flushes)),
        |_| {},
    );
    let mut client = std::net::TcpStream::connect(server.addr).unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut first = [0; 64];
    assert!(client.read(&mut first).unwrap() > 0);
    drop(client);
    // The handler goes on flushing into the closed connection.
    std::thread::sleep(Duration::from_millis(400));
    drop(server);
    assert_eq!(never_retrieved_about("flush()"), Vec::<String>::new());
}
