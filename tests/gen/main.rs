//! Generator-style coroutines: the behaviour of Tornado 3's `gen_test.py`
//! (`gen.engine`, `gen.Task`, `Callback`/`Wait`, `Multi`, ...) through
//! squall's public API, plus the properties a Rust port has to add (no stack
//! growth for ready yields, typed values, dropped callbacks).
//!
//! Everything timed runs on a `ManualClock`: the loop jumps to the next
//! deadline when idle, so the tests are exact and fast.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use common::coro::{boxed, future_after, manual, run, since, task_after};
use common::ms;
use squall::gen::{
    self, moment, sleep, with_timeout, Callback, Generator, Key, Multi, ResultCallback, Resume,
    Runner, Step, Task, Value, Wait, WaitAll, WaitIterator, YieldFuture, YieldPoint,
};
use squall::ioloop::{Clock, ManualClock};
use squall::stack_context::ExceptionStackContext;
use squall::testing::capture_unhandled;
use squall::{Error, ErrorKind, Future, IOLoop};

// ----- helpers ---------------------------------------------------------------

/// A shared, ordered record of what happened.
#[derive(Clone, Default)]
struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    fn push(&self, entry: impl Into<String>) {
        self.0.borrow_mut().push(entry.into());
    }
    fn get(&self) -> Vec<String> {
        self.0.borrow().clone()
    }
    fn joined(&self) -> String {
        self.0.borrow().concat()
    }
}

/// A value handed from one step of a script to a later one.
struct Carry<T>(Rc<RefCell<Option<T>>>);

impl<T> Clone for Carry<T> {
    fn clone(&self) -> Self {
        Carry(self.0.clone())
    }
}

fn carry<T>() -> Carry<T> {
    Carry(Rc::new(RefCell::new(None)))
}

impl<T> Carry<T> {
    fn put(&self, value: T) {
        *self.0.borrow_mut() = Some(value);
    }
    fn take(&self) -> T {
        self.0.borrow_mut().take().expect("nothing carried")
    }
}

/// What a script step is given: the last point's value, or its error.
type Outcome = Result<Value, Error>;
type StepFn<T> = Box<dyn FnOnce(Outcome) -> Result<Step<T>, Error>>;

/// A generator written as a list of steps, one per resumption, so a test
/// reads top to bottom like the Python generator it mirrors. A step returns
/// `wait(point)` or `done(value)`; `?` on an error finishes the generator
/// with it (an uncaught exception).
struct Script<T> {
    steps: std::collections::VecDeque<StepFn<T>>,
}

fn script<T: 'static>() -> Script<T> {
    Script {
        steps: Default::default(),
    }
}

impl<T: 'static> Script<T> {
    fn then(mut self, step: impl FnOnce(Outcome) -> Result<Step<T>, Error> + 'static) -> Self {
        self.steps.push_back(Box::new(step));
        self
    }
}

impl<T: 'static> Generator for Script<T> {
    type Output = T;
    fn resume(&mut self, input: Resume) -> Step<T> {
        let outcome = match input {
            Resume::Start => Ok(Value::unit()),
            Resume::Value(v) => Ok(v),
            Resume::Error(err) => Err(err),
        };
        match self.steps.pop_front() {
            Some(step) => step(outcome).unwrap_or_else(|err| Step::Return(Err(err))),
            None => Step::Return(Err(Error::other("script resumed after its last step"))),
        }
    }
}

fn wait<T>(point: impl YieldPoint) -> Result<Step<T>, Error> {
    Ok(Step::wait(point))
}

fn done<T>(value: T) -> Result<Step<T>, Error> {
    Ok(Step::Return(Ok(value)))
}

/// The value of an outcome, as a `T`.
fn val<T: 'static>(outcome: Outcome) -> Result<T, Error> {
    outcome?.downcast()
}

/// Joins coroutines' futures with a `Multi`: the values in order.
fn join<T: 'static>(futures: Vec<Future<T>>) -> Future<Vec<T>> {
    gen::coroutine(
        script()
            .then(move |_| {
                wait(Multi::new(
                    futures
                        .into_iter()
                        .map(|f| boxed(YieldFuture::new(f)))
                        .collect(),
                ))
            })
            .then(|r| {
                let values: Vec<Value> = val(r)?;
                done(
                    values
                        .into_iter()
                        .map(Value::downcast::<T>)
                        .collect::<Result<Vec<T>, Error>>()?,
                )
            }),
    )
}

/// Values of a `Vec<Value>` result, as `T`s.
fn values<T: 'static>(outcome: Outcome) -> Result<Vec<T>, Error> {
    val::<Vec<Value>>(outcome)?
        .into_iter()
        .map(Value::downcast)
        .collect()
}

// ----- basics ----------------------------------------------------------------

#[test]
fn no_yield_generator_finishes_at_once() {
    // coroutine: the future is done before `coroutine` returns, no loop needed.
    let future = gen::coroutine(gen::from_fn((), |_, input| {
        assert!(matches!(input, Resume::Start));
        Step::Return(Ok(42))
    }));
    assert_eq!(future.result().unwrap(), 42);

    // engine: `done` is called before `engine` returns.
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    gen::engine(script().then(|_| done(7u8)), move |r: Result<u8, Error>| {
        g.set(Some(r.unwrap()))
    });
    assert_eq!(got.get(), Some(7));

    // And inside a running loop.
    assert_eq!(run(|_| gen::coroutine(script().then(|_| done("x")))), "x");
}

#[test]
fn task_called_at_once() {
    let got = run(|_| {
        gen::coroutine(
            script()
                .then(|_| {
                    wait(Task::new(|cb: ResultCallback| {
                        cb.call((1, "one"));
                    }))
                })
                .then(|r| done(val::<(i32, &str)>(r)?)),
        )
    });
    assert_eq!(got, (1, "one"));
}

