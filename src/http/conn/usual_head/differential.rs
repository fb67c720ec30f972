//! The short path held to httparse, byte for byte: the one check behind the
//! unit tests below, the `usual_head` fuzz target (`squall::__fuzz`) and
//! the replay of its corpus. Whatever head the short path takes, httparse
//! (as `parse_head` calls it) must take too, with the same length, method,
//! target, version, and the same fields at the same places; anything
//! httparse refuses or finds incomplete, the short path must decline. The
//! server's answers then do not depend on which of the two read a head.

use std::mem::MaybeUninit;
use std::ops::Range;

use super::{parse_usual_head, UsualField, USUAL_HEADERS};

/// A head as either parser reads it: places in the buffer.
#[derive(Debug, PartialEq, Eq)]
struct Reading {
    len: usize,
    method: Range<usize>,
    target: Range<usize>,
    version: u8,
    /// Each field's name and (trimmed) value.
    fields: Vec<(Range<usize>, Range<usize>)>,
}

/// The short path's reading of `buf`; `None` where it declines.
fn short(buf: &[u8]) -> Option<Reading> {
    let mut fields = [UsualField::default(); USUAL_HEADERS];
    let head = parse_usual_head(buf, &mut fields)?;
    // The method is the first bytes of `buf`, by construction: say so.
    assert_eq!(head.method.as_ptr(), buf.as_ptr(), "method not at 0");
    assert!(head.fields <= USUAL_HEADERS);
    Some(Reading {
        len: head.len,
        method: 0..head.method.len(),
        target: head.target,
        version: head.version,
        fields: fields[..head.fields]
            .iter()
            .map(|f| (f.0 as usize..f.1 as usize, f.2 as usize..f.3 as usize))
            .collect(),
    })
}

/// httparse's reading of `buf` with the server's settings (default config,
/// 100 field slots); `Err` with its verdict for anything but a complete head.
fn reference(buf: &[u8]) -> Result<Reading, String> {
    // (`Header` is `Copy`: no inline `const` block, which needs Rust 1.79.)
    let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); 100];
    let mut req = httparse::Request::new(&mut []);
    let n = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("partial".into()),
        Err(e) => return Err(format!("{e:?}")),
    };
    let at = |part: &[u8]| part.as_ptr() as usize - buf.as_ptr() as usize;
    let place = |part: &[u8]| at(part)..at(part) + part.len();
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err("complete without a request line".into());
    };
    Ok(Reading {
        len: n,
        method: place(method.as_bytes()),
        target: place(target.as_bytes()),
        version,
        fields: req
            .headers
            .iter()
            .map(|h| (place(h.name.as_bytes()), place(h.value)))
            .collect(),
    })
}

/// Panics if the short path's reading of `buf` is not httparse's: it took
/// a head httparse refuses or finds incomplete, or read one differently.
/// Also holds what the server relies on: the head lies within `buf` and
/// ends with the blank line; the method, target, names and values are
/// printable ASCII (values: and HTAB inside), names and targets not empty.
/// Returns whether the short path took the head.
pub(crate) fn check(buf: &[u8]) -> bool {
    let Some(got) = short(buf) else {
        return false;
    };
    let shown = || String::from_utf8_lossy(&buf[..buf.len().min(600)]).into_owned();
    let want = match reference(buf) {
        Ok(want) => want,
        Err(verdict) => panic!(
            "the short path took a head httparse calls {verdict}: {:?}",
            shown()
        ),
    };
    assert_eq!(got, want, "the two parsers read {:?} differently", shown());
    let head = &buf[..got.len];
    assert!(head.ends_with(b"\r\n\r\n"), "{:?}", shown());
    let printable = |r: &Range<usize>, blanks: bool| {
        head[r.clone()]
            .iter()
            .all(|&b| (0x21..0x7f).contains(&b) || (blanks && (b == b' ' || b == b'\t')))
    };
    assert!(!got.method.is_empty() && printable(&got.method, false));
    assert!(!got.target.is_empty() && printable(&got.target, false));
    for (name, value) in &got.fields {
        assert!(!name.is_empty() && printable(name, false), "{:?}", shown());
        assert!(printable(value, true), "{:?}", shown());
        // Trimmed: no blank at either end (httparse's trimming, which
        // the equality above already holds it to; said here for a reader).
        let v = &head[value.clone()];
        assert!(!v.starts_with(b" ") && !v.ends_with(b" ") && !v.ends_with(b"\t"));
    }
    true
}

