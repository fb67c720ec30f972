//! The gzip content coding (RFC 1952) for the server, its applications and
//! the HTTP client: a streaming compressor whose every flush reaches the
//! peer decodable ([`GzipStream`]), and a streaming decompressor bounded by
//! the size of what it produces ([`Gunzip`]). Feature `gzip`.
//!
//! Internal: users meet it as `compress_response`,
//! `HTTPServer::set_decompress_request` and `HTTPRequest::decompress_response`.

use std::cell::RefCell;
use std::io::Write;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Tornado's `GZIP_LEVEL`: gzip's own default, a better trade of CPU for
/// size than Python's 9.
const LEVEL: u32 = 6;

/// The gzip member header: magic, deflate, no flags, no time, no extra
/// flags, OS unknown (as Python's `gzip` writes with `mtime=0`).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

thread_local! {
    /// A compressor kept for the next response: deflate's tables are a few
    /// hundred KiB, worth resetting rather than allocating per response.
    static SPARE: RefCell<Option<Box<Compress>>> = const { RefCell::new(None) };
}

/// One gzip member, compressed as it is written.
pub(crate) struct GzipStream {
    /// `None` once the member is finished (the compressor went back).
    compress: Option<Box<Compress>>,
    crc: Crc,
    header_written: bool,
}

impl GzipStream {
    /// A new member (with the thread's spare compressor, if it has one).
    pub(crate) fn new() -> GzipStream {
        let spare = SPARE.with(|s| s.borrow_mut().take());
        let compress = match spare {
            Some(mut c) => {
                c.reset();
                c
            }
            None => Box::new(Compress::new(Compression::new(LEVEL), false)),
        };
        GzipStream {
            compress: Some(compress),
            crc: Crc::new(),
            header_written: false,
        }
    }

    /// Compresses `input` onto `out`. Not `end`: with a sync flush, so
    /// everything written so far can be decoded from what is in `out` (a
    /// `flush()`ed response reaches the client as it is sent). `end`: the
    /// member's end and trailer; nothing may be written after.
    pub(crate) fn write(&mut self, input: &[u8], out: &mut Vec<u8>, end: bool) {
        let Some(c) = self.compress.as_deref_mut() else {
            debug_assert!(false, "write after the end of a gzip member");
            return;
        };
        if !self.header_written {
            self.header_written = true;
            out.extend_from_slice(&HEADER);
        }
        self.crc.update(input);
        let flush = if end {
            FlushCompress::Finish
        } else {
            FlushCompress::Sync
        };
        deflate(c, input, out, flush);
        if end {
            out.extend_from_slice(&self.crc.sum().to_le_bytes());
            out.extend_from_slice(&self.crc.amount().to_le_bytes());
            self.give_back();
        }
    }

    fn give_back(&mut self) {
        if let Some(c) = self.compress.take() {
            // `try_with`: a thread being torn down keeps nothing.
            let _ = SPARE.try_with(|s| {
                if let Ok(mut spare) = s.try_borrow_mut() {
                    *spare = Some(c);
                }
            });
        }
    }
}

impl Drop for GzipStream {
    fn drop(&mut self) {
        self.give_back();
    }
}

/// `input`, gzipped whole.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn gzip(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 3 + 64);
    GzipStream::new().write(input, &mut out, true);
    out
}

/// Runs the compressor over all of `input` with `flush`, growing `out` as
/// needed (`compress_vec` only fills the spare capacity).
fn deflate(c: &mut Compress, mut input: &[u8], out: &mut Vec<u8>, flush: FlushCompress) {
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(input.len() / 2 + 4096);
        }
        let (in_before, out_before) = (c.total_in(), c.total_out());
        let room = out.capacity() - out.len();
        let status = c.compress_vec(input, out, flush);
        let used = (c.total_in() - in_before) as usize;
        let made = (c.total_out() - out_before) as usize;
        input = &input[used..];
        match status {
            Ok(Status::StreamEnd) => return,
            // Deflate cannot fail on its own input; stop rather than spin.
            Err(_) => return,
            Ok(Status::BufError) if used == 0 && made == 0 => return,
            Ok(_) => {}
        }
        // Done when the input is in and the output did not fill up (so the
        // flush is complete); a finish goes on to `StreamEnd`.
        if input.is_empty() && made < room && !matches!(flush, FlushCompress::Finish) {
            return;
        }
    }
}

/// Why a gzip body could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GunzipError {
    /// Decoded, it would pass the limit.
    TooLarge,
    /// Not gzip, corrupt, truncated, or with bytes after its end.
    Corrupt,
}

