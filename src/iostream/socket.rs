//! The sockets a stream runs over, and conversions into them; pipes too.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{ChildStderr, ChildStdin, ChildStdout};

use crate::error::Error;
use crate::ioloop::IOLoop;

/// The sockets an [`IOStream`](super::IOStream) can run over.
#[derive(Debug)]
pub enum Socket {
    /// A TCP connection.
    Tcp(mio::net::TcpStream),
    /// A Unix-domain stream connection.
    Unix(mio::net::UnixStream),
    /// One end of a pipe (a [`PipeIOStream`]).
    Pipe(Pipe),
    /// A socket under TLS (an [`SSLIOStream`](super::SSLIOStream)).
    #[cfg(feature = "tls")]
    Tls(Box<super::tls::TlsSocket>),
}

impl Socket {
    // Inlined into the read path, always: left to the compiler, whether it
    // is depends on how the crate's code is split up (with feature `gzip`,
    // and again with the web layer's features, it was not, and a request
    // cost 20 more instructions).
    #[inline(always)]
    pub(super) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => (&*s).read(buf),
            Socket::Unix(s) => (&*s).read(buf),
            Socket::Pipe(p) => p.read(buf),
            #[cfg(feature = "tls")]
            Socket::Tls(t) => t.read(buf),
        }
    }
    /// Whether written data can wait below the stream (TLS ciphertext):
    /// never on a plain socket, whose `pending_output` is always false.
    #[inline]
    pub(super) fn may_hold_output(&self) -> bool {
        match self {
            #[cfg(feature = "tls")]
            Socket::Tls(_) => true,
            _ => false,
        }
    }
    pub(super) fn write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => (&*s).write(buf),
            Socket::Unix(s) => (&*s).write(buf),
            Socket::Pipe(p) => (&p.file).write(buf),
            #[cfg(feature = "tls")]
            Socket::Tls(t) => t.write(buf),
        }
    }
    /// One `writev` of several buffers (TLS sends a handshake flight's
    /// records in one system call this way).
    #[cfg(feature = "tls")]
    pub(super) fn write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => (&*s).write_vectored(bufs),
            Socket::Unix(s) => (&*s).write_vectored(bufs),
            Socket::Pipe(p) => (&p.file).write_vectored(bufs),
            Socket::Tls(t) => {
                let first = bufs
                    .iter()
                    .find(|b| !b.is_empty())
                    .map_or(&[][..], |b| &b[..]);
                t.write(first)
            }
        }
    }
    pub(super) fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self.plain() {
            Socket::Tcp(s) => s.take_error(),
            Socket::Unix(s) => s.take_error(),
            _ => Ok(None),
        }
    }
    pub(super) fn is_connected(&self) -> io::Result<bool> {
        let peer = match self.plain() {
            Socket::Tcp(s) => s.peer_addr().map(drop),
            Socket::Unix(s) => s.peer_addr().map(drop),
            _ => Ok(()),
        };
        match peer {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The socket under any TLS layer.
    #[inline]
    pub(super) fn plain(&self) -> &Socket {
        match self {
            #[cfg(feature = "tls")]
            Socket::Tls(t) => t.plain(),
            _ => self,
        }
    }

    /// Whether written data still waits below the stream (TLS ciphertext
    /// the socket did not take yet; see `tls.rs`). Always false on a plain
    /// socket.
    #[inline]
    pub(super) fn pending_output(&self) -> bool {
        match self {
            #[cfg(feature = "tls")]
            Socket::Tls(t) => t.pending_output(),
            _ => false,
        }
    }

    /// Plaintext bytes written that are not out yet (TLS: the last write's,
    /// while its ciphertext waits). Always 0 on a plain socket.
    #[inline]
    pub(super) fn unsent_plaintext(&self) -> usize {
        match self {
            #[cfg(feature = "tls")]
            Socket::Tls(t) => t.unsent_plaintext(),
            _ => 0,
        }
    }

    /// Sends what [`pending_output`](Socket::pending_output) says waits.
    /// `Ok(true)`: nothing is left.
    #[inline]
    pub(super) fn flush_output(&self) -> io::Result<bool> {
        match self {
            #[cfg(feature = "tls")]
            Socket::Tls(t) => t.flush_output(),
            _ => Ok(true),
        }
    }

    /// Whether a TLS handshake is still running.
    #[inline]
    pub(super) fn handshaking(&self) -> bool {
        match self {
            #[cfg(feature = "tls")]
            Socket::Tls(t) => t.handshaking(),
            _ => false,
        }
    }

    /// Whether the peer ended a TLS connection without `close_notify`.
    pub(super) fn truncated(&self) -> bool {
        match self {
            #[cfg(feature = "tls")]
            Socket::Tls(t) => t.truncated(),
            _ => false,
        }
    }
}

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Socket::Tcp(s) => s.as_raw_fd(),
            Socket::Unix(s) => s.as_raw_fd(),
            Socket::Pipe(p) => p.file.as_raw_fd(),
            #[cfg(feature = "tls")]
            Socket::Tls(t) => t.plain().as_raw_fd(),
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

/// One end of a pipe, non-blocking and close-on-exec: what a [`PipeIOStream`]
/// runs over.
///
/// Reading the write end reports end of file at once (nothing will ever come
/// from it): that is also how an error event on the write end, when the
/// reader has gone, closes its stream.
#[derive(Debug)]
pub struct Pipe {
    file: File,
    write_end: bool,
}

impl Pipe {
    /// Takes ownership of a pipe fd (or any fd that `read`/`write` work on: a
    /// FIFO, a character device) and makes it non-blocking.
    ///
    /// # Errors
    /// If the fd's flags cannot be read or set (e.g. it is not open).
    pub fn from_fd(fd: OwnedFd) -> io::Result<Pipe> {
        let raw = fd.as_raw_fd();
        // SAFETY: fcntl on an fd we own; F_GETFL takes no argument.
        let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above; F_SETFL takes the new flags as an int.
        if unsafe { libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Pipe {
            file: File::from(fd),
            write_end: flags & libc::O_ACCMODE == libc::O_WRONLY,
        })
    }

    /// A new pipe: `(read end, write end)`, both non-blocking and close-on-exec.
    ///
    /// # Errors
    /// If the process is out of file descriptors.
    pub fn pair() -> io::Result<(Pipe, Pipe)> {
        let mut fds: [RawFd; 2] = [-1; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe(2) to fill.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe(2) succeeded: both fds are open and nobody else owns them.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        for fd in [&r, &w] {
            // SAFETY: fcntl on an fd we own; F_SETFD takes the flags as an int.
            if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok((Pipe::from_fd(r)?, Pipe::from_fd(w)?))
    }

    /// Whether this is a write end (opened write-only).
    pub fn is_write_end(&self) -> bool {
        self.write_end
    }

    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if self.write_end {
            return Ok(0);
        }
        (&self.file).read(buf)
    }
}

impl AsRawFd for Pipe {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl From<Pipe> for OwnedFd {
    fn from(pipe: Pipe) -> OwnedFd {
        pipe.file.into()
    }
}

impl IntoSocket for Pipe {
    fn into_socket(self) -> io::Result<Socket> {
        Ok(Socket::Pipe(self))
    }
}
impl IntoSocket for ChildStdin {
    fn into_socket(self) -> io::Result<Socket> {
        Ok(Socket::Pipe(Pipe::from_fd(self.into())?))
    }
}
impl IntoSocket for ChildStdout {
    fn into_socket(self) -> io::Result<Socket> {
        Ok(Socket::Pipe(Pipe::from_fd(self.into())?))
    }
}
impl IntoSocket for ChildStderr {
    fn into_socket(self) -> io::Result<Socket> {
        Ok(Socket::Pipe(Pipe::from_fd(self.into())?))
    }
}

/// Tornado's `PipeIOStream`: an [`IOStream`](super::IOStream) over one end
/// of a pipe. The same type, built with [`IOStream::from_pipe`](super::IOStream::from_pipe)
/// (or [`IOStream::new`](super::IOStream::new) with a [`Pipe`] or a child's
/// stdin/stdout/stderr): reads, writes, `read_until_close` and close
/// callbacks work as on a socket; the reader's end of file is the writer's
/// close. [`Subprocess`](crate::process::Subprocess) gives its pipes as these.
///
/// ```
/// use squall::iostream::{Pipe, PipeIOStream};
/// use squall::{Future, IOLoop};
///
/// let io_loop = IOLoop::new()?;
/// let got = io_loop.run_sync(|| {
///     let (r, w) = Pipe::pair().expect("pipe");
///     let reader = PipeIOStream::from_pipe(r).expect("reader");
///     let writer = PipeIOStream::from_pipe(w).expect("writer");
///     writer.write(&b"through the pipe"[..]);
///     writer.close(); // the reader sees end of file
///     reader.read_until_close()
/// }, None)?;
/// assert_eq!(got, b"through the pipe");
/// # Ok::<(), squall::Error>(())
/// ```
pub type PipeIOStream = super::IOStream;

impl super::IOStream {
    /// A stream over a pipe end (any `Into<OwnedFd>`: a [`Pipe`], a
    /// `ChildStdout`, an `OwnedFd`), on the current loop: Tornado's
    /// `PipeIOStream(fd)`. See [`PipeIOStream`].
    ///
    /// # Errors
    /// If the fd cannot be made non-blocking or watched by the loop.
    pub fn from_pipe(fd: impl Into<OwnedFd>) -> Result<PipeIOStream, Error> {
        super::IOStream::pipe_with_loop(fd, &IOLoop::current())
    }

    /// [`from_pipe`](super::IOStream::from_pipe) on a given loop.
    ///
    /// # Errors
    /// As `from_pipe`.
    pub fn pipe_with_loop(fd: impl Into<OwnedFd>, io_loop: &IOLoop) -> Result<PipeIOStream, Error> {
        super::IOStream::with_loop(Pipe::from_fd(fd.into())?, io_loop)
    }
}

/// A weak handle to a stream: does not keep it (or its buffers) alive. For
/// the crate's bookkeeping, e.g. a server's list of its connections.
#[derive(Clone)]
pub(crate) struct WeakIOStream(std::rc::Weak<super::Inner>);

impl super::IOStream {
    pub(crate) fn downgrade(&self) -> WeakIOStream {
        WeakIOStream(std::rc::Rc::downgrade(&self.inner))
    }
}

impl WeakIOStream {
    /// The stream, if some handle (or the loop, for an open stream) holds it.
    pub(crate) fn upgrade(&self) -> Option<super::IOStream> {
        self.0.upgrade().map(|inner| super::IOStream { inner })
    }
}
