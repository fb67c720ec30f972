//! The memcache proxy example (examples/memcache_proxy/) against real
//! memcached processes: each test starts its own on free loopback ports and
//! a proxy on a thread of its own; the memcached processes are killed by PID
//! when the test ends, failed or not.
//!
//! Needs `memcached` on PATH and `python3` with pymemcache (`.ci/run`
//! installs both).

#[allow(dead_code)]
#[path = "../examples/memcache_proxy/answer.rs"]
mod answer;
#[allow(dead_code)]
#[path = "../examples/memcache_proxy/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "../examples/memcache_proxy/client_async.rs"]
mod client_async;
#[allow(dead_code)]
#[path = "../examples/memcache_proxy/hash.rs"]
mod hash;
#[allow(dead_code)]
#[path = "../examples/memcache_proxy/protocol.rs"]
mod protocol;
#[allow(dead_code)]
#[path = "../examples/memcache_proxy/proxy.rs"]
mod proxy;
#[allow(dead_code)]
#[path = "../examples/memcache_proxy/reply.rs"]
mod reply;
#[allow(dead_code)]
#[path = "../examples/memcache_proxy/testkit.rs"]
mod testkit;
#[allow(dead_code)]
#[path = "../examples/memcache_proxy/upstream.rs"]
mod upstream;

#[path = "common/peers.rs"]
mod need;

#[path = "common/logs.rs"]
#[allow(dead_code)]
mod logs;
use need::Peer;
use std::cell::RefCell;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::Command;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use client::{Client, Options};
use hash::Ring;
use protocol::ITEM_SIZE_MAX;
use proxy::{Config, ProxyThread};
use reply::Item;
use squall::stack_context::ExceptionStackContext;
use squall::{Error, IOLoop};
use testkit::{Memcached, TextClient};

const TIMEOUT: Duration = Duration::from_millis(300);
const DEAD_RETRY: Duration = Duration::from_millis(300);

/// Upstreams and a proxy in front of them. The proxy is declared first, so
/// it is stopped before the servers are killed.
struct Cluster {
    proxy: ProxyThread,
    servers: Vec<Memcached>,
    ring: Ring,
}

impl Cluster {
    fn start(n: usize) -> Cluster {
        assert!(
            testkit::memcached_available(),
            "memcached is not on PATH (.ci/run installs it)"
        );
        let servers: Vec<Memcached> = (0..n)
            .map(|_| Memcached::start().expect("cannot start memcached"))
            .collect();
        let upstreams: Vec<SocketAddr> = servers.iter().map(Memcached::addr).collect();
        let names: Vec<String> = upstreams.iter().map(SocketAddr::to_string).collect();
        let proxy = ProxyThread::spawn(Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstreams,
            options: Options {
                timeout: TIMEOUT,
                connect_timeout: TIMEOUT,
                dead_retry: DEAD_RETRY,
                ..Options::default()
            },
            window_bytes: proxy::WINDOW_BYTES,
        })
        .expect("cannot start the proxy");
        Cluster {
            proxy,
            servers,
            ring: Ring::new(&names),
        }
    }

    fn client(&self) -> TextClient {
        TextClient::connect(self.proxy.addr).expect("cannot connect to the proxy")
    }

    fn owner(&self, key: &str) -> usize {
        self.ring.server_for(key.as_bytes()).expect("servers")
    }

    /// `n` keys owned by server `server`.
    fn keys_on(&self, server: usize, prefix: &str, n: usize) -> Vec<String> {
        (0..)
            .map(|i| format!("{prefix}:{i}"))
            .filter(|k| self.owner(k) == server)
            .take(n)
            .collect()
    }

    /// Waits until the proxy's stats show `want`, asking on one connection
    /// (each new one would count itself, and closes of earlier ones are
    /// noticed a moment later).
    fn settles_to(&self, want: &[(&str, &str)]) {
        let mut c = self.client();
        let mut last = Default::default();
        let settled = eventually(Duration::from_secs(10), || {
            last = c.stats().expect("stats");
            want.iter()
                .all(|(name, value)| last.get(*name).map(String::as_str) == Some(*value))
        });
        assert!(settled, "stats never showed {want:?}: {last:?}");
    }

    fn stat(&self, name: &str) -> String {
        let stats = self.client().stats().expect("stats");
        stats
            .get(name)
            .unwrap_or_else(|| panic!("no stat {name} in {stats:?}"))
            .clone()
    }
}

fn signal(server: &Memcached, sig: i32) {
    let pid = server.pid().expect("running") as i32;
    // SAFETY: kill(2) with the PID of a child we started and have not reaped.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
    if sig == libc::SIGSTOP {
        // kill(2) returns before every thread has stopped: a worker may
        // still answer a request or two. Wait until all of them show `T`.
        let stopped = eventually(Duration::from_secs(5), || {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                return false;
            };
            tasks.flatten().all(|task| {
                std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
                    // The state follows the `(comm)` field.
                    stat.rsplit_once(") ")
                        .is_some_and(|(_, rest)| rest.starts_with('T') || rest.starts_with('t'))
                })
            })
        });
        assert!(stopped, "memcached {pid} did not stop");
    }
}

/// Retries `f` until it returns true or `limit` passes.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn pymemcache_round_trips() {
    if !need::ready(&[Peer::Memcached, Peer::Pymemcache]) {
        return;
    }
    let cluster = Cluster::start(3);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/memcache_proxy_pymemcache.py"
    );
    let mut command = Command::new("python3");
    command
        .arg(script)
        .arg(cluster.proxy.addr.port().to_string());
    for server in &cluster.servers {
        command.arg(server.port.to_string());
    }
    let output = command.output().expect("cannot run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "pymemcache script failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("all round trips ok"), "{stdout}");
}

