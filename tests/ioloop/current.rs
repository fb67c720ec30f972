//! Which loop is current: `current`, `make_current`, `try_current`, and the
//! refusal to run a loop while the implicit one holds stranded work.

use super::*;

#[test]
fn current_make_current_try_current() {
    // A fresh thread, so no other test's loop is current.
    thread::spawn(|| {
        assert!(IOLoop::try_current().is_none());
        let a = IOLoop::current();
        assert!(IOLoop::try_current()
            .expect("current() made one")
            .ptr_eq(&a));
        assert!(IOLoop::current().ptr_eq(&a), "current() creates only once");

        let b = IOLoop::new().unwrap();
        assert!(!b.ptr_eq(&a));
        let during = Rc::new(Cell::new(false));
        let (d, b2) = (during.clone(), b.clone());
        b.add_callback(move || {
            d.set(IOLoop::current().ptr_eq(&b2) && IOLoop::try_current().unwrap().ptr_eq(&b2));
            b2.stop();
        });
        b.start().unwrap();
        assert!(during.get(), "start() makes the loop current while it runs");
        assert!(
            IOLoop::current().ptr_eq(&a),
            "and restores the previous one"
        );

        b.make_current();
        assert!(IOLoop::try_current().unwrap().ptr_eq(&b));
        IOLoop::clear_current();
        assert!(IOLoop::try_current().is_none());

        // With no current loop, start() leaves none behind.
        let b2 = b.clone();
        b.add_callback(move || b2.stop());
        b.start().unwrap();
        assert!(IOLoop::try_current().is_none());
        a.close();
        b.close();
    })
    .join()
    .unwrap();
}

/// A stream made before any loop runs lands on the implicit loop that
/// `IOLoop::current()` makes; running another loop would leave it waiting
/// for good (a `run_sync` ending in a timeout). Refused at once instead,
/// with a message that says what happened and what to do.
#[test]
fn running_another_loop_while_the_implicit_one_holds_work_is_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let pending = squall::IOStream::connect(addr);
    let io_loop = IOLoop::new().unwrap();
    let started = std::time::Instant::now();
    let p = pending.clone();
    let err = io_loop
        .run_sync(move || p, Some(Duration::from_secs(2)))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
    assert!(err.message().contains("implicitly"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(io_loop.start().unwrap_err().kind(), ErrorKind::InvalidState);

    // The implicit loop itself runs its work, Tornado's way.
    let stream = IOLoop::current()
        .run_sync(move || pending, Some(Duration::from_secs(5)))
        .unwrap();
    // Closed, it leaves the implicit loop with nothing to strand. Made
    // inside run_sync, a stream is on the loop that runs.
    stream.close();
    let stream = io_loop
        .run_sync(
            move || squall::IOStream::connect(addr),
            Some(Duration::from_secs(5)),
        )
        .unwrap();
    drop(stream);
}

#[test]
fn an_implicit_loop_without_work_or_an_explicit_current_loop_does_not_stop_another() {
    // Asked for, and holding nothing: nothing would be stranded.
    let implicit = IOLoop::current();
    let io_loop = IOLoop::new().unwrap();
    assert_eq!(io_loop.run_sync(|| Future::ready(1), None).unwrap(), 1);
    drop(implicit);

    // A loop made current on purpose may hold work for later.
    let later = IOLoop::new().unwrap();
    later.make_current();
    later.add_callback(|| ());
    let other = IOLoop::new().unwrap();
    assert_eq!(other.run_sync(|| Future::ready(2), None).unwrap(), 2);
    IOLoop::clear_current();

    // make_current first: objects made afterwards are on that loop.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let io_loop = IOLoop::new().unwrap();
    io_loop.make_current();
    let pending = squall::IOStream::connect(listener.local_addr().unwrap());
    assert!(io_loop
        .run_sync(move || pending, Some(Duration::from_secs(5)))
        .is_ok());
    IOLoop::clear_current();
}

/// A timeout at the "never" deadline (`Duration::MAX`) on the implicit loop
/// could not run even there: it strands nothing, and another loop runs. A
/// timeout with a deadline still does, and is refused as before.
#[test]
fn a_never_timeout_on_the_implicit_loop_strands_nothing() {
    thread::spawn(|| {
        let implicit = IOLoop::current();
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        implicit.add_timeout(Duration::MAX, move || r.set(true));
        let r = ran.clone();
        implicit.call_later(Duration::MAX, move || r.set(true));
        assert_eq!(implicit.timer_stats().pending, 2);

        let io_loop = IOLoop::new().unwrap();
        assert_eq!(io_loop.run_sync(|| Future::ready(1), None).unwrap(), 1);
        let l = io_loop.clone();
        io_loop.add_callback(move || l.stop());
        io_loop.start().unwrap();

        // One with a deadline, however far, is work that would wait.
        let far = implicit.call_later(Duration::from_secs(3600), || ());
        let err = io_loop.run_sync(|| Future::ready(2), None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
        assert!(err.message().contains("1 timeout(s)"), "{err}");
        assert!(implicit.remove_timeout(far));
        assert_eq!(io_loop.run_sync(|| Future::ready(3), None).unwrap(), 3);
        assert!(!ran.get());
        io_loop.close();
        implicit.close();
    })
    .join()
    .unwrap();
}
