//! `squall::queues`, ported from Tornado's `queues_test.py`, on a manual
//! clock so no test sleeps. Two deliberate differences: a waiting getter is
//! served synchronously by `put_nowait` (Tornado before 5.0), and timed-out
//! waiters leave the line when their timeout fires, not at the next put/get.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use common::coro::{action, assert_only_test_deadline, at_times, manual};
use common::{ms, Log};
use squall::gen::{self, Resume, Step, YieldFuture};
use squall::queues::{LifoQueue, PriorityQueue, Queue, QueueFull, Store};
use squall::{Error, ErrorKind, Future, IOLoop};

fn kind<T: 'static>(f: &Future<T>) -> Option<ErrorKind> {
    f.error().map(|e| e.kind())
}

// ----- basics --------------------------------------------------------------

#[test]
fn debug_shows_getters_putters_tasks() {
    let q: Queue<u8> = Queue::new(1);
    let _g = q.get();
    let repr = format!("{q:?}");
    assert!(
        repr.starts_with("Queue") && repr.contains("maxsize: 1"),
        "{repr}"
    );
    assert!(
        repr.contains("getters: 1") && !repr.contains("putters"),
        "{repr}"
    );
    assert!(!repr.contains("tasks"), "{repr}");
    q.put_nowait(0).unwrap(); // to the getter
    q.put_nowait(0).unwrap();
    let _p = q.put(0); // full: waits
    let repr = format!("{q:?}");
    assert!(
        !repr.contains("getters") && repr.contains("putters: 1"),
        "{repr}"
    );
    assert!(repr.contains("tasks: 2"), "{repr}");
}

#[test]
fn fifo_order() {
    let q = Queue::new(0);
    for i in [1, 3, 2] {
        q.put_nowait(i).unwrap();
    }
    let items: Vec<i32> = (0..3).map(|_| q.get_nowait().unwrap()).collect();
    assert_eq!(items, [1, 3, 2]);
}

#[test]
fn maxsize() {
    let q = Queue::new(2);
    assert!(q.empty() && !q.full());
    assert_eq!(q.maxsize(), 2);
    assert!(q.put(0).done());
    assert!(q.put(1).done());
    assert!(!q.empty() && q.full());
    let put2 = q.put(2);
    assert!(!put2.done());
    assert_eq!(q.get().take_result().unwrap(), 0); // makes room
    assert!(put2.result().is_ok());
    assert!(!q.empty() && q.full());
}

#[test]
fn unbounded_is_never_full() {
    let q = Queue::new(0);
    for i in 0..10_000 {
        q.put_nowait(i).unwrap();
    }
    assert!(!q.full());
    assert_eq!(q.qsize(), 10_000);
}

// ----- get -----------------------------------------------------------------

#[test]
fn get_nowait_and_get() {
    let q = Queue::new(0);
    q.put_nowait(0).unwrap();
    assert_eq!(q.get().take_result().unwrap(), 0);
    q.put_nowait(1).unwrap();
    assert_eq!(q.get_nowait().unwrap(), 1);
    assert_eq!(q.get_nowait().unwrap_err().kind(), ErrorKind::QueueEmpty);
}

#[test]
fn get_with_putters() {
    let q = Queue::new(1);
    q.put_nowait(0).unwrap();
    let put = q.put(1);
    assert!(!put.done());
    assert_eq!(q.get().take_result().unwrap(), 0);
    assert!(put.result().is_ok());
    assert_eq!(q.get_nowait().unwrap(), 1);
}

#[test]
fn blocking_get_wait() {
    manual().run(|io_loop| {
        let q = Queue::new(0);
        drop(q.put(0));
        let (q1, q2) = (q.clone(), q.clone());
        io_loop.call_later(ms(10), move || q1.put_nowait(1).unwrap());
        io_loop.call_later(ms(20), move || q2.put_nowait(2).unwrap());
        let first = q.get_timeout(Duration::from_secs(1));
        assert_eq!(first.take_result().unwrap(), 0);
        let second = q.get_timeout(Duration::from_secs(1));
        assert!(!second.done());
        let l = io_loop.clone();
        at_times(
            io_loop,
            vec![
                (
                    10,
                    action(move || assert_eq!(second.take_result().unwrap(), 1)),
                ),
                (
                    20,
                    action(move || {
                        assert_eq!(q.get_nowait().unwrap(), 2);
                        assert_only_test_deadline(&l, "queue");
                    }),
                ),
            ],
        )
    });
}

