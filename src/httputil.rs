//! HTTP utilities shared by the server and the client; Tornado's `httputil`.
//!
//! [`HTTPHeaders`] (a case-insensitive multimap that keeps arrival order),
//! status reason phrases ([`responses`]), query strings ([`parse_qs_bytes`],
//! [`url_unescape`], [`url_escape`]), a [`ChunkedDecoder`] for
//! `Transfer-Encoding: chunked` bodies, and HTTP dates ([`format_timestamp`],
//! cached per second by [`HttpDate`]).
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

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, ErrorKind};

// ----- headers ---------------------------------------------------------------

/// Where a field is in `HTTPHeaders::text`: (name start, name end, value
/// start, value end).
type Field = (u32, u32, u32, u32);

/// HTTP header fields: names compare case-insensitively, a name may repeat,
/// order is kept. Tornado's `HTTPHeaders`.
///
/// ```
/// use squall::httputil::HTTPHeaders;
///
/// let mut h = HTTPHeaders::parse("Content-Type: text/plain\r\nX-A: 1\r\nx-a: 2\r\n")?;
/// assert_eq!(h.get("content-type"), Some("text/plain"));
/// assert_eq!(h.get_list("X-A"), ["1", "2"]);
/// h.set("x-a", "3");
/// assert_eq!(h.get_list("X-A"), ["3"]);
/// assert_eq!(h.to_string(), "Content-Type: text/plain\r\nx-a: 3\r\n");
/// # Ok::<(), squall::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct HTTPHeaders {
    /// The names and values: one allocation for the whole block. A server
    /// copies a request's head in here once, as it came (request line,
    /// separators and all), and the fields point into it.
    text: String,
    fields: Vec<Field>,
    /// The bytes of a request head that was not all UTF-8 (obs-text, such
    /// as Latin-1 `José`), with each field value's range in them; `None`
    /// for every other head. Any change to the fields lets it go.
    raw: Option<Box<RawHead>>,
}

/// A request head as it came, for values that are not UTF-8.
#[derive(Clone, Default)]
struct RawHead {
    bytes: Vec<u8>,
    values: Vec<(u32, u32)>,
}

impl HTTPHeaders {
    /// No fields.
    pub fn new() -> HTTPHeaders {
        HTTPHeaders::default()
    }

    /// No fields, with room for `n`.
    pub fn with_capacity(n: usize) -> HTTPHeaders {
        HTTPHeaders {
            text: String::with_capacity(n * 32),
            fields: Vec::with_capacity(n),
            raw: None,
        }
    }

