//! A bounded FIFO that drops its oldest item when full, and counts the drops.

use std::collections::VecDeque;

/// At most `capacity` items; pushing onto a full ring drops the oldest.
#[derive(Debug)]
pub(crate) struct Ring<T> {
    items: VecDeque<T>,
    capacity: usize,
    dropped: u64,
}

impl<T> Ring<T> {
    /// An empty ring of `capacity` (0 keeps nothing and counts every push
    /// as dropped). Memory is reserved up front, so recording never
    /// reallocates.
    pub(crate) fn new(capacity: usize) -> Ring<T> {
        Ring {
            items: VecDeque::with_capacity(capacity),
            capacity,
            dropped: 0,
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, item: T) {
        if self.items.len() == self.capacity {
            if self.items.pop_front().is_none() {
                // Capacity 0: nothing kept.
                self.dropped += 1;
                return;
            }
            self.dropped += 1;
        }
        self.items.push_back(item);
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Items dropped to make room since the ring was made.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter()
    }

    /// Takes every item out, oldest first; the drop count stays.
    pub(crate) fn drain(&mut self) -> Vec<T> {
        self.items.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_counts_the_rest() {
        let mut ring = Ring::new(3);
        for i in 0..10 {
            ring.push(i);
            assert!(ring.len() <= 3);
        }
        assert_eq!(ring.iter().copied().collect::<Vec<_>>(), [7, 8, 9]);
        assert_eq!(ring.dropped(), 7);
        assert_eq!(ring.capacity(), 3);
    }

    #[test]
    fn under_capacity_drops_nothing() {
        let mut ring = Ring::new(4);
        ring.push('a');
        ring.push('b');
        assert_eq!(ring.dropped(), 0);
        assert_eq!(ring.drain(), ['a', 'b']);
        assert_eq!(ring.len(), 0);
        ring.push('c');
        assert_eq!(ring.drain(), ['c']);
    }

    #[test]
    fn drain_keeps_the_drop_count_and_frees_room() {
        let mut ring = Ring::new(2);
        for i in 0..5 {
            ring.push(i);
        }
        assert_eq!(ring.drain(), [3, 4]);
        assert_eq!(ring.dropped(), 3);
        ring.push(5);
        ring.push(6);
        assert_eq!(ring.dropped(), 3, "room again after a drain");
        ring.push(7);
        assert_eq!(ring.dropped(), 4);
        assert_eq!(ring.iter().copied().collect::<Vec<_>>(), [6, 7]);
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let mut ring = Ring::new(0);
        ring.push(1);
        ring.push(2);
        assert_eq!(ring.len(), 0);
        assert_eq!(ring.dropped(), 2);
    }

    #[test]
    fn never_reallocates_while_recording() {
        let mut ring: Ring<u64> = Ring::new(100);
        let before = ring.items.capacity();
        for i in 0..1000 {
            ring.push(i);
        }
        assert_eq!(ring.items.capacity(), before);
    }
}
