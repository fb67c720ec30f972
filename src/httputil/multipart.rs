//! An incremental `multipart/form-data` parser: bytes go in as they
//! arrive, split anywhere; out come a part's start (its headers), pieces
//! of its body, and its end. The whole-body parser
//! ([`parse_multipart_form_data`](super::parse_multipart_form_data)) is
//! this one fed once; a handler that streams its request body feeds it
//! chunk by chunk and writes a 2 GB upload to disk in bounded memory.
//!
//! ```
//! use squall::httputil::{FormLimits, MultipartEvent, MultipartParser};
//!
//! let body = b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.bin\"\r\n\r\n\
//!              0123456789\r\n--b--\r\n";
//! let mut parser = MultipartParser::new(b"b", FormLimits::default())?;
//! let mut size = 0;
//! for piece in body.chunks(3) {
//!     // As a streaming handler's `data_received` would.
//!     parser.feed(piece, |event| {
//!         match event {
//!             MultipartEvent::PartStart(part) => assert_eq!(part.filename.as_deref(), Some("x.bin")),
//!             MultipartEvent::Data(data) => size += data.len(), // e.g. file.write_all(data)
//!             MultipartEvent::PartEnd => {}
//!         }
//!         Ok(())
//!     })?;
//! }
//! parser.finish()?;
//! assert_eq!(size, 10);
//! # Ok::<(), squall::Error>(())
//! ```

use memchr::memmem;

use super::form::form_error;
use super::{parse_header, FormLimit, FormLimits, HTTPHeaders};
use crate::error::Error;

/// One part's head: its form field name, its filename if it is a file,
/// and its headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// The form field (`name=` of `Content-Disposition: form-data`).
    pub name: String,
    /// The file's name if the part is a file (a non-empty `filename=` or
    /// `filename*=`), as the client gave it: not a safe path.
    pub filename: Option<String>,
    /// The part's `Content-Type`, if it had one.
    pub content_type: Option<String>,
    /// All of the part's headers.
    pub headers: HTTPHeaders,
}

impl Part {
    /// Whether it is a file (it has a filename).
    pub fn is_file(&self) -> bool {
        self.filename.is_some()
    }
}

/// What [`MultipartParser::feed`] found.
#[derive(Debug)]
pub enum MultipartEvent<'a> {
    /// A part begins: its head.
    PartStart(Part),
    /// A piece of the current part's body (pieces follow the input's
    /// splits, never more than was fed; an empty body gives none).
    Data(&'a [u8]),
    /// The current part's body is complete.
    PartEnd,
}

/// Where the parser is in the body.
#[derive(Debug)]
enum State {
    /// Before the first boundary: a preamble, ignored.
    Preamble,
    /// Just past a boundary: `--` (the last) or a line end comes next.
    AfterBoundary,
    /// In a part's header block.
    Headers,
    /// In a part's body: a non-file part's size so far (files count
    /// nothing: only the body's limit bounds them).
    Body { field_size: Option<usize> },
    /// Past the final boundary: the rest is ignored.
    Done,
    /// An error ended it; every later call gives it again.
    Failed(Error),
}

/// How much of one `feed` is taken into the buffer at a time: memory stays
/// bounded by this (plus a header block) however much is fed at once.
const WINDOW: usize = 64 * 1024;

/// Transport padding (spaces, tabs) allowed after a boundary (RFC 2046).
const MAX_PADDING: usize = 256;

/// An incremental `multipart/form-data` parser (RFC 7578 / 2046).
///
/// [`feed`](Self::feed) bytes split anywhere; its callback hears each
/// [`MultipartEvent`]. [`finish`](Self::finish) at the end of the body
/// checks the final boundary came. Memory is bounded whatever the size of
/// a part: at most 64 KiB of input plus one part's header block
/// ([`FormLimits::max_part_header_size`]) are held at once (see
/// [`buffered`](Self::buffered)).
///
/// Each part must have `Content-Disposition: form-data` with a `name`;
/// header lines are CRLF- (or LF-) terminated `Name: value` lines without
/// control characters; a boundary inside a part's header block is an
/// error. Limits from [`FormLimits`]: parts, part header size, the size
/// of a part that is not a file.
#[derive(Debug)]
pub struct MultipartParser {
    /// `\r\n--boundary`: what ends a part's body.
    delimiter: Vec<u8>,
    state: State,
    /// Input not yet consumed: a possible partial delimiter, or a header
    /// block being collected.
    buf: Vec<u8>,
    /// How far a header block in `buf` was searched for its end.
    scanned: usize,
    limits: FormLimits,
    parts: usize,
}

