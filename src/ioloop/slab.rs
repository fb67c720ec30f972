//! The loop's slot tables (handlers, timeouts): a slot map whose memory
//! goes back after a mass close.
//!
//! A key is `version << 32 | index`. Each slot carries a version, odd while
//! the slot holds a value and bumped on every insert and remove, so a key
//! kept after its value was removed (a stale mio token, a `TimeoutHandle`
//! removed twice, a cancelled entry in the timer heap) never matches the
//! slot's next value. The null key (`Default`) has an index past any page.
//! (Versions are 32 bits and wrap, as `slotmap`'s: a key kept through 2^30
//! or more reuses of its slot could match again.)
//!
//! Unlike `slotmap`'s single vector, which keeps its peak capacity (the
//! versions must outlive the values), the slots live in pages of [`PAGE`].
//! [`Slab::shrink`] frees every page whose slots are all free — called by
//! the loop's `shrink_tables` after a mass close, never on the request
//! path. The versions a freed page held are summed up in one number, the
//! table's *floor*: the highest version ever issued in a freed page. A page
//! made again at the same place starts its slots at the floor, above every
//! version a stale key into it can carry. A lookup through a stale key into
//! a freed page finds no page and no value.
//!
//! Free slots form a list threaded through the slots (last freed, first
//! used: the slot still in the cache). `shrink` rebuilds it lowest slot
//! first, so the next connections fill the low pages and the high ones,
//! left empty, can go at the next shrink. A lookup is two loads: the page
//! (the page table is small and hot) and the slot, at a shift and a mask.
//!
//! ```
//! // (Internal to the loop; what a user sees is its effect.)
//! use squall::IOLoop;
//! use std::time::Duration;
//!
//! let io_loop = IOLoop::new()?;
//! let handles: Vec<_> = (0..1000)
//!     .map(|_| io_loop.call_later(Duration::from_secs(60), || ()))
//!     .collect();
//! for handle in &handles {
//!     assert!(io_loop.remove_timeout(*handle));
//! }
//! // A stale handle matches nothing, whatever became of its slot.
//! assert!(!io_loop.remove_timeout(handles[0]));
//! # Ok::<(), squall::Error>(())
//! ```

use std::fmt;
use std::marker::PhantomData;

/// Slots per page: a page of the handler table is 3.5 KiB, of the timeout
/// table 4.5 KiB. Small enough that a few connections still open after a
/// mass close hold little, large enough that a page is made once per
/// [`PAGE`] inserts while a table grows.
pub(crate) const PAGE: usize = 64;
const SHIFT: u32 = PAGE.trailing_zeros();
const MASK: u32 = PAGE as u32 - 1;
/// A page holding a version at or above this is never freed, so the floor
/// stays below it and a page made again has at least 2^30 reuses of each
/// slot before its versions wrap (see [`Slab::shrink`]).
const FLOOR_LIMIT: u32 = 1 << 31;
/// The end of the free list.
const NONE: u32 = u32::MAX;
/// The null key: version 0, and an index past every page, so it never
/// reaches a slot.
pub(crate) const NULL: u64 = u32::MAX as u64;
/// One past the highest index: the index of a key never reaches `u32::MAX`,
/// so a handler's key (its mio token) never equals the waker's token.
const MAX_SLOTS: usize = (u32::MAX as usize + 1) - PAGE;

/// A table key: `version << 32 | index` (see the [module docs](self)).
pub(crate) trait SlabKey: Copy {
    /// The key of this raw form.
    fn from_raw(raw: u64) -> Self;
    /// The raw form, `version << 32 | index`.
    fn raw(self) -> u64;
}

