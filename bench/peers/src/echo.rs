//! The peers of `benches/iostream.rs`'s echo ping-pong: [`CONNECTIONS`]
//! loopback connections, one [`MESSAGE`]-byte message in flight on each, the
//! server and the clients on one thread. Connections are made outside the
//! timed region; `round_trips(iters)` shares `iters` messages out among them
//! (as [`share`] does) and times them all.

use std::hint::black_box;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::{Builder, Runtime};
use tokio::task::JoinHandle;

/// Connections, each with one message in flight.
pub const CONNECTIONS: usize = 100;
/// Bytes per message.
pub const MESSAGE: usize = 64;

/// How many of `iters` messages connection `i` of `n` carries.
pub fn share(iters: u64, i: usize, n: usize) -> u64 {
    let (n, i) = (n as u64, i as u64);
    iters / n + u64::from(i < iters % n)
}

/// tokio, current_thread runtime: an accept task spawning one echo task per
/// connection (`read_exact` then `write_all`); a client is a task doing
/// `write_all` then `read_exact`.
pub struct TokioEcho {
    rt: Runtime,
    server: JoinHandle<()>,
    clients: Vec<Option<TcpStream>>,
}

impl TokioEcho {
    /// Starts the server and connects the clients.
    pub fn new() -> TokioEcho {
        let rt = Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let (server, clients) = rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("listening on loopback");
            let addr = listener.local_addr().expect("bound");
            let server = tokio::spawn(async move {
                loop {
                    let Ok((mut conn, _)) = listener.accept().await else {
                        return;
                    };
                    conn.set_nodelay(true).expect("TCP_NODELAY");
                    tokio::spawn(async move {
                        let mut buf = [0u8; MESSAGE];
                        while conn.read_exact(&mut buf).await.is_ok() {
                            if conn.write_all(&buf).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            });
            let mut clients = Vec::with_capacity(CONNECTIONS);
            for _ in 0..CONNECTIONS {
                let conn = TcpStream::connect(addr).await.expect("connected");
                conn.set_nodelay(true).expect("TCP_NODELAY");
                clients.push(Some(conn));
            }
            (server, clients)
        });
        TokioEcho {
            rt,
            server,
            clients,
        }
    }

    /// `iters` round trips, shared among the connections, all in flight.
    pub fn round_trips(&mut self, iters: u64) -> Duration {
        let clients = &mut self.clients;
        self.rt.block_on(async {
            let start = Instant::now();
            let mut tasks = Vec::with_capacity(CONNECTIONS);
            for (i, slot) in clients.iter_mut().enumerate() {
                let n = share(iters, i, CONNECTIONS);
                if n == 0 {
                    continue;
                }
                let mut conn = slot.take().expect("client connected");
                tasks.push((
                    i,
                    tokio::spawn(async move {
                        let msg = [7u8; MESSAGE];
                        let mut buf = [0u8; MESSAGE];
                        for _ in 0..n {
                            conn.write_all(&msg).await.expect("sent");
                            conn.read_exact(&mut buf).await.expect("echo");
                            black_box(&buf);
                        }
                        conn
                    }),
                ));
            }
            for (i, task) in tasks {
                clients[i] = Some(task.await.expect("client task"));
            }
            start.elapsed()
        })
    }
}

impl Default for TokioEcho {
    fn default() -> Self {
        TokioEcho::new()
    }
}

impl Drop for TokioEcho {
    fn drop(&mut self) {
        self.server.abort();
        self.clients.clear();
    }
}

/// One end of a connection in [`MioEcho`].
struct Conn {
    stream: mio::net::TcpStream,
    /// The message being read.
    inbuf: [u8; MESSAGE],
    inlen: usize,
    /// Bytes to write, from `outpos` on.
    out: Vec<u8>,
    outpos: usize,
    /// Client: round trips left in this run. Server: unused.
    left: u64,
}

impl Conn {
    fn new(stream: mio::net::TcpStream) -> Conn {
        Conn {
            stream,
            inbuf: [0; MESSAGE],
            inlen: 0,
            out: Vec::with_capacity(MESSAGE),
            outpos: 0,
            left: 0,
        }
    }

    fn send(&mut self, data: &[u8]) {
        self.out.extend_from_slice(data);
        self.flush();
    }

    fn flush(&mut self) {
        while self.outpos < self.out.len() {
            match self.stream.write(&self.out[self.outpos..]) {
                Ok(n) => self.outpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("write: {e}"),
            }
        }
        self.out.clear();
        self.outpos = 0;
    }

    /// Reads until the socket would block; calls `on_message` for each
    /// complete message.
    fn drain(&mut self, mut on_message: impl FnMut(&mut Conn)) {
        loop {
            match self.stream.read(&mut self.inbuf[self.inlen..]) {
                Ok(0) => panic!("peer closed"),
                Ok(n) => {
                    self.inlen += n;
                    if self.inlen == MESSAGE {
                        on_message(self);
                        self.inlen = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }
}

/// A hand-written mio loop, edge-triggered like the others: the server's
/// connections are tokens `0..CONNECTIONS`, the clients' the next
/// `CONNECTIONS`. Reads go on until the socket would block.
pub struct MioEcho {
    poll: mio::Poll,
    events: mio::Events,
    conns: Vec<Conn>,
}

impl MioEcho {
    /// Connects [`CONNECTIONS`] pairs over loopback (blocking, outside the
    /// loop), then registers both ends of each.
    pub fn new() -> MioEcho {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listening on loopback");
        let addr = listener.local_addr().expect("bound");
        let clients: Vec<std::net::TcpStream> = (0..CONNECTIONS)
            .map(|_| std::net::TcpStream::connect(addr).expect("connected"))
            .collect();
        let servers: Vec<std::net::TcpStream> = (0..CONNECTIONS)
            .map(|_| listener.accept().expect("accepted").0)
            .collect();
        let poll = mio::Poll::new().expect("poll");
        let conns: Vec<Conn> = servers
            .into_iter()
            .chain(clients)
            .enumerate()
            .map(|(token, s)| {
                s.set_nonblocking(true).expect("non-blocking");
                s.set_nodelay(true).expect("TCP_NODELAY");
                let mut stream = mio::net::TcpStream::from_std(s);
                poll.registry()
                    .register(
                        &mut stream,
                        mio::Token(token),
                        mio::Interest::READABLE | mio::Interest::WRITABLE,
                    )
                    .expect("registered");
                Conn::new(stream)
            })
            .collect();
        MioEcho {
            poll,
            events: mio::Events::with_capacity(1024),
            conns,
        }
    }

    /// `iters` round trips, shared among the connections, all in flight.
    pub fn round_trips(&mut self, iters: u64) -> Duration {
        let msg = [7u8; MESSAGE];
        let start = Instant::now();
        let mut busy = 0usize;
        for i in 0..CONNECTIONS {
            let n = share(iters, i, CONNECTIONS);
            if n > 0 {
                busy += 1;
                let client = &mut self.conns[CONNECTIONS + i];
                client.left = n;
                client.send(&msg);
            }
        }
        while busy > 0 {
            self.poll
                .poll(&mut self.events, None)
                .expect("poll succeeds");
            for event in self.events.iter() {
                let token = event.token().0;
                let conn = &mut self.conns[token];
                if event.is_writable() {
                    conn.flush();
                }
                if !event.is_readable() {
                    continue;
                }
                if token < CONNECTIONS {
                    conn.drain(|c| {
                        let echo = c.inbuf;
                        c.send(&echo);
                    });
                } else {
                    conn.drain(|c| {
                        black_box(&c.inbuf);
                        c.left -= 1;
                        if c.left > 0 {
                            c.send(&msg);
                        } else {
                            busy -= 1;
                        }
                    });
                }
            }
        }
        start.elapsed()
    }
}

impl Default for MioEcho {
    fn default() -> Self {
        MioEcho::new()
    }
}
