//! Stack contexts: the behaviour of Tornado's `stack_context_test.py` (v4.5),
//! the routing rules of `squall::stack_context`, and the first seed article's
//! case end to end (a call with a timeout, failing into its `fail_callback`).

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

// ----- helpers ---------------------------------------------------------------

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

// ----- every scheduling API captures the context -------------------------------

/// Schedules a failing callback with `schedule` inside an exception context,
/// runs the loop, and checks that the error came back to the handler, once.
fn assert_routed(schedule: impl FnOnce(&IOLoop)) {
    let io_loop = new_loop();
    let log = new_log();
    let ((), unhandled) = capture_unhandled(|| {
        let l = io_loop.clone();
        catcher(&log, "handler", true).run(|| schedule(&l));
        stop_soon(&io_loop);
        run(&io_loop);
    });
    assert_eq!(entries(&log), ["handler: boom"]);
    assert!(unhandled.is_empty(), "{unhandled:?}");
}

#[test]
fn add_callback_error_reaches_handler() {
    assert_routed(|l| l.add_callback(fail("boom")));
}

#[test]
fn add_callback_panic_reaches_handler() {
    assert_routed(|l| l.add_callback(panicking("boom")));
}

#[test]
fn timeouts_error_reaches_handler() {
    assert_routed(|l| {
        l.add_timeout(Duration::from_millis(1), fail("boom"));
    });
    assert_routed(|l| {
        l.call_later(Duration::from_millis(1), fail("boom"));
    });
    assert_routed(|l| {
        l.call_at(l.time() + Duration::from_millis(1), fail("boom"));
    });
}

