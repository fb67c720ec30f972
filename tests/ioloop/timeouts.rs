//! Timeouts: deadline order, removal (also from another due timeout),
//! the heap's compaction, `Duration` and `Instant` deadlines, "never", and
//! the manual clock's jumps; and the loop's own time reading staying fresh
//! while the blocking log is turned on and off.

use super::*;

#[test]
fn timeouts_fire_in_deadline_order_ties_in_scheduling_order() {
    let (io_loop, _clock) = manual_loop();
    let t0 = io_loop.time();
    let log = Log::new();
    for (name, s) in [("c", 3), ("a1", 1), ("b1", 2), ("b2", 2), ("a2", 1)] {
        let (lg, l) = (log.clone(), io_loop.clone());
        io_loop.call_later(secs(s), move || lg.push((name, l.time() - t0)));
    }
    // An Instant deadline equal to a Duration one: after them, as scheduled later.
    let (lg, l) = (log.clone(), io_loop.clone());
    io_loop.call_at(t0 + secs(2), move || lg.push(("b3", l.time() - t0)));
    let (lg, l) = (log.clone(), io_loop.clone());
    io_loop.add_timeout(t0 + secs(1), move || lg.push(("a3", l.time() - t0)));
    let timed_out = guard(&io_loop, secs(10));
    io_loop.start().unwrap();
    assert!(timed_out.get());
    assert_eq!(
        log.get(),
        [
            ("a1", secs(1)),
            ("a2", secs(1)),
            ("a3", secs(1)),
            ("b1", secs(2)),
            ("b2", secs(2)),
            ("b3", secs(2)),
            ("c", secs(3)),
        ]
    );
    io_loop.close();
}

#[test]
fn removed_timeout_never_runs_and_removing_again_is_harmless() {
    let (io_loop, _clock) = manual_loop();
    let log = Log::new();
    let lg = log.clone();
    let removed = io_loop.call_later(secs(1), move || lg.push("removed"));
    let lg = log.clone();
    let kept = io_loop.call_later(secs(2), move || lg.push("kept"));
    assert_eq!(io_loop.timer_stats().pending, 2);
    assert!(io_loop.remove_timeout(removed));
    assert!(!io_loop.remove_timeout(removed), "removing twice");
    assert_eq!(io_loop.timer_stats().pending, 1);
    guard(&io_loop, secs(10));
    io_loop.start().unwrap();
    assert_eq!(log.get(), ["kept"]);
    assert!(!io_loop.remove_timeout(kept), "removing after it ran");
    assert!(!io_loop.remove_timeout(removed));
    let stats = io_loop.timer_stats();
    assert_eq!(
        (stats.pending, stats.heap_entries, stats.cancelled),
        (0, 0, 0)
    );
    io_loop.close();
}

#[test]
fn removing_a_timeout_releases_its_callback() {
    let (io_loop, _clock) = manual_loop();
    let (flag, dropped) = drop_flag();
    let handle = io_loop.call_later(secs(1), move || drop(flag));
    assert!(!dropped.get());
    assert!(io_loop.remove_timeout(handle));
    assert!(dropped.get());
    io_loop.close();
}