impl MultipartParser {
    /// A parser for a body delimited by `boundary` (the content type's
    /// `boundary=` value; surrounding quotes are stripped).
    ///
    /// # Errors
    /// [`ErrorKind::HttpProtocol`](crate::ErrorKind::HttpProtocol) if the
    /// boundary is empty or longer than 200 bytes (RFC 2046 allows 70), or
    /// if `limits.multipart` is off.
    pub fn new(boundary: &[u8], limits: FormLimits) -> Result<MultipartParser, Error> {
        if !limits.multipart {
            return Err(form_error("multipart/form-data parsing is disabled"));
        }
        let boundary = match boundary {
            [b'"', inner @ .., b'"'] => inner,
            b => b,
        };
        if boundary.is_empty() || boundary.len() > 200 {
            return Err(form_error(format!(
                "Invalid multipart/form-data: boundary of {} bytes",
                boundary.len()
            )));
        }
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary);
        Ok(MultipartParser {
            delimiter,
            state: State::Preamble,
            // The first boundary may open the body: as if a line ended
            // before it.
            buf: b"\r\n".to_vec(),
            scanned: 0,
            limits,
            parts: 0,
        })
    }

    /// A parser for a request whose `Content-Type` is `content_type`
    /// (`multipart/form-data; boundary=...`).
    ///
    /// # Errors
    /// As [`multipart_boundary`](super::multipart_boundary) and
    /// [`new`](Self::new).
    pub fn from_content_type(
        content_type: &str,
        limits: FormLimits,
    ) -> Result<MultipartParser, Error> {
        MultipartParser::new(super::multipart_boundary(content_type)?.as_bytes(), limits)
    }

    /// Parses `data`, the next bytes of the body, calling `on_event` for
    /// what it completes. Bytes that might begin a boundary are held back
    /// until the next call shows what they are.
    ///
    /// # Errors
    /// [`ErrorKind::HttpProtocol`](crate::ErrorKind::HttpProtocol) for a
    /// malformed body or a passed limit (whose source is then the
    /// [`FormLimit`]), or the first error `on_event` returns; the parser
    /// is then spent, and every later call returns that error.
    pub fn feed<F>(&mut self, data: &[u8], mut on_event: F) -> Result<(), Error>
    where
        F: FnMut(MultipartEvent<'_>) -> Result<(), Error>,
    {
        if let State::Failed(err) = &self.state {
            return Err(err.clone());
        }
        if matches!(self.state, State::Done) {
            return Ok(());
        }
        for window in data.chunks(WINDOW) {
            let mut buf = std::mem::take(&mut self.buf);
            buf.extend_from_slice(window);
            let result = self.run(&buf, &mut on_event);
            match result {
                Ok(consumed) => {
                    buf.drain(..consumed);
                    self.scanned = self.scanned.saturating_sub(consumed);
                    self.buf = buf;
                }
                Err(err) => {
                    self.state = State::Failed(err.clone());
                    return Err(err);
                }
            }
            if matches!(self.state, State::Done) {
                self.buf = Vec::new();
                break;
            }
        }
        Ok(())
    }

    /// The body has ended: checks it ended after its final boundary.
    ///
    /// # Errors
    /// [`ErrorKind::HttpProtocol`](crate::ErrorKind::HttpProtocol) if it did
    /// not (an unterminated part, no final boundary, no boundary at all),
    /// or the error that ended an earlier call.
    pub fn finish(&mut self) -> Result<(), Error> {
        let err = match &self.state {
            State::Done => return Ok(()),
            State::Failed(err) => return Err(err.clone()),
            State::Preamble => form_error("Invalid multipart/form-data: no boundary found"),
            State::Body { .. } | State::Headers => {
                form_error("Invalid multipart/form-data: unterminated part")
            }
            State::AfterBoundary => {
                form_error("Invalid multipart/form-data: no final boundary found")
            }
        };
        self.state = State::Failed(err.clone());
        Err(err)
    }

    /// Whether the final boundary has been seen.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// How many parts have begun.
    pub fn parts(&self) -> usize {
        self.parts
    }

    /// Bytes held between calls (a partial boundary, a header block being
    /// collected): bounded, whatever the size of a part.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Parses what `buf` holds; how much of it was consumed.
    fn run<F>(&mut self, buf: &[u8], on_event: &mut F) -> Result<usize, Error>
    where
        F: FnMut(MultipartEvent<'_>) -> Result<(), Error>,
    {
        let dlen = self.delimiter.len();
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            match &mut self.state {
                State::Preamble => match memmem::find(rest, &self.delimiter) {
                    Some(i) => {
                        pos += i + dlen;
                        self.state = State::AfterBoundary;
                    }
                    None => return Ok(buf.len() - held_back(&self.delimiter, rest)),
                },
                State::AfterBoundary => {
                    if rest.len() < 2 {
                        return Ok(pos);
                    }
                    if rest.starts_with(b"--") {
                        self.state = State::Done;
                        return Ok(buf.len());
                    }
                    let padding = rest.iter().take_while(|&&b| b == b' ' || b == b'\t');
                    let padding = padding.count();
                    if padding > MAX_PADDING {
                        return Err(form_error("Invalid multipart/form-data: boundary line"));
                    }
                    let after = &rest[padding..];
                    if after.len() < 2 {
                        return Ok(pos);
                    }
                    if !after.starts_with(b"\r\n") {
                        return Err(form_error(
                            "Invalid multipart/form-data: boundary not followed by a line end",
                        ));
                    }
                    pos += padding + 2;
                    self.parts += 1;
                    if self.parts > self.limits.max_parts {
                        return Err(FormLimit::Parts.error(format!(
                            "multipart/form-data has too many parts: more than {}",
                            self.limits.max_parts
                        )));
                    }
                    self.scanned = pos;
                    self.state = State::Headers;
                }
                State::Headers => {
                    // An empty header block: the blank line comes at once.
                    let end = if rest.starts_with(b"\r\n") {
                        Some((0, 2))
                    } else {
                        let from = self.scanned.saturating_sub(3).max(pos);
                        memmem::find(&buf[from..], b"\r\n\r\n").map(|i| (from - pos + i, 4))
                    };
                    let Some((len, sep)) = end else {
                        if rest.len() > self.limits.max_part_header_size + 3 {
                            return Err(header_too_large(&self.limits));
                        }
                        // Only what came since the last look: a header
                        // block fed in many pieces is searched once.
                        let from = self.scanned.saturating_sub(dlen).max(pos);
                        if memmem::find(&buf[from..], &self.delimiter).is_some() {
                            return Err(boundary_in_header());
                        }
                        if rest.len() < 2 {
                            return Ok(pos);
                        }
                        self.scanned = buf.len();
                        return Ok(pos);
                    };
                    if len > self.limits.max_part_header_size {
                        return Err(header_too_large(&self.limits));
                    }
                    let block = &rest[..len];
                    // The delimiter is `\r\n--b`: one that opens the block
                    // has its line end just before it.
                    let opens = block.starts_with(&self.delimiter[2..]);
                    if opens || memmem::find(block, &self.delimiter).is_some() {
                        return Err(boundary_in_header());
                    }
                    let part = parse_part_head(block)?;
                    pos += len + sep;
                    self.state = State::Body {
                        field_size: (!part.is_file()).then_some(0),
                    };
                    on_event(MultipartEvent::PartStart(part))?;
                }
                State::Body { field_size } => {
                    let (data, end) = match memmem::find(rest, &self.delimiter) {
                        Some(i) => (&rest[..i], true),
                        None => (
                            &rest[..rest.len() - held_back(&self.delimiter, rest)],
                            false,
                        ),
                    };
                    if let Some(size) = field_size {
                        *size += data.len();
                        if *size > self.limits.max_field_size {
                            return Err(FormLimit::FieldSize.error(format!(
                                "multipart/form-data field too large: more than {} bytes",
                                self.limits.max_field_size
                            )));
                        }
                    }
                    if !data.is_empty() {
                        on_event(MultipartEvent::Data(data))?;
                    }
                    pos += data.len();
                    if !end {
                        return Ok(pos);
                    }
                    pos += dlen;
                    self.state = State::AfterBoundary;
                    on_event(MultipartEvent::PartEnd)?;
                }
                State::Done | State::Failed(_) => return Ok(buf.len()),
            }
        }
    }
}

