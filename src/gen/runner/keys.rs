//! Callback keys: what a generator waits for. A [`Key`] names a callback
//! (fresh, or a label the user chose), the runner's table keeps each key's
//! state (registered, its result once it came), and a [`ResultCallback`]
//! delivers a key's result, once, or [`ErrorKind::CallbackDropped`] if
//! every clone of it is dropped uncalled.
//!
//! ```
//! use squall::gen::{self, ResultCallback, Task};
//! use squall::{ErrorKind, IOLoop};
//!
//! let io_loop = IOLoop::new()?;
//! // Called: the key's result is the value.
//! let n = io_loop.run_sync(|| gen::coroutine(async {
//!     Task::new(|cb: ResultCallback| cb.call(7u32)).await?.downcast::<u32>()
//! }), None)?;
//! assert_eq!(n, 7);
//! // Dropped uncalled: the coroutine gets an error, it does not hang.
//! let err = io_loop.run_sync(|| gen::coroutine(async {
//!     Task::new(|cb: ResultCallback| drop(cb)).await?.downcast::<u32>()
//! }), None).unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::CallbackDropped);
//! # Ok::<(), squall::Error>(())
//! ```

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use slotmap::{new_key_type, SlotMap};

use super::{report, Runner};
use crate::error::{Error, ErrorKind};
use crate::gen::Value;
use crate::ioloop::IOLoop;

new_key_type! {
    /// A key made fresh by [`Runner::fresh_key`], unique for the runner's life.
    pub struct FreshKey;
}

/// Names a callback a generator waits for: a fresh key (what `Task` uses) or
/// a label chosen by the user (what `Callback`/`Wait` use).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// Made by [`Runner::fresh_key`].
    Fresh(FreshKey),
    /// An integer label.
    Int(i64),
    /// A string label.
    Str(String),
}

impl From<&str> for Key {
    fn from(label: &str) -> Key {
        Key::Str(label.to_owned())
    }
}
impl From<String> for Key {
    fn from(label: String) -> Key {
        Key::Str(label)
    }
}
impl From<i64> for Key {
    fn from(label: i64) -> Key {
        Key::Int(label)
    }
}
impl From<i32> for Key {
    fn from(label: i32) -> Key {
        Key::Int(label.into())
    }
}
impl From<FreshKey> for Key {
    fn from(key: FreshKey) -> Key {
        Key::Fresh(key)
    }
}

/// A key's state: registered (waited for), its result once it came.
#[derive(Default)]
pub(super) struct Slot {
    pub(super) registered: bool,
    pub(super) result: Option<Result<Value, Error>>,
    /// Given up by an `.await` that was dropped before its result came: a
    /// late result is dropped quietly and the slot goes.
    pub(super) cancelled: bool,
}

/// A runner's keys: fresh ones in a slot map, labels in a hash map.
#[derive(Default)]
pub(super) struct Keys {
    pub(super) fresh: SlotMap<FreshKey, Slot>,
    pub(super) labels: HashMap<Key, Slot>,
}

impl Keys {
    pub(super) fn get_mut(&mut self, key: &Key) -> Option<&mut Slot> {
        match key {
            Key::Fresh(k) => self.fresh.get_mut(*k),
            label => self.labels.get_mut(label),
        }
    }

    pub(super) fn remove(&mut self, key: &Key) -> Option<Slot> {
        match key {
            Key::Fresh(k) => self.fresh.remove(*k),
            label => self.labels.remove(label),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.fresh.is_empty() && self.labels.is_empty()
    }

    pub(super) fn pending(&self) -> usize {
        self.fresh.values().filter(|s| s.registered).count()
            + self.labels.values().filter(|s| s.registered).count()
    }
}

struct CallbackShared {
    runner: Runner,
    key: Key,
    called: Cell<bool>,
}

impl Drop for CallbackShared {
    fn drop(&mut self) {
        if self.called.get() || self.runner.finished() {
            return;
        }
        let notice = DropNotice {
            runner: self.runner.clone(),
            key: self.key.clone(),
        };
        // Delivered on the next loop iteration, not now: the callback is
        // often dropped by the very closure whose error is about to be
        // routed to the generator (a timeout that fails, keeping the callback
        // alive until then), and that error is the one to throw in. If the
        // loop is closed (or there is none), now; if the loop drops the
        // notice without running it, the notice delivers as it drops.
        match IOLoop::try_current() {
            Some(io_loop) if !io_loop.is_closed() && !crate::catch::tearing_down() => {
                io_loop.spawn_callback(move || drop(notice))
            }
            _ => drop(notice),
        }
    }
}

/// Delivers [`ErrorKind::CallbackDropped`] for a key when dropped.
struct DropNotice {
    runner: Runner,
    key: Key,
}

impl Drop for DropNotice {
    fn drop(&mut self) {
        if self.runner.is_cancelled(&self.key) {
            self.runner.cancel(&self.key);
            return;
        }
        if self.runner.awaits_result(&self.key) == Some(true) {
            self.runner.set_result(
                &self.key,
                Err(Error::new(
                    ErrorKind::CallbackDropped,
                    format!(
                        "the callback for key {:?} was dropped without being called",
                        self.key
                    ),
                )),
            );
        }
    }
}

/// Delivers a value to a waiting generator: Tornado's `runner.result_callback(key)`.
///
/// Clones share one callback. Calling it a second time is ignored and
/// reported as an unhandled error (logged; [`AsyncTest`](crate::testing::AsyncTest)
/// fails on it). Dropping every clone without calling it delivers an error
/// of kind [`ErrorKind::CallbackDropped`] on the next loop iteration (at once
/// if no loop is current), so a generator never waits forever on a callback
/// that can no longer come, while an error raised by the code that dropped
/// it still arrives first.
#[derive(Clone)]
pub struct ResultCallback {
    shared: Rc<CallbackShared>,
}

impl ResultCallback {
    /// A callback delivering to `runner`'s `key`, not yet called.
    pub(super) fn new(runner: Runner, key: Key) -> ResultCallback {
        ResultCallback {
            shared: Rc::new(CallbackShared {
                runner,
                key,
                called: Cell::new(false),
            }),
        }
    }

    /// Delivers `value` (use a tuple for several values, `()` for none).
    pub fn call<T: 'static>(&self, value: T) {
        self.deliver(Ok(Value::new(value)));
    }

    /// Delivers an already erased value.
    pub fn call_value(&self, value: Value) {
        self.deliver(Ok(value));
    }

    /// Delivers an error, thrown into the generator.
    pub fn fail(&self, err: impl Into<Error>) {
        self.deliver(Err(err.into()));
    }

    /// Delivers a `Result`.
    pub fn complete<T: 'static>(&self, result: Result<T, Error>) {
        self.deliver(result.map(Value::new));
    }

    fn deliver(&self, result: Result<Value, Error>) {
        let shared = &self.shared;
        if shared.called.replace(true) {
            report(
                Error::new(
                    ErrorKind::InvalidState,
                    format!(
                        "callback for key {:?} called twice: second call ignored",
                        shared.key
                    ),
                ),
                "squall::gen::ResultCallback",
            );
            return;
        }
        shared.runner.set_result(&shared.key, result);
    }

    /// The key this callback delivers to.
    pub fn key(&self) -> &Key {
        &self.shared.key
    }
}

impl fmt::Debug for ResultCallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResultCallback")
            .field("key", &self.shared.key)
            .field("called", &self.shared.called.get())
            .finish()
    }
}
