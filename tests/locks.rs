//! `squall::locks`, ported from Tornado's `locks_test.py`, on a manual clock
//! so no test sleeps. Waiters are woken synchronously here (Tornado before
//! 5.0), so "loop briefly" steps are not needed.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::coro::{action, assert_only_test_deadline, at_times, manual};
use common::{ms, Log};
use squall::gen::{self, Resume, Step, YieldFuture};
use squall::locks::{BoundedSemaphore, Condition, Event, Guard, Lock, Semaphore};
use squall::{ErrorKind, Future};

/// Records `key`, or "timeout" if the wait resolved to false.
fn record_done(history: &Log<String>, future: &Future<bool>, key: impl ToString) {
    let (h, key) = (history.clone(), key.to_string());
    future.add_done_callback(move |f: &Future<bool>| {
        h.push(if f.result().unwrap() {
            key
        } else {
            "timeout".into()
        })
    });
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ----- Condition -----------------------------------------------------------

#[test]
fn condition_debug_shows_waiters() {
    let c = Condition::new();
    let repr = format!("{c:?}");
    assert!(
        repr.contains("Condition") && !repr.contains("waiters"),
        "{repr}"
    );
    let _w = c.wait();
    assert!(format!("{c:?}").contains("waiters: 1"));
}

#[test]
fn condition_notify_from_a_timeout() {
    let notified = manual().run(|io_loop| {
        let c = Condition::new();
        let c2 = c.clone();
        io_loop.call_later(ms(10), move || c2.notify_one());
        c.wait()
    });
    assert!(notified);
}

#[test]
fn condition_notify_1_wakes_in_order() {
    let c = Condition::new();
    let history = Log::new();
    record_done(&history, &c.wait(), "wait1");
    record_done(&history, &c.wait(), "wait2");
    c.notify(1);
    history.push("notify1".into());
    c.notify(1);
    history.push("notify2".into());
    assert_eq!(
        history.get(),
        strs(&["wait1", "notify1", "wait2", "notify2"])
    );
}

#[test]
fn condition_notify_n() {
    let c = Condition::new();
    let history = Log::new();
    for i in 0..6 {
        record_done(&history, &c.wait(), i);
    }
    c.notify(3);
    assert_eq!(history.get(), strs(&["0", "1", "2"]));
    c.notify(1);
    assert_eq!(history.get(), strs(&["0", "1", "2", "3"]));
    c.notify(2);
    assert_eq!(history.get(), strs(&["0", "1", "2", "3", "4", "5"]));
    assert_eq!(c.waiters(), 0);
}

#[test]
fn condition_notify_all() {
    let c = Condition::new();
    let history = Log::new();
    for i in 0..4 {
        record_done(&history, &c.wait(), i);
    }
    c.notify_all();
    history.push("notify_all".into());
    assert_eq!(history.get(), strs(&["0", "1", "2", "3", "notify_all"]));
}

#[test]
fn condition_wait_timeout_resolves_false() {
    manual().run(|io_loop| {
        let c = Condition::new();
        let wait = c.wait_timeout(ms(10));
        let (c2, w, l) = (c.clone(), wait.clone(), io_loop.clone());
        at_times(
            io_loop,
            vec![
                (20, action(move || c2.notify_one())), // too late
                (
                    30,
                    action(move || {
                        assert!(!w.result().unwrap());
                        assert_eq!(c.waiters(), 0);
                        assert_only_test_deadline(&l, "lock");
                    }),
                ),
            ],
        )
    });
}

#[test]
fn condition_wait_timeout_preempted() {
    manual().run(|io_loop| {
        let c = Condition::new();
        let c2 = c.clone();
        io_loop.call_later(ms(10), move || c2.notify_one());
        let wait = c.wait_timeout(ms(20));
        let l = io_loop.clone();
        at_times(
            io_loop,
            vec![(
                30,
                action(move || {
                    assert!(wait.result().unwrap());
                    // The notify removed the timeout with the waiter.
                    assert_only_test_deadline(&l, "lock");
                }),
            )],
        )
    });
}

#[test]
fn condition_timed_out_waiter_does_not_count_against_notify_n() {
    manual().run(|io_loop| {
        let c = Condition::new();
        let history = Log::new();
        record_done(&history, &c.wait(), 0);
        record_done(&history, &c.wait_timeout(ms(10)), 1);
        record_done(&history, &c.wait(), 2);
        record_done(&history, &c.wait(), 3);
        let (c1, c2, h1, h2, h3) = (
            c.clone(),
            c.clone(),
            history.clone(),
            history.clone(),
            history.clone(),
        );
        at_times(
            io_loop,
            vec![
                (
                    20,
                    action(move || {
                        assert_eq!(h1.get(), strs(&["timeout"]));
                        c1.notify(2);
                        assert_eq!(h1.get(), strs(&["timeout", "0", "2"]));
                    }),
                ),
                (
                    30,
                    action(move || {
                        assert_eq!(h2.get(), strs(&["timeout", "0", "2"]));
                        c2.notify_one();
                        assert_eq!(h3.get(), strs(&["timeout", "0", "2", "3"]));
                    }),
                ),
            ],
        )
    });
}

#[test]
fn condition_notify_all_with_timeout() {
    manual().run(|io_loop| {
        let c = Condition::new();
        let history = Log::new();
        record_done(&history, &c.wait(), 0);
        record_done(&history, &c.wait_timeout(ms(10)), 1);
        record_done(&history, &c.wait(), 2);
        at_times(
            io_loop,
            vec![(
                20,
                action(move || {
                    assert_eq!(history.get(), strs(&["timeout"]));
                    c.notify_all();
                    assert_eq!(history.get(), strs(&["timeout", "0", "2"]));
                }),
            )],
        )
    });
}

#[test]
fn condition_nested_notify_loses_nothing() {
    let c = Condition::new();
    let futures: Vec<Future<bool>> = (0..3).map(|_| c.wait()).collect();
    let c2 = c.clone();
    futures[1].add_done_callback(move |_: &Future<bool>| c2.notify_one());
    c.notify(2);
    assert!(futures.iter().all(Future::done));
}

#[test]
fn condition_timed_out_waiters_leave_the_line() {
    manual().run(|io_loop| {
        let c = Condition::new();
        let timed: Vec<Future<bool>> = (0..101).map(|_| c.wait_timeout(ms(10))).collect();
        let last = c.wait();
        assert_eq!(c.waiters(), 102);
        let l = io_loop.clone();
        at_times(
            io_loop,
            vec![(
                20,
                action(move || {
                    assert_eq!(c.waiters(), 1);
                    assert!(timed.iter().all(|f| !f.result().unwrap()));
                    assert!(!last.done());
                    c.notify_one();
                    assert!(last.result().unwrap());
                    assert_only_test_deadline(&l, "lock");
                }),
            )],
        )
    });
}

#[test]
fn condition_zero_timeout_is_immediate() {
    manual().run(|_| {
        let c = Condition::new();
        let wait = c.wait_timeout(Duration::ZERO);
        assert!(!wait.result().unwrap());
        assert_eq!(c.waiters(), 0);
        Future::ready(())
    });
}

#[test]
fn condition_skips_a_dropped_waiter() {
    let c = Condition::new();
    drop(c.wait());
    let kept = c.wait();
    c.notify(1);
    assert!(
        kept.result().unwrap(),
        "the dropped wait took the notification"
    );
}

// ----- Event ---------------------------------------------------------------

#[test]
fn event_debug_says_set_or_clear() {
    let e = Event::new();
    assert!(format!("{e:?}").contains("clear"));
    e.set();
    let repr = format!("{e:?}");
    assert!(repr.contains("set") && !repr.contains("clear"), "{repr}");
}

#[test]
fn event_wait_set_clear() {
    let e = Event::new();
    let f0 = e.wait();
    e.set();
    let f1 = e.wait();
    e.clear();
    let f2 = e.wait();
    assert!(f0.done() && f1.done());
    assert!(!f2.done());
}

#[test]
fn event_timeout_then_normal_operation() {
    manual().run(|io_loop| {
        let e = Event::new();
        let timed = e.wait_timeout(ms(10));
        let ok: Rc<RefCell<Option<Future<()>>>> = Rc::default();
        let (e1, e2, e3, l) = (e.clone(), e.clone(), e.clone(), io_loop.clone());
        let (ok1, ok2) = (ok.clone(), ok.clone());
        at_times(
            io_loop,
            vec![
                (
                    20,
                    action(move || {
                        assert_eq!(timed.error().unwrap().kind(), ErrorKind::Timeout);
                        assert_eq!(e1.waiters(), 0);
                        *ok1.borrow_mut() = Some(e1.wait_timeout(Duration::from_secs(1)));
                    }),
                ),
                (30, action(move || e2.set())),
                (
                    35,
                    action(move || {
                        assert!(ok2.borrow().as_ref().unwrap().result().is_ok());
                        assert_eq!(e3.waiters(), 0);
                        assert_only_test_deadline(&l, "lock");
                    }),
                ),
            ],
        )
    });
}

#[test]
fn event_set_twice() {
    let e = Event::new();
    e.set();
    e.set();
    assert!(e.is_set());
}

#[test]
fn event_wait_clear_set() {
    let e = Event::new();
    let f0 = e.wait();
    e.clear();
    let f1 = e.wait();
    e.set();
    assert!(f0.done() && f1.done());
}

#[test]
fn event_zero_timeout_fails_at_once_unless_set() {
    manual().run(|_| {
        let e = Event::new();
        let f = e.wait_timeout(Duration::ZERO);
        assert_eq!(f.error().unwrap().kind(), ErrorKind::Timeout);
        e.set();
        assert!(e.wait_timeout(Duration::ZERO).result().is_ok());
        Future::ready(())
    });
}

// ----- Semaphore -----------------------------------------------------------

#[test]
fn semaphore_debug() {
    let sem = Semaphore::default();
    let repr = format!("{sem:?}");
    assert!(repr.contains("Semaphore") && repr.contains("unlocked") && repr.contains("value: 1"));
    let _a = sem.acquire();
    let repr = format!("{sem:?}");
    assert!(
        repr.contains("locked") && !repr.contains("waiters"),
        "{repr}"
    );
    let _b = sem.acquire();
    assert!(format!("{sem:?}").contains("waiters: 1"));
}

#[test]
fn semaphore_acquire_waits_for_release_in_order() {
    let sem = Semaphore::new(1);
    let f0 = sem.acquire();
    assert!(f0.done());
    let f1 = sem.acquire();
    assert!(!f1.done());
    let f2 = sem.acquire();
    f0.take_result().unwrap().forget();
    sem.release();
    assert!(f1.done());
    assert!(!f2.done());
    f1.take_result().unwrap().forget();
    sem.release();
    assert!(f2.done());
    f2.take_result().unwrap().forget();
    sem.release();
    // Now acquire is instant.
    assert!(sem.acquire().done());
    assert_eq!(sem.waiters(), 0);
}

#[test]
fn semaphore_acquire_timeout() {
    manual().run(|io_loop| {
        let sem = Semaphore::new(2);
        let held = (sem.acquire(), sem.acquire());
        assert!(held.0.done() && held.1.done());
        let acquire = sem.acquire_timeout(ms(10));
        let s = sem.clone();
        let forgotten = held.0.clone();
        io_loop.call_later(ms(20), move || {
            // Too late for `acquire`.
            forgotten.take_result().unwrap().forget();
            s.release();
        });
        let l = io_loop.clone();
        at_times(
            io_loop,
            vec![(
                300,
                action(move || {
                    assert_eq!(acquire.error().unwrap().kind(), ErrorKind::Timeout);
                    // The permit released at 20 ms went to nobody.
                    assert_eq!(sem.value(), 1);
                    let a = sem.acquire();
                    assert!(a.done());
                    let f = sem.acquire();
                    assert!(!f.done());
                    drop(a);
                    assert!(f.done());
                    assert_only_test_deadline(&l, "lock");
                    drop(held);
                }),
            )],
        )
    });
}

#[test]
fn semaphore_acquire_timeout_preempted() {
    manual().run(|io_loop| {
        let sem = Semaphore::new(1);
        let held = sem.acquire().take_result().unwrap();
        io_loop.call_later(ms(10), move || drop(held));
        let acquire = sem.acquire_timeout(ms(20));
        at_times(
            io_loop,
            vec![(
                30,
                action(move || {
                    assert!(acquire.take_result().is_ok());
                }),
            )],
        )
    });
}

#[test]
fn semaphore_release_unacquired_raises_the_count() {
    let sem = Semaphore::new(1);
    sem.release();
    sem.release();
    let held: Vec<Future<Guard>> = (0..3).map(|_| sem.acquire()).collect();
    assert!(held.iter().all(Future::done));
    assert!(!sem.acquire().done());
}

#[test]
fn semaphore_timed_out_waiters_leave_the_line() {
    manual().run(|io_loop| {
        let sem = Semaphore::new(0);
        let timed: Vec<Future<Guard>> = (0..101).map(|_| sem.acquire_timeout(ms(10))).collect();
        let last = sem.acquire();
        assert_eq!(sem.waiters(), 102);
        let l = io_loop.clone();
        at_times(
            io_loop,
            vec![(
                20,
                action(move || {
                    assert_eq!(sem.waiters(), 1);
                    assert!(!last.done());
                    sem.release();
                    assert!(last.done());
                    for f in &timed {
                        assert_eq!(f.error().unwrap().kind(), ErrorKind::Timeout);
                    }
                    assert_only_test_deadline(&l, "lock");
                }),
            )],
        )
    });
}

#[test]
fn semaphore_guard_releases_on_drop() {
    let sem = Semaphore::new(1);
    {
        let _guard = sem.acquire().take_result().unwrap();
        assert!(sem.locked());
    }
    assert!(sem.acquire().done());
}

#[test]
fn semaphore_guard_released_on_unwinding() {
    let sem = Semaphore::new(1);
    let s = sem.clone();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _guard = s.acquire().take_result().unwrap();
        panic!("division by zero");
    }));
    assert!(caught.is_err());
    assert_eq!(sem.value(), 1);
}

