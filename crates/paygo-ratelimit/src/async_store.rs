//! The asynchronous store seam: [`AsyncStore`], where the store owns the time, its
//! in-process implementation [`InProcessStore`], and the [`AsyncPlanLimiter`] a gateway
//! calls.

use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;

use paygo_time::{Clock, SystemClock};
use serde::{Deserialize, Serialize};

use crate::error::RateLimitError;
use crate::gcra::Decision;
use crate::headers;
use crate::limiter::{MultiDecision, MultiLimiter};
use crate::quota::{Plan, Policy, PolicyName, Quota, Unit};
use crate::store::{MemoryStore, Store};

/// A store's answer and the store's time it was taken at, in nanoseconds since the Unix
/// epoch (the in-process store's [`Clock`]; a Redis store's `TIME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stamped<T> {
    /// When the store took the decision or made the change.
    pub at_ns: u64,
    /// The answer.
    pub value: T,
}

/// A limit of an [`AsyncStore`], as fixed when the store was made: the name its headers
/// show and what it counts. Its quota can change; ask the store for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LimitSpec {
    /// The name in the `RateLimit-Policy` and `RateLimit` headers.
    pub name: PolicyName,
    /// What the limit counts.
    pub unit: Unit,
}

/// Keyed GCRA limits behind an asynchronous interface, where **the store reads the
/// time**: the seam for a store that several gateway replicas share (Redis, issue 18,
/// takes its time from `TIME`, so replicas whose clocks disagree still agree on every
/// key), and for the in-process [`InProcessStore`] (its [`Clock`]).
///
/// A store holds a fixed list of limits ([`AsyncStore::limits`], for example the
/// requests per hour and the tokens per minute of a plan), a default quota for each and
/// per-key overrides, and for every (limit, key) the key's GCRA state. Every answer is
/// [`Stamped`] with the store's time, so a caller can render headers and a test can
/// replay the answers against a reference model. The contract every implementation must
/// keep (`testing::run_contract` with the `testing` feature runs it on any store):
///
/// - **All or nothing**: [`check`](AsyncStore::check) admits `weights[i]` units on every
///   limit `i` or consumes nothing; a weight of 0 skips a limit. Refusals report every
///   limit as the in-process [`MultiLimiter`] does.
/// - **The GCRA of [`crate::gcra`]** at the stamped time, exactly: a store in another
///   language is golden-tested against those step functions.
/// - **Reserve then adjust**: [`adjust`](AsyncStore::adjust) adds or gives back units,
///   unconditionally, never past full.
/// - **The rolling-window promise across changes**: [`set_quota`](AsyncStore::set_quota),
///   [`set_key_quota`](AsyncStore::set_key_quota) and
///   [`remove_key_quota`](AsyncStore::remove_key_quota) carry every key's state into the
///   new quota as `docs/ratelimit.md` ("Changing a quota at runtime") says, so a window
///   that contains a change admits at most what the most generous quota in force during it
///   allows.
/// - **Time never goes backwards** from one answer to the next.
///
/// Futures are `Send` (a tokio gateway spawns them); implementations need no runtime.
pub trait AsyncStore<K: Sync + ?Sized>: Send + Sync {
    /// The limits, in the order weights and decisions are given.
    fn limits(&self) -> &[LimitSpec];

    /// Checks `weights[i]` units of `key` on limit `i`, all or nothing, at the store's
    /// time.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::WeightCountMismatch`] unless there is one weight per limit;
    /// [`RateLimitError::WeightExceedsBurst`] when a weight exceeds its limit's burst for
    /// this key (nothing is consumed); [`RateLimitError::TimeOverflow`];
    /// [`RateLimitError::StoreUnavailable`].
    fn check(
        &self,
        key: &K,
        weights: &[u64],
    ) -> impl Future<Output = Result<Stamped<MultiDecision>, RateLimitError>> + Send;

    /// Adds `deltas[i]` units to `key` on limit `i` (negative: gives them back), the
    /// adjust step of reserve-then-adjust. A delta of 0 leaves its limit alone. Each
    /// decision has `allowed: true` and describes the key's limit after the adjustment.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::WeightCountMismatch`] unless there is one delta per limit;
    /// [`RateLimitError::AdjustmentTooLarge`]; [`RateLimitError::StoreUnavailable`].
    fn adjust(
        &self,
        key: &K,
        deltas: &[i64],
    ) -> impl Future<Output = Result<Stamped<Vec<Decision>>, RateLimitError>> + Send;

