//! The proxy between clients and real memcached processes: round trips,
//! concurrency, upstreams that die or freeze, bad input, pipelining.

use super::*;

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