    /// Parses a header block (`Name: value` lines, CRLF or LF, ending with or
    /// without a blank line). Continuation lines (leading whitespace) are
    /// folded into the previous value, as Tornado does.
    ///
    /// # Errors
    /// [`ErrorKind::HttpProtocol`] on a line without a colon, or a
    /// continuation line with nothing to continue.
    pub fn parse(block: &str) -> Result<HTTPHeaders, Error> {
        let mut h = HTTPHeaders::new();
        for line in block.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            h.parse_line(line)?;
        }
        Ok(h)
    }

    /// Adds one `Name: value` line (or a continuation of the last field).
    ///
    /// # Errors
    /// As [`parse`](HTTPHeaders::parse).
    pub fn parse_line(&mut self, line: &str) -> Result<(), Error> {
        if line.starts_with([' ', '\t']) {
            let Some(&(ns, ne, _, _)) = self.fields.last() else {
                return Err(protocol_error(
                    "first header line cannot start with whitespace",
                ));
            };
            let name = self.text[ns as usize..ne as usize].to_owned();
            let value = format!("{} {}", self.value_at(self.fields.len() - 1), line.trim());
            self.fields.pop();
            self.add(name, value);
            return Ok(());
        }
        match line.split_once(':') {
            Some((name, value)) if !name.is_empty() && !name.contains([' ', '\t']) => {
                self.add(name, value.trim());
                Ok(())
            }
            _ => Err(protocol_error(format!("malformed header line {line:?}"))),
        }
    }

    fn name_at(&self, i: usize) -> &str {
        let (ns, ne, _, _) = self.fields[i];
        &self.text[ns as usize..ne as usize]
    }

    fn value_at(&self, i: usize) -> &str {
        let (_, _, vs, ve) = self.fields[i];
        &self.text[vs as usize..ve as usize]
    }

    /// Appends a field (a name may repeat).
    pub fn add(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        self.push(name.as_ref(), value.as_ref());
    }

    /// Starts over with `block` as the text, and no fields yet: a request
    /// head, copied in one piece; [`push_within`](Self::push_within) then
    /// names its fields.
    #[inline]
    pub(crate) fn reset_to_block(&mut self, block: &str) {
        self.text.clear();
        self.text.push_str(block);
        self.fields.clear();
        self.raw = None;
    }

    /// Keeps the bytes of a head that was not all UTF-8, with the range of
    /// each field's value in them (in the order of the fields), for
    /// [`get_bytes`](Self::get_bytes).
    pub(crate) fn keep_raw(&mut self, bytes: &[u8], values: Vec<(u32, u32)>) {
        self.raw = Some(Box::new(RawHead {
            bytes: bytes.to_vec(),
            values,
        }));
    }

    /// The first value of `name` as the bytes that came: for a value that
    /// is not UTF-8 (obs-text, RFC 9110 5.5), which [`get`](Self::get)
    /// gives decoded as Latin-1, as Tornado does.
    ///
    /// ```
    /// use squall::httputil::HTTPHeaders;
    ///
    /// let mut h = HTTPHeaders::new();
    /// h.add("X-Name", "José");
    /// assert_eq!(h.get_bytes("x-name"), Some("José".as_bytes()));
    /// ```
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        let i = (0..self.fields.len()).find(|&i| self.name_at(i).eq_ignore_ascii_case(name))?;
        match &self.raw {
            Some(raw) if raw.values.len() == self.fields.len() => {
                let (vs, ve) = raw.values[i];
                raw.bytes.get(vs as usize..ve as usize)
            }
            _ => Some(self.value_at(i).as_bytes()),
        }
    }

    /// The text (for a request, its whole head).
    pub(crate) fn block(&self) -> &str {
        &self.text
    }

    /// Adds a field whose name and value are already in the text, at these
    /// byte ranges, which must lie at char boundaries (the accessors slice
    /// there). Ranges from `httparse` over a UTF-8 head always do: a name is
    /// ASCII, and a value starts after `:` or a blank and ends before a
    /// blank or CR, and next to an ASCII byte is always a boundary. So no
    /// check here, on every header of every request.
    #[inline]
    pub(crate) fn push_within(
        &mut self,
        name: std::ops::Range<usize>,
        value: std::ops::Range<usize>,
    ) {
        debug_assert!(self.text.get(name.clone()).is_some());
        debug_assert!(self.text.get(value.clone()).is_some());
        self.fields.push((
            name.start as u32,
            name.end as u32,
            value.start as u32,
            value.end as u32,
        ));
    }

    #[inline]
    pub(crate) fn push(&mut self, name: &str, value: &str) {
        self.raw = None;
        let ns = self.text.len() as u32;
        self.text.push_str(name);
        let ne = self.text.len() as u32;
        self.text.push_str(value);
        self.fields.push((ns, ne, ne, self.text.len() as u32));
    }

    /// Replaces every field named `name` with one, where the first was.
    pub fn set(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        let name = name.as_ref();
        match (0..self.fields.len()).find(|&i| self.name_at(i).eq_ignore_ascii_case(name)) {
            Some(i) => {
                self.push(name, value.as_ref());
                let last = self.fields.pop().expect("just pushed");
                self.fields[i] = last;
                let mut j = i + 1;
                while j < self.fields.len() {
                    if self.name_at(j).eq_ignore_ascii_case(name) {
                        self.fields.remove(j);
                    } else {
                        j += 1;
                    }
                }
            }
            None => self.push(name, value.as_ref()),
        }
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        (0..self.fields.len())
            .find(|&i| self.name_at(i).eq_ignore_ascii_case(name))
            .map(|i| self.value_at(i))
    }

    /// Every value of `name`, in order.
    pub fn get_list(&self, name: &str) -> Vec<&str> {
        (0..self.fields.len())
            .filter(|&i| self.name_at(i).eq_ignore_ascii_case(name))
            .map(|i| self.value_at(i))
            .collect()
    }

    /// Every field, in order, as (name, value); Tornado's `get_all()`.
    pub fn get_all(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter()
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Removes every field named `name`; returns whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        self.raw = None;
        let before = self.fields.len();
        let text = &self.text;
        self.fields
            .retain(|&(ns, ne, _, _)| !text[ns as usize..ne as usize].eq_ignore_ascii_case(name));
        if self.fields.is_empty() {
            self.text.clear();
        }
        self.fields.len() != before
    }

    /// The bytes of storage held (for callers deciding whether to keep it).
    pub fn capacity(&self) -> usize {
        self.text.capacity() + self.fields.capacity() * std::mem::size_of::<Field>()
    }

    /// Removes every field (keeping the memory, for reuse).
    pub fn clear(&mut self) {
        self.text.clear();
        self.fields.clear();
        self.raw = None;
    }

    /// The fields, in order, as (name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        (0..self.fields.len()).map(|i| (self.name_at(i), self.value_at(i)))
    }

    /// How many fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Appends the fields as `Name: value\r\n` lines to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        for (n, v) in self.iter() {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

