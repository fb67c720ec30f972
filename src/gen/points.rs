//! Yield points: the things a generator can wait on.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::marker::PhantomData;
use std::rc::Rc;
use std::time::Duration;

use super::{Key, ResultCallback, Runner, Value};
use crate::callback::{self, CallbackReturn};
use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::ioloop::IOLoop;

/// Something a generator waits on: Tornado's `YieldPoint`.
///
/// The Runner calls `start` once when the point is yielded, then `is_ready`
/// each time a result arrives, and `get_result` once it is ready; the result
/// (or error) is what the generator is resumed with. Implement it to make
/// your own kinds of waiting.
pub trait YieldPoint: 'static {
    /// Begins the operation; an error is thrown into the generator.
    fn start(&mut self, runner: &Runner) -> Result<(), Error>;
    /// Whether the result is there.
    fn is_ready(&self, runner: &Runner) -> bool;
    /// The result, called once, after `is_ready` said yes.
    fn get_result(&mut self, runner: &Runner) -> Result<Value, Error>;

    /// Boxes the point, for [`Multi`] and [`Step::Yield`](super::Step::Yield).
    fn boxed(self) -> Box<dyn YieldPoint>
    where
        Self: Sized,
    {
        Box::new(self)
    }
}

type TaskFn = Box<dyn FnOnce(ResultCallback) -> Result<(), Error>>;

/// Calls a function with a fresh callback and waits for it: Tornado's `gen.Task`.
///
/// The function gets a [`ResultCallback`]; whatever it is `call`ed with
/// (a tuple for several values) is the task's result. An `Err` returned or a
/// panic raised by the function is thrown into the generator.
pub struct Task {
    f: Option<TaskFn>,
    key: Option<Key>,
}

impl Task {
    /// A task that will call `f` with its callback.
    pub fn new<R, F>(f: F) -> Task
    where
        R: CallbackReturn,
        F: FnOnce(ResultCallback) -> R + 'static,
    {
        Task {
            f: Some(Box::new(move |cb| f(cb).into_outcome())),
            key: None,
        }
    }
}

impl YieldPoint for Task {
    fn start(&mut self, runner: &Runner) -> Result<(), Error> {
        let key = runner.fresh_key();
        runner.register_callback(key.clone())?;
        self.key = Some(key.clone());
        let f = self.f.take().expect("Task started twice");
        callback::catch(|| f(runner.result_callback(key)))
    }

    fn is_ready(&self, runner: &Runner) -> bool {
        self.key
            .as_ref()
            .is_some_and(|key| runner.is_ready(key).unwrap_or(true))
    }

    fn get_result(&mut self, runner: &Runner) -> Result<Value, Error> {
        runner.pop_result(self.key.as_ref().expect("Task not started"))
    }
}

/// Registers `key` and hands back its [`ResultCallback`] at once
/// (Tornado's `gen.Callback`); pair it with [`Wait`] or [`WaitAll`].
pub struct Callback {
    key: Key,
}

impl Callback {
    /// Registers `key` when yielded; the result is the callback, as a `Value`
    /// holding a [`ResultCallback`].
    pub fn new(key: impl Into<Key>) -> Callback {
        Callback { key: key.into() }
    }
}

impl YieldPoint for Callback {
    fn start(&mut self, runner: &Runner) -> Result<(), Error> {
        runner.register_callback(self.key.clone())
    }
    fn is_ready(&self, _: &Runner) -> bool {
        true
    }
    fn get_result(&mut self, runner: &Runner) -> Result<Value, Error> {
        Ok(Value::new(runner.result_callback(self.key.clone())))
    }
}

/// Waits for the result of a key registered with [`Callback`] (Tornado's `gen.Wait`).
///
/// Waiting on a key never registered throws [`ErrorKind::UnknownKey`].
pub struct Wait {
    key: Key,
}

impl Wait {
    /// Waits for `key`.
    pub fn new(key: impl Into<Key>) -> Wait {
        Wait { key: key.into() }
    }
}