#[test]
fn add_handler_error_reaches_handler_on_each_call() {
    let io_loop = new_loop();
    let log = new_log();
    let (a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let a = Rc::new(a);
    let calls = Rc::new(Cell::new(0));
    let ((), unhandled) = capture_unhandled(|| {
        let (l, a2, calls2) = (io_loop.clone(), a.clone(), calls.clone());
        catcher(&log, "handler", true).run(|| {
            io_loop.add_handler(
                a.as_raw_fd(),
                move |_fd, events: Events| {
                    assert!(events.is_readable());
                    let mut byte = [0u8; 1];
                    (&*a2).read_exact(&mut byte).unwrap();
                    calls2.set(calls2.get() + 1);
                    if calls2.get() == 2 {
                        l.remove_handler(a2.as_raw_fd());
                        l.stop();
                    }
                    Err::<(), _>(Error::other(format!("boom {}", byte[0])))
                },
                Events::READ,
            )
        });
        // Written outside the context: what counts is where the handler was added.
        b.write_all(&[1]).unwrap();
        io_loop.call_later(Duration::from_millis(10), move || {
            (&b).write_all(&[2]).unwrap();
        });
        run(&io_loop);
    });
    assert_eq!(entries(&log), ["handler: boom 1", "handler: boom 2"]);
    assert_eq!(io_loop.handler_count(), 0);
    assert!(unhandled.is_empty(), "{unhandled:?}");
}

#[test]
fn done_callback_error_reaches_handler() {
    // The future is completed later, from a callback with no context at all.
    let future = Future::<u32>::new();
    assert_routed(|l| {
        future.add_done_callback(|f: &Future<u32>| {
            assert_eq!(f.result().unwrap(), 7);
            Err::<(), _>(Error::other("boom"))
        });
        let f = future.clone();
        l.spawn_callback(move || f.set_result(7));
    });
}

#[test]
fn add_future_error_reaches_handler() {
    let future = Future::<u32>::new();
    assert_routed(|l| {
        l.add_future(&future, |_: &Future<u32>| {
            Err::<(), _>(Error::other("boom"))
        });
        let f = future.clone();
        NullContext::run(|| l.call_later(Duration::from_millis(1), move || f.set_result(1)));
    });
}

#[test]
fn late_failure_of_a_returned_future_reaches_handler() {
    assert_routed(|l| {
        let l2 = l.clone();
        l.add_callback(move || {
            let future = Future::<()>::new();
            let f = future.clone();
            NullContext::run(|| {
                l2.call_later(Duration::from_millis(1), move || {
                    f.set_error(Error::other("boom"))
                })
            });
            future
        });
    });
}

#[test]
fn periodic_callback_error_reaches_handler_on_each_run() {
    let io_loop = new_loop();
    io_loop.make_current();
    let log = new_log();
    let runs = Rc::new(Cell::new(0));
    let (r, l) = (runs.clone(), io_loop.clone());
    let pc = PeriodicCallback::new(
        move || {
            r.set(r.get() + 1);
            if r.get() == 3 {
                l.stop();
            }
            Err::<(), _>(Error::other(format!("tick {}", r.get())))
        },
        Duration::from_millis(2),
    )
    .unwrap();
    let ((), unhandled) = capture_unhandled(|| {
        catcher(&log, "handler", true).run(|| pc.start());
        run(&io_loop);
    });
    pc.stop();
    IOLoop::clear_current();
    assert_eq!(
        entries(&log),
        ["handler: tick 1", "handler: tick 2", "handler: tick 3"]
    );
    assert!(unhandled.is_empty(), "{unhandled:?}");
}

#[test]
fn synchronous_error_in_run_reaches_handler() {
    let log = new_log();
    let ((), unhandled) = capture_unhandled(|| {
        catcher(&log, "handler", true).run(fail("sync"));
        catcher(&log, "handler", true).run(raising(Error::other("raised")));
    });
    assert_eq!(entries(&log), ["handler: sync", "handler: raised"]);
    assert!(unhandled.is_empty());
}

#[test]
fn contexts_follow_a_chain_of_callbacks() {
    // Tornado's HTTPStackContextTest: part1 -> part2 -> part3 raises, and the
    // context entered around part1 still catches it.
    let io_loop = new_loop();
    let log = new_log();
    let l = io_loop.clone();
    catcher(&log, "request", true).run(|| {
        let l2 = l.clone();
        l.add_callback(move || {
            let l3 = l2.clone();
            l2.add_callback(move || {
                l3.call_later(Duration::from_millis(1), fail("test exception"));
            });
        });
    });
    stop_soon(&io_loop);
    run(&io_loop);
    assert_eq!(entries(&log), ["request: test exception"]);
}

// ----- nesting ----------------------------------------------------------------

#[test]
fn inner_handler_sees_the_error_first() {
    let io_loop = new_loop();
    let log = new_log();
    let l = io_loop.clone();
    catcher(&log, "outer", true).run(|| {
        catcher(&log, "inner", true).run(|| l.add_callback(fail("boom")));
    });
    stop_soon(&io_loop);
    run(&io_loop);
    assert_eq!(entries(&log), ["inner: boom"]);
}

#[test]
fn false_from_the_inner_handler_passes_the_error_outward() {
    let io_loop = new_loop();
    let log = new_log();
    let l = io_loop.clone();
    catcher(&log, "outer", true).run(|| {
        catcher(&log, "middle", false).run(|| {
            catcher(&log, "inner", false).run(|| l.add_callback(fail("boom")));
        });
    });
    stop_soon(&io_loop);
    run(&io_loop);
    assert_eq!(
        entries(&log),
        ["inner: boom", "middle: boom", "outer: boom"]
    );
}

#[test]
fn nobody_handling_means_logged_once() {
    let io_loop = new_loop();
    let log = new_log();
    let ((), unhandled) = capture_unhandled(|| {
        let l = io_loop.clone();
        catcher(&log, "outer", false).run(|| {
            catcher(&log, "inner", false).run(|| l.add_callback(fail("boom")));
        });
        stop_soon(&io_loop);
        run(&io_loop);
    });
    assert_eq!(entries(&log), ["inner: boom", "outer: boom"]);
    assert_eq!(unhandled.len(), 1);
    assert_eq!(unhandled[0].message(), "boom");
}

#[test]
fn an_error_raised_by_a_handler_replaces_it_and_goes_outward() {
    let io_loop = new_loop();
    let log = new_log();
    let l = io_loop.clone();
    catcher(&log, "outer", true).run(|| {
        ExceptionStackContext::new(|err: &Error| {
            raise(Error::new(
                ErrorKind::Timeout,
                format!("wrapped {}", err.message()),
            ))
        })
        .run(|| l.add_callback(fail("boom")));
    });
    stop_soon(&io_loop);
    run(&io_loop);
    assert_eq!(entries(&log), ["outer: wrapped boom"]);
}

#[test]
fn a_handler_runs_under_the_contexts_outside_it() {
    // Guards outside the handler's context are entered around it, the ones
    // inside are not; a callback the handler schedules reports outward.
    let io_loop = new_loop();
    let log = new_log();
    let l = io_loop.clone();
    catcher(&log, "outer", true).run(|| {
        tracer(&log, "a").run(|| {
            let (log2, l2) = (log.clone(), l.clone());
            ExceptionStackContext::new(move |err: &Error| {
                push(&log2, format!("inner: {}", err.message()));
                l2.add_callback(fail("from the handler"));
                true
            })
            .run(|| tracer(&log, "b").run(|| l.add_callback(fail("boom"))));
        });
    });
    log.borrow_mut().clear();
    stop_soon(&io_loop);
    run(&io_loop);
    assert_eq!(
        entries(&log),
        [
            // The callback, under a and b.
            "+a",
            "+b",
            "-b",
            "-a",
            // Its error, at the inner handler: a is entered again, b is not.
            "+a",
            "inner: boom",
            "-a",
            // The handler's own callback, captured under outer and a.
            "+a",
            "-a",
            "outer: from the handler",
        ]
    );
}

// ----- what does not catch ----------------------------------------------------

#[test]
fn a_context_exited_before_scheduling_does_not_catch() {
    let io_loop = new_loop();
    let log = new_log();
    let ((), unhandled) = capture_unhandled(|| {
        catcher(&log, "handler", true).run(|| ());
        io_loop.add_callback(fail("boom"));
        stop_soon(&io_loop);
        run(&io_loop);
    });
    assert!(entries(&log).is_empty());
    assert_eq!(unhandled.len(), 1);
}

#[test]
fn null_context_spawn_callback_and_remote_cut_the_chain() {
    let io_loop = new_loop();
    let log = new_log();
    let ((), unhandled) = capture_unhandled(|| {
        let l = io_loop.clone();
        catcher(&log, "handler", true).run(|| {
            NullContext::run(|| l.add_callback(fail("null context")));
            l.spawn_callback(fail("spawned"));
            l.remote()
                .add_callback(|| Err::<(), _>(Error::other("remote")))
                .unwrap();
            // Back in the context after NullContext::run.
            l.add_callback(fail("caught"));
        });
        stop_soon(&io_loop);
        run(&io_loop);
    });
    assert_eq!(entries(&log), ["handler: caught"]);
    let mut messages: Vec<_> = unhandled.iter().map(|e| e.message().to_owned()).collect();
    messages.sort();
    assert_eq!(messages, ["null context", "remote", "spawned"]);
}

#[test]
fn deactivate_stops_routing() {
    let io_loop = new_loop();
    let log = new_log();
    let ((), unhandled) = capture_unhandled(|| {
        let l = io_loop.clone();
        let deactivate: Deactivate =
            catcher(&log, "handler", true).run(|| l.add_callback(fail("after")));
        assert!(deactivate.is_active());
        deactivate.deactivate();
        assert!(!deactivate.is_active());
        stop_soon(&io_loop);
        run(&io_loop);
    });
    assert!(entries(&log).is_empty());
    assert_eq!(unhandled.len(), 1);
    assert_eq!(unhandled[0].message(), "after");
}

#[test]
fn a_deactivated_inner_context_passes_errors_to_the_outer_one() {
    let io_loop = new_loop();
    let log = new_log();
    let l = io_loop.clone();
    let mut inner = None;
    catcher(&log, "outer", true).run(|| {
        inner = Some(catcher(&log, "inner", true).run(|| l.add_callback(fail("boom"))));
    });
    inner.unwrap().deactivate();
    stop_soon(&io_loop);
    run(&io_loop);
    assert_eq!(entries(&log), ["outer: boom"]);
}

// ----- StackContext guards ---------------------------------------------------

#[test]
fn guards_are_entered_once_per_run_in_stack_order() {
    let io_loop = new_loop();
    let log = new_log();
    let l = io_loop.clone();
    tracer(&log, "a").run(|| {
        tracer(&log, "b").run(|| {
            let log2 = log.clone();
            l.add_callback(move || push(&log2, "one"));
            let log3 = log.clone();
            l.call_later(Duration::from_millis(1), move || push(&log3, "two"));
        })
    });
    assert_eq!(entries(&log), ["+a", "+b", "-b", "-a"]);
    log.borrow_mut().clear();
    stop_soon(&io_loop);
    run(&io_loop);
    assert_eq!(
        entries(&log),
        ["+a", "+b", "one", "-b", "-a", "+a", "+b", "two", "-b", "-a"]
    );
}

#[test]
fn guards_are_dropped_when_the_callback_panics_before_the_error_is_routed() {
    let io_loop = new_loop();
    let log = new_log();
    let l = io_loop.clone();
    catcher(&log, "handler", true).run(|| {
        tracer(&log, "a").run(|| {
            tracer(&log, "b").run(|| {
                let log2 = log.clone();
                l.add_callback(move || -> () {
                    push(&log2, "run");
                    raise(Error::other("boom"))
                });
            })
        })
    });
    log.borrow_mut().clear();
    stop_soon(&io_loop);
    run(&io_loop);
    assert_eq!(
        entries(&log),
        ["+a", "+b", "run", "-b", "-a", "handler: boom"]
    );
}

#[test]
fn a_panicking_guard_factory_is_routed_and_outer_guards_dropped() {
    let io_loop = new_loop();
    let log = new_log();
    let l = io_loop.clone();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let armed = Rc::new(Cell::new(false));
    let a2 = armed.clone();
    catcher(&log, "handler", true).run(|| {
        tracer(&log, "a").run(|| {
            StackContext::new(move || {
                if a2.get() {
                    panic!("factory failed");
                }
            })
            .run(|| l.add_callback(move || r.set(true)));
        })
    });
    armed.set(true);
    log.borrow_mut().clear();
    stop_soon(&io_loop);
    run(&io_loop);
    assert!(
        !ran.get(),
        "the callback must not run when a guard cannot be made"
    );
    assert_eq!(entries(&log), ["+a", "-a", "handler: factory failed"]);
}

#[test]
fn stack_context_run_returns_the_value_and_leaves_no_trace() {
    let log = new_log();
    let value = tracer(&log, "a").run(|| 42);
    assert_eq!(value, 42);
    assert_eq!(entries(&log), ["+a", "-a"]);
    // Nothing current any more: a wrap made now enters nothing.
    log.borrow_mut().clear();
    wrap(|| ())();
    assert!(entries(&log).is_empty());
}

// ----- wrap -------------------------------------------------------------------

#[test]
fn wrap_twice_runs_once_and_enters_guards_once() {
    let io_loop = new_loop();
    let log = new_log();
    let runs = Rc::new(Cell::new(0));
    let (r1, r2) = (runs.clone(), runs.clone());
    // Scheduled from outside the context...
    let twice = tracer(&log, "a").run(|| wrap(wrap(move || r1.set(r1.get() + 1))));
    io_loop.add_callback(twice);
    // ...and from inside it, where the loop captures the same stack again.
    let l = io_loop.clone();
    tracer(&log, "a").run(|| l.add_callback(wrap(wrap(move || r2.set(r2.get() + 1)))));
    log.borrow_mut().clear();
    stop_soon(&io_loop);
    run(&io_loop);
    assert_eq!(runs.get(), 2);
    assert_eq!(entries(&log), ["+a", "-a", "+a", "-a"]);
}

#[test]
fn wrap_twice_routes_an_error_once() {
    let io_loop = new_loop();
    let log = new_log();
    let l = io_loop.clone();
    let ((), unhandled) = capture_unhandled(|| {
        catcher(&log, "handler", false).run(|| {
            l.add_timeout(Duration::from_millis(1), wrap(wrap(fail("boom"))));
        });
        stop_soon(&io_loop);
        run(&io_loop);
    });
    assert_eq!(entries(&log), ["handler: boom"]);
    assert_eq!(unhandled.len(), 1);
}

#[test]
fn wrap_called_directly_outside_the_loop() {
    let log = new_log();
    let ((), unhandled) = capture_unhandled(|| {
        let mut callbacks = Vec::new();
        catcher(&log, "a", true).run(|| callbacks.push(wrap(fail("one"))));
        catcher(&log, "b", false).run(|| callbacks.push(wrap(fail("two"))));
        for callback in callbacks {
            callback();
        }
    });
    assert_eq!(entries(&log), ["a: one", "b: two"]);
    assert_eq!(unhandled.len(), 1, "b declined: logged, not lost");
}

#[test]
fn an_error_a_wrapped_callback_does_not_handle_goes_back_to_its_caller() {
    // A library keeps the application's (wrapped) callback and calls it from
    // a callback of its own: what the application's contexts decline, the
    // library's contexts see next, as in Tornado.
    let io_loop = new_loop();
    let log = new_log();
    let l = io_loop.clone();
    let callback = catcher(&log, "application", false).run_value(|| wrap(fail("boom")));
    let returned = Rc::new(Cell::new(false));
    let r = returned.clone();
    catcher(&log, "library", true).run(|| {
        l.add_callback(move || {
            callback();
            r.set(true);
        })
    });
    stop_soon(&io_loop);
    run(&io_loop);
    assert_eq!(entries(&log), ["application: boom", "library: boom"]);
    assert!(
        !returned.get(),
        "the error unwinds out of the library's callback"
    );
}

#[test]
fn a_wrapped_callback_called_in_its_own_context_is_a_plain_call() {
    // Its error goes back to the caller (which stops there) and is routed
    // once, by the caller's context; likewise for one wrapped under no
    // context at all (Tornado's null wrapper).
    let io_loop = new_loop();
    let log = new_log();
    let l = io_loop.clone();
    catcher(&log, "handler", true).run(|| {
        let log2 = log.clone();
        let callback = wrap(fail("same context"));
        l.add_callback(move || {
            callback();
            push(&log2, "caller went on");
        });
        let log3 = log.clone();
        let callback = NullContext::run(|| wrap(fail("no context")));
        l.add_callback(move || {
            callback();
            push(&log3, "caller went on");
        });
    });
    stop_soon(&io_loop);
    run(&io_loop);
    assert_eq!(
        entries(&log),
        ["handler: same context", "handler: no context"]
    );
}

#[test]
fn wrap1_carries_the_argument_and_the_context() {
    let io_loop = new_loop();
    let log = new_log();
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    let l = io_loop.clone();
    // A callback API that captures nothing: it stores the callback and calls
    // it from a context-less callback later.
    let lookup = |key: u32, callback: Box<dyn FnOnce(Result<u32, Error>)>| {
        l.spawn_callback(move || {
            callback(if key > 0 {
                Ok(key * 10)
            } else {
                Err(Error::other("no such key"))
            })
        });
    };
    catcher(&log, "handler", true).run(|| {
        lookup(
            4,
            Box::new(wrap1(move |r: Result<u32, Error>| {
                g.set(Some(r?));
                Ok(())
            })),
        );
        lookup(0, Box::new(wrap1(|r: Result<u32, Error>| r.map(drop))));
    });
    stop_soon(&io_loop);
    run(&io_loop);
    assert_eq!(got.get(), Some(40));
    assert_eq!(entries(&log), ["handler: no such key"]);
}

// ----- panics and unhandled errors ----------------------------------------------

#[test]
fn raised_errors_arrive_as_themselves_and_panics_as_panic_errors() {
    let io_loop = new_loop();
    let seen: Rc<RefCell<Vec<Error>>> = Rc::default();
    let s = seen.clone();
    let original = Error::new(ErrorKind::Timeout, "server too slow");
    let (o1, o2) = (original.clone(), original.clone());
    let l = io_loop.clone();
    ExceptionStackContext::new(move |err: &Error| {
        s.borrow_mut().push(err.clone());
        true
    })
    .run(|| {
        l.add_callback(raising(o1));
        l.add_callback(move || {
            if o2.kind() == ErrorKind::Timeout {
                std::panic::panic_any(o2)
            }
        });
        l.add_callback(panicking("plain panic"));
    });
    stop_soon(&io_loop);
    run(&io_loop);
    let seen = seen.borrow();
    assert_eq!(seen.len(), 3);
    assert!(seen[0].ptr_eq(&original));
    assert!(seen[1].ptr_eq(&original));
    assert_eq!(seen[2].kind(), ErrorKind::Panic);
    assert_eq!(seen[2].message(), "plain panic");
}

#[test]
fn raise_outside_a_callback_is_an_ordinary_panic() {
    let err = Error::other("nowhere to go");
    let payload =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(raising(err.clone()))).unwrap_err();
    assert!(payload.downcast::<Error>().unwrap().ptr_eq(&err));
}

