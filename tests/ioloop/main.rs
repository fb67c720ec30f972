//! Behaviour of the IOLoop through its public API: callbacks, timeouts,
//! handlers, remotes, errors, running and stopping, PeriodicCallback.
//!
//! Timer behaviour is tested on a `ManualClock`, which jumps to the next
//! deadline whenever the loop is idle: exact and instant, with no sleeps.

#[path = "../common/mod.rs"]
mod common;

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind as IoErrorKind, Read, Write};
use std::os::unix::io::{AsRawFd, FromRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use squall::ioloop::{Clock, ManualClock, TimeoutHandle};
use squall::testing::{capture_unhandled, AsyncTest};
use squall::{Error, ErrorKind, Events, Future, IOLoop, PeriodicCallback};

use common::{drop_flag, guard, manual_loop, ms, secs, socketpair, Log};

fn kinds(errors: &[Error]) -> Vec<ErrorKind> {
    errors.iter().map(Error::kind).collect()
}

// ----- callbacks -------------------------------------------------------------

#[test]
fn callbacks_run_in_fifo_order() {
    let io_loop = IOLoop::new().unwrap();
    let log = Log::new();
    for i in 0..100 {
        let log = log.clone();
        io_loop.add_callback(move || log.push(i));
    }
    let l = io_loop.clone();
    io_loop.add_callback(move || l.stop());
    io_loop.start().unwrap();
    assert_eq!(log.get(), (0..100).collect::<Vec<_>>());
    io_loop.close();
}

#[test]
fn callback_added_by_a_callback_runs_next_iteration_after_due_timeouts() {
    let (io_loop, _clock) = manual_loop();
    let log = Log::new();
    let (lg, l) = (log.clone(), io_loop.clone());
    // Due at once: noted at the start of the first iteration.
    io_loop.call_later(Duration::ZERO, move || lg.push("timeout 1"));
    let (lg, l2) = (log.clone(), l.clone());
    io_loop.add_callback(move || {
        lg.push("a");
        let (lg2, l3) = (lg.clone(), l2.clone());
        l2.add_callback(move || {
            lg2.push("b (added by a)");
            l3.stop();
        });
        // Due now, but added after the iteration noted its due timeouts.
        let lg3 = lg.clone();
        l2.call_later(Duration::ZERO, move || lg3.push("timeout 2 (added by a)"));
    });
    let lg = log.clone();
    io_loop.add_callback(move || lg.push("c"));
    let timed_out = guard(&l, secs(60));
    io_loop.start().unwrap();
    assert!(!timed_out.get());
    assert_eq!(
        log.get(),
        [
            "a",
            "c",
            "timeout 1",
            "b (added by a)",
            "timeout 2 (added by a)"
        ]
    );
    io_loop.close();
}

#[test]
fn spawn_callback_runs_too() {
    let io_loop = IOLoop::new().unwrap();
    let ran = Rc::new(Cell::new(false));
    let (r, l) = (ran.clone(), io_loop.clone());
    io_loop.spawn_callback(move || {
        r.set(true);
        l.stop();
    });
    io_loop.start().unwrap();
    assert!(ran.get());
    io_loop.close();
}

// ----- timeouts --------------------------------------------------------------

#[test]
fn timeouts_fire_in_deadline_order_ties_in_scheduling_order() {
    let (io_loop, _clock) = manual_loop();
    let t0 = io_loop.time();
    let log = Log::new();
    for (name, s) in [("c", 3), ("a1", 1), ("b1", 2), ("b2", 2), ("a2", 1)] {
        let (lg, l) = (log.clone(), io_loop.clone());
        io_loop.call_later(secs(s), move || lg.push((name, l.time() - t0)));
    }
    // An Instant deadline equal to a Duration one: after them, as scheduled later.
    let (lg, l) = (log.clone(), io_loop.clone());
    io_loop.call_at(t0 + secs(2), move || lg.push(("b3", l.time() - t0)));
    let (lg, l) = (log.clone(), io_loop.clone());
    io_loop.add_timeout(t0 + secs(1), move || lg.push(("a3", l.time() - t0)));
    let timed_out = guard(&io_loop, secs(10));
    io_loop.start().unwrap();
    assert!(timed_out.get());
    assert_eq!(
        log.get(),
        [
            ("a1", secs(1)),
            ("a2", secs(1)),
            ("a3", secs(1)),
            ("b1", secs(2)),
            ("b2", secs(2)),
            ("b3", secs(2)),
            ("c", secs(3)),
        ]
    );
    io_loop.close();
}

#[test]
fn removed_timeout_never_runs_and_removing_again_is_harmless() {
    let (io_loop, _clock) = manual_loop();
    let log = Log::new();
    let lg = log.clone();
    let removed = io_loop.call_later(secs(1), move || lg.push("removed"));
    let lg = log.clone();
    let kept = io_loop.call_later(secs(2), move || lg.push("kept"));
    assert_eq!(io_loop.timer_stats().pending, 2);
    assert!(io_loop.remove_timeout(removed));
    assert!(!io_loop.remove_timeout(removed), "removing twice");
    assert_eq!(io_loop.timer_stats().pending, 1);
    guard(&io_loop, secs(10));
    io_loop.start().unwrap();
    assert_eq!(log.get(), ["kept"]);
    assert!(!io_loop.remove_timeout(kept), "removing after it ran");
    assert!(!io_loop.remove_timeout(removed));
    let stats = io_loop.timer_stats();
    assert_eq!(
        (stats.pending, stats.heap_entries, stats.cancelled),
        (0, 0, 0)
    );
    io_loop.close();
}

#[test]
fn removing_a_timeout_releases_its_callback() {
    let (io_loop, _clock) = manual_loop();
    let (flag, dropped) = drop_flag();
    let handle = io_loop.call_later(secs(1), move || drop(flag));
    assert!(!dropped.get());
    assert!(io_loop.remove_timeout(handle));
    assert!(dropped.get());
    io_loop.close();
}

#[test]
fn timeout_removing_another_due_in_the_same_iteration_prevents_it() {
    let (io_loop, _clock) = manual_loop();
    let log = Log::new();
    let victim: Rc<Cell<Option<TimeoutHandle>>> = Rc::new(Cell::new(None));
    let (lg, l, v) = (log.clone(), io_loop.clone(), victim.clone());
    io_loop.call_later(secs(1), move || {
        let removed = l.remove_timeout(v.get().expect("victim scheduled"));
        lg.push(format!("remover: removed={removed}"));
    });
    let lg = log.clone();
    victim.set(Some(
        io_loop.call_later(secs(1), move || lg.push("victim ran".to_owned())),
    ));
    // Another pair in the same iteration, with the victim due *earlier* than
    // the remover's own deadline but both due at once.
    let (lg, l) = (log.clone(), io_loop.clone());
    let t0 = io_loop.time();
    let victim2: Rc<Cell<Option<TimeoutHandle>>> = Rc::new(Cell::new(None));
    let v2 = victim2.clone();
    io_loop.call_at(t0 + secs(5), move || {
        let removed = l.remove_timeout(v2.get().expect("victim scheduled"));
        lg.push(format!("remover 2: removed={removed}"));
    });
    let lg = log.clone();
    victim2.set(Some(
        io_loop.call_at(t0 + secs(5), move || lg.push("victim 2 ran".to_owned())),
    ));

    guard(&io_loop, secs(60));
    io_loop.start().unwrap();
    assert_eq!(
        log.get(),
        ["remover: removed=true", "remover 2: removed=true"]
    );
    // The heap's bookkeeping stays exact: nothing left, nothing counted as
    // a cancelled entry still in the heap.
    let stats = io_loop.timer_stats();
    assert_eq!(stats.pending, 0, "{stats:?}");
    assert_eq!(stats.heap_entries, 0, "{stats:?}");
    assert_eq!(stats.cancelled, 0, "{stats:?}");
    io_loop.close();
}

#[test]
fn timeout_removing_itself_or_a_ran_one_returns_false() {
    let (io_loop, _clock) = manual_loop();
    let me: Rc<Cell<Option<TimeoutHandle>>> = Rc::new(Cell::new(None));
    let result = Rc::new(Cell::new(None));
    let (m, r, l) = (me.clone(), result.clone(), io_loop.clone());
    me.set(Some(io_loop.call_later(secs(1), move || {
        r.set(Some(l.remove_timeout(m.get().unwrap())));
    })));
    guard(&io_loop, secs(2));
    io_loop.start().unwrap();
    assert_eq!(result.get(), Some(false));
    let stats = io_loop.timer_stats();
    assert_eq!(
        (stats.pending, stats.heap_entries, stats.cancelled),
        (0, 0, 0)
    );
    io_loop.close();
}

#[test]
fn many_removed_timeouts_leave_the_heap_compacted() {
    const ADDED: usize = 100_000;
    const REMOVED: usize = 99_000;
    let (io_loop, _clock) = manual_loop();
    let t0 = io_loop.time();
    let fired = Log::new();
    let handles: Vec<TimeoutHandle> = (0..ADDED)
        .map(|i| {
            let f = fired.clone();
            io_loop.call_at(t0 + ms(i as u64 + 1), move || f.push(i))
        })
        .collect();
    // Keep every 100th; remove the rest.
    let mut removed = 0;
    for (i, handle) in handles.iter().enumerate() {
        if i % 100 != 0 {
            assert!(io_loop.remove_timeout(*handle));
            removed += 1;
        }
    }
    assert_eq!(removed, REMOVED);
    let stats = io_loop.timer_stats();
    let pending = ADDED - REMOVED;
    assert_eq!(stats.pending, pending, "{stats:?}");
    assert_eq!(
        stats.heap_entries,
        stats.pending + stats.cancelled,
        "{stats:?}"
    );
    // Lazy cancellation (Tornado's scheme): the heap is rebuilt when the
    // cancelled entries are over 512 and over half of it, so at most
    // max(512, pending) cancelled entries remain: removal stays O(1)
    // amortised, and the heap is within a small factor of what is live.
    assert!(
        stats.cancelled <= pending.max(512) + 1,
        "heap not compacted: {stats:?}"
    );
    assert!(stats.heap_entries < 2 * pending + 513, "{stats:?}");

    // The survivors all fire, in order; the cancelled ones never do.
    guard(&io_loop, secs(1000));
    io_loop.start().unwrap();
    let expected: Vec<usize> = (0..ADDED).step_by(100).collect();
    assert_eq!(fired.get(), expected);
    let stats = io_loop.timer_stats();
    assert_eq!(
        (stats.pending, stats.heap_entries, stats.cancelled),
        (0, 0, 0)
    );
    io_loop.close();
}

#[test]
fn duration_and_instant_deadlines_agree() {
    let (io_loop, clock) = manual_loop();
    let t0 = io_loop.time();
    let log = Log::new();
    let (lg, l) = (log.clone(), io_loop.clone());
    io_loop.add_timeout(secs(5), move || lg.push(("duration", l.time() - t0)));
    let (lg, l) = (log.clone(), io_loop.clone());
    io_loop.add_timeout(t0 + secs(5), move || lg.push(("instant", l.time() - t0)));
    // A Duration is measured from the loop's time when the timeout is added.
    clock.advance(secs(2));
    let (lg, l) = (log.clone(), io_loop.clone());
    io_loop.add_timeout(secs(5), move || lg.push(("duration later", l.time() - t0)));
    let (lg, l) = (log.clone(), io_loop.clone());
    io_loop.call_later(secs(5), move || {
        lg.push(("call_later later", l.time() - t0))
    });
    let (lg, l) = (log.clone(), io_loop.clone());
    io_loop.call_at(t0 + secs(7), move || {
        lg.push(("call_at later", l.time() - t0))
    });
    guard(&io_loop, secs(60));
    io_loop.start().unwrap();
    assert_eq!(
        log.get(),
        [
            ("duration", secs(5)),
            ("instant", secs(5)),
            ("duration later", secs(7)),
            ("call_later later", secs(7)),
            ("call_at later", secs(7)),
        ]
    );
    io_loop.close();
}

#[test]
fn deadline_in_the_past_fires_on_the_next_iteration() {
    let (io_loop, clock) = manual_loop();
    let t0 = io_loop.time();
    clock.advance(secs(10));
    let at = Rc::new(Cell::new(None));
    let (a, l) = (at.clone(), io_loop.clone());
    io_loop.call_at(t0, move || {
        a.set(Some(l.time() - t0));
        l.stop();
    });
    io_loop.start().unwrap();
    assert_eq!(at.get(), Some(secs(10)));
    io_loop.close();
}

#[test]
fn stop_from_a_timeout_ends_start() {
    let (io_loop, _clock) = manual_loop();
    let t0 = io_loop.time();
    let l = io_loop.clone();
    io_loop.call_later(secs(5), move || l.stop());
    let later = Rc::new(Cell::new(false));
    let lt = later.clone();
    io_loop.call_later(secs(10), move || lt.set(true));
    io_loop.start().unwrap();
    assert_eq!(io_loop.time() - t0, secs(5));
    assert!(!later.get());
    assert!(!io_loop.is_running());
    assert_eq!(io_loop.timer_stats().pending, 1);
    // The loop can be started again, and goes on where it stopped.
    let l = io_loop.clone();
    io_loop.call_later(secs(6), move || l.stop());
    io_loop.start().unwrap();
    assert!(later.get());
    io_loop.close();
}

// ----- handlers --------------------------------------------------------------

#[test]
fn handler_sees_read_when_the_peer_writes_and_write_when_writable() {
    let (io_loop, _clock) = manual_loop();
    let (a, b) = socketpair();
    let fd = a.as_raw_fd();
    let seen = Log::new();
    let (s, l) = (seen.clone(), io_loop.clone());
    let mut reader = a.try_clone().unwrap();
    io_loop
        .add_handler(
            &a,
            move |got_fd, events: Events| {
                assert_eq!(got_fd, fd);
                let mut buf = [0u8; 16];
                let n = reader.read(&mut buf).unwrap();
                s.push((events, buf[..n].to_vec()));
                l.stop();
            },
            Events::READ,
        )
        .unwrap();
    // Nothing to read yet: the handler must not be called before the write.
    let mut writer = b.try_clone().unwrap();
    io_loop.call_later(secs(1), move || Ok(writer.write_all(b"hello")?));
    let timed_out = guard(&io_loop, secs(60));
    io_loop.start().unwrap();
    assert!(!timed_out.get());
    assert_eq!(seen.get(), [(Events::READ, b"hello".to_vec())]);
    assert!(io_loop.remove_handler(&a));

    // WRITE, asked for alone, on a socket that is writable at once.
    let writable = Log::new();
    let (w, l) = (writable.clone(), io_loop.clone());
    io_loop
        .add_handler(
            &b,
            move |fd, events| {
                w.push(events);
                l.remove_handler(fd);
                l.stop();
            },
            Events::WRITE,
        )
        .unwrap();
    io_loop.start().unwrap();
    assert_eq!(writable.get(), [Events::WRITE]);
    assert_eq!(io_loop.handler_count(), 0);
    io_loop.close();
}

#[test]
fn handler_is_told_when_the_peer_closes() {
    let (io_loop, _clock) = manual_loop();
    let (a, b) = socketpair();
    let seen = Log::new();
    let (s, l) = (seen.clone(), io_loop.clone());
    let mut reader = a.try_clone().unwrap();
    io_loop
        .add_handler(
            &a,
            move |fd, events: Events| {
                let mut buf = [0u8; 4];
                s.push((events.is_readable(), reader.read(&mut buf).unwrap()));
                l.remove_handler(fd);
                l.stop();
            },
            Events::READ,
        )
        .unwrap();
    drop(b);
    guard(&io_loop, secs(60));
    io_loop.start().unwrap();
    // Readable, and the read says end-of-file.
    assert_eq!(seen.get(), [(true, 0)]);
    io_loop.close();
}

#[test]
fn level_triggered_handler_is_called_again_until_drained() {
    let (io_loop, _clock) = manual_loop();
    let (a, mut b) = socketpair();
    b.write_all(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
    let bytes = Log::new();
    let calls = Rc::new(Cell::new(0));
    let (by, c) = (bytes.clone(), calls.clone());
    let mut reader = a.try_clone().unwrap();
    io_loop
        .add_handler(
            &a,
            move |_, events: Events| {
                assert!(events.is_readable());
                c.set(c.get() + 1);
                assert!(c.get() <= 50, "handler called in a loop");
                let mut one = [0u8; 1];
                match reader.read(&mut one) {
                    Ok(1) => by.push(one[0]),
                    other => panic!("called with nothing to read: {other:?}"),
                }
            },
            Events::READ,
        )
        .unwrap();
    // On the manual clock this is reached once no event comes any more.
    let (errors_guarded, errors) = capture_unhandled(|| {
        let timed_out = guard(&io_loop, secs(3600));
        io_loop.start().unwrap();
        timed_out.get()
    });
    assert!(errors_guarded);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(bytes.get(), (0..10).collect::<Vec<u8>>());
    assert_eq!(
        calls.get(),
        10,
        "one call per byte, each on its own iteration"
    );
    io_loop.close();
}

#[test]
fn edge_triggered_handler_is_not_called_again_until_new_data() {
    let (io_loop, _clock) = manual_loop();
    let t0 = io_loop.time();
    let (a, mut b) = socketpair();
    b.write_all(&[0; 10]).unwrap();
    let calls = Log::new();
    let (c, l) = (calls.clone(), io_loop.clone());
    let mut reader = a.try_clone().unwrap();
    io_loop
        .add_edge_handler(
            &a,
            move |_, events: Events| {
                assert!(events.is_readable());
                let mut one = [0u8; 1];
                assert_eq!(reader.read(&mut one).unwrap(), 1);
                c.push(l.time() - t0);
            },
            Events::READ,
        )
        .unwrap();
    // Nine bytes are still unread when new data arrives at 10 s.
    io_loop.call_later(secs(10), move || Ok(b.write_all(&[1])?));
    let (errors_guarded, errors) = capture_unhandled(|| {
        let timed_out = guard(&io_loop, secs(20));
        io_loop.start().unwrap();
        timed_out.get()
    });
    assert!(errors_guarded);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(calls.get(), [secs(0), secs(10)]);
    io_loop.close();
}

#[test]
fn handler_removed_by_another_in_the_same_batch_is_not_called() {
    let (io_loop, _clock) = manual_loop();
    let (a1, mut b1) = socketpair();
    let (a2, mut b2) = socketpair();
    // Both readable before the first poll: one batch holds both events.
    b1.write_all(b"x").unwrap();
    b2.write_all(b"x").unwrap();
    let (fd1, fd2) = (a1.as_raw_fd(), a2.as_raw_fd());
    let ran = Log::new();
    for (me, other, id) in [(fd1, fd2, 1), (fd2, fd1, 2)] {
        let (r, l) = (ran.clone(), io_loop.clone());
        io_loop
            .add_handler(
                me,
                move |_, _| {
                    r.push(id);
                    assert!(l.remove_handler(other), "the other was still there");
                    assert!(l.remove_handler(me));
                },
                Events::READ,
            )
            .unwrap();
    }
    assert_eq!(io_loop.handler_count(), 2);
    let (_, errors) = capture_unhandled(|| {
        guard(&io_loop, secs(1));
        io_loop.start().unwrap();
    });
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(ran.len(), 1, "exactly one handler ran: {:?}", ran.get());
    assert_eq!(io_loop.handler_count(), 0);
    io_loop.close();
}

/// A handler removes another whose event is in the same batch, closes its
/// fd, and puts a new socket, with a new handler, on the very same fd number.
/// The stale event must not reach the new handler: the new socket has
/// nothing to read.
#[test]
fn stale_event_does_not_reach_a_new_handler_on_a_reused_fd() {
    let (io_loop, _clock) = manual_loop();
    let (a1, mut b1) = socketpair();
    let (a2, mut b2) = socketpair();
    b1.write_all(b"x").unwrap();
    b2.write_all(b"x").unwrap();
    let (fd1, fd2) = (a1.as_raw_fd(), a2.as_raw_fd());
    let sockets: Rc<RefCell<Vec<Option<UnixStream>>>> =
        Rc::new(RefCell::new(vec![Some(a1), Some(a2)]));
    let keep: Rc<RefCell<Vec<UnixStream>>> = Rc::new(RefCell::new(Vec::new()));
    let new_handler_calls = Log::new();
    let reused_fd = Rc::new(Cell::new(-1));
    let ran = Log::new();

    for (me, other, my_index, other_index) in [(fd1, fd2, 0, 1), (fd2, fd1, 1, 0)] {
        let (l, socks, keep, calls, reused, r) = (
            io_loop.clone(),
            sockets.clone(),
            keep.clone(),
            new_handler_calls.clone(),
            reused_fd.clone(),
            ran.clone(),
        );
        io_loop
            .add_handler(
                me,
                move |_, _| {
                    r.push(my_index);
                    assert!(l.remove_handler(me));
                    drop(socks.borrow_mut()[my_index].take());
                    // The other's event is still queued in this batch.
                    assert!(l.remove_handler(other));
                    let old = socks.borrow_mut()[other_index].take().unwrap();
                    let old_fd = old.into_raw_fd();
                    let (c, d) = socketpair();
                    // SAFETY: `old_fd` is ours (from into_raw_fd); dup2 closes
                    // its socket and makes the number refer to `c`'s.
                    let rc = unsafe { libc::dup2(c.as_raw_fd(), old_fd) };
                    assert_eq!(rc, old_fd, "dup2 failed");
                    drop(c);
                    // SAFETY: `old_fd` is open and owned by nobody else now.
                    let c = unsafe { UnixStream::from_raw_fd(old_fd) };
                    reused.set(old_fd);
                    let mut reader = c.try_clone().unwrap();
                    let calls = calls.clone();
                    l.add_handler(
                        old_fd,
                        move |_, events: Events| {
                            let mut buf = [0u8; 8];
                            let n = match reader.read(&mut buf) {
                                Ok(n) => n,
                                Err(e) if e.kind() == IoErrorKind::WouldBlock => usize::MAX,
                                Err(e) => panic!("{e}"),
                            };
                            calls.push((events, n));
                        },
                        Events::READ,
                    )
                    .unwrap();
                    keep.borrow_mut().push(c);
                    keep.borrow_mut().push(d);
                },
                Events::READ,
            )
            .unwrap();
    }

    // Later, real data for the new socket: its handler hears of that.
    let k = keep.clone();
    io_loop.call_later(secs(1), move || {
        let mut peer = k.borrow()[1].try_clone().unwrap();
        peer.write_all(b"new").unwrap();
    });
    let (_, errors) = capture_unhandled(|| {
        guard(&io_loop, secs(2));
        io_loop.start().unwrap();
    });
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(ran.len(), 1, "{:?}", ran.get());
    assert!(reused_fd.get() == fd1 || reused_fd.get() == fd2);
    // One call, for the real data; none for the stale event (which would
    // have found nothing to read: n == usize::MAX).
    assert_eq!(new_handler_calls.get(), [(Events::READ, 3)]);
    assert!(io_loop.remove_handler(reused_fd.get()));
    io_loop.close();
    drop(b1);
    drop(b2);
}

#[test]
fn update_handler_changes_the_interest_from_read_to_write() {
    let (io_loop, _clock) = manual_loop();
    let (a, b) = socketpair();
    let seen = Log::new();
    let (s, l) = (seen.clone(), io_loop.clone());
    let mut reader = a.try_clone().unwrap();
    io_loop
        .add_handler(
            &a,
            move |fd, events: Events| {
                s.push(events);
                if events.is_readable() {
                    let mut buf = [0u8; 8];
                    assert_eq!(reader.read(&mut buf).unwrap(), 1);
                    l.update_handler(fd, Events::WRITE).unwrap();
                } else {
                    assert!(l.remove_handler(fd));
                    l.stop();
                }
            },
            Events::READ,
        )
        .unwrap();
    let mut writer = b.try_clone().unwrap();
    io_loop.call_later(secs(1), move || Ok(writer.write_all(b"x")?));
    let timed_out = guard(&io_loop, secs(60));
    io_loop.start().unwrap();
    assert!(!timed_out.get());
    assert_eq!(seen.get(), [Events::READ, Events::WRITE]);
    io_loop.close();
}

#[test]
fn update_handler_before_start() {
    let (io_loop, _clock) = manual_loop();
    let (a, b) = socketpair();
    let seen = Log::new();
    let s = seen.clone();
    io_loop
        .add_handler(&a, move |_, ev| s.push(ev), Events::READ)
        .unwrap();
    // Writable at once; nothing to read.
    io_loop.update_handler(&a, Events::WRITE).unwrap();
    // Stop in the second iteration, after one poll.
    let l = io_loop.clone();
    io_loop.add_callback(move || {
        let l2 = l.clone();
        l.add_callback(move || l2.stop());
    });
    io_loop.start().unwrap();
    assert_eq!(seen.get(), [Events::WRITE]);
    drop(b);
    assert!(io_loop.remove_handler(&a));
    io_loop.close();
}

#[test]
fn handler_registration_errors() {
    let io_loop = IOLoop::new().unwrap();
    let (a, b) = socketpair();
    io_loop.add_handler(&a, |_, _| (), Events::READ).unwrap();
    let err = io_loop
        .add_handler(&a, |_, _| (), Events::WRITE)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    let err = io_loop
        .add_edge_handler(&a, |_, _| (), Events::READ)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    assert_eq!(io_loop.handler_count(), 1);

    // Unknown fd.
    let err = io_loop.update_handler(&b, Events::READ).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    assert!(!io_loop.remove_handler(&b));

    // Removed: unknown again; removing twice is harmless.
    assert!(io_loop.remove_handler(&a));
    assert!(!io_loop.remove_handler(&a));
    let err = io_loop.update_handler(&a, Events::READ).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    assert_eq!(io_loop.handler_count(), 0);

    // A refused registration (epoll does not watch regular files) leaves nothing behind.
    let file = std::fs::File::open("/proc/self/status").unwrap();
    let err = io_loop
        .add_handler(&file, |_, _| (), Events::READ)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert_eq!(io_loop.handler_count(), 0);
    assert!(!io_loop.remove_handler(&file));

    // A closed loop.
    io_loop.close();
    let err = io_loop
        .add_handler(&a, |_, _| (), Events::READ)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
    let err = io_loop.update_handler(&a, Events::READ).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
}

#[test]
fn handler_errors_are_reported_and_it_stays_registered() {
    let (io_loop, _clock) = manual_loop();
    let (a, mut b) = socketpair();
    let calls = Rc::new(Cell::new(0));
    let (c, l) = (calls.clone(), io_loop.clone());
    let mut reader = a.try_clone().unwrap();
    io_loop
        .add_handler(
            &a,
            move |_, _| -> Result<(), Error> {
                c.set(c.get() + 1);
                let mut buf = [0u8; 1];
                reader.read_exact(&mut buf)?;
                if c.get() == 1 {
                    panic!("handler panics");
                }
                l.stop();
                Err(std::io::Error::other("handler fails").into())
            },
            Events::READ,
        )
        .unwrap();
    b.write_all(b"xy").unwrap();
    let (_, errors) = capture_unhandled(|| {
        guard(&io_loop, secs(60));
        io_loop.start().unwrap();
    });
    assert_eq!(calls.get(), 2);
    assert_eq!(kinds(&errors), [ErrorKind::Panic, ErrorKind::Io]);
    assert_eq!(io_loop.handler_count(), 1);
    io_loop.close();
}

// ----- remote ----------------------------------------------------------------

#[test]
fn remote_callbacks_from_8_threads_arrive_exactly_once_in_order() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 10_000;
    const TOTAL: usize = THREADS * PER_THREAD;

    struct Seen {
        counts: Vec<Vec<u8>>,
        next: Vec<usize>,
        out_of_order: usize,
        total: usize,
    }
    let seen = Arc::new(Mutex::new(Seen {
        counts: vec![vec![0; PER_THREAD]; THREADS],
        next: vec![0; THREADS],
        out_of_order: 0,
        total: 0,
    }));

    let io_loop = IOLoop::new().unwrap();
    let timed_out = guard(&io_loop, secs(20));
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let (remote, seen) = (io_loop.remote(), seen.clone());
            thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let seen = seen.clone();
                    remote
                        .add_callback(move || {
                            let mut s = seen.lock().unwrap();
                            s.counts[t][i] += 1;
                            if s.next[t] != i {
                                s.out_of_order += 1;
                            }
                            s.next[t] = i + 1;
                            s.total += 1;
                            if s.total == TOTAL {
                                IOLoop::current().stop();
                            }
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    io_loop.start().unwrap();
    for sender in senders {
        sender.join().unwrap();
    }
    assert!(!timed_out.get(), "not all remote callbacks arrived");
    let s = seen.lock().unwrap();
    assert_eq!(s.total, TOTAL);
    for (t, counts) in s.counts.iter().enumerate() {
        let wrong: Vec<_> = counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != 1)
            .collect();
        assert!(
            wrong.is_empty(),
            "thread {t}: (seq, count) {:?}",
            &wrong[..wrong.len().min(10)]
        );
    }
    assert_eq!(
        s.out_of_order, 0,
        "one thread's callbacks run in the order sent"
    );
    io_loop.close();
}

#[test]
fn remote_callback_wakes_a_loop_sleeping_in_a_long_poll() {
    let io_loop = IOLoop::new().unwrap();
    // The only pending timeout is an hour away: the loop sleeps in poll.
    io_loop.call_later(secs(3600), || panic!("an hour passed?"));
    // A watchdog that does not rely on the waker: if the remote callback never
    // runs, a write on this socket ends the test instead of hanging it.
    let (watch, mut poke) = socketpair();
    let watchdog_fired = Rc::new(Cell::new(false));
    let (w, l) = (watchdog_fired.clone(), io_loop.clone());
    io_loop
        .add_handler(
            &watch,
            move |_, _| {
                w.set(true);
                l.stop();
            },
            Events::READ,
        )
        .unwrap();

    let latency: Arc<Mutex<Option<Duration>>> = Arc::new(Mutex::new(None));
    let done = Arc::new(AtomicBool::new(false));
    let remote = io_loop.remote();
    let (lat, dn) = (latency.clone(), done.clone());
    let sender = thread::spawn(move || {
        // Give the loop time to go to sleep (not an assertion: the bound below
        // holds whether or not it is asleep by then).
        thread::sleep(ms(50));
        let sent = Instant::now();
        let d = dn.clone();
        remote
            .add_callback(move || {
                *lat.lock().unwrap() = Some(sent.elapsed());
                d.store(true, Ordering::SeqCst);
                IOLoop::current().stop();
            })
            .unwrap();
        for _ in 0..500 {
            if dn.load(Ordering::SeqCst) {
                return;
            }
            thread::sleep(ms(10));
        }
        poke.write_all(b"!").unwrap();
    });
    io_loop.start().unwrap();
    sender.join().unwrap();
    assert!(
        !watchdog_fired.get(),
        "the remote callback did not wake the loop"
    );
    let latency = latency.lock().unwrap().expect("remote callback ran");
    assert!(latency < ms(100), "woken after {latency:?}");
    io_loop.close();
}

/// Small closures travel inline in the channel, big ones boxed: both run,
/// panics in either are caught, and ones never run (the loop closed first)
/// still drop what they captured.
#[test]
fn remote_callbacks_small_and_big_run_panic_and_drop_cleanly() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let io_loop = IOLoop::new().unwrap();
    let remote = io_loop.remote();
    let ran = Arc::new(AtomicUsize::new(0));
    let (r1, r2) = (ran.clone(), ran.clone());
    let big = [7u8; 512];
    thread::spawn(move || {
        remote
            .add_callback(move || {
                r1.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        remote
            .add_callback(move || {
                r2.fetch_add(big.iter().map(|&b| b as usize).sum(), Ordering::SeqCst);
            })
            .unwrap();
        remote
            .add_callback(|| -> () { panic!("inline panic") })
            .unwrap();
        remote
            .add_callback(move || -> () {
                let _keep = big;
                panic!("boxed panic")
            })
            .unwrap();
        remote.stop().unwrap();
    })
    .join()
    .unwrap();
    let (_, errors) = squall::testing::capture_unhandled(|| io_loop.start().unwrap());
    assert_eq!(ran.load(Ordering::SeqCst), 1 + 7 * 512);
    assert_eq!(errors.len(), 2, "{errors:?}");
    // Queued but never run: captures dropped at close, small or big.
    let remote = io_loop.remote();
    let token = Arc::new(());
    let (t1, t2) = (token.clone(), token.clone());
    remote.add_callback(move || drop(t1)).unwrap();
    remote
        .add_callback(move || {
            let _keep = (t2, [0u8; 256]);
        })
        .unwrap();
    assert_eq!(Arc::strong_count(&token), 3);
    io_loop.close();
    drop(remote);
    assert_eq!(Arc::strong_count(&token), 1);
}

#[test]
fn remote_stop_stops_the_loop() {
    let io_loop = IOLoop::new().unwrap();
    let timed_out = guard(&io_loop, secs(20));
    let remote = io_loop.remote();
    let sender = thread::spawn(move || remote.stop().unwrap());
    io_loop.start().unwrap();
    sender.join().unwrap();
    assert!(!timed_out.get());
    io_loop.close();
}

#[test]
fn remote_add_callback_racing_close_never_crashes_and_then_reports_closed() {
    const SENDERS: usize = 4;
    for round in 0..30 {
        let io_loop = IOLoop::new().unwrap();
        let remote = io_loop.remote();
        let received = Arc::new(AtomicUsize::new(0));
        let go = Arc::new(AtomicBool::new(false));
        let senders: Vec<_> = (0..SENDERS)
            .map(|_| {
                let (remote, received, go) = (remote.clone(), received.clone(), go.clone());
                thread::spawn(move || {
                    while !go.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                    let mut sent = 0u64;
                    loop {
                        let r = received.clone();
                        match remote.add_callback(move || {
                            let n = r.fetch_add(1, Ordering::SeqCst) + 1;
                            if round % 3 == 0 && n == 200 {
                                // Close from inside a remote callback.
                                IOLoop::current().close();
                            }
                        }) {
                            Ok(()) => sent += 1,
                            Err(err) => return (err.kind(), sent),
                        }
                    }
                })
            })
            .collect();
        match round % 3 {
            0 => {}
            1 => {
                // Close from a callback, while the senders are going.
                let l = io_loop.clone();
                let r = received.clone();
                io_loop.call_later(ms(1), move || {
                    if r.load(Ordering::SeqCst) > 0 {
                        l.close();
                    } else {
                        let l2 = l.clone();
                        l.call_later(ms(1), move || l2.close());
                    }
                });
            }
            _ => {
                // Stop, then close outside `start` while senders keep sending.
                let l = io_loop.clone();
                io_loop.call_later(ms(1), move || l.stop());
            }
        }
        let timed_out = guard(&io_loop, secs(20));
        go.store(true, Ordering::Release);
        io_loop.start().unwrap();
        io_loop.close();
        for sender in senders {
            let (kind, _sent) = sender.join().unwrap();
            assert_eq!(kind, ErrorKind::Closed, "round {round}");
        }
        assert!(!timed_out.get(), "round {round}");
        assert!(io_loop.is_closed());
        assert!(remote.is_closed());
        let err = remote.add_callback(|| ()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Closed);
        assert_eq!(remote.stop().unwrap_err().kind(), ErrorKind::Closed);
    }
}

#[test]
fn remote_of_a_dropped_loop_reports_closed() {
    let remote = {
        let io_loop = IOLoop::new().unwrap();
        io_loop.remote()
    };
    let err = remote.add_callback(|| ()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
    assert!(
        remote.is_closed(),
        "the loop is gone: its remote should say so"
    );
}

// ----- errors in callbacks ---------------------------------------------------

#[test]
fn failing_callbacks_are_reported_and_the_loop_goes_on() {
    let (io_loop, _clock) = manual_loop();
    let after = Rc::new(Cell::new(false));
    let ((), errors) = capture_unhandled(|| {
        io_loop.add_callback(|| panic!("boom"));
        io_loop.add_callback(|| Err::<(), _>(Error::new(ErrorKind::Timeout, "late")));
        io_loop.call_later(secs(1), || Err::<(), _>("a timeout fails".into()));
        let l = io_loop.clone();
        io_loop.add_callback(move || {
            // Returns a future that fails later: reported then.
            let future = Future::<u32>::new();
            let f = future.clone();
            l.call_later(secs(2), move || {
                f.set_error(Error::new(ErrorKind::InvalidArgument, "bad"))
            });
            future
        });
        let l = io_loop.clone();
        // And one that succeeds later: not reported.
        io_loop.add_callback(move || {
            let future = Future::<u32>::new();
            let f = future.clone();
            l.call_later(secs(2), move || f.set_result(1));
            future
        });
        let (a, l) = (after.clone(), io_loop.clone());
        io_loop.call_later(secs(3), move || {
            a.set(true);
            l.stop();
        });
        io_loop.start().unwrap();
    });
    assert!(after.get(), "the loop kept running");
    assert_eq!(
        kinds(&errors),
        [
            ErrorKind::Panic,
            ErrorKind::Timeout,
            ErrorKind::Other,
            ErrorKind::InvalidArgument
        ]
    );
    assert_eq!(errors[0].message(), "boom");
    assert_eq!(errors[2].message(), "a timeout fails");
    io_loop.close();
}

#[test]
fn failing_remote_callback_is_reported() {
    let io_loop = IOLoop::new().unwrap();
    let ((), errors) = capture_unhandled(|| {
        let remote = io_loop.remote();
        thread::spawn(move || {
            remote
                .add_callback(|| Err::<(), _>(Error::new(ErrorKind::Timeout, "remote")))
                .unwrap();
            remote.add_callback(|| panic!("remote panic")).unwrap();
            remote.add_callback(|| IOLoop::current().stop()).unwrap();
        })
        .join()
        .unwrap();
        io_loop.start().unwrap();
    });
    assert_eq!(kinds(&errors), [ErrorKind::Timeout, ErrorKind::Panic]);
    io_loop.close();
}

#[test]
fn async_test_fails_on_unhandled_errors_and_try_run_returns_them() {
    let (result, unhandled) = AsyncTest::new()
        .clock(Clock::Manual(ManualClock::new()))
        .try_run(|io_loop| {
            io_loop.add_callback(|| Err::<(), _>(Error::new(ErrorKind::Timeout, "x")));
            let future = Future::new();
            let f = future.clone();
            io_loop.call_later(secs(1), move || f.set_result(5));
            future
        });
    assert_eq!(result.unwrap(), 5);
    assert_eq!(kinds(&unhandled), [ErrorKind::Timeout]);

    let outcome = std::panic::catch_unwind(|| {
        AsyncTest::new().run(|io_loop| {
            io_loop.add_callback(|| panic!("unhandled in a test"));
            let future = Future::new();
            let f = future.clone();
            io_loop.add_callback(move || f.set_result(()));
            future
        })
    });
    assert!(outcome.is_err(), "an unhandled error fails the test");

    // Timeout on the manual clock: instant, and reported as a failure.
    let (result, _) = AsyncTest::new()
        .clock(Clock::Manual(ManualClock::new()))
        .timeout(secs(30))
        .try_run(|_| Future::<()>::new());
    assert_eq!(result.unwrap_err().kind(), ErrorKind::Timeout);
}

// ----- running ---------------------------------------------------------------

#[test]
fn start_inside_a_running_loop_is_refused_and_the_loop_goes_on() {
    let (io_loop, _clock) = manual_loop();
    let nested: Rc<RefCell<Option<Result<(), Error>>>> = Rc::new(RefCell::new(None));
    let (n, l) = (nested.clone(), io_loop.clone());
    io_loop.add_callback(move || {
        *n.borrow_mut() = Some(l.start());
        assert!(l.is_running());
    });
    let after = Rc::new(Cell::new(false));
    let (a, l) = (after.clone(), io_loop.clone());
    io_loop.call_later(secs(1), move || {
        a.set(true);
        l.stop();
    });
    io_loop.start().unwrap();
    let nested = nested.borrow_mut().take().expect("nested start was called");
    assert_eq!(nested.unwrap_err().kind(), ErrorKind::InvalidState);
    assert!(after.get(), "the outer loop kept running");
    assert!(!io_loop.is_running());
    io_loop.close();
}

#[test]
fn stop_before_start_makes_start_return_at_once() {
    let io_loop = IOLoop::new().unwrap();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    io_loop.add_callback(move || r.set(true));
    io_loop.stop();
    io_loop.start().unwrap();
    assert!(!ran.get(), "start returned before running anything");
    // The stop was used up: the next start runs.
    let l = io_loop.clone();
    io_loop.add_callback(move || l.stop());
    io_loop.start().unwrap();
    assert!(ran.get());
    io_loop.close();
}

#[test]
fn is_running_during_start_only() {
    let io_loop = IOLoop::new().unwrap();
    assert!(!io_loop.is_running());
    let during = Rc::new(Cell::new(false));
    let (d, l) = (during.clone(), io_loop.clone());
    io_loop.add_callback(move || {
        d.set(l.is_running());
        l.stop();
    });
    io_loop.start().unwrap();
    assert!(during.get());
    assert!(!io_loop.is_running());
    io_loop.close();
}

#[test]
fn run_sync_returns_the_value_the_error_or_a_timeout() {
    let (io_loop, _clock) = manual_loop();
    let t0 = io_loop.time();

    let l = io_loop.clone();
    let value = io_loop.run_sync(
        move || {
            let future = Future::new();
            let f = future.clone();
            l.call_later(secs(1), move || f.set_result(42));
            future
        },
        Some(secs(10)),
    );
    assert_eq!(value.unwrap(), 42);
    assert_eq!(io_loop.time() - t0, secs(1));
    // The unused timeout was removed.
    assert_eq!(io_loop.timer_stats().pending, 0);

    let l = io_loop.clone();
    let err = io_loop
        .run_sync(
            move || {
                let future = Future::<u32>::new();
                let f = future.clone();
                l.call_later(secs(1), move || {
                    f.set_error(Error::new(ErrorKind::InvalidArgument, "no"))
                });
                future
            },
            None,
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);

    let before = io_loop.time();
    let err = io_loop
        .run_sync(Future::<u32>::new, Some(secs(5)))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(io_loop.time() - before, secs(5));

    // Done at once: no loop iteration needed, and no stop left behind.
    assert_eq!(
        io_loop.run_sync(|| Future::ready("now"), None).unwrap(),
        "now"
    );
    assert_eq!(
        io_loop
            .run_sync(|| Future::<()>::failed("failed".into()), None)
            .unwrap_err()
            .kind(),
        ErrorKind::Other
    );
    let l = io_loop.clone();
    let value = io_loop.run_sync(
        move || {
            let future = Future::new();
            let f = future.clone();
            l.add_callback(move || f.set_result(7));
            future
        },
        None,
    );
    assert_eq!(value.unwrap(), 7);

    // A panicking body.
    let err = io_loop
        .run_sync(|| -> Future<()> { panic!("body panics") }, None)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panic);
    io_loop.close();
}

#[test]
fn run_sync_makes_the_loop_current_and_refuses_a_running_or_closed_loop() {
    let (io_loop, _clock) = manual_loop();
    let l = io_loop.clone();
    let nested = io_loop
        .run_sync(
            move || {
                assert!(IOLoop::current().ptr_eq(&l));
                let future = Future::new();
                let (f, l2) = (future.clone(), l.clone());
                l.add_callback(move || {
                    let nested = l2.run_sync(|| Future::ready(1), None);
                    f.set_result(nested.map(|_| ()).map_err(|e| e.kind()))
                });
                future
            },
            None,
        )
        .unwrap();
    assert_eq!(nested, Err(ErrorKind::InvalidState));
    io_loop.close();
    let err = io_loop.run_sync(|| Future::ready(1), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
}

#[test]
fn run_sync_stopped_or_closed_before_the_future_is_done() {
    let (io_loop, _clock) = manual_loop();
    let l = io_loop.clone();
    let err = io_loop
        .run_sync(
            move || {
                let l2 = l.clone();
                l.call_later(secs(1), move || l2.stop());
                Future::<u8>::new()
            },
            None,
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    // Usable again afterwards.
    assert_eq!(io_loop.run_sync(|| Future::ready(2), None).unwrap(), 2);

    let l = io_loop.clone();
    let err = io_loop
        .run_sync(
            move || {
                let l2 = l.clone();
                l.call_later(secs(1), move || l2.close());
                Future::<u8>::new()
            },
            Some(secs(10)),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
}

#[test]
fn current_make_current_try_current() {
    // A fresh thread, so no other test's loop is current.
    thread::spawn(|| {
        assert!(IOLoop::try_current().is_none());
        let a = IOLoop::current();
        assert!(IOLoop::try_current()
            .expect("current() made one")
            .ptr_eq(&a));
        assert!(IOLoop::current().ptr_eq(&a), "current() creates only once");

        let b = IOLoop::new().unwrap();
        assert!(!b.ptr_eq(&a));
        let during = Rc::new(Cell::new(false));
        let (d, b2) = (during.clone(), b.clone());
        b.add_callback(move || {
            d.set(IOLoop::current().ptr_eq(&b2) && IOLoop::try_current().unwrap().ptr_eq(&b2));
            b2.stop();
        });
        b.start().unwrap();
        assert!(during.get(), "start() makes the loop current while it runs");
        assert!(
            IOLoop::current().ptr_eq(&a),
            "and restores the previous one"
        );

        b.make_current();
        assert!(IOLoop::try_current().unwrap().ptr_eq(&b));
        IOLoop::clear_current();
        assert!(IOLoop::try_current().is_none());

        // With no current loop, start() leaves none behind.
        let b2 = b.clone();
        b.add_callback(move || b2.stop());
        b.start().unwrap();
        assert!(IOLoop::try_current().is_none());
        a.close();
        b.close();
    })
    .join()
    .unwrap();
}

#[test]
fn closed_loop_refuses_work_and_releases_it() {
    let io_loop = IOLoop::new().unwrap();
    let (flag, callback_dropped) = drop_flag();
    io_loop.add_callback(move || drop(flag));
    let (flag, timeout_dropped) = drop_flag();
    io_loop.call_later(secs(1), move || drop(flag));
    io_loop.close();
    assert!(io_loop.is_closed());
    assert!(callback_dropped.get() && timeout_dropped.get());
    io_loop.close(); // twice is harmless
    assert_eq!(io_loop.start().unwrap_err().kind(), ErrorKind::Closed);

    // Work handed to a closed loop is dropped at once, not kept forever (a
    // closure holding the loop would otherwise keep it alive).
    let (flag, dropped) = drop_flag();
    io_loop.add_callback(move || drop(flag));
    assert!(dropped.get());
    let (flag, dropped) = drop_flag();
    let handle = io_loop.call_later(secs(1), move || drop(flag));
    assert!(dropped.get(), "a timeout added to a closed loop is dropped");
    assert!(!io_loop.remove_timeout(handle));
    assert_eq!(io_loop.timer_stats().pending, 0);
}

#[test]
fn close_from_a_callback_ends_start() {
    let io_loop = IOLoop::new().unwrap();
    let (a, _b) = socketpair();
    io_loop.add_handler(&a, |_, _| (), Events::READ).unwrap();
    let l = io_loop.clone();
    io_loop.add_callback(move || l.close());
    let (flag, dropped) = drop_flag();
    io_loop.call_later(secs(3600), move || drop(flag));
    io_loop.start().unwrap();
    assert!(io_loop.is_closed());
    assert!(dropped.get());
    assert_eq!(io_loop.handler_count(), 0);
}

#[test]
fn close_from_a_callback_drops_the_rest_of_its_batch() {
    let io_loop = IOLoop::new().unwrap();
    let l = io_loop.clone();
    io_loop.add_callback(move || l.close());
    let ran = Rc::new(Cell::new(false));
    let (flag, dropped) = drop_flag();
    let r = ran.clone();
    io_loop.add_callback(move || {
        r.set(true);
        drop(flag);
    });
    io_loop.start().unwrap();
    assert!(io_loop.is_closed());
    assert!(!ran.get(), "a callback ran on a closed loop");
    assert!(dropped.get());
}

#[test]
fn manual_clock_does_not_jump_while_a_remote_callback_waits() {
    let (io_loop, _clock) = manual_loop();
    let t0 = io_loop.time();
    let seen_at: Arc<Mutex<Option<Duration>>> = Arc::new(Mutex::new(None));
    let remote = io_loop.remote();
    let seen = seen_at.clone();
    io_loop.call_later(secs(1), move || {
        // The message is in the channel before the loop next polls, with
        // no local callback queued and the next deadline an hour away.
        thread::spawn(move || {
            remote
                .add_callback(move || {
                    *seen.lock().unwrap() = Some(IOLoop::current().time() - t0);
                })
                .unwrap();
        })
        .join()
        .unwrap();
    });
    let timed_out = guard(&io_loop, secs(3600));
    io_loop.start().unwrap();
    assert!(timed_out.get());
    assert_eq!(*seen_at.lock().unwrap(), Some(secs(1)));
    io_loop.close();
}

#[test]
fn huge_delays_mean_never_not_a_panic() {
    let (io_loop, _clock) = manual_loop();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let handle = io_loop.call_later(Duration::MAX, move || r.set(true));
    let r = ran.clone();
    io_loop.add_timeout(Duration::MAX, move || r.set(true));
    let c = ran.clone();
    let pc = PeriodicCallback::new(move || c.set(true), Duration::MAX).unwrap();
    let p = pc.clone();
    io_loop.add_callback(move || p.start());
    guard(&io_loop, secs(10 * 365 * 86400));
    io_loop.start().unwrap();
    assert!(!ran.get());
    assert!(io_loop.remove_timeout(handle));
    pc.stop();
    io_loop.close();
}

// ----- PeriodicCallback -------------------------------------------------------

/// Tornado's `test_overrun`: a call that runs long skips whole periods to get
/// back on the original schedule.
#[test]
fn periodic_callback_skips_whole_periods_after_overruns() {
    const DURATIONS: [u64; 10] = [9, 9, 10, 11, 20, 20, 35, 35, 0, 0];
    let (io_loop, clock) = manual_loop();
    let t0 = io_loop.time();
    let times = Log::new();
    let (t, l) = (times.clone(), io_loop.clone());
    let pc = PeriodicCallback::new(
        move || {
            let i = t.len();
            t.push((l.time() - t0).as_secs());
            match DURATIONS.get(i) {
                Some(d) => clock.advance(secs(*d)),
                None => l.stop(),
            }
        },
        secs(10),
    )
    .unwrap();
    let p = pc.clone();
    // Started inside the loop, where it is the current loop.
    io_loop.add_callback(move || p.start());
    let timed_out = guard(&io_loop, secs(10_000));
    io_loop.start().unwrap();
    assert!(!timed_out.get());
    assert_eq!(
        times.get(),
        [10, 20, 30, 50, 70, 100, 130, 170, 210, 220, 230]
    );
    pc.stop();
    assert_eq!(io_loop.timer_stats().pending, 1, "only the guard is left");
    io_loop.close();
}

#[test]
fn periodic_callback_skips_missed_runs_after_a_blocking_call() {
    let (io_loop, clock) = manual_loop();
    let t0 = io_loop.time();
    let times = Log::new();
    let (t, l) = (times.clone(), io_loop.clone());
    let pc = PeriodicCallback::new(
        move || {
            t.push((l.time() - t0).as_millis() as u64);
            if t.len() == 1 {
                clock.advance(ms(35_000)); // blocks for 3.5 periods
            }
        },
        secs(10),
    )
    .unwrap();
    let p = pc.clone();
    io_loop.add_callback(move || p.start());
    guard(&io_loop, secs(65));
    io_loop.start().unwrap();
    // No burst of the runs due at 20, 30 and 40 s.
    assert_eq!(times.get(), [10_000, 50_000, 60_000]);
    pc.stop();
    io_loop.close();
}

#[test]
fn periodic_callback_on_the_real_clock_is_never_early_and_keeps_pace() {
    const PERIOD: Duration = Duration::from_millis(10);
    const RUNS: usize = 10;
    let io_loop = IOLoop::new().unwrap();
    let times = Log::new();
    let started = Rc::new(Cell::new(None::<Instant>));
    let (t, s, l) = (times.clone(), started.clone(), io_loop.clone());
    let pc = PeriodicCallback::new(
        move || {
            t.push(l.time() - s.get().unwrap());
            if t.len() == RUNS {
                l.stop();
            }
        },
        PERIOD,
    )
    .unwrap();
    let (p, s, l) = (pc.clone(), started.clone(), io_loop.clone());
    io_loop.add_callback(move || {
        s.set(Some(l.time()));
        p.start();
    });
    let timed_out = guard(&io_loop, secs(10));
    io_loop.start().unwrap();
    pc.stop();
    assert!(!timed_out.get());
    let times = times.get();
    assert_eq!(times.len(), RUNS);
    for (k, at) in times.iter().enumerate() {
        // Run k is due at (k + 1) periods at the earliest (later if runs were skipped).
        assert!(*at >= PERIOD * (k as u32 + 1), "run {k} early: {times:?}");
    }
    // Loose: ten 10 ms periods take well under a second, even on a busy box.
    assert!(times[RUNS - 1] < secs(2), "{times:?}");
    io_loop.close();
}

#[test]
fn periodic_callback_zero_period_is_invalid() {
    let err = PeriodicCallback::new(|| (), Duration::ZERO).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let pc = PeriodicCallback::new(|| (), ms(1)).unwrap();
    assert_eq!(pc.period(), ms(1));
}

#[test]
fn periodic_callback_stopped_inside_its_callback() {
    let (io_loop, _clock) = manual_loop();
    let count = Rc::new(Cell::new(0));
    let me: Rc<RefCell<Option<PeriodicCallback>>> = Rc::new(RefCell::new(None));
    let (c, m) = (count.clone(), me.clone());
    let pc = PeriodicCallback::new(
        move || {
            c.set(c.get() + 1);
            if c.get() == 3 {
                let pc = m.borrow_mut().take().unwrap();
                pc.stop();
                assert!(!pc.is_running());
            }
        },
        secs(1),
    )
    .unwrap();
    *me.borrow_mut() = Some(pc.clone());
    let p = pc.clone();
    io_loop.add_callback(move || p.start());
    guard(&io_loop, secs(100));
    io_loop.start().unwrap();
    assert_eq!(count.get(), 3);
    assert!(!pc.is_running());
    assert_eq!(io_loop.timer_stats().pending, 0);
    io_loop.close();
}

#[test]
fn periodic_callback_start_stop_is_running() {
    let (io_loop, _clock) = manual_loop();
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    let pc = PeriodicCallback::new(move || c.set(c.get() + 1), secs(10)).unwrap();
    assert!(!pc.is_running());
    let snapshots = Log::new();

    let p = pc.clone();
    io_loop.add_callback(move || {
        p.start();
        p.start(); // no-op: not scheduled twice
        assert!(p.is_running());
    });
    let (p, s, c) = (pc.clone(), snapshots.clone(), count.clone());
    io_loop.call_later(secs(25), move || {
        s.push(c.get()); // runs at 10, 20
        p.stop();
        p.stop(); // harmless
        assert!(!p.is_running());
    });
    let (p, s, c) = (pc.clone(), snapshots.clone(), count.clone());
    io_loop.call_later(secs(50), move || {
        s.push(c.get()); // none while stopped
        p.start(); // next runs at 60, 70
    });
    let (p, s, c, l) = (
        pc.clone(),
        snapshots.clone(),
        count.clone(),
        io_loop.clone(),
    );
    io_loop.call_later(secs(75), move || {
        s.push(c.get());
        p.stop();
        l.stop();
    });
    io_loop.start().unwrap();
    assert_eq!(snapshots.get(), [2, 2, 4]);
    assert!(!pc.is_running());
    assert_eq!(io_loop.timer_stats().pending, 0);
    io_loop.close();
}

#[test]
fn periodic_callback_errors_are_reported_and_it_goes_on() {
    let (io_loop, _clock) = manual_loop();
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    let pc = PeriodicCallback::new(
        move || -> Result<(), Error> {
            c.set(c.get() + 1);
            if c.get() == 2 {
                panic!("second run panics");
            }
            Err(Error::new(ErrorKind::Timeout, "run failed"))
        },
        secs(1),
    )
    .unwrap();
    let p = pc.clone();
    io_loop.add_callback(move || p.start());
    let ((), errors) = capture_unhandled(|| {
        guard(&io_loop, ms(3500));
        io_loop.start().unwrap();
    });
    pc.stop();
    assert_eq!(count.get(), 3);
    assert_eq!(
        kinds(&errors),
        [ErrorKind::Timeout, ErrorKind::Panic, ErrorKind::Timeout]
    );
    io_loop.close();
}

// ----- futures on the loop ---------------------------------------------------

#[test]
fn add_future_runs_on_the_next_iteration() {
    let (io_loop, _clock) = manual_loop();
    let log = Log::new();
    let future = Future::<u32>::new();
    let lg = log.clone();
    io_loop.add_future(&future, move |f: &Future<u32>| {
        lg.push(format!("add_future: {:?}", f.result()))
    });
    let (lg, l, f) = (log.clone(), io_loop.clone(), future.clone());
    io_loop.add_callback(move || {
        let lg2 = lg.clone();
        // Queued before the future completes: runs before the add_future callback.
        l.add_callback(move || lg2.push("queued earlier".to_owned()));
        f.set_result(9);
        lg.push("set_result returned".to_owned());
    });
    let lg = log.clone();
    io_loop.add_callback(move || lg.push("same iteration".to_owned()));
    guard(&io_loop, secs(1));
    io_loop.start().unwrap();
    assert_eq!(
        log.get(),
        [
            "set_result returned",
            "same iteration",
            "queued earlier",
            "add_future: Ok(9)"
        ]
    );
    io_loop.close();
}

#[test]
fn add_future_on_a_done_future_and_a_failed_one() {
    let (io_loop, _clock) = manual_loop();
    let log = Log::new();
    let lg = log.clone();
    io_loop.add_future(&Future::ready(1u8), move |f: &Future<u8>| {
        lg.push(f.result().map_err(|e| e.kind()))
    });
    assert!(log.is_empty(), "not called synchronously");
    let lg = log.clone();
    io_loop.add_future(
        &Future::<u8>::failed(Error::new(ErrorKind::Timeout, "t")),
        move |f: &Future<u8>| lg.push(f.result().map_err(|e| e.kind())),
    );
    guard(&io_loop, secs(1));
    io_loop.start().unwrap();
    assert_eq!(log.get(), [Ok(1), Err(ErrorKind::Timeout)]);
    io_loop.close();
}

/// With the blocking log on, the loop times its timers from the log's clock
/// readings; a slow typed-channel handler (which the log does not time) must
/// not leave that reading stale and make a timer that fell due meanwhile
/// wait on top of it.
#[test]
fn a_timer_due_during_a_slow_channel_handler_runs_right_after_it() {
    let io_loop = IOLoop::new().unwrap();
    io_loop.set_blocking_log_threshold(Some(Duration::from_secs(10)));
    let t0 = Instant::now();
    let fired = Rc::new(Cell::new(None));
    let (f, l) = (fired.clone(), io_loop.clone());
    io_loop.call_later(Duration::from_millis(200), move || {
        f.set(Some(t0.elapsed()));
        l.stop();
    });
    let sender = io_loop.remote_channel(|()| std::thread::sleep(Duration::from_millis(300)));
    // A timed callback first, in the same iteration as the channel's drain.
    io_loop.add_callback(|| {});
    sender.send(()).unwrap();
    io_loop.start().unwrap();
    let fired = fired.get().expect("the timer ran");
    // Right after the 300 ms handler, not 200 ms of stale wait later.
    assert!(fired < Duration::from_millis(450), "{fired:?}");
}

/// Stops `io_loop` from another thread after `limit`, so a test of a timer
/// that fails to fire ends instead of hanging.
fn watchdog(io_loop: &IOLoop, limit: Duration) {
    let remote = io_loop.remote();
    thread::spawn(move || {
        thread::sleep(limit);
        let _ = remote.stop();
    });
}

/// A timeout meaning "never" (`Duration::MAX`), added first, must not hold
/// back the nearer ones added after it.
#[test]
fn a_never_timeout_added_first_does_not_hold_back_later_ones() {
    let io_loop = IOLoop::new().unwrap();
    io_loop.call_later(Duration::MAX, || -> () { panic!("never") });
    let fired = Rc::new(Cell::new(false));
    let (f, l) = (fired.clone(), io_loop.clone());
    io_loop.call_later(Duration::from_millis(10), move || {
        f.set(true);
        l.stop();
    });
    watchdog(&io_loop, Duration::from_secs(5));
    io_loop.start().unwrap();
    assert!(fired.get(), "the 10 ms timeout did not run within 5 s");
}

/// Turning the blocking log off while the loop spins on callbacks (no fd
/// handler, so no poll) must not freeze the loop's idea of the time.
#[test]
fn timers_run_after_the_blocking_log_is_turned_off_mid_run() {
    let io_loop = IOLoop::new().unwrap();
    io_loop.set_blocking_log_threshold(Some(Duration::from_secs(10)));
    // A callback that re-adds itself: the loop never polls.
    fn spin(l: IOLoop) {
        let next = l.clone();
        l.add_callback(move || spin(next));
    }
    spin(io_loop.clone());
    let l = io_loop.clone();
    io_loop.call_later(Duration::from_millis(5), move || {
        l.set_blocking_log_threshold(None)
    });
    let fired = Rc::new(Cell::new(false));
    let (f, l) = (fired.clone(), io_loop.clone());
    io_loop.call_later(Duration::from_millis(30), move || {
        f.set(true);
        l.stop();
    });
    watchdog(&io_loop, Duration::from_secs(5));
    io_loop.start().unwrap();
    assert!(fired.get(), "the 30 ms timeout did not run within 5 s");
}

/// A handler whose destructor calls back into the loop (here: closes it)
/// is dropped with no loop borrow held, also when epoll refuses its fd
/// (a regular file): no "already borrowed" panic.
#[test]
fn a_refused_handler_is_dropped_with_no_borrow_held() {
    struct ClosesOnDrop(IOLoop);
    impl Drop for ClosesOnDrop {
        fn drop(&mut self) {
            self.0.close();
        }
    }
    let io_loop = IOLoop::new().unwrap();
    let file = std::fs::File::open("/proc/self/status").unwrap();
    let guard = ClosesOnDrop(io_loop.clone());
    let err = io_loop
        .add_handler(
            &file,
            move |_, _| {
                let _ = &guard;
            },
            Events::READ,
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert!(io_loop.is_closed());
}

// ----- which loop: the implicit current loop -------------------------------

/// A stream made before any loop runs lands on the implicit loop that
/// `IOLoop::current()` makes; running another loop would leave it waiting
/// for good (a `run_sync` ending in a timeout). Refused at once instead,
/// with a message that says what happened and what to do.
#[test]
fn running_another_loop_while_the_implicit_one_holds_work_is_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let pending = squall::IOStream::connect(addr);
    let io_loop = IOLoop::new().unwrap();
    let started = std::time::Instant::now();
    let p = pending.clone();
    let err = io_loop
        .run_sync(move || p, Some(Duration::from_secs(2)))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
    assert!(err.message().contains("implicitly"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(io_loop.start().unwrap_err().kind(), ErrorKind::InvalidState);

    // The implicit loop itself runs its work, Tornado's way.
    let stream = IOLoop::current()
        .run_sync(move || pending, Some(Duration::from_secs(5)))
        .unwrap();
    // Closed, it leaves the implicit loop with nothing to strand. Made
    // inside run_sync, a stream is on the loop that runs.
    stream.close();
    let stream = io_loop
        .run_sync(
            move || squall::IOStream::connect(addr),
            Some(Duration::from_secs(5)),
        )
        .unwrap();
    drop(stream);
}

#[test]
fn an_implicit_loop_without_work_or_an_explicit_current_loop_does_not_stop_another() {
    // Asked for, and holding nothing: nothing would be stranded.
    let implicit = IOLoop::current();
    let io_loop = IOLoop::new().unwrap();
    assert_eq!(io_loop.run_sync(|| Future::ready(1), None).unwrap(), 1);
    drop(implicit);

    // A loop made current on purpose may hold work for later.
    let later = IOLoop::new().unwrap();
    later.make_current();
    later.add_callback(|| ());
    let other = IOLoop::new().unwrap();
    assert_eq!(other.run_sync(|| Future::ready(2), None).unwrap(), 2);
    IOLoop::clear_current();

    // make_current first: objects made afterwards are on that loop.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let io_loop = IOLoop::new().unwrap();
    io_loop.make_current();
    let pending = squall::IOStream::connect(listener.local_addr().unwrap());
    assert!(io_loop
        .run_sync(move || pending, Some(Duration::from_secs(5)))
        .is_ok());
    IOLoop::clear_current();
}