#[test]
fn task_called_later_from_a_timeout() {
    let got = run(|io_loop| {
        let t0 = io_loop.time();
        gen::coroutine(
            script()
                .then(|_| {
                    wait(Task::new(|cb: ResultCallback| {
                        IOLoop::current().add_timeout(ms(30), move || cb.call(5u64));
                    }))
                })
                .then(move |r| done((val::<u64>(r)?, since(t0)))),
        )
    });
    assert_eq!(got, (5, ms(30)));
}

#[test]
fn task_without_value_delivers_unit() {
    run(|_| {
        gen::coroutine(
            script()
                .then(|_| wait(Task::new(|cb: ResultCallback| cb.call(()))))
                .then(|r| done(val::<()>(r)?)),
        )
    });
}

#[test]
fn error_in_task_function_is_thrown_in_and_caught() {
    let log = Log::default();
    let l = log.clone();
    let l2 = log.clone();
    let got = run(move |_| {
        gen::coroutine(
            script()
                .then(|_| {
                    wait(Task::new(|_cb: ResultCallback| {
                        Err::<(), _>(Error::new(ErrorKind::Io, "boom"))
                    }))
                })
                .then(move |r| {
                    // try: ... except: the generator catches and goes on.
                    let err = r.unwrap_err();
                    l.push(format!("caught {:?}: {}", err.kind(), err.message()));
                    wait(Task::new(|_cb: ResultCallback| -> Result<(), Error> {
                        panic!("kaboom")
                    }))
                })
                .then(move |r| {
                    let err = r.unwrap_err();
                    l2.push(format!("caught {:?}: {}", err.kind(), err.message()));
                    wait(task_after(5, 2))
                })
                .then(|r| done(val::<i32>(r)?)),
        )
    });
    assert_eq!(got, 2);
    assert_eq!(log.get(), ["caught Io: boom", "caught Panic: kaboom"]);
}

#[test]
fn uncaught_error_fails_the_coroutine_future() {
    let (result, unhandled) = manual().try_run(|_| {
        gen::coroutine(
            script::<()>()
                .then(|_| wait(task_after(10, ())))
                .then(|_| Err(Error::new(ErrorKind::Io, "after a yield"))),
        )
    });
    let err = result.unwrap_err();
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::Io, "after a yield")
    );
    assert!(unhandled.is_empty(), "{unhandled:?}");

    // An error thrown in and not caught ends up there too, as itself.
    let future = gen::coroutine(
        script::<()>()
            .then(|_| {
                wait(Task::new(|_cb: ResultCallback| {
                    Err::<(), _>(Error::new(ErrorKind::Timeout, "thrown in"))
                }))
            })
            .then(|r| {
                r?;
                done(())
            }),
    );
    let err = future.error().unwrap();
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::Timeout, "thrown in")
    );

    // A panicking generator fails its future with a Panic error.
    let future = gen::coroutine(gen::from_fn((), |_, _| -> Step<()> { panic!("gen bug") }));
    let err = future.error().unwrap();
    assert_eq!((err.kind(), err.message()), (ErrorKind::Panic, "gen bug"));
}

#[test]
fn uncaught_error_reaches_engine_done_and_the_callers_context() {
    let log = Log::default();
    let l = log.clone();
    let caught = run(move |_| {
        let caught = Future::new();
        let c = caught.clone();
        let handler = ExceptionStackContext::new(move |err: &Error| {
            c.try_set_result(err.message().to_owned());
            true
        });
        handler.run(|| {
            gen::engine(
                script::<()>()
                    .then(|_| wait(task_after(10, ())))
                    .then(|_| Err(Error::other("engine failed"))),
                move |r: Result<(), Error>| {
                    l.push(format!("done: {}", r.as_ref().unwrap_err().message()));
                    r // returned: travels to the caller's stack context
                },
            );
        });
        caught
    });
    assert_eq!(caught, "engine failed");
    assert_eq!(log.get(), ["done: engine failed"]);
}

#[test]
fn engine_error_before_the_first_yield_reaches_the_caller_at_once() {
    let log = Log::default();
    let (l, l2) = (log.clone(), log.clone());
    let handler = ExceptionStackContext::new(move |err: &Error| {
        l.push(format!("caught: {}", err.message()));
        true
    });
    handler.run(|| {
        gen::engine(
            script::<()>().then(|_| Err(Error::other("early"))),
            |r: Result<(), Error>| r,
        );
        l2.push("engine returned");
    });
    assert_eq!(log.get(), ["caught: early", "engine returned"]);

    // With no context to catch it, it is an unhandled error, reported at once.
    let ((), unhandled) = capture_unhandled(|| {
        gen::engine(
            script::<()>().then(|_| Err(Error::other("nobody"))),
            |r: Result<(), Error>| r,
        );
    });
    assert_eq!(unhandled.len(), 1);
    assert_eq!(unhandled[0].message(), "nobody");
}

#[test]
fn engine_error_after_a_yield_reaches_the_callers_context() {
    let log = Log::default();
    let l = log.clone();
    let caught = run(move |_| {
        let caught = Future::new();
        let c = caught.clone();
        ExceptionStackContext::new(move |err: &Error| {
            c.try_set_result(format!("{:?}: {}", err.kind(), err.message()));
            true
        })
        .run(|| {
            gen::engine(
                script::<()>()
                    .then(|_| wait(sleep(ms(10))))
                    .then(|_| Err(Error::new(ErrorKind::StreamClosed, "late"))),
                |r: Result<(), Error>| r,
            );
            l.push("engine returned");
        });
        caught
    });
    assert_eq!(caught, "StreamClosed: late");
    assert_eq!(log.get(), ["engine returned"]);
}

