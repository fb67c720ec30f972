//! The WebSocket load of `bench/websocket.sh`: one thread, one mio loop, `N`
//! connections, each doing the upgrade handshake and then round trips — send
//! one masked message, wait for its echo, check it, send the next — for a
//! measured window after a warm-up. The same load for every server.
//!
//! ```text
//! ws_load ADDR [--conns 100] [--seconds 10] [--warmup 1] [--size 64]
//!              [--binary] [--server-pid PID] [--messages N]
//! ws_load 127.0.0.1:8888                          # 64-byte text echo, 100 connections
//! ws_load 127.0.0.1:8888 --conns 4 --size 1048576 --binary
//! ```
//!
//! Prints one line, `WSLOAD key=value ...`: round trips (messages echoed) in
//! the window and per second, message MB/s (10^6 bytes of payload echoed per
//! second, each message counted once), round-trip latency p50/p99, this
//! process's own user+system CPU over the window as % of one core, and, with
//! `--server-pid`, the server's utime/stime over the same window (read from
//! `/proc/PID/stat` at its start and end, so the warm-up and the handshakes
//! are not counted), per message. `--messages N` ends the run once N round
//! trips are done, warm-up included (for instruction counts under callgrind,
//! where a fixed duration would give a different count every run; the
//! round trips finished in the same poll are counted too, so divide by the
//! printed count). Exits non-zero when a connection fails (refused, closed,
//! a bad handshake or an echo that differs).
//!
//! Why it stays cheaper than any server it loads: each connection's frame is
//! built and masked once (a fixed payload and mask key per connection, so
//! the server still unmasks every byte), echoes are checked as they stream
//! in without being copied, events are edge-triggered and a short read is
//! taken as "drained" (tokio's trick), so a round trip costs one `send`, one
//! `recv` and a share of one `epoll_wait`.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// The handshake key of RFC 6455 section 1.3, and the accept value it implies.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// Each connection's read buffer.
const READ_BUF: usize = 64 * 1024;
/// The longest handshake answer read.
const MAX_HEAD: usize = 16 * 1024;
/// Latency histogram: 1 µs buckets up to this, then one overflow bucket.
const HIST_US: usize = 200_000;

struct Config {
    addr: SocketAddr,
    conns: usize,
    seconds: f64,
    warmup: f64,
    size: usize,
    binary: bool,
    server_pid: Option<u32>,
    /// Stop after this many round trips in all.
    messages: Option<u64>,
}

fn usage() -> ! {
    eprintln!(
        "usage: ws_load ADDR [--conns N] [--seconds D] [--warmup W] [--size BYTES] [--binary] \
         [--server-pid PID] [--messages N]"
    );
    std::process::exit(2)
}

fn parse_args() -> Config {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| usage());
    let mut c = Config {
        addr,
        conns: 100,
        seconds: 10.0,
        warmup: 1.0,
        size: 64,
        binary: false,
        server_pid: None,
        messages: None,
    };
    while let Some(flag) = args.next() {
        if flag == "--binary" {
            c.binary = true;
            continue;
        }
        let value = args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--conns" => c.conns = value.parse().unwrap_or_else(|_| usage()),
            "--seconds" => c.seconds = value.parse().unwrap_or_else(|_| usage()),
            "--warmup" => c.warmup = value.parse().unwrap_or_else(|_| usage()),
            "--size" => c.size = value.parse().unwrap_or_else(|_| usage()),
            "--messages" => c.messages = Some(value.parse().unwrap_or_else(|_| usage())),
            "--server-pid" => c.server_pid = Some(value.parse().unwrap_or_else(|_| usage())),
            _ => usage(),
        }
    }
    if c.conns == 0 || c.seconds <= 0.0 || c.warmup < 0.0 {
        usage();
    }
    c
}

