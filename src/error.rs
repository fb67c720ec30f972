//! squall's error type: one `Error`, cheap to clone, with a [`ErrorKind`].
//!
//! ```
//! use squall::{Error, ErrorKind};
//!
//! let err = Error::new(ErrorKind::Timeout, "memcached did not answer in 200 ms");
//! assert_eq!(err.kind(), ErrorKind::Timeout);
//! assert_eq!(err.to_string(), "timeout: memcached did not answer in 200 ms");
//!
//! // io::Error converts, and stays reachable as the source.
//! let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
//! let err = Error::from(io);
//! assert_eq!(err.kind(), ErrorKind::Io);
//! assert_eq!(err.io_error_kind(), Some(std::io::ErrorKind::ConnectionRefused));
//! ```

use std::fmt;
use std::io;
use std::sync::Arc;

/// A specialised `Result` whose error is [`squall::Error`](Error).
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in a form code can match on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An operating-system I/O error; the `io::Error` is the source.
    Io,
    /// A deadline passed (`run_sync`, `with_timeout`, a connect timeout...).
    Timeout,
    /// The stream was closed; the source, if any, says why.
    StreamClosed,
    /// A read can never be satisfied (delimiter not found within `max_bytes`).
    UnsatisfiableRead,
    /// An operation was called in a state that does not allow it
    /// (a future set twice, a loop started twice).
    InvalidState,
    /// A callback panicked; the message is the panic's.
    Panic,
    /// A generator finished with callbacks registered but never waited for.
    LeakedCallback,
    /// A generator yielded something that cannot be waited on.
    BadYield,
    /// A generator waited on a key that was never registered.
    UnknownKey,
    /// A callback key was registered twice with one runner.
    KeyReuse,
    /// A result callback was dropped without ever being called.
    CallbackDropped,
    /// A type-erased value was asked for as the wrong type.
    TypeMismatch,
    /// A write would grow a stream's write buffer past its limit.
    BufferFull,
    /// The [`IOLoop`](crate::IOLoop) this call needs is closed.
    Closed,
    /// An argument is out of range (a zero period, a bad fd...).
    InvalidArgument,
    /// A queue is full: `Queue::put_nowait`, or a bounded executor's job queue
    /// (Tornado's `QueueFull`).
    QueueFull,
    /// A queue is empty: `Queue::get_nowait` (Tornado's `QueueEmpty`).
    QueueEmpty,
    /// A child process ended with a non-zero status or by a signal
    /// (Tornado's `CalledProcessError`); the message says how.
    ProcessFailed,
    /// A peer broke the HTTP protocol: a malformed status line or header,
    /// a bad chunk, a body over `max_body_size`...
    HttpProtocol,
    /// An HTTP exchange completed with a non-2xx status; the source is an
    /// [`HTTPError`](crate::httpclient::HTTPError) carrying the response.
    HttpStatus,
    /// TLS failed: a handshake the peer or a certificate check refused, a
    /// corrupt record, a connection cut without `close_notify` where that
    /// matters, or TLS settings that cannot be loaded. The source, when
    /// there is one, is the `rustls::Error`.
    Tls,
    /// A WebSocket message or ping after the connection started closing
    /// (Tornado's `WebSocketClosedError`).
    WebSocketClosed,
    /// A call that only works inside a stackful coroutine (`greenlet::wait`
    /// and friends) was made outside one.
    NotInCoroutine,
    /// A template could not be rendered (feature `template`): not found,
    /// a syntax error, an undefined name...; the message names the
    /// template and the line, the source is the engine's error.
    Template,
    /// Anything else: user errors converted from strings land here.
    Other,
}