#[test]
fn error_raised_later_by_a_scheduled_callback_is_thrown_into_the_generator() {
    // Tornado's test_exception_in_task_phase2: the task's function drops its
    // callback and schedules a callback that fails; the failure reaches the
    // generator through the Runner's ExceptionStackContext.
    let got = run(|_| {
        gen::coroutine(
            script()
                .then(|_| {
                    wait(Task::new(|_cb: ResultCallback| {
                        IOLoop::current()
                            .add_callback(|| Err::<(), _>(Error::new(ErrorKind::Io, "phase 2")));
                    }))
                })
                .then(|r| {
                    let err = r.unwrap_err();
                    assert_eq!((err.kind(), err.message()), (ErrorKind::Io, "phase 2"));
                    wait(task_after(1, "recovered"))
                })
                .then(|r| done(val::<&str>(r)?)),
        )
    });
    assert_eq!(got, "recovered");

    // The same from an add_timeout callback that keeps the result callback
    // alive until it fails: the error, not a CallbackDropped, is thrown in.
    let got = run(|io_loop| {
        let t0 = io_loop.time();
        gen::coroutine(
            script()
                .then(|_| {
                    wait(Task::new(|cb: ResultCallback| {
                        IOLoop::current().add_timeout(ms(20), move || {
                            let _keep = cb;
                            Err::<(), _>(Error::new(ErrorKind::Timeout, "late failure"))
                        });
                    }))
                })
                .then(move |r| {
                    let err = r.unwrap_err();
                    assert_eq!(since(t0), ms(20));
                    wait(task_after(
                        5,
                        format!("{:?}: {}", err.kind(), err.message()),
                    ))
                })
                .then(|r| done(val::<String>(r)?)),
        )
    });
    assert_eq!(got, "Timeout: late failure");
}

#[test]
fn future_abandoned_after_a_thrown_error_does_not_resume_the_generator() {
    // The generator waits on a future; an error thrown in by a failing
    // callback moves it on to a second future. When the first completes
    // later, the runner is woken but must not resume with its value.
    let first = Future::<&str>::new();
    let f1 = first.clone();
    let got = run(move |io_loop| {
        let late = first.clone();
        io_loop.add_timeout(ms(30), move || late.set_result("stale"));
        gen::coroutine(
            script()
                .then(move |_| {
                    IOLoop::current().add_timeout(ms(10), || {
                        Err::<(), _>(Error::new(ErrorKind::Io, "thrown in"))
                    });
                    wait(YieldFuture::new(first))
                })
                .then(|r| {
                    assert_eq!(r.unwrap_err().message(), "thrown in");
                    wait(YieldFuture::new(future_after(50, Ok("fresh"))))
                })
                .then(|r| done(val::<&str>(r)?)),
        )
    });
    assert_eq!(got, "fresh");
    assert!(f1.done(), "the abandoned future completed meanwhile");
}

#[test]
fn error_from_a_callback_scheduled_by_a_finished_generator_goes_to_the_caller() {
    // Once the generator finishes, its context is deactivated: a late error
    // from something it scheduled goes to the caller's context instead.
    let caught = run(|_| {
        let caught = Future::new();
        let c = caught.clone();
        ExceptionStackContext::new(move |err: &Error| {
            c.try_set_result(err.message().to_owned());
            true
        })
        .run(|| {
            gen::engine(
                script().then(|_| {
                    IOLoop::current().call_later(ms(5), || Err::<(), _>(Error::other("orphan")));
                    done(())
                }),
                |r: Result<(), Error>| r,
            );
        });
        caught
    });
    assert_eq!(caught, "orphan");
}

// ----- Callback / Wait / WaitAll --------------------------------------------

/// Registers keys 1 and 2 with `Callback`, has them called after `delays`
/// (0: at once, during the generator's step), then waits on them in
/// `wait_order`. Returns the values in wait order, and the loop time taken.
fn callback_wait(delays: [u64; 2], wait_order: [i32; 2]) -> (Vec<String>, Duration) {
    run(move |io_loop| {
        let t0 = io_loop.time();
        let got = Rc::new(RefCell::new(Vec::new()));
        let (g1, g2, g3) = (got.clone(), got.clone(), got.clone());
        let call = move |r: Outcome, key: i32, delay: u64| -> Result<(), Error> {
            let cb: ResultCallback = val(r)?;
            let value = format!("v{key}");
            if delay == 0 {
                cb.call(value);
            } else {
                IOLoop::current().call_later(ms(delay), move || cb.call(value));
            }
            Ok(())
        };
        gen::coroutine(
            script()
                .then(|_| wait(Callback::new(1)))
                .then(move |r| {
                    call(r, 1, delays[0])?;
                    wait(Callback::new(2))
                })
                .then(move |r| {
                    call(r, 2, delays[1])?;
                    wait(Wait::new(wait_order[0]))
                })
                .then(move |r| {
                    g1.borrow_mut().push(val::<String>(r)?);
                    wait(Wait::new(wait_order[1]))
                })
                .then(move |r| {
                    g2.borrow_mut().push(val::<String>(r)?);
                    let values = g3.borrow().clone();
                    done((values, since(t0)))
                }),
        )
    })
}

#[test]
fn callback_and_wait_in_order() {
    assert_eq!(
        callback_wait([0, 0], [1, 2]),
        (vec!["v1".into(), "v2".into()], ms(0))
    );
    assert_eq!(
        callback_wait([10, 20], [1, 2]),
        (vec!["v1".into(), "v2".into()], ms(20))
    );
}

#[test]
fn callback_and_wait_out_of_order() {
    // Waited for in the other order than they were registered.
    assert_eq!(
        callback_wait([0, 0], [2, 1]),
        (vec!["v2".into(), "v1".into()], ms(0))
    );
    // Results arrive in the other order than they are waited for.
    assert_eq!(
        callback_wait([20, 10], [1, 2]),
        (vec!["v1".into(), "v2".into()], ms(20))
    );
    assert_eq!(
        callback_wait([10, 20], [2, 1]),
        (vec!["v2".into(), "v1".into()], ms(20))
    );
}

