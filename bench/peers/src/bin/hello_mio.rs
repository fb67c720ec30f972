//! Hello world over HTTP/1.1 from a hand-written mio loop: what one core can
//! do when nothing stands between epoll and the socket. The lower bound
//! `bench/http.sh` sets squall's HTTP server against.
//!
//! ```text
//! cargo run --release --bin hello_mio -- 8888
//! curl http://127.0.0.1:8888/
//! ```
//!
//! Still a real HTTP/1.1 server, only a small one: requests are parsed with
//! httparse (so malformed ones get 400, oversized heads 431), pipelined
//! requests are answered in order with one write per batch, keep-alive
//! follows the request's version and `Connection` header, `Content-Length`
//! bodies are skipped, chunked bodies get 501. The response is fixed (no
//! `Date`): `Hello, world` to every GET, its head to HEAD.
//!
//! How it stays cheap: one read buffer for the whole loop (a connection keeps
//! bytes only when a request is split between reads), edge-triggered events,
//! and tokio's trick of taking a short read as "drained" so the common case
//! costs one `recv` and one `send` per batch of requests.

use std::io::{self, Read, Write};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);
/// The loop's read buffer.
const READ_BUF: usize = 64 * 1024;
/// The longest request head kept waiting for its end.
const MAX_HEAD: usize = 64 * 1024;
/// Past this much unsent output, stop reading until the peer catches up.
const MAX_OUT: usize = 256 * 1024;
const MAX_HEADERS: usize = 64;

const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n";
const HEAD_KEEP_ALIVE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\n";
const HEAD_CLOSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\n";
const BODY: &[u8] = b"Hello, world";

fn error_response(status: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").into_bytes()
}

/// Where a connection's request stream stands between reads.
#[derive(Default)]
struct Parser {
    /// Request body bytes still to skip.
    body_left: u64,
    /// The last response has been queued: read nothing more.
    closing: bool,
    /// `feed` stopped at `MAX_OUT` with requests left in its input.
    stalled: bool,
}

impl Parser {
    /// Answers every complete request in `buf` into `out`; returns how many
    /// bytes it used (the rest is an unfinished request).
    fn feed(&mut self, buf: &[u8], out: &mut Vec<u8>) -> usize {
        let mut pos = 0;
        self.stalled = false;
        while !self.closing && out.len() < MAX_OUT {
            if self.body_left > 0 {
                let skip = self.body_left.min((buf.len() - pos) as u64);
                pos += skip as usize;
                self.body_left -= skip;
                if self.body_left > 0 {
                    return pos;
                }
            }
            if pos == buf.len() {
                return pos;
            }
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf[pos..]) {
                Ok(httparse::Status::Complete(len)) => {
                    pos += len;
                    self.answer(&req, out);
                }
                Ok(httparse::Status::Partial) => {
                    if buf.len() - pos > MAX_HEAD {
                        self.fail("431 Request Header Fields Too Large", out);
                    }
                    return pos;
                }
                Err(httparse::Error::TooManyHeaders) => {
                    self.fail("431 Request Header Fields Too Large", out)
                }
                Err(_) => self.fail("400 Bad Request", out),
            }
        }
        if self.closing {
            return buf.len();
        }
        self.stalled = pos < buf.len();
        pos
    }

    fn answer(&mut self, req: &httparse::Request, out: &mut Vec<u8>) {
        let http11 = req.version == Some(1);
        let mut keep_alive = http11;
        let mut asked_keep_alive = false;
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("connection") {
                for token in h.value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        keep_alive = false;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                        keep_alive = true;
                        asked_keep_alive = true;
                    }
                }
            } else if h.name.eq_ignore_ascii_case("content-length") {
                match std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.parse().ok())
                {
                    Some(n) => self.body_left = n,
                    None => return self.fail("400 Bad Request", out),
                }
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                return self.fail("501 Not Implemented", out);
            }
        }
        let head = match (keep_alive, asked_keep_alive) {
            (false, _) => HEAD_CLOSE,
            (true, true) => HEAD_KEEP_ALIVE,
            (true, false) => HEAD,
        };
        out.extend_from_slice(head);
        if req.method != Some("HEAD") {
            out.extend_from_slice(BODY);
        }
        self.closing = !keep_alive;
    }

    fn fail(&mut self, status: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(&error_response(status));
        self.closing = true;
    }
}

struct Conn {
    stream: TcpStream,
    parser: Parser,
    /// Bytes of an unfinished request, kept from earlier reads.
    partial: Vec<u8>,
    /// Responses not yet sent, from `sent` on.
    out: Vec<u8>,
    sent: usize,
}