impl ErrorKind {
    /// A short, lower-case name for the kind, as used in `Display`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Io => "I/O error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::StreamClosed => "stream closed",
            ErrorKind::UnsatisfiableRead => "unsatisfiable read",
            ErrorKind::InvalidState => "invalid state",
            ErrorKind::Panic => "panic",
            ErrorKind::LeakedCallback => "leaked callback",
            ErrorKind::BadYield => "bad yield",
            ErrorKind::UnknownKey => "unknown key",
            ErrorKind::KeyReuse => "key reuse",
            ErrorKind::CallbackDropped => "callback dropped",
            ErrorKind::TypeMismatch => "type mismatch",
            ErrorKind::BufferFull => "buffer full",
            ErrorKind::Closed => "closed",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::QueueFull => "queue full",
            ErrorKind::QueueEmpty => "queue empty",
            ErrorKind::ProcessFailed => "process failed",
            ErrorKind::HttpProtocol => "HTTP protocol error",
            ErrorKind::HttpStatus => "HTTP error",
            ErrorKind::Tls => "TLS error",
            ErrorKind::WebSocketClosed => "WebSocket closed",
            ErrorKind::NotInCoroutine => "not in a coroutine",
            ErrorKind::Template => "template error",
            ErrorKind::Other => "error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

struct Inner {
    kind: ErrorKind,
    message: String,
    source: Option<Source>,
}

/// squall's error: a kind, a message and an optional source.
///
/// `Clone` is cheap (an `Arc` inside), because one error often has to reach
/// several places: a future's every consumer, a stack context and the log.
/// It is `Send + Sync`, so it can cross back from a thread pool.
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

impl Error {
    /// An error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            inner: Arc::new(Inner {
                kind,
                message: message.into(),
                source: None,
            }),
        }
    }

    /// An error of `kind` with a message and the error that caused it.
    pub fn with_source<E>(kind: ErrorKind, message: impl Into<String>, source: E) -> Error
    where
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        Error {
            inner: Arc::new(Inner {
                kind,
                message: message.into(),
                source: Some(source.into()),
            }),
        }
    }

    /// An error of kind [`ErrorKind::Other`].
    pub fn other(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Other, message)
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The kind of the underlying `io::Error`, if the source is one.
    pub fn io_error_kind(&self) -> Option<io::ErrorKind> {
        self.inner
            .source
            .as_ref()
            .and_then(|s| s.downcast_ref::<io::Error>())
            .map(io::Error::kind)
    }

    /// Whether `self` and `other` are the same error (clones of one value).
    pub fn ptr_eq(&self, other: &Error) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind)
            .field("message", &self.inner.message);
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.inner.message.is_empty() {
            write!(f, "{}", self.inner.kind)
        } else {
            write!(f, "{}: {}", self.inner.kind, self.inner.message)
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|s| &**s as &(dyn std::error::Error + 'static))
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Error {
        let kind = if err.kind() == io::ErrorKind::TimedOut {
            ErrorKind::Timeout
        } else if is_tls_failure(&err) {
            // A TLS stream reports a failed handshake or a bad record as an
            // io::Error wrapping the rustls::Error, as rustls's own does.
            ErrorKind::Tls
        } else {
            ErrorKind::Io
        };
        Error::with_source(kind, err.to_string(), err)
    }
}

#[cfg(feature = "tls")]
fn is_tls_failure(err: &io::Error) -> bool {
    err.get_ref()
        .is_some_and(|inner| inner.is::<rustls::Error>())
}

#[cfg(not(feature = "tls"))]
fn is_tls_failure(_: &io::Error) -> bool {
    false
}

impl From<Error> for io::Error {
    /// For code that speaks `io::Result` (a `Read`/`Write` impl, a `main`
    /// returning `io::Result`): the `io::ErrorKind` of an I/O error inside,
    /// else one that fits the kind (`TimedOut`, `UnexpectedEof` for a closed
    /// stream, `InvalidInput`, `InvalidData` for protocol errors, `Other`);
    /// the squall error stays reachable as the source.
    ///
    /// ```
    /// use squall::{Error, ErrorKind};
    ///
    /// let err: std::io::Error = Error::new(ErrorKind::Timeout, "slow").into();
    /// assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// ```
    fn from(err: Error) -> io::Error {
        let kind = err.io_error_kind().unwrap_or(match err.kind() {
            ErrorKind::Timeout => io::ErrorKind::TimedOut,
            ErrorKind::StreamClosed | ErrorKind::Closed => io::ErrorKind::UnexpectedEof,
            ErrorKind::InvalidArgument => io::ErrorKind::InvalidInput,
            ErrorKind::HttpProtocol | ErrorKind::Tls => io::ErrorKind::InvalidData,
            ErrorKind::BufferFull => io::ErrorKind::OutOfMemory,
            _ => io::ErrorKind::Other,
        });
        io::Error::new(kind, err)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Error {
        Error::other(message)
    }
}

impl From<String> for Error {
    fn from(message: String) -> Error {
        Error::other(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn error_is_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Error>();
        let a = Error::other("x");
        let b = a.clone();
        assert!(a.ptr_eq(&b));
        assert!(!a.ptr_eq(&Error::other("x")));
    }

    #[test]
    fn io_source_is_kept() {
        let err = Error::from(io::Error::new(io::ErrorKind::BrokenPipe, "pipe"));
        assert_eq!(err.kind(), ErrorKind::Io);
        assert_eq!(err.io_error_kind(), Some(io::ErrorKind::BrokenPipe));
        assert!(err.source().is_some());
        let timed_out = Error::from(io::Error::from(io::ErrorKind::TimedOut));
        assert_eq!(timed_out.kind(), ErrorKind::Timeout);
    }

    #[test]
    fn display_and_debug() {
        assert_eq!(Error::new(ErrorKind::Closed, "").to_string(), "closed");
        let dbg = format!("{:?}", Error::new(ErrorKind::Panic, "boom"));
        assert!(dbg.contains("Panic") && dbg.contains("boom"), "{dbg}");
    }
}