/// Declares a key type for a [`Slab`]: `Copy`, `Eq`, `Hash`, and a null
/// `Default` that matches no slot.
macro_rules! slab_key {
    ($(#[$meta:meta])* $vis:vis struct $name:ident;) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis struct $name(u64);

        impl Default for $name {
            /// The null key.
            fn default() -> Self {
                $name($crate::ioloop::slab::NULL)
            }
        }

        impl $crate::ioloop::slab::SlabKey for $name {
            #[inline]
            fn from_raw(raw: u64) -> Self {
                $name(raw)
            }
            #[inline]
            fn raw(self) -> u64 {
                self.0
            }
        }
    };
}
pub(crate) use slab_key;

struct Slot<V> {
    /// `Some` exactly while `version` is odd.
    value: Option<V>,
    version: u32,
    /// The next free slot while this one is free.
    next: u32,
}

type Page<V> = Box<[Slot<V>; PAGE]>;

/// A slot map in pages (see the [module docs](self)).
pub(crate) struct Slab<K, V> {
    /// `None`: a page freed by [`Slab::shrink`] (below the last live one).
    pages: Vec<Option<Page<V>>>,
    /// The first free slot, or [`NONE`].
    free: u32,
    len: usize,
    /// Every version issued in a freed page is at most this (even).
    floor: u32,
    /// Pages in `pages` that are `None`.
    holes: usize,
    _key: PhantomData<fn(K) -> K>,
}

impl<K, V> Default for Slab<K, V> {
    fn default() -> Self {
        Slab {
            pages: Vec::new(),
            free: NONE,
            len: 0,
            floor: 0,
            holes: 0,
            _key: PhantomData,
        }
    }
}

impl<K, V> Slab<K, V> {
    /// Pages held (for tests and the loop's diagnostics).
    pub(crate) fn live_pages(&self) -> usize {
        self.pages.len() - self.holes
    }
}

impl<K, V> fmt::Debug for Slab<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slab")
            .field("len", &self.len)
            .field("pages", &self.live_pages())
            .field("floor", &self.floor)
            .finish()
    }
}

#[inline]
fn split(raw: u64) -> (usize, usize, u32) {
    let index = raw as u32;
    (
        (index >> SHIFT) as usize,
        (index & MASK) as usize,
        (raw >> 32) as u32,
    )
}

impl<K: SlabKey, V> Slab<K, V> {
    /// Stores `value`; its key.
    ///
    /// # Panics
    /// With over four billion values in the table (as `slotmap`).
    #[inline]
    pub(crate) fn insert(&mut self, value: V) -> K {
        if self.free == NONE {
            self.make_page();
        }
        let index = self.free;
        let slot = &mut self.pages[(index >> SHIFT) as usize]
            .as_mut()
            .expect("the free list holds live pages only")[(index & MASK) as usize];
        self.free = slot.next;
        slot.version = slot.version.wrapping_add(1);
        slot.value = Some(value);
        self.len += 1;
        K::from_raw(u64::from(slot.version) << 32 | u64::from(index))
    }

    /// A fresh page on the free list: the lowest freed one made again, or
    /// one more at the end.
    #[cold]
    fn make_page(&mut self) {
        let at = if self.holes > 0 {
            self.holes -= 1;
            self.pages
                .iter()
                .position(Option::is_none)
                .expect("holes counts the freed pages")
        } else {
            assert!(
                (self.pages.len() + 1) * PAGE <= MAX_SLOTS,
                "slot table full"
            );
            self.pages.push(None);
            self.pages.len() - 1
        };
        let first = (at * PAGE) as u32;
        let floor = self.floor;
        let slots: Vec<Slot<V>> = (0..PAGE as u32)
            .map(|i| Slot {
                value: None,
                version: floor,
                next: if i + 1 < PAGE as u32 {
                    first + i + 1
                } else {
                    NONE
                },
            })
            .collect();
        let page: Page<V> = slots
            .into_boxed_slice()
            .try_into()
            .ok()
            .expect("PAGE slots");
        self.pages[at] = Some(page);
        self.free = first;
    }

    #[inline]
    fn slot(&self, key: K) -> Option<&Slot<V>> {
        let (page, i, version) = split(key.raw());
        let slot = &self.pages.get(page)?.as_ref()?[i];
        (slot.version == version).then_some(slot)
    }

    /// The value under `key`, if it is still there.
    #[inline]
    pub(crate) fn get(&self, key: K) -> Option<&V> {
        self.slot(key)?.value.as_ref()
    }

