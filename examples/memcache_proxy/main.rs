//! The first seed article's program, for real: a memcached proxy whose
//! asynchronous client connects without blocking, puts a timeout on every
//! call, and routes every error through a stack context into the caller's
//! `fail_callback`.
//!
//! ```text
//! memcache_proxy                      self-test (what CI runs): start two memcached
//!                                     (or in-process fakes if memcached is not on
//!                                     PATH), use the client alone (callbacks, then a
//!                                     gen coroutine), run the proxy and talk to it,
//!                                     kill an upstream, then run this program as a
//!                                     two-process server and stop it with SIGTERM;
//!                                     exit 0 if all is well
//! memcache_proxy --listen ADDR --upstream ADDR [--upstream ADDR ...]
//!                [--timeout-ms N] [--connect-timeout-ms N] [--dead-retry-ms N]
//!                [--item-size-max SIZE] [--window-bytes SIZE]
//!                [--processes N]      serve until SIGINT or SIGTERM (with N != 1:
//!                                     from N forked processes, 0 = one per CPU);
//!                                     SIZE in bytes, or with k or m (KiB, MiB)
//! memcache_proxy --load ADDR [--clients N] [--seconds S] [--value-size B] [--keys K]
//!                                     the benchmark's load client (bench/memcache.sh)
//! ```
//!
//! Try it: start `memcached -p 11211` and `memcached -p 11212`, then
//! `cargo run --release --example memcache_proxy -- --listen 127.0.0.1:11311
//! --upstream 127.0.0.1:11211 --upstream 127.0.0.1:11212`, and talk to port
//! 11311 with any memcached client (or `telnet`).
//!
//! The proxy speaks memcached's text protocol: `get`/`gets` (keys split
//! across the upstreams by a consistent hash, answers merged in the order
//! asked), `set`/`add`/`replace`/`append`/`prepend`/`cas`, `delete`,
//! `incr`/`decr`, `touch`, `flush_all` (sent to every upstream), `noreply`,
//! `version` and `quit`. An upstream that fails or times out makes its keys
//! answer `SERVER_ERROR <reason>` at once (it is retried after
//! `--dead-retry-ms`); the other keys are served as usual. `stats` answers
//! the proxy's own counters: connections, live sessions, pending timeouts
//! and fd handlers of its loop, answer bytes held (`answer_bytes`, and the
//! most one connection ever held, `max_connection_answer_bytes`), and the
//! state of each upstream. A client speaking the binary protocol (first
//! byte 0x80) is answered `CLIENT_ERROR binary protocol is not supported`
//! and closed at once.
//!
//! A `get` answer is streamed, as memcached streams it: its keys are fetched
//! in windows, each written to the client and taken by its socket before
//! the next is fetched, so a client that asks for 300 copies of a 1 MiB
//! value in a 1.2 KB request, or reads slowly, or not at all, costs the
//! proxy one window, and a client that reads late still gets every value.
//! If an upstream fails before any value of a `get` went out, the answer is
//! `SERVER_ERROR <reason>` alone; after, its keys in that window are left
//! out (misses, counted in `upstream_errors`) and `END` still comes last.
//!
//! The bounds, per client connection:
//! - the item limit, `--item-size-max` (default 1 MiB, memcached's `-I`; set
//!   it to your memcached's): a larger value is refused without being
//!   buffered, from a client or an upstream;
//! - `get` values in flight, `--window-bytes` (default 4 MiB): a window is
//!   that many bytes of the item limit, 4 keys of 1 MiB, so the answer held
//!   is at most 4 MiB plus the `VALUE` lines, however long the `get`. Larger
//!   windows are fewer round trips for a long multi-get (with 4 keys a
//!   window, 100 small values take 25 of them) for more memory;
//! - a `get`/`gets` line: 2 MiB and 100,000 keys (`CLIENT_ERROR line too
//!   long` and close past 2 MiB, `CLIENT_ERROR too many keys` past the
//!   count); any other line: 64 KiB;
//! - commands in flight: 256 (a client that sends without reading is not
//!   read further), with the answers of other commands waiting for a `get`
//!   ahead of them.
//!
//! The modules: [`protocol`] (client commands, parsed with limits), [`reply`]
//! (server replies), [`hash`] (the consistent-hash ring), [`client`] (the
//! article's client) over [`upstream`] (servers and their pipelined
//! connections), [`proxy`] (the server), [`session`] (one client's
//! connection) and [`answer`] (its answers on their way out), plus
//! [`testkit`], [`fake`] and [`load`] for testing and measuring.

