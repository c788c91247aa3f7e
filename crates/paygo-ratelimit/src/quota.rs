//! Quotas as data: [`Quota`], named [`Policy`]s and [`Plan`]s.

use std::fmt;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering, fence};

use serde::{Deserialize, Serialize};

use crate::error::{RateLimitError, cut};

/// Nanoseconds in a second.
pub const NS_PER_SECOND: u64 = 1_000_000_000;
/// Nanoseconds in a minute.
pub const NS_PER_MINUTE: u64 = 60 * NS_PER_SECOND;
/// Nanoseconds in an hour.
pub const NS_PER_HOUR: u64 = 60 * NS_PER_MINUTE;

/// The Pay As You Go plan's limit: 18,000 API requests per rolling hour.
pub const PAY_AS_YOU_GO_LIMIT: u64 = 18_000;
/// The Pay As You Go plan's burst: 60 requests at once (see `docs/ratelimit.md`).
pub const PAY_AS_YOU_GO_BURST: u64 = 60;

/// The largest capacity (burst x emission interval) a quota may have: 2^62 ns, about
/// 146 years, so that a Unix time plus a debt always fits 64 bits for centuries.
pub const CAPACITY_NS_MAX: u64 = 1 << 62;

/// The numbers of a quota: `limit` units per `period_ns`, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QuotaOptions {
    /// Units (requests, tokens) allowed per period.
    pub limit: u64,
    /// The period in nanoseconds (for example [`NS_PER_HOUR`]).
    pub period_ns: u64,
    /// The most units admitted at the same instant.
    pub burst: u64,
}

/// A rate-limit quota for the GCRA limiter: a limit per period and a burst.
///
/// A GCRA admits one unit per *emission interval* `T` on average and lets a key fall up
/// to `burst` units ahead. In any window of `W` nanoseconds it admits at most
/// `burst + floor((W - 1) / T)` units (the derivation is in `docs/ratelimit.md`).
///
/// [`Quota::new`] keeps the **rolling-window promise**: no window of one period ever
/// admits more than `limit` units, a fresh key's first period included. It does so by
/// choosing `T = ceil(period_ns / (limit - burst + 1))`: every unit of burst beyond the
/// first is paid for by a slightly slower sustained rate. [`Quota::without_window_bound`]
/// is the governor-style quota (`T = ceil(period_ns / limit)`, the burst on top), which
/// can admit up to `limit + burst - 1` in one period; its name says so.
///
/// # Rounding
///
/// The emission interval is a whole number of nanoseconds, rounded **up** (never more
/// than the quota). It is exact when the period is a multiple of `limit - burst + 1`.
///
/// ```
/// use paygo_ratelimit::{NS_PER_HOUR, Quota, QuotaOptions};
///
/// // Pay As You Go: 18,000 per rolling hour, 60 at once.
/// let payg = Quota::pay_as_you_go();
/// assert_eq!(payg.max_admitted_per_period(), 18_000);
/// assert_eq!(payg.emission_interval_ns(), 200_657_712);
///
/// // governor's Quota::per_hour(18000): burst = limit, about 36,000 in a first hour.
/// let governor_like = Quota::without_window_bound(QuotaOptions {
///     limit: 18_000,
///     period_ns: NS_PER_HOUR,
///     burst: 18_000,
/// })?;
/// assert_eq!(governor_like.max_admitted_per_period(), 35_999);
///
/// // The same burst with the promise kept is refused, never silently weakened.
/// assert!(Quota::new(QuotaOptions { limit: 100, period_ns: NS_PER_HOUR, burst: 101 }).is_err());
/// # Ok::<(), paygo_ratelimit::RateLimitError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "QuotaRepr", into = "QuotaRepr")]
pub struct Quota {
    limit: u64,
    period_ns: u64,
    burst: u64,
    emission_interval_ns: u64,
    window_bound: bool,
    /// The class floor a runtime raise leaves behind (0 for every quota built from
    /// options): see [`Quota::floor_tat_ns`].
    floor_tat_ns: u64,
}

