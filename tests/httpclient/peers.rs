//! The servers squall's HTTP client is tested against: Python Tornado,
//! `python3 -m http.server`, and scripted raw TCP servers. Each is stopped
//! (killed by PID, or its thread told to end) when dropped, failed test or
//! not.

#![allow(dead_code)]
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// A small Tornado app: each route exercises one thing the client reads.
const TORNADO_APP: &str = r#"
import asyncio, sys
from tornado.web import Application, RequestHandler
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

class Hello(RequestHandler):
    def get(self):
        self.write("Hello, world")

class Method(RequestHandler):
    # Answers with the method and the body it got.
    def get(self):
        self.write("GET")
    def head(self):
        self.set_header("Content-Length", "3")
    def post(self):
        self.write(b"POST " + self.request.body)
    def put(self):
        self.write(b"PUT " + self.request.body)

class Echo(RequestHandler):
    def post(self):
        self.set_header("X-Length", str(len(self.request.body)))
        self.set_header("Content-Type", self.request.headers.get("Content-Type", "none"))
        self.write(self.request.body)

class Chunked(RequestHandler):
    async def get(self, n, size):
        for i in range(int(n)):
            self.write(("%d:" % i).encode() + b"c" * int(size) + b";")
            await self.flush()

class Redirect(RequestHandler):
    def get(self, code, hops):
        hops = int(hops)
        target = "/method" if hops == 0 else "/redirect/%s/%d" % (code, hops - 1)
        self.redirect(target, status=int(code))
    post = get
    put = get

class Status(RequestHandler):
    def get(self, code):
        self.set_status(int(code))
        if int(code) not in (204, 304):
            self.write("status " + code)

class Large(RequestHandler):
    def get(self, n):
        self.write(b"x" * int(n))

class Sleep(RequestHandler):
    async def get(self, secs):
        await asyncio.sleep(float(secs))
        self.write("slept")

class Peer(RequestHandler):
    # The client's port as the server sees it: one per connection.
    def get(self):
        self.write(str(self.request.connection.stream.socket.getpeername()[1]))

async def main():
    app = Application([
        (r"/hello", Hello), (r"/method", Method), (r"/echo", Echo),
        (r"/chunked/(\d+)/(\d+)", Chunked), (r"/redirect/(\d+)/(\d+)", Redirect),
        (r"/status/(\d+)", Status), (r"/large/(\d+)", Large),
        (r"/sleep/([\d.]+)", Sleep), (r"/peer", Peer),
    ])
    server = HTTPServer(app, max_body_size=64 << 20)
    sockets = bind_sockets(0, "127.0.0.1")
    server.add_sockets(sockets)
    print(sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"#;

/// A child process serving HTTP on 127.0.0.1, killed when dropped.
pub struct PyServer {
    pub port: u16,
    child: Child,
}

impl PyServer {
    /// The Tornado app above, on a free port.
    pub fn tornado() -> PyServer {
        let child = Command::new("python3")
            .args(["-u", "-c", TORNADO_APP])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run python3 (.ci/run puts a venv with Tornado on PATH)");
        PyServer::wait_for_port(child, |line| line.trim().parse().ok())
    }

    /// `python3 -m http.server` (HTTP/1.0) serving `dir`.
    pub fn http_server(dir: &std::path::Path) -> PyServer {
        let child = Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "0",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run python3");
        // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
        PyServer::wait_for_port(child, |line| {
            line.split(" port ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
    }

    fn wait_for_port(mut child: Child, port_of: fn(&str) -> Option<u16>) -> PyServer {
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
        let mut server = PyServer { port: 0, child };
        server.port = port_of(&line)
            .unwrap_or_else(|| panic!("the Python server did not start (said {line:?})"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(server.addr()).is_err() {
            assert!(
                Instant::now() < deadline,
                "the Python server does not accept"
            );
            thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scripted TCP server on a thread: connection `i` is handed to
/// `script(i, stream)` on a thread of its own. Stops accepting when dropped.
pub struct RawServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepter: Option<thread::JoinHandle<()>>,
}

impl RawServer {
    pub fn start<F>(script: F) -> RawServer
    where
        F: Fn(usize, TcpStream) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let script = Arc::new(script);
        let s = stop.clone();
        let accepter = thread::spawn(move || {
            let mut i = 0;
            let deadline = Instant::now() + Duration::from_secs(30);
            while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((conn, _)) => {
                        conn.set_nonblocking(false).expect("blocking");
                        conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
                        let script = script.clone();
                        let n = i;
                        thread::spawn(move || script(n, conn));
                        i += 1;
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        RawServer {
            addr,
            stop,
            accepter: Some(accepter),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accepter.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request (head, and a Content-Length body) from `conn`; `None`
/// if the client closed first.
pub fn read_request(conn: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    conn.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// Writes `reply`, ignoring a client that went away.
pub fn reply(conn: &mut TcpStream, reply: &[u8]) {
    let _ = conn.write_all(reply);
    let _ = conn.flush();
}
