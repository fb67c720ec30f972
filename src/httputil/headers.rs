//! Header fields: `HTTPHeaders`.

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

use super::protocol_error;
use crate::error::Error;

// ----- headers ---------------------------------------------------------------

/// Where a field is in `HTTPHeaders::text`: (name start, name end, value
/// start, value end), in bytes.
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
///
/// A value may hold bytes that are not UTF-8 (obs-text, RFC 9110 5.5, such
/// as a Latin-1 `José`): a request with one is served, and
/// [`get_bytes`](HTTPHeaders::get_bytes) gives the bytes as they came, while
/// [`get`](HTTPHeaders::get) gives the text, with each byte that is not
/// part of UTF-8 decoded as Latin-1, as Tornado decodes.
#[derive(Clone, Default)]
pub struct HTTPHeaders {
    /// The names and values: one allocation for the whole block. A server
    /// copies a request's head in here once, as it came (request line,
    /// separators and all), as bytes, and the fields point into it. Nothing
    /// checks it is UTF-8 then: a range is checked when it is asked for as
    /// text (most of a head never is), so a request's head costs one copy
    /// and no pass over it. Fields added as `&str` (a response's) keep it
    /// a `String`, whose ranges need no check.
    text: Text,
    fields: Vec<Field>,
    /// `text` decoded (see [`Decoded`]), made the first time a range that
    /// is not UTF-8 is asked for as text: never, for almost every head.
    /// Reset with the text; text appended later is UTF-8 and never needs it.
    decoded: OnceLock<Box<Decoded>>,
}

/// `HTTPHeaders`' storage: text known to be UTF-8 (every field was added
/// as `&str`), or bytes as they came (a request head).
#[derive(Clone)]
enum Text {
    Str(String),
    Bytes(Vec<u8>),
}

impl Default for Text {
    fn default() -> Text {
        Text::Str(String::new())
    }
}

impl Text {
    #[inline]
    fn bytes(&self) -> &[u8] {
        match self {
            Text::Str(s) => s.as_bytes(),
            Text::Bytes(b) => b,
        }
    }

    #[inline]
    fn push_str(&mut self, text: &str) {
        match self {
            Text::Str(s) => s.push_str(text),
            Text::Bytes(b) => b.extend_from_slice(text.as_bytes()),
        }
    }

    fn capacity(&self) -> usize {
        match self {
            Text::Str(s) => s.capacity(),
            Text::Bytes(b) => b.capacity(),
        }
    }

    /// Emptied, as text (keeping the memory): no check, as empty bytes
    /// are UTF-8.
    #[inline]
    fn clear(&mut self) {
        match self {
            Text::Str(s) => s.clear(),
            Text::Bytes(b) => {
                let mut b = std::mem::take(b);
                b.clear();
                *self = Text::Str(String::from_utf8(b).unwrap_or_default());
            }
        }
    }

    /// Replaced by `block`, as bytes (keeping the memory).
    #[inline]
    fn set_bytes(&mut self, block: &[u8]) {
        match self {
            Text::Bytes(b) => {
                b.clear();
                b.extend_from_slice(block);
            }
            Text::Str(s) => {
                let mut b = std::mem::take(s).into_bytes();
                b.clear();
                b.extend_from_slice(block);
                *self = Text::Bytes(b);
            }
        }
    }
}

/// A head with bytes that are not UTF-8, as text: each such byte decoded as
/// Latin-1, and where each byte offset of the head (and its end) is in the
/// text.
#[derive(Clone)]
struct Decoded {
    text: String,
    map: Vec<u32>,
}

impl HTTPHeaders {
    /// No fields.
    pub fn new() -> HTTPHeaders {
        HTTPHeaders::default()
    }

    /// No fields, with room for `n`.
    pub fn with_capacity(n: usize) -> HTTPHeaders {
        HTTPHeaders {
            text: Text::Str(String::with_capacity(n * 32)),
            fields: Vec::with_capacity(n),
            decoded: OnceLock::new(),
        }
    }

