//! `start`, `stop`, `run_sync` and `close`: refusals, early stops, what a
//! close drops and what it ends.

use super::*;

#[test]
fn start_inside_a_running_loop_is_refused_and_the_loop_goes_on() {
    let (io_loop, _clock) = manual_loop();
    let nested: Rc<RefCell<Option<Result<(), Error>>>> = Rc::new(RefCell::new(None));
    let (n, l) = (nested.clone(), io_loop.clone());
    io_loop.add_callback(move || {
        *n.borrow_mut() = Some(l.start());
        assert!(l.is_running());
    });
    let after = Rc::new(Cell::new(false));
    let (a, l) = (after.clone(), io_loop.clone());
    io_loop.call_later(secs(1), move || {
        a.set(true);
        l.stop();
    });
    io_loop.start().unwrap();
    let nested = nested.borrow_mut().take().expect("nested start was called");
    assert_eq!(nested.unwrap_err().kind(), ErrorKind::InvalidState);
    assert!(after.get(), "the outer loop kept running");
    assert!(!io_loop.is_running());
    io_loop.close();
}

#[test]
fn stop_before_start_makes_start_return_at_once() {
    let io_loop = IOLoop::new().unwrap();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    io_loop.add_callback(move || r.set(true));
    io_loop.stop();
    io_loop.start().unwrap();
    assert!(!ran.get(), "start returned before running anything");
    // The stop was used up: the next start runs.
    let l = io_loop.clone();
    io_loop.add_callback(move || l.stop());
    io_loop.start().unwrap();
    assert!(ran.get());
    io_loop.close();
}

#[test]
fn is_running_during_start_only() {
    let io_loop = IOLoop::new().unwrap();
    assert!(!io_loop.is_running());
    let during = Rc::new(Cell::new(false));
    let (d, l) = (during.clone(), io_loop.clone());
    io_loop.add_callback(move || {
        d.set(l.is_running());
        l.stop();
    });
    io_loop.start().unwrap();
    assert!(during.get());
    assert!(!io_loop.is_running());
    io_loop.close();
}

#[test]
fn run_sync_returns_the_value_the_error_or_a_timeout() {
    let (io_loop, _clock) = manual_loop();
    let t0 = io_loop.time();

    let l = io_loop.clone();
    let value = io_loop.run_sync(
        move || {
            let future = Future::new();
            let f = future.clone();
            l.call_later(secs(1), move || f.set_result(42));
            future
        },
        Some(secs(10)),
    );
    assert_eq!(value.unwrap(), 42);
    assert_eq!(io_loop.time() - t0, secs(1));
    // The unused timeout was removed.
    assert_eq!(io_loop.timer_stats().pending, 0);

    let l = io_loop.clone();
    let err = io_loop
        .run_sync(
            move || {
                let future = Future::<u32>::new();
                let f = future.clone();
                l.call_later(secs(1), move || {
                    f.set_error(Error::new(ErrorKind::InvalidArgument, "no"))
                });
                future
            },
            None,
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);

    let before = io_loop.time();
    let err = io_loop
        .run_sync(Future::<u32>::new, Some(secs(5)))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(io_loop.time() - before, secs(5));

    // Done at once: no loop iteration needed, and no stop left behind.
    assert_eq!(
        io_loop.run_sync(|| Future::ready("now"), None).unwrap(),
        "now"
    );
    assert_eq!(
        io_loop
            .run_sync(|| Future::<()>::failed("failed".into()), None)
            .unwrap_err()
            .kind(),
        ErrorKind::Other
    );
    let l = io_loop.clone();
    let value = io_loop.run_sync(
        move || {
            let future = Future::new();
            let f = future.clone();
            l.add_callback(move || f.set_result(7));
            future
        },
        None,
    );
    assert_eq!(value.unwrap(), 7);

    // A panicking body.
    let err = io_loop
        .run_sync(|| -> Future<()> { panic!("body panics") }, None)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panic);
    io_loop.close();
}

