//! A picture of the loop: run a small scripted workload with tracing on and
//! draw what every iteration did as an SVG timeline.
//!
//! Usage: `timeline [OUT.svg]` (default `timeline.svg` in the current
//! directory). It prints the text form of the trace, writes the SVG, checks
//! the trace holds what the workload did, and exits (under a second).
//!
//! The workload, all on one loop:
//! - an echo server (`TCPServer`) on 127.0.0.1, and a client coroutine that
//!   connects, sends a line, and reads the echo back (`IOStream`);
//! - a ticker coroutine that sleeps 8 ms four times (`gen::sleep`, a `Task`);
//! - a plain timeout at 15 ms;
//! - at 25 ms, a callback that blocks the loop with `std::thread::sleep`
//!   for 50 ms: the long red span. The ticker's last wake-up, due at 32 ms,
//!   waits behind it until the callback returns.
//!
//! Run: `cargo run --example timeline --features trace` (then open
//! `timeline.svg` in a browser: hover a span for its details).
//! `RUST_LOG=squall::trace=trace` also logs each record as it happens.

use squall::netutil::BindOptions;
use std::cell::Cell;
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use squall::gen::{self, Resume, Step, YieldFuture};
use squall::trace::{self, Kind, Record};
use squall::{Error, ErrorKind, Future, IOLoop, IOStream, TCPServer};

const BLOCK: Duration = Duration::from_millis(50);

/// The server side: read a line, write it back, close.
fn echo(stream: IOStream, _peer: SocketAddr) -> Future<()> {
    let done = Future::new();
    let (d, s) = (done.clone(), stream.clone());
    stream
        .read_until_max_bytes(b"\n", 1024)
        .add_done_callback(move |line: &Future<Vec<u8>>| match line.take_result() {
            Ok(line) => {
                let s2 = s.clone();
                s.write(line).add_done_callback(move |w: &Future<()>| {
                    s2.close();
                    d.try_complete(w.take_result());
                });
            }
            Err(err) => {
                s.close();
                d.try_set_error(err);
            }
        });
    done
}

/// The client coroutine: connect, send a line, read the echo to the end.
fn client(addr: SocketAddr) -> impl gen::Generator<Output = String> {
    gen::from_fn(None::<IOStream>, move |stream, input| match input {
        Resume::Start => YieldFuture::new(IOStream::connect(addr)).into(),
        Resume::Value(v) => match stream.take() {
            None => {
                let conn: IOStream = match v.downcast() {
                    Ok(conn) => conn,
                    Err(err) => return Step::Return(Err(err)),
                };
                drop(conn.write(&b"hello, loop\n"[..]));
                let reply = conn.read_until_close();
                *stream = Some(conn);
                YieldFuture::new(reply).into()
            }
            Some(_) => Step::Return(
                v.downcast::<Vec<u8>>()
                    .map(|b| String::from_utf8_lossy(&b).into_owned()),
            ),
        },
        Resume::Error(err) => Step::Return(Err(err)),
    })
}

/// The ticker coroutine: four 8 ms sleeps.
fn ticker() -> impl gen::Generator<Output = u32> {
    gen::from_fn(0u32, |ticks, input| match input {
        Resume::Error(err) => Step::Return(Err(err)),
        _ if *ticks == 4 => Step::Return(Ok(*ticks)),
        _ => {
            *ticks += 1;
            gen::sleep(Duration::from_millis(8)).into()
        }
    })
}

/// Runs the workload on `io_loop`; resolves when every part is done.
fn workload(io_loop: &IOLoop) -> Future<String> {
    let all = Future::new();
    let parts = Rc::new(Cell::new(4u32));
    let reply = Rc::new(std::cell::RefCell::new(String::new()));
    let part_done = {
        let (all, parts, reply) = (all.clone(), parts.clone(), reply.clone());
        move |result: Result<(), Error>| {
            if let Err(err) = result {
                all.try_set_error(err);
                return;
            }
            parts.set(parts.get() - 1);
            if parts.get() == 0 {
                all.try_set_result(reply.borrow().clone());
            }
        }
    };

    let server = TCPServer::new(echo);
    if let Err(err) = server.listen_with(0, BindOptions::new().address("127.0.0.1")) {
        all.try_set_error(err);
        return all;
    }
    let addr = server.local_addrs()[0];

    let (done, r) = (part_done.clone(), reply.clone());
    gen::engine(client(addr), move |result: Result<String, Error>| {
        server.stop();
        done(result.map(|text| *r.borrow_mut() = text));
    });

    let done = part_done.clone();
    gen::engine(ticker(), move |result: Result<u32, Error>| {
        done(result.map(drop))
    });

    let done = part_done.clone();
    io_loop.call_later(Duration::from_millis(15), move || done(Ok(())));

    let (l, done) = (io_loop.clone(), part_done);
    io_loop.call_later(Duration::from_millis(25), move || {
        // The mistake this picture is for: blocking the only thread.
        l.add_callback(move || {
            std::thread::sleep(BLOCK);
            done(Ok(()));
        });
    });
    all
}

/// What the picture must show, or an error saying what is missing.
fn check(records: &[Record]) -> Result<(), String> {
    let has = |what: &str, f: &dyn Fn(&Record) -> bool| {
        if records.iter().any(f) {
            Ok(())
        } else {
            Err(format!("no {what} in the trace"))
        }
    };
    has("blocking callback", &|r| {
        r.kind == Kind::Callback
            && r.duration >= BLOCK
            && r.site.is_some_and(|s| s.file().ends_with("timeline.rs"))
    })?;
    has("fd handler", &|r| matches!(r.kind, Kind::Handler { .. }))?;
    has("timeout", &|r| r.kind == Kind::Timeout)?;
    has("runner step", &|r| r.kind == Kind::Step)?;
    has("poll wait", &|r| {
        matches!(r.kind, Kind::Poll { .. }) && r.duration >= Duration::from_millis(1)
    })?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "timeline.svg".to_owned());
    if out == "-h" || out == "--help" {
        println!("usage: timeline [OUT.svg]   (default: timeline.svg)");
        return Ok(());
    }

    let io_loop = IOLoop::new()?;
    io_loop.trace().enable(4096);
    let l = io_loop.clone();
    let reply = io_loop.run_sync(move || workload(&l), Some(Duration::from_secs(10)))?;
    io_loop.trace().disable();
    if reply != "hello, loop\n" {
        return Err(Error::new(ErrorKind::InvalidState, format!("bad echo {reply:?}")).into());
    }

    let records = io_loop.trace().drain();
    let options = trace::SvgOptions {
        title: "squall IOLoop timeline: examples/timeline.rs".to_owned(),
        ..trace::SvgOptions::default()
    };
    std::fs::write(&out, trace::render_svg_with(&records, &options))?;
    // Written, not print!ed: `timeline | head` must not panic on a closed pipe.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(trace::render_text(&records).as_bytes());
    let _ = writeln!(
        stdout,
        "{} records over {} iterations ({} dropped); echo {:?}; wrote {out}",
        records.len(),
        records.last().map_or(0, |r| r.iteration),
        io_loop.trace().dropped(),
        reply.trim_end()
    );
    drop(stdout);
    check(&records)?;
    io_loop.close();
    Ok(())
}
