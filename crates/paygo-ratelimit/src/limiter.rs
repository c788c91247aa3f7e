//! The limiters: [`DirectLimiter`] (one shared limit), [`RateLimiter`] (one limit per
//! key) and [`MultiLimiter`] (several limits per key, all or nothing).

use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

use crate::error::RateLimitError;
use crate::gcra::{self, Decision};
use crate::hash::FoldBuildHasher;
use crate::headers;
use crate::quota::{AtomicQuota, Plan, Policy, PolicyName, Quota, Unit};
use crate::requota::{Conversion, History};
use crate::store::{MemoryStore, Store};
use paygo_time::{Clock, SystemClock};

/// What an adjustment that raced with a quota change adds afterwards, in units of the
/// new quota (rounded up): the difference between the two intervals, in the direction
/// that can only add debt. An addition counted at the old interval lacks
/// `delta x (T_new - T_old)` if it landed after the conversion; a give-back counted at the
/// old interval gave `|delta| x (T_old - T_new)` too much. Either way, had it landed
/// before, the conversion carried the units at no less than the smaller interval.
fn raced_adjustment_units(delta: i64, stale: &Quota, current: &Quota) -> i64 {
    let (old, new) = (stale.emission_interval_ns(), current.emission_interval_ns());
    let gap = if delta >= 0 {
        new.saturating_sub(old)
    } else {
        old.saturating_sub(new)
    };
    let ns = u128::from(delta.unsigned_abs()) * u128::from(gap);
    i64::try_from(ns.div_ceil(u128::from(new))).unwrap_or(i64::MAX)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The change stamp of a [`DirectLimiter`]'s word (see `FlatStore`'s): its TAT is the
/// other 63 bits.
const DIRECT_STAMP: u64 = 1 << 63;
/// The largest TAT a [`DirectLimiter`] holds (2^63 - 1 ns after 1970: the year 2262).
const DIRECT_TAT_MAX: u64 = DIRECT_STAMP - 1;

/// One limit shared by every caller (no key): a single atomic word.
///
/// ```
/// use paygo_ratelimit::{DirectLimiter, ManualClock, Quota};
///
/// let clock = ManualClock::new(0);
/// let limiter = DirectLimiter::with_clock(Quota::per_second(100, 1)?, clock.clone());
/// assert!(limiter.check()?.allowed);
/// assert!(!limiter.check()?.allowed);
/// clock.advance_ns(10_000_000); // T = 10 ms
/// assert!(limiter.check()?.allowed);
/// # Ok::<(), paygo_ratelimit::RateLimitError>(())
/// ```
#[derive(Debug)]
pub struct DirectLimiter<C = SystemClock> {
    tat: AtomicU64,
    quota: AtomicQuota,
    history: Mutex<History>,
    clock: C,
}

impl DirectLimiter<SystemClock> {
    /// A limiter on the system clock.
    pub fn new(quota: Quota) -> Self {
        DirectLimiter::with_clock(quota, SystemClock::new())
    }
}

impl<C: Clock> DirectLimiter<C> {
    /// A limiter on the given clock.
    pub fn with_clock(quota: Quota, clock: C) -> Self {
        let quota = quota.without_floor();
        DirectLimiter {
            tat: AtomicU64::new(0),
            history: Mutex::new(History::new(&quota)),
            quota: AtomicQuota::new(quota),
            clock,
        }
    }

    /// Checks and consumes one unit now.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::TimeOverflow`] for a time plus debt past 2^63 ns after 1970 (the
    /// year 2262).
    #[inline]
    pub fn check(&self) -> Result<Decision, RateLimitError> {
        self.check_n(1)
    }

    /// Checks and, if admitted, consumes `weight` units now.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::WeightExceedsBurst`] when `weight` exceeds the burst;
    /// [`RateLimitError::TimeOverflow`].
    #[inline]
    pub fn check_n(&self, weight: u64) -> Result<Decision, RateLimitError> {
        self.check_n_at(weight, self.clock.now_ns())
    }

    /// Checks `weight` units at a time the caller read from this limiter's clock.
    ///
    /// # Errors
    ///
    /// As [`DirectLimiter::check_n`].
    #[inline]
    pub fn check_n_at(&self, weight: u64, now_ns: u64) -> Result<Decision, RateLimitError> {
        self.check_n_at_hooked(weight, now_ns, || {})
    }

    /// [`DirectLimiter::check_n_at`], running `before_exchange` between each try's
    /// question (has the quota changed?) and its compare-exchange: the window a quota
    /// change can fall into, which the word's stamp covers. An empty closure everywhere
    /// but in the test that puts a change there.
    #[inline]
    fn check_n_at_hooked(
        &self,
        weight: u64,
        now_ns: u64,
        mut before_exchange: impl FnMut(),
    ) -> Result<Decision, RateLimitError> {
        loop {
            let (quota, seq) = self.quota.load();
            let word = self.tat.load(Ordering::Acquire);
            match self.check_from(word, weight, now_ns, &quota, seq, &mut before_exchange) {
                // A quota change ran meanwhile: check again under the new quota.
                Err(RateLimitError::QuotaChanged) => {}
                result => return result,
            }
        }
    }

