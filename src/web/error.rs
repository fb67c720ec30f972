//! `HTTPError`: a handler's way to answer with an error status.

use std::fmt;

use crate::error::{Error, ErrorKind};
use crate::httputil::responses;

/// An error that answers the request with `status_code` (Tornado's
/// `web.HTTPError`): return it from a handler method (`?` converts it)
/// and the client gets that status and the handler's
/// [`write_error`](super::RequestHandler::write_error) page instead of a
/// 500. It is logged as a warning with its `log_message`, which the
/// client never sees.
///
/// ```
/// use squall::web::{Exchange, HTTPError, RequestHandler};
/// use squall::Error;
///
/// struct Admin;
/// impl RequestHandler for Admin {
///     fn get(&mut self, x: &Exchange) -> Result<(), Error> {
///         if x.request().headers().get("X-Admin").is_none() {
///             return Err(HTTPError::new(403).log_message("not an admin").into());
///         }
///         x.write("welcome");
///         Ok(())
///     }
/// }
/// let err: Error = HTTPError::new(404).into();
/// assert_eq!(HTTPError::from_error(&err).unwrap().status_code, 404);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HTTPError {
    /// The status to answer with; one outside 100-599 answers 500.
    pub status_code: u16,
    /// What to log (never sent to the client).
    pub log_message: Option<String>,
}

impl HTTPError {
    /// An error answering `status_code`.
    pub fn new(status_code: u16) -> HTTPError {
        HTTPError {
            status_code,
            log_message: None,
        }
    }

    /// With a message for the log.
    pub fn log_message(mut self, message: impl Into<String>) -> HTTPError {
        self.log_message = Some(message.into());
        self
    }

    /// The `HTTPError` inside `err`, if it carries one.
    pub fn from_error(err: &Error) -> Option<&HTTPError> {
        std::error::Error::source(err)?.downcast_ref::<HTTPError>()
    }

    /// The status a failed handler answers for `err`: an `HTTPError`'s
    /// (when valid), else 500.
    pub(crate) fn status_for(err: &Error) -> u16 {
        match HTTPError::from_error(err) {
            Some(e) if (100..600).contains(&e.status_code) => e.status_code,
            _ => 500,
        }
    }
}

impl fmt::Display for HTTPError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HTTP {}: {}",
            self.status_code,
            responses(self.status_code)
        )?;
        if let Some(message) = &self.log_message {
            write!(f, " ({message})")?;
        }
        Ok(())
    }
}

impl std::error::Error for HTTPError {}

impl From<HTTPError> for Error {
    /// An error of kind [`ErrorKind::HttpStatus`] carrying it.
    fn from(e: HTTPError) -> Error {
        Error::with_source(ErrorKind::HttpStatus, e.to_string(), e)
    }
}
