//! `IOStream`'s low-level API: the read hook, `write_from`, `flushed`.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use squall::testing::AsyncTest;
use squall::{ErrorKind, Future, IOLoop, IOStream};

#[test]
fn hook_sees_bytes_in_place_keeps_the_unconsumed_and_resumes() {
    AsyncTest::new().run(|io_loop: &IOLoop| {
        let (a, mut peer) = UnixStream::pair().unwrap();
        let stream = IOStream::new(a).unwrap();
        let seen: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
        let take = Rc::new(std::cell::Cell::new(false));
        let (s, t) = (seen.clone(), take.clone());
        stream
            .set_read_hook(move |buf: &[u8], _eof| {
                s.borrow_mut().push(buf.to_vec());
                if t.get() {
                    buf.len()
                } else {
                    // Consume up to the first newline only.
                    buf.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1)
                }
            })
            .unwrap();
        // A future read is refused while the hook is set.
        let refused = stream.read_bytes(1);
        assert_eq!(refused.error().unwrap().kind(), ErrorKind::InvalidState);
        peer.write_all(b"one\ntwo").unwrap();
        let done = Future::new();
        let (d, st, seen2) = (done.clone(), stream.clone(), seen.clone());
        io_loop.call_later(Duration::from_millis(50), move || {
            assert_eq!(*seen2.borrow(), [b"one\ntwo".to_vec()]);
            assert_eq!(st.buffered(), 3);
            // Now consume everything, without new data: resume runs it.
            take.set(true);
            st.resume_read_hook();
            assert_eq!(seen2.borrow().last().unwrap(), b"two");
            assert_eq!(st.buffered(), 0);
            // write_from empties the vector and keeps its capacity.
            let mut out = Vec::with_capacity(64);
            out.extend_from_slice(b"reply");
            st.write_from(&mut out).unwrap();
            assert!(out.is_empty() && out.capacity() >= 64);
            let mut got = [0u8; 5];
            peer.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"reply");
            assert!(st.flushed().done());
            // Clearing the hook gives the buffer back to future reads.
            st.clear_read_hook();
            peer.write_all(b"line\n").unwrap();
            let read = st.read_until(b"\n");
            read.add_done_callback(move |f: &Future<Vec<u8>>| {
                assert_eq!(f.result().unwrap(), b"line\n");
                d.try_set_result(());
            });
        });
        done
    });
}

#[test]
fn hook_hears_eof_then_the_stream_closes_and_drops_it() {
    AsyncTest::new().run(|_io_loop: &IOLoop| {
        let (a, mut peer) = UnixStream::pair().unwrap();
        let stream = IOStream::new(a).unwrap();
        let done = Future::new();
        let d = done.clone();
        let held = Rc::new(());
        let h = held.clone();
        let weak = Rc::downgrade(&held);
        drop(held);
        stream
            .set_read_hook(move |buf: &[u8], eof| {
                let _keep = &h;
                if eof {
                    assert_eq!(buf, b"last words");
                    d.try_set_result(());
                }
                0
            })
            .unwrap();
        peer.write_all(b"last words").unwrap();
        drop(peer);
        let s = stream.clone();
        done.add_done_callback(move |_: &Future<()>| {
            // The loop finishes closing after this iteration.
            IOLoop::current().add_callback(move || {
                assert!(s.closed());
                assert!(weak.upgrade().is_none(), "the hook is dropped on close");
            });
        });
        let finished = Future::new();
        let f = finished.clone();
        IOLoop::current().call_later(Duration::from_millis(50), move || f.set_result(()));
        finished
    });
}

#[test]
fn a_panicking_hook_closes_the_stream() {
    AsyncTest::new()
        .allow_unhandled_errors()
        .run(|io_loop: &IOLoop| {
            let (a, mut peer) = UnixStream::pair().unwrap();
            let stream = IOStream::new(a).unwrap();
            stream
                .set_read_hook(|_buf: &[u8], _eof| -> usize { panic!("hook bug") })
                .unwrap();
            peer.write_all(b"x").unwrap();
            let done = Future::new();
            let (d, s) = (done.clone(), stream.clone());
            io_loop.call_later(Duration::from_millis(50), move || {
                assert!(s.closed());
                assert_eq!(s.error().unwrap().kind(), ErrorKind::Panic);
                d.set_result(())
            });
            done
        });
}

