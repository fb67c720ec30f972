//! Typed channels into a loop (`IOLoop::remote_channel`): values from other
//! threads reach one handler on the loop's thread, in order, exactly once.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::ms;
use squall::stack_context::ExceptionStackContext;
use squall::{Error, ErrorKind, IOLoop};

#[test]
fn values_from_4_threads_arrive_once_each_in_per_thread_order_on_the_loop_thread() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 20_000;
    let io_loop = IOLoop::new().unwrap();
    let loop_thread = thread::current().id();
    let seen = Rc::new(RefCell::new(vec![Vec::new(); THREADS as usize]));
    let count = Rc::new(Cell::new(0u64));
    let (s, c, l) = (seen.clone(), count.clone(), io_loop.clone());
    let tx = io_loop.remote_channel(move |(t, i): (u64, u64)| {
        assert_eq!(thread::current().id(), loop_thread);
        s.borrow_mut()[t as usize].push(i);
        c.set(c.get() + 1);
        if c.get() == THREADS * PER_THREAD {
            l.stop();
        }
    });
    let start = Arc::new(Barrier::new(THREADS as usize));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (tx, start) = (tx.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                for i in 0..PER_THREAD {
                    tx.send((t, i)).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let guard = io_loop.call_later(Duration::from_secs(20), || -> () { panic!("values lost") });
    io_loop.start().unwrap();
    io_loop.remove_timeout(guard);
    for w in workers {
        w.join().unwrap();
    }
    for per_thread in seen.borrow().iter() {
        assert_eq!(*per_thread, (0..PER_THREAD).collect::<Vec<_>>());
    }
}

#[test]
fn a_send_wakes_a_loop_sleeping_in_a_long_poll() {
    let io_loop = IOLoop::new().unwrap();
    let l = io_loop.clone();
    let tx = io_loop.remote_channel(move |()| l.stop());
    // Nothing else to do: the loop would sleep for an hour.
    let guard = io_loop.call_later(Duration::from_secs(3600), || ());
    let sender = thread::spawn(move || {
        thread::sleep(ms(50));
        tx.send(()).unwrap();
    });
    let t0 = Instant::now();
    io_loop.start().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5));
    io_loop.remove_timeout(guard);
    sender.join().unwrap();
}

#[test]
fn the_handler_is_forgotten_once_every_sender_is_gone_and_the_queue_drained() {
    let io_loop = IOLoop::new().unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let dropped = Rc::new(Cell::new(false));
    struct OnDrop(Rc<Cell<bool>>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let flag = OnDrop(dropped.clone());
    let g = got.clone();
    let tx = io_loop.remote_channel(move |v: u32| {
        let _keep = &flag;
        g.borrow_mut().push(v);
    });
    let tx2 = tx.clone();
    thread::spawn(move || {
        tx.send(1).unwrap();
        tx2.send(2).unwrap();
    })
    .join()
    .unwrap();
    // Both senders are gone; the values sent before are still delivered.
    let l = io_loop.clone();
    io_loop.call_later(ms(20), move || l.stop());
    io_loop.start().unwrap();
    assert_eq!(*got.borrow(), [1, 2]);
    assert!(dropped.get(), "the handler (and what it owns) was dropped");
}

#[test]
fn an_error_from_the_handler_goes_to_the_context_it_was_made_under() {
    let io_loop = IOLoop::new().unwrap();
    let caught = Rc::new(RefCell::new(Vec::new()));
    let c = caught.clone();
    let handler = ExceptionStackContext::new(move |err: &Error| {
        c.borrow_mut().push(err.message().to_owned());
        true
    });
    let l = io_loop.clone();
    let mut tx = None;
    let _deactivate = handler.run(|| {
        tx = Some(io_loop.remote_channel(move |v: i32| {
            if v < 0 {
                return Err(Error::new(ErrorKind::InvalidArgument, format!("bad {v}")));
            }
            if v == 0 {
                l.stop();
            }
            Ok(())
        }));
    });
    let tx = tx.unwrap();
    thread::spawn(move || {
        for v in [-1, 5, -2, 0] {
            tx.send(v).unwrap();
        }
    })
    .join()
    .unwrap();
    io_loop.start().unwrap();
    assert_eq!(*caught.borrow(), ["bad -1", "bad -2"]);
}

#[test]
fn a_panicking_handler_does_not_kill_the_loop_or_the_channel() {
    let io_loop = IOLoop::new().unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let (g, l) = (got.clone(), io_loop.clone());
    let tx = io_loop.remote_channel(move |v: u8| {
        if v == 1 {
            panic!("handler panics on purpose");
        }
        g.borrow_mut().push(v);
        if v == 3 {
            l.stop();
        }
    });
    for v in [1, 2, 3] {
        tx.send(v).unwrap();
    }
    let ((), unhandled) = squall::testing::capture_unhandled(|| io_loop.start().unwrap());
    assert_eq!(*got.borrow(), [2, 3]);
    assert_eq!(unhandled.len(), 1);
    assert_eq!(unhandled[0].kind(), ErrorKind::Panic);
}

#[test]
fn a_bounded_channel_refuses_when_full_and_takes_more_once_drained() {
    let io_loop = IOLoop::new().unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let tx = io_loop.remote_sync_channel(2, move |v: u8| g.borrow_mut().push(v));
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    assert_eq!(tx.try_send(3).unwrap_err().kind(), ErrorKind::BufferFull);
    let l = io_loop.clone();
    io_loop.add_callback(move || l.stop());
    io_loop.start().unwrap();
    assert_eq!(*got.borrow(), [1, 2]);
    tx.try_send(3).unwrap();
}

#[test]
fn sending_to_a_closed_or_dropped_loop_reports_closed() {
    let io_loop = IOLoop::new().unwrap();
    let tx = io_loop.remote_channel(|_: u8| ());
    io_loop.close();
    assert!(tx.is_closed());
    assert_eq!(tx.send(1).unwrap_err().kind(), ErrorKind::Closed);
    assert_eq!(tx.try_send(1).unwrap_err().kind(), ErrorKind::Closed);

    let io_loop = IOLoop::new().unwrap();
    let tx = io_loop.remote_channel(|_: u8| ());
    drop(io_loop);
    assert_eq!(tx.send(1).unwrap_err().kind(), ErrorKind::Closed);

    // A channel made on a closed loop: sends fail the same way.
    let io_loop = IOLoop::new().unwrap();
    io_loop.close();
    let tx = io_loop.remote_channel(|_: u8| ());
    assert_eq!(tx.send(1).unwrap_err().kind(), ErrorKind::Closed);
}

#[test]
fn a_channel_keeps_a_manual_clock_loop_from_jumping_ahead() {
    // A value waiting in a channel is work: the idle loop must not skip to
    // the next deadline before handling it.
    let (io_loop, clock) = common::manual_loop();
    let t0 = io_loop.time();
    let at = Rc::new(Cell::new(None));
    let (a, l) = (at.clone(), io_loop.clone());
    let tx = io_loop.remote_channel(move |()| a.set(Some(l.time())));
    tx.send(()).unwrap();
    let l = io_loop.clone();
    io_loop.call_later(Duration::from_secs(100), move || l.stop());
    io_loop.start().unwrap();
    assert_eq!(at.get(), Some(t0));
    assert_eq!(clock.now(), t0 + Duration::from_secs(100));
}

/// `send` on a full bounded channel from the loop's own thread would wait
/// for the loop, which is this thread: an error instead of a deadlock.
/// (Run on a thread of its own, so a regression fails the test instead of
/// hanging it.)
#[test]
fn send_on_a_full_channel_from_the_loop_s_thread_is_an_error() {
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let io_loop = IOLoop::new().unwrap();
        let tx = io_loop.remote_sync_channel(1, |_: u8| ());
        tx.send(1).unwrap();
        let second = tx.send(2).map_err(|e| e.kind());
        // try_send says the same, never waiting.
        let third = tx.try_send(3).map_err(|e| e.kind());
        let _ = done_tx.send((second, third));
    });
    let (second, third) = done
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("send deadlocked on the loop's own thread");
    assert_eq!(second, Err(squall::ErrorKind::BufferFull));
    assert_eq!(third, Err(squall::ErrorKind::BufferFull));
}

