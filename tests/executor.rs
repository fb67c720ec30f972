//! `squall::executor`: jobs run on worker threads, results come home to the
//! submitting loop's thread.

mod common;

use std::cell::Cell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, ThreadId};
use std::time::Duration;

use common::drop_flag;
use crossbeam_channel::{bounded, Receiver, Sender};
use squall::executor::ThreadPoolExecutor;
use squall::gen::{self, Resume, Step, YieldFuture};
use squall::testing::AsyncTest;
use squall::{ErrorKind, Future, IOLoop};

fn long_test() -> AsyncTest {
    AsyncTest::new().timeout(Duration::from_secs(60))
}

/// A gate a job can block on until the test opens it.
fn gate() -> (Sender<()>, Receiver<()>) {
    bounded(0)
}

#[test]
fn ten_thousand_jobs_on_four_threads_all_resolve_on_the_loop_thread() {
    const JOBS: usize = 10_000;
    let pool = Arc::new(ThreadPoolExecutor::new(4).unwrap());
    let loop_thread = thread::current().id();
    let workers: Rc<std::cell::RefCell<HashSet<ThreadId>>> = Rc::default();
    let w = workers.clone();
    let p = pool.clone();
    let sum = long_test().run(move |_| {
        let all = Future::new();
        let left = Rc::new(Cell::new(JOBS));
        let sum = Rc::new(Cell::new(0u64));
        for i in 0..JOBS as u64 {
            let (all, left, sum, w) = (all.clone(), left.clone(), sum.clone(), w.clone());
            p.submit(move || (i * 2, thread::current().id()))
                .add_done_callback(move |f: &Future<(u64, ThreadId)>| {
                    assert_eq!(thread::current().id(), loop_thread, "resolved off the loop");
                    let (value, worker) = f.result().unwrap();
                    assert_eq!(value, i * 2);
                    w.borrow_mut().insert(worker);
                    sum.set(sum.get() + value);
                    left.set(left.get() - 1);
                    if left.get() == 0 {
                        all.set_result(sum.get());
                    }
                });
        }
        all
    });
    assert_eq!(sum, (0..JOBS as u64).map(|i| i * 2).sum::<u64>());
    let workers = workers.borrow();
    assert!(!workers.contains(&loop_thread));
    assert!(
        !workers.is_empty() && workers.len() <= 4,
        "{}",
        workers.len()
    );
    assert_eq!(ThreadPoolExecutor::pending_on_this_thread(), 0);
}

#[test]
fn a_panic_becomes_the_futures_error_and_the_pool_goes_on() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let io_loop = IOLoop::new().unwrap();
    let err = io_loop
        .run_sync(|| pool.submit(|| -> u32 { panic!("job exploded") }), None)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panic);
    assert!(err.message().contains("job exploded"), "{err}");
    // The one worker survived.
    assert_eq!(io_loop.run_sync(|| pool.submit(|| 7), None).unwrap(), 7);
}

#[test]
fn submit_after_shutdown_is_an_error() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    assert!(!pool.is_shutdown());
    pool.shutdown(true);
    pool.shutdown(false); // harmless again
    assert!(pool.is_shutdown());
    let io_loop = IOLoop::new().unwrap();
    let err = io_loop.run_sync(|| pool.submit(|| 1), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    assert_eq!(ThreadPoolExecutor::pending_on_this_thread(), 0);
}

#[test]
fn shutdown_without_wait_still_runs_the_queued_jobs() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (open, gate_rx) = gate();
    let results = long_test().run(move |_| {
        let first = pool.submit(move || gate_rx.recv().map(|()| 0).unwrap_or(99));
        let rest: Vec<Future<i32>> = (1..4).map(|i| pool.submit(move || i)).collect();
        pool.shutdown(false);
        assert!(pool.submit(|| 5).error().is_some());
        open.send(()).unwrap();
        let all = Future::new();
        let got = Rc::new(std::cell::RefCell::new(Vec::new()));
        let futures: Vec<Future<i32>> = std::iter::once(first).chain(rest).collect();
        let n = futures.len();
        for f in futures {
            let (all, got) = (all.clone(), got.clone());
            f.add_done_callback(move |f: &Future<i32>| {
                got.borrow_mut().push(f.result().unwrap());
                if got.borrow().len() == n {
                    all.set_result(got.borrow().clone());
                }
            });
        }
        all
    });
    assert_eq!(results, [0, 1, 2, 3]);
}

