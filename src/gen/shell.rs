//! An `async` coroutine's first poll, made cheap: most coroutines a server
//! starts (a handler that answers at once) finish in it.
//!
//! A coroutine needs a [`Runner`] with its exception context, a `std`
//! waker with its entry in the thread's table, and the `Polling` record
//! that lets a squall future find the runner: five allocations, all
//! wired to each other. Made once, they are a **shell**; a coroutine that
//! finishes in its first poll leaves its shell as it found it (nobody
//! holds the runner, captured its context or cloned its waker), and the
//! next coroutine on the thread takes it from a small pool. One that has
//! to wait keeps its shell for good: its runner goes on as any other (the
//! block, pinned where it was first polled, becomes the runner's
//! generator), and the pool makes a new shell for the next one.
//!
//! The first poll is the runner's first step, nothing else: it runs
//! marked running, in the runner's context (so a callback scheduled in it
//! throws a later error into the coroutine), as a trace step, with the
//! same `send` / `return` log lines, and a finished coroutine is checked
//! for leaked callbacks as ever. What it skips is only the generator's
//! box and its `Resume` plumbing, and the allocations. The context is
//! entered lazily (`stack_context::defer`): its frame is seated on the
//! caller's stack only when something captures the stack during the poll
//! (anything that schedules a callback), or when the coroutine waits; a
//! coroutine that finishes having scheduled nothing never seats it, and
//! its shell has nothing to lift off. A finished coroutine's result goes
//! to `done` directly, not through a callback.
//!
//! Most first polls reach nothing: the runner is lent to no future
//! (`Polling` says), its frame is never made, its waker is neither kept
//! nor woken. Such a runner is as it was but for being started, so it
//! skips `conclude` and the checks of `recycle` and goes straight back.
//! The block is pinned in the box the last block of its type was
//! (`blocks.rs`), dropped in place when it ends.
//!
//! ```
//! use squall::{gen, Future, IOLoop};
//!
//! let io_loop = IOLoop::new()?;
//! // Finishes in its first poll: no allocation but the Future `coroutine`
//! // returns (and the one awaited), once the thread has a shell and a box
//! // for blocks of this type.
//! let n = io_loop.run_sync(|| gen::coroutine(async { Ok(Future::ready(20).await? + 1) }), None)?;
//! assert_eq!(n, 21);
//! # Ok::<(), squall::Error>(())
//! ```

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future as StdFuture;
use std::mem::ManuallyDrop;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;

use super::blocks::Pinned;
use super::completion::Completion;
use super::counting::Counting;
use super::runner::Runner;
use super::task::{wakes_queued, AsyncDriver, Entry, Suspend, TaskId, LOCAL};
use crate::error::Error;
use crate::future::{poll_with, Polling};
use crate::ioloop::IOLoop;
use crate::stack_context::Context as StackContext;

/// A runner (with no generator) and what its coroutine is polled with.
struct Shell {
    runner: Runner,
    polling: Rc<Polling>,
    /// The data of the waker in `polling` (its own handle), which counts
    /// the clones made of it.
    counting: Arc<Counting>,
    task: TaskId,
    /// The box the last block polled on it was pinned in (see
    /// `blocks.rs`), empty, for the next block of its type.
    block: Option<Box<dyn Any>>,
    /// [`IOLoop::current_epoch`] when its waker's loop was known to be the
    /// current one: while the epoch stays, the waker still leads to the
    /// loop a coroutine started now runs on. (`NO_EPOCH`: not known.)
    epoch: u64,
}

/// A shell's epoch when it is not known to fit the current loop: checked
/// the long way when next taken.
const NO_EPOCH: u64 = u64::MAX;

/// The weak handles on a shell's runner that are the shell's own: its
/// context's handler, `Polling::wake` and the table entry.
const OWN_WEAK: usize = 3;

