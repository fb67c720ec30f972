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
//! A stream with nothing buffered owns no region: its next read borrows the
//! thread's spare one (one per thread, as a loop runs on one thread), and
//! [`give_back`](ReadBuffer::give_back) returns it once the reader has
//! consumed everything, the usual case for a request/response protocol. A
//! reader that leaves a few bytes (a partial request head) keeps them in a
//! region of their own size, moved back in front of the spare region at
//! the next read. So an idle keep-alive connection, or a slow client
//! trickling a head, holds no 4 KiB buffer; a busy one pays no allocation
//! per read (the same region goes round), just two thread-local moves.
//! Larger leftovers (a body arriving, a bulk read) keep their region, as
//! copying them out and back at every read would cost more than it saves.

use std::cell::Cell;

/// An emptied buffer larger than this is freed.
const RELEASE_ABOVE: usize = 4 << 20;

/// Leftovers up to this size move to a region of their own size when the
/// reader is done, and the large region goes back to the thread.
const SHRINK_LEFTOVER: usize = 2 * 1024;

/// The spare region is kept only up to this size (a bulk read's larger one
/// is freed rather than held by the thread for good).
const SPARE_MAX: usize = 256 * 1024;

thread_local! {
    /// The thread's spare read region (empty while a stream has it).
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

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

    /// `spare`'s slow path: reclaim the consumed prefix, borrow the
    /// thread's spare region, or grow.
    #[inline(never)]
    fn make_room(&mut self, min: usize) {
        let len = self.len();
        if len <= SHRINK_LEFTOVER {
            // No region, or a leftover in one of its own size: move in
            // to the thread's spare region if it is there and large enough.
            let spare = SPARE.with(Cell::take);
            if spare.len() >= len + min && spare.len() > self.buf.len() {
                let mut spare = spare;
                spare[..len].copy_from_slice(&self.buf[self.start..self.end]);
                // The small region is freed (or, if it was the spare one
                // of another turn, kept as the thread's).
                let own = std::mem::replace(&mut self.buf, spare);
                self.start = 0;
                self.end = len;
                put_spare(own);
                return;
            }
            put_spare(spare);
        }
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

    /// The reader is done for now: returns the region to the thread if it
    /// holds nothing, or moves a small leftover to a region of its own
    /// size (see the module docs). Called after every reader's turn, so its
    /// common case (everything consumed, nothing held) is inlined.
    #[inline]
    pub(crate) fn give_back(&mut self) {
        if self.end == 0 {
            if !self.buf.is_empty() {
                put_spare(std::mem::take(&mut self.buf));
            }
        } else {
            self.shrink();
        }
    }

    /// `give_back` with bytes left: a small leftover in a large region
    /// moves out.
    #[inline(never)]
    fn shrink(&mut self) {
        let len = self.len();
        if len <= SHRINK_LEFTOVER && self.buf.len() > len {
            let own = self.buf[self.start..self.end].to_vec();
            put_spare(std::mem::replace(&mut self.buf, own));
            self.start = 0;
            self.end = len;
        }
    }

    /// Whether a region is held (for tests and `Debug`).
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

/// Makes `region` the thread's spare one, unless it holds a larger one
/// already (or `region` is too large to keep): the other is freed.
#[inline]
fn put_spare(region: Vec<u8>) {
    if region.is_empty() || region.len() > SPARE_MAX {
        return;
    }
    SPARE.with(|spare| {
        let held = spare.take();
        // Keep the larger: a region is only as useful as the reads it fits.
        spare.set(if held.len() >= region.len() { held } else { region });
    });
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

    /// The thread's spare region, taken out (for the tests below).
    fn take_spare() -> Vec<u8> {
        SPARE.with(Cell::take)
    }

    #[test]
    fn an_emptied_buffer_gives_its_region_back_and_the_next_read_borrows_it() {
        drop(take_spare());
        let mut a = ReadBuffer::new();
        a.spare(4096)[..5].copy_from_slice(b"hello");
        a.commit(5);
        let region = a.buf.as_ptr();
        assert_eq!(a.consume(5), b"hello");
        a.give_back();
        assert_eq!(a.capacity(), 0, "nothing held once empty");
        // Another stream's read lands in the same region: no allocation.
        let mut b = ReadBuffer::new();
        b.spare(4096)[..3].copy_from_slice(b"abc");
        b.commit(3);
        assert_eq!(b.buf.as_ptr(), region);
        assert_eq!(take_spare().len(), 0, "lent out meanwhile");
        b.skip(3);
        b.give_back();
        let back = take_spare();
        assert_eq!(back.as_ptr(), region);
    }

    #[test]
    fn a_small_leftover_moves_out_and_back_in_front_of_the_next_read() {
        drop(take_spare());
        let mut b = ReadBuffer::new();
        b.spare(4096)[..10].copy_from_slice(b"GET / HTTP");
        b.commit(10);
        b.give_back();
        // The leftover keeps a region of its own size; the large one is the
        // thread's again.
        assert_eq!(b.capacity(), 10);
        assert_eq!(b.data(), b"GET / HTTP");
        assert!(SPARE.with(|s| {
            let v = s.take();
            let n = v.len();
            s.set(v);
            n >= 4096
        }));
        // The next read goes after it, in the spare region.
        let spare = b.spare(4096);
        assert!(spare.len() >= 4096);
        spare[..6].copy_from_slice(b"/1.1\r\n");
        b.commit(6);
        assert_eq!(b.data(), b"GET / HTTP/1.1\r\n");
        assert!(b.capacity() >= 4096);
        b.give_back();
        assert_eq!(b.capacity(), 16);
        assert_eq!(b.data(), b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn a_large_leftover_keeps_its_region() {
        drop(take_spare());
        let mut b = ReadBuffer::new();
        let spare = b.spare(8192);
        spare[..5000].fill(1);
        b.commit(5000);
        let cap = b.capacity();
        b.give_back();
        assert_eq!(b.capacity(), cap, "not copied out");
        assert_eq!(b.len(), 5000);
        b.skip(5000);
        b.give_back();
        assert_eq!(b.capacity(), 0);
    }

    #[test]
    fn the_spare_region_is_the_larger_one_and_bounded() {
        drop(take_spare());
        put_spare(vec![0; 100]);
        put_spare(vec![0; 50]);
        assert_eq!(take_spare().len(), 100);
        put_spare(vec![0; SPARE_MAX + 1]);
        assert_eq!(take_spare().len(), 0, "too large to keep");
    }
}
