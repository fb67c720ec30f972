//! Behaviour of `Future` through its public API, alone and on a loop.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use squall::stack_context::ExceptionStackContext;
use squall::testing::{capture_unhandled, gen_test};
use squall::{chain_future, Error, ErrorKind, Future, IOLoop};

use common::{drop_flag, guard, manual_loop, secs, Log};

#[test]
fn a_second_try_completion_loses_and_the_first_outcome_stays() {
    let future = Future::new();
    future.set_result(1);
    assert!(!future.try_set_result(2));
    assert!(!future.try_set_error(Error::other("late")));
    assert!(!future.try_complete(Ok(3)));
    assert_eq!(future.result().unwrap(), 1, "the first result stays");

    let failed = Future::<u8>::new();
    failed.set_error(Error::new(ErrorKind::Timeout, "first"));
    assert!(!failed.try_set_result(1));
    assert_eq!(failed.error().unwrap().message(), "first");

    // Done from the start, too.
    assert!(!Future::ready(1).try_set_result(2));
    let failed = Future::<u8>::failed("x".into());
    assert!(!failed.try_set_result(2));
    assert_eq!(failed.error().unwrap().message(), "x");
}

/// Completing a done future is a bug in the caller: a debug build panics
/// with a message that names the line, as Tornado raises InvalidStateError.
#[test]
#[cfg(debug_assertions)]
fn completing_a_done_future_again_panics_naming_the_caller_in_a_debug_build() {
    let future = Future::ready(1);
    let line = line!() + 1; // the set_result below
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| future.set_result(2)))
        .unwrap_err();
    let message = common::panic_message(panic);
    assert!(message.contains("completed twice"), "{message}");
    assert!(
        message.contains(&format!("tests/future.rs:{line}")),
        "{message}"
    );
    assert_eq!(future.result().unwrap(), 1);

    // Inside a callback the panic is caught and reported like any error:
    // the loop goes on.
    let io_loop = IOLoop::new().unwrap();
    let f = Future::<u8>::failed("first".into());
    let g = f.clone();
    io_loop.add_callback(move || g.set_error("second".into()));
    let l = io_loop.clone();
    io_loop.add_callback(move || l.stop());
    let (started, unhandled) = squall::testing::capture_unhandled(|| io_loop.start());
    started.unwrap();
    assert_eq!(unhandled.len(), 1);
    assert_eq!(unhandled[0].kind(), ErrorKind::Panic);
    assert_eq!(f.error().unwrap().message(), "first");
}

#[test]
fn a_second_set_does_not_run_the_callbacks_again() {
    let future = Future::new();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    future.add_done_callback(move |_: &Future<u8>| c.set(c.get() + 1));
    future.set_result(1);
    future.try_set_result(2);
    future.try_set_error("again".into());
    assert_eq!(calls.get(), 1);
}

#[test]
fn done_callbacks_run_in_order_and_at_once_when_done() {
    let future = Future::<&str>::new();
    let log = Log::new();
    for i in 0..5 {
        let lg = log.clone();
        future.add_done_callback(move |f: &Future<&str>| lg.push((i, f.result().unwrap())));
    }
    assert!(log.is_empty(), "nothing runs before completion");
    assert!(!future.done());
    future.set_result("v");
    assert!(future.done());
    assert_eq!(log.get(), (0..5).map(|i| (i, "v")).collect::<Vec<_>>());

    // Added to a done future: runs before add_done_callback returns.
    let lg = log.clone();
    future.add_done_callback(move |f: &Future<&str>| lg.push((5, f.result().unwrap())));
    assert_eq!(log.len(), 6);
    assert_eq!(log.get()[5], (5, "v"));
}

#[test]
fn done_callbacks_see_a_failure_too() {
    let future = Future::<u8>::new();
    let seen = Log::new();
    let s = seen.clone();
    future.add_done_callback(move |f: &Future<u8>| {
        s.push((f.done(), f.error().map(|e| e.kind()), f.result().is_err()))
    });
    future.set_error(Error::new(ErrorKind::StreamClosed, "gone"));
    assert_eq!(seen.get(), [(true, Some(ErrorKind::StreamClosed), true)]);
}

#[test]
fn failing_done_callback_is_reported_and_the_others_still_run() {
    let future = Future::<u8>::new();
    let ran = Log::new();
    let r = ran.clone();
    future.add_done_callback(move |_: &Future<u8>| {
        r.push(1);
        panic!("first done-callback panics");
    });
    let r = ran.clone();
    future.add_done_callback(move |_: &Future<u8>| {
        r.push(2);
        Err::<(), _>(Error::new(ErrorKind::InvalidArgument, "second fails"))
    });
    let r = ran.clone();
    future.add_done_callback(move |_: &Future<u8>| r.push(3));
    let ((), errors) = capture_unhandled(|| future.set_result(1));
    assert_eq!(ran.get(), [1, 2, 3]);
    let kinds: Vec<_> = errors.iter().map(Error::kind).collect();
    assert_eq!(kinds, [ErrorKind::Panic, ErrorKind::InvalidArgument]);
}

