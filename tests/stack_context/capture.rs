//! Every scheduling API captures the stack context: callbacks, timeouts,
//! fd handlers, done callbacks, `add_future`, futures a callback returns,
//! `PeriodicCallback`, and a chain of callbacks.

use super::*;

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
