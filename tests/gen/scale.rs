//! Scale: a million ready yields, many sleeping coroutines, long chains,
//! a large Multi completing in order.

use super::*;

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