#[test]
fn timeout_removing_another_due_in_the_same_iteration_prevents_it() {
    let (io_loop, _clock) = manual_loop();
    let log = Log::new();
    let victim: Rc<Cell<Option<TimeoutHandle>>> = Rc::new(Cell::new(None));
    let (lg, l, v) = (log.clone(), io_loop.clone(), victim.clone());
    io_loop.call_later(secs(1), move || {
        let removed = l.remove_timeout(v.get().expect("victim scheduled"));
        lg.push(format!("remover: removed={removed}"));
    });
    let lg = log.clone();
    victim.set(Some(
        io_loop.call_later(secs(1), move || lg.push("victim ran".to_owned())),
    ));
    // Another pair in the same iteration, with the victim due *earlier* than
    // the remover's own deadline but both due at once.
    let (lg, l) = (log.clone(), io_loop.clone());
    let t0 = io_loop.time();
    let victim2: Rc<Cell<Option<TimeoutHandle>>> = Rc::new(Cell::new(None));
    let v2 = victim2.clone();
    io_loop.call_at(t0 + secs(5), move || {
        let removed = l.remove_timeout(v2.get().expect("victim scheduled"));
        lg.push(format!("remover 2: removed={removed}"));
    });
    let lg = log.clone();
    victim2.set(Some(
        io_loop.call_at(t0 + secs(5), move || lg.push("victim 2 ran".to_owned())),
    ));

    guard(&io_loop, secs(60));
    io_loop.start().unwrap();
    assert_eq!(
        log.get(),
        ["remover: removed=true", "remover 2: removed=true"]
    );
    // The heap's bookkeeping stays exact: nothing left, nothing counted as
    // a cancelled entry still in the heap.
    let stats = io_loop.timer_stats();
    assert_eq!(stats.pending, 0, "{stats:?}");
    assert_eq!(stats.heap_entries, 0, "{stats:?}");
    assert_eq!(stats.cancelled, 0, "{stats:?}");
    io_loop.close();
}

#[test]
fn timeout_removing_itself_or_a_ran_one_returns_false() {
    let (io_loop, _clock) = manual_loop();
    let me: Rc<Cell<Option<TimeoutHandle>>> = Rc::new(Cell::new(None));
    let result = Rc::new(Cell::new(None));
    let (m, r, l) = (me.clone(), result.clone(), io_loop.clone());
    me.set(Some(io_loop.call_later(secs(1), move || {
        r.set(Some(l.remove_timeout(m.get().unwrap())));
    })));
    guard(&io_loop, secs(2));
    io_loop.start().unwrap();
    assert_eq!(result.get(), Some(false));
    let stats = io_loop.timer_stats();
    assert_eq!(
        (stats.pending, stats.heap_entries, stats.cancelled),
        (0, 0, 0)
    );
    io_loop.close();
}

#[test]
fn many_removed_timeouts_leave_the_heap_compacted() {
    const ADDED: usize = 100_000;
    const REMOVED: usize = 99_000;
    let (io_loop, _clock) = manual_loop();
    let t0 = io_loop.time();
    let fired = Log::new();
    let handles: Vec<TimeoutHandle> = (0..ADDED)
        .map(|i| {
            let f = fired.clone();
            io_loop.call_at(t0 + ms(i as u64 + 1), move || f.push(i))
        })
        .collect();
    // Keep every 100th; remove the rest.
    let mut removed = 0;
    for (i, handle) in handles.iter().enumerate() {
        if i % 100 != 0 {
            assert!(io_loop.remove_timeout(*handle));
            removed += 1;
        }
    }
    assert_eq!(removed, REMOVED);
    let stats = io_loop.timer_stats();
    let pending = ADDED - REMOVED;
    assert_eq!(stats.pending, pending, "{stats:?}");
    assert_eq!(
        stats.heap_entries,
        stats.pending + stats.cancelled,
        "{stats:?}"
    );
    // Lazy cancellation (Tornado's scheme): the heap is rebuilt when the
    // cancelled entries are over 512 and over half of it, so at most
    // max(512, pending) cancelled entries remain: removal stays O(1)
    // amortised, and the heap is within a small factor of what is live.
    assert!(
        stats.cancelled <= pending.max(512) + 1,
        "heap not compacted: {stats:?}"
    );
    assert!(stats.heap_entries < 2 * pending + 513, "{stats:?}");

    // The survivors all fire, in order; the cancelled ones never do.
    guard(&io_loop, secs(1000));
    io_loop.start().unwrap();
    let expected: Vec<usize> = (0..ADDED).step_by(100).collect();
    assert_eq!(fired.get(), expected);
    let stats = io_loop.timer_stats();
    assert_eq!(
        (stats.pending, stats.heap_entries, stats.cancelled),
        (0, 0, 0)
    );
    io_loop.close();
}