#[test]
fn multi_key_get_is_split_and_merged_in_order() {
    if !need::ready(&[Peer::Memcached]) {
        return;
    }
    let cluster = Cluster::start(3);
    let mut c = cluster.client();
    let keys: Vec<String> = (0..60).map(|i| format!("order:{i}")).collect();
    for key in &keys {
        assert_eq!(c.set(key, key.as_bytes()).unwrap(), "STORED");
    }
    let mut owners = [0; 3];
    for key in &keys {
        owners[cluster.owner(key)] += 1;
    }
    assert!(owners.iter().all(|&n| n > 0), "{owners:?}");
    // Reversed, with misses and a duplicate in between.
    let mut asked: Vec<&str> = keys.iter().rev().map(String::as_str).collect();
    asked.insert(3, "order:missing");
    asked.insert(10, "order:5");
    let got = c.get(&asked).unwrap().expect("get");
    let want: Vec<&str> = asked
        .iter()
        .copied()
        .filter(|k| *k != "order:missing")
        .collect();
    let got_keys: Vec<&str> = got.iter().map(|(k, ..)| k.as_str()).collect();
    assert_eq!(got_keys, want);
    for (key, _, data, cas) in &got {
        assert_eq!(data, key.as_bytes());
        assert_eq!(*cas, None);
    }
    // gets: every value with its unique.
    c.send(b"gets order:1 order:2 order:3\r\n").unwrap();
    let got = c.read_values().unwrap().expect("gets");
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|(.., cas)| cas.is_some()));
}

