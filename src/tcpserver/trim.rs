//! Memory back after a mass close: glibc's `malloc` keeps what its heap
//! freed, so a server that held 10,000 connections keeps their tens of
//! megabytes of RSS after they have gone (bench/idle_memory.sh: 63 MB).
//! `malloc_trim(0)` hands the free pages back to the kernel, but walks the
//! whole heap, so it is not called per connection: a watch looks every
//! [`CHECK_EVERY`] while the server has many connections, and trims once
//! their number has fallen by at least [`MIN_DROP`] and by half since the
//! last look at its peak. Nothing is done per request or per accept but one
//! comparison; the watch's timer only runs while at least [`WATCH_FROM`]
//! connections are (or recently were) open.
//!
//! Connections that stay open but go idle free memory too: the HTTP server
//! releases an idle keep-alive connection's buffers and reusable request
//! objects at its timer's first quiet tick (0.9 KiB each for a hello
//! world, see `http/conn.rs`). glibc keeps that as it keeps a closed
//! connection's (bench/idle_memory.sh: 2.10 KiB per idle connection before
//! this trim, 1.21 KiB after it, as much as before the request), so
//! the same watch trims once at least [`MIN_DROP`] connections, and half
//! of those open, went idle since the last trim ([`note_idle_release`]),
//! or at least [`MIN_DROP`] did and no more went idle since its last look.
//!
//! A trim after a mass close also shrinks the loop's tables
//! (`IOLoop::shrink_tables`) and the server's list of connections to what
//! they hold: their capacity, grown to the peak, is memory of its own
//! (bench/idle_memory.sh, 10,000 connections closed: 6.1 MiB before, then
//! 5.0-5.5 MiB from a start of 3.6-4.2 MiB while the loop's two slot tables
//! kept their peak, 4.0 MiB from a start of 3.8 MiB now that they free
//! their empty pages, see `ioloop/shrink.rs`).
//!
//! Each look also prunes the server's list of connections: its weak
//! references keep a closed stream's allocation (a few hundred bytes)
//! until they are dropped, which accepts alone would only do after as many
//! new connections as there were.
//!
//! Fixed `mallopt` thresholds (`M_TRIM_THRESHOLD`, `M_MMAP_THRESHOLD`, set
//! to 128 KiB through `GLIBC_TUNABLES`) were measured too, and gave back
//! nothing (63.2 MB kept either way, bench/idle_memory.sh with N=10000):
//! they only shorten the heap's top, and the freed connections sit below
//! objects that outlive them. `malloc_trim` also returns free pages in the
//! middle of the heap.
//!
//! Elsewhere than glibc (musl, macOS, a Rust global allocator) the watch is
//! not built: those allocators return memory their own way.
//!
//! ```
//! # use squall::{IOLoop, TCPServer, IOStream};
//! // Nothing to do: every TCPServer (and so every HTTPServer) has the watch.
//! let server = TCPServer::new(|_stream: IOStream, _peer: std::net::SocketAddr| {});
//! # let _ = server;
//! ```

use std::cell::Cell;
use std::rc::{Rc, Weak};
use std::time::Duration;

use super::Shared;
use crate::ioloop::{IOLoop, TimeoutHandle};

/// Connections tracked before the watch starts looking.
pub(super) const WATCH_FROM: usize = 256;
/// How often the watch looks, while it runs.
pub(super) const CHECK_EVERY: Duration = Duration::from_secs(2);
/// The fewest closed connections worth a trim.
pub(super) const MIN_DROP: usize = 1024;

thread_local! {
    /// Connections that went idle and freed their buffers since the last
    /// trim, on this thread (all its servers: the heap is the process's).
    static IDLE_RELEASES: Cell<usize> = const { Cell::new(0) };
    /// Trims made on this thread, by any of its servers: a server's
    /// `idle_seen` counts from the last of them only.
    static TRIMS: Cell<u64> = const { Cell::new(0) };
}

