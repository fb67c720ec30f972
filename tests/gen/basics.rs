//! The Runner's basics: a generator with no yield, Task called at once or
//! later, errors thrown in and out, errors that reach the caller's context.

use super::*;

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