#[test]
fn semaphore_guard_with_timeout_releases() {
    manual().run(|_| {
        let sem = Semaphore::new(1);
        drop(sem.acquire_timeout(ms(10)).take_result().unwrap());
        assert!(sem.acquire().done());
        Future::ready(())
    });
}

#[test]
fn semaphore_timeout_error_leaves_the_count() {
    manual().run(|io_loop| {
        let sem = Semaphore::new(0);
        let f = sem.acquire_timeout(ms(10));
        at_times(
            io_loop,
            vec![(
                20,
                action(move || {
                    assert_eq!(f.error().unwrap().kind(), ErrorKind::Timeout);
                    assert_eq!(sem.value(), 0);
                    assert!(!sem.acquire().done());
                }),
            )],
        )
    });
}

#[test]
fn semaphore_explicit_guard_release() {
    let sem = Semaphore::new(1);
    let guard = sem.acquire().take_result().unwrap();
    let next = sem.acquire();
    guard.release().unwrap();
    assert!(next.done());
    assert!(sem.try_acquire().is_none());
    drop(next);
    assert!(sem.try_acquire().is_some());
}

#[test]
fn semaphore_skips_a_dropped_waiter() {
    let sem = Semaphore::new(1);
    let held = sem.acquire();
    drop(sem.acquire());
    let kept = sem.acquire();
    drop(held);
    assert!(kept.done());
    assert_eq!(sem.value(), 0);
    assert_eq!(sem.waiters(), 0);
}

