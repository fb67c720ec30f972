//! `netutil`: `bind_sockets` and the accept handler.
//!
//! Every socket is bound on loopback (127.0.0.1, ::1) only. The out-of-fds
//! test runs in a child process (this binary again, selected by an env var)
//! with a lowered `RLIMIT_NOFILE`, so that it cannot starve the other tests.

use squall::netutil::BindOptions;
use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use socket2::SockRef;
use squall::netutil::{self, RemoveHandle, ACCEPT_BATCH, PAUSE_MAX};
use squall::stack_context::ExceptionStackContext;
use squall::testing::AsyncTest;
use squall::{Error, ErrorKind, Future, IOLoop};

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// Whether this host can bind ::1 (some containers have no IPv6 loopback).
fn ipv6_loopback() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

/// Accepts one connection from a non-blocking listener, waiting a little.
fn accept_nonblocking(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match listener.accept() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(ms(1));
            }
            other => return other,
        }
    }
}

/// Connects to `listener` and checks it accepts, and that bytes flow.
fn assert_accepts(listener: &TcpListener) {
    let addr = listener.local_addr().unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    let (mut server, peer) = accept_nonblocking(listener).unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    client.write_all(b"x").unwrap();
    server.set_nonblocking(false).unwrap();
    let mut byte = [0u8; 1];
    server.read_exact(&mut byte).unwrap();
    assert_eq!(&byte, b"x");
}

// ----- bind_sockets -----------------------------------------------------------

#[test]
fn port_zero_picks_a_port_that_accepts() {
    let listeners = netutil::bind_sockets_with(0, BindOptions::new().address("127.0.0.1")).unwrap();
    assert_eq!(listeners.len(), 1);
    let addr = listeners[0].local_addr().unwrap();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0);
    assert_accepts(&listeners[0]);
}

#[test]
fn ipv6_literal_binds_and_accepts() {
    if !ipv6_loopback() {
        eprintln!("skipped: no ::1 on this host");
        return;
    }
    for address in ["::1", "[::1]"] {
        let listeners = netutil::bind_sockets_with(0, BindOptions::new().address(address)).unwrap();
        assert_eq!(listeners.len(), 1);
        assert!(listeners[0].local_addr().unwrap().is_ipv6());
        assert!(SockRef::from(&listeners[0]).only_v6().unwrap());
        assert_accepts(&listeners[0]);
    }
}

#[test]
fn several_addresses_share_the_picked_port() {
    let mut addrs: Vec<SocketAddr> = vec!["127.0.0.1:0".parse().unwrap()];
    if ipv6_loopback() {
        addrs.push("[::1]:0".parse().unwrap());
    } else {
        eprintln!("no ::1 on this host: IPv4 only");
    }
    // Many times over: a port free on 127.0.0.1 may be taken on ::1, and
    // then the set is bound again.
    for _ in 0..50 {
        let listeners = netutil::bind_addrs(&addrs).unwrap();
        assert_eq!(listeners.len(), addrs.len());
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        assert!(ports.iter().all(|p| *p == ports[0] && *p != 0), "{ports:?}");
        assert!(listeners[0].local_addr().unwrap().is_ipv4());
    }
    let listeners = netutil::bind_addrs(&addrs).unwrap();
    for listener in &listeners {
        assert_accepts(listener);
    }
}

#[test]
fn a_name_binds_each_of_its_addresses_on_one_port() {
    let listeners = netutil::bind_sockets_with(0, BindOptions::new().address("localhost")).unwrap();
    assert!(!listeners.is_empty());
    let port = listeners[0].local_addr().unwrap().port();
    for listener in &listeners {
        let addr = listener.local_addr().unwrap();
        assert!(addr.ip().is_loopback(), "{addr}");
        assert_eq!(addr.port(), port);
        assert_accepts(listener);
    }
}

#[test]
fn sockets_are_reuseaddr_nonblocking_and_cloexec() {
    let listeners =
        netutil::bind_sockets_with(0, BindOptions::new().address("127.0.0.1").backlog(16)).unwrap();
    let sock = SockRef::from(&listeners[0]);
    assert!(sock.reuse_address().unwrap(), "SO_REUSEADDR");
    assert!(!sock.reuse_port().unwrap(), "SO_REUSEPORT only when asked");
    assert!(sock.is_listener().unwrap());
    assert!(sock.nonblocking().unwrap());
    // SAFETY: F_GETFD on an open fd.
    let flags = unsafe { libc::fcntl(listeners[0].as_raw_fd(), libc::F_GETFD) };
    assert!(flags & libc::FD_CLOEXEC != 0, "FD_CLOEXEC");
    let err = listeners[0].accept().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
}

