//! Queues for coroutines on one loop: Tornado's `tornado.queues`.
//!
//! [`Queue`] (first in, first out), [`LifoQueue`] and [`PriorityQueue`]
//! (smallest first), with a `maxsize` (0: unbounded). `put` waits while the
//! queue is full and `get` while it is empty, each returning a [`Future`]
//! usable from callbacks and generators; `put_nowait` / `get_nowait` never
//! wait and fail with [`QueueFull`] / [`ErrorKind::QueueEmpty`] instead.
//! `task_done` and `join` track work to its end. Waiters are served first
//! come, first served; one whose timeout fired has left the line and takes no
//! item (a timed-out `put` drops its item). A getter whose future was
//! dropped unseen is skipped, so no item vanishes into it.
//!
//! ```
//! use squall::queues::Queue;
//! use squall::{ErrorKind, Future};
//!
//! let q = Queue::new(2);
//! q.put_nowait(1)?;
//! let put = q.put(2);
//! assert!(put.done() && q.full());
//! let waiting = q.put(3); // full: waits in line
//! assert!(!waiting.done());
//! assert_eq!(q.get_nowait()?, 1); // makes room: 3 goes in
//! assert!(waiting.done());
//! assert_eq!(q.put_nowait(4).unwrap_err().into_inner(), 4);
//! assert_eq!((q.get_nowait()?, q.get_nowait()?), (2, 3));
//! assert_eq!(q.get_nowait().unwrap_err().kind(), ErrorKind::QueueEmpty);
//! for _ in 0..3 {
//!     q.task_done()?;
//! }
//! assert!(q.join().done());
//! # Ok::<(), squall::Error>(())
//! ```

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::rc::Rc;

use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::ioloop::Deadline;
use crate::locks::waiters::{self, Timer, Waiter, Waiters};
use crate::locks::Event;

/// The order a queue keeps its items in.
pub trait Store<T>: 'static {
    /// Adds an item.
    fn push(&mut self, item: T);
    /// Takes the next item.
    fn pop(&mut self) -> Option<T>;
    /// How many items are held.
    fn len(&self) -> usize;
    /// Whether no item is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// First in, first out: [`Queue`]'s order.
#[derive(Debug)]
pub struct Fifo<T>(VecDeque<T>);

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Fifo(VecDeque::new())
    }
}