#[test]
fn an_unhandled_error_is_logged_and_the_loop_keeps_serving() {
    let io_loop = new_loop();
    let served = Rc::new(Cell::new(0));
    let ((), unhandled) = capture_unhandled(|| {
        io_loop.add_callback(fail("first"));
        io_loop.add_callback(panicking("second"));
        for _ in 0..3 {
            let s = served.clone();
            io_loop.add_callback(move || s.set(s.get() + 1));
        }
        let s = served.clone();
        io_loop.call_later(Duration::from_millis(1), move || -> () {
            s.set(s.get() + 1);
            raise(Error::other("third"))
        });
        let (s, l) = (served.clone(), io_loop.clone());
        io_loop.call_later(Duration::from_millis(5), move || {
            s.set(s.get() + 1);
            l.stop();
        });
        run(&io_loop);
    });
    assert_eq!(served.get(), 5);
    let messages: Vec<_> = unhandled.iter().map(|e| e.message().to_owned()).collect();
    assert_eq!(messages, ["first", "second", "third"]);
}

// ----- Tornado's stack_context_test.py ----------------------------------------

#[test]
fn tornado_exit_library_context() {
    // A library captures the caller's context with `wrap`, then schedules its
    // own work in a context of its own; the application's callback, called
    // from there, runs with the application context innermost.
    let io_loop = new_loop();
    let active = new_log();
    let done = Rc::new(Cell::new(false));

    let library_function = {
        let (l, active) = (io_loop.clone(), active.clone());
        move |callback: Box<dyn FnOnce()>| {
            let callback = wrap(callback);
            let a = active.clone();
            named(&active, "library").run(|| {
                l.add_callback(move || {
                    assert_eq!(
                        a.borrow()[a.borrow().len() - 2..],
                        ["application", "library"]
                    );
                    callback();
                });
            });
        }
    };
    let final_callback = {
        let (l, active, done) = (io_loop.clone(), active.clone(), done.clone());
        move || {
            // As in Tornado: the full stack is [application, library,
            // application]; the application context is innermost.
            assert_eq!(*active.borrow(), ["application", "library", "application"]);
            done.set(true);
            l.stop();
        }
    };
    named(&active, "application").run(|| library_function(Box::new(final_callback)));
    run(&io_loop);
    assert!(done.get());
    assert!(active.borrow().is_empty());
}