/// `check` on `buf` and on the buffers a head split across reads gives:
/// every prefix of the head the short path took (of a head past 512 bytes,
/// 64 cuts spread over it and every cut in its last 8 bytes, where the
/// blank line that ends it is). Returns whether it took `buf`'s head.
pub(crate) fn check_with_prefixes(buf: &[u8]) -> bool {
    if !check(buf) {
        return false;
    }
    let len = short(buf).map_or(0, |h| h.len);
    let step = if len <= 512 { 1 } else { len / 64 };
    let cuts = (0..len).step_by(step).chain(len.saturating_sub(8)..len);
    for cut in cuts {
        // A prefix of a complete head is not complete: both must say so.
        assert!(!check(&buf[..cut]), "a prefix of {cut} bytes taken");
    }
    true
}

/// Heads for the generated cases: usual ones (GET, a form POST, chunked,
/// HTTP/1.0 with empty and blank values, 12 fields, long values, pipelined)
/// and a few just past usual (13 fields, obs-text).
#[cfg(test)]
pub(crate) fn seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = [
        &b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8888\r\n\r\n"[..],
        b"POST /submit?a=1&b=2 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\nhello",
        b"GET /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"PUT /x HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\nX-Empty:\r\nX-Blank: \t \r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: b\r\n\r\n",
        b"GET /static/css/site.min.css?v=0123456789abcdef HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\nAccept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\nAccept-Encoding: gzip, deflate\r\nCookie: a=b; session=\"x y\"\r\n\r\n",
        b"M-SEARCH /!#$%&'*+-.^_`|~09azAZ HTTP/1.1\r\nHost: x\r\nX:\t tabbed\tvalue\t\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Latin: Jos\xe9\r\n\r\n",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    for fields in [USUAL_HEADERS, USUAL_HEADERS + 1] {
        let mut head = b"GET /fields HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 1..fields {
            head.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        seeds.push(head);
    }
    seeds
}

/// A small deterministic generator (xorshift64*): reproducible cases with
/// no dependency.
#[cfg(test)]
pub(crate) struct Cases(u64);

#[cfg(test)]
impl Cases {
    /// Cases from `seed`.
    pub(crate) fn new(seed: u64) -> Cases {
        Cases(seed | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 16) as usize % n
    }

    /// A byte that matters to a head parser, or any byte.
    fn byte(&mut self) -> u8 {
        const SPECIAL: &[u8] = b"\r\n\0\t :\x7f\x80\xff\xc3\"(@/?";
        if self.below(4) == 0 {
            self.below(256) as u8
        } else {
            SPECIAL[self.below(SPECIAL.len())]
        }
    }

    /// `head` mutated one to four times: a byte replaced, inserted,
    /// deleted or with a bit flipped; a piece repeated; a cut.
    pub(crate) fn mutate(&mut self, head: &[u8]) -> Vec<u8> {
        let mut out = head.to_vec();
        for _ in 0..1 + self.below(4) {
            let at = self.below(out.len() + 1);
            match self.below(7) {
                0 | 1 if at < out.len() => out[at] = self.byte(),
                2 => {
                    let b = self.byte();
                    out.insert(at, b);
                }
                3 if at < out.len() => {
                    out.remove(at);
                }
                4 if at < out.len() => out[at] ^= 1 << self.below(8),
                5 => {
                    let end = (at + 1 + self.below(24)).min(out.len());
                    let piece = out[at..end].to_vec();
                    let to = self.below(out.len() + 1);
                    out.splice(to..to, piece);
                }
                _ => out.truncate(at),
            }
        }
        out
    }
}

