//! Property test of the Runner: random trees of Multi / Task / sleep /
//! failing tasks / nested coroutines / `with_timeout` / explicit keys
//! (`Callback` + `Wait` / `WaitAll`) give the result and
//! the finishing time (on a `ManualClock`) that a direct computation over the
//! tree predicts.

use std::time::Duration;

use proptest::prelude::*;
use squall::gen::{self, Multi, ResultCallback, Resume, Step, Task, YieldFuture, YieldPoint};
use squall::ioloop::{Clock, ManualClock};
use squall::{Error, ErrorKind, IOLoop};

#[derive(Clone, Debug)]
enum Node {
    /// A Task whose callback is called with the value after `ms` (0: at
    /// once, from inside the Task's function).
    Value(i64, u64),
    /// A Task whose callback fails with error `code` after `ms`.
    Fail(u32, u64),
    /// A Task whose function itself returns an error (thrown in at once).
    FailStart(u32),
    /// `gen::sleep(ms)`; counts as 0.
    Sleep(u64),
    /// `gen::moment()`; counts as 0.
    Moment,
    /// A nested coroutine yielding a Multi of its children, returning their
    /// sum (or the first error in order).
    Multi(Vec<Node>),
    /// A coroutine yielding its children one after another, summing them;
    /// the first error ends it.
    Seq(Vec<Node>),
    /// A coroutine that yields `gen::Callback(i)` for each (value, ms),
    /// has each callback called with its value after ms (0: at once, while
    /// the runner is busy), then waits with `WaitAll` (or one `Wait` after
    /// another) and returns the sum: Tornado 2's explicit keys.
    Keyed(Vec<(i64, u64)>, bool),
    /// `gen::with_timeout(ms + 0.5 ms, child)`: the half millisecond keeps
    /// the deadline off every other timer's (the child has no timeout).
    Timeout(Box<Node>, u64),
}

/// A failure's code in the prediction: a task's, or this for a timeout.
const TIMED_OUT: u32 = u32::MAX;

fn node() -> impl Strategy<Value = Node> {
    // Timeouts wrap only trees without one, so no two deadlines tie.
    let leaf_or_timeout = prop_oneof![
        4 => leaf(),
        1 => (tree(leaf()), 0u64..6).prop_map(|(n, ms)| Node::Timeout(Box::new(n), ms)),
    ];
    tree(leaf_or_timeout)
}

fn tree(leaf: impl Strategy<Value = Node> + 'static) -> impl Strategy<Value = Node> {
    leaf.prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Node::Multi),
            prop::collection::vec(inner, 0..4).prop_map(Node::Seq),
        ]
    })
}

fn leaf() -> impl Strategy<Value = Node> {
    prop_oneof![
        4 => ((-100i64..100), (0u64..4)).prop_map(|(v, ms)| Node::Value(v, ms)),
        1 => ((0u32..1000), (0u64..4)).prop_map(|(c, ms)| Node::Fail(c, ms)),
        1 => (0u32..1000).prop_map(Node::FailStart),
        1 => (0u64..4).prop_map(Node::Sleep),
        1 => Just(Node::Moment),
        1 => (prop::collection::vec(((-100i64..100), (0u64..4)), 0..4), any::<bool>())
            .prop_map(|(v, all)| Node::Keyed(v, all)),
    ]
}