#[test]
fn tornado_deactivate() {
    let io_loop = new_loop();
    let active = new_log();
    let deactivations: Rc<RefCell<Vec<Deactivate>>> = Rc::default();
    let (l, a, d) = (io_loop.clone(), active.clone(), deactivations.clone());
    let f5 = move || {
        assert_eq!(*a.borrow(), ["c1", "c3"]);
        l.stop();
    };
    let (l, a, d4) = (io_loop.clone(), active.clone(), d.clone());
    let f4 = move || {
        assert_eq!(*a.borrow(), ["c1", "c2", "c3"]);
        d4.borrow()[1].deactivate();
        // Deactivating does not remove a context at once...
        assert_eq!(*a.borrow(), ["c1", "c2", "c3"]);
        // ...but it is gone from the next callback.
        l.add_callback(f5);
    };
    let step = |name: &'static str, next: Box<dyn FnOnce()>| {
        let (l, a, d) = (io_loop.clone(), active.clone(), d.clone());
        move || {
            let ((), deactivate) = named(&a, name).run_deactivatable(|| l.add_callback(next));
            d.borrow_mut().push(deactivate);
        }
    };
    let f3 = step("c3", Box::new(f4));
    let f2 = step("c2", Box::new(f3));
    let f1 = step("c1", Box::new(f2));
    io_loop.add_callback(f1);
    run(&io_loop);
    assert_eq!(deactivations.borrow().len(), 3);
}

