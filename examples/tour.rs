//! A guided tour of squall, from one callback to an HTTP request, in the
//! order of the five seed articles (`docs/porting.md` has their snippets).
//!
//! Each stop prints what happens and why. Everything runs on one thread, one
//! `IOLoop`; the only other threads belong to a stand-in "slow service"
//! (plain blocking std code, answering each line after 100 ms, as a remote
//! server would). The tour checks what it tells (an assertion per claim),
//! leaves no timeout or handler behind, and ends in about a second.
//!
//! Run: `cargo run --release --all-features --example tour`
//! (without `--features stackful` the greenlet stop says it is skipped).
//!
//! The stops:
//!  1. a callback                          (the loop itself)
//!  2. a timeout removed before it fires   (article 1's lesson)
//!  3. a raw `add_handler`                 (article 3's asynchronous fetch)
//!  4. a `Future` and `add_future`         (articles 3 and 4)
//!  5. a stack context catching a timeout  (article 1: the memcached client)
//!  6. a `Task` inside a generator         (article 2: `gen.engine`)
//!  7. a greenlet call                     (article 4: TorMySQL)
//!  8. an echo server                      (article 3: `TCPServer`)
//!  9. an HTTP request                     (squall's server and client)

use squall::netutil::BindOptions;
use std::cell::{Cell, RefCell};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

use squall::gen::{self, Generator, ResultCallback, Resume, Step, Task, YieldFuture};
use squall::http::HTTPServer;
use squall::httpclient::{AsyncHTTPClient, HTTPResponse};
use squall::stack_context::ExceptionStackContext;
use squall::web::{Application, Exchange, RequestHandler};
use squall::{Error, ErrorKind, Events, Future, IOLoop, IOStream, TCPServer};

/// How long the slow service, the echo server and the HTTP handler wait.
const DELAY: Duration = Duration::from_millis(100);
/// How many requests each concurrent stop sends at once.
const N: usize = 20;

fn main() -> Result<(), Error> {
    env_logger::init();
    let started = Instant::now();
    let io_loop = IOLoop::new()?;
    // A callback that runs longer than this is named in a warning
    // (`RUST_LOG=warn`): one slow callback stalls everyone on the loop.
    io_loop.set_blocking_log_threshold(Some(Duration::from_millis(50)));
    let service = start_slow_service()?;

    stop_1_callbacks(&io_loop)?;
    stop_2_removed_timeout(&io_loop)?;
    stop_3_add_handler(&io_loop, service)?;
    stop_4_future(&io_loop)?;
    stop_5_stack_context(&io_loop)?;
    stop_6_task_in_generator(&io_loop)?;
    stop_7_greenlet(&io_loop, service)?;
    stop_8_echo_server(&io_loop)?;
    stop_9_http(&io_loop)?;

    // Every resource has one owner and is released: nothing is left behind.
    assert_eq!(
        io_loop.timer_stats().pending,
        0,
        "a timeout was left behind"
    );
    assert_eq!(io_loop.handler_count(), 0, "an fd handler was left behind");
    io_loop.close();
    println!(
        "\nEnd of the tour, {:?} in all. Next: docs/architecture.md (how the loop turns), \
         docs/gen.md (the Runner), docs/porting.md (every Tornado name).",
        started.elapsed()
    );
    Ok(())
}

fn title(text: &str) {
    println!("\n== {text}");
}

fn say(text: impl AsRef<str>) {
    println!("   {}", text.as_ref());
}

// ----- 1. a callback ------------------------------------------------------

fn stop_1_callbacks(io_loop: &IOLoop) -> Result<(), Error> {
    title("1. A callback: add_callback runs it on the next loop iteration");
    let order = Rc::new(RefCell::new(Vec::new()));
    let done = Future::new();
    let (o, l, d) = (order.clone(), io_loop.clone(), done.clone());
    io_loop.add_callback(move || {
        o.borrow_mut().push("first");
        // Added while the loop runs callbacks: it waits for the *next*
        // iteration, so a callback that re-adds itself cannot starve IO.
        let (o, d) = (o.clone(), d.clone());
        l.add_callback(move || {
            o.borrow_mut().push("added by first");
            d.set_result(())
        });
    });
    let o = order.clone();
    io_loop.add_callback(move || o.borrow_mut().push("second"));
    say("queued two callbacks; nothing has run yet: the loop is not running");
    assert!(order.borrow().is_empty());
    io_loop.run_sync(move || done, None)?;
    say(format!("run order: {:?}", order.borrow()));
    say("callbacks run in the order they were added; one added meanwhile runs a turn later");
    assert_eq!(*order.borrow(), ["first", "second", "added by first"]);
    Ok(())
}

