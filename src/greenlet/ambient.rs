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

pub(crate) struct Ambient {
    ctx: Context,
    catch_depth: u32,
    nesting: usize,
    run_depth: u32,
}

impl Ambient {
    /// A fresh stack's state, under `ctx`.
    pub(crate) fn new(ctx: Context) -> Ambient {
        Ambient {
            ctx,
            catch_depth: 0,
            nesting: 0,
            run_depth: 0,
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
