//! Callbacks misused (called twice, dropped uncalled) and values of the
//! wrong type.

use super::*;

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
