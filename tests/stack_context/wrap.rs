//! `wrap` and `wrap1`: wrapping twice, calling a wrapped callback directly
//! or in its own context, and where its unhandled errors go.

use super::*;

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