#[test]
fn tornado_deactivate_order() {
    // Deactivating the outermost, middle or innermost of three contexts.
    let active = new_log();
    let make_wrapped = || {
        NullContext::run(|| {
            let a = active.clone();
            let check = move || a.borrow().clone();
            let (((callback, d2), d1), d0) = named(&active, "c0").run_deactivatable(|| {
                named(&active, "c1").run_deactivatable(|| {
                    named(&active, "c2").run_deactivatable(|| {
                        let result = Rc::new(RefCell::new(None));
                        let r = result.clone();
                        let f = wrap(move || *r.borrow_mut() = Some(check()));
                        (f, result)
                    })
                })
            });
            (callback, [d0, d1, d2])
        })
    };
    type Seen = Rc<RefCell<Option<Vec<String>>>>;
    let call = |(f, result): (Box<dyn FnOnce()>, Seen)| {
        f();
        let got = result.borrow_mut().take();
        got.unwrap()
    };

    let ((f, r), _) = make_wrapped();
    assert_eq!(call((Box::new(f), r)), ["c0", "c1", "c2"]);
    for (which, expected) in [(0, ["c1", "c2"]), (1, ["c0", "c2"]), (2, ["c0", "c1"])] {
        let ((f, r), deactivations) = make_wrapped();
        deactivations[which].deactivate();
        assert_eq!(call((Box::new(f), r)), expected);
    }
    assert!(active.borrow().is_empty());
}

