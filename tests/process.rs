//! Multi-process serving, tested from outside.
//!
//! This test binary has its own `main` (`harness = false` in Cargo.toml): a
//! process that forks must have one thread, and libtest runs tests on
//! threads. So the binary runs itself again as the server, with
//! `SQUALL_PROCESS_TEST_ROLE=server` and its settings in the environment,
//! and talks to it over HTTP/1.0 on 127.0.0.1. Every server runs in its own
//! process group, killed (`SIGKILL` to the whole group) when its guard drops,
//! and by a watchdog if the run takes too long: no orphan survives a failed
//! test.
//!
//! `cargo test --test process [NAME...]` runs the tests whose names contain
//! one of the NAMEs (all without).

#[path = "common/peers.rs"]
mod need;
#[path = "common/nginx.rs"]
mod nginx_kit;
#[cfg(feature = "tls")]
#[path = "common/tls.rs"]
mod tls_kit;
use need::Peer;
use squall::netutil::BindOptions;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use squall::http::HTTPServer;
use squall::web::{Application, Exchange, RequestHandler};
use squall::{netutil, process, ErrorKind, Future, IOLoop, IOStream, TCPServer};

const ROLE_ENV: &str = "SQUALL_PROCESS_TEST_ROLE";
/// The whole run is killed past this (servers first).
const WATCHDOG: Duration = Duration::from_secs(180);

// ----- the server role -------------------------------------------------------

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// The server: binds 127.0.0.1:0, prints `PORT n`, forks, serves.
///
/// Settings: `PROCS` (2), `MAX_RESTARTS` (none), `REUSE_PORT` (0/1), `API`
/// (`fork`: `bind_sockets` + `fork_processes` + `add_sockets`, the seed
/// article's way; `tcpserver`: `bind` + `start_max_restarts(n, ..)`).
fn server_role() -> Result<(), Box<dyn std::error::Error>> {
    let procs: usize = env_or("PROCS", "2").parse()?;
    let max_restarts: usize = match std::env::var("MAX_RESTARTS") {
        Ok(v) => v.parse()?,
        Err(_) => process::DEFAULT_MAX_RESTARTS,
    };
    let reuse_port = env_or("REUSE_PORT", "0") == "1";
    let counter = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let c = counter.clone();
    let server = TCPServer::new(move |stream: IOStream, peer: SocketAddr| {
        c.set(c.get() + 1);
        handle(stream, peer)
    });
    let announce = |port: u16| {
        println!("PORT {port}");
        std::io::stdout().flush()
    };
    #[cfg(feature = "tls")]
    if env_or("API", "tcpserver") == "https" {
        // HTTPS from files loaded once, before the fork: every child
        // serves with the configuration the parent built.
        let http = HTTPServer::new(Application::new().route("/", || WhoAmI));
        http.set_ssl_options(squall::tls::ServerOptions::new(
            std::path::PathBuf::from(env_or("CERT", "")),
            std::path::PathBuf::from(env_or("KEY", "")),
        ))?;
        http.bind_with(
            0,
            BindOptions::new()
                .address("127.0.0.1")
                .reuse_port(reuse_port),
        )?;
        announce(http.local_addrs()[0].port())?;
        http.start(procs)?;
        IOLoop::current().start()?;
        return Ok(());
    }
    if env_or("API", "tcpserver") == "http" {
        // The real HTTPServer, trusting the proxy's headers.
        let http = HTTPServer::new(Application::new().route("/", || WhoAmI));
        http.set_xheaders(true);
        http.bind_with(
            0,
            BindOptions::new()
                .address("127.0.0.1")
                .reuse_port(reuse_port),
        )?;
        announce(http.local_addrs()[0].port())?;
        http.start(procs)?;
    } else if env_or("API", "tcpserver") == "fork" {
        let sockets = netutil::bind_sockets_with(
            0,
            BindOptions::new()
                .address("127.0.0.1")
                .reuse_port(reuse_port),
        )?;
        announce(sockets[0].local_addr()?.port())?;
        process::fork_processes_max_restarts(procs, max_restarts)?;
        server.add_sockets(sockets)?;
        server.shutdown_on_signals(
            &IOLoop::current(),
            &[libc::SIGTERM, libc::SIGINT],
            Duration::from_secs(5),
        )?;
    } else {
        server.bind_with(
            0,
            BindOptions::new()
                .address("127.0.0.1")
                .reuse_port(reuse_port),
        )?;
        announce(server.local_addrs()[0].port())?;
        server.start_max_restarts(procs, max_restarts)?;
    }
    IOLoop::current().start()?;
    println!(
        "ACCEPTED task={} pid={} n={}",
        process::task_id().map_or(-1, |t| t as i64),
        std::process::id(),
        counter.get()
    );
    std::io::stdout().flush()?;
    Ok(())
}

