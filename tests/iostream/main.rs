//! IOStream's behaviour through its public API: a port of what Tornado's
//! `tornado/test/iostream_test.py` covers (minus SSL, pipes, streaming
//! callbacks and `read_into`, which squall does not have), plus limits,
//! connect errors, many clients and throughput.
//!
//! Tests are written as chains of futures on an `AsyncTest` loop. A failed
//! assertion inside a step fails the test's future at once, with the panic's
//! message, instead of waiting for the timeout.
//!
//! One test binary, a module per concept (`read_until`, `reads`, `writes`,
//! `closing`, `connect`, `limits`, `many_clients`, `throughput`); the
//! helpers they share are here, the ones other test files share too in
//! tests/common.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

#[path = "../common/mod.rs"]
mod common;
use common::{and_then, panic_message, pseudo_random, std_tcp_pair, then, R};

use squall::iostream::IOStream;
use squall::testing::AsyncTest;
use squall::{Error, ErrorKind, Events, Future, IOLoop};

mod closing;
mod connect;
mod limits;
mod many_clients;
mod read_until;
mod reads;
mod throughput;
mod writes;

/// The error of a future expected to fail.
fn expect_err<T: 'static>(fut: &Future<T>) -> Future<Error> {
    then(fut, |r| match r {
        Ok(_) => Future::failed(Error::other("expected an error, got a value")),
        Err(e) => Future::ready(e),
    })
}

/// The error of a future that must already be done (failed).
fn failed_now<T: 'static>(fut: &Future<T>) -> Error {
    assert!(fut.done(), "the future should be done at once");
    fut.take_result()
        .err()
        .expect("the future should have failed")
}

/// The value of a future that must already be done.
fn value_now<T: 'static>(fut: &Future<T>) -> T {
    assert!(fut.done(), "the future should be done at once");
    fut.take_result().expect("the future should have succeeded")
}

/// Resolves after `delay`.
fn sleep(io_loop: &IOLoop, delay: Duration) -> Future<()> {
    let f = Future::new();
    let f2 = f.clone();
    io_loop.call_later(delay, move || f2.set_result(()));
    f
}

/// Resolves on the loop's next iteration (when the loop is running).
fn next_turn(io_loop: &IOLoop) -> Future<()> {
    let f = Future::new();
    let f2 = f.clone();
    io_loop.add_callback(move || f2.set_result(()));
    f
}

/// Resolves once `cond()` holds, checking every millisecond (the test's
/// timeout bounds the wait). For "the data has arrived", which no fixed
/// sleep can promise on a loaded machine.
fn until(io_loop: &IOLoop, cond: impl Fn() -> bool + 'static) -> Future<()> {
    fn check(io_loop: IOLoop, cond: Rc<dyn Fn() -> bool>, done: Future<()>) {
        if cond() {
            done.try_set_result(());
        } else {
            let l = io_loop.clone();
            io_loop.call_later(Duration::from_millis(1), move || check(l, cond, done));
        }
    }
    let done = Future::new();
    let (l, d) = (io_loop.clone(), done.clone());
    io_loop.add_callback(move || check(l, Rc::new(cond), d));
    done
}

/// Runs `step(i)` on `n` successive loop iterations (one call per iteration),
/// then resolves. A panic in `step` fails the future.
fn each_turn(io_loop: &IOLoop, n: usize, step: impl FnMut(usize) + 'static) -> Future<()> {
    struct State<F> {
        i: usize,
        n: usize,
        step: F,
        done: Future<()>,
        io_loop: IOLoop,
    }
    fn turn<F: FnMut(usize) + 'static>(st: Rc<RefCell<State<F>>>) {
        let mut s = st.borrow_mut();
        if s.i == s.n {
            s.done.try_set_result(());
            return;
        }
        let i = s.i;
        s.i += 1;
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| (s.step)(i))) {
            s.done
                .try_set_error(Error::other(format!("step {i}: {}", panic_message(panic))));
            return;
        }
        let l = s.io_loop.clone();
        drop(s);
        l.add_callback(move || turn(st));
    }
    let done = Future::new();
    let st = Rc::new(RefCell::new(State {
        i: 0,
        n,
        step,
        done: done.clone(),
        io_loop: io_loop.clone(),
    }));
    io_loop.add_callback(move || turn(st));
    done
}

/// Resolves with every outcome once all `futures` are done.
fn join_all<T: 'static>(futures: Vec<Future<T>>) -> Future<Vec<R<T>>> {
    let out = Future::new();
    let n = futures.len();
    if n == 0 {
        out.try_set_result(Vec::new());
        return out;
    }
    let results: Rc<RefCell<Vec<Option<R<T>>>>> =
        Rc::new(RefCell::new((0..n).map(|_| None).collect()));
    let left = Rc::new(Cell::new(n));
    for (i, f) in futures.into_iter().enumerate() {
        let (results, left, out) = (results.clone(), left.clone(), out.clone());
        f.add_done_callback(move |done: &Future<T>| {
            results.borrow_mut()[i] = Some(done.take_result());
            left.set(left.get() - 1);
            if left.get() == 0 {
                let all = results.borrow_mut().drain(..).map(Option::unwrap).collect();
                out.try_set_result(all);
            }
        });
    }
    out
}

/// A future resolved by the stream's close callback, and the number of times
/// the callback ran.
fn on_close(stream: &IOStream) -> (Future<()>, Rc<Cell<usize>>) {
    let closed = Future::new();
    let count = Rc::new(Cell::new(0));
    let (c, n) = (closed.clone(), count.clone());
    stream.set_close_callback(move || {
        n.set(n.get() + 1);
        c.try_set_result(());
    });
    (closed, count)
}

/// Two connected IOStreams over a Unix socketpair.
fn unix_pair() -> (IOStream, IOStream) {
    let (a, b) = UnixStream::pair().unwrap();
    (IOStream::new(a).unwrap(), IOStream::new(b).unwrap())
}

/// Two connected IOStreams over loopback TCP.
fn tcp_pair() -> (IOStream, IOStream) {
    let (c, s) = std_tcp_pair();
    (IOStream::new(c).unwrap(), IOStream::new(s).unwrap())
}

/// An address that refuses connections: a port just bound and released.
fn refusing_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// An order-sensitive checksum, word at a time (fast enough in debug builds).
fn checksum(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ data.len() as u64;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().unwrap());
        h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn assert_closed_error(err: &Error) {
    assert_eq!(err.kind(), ErrorKind::StreamClosed, "{err}");
}

/// The cause a StreamClosed error carries, if any.
fn cause_of(err: &Error) -> Option<Error> {
    std::error::Error::source(err)
        .and_then(|s| s.downcast_ref::<Error>())
        .cloned()
}
