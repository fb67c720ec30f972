//! One coroutine written three ways — an explicit generator state machine,
//! an `async` block, and a greenlet (`gen::stackful`) — run on the same
//! `Runner`, whose steps are recorded and compared.
//!
//! ```python
//! @gen.coroutine
//! def three_steps(io_loop):
//!     response = yield gen.Task(method_soon)   # calls back on the next iteration
//!     yield gen.sleep(0.005)
//!     later = yield answer_later(io_loop)       # a Future a timeout completes
//!     raise gen.Return(response + later)
//! ```
//!
//! The Runner logs each of its steps on the target `squall::gen` (what
//! `RUST_LOG=squall::gen=trace` prints). This example installs a small
//! logger that records those lines, runs each form, prints the steps side
//! by side and checks that they are the same sequence: `send`, `start yield
//! point`, `not ready: waiting`, ... `return`. An `async` block is a
//! generator the compiler wrote; each pending `.await` is a yield point,
//! exactly as each `yield` is.
//!
//! It then shows where the forms do differ: a future that is already done.
//! A generator still yields it to the Runner (`start yield point`, `send`);
//! an `async` block finds it ready inside the same poll, and a greenlet's
//! `co.wait` returns at once, so the Runner sees two steps fewer. See
//! docs/gen.md, "async/await is the Runner".
//!
//! Usage: `cargo run --features stackful --example gen_three_ways` (exits 0
//! if the sequences match, 1 if not).

use std::cell::RefCell;
use std::time::Duration;

use squall::gen::{self, Generator, ResultCallback, Resume, Step, Task, YieldFuture};
use squall::{Error, Future, IOLoop};

/// `method_soon`: calls back on the next loop iteration, so the coroutine
/// really waits.
fn method_soon(callback: ResultCallback) {
    IOLoop::current().add_callback(move || callback.call(40u32));
}

/// A future that a loop timeout completes 2 ms from now.
fn answer_later() -> Future<u32> {
    let future = Future::new();
    let f = future.clone();
    IOLoop::current().call_later(Duration::from_millis(2), move || f.set_result(2));
    future
}

/// A future already done (Tornado's `gen.maybe_future(2)`).
fn answer_now() -> Future<u32> {
    Future::ready(2)
}

/// Where the third value comes from.
type Answer = fn() -> Future<u32>;

const NAP: Duration = Duration::from_millis(5);

// ---------------------------------------------------------------------------
// 1. The explicit generator: each `yield` is a state; the locals that live
//    across a yield (`response`) are fields of the state.

enum ThreeSteps {
    Start(Answer),
    AwaitingTask(Answer),
    Sleeping { response: u32, answer: Answer },
    AwaitingFuture { response: u32 },
    Done,
}

impl Generator for ThreeSteps {
    type Output = u32;
    fn resume(&mut self, input: Resume) -> Step<u32> {
        let step = || -> Result<Step<u32>, Error> {
            Ok(match std::mem::replace(self, ThreeSteps::Done) {
                ThreeSteps::Start(answer) => {
                    *self = ThreeSteps::AwaitingTask(answer);
                    Task::new(method_soon).into()
                }
                ThreeSteps::AwaitingTask(answer) => {
                    let response = input.into_result::<u32>()?.unwrap_or_default();
                    *self = ThreeSteps::Sleeping { response, answer };
                    gen::sleep(NAP).into()
                }
                ThreeSteps::Sleeping { response, answer } => {
                    input.into_result::<()>()?;
                    *self = ThreeSteps::AwaitingFuture { response };
                    YieldFuture::new(answer()).into()
                }
                ThreeSteps::AwaitingFuture { response } => {
                    let later = input.into_result::<u32>()?.unwrap_or_default();
                    Step::Return(Ok(response + later))
                }
                ThreeSteps::Done => Step::Return(Err(Error::other("resumed after the end"))),
            })
        };
        step().unwrap_or_else(|err| Step::Return(Err(err)))
    }
}

// ---------------------------------------------------------------------------
// 2. The `async` block: the compiler writes the enum above (its states are
//    the `.await`s, its fields the locals alive across them) and its
//    `resume`, which is `poll`.

async fn three_steps_async(answer: Answer) -> Result<u32, Error> {
    let response: u32 = Task::new(method_soon).await?.downcast()?;
    gen::sleep(NAP).await?;
    let later = answer().await?;
    Ok(response + later)
}

// ---------------------------------------------------------------------------
// 3. The greenlet: straight-line code on a stack of its own; each
//    `co.yield_point` switches back to the Runner, which resumes it.

fn three_steps_greenlet(answer: Answer) -> gen::Stackful<u32> {
    gen::stackful(move |co| {
        let response: u32 = co.yield_point(Task::new(method_soon))?.downcast()?;
        co.yield_point(gen::sleep(NAP))?;
        let later = co.wait(answer())?;
        Ok(response + later)
    })
}

// ---------------------------------------------------------------------------
// Recording the Runner's steps.

