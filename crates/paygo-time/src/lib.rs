//! One story of time for paygo: every component reads **nanoseconds since the Unix epoch
//! (UTC)** through one [`Clock`] trait.
//!
//! - [`SystemClock`]: the real clock. A calibrated TSC clock (`quanta`, about 10 ns a
//!   read against about 20 ns for `std::time::Instant`) anchored once per process at the
//!   Unix epoch with `SystemTime::now()`: monotonic within a process, cheap, and comparable
//!   across machines up to their clock synchronisation (see its docs for the limits).
//! - [`WallClock`]: the wall clock read at every call (`SystemTime::now()`), which follows
//!   the operating system's time corrections: for timestamps that must be wall time for a
//!   process's whole life (the ledger's), and that may step back (the ledger keeps its own
//!   increasing).
//! - [`ManualClock`]: a clock that moves only when told to, shared by its clones, for
//!   exact tests.
//!
//! Because the epoch is the Unix epoch and not the start of a process, a time read on one
//! gateway replica means the same instant on another (up to the machines' clock sync), a
//! time can be stored and read back after a restart, and a time 0 is 1970: far in the past
//! of every real reading (a rate limiter's never-seen key, whose state is 0, is full).
//!
//! ```
//! use std::time::{SystemTime, UNIX_EPOCH};
//!
//! use paygo_time::{Clock, ManualClock, SystemClock};
//!
//! // The system clock reads the wall clock's time, as nanoseconds since 1970.
//! let clock = SystemClock::new();
//! let wall_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
//! assert!(clock.now_ns().abs_diff(wall_ns) < 1_000_000_000);
//! // ... and never goes backwards.
//! let (a, b) = (clock.now_ns(), clock.now_ns());
//! assert!(b >= a);
//!
//! // Code that takes time as an input works on any clock, so tests can drive it exactly.
//! fn deadline_ns(clock: &impl Clock, timeout_ns: u64) -> u64 {
//!     clock.now_ns().saturating_add(timeout_ns)
//! }
//! let manual = ManualClock::new(1_000);
//! manual.advance_ns(500);
//! assert_eq!(deadline_ns(&manual, 10), 1_510);
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of time: nanoseconds since the Unix epoch (1970-01-01T00:00:00Z).
///
/// Implementations should never go backwards within a process ([`SystemClock`] does
/// not); users that must stay safe when a clock does (a rate limiter: an earlier time only
/// makes a check stricter) say so in their docs.
///
/// `u64` nanoseconds since 1970 last until the year 2554.
pub trait Clock: Send + Sync {
    /// Nanoseconds since the Unix epoch (UTC).
    fn now_ns(&self) -> u64;
}

impl<C: Clock + ?Sized> Clock for &C {
    #[inline]
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    #[inline]
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
}

/// The real clock: a calibrated TSC clock (`quanta`, the clock governor uses too)
/// anchored at the Unix epoch.
///
/// The first `SystemClock::new` of a process calibrates `quanta` (up to 200 ms) and reads
/// the wall clock once (`SystemTime::now()`) together with the raw counter; every reading
/// after that is the wall time of the anchor plus the counter's elapsed nanoseconds.
/// So:
///
/// - **Cheap**: a reading is the time-stamp counter, one multiply-shift and one add,
///   about 10 ns where `std::time::Instant` costs about 20 ns (a vDSO `clock_gettime`)
///   and `SystemTime::now()` about as much (`docs/DESIGN.md` has the measurements).
///   `quanta` reads the TSC when it is invariant (constant rate, running in every power
///   state); without one it reads the OS monotonic clock instead.
/// - **Monotonic**: every `SystemClock` of a process shares the one anchor, so readings
///   never go backwards, whatever the wall clock does later (an NTP step, a manual
///   change). Should two cores' counters disagree (rare on hardware with an invariant
///   TSC), a reading can be a little earlier than one taken just before on another core.
/// - **Comparable across machines** up to their clock synchronisation at the anchor,
///   plus the drift of the counter's calibration against the wall clock since then
///   (parts per million: a few hundred microseconds an hour at worst), and without the
///   wall clock's later corrections. A process that lives for weeks and needs its times
///   to stay within milliseconds of other machines' should compare against
///   `SystemTime::now()` now and then; a rate limiter, which only needs one replica's
///   times to be comparable with another's within a fraction of its periods, does not.
///   A shared store that must agree exactly takes its time from one place instead
///   (Redis `TIME`).
///
/// Copies share the anchor. A wall clock before 1970 reads as 1970.
///
/// ```
/// use paygo_time::{Clock, SystemClock};
///
/// let clock = SystemClock::new();
/// let a = clock.now_ns();
/// let b = clock.now_ns();
/// assert!(b >= a);
/// // After 2020-01-01 and before 2200.
/// assert!(a > 1_577_836_800_000_000_000 && a < 7_258_118_400_000_000_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SystemClock {
    /// The raw counter reading at the anchor.
    anchor_raw: u64,
    /// Nanoseconds since the Unix epoch at the anchor.
    anchor_unix_ns: u64,
}

