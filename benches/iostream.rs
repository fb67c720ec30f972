//! IOStream echo ping-pong over loopback: [`ops::CONNECTIONS`] connections,
//! each with one [`ops::MESSAGE`]-byte message in flight, server and clients
//! on one loop.
//!
//! `cargo bench --bench iostream` runs it alone. `bench/run.sh` runs the same
//! workload (this file is included by `bench/peers` as a module) next to tokio
//! and a hand-written mio loop, and prints a table.
//!
//! The figure is the time per message round trip, all connections together
//! (messages/s = 1e9 / ns): a client writes a message, the server reads it
//! (`read_bytes`) and writes it back, the client reads the echo and sends the
//! next one. Connections are made outside the timed region; a timed run of
//! `iters` messages shares them out among the connections.

use criterion::{criterion_group, criterion_main, Criterion};

/// The workload, shared with `bench/peers` (which includes this file).
pub mod ops {
    use std::cell::Cell;
    use std::hint::black_box;
    use std::net::SocketAddr;
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    use squall::netutil::BindOptions;
    use squall::{Future, IOLoop, IOStream, TCPServer};

    /// Connections, each with one message in flight.
    pub const CONNECTIONS: usize = 100;
    /// Bytes per message.
    pub const MESSAGE: usize = 64;

    /// How many of `iters` messages connection `i` of `n` carries.
    pub fn share(iters: u64, i: usize, n: usize) -> u64 {
        let (n, i) = (n as u64, i as u64);
        iters / n + u64::from(i < iters % n)
    }

    /// Echoes every [`MESSAGE`] bytes `stream` reads, until it closes.
    fn echo(stream: IOStream) {
        loop {
            let read = stream.read_bytes(MESSAGE);
            if read.done() {
                // Buffered already: loop rather than recurse.
                match read.take_result() {
                    Ok(data) => {
                        drop(stream.write(data));
                        continue;
                    }
                    Err(_) => return stream.close(),
                }
            }
            let s = stream.clone();
            read.add_done_callback(move |read: &Future<Vec<u8>>| match read.take_result() {
                Ok(data) => {
                    drop(s.write(data));
                    echo(s);
                }
                Err(_) => s.close(),
            });
            return;
        }
    }

    /// An echo server and [`CONNECTIONS`] clients connected to it, on one loop.
    pub struct EchoPairs {
        /// The loop.
        pub io_loop: IOLoop,
        server: TCPServer,
        clients: Vec<IOStream>,
    }

    impl EchoPairs {
        /// Starts the server and connects the clients (runs the loop until
        /// they are all connected and accepted).
        pub fn new() -> EchoPairs {
            let io_loop = IOLoop::new().expect("loop");
            let accepted = Rc::new(Cell::new(0usize));
            let a = accepted.clone();
            let server = TCPServer::with_loop(&io_loop, move |stream: IOStream, _: SocketAddr| {
                a.set(a.get() + 1);
                echo(stream);
            });
            server.set_nodelay(true);
            server
                .listen_with(0, BindOptions::new().address("127.0.0.1"))
                .expect("listening on loopback");
            let addr = server.local_addrs()[0];
            let connects: Vec<Future<IOStream>> = (0..CONNECTIONS)
                .map(|_| IOStream::connect_with(addr, None, &io_loop))
                .collect();
            let deadline = Instant::now() + Duration::from_secs(10);
            while accepted.get() < CONNECTIONS || !connects.iter().all(Future::done) {
                assert!(Instant::now() < deadline, "connections not made in 10 s");
                let l = io_loop.clone();
                io_loop.call_later(Duration::from_millis(1), move || l.stop());
                io_loop.start().expect("loop runs");
            }
            let clients = connects
                .iter()
                .map(|c| {
                    let s = c.result().expect("connected");
                    s.set_nodelay(true).expect("TCP_NODELAY");
                    s
                })
                .collect();
            EchoPairs {
                io_loop,
                server,
                clients,
            }
        }

        /// `iters` round trips, shared among the connections, all in flight
        /// at once; the loop runs until the last echo is read.
        pub fn round_trips(&self, iters: u64) -> Duration {
            let start = Instant::now();
            let busy = Rc::new(Cell::new(0usize));
            for (i, client) in self.clients.iter().enumerate() {
                let n = share(iters, i, CONNECTIONS);
                if n > 0 {
                    busy.set(busy.get() + 1);
                    ping(client.clone(), n, busy.clone(), self.io_loop.clone());
                }
            }
            if busy.get() > 0 {
                self.io_loop.start().expect("loop runs");
            }
            start.elapsed()
        }
    }

    impl Default for EchoPairs {
        fn default() -> Self {
            EchoPairs::new()
        }
    }

    impl Drop for EchoPairs {
        fn drop(&mut self) {
            self.server.stop();
            for client in &self.clients {
                client.close();
            }
        }
    }

    /// Bytes per write of the bulk transfer.
    pub const BULK_WRITE: usize = 256 * 1024;
    /// Bytes asked for per read of the bulk transfer (`read_bytes(n, partial)`).
    pub const BULK_READ: usize = 64 * 1024;

