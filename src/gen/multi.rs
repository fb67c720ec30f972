//! Waiting for many futures at once, typed: Tornado's `gen.multi` (and
//! `multi_future`), asyncio's `gather`.
//!
//! ```
//! use std::time::Duration;
//! use squall::{gen, Future, IOLoop};
//!
//! // Tornado: a, b = yield [fetch(1), fetch(2)]
//! //   or     a, b = await asyncio.gather(fetch(1), fetch(2))
//! fn fetch(n: u32) -> Future<u32> {
//!     gen::coroutine(async move {
//!         gen::sleep(Duration::from_millis(5)).await?;
//!         Ok(n * 10)
//!     })
//! }
//!
//! let io_loop = IOLoop::new()?;
//! let both = io_loop.run_sync(|| gen::multi(vec![fetch(1), fetch(2)]), None)?;
//! assert_eq!(both, [10, 20]);
//! # Ok::<(), squall::Error>(())
//! ```
//!
//! The children run side by side whatever the order they are waited in: a
//! squall [`Future`] stands for work already started (a coroutine runs to
//! its first wait before `coroutine` returns), so `multi` only collects.
//! That is also why futures of *different* types need no helper: await
//! each in turn (`let a = fa.await?; let b = fb.await?;`) once all of them
//! are started, and the total wait is the longest one, not the sum.

use std::collections::HashMap;
use std::hash::Hash;

use super::runner::report;
use crate::error::Error;
use crate::future::Future;

/// A future of every child's value, in the children's order, once all of
/// them are done (Tornado's `gen.multi(list)`, asyncio's `gather`).
///
/// As in Tornado, it waits for *every* child, even after one failed; the
/// result is then the error of the first failed child in list order, and
/// the other children's errors are reported as unhandled (logged, or given
/// to [`testing::capture_unhandled`](crate::testing::capture_unhandled)),
/// never lost. (asyncio's `gather` fails as soon as one child fails;
/// `gen::timeout` around `multi` bounds the wait.) The values are moved out
/// of the children, so `T` need not be `Clone`; a clone of a child looking
/// afterwards sees its value taken.
///
/// The future is completed on the loop that completes the last child; an
/// empty list gives a future already done with an empty `Vec`.
pub fn multi<T: 'static>(children: Vec<Future<T>>) -> Future<Vec<T>> {
    if children.is_empty() {
        return Future::ready(Vec::new());
    }
    super::coroutine(async move {
        let mut values = Vec::with_capacity(children.len());
        let mut first: Option<Error> = None;
        for child in children {
            match child.await {
                Ok(value) => values.push(value),
                Err(err) if first.is_none() => first = Some(err),
                Err(err) => report(err, "squall::gen::multi (another child failed)"),
            }
        }
        match first {
            Some(err) => Err(err),
            None => Ok(values),
        }
    })
}

/// [`multi`] with keys: a future of a map from each key to its child's
/// value (Tornado's `gen.multi(dict)`, `yield {"a": fa, "b": fb}`).
///
/// A key given twice keeps the later child's value (Python's dict literal
/// does the same); both children are still waited for.
pub fn multi_keyed<K, T>(children: Vec<(K, Future<T>)>) -> Future<HashMap<K, T>>
where
    K: Hash + Eq + 'static,
    T: 'static,
{
    let (keys, futures): (Vec<K>, Vec<Future<T>>) = children.into_iter().unzip();
    let all = multi(futures);
    let keyed = Future::new();
    let k = keyed.clone();
    all.add_done_callback(move |all: &Future<Vec<T>>| {
        let result = all
            .take_result()
            .map(|values| keys.into_iter().zip(values).collect::<HashMap<K, T>>());
        k.try_complete(result);
    });
    keyed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::ioloop::{Clock, ManualClock};
    use crate::testing::capture_unhandled;
    use crate::IOLoop;
    use std::time::Duration;

    fn later<T: 'static>(io_loop: &IOLoop, ms: u64, value: Result<T, Error>) -> Future<T> {
        let future = Future::new();
        let f = future.clone();
        io_loop.call_later(Duration::from_millis(ms), move || f.complete(value));
        future
    }

    #[test]
    fn values_come_in_list_order_and_the_waits_overlap() {
        // On a manual clock the loop's time is exact: it jumps from one
        // deadline to the next.
        let io_loop = IOLoop::with_clock(Clock::Manual(ManualClock::new())).unwrap();
        let l = io_loop.clone();
        let started = io_loop.time();
        let got = io_loop
            .run_sync(
                move || {
                    multi(vec![
                        later(&l, 40, Ok("slow")),
                        later(&l, 1, Ok("fast")),
                        later(&l, 20, Ok("middle")),
                    ])
                },
                Some(Duration::from_secs(5)),
            )
            .unwrap();
        assert_eq!(got, ["slow", "fast", "middle"]);
        // Side by side: the longest wait, not the sum (61 ms).
        assert_eq!(io_loop.time() - started, Duration::from_millis(40));
    }

    #[test]
    fn empty_and_already_done_children() {
        let io_loop = IOLoop::new().unwrap();
        let empty = multi(Vec::<Future<u8>>::new());
        assert_eq!(empty.result().unwrap(), Vec::<u8>::new());
        let got = io_loop
            .run_sync(|| multi(vec![Future::ready(1), Future::ready(2)]), None)
            .unwrap();
        assert_eq!(got, [1, 2]);
    }

    #[test]
    fn waits_for_every_child_then_fails_with_the_first_error_in_list_order() {
        let io_loop = IOLoop::new().unwrap();
        let l = io_loop.clone();
        let slow_ok = later(&io_loop, 30, Ok(1u8));
        let s = slow_ok.clone();
        let (result, unhandled) = capture_unhandled(|| {
            io_loop.run_sync(
                move || {
                    multi(vec![
                        s,
                        // Fails last, but comes first among the failures.
                        later(&l, 20, Err(Error::new(ErrorKind::Closed, "first"))),
                        later(&l, 1, Err(Error::new(ErrorKind::Timeout, "second"))),
                    ])
                },
                Some(Duration::from_secs(5)),
            )
        });
        let err = result.unwrap_err();
        assert_eq!(err.message(), "first");
        // Still waited for the slow success.
        assert!(slow_ok.done());
        assert_eq!(unhandled.len(), 1);
        assert_eq!(unhandled[0].message(), "second");
    }

    #[test]
    fn keyed_children_and_values_that_are_not_clone() {
        struct NotClone(u32);
        let io_loop = IOLoop::new().unwrap();
        let l = io_loop.clone();
        let got = io_loop
            .run_sync(
                move || {
                    multi_keyed(vec![
                        ("a", later(&l, 5, Ok(NotClone(1)))),
                        ("b", Future::ready(NotClone(2))),
                    ])
                },
                Some(Duration::from_secs(5)),
            )
            .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got["a"].0, 1);
        assert_eq!(got["b"].0, 2);
        let l = io_loop.clone();
        let err = io_loop
            .run_sync(
                move || {
                    multi_keyed(vec![(
                        1,
                        later::<u8>(&l, 1, Err(Error::new(ErrorKind::Closed, "gone"))),
                    )])
                },
                Some(Duration::from_secs(5)),
            )
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Closed);
    }
}
