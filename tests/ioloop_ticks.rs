//! The loop keeps its time as integer ticks of the monotonic clock and
//! converts `Instant`s at its edges: these check that the conversion is
//! invisible — deadlines given as `Instant`s and as delays order exactly,
//! a deadline of "now" is due now, not a rounding later, and one past
//! what ticks hold is "never" on either clock.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use squall::ioloop::{Clock, ManualClock, Observer};
use squall::IOLoop;

/// Runs `n` timeouts one after another, each scheduled by the previous one
/// through `schedule`; returns how long the chain took.
fn chain(n: u32, schedule: fn(&IOLoop, Box<dyn FnOnce()>)) -> Duration {
    fn step(l: IOLoop, left: u32, schedule: fn(&IOLoop, Box<dyn FnOnce()>)) {
        if left == 0 {
            l.stop();
            return;
        }
        let next = l.clone();
        schedule(&l, Box::new(move || step(next, left - 1, schedule)));
    }
    let io_loop = IOLoop::new().unwrap();
    let t0 = Instant::now();
    step(io_loop.clone(), n, schedule);
    io_loop.start().unwrap();
    let took = t0.elapsed();
    io_loop.close();
    took
}

/// A timeout at `time()` is due at once: had the `Instant` become a tick
/// even a nanosecond late, each poll would wait epoll's smallest timeout,
/// a millisecond, and 300 of them would take 300 ms.
#[test]
fn a_deadline_of_now_is_due_without_a_millisecond_wait() {
    let took = chain(300, |l, f| {
        l.call_at(l.time(), f);
    });
    assert!(took < Duration::from_millis(250), "{took:?}");
    let took = chain(300, |l, f| {
        l.call_later(Duration::ZERO, f);
    });
    assert!(took < Duration::from_millis(250), "{took:?}");
}

/// Deadlines in the past (minutes, and a year before now) still run in
/// deadline order, whatever order they were added in, and before a
/// deadline of now.
#[test]
fn past_deadlines_run_in_deadline_order() {
    let io_loop = IOLoop::new().unwrap();
    let order = Rc::new(RefCell::new(Vec::new()));
    let now = io_loop.time();
    let minutes = |m: u64| now.checked_sub(Duration::from_secs(60 * m));
    let Some(year) = now.checked_sub(Duration::from_secs(365 * 24 * 3600 - 60)) else {
        // A clock too young to go back that far: nothing to check.
        return;
    };
    let at = [
        ("10 min", minutes(10).unwrap()),
        ("now", now),
        ("a year", year),
        ("20 min", minutes(20).unwrap()),
    ];
    for (name, when) in at {
        let o = order.clone();
        io_loop.call_at(when, move || o.borrow_mut().push(name));
    }
    let l = io_loop.clone();
    io_loop.call_later(Duration::from_millis(5), move || l.stop());
    io_loop.start().unwrap();
    assert_eq!(*order.borrow(), ["a year", "20 min", "10 min", "now"]);
    io_loop.close();
}

/// An `Instant` deadline and a delay that mean the same moment meet on
/// one time line: the one added first runs first, and neither runs before
/// the moment.
#[test]
fn instant_and_delay_deadlines_share_one_time_line() {
    let io_loop = IOLoop::new().unwrap();
    let order = Rc::new(RefCell::new(Vec::new()));
    let start = io_loop.time();
    let (o, l) = (order.clone(), io_loop.clone());
    io_loop.call_later(Duration::from_millis(30), move || {
        o.borrow_mut().push(("delay", l.time() - start));
    });
    let (o, l) = (order.clone(), io_loop.clone());
    io_loop.call_at(start + Duration::from_millis(20), move || {
        o.borrow_mut().push(("instant", l.time() - start));
    });
    let l = io_loop.clone();
    io_loop.call_at(start + Duration::from_millis(40), move || l.stop());
    io_loop.start().unwrap();
    let order = order.borrow();
    assert_eq!(order.len(), 2, "{order:?}");
    assert_eq!(order[0].0, "instant");
    assert!(order[0].1 >= Duration::from_millis(20), "{order:?}");
    assert_eq!(order[1].0, "delay");
    assert!(order[1].1 >= Duration::from_millis(30), "{order:?}");
    io_loop.close();
}