// ----- 2. a timeout removed before it fires -------------------------------

fn stop_2_removed_timeout(io_loop: &IOLoop) -> Result<(), Error> {
    title("2. A timeout removed before it fires");
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let handle = io_loop.call_later(Duration::from_millis(30), move || f.set(true));
    say(format!(
        "call_later(30 ms): {} timeout pending",
        io_loop.timer_stats().pending
    ));
    let (l, done) = (io_loop.clone(), Future::new());
    let d = done.clone();
    io_loop.call_later(Duration::from_millis(5), move || {
        // The answer came first: remove the timeout, or it would fire later
        // against a finished call (the first article's lesson).
        let removed = l.remove_timeout(handle);
        say(format!(
            "after 5 ms the answer is in: remove_timeout -> {removed}"
        ));
        // Wait past the old deadline to show it never fires.
        let d = d.clone();
        l.call_later(Duration::from_millis(40), move || d.set_result(()));
    });
    io_loop.run_sync(move || done, None)?;
    say(format!(
        "45 ms later: fired = {}, pending timeouts = {}",
        fired.get(),
        io_loop.timer_stats().pending
    ));
    assert!(!fired.get());
    assert_eq!(io_loop.timer_stats().pending, 0);
    Ok(())
}

// ----- 3. a raw add_handler -----------------------------------------------

/// The slow service of the third article: plain blocking code, one thread per
/// connection, answering each line after `DELAY`. It stands for a remote
/// server; squall never blocks on it.
fn start_slow_service() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            thread::spawn(move || -> io::Result<()> {
                let mut reader = BufReader::new(conn.try_clone()?);
                let mut line = String::new();
                while reader.read_line(&mut line)? > 0 {
                    thread::sleep(DELAY);
                    conn.write_all(line.as_bytes())?;
                    line.clear();
                }
                Ok(())
            });
        }
    });
    Ok(addr)
}

/// The article's asynchronous fetch: register the socket with `add_handler`
/// and return a Future that the handler resolves, removing itself first.
fn fetch_line(io_loop: &IOLoop, addr: SocketAddr, message: &str) -> Future<String> {
    let future = Future::new();
    let registered = (|| -> Result<(), Error> {
        // A blocking connect to loopback completes at once; the wait is for the answer.
        let mut sock = TcpStream::connect(addr)?;
        sock.write_all(format!("{message}\n").as_bytes())?;
        sock.set_nonblocking(true)?;
        let fd = sock.as_raw_fd();
        let mut received = Vec::new();
        let (l, f) = (io_loop.clone(), future.clone());
        io_loop.add_handler(
            fd,
            // The handler owns the socket: when it is removed, the socket closes.
            move |fd, _events: Events| -> Result<(), Error> {
                let mut buf = [0u8; 256];
                // Level-triggered: read once; if more is there, we are called again.
                match sock.read(&mut buf) {
                    Ok(n) if n > 0 && !buf[..n].ends_with(b"\n") => {
                        received.extend_from_slice(&buf[..n]);
                        return Ok(());
                    }
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => {
                        l.remove_handler(fd);
                        f.set_error(e.into());
                        return Ok(());
                    }
                }
                l.remove_handler(fd);
                f.set_result(String::from_utf8_lossy(&received).trim().to_owned());
                Ok(())
            },
            Events::READ,
        )
    })();
    if let Err(err) = registered {
        future.try_set_error(err);
    }
    future
}

