//! A blocking-style facade over [`IOStream`], for use inside a child.
//!
//! Each call starts the `IOStream` operation and [`wait`](super::wait)s for
//! it: the child reads like socket code, the loop never blocks.
//!
//! ```
//! use squall::greenlet::{self, Stream};
//! use squall::{netutil::BindOptions, IOLoop, IOStream, TCPServer};
//!
//! let io_loop = IOLoop::new()?;
//! let reply = io_loop.run_sync(|| {
//!     // The server's handler is straight-line code too.
//!     let server = TCPServer::new(|stream: IOStream, _| greenlet::spawn(move || {
//!         let stream = Stream::from(stream);
//!         let line = stream.read_until_max_bytes(b"\n", 1024)?;
//!         stream.write(line)?;
//!         stream.close();
//!         Ok(())
//!     }));
//!     server.listen_with(0, BindOptions::new().address("127.0.0.1")).expect("listening");
//!     let addr = server.local_addrs()[0];
//!     greenlet::spawn(move || {
//!         let stream = Stream::connect(addr, Some(std::time::Duration::from_secs(5)))?;
//!         stream.write(&b"hello\n"[..])?;
//!         let reply = stream.read_until_close()?;
//!         server.stop();
//!         Ok(reply)
//!     })
//! }, None)?;
//! assert_eq!(reply, b"hello\n");
//! # Ok::<(), squall::Error>(())
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use std::cell::Cell;
use std::rc::Rc;

use super::{ensure_in_coroutine, wait, yield_point};
use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::gen::{with_timeout, YieldFuture};
use crate::ioloop::IOLoop;
use crate::iostream::IOStream;

/// An [`IOStream`] whose operations return values: each one waits inside the
/// running child. Outside a child every call fails with
/// [`ErrorKind::NotInCoroutine`](crate::ErrorKind::NotInCoroutine) before
/// touching the stream. Cheap to clone (the stream is shared).
///
/// Like a socket's `settimeout`, [`set_timeout`](Stream::set_timeout) bounds
/// each later read and write: one that takes longer fails with
/// [`ErrorKind::Timeout`] and closes the stream (the operation cannot be
/// taken back from the `IOStream`, so the stream is no longer usable).
#[derive(Clone)]
pub struct Stream {
    stream: IOStream,
    timeout: Rc<Cell<Option<Duration>>>,
}

impl Stream {
    /// Connects to `addr` on the current loop. With a `timeout`, a timeout
    /// is added on the loop and removed as soon as the connect completes;
    /// if it fires first, the socket is closed and the error is of kind
    /// [`Timeout`](crate::ErrorKind::Timeout).
    ///
    /// # Errors
    /// The connect's error (refused, timed out...); `NotInCoroutine`.
    pub fn connect(addr: SocketAddr, timeout: Option<Duration>) -> Result<Stream, Error> {
        ensure_in_coroutine()?;
        let stream = wait(IOStream::connect_with(addr, timeout, &IOLoop::current()))?;
        Ok(Stream::from(stream))
    }

    /// Connects to `host:port` by name ([`TCPClient`](crate::tcpclient::TCPClient):
    /// resolved off the loop, Happy Eyeballs), with an optional deadline for
    /// the whole connect.
    ///
    /// # Errors
    /// The connect's error (unresolvable, refused, timed out...); `NotInCoroutine`.
    pub fn connect_host(host: &str, port: u16, timeout: Option<Duration>) -> Result<Stream, Error> {
        ensure_in_coroutine()?;
        let mut options = crate::tcpclient::ConnectOptions::new();
        options.timeout = timeout;
        let stream = wait(crate::tcpclient::TCPClient::new().connect_with(host, port, options))?;
        Ok(Stream::from(stream))
    }

    /// STARTTLS from inside the child (a MySQL or Postgres driver switches
    /// to TLS after its first packets): [`IOStream::start_tls`], waited for.
    /// Returns the TLS stream, which replaces this one (with its timeout).
    ///
    /// # Errors
    /// The handshake's error (kind `Tls` for a refused certificate);
    /// `NotInCoroutine`.
    #[cfg(feature = "tls")]
    pub fn start_tls(
        &self,
        ssl_options: impl Into<crate::tls::SslOptions>,
    ) -> Result<Stream, Error> {
        self.start_tls_as(ssl_options.into(), None)
    }

    /// [`start_tls`](Stream::start_tls) with Tornado's `server_hostname`
    /// ([`IOStream::start_tls_server_hostname`]).
    ///
    /// # Errors
    /// As [`start_tls`](Stream::start_tls).
    #[cfg(feature = "tls")]
    pub fn start_tls_server_hostname(
        &self,
        ssl_options: impl Into<crate::tls::SslOptions>,
        server_hostname: &str,
    ) -> Result<Stream, Error> {
        self.start_tls_as(ssl_options.into(), Some(server_hostname))
    }

