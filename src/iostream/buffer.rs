//! The read buffer: one growable byte region with a consumed prefix.
//!
//! The vector stays initialised up to its length, so a read lands directly in
//! it with no per-read zeroing and no `unsafe`; the consumed prefix is
//! reclaimed by one `copy_within` only when space runs out. It starts empty
//! and grows by doubling; the stream asks for small reads first (see
//! `IOStream`'s read chunk), so an idle or chatty connection holds kilobytes,
//! not the 64 KiB of a bulk read.
//!
//! # A region only while bytes are held
//! A stream with nothing buffered owns no region: its next read borrows its
//! loop's spare one (a `Cell` the loop holds for its streams), and
//! [`give_back`](ReadBuffer::give_back) returns it once the reader has
//! consumed everything, the usual case for a request/response protocol. A
//! reader that leaves a few bytes (a partial request head) keeps them in a
//! region of their own size, moved back in front of the spare region at
//! the next read. So an idle keep-alive connection, or a slow client
//! trickling a head, holds no 4 KiB buffer; a busy one pays no allocation
//! per read (the same region goes round), just two moves of a `Vec`.
//! Larger leftovers (a body arriving, a bulk read) keep their region, as
//! copying them out and back at every read would cost more than it saves.

use std::cell::Cell;

/// An emptied buffer larger than this is freed.
const RELEASE_ABOVE: usize = 4 << 20;

/// Leftovers up to this size move to a region of their own size when the
/// reader is done, and the large region goes back to the thread.
const SHRINK_LEFTOVER: usize = 2 * 1024;

/// The spare region is kept only up to this size (a bulk read's larger one
/// is freed rather than held by the loop for good).
const SPARE_MAX: usize = 256 * 1024;

