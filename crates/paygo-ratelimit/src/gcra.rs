//! The GCRA itself, as pure functions of a key's state, the time and the quota: the
//! steps every store computes with, public so that a store written in another language (a
//! Redis Lua script, issue 18) can be golden-tested against them on the same sequences of
//! (time, weight, quota).
//!
//! A key's whole state is its *theoretical arrival time* (TAT) in nanoseconds since the
//! Unix epoch (the [`Clock`](crate::Clock)'s time). At time `now` its *debt* is
//! `max(TAT, now) - now`: how far ahead of the sustained rate the key is. A check of `n`
//! units costs `n x T`; it is admitted if `debt + n x T <= burst x T` (the capacity), and
//! then `TAT = now + debt + n x T`. A TAT of 0 (or any TAT at or before `now`) means
//! "full", which is why a fresh key and an evicted key are the same thing: 0 is 1970, far
//! in the past of every real time. Every function reads a key's TAT as at least the
//! quota's floor ([`Quota::floor_tat_ns`], 0 unless a runtime change set one), so a floor
//! applies to every key of a class alike, stored or not.
//!
//! A store is these steps plus one atomic read-modify-write of the TAT:
//!
//! ```
//! use paygo_ratelimit::Quota;
//! use paygo_ratelimit::gcra::{self, Outcome};
//!
//! let quota = Quota::per_second(10, 2)?;
//! let now_ns = 1_764_000_000_000_000_000; // a Unix time
//! let mut tat = 0; // a key never seen: full
//! for expected in [true, true, false] {
//!     let Outcome { new_tat, decision } = gcra::check(tat, now_ns, &quota, 1)?;
//!     assert_eq!(decision.allowed, expected);
//!     // Store the new TAT (a refusal changes nothing).
//!     tat = new_tat.unwrap_or(tat);
//! }
//! // The reserve-then-adjust step: one unit given back.
//! let (tat_after, decision) = gcra::adjust(tat, now_ns, &quota, -1)?;
//! assert_eq!((decision.remaining, tat_after), (1, now_ns + quota.emission_interval_ns()));
//! // Once the debt has run out the key is full and can be forgotten.
//! assert!(gcra::is_full(tat_after, now_ns + quota.emission_interval_ns()));
//! # Ok::<(), paygo_ratelimit::RateLimitError>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::error::RateLimitError;
use crate::quota::Quota;

/// The outcome of a check: whether it was admitted, and what a client should be told.
///
/// ```
/// use paygo_ratelimit::{DirectLimiter, ManualClock, Quota};
///
/// let clock = ManualClock::new(0);
/// let limiter = DirectLimiter::with_clock(Quota::per_second(10, 2)?, clock.clone());
/// assert!(limiter.check()?.allowed);
/// let second = limiter.check()?;
/// assert_eq!((second.allowed, second.remaining), (true, 0));
/// let third = limiter.check()?;
/// assert!(!third.allowed);
/// // T = ceil(1 s / (10 - 2 + 1)) = 111,111,112 ns; the third unit fits after one T.
/// assert_eq!(third.retry_after_ns, Some(111_111_112));
/// # Ok::<(), paygo_ratelimit::RateLimitError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Decision {
    /// Whether the units were admitted (and consumed).
    pub allowed: bool,
    /// The quota's limit per period (the `q` of `RateLimit-Policy`).
    pub limit: u64,
    /// The quota's period in nanoseconds (the `w` of `RateLimit-Policy`, in seconds).
    pub period_ns: u64,
    /// Units that can be admitted right now, at once, after this decision.
    pub remaining: u64,
    /// Nanoseconds until the key is full again (remaining back to the burst) if nothing
    /// more is admitted.
    pub reset_ns: u64,
    /// For a refusal, the nanoseconds after which the same check is admitted if nothing
    /// else is admitted meanwhile (a nanosecond earlier it is refused). `None` when
    /// admitted.
    pub retry_after_ns: Option<u64>,
}

/// What [`check`] answers: the decision, and the TAT to store if the state changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Outcome {
    /// The key's new TAT, when the check changed it (admitted with a weight above 0);
    /// `None` for a refusal or a weight of 0: nothing to write.
    pub new_tat: Option<u64>,
    /// The decision to report.
    pub decision: Decision,
}

