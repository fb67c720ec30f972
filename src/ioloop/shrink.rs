//! The loop's tables back to their size after a mass close.
//!
//! A loop that held 10,000 connections keeps the capacity its tables grew
//! to: the fd map, the timer heap, the callback queues (10,000 closes queue
//! 10,000 callbacks in one iteration). The TCP server's trim watch (see
//! `tcpserver/trim.rs`) calls [`IOLoop::shrink_tables`] when it trims the
//! heap after most connections have gone, so that their memory goes back
//! with the rest. Never on the request path: a table that shrinks grows
//! again by doubling, which is what the next wave of connections pays.
//!
//! The two slot tables (handlers and timeouts) keep their peak capacity:
//! each slot carries the version that tells a stale key from a live one, so
//! a slot cannot be freed while some stream or handle may still hold a key
//! to it. About 130 bytes per connection of the peak stay, reused by the
//! next connections (bench/idle_memory.sh's "closed" column).

use super::IOLoop;

/// A vector with more than this many times the room its items need (and
/// more than [`KEEP`] items' worth) is shrunk.
const SLACK: usize = 4;
/// Room always kept: a quiet loop's queues grow no more from here.
pub(super) const KEEP: usize = 64;

impl IOLoop {
    /// Gives back the capacity the loop's tables hold beyond what they
    /// use (see the [module docs](self)). Skips a table in use at the time
    /// (borrowed by the running iteration): the next call catches it.
    pub(crate) fn shrink_tables(&self) {
        let inner = &*self.inner;
        if let Ok(mut handlers) = inner.handlers.try_borrow_mut() {
            let len = handlers.by_fd.len();
            if handlers.by_fd.capacity() > SLACK * len.max(KEEP) {
                handlers.by_fd.shrink_to(2 * len);
            }
        }
        if let Ok(mut timers) = inner.timers.try_borrow_mut() {
            timers.shrink_heap();
        }
        for queue in [&inner.callbacks, &inner.spare] {
            if let Ok(mut queue) = queue.try_borrow_mut() {
                shrink_vec(&mut queue);
            }
        }
    }
}

/// Shrinks `v` to twice its length (at least [`KEEP`]) if it holds far
/// more room than that.
pub(super) fn shrink_vec<T>(v: &mut Vec<T>) {
    if v.capacity() > SLACK * v.len().max(KEEP) {
        v.shrink_to((2 * v.len()).max(KEEP));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;
    use std::time::Duration;

    #[test]
    fn a_grown_vector_shrinks_and_a_busy_one_keeps_its_room() {
        let mut v: Vec<u64> = Vec::with_capacity(10_000);
        v.extend(0..10);
        shrink_vec(&mut v);
        assert!(
            v.capacity() >= KEEP && v.capacity() < 2 * KEEP,
            "{}",
            v.capacity()
        );
        assert_eq!(v, (0..10).collect::<Vec<_>>());
        let mut busy: Vec<u64> = Vec::with_capacity(1024);
        busy.extend(0..600);
        shrink_vec(&mut busy);
        assert_eq!(busy.capacity(), 1024, "in use: kept");
    }

    #[test]
    fn the_tables_shrink_after_a_mass_of_timeouts_and_callbacks_went() {
        let io_loop = IOLoop::new().unwrap();
        let ran = Rc::new(Cell::new(0));
        let handles: Vec<_> = (0..10_000)
            .map(|i| io_loop.call_later(Duration::from_secs(3600 + i), || {}))
            .collect();
        for _ in 0..10_000 {
            let ran = ran.clone();
            io_loop.add_callback(move || ran.set(ran.get() + 1));
        }
        let stop = io_loop.clone();
        io_loop.add_callback(move || stop.stop());
        io_loop.start().unwrap();
        assert_eq!(ran.get(), 10_000);
        for handle in handles {
            io_loop.remove_timeout(handle);
        }
        let grown = (
            io_loop.inner.timers.borrow().heap_capacity(),
            io_loop.inner.spare.borrow().capacity(),
        );
        assert!(grown.0 >= 10_000 && grown.1 >= 10_000, "{grown:?}");
        io_loop.shrink_tables();
        let shrunk = (
            io_loop.inner.timers.borrow().heap_capacity(),
            io_loop.inner.spare.borrow().capacity(),
            io_loop.inner.callbacks.borrow().capacity(),
        );
        // (The heap may still hold some cancelled entries, left for a
        // later compaction: twice those.)
        let heap_len = io_loop.inner.timers.borrow().stats().heap_entries;
        assert!(
            shrunk.0 <= 2 * heap_len.max(KEEP) && shrunk.0 < 1_000,
            "{shrunk:?}"
        );
        assert!(shrunk.1 <= 2 * KEEP && shrunk.2 <= 2 * KEEP, "{shrunk:?}");
        // Still a working loop.
        let again = Rc::new(Cell::new(false));
        let a = again.clone();
        let stop = io_loop.clone();
        io_loop.call_later(Duration::from_millis(1), move || {
            a.set(true);
            stop.stop();
        });
        io_loop.start().unwrap();
        assert!(again.get());
    }
}