#[test]
fn done_callback_errors_go_to_the_context_captured_when_added() {
    let future = Future::<u8>::new();
    let handled = Log::new();
    let h = handled.clone();
    let ctx = ExceptionStackContext::new(move |err: &Error| {
        h.push(err.kind());
        true
    });
    let f = future.clone();
    ctx.run(move || {
        f.add_done_callback(|_: &Future<u8>| Err::<(), _>(Error::new(ErrorKind::Timeout, "t")))
    });
    // Completed outside the context: the error still goes home.
    let (_, unhandled) = capture_unhandled(|| future.set_result(0));
    assert!(unhandled.is_empty(), "{unhandled:?}");
    assert_eq!(handled.get(), [ErrorKind::Timeout]);
}

#[test]
fn done_callback_may_use_the_future_and_add_more() {
    let future = Future::<u8>::new();
    let log = Log::new();
    let lg = log.clone();
    future.add_done_callback(move |f: &Future<u8>| {
        lg.push(format!("first sees {:?}", f.result()));
        let lg2 = lg.clone();
        // Added while done: runs at once, before the next queued callback.
        f.add_done_callback(move |_: &Future<u8>| lg2.push("nested".to_owned()));
        assert!(!f.try_set_result(9));
    });
    let lg = log.clone();
    future.add_done_callback(move |_: &Future<u8>| lg.push("second".to_owned()));
    future.set_result(4);
    assert_eq!(log.get(), ["first sees Ok(4)", "nested", "second"]);
}

#[test]
fn result_take_result_and_error() {
    let pending = Future::<String>::new();
    assert_eq!(
        pending.result().unwrap_err().kind(),
        ErrorKind::InvalidState
    );
    assert_eq!(
        pending.take_result().unwrap_err().kind(),
        ErrorKind::InvalidState
    );
    assert!(pending.error().is_none());
    assert!(!pending.done(), "a failed take leaves it pending");
    pending.set_result("s".to_owned());
    assert_eq!(pending.result().unwrap(), "s");
    assert_eq!(pending.take_result().unwrap(), "s");
    assert_eq!(
        pending.take_result().unwrap_err().kind(),
        ErrorKind::InvalidState
    );
    assert_eq!(
        pending.result().unwrap_err().kind(),
        ErrorKind::InvalidState
    );
    assert!(pending.done());

    let failed = Future::<String>::failed(Error::new(ErrorKind::Timeout, "t"));
    for _ in 0..2 {
        assert_eq!(failed.take_result().unwrap_err().kind(), ErrorKind::Timeout);
    }
    assert_eq!(failed.result().unwrap_err().kind(), ErrorKind::Timeout);
    let err = failed.error().unwrap();
    assert!(
        err.ptr_eq(&failed.error().unwrap()),
        "the same error, shared"
    );
}

