//! The timeout heap: a binary heap of deadlines with lazy cancellation.
//!
//! Removing a timeout only forgets its callback (O(1)); the heap entry stays
//! until it reaches the top, or until cancelled entries are over half the heap
//! (and over 512), when the heap is rebuilt without them. That is Tornado's
//! scheme, and it keeps both add and remove cheap at a million pending.
//!
//! One refinement: dead entries at the *end* of the heap's array are leaves,
//! and a leaf can be dropped without disturbing the heap, so `add` drops them
//! before pushing. The commonest pattern — a timeout added for a request and
//! removed when the request finishes first — then reuses the same tail slot
//! over and over, and the heap neither grows nor needs rebuilding.

use std::time::{Duration, Instant};

use super::slab::{slab_key, Slab};
use super::ticks::NEVER;
use super::Callback;

slab_key! {
    /// Identifies one scheduled timeout; stale keys never match a new one.
    pub(crate) struct TimeoutKey;
}

/// When a timeout is due: at an `Instant`, or after a `Duration` from now
/// (Tornado accepts a number or a `timedelta` the same way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deadline {
    /// At this instant of the loop's clock.
    At(Instant),
    /// This long after the loop's `time()` when the timeout is added.
    After(Duration),
}

impl From<Instant> for Deadline {
    fn from(when: Instant) -> Deadline {
        Deadline::At(when)
    }
}

impl From<Duration> for Deadline {
    fn from(delay: Duration) -> Deadline {
        Deadline::After(delay)
    }
}

/// `now + delay`, or the latest instant this platform can represent on the
/// way there: `call_later(Duration::MAX, ..)` means "never", not a panic.
pub(crate) fn saturating_add(now: Instant, mut delay: Duration) -> Instant {
    loop {
        if let Some(when) = now.checked_add(delay) {
            return when;
        }
        delay /= 2;
    }
}

/// A handle to a scheduled timeout, for [`remove_timeout`](crate::IOLoop::remove_timeout).
///
/// It is `Copy`; removing through it twice, or after the timeout ran, is harmless.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimeoutHandle(pub(crate) TimeoutKey);

impl TimeoutHandle {
    /// A handle that matches no timeout (for one refused by a closed loop).
    pub(crate) fn dangling() -> TimeoutHandle {
        TimeoutHandle(TimeoutKey::default())
    }
}

/// Counters of the timeout heap, for tests and diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerStats {
    /// Timeouts scheduled and neither run nor removed.
    pub pending: usize,
    /// Entries in the heap, cancelled ones included.
    pub heap_entries: usize,
    /// Removed timeouts whose entries are still in the heap.
    pub cancelled: usize,
}

/// A heap entry: 24 bytes, compared as two integers. Deadlines are the
/// loop's ticks (see `ticks`) rather than `Instant`s (16 bytes, two fields
/// to compare): the heap is the hot, cache-missing part of a loop with a
/// million pending timeouts, and a compaction sifts every entry.
#[derive(Clone, Copy)]
struct Entry {
    deadline: u64,
    seq: u64,
    key: TimeoutKey,
}

impl Entry {
    /// Earlier deadline first; ties in scheduling order.
    #[inline]
    fn before(&self, other: &Entry) -> bool {
        (self.deadline, self.seq) < (other.deadline, other.seq)
    }
}

/// A binary min-heap in a `Vec`, ours rather than `BinaryHeap` because it
/// must drop dead leaves off its end (see the module docs).
#[derive(Default)]
struct Heap {
    v: Vec<Entry>,
}

impl Heap {
    fn len(&self) -> usize {
        self.v.len()
    }

    fn peek(&self) -> Option<&Entry> {
        self.v.first()
    }

    fn last(&self) -> Option<&Entry> {
        self.v.last()
    }

    /// Drops the last entry: a leaf, so the rest is still a heap.
    fn pop_last(&mut self) {
        self.v.pop();
    }

