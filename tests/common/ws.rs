//! A raw WebSocket peer on a blocking socket, byte by byte: it sends what a
//! test wants (any frame, masked or not, bad on purpose) and reads frames
//! back without judging them. The Autobahn cases are written with it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;
pub const CONT: u8 = 0x0;

pub struct RawWs {
    pub conn: TcpStream,
    buf: Vec<u8>,
    /// Mask what we send (a client does; a raw *server* does not).
    pub mask: bool,
}

/// A frame as read: (fin, rsv bits, opcode, payload).
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The close code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

impl RawWs {
    /// Connects and upgrades (`path`, extra header lines); panics unless 101.
    pub fn connect(addr: SocketAddr, path: &str) -> RawWs {
        let (ws, head) = RawWs::try_connect(addr, path, "");
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        ws
    }

    /// Sends an upgrade request with `extra` header lines; returns the
    /// peer and the answer's head.
    pub fn try_connect(addr: SocketAddr, path: &str, extra: &str) -> (RawWs, String) {
        let mut conn = TcpStream::connect(addr).expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        conn.set_nodelay(true).unwrap();
        write!(
            conn,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
        .unwrap();
        let mut ws = RawWs {
            conn,
            buf: Vec::new(),
            mask: true,
        };
        let head = ws.read_head();
        (ws, head)
    }

    /// Wraps an accepted socket as a raw *server* (sends unmasked).
    pub fn server(conn: TcpStream) -> RawWs {
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        RawWs {
            conn,
            buf: Vec::new(),
            mask: false,
        }
    }

    /// Reads up to the end of an HTTP head.
    pub fn read_head(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..i + 4).collect();
                return String::from_utf8_lossy(&head).into_owned();
            }
            if !self.fill() {
                return String::from_utf8_lossy(&self.buf).into_owned();
            }
        }
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        match self.conn.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The bytes of one frame: `b0` is FIN/RSV/opcode as given.
    pub fn frame_bytes(&self, b0: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![b0];
        let m = if self.mask { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => out.push(m | n as u8),
            n if n <= 0xFFFF => {
                out.push(m | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(m | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if self.mask {
            let key = [0x12, 0x34, 0x56, 0x78];
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            out.extend_from_slice(payload);
        }
        out
    }

    /// Sends one frame (FIN set unless `fin` is false).
    pub fn send(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let b0 = if fin { 0x80 } else { 0 } | opcode;
        let bytes = self.frame_bytes(b0, payload);
        self.send_raw(&bytes);
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        // The peer may have closed already (a refused frame): ignore.
        let _ = self.conn.write_all(bytes);
    }

    /// Sends a close frame with `code` and `reason`.
    pub fn send_close(&mut self, code: u16, reason: &[u8]) {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason);
        self.send(true, CLOSE, &payload);
    }

    /// The next frame, or `None` at the end of the stream.
    pub fn recv(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// Skips frames up to the close; returns its code (`Some(0)`: a close
    /// without a code; `None`: the connection ended without one).
    pub fn expect_close(&mut self) -> Option<u16> {
        while let Some(frame) = self.recv() {
            if frame.opcode == CLOSE {
                return Some(frame.close_code().unwrap_or(0));
            }
        }
        None
    }

    /// Whether the peer closes the TCP connection within `limit`.
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        self.conn.set_read_timeout(Some(limit)).unwrap();
        let mut chunk = [0u8; 4096];
        loop {
            match self.conn.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

fn parse(buf: &[u8]) -> Option<(Frame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let (b0, b1) = (buf[0], buf[1]);
    let (len, mut at) = match b1 & 0x7F {
        126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let key = if b1 & 0x80 != 0 {
        let k = buf.get(at..at + 4)?;
        at += 4;
        Some([k[0], k[1], k[2], k[3]])
    } else {
        None
    };
    let payload = buf.get(at..at + len)?;
    let payload = match key {
        Some(k) => payload
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ k[i % 4])
            .collect(),
        None => payload.to_vec(),
    };
    Some((
        Frame {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 0x7,
            opcode: b0 & 0x0F,
            payload,
        },
        at + len,
    ))
}