    /// The value under `key`, if it is still there.
    #[inline]
    pub(crate) fn get_mut(&mut self, key: K) -> Option<&mut V> {
        let (page, i, version) = split(key.raw());
        let slot = &mut self.pages.get_mut(page)?.as_mut()?[i];
        if slot.version != version {
            return None;
        }
        slot.value.as_mut()
    }

    /// Whether `key`'s value is still there, for a key this table issued
    /// (or the null key): the version alone says so, as an issued key's is
    /// odd, and a slot's is odd exactly while it holds a value. (The timer
    /// heap asks this of its top entry every iteration.)
    #[inline]
    pub(crate) fn contains_key(&self, key: K) -> bool {
        debug_assert!(key.raw() >> 32 & 1 == 1 || key.raw() == NULL);
        self.slot(key).is_some()
    }

    /// Takes `key`'s value out; `None` if it was gone already.
    #[inline]
    pub(crate) fn remove(&mut self, key: K) -> Option<V> {
        let raw = key.raw();
        let (page, i, version) = split(raw);
        let slot = &mut self.pages.get_mut(page)?.as_mut()?[i];
        if slot.version != version {
            return None;
        }
        let value = slot.value.take()?;
        slot.version = slot.version.wrapping_add(1);
        slot.next = self.free;
        self.free = raw as u32;
        self.len -= 1;
        Some(value)
    }

    /// The number of values.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no values.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every value with its key, in index order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (K, &V)> + '_ {
        self.pages
            .iter()
            .enumerate()
            .filter_map(|(p, page)| Some((p, page.as_ref()?)))
            .flat_map(|(p, page)| {
                page.iter().enumerate().filter_map(move |(i, slot)| {
                    let index = (p * PAGE + i) as u64;
                    let value = slot.value.as_ref()?;
                    Some((K::from_raw(u64::from(slot.version) << 32 | index), value))
                })
            })
    }

    /// Takes every value out (keys issued so far stay stale for good); the
    /// pages go too.
    pub(crate) fn drain(&mut self) -> Vec<V> {
        let mut values = Vec::with_capacity(self.len);
        for page in std::mem::take(&mut self.pages).into_iter().flatten() {
            for slot in page.into_iter() {
                self.floor = self.floor.max(slot.version.wrapping_add(slot.version & 1));
                values.extend(slot.value);
            }
        }
        self.free = NONE;
        self.len = 0;
        self.holes = 0;
        values
    }

    /// Frees every page whose slots are all free (see the [module
    /// docs](self)), and relinks the free slots lowest first. A page whose
    /// versions reached [`FLOOR_LIMIT`] (a slot reused 2^30 times) stays:
    /// the floor must stay far from the wrap, or every page made again
    /// after would wrap within a few reuses to versions stale keys hold. O(slots): for
    /// after a mass close, not the request path.
    pub(crate) fn shrink(&mut self) {
        let mut floor = self.floor;
        for page in &mut self.pages {
            if page
                .as_ref()
                .is_some_and(|p| p.iter().all(|s| s.value.is_none()))
            {
                let top = page
                    .as_ref()
                    .map_or(0, |p| p.iter().map(|s| s.version).max().unwrap_or(0));
                if top >= FLOOR_LIMIT {
                    continue;
                }
                floor = floor.max(top);
                *page = None;
            }
        }
        self.floor = floor;
        while self.pages.last().is_some_and(Option::is_none) {
            self.pages.pop();
        }
        if self.pages.capacity() > 2 * self.pages.len().max(8) {
            self.pages.shrink_to(self.pages.len());
        }
        self.holes = self.pages.iter().filter(|p| p.is_none()).count();
        // Relinked from the top down, so that the head is the lowest.
        self.free = NONE;
        for (p, page) in self.pages.iter_mut().enumerate().rev() {
            let Some(page) = page else { continue };
            for (i, slot) in page.iter_mut().enumerate().rev() {
                if slot.value.is_none() {
                    slot.next = self.free;
                    self.free = (p * PAGE + i) as u32;
                }
            }
        }
    }
}

