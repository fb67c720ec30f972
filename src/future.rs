//! A single-threaded placeholder for a result that is not there yet.
//!
//! Like Tornado's `Future` (and unlike `std::future::Future`, which is polled),
//! it is *completed*: someone calls [`set_result`](Future::set_result) or
//! [`set_error`](Future::set_error), and the done-callbacks run. It is `!Send`
//! and uses no atomics or locks, which is what makes it cheap on one loop.
//!
//! ```
//! use std::cell::Cell;
//! use std::rc::Rc;
//! use squall::Future;
//!
//! let future = Future::new();
//! let seen = Rc::new(Cell::new(0));
//! let s = seen.clone();
//! future.add_done_callback(move |f: &Future<u32>| s.set(f.result().unwrap()));
//! assert!(!future.done());
//!
//! future.set_result(42);
//! assert_eq!(seen.get(), 42);
//! assert_eq!(future.result()?, 42);
//! // A future is completed once. Where completions race (a reply and a
//! // timeout), the loser uses `try_set_result`, which says it lost:
//! assert!(!future.try_set_result(7));
//! # Ok::<(), squall::Error>(())
//! ```
//!
//! # Completing twice
//! [`set_result`](Future::set_result), [`set_error`](Future::set_error) and
//! [`complete`](Future::complete) on a future that is already done is a bug
//! in the caller (Tornado raises `InvalidStateError`): a debug build panics
//! with a message naming the caller's line (inside a callback the panic is
//! caught and reported like any error), a release build logs it with
//! `log::error!` and drops the value, as a user error never kills the loop.
//! Code in which two completions race on purpose calls
//! [`try_set_result`](Future::try_set_result) and its siblings (Tornado's
//! `future_set_result_unless_cancelled`).
//!
//! # An error nobody read
//! A future that failed and is dropped, all its clones, without anyone
//! having looked at its error ([`result`](Future::result),
//! [`error`](Future::error), [`take_result`](Future::take_result),
//! [`result_ref`](Future::result_ref), or `.await`) logs it once with
//! `log::error!` ("Future exception was never retrieved", as Tornado does),
//! so a failure is not lost in silence. A done-callback that returns the
//! future's error, or a callback that returns the future, count as reading
//! it. A stream's own futures that fail because the stream closed are
//! marked read, as in Tornado: ignoring the future of a write to a client
//! that went away logs nothing. So is a coroutine's future failed because
//! its loop was closed or dropped while it waited (see
//! [`gen::coroutine`](crate::gen::coroutine)): a clean shutdown.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::task::Waker;

use crate::callback::{self, CallbackReturn, Origin};
use crate::error::{Error, ErrorKind};
use crate::stack_context::Context;

mod nesting;
mod polling;
#[cfg(feature = "stackful")]
pub(crate) use nesting::{child_nesting, drain_deferred, swap_nesting};
pub(crate) use polling::{poll_with, polling_wake, Polling};

enum Slot<T> {
    Pending,
    Done(Result<T, Error>),
    /// The value was moved out by `take_result`.
    Taken,
}

type UserDoneFn<T> = Box<dyn FnOnce(&Future<T>) -> Result<(), Error>>;

/// What a done-callback runs.
enum DoneFn<T> {
    /// A user closure.
    Call(UserDoneFn<T>),
    /// A waiter that only needs a nudge (a gen `Runner` waiting on a
    /// `YieldFuture`, or an `async` coroutine awaiting this future): an `Rc`
    /// it already has, so no closure is allocated.
    Wake(Rc<dyn Wake>),
    /// A `std` waker: this future is being awaited by a task of some other
    /// executor (or by a combinator inside one of ours).
    Waker(Waker),
}

/// Something woken when a future completes; it reads the result itself.
pub(crate) trait Wake {
    /// The future it waits on is done.
    fn wake(self: Rc<Self>);
    /// Itself, to be told apart by type (a gen `Runner` finds itself).
    fn into_any(self: Rc<Self>) -> Rc<dyn std::any::Any>;
}

struct DoneCallback<T> {
    f: DoneFn<T>,
    ctx: Context,
    name: &'static str,
}

