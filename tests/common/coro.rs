//! Helpers for the coroutine tests (generators, greenlets, locks, queues):
//! a manual-clock test loop, points and futures that complete later, and
//! timed scripts. Everything runs on a `ManualClock`, so "later" costs no
//! real time.

use std::time::{Duration, Instant};

use squall::gen::{ResultCallback, Task, Value, YieldPoint};
use squall::ioloop::{Clock, ManualClock};
use squall::testing::AsyncTest;
use squall::{Error, Future, IOLoop};

use super::ms;

/// A test on a fresh loop with a manual clock.
pub fn manual() -> AsyncTest {
    AsyncTest::new().clock(Clock::Manual(ManualClock::new()))
}

/// Runs `body` on a manual-clock loop; fails on any unhandled error.
pub fn run<T: 'static>(body: impl FnOnce(&IOLoop) -> Future<T>) -> T {
    manual().run(body)
}

/// A yield point, boxed for a `Multi` or a list.
pub fn boxed(point: impl YieldPoint) -> Box<dyn YieldPoint> {
    Box::new(point)
}

/// A task whose callback is called with `value` after `delay` ms (at once
/// for 0).
pub fn task_after<T: 'static>(delay: u64, value: T) -> Task {
    Task::new(move |cb: ResultCallback| {
        if delay == 0 {
            cb.call(value);
        } else {
            IOLoop::current().call_later(ms(delay), move || cb.call(value));
        }
    })
}

/// A future completed with `value` after `delay` ms on the current loop.
pub fn future_after<T: 'static>(delay: u64, value: Result<T, Error>) -> Future<T> {
    let future = Future::new();
    let f = future.clone();
    IOLoop::current().call_later(ms(delay), move || {
        f.try_complete(value);
    });
    future
}

/// The values of a `Vec<Value>` (what a `Multi` gives), as `T`s.
pub fn values_of<T: 'static>(value: Value) -> Result<Vec<T>, Error> {
    value
        .downcast::<Vec<Value>>()?
        .into_iter()
        .map(Value::downcast)
        .collect()
}

/// Loop time elapsed since `t0`.
pub fn since(t0: Instant) -> Duration {
    IOLoop::current().time() - t0
}

/// One step of a timed script.
pub type Action = Box<dyn FnOnce()>;

/// A script step, boxed.
pub fn action(f: impl FnOnce() + 'static) -> Action {
    Box::new(f)
}

/// Runs each step at its time (ms from now, on the loop's clock); the
/// future is done when the last step in the list has run (give it the
/// latest time).
pub fn at_times(io_loop: &IOLoop, steps: Vec<(u64, Action)>) -> Future<()> {
    let done = Future::new();
    let n = steps.len();
    for (i, (t, step)) in steps.into_iter().enumerate() {
        let d = done.clone();
        io_loop.call_later(ms(t), move || {
            step();
            if i + 1 == n {
                d.try_set_result(());
            }
        });
    }
    done
}

/// Only `AsyncTest`'s own deadline may be pending: every timeout of `what`
/// (a lock, a queue) is gone.
pub fn assert_only_test_deadline(io_loop: &IOLoop, what: &str) {
    assert_eq!(io_loop.timer_stats().pending, 1, "a {what} timeout leaked");
}
