//! `Multi`: of tasks and futures, failures, keyed, empty, large.

use super::*;

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
