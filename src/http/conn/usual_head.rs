//! The usual request head on a short path of its own: plain ASCII, CRLF
//! line ends, a few headers. httparse handles everything (SIMD set-up for
//! a one-byte target, bare-LF line ends, obs-text, the many error cases)
//! and makes text of the method, target and names (a UTF-8 check each);
//! this scan reads the usual head as places in its bytes, with no UTF-8
//! check (it takes ASCII only), and hands anything else to httparse. For
//! `GET / HTTP/1.1` with one `Host` it saves about 160 instructions per
//! request (`bench/http_callgrind.sh squallraw`, one connection).
//!
//! It is a strict subset of httparse's request parser with its default
//! configuration (what `parse_head` uses): every head it accepts, httparse
//! accepts with the same method, target, version, fields (names, values
//! trimmed alike) and length; anything else, including a head not complete
//! yet and every malformed one, it declines (`None`), and httparse decides.
//! So the server's answers do not depend on which of the two read a head
//! (the tests below hold the two to that on generated heads).

// The check that holds this path to httparse (tests, and the `usual_head`
// fuzz target).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod differential;

/// How many fields the short path takes; a head with more goes to httparse
/// (which takes up to `MAX_HEADERS`). Few: the array is set up per head.
pub(super) const USUAL_HEADERS: usize = 12;

/// A `tchar` (RFC 9110 5.6.2): method and field-name bytes.
const TOKEN: u8 = 1;
/// A request-target byte this path takes: visible ASCII (httparse takes
/// bytes from 0x80 too; those go to it).
const TARGET: u8 = 2;
/// A field-value byte this path takes: visible ASCII, SP, HTAB (httparse
/// takes obs-text too; such values go to it).
const VALUE: u8 = 4;

/// Each byte's classes: one table lookup per byte.
static CLASSES: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let mut k = 0;
        if c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            )
        {
            k |= TOKEN;
        }
        if c >= 0x21 && c <= 0x7e {
            k |= TARGET;
        }
        if (c >= 0x20 && c <= 0x7e) || c == b'\t' {
            k |= VALUE;
        }
        t[b] = k;
        b += 1;
    }
    t
}

/// The length of the run of bytes of `class` at the start of `bytes`;
/// `None` if the run reaches the end (the head is not complete, or not on
/// this path: httparse decides).
#[inline(always)]
fn run(bytes: &[u8], class: u8) -> Option<usize> {
    bytes
        .iter()
        .position(|&b| CLASSES[usize::from(b)] & class == 0)
}

/// `run` for the bytes from `lo` to `~` (0x7E), and, where `class` says
/// so, more (HTAB in a value): eight bytes at a time while none is outside
/// the range (a value such as a `User-Agent` is long), then byte by byte.
#[inline(always)]
fn run_range(bytes: &[u8], lo: u8, class: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    while let Some(block) = bytes.get(at..at + 8) {
        let x = u64::from_le_bytes(block.try_into().ok()?);
        // A byte below `lo` (it borrows into its high bit), or above 0x7E
        // (0x7F carries into it; from 0x80 it is set already). Exact for
        // "is there one", which is all this asks.
        let below = x.wrapping_sub(ONES * u64::from(lo)) & !x;
        let above = x.wrapping_add(ONES) | x;
        if (below | above) & HIGHS != 0 {
            break;
        }
        at += 8;
    }
    Some(at + run(&bytes[at..], class)?)
}
/// Where one field is in the head: its name's start and end, its value's
/// (trimmed) start and end.
#[derive(Clone, Copy, Default)]
pub(super) struct UsualField(pub u32, pub u32, pub u32, pub u32);

/// A usual head, read.
pub(super) struct UsualHead<'b> {
    /// Its length, the blank line that ends it included.
    pub len: usize,
    /// 1 for HTTP/1.1, 0 for HTTP/1.0 (as httparse says).
    pub version: u8,
    pub method: &'b [u8],
    /// Where the request target is.
    pub target: std::ops::Range<usize>,
    /// How many of the fields given were filled.
    pub fields: usize,
}

