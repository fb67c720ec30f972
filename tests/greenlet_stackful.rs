//! `gen::stackful` (feature `stackful`): a straight-line generator driven by
//! the same Runner as hand-written ones, through the Task / Multi /
//! with_timeout / sleep / moment cases of tests/gen.rs.
#![cfg(feature = "stackful")]

mod common;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use common::coro::{boxed, future_after, manual, run, since, task_after, values_of};
use common::ms;
use squall::gen::{
    self, moment, with_timeout, Generator, Multi, ResultCallback, Resume, Step, Task, Value,
    YieldFuture, YieldPoint,
};
use squall::greenlet;
use squall::ioloop::{Clock, ManualClock};
use squall::{Error, ErrorKind, Future, IOLoop};

// ----- helpers (the shared ones are in tests/common/coro.rs) ----------------

fn assert_no_live_stacks() {
    assert_eq!(greenlet::stack_stats().live, 0, "a coroutine stack leaked");
}

// ----- the cases ----------------------------------------------------------------

#[test]
fn stackful_task_called_at_once_and_later() {
    let got = run(|io_loop| {
        let t0 = io_loop.time();
        gen::coroutine(gen::stackful(move |co| {
            let at_once = co
                .yield_point(Task::new(|cb: ResultCallback| cb.call((1, "one"))))?
                .downcast::<(i32, &str)>()?;
            let later = co
                .yield_point(Task::new(|cb: ResultCallback| {
                    IOLoop::current().add_timeout(ms(30), move || cb.call(5u64));
                }))?
                .downcast::<u64>()?;
            co.yield_point(Task::new(|cb: ResultCallback| cb.call(())))?
                .downcast::<()>()?;
            Ok((at_once, later, since(t0)))
        }))
    });
    assert_eq!(got, ((1, "one"), 5, ms(30)));
}

#[test]
fn stackful_error_in_task_function_is_thrown_in_and_caught() {
    let got = run(|_| {
        gen::coroutine(gen::stackful(|co| {
            let mut caught = Vec::new();
            let err = co
                .yield_point(Task::new(|_cb: ResultCallback| {
                    Err::<(), _>(Error::new(ErrorKind::Io, "boom"))
                }))
                .unwrap_err();
            caught.push(format!("caught {:?}: {}", err.kind(), err.message()));
            let err = co
                .yield_point(Task::new(|_cb: ResultCallback| -> Result<(), Error> {
                    panic!("kaboom")
                }))
                .unwrap_err();
            caught.push(format!("caught {:?}: {}", err.kind(), err.message()));
            let two = co.yield_point(task_after(5, 2))?.downcast::<i32>()?;
            Ok((caught, two))
        }))
    });
    assert_eq!(got.0, ["caught Io: boom", "caught Panic: kaboom"]);
    assert_eq!(got.1, 2);
}

#[test]
fn stackful_uncaught_error_fails_the_coroutine_future() {
    let (result, unhandled) = manual().try_run(|_| {
        gen::coroutine(gen::stackful(|co| -> Result<(), Error> {
            co.yield_point(task_after(10, ()))?;
            Err(Error::new(ErrorKind::Io, "after a yield"))
        }))
    });
    assert_eq!(result.unwrap_err().message(), "after a yield");
    assert!(unhandled.is_empty());
}

#[test]
fn stackful_multi_of_tasks_and_futures() {
    let got = run(|io_loop| {
        let t0 = io_loop.time();
        gen::coroutine(gen::stackful(move |co| {
            let tasks = values_of::<&str>(co.yield_point(Multi::new(vec![
                boxed(task_after(30, "a")),
                boxed(task_after(10, "b")),
                boxed(task_after(0, "c")),
            ]))?)?;
            let futures = values_of::<i32>(co.yield_point(Multi::new(vec![
                boxed(YieldFuture::new(future_after(20, Ok(1)))),
                boxed(YieldFuture::new(Future::ready(2))),
                boxed(YieldFuture::new(future_after(10, Ok(3)))),
            ]))?)?;
            let empty = values_of::<i32>(co.yield_point(Multi::new(Vec::new()))?)?;
            Ok((tasks, futures, empty, since(t0)))
        }))
    });
    assert_eq!(got, (vec!["a", "b", "c"], vec![1, 2, 3], vec![], ms(50)));
}

#[test]
fn stackful_multi_with_failures_throws_the_first_and_logs_the_others() {
    let (result, unhandled) = manual().allow_unhandled_errors().try_run(|io_loop| {
        let t0 = io_loop.time();
        gen::coroutine(gen::stackful(move |co| {
            let err = co
                .yield_point(Multi::new(vec![
                    boxed(task_after(5, "fine")),
                    boxed(YieldFuture::new(future_after::<&str>(
                        30,
                        Err(Error::other("first in order")),
                    ))),
                    boxed(Task::new(|cb: ResultCallback| {
                        IOLoop::current()
                            .call_later(ms(10), move || cb.fail(Error::other("second in order")));
                    })),
                    boxed(task_after(20, "also fine")),
                ]))
                .unwrap_err();
            Ok((err.message().to_owned(), since(t0)))
        }))
    });
    assert_eq!(result.unwrap(), ("first in order".to_owned(), ms(30)));
    let logged: Vec<&str> = unhandled.iter().map(Error::message).collect();
    assert_eq!(logged, ["second in order"]);
}

