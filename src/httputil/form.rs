//! Form bodies: `application/x-www-form-urlencoded` and
//! `multipart/form-data` (Tornado's `parse_body_arguments`), the files they
//! carry ([`HTTPFile`]), the limits that keep a hostile form from costing
//! unbounded time or memory ([`FormLimits`]), and Tornado's `_parse_header`
//! for `Content-Disposition`-like values ([`parse_header`]).
//!
//! ```
//! use std::collections::HashMap;
//! use squall::httputil::{parse_body_arguments, FormLimits};
//!
//! let body = b"--XyZ\r\n\
//!     Content-Disposition: form-data; name=\"title\"\r\n\r\n\
//!     Holiday\r\n\
//!     --XyZ\r\n\
//!     Content-Disposition: form-data; name=\"photo\"; filename=\"beach.jpg\"\r\n\
//!     Content-Type: image/jpeg\r\n\r\n\
//!     \xff\xd8 not really a jpeg\r\n\
//!     --XyZ--\r\n";
//! let (mut args, mut files) = (HashMap::new(), HashMap::new());
//! parse_body_arguments(
//!     "multipart/form-data; boundary=XyZ",
//!     body,
//!     &mut args,
//!     &mut files,
//!     None,
//!     &FormLimits::default(),
//! )?;
//! assert_eq!(args["title"], [b"Holiday".to_vec()]);
//! let photo = &files["photo"][0];
//! assert_eq!((photo.filename.as_str(), photo.content_type.as_str()), ("beach.jpg", "image/jpeg"));
//! assert_eq!(photo.body, b"\xff\xd8 not really a jpeg");
//! # Ok::<(), squall::Error>(())
//! ```

use std::collections::HashMap;
use std::fmt;

use super::{HTTPHeaders, MultipartEvent, MultipartParser, Part};
use crate::error::{Error, ErrorKind};

/// A file uploaded through a `multipart/form-data` form (Tornado's
/// `HTTPFile`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HTTPFile {
    /// The name the client gave (`filename=`, or RFC 2231 `filename*=`);
    /// never empty. Only the client's word: never use it as a path as is.
    pub filename: String,
    /// The part's `Content-Type`, or `application/unknown` (Tornado's
    /// default) when it had none.
    pub content_type: String,
    /// The file's bytes.
    pub body: Vec<u8>,
}

/// Arguments by name, each with its values in arrival order, still bytes:
/// Tornado's `request.arguments` (`dict[str, list[bytes]]`).
pub type Arguments = HashMap<String, Vec<Vec<u8>>>;

/// Files by form field name: Tornado's `request.files`.
pub type Files = HashMap<String, Vec<HTTPFile>>;

/// Limits on parsing a form body (Tornado 6.5's `ParseMultipartConfig`,
/// plus the ones a streaming parser needs). The defaults suit HTML forms;
/// raise them per application with
/// [`Settings::form_limits`](crate::web::Settings::form_limits).
///
/// The whole body is also bounded by the server's `max_body_size`; these
/// keep any one piece of it, and the count of pieces, bounded too. Going
/// past one is an error whose source is the [`FormLimit`] passed (the web
/// layer answers its [`status`](FormLimit::status)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormLimits {
    /// Parse `multipart/form-data` at all (Tornado's `enabled`): an
    /// application that takes no uploads may turn it off. Default on.
    pub multipart: bool,
    /// Parts of a multipart body (Tornado's `max_parts`). Default 100.
    pub max_parts: usize,
    /// Bytes in one part's header block (Tornado's
    /// `max_part_header_size`). Default 10 KiB.
    pub max_part_header_size: usize,
    /// `name=value` pairs in an urlencoded body or query. Default 1,000
    /// (Python's `parse_qs` `max_num_fields`, Django's default).
    pub max_fields: usize,
    /// Bytes in one field's value that is not a file (an urlencoded value,
    /// a multipart part without a filename); files are bounded only by the
    /// body's size. Default 1 MiB.
    pub max_field_size: usize,
}

impl Default for FormLimits {
    fn default() -> FormLimits {
        FormLimits {
            multipart: true,
            max_parts: 100,
            max_part_header_size: 10 * 1024,
            max_fields: 1000,
            max_field_size: 1024 * 1024,
        }
    }
}

