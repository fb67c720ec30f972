//! The read buffer: one growable byte region with a consumed prefix.
//!
//! The vector stays initialised up to its length, so a read lands directly in
//! it with no per-read zeroing and no `unsafe`; the consumed prefix is
//! reclaimed by one `copy_within` only when space runs out. It starts empty
//! and grows by doubling; the stream asks for small reads first (see
//! `IOStream`'s read chunk), so an idle or chatty connection holds kilobytes,
//! not the 64 KiB of a bulk read.

/// An emptied buffer larger than this is freed.
const RELEASE_ABOVE: usize = 4 << 20;

/// Reads at least this large may take the buffer's region instead of a
/// copy (at most half of it unused).
const HAND_OVER_MIN: usize = 16 * 1024;

#[derive(Default)]
pub(crate) struct ReadBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuffer {
    pub(crate) fn new() -> ReadBuffer {
        ReadBuffer {
            buf: Vec::new(),
            start: 0,
            end: 0,
        }
    }

    /// The bytes received and not yet consumed.
    #[inline]
    pub(crate) fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.end - self.start
    }

    /// A writable region of at least `min` bytes after the data.
    ///
    /// The consumed prefix is reclaimed first if that makes room; otherwise
    /// the data moves to a new region at least twice as large. That region
    /// comes from `vec![0; n]`, i.e. `calloc`, which for large sizes maps
    /// pages that are already zero: growing costs no zeroing pass (and
    /// neither does it in debug builds, where `resize` writes byte by byte).
    #[inline]
    pub(crate) fn spare(&mut self, min: usize) -> &mut [u8] {
        if self.buf.len() - self.end < min {
            self.make_room(min);
        }
        &mut self.buf[self.end..]
    }

    /// `spare`'s slow path: reclaim the consumed prefix, or grow.
    #[inline(never)]
    fn make_room(&mut self, min: usize) {
        let len = self.len();
        if self.buf.len() - len >= min {
            self.buf.copy_within(self.start..self.end, 0);
        } else {
            let mut grown = vec![0u8; (len + min).max(2 * self.buf.len())];
            grown[..len].copy_from_slice(&self.buf[self.start..self.end]);
            self.buf = grown;
        }
        self.start = 0;
        self.end = len;
    }

    /// Marks `n` bytes of the spare region as received.
    #[inline]
    pub(crate) fn commit(&mut self, n: usize) {
        debug_assert!(self.end + n <= self.buf.len());
        self.end += n;
    }

    /// Takes the first `n` bytes out.
    ///
    /// A large read that takes everything, from the start of the region,
    /// takes the region itself: no copy (the next read gets a fresh,
    /// zeroed region, which costs less than copying this one out).
    pub(crate) fn consume(&mut self, n: usize) -> Vec<u8> {
        debug_assert!(n <= self.len());
        if self.start == 0 && n == self.end && n >= HAND_OVER_MIN && 2 * n >= self.buf.len() {
            let mut out = std::mem::take(&mut self.buf);
            out.truncate(n);
            self.end = 0;
            return out;
        }
        let out = self.buf[self.start..self.start + n].to_vec();
        self.skip(n);
        out
    }

    /// Drops the first `n` bytes (a read hook consumed them in place).
    pub(crate) fn skip(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            // Emptied after a burst: give the memory back rather than hold
            // it for the life of the connection.
            if self.buf.len() > RELEASE_ABOVE {
                self.buf = Vec::new();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_consume_and_reuse() {
        let mut b = ReadBuffer::new();
        let spare = b.spare(4);
        spare[..4].copy_from_slice(b"abcd");
        b.commit(4);
        assert_eq!(b.consume(1), b"a");
        assert_eq!(b.data(), b"bcd");
        let cap = b.buf.len();
        // Reclaims the consumed prefix before growing.
        let spare = b.spare(cap - 3);
        assert!(spare.len() >= cap - 3);
        assert_eq!(b.data(), b"bcd");
        assert_eq!(b.consume(3), b"bcd");
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn grows_by_doubling_keeps_data_and_frees_a_large_emptied_buffer() {
        let mut b = ReadBuffer::new();
        let mut expected = Vec::new();
        for i in 0..100u8 {
            let spare = b.spare(64 * 1024);
            assert!(spare.len() >= 64 * 1024);
            spare[..64 * 1024].fill(i);
            b.commit(64 * 1024);
            expected.extend(std::iter::repeat(i).take(64 * 1024));
            // Consume a little so the prefix has to be reclaimed now and then.
            let out = b.consume(1000);
            assert_eq!(out[..], expected[..1000]);
            expected.drain(..1000);
        }
        assert_eq!(b.data(), &expected[..]);
        assert!(b.buf.len() > RELEASE_ABOVE);
        let n = b.len();
        assert_eq!(b.consume(n), expected);
        assert_eq!(b.buf.len(), 0, "an emptied large buffer is freed");
    }

    #[test]
    fn a_large_read_of_everything_takes_the_region() {
        let mut b = ReadBuffer::new();
        let spare = b.spare(64 * 1024);
        let cap = spare.len();
        spare[..64 * 1024].fill(7);
        b.commit(64 * 1024);
        let before = b.buf.as_ptr();
        let out = b.consume(64 * 1024);
        assert_eq!(out.len(), 64 * 1024);
        assert!(out.iter().all(|&x| x == 7));
        assert_eq!(out.as_ptr(), before, "handed over, not copied");
        assert!(out.capacity() >= cap);
        assert_eq!((b.len(), b.buf.len()), (0, 0));
        // The next read gets a fresh region.
        let spare = b.spare(8);
        spare[..3].copy_from_slice(b"abc");
        b.commit(3);
        assert_eq!(b.consume(3), b"abc");

        // Not from the start, or not all of it, or small: copied.
        let spare = b.spare(64 * 1024);
        spare[..64 * 1024].fill(1);
        b.commit(64 * 1024);
        assert_eq!(b.consume(1).len(), 1);
        let rest = b.consume(64 * 1024 - 1);
        assert_ne!(rest.as_ptr(), b.buf.as_ptr());
        assert!(rest.iter().all(|&x| x == 1));
        assert!(b.buf.len() >= 64 * 1024, "kept its region");
    }
}