/// The prediction: the result (a failure is its code) and how long it takes
/// in microseconds.
fn predict(node: &Node) -> (Result<i64, u32>, u64) {
    match node {
        Node::Value(v, ms) => (Ok(*v), ms * 1000),
        Node::Fail(c, ms) => (Err(*c), ms * 1000),
        Node::FailStart(c) => (Err(*c), 0),
        Node::Sleep(ms) => (Ok(0), ms * 1000),
        Node::Moment => (Ok(0), 0),
        Node::Keyed(calls, _) => (
            Ok(calls.iter().map(|(v, _)| v).sum()),
            calls.iter().map(|(_, ms)| ms * 1000).max().unwrap_or(0),
        ),
        Node::Multi(children) => {
            // All start at once, and every child is waited for even after
            // one fails: the time is the longest child's.
            let all: Vec<_> = children.iter().map(predict).collect();
            let time = all.iter().map(|(_, t)| *t).max().unwrap_or(0);
            let result = all.into_iter().map(|(r, _)| r).sum::<Result<i64, u32>>();
            (result, time)
        }
        Node::Seq(children) => {
            let mut time = 0;
            let mut sum = 0;
            for child in children {
                let (r, t) = predict(child);
                time += t;
                match r {
                    Ok(v) => sum += v,
                    Err(c) => return (Err(c), time),
                }
            }
            (Ok(sum), time)
        }
        Node::Timeout(child, ms) => {
            let limit = ms * 1000 + 500;
            match predict(child) {
                (r, t) if t < limit => (r, t),
                _ => (Err(TIMED_OUT), limit),
            }
        }
    }
}

fn fail(code: u32) -> Error {
    Error::other(format!("fail<{code}>"))
}

fn code_of(err: &Error) -> u32 {
    if err.kind() == ErrorKind::Timeout {
        return TIMED_OUT;
    }
    let m = err.to_string();
    let start = m
        .find("fail<")
        .unwrap_or_else(|| panic!("not a test failure: {m}"))
        + 5;
    let end = start + m[start..].find('>').unwrap();
    m[start..end].parse().unwrap()
}

/// A yield point for `node`, whose result is an `i64` (or `()`, counting 0).
fn point(node: Node) -> Box<dyn YieldPoint> {
    match node {
        Node::Value(v, 0) => Box::new(Task::new(move |cb: ResultCallback| cb.call(v))),
        Node::Value(v, ms) => Box::new(Task::new(move |cb: ResultCallback| {
            IOLoop::current().call_later(Duration::from_millis(ms), move || cb.call(v));
        })),
        Node::Fail(c, 0) => Box::new(Task::new(move |cb: ResultCallback| cb.fail(fail(c)))),
        Node::Fail(c, ms) => Box::new(Task::new(move |cb: ResultCallback| {
            IOLoop::current().call_later(Duration::from_millis(ms), move || cb.fail(fail(c)));
        })),
        Node::FailStart(c) => {
            Box::new(Task::new(move |_cb: ResultCallback| -> Result<(), Error> {
                Err(fail(c))
            }))
        }
        Node::Sleep(ms) => Box::new(gen::sleep(Duration::from_millis(ms))),
        Node::Moment => Box::new(gen::moment()),
        Node::Keyed(calls, all) => Box::new(YieldFuture::new(gen::coroutine(keyed(calls, all)))),
        Node::Multi(_) | Node::Seq(_) => Box::new(YieldFuture::new(gen::coroutine(coro(node)))),
        Node::Timeout(child, ms) => Box::new(gen::with_timeout(
            Duration::from_millis(ms) + Duration::from_micros(500),
            BoxedPoint(point(*child)),
        )),
    }
}

/// A boxed point as an `impl YieldPoint` (for `with_timeout`).
struct BoxedPoint(Box<dyn YieldPoint>);

impl YieldPoint for BoxedPoint {
    fn start(&mut self, runner: &gen::Runner) -> Result<(), Error> {
        self.0.start(runner)
    }
    fn is_ready(&self, runner: &gen::Runner) -> bool {
        self.0.is_ready(runner)
    }
    fn get_result(&mut self, runner: &gen::Runner) -> Result<gen::Value, Error> {
        self.0.get_result(runner)
    }
}

fn as_i64(v: gen::Value) -> i64 {
    if v.is::<()>() {
        0
    } else if v.is::<gen::Value>() {
        // `with_timeout` wraps the point's value once more.
        as_i64(v.downcast::<gen::Value>().expect("a Value"))
    } else {
        v.downcast::<i64>().expect("an i64")
    }
}