#[test]
fn get_timeout_takes_no_item() {
    manual().run(|io_loop| {
        let q = Queue::new(0);
        let timed = q.get_timeout(ms(10));
        let get = q.get();
        at_times(
            io_loop,
            vec![(
                20,
                action(move || {
                    assert_eq!(kind(&timed), Some(ErrorKind::Timeout));
                    q.put_nowait(0).unwrap();
                    assert_eq!(get.take_result().unwrap(), 0);
                }),
            )],
        )
    });
}

#[test]
fn get_zero_timeout_fails_at_once() {
    manual().run(|io_loop| {
        let q: Queue<u8> = Queue::new(0);
        assert_eq!(
            kind(&q.get_timeout(Duration::ZERO)),
            Some(ErrorKind::Timeout)
        );
        assert_eq!(
            kind(&q.get_timeout(io_loop.time())),
            Some(ErrorKind::Timeout)
        );
        assert_eq!(q.getters(), 0);
        q.put_nowait(3).unwrap();
        assert_eq!(q.get_timeout(Duration::ZERO).take_result().unwrap(), 3);
        Future::ready(())
    });
}

#[test]
fn get_timeout_preempted() {
    manual().run(|io_loop| {
        let q = Queue::new(0);
        let get = q.get_timeout(ms(10));
        drop(q.put(0));
        let l = io_loop.clone();
        at_times(
            io_loop,
            vec![(
                20,
                action(move || {
                    assert_eq!(get.take_result().unwrap(), 0);
                    assert_only_test_deadline(&l, "queue");
                }),
            )],
        )
    });
}

#[test]
fn timed_out_putters_leave_the_line_and_their_items_are_never_put() {
    manual().run(|io_loop| {
        let q = Queue::new(1);
        // The first put succeeds, the rest wait.
        let putters: Vec<Future<()>> = (0..10).map(|i| q.put_timeout(i, ms(10))).collect();
        let put = q.put(10);
        assert_eq!(q.putters(), 10);
        let l = io_loop.clone();
        at_times(
            io_loop,
            vec![(
                20,
                action(move || {
                    assert_eq!(q.putters(), 1);
                    assert!(!put.done()); // the last one is still waiting
                    drop(q.put(11));
                    assert_eq!(q.putters(), 2);
                    assert_eq!(q.get().take_result().unwrap(), 0);
                    assert_eq!(q.putters(), 1);
                    assert!(put.result().is_ok());
                    for p in &putters[1..] {
                        assert_eq!(kind(p), Some(ErrorKind::Timeout));
                    }
                    assert_eq!(q.get_nowait().unwrap(), 10);
                    assert_eq!(q.get_nowait().unwrap(), 11);
                    assert!(q.empty());
                    assert_only_test_deadline(&l, "queue");
                }),
            )],
        )
    });
}

#[test]
fn timed_out_getters_leave_the_line_and_take_nothing() {
    manual().run(|io_loop| {
        let q = Queue::new(0);
        let getters: Vec<Future<u32>> = (0..10).map(|_| q.get_timeout(ms(10))).collect();
        let get = q.get();
        assert_eq!(q.getters(), 11);
        let l = io_loop.clone();
        at_times(
            io_loop,
            vec![(
                20,
                action(move || {
                    assert_eq!(q.getters(), 1);
                    assert!(!get.done());
                    let another = q.get();
                    assert_eq!(q.getters(), 2);
                    q.put_nowait(0).unwrap();
                    assert_eq!(get.take_result().unwrap(), 0);
                    q.put_nowait(1).unwrap();
                    assert_eq!(another.take_result().unwrap(), 1);
                    for g in &getters {
                        assert_eq!(kind(g), Some(ErrorKind::Timeout));
                    }
                    assert_only_test_deadline(&l, "queue");
                }),
            )],
        )
    });
}

