//! HTTP utilities shared by the server and the client; Tornado's `httputil`.
//!
//! [`HTTPHeaders`] (a case-insensitive multimap that keeps arrival order),
//! status reason phrases ([`responses`]), query strings ([`parse_qs_bytes`],
//! [`url_unescape`], [`url_escape`]), a [`ChunkedDecoder`] for
//! `Transfer-Encoding: chunked` bodies, and HTTP dates ([`format_timestamp`],
//! cached per second by [`HttpDate`]), and cookies ([`parse_cookie`],
//! [`format_set_cookie`]).
//!
//! ```
//! use squall::httputil::{parse_qs_bytes, responses, HTTPHeaders};
//!
//! let mut h = HTTPHeaders::new();
//! h.add("Set-Cookie", "a=1");
//! h.add("set-cookie", "b=2");
//! assert_eq!(h.get_list("SET-COOKIE"), ["a=1", "b=2"]);
//!
//! let args = parse_qs_bytes("name=J%C3%BCrgen+M&x=1&x=2");
//! assert_eq!(args["name"], ["Jürgen M"]);
//! assert_eq!(args["x"], ["1", "2"]);
//! assert_eq!(responses(404), "Not Found");
//! ```

mod chunked;
mod cookie;
mod date;
mod encoding;
mod form;
#[cfg(feature = "gzip")]
pub(crate) mod gzip;
mod headers;
mod multipart;
mod range;
mod url;

pub use chunked::*;
pub use cookie::*;
pub use date::*;
pub use encoding::*;
pub use form::*;
pub use headers::*;
pub use multipart::*;
pub use range::*;
pub use url::*;

use crate::error::{Error, ErrorKind};

fn protocol_error(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::HttpProtocol, msg)
}

// ----- field syntax ----------------------------------------------------------

/// Whether `b` is a `tchar` (RFC 9110 5.6.2): what a token, and so a header
/// name or a method, is made of.
#[inline]
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `s` is an RFC 9110 token: one or more `tchar`s.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Checks that `name` may go on the wire as a header name: an RFC 9110
/// token (`1*tchar`: letters, digits and ``!#$%&'*+-.^_`|~``), so no
/// space, colon, CR or LF that would end it early or start another field.
///
/// # Errors
/// [`ErrorKind::InvalidArgument`], naming the header.
///
/// ```
/// use squall::httputil::check_header_name;
///
/// assert!(check_header_name("X-Request-Id").is_ok());
/// for bad in ["", "X Y", "X:Y", "X\r\nEvil", "Ünicode"] {
///     assert_eq!(
///         check_header_name(bad).unwrap_err().kind(),
///         squall::ErrorKind::InvalidArgument
///     );
/// }
/// ```
pub fn check_header_name(name: &str) -> Result<(), Error> {
    if is_token(name.as_bytes()) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("Invalid header name {name:?}"),
        ))
    }
}

/// Checks that `value` may go on the wire as a header value: no CR, LF or
/// NUL (RFC 9110 5.5 calls these "invalid and dangerous"): a CR or LF would
/// end the field and let the rest of the value pass for further fields, or
/// for the end of the head (header injection, response splitting). Other
/// bytes pass, as in Tornado's `RequestHandler` (which also refuses the
/// other controls; RFC 9110 lets a recipient keep those).
///
/// # Errors
/// [`ErrorKind::InvalidArgument`]: `Unsafe header value "..."`, as
/// Tornado's `ValueError`; [`check_header`] also names the header.
///
/// ```
/// use squall::httputil::check_header_value;
///
/// assert!(check_header_value("text/html; charset=UTF-8").is_ok());
/// assert!(check_header_value("").is_ok());
/// let err = check_header_value("a\r\nSet-Cookie: evil=1").unwrap_err();
/// assert_eq!(err.kind(), squall::ErrorKind::InvalidArgument);
/// assert!(err.message().starts_with("Unsafe header value"));
/// assert!(check_header_value("a\nb").is_err());
/// assert!(check_header_value("a\0b").is_err());
/// ```
pub fn check_header_value(value: &str) -> Result<(), Error> {
    match value.bytes().position(|b| matches!(b, b'\r' | b'\n' | 0)) {
        None => Ok(()),
        Some(_) => Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("Unsafe header value {value:?}"),
        )),
    }
}

/// [`check_header_name`] and [`check_header_value`] together, for a field
/// about to be written; the error names the header.
///
/// # Errors
/// [`ErrorKind::InvalidArgument`].
///
/// ```
/// use squall::httputil::check_header;
///
/// assert!(check_header("Location", "/next").is_ok());
/// let err = check_header("Location", "/\r\n\r\n<html>").unwrap_err();
/// assert!(err.message().contains("Location"), "{err}");
/// assert!(check_header("Bad Name", "v").is_err());
/// ```
pub fn check_header(name: &str, value: &str) -> Result<(), Error> {
    check_header_name(name)?;
    check_header_value(value).map_err(|_| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("Unsafe header value {value:?} for header {name:?}"),
        )
    })
}