/// The serialized form of a [`Quota`]: its options and whether it keeps the promise.
#[derive(Serialize, Deserialize)]
struct QuotaRepr {
    limit: u64,
    period_ns: u64,
    burst: u64,
    window_bound: bool,
}

impl TryFrom<QuotaRepr> for Quota {
    type Error = RateLimitError;

    fn try_from(r: QuotaRepr) -> Result<Self, Self::Error> {
        let options = QuotaOptions {
            limit: r.limit,
            period_ns: r.period_ns,
            burst: r.burst,
        };
        if r.window_bound {
            Quota::new(options)
        } else {
            Quota::without_window_bound(options)
        }
    }
}

impl From<Quota> for QuotaRepr {
    fn from(q: Quota) -> Self {
        QuotaRepr {
            limit: q.limit,
            period_ns: q.period_ns,
            burst: q.burst,
            window_bound: q.window_bound,
        }
    }
}

impl Quota {
    /// A quota that never admits more than `limit` units in any window of `period_ns`
    /// (the rolling-window promise), with up to `burst` units at once.
    ///
    /// The emission interval is `ceil(period_ns / (limit - burst + 1))`.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::ZeroLimit`], [`RateLimitError::ZeroPeriod`] or
    /// [`RateLimitError::ZeroBurst`] for a zero; [`RateLimitError::BurstExceedsLimit`]
    /// when `burst > limit` (no emission interval keeps the promise then);
    /// [`RateLimitError::QuotaTooLarge`] when `burst x interval` exceeds
    /// [`CAPACITY_NS_MAX`].
    ///
    /// # Properties
    ///
    /// For every valid quota and any arrival times, at most `limit` units are admitted in
    /// any half-open window of `period_ns` (`max_admitted_per_period() <= limit`).
    pub fn new(options: QuotaOptions) -> Result<Self, RateLimitError> {
        check_nonzero(&options)?;
        if options.burst > options.limit {
            return Err(RateLimitError::BurstExceedsLimit {
                burst: options.burst,
                limit: options.limit,
            });
        }
        let paced = options.limit - options.burst + 1;
        Quota::build(options, options.period_ns.div_ceil(paced), true)
    }

    /// A governor-style quota that does **not** keep the rolling-window promise: one unit
    /// per `ceil(period_ns / limit)` sustained, plus a burst of `burst` on top, so one
    /// window of `period_ns` can admit up to `limit + burst - 1` units.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::ZeroLimit`], [`RateLimitError::ZeroPeriod`] or
    /// [`RateLimitError::ZeroBurst`] for a zero; [`RateLimitError::QuotaTooLarge`] when
    /// `burst x interval` exceeds [`CAPACITY_NS_MAX`].
    pub fn without_window_bound(options: QuotaOptions) -> Result<Self, RateLimitError> {
        check_nonzero(&options)?;
        Quota::build(options, options.period_ns.div_ceil(options.limit), false)
    }

    /// `limit` per hour with the rolling-window promise; see [`Quota::new`].
    ///
    /// # Errors
    ///
    /// As [`Quota::new`].
    pub fn per_hour(limit: u64, burst: u64) -> Result<Self, RateLimitError> {
        Quota::new(QuotaOptions {
            limit,
            period_ns: NS_PER_HOUR,
            burst,
        })
    }

    /// `limit` per minute with the rolling-window promise; see [`Quota::new`].
    ///
    /// # Errors
    ///
    /// As [`Quota::new`].
    pub fn per_minute(limit: u64, burst: u64) -> Result<Self, RateLimitError> {
        Quota::new(QuotaOptions {
            limit,
            period_ns: NS_PER_MINUTE,
            burst,
        })
    }

    /// `limit` per second with the rolling-window promise; see [`Quota::new`].
    ///
    /// # Errors
    ///
    /// As [`Quota::new`].
    pub fn per_second(limit: u64, burst: u64) -> Result<Self, RateLimitError> {
        Quota::new(QuotaOptions {
            limit,
            period_ns: NS_PER_SECOND,
            burst,
        })
    }