struct State<T> {
    slot: Slot<T>,
    // Most futures have exactly one done-callback: keep it inline.
    first: Option<DoneCallback<T>>,
    rest: Vec<DoneCallback<T>>,
    /// Whether someone looked at the error (see the module docs): a `Cell`,
    /// as `error()` and `result()` only borrow the state.
    observed: Cell<bool>,
}

impl<T> Drop for State<T> {
    fn drop(&mut self) {
        // Only a failed future pays for this: one compare otherwise.
        if let Slot::Done(Err(err)) = &self.slot {
            if !self.observed.get() {
                log::error!("Future exception was never retrieved: {err}");
            }
        }
    }
}

/// A clonable, single-threaded placeholder for a `Result<T, Error>`.
///
/// Clones share one state. See the [module docs](self).
///
/// It is `#[must_use]`: a future made and forgotten is a warning, since
/// its outcome, an error above all, would go unseen.
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// fn write_twice(stream: &squall::IOStream) {
///     stream.write(b"forgotten".to_vec()); // error: unused `Future` that must be used
///     drop(stream.write(b"ignored on purpose".to_vec())); // fine
/// }
/// ```
#[must_use = "a Future's outcome is lost if nobody looks: add a done-callback, await it or \
              return it; to ignore it on purpose (a write whose failure also closes the \
              stream), drop(..) it"]
pub struct Future<T> {
    state: Rc<RefCell<State<T>>>,
}

impl<T> Clone for Future<T> {
    fn clone(&self) -> Self {
        Future {
            state: self.state.clone(),
        }
    }
}

impl<T: 'static> Default for Future<T> {
    fn default() -> Self {
        Future::new()
    }
}

