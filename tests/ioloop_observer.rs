//! The loop's observer hook (`IOLoop::add_observer`): what it is told, in
//! which order, and that removing it stops it; and the promise of
//! `Remote::add_callback` when `close()` races it: every callback is either
//! run or refused, never accepted and then dropped.

mod common;

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use squall::ioloop::{Observer, Span, SpanKind};
use squall::{Events, IOLoop};

use common::{ms, socketpair};

/// Writes down each event as a word, and checks the times it is given.
#[derive(Default)]
struct Recorder {
    events: RefCell<Vec<String>>,
    open: Cell<Option<Instant>>,
}

impl Recorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.events.borrow_mut())
    }
    fn push(&self, event: String) {
        self.events.borrow_mut().push(event);
    }
}

fn word(kind: SpanKind) -> String {
    match kind {
        SpanKind::Handler { events, .. } => format!("handler {events:?}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

impl Observer for Recorder {
    fn iteration_began(&self, iteration: u64) {
        self.push(format!("iteration {iteration}"));
    }
    fn began(&self, span: &Span, now: Instant) {
        assert!(
            self.open.replace(Some(now)).is_none(),
            "spans do not nest here"
        );
        self.push(format!("began {}", word(span.kind)));
    }
    fn ended(&self, span: &Span, started: Instant, now: Instant) {
        assert_eq!(self.open.take(), Some(started), "ended pairs with began");
        assert!(now >= started);
        self.push(format!("ended {}", word(span.kind)));
    }
    fn poll_began(&self, timeout: Option<Duration>, _now: Instant) {
        self.push(format!("poll began {timeout:?}"));
    }
    fn poll_ended(
        &self,
        _timeout: Option<Duration>,
        events: usize,
        started: Instant,
        now: Instant,
    ) {
        assert!(now >= started);
        self.push(format!("poll ended {events}"));
    }
}

#[test]
fn an_observer_hears_each_step_of_an_iteration_in_order() {
    let io_loop = IOLoop::new().unwrap();
    let recorder = Rc::new(Recorder::default());
    io_loop.add_observer(recorder.clone());

    let (a, mut b) = socketpair();
    io_loop
        .add_edge_handler(&a, |_, _| (), Events::READ)
        .unwrap();
    b.write_all(b"x").unwrap();
    io_loop.add_callback(|| ());
    io_loop.call_later(Duration::ZERO, || ());
    io_loop.remote().add_callback(|| ()).unwrap();
    let sender = io_loop.remote_channel(|_: u8| ());
    sender.send(1).unwrap();
    // Due now, noted in step 1: it runs in the first iteration.
    thread::sleep(ms(1));
    let l = io_loop.clone();
    io_loop.call_later(ms(50), move || l.stop());
    io_loop.start().unwrap();

    let events = recorder.take();
    // The poll waits until the stopping timeout at most.
    let first: Vec<&str> = events
        .iter()
        .take(11)
        .map(|e| e.split(" Some(").next().unwrap())
        .collect();
    assert_eq!(
        first,
        [
            "iteration 1",
            "began callback",
            "ended callback",
            "began remote",
            "ended remote",
            "began remote",
            "ended remote",
            "began timeout",
            "ended timeout",
            "poll began",
            "poll ended 1",
        ],
        "{events:#?}"
    );
    assert_eq!(events[11], "began handler READ");
    assert_eq!(events[12], "ended handler READ");
    // The stopping timeout ends the last iteration, which polls no more.
    assert_eq!(events.last().unwrap(), "ended timeout", "{events:#?}");

    // Removed, it hears nothing more.
    assert!(io_loop.remove_observer(&recorder));
    assert!(!io_loop.remove_observer(&recorder), "only once");
    io_loop.add_callback(|| ());
    let l = io_loop.clone();
    io_loop.add_callback(move || l.stop());
    io_loop.start().unwrap();
    assert!(recorder.take().is_empty());
    io_loop.remove_handler(&a);
}

/// Removes itself in the middle of a span, and adds another observer.
struct Leaver {
    io_loop: IOLoop,
    me: RefCell<Option<Rc<Leaver>>>,
    next: Rc<Recorder>,
}

impl Observer for Leaver {
    fn began(&self, _span: &Span, _now: Instant) {
        if let Some(me) = self.me.borrow_mut().take() {
            assert!(self.io_loop.remove_observer(&me));
            self.io_loop.add_observer(self.next.clone());
        }
    }
}

#[test]
fn observers_may_come_and_go_from_inside_an_observer() {
    let io_loop = IOLoop::new().unwrap();
    let next = Rc::new(Recorder::default());
    let leaver = Rc::new(Leaver {
        io_loop: io_loop.clone(),
        me: RefCell::new(None),
        next: next.clone(),
    });
    *leaver.me.borrow_mut() = Some(leaver.clone());
    io_loop.add_observer(leaver);
    io_loop.add_callback(|| ());
    io_loop.add_callback(|| ());
    let l = io_loop.clone();
    io_loop.call_later(ms(20), move || l.stop());
    io_loop.start().unwrap();
    let events = next.take();
    // Installed during the first callback's `began`: it does not hear that
    // callback end (it never heard it begin), and hears the second whole.
    assert_eq!(
        events[..2],
        ["began callback", "ended callback"],
        "{events:#?}"
    );
    assert_eq!(events.last().unwrap(), "ended timeout");
}

/// Counts ends, to see that the blocking log and a user observer coexist
/// and that timers still see the time move while the loop only spins on
/// callbacks (the observers' clock reading is the loop's).
#[derive(Default)]
struct Counter(Cell<u64>);

impl Observer for Counter {
    fn ended(&self, _span: &Span, _started: Instant, _now: Instant) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn timers_fire_on_time_while_observed_callbacks_spin() {
    let io_loop = IOLoop::new().unwrap();
    io_loop.set_blocking_log_threshold(Some(Duration::from_secs(10)));
    let counter = Rc::new(Counter::default());
    io_loop.add_observer(counter.clone());
    fn spin(l: IOLoop) {
        let next = l.clone();
        l.add_callback(move || spin(next));
    }
    spin(io_loop.clone());
    let t0 = Instant::now();
    let fired = Rc::new(Cell::new(None));
    let (f, l) = (fired.clone(), io_loop.clone());
    io_loop.call_later(ms(30), move || {
        f.set(Some(t0.elapsed()));
        l.stop();
    });
    let guard = common::guard(&io_loop, Duration::from_secs(5));
    io_loop.start().unwrap();
    assert!(!guard.get(), "the 30 ms timeout did not run within 5 s");
    let fired = fired.get().unwrap();
    assert!(fired >= ms(30) && fired < ms(1000), "{fired:?}");
    assert!(counter.0.get() > 2, "the user observer saw the spins");
    io_loop.set_blocking_log_threshold(None);
}

/// Threads hammer `Remote::add_callback` while the loop closes: each
/// attempt is run or refused, never accepted and lost. `close` picks the
/// way the loop goes: `close()` from one of the callbacks, or being dropped
/// unclosed after a callback stopped it.
fn hammer_while_closing(close: bool) {
    const THREADS: usize = 4;
    const ROUNDS: usize = 30;
    /// Attempts per thread at most (a thread stops at its first refusal).
    const CAP: usize = 5_000;
    /// The callback that closes (or stops) the loop: with others in flight.
    const CLOSE_AT: usize = 2_000;
    for round in 0..ROUNDS {
        let io_loop = IOLoop::new().unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let attempts = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(THREADS + 1));
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                let remote = io_loop.remote();
                let (ran, accepted, refused, attempts, start) = (
                    ran.clone(),
                    accepted.clone(),
                    refused.clone(),
                    attempts.clone(),
                    start.clone(),
                );
                thread::spawn(move || {
                    start.wait();
                    for _ in 0..CAP {
                        attempts.fetch_add(1, Ordering::Relaxed);
                        let ran = ran.clone();
                        let sent = remote.add_callback(move || {
                            let n = ran.fetch_add(1, Ordering::Relaxed) + 1;
                            if n == CLOSE_AT {
                                if close {
                                    IOLoop::current().close();
                                } else {
                                    IOLoop::current().stop();
                                }
                            }
                        });
                        match sent {
                            Ok(()) => accepted.fetch_add(1, Ordering::Relaxed),
                            Err(err) => {
                                assert_eq!(err.kind(), squall::ErrorKind::Closed);
                                refused.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                        };
                    }
                })
            })
            .collect();
        start.wait();
        io_loop.start().unwrap();
        if close {
            assert!(io_loop.is_closed());
        } else {
            drop(io_loop);
        }
        for worker in workers {
            worker.join().unwrap();
        }
        let (ran, accepted, refused, attempts) = (
            ran.load(Ordering::Relaxed),
            accepted.load(Ordering::Relaxed),
            refused.load(Ordering::Relaxed),
            attempts.load(Ordering::Relaxed),
        );
        assert!(ran >= CLOSE_AT && refused <= THREADS);
        assert_eq!(
            ran, accepted,
            "round {round}: {accepted} accepted, {ran} ran, {refused} refused"
        );
        assert_eq!(ran + refused, attempts, "round {round}");
    }
}

#[test]
fn remote_callbacks_are_run_or_refused_when_close_races() {
    hammer_while_closing(true);
}

#[test]
fn remote_callbacks_are_run_or_refused_when_the_loop_is_dropped() {
    hammer_while_closing(false);
}

#[test]
fn a_remote_callback_run_by_close_finds_the_loop_closed() {
    let io_loop = IOLoop::new().unwrap();
    let seen = Arc::new(AtomicBool::new(false));
    let s = seen.clone();
    io_loop
        .remote()
        .add_callback(move || {
            let current = IOLoop::current();
            // Whatever it schedules on a closed loop is dropped, not run.
            current.add_callback(|| -> () { panic!("ran on a closed loop") });
            s.store(true, Ordering::Relaxed);
        })
        .unwrap();
    io_loop.make_current();
    io_loop.close();
    assert!(
        seen.load(Ordering::Relaxed),
        "close ran the accepted callback"
    );
    assert!(io_loop.remote().add_callback(|| ()).is_err());
    IOLoop::clear_current();
}