#[test]
fn wait_all_collects_in_key_order() {
    let got = run(|io_loop| {
        let t0 = io_loop.time();
        gen::coroutine(
            script()
                .then(|_| wait(Callback::new("a")))
                .then(|r| {
                    let cb: ResultCallback = val(r)?;
                    IOLoop::current().call_later(ms(30), move || cb.call("A"));
                    wait(Callback::new("b"))
                })
                .then(|r| {
                    let cb: ResultCallback = val(r)?;
                    IOLoop::current().call_later(ms(10), move || cb.call("B"));
                    wait(Callback::new(String::from("c")))
                })
                .then(|r| {
                    val::<ResultCallback>(r)?.call("C");
                    wait(WaitAll::new(["b", "c", "a"]))
                })
                .then(move |r| done((values::<&str>(r)?, since(t0)))),
        )
    });
    assert_eq!(got, (vec!["B", "C", "A"], ms(30)));
}

#[test]
fn wait_on_an_unknown_key_throws_unknown_key() {
    let kind = run(|_| {
        gen::coroutine(
            script()
                .then(|_| wait(Wait::new("never registered")))
                .then(|r| {
                    let err = r.unwrap_err();
                    assert!(err.message().contains("never registered"), "{err}");
                    done(err.kind())
                }),
        )
    });
    assert_eq!(kind, ErrorKind::UnknownKey);

    let kind = run(|_| {
        gen::coroutine(
            script()
                .then(|_| wait(WaitAll::new([1, 2])))
                .then(|r| done(r.unwrap_err().kind())),
        )
    });
    assert_eq!(kind, ErrorKind::UnknownKey);
}

#[test]
fn leaked_callback_fails_the_generator() {
    let orphan: Rc<RefCell<Option<ResultCallback>>> = Rc::default();
    let o = orphan.clone();
    let (result, unhandled) = manual().try_run(move |_| {
        gen::coroutine(script().then(|_| wait(Callback::new(1))).then(move |r| {
            *o.borrow_mut() = Some(val(r)?);
            done(())
        }))
    });
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LeakedCallback, "{err}");
    assert!(unhandled.is_empty(), "{unhandled:?}");
    // Calling the orphan now is harmless.
    orphan.borrow_mut().take().unwrap().call(1);

    // With engine, the error reaches `done`.
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    gen::engine(
        script()
            .then(|_| wait(Callback::new("k")))
            .then(|_| done(())),
        move |r: Result<(), Error>| g.set(r.err().map(|e| e.kind())),
    );
    assert_eq!(got.get(), Some(ErrorKind::LeakedCallback));

    // A generator that caught an error may leave callbacks behind: no leak
    // error then (Tornado: "some callbacks may have been orphaned").
    let future = gen::coroutine(
        script()
            .then(|_| wait(Callback::new(1)))
            .then(|_| wait(Wait::new(2)))
            .then(|r| done(r.unwrap_err().kind())),
    );
    assert_eq!(future.result().unwrap(), ErrorKind::UnknownKey);
}

#[test]
fn key_reuse_is_an_error() {
    let kinds = run(|_| {
        let k = carry();
        let k2 = k.clone();
        gen::coroutine(
            script()
                .then(|_| wait(Callback::new("k")))
                .then(|r| {
                    let cb: ResultCallback = val(r)?;
                    cb.call(1);
                    wait(Callback::new("k"))
                })
                .then(move |r| {
                    k.put(r.unwrap_err().kind());
                    // The first registration is intact.
                    wait(Wait::new("k"))
                })
                .then(move |r| done((k2.take(), val::<i32>(r)?))),
        )
    });
    assert_eq!(kinds, (ErrorKind::KeyReuse, 1));

    // Once waited for, a key may be registered again.
    let got = run(|_| {
        gen::coroutine(
            script()
                .then(|_| wait(Callback::new(7)))
                .then(|r| {
                    val::<ResultCallback>(r)?.call('a');
                    wait(Wait::new(7))
                })
                .then(|r| {
                    assert_eq!(val::<char>(r)?, 'a');
                    wait(Callback::new(7))
                })
                .then(|r| {
                    val::<ResultCallback>(r)?.call('b');
                    wait(Wait::new(7))
                })
                .then(|r| done(val::<char>(r)?)),
        )
    });
    assert_eq!(got, 'b');
}

// ----- Multi ------------------------------------------------------------------

#[test]
fn multi_of_tasks() {
    let got = run(|io_loop| {
        let t0 = io_loop.time();
        gen::coroutine(
            script()
                .then(|_| {
                    wait(Multi::new(vec![
                        boxed(task_after(30, "a")),
                        boxed(task_after(10, "b")),
                        boxed(task_after(0, "c")),
                    ]))
                })
                .then(move |r| done((values::<&str>(r)?, since(t0)))),
        )
    });
    assert_eq!(got, (vec!["a", "b", "c"], ms(30)));
}

#[test]
fn multi_of_futures() {
    let got = run(|_| {
        gen::coroutine(
            script()
                .then(|_| {
                    wait(Multi::new(vec![
                        boxed(YieldFuture::new(future_after(20, Ok(1)))),
                        boxed(YieldFuture::new(Future::ready(2))),
                        boxed(YieldFuture::new(future_after(10, Ok(3)))),
                    ]))
                })
                .then(|r| done(values::<i32>(r)?)),
        )
    });
    assert_eq!(got, [1, 2, 3]);
}