fn stop_3_add_handler(io_loop: &IOLoop, service: SocketAddr) -> Result<(), Error> {
    title("3. A raw add_handler: many slow requests waiting at once");
    say(format!(
        "the service answers each line after {DELAY:?}; {N} requests, each a non-blocking \
         socket whose handler resolves a Future"
    ));
    let l = io_loop.clone();
    let t0 = Instant::now();
    let replies = io_loop.run_sync(
        move || {
            gather(
                (0..N)
                    .map(|i| fetch_line(&l, service, &format!("hello {i}")))
                    .collect(),
            )
        },
        Some(Duration::from_secs(5)),
    )?;
    let took = t0.elapsed();
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(reply, &format!("hello {i}"));
    }
    say(format!(
        "{N} answers in {took:?}: they waited together (one after another: {:?})",
        DELAY * N as u32
    ));
    say("the handlers removed themselves: handler_count() = 0");
    assert!(took < DELAY * N as u32 / 2, "the requests did not overlap");
    assert_eq!(io_loop.handler_count(), 0);
    Ok(())
}

/// Waits for every future; fails with the first error.
fn gather<T: 'static>(futures: Vec<Future<T>>) -> Future<Vec<T>> {
    let all = Future::new();
    let remaining = Rc::new(Cell::new(futures.len()));
    let futures = Rc::new(futures);
    for f in futures.iter() {
        let (all, remaining, futures) = (all.clone(), remaining.clone(), futures.clone());
        f.add_done_callback(move |f: &Future<T>| {
            if all.done() {
                return;
            }
            if let Some(err) = f.error() {
                all.try_set_error(err);
                return;
            }
            remaining.set(remaining.get() - 1);
            if remaining.get() == 0 {
                let values: Result<Vec<T>, Error> =
                    futures.iter().map(|f| f.take_result()).collect();
                all.try_complete(values);
            }
        });
    }
    if futures.is_empty() {
        all.try_set_result(Vec::new());
    }
    all
}

// ----- 4. a Future ----------------------------------------------------------

/// An asynchronous function: returns a Future at once, completes it later.
fn slow_square(io_loop: &IOLoop, x: u64) -> Future<u64> {
    let future = Future::new();
    let f = future.clone();
    io_loop.call_later(Duration::from_millis(10), move || f.set_result(x * x));
    future
}

fn stop_4_future(io_loop: &IOLoop) -> Result<(), Error> {
    title("4. A Future: a placeholder for a result someone sets later");
    let future = slow_square(io_loop, 12);
    say(format!(
        "slow_square(12) returned at once; done() = {}",
        future.done()
    ));
    assert!(!future.done());
    // add_future: the callback runs on the loop, the iteration after the
    // future completes (never inside set_result).
    let seen = Future::new();
    let s = seen.clone();
    io_loop.add_future(&future, move |f: &Future<u64>| {
        s.set_result(f.result()?);
        Ok(())
    });
    let value = io_loop.run_sync(move || seen, None)?;
    say(format!(
        "10 ms later a timeout called set_result(144); add_future's callback saw {value}"
    ));
    assert_eq!((value, future.result()?), (144, 144));
    let err = io_loop
        .run_sync(
            || Future::<u64>::failed(Error::new(ErrorKind::Timeout, "too slow")),
            None,
        )
        .unwrap_err();
    say(format!(
        "a failed Future carries a typed error instead of raising: {err} (kind {:?})",
        err.kind()
    ));
    assert_eq!(err.kind(), ErrorKind::Timeout);
    say("single-threaded (Rc inside, no atomics, !Send): Tornado's Future, not concurrent.futures");
    Ok(())
}

// ----- 5. a stack context catching a timeout error ------------------------

/// The first article's memcached call: a per-call timeout set inside an
/// `ExceptionStackContext`, whose handler turns the timeout's error into the
/// caller's failure. The timeout is removed on success, and on failure.
fn call_with_timeout(
    io_loop: &IOLoop,
    answer_after: Duration,
    request_timeout: Duration,
) -> Future<&'static str> {
    let result = Future::new();
    let r = result.clone();
    // `_cleanup`: receives what any callback scheduled below returns as Err.
    let cleanup = ExceptionStackContext::new(move |err: &Error| {
        say(format!("   the context's handler caught: {err}"));
        r.try_set_error(err.clone()) // true: handled
    });
    let (l, r) = (io_loop.clone(), result.clone());
    cleanup.run(|| {
        // Both callbacks capture the context current now.
        let timeout = l.call_later(request_timeout, || {
            Err::<(), _>(Error::new(
                ErrorKind::Timeout,
                "the server did not answer in time",
            ))
        });
        let l2 = l.clone();
        l.call_later(answer_after, move || {
            l2.remove_timeout(timeout); // on the success path too
            if r.done() {
                return;
            }
            r.try_set_result("VALUE");
        });
    });
    result
}