#[test]
fn shutdown_with_wait_returns_after_every_job_ran() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let io_loop = IOLoop::new().unwrap();
    io_loop.make_current();
    let futures: Vec<Future<()>> = (0..10)
        .map(|_| {
            let ran = ran.clone();
            pool.submit(move || {
                thread::sleep(Duration::from_millis(2));
                ran.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    pool.shutdown(true);
    assert_eq!(ran.load(Ordering::SeqCst), 10);
    // The results are waiting for the loop; they arrive when it runs.
    let last = futures.last().unwrap().clone();
    io_loop.run_sync(move || last, None).unwrap();
    // (run_sync took the last one's value.)
    for f in &futures[..9] {
        assert!(f.result().is_ok(), "{f:?}: {:?}", f.error());
    }
    IOLoop::clear_current();
}

fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with(prefix))
        .count()
}

#[test]
fn dropping_the_executor_joins_its_threads() {
    let pool = ThreadPoolExecutor::builder()
        .workers(3)
        .thread_name("dropjoin")
        .build()
        .unwrap();
    // Each worker names itself when it starts.
    for _ in 0..1000 {
        if threads_named("dropjoin") == 3 {
            break;
        }
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(threads_named("dropjoin"), 3);
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    let io_loop = IOLoop::new().unwrap();
    let _pending = pool.submit_to(&io_loop, move || {
        thread::sleep(Duration::from_millis(20));
        f.fetch_add(1, Ordering::SeqCst);
    });
    drop(pool);
    // The queued job ran to its end before the drop returned...
    assert_eq!(finished.load(Ordering::SeqCst), 1);
    // ...and no worker is left. A joined thread's /proc entry can outlive
    // the join by a moment (the kernel reaps it just after the exit the
    // join saw), so give it that moment.
    for _ in 0..1000 {
        if threads_named("dropjoin") == 0 {
            break;
        }
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(threads_named("dropjoin"), 0);
}

#[test]
fn a_full_bounded_queue_refuses_jobs() {
    let pool = ThreadPoolExecutor::builder()
        .workers(1)
        .queue_size(1)
        .build()
        .unwrap();
    assert_eq!(pool.queue_size(), Some(1));
    let (open, gate_rx) = gate();
    let (started_tx, started) = bounded(1);
    let io_loop = IOLoop::new().unwrap();
    io_loop.make_current();
    let busy = pool.submit(move || {
        started_tx.send(()).unwrap();
        gate_rx.recv().unwrap();
        "busy"
    });
    started.recv().unwrap(); // the worker is taken
    let queued = pool.submit(|| "queued");
    assert_eq!(pool.queued(), 1);
    let refused = pool.submit(|| "refused");
    assert_eq!(refused.error().unwrap().kind(), ErrorKind::QueueFull);
    open.send(()).unwrap();
    let q = queued.clone();
    assert_eq!(io_loop.run_sync(move || q, None).unwrap(), "queued");
    assert_eq!(busy.result().unwrap(), "busy");
    // Room again.
    assert_eq!(
        io_loop.run_sync(|| pool.submit(|| "again"), None).unwrap(),
        "again"
    );
    assert_eq!(ThreadPoolExecutor::pending_on_this_thread(), 0);
    IOLoop::clear_current();
}

#[test]
fn a_zero_queue_takes_a_job_only_when_a_worker_is_idle() {
    let pool = ThreadPoolExecutor::builder()
        .workers(1)
        .queue_size(0)
        .build()
        .unwrap();
    let io_loop = IOLoop::new().unwrap();
    io_loop.make_current();
    // Give the worker time to wait for a job.
    let mut accepted = None;
    for _ in 0..1000 {
        let f = pool.submit(|| 1);
        if f.error().is_none() {
            accepted = Some(f);
            break;
        }
        thread::sleep(Duration::from_millis(1));
    }
    let accepted = accepted.expect("an idle worker never took a job");
    assert_eq!(io_loop.run_sync(move || accepted, None).unwrap(), 1);
    IOLoop::clear_current();
}

#[test]
fn a_loop_closed_before_the_result_comes_back() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (open, gate_rx) = gate();
    let (flag, dropped) = drop_flag();
    let io_loop = IOLoop::new().unwrap();
    let future = pool.submit_to(&io_loop, move || {
        gate_rx.recv().unwrap();
        vec![0u8; 1024]
    });
    future.add_done_callback(move |_: &Future<Vec<u8>>| drop(flag));
    drop(future);
    assert_eq!(ThreadPoolExecutor::pending_on_this_thread(), 1);
    io_loop.close();
    open.send(()).unwrap();
    // The worker finds the loop closed and drops the result: no panic. Once
    // the pool is joined, the future nobody can observe is released too.
    pool.shutdown(true);
    assert!(dropped.get(), "the future of a closed loop was kept");
    assert_eq!(ThreadPoolExecutor::pending_on_this_thread(), 0);
    // Submitting to a closed loop fails at once.
    assert_eq!(
        pool_after(|p| p.submit_to(&io_loop, || 1).error().unwrap().kind()),
        ErrorKind::Closed
    );
}

fn pool_after<R>(f: impl FnOnce(&ThreadPoolExecutor) -> R) -> R {
    f(&ThreadPoolExecutor::new(1).unwrap())
}

#[test]
fn run_in_executor_with_a_pool_and_with_the_default() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let io_loop = IOLoop::new().unwrap();
    let l = io_loop.clone();
    let n = io_loop
        .run_sync(move || l.run_in_executor(Some(&pool), || 40 + 2), None)
        .unwrap();
    assert_eq!(n, 42);
    let l = io_loop.clone();
    let name = io_loop
        .run_sync(
            move || l.run_in_executor(None, || thread::current().name().map(str::to_owned)),
            None,
        )
        .unwrap();
    assert!(name.unwrap().starts_with("squall-default-executor"));
}

#[test]
fn a_generator_waits_for_blocking_work() {
    let pool = Rc::new(ThreadPoolExecutor::new(2).unwrap());
    let p = pool.clone();
    let total = long_test().run(move |_| {
        // total = 0; for i in 0..5: total += yield executor.submit(slow_square, i)
        gen::coroutine(gen::from_fn((0u64, 0u64), move |(i, total), input| {
            match input {
                Resume::Start => {}
                Resume::Value(v) => {
                    *total += v.downcast::<u64>().unwrap();
                    *i += 1;
                }
                Resume::Error(err) => return Step::Return(Err(err)),
            }
            if *i == 5 {
                return Step::Return(Ok(*total));
            }
            let x = *i;
            YieldFuture::new(p.submit(move || {
                thread::sleep(Duration::from_millis(1));
                x * x
            }))
            .into()
        }))
    });
    assert_eq!(total, 1 + 4 + 9 + 16);
}

#[test]
fn one_pool_serves_loops_on_two_threads() {
    let pool = Arc::new(ThreadPoolExecutor::new(2).unwrap());
    let other = {
        let pool = pool.clone();
        thread::spawn(move || {
            let me = thread::current().id();
            let io_loop = IOLoop::new().unwrap();
            io_loop.make_current();
            let f = pool.submit(|| 1);
            let seen = Rc::new(Cell::new(None));
            let s = seen.clone();
            f.add_done_callback(move |_: &Future<i32>| s.set(Some(thread::current().id())));
            io_loop.run_sync(move || f, None).unwrap();
            assert_eq!(seen.get(), Some(me));
        })
    };
    let io_loop = IOLoop::new().unwrap();
    io_loop.make_current();
    assert_eq!(io_loop.run_sync(|| pool.submit(|| 2), None).unwrap(), 2);
    other.join().unwrap();
    IOLoop::clear_current();
}

#[test]
fn zero_workers_is_an_invalid_argument() {
    assert_eq!(
        ThreadPoolExecutor::new(0).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}
