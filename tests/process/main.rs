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
//!
//! The tests are in `cases`, the server the binary becomes in `server_role`;
//! here, the harness: the servers (and nginx) driven from outside, and the
//! runner.

#[path = "../common/peers.rs"]
mod need;
#[path = "../common/nginx.rs"]
mod nginx_kit;
#[cfg(feature = "tls")]
#[path = "../common/tls.rs"]
mod tls_kit;

mod cases;
mod server_role;

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

use squall::{process, ErrorKind, IOLoop, IOStream, TCPServer};

use cases::{Test, TESTS};
use server_role::server_role;

const ROLE_ENV: &str = "SQUALL_PROCESS_TEST_ROLE";
/// The whole run is killed past this (servers first).
const WATCHDOG: Duration = Duration::from_secs(180);

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
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