/// `GET /` on `HTTPServer`: the same answer as [`handle`]'s, with Tornado's
/// `remote_ip` (from `X-Real-IP` under `set_xheaders(true)`).
struct WhoAmI;

impl RequestHandler for WhoAmI {
    fn get(&mut self, x: &Exchange) -> Result<(), squall::Error> {
        x.write(format!(
            "pid {} task {} remote {}\n",
            std::process::id(),
            process::task_id().map_or(-1, |t| t as i64),
            x.request().remote_ip()
        ));
        Ok(())
    }
}

/// `GET /` answers `pid P task T remote ADDR`; `/slow/MS` answers after MS ms;
/// `/exit/CODE` answers, then the process exits with CODE.
fn handle(stream: IOStream, peer: SocketAddr) -> Future<()> {
    let done = Future::new();
    let (d, s) = (done.clone(), stream.clone());
    stream
        .read_until_max_bytes(b"\r\n\r\n", 16 * 1024)
        .add_done_callback(move |head: &Future<Vec<u8>>| {
            let head = match head.take_result() {
                Ok(head) => head,
                Err(err) => {
                    s.close();
                    if err.kind() != ErrorKind::StreamClosed {
                        d.try_set_error(err);
                    } else {
                        d.try_set_result(());
                    }
                    return;
                }
            };
            let head = String::from_utf8_lossy(&head).into_owned();
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            // Behind a trusted proxy, the client's address is in X-Real-IP
            // (what Tornado's xheaders=True reads); else it is the peer's.
            let remote = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("x-real-ip")
                        .then(|| value.trim().to_string())
                })
                .unwrap_or_else(|| peer.ip().to_string());
            let body = format!(
                "pid {} task {} remote {remote}\n",
                std::process::id(),
                process::task_id().map_or(-1, |t| t as i64)
            );
            let respond = move |exit: Option<i32>| {
                let response = format!(
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let s2 = s.clone();
                s.write(response).add_done_callback(move |w: &Future<()>| {
                    s2.close();
                    if let Some(code) = exit {
                        std::process::exit(code);
                    }
                    d.try_complete(w.take_result());
                });
            };
            if let Some(code) = path.strip_prefix("/exit/") {
                respond(Some(code.parse().unwrap_or(1)));
            } else if let Some(ms) = path.strip_prefix("/slow/") {
                let ms = ms.parse().unwrap_or(0);
                IOLoop::current().call_later(Duration::from_millis(ms), move || respond(None));
            } else {
                respond(None);
            }
        });
    done
}

// ----- the driver's side ------------------------------------------------------

/// Process groups of the servers alive, for the watchdog.
static GROUPS: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

