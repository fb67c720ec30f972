//! The fifth seed article's multi-process server: `bind_sockets`, then
//! `fork_processes(2)`, then in each child a loop and a server on the shared
//! sockets, answering every request with its pid and task id.
//!
//! Usage:
//!
//! ```text
//! multiprocess [PORT]          serve forever on 127.0.0.1:PORT (default 8090; 0 picks
//!                              a free port) with 2 processes; Ctrl-C or SIGTERM stops
//!                              the parent, which stops the children gracefully
//! multiprocess --reuse-port [PORT]
//!                              the same, each child on its own SO_REUSEPORT socket
//!                              (HTTPServer::bind + start(2))
//! multiprocess --xheaders ...  trust X-Real-IP / X-Forwarded-For (behind nginx)
//! multiprocess --self-test     what CI runs, for each mode: start the server as a
//!                              subprocess, make requests until two pids answered,
//!                              SIGTERM the parent, check that everything exited
//! ```
//!
//! Try it: `cargo run --release --example multiprocess`, then
//! `curl http://127.0.0.1:8090/` a few times (or `ps -f --forest` to see the
//! three processes). Each child serves with its own `HTTPServer`.
//!
//! ci-args: --self-test

use squall::netutil::BindOptions;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use squall::http::HTTPServer;
use squall::web::{Application, Exchange, RequestHandler};
use squall::{netutil, process, Error, IOLoop};

const DEFAULT_PORT: u16 = 8090;
const PROCESSES: usize = 2;
/// How long a child gives requests in flight when asked to stop.
const GRACE: Duration = Duration::from_secs(5);

/// Every request: this process's pid and task id, and the client's address
/// (from `X-Real-IP` when started with `--xheaders` behind a proxy).
struct WhoAmI;

impl RequestHandler for WhoAmI {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_header("Content-Type", "text/plain")?;
        x.write(format!(
            "pid {} task {} remote {}\n",
            std::process::id(),
            process::task_id().map_or("-".to_string(), |t| t.to_string()),
            x.request().remote_ip()
        ));
        Ok(())
    }
}

fn new_server(xheaders: bool) -> HTTPServer {
    let server = HTTPServer::new(Application::new().route("/", || WhoAmI));
    server.set_xheaders(xheaders);
    server
}

fn serve(port: u16, reuse_port: bool, xheaders: bool) -> Result<(), Box<dyn std::error::Error>> {
    let server = new_server(xheaders);
    if reuse_port {
        // Tornado's `server.bind(); server.start(n)`: start(n) forks, and each child binds
        // its own SO_REUSEPORT socket on the port (and stops gracefully on
        // SIGTERM).
        server.bind_with(
            port,
            BindOptions::new().address("127.0.0.1").reuse_port(true),
        )?;
        announce(server.local_addrs()[0], "one SO_REUSEPORT socket per child")?;
        server.start(PROCESSES)?;
    } else {
        // Article 5: bind first (the children share these sockets)...
        let sockets = netutil::bind_sockets_with(port, BindOptions::new().address("127.0.0.1"))?;
        announce(sockets[0].local_addr()?, "shared sockets")?;
        // ...then fork: this returns in each child (the parent supervises).
        let task = process::fork_processes(PROCESSES)?;
        log::info!("task {task} is pid {}", std::process::id());
        // Only now the child's own loop.
        server.add_sockets(sockets)?;
        server.shutdown_on_signals(&IOLoop::current(), &[libc::SIGTERM, libc::SIGINT], GRACE)?;
    }
    IOLoop::current().start()?;
    log::info!(
        "task {:?} (pid {}) stopped gracefully",
        process::task_id(),
        std::process::id()
    );
    Ok(())
}

/// Printed once, before the fork (the self-test reads this line).
fn announce(addr: SocketAddr, how: &str) -> std::io::Result<()> {
    println!("listening on http://{addr}/ with {PROCESSES} processes, {how}");
    std::io::stdout().flush()
}

/// Kills the server's whole process group if the self-test fails midway.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        // SAFETY: kill(2) of the process group we created for the server.
        unsafe { libc::kill(-(self.0.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

fn get(addr: SocketAddr) -> std::io::Result<String> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut response = String::new();
    conn.read_to_string(&mut response)?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
        _ => Err(std::io::Error::other(format!("bad response {response:?}"))),
    }
}

fn self_test() -> Result<(), Box<dyn std::error::Error>> {
    test_mode(&[])?;
    test_mode(&["--reuse-port"])
}

/// Runs `multiprocess ARGS 0` as a subprocess and checks it (see `main`).
fn test_mode(args: &[&str]) -> Result<(), Box<dyn std::error::Error>> {
    let mut server = Command::new(std::env::current_exe()?);
    server
        .args(args)
        .arg("0")
        .stdout(Stdio::piped())
        .process_group(0);
    let mut server = Reaper(server.spawn()?);
    let pgid = server.0.id() as libc::pid_t;
    let stdout = server.0.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(10))?;
    let addr: SocketAddr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .ok_or_else(|| format!("unexpected first line {line:?}"))?
        .parse()?;
    println!("server (pid {pgid}): {line}");
    // Reuse-port sockets listen once a child has bound its own: until then,
    // connections are refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(err) = get(addr) {
        if Instant::now() > deadline {
            return Err(format!("the server never answered: {err}").into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    // Requests until two processes answered (at least 20, for at most 10 s:
    // on a busy machine a child may be slow to start).
    let mut by_pid: BTreeMap<String, usize> = BTreeMap::new();
    let started = Instant::now();
    let mut requests = 0;
    while requests < 20 || (by_pid.len() < 2 && started.elapsed() < Duration::from_secs(10)) {
        let body = get(addr)?;
        let pid = body.split_whitespace().nth(1).unwrap_or("?").to_string();
        *by_pid.entry(pid).or_default() += 1;
        requests += 1;
    }
    println!(
        "{requests} requests in {:.2?}, answered by pid: {by_pid:?}",
        started.elapsed()
    );
    if by_pid.len() < 2 {
        return Err(format!("only one process answered: {by_pid:?}").into());
    }

    // SIGTERM to the parent: it passes it on, the children drain and exit 0.
    // SAFETY: kill(2) of the server's parent process, which we started.
    unsafe { libc::kill(pgid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.0.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            return Err("the server did not stop within 10 s of SIGTERM".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if !status.success() {
        return Err(format!("the server exited with {status}").into());
    }
    // The children exit before the parent does; none may be left.
    // SAFETY: kill(2) with signal 0 only checks whether the group exists.
    let left = unsafe { libc::kill(-pgid, 0) } == 0;
    if left {
        return Err("processes of the server are still running".into());
    }
    println!("SIGTERM: the parent and both children exited (status 0); ok\n");
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let reuse_port = args.iter().any(|a| a == "--reuse-port");
    let xheaders = args.iter().any(|a| a == "--xheaders");
    let rest: Vec<&String> = args
        .iter()
        .filter(|a| !a.starts_with("--") || *a == "--self-test" || *a == "--help")
        .collect();
    match rest.first().map(|s| s.as_str()) {
        Some("--self-test") => self_test(),
        Some("-h") | Some("--help") => {
            println!("usage: multiprocess [--reuse-port] [--xheaders] [PORT] | --self-test");
            Ok(())
        }
        Some(port) => {
            let port: u16 = port.parse().map_err(|_| format!("bad port {port:?}"))?;
            serve(port, reuse_port, xheaders)
        }
        None => serve(DEFAULT_PORT, reuse_port, xheaders),
    }
}
