//! The third seed article's blocking handler, moved onto a thread pool.
//!
//! In the article, a handler that calls a slow backend with a plain blocking
//! socket stalls the whole single-threaded server: 4 fetches in 10 s. Here
//! the same blocking call runs on a `ThreadPoolExecutor`, and the loop stays
//! free. Two loops, on two threads, play the parts:
//!
//! - the slow **backend** (its own thread and loop, as the article's echo
//!   server was its own process): read a line, wait `job-secs` with
//!   `call_later`, echo it, close;
//! - the **front** server, a line protocol: `work N` runs
//!   `blocking_fetch(N)` — a blocking `std::net::TcpStream` round trip to
//!   the backend, exactly the article's blocking handler — on the pool and
//!   answers `done N <worker thread>`; `ping` answers `pong` at once;
//! - on the front's loop, the **clients**: `jobs` connections sending
//!   `work N` all at once, and a pinger sending `ping` every 100 ms and
//!   timing each answer.
//!
//! With `workers` threads the jobs finish in about `jobs / workers × job-secs`
//! (every worker is blocked for one backend round trip at a time), while
//! the pings keep being answered in milliseconds: the loop never blocks.
//! `--on-loop` makes the blocking call on the loop instead, as the article's
//! blocking handler did, to see the difference: the jobs run one by one and
//! every ping waits.
//!
//! Usage:
//!
//! ```text
//! blocking_to_thread                   self-test (what CI runs): 200 jobs of
//!                                      0.5 s on 8 threads, about 12.5 s; checks
//!                                      every answer, the total and the pings
//! blocking_to_thread --jobs 200 --workers 8 --job-secs 2
//!                                      the issue's figures (about 50 s)
//! blocking_to_thread --on-loop --jobs 8
//!                                      the blocking handler on the loop: 4 s,
//!                                      and pings stuck behind it
//! blocking_to_thread --serve 8888      serve the front on 127.0.0.1:8888 (try
//!                                      `echo 'work 1' | nc 127.0.0.1 8888`)
//! ```

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use squall::executor::ThreadPoolExecutor;
use squall::netutil::{bind_sockets_with, BindOptions};
use squall::{Future, IOLoop, IOStream, PeriodicCallback, Remote, TCPServer};

/// Room for every client's connection at once: past the backlog, a
/// connection would wait a second for the SYN to be retried.
const BACKLOG: u32 = 1024;
const PING_EVERY: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug)]
struct Config {
    jobs: usize,
    workers: usize,
    job: Duration,
    /// Make the blocking call on the loop, not on the pool.
    on_loop: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            jobs: 200,
            workers: 8,
            job: Duration::from_millis(500),
            on_loop: false,
        }
    }
}

/// Answers `line` after `delay`, then closes: the slow backend.
fn backend(delay: Duration) -> TCPServer {
    TCPServer::new(move |stream: IOStream, _peer: SocketAddr| {
        let s = stream.clone();
        stream.read_until_max_bytes(b"\n", 1024).add_done_callback(
            move |line: &Future<Vec<u8>>| {
                let Ok(line) = line.take_result() else {
                    s.close();
                    return;
                };
                let io_loop = s.io_loop().clone();
                io_loop.call_later(delay, move || {
                    let s2 = s.clone();
                    s.write(line)
                        .add_done_callback(move |_: &Future<()>| s2.close());
                });
            },
        );
    })
}

/// The backend on a thread of its own, with its own loop; returns its
/// address, a `Remote` to stop it, and the thread.
fn spawn_backend(
    delay: Duration,
) -> Result<(SocketAddr, Remote, thread::JoinHandle<()>), Box<dyn std::error::Error>> {
    let (tx, rx) = mpsc::channel();
    let thread = thread::Builder::new()
        .name("backend".into())
        .spawn(move || {
            let started = (|| {
                let io_loop = IOLoop::new()?;
                io_loop.make_current();
                let server = backend(delay);
                server.add_sockets(bind_sockets_with(
                    0,
                    BindOptions::new().address("127.0.0.1").backlog(BACKLOG),
                )?)?;
                Ok::<_, squall::Error>((io_loop, server))
            })();
            match started {
                Ok((io_loop, server)) => {
                    let _ = tx.send(Ok((server.local_addrs()[0], io_loop.remote())));
                    if let Err(err) = io_loop.start() {
                        eprintln!("backend loop failed: {err}");
                    }
                    server.stop();
                    io_loop.close();
                }
                Err(err) => drop(tx.send(Err(err))),
            }
        })?;
    let (addr, remote) = rx.recv()??;
    Ok((addr, remote, thread))
}