fn kill_group(pgid: libc::pid_t) {
    // SAFETY: kill(2) of a process group this binary created.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

/// A server subprocess (a process group); killed whole on drop.
struct Server {
    child: Child,
    pgid: libc::pid_t,
    addr: SocketAddr,
    lines: Receiver<String>,
}

impl Server {
    fn start(settings: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.env(ROLE_ENV, "server")
            .env("RUST_LOG", env_or("RUST_LOG", "warn"))
            .stdout(Stdio::piped())
            .process_group(0);
        for (k, v) in settings {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn the server");
        let pgid = child.id() as libc::pid_t;
        GROUPS.lock().unwrap().push(pgid);
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            pgid,
            addr: "127.0.0.1:1".parse().unwrap(),
            lines,
        };
        let line = server.line(Duration::from_secs(10)).expect("the PORT line");
        let port: u16 = line
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        server.addr = SocketAddr::from(([127, 0, 0, 1], port));
        // With reuse-port sockets, nothing listens until a child has bound
        // its own: connections are refused until then. (One request.)
        // (An HTTPS server is probed by its test, over TLS.)
        if settings.contains(&("API", "https")) {
            return server;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Err(err) = server.whoami() {
            assert!(
                Instant::now() < deadline,
                "the server never answered: {err}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }

    fn line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// `GET path`; the body.
    fn get(&self, path: &str) -> std::io::Result<String> {
        let mut conn = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        conn.set_write_timeout(Some(Duration::from_secs(5)))?;
        write!(conn, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut response = String::new();
        conn.read_to_string(&mut response)?;
        match response.split_once("\r\n\r\n") {
            Some((head, body)) if is_200(head) => Ok(body.to_string()),
            _ => Err(std::io::Error::other(format!("bad response {response:?}"))),
        }
    }

    /// `GET /`: (pid, task).
    fn whoami(&self) -> std::io::Result<(u32, i64)> {
        parse_whoami(&self.get("/")?)
    }

    /// Requests (at least 20) until every task in `0..n` answered, for at
    /// most 10 s (a child may be slow to start on a busy machine): task ->
    /// pid, and the count of answers per pid.
    fn learn_tasks(&self, n: i64) -> (BTreeMap<i64, u32>, BTreeMap<u32, usize>) {
        let mut tasks = BTreeMap::new();
        let mut counts = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let (pid, task) = self.whoami().expect("GET /");
            tasks.insert(task, pid);
            *counts.entry(pid).or_insert(0) += 1;
            if (0..n).all(|t| tasks.contains_key(&t)) && counts.values().sum::<usize>() >= 20 {
                break;
            }
        }
        (tasks, counts)
    }

    fn signal(&self, signum: i32) {
        // SAFETY: kill(2) of the server's parent, our own child (not reaped
        // yet: we reap only in `wait_exit`).
        unsafe { libc::kill(self.pgid, signum) };
    }

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server's parent did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether no process of the group is left (given a moment).
    fn group_gone(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            // SAFETY: signal 0 only checks whether the group exists.
            if unsafe { libc::kill(-self.pgid, 0) } != 0 {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The `ACCEPTED` lines the children printed on a graceful stop: task -> n.
    fn accepted_counts(&self) -> BTreeMap<i64, u64> {
        let mut counts = BTreeMap::new();
        while let Some(line) = self.line(Duration::from_secs(2)) {
            let field = |name: &str| -> Option<String> {
                line.split_whitespace()
                    .find_map(|f| f.strip_prefix(name).map(str::to_string))
            };
            if line.starts_with("ACCEPTED") {
                let task: i64 = field("task=").unwrap().parse().unwrap();
                let n: u64 = field("n=").unwrap().parse().unwrap();
                *counts.entry(task).or_insert(0) += n;
            }
        }
        counts
    }

    /// SIGTERM to the parent; checks it exits 0 soon and leaves nothing.
    fn stop_gracefully(&mut self) {
        self.signal(libc::SIGTERM);
        let status = self.wait_exit(Duration::from_secs(8));
        assert_eq!(
            status.code(),
            Some(0),
            "parent status after SIGTERM: {status}"
        );
        assert!(self.group_gone(), "processes left after SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        kill_group(self.pgid);
        let _ = self.child.wait();
        GROUPS.lock().unwrap().retain(|&g| g != self.pgid);
    }
}

/// Whether a response head says `200` (HTTP/1.0 from the hand-written
/// server, HTTP/1.1 from `HTTPServer` and nginx).
fn is_200(head: &str) -> bool {
    head.starts_with("HTTP/1.") && head.get(8..13) == Some(" 200 ")
}

fn parse_whoami(body: &str) -> std::io::Result<(u32, i64)> {
    let words: Vec<&str> = body.split_whitespace().collect();
    match words.as_slice() {
        ["pid", pid, "task", task, ..] => Ok((
            pid.parse().map_err(std::io::Error::other)?,
            task.parse().map_err(std::io::Error::other)?,
        )),
        _ => Err(std::io::Error::other(format!("bad body {body:?}"))),
    }
}

// ----- the tests ---------------------------------------------------------------

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

/// nginx on a free loopback port, proxying to `upstream`, in its own
/// process group (known to the watchdog; stopped on drop).
struct Nginx {
    inner: nginx_kit::Nginx,
    addr: SocketAddr,
}

impl Nginx {
    fn start(upstream: SocketAddr) -> Nginx {
        // The configuration docs/deployment.md shows, on test ports.
        let inner = nginx_kit::Nginx::start_with(
            |_| format!("upstream squall {{ server {upstream}; }}"),
            |_| {
                r#"location / {
            proxy_pass http://squall;
            proxy_set_header Host $http_host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Scheme $scheme;
            proxy_redirect off;
        }"#
                .to_string()
            },
            false,
            |cmd| {
                cmd.process_group(0);
            },
        );
        GROUPS.lock().unwrap().push(inner.pid() as libc::pid_t);
        let addr = inner.addr;
        Nginx { inner, addr }
    }

    /// `GET /` through nginx from 127.0.0.2 (loopback, but not the address
    /// nginx itself connects from), with an `X-Forwarded-For` of our own.
    fn get_from_elsewhere(&self) -> std::io::Result<String> {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        socket.bind(&SocketAddr::from(([127, 0, 0, 2], 0)).into())?;
        socket.connect_timeout(&self.addr.into(), Duration::from_secs(2))?;
        let mut conn: TcpStream = socket.into();
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            conn,
            "GET / HTTP/1.0\r\nHost: example.test\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n"
        )?;
        let mut response = String::new();
        conn.read_to_string(&mut response)?;
        match response.split_once("\r\n\r\n") {
            Some((head, body)) if is_200(head) => Ok(body.to_string()),
            _ => Err(std::io::Error::other(format!("bad response {response:?}"))),
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let pgid = self.inner.pid() as libc::pid_t;
        GROUPS.lock().unwrap().retain(|&g| g != pgid);
    }
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

impl Server {
    /// A handle for other threads: only the address.
    fn probe(addr: SocketAddr) -> Probe {
        Probe { addr }
    }
}

struct Probe {
    addr: SocketAddr,
}

impl Probe {
    fn get(&self, path: &str) -> std::io::Result<String> {
        let mut conn = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(conn, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut response = String::new();
        conn.read_to_string(&mut response)?;
        match response.split_once("\r\n\r\n") {
            Some((head, body)) if is_200(head) => Ok(body.to_string()),
            _ => Err(std::io::Error::other(format!("bad response {response:?}"))),
        }
    }

    fn whoami(&self) -> std::io::Result<(u32, i64)> {
        parse_whoami(&self.get("/")?)
    }
}

// ----- the runner ----------------------------------------------------------------

type Test = (&'static str, fn());

const TESTS: &[Test] = &[
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

fn main() {
    if std::env::var(ROLE_ENV).is_ok() {
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
        if let Err(err) = server_role() {
            eprintln!("server role: {err}");
            std::process::exit(2);
        }
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in TESTS {
            println!("{name}: test");
        }
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<&Test> = TESTS
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();

    std::thread::spawn(|| {
        std::thread::sleep(WATCHDOG);
        eprintln!("process tests: watchdog: still running after {WATCHDOG:?}; killing the servers");
        for &pgid in GROUPS.lock().unwrap().iter() {
            kill_group(pgid);
        }
        std::process::exit(101);
    });

    println!("\nrunning {} tests", selected.len());
    let mut failed = Vec::new();
    for (name, test) in &selected {
        println!("test {name} ...");
        let started = Instant::now();
        match std::panic::catch_unwind(test) {
            Ok(()) => println!("test {name} ... ok ({:.2?})", started.elapsed()),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    let groups = GROUPS.lock().unwrap().clone();
    assert!(groups.is_empty(), "server groups left: {groups:?}");
    if failed.is_empty() {
        println!("\ntest result: ok. {} passed", selected.len());
    } else {
        println!("\ntest result: FAILED. failures: {failed:?}");
        std::process::exit(101);
    }
}