impl YieldPoint for Wait {
    fn start(&mut self, _: &Runner) -> Result<(), Error> {
        Ok(())
    }
    fn is_ready(&self, runner: &Runner) -> bool {
        runner.is_ready(&self.key).unwrap_or(true)
    }
    fn get_result(&mut self, runner: &Runner) -> Result<Value, Error> {
        runner.pop_result(&self.key)
    }
}

/// Waits for several keys; the result is a `Vec<Value>` in key order
/// (Tornado's `gen.WaitAll`).
pub struct WaitAll {
    keys: Vec<Key>,
}

impl WaitAll {
    /// Waits for every key of `keys`.
    pub fn new<K: Into<Key>>(keys: impl IntoIterator<Item = K>) -> WaitAll {
        WaitAll {
            keys: keys.into_iter().map(Into::into).collect(),
        }
    }
}

impl YieldPoint for WaitAll {
    fn start(&mut self, _: &Runner) -> Result<(), Error> {
        Ok(())
    }
    fn is_ready(&self, runner: &Runner) -> bool {
        self.keys
            .iter()
            .all(|key| runner.is_ready(key).unwrap_or(true))
    }
    fn get_result(&mut self, runner: &Runner) -> Result<Value, Error> {
        let values: Result<Vec<Value>, Error> =
            self.keys.iter().map(|key| runner.pop_result(key)).collect();
        values.map(Value::new)
    }
}

/// Runs several yield points at once; the result is a `Vec<Value>` in order
/// (Tornado's `gen.Multi`, what yielding a list does).
///
/// If several fail, the first error (in order) is thrown in and the others
/// are reported as unhandled errors (logged; [`AsyncTest`](crate::testing::AsyncTest)
/// fails on them unless allowed); every child is waited for either way.
pub struct Multi {
    children: Vec<Child>,
    /// Children before this index are known to be ready (a ready point stays
    /// ready until its result is taken), so `is_ready` does not rescan them:
    /// a Multi of n points costs O(n) in all, not O(n) per result.
    ready_prefix: Cell<usize>,
}

struct Child {
    point: Box<dyn YieldPoint>,
    start_error: Option<Error>,
}

impl Multi {
    /// All of `points`, at once (box each with [`YieldPoint::boxed`]).
    pub fn new(points: Vec<Box<dyn YieldPoint>>) -> Multi {
        Multi {
            children: points
                .into_iter()
                .map(|point| Child {
                    point,
                    start_error: None,
                })
                .collect(),
            ready_prefix: Cell::new(0),
        }
    }

    /// The keyed form (Tornado's yielded dict): the result is a
    /// `HashMap<K, Value>`.
    pub fn keyed<K: Hash + Eq + 'static>(points: Vec<(K, Box<dyn YieldPoint>)>) -> MultiKeyed<K> {
        let (keys, points): (Vec<K>, Vec<Box<dyn YieldPoint>>) = points.into_iter().unzip();
        MultiKeyed {
            keys: Some(keys),
            multi: Multi::new(points),
        }
    }

    fn results(&mut self, runner: &Runner) -> Result<Vec<Value>, Error> {
        let mut first: Option<Error> = None;
        let mut values = Vec::with_capacity(self.children.len());
        for child in &mut self.children {
            let result = match child.start_error.take() {
                Some(err) => Err(err),
                None => child.point.get_result(runner),
            };
            match result {
                Ok(value) => values.push(value),
                Err(err) if first.is_none() => first = Some(err),
                Err(err) => super::runner::report(err, "squall::gen::Multi (another child failed)"),
            }
        }
        match first {
            Some(err) => Err(err),
            None => Ok(values),
        }
    }
}

impl YieldPoint for Multi {
    fn start(&mut self, runner: &Runner) -> Result<(), Error> {
        for child in &mut self.children {
            if let Err(err) = child.point.start(runner) {
                child.start_error = Some(err);
            }
        }
        Ok(())
    }
    fn is_ready(&self, runner: &Runner) -> bool {
        let mut next = self.ready_prefix.get();
        while let Some(c) = self.children.get(next) {
            if c.start_error.is_none() && !c.point.is_ready(runner) {
                break;
            }
            next += 1;
        }
        self.ready_prefix.set(next);
        next == self.children.len()
    }
    fn get_result(&mut self, runner: &Runner) -> Result<Value, Error> {
        self.results(runner).map(Value::new)
    }
}