#[test]
fn stackful_keyed_multi() {
    let got = run(|_| {
        gen::coroutine(gen::stackful(|co| {
            let map = co
                .yield_point(Multi::keyed(vec![
                    ("slow", boxed(task_after(20, 1u32))),
                    ("fast", boxed(task_after(0, 2u32))),
                    (
                        "future",
                        boxed(YieldFuture::new(future_after(10, Ok(3u32)))),
                    ),
                ]))?
                .downcast::<HashMap<&str, Value>>()?;
            let mut pairs = map
                .into_iter()
                .map(|(k, v)| Ok((k, v.downcast::<u32>()?)))
                .collect::<Result<Vec<_>, Error>>()?;
            pairs.sort();
            Ok(pairs)
        }))
    });
    assert_eq!(got, [("fast", 2), ("future", 3), ("slow", 1)]);
}

#[test]
fn stackful_with_timeout_fires_and_does_not_fire() {
    let got = run(|io_loop| {
        let t0 = io_loop.time();
        let io_loop = io_loop.clone();
        gen::coroutine(gen::stackful(move |co| {
            // Let the test harness add its own timeout first.
            co.yield_point(moment())?;
            let baseline = io_loop.timer_stats().pending;
            let fired = co
                .yield_point(with_timeout(ms(100), gen::sleep(ms(1000))))
                .unwrap_err()
                .kind();
            let at = since(t0);
            let won = co
                .yield_point(with_timeout(ms(100), task_after(10, 5i64)))?
                .downcast::<i64>()?;
            let failed_in_time = co
                .yield_point(with_timeout(
                    ms(100),
                    YieldFuture::new(future_after::<()>(
                        10,
                        Err(Error::new(ErrorKind::Io, "refused")),
                    )),
                ))
                .unwrap_err();
            // The late result of the abandoned sleep arrives quietly.
            co.yield_point(gen::sleep(ms(2000)))?;
            let pending = io_loop.timer_stats().pending - baseline;
            Ok((fired, at, won, failed_in_time.kind(), pending))
        }))
    });
    assert_eq!(got, (ErrorKind::Timeout, ms(100), 5, ErrorKind::Io, 0));
}

#[test]
fn stackful_coroutine_waits_for_another_coroutine() {
    let got = run(|_| {
        let inner = gen::coroutine(gen::stackful(|co| {
            co.yield_point(gen::sleep(ms(10)))?;
            Ok(20)
        }));
        gen::coroutine(gen::stackful(move |co| Ok(co.wait(inner)? + 1)))
    });
    assert_eq!(got, 21);
}

/// Two stackful coroutines, each logging its name five times and yielding
/// `point` after each: the order they ran in (tests/gen.rs's `two_coroutines`).
fn two_coroutines(point: fn() -> Box<dyn YieldPoint>) -> String {
    let log = Rc::new(RefCell::new(String::new()));
    let l = log.clone();
    run(move |_| {
        let make = |name: &'static str| {
            let l = l.clone();
            gen::coroutine(gen::stackful(move |co| {
                for _ in 0..5 {
                    l.borrow_mut().push_str(name);
                    co.yield_boxed(point())?;
                }
                Ok(())
            }))
        };
        let (a, b) = (make("a"), make("b"));
        gen::coroutine(gen::stackful(move |co| {
            co.wait(a)?;
            co.wait(b)
        }))
    });
    let out = log.borrow().clone();
    out
}

#[test]
fn stackful_ready_yields_do_not_interleave_and_moment_does() {
    assert_eq!(
        two_coroutines(|| boxed(YieldFuture::new(Future::ready(())))),
        "aaaaabbbbb"
    );
    assert_eq!(
        two_coroutines(|| boxed(Task::new(|cb: ResultCallback| cb.call(())))),
        "aaaaabbbbb"
    );
    assert_eq!(two_coroutines(|| boxed(moment())), "ababababab");
}

#[test]
fn stackful_closing_the_loop_fails_a_waiting_generator_with_callback_dropped() {
    let io_loop = IOLoop::with_clock(Clock::Manual(ManualClock::new())).unwrap();
    let waiting = Rc::new(RefCell::new(None));
    let w = waiting.clone();
    let err = io_loop
        .run_sync(
            move || {
                *w.borrow_mut() = Some(gen::coroutine(gen::stackful(|co| {
                    Ok(co.yield_point(gen::sleep(ms(1000))).unwrap_err().kind())
                })));
                Future::<()>::new()
            },
            Some(ms(10)),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    let waiting = waiting.borrow_mut().take().unwrap();
    assert!(!waiting.done());
    io_loop.close();
    assert_eq!(waiting.result().unwrap(), ErrorKind::CallbackDropped);
    assert_no_live_stacks();
}

#[test]
fn stackful_engine_delivers_to_done() {
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    let io_loop = IOLoop::with_clock(Clock::Manual(ManualClock::new())).unwrap();
    io_loop
        .run_sync(
            move || {
                let finished = Future::new();
                let f = finished.clone();
                gen::engine(
                    gen::stackful(|co| co.yield_point(task_after(5, 9u8))?.downcast::<u8>()),
                    move |r: Result<u8, Error>| {
                        g.set(Some(r.unwrap()));
                        f.try_set_result(());
                    },
                );
                finished
            },
            None,
        )
        .unwrap();
    assert_eq!(got.get(), Some(9));
}

#[test]
fn a_stackful_generator_finished_answers_resume_with_an_error() {
    let mut gen = gen::stackful(|_| Ok(1));
    assert!(matches!(gen.resume(Resume::Start), Step::Return(Ok(1))));
    assert!(gen.finished());
    match gen.resume(Resume::Start) {
        Step::Return(Err(err)) => assert_eq!(err.kind(), ErrorKind::InvalidState),
        _ => panic!("expected an error"),
    }
    // An error thrown in before the start is returned without running the body.
    let mut gen = gen::stackful(|_| -> Result<(), Error> { unreachable!() });
    match gen.resume(Resume::Error(Error::other("thrown"))) {
        Step::Return(Err(err)) => assert_eq!(err.message(), "thrown"),
        _ => panic!("expected the thrown error"),
    }
    assert_no_live_stacks();
}
