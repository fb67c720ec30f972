//! The waiting line shared by the locks and the queues.
//!
//! Waiters are served first come, first served. One whose timeout fires
//! leaves the line at once (found by id in O(log n), its slot emptied), so it
//! can never be woken later and never counts against `notify(n)`; emptied
//! slots are swept out when they outnumber the live ones, so a loop of short
//! timed waits cannot grow the line without bound (Tornado's
//! `_TimeoutGarbageCollector`, done eagerly).

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::ioloop::{Deadline, IOLoop, TimeoutHandle};

/// A FIFO of `W`s with removal by id.
pub(crate) struct Waiters<W> {
    /// Ids increase from front to back, so an id is found by binary search.
    line: VecDeque<(u64, Option<W>)>,
    next_id: u64,
    live: usize,
}

impl<W> Default for Waiters<W> {
    fn default() -> Self {
        Waiters {
            line: VecDeque::new(),
            next_id: 0,
            live: 0,
        }
    }
}

impl<W> Waiters<W> {
    /// Joins the back of the line; returns the waiter's id.
    pub(crate) fn push(&mut self, waiter: W) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.line.push_back((id, Some(waiter)));
        self.live += 1;
        id
    }

    /// The id the next [`push`](Waiters::push) will return.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Takes the first live waiter.
    pub(crate) fn pop_front(&mut self) -> Option<W> {
        while let Some((_, slot)) = self.line.pop_front() {
            if let Some(waiter) = slot {
                self.live -= 1;
                return Some(waiter);
            }
        }
        None
    }

    /// Takes waiter `id` out of the line, wherever it stands.
    pub(crate) fn remove(&mut self, id: u64) -> Option<W> {
        let index = self.line.binary_search_by_key(&id, |(i, _)| *i).ok()?;
        let waiter = self.line[index].1.take()?;
        self.live -= 1;
        while matches!(self.line.front(), Some((_, None))) {
            self.line.pop_front();
        }
        if self.line.len() > 32 && self.live * 2 < self.line.len() {
            self.line.retain(|(_, slot)| slot.is_some());
        }
        Some(waiter)
    }

    /// How many waiters are in line.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Takes every waiter, in order.
    pub(crate) fn take_all(&mut self) -> Vec<W> {
        self.live = 0;
        self.line.drain(..).filter_map(|(_, slot)| slot).collect()
    }

    /// Slots held, live or emptied (for tests of the sweeping).
    #[cfg(test)]
    fn slots(&self) -> usize {
        self.line.len()
    }
}

/// A pending timeout, removed from its loop when dropped: a waiter served in
/// time takes its timer with it.
pub(crate) struct Timer {
    io_loop: IOLoop,
    handle: TimeoutHandle,
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.io_loop.remove_timeout(self.handle);
    }
}

/// A future waiting in line, with its timeout if it has one.
pub(crate) struct Waiter<T> {
    pub(crate) future: Future<T>,
    pub(crate) timer: Option<Timer>,
}

impl<T: 'static> Waiter<T> {
    /// Cancels the timeout, then completes the future.
    pub(crate) fn resolve(self, result: Result<T, Error>) {
        let Waiter { future, timer } = self;
        drop(timer);
        // Only a waiter still in line is resolved, so it is pending.
        future.try_complete(result);
    }
}

/// Where a timeout falls on `io_loop`'s clock, and whether it has passed.
fn deadline(io_loop: &IOLoop, timeout: Deadline) -> (Instant, bool) {
    let now = io_loop.time();
    let when = match timeout {
        Deadline::At(when) => when,
        Deadline::After(mut delay) => loop {
            // Saturate rather than panic: `Duration::MAX` means "never".
            if let Some(when) = now.checked_add(delay) {
                break when;
            }
            delay /= 2;
        },
    };
    (when, when <= now)
}

/// The timer of a wait that gives up after `timeout` (none without one):
/// `expire(&state, id)` then, `id` the one `next_id` gives the waiter about
/// to join the line. `Err(Passed)` if the timeout has passed already: the
/// wait ends at once, timed out, and joins no line. Shared by every timed
/// wait of `locks` and `queues`, which differ only in what `expire` does.
pub(crate) fn timer<S: 'static>(
    timeout: Option<Deadline>,
    state: &Rc<S>,
    next_id: impl FnOnce(&S) -> u64,
    expire: fn(&S, u64),
) -> Result<Option<Timer>, Passed> {
    let Some(timeout) = timeout else {
        return Ok(None);
    };
    let io_loop = IOLoop::current();
    let (when, passed) = deadline(&io_loop, timeout);
    if passed {
        return Err(Passed);
    }
    let id = next_id(state);
    Ok(Some(arm(&io_loop, when, state.clone(), id, expire)))
}

/// A wait's timeout that had passed when it began (see [`timer`]).
pub(crate) struct Passed;

/// Schedules `expire(&state, id)` at `when` on `io_loop`. The timeout holds
/// the state, as Tornado's timeout callback holds its lock: a lock or queue
/// dropped by its last user still times its waiters out, so a timed wait
/// always ends. (The state holds only the timeout's handle, so there is no
/// cycle: the timeout, once run or removed, lets go.)
fn arm<S: 'static>(
    io_loop: &IOLoop,
    when: Instant,
    state: Rc<S>,
    id: u64,
    expire: fn(&S, u64),
) -> Timer {
    let handle = io_loop.call_at(when, move || expire(&state, id));
    Timer {
        io_loop: io_loop.clone(),
        handle,
    }
}

/// The error a timed-out waiter gets (Tornado's `gen.TimeoutError`).
pub(crate) fn timed_out(what: &str) -> Error {
    Error::new(ErrorKind::Timeout, format!("{what} timed out"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_with_removal_and_sweeping() {
        let mut w = Waiters::default();
        let ids: Vec<u64> = (0..100).map(|i| w.push(i)).collect();
        assert_eq!(w.remove(ids[1]), Some(1));
        assert_eq!(w.remove(ids[1]), None);
        assert_eq!(w.pop_front(), Some(0));
        assert_eq!(w.pop_front(), Some(2));
        // Empty most of the line: the slots are swept.
        for id in &ids[3..90] {
            assert!(w.remove(*id).is_some());
        }
        assert_eq!(w.len(), 10);
        assert!(w.slots() <= 32, "{}", w.slots());
        assert_eq!(w.remove(ids[95]), Some(95));
        let rest: Vec<_> = std::iter::from_fn(|| w.pop_front()).collect();
        assert_eq!(rest, [90, 91, 92, 93, 94, 96, 97, 98, 99]);
        assert!(w.is_empty());
        assert_eq!(w.remove(ids[99]), None);
    }

    #[test]
    fn take_all_empties() {
        let mut w = Waiters::default();
        let a = w.push('a');
        w.push('b');
        w.remove(a);
        assert_eq!(w.take_all(), ['b']);
        assert_eq!(w.len(), 0);
        assert_eq!(w.next_id(), 2);
    }
}