/// Which of the [`FormLimits`] a form went past: the source of the error
/// that says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormLimit {
    /// [`FormLimits::max_parts`].
    Parts,
    /// [`FormLimits::max_part_header_size`].
    PartHeaderSize,
    /// [`FormLimits::max_fields`].
    Fields,
    /// [`FormLimits::max_field_size`].
    FieldSize,
}

impl FormLimit {
    /// The limit behind `err`, if a form limit is what failed.
    pub fn from_error(err: &Error) -> Option<FormLimit> {
        std::error::Error::source(err)?
            .downcast_ref::<FormLimit>()
            .copied()
    }

    /// The HTTP status that answers it: 413 for a size, 400 for a count
    /// (Tornado answers every one 400).
    pub fn status(self) -> u16 {
        match self {
            FormLimit::PartHeaderSize | FormLimit::FieldSize => 413,
            FormLimit::Parts | FormLimit::Fields => 400,
        }
    }

    /// The error that reports it.
    pub(crate) fn error(self, what: impl Into<String>) -> Error {
        Error::with_source(ErrorKind::HttpProtocol, what, self)
    }
}

impl fmt::Display for FormLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FormLimit::Parts => "too many multipart parts",
            FormLimit::PartHeaderSize => "multipart part header too large",
            FormLimit::Fields => "too many form fields",
            FormLimit::FieldSize => "form field too large",
        })
    }
}

impl std::error::Error for FormLimit {}

/// A malformed form: [`ErrorKind::HttpProtocol`] (answered 400).
pub(crate) fn form_error(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::HttpProtocol, msg)
}

/// Parses a form body into `arguments` and `files` (Tornado's
/// `parse_body_arguments`): `application/x-www-form-urlencoded` (see
/// [`parse_form_urlencoded`]) and `multipart/form-data` (see
/// [`parse_multipart_form_data`]); any other `content_type` adds nothing.
/// Values stay bytes, as in Tornado: decoding them is the reader's choice
/// (the web layer's `get_argument` insists on UTF-8).
///
/// With `headers`, a body with a `Content-Encoding` is refused, as Tornado
/// does (a compressed form cannot be parsed as it stands).
///
/// Nothing is added unless the whole body parses.
///
/// # Errors
/// [`ErrorKind::HttpProtocol`] for a malformed body (no boundary, a
/// `multipart/form-dataxyz` type, an unterminated part, a part without
/// `Content-Disposition: form-data` or a name, a header line that is no
/// header...), or one past a limit (the error's source is then the
/// [`FormLimit`]).
pub fn parse_body_arguments(
    content_type: &str,
    body: &[u8],
    arguments: &mut Arguments,
    files: &mut Files,
    headers: Option<&HTTPHeaders>,
    limits: &FormLimits,
) -> Result<(), Error> {
    let urlencoded = starts_with_ignore_case(content_type, "application/x-www-form-urlencoded");
    let multipart = starts_with_ignore_case(content_type, "multipart/form-data");
    if !urlencoded && !multipart {
        return Ok(());
    }
    if let Some(encoding) = headers.and_then(|h| h.get("Content-Encoding")) {
        return Err(form_error(format!(
            "Unsupported Content-Encoding: {encoding}"
        )));
    }
    if urlencoded {
        parse_form_urlencoded(body, arguments, limits)
    } else {
        let boundary = multipart_boundary(content_type)?;
        parse_multipart_form_data(boundary.as_bytes(), body, arguments, files, limits)
    }
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// The `boundary` parameter of a `multipart/form-data` content type, as
/// Tornado finds it (quotes, if any, are left for the parser to strip).
///
/// # Errors
/// [`ErrorKind::HttpProtocol`] if the type is not exactly
/// `multipart/form-data` (`multipart/form-dataxyz`) or has no boundary.
pub fn multipart_boundary(content_type: &str) -> Result<&str, Error> {
    let mut fields = content_type.split(';');
    let kind = fields.next().unwrap_or("").trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return Err(form_error(format!(
            "Invalid multipart/form-data: content type {kind:?}"
        )));
    }
    fields
        .filter_map(|field| field.trim().split_once('='))
        .find(|(k, v)| *k == "boundary" && !v.is_empty())
        .map(|(_, v)| v)
        .ok_or_else(|| form_error("Invalid multipart/form-data: multipart boundary not found"))
}

