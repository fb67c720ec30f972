//! Nested contexts: the inner handler first, `false` passing the error
//! outward, an error raised by a handler, and what a handler runs under.

use super::*;

#[test]
fn inner_handler_sees_the_error_first() {
    let io_loop = new_loop();
    let log = new_log();
    let l = io_loop.clone();
    catcher(&log, "outer", true).run(|| {
        catcher(&log, "inner", true).run(|| l.add_callback(fail("boom")));
    });
    stop_soon(&io_loop);
    run(&io_loop);
    assert_eq!(entries(&log), ["inner: boom"]);
}

#[test]
fn false_from_the_inner_handler_passes_the_error_outward() {
    let io_loop = new_loop();
    let log = new_log();
    let l = io_loop.clone();
    catcher(&log, "outer", true).run(|| {
        catcher(&log, "middle", false).run(|| {
            catcher(&log, "inner", false).run(|| l.add_callback(fail("boom")));
        });
    });
    stop_soon(&io_loop);
    run(&io_loop);
    assert_eq!(
        entries(&log),
        ["inner: boom", "middle: boom", "outer: boom"]
    );
}

#[test]
fn nobody_handling_means_logged_once() {
    let io_loop = new_loop();
    let log = new_log();
    let ((), unhandled) = capture_unhandled(|| {
        let l = io_loop.clone();
        catcher(&log, "outer", false).run(|| {
            catcher(&log, "inner", false).run(|| l.add_callback(fail("boom")));
        });
        stop_soon(&io_loop);
        run(&io_loop);
    });
    assert_eq!(entries(&log), ["inner: boom", "outer: boom"]);
    assert_eq!(unhandled.len(), 1);
    assert_eq!(unhandled[0].message(), "boom");
}

#[test]
fn an_error_raised_by_a_handler_replaces_it_and_goes_outward() {
    let io_loop = new_loop();
    let log = new_log();
    let l = io_loop.clone();
    catcher(&log, "outer", true).run(|| {
        ExceptionStackContext::new(|err: &Error| {
            raise(Error::new(
                ErrorKind::Timeout,
                format!("wrapped {}", err.message()),
            ))
        })
        .run(|| l.add_callback(fail("boom")));
    });
    stop_soon(&io_loop);
    run(&io_loop);
    assert_eq!(entries(&log), ["outer: wrapped boom"]);
}

#[test]
fn a_handler_runs_under_the_contexts_outside_it() {
    // Guards outside the handler's context are entered around it, the ones
    // inside are not; a callback the handler schedules reports outward.
    let io_loop = new_loop();
    let log = new_log();
    let l = io_loop.clone();
    catcher(&log, "outer", true).run(|| {
        tracer(&log, "a").run(|| {
            let (log2, l2) = (log.clone(), l.clone());
            ExceptionStackContext::new(move |err: &Error| {
                push(&log2, format!("inner: {}", err.message()));
                l2.add_callback(fail("from the handler"));
                true
            })
            .run(|| tracer(&log, "b").run(|| l.add_callback(fail("boom"))));
        });
    });
    log.borrow_mut().clear();
    stop_soon(&io_loop);
    run(&io_loop);
    assert_eq!(
        entries(&log),
        [
            // The callback, under a and b.
            "+a",
            "+b",
            "-b",
            "-a",
            // Its error, at the inner handler: a is entered again, b is not.
            "+a",
            "inner: boom",
            "-a",
            // The handler's own callback, captured under outer and a.
            "+a",
            "-a",
            "outer: from the handler",
        ]
    );
}