/// Shells kept per thread: one per coroutine that finishes inside another's
/// first poll, nested; a few suffice.
const POOL_MAX: usize = 8;

/// Shells of coroutines that waited, kept from their end until nothing
/// holds them any more (the last wake's handle goes after the end).
const RETIRED_MAX: usize = 64;

thread_local! {
    // No destructors (`ManuallyDrop`): read inline, with no check that one
    // is registered, for every coroutine. `Janitor`, registered when the
    // thread makes its first shell (every shell in them was made on this
    // thread), drops what they hold when the thread ends.
    static POOL: ManuallyDrop<RefCell<Vec<Shell>>> = const { ManuallyDrop::new(RefCell::new(Vec::new())) };
    /// The pool's first place, apart: a move in or out of a `Cell`, small
    /// enough to be inlined, for the usual coroutine (one at a time).
    static FIRST: ManuallyDrop<Cell<Option<Shell>>> = const { ManuallyDrop::new(Cell::new(None)) };
    static RETIRED: ManuallyDrop<RefCell<VecDeque<Shell>>> =
        const { ManuallyDrop::new(RefCell::new(VecDeque::new())) };
    static JANITOR: Janitor = const { Janitor };
    /// The janitor has run: the thread is ending, nothing is pooled now.
    static ENDED: Cell<bool> = const { Cell::new(false) };
    /// Whether a [`sweep`] of the retired shells is queued on the loop.
    static SWEEP_QUEUED: Cell<bool> = const { Cell::new(false) };
}

/// Drops the pooled and retired shells when the thread ends.
struct Janitor;

impl Drop for Janitor {
    fn drop(&mut self) {
        ENDED.with(|e| e.set(true));
        let first = FIRST.with(|f| f.take());
        let pool = POOL.with(|p| p.try_borrow_mut().map(|mut p| std::mem::take(&mut *p)));
        drop(first);
        let retired = RETIRED.with(|r| r.try_borrow_mut().map(|mut r| std::mem::take(&mut *r)));
        drop((pool, retired));
    }
}

impl Shell {
    /// A new shell, its context over the current stack.
    fn fresh() -> Shell {
        // (Registers the janitor, once: the pools may hold this one.)
        let _ = JANITOR.try_with(|_| {});
        let runner = Runner::blank();
        let epoch = IOLoop::current_epoch();
        let task = LOCAL.with(|l| {
            l.borrow_mut().tasks.insert(Entry {
                weak: runner.downgrade(),
                strong: None,
            })
        });
        let (counting, waker) = Counting::new(task, IOLoop::try_current().map(|l| l.remote()));
        let polling = Rc::new(Polling::new(runner.weak_waker(), waker));
        Shell {
            runner,
            polling,
            counting,
            task,
            block: None,
            epoch,
        }
    }

    /// Whether its waker leads to the current loop: the loop a coroutine
    /// started now runs on. One load while the current loop has not been
    /// set since the shell last fitted it.
    #[inline]
    fn fits_current_loop(&mut self) -> bool {
        let epoch = IOLoop::current_epoch();
        if self.epoch == epoch {
            return true;
        }
        self.fits_current_loop_slow(epoch)
    }

    /// [`fits_current_loop`](Self::fits_current_loop), with the current
    /// loop set since (or never known): looked up.
    #[cold]
    #[inline(never)]
    fn fits_current_loop_slow(&mut self, epoch: u64) -> bool {
        let fits = IOLoop::current_is(self.counting.remote());
        self.epoch = if fits { epoch } else { NO_EPOCH };
        fits
    }

    /// A shell from the pool (for the current loop), or a new one.
    #[inline]
    fn take() -> Shell {
        if let Some(mut shell) = FIRST.with(|f| f.take()) {
            // A waker must lead to the loop the coroutine runs on.
            if shell.fits_current_loop() && shell.runner.reuse() {
                return shell;
            }
            shell.discard();
        }
        Shell::take_pooled()
    }

