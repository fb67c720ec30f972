//! Stack contexts: the behaviour of Tornado's `stack_context_test.py` (v4.5),
//! the routing rules of `squall::stack_context`, and the first seed article's
//! case end to end (a call with a timeout, failing into its `fail_callback`).
//!
//! One test binary, a module per concept (`capture`, `nesting`,
//! `not_catching`, `guards`, `wrap`, `panics`, `tornado`, `article`); the
//! helpers they share are here.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use squall::ioloop::{Clock, ManualClock};
use squall::stack_context::{
    raise, wrap, wrap1, Deactivate, ExceptionStackContext, NullContext, StackContext,
};
use squall::testing::capture_unhandled;
use squall::{Error, ErrorKind, Events, Future, IOLoop, PeriodicCallback, TimeoutHandle};

mod article;
mod capture;
mod guards;
mod nesting;
mod not_catching;
mod panics;
mod tornado;
mod wrap;

type Log = Rc<RefCell<Vec<String>>>;

fn new_log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

fn push(log: &Log, entry: impl Into<String>) {
    log.borrow_mut().push(entry.into());
}

fn entries(log: &Log) -> Vec<String> {
    log.borrow().clone()
}

/// An exception context that logs `"{name}: {message}"` and answers `handled`.
fn catcher(log: &Log, name: &'static str, handled: bool) -> ExceptionStackContext {
    let log = log.clone();
    ExceptionStackContext::new(move |err: &Error| {
        push(&log, format!("{name}: {}", err.message()));
        handled
    })
}

/// Logs `+name` when entered and `-name` when the guard is dropped.
fn tracer(log: &Log, name: &'static str) -> StackContext {
    struct Exit(Log, &'static str);
    impl Drop for Exit {
        fn drop(&mut self) {
            push(&self.0, format!("-{}", self.1));
        }
    }
    let log = log.clone();
    StackContext::new(move || {
        push(&log, format!("+{name}"));
        Exit(log.clone(), name)
    })
}

/// Tornado's test helper: a context that keeps a list of the active context
/// names, and checks on exit that it is the innermost.
fn named(active: &Log, name: &'static str) -> StackContext {
    struct Pop(Log, &'static str);
    impl Drop for Pop {
        fn drop(&mut self) {
            let top = self.0.borrow_mut().pop();
            assert_eq!(top.as_deref(), Some(self.1), "contexts exited out of order");
        }
    }
    let active = active.clone();
    StackContext::new(move || {
        push(&active, name);
        Pop(active.clone(), name)
    })
}

fn fail(message: &'static str) -> impl FnOnce() -> Result<(), Error> {
    move || Err(Error::other(message))
}

fn panicking(message: &'static str) -> impl FnOnce() {
    move || panic!("{message}")
}

fn raising(err: Error) -> impl FnOnce() {
    move || raise(err)
}

/// Runs the loop until something calls `stop`; fails the test after 5 s.
fn run(io_loop: &IOLoop) {
    let timed_out = Rc::new(Cell::new(false));
    let (t, l) = (timed_out.clone(), io_loop.clone());
    let guard = NullContext::run(|| {
        io_loop.call_later(Duration::from_secs(5), move || {
            t.set(true);
            l.stop();
        })
    });
    io_loop.start().unwrap();
    io_loop.remove_timeout(guard);
    assert!(!timed_out.get(), "the test's loop did not stop within 5 s");
}

/// Schedules a stop after everything queued so far (and a little more) ran.
fn stop_soon(io_loop: &IOLoop) {
    let l = io_loop.clone();
    NullContext::run(|| io_loop.call_later(Duration::from_millis(20), move || l.stop()));
}

fn new_loop() -> IOLoop {
    IOLoop::new().unwrap()
}