#[test]
fn tornado_isolation_nonempty() {
    // f2 is wrapped in c1 and happens to be called in c2: the callback it
    // schedules carries c1, not c2.
    let io_loop = new_loop();
    let active = new_log();
    let done = Rc::new(Cell::new(false));
    let (l, a, d) = (io_loop.clone(), active.clone(), done.clone());
    let f3 = move || {
        assert!(a.borrow().iter().any(|c| c == "c1"));
        assert!(!a.borrow().iter().any(|c| c == "c2"));
        d.set(true);
        l.stop();
    };
    let (l, a) = (io_loop.clone(), active.clone());
    let f2 = move || {
        assert!(a.borrow().iter().any(|c| c == "c1"));
        l.add_callback(f3);
    };
    let a = active.clone();
    io_loop.add_callback(move || {
        let wrapped = named(&a, "c1").run(|| wrap(f2));
        named(&a, "c2").run(wrapped);
    });
    run(&io_loop);
    assert!(done.get());
}

#[test]
fn tornado_isolation_empty() {
    // As above, with the chain started under no context at all.
    let io_loop = new_loop();
    let active = new_log();
    let done = Rc::new(Cell::new(false));
    let (l, a, d) = (io_loop.clone(), active.clone(), done.clone());
    let f3 = move || {
        assert!(a.borrow().is_empty(), "{:?}", a.borrow());
        d.set(true);
        l.stop();
    };
    let l = io_loop.clone();
    let f2 = move || l.add_callback(f3);
    let a = active.clone();
    io_loop.add_callback(move || {
        let wrapped = NullContext::run(|| wrap(f2));
        named(&a, "c2").run(wrapped);
    });
    run(&io_loop);
    assert!(done.get());
}

