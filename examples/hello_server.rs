//! squall's main example: a hello-world HTTP server, Tornado's first program.
//!
//! ```python
//! class MainHandler(tornado.web.RequestHandler):
//!     def get(self):
//!         self.write("Hello, world")
//! ```
//!
//! Usage:
//!
//! ```text
//! hello_server               serve on 127.0.0.1:8888
//! hello_server PORT          serve on 127.0.0.1:PORT
//! hello_server --self-test   serve on a free port, fetch every route with a
//!                            plain std client, check the answers, exit 0
//! hello_server --async [PORT]
//!                            `/` answered by an `async` handler (Tornado 6's
//!                            `async def get`): what bench/http_callgrind.sh
//!                            compares with the plain one (`squallasync`)
//! hello_server --processes N [--reuse-port] PORT
//!                            Tornado's bind + start(N): N forked processes
//!                            accepting on one shared socket (or, with
//!                            --reuse-port, one SO_REUSEPORT socket each)
//! ```
//!
//! Routes: `/` answers `Hello, world`; `/async` too, from an `async`
//! block; `/sleep` answers after 2 s, waiting
//! with the loop (`call_later`), so everyone else is served meanwhile;
//! `/async_sleep` the same, written as Tornado 6's
//! `async def get(self): await gen.sleep(2); self.write(...)`;
//! `/blocking` sleeps 2 s with `std::thread::sleep` — on purpose, the
//! mistake the second seed article warns about: the whole server stalls,
//! and the loop's blocking log names the culprit.
//!
//! Try: `cargo run --release --example hello_server`, then
//! `curl http://127.0.0.1:8888/` or `wrk -c100 -d5s http://127.0.0.1:8888/`.
//! `RUST_LOG=squall::access=info` prints the access log.
//!
//! ci-args below: CI runs the self-test, since serving forever never exits.
//! ci-args: --self-test

use squall::netutil::BindOptions;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use squall::http::HTTPServer;
use squall::web::{Application, Exchange, RequestHandler};
use squall::{gen, Error, IOLoop};

struct MainHandler;
impl RequestHandler for MainHandler {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write("Hello, world");
        Ok(())
    }
}

/// `MainHandler` as Tornado 6's `async def get`: the response is finished
/// when the block returns.
struct AsyncMainHandler;
impl RequestHandler for AsyncMainHandler {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.run_async(|x| async move {
            x.write("Hello, world");
            Ok(())
        })
    }
}

/// `SleepHandler` as an `async` block.
struct AsyncSleepHandler {
    delay: Duration,
}
impl RequestHandler for AsyncSleepHandler {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let delay = self.delay;
        x.run_async(move |x| async move {
            gen::sleep(delay).await?;
            x.write(format!("slept {:?} in a coroutine\n", x.request().path()));
            Ok(())
        })
    }
}

/// Waits `delay` with the loop: an asynchronous handler.
struct SleepHandler {
    delay: Duration,
}
impl RequestHandler for SleepHandler {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_async();
        let x = x.clone();
        IOLoop::current().call_later(self.delay, move || {
            x.write(format!("slept {:?} on the loop\n", x.request().path()));
            x.finish()
        });
        Ok(())
    }
}

/// Blocks the loop: what not to do.
struct BlockingHandler {
    delay: Duration,
}
impl RequestHandler for BlockingHandler {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        std::thread::sleep(self.delay);
        x.write("blocked the whole server\n");
        Ok(())
    }
}

fn app(delay: Duration, async_root: bool) -> Application {
    let app = if async_root {
        Application::new().route("/", || AsyncMainHandler)
    } else {
        Application::new().route("/", || MainHandler)
    };
    app.route("/async", || AsyncMainHandler)
        .route("/sleep", move || SleepHandler { delay })
        .route("/async_sleep", move || AsyncSleepHandler { delay })
        .route("/blocking", move || BlockingHandler { delay })
}