/// How much compressed input is decoded at a time: deflate expands at
/// most about 1032 to 1, so a slice makes at most about 260 KiB.
const SLICE: usize = 256;
/// Decoded output is handed on in pieces of about this size.
const PIECE: usize = 64 * 1024;

/// A gzip decoder that hands its output on in bounded pieces and refuses
/// to produce more than a limit (a gzip bomb costs nothing past it).
pub(crate) struct Gunzip {
    decoder: flate2::write::GzDecoder<Sink>,
    fed: u64,
}

/// Where the decoder writes: the piece being made, and the count.
struct Sink {
    out: Vec<u8>,
    total: u64,
    max: u64,
    too_large: bool,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.total + buf.len() as u64 > self.max {
            self.too_large = true;
            return Err(std::io::Error::other("decompressed body too large"));
        }
        self.total += buf.len() as u64;
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Gunzip {
    /// A decoder that fails with [`GunzipError::TooLarge`] past `max`
    /// decoded bytes.
    pub(crate) fn new(max: usize) -> Gunzip {
        Gunzip {
            decoder: flate2::write::GzDecoder::new(Sink {
                out: Vec::new(),
                total: 0,
                max: max as u64,
                too_large: false,
            }),
            fed: 0,
        }
    }

    /// How many bytes it has decoded.
    pub(crate) fn total_out(&self) -> u64 {
        self.decoder.get_ref().total
    }

    /// Decodes `input`, the next compressed bytes, handing what it makes to
    /// `piece` (in pieces of at most about 320 KiB).
    pub(crate) fn feed(
        &mut self,
        input: &[u8],
        piece: &mut dyn FnMut(&[u8]),
    ) -> Result<(), GunzipError> {
        self.feed_until(input, &mut |p| {
            piece(p);
            true
        })
        .map(|_| ())
    }

    /// [`feed`](Self::feed), but stops after a piece for which `piece`
    /// returns `false` (its taker wants no more for now): how many bytes
    /// of `input` it used (all of them unless it stopped). What the
    /// decoder holds of the input used comes out with the next feed.
    pub(crate) fn feed_until(
        &mut self,
        input: &[u8],
        piece: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<usize, GunzipError> {
        let mut used = 0;
        for slice in input.chunks(SLICE) {
            let written = self.decoder.write_all(slice);
            used += slice.len();
            self.fed += slice.len() as u64;
            self.check(written)?;
            if self.decoder.get_ref().out.len() >= PIECE && !self.hand_on(piece) {
                return Ok(used);
            }
        }
        // Whatever the decoder still holds, out now.
        let flushed = self.decoder.flush();
        self.check(flushed)?;
        self.hand_on(piece);
        Ok(used)
    }

    /// The compressed input is complete: the member must have ended (its
    /// checksum and length right). An empty input is an empty body, as in
    /// Tornado.
    pub(crate) fn finish(&mut self, piece: &mut dyn FnMut(&[u8])) -> Result<(), GunzipError> {
        if self.fed == 0 {
            return Ok(());
        }
        let finished = self.decoder.try_finish();
        self.check(finished)?;
        self.hand_on(&mut |p| {
            piece(p);
            true
        });
        Ok(())
    }

    fn check(&self, result: std::io::Result<()>) -> Result<(), GunzipError> {
        match result {
            Ok(()) => Ok(()),
            Err(_) if self.decoder.get_ref().too_large => Err(GunzipError::TooLarge),
            Err(_) => Err(GunzipError::Corrupt),
        }
    }

    /// Hands the piece made on, if any; whether its taker wants more.
    fn hand_on(&mut self, piece: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        let out = &mut self.decoder.get_mut().out;
        if !out.is_empty() {
            let more = piece(out);
            out.clear();
            return more;
        }
        true
    }
}

/// `input` gunzipped whole, at most `max` bytes of it.
pub(crate) fn gunzip(input: &[u8], max: usize) -> Result<Vec<u8>, GunzipError> {
    let mut body = Vec::new();
    let mut decoder = Gunzip::new(max);
    decoder.feed(input, &mut |p| body.extend_from_slice(p))?;
    decoder.finish(&mut |p| body.extend_from_slice(p))?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| b"squall gzip "[i % 12] ^ (i / 997) as u8)
            .collect()
    }