/// What a `send` said `Ok` for is handled, even when the loop closes before
/// its next iteration: `close()` hands the queued values to the handler (the
/// loop already closed), as it runs `Remote::add_callback`'s queued callbacks.
#[test]
fn values_queued_when_the_loop_closes_are_still_handled() {
    let io_loop = IOLoop::new().unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let (g, l) = (got.clone(), io_loop.clone());
    let tx = io_loop.remote_channel(move |v: u32| {
        // The loop is closed by now: what the handler schedules is dropped.
        assert!(l.is_closed());
        g.borrow_mut().push(v);
    });
    let sender = thread::spawn(move || {
        for v in 0..100 {
            tx.send(v).unwrap();
        }
        tx
    });
    let tx = sender.join().unwrap();
    io_loop.close();
    assert_eq!(*got.borrow(), (0..100).collect::<Vec<_>>());
    assert_eq!(tx.send(100).unwrap_err().kind(), ErrorKind::Closed);

    // The same for a loop dropped without close(), and a bounded channel.
    let io_loop = IOLoop::new().unwrap();
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    let tx = io_loop.remote_sync_channel(8, move |v: u32| g.set(g.get() + v));
    for v in 1..=8 {
        tx.send(v).unwrap();
    }
    drop(io_loop);
    assert_eq!(got.get(), 36);
    assert_eq!(tx.try_send(1).unwrap_err().kind(), ErrorKind::Closed);
}

/// Senders racing `close()`, on a bounded channel too (some of them waiting
/// for room): each value is either refused with `Closed` or handled, never
/// lost, and no sender waits for good.
#[test]
fn every_value_is_refused_or_handled_when_close_races_the_senders() {
    for capacity in [None, Some(4)] {
        let io_loop = IOLoop::new().unwrap();
        let handled = Rc::new(Cell::new(0u64));
        let h = handled.clone();
        let tx = match capacity {
            None => io_loop.remote_channel(move |_: u64| h.set(h.get() + 1)),
            Some(cap) => io_loop.remote_sync_channel(cap, move |_: u64| h.set(h.get() + 1)),
        };
        let start = Arc::new(Barrier::new(5));
        let senders: Vec<_> = (0..4)
            .map(|_| {
                let (tx, start) = (tx.clone(), start.clone());
                thread::spawn(move || {
                    start.wait();
                    let mut accepted = 0u64;
                    while tx.send(accepted).is_ok() {
                        accepted += 1;
                    }
                    accepted
                })
            })
            .collect();
        drop(tx);
        start.wait();
        // Let the loop take some, then close it under the senders' feet.
        let l = io_loop.clone();
        io_loop.call_later(ms(20), move || l.close());
        io_loop.start().unwrap();
        let accepted: u64 = senders.into_iter().map(|s| s.join().unwrap()).sum();
        assert!(accepted > 0);
        assert_eq!(handled.get(), accepted, "capacity {capacity:?}");
    }
}
