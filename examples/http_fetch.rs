//! Fetches URLs with squall's `AsyncHTTPClient`, all at once.
//!
//! Usage: `http_fetch URL...` prints each answer's status line, headers and
//! body size. Without arguments it tests itself: a tiny keep-alive HTTP
//! server (a `TCPServer` on a thread of its own) is loaded by 100 concurrent
//! fetch loops for two seconds, and the rate is printed.

use squall::netutil::BindOptions;
use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use squall::httpclient::{AsyncHTTPClient, ClientConfig, HTTPResponse};
use squall::{Error, Future, IOLoop, IOStream, TCPServer};

fn main() -> Result<(), Error> {
    let urls: Vec<String> = std::env::args().skip(1).collect();
    if urls.is_empty() {
        self_test()
    } else {
        fetch_urls(urls)
    }
}

fn fetch_urls(urls: Vec<String>) -> Result<(), Error> {
    let io_loop = IOLoop::new()?;
    let failures = io_loop.run_sync(
        move || {
            let client = AsyncHTTPClient::new();
            let all = Future::new();
            let left = Rc::new(Cell::new(urls.len()));
            let failures = Rc::new(Cell::new(0));
            for url in urls {
                let (all, left, failures) = (all.clone(), left.clone(), failures.clone());
                let request = squall::httpclient::HTTPRequest::new(url.clone()).raise_error(false);
                client
                    .fetch(request)
                    .add_done_callback(move |f: &Future<HTTPResponse>| {
                        match f.take_result() {
                            Ok(r) => {
                                println!(
                                    "{url}: {} {} ({} ms)",
                                    r.code,
                                    r.reason,
                                    r.request_time.as_millis()
                                );
                                for (name, value) in r.headers.iter() {
                                    println!("  {name}: {value}");
                                }
                                println!(
                                    "  [{} bytes of body, from {}]",
                                    r.body.len(),
                                    r.effective_url
                                );
                            }
                            Err(err) => {
                                println!("{url}: {err}");
                                failures.set(failures.get() + 1);
                            }
                        }
                        left.set(left.get() - 1);
                        if left.get() == 0 {
                            all.try_set_result(failures.get());
                        }
                    });
            }
            all
        },
        None,
    )?;
    if failures > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// Answers every request on a connection with a fixed greeting.
fn serve(stream: IOStream) {
    let s = stream.clone();
    stream
        .read_until_max_bytes(b"\r\n\r\n", 64 * 1024)
        .add_done_callback(move |head: &Future<Vec<u8>>| {
            if head.take_result().is_ok() {
                drop(s.write(&b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, world!"[..]));
                serve(s);
            }
        });
}

fn self_test() -> Result<(), Error> {
    const CLIENTS: usize = 100;
    const RUN: Duration = Duration::from_secs(2);

    let (tx, rx) = std::sync::mpsc::channel();
    let server_thread = std::thread::spawn(move || -> Result<(), Error> {
        let io_loop = IOLoop::new()?;
        io_loop.make_current();
        let server = TCPServer::new(|stream: IOStream, _: SocketAddr| serve(stream));
        server.set_nodelay(true);
        server.listen_with(0, BindOptions::new().address("127.0.0.1"))?;
        tx.send((server.local_addrs()[0], io_loop.remote()))
            .expect("main thread");
        io_loop.start()
    });
    let (addr, server_loop) = rx.recv().expect("server thread");
    let url = format!("http://{addr}/");

    let io_loop = IOLoop::new()?;
    let client = AsyncHTTPClient::with_config(&io_loop, ClientConfig::new().max_clients(CLIENTS));
    let fetched = Rc::new(Cell::new(0u64));
    let started = Instant::now();
    let (c, f) = (client.clone(), fetched.clone());
    io_loop.run_sync(
        move || {
            let all = Future::new();
            let running = Rc::new(Cell::new(CLIENTS));
            for _ in 0..CLIENTS {
                lane(
                    c.clone(),
                    url.clone(),
                    started + RUN,
                    f.clone(),
                    running.clone(),
                    all.clone(),
                );
            }
            all
        },
        Some(RUN * 5),
    )?;
    let elapsed = started.elapsed();
    let stats = client.stats();
    client.close();
    let _ = server_loop.stop();
    server_thread.join().expect("server thread")?;
    let rate = fetched.get() as f64 / elapsed.as_secs_f64();
    println!(
        "{} fetches by {CLIENTS} concurrent clients in {elapsed:.2?}: {rate:.0} fetches/s; {} connections opened",
        fetched.get(),
        stats.connections_opened
    );
    assert!(fetched.get() > CLIENTS as u64, "too few fetches");
    assert!(
        stats.connections_opened <= CLIENTS as u64,
        "keep-alive did not hold"
    );
    Ok(())
}

/// One client: fetches again and again until `until`.
fn lane(
    client: AsyncHTTPClient,
    url: String,
    until: Instant,
    fetched: Rc<Cell<u64>>,
    running: Rc<Cell<usize>>,
    all: Future<()>,
) {
    let next = client.fetch(url.as_str());
    next.add_done_callback(move |r: &Future<HTTPResponse>| {
        let body = r.take_result()?.body;
        assert_eq!(body, b"Hello, world!");
        fetched.set(fetched.get() + 1);
        if Instant::now() < until {
            // Through the loop, so a long run does not deepen the stack.
            let l = IOLoop::current();
            l.add_callback(move || lane(client, url, until, fetched, running, all));
        } else {
            running.set(running.get() - 1);
            if running.get() == 0 {
                all.try_set_result(());
            }
        }
        Ok(())
    });
}
