//! Reading a request head: httparse's fields named in the request's
//! [`HTTPHeaders`](crate::httputil::HTTPHeaders), the few fields that frame
//! the request checked (`Host`, `Content-Length`, `Transfer-Encoding`,
//! `Connection`, `Expect`), and what they say of its body.

use std::cell::Cell;
use std::time::Instant;

use super::usual_head::{parse_usual_head, UsualField, USUAL_HEADERS};
use super::{Conn, UninitSlot, MAX_HEADERS};
use crate::http::connection::Body;
use crate::http::delegate::HTTPServerConnectionDelegate;
use crate::http::request::{HTTPServerRequest, Method, Version};
use crate::httputil::{self, trim_ows};

/// What a request head says of its body; `Err(status)` to refuse it.
/// `Ok(None)`: incomplete. Else the head's length, the request, its body,
/// and whether the client expects `100 Continue`.
type Parsed = Result<Option<(usize, Box<HTTPServerRequest>, Option<Body>, bool)>, u16>;

impl<D: HTTPServerConnectionDelegate> Conn<D> {
    /// Parses one request head from `buf`. `Err(status)`: answer with that
    /// status and close.
    pub(super) fn parse_head(&self, buf: &[u8]) -> Parsed {
        let core = self.core();
        // Tolerate blank lines before a request line (RFC 9112 2.2: after a
        // body, between pipelined requests), but count them with the head:
        // together they must fit in `max_header_size`. Else a client could
        // make the server hold twice the limit, and a stream of nothing
        // but CRLFs would get other than the 431 a head that large gets.
        let skip = buf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        let buf = &buf[skip..];
        if buf.is_empty() {
            // Blank lines are the start of a head for the header timeout
            // (else a CRLF every few seconds holds a connection forever).
            if skip > core.opts.max_header_size {
                return Err(431);
            }
            if self.head_start.get().is_none() {
                self.head_start.set(Some(Instant::now()));
            }
            return Ok(None);
        }
        // The usual head on the short path; httparse reads any other.
        let mut usual = [UsualField::default(); USUAL_HEADERS];
        let parsed = match parse_usual_head(buf, &mut usual) {
            // (Checked here, not before the parse: `skip` is at hand, and
            // the usual request, with none, pays one addition for it.)
            Some(head) if skip + head.len > core.opts.max_header_size => Err(431),
            Some(head) => {
                let fields = usual[..head.fields].iter().map(|f| {
                    let (ns, ne, vs, ve) = (f.0 as usize, f.1 as usize, f.2 as usize, f.3 as usize);
                    (&buf[ns..ne], ns..ne, vs..ve)
                });
                self.head_read(
                    buf,
                    head.len,
                    head.version,
                    head.method,
                    head.target,
                    fields,
                )
            }
            None => self.parse_head_httparse(buf, skip),
        };
        parsed.map(|head| head.map(|(n, request, body, expect)| (skip + n, request, body, expect)))
    }