    /// The compare-exchange loop, from a word already loaded.
    /// [`RateLimitError::QuotaChanged`] when a quota change started since `seq` was read:
    /// nothing was written.
    #[inline]
    fn check_from(
        &self,
        mut word: u64,
        weight: u64,
        now_ns: u64,
        quota: &Quota,
        seq: u64,
        before_exchange: &mut impl FnMut(),
    ) -> Result<Decision, RateLimitError> {
        loop {
            // After the word was read (acquire): a word a change has converted makes this
            // false; a word read before the change fails the exchange (the stamp).
            if !self.quota.unchanged_since(seq) {
                return Err(RateLimitError::QuotaChanged);
            }
            let outcome = gcra::check(word & DIRECT_TAT_MAX, now_ns, quota, weight)?;
            let Some(new_tat) = outcome.new_tat else {
                return Ok(outcome.decision);
            };
            if new_tat > DIRECT_TAT_MAX {
                return Err(RateLimitError::TimeOverflow { now_ns });
            }
            before_exchange();
            match self.tat.compare_exchange_weak(
                word,
                new_tat | (word & DIRECT_STAMP),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(outcome.decision),
                Err(actual) => word = actual,
            }
        }
    }

    /// Adds (or, negative, gives back) `delta` units unconditionally.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::AdjustmentTooLarge`].
    pub fn adjust(&self, delta: i64) -> Result<Decision, RateLimitError> {
        let now_ns = self.clock.now_ns();
        let (quota, seq) = self.quota.load();
        let decision = self.adjust_with(delta, now_ns, &quota)?;
        if self.quota.unchanged_since(seq) {
            return Ok(decision);
        }
        // It raced with a change: add what the new interval says it lacks.
        let (current, _) = self.quota.load();
        self.adjust_with(raced_adjustment_units(delta, &quota, &current), now_ns, &current)
    }

    fn adjust_with(&self, delta: i64, now_ns: u64, quota: &Quota) -> Result<Decision, RateLimitError> {
        let mut word = self.tat.load(Ordering::Acquire);
        loop {
            let (new_tat, decision) = gcra::adjust(word & DIRECT_TAT_MAX, now_ns, quota, delta)?;
            if new_tat > DIRECT_TAT_MAX {
                return Err(RateLimitError::AdjustmentTooLarge { delta });
            }
            match self.tat.compare_exchange_weak(
                word,
                new_tat | (word & DIRECT_STAMP),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(decision),
                Err(actual) => word = actual,
            }
        }
    }

    /// The quota in force.
    pub fn quota(&self) -> Quota {
        self.quota.load().0
    }

    /// Replaces the quota; the next check uses it. The state is carried into the new
    /// quota so that every window that contains the change admits at most what the most
    /// generous quota in force during it allows (`docs/ratelimit.md`, "Changing a quota
    /// at runtime"): a raise of the burst fills at the new rate instead of arriving at
    /// once, and a lowering never hands out a fresh burst. Checks wait while it converts.
    /// Windows that reach back past more than 8 changes are held to a merged quota, and
    /// checks made at later clock readings than the change's are carried from the
    /// change's reading (both in the same section of the docs).
    pub fn set_quota(&self, quota: Quota) {
        let quota = quota.without_floor();
        let change = self.quota.begin();
        let now_ns = self.clock.now_ns();
        let mut history = lock(&self.history);
        let conversion = Conversion::new(&history, &quota, now_ns);
        // A new stamp, whether the TAT changes or not, so that a check that read the word
        // before fails its exchange. `fetch_update` never fails here (always `Some`).
        let _ = self.tat.fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
            let tat = conversion.tat(word & DIRECT_TAT_MAX).min(DIRECT_TAT_MAX);
            Some(tat | ((word & DIRECT_STAMP) ^ DIRECT_STAMP))
        });
        *history = history.then(&quota);
        change.publish(quota);
    }
}

/// One limit per key, with a default quota, per-key overrides (custom contracts) and
/// quota changes at runtime, over a [`Store`].
///
/// The key is any `Hash + Eq + Clone` type: account ids as `u64` or `u128`, API keys as
/// `String`. Quota changes take effect on the next check, and carry every key's state
/// into the new quota: a window that contains a change admits at most what the most
/// generous quota in force during it allows, so raising a burst does not hand a greedy
/// key a second allowance and lowering a quota does not hand out a fresh burst
/// (`docs/ratelimit.md`, "Changing a quota at runtime", with the promise's two limits:
/// a history of 8 quotas per class, and a change's own clock reading).
///
/// ```
/// use paygo_ratelimit::{ManualClock, MemoryStore, Policy, PolicyName, Quota, RateLimiter, Unit};
///
/// let clock = ManualClock::new(0);
/// let policy = Policy { name: PolicyName::new("payg")?, unit: Unit::Requests, quota: Quota::pay_as_you_go() };
/// let limiter: RateLimiter<u64, _> = RateLimiter::with_clock_and_store(policy, clock.clone(), MemoryStore::new());
///
/// // 60 at once, then one more every T = 200,657,712 ns.
/// for _ in 0..60 {
///     assert!(limiter.check(&7)?.allowed);
/// }
/// let refused = limiter.check(&7)?;
/// assert_eq!(refused.retry_after_ns, Some(200_657_712));
/// assert_eq!(
///     limiter.headers(&refused),
///     vec![
///         ("RateLimit-Policy", "\"payg\";q=18000;w=3600".to_owned()),
///         ("RateLimit", "\"payg\";r=0;t=13".to_owned()),
///         ("Retry-After", "1".to_owned()),
///         ("x-ratelimit-limit-requests", "18000".to_owned()),
///         ("x-ratelimit-remaining-requests", "0".to_owned()),
///         ("x-ratelimit-reset-requests", "12.04s".to_owned()),
///     ]
/// );
///
/// // A custom contract for account 8.
/// limiter.set_key_quota(8, Quota::per_hour(100_000, 1_000)?)?;
/// assert_eq!(limiter.check_n(&8, 1_000)?.allowed, true);
/// # Ok::<(), paygo_ratelimit::RateLimitError>(())
/// ```
#[derive(Debug)]
pub struct RateLimiter<K, C = SystemClock, S = MemoryStore<K>> {
    name: PolicyName,
    unit: Unit,
    /// The default quota, with its floor; its sequence number counts every change.
    quota: AtomicQuota,
    /// The default quota's history, for conversions (only changes touch it).
    history: Mutex<History>,
    overrides: RwLock<HashMap<K, Override, FoldBuildHasher>>,
    override_count: AtomicUsize,
    store: S,
    clock: C,
    key: PhantomData<fn(&K)>,
}

