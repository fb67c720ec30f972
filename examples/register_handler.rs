//! The second seed article, served: a handler marked asynchronous whose
//! `get` runs a `gen::engine` generator that yields `Task(method_while)`,
//! then `Task(method_later)`, and finishes the response.
//!
//! ```python
//! class Handler(RequestHandler):
//!     @web.asynchronous
//!     @gen.engine
//!     def get(self):
//!         response = yield gen.Task(self.method_while)
//!         later = yield gen.Task(self.method_later)
//!         self.write("response %s, later %s" % (response, later))
//!         self.finish()
//!
//!     def method_while(self, callback):
//!         callback(1)
//!
//!     def method_later(self, callback):
//!         IOLoop.current().add_timeout(time.time() + 0.05, partial(callback, 2))
//! ```
//!
//! Its Tornado 6 twin, served on `/async`, is the same handler with native
//! coroutines; the callbacks stay as they are, awaited as `gen.Task`s
//! (`Task` is awaitable):
//!
//! ```python
//! class AsyncHandler(RequestHandler):
//!     async def get(self):
//!         response = await gen.Task(self.method_while)
//!         later = await gen.Task(self.method_later)
//!         self.write("response %s, later %s" % (response, later))
//! ```
//!
//! Usage: `register_handler` (self-check: serve on a free port, fetch `/`
//! and `/async` with a std client, check the answers, exit 0) or
//! `register_handler PORT` (serve on 127.0.0.1:PORT until killed; try
//! `curl 127.0.0.1:PORT/` and `curl 127.0.0.1:PORT/async`).

use squall::netutil::BindOptions;
use std::io::{Read, Write};
use std::time::Duration;

use squall::gen::{self, Generator, ResultCallback, Resume, Step, Task};
use squall::http::HTTPServer;
use squall::web::{Application, Exchange, RequestHandler};
use squall::{Error, IOLoop};

/// `method_while`: calls back at once.
fn method_while(callback: ResultCallback) {
    callback.call(1i32);
}

/// `method_later`: calls back from a timeout, 50 ms later.
fn method_later(callback: ResultCallback) {
    IOLoop::current().call_later(Duration::from_millis(50), move || callback.call(2i32));
}

/// `get()`'s body as a state machine: where it can be suspended.
enum Get {
    Start(Exchange),
    AwaitingWhile(Exchange),
    AwaitingLater(Exchange, i32),
    Finished,
}

impl Generator for Get {
    type Output = ();
    fn resume(&mut self, input: Resume) -> Step<()> {
        if let Resume::Error(err) = input {
            *self = Get::Finished;
            return Step::Return(Err(err));
        }
        let value = |input: Resume| -> Result<i32, Error> {
            Ok(input.into_result::<i32>()?.unwrap_or_default())
        };
        match std::mem::replace(self, Get::Finished) {
            Get::Start(x) => {
                *self = Get::AwaitingWhile(x);
                Step::wait(Task::new(method_while))
            }
            Get::AwaitingWhile(x) => match value(input) {
                Ok(response) => {
                    *self = Get::AwaitingLater(x, response);
                    Step::wait(Task::new(method_later))
                }
                Err(err) => Step::Return(Err(err)),
            },
            Get::AwaitingLater(x, response) => match value(input) {
                Ok(later) => {
                    x.write(format!("response {response}, later {later}"));
                    Step::Return(x.finish())
                }
                Err(err) => Step::Return(Err(err)),
            },
            Get::Finished => Step::Return(Err(Error::other("resumed after the end"))),
        }
    }
}

struct Handler;

impl RequestHandler for Handler {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        // @web.asynchronous: the response stays open when get() returns.
        x.set_async();
        // @gen.engine: an error out of the generator becomes a 500.
        let on_error = x.clone();
        gen::engine(Get::Start(x.clone()), move |result: Result<(), Error>| {
            if let Err(err) = result {
                log::error!("get failed: {err}");
                on_error.send_error(500);
            }
        });
        Ok(())
    }
}

/// The `async def get` twin: the state machine above is what the compiler
/// writes for this block. `finish_on` finishes the response when the
/// coroutine is done (an error answers 500).
struct AsyncHandler;

impl RequestHandler for AsyncHandler {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let x2 = x.clone();
        x.finish_on(&gen::coroutine(async move {
            let response: i32 = Task::new(method_while).await?.downcast()?;
            let later: i32 = Task::new(method_later).await?.downcast()?;
            x2.write(format!("response {response}, later {later}"));
            Ok(())
        }));
        Ok(())
    }
}

fn main() -> Result<(), Error> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let io_loop = IOLoop::current();
    let server = HTTPServer::new(
        Application::new()
            .route("/", || Handler)
            .route("/async", || AsyncHandler),
    );
    if let Some(port) = std::env::args().nth(1) {
        let port: u16 = port
            .parse()
            .map_err(|_| Error::other("usage: register_handler [PORT]"))?;
        server.listen_with(port, BindOptions::new().address("127.0.0.1"))?;
        println!("serving on http://127.0.0.1:{port}/");
        return io_loop.start();
    }
    // Self-check: a std client on a thread; the loop stops when it is done.
    server.listen_with(0, BindOptions::new().address("127.0.0.1"))?;
    let addr = server.local_addrs()[0];
    let remote = io_loop.remote();
    let client = std::thread::spawn(move || {
        let fetch = |path: &str| -> std::io::Result<String> {
            let mut conn = std::net::TcpStream::connect(addr)?;
            conn.set_read_timeout(Some(Duration::from_secs(10)))?;
            let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            conn.write_all(head.as_bytes())?;
            let mut reply = String::new();
            conn.read_to_string(&mut reply)?;
            Ok(reply)
        };
        let result = fetch("/").and_then(|a| Ok((a, fetch("/async")?)));
        let _ = remote.stop();
        result
    });
    io_loop.start()?;
    let (generator, native) = client.join().expect("client thread").map_err(Error::from)?;
    for reply in [&generator, &native] {
        println!("{}\n", reply.trim_end());
        if !(reply.starts_with("HTTP/1.1 200") && reply.ends_with("response 1, later 2")) {
            return Err(Error::other(format!("unexpected reply: {reply:?}")));
        }
    }
    println!("register_handler: ok (generator and async forms)");
    Ok(())
}
