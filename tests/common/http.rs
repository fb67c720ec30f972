//! A squall HTTP server on its own thread and loop, for tests that talk to it
//! with blocking clients (std sockets, curl, Python Tornado).

use squall::netutil::BindOptions;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use squall::http::{HTTPServer, HTTPServerConnectionDelegate};
use squall::{IOLoop, Remote};

/// What a server's handlers saw, for the test's thread to read (the
/// server runs on a thread of its own): a `static` per test or route, as
/// the tests run in parallel.
#[allow(dead_code)] // not every test that includes this file uses it
pub struct Events(Mutex<Vec<String>>);

#[allow(dead_code)]
impl Events {
    pub const fn new() -> Events {
        Events(Mutex::new(Vec::new()))
    }
    pub fn push(&self, event: impl Into<String>) {
        self.0.lock().unwrap().push(event.into());
    }
    pub fn get(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    /// How many times `event` was seen.
    pub fn count(&self, event: &str) -> usize {
        self.get().iter().filter(|e| *e == event).count()
    }
    /// The events that start with `prefix`.
    pub fn starting(&self, prefix: &str) -> Vec<String> {
        self.get()
            .into_iter()
            .filter(|e| e.starts_with(prefix))
            .collect()
    }
}

/// A server on a thread; stopped (and joined) on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    remote: Remote,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// `app` makes what the server serves: an `Application`, or any
    /// `HTTPServerConnectionDelegate` (a closure of the request, say).
    pub fn start<D: HTTPServerConnectionDelegate>(
        app: impl FnOnce() -> D + Send + 'static,
        configure: impl FnOnce(&HTTPServer) + Send + 'static,
    ) -> TestServer {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let io_loop = IOLoop::new().expect("loop");
            io_loop.make_current();
            let server = HTTPServer::with_loop(&io_loop, app());
            configure(&server);
            server
                .listen_with(0, BindOptions::new().address("127.0.0.1"))
                .expect("listen");
            tx.send((server.local_addrs()[0], io_loop.remote()))
                .expect("send");
            io_loop.start().expect("loop start");
            server.stop();
            io_loop.close();
        });
        let (addr, remote) = rx.recv().expect("server started");
        TestServer {
            addr,
            remote,
            thread: Some(thread),
        }
    }

    /// (fd handlers, pending timeouts) on the server's loop, asked on the loop.
    pub fn loop_stats(&self) -> (usize, usize) {
        let (tx, rx) = mpsc::channel();
        self.remote
            .add_callback(move || {
                let l = IOLoop::current();
                let _ = tx.send((l.handler_count(), l.timer_stats().pending));
            })
            .expect("loop alive");
        rx.recv_timeout(Duration::from_secs(5)).expect("stats")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.remote.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A connection with a read timeout.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn
}

/// One parsed response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
    /// Every value of the header `name`, in order (a repeated header shows).
    #[allow(dead_code)] // not every test that includes this file uses it
    pub fn headers_named(&self, name: &str) -> Vec<String> {
        self.head
            .lines()
            .skip(1)
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
            .collect()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response from `conn` (Content-Length, chunked, or to EOF).
/// `head_only`: the response to a HEAD (no body whatever the headers say).
pub fn read_reply(conn: &mut TcpStream, buf: &mut Vec<u8>, head_only: bool) -> Option<Reply> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if !fill(conn, buf) {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end);
    let status = head.get(9..12)?.parse().ok()?;
    let mut reply = Reply {
        status,
        head,
        body: Vec::new(),
    };
    if head_only || status == 204 || status == 304 || status < 200 {
        return Some(reply);
    }
    if let Some(len) = reply.header("Content-Length") {
        let len: usize = len.parse().ok()?;
        while buf.len() < len {
            if !fill(conn, buf) {
                return None;
            }
        }
        reply.body = buf.drain(..len).collect();
    } else if reply
        .header("Transfer-Encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let line_end = loop {
                if let Some(i) = find(buf, b"\r\n") {
                    break i;
                }
                if !fill(conn, buf) {
                    return None;
                }
            };
            let size =
                usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).ok()?, 16).ok()?;
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                if !fill(conn, buf) {
                    return None;
                }
            }
            reply.body.extend(buf.drain(..size));
            buf.drain(..2);
            if size == 0 {
                break;
            }
        }
    } else {
        while fill(conn, buf) {}
        reply.body = std::mem::take(buf);
    }
    Some(reply)
}

fn fill(conn: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16384];
    match conn.read(&mut chunk) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Every answer on one connection to `raw`, sent whole and then
/// half-closed (read until the server closes): (status, body) each.
#[allow(dead_code)] // (some tests include this file without the allow)
pub fn answers(addr: SocketAddr, raw: &[u8]) -> Vec<(u16, String)> {
    let mut conn = connect(addr);
    conn.write_all(raw).expect("write");
    conn.shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while let Some(reply) = read_reply(&mut conn, &mut buf, false) {
        out.push((reply.status, reply.text()));
    }
    out
}

/// Waits (up to 10 s, polling every 5 ms) until `done` says so; panics
/// naming `what` if it never does.
#[allow(dead_code)]
pub fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends `raw` on a new connection and reads one reply.
pub fn raw_request(addr: SocketAddr, raw: &[u8]) -> Option<Reply> {
    let mut conn = connect(addr);
    conn.write_all(raw).ok()?;
    read_reply(&mut conn, &mut Vec::new(), false)
}

/// Whether the server closes `conn` within `limit` (reads until EOF).
pub fn closed_within(conn: &mut TcpStream, limit: Duration) -> bool {
    conn.set_read_timeout(Some(limit)).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return start.elapsed() <= limit,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Runs a command with a time limit; (status ok, stdout, stderr). The child
/// is killed by its PID if it overruns.
pub fn run(cmd: &mut Command, input: Option<&[u8]>, limit: Duration) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.map(<[u8]>::to_vec);
    let writer = std::thread::spawn(move || {
        if let Some(input) = input {
            let _ = stdin.write_all(&input);
        }
    });
    // Drain both pipes while waiting, or a chatty child blocks on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} overran {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    let out = out_reader.join().unwrap();
    let err = err_reader.join().unwrap();
    (
        status.success(),
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// The venv's python3 if there is one on PATH.
pub fn python() -> String {
    std::env::var("SQUALL_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// A Python server (`python3 -c script`, the venv's if first on PATH) on a
/// free port: the child and the port, which the script prints first. The
/// caller kills the child (by its PID, `Child::kill`).
#[allow(dead_code)] // not every test that includes this file uses it
pub fn python_server(script: &str) -> (std::process::Child, u16) {
    use std::io::BufRead;
    let mut child = Command::new(python())
        .arg("-c")
        .arg(script)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the server's first line");
    let Ok(port) = line.trim().parse() else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the Python server printed {line:?}, not its port");
    };
    (child, port)
}
