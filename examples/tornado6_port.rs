//! A small Tornado 6 application ported line for line: two plain handlers,
//! two `async def` handlers (one awaits `AsyncHTTPClient.fetch`, one puts
//! into a queue), a background worker draining the queue, and a
//! `PeriodicCallback` ticking.
//!
//! ci-args: --self-test
//!
//! ```python
//! import asyncio
//! from tornado import gen, httpclient, ioloop, queues, web
//!
//! class State:
//!     def __init__(self):
//!         self.ticks = 0
//!         self.processed = []
//!
//! class MainHandler(web.RequestHandler):
//!     def get(self):
//!         self.write("Hello, world")
//!
//! class StatsHandler(web.RequestHandler):
//!     def initialize(self, state):
//!         self.state = state
//!
//!     def get(self):
//!         self.write("ticks=%d processed=%s" % (self.state.ticks, ",".join(self.state.processed)))
//!
//! class FetchHandler(web.RequestHandler):
//!     async def get(self):
//!         client = httpclient.AsyncHTTPClient()
//!         response = await client.fetch("http://%s/" % self.request.host)
//!         self.write("fetched %d bytes: %s" % (len(response.body), response.body.decode()))
//!
//! class SubmitHandler(web.RequestHandler):
//!     def initialize(self, queue):
//!         self.queue = queue
//!
//!     async def post(self):
//!         await self.queue.put(self.request.body.decode())
//!         self.set_status(202)
//!         self.write("queued")
//!
//! async def worker(queue, state):
//!     while True:
//!         item = await queue.get()
//!         try:
//!             await gen.sleep(0.01)          # pretend to work
//!             state.processed.append(item.upper())
//!         finally:
//!             queue.task_done()
//!
//! def make_app(state, queue):
//!     return web.Application([
//!         (r"/", MainHandler),
//!         (r"/stats", StatsHandler, dict(state=state)),
//!         (r"/fetch", FetchHandler),
//!         (r"/submit", SubmitHandler, dict(queue=queue)),
//!     ])
//!
//! async def main(port=8888):
//!     state, queue = State(), queues.Queue(maxsize=2)
//!     make_app(state, queue).listen(port, "127.0.0.1")
//!     def tick():
//!         state.ticks += 1
//!     ioloop.PeriodicCallback(tick, 100).start()     # milliseconds
//!     ioloop.IOLoop.current().spawn_callback(worker, queue, state)
//!     await asyncio.Event().wait()                     # serve forever
//!
//! if __name__ == "__main__":
//!     asyncio.run(main())
//! ```
//!
//! Usage: `tornado6_port PORT` serves on 127.0.0.1:PORT until killed (try
//! `curl 127.0.0.1:PORT/fetch` and `curl -d hello 127.0.0.1:PORT/submit`);
//! `tornado6_port --self-test` (what CI runs) serves on a free port, drives
//! every route with the async HTTP client from a coroutine, checks the
//! answers, and exits 0 within a few seconds.
//!
//! `async def get` is written `x.run_async(|x| async move { .. })`: the
//! response finishes when the block does, and an error out of it answers
//! through `write_error` (500, or the `HTTPError`'s status), as an exception
//! out of a Tornado coroutine handler does.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use squall::gen;
use squall::http::HTTPServer;
use squall::httpclient::{AsyncHTTPClient, HTTPRequest};
use squall::locks::Event;
use squall::netutil::BindOptions;
use squall::queues::Queue;
use squall::web::{Application, Exchange, RequestHandler};
use squall::{Error, Future, IOLoop, PeriodicCallback};

/// `class State`.
#[derive(Default)]
struct State {
    ticks: Cell<u64>,
    processed: RefCell<Vec<String>>,
}

/// `class MainHandler`.
struct MainHandler;

impl RequestHandler for MainHandler {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write("Hello, world");
        Ok(())
    }
}

/// `class StatsHandler`; `initialize(self, state)` is the route's factory.
struct StatsHandler {
    state: Rc<State>,
}

impl RequestHandler for StatsHandler {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let state = &self.state;
        x.write(format!(
            "ticks={} processed={}",
            state.ticks.get(),
            state.processed.borrow().join(",")
        ));
        Ok(())
    }
}

/// `class FetchHandler`.
struct FetchHandler;

impl RequestHandler for FetchHandler {
    // async def get(self):
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let host = x.request().host().to_owned();
        x.run_async(|x| async move {
            let client = AsyncHTTPClient::new();
            let response = client.fetch(format!("http://{host}/")).await?;
            x.write(format!(
                "fetched {} bytes: {}",
                response.body.len(),
                response.text()
            ));
            Ok(())
        })
    }
}

/// `class SubmitHandler`.
struct SubmitHandler {
    queue: Queue<String>,
}

impl RequestHandler for SubmitHandler {
    // async def post(self):
    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        let queue = self.queue.clone();
        let item = String::from_utf8_lossy(x.request().body()).into_owned();
        x.run_async(|x| async move {
            queue.put(item).await?;
            x.set_status(202);
            x.write("queued");
            Ok(())
        })
    }
}