/// A key's own quota and the history its conversions respect.
#[derive(Debug, Clone, Copy)]
struct Override {
    quota: Quota,
    history: History,
}

impl<K: Hash + Eq + Clone + Send + Sync> RateLimiter<K, SystemClock, MemoryStore<K>> {
    /// A limiter on the system clock and an in-process [`MemoryStore`].
    pub fn new(policy: Policy) -> Self {
        RateLimiter::with_clock_and_store(policy, SystemClock::new(), MemoryStore::new())
    }
}

impl<K: Hash + Eq + Clone + Send + Sync, C: Clock, S: Store<K>> RateLimiter<K, C, S> {
    /// A limiter on the given clock and store.
    pub fn with_clock_and_store(policy: Policy, clock: C, store: S) -> Self {
        let quota = policy.quota.without_floor();
        RateLimiter {
            name: policy.name,
            unit: policy.unit,
            history: Mutex::new(History::new(&quota)),
            quota: AtomicQuota::new(quota),
            overrides: RwLock::new(HashMap::with_hasher(FoldBuildHasher::new())),
            override_count: AtomicUsize::new(0),
            store,
            clock,
            key: PhantomData,
        }
    }

    /// Checks and consumes one unit for `key` now.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::TimeOverflow`]; a store's [`RateLimitError::StoreUnavailable`].
    #[inline]
    pub fn check(&self, key: &K) -> Result<Decision, RateLimitError> {
        self.check_n(key, 1)
    }

    /// Checks and, if admitted, consumes `weight` units for `key` now (a token limit's
    /// reservation is `check_n(key, estimate)`).
    ///
    /// A check that finds a quota change under way waits for it; one that read the quota
    /// just before a change and reaches the key after it checks again under the new
    /// quota (with an in-process store), so every decision is one quota's decision on a
    /// state in that quota's terms.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::WeightExceedsBurst`] when `weight` exceeds the key's burst;
    /// [`RateLimitError::TimeOverflow`]; [`RateLimitError::StoreUnavailable`].
    #[inline]
    pub fn check_n(&self, key: &K, weight: u64) -> Result<Decision, RateLimitError> {
        let (quota, seq) = self.quota_and_seq(key);
        self.store.check_and_update_checked(
            key,
            || self.clock.now_ns(),
            &quota,
            weight,
            || self.quota.unchanged_since(seq),
            || self.check_again(key, weight, None),
        )
    }

    /// Checks `weight` units at a time the caller read from this limiter's clock.
    ///
    /// # Errors
    ///
    /// As [`RateLimiter::check_n`].
    #[inline]
    pub fn check_n_at(&self, key: &K, weight: u64, now_ns: u64) -> Result<Decision, RateLimitError> {
        let (quota, seq) = self.quota_and_seq(key);
        self.store.check_and_update_checked(
            key,
            || now_ns,
            &quota,
            weight,
            || self.quota.unchanged_since(seq),
            || self.check_again(key, weight, Some(now_ns)),
        )
    }

    /// A check that met a quota change: again, until no change starts meanwhile.
    #[cold]
    #[inline(never)]
    fn check_again(&self, key: &K, weight: u64, at_ns: Option<u64>) -> Result<Decision, RateLimitError> {
        loop {
            let (quota, seq) = self.quota_and_seq(key);
            let valid = || self.quota.unchanged_since(seq);
            let clock = || at_ns.unwrap_or_else(|| self.clock.now_ns());
            let again = || Err(RateLimitError::QuotaChanged);
            match self
                .store
                .check_and_update_checked(key, clock, &quota, weight, valid, again)
            {
                Err(RateLimitError::QuotaChanged) => {}
                result => return result,
            }
        }
    }

    /// What a check of `weight` units would answer now, consuming nothing.
    ///
    /// # Errors
    ///
    /// As [`RateLimiter::check_n`].
    pub fn peek_n(&self, key: &K, weight: u64) -> Result<Decision, RateLimitError> {
        self.peek_n_at(key, weight, self.clock.now_ns())
    }

    /// [`RateLimiter::peek_n`] at a given time.
    ///
    /// # Errors
    ///
    /// As [`RateLimiter::check_n`].
    pub fn peek_n_at(&self, key: &K, weight: u64, now_ns: u64) -> Result<Decision, RateLimitError> {
        let (quota, _) = self.quota_and_seq(key);
        self.store.peek(key, now_ns, &quota, weight)
    }