/// The article's blocking handler: a plain socket, a blocking `recv`. This
/// runs on a worker thread, never on the loop.
fn blocking_fetch(backend: SocketAddr, n: usize) -> std::io::Result<String> {
    let mut sock = TcpStream::connect(backend)?;
    sock.set_read_timeout(Some(Duration::from_secs(60)))?;
    sock.write_all(format!("{n}\n").as_bytes())?;
    let mut reply = String::new();
    sock.read_to_string(&mut reply)?;
    Ok(reply.trim_end().to_owned())
}

/// The front server: `work N` goes to the pool (or, without one, blocks the
/// loop), `ping` is answered at once.
fn front(pool: Option<Arc<ThreadPoolExecutor>>, backend_addr: SocketAddr) -> TCPServer {
    TCPServer::new(move |stream: IOStream, _peer: SocketAddr| {
        let (s, pool) = (stream.clone(), pool.clone());
        stream.read_until_max_bytes(b"\n", 1024).add_done_callback(
            move |line: &Future<Vec<u8>>| {
                let line = match line.take_result() {
                    Ok(line) => String::from_utf8_lossy(&line).trim().to_owned(),
                    Err(_) => return s.close(),
                };
                let reply = |s: &IOStream, text: String| {
                    let s2 = s.clone();
                    s.write(text.into_bytes())
                        .add_done_callback(move |_: &Future<()>| s2.close());
                };
                match line.split_once(' ') {
                    None if line == "ping" => reply(&s, "pong\n".into()),
                    Some(("work", n)) => {
                        let Ok(n) = n.parse::<usize>() else {
                            return reply(&s, "error bad job number\n".into());
                        };
                        let job = move || {
                            let echoed = blocking_fetch(backend_addr, n).map_err(|e| e.to_string());
                            let worker = thread::current().name().unwrap_or("?").to_owned();
                            (echoed, worker)
                        };
                        let done = match &pool {
                            Some(pool) => pool.submit(job),
                            // The article's blocking handler: everyone waits.
                            None => Future::ready(job()),
                        };
                        done.add_done_callback(
                            move |done: &Future<(Result<String, String>, String)>| {
                                // Back on the loop thread.
                                let text = match done.take_result() {
                                    Ok((Ok(echoed), worker)) if echoed == n.to_string() => {
                                        format!("done {n} {worker}\n")
                                    }
                                    Ok((Ok(echoed), _)) => {
                                        format!("error backend said {echoed:?}\n")
                                    }
                                    Ok((Err(err), _)) => format!("error {err}\n"),
                                    Err(err) => format!("error {err}\n"),
                                };
                                reply(&s, text);
                            },
                        );
                    }
                    _ => reply(&s, "error unknown command\n".into()),
                }
            },
        );
    })
}

/// Connects, sends `line`, reads the answer until the server closes.
fn ask(addr: SocketAddr, line: String) -> Future<String> {
    let answer = Future::new();
    let a = answer.clone();
    IOStream::connect(addr).add_done_callback(move |conn: &Future<IOStream>| {
        let conn = match conn.take_result() {
            Ok(conn) => conn,
            Err(err) => return a.set_error(err),
        };
        drop(conn.write(line.into_bytes()));
        conn.read_until_close()
            .add_done_callback(move |r: &Future<Vec<u8>>| {
                a.try_complete(
                    r.take_result()
                        .map(|b| String::from_utf8_lossy(&b).into_owned()),
                );
            });
    });
    answer
}

struct Figures {
    took: Duration,
    answers: Vec<String>,
    pings: Vec<Duration>,
}