    /// The Pay As You Go plan: [`PAY_AS_YOU_GO_LIMIT`] (18,000) requests per rolling
    /// hour, [`PAY_AS_YOU_GO_BURST`] (60) at once, emission interval 200,657,712 ns.
    pub fn pay_as_you_go() -> Self {
        Quota {
            limit: PAY_AS_YOU_GO_LIMIT,
            period_ns: NS_PER_HOUR,
            burst: PAY_AS_YOU_GO_BURST,
            // ceil(3_600_000_000_000 / (18_000 - 60 + 1)); a test checks it against Quota::new.
            emission_interval_ns: 200_657_712,
            window_bound: true,
            floor_tat_ns: 0,
        }
    }

    fn build(options: QuotaOptions, emission_interval_ns: u64, window_bound: bool) -> Result<Self, RateLimitError> {
        let too_large = RateLimitError::QuotaTooLarge {
            limit: options.limit,
            period_ns: options.period_ns,
            burst: options.burst,
        };
        match options.burst.checked_mul(emission_interval_ns) {
            Some(capacity) if capacity <= CAPACITY_NS_MAX => Ok(Quota {
                limit: options.limit,
                period_ns: options.period_ns,
                burst: options.burst,
                emission_interval_ns,
                window_bound,
                floor_tat_ns: 0,
            }),
            _ => Err(too_large),
        }
    }

    /// Units allowed per period.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The period in nanoseconds.
    pub fn period_ns(&self) -> u64 {
        self.period_ns
    }

    /// The most units admitted at the same instant.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// The options this quota was made from.
    pub fn options(&self) -> QuotaOptions {
        QuotaOptions {
            limit: self.limit,
            period_ns: self.period_ns,
            burst: self.burst,
        }
    }

    /// The GCRA emission interval `T`: one unit is earned back every `T` nanoseconds.
    pub fn emission_interval_ns(&self) -> u64 {
        self.emission_interval_ns
    }

    /// `burst x T`: how long a key takes to refill from empty to full.
    pub fn capacity_ns(&self) -> u64 {
        // Checked at construction to be at most CAPACITY_NS_MAX.
        self.burst.saturating_mul(self.emission_interval_ns)
    }

    /// Whether this quota keeps the rolling-window promise (made by [`Quota::new`]).
    pub fn keeps_window_bound(&self) -> bool {
        self.window_bound
    }

    /// The TAT every key is treated as having at least: 0 for every quota built from
    /// options or read with serde, so it changes nothing.
    ///
    /// A [`RateLimiter`](crate::RateLimiter) whose default quota is changed at runtime to
    /// one with a larger burst per unit of rate passes its checks a quota with a floor:
    /// keys it cannot see (never checked, or forgotten once full) may have used the old
    /// quota fully just before the change, so their new burst fills up at the new rate
    /// from the time of the change (`docs/ratelimit.md`, "Changing a quota at runtime").
    /// A [`Store`](crate::Store) computes every decision from `max(TAT, floor)`.
    pub fn floor_tat_ns(&self) -> u64 {
        self.floor_tat_ns
    }

    /// This quota with a floor (the limiter's view of a default quota after a change).
    pub(crate) fn with_floor(self, floor_tat_ns: u64) -> Self {
        Quota { floor_tat_ns, ..self }
    }

    /// This quota without a floor (what the limiter reports to its callers).
    pub(crate) fn without_floor(self) -> Self {
        self.with_floor(0)
    }

    /// The most units this quota can admit in one half-open window of `period_ns`:
    /// `burst + floor((period_ns - 1) / T)`. At most `limit` for [`Quota::new`].
    ///
    /// # Properties
    ///
    /// The bound is reached: a fresh key that takes its burst at once and then one unit
    /// every `T` gets exactly this many in its first period.
    pub fn max_admitted_per_period(&self) -> u64 {
        self.max_admitted_in_window_ns(self.period_ns)
    }