/// A client frame (RFC 6455 section 5.2): FIN, the opcode, the mask bit, the
/// length in its shortest form, the key, the payload masked with it.
fn masked_frame(opcode: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// A small PRNG for payload bytes and mask keys (no dependency needed).
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

enum Phase {
    /// Waiting for the `101 Switching Protocols` head.
    Handshake,
    /// Waiting for a frame header (`have` bytes of it in `head`).
    Header,
    /// Inside the echo's payload: `done` bytes of it checked.
    Payload { done: usize },
}

struct Conn {
    stream: TcpStream,
    /// The request frame (or, before the upgrade, the handshake request).
    out: Vec<u8>,
    /// How much of `out` is sent.
    sent: usize,
    /// Whether `out` is being sent (else a round trip waits for its echo).
    sending: bool,
    frame: Vec<u8>,
    phase: Phase,
    /// Bytes read but not yet used (a split header or handshake head).
    pending: Vec<u8>,
    started: Instant,
}

#[derive(Default)]
struct Counters {
    messages: u64,
    bytes: u64,
}

struct Load {
    payload: Vec<u8>,
    opcode: u8,
    counters: Counters,
    hist: Vec<u32>,
    /// Latencies are recorded only inside the measured window.
    recording: bool,
    buf: Vec<u8>,
}

#[derive(Debug)]
struct Failure(String);

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure(e.to_string())
    }
}

impl Load {
    /// Moves one connection as far as it can go without blocking.
    fn progress(&mut self, conn: &mut Conn) -> Result<(), Failure> {
        let mut drained = false;
        loop {
            if conn.sending {
                while conn.sent < conn.out.len() {
                    match conn.stream.write(&conn.out[conn.sent..]) {
                        Ok(0) => return Err(Failure("write returned 0".into())),
                        Ok(n) => conn.sent += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                        Err(e) => return Err(e.into()),
                    }
                }
                conn.sending = false;
            }
            if drained {
                return Ok(());
            }
            // Read until a short read or a complete echo (then send the next).
            let n = match conn.stream.read(&mut self.buf) {
                Ok(0) => return Err(Failure("the server closed the connection".into())),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            // A short read: the socket is empty (edge-triggered events
            // will say when more comes).
            drained = n < self.buf.len();
            let buf = std::mem::take(&mut self.buf);
            let echoed = self.consume(conn, &buf[..n]);
            self.buf = buf;
            if echoed? {
                // One message in flight per connection: the next round trip.
                conn.out.clear();
                conn.out.extend_from_slice(&conn.frame);
                conn.sent = 0;
                conn.sending = true;
                conn.started = Instant::now();
                continue;
            }
            if drained {
                return Ok(());
            }
        }
    }

    /// Takes the bytes just read; returns whether the awaited echo is complete.
    fn consume(&mut self, conn: &mut Conn, mut data: &[u8]) -> Result<bool, Failure> {
        if matches!(conn.phase, Phase::Handshake) {
            conn.pending.extend_from_slice(data);
            let Some(end) = conn.pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                if conn.pending.len() > MAX_HEAD {
                    return Err(Failure("handshake answer too long".into()));
                }
                return Ok(false);
            };
            check_handshake(&conn.pending[..end])?;
            let rest = conn.pending.split_off(end + 4);
            conn.pending.clear();
            conn.phase = Phase::Header;
            if !rest.is_empty() {
                return Err(Failure("data before the first message".into()));
            }
            // The upgrade is done: the first round trip.
            return Ok(true);
        }
        let mut complete = false;
        while !data.is_empty() {
            if complete {
                return Err(Failure("more than one echo per message".into()));
            }
            match conn.phase {
                Phase::Header => {
                    let (b0, len, used) = if conn.pending.is_empty()
                        && data.len() >= 2
                        && data.len() >= header_len(data[1])
                    {
                        // The common case: the whole header in this read.
                        let need = header_len(data[1]);
                        let (b0, len) = parse_header(&data[..need]);
                        (b0, len, need)
                    } else {
                        // A header split between reads: gather it (at most
                        // 10 bytes) in `pending`.
                        let mut used = 0;
                        loop {
                            let need = match conn.pending.get(1) {
                                Some(&b1) => header_len(b1),
                                None => 2,
                            };
                            if conn.pending.len() == need {
                                break;
                            }
                            let Some(&b) = data.get(used) else {
                                return Ok(false);
                            };
                            conn.pending.push(b);
                            used += 1;
                        }
                        let (b0, len) = parse_header(&conn.pending);
                        conn.pending.clear();
                        (b0, len, used)
                    };
                    data = &data[used..];
                    if b0 != 0x80 | self.opcode || len != self.payload.len() as u64 {
                        return Err(Failure(format!(
                            "unexpected frame: first byte {b0:#04x}, length {len}"
                        )));
                    }
                    conn.phase = Phase::Payload { done: 0 };
                    if self.payload.is_empty() {
                        conn.phase = Phase::Header;
                        complete = true;
                        self.done(conn);
                    }
                }
                Phase::Payload { done } => {
                    let take = data.len().min(self.payload.len() - done);
                    if data[..take] != self.payload[done..done + take] {
                        return Err(Failure("the echo differs from the message".into()));
                    }
                    data = &data[take..];
                    if done + take == self.payload.len() {
                        conn.phase = Phase::Header;
                        complete = true;
                        self.done(conn);
                    } else {
                        conn.phase = Phase::Payload { done: done + take };
                    }
                }
                Phase::Handshake => unreachable!(),
            }
        }
        Ok(complete)
    }

