//! Typed channels from other threads into a loop.
//!
//! [`Remote::add_callback`](crate::Remote::add_callback) carries a boxed
//! closure: one allocation per message, made on one thread and freed on
//! another. When many messages of one kind cross (results from a worker
//! pool, lines from a reader thread), a channel carries the values themselves
//! and one handler, registered once on the loop, receives them.
//!
//! ```
//! use std::cell::Cell;
//! use std::rc::Rc;
//! use std::thread;
//! use squall::IOLoop;
//!
//! let io_loop = IOLoop::new()?;
//! let sum = Rc::new(Cell::new(0u64));
//! let (s, l) = (sum.clone(), io_loop.clone());
//! let tx = io_loop.remote_channel(move |n: u64| {
//!     s.set(s.get() + n);
//!     if n == 0 {
//!         l.stop(); // the last message
//!     }
//! });
//! let worker = thread::spawn(move || {
//!     for n in (0..=100).rev() {
//!         tx.send(n).unwrap();
//!     }
//! });
//! io_loop.start()?;
//! worker.join().unwrap();
//! assert_eq!(sum.get(), 5050);
//! # Ok::<(), squall::Error>(())
//! ```
//!
//! The handler runs on the loop's thread under the stack context that was
//! active when the channel was made. The channel lives while a sender does:
//! once every [`RemoteSender`] is dropped and the last message handled, the
//! loop forgets the handler.
//!
//! # When the loop closes
//! Every value is either refused or handled, as with
//! [`Remote::add_callback`](crate::Remote::add_callback): once `send` says
//! `Ok`, the handler gets the value. Values still queued when the loop is
//! closed (or dropped) are handed to the handler by
//! [`close`](crate::IOLoop::close) itself, the loop already closed; from
//! then on `send` and `try_send` fail with [`ErrorKind::Closed`] and the
//! value is dropped on the sender's thread. A sender waiting for room in a
//! full bounded channel wakes and gets `Closed` too. (Unlike a `std` or
//! tokio channel whose receiver is dropped, nothing accepted is lost.)

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TryRecvError, TrySendError};

use super::observer::{Span, SpanKind};
use super::remote::Shared;
use super::IOLoop;
use crate::callback::{self, CallbackReturn, Origin};
use crate::error::{Error, ErrorKind};
use crate::stack_context::Context;

/// The loop's side of a channel, with its element type erased.
pub(crate) trait Source {
    /// Handles the messages present when called (not ones that arrive
    /// meanwhile, so a busy producer cannot starve the loop). Returns how
    /// many, and whether the channel is finished (no sender left, empty).
    fn drain(&self, io_loop: &IOLoop) -> (usize, bool);
    /// Whether no message is waiting.
    fn is_empty(&self) -> bool;
    /// Whether a drain found the channel finished.
    fn finished(&self) -> bool;
    /// The loop is closing and no value can arrive any more: handles every
    /// value left (or has the drain running now, if called from inside the
    /// handler, go on to the last one).
    fn close(&self);
}

/// How long a sender waiting for room in a full channel waits before it
/// looks whether the loop closed: the longest `close` waits for it.
const WAIT_SLICE: std::time::Duration = std::time::Duration::from_millis(2);

type Handler<T> = Box<dyn FnMut(T) -> Result<(), Error>>;

struct ChannelSource<T> {
    rx: Receiver<T>,
    /// Taken out while it runs, so no borrow is held across user code.
    handler: Cell<Option<Handler<T>>>,
    ctx: Context,
    name: &'static str,
    finished: Cell<bool>,
    /// Set by `close`: drains go on to the last value.
    closing: Cell<bool>,
}

impl<T: 'static> ChannelSource<T> {
    /// One value to the handler, as an observed span of the loop.
    #[inline]
    fn run(&self, io_loop: &IOLoop, handler: &mut Handler<T>, msg: T) {
        let span = || Span::new(SpanKind::Remote, self.name, None);
        io_loop.observed(span, || {
            callback::invoke(&self.ctx, Origin::Remote, self.name, || handler(msg))
        });
    }
}

impl<T: 'static> Source for ChannelSource<T> {
    fn drain(&self, io_loop: &IOLoop) -> (usize, bool) {
        let present = self.rx.len();
        let Some(mut handler) = self.handler.take() else {
            // Re-entered from its own handler: the outer drain goes on.
            return (0, false);
        };
        let mut handled = 0;
        let mut finished = false;
        // Past the values present at the start only when closing: nothing
        // new can arrive then, and nothing may be left behind.
        while handled < present || self.closing.get() {
            match self.rx.try_recv() {
                Ok(msg) => {
                    handled += 1;
                    self.run(io_loop, &mut handler, msg);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    finished = true;
                    break;
                }
            }
        }
        if !finished && handled == present {
            // Looks drained: one more look tells a live channel from one
            // whose senders are all gone (a message that slipped in is
            // handled, not lost).
            match self.rx.try_recv() {
                Ok(msg) => {
                    handled += 1;
                    self.run(io_loop, &mut handler, msg);
                }
                Err(TryRecvError::Disconnected) => finished = true,
                Err(TryRecvError::Empty) => {}
            }
        }
        self.handler.set(Some(handler));
        self.finished.set(finished);
        (handled, finished)
    }

    fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    fn finished(&self) -> bool {
        self.finished.get()
    }

    fn close(&self) {
        self.closing.set(true);
        // The handler is out while it runs: the drain running it goes on.
        let Some(mut handler) = self.handler.take() else {
            return;
        };
        // No observer span: the loop is closed (or being dropped).
        for msg in self.rx.try_iter() {
            callback::invoke(&self.ctx, Origin::Remote, self.name, || handler(msg));
        }
        self.handler.set(Some(handler));
    }
}