    /// `parse_head` for a head the short path declined: httparse's.
    /// `skip`: the blank lines before it, which count against its size.
    #[inline(never)]
    fn parse_head_httparse(&self, buf: &[u8], skip: usize) -> Parsed {
        let room = self.core().opts.max_header_size.saturating_sub(skip);
        let mut slots = [UninitSlot::NEW; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let n = match req.parse_with_uninit_headers(buf, &mut slots) {
            Ok(httparse::Status::Complete(n)) if n <= room => n,
            Ok(httparse::Status::Complete(_)) => return Err(431),
            Ok(httparse::Status::Partial) => {
                if buf.len() > room {
                    return Err(431);
                }
                if self.head_start.get().is_none() {
                    self.head_start.set(Some(Instant::now()));
                }
                return Ok(None);
            }
            Err(httparse::Error::TooManyHeaders) => return Err(431),
            Err(_) => return Err(400),
        };
        // A complete parse has all three.
        let (Some(method), Some(uri), Some(version)) = (req.method, req.path, req.version) else {
            return Err(400);
        };
        let at = |part: &[u8]| part.as_ptr() as usize - buf.as_ptr() as usize;
        let uri_at = at(uri.as_bytes());
        let fields = req.headers.iter().map(|h| {
            let (ns, vs) = (at(h.name.as_bytes()), at(h.value));
            (
                h.name.as_bytes(),
                ns..ns + h.name.len(),
                vs..vs + h.value.len(),
            )
        });
        self.head_read(
            buf,
            n,
            version,
            method.as_bytes(),
            uri_at..uri_at + uri.len(),
            fields,
        )
    }

    /// A complete head of `n` bytes was read from `buf` (by either
    /// parser, and within its size limit): its request, checked.
    /// `fields`: each field's name, and where its name and value are in
    /// `buf`.
    #[inline(always)]
    fn head_read<'b>(
        &self,
        buf: &'b [u8],
        n: usize,
        version: u8,
        method: &[u8],
        target: std::ops::Range<usize>,
        fields: impl Iterator<Item = (&'b [u8], std::ops::Range<usize>, std::ops::Range<usize>)>,
    ) -> Parsed {
        let core = self.core();
        self.head_start.set(None);
        let version = match version {
            0 => Version::Http10,
            _ => Version::Http11,
        };
        let mut request = core
            .spare
            .take()
            .unwrap_or_else(|| Box::new(HTTPServerRequest::empty(core.peer, core.stream.is_tls())));
        // The head is copied once, whole, as bytes; the URI and the fields
        // are ranges of it. Nothing here checks it is UTF-8: a value is
        // checked when it is asked for as text (`HTTPHeaders`), and a value
        // with bytes that are not (obs-text: a Latin-1 `José`, which RFC
        // 9110 5.5 allows) is served all the same, as bytes, and as text
        // decoded as Latin-1 (as Tornado decodes).
        let uri = &buf[target.clone()];
        request.headers.reset_to_block(&buf[..n]);
        request.uri = target;
        let fields = scan_fields(&mut request, fields, buf, &self.host)?;
        let Fields {
            length,
            host,
            chunked,
            continue_expected,
            close,
            keep_alive,
        } = fields;
        if version == Version::Http11 && !host {
            return Err(400);
        }
        let body = match (chunked, length) {
            (true, Some(_)) => return Err(400),
            (true, None) => Some(Body::Chunked),
            (false, Some(0)) | (false, None) => None,
            (false, Some(n)) => Some(Body::Length(n)),
        };
        let expect_continue = continue_expected && version == Version::Http11 && body.is_some();
        // Most paths are short: a plain scan beats memchr's set-up there.
        request.query_at = if uri.len() < 64 {
            uri.iter().position(|&b| b == b'?')
        } else {
            memchr::memchr(b'?', uri)
        }
        .unwrap_or(uri.len());
        request.method = Method::parse_bytes(method);
        request.version = version;
        // `remote` is already the peer's: the request was made for this
        // connection (`HTTPServerRequest::empty(self.peer)`) and stays with it.
        request.keep_alive = match version {
            Version::Http11 => !close,
            Version::Http10 => keep_alive,
        };
        if core.opts.xheaders {
            request.real_ip = crate::http::request::forwarded_ip(&request.headers);
            request.forwarded_https = crate::http::request::forwarded_https(&request.headers);
        }
        Ok(Some((n, request, body, expect_continue)))
    }
}

/// What a head's fields say of its framing.
struct Fields {
    length: Option<u64>,
    host: bool,
    chunked: bool,
    continue_expected: bool,
    /// The first `Connection` value says `close`.
    close: bool,
    /// The first `Connection` value says `keep-alive`.
    keep_alive: bool,
}

/// Names `headers` (httparse's, over `buf`, the head `request.headers`
/// holds a copy of) in `request.headers`, and reads the few that frame the
/// request. `Err(status)` refuses it.
#[inline(always)]
fn scan_fields<'b>(
    request: &mut HTTPServerRequest,
    headers: impl Iterator<Item = (&'b [u8], std::ops::Range<usize>, std::ops::Range<usize>)>,
    buf: &'b [u8],
    hosts: &HostCache,
) -> Result<Fields, u16> {
    let mut f = Fields {
        length: None,
        host: false,
        chunked: false,
        continue_expected: false,
        close: false,
        keep_alive: false,
    };
    let mut connection_seen = false;
    for (name, name_at, value_at) in headers {
        let raw = &buf[value_at.clone()];
        request.headers.push_within(name_at, value_at);
        // Five names matter here; their lengths rule most headers out
        // without a comparison (or a look at the value).
        if !matches!(name.len(), 4 | 6 | 10 | 14 | 17) {
            continue;
        }
        if name.len() == 4 {
            if is_host(name) {
                // One Host, and a valid one (RFC 9112 3.2): a second one is
                // a smuggling attempt or a broken proxy. (Checked as bytes:
                // a valid one is ASCII.)
                if f.host || !hosts.valid(raw) {
                    return Err(400);
                }
                f.host = true;
            }
            continue;
        }
        // The others are rare in a request: their values as text (decoded,
        // if need be, as `HTTPHeaders::get` would give them).
        let value = &*httputil::obs_text(raw);
        if name.len() == 10 {
            // The first one, as `HTTPHeaders::get` would give.
            if !connection_seen && name.eq_ignore_ascii_case(b"connection") {
                connection_seen = true;
                f.close = httputil::has_token(value, "close");
                f.keep_alive = httputil::has_token(value, "keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            // `1*DIGIT` only (RFC 9110 8.6): no sign, no inner blanks.
            let Ok(n) = httputil::parse_content_length(value) else {
                return Err(400);
            };
            if f.length.is_some_and(|l| l != n) {
                return Err(400);
            }
            f.length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Only `chunked` is understood, once, and last.
            if f.chunked {
                return Err(400);
            }
            if !trim_ows(value).eq_ignore_ascii_case("chunked") {
                return Err(if has_chunked_twice(value) { 400 } else { 501 });
            }
            f.chunked = true;
        } else if name.eq_ignore_ascii_case(b"expect") {
            if trim_ows(value).eq_ignore_ascii_case("100-continue") {
                f.continue_expected = true;
            } else {
                return Err(417);
            }
        }
    }
    Ok(f)
}

/// The last `Host` value a connection found valid, for [`valid_host`]
/// without the byte-by-byte check: a keep-alive client sends the same value
/// with every request, and comparing the whole of it with the last one is
/// cheaper. Exact: only a value equal, byte for byte, to one that passed
/// the check skips it. Values longer than the buffer are always checked.
#[derive(Default)]
pub(super) struct HostCache(Cell<HostBytes>);

/// A `Host` value of up to 30 bytes, and its length.
#[derive(Clone, Copy, Default)]
struct HostBytes([u8; 30], u8);

impl HostCache {
    #[inline]
    fn valid(&self, value: &[u8]) -> bool {
        let HostBytes(bytes, len) = self.0.get();
        if bytes
            .get(..usize::from(len))
            .is_some_and(|last| same_short(last, value))
        {
            return true;
        }
        self.check(value)
    }

    /// A value not the same as the last: checked, and kept if it passes.
    #[inline(never)]
    fn check(&self, value: &[u8]) -> bool {
        if !valid_host(value) {
            return false;
        }
        let mut bytes = [0; 30];
        if let Some(slot) = bytes.get_mut(..value.len()) {
            slot.copy_from_slice(value);
            self.0.set(HostBytes(bytes, value.len() as u8));
        }
        true
    }
}

/// Whether two byte strings are equal; for 8 to 16 bytes (a usual `Host`,
/// `127.0.0.1:8080`) with two overlapping 8-byte loads from each, rather
/// than a call into `memcmp`, which costs more than the comparison here.
#[inline]
fn same_short(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if !(8..=16).contains(&n) {
        return a == b;
    }
    let word = |s: &[u8], at: usize| {
        let mut w = [0; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_ne_bytes(w)
    };
    word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8)
}

/// Whether a `Host` value is `uri-host [":" port]` (RFC 3986's reg-name,
/// IPv4 or bracketed IP literal), or empty (allowed when the target has no
/// authority). Every request has one: a table lookup per byte, no search.
fn valid_host(host: &[u8]) -> bool {
    // An IP literal opens with the only `[` a host may have.
    let host = host.strip_prefix(b"[").unwrap_or(host);
    // No early exit: a branch-free pass over a short value is cheaper than
    // a test per byte.
    host.iter()
        .fold(true, |ok, &b| ok & HOST_BYTES[usize::from(b)])
}

/// Whether a four-byte header name is `Host`, in any case: one compare of
/// the bytes with their case bit set (exact for letters, and `host` is all
/// letters). Every request has one.
#[inline]
fn is_host(name: &[u8]) -> bool {
    <[u8; 4]>::try_from(name)
        .is_ok_and(|n| u32::from_le_bytes(n) | 0x2020_2020 == u32::from_le_bytes(*b"host"))
}

/// The bytes a `Host` value may hold after its first: unreserved,
/// sub-delims, `%`, `:`, and the `]` that closes an IP literal.
static HOST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let extra = b"-._~!$&'()*+,;=%:]";
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
};

/// Whether a `Transfer-Encoding` list names `chunked` more than once (a 400)
/// rather than another coding (a 501).
fn has_chunked_twice(value: &str) -> bool {
    value
        .split(',')
        .filter(|c| trim_ows(c).eq_ignore_ascii_case("chunked"))
        .count()
        > 1
}

#[cfg(test)]
mod tests {
    use super::HostCache;

    /// The cache skips the check only for the very bytes that passed it.
    #[test]
    fn host_cache_skips_the_check_only_for_the_same_valid_value() {
        let hosts = HostCache::default();
        assert!(hosts.valid("".as_bytes()), "empty is allowed");
        assert!(hosts.valid("example.com:8080".as_bytes()));
        assert!(
            hosts.valid("example.com:8080".as_bytes()),
            "again, from the cache"
        );
        for bad in [
            "example.com:8080/",
            "example.com:808 ",
            "exa mple.com",
            "a@b",
            "[::1][",
        ] {
            assert!(!hosts.valid(bad.as_bytes()), "{bad:?}");
        }
        assert!(hosts.valid("example.com:8080".as_bytes()));
        assert!(
            hosts.valid("example.com:808".as_bytes()),
            "a prefix is checked, and valid"
        );
        let long = "a-rather-long-host-name.example.com:8080";
        assert!(long.len() > 30);
        assert!(
            hosts.valid(long.as_bytes()),
            "too long to keep: checked each time"
        );
        assert!(hosts.valid(long.as_bytes()));
        assert!(!hosts.valid(format!("{long}/").as_bytes()));
    }

    #[test]
    fn same_short_is_equality() {
        let words = [
            "",
            "a",
            "1234567",
            "12345678",
            "127.0.0.1",
            "127.0.0.1:8080",
            "0123456789abcdef",
            "0123456789abcdefg",
        ];
        for a in words {
            for b in words {
                assert_eq!(
                    super::same_short(a.as_bytes(), b.as_bytes()),
                    a == b,
                    "{a:?} {b:?}"
                );
            }
        }
        // A difference anywhere in 8 to 16 bytes is seen.
        let base = *b"0123456789abcdef";
        for n in 8..=16 {
            for i in 0..n {
                let mut other = base;
                other[i] ^= 1;
                assert!(!super::same_short(&base[..n], &other[..n]), "{n} {i}");
            }
        }
    }
}
