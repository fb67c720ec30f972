//! `Range` requests (RFC 9110 14): Tornado's `_parse_request_range` and
//! `_get_content_range`.
//!
//! ```
//! use squall::httputil::{content_range, parse_request_range, ByteRange};
//!
//! let range = parse_request_range("bytes=1-2").unwrap();
//! assert_eq!(range, ByteRange::From { start: 1, end: Some(3) });
//! // Resolved against a 4-byte body: bytes 1 and 2, half-open.
//! assert_eq!(range.resolve(4), Some((1, 3)));
//! assert_eq!(content_range(1, 3, 4), "bytes 1-2/4");
//! // The last 6 bytes of a 4-byte body: all of it.
//! assert_eq!(parse_request_range("bytes=-6").unwrap().resolve(4), Some((0, 4)));
//! // Past the end: unsatisfiable (416).
//! assert_eq!(parse_request_range("bytes=4-").unwrap().resolve(4), None);
//! // Not a single byte range: no range at all (the whole body, 200).
//! assert_eq!(parse_request_range("bytes=1-2,6-10"), None);
//! ```

use super::headers::trim_ows;

/// One byte range a `Range` header asks for, as Tornado's
/// `_parse_request_range` reads it; ends are exclusive (slice indexes),
/// where the header's are inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b` (`end: Some(b + 1)`) or `bytes=a-` (`end: None`: to the
    /// end). `bytes=5-3` is kept as `start: 5, end: Some(4)`: Tornado
    /// answers it 416.
    From {
        /// The first byte.
        start: u64,
        /// One past the last byte; `None`: the end of the body.
        end: Option<u64>,
    },
    /// `bytes=-n`: the last `n` bytes (`n == 0` is unsatisfiable).
    Suffix(u64),
    /// `bytes=` or `bytes=-`: a range with neither end, which Tornado
    /// takes as the whole body.
    All,
}

/// Parses a `Range` header (Tornado's `httputil._parse_request_range`):
/// `None` if it is not one `bytes` range (`bytes=26`, with no dash, is
/// `bytes=26-`, as Tornado reads it), and then, as RFC 9110 14.2 says,
/// the header is ignored and the whole body sent. Several ranges
/// (`bytes=0-1,5-6`) are `None` too, as in Tornado: squall does not send
/// `multipart/byteranges`.
///
/// Stricter than Tornado's (which takes anything Python's `int` does):
/// positions are ASCII digits, optionally surrounded by spaces or tabs. A
/// position too large for a `u64` saturates (it is past any body, so
/// unsatisfiable, as in Tornado).
pub fn parse_request_range(header: &str) -> Option<ByteRange> {
    let (unit, value) = header.split_once('=')?;
    if trim_ows(unit) != "bytes" {
        return None;
    }
    // Tornado's `partition("-")`: no dash reads `bytes=26` as `bytes=26-`.
    let value = trim_ows(value);
    let (start, end) = value.split_once('-').unwrap_or((value, ""));
    let start = position(start)?;
    let end = position(end)?;
    Some(match (start, end) {
        (Some(start), end) => ByteRange::From {
            start,
            end: end.map(|e| e.saturating_add(1)),
        },
        (None, Some(n)) => ByteRange::Suffix(n),
        (None, None) => ByteRange::All,
    })
}

/// A byte position: `Some(None)` if empty, `None` if not digits.
fn position(s: &str) -> Option<Option<u64>> {
    let s = trim_ows(s);
    if s.is_empty() {
        return Some(None);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = s.bytes().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    Some(Some(n))
}

impl ByteRange {
    /// The half-open span `(start, end)` of a body of `size` bytes this
    /// range selects, as Tornado's `StaticFileHandler.get` works it out: a
    /// suffix longer than the body is the whole body, an end past the
    /// body is cut to it. `None` if unsatisfiable (answer 416 with
    /// `Content-Range: bytes */size`): the first byte is at or past the
    /// end, the last comes before the first, or the suffix is empty.
    ///
    /// A span that is the whole body should be answered 200, not 206, as
    /// Tornado does (some clients ask `bytes=0-` and expect a 200).
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        match self {
            ByteRange::All => Some((0, size)),
            // Tornado: the start is `size - n`, at least 0, and must be
            // before the end, so an empty body satisfies no suffix.
            ByteRange::Suffix(0) => None,
            ByteRange::Suffix(_) if size == 0 => None,
            ByteRange::Suffix(n) => Some((size.saturating_sub(n), size)),
            ByteRange::From { start, end } => {
                if start >= size || end.is_some_and(|e| start >= e) {
                    return None;
                }
                Some((start, end.map_or(size, |e| e.min(size))))
            }
        }
    }
}