/// The coroutine of a `Node::Keyed`.
fn keyed(calls: Vec<(i64, u64)>, all: bool) -> impl gen::Generator<Output = i64> {
    let n = calls.len() as i64;
    let mut registered = 0i64;
    let mut waited = 0i64;
    let mut sum = 0i64;
    let g: StepFn = Box::new(move |_, input| {
        let value = match input {
            Resume::Start => None,
            Resume::Value(v) => Some(v),
            Resume::Error(err) => return Step::Return(Err(err)),
        };
        if let Some(v) = value {
            if registered < n {
                // The answer to `Callback(registered)`: its callback.
                let cb = v.downcast::<ResultCallback>().expect("a ResultCallback");
                let (val, ms) = calls[registered as usize];
                if ms == 0 {
                    cb.call(val);
                } else {
                    IOLoop::current().call_later(Duration::from_millis(ms), move || cb.call(val));
                }
                registered += 1;
            } else if all {
                let values = v.downcast::<Vec<gen::Value>>().expect("WaitAll's Vec");
                return Step::Return(Ok(values.into_iter().map(as_i64).sum()));
            } else {
                sum += as_i64(v);
                waited += 1;
            }
        }
        if registered < n {
            Step::wait(gen::Callback::new(registered))
        } else if n == 0 || (!all && waited == n) {
            Step::Return(Ok(sum))
        } else if all {
            Step::wait(gen::WaitAll::new(0..n))
        } else {
            Step::wait(gen::Wait::new(waited))
        }
    });
    gen::from_fn((), g)
}

/// The step function of a test coroutine (one type for both shapes).
type StepFn = Box<dyn FnMut(&mut (), Resume) -> Step<i64>>;

fn coro(node: Node) -> impl gen::Generator<Output = i64> {
    match node {
        Node::Multi(children) => {
            let mut children = Some(children);
            let g: StepFn = Box::new(move |_, input| match input {
                Resume::Start => {
                    let points = children.take().unwrap().into_iter().map(point).collect();
                    Step::wait(Multi::new(points))
                }
                Resume::Value(v) => {
                    let values = v.downcast::<Vec<gen::Value>>().expect("Multi's Vec");
                    Step::Return(Ok(values.into_iter().map(as_i64).sum()))
                }
                Resume::Error(err) => Step::Return(Err(err)),
            });
            gen::from_fn((), g)
        }
        Node::Seq(children) => {
            let mut rest = children.into_iter();
            let mut sum = 0i64;
            let g: StepFn = Box::new(move |_, input| {
                match input {
                    Resume::Start => {}
                    Resume::Value(v) => sum += as_i64(v),
                    Resume::Error(err) => return Step::Return(Err(err)),
                }
                match rest.next() {
                    Some(child) => Step::Yield(point(child)),
                    None => Step::Return(Ok(sum)),
                }
            });
            gen::from_fn((), g)
        }
        leaf => coro(Node::Seq(vec![leaf])),
    }
}

fn check(tree: Node) -> Result<(), TestCaseError> {
    let (want, want_us) = predict(&tree);
    let clock = ManualClock::new();
    let io_loop = IOLoop::with_clock(Clock::Manual(clock.clone())).unwrap();
    let t0 = io_loop.time();
    let got = io_loop.run_sync(|| gen::coroutine(coro(tree)), None);
    let elapsed = io_loop.time() - t0;
    io_loop.close();
    match (&got, want) {
        (Ok(v), Ok(w)) => prop_assert_eq!(*v, w),
        (Err(e), Err(c)) => prop_assert_eq!(code_of(e), c),
        _ => prop_assert!(false, "got {:?}, predicted {:?}", got, want),
    }
    prop_assert_eq!(elapsed, Duration::from_micros(want_us));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn trees_give_the_predicted_result_and_time(tree in node()) {
        check(tree)?;
    }
}
