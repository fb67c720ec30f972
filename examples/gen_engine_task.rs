//! The second seed article: `@gen.engine` and `yield gen.Task(...)`, with the
//! Runner's every step spelled out.
//!
//! The Python it ports:
//! ```python
//! class Handler(RequestHandler):
//!     @web.asynchronous
//!     @gen.engine
//!     def get(self):
//!         response = yield gen.Task(self.method_while)
//!         print "response", response
//!         later = yield gen.Task(self.method_later)
//!         print "later", later
//!         self.finish()
//!
//!     def method_while(self, callback):
//!         callback(1)
//!
//!     def method_later(self, callback):
//!         IOLoop.current().add_timeout(time.time() + 0.05, partial(callback, 2))
//! ```
//! Python writes a generator and the interpreter keeps its state between
//! `yield`s. Rust has no stable generators, so the state machine is written by
//! hand: an enum whose variants are the places the function can be suspended.
//!
//! Run: `cargo run --release --example gen_engine_task`
//! (`RUST_LOG=squall::gen=trace` shows the Runner's own log of each step.)

use std::time::{Duration, Instant};

use squall::gen::{self, Generator, ResultCallback, Resume, Step, Task};
use squall::{Error, Future, IOLoop};

/// `method_while`: calls its callback at once, synchronously, inside
/// `Task::start`. The Runner is still on the stack then: it stores the result
/// and its running loop picks it up (no recursion).
fn method_while(callback: ResultCallback) {
    callback.call(1i32);
}

/// `method_later`: the callback comes from a timeout, 50 ms later, from the loop.
fn method_later(callback: ResultCallback) {
    IOLoop::current().call_later(Duration::from_millis(50), move || callback.call(2i32));
}

/// The suspended states of `get()`.
enum Get {
    /// Not started: the body runs up to its first `yield`.
    Start,
    /// Suspended at `response = yield gen.Task(self.method_while)`.
    AwaitingWhile,
    /// Suspended at `later = yield gen.Task(self.method_later)`.
    AwaitingLater { response: i32, since: Instant },
    /// Returned.
    Finished,
}

impl Generator for Get {
    type Output = String;

    fn resume(&mut self, input: Resume) -> Step<String> {
        // An error thrown in at any yield: Python would raise it at the
        // `yield`; we have no try block around it, so we return it.
        let value = match input {
            Resume::Error(err) => {
                *self = Get::Finished;
                return Step::Return(Err(err));
            }
            Resume::Value(value) => Some(value),
            Resume::Start => None,
        };
        match std::mem::replace(self, Get::Finished) {
            Get::Start => {
                // Step 1. The Runner calls resume(Start) (Python: send(None)).
                // We yield a Task. The Runner then calls Task::start, which
                // makes a fresh key, registers it in `pending_callbacks`, and
                // calls method_while(callback). That calls back at once: the
                // Runner stores `results[key] = 1`; being already running, it
                // just returns to its loop, sees the Task is ready, pops the
                // result and resumes us.
                println!("get: yield gen.Task(method_while)");
                *self = Get::AwaitingWhile;
                Task::new(method_while).into()
            }
            Get::AwaitingWhile => {
                // Step 2. resume(Value(1)) (Python: send(1)).
                let response: i32 = match value.map(|v| v.downcast()) {
                    Some(Ok(r)) => r,
                    Some(Err(err)) => return Step::Return(Err(err)),
                    None => unreachable!("resumed with a value"),
                };
                println!("response {response}");
                // We yield the second Task. Its callback is not called during
                // start, so `is_ready` says no and Runner::run returns: the
                // generator is suspended; control goes back to the IOLoop.
                println!("get: yield gen.Task(method_later)");
                *self = Get::AwaitingLater {
                    response,
                    since: Instant::now(),
                };
                Task::new(method_later).into()
            }
            Get::AwaitingLater { response, since } => {
                // Step 3. 50 ms later the timeout calls the callback:
                // Runner::set_result stores the value and calls run(), which
                // finds the Task ready and resumes us (Python: send(2)).
                let later: i32 = match value.map(|v| v.downcast()) {
                    Some(Ok(r)) => r,
                    Some(Err(err)) => return Step::Return(Err(err)),
                    None => unreachable!("resumed with a value"),
                };
                println!("later {later} (after {:?})", since.elapsed());
                // Step 4. We return (Python: StopIteration). The Runner checks
                // that no registered callback was left unconsumed (that would
                // be a LeakedCallback error), deactivates its stack context,
                // and calls the final callback: here, `finish()`.
                Step::Return(Ok(format!("finished: {response} + {later}")))
            }
            Get::Finished => Step::Return(Err(Error::other("resumed after finishing"))),
        }
    }
}

fn main() -> Result<(), Error> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let io_loop = IOLoop::new()?;
    let outcome = io_loop.run_sync(
        || {
            // `@web.asynchronous` keeps the response open until finish();
            // `gen::engine` runs the generator and calls `finish` at the end.
            let finished = Future::new();
            let f = finished.clone();
            gen::engine(Get::Start, move |result: Result<String, Error>| {
                println!("self.finish() with {result:?}");
                f.complete(result)
            });
            println!("engine returned: the handler is suspended, the loop is free");
            finished
        },
        Some(Duration::from_secs(5)),
    )?;
    assert_eq!(outcome, "finished: 1 + 2");

    // The article's warning: a generator does not make blocking code
    // concurrent. A Task whose function blocks blocks the whole loop.
    let io_loop = IOLoop::new()?;
    io_loop.set_blocking_log_threshold(Some(Duration::from_millis(20)));
    let started = Instant::now();
    io_loop.run_sync(
        || {
            gen::coroutine(gen::from_fn(false, |asked: &mut bool, _input| {
                if std::mem::replace(asked, true) {
                    return Step::Return(Ok(()));
                }
                Task::new(|cb: ResultCallback| {
                    IOLoop::current().add_callback(move || {
                        std::thread::sleep(Duration::from_millis(100)); // a slow query
                        cb.call(());
                    });
                })
                .into()
            }))
        },
        None,
    )?;
    println!(
        "a Task that blocked: the whole loop stood still for {:?} (the loop logged a warning)",
        started.elapsed()
    );
    Ok(())
}
