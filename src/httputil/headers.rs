//! Header fields: `HTTPHeaders`.

use std::fmt;

use super::protocol_error;
use crate::error::Error;

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
}