fn stop_5_stack_context(io_loop: &IOLoop) -> Result<(), Error> {
    title("5. A stack context catching a timeout error");
    say("a call answered in 5 ms, with a 50 ms timeout:");
    let l = io_loop.clone();
    let value = io_loop.run_sync(
        move || call_with_timeout(&l, Duration::from_millis(5), Duration::from_millis(50)),
        None,
    )?;
    say(format!("   got {value:?}; the timeout was removed"));
    assert_eq!(io_loop.timer_stats().pending, 0);
    say("a call answered in 80 ms, with a 20 ms timeout:");
    let l = io_loop.clone();
    let err = io_loop
        .run_sync(
            move || call_with_timeout(&l, Duration::from_millis(80), Duration::from_millis(20)),
            None,
        )
        .unwrap_err();
    say("   the timeout callback returned Err long after cleanup.run() returned;");
    say("   the loop re-entered the context captured when it was scheduled, and routed it there");
    assert_eq!(err.kind(), ErrorKind::Timeout);
    // The late answer's callback is still scheduled: let it run (it finds the
    // call finished), so the tour leaves nothing behind.
    io_loop.run_sync(|| gen::coroutine(SleepFor(Duration::from_millis(70))), None)?;
    assert_eq!(io_loop.timer_stats().pending, 0);
    Ok(())
}

/// A one-yield generator: `yield gen.sleep(d)`.
struct SleepFor(Duration);
impl Generator for SleepFor {
    type Output = ();
    fn resume(&mut self, input: Resume) -> Step<()> {
        match input {
            Resume::Start => gen::sleep(self.0).into(),
            Resume::Value(_) => Step::Return(Ok(())),
            Resume::Error(err) => Step::Return(Err(err)),
        }
    }
}

// ----- 6. a Task inside a generator ---------------------------------------

fn stop_6_task_in_generator(io_loop: &IOLoop) -> Result<(), Error> {
    title("6. A Task inside a generator (gen.engine)");
    // @gen.engine
    // def get(self):
    //     response = yield gen.Task(self.method_while)   # calls back at once
    //     later = yield gen.Task(self.method_later)      # calls back 30 ms later
    let l = io_loop.clone();
    let total = io_loop.run_sync(
        move || {
            let done = Future::new();
            let d = done.clone();
            gen::engine(
                gen::from_fn(0u32, move |sum, input| match input {
                    Resume::Start => {
                        say("generator: yield Task(method_while)");
                        Task::new(|callback: ResultCallback| {
                            say("Task::start: fresh key registered, method_while calls back at once");
                            callback.call(1u32)
                        })
                        .into()
                    }
                    Resume::Value(v) if *sum == 0 => {
                        let response = match v.downcast::<u32>() {
                            Ok(r) => r,
                            Err(err) => return Step::Return(Err(err)),
                        };
                        *sum += response;
                        say(format!("generator: resumed with {response}; yield Task(method_later)"));
                        let l = l.clone();
                        Task::new(move |callback: ResultCallback| {
                            say("Task::start: method_later sets a 30 ms timeout; the Runner returns and waits");
                            l.call_later(Duration::from_millis(30), move || callback.call(2u32));
                        })
                        .into()
                    }
                    Resume::Value(v) => {
                        let later = match v.downcast::<u32>() {
                            Ok(r) => r,
                            Err(err) => return Step::Return(Err(err)),
                        };
                        say(format!("generator: resumed with {later} by the timeout's callback; return"));
                        Step::Return(Ok(*sum + later))
                    }
                    Resume::Error(err) => Step::Return(Err(err)),
                }),
                move |result: Result<u32, Error>| d.complete(result),
            );
            say("gen::engine returned: the generator waits, the loop serves others");
            done
        },
        None,
    )?;
    say(format!(
        "the engine's callback got {total}; how the Runner turns: docs/gen.md"
    ));
    assert_eq!(total, 3);
    Ok(())
}

