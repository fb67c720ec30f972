//! Time on the loop's clock: `sleep`, `moment`, `with_timeout`.

use super::*;

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
