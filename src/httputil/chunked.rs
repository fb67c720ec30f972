//! `Transfer-Encoding: chunked` bodies.

use super::url::hex;
use super::{is_tchar, is_token, protocol_error};
use crate::error::{Error, ErrorKind};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