/// An idle connection has freed its buffers (the HTTP server's idle tick):
/// counted for the watch, which trims once many have.
#[inline]
pub(crate) fn note_idle_release() {
    IDLE_RELEASES.with(|n| n.set(n.get().saturating_add(1)));
}

/// The watch's state, one per server.
#[derive(Default)]
pub(super) struct TrimWatch {
    timer: Cell<Option<TimeoutHandle>>,
    /// The most connections seen open since the last trim.
    peak: Cell<usize>,
    /// The idle releases counted at the last look (see [`decide`]).
    idle_seen: Cell<usize>,
    /// [`TRIMS`] at the last look: another server's trim since then reset
    /// the count, so `idle_seen` no longer means anything.
    trims_seen: Cell<u64>,
}

impl TrimWatch {
    /// After an accept, with `tracked` connections on the list (closed
    /// ones not yet pruned included): starts the watch if there are many.
    #[inline]
    pub(super) fn accepted(&self, shared: &Rc<Shared>, tracked: usize) {
        if cfg!(all(target_os = "linux", target_env = "gnu"))
            && tracked >= WATCH_FROM
            && !self.armed()
        {
            arm(Rc::downgrade(shared));
        }
    }

    fn armed(&self) -> bool {
        let handle = self.timer.take();
        let armed = handle.is_some();
        self.timer.set(handle);
        armed
    }
}

fn arm(shared: Weak<Shared>) {
    let Some(strong) = shared.upgrade() else {
        return;
    };
    let io_loop = IOLoop::current();
    let handle = io_loop.call_later(CHECK_EVERY, move || {
        if let Some(shared) = shared.upgrade() {
            shared.trim.timer.set(None);
            look(&shared);
        }
    });
    if let Some(old) = strong.trim.timer.replace(Some(handle)) {
        io_loop.remove_timeout(old);
    }
}

/// What a look decides.
#[derive(Debug, PartialEq, Eq)]
struct Decision {
    trim: bool,
    /// The peak to remember.
    peak: usize,
    /// Look again later.
    again: bool,
}

/// With `peak` connections the most seen since the last trim, `open` now
/// and `idle` of them gone idle since then (`idle_seen` at the last look):
/// trim once they fell by [`MIN_DROP`] and by half, or once that many went
/// idle and either those are half of the open ones or the wave is over
/// (none more since the last look: the stragglers of a wave a trim
/// already caught). Each trim walks the heap, so it takes [`MIN_DROP`]
/// releases at least: a busy server's trims stay rare. Watch on while
/// there are many, or a fall short of that may still come.
fn decide(peak: usize, open: usize, idle: usize, idle_seen: usize) -> Decision {
    let peak = peak.max(open);
    let fell = peak - open >= MIN_DROP && open <= peak / 2;
    let trim = fell || (idle >= MIN_DROP && (idle >= open / 2 || idle == idle_seen));
    let peak = if trim { open } else { peak };
    let again = open >= WATCH_FROM / 2 || peak - open >= MIN_DROP;
    Decision {
        trim,
        // Not watching: the next wave of accepts starts afresh.
        peak: if again { peak } else { open },
        again,
    }
}

/// A server's `idle_seen` from its last look, if no trim (of this server
/// or another on the thread) reset the count since; else 0, so that a
/// count started afresh is not taken for "no more since the last look".
fn seen_since(idle_seen: usize, trims_then: u64, trims_now: u64) -> usize {
    if trims_then == trims_now {
        idle_seen
    } else {
        0
    }
}

