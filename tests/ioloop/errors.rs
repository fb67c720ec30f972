//! Errors and panics in callbacks: reported (to the stack context or the
//! log), the loop going on; `AsyncTest`'s handling of unhandled ones.

use super::*;

#[test]
fn failing_callbacks_are_reported_and_the_loop_goes_on() {
    let (io_loop, _clock) = manual_loop();
    let after = Rc::new(Cell::new(false));
    let ((), errors) = capture_unhandled(|| {
        io_loop.add_callback(|| panic!("boom"));
        io_loop.add_callback(|| Err::<(), _>(Error::new(ErrorKind::Timeout, "late")));
        io_loop.call_later(secs(1), || Err::<(), _>("a timeout fails".into()));
        let l = io_loop.clone();
        io_loop.add_callback(move || {
            // Returns a future that fails later: reported then.
            let future = Future::<u32>::new();
            let f = future.clone();
            l.call_later(secs(2), move || {
                f.set_error(Error::new(ErrorKind::InvalidArgument, "bad"))
            });
            future
        });
        let l = io_loop.clone();
        // And one that succeeds later: not reported.
        io_loop.add_callback(move || {
            let future = Future::<u32>::new();
            let f = future.clone();
            l.call_later(secs(2), move || f.set_result(1));
            future
        });
        let (a, l) = (after.clone(), io_loop.clone());
        io_loop.call_later(secs(3), move || {
            a.set(true);
            l.stop();
        });
        io_loop.start().unwrap();
    });
    assert!(after.get(), "the loop kept running");
    assert_eq!(
        kinds(&errors),
        [
            ErrorKind::Panic,
            ErrorKind::Timeout,
            ErrorKind::Other,
            ErrorKind::InvalidArgument
        ]
    );
    assert_eq!(errors[0].message(), "boom");
    assert_eq!(errors[2].message(), "a timeout fails");
    io_loop.close();
}

#[test]
fn failing_remote_callback_is_reported() {
    let io_loop = IOLoop::new().unwrap();
    let ((), errors) = capture_unhandled(|| {
        let remote = io_loop.remote();
        thread::spawn(move || {
            remote
                .add_callback(|| Err::<(), _>(Error::new(ErrorKind::Timeout, "remote")))
                .unwrap();
            remote.add_callback(|| panic!("remote panic")).unwrap();
            remote.add_callback(|| IOLoop::current().stop()).unwrap();
        })
        .join()
        .unwrap();
        io_loop.start().unwrap();
    });
    assert_eq!(kinds(&errors), [ErrorKind::Timeout, ErrorKind::Panic]);
    io_loop.close();
}

#[test]
fn async_test_fails_on_unhandled_errors_and_try_run_returns_them() {
    let (result, unhandled) = AsyncTest::new()
        .clock(Clock::Manual(ManualClock::new()))
        .try_run(|io_loop| {
            io_loop.add_callback(|| Err::<(), _>(Error::new(ErrorKind::Timeout, "x")));
            let future = Future::new();
            let f = future.clone();
            io_loop.call_later(secs(1), move || f.set_result(5));
            future
        });
    assert_eq!(result.unwrap(), 5);
    assert_eq!(kinds(&unhandled), [ErrorKind::Timeout]);

    let outcome = std::panic::catch_unwind(|| {
        AsyncTest::new().run(|io_loop| {
            io_loop.add_callback(|| panic!("unhandled in a test"));
            let future = Future::new();
            let f = future.clone();
            io_loop.add_callback(move || f.set_result(()));
            future
        })
    });
    assert!(outcome.is_err(), "an unhandled error fails the test");

    // Timeout on the manual clock: instant, and reported as a failure.
    let (result, _) = AsyncTest::new()
        .clock(Clock::Manual(ManualClock::new()))
        .timeout(secs(30))
        .try_run(|_| Future::<()>::new());
    assert_eq!(result.unwrap_err().kind(), ErrorKind::Timeout);
}