#[test]
fn tornado_yield_outside_with() {
    // A callback scheduled inside a context, completing a future the test
    // waits on outside it.
    let active = new_log();
    let a = active.clone();
    let seen = squall::testing::gen_test(move |io_loop| {
        let future = Future::new();
        let f = future.clone();
        let a2 = a.clone();
        named(&a, "c1").run(|| {
            io_loop.add_callback(move || f.set_result(a2.borrow().clone()));
        });
        future
    });
    assert_eq!(seen, ["c1"]);
}

// ----- the first seed article: a call with a timeout ----------------------------

type ValueCallback = Box<dyn FnOnce(String)>;

/// A client in the article's shape: a call is started inside a context that
/// turns the client's errors into `fail_callback`, and sets a timeout with
/// `add_timeout(..., wrap(on_timeout))`. Here the "server" is the other end
/// of a socket pair, driven by the test.
struct Call {
    io_loop: IOLoop,
    conn: RefCell<Option<UnixStream>>,
    timeout: Cell<Option<TimeoutHandle>>,
    server_dead: Rc<Cell<bool>>,
}

impl Call {
    /// Ends the call: removes the timeout and the handler, closes the socket.
    /// Idempotent; run on success and on every error path.
    fn finish(&self) {
        if let Some(timeout) = self.timeout.take() {
            self.io_loop.remove_timeout(timeout);
        }
        if let Some(conn) = self.conn.borrow_mut().take() {
            self.io_loop.remove_handler(conn.as_raw_fd());
        }
    }

    fn on_readable(&self, callback: &RefCell<Option<ValueCallback>>) -> Result<(), Error> {
        let mut buf = [0u8; 64];
        let n = {
            let conn = self.conn.borrow();
            let mut conn = conn.as_ref().expect("handler runs while connected");
            conn.read(&mut buf)?
        };
        if n == 0 {
            return Err(Error::new(
                ErrorKind::StreamClosed,
                "server closed the connection",
            ));
        }
        self.finish();
        let line = String::from_utf8_lossy(&buf[..n]).trim_end().to_owned();
        if let Some(callback) = callback.borrow_mut().take() {
            callback(line);
        }
        Ok(())
    }
}

fn get(
    io_loop: &IOLoop,
    conn: UnixStream,
    request_timeout: Duration,
    server_dead: Rc<Cell<bool>>,
    callback: impl FnOnce(String) + 'static,
    fail_callback: impl FnOnce(Error) + 'static,
) {
    conn.set_nonblocking(true).unwrap();
    let fd = conn.as_raw_fd();
    let call = Rc::new(Call {
        io_loop: io_loop.clone(),
        conn: RefCell::new(Some(conn)),
        timeout: Cell::new(None),
        server_dead,
    });
    // The article's `_cleanup`: end the call whatever happened, and turn the
    // client's own errors into the failure callback.
    let fail_callback = RefCell::new(Some(fail_callback));
    let c = call.clone();
    let cleanup = ExceptionStackContext::new(move |err: &Error| {
        c.finish();
        match err.kind() {
            ErrorKind::Timeout | ErrorKind::StreamClosed | ErrorKind::Io => {
                let fail = fail_callback.borrow_mut().take();
                if let Some(fail) = fail {
                    fail(err.clone());
                }
                true
            }
            _ => false,
        }
    });
    let callback: RefCell<Option<ValueCallback>> = RefCell::new(Some(Box::new(callback)));
    cleanup.run(|| -> Result<(), Error> {
        let c = call.clone();
        io_loop.add_handler(
            fd,
            move |_fd, _events| c.on_readable(&callback),
            Events::READ,
        )?;
        let c = call.clone();
        let on_timeout = move || -> () {
            c.server_dead.set(true);
            raise(Error::new(
                ErrorKind::Timeout,
                "server did not answer in time",
            ))
        };
        call.timeout
            .set(Some(io_loop.add_timeout(request_timeout, wrap(on_timeout))));
        Ok(())
    });
}

#[derive(Default)]
struct Outcome {
    values: RefCell<Vec<String>>,
    failures: RefCell<Vec<Error>>,
}