    fn push(&mut self, entry: Entry) {
        self.v.push(entry);
        let mut i = self.v.len() - 1;
        while i > 0 {
            let parent = (i - 1) / 2;
            if !entry.before(&self.v[parent]) {
                break;
            }
            self.v[i] = self.v[parent];
            i = parent;
        }
        self.v[i] = entry;
    }

    fn pop(&mut self) {
        if self.v.len() <= 1 {
            self.v.clear();
            return;
        }
        let last = self.v.pop().expect("non-empty");
        self.v[0] = last;
        self.sift_down(0);
    }

    fn sift_down(&mut self, mut i: usize) {
        let entry = self.v[i];
        let len = self.v.len();
        loop {
            let left = 2 * i + 1;
            if left >= len {
                break;
            }
            let right = left + 1;
            let child = if right < len && self.v[right].before(&self.v[left]) {
                right
            } else {
                left
            };
            if !self.v[child].before(&entry) {
                break;
            }
            self.v[i] = self.v[child];
            i = child;
        }
        self.v[i] = entry;
    }

    /// Replaces the entries with `entries`, ordered into a heap in O(n).
    fn rebuild(&mut self, entries: impl Iterator<Item = Entry>) {
        self.v.clear();
        self.v.extend(entries);
        for i in (0..self.v.len() / 2).rev() {
            self.sift_down(i);
        }
    }

    fn clear(&mut self) {
        self.v.clear();
    }
}

const COMPACT_MIN: usize = 512;

/// A pending timeout's callback.
struct Slot {
    callback: Callback,
    deadline: u64,
    seq: u64,
    /// Whether its entry is still in the heap: false once `pop_due` moved it
    /// to the due list. Removing it then leaves no dead entry behind, so it
    /// must not be counted as one.
    in_heap: bool,
}

#[derive(Default)]
pub(crate) struct Timers {
    heap: Heap,
    callbacks: Slab<TimeoutKey, Slot>,
    seq: u64,
    /// Dead entries in the heap: removed timeouts whose entry is still there.
    cancelled: usize,
    /// The top entry's deadline, known to be a live timeout's (`None`:
    /// empty, or the top changed or was removed and is not checked yet).
    /// The usual iteration, nothing due, is one compare with it, and the
    /// poll timeout one subtraction, with no lookup of the top's key.
    first: Option<u64>,
}

impl Timers {
    /// The first deadline (see `first`), dropping cancelled entries off the
    /// top to find it; `None` if no timeout is pending in the heap.
    #[inline]
    fn first(&mut self) -> Option<u64> {
        if self.first.is_none() {
            self.first = self.live_top();
        }
        self.first
    }

    #[inline(never)]
    fn live_top(&mut self) -> Option<u64> {
        while let Some(top) = self.heap.peek() {
            if self.callbacks.contains_key(top.key) {
                return Some(top.deadline);
            }
            self.heap.pop();
            self.cancelled -= 1;
        }
        None
    }

    /// Schedules `callback` at `deadline`, in ticks (see `ticks`).
    pub(crate) fn add(&mut self, deadline: u64, callback: Callback) -> TimeoutHandle {
        // Dead leaves at the end go first (see the module docs).
        while let Some(last) = self.heap.last() {
            if self.callbacks.contains_key(last.key) {
                break;
            }
            self.heap.pop_last();
            self.cancelled -= 1;
        }
        self.seq += 1;
        let key = self.callbacks.insert(Slot {
            callback,
            deadline,
            seq: self.seq,
            in_heap: true,
        });
        self.heap.push(Entry {
            deadline,
            seq: self.seq,
            key,
        });
        if self.heap.peek().is_some_and(|top| top.key == key) {
            // The new top is live: known without a lookup.
            self.first = Some(deadline);
        }
        TimeoutHandle(key)
    }