/// The process's calibrated clock and its anchor (calibration is done once).
struct Anchor {
    clock: quanta::Clock,
    raw: u64,
    unix_ns: u64,
}

static ANCHOR: OnceLock<Anchor> = OnceLock::new();

#[inline]
fn anchor() -> &'static Anchor {
    ANCHOR.get_or_init(|| {
        let clock = quanta::Clock::new();
        let raw = clock.raw();
        // Before 1970 reads as 1970; after 2554 saturates.
        let unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Anchor { clock, raw, unix_ns }
    })
}

impl SystemClock {
    /// The process's system clock (the first call calibrates it).
    pub fn new() -> Self {
        let anchor = anchor();
        SystemClock {
            anchor_raw: anchor.raw,
            anchor_unix_ns: anchor.unix_ns,
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    #[inline]
    fn now_ns(&self) -> u64 {
        // The anchor exists: `new` made it, and a `SystemClock` is only made by `new`.
        let clock = &anchor().clock;
        // `delta_as_nanos` saturates at 0 should the counter read earlier than the anchor.
        self.anchor_unix_ns
            .saturating_add(clock.delta_as_nanos(self.anchor_raw, clock.raw()))
    }
}

/// A clock that moves only when told to, for exact tests.
///
/// Clones share one time, so a test can keep a clone and advance the clock a component
/// owns.
///
/// ```
/// use paygo_time::{Clock, ManualClock};
///
/// let clock = ManualClock::new(0);
/// let handle = clock.clone();
/// handle.advance_ns(1_500);
/// assert_eq!(clock.now_ns(), 1_500);
/// handle.set_ns(10);
/// assert_eq!(clock.now_ns(), 10);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now_ns: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock that reads `now_ns` until moved.
    pub fn new(now_ns: u64) -> Self {
        ManualClock {
            now_ns: Arc::new(AtomicU64::new(now_ns)),
        }
    }

    /// Moves the clock forward by `delta_ns` (saturating at `u64::MAX`) and returns the
    /// new time.
    pub fn advance_ns(&self, delta_ns: u64) -> u64 {
        let mut current = self.now_ns.load(Ordering::Acquire);
        loop {
            let next = current.saturating_add(delta_ns);
            match self
                .now_ns
                .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next,
                Err(actual) => current = actual,
            }
        }
    }

    /// Sets the time. Tests may move it backwards to check that a component stays safe.
    pub fn set_ns(&self, now_ns: u64) {
        self.now_ns.store(now_ns, Ordering::Release);
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now_ns(&self) -> u64 {
        self.now_ns.load(Ordering::Acquire)
    }
}

/// The wall clock, read at every call: `SystemTime::now()` as nanoseconds since the Unix
/// epoch. It follows the operating system's corrections (NTP slews and steps), so it stays
/// on the same time as other machines over a process's whole life, and it **may go
/// backwards** after a step: use it where a timestamp must be the wall time (the ledger's
/// timestamps, which an invoice or a statement shows and which the ledger itself keeps
/// increasing), and [`SystemClock`] where a reading must be cheap and monotonic (rate
/// limits). A reading costs about what `std::time::Instant` does (a vDSO call).
///
/// ```
/// use paygo_time::{Clock, WallClock};
///
/// let now = WallClock.now_ns();
/// // After 2020-01-01 and before 2200.
/// assert!(now > 1_577_836_800_000_000_000 && now < 7_258_118_400_000_000_000);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct WallClock;

impl Clock for WallClock {
    fn now_ns(&self) -> u64 {
        // Before 1970 reads as 1970; after 2554 saturates.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}
