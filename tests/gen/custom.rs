//! Custom yield points, the loop closing under a waiting generator,
//! `Resume`, `?` inside a step.

use super::*;

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