/// Tornado's `with (yield sem.acquire()):` in a generator, two at a time.
fn hold_for_a_while(sem: Semaphore, i: usize, history: Log<String>) -> Future<()> {
    gen::coroutine(gen::from_fn(
        (0u8, None::<Guard>),
        move |(step, guard), input| {
            *step += 1;
            match (*step, input) {
                (_, Resume::Error(err)) => Step::Return(Err(err)),
                (1, Resume::Start) => YieldFuture::new(sem.acquire()).into(),
                (2, Resume::Value(v)) => {
                    *guard = Some(v.downcast::<Guard>().unwrap());
                    history.push(format!("acquired {i}"));
                    gen::sleep(ms(10)).into()
                }
                (3, Resume::Value(_)) => {
                    history.push(format!("release {i}"));
                    guard.take(); // dropping the guard releases
                    Step::Return(Ok(()))
                }
                (n, input) => panic!("step {n}: {input:?}"),
            }
        },
    ))
}

fn join_all(futures: Vec<Future<()>>) -> Future<()> {
    let all = Future::new();
    let left = Rc::new(RefCell::new(futures.len()));
    for f in futures {
        let (all, left) = (all.clone(), left.clone());
        f.add_done_callback(move |f: &Future<()>| {
            if let Some(err) = f.error() {
                all.try_set_error(err);
                return;
            }
            *left.borrow_mut() -= 1;
            if *left.borrow() == 0 {
                all.try_set_result(());
            }
        });
    }
    all
}

