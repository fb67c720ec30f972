//! Property test of the timeout heap (issue 11): random add / remove /
//! advance sequences on a loop with a `ManualClock` fire exactly the
//! callbacks a model (a sorted Vec) fires, in its order: earlier deadline
//! first, ties in insertion order (src/ioloop/timers.rs).
//!
//! The model simulates the loop's iterations, because that is where the
//! subtle cases live: a callback that removes a timeout due in the same
//! iteration (it must not run), a callback that adds one (it runs in a later
//! iteration, even with no delay), and enough removals to make the heap
//! rebuild itself (ties must keep their order through it).

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
    /// A timeout whose callback removes the one added `n`-th (modulo how
    /// many were added when it runs; possibly itself, or one due with it).
    AddRemover(u64, usize),
    /// A timeout whose callback adds another, `ms2` after it runs.
    AddAdder(u64, u64),
    /// Removes the timeout added `n`-th (modulo how many were added).
    Remove(usize),
    /// Adds `n` timeouts and removes two thirds of them: past 512 dead
    /// entries the heap is rebuilt.
    Churn(usize, u64),
    /// Moves the clock forward and runs what is due.
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..20).prop_map(Op::Add),
        1 => ((0u64..20), any::<usize>()).prop_map(|(d, n)| Op::AddRemover(d, n)),
        1 => ((0u64..20), (0u64..10)).prop_map(|(d, d2)| Op::AddAdder(d, d2)),
        2 => any::<usize>().prop_map(Op::Remove),
        1 => ((0usize..800), any::<u64>()).prop_map(|(n, seed)| Op::Churn(n, seed)),
        2 => (0u64..15).prop_map(Op::Advance),
    ]
}

/// What a timeout's callback does besides recording that it ran.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Action {
    Nothing,
    /// Stop the loop (the sentinel of `advance_to`).
    Stop,
    /// Remove the timeout with this index (modulo the count when it runs).
    Remove(usize),
    /// Add a plain timeout this many ms later.
    Add(u64),
}

/// The model of the loop's timeouts, in ms from the start.
#[derive(Default)]
struct Model {
    now: u64,
    /// Pending (deadline, id), sorted by deadline then id (ids grow with
    /// insertion, so that is insertion order).
    pending: Vec<(u64, usize)>,
    /// The action of every timeout ever added, by id.
    actions: Vec<Action>,
    fired: Vec<usize>,
}

impl Model {
    fn add(&mut self, delay: u64, action: Action) -> usize {
        let id = self.actions.len();
        self.actions.push(action);
        let at = self.now + delay;
        let pos = self.pending.partition_point(|&(d, _)| d <= at);
        self.pending.insert(pos, (at, id));
        id
    }

    fn remove(&mut self, id: usize) -> bool {
        match self.pending.iter().position(|&(_, i)| i == id) {
            Some(pos) => {
                self.pending.remove(pos);
                true
            }
            None => false,
        }
    }

    /// The loop's iterations until the sentinel stops it: each takes what is
    /// due when it starts, runs it in order (skipping any removed meanwhile),
    /// and, unless stopped, jumps the clock to the next deadline.
    fn run_until_stopped(&mut self) {
        loop {
            let due_n = self.pending.partition_point(|&(d, _)| d <= self.now);
            let due: Vec<(u64, usize)> = self.pending.drain(..due_n).collect();
            let mut removed_meanwhile: Vec<usize> = Vec::new();
            let mut stop = false;
            for (_, id) in due {
                if removed_meanwhile.contains(&id) {
                    continue;
                }
                match self.actions[id] {
                    Action::Stop => stop = true,
                    Action::Nothing => self.fired.push(id),
                    Action::Remove(n) => {
                        self.fired.push(id);
                        let victim = n % self.actions.len();
                        // (Never a sentinel: the loop would not stop.)
                        if self.actions[victim] == Action::Stop {
                            continue;
                        }
                        if !self.remove(victim) {
                            removed_meanwhile.push(victim);
                        }
                    }
                    Action::Add(d) => {
                        self.fired.push(id);
                        self.add(d, Action::Nothing);
                    }
                }
            }
            if stop {
                return;
            }
            self.now = self.pending.first().expect("the sentinel is pending").0;
        }
    }
}

struct Real {
    io_loop: IOLoop,
    base: Instant,
    fired: Rc<RefCell<Vec<usize>>>,
    /// Every timeout's handle, and whether it is a sentinel, by id.
    handles: Rc<RefCell<Vec<(TimeoutHandle, bool)>>>,
}

impl Real {
    fn add(&self, delay: u64, action: Action) {
        let id = self.handles.borrow().len();
        let fired = self.fired.clone();
        let handles = self.handles.clone();
        let l = self.io_loop.clone();
        let h = self
            .io_loop
            .call_later(Duration::from_millis(delay), move || match action {
                Action::Stop => l.stop(),
                Action::Nothing => fired.borrow_mut().push(id),
                Action::Remove(n) => {
                    fired.borrow_mut().push(id);
                    let (h, sentinel) = {
                        let hs = handles.borrow();
                        hs[n % hs.len()]
                    };
                    if !sentinel {
                        l.remove_timeout(h);
                    }
                }
                Action::Add(d) => {
                    fired.borrow_mut().push(id);
                    Real::add_from(&l, &fired, &handles, d);
                }
            });
        self.handles.borrow_mut().push((h, action == Action::Stop));
    }

