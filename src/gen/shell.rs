//! An `async` coroutine's first poll, made cheap: most coroutines a server
//! starts (a handler that answers at once) finish in it.
//!
//! A coroutine needs a [`Runner`] with its exception context, a `std`
//! waker with its entry in the thread's table, and the `Polling` record
//! that lets a squall future find the runner: five allocations, all
//! wired to each other. Made once, they are a **shell**; a coroutine that
//! finishes in its first poll leaves its shell as it found it (nobody
//! holds the runner, captured its context or cloned its waker), and the
//! next coroutine on the thread takes it from a small pool, its context
//! re-seated on the stack current then. One that has to wait keeps its
//! shell for good: its runner goes on as any other (the block, pinned
//! where it was first polled, becomes the runner's generator), and the
//! pool makes a new shell for the next one.
//!
//! The first poll is the runner's first step, nothing else: it runs
//! marked running, in the runner's context (so a callback scheduled in it
//! throws a later error into the coroutine), as a trace step, with the
//! same `send` / `return` log lines, and a finished coroutine is checked
//! for leaked callbacks as ever. What it skips is only the generator's
//! box and its `Resume` plumbing, and the allocations.
//!
//! ```
//! use squall::{gen, Future, IOLoop};
//!
//! let io_loop = IOLoop::new()?;
//! // Finishes in its first poll: no allocation but the block's box (and
//! // the Future `coroutine` returns), once the thread has a shell.
//! let n = io_loop.run_sync(|| gen::coroutine(async { Ok(Future::ready(20).await? + 1) }), None)?;
//! assert_eq!(n, 21);
//! # Ok::<(), squall::Error>(())
//! ```

use std::cell::RefCell;
use std::future::Future as StdFuture;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::runner::Runner;
use super::task::{thread_tag, AsyncDriver, Entry, Suspend, TaskId, TaskWaker, LOCAL};
use crate::callback;
use crate::error::Error;
use crate::future::{with_polling, Polling};
use crate::ioloop::IOLoop;

/// A runner (with no generator) and what its coroutine is polled with.
struct Shell {
    runner: Runner,
    polling: Rc<Polling>,
    waker: Arc<TaskWaker>,
    task: TaskId,
}

/// The weak handles on a shell's runner that are the shell's own: its
/// context's handler, `Polling::wake` and the table entry.
const OWN_WEAK: usize = 3;

/// Shells kept per thread: one per coroutine that finishes inside another's
/// first poll, nested; a few suffice.
const POOL_MAX: usize = 8;

thread_local! {
    static POOL: RefCell<Vec<Shell>> = const { RefCell::new(Vec::new()) };
}

impl Shell {
    /// A new shell, its context over the current stack.
    fn fresh() -> Shell {
        let runner = Runner::blank();
        let task = LOCAL.with(|l| {
            l.borrow_mut().tasks.insert(Entry {
                weak: runner.downgrade(),
                strong: None,
            })
        });
        let waker = Arc::new(TaskWaker {
            id: task,
            home: thread_tag(),
            remote: IOLoop::try_current().map(|l| l.remote()),
        });
        let polling = Rc::new(Polling {
            wake: runner.weak_waker(),
            waker: Waker::from(waker.clone()),
        });
        Shell {
            runner,
            polling,
            waker,
            task,
        }
    }

    /// A shell from the pool (for the current loop), or a new one.
    fn take() -> Shell {
        loop {
            let pooled = POOL.with(|p| p.borrow_mut().pop());
            let Some(shell) = pooled else {
                return Shell::fresh();
            };
            // A waker must lead to the loop the coroutine runs on.
            if IOLoop::current_is(shell.waker.remote.as_ref()) && shell.runner.reuse() {
                return shell;
            }
            shell.discard();
        }
    }

    /// Back into the pool, if the coroutine left no handle on any part;
    /// else its runner is done with for good.
    fn recycle(self) {
        let clean = Rc::strong_count(&self.polling) == 1
            // Ours and the one inside `polling.waker`.
            && Arc::strong_count(&self.waker) == 2
            && LOCAL.with(|l| {
                let l = l.borrow();
                // Not woken on its way out (a stray wake would reach the
                // next coroutine), not held for an escaped waker.
                !l.ready.contains(&self.task)
                    && l.tasks.get(self.task).is_some_and(|e| e.strong.is_none())
            })
            && self.runner.recycle(OWN_WEAK);
        if !clean {
            return self.discard();
        }
        let full = POOL
            .try_with(|p| {
                let mut p = p.borrow_mut();
                if p.len() >= POOL_MAX {
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

/// Starts the `async` coroutine `future`, which delivers to `done`: its
/// first poll on a pooled shell, its runner taking over only if it waits.
pub(super) fn start<T, F, D>(future: F, done: D)
where
    T: 'static,
    F: StdFuture<Output = Result<T, Error>> + 'static,
    D: FnOnce(Result<T, Error>) + 'static,
{
    if Runner::too_deep() {
        // Queued for the outermost run, as any run this deep.
        Runner::new(Box::new(AsyncDriver::new(future, Box::new(done)))).run();
        return;
    }
    let Shell {
        runner,
        polling,
        waker,
        task,
    } = Shell::take();
    let mut block = Box::pin(future);
    let mut done = Some(done);
    let finished = runner.run_first(|runner| {
        let pinned = block.as_mut();
        let poll = || {
            with_polling(&polling, || {
                let mut cx = Context::from_waker(&polling.waker);
                callback::catch_value(move || pinned.poll(&mut cx))
            })
        };
        #[cfg(feature = "trace")]
        let polled = crate::trace::step(std::any::type_name::<F>(), poll);
        #[cfg(not(feature = "trace"))]
        let polled = poll();
        let result = match polled {
            Ok(Poll::Pending) => {
                // It waits: an ordinary coroutine from here on, on this
                // shell's runner, suspended as `AsyncDriver::resume` does.
                let done = Box::new(done.take().expect("done taken once"));
                let parts = (polling, waker, task);
                let driver = AsyncDriver::adopt(block, done, parts, runner);
                runner.wait_on(Box::new(driver), Box::new(Suspend));
                return (true, None);
            }
            Ok(Poll::Ready(output)) => output,
            Err(panic) => Err(panic),
        };
        let leaked = runner.conclude(result.is_err(), false);
        // The block (and what it still holds) goes before `done` runs.
        drop(block);
        let result = match leaked {
            Some(err) => Err(err),
            None => result,
        };
        (false, Some((result, polling, waker)))
    });
    if let Some((result, polling, waker)) = finished {
        // Back in the pool first: a coroutine `done` starts may use it.
        Shell {
            runner,
            polling,
            waker,
            task,
        }
        .recycle();
        // Out of the runner's context, no longer running: as the runner
        // would have delivered, but with the caller's stack current
        // already (`engine` enters it for nothing).
        if let Some(done) = done.take() {
            done(result);
        }
    }
}