    /// The adjust step of reserve-then-adjust: after the call, `actual - estimate`
    /// (positive: more was used, and is consumed even past the burst; negative: the rest
    /// is given back). The decision has `allowed: true`; `remaining` and `reset_ns`
    /// describe the key after the adjustment.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::AdjustmentTooLarge`]: also when the adjustment raced a quota
    /// change and what the new interval adds to it overflows (the adjustment in the old
    /// interval stays applied then); [`RateLimitError::StoreUnavailable`].
    pub fn adjust(&self, key: &K, delta: i64) -> Result<Decision, RateLimitError> {
        self.adjust_at(key, delta, self.clock.now_ns())
    }

    /// [`RateLimiter::adjust`] at a given time.
    ///
    /// # Errors
    ///
    /// As [`RateLimiter::adjust`].
    pub fn adjust_at(&self, key: &K, delta: i64, now_ns: u64) -> Result<Decision, RateLimitError> {
        let (quota, seq) = self.quota_and_seq(key);
        let decision = self.store.adjust(key, now_ns, &quota, delta)?;
        if self.quota.unchanged_since(seq) {
            return Ok(decision);
        }
        // It raced with a change: add what the new interval says it lacks (nothing when
        // the change made no difference to it), and report the key after that.
        let (current, _) = self.quota_and_seq(key);
        self.store
            .adjust(key, now_ns, &current, raced_adjustment_units(delta, &quota, &current))
    }

    /// The quota in force for `key`: its override, or the default.
    #[inline]
    pub fn quota_for(&self, key: &K) -> Quota {
        self.quota_and_seq(key).0.without_floor()
    }

    /// The quota a check of `key` uses (with the default's floor) and the change
    /// sequence number it was read at.
    #[inline]
    fn quota_and_seq(&self, key: &K) -> (Quota, u64) {
        let (default, seq) = self.quota.load();
        if self.override_count.load(Ordering::Acquire) > 0
            && let Some(quota) = self.override_for(key)
        {
            return (quota, seq);
        }
        (default, seq)
    }

    #[cold]
    fn override_for(&self, key: &K) -> Option<Quota> {
        let overrides = self.overrides.read().unwrap_or_else(PoisonError::into_inner);
        overrides.get(key).map(|o| o.quota)
    }

    /// The default quota.
    pub fn quota(&self) -> Quota {
        self.quota.load().0.without_floor()
    }

    /// Replaces the default quota; the next check of every key without an override uses
    /// it. Every such key's state is carried into the new quota (`docs/ratelimit.md`,
    /// "Changing a quota at runtime"): the store's keys that are in debt are rewritten,
    /// and the keys it does not hold (or holds as full) get the new quota's floor, which
    /// is how a raised burst fills at the new rate for every key alike. Checks of this
    /// limiter wait while the store's keys are rewritten (one pass over the store).
    ///
    /// # Errors
    ///
    /// [`RateLimitError::StoreUnavailable`] when the store could not rewrite every key.
    /// The new quota is in force even then; the keys the store did not rewrite keep
    /// their state as it was, in the old quota's terms.
    pub fn set_quota(&self, quota: Quota) -> Result<(), RateLimitError> {
        self.set_quota_with(quota, || self.clock.now_ns()).map(|_| ())
    }

    /// [`RateLimiter::set_quota`] at a time read from `clock` once the change holds the
    /// checks off; returns that time.
    pub(crate) fn set_quota_with(&self, quota: Quota, clock: impl FnOnce() -> u64) -> Result<u64, RateLimitError> {
        let quota = quota.without_floor();
        let change = self.quota.begin();
        let now_ns = clock();
        let floor = change.current().floor_tat_ns();
        let mut history = lock(&self.history);
        let conversion = Conversion::new(&history, &quota, now_ns);
        let overrides = self.overrides.read().unwrap_or_else(PoisonError::into_inner);
        let except: Vec<&K> = overrides.keys().collect();
        let swept = self
            .store
            .requota(now_ns, &except, &|tat| conversion.swept_tat(tat, floor));
        *history = history.then(&quota);
        change.publish(quota.with_floor(conversion.floor(floor)));
        swept.map(|_| now_ns)
    }

    /// Gives `key` its own quota (a custom contract) from the next check on, carrying
    /// its state into it (`docs/ratelimit.md`, "Changing a quota at runtime").
    ///
    /// # Errors
    ///
    /// [`RateLimitError::StoreUnavailable`]; [`RateLimitError::TimeOverflow`] when the
    /// store cannot hold the converted state (a store outside this crate: the in-process
    /// stores cap it at the largest TAT they hold, where the key is never admitted
    /// again). The key keeps its quota then.
    pub fn set_key_quota(&self, key: K, quota: Quota) -> Result<(), RateLimitError> {
        self.set_key_quota_with(key, quota, || self.clock.now_ns()).map(|_| ())
    }