// The modules are complete (tests/memcache_proxy/ uses them too); this
// program uses parts of them.
#[allow(dead_code)]
mod answer;
#[allow(dead_code)]
mod client;
#[allow(dead_code)]
mod client_async;
mod fake;
mod hash;
mod load;
#[allow(dead_code)]
mod protocol;
#[allow(dead_code)]
mod proxy;
#[allow(dead_code)]
mod reply;
mod session;
#[allow(dead_code)]
mod testkit;
mod upstream;

use std::cell::RefCell;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use squall::gen::{self, ResultCallback, Resume, Step, Task};
use squall::{Future, IOLoop};

use client::{Client, MemcacheError, Options};
use hash::Ring;
use proxy::{Config, ProxyThread};
use reply::{Item, Status};
use testkit::{Memcached, TextClient};

type BoxResult<T> = Result<T, Box<dyn StdError>>;

const USAGE: &str = "usage: memcache_proxy [--listen ADDR --upstream ADDR [--upstream ADDR ...] \
[--timeout-ms N] [--connect-timeout-ms N] [--dead-retry-ms N] [--processes N] [--item-size-max SIZE] \
[--window-bytes SIZE]] | --load ADDR [--clients N] \
[--seconds S] [--value-size B] [--keys K] | --self-test";

fn main() -> BoxResult<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("--self-test") => self_test(),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some("--load") => load_client(&args),
        Some(_) => serve(&args),
    }
}

/// `--name value` pairs, in order.
fn pairs(args: &[String]) -> BoxResult<Vec<(&str, &str)>> {
    args.chunks(2)
        .map(|pair| match pair {
            [name, value] if name.starts_with("--") => Ok((name.as_str(), value.as_str())),
            _ => Err(format!("bad arguments {pair:?}\n{USAGE}").into()),
        })
        .collect()
}

fn parse<T: std::str::FromStr>(name: &str, value: &str) -> BoxResult<T> {
    value
        .parse()
        .map_err(|_| format!("{name}: bad value {value:?}").into())
}

/// A size in bytes, with an optional `k` or `m` (KiB, MiB) as memcached's
/// `-I` takes it; at least 1.
fn parse_size(name: &str, value: &str) -> BoxResult<usize> {
    let lower = value.to_ascii_lowercase();
    let (digits, unit) = match lower.as_bytes().last() {
        Some(b'k') => (&lower[..lower.len() - 1], 1024),
        Some(b'm') => (&lower[..lower.len() - 1], 1024 * 1024),
        _ => (&lower[..], 1),
    };
    let n: usize = parse(name, digits)?;
    n.checked_mul(unit)
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{name}: bad size {value:?}").into())
}

/// `HOST:PORT` (a name is resolved once, at start) as an address.
fn resolve(name: &str, value: &str) -> BoxResult<SocketAddr> {
    use std::net::ToSocketAddrs;
    value
        .to_socket_addrs()
        .map_err(|err| format!("{name} {value}: {err}"))?
        .next()
        .ok_or_else(|| format!("{name} {value}: no address").into())
}

