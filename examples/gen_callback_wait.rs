//! Fan out, then join: `gen.Callback` / `gen.Wait` / `gen.WaitAll`, and `gen.Multi`.
//!
//! Three "timed operations" (timeouts of 300, 100 and 200 ms standing in for
//! three slow services) run at once, twice over: first with labelled
//! callbacks and `WaitAll`, Tornado 2/3 style; then as a `Multi` of `Task`s,
//! which is what yielding a list does in Tornado. Either way the join takes
//! as long as the slowest operation, not the sum.
//!
//! Run: `cargo run --release --example gen_callback_wait`

use std::time::{Duration, Instant};

use squall::gen::{self, Callback, Multi, ResultCallback, Resume, Step, Task, WaitAll, YieldPoint};
use squall::{Error, IOLoop};

const OPERATIONS: [(&str, u64); 3] = [("users", 300), ("orders", 100), ("prices", 200)];

/// A timed operation: calls back with its name after `ms` milliseconds.
fn operation(name: &'static str, ms: u64, callback: ResultCallback) {
    IOLoop::current().call_later(Duration::from_millis(ms), move || {
        println!("  {name} answered after {ms} ms");
        callback.call(format!("{name}: ok"));
    });
}

fn values_to_strings(value: gen::Value) -> Result<Vec<String>, Error> {
    value
        .downcast::<Vec<gen::Value>>()?
        .into_iter()
        .map(|v| v.downcast::<String>())
        .collect()
}

/// Tornado 3:
/// ```python
/// for name, ms in OPERATIONS:
///     operation(name, ms, callback=(yield gen.Callback(name)))
/// results = yield gen.WaitAll([name for name, ms in OPERATIONS])
/// ```
/// The state is how many points were yielded so far: after `Callback` number
/// `n` (1..=3), the value we are resumed with is that key's callback; after
/// the `WaitAll`, it is the joined results.
fn with_callbacks() -> impl gen::Generator<Output = Vec<String>> {
    gen::from_fn(0usize, |yielded: &mut usize, input| {
        match input {
            Resume::Start => {}
            Resume::Error(err) => return Step::Return(Err(err)),
            Resume::Value(value) if *yielded <= OPERATIONS.len() => {
                let (name, ms) = OPERATIONS[*yielded - 1];
                match value.downcast::<ResultCallback>() {
                    Ok(callback) => operation(name, ms, callback),
                    Err(err) => return Step::Return(Err(err)),
                }
            }
            Resume::Value(value) => return Step::Return(values_to_strings(value)),
        }
        *yielded += 1;
        match OPERATIONS.get(*yielded - 1) {
            Some((name, _)) => Callback::new(*name).into(),
            None => WaitAll::new(OPERATIONS.iter().map(|(name, _)| *name)).into(),
        }
    })
}

/// Tornado 3: `results = yield [gen.Task(operation, name, ms) for name, ms in OPERATIONS]`
fn with_multi() -> impl gen::Generator<Output = Vec<String>> {
    gen::from_fn((), |_, input| match input {
        Resume::Start => {
            let tasks: Vec<Box<dyn YieldPoint>> = OPERATIONS
                .iter()
                .map(|&(name, ms)| {
                    Box::new(Task::new(move |cb: ResultCallback| operation(name, ms, cb)))
                        as Box<dyn YieldPoint>
                })
                .collect();
            Multi::new(tasks).into()
        }
        Resume::Value(value) => Step::Return(values_to_strings(value)),
        Resume::Error(err) => Step::Return(Err(err)),
    })
}

/// Runs one fan-out generator to completion and checks the join overlapped.
fn join<G>(io_loop: &IOLoop, label: &str, gen: G) -> Result<(), Error>
where
    G: gen::Generator<Output = Vec<String>>,
{
    println!("{label}:");
    let started = Instant::now();
    let results = io_loop.run_sync(|| gen::coroutine(gen), Some(Duration::from_secs(5)))?;
    let took = started.elapsed();
    println!("  joined in {took:?}: {results:?}");
    assert_eq!(results, ["users: ok", "orders: ok", "prices: ok"]);
    assert!(
        took < Duration::from_millis(500),
        "the operations did not overlap"
    );
    Ok(())
}

fn main() -> Result<(), Error> {
    env_logger::init();
    let io_loop = IOLoop::new()?;
    join(&io_loop, "Callback + WaitAll", with_callbacks())?;
    join(&io_loop, "Multi of Tasks", with_multi())
}
