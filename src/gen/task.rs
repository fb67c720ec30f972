//! `async` coroutines on the [`Runner`]: an `async` block is a generator the
//! compiler wrote.
//!
//! Each resume polls the block once. If it finishes, that is the generator's
//! `Return`. If it is pending, the generator yields a [`Suspend`] point,
//! ready once the runner is woken. So a pending `.await` is a yield point
//! and a wake is its readiness, and everything that watches a Runner (stack
//! contexts, the trace, the blocking log) sees an `async` coroutine exactly
//! as it sees a hand-written generator. (The yield points and futures the
//! block awaits register their own keys, as a generator's would: a
//! suspension needs none, and so costs no allocation.)
//!
//! Two ways to be woken:
//! - a squall [`Future`] (or a yield point) awaited directly by the
//!   coroutine registers the runner itself (an `Rc`) and wakes it at once on
//!   completion, as a generator's `YieldFuture` does;
//! - anything else gets a `std` [`Waker`]. Woken on the loop's thread it
//!   queues the coroutine for the next loop iteration (no allocation once
//!   the queue has grown, no syscall); woken on another thread it goes
//!   through the loop's [`Remote`] door, the only way in from outside.
//!
//! A `std` waker cannot hold the runner (it is `Send`), so while a clone
//! of it is out there the thread's table does, or nothing would. Once the
//! last clone is let go of (a foreign future given up), nobody can wake
//! the coroutine, and the table lets go too: a coroutine nobody holds is
//! then dropped, not kept for the thread's life. To hear of that last
//! clone, the waker counts its handles (`counting.rs`); it is the one
//! waker every coroutine polls with, from its first poll on.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future as StdFuture;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;

use slotmap::{new_key_type, SlotMap};

use super::blocks::Slot;
use super::completion::Completion;
use super::counting::Counting;
use super::runner::{ErasedGen, WeakRunner};
use super::{Resume, Runner, Value, YieldPoint};
use crate::error::{Error, ErrorKind};
use crate::future::{poll_with, Polling};
use crate::ioloop::{IOLoop, Remote};

/// Drives an `async` block as the Runner's generator.
pub(crate) struct AsyncDriver<F: StdFuture, D> {
    /// Boxed once, so it never moves while it is polled: that is the whole
    /// of what `Pin` asks for here. (The box may have held an earlier
    /// block of its type, see `blocks.rs`; `None` never, here.)
    future: Slot<F>,
    /// Made at the first resume, when the runner is known.
    polling: Option<Rc<Polling>>,
    /// The data of the waker `polling` polls with, which counts its
    /// clones.
    counting: Option<Arc<Counting>>,
    task: Option<TaskId>,
    output: Option<F::Output>,
    /// Inline, not boxed: one allocation fewer per coroutine.
    done: Option<D>,
}

impl<T, F, D> AsyncDriver<F, D>
where
    T: 'static,
    F: StdFuture<Output = Result<T, Error>> + 'static,
    D: Completion<T>,
{
    /// The driver of a block whose first poll (see `shell.rs`) was pending:
    /// the block, pinned where it was polled, and the waker it was polled
    /// with, its table entry pointing at `runner`.
    pub(super) fn adopt(
        future: Slot<F>,
        done: D,
        parts: (Rc<Polling>, Arc<Counting>, TaskId),
        runner: &Runner,
    ) -> Self {
        let (polling, counting, task) = parts;
        let mut driver = AsyncDriver {
            future,
            polling: Some(polling),
            counting: Some(counting),
            task: Some(task),
            output: None,
            done: Some(done),
        };
        driver.hold_if_waker_escaped(runner);
        driver
    }

    pub(crate) fn new(future: F, done: D) -> Self {
        AsyncDriver {
            future: Box::pin(Some(future)),
            polling: None,
            counting: None,
            task: None,
            output: None,
            done: Some(done),
        }
    }

    /// The waker this coroutine is polled with, made once (here only for a
    /// coroutine started with no shell, see `shell.rs`): an `Arc` naming
    /// the coroutine by its id in this thread's table (an `Rc` cannot cross
    /// threads, an id can), counting its handles (`counting.rs`).
    fn polling(&mut self, runner: &Runner) -> Rc<Polling> {
        if let Some(polling) = &self.polling {
            return polling.clone();
        }
        let id = LOCAL.with(|l| {
            l.borrow_mut().tasks.insert(Entry {
                weak: runner.downgrade(),
                strong: None,
            })
        });
        self.task = Some(id);
        let (counting, waker) = Counting::new(id, IOLoop::try_current().map(|l| l.remote()));
        self.counting = Some(counting);
        let polling = Rc::new(Polling::new(runner.weak_waker(), waker));
        self.polling = Some(polling.clone());
        polling
    }
}