fn serve(args: &[String]) -> BoxResult<()> {
    let mut listen = None;
    let mut upstreams = Vec::new();
    let mut options = Options::default();
    let mut connect_timeout = None;
    let mut processes = 1;
    let mut window_bytes = proxy::WINDOW_BYTES;
    for (name, value) in pairs(args)? {
        match name {
            "--listen" => listen = Some(resolve(name, value)?),
            "--upstream" => upstreams.push(resolve(name, value)?),
            "--timeout-ms" => options.timeout = Duration::from_millis(parse(name, value)?),
            "--connect-timeout-ms" => {
                connect_timeout = Some(Duration::from_millis(parse(name, value)?))
            }
            "--dead-retry-ms" => options.dead_retry = Duration::from_millis(parse(name, value)?),
            "--processes" => processes = parse(name, value)?,
            "--item-size-max" => options.max_value = parse_size(name, value)?,
            "--window-bytes" => window_bytes = parse_size(name, value)?,
            _ => return Err(format!("unknown option {name}\n{USAGE}").into()),
        }
    }
    options.connect_timeout = connect_timeout.unwrap_or(options.timeout);
    let listen = listen.ok_or(format!("--listen is required\n{USAGE}"))?;
    if upstreams.is_empty() {
        return Err(format!("at least one --upstream is required\n{USAGE}").into());
    }
    let config = Config {
        listen,
        upstreams,
        options,
        window_bytes,
    };
    if processes != 1 {
        // Forks; returns in each child, which serves until SIGTERM/SIGINT
        // (the parent passes them on, and `start(n)` makes them a graceful
        // stop).
        let (io_loop, proxy) = proxy::Proxy::start_processes(&config, processes)?;
        println!(
            "memcache proxy process {} on {} -> {:?}",
            std::process::id(),
            proxy.local_addr(),
            config.upstreams
        );
        io_loop.start()?;
        proxy.stop();
        io_loop.close();
        return Ok(());
    }
    let io_loop = IOLoop::new()?;
    io_loop.make_current();
    let proxy = Rc::new(proxy::Proxy::start(&io_loop, &config)?);
    println!(
        "memcache proxy on {} -> {:?}, timeout {:?}",
        proxy.local_addr(),
        config.upstreams,
        config.options.timeout
    );
    // SIGINT or SIGTERM: stop accepting, close the upstream connections,
    // and leave the loop (closing it closes the clients' connections).
    for signum in [libc::SIGINT, libc::SIGTERM] {
        let (p, l) = (proxy.clone(), io_loop.clone());
        io_loop.add_signal_handler(signum, move |signum| {
            println!("signal {signum}: shutting down");
            p.stop();
            l.stop();
        })?;
    }
    io_loop.start()?;
    io_loop.close();
    Ok(())
}

fn load_client(args: &[String]) -> BoxResult<()> {
    let (mut addr, mut clients, mut seconds, mut value_size, mut keys) = (None, 50, 5.0, 100, 1000);
    for (name, value) in pairs(args)? {
        match name {
            "--load" => addr = Some(resolve(name, value)?),
            "--clients" => clients = parse(name, value)?,
            "--seconds" => seconds = parse(name, value)?,
            "--value-size" => value_size = parse(name, value)?,
            "--keys" => keys = parse(name, value)?,
            _ => return Err(format!("unknown option {name}\n{USAGE}").into()),
        }
    }
    let addr = addr.ok_or(USAGE)?;
    let report = load::run(
        addr,
        clients,
        Duration::from_secs_f64(seconds),
        value_size,
        keys,
    )?;
    println!("{addr}: {clients} clients, {value_size}-byte values: {report}");
    Ok(())
}

// ----- the self-test ------------------------------------------------------------------

fn check(ok: bool, what: impl std::fmt::Display) -> BoxResult<()> {
    if ok {
        println!("  ok: {what}");
        Ok(())
    } else {
        Err(format!("FAILED: {what}").into())
    }
}