    /// The quota limit `limit` applies to `key`: its override, or the default.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::NoSuchLimit`]; [`RateLimitError::StoreUnavailable`].
    fn quota_for(&self, key: &K, limit: usize) -> impl Future<Output = Result<Quota, RateLimitError>> + Send;

    /// Replaces limit `limit`'s default quota (a class quota), carrying the state of every
    /// key without an override into it.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::NoSuchLimit`]; [`RateLimitError::StoreUnavailable`] (the new
    /// quota may then be in force for some keys only; see
    /// [`RateLimiter::set_quota`](crate::RateLimiter::set_quota)).
    fn set_quota(&self, limit: usize, quota: Quota)
    -> impl Future<Output = Result<Stamped<()>, RateLimitError>> + Send;

    /// Gives `key` its own quota on limit `limit`, carrying its state into it.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::NoSuchLimit`]; [`RateLimitError::StoreUnavailable`];
    /// [`RateLimitError::TimeOverflow`]. The key keeps its quota then.
    fn set_key_quota(
        &self,
        key: &K,
        limit: usize,
        quota: Quota,
    ) -> impl Future<Output = Result<Stamped<()>, RateLimitError>> + Send;

    /// Puts `key` back on limit `limit`'s default quota, carrying its state into it;
    /// returns the quota it had, if it had its own.
    ///
    /// # Errors
    ///
    /// As [`AsyncStore::set_key_quota`].
    fn remove_key_quota(
        &self,
        key: &K,
        limit: usize,
    ) -> impl Future<Output = Result<Stamped<Option<Quota>>, RateLimitError>> + Send;

    /// Forgets the keys that are full on every limit (forgetting one changes no answer);
    /// returns how many entries were dropped. A store that expires keys by itself (Redis
    /// with `PX`) returns 0.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::StoreUnavailable`].
    fn evict_full(&self) -> impl Future<Output = Result<usize, RateLimitError>> + Send;
}

/// The in-process [`AsyncStore`]: a [`MultiLimiter`] over any synchronous [`Store`]
/// (a [`MemoryStore`] by default, or a [`FlatStore`](crate::FlatStore)) and a
/// [`Clock`], read once per call. Its futures do all their work on their first poll and
/// complete there: no runtime, no thread, no waiting.
///
/// ```
/// use paygo_ratelimit::{AsyncStore, InProcessStore, ManualClock, Plan};
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let mut f = std::pin::pin!(f);
/// #     match f.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
/// #         std::task::Poll::Ready(v) => v,
/// #         std::task::Poll::Pending => unreachable!("in-process futures complete on first poll"),
/// #     }
/// # }
///
/// let store: InProcessStore<u64, _> = InProcessStore::with_clock(&Plan::pay_as_you_go(), ManualClock::new(5));
/// let checked = block_on(store.check(&42, &[1]))?;
/// assert!(checked.value.allowed);
/// assert_eq!(checked.at_ns, 5); // the store's time
/// # Ok::<(), paygo_ratelimit::RateLimitError>(())
/// ```
#[derive(Debug)]
pub struct InProcessStore<K, C = SystemClock, S = MemoryStore<K>> {
    limiter: MultiLimiter<K, C, S>,
    limits: Vec<LimitSpec>,
}

impl<K: Hash + Eq + Clone + Send + Sync> InProcessStore<K, SystemClock, MemoryStore<K>> {
    /// A store for a plan's limits, on the system clock, with one [`MemoryStore`] per limit.
    pub fn new(plan: &Plan) -> Self {
        InProcessStore::from_limiter(MultiLimiter::new(plan))
    }
}

impl<K: Hash + Eq + Clone + Send + Sync, C: Clock + Clone> InProcessStore<K, C, MemoryStore<K>> {
    /// A store for a plan's limits, on the given clock, with one [`MemoryStore`] per limit.
    pub fn with_clock(plan: &Plan, clock: C) -> Self {
        InProcessStore::from_limiter(MultiLimiter::with_clock(plan, clock))
    }
}