fn start_call(io_loop: &IOLoop, conn: UnixStream, dead: &Rc<Cell<bool>>) -> Rc<Outcome> {
    let outcome = Rc::new(Outcome::default());
    let (o1, o2) = (outcome.clone(), outcome.clone());
    let (l1, l2) = (io_loop.clone(), io_loop.clone());
    get(
        io_loop,
        conn,
        Duration::from_millis(200),
        dead.clone(),
        move |value| {
            o1.values.borrow_mut().push(value);
            l1.stop();
        },
        move |err| {
            o2.failures.borrow_mut().push(err);
            l2.stop();
        },
    );
    outcome
}

#[test]
fn article_timeout_fires_and_fail_callback_runs_once() {
    // On a manual clock the loop jumps straight to the deadline.
    let clock = ManualClock::new();
    let io_loop = IOLoop::with_clock(Clock::Manual(clock.clone())).unwrap();
    let (client, _server) = UnixStream::pair().unwrap();
    let dead = Rc::new(Cell::new(false));
    let t0 = io_loop.time();
    let ((), unhandled) = capture_unhandled(|| {
        let outcome = start_call(&io_loop, client, &dead);
        run(&io_loop);
        assert!(outcome.values.borrow().is_empty());
        let failures = outcome.failures.borrow();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(failures[0].kind(), ErrorKind::Timeout);
    });
    assert!(unhandled.is_empty(), "{unhandled:?}");
    assert!(io_loop.time() - t0 >= Duration::from_millis(200));
    assert!(dead.get(), "on_timeout marks the server dead");
    assert_eq!(io_loop.timer_stats().pending, 0);
    assert_eq!(io_loop.handler_count(), 0);
}

#[test]
fn article_success_leaves_no_timeout_pending() {
    let io_loop = new_loop();
    let (client, mut server) = UnixStream::pair().unwrap();
    let dead = Rc::new(Cell::new(false));
    server.write_all(b"VALUE hello\n").unwrap();
    let outcome = start_call(&io_loop, client, &dead);
    assert_eq!(io_loop.timer_stats().pending, 1);
    run(&io_loop);
    assert_eq!(*outcome.values.borrow(), ["VALUE hello"]);
    assert!(outcome.failures.borrow().is_empty());
    assert_eq!(io_loop.timer_stats().pending, 0, "the timeout was removed");
    assert_eq!(io_loop.handler_count(), 0);
    assert!(!dead.get());
}

#[test]
fn article_error_path_removes_the_timeout_too() {
    let io_loop = new_loop();
    let (client, server) = UnixStream::pair().unwrap();
    let dead = Rc::new(Cell::new(false));
    drop(server); // the server hangs up without answering
    let outcome = start_call(&io_loop, client, &dead);
    run(&io_loop);
    assert!(outcome.values.borrow().is_empty());
    let failures = outcome.failures.borrow();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].kind(), ErrorKind::StreamClosed);
    assert_eq!(io_loop.timer_stats().pending, 0, "the timeout was removed");
    assert_eq!(io_loop.handler_count(), 0);
    assert!(!dead.get());
}

#[test]
fn article_a_bug_in_the_callback_is_not_a_client_failure() {
    // The context only turns the client's own errors into fail_callback; a
    // bug (a panic) in the user's callback is cleaned up after, and logged.
    let io_loop = new_loop();
    let (client, mut server) = UnixStream::pair().unwrap();
    let dead = Rc::new(Cell::new(false));
    server.write_all(b"VALUE hello\n").unwrap();
    let failures = Rc::new(Cell::new(0));
    let ((), unhandled) = capture_unhandled(|| {
        let (l, f) = (io_loop.clone(), failures.clone());
        get(
            &io_loop,
            client,
            Duration::from_millis(200),
            dead.clone(),
            move |_value| {
                l.stop();
                panic!("bug in the user's callback");
            },
            move |_err| f.set(f.get() + 1),
        );
        run(&io_loop);
    });
    assert_eq!(failures.get(), 0);
    assert_eq!(unhandled.len(), 1);
    assert_eq!(unhandled[0].kind(), ErrorKind::Panic);
    assert_eq!(io_loop.timer_stats().pending, 0);
}

// A small extension used above: run an ExceptionStackContext and keep the
// closure's value (ExceptionStackContext::run returns the Deactivate).
trait RunValue {
    fn run_value<T: 'static>(&self, f: impl FnOnce() -> T) -> T;
}

impl RunValue for ExceptionStackContext {
    fn run_value<T: 'static>(&self, f: impl FnOnce() -> T) -> T {
        let mut value = None;
        self.run(|| value = Some(f()));
        value.expect("the closure ran")
    }
}