impl<T: 'static> Future<T> {
    /// A pending future.
    pub fn new() -> Future<T> {
        Future::with_slot(Slot::Pending)
    }

    /// A future already done with `value`.
    pub fn ready(value: T) -> Future<T> {
        Future::with_slot(Slot::Done(Ok(value)))
    }

    /// A future already failed with `err`.
    ///
    /// The argument is an [`Error`] (not `impl Into<Error>`) so that
    /// `Future::failed(io_err.into())` infers, as `Err(io_err.into())` does.
    pub fn failed(err: Error) -> Future<T> {
        Future::with_slot(Slot::Done(Err(err)))
    }

    fn with_slot(slot: Slot<T>) -> Future<T> {
        Future {
            state: Rc::new(RefCell::new(State {
                slot,
                first: None,
                rest: Vec::new(),
                observed: Cell::new(false),
            })),
        }
    }

    /// Completes the future with `value` and runs its done-callbacks, in the
    /// order they were added, before returning. (Only when completions nest
    /// very deeply — a done-callback completing a future whose done-callback
    /// completes another, over 32 levels — are the deeper callbacks run a
    /// little later, by the outermost completion, so as not to overflow the
    /// stack.)
    ///
    /// # Panics
    /// In a debug build, if the future is already done (a release build
    /// logs that and drops `value`); see [completing
    /// twice](self#completing-twice). Use
    /// [`try_set_result`](Future::try_set_result) where completions race.
    #[track_caller]
    pub fn set_result(&self, value: T) {
        self.complete(Ok(value))
    }

    /// Completes the future with an error and runs its done-callbacks.
    ///
    /// The argument is an [`Error`], like [`Future::failed`]'s, so that
    /// `set_error(io_err.into())` infers.
    ///
    /// # Panics
    /// In a debug build, if the future is already done; see
    /// [`set_result`](Future::set_result).
    #[track_caller]
    pub fn set_error(&self, err: Error) {
        self.complete(Err(err))
    }

    /// Completes the future with `result`, value or error.
    ///
    /// # Panics
    /// In a debug build, if the future is already done; see
    /// [`set_result`](Future::set_result).
    #[track_caller]
    pub fn complete(&self, result: Result<T, Error>) {
        if !self.try_complete(result) {
            completed_twice(std::panic::Location::caller());
        }
    }

    /// Completes the future with `value` if it is still pending: for code in
    /// which completions race (a reply and its timeout), Tornado's
    /// `future_set_result_unless_cancelled`. Returns whether this call
    /// completed it; if not, `value` is dropped.
    pub fn try_set_result(&self, value: T) -> bool {
        self.try_complete(Ok(value))
    }

    /// [`set_error`](Future::set_error) if the future is still pending;
    /// returns whether this call completed it.
    pub fn try_set_error(&self, err: Error) -> bool {
        self.try_complete(Err(err))
    }

    /// [`complete`](Future::complete) if the future is still pending;
    /// returns whether this call completed it.
    pub fn try_complete(&self, result: Result<T, Error>) -> bool {
        let (first, rest) = {
            let mut state = self.state.borrow_mut();
            if !matches!(state.slot, Slot::Pending) {
                // A losing error is not an unread one: it never was the
                // future's outcome. Dropped with no borrow held.
                drop(state);
                drop(result);
                return false;
            }
            state.slot = Slot::Done(result);
            (state.first.take(), std::mem::take(&mut state.rest))
        };
        // No borrow is held from here: callbacks may use this future freely.
        self.dispatch(first, rest);
        true
    }

    /// Marks the error, if any, as read: for futures a library fails and
    /// its user may ignore on purpose (a stream's futures when it closes).
    pub(crate) fn mark_observed(&self) {
        self.state.borrow().observed.set(true);
    }

    /// This future, its error marked as read (see
    /// [`mark_observed`](Future::mark_observed)).
    pub(crate) fn observed(self) -> Future<T> {
        self.mark_observed();
        self
    }

    fn run_callbacks(&self, first: Option<DoneCallback<T>>, rest: Vec<DoneCallback<T>>) {
        if let Some(cb) = first {
            self.run_callback(cb);
        }
        for cb in rest {
            self.run_callback(cb);
        }
    }

    fn run_callback(&self, cb: DoneCallback<T>) {
        let DoneCallback { f, ctx, name } = cb;
        match f {
            DoneFn::Call(f) => callback::invoke(&ctx, Origin::DoneCallback, name, || f(self)),
            DoneFn::Wake(w) => callback::invoke(&ctx, Origin::DoneCallback, name, || {
                w.wake();
                Ok(())
            }),
            DoneFn::Waker(w) => callback::invoke(&ctx, Origin::DoneCallback, name, || {
                w.wake();
                Ok(())
            }),
        }
    }

    /// Whether the future has a result or an error.
    pub fn done(&self) -> bool {
        !matches!(self.state.borrow().slot, Slot::Pending)
    }

    /// The error, if the future failed.
    pub fn error(&self) -> Option<Error> {
        let state = self.state.borrow();
        match &state.slot {
            Slot::Done(Err(err)) => {
                state.observed.set(true);
                Some(err.clone())
            }
            _ => None,
        }
    }

    /// Moves the result out of the future, for values that are not `Clone`.
    ///
    /// An error stays in the future (errors are cheap to clone); a value can
    /// be taken once.
    ///
    /// # Errors
    /// The future's error; or [`ErrorKind::InvalidState`] while it is pending
    /// or after its value was taken.
    pub fn take_result(&self) -> Result<T, Error> {
        let mut state = self.state.borrow_mut();
        match std::mem::replace(&mut state.slot, Slot::Taken) {
            Slot::Done(Ok(value)) => Ok(value),
            Slot::Done(Err(err)) => {
                state.slot = Slot::Done(Err(err.clone()));
                state.observed.set(true);
                Err(err)
            }
            Slot::Pending => {
                state.slot = Slot::Pending;
                Err(not_done())
            }
            Slot::Taken => Err(taken()),
        }
    }

    /// Adds a callback that runs with the future once it is done: at once if
    /// it is done already, else when it completes, in the order added.
    ///
    /// The callback captures the current [stack context](crate::stack_context);
    /// an error it returns or panics with goes there (or to the log).
    pub fn add_done_callback<R, F>(&self, f: F)
    where
        R: CallbackReturn,
        F: FnOnce(&Future<T>) -> R + 'static,
    {
        self.push_done_callback(DoneCallback {
            f: DoneFn::Call(Box::new(move |fut: &Future<T>| f(fut).into_outcome())),
            ctx: Context::capture(),
            name: std::any::type_name::<F>(),
        });
    }

    /// Wakes `waiter` once the future is done (at once if it is), in order
    /// with the done-callbacks, under the current stack context.
    pub(crate) fn add_waker(&self, waiter: Rc<dyn Wake>, name: &'static str) {
        self.push_done_callback(DoneCallback {
            f: DoneFn::Wake(waiter),
            ctx: Context::capture(),
            name,
        });
    }

    fn push_done_callback(&self, cb: DoneCallback<T>) {
        let run_now = {
            let mut state = self.state.borrow_mut();
            if matches!(state.slot, Slot::Pending) {
                if state.first.is_none() {
                    state.first = Some(cb);
                } else {
                    state.rest.push(cb);
                }
                None
            } else {
                Some(cb)
            }
        };
        if run_now.is_some() {
            self.dispatch(run_now, Vec::new());
        }
    }

    /// Whether nobody but this handle can ever see the future's outcome: no
    /// other clone exists and no done-callback is attached. A lock or a queue
    /// skips such a waiter instead of handing it a permit or an item that
    /// would be dropped unseen.
    pub(crate) fn is_abandoned(&self) -> bool {
        if Rc::strong_count(&self.state) != 1 {
            return false;
        }
        let state = self.state.borrow();
        state.first.is_none() && state.rest.is_empty()
    }

    /// Whether `self` and `other` are clones of one future.
    pub fn ptr_eq(&self, other: &Future<T>) -> bool {
        Rc::ptr_eq(&self.state, &other.state)
    }

    /// The value, borrowed: no copy (for large values, or ones that are not
    /// `Clone`). Let the borrow go before taking the result out of this
    /// future; while it lives, [`take_result`](Future::take_result) on a
    /// clone would panic, as a `RefCell` does.
    ///
    /// ```
    /// use squall::Future;
    ///
    /// let f = Future::ready(vec![0u8; 1 << 20]);
    /// assert_eq!(f.result_ref()?.len(), 1 << 20);
    /// # Ok::<(), squall::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`result`](Future::result): the future's error, or
    /// [`ErrorKind::InvalidState`] while it is pending or after its value
    /// was taken.
    pub fn result_ref(&self) -> Result<std::cell::Ref<'_, T>, Error> {
        let state = self.state.borrow();
        match &state.slot {
            Slot::Done(Ok(_)) => {}
            Slot::Done(Err(err)) => {
                state.observed.set(true);
                return Err(err.clone());
            }
            Slot::Pending => return Err(not_done()),
            Slot::Taken => return Err(taken()),
        }
        Ok(std::cell::Ref::map(state, |state| match &state.slot {
            Slot::Done(Ok(value)) => value,
            // Checked above, under the same borrow.
            _ => unreachable!(),
        }))
    }
}

