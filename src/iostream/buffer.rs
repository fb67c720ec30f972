//! The read buffer: one growable byte region with a consumed prefix.
//!
//! The vector stays initialised up to its length, so a read lands directly in
//! it with no per-read zeroing and no `unsafe`; the consumed prefix is
//! reclaimed by one `copy_within` only when space runs out.

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
    pub(crate) fn spare(&mut self, min: usize) -> &mut [u8] {
        if self.buf.len() - self.end < min {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < min {
                let grow = min.max(self.buf.len());
                self.buf.resize(self.end + grow, 0);
            }
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
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        out
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
}