fn self_test() -> BoxResult<()> {
    let real = testkit::memcached_available();
    let mut servers = Vec::new();
    let upstreams: Vec<SocketAddr> = if real {
        for _ in 0..2 {
            servers.push(Memcached::start()?);
        }
        servers.iter().map(Memcached::addr).collect()
    } else {
        println!("memcached is not on PATH: in-process fake upstreams instead");
        vec![fake::start()?, fake::start()?]
    };
    println!("upstreams: {upstreams:?}");
    client_alone(&upstreams)?;

    let timeout = Duration::from_millis(300);
    let dead_retry = Duration::from_millis(200);
    let proxy = ProxyThread::spawn(Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        upstreams: upstreams.clone(),
        options: Options {
            timeout,
            connect_timeout: timeout,
            dead_retry,
            ..Options::default()
        },
        window_bytes: proxy::WINDOW_BYTES,
    })?;
    println!("the proxy, on {}:", proxy.addr);
    let mut c = TextClient::connect(proxy.addr)?;

    // Keys on both servers, fetched in one `get`, in order, a miss inside.
    let ring = Ring::new(&upstreams.iter().map(|a| a.to_string()).collect::<Vec<_>>());
    let keys: Vec<String> = (0..20).map(|i| format!("key:{i}")).collect();
    for key in &keys {
        c.set(key, format!("value of {key}").as_bytes())?;
    }
    let owners: Vec<usize> = keys
        .iter()
        .filter_map(|k| ring.server_for(k.as_bytes()))
        .collect();
    check(
        owners.contains(&0) && owners.contains(&1),
        "the keys are spread over both upstreams",
    )?;
    let mut asked: Vec<&str> = keys.iter().map(String::as_str).collect();
    asked.insert(7, "missing");
    let got = c.get(&asked)?.map_err(|line| format!("get: {line}"))?;
    let got_keys: Vec<&str> = got.iter().map(|(k, ..)| k.as_str()).collect();
    let want: Vec<&str> = keys.iter().map(String::as_str).collect();
    check(
        got_keys == want,
        "a multi-key get is merged in the order asked",
    )?;
    check(
        got.iter()
            .all(|(k, _, v, _)| *v == format!("value of {k}").into_bytes()),
        "with the right values",
    )?;

    // The other commands.
    check(
        c.cmd("incr key:0 1")? == "CLIENT_ERROR cannot increment or decrement non-numeric value",
        "incr of text is the server's CLIENT_ERROR",
    )?;
    c.set("n", b"41")?;
    check(c.cmd("incr n 1")? == "42", "incr")?;
    check(c.cmd("decr n 50")? == "0", "decr stops at 0")?;
    c.send(b"gets n\r\n")?;
    let unique = c.read_values()??[0].3.ok_or("gets without a cas")?;
    check(
        c.cmd(&format!("cas n 0 0 1 {unique}\r\n7"))? == "STORED",
        "cas with the right unique",
    )?;
    check(
        c.cmd(&format!("cas n 0 0 1 {unique}\r\n8"))? == "EXISTS",
        "cas with a stale one",
    )?;
    check(c.cmd("append n 0 0 1\r\n9")? == "STORED", "append")?;
    check(c.cmd("prepend n 0 0 1\r\n6")? == "STORED", "prepend")?;
    check(
        c.get_one("n")? == Ok(Some(b"679".to_vec())),
        "the value is 679",
    )?;
    check(
        c.cmd("add n 0 0 1\r\nx")? == "NOT_STORED",
        "add of a present key",
    )?;
    check(
        c.cmd("replace nope 0 0 1\r\nx")? == "NOT_STORED",
        "replace of a missing key",
    )?;
    check(c.cmd("touch n 100")? == "TOUCHED", "touch")?;
    check(c.cmd("delete n")? == "DELETED", "delete")?;
    check(c.cmd("delete n")? == "NOT_FOUND", "delete again")?;
    c.send(b"set q 0 0 1 noreply\r\nq\r\nget q\r\n")?;
    check(
        c.read_values()?.map(|v| v.len()) == Ok(1),
        "noreply: no answer, but stored",
    )?;

    // Pipelined commands on both servers: answered in order.
    c.send(b"get key:1\r\nset p 0 0 2\r\nhi\r\nbogus\r\nget p\r\nversion\r\n")?;
    let first = c.read_values()?;
    let (stored, bogus) = (c.line()?, c.line()?);
    let second = c.read_values()?;
    let version = c.line()?;
    check(
        first.map(|v| v.len()) == Ok(1)
            && stored == "STORED"
            && bogus == "ERROR"
            && second.map(|v| v[0].2.clone()) == Ok(b"hi".to_vec())
            && version.starts_with("VERSION squall"),
        "five pipelined commands answered in order",
    )?;

    // Bad input: error answers, and the connection goes on.
    check(c.cmd("get")? == "ERROR", "get without a key")?;
    check(
        c.cmd(&format!("get {}", "k".repeat(251)))? == "CLIENT_ERROR bad command line format",
        "a key too long",
    )?;
    let big = vec![b'x'; protocol::ITEM_SIZE_MAX + 1];
    check(
        c.set("big", &big)? == "SERVER_ERROR object too large for cache",
        "a value over 1 MiB is refused",
    )?;
    let almost = vec![b'y'; protocol::ITEM_SIZE_MAX - 1024];
    check(
        c.set("almost", &almost)? == "STORED",
        "a value just under 1 MiB is stored",
    )?;
    check(
        c.get_one("almost")? == Ok(Some(almost.clone())),
        "and comes back whole",
    )?;

    // A get of 64 MiB in a 0.4 KB request streams through one window.
    c.send(format!("get{}\r\n", " almost".repeat(64)).as_bytes())?;
    let streamed = c.for_each_value(|_, _, data, _| assert!(data == &almost[..]))?;
    let held = c.stats()?.get("max_connection_answer_bytes").cloned();
    let held: usize = held.unwrap_or_default().parse()?;
    check(
        streamed == Ok(64) && held <= proxy::WINDOW_BYTES + 64 * 1024,
        format_args!("64 copies of a 1 MiB value, streamed; at most {held} bytes held"),
    )?;
    // A multi-get line of 3,000 keys (120 KB), as memcslap's mget sends.
    let many: Vec<String> = (0..3000)
        .map(|i| format!("many:{i:05}:{}", "k".repeat(30)))
        .collect();
    for key in many.iter().step_by(100) {
        c.set(key, key.as_bytes())?;
    }
    let asked: Vec<&str> = many.iter().map(String::as_str).collect();
    let got = c.get(&asked)?.map_err(|line| format!("long get: {line}"))?;
    check(
        got.len() == 30 && got.iter().all(|(k, _, v, _)| v == k.as_bytes()),
        "a get of 3,000 keys in one line",
    )?;
    // The binary protocol: refused at once, and closed.
    let mut binary = TextClient::connect(proxy.addr)?;
    binary.set_read_timeout(Duration::from_secs(1))?;
    binary.send(&[0x80, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])?;
    let answer = binary.line()?;
    check(
        answer == "CLIENT_ERROR binary protocol is not supported" && binary.line().is_err(),
        format_args!("a binary request: {answer:?}, closed"),
    )?;

    if real {
        // Kill the server that owns `key:0`: its keys fail promptly, the
        // others' keep working; restarted, it is used again.
        let victim = ring.server_for(b"key:0").ok_or("empty ring")?;
        let other_key = keys
            .iter()
            .find(|k| ring.server_for(k.as_bytes()) != Some(victim))
            .ok_or("no key on the other server")?;
        let port = servers[victim].port;
        servers[victim].kill();
        let started = Instant::now();
        let answer = c.get(&["key:0"])?;
        let took = started.elapsed();
        check(
            matches!(&answer, Err(line) if line.starts_with("SERVER_ERROR")) && took < timeout * 3,
            format_args!("a killed upstream: {answer:?} after {took:.1?}"),
        )?;
        check(
            c.get_one(other_key)?.is_ok_and(|v| v.is_some()),
            "the other upstream still serves its keys",
        )?;
        servers[victim] = Memcached::start_on(port)?;
        std::thread::sleep(dead_retry + Duration::from_millis(50));
        check(
            c.set("key:0", b"back")? == "STORED",
            "the restarted upstream is used again",
        )?;
        check(
            c.get_one("key:0")? == Ok(Some(b"back".to_vec())),
            "and serves its keys",
        )?;
    }

    check(c.cmd("flush_all")? == "OK", "flush_all, on every upstream")?;
    check(
        c.get(&asked)?.is_ok_and(|values| values.is_empty()),
        "everything is gone",
    )?;
    let stats = c.stats()?;
    check(
        stats.get("pending_timeouts").map(String::as_str) == Some("0"),
        format_args!(
            "no timeout left pending: {:?}",
            stats.get("pending_timeouts")
        ),
    )?;
    check(c.cmd("quit").is_err(), "quit closes the connection")?;
    drop(proxy);
    forked(&upstreams)?;
    println!("ok");
    Ok(())
}