// ----- 7. a greenlet call ---------------------------------------------------

#[cfg(feature = "stackful")]
fn stop_7_greenlet(io_loop: &IOLoop, service: SocketAddr) -> Result<(), Error> {
    use squall::greenlet::{self, Stream};
    title("7. A greenlet call (TorMySQL's async_call_method)");
    say("straight-line 'blocking' code runs in a child coroutine with its own stack;");
    say("each IO call switches back to the loop until its Future is done");
    // A blocking-style query function, as a MySQL driver would be written.
    fn query(addr: SocketAddr, sql: &str) -> Result<String, Error> {
        let conn = Stream::connect(addr, Some(Duration::from_secs(2)))?; // switches
        conn.write(format!("{sql}\n"))?; // switches
        let row = conn.read_until_max_bytes(b"\n", 1024); // switches for ~100 ms
        conn.close();
        Ok(String::from_utf8_lossy(&row?).trim().to_owned())
    }
    let ticks = Rc::new(Cell::new(0u32));
    let (l, t) = (io_loop.clone(), ticks.clone());
    let t0 = Instant::now();
    let rows = io_loop.run_sync(
        move || {
            // A heartbeat on the loop, to show it runs while the child waits.
            fn tick(l: IOLoop, t: Rc<Cell<u32>>) {
                t.set(t.get() + 1);
                let l2 = l.clone();
                l.call_later(Duration::from_millis(10), move || {
                    if t.get() < 5 {
                        tick(l2, t)
                    }
                });
            }
            tick(l, t);
            gather(vec![
                greenlet::async_call_method(move || query(service, "SELECT 1")),
                greenlet::async_call_method(move || query(service, "SELECT 2")),
            ])
        },
        Some(Duration::from_secs(5)),
    )?;
    say(format!(
        "two queries, {:?} each on the service, done together in {:?}: {rows:?}",
        DELAY,
        t0.elapsed()
    ));
    say(format!(
        "meanwhile the loop ran a heartbeat {} times",
        ticks.get()
    ));
    assert_eq!(rows, ["SELECT 1", "SELECT 2"]);
    assert_eq!(ticks.get(), 5);
    Ok(())
}

#[cfg(not(feature = "stackful"))]
fn stop_7_greenlet(_io_loop: &IOLoop, _service: SocketAddr) -> Result<(), Error> {
    title("7. A greenlet call: skipped");
    say("greenlets (squall::greenlet) are behind the `stackful` feature; run the tour with");
    say("`cargo run --release --all-features --example tour` to see this stop");
    Ok(())
}

// ----- 8. an echo server ----------------------------------------------------

/// The third article's `handle_stream` coroutine: read a line, sleep, write
/// it back, close. Each `yield` is a state; `data` lives across two yields,
/// so it is a field.
enum At {
    Start,
    Reading,
    Sleeping,
    Writing,
}

struct Echo {
    stream: IOStream,
    at: At,
    data: Vec<u8>,
}

impl Echo {
    fn step(&mut self, input: Resume) -> Result<Step<()>, Error> {
        Ok(match self.at {
            At::Start => {
                self.at = At::Reading;
                YieldFuture::new(self.stream.read_until_max_bytes(b"\n", 1024)).into()
            }
            At::Reading => {
                self.data = input.into_result::<Vec<u8>>()?.unwrap_or_default();
                self.at = At::Sleeping;
                gen::sleep(DELAY).into()
            }
            At::Sleeping => {
                input.into_result::<()>()?;
                self.at = At::Writing;
                YieldFuture::new(self.stream.write(std::mem::take(&mut self.data))).into()
            }
            At::Writing => {
                input.into_result::<()>()?;
                self.stream.close();
                Step::Return(Ok(()))
            }
        })
    }
}

impl Generator for Echo {
    type Output = ();
    fn resume(&mut self, input: Resume) -> Step<()> {
        self.step(input).unwrap_or_else(|err| {
            self.stream.close(); // an open stream lives on the loop: close it on errors too
            Step::Return(Err(err))
        })
    }
}