    /// [`RateLimiter::set_key_quota`] at a time read from `clock` once the change holds
    /// the checks off; returns that time.
    pub(crate) fn set_key_quota_with(
        &self,
        key: K,
        quota: Quota,
        clock: impl FnOnce() -> u64,
    ) -> Result<u64, RateLimitError> {
        let quota = quota.without_floor();
        let change = self.quota.begin();
        let now_ns = clock();
        let default = change.current();
        let mut overrides = self.overrides.write().unwrap_or_else(PoisonError::into_inner);
        let (history, floor) = match overrides.get(&key) {
            Some(own) => (own.history, 0),
            None => (*lock(&self.history), default.floor_tat_ns()),
        };
        let conversion = Conversion::new(&history, &quota, now_ns);
        // The key's state in full: a key has no floor of its own.
        self.store
            .requota_key(&key, now_ns, &|tat| conversion.tat(tat.max(floor)))?;
        overrides.insert(
            key,
            Override {
                quota,
                history: history.then(&quota),
            },
        );
        self.override_count.store(overrides.len(), Ordering::Release);
        Ok(now_ns)
    }

    /// Removes `key`'s own quota, returning it; the key is back on the default, its
    /// state carried into it, and the default's history now also covers the key's (so
    /// later changes of the default charge every key as if it might have had that quota).
    ///
    /// # Errors
    ///
    /// As [`RateLimiter::set_key_quota`]; the key keeps its own quota then.
    pub fn remove_key_quota(&self, key: &K) -> Result<Option<Quota>, RateLimitError> {
        self.remove_key_quota_with(key, || self.clock.now_ns())
            .map(|(quota, _)| quota)
    }

    /// [`RateLimiter::remove_key_quota`] at a time read from `clock` once the change
    /// holds the checks off; returns the removed quota and that time.
    pub(crate) fn remove_key_quota_with(
        &self,
        key: &K,
        clock: impl FnOnce() -> u64,
    ) -> Result<(Option<Quota>, u64), RateLimitError> {
        let change = self.quota.begin();
        let now_ns = clock();
        let default = change.current();
        let mut overrides = self.overrides.write().unwrap_or_else(PoisonError::into_inner);
        let Some(own) = overrides.get(key).copied() else {
            return Ok((None, now_ns));
        };
        let conversion = Conversion::new(&own.history, &default, now_ns);
        // At least the default's floor, as every key of the default class it holds.
        let floor = default.floor_tat_ns();
        self.store
            .requota_key(key, now_ns, &|tat| conversion.tat(tat).max(floor))?;
        overrides.remove(key);
        self.override_count.store(overrides.len(), Ordering::Release);
        let mut history = lock(&self.history);
        *history = history.union(&own.history.then(&default));
        Ok((Some(own.quota), now_ns))
    }

    /// Forgets every key that has been full for [`EVICT_GRACE_NS`]; see
    /// [`Store::evict_full`]. Call it from a timer; inserts also sweep their shard as it
    /// grows.
    ///
    /// The grace is for checks running at the same moment with a clock reading taken a
    /// little earlier: one that found its key gone would take it as full at its own time,
    /// although its debt only ran out at the eviction's.
    pub fn evict_full(&self) -> usize {
        self.store
            .evict_full(self.clock.now_ns().saturating_sub(EVICT_GRACE_NS))
    }

    /// The policy's name.
    pub fn name(&self) -> &PolicyName {
        &self.name
    }

    /// What the limit counts.
    pub fn unit(&self) -> Unit {
        self.unit
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// All response headers for a decision of this limiter: `RateLimit-Policy`,
    /// `RateLimit`, `Retry-After` (only when refused) and the OpenAI-style
    /// `x-ratelimit-*` trio.
    pub fn headers(&self, decision: &Decision) -> Vec<(&'static str, String)> {
        headers::all(&[(&self.name, self.unit, decision)])
    }
}

/// The decisions of a [`MultiLimiter`] check, one per limit in the plan's order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct MultiDecision {
    /// Whether every limit admitted the request (and all consumed it).
    pub allowed: bool,
    /// Per limit. When refused, a limit that would have admitted shows its unchanged
    /// state (`allowed: true`, nothing consumed); a limit that refused shows its
    /// retry-after.
    pub decisions: Vec<Decision>,
}

impl MultiDecision {
    /// When refused, the time after which the same request is admitted by every limit
    /// if nothing else is admitted meanwhile: the largest retry-after. `None` when
    /// admitted.
    pub fn retry_after_ns(&self) -> Option<u64> {
        self.decisions.iter().filter_map(|d| d.retry_after_ns).max()
    }
}