#[test]
fn duration_and_instant_deadlines_agree() {
    let (io_loop, clock) = manual_loop();
    let t0 = io_loop.time();
    let log = Log::new();
    let (lg, l) = (log.clone(), io_loop.clone());
    io_loop.add_timeout(secs(5), move || lg.push(("duration", l.time() - t0)));
    let (lg, l) = (log.clone(), io_loop.clone());
    io_loop.add_timeout(t0 + secs(5), move || lg.push(("instant", l.time() - t0)));
    // A Duration is measured from the loop's time when the timeout is added.
    clock.advance(secs(2));
    let (lg, l) = (log.clone(), io_loop.clone());
    io_loop.add_timeout(secs(5), move || lg.push(("duration later", l.time() - t0)));
    let (lg, l) = (log.clone(), io_loop.clone());
    io_loop.call_later(secs(5), move || {
        lg.push(("call_later later", l.time() - t0))
    });
    let (lg, l) = (log.clone(), io_loop.clone());
    io_loop.call_at(t0 + secs(7), move || {
        lg.push(("call_at later", l.time() - t0))
    });
    guard(&io_loop, secs(60));
    io_loop.start().unwrap();
    assert_eq!(
        log.get(),
        [
            ("duration", secs(5)),
            ("instant", secs(5)),
            ("duration later", secs(7)),
            ("call_later later", secs(7)),
            ("call_at later", secs(7)),
        ]
    );
    io_loop.close();
}

#[test]
fn deadline_in_the_past_fires_on_the_next_iteration() {
    let (io_loop, clock) = manual_loop();
    let t0 = io_loop.time();
    clock.advance(secs(10));
    let at = Rc::new(Cell::new(None));
    let (a, l) = (at.clone(), io_loop.clone());
    io_loop.call_at(t0, move || {
        a.set(Some(l.time() - t0));
        l.stop();
    });
    io_loop.start().unwrap();
    assert_eq!(at.get(), Some(secs(10)));
    io_loop.close();
}

#[test]
fn stop_from_a_timeout_ends_start() {
    let (io_loop, _clock) = manual_loop();
    let t0 = io_loop.time();
    let l = io_loop.clone();
    io_loop.call_later(secs(5), move || l.stop());
    let later = Rc::new(Cell::new(false));
    let lt = later.clone();
    io_loop.call_later(secs(10), move || lt.set(true));
    io_loop.start().unwrap();
    assert_eq!(io_loop.time() - t0, secs(5));
    assert!(!later.get());
    assert!(!io_loop.is_running());
    assert_eq!(io_loop.timer_stats().pending, 1);
    // The loop can be started again, and goes on where it stopped.
    let l = io_loop.clone();
    io_loop.call_later(secs(6), move || l.stop());
    io_loop.start().unwrap();
    assert!(later.get());
    io_loop.close();
}

#[test]
fn manual_clock_does_not_jump_while_a_remote_callback_waits() {
    let (io_loop, _clock) = manual_loop();
    let t0 = io_loop.time();
    let seen_at: Arc<Mutex<Option<Duration>>> = Arc::new(Mutex::new(None));
    let remote = io_loop.remote();
    let seen = seen_at.clone();
    io_loop.call_later(secs(1), move || {
        // The message is in the channel before the loop next polls, with
        // no local callback queued and the next deadline an hour away.
        thread::spawn(move || {
            remote
                .add_callback(move || {
                    *seen.lock().unwrap() = Some(IOLoop::current().time() - t0);
                })
                .unwrap();
        })
        .join()
        .unwrap();
    });
    let timed_out = guard(&io_loop, secs(3600));
    io_loop.start().unwrap();
    assert!(timed_out.get());
    assert_eq!(*seen_at.lock().unwrap(), Some(secs(1)));
    io_loop.close();
}

