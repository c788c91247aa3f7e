//! Time as an input: the [`Clock`] trait, a [`SystemClock`] for real use and a
//! [`ManualClock`] for tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A monotonic source of time in nanoseconds since the clock's own epoch.
///
/// The limiter never reads the wall clock itself: every check takes its time from a
/// `Clock` (or from the caller, in the `*_at` methods). Two readings of one clock must
/// never go backwards; the limiter stays safe if they do (an earlier time only makes a
/// check stricter), but refusals would then be reported with a larger retry-after.
///
/// Time 0 means "the start": a key that has never been seen is full at any time, so a
/// clock may start at 0.
pub trait Clock: Send + Sync {
    /// Nanoseconds since this clock's epoch.
    fn now_ns(&self) -> u64;
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
}

/// The real clock: [`std::time::Instant`], counted from the moment the clock was made.
///
/// Copies share the epoch, so every copy of one `SystemClock` reads the same timeline.
/// After about 584 years the reading saturates at `u64::MAX`.
///
/// ```
/// use paygo_ratelimit::{Clock, SystemClock};
///
/// let clock = SystemClock::new();
/// let a = clock.now_ns();
/// let b = clock.now_ns();
/// assert!(b >= a);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SystemClock {
    epoch: Instant,
}

impl SystemClock {
    /// A clock whose epoch is now.
    pub fn new() -> Self {
        SystemClock { epoch: Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A clock that moves only when told to, for exact tests.
///
/// Clones share one time, so a test can keep a clone and advance the clock a limiter
/// owns.
///
/// ```
/// use paygo_ratelimit::{Clock, ManualClock};
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
    /// A clock that reads `start_ns` until moved.
    pub fn new(start_ns: u64) -> Self {
        ManualClock {
            now_ns: Arc::new(AtomicU64::new(start_ns)),
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

    /// Sets the time. Tests may move it backwards to check that the limiter stays safe.
    pub fn set_ns(&self, now_ns: u64) {
        self.now_ns.store(now_ns, Ordering::Release);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.now_ns.load(Ordering::Acquire)
    }
}