/// Starts the servers, the pinger and the clients; the future is every
/// client's answer, in order.
fn start(
    config: Config,
    pool: Option<Arc<ThreadPoolExecutor>>,
    backend_addr: SocketAddr,
    pings: Rc<RefCell<Vec<Duration>>>,
) -> Result<Future<Vec<String>>, squall::Error> {
    let front = front(pool, backend_addr);
    front.add_sockets(bind_sockets_with(
        0,
        BindOptions::new().address("127.0.0.1").backlog(BACKLOG),
    )?)?;
    let front_addr = front.local_addrs()[0];
    println!(
        "front on {front_addr}, backend on {backend_addr}: {} jobs of {:?} {}",
        config.jobs,
        config.job,
        if config.on_loop {
            "on the loop".to_owned()
        } else {
            format!("on {} threads", config.workers)
        }
    );

    // The pinger: is the loop still answering while the pool works?
    let pinger = PeriodicCallback::new(
        move || {
            let (sent, p) = (Instant::now(), pings.clone());
            ask(front_addr, "ping\n".into()).add_done_callback(move |f: &Future<String>| {
                if f.result().is_ok_and(|a| a == "pong\n") {
                    p.borrow_mut().push(sent.elapsed());
                }
            });
        },
        PING_EVERY,
    )?;
    pinger.start();

    let all = Future::new();
    let left = Rc::new(Cell::new(config.jobs));
    let replies: Rc<Vec<Future<String>>> = Rc::new(
        (0..config.jobs)
            .map(|n| ask(front_addr, format!("work {n}\n")))
            .collect(),
    );
    for reply in replies.iter() {
        let (all, left, replies) = (all.clone(), left.clone(), replies.clone());
        let (pinger, front) = (pinger.clone(), front.clone());
        reply.add_done_callback(move |r: &Future<String>| {
            if let Some(err) = r.error() {
                all.try_set_error(err);
                return;
            }
            left.set(left.get() - 1);
            if left.get() == 0 {
                pinger.stop();
                front.stop();
                all.try_set_result(replies.iter().map(|r| r.result().unwrap()).collect());
            }
        });
    }
    Ok(all)
}

fn run(config: Config) -> Result<Figures, Box<dyn std::error::Error>> {
    let (backend_addr, backend, backend_thread) = spawn_backend(config.job)?;
    let io_loop = IOLoop::new()?;
    let pool = match config.on_loop {
        true => None,
        false => Some(Arc::new(
            ThreadPoolExecutor::builder()
                .workers(config.workers)
                .thread_name("worker")
                .build()?,
        )),
    };
    let pings: Rc<RefCell<Vec<Duration>>> = Rc::default();
    let p = pings.clone();
    let started = Instant::now();
    let answers = io_loop.run_sync(
        move || start(config, pool, backend_addr, p).unwrap_or_else(Future::failed),
        Some(Duration::from_secs(3600)),
    );
    let took = started.elapsed();
    io_loop.close();
    backend.stop()?;
    backend_thread
        .join()
        .map_err(|_| "the backend thread panicked")?;
    let answers = answers?;
    let pings = pings.borrow().clone();
    Ok(Figures {
        took,
        answers,
        pings,
    })
}

/// The time the jobs should take: rounds of `workers` at once on the pool,
/// one after the other on the loop.
fn expected(config: Config) -> Duration {
    let rounds = if config.on_loop {
        config.jobs
    } else {
        config.jobs.div_ceil(config.workers)
    };
    config.job * rounds as u32
}

fn report(config: Config, figures: &Figures) {
    let max_ping = figures.pings.iter().max().copied().unwrap_or_default();
    let avg_ping = if figures.pings.is_empty() {
        Duration::ZERO
    } else {
        figures.pings.iter().sum::<Duration>() / figures.pings.len() as u32
    };
    if config.on_loop {
        println!(
            "{} blocking jobs of {:?} on the loop: measured {:.2?}; expected about {:.2?} \
             (one after the other)",
            config.jobs,
            config.job,
            figures.took,
            expected(config)
        );
    } else {
        let on_the_loop = config.job * config.jobs as u32;
        println!(
            "{} blocking jobs of {:?} on {} threads: measured {:.2?}; expected about {:.2?} \
             ({} rounds of {:?}); on the loop, one after the other, they would take \
             {} × {:?} = {:.2?} (arithmetic; `--on-loop` runs it)",
            config.jobs,
            config.job,
            config.workers,
            figures.took,
            expected(config),
            config.jobs.div_ceil(config.workers),
            config.job,
            config.jobs,
            config.job,
            on_the_loop
        );
    }
    println!(
        "meanwhile the loop answered {} pings (one every {:?}): average {:.2?}, worst {:.2?}",
        figures.pings.len(),
        PING_EVERY,
        avg_ping,
        max_ping
    );
}