    #[cfg(feature = "tls")]
    fn start_tls_as(
        &self,
        options: crate::tls::SslOptions,
        server_hostname: Option<&str>,
    ) -> Result<Stream, Error> {
        ensure_in_coroutine()?;
        let tls = self.stream.upgrade_tls(options, server_hostname)?;
        // The stream's timeout bounds the handshake, and closes the TLS
        // stream (the old one is spent) if it runs out.
        if let Some(timeout) = self.timeout.get() {
            tls.set_handshake_timeout(timeout);
        }
        let stream = wait(tls.wait_for_handshake())?;
        Ok(Stream {
            stream,
            timeout: Rc::new(Cell::new(self.timeout.get())),
        })
    }

    /// Reads up to and including `delimiter` ([`IOStream::read_until`]).
    ///
    /// # Errors
    /// The read's error (stream closed...); `NotInCoroutine`.
    pub fn read_until(&self, delimiter: &[u8]) -> Result<Vec<u8>, Error> {
        ensure_in_coroutine()?;
        self.wait(self.stream.read_until(delimiter))
    }

    /// Reads up to and including `delimiter`, at most `max_bytes`
    /// ([`IOStream::read_until_max_bytes`]).
    ///
    /// # Errors
    /// The read's error (stream closed, `max_bytes` exceeded...); `NotInCoroutine`.
    pub fn read_until_max_bytes(
        &self,
        delimiter: &[u8],
        max_bytes: usize,
    ) -> Result<Vec<u8>, Error> {
        ensure_in_coroutine()?;
        self.wait(self.stream.read_until_max_bytes(delimiter, max_bytes))
    }

    /// Reads exactly `n` bytes.
    ///
    /// # Errors
    /// The read's error; `NotInCoroutine`.
    pub fn read_bytes(&self, n: usize) -> Result<Vec<u8>, Error> {
        ensure_in_coroutine()?;
        self.wait(self.stream.read_bytes(n))
    }

    /// Reads what is there, at least one byte and at most `n` (a socket's `recv`).
    ///
    /// # Errors
    /// The read's error; `NotInCoroutine`.
    pub fn read_some(&self, n: usize) -> Result<Vec<u8>, Error> {
        ensure_in_coroutine()?;
        self.wait(self.stream.read_bytes_partial(n))
    }

    /// Reads what is there into `buf` (at least one byte, at most
    /// `buf.len()`), giving it back with how many bytes at its start are new
    /// ([`IOStream::read_into_partial`]): from the socket straight into the
    /// caller's buffer, so a driver that passes the same vector each time
    /// allocates and copies nothing per read.
    ///
    /// # Errors
    /// The read's error (the buffer is then dropped); `NotInCoroutine`.
    pub fn read_into_partial(&self, buf: Vec<u8>) -> Result<(Vec<u8>, usize), Error> {
        ensure_in_coroutine()?;
        self.wait(self.stream.read_into_partial(buf))
    }

    /// Reads everything until the peer closes.
    ///
    /// # Errors
    /// The read's error; `NotInCoroutine`.
    pub fn read_until_close(&self) -> Result<Vec<u8>, Error> {
        ensure_in_coroutine()?;
        self.wait(self.stream.read_until_close())
    }

    /// Writes all of `data`, returning once the kernel has it (at once when
    /// the socket takes it all).
    ///
    /// # Errors
    /// The write's error (stream closed, buffer full...); `NotInCoroutine`.
    pub fn write(&self, data: impl AsRef<[u8]> + Into<Vec<u8>>) -> Result<(), Error> {
        ensure_in_coroutine()?;
        self.wait(self.stream.write(data))
    }

    /// Bounds every later read and write to `timeout` (`None`, the default:
    /// no bound). Shared by the clones of this `Stream`.
    pub fn set_timeout(&self, timeout: Option<Duration>) {
        self.timeout.set(timeout);
    }

    /// The bound set by [`set_timeout`](Stream::set_timeout).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout.get()
    }

    fn wait<T: 'static>(&self, op: Future<T>) -> Result<T, Error> {
        let Some(timeout) = self.timeout.get() else {
            return wait(op);
        };
        if op.done() {
            return op.take_result();
        }
        match yield_point(with_timeout(timeout, YieldFuture::new(op))) {
            Ok(value) => value.downcast(),
            Err(err) => {
                if err.kind() == ErrorKind::Timeout {
                    // The operation is still pending in the IOStream; closing
                    // fails it (quietly: its late result goes nowhere).
                    self.stream.close();
                }
                Err(err)
            }
        }
    }

    /// Closes the stream (works anywhere).
    pub fn close(&self) {
        self.stream.close();
    }

    /// Whether the stream is closed.
    pub fn closed(&self) -> bool {
        self.stream.closed()
    }

    /// The `IOStream` underneath, for everything else.
    pub fn io_stream(&self) -> &IOStream {
        &self.stream
    }

    /// The `IOStream` underneath.
    pub fn into_inner(self) -> IOStream {
        self.stream
    }
}

impl From<IOStream> for Stream {
    fn from(stream: IOStream) -> Stream {
        Stream {
            stream,
            timeout: Rc::new(Cell::new(None)),
        }
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("fd", &self.stream.fd())
            .field("closed", &self.stream.closed())
            .finish()
    }
}