/// Reads `buf` (a head, blank lines before it skipped) if it is a usual
/// one, its fields' places in `fields`. `None`: httparse decides (the head
/// may be incomplete, malformed, or merely unusual).
///
/// Nothing here is made text: the fields are places in the head (which
/// `HTTPHeaders` keeps as bytes), so there is no UTF-8 check to pay for.
/// Always inlined into `parse_head`, its one caller: it is every request's
/// path.
#[inline(always)]
pub(super) fn parse_usual_head<'b>(
    buf: &'b [u8],
    fields: &mut [UsualField; USUAL_HEADERS],
) -> Option<UsualHead<'b>> {
    // The request line: method SP target SP HTTP/1.x CRLF. A `GET` (most
    // requests) in one comparison.
    let m = if buf.starts_with(b"GET ") {
        3
    } else {
        let m = run(buf, TOKEN)?;
        if m == 0 || buf[m] != b' ' {
            return None;
        }
        m
    };
    let t_at = m + 1;
    let t = run_range(&buf[t_at..], 0x21, TARGET)?;
    let v_at = t_at + t;
    if t == 0 || buf[v_at] != b' ' {
        return None;
    }
    // The version and CRLF as two integers, not a byte-wise comparison.
    let line_end: [u8; 10] = buf.get(v_at + 1..v_at + 11)?.try_into().ok()?;
    let [a, b, c, d, e, f, g, h, cr, lf] = line_end;
    let version = match u64::from_le_bytes([a, b, c, d, e, f, g, h]) {
        v if v == u64::from_le_bytes(*b"HTTP/1.1") => 1,
        v if v == u64::from_le_bytes(*b"HTTP/1.0") => 0,
        _ => return None,
    };
    if [cr, lf] != *b"\r\n" {
        return None;
    }
    let mut at = v_at + 11;
    let mut count = 0;
    // The fields: name ":" OWS value OWS CRLF, until a blank line.
    loop {
        let rest = &buf[at..];
        let n = run(rest, TOKEN)?;
        if n == 0 {
            // Not a name: the blank line that ends the head, or not usual.
            if rest.get(..2)? == b"\r\n" {
                break;
            }
            return None;
        }
        if rest[n] != b':' || count == USUAL_HEADERS {
            return None;
        }
        let mut vs = n + 1;
        while matches!(rest.get(vs), Some(b' ' | b'\t')) {
            vs += 1;
        }
        let v = run_range(&rest[vs..], 0x20, VALUE)?;
        let mut ve = vs + v;
        if rest.get(ve..ve + 2)? != b"\r\n" {
            return None;
        }
        let next = at + ve + 2;
        // Trailing blanks are not part of the value (as httparse trims).
        while ve > vs && matches!(rest[ve - 1], b' ' | b'\t') {
            ve -= 1;
        }
        fields[count] = UsualField(
            at as u32,
            (at + n) as u32,
            (at + vs) as u32,
            (at + ve) as u32,
        );
        count += 1;
        at = next;
    }
    Some(UsualHead {
        len: at + 2,
        version,
        method: &buf[..m],
        target: t_at..v_at,
        fields: count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = (usize, String, String, u8, Vec<(String, Vec<u8>)>);

    fn usual(buf: &[u8]) -> Option<Parsed> {
        let mut fields = [UsualField::default(); USUAL_HEADERS];
        let head = parse_usual_head(buf, &mut fields)?;
        let text = |s: u32, e: u32| &buf[s as usize..e as usize];
        Some((
            head.len,
            String::from_utf8(head.method.to_vec()).unwrap(),
            String::from_utf8(buf[head.target].to_vec()).unwrap(),
            head.version,
            fields[..head.fields]
                .iter()
                .map(|f| {
                    (
                        String::from_utf8(text(f.0, f.1).to_vec()).unwrap(),
                        text(f.2, f.3).to_vec(),
                    )
                })
                .collect(),
        ))
    }

    /// httparse's reading, as `parse_head` asks for it; `None` for
    /// anything but a complete head.
    fn reference(buf: &[u8]) -> Option<Parsed> {
        let mut slots = [crate::http::conn::UninitSlot::NEW; 100];
        let mut req = httparse::Request::new(&mut []);
        match req.parse_with_uninit_headers(buf, &mut slots) {
            Ok(httparse::Status::Complete(n)) => Some(described(n, &req)),
            _ => None,
        }
    }

    fn described(n: usize, req: &httparse::Request<'_, '_>) -> Parsed {
        (
            n,
            req.method.unwrap().to_owned(),
            req.path.unwrap().to_owned(),
            req.version.unwrap(),
            req.headers
                .iter()
                .map(|h| (h.name.to_owned(), h.value.to_vec()))
                .collect(),
        )
    }

    #[test]
    fn the_usual_head() {
        let head = b"GET /a?b=c HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: \t two  words \t\r\nEmpty:\r\nBlank:   \r\n\r\nbody";
        let got = usual(head).expect("taken");
        assert_eq!(got, reference(head).unwrap());
        assert_eq!(got.0, head.len() - 4);
        assert_eq!(got.4[1].1, b"two  words");
        assert_eq!(got.4[2].1, b"");
        assert_eq!(got.4[3].1, b"");
        let head = b"PROPFIND * HTTP/1.0\r\n\r\n";
        assert_eq!(usual(head), reference(head));
        assert_eq!(usual(head).unwrap().3, 0);
    }

    #[test]
    fn declines_what_it_does_not_take() {
        let cases: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nHost: x\r\n",                   // not complete
            b"GET / HTTP/1.1\r\nHost: x\r\n\r",                 // not complete
            b"GET / HTTP/1.1",                                  // not complete
            b"GET / HTTP/1.1\nHost: x\n\n",                     // bare LF: httparse's
            b"GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",       // UTF-8 target: httparse's
            b"GET / HTTP/1.1\r\nX: Jos\xe9\r\nHost: x\r\n\r\n", // obs-text
            b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",              // a blank before the colon
            b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",              // two blanks
            b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",               // no such version
            b"GET / HTTP/1.1\r\n Host: x\r\n\r\n",              // folded
            b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",               // a lone CR
            b"GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n",              // DEL
            b"G\x00T / HTTP/1.1\r\n\r\n",                       // NUL
            b"/ HTTP/1.1\r\n\r\n",                              // no method
        ];
        for case in cases {
            assert_eq!(usual(case), None, "{:?}", String::from_utf8_lossy(case));
        }
        // More fields than the short path holds: httparse's.
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=USUAL_HEADERS {
            many.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(usual(&many), None);
        many.drain(16..24);
        assert_eq!(usual(&many), reference(&many));
    }

    /// Heads made of the bytes that matter at the places that matter,
    /// and every prefix of them: whatever the short path takes, httparse
    /// reads the same.
    #[test]
    fn a_strict_subset_of_httparse() {
        let pieces: &[&[u8]] = &[
            b"GET",
            b"POST",
            b"M-x",
            b" ",
            b"  ",
            b"/",
            b"/p?q=1",
            b"*",
            b"\xc3\xa9",
            b"\"<>",
            b"HTTP/1.1",
            b"HTTP/1.0",
            b"HTTP/1.2",
            b"\r\n",
            b"\n",
            b"\r",
            b"Host",
            b"A_b",
            b":",
            b": ",
            b"\t",
            b"v a l",
            b"\x7f",
            b"\xe9",
            b"\x00",
            b"\x01",
            b"(",
            b"@",
        ];
        // A small deterministic generator: no dependency, reproducible.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut taken = 0;
        for _ in 0..20_000 {
            let mut head = Vec::new();
            // Mostly well-formed skeletons, with pieces swapped in.
            let skeleton: [&[u8]; 12] = [
                b"GET",
                b" ",
                b"/x",
                b" ",
                b"HTTP/1.1",
                b"\r\n",
                b"Host",
                b": ",
                b"v",
                b"\r\n",
                b"\r\n",
                b"",
            ];
            for part in skeleton {
                if next(6) == 0 {
                    head.extend_from_slice(pieces[next(pieces.len())]);
                } else {
                    head.extend_from_slice(part);
                }
            }
            for cut in 0..=head.len() {
                let buf = &head[..cut];
                if let Some(got) = usual(buf) {
                    taken += 1;
                    assert_eq!(
                        Some(got),
                        reference(buf),
                        "{:?}",
                        String::from_utf8_lossy(buf)
                    );
                }
            }
        }
        assert!(
            taken > 1000,
            "the generator rarely made a usual head: {taken}"
        );
    }
}
