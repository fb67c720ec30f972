//! Panics and errors: raised errors arrive as themselves, panics as
//! `ErrorKind::Panic`; an unhandled error is logged and the loop goes on.

use super::*;

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