/// A child process, killed (by PID) if still running when dropped.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The serve mode as users run it, in a process of its own: `--processes 2`
/// forks two workers; SIGTERM stops them all, with exit status 0.
fn forked(upstreams: &[SocketAddr]) -> BoxResult<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], testkit::free_port()?));
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command.args(["--listen", &addr.to_string(), "--processes", "2"]);
    for upstream in upstreams {
        command.args(["--upstream", &upstream.to_string()]);
    }
    let mut child = ChildGuard(command.stdout(std::process::Stdio::null()).spawn()?);
    println!("the proxy as two forked processes, on {addr}:");
    let started = Instant::now();
    let mut c = loop {
        match TextClient::connect(addr) {
            Ok(c) => break c,
            Err(_) if started.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(err) => return Err(format!("the forked proxy never listened: {err}").into()),
        }
    };
    check(
        c.set("forked", b"yes")? == "STORED" && c.get_one("forked")? == Ok(Some(b"yes".to_vec())),
        "it serves",
    )?;
    // SO_REUSEPORT spreads connections over the workers by a hash of the
    // client's port: twenty connections all landing on one would be a 1 in
    // 2^19 chance.
    let mut pids = std::collections::HashSet::new();
    for _ in 0..20 {
        let stats = TextClient::connect(addr)?.stats()?;
        pids.insert(stats.get("pid").cloned().unwrap_or_default());
    }
    check(
        pids.len() == 2,
        format_args!("two worker processes answer: {pids:?}"),
    )?;
    drop(c);
    // SAFETY: kill(2) on the PID of our child, not yet reaped.
    let rc = unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    check(rc == 0, "SIGTERM sent")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.0.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            return Err("the forked proxy did not stop on SIGTERM".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    check(status.success(), format_args!("SIGTERM stops it: {status}"))
}