impl<T: Clone + 'static> Future<T> {
    /// A copy of the result.
    ///
    /// # Errors
    /// The future's error; or [`ErrorKind::InvalidState`] while it is pending
    /// or after its value was taken with [`take_result`](Future::take_result).
    pub fn result(&self) -> Result<T, Error> {
        let state = self.state.borrow();
        match &state.slot {
            Slot::Done(Ok(value)) => Ok(value.clone()),
            Slot::Done(Err(err)) => {
                state.observed.set(true);
                Err(err.clone())
            }
            Slot::Pending => Err(not_done()),
            Slot::Taken => Err(taken()),
        }
    }
}

/// A second completion: a bug in the caller. Panics in a debug build (the
/// test suite finds it); a release build logs it, as a user error must not
/// kill the loop.
#[cold]
fn completed_twice(at: &'static std::panic::Location<'static>) {
    let message = format!(
        "squall: a Future was completed twice (set_result/set_error/complete at {at} on a \
         future already done); use try_set_result/try_set_error/try_complete where \
         completions race"
    );
    if cfg!(debug_assertions) {
        panic!("{message}");
    }
    log::error!("{message}");
}

fn not_done() -> Error {
    Error::new(ErrorKind::InvalidState, "future is not done yet")
}

fn taken() -> Error {
    Error::new(ErrorKind::InvalidState, "future's value was already taken")
}

