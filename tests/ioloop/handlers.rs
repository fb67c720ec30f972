//! File-descriptor handlers: readiness, level and edge triggering, removal
//! and update (also mid-batch), stale events on a reused fd, registration
//! errors, and errors in a handler.

use super::*;

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