    /// The most units this quota can admit in one half-open window of `window_ns`
    /// nanoseconds (0 for an empty window).
    pub fn max_admitted_in_window_ns(&self, window_ns: u64) -> u64 {
        if window_ns == 0 {
            return 0;
        }
        self.burst.saturating_add((window_ns - 1) / self.emission_interval_ns)
    }
}

fn check_nonzero(options: &QuotaOptions) -> Result<(), RateLimitError> {
    if options.limit == 0 {
        return Err(RateLimitError::ZeroLimit);
    }
    if options.period_ns == 0 {
        return Err(RateLimitError::ZeroPeriod);
    }
    if options.burst == 0 {
        return Err(RateLimitError::ZeroBurst);
    }
    Ok(())
}

/// What a limit counts: requests or tokens. Selects the OpenAI-style header names
/// (`x-ratelimit-*-requests` or `x-ratelimit-*-tokens`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// API requests.
    Requests,
    /// Model tokens.
    Tokens,
}

impl Unit {
    /// `"requests"` or `"tokens"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Requests => "requests",
            Unit::Tokens => "tokens",
        }
    }
}

/// The name of a limit as it appears in `RateLimit-Policy` and `RateLimit` headers
/// (`"payg"`): 1 to 64 characters from `A-Z a-z 0-9 - _ . : /`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PolicyName(String);

impl PolicyName {
    /// Checks and wraps a policy name.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::InvalidPolicyName`] for an empty name, one longer than 64
    /// characters, or one with a character outside `A-Z a-z 0-9 - _ . : /`.
    pub fn new(name: &str) -> Result<Self, RateLimitError> {
        let invalid = |reason| RateLimitError::InvalidPolicyName {
            name: cut(name),
            reason,
        };
        if name.is_empty() {
            return Err(invalid("empty: expected 1 to 64 characters"));
        }
        if name.len() > 64 {
            return Err(invalid("too long: expected at most 64 characters"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/'))
        {
            return Err(invalid("expected only A-Z a-z 0-9 - _ . : /"));
        }
        Ok(PolicyName(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PolicyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for PolicyName {
    type Error = RateLimitError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        PolicyName::new(&value)
    }
}

impl From<PolicyName> for String {
    fn from(value: PolicyName) -> Self {
        value.0
    }
}

/// A named limit: what it counts and its quota (`"payg"`: 18,000 requests per hour).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Policy {
    /// The name shown in the `RateLimit` headers.
    pub name: PolicyName,
    /// What the limit counts.
    pub unit: Unit,
    /// The quota.
    pub quota: Quota,
}

/// A plan: the limits that apply together to each key of the plan (for example a
/// per-second burst limit, the hourly quota and a tokens-per-minute limit). A request is
/// admitted only if every limit admits it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Plan {
    /// The plan's name (`"pay-as-you-go"`).
    pub name: String,
    /// The limits, checked in this order.
    pub policies: Vec<Policy>,
}

impl Plan {
    /// The Pay As You Go plan: one policy `"payg"`, 18,000 requests per rolling hour,
    /// 60 at once ([`Quota::pay_as_you_go`]).
    pub fn pay_as_you_go() -> Self {
        Plan {
            name: "pay-as-you-go".to_owned(),
            policies: vec![Policy {
                name: PolicyName("payg".to_owned()),
                unit: Unit::Requests,
                quota: Quota::pay_as_you_go(),
            }],
        }
    }
}

/// A [`Quota`] that many threads read on every check and an operator replaces at
/// runtime: a sequence lock over atomics, so readers never write shared memory.
///
/// The sequence number also tells a check whether a quota change started since it read
/// the quota: a change holds it odd from before it converts any key's state until the new
/// quota is published, readers wait while it is odd (spinning briefly, then on the
/// writer's mutex), and a check asks again after reading its key's state, before it
/// decides (see `Store::check_and_update_checked`).
#[derive(Debug)]
pub(crate) struct AtomicQuota {
    seq: AtomicU64,
    fields: [AtomicU64; 6],
    writer: Mutex<()>,
}

/// A quota change in progress: holds the writer's mutex and an odd sequence number; the
/// number becomes even again when it is dropped.
pub(crate) struct Change<'a> {
    quota: &'a AtomicQuota,
    _guard: std::sync::MutexGuard<'a, ()>,
}

impl Change<'_> {
    /// The quota in force (readers are held off, so this is the last published one).
    pub(crate) fn current(&self) -> Quota {
        self.quota.read_fields()
    }

    /// Writes the new quota; readers see it once the change is dropped.
    pub(crate) fn publish(&self, quota: Quota) {
        let values = [
            quota.limit,
            quota.period_ns,
            quota.burst,
            quota.emission_interval_ns,
            u64::from(quota.window_bound),
            quota.floor_tat_ns,
        ];
        for (field, value) in self.quota.fields.iter().zip(values) {
            field.store(value, Ordering::Relaxed);
        }
    }
}

impl Drop for Change<'_> {
    fn drop(&mut self) {
        // Odd to even: the fields written while odd are visible to a reader that sees it.
        self.quota.seq.fetch_add(1, Ordering::Release);
    }
}

/// How many times a reader spins on an odd sequence before it waits on the mutex.
const SPINS_MAX: u32 = 64;

impl AtomicQuota {
    pub(crate) fn new(quota: Quota) -> Self {
        AtomicQuota {
            seq: AtomicU64::new(0),
            fields: [
                AtomicU64::new(quota.limit),
                AtomicU64::new(quota.period_ns),
                AtomicU64::new(quota.burst),
                AtomicU64::new(quota.emission_interval_ns),
                AtomicU64::new(u64::from(quota.window_bound)),
                AtomicU64::new(quota.floor_tat_ns),
            ],
            writer: Mutex::new(()),
        }
    }