#[test]
fn a_dropped_getter_takes_no_item() {
    let q = Queue::new(0);
    drop(q.get());
    let kept = q.get();
    q.put_nowait(7).unwrap();
    assert_eq!(kept.take_result().unwrap(), 7);
    drop(q.get());
    q.put_nowait(8).unwrap();
    assert_eq!(q.get_nowait().unwrap(), 8);
}

// ----- put -----------------------------------------------------------------

#[test]
fn put_nowait_full_gives_the_item_back() {
    let q = Queue::new(1);
    drop(q.put(0));
    let strings = Queue::new(1);
    strings.put_nowait("a".to_string()).unwrap();
    let full: QueueFull<String> = strings.put_nowait("b".to_string()).unwrap_err();
    assert_eq!(full.into_inner(), "b");
    let err = q.put_nowait(1).unwrap_err();
    assert_eq!(err.into_inner(), 1);
    let as_error: Result<(), Error> = q.put_nowait(2).map_err(Error::from);
    assert_eq!(as_error.unwrap_err().kind(), ErrorKind::QueueFull);
}

#[test]
fn put_with_getters() {
    let q = Queue::new(0);
    let (get0, get1) = (q.get(), q.get());
    assert!(q.put(0).done());
    assert_eq!(get0.take_result().unwrap(), 0);
    assert!(q.put(1).done());
    assert_eq!(get1.take_result().unwrap(), 1);
}

#[test]
fn put_nowait_serves_a_waiting_getter_at_once() {
    let q = Queue::new(0);
    let (get0, get1) = (q.get(), q.get());
    q.put_nowait(0).unwrap();
    assert_eq!(get0.take_result().unwrap(), 0);
    assert!(!get1.done());
    q.put_nowait(1).unwrap();
    assert_eq!(get1.take_result().unwrap(), 1);
    assert!(q.empty());
}

#[test]
fn blocking_put_wait() {
    manual().run(|io_loop| {
        let q = Queue::new(1);
        q.put_nowait(0).unwrap();
        let (q1, q2) = (q.clone(), q.clone());
        io_loop.call_later(ms(10), move || drop(q1.get()));
        io_loop.call_later(ms(20), move || drop(q2.get()));
        let futures = [q.put(0), q.put(1)];
        assert!(!futures.iter().any(Future::done));
        let f = futures.clone();
        at_times(
            io_loop,
            vec![
                (10, action(move || assert!(f[0].done() && !f[1].done()))),
                (
                    20,
                    action(move || assert!(futures.iter().all(Future::done))),
                ),
            ],
        )
    });
}

#[test]
fn put_timeout_drops_the_item() {
    manual().run(|io_loop| {
        let q = Queue::new(1);
        q.put_nowait(0).unwrap();
        let timed = q.put_timeout(1, ms(10));
        let put = q.put(2);
        let l = io_loop.clone();
        at_times(
            io_loop,
            vec![(
                20,
                action(move || {
                    assert_eq!(kind(&timed), Some(ErrorKind::Timeout));
                    assert_eq!(q.get_nowait().unwrap(), 0);
                    // 1 was never put.
                    assert_eq!(q.get().take_result().unwrap(), 2);
                    assert!(put.result().is_ok());
                    assert_only_test_deadline(&l, "queue");
                }),
            )],
        )
    });
}

#[test]
fn put_timeout_preempted() {
    manual().run(|io_loop| {
        let q = Queue::new(1);
        q.put_nowait(0).unwrap();
        let put = q.put_timeout(1, ms(10));
        assert_eq!(q.get_nowait().unwrap(), 0);
        at_times(
            io_loop,
            vec![(
                20,
                action(move || {
                    assert!(put.result().is_ok());
                    assert_eq!(q.get_nowait().unwrap(), 1);
                }),
            )],
        )
    });
}

