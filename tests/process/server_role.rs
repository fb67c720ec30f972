//! The server role: what this binary runs as when started with
//! `SQUALL_PROCESS_TEST_ROLE=server` (see `Server::start`): it binds, forks
//! and serves, the way its settings in the environment say.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use squall::http::HTTPServer;
use squall::netutil::BindOptions;
use squall::web::{Application, Exchange, RequestHandler};
use squall::{netutil, process, ErrorKind, Future, IOLoop, IOStream, TCPServer};

use super::env_or;

/// The server: binds 127.0.0.1:0, prints `PORT n`, forks, serves.
///
/// Settings: `PROCS` (2), `MAX_RESTARTS` (none), `REUSE_PORT` (0/1), `API`
/// (`fork`: `bind_sockets` + `fork_processes` + `add_sockets`, the seed
/// article's way; `tcpserver`: `bind` + `start_max_restarts(n, ..)`).
pub(super) fn server_role() -> Result<(), Box<dyn std::error::Error>> {
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