impl<K: SlabKey, V> std::ops::Index<K> for Slab<K, V> {
    type Output = V;
    fn index(&self, key: K) -> &V {
        self.get(key).expect("a live key")
    }
}

impl<K: SlabKey, V> std::ops::IndexMut<K> for Slab<K, V> {
    fn index_mut(&mut self, key: K) -> &mut V {
        self.get_mut(key).expect("a live key")
    }
}

#[cfg(test)]
impl<K, V> Slab<K, V> {
    /// Sets a free slot's version, standing for `version / 2` insert and
    /// remove pairs on it (only `wrapping_add(1)` ever changes a version):
    /// the tests of the wrap, without 2^31 real reuses.
    pub(crate) fn fast_forward(&mut self, index: u32, version: u32) {
        let slot =
            &mut self.pages[(index >> SHIFT) as usize].as_mut().unwrap()[(index & MASK) as usize];
        assert!(slot.value.is_none() && version % 2 == 0);
        slot.version = version;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    slab_key! {
        struct Key;
    }

    /// A slot reused about 2^31 times keeps its page: freeing it would
    /// raise the floor near the wrap, and every page made again after would
    /// restart there and wrap within a few reuses to the small versions the
    /// page before it issued (a stale key matching a live value after two
    /// reuses, not 2^31).
    #[test]
    fn a_page_near_the_version_wrap_is_kept_so_stale_keys_stay_stale() {
        let mut slab: Slab<Key, u32> = Slab::default();
        let k = slab.insert(0);
        slab.remove(k);
        slab.fast_forward(0, u32::MAX - 1);
        slab.shrink(); // a mass close: page 0 stays
        let a1 = slab.insert(1);
        slab.remove(a1);
        let a2 = slab.insert(2);
        assert_eq!(slab.remove(a2), Some(2)); // a2 is stale from here on
        slab.shrink();
        let b1 = slab.insert(3);
        slab.remove(b1);
        let b2 = slab.insert(4);
        assert_eq!(slab.get(a2), None, "stale {a2:?} matches live {b2:?}");
        // A page below the limit still goes.
        slab.remove(b2);
        slab.fast_forward(0, FLOOR_LIMIT - 2);
        slab.shrink();
        assert_eq!(slab.pages.len(), 0);
        assert_eq!(slab.floor, FLOOR_LIMIT - 2);
    }

    #[test]
    fn a_removed_key_is_stale_and_a_null_key_matches_nothing() {
        let mut slab: Slab<Key, &str> = Slab::default();
        assert_eq!(slab.get(Key::default()), None);
        assert!(!slab.contains_key(Key::default()));
        let a = slab.insert("a");
        assert_eq!(slab.get(a), Some(&"a"));
        assert_eq!(slab.remove(a), Some("a"));
        assert_eq!(slab.remove(a), None);
        let b = slab.insert("b");
        assert_eq!(a.0 as u32, b.0 as u32, "the slot is reused");
        assert_ne!(a, b);
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.get(b), Some(&"b"));
        assert_eq!(slab.get(Key::default()), None);
        assert!(!slab.contains_key(Key::default()) && !slab.contains_key(a));
        assert!(slab.contains_key(b));
        // Any raw key at all: no panic.
        for raw in [u64::MAX, 1 << 32 | 0xffff_fff0, 3 << 32 | 5_000] {
            assert_eq!(slab.get(Key(raw)), None);
            assert_eq!(slab.remove(Key(raw)), None);
        }
    }