/// Parses an urlencoded body (or a query string) into `arguments`, as
/// Python's `parse_qs(keep_blank_values=True)` does: pairs split on `&`
/// (not `;`, since Python 3.10), `+` is a space, `%XX` escapes decoded
/// (invalid ones kept as they are), a pair without `=` has an empty value,
/// empty pairs skipped. Names are decoded as UTF-8 (lossily; Tornado keeps
/// them as Latin-1 text), values stay bytes.
///
/// # Errors
/// Past [`FormLimits::max_fields`] pairs or a value over
/// [`FormLimits::max_field_size`] (before decoding): an
/// [`ErrorKind::HttpProtocol`] error whose source is the [`FormLimit`].
/// Nothing is added then.
pub fn parse_form_urlencoded(
    body: &[u8],
    arguments: &mut Arguments,
    limits: &FormLimits,
) -> Result<(), Error> {
    // Counted before any work, as Python's `max_num_fields`.
    let fields = 1 + memchr::memchr_iter(b'&', body).count();
    if fields > limits.max_fields {
        return Err(FormLimit::Fields.error(format!(
            "too many form fields: more than {}",
            limits.max_fields
        )));
    }
    let mut parsed: Vec<(String, Vec<u8>)> = Vec::new();
    for pair in body.split(|&b| b == b'&') {
        if pair.is_empty() {
            continue;
        }
        let (name, value) = match memchr::memchr(b'=', pair) {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        if value.len() > limits.max_field_size {
            return Err(FormLimit::FieldSize.error(format!(
                "form field too large: more than {} bytes",
                limits.max_field_size
            )));
        }
        let name = url_unescape_bytes(name, true);
        let name = String::from_utf8_lossy(&name).into_owned();
        parsed.push((name, url_unescape_bytes(value, true)));
    }
    for (name, value) in parsed {
        arguments.entry(name).or_default().push(value);
    }
    Ok(())
}

/// Decodes `%XX` escapes, and `+` as a space when `plus`, to bytes (Python's
/// `unquote_to_bytes`; Tornado's `url_unescape(value, encoding=None)`): an
/// invalid escape is kept as it is.
///
/// ```
/// assert_eq!(squall::httputil::url_unescape_bytes(b"%e9+%zz", true), b"\xe9 %zz");
/// ```
pub fn url_unescape_bytes(s: &[u8], plus: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                if let (Some(h), Some(l)) = (
                    s.get(i + 1).and_then(super::url::hex),
                    s.get(i + 2).and_then(super::url::hex),
                ) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' if plus => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Parses a whole `multipart/form-data` body (Tornado's
/// `parse_multipart_form_data`) with a [`MultipartParser`]: a part with a
/// (non-empty) filename goes to `files`, any other to `arguments`. The
/// boundary may be quoted (`"1234"`); a preamble before the first
/// boundary and anything after the final one are ignored (RFC 2046).
///
/// Nothing is added unless the whole body parses.
///
/// # Errors
/// As [`MultipartParser::feed`] and [`MultipartParser::finish`]: a body
/// without its final boundary, a part without `Content-Disposition:
/// form-data` or a `name`, a malformed part header, a limit passed.
pub fn parse_multipart_form_data(
    boundary: &[u8],
    body: &[u8],
    arguments: &mut Arguments,
    files: &mut Files,
    limits: &FormLimits,
) -> Result<(), Error> {
    let mut parser = MultipartParser::new(boundary, limits.clone())?;
    let mut parsed: Vec<(Part, Vec<u8>)> = Vec::new();
    parser.feed(body, |event| {
        match event {
            MultipartEvent::PartStart(part) => parsed.push((part, Vec::new())),
            MultipartEvent::Data(data) => {
                if let Some((_, value)) = parsed.last_mut() {
                    value.extend_from_slice(data);
                }
            }
            MultipartEvent::PartEnd => {}
        }
        Ok(())
    })?;
    parser.finish()?;
    for (part, value) in parsed {
        match part.filename {
            Some(filename) => files.entry(part.name).or_default().push(HTTPFile {
                filename,
                content_type: part
                    .content_type
                    .unwrap_or_else(|| "application/unknown".to_owned()),
                body: value,
            }),
            None => arguments.entry(part.name).or_default().push(value),
        }
    }
    Ok(())
}

// ----- header parameters (Tornado's `_parse_header`) -------------------------

/// Parses a `Content-Disposition`- or `Content-Type`-like value into its
/// first item and its parameters (Tornado's `_parse_header`): parameters
/// split on `;` outside quoted strings, names lower-cased, quoted values
/// unquoted (`\\` and `\"` unescaped), and RFC 2231 / 5987 extended values
/// (`filename*=UTF-8''%C3%A1b.txt`, continuations `name*0*=`, `name*1*=`)
/// decoded (UTF-8, ISO-8859-1 and US-ASCII; another charset is read as
/// ISO-8859-1), taking precedence over the plain parameter of that name.
///
/// ```
/// use squall::httputil::parse_header;
///
/// let (kind, params) = parse_header(
///     r#"form-data; name="files"; filename="a;\"b.txt"; filename*=UTF-8''%C3%A1b.txt"#,
/// );
/// assert_eq!(kind, "form-data");
/// assert_eq!(params["name"], "files");
/// assert_eq!(params["filename"], "áb.txt");
/// ```
pub fn parse_header(line: &str) -> (String, HashMap<String, String>) {
    let mut parts = split_params(line).into_iter();
    let key = parts.next().unwrap_or_default().to_owned();
    let mut params: HashMap<String, String> = HashMap::new();
    // RFC 2231 parameters, by name in first-seen order.
    let mut extended: Vec<(String, Vec<Continuation>)> = Vec::new();
    for p in parts {
        let Some((name, value)) = p.split_once('=') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        let value = email_unquote(value.trim());
        match rfc2231_name(&name) {
            Some((base, number, encoded)) => {
                let bytes = if encoded {
                    url_unescape_bytes(value.as_bytes(), false)
                } else {
                    value.into_bytes()
                };
                let at = match extended.iter().position(|(n, _)| n == base) {
                    Some(at) => at,
                    None => {
                        extended.push((base.to_owned(), Vec::new()));
                        extended.len() - 1
                    }
                };
                extended[at].1.push((number, bytes, encoded));
            }
            None => {
                params.insert(name, strip_quotes(value));
            }
        }
    }
    for (name, mut pieces) in extended {
        pieces.sort_by_key(|(n, _, _)| *n);
        let any_encoded = pieces.iter().any(|(_, _, e)| *e);
        let joined: Vec<u8> = pieces.into_iter().flat_map(|(_, b, _)| b).collect();
        let value = if any_encoded {
            decode_rfc2231(&joined)
        } else {
            String::from_utf8_lossy(&joined).into_owned()
        };
        params.insert(name, strip_quotes(value));
    }
    (key, params)
}

/// One piece of an RFC 2231 parameter: its number (`name*1*`), its value
/// (bytes, percent-decoded if it was encoded), whether it was encoded.
type Continuation = (Option<u32>, Vec<u8>, bool);

/// Splits on `;` outside quoted strings (a backslash escapes the next
/// character inside one), trimming each piece: Tornado's `_parseparam`, in
/// one linear pass.
fn split_params(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = line.as_bytes();
    let (mut start, mut i, mut quoted) = (0, 0, false);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b';' if !quoted => {
                out.push(line[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(line[start..].trim());
    out
}

/// Python's `email.utils.unquote`.
fn email_unquote(s: &str) -> String {
    if s.len() > 1 {
        if let Some(inner) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            return inner.replace("\\\\", "\\").replace("\\\"", "\"");
        }
        if let Some(inner) = s.strip_prefix('<').and_then(|s| s.strip_suffix('>')) {
            return inner.to_owned();
        }
    }
    s.to_owned()
}

/// Tornado's last step: a value still in quotes loses them.
fn strip_quotes(value: String) -> String {
    if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
        value[1..value.len() - 1].to_owned()
    } else {
        value
    }
}

/// `name*`, `name*0`, `name*0*` (Python's `rfc2231_continuation`):
/// (name, continuation number, percent-encoded).
fn rfc2231_name(name: &str) -> Option<(&str, Option<u32>, bool)> {
    let star = name.find('*')?;
    let base = &name[..star];
    if base.is_empty() || !base.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let rest = &name[star + 1..];
    if rest.is_empty() {
        return Some((base, None, true));
    }
    let (digits, encoded) = match rest.strip_suffix('*') {
        Some(d) => (d, true),
        None => (rest, false),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((base, Some(digits.parse().unwrap_or(u32::MAX)), encoded))
}

/// `charset'language'text` (the text already percent-decoded) to a
/// string; without two quotes, the whole is the text, in US-ASCII.
fn decode_rfc2231(value: &[u8]) -> String {
    let mut pieces = value.splitn(3, |&b| b == b'\'');
    let (charset, text) = match (pieces.next(), pieces.next(), pieces.next()) {
        (Some(charset), Some(_language), Some(text)) => (charset, text),
        _ => (&b""[..], value),
    };
    let charset = String::from_utf8_lossy(charset).to_ascii_lowercase();
    match charset.as_str() {
        "utf-8" | "utf8" => String::from_utf8_lossy(text).into_owned(),
        "" | "us-ascii" | "ascii" => text
            .iter()
            .map(|&b| if b.is_ascii() { b as char } else { '\u{fffd}' })
            .collect(),
        // ISO-8859-1, and (as Python falls back to the raw text) any
        // charset we do not know.
        _ => text.iter().map(|&b| b as char).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_split_outside_quotes_only() {
        assert_eq!(
            split_params(r#"a; b="x;y"; c="q\";r"; d"#),
            ["a", r#"b="x;y""#, r#"c="q\";r""#, "d"]
        );
    }

    #[test]
    fn parse_header_as_tornado_doctest() {
        let (ct, d) = parse_header(r#"form-data; foo="b\\a\"r"; file*=utf-8''T%C3%A4st"#);
        assert_eq!(ct, "form-data");
        assert_eq!(d["file"], "Täst");
        assert_eq!(d["foo"], "b\\a\"r");
    }

    #[test]
    fn rfc2231_continuations_and_charsets() {
        let (_, d) = parse_header("x; title*0*=us-ascii'en'This%20is; title*1*=%20fun");
        assert_eq!(d["title"], "This is fun");
        let (_, d) = parse_header("x; name*=iso-8859-1''caf%E9");
        assert_eq!(d["name"], "café");
        let (_, d) = parse_header("x; name*=utf-8''%FF");
        assert_eq!(d["name"], "\u{fffd}");
        let (_, d) = parse_header("x; name*=nocharsetquotes");
        assert_eq!(d["name"], "nocharsetquotes");
        assert_eq!(rfc2231_name("a*1x"), None);
        assert_eq!(rfc2231_name("*"), None);
    }

    #[test]
    fn urlencoded_as_parse_qs() {
        let mut args = Arguments::new();
        parse_form_urlencoded(
            b"a=1&&b=&c&a=%32+3&d=%zz;e",
            &mut args,
            &FormLimits::default(),
        )
        .unwrap();
        assert_eq!(args["a"], [b"1".to_vec(), b"2 3".to_vec()]);
        assert_eq!(args["b"], [b"".to_vec()]);
        assert_eq!(args["c"], [b"".to_vec()]);
        assert_eq!(args["d"], [b"%zz;e".to_vec()]);
    }

    #[test]
    fn urlencoded_limits() {
        let limits = FormLimits {
            max_fields: 2,
            max_field_size: 3,
            ..FormLimits::default()
        };
        let mut args = Arguments::new();
        let err = parse_form_urlencoded(b"a=1&b=2&c=3", &mut args, &limits).unwrap_err();
        assert_eq!(FormLimit::from_error(&err), Some(FormLimit::Fields));
        let err = parse_form_urlencoded(b"a=1&b=1234", &mut args, &limits).unwrap_err();
        assert_eq!(FormLimit::from_error(&err), Some(FormLimit::FieldSize));
        assert_eq!(FormLimit::FieldSize.status(), 413);
        assert!(args.is_empty());
    }

    #[test]
    fn content_types() {
        assert_eq!(
            multipart_boundary("multipart/form-data; boundary=ab").unwrap(),
            "ab"
        );
        assert_eq!(
            multipart_boundary("Multipart/Form-Data; charset=x; boundary=\"ab\"").unwrap(),
            "\"ab\""
        );
        assert!(multipart_boundary("multipart/form-dataxyz; boundary=ab").is_err());
        assert!(multipart_boundary("multipart/form-data").is_err());
        assert!(multipart_boundary("multipart/form-data; boundary=").is_err());
        let (mut a, mut f) = (Arguments::new(), Files::new());
        let l = FormLimits::default();
        parse_body_arguments("text/plain", b"a=1", &mut a, &mut f, None, &l).unwrap();
        assert!(a.is_empty());
        let mut h = HTTPHeaders::new();
        h.add("Content-Encoding", "gzip");
        let ct = "application/x-www-form-urlencoded";
        assert!(parse_body_arguments(ct, b"a=1", &mut a, &mut f, Some(&h), &l).is_err());
        parse_body_arguments(ct, b"a=1", &mut a, &mut f, None, &l).unwrap();
        assert_eq!(a["a"], [b"1".to_vec()]);
    }
}