#[test]
fn clones_share_one_state() {
    let a = Future::<u8>::new();
    let b = a.clone();
    assert!(a.ptr_eq(&b));
    assert!(!a.ptr_eq(&Future::new()));
    b.set_result(3);
    assert_eq!(a.result().unwrap(), 3);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

#[test]
fn pending_callbacks_are_released_with_the_future() {
    let (flag, dropped) = drop_flag();
    {
        let future = Future::<u8>::new();
        future.add_done_callback(move |_: &Future<u8>| drop(flag));
    }
    assert!(dropped.get());
}

#[test]
fn chain_future_copies_the_outcome() {
    let (a, b) = (Future::new(), Future::new());
    chain_future(&a, &b);
    assert!(!b.done());
    a.set_result(5);
    assert_eq!(b.result().unwrap(), 5);

    let (c, d) = (Future::<u8>::new(), Future::new());
    chain_future(&c, &d);
    c.set_error(Error::new(ErrorKind::Timeout, "t"));
    assert_eq!(d.error().unwrap().kind(), ErrorKind::Timeout);

    // Already done source: copied at once.
    let e = Future::new();
    chain_future(&Future::ready(8), &e);
    assert_eq!(e.result().unwrap(), 8);

    // A target done first keeps its own outcome, quietly.
    let (f, g) = (Future::new(), Future::ready(1));
    chain_future(&f, &g);
    let ((), unhandled) = capture_unhandled(|| f.set_result(2));
    assert!(unhandled.is_empty(), "{unhandled:?}");
    assert_eq!(g.result().unwrap(), 1);

    // A chain of chains.
    let futures: Vec<Future<u8>> = (0..4).map(|_| Future::new()).collect();
    for w in futures.windows(2) {
        chain_future(&w[0], &w[1]);
    }
    futures[0].set_result(7);
    assert!(futures.iter().all(|f| f.result().unwrap() == 7));
}

#[test]
fn nested_completion_runs_the_callbacks_before_set_result_returns() {
    let (a, b) = (Future::<u8>::new(), Future::<u8>::new());
    let log = Log::new();
    let lg = log.clone();
    b.add_done_callback(move |_: &Future<u8>| lg.push("b's callback"));
    let (lg, b2) = (log.clone(), b.clone());
    a.add_done_callback(move |_: &Future<u8>| {
        b2.set_result(1);
        lg.push("after b.set_result");
    });
    a.set_result(0);
    assert_eq!(log.get(), ["b's callback", "after b.set_result"]);
}

#[test]
fn a_chain_of_100_000_futures_does_not_overflow_the_stack() {
    const N: usize = 100_000;
    // Through chain_future.
    let futures: Vec<Future<usize>> = (0..N).map(|_| Future::new()).collect();
    for w in futures.windows(2) {
        chain_future(&w[0], &w[1]);
    }
    futures[0].set_result(7);
    assert!(futures.iter().all(|f| f.result().unwrap() == 7));

    // Each done-callback completes the next with a new value; by the time
    // the first set_result returns, every callback has run.
    let futures: Vec<Future<usize>> = (0..N).map(|_| Future::new()).collect();
    let last = Rc::new(Cell::new(0));
    for (i, f) in futures.iter().enumerate() {
        let next = futures.get(i + 1).cloned();
        let last = last.clone();
        f.add_done_callback(move |f: &Future<usize>| {
            let v = f.result().unwrap();
            last.set(v);
            if let Some(next) = next {
                next.set_result(v + 1);
            }
        });
    }
    futures[0].set_result(0);
    assert_eq!(last.get(), N - 1);
    assert_eq!(futures[N - 1].result().unwrap(), N - 1);
}

#[test]
fn add_future_runs_on_the_next_iteration_not_inside_set_result() {
    let (io_loop, _clock) = manual_loop();
    let future = Future::<u8>::new();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    io_loop.add_future(&future, move |f: &Future<u8>| {
        assert_eq!(f.result().unwrap(), 3);
        r.set(true);
    });
    let (f, r, l) = (future.clone(), ran.clone(), io_loop.clone());
    io_loop.add_callback(move || {
        f.set_result(3);
        assert!(!r.get(), "add_future's callback ran inside set_result");
        let (r, l2) = (r.clone(), l.clone());
        l.add_callback(move || {
            assert!(r.get(), "queued first, so it ran first");
            l2.stop();
        });
    });
    let timed_out = guard(&io_loop, secs(1));
    io_loop.start().unwrap();
    assert!(!timed_out.get());
    assert!(ran.get());
    io_loop.close();
}

#[test]
fn add_future_callback_errors_are_reported() {
    let (io_loop, _clock) = manual_loop();
    let ((), errors) = capture_unhandled(|| {
        io_loop.add_future(&Future::ready(()), |_: &Future<()>| {
            Err::<(), _>(Error::new(ErrorKind::UnknownKey, "k"))
        });
        guard(&io_loop, secs(1));
        io_loop.start().unwrap();
    });
    let kinds: Vec<_> = errors.iter().map(Error::kind).collect();
    assert_eq!(kinds, [ErrorKind::UnknownKey]);
    io_loop.close();
}

#[test]
fn add_future_does_not_keep_a_dropped_loop_alive() {
    let future = Future::<u8>::new();
    let (flag, dropped) = drop_flag();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    {
        let io_loop = IOLoop::new().unwrap();
        io_loop.add_future(&future, move |_: &Future<u8>| {
            drop(flag);
            r.set(true);
        });
    }
    assert!(!dropped.get());
    // The loop is gone; completing the future must not panic or run anything.
    future.set_result(1);
    assert!(dropped.get(), "the callback was released");
    assert!(!ran.get(), "and not run");
}

#[test]
fn futures_across_the_loop_with_gen_test() {
    let value = gen_test(|io_loop| {
        let first = Future::new();
        let f = first.clone();
        io_loop.call_later(std::time::Duration::from_millis(1), move || {
            f.set_result(20)
        });
        let second = Future::new();
        let (s, l) = (second.clone(), io_loop.clone());
        l.clone().add_future(&first, move |first: &Future<u32>| {
            let v = first.result().unwrap();
            l.add_callback(move || s.set_result(v + 22));
        });
        second
    });
    assert_eq!(value, 42);
}

/// A "when done, read again" loop over futures that are already done nests
/// one `add_done_callback` per step; it must not overflow the stack.
#[test]
fn done_callback_loop_on_ready_futures_does_not_overflow() {
    fn step(remaining: Rc<Cell<u32>>) {
        if remaining.get() == 0 {
            return;
        }
        remaining.set(remaining.get() - 1);
        Future::ready(()).add_done_callback(move |_: &Future<()>| step(remaining));
    }
    let remaining = Rc::new(Cell::new(200_000));
    step(remaining.clone());
    assert_eq!(remaining.get(), 0);
}
