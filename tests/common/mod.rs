//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use squall::ioloop::{Clock, ManualClock};
use squall::{Future, IOLoop};

pub mod coro;
pub mod logs;

/// `Duration::from_secs`, shorter.
pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// `Duration::from_millis`, shorter.
pub fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// A loop on a manual clock, and the clock.
pub fn manual_loop() -> (IOLoop, ManualClock) {
    let clock = ManualClock::new();
    let io_loop =
        IOLoop::with_clock(Clock::Manual(clock.clone())).expect("cannot create an IOLoop");
    (io_loop, clock)
}

/// A connected pair of non-blocking Unix sockets.
pub fn socketpair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).expect("nonblocking");
    b.set_nonblocking(true).expect("nonblocking");
    (a, b)
}

/// A single-threaded, clonable record of what happened, in order.
pub struct Log<T>(Rc<RefCell<Vec<T>>>);

impl<T> Clone for Log<T> {
    fn clone(&self) -> Self {
        Log(self.0.clone())
    }
}

impl<T: Clone> Log<T> {
    pub fn new() -> Log<T> {
        Log(Rc::new(RefCell::new(Vec::new())))
    }

    pub fn push(&self, value: T) {
        self.0.borrow_mut().push(value);
    }

    pub fn get(&self) -> Vec<T> {
        self.0.borrow().clone()
    }

    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }
}

/// Sets its flag when dropped: shows that a closure was released.
pub struct DropFlag(pub Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// A drop detector and the flag to check.
pub fn drop_flag() -> (DropFlag, Rc<Cell<bool>>) {
    let flag = Rc::new(Cell::new(false));
    (DropFlag(flag.clone()), flag)
}

/// Schedules a guard that stops the loop after `limit` (on the loop's clock)
/// and records that it had to; returns the record. On a manual clock, the
/// guard is reached as soon as the loop has nothing earlier to do, so it also
/// means "run until idle".
pub fn guard(io_loop: &IOLoop, limit: Duration) -> Rc<Cell<bool>> {
    let fired = Rc::new(Cell::new(false));
    let (f, l) = (fired.clone(), io_loop.clone());
    io_loop.call_later(limit, move || {
        f.set(true);
        l.stop();
    });
    fired
}

/// A connected (client, server) pair of blocking std sockets on loopback.
pub fn std_tcp_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

/// Pseudo-random bytes (xorshift), reproducible from `seed`.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

// ----- chaining futures in tests ---------------------------------------------

/// A result with squall's error.
pub type R<T> = Result<T, squall::Error>;

/// The message of a caught panic.
pub fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}

/// Runs `f` with `fut`'s outcome once it is done; the returned future follows
/// the one `f` returns. A panic in `f` fails the returned future.
pub fn then<T: 'static, U: 'static>(
    fut: &Future<T>,
    f: impl FnOnce(R<T>) -> Future<U> + 'static,
) -> Future<U> {
    let out = Future::new();
    let o = out.clone();
    fut.add_done_callback(move |done: &Future<T>| {
        let result = done.take_result();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || f(result))) {
            Ok(next) => next.add_done_callback(move |n: &Future<U>| {
                o.try_complete(n.take_result());
            }),
            Err(panic) => {
                o.try_set_error(squall::Error::other(format!(
                    "assertion failed in a step: {}",
                    panic_message(panic)
                )));
            }
        }
    });
    out
}

/// Like [`then`], for a future expected to succeed: an error is passed on.
pub fn and_then<T: 'static, U: 'static>(
    fut: &Future<T>,
    f: impl FnOnce(T) -> Future<U> + 'static,
) -> Future<U> {
    then(fut, move |r| match r {
        Ok(v) => f(v),
        Err(e) => Future::failed(e),
    })
}

/// A TCP listener that never accepts, its backlog full: a connect to it
/// gets no answer at all (its SYN is dropped), as a black-holed route does.
pub struct SilentListener {
    pub addr: std::net::SocketAddr,
    _listener: socket2::Socket,
    _fillers: Vec<socket2::Socket>,
}

/// A [`SilentListener`] on `addr` (port 0: a free one).
pub fn silent_listener(addr: std::net::SocketAddr) -> SilentListener {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
    listener.bind(&addr.into()).unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&addr.into());
        fillers.push(s);
    }
    std::thread::sleep(Duration::from_millis(50));
    SilentListener {
        addr,
        _listener: listener,
        _fillers: fillers,
    }
}

/// How many descriptors this process has open now (Linux's
/// `/proc/self/fd`; the count includes the one that reads the directory,
/// the same in every call, so differences are exact).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// The greeting (handshake v10) a scripted MySQL server sends: server
/// version `8.0.36-fake`, `connection_id`, the 20-byte `nonce` in its two
/// parts, the capability flags `caps`, and the auth `plugin` proposed.
/// Shared by the TorMySQL example's fake-server tests.
pub fn mysql_greeting(connection_id: u32, nonce: &[u8; 20], caps: u32, plugin: &str) -> Vec<u8> {
    let mut g = vec![10];
    g.extend_from_slice(b"8.0.36-fake\0");
    g.extend_from_slice(&connection_id.to_le_bytes());
    g.extend_from_slice(&nonce[..8]);
    g.push(0);
    g.extend_from_slice(&(caps as u16).to_le_bytes());
    g.push(45); // utf8mb4
    g.extend_from_slice(&2u16.to_le_bytes()); // SERVER_STATUS_AUTOCOMMIT
    g.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
    g.push(21); // the auth data's length
    g.extend_from_slice(&[0; 10]);
    g.extend_from_slice(&nonce[8..]);
    g.push(0);
    g.extend_from_slice(plugin.as_bytes());
    g.push(0);
    g
}

/// asyncio's `sleep(0)`: a bare `yield` to the event loop. Wakes its own
/// waker inside its poll once (a wake queued at home), then is ready.
pub async fn yield_now() {
    let mut first = true;
    std::future::poll_fn(|cx| {
        if std::mem::take(&mut first) {
            cx.waker().wake_by_ref();
            return std::task::Poll::Pending;
        }
        std::task::Poll::Ready(())
    })
    .await
}