impl<K: Hash + Eq + Clone + Send + Sync, C: Clock + Clone, S: Store<K>> InProcessStore<K, C, S> {
    /// A store for a plan's limits, on the given clock, with the store `store(policy)`
    /// makes for each limit.
    pub fn with_clock_and_stores(plan: &Plan, clock: C, store: impl FnMut(&Policy) -> S) -> Self {
        InProcessStore::from_limiter(MultiLimiter::with_clock_and_stores(plan, clock, store))
    }

    /// The store over an existing multi-limiter (its limits, quotas and keys' states).
    pub fn from_limiter(limiter: MultiLimiter<K, C, S>) -> Self {
        let limits = limiter
            .limiters()
            .iter()
            .map(|l| LimitSpec {
                name: l.name().clone(),
                unit: l.unit(),
            })
            .collect();
        InProcessStore { limiter, limits }
    }

    /// The multi-limiter underneath (its synchronous API, headers, stores).
    pub fn limiter(&self) -> &MultiLimiter<K, C, S> {
        &self.limiter
    }

    fn limit(&self, index: usize) -> Result<&crate::RateLimiter<K, C, S>, RateLimitError> {
        let limiters = self.limiter.limiters();
        limiters.get(index).ok_or(RateLimitError::NoSuchLimit {
            index,
            len: limiters.len(),
        })
    }

    /// The synchronous body of [`AsyncStore::check`].
    #[inline]
    fn check_now(&self, key: &K, weights: &[u64]) -> Result<Stamped<MultiDecision>, RateLimitError> {
        let at_ns = self.limiter.clock().now_ns();
        let value = self.limiter.check_weights_at(key, weights, at_ns)?;
        Ok(Stamped { at_ns, value })
    }

    /// The synchronous body of [`AsyncStore::adjust`].
    fn adjust_now(&self, key: &K, deltas: &[i64]) -> Result<Stamped<Vec<Decision>>, RateLimitError> {
        let limiters = self.limiter.limiters();
        if deltas.len() != limiters.len() {
            return Err(RateLimitError::WeightCountMismatch {
                expected: limiters.len(),
                given: deltas.len(),
            });
        }
        let at_ns = self.limiter.clock().now_ns();
        let mut value = Vec::with_capacity(deltas.len());
        for (limiter, &delta) in limiters.iter().zip(deltas) {
            value.push(if delta == 0 {
                let state = limiter.peek_n_at(key, 0, at_ns)?;
                Decision {
                    allowed: true,
                    retry_after_ns: None,
                    ..state
                }
            } else {
                limiter.adjust_at(key, delta, at_ns)?
            });
        }
        Ok(Stamped { at_ns, value })
    }
}

impl<K, C, S> AsyncStore<K> for InProcessStore<K, C, S>
where
    K: Hash + Eq + Clone + Send + Sync,
    C: Clock + Clone,
    S: Store<K>,
{
    fn limits(&self) -> &[LimitSpec] {
        &self.limits
    }

    #[inline]
    async fn check(&self, key: &K, weights: &[u64]) -> Result<Stamped<MultiDecision>, RateLimitError> {
        self.check_now(key, weights)
    }

    async fn adjust(&self, key: &K, deltas: &[i64]) -> Result<Stamped<Vec<Decision>>, RateLimitError> {
        self.adjust_now(key, deltas)
    }

    async fn quota_for(&self, key: &K, limit: usize) -> Result<Quota, RateLimitError> {
        Ok(self.limit(limit)?.quota_for(key))
    }

    async fn set_quota(&self, limit: usize, quota: Quota) -> Result<Stamped<()>, RateLimitError> {
        let limiter = self.limit(limit)?;
        let at_ns = limiter.set_quota_with(quota, || self.limiter.clock().now_ns())?;
        Ok(Stamped { at_ns, value: () })
    }

    async fn set_key_quota(&self, key: &K, limit: usize, quota: Quota) -> Result<Stamped<()>, RateLimitError> {
        let limiter = self.limit(limit)?;
        let at_ns = limiter.set_key_quota_with(key.clone(), quota, || self.limiter.clock().now_ns())?;
        Ok(Stamped { at_ns, value: () })
    }

    async fn remove_key_quota(&self, key: &K, limit: usize) -> Result<Stamped<Option<Quota>>, RateLimitError> {
        let limiter = self.limit(limit)?;
        let (value, at_ns) = limiter.remove_key_quota_with(key, || self.limiter.clock().now_ns())?;
        Ok(Stamped { at_ns, value })
    }

    async fn evict_full(&self) -> Result<usize, RateLimitError> {
        Ok(self.limiter.evict_full())
    }
}

