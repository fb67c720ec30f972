//! The done-callback nesting budget: completions nest (a done-callback
//! completing a future whose done-callback completes another...) only so
//! deep on one stack; the done-callbacks of deeper ones are deferred to the
//! outermost completion, which runs them iteratively, so a long chain of
//! futures cannot overflow the stack. A stackful coroutine keeps its own
//! depth, as it has its own stack (see `greenlet/ambient.rs`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use super::{DoneCallback, Future};

/// How many completions may nest on one thread (a done-callback completing
/// another future, whose done-callback completes another...) before the
/// done-callbacks of deeper ones are deferred to the outermost completion.
/// Below it, `set_result` returns after the callbacks ran, as always; a chain
/// of a hundred thousand futures no longer overflows the stack.
const MAX_NESTING: usize = 32;

type Deferred = Box<dyn FnOnce()>;

thread_local! {
    static NESTING: Cell<usize> = const { Cell::new(0) };
    static DEFERRED: RefCell<VecDeque<Deferred>> = const { RefCell::new(VecDeque::new()) };
}

impl<T: 'static> Future<T> {
    /// Runs done-callbacks now, or, deep inside other completions (a long
    /// chain of futures each completing the next, or a loop of reads each
    /// served from a buffer), hands them to the outermost completion so the
    /// stack cannot overflow.
    pub(super) fn dispatch(&self, first: Option<DoneCallback<T>>, rest: Vec<DoneCallback<T>>) {
        if first.is_none() && rest.is_empty() {
            return;
        }
        let depth = NESTING.with(Cell::get);
        if depth >= MAX_NESTING {
            let this = self.clone();
            DEFERRED.with(|d| {
                d.borrow_mut()
                    .push_back(Box::new(move || this.run_callbacks(first, rest)));
            });
            return;
        }
        {
            let _nested = Nested::enter();
            self.run_callbacks(first, rest);
        }
        if depth == 0 {
            run_deferred();
        }
    }
}

/// Replaces this thread's completion nesting depth, returning the old one:
/// a stackful coroutine keeps its own, as it has its own stack.
#[cfg(feature = "stackful")]
#[inline]
pub(crate) fn swap_nesting(depth: usize) -> usize {
    NESTING.with(|n| n.replace(depth))
}

/// The nesting a stackful coroutine starts at: only `budget` completions
/// nest on its small stack before the deeper ones are deferred.
#[cfg(feature = "stackful")]
pub(crate) fn child_nesting(budget: usize) -> usize {
    MAX_NESTING.saturating_sub(budget)
}

/// Runs the deferred done-callbacks if no completion is on this stack: what
/// the outermost completion would have done, for callbacks deferred by a
/// coroutine that has switched out.
#[cfg(feature = "stackful")]
pub(crate) fn drain_deferred() {
    if NESTING.with(Cell::get) == 0 {
        run_deferred();
    }
}

/// Counts one level of nested completion while alive (also on unwinding).
struct Nested;

impl Nested {
    fn enter() -> Nested {
        NESTING.with(|n| n.set(n.get() + 1));
        Nested
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        NESTING.with(|n| n.set(n.get() - 1));
    }
}

/// Runs the deferred done-callbacks, in order, from the outermost completion:
/// iteratively, each with the full nesting budget again.
fn run_deferred() {
    loop {
        let job = DEFERRED.with(|d| d.borrow_mut().pop_front());
        let Some(job) = job else { break };
        let _nested = Nested::enter();
        job();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::future::chain_future;

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let futures: Vec<Future<u32>> = (0..100_000).map(|_| Future::new()).collect();
        for w in futures.windows(2) {
            chain_future(&w[0], &w[1]);
        }
        futures[0].set_result(7);
        assert!(futures.iter().all(|f| f.result().unwrap() == 7));
        assert_eq!(NESTING.with(Cell::get), 0);
        assert!(DEFERRED.with(|d| d.borrow().is_empty()));
    }
}