fn main() -> Result<(), Error> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--self-test") {
        let io_loop = IOLoop::current();
        io_loop.set_blocking_log_threshold(Some(Duration::from_millis(500)));
        return self_test(&io_loop);
    }
    let usage =
        || Error::other("usage: hello_server [--async] [--processes N [--reuse-port]] [PORT]");
    let (mut port, mut processes, mut reuse_port, mut async_root) = (8888, 1, false, false);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--processes" => {
                processes = rest.next().and_then(|n| n.parse().ok()).ok_or_else(usage)?;
            }
            "--reuse-port" => reuse_port = true,
            "--async" => async_root = true,
            p => port = p.parse().map_err(|_| usage())?,
        }
    }
    let server = HTTPServer::new(app(Duration::from_secs(2), async_root));
    if processes == 1 {
        server.listen_with(port, BindOptions::new().address("127.0.0.1"))?;
    } else {
        // No IOLoop may exist before the fork: bind, then start(n) forks
        // and each child makes its own loop (with reuse-port, each child
        // binds its own socket).
        server.bind_with(
            port,
            BindOptions::new()
                .address("127.0.0.1")
                .reuse_port(reuse_port),
        )?;
        server.start(processes)?;
    }
    let io_loop = IOLoop::current();
    // Report callbacks that hold the loop longer than this.
    io_loop.set_blocking_log_threshold(Some(Duration::from_millis(500)));
    println!(
        "serving on http://127.0.0.1:{port}/ (routes /, /async, /sleep, /async_sleep, /blocking){}",
        if processes == 1 {
            String::new()
        } else {
            format!(", pid {}", std::process::id())
        }
    );
    io_loop.start()
}

/// One request over a fresh connection: (status, body).
fn fetch(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut conn = TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply)?;
    let status = reply
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_default();
    let body = reply
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}

fn self_test(io_loop: &IOLoop) -> Result<(), Error> {
    let delay = Duration::from_millis(600);
    let server = HTTPServer::new(app(delay, false));
    server.listen_with(0, BindOptions::new().address("127.0.0.1"))?;
    let addr = server.local_addrs()[0];
    let remote = io_loop.remote();
    let client = std::thread::spawn(move || -> Result<(), String> {
        let check = |path: &str, want_status: u16, want: &str| -> Result<Duration, String> {
            let t = Instant::now();
            let (status, body) = fetch(addr, path).map_err(|e| format!("{path}: {e}"))?;
            if status != want_status || !body.contains(want) {
                return Err(format!("{path}: got {status} {body:?}"));
            }
            Ok(t.elapsed())
        };
        check("/", 200, "Hello, world")?;
        check("/async", 200, "Hello, world")?;
        check("/nope", 404, "404: Not Found")?;
        // While /sleep waits on the loop, / is answered at once.
        let sleeper = std::thread::spawn(move || fetch(addr, "/sleep"));
        std::thread::sleep(Duration::from_millis(100));
        let quick = check("/", 200, "Hello, world")?;
        let (status, body) = sleeper.join().unwrap().map_err(|e| e.to_string())?;
        if status != 200 || !body.contains("slept") || quick >= delay {
            return Err(format!(
                "/sleep: {status} {body:?}, / took {quick:?} meanwhile"
            ));
        }
        // The same, with the wait written as an `async` block.
        let sleeper = std::thread::spawn(move || fetch(addr, "/async_sleep"));
        std::thread::sleep(Duration::from_millis(100));
        let quick = check("/async", 200, "Hello, world")?;
        let (status, body) = sleeper.join().unwrap().map_err(|e| e.to_string())?;
        if status != 200 || !body.contains("in a coroutine") || quick >= delay {
            return Err(format!(
                "/async_sleep: {status} {body:?}, /async took {quick:?} meanwhile"
            ));
        }
        // While /blocking sleeps, / waits for it: the stall.
        let blocker = std::thread::spawn(move || fetch(addr, "/blocking"));
        std::thread::sleep(Duration::from_millis(100));
        let stalled = check("/", 200, "Hello, world")?;
        blocker.join().unwrap().map_err(|e| e.to_string())?;
        if stalled < delay / 2 {
            return Err(format!("/ during /blocking took only {stalled:?}"));
        }
        println!("/ during /sleep: {quick:?}; / during /blocking: {stalled:?} (the stall)");
        Ok(())
    });
    // The client thread ends the test through the loop's one thread-safe door.
    let (tx, rx) = std::sync::mpsc::channel();
    let watcher = std::thread::spawn(move || {
        let result = client
            .join()
            .unwrap_or_else(|_| Err("client panicked".into()));
        let _ = tx.send(result);
        let _ = remote.stop();
    });
    io_loop.start()?;
    watcher.join().expect("watcher");
    let result = rx.recv().expect("the client reported");
    match result {
        Ok(()) => {
            println!("self-test ok");
            Ok(())
        }
        Err(msg) => Err(Error::other(format!("self-test failed: {msg}"))),
    }
}
