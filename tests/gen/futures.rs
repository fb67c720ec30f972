//! Yielding squall Futures, done or pending, and coroutines waiting for
//! coroutines.

use super::*;

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