fn check(config: Config, figures: &Figures) -> Result<(), String> {
    for (n, answer) in figures.answers.iter().enumerate() {
        let by = if config.on_loop { "main" } else { "worker-" };
        if !answer.starts_with(&format!("done {n} {by}")) {
            return Err(format!("job {n}: unexpected answer {answer:?}"));
        }
    }
    if config.on_loop {
        // Blocking on the loop is the counter-example: nothing else to check.
        return Ok(());
    }
    let expected = expected(config);
    // Never faster than the pool allows; not much slower either (the
    // machine may be busy: allow half again, plus a second).
    if figures.took < expected.mul_f64(0.95) {
        return Err(format!("{:?} is faster than the pool can be", figures.took));
    }
    if figures.took > expected.mul_f64(1.5) + Duration::from_secs(1) {
        return Err(format!(
            "{:?}: the jobs did not run in parallel",
            figures.took
        ));
    }
    // The loop kept serving: pings came back throughout, quickly.
    let expected_pings = (expected.as_millis() / PING_EVERY.as_millis()) as usize;
    if figures.pings.len() < expected_pings / 2 {
        return Err(format!("only {} pings answered", figures.pings.len()));
    }
    let worst = figures.pings.iter().max().copied().unwrap_or_default();
    if worst > config.job.max(Duration::from_millis(500)) {
        return Err(format!("a ping waited {worst:?}: the loop was blocked"));
    }
    Ok(())
}

fn serve(port: u16, config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let (backend_addr, _backend, _thread) = spawn_backend(config.job)?;
    let io_loop = IOLoop::new()?;
    io_loop.make_current();
    let pool = match config.on_loop {
        true => None,
        false => Some(Arc::new(ThreadPoolExecutor::new(config.workers)?)),
    };
    let front = front(pool, backend_addr);
    front.add_sockets(bind_sockets_with(
        port,
        BindOptions::new().address("127.0.0.1").backlog(BACKLOG),
    )?)?;
    println!(
        "serving on {:?} (`work N`, `ping`); jobs take {:?}; Ctrl-C to stop",
        front.local_addrs(),
        config.job,
    );
    io_loop.start()?;
    Ok(())
}

fn parse(args: &[String]) -> Result<(Config, Option<u16>), String> {
    let mut config = Config::default();
    let mut serve_port = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--self-test" => {}
            "--on-loop" => config.on_loop = true,
            "--jobs" => config.jobs = value()?.parse().map_err(|e| format!("--jobs: {e}"))?,
            "--workers" => {
                config.workers = value()?.parse().map_err(|e| format!("--workers: {e}"))?
            }
            "--job-secs" => {
                let secs: f64 = value()?.parse().map_err(|e| format!("--job-secs: {e}"))?;
                config.job =
                    Duration::try_from_secs_f64(secs).map_err(|e| format!("--job-secs: {e}"))?;
            }
            "--serve" => serve_port = Some(value()?.parse().map_err(|e| format!("--serve: {e}"))?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if config.jobs == 0 || config.workers == 0 {
        return Err("--jobs and --workers must be at least 1".into());
    }
    Ok((config, serve_port))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "usage: blocking_to_thread [--jobs N] [--workers N] [--job-secs S] [--on-loop] \
             [--serve PORT]"
        );
        return Ok(());
    }
    let (config, serve_port) = parse(&args)?;
    if let Some(port) = serve_port {
        return serve(port, config);
    }
    let figures = run(config)?;
    report(config, &figures);
    check(config, &figures)?;
    println!("ok");
    Ok(())
}