#[test]
fn semaphore_contended_in_generators() {
    let history = Log::new();
    let h = history.clone();
    manual().run(move |_| {
        let sem = Semaphore::new(1);
        join_all(
            (0..2)
                .map(|i| hold_for_a_while(sem.clone(), i, h.clone()))
                .collect(),
        )
    });
    assert_eq!(
        history.get(),
        strs(&["acquired 0", "release 0", "acquired 1", "release 1"])
    );
}

// ----- BoundedSemaphore ----------------------------------------------------

#[test]
fn bounded_semaphore_release_unacquired() {
    let sem = BoundedSemaphore::new(1);
    assert_eq!(sem.release().unwrap_err().kind(), ErrorKind::InvalidState);
    sem.acquire().take_result().unwrap().forget();
    assert_eq!(sem.value(), 0);
    let future = sem.acquire();
    assert!(!future.done());
    sem.release().unwrap();
    assert!(future.done());
    future.take_result().unwrap().forget();
    assert_eq!(sem.value(), 0);
    sem.release().unwrap();
    assert_eq!(sem.value(), 1);
    assert_eq!(sem.release().unwrap_err().kind(), ErrorKind::InvalidState);
}

#[test]
fn bounded_semaphore_guard_after_manual_release_does_not_panic() {
    let sem = BoundedSemaphore::new(1);
    let guard = sem.acquire().take_result().unwrap();
    sem.release().unwrap();
    // The guard's own release would go past the bound: refused, logged.
    assert_eq!(guard.release().unwrap_err().kind(), ErrorKind::InvalidState);
    assert_eq!(sem.value(), 1);
    let guard = sem.acquire().take_result().unwrap();
    sem.release().unwrap();
    drop(guard);
    assert_eq!(sem.value(), 1);
}