    #[inline]
    fn read_fields(&self) -> Quota {
        let [
            limit,
            period_ns,
            burst,
            emission_interval_ns,
            window_bound,
            floor_tat_ns,
        ] = self.fields.each_ref().map(|f| f.load(Ordering::Relaxed));
        Quota {
            limit,
            period_ns,
            burst,
            emission_interval_ns,
            window_bound: window_bound != 0,
            floor_tat_ns,
        }
    }

    /// The quota and the (even) sequence number it was read at.
    #[inline]
    pub(crate) fn load(&self) -> (Quota, u64) {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            if before & 1 == 0 {
                let quota = self.read_fields();
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == before {
                    return (quota, before);
                }
            } else {
                self.wait_for_change();
            }
            std::hint::spin_loop();
        }
    }

    /// A change is under way: spin a little (a key's conversion is short), then wait
    /// on the writer's mutex (a store's conversion is one pass over its keys).
    #[cold]
    #[inline(never)]
    fn wait_for_change(&self) {
        for _ in 0..SPINS_MAX {
            if self.seq.load(Ordering::Acquire) & 1 == 0 {
                return;
            }
            std::hint::spin_loop();
        }
        drop(self.writer.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Whether no change started since `seq` was read. Acquire: a check that read a key
    /// state written by a change's conversion sees the change's odd number here.
    #[inline]
    pub(crate) fn unchanged_since(&self, seq: u64) -> bool {
        self.seq.load(Ordering::Acquire) == seq
    }

    /// Starts a change: takes the writer's mutex and makes the sequence number odd.
    /// Before the change writes any key's state, so that a check that reads such a state
    /// (acquire) sees the odd number.
    pub(crate) fn begin(&self) -> Change<'_> {
        let guard = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.seq.fetch_add(1, Ordering::SeqCst);
        // The fields `publish` writes (relaxed) must not become visible before the odd
        // number: a reader that sees a new field then sees the odd number (or a later
        // one) on its second read of the sequence (its acquire fence pairs with this).
        fence(Ordering::Release);
        Change {
            quota: self,
            _guard: guard,
        }
    }
}
