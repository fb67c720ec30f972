//! `IOStream::read_until_regex` (feature `regex`), after Tornado's
//! iostream tests of `read_until_regex`.
#![cfg(feature = "regex")]

use std::cell::RefCell;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use squall::testing::AsyncTest;
use squall::{ErrorKind, Future, IOLoop, IOStream};

fn pair(io_loop: &IOLoop) -> (IOStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    (IOStream::with_loop(a, io_loop).unwrap(), b)
}

#[test]
fn a_match_split_over_many_writes_and_what_follows_stays_buffered() {
    AsyncTest::new().run(|io_loop: &IOLoop| {
        let (stream, peer) = pair(io_loop);
        let peer = Rc::new(RefCell::new(peer));
        let head = stream.read_until_regex_max_bytes(r"\r?\n\r?\n", 1024);
        // One byte per loop turn: the match only completes with the last one.
        for (i, byte) in b"GET / HTTP/1.0\r\n\r\nrest".iter().enumerate() {
            let (p, b) = (peer.clone(), *byte);
            io_loop.call_later(Duration::from_millis(i as u64), move || {
                p.borrow_mut().write_all(&[b]).unwrap();
            });
        }
        let done = Future::new();
        let (d, s) = (done.clone(), stream.clone());
        head.add_done_callback(move |head: &Future<Vec<u8>>| {
            assert_eq!(head.result().unwrap(), b"GET / HTTP/1.0\r\n\r\n");
            s.read_bytes(4)
                .add_done_callback(move |rest: &Future<Vec<u8>>| {
                    assert_eq!(rest.result().unwrap(), b"rest");
                    drop(peer);
                    d.try_set_result(());
                });
        });
        done
    });
}

#[test]
fn the_first_match_ends_the_read() {
    AsyncTest::new().run(|io_loop: &IOLoop| {
        let (stream, mut peer) = pair(io_loop);
        peer.write_all(b"ab12cd345").unwrap();
        let first = stream.read_until_regex(r"[0-9]+");
        let s = stream.clone();
        let done = Future::new();
        let d = done.clone();
        first.add_done_callback(move |f: &Future<Vec<u8>>| {
            assert_eq!(f.result().unwrap(), b"ab12");
            s.read_until_regex(r"[0-9]+")
                .add_done_callback(move |f: &Future<Vec<u8>>| {
                    // Greedy within the data at hand.
                    assert_eq!(f.result().unwrap(), b"cd345");
                    drop(peer);
                    d.try_set_result(());
                });
        });
        done
    });
}

#[test]
fn no_match_within_max_bytes_fails_and_closes() {
    AsyncTest::new().run(|io_loop: &IOLoop| {
        let (stream, mut peer) = pair(io_loop);
        let read = stream.read_until_regex_max_bytes(r"\n", 8);
        peer.write_all(b"0123456789\n").unwrap();
        let done = Future::new();
        let (d, s) = (done.clone(), stream.clone());
        read.add_done_callback(move |f: &Future<Vec<u8>>| {
            assert_eq!(f.error().unwrap().kind(), ErrorKind::UnsatisfiableRead);
            assert!(s.closed());
            drop(peer);
            d.try_set_result(());
        });
        done
    });
}

#[test]
fn the_peer_closing_before_a_match_fails_the_read() {
    AsyncTest::new().run(|io_loop: &IOLoop| {
        let (stream, mut peer) = pair(io_loop);
        let read = stream.read_until_regex(r"END");
        peer.write_all(b"no end here").unwrap();
        drop(peer);
        let done = Future::new();
        let d = done.clone();
        read.add_done_callback(move |f: &Future<Vec<u8>>| {
            assert_eq!(f.error().unwrap().kind(), ErrorKind::StreamClosed);
            d.try_set_result(());
        });
        done
    });
}

#[test]
fn a_bad_pattern_is_an_invalid_argument() {
    AsyncTest::new().run(|io_loop: &IOLoop| {
        let (stream, _peer) = pair(io_loop);
        let read = stream.read_until_regex(r"(unclosed");
        assert_eq!(read.error().unwrap().kind(), ErrorKind::InvalidArgument);
        assert!(!stream.closed());
        Future::ready(())
    });
}