impl PartialEq for HTTPHeaders {
    fn eq(&self, other: &HTTPHeaders) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for HTTPHeaders {}

impl fmt::Display for HTTPHeaders {
    /// The fields as `Name: value\r\n` lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, v) in self.iter() {
            write!(f, "{n}: {v}\r\n")?;
        }
        Ok(())
    }
}

impl fmt::Debug for HTTPHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for HTTPHeaders {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> HTTPHeaders {
        let mut h = HTTPHeaders::new();
        for (n, v) in iter {
            h.add(n, v);
        }
        h
    }
}

/// Whether a comma-separated header value (`Connection`, `Transfer-Encoding`)
/// lists `token`, case-insensitively.
pub fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

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

// ----- query strings ---------------------------------------------------------

/// Decodes `%XX` escapes (and `+` as a space when `plus`); invalid escapes
/// are kept as they are, and invalid UTF-8 is replaced (U+FFFD). Tornado's
/// `url_unescape`.
pub fn url_unescape(s: &str, plus: bool) -> String {
    let bytes = s.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || (plus && b == b'+')) {
        return s.to_owned();
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match (
                bytes.get(i + 1).and_then(hex),
                bytes.get(i + 2).and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn hex(b: &u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes everything but unreserved characters (`A-Z a-z 0-9 - _ . ~`);
/// with `plus`, a space becomes `+`. Tornado's `url_escape`.
pub fn url_escape(s: &str, plus: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' if plus => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
    }
    out
}

/// Parses a query string (`a=1&b=2&a=3`) into name -> values, in order;
/// `+` is a space, escapes are decoded, blank values kept. Tornado's
/// `parse_qs_bytes(qs, keep_blank_values=True)`.
pub fn parse_qs_bytes(qs: &str) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (name, value) in parse_qsl(qs) {
        out.entry(name).or_default().push(value);
    }
    out
}

/// Parses a query string into (name, value) pairs in order; `parse_qs_bytes`
/// without the grouping.
pub fn parse_qsl(qs: &str) -> Vec<(String, String)> {
    qs.split(['&', ';'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (n, v) = part.split_once('=').unwrap_or((part, ""));
            (url_unescape(n, true), url_unescape(v, true))
        })
        .collect()
}

// ----- chunked bodies --------------------------------------------------------

/// The longest chunk-size line (with extensions, without the CRLF) the
/// decoder accepts.
const MAX_CHUNK_LINE: usize = 4096;
/// The most trailer bytes the decoder accepts by default.
const MAX_TRAILER: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data(u64),
    DataEnd,
    Trailer,
    Done,
}

/// What a [`ChunkedDecoder`] needs next, for a reader that takes exactly
/// one message's bytes off a stream (the HTTP client).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChunkedWants {
    /// A line, through its LF (a size or trailer line).
    Line,
    /// This many bytes (the rest of a chunk's data and its CRLF).
    Bytes(u64),
    /// Nothing: the body is complete.
    Done,
}

