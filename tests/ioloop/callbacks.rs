//! `add_callback` and `spawn_callback`: order within and across
//! iterations, and where a callback added by a callback runs.

use super::*;

#[test]
fn callbacks_run_in_fifo_order() {
    let io_loop = IOLoop::new().unwrap();
    let log = Log::new();
    for i in 0..100 {
        let log = log.clone();
        io_loop.add_callback(move || log.push(i));
    }
    let l = io_loop.clone();
    io_loop.add_callback(move || l.stop());
    io_loop.start().unwrap();
    assert_eq!(log.get(), (0..100).collect::<Vec<_>>());
    io_loop.close();
}

#[test]
fn callback_added_by_a_callback_runs_next_iteration_after_due_timeouts() {
    let (io_loop, _clock) = manual_loop();
    let log = Log::new();
    let (lg, l) = (log.clone(), io_loop.clone());
    // Due at once: noted at the start of the first iteration.
    io_loop.call_later(Duration::ZERO, move || lg.push("timeout 1"));
    let (lg, l2) = (log.clone(), l.clone());
    io_loop.add_callback(move || {
        lg.push("a");
        let (lg2, l3) = (lg.clone(), l2.clone());
        l2.add_callback(move || {
            lg2.push("b (added by a)");
            l3.stop();
        });
        // Due now, but added after the iteration noted its due timeouts.
        let lg3 = lg.clone();
        l2.call_later(Duration::ZERO, move || lg3.push("timeout 2 (added by a)"));
    });
    let lg = log.clone();
    io_loop.add_callback(move || lg.push("c"));
    let timed_out = guard(&l, secs(60));
    io_loop.start().unwrap();
    assert!(!timed_out.get());
    assert_eq!(
        log.get(),
        [
            "a",
            "c",
            "timeout 1",
            "b (added by a)",
            "timeout 2 (added by a)"
        ]
    );
    io_loop.close();
}

#[test]
fn spawn_callback_runs_too() {
    let io_loop = IOLoop::new().unwrap();
    let ran = Rc::new(Cell::new(false));
    let (r, l) = (ran.clone(), io_loop.clone());
    io_loop.spawn_callback(move || {
        r.set(true);
        l.stop();
    });
    io_loop.start().unwrap();
    assert!(ran.get());
    io_loop.close();
}
