//! The tests, run in the order of [`TESTS`] (each in the driver's process,
//! against servers it starts): requests spread over the children, restarts,
//! shutdowns, no orphans, HTTPS and nginx in front.

use super::*;

fn spread(settings: &[(&str, &str)]) {
    let mut server = Server::start(settings);
    let (tasks, counts) = server.learn_tasks(2);
    println!("    answers per pid: {counts:?}; task -> pid: {tasks:?}");
    assert_eq!(tasks.len(), 2, "both tasks answer: {tasks:?}");
    assert_eq!(counts.len(), 2, "two distinct pids: {counts:?}");
    assert!(
        !counts.contains_key(&(server.pgid as u32)),
        "the parent never serves"
    );
    server.stop_gracefully();
}

fn requests_spread_over_two_pids_shared_socket() {
    spread(&[("API", "fork")]);
}

fn requests_spread_over_two_pids_reuse_port() {
    spread(&[("API", "tcpserver"), ("REUSE_PORT", "1")]);
}

fn n_requests_get_exactly_n_responses() {
    const THREADS: usize = 4;
    const EACH: usize = 50;
    let mut server = Server::start(&[("API", "tcpserver")]);
    let addr = server.addr;
    let clients: Vec<_> = (0..THREADS)
        .map(|_| {
            std::thread::spawn(move || {
                let probe = Server::probe(addr);
                (0..EACH)
                    .map(|_| probe.whoami().expect("every request is answered"))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let answers: Vec<(u32, i64)> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert_eq!(answers.len(), THREADS * EACH);
    server.stop_gracefully();
    // Each child counted the connections it accepted: together, exactly one
    // per request (none accepted twice, none lost), plus the readiness probe.
    let counts = server.accepted_counts();
    println!("    connections accepted per task: {counts:?}");
    assert_eq!(counts.values().sum::<u64>(), (THREADS * EACH) as u64 + 1);
}

fn kill_9_child_restarts_with_same_task_id() {
    let mut server = Server::start(&[("API", "tcpserver")]);
    let (tasks, _) = server.learn_tasks(2);
    let victim = tasks[&0];
    // A steady client for the whole time.
    let addr = server.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let steady = std::thread::spawn(move || {
        let probe = Server::probe(addr);
        let (mut ok, mut failed) = (0, 0);
        while !s.load(std::sync::atomic::Ordering::Relaxed) {
            match probe.whoami() {
                Ok(_) => ok += 1,
                Err(_) => failed += 1,
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (ok, failed)
    });
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: kill(2) of a child of the server we started (seen answering).
    unsafe { libc::kill(victim as libc::pid_t, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let new_pid = loop {
        let (pid, task) = server.whoami().expect("the service keeps answering");
        if task == 0 && pid != victim {
            break pid;
        }
        assert!(Instant::now() < deadline, "task 0 was not restarted");
    };
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = steady.join().unwrap();
    println!("    task 0: pid {victim} killed, restarted as pid {new_pid}; steady client: {ok} ok, {failed} failed");
    assert!(ok > 10, "the steady client was served");
    assert!(
        failed <= 3,
        "at most the requests in flight in the killed child fail"
    );
    server.stop_gracefully();
}

fn child_exiting_0_is_not_restarted() {
    let mut server = Server::start(&[("API", "tcpserver")]);
    let (gone_pid, gone_task) = parse_whoami(&server.get("/exit/0").unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..30 {
        let (pid, task) = server.whoami().expect("the other child answers");
        assert_ne!(task, gone_task, "task {gone_task} came back");
        assert_ne!(pid, gone_pid);
    }
    // The last child exits 0 too: the parent is done, with status 0.
    server.get("/exit/0").unwrap();
    let status = server.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(server.group_gone());
}

fn max_restarts_exhausted_ends_parent_with_error() {
    let mut server = Server::start(&[("API", "fork"), ("MAX_RESTARTS", "1")]);
    server.get("/exit/3").unwrap(); // restart 1: allowed
    server.get("/exit/3").unwrap(); // restart 2: one too many
    let status = server.wait_exit(Duration::from_secs(8));
    println!("    parent: {status}");
    assert!(status.code().is_some_and(|c| c != 0), "{status}");
    assert!(server.group_gone(), "the other child was stopped too");
}

fn sigterm_lets_requests_in_flight_finish_and_leaves_nothing() {
    let mut server = Server::start(&[("API", "tcpserver")]);
    server.learn_tasks(2);
    let probe = Server::probe(server.addr);
    let slow = std::thread::spawn(move || probe.get("/slow/800"));
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(5));
    let took = started.elapsed();
    let answer = slow.join().unwrap();
    println!("    stopped in {took:.2?}; the request in flight got {answer:?}");
    assert!(answer.is_ok(), "the request in flight was finished");
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(server.group_gone());
}

fn sigkill_of_the_parent_leaves_no_orphan() {
    let server = Server::start(&[("API", "fork")]);
    let (tasks, _) = server.learn_tasks(2);
    server.signal(libc::SIGKILL);
    // The children get SIGTERM from the kernel (PR_SET_PDEATHSIG).
    let deadline = Instant::now() + Duration::from_secs(5);
    for &pid in tasks.values() {
        while running(pid) {
            assert!(Instant::now() < deadline, "child {pid} outlived its parent");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Whether `pid` is a live process: not gone, and not a zombie (an orphan
/// is reaped by whatever adopted it, maybe late).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

fn fork_processes_is_refused_with_threads_then_after_an_ioloop() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || rx.recv());
    let err = process::fork_processes(2).unwrap_err();
    assert!(err.to_string().contains("thread"), "{err}");
    drop(tx);
    let _ = other.join();

    let _io_loop = IOLoop::new().unwrap();
    let err = process::fork_processes(2).unwrap_err();
    assert!(err.to_string().contains("IOLoop"), "{err}");
    let server = TCPServer::new(|_: IOStream, _: SocketAddr| ());
    server
        .bind_with(0, BindOptions::new().address("127.0.0.1"))
        .unwrap();
    let err = server.start(2).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
    assert_eq!(process::task_id(), None);
}

/// `HTTPServer::set_ssl_options` + `bind` + `start(2)`: both children
/// answer over TLS, each handshake verified against the test CA.
#[cfg(feature = "tls")]
fn https_with_start_two_serves_from_both_children() {
    let certs = tls_kit::Certs::new("process CA");
    let files = certs.write_files(&tls_kit::temp_dir("process-tls"));
    let mut server = Server::start(&[
        ("API", "https"),
        ("CERT", files.cert.to_str().unwrap()),
        ("KEY", files.key.to_str().unwrap()),
    ]);
    let mut pids = BTreeMap::new();
    for i in 0..200 {
        let mut conn = tls_kit::tls_connect(server.addr, certs.client_config(), "localhost");
        let (status, body) = tls_kit::https_exchange(
            &mut conn,
            b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(status, "HTTP/1.1 200 OK");
        let (pid, _task) = parse_whoami(&String::from_utf8_lossy(&body)).unwrap();
        *pids.entry(pid).or_insert(0) += 1;
        if pids.len() >= 2 && i >= 20 {
            break;
        }
    }
    println!("    over TLS, answers per pid: {pids:?}");
    assert_eq!(pids.len(), 2, "{pids:?}");
    server.stop_gracefully();
    let _ = std::fs::remove_dir_all(files.ca.parent().unwrap());
}

fn behind_nginx_with_the_client_address_in_x_real_ip() {
    if !need::ready(&[Peer::Nginx]) {
        return;
    }
    // HTTPServer::bind + start(2), with xheaders: the handler's remote_ip
    // is the client's, read from the X-Real-IP nginx sets.
    let mut server = Server::start(&[("API", "http")]);
    let nginx = Nginx::start(server.addr);
    let mut pids = BTreeMap::new();
    for i in 0..200 {
        let body = nginx.get_from_elsewhere().expect("GET through nginx");
        let (pid, _task) = parse_whoami(&body).unwrap();
        assert!(
            body.trim_end().ends_with("remote 127.0.0.2"),
            "the handler sees the client's address, not nginx's: {body:?}"
        );
        *pids.entry(pid).or_insert(0) += 1;
        if pids.len() >= 2 && i >= 20 {
            break;
        }
    }
    println!("    through nginx, answers per pid: {pids:?}");
    assert_eq!(pids.len(), 2, "{pids:?}");
    drop(nginx);
    server.stop_gracefully();
}

pub(super) type Test = (&'static str, fn());

pub(super) const TESTS: &[Test] = &[
    // First: it needs a process with no IOLoop yet.
    (
        "fork_processes_is_refused_with_threads_then_after_an_ioloop",
        fork_processes_is_refused_with_threads_then_after_an_ioloop,
    ),
    #[cfg(feature = "tls")]
    (
        "https_with_start_two_serves_from_both_children",
        https_with_start_two_serves_from_both_children,
    ),
    (
        "requests_spread_over_two_pids_shared_socket",
        requests_spread_over_two_pids_shared_socket,
    ),
    (
        "requests_spread_over_two_pids_reuse_port",
        requests_spread_over_two_pids_reuse_port,
    ),
    (
        "n_requests_get_exactly_n_responses",
        n_requests_get_exactly_n_responses,
    ),
    (
        "kill_9_child_restarts_with_same_task_id",
        kill_9_child_restarts_with_same_task_id,
    ),
    (
        "child_exiting_0_is_not_restarted",
        child_exiting_0_is_not_restarted,
    ),
    (
        "max_restarts_exhausted_ends_parent_with_error",
        max_restarts_exhausted_ends_parent_with_error,
    ),
    (
        "sigterm_lets_requests_in_flight_finish_and_leaves_nothing",
        sigterm_lets_requests_in_flight_finish_and_leaves_nothing,
    ),
    (
        "sigkill_of_the_parent_leaves_no_orphan",
        sigkill_of_the_parent_leaves_no_orphan,
    ),
    (
        "behind_nginx_with_the_client_address_in_x_real_ip",
        behind_nginx_with_the_client_address_in_x_real_ip,
    ),
];