/// The client on its own, on a loop of ours: each server's `version`, and a
/// server that refuses connections, whose error reaches the fail_callback.
fn client_alone(upstreams: &[SocketAddr]) -> BoxResult<()> {
    type Outcomes = Rc<RefCell<Vec<Result<String, String>>>>;
    let io_loop = IOLoop::new()?;
    let refused = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?; // closed at once
    let mut all = upstreams.to_vec();
    all.push(refused);
    let client = Rc::new(Client::new(&io_loop, &all, Options::default()));
    let c = client.clone();
    let outcomes = io_loop.run_sync(
        move || {
            let done = Future::new();
            let outcomes: Outcomes = Rc::default();
            let total = c.servers().len();
            for i in 0..total {
                let record = {
                    let (done, outcomes) = (done.clone(), outcomes.clone());
                    move |outcome| {
                        outcomes.borrow_mut().push(outcome);
                        if outcomes.borrow().len() == total {
                            done.try_set_result(outcomes.take());
                        }
                    }
                };
                let on_fail = record.clone();
                c.version(
                    i,
                    move |version| record(Ok(version)),
                    move |err| {
                        // The article's fail_callback: the client's own error.
                        let own = MemcacheError::of(&err).is_some();
                        on_fail(Err(format!("{err} (client error: {own})")));
                    },
                );
            }
            done
        },
        Some(Duration::from_secs(5)),
    )?;
    println!("the client alone:");
    for outcome in &outcomes {
        println!("  version: {outcome:?}");
    }
    check(
        outcomes.iter().filter(|o| o.is_ok()).count() == upstreams.len(),
        "each server's version",
    )?;
    check(
        outcomes
            .iter()
            .any(|o| matches!(o, Err(e) if e.contains("cannot connect") && e.contains("true"))),
        "a refused connect reaches the fail_callback as the client's error",
    )?;
    check(
        client.servers().iter().any(|s| s.dead),
        "and marks that server dead",
    )?;
    client.close();

    // The same client driven by a coroutine, as Tornado 3 code would:
    // `status = yield gen.Task(client.set, key, value)`.
    let client = Rc::new(Client::new(&io_loop, upstreams, Options::default()));
    let c = client.clone();
    let story = io_loop.run_sync(move || coroutine(c), Some(Duration::from_secs(5)))?;
    println!("  a coroutine: {story}");
    check(
        story == "set: Stored; get: \"hello\"; incr: refused (CLIENT_ERROR cannot increment or decrement non-numeric value)",
        "a coroutine yields the client's calls as gen.Tasks, errors thrown in",
    )?;
    client.close();
    check(
        io_loop.timer_stats().pending == 0,
        "no timeout left pending by the client",
    )?;
    io_loop.close();
    Ok(())
}

