//! The one error type of this crate.

use thiserror::Error;

/// Everything that can go wrong in rate limiting.
///
/// Messages are lowercase and say what was wrong and what was expected, so that a
/// service can pass them on to its caller unchanged. A refused request is *not* an
/// error: it is a [`Decision`](crate::Decision) with `allowed == false`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// A quota whose limit is zero.
    #[error("quota limit is 0: expected at least 1 unit per period")]
    ZeroLimit,
    /// A quota whose period is zero.
    #[error("quota period is 0 ns: expected a period of at least 1 ns")]
    ZeroPeriod,
    /// A quota whose burst is zero.
    #[error("quota burst is 0: expected a burst of at least 1 unit")]
    ZeroBurst,
    /// A burst larger than the limit, which no quota can allow while keeping the
    /// rolling-window promise.
    #[error(
        "burst {burst} is larger than the limit {limit}: a rolling window would admit more than the limit; \
         expected a burst of at most {limit}, or Quota::without_window_bound to opt out of the promise"
    )]
    BurstExceedsLimit {
        /// The burst asked for.
        burst: u64,
        /// The quota's limit per period.
        limit: u64,
    },
    /// A quota whose numbers do not fit the limiter's 64-bit nanosecond arithmetic.
    #[error(
        "quota of {limit} per {period_ns} ns with burst {burst} is too large: \
         expected burst x emission interval of at most 2^62 ns (about 146 years)"
    )]
    QuotaTooLarge {
        /// The quota's limit per period.
        limit: u64,
        /// The quota's period in nanoseconds.
        period_ns: u64,
        /// The quota's burst.
        burst: u64,
    },
    /// A quota that a store cannot hold exactly: the Redis store computes in a Lua script,
    /// whose numbers are exact up to 2^53, and keeps `burst x emission interval` (and every
    /// debt) within 2^52 ns, about 52 days.
    #[error(
        "quota of {limit} per {period_ns} ns with burst {burst} is too large for this store: \
         expected burst x emission interval of at most {capacity_ns_max} ns"
    )]
    QuotaExceedsStore {
        /// The quota's limit per period.
        limit: u64,
        /// The quota's period in nanoseconds.
        period_ns: u64,
        /// The quota's burst.
        burst: u64,
        /// The largest capacity the store holds, in nanoseconds.
        capacity_ns_max: u64,
    },
    /// A weighted check asking for more units than the burst: it could never be admitted.
    #[error(
        "weight {weight} exceeds the burst {burst}: such a request can never be admitted; expected at most {burst}"
    )]
    WeightExceedsBurst {
        /// Units asked for.
        weight: u64,
        /// The most units a quota admits at once.
        burst: u64,
    },
    /// An adjustment too large for 64-bit nanosecond arithmetic.
    #[error("adjustment of {delta} units overflows the limiter's time arithmetic: expected a smaller adjustment")]
    AdjustmentTooLarge {
        /// The adjustment asked for.
        delta: i64,
    },
    /// A time beyond what the store's 64-bit nanoseconds since the Unix epoch can hold (the
    /// year 2554; 2262 for a `DirectLimiter`, 2116 for a `FlatStore`).
    #[error("time overflow: now ({now_ns} ns) plus the key's debt does not fit 64 bits")]
    TimeOverflow {
        /// The time of the check, in nanoseconds since the Unix epoch.
        now_ns: u64,
    },
    /// A multi-limit check given a number of weights that does not match its limits.
    #[error("{given} weights given for {expected} limits: expected one weight per limit")]
    WeightCountMismatch {
        /// Number of limits.
        expected: usize,
        /// Number of weights given.
        given: usize,
    },
    /// A limit index that the multi-limiter does not have.
    #[error("limit index {index} is out of range: expected less than {len}")]
    NoSuchLimit {
        /// The index given.
        index: usize,
        /// Number of limits.
        len: usize,
    },
    /// A plan that names a limit the store does not have.
    #[error("the plan names the limit {name:?}, which the store does not have: expected one of {known}")]
    NoSuchPolicy {
        /// The name given.
        name: String,
        /// The store's limits, comma-separated.
        known: String,
    },
    /// A policy name that cannot appear in a `RateLimit-Policy` header.
    #[error("invalid policy name {name:?}: {reason}")]
    InvalidPolicyName {
        /// The name given, cut to 64 characters.
        name: String,
        /// What was wrong and what was expected.
        reason: &'static str,
    },
    /// A quota changed while a check was under way (see
    /// [`Store::check_and_update_checked`](crate::Store::check_and_update_checked)): the
    /// store wrote nothing. The limiters check again under the new quota and never
    /// return it.
    #[error("the quota changed during the check: expected the check to be made again")]
    QuotaChanged,
    /// A shared store (for example Redis) could not answer.
    #[error("rate-limit store unavailable: {message}")]
    StoreUnavailable {
        /// What the store reported.
        message: String,
    },
}

/// Cuts user input to at most 64 characters for an error message.
pub(crate) fn cut(input: &str) -> String {
    input.chars().take(64).collect()
}