/// What a gateway calls: a key's plan (its limits, all or nothing) over any
/// [`AsyncStore`], with the calls a request needs (check a call with its token estimate,
/// adjust once the usage is known) and the ones an operator needs (give a key a plan or
/// an override, change a class quota). No store type is wired in: the same limiter runs
/// on the in-process store or a shared one.
///
/// The store's limits are the plan's policies; a key's *plan* is a set of quotas for
/// those same limits (tiers of one plan shape, say requests per hour and tokens per
/// minute), kept as per-key overrides, so changing a key's plan carries its state and
/// keeps the rolling-window promise.
///
/// ```
/// use paygo_ratelimit::{AsyncPlanLimiter, InProcessStore, ManualClock, Plan, Policy, PolicyName, Quota, Unit};
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let mut f = std::pin::pin!(f);
/// #     match f.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
/// #         std::task::Poll::Ready(v) => v,
/// #         std::task::Poll::Pending => unreachable!("in-process futures complete on first poll"),
/// #     }
/// # }
///
/// let plan = |rph, tpm| -> Result<Plan, paygo_ratelimit::RateLimitError> {
///     Ok(Plan {
///         name: "tier".to_owned(),
///         policies: vec![
///             Policy { name: PolicyName::new("rph")?, unit: Unit::Requests, quota: Quota::per_hour(rph, 60)? },
///             Policy { name: PolicyName::new("tpm")?, unit: Unit::Tokens, quota: Quota::per_minute(tpm, tpm / 2)? },
///         ],
///     })
/// };
/// let clock = ManualClock::new(1_764_000_000_000_000_000);
/// let limiter = AsyncPlanLimiter::new(InProcessStore::<u64, _>::with_clock(&plan(18_000, 40_000)?, clock.clone()));
///
/// // A call estimated at 8,000 tokens: one request and 8,000 tokens, all or nothing.
/// let checked = block_on(limiter.check_call(&7, 8_000))?;
/// assert!(checked.value.allowed);
/// // It used 5,000: 3,000 go back to the token limit.
/// let adjusted = block_on(limiter.adjust_tokens(&7, 5_000 - 8_000))?;
/// assert_eq!(adjusted.value[1].remaining, 20_000 - 5_000);
/// // Account 8 is on a larger tier from now on.
/// block_on(limiter.set_key_plan(&8, &plan(36_000, 100_000)?))?;
/// assert!(block_on(limiter.check_call(&8, 50_000))?.value.allowed);
/// # Ok::<(), paygo_ratelimit::RateLimitError>(())
/// ```
#[derive(Debug)]
pub struct AsyncPlanLimiter<K: ?Sized, S> {
    store: S,
    /// 1 for each request limit, 0 for each token limit.
    requests: Vec<u64>,
    key: PhantomData<fn(&K)>,
}