/// The decision a key with `debt` nanoseconds of debt (after the check, for an admitted
/// one) reports under `quota`: `remaining = (capacity - debt) / T` (0 when the debt
/// exceeds the capacity), `reset_ns = debt`, and the given admission and retry-after.
///
/// ```
/// use paygo_ratelimit::{Quota, gcra};
///
/// let quota = Quota::per_second(10, 2)?;
/// let t = quota.emission_interval_ns();
/// let d = gcra::decision(&quota, true, t, None);
/// assert_eq!((d.remaining, d.reset_ns, d.limit), (1, t, 10));
/// # Ok::<(), paygo_ratelimit::RateLimitError>(())
/// ```
#[inline]
pub fn decision(quota: &Quota, allowed: bool, debt: u64, retry_after_ns: Option<u64>) -> Decision {
    let capacity = quota.capacity_ns();
    Decision {
        allowed,
        limit: quota.limit(),
        period_ns: quota.period_ns(),
        remaining: capacity.saturating_sub(debt) / quota.emission_interval_ns(),
        reset_ns: debt,
        retry_after_ns,
    }
}

/// Checks `weight` units at `now_ns` against a key whose TAT is `tat` (0 for a key never
/// seen), reading the TAT as at least the quota's floor. Admitted when the debt plus
/// `weight x T` fits the capacity; the [`Outcome`] says what to store. A weight of 0
/// reports the key's state and is always admitted.
///
/// # Errors
///
/// [`RateLimitError::WeightExceedsBurst`] when `weight > burst`;
/// [`RateLimitError::TimeOverflow`] when the new TAT does not fit 64 bits.
#[inline]
pub fn check(tat: u64, now_ns: u64, quota: &Quota, weight: u64) -> Result<Outcome, RateLimitError> {
    if weight > quota.burst() {
        return Err(RateLimitError::WeightExceedsBurst {
            weight,
            burst: quota.burst(),
        });
    }
    let debt = tat.max(quota.floor_tat_ns()).saturating_sub(now_ns);
    // weight <= burst, so cost <= capacity <= 2^62.
    let cost = weight * quota.emission_interval_ns();
    let room = quota.capacity_ns() - cost;
    if debt <= room {
        let new_debt = debt + cost;
        let new_tat = now_ns
            .checked_add(new_debt)
            .ok_or(RateLimitError::TimeOverflow { now_ns })?;
        Ok(Outcome {
            new_tat: (weight > 0).then_some(new_tat),
            decision: decision(quota, true, new_debt, None),
        })
    } else {
        Ok(Outcome {
            new_tat: None,
            decision: decision(quota, false, debt, Some(debt - room)),
        })
    }
}

/// Adds `delta` units of debt (or, negative, returns them) unconditionally: the
/// reserve-then-adjust step of weighted limits. The debt may exceed the capacity; it
/// never goes below zero (nor below the floor: what is given back is the key's own).
/// Returns the TAT to store (always: a store writes it even when unchanged) and the
/// decision, `allowed: true`, describing the key after the adjustment.
///
/// # Errors
///
/// [`RateLimitError::AdjustmentTooLarge`] when `delta x T` or the new TAT does not fit
/// 64 bits.
#[inline]
pub fn adjust(tat: u64, now_ns: u64, quota: &Quota, delta: i64) -> Result<(u64, Decision), RateLimitError> {
    let base = tat.max(quota.floor_tat_ns()).max(now_ns);
    let amount = delta
        .unsigned_abs()
        .checked_mul(quota.emission_interval_ns())
        .ok_or(RateLimitError::AdjustmentTooLarge { delta })?;
    let new_tat = if delta >= 0 {
        base.checked_add(amount)
            .ok_or(RateLimitError::AdjustmentTooLarge { delta })?
    } else {
        base.saturating_sub(amount).max(now_ns).max(quota.floor_tat_ns())
    };
    Ok((new_tat, decision(quota, true, new_tat - now_ns, None)))
}

/// Whether a key with this TAT is full at `now_ns` (and so can be forgotten: a key
/// that is not stored reads as TAT 0, which is full too).
#[inline]
pub fn is_full(tat: u64, now_ns: u64) -> bool {
    tat <= now_ns
}
