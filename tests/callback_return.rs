//! Callbacks written the way a user writes them compile without annotations,
//! and what they return (or panic with) is routed as an error (issue #25).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use squall::testing::capture_unhandled;
use squall::{Error, ErrorKind, Events, Future, IOLoop};

fn step(fail: bool) -> std::io::Result<()> {
    if fail {
        Err(std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            "step failed",
        ))
    } else {
        Ok(())
    }
}

fn parse(text: &str) -> Result<u32, Error> {
    text.parse::<u32>()
        .map_err(|e| Error::new(ErrorKind::InvalidArgument, e.to_string()))
}

/// Runs the loop until its callbacks are done, returning the unhandled errors.
fn run_briefly(io_loop: &IOLoop) -> Vec<Error> {
    let l = io_loop.clone();
    io_loop.call_later(Duration::from_millis(20), move || l.stop());
    let ((), errors) = capture_unhandled(|| io_loop.start().unwrap());
    errors
}

#[test]
fn a_callback_that_only_panics_compiles_and_is_reported() {
    let io_loop = IOLoop::new().unwrap();
    io_loop.add_callback(|| panic!("x"));
    io_loop.spawn_callback(|| panic!("spawned"));
    io_loop.call_later(Duration::from_millis(1), || panic!("later"));
    let future = Future::<u8>::new();
    future.add_done_callback(|_| panic!("done"));
    io_loop.add_callback(move || future.set_result(1));
    if io_loop.handler_count() == usize::MAX {
        // Compile-only: a callback that never returns normally.
        io_loop.add_callback(|| loop {
            std::thread::sleep(Duration::from_secs(1));
        });
    }
    let errors = run_briefly(&io_loop);
    let messages: Vec<&str> = errors.iter().map(|e| e.message()).collect();
    assert_eq!(messages, ["x", "spawned", "done", "later"]);
    assert!(errors.iter().all(|e| e.kind() == ErrorKind::Panic));
}

#[test]
fn question_mark_infers_the_error_type() {
    let io_loop = IOLoop::new().unwrap();
    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    io_loop.add_callback(move || {
        step(false)?;
        r.set(r.get() + 1);
        Ok(())
    });
    io_loop.add_callback(|| {
        step(true)?;
        Ok(())
    });
    io_loop.call_later(Duration::from_millis(1), || {
        step(true)?;
        Ok(())
    });
    let errors = run_briefly(&io_loop);
    assert_eq!(ran.get(), 1);
    assert_eq!(errors.len(), 2);
    for err in &errors {
        assert_eq!(err.kind(), ErrorKind::Io);
        assert_eq!(err.message(), "step failed");
    }
}

#[test]
fn a_callback_may_return_a_value_with_its_result() {
    let io_loop = IOLoop::new().unwrap();
    let total = Rc::new(Cell::new(0));
    let t = total.clone();
    io_loop.add_callback(move || {
        let n = parse("12")?;
        t.set(t.get() + n);
        Ok(n)
    });
    io_loop.add_callback(|| parse("twelve"));
    io_loop.call_later(Duration::from_millis(1), || -> Result<u32, Error> { Ok(3) });
    let errors = run_briefly(&io_loop);
    assert_eq!(total.get(), 12);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind(), ErrorKind::InvalidArgument);
}

#[test]
fn a_handler_may_use_question_mark() {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    let io_loop = IOLoop::new().unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let mut reader = a.try_clone().unwrap();
    let l = io_loop.clone();
    io_loop
        .add_handler(
            &a,
            move |_, _| {
                let mut buf = [0u8; 8];
                let n = std::io::Read::read(&mut reader, &mut buf)?;
                l.remove_handler(&reader);
                Err(Error::other(format!("read {n}")))?;
                Ok(())
            },
            Events::READ,
        )
        .unwrap();
    b.write_all(b"abc").unwrap();
    let errors = run_briefly(&io_loop);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].message(), "read 3");
}

#[test]
fn failed_futures_take_an_error_made_with_into() {
    let io_err = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
    let future = Future::<i32>::failed(io_err.into());
    let err = future.result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert_eq!(err.message(), "reset");

    let pending = Future::<i32>::new();
    let io_err = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "gone");
    pending.set_error(io_err.into());
    assert_eq!(pending.result().unwrap_err().kind(), ErrorKind::Io);
    assert!(!pending.try_set_error("twice".into()));
    assert_eq!(pending.error().unwrap().message(), "gone");
}
