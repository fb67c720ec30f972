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
//! The two slot tables (handlers and timeouts, `slab.rs`) free their pages
//! whose slots are all free. A slot's version tells a stale key from a live
//! one, and a stream or a `TimeoutHandle` may still hold a key into a freed
//! page: the table's version floor makes a page made again at the same place
//! issue versions above every one it issued before, so such a key stays
//! stale. (With `slotmap`, 128 bytes per connection of the peak stayed:
//! 1.3 MiB after 10,000 connections closed, bench/idle_memory.sh's "closed"
//! column; `tests/idle_memory.rs` `a_mass_close_gives_the_loop_tables_back`
//! counts 7 B per gone connection left now, 143 B without this.)

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
            handlers.map.shrink();
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
    use crate::ioloop::slab::SlabKey;
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

    #[test]
    fn timeout_pages_go_and_a_stale_handle_never_matches_a_new_timeout() {
        use crate::ioloop::TimeoutHandle;
        let io_loop = IOLoop::new().unwrap();
        // Soon due, then removed: their heap entries stay (lazily
        // cancelled), with keys into pages about to be freed.
        let old: Vec<TimeoutHandle> = (0..1_000)
            .map(|_| io_loop.call_later(Duration::from_millis(1), || {}))
            .collect();
        for handle in &old {
            assert!(io_loop.remove_timeout(*handle));
        }
        assert!(io_loop.inner.timers.borrow().callback_pages() >= 1_000 / 64);
        io_loop.shrink_tables();
        assert_eq!(io_loop.inner.timers.borrow().callback_pages(), 0);
        // New timeouts in pages made again at the same places.
        let ran = Rc::new(Cell::new(0));
        let new: Vec<TimeoutHandle> = (0..1_000)
            .map(|_| {
                let ran = ran.clone();
                io_loop.call_later(Duration::from_millis(300), move || ran.set(ran.get() + 1))
            })
            .collect();
        assert!(
            new.iter()
                .any(|h| old.iter().any(|o| o.0.raw() as u32 == h.0.raw() as u32)),
            "slots reused"
        );
        // A stale handle: removing it is a no-op.
        for handle in &old {
            assert!(!io_loop.remove_timeout(*handle));
        }
        assert_eq!(io_loop.timer_stats().pending, 1_000);
        // The stale heap entries fall due first and must run nothing.
        let stop = io_loop.clone();
        io_loop.call_later(Duration::from_millis(50), move || stop.stop());
        io_loop.start().unwrap();
        assert_eq!(ran.get(), 0, "a stale heap entry ran a new timeout");
        assert_eq!(io_loop.timer_stats().pending, 1_000);
        let stop = io_loop.clone();
        io_loop.call_later(Duration::from_millis(400), move || stop.stop());
        io_loop.start().unwrap();
        assert_eq!(ran.get(), 1_000);
        let stats = io_loop.timer_stats();
        assert_eq!((stats.pending, stats.cancelled), (0, 0), "{stats:?}");
    }

    #[test]
    fn handler_pages_go_and_an_event_for_a_stale_token_is_dropped() {
        use crate::ioloop::Events;
        use std::io::Write;
        use std::os::unix::net::UnixStream;
        const N: usize = 200;
        let io_loop = IOLoop::new().unwrap();
        let pairs = |n| -> Vec<(UnixStream, UnixStream)> {
            (0..n).map(|_| UnixStream::pair().unwrap()).collect()
        };
        let first = Rc::new(pairs(N));
        let second = Rc::new(pairs(N));
        let calls = Rc::new(Cell::new(0));
        let second_calls = Rc::new(Cell::new(0));
        let old_tokens = Rc::new(std::cell::RefCell::new(Vec::new()));
        for (a, b) in first.iter() {
            let (io, first, second, calls, second_calls, old_tokens) = (
                io_loop.clone(),
                first.clone(),
                second.clone(),
                calls.clone(),
                second_calls.clone(),
                old_tokens.clone(),
            );
            io_loop
                .add_handler(
                    a,
                    move |_, _| {
                        calls.set(calls.get() + 1);
                        // The first handler called: every other one goes
                        // (their events are queued in this batch), their
                        // pages go, and new handlers take the same slots.
                        old_tokens
                            .borrow_mut()
                            .extend(io.inner.handlers.borrow().by_fd.values().copied());
                        for (a, _) in first.iter() {
                            io.remove_handler(a);
                        }
                        io.shrink_tables();
                        assert_eq!(io.inner.handlers.borrow().map.live_pages(), 0);
                        for (a, _) in second.iter() {
                            let second_calls = second_calls.clone();
                            io.add_handler(
                                a,
                                move |_, _| second_calls.set(second_calls.get() + 1),
                                Events::READ,
                            )
                            .unwrap();
                        }
                        let stop = io.clone();
                        io.call_later(Duration::from_millis(50), move || stop.stop());
                    },
                    Events::READ,
                )
                .unwrap();
            (&*b).write_all(b"x").unwrap();
        }
        io_loop.start().unwrap();
        assert_eq!(calls.get(), 1, "events for removed handlers dropped");
        assert_eq!(
            second_calls.get(),
            0,
            "no stale event reached a new handler"
        );
        let handlers = io_loop.inner.handlers.borrow();
        let old = old_tokens.borrow();
        let new: Vec<_> = handlers.by_fd.values().copied().collect();
        assert_eq!(new.len(), N);
        assert!(
            new.iter()
                .any(|n| old.iter().any(|o| o.raw() as u32 == n.raw() as u32)),
            "slots reused"
        );
        assert!(
            new.iter().all(|n| !old.contains(n)),
            "no token issued twice"
        );
    }
    /// `TimeoutHandle`'s promise ("removing through it twice, or after the
    /// timeout ran, is harmless") holds after a hot slot's version neared
    /// the wrap and `shrink_tables` ran (twice): its page is kept.
    #[test]
    fn a_stale_handle_never_removes_a_live_timeout_near_the_version_wrap() {
        let io_loop = IOLoop::new().unwrap();
        let later = || Duration::from_secs(60);
        // A hot slot: call_later + remove_timeout, 2^31 - 1 times (fast-forwarded).
        let h = io_loop.call_later(later(), || {});
        assert!(io_loop.remove_timeout(h));
        io_loop
            .inner
            .timers
            .borrow_mut()
            .fast_forward_callbacks(h.0.raw() as u32, u32::MAX - 1);
        io_loop.shrink_tables(); // a mass close
                                 // Epoch A: a handle kept after its timeout was removed (or ran).
        let a1 = io_loop.call_later(later(), || {});
        assert!(io_loop.remove_timeout(a1));
        let a2 = io_loop.call_later(later(), || {});
        assert!(io_loop.remove_timeout(a2));
        io_loop.shrink_tables(); // another mass close
                                 // Epoch B: someone else's timeout.
        let b1 = io_loop.call_later(later(), || {});
        assert!(io_loop.remove_timeout(b1));
        let b2 = io_loop.call_later(later(), || {});
        assert_eq!(io_loop.timer_stats().pending, 1);
        assert!(
            !io_loop.remove_timeout(a2),
            "stale {a2:?} removed live {b2:?}"
        );
        assert_eq!(io_loop.timer_stats().pending, 1);
    }
}