/// An incremental, strict decoder for `Transfer-Encoding: chunked` bodies
/// (RFC 9112 7.1).
///
/// Feed it bytes as they come; it says how many it consumed and appends the
/// body to `out`. The body is bounded by `max_body` (the decoder fails past
/// it, never grows without bound). Trailer fields are checked and skipped.
///
/// It is strict, as Tornado 6's `_read_chunked_body` is, because a decoder
/// that accepts what another party on the path reads differently is how
/// request smuggling works:
///
/// - a size line is `1*HEXDIG [ chunk-ext ] CRLF`: no sign, no `0x`, no
///   whitespace before or after the digits (`" 5"`, `"5 "`, `"5\t"`, and
///   `"5 ;x"`: bad whitespace before any `;` is an error). An extension is
///   `;name[=value]`, `name` a token, `value` a token or quoted string,
///   with the optional whitespace RFC 9112 allows after `;` and around `=`.
///   (Tornado refuses every extension; RFC 9112 requires accepting them.)
/// - every line ends in CRLF: the size line, the CRLF after each chunk's
///   data, each trailer line and the final blank line. A bare LF is an
///   error, never a line end. (Tornado reads to CRLF, so a bare LF ends up
///   inside a line and fails it.)
/// - a trailer line is `name: value`, `name` a token, `value` without
///   control characters other than HTAB; no folded lines. (Tornado refuses
///   any trailer.)
/// - a size line is at most 4096 bytes, trailers at most 16 KiB, a size
///   below 2^60, and the body at most `max_body`.
///
/// ```
/// use squall::httputil::ChunkedDecoder;
/// use squall::ErrorKind;
///
/// let mut d = ChunkedDecoder::new(1 << 20);
/// let mut body = Vec::new();
/// let input = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\nNEXT";
/// let used = d.decode(input, &mut body)?;
/// assert!(d.is_done());
/// assert_eq!(body, b"hello world");
/// assert_eq!(&input[used..], b"NEXT");
///
/// // Whitespace around the size, or a bare LF, is bad framing.
/// for bad in [&b"5 \r\nhello\r\n"[..], b"5\nhello\r\n", b"5\r\nhello\n"] {
///     let err = ChunkedDecoder::new(1 << 20).decode(bad, &mut Vec::new()).unwrap_err();
///     assert_eq!(err.kind(), ErrorKind::HttpProtocol);
/// }
/// # Ok::<(), squall::Error>(())
/// ```
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: ChunkState,
    max_body: usize,
    max_trailer: usize,
    body_len: usize,
    trailer_len: usize,
}

impl ChunkedDecoder {
    /// A decoder that fails once the body passes `max_body` bytes.
    pub fn new(max_body: usize) -> ChunkedDecoder {
        ChunkedDecoder {
            state: ChunkState::Size,
            max_body,
            max_trailer: MAX_TRAILER,
            body_len: 0,
            trailer_len: 0,
        }
    }

    /// Bounds the trailer section (all its lines, CRLFs included) by `max`
    /// bytes instead of 16 KiB: the client bounds it as it bounds a head.
    pub(crate) fn with_max_trailer(mut self, max: usize) -> ChunkedDecoder {
        self.max_trailer = max;
        self
    }

    /// Whether the last chunk and the trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Body bytes decoded so far.
    pub fn body_len(&self) -> usize {
        self.body_len
    }

    /// What to feed next to make progress; see [`ChunkedWants`].
    pub(crate) fn wants(&self) -> ChunkedWants {
        match self.state {
            ChunkState::Size | ChunkState::Trailer => ChunkedWants::Line,
            ChunkState::Data(left) => ChunkedWants::Bytes(left + 2),
            ChunkState::DataEnd => ChunkedWants::Bytes(2),
            ChunkState::Done => ChunkedWants::Done,
        }
    }

    /// Decodes what it can of `input`, appending body bytes to `out`;
    /// returns how many bytes of `input` it consumed (it stops after the
    /// body's end, so what follows belongs to the next message). An
    /// incomplete line is left unconsumed: pass it again with more.
    ///
    /// # Errors
    /// [`ErrorKind::HttpProtocol`] on bad framing (see the type's rules);
    /// [`ErrorKind::BufferFull`] when the body passes `max_body`. After an
    /// error the decoder is in no useful state: drop the connection.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, Error> {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match self.state {
                ChunkState::Done => return Ok(pos),
                ChunkState::Size => {
                    let Some(nl) = memchr::memchr(b'\n', rest) else {
                        if rest.len() > MAX_CHUNK_LINE + 1 {
                            return Err(protocol_error("chunk-size line too long"));
                        }
                        return Ok(pos);
                    };
                    let line = crlf_line(&rest[..nl], "chunk-size line")?;
                    if line.len() > MAX_CHUNK_LINE {
                        return Err(protocol_error("chunk-size line too long"));
                    }
                    let size = parse_chunk_size_line(line)?;
                    pos += nl + 1;
                    if size == 0 {
                        self.state = ChunkState::Trailer;
                    } else {
                        if self.body_len as u64 + size > self.max_body as u64 {
                            return Err(Error::new(
                                ErrorKind::BufferFull,
                                format!("chunked body larger than {} bytes", self.max_body),
                            ));
                        }
                        self.state = ChunkState::Data(size);
                    }
                }
                ChunkState::Data(left) => {
                    if rest.is_empty() {
                        return Ok(pos);
                    }
                    let take = left.min(rest.len() as u64) as usize;
                    out.extend_from_slice(&rest[..take]);
                    self.body_len += take;
                    pos += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::DataEnd => {
                    if rest.starts_with(b"\r\n") {
                        pos += 2;
                    } else if rest.is_empty() || rest == b"\r" {
                        return Ok(pos);
                    } else {
                        // A bare LF included: the data's length said where
                        // the CRLF is, and anything else there means the
                        // sender and we disagree about the framing.
                        return Err(protocol_error("chunk data not followed by CRLF"));
                    }
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailer => {
                    let Some(nl) = memchr::memchr(b'\n', rest) else {
                        if self.trailer_len + rest.len() > self.max_trailer {
                            return Err(protocol_error("chunked trailer too long"));
                        }
                        return Ok(pos);
                    };
                    self.trailer_len += nl + 1;
                    if self.trailer_len > self.max_trailer {
                        return Err(protocol_error("chunked trailer too long"));
                    }
                    let line = crlf_line(&rest[..nl], "chunked trailer line")?;
                    pos += nl + 1;
                    if line.is_empty() {
                        self.state = ChunkState::Done;
                    } else {
                        check_trailer_line(line)?;
                    }
                }
            }
        }
    }
}