/// Parses a `Content-Length` value strictly: `1*DIGIT` (RFC 9110 8.6), so
/// no sign, no whitespace (a parsed field value has had its surrounding
/// whitespace removed already), no `_`, nothing empty, nothing past
/// `u64::MAX`. A lax parse here is how request smuggling starts: two
/// parties that read the same bytes as different lengths.
///
/// A comma-separated list is accepted when its elements are all the same
/// (`"5, 5"` is 5, `"5, 6"` an error): proxies sometimes repeat the field,
/// and RFC 9110 8.6 lets a recipient take such a list as the one value. This
/// is Tornado 6's `HTTP1Connection._read_body`: it splits on `,\s*` and
/// compares the pieces as strings (so `"5, 05"` is an error too; a space
/// before a comma, or an empty element, makes pieces differ). Several
/// `Content-Length` fields are one list: join their values with `","`
/// first, as Tornado's `headers["Content-Length"]` does.
///
/// # Errors
/// [`ErrorKind::HttpProtocol`].
///
/// ```
/// use squall::httputil::parse_content_length;
///
/// assert_eq!(parse_content_length("42")?, 42);
/// assert_eq!(parse_content_length("0")?, 0);
/// assert_eq!(parse_content_length("5, 5")?, 5);
/// assert_eq!(parse_content_length(&["7", "7"].join(","))?, 7);
/// for bad in ["", "+10", "-1", " 10", "10 ", "1_0", "0x10", "5, 6", "5,", "18446744073709551616"] {
///     let err = parse_content_length(bad).unwrap_err();
///     assert_eq!(err.kind(), squall::ErrorKind::HttpProtocol, "{bad:?}");
/// }
/// # Ok::<(), squall::Error>(())
/// ```
pub fn parse_content_length(value: &str) -> Result<u64, Error> {
    let bad = || protocol_error(format!("bad Content-Length {value:?}"));
    let mut first: Option<&str> = None;
    // Tornado: `re.split(r",\s*", value)`, every piece equal to the first.
    // OWS (SP, HTAB) stands for `\s`: nothing else can be in a field value.
    for (i, piece) in value.split(',').enumerate() {
        let piece = if i == 0 {
            piece
        } else {
            piece.trim_start_matches([' ', '\t'])
        };
        match first {
            None => first = Some(piece),
            Some(f) if f == piece => {}
            Some(_) => {
                return Err(protocol_error(format!(
                    "multiple unequal Content-Lengths: {value:?}"
                )))
            }
        }
    }
    let digits = first.unwrap_or_default().as_bytes();
    if digits.is_empty() {
        return Err(bad());
    }
    let mut n = 0u64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(bad());
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or_else(bad)?;
    }
    Ok(n)
}

// ----- status codes ----------------------------------------------------------

/// The reason phrase of a status code (`"Not Found"` for 404); `"Unknown"`
/// for a code it does not know. Tornado's `httputil.responses[code]`.
pub fn responses(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a Teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length() {
        let good: &[(&str, u64)] = &[
            ("0", 0),
            ("5", 5),
            ("42", 42),
            ("007", 7),
            ("5, 5", 5),
            ("5,5", 5),
            ("5,\t5, 5", 5),
            ("18446744073709551615", u64::MAX),
            ("000000000000000000000000000001", 1),
        ];
        for &(value, n) in good {
            assert_eq!(parse_content_length(value).unwrap(), n, "{value:?}");
        }
        let bad = [
            "",
            " ",
            "+10",
            "-1",
            "-0",
            " 10",
            "10 ",
            "1 0",
            "1_0",
            "0x10",
            "1e3",
            "1.0",
            "10\t",
            "\u{ff15}",
            "5, 6",
            "5,",
            ",5",
            "5,,5",
            "5 ,5",
            "5, 05",
            "5, +5",
            "18446744073709551616",
            "99999999999999999999999",
        ];
        for value in bad {
            let err = parse_content_length(value).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::HttpProtocol, "{value:?}");
        }
    }

    #[test]
    fn header_checks() {
        for name in ["A", "Content-Type", "x-y_z", "!#$%&'*+-.^_`|~09azAZ"] {
            assert!(check_header_name(name).is_ok(), "{name:?}");
        }
        for name in [
            "", " ", "A B", "A:", ":a", "A\r\nB", "A\n", "A\0", "A\t", "(x)", "a/b", "a@b", "é",
            "\u{7f}", "\"q\"",
        ] {
            let err = check_header_name(name).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{name:?}");
            assert!(err.message().contains("header name"), "{err}");
        }
        for value in ["", "v", "a b\tc", "é ü", "\x01\x7f", " lead and trail "] {
            assert!(check_header_value(value).is_ok(), "{value:?}");
        }
        for value in ["\r", "\n", "\0", "a\r\nB: c", "a\nb", "a\rb", "x\0"] {
            let err = check_header_value(value).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{value:?}");
            assert!(err.message().starts_with("Unsafe header value"), "{err}");
        }
        let err = check_header("X-Id", "1\r\nSet-Cookie: a=b").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.message().contains("\"X-Id\""), "{err}");
        assert!(check_header("X Id", "1").is_err());
        assert!(check_header("X-Id", "1").is_ok());
    }

    #[test]
    fn reasons() {
        assert_eq!(responses(200), "OK");
        assert_eq!(responses(431), "Request Header Fields Too Large");
        assert_eq!(responses(999), "Unknown");
    }
}