/// A client call as a `gen::Task`: its callback delivers the value, its
/// fail_callback throws the error into the coroutine.
fn task<T: 'static>(
    call: impl FnOnce(Box<dyn FnOnce(T)>, Box<dyn FnOnce(squall::Error)>) + 'static,
) -> Task {
    Task::new(move |callback: ResultCallback| {
        let on_fail = callback.clone();
        call(
            Box::new(move |value| callback.call(value)),
            Box::new(move |err| on_fail.fail(err)),
        );
    })
}

/// set, get, then an `incr` the server refuses, caught like an exception.
/// The generator's state is the number of the step it is at.
fn coroutine(client: Rc<Client>) -> Future<String> {
    let mut story: Vec<String> = Vec::new();
    gen::coroutine(gen::from_fn(0u8, move |step: &mut u8, input: Resume| {
        *step += 1;
        let c = client.clone();
        let next = (|| -> Result<Step<String>, squall::Error> {
            Ok(match (*step, input) {
                (1, Resume::Start) => {
                    task(move |ok, fail| c.set(b"greeting", b"hello", 0, ok, fail)).into()
                }
                (2, Resume::Value(status)) => {
                    story.push(format!("set: {:?}", status.downcast::<Status>()?));
                    task(move |ok, fail| c.get(b"greeting", ok, fail)).into()
                }
                (3, Resume::Value(item)) => {
                    let item = item
                        .downcast::<Option<Item>>()?
                        .ok_or("greeting is missing")?;
                    story.push(format!("get: {:?}", String::from_utf8_lossy(&item.data)));
                    task(move |ok, fail| c.incr(b"greeting", 1, ok, fail)).into()
                }
                // try: yield gen.Task(client.incr, ...) / except MemcacheError:
                (4, Resume::Error(err)) => match MemcacheError::of(&err) {
                    Some(MemcacheError::Refused { line, .. }) => {
                        story.push(format!("incr: refused ({line})"));
                        Step::Return(Ok(story.join("; ")))
                    }
                    _ => return Err(err),
                },
                (_, Resume::Error(err)) => return Err(err),
                (n, _) => return Err(format!("unexpected resume at step {n}").into()),
            })
        })();
        next.unwrap_or_else(|err| Step::Return(Err(err)))
    }))
}