#[test]
fn put_zero_timeout_on_a_full_queue_fails_at_once() {
    manual().run(|_| {
        let q = Queue::new(1);
        assert!(q.put_timeout(0, Duration::ZERO).done());
        assert_eq!(
            kind(&q.put_timeout(1, Duration::ZERO)),
            Some(ErrorKind::Timeout)
        );
        assert_eq!(q.putters(), 0);
        assert_eq!(q.qsize(), 1);
        Future::ready(())
    });
}

// ----- task_done / join, for every order -----------------------------------

/// A worker generator: get, add, task_done, sleep a little, forever (a
/// sleep resumes it with `()`, and it gets again).
fn summing_worker<S: Store<u64>>(
    q: Queue<u64, S>,
    sum: Rc<Cell<u64>>,
    pause: Duration,
) -> Future<()> {
    gen::coroutine(gen::from_fn((), move |_, input| match input {
        Resume::Start => YieldFuture::new(q.get()).into(),
        Resume::Value(v) if v.is::<()>() => YieldFuture::new(q.get()).into(),
        Resume::Value(v) => {
            sum.set(sum.get() + v.downcast::<u64>().unwrap());
            q.task_done().unwrap();
            gen::sleep(pause).into()
        }
        Resume::Error(err) => Step::Return(Err(err)),
    }))
}

macro_rules! join_tests {
    ($name:ident, $new:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn task_done_underflow() {
                let q = $new(0);
                assert_eq!(q.task_done().unwrap_err().kind(), ErrorKind::InvalidState);
            }

            #[test]
            fn task_done_and_join_with_two_workers() {
                let sum = Rc::new(Cell::new(0));
                let s = sum.clone();
                manual().run(move |_| {
                    let q = $new(0);
                    for i in 0..100u64 {
                        q.put_nowait(i).unwrap();
                    }
                    // Keep the workers' futures: they never finish.
                    let workers = Rc::new(vec![
                        summing_worker(q.clone().into_queue(), s.clone(), ms(3)),
                        summing_worker(q.clone().into_queue(), s.clone(), ms(7)),
                    ]);
                    let join = q.join();
                    join.add_done_callback(move |_: &Future<()>| drop(workers));
                    join
                });
                assert_eq!(sum.get(), (0..100).sum::<u64>());
            }

            #[test]
            fn task_done_not_get_unblocks_join() {
                let q = $new(0);
                q.put_nowait(0).unwrap();
                let join = q.join();
                assert!(!join.done());
                assert_eq!(q.get().take_result().unwrap(), 0);
                assert!(!join.done());
                q.task_done().unwrap();
                assert!(join.done());
            }

            #[test]
            fn join_on_an_empty_queue_is_done() {
                let q = $new(0);
                assert!(q.join().done());
                assert!(q.join().done());
            }

            #[test]
            fn join_timeout() {
                let err = manual().try_run(|_| {
                    let q = $new(0);
                    drop(q.put(0));
                    q.join_timeout(ms(10))
                });
                assert_eq!(err.0.unwrap_err().kind(), ErrorKind::Timeout);
            }
        }
    };
}

join_tests!(fifo_join, Queue::<u64>::new);

trait IntoQueue: Sized {
    fn into_queue(self) -> Self {
        self
    }
}
impl IntoQueue for Queue<u64> {}
join_tests!(priority_join, PriorityQueue::<u64>::new);
join_tests!(lifo_join, LifoQueue::<u64>::new);

#[test]
fn priority_order() {
    let q = PriorityQueue::new(2);
    q.put_nowait((1, "a")).unwrap();
    q.put_nowait((0, "b")).unwrap();
    assert!(q.full());
    drop(q.put((3, "c")));
    drop(q.put((2, "d")));
    assert_eq!(q.get_nowait().unwrap(), (0, "b"));
    assert_eq!(q.get().take_result().unwrap(), (1, "a"));
    assert_eq!(q.get_nowait().unwrap(), (2, "d"));
    assert_eq!(q.get().take_result().unwrap(), (3, "c"));
    assert!(q.empty());
}