    /// Forgets the timeout; returns its callback so the caller drops it after
    /// releasing its borrow (dropping runs user code).
    pub(crate) fn remove(&mut self, handle: TimeoutHandle) -> Option<Callback> {
        let slot = self.callbacks.remove(handle.0)?;
        if slot.in_heap && self.heap.peek().is_some_and(|top| top.key == handle.0) {
            // The top is dead now: the next look finds the live one.
            self.first = None;
        }
        if slot.in_heap && self.heap.last().is_some_and(|last| last.key == handle.0) {
            // Its entry is the last leaf: drop it now, leaving nothing dead.
            self.heap.pop_last();
        } else if slot.in_heap {
            self.cancelled += 1;
            if self.cancelled > COMPACT_MIN && self.cancelled > self.heap.len() / 2 {
                // Rebuilt from a sequential scan of the live timeouts: a
                // lookup per heap entry would miss the cache on each one.
                let live =
                    self.callbacks
                        .iter()
                        .filter(|(_, slot)| slot.in_heap)
                        .map(|(key, slot)| Entry {
                            deadline: slot.deadline,
                            seq: slot.seq,
                            key,
                        });
                self.heap.rebuild(live);
                self.cancelled = 0;
                self.first = None;
            }
        }
        Some(slot.callback)
    }

    /// Moves the keys of every timeout due at `now` (ticks) into `due`, in
    /// order.
    #[inline]
    pub(crate) fn pop_due(&mut self, now: u64, due: &mut Vec<TimeoutKey>) {
        // Nothing due: the usual case, one comparison.
        match self.first {
            Some(first) if now < first => {}
            _ => self.pop_due_slow(now, due),
        }
    }

    #[inline(never)]
    fn pop_due_slow(&mut self, now: u64, due: &mut Vec<TimeoutKey>) {
        self.first = None;
        while let Some(top) = self.heap.peek() {
            // A saturated deadline is never due, even to a clock moved by
            // hand past every tick; the heap holds nothing after it.
            if top.deadline > now || top.deadline == NEVER {
                break;
            }
            let key = top.key;
            self.heap.pop();
            match self.callbacks.get_mut(key) {
                Some(slot) => {
                    slot.in_heap = false;
                    due.push(key);
                }
                None => self.cancelled -= 1,
            }
        }
        // Checked now, so the next iterations compare with it directly.
        self.first = self.live_top();
    }

    /// Takes a due timeout's callback; `None` if it was removed meanwhile.
    pub(crate) fn take(&mut self, key: TimeoutKey) -> Option<Callback> {
        self.callbacks.remove(key).map(|slot| slot.callback)
    }

    /// How long from `now` (ticks) until the earliest live deadline (zero
    /// if it is past), dropping cancelled entries on the way; `None` if
    /// none is left but [`NEVER`]s, so the loop waits as with no timeout.
    /// Integer math: no `Instant` arithmetic.
    #[inline]
    pub(crate) fn next_timeout(&mut self, now: u64) -> Option<Duration> {
        let first = self.next_deadline()?;
        Some(Duration::from_nanos(first.saturating_sub(now)))
    }

    /// The earliest live deadline, in ticks, dropping cancelled entries on
    /// the way; `None` if none is left but [`NEVER`]s: a manual clock must
    /// not jump to one, and the system clock need not wake for one.
    #[inline]
    pub(crate) fn next_deadline(&mut self) -> Option<u64> {
        self.first().filter(|&first| first != NEVER)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.callbacks.is_empty()
    }

    pub(crate) fn stats(&self) -> TimerStats {
        TimerStats {
            pending: self.callbacks.len(),
            heap_entries: self.heap.len(),
            cancelled: self.cancelled,
        }
    }

    /// Timeouts pending with a deadline: all but those at [`NEVER`], which
    /// no clock reaches (for the check that another loop may run while
    /// this one waits: those strand nothing). A scan of the callbacks, for
    /// that rare check only.
    pub(crate) fn pending_with_deadline(&self) -> usize {
        self.callbacks
            .iter()
            .filter(|(_, slot)| slot.deadline != NEVER)
            .count()
    }

