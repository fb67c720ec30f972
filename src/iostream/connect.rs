//! Connecting: a TCP connect that does not block, with an optional deadline
//! (Tornado's `IOStream.connect`), or from a given local address
//! (`TCPClient`'s `source_ip` / `source_port`); and its outcome, which the
//! loop's next event on the socket brings.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use super::{IOStream, Socket};
use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::ioloop::IOLoop;

impl IOStream {
    /// Connects to `addr` on the current loop. Errors such as a refused
    /// connection arrive as the future's error.
    pub fn connect(addr: SocketAddr) -> Future<IOStream> {
        IOStream::connect_with(addr, None, &IOLoop::current())
    }

    /// Connects with a deadline: past `timeout`, the future fails with
    /// [`ErrorKind::Timeout`] and the socket is closed.
    pub fn connect_timeout(addr: SocketAddr, timeout: Duration) -> Future<IOStream> {
        IOStream::connect_with(addr, Some(timeout), &IOLoop::current())
    }

    /// Connects on `io_loop`, with an optional timeout.
    pub fn connect_with(
        addr: SocketAddr,
        timeout: Option<Duration>,
        io_loop: &IOLoop,
    ) -> Future<IOStream> {
        match IOStream::connecting(addr, timeout, io_loop) {
            Ok((_, future)) => future,
            Err(err) => Future::failed(err),
        }
    }

    /// Starts connecting and returns the stream at once, with the future of
    /// the connect: Tornado's `IOStream(socket)` then `stream.connect(addr)`.
    /// Holding the stream lets the caller abort the connect by closing it
    /// (the future then fails with [`ErrorKind::StreamClosed`] and the
    /// connect timeout is removed). Writes made meanwhile go out once
    /// connected.
    ///
    /// # Errors
    /// If the socket cannot be created or registered with the loop.
    pub fn connecting(
        addr: SocketAddr,
        timeout: Option<Duration>,
        io_loop: &IOLoop,
    ) -> Result<(IOStream, Future<IOStream>), Error> {
        let future = Future::new();
        let socket = mio::net::TcpStream::connect(addr).map_err(|err| connect_error(addr, err))?;
        let stream = IOStream::open(Socket::Tcp(socket), io_loop, Some(future.clone()))?;
        if let Some(timeout) = timeout {
            let weak = Rc::downgrade(&stream.inner);
            let handle = io_loop.call_later(timeout, move || {
                if let Some(inner) = weak.upgrade() {
                    let stream = IOStream { inner };
                    stream.inner.state.borrow_mut().connect_timeout = None;
                    stream.close_with(Some(Error::new(
                        ErrorKind::Timeout,
                        format!("connect to {addr} timed out after {timeout:?}"),
                    )));
                }
            });
            stream.inner.state.borrow_mut().connect_timeout = Some(handle);
        }
        Ok((stream, future))
    }

    /// [`connecting`](IOStream::connecting) from a given local address
    /// (`TCPClient`'s `source_ip` / `source_port`), with no deadline of its
    /// own.
    pub(crate) fn connecting_from(
        addr: SocketAddr,
        source: Option<SocketAddr>,
        io_loop: &IOLoop,
    ) -> Result<(IOStream, Future<IOStream>), Error> {
        let Some(source) = source else {
            return IOStream::connecting(addr, None, io_loop);
        };
        let bound = || -> io::Result<mio::net::TcpStream> {
            use socket2::{Domain, Protocol, Socket as RawSocket, Type};
            let socket =
                RawSocket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            socket.set_nonblocking(true)?;
            socket.set_cloexec(true)?;
            socket.bind(&source.into())?;
            match socket.connect(&addr.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) => return Err(e),
            }
            Ok(mio::net::TcpStream::from_std(socket.into()))
        };
        let socket = bound().map_err(|err| connect_error(addr, err))?;
        let future = Future::new();
        let stream = IOStream::open(Socket::Tcp(socket), io_loop, Some(future.clone()))?;
        Ok((stream, future))
    }

    /// An event while connecting: the connect's outcome, if it has one
    /// (resolves the connect's future, or closes the stream with its error).
    pub(super) fn finish_connect(&self) {
        let connected = {
            let socket = self.inner.socket.borrow();
            let Some(socket) = socket.as_ref() else {
                return;
            };
            match socket.take_error() {
                Ok(Some(err)) | Err(err) => Err(err),
                Ok(None) => socket.is_connected(),
            }
        };
        match connected {
            Ok(false) => {} // still in progress: wait for the next event
            Ok(true) => {
                let (future, timeout) = {
                    let mut st = self.inner.state.borrow_mut();
                    (st.connecting.take(), st.connect_timeout.take())
                };
                if let Some(timeout) = timeout {
                    self.inner.io_loop.remove_timeout(timeout);
                }
                if let Some(future) = future {
                    future.try_set_result(self.clone());
                }
                // Writes queued while connecting can go now.
                self.flush();
            }
            Err(err) => self.close_with(Some(err.into())),
        }
    }
}

fn connect_error(addr: SocketAddr, err: io::Error) -> Error {
    Error::with_source(ErrorKind::Io, format!("connect to {addr}: {err}"), err)
}