    /// Sends `total` bytes through one loopback connection, writer and
    /// reader on one loop: the writer keeps one [`BULK_WRITE`]-byte write in
    /// flight (the next is queued when the last reaches the kernel), the
    /// reader takes what is there with `read_bytes_partial(BULK_READ)`. Timed
    /// from the first write to the last byte read, connection set-up
    /// excluded.
    pub fn bulk_transfer(total: u64) -> Duration {
        bulk(total, false)
    }

    /// [`bulk_transfer`], the reader using `read_into` with one vector
    /// passed round: no copy and no allocation per read, as a hand-written
    /// loop reading into one buffer.
    pub fn bulk_transfer_into(total: u64) -> Duration {
        bulk(total, true)
    }

    fn bulk(total: u64, into: bool) -> Duration {
        let io_loop = IOLoop::new().expect("loop");
        let received = Rc::new(Cell::new(0u64));
        let accepted = Rc::new(Cell::new(false));
        let (r, a, l) = (received.clone(), accepted.clone(), io_loop.clone());
        let server = TCPServer::with_loop(&io_loop, move |stream: IOStream, _: SocketAddr| {
            a.set(true);
            if into {
                drain_into(stream, vec![0; BULK_READ], total, r.clone(), l.clone());
            } else {
                drain(stream, total, r.clone(), l.clone());
            }
        });
        server
            .listen_with(0, BindOptions::new().address("127.0.0.1"))
            .expect("listening on loopback");
        let addr = server.local_addrs()[0];
        let l = io_loop.clone();
        let writer = io_loop
            .run_sync(move || IOStream::connect_with(addr, None, &l), None)
            .expect("connected");
        let chunk = vec![7u8; BULK_WRITE];
        let start = Instant::now();
        fill(writer.clone(), chunk, total);
        io_loop.start().expect("loop runs");
        let elapsed = start.elapsed();
        assert!(accepted.get());
        assert_eq!(received.get(), total);
        writer.close();
        server.stop();
        elapsed
    }

    /// Writes `left` bytes, one chunk in flight at a time.
    fn fill(stream: IOStream, chunk: Vec<u8>, left: u64) {
        if left == 0 {
            return;
        }
        let n = left.min(chunk.len() as u64) as usize;
        let s = stream.clone();
        stream
            .write(&chunk[..n])
            .add_done_callback(move |done: &Future<()>| {
                if done.take_result().is_ok() {
                    fill(s, chunk, left - n as u64);
                }
            });
    }

    /// Reads until `total` bytes arrived, then stops the loop.
    fn drain(stream: IOStream, total: u64, received: Rc<Cell<u64>>, io_loop: IOLoop) {
        loop {
            let read = stream.read_bytes_partial(BULK_READ);
            if !read.done() {
                let s = stream.clone();
                read.add_done_callback(move |read: &Future<Vec<u8>>| {
                    if let Ok(data) = read.take_result() {
                        received.set(received.get() + data.len() as u64);
                        if received.get() >= total {
                            s.close();
                            io_loop.stop();
                        } else {
                            drain(s, total, received, io_loop);
                        }
                    }
                });
                return;
            }
            match read.take_result() {
                Ok(data) => {
                    received.set(received.get() + black_box(data).len() as u64);
                    if received.get() >= total {
                        stream.close();
                        return io_loop.stop();
                    }
                }
                Err(_) => return,
            }
        }
    }

    /// [`drain`] with `read_into`, `buf` going round.
    fn drain_into(
        stream: IOStream,
        mut buf: Vec<u8>,
        total: u64,
        received: Rc<Cell<u64>>,
        io_loop: IOLoop,
    ) {
        loop {
            let read = stream.read_into_partial(buf);
            if !read.done() {
                let s = stream.clone();
                read.add_done_callback(move |read: &Future<(Vec<u8>, usize)>| {
                    if let Ok((buf, n)) = read.take_result() {
                        received.set(received.get() + n as u64);
                        if received.get() >= total {
                            s.close();
                            io_loop.stop();
                        } else {
                            drain_into(s, buf, total, received, io_loop);
                        }
                    }
                });
                return;
            }
            match read.take_result() {
                Ok((data, n)) => {
                    received.set(received.get() + black_box(n) as u64);
                    if received.get() >= total {
                        stream.close();
                        return io_loop.stop();
                    }
                    buf = data;
                }
                Err(_) => return,
            }
        }
    }

    /// Sends a message and reads its echo, `left` times; the last client to
    /// finish stops the loop.
    fn ping(stream: IOStream, left: u64, busy: Rc<Cell<usize>>, io_loop: IOLoop) {
        drop(stream.write([7u8; MESSAGE]));
        let s = stream.clone();
        stream
            .read_bytes(MESSAGE)
            .add_done_callback(move |echo: &Future<Vec<u8>>| {
                black_box(echo.take_result().expect("echo"));
                if left > 1 {
                    ping(s, left - 1, busy, io_loop);
                } else {
                    busy.set(busy.get() - 1);
                    if busy.get() == 0 {
                        io_loop.stop();
                    }
                }
            });
    }
}

fn echo(c: &mut Criterion) {
    let pairs = ops::EchoPairs::new();
    let mut g = c.benchmark_group("echo_64b_100conns");
    g.bench_function("squall", |b| {
        b.iter_custom(|iters| pairs.round_trips(iters))
    });
    g.finish();
}

criterion_group!(benches, echo);
criterion_main!(benches);