/// `count` generated cases from `seed` through [`check`] (and, for one in
/// sixteen, its prefixes): (cases the short path took, cases it declined).
#[cfg(test)]
pub(crate) fn run_generated(seed: u64, count: usize) -> (usize, usize) {
    let seeds = seeds();
    let mut cases = Cases::new(seed);
    let (mut taken, mut declined) = (0, 0);
    for i in 0..count {
        let seed = &seeds[cases.below(seeds.len())];
        // A few seeds as they are, so the usual heads are always there.
        let head = if i % 8 == 0 {
            seed.clone()
        } else {
            cases.mutate(seed)
        };
        let took = if i % 16 == 0 {
            check_with_prefixes(&head)
        } else {
            check(&head)
        };
        if took {
            taken += 1;
        } else {
            declined += 1;
        }
    }
    (taken, declined)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check itself tells the two parsers apart: a reading that differs
    /// in any part fails it (else a green run would prove nothing).
    #[test]
    fn readings_that_differ_are_caught() {
        let head = b"GET /x HTTP/1.1\r\nHost: a\r\nX: b c \r\n\r\n";
        let want = reference(head).unwrap();
        assert_eq!(short(head).unwrap(), want);
        assert_eq!(want.fields[1].1, 29..32, "value trimmed");
        let mut other = short(head).unwrap();
        other.fields[1].1.end += 1;
        assert_ne!(other, want);
        // httparse's verdicts on what the short path must decline.
        assert_eq!(
            reference(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap_err(),
            "partial"
        );
        assert_eq!(
            reference(b"GET / HTTP/1.1\r\nHo st: a\r\n\r\n").unwrap_err(),
            "HeaderName"
        );
    }

    /// Every seed is read alike; the usual ones are taken, and the two past
    /// usual (13 fields, obs-text) declined and left to httparse.
    #[test]
    fn the_seeds() {
        let seeds = seeds();
        for seed in &seeds {
            let taken = check_with_prefixes(seed);
            let usual = !seed.contains(&0xe9) && seed.windows(6).all(|w| w != b"X-12: ");
            assert_eq!(taken, usual, "{:?}", String::from_utf8_lossy(seed));
            assert!(reference(seed).is_ok());
        }
    }

    /// Mutated heads (bytes replaced, inserted, deleted, flipped; pieces
    /// repeated; cuts), some with every prefix: the short path never takes
    /// what httparse refuses or finds incomplete, and reads what it takes
    /// as httparse does. A debug build runs this count in half a second;
    /// `differential_million` runs a million (about 5 s).
    #[test]
    fn mutated_heads_are_read_as_httparse_reads_them() {
        let (taken, declined) = run_generated(0x5eed_0001, 100_000);
        // Both sides of the check are reached, often.
        assert!(taken > 15_000, "taken {taken}");
        assert!(declined > 15_000, "declined {declined}");
    }

    /// The places of a head's fields are 32-bit (here, and in
    /// `HTTPHeaders`): the head-size limit keeps every head in reach of
    /// them, whatever it is set to.
    #[test]
    fn the_head_size_limit_keeps_places_in_32_bits() {
        let io_loop = crate::IOLoop::new().unwrap();
        let serve = |_: &crate::http::HTTPServerRequest, _: &crate::http::HTTPConnection| Ok(());
        let server = crate::http::HTTPServer::with_loop(&io_loop, serve);
        server.set_max_header_size(usize::MAX);
        assert_eq!(server.opts.borrow().max_header_size, u32::MAX as usize);
        server.set_max_header_size(0);
        assert_eq!(server.opts.borrow().max_header_size, 64);
        server.set_max_header_size(4096);
        assert_eq!(server.opts.borrow().max_header_size, 4096);
        io_loop.close();
    }

    /// A million generated cases (run with `--ignored`; the count and seed
    /// from `USUAL_HEAD_CASES` and `USUAL_HEAD_SEED` if set).
    #[test]
    #[ignore = "long: a million cases, about 5 s in a debug build"]
    fn differential_million() {
        let var = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let count = var("USUAL_HEAD_CASES", 1_000_000) as usize;
        let seed = var("USUAL_HEAD_SEED", 0x5eed_1000_0000);
        let start = std::time::Instant::now();
        let (taken, declined) = run_generated(seed, count);
        eprintln!(
            "usual head differential: {count} cases (seed {seed:#x}), {taken} taken, \
             {declined} declined, {:.1} s",
            start.elapsed().as_secs_f64()
        );
        assert!(taken > count / 10);
    }
}