/// Several limits on each key (a [`Plan`]): a request is admitted only if every limit
/// admits it, and a refusal consumes nothing.
///
/// Each limit keeps its own state; a check consumes from the limits in order and, if a
/// later one refuses, gives back what the earlier ones took: all of it if nothing came in
/// between, otherwise only what of its own debt is still ahead of the time (a concurrent
/// check may have built on the key after that debt ran out, and its units are not given
/// away). Between the two steps a concurrent check of the same key may see the earlier
/// limits fuller than they end up: it can be refused spuriously, never admitted wrongly.
///
/// ```
/// use paygo_ratelimit::{ManualClock, MultiLimiter, Plan, Policy, PolicyName, Quota, Unit};
///
/// let plan = Plan {
///     name: "pro".to_owned(),
///     policies: vec![
///         Policy { name: PolicyName::new("burst")?, unit: Unit::Requests, quota: Quota::per_second(5, 5)? },
///         Policy { name: PolicyName::new("hour")?, unit: Unit::Requests, quota: Quota::per_hour(1_000, 100)? },
///         Policy { name: PolicyName::new("tpm")?, unit: Unit::Tokens, quota: Quota::per_minute(60_000, 20_000)? },
///     ],
/// };
/// let clock = ManualClock::new(0);
/// let limiter: MultiLimiter<u64, _> = MultiLimiter::with_clock(&plan, clock.clone());
///
/// // One request, reserving 8,000 tokens.
/// assert!(limiter.check_weights(&1, &[1, 1, 8_000])?.allowed);
/// // The call used 5,000: give 3,000 back to the token limit (index 2).
/// limiter.adjust(&1, 2, -3_000)?;
/// // 15,000 tokens remain at once; asking 16,000 is refused and consumes nothing.
/// let refused = limiter.check_weights(&1, &[1, 1, 16_000])?;
/// assert!(!refused.allowed);
/// assert_eq!(refused.decisions[0].remaining, 4);
/// # Ok::<(), paygo_ratelimit::RateLimitError>(())
/// ```
#[derive(Debug)]
pub struct MultiLimiter<K, C = SystemClock, S = MemoryStore<K>> {
    limiters: Vec<RateLimiter<K, C, S>>,
    clock: C,
}

impl<K: Hash + Eq + Clone + Send + Sync> MultiLimiter<K, SystemClock, MemoryStore<K>> {
    /// A multi-limiter for a plan, on the system clock.
    pub fn new(plan: &Plan) -> Self {
        MultiLimiter::with_clock(plan, SystemClock::new())
    }
}

impl<K: Hash + Eq + Clone + Send + Sync, C: Clock + Clone> MultiLimiter<K, C, MemoryStore<K>> {
    /// A multi-limiter for a plan, on the given clock, with one [`MemoryStore`] per limit.
    pub fn with_clock(plan: &Plan, clock: C) -> Self {
        MultiLimiter::with_clock_and_stores(plan, clock, |_| MemoryStore::new())
    }
}

impl<K: Hash + Eq + Clone + Send + Sync, C: Clock + Clone, S: Store<K>> MultiLimiter<K, C, S> {
    /// A multi-limiter for a plan, on the given clock, with the store `store(policy)`
    /// makes for each limit (in the plan's order).
    ///
    /// ```
    /// use paygo_ratelimit::{FlatStore, ManualClock, MultiLimiter, Plan};
    ///
    /// let limiter = MultiLimiter::with_clock_and_stores(&Plan::pay_as_you_go(), ManualClock::new(0), |_| {
    ///     FlatStore::<u64>::new()
    /// });
    /// assert!(limiter.check(&7)?.allowed);
    /// # Ok::<(), paygo_ratelimit::RateLimitError>(())
    /// ```
    pub fn with_clock_and_stores(plan: &Plan, clock: C, mut store: impl FnMut(&Policy) -> S) -> Self {
        MultiLimiter {
            limiters: plan
                .policies
                .iter()
                .map(|p| RateLimiter::with_clock_and_store(p.clone(), clock.clone(), store(p)))
                .collect(),
            clock,
        }
    }

