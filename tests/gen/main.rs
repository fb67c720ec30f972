//! Generator-style coroutines: the behaviour of Tornado 3's `gen_test.py`
//! (`gen.engine`, `gen.Task`, `Callback`/`Wait`, `Multi`, ...) through
//! squall's public API, plus the properties a Rust port has to add (no stack
//! growth for ready yields, typed values, dropped callbacks).
//!
//! Everything timed runs on a `ManualClock`: the loop jumps to the next
//! deadline when idle, so the tests are exact and fast.

#[path = "../common/mod.rs"]
mod common;

mod basics;
mod custom;
mod futures;
mod keys;
mod misuse;
mod multi;
mod points;
mod scale;
mod wait_iterator;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use common::coro::{boxed, future_after, manual, run, since, task_after};
use common::ms;
use squall::gen::{
    self, moment, sleep, with_timeout, Callback, Generator, Key, Multi, ResultCallback, Resume,
    Runner, Step, Task, Value, Wait, WaitAll, WaitIterator, YieldFuture, YieldPoint,
};
use squall::ioloop::{Clock, ManualClock};
use squall::stack_context::ExceptionStackContext;
use squall::testing::capture_unhandled;
use squall::{Error, ErrorKind, Future, IOLoop};

// ----- helpers ---------------------------------------------------------------

/// A shared, ordered record of what happened.
#[derive(Clone, Default)]
struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    fn push(&self, entry: impl Into<String>) {
        self.0.borrow_mut().push(entry.into());
    }
    fn get(&self) -> Vec<String> {
        self.0.borrow().clone()
    }
    fn joined(&self) -> String {
        self.0.borrow().concat()
    }
}

/// A value handed from one step of a script to a later one.
struct Carry<T>(Rc<RefCell<Option<T>>>);

impl<T> Clone for Carry<T> {
    fn clone(&self) -> Self {
        Carry(self.0.clone())
    }
}

fn carry<T>() -> Carry<T> {
    Carry(Rc::new(RefCell::new(None)))
}

impl<T> Carry<T> {
    fn put(&self, value: T) {
        *self.0.borrow_mut() = Some(value);
    }
    fn take(&self) -> T {
        self.0.borrow_mut().take().expect("nothing carried")
    }
}

/// What a script step is given: the last point's value, or its error.
type Outcome = Result<Value, Error>;
type StepFn<T> = Box<dyn FnOnce(Outcome) -> Result<Step<T>, Error>>;

/// A generator written as a list of steps, one per resumption, so a test
/// reads top to bottom like the Python generator it mirrors. A step returns
/// `wait(point)` or `done(value)`; `?` on an error finishes the generator
/// with it (an uncaught exception).
struct Script<T> {
    steps: std::collections::VecDeque<StepFn<T>>,
}

fn script<T: 'static>() -> Script<T> {
    Script {
        steps: Default::default(),
    }
}

impl<T: 'static> Script<T> {
    fn then(mut self, step: impl FnOnce(Outcome) -> Result<Step<T>, Error> + 'static) -> Self {
        self.steps.push_back(Box::new(step));
        self
    }
}

impl<T: 'static> Generator for Script<T> {
    type Output = T;
    fn resume(&mut self, input: Resume) -> Step<T> {
        let outcome = match input {
            Resume::Start => Ok(Value::unit()),
            Resume::Value(v) => Ok(v),
            Resume::Error(err) => Err(err),
        };
        match self.steps.pop_front() {
            Some(step) => step(outcome).unwrap_or_else(|err| Step::Return(Err(err))),
            None => Step::Return(Err(Error::other("script resumed after its last step"))),
        }
    }
}

fn wait<T>(point: impl YieldPoint) -> Result<Step<T>, Error> {
    Ok(Step::wait(point))
}

fn done<T>(value: T) -> Result<Step<T>, Error> {
    Ok(Step::Return(Ok(value)))
}

/// The value of an outcome, as a `T`.
fn val<T: 'static>(outcome: Outcome) -> Result<T, Error> {
    outcome?.downcast()
}

/// Joins coroutines' futures with a `Multi`: the values in order.
fn join<T: 'static>(futures: Vec<Future<T>>) -> Future<Vec<T>> {
    gen::coroutine(
        script()
            .then(move |_| {
                wait(Multi::new(
                    futures
                        .into_iter()
                        .map(|f| boxed(YieldFuture::new(f)))
                        .collect(),
                ))
            })
            .then(|r| {
                let values: Vec<Value> = val(r)?;
                done(
                    values
                        .into_iter()
                        .map(Value::downcast::<T>)
                        .collect::<Result<Vec<T>, Error>>()?,
                )
            }),
    )
}

/// Values of a `Vec<Value>` result, as `T`s.
fn values<T: 'static>(outcome: Outcome) -> Result<Vec<T>, Error> {
    val::<Vec<Value>>(outcome)?
        .into_iter()
        .map(Value::downcast)
        .collect()
}