    #[test]
    fn round_trip_whole_and_streamed() {
        for n in [0, 1, 100, 70_000, 1 << 20] {
            let data = sample(n);
            let z = gzip(&data);
            assert_eq!(&z[..2], &[0x1f, 0x8b]);
            assert_eq!(gunzip(&z, n).unwrap(), data, "{n}");
            // Streamed: each flush alone decodes to everything so far.
            let mut stream = GzipStream::new();
            let mut wire = Vec::new();
            let mut so_far = 0;
            for piece in data.chunks(30_000) {
                stream.write(piece, &mut wire, false);
                so_far += piece.len();
                let mut got = Vec::new();
                let mut d = Gunzip::new(usize::MAX);
                d.feed(&wire, &mut |p| got.extend_from_slice(p)).unwrap();
                assert_eq!(got, &data[..so_far]);
            }
            stream.write(b"", &mut wire, true);
            assert_eq!(gunzip(&wire, usize::MAX).unwrap(), data);
        }
    }

    #[test]
    fn feed_until_stops_after_the_piece_refused_and_goes_on_from_there() {
        let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
        let z = gzip(&data);
        let mut d = Gunzip::new(usize::MAX);
        let mut body = Vec::new();
        let mut at = 0;
        let mut stops = 0;
        while at < z.len() {
            // Every piece refused: one piece per call.
            let used = d
                .feed_until(&z[at..], &mut |p| {
                    body.extend_from_slice(p);
                    false
                })
                .unwrap();
            assert!(used > 0);
            stops += usize::from(at + used < z.len());
            at += used;
        }
        d.finish(&mut |p| body.extend_from_slice(p)).unwrap();
        assert!(stops > 10, "{stops}");
        assert!(body == data, "{} of {} bytes", body.len(), data.len());
    }

    #[test]
    fn bounded_and_strict() {
        let data = vec![0u8; 10 << 20];
        let z = gzip(&data);
        assert!(z.len() < 20_000, "{}", z.len());
        assert_eq!(gunzip(&z, 1 << 20), Err(GunzipError::TooLarge));
        // Pieces stay small whatever the ratio.
        let mut d = Gunzip::new(usize::MAX);
        let mut largest = 0;
        d.feed(&z, &mut |p| largest = largest.max(p.len())).unwrap();
        d.finish(&mut |p| largest = largest.max(p.len())).unwrap();
        assert_eq!(d.total_out(), data.len() as u64);
        assert!(largest <= PIECE + SLICE * 1100, "{largest}");

        let z = gzip(b"hello, world");
        assert_eq!(gunzip(&z[..z.len() - 3], 100), Err(GunzipError::Corrupt));
        let mut trailing = z.clone();
        trailing.push(0);
        assert_eq!(gunzip(&trailing, 100), Err(GunzipError::Corrupt));
        let mut bad_crc = z.clone();
        let at = bad_crc.len() - 6;
        bad_crc[at] ^= 1;
        assert_eq!(gunzip(&bad_crc, 100), Err(GunzipError::Corrupt));
        assert_eq!(gunzip(b"not gzip at all", 100), Err(GunzipError::Corrupt));
        assert_eq!(gunzip(b"", 100), Ok(Vec::new()));
        assert_eq!(gunzip(&z, 12), Ok(b"hello, world".to_vec()));
        assert_eq!(gunzip(&z, 11), Err(GunzipError::TooLarge));
    }

    proptest::proptest! {
        /// Damaged gzip (bytes flipped, cut short): never a panic, never
        /// past the limit, and decoding whole or in pieces agrees.
        #[test]
        fn damaged_gzip_is_refused_the_same_way_in_any_pieces(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
            repeat in 1usize..40,
            flips in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), 1u8..=255), 0..6),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
            piece in 1usize..300,
        ) {
            let plain = data.repeat(repeat);
            let mut z = gzip(&plain);
            for (at, x) in &flips {
                let i = at.index(z.len());
                z[i] ^= x;
            }
            if flips.is_empty() {
                let keep = cut.index(z.len() + 1);
                z.truncate(keep);
            }
            let max = 20_000;
            let whole = gunzip(&z, max);
            let mut d = Gunzip::new(max);
            let mut body = Vec::new();
            let mut result = Ok(());
            for p in z.chunks(piece) {
                result = d.feed(p, &mut |out| body.extend_from_slice(out));
                if result.is_err() {
                    break;
                }
            }
            if result.is_ok() {
                result = d.finish(&mut |out| body.extend_from_slice(out));
            }
            proptest::prop_assert!(body.len() <= max);
            match (&whole, &result) {
                (Ok(w), Ok(())) => proptest::prop_assert_eq!(w, &body),
                (Err(_), Err(_)) => {}
                _ => proptest::prop_assert!(false, "whole {:?}, pieces {:?}", whole.map(|w| w.len()), result),
            }
            // Undamaged and within the limit, it comes back whole.
            if flips.is_empty() && z.len() == gzip(&plain).len() && plain.len() <= max {
                proptest::prop_assert_eq!(whole.as_deref().ok(), Some(&plain[..]));
            }
        }
    }
}