    /// [`take`](Self::take) past the first place.
    fn take_pooled() -> Shell {
        let mut reclaimed = false;
        loop {
            let pooled = POOL.with(|p| p.borrow_mut().pop());
            let Some(mut shell) = pooled else {
                if std::mem::replace(&mut reclaimed, true) || !reclaim() {
                    return Shell::fresh();
                }
                continue;
            };
            // A waker must lead to the loop the coroutine runs on.
            if shell.fits_current_loop() && shell.runner.reuse() {
                return shell;
            }
            shell.discard();
        }
    }

    /// Back into the pool, if the coroutine left no handle on any part;
    /// else its runner is done with for good. `wakes`: what
    /// `wakes_queued` said before its first poll, if it finished in it.
    fn recycle(self, wakes: Option<u64>) {
        // (Cleared for the next coroutine's first poll.)
        self.polling.take_lent();
        let clean = self.clean(wakes) && self.runner.recycle(OWN_WEAK);
        if !clean {
            return self.discard();
        }
        self.pool();
    }

    /// After a first poll that finished: whether nothing reached the
    /// runner (see [`Runner::untouched`]), lent out by `Polling` or
    /// not, and nobody kept or woke the waker (`wakes`: what
    /// `wakes_queued` said before the poll). Clears the lending mark.
    #[inline]
    fn untouched(&self, wakes: u64) -> bool {
        !self.polling.take_lent()
            && self.runner.untouched()
            && Rc::strong_count(&self.polling) == 1
            // Only the own handle, inside `polling.waker`.
            && self.counting.alone()
            && wakes == wakes_queued()
    }

    /// Into the pool (a shell known to be clean), or dropped if it is full.
    #[inline]
    fn pool(self) {
        if ENDED.with(Cell::get) {
            return self.discard();
        }
        // The first place; the shell that was there goes on to the rest.
        if let Some(other) = FIRST.with(|f| f.replace(Some(self))) {
            other.pool_rest();
        }
    }

    /// Into the pool past its first place.
    fn pool_rest(self) {
        let full = POOL
            .try_with(|p| {
                let mut p = p.borrow_mut();
                if p.len() >= POOL_MAX || ENDED.with(Cell::get) {
                    return Some(self);
                }
                p.push(self);
                None
            })
            // The thread is ending: the shell goes with the closure.
            .unwrap_or(None);
        if let Some(shell) = full {
            shell.discard();
        }
    }

    /// Whether the coroutine left no handle on the waker, `Polling` or
    /// table entry (the runner checks itself, in `Runner::recycle`).
    fn clean(&self, wakes: Option<u64>) -> bool {
        Rc::strong_count(&self.polling) == 1
            // Only the own handle, inside `polling.waker`.
            && self.counting.alone()
            // A first poll that queued no wake left nothing in the queue,
            // and its table entry as it was (only a driver holds it).
            && (wakes.is_some_and(|w| w == wakes_queued()) || LOCAL.with(|l| {
                let l = l.borrow();
                // Not woken on its way out (a stray wake would reach the
                // next coroutine), not held for an escaped waker.
                !l.ready.iter().any(|(id, _)| *id == self.task)
                    && l.tasks.get(self.task).is_some_and(|e| e.strong.is_none())
            }))
    }

    /// A shell that is not reused: its context off for good, its table
    /// entry gone (dropped with no borrow held).
    fn discard(self) {
        self.runner.deactivate_context();
        let entry = LOCAL
            .try_with(|l| l.borrow_mut().tasks.remove(self.task))
            .ok()
            .flatten();
        drop(entry);
    }
}