impl Conn {
    /// Sends what it can; true once everything is sent.
    fn flush(&mut self) -> io::Result<bool> {
        while self.sent < self.out.len() {
            match self.stream.write(&self.out[self.sent..]) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.sent = 0;
        Ok(true)
    }

    /// Answers what arrived. Ok(false): the connection is done with.
    /// `read_closed`: the peer shut its side, so read to the end rather
    /// than trusting a short read.
    fn ready(&mut self, buf: &mut [u8], read_closed: bool) -> io::Result<bool> {
        loop {
            if !self.flush()? {
                // Blocked: the writable edge brings us back here.
                return Ok(true);
            }
            if self.parser.closing {
                return Ok(false);
            }
            if self.parser.stalled {
                // Requests left over when the output filled up.
                let used = self.parser.feed(&self.partial, &mut self.out);
                self.partial.drain(..used);
                continue;
            }
            let n = match self.stream.read(buf) {
                Ok(0) => return Ok(false),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if self.partial.is_empty() {
                let used = self.parser.feed(&buf[..n], &mut self.out);
                self.partial.extend_from_slice(&buf[used..n]);
            } else {
                self.partial.extend_from_slice(&buf[..n]);
                let used = self.parser.feed(&self.partial, &mut self.out);
                self.partial.drain(..used);
            }
            if n < buf.len() && !read_closed && self.out.len() < MAX_OUT {
                // A short read drained the socket: send, then wait for the
                // next readable edge.
                self.flush()?;
                return Ok(!self.parser.closing || self.sent < self.out.len());
            }
        }
    }
}

fn main() {
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p.parse().expect("usage: hello_mio [PORT]"),
        None => 8888,
    };
    let mut listener =
        TcpListener::bind(([127, 0, 0, 1], port).into()).expect("listening on 127.0.0.1");
    let mut poll = Poll::new().expect("epoll");
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .expect("listener registered");
    let mut events = Events::with_capacity(1024);
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut buf = vec![0u8; READ_BUF];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            panic!("epoll_wait: {e}");
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                loop {
                    let mut stream = match listener.accept() {
                        Ok((stream, _)) => stream,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            // EMFILE and the like: give up on this edge.
                            eprintln!("hello_mio: accept: {e}");
                            break;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let i = free.pop().unwrap_or_else(|| {
                        conns.push(None);
                        conns.len() - 1
                    });
                    poll.registry()
                        .register(
                            &mut stream,
                            Token(i),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .expect("connection registered");
                    conns[i] = Some(Conn {
                        stream,
                        parser: Parser::default(),
                        partial: Vec::new(),
                        out: Vec::new(),
                        sent: 0,
                    });
                }
                continue;
            }
            let i = event.token().0;
            let Some(conn) = conns[i].as_mut() else {
                continue;
            };
            let read_closed = event.is_read_closed() || event.is_error();
            if !matches!(conn.ready(&mut buf, read_closed), Ok(true)) {
                let mut conn = conns[i].take().expect("open");
                let _ = poll.registry().deregister(&mut conn.stream);
                free.push(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(input: &[u8]) -> (Vec<u8>, usize, Parser) {
        let mut p = Parser::default();
        let mut out = Vec::new();
        let used = p.feed(input, &mut out);
        (out, used, p)
    }

    #[test]
    fn pipelined_requests_answered_in_order() {
        let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let input = [&req[..]; 3].concat();
        let (out, used, p) = feed(&input);
        assert_eq!(used, input.len());
        assert_eq!(out, [HEAD, BODY].concat().repeat(3));
        assert!(!p.closing);
    }

    #[test]
    fn split_request_waits_for_the_rest() {
        let (out, used, _) = feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HT");
        assert_eq!(used, 27);
        assert_eq!(out, [HEAD, BODY].concat());
    }

    #[test]
    fn http10_closes_unless_asked() {
        let (out, _, p) = feed(b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n");
        assert_eq!(out, [HEAD_CLOSE, BODY].concat());
        assert!(p.closing);
        let (out, _, p) = feed(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(out, [HEAD_KEEP_ALIVE, BODY].concat());
        assert!(!p.closing);
    }

    #[test]
    fn body_skipped_and_head_has_no_body() {
        let input = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcHEAD / HTTP/1.1\r\n\r\n";
        let (out, used, _) = feed(input);
        assert_eq!(used, input.len());
        assert_eq!(out, [HEAD, BODY, HEAD].concat());
    }

    #[test]
    fn bad_and_oversized_requests_close() {
        let (out, _, p) = feed(b"GET / HTTP/1.1\r\nbad header\r\n\r\n");
        assert!(out.starts_with(b"HTTP/1.1 400"));
        assert!(p.closing);
        let big = [&b"GET / HTTP/1.1\r\nX: "[..], &[b'a'; MAX_HEAD + 1]].concat();
        let (out, _, p) = feed(&big);
        assert!(out.starts_with(b"HTTP/1.1 431"));
        assert!(p.closing);
    }

    #[test]
    fn output_limit_stalls_then_resumes() {
        let req = b"GET / HTTP/1.1\r\n\r\n";
        let n = MAX_OUT / (HEAD.len() + BODY.len()) + 10;
        let input = req.repeat(n);
        let mut p = Parser::default();
        let mut out = Vec::new();
        let used = p.feed(&input, &mut out);
        assert!(p.stalled && used < input.len());
        let mut answered = out.len();
        out.clear();
        let rest = p.feed(&input[used..], &mut out);
        answered += out.len();
        assert_eq!(used + rest, input.len());
        assert!(!p.stalled);
        assert_eq!(answered, n * (HEAD.len() + BODY.len()));
    }
}