    /// `add` from inside a callback (no `&Real` there).
    fn add_from(
        io_loop: &IOLoop,
        fired: &Rc<RefCell<Vec<usize>>>,
        handles: &Rc<RefCell<Vec<(TimeoutHandle, bool)>>>,
        delay: u64,
    ) {
        let id = handles.borrow().len();
        let fired = fired.clone();
        let h = io_loop.call_later(Duration::from_millis(delay), move || {
            fired.borrow_mut().push(id)
        });
        handles.borrow_mut().push((h, false));
    }

    fn remove(&self, id: usize) -> bool {
        let h = self.handles.borrow()[id].0;
        self.io_loop.remove_timeout(h)
    }
}

fn check(ops: &[Op]) -> Result<(), TestCaseError> {
    let clock = ManualClock::new();
    let io_loop = IOLoop::with_clock(Clock::Manual(clock.clone())).unwrap();
    let real = Real {
        base: io_loop.time(),
        io_loop,
        fired: Rc::default(),
        handles: Rc::default(),
    };
    let mut model = Model::default();

    // Runs both until `target` ms: a sentinel timeout at `target`, added
    // after every pending one, stops the loop.
    let advance_to = |real: &Real, model: &mut Model, target: u64| {
        let delay = target - model.now;
        model.add(delay, Action::Stop);
        real.add(delay, Action::Stop);
        model.run_until_stopped();
        real.io_loop.start().unwrap();
    };

    for op in ops {
        match *op {
            Op::Add(delay) => {
                model.add(delay, Action::Nothing);
                real.add(delay, Action::Nothing);
            }
            Op::AddRemover(delay, n) => {
                model.add(delay, Action::Remove(n));
                real.add(delay, Action::Remove(n));
            }
            Op::AddAdder(delay, d2) => {
                model.add(delay, Action::Add(d2));
                real.add(delay, Action::Add(d2));
            }
            Op::Remove(n) => {
                let count = model.actions.len();
                if count > 0 {
                    let id = n % count;
                    prop_assert_eq!(real.remove(id), model.remove(id), "remove {}", id);
                }
            }
            Op::Churn(n, seed) => {
                let first = model.actions.len();
                for i in 0..n as u64 {
                    let delay = (seed.wrapping_add(i * 7)) % 13;
                    model.add(delay, Action::Nothing);
                    real.add(delay, Action::Nothing);
                }
                for id in (first..first + n).filter(|id| id % 3 != 0) {
                    prop_assert_eq!(real.remove(id), model.remove(id));
                }
            }
            Op::Advance(by) => {
                let target = model.now + by;
                advance_to(&real, &mut model, target);
                prop_assert_eq!(
                    real.io_loop.time(),
                    real.base + Duration::from_millis(target)
                );
                prop_assert_eq!(&*real.fired.borrow(), &model.fired);
            }
        }
        let stats = real.io_loop.timer_stats();
        prop_assert_eq!(stats.pending, model.pending.len());
        prop_assert!(stats.cancelled <= stats.heap_entries, "{:?}", stats);
        prop_assert_eq!(stats.heap_entries, stats.pending + stats.cancelled);
    }
    // Everything left fires, in order (timeouts added by callbacks included).
    let last = model.pending.iter().map(|&(d, _)| d).max().unwrap_or(0);
    let target = last.max(model.now) + 20;
    advance_to(&real, &mut model, target);
    prop_assert_eq!(&*real.fired.borrow(), &model.fired);
    prop_assert!(model.pending.is_empty());
    prop_assert_eq!(real.io_loop.timer_stats().pending, 0);
    real.io_loop.close();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn timers_fire_as_the_model_says(ops in prop::collection::vec(op(), 0..120)) {
        check(&ops)?;
    }
}

#[test]
fn ties_keep_insertion_order_through_a_heap_rebuild() {
    // 1,200 ties, 800 removed: the heap is rebuilt along the way.
    check(&[Op::Churn(1200, 0), Op::Add(0), Op::Advance(20)]).unwrap();
    check(&[
        Op::Add(3),
        Op::Churn(900, 5),
        Op::AddRemover(0, 1),
        Op::Add(3),
        Op::Advance(2),
        Op::Advance(2),
    ])
    .unwrap();
}

#[test]
fn a_timeout_removed_by_one_due_with_it_does_not_run() {
    // Ids: 0 removes 1, both due at 5.
    check(&[Op::AddRemover(5, 1), Op::Add(5), Op::Advance(5)]).unwrap();
    // And one added by a callback with no delay runs after those due now.
    check(&[
        Op::AddAdder(0, 0),
        Op::Add(0),
        Op::Advance(0),
        Op::Advance(0),
    ])
    .unwrap();
}