impl<T: 'static> Store<T> for Fifo<T> {
    fn push(&mut self, item: T) {
        self.0.push_back(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop_front()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Last in, first out: [`LifoQueue`]'s order.
#[derive(Debug)]
pub struct Lifo<T>(Vec<T>);

impl<T> Default for Lifo<T> {
    fn default() -> Self {
        Lifo(Vec::new())
    }
}

impl<T: 'static> Store<T> for Lifo<T> {
    fn push(&mut self, item: T) {
        self.0.push(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Smallest first (Python's `heapq`): [`PriorityQueue`]'s order. Items are
/// typically `(priority, data)` tuples.
#[derive(Debug)]
pub struct Priority<T: Ord>(BinaryHeap<Reverse<T>>);

impl<T: Ord> Default for Priority<T> {
    fn default() -> Self {
        Priority(BinaryHeap::new())
    }
}

impl<T: Ord + 'static> Store<T> for Priority<T> {
    fn push(&mut self, item: T) {
        self.0.push(Reverse(item));
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop().map(|Reverse(item)| item)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// `put_nowait` on a full queue: the item comes back (Tornado's `QueueFull`).
///
/// It converts into a [`squall::Error`](Error) of kind
/// [`ErrorKind::QueueFull`], so `?` works in functions returning one.
pub struct QueueFull<T>(pub T);

impl<T> QueueFull<T> {
    /// The item that did not fit.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for QueueFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueFull(..)")
    }
}

impl<T> fmt::Display for QueueFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("queue full")
    }
}

impl<T> std::error::Error for QueueFull<T> {}

impl<T> From<QueueFull<T>> for Error {
    fn from(_: QueueFull<T>) -> Error {
        Error::new(ErrorKind::QueueFull, "the queue is full")
    }
}

struct Putter<T> {
    item: T,
    future: Future<()>,
    timer: Option<Timer>,
}

struct State<T, S> {
    maxsize: usize,
    store: S,
    getters: Waiters<Waiter<T>>,
    putters: Waiters<Putter<T>>,
    unfinished: usize,
}

impl<T, S: Store<T>> State<T, S> {
    fn full(&self) -> bool {
        self.maxsize > 0 && self.store.len() >= self.maxsize
    }
}

/// A queue of `T`s, first in, first out unless `S` says otherwise: Tornado's
/// `queues.Queue`. Clones share one queue. See the [module docs](self).
pub struct Queue<T, S = Fifo<T>> {
    state: Rc<RefCell<State<T, S>>>,
    /// Set while no task is unfinished: what `join` waits for.
    finished: Event,
}

impl<T, S> Clone for Queue<T, S> {
    fn clone(&self) -> Self {
        Queue {
            state: self.state.clone(),
            finished: self.finished.clone(),
        }
    }
}

impl<T: 'static> Queue<T, Fifo<T>> {
    /// A first-in-first-out queue holding at most `maxsize` items; 0 means
    /// no limit (Tornado's default).
    pub fn new(maxsize: usize) -> Queue<T> {
        Queue::with_store(maxsize, Fifo::default())
    }
}

impl<T: 'static, S: Store<T>> Queue<T, S> {
    /// A queue keeping its items in `store` (Tornado's overridable
    /// `_init`/`_put`/`_get`), holding at most `maxsize` (0: no limit).
    pub fn with_store(maxsize: usize, store: S) -> Queue<T, S> {
        let finished = Event::new();
        finished.set();
        Queue {
            state: Rc::new(RefCell::new(State {
                maxsize,
                store,
                getters: Waiters::default(),
                putters: Waiters::default(),
                unfinished: 0,
            })),
            finished,
        }
    }

    /// The most items the queue holds; 0 means no limit.
    pub fn maxsize(&self) -> usize {
        self.state.borrow().maxsize
    }

    /// How many items are in the queue.
    pub fn qsize(&self) -> usize {
        self.state.borrow().store.len()
    }

    /// Whether the queue holds no item.
    pub fn empty(&self) -> bool {
        self.state.borrow().store.is_empty()
    }

    /// Whether the queue holds `maxsize` items (never, with no limit).
    pub fn full(&self) -> bool {
        self.state.borrow().full()
    }

    /// Puts `item` in the queue now, or hands it straight to the first
    /// waiting getter.
    ///
    /// # Errors
    /// [`QueueFull`], holding `item`, if the queue is full.
    pub fn put_nowait(&self, item: T) -> Result<(), QueueFull<T>> {
        let mut abandoned = Vec::new();
        let handed = {
            let mut state = self.state.borrow_mut();
            let getter = loop {
                match state.getters.pop_front() {
                    Some(g) if g.future.is_abandoned() => abandoned.push(g),
                    other => break other,
                }
            };
            match getter {
                Some(getter) => {
                    // Getters wait only on an empty queue, so this is `item`
                    // (for every order); it counts as a task all the same.
                    state.store.push(item);
                    state.unfinished += 1;
                    let item = state.store.pop().expect("just pushed");
                    Some((getter, item))
                }
                None if state.full() => return Err(QueueFull(item)),
                None => {
                    state.store.push(item);
                    state.unfinished += 1;
                    None
                }
            }
        };
        self.finished.clear();
        drop(abandoned);
        if let Some((getter, item)) = handed {
            getter.resolve(Ok(item));
        }
        Ok(())
    }

    /// A future done once `item` is in the queue: at once if there is
    /// room, else when a `get` makes room for it (first come, first served).
    pub fn put(&self, item: T) -> Future<()> {
        self.put_inner(item, None)
    }

    /// Like [`put`](Queue::put), but fails with
    /// [`ErrorKind::Timeout`] if there is no room by `timeout` (on the current
    /// loop); the item is then dropped, never put.
    pub fn put_timeout(&self, item: T, timeout: impl Into<Deadline>) -> Future<()> {
        self.put_inner(item, Some(timeout.into()))
    }

    fn put_inner(&self, item: T, timeout: Option<Deadline>) -> Future<()> {
        let item = match self.put_nowait(item) {
            Ok(()) => return Future::ready(()),
            Err(QueueFull(item)) => item,
        };
        let future = Future::new();
        let timer = waiters::timer(
            timeout,
            &self.state,
            |state| state.borrow().putters.next_id(),
            |state: &RefCell<State<T, S>>, id| {
                let putter = state.borrow_mut().putters.remove(id);
                if let Some(Putter {
                    item,
                    future,
                    timer,
                }) = putter
                {
                    drop((item, timer));
                    future.try_set_error(waiters::timed_out("Queue.put"));
                }
            },
        );
        let Ok(timer) = timer else {
            return Future::failed(waiters::timed_out("Queue.put"));
        };
        self.state.borrow_mut().putters.push(Putter {
            item,
            future: future.clone(),
            timer,
        });
        future
    }

    /// The next item, now; a waiting putter's item moves into the queue.
    ///
    /// # Errors
    /// [`ErrorKind::QueueEmpty`] if there is none.
    pub fn get_nowait(&self) -> Result<T, Error> {
        let (item, putter) = {
            let mut state = self.state.borrow_mut();
            match state.putters.pop_front() {
                Some(Putter {
                    item,
                    future,
                    timer,
                }) => {
                    // Putters wait only on a full queue: their item goes
                    // in behind the others, then the next one comes out.
                    state.store.push(item);
                    state.unfinished += 1;
                    let next = state.store.pop().expect("just pushed");
                    (next, Some((future, timer)))
                }
                None => match state.store.pop() {
                    Some(item) => (item, None),
                    None => return Err(Error::new(ErrorKind::QueueEmpty, "the queue is empty")),
                },
            }
        };
        if let Some((future, timer)) = putter {
            self.finished.clear();
            drop(timer);
            future.try_set_result(());
        }
        Ok(item)
    }

    /// A future of the next item: at once if there is one, else when one is
    /// put (first come, first served).
    pub fn get(&self) -> Future<T> {
        self.get_inner(None)
    }

    /// Like [`get`](Queue::get), but fails with [`ErrorKind::Timeout`] if no
    /// item comes by `timeout` (on the current loop); the getter then leaves
    /// the line and takes no item.
    pub fn get_timeout(&self, timeout: impl Into<Deadline>) -> Future<T> {
        self.get_inner(Some(timeout.into()))
    }

    fn get_inner(&self, timeout: Option<Deadline>) -> Future<T> {
        match self.get_nowait() {
            Ok(item) => return Future::ready(item),
            Err(err) if err.kind() != ErrorKind::QueueEmpty => return Future::failed(err),
            Err(_) => {}
        }
        let future = Future::new();
        let timer = waiters::timer(
            timeout,
            &self.state,
            |state| state.borrow().getters.next_id(),
            |state: &RefCell<State<T, S>>, id| {
                let getter = state.borrow_mut().getters.remove(id);
                if let Some(getter) = getter {
                    getter.resolve(Err(waiters::timed_out("Queue.get")));
                }
            },
        );
        let Ok(timer) = timer else {
            return Future::failed(waiters::timed_out("Queue.get"));
        };
        self.state.borrow_mut().getters.push(Waiter {
            future: future.clone(),
            timer,
        });
        future
    }

    /// Says one item taken with `get` has been dealt with. When every item
    /// ever put has been, [`join`](Queue::join) is done.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidState`] if called more often than items were put
    /// (Tornado's `ValueError`).
    pub fn task_done(&self) -> Result<(), Error> {
        let all_done = {
            let mut state = self.state.borrow_mut();
            if state.unfinished == 0 {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "task_done() called too many times",
                ));
            }
            state.unfinished -= 1;
            state.unfinished == 0
        };
        if all_done {
            self.finished.set();
        }
        Ok(())
    }

    /// How many items were put and not yet marked [`task_done`](Queue::task_done).
    pub fn unfinished_tasks(&self) -> usize {
        self.state.borrow().unfinished
    }

    /// A future done when every item put has been marked done.
    pub fn join(&self) -> Future<()> {
        self.finished.wait()
    }

    /// Like [`join`](Queue::join), but fails with [`ErrorKind::Timeout`] at `timeout`.
    pub fn join_timeout(&self, timeout: impl Into<Deadline>) -> Future<()> {
        self.finished.wait_timeout(timeout)
    }

    /// How many `get` futures wait in line.
    pub fn getters(&self) -> usize {
        self.state.borrow().getters.len()
    }

    /// How many `put` futures wait in line.
    pub fn putters(&self) -> usize {
        self.state.borrow().putters.len()
    }
}