    #[test]
    fn shrink_frees_empty_pages_and_stale_keys_stay_stale() {
        let mut slab: Slab<Key, usize> = Slab::default();
        let keys: Vec<Key> = (0..10 * PAGE).map(|i| slab.insert(i)).collect();
        assert_eq!(slab.live_pages(), 10);
        // Churn one slot of the first page, so its versions run ahead.
        for _ in 0..5 {
            let k = slab.insert(0);
            slab.remove(k);
        }
        // All gone but one in page 3.
        let kept = keys[3 * PAGE + 7];
        for (i, k) in keys.iter().enumerate() {
            if *k != kept {
                assert_eq!(slab.remove(*k), Some(i));
            }
        }
        slab.shrink();
        assert_eq!(slab.live_pages(), 1);
        assert_eq!(slab.pages.len(), 4, "trailing freed pages dropped");
        assert_eq!(slab.get(kept), Some(&(3 * PAGE + 7)));
        for k in &keys {
            if *k != kept {
                assert_eq!(slab.get(*k), None);
            }
        }
        // The next values fill the kept page first, then pages made again
        // from the lowest; no stale key matches any of them.
        let fresh: Vec<Key> = (0..10 * PAGE).map(|i| slab.insert(1_000 + i)).collect();
        assert_eq!(
            fresh[0].0 as u32,
            3 * PAGE as u32,
            "the kept page's first free slot"
        );
        for k in &keys {
            if *k != kept {
                assert_eq!(slab.get(*k), None, "stale {k:?}");
                assert_eq!(slab.remove(*k), None);
            }
        }
        for (i, k) in fresh.iter().enumerate() {
            assert_eq!(slab.get(*k), Some(&(1_000 + i)));
        }
        assert_eq!(slab.len(), 10 * PAGE + 1);
        assert_eq!(slab.live_pages(), 11);
    }

    #[test]
    fn drain_takes_everything_and_keeps_keys_stale() {
        let mut slab: Slab<Key, u32> = Slab::default();
        let keys: Vec<Key> = (0..100).map(|i| slab.insert(i)).collect();
        slab.remove(keys[5]);
        let mut drained = slab.drain();
        drained.sort();
        assert_eq!(drained.len(), 99);
        assert!(slab.is_empty() && slab.live_pages() == 0);
        let again: Vec<Key> = (0..100).map(|i| slab.insert(i)).collect();
        for k in &keys {
            assert!(!again.contains(k));
            assert_eq!(slab.get(*k), None);
        }
    }

    #[test]
    fn random_inserts_removes_and_shrinks_match_a_model() {
        // A tiny LCG: deterministic, no dependency.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move |n: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % n
        };
        let mut slab: Slab<Key, u64> = Slab::default();
        let mut live: HashMap<Key, u64> = HashMap::new();
        let mut order: Vec<Key> = Vec::new();
        // Every key ever removed: none may match again, nor be issued again.
        let mut stale: HashSet<Key> = HashSet::new();
        for step in 0..60_000u64 {
            // Waves: grow to a few thousand, then mostly remove.
            let growing = (step / 5_000) % 2 == 0;
            match rand(100) {
                0 => slab.shrink(),
                n if (n < 60) == growing || order.is_empty() => {
                    let k = slab.insert(step);
                    assert!(!live.contains_key(&k), "a live key issued twice");
                    assert!(!stale.contains(&k), "a stale key issued again");
                    live.insert(k, step);
                    order.push(k);
                }
                _ => {
                    let k = order.swap_remove(rand(order.len() as u64) as usize);
                    assert_eq!(slab.remove(k), live.remove(&k));
                    stale.insert(k);
                }
            }
            assert_eq!(slab.len(), live.len());
            if step % 997 == 0 {
                for k in &stale {
                    assert_eq!(slab.get(*k), None, "stale {k:?} at {step}");
                }
                for (k, v) in &live {
                    assert_eq!(slab.get(*k), Some(v));
                }
                let mut seen: Vec<(Key, u64)> = slab.iter().map(|(k, v)| (k, *v)).collect();
                let mut want: Vec<(Key, u64)> = live.iter().map(|(k, v)| (*k, *v)).collect();
                seen.sort_by_key(|e| e.0 .0);
                want.sort_by_key(|e| e.0 .0);
                assert_eq!(seen, want);
            }
        }
        // Everything out, then a shrink: nothing held.
        for k in order.drain(..) {
            assert!(slab.remove(k).is_some());
        }
        slab.shrink();
        assert_eq!((slab.live_pages(), slab.pages.len()), (0, 0));
    }
}
