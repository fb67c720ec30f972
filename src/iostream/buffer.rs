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
    pub(crate) fn spare(&mut self, min: usize) -> &mut [u8] {
        if self.buf.len() - self.end < min {
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
        &mut self.buf[self.end..]
    }

    /// Marks `n` bytes of the spare region as received.
    #[inline]
    pub(crate) fn commit(&mut self, n: usize) {
        debug_assert!(self.end + n <= self.buf.len());
        self.end += n;
    }

    /// Takes the first `n` bytes out.
    pub(crate) fn consume(&mut self, n: usize) -> Vec<u8> {
        debug_assert!(n <= self.len());
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
}