thread_local! {
    static STEPS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Records the `squall::gen` lines logged on this thread; prints warnings
/// and errors from anywhere.
struct Recorder;

impl log::Log for Recorder {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.target().starts_with("squall::gen") || metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record) {
        if record.target().starts_with("squall::gen") && record.level() == log::Level::Trace {
            let line = record.args().to_string();
            let _ = STEPS.try_with(|s| s.borrow_mut().push(line));
        } else if record.level() <= log::Level::Warn {
            eprintln!("{} {}: {}", record.level(), record.target(), record.args());
        }
    }

    fn flush(&self) {}
}

/// Runs one form on a fresh loop; its result and the Runner's steps.
fn run<F: FnOnce() -> Future<u32> + 'static>(make: F) -> Result<(u32, Vec<String>), Error> {
    let io_loop = IOLoop::new()?;
    STEPS.with(|s| s.borrow_mut().clear());
    let answer = io_loop.run_sync(make, Some(Duration::from_secs(5)))?;
    io_loop.close();
    Ok((answer, STEPS.with(|s| s.take())))
}

/// Prints the three step lists side by side.
fn print_table(title: &str, forms: &[(&str, &[String])]) {
    println!("{title}");
    let rows = forms.iter().map(|(_, s)| s.len()).max().unwrap_or(0);
    print!("   #");
    for (name, _) in forms {
        print!("  {name:<22}");
    }
    println!();
    for i in 0..rows {
        print!("  {:>2}", i + 1);
        for (_, steps) in forms {
            print!("  {:<22}", steps.get(i).map(String::as_str).unwrap_or(""));
        }
        println!();
    }
    println!();
}

type Runs = [(&'static str, (u32, Vec<String>)); 3];

fn run_all(answer: Answer) -> Result<Runs, Error> {
    Ok([
        (
            "generator",
            run(move || gen::coroutine(ThreeSteps::Start(answer)))?,
        ),
        (
            "async block",
            run(move || gen::coroutine(three_steps_async(answer)))?,
        ),
        (
            "greenlet",
            run(move || gen::coroutine(three_steps_greenlet(answer)))?,
        ),
    ])
}

fn main() {
    log::set_logger(&Recorder).expect("no other logger");
    log::set_max_level(log::LevelFilter::Trace);
    if let Err(err) = check() {
        eprintln!("gen_three_ways: {err}");
        std::process::exit(1);
    }
    println!("gen_three_ways: ok");
}

fn check() -> Result<(), Error> {
    // Every point really waits: the three forms take the same steps.
    let runs = run_all(answer_later)?;
    let forms: Vec<(&str, &[String])> = runs.iter().map(|(n, (_, s))| (*n, &s[..])).collect();
    print_table(
        "Every await waits (Task called back next iteration, sleep, a Future a timeout completes):",
        &forms,
    );
    for (name, (answer, steps)) in &runs {
        if *answer != 42 {
            return Err(Error::other(format!("{name} answered {answer}, not 42")));
        }
        if steps != &runs[0].1 .1 {
            return Err(Error::other(format!(
                "{name}'s steps differ from the generator's: {steps:?} vs {:?}",
                runs[0].1 .1
            )));
        }
    }
    let waits = runs[0]
        .1
         .1
        .iter()
        .filter(|s| *s == "not ready: waiting")
        .count();
    if waits != 3 || runs[0].1 .1.last().map(String::as_str) != Some("return") {
        return Err(Error::other(format!(
            "expected three waits and a return: {:?}",
            runs[0].1 .1
        )));
    }
    println!(
        "same {} steps in all three forms; 3 waits\n",
        runs[0].1 .1.len()
    );

    // A future already done: only the generator gives it to the Runner.
    let runs = run_all(answer_now)?;
    let forms: Vec<(&str, &[String])> = runs.iter().map(|(n, (_, s))| (*n, &s[..])).collect();
    print_table(
        "The last future is already done (gen.maybe_future):",
        &forms,
    );
    let (generator, async_block, greenlet) = (&runs[0].1 .1, &runs[1].1 .1, &runs[2].1 .1);
    if async_block != greenlet {
        return Err(Error::other(format!(
            "the async block and the greenlet differ: {async_block:?} vs {greenlet:?}"
        )));
    }
    // The generator yields the done future (`start yield point`) and is sent
    // its result at once (`send`): two steps the async block keeps inside
    // its poll, and the greenlet inside `co.wait`.
    let mut expected = generator.clone();
    let last_start = expected
        .iter()
        .rposition(|s| s == "start yield point")
        .ok_or_else(|| Error::other("no start step"))?;
    expected.drain(last_start..last_start + 2);
    if async_block != &expected {
        return Err(Error::other(format!(
            "async block: expected {expected:?}, got {async_block:?}"
        )));
    }
    println!(
        "generator: {} steps; async block and greenlet: {} (the done future never left their code)",
        generator.len(),
        async_block.len()
    );
    Ok(())
}