/// [`Multi`] with keys: the result is a `HashMap<K, Value>`.
pub struct MultiKeyed<K> {
    keys: Option<Vec<K>>,
    multi: Multi,
}

impl<K: Hash + Eq + 'static> YieldPoint for MultiKeyed<K> {
    fn start(&mut self, runner: &Runner) -> Result<(), Error> {
        self.multi.start(runner)
    }
    fn is_ready(&self, runner: &Runner) -> bool {
        self.multi.is_ready(runner)
    }
    fn get_result(&mut self, runner: &Runner) -> Result<Value, Error> {
        let values = self.multi.results(runner)?;
        let keys = self.keys.take().unwrap_or_default();
        Ok(Value::new(
            keys.into_iter().zip(values).collect::<HashMap<K, Value>>(),
        ))
    }
}

/// Waits for a [`Future`]; the result is its value (taken out of the future)
/// or its error.
///
/// It needs no key: the future wakes the runner directly (no closure, no
/// result callback), and the runner finds the point ready. Two allocations
/// and a key's bookkeeping fewer per step than a `Task`, which matters
/// because this is what most coroutine code yields.
pub struct YieldFuture<T> {
    future: Future<T>,
}

impl<T: 'static> YieldFuture<T> {
    /// Waits for `future`.
    pub fn new(future: Future<T>) -> YieldFuture<T> {
        YieldFuture { future }
    }

    /// The future waited for.
    pub fn into_inner(self) -> Future<T> {
        self.future
    }
}

impl<T: 'static> YieldPoint for YieldFuture<T> {
    fn start(&mut self, runner: &Runner) -> Result<(), Error> {
        if !self.future.done() {
            // Resumed straight from the completion, not one loop turn later:
            // a chain of coroutines finishes in one iteration. A runner that
            // has moved on (an error was thrown in meanwhile) only checks
            // its current point and goes back to waiting.
            self.future
                .add_waker(runner.waker(), "squall::gen::YieldFuture");
        }
        Ok(())
    }
    fn is_ready(&self, _runner: &Runner) -> bool {
        self.future.done()
    }
    fn get_result(&mut self, _runner: &Runner) -> Result<Value, Error> {
        self.future.take_result().map(Value::new)
    }
}

/// A point that resumes the generator after `delay` on the current loop
/// (Tornado's `gen.sleep`); the result is `()`. Yield it, or `.await` it.
pub fn sleep(delay: Duration) -> super::Sleep {
    super::Sleep::new(delay)
}

/// A point that resumes the generator on the next loop iteration, letting
/// other callbacks run first (Tornado's `gen.moment`); the result is `()`.
pub fn moment() -> Task {
    Task::new(|cb: ResultCallback| IOLoop::current().add_callback(move || cb.call(())))
}

/// Waits for `point`, but at most `timeout`: then the generator gets an error
/// of kind [`ErrorKind::Timeout`] (Tornado's `gen.with_timeout`).
///
/// The point runs in a generator of its own, so when the timeout wins its
/// late result is dropped quietly instead of reaching (or leaking into) this
/// one. When the point wins, the timeout is removed.
pub fn with_timeout(timeout: Duration, point: impl YieldPoint) -> YieldFuture<Value> {
    let inner = super::coroutine(super::once(point));
    let outer = Future::new();
    let io_loop = IOLoop::current();
    let o = outer.clone();
    let timer = io_loop.call_later(timeout, move || {
        if !o.done() {
            o.try_set_error(Error::new(
                ErrorKind::Timeout,
                format!("timed out after {timeout:?}"),
            ));
        }
    });
    let o = outer.clone();
    inner.add_done_callback(move |f: &Future<Value>| {
        io_loop.remove_timeout(timer);
        if !o.done() {
            o.try_complete(f.take_result());
        }
    });
    YieldFuture::new(outer)
}

/// The next future of a [`WaitIterator`] to finish: a yield point whose
/// result is `(index, value)`, and, awaited, that tuple typed.
pub struct Next<T> {
    task: Task,
    _item: PhantomData<fn() -> T>,
}