impl<F: StdFuture, D> AsyncDriver<F, D> {
    /// A squall future or yield point awaited by the coroutine holds its
    /// runner (as a generator's does); a `std` waker cannot, being `Send`.
    /// So while a clone of the waker is out there (a channel kept it), this
    /// thread's table holds the runner, or nothing would; once no clone is
    /// left, a coroutine nobody can wake is dropped, not kept forever.
    /// Looked at after each poll that is pending; the clones' going is
    /// heard of by [`let_go`].
    fn hold_if_waker_escaped(&mut self, runner: &Runner) {
        let Some(id) = self.task else {
            return;
        };
        let Some(counting) = &self.counting else {
            return;
        };
        // The usual suspension (on a squall future, whose waker never gets
        // out) finds the own handle alone and held unchanged: one load, no
        // trip to the table.
        let out = counting.out();
        if out != counting.held() {
            hold(id, counting, out, runner);
        }
    }
}

/// The table holds coroutine `id` (`out`: a clone of its waker got
/// out), or no longer (they all went). Apart from the driver: one copy,
/// not one per block type.
#[cold]
fn hold(id: TaskId, counting: &Arc<Counting>, out: bool, runner: &Runner) {
    counting.set_held(out);
    let hold = out.then(|| Hold {
        _runner: runner.clone(),
        counting: counting.clone(),
    });
    let dropped = LOCAL.with(|l| {
        let mut l = l.borrow_mut();
        let entry = l.tasks.get_mut(id)?;
        std::mem::replace(&mut entry.strong, hold)
    });
    // Not the last handle (the caller holds one): dropped with no
    // borrow.
    drop(dropped);
}

impl<T, F, D> ErasedGen for AsyncDriver<F, D>
where
    T: 'static,
    F: StdFuture<Output = Result<T, Error>> + 'static,
    D: Completion<T>,
{
    fn resume(&mut self, input: Resume, runner: &Runner) -> Option<Box<dyn YieldPoint>> {
        if let Resume::Error(err) = input {
            // An error raised by a callback the coroutine scheduled (its
            // stack context), or a failed start: a generator could catch it,
            // an `async` block cannot be entered with it. It ends the
            // coroutine, as an uncaught throw ends a generator; the block is
            // dropped, which gives up whatever it was awaiting.
            self.output = Some(Err(err));
            return None;
        }
        if let Some(err) = self.done.as_ref().and_then(Completion::refused) {
            // Its receiver ends it: as if the block had returned `err`.
            self.output = Some(Err(err));
            return None;
        }
        let polling = self.polling(runner);
        let Some(future) = self.future.as_mut().as_pin_mut() else {
            // (Not reached: the block is there until the driver goes.)
            self.output = Some(Err(Error::new(ErrorKind::InvalidState, "no block to poll")));
            return None;
        };
        let polled = poll_with(&polling, move |cx| future.poll(cx));
        match polled {
            Ok(Poll::Pending) => {
                self.hold_if_waker_escaped(runner);
                if let Some(done) = self.done.as_mut() {
                    done.waiting(runner);
                }
                Some(Box::new(Suspend))
            }
            Ok(Poll::Ready(output)) => {
                self.output = Some(output);
                None
            }
            Err(panic) => {
                self.output = Some(Err(panic));
                None
            }
        }
    }

    fn finish(mut self: Box<Self>, err: Option<Error>) {
        let result = match (err, self.output.take()) {
            (Some(err), _) => Err(err),
            (None, Some(result)) => result,
            (None, None) => Err(Error::new(
                ErrorKind::InvalidState,
                "coroutine finished without a result",
            )),
        };
        let done = self.done.take().expect("finished once");
        // Its runner's parts, for the next coroutine once nothing holds
        // them (see `shell.rs`; not if the table holds it for a clone of
        // its waker out there: `retire` looks).
        if self.retires() {
            if let (Some(polling), Some(counting), Some(task)) =
                (self.polling.take(), self.counting.take(), self.task.take())
            {
                super::shell::retire(polling, counting, task);
            }
        }
        // The block (and what it still holds) goes before `done` runs.
        // Its drop is user code and may panic (a value held across an
        // await): the future still completes. The coroutine's own error
        // (a thrown-in error, the client leaving) wins and the panic is
        // reported as a second failure; a block that ended well ends with
        // the panic.
        let result = match (crate::callback::catch_value(move || drop(self)), result) {
            (Ok(()), result) => result,
            (Err(panic), Ok(_)) => Err(panic),
            (Err(panic), Err(err)) => {
                super::runner::report(panic, "squall::gen::coroutine (dropping the block)");
                Err(err)
            }
        };
        done.complete(result);
    }

    fn failed(&self) -> bool {
        matches!(self.output, Some(Err(_)))
    }

    fn retires(&self) -> bool {
        self.polling.is_some() && self.counting.is_some() && self.task.is_some()
    }

    #[cfg(feature = "trace")]
    fn name(&self) -> &'static str {
        std::any::type_name::<F>()
    }
}

