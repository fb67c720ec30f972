//! Property test of the timeout heap (issue 11): random add / remove /
//! advance sequences on a loop with a `ManualClock` fire exactly the
//! callbacks a model (a sorted Vec) fires, in its order: earlier deadline
//! first, ties in insertion order (src/ioloop/timers.rs).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use squall::ioloop::{Clock, ManualClock, TimeoutHandle};
use squall::IOLoop;

#[derive(Clone, Debug)]
enum Op {
    /// `call_later(ms)`; small delays make ties common.
    Add(u64),
    /// Removes the timeout added `n`-th (modulo how many were added).
    Remove(usize),
    /// Moves the clock forward and runs what is due.
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..20).prop_map(Op::Add),
        2 => any::<usize>().prop_map(Op::Remove),
        2 => (0u64..15).prop_map(Op::Advance),
    ]
}

/// Runs the loop until `target`: a sentinel timeout at `target`, added after
/// every pending one, stops it; the manual clock jumps deadline to deadline.
fn advance_to(io_loop: &IOLoop, target: Instant) {
    let l = io_loop.clone();
    io_loop.call_at(target, move || l.stop());
    io_loop.start().unwrap();
    assert_eq!(io_loop.time(), target);
}

fn check(ops: &[Op]) -> Result<(), TestCaseError> {
    let clock = ManualClock::new();
    let io_loop = IOLoop::with_clock(Clock::Manual(clock.clone())).unwrap();
    let base = io_loop.time();
    let fired: Rc<RefCell<Vec<usize>>> = Rc::default();

    // The model: pending (deadline ms, id), fired ids, the time in ms.
    let mut pending: Vec<(u64, usize)> = Vec::new();
    let mut model_fired = Vec::new();
    let mut now = 0u64;
    let mut handles: Vec<TimeoutHandle> = Vec::new();

    for op in ops {
        match *op {
            Op::Add(delay) => {
                let id = handles.len();
                let f = fired.clone();
                handles.push(io_loop.call_later(Duration::from_millis(delay), move || {
                    f.borrow_mut().push(id)
                }));
                // Stable sort by deadline keeps insertion order among ties.
                let at = pending.partition_point(|&(d, _)| d <= now + delay);
                pending.insert(at, (now + delay, id));
            }
            Op::Remove(n) if !handles.is_empty() => {
                let id = n % handles.len();
                let was = pending.iter().position(|&(_, i)| i == id);
                if let Some(at) = was {
                    pending.remove(at);
                }
                prop_assert_eq!(io_loop.remove_timeout(handles[id]), was.is_some());
            }
            Op::Remove(_) => {}
            Op::Advance(by) => {
                now += by;
                let due = pending.partition_point(|&(d, _)| d <= now);
                model_fired.extend(pending.drain(..due).map(|(_, id)| id));
                advance_to(&io_loop, base + Duration::from_millis(now));
                prop_assert_eq!(&*fired.borrow(), &model_fired);
            }
        }
    }
    // Everything left fires, in order.
    model_fired.extend(pending.iter().map(|&(_, id)| id));
    let last = pending.last().map_or(now, |&(d, _)| d.max(now));
    advance_to(&io_loop, base + Duration::from_millis(last));
    prop_assert_eq!(&*fired.borrow(), &model_fired);
    io_loop.close();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn timers_fire_as_the_model_says(ops in prop::collection::vec(op(), 0..120)) {
        check(&ops)?;
    }
}
