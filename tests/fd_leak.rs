//! Creating and closing loops releases every descriptor they opened.
//!
//! Its own test binary, with a single test: no other test opens or closes fds
//! in this process while it counts them.

mod common;

use common::open_fds;

use std::os::unix::net::UnixStream;
use std::time::Duration;

use squall::{Events, Future, IOLoop};

/// Counts fds around `f`; retries a few times in case something outside the
/// test (the harness, a lazily opened file) changed the count meanwhile.
fn leaked_by(mut f: impl FnMut()) -> isize {
    let mut leaked = 0;
    for _ in 0..3 {
        let before = open_fds();
        f();
        let after = open_fds();
        leaked = after as isize - before as isize;
        if leaked == 0 {
            break;
        }
    }
    leaked
}

#[test]
fn no_fd_is_leaked_by_1000_loops() {
    // Warm up anything created once per process (the thread-local current loop
    // is not used here, but the first allocation of some statics might be).
    IOLoop::new().unwrap().close();

    let (a, _b) = UnixStream::pair().unwrap();
    let leaked = leaked_by(|| {
        for i in 0..1000 {
            let io_loop = IOLoop::new().unwrap();
            let remote = io_loop.remote();
            match i % 4 {
                0 => io_loop.close(),
                1 => {
                    // Used, then closed while a handler and a timeout are pending.
                    io_loop.add_handler(&a, |_, _| (), Events::READ).unwrap();
                    let l = io_loop.clone();
                    io_loop.call_later(Duration::from_secs(3600), move || l.stop());
                    let l = io_loop.clone();
                    io_loop.add_callback(move || l.stop());
                    io_loop.start().unwrap();
                    io_loop.close();
                }
                2 => {
                    // Dropped without close(): no cycle keeps it alive.
                    drop(io_loop);
                }
                _ => {
                    // Its Remote outlives it: closing releases the eventfd anyway.
                    io_loop.close();
                    assert!(remote.add_callback(|| ()).is_err());
                }
            }
            drop(remote);
        }
    });
    assert_eq!(leaked, 0, "fds leaked by 1000 loops");

    // A Remote kept after its loop was dropped holds no descriptor either.
    let mut remotes = Vec::new();
    let leaked = leaked_by(|| {
        remotes.clear();
        for _ in 0..100 {
            let io_loop = IOLoop::new().unwrap();
            remotes.push(io_loop.remote());
        }
    });
    assert_eq!(leaked, 0, "remotes of dropped loops hold fds");
    assert!(remotes.iter().all(|r| r.is_closed()));

    // `run_sync` timed out on a future the loop itself still holds (in a
    // pending timeout): the loop, dropped without `close()`, is freed all
    // the same (run_sync's callback on the future holds it weakly).
    let leaked = leaked_by(|| {
        for _ in 0..20 {
            let io_loop = IOLoop::new().unwrap();
            let result = io_loop.run_sync(
                || {
                    let never = Future::<()>::new();
                    let held = never.clone();
                    IOLoop::current().call_later(Duration::from_secs(3600), move || drop(held));
                    never
                },
                Some(Duration::from_millis(1)),
            );
            assert_eq!(result.unwrap_err().kind(), squall::ErrorKind::Timeout);
            drop(io_loop);
        }
    });
    assert_eq!(
        leaked, 0,
        "fds leaked by loops dropped after run_sync timed out"
    );
}