#[test]
fn values_up_to_one_mebibyte() {
    if !need::ready(&[Peer::Memcached]) {
        return;
    }
    let cluster = Cluster::start(2);
    let mut c = cluster.client();
    let sizes = [0, 1, 4096, 512 * 1024, ITEM_SIZE_MAX - 1024];
    for size in sizes {
        let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
        let key = format!("size:{size}");
        assert_eq!(c.set(&key, &data).unwrap(), "STORED", "{size}");
        assert_eq!(c.get_one(&key).unwrap(), Ok(Some(data)), "{size}");
    }
    // All of them at once, from both servers.
    let keys: Vec<String> = sizes.iter().map(|s| format!("size:{s}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let got = c.get(&keys).unwrap().expect("get");
    assert_eq!(
        got.iter().map(|(_, _, d, _)| d.len()).collect::<Vec<_>>(),
        sizes
    );
    // Over the limit: refused by the proxy, data skipped, connection fine.
    let too_big = vec![b'x'; ITEM_SIZE_MAX + 1];
    assert_eq!(
        c.set("size:too-big", &too_big).unwrap(),
        "SERVER_ERROR object too large for cache"
    );
    assert_eq!(
        c.cmd("version").unwrap(),
        format!("VERSION {}", proxy::VERSION)
    );
    // Exactly the limit: memcached's own item overhead makes it refuse,
    // and its answer is passed on as it said it.
    let at_limit = vec![b'x'; ITEM_SIZE_MAX];
    let answer = c.set("size:limit", &at_limit).unwrap();
    assert!(answer.starts_with("SERVER_ERROR"), "{answer}");
    assert_eq!(c.get_one("size:too-big").unwrap(), Ok(None));
}

#[test]
fn two_hundred_concurrent_clients() {
    if !need::ready(&[Peer::Memcached]) {
        return;
    }
    let cluster = Cluster::start(3);
    let addr = cluster.proxy.addr;
    let start = Arc::new(std::sync::Barrier::new(200));
    let clients: Vec<_> = (0..200)
        .map(|i| {
            let start = start.clone();
            thread::spawn(move || {
                let mut c = TextClient::connect(addr).expect("connect");
                start.wait();
                for j in 0..10 {
                    let key = format!("client:{i}:{j}");
                    let value = format!("value {i} {j}").repeat(j + 1);
                    assert_eq!(c.set(&key, value.as_bytes()).unwrap(), "STORED");
                    assert_eq!(c.get_one(&key).unwrap(), Ok(Some(value.into_bytes())));
                }
                let keys: Vec<String> = (0..10).map(|j| format!("client:{i}:{j}")).collect();
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                assert_eq!(c.get(&keys).unwrap().expect("get").len(), 10);
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client failed");
    }
    let total: u64 = cluster.stat("total_connections").parse().unwrap();
    assert!(total >= 200, "{total}");
    // Every connection closed and its session freed (only the one asking
    // for stats is left), and every fd is the listener's or an upstream's.
    cluster.settles_to(&[
        ("live_sessions", "1"),
        ("curr_connections", "1"),
        ("io_handlers", "5"), // listener, 3 upstreams, the one asking
    ]);
    assert_eq!(cluster.stat("upstream_errors"), "0");
    assert_eq!(cluster.stat("pending_timeouts"), "0");
}

#[test]
fn killed_upstream_fails_its_keys_promptly_and_comes_back() {
    if !need::ready(&[Peer::Memcached]) {
        return;
    }
    let mut cluster = Cluster::start(3);
    let victim = 1;
    let victim_keys = cluster.keys_on(victim, "kill", 5);
    let other_keys: Vec<String> = [0, 2]
        .iter()
        .flat_map(|&s| cluster.keys_on(s, "kill", 5))
        .collect();
    let mut c = cluster.client();
    for key in victim_keys.iter().chain(&other_keys) {
        assert_eq!(c.set(key, b"v").unwrap(), "STORED");
    }

    // Clients hammering every key while the upstream dies under them.
    let stop = Arc::new(AtomicBool::new(false));
    let addr = cluster.proxy.addr;
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, victim_keys, other_keys) =
                (stop.clone(), victim_keys.clone(), other_keys.clone());
            thread::spawn(move || {
                let mut c = TextClient::connect(addr).expect("connect");
                let (mut victim_errors, mut slowest) = (0, Duration::ZERO);
                while !stop.load(Ordering::Relaxed) {
                    for key in &other_keys {
                        let answer = c.get_one(key).unwrap();
                        assert_eq!(answer, Ok(Some(b"v".to_vec())), "{key} on a live server");
                    }
                    for key in &victim_keys {
                        let started = Instant::now();
                        match c.get_one(key).unwrap() {
                            Ok(_) => {}
                            Err(line) => {
                                assert!(line.starts_with("SERVER_ERROR "), "{line}");
                                victim_errors += 1;
                            }
                        }
                        slowest = slowest.max(started.elapsed());
                    }
                }
                (victim_errors, slowest)
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(200));
    let port = cluster.servers[victim].port;
    cluster.servers[victim].kill();
    thread::sleep(Duration::from_millis(500));

    // Its keys fail at once, well within the timeout, with a reason.
    for key in &victim_keys {
        let started = Instant::now();
        let answer = c.get_one(key).unwrap();
        let line = answer.expect_err("a dead server's key");
        assert!(
            line.starts_with("SERVER_ERROR ") && line.contains(&port.to_string()),
            "{line}"
        );
        assert!(started.elapsed() < TIMEOUT, "{:?}", started.elapsed());
        assert!(c.set(key, b"w").unwrap().starts_with("SERVER_ERROR "));
    }
    // A multi-get that needs it fails whole; one that does not, works.
    let mixed = [victim_keys[0].as_str(), other_keys[0].as_str()];
    assert!(c.get(&mixed).unwrap().is_err());
    let others: Vec<&str> = other_keys.iter().map(String::as_str).collect();
    assert_eq!(c.get(&others).unwrap().expect("get").len(), others.len());

    // Restarted (empty), it is used again once the retry interval passed.
    cluster.servers[victim] = Memcached::start_on(port).expect("restart memcached");
    let key = &victim_keys[0];
    assert!(
        eventually(DEAD_RETRY * 10, || c.set(key, b"again").unwrap()
            == "STORED"),
        "the restarted server was never used again"
    );
    assert_eq!(c.get_one(key).unwrap(), Ok(Some(b"again".to_vec())));

    stop.store(true, Ordering::Relaxed);
    let mut victim_errors = 0;
    for worker in workers {
        let (errors, slowest) = worker.join().expect("a worker saw a wrong answer");
        victim_errors += errors;
        // Even mid-death, no answer took longer than the timeout (plus
        // scheduling slack on a busy machine).
        assert!(slowest < TIMEOUT + Duration::from_secs(1), "{slowest:?}");
    }
    assert!(victim_errors > 0, "the workers never saw the server die");
    assert_eq!(cluster.stat("pending_timeouts"), "0");
}

#[test]
fn frozen_upstream_times_out_and_leaves_no_timeout_behind() {
    if !need::ready(&[Peer::Memcached]) {
        return;
    }
    logs::never_retrieved_anywhere();
    let cluster = Cluster::start(2);
    let victim = 0;
    let frozen_keys = cluster.keys_on(victim, "frozen", 10);
    let live_key = &cluster.keys_on(1, "live", 1)[0];
    let mut c = cluster.client();
    for key in frozen_keys.iter().chain([live_key]) {
        assert_eq!(c.set(key, b"v").unwrap(), "STORED");
    }
    let victim_server = &cluster.servers[victim];
    signal(victim_server, libc::SIGSTOP);

    // Ten pipelined gets to the frozen server: each answered SERVER_ERROR,
    // in order, about one timeout later (not ten).
    let started = Instant::now();
    let mut batch = Vec::new();
    for key in &frozen_keys {
        batch.extend_from_slice(format!("get {key}\r\n").as_bytes());
    }
    batch.extend_from_slice(format!("get {live_key}\r\n").as_bytes());
    c.send(&batch).unwrap();
    for _ in &frozen_keys {
        let line = c.read_values().unwrap().expect_err("a frozen server's key");
        assert!(line.starts_with("SERVER_ERROR upstream"), "{line}");
    }
    let took = started.elapsed();
    assert_eq!(c.read_values().unwrap().expect("live key").len(), 1);
    assert!(
        took >= TIMEOUT.mul_f32(0.9),
        "answered before the timeout: {took:?}"
    );
    assert!(took < TIMEOUT + Duration::from_secs(1), "{took:?}");
    assert!(cluster.stat("upstream_0_timeouts").parse::<u64>().unwrap() >= 1);

    // Marked dead: its keys fail at once now, the other server's still work.
    let started = Instant::now();
    let line = c.get_one(&frozen_keys[0]).unwrap().expect_err("dead");
    assert!(started.elapsed() < TIMEOUT, "{:?}", started.elapsed());
    assert!(
        line.contains("marked dead") || line.contains("timed out"),
        "{line}"
    );
    assert_eq!(c.get_one(live_key).unwrap(), Ok(Some(b"v".to_vec())));

    // Still frozen after the retry interval: the retry times out again.
    thread::sleep(DEAD_RETRY);
    let line = c
        .get_one(&frozen_keys[1])
        .unwrap()
        .expect_err("still frozen");
    assert!(line.starts_with("SERVER_ERROR"), "{line}");

    // Thawed: used again, and not one timeout is left on the proxy's loop.
    signal(victim_server, libc::SIGCONT);
    assert!(
        eventually(DEAD_RETRY * 10, || c.get_one(&frozen_keys[2]).unwrap()
            == Ok(Some(b"v".to_vec()))),
        "the thawed server was never used again"
    );
    assert_eq!(cluster.stat("pending_timeouts"), "0");
    assert_eq!(cluster.stat("upstream_0_state"), "up");
    // The replies that came after their call's timeout (the closed
    // connection's error) were read by the client, not left to the log.
    drop((c, cluster));
    assert_eq!(logs::never_retrieved_anywhere(), Vec::<String>::new());
}

#[test]
fn garbage_and_oversized_input_get_error_answers() {
    if !need::ready(&[Peer::Memcached]) {
        return;
    }
    let cluster = Cluster::start(2);
    let mut c = cluster.client();
    for (input, want) in [
        ("hello", "ERROR"),
        ("", "ERROR"),
        ("GET k", "ERROR"),
        ("get", "ERROR"),
        ("set k", "CLIENT_ERROR bad command line format"),
        ("set k 0 0 -5", "CLIENT_ERROR bad command line format"),
        ("set k abc 0 1", "CLIENT_ERROR bad command line format"),
        ("incr k nan", "CLIENT_ERROR invalid numeric delta argument"),
        ("touch k soon", "CLIENT_ERROR invalid exptime argument"),
        ("delete a b c", "ERROR"),
        ("version now", "CLIENT_ERROR bad command line format"),
    ] {
        assert_eq!(c.cmd(input).unwrap(), want, "{input:?}");
    }
    let long_key = "k".repeat(251);
    assert_eq!(
        c.cmd(&format!("get {long_key}")).unwrap(),
        "CLIENT_ERROR bad command line format"
    );
    // A data block of the wrong length: refused, and what follows it is
    // parsed as a command (as memcached does).
    assert_eq!(
        c.cmd("set k 0 0 2\r\nabcdef").unwrap(),
        "CLIENT_ERROR bad data chunk"
    );
    assert_eq!(c.line().unwrap(), "ERROR");
    // Binary junk (no newline in it), then a newline: one error, still alive.
    c.send(&[0xff, 0x00, 0x80, 0x7f, b' ', 0x01]).unwrap();
    assert_eq!(c.cmd("").unwrap(), "ERROR");
    // An oversized value announced, sent in pieces, skipped without buffering.
    c.send(b"set huge 0 0 5000000\r\n").unwrap();
    assert_eq!(c.line().unwrap(), "SERVER_ERROR object too large for cache");
    let chunk = vec![b'z'; 100_000];
    for _ in 0..50 {
        c.send(&chunk).unwrap();
    }
    c.send(b"\r\n").unwrap();
    assert_eq!(
        c.cmd("version").unwrap(),
        format!("VERSION {}", proxy::VERSION)
    );
    assert_eq!(c.get_one("huge").unwrap(), Ok(None));

    // A line that never ends: refused, and that connection is closed.
    let mut endless = cluster.client();
    endless.send(&vec![b'a'; protocol::MAX_LINE + 10]).unwrap();
    assert_eq!(endless.line().unwrap(), "CLIENT_ERROR line too long");
    assert!(endless.line().is_err(), "the connection should be closed");

    // Random bytes on fresh connections: the proxy answers or closes, never dies.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..50 {
        let mut junk = cluster.client();
        let bytes: Vec<u8> = (0..2000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let _ = junk.send(&bytes);
        let _ = junk.send(b"\r\nquit\r\n");
    }
    // The first connection still works; the proxy is alive and clean.
    assert_eq!(c.set("after", b"junk").unwrap(), "STORED");
    assert_eq!(c.get_one("after").unwrap(), Ok(Some(b"junk".to_vec())));
    assert_eq!(cluster.stat("upstream_errors"), "0");
    // Every junk connection is gone, and its session freed: left are `c`
    // and the one asking.
    cluster.settles_to(&[("live_sessions", "2"), ("curr_connections", "2")]);
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    if !need::ready(&[Peer::Memcached]) {
        return;
    }
    let cluster = Cluster::start(3);
    let mut c = cluster.client();
    // More commands in one write than the proxy keeps in flight per client.
    let n = proxy::MAX_PIPELINE * 3;
    let mut batch = Vec::new();
    for i in 0..n {
        batch.extend_from_slice(
            format!("set pipe:{i} 0 0 {}\r\n{i}\r\n", i.to_string().len()).as_bytes(),
        );
        batch.extend_from_slice(format!("get pipe:{i}\r\n").as_bytes());
        if i % 10 == 0 {
            batch.extend_from_slice(b"bogus\r\n");
        }
    }
    // Written from another thread: the proxy stops reading a client that
    // does not read its answers, so one thread doing both would deadlock.
    let mut w = c.writer().unwrap();
    let writer = thread::spawn(move || w.write_all(&batch).unwrap());
    for i in 0..n {
        assert_eq!(c.line().unwrap(), "STORED", "set #{i}");
        let got = c.read_values().unwrap().expect("get");
        assert_eq!(got.len(), 1, "get #{i}");
        assert_eq!(got[0].2, i.to_string().into_bytes(), "get #{i}");
        if i % 10 == 0 {
            assert_eq!(c.line().unwrap(), "ERROR");
        }
    }
    writer.join().unwrap();
}

// ----- the client on its own, on a loop of the test's ----------------------------

type Record = Rc<RefCell<Vec<String>>>;

/// A call's outcome, recorded: `ok ...`, or `fail <kind>: <message>`.
fn record(log: &Record) -> (impl FnOnce(Option<Item>), impl FnOnce(Error)) {
    let (ok, failed) = (log.clone(), log.clone());
    (
        move |value: Option<Item>| {
            ok.borrow_mut()
                .push(format!("ok {:?}", value.map(|i| i.data)))
        },
        move |err: Error| failed.borrow_mut().push(format!("fail {err}")),
    )
}

/// Runs the loop for `d`.
fn run_for(io_loop: &IOLoop, d: Duration) {
    let l = io_loop.clone();
    io_loop.call_later(d, move || l.stop());
    io_loop.start().unwrap();
}

/// A server that accepts connections and never answers.
fn silent_server() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    addr
}

#[test]
fn client_timeout_goes_through_the_context_to_fail_callback_once() {
    let io_loop = IOLoop::new().unwrap();
    let timeout = Duration::from_millis(100);
    let dead_retry = Duration::from_millis(300);
    let client = Client::new(
        &io_loop,
        &[silent_server()],
        Options {
            timeout,
            dead_retry,
            ..Options::default()
        },
    );
    // Errors that are not the client's own would land here.
    let outer: Record = Rc::default();
    let o = outer.clone();
    let context = ExceptionStackContext::new(move |err: &Error| {
        o.borrow_mut().push(err.to_string());
        true
    });
    let log: Record = Rc::default();
    let started = Instant::now();
    context.run(|| {
        let (ok, fail) = record(&log);
        client.get(b"k", ok, fail);
    });
    run_for(&io_loop, timeout * 2);
    assert_eq!(log.borrow().len(), 1, "{:?}", log.borrow());
    assert!(
        log.borrow()[0].starts_with("fail timeout: upstream")
            && log.borrow()[0].contains("timed out after 100 ms"),
        "{:?}",
        log.borrow()
    );
    assert!(started.elapsed() >= timeout);
    assert!(client.servers()[0].dead);
    assert_eq!(client.servers()[0].timeouts, 1);

    // Dead: the next call fails before `get` returns, through the same path.
    let (ok, fail) = record(&log);
    context.run(|| client.get(b"k", ok, fail));
    assert_eq!(log.borrow().len(), 2);
    assert!(
        log.borrow()[1].contains("marked dead"),
        "{:?}",
        log.borrow()
    );

    // After the retry interval it is tried again, and times out again.
    run_for(&io_loop, dead_retry);
    let (ok, fail) = record(&log);
    context.run(|| client.get(b"k", ok, fail));
    run_for(&io_loop, timeout * 2);
    assert_eq!(log.borrow().len(), 3);
    assert!(log.borrow()[2].contains("timed out"), "{:?}", log.borrow());

    // Each timeout was removed or ran: none left, and nothing leaked outward.
    run_for(&io_loop, Duration::from_millis(10));
    assert_eq!(io_loop.timer_stats().pending, 0);
    assert!(outer.borrow().is_empty(), "{:?}", outer.borrow());
    client.close();
    io_loop.close();
}

#[test]
fn client_connect_timeout_marks_the_server_dead() {
    // A listener whose accept queue is full: further SYNs are dropped, so a
    // connect neither succeeds nor fails until it times out.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let fillers: Vec<_> = (0..4)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).ok()
        })
        .collect();
    assert!(!fillers.is_empty());

    let io_loop = IOLoop::new().unwrap();
    let client = Client::new(
        &io_loop,
        &[addr],
        Options {
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_millis(100),
            ..Options::default()
        },
    );
    let log: Record = Rc::default();
    let (ok, fail) = record(&log);
    let started = Instant::now();
    client.get(b"k", ok, fail);
    run_for(&io_loop, Duration::from_millis(400));
    assert_eq!(
        *log.borrow(),
        [format!(
            "fail I/O error: cannot connect to upstream {addr}: connect timed out"
        )]
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(client.servers()[0].dead);
    assert_eq!(io_loop.timer_stats().pending, 0);
    assert_eq!(
        io_loop.handler_count(),
        0,
        "the socket of the failed connect is closed"
    );
    io_loop.close();
}

#[test]
fn client_bug_in_a_callback_goes_outward_not_to_fail_callback() {
    if !need::ready(&[Peer::Memcached]) {
        return;
    }
    let server = Memcached::start().unwrap();
    let io_loop = IOLoop::new().unwrap();
    let client = Rc::new(Client::new(&io_loop, &[server.addr()], Options::default()));
    let outer: Record = Rc::default();
    let o = outer.clone();
    let context = ExceptionStackContext::new(move |err: &Error| {
        o.borrow_mut()
            .push(format!("{:?}: {}", err.kind(), err.message()));
        true
    });
    let log: Record = Rc::default();
    let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
    let c = client.clone();
    context.run(|| {
        client.set(
            b"k",
            b"v",
            0,
            move |status| {
                l1.borrow_mut().push(format!("set {status:?}"));
                // A bug in the caller's callback, a call later.
                c.get(
                    b"k",
                    |_| panic!("the caller's bug"),
                    move |err| l2.borrow_mut().push(format!("fail {err}")),
                );
            },
            move |err| l3.borrow_mut().push(format!("fail {err}")),
        )
    });
    run_for(&io_loop, Duration::from_millis(300));
    assert_eq!(*log.borrow(), ["set Stored"]);
    assert_eq!(*outer.borrow(), ["Panic: the caller's bug"]);
    assert_eq!(io_loop.timer_stats().pending, 0);
    // The client goes on.
    let (ok, fail) = record(&log);
    client.get(b"k", ok, fail);
    run_for(&io_loop, Duration::from_millis(100));
    assert_eq!(log.borrow()[1], "ok Some([118])");
    client.close();
    io_loop.close();
}

/// Makes one client call and waits for it: its callback's value, or the
/// error its fail_callback got.
fn wait<T: 'static>(
    io_loop: &IOLoop,
    call: impl FnOnce(Box<dyn FnOnce(T)>, Box<dyn FnOnce(Error)>),
) -> Result<T, Error> {
    io_loop.run_sync(
        || {
            let future = squall::Future::new();
            let (ok, failed) = (future.clone(), future.clone());
            call(
                Box::new(move |value| {
                    ok.try_set_result(value);
                }),
                Box::new(move |err| {
                    failed.try_set_error(err);
                }),
            );
            future
        },
        Some(Duration::from_secs(5)),
    )
}

#[test]
fn client_api_round_trips() {
    if !need::ready(&[Peer::Memcached]) {
        return;
    }
    use reply::Status;
    let servers = [Memcached::start().unwrap(), Memcached::start().unwrap()];
    let io_loop = IOLoop::new().unwrap();
    let addrs: Vec<SocketAddr> = servers.iter().map(Memcached::addr).collect();
    let c = Client::new(&io_loop, &addrs, Options::default());
    let l = &io_loop;
    assert_eq!(
        wait(l, |ok, f| c.set(b"k", b"v", 0, ok, f)).unwrap(),
        Status::Stored
    );
    assert_eq!(
        wait(l, |ok, f| c.add(b"k", b"x", 0, ok, f)).unwrap(),
        Status::NotStored
    );
    assert_eq!(
        wait(l, |ok, f| c.replace(b"k", b"w", 0, ok, f)).unwrap(),
        Status::Stored
    );
    assert_eq!(
        wait(l, |ok, f| c.append(b"k", b"z", ok, f)).unwrap(),
        Status::Stored
    );
    assert_eq!(
        wait(l, |ok, f| c.prepend(b"k", b"a", ok, f)).unwrap(),
        Status::Stored
    );
    let item = wait(l, |ok, f| c.get(b"k", ok, f)).unwrap().expect("hit");
    assert_eq!(item.data, b"awz");
    assert_eq!(wait(l, |ok, f| c.get(b"nope", ok, f)).unwrap(), None);

    let values = wait(l, |ok, f| c.get_multi(&[b"k".to_vec()], true, ok, f)).unwrap();
    let unique = values[0]
        .as_ref()
        .and_then(|i| i.cas)
        .expect("gets has a unique");
    assert_eq!(
        wait(l, |ok, f| c.cas(b"k", b"1", unique, ok, f)).unwrap(),
        Status::Stored
    );
    assert_eq!(
        wait(l, |ok, f| c.cas(b"k", b"2", unique, ok, f)).unwrap(),
        Status::Exists
    );
    assert_eq!(wait(l, |ok, f| c.incr(b"k", 41, ok, f)).unwrap(), Some(42));
    assert_eq!(wait(l, |ok, f| c.decr(b"k", 2, ok, f)).unwrap(), Some(40));
    assert_eq!(wait(l, |ok, f| c.incr(b"nope", 1, ok, f)).unwrap(), None);
    assert_eq!(
        wait(l, |ok, f| c.touch(b"k", 60, ok, f)).unwrap(),
        Status::Touched
    );
    assert_eq!(
        wait(l, |ok, f| c.delete(b"k", ok, f)).unwrap(),
        Status::Deleted
    );
    assert_eq!(
        wait(l, |ok, f| c.delete(b"k", ok, f)).unwrap(),
        Status::NotFound
    );
    for i in 0..2 {
        let version = wait(l, |ok, f| c.version(i, ok, f)).unwrap();
        assert!(
            version.starts_with(|ch: char| ch.is_ascii_digit()),
            "{version}"
        );
    }
    // The server's own refusal arrives as the client's `Refused` error, and
    // the connection goes on.
    assert_eq!(
        wait(l, |ok, f| c.set(b"text", b"abc", 0, ok, f)).unwrap(),
        Status::Stored
    );
    let err = wait(l, |ok, f| c.incr(b"text", 1, ok, f)).unwrap_err();
    assert!(
        matches!(client::MemcacheError::of(&err), Some(client::MemcacheError::Refused { line, .. })
            if line.starts_with("CLIENT_ERROR")),
        "{err:?}"
    );
    assert!(wait(l, |ok, f| c.get(b"text", ok, f)).unwrap().is_some());
    assert!(c.servers().iter().all(|s| !s.dead && s.failures == 0));
    c.close();
    assert_eq!(io_loop.timer_stats().pending, 0);
    io_loop.close();
}

#[test]
fn a_client_that_never_reads_holds_one_window_and_loses_nothing() {
    if !need::ready(&[Peer::Memcached]) {
        return;
    }
    let cluster = Cluster::start(2);
    let mut c = cluster.client();
    let big: Vec<u8> = (0..ITEM_SIZE_MAX - 1024).map(|i| (i % 241) as u8).collect();
    assert_eq!(c.set("big", &big).unwrap(), "STORED");
    // Each answer is 16 copies of the value (16 MiB); 16 of them are 256 MiB
    // for a client that reads nothing for now. The proxy writes until the
    // socket is full, then waits, holding one window, not the rest.
    let mut greedy = cluster.client();
    let get = format!("get{}\r\n", " big".repeat(16));
    greedy.send(get.repeat(16).as_bytes()).unwrap();
    thread::sleep(Duration::from_millis(500));
    // Others are served meanwhile.
    for _ in 0..3 {
        assert!(c.get_one("big").unwrap() == Ok(Some(big.clone())));
    }
    let held = stat_of(&mut c, "answer_bytes");
    let most = stat_of(&mut c, "max_connection_answer_bytes");
    assert!(
        held > 0 && held <= ANSWER_BOUND && most <= ANSWER_BOUND,
        "held {held}, at most {most} (bound {ANSWER_BOUND})"
    );
    // Nothing was dropped: read late, every answer arrives whole.
    for i in 0..16 {
        let answer = greedy
            .for_each_value(|_, _, data, _| assert!(data == &big[..], "answer #{i}"))
            .unwrap();
        assert_eq!(answer, Ok(16), "answer #{i}");
    }
    assert!(greedy.cmd("version").unwrap().starts_with("VERSION"));
    drop(greedy);
    // One that leaves without reading: its session and answers are freed.
    let mut leaver = cluster.client();
    leaver.send(get.repeat(16).as_bytes()).unwrap();
    thread::sleep(Duration::from_millis(200));
    drop(leaver);
    cluster.settles_to(&[
        ("curr_connections", "2"),
        ("live_sessions", "2"),
        ("answer_bytes", "0"),
    ]);
    assert!(c.get_one("big").unwrap() == Ok(Some(big)));
}

#[test]
fn an_upstream_lost_mid_answer_leaves_its_keys_out_and_end_comes_last() {
    if !need::ready(&[Peer::Memcached]) {
        return;
    }
    let mut cluster = Cluster::start(2);
    let mut c = cluster.client();
    let window = stat_of(&mut c, "window_keys");
    assert_eq!(window, proxy::WINDOW_BYTES / ITEM_SIZE_MAX);
    let live = cluster.keys_on(0, "mid", 2 * window);
    let lost = cluster.keys_on(1, "mid", window);
    for key in live.iter().chain(&lost) {
        assert_eq!(c.set(key, key.as_bytes()).unwrap(), "STORED");
    }
    cluster.servers[1].kill();
    // A first window of live keys goes out; the next, all on the lost
    // server, cannot be taken back: its keys are left out, the third window
    // follows, and END comes last.
    let asked: Vec<&str> = live[..window]
        .iter()
        .chain(&lost)
        .chain(&live[window..])
        .map(String::as_str)
        .collect();
    let got = c.get(&asked).unwrap().expect("values, then END");
    let got: Vec<&str> = got.iter().map(|(k, ..)| k.as_str()).collect();
    assert_eq!(got, live.iter().map(String::as_str).collect::<Vec<_>>());
    // A get whose first window needs the lost server: nothing went out yet,
    // so the error is the whole answer, as for any command, and no stray
    // END follows it.
    let asked: Vec<&str> = lost.iter().chain(&live).map(String::as_str).collect();
    let line = c.get(&asked).unwrap().expect_err("an error line");
    assert!(line.starts_with("SERVER_ERROR "), "{line}");
    assert_eq!(
        c.cmd("version").unwrap(),
        format!("VERSION {}", proxy::VERSION)
    );
    assert!(cluster.stat("upstream_errors").parse::<u64>().unwrap() >= 2);
    assert_eq!(cluster.stat("answer_bytes"), "0");
}

// ----- issue #26: answers of any size, long multi-gets, binary requests -------------

/// Reads the proxy's counter `name` on the connection `c`.
fn stat_of(c: &mut TextClient, name: &str) -> usize {
    let stats = c.stats().expect("stats");
    stats
        .get(name)
        .unwrap_or_else(|| panic!("no stat {name} in {stats:?}"))
        .parse()
        .expect("a number")
}

/// The most answer bytes the proxy may hold for one connection: its window
/// of keys in flight, plus the few lines of other commands.
const ANSWER_BOUND: usize = proxy::WINDOW_BYTES + 64 * 1024;

#[test]
fn three_hundred_gets_of_a_mebibyte_value_stream_in_bounded_memory() {
    if !need::ready(&[Peer::Memcached]) {
        return;
    }
    let cluster = Cluster::start(2);
    let mut c = cluster.client();
    let value: Vec<u8> = (0..ITEM_SIZE_MAX - 1024).map(|i| (i % 251) as u8).collect();
    assert_eq!(c.set("big", &value).unwrap(), "STORED");
    // A 1.2 KB request for 300 MiB of answer: memcached streams it; so must
    // the proxy, holding a few MiB of it at a time, not all of it.
    let request = format!("get{}\r\n", " big".repeat(300));
    assert!(request.len() < 1300, "{}", request.len());
    c.send(request.as_bytes()).unwrap();
    let mut n = 0;
    let answer = c
        .for_each_value(|key, _, data, _| {
            assert_eq!(key, "big", "value #{n}");
            assert!(data == &value[..], "value #{n} differs");
            n += 1;
        })
        .expect("the whole answer, up to END");
    assert_eq!(answer, Ok(300));
    // The same with `gets`, pipelined behind a `version`.
    c.send(format!("version\r\ngets{}\r\nversion\r\n", " big".repeat(50)).as_bytes())
        .unwrap();
    assert!(c.line().unwrap().starts_with("VERSION"));
    let answer = c
        .for_each_value(|_, _, data, cas| assert!(data == &value[..] && cas.is_some()))
        .unwrap();
    assert_eq!(answer, Ok(50));
    assert!(c.line().unwrap().starts_with("VERSION"));
    let most = stat_of(&mut c, "max_connection_answer_bytes");
    assert!(
        (value.len()..=ANSWER_BOUND).contains(&most),
        "the proxy held {most} bytes of answer for one connection (bound {ANSWER_BOUND})"
    );
    assert_eq!(stat_of(&mut c, "answer_bytes"), 0, "all of it written");
}

#[test]
fn a_multi_get_of_three_thousand_keys_is_answered_whole() {
    if !need::ready(&[Peer::Memcached]) {
        return;
    }
    let cluster = Cluster::start(3);
    let mut c = cluster.client();
    // Keys like memcslap's `--test=mget` ones: 3,000 of them, ~40 bytes each.
    let keys: Vec<String> = (0..3000)
        .map(|i| format!("mget-{i:06}-{}", "k".repeat(30)))
        .collect();
    let mut batch = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        if i % 10 == 7 {
            continue; // a miss
        }
        let v = format!("value {i}");
        batch.extend_from_slice(format!("set {key} 0 0 {} noreply\r\n{v}\r\n", v.len()).as_bytes());
    }
    c.send(&batch).unwrap();
    // Answered after every set before it: all stored by then.
    assert!(c.cmd("version").unwrap().starts_with("VERSION"));
    let line = format!("get {}\r\n", keys.join(" "));
    assert!(line.len() > 100_000, "{}", line.len());
    for name in ["get", "gets"] {
        c.send(format!("{name}{}", &line[3..]).as_bytes()).unwrap();
        let mut got = Vec::new();
        let answer = c
            .for_each_value(|key, _, data, cas| {
                assert_eq!(cas.is_some(), name == "gets");
                got.push((key.to_owned(), data.to_vec()));
            })
            .expect("an answer");
        assert_eq!(answer, Ok(2700), "{name}");
        let want: Vec<(String, Vec<u8>)> = keys
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 10 != 7)
            .map(|(i, k)| (k.clone(), format!("value {i}").into_bytes()))
            .collect();
        assert!(got == want, "{name}: the values, in the order asked");
    }
    assert!(c.cmd("version").unwrap().starts_with("VERSION"));

    // Past the bound: refused, and that connection closed.
    let mut long = cluster.client();
    let mut huge = b"get".to_vec();
    while huge.len() <= protocol::MAX_GET_LINE {
        huge.extend_from_slice(b" some-key");
    }
    long.send(&huge).unwrap();
    assert_eq!(long.line().unwrap(), "CLIENT_ERROR line too long");
    assert!(long.line().is_err(), "the connection should be closed");
}