    /// The limits, in the plan's order (to change a quota or set a key's override).
    pub fn limiters(&self) -> &[RateLimiter<K, C, S>] {
        &self.limiters
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Checks one unit on every limit (a plain request).
    ///
    /// # Errors
    ///
    /// As [`MultiLimiter::check_weights`].
    pub fn check(&self, key: &K) -> Result<MultiDecision, RateLimitError> {
        let ones = vec![1; self.limiters.len()];
        self.check_weights_at(key, &ones, self.clock.now_ns())
    }

    /// Checks `weights[i]` units on limit `i`, all or nothing. A weight of 0 skips a limit:
    /// it neither admits nor refuses (its decision reports its state, `allowed: true`).
    ///
    /// # Errors
    ///
    /// [`RateLimitError::WeightCountMismatch`] unless there is one weight per limit;
    /// [`RateLimitError::WeightExceedsBurst`] when a weight exceeds its limit's burst
    /// (checked before anything is consumed); [`RateLimitError::TimeOverflow`].
    pub fn check_weights(&self, key: &K, weights: &[u64]) -> Result<MultiDecision, RateLimitError> {
        self.check_weights_at(key, weights, self.clock.now_ns())
    }

    /// [`MultiLimiter::check_weights`] at a time read from this limiter's clock.
    ///
    /// # Errors
    ///
    /// As [`MultiLimiter::check_weights`].
    pub fn check_weights_at(&self, key: &K, weights: &[u64], now_ns: u64) -> Result<MultiDecision, RateLimitError> {
        if weights.len() != self.limiters.len() {
            return Err(RateLimitError::WeightCountMismatch {
                expected: self.limiters.len(),
                given: weights.len(),
            });
        }
        loop {
            let quotas: Vec<(Quota, u64)> = self.limiters.iter().map(|l| l.quota_and_seq(key)).collect();
            match self.attempt(key, weights, now_ns, &quotas) {
                Ok(Some(decision)) => return Ok(decision),
                Err(error)
                    if self
                        .limiters
                        .iter()
                        .zip(&quotas)
                        .all(|(l, (_, seq))| l.quota.unchanged_since(*seq)) =>
                {
                    return Err(error);
                }
                // A quota changed meanwhile (what was taken is given back): again.
                _ => {}
            }
        }
    }

    /// One all-or-nothing attempt with the quotas read at its start. `None` when a limit's
    /// quota changed meanwhile: what the earlier limits took is given back.
    fn attempt(
        &self,
        key: &K,
        weights: &[u64],
        now_ns: u64,
        quotas: &[(Quota, u64)],
    ) -> Result<Option<MultiDecision>, RateLimitError> {
        for ((quota, _), &weight) in quotas.iter().zip(weights) {
            if weight > quota.burst() {
                let burst = quota.burst();
                return Err(RateLimitError::WeightExceedsBurst { weight, burst });
            }
        }
        let mut decisions = Vec::with_capacity(weights.len());
        let mut taken: Vec<Taken> = Vec::with_capacity(weights.len());
        for (i, ((limiter, &weight), (quota, seq))) in self.limiters.iter().zip(weights).zip(quotas).enumerate() {
            if weight == 0 {
                match limiter.store.peek(key, now_ns, quota, 0) {
                    Ok(state) => decisions.push(skipped(state)),
                    Err(error) => {
                        self.give_back(key, &taken, now_ns);
                        return Err(error);
                    }
                }
                continue;
            }
            let valid = || limiter.quota.unchanged_since(*seq);
            let again = || Err(RateLimitError::QuotaChanged);
            let decision = match limiter
                .store
                .check_and_update_checked(key, || now_ns, quota, weight, valid, again)
            {
                Ok(decision) => decision,
                Err(RateLimitError::QuotaChanged) => {
                    self.give_back(key, &taken, now_ns);
                    return Ok(None);
                }
                Err(error) => {
                    self.give_back(key, &taken, now_ns);
                    return Err(error);
                }
            };
            if decision.allowed {
                // An admitted check left the TAT at `now + debt` (its `reset_ns`).
                taken.push(Taken {
                    limit: i,
                    written_tat: now_ns.saturating_add(decision.reset_ns),
                    quota: *quota,
                    seq: *seq,
                    weight,
                });
                decisions.push(decision);
                continue;
            }
            // Give back what the earlier limits took, then report every limit unchanged.
            self.give_back(key, &taken, now_ns);
            return self.report_refusal(key, weights, now_ns, quotas).map(Some);
        }
        Ok(Some(MultiDecision {
            allowed: true,
            decisions,
        }))
    }

    /// Every limit's state after a refusal: unchanged where it would admit, its
    /// retry-after where it refuses.
    fn report_refusal(
        &self,
        key: &K,
        weights: &[u64],
        now_ns: u64,
        quotas: &[(Quota, u64)],
    ) -> Result<MultiDecision, RateLimitError> {
        let mut report = Vec::with_capacity(weights.len());
        for ((limiter, &weight), (quota, _)) in self.limiters.iter().zip(weights).zip(quotas) {
            let unchanged = limiter.store.peek(key, now_ns, quota, 0)?;
            report.push(if weight == 0 {
                skipped(unchanged)
            } else {
                let would = limiter.store.peek(key, now_ns, quota, weight)?;
                if would.allowed { unchanged } else { would }
            });
        }
        Ok(MultiDecision {
            allowed: false,
            decisions: report,
        })
    }

    /// Gives back what the limits in `taken` took, each by at most what of its check's
    /// debt is still ahead of the time (see [`Store::give_back`]): never units that a
    /// concurrent check of the same key has since relied on, and nothing to a limit whose
    /// quota changed since its check (the units then stay as debt, which is safe).
    fn give_back(&self, key: &K, taken: &[Taken], now_ns: u64) {
        for t in taken {
            if let Some(limiter) = self.limiters.get(t.limit) {
                let clock = || self.clock.now_ns().max(now_ns);
                // weight <= burst, so this is at most the capacity (2^62).
                let taken_ns = t.weight * t.quota.emission_interval_ns();
                // Best effort: a give-back that fails leaves the units as debt, which is
                // safe (the in-process stores give back infallibly).
                let valid = || limiter.quota.unchanged_since(t.seq);
                let _ = limiter.store.give_back(key, t.written_tat, &clock, taken_ns, &valid);
            }
        }
    }

    /// Adjusts limit `index` for `key` by `delta` units (reserve-then-adjust).
    ///
    /// # Errors
    ///
    /// [`RateLimitError::NoSuchLimit`] for an index out of range; as
    /// [`RateLimiter::adjust`].
    pub fn adjust(&self, key: &K, index: usize, delta: i64) -> Result<Decision, RateLimitError> {
        let limiter = self.limiters.get(index).ok_or(RateLimitError::NoSuchLimit {
            index,
            len: self.limiters.len(),
        })?;
        limiter.adjust_at(key, delta, self.clock.now_ns())
    }

    /// Forgets the full keys of every limit; returns how many entries were dropped.
    pub fn evict_full(&self) -> usize {
        self.limiters.iter().map(RateLimiter::evict_full).sum()
    }

    /// All response headers for a multi-decision: one `RateLimit-Policy` and one
    /// `RateLimit` listing every limit, `Retry-After` when refused, and the OpenAI-style
    /// headers of the most restrictive limit of each unit (a refusing one first).
    pub fn headers(&self, decision: &MultiDecision) -> Vec<(&'static str, String)> {
        let items: Vec<_> = self
            .limiters
            .iter()
            .zip(&decision.decisions)
            .map(|(l, d)| (l.name(), l.unit(), d))
            .collect();
        headers::all(&items)
    }
}

/// How long a key must have been full before [`RateLimiter::evict_full`] forgets it: one
/// second, far more than two threads' clock readings can be apart.
pub const EVICT_GRACE_NS: u64 = 1_000_000_000;

/// What one limit of a multi-limit check took: enough to give it back exactly.
#[derive(Debug, Clone, Copy)]
struct Taken {
    limit: usize,
    written_tat: u64,
    quota: Quota,
    /// The limit's change number the check ran under: a change since makes the give-back
    /// give nothing (the key's state is then in another quota's units).
    seq: u64,
    weight: u64,
}

/// The decision of a limit a multi-limit check skipped (weight 0): its state, admitted.
fn skipped(state: Decision) -> Decision {
    Decision {
        allowed: true,
        retry_after_ns: None,
        ..state
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{ManualClock, NS_PER_SECOND, PolicyName, Unit};

    fn plan(quotas: [Quota; 2]) -> Plan {
        Plan {
            name: "p".to_owned(),
            policies: quotas
                .iter()
                .enumerate()
                .map(|(i, &quota)| Policy {
                    name: PolicyName::new(&format!("l{i}")).unwrap(),
                    unit: Unit::Requests,
                    quota,
                })
                .collect(),
        }
    }

    /// The `DirectLimiter`'s twin of `tests/requota.rs`'s `FlatStore` stamp test: a check
    /// whose question said yes, with a change (burst 10 at T = 10 ms to burst 10 at
    /// T = 1 s) converting the word before its compare-exchange. The conversion leaves an
    /// idle word's TAT as it is, so without the stamp flip the exchange would write the
    /// old quota's answer (10 units at 10 ms) over it, and 19 units would go at one
    /// instant where both quotas allow 10. With it the exchange fails, the check sees the
    /// change and is made again under the new quota.
    #[test]
    fn a_direct_limiters_change_between_question_and_exchange_is_caught_by_the_stamp() {
        let new = Quota::per_second(10, 10).unwrap();
        let clock = ManualClock::new(0);
        let limiter = DirectLimiter::with_clock(Quota::per_second(100, 10).unwrap(), clock.clone());
        assert!(limiter.check().unwrap().allowed);
        clock.set_ns(NS_PER_SECOND);
        let mut changes = 0;
        let taken = limiter
            .check_n_at_hooked(10, NS_PER_SECOND, || {
                if changes == 0 {
                    limiter.set_quota(new);
                }
                changes += 1;
            })
            .unwrap();
        assert!(taken.allowed);
        assert_eq!(limiter.quota(), new);
        let mut more = 0;
        while limiter.check().unwrap().allowed {
            more += 1;
        }
        assert_eq!(more, 0, "{more} more after the whole burst of 10 at the same instant");
        assert_eq!(changes, 2, "the first exchange failed and the check ran again");
    }

    /// Found by review (2026-11-25): giving back a refused check's units by subtracting
    /// them all erased the units of a later check, and the key admitted twice its burst.
    #[test]
    fn a_late_give_back_never_erases_a_later_check() {
        let clock = ManualClock::new(0);
        let quotas = [Quota::per_second(10, 10).unwrap(), Quota::per_second(10, 10).unwrap()];
        let multi: MultiLimiter<u64, ManualClock> = MultiLimiter::with_clock(&plan(quotas), clock.clone());
        // T1, at time 0, takes the whole burst of limit 0 (T = 1 s) ...
        let quota = multi.limiters[0].quota_for(&1);
        let first = multi.limiters[0].store.check_and_update(&1, 0, &quota, 10).unwrap();
        assert!(first.allowed);
        let taken = Taken {
            limit: 0,
            written_tat: first.reset_ns,
            quota,
            seq: multi.limiters[0].quota.load().1,
            weight: 10,
        };
        // ... and stalls. At 10 s its units have run out; T2 takes the whole burst again.
        clock.set_ns(10 * NS_PER_SECOND);
        assert!(multi.check_weights(&1, &[10, 0]).unwrap().allowed);
        // T1's second limit refuses; it gives back what it took, at 10 s.
        multi.give_back(&1, &[taken], 0);
        // The burst is T2's: nothing more at 10 s.
        let third = multi.check_weights(&1, &[1, 0]).unwrap();
        assert!(!third.allowed);
        assert_eq!(third.decisions[0].retry_after_ns, Some(NS_PER_SECOND));
    }

    #[test]
    fn a_give_back_without_anything_in_between_restores_the_key_exactly() {
        let clock = ManualClock::new(5 * NS_PER_SECOND);
        let quotas = [Quota::per_second(10, 10).unwrap(), Quota::per_second(10, 3).unwrap()];
        let multi: MultiLimiter<u64, ManualClock> = MultiLimiter::with_clock(&plan(quotas), clock.clone());
        assert!(multi.check_weights(&1, &[4, 3]).unwrap().allowed);
        // Limit 1 has nothing left: limit 0's 5 units go back, all of them.
        let refused = multi.check_weights(&1, &[5, 1]).unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.decisions[0].remaining, 6);
        assert!(multi.limiters[0].peek_n_at(&1, 6, 5 * NS_PER_SECOND).unwrap().allowed);
        assert!(!multi.limiters[0].peek_n_at(&1, 7, 5 * NS_PER_SECOND).unwrap().allowed);
    }
}