/// A client: connect, write a line, read until the server closes.
fn echo_client(addr: SocketAddr, line: String) -> Future<Vec<u8>> {
    let reply = Future::new();
    let r = reply.clone();
    IOStream::connect(addr).add_done_callback(move |connected: &Future<IOStream>| {
        let stream = connected.take_result()?;
        drop(stream.write(line)); // done or not, the read below waits for the answer
        squall::chain_future(&stream.read_until_close(), &r);
        Ok(())
    });
    reply
}

fn stop_8_echo_server(io_loop: &IOLoop) -> Result<(), Error> {
    title("8. An echo server (TCPServer + a coroutine per connection)");
    let server = TCPServer::with_loop(io_loop, |stream: IOStream, _peer: SocketAddr| {
        gen::coroutine(Echo {
            stream,
            at: At::Start,
            data: Vec::new(),
        })
    });
    server.listen_with(0, BindOptions::new().address("127.0.0.1"))?;
    let addr = server.local_addrs()[0];
    say(format!(
        "listening on {addr}; each connection: read_until(\\n), sleep {DELAY:?}, write, close"
    ));
    let t0 = Instant::now();
    let replies = io_loop.run_sync(
        move || {
            gather(
                (0..N)
                    .map(|i| echo_client(addr, format!("line {i}\n")))
                    .collect(),
            )
        },
        Some(Duration::from_secs(5)),
    )?;
    let took = t0.elapsed();
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(reply, format!("line {i}\n").as_bytes());
    }
    say(format!(
        "{N} clients echoed in {took:?}: {N} coroutines slept at once on one thread"
    ));
    assert!(
        took < DELAY * N as u32 / 2,
        "the connections did not overlap"
    );
    server.stop();
    Ok(())
}

// ----- 9. an HTTP request ---------------------------------------------------

/// `@web.asynchronous`: the response stays open until `finish()`.
struct SlowHandler;
impl RequestHandler for SlowHandler {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_async();
        let x = x.clone();
        IOLoop::current().call_later(DELAY, move || {
            x.write(format!("hello from {}\n", x.request().path()));
            x.finish()
        });
        Ok(())
    }
}

fn stop_9_http(io_loop: &IOLoop) -> Result<(), Error> {
    title("9. An HTTP request: HTTPServer + Application, fetched by AsyncHTTPClient");
    let server = HTTPServer::with_loop(
        io_loop,
        Application::new().route("/slow/{n}", || SlowHandler),
    );
    server.listen_with(0, BindOptions::new().address("127.0.0.1"))?;
    let base = format!("http://{}", server.local_addrs()[0]);
    say(format!(
        "GET {base}/slow/N answers after {DELAY:?} without blocking (set_async + call_later)"
    ));
    let client = AsyncHTTPClient::with_loop(io_loop);
    let c = client.clone();
    let t0 = Instant::now();
    let responses: Vec<HTTPResponse> = io_loop.run_sync(
        move || {
            gather(
                (0..N)
                    .map(|i| c.fetch(format!("{base}/slow/{i}")))
                    .collect(),
            )
        },
        Some(Duration::from_secs(5)),
    )?;
    let took = t0.elapsed();
    for (i, response) in responses.iter().enumerate() {
        assert_eq!(response.code, 200);
        assert_eq!(response.text(), format!("hello from /slow/{i}\n"));
    }
    say(format!(
        "{N} responses (200 {:?}, ...) in {took:?}: two rounds of {DELAY:?}, as max_clients = 10",
        responses[0].text().trim()
    ));
    say("(Tornado's default) caps the fetches in flight; the other 10 waited in the client's queue.");
    say(format!(
        "A handler that blocked for {DELAY:?} (the second article's mistake) would take {:?}.",
        DELAY * N as u32
    ));
    assert!(took >= DELAY * 2, "max_clients did not queue");
    assert!(took < DELAY * N as u32 / 2, "the requests did not overlap");
    // Closing the client closes its pooled keep-alive connections; shutdown
    // lets the server see them go and release each one (and its idle timeout).
    client.close();
    io_loop.run_sync(|| server.shutdown(Duration::from_secs(1)), None)?;
    say(format!(
        "client closed, server shut down: {} connections left",
        server.tcp_server().connection_count()
    ));
    Ok(())
}