/// The loop reuses the end of the last timed span as "now" for its poll
/// timeout. A callback nobody timed (the blocking log was off) that turns
/// the log back on and then blocks must not leave an earlier span's end
/// standing in for now: the poll would wait the blocked time too long.
#[test]
fn turning_the_blocking_log_back_on_leaves_no_stale_now() {
    let io_loop = IOLoop::new().unwrap();
    io_loop.set_blocking_log_threshold(Some(Duration::from_secs(10)));
    let t0 = Instant::now();
    let fired = Rc::new(RefCell::new(None));
    let (l, f) = (io_loop.clone(), fired.clone());
    io_loop.call_later(Duration::from_millis(200), move || {
        *f.borrow_mut() = Some(t0.elapsed());
        l.stop();
    });
    let l = io_loop.clone();
    io_loop.add_callback(move || l.set_blocking_log_threshold(None));
    let l = io_loop.clone();
    io_loop.add_callback(move || {
        l.set_blocking_log_threshold(Some(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(400));
    });
    io_loop.start().unwrap();
    let at = fired.borrow().unwrap();
    // Due at once after the 400 ms block; the stale reading made it ~600 ms.
    assert!(at < Duration::from_millis(550), "fired at {at:?}");
}

/// Stops `io_loop` from another thread after `after` of real time: the way
/// out of a loop that rightly has nothing to wait for.
fn stop_from_a_thread(io_loop: &IOLoop, after: Duration) -> std::thread::JoinHandle<()> {
    let remote = io_loop.remote();
    std::thread::spawn(move || {
        std::thread::sleep(after);
        let _ = remote.stop();
    })
}

/// Far past what ticks hold: `Instant` reaches that far on Linux (the
/// test skips where it does not).
const CENTURIES: Duration = Duration::from_secs(1000 * 365 * 24 * 3600);

/// A deadline past what the loop's ticks can hold (`Duration::MAX`, or an
/// `Instant` centuries on) is "never". On a manual clock, an idle loop
/// whose only timeouts are such must wait as a loop with no timeout does,
/// not jump ~583 years to the saturated tick and run them; after a real
/// deadline, the clock stops there, and even a clock moved by hand past
/// every tick runs none of them.
#[test]
fn a_saturated_deadline_never_fires_on_a_manual_clock() {
    let clock = ManualClock::new();
    let io_loop = IOLoop::with_clock(Clock::Manual(clock.clone())).unwrap();
    let t0 = io_loop.time();
    let ran = Rc::new(RefCell::new(Vec::new()));
    let r = ran.clone();
    let never = io_loop.call_later(Duration::MAX, move || r.borrow_mut().push("call_later"));
    let r = ran.clone();
    io_loop.add_timeout(Duration::MAX, move || r.borrow_mut().push("add_timeout"));
    if let Some(far) = t0.checked_add(CENTURIES) {
        let r = ran.clone();
        io_loop.call_at(far, move || r.borrow_mut().push("call_at"));
    }
    let r = ran.clone();
    io_loop.call_later(Duration::from_secs(10), move || r.borrow_mut().push("10 s"));

    let stopper = stop_from_a_thread(&io_loop, Duration::from_millis(100));
    io_loop.start().unwrap();
    stopper.join().unwrap();
    assert_eq!(*ran.borrow(), ["10 s"]);
    // The clock moved to the one real deadline and no further.
    assert_eq!(io_loop.time() - t0, Duration::from_secs(10));
    // Still pending: removable like any other timeout.
    assert!(io_loop.remove_timeout(never));

    // Moved by hand past every tick, the clock still runs none of them.
    if let Some(far) = t0.checked_add(CENTURIES * 2) {
        clock.advance_to(far);
        let stopper = stop_from_a_thread(&io_loop, Duration::from_millis(50));
        io_loop.start().unwrap();
        stopper.join().unwrap();
        assert_eq!(*ran.borrow(), ["10 s"]);
        // There, a timeout due now still runs: the clock's "now" is kept
        // below "never".
        let r = ran.clone();
        io_loop.call_later(Duration::ZERO, move || r.borrow_mut().push("due now"));
        let r = ran.clone();
        io_loop.call_at(io_loop.time(), move || r.borrow_mut().push("at now"));
        let stopper = stop_from_a_thread(&io_loop, Duration::from_millis(50));
        io_loop.start().unwrap();
        stopper.join().unwrap();
        assert_eq!(*ran.borrow(), ["10 s", "due now", "at now"]);
    }
    io_loop.close();
}

/// Records the timeout of every poll the loop makes.
#[derive(Default)]
struct PollTimeouts(RefCell<Vec<Option<Duration>>>);

impl Observer for PollTimeouts {
    fn poll_began(&self, timeout: Option<Duration>, _now: Instant) {
        self.0.borrow_mut().push(timeout);
    }
}

/// The system clock agrees: a `Duration::MAX` timeout never runs, and the
/// loop waits for it as for no timeout at all (a poll with no timeout, not
/// one of some 584 years that epoll cuts to 24 days), until something else
/// happens.
#[test]
fn a_saturated_deadline_never_fires_on_the_system_clock() {
    let io_loop = IOLoop::new().unwrap();
    let polls = Rc::new(PollTimeouts::default());
    io_loop.add_observer(polls.clone());
    let ran = Rc::new(RefCell::new(false));
    let r = ran.clone();
    io_loop.call_later(Duration::MAX, move || *r.borrow_mut() = true);
    let t0 = Instant::now();
    let stopper = stop_from_a_thread(&io_loop, Duration::from_millis(50));
    io_loop.start().unwrap();
    stopper.join().unwrap();
    assert!(!*ran.borrow());
    assert!(t0.elapsed() >= Duration::from_millis(50));
    assert_eq!(io_loop.timer_stats().pending, 1);
    let polls = polls.0.borrow();
    assert!(!polls.is_empty());
    assert!(polls.iter().all(Option::is_none), "{polls:?}");
    drop(polls);
    io_loop.close();
}

/// A manual clock moved by `Duration::MAX` goes as far as time goes, and a
/// timeout due then still runs.
#[test]
fn a_manual_clock_advanced_by_duration_max_saturates() {
    let clock = ManualClock::new();
    let io_loop = IOLoop::with_clock(Clock::Manual(clock.clone())).unwrap();
    let t0 = io_loop.time();
    clock.advance(Duration::MAX);
    assert!(io_loop.time() > t0);
    clock.advance(Duration::MAX);
    let ran = Rc::new(RefCell::new(false));
    let r = ran.clone();
    io_loop.call_later(Duration::ZERO, move || *r.borrow_mut() = true);
    let stopper = stop_from_a_thread(&io_loop, Duration::from_millis(50));
    io_loop.start().unwrap();
    stopper.join().unwrap();
    assert!(*ran.borrow());
    io_loop.close();
}
