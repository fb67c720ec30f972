//! `HTTPResponse`, and the errors a fetch fails with.

use std::fmt;
use std::time::Duration;

use super::request::HTTPRequest;
use crate::error::{Error, ErrorKind};
use crate::httputil::HTTPHeaders;

/// What a fetch got back; Tornado's `HTTPResponse`.
#[derive(Clone)]
#[non_exhaustive]
pub struct HTTPResponse {
    /// The request as given to `fetch` (before any redirect).
    pub request: HTTPRequest,
    /// The status code.
    pub code: u16,
    /// The reason phrase the server sent.
    pub reason: String,
    /// The header fields (of the final answer, after redirects).
    pub headers: HTTPHeaders,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// The URL the answer came from, after redirects.
    pub effective_url: String,
    /// From `fetch` to the end of the body: queueing, connecting and every
    /// redirect hop included.
    pub request_time: Duration,
}

impl HTTPResponse {
    /// The [`HTTPError`] this response stands for, if its code is not 2xx
    /// (Tornado's `response.error`).
    pub fn error(&self) -> Option<Error> {
        if (200..300).contains(&self.code) {
            None
        } else {
            Some(HTTPError::new_error(self.clone()))
        }
    }

    /// `Err` with the [`HTTPError`] if the code is not 2xx (Tornado's
    /// `rethrow`).
    ///
    /// # Errors
    /// [`ErrorKind::HttpStatus`] for a non-2xx code.
    pub fn rethrow(&self) -> Result<(), Error> {
        match self.error() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl fmt::Debug for HTTPResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body may be megabytes: show its size and a beginning.
        let head = &self.body[..self.body.len().min(64)];
        f.debug_struct("HTTPResponse")
            .field("code", &self.code)
            .field("reason", &self.reason)
            .field("effective_url", &self.effective_url)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .field("body_start", &String::from_utf8_lossy(head))
            .field("request_time", &self.request_time)
            .field("method", &self.request.method)
            .finish()
    }
}

/// A non-2xx answer as an error, carrying the response; Tornado's
/// `HTTPClientError` (formerly `HTTPError`).
///
/// It travels as the source of a [`squall::Error`](Error) of kind
/// [`ErrorKind::HttpStatus`]; [`HTTPError::from_error`] finds it again.
///
/// ```
/// use squall::httpclient::HTTPError;
/// use squall::ErrorKind;
///
/// let err = HTTPError::new(404, "Not Found").into_error();
/// assert_eq!(err.kind(), ErrorKind::HttpStatus);
/// assert_eq!(err.to_string(), "HTTP error: HTTP 404: Not Found");
/// assert_eq!(HTTPError::from_error(&err).unwrap().code, 404);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HTTPError {
    /// The status code.
    pub code: u16,
    /// The reason phrase (or another message).
    pub message: String,
    /// The whole response, when there was one.
    pub response: Option<Box<HTTPResponse>>,
}

impl HTTPError {
    /// An error for `code` with no response.
    pub fn new(code: u16, message: impl Into<String>) -> HTTPError {
        HTTPError {
            code,
            message: message.into(),
            response: None,
        }
    }

    /// Wraps it in a [`squall::Error`](Error) of kind [`ErrorKind::HttpStatus`].
    pub fn into_error(self) -> Error {
        Error::with_source(ErrorKind::HttpStatus, self.to_string(), self)
    }

    /// The `HTTPError` inside `err`, if it carries one.
    pub fn from_error(err: &Error) -> Option<&HTTPError> {
        std::error::Error::source(err)?.downcast_ref::<HTTPError>()
    }

    pub(crate) fn new_error(response: HTTPResponse) -> Error {
        HTTPError {
            code: response.code,
            message: response.reason.clone(),
            response: Some(Box::new(response)),
        }
        .into_error()
    }
}

impl fmt::Display for HTTPError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}: {}", self.code, self.message)
    }
}

impl std::error::Error for HTTPError {}

/// Which deadline passed: the fetch waited too long for a free slot, for
/// the connection, or for the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeoutPhase {
    /// Queued behind `max_clients` requests (Tornado's "Timeout in request
    /// queue"); the deadline is the smaller of the two timeouts.
    Queue,
    /// Resolving the name or connecting (`connect_timeout`).
    Connect,
    /// Anywhere in the exchange (`request_timeout`).
    Request,
}

/// The source of an [`ErrorKind::Timeout`] error from a fetch: which phase
/// timed out, and after how long.
///
/// ```
/// use std::time::Duration;
/// use squall::httpclient::{HTTPTimeoutError, TimeoutPhase};
///
/// let err = HTTPTimeoutError::new_error(TimeoutPhase::Connect, Duration::from_secs(1));
/// assert_eq!(err.kind(), squall::ErrorKind::Timeout);
/// assert_eq!(HTTPTimeoutError::from_error(&err).unwrap().phase, TimeoutPhase::Connect);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HTTPTimeoutError {
    /// The phase that ran out of time.
    pub phase: TimeoutPhase,
    /// The timeout that passed.
    pub timeout: Duration,
}

impl HTTPTimeoutError {
    /// A [`squall::Error`](Error) of kind [`ErrorKind::Timeout`] for `phase`.
    pub fn new_error(phase: TimeoutPhase, timeout: Duration) -> Error {
        let me = HTTPTimeoutError { phase, timeout };
        Error::with_source(ErrorKind::Timeout, me.to_string(), me)
    }

    /// The `HTTPTimeoutError` inside `err`, if it carries one.
    pub fn from_error(err: &Error) -> Option<&HTTPTimeoutError> {
        std::error::Error::source(err)?.downcast_ref::<HTTPTimeoutError>()
    }
}

impl fmt::Display for HTTPTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match self.phase {
            TimeoutPhase::Queue => "in the request queue",
            TimeoutPhase::Connect => "while connecting",
            TimeoutPhase::Request => "during the request",
        };
        write!(f, "timeout {phase} (after {:?})", self.timeout)
    }
}

impl std::error::Error for HTTPTimeoutError {}