    fn done(&mut self, conn: &Conn) {
        self.counters.messages += 1;
        self.counters.bytes += self.payload.len() as u64;
        if self.recording {
            let us = conn.started.elapsed().as_micros() as usize;
            self.hist[us.min(HIST_US)] += 1;
        }
    }
}

/// How long a server frame's header is, from its second byte.
fn header_len(b1: u8) -> usize {
    // A server frame is never masked: a set mask bit makes a length that
    // matches nothing, and the echo check reports it.
    match b1 {
        126 => 4,
        127 => 10,
        _ => 2,
    }
}

/// The first byte and the payload length of a server frame's header.
fn parse_header(h: &[u8]) -> (u8, u64) {
    let len = match h[1] {
        126 => u16::from_be_bytes([h[2], h[3]]) as u64,
        127 => u64::from_be_bytes(h[2..10].try_into().expect("8 bytes")),
        n => n as u64,
    };
    (h[0], len)
}

fn check_handshake(head: &[u8]) -> Result<(), Failure> {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    if !status.starts_with("HTTP/1.1 101") {
        return Err(Failure(format!("handshake answered {status:?}")));
    }
    let accept = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("sec-websocket-accept")
            .then(|| value.trim().to_string())
    });
    if accept.as_deref() != Some(ACCEPT) {
        return Err(Failure(format!("Sec-WebSocket-Accept is {accept:?}")));
    }
    Ok(())
}

