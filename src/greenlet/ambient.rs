//! The per-stack state squall keeps in thread-locals, swapped on every switch.
//!
//! The stack context, the depth of `catch`es, of nested future completions
//! and of nested `Runner::run`s all describe *the stack that is running*. A
//! coroutine has a stack of its own, so it keeps its own copy: parked in the
//! middle of a callback, it must not leave its context current, nor its
//! depths counted, on the stack that goes on running.

use crate::callback;
use crate::future;
use crate::gen;
use crate::stack_context::{self, Context};

/// Future completions that may nest on a coroutine's stack.
const NESTING_BUDGET: usize = 4;
/// Runner runs that may nest on a coroutine's stack.
const RUN_BUDGET: u32 = 2;

/// Back on a parent's stack after a switch: runs what a coroutine deferred
/// because its stack was too small for it, if no completion or run on this
/// stack will (the outermost one does it otherwise).
pub(crate) fn drain() {
    future::drain_deferred();
    gen::drain_put_off();
}

pub(crate) struct Ambient {
    ctx: Context,
    catch_depth: u32,
    nesting: usize,
    run_depth: u32,
}

impl Ambient {
    /// A fresh coroutine stack's state, under `ctx`.
    ///
    /// A coroutine's stack is small, so only a few completions and runs may
    /// nest on it: its counters start near the limits, and what would nest
    /// deeper is deferred, and done on the parent's stack once the
    /// coroutine switches out (see [`drain`]).
    pub(crate) fn new(ctx: Context) -> Ambient {
        Ambient {
            ctx,
            catch_depth: 0,
            nesting: future::child_nesting(NESTING_BUDGET),
            run_depth: gen::child_run_depth(RUN_BUDGET),
        }
    }

    /// Exchanges this state with the thread's: once before switching into a
    /// coroutine (the thread gets the coroutine's, this keeps the parent's),
    /// once after it switched back.
    #[inline]
    pub(crate) fn swap(&mut self) {
        self.ctx = stack_context::swap_current(std::mem::take(&mut self.ctx));
        self.catch_depth = callback::swap_catch_depth(self.catch_depth);
        self.nesting = future::swap_nesting(self.nesting);
        self.run_depth = gen::swap_run_depth(self.run_depth);
    }
}
