//! `PeriodicCallback`: Tornado's schedule rules (skipping whole periods
//! after an overrun), start and stop, errors.

use super::*;

/// Tornado's `test_overrun`: a call that runs long skips whole periods to get
/// back on the original schedule.
#[test]
fn periodic_callback_skips_whole_periods_after_overruns() {
    const DURATIONS: [u64; 10] = [9, 9, 10, 11, 20, 20, 35, 35, 0, 0];
    let (io_loop, clock) = manual_loop();
    let t0 = io_loop.time();
    let times = Log::new();
    let (t, l) = (times.clone(), io_loop.clone());
    let pc = PeriodicCallback::new(
        move || {
            let i = t.len();
            t.push((l.time() - t0).as_secs());
            match DURATIONS.get(i) {
                Some(d) => clock.advance(secs(*d)),
                None => l.stop(),
            }
        },
        secs(10),
    )
    .unwrap();
    let p = pc.clone();
    // Started inside the loop, where it is the current loop.
    io_loop.add_callback(move || p.start());
    let timed_out = guard(&io_loop, secs(10_000));
    io_loop.start().unwrap();
    assert!(!timed_out.get());
    assert_eq!(
        times.get(),
        [10, 20, 30, 50, 70, 100, 130, 170, 210, 220, 230]
    );
    pc.stop();
    assert_eq!(io_loop.timer_stats().pending, 1, "only the guard is left");
    io_loop.close();
}

#[test]
fn periodic_callback_skips_missed_runs_after_a_blocking_call() {
    let (io_loop, clock) = manual_loop();
    let t0 = io_loop.time();
    let times = Log::new();
    let (t, l) = (times.clone(), io_loop.clone());
    let pc = PeriodicCallback::new(
        move || {
            t.push((l.time() - t0).as_millis() as u64);
            if t.len() == 1 {
                clock.advance(ms(35_000)); // blocks for 3.5 periods
            }
        },
        secs(10),
    )
    .unwrap();
    let p = pc.clone();
    io_loop.add_callback(move || p.start());
    guard(&io_loop, secs(65));
    io_loop.start().unwrap();
    // No burst of the runs due at 20, 30 and 40 s.
    assert_eq!(times.get(), [10_000, 50_000, 60_000]);
    pc.stop();
    io_loop.close();
}

#[test]
fn periodic_callback_on_the_real_clock_is_never_early_and_keeps_pace() {
    const PERIOD: Duration = Duration::from_millis(10);
    const RUNS: usize = 10;
    let io_loop = IOLoop::new().unwrap();
    let times = Log::new();
    let started = Rc::new(Cell::new(None::<Instant>));
    let (t, s, l) = (times.clone(), started.clone(), io_loop.clone());
    let pc = PeriodicCallback::new(
        move || {
            t.push(l.time() - s.get().unwrap());
            if t.len() == RUNS {
                l.stop();
            }
        },
        PERIOD,
    )
    .unwrap();
    let (p, s, l) = (pc.clone(), started.clone(), io_loop.clone());
    io_loop.add_callback(move || {
        s.set(Some(l.time()));
        p.start();
    });
    let timed_out = guard(&io_loop, secs(10));
    io_loop.start().unwrap();
    pc.stop();
    assert!(!timed_out.get());
    let times = times.get();
    assert_eq!(times.len(), RUNS);
    for (k, at) in times.iter().enumerate() {
        // Run k is due at (k + 1) periods at the earliest (later if runs were skipped).
        assert!(*at >= PERIOD * (k as u32 + 1), "run {k} early: {times:?}");
    }
    // Loose: ten 10 ms periods take well under a second, even on a busy box.
    assert!(times[RUNS - 1] < secs(2), "{times:?}");
    io_loop.close();
}

#[test]
fn periodic_callback_zero_period_is_invalid() {
    let err = PeriodicCallback::new(|| (), Duration::ZERO).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let pc = PeriodicCallback::new(|| (), ms(1)).unwrap();
    assert_eq!(pc.period(), ms(1));
}

#[test]
fn periodic_callback_stopped_inside_its_callback() {
    let (io_loop, _clock) = manual_loop();
    let count = Rc::new(Cell::new(0));
    let me: Rc<RefCell<Option<PeriodicCallback>>> = Rc::new(RefCell::new(None));
    let (c, m) = (count.clone(), me.clone());
    let pc = PeriodicCallback::new(
        move || {
            c.set(c.get() + 1);
            if c.get() == 3 {
                let pc = m.borrow_mut().take().unwrap();
                pc.stop();
                assert!(!pc.is_running());
            }
        },
        secs(1),
    )
    .unwrap();
    *me.borrow_mut() = Some(pc.clone());
    let p = pc.clone();
    io_loop.add_callback(move || p.start());
    guard(&io_loop, secs(100));
    io_loop.start().unwrap();
    assert_eq!(count.get(), 3);
    assert!(!pc.is_running());
    assert_eq!(io_loop.timer_stats().pending, 0);
    io_loop.close();
}

#[test]
fn periodic_callback_start_stop_is_running() {
    let (io_loop, _clock) = manual_loop();
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    let pc = PeriodicCallback::new(move || c.set(c.get() + 1), secs(10)).unwrap();
    assert!(!pc.is_running());
    let snapshots = Log::new();

    let p = pc.clone();
    io_loop.add_callback(move || {
        p.start();
        p.start(); // no-op: not scheduled twice
        assert!(p.is_running());
    });
    let (p, s, c) = (pc.clone(), snapshots.clone(), count.clone());
    io_loop.call_later(secs(25), move || {
        s.push(c.get()); // runs at 10, 20
        p.stop();
        p.stop(); // harmless
        assert!(!p.is_running());
    });
    let (p, s, c) = (pc.clone(), snapshots.clone(), count.clone());
    io_loop.call_later(secs(50), move || {
        s.push(c.get()); // none while stopped
        p.start(); // next runs at 60, 70
    });
    let (p, s, c, l) = (
        pc.clone(),
        snapshots.clone(),
        count.clone(),
        io_loop.clone(),
    );
    io_loop.call_later(secs(75), move || {
        s.push(c.get());
        p.stop();
        l.stop();
    });
    io_loop.start().unwrap();
    assert_eq!(snapshots.get(), [2, 2, 4]);
    assert!(!pc.is_running());
    assert_eq!(io_loop.timer_stats().pending, 0);
    io_loop.close();
}

#[test]
fn periodic_callback_errors_are_reported_and_it_goes_on() {
    let (io_loop, _clock) = manual_loop();
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    let pc = PeriodicCallback::new(
        move || -> Result<(), Error> {
            c.set(c.get() + 1);
            if c.get() == 2 {
                panic!("second run panics");
            }
            Err(Error::new(ErrorKind::Timeout, "run failed"))
        },
        secs(1),
    )
    .unwrap();
    let p = pc.clone();
    io_loop.add_callback(move || p.start());
    let ((), errors) = capture_unhandled(|| {
        guard(&io_loop, ms(3500));
        io_loop.start().unwrap();
    });
    pc.stop();
    assert_eq!(count.get(), 3);
    assert_eq!(
        kinds(&errors),
        [ErrorKind::Timeout, ErrorKind::Panic, ErrorKind::Timeout]
    );
    io_loop.close();
}