    /// Parses a header block (`Name: value` lines, CRLF or LF, ending with or
    /// without a blank line). Continuation lines (leading whitespace) are
    /// folded into the previous value, as Tornado does.
    ///
    /// # Errors
    /// [`ErrorKind::HttpProtocol`](crate::ErrorKind::HttpProtocol) on a line without a colon, or a
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
            let name = self.text_at(ns, ne).to_owned();
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
        self.text_at(ns, ne)
    }

    fn value_at(&self, i: usize) -> &str {
        let (_, _, vs, ve) = self.fields[i];
        self.text_at(vs, ve)
    }

    /// Whether field `i`'s name is `name`, case-insensitively: compared as
    /// bytes, no text made (every lookup runs this over the fields).
    #[inline]
    fn name_is(&self, i: usize, name: &str) -> bool {
        let (ns, ne, _, _) = self.fields[i];
        self.text.bytes()[ns as usize..ne as usize].eq_ignore_ascii_case(name.as_bytes())
    }

    /// The index of the first field named `name`.
    #[inline]
    fn find(&self, name: &str) -> Option<usize> {
        (0..self.fields.len()).find(|&i| self.name_is(i, name))
    }

    /// The bytes `s..e` as text: a slice of text added as `&str`; else as
    /// they are if they are UTF-8 (a check over just these bytes, the
    /// usual case), else decoded (see [`Decoded`]).
    #[inline]
    fn text_at(&self, s: u32, e: u32) -> &str {
        let (s, e) = (s as usize, e as usize);
        match &self.text {
            // (At char boundaries: pushed as whole `&str`s.)
            Text::Str(text) => text.get(s..e).unwrap_or_default(),
            Text::Bytes(bytes) => match std::str::from_utf8(&bytes[s..e]) {
                Ok(text) => text,
                Err(_) => self.decoded_at(s, e),
            },
        }
    }

    /// `text_at` for bytes that are not UTF-8: out of line, as rare as
    /// such a head is. Ranges lie next to ASCII bytes (a value's ends, a
    /// request target's), so they map to char boundaries of the text.
    #[cold]
    #[inline(never)]
    fn decoded_at(&self, s: usize, e: usize) -> &str {
        let decoded = self.decoded.get_or_init(|| {
            let (text, map) = decode_obs_text(self.text.bytes());
            Box::new(Decoded { text, map })
        });
        let at = |x: usize| decoded.map.get(x).map_or(0, |&m| m as usize);
        decoded.text.get(at(s)..at(e)).unwrap_or_default()
    }

    /// The bytes in `range` as text (a request's target): see `text_at`.
    /// `None` if the range is not within the text.
    pub(crate) fn text(&self, range: std::ops::Range<usize>) -> Option<&str> {
        if range.start > range.end || range.end > self.text.bytes().len() {
            return None;
        }
        Some(self.text_at(range.start as u32, range.end as u32))
    }

    /// Appends a field (a name may repeat).
    pub fn add(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        self.push(name.as_ref(), value.as_ref());
    }

    /// Starts over with `block` as the text, and no fields yet: a request
    /// head, copied in one piece, as bytes (no UTF-8 check: see `text`);
    /// [`push_within`](Self::push_within) then names its fields.
    #[inline]
    pub(crate) fn reset_to_block(&mut self, block: &[u8]) {
        self.text.set_bytes(block);
        self.fields.clear();
        self.forget_decoded();
    }

    /// The first value of `name` as the bytes that came. For a value that
    /// is not UTF-8 (obs-text, RFC 9110 5.5), [`get`](Self::get) gives it
    /// decoded, each byte that is not part of UTF-8 as Latin-1, as Tornado
    /// does; these are the bytes themselves.
    ///
    /// ```
    /// use squall::httputil::HTTPHeaders;
    ///
    /// let mut h = HTTPHeaders::new();
    /// h.add("X-Name", "José");
    /// assert_eq!(h.get_bytes("x-name"), Some("José".as_bytes()));
    /// ```
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        let (_, _, vs, ve) = self.fields[self.find(name)?];
        Some(&self.text.bytes()[vs as usize..ve as usize])
    }

    /// The bytes (for a request, its whole head, as it came).
    pub(crate) fn block(&self) -> &[u8] {
        self.text.bytes()
    }

    /// Adds a field whose name and value are already in the text, at these
    /// byte ranges. They need not lie at char boundaries of UTF-8 text:
    /// a range is checked when asked for as text. Ranges from `httparse`
    /// lie next to ASCII bytes (a name is ASCII, a value starts after `:`
    /// or a blank and ends before a blank or CR), so a decoded head's text
    /// has them at char boundaries.
    #[inline]
    pub(crate) fn push_within(
        &mut self,
        name: std::ops::Range<usize>,
        value: std::ops::Range<usize>,
    ) {
        debug_assert!(matches!(self.text, Text::Bytes(_)));
        debug_assert!(name.end.max(value.end) <= self.text.bytes().len());
        self.fields.push((
            name.start as u32,
            name.end as u32,
            value.start as u32,
            value.end as u32,
        ));
    }

    /// Appends a field's name and value to the text. (UTF-8: a `decoded`
    /// text made earlier still covers every range before them.)
    #[inline]
    pub(crate) fn push(&mut self, name: &str, value: &str) {
        let ns = self.text.bytes().len() as u32;
        self.text.push_str(name);
        let ne = self.text.bytes().len() as u32;
        self.text.push_str(value);
        self.fields
            .push((ns, ne, ne, self.text.bytes().len() as u32));
    }

    /// Replaces every field named `name` with one, where the first was.
    pub fn set(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        let name = name.as_ref();
        match self.find(name) {
            Some(i) => {
                self.push(name, value.as_ref());
                let last = self.fields.pop().expect("just pushed");
                self.fields[i] = last;
                let mut j = i + 1;
                while j < self.fields.len() {
                    if self.name_is(j, name) {
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
        self.find(name).map(|i| self.value_at(i))
    }

    /// Every value of `name`, in order.
    pub fn get_list(&self, name: &str) -> Vec<&str> {
        (0..self.fields.len())
            .filter(|&i| self.name_is(i, name))
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
        let before = self.fields.len();
        let text = self.text.bytes();
        self.fields.retain(|&(ns, ne, _, _)| {
            !text[ns as usize..ne as usize].eq_ignore_ascii_case(name.as_bytes())
        });
        if self.fields.is_empty() {
            self.clear();
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
        self.forget_decoded();
    }

    /// Lets a decoded copy of the old text go. (A test, not a store, for
    /// the usual head, which never made one.)
    #[inline]
    fn forget_decoded(&mut self) {
        if self.decoded.get().is_some() {
            self.decoded = OnceLock::new();
        }
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

    /// Appends the fields as `Name: value\r\n` lines to `out`, as bytes
    /// (a value that came as obs-text goes out as it came).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let text = self.text.bytes();
        for &(ns, ne, vs, ve) in &self.fields {
            out.extend_from_slice(&text[ns as usize..ne as usize]);
            out.extend_from_slice(b": ");
            out.extend_from_slice(&text[vs as usize..ve as usize]);
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

/// `bytes` as text: as they are if they are UTF-8, else with each byte
/// that is not part of UTF-8 decoded as Latin-1 (as Tornado decodes
/// obs-text).
pub(crate) fn obs_text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => Cow::Owned(decode_obs_text(bytes).0),
    }
}

/// `bytes` as text, with each byte that is not part of UTF-8 decoded as
/// Latin-1; and for each offset in `bytes` (and its end), the offset in the
/// text.
fn decode_obs_text(bytes: &[u8]) -> (String, Vec<u32>) {
    let mut text = String::with_capacity(bytes.len() + 16);
    let mut map = Vec::with_capacity(bytes.len() + 1);
    let mut rest = bytes;
    while !rest.is_empty() {
        let (valid, bad) = match std::str::from_utf8(rest) {
            Ok(all) => (all, 0),
            Err(e) => {
                let valid = std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap_or_default();
                (valid, e.error_len().unwrap_or(rest.len() - e.valid_up_to()))
            }
        };
        for (i, _) in valid.bytes().enumerate() {
            map.push((text.len() + i) as u32);
        }
        text.push_str(valid);
        for &b in &rest[valid.len()..valid.len() + bad] {
            map.push(text.len() as u32);
            text.push(char::from(b));
        }
        rest = &rest[valid.len() + bad..];
    }
    map.push(text.len() as u32);
    (text, map)
}

/// Whether a comma-separated header value (`Connection`, `Transfer-Encoding`)
/// lists `token`, case-insensitively.
pub fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| trim_ows(t).eq_ignore_ascii_case(token))
}

/// Spaces and tabs off both ends: a field value's optional white space
/// (RFC 9110 5.6.3). Not `str::trim`, which also takes Unicode spaces such
/// as U+00A0 and U+0085, which an obs-text byte (0xA0, 0x85) decodes to as
/// Latin-1: `chunked` and a 0xA0 must not read as `chunked` (a proxy in
/// front may not think so: request smuggling).
pub(crate) fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A head kept as bytes: each value is text when it is UTF-8, else
    /// decoded as Latin-1 (only then is a decoded copy made), and the
    /// bytes stay as they came, for `get_bytes` and on the wire.
    #[test]
    fn a_head_of_bytes_gives_text_lazily() {
        let head =
            b"GET /a HTTP/1.1\r\nX-Utf8: Jos\xc3\xa9\r\nX-Latin: Jos\xe9\r\nX-Cut: a\xc3\r\n\r\n";
        let mut h = HTTPHeaders::new();
        h.reset_to_block(head);
        let find = |needle: &[u8]| {
            head.windows(needle.len())
                .position(|w| w == needle)
                .unwrap()
        };
        for (name, value) in [
            (&b"X-Utf8"[..], &b"Jos\xc3\xa9"[..]),
            (b"X-Latin", b"Jos\xe9"),
            (b"X-Cut", b"a\xc3"),
        ] {
            let (n, v) = (find(name), find(value));
            h.push_within(n..n + name.len(), v..v + value.len());
        }
        assert!(h.decoded.get().is_none());
        assert_eq!(h.get("x-utf8"), Some("José"));
        assert!(h.decoded.get().is_none(), "UTF-8 needs no decoded copy");
        assert_eq!(h.get("x-latin"), Some("José"));
        assert_eq!(h.get("x-cut"), Some("aÃ"));
        assert_eq!(h.get_bytes("X-Latin"), Some(&b"Jos\xe9"[..]));
        assert_eq!(h.get_bytes("x-cut"), Some(&b"a\xc3"[..]));
        assert_eq!(h.text(4..6), Some("/a"));
        assert_eq!(h.text(4..head.len() + 1), None);
        let mut out = Vec::new();
        h.write_to(&mut out);
        assert_eq!(
            out,
            b"X-Utf8: Jos\xc3\xa9\r\nX-Latin: Jos\xe9\r\nX-Cut: a\xc3\r\n"
        );
        // Text added later is UTF-8, after the decoded copy's end.
        h.add("X-New", "é");
        assert_eq!(
            h.iter().map(|(_, v)| v).collect::<Vec<_>>(),
            ["José", "José", "aÃ", "é"]
        );
        assert_eq!(h.get_list("X-LATIN"), ["José"]);
        // A new head lets the decoded copy go.
        h.reset_to_block(b"A: b");
        assert!(h.decoded.get().is_none());
        assert!(h.is_empty());
        assert_eq!(obs_text(b"caf\xe9"), "café");
        assert!(matches!(obs_text(b"plain"), Cow::Borrowed("plain")));
    }
}