impl<T> fmt::Debug for Future<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state.borrow().slot {
            Slot::Pending => "pending",
            Slot::Done(Ok(_)) => "done",
            Slot::Done(Err(_)) => "failed",
            Slot::Taken => "taken",
        };
        f.debug_struct("Future").field("state", &state).finish()
    }
}

impl<T: 'static> CallbackReturn for Future<T> {
    fn into_outcome(self) -> Result<(), Error> {
        // The done-callback captures the current stack context, which is the
        // one this callback runs under: the late failure goes where an
        // immediate one would have gone.
        self.add_done_callback(|f: &Future<T>| match f.error() {
            Some(err) => Err(err),
            None => Ok(()),
        });
        Ok(())
    }
}

/// Copies `a`'s outcome into `b` when `a` completes (Tornado's `chain_future`).
///
/// If `b` is already done by then, `a`'s outcome is dropped.
pub fn chain_future<T: Clone + 'static>(a: &Future<T>, b: &Future<T>) {
    let b = b.clone();
    a.add_done_callback(move |a: &Future<T>| {
        // If `b` is done already (its timeout won), `a`'s outcome is
        // dropped, as in Tornado.
        if !b.done() {
            b.complete(a.result());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn callbacks_run_in_order_and_at_once_when_done() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let f = Future::<i32>::new();
        for i in 0..3 {
            let log = log.clone();
            f.add_done_callback(move |_: &Future<i32>| log.borrow_mut().push(i));
        }
        assert!(log.borrow().is_empty());
        f.set_result(1);
        assert_eq!(*log.borrow(), [0, 1, 2]);
        let l = log.clone();
        f.add_done_callback(move |_: &Future<i32>| l.borrow_mut().push(3));
        assert_eq!(*log.borrow(), [0, 1, 2, 3]);
    }

    #[test]
    fn try_completion_of_a_done_future_says_it_lost_and_keeps_the_first() {
        let f = Future::ready(1);
        assert!(!f.try_set_result(2));
        assert!(!f.try_set_error(Error::other("x")));
        assert!(!f.try_complete(Ok(3)));
        assert_eq!(f.result().unwrap(), 1);
        let g = Future::new();
        assert!(g.try_set_result(4));
        assert_eq!(g.result().unwrap(), 4);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "a Future was completed twice")]
    fn completing_twice_panics_in_a_debug_build() {
        let f = Future::new();
        f.set_result(1);
        f.set_result(2);
    }

    #[test]
    fn take_result_moves_once() {
        struct NotClone(u8);
        let f = Future::new();
        assert_eq!(
            f.take_result().err().unwrap().kind(),
            ErrorKind::InvalidState
        );
        f.set_result(NotClone(3));
        assert_eq!(f.take_result().unwrap().0, 3);
        assert_eq!(
            f.take_result().err().unwrap().kind(),
            ErrorKind::InvalidState
        );
        assert!(f.done());
    }

    #[test]
    fn errors_stay_readable() {
        let f = Future::<u8>::failed("nope".into());
        assert_eq!(f.error().unwrap().message(), "nope");
        assert_eq!(f.take_result().unwrap_err().message(), "nope");
        assert_eq!(f.result().unwrap_err().message(), "nope");
    }

    #[test]
    fn chain_copies_value_and_error() {
        let (a, b) = (Future::new(), Future::new());
        chain_future(&a, &b);
        a.set_result(5);
        assert_eq!(b.result().unwrap(), 5);
        let (c, d) = (Future::<u8>::new(), Future::new());
        chain_future(&c, &d);
        c.set_error(Error::new(ErrorKind::Timeout, "t"));
        assert_eq!(d.error().unwrap().kind(), ErrorKind::Timeout);
    }

    #[test]
    fn callback_may_reenter_the_future() {
        let f = Future::<u8>::new();
        let inner_ran = Rc::new(RefCell::new(false));
        let ir = inner_ran.clone();
        f.add_done_callback(move |f: &Future<u8>| {
            assert_eq!(f.result().unwrap(), 9);
            let ir = ir.clone();
            f.add_done_callback(move |_: &Future<u8>| *ir.borrow_mut() = true);
        });
        f.set_result(9);
        assert!(*inner_ran.borrow());
    }
}