pub(crate) fn new_channel<T, R, F>(
    shared: Arc<Shared>,
    capacity: Option<usize>,
    mut handler: F,
) -> (RemoteSender<T>, Rc<dyn Source>)
where
    T: Send + 'static,
    R: CallbackReturn,
    F: FnMut(T) -> R + 'static,
{
    let (tx, rx) = match capacity {
        Some(cap) => crossbeam_channel::bounded(cap),
        None => crossbeam_channel::unbounded(),
    };
    let source = ChannelSource {
        rx,
        handler: Cell::new(Some(Box::new(move |msg| handler(msg).into_outcome()))),
        ctx: Context::capture(),
        name: std::any::type_name::<F>(),
        finished: Cell::new(false),
        closing: Cell::new(false),
    };
    (RemoteSender { tx, shared }, Rc::new(source))
}

/// Sends values to a handler on a loop, from any thread: made by
/// [`IOLoop::remote_channel`](crate::IOLoop::remote_channel). See the
/// [module docs](self).
///
/// It is `Send + Sync` (for `T: Send`) and `Clone`; the channel lives while
/// a clone does.
pub struct RemoteSender<T> {
    tx: Sender<T>,
    shared: Arc<Shared>,
}

impl<T> Clone for RemoteSender<T> {
    fn clone(&self) -> Self {
        RemoteSender {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<T: Send> RemoteSender<T> {
    /// Sends `value`; the handler gets it on the loop's next iteration. On a
    /// bounded channel that is full, waits for room — except on the loop's
    /// own thread, where the wait would never end (only the loop makes
    /// room): there it fails as [`try_send`](Self::try_send) does.
    ///
    /// Once this returns `Ok` the handler gets `value`, even if the loop is
    /// closed first (see [the module docs](self#when-the-loop-closes)).
    ///
    /// # Errors
    /// [`ErrorKind::Closed`] if the loop is closed (also while waiting for
    /// room): the value is not silently lost; [`ErrorKind::BufferFull`] if a bounded channel is full
    /// and the caller is the loop's thread.
    pub fn send(&self, value: T) -> Result<(), Error> {
        let mut value = match self.try_send_value(value)? {
            None => return Ok(()),
            Some(value) => value,
        };
        if self.shared.on_loop_thread() {
            return Err(Error::new(
                ErrorKind::BufferFull,
                "the channel into the IOLoop is full, and send() on the loop's own thread \
                 would wait forever (only the loop makes room)",
            ));
        }
        loop {
            // Waits for room a slice at a time, in flight (so `close` waits
            // at most one slice for this sender, and what it sends is
            // handled), looking at `closed` between slices.
            let sending = self.shared.begin_send()?;
            match self.tx.send_timeout(value, WAIT_SLICE) {
                Ok(()) => {
                    drop(sending);
                    self.shared.wake_if_sleeping();
                    return Ok(());
                }
                Err(SendTimeoutError::Timeout(v)) => value = v,
                Err(SendTimeoutError::Disconnected(_)) => return Err(closed()),
            }
        }
    }

    /// Sends `value` if there is room; gives it back if the channel is full.
    fn try_send_value(&self, value: T) -> Result<Option<T>, Error> {
        let sending = self.shared.begin_send()?;
        match self.tx.try_send(value) {
            Ok(()) => {
                drop(sending);
                self.shared.wake_if_sleeping();
                Ok(None)
            }
            Err(TrySendError::Full(value)) => Ok(Some(value)),
            Err(TrySendError::Disconnected(_)) => Err(closed()),
        }
    }

    /// Sends `value` if there is room, never waiting.
    ///
    /// # Errors
    /// [`ErrorKind::BufferFull`] if a bounded channel is full;
    /// [`ErrorKind::Closed`] if the loop is closed.
    pub fn try_send(&self, value: T) -> Result<(), Error> {
        match self.try_send_value(value)? {
            None => Ok(()),
            Some(_) => Err(Error::new(
                ErrorKind::BufferFull,
                "the channel into the IOLoop is full",
            )),
        }
    }

    /// Whether the loop has been closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}

impl<T> fmt::Debug for RemoteSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteSender")
            .field("queued", &self.tx.len())
            .field("closed", &self.shared.is_closed())
            .finish()
    }
}

fn closed() -> Error {
    Error::new(ErrorKind::Closed, "the IOLoop is closed")
}