// ----- Lock ----------------------------------------------------------------

#[test]
fn lock_debug() {
    let lock = Lock::new();
    assert!(format!("{lock:?}").contains("unlocked"));
    let _g = lock.acquire();
    assert!(format!("{lock:?}").contains("locked"));
}

#[test]
fn lock_acquire_release() {
    let lock = Lock::new();
    let first = lock.acquire();
    assert!(first.done());
    let future = lock.acquire();
    assert!(!future.done());
    first.take_result().unwrap().forget();
    lock.release().unwrap();
    assert!(future.done());
    assert!(lock.locked());
}

#[test]
fn lock_fifo_in_generators() {
    let history = Log::new();
    let h = history.clone();
    manual().run(move |_| {
        let lock = Lock::new();
        lock.acquire().take_result().unwrap().forget();
        let futures: Vec<Future<()>> = (0..5)
            .map(|i| {
                let (lock, h) = (lock.clone(), h.clone());
                gen::coroutine(gen::from_fn((), move |_, input| match input {
                    Resume::Start => YieldFuture::new(lock.acquire()).into(),
                    Resume::Value(guard) => {
                        let _guard = guard.downcast::<Guard>().unwrap();
                        h.push(i);
                        Step::Return(Ok(()))
                    }
                    Resume::Error(err) => Step::Return(Err(err)),
                }))
            })
            .collect();
        assert!(!futures.iter().any(Future::done));
        lock.release().unwrap();
        join_all(futures)
    });
    assert_eq!(history.get(), [0, 1, 2, 3, 4]);
}