impl<F: StdFuture, D> Drop for AsyncDriver<F, D> {
    fn drop(&mut self) {
        if let Some(id) = self.task.take() {
            // `try_with`: a coroutine may be dropped while its thread exits.
            // The entry's strong handle (if any) is this very runner, being
            // dropped: it is taken out under the borrow and dropped after.
            let entry = LOCAL
                .try_with(|l| l.borrow_mut().tasks.remove(id))
                .ok()
                .flatten();
            drop(entry);
        }
    }
}

/// What an `async` coroutine yields while it is pending: ready once the
/// runner is woken ([`Runner::wake`], or a result for one of its keys). A
/// unit struct: boxing it allocates nothing.
pub(super) struct Suspend;

impl YieldPoint for Suspend {
    fn start(&mut self, _runner: &Runner) -> Result<(), Error> {
        Ok(())
    }

    fn is_ready(&self, runner: &Runner) -> bool {
        // Woken since the last poll, while it was being polled too (a
        // completion that came synchronously): the coroutine is polled
        // again.
        runner.take_woken()
    }

    fn get_result(&mut self, _runner: &Runner) -> Result<Value, Error> {
        Ok(Value::unit())
    }
}

new_key_type! {
    /// An `async` coroutine in this thread's table.
    pub(super) struct TaskId;
}

/// This thread's `async` coroutines (weakly: a coroutine nobody can wake is
/// dropped, not kept here), the ones woken since the last drain, and the
/// ones held for a waker some clone of which was let go of since.
#[derive(Default)]
pub(super) struct Local {
    pub(super) tasks: SlotMap<TaskId, Entry>,
    /// The coroutines woken, each with its runner: a coroutine woken is
    /// held until its wake is delivered (woken during its own poll, its
    /// waker kept by nobody, nothing else may hold it).
    pub(super) ready: VecDeque<(TaskId, Runner)>,
    let_go: Vec<TaskId>,
    drain_scheduled: bool,
}

/// A coroutine in the table: weakly, and strongly while its waker is out.
pub(super) struct Entry {
    pub(super) weak: WeakRunner,
    pub(super) strong: Option<Hold>,
}

/// The table's strong handle on a coroutine whose waker is out there, and
/// what tells whether it still is.
pub(super) struct Hold {
    /// Never read: it keeps the coroutine alive.
    _runner: Runner,
    /// The waker it polls with, which counts its clones.
    counting: Arc<Counting>,
}

thread_local! {
    pub(super) static LOCAL: RefCell<Local> = RefCell::new(Local::default());
    /// How many wakes were queued on this thread so far: a shell whose
    /// first poll saw none queued needs no look at the queue (see
    /// `shell.rs`).
    static WAKES: Cell<u64> = const { Cell::new(0) };
    static THREAD_TAG: Cell<u64> = const { Cell::new(0) };
}

/// A number for this thread, unique in the process: a waker compares it to
/// know whether it is woken at home (cheaper than `thread::current()`).
pub(super) fn thread_tag() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    THREAD_TAG.with(|t| {
        if t.get() == 0 {
            t.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        t.get()
    })
}