#[test]
fn reuseaddr_lets_a_restarted_server_rebind_over_time_wait() {
    let listeners = netutil::bind_sockets_with(0, BindOptions::new().address("127.0.0.1")).unwrap();
    let port = listeners[0].local_addr().unwrap().port();
    // A connection the server closes first leaves it in TIME_WAIT.
    {
        let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (server, _) = accept_nonblocking(&listeners[0]).unwrap();
        drop(server);
        std::thread::sleep(ms(20));
        drop(client);
    }
    drop(listeners);
    let again = netutil::bind_sockets_with(port, BindOptions::new().address("127.0.0.1")).unwrap();
    assert_eq!(again[0].local_addr().unwrap().port(), port);
}

#[test]
fn reuse_port_lets_two_sockets_bind_one_port() {
    let first =
        netutil::bind_sockets_with(0, BindOptions::new().address("127.0.0.1").reuse_port(true))
            .unwrap();
    assert!(SockRef::from(&first[0]).reuse_port().unwrap());
    let port = first[0].local_addr().unwrap().port();
    let second = netutil::bind_sockets_with(
        port,
        BindOptions::new().address("127.0.0.1").reuse_port(true),
    )
    .unwrap();
    assert_eq!(second[0].local_addr().unwrap().port(), port);

    // Without it, the port is taken.
    let err =
        netutil::bind_sockets_with(port, BindOptions::new().address("127.0.0.1")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert_eq!(err.io_error_kind(), Some(io::ErrorKind::AddrInUse), "{err}");
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
}

#[test]
fn bad_addresses_are_errors() {
    let err = netutil::bind_sockets_with(0, BindOptions::new().address("no-such-host.invalid"))
        .unwrap_err();
    assert_eq!(
        err.io_error_kind(),
        Some(io::ErrorKind::InvalidInput),
        "{err}"
    );
    let err = netutil::bind_addrs(&[]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

// ----- add_accept_handler -------------------------------------------------------

fn loopback_listener(backlog: Option<u32>) -> (TcpListener, SocketAddr) {
    let options = BindOptions {
        backlog,
        ..BindOptions::new().address("127.0.0.1")
    };
    let listener = netutil::bind_sockets_with(0, options).unwrap().remove(0);
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

#[test]
fn accepts_a_burst_of_500_connections() {
    const N: usize = 500;
    let (listener, addr) = loopback_listener(Some(1024));
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let clients = std::thread::spawn(move || {
        let mut clients = Vec::with_capacity(N);
        for _ in 0..N {
            clients.push(TcpStream::connect(addr).expect("connect"));
        }
        let locals: Vec<SocketAddr> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
        // Held open until the server has them all.
        let _ = release_rx.recv();
        locals
    });
    let peers = AsyncTest::new()
        .timeout(Duration::from_secs(20))
        .run(|io_loop| {
            let done = Future::new();
            let peers = Rc::new(RefCell::new(Vec::new()));
            let (d, p) = (done.clone(), peers.clone());
            let handle =
                netutil::add_accept_handler_on(io_loop, listener, move |conn: TcpStream, peer| {
                    assert!(SockRef::from(&conn).nonblocking().unwrap());
                    drop(conn);
                    p.borrow_mut().push(peer);
                    if p.borrow().len() == N {
                        d.set_result(());
                    }
                    Ok(())
                })
                .unwrap();
            let result = Future::new();
            let r = result.clone();
            done.add_done_callback(move |_: &Future<()>| {
                assert_eq!(handle.accepted(), N as u64);
                assert_eq!(handle.pauses(), 0);
                drop(handle.remove());
                r.set_result(peers.take())
            });
            result
        });
    release_tx.send(()).unwrap();
    let mut locals = clients.join().unwrap();
    let mut peers = peers;
    locals.sort();
    peers.sort();
    assert_eq!(peers, locals, "every client was accepted exactly once");
}

/// Schedules a callback on every iteration that records `count`; stops when
/// `stop` is set.
fn sample_each_iteration(
    io_loop: &IOLoop,
    count: Rc<Cell<usize>>,
    log: Rc<RefCell<Vec<usize>>>,
    stop: Rc<Cell<bool>>,
) {
    let l = io_loop.clone();
    io_loop.add_callback(move || {
        log.borrow_mut().push(count.get());
        if !stop.get() {
            sample_each_iteration(&l, count, log, stop);
        }
    });
}

#[test]
fn one_busy_listener_cannot_starve_the_loop() {
    const N: usize = 3 * ACCEPT_BATCH + 50;
    let (listener, addr) = loopback_listener(Some(4096));
    // All queued before the loop looks: one READ event stands for all of them.
    let clients: Vec<TcpStream> = (0..N).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let samples = AsyncTest::new().run(|io_loop| {
        let count = Rc::new(Cell::new(0));
        let samples = Rc::new(RefCell::new(Vec::new()));
        let stop = Rc::new(Cell::new(false));
        let done = Future::new();
        let (c, d, s) = (count.clone(), done.clone(), stop.clone());
        let handle = netutil::add_accept_handler(listener, move |_conn: TcpStream, _| {
            c.set(c.get() + 1);
            if c.get() == N {
                s.set(true);
                d.set_result(());
            }
            Ok(())
        })
        .unwrap();
        sample_each_iteration(io_loop, count, samples.clone(), stop);
        let result = Future::new();
        let r = result.clone();
        done.add_done_callback(move |_: &Future<()>| {
            drop(handle.remove());
            r.set_result(samples.take())
        });
        result
    });
    drop(clients);
    // Between two runs of the sampling callback, one handler call at most
    // took at most ACCEPT_BATCH connections.
    let mut previous = 0;
    let mut batches = 0;
    for &sample in &samples {
        assert!(sample - previous <= ACCEPT_BATCH, "{samples:?}");
        if sample > previous {
            batches += 1;
        }
        previous = sample;
    }
    assert!(
        batches >= N / ACCEPT_BATCH,
        "{batches} batches: {samples:?}"
    );
}

#[test]
fn a_blocking_listener_is_made_non_blocking() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let _client = TcpStream::connect(addr).unwrap();
    // A blocking accept after the first connection would hang the loop.
    let n = AsyncTest::new().run(|io_loop| {
        let done = Future::new();
        let d = done.clone();
        let handle = netutil::add_accept_handler(listener, move |_conn: TcpStream, _| {
            d.try_set_result(());
        })
        .unwrap();
        let result = Future::new();
        let (r, l) = (result.clone(), io_loop.clone());
        done.add_done_callback(move |_: &Future<()>| {
            // Let the handler run once more, then report.
            l.call_later(ms(20), move || r.set_result(handle.accepted()));
        });
        result
    });
    assert_eq!(n, 1);
}

#[test]
fn remove_stops_accepting_and_gives_the_listener_back() {
    let (listener, addr) = loopback_listener(None);
    let (listener, handler_count) = AsyncTest::new().run(|io_loop| {
        let calls = Rc::new(Cell::new(0));
        let c = calls.clone();
        let handle = netutil::add_accept_handler(listener, move |_conn: TcpStream, _| {
            c.set(c.get() + 1);
        })
        .unwrap();
        assert_eq!(handle.local_addr(), Some(addr));
        assert_eq!(io_loop.handler_count(), 1);
        let listener = handle.remove().expect("the listener comes back");
        assert!(handle.is_removed());
        assert!(handle.remove().is_none(), "a second remove is harmless");
        assert_eq!(io_loop.handler_count(), 0);
        // Still listening: the kernel queues the connection, nobody accepts it.
        let client = TcpStream::connect(addr).unwrap();
        let result = Future::new();
        let r = result.clone();
        let l = io_loop.clone();
        io_loop.call_later(ms(30), move || {
            drop(client);
            r.set_result((listener, l.handler_count() + calls.get()))
        });
        result
    });
    assert_eq!(handler_count, 0);
    assert_eq!(listener.local_addr().unwrap(), addr);
    // The queued connection is still there for whoever takes the listener.
    listener.set_nonblocking(false).unwrap();
    let (_conn, _) = listener.accept().unwrap();
}

#[test]
fn remove_from_inside_the_callback_takes_no_more_connections() {
    let (listener, addr) = loopback_listener(None);
    let clients: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let count = AsyncTest::new().run(|io_loop| {
        let count = Rc::new(Cell::new(0));
        let slot: Rc<RefCell<Option<RemoveHandle>>> = Rc::new(RefCell::new(None));
        let (c, s) = (count.clone(), slot.clone());
        let handle = netutil::add_accept_handler(listener, move |_conn: TcpStream, _| {
            c.set(c.get() + 1);
            if let Some(handle) = s.borrow().as_ref() {
                drop(handle.remove());
            }
        })
        .unwrap();
        *slot.borrow_mut() = Some(handle);
        let result = Future::new();
        let r = result.clone();
        io_loop.call_later(ms(30), move || r.set_result(count.get()));
        result
    });
    drop(clients);
    assert_eq!(count, 1);
}

#[test]
fn callback_errors_are_reported_and_accepting_goes_on() {
    let (listener, addr) = loopback_listener(None);
    let clients: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let (result, unhandled) = AsyncTest::new()
        .allow_unhandled_errors()
        .try_run(|io_loop| {
            let n = Rc::new(Cell::new(0));
            let done = Future::new();
            let (d, l) = (done.clone(), io_loop.clone());
            let handle =
                netutil::add_accept_handler(listener, move |_conn: TcpStream, _| -> Future<()> {
                    n.set(n.get() + 1);
                    match n.get() {
                        1 => Future::failed(Error::other("refused at once")),
                        2 => panic!("handler panicked"),
                        3 => {
                            let later = Future::new();
                            let f = later.clone();
                            l.call_later(ms(5), move || f.set_error(Error::other("failed later")));
                            later
                        }
                        _ => {
                            d.try_set_result(());
                            Future::ready(())
                        }
                    }
                })
                .unwrap();
            let result = Future::new();
            let (r, l) = (result.clone(), io_loop.clone());
            done.add_done_callback(move |_: &Future<()>| {
                l.call_later(ms(20), move || r.set_result(handle.accepted()));
            });
            result
        });
    drop(clients);
    assert_eq!(result.unwrap(), 4, "the fourth connection was accepted");
    let mut messages: Vec<String> = unhandled.iter().map(|e| e.message().to_owned()).collect();
    messages.sort();
    assert_eq!(
        messages,
        ["failed later", "handler panicked", "refused at once"],
        "{unhandled:?}"
    );
}

#[test]
fn callback_errors_go_to_the_stack_context_of_the_caller() {
    let (listener, addr) = loopback_listener(None);
    let _client = TcpStream::connect(addr).unwrap();
    let caught = AsyncTest::new().run(|io_loop| {
        let caught = Future::new();
        let c = caught.clone();
        let handle = Rc::new(RefCell::new(None));
        let h = handle.clone();
        let io = io_loop.clone();
        ExceptionStackContext::new(move |err: &Error| {
            c.try_set_result(err.message().to_owned());
            true
        })
        .run(move || {
            let added = netutil::add_accept_handler_on(&io, listener, |_conn: TcpStream, _| {
                Err::<(), Error>(Error::new(ErrorKind::Other, "seen by the context"))
            });
            *h.borrow_mut() = Some(added.unwrap());
        });
        caught.add_done_callback(move |_: &Future<String>| drop(handle.take()));
        caught
    });
    assert_eq!(caught, "seen by the context");
}

#[test]
fn a_closed_loop_refuses_the_listener() {
    let (listener, _) = loopback_listener(None);
    let io_loop = IOLoop::new().unwrap();
    io_loop.close();
    let err =
        netutil::add_accept_handler_on(&io_loop, listener, |_c: TcpStream, _| ()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
}

// ----- out of file descriptors ------------------------------------------------------

const CHILD_ENV: &str = "SQUALL_NETUTIL_EMFILE_CHILD";
const CLIENTS: usize = 5;
/// How long the child runs with no descriptor left.
const STARVED: Duration = Duration::from_millis(700);

/// Counts the accept loop's "out of file descriptors" log lines.
struct CountingLogger;
static FD_ERRORS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
impl log::Log for CountingLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        if record.level() == log::Level::Error
            && record
                .args()
                .to_string()
                .contains("out of file descriptors")
        {
            FD_ERRORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    fn flush(&self) {}
}

fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn set_fd_limit(soft: u64) {
    // SAFETY: plain calls with a properly initialised struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = soft as libc::rlim_t;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// The child's half of `accept_survives_running_out_of_fds`; a no-op in a
/// normal test run.
#[test]
fn emfile_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    log::set_logger(&CountingLogger).unwrap();
    log::set_max_level(log::LevelFilter::Debug);
    set_fd_limit(64);

    let io_loop = IOLoop::new().unwrap();
    let (listener, addr) = loopback_listener(None);
    let accepted: Rc<RefCell<Vec<TcpStream>>> = Rc::new(RefCell::new(Vec::new()));
    let (a, l) = (accepted.clone(), io_loop.clone());
    let handle = netutil::add_accept_handler_on(&io_loop, listener, move |conn: TcpStream, _| {
        a.borrow_mut().push(conn);
        if a.borrow().len() == CLIENTS {
            l.stop();
        }
    })
    .unwrap();
    let handle = Rc::new(handle);
    // Queued in the kernel before the fd table fills up.
    let clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let fillers = Rc::new(RefCell::new(Vec::new()));
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(file) => fillers.borrow_mut().push(file),
            Err(err) => {
                assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");
                break;
            }
        }
    }
    println!("filled the fd table with {} files", fillers.borrow().len());

    let started = Instant::now();
    let cpu_before = cpu_time();
    let starved = Rc::new(Cell::new((Duration::ZERO, 0u64, false)));
    let (f, s, h) = (fillers.clone(), starved.clone(), handle.clone());
    io_loop.call_later(STARVED, move || {
        // Measure the starved period, then free the descriptors.
        s.set((cpu_time() - cpu_before, h.pauses(), h.is_paused()));
        f.borrow_mut().clear();
    });
    let l = io_loop.clone();
    io_loop.call_later(STARVED + PAUSE_MAX * 3, move || l.stop());
    io_loop.start().unwrap();

    let (cpu, pauses, paused) = starved.get();
    let lines = FD_ERRORS.load(std::sync::atomic::Ordering::Relaxed) as u64;
    println!(
        "starved {STARVED:?}: cpu {cpu:?}, {pauses} pauses, paused at the end: {paused}; \
         accepted {} of {CLIENTS} after {:?}; {lines} error lines",
        accepted.borrow().len(),
        started.elapsed(),
    );
    assert_eq!(
        accepted.borrow().len(),
        CLIENTS,
        "serves again once fds are free"
    );
    assert!(pauses >= 1, "accept failed and paused");
    // Backing off from 10 ms, doubling: a handful of retries, not thousands.
    assert!(pauses <= 12, "{pauses} pauses in {STARVED:?}: spinning");
    assert!(
        cpu < STARVED / 4,
        "{cpu:?} of CPU in {STARVED:?} without descriptors: spinning"
    );
    assert!(lines >= 1 && lines <= pauses, "{lines} error lines");
    assert_eq!(handle.accepted(), CLIENTS as u64);
    assert!(!handle.is_paused());
    drop(handle.remove());
    drop(clients);
    io_loop.close();
    println!("EMFILE-CHILD-OK");
}

#[test]
fn accept_survives_running_out_of_fds() {
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new(exe)
        .args(["--exact", "emfile_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("EMFILE-CHILD-OK"),
        "child failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    eprintln!("{stdout}");
}

#[test]
fn a_failing_accept_pauses_with_backoff_and_remove_cancels_the_resume() {
    // A bound socket that is not listening: epoll reports it hung up, and
    // accept fails with EINVAL, which takes the same path as EMFILE.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let listener: TcpListener = socket.into();
    let (result, unhandled) = AsyncTest::new().try_run(|io_loop| {
        let handle = netutil::add_accept_handler(listener, |_c: TcpStream, _| ()).unwrap();
        let result = Future::new();
        let (r, l) = (result.clone(), io_loop.clone());
        let started = Instant::now();
        io_loop.call_later(ms(300), move || {
            let pauses = handle.pauses();
            let paused = handle.is_paused();
            let timers = l.timer_stats().pending;
            drop(handle.remove());
            let after = l.timer_stats().pending;
            r.set_result((pauses, paused, timers - after, started.elapsed()))
        });
        result
    });
    assert!(unhandled.is_empty(), "{unhandled:?}");
    let (pauses, paused, cancelled, took) = result.unwrap();
    // 10 + 20 + 40 + 80 + 160 ms: five pauses fit in 300 ms, not hundreds.
    assert!((2..=6).contains(&pauses), "{pauses} pauses in {took:?}");
    assert!(paused);
    assert_eq!(cancelled, 1, "remove() cancels the pending resume");
}