#[test]
fn lock_acquire_from_callbacks() {
    let lock = Lock::new();
    let log = Log::new();
    let held = lock.acquire().take_result().unwrap();
    for i in 0..3 {
        let log = log.clone();
        lock.acquire().add_done_callback(move |f: &Future<Guard>| {
            let _guard = f.take_result().unwrap();
            log.push(i);
        });
    }
    assert!(log.is_empty());
    drop(held);
    assert_eq!(log.get(), [0, 1, 2]);
    assert!(!lock.locked());
}

#[test]
fn lock_acquire_timeout_leaves_it_locked() {
    manual().run(|io_loop| {
        let lock = Lock::new();
        let held = lock.acquire();
        let timed = lock.acquire_timeout(ms(10));
        let l = io_loop.clone();
        at_times(
            io_loop,
            vec![(
                20,
                action(move || {
                    assert_eq!(timed.error().unwrap().kind(), ErrorKind::Timeout);
                    assert!(lock.locked());
                    assert!(!lock.acquire().done());
                    assert_only_test_deadline(&l, "lock");
                    drop(held);
                }),
            )],
        )
    });
}

#[test]
fn lock_multi_release_is_an_error() {
    let lock = Lock::new();
    assert_eq!(lock.release().unwrap_err().kind(), ErrorKind::InvalidState);
    lock.acquire().take_result().unwrap().forget();
    lock.release().unwrap();
    assert_eq!(lock.release().unwrap_err().kind(), ErrorKind::InvalidState);
}

#[test]
fn lock_try_acquire() {
    let lock = Lock::new();
    let g = lock.try_acquire().unwrap();
    assert!(lock.try_acquire().is_none());
    drop(g);
    assert!(lock.try_acquire().is_some());
}

#[test]
fn lock_dropped_with_timed_waiters_still_times_them_out() {
    let (timed, left) = manual().run(|io_loop| {
        let lock = Lock::new();
        lock.acquire().take_result().unwrap().forget();
        let timed = lock.acquire_timeout(Duration::from_secs(1));
        // Its last user is gone; the timed waiter still hears its timeout
        // (as in Tornado, whose timeout callback holds the lock).
        drop(lock);
        // Timeouts pending while it waits (the harness has one of its own).
        let during = Rc::new(std::cell::Cell::new(0));
        let (dr, l) = (during.clone(), io_loop.clone());
        io_loop.add_callback(move || dr.set(l.timer_stats().pending));
        let t = timed.clone();
        let l = io_loop.clone();
        let done = Future::new();
        let d = done.clone();
        timed.add_done_callback(move |_: &Future<_>| {
            d.try_set_result((t, during.get() - l.timer_stats().pending));
        });
        done
    });
    assert_eq!(timed.error().unwrap().kind(), ErrorKind::Timeout);
    assert_eq!(left, 1, "the waiter's timeout ran and is gone");
}
