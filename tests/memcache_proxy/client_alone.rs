//! The proxy's memcache client on its own, on a loop of the test's: its
//! timeouts, dead servers, errors in callbacks, flow control, and the same
//! client awaited from an `async` block.

use super::*;

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