/// memcslap's own multi-get, as the issue ran it: it stores 3,000 keys
/// through the proxy, asks for all of them in one `get` line of ~120 KB and
/// says how many came back.
#[test]
fn memcslap_mget_of_three_thousand_keys_through_the_proxy() {
    if !need::ready(&[Peer::Memcached, Peer::Memcslap]) {
        return;
    }
    let cluster = Cluster::start(2);
    let output = Command::new("memcslap")
        .arg(format!("--servers=127.0.0.1:{}", cluster.proxy.addr.port()))
        .args(["--test=mget", "--execute-number=3000", "--tcp-nodelay"])
        .output()
        .expect("cannot run memcslap");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Time to mget"))
        .unwrap_or_else(|| panic!("no mget line in {stdout}"));
    assert!(line.contains(" 3000 keys"), "{line}");
    assert_eq!(cluster.stat("upstream_errors"), "0");
}

#[test]
fn a_binary_protocol_request_is_refused_at_once() {
    if !need::ready(&[Peer::Memcached]) {
        return;
    }
    let cluster = Cluster::start(1);
    for request in [
        // A binary GET of "k": magic 0x80, opcode 0, key length 1, body length 1.
        &[
            0x80, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            b'k',
        ][..],
        // Only the magic byte, so far.
        &[0x80][..],
    ] {
        let mut c = cluster.client();
        c.set_read_timeout(Duration::from_secs(1)).unwrap();
        let started = Instant::now();
        c.send(request).unwrap();
        let line = c.line().expect("an answer within 1 s");
        assert_eq!(line, "CLIENT_ERROR binary protocol is not supported");
        let end = c.line().expect_err("closed after the answer");
        assert_eq!(end.kind(), std::io::ErrorKind::UnexpectedEof, "{end}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    // A text client is served as before.
    let mut c = cluster.client();
    assert_eq!(c.set("k", b"v").unwrap(), "STORED");
    cluster.settles_to(&[("curr_connections", "2"), ("live_sessions", "2")]);
}

#[test]
fn client_from_an_async_block() {
    // The article's client, awaited: each call's two callbacks become one
    // Future (examples/memcache_proxy/client_async.rs).
    if !need::ready(&[Peer::Memcached]) {
        return;
    }
    use reply::Status;
    use squall::{gen, ErrorKind};
    let servers = [Memcached::start().unwrap(), Memcached::start().unwrap()];
    let io_loop = IOLoop::new().unwrap();
    let addrs: Vec<SocketAddr> = servers.iter().map(Memcached::addr).collect();
    let c = Rc::new(Client::new(&io_loop, &addrs, Options::default()));
    let silent = Rc::new(Client::new(
        &io_loop,
        &[silent_server()],
        Options {
            timeout: Duration::from_millis(50),
            ..Options::default()
        },
    ));
    let (c2, s2) = (c.clone(), silent.clone());
    let got = io_loop.run_sync(
        move || {
            gen::coroutine(async move {
                let keys: Vec<Vec<u8>> =
                    (0..20).map(|i| format!("async:{i}").into_bytes()).collect();
                // Stored side by side across both servers.
                let stored =
                    gen::multi(keys.iter().map(|k| c2.set_async(k, &k[6..], 0)).collect()).await?;
                assert!(stored.iter().all(|s| *s == Status::Stored));
                let one = c2.get_async(b"async:7").await?.expect("hit");
                assert_eq!(one.data, b"7");
                assert_eq!(c2.get_async(b"async:none").await?, None);
                let many = c2.get_multi_async(&keys, false).await?;
                let values: Vec<Vec<u8>> = many.into_iter().map(|i| i.expect("hit").data).collect();
                let expected: Vec<Vec<u8>> = keys.iter().map(|k| k[6..].to_vec()).collect();
                assert_eq!(values, expected);
                assert_eq!(c2.set_async(b"n", b"40", 0).await?, Status::Stored);
                assert_eq!(c2.incr_async(b"n", 2).await?, Some(42));
                assert_eq!(c2.delete_async(b"n").await?, Status::Deleted);
                assert_eq!(c2.incr_async(b"n", 2).await?, None);
                // The client's own timeout, as an error of the await.
                let err = s2.get_async(b"k").await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
                assert!(client::MemcacheError::of(&err).is_some(), "{err}");
                Ok::<_, Error>(())
            })
        },
        Some(Duration::from_secs(20)),
    );
    got.unwrap();
    // Every call's timeout removed or run.
    run_for(&io_loop, Duration::from_millis(10));
    assert_eq!(io_loop.timer_stats().pending, 0);
    c.close();
    silent.close();
    io_loop.close();
}
