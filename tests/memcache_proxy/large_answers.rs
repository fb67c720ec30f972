//! Issue #26: answers of any size streamed in bounded memory, long
//! multi-gets, binary-protocol requests refused.

use super::*;

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
