//! Response heads: the status line, the head of the usual response cached
//! per server (with its `Date`, rewritten once a second), and numbers in
//! decimal and hex without going through `fmt`.

use std::cell::RefCell;

use crate::httputil;
use crate::IOLoop;

/// `HTTP/1.1 200 OK\r\n`.
pub(crate) fn write_status_line(out: &mut Vec<u8>, status: u16) {
    out.extend_from_slice(b"HTTP/1.1 ");
    let s = status.min(999);
    out.extend_from_slice(&[
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
        b' ',
    ]);
    out.extend_from_slice(httputil::responses(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The lines that start a response head, shared by a server's connections
/// and checked at most once per loop iteration, against the loop's latest
/// monotonic clock reading; the wall clock is read only when a new second
/// has begun. A busy server answers many requests per iteration (and per
/// second), and the `Date` only changes once a second. A handler that
/// blocks the loop for seconds could send a `Date` that old; the blocking
/// log reports that handler.
#[derive(Debug)]
pub(crate) struct Heads(RefCell<HeadCache>);

/// `Server: squall\r\n`, the first line of [`HeadCache::common`].
const SERVER_LINE: &[u8] = b"Server: squall\r\n";

#[derive(Debug)]
struct HeadCache {
    /// The loop iteration the cache was last checked in.
    iteration: u64,
    /// The second `common` and `ok_html` hold.
    secs: u64,
    /// When, on the monotonic clock, the wall clock's next second begins:
    /// until then an iteration needs no wall-clock read. In the loop's
    /// `recent_ticks()` nanoseconds; 0 before the first look.
    next_second: u64,
    /// `Server: squall\r\nDate: ...\r\n`.
    common: Vec<u8>,
    /// The status line of a 200, `common`, the default `Content-Type` (if
    /// the server has one), and `Content-Length: `: the whole head but the
    /// length's digits, for the usual response.
    ok: Vec<u8>,
    /// The server's default `Content-Type` line, if any.
    content_type: Vec<u8>,
}

impl Heads {
    /// A cache for a server whose responses default to `content_type`.
    pub(crate) fn new(content_type: Option<&str>) -> Heads {
        let content_type = content_type
            .map(|ct| format!("Content-Type: {ct}\r\n").into_bytes())
            .unwrap_or_default();
        Heads(RefCell::new(HeadCache {
            iteration: u64::MAX,
            secs: u64::MAX,
            next_second: 0,
            common: Vec::new(),
            ok: Vec::new(),
            content_type,
        }))
    }

    /// Runs `f` with the cache, fresh for `io_loop`'s current iteration.
    #[inline]
    fn with(&self, io_loop: &IOLoop, f: impl FnOnce(&HeadCache)) {
        let mut cache = self.0.borrow_mut();
        let iteration = io_loop.iteration();
        if cache.iteration != iteration {
            cache.iteration = iteration;
            // The loop has usually read the monotonic clock already (for its
            // blocking log); comparing with that is cheaper than reading the
            // wall clock. The wall clock is read again at each new second, so
            // a step in it shows within one.
            let now = io_loop.recent_ticks();
            if now >= cache.next_second {
                cache.refresh(now);
            }
        }
        f(&cache);
    }

    /// Appends `Server` and `Date`, but for those the response sets itself.
    #[inline]
    pub(crate) fn write_common(
        &self,
        io_loop: &IOLoop,
        out: &mut Vec<u8>,
        own_server: bool,
        own_date: bool,
    ) {
        self.with(io_loop, |cache| {
            let common = &cache.common[..];
            match (own_server, own_date) {
                (false, false) => out.extend_from_slice(common),
                (true, false) => out.extend_from_slice(&common[SERVER_LINE.len()..]),
                (false, true) => out.extend_from_slice(SERVER_LINE),
                (true, true) => {}
            }
        });
    }

    /// Appends the usual response: its head in one copy (the status line
    /// of a 200, `Server`, `Date`, the default `Content-Type`, and
    /// `Content-Length` with `length`), then `body` (empty for a `HEAD`,
    /// whose `length` is the body's it would have).
    #[inline]
    pub(crate) fn write_ok(&self, io_loop: &IOLoop, out: &mut Vec<u8>, length: usize, body: &[u8]) {
        self.with(io_loop, |cache| {
            // Room for it all at once: the copies below never reallocate.
            out.reserve(cache.ok.len() + 24 + body.len());
            out.extend_from_slice(&cache.ok);
        });
        write_length_line(out, length);
        out.extend_from_slice(body);
    }
}

impl HeadCache {
    /// A new second (or the first): reads the wall clock, and rewrites the
    /// cached heads if the second changed.
    #[cold]
    #[inline(never)]
    /// `now` is the loop's `recent_ticks()`.
    fn refresh(&mut self, now: u64) {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let to_next = 1_000_000_000 - u64::from(wall.subsec_nanos());
        // `now` may be a little old, which only makes this early: harmless.
        self.next_second = now.saturating_add(to_next);
        let secs = wall.as_secs();
        if self.secs == secs {
            return;
        }
        self.secs = secs;
        let mut date = [0u8; 29];
        httputil::write_http_date(secs, &mut date);
        let HeadCache {
            common,
            ok,
            content_type,
            ..
        } = self;
        common.clear();
        common.extend_from_slice(SERVER_LINE);
        common.extend_from_slice(b"Date: ");
        common.extend_from_slice(&date);
        common.extend_from_slice(b"\r\n");
        ok.clear();
        ok.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        ok.extend_from_slice(common);
        ok.extend_from_slice(content_type);
        ok.extend_from_slice(b"Content-Length: ");
    }
}

/// The digits of a `Content-Length` and the blank line after them, in one
/// copy: a short length (the usual one) is three stores, not three appends.
#[inline]
fn write_length_line(out: &mut Vec<u8>, n: usize) {
    let digit = |d: usize| b'0' + (d % 10) as u8;
    match n {
        0..=9 => out.extend_from_slice(&[digit(n), b'\r', b'\n', b'\r', b'\n']),
        10..=99 => out.extend_from_slice(&[digit(n / 10), digit(n), b'\r', b'\n', b'\r', b'\n']),
        100..=999 => out.extend_from_slice(&[
            digit(n / 100),
            digit(n / 10),
            digit(n),
            b'\r',
            b'\n',
            b'\r',
            b'\n',
        ]),
        _ => {
            write_long_usize(out, n);
            out.extend_from_slice(b"\r\n\r\n");
        }
    }
}

/// Decimal digits, without going through `fmt`.
#[inline]
pub(crate) fn write_usize(out: &mut Vec<u8>, n: usize) {
    // Most lengths have a few digits: fixed-size copies, no `memcpy` call.
    let digit = |d: usize| b'0' + (d % 10) as u8;
    match n {
        0..=9 => out.push(digit(n)),
        10..=99 => out.extend_from_slice(&[digit(n / 10), digit(n)]),
        100..=999 => out.extend_from_slice(&[digit(n / 100), digit(n / 10), digit(n)]),
        _ => write_long_usize(out, n),
    }
}

#[inline(never)]
fn write_long_usize(out: &mut Vec<u8>, mut n: usize) {
    let digit = |d: usize| b'0' + (d % 10) as u8;
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = digit(n);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Lower-case hex digits (chunk sizes).
pub(crate) fn write_hex(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[n % 16];
        n /= 16;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimal_and_hex() {
        for n in [0, 7, 9, 10, 42, 99, 100, 512, 999, 1000, 65_535, usize::MAX] {
            let mut out = Vec::new();
            super::write_usize(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
            out.clear();
            super::write_hex(&mut out, n);
            assert_eq!(out, format!("{n:x}").into_bytes());
            out.clear();
            super::write_length_line(&mut out, n);
            assert_eq!(out, format!("{n}\r\n\r\n").into_bytes());
        }
    }
}