/// `async def worker(queue, state)`.
async fn worker(queue: Queue<String>, state: Rc<State>) -> Result<(), Error> {
    loop {
        let item = queue.get().await?;
        // try: ... finally: queue.task_done()
        let worked = async {
            gen::sleep(Duration::from_millis(10)).await?; // pretend to work
            state.processed.borrow_mut().push(item.to_uppercase());
            Ok::<_, Error>(())
        }
        .await;
        queue.task_done()?;
        worked?;
    }
}

/// `def make_app(state, queue)`.
fn make_app(state: &Rc<State>, queue: &Queue<String>) -> Application {
    let (state, queue) = (state.clone(), queue.clone());
    Application::new()
        .route("/", || MainHandler)
        .route("/stats", move || StatsHandler {
            state: state.clone(),
        })
        .route("/fetch", || FetchHandler)
        .route("/submit", move || SubmitHandler {
            queue: queue.clone(),
        })
}

/// What `main()` sets up before it waits forever: the server (on `port`,
/// 0 for any free one), the periodic tick, and the worker.
struct Running {
    server: HTTPServer,
    port: u16,
    state: Rc<State>,
    queue: Queue<String>,
    ticker: PeriodicCallback,
}

/// `async def main(port)`, up to its final wait; the tick period is the
/// argument so that the self-test need not wait 100 ms per tick.
fn start(port: u16, tick: Duration) -> Result<Running, Error> {
    let state = Rc::new(State::default());
    let queue = Queue::new(2);
    let server = HTTPServer::new(make_app(&state, &queue));
    server.listen_with(port, BindOptions::new().address("127.0.0.1"))?;
    let port = server.local_addrs()[0].port();
    let s = state.clone();
    let ticker = PeriodicCallback::new(move || s.ticks.set(s.ticks.get() + 1), tick)?;
    ticker.start();
    // spawn_callback(worker, queue, state): a failure is logged.
    let (q, s) = (queue.clone(), state.clone());
    IOLoop::current().spawn_callback(move || gen::coroutine(worker(q, s)));
    Ok(Running {
        server,
        port,
        state,
        queue,
        ticker,
    })
}

/// Drives every route as a client would, from a coroutine.
async fn self_test(running: Rc<Running>) -> Result<(), Error> {
    let base = format!("http://127.0.0.1:{}", running.port);
    let client = AsyncHTTPClient::new();

    let hello = client.fetch(format!("{base}/")).await?;
    check(
        hello.code == 200 && hello.text() == "Hello, world",
        &hello.text(),
    )?;

    let fetched = client.fetch(format!("{base}/fetch")).await?;
    check(
        fetched.text() == "fetched 12 bytes: Hello, world",
        &fetched.text(),
    )?;

    // Five submissions at once into a queue of two: the handlers wait in
    // `queue.put` until the worker makes room, then answer 202.
    let posts: Vec<Future<_>> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|item| {
            client.fetch(
                HTTPRequest::new(format!("{base}/submit"))
                    .method("POST")
                    .body(*item),
            )
        })
        .collect();
    for response in gen::multi(posts).await? {
        check(
            response.code == 202 && response.text() == "queued",
            &response.text(),
        )?;
    }
    gen::timeout(Duration::from_secs(5), running.queue.join()).await?;

    // Let the ticker run at least twice more.
    let before = running.state.ticks.get();
    let ticked = Event::new();
    let (t, s) = (ticked.clone(), running.state.clone());
    let watcher = PeriodicCallback::new(
        move || {
            if s.ticks.get() >= before + 2 {
                t.set();
            }
        },
        Duration::from_millis(5),
    )?;
    watcher.start();
    gen::timeout(Duration::from_secs(5), ticked.wait()).await?;
    watcher.stop();

    let stats = client.fetch(format!("{base}/stats")).await?.text();
    println!("/stats: {stats}");
    let processed = stats.split(" processed=").nth(1).unwrap_or_default();
    check(processed == "A,B,C,D,E", &stats)?;
    let ticks: u64 = stats
        .trim_start_matches("ticks=")
        .split(' ')
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    check(ticks >= 2, &stats)?;

    // An unknown route is Tornado's 404, raised as an HTTP error by fetch.
    let missing = client.fetch(format!("{base}/nowhere")).await;
    check(missing.is_err(), "a 404 was not an error")?;
    Ok(())
}

fn check(ok: bool, what: &str) -> Result<(), Error> {
    if ok {
        Ok(())
    } else {
        Err(Error::other(format!("unexpected: {what}")))
    }
}

fn main() -> Result<(), Error> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let io_loop = IOLoop::current();
    match std::env::args().nth(1).as_deref() {
        Some("--self-test") | None => {
            let running = Rc::new(start(0, Duration::from_millis(10))?);
            println!("serving on http://127.0.0.1:{}/", running.port);
            let r = running.clone();
            io_loop.run_sync(
                move || gen::coroutine(self_test(r)),
                Some(Duration::from_secs(20)),
            )?;
            running.ticker.stop();
            running.server.stop();
            println!("tornado6_port: ok");
            Ok(())
        }
        Some(port) => {
            let port: u16 = port
                .parse()
                .map_err(|_| Error::other("usage: tornado6_port [--self-test | PORT]"))?;
            let running = start(port, Duration::from_millis(100))?;
            println!("serving on http://127.0.0.1:{}/", running.port);
            // await asyncio.Event().wait(): serve forever.
            io_loop.start()
        }
    }
}
