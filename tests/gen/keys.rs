//! Callback keys: `Callback` / `Wait` / `WaitAll`, unknown keys, leaked
//! callbacks, a key used twice.

use super::*;

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
