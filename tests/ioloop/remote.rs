//! `Remote`: callbacks and `stop` from other threads, waking a sleeping
//! loop, and racing `close` or a dropped loop.

use super::*;

#[test]
fn remote_callbacks_from_8_threads_arrive_exactly_once_in_order() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 10_000;
    const TOTAL: usize = THREADS * PER_THREAD;

    struct Seen {
        counts: Vec<Vec<u8>>,
        next: Vec<usize>,
        out_of_order: usize,
        total: usize,
    }
    let seen = Arc::new(Mutex::new(Seen {
        counts: vec![vec![0; PER_THREAD]; THREADS],
        next: vec![0; THREADS],
        out_of_order: 0,
        total: 0,
    }));

    let io_loop = IOLoop::new().unwrap();
    let timed_out = guard(&io_loop, secs(20));
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let (remote, seen) = (io_loop.remote(), seen.clone());
            thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let seen = seen.clone();
                    remote
                        .add_callback(move || {
                            let mut s = seen.lock().unwrap();
                            s.counts[t][i] += 1;
                            if s.next[t] != i {
                                s.out_of_order += 1;
                            }
                            s.next[t] = i + 1;
                            s.total += 1;
                            if s.total == TOTAL {
                                IOLoop::current().stop();
                            }
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    io_loop.start().unwrap();
    for sender in senders {
        sender.join().unwrap();
    }
    assert!(!timed_out.get(), "not all remote callbacks arrived");
    let s = seen.lock().unwrap();
    assert_eq!(s.total, TOTAL);
    for (t, counts) in s.counts.iter().enumerate() {
        let wrong: Vec<_> = counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != 1)
            .collect();
        assert!(
            wrong.is_empty(),
            "thread {t}: (seq, count) {:?}",
            &wrong[..wrong.len().min(10)]
        );
    }
    assert_eq!(
        s.out_of_order, 0,
        "one thread's callbacks run in the order sent"
    );
    io_loop.close();
}

#[test]
fn remote_callback_wakes_a_loop_sleeping_in_a_long_poll() {
    let io_loop = IOLoop::new().unwrap();
    // The only pending timeout is an hour away: the loop sleeps in poll.
    io_loop.call_later(secs(3600), || panic!("an hour passed?"));
    // A watchdog that does not rely on the waker: if the remote callback never
    // runs, a write on this socket ends the test instead of hanging it.
    let (watch, mut poke) = socketpair();
    let watchdog_fired = Rc::new(Cell::new(false));
    let (w, l) = (watchdog_fired.clone(), io_loop.clone());
    io_loop
        .add_handler(
            &watch,
            move |_, _| {
                w.set(true);
                l.stop();
            },
            Events::READ,
        )
        .unwrap();

    let latency: Arc<Mutex<Option<Duration>>> = Arc::new(Mutex::new(None));
    let done = Arc::new(AtomicBool::new(false));
    let remote = io_loop.remote();
    let (lat, dn) = (latency.clone(), done.clone());
    let sender = thread::spawn(move || {
        // Give the loop time to go to sleep (not an assertion: the bound below
        // holds whether or not it is asleep by then).
        thread::sleep(ms(50));
        let sent = Instant::now();
        let d = dn.clone();
        remote
            .add_callback(move || {
                *lat.lock().unwrap() = Some(sent.elapsed());
                d.store(true, Ordering::SeqCst);
                IOLoop::current().stop();
            })
            .unwrap();
        for _ in 0..500 {
            if dn.load(Ordering::SeqCst) {
                return;
            }
            thread::sleep(ms(10));
        }
        poke.write_all(b"!").unwrap();
    });
    io_loop.start().unwrap();
    sender.join().unwrap();
    assert!(
        !watchdog_fired.get(),
        "the remote callback did not wake the loop"
    );
    let latency = latency.lock().unwrap().expect("remote callback ran");
    assert!(latency < ms(100), "woken after {latency:?}");
    io_loop.close();
}

