//! The only door into a loop from other threads.
//!
//! Callbacks cross through a crossbeam channel. The loop announces when it is
//! about to sleep in `poll`; a sender wakes it (one `eventfd` write) only then,
//! so a busy loop fed from many threads pays no syscall per callback.
//!
//! A callback accepted (`Ok`) always runs, even when `close()` races the
//! send: a sender marks itself in flight before it looks at `closed`, and
//! `close` waits until no sender is in flight before it takes what is
//! queued and runs it. So every message is either refused or run.

use std::fmt;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender};
use smallbox::space::S4;
use smallbox::{smallbox, SmallBox};

use crate::callback::CallbackReturn;
use crate::error::{Error, ErrorKind};

/// A callback from another thread. Closures of up to four words travel
/// inline in the channel's slot (no allocation on the sending thread, no
/// free on the loop's, which was half the cost of a cross-thread callback);
/// bigger ones are boxed. `FnMut` because a `dyn FnOnce` cannot be called
/// out of an inline box: the `FnOnce` is wrapped in an `Option` and taken.
pub(crate) type RemoteFn = SmallBox<dyn FnMut() -> Result<(), Error> + Send, S4>;

pub(crate) enum RemoteMsg {
    Callback(RemoteFn, &'static str),
    Stop,
}

pub(crate) struct Shared {
    tx: Sender<RemoteMsg>,
    /// `None` once the loop is closed, so its eventfd is released at `close()`.
    waker: Mutex<Option<mio::Waker>>,
    /// Messages sent and not yet received: what the loop looks at every
    /// iteration, one load instead of asking the channel (`len` walks its
    /// head and tail, some 50 instructions). Raised after each send.
    queued: AtomicUsize,
    /// True while the loop is (about to be) blocked in `poll`.
    sleeping: AtomicBool,
    closed: AtomicBool,
    /// Senders between their look at `closed` and the end of their send.
    in_flight: AtomicUsize,
    /// The loop's thread (a loop never moves: it is `!Send`).
    owner: std::thread::ThreadId,
}

impl Shared {
    pub(crate) fn new(waker: mio::Waker) -> (Arc<Shared>, Receiver<RemoteMsg>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            tx,
            waker: Mutex::new(Some(waker)),
            queued: AtomicUsize::new(0),
            sleeping: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            owner: std::thread::current().id(),
        });
        (shared, rx)
    }

    /// Called by the loop before a blocking poll, with a check that nothing
    /// is waiting (here or in a channel). Returns false if something arrived
    /// meanwhile, in which case the loop must not block.
    pub(crate) fn prepare_sleep(&self, idle: impl FnOnce() -> bool) -> bool {
        self.sleeping.store(true, Ordering::Relaxed);
        // Pairs with the fence in `wake_if_sleeping`: either we see the
        // message, or the sender sees `sleeping` and wakes us.
        fence(Ordering::SeqCst);
        if idle() {
            true
        } else {
            self.sleeping.store(false, Ordering::Relaxed);
            false
        }
    }

    /// How many messages the loop may receive now (at least).
    #[inline]
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// The loop received `n` messages.
    pub(crate) fn received(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::Relaxed);
    }

    pub(crate) fn end_sleep(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }

    /// Refuses every send from now on, and returns once the sends that
    /// were accepted are all in the channel (what the loop then receives is
    /// all it will ever get).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        // Pairs with `send`: both store, then load, all SeqCst, so either
        // the sender sees `closed` or we see it in flight and wait. A send
        // into an unbounded channel never blocks: the wait is short.
        while self.in_flight.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
        let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(waker);
    }

    fn send(&self, msg: RemoteMsg) -> Result<(), Error> {
        {
            let _sending = self.begin_send()?;
            self.tx.send(msg).map_err(|_| closed())?;
            // Release: whoever sees the count sees the message.
            self.queued.fetch_add(1, Ordering::Release);
        }
        self.wake_if_sleeping();
        Ok(())
    }

    /// Marks the caller in flight for as long as the returned guard lives,
    /// then looks at `closed`: a send made under the guard is one `close`
    /// waits for, so what it queues is handled; after `close` it is refused.
    /// For every channel into the loop (callbacks, typed channels).
    ///
    /// # Errors
    /// [`ErrorKind::Closed`] if the loop is closed.
    pub(crate) fn begin_send(&self) -> Result<Sending<'_>, Error> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let sending = Sending(self);
        // Pairs with `close`: both store, then load, all SeqCst, so either
        // we see `closed` or `close` sees us in flight and waits.
        if self.closed.load(Ordering::SeqCst) {
            return Err(closed());
        }
        Ok(sending)
    }

    /// After a message was queued (on any channel into the loop): wakes the
    /// loop if it is, or is about to be, blocked in `poll`.
    pub(crate) fn wake_if_sleeping(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::Relaxed) {
            let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(waker) = waker.as_ref() {
                if let Err(err) = waker.wake() {
                    log::error!("could not wake the IOLoop: {err}");
                }
            }
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Whether the caller runs on the loop's own thread (where waiting for
    /// the loop would wait forever).
    pub(crate) fn on_loop_thread(&self) -> bool {
        std::thread::current().id() == self.owner
    }
}

/// A sender in flight (see [`Shared::begin_send`]); no longer when dropped.
pub(crate) struct Sending<'a>(&'a Shared);

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn closed() -> Error {
    Error::new(ErrorKind::Closed, "the IOLoop is closed")
}

/// A `Send + Sync` handle for reaching a loop from other threads.
///
/// Get one with [`IOLoop::remote`](crate::IOLoop::remote).
///
/// ```
/// use std::thread;
/// use squall::IOLoop;
///
/// let io_loop = IOLoop::new()?;
/// let remote = io_loop.remote();
/// let worker = thread::spawn(move || {
///     let answer = 6 * 7; // blocking work, off the loop
///     remote.add_callback(move || println!("answer: {answer}")).unwrap();
///     remote.stop().unwrap();
/// });
/// io_loop.start()?;
/// worker.join().unwrap();
/// # Ok::<(), squall::Error>(())
/// ```
#[derive(Clone)]
pub struct Remote {
    pub(crate) shared: Arc<Shared>,
}

impl Remote {
    /// Runs `f` on the loop's thread, on its next iteration, with no stack
    /// context (contexts belong to one thread).
    ///
    /// Once this returns `Ok`, `f` runs, whatever happens next: if the loop
    /// is closed before its next iteration, [`close`](crate::IOLoop::close)
    /// runs it (on the loop's thread, the loop already closed), and so does
    /// dropping the loop.
    ///
    /// # Errors
    /// [`ErrorKind::Closed`] if the loop has been closed: the callback is not
    /// silently lost, it is dropped on this thread and never runs.
    pub fn add_callback<R, F>(&self, f: F) -> Result<(), Error>
    where
        R: CallbackReturn,
        F: FnOnce() -> R + Send + 'static,
    {
        let mut f = Some(f);
        let call: RemoteFn = smallbox!(move || match f.take() {
            Some(f) => f().into_outcome(),
            None => Ok(()),
        });
        self.shared
            .send(RemoteMsg::Callback(call, std::any::type_name::<F>()))
    }

    /// Stops the loop, as [`IOLoop::stop`](crate::IOLoop::stop) from its own thread.
    ///
    /// # Errors
    /// [`ErrorKind::Closed`] if the loop has been closed.
    pub fn stop(&self) -> Result<(), Error> {
        self.shared.send(RemoteMsg::Stop)
    }

    /// Whether the loop has been closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("closed", &self.is_closed())
            .finish()
    }
}