#[test]
fn huge_delays_mean_never_not_a_panic() {
    let (io_loop, _clock) = manual_loop();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let handle = io_loop.call_later(Duration::MAX, move || r.set(true));
    let r = ran.clone();
    io_loop.add_timeout(Duration::MAX, move || r.set(true));
    let c = ran.clone();
    let pc = PeriodicCallback::new(move || c.set(true), Duration::MAX).unwrap();
    let p = pc.clone();
    io_loop.add_callback(move || p.start());
    guard(&io_loop, secs(10 * 365 * 86400));
    io_loop.start().unwrap();
    assert!(!ran.get());
    assert!(io_loop.remove_timeout(handle));
    pc.stop();
    io_loop.close();
}

/// With the blocking log on, the loop times its timers from the log's clock
/// readings; a slow typed-channel handler (which the log does not time) must
/// not leave that reading stale and make a timer that fell due meanwhile
/// wait on top of it.
#[test]
fn a_timer_due_during_a_slow_channel_handler_runs_right_after_it() {
    let io_loop = IOLoop::new().unwrap();
    io_loop.set_blocking_log_threshold(Some(Duration::from_secs(10)));
    let t0 = Instant::now();
    let fired = Rc::new(Cell::new(None));
    let (f, l) = (fired.clone(), io_loop.clone());
    io_loop.call_later(Duration::from_millis(200), move || {
        f.set(Some(t0.elapsed()));
        l.stop();
    });
    let sender = io_loop.remote_channel(|()| std::thread::sleep(Duration::from_millis(300)));
    // A timed callback first, in the same iteration as the channel's drain.
    io_loop.add_callback(|| {});
    sender.send(()).unwrap();
    io_loop.start().unwrap();
    let fired = fired.get().expect("the timer ran");
    // Right after the 300 ms handler, not 200 ms of stale wait later.
    assert!(fired < Duration::from_millis(450), "{fired:?}");
}

/// A timeout meaning "never" (`Duration::MAX`), added first, must not hold
/// back the nearer ones added after it.
#[test]
fn a_never_timeout_added_first_does_not_hold_back_later_ones() {
    let io_loop = IOLoop::new().unwrap();
    io_loop.call_later(Duration::MAX, || -> () { panic!("never") });
    let fired = Rc::new(Cell::new(false));
    let (f, l) = (fired.clone(), io_loop.clone());
    io_loop.call_later(Duration::from_millis(10), move || {
        f.set(true);
        l.stop();
    });
    watchdog(&io_loop, Duration::from_secs(5));
    io_loop.start().unwrap();
    assert!(fired.get(), "the 10 ms timeout did not run within 5 s");
}

/// Turning the blocking log off while the loop spins on callbacks (no fd
/// handler, so no poll) must not freeze the loop's idea of the time.
#[test]
fn timers_run_after_the_blocking_log_is_turned_off_mid_run() {
    let io_loop = IOLoop::new().unwrap();
    io_loop.set_blocking_log_threshold(Some(Duration::from_secs(10)));
    // A callback that re-adds itself: the loop never polls.
    fn spin(l: IOLoop) {
        let next = l.clone();
        l.add_callback(move || spin(next));
    }
    spin(io_loop.clone());
    let l = io_loop.clone();
    io_loop.call_later(Duration::from_millis(5), move || {
        l.set_blocking_log_threshold(None)
    });
    let fired = Rc::new(Cell::new(false));
    let (f, l) = (fired.clone(), io_loop.clone());
    io_loop.call_later(Duration::from_millis(30), move || {
        f.set(true);
        l.stop();
    });
    watchdog(&io_loop, Duration::from_secs(5));
    io_loop.start().unwrap();
    assert!(fired.get(), "the 30 ms timeout did not run within 5 s");
}
