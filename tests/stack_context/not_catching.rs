//! What does not catch: a context exited before scheduling, the null
//! context, `spawn_callback` and remotes, and deactivated contexts.

use super::*;

#[test]
fn a_context_exited_before_scheduling_does_not_catch() {
    let io_loop = new_loop();
    let log = new_log();
    let ((), unhandled) = capture_unhandled(|| {
        catcher(&log, "handler", true).run(|| ());
        io_loop.add_callback(fail("boom"));
        stop_soon(&io_loop);
        run(&io_loop);
    });
    assert!(entries(&log).is_empty());
    assert_eq!(unhandled.len(), 1);
}

#[test]
fn null_context_spawn_callback_and_remote_cut_the_chain() {
    let io_loop = new_loop();
    let log = new_log();
    let ((), unhandled) = capture_unhandled(|| {
        let l = io_loop.clone();
        catcher(&log, "handler", true).run(|| {
            NullContext::run(|| l.add_callback(fail("null context")));
            l.spawn_callback(fail("spawned"));
            l.remote()
                .add_callback(|| Err::<(), _>(Error::other("remote")))
                .unwrap();
            // Back in the context after NullContext::run.
            l.add_callback(fail("caught"));
        });
        stop_soon(&io_loop);
        run(&io_loop);
    });
    assert_eq!(entries(&log), ["handler: caught"]);
    let mut messages: Vec<_> = unhandled.iter().map(|e| e.message().to_owned()).collect();
    messages.sort();
    assert_eq!(messages, ["null context", "remote", "spawned"]);
}

#[test]
fn deactivate_stops_routing() {
    let io_loop = new_loop();
    let log = new_log();
    let ((), unhandled) = capture_unhandled(|| {
        let l = io_loop.clone();
        let deactivate: Deactivate =
            catcher(&log, "handler", true).run(|| l.add_callback(fail("after")));
        assert!(deactivate.is_active());
        deactivate.deactivate();
        assert!(!deactivate.is_active());
        stop_soon(&io_loop);
        run(&io_loop);
    });
    assert!(entries(&log).is_empty());
    assert_eq!(unhandled.len(), 1);
    assert_eq!(unhandled[0].message(), "after");
}

#[test]
fn a_deactivated_inner_context_passes_errors_to_the_outer_one() {
    let io_loop = new_loop();
    let log = new_log();
    let l = io_loop.clone();
    let mut inner = None;
    catcher(&log, "outer", true).run(|| {
        inner = Some(catcher(&log, "inner", true).run(|| l.add_callback(fail("boom"))));
    });
    inner.unwrap().deactivate();
    stop_soon(&io_loop);
    run(&io_loop);
    assert_eq!(entries(&log), ["outer: boom"]);
}