/// The parts of a coroutine that waited and has finished (its driver
/// gives them back as it delivers): kept until nothing holds them, then
/// pooled. Its runner is not yet deactivated (it declines errors, being
/// finished); a shell given up is.
pub(super) fn retire(polling: Rc<Polling>, counting: Arc<Counting>, task: TaskId) {
    let (runner, released) = LOCAL.with(|l| {
        let mut l = l.borrow_mut();
        let Some(entry) = l.tasks.get_mut(task) else {
            return (None, None);
        };
        let mut released = None;
        if entry.strong.is_some() {
            // Held for a clone of its waker still out there: not a shell
            // to reuse.
            if counting.out() {
                return (None, None);
            }
            // Held for clones all gone since its last poll (the last one
            // woke it, by value, and its end looked no more): nobody can
            // make another now, the own handle being ours.
            released = entry.strong.take();
            counting.set_held(false);
        }
        (entry.weak.upgrade(), released)
    });
    // Not the last handle on the runner (whoever delivers holds one):
    // dropped with no borrow.
    drop(released);
    let Some(runner) = runner else {
        let entry = LOCAL
            .try_with(|l| l.borrow_mut().tasks.remove(task))
            .ok()
            .flatten();
        if let Some(runner) = entry.as_ref().and_then(|e| e.weak.upgrade()) {
            runner.deactivate_context();
        }
        drop(entry);
        return;
    };
    let shell = Shell {
        runner,
        polling,
        counting,
        task,
        block: None,
        // (Looked up when it is next taken.)
        epoch: NO_EPOCH,
    };
    let evicted = RETIRED
        .try_with(|r| {
            let mut r = r.borrow_mut();
            if ENDED.with(Cell::get) {
                return Some(shell);
            }
            let evicted = (r.len() >= RETIRED_MAX).then(|| r.pop_front()).flatten();
            r.push_back(shell);
            evicted
        })
        .unwrap_or(None);
    if let Some(shell) = evicted {
        shell.discard();
    }
    // Its context frame still sits on the caller's stack, which may hold
    // much (a request's `Exchange`): lifted off on the next iteration, once
    // whoever ran the coroutine's last step let go of the frame.
    if !SWEEP_QUEUED.with(|q| q.replace(true)) {
        match IOLoop::try_current() {
            Some(io_loop) if !io_loop.is_closed() => io_loop.spawn_callback(sweep),
            _ => SWEEP_QUEUED.with(|q| q.set(false)),
        }
    }
}

/// Lifts each retired shell's context frame off the stack its coroutine
/// started on, so that a kept runner holds nothing of its caller's; a
/// shell whose frame somebody else still holds (a callback captured the
/// context) is given up instead, and its stack goes when they let go.
fn sweep() {
    SWEEP_QUEUED.with(|q| q.set(false));
    let count = RETIRED.with(|r| r.borrow().len());
    for _ in 0..count {
        let Some(shell) = RETIRED.with(|r| r.borrow_mut().pop_front()) else {
            break;
        };
        if shell.runner.lift_context() {
            RETIRED.with(|r| r.borrow_mut().push_back(shell));
        } else {
            shell.discard();
        }
    }
}

/// Moves the retired shells nothing holds any more into the pool; whether
/// one went.
fn reclaim() -> bool {
    let mut any = false;
    let count = RETIRED.with(|r| r.borrow().len());
    for _ in 0..count {
        let Some(shell) = RETIRED.with(|r| r.borrow_mut().pop_front()) else {
            break;
        };
        if Rc::strong_count(&shell.polling) == 1 && shell.runner.is_only_handle() {
            any = true;
            shell.recycle(None);
        } else {
            RETIRED.with(|r| r.borrow_mut().push_back(shell));
        }
    }
    any
}

