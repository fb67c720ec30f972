//! TLS under a stream: a [`Socket`] whose bytes go through a rustls
//! connection. The stream above is unchanged: it reads plaintext and writes
//! plaintext, and this layer turns a socket read into "read ciphertext,
//! decrypt, answer the handshake" and a socket write into "encrypt, send".
//!
//! Three things make TLS differ from a plain socket, and the stream asks
//! about each:
//! - **Ciphertext left over.** A write takes plaintext into rustls and sends
//!   what the socket takes; the rest waits inside rustls
//!   ([`pending_output`](Socket::pending_output)). It goes out first on the
//!   next write, or on a write edge ([`flush_output`](Socket::flush_output)),
//!   and a stream that drains before closing waits for it too. So at most one
//!   write's worth (rustls's 64 KiB buffer) ever sits here, never a queue.
//! - **The handshake.** Until it is done, a write takes nothing (the stream
//!   queues it) and a read answers the peer's handshake messages; the stream
//!   watches [`handshaking`](Socket::handshaking) to resolve
//!   `wait_for_handshake` and send what it queued.
//! - **The end.** A peer that ends with `close_notify` ends the stream as a
//!   FIN does. One that closes the TCP connection without it (a truncation:
//!   an attacker can cut a response short this way) ends it too, as
//!   Tornado's `suppress_ragged_eofs` does, but it is remembered
//!   ([`truncated`](Socket::truncated)): `read_until_close`, whose answer the
//!   end delimits, fails with [`ErrorKind::Tls`](crate::ErrorKind::Tls)
//!   instead of returning a possibly cut body.
//!
//! A handshake failure or a corrupt record is an `io::Error` whose inner error
//! is the `rustls::Error`; [`crate::Error`]'s conversion gives it the kind
//! `Tls`, and the alert rustls prepared is sent before the socket closes.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};

use super::Socket;

/// A socket wrapped in a TLS connection (client or server side).
pub struct TlsSocket {
    socket: Socket,
    conn: RefCell<rustls::Connection>,
    truncated: Cell<bool>,
    /// Plaintext bytes a write took whose ciphertext has not all gone out:
    /// the stream's write futures for them wait (see `unsent_plaintext`).
    unsent: Cell<usize>,
}

impl std::fmt::Debug for TlsSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSocket")
            .field("socket", &self.socket)
            .field("handshaking", &self.handshaking())
            .finish()
    }
}

/// The plain socket as `io::Read`/`io::Write`, for rustls's `read_tls` and
/// `write_tls`.
struct Plain<'a>(&'a Socket);

impl Read for Plain<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Plain<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An `io::Error` carrying a TLS failure (the kind `Tls` once converted).
pub(crate) fn tls_io_error(err: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err)
}

impl TlsSocket {
    pub(super) fn new(socket: Socket, conn: rustls::Connection) -> TlsSocket {
        TlsSocket {
            socket,
            conn: RefCell::new(conn),
            truncated: Cell::new(false),
            unsent: Cell::new(0),
        }
    }

    pub(super) fn plain(&self) -> &Socket {
        &self.socket
    }

    /// Reads plaintext into `buf`: what rustls has decrypted, then what the
    /// socket brings, until `buf` is full or the socket would block. A
    /// short read therefore means the socket is drained, as on a plain
    /// socket (the stream relies on it to skip the next `recv`).
    pub(super) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut conn = self.conn.borrow_mut();
        let mut filled = 0;
        loop {
            match conn.reader().read(&mut buf[filled..]) {
                // `close_notify` came: the clean end.
                Ok(0) => return Ok(filled),
                Ok(n) => {
                    filled += n;
                    if filled == buf.len() {
                        return Ok(filled);
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    // The TCP end without `close_notify`.
                    if conn.is_handshaking() {
                        return Err(tls_io_error(rustls::Error::General(
                            "the peer closed the connection during the TLS handshake".into(),
                        )));
                    }
                    self.truncated.set(true);
                    return Ok(filled);
                }
                Err(e) => return Err(e),
            }
            match conn.read_tls(&mut Plain(&self.socket)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return if filled > 0 { Ok(filled) } else { Err(e) };
                }
                Err(e) => return Err(e),
            }
            if let Err(err) = conn.process_new_packets() {
                // rustls queued an alert saying why: send it if it fits.
                let _ = write_out(&mut conn, &self.socket);
                return Err(tls_io_error(err));
            }
            // Handshake messages (or a key update) to answer with; what
            // the socket does not take now goes on the next write edge.
            write_out(&mut conn, &self.socket)?;
        }
    }

    /// Encrypts a first part of `buf` and sends what the socket takes.
    /// Takes nothing (`WouldBlock`) while the handshake runs or while
    /// ciphertext from an earlier write still waits: the stream queues the
    /// data and retries on the next write edge or at the handshake's end.
    pub(super) fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut conn = self.conn.borrow_mut();
        if conn.is_handshaking() || !self.send(&mut conn)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = conn.writer().write(buf)?;
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if !self.send(&mut conn)? {
            self.unsent.set(n);
        }
        Ok(n)
    }

    /// Sends waiting ciphertext. `Ok(true)`: none is left.
    pub(super) fn flush_output(&self) -> io::Result<bool> {
        self.send(&mut self.conn.borrow_mut())
    }

    /// `write_out`, and once nothing waits, the last write's plaintext is
    /// out too.
    fn send(&self, conn: &mut rustls::Connection) -> io::Result<bool> {
        let all = write_out(conn, &self.socket)?;
        if all {
            self.unsent.set(0);
        }
        Ok(all)
    }

    /// How many of the plaintext bytes written so far are not out yet (as
    /// ciphertext still in rustls): at most one write's, since a write
    /// takes nothing while ciphertext waits.
    pub(super) fn unsent_plaintext(&self) -> usize {
        self.unsent.get()
    }

    pub(super) fn pending_output(&self) -> bool {
        self.conn.borrow().wants_write()
    }

    pub(super) fn handshaking(&self) -> bool {
        self.conn.borrow().is_handshaking()
    }

    pub(super) fn truncated(&self) -> bool {
        self.truncated.get()
    }

    /// Queues `close_notify` and sends it if the socket takes it now (a
    /// closing stream waits for nothing).
    pub(super) fn close_notify(&self) {
        let mut conn = self.conn.borrow_mut();
        conn.send_close_notify();
        let _ = write_out(&mut conn, &self.socket);
    }

    /// The protocol ALPN chose, if any.
    pub(super) fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.conn.borrow().alpn_protocol().map(<[u8]>::to_vec)
    }

    /// The name the client asked for (SNI), on a server.
    pub(super) fn server_name(&self) -> Option<String> {
        match &*self.conn.borrow() {
            rustls::Connection::Server(s) => s.server_name().map(str::to_string),
            rustls::Connection::Client(_) => None,
        }
    }

    /// The peer's certificate chain, DER-encoded, leaf first.
    pub(super) fn peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        self.conn
            .borrow()
            .peer_certificates()
            .map(|chain| chain.iter().map(|c| c.as_ref().to_vec()).collect())
    }
}

/// Writes rustls's waiting ciphertext until the socket would block.
/// `Ok(true)`: all of it went out.
fn write_out(conn: &mut rustls::Connection, socket: &Socket) -> io::Result<bool> {
    while conn.wants_write() {
        match conn.write_tls(&mut Plain(socket)) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
