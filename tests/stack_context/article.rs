//! The first seed article end to end: a call with a timeout that fails
//! into its `fail_callback` once, leaves no timeout pending, and tells a
//! bug in the callback from a client failure.

use super::*;

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