/// This process's user and system CPU time.
fn own_cpu() -> (Duration, Duration) {
    // SAFETY: getrusage writes into the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// A process's utime and stime in clock ticks (`/proc/PID/stat` fields 14 and
/// 15, counted after the `)` that ends the command name).
fn proc_ticks(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ').skip(11);
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

/// Where the measured window began: when, this process's CPU time, the
/// server's ticks.
struct WindowStart {
    at: Instant,
    cpu: (Duration, Duration),
    server: Option<(u64, u64)>,
}

fn percentile(hist: &[u32], p: f64) -> usize {
    let total: u64 = hist.iter().map(|&n| n as u64).sum();
    let want = ((total as f64) * p).ceil() as u64;
    let mut seen = 0;
    for (us, &n) in hist.iter().enumerate() {
        seen += n as u64;
        if seen >= want.max(1) {
            return us;
        }
    }
    HIST_US
}

fn main() -> ExitCode {
    let cfg = parse_args();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let payload: Vec<u8> = if cfg.binary {
        (0..cfg.size).map(|_| rng.next() as u8).collect()
    } else {
        // Printable ASCII: valid UTF-8 for a text message.
        (0..cfg.size).map(|i| b'a' + (i % 26) as u8).collect()
    };
    let opcode = if cfg.binary { 2 } else { 1 };
    let mut poll = Poll::new().expect("epoll");
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        cfg.addr
    );
    let mut conns: Vec<Conn> = (0..cfg.conns)
        .map(|i| {
            let mut stream = TcpStream::connect(cfg.addr).expect("connect");
            // As every server here: a small frame goes out at once.
            stream.set_nodelay(true).expect("TCP_NODELAY");
            poll.registry()
                .register(
                    &mut stream,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .expect("register");
            let key = (rng.next() as u32).to_be_bytes();
            Conn {
                stream,
                out: request.clone().into_bytes(),
                sent: 0,
                sending: true,
                frame: masked_frame(opcode, &payload, key),
                phase: Phase::Handshake,
                pending: Vec::new(),
                started: Instant::now(),
            }
        })
        .collect();
    let mut load = Load {
        payload,
        opcode,
        counters: Counters::default(),
        hist: vec![0; HIST_US + 1],
        recording: false,
        buf: vec![0; READ_BUF],
    };
    let mut events = Events::with_capacity(1024);
    let start = Instant::now();
    let window_start = start + Duration::from_secs_f64(cfg.warmup);
    let window_end = window_start + Duration::from_secs_f64(cfg.seconds);
    let mut at_start: Option<WindowStart> = None;
    let mut failures = 0usize;
    // Round trips before the window (the counters restart at its start).
    let mut before_window = 0;
    let mut first_failure = None;
    let mut alive = vec![true; conns.len()];
    loop {
        let now = Instant::now();
        if at_start.is_none() && now >= window_start {
            let warm = std::mem::take(&mut load.counters);
            before_window = warm.messages;
            at_start = Some(WindowStart {
                at: now,
                cpu: own_cpu(),
                server: cfg.server_pid.and_then(proc_ticks),
            });
            load.recording = true;
        }
        if cfg
            .messages
            .is_some_and(|n| before_window + load.counters.messages >= n)
        {
            break;
        }
        if now >= window_end {
            break;
        }
        let timeout = if at_start.is_none() {
            window_start
        } else {
            window_end
        } - now;
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("epoll: {e}"),
        }
        for event in events.iter() {
            let i = event.token().0;
            if !alive[i] {
                continue;
            }
            if let Err(Failure(why)) = load.progress(&mut conns[i]) {
                alive[i] = false;
                failures += 1;
                let _ = poll.registry().deregister(&mut conns[i].stream);
                first_failure.get_or_insert(format!("connection {i}: {why}"));
            }
        }
        if failures == conns.len() {
            break;
        }
    }
    let end = Instant::now();
    let server_end = cfg.server_pid.and_then(proc_ticks);
    let cpu_end = own_cpu();
    let never = conns
        .iter()
        .filter(|c| matches!(c.phase, Phase::Handshake))
        .count();
    let Some(WindowStart {
        at: t0,
        cpu: cpu0,
        server: server0,
    }) = at_start
    else {
        eprintln!("ws_load: stopped before the measured window");
        if let Some(why) = first_failure {
            eprintln!("ws_load: {why}");
        }
        return ExitCode::FAILURE;
    };
    let secs = (end - t0).as_secs_f64();
    let n = load.counters.messages;
    let own = (cpu_end.0 - cpu0.0) + (cpu_end.1 - cpu0.1);
    let mut line = format!(
        "WSLOAD conns={} size={} binary={} messages={n} duration_us={:.0} rps={:.0} mbps={:.2} \
         p50_us={} p99_us={} client_cpu_pct={:.1} errors={failures}",
        cfg.conns,
        cfg.size,
        cfg.binary as u8,
        secs * 1e6,
        n as f64 / secs,
        load.counters.bytes as f64 / secs / 1e6,
        percentile(&load.hist, 0.50),
        percentile(&load.hist, 0.99),
        100.0 * own.as_secs_f64() / secs,
    );
    if let (Some(a), Some(b)) = (server0, server_end) {
        // SAFETY: sysconf only reads a constant.
        let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let per = |t: u64| {
            if n == 0 {
                0.0
            } else {
                t as f64 / tck * 1e6 / n as f64
            }
        };
        line += &format!(
            " server_user_us={:.3} server_sys_us={:.3} server_cpu_pct={:.1}",
            per(b.0 - a.0),
            per(b.1 - a.1),
            100.0 * ((b.0 + b.1 - a.0 - a.1) as f64 / tck) / secs
        );
    }
    println!("{line}");
    if let Some(why) = first_failure {
        eprintln!(
            "ws_load: {failures} connection(s) failed ({never} never upgraded); first: {why}"
        );
        return ExitCode::FAILURE;
    }
    if n == 0 {
        eprintln!("ws_load: no round trip in the measured window");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