impl<T, S: Store<T>> fmt::Debug for Queue<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.debug("Queue", f)
    }
}

impl<T, S: Store<T>> Queue<T, S> {
    fn debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.borrow();
        let mut d = f.debug_struct(name);
        d.field("maxsize", &state.maxsize)
            .field("qsize", &state.store.len());
        if !state.getters.is_empty() {
            d.field("getters", &state.getters.len());
        }
        if !state.putters.is_empty() {
            d.field("putters", &state.putters.len());
        }
        if state.unfinished > 0 {
            d.field("tasks", &state.unfinished);
        }
        d.finish()
    }
}

macro_rules! ordered_queue {
    ($(#[$doc:meta])* $name:ident, $store:ident, $($bound:tt)+) => {
        $(#[$doc])*
        ///
        /// A [`Queue`] with another order: every `Queue` method is reached
        /// through `Deref`, and [`into_queue`](Self::into_queue) gives the
        /// `Queue` itself, for code generic over the order.
        pub struct $name<T: $($bound)+>(Queue<T, $store<T>>);

        impl<T: $($bound)+> $name<T> {
            /// A queue holding at most `maxsize` items; 0 means no limit.
            pub fn new(maxsize: usize) -> $name<T> {
                $name(Queue::with_store(maxsize, $store::default()))
            }

            /// The `Queue` this is (a clone, sharing the items).
            pub fn into_queue(self) -> Queue<T, $store<T>> {
                self.0
            }
        }

        impl<T: $($bound)+> Clone for $name<T> {
            fn clone(&self) -> Self {
                $name(self.0.clone())
            }
        }

        impl<T: $($bound)+> std::ops::Deref for $name<T> {
            type Target = Queue<T, $store<T>>;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        impl<T: $($bound)+> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.debug(stringify!($name), f)
            }
        }
    };
}

ordered_queue!(
    /// A queue that hands out items last in, first out (Tornado's `LifoQueue`).
    ///
    /// ```
    /// use squall::queues::LifoQueue;
    ///
    /// let q = LifoQueue::new(0);
    /// for i in [3, 2, 1] {
    ///     q.put_nowait(i)?;
    /// }
    /// assert_eq!(q.get_nowait()?, 1);
    /// # Ok::<(), squall::Error>(())
    /// ```
    LifoQueue, Lifo, 'static
);

ordered_queue!(
    /// A queue that hands out the smallest item first (Tornado's
    /// `PriorityQueue`); items are typically `(priority, data)` tuples.
    ///
    /// ```
    /// use squall::queues::PriorityQueue;
    ///
    /// let q = PriorityQueue::new(0);
    /// q.put_nowait((1, "medium"))?;
    /// q.put_nowait((0, "high"))?;
    /// q.put_nowait((10, "low"))?;
    /// assert_eq!(q.get_nowait()?, (0, "high"));
    /// assert_eq!(q.get_nowait()?, (1, "medium"));
    /// # Ok::<(), squall::Error>(())
    /// ```
    PriorityQueue, Priority, Ord + 'static
);