/// A hook that consumes everything behind a small buffer cap still gets
/// every byte of a peer that fills the socket first: reading stops at the
/// full buffer, and no new edge comes for the bytes left in the socket (the
/// peer is blocked on a full window), so the stream must read on by itself.
#[test]
fn hook_behind_a_full_buffer_reads_on_without_a_new_edge() {
    AsyncTest::new().run(|_io_loop: &IOLoop| {
        let (a, mut peer) = UnixStream::pair().unwrap();
        let stream = IOStream::new(a).unwrap();
        stream.set_max_buffer_size(4096);
        const TOTAL: usize = 4 << 20;
        let writer = std::thread::spawn(move || {
            // Blocks on the full socket until the stream reads.
            peer.write_all(&vec![7u8; TOTAL]).unwrap();
            peer
        });
        let done = Future::new();
        let (d, count) = (done.clone(), Rc::new(std::cell::Cell::new(0usize)));
        stream
            .set_read_hook(move |buf: &[u8], _eof| {
                // The cap is checked before each read, so one read may pass it.
                assert!(buf.len() <= 4096 + 64 * 1024 && buf.iter().all(|&b| b == 7));
                count.set(count.get() + buf.len());
                if count.get() == TOTAL {
                    d.try_set_result(());
                }
                buf.len()
            })
            .unwrap();
        *WRITER.lock().unwrap() = Some(writer);
        done
    });
    let writer = WRITER.lock().unwrap().take().unwrap();
    writer.join().unwrap();
}

static WRITER: std::sync::Mutex<Option<std::thread::JoinHandle<UnixStream>>> =
    std::sync::Mutex::new(None);

/// A hook run by `set_read_hook` or `resume_read_hook` (not by the loop)
/// that panics closes the stream as one run by the loop does, and the call
/// returns normally: the panic is caught at the stream, not in the caller.
#[test]
fn a_hook_panicking_under_set_or_resume_closes_the_stream_and_returns() {
    AsyncTest::new()
        .allow_unhandled_errors()
        .run(|io_loop: &IOLoop| {
            // Under set_read_hook: bytes are already buffered in the socket.
            let (a, mut peer) = UnixStream::pair().unwrap();
            peer.write_all(b"x").unwrap();
            let first = IOStream::new(a).unwrap();
            first
                .set_read_hook(|_buf: &[u8], _eof| -> usize { panic!("hook bug") })
                .unwrap();
            assert!(first.closed());
            assert_eq!(first.error().unwrap().kind(), ErrorKind::Panic);

            // Under resume_read_hook: the first run declines the bytes, the
            // resumed one panics.
            let (b, mut peer2) = UnixStream::pair().unwrap();
            let second = IOStream::new(b).unwrap();
            let calls = Rc::new(std::cell::Cell::new(0));
            let c = calls.clone();
            second
                .set_read_hook(move |_buf: &[u8], _eof| -> usize {
                    c.set(c.get() + 1);
                    if c.get() > 1 {
                        panic!("resumed hook bug");
                    }
                    0
                })
                .unwrap();
            peer2.write_all(b"y").unwrap();
            let done = Future::new();
            let (d, s) = (done.clone(), second.clone());
            io_loop.call_later(Duration::from_millis(50), move || {
                assert_eq!(calls.get(), 1, "the bytes were declined once");
                s.resume_read_hook();
                assert!(s.closed());
                assert_eq!(s.error().unwrap().kind(), ErrorKind::Panic);
                drop((peer, peer2));
                d.set_result(())
            });
            done
        });
}