#[test]
fn multi_with_failures_throws_the_first_and_logs_the_others() {
    let (result, unhandled) = manual().allow_unhandled_errors().try_run(|io_loop| {
        let t0 = io_loop.time();
        gen::coroutine(
            script()
                .then(|_| {
                    wait(Multi::new(vec![
                        boxed(task_after(5, "fine")),
                        boxed(YieldFuture::new(future_after::<&str>(
                            30,
                            Err(Error::other("first in order")),
                        ))),
                        boxed(Task::new(|cb: ResultCallback| {
                            IOLoop::current().call_later(ms(10), move || {
                                cb.fail(Error::other("second in order"))
                            });
                        })),
                        boxed(task_after(20, "also fine")),
                    ]))
                })
                .then(move |r| {
                    let err = r.unwrap_err();
                    // Every child was waited for before the error was thrown in.
                    done((err.message().to_owned(), since(t0)))
                }),
        )
    });
    assert_eq!(result.unwrap(), ("first in order".to_owned(), ms(30)));
    let logged: Vec<&str> = unhandled.iter().map(Error::message).collect();
    assert_eq!(logged, ["second in order"]);
}

#[test]
fn multi_child_failing_to_start() {
    let (result, unhandled) = manual().allow_unhandled_errors().try_run(|_| {
        gen::coroutine(
            script::<()>()
                .then(|_| {
                    wait(Multi::new(vec![
                        boxed(task_after(5, 1)),
                        boxed(Task::new(|_cb: ResultCallback| {
                            Err::<(), _>(Error::other("start failed"))
                        })),
                    ]))
                })
                .then(|r| {
                    r?;
                    done(())
                }),
        )
    });
    assert_eq!(result.unwrap_err().message(), "start failed");
    assert!(unhandled.is_empty(), "{unhandled:?}");
}

#[test]
fn keyed_multi() {
    let got = run(|_| {
        gen::coroutine(
            script()
                .then(|_| {
                    wait(Multi::keyed(vec![
                        ("slow", boxed(task_after(20, 1u32))),
                        ("fast", boxed(task_after(0, 2u32))),
                        (
                            "future",
                            boxed(YieldFuture::new(future_after(10, Ok(3u32)))),
                        ),
                    ]))
                })
                .then(|r| {
                    let map: HashMap<&str, Value> = val(r)?;
                    let mut pairs = map
                        .into_iter()
                        .map(|(k, v)| Ok((k, v.downcast::<u32>()?)))
                        .collect::<Result<Vec<_>, Error>>()?;
                    pairs.sort();
                    done(pairs)
                }),
        )
    });
    assert_eq!(got, [("fast", 2), ("future", 3), ("slow", 1)]);
}

#[test]
fn empty_multi_is_ready_at_once() {
    let future = gen::coroutine(
        script()
            .then(|_| wait(Multi::new(Vec::new())))
            .then(|r| done(val::<Vec<Value>>(r)?.len())),
    );
    assert_eq!(future.result().unwrap(), 0);
}

#[test]
fn multi_of_two_thousand_tasks() {
    const N: u64 = 2_000;
    let got = run(|_| {
        gen::coroutine(
            script()
                .then(|_| {
                    wait(Multi::new(
                        (0..N).map(|i| boxed(task_after(i % 7, i))).collect(),
                    ))
                })
                .then(|r| done(values::<u64>(r)?)),
        )
    });
    assert_eq!(got, (0..N).collect::<Vec<_>>());
}

// ----- futures ----------------------------------------------------------------

#[test]
fn yield_future_done_and_pending() {
    let got = run(|io_loop| {
        let t0 = io_loop.time();
        gen::coroutine(
            script()
                .then(|_| wait(YieldFuture::new(Future::ready(String::from("done")))))
                .then(|r| {
                    let first: String = val(r)?;
                    wait(YieldFuture::new(future_after(
                        15,
                        Ok(first + " then pending"),
                    )))
                })
                .then(move |r| done((val::<String>(r)?, since(t0)))),
        )
    });
    assert_eq!(got, ("done then pending".to_owned(), ms(15)));
}

#[test]
fn yield_future_failed_throws_its_error() {
    let got = run(|_| {
        let first = carry();
        let f2 = first.clone();
        gen::coroutine(
            script()
                .then(|_| {
                    wait(YieldFuture::new(Future::<u8>::failed(Error::new(
                        ErrorKind::Io,
                        "x",
                    ))))
                })
                .then(move |r| {
                    first.put(r.unwrap_err().kind());
                    wait(YieldFuture::new(future_after::<u8>(
                        5,
                        Err(Error::new(ErrorKind::Closed, "y")),
                    )))
                })
                .then(move |r| done((f2.take(), r.unwrap_err().kind()))),
        )
    });
    assert_eq!(got, (ErrorKind::Io, ErrorKind::Closed));
}

#[test]
fn coroutine_waits_for_another_coroutine() {
    let got = run(|_| {
        let inner = gen::coroutine(script().then(|_| wait(sleep(ms(10)))).then(|_| done(20)));
        gen::coroutine(
            script()
                .then(move |_| wait(YieldFuture::new(inner)))
                .then(|r| done(val::<i32>(r)? + 1)),
        )
    });
    assert_eq!(got, 21);
}

// ----- sleep, moment, with_timeout -------------------------------------------

#[test]
fn sleep_sleeps_on_the_loops_clock() {
    let got = run(|io_loop| {
        let t0 = io_loop.time();
        let first = carry();
        let f2 = first.clone();
        gen::coroutine(
            script()
                .then(|_| wait(sleep(ms(1500))))
                .then(move |r| {
                    val::<()>(r)?;
                    first.put(since(t0));
                    wait(sleep(Duration::ZERO))
                })
                .then(move |_| done((f2.take(), since(t0)))),
        )
    });
    assert_eq!(got, (ms(1500), ms(1500)));
}

