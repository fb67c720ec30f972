//! The sockets a stream runs over, and conversions into them.

use std::io::{self, Read, Write};
use std::os::unix::io::{AsRawFd, RawFd};

/// The sockets an [`IOStream`](super::IOStream) can run over.
#[derive(Debug)]
pub enum Socket {
    /// A TCP connection.
    Tcp(mio::net::TcpStream),
    /// A Unix-domain stream connection.
    Unix(mio::net::UnixStream),
}

impl Socket {
    pub(super) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => (&*s).read(buf),
            Socket::Unix(s) => (&*s).read(buf),
        }
    }
    pub(super) fn write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => (&*s).write(buf),
            Socket::Unix(s) => (&*s).write(buf),
        }
    }
    pub(super) fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Socket::Tcp(s) => s.take_error(),
            Socket::Unix(s) => s.take_error(),
        }
    }
    pub(super) fn is_connected(&self) -> io::Result<bool> {
        let peer = match self {
            Socket::Tcp(s) => s.peer_addr().map(drop),
            Socket::Unix(s) => s.peer_addr().map(drop),
        };
        match peer {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Socket::Tcp(s) => s.as_raw_fd(),
            Socket::Unix(s) => s.as_raw_fd(),
        }
    }
}

impl From<mio::net::TcpStream> for Socket {
    fn from(s: mio::net::TcpStream) -> Socket {
        Socket::Tcp(s)
    }
}
impl From<mio::net::UnixStream> for Socket {
    fn from(s: mio::net::UnixStream) -> Socket {
        Socket::Unix(s)
    }
}

/// Converts a blocking std socket into a [`Socket`], making it non-blocking.
pub trait IntoSocket {
    /// The conversion.
    fn into_socket(self) -> io::Result<Socket>;
}
impl IntoSocket for Socket {
    fn into_socket(self) -> io::Result<Socket> {
        Ok(self)
    }
}
impl IntoSocket for mio::net::TcpStream {
    fn into_socket(self) -> io::Result<Socket> {
        Ok(Socket::Tcp(self))
    }
}
impl IntoSocket for mio::net::UnixStream {
    fn into_socket(self) -> io::Result<Socket> {
        Ok(Socket::Unix(self))
    }
}
impl IntoSocket for std::net::TcpStream {
    fn into_socket(self) -> io::Result<Socket> {
        self.set_nonblocking(true)?;
        Ok(Socket::Tcp(mio::net::TcpStream::from_std(self)))
    }
}
impl IntoSocket for std::os::unix::net::UnixStream {
    fn into_socket(self) -> io::Result<Socket> {
        self.set_nonblocking(true)?;
        Ok(Socket::Unix(mio::net::UnixStream::from_std(self)))
    }
}