/// The hook's usual edge (nothing buffered, one short read) and the cases
/// it hands on: a burst larger than a read chunk is read on to its end
/// with no second edge (none would come), a short read the hook leaves a
/// part of keeps that part for the next edge, and bytes arriving with the
/// peer's end reach the hook with `eof`.
#[test]
fn hook_reads_a_burst_whole_keeps_a_leftover_and_hears_data_with_the_end() {
    AsyncTest::new().run(|io_loop: &IOLoop| {
        let (a, peer) = UnixStream::pair().unwrap();
        let peer = Rc::new(RefCell::new(Some(peer)));
        let stream = IOStream::new(a).unwrap();
        // Everything the hook consumed, and whether it heard the end.
        let got: Rc<RefCell<Vec<u8>>> = Rc::default();
        let ended = Rc::new(std::cell::Cell::new(false));
        let (g, e) = (got.clone(), ended.clone());
        stream
            .set_read_hook(move |buf: &[u8], eof| {
                if eof {
                    e.set(true);
                }
                // Whole lines only (all of it at the end).
                let used = match buf.iter().rposition(|&b| b == b'\n') {
                    _ if eof => buf.len(),
                    Some(i) => i + 1,
                    None => 0,
                };
                g.borrow_mut().extend_from_slice(&buf[..used]);
                used
            })
            .unwrap();
        let burst: Vec<u8> = (0..20_000u32)
            .map(|i| {
                if i % 100 == 99 {
                    b'\n'
                } else {
                    b'a' + (i % 26) as u8
                }
            })
            .collect();
        let done = Future::new();
        let (d, p, g2, e2) = (done.clone(), peer.clone(), got.clone(), ended.clone());
        let burst2 = burst.clone();
        let l = io_loop.clone();
        // The hook is installed and idle: each write below is a new edge.
        io_loop.call_later(Duration::from_millis(20), move || {
            p.borrow_mut().as_mut().unwrap().write_all(&burst2).unwrap();
            let (p, g, e) = (p.clone(), g2.clone(), e2.clone());
            l.clone().call_later(Duration::from_millis(50), move || {
                assert_eq!(g.borrow().len(), 20_000, "the burst read to its end");
                assert_eq!(*g.borrow(), burst2);
                // A line in two short reads: the first part waits.
                p.borrow_mut()
                    .as_mut()
                    .unwrap()
                    .write_all(b"half a ")
                    .unwrap();
                let (p, g, e) = (p.clone(), g.clone(), e.clone());
                l.clone().call_later(Duration::from_millis(30), move || {
                    assert_eq!(g.borrow().len(), 20_000, "no whole line yet");
                    p.borrow_mut()
                        .as_mut()
                        .unwrap()
                        .write_all(b"line\n")
                        .unwrap();
                    let (p, g, e) = (p.clone(), g.clone(), e.clone());
                    l.clone().call_later(Duration::from_millis(30), move || {
                        assert!(g.borrow().ends_with(b"half a line\n"));
                        assert!(!e.get());
                        // Data and the end together.
                        let mut peer = p.borrow_mut().take().unwrap();
                        peer.write_all(b"last, unfinished").unwrap();
                        drop(peer);
                        let (g, e) = (g.clone(), e.clone());
                        l.call_later(Duration::from_millis(30), move || {
                            assert!(e.get(), "the end heard");
                            assert!(g.borrow().ends_with(b"line\nlast, unfinished"));
                            d.set_result(());
                        });
                    });
                });
            });
        });
        done
    });
}

/// On the usual path (one short read, handed to the hook in the loop's
/// spare region): a hook that consumes part, clears itself and starts a
/// future read there gets the rest through that read, and a hook that
/// leaves a partial message sees it again with the next bytes.
#[test]
fn hook_on_the_usual_path_hands_leftovers_on() {
    AsyncTest::new().run(|io_loop: &IOLoop| {
        let (a, peer) = UnixStream::pair().unwrap();
        let stream = IOStream::new(a).unwrap();
        let seen: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
        let done = Future::new();
        let (s, st, d) = (seen.clone(), stream.clone(), done.clone());
        stream
            .set_read_hook(move |buf: &[u8], _eof| {
                s.borrow_mut().push(buf.to_vec());
                match buf.iter().position(|&b| b == b'\n') {
                    // No whole line yet: keep it all.
                    None => 0,
                    Some(i) if &buf[..i] == b"handover" => {
                        st.clear_read_hook();
                        let d = d.clone();
                        st.read_until(b"\n")
                            .add_done_callback(move |f: &Future<Vec<u8>>| {
                                d.try_set_result(f.result().unwrap());
                            });
                        i + 1
                    }
                    Some(i) => i + 1,
                }
            })
            .unwrap();
        // Each write is an edge of its own (the loop reads between them).
        let steps: Vec<&'static [u8]> = vec![b"first\n", b"par", b"tial\n", b"handover\nrest\n"];
        let steps = Rc::new(RefCell::new(steps.into_iter()));
        fn next(
            io_loop: &IOLoop,
            peer: Rc<RefCell<UnixStream>>,
            steps: Rc<RefCell<std::vec::IntoIter<&'static [u8]>>>,
        ) {
            let Some(step) = steps.borrow_mut().next() else {
                return;
            };
            peer.borrow_mut().write_all(step).unwrap();
            let l = io_loop.clone();
            io_loop.call_later(Duration::from_millis(20), move || next(&l, peer, steps));
        }
        let peer = Rc::new(RefCell::new(peer.try_clone().unwrap()));
        next(io_loop, peer, steps);
        let (seen2, st2) = (seen.clone(), stream.clone());
        let finished = Future::new();
        let fin = finished.clone();
        done.add_done_callback(move |f: &Future<Vec<u8>>| {
            assert_eq!(f.result().unwrap(), b"rest\n");
            assert_eq!(
                *seen2.borrow(),
                [&b"first\n"[..], b"par", b"partial\n", b"handover\nrest\n"]
            );
            assert_eq!(st2.buffered(), 0);
            fin.set_result(());
        });
        finished
    });
}