/// The `Content-Range` value of a 206 answer for the half-open span
/// `start..end` of a body of `total` bytes (Tornado's
/// `httputil._get_content_range`): `bytes 1-2/4`.
///
/// An empty span (`end <= start`) has no last byte: its value is Tornado's
/// `bytes start-(end-1)/total` with the end taken as `start`; callers send
/// 416 instead (see [`ByteRange::resolve`]).
pub fn content_range(start: u64, end: u64, total: u64) -> String {
    let last = end.max(start.saturating_add(1)) - 1;
    format!("bytes {start}-{last}/{total}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(start: u64, end: Option<u64>) -> ByteRange {
        ByteRange::From { start, end }
    }

    /// Tornado's doctests of `_parse_request_range`, and more.
    #[test]
    fn parse() {
        let cases: &[(&str, Option<ByteRange>)] = &[
            ("bytes=1-2", Some(from(1, Some(3)))),
            ("bytes=6-", Some(from(6, None))),
            ("bytes=-6", Some(ByteRange::Suffix(6))),
            ("bytes=-0", Some(ByteRange::Suffix(0))),
            ("bytes=", Some(ByteRange::All)),
            ("bytes=-", Some(ByteRange::All)),
            ("bytes=0-0", Some(from(0, Some(1)))),
            (" bytes = 1 - 2 ", Some(from(1, Some(3)))),
            ("bytes=\t3-\t", Some(from(3, None))),
            ("bytes=5-3", Some(from(5, Some(4)))),
            ("bytes=99999999999999999999999-", Some(from(u64::MAX, None))),
            (
                "bytes=0-18446744073709551615",
                Some(from(0, Some(u64::MAX))),
            ),
            ("foo=42", None),
            ("Bytes=1-2", None),
            ("bytes 1-2", None),
            ("bytes=1-2,6-10", None),
            ("bytes=1", Some(from(1, None))),
            ("bytes=a-b", None),
            ("bytes=+1-2", None),
            ("bytes=1-+2", None),
            ("bytes=--5", None),
            ("bytes=1-2-3", None),
            ("bytes=1_0-", None),
            ("bytes=0x10-", None),
            ("bytes=１-2", None),
            ("", None),
            ("=", None),
        ];
        for &(header, want) in cases {
            assert_eq!(parse_request_range(header), want, "{header:?}");
        }
    }

    /// The cases of Tornado's `StaticFileTest` ranges, on its 26-byte
    /// robots.txt, and its 416 rules.
    #[test]
    fn resolve() {
        let size = 26;
        let span = |h: &str| parse_request_range(h).unwrap().resolve(size);
        assert_eq!(span("bytes=0-9"), Some((0, 10)));
        assert_eq!(span("bytes=0-"), Some((0, 26))); // the whole: a 200
        assert_eq!(span("bytes=0-10000"), Some((0, 26)));
        assert_eq!(span("bytes=25-"), Some((25, 26)));
        assert_eq!(span("bytes=-1"), Some((25, 26)));
        assert_eq!(span("bytes=-4"), Some((22, 26)));
        assert_eq!(span("bytes=-26"), Some((0, 26)));
        assert_eq!(span("bytes=-10000"), Some((0, 26)));
        assert_eq!(span("bytes=10-19"), Some((10, 20)));
        assert_eq!(span("bytes="), Some((0, 26)));
        assert_eq!(span("bytes=26-"), None);
        assert_eq!(span("bytes=26-100"), None);
        assert_eq!(span("bytes=-0"), None);
        assert_eq!(span("bytes=5-3"), None);
        assert_eq!(span("bytes=99999999999999999999999-"), None);
        // An empty body satisfies no range but the empty one.
        assert_eq!(parse_request_range("bytes=0-").unwrap().resolve(0), None);
        assert_eq!(parse_request_range("bytes=-5").unwrap().resolve(0), None);
        assert_eq!(
            parse_request_range("bytes=").unwrap().resolve(0),
            Some((0, 0))
        );
    }

    /// Tornado's doctests of `_get_content_range`.
    #[test]
    fn content_ranges() {
        assert_eq!(content_range(0, 1, 4), "bytes 0-0/4");
        assert_eq!(content_range(1, 3, 4), "bytes 1-2/4");
        assert_eq!(content_range(0, 4, 4), "bytes 0-3/4");
        assert_eq!(content_range(5, 5, 4), "bytes 5-5/4");
        // No overflow at the top.
        let top = content_range(u64::MAX, 0, 1);
        assert_eq!(top, format!("bytes {}-{}/1", u64::MAX, u64::MAX - 1));
        assert_eq!(
            content_range(0, u64::MAX, u64::MAX),
            format!("bytes 0-{}/{}", u64::MAX - 1, u64::MAX)
        );
    }
}
