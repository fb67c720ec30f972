//! `StackContext` guards: entered once per run in stack order, dropped on a
//! panic, and a panicking guard factory.

use super::*;

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