/// Small closures travel inline in the channel, big ones boxed: both run,
/// panics in either are caught, and ones never run (the loop closed first)
/// still drop what they captured.
#[test]
fn remote_callbacks_small_and_big_run_panic_and_drop_cleanly() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let io_loop = IOLoop::new().unwrap();
    let remote = io_loop.remote();
    let ran = Arc::new(AtomicUsize::new(0));
    let (r1, r2) = (ran.clone(), ran.clone());
    let big = [7u8; 512];
    thread::spawn(move || {
        remote
            .add_callback(move || {
                r1.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        remote
            .add_callback(move || {
                r2.fetch_add(big.iter().map(|&b| b as usize).sum(), Ordering::SeqCst);
            })
            .unwrap();
        remote
            .add_callback(|| -> () { panic!("inline panic") })
            .unwrap();
        remote
            .add_callback(move || -> () {
                let _keep = big;
                panic!("boxed panic")
            })
            .unwrap();
        remote.stop().unwrap();
    })
    .join()
    .unwrap();
    let (_, errors) = squall::testing::capture_unhandled(|| io_loop.start().unwrap());
    assert_eq!(ran.load(Ordering::SeqCst), 1 + 7 * 512);
    assert_eq!(errors.len(), 2, "{errors:?}");
    // Queued but never run: captures dropped at close, small or big.
    let remote = io_loop.remote();
    let token = Arc::new(());
    let (t1, t2) = (token.clone(), token.clone());
    remote.add_callback(move || drop(t1)).unwrap();
    remote
        .add_callback(move || {
            let _keep = (t2, [0u8; 256]);
        })
        .unwrap();
    assert_eq!(Arc::strong_count(&token), 3);
    io_loop.close();
    drop(remote);
    assert_eq!(Arc::strong_count(&token), 1);
}

#[test]
fn remote_stop_stops_the_loop() {
    let io_loop = IOLoop::new().unwrap();
    let timed_out = guard(&io_loop, secs(20));
    let remote = io_loop.remote();
    let sender = thread::spawn(move || remote.stop().unwrap());
    io_loop.start().unwrap();
    sender.join().unwrap();
    assert!(!timed_out.get());
    io_loop.close();
}

#[test]
fn remote_add_callback_racing_close_never_crashes_and_then_reports_closed() {
    const SENDERS: usize = 4;
    for round in 0..30 {
        let io_loop = IOLoop::new().unwrap();
        let remote = io_loop.remote();
        let received = Arc::new(AtomicUsize::new(0));
        let go = Arc::new(AtomicBool::new(false));
        let senders: Vec<_> = (0..SENDERS)
            .map(|_| {
                let (remote, received, go) = (remote.clone(), received.clone(), go.clone());
                thread::spawn(move || {
                    while !go.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                    let mut sent = 0u64;
                    loop {
                        let r = received.clone();
                        match remote.add_callback(move || {
                            let n = r.fetch_add(1, Ordering::SeqCst) + 1;
                            if round % 3 == 0 && n == 200 {
                                // Close from inside a remote callback.
                                IOLoop::current().close();
                            }
                        }) {
                            Ok(()) => sent += 1,
                            Err(err) => return (err.kind(), sent),
                        }
                    }
                })
            })
            .collect();
        match round % 3 {
            0 => {}
            1 => {
                // Close from a callback, while the senders are going.
                let l = io_loop.clone();
                let r = received.clone();
                io_loop.call_later(ms(1), move || {
                    if r.load(Ordering::SeqCst) > 0 {
                        l.close();
                    } else {
                        let l2 = l.clone();
                        l.call_later(ms(1), move || l2.close());
                    }
                });
            }
            _ => {
                // Stop, then close outside `start` while senders keep sending.
                let l = io_loop.clone();
                io_loop.call_later(ms(1), move || l.stop());
            }
        }
        let timed_out = guard(&io_loop, secs(20));
        go.store(true, Ordering::Release);
        io_loop.start().unwrap();
        io_loop.close();
        for sender in senders {
            let (kind, _sent) = sender.join().unwrap();
            assert_eq!(kind, ErrorKind::Closed, "round {round}");
        }
        assert!(!timed_out.get(), "round {round}");
        assert!(io_loop.is_closed());
        assert!(remote.is_closed());
        let err = remote.add_callback(|| ()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Closed);
        assert_eq!(remote.stop().unwrap_err().kind(), ErrorKind::Closed);
    }
}

#[test]
fn remote_of_a_dropped_loop_reports_closed() {
    let remote = {
        let io_loop = IOLoop::new().unwrap();
        io_loop.remote()
    };
    let err = remote.add_callback(|| ()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
    assert!(
        remote.is_closed(),
        "the loop is gone: its remote should say so"
    );
}