#[test]
fn moment_lets_other_callbacks_run_between_steps() {
    let order = |point: fn() -> Box<dyn YieldPoint>| {
        let log = Log::default();
        let l = log.clone();
        run(move |io_loop| {
            let other = l.clone();
            io_loop.add_callback(move || other.push("other "));
            let (l1, l2) = (l.clone(), l.clone());
            gen::coroutine(
                script()
                    .then(move |_| {
                        l1.push("step1 ");
                        Ok(Step::Yield(point()))
                    })
                    .then(move |_| {
                        l2.push("step2 ");
                        // Let the loop run the other callback before returning.
                        wait(moment())
                    })
                    .then(|_| done(())),
            )
        });
        log.joined()
    };
    assert_eq!(order(|| boxed(moment())), "step1 other step2 ");
    assert_eq!(
        order(|| boxed(YieldFuture::new(Future::ready(())))),
        "step1 step2 other "
    );
}

/// Two coroutines, each logging its name five times and yielding `point`
/// after each: the order they ran in.
fn two_coroutines(point: fn() -> Box<dyn YieldPoint>) -> String {
    let log = Log::default();
    let l = log.clone();
    run(move |_| {
        let make = |name: &'static str| {
            let l = l.clone();
            gen::coroutine(gen::from_fn(0, move |n: &mut u32, input| {
                if let Resume::Error(err) = input {
                    return Step::Return(Err(err));
                }
                if *n == 5 {
                    return Step::Return(Ok(()));
                }
                *n += 1;
                l.push(name);
                Step::Yield(point())
            }))
        };
        let (a, b) = (make("a"), make("b"));
        join(vec![a, b])
    });
    log.joined()
}

#[test]
fn ready_yields_do_not_interleave() {
    assert_eq!(
        two_coroutines(|| boxed(YieldFuture::new(Future::ready(())))),
        "aaaaabbbbb"
    );
    assert_eq!(
        two_coroutines(|| boxed(Task::new(|cb: ResultCallback| cb.call(())))),
        "aaaaabbbbb"
    );
}

#[test]
fn moment_interleaves() {
    assert_eq!(two_coroutines(|| boxed(moment())), "ababababab");
}

#[test]
fn with_timeout_fires() {
    let got = run(|io_loop| {
        let t0 = io_loop.time();
        let first = carry();
        let f2 = first.clone();
        gen::coroutine(
            script()
                .then(|_| wait(with_timeout(ms(100), sleep(ms(1000)))))
                .then(move |r| {
                    first.put((r.unwrap_err().kind(), since(t0)));
                    // The late result of the abandoned point is dropped
                    // quietly: let it arrive before the test ends.
                    wait(sleep(ms(2000)))
                })
                .then(move |_| done(f2.take())),
        )
    });
    assert_eq!(got, (ErrorKind::Timeout, ms(100)));
}

#[test]
fn with_timeout_does_not_fire_when_the_point_wins() {
    let (io_loop, t0) = {
        let clock = ManualClock::new();
        let io_loop = IOLoop::with_clock(Clock::Manual(clock)).unwrap();
        let t0 = io_loop.time();
        (io_loop, t0)
    };
    let got = io_loop
        .run_sync(
            || {
                gen::coroutine(
                    script()
                        .then(|_| wait(with_timeout(ms(100), task_after(10, 5i64))))
                        .then(|r| done(val::<i64>(r)?)),
                )
            },
            None,
        )
        .unwrap();
    assert_eq!(got, 5);
    assert_eq!(io_loop.time() - t0, ms(10));
    assert_eq!(io_loop.timer_stats().pending, 0);

    // A point that fails in time throws its own error, not a Timeout.
    let err = io_loop
        .run_sync(
            || {
                gen::coroutine(
                    script::<()>()
                        .then(|_| {
                            wait(with_timeout(
                                ms(100),
                                YieldFuture::new(future_after::<()>(
                                    10,
                                    Err(Error::new(ErrorKind::Io, "refused")),
                                )),
                            ))
                        })
                        .then(|r| {
                            r?;
                            done(())
                        }),
                )
            },
            None,
        )
        .unwrap_err();
    assert_eq!((err.kind(), err.message()), (ErrorKind::Io, "refused"));
    assert_eq!(io_loop.timer_stats().pending, 0);
    io_loop.close();
}

// ----- callback misuse, values -------------------------------------------------

#[test]
fn callback_called_twice_second_is_ignored_and_logged() {
    let (result, unhandled) = manual().allow_unhandled_errors().try_run(|_| {
        let first = carry();
        let f2 = first.clone();
        gen::coroutine(
            script()
                .then(|_| {
                    wait(Task::new(|cb: ResultCallback| {
                        let again = cb.clone();
                        cb.call(1);
                        IOLoop::current().call_later(ms(5), move || again.call(2));
                    }))
                })
                .then(move |r| {
                    first.put(val::<i32>(r)?);
                    // Let the second call happen while we wait for something else.
                    wait(sleep(ms(10)))
                })
                .then(move |_| done(f2.take())),
        )
    });
    assert_eq!(result.unwrap(), 1);
    assert_eq!(unhandled.len(), 1, "{unhandled:?}");
    assert!(unhandled[0].message().contains("twice"), "{}", unhandled[0]);
}

#[test]
fn callback_dropped_uncalled_throws_callback_dropped() {
    // Dropped at once by the task's function.
    let kind = run(|_| {
        gen::coroutine(
            script()
                .then(|_| wait(Task::new(drop::<ResultCallback>)))
                .then(|r| done(r.unwrap_err().kind())),
        )
    });
    assert_eq!(kind, ErrorKind::CallbackDropped);

    // Dropped later: its timeout is removed before it runs.
    let got = run(|io_loop| {
        let t0 = io_loop.time();
        gen::coroutine(
            script()
                .then(|_| {
                    wait(Task::new(|cb: ResultCallback| {
                        let l = IOLoop::current();
                        let handle = l.call_later(ms(50), move || cb.call(1));
                        let l2 = l.clone();
                        l.call_later(ms(10), move || {
                            l2.remove_timeout(handle);
                        });
                    }))
                })
                .then(move |r| done((r.unwrap_err().kind(), since(t0)))),
        )
    });
    assert_eq!(got, (ErrorKind::CallbackDropped, ms(10)));

    // A Callback's callback dropped: its Wait gets the error.
    let kind = run(|_| {
        gen::coroutine(
            script()
                .then(|_| wait(Callback::new("k")))
                .then(|r| {
                    drop(val::<ResultCallback>(r)?);
                    wait(Wait::new("k"))
                })
                .then(|r| done(r.unwrap_err().kind())),
        )
    });
    assert_eq!(kind, ErrorKind::CallbackDropped);
}