/// A line (without its LF) without its CR; a line not ending in CR had a
/// bare LF, which chunked framing does not accept as a line end.
fn crlf_line<'a>(line: &'a [u8], what: &str) -> Result<&'a [u8], Error> {
    line.strip_suffix(b"\r")
        .ok_or_else(|| protocol_error(format!("{what} ends in a bare LF, not CRLF")))
}

fn bad_chunk_size(line: &[u8]) -> Error {
    protocol_error(format!(
        "bad chunk size line {:?}",
        String::from_utf8_lossy(line)
    ))
}

/// The size on a chunk-size line (CRLF removed): `1*HEXDIG`, then
/// extensions, `*( BWS ";" BWS name [ BWS "=" BWS value ] )` with the BWS
/// before `;` refused (see [`ChunkedDecoder`]).
fn parse_chunk_size_line(line: &[u8]) -> Result<u64, Error> {
    let digits_end = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    if digits_end == 0 {
        return Err(bad_chunk_size(line));
    }
    let mut size = 0u64;
    for d in &line[..digits_end] {
        // Leading zeros are fine; a size of 2^60 or more is not (no body
        // is that large, and below it sums of sizes cannot overflow).
        if size >> 56 != 0 {
            return Err(protocol_error(format!(
                "chunk size {:?} too large",
                String::from_utf8_lossy(&line[..digits_end])
            )));
        }
        size = size << 4 | u64::from(hex(d).expect("a hex digit"));
    }
    let mut rest = &line[digits_end..];
    while !rest.is_empty() {
        // `;`: right after the digits or the previous extension, with no
        // whitespace before it.
        rest = rest
            .strip_prefix(b";")
            .ok_or_else(|| bad_chunk_size(line))?;
        rest = skip_ows(rest);
        let name_len = rest
            .iter()
            .position(|&b| !is_tchar(b))
            .unwrap_or(rest.len());
        if name_len == 0 {
            return Err(bad_chunk_size(line));
        }
        rest = &rest[name_len..];
        let after_name = skip_ows(rest);
        if let Some(value) = after_name.strip_prefix(b"=") {
            let value = skip_ows(value);
            let value_len = if value.first() == Some(&b'"') {
                quoted_string_len(value).ok_or_else(|| bad_chunk_size(line))?
            } else {
                value
                    .iter()
                    .position(|&b| !is_tchar(b))
                    .unwrap_or(value.len())
            };
            if value_len == 0 {
                return Err(bad_chunk_size(line));
            }
            rest = &value[value_len..];
        }
        // Whatever is left must start the next extension: whitespace after
        // a name (not followed by `=`) or a value is whitespace before `;`
        // or at the end of the line, and refused.
    }
    Ok(size)
}

fn skip_ows(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    &s[n..]
}

/// The length of the quoted string `s` starts with (quotes included), or
/// `None` if it is not one (RFC 9110 5.6.4).
fn quoted_string_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    loop {
        match *s.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => match *s.get(i + 1)? {
                b'\t' | b' '..=b'~' | 0x80..=0xff => i += 2,
                _ => return None,
            },
            b'\t' | b' ' | b'!' | b'#'..=b'[' | b']'..=b'~' | 0x80..=0xff => i += 1,
            _ => return None,
        }
    }
}

/// A trailer field line (CRLF removed): `name: value`, as a header line.
fn check_trailer_line(line: &[u8]) -> Result<(), Error> {
    let bad = || {
        protocol_error(format!(
            "bad chunked trailer line {:?}",
            String::from_utf8_lossy(line)
        ))
    };
    let colon = memchr::memchr(b':', line).ok_or_else(bad)?;
    // No name: a leading space would be an obsolete line folding.
    if !is_token(&line[..colon]) {
        return Err(bad());
    }
    let value_ok = line[colon + 1..]
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80);
    if !value_ok {
        return Err(bad());
    }
    Ok(())
}