impl<K: Sync + ?Sized, S: AsyncStore<K>> AsyncPlanLimiter<K, S> {
    /// A limiter over a store (whose limits are the plan's policies).
    pub fn new(store: S) -> Self {
        let requests = store
            .limits()
            .iter()
            .map(|l| u64::from(l.unit == Unit::Requests))
            .collect();
        AsyncPlanLimiter {
            store,
            requests,
            key: PhantomData,
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store's limits.
    pub fn limits(&self) -> &[LimitSpec] {
        self.store.limits()
    }

    /// The index of the limit named `name`.
    pub fn limit_index(&self, name: &str) -> Option<usize> {
        self.store.limits().iter().position(|l| l.name.as_str() == name)
    }

    /// Checks one API call of `key`: one unit on every request limit and `tokens` (the
    /// call's estimate, reserved) on every token limit, all or nothing.
    ///
    /// # Errors
    ///
    /// As [`AsyncStore::check`]: [`RateLimitError::WeightExceedsBurst`] for an estimate
    /// above a token limit's burst (it could never be admitted).
    pub async fn check_call(&self, key: &K, tokens: u64) -> Result<Stamped<MultiDecision>, RateLimitError> {
        let weights: Vec<u64> = self
            .requests
            .iter()
            .map(|&request| if request == 1 { 1 } else { tokens })
            .collect();
        self.store.check(key, &weights).await
    }

    /// Checks `weights[i]` units on limit `i`, all or nothing.
    ///
    /// # Errors
    ///
    /// As [`AsyncStore::check`].
    pub async fn check_weights(&self, key: &K, weights: &[u64]) -> Result<Stamped<MultiDecision>, RateLimitError> {
        self.store.check(key, weights).await
    }

    /// After a call: adds `delta` tokens (actual minus estimate; negative gives them
    /// back) on every token limit, in one store call.
    ///
    /// # Errors
    ///
    /// As [`AsyncStore::adjust`].
    pub async fn adjust_tokens(&self, key: &K, delta: i64) -> Result<Stamped<Vec<Decision>>, RateLimitError> {
        let deltas: Vec<i64> = self
            .requests
            .iter()
            .map(|&request| if request == 1 { 0 } else { delta })
            .collect();
        self.store.adjust(key, &deltas).await
    }

    /// Adds `deltas[i]` units on limit `i`.
    ///
    /// # Errors
    ///
    /// As [`AsyncStore::adjust`].
    pub async fn adjust(&self, key: &K, deltas: &[i64]) -> Result<Stamped<Vec<Decision>>, RateLimitError> {
        self.store.adjust(key, deltas).await
    }

    /// Puts `key` on `plan`: each of the plan's policies becomes the key's own quota on the
    /// limit of the same name, carrying its state; a limit the plan does not name goes back
    /// to its default quota. One limit after another: a check running meanwhile may see
    /// some limits changed and others not (each limit alone keeps its promise).
    ///
    /// # Errors
    ///
    /// [`RateLimitError::NoSuchPolicy`] when the plan names a limit the store does not
    /// have (nothing is changed then); as [`AsyncStore::set_key_quota`].
    pub async fn set_key_plan(&self, key: &K, plan: &Plan) -> Result<(), RateLimitError> {
        let mut quotas: Vec<Option<Quota>> = vec![None; self.store.limits().len()];
        for policy in &plan.policies {
            let index = self
                .limit_index(policy.name.as_str())
                .ok_or_else(|| RateLimitError::NoSuchPolicy {
                    name: policy.name.to_string(),
                    known: self.known_names(),
                })?;
            if let Some(slot) = quotas.get_mut(index) {
                *slot = Some(policy.quota);
            }
        }
        for (index, quota) in quotas.into_iter().enumerate() {
            match quota {
                Some(quota) => {
                    self.store.set_key_quota(key, index, quota).await?;
                }
                None => {
                    self.store.remove_key_quota(key, index).await?;
                }
            }
        }
        Ok(())
    }

    fn known_names(&self) -> String {
        let names: Vec<&str> = self.store.limits().iter().map(|l| l.name.as_str()).collect();
        names.join(", ")
    }

    /// Gives `key` its own quota on limit `limit` (a custom contract).
    ///
    /// # Errors
    ///
    /// As [`AsyncStore::set_key_quota`].
    pub async fn set_key_quota(&self, key: &K, limit: usize, quota: Quota) -> Result<Stamped<()>, RateLimitError> {
        self.store.set_key_quota(key, limit, quota).await
    }

    /// Puts `key` back on limit `limit`'s default quota.
    ///
    /// # Errors
    ///
    /// As [`AsyncStore::remove_key_quota`].
    pub async fn remove_key_quota(&self, key: &K, limit: usize) -> Result<Stamped<Option<Quota>>, RateLimitError> {
        self.store.remove_key_quota(key, limit).await
    }

    /// Changes limit `limit`'s default quota (every key without its own).
    ///
    /// # Errors
    ///
    /// As [`AsyncStore::set_quota`].
    pub async fn set_quota(&self, limit: usize, quota: Quota) -> Result<Stamped<()>, RateLimitError> {
        self.store.set_quota(limit, quota).await
    }

    /// All response headers for a decision: one `RateLimit-Policy` and one `RateLimit`
    /// listing every limit, `Retry-After` when refused, and the OpenAI-style headers of
    /// the most restrictive limit of each unit.
    pub fn headers(&self, decision: &MultiDecision) -> Vec<(&'static str, String)> {
        let items: Vec<_> = self
            .store
            .limits()
            .iter()
            .zip(&decision.decisions)
            .map(|(l, d)| (&l.name, l.unit, d))
            .collect();
        headers::all(&items)
    }
}