#[test]
fn wrong_type_is_a_type_mismatch_naming_both_types() {
    let future = gen::coroutine(
        script::<String>()
            .then(|_| wait(task_after(0, 5u8)))
            .then(|r| done(val::<String>(r)?)),
    );
    let err = future.error().unwrap();
    assert_eq!(err.kind(), ErrorKind::TypeMismatch);
    assert!(
        err.message().contains("u8") && err.message().contains("String"),
        "{err}"
    );
}

// ----- scale -------------------------------------------------------------------

#[test]
fn a_million_ready_yields_do_not_grow_the_stack() {
    const N: u64 = 1_000_000;
    // Alternately an already-done future and a Task that calls back at once.
    let future = gen::coroutine(gen::from_fn(0u64, |n: &mut u64, input| {
        match input {
            Resume::Start => {}
            Resume::Value(v) => match v.downcast::<u64>() {
                Ok(got) if got == *n => {}
                Ok(got) => return Step::Return(Err(Error::other(format!("{got} != {n}")))),
                Err(err) => return Step::Return(Err(err)),
            },
            Resume::Error(err) => return Step::Return(Err(err)),
        }
        if *n == N {
            return Step::Return(Ok(*n));
        }
        *n += 1;
        let n = *n;
        if n % 2 == 0 {
            YieldFuture::new(Future::ready(n)).into()
        } else {
            Task::new(move |cb: ResultCallback| cb.call(n)).into()
        }
    }));
    assert_eq!(future.result().unwrap(), N);
}

#[test]
fn ten_thousand_sleeping_coroutines() {
    const N: u64 = 10_000;
    let got = manual().timeout(Duration::from_secs(60)).run(|io_loop| {
        let t0 = io_loop.time();
        let futures = (0..N)
            .map(|i| {
                gen::coroutine(script().then(move |_| wait(sleep(ms(1 + i % 100)))).then(
                    move |r| {
                        val::<()>(r)?;
                        done(i * 3)
                    },
                ))
            })
            .collect();
        let all = join(futures);
        gen::coroutine(
            script()
                .then(move |_| wait(YieldFuture::new(all)))
                .then(move |r| done((val::<Vec<u64>>(r)?, since(t0)))),
        )
    });
    assert_eq!(got.0, (0..N).map(|i| i * 3).collect::<Vec<_>>());
    assert_eq!(got.1, ms(100));
}

// ----- WaitIterator ------------------------------------------------------------

#[test]
fn wait_iterator_in_completion_order_with_current_index() {
    let got = run(|_| {
        let futures = vec![
            future_after(30, Ok("a")),
            future_after(10, Ok("b")),
            Future::ready("c"),
            future_after(20, Err(Error::other("d failed"))),
        ];
        let mut it = WaitIterator::new(futures);
        let mut seen: Vec<String> = Vec::new();
        gen::coroutine(gen::from_fn((), move |_, input| {
            match input {
                Resume::Start => {}
                Resume::Value(v) => match v.downcast::<(usize, &str)>() {
                    Ok((i, s)) => {
                        assert_eq!(it.current_index(), Some(i));
                        seen.push(format!("{i}:{s}"));
                    }
                    Err(err) => return Step::Return(Err(err)),
                },
                Resume::Error(err) => {
                    seen.push(format!("{}!{}", it.current_index().unwrap(), err.message()))
                }
            }
            if it.done() {
                Step::Return(Ok(seen.clone()))
            } else {
                it.next().into()
            }
        }))
    });
    assert_eq!(got, ["2:c", "1:b", "3!d failed", "0:a"]);
}

#[test]
fn wait_iterator_of_done_futures_in_index_order() {
    let futures = vec![Future::ready(10), Future::ready(11), Future::ready(12)];
    let mut it = WaitIterator::new(futures);
    let future = gen::coroutine(gen::from_fn(
        Vec::new(),
        move |seen: &mut Vec<(usize, i32)>, input| {
            if let Resume::Value(v) = input {
                match v.downcast() {
                    Ok(pair) => seen.push(pair),
                    Err(err) => return Step::Return(Err(err)),
                }
            }
            if it.done() {
                Step::Return(Ok(std::mem::take(seen)))
            } else {
                it.next().into()
            }
        },
    ));
    assert_eq!(future.result().unwrap(), [(0, 10), (1, 11), (2, 12)]);
}

#[test]
fn wait_iterator_of_nothing_is_done() {
    let it = WaitIterator::<u8>::new(Vec::new());
    assert!(it.done());
    assert_eq!(it.current_index(), None);
}

#[test]
fn a_chain_of_ten_thousand_coroutines_does_not_overflow() {
    // Each coroutine waits for the one before it; completing the first
    // resumes them all, one inside the other's completion, but the Runner
    // bounds the nesting, so the stack does not grow with the chain.
    const DEPTH: u32 = 10_000;
    let leaf = Future::new();
    let mut top = leaf.clone();
    for _ in 0..DEPTH {
        let inner = top;
        top = gen::coroutine(
            script()
                .then(move |_| wait(YieldFuture::new(inner)))
                .then(|r| done(val::<u32>(r)? + 1)),
        );
    }
    assert!(!top.done());
    leaf.set_result(0);
    // Still all done before `set_result` returned, with no loop at all.
    assert_eq!(top.result().unwrap(), DEPTH);
}

