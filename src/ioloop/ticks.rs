//! The loop's own time: integer nanoseconds ("ticks") of the monotonic
//! clock, so that the per-iteration work — due timeouts, the poll timeout,
//! the blocking log's deadline — is integer compares and one subtraction.
//!
//! `Instant` is opaque: every `Instant - Instant` goes through std's
//! `Timespec` subtraction (a borrow, a normalising `Duration::new`), about
//! 55 instructions, and `Instant::now()` wraps `clock_gettime` in a
//! `Result` check; `bench/http_callgrind.sh` counted those at over 100
//! instructions per request. So the loop reads `CLOCK_MONOTONIC` itself (the
//! clock `Instant` reads on Linux) as a `u64`, and converts to and from
//! `Instant` only at its edges: `call_at`, a manual clock, user observers.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use squall::IOLoop;
//!
//! // Deadlines given as `Instant`s and as delays meet on one time line.
//! let io_loop = IOLoop::new()?;
//! let t0 = Instant::now();
//! let l = io_loop.clone();
//! io_loop.call_at(io_loop.time() + Duration::from_millis(5), move || l.stop());
//! io_loop.start()?;
//! assert!(t0.elapsed() >= Duration::from_millis(5));
//! # Ok::<(), squall::Error>(())
//! ```

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Added to every reading so that deadlines up to a year before the clock's
/// zero (boot, on Linux) still order exactly instead of all saturating to 0
/// (`call_at(Instant::now() - an hour)` and its like).
const MARGIN: u64 = 365 * 24 * 3600 * 1_000_000_000;

/// The tick every deadline past what ticks can hold saturates to (some 584
/// years after the clock's zero): "never". A timeout there never runs, and
/// gives the loop nothing to wait for (see `Timers::next_deadline`), on
/// either clock; a manual clock does not jump to it.
pub(crate) const NEVER: u64 = u64::MAX;

/// A duration as ticks, saturating: `Duration::MAX` is [`NEVER`], not an
/// overflow.
#[inline]
pub(crate) fn from_duration(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The monotonic clock now, in ticks. Hot: once or twice per iteration.
#[cfg(target_os = "linux")]
#[inline]
pub(crate) fn now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always
    // exists on Linux, so the call cannot fail (std's `Instant::now` makes
    // the same call and treats failure as impossible too).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    // Both fields are non-negative for this clock.
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
        .wrapping_add(MARGIN)
}

/// The monotonic clock now, in ticks (through `Instant` where the loop does
/// not know which clock `Instant` reads).
#[cfg(not(target_os = "linux"))]
#[inline]
pub(crate) fn now() -> u64 {
    base().tick(Instant::now())
}

/// One `Instant` and its tick, for conversions; fixed for the process.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Base {
    instant: Instant,
    tick: u64,
}

/// The process's conversion base, made on first use.
#[inline]
pub(crate) fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(Base::calibrate)
}

impl Base {
    /// Pairs an `Instant` with a tick reading taken just before it. The two
    /// reads cannot be simultaneous; of a few tries the tightest pair is
    /// kept, so the pairing is off by at most a few tens of nanoseconds
    /// (up to about a microsecond on a clock source read by a syscall).
    /// "Before" on purpose: an `Instant` deadline then becomes a tick that
    /// much early, never late, so a deadline of now is due in this
    /// iteration rather than after epoll's 1 ms minimum wait; an observer's
    /// `Instant`s come out that much late.
    #[cfg(target_os = "linux")]
    fn calibrate() -> Base {
        let mut best: Option<(u64, Base)> = None;
        for _ in 0..8 {
            let before = now();
            let instant = Instant::now();
            let after = now();
            let spread = after.saturating_sub(before);
            if best.map_or(true, |(s, _)| spread < s) {
                best = Some((
                    spread,
                    Base {
                        instant,
                        tick: before,
                    },
                ));
            }
        }
        best.expect("eight tries").1
    }

    /// Where ticks are made from `Instant`s, any pair will do.
    #[cfg(not(target_os = "linux"))]
    fn calibrate() -> Base {
        Base {
            instant: Instant::now(),
            tick: MARGIN,
        }
    }

    /// `when` in ticks (0 for anything before the clock's zero minus the
    /// margin, [`NEVER`] for anything some 584 years on). The exact
    /// inverse of [`instant`](Base::instant).
    pub(crate) fn tick(&self, when: Instant) -> u64 {
        if when >= self.instant {
            self.tick
                .saturating_add(from_duration(when.duration_since(self.instant)))
        } else {
            self.tick
                .saturating_sub(from_duration(self.instant.duration_since(when)))
        }
    }

    /// `tick` as an `Instant` (clamped to what the platform can represent).
    pub(crate) fn instant(&self, tick: u64) -> Instant {
        if tick >= self.tick {
            super::timers::saturating_add(self.instant, Duration::from_nanos(tick - self.tick))
        } else {
            let back = Duration::from_nanos(self.tick - tick);
            self.instant.checked_sub(back).unwrap_or(self.instant)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_are_exact_inverses() {
        let base = base();
        let t0 = Instant::now();
        for offset in [0u64, 1, 999, 1_000_000_007, 3_600_000_000_000] {
            let later = t0 + Duration::from_nanos(offset);
            assert_eq!(base.instant(base.tick(later)), later);
            if let Some(earlier) = t0.checked_sub(Duration::from_nanos(offset)) {
                assert_eq!(base.instant(base.tick(earlier)), earlier);
            }
        }
    }

    #[test]
    fn ticks_follow_instant() {
        let base = base();
        let a = now();
        let i = Instant::now();
        let b = now();
        // The pairing is off by at most the calibration's spread: far less
        // than a millisecond.
        let t = base.tick(i);
        assert!(t + 1_000_000 >= a && t <= b + 1_000_000, "{a} {t} {b}");
        std::thread::sleep(Duration::from_millis(2));
        assert!(now() - b >= 2_000_000);
    }

    #[test]
    fn far_deadlines_saturate() {
        let base = base();
        let t0 = Instant::now();
        assert_eq!(
            base.tick(super::super::timers::saturating_add(t0, Duration::MAX)),
            u64::MAX
        );
        assert_eq!(from_duration(Duration::MAX), u64::MAX);
    }
}