impl<T: 'static> YieldPoint for Next<T> {
    fn start(&mut self, runner: &Runner) -> Result<(), Error> {
        self.task.start(runner)
    }
    fn is_ready(&self, runner: &Runner) -> bool {
        self.task.is_ready(runner)
    }
    fn get_result(&mut self, runner: &Runner) -> Result<Value, Error> {
        self.task.get_result(runner)
    }
}

/// Hands back futures in the order they finish, with the index of each
/// (Tornado's `gen.WaitIterator`).
///
/// ```
/// use squall::gen::{self, Resume, Step, WaitIterator};
/// use squall::{Future, IOLoop};
///
/// let io_loop = IOLoop::new()?;
/// let (a, b) = (Future::<&str>::new(), Future::<&str>::new());
/// let mut it = WaitIterator::new(vec![a.clone(), b.clone()]);
/// let order = gen::coroutine(gen::from_fn(Vec::new(), move |seen: &mut Vec<(usize, &str)>, input| {
///     if let Resume::Value(v) = input {
///         seen.push(v.downcast().unwrap());
///     }
///     if it.done() { Step::Return(Ok(seen.clone())) } else { it.next().into() }
/// }));
/// b.set_result("b");
/// a.set_result("a");
/// assert_eq!(order.result()?, [(1, "b"), (0, "a")]);
/// # Ok::<(), squall::Error>(())
/// ```
pub struct WaitIterator<T> {
    queue: Rc<RefCell<Queue<T>>>,
    remaining: usize,
}

struct Queue<T> {
    done: VecDeque<(usize, Result<T, Error>)>,
    waiter: Option<ResultCallback>,
    current_index: Option<usize>,
}

/// Hands `result` to the waiting generator, with no borrow of the queue held
/// (the generator may ask for the next one at once).
fn deliver<T: 'static>(
    queue: &RefCell<Queue<T>>,
    cb: ResultCallback,
    index: usize,
    result: Result<T, Error>,
) {
    queue.borrow_mut().current_index = Some(index);
    cb.complete(result.map(|v| (index, v)));
}

impl<T: 'static> WaitIterator<T> {
    /// Iterates over `futures` in completion order.
    pub fn new(futures: Vec<Future<T>>) -> WaitIterator<T> {
        let queue = Rc::new(RefCell::new(Queue {
            done: VecDeque::new(),
            waiter: None,
            current_index: None,
        }));
        let remaining = futures.len();
        for (index, future) in futures.into_iter().enumerate() {
            let q = queue.clone();
            future.add_done_callback(move |f: &Future<T>| {
                let result = f.take_result();
                let waiter = q.borrow_mut().waiter.take();
                match waiter {
                    Some(cb) => deliver(&q, cb, index, result),
                    None => q.borrow_mut().done.push_back((index, result)),
                }
            });
        }
        WaitIterator { queue, remaining }
    }

    /// Whether every future has been handed back.
    pub fn done(&self) -> bool {
        self.remaining == 0
    }

    /// A point whose result is `(index, value)` of the next future to finish
    /// (its error is thrown in instead). Called after [`done`](WaitIterator::done),
    /// the point throws [`ErrorKind::InvalidState`] rather than wait forever.
    ///
    /// Yield it from a generator (the result is a [`Value`] holding the
    /// tuple), or `.await` it in an `async` coroutine, typed:
    /// `let (index, value) = it.next().await?;`.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Next<T> {
        if self.remaining == 0 {
            return Next {
                task: Task::new(|cb: ResultCallback| {
                    cb.fail(Error::new(
                        ErrorKind::InvalidState,
                        "WaitIterator::next called after every future was handed back",
                    ))
                }),
                _item: PhantomData,
            };
        }
        self.remaining -= 1;
        let queue = self.queue.clone();
        Next {
            task: Task::new(move |cb: ResultCallback| {
                let ready = queue.borrow_mut().done.pop_front();
                match ready {
                    Some((index, result)) => deliver(&queue, cb, index, result),
                    None => queue.borrow_mut().waiter = Some(cb),
                }
            }),
            _item: PhantomData,
        }
    }

    /// The index of the future handed back last: with an error thrown in,
    /// this says which future failed.
    pub fn current_index(&self) -> Option<usize> {
        self.queue.borrow().current_index
    }
}