#[test]
fn multi_completing_in_order_costs_linear_time() {
    // Children finishing first-to-last: a Multi that rescanned its ready
    // children on every result would make this quadratic.
    const N: u64 = 20_000;
    let got = run(|_| {
        gen::coroutine(
            script()
                .then(|_| {
                    wait(Multi::new(
                        (0..N).map(|i| boxed(task_after(1 + i / 8, i))).collect(),
                    ))
                })
                .then(|r| done(values::<u64>(r)?.into_iter().sum::<u64>())),
        )
    });
    assert_eq!(got, N * (N - 1) / 2);
}

// ----- custom points, loop shutdown -------------------------------------------

/// A yield point of our own: `n` callbacks, the i-th called after i ms with
/// i; the result is their sum.
struct Sum {
    n: u32,
    keys: Vec<Key>,
}

impl YieldPoint for Sum {
    fn start(&mut self, runner: &Runner) -> Result<(), Error> {
        for i in 0..self.n {
            let key = runner.fresh_key();
            runner.register_callback(key.clone())?;
            let cb = runner.result_callback(key.clone());
            IOLoop::current().call_later(ms(i.into()), move || cb.call(i));
            self.keys.push(key);
        }
        assert_eq!(runner.pending_callbacks(), self.n as usize);
        Ok(())
    }
    fn is_ready(&self, runner: &Runner) -> bool {
        self.keys
            .iter()
            .all(|key| runner.is_ready(key).unwrap_or(true))
    }
    fn get_result(&mut self, runner: &Runner) -> Result<Value, Error> {
        let mut sum = 0;
        for key in &self.keys {
            sum += runner.pop_result(key)?.downcast::<u32>()?;
        }
        Ok(Value::new(sum))
    }
}

#[test]
fn a_custom_yield_point() {
    let got = run(|_| {
        gen::coroutine(
            script()
                .then(|_| {
                    wait(Sum {
                        n: 5,
                        keys: Vec::new(),
                    })
                })
                .then(|r| done(val::<u32>(r)?)),
        )
    });
    assert_eq!(got, 10);
}

#[test]
fn closing_the_loop_fails_a_waiting_generator_with_callback_dropped() {
    let io_loop = IOLoop::with_clock(Clock::Manual(ManualClock::new())).unwrap();
    let waiting = carry();
    let w = waiting.clone();
    let err = io_loop
        .run_sync(
            move || {
                w.put(gen::coroutine(
                    script()
                        .then(|_| wait(sleep(ms(1000))))
                        .then(|r| done(r.unwrap_err().kind())),
                ));
                Future::<()>::new()
            },
            Some(ms(10)),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    let waiting = waiting.take();
    assert!(!waiting.done());
    // The sleep's timeout, and the callback in it, are dropped: the
    // generator hears of it instead of waiting forever.
    io_loop.close();
    assert_eq!(waiting.result().unwrap(), ErrorKind::CallbackDropped);
}

#[test]
fn resume_into_result_reads_start_value_and_error() {
    assert_eq!(Resume::Start.into_result::<u8>().unwrap(), None);
    assert_eq!(
        Resume::Value(Value::new(7u8)).into_result::<u8>().unwrap(),
        Some(7)
    );
    let err = Resume::Value(Value::new(7u8))
        .into_result::<String>()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TypeMismatch);
    let thrown = Error::other("thrown");
    let err = Resume::Error(thrown.clone())
        .into_result::<u8>()
        .unwrap_err();
    assert!(err.ptr_eq(&thrown));
}

#[test]
fn wait_iterator_next_after_done_throws_instead_of_hanging() {
    let outcome = run(|_| {
        let mut it = WaitIterator::new(vec![Future::ready(1u8)]);
        let mut calls = 0;
        gen::coroutine(gen::from_fn((), move |_, input| {
            calls += 1;
            match (calls, input.into_result::<(usize, u8)>()) {
                (1, Ok(None)) | (2, Ok(Some(_))) => it.next().into(),
                (_, result) => Step::Return(Ok(result.map(|_| ()))),
            }
        }))
    });
    assert_eq!(outcome.unwrap_err().kind(), ErrorKind::InvalidState);
}

/// `?` works inside a `from_fn` step: the step returns
/// `Result<Step<T>, Error>`, and an `Err` finishes the generator with it.
#[test]
fn question_mark_inside_a_from_fn_step() {
    use squall::gen::{Resume, Step};
    let io_loop = IOLoop::new().unwrap();
    let sum = io_loop
        .run_sync(
            || {
                gen::coroutine(gen::from_fn(0u32, |total, input: Resume| {
                    if let Some(n) = input.into_result::<u32>()? {
                        *total += n;
                    }
                    if *total >= 3 {
                        return Ok(Step::Return(Ok(*total)));
                    }
                    Ok(Step::wait(gen::Task::new(|cb: gen::ResultCallback| {
                        cb.call(1u32)
                    })))
                }))
            },
            None,
        )
        .unwrap();
    assert_eq!(sum, 3);
    // A thrown error and a wrong type both end it through `?`.
    let err = io_loop
        .run_sync(
            || {
                gen::coroutine(gen::from_fn((), |_, input: Resume| {
                    match input.into_result::<u32>()? {
                        None => Ok(Step::wait(gen::Task::new(|cb: gen::ResultCallback| {
                            cb.call("not a number")
                        }))),
                        Some(n) => Ok(Step::Return(Ok(n))),
                    }
                }))
            },
            None,
        )
        .unwrap_err();
    assert_eq!(err.kind(), squall::ErrorKind::TypeMismatch);
}