/// Whether this is thread `home`.
#[inline]
pub(super) fn at_home(home: u64) -> bool {
    THREAD_TAG.try_with(Cell::get).unwrap_or(0) == home
}

/// A wake from another thread, with no loop to go through.
#[cold]
pub(super) fn undeliverable() {
    log::warn!(
        "an async coroutine created with no IOLoop was woken from another thread: \
         nothing can deliver it"
    );
}

/// The last clone of coroutine `id`'s waker was let go of (on any thread):
/// its home thread looks whether anything else is out, and if not, stops
/// holding the coroutine. From another thread through the loop's door; a
/// loop gone (or none) lets nothing through, and the table goes with
/// its thread.
pub(super) fn let_go(id: TaskId, home: u64, remote: Option<&Remote>) {
    if at_home(home) {
        let_go_at_home(id);
        return;
    }
    if let Some(remote) = remote {
        drop(remote.add_callback(move || let_go_now(id)));
    }
}

/// [`let_go`] at home: put off to the drain (a waker may be dropped
/// anywhere, inside user code holding its own locks, say, and the
/// coroutine let go of drops the block), if the table holds `id`.
fn let_go_at_home(id: TaskId) {
    let queued = LOCAL.try_with(|l| {
        // (Borrowed only if dropped inside the table's own code.)
        let Ok(mut l) = l.try_borrow_mut() else {
            return None;
        };
        if !l.tasks.get(id).is_some_and(|e| e.strong.is_some()) {
            return Some(false);
        }
        l.let_go.push(id);
        Some(!std::mem::replace(&mut l.drain_scheduled, true))
    });
    match queued {
        Ok(Some(true)) => schedule_drain(),
        Ok(None) => {
            if let Some(io_loop) = IOLoop::try_current().filter(|l| !l.is_closed()) {
                io_loop.spawn_callback(move || let_go_now(id));
            }
        }
        // Not held, or the thread is ending.
        Ok(Some(false)) | Err(_) => {}
    }
}

/// Stops holding coroutine `id` if no clone of its waker is out there;
/// the coroutine is dropped then if nothing else holds it.
fn let_go_now(id: TaskId) {
    let hold = LOCAL.try_with(|l| {
        let mut l = l.borrow_mut();
        let entry = l.tasks.get_mut(id)?;
        if entry.strong.as_ref()?.counting.out() {
            return None;
        }
        let hold = entry.strong.take()?;
        hold.counting.set_held(false);
        Some(hold)
    });
    if let Ok(Some(hold)) = hold {
        // With no borrow: the block goes with it, and its drop is user
        // code, which may panic (reported: nobody is left to hear it).
        if let Err(panic) = crate::callback::catch_value(move || drop(hold)) {
            super::runner::report(panic, "squall::gen::coroutine (dropping the block)");
        }
    }
}

/// Queues coroutine `id` for the next loop iteration: a `std` waker may be
/// called from anywhere (inside user code holding its own borrows, say),
/// so it never polls in place. One loop callback drains the whole queue.
pub(super) fn wake_at_home(id: TaskId) {
    // (`try_with`: a block dropped as the thread's table goes, at thread
    // end, may wake another coroutine; there is nobody left to wake.)
    let schedule = LOCAL.try_with(|l| {
        let mut l = l.borrow_mut();
        let Some(runner) = l.tasks.get(id).and_then(|e| e.weak.upgrade()) else {
            return false;
        };
        l.ready.push_back((id, runner));
        !std::mem::replace(&mut l.drain_scheduled, true)
    });
    let Ok(schedule) = schedule else { return };
    WAKES.with(|w| w.set(w.get().wrapping_add(1)));
    if schedule {
        schedule_drain();
    }
}

/// Drains the queues on the loop's next iteration (now, with no loop).
fn schedule_drain() {
    /// The drain queued: if its loop is closed before it runs (the
    /// callback dropped unrun), the thread's next wake schedules another,
    /// rather than finding one scheduled for good.
    struct Queued;
    impl Drop for Queued {
        fn drop(&mut self) {
            let _ = LOCAL.try_with(|l| {
                if let Ok(mut l) = l.try_borrow_mut() {
                    l.drain_scheduled = false;
                }
            });
        }
    }
    match IOLoop::try_current() {
        Some(io_loop) if !io_loop.is_closed() => {
            let queued = Queued;
            io_loop.spawn_callback(move || {
                // It runs: nothing to undo.
                std::mem::forget(queued);
                drain_ready();
            })
        }
        _ => drain_ready(),
    }
}