/// Where a buffer with no region borrows one: the loop's spare region
/// (empty while lent).
pub(crate) type Lender = Cell<Vec<u8>>;

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

    /// A buffer over `region` (a read made outside any buffer: see the
    /// read hook's usual path) with its bytes `start..end` received and not
    /// consumed.
    pub(crate) fn adopt(region: Vec<u8>, start: usize, end: usize) -> ReadBuffer {
        debug_assert!(start <= end && end <= region.len());
        let (start, end) = if start == end { (0, 0) } else { (start, end) };
        ReadBuffer {
            buf: region,
            start,
            end,
        }
    }

    /// Whether the buffer holds no region (and so no bytes).
    #[inline]
    pub(crate) fn is_unallocated(&self) -> bool {
        self.buf.is_empty()
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

    /// A writable region after the data: `min` bytes, or at least half of
    /// that where the room is already there (the read is then shorter).
    ///
    /// With no region, the lender's is borrowed if it is large enough (the
    /// usual case, inline). Otherwise the consumed prefix is reclaimed if
    /// that leaves half of `min` free, a small leftover moves in front of
    /// the lender's region, or the data moves to a new region of its
    /// length plus `min`, at least twice its length: growth follows the
    /// bytes held, and a buffer that is mostly free is never doubled (a
    /// peer trickling a head, or blank lines, would otherwise cost a new
    /// region twice the old one each time the room fell short of a whole
    /// read chunk). That region comes from `vec![0; n]`, i.e. `calloc`,
    /// which for large sizes maps pages that are already zero: growing
    /// costs no zeroing pass (and neither does it in debug builds, where
    /// `resize` writes byte by byte).
    /// Always inlined: every read's path, where a call costs more than
    /// its usual case.
    #[inline(always)]
    pub(crate) fn spare(&mut self, min: usize, lender: &Lender) -> &mut [u8] {
        if self.buf.len() - self.end < min {
            if self.buf.is_empty() {
                // (No region: no data, `end` is 0.)
                let region = lender.take();
                if region.len() >= min {
                    self.buf = region;
                } else {
                    lender.set(region);
                    self.make_room(min, lender);
                }
            } else {
                self.make_room(min, lender);
            }
        }
        &mut self.buf[self.end..]
    }

    /// `spare`'s slow path: reclaim the consumed prefix, move a small
    /// leftover into the lender's region, or grow.
    #[inline(never)]
    fn make_room(&mut self, min: usize, lender: &Lender) {
        let len = self.len();
        // Room enough for a read, if not for a whole `min`.
        let enough = min.div_ceil(2);
        if len <= SHRINK_LEFTOVER {
            let region = lender.take();
            if region.len() >= len + enough && region.len() > self.buf.len() {
                let mut region = region;
                region[..len].copy_from_slice(&self.buf[self.start..self.end]);
                // The small region is freed (or kept by the lender, if it
                // is larger than what the lender holds now).
                let own = std::mem::replace(&mut self.buf, region);
                self.start = 0;
                self.end = len;
                lend(lender, own);
                return;
            }
            lender.set(region);
        }
        if self.buf.len() - len >= enough {
            self.buf.copy_within(self.start..self.end, 0);
        } else {
            // (Twice the length: a large read still copies each byte a
            // bounded number of times.)
            let mut grown = vec![0u8; (len + min).max(2 * len)];
            grown[..len].copy_from_slice(&self.buf[self.start..self.end]);
            self.buf = grown;
        }
        self.start = 0;
        self.end = len;
    }

    /// The reader is done for now: returns the region to the lender if it
    /// holds nothing, or moves a small leftover to a region of its own
    /// size (see the module docs). Called after every reader's turn, so its
    /// common case (everything consumed, the lender empty) is inline.
    /// Always inlined, as `spare`.
    #[inline(always)]
    pub(crate) fn give_back(&mut self, lender: &Lender) {
        if self.end == 0 {
            if !self.buf.is_empty() {
                let region = std::mem::take(&mut self.buf);
                if region.len() <= SPARE_MAX {
                    // Usually the lender is empty (this region is its
                    // own): one swap; else the larger is kept.
                    let held = lender.replace(region);
                    if !held.is_empty() {
                        keep_larger(lender, held);
                    }
                }
            }
        } else {
            self.shrink(lender);
        }
    }

    /// `give_back` with bytes left: a small leftover in a large region
    /// moves out.
    #[inline(never)]
    fn shrink(&mut self, lender: &Lender) {
        let len = self.len();
        if len <= SHRINK_LEFTOVER && self.buf.len() > len {
            let own = self.buf[self.start..self.end].to_vec();
            lend(lender, std::mem::replace(&mut self.buf, own));
            self.start = 0;
            self.end = len;
        }
    }

    /// The size of the region held (for tests).
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
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

/// Gives a region taken from `lender` (and emptied) back: as
/// `give_back` does, one swap in the usual case (the lender is empty), else
/// the larger is kept. Always inlined: every request's path.
#[inline(always)]
pub(crate) fn return_region(lender: &Lender, region: Vec<u8>) {
    if region.len() <= SPARE_MAX {
        let held = lender.replace(region);
        if !held.is_empty() {
            keep_larger(lender, held);
        }
    }
}

/// `give_back` found the lender holding a region (`held`) already: the
/// larger one that can be kept stays.
#[inline(never)]
fn keep_larger(lender: &Lender, held: Vec<u8>) {
    let region = lender.take();
    lender.set(held);
    lend(lender, region);
}

/// Makes `region` the lender's, unless it holds a larger one already (or
/// `region` is too large to keep): the other is freed.
fn lend(lender: &Lender, region: Vec<u8>) {
    if region.is_empty() || region.len() > SPARE_MAX {
        return;
    }
    let held = lender.take();
    // Keep the larger: a region is only as useful as the reads it fits.
    lender.set(if held.len() >= region.len() {
        held
    } else {
        region
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_consume_and_reuse() {
        let l = Lender::default();
        let mut b = ReadBuffer::new();
        let spare = b.spare(4, &l);
        spare[..4].copy_from_slice(b"abcd");
        b.commit(4);
        assert_eq!(b.consume(1), b"a");
        assert_eq!(b.data(), b"bcd");
        let cap = b.buf.len();
        // Reclaims the consumed prefix before growing.
        let spare = b.spare(cap - 3, &l);
        assert!(spare.len() >= cap - 3);
        assert_eq!(b.data(), b"bcd");
        assert_eq!(b.consume(3), b"bcd");
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn grows_by_doubling_keeps_data_and_frees_a_large_emptied_buffer() {
        let l = Lender::default();
        let mut b = ReadBuffer::new();
        let mut expected = Vec::new();
        for i in 0..100u8 {
            let spare = b.spare(64 * 1024, &l);
            // Half a read where the room is there already.
            assert!(spare.len() >= 32 * 1024);
            let n = spare.len().min(64 * 1024);
            spare[..n].fill(i);
            b.commit(n);
            expected.extend(std::iter::repeat(i).take(n));
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
        let l = Lender::default();
        let mut b = ReadBuffer::new();
        let spare = b.spare(64 * 1024, &l);
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
        let spare = b.spare(8, &l);
        spare[..3].copy_from_slice(b"abc");
        b.commit(3);
        assert_eq!(b.consume(3), b"abc");

        // Not from the start, or not all of it, or small: copied.
        let spare = b.spare(64 * 1024, &l);
        spare[..64 * 1024].fill(1);
        b.commit(64 * 1024);
        assert_eq!(b.consume(1).len(), 1);
        let rest = b.consume(64 * 1024 - 1);
        assert_ne!(rest.as_ptr(), b.buf.as_ptr());
        assert!(rest.iter().all(|&x| x == 1));
        assert!(b.buf.len() >= 64 * 1024, "kept its region");
    }

    #[test]
    fn an_emptied_buffer_gives_its_region_back_and_the_next_read_borrows_it() {
        let l = Lender::default();
        let mut a = ReadBuffer::new();
        a.spare(4096, &l)[..5].copy_from_slice(b"hello");
        a.commit(5);
        let region = a.buf.as_ptr();
        assert_eq!(a.consume(5), b"hello");
        a.give_back(&l);
        assert_eq!(a.capacity(), 0, "nothing held once empty");
        // Another stream's read lands in the same region: no allocation.
        let mut b = ReadBuffer::new();
        b.spare(4096, &l)[..3].copy_from_slice(b"abc");
        b.commit(3);
        assert_eq!(b.buf.as_ptr(), region);
        let lent = l.take();
        assert_eq!(lent.len(), 0, "lent out meanwhile");
        b.skip(3);
        b.give_back(&l);
        let back = l.take();
        assert_eq!(back.as_ptr(), region);
    }

    #[test]
    fn a_small_leftover_moves_out_and_back_in_front_of_the_next_read() {
        let l = Lender::default();
        let mut b = ReadBuffer::new();
        b.spare(4096, &l)[..10].copy_from_slice(b"GET / HTTP");
        b.commit(10);
        b.give_back(&l);
        // The leftover keeps a region of its own size; the large one is the
        // lender's again.
        assert_eq!(b.capacity(), 10);
        assert_eq!(b.data(), b"GET / HTTP");
        let held = l.take();
        assert!(held.len() >= 4096);
        let region = held.as_ptr();
        l.set(held);
        // The next read goes after it, in the lender's region (short of a
        // whole chunk by the leftover: no larger region for that).
        let spare = b.spare(4096, &l);
        assert_eq!(spare.len(), 4096 - 10);
        spare[..6].copy_from_slice(b"/1.1\r\n");
        b.commit(6);
        assert_eq!(b.data(), b"GET / HTTP/1.1\r\n");
        assert_eq!(b.buf.as_ptr(), region);
        b.give_back(&l);
        assert_eq!(b.capacity(), 16);
        assert_eq!(b.data(), b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn a_large_leftover_keeps_its_region() {
        let l = Lender::default();
        let mut b = ReadBuffer::new();
        let spare = b.spare(8192, &l);
        spare[..5000].fill(1);
        b.commit(5000);
        let cap = b.capacity();
        b.give_back(&l);
        assert_eq!(b.capacity(), cap, "not copied out");
        assert_eq!(b.len(), 5000);
        b.skip(5000);
        b.give_back(&l);
        assert_eq!(b.capacity(), 0);
    }

    /// A slow client's head, a byte at a time (or blank lines): the
    /// region follows the bytes held, never doubling while mostly free.
    #[test]
    fn a_trickle_grows_the_region_with_the_bytes_held() {
        let l = Lender::default();
        let mut b = ReadBuffer::new();
        let mut held = 0;
        let mut most = 0;
        for i in 0..20_000usize {
            let spare = b.spare(4096, &l);
            assert!(spare.len() >= 2048, "at least half a read chunk");
            spare[0] = (i % 251) as u8;
            b.commit(1);
            b.give_back(&l);
            held += 1;
            assert_eq!(b.len(), held);
            most = most.max(b.capacity());
            // (Before, a 2,050-byte head sat in a 12,290-byte region.)
            assert!(
                b.capacity() <= 2 * held + 4096,
                "{held} bytes held in a region of {}",
                b.capacity()
            );
        }
        assert!(b
            .data()
            .iter()
            .enumerate()
            .all(|(i, &x)| x == (i % 251) as u8));
        assert!(most <= 2 * 20_000 + 4096);
    }

    /// A few bytes left over (blank lines before a request line): the
    /// next read lands in the lender's region after them, with no new
    /// region, though that region has less than a whole chunk free.
    #[test]
    fn a_small_leftover_reads_into_the_lenders_region_without_allocating() {
        let l = Lender::default();
        l.set(vec![0; 4096]);
        let lent = {
            let region = l.take();
            let ptr = region.as_ptr();
            l.set(region);
            ptr
        };
        let mut b = ReadBuffer::new();
        for round in 1..=100usize {
            let spare = b.spare(4096, &l);
            assert!(spare.len() >= 2048);
            spare[..2].copy_from_slice(b"\r\n");
            b.commit(2);
            assert_eq!(
                b.buf.as_ptr(),
                lent,
                "round {round}: read into the lender's region"
            );
            b.give_back(&l);
            assert_eq!(b.capacity(), 2 * round, "the leftover alone is held");
        }
    }

    #[test]
    fn the_lender_keeps_the_larger_region_within_a_bound() {
        let l = Lender::default();
        lend(&l, vec![0; 100]);
        lend(&l, vec![0; 50]);
        assert_eq!(l.take().len(), 100);
        lend(&l, vec![0; SPARE_MAX + 1]);
        assert_eq!(l.take().len(), 0, "too large to keep");
        // An emptied buffer gives a region too large to keep to no one.
        let mut b = ReadBuffer::new();
        b.spare(SPARE_MAX + 1, &l);
        b.give_back(&l);
        assert_eq!((b.capacity(), l.take().len()), (0, 0));
    }
}