    /// Gives back the heap's room beyond what its entries need, and the
    /// callbacks' empty pages (after a mass close; see shrink.rs).
    pub(crate) fn shrink_heap(&mut self) {
        super::shrink::shrink_vec(&mut self.heap.v);
        self.callbacks.shrink();
    }

    /// The heap's capacity (for shrink.rs's test).
    #[cfg(test)]
    pub(crate) fn heap_capacity(&self) -> usize {
        self.heap.v.capacity()
    }

    /// See `Slab::fast_forward`.
    #[cfg(test)]
    pub(crate) fn fast_forward_callbacks(&mut self, index: u32, version: u32) {
        self.callbacks.fast_forward(index, version);
    }

    /// Pages the callbacks' table holds (for shrink.rs's test).
    #[cfg(test)]
    pub(crate) fn callback_pages(&self) -> usize {
        self.callbacks.live_pages()
    }

    /// Empties the heap, handing back the callbacks to drop outside any borrow.
    pub(crate) fn drain(&mut self) -> Vec<Callback> {
        self.heap.clear();
        self.first = None;
        self.cancelled = 0;
        self.callbacks
            .drain()
            .into_iter()
            .map(|slot| slot.callback)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack_context::Context;

    fn cb() -> Callback {
        Callback {
            f: Box::new(|| Ok(())),
            ctx: Context::empty(),
            name: "test",
            #[cfg(feature = "trace")]
            site: std::panic::Location::caller(),
        }
    }

    #[test]
    fn due_in_deadline_then_scheduling_order() {
        let t0: u64 = 1 << 50;
        let mut timers = Timers::default();
        let at = |s: u64| t0 + s * 1_000_000_000;
        let c = timers.add(at(3), cb());
        let a = timers.add(at(1), cb());
        let b1 = timers.add(at(2), cb());
        let b2 = timers.add(at(2), cb());
        let mut due = Vec::new();
        timers.pop_due(at(2), &mut due);
        assert_eq!(due, [a.0, b1.0, b2.0]);
        assert_eq!(timers.next_deadline(), Some(at(3)));
        assert!(timers.remove(c).is_some());
        assert!(timers.remove(c).is_none());
        assert_eq!(timers.next_deadline(), None);
        assert_eq!(timers.stats().cancelled, 0);
    }

    #[test]
    fn removing_a_due_timeout_counts_no_dead_entry() {
        let t0: u64 = 1 << 50;
        let mut timers = Timers::default();
        let a = timers.add(t0, cb());
        let b = timers.add(t0, cb());
        let mut due = Vec::new();
        timers.pop_due(t0, &mut due);
        assert_eq!(due, [a.0, b.0]);
        // `a` runs and removes `b`, which is due but not yet run.
        assert!(timers.take(a.0).is_some());
        assert!(timers.remove(b).is_some());
        assert!(timers.take(b.0).is_none());
        let stats = timers.stats();
        assert_eq!(
            (stats.pending, stats.heap_entries, stats.cancelled),
            (0, 0, 0)
        );
    }

    #[test]
    fn add_then_remove_leaves_no_dead_entry() {
        let t0: u64 = 1 << 50;
        let mut timers = Timers::default();
        for i in 0..1000 {
            timers.add(t0 + (1000 + i) * 1_000_000_000, cb());
        }
        for i in 0..10_000u64 {
            // Random deadlines: some sift up, most stay at the end.
            let h = timers.add(t0 + ((i * 7919) % 2000) * 1_000_000_000, cb());
            timers.remove(h);
        }
        let stats = timers.stats();
        assert_eq!(stats.pending, 1000);
        assert!(stats.heap_entries < 1000 + COMPACT_MIN, "{stats:?}");
        assert_eq!(stats.heap_entries, stats.pending + stats.cancelled);
    }

    #[test]
    fn random_adds_removes_and_pops_match_a_sorted_model() {
        // A tiny LCG: deterministic, no dependency.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |n: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % n
        };
        let t0: u64 = 1 << 50;
        let mut timers = Timers::default();
        // The model: (deadline, seq, key) of every pending timeout.
        let mut model: Vec<(u64, u64, TimeoutKey)> = Vec::new();
        let mut seq = 0;
        let mut now = 0u64;
        for _ in 0..20_000 {
            match rand(10) {
                0..=4 => {
                    let at = now + rand(500);
                    let h = timers.add(t0 + at * 1_000_000, cb());
                    seq += 1;
                    model.push((at, seq, h.0));
                }
                5..=7 if !model.is_empty() => {
                    let (_, _, key) = model.swap_remove(rand(model.len() as u64) as usize);
                    assert!(timers.remove(TimeoutHandle(key)).is_some());
                }
                _ => {
                    now += rand(100);
                    let mut due = Vec::new();
                    timers.pop_due(t0 + now * 1_000_000, &mut due);
                    model.sort();
                    let split = model.partition_point(|&(at, _, _)| at <= now);
                    let expected: Vec<_> = model.drain(..split).map(|(_, _, k)| k).collect();
                    assert_eq!(due, expected);
                    for key in due {
                        assert!(timers.take(key).is_some());
                    }
                }
            }
            let stats = timers.stats();
            assert_eq!(stats.pending, model.len());
            assert_eq!(stats.heap_entries, stats.pending + stats.cancelled);
            // The poll timeout, from the cached first deadline.
            let first = model.iter().map(|&(at, _, _)| at).min();
            let expected = first.map(|at| Duration::from_millis(at.saturating_sub(now)));
            let asked_at = t0 + now * 1_000_000;
            assert_eq!(timers.next_timeout(asked_at), expected);
        }
        model.sort();
        let next = model.first().map(|&(at, _, _)| t0 + at * 1_000_000);
        assert_eq!(timers.next_deadline(), next);
    }