// ----- dates -----------------------------------------------------------------

/// Formats a time as an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`);
/// Tornado's `format_timestamp`.
pub fn format_timestamp(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut buf = [0u8; 29];
    write_http_date(secs, &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

pub(crate) fn write_http_date(secs: u64, out: &mut [u8; 29]) {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86400;
    let rem = secs % 86400;
    let (hh, mm, ss) = (rem / 3600, rem / 60 % 60, rem % 60);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let two = |n: u64| [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    out[3..5].copy_from_slice(b", ");
    out[5..7].copy_from_slice(&two(d as u64));
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTHS[(m - 1) as usize]);
    out[11] = b' ';
    let y = y as u64;
    out[12..14].copy_from_slice(&two(y / 100));
    out[14..16].copy_from_slice(&two(y));
    out[16] = b' ';
    out[17..19].copy_from_slice(&two(hh));
    out[19] = b':';
    out[20..22].copy_from_slice(&two(mm));
    out[22] = b':';
    out[23..25].copy_from_slice(&two(ss));
    out[25..29].copy_from_slice(b" GMT");
}

/// The current HTTP date, formatted at most once per second per thread: the
/// `Date` header of every response costs a clock read and a copy.
///
/// ```
/// let mut out = Vec::new();
/// squall::httputil::HttpDate::write_now(&mut out);
/// assert_eq!(out.len(), 29);
/// assert!(out.ends_with(b" GMT"));
/// ```
pub struct HttpDate {
    secs: u64,
    text: [u8; 29],
}

thread_local! {
    static DATE: RefCell<HttpDate> = const { RefCell::new(HttpDate { secs: u64::MAX, text: [0; 29] }) };
}

impl HttpDate {
    /// Appends the current date (29 bytes) to `out`.
    pub fn write_now(out: &mut Vec<u8>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        DATE.with(|cell| {
            let mut date = cell.borrow_mut();
            if date.secs != now {
                date.secs = now;
                write_http_date(now, &mut date.text);
            }
            out.extend_from_slice(&date.text);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(format_timestamp(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            format_timestamp(UNIX_EPOCH),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // leap day 2000
        assert_eq!(format_timestamp(t), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn unescape() {
        assert_eq!(url_unescape("a%20b+c", true), "a b c");
        assert_eq!(url_unescape("a%20b+c", false), "a b+c");
        assert_eq!(url_unescape("100%", true), "100%");
        assert_eq!(url_unescape("%zz%4", true), "%zz%4");
        assert_eq!(url_unescape("%ff", true), "\u{fffd}");
        assert_eq!(url_escape("a b/é", true), "a+b%2F%C3%A9");
        assert_eq!(
            url_unescape(&url_escape("x y&z=é", false), false),
            "x y&z=é"
        );
    }

    #[test]
    fn qs() {
        let q = parse_qs_bytes("a=1&b=&c&a=%32;d=x+y");
        assert_eq!(q["a"], ["1", "2"]);
        assert_eq!(q["b"], [""]);
        assert_eq!(q["c"], [""]);
        assert_eq!(q["d"], ["x y"]);
    }

    #[test]
    fn headers() {
        let mut h = HTTPHeaders::parse("A: 1\r\nB: 2\r\n  more\r\na: 3\r\n").unwrap();
        assert_eq!(h.get("b"), Some("2 more"));
        assert_eq!(h.get_list("A"), ["1", "3"]);
        h.set("A", "x");
        assert_eq!(h.iter().collect::<Vec<_>>(), [("A", "x"), ("B", "2 more")]);
        assert!(HTTPHeaders::parse(" bad").is_err());
        assert!(HTTPHeaders::parse("no colon").is_err());
        assert!(h.remove("a"));
        assert!(!h.contains("A"));
        assert!(has_token("keep-alive, Upgrade", "upgrade"));
    }

    #[test]
    fn chunked_byte_by_byte_and_errors() {
        let input = b"3\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n";
        let mut d = ChunkedDecoder::new(100);
        let mut body = Vec::new();
        let mut buf = Vec::new();
        for &b in input.iter() {
            buf.push(b);
            let used = d.decode(&buf, &mut body).unwrap();
            buf.drain(..used);
        }
        assert!(d.is_done());
        assert!(buf.is_empty());
        assert_eq!(body, b"abc0123456789");

        let mut d = ChunkedDecoder::new(5);
        let err = d.decode(b"6\r\n", &mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BufferFull);
        let mut d = ChunkedDecoder::new(100);
        assert!(d.decode(&[b'1'; 5000], &mut Vec::new()).is_err());
    }

    /// Decodes `input` whole and byte by byte; both must agree.
    fn chunked(input: &[u8]) -> Result<(Vec<u8>, usize, bool), Error> {
        let mut d = ChunkedDecoder::new(1 << 20);
        let mut body = Vec::new();
        let whole = d
            .decode(input, &mut body)
            .map(|used| (body, used, d.is_done()));
        let mut d = ChunkedDecoder::new(1 << 20);
        let (mut body, mut buf, mut used) = (Vec::new(), Vec::new(), 0);
        let mut bytewise = Ok(());
        for &b in input {
            buf.push(b);
            match d.decode(&buf, &mut body) {
                Ok(n) => {
                    buf.drain(..n);
                    used += n;
                }
                Err(e) => {
                    bytewise = Err(e);
                    break;
                }
            }
            if d.is_done() {
                break;
            }
        }
        match (&whole, bytewise) {
            (Ok((b, u, done)), Ok(())) => {
                assert_eq!((b, *done), (&body, d.is_done()), "{input:?}");
                if *done {
                    assert_eq!(*u, used, "{input:?}");
                }
            }
            (Err(w), Err(p)) => assert_eq!(w.kind(), p.kind(), "{input:?}"),
            (w, p) => panic!("whole {w:?} vs bytewise {p:?} for {input:?}"),
        }
        whole
    }

    #[test]
    fn chunked_accepts_what_rfc_9112_allows() {
        let good: &[(&[u8], &[u8])] = &[
            (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5;ext=1\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5;ext=\"q\"\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5;ext=\"a;b \\\"c\\\"\"\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5;a;b=2;c=\"\"\r\nhello\r\n0\r\n\r\n", b"hello"),
            // RFC 9112 BWS after `;` and around `=` (not before `;`).
            (b"5; a = 1;\tb=\"x\"\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"0005\r\nhello\r\n0000\r\n\r\n", b"hello"),
            (
                b"a\r\n0123456789\r\nA\r\n0123456789\r\n0\r\n\r\n",
                b"01234567890123456789",
            ),
            (b"0\r\n\r\n", b""),
            (b"0;last\r\n\r\n", b""),
            (b"2\r\nok\r\n0\r\nX-Trailer: t\r\nY:\r\n\r\n", b"ok"),
            (b"2\r\nok\r\n0\r\nX: a\tb \xe9\r\n\r\n", b"ok"),
            (b"2\r\n\r\n\r\n0\r\n\r\n", b"\r\n"),
            (b"2\r\n\n\n\r\n0\r\n\r\n", b"\n\n"),
        ];
        for &(input, body) in good {
            let (got, used, done) = chunked(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(
                (got.as_slice(), used, done),
                (body, input.len(), true),
                "{input:?}"
            );
        }
        // What follows the body is not consumed.
        let (_, used, _) = chunked(b"0\r\n\r\nGET / HTTP/1.1\r\n").unwrap();
        assert_eq!(used, 5);
    }

    #[test]
    fn chunked_refuses_lax_framing() {
        let bad: &[&[u8]] = &[
            // Whitespace around the size, a sign, a prefix, no digits.
            b" 5 \r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"5\t\r\nhello\r\n0\r\n\r\n",
            b"5 ;ext=1\r\nhello\r\n0\r\n\r\n",
            b"5\t;ext=1\r\nhello\r\n0\r\n\r\n",
            b"5;a=1 ;b\r\nhello\r\n0\r\n\r\n",
            b"5;a=1 \r\nhello\r\n0\r\n\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"\r\nhello\r\n0\r\n\r\n",
            b";a\r\nhello\r\n0\r\n\r\n",
            b"zz\r\n",
            b"5_0\r\n",
            b"\xef\xbc\x95\r\nhello\r\n",
            // Bad extensions.
            b"5;\r\nhello\r\n0\r\n\r\n",
            b"5;=1\r\nhello\r\n0\r\n\r\n",
            b"5;a=\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"open\r\nhello\r\n0\r\n\r\n",
            b"5;a=b c\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"x\"y\r\nhello\r\n0\r\n\r\n",
            b"5;a\x00\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n",
            b"5\r\r\nhello\r\n0\r\n\r\n",
            // Bare LF anywhere in the framing.
            b"5\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5;a=1\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhello\r\n0\n\r\n",
            b"5\r\nhello\r\n0\r\n\n",
            b"5\r\nhello\r\n0\r\nX: 1\n\r\n",
            b"5\r\nhello\r\n0\r\nX: 1\r\n\n",
            b"3\nabc\n0\n\n",
            // Chunk data not followed by CRLF (too long, or too short).
            b"3\r\nabcX",
            b"3\r\nabcd\r\n0\r\n\r\n",
            b"5\r\nhi\r\n0\r\n\r\n",
            b"5\r\nhello\rX",
            // Bad trailers: no colon, bad name, folding, controls.
            b"0\r\nno colon\r\n\r\n",
            b"0\r\n: v\r\n\r\n",
            b"0\r\nX Y: v\r\n\r\n",
            b"0\r\nX: 1\r\n folded\r\n\r\n",
            b"0\r\nX: a\rb\r\n\r\n",
            b"0\r\nX: a\x00b\r\n\r\n",
            // Sizes past 2^60.
            b"fffffffffffffffff\r\n",
            b"1000000000000000\r\n",
        ];
        for &input in bad {
            let err = chunked(input).expect_err(&format!("{:?}", String::from_utf8_lossy(input)));
            assert_eq!(err.kind(), ErrorKind::HttpProtocol, "{input:?}: {err}");
        }
        // Leading zeros do not count towards the overflow bound.
        assert!(chunked(b"00000000000000000000000000001\r\nx\r\n0\r\n\r\n").is_ok());
        assert_eq!(
            parse_chunk_size_line(b"fffffffffffffff").unwrap(),
            (1 << 60) - 1
        );
    }

    #[test]
    fn chunked_limits() {
        // Line length: a size line of 4096 bytes is fine, one more is not,
        // whether or not its LF has come.
        let mut ok_line = b"1;".to_vec();
        ok_line.resize(MAX_CHUNK_LINE, b'a');
        ok_line.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        assert!(chunked(&ok_line).is_ok());
        let mut long = b"1;".to_vec();
        long.resize(MAX_CHUNK_LINE + 1, b'a');
        let mut with_end = long.clone();
        with_end.extend_from_slice(b"\r\n");
        assert_eq!(
            chunked(&with_end).unwrap_err().kind(),
            ErrorKind::HttpProtocol
        );
        long.extend_from_slice(b"aa");
        assert_eq!(chunked(&long).unwrap_err().kind(), ErrorKind::HttpProtocol);
        // Trailer size, with the default and a smaller bound.
        let mut big = b"0\r\n".to_vec();
        for i in 0..2000 {
            big.extend_from_slice(format!("X-{i}: vvvvv\r\n").as_bytes());
        }
        assert_eq!(chunked(&big).unwrap_err().kind(), ErrorKind::HttpProtocol);
        let mut d = ChunkedDecoder::new(100).with_max_trailer(10);
        let err = d
            .decode(b"0\r\nX-Long: 1\r\n\r\n", &mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::HttpProtocol);
        // The body bound counts every chunk.
        let mut d = ChunkedDecoder::new(6);
        let err = d.decode(b"3\r\nabc\r\n4\r\n", &mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BufferFull);
        let mut d = ChunkedDecoder::new(6);
        d.decode(b"3\r\nabc\r\n3\r\nabc\r\n0\r\n\r\n", &mut Vec::new())
            .unwrap();
        assert!(d.is_done());
    }

    #[test]
    fn chunked_wants_the_next_piece() {
        let mut d = ChunkedDecoder::new(100);
        let mut body = Vec::new();
        assert_eq!(d.wants(), ChunkedWants::Line);
        assert_eq!(d.decode(b"5\r\n", &mut body).unwrap(), 3);
        assert_eq!(d.wants(), ChunkedWants::Bytes(7));
        assert_eq!(d.decode(b"hel", &mut body).unwrap(), 3);
        assert_eq!(d.wants(), ChunkedWants::Bytes(4));
        assert_eq!(d.decode(b"lo", &mut body).unwrap(), 2);
        assert_eq!(d.wants(), ChunkedWants::Bytes(2));
        assert_eq!(d.decode(b"\r\n", &mut body).unwrap(), 2);
        assert_eq!(d.decode(b"0\r\n", &mut body).unwrap(), 3);
        assert_eq!(d.wants(), ChunkedWants::Line);
        assert_eq!(d.decode(b"\r\n", &mut body).unwrap(), 2);
        assert_eq!(d.wants(), ChunkedWants::Done);
        assert_eq!(body, b"hello");
    }

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