/// How many wakes were queued on this thread so far.
#[inline]
pub(super) fn wakes_queued() -> u64 {
    WAKES.with(Cell::get)
}

/// Wakes every queued coroutine, in the order they were woken; then looks
/// at the ones whose waker's clones were let go of (a poll may have made
/// another).
fn drain_ready() {
    LOCAL.with(|l| l.borrow_mut().drain_scheduled = false);
    loop {
        let next = LOCAL.with(|l| {
            let mut l = l.borrow_mut();
            match l.ready.pop_front() {
                Some((_, runner)) => Some(Ok(runner)),
                None => l.let_go.pop().map(Err),
            }
        });
        match next {
            None => break,
            // (A runner that finished meanwhile does nothing.)
            Some(Ok(runner)) => {
                runner.wake();
                // The queued wake may have been its last handle: the block
                // goes now, and its drop is user code, which may panic
                // (reported; the rest of the queue is still drained).
                if let Err(panic) = crate::callback::catch_value(move || drop(runner)) {
                    super::runner::report(panic, "squall::gen::coroutine (dropping the block)");
                }
            }
            Some(Err(id)) => let_go_now(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::future::Future;
    use std::pin::Pin;
    use std::task::Waker;

    /// The runner of the coroutine this is awaited in.
    fn own_runner() -> impl StdFuture<Output = Runner> {
        std::future::poll_fn(|cx| Poll::Ready(Runner::polling(cx.waker()).expect("in a coroutine")))
    }

    #[test]
    fn a_coroutine_knows_its_waker_and_its_clones_by_will_wake() {
        // (No loop: a wake at home is delivered at once.)
        let f = super::super::coroutine(async {
            let mut kept: Option<Waker> = None;
            std::future::poll_fn(|cx| {
                // Its runner is lent to a future polled with its waker,
                // or with a clone of it, before and after one got out.
                assert!(Runner::polling(cx.waker()).is_some());
                if let Some(kept) = &kept {
                    assert!(kept.will_wake(cx.waker()));
                    assert!(Runner::polling(kept).is_some());
                    return Poll::Ready(());
                }
                let clone = cx.waker().clone();
                assert!(clone.will_wake(cx.waker()) && cx.waker().will_wake(&clone));
                clone.wake_by_ref();
                kept = Some(clone);
                Poll::Pending
            })
            .await;
            Ok(())
        });
        f.result().unwrap();
    }

    #[test]
    fn suspension_keys_and_given_up_keys_do_not_pile_up() {
        let io_loop = IOLoop::new().unwrap();
        let slots = io_loop
            .run_sync(
                || {
                    super::super::coroutine(async {
                        let runner = own_runner().await;
                        for i in 0..1_000u32 {
                            // Woken during its own poll: it completes a
                            // future it has just registered on.
                            let f = Future::<u32>::new();
                            let mut awaited = f.clone();
                            let mut first = true;
                            let got = std::future::poll_fn(|cx| {
                                if std::mem::take(&mut first) {
                                    assert!(Pin::new(&mut awaited).poll(cx).is_pending());
                                    f.set_result(i);
                                    return Poll::Pending;
                                }
                                Pin::new(&mut awaited).poll(cx)
                            })
                            .await?;
                            assert_eq!(got, i);
                            // An awaited Task given up before its callback.
                            let kept = std::rc::Rc::new(std::cell::Cell::new(None));
                            let k = kept.clone();
                            let task =
                                super::super::Task::new(move |cb: super::super::ResultCallback| {
                                    k.set(Some(cb))
                                });
                            let mut task = std::future::IntoFuture::into_future(task);
                            let polled = std::future::poll_fn(|cx| {
                                Poll::Ready(Pin::new(&mut task).poll(cx).is_pending())
                            })
                            .await;
                            assert!(polled);
                            drop(task);
                            kept.take().unwrap().call(i);
                        }
                        Ok(runner.key_slots())
                    })
                },
                None,
            )
            .unwrap();
        assert_eq!(slots, 0);
    }
}