    #[test]
    fn never_deadlines_are_never_due_nor_waited_for() {
        let t0: u64 = 1 << 50;
        let mut timers = Timers::default();
        let never = timers.add(NEVER, cb());
        assert_eq!(timers.next_deadline(), None);
        assert_eq!(timers.next_timeout(t0), None);
        let soon = timers.add(t0 + 5, cb());
        timers.add(NEVER, cb());
        assert_eq!(timers.next_deadline(), Some(t0 + 5));
        assert_eq!(timers.next_timeout(t0), Some(Duration::from_nanos(5)));
        assert_eq!(timers.pending_with_deadline(), 1);
        let mut due = Vec::new();
        // Even a reading of NEVER itself leaves them pending.
        timers.pop_due(NEVER, &mut due);
        assert_eq!(due, [soon.0]);
        // Due and not yet run: still pending, with its deadline.
        assert_eq!(timers.pending_with_deadline(), 1);
        assert!(timers.take(soon.0).is_some());
        assert_eq!(timers.stats().pending, 2);
        assert_eq!(timers.pending_with_deadline(), 0);
        assert_eq!(timers.next_deadline(), None);
        assert!(timers.remove(never).is_some());
    }

    #[test]
    fn compaction_bounds_the_heap() {
        let t0: u64 = 1 << 50;
        let mut timers = Timers::default();
        let handles: Vec<_> = (0..10_000)
            .map(|i| timers.add(t0 + i * 1_000_000, cb()))
            .collect();
        for h in &handles[..9_900] {
            timers.remove(*h);
        }
        let stats = timers.stats();
        assert_eq!(stats.pending, 100);
        assert!(stats.heap_entries <= 100 + COMPACT_MIN + 1, "{stats:?}");
        assert_eq!(stats.heap_entries, stats.pending + stats.cancelled);
    }
}