#[test]
fn lifo_order() {
    let q = LifoQueue::new(2);
    q.put_nowait(1).unwrap();
    q.put_nowait(0).unwrap();
    assert!(q.full());
    drop(q.put(3));
    drop(q.put(2));
    assert_eq!(q.get_nowait().unwrap(), 3);
    assert_eq!(q.get().take_result().unwrap(), 2);
    assert_eq!(q.get_nowait().unwrap(), 0);
    assert_eq!(q.get().take_result().unwrap(), 1);
    assert!(q.empty());
}

// ----- producer / consumer in generators -----------------------------------

#[test]
fn producer_consumer() {
    let history = Log::new();
    let h = history.clone();
    manual().run(move |_| {
        let q = Queue::new(3);
        // consumer: while True: history.append((yield q.get())); q.task_done()
        let qc = q.clone();
        let consumer = gen::coroutine(gen::from_fn((), move |_, input| match input {
            Resume::Start => YieldFuture::new(qc.get()).into(),
            Resume::Value(v) => {
                h.push(v.downcast::<u32>().unwrap());
                qc.task_done().unwrap();
                YieldFuture::new(qc.get()).into()
            }
            Resume::Error(err) => Step::<()>::Return(Err(err)),
        }));
        // producer: for item in range(10): yield q.put(item)
        let qp = q.clone();
        let producer = gen::coroutine(gen::from_fn(0u32, move |next, input| {
            if let Resume::Error(err) = input {
                return Step::Return(Err(err));
            }
            if *next == 10 {
                return Step::Return(Ok(()));
            }
            *next += 1;
            YieldFuture::new(qp.put(*next - 1)).into()
        }));
        let done = Future::new();
        let d = done.clone();
        let consumer = RefCell::new(Some(consumer));
        producer.add_done_callback(move |p: &Future<()>| {
            if let Some(err) = p.error() {
                d.try_set_error(err);
                return;
            }
            q.join().add_done_callback(move |_: &Future<()>| {
                drop(consumer.take());
                d.try_set_result(());
            });
        });
        done
    });
    assert_eq!(history.get(), (0..10).collect::<Vec<u32>>());
}

#[test]
fn bounded_crawl_style_workers_from_callbacks() {
    // Tornado's web-spider shape with plain callbacks: N workers take URLs
    // from a queue, each "fetch" takes a few ms, new URLs are put back,
    // join() says when the crawl is over.
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    manual().run(move |io_loop| {
        let q: Queue<u32> = Queue::new(0);
        q.put_nowait(1).unwrap();
        let busy = Rc::new(Cell::new(0usize));
        let max_busy = Rc::new(Cell::new(0usize));
        fn work(
            q: Queue<u32>,
            l: IOLoop,
            seen: Rc<RefCell<Vec<u32>>>,
            busy: Rc<Cell<usize>>,
            max_busy: Rc<Cell<usize>>,
        ) {
            let q2 = q.clone();
            q.get().add_done_callback(move |f: &Future<u32>| {
                let page = f.take_result().unwrap();
                busy.set(busy.get() + 1);
                max_busy.set(max_busy.get().max(busy.get()));
                let l2 = l.clone();
                l.call_later(ms(5), move || {
                    seen.borrow_mut().push(page);
                    for child in [page * 2, page * 2 + 1] {
                        if child < 32 {
                            q2.put_nowait(child).unwrap();
                        }
                    }
                    busy.set(busy.get() - 1);
                    q2.task_done().unwrap();
                    work(q2, l2, seen, busy, max_busy);
                });
            });
        }
        for _ in 0..3 {
            work(
                q.clone(),
                io_loop.clone(),
                s.clone(),
                busy.clone(),
                max_busy.clone(),
            );
        }
        let join = q.join();
        let m = max_busy.clone();
        join.add_done_callback(move |_: &Future<()>| assert_eq!(m.get(), 3));
        join
    });
    let mut pages = seen.borrow().clone();
    pages.sort();
    assert_eq!(pages, (1..32).collect::<Vec<u32>>());
}
