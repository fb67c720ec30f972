//! Property test of the generator runner (issue 11): random trees of
//! `Multi` / `Task` / `sleep` / failing tasks give the results a direct
//! computation predicts: the sum of the leaves, or the first failure in
//! order; the loop time taken (every child of a `Multi` is waited for, even
//! after a failure); and the failures logged as unhandled (all but the first
//! of each `Multi`).

use std::time::Duration;

use proptest::prelude::*;
use squall::gen::{
    self, sleep, Multi, ResultCallback, Resume, Step, Task, Value, YieldFuture, YieldPoint,
};
use squall::ioloop::{Clock, ManualClock};
use squall::testing::AsyncTest;
use squall::{Error, Future, IOLoop};

#[derive(Clone, Debug)]
enum Node {
    /// A `Task` whose callback gets `value` (or fails) after `delay` ms.
    Leaf { delay: u64, value: Result<i64, u32> },
    /// `gen::sleep(delay)`, then 0.
    Sleep(u64),
    /// A coroutine waiting on a `Multi` of the children, returning their sum.
    Multi(Vec<Node>),
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        4 => (0u64..30, -100i64..100).prop_map(|(delay, v)| Node::Leaf { delay, value: Ok(v) }),
        1 => (0u64..30, 0u32..1000).prop_map(|(delay, e)| Node::Leaf { delay, value: Err(e) }),
        1 => (0u64..30).prop_map(Node::Sleep),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop::collection::vec(inner, 0..6).prop_map(Node::Multi)
    })
}

/// The direct computation: (result, time in ms, errors logged).
fn predict(node: &Node) -> (Result<i64, String>, u64, usize) {
    match node {
        Node::Leaf { delay, value } => (value.map_err(|e| format!("fail {e}")), *delay, 0),
        Node::Sleep(delay) => (Ok(0), *delay, 0),
        Node::Multi(children) => {
            let mut sum = Ok(0i64);
            let (mut time, mut logged, mut failures) = (0u64, 0usize, 0usize);
            for child in children {
                let (r, t, l) = predict(child);
                time = time.max(t);
                logged += l;
                match r {
                    Ok(v) => sum = sum.map(|s| s + v),
                    Err(e) => {
                        failures += 1;
                        if sum.is_ok() {
                            sum = Err(e);
                        }
                    }
                }
            }
            (sum, time, logged + failures.saturating_sub(1))
        }
    }
}

fn point(node: &Node) -> Box<dyn YieldPoint> {
    match node.clone() {
        Node::Leaf { delay, value } => Box::new(Task::new(move |cb: ResultCallback| {
            let finish = move || match value {
                Ok(v) => cb.call(v),
                Err(e) => cb.fail(Error::other(format!("fail {e}"))),
            };
            if delay == 0 {
                finish();
            } else {
                IOLoop::current().call_later(Duration::from_millis(delay), finish);
            }
        })),
        node => Box::new(YieldFuture::new(run(node))),
    }
}

/// A coroutine computing `node` (a `Sleep` or a `Multi`; a leaf is wrapped).
fn run(node: Node) -> Future<i64> {
    let mut node = Some(node);
    gen::coroutine(gen::from_fn((), move |_, input: Resume| match input {
        Resume::Start => match node.take().expect("started once") {
            Node::Sleep(delay) => Step::wait(sleep(Duration::from_millis(delay))),
            Node::Multi(children) => Step::wait(Multi::new(children.iter().map(point).collect())),
            leaf => Step::Yield(point(&leaf)),
        },
        Resume::Value(v) => Step::Return(sum(v)),
        Resume::Error(err) => Step::Return(Err(err)),
    }))
}

/// A Multi's list of values summed; a leaf's i64; a sleep's anything (0).
fn sum(v: Value) -> Result<i64, Error> {
    match v.downcast::<Vec<Value>>() {
        Ok(values) => values.into_iter().map(|v| v.downcast::<i64>()).sum(),
        Err(_) => Ok(0),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn trees_give_the_predicted_results(children in prop::collection::vec(node(), 0..6)) {
        let root = Node::Multi(children);
        let (want, want_time, want_logged) = predict(&root);
        let (got, logged) = AsyncTest::new()
            .clock(Clock::Manual(ManualClock::new()))
            .allow_unhandled_errors()
            .try_run(move |io_loop| {
                let t0 = io_loop.time();
                let l = io_loop.clone();
                let out = Future::new();
                let o = out.clone();
                run(root).add_done_callback(move |f: &Future<i64>| {
                    let _ = o.set_result((f.take_result(), l.time() - t0));
                });
                out
            });
        let (result, elapsed) = got.unwrap();
        prop_assert_eq!(result.map_err(|e| e.message().to_owned()), want);
        prop_assert_eq!(elapsed, Duration::from_millis(want_time));
        prop_assert_eq!(logged.len(), want_logged, "{:?}", logged);
    }
}
