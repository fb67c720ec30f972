//! The futures of jobs in flight, kept on the thread that submitted them.
//!
//! A [`Future`] is `!Send`, so it cannot travel to a worker and back. It
//! stays here, in a thread-local table grouped by loop; the worker sends back
//! only the key and the result, through the loop's [`Remote`], and the
//! callback that arrives on the loop's thread finds the future by key. No
//! lock is touched on the loop thread.
//!
//! A loop closed while its jobs run never receives their results (its
//! `Remote` refuses them, and the worker drops them). Its group is dropped
//! the next time this thread submits or completes a job, or when the thread
//! exits, so the futures do not pile up.

use std::any::Any;
use std::cell::RefCell;
use std::sync::Arc;

use slotmap::{DefaultKey, SlotMap};

use crate::error::Error;
use crate::future::Future;
use crate::ioloop::Remote;

struct Group {
    remote: Remote,
    /// Each entry is a `Future<T>` for its job's `T`.
    pending: SlotMap<DefaultKey, Box<dyn Any>>,
}

thread_local! {
    static GROUPS: RefCell<Vec<Group>> = const { RefCell::new(Vec::new()) };
}

/// A job's address: which loop, which entry.
#[derive(Clone, Copy)]
pub(crate) struct Ticket {
    /// The loop's `Remote` state, by address; its group holds a clone, so the
    /// address is not reused while the group lives.
    loop_id: usize,
    key: DefaultKey,
}

fn loop_id(remote: &Remote) -> usize {
    Arc::as_ptr(&remote.shared) as *const () as usize
}

/// Drops the groups of closed loops; what they held is returned, to be
/// dropped with no borrow held (dropping a future may run user code).
fn sweep(groups: &mut Vec<Group>) -> Vec<Group> {
    let mut closed = Vec::new();
    let mut i = 0;
    while i < groups.len() {
        if groups[i].remote.is_closed() {
            closed.push(groups.swap_remove(i));
        } else {
            i += 1;
        }
    }
    closed
}

/// Keeps `future` until its job's result comes back to `remote`'s loop.
pub(crate) fn insert<T: 'static>(remote: &Remote, future: Future<T>) -> Ticket {
    let id = loop_id(remote);
    let (ticket, closed) = GROUPS.with(|groups| {
        let mut groups = groups.borrow_mut();
        let closed = sweep(&mut groups);
        let index = match groups.iter().position(|g| loop_id(&g.remote) == id) {
            Some(index) => index,
            None => {
                groups.push(Group {
                    remote: remote.clone(),
                    pending: SlotMap::new(),
                });
                groups.len() - 1
            }
        };
        let key = groups[index].pending.insert(Box::new(future));
        (Ticket { loop_id: id, key }, closed)
    });
    drop(closed);
    ticket
}

/// Takes the future of `ticket` back, if it is still here.
fn take<T: 'static>(ticket: Ticket) -> Option<Future<T>> {
    let (entry, closed) = GROUPS.with(|groups| {
        let mut groups = groups.borrow_mut();
        let entry = groups
            .iter_mut()
            .find(|g| loop_id(&g.remote) == ticket.loop_id)
            .and_then(|g| g.pending.remove(ticket.key));
        let closed = sweep(&mut groups);
        (entry, closed)
    });
    drop(closed);
    entry.and_then(|boxed| boxed.downcast::<Future<T>>().ok().map(|f| *f))
}

/// Completes the future of `ticket` with `result`: called on its loop.
pub(crate) fn complete<T: 'static>(ticket: Ticket, result: Result<T, Error>) {
    if let Some(future) = take::<T>(ticket) {
        // Pending until now: nobody else can complete it.
        future.try_complete(result);
    }
}

/// Forgets the future of `ticket` without completing it.
pub(crate) fn cancel<T: 'static>(ticket: Ticket) {
    drop(take::<T>(ticket));
}

/// How many job futures this thread holds for loops, open or closed.
pub(crate) fn pending() -> usize {
    GROUPS.with(|groups| groups.borrow().iter().map(|g| g.pending.len()).sum())
}

/// Drops the futures held for loops that have been closed.
pub(crate) fn sweep_closed() {
    let closed = GROUPS.with(|groups| sweep(&mut groups.borrow_mut()));
    drop(closed);
}