/// How many bytes at the end of `rest` (which holds no whole `delimiter`)
/// might begin one: the longest suffix shorter than the delimiter that is a
/// prefix of it (the delimiter begins with CR).
fn held_back(delimiter: &[u8], rest: &[u8]) -> usize {
    let tail = &rest[rest.len().saturating_sub(delimiter.len() - 1)..];
    memchr::memchr_iter(b'\r', tail)
        .find(|&i| delimiter.starts_with(&tail[i..]))
        .map_or(0, |i| tail.len() - i)
}

fn header_too_large(limits: &FormLimits) -> Error {
    FormLimit::PartHeaderSize.error(format!(
        "multipart/form-data part header too large: more than {} bytes",
        limits.max_part_header_size
    ))
}

fn boundary_in_header() -> Error {
    form_error("Invalid multipart/form-data: boundary inside a part's headers")
}

/// A part's header block (without its blank line) to its [`Part`]:
/// UTF-8 (as Tornado reads it), lines ended by CRLF or LF, no control
/// characters in a value (Tornado's `Invalid header value`), a
/// `Content-Disposition: form-data` with a non-empty `name`.
fn parse_part_head(block: &[u8]) -> Result<Part, Error> {
    let text = std::str::from_utf8(block)
        .map_err(|_| form_error("Invalid multipart/form-data: part header is not UTF-8"))?;
    let mut headers = HTTPHeaders::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(form_error(format!(
                "Invalid multipart/form-data: Invalid header value {line:?}"
            )));
        }
        headers
            .parse_line(line)
            .map_err(|e| form_error(format!("Invalid multipart/form-data: {}", e.message())))?;
    }
    let disposition = headers.get("Content-Disposition").unwrap_or("");
    let (kind, mut params) = parse_header(disposition);
    if !kind.eq_ignore_ascii_case("form-data") {
        return Err(form_error(
            "Invalid multipart/form-data: part without Content-Disposition: form-data",
        ));
    }
    let name = params.remove("name").unwrap_or_default();
    if name.is_empty() {
        return Err(form_error("multipart/form-data missing name"));
    }
    let filename = params.remove("filename").filter(|f| !f.is_empty());
    let content_type = headers.get("Content-Type").map(str::to_owned);
    Ok(Part {
        name,
        filename,
        content_type,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_back_only_a_possible_delimiter_start() {
        let d = b"\r\n--ab";
        assert_eq!(held_back(d, b"xyz"), 0);
        assert_eq!(held_back(d, b"xyz\r"), 1);
        assert_eq!(held_back(d, b"xyz\r\n--a"), 5);
        assert_eq!(held_back(d, b"x\r\n-\r\n-"), 3);
        assert_eq!(held_back(d, b"x\r\n-x"), 0);
        assert_eq!(held_back(d, b""), 0);
    }

    /// The preamble is dropped piece by piece, keeping only what may start
    /// the first boundary (a bug the split property found).
    #[test]
    fn a_preamble_split_anywhere() {
        let body =
            b"pre\r\namble--x\r\n--ab\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--ab--";
        for cut in 0..body.len() {
            let mut p = MultipartParser::new(b"ab", FormLimits::default()).unwrap();
            let mut data = Vec::new();
            let mut on = |e: MultipartEvent<'_>| {
                if let MultipartEvent::Data(d) = e {
                    data.extend_from_slice(d);
                }
                Ok(())
            };
            p.feed(&body[..cut], &mut on).unwrap();
            if cut < 20 {
                // Still in the preamble: at most a partial delimiter held.
                assert!(p.buffered() < 6, "cut {cut}: {} held", p.buffered());
            }
            p.feed(&body[cut..], &mut on).unwrap();
            p.finish().unwrap();
            assert_eq!(data, b"v", "cut {cut}");
        }
    }
}