/// One look (see [`decide`]).
fn look(shared: &Rc<Shared>) {
    let open = shared.open_connections();
    let watch = &shared.trim;
    let peak = watch.peak.get();
    let idle = IDLE_RELEASES.with(Cell::get);
    let trims = TRIMS.with(Cell::get);
    let idle_seen = seen_since(watch.idle_seen.get(), watch.trims_seen.get(), trims);
    let decision = decide(peak, open, idle, idle_seen);
    watch.idle_seen.set(if decision.trim { 0 } else { idle });
    watch.trims_seen.set(trims + u64::from(decision.trim));
    if decision.trim {
        let start = std::time::Instant::now();
        IDLE_RELEASES.with(|n| n.set(0));
        TRIMS.with(|t| t.set(trims + 1));
        // The tables first: what they give back is trimmed with the rest.
        IOLoop::current().shrink_tables();
        {
            let mut list = shared.connections.borrow_mut();
            let len = list.len();
            if list.capacity() > 4 * len.max(64) {
                list.shrink_to(2 * len);
            }
        }
        let released = trim();
        log::debug!(
            "{open} connections open ({idle} went idle), {peak} at the peak: \
             malloc_trim took {:?}{}",
            start.elapsed(),
            if released {
                ""
            } else {
                " and released nothing"
            }
        );
    }
    watch.peak.set(decision.peak);
    if decision.again {
        arm(Rc::downgrade(shared));
    }
}

/// Gives the heap's free pages back to the kernel; whether any were.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() -> bool {
    // SAFETY: malloc_trim only walks glibc's own arenas, under their locks;
    // it takes no pointer of ours and frees nothing in use.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_servers_trim_voids_the_idle_count_seen() {
        assert_eq!(seen_since(1_500, 3, 3), 1_500);
        // Another server trimmed since (the count restarted from 0): a new
        // count of 1,500 is not "none more since the last look".
        assert_eq!(seen_since(1_500, 3, 4), 0);
        assert!(!decide(6_000, 5_000, 1_500, seen_since(1_500, 3, 4)).trim);
        assert!(decide(6_000, 5_000, 1_500, seen_since(1_500, 4, 4)).trim);
    }

    #[test]
    fn trims_once_connections_fell_by_half_and_enough() {
        // Many open: watch on, nothing to trim.
        assert_eq!(
            decide(0, 10_000, 0, 0),
            Decision {
                trim: false,
                peak: 10_000,
                again: true
            }
        );
        // Fell by 4,000 of 10,000: not half yet.
        assert_eq!(
            decide(10_000, 6_000, 0, 0),
            Decision {
                trim: false,
                peak: 10_000,
                again: true
            }
        );
        // Below half: trim, and the peak starts again from here.
        assert_eq!(
            decide(10_000, 4_900, 0, 0),
            Decision {
                trim: true,
                peak: 4_900,
                again: true
            }
        );
        // All gone: trim, and stop watching.
        assert_eq!(
            decide(10_000, 0, 0, 0),
            Decision {
                trim: true,
                peak: 0,
                again: false
            }
        );
        // A small server's churn is never worth a trim.
        assert_eq!(
            decide(1_500, 700, 0, 0),
            Decision {
                trim: false,
                peak: 1_500,
                again: true
            }
        );
        assert_eq!(
            decide(1_000, 0, 0, 0),
            Decision {
                trim: false,
                peak: 0,
                again: false
            }
        );
        // Most of the open connections went idle (their buffers freed):
        // trim, and watch on.
        assert_eq!(
            decide(10_000, 10_000, 10_000, 0),
            Decision {
                trim: true,
                peak: 10_000,
                again: true
            }
        );
        // A few idle among many: not yet; nor a small server's idle ones.
        assert!(!decide(10_000, 10_000, 4_000, 0).trim);
        assert!(!decide(10_000, 10_000, 4_000, 3_000).trim);
        assert!(!decide(800, 800, 800, 800).trim);
        // The same few at two looks: the wave is over, its stragglers are
        // trimmed.
        assert!(decide(10_000, 10_000, 3_000, 3_000).trim);
        // Few connections left and nothing to trim: the watch stops.
        assert_eq!(
            decide(300, 100, 0, 0),
            Decision {
                trim: false,
                peak: 100,
                again: false
            }
        );
    }
}
