//! Blocking helpers for the self-test, the load client and the tests: real
//! memcached processes on free loopback ports (killed by PID when dropped),
//! and a small blocking text-protocol client.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Whether `memcached` can be run.
pub fn memcached_available() -> bool {
    Command::new("memcached")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A free loopback port (free when asked; a race is possible but rare).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A memcached process on 127.0.0.1, killed (by PID) when dropped.
pub struct Memcached {
    /// Its port.
    pub port: u16,
    child: Option<Child>,
}

impl Memcached {
    /// Starts one on a free port.
    pub fn start() -> io::Result<Memcached> {
        // A port taken between our probe and memcached's bind: try another.
        let mut last = None;
        for _ in 0..5 {
            match Memcached::start_on(free_port()?) {
                Ok(m) => return Ok(m),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("cannot start memcached")))
    }

    /// Starts one on `port` (64 MB, TCP only), and waits until it accepts.
    pub fn start_on(port: u16) -> io::Result<Memcached> {
        let child = Command::new("memcached")
            .args([
                "-l",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "0",
                "-m",
                "64",
            ])
            // memcached refuses to run as root without `-u` (CI runs as
            // root); for anyone else the option is ignored.
            .args(["-u", "root"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut m = Memcached {
            port,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if TcpStream::connect(m.addr()).is_ok() {
                return Ok(m);
            }
            if let Some(status) = m.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(io::Error::other(format!(
                    "memcached on {port} exited: {status}"
                )));
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "memcached on {port} never accepted"
                )));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Its process id (`None` once killed).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills it (SIGKILL, by PID) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a `get` answered.
pub type Values = Vec<(String, u32, Vec<u8>, Option<u64>)>;

/// A blocking memcached text-protocol client (for tests: every read has a
/// deadline).
pub struct TextClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl TextClient {
    /// Connects, with a 10-second read timeout.
    pub fn connect(addr: SocketAddr) -> io::Result<TextClient> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(TextClient {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// A second handle on the socket, for writing from another thread.
    pub fn writer(&self) -> io::Result<TcpStream> {
        self.writer.try_clone()
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// Reads one line, without its `\r\n`.
    pub fn line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line)?;
        if line.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        while line.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
            line.pop();
        }
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    /// Sends a one-line command and reads the one-line answer.
    pub fn cmd(&mut self, command: &str) -> io::Result<String> {
        self.send(format!("{command}\r\n").as_bytes())?;
        self.line()
    }

    /// `set KEY 0 0 LEN` with `data`; the answer line.
    pub fn set(&mut self, key: &str, data: &[u8]) -> io::Result<String> {
        let mut req = format!("set {key} 0 0 {}\r\n", data.len()).into_bytes();
        req.extend_from_slice(data);
        req.extend_from_slice(b"\r\n");
        self.send(&req)?;
        self.line()
    }

    /// `get KEY...`: the values, or the error line.
    pub fn get(&mut self, keys: &[&str]) -> io::Result<Result<Values, String>> {
        self.send(format!("get {}\r\n", keys.join(" ")).as_bytes())?;
        self.read_values()
    }

    /// Reads a `get` answer: `VALUE` blocks up to `END`, or an error line.
    pub fn read_values(&mut self) -> io::Result<Result<Values, String>> {
        let mut values = Vec::new();
        let answer = self.for_each_value(|key, flags, data, cas| {
            values.push((key.to_owned(), flags, data.to_vec(), cas));
        })?;
        Ok(answer.map(|_| values))
    }

    /// Reads a `get` answer one value at a time, each handed to `f` (key,
    /// flags, data, cas) and then dropped, so an answer of any size is read
    /// in the memory of one value: the number of values, or the error line.
    pub fn for_each_value(
        &mut self,
        mut f: impl FnMut(&str, u32, &[u8], Option<u64>),
    ) -> io::Result<Result<usize, String>> {
        let mut count = 0;
        let mut data = Vec::new();
        loop {
            let line = self.line()?;
            if line == "END" {
                return Ok(Ok(count));
            }
            let parts: Vec<&str> = line.split(' ').collect();
            if parts.len() < 4 || parts[0] != "VALUE" {
                return Ok(Err(line));
            }
            let bad = |_| io::Error::other(format!("bad VALUE line {line:?}"));
            let flags: u32 = parts[2].parse().map_err(bad)?;
            let len: usize = parts[3].parse().map_err(bad)?;
            let cas = parts.get(4).and_then(|c| c.parse().ok());
            data.resize(len + 2, 0);
            self.reader.read_exact(&mut data)?;
            if &data[len..] != b"\r\n" {
                return Err(io::Error::other(format!(
                    "no CRLF after the value of {line:?}"
                )));
            }
            f(parts[1], flags, &data[..len], cas);
            count += 1;
        }
    }

    /// Sets the read timeout of the connection.
    pub fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.writer.set_read_timeout(Some(timeout))
    }

    /// The one value of `key`, `Ok(None)` on a miss, or the error line.
    pub fn get_one(&mut self, key: &str) -> io::Result<Result<Option<Vec<u8>>, String>> {
        Ok(self
            .get(&[key])?
            .map(|mut v| v.pop().map(|(_, _, data, _)| data)))
    }

    /// `stats`, as a map.
    pub fn stats(&mut self) -> io::Result<HashMap<String, String>> {
        self.send(b"stats\r\n")?;
        let mut stats = HashMap::new();
        loop {
            let line = self.line()?;
            if line == "END" {
                return Ok(stats);
            }
            let mut parts = line.splitn(3, ' ');
            if parts.next() != Some("STAT") {
                return Err(io::Error::other(format!("bad stats line {line:?}")));
            }
            let name = parts.next().unwrap_or_default().to_owned();
            stats.insert(name, parts.next().unwrap_or_default().to_owned());
        }
    }
}
