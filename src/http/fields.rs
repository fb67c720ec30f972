//! Checks on header fields (stand-ins until httputil has its own).

use crate::error::{Error, ErrorKind};

/// A header name must be a token and a value free of CR, LF and NUL.
pub(crate) fn check_header(name: &str, value: &str) -> Result<(), Error> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("invalid header name {name:?}"),
        ));
    }
    if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("unsafe header value {value:?} for {name}"),
        ));
    }
    Ok(())
}

/// `1*DIGIT`, nothing else (RFC 9110 8.6).
pub(crate) fn parse_content_length(value: &str) -> Result<u64, Error> {
    let bad = || {
        Error::new(
            ErrorKind::HttpProtocol,
            format!("bad Content-Length {value:?}"),
        )
    };
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    value.parse().map_err(|_| bad())
}