/// Starts the `async` coroutine `future`, which delivers to `done`: its
/// first poll on a pooled shell, its runner taking over only if it waits.
/// A coroutine that finishes in its first poll completes `done` itself,
/// once it is out of the runner's context; one that waits completes what
/// `later(done, caller)` makes when it ends (`caller`: the stack it was
/// started on, which is not current then; `engine` enters it again).
/// `done`'s hooks are asked before each poll and told of each wait.
pub(super) fn start<T, F, D, L>(future: F, done: D, later: impl FnOnce(D, StackContext) -> L)
where
    T: 'static,
    F: StdFuture<Output = Result<T, Error>> + 'static,
    D: Completion<T>,
    L: Completion<T>,
{
    if Runner::too_deep() {
        // Queued for the outermost run, as any run this deep.
        let done = later(done, StackContext::capture());
        Runner::new(Box::new(AsyncDriver::new(future, done))).run();
        return;
    }
    let Shell {
        runner,
        polling,
        counting,
        task,
        block: kept,
        epoch,
    } = Shell::take();
    // Pinned in the box the shell's last block was, if of its type.
    let (mut block, mut kept) = Pinned::new(future, kept);
    let wakes = wakes_queued();
    let carrier = done.carrier();
    let mut done = Some(done);
    let mut later = Some(later);
    let finished = runner.run_first(carrier.as_deref(), |runner| {
        let pinned = block.slot().as_mut();
        let refused = done.as_ref().and_then(Completion::refused);
        let poll = || match refused {
            // Ended before it began (as if it had returned the error).
            Some(err) => Ok(Poll::Ready(Err(err))),
            None => poll_with(&polling, move |cx| match pinned.as_pin_mut() {
                Some(block) => block.poll(cx),
                // (Not reached: it was just put there.)
                None => Poll::Ready(Err(Error::new(
                    crate::ErrorKind::InvalidState,
                    "no block to poll",
                ))),
            }),
        };
        #[cfg(feature = "trace")]
        let polled = crate::trace::step(std::any::type_name::<F>(), poll);
        #[cfg(not(feature = "trace"))]
        let polled = poll();
        let result = match polled {
            Ok(Poll::Pending) => {
                // It waits: an ordinary coroutine from here on, on this
                // shell's runner, suspended as `AsyncDriver::resume` does.
                let mut done = done.take().expect("done taken once");
                done.waiting(runner);
                let later = later.take().expect("later taken once");
                // Its context made now, if nothing captured it yet: the
                // runner's later steps run in it.
                let done = later(done, runner.caller_context());
                let parts = (polling, counting, task);
                let driver = AsyncDriver::adopt(block.into_slot(), done, parts, runner);
                runner.wait_on(Box::new(driver), Box::new(Suspend));
                return (true, None);
            }
            Ok(Poll::Ready(output)) => output,
            Err(panic) => Err(panic),
        };
        // Reached by something (a future it awaited, a callback that
        // captured its context): concluded as ever, before the block goes.
        // Else nothing can have registered on it, and the check that
        // nothing reached it either waits for the block's drop.
        let reached = polling.lent() || runner.seated();
        let leaked = match reached {
            true => runner.conclude(result.is_err(), false),
            false => None,
        };
        // The block (and what it still holds) goes before `done` runs;
        // its box is kept for the next.
        let room = kept.is_none();
        if let Some(back) = block.give_back(room) {
            kept = Some(back);
        }
        let result = match leaked {
            Some(err) => Err(err),
            None => result,
        };
        (false, Some((result, polling, counting, reached)))
    });
    if let Some((result, polling, counting, concluded)) = finished {
        let shell = Shell {
            runner,
            polling,
            counting,
            task,
            block: kept,
            epoch,
        };
        // Back in the pool first: a coroutine `done` starts may use it.
        if !concluded && shell.untouched(wakes) {
            // Nothing reached its runner, its waker or its context: the
            // usual handler. No state to check or reset but being started.
            shell.runner.end_untouched();
            shell.pool();
        } else {
            if !concluded {
                // Reached only on the way out (its waker woken, or kept,
                // or its context captured as the block went): nothing
                // registered on it, nothing leaked.
                let leaked = shell.runner.conclude(false, false);
                debug_assert!(leaked.is_none());
            }
            shell.recycle(Some(wakes));
        }
        // Out of the runner's context, no longer running: as the runner
        // would have delivered, but with the caller's stack current
        // already (`engine` enters it for nothing).
        if let Some(done) = done.take() {
            done.complete(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shell on top of this thread's pool: its `Polling`'s address.
    fn top() -> Option<*const Polling> {
        with_top(|s| Rc::as_ptr(&s.polling))
    }

    /// Runs `f` on the shell on top of the pool (its first place).
    fn with_top<R>(f: impl FnOnce(&Shell) -> R) -> Option<R> {
        let shell = FIRST.with(|p| p.take())?;
        let r = f(&shell);
        FIRST.with(|p| p.set(Some(shell)));
        Some(r)
    }

    fn warm() -> *const Polling {
        let f = super::super::coroutine(async { Ok(0) });
        assert_eq!(f.result().unwrap(), 0);
        top().expect("pooled")
    }

    #[test]
    fn a_coroutine_nothing_reaches_leaves_its_shell_as_it_found_it() {
        let shell = warm();
        for i in 0..3 {
            let f = super::super::coroutine(async move { Ok(i) });
            assert_eq!(f.result().unwrap(), i);
            assert_eq!(top(), Some(shell), "the same shell, back on top");
            with_top(|s| {
                assert!(s.runner.finished() && !s.runner.seated());
                assert!(!s.polling.lent());
            })
            .expect("pooled");
        }
    }

    #[test]
    fn a_shell_is_taken_only_on_the_loop_its_waker_leads_to() {
        let run = || {
            let f = super::super::coroutine(async { Ok(0) });
            assert_eq!(f.result().unwrap(), 0);
            with_top(|s| (Rc::as_ptr(&s.polling), s.counting.remote().cloned())).expect("pooled")
        };
        let a = IOLoop::new().unwrap();
        a.make_current();
        let (on_a, remote) = run();
        assert!(IOLoop::current_is(remote.as_ref()));
        // Another loop current: a shell of its own, its waker leading there.
        let b = IOLoop::new().unwrap();
        b.make_current();
        let (on_b, remote) = run();
        assert_ne!(on_b, on_a);
        assert!(IOLoop::current_is(remote.as_ref()));
        // The same loop made current again: the epoch moved, the shell
        // still fits (looked up once) and is taken.
        b.make_current();
        assert_eq!(run().0, on_b);
        assert_eq!(run().0, on_b);
        // No loop: not a shell whose waker leads to one.
        IOLoop::clear_current();
        let (_, remote) = run();
        assert!(remote.is_none());
    }

    #[test]
    fn a_runner_reached_in_the_first_poll_is_checked_and_reset_as_ever() {
        warm();
        // Its own waker woken (no loop: the wake is delivered at once, to
        // the runner being polled): reset before it is reused.
        let f = super::super::coroutine(std::future::poll_fn(|cx| {
            cx.waker().wake_by_ref();
            Poll::Ready(Ok(1))
        }));
        assert_eq!(f.result().unwrap(), 1);
        with_top(|s| assert!(!s.runner.take_woken(), "no stray wake kept")).expect("pooled");
        // Lent to a future that looked it up: the mark cleared again.
        let f = super::super::coroutine(std::future::poll_fn(|cx| {
            let runner = Runner::polling(cx.waker()).expect("its runner");
            Poll::Ready(Ok(runner.pending_callbacks()))
        }));
        assert_eq!(f.result().unwrap(), 0);
        with_top(|s| assert!(!s.polling.lent())).expect("pooled");
        // A key registered and never waited for is still reported.
        let f = super::super::coroutine(std::future::poll_fn(|cx| {
            let runner = Runner::polling(cx.waker()).expect("its runner");
            runner.register_callback("never")?;
            Poll::Ready(Ok(()))
        }));
        let err = f.result().unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::LeakedCallback);
    }
}