#[test]
fn run_sync_makes_the_loop_current_and_refuses_a_running_or_closed_loop() {
    let (io_loop, _clock) = manual_loop();
    let l = io_loop.clone();
    let nested = io_loop
        .run_sync(
            move || {
                assert!(IOLoop::current().ptr_eq(&l));
                let future = Future::new();
                let (f, l2) = (future.clone(), l.clone());
                l.add_callback(move || {
                    let nested = l2.run_sync(|| Future::ready(1), None);
                    f.set_result(nested.map(|_| ()).map_err(|e| e.kind()))
                });
                future
            },
            None,
        )
        .unwrap();
    assert_eq!(nested, Err(ErrorKind::InvalidState));
    io_loop.close();
    let err = io_loop.run_sync(|| Future::ready(1), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
}

#[test]
fn run_sync_stopped_or_closed_before_the_future_is_done() {
    let (io_loop, _clock) = manual_loop();
    let l = io_loop.clone();
    let err = io_loop
        .run_sync(
            move || {
                let l2 = l.clone();
                l.call_later(secs(1), move || l2.stop());
                Future::<u8>::new()
            },
            None,
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    // Usable again afterwards.
    assert_eq!(io_loop.run_sync(|| Future::ready(2), None).unwrap(), 2);

    let l = io_loop.clone();
    let err = io_loop
        .run_sync(
            move || {
                let l2 = l.clone();
                l.call_later(secs(1), move || l2.close());
                Future::<u8>::new()
            },
            Some(secs(10)),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
}

#[test]
fn closed_loop_refuses_work_and_releases_it() {
    let io_loop = IOLoop::new().unwrap();
    let (flag, callback_dropped) = drop_flag();
    io_loop.add_callback(move || drop(flag));
    let (flag, timeout_dropped) = drop_flag();
    io_loop.call_later(secs(1), move || drop(flag));
    io_loop.close();
    assert!(io_loop.is_closed());
    assert!(callback_dropped.get() && timeout_dropped.get());
    io_loop.close(); // twice is harmless
    assert_eq!(io_loop.start().unwrap_err().kind(), ErrorKind::Closed);

    // Work handed to a closed loop is dropped at once, not kept forever (a
    // closure holding the loop would otherwise keep it alive).
    let (flag, dropped) = drop_flag();
    io_loop.add_callback(move || drop(flag));
    assert!(dropped.get());
    let (flag, dropped) = drop_flag();
    let handle = io_loop.call_later(secs(1), move || drop(flag));
    assert!(dropped.get(), "a timeout added to a closed loop is dropped");
    assert!(!io_loop.remove_timeout(handle));
    assert_eq!(io_loop.timer_stats().pending, 0);
}

#[test]
fn close_from_a_callback_ends_start() {
    let io_loop = IOLoop::new().unwrap();
    let (a, _b) = socketpair();
    io_loop.add_handler(&a, |_, _| (), Events::READ).unwrap();
    let l = io_loop.clone();
    io_loop.add_callback(move || l.close());
    let (flag, dropped) = drop_flag();
    io_loop.call_later(secs(3600), move || drop(flag));
    io_loop.start().unwrap();
    assert!(io_loop.is_closed());
    assert!(dropped.get());
    assert_eq!(io_loop.handler_count(), 0);
}

#[test]
fn close_from_a_callback_drops_the_rest_of_its_batch() {
    let io_loop = IOLoop::new().unwrap();
    let l = io_loop.clone();
    io_loop.add_callback(move || l.close());
    let ran = Rc::new(Cell::new(false));
    let (flag, dropped) = drop_flag();
    let r = ran.clone();
    io_loop.add_callback(move || {
        r.set(true);
        drop(flag);
    });
    io_loop.start().unwrap();
    assert!(io_loop.is_closed());
    assert!(!ran.get(), "a callback ran on a closed loop");
    assert!(dropped.get());
}
