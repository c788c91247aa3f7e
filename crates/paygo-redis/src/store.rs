//! [`RedisStore`]: the [`AsyncStore`] on Redis, its options, its failure policy and its
//! counters.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use paygo_ratelimit::{
    AsyncStore, Decision, LimitSpec, MultiDecision, Plan, Quota, QuotaOptions, RateLimitError, Stamped,
};
use paygo_time::{Clock, SystemClock};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, ServerErrorKind, Value};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::error::RedisStoreError;

/// The script: every operation of the store (`src/limiter.lua`, `docs/ratelimit.md`).
pub const SCRIPT: &str = include_str!("limiter.lua");

/// The largest capacity (`burst x emission interval`) and debt the store holds: 2^52 ns,
/// about 52 days. The script's numbers are doubles, exact up to 2^53; every value it adds
/// or compares stays within twice this bound.
pub const CAPACITY_NS_MAX: u64 = 1 << 52;

/// What a check answers when Redis does not (down, unreachable, or slower than
/// [`RedisOptions::timeout_ms`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Admit the call (the default): the balance hold still bounds what it can cost, and a
    /// Redis outage does not take the API down with it (`docs/ratelimit.md` says why).
    #[default]
    Open,
    /// Refuse the call with [`RateLimitError::StoreUnavailable`] (a gateway answers 503):
    /// never more than the quota, at the price of availability.
    Closed,
}

/// Where log lines go: a function of one line (no key content is ever in one).
#[derive(Clone)]
pub struct LogSink(pub Arc<dyn Fn(&str) + Send + Sync>);

impl LogSink {
    /// Lines to standard error, prefixed `paygo-redis: `.
    pub fn stderr() -> Self {
        LogSink(Arc::new(|line| eprintln!("paygo-redis: {line}")))
    }

    /// Lines dropped.
    pub fn none() -> Self {
        LogSink(Arc::new(|_| {}))
    }
}

impl fmt::Debug for LogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LogSink(..)")
    }
}

/// How a [`RedisStore`] connects, batches and fails.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// The server: `redis://HOST:PORT[/DB]`.
    pub url: String,
    /// The store's keys start with `{prefix}:` (a hash tag: one cluster slot). Every store
    /// with the same prefix on the same server shares its limits: one prefix per plan
    /// shape. 1 to 64 characters from `A-Z a-z 0-9 - _ . : /`.
    pub prefix: String,
    /// How long a call waits for Redis (queueing included) before the failure policy
    /// applies. Default 100 ms.
    pub timeout_ms: u64,
    /// How long opening the store waits for the server. Default 2,000 ms.
    pub connect_timeout_ms: u64,
    /// What a check answers when Redis does not. Default [`FailurePolicy::Open`].
    pub failure: FailurePolicy,
    /// After a failed call, calls fail at once for this long (no call waits out a timeout
    /// while the server is known to be down); then the next calls try again. Default 100 ms.
    pub backoff_ms: u64,
    /// The most operations one script call carries. Default 512.
    pub batch_max: usize,
    /// The most script calls in flight on the connection at once (pipelined); operations
    /// that arrive meanwhile are gathered into the next call. Default 2.
    pub pipeline_depth: usize,
    /// Where log lines go. Default standard error.
    pub log: LogSink,
}

impl RedisOptions {
    /// The defaults for a server and a prefix.
    pub fn new(url: impl Into<String>, prefix: impl Into<String>) -> Self {
        RedisOptions {
            url: url.into(),
            prefix: prefix.into(),
            timeout_ms: 100,
            connect_timeout_ms: 2_000,
            failure: FailurePolicy::Open,
            backoff_ms: 100,
            batch_max: 512,
            pipeline_depth: 2,
            log: LogSink::stderr(),
        }
    }
}

/// What a store has done, counted since it was opened (a metric exporter reads these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RedisStats {
    /// Operations sent (checks, adjustments, quota reads and changes).
    pub operations: u64,
    /// Script calls that carried them (fewer than `operations` when batched).
    pub script_calls: u64,
    /// Operations Redis did not answer (an error, a timeout, or the back-off after one).
    pub failures: u64,
    /// Checks admitted by [`FailurePolicy::Open`] without Redis.
    pub failed_open: u64,
    /// Checks refused by [`FailurePolicy::Closed`] without Redis.
    pub failed_closed: u64,
    /// Times the script was loaded (once at the start, again after `NOSCRIPT`).
    pub script_loads: u64,
}

#[derive(Debug, Default)]
struct Counters {
    operations: AtomicU64,
    script_calls: AtomicU64,
    failures: AtomicU64,
    failed_open: AtomicU64,
    failed_closed: AtomicU64,
    script_loads: AtomicU64,
}

/// One operation waiting for its script call.
struct Pending {
    args: Vec<String>,
    reply: oneshot::Sender<Result<Answer, RateLimitError>>,
}

/// One operation's answer: its batch's time, the quotas its batch's answers name (checks and
/// adjustments name a quota by its 1-based index in this list), and its items.
struct Answer {
    now: u64,
    quotas: Arc<[Value]>,
    items: Vec<Value>,
}

/// What the store and its combiner task share.
struct Shared {
    conn: ConnectionManager,
    sha: String,
    /// The arguments every call starts with: prefix, number of limits, and (after the
    /// time) the default quotas.
    prefix: String,
    defaults: RwLock<Vec<String>>,
    options: RedisOptions,
    counters: Counters,
    /// When the last failure was, for the back-off; `None` while Redis answers.
    failing_since: Mutex<Option<Instant>>,
    /// Whether the store is failing (for the log lines: one when it starts, one when it ends).
    down: AtomicBool,
    /// Whether a call is trying Redis while it is failing (one at a time).
    probing: AtomicBool,
    failures_in_outage: AtomicU64,
    /// Script calls in flight: at most `pipeline_depth`. The combiner holds one while it
    /// waits for operations; a call that finds no script call in flight and nothing queued
    /// takes one and goes alone.
    permits: Arc<Semaphore>,
    /// Script calls on the wire now (alone or gathered).
    in_flight: AtomicUsize,
    /// Operations queued for the combiner and not yet taken.
    queued: AtomicUsize,
}

/// Counts a script call in flight while it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        InFlight(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The shared rate-limit store: every replica of a gateway that opens it with the same
/// server and prefix shares every key's limits, with the time of the Redis server.
///
/// Keys are written into Redis keys with their [`Display`](fmt::Display) text (an account
/// id); they never appear in a log line. Calls from many tasks are gathered into few
/// script calls on one multiplexed connection (see [`RedisOptions::pipeline_depth`]).
/// Nothing blocks a thread: every wait is a future, and a call gives up after
/// [`RedisOptions::timeout_ms`].
pub struct RedisStore<K: ?Sized> {
    shared: Arc<Shared>,
    queue: mpsc::UnboundedSender<Pending>,
    limits: Vec<LimitSpec>,
    /// The quotas last seen, for the answers of [`FailurePolicy::Open`].
    known: RwLock<Vec<Quota>>,
    /// The last quota text read and its quota (most answers repeat it: no parse then).
    parsed: RwLock<(String, Quota)>,
    clock: SystemClock,
    key: PhantomData<fn(&K)>,
}

impl<K: ?Sized> fmt::Debug for RedisStore<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.shared.prefix)
            .field("limits", &self.limits)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// A quota as the script stores it: `limit:period_ns:burst:interval_ns:window_bound`.
fn quota_text(quota: &Quota) -> String {
    format!(
        "{}:{}:{}:{}:{}",
        quota.limit(),
        quota.period_ns(),
        quota.burst(),
        quota.emission_interval_ns(),
        u8::from(quota.keeps_window_bound())
    )
}

/// Reads a quota the script answered.
fn parse_quota(text: &str) -> Result<Quota, RateLimitError> {
    let bad = || unavailable(format!("a quota the store does not write: {text:.80}"));
    let mut parts = text.split(':').map(str::parse::<u64>);
    let mut next = || parts.next().and_then(Result::ok).ok_or_else(bad);
    let (limit, period_ns, burst, interval, window) = (next()?, next()?, next()?, next()?, next()?);
    let options = QuotaOptions {
        limit,
        period_ns,
        burst,
    };
    let quota = if window == 1 {
        Quota::new(options)?
    } else {
        Quota::without_window_bound(options)?
    };
    if quota.emission_interval_ns() != interval {
        return Err(bad());
    }
    Ok(quota)
}

/// Refuses a quota whose capacity the script cannot hold exactly.
fn fits(quota: &Quota) -> Result<(), RateLimitError> {
    if quota.capacity_ns() > CAPACITY_NS_MAX {
        return Err(RateLimitError::QuotaExceedsStore {
            limit: quota.limit(),
            period_ns: quota.period_ns(),
            burst: quota.burst(),
            capacity_ns_max: CAPACITY_NS_MAX,
        });
    }
    Ok(())
}

fn unavailable(message: String) -> RateLimitError {
    RateLimitError::StoreUnavailable { message }
}

fn valid_prefix(prefix: &str) -> bool {
    (1..=64).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/'))
}

impl<K: ?Sized> RedisStore<K> {
    /// What the store has done since it was opened.
    pub fn stats(&self) -> RedisStats {
        let c = &self.shared.counters;
        RedisStats {
            operations: c.operations.load(Ordering::Relaxed),
            script_calls: c.script_calls.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            failed_open: c.failed_open.load(Ordering::Relaxed),
            failed_closed: c.failed_closed.load(Ordering::Relaxed),
            script_loads: c.script_loads.load(Ordering::Relaxed),
        }
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &RedisOptions {
        &self.shared.options
    }
}

impl<K: fmt::Display + Sync + ?Sized> RedisStore<K> {
    /// Opens the store for `plan`'s limits: connects, loads the script, and creates the
    /// limits that the server does not have yet with the plan's quotas. A limit that
    /// exists keeps the quota in force (another replica, or a runtime change, may have set
    /// it): [`AsyncStore::quota_for`] tells. Spawns the task that gathers calls, so it
    /// must run inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`RedisStoreError::InvalidUrl`], [`RedisStoreError::InvalidPrefix`],
    /// [`RedisStoreError::InvalidOption`]; [`RedisStoreError::Plan`] for a plan without
    /// limits or with a quota above [`CAPACITY_NS_MAX`]; [`RedisStoreError::Unreachable`]
    /// when the server does not answer within the connect timeout.
    pub async fn open(options: RedisOptions, plan: &Plan) -> Result<Self, RedisStoreError> {
        if !valid_prefix(&options.prefix) {
            return Err(RedisStoreError::InvalidPrefix {
                prefix: options.prefix.chars().take(64).collect(),
            });
        }
        if options.batch_max == 0 || options.pipeline_depth == 0 || options.timeout_ms == 0 {
            return Err(RedisStoreError::InvalidOption {
                name: "batch_max, pipeline_depth, timeout_ms",
                reason: "0: expected at least 1",
            });
        }
        if plan.policies.is_empty() {
            return Err(RedisStoreError::Plan(RateLimitError::WeightCountMismatch {
                expected: 1,
                given: 0,
            }));
        }
        for policy in &plan.policies {
            fits(&policy.quota)?;
        }
        let client = redis::Client::open(options.url.as_str())
            .map_err(|e| RedisStoreError::InvalidUrl { message: e.to_string() })?;
        let connect = Duration::from_millis(options.connect_timeout_ms);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect))
            .set_response_timeout(None)
            .set_max_delay(Duration::from_millis(500))
            .set_number_of_retries(usize::MAX);
        let unreachable = |message: String| RedisStoreError::Unreachable { message };
        let conn = tokio::time::timeout(connect, ConnectionManager::new_with_config(client, config))
            .await
            .map_err(|_| unreachable(format!("no connection within {} ms", options.connect_timeout_ms)))?
            .map_err(|e| unreachable(e.to_string()))?;
        let sha = {
            let mut conn = conn.clone();
            let loaded: String = tokio::time::timeout(
                connect,
                redis::cmd("SCRIPT").arg("LOAD").arg(SCRIPT).query_async(&mut conn),
            )
            .await
            .map_err(|_| unreachable(format!("no answer within {} ms", options.connect_timeout_ms)))?
            .map_err(|e| unreachable(e.to_string()))?;
            loaded
        };
        let limits: Vec<LimitSpec> = plan
            .policies
            .iter()
            .map(|p| LimitSpec {
                name: p.name.clone(),
                unit: p.unit,
            })
            .collect();
        let options_depth = options.pipeline_depth;
        let shared = Arc::new(Shared {
            conn,
            sha,
            prefix: format!("{{{}}}", options.prefix),
            defaults: RwLock::new(plan.policies.iter().map(|p| quota_text(&p.quota)).collect()),
            options,
            counters: Counters::default(),
            failing_since: Mutex::new(None),
            down: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            failures_in_outage: AtomicU64::new(0),
            permits: Arc::new(Semaphore::new(options_depth)),
            in_flight: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
        });
        shared.counters.script_loads.fetch_add(1, Ordering::Relaxed);
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(combine(Arc::clone(&shared), rx));
        let store = RedisStore {
            shared,
            queue,
            limits,
            known: RwLock::new(plan.policies.iter().map(|p| p.quota).collect()),
            parsed: RwLock::new((quota_text(&plan.policies[0].quota), plan.policies[0].quota)),
            clock: SystemClock::new(),
            key: PhantomData,
        };
        // The quotas in force (the limits created if missing).
        let answer = store
            .call(vec!["i".into(), "-".into()], None)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let items = ok_items(answer.items, 1 + store.limits.len())
            .map_err(|e| RedisStoreError::Protocol { message: e.to_string() })?;
        let protocol = |e: RateLimitError| RedisStoreError::Protocol { message: e.to_string() };
        let mut known = Vec::with_capacity(store.limits.len());
        for item in &items[1..] {
            known.push(parse_quota(&text(item).map_err(protocol)?).map_err(protocol)?);
        }
        store.shared.set_defaults(&known);
        *store.known.write().unwrap_or_else(PoisonError::into_inner) = known;
        Ok(store)
    }

    /// One operation: through the combiner (gathered with others into one script call),
    /// or, with a test time, alone. Answers the batch's time and the operation's result.
    async fn call(&self, args: Vec<String>, at_ns: Option<u64>) -> Result<Answer, RateLimitError> {
        let shared = &self.shared;
        shared.counters.operations.fetch_add(1, Ordering::Relaxed);
        let probe = match shared.gate() {
            Ok(probe) => probe,
            Err(message) => {
                shared.counters.failures.fetch_add(1, Ordering::Relaxed);
                shared.failures_in_outage.fetch_add(1, Ordering::Relaxed);
                return Err(unavailable(message));
            }
        };
        let timeout = Duration::from_millis(shared.options.timeout_ms);
        // A call with a test time, or one that finds the connection idle (no script call in
        // flight, nothing queued), goes alone, from this task (no hop through the combiner).
        // Under load, calls queue and share a script call: one alone beside a batch in
        // flight would cost Redis a script call's fixed cost for one operation.
        let idle = shared.in_flight.load(Ordering::Acquire) == 0 && shared.queued.load(Ordering::Acquire) == 0;
        let alone = if at_ns.is_none() && idle {
            Arc::clone(&shared.permits).try_acquire_owned().ok()
        } else {
            None
        };
        let answer = if at_ns.is_some() || alone.is_some() {
            let ops = [args];
            let answer = match tokio::time::timeout(timeout, shared.script(&ops, at_ns)).await {
                Ok(Ok((now, quotas, mut results))) => match results.pop() {
                    Some(items) => Ok(Answer { now, quotas, items }),
                    None => Err(unavailable("an empty answer".into())),
                },
                Ok(Err(e)) => Err(e),
                Err(_) => Err(unavailable(format!(
                    "no answer within {} ms",
                    shared.options.timeout_ms
                ))),
            };
            drop(alone);
            answer
        } else {
            let (reply, answer) = oneshot::channel();
            shared.queued.fetch_add(1, Ordering::AcqRel);
            if self.queue.send(Pending { args, reply }).is_err() {
                shared.queued.fetch_sub(1, Ordering::AcqRel);
                Err(unavailable("the store's task has stopped".into()))
            } else {
                match tokio::time::timeout(timeout, answer).await {
                    Ok(Ok(answer)) => answer,
                    Ok(Err(_)) => Err(unavailable("the store's task dropped the call".into())),
                    Err(_) => Err(unavailable(format!(
                        "no answer within {} ms",
                        shared.options.timeout_ms
                    ))),
                }
            }
        };
        match &answer {
            Ok(_) => shared.answered(),
            Err(RateLimitError::StoreUnavailable { message }) => shared.failed(message),
            Err(_) => {}
        }
        if probe {
            shared.probing.store(false, Ordering::Release);
        }
        answer
    }

    fn check_index(&self, limit: usize) -> Result<(), RateLimitError> {
        if limit >= self.limits.len() {
            return Err(RateLimitError::NoSuchLimit {
                index: limit,
                len: self.limits.len(),
            });
        }
        Ok(())
    }

    /// The quota an answer names by its index in the batch's list.
    fn quota_at(&self, quotas: &[Value], index: &Value) -> Result<Quota, RateLimitError> {
        let quota = usize::try_from(int(Some(index))?)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| quotas.get(i))
            .ok_or_else(|| unavailable(format!("a quota index out of the list of {}", quotas.len())))?;
        self.quota_of(quota)
    }

    /// A quota the script answered, parsed once for as long as it repeats.
    fn quota_of(&self, value: &Value) -> Result<Quota, RateLimitError> {
        let Value::BulkString(bytes) = value else {
            return parse_quota(&text(value)?);
        };
        {
            let last = self.parsed.read().unwrap_or_else(PoisonError::into_inner);
            if last.0.as_bytes() == bytes.as_slice() {
                return Ok(last.1);
            }
        }
        let text = text(value)?;
        let quota = parse_quota(&text)?;
        *self.parsed.write().unwrap_or_else(PoisonError::into_inner) = (text, quota);
        Ok(quota)
    }

    /// Remembers a quota the store answered (for [`FailurePolicy::Open`]'s answers).
    fn saw(&self, limit: usize, quota: Quota) {
        let stale = self
            .known
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(limit)
            .is_some_and(|q| *q != quota);
        if stale
            && let Some(slot) = self
                .known
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .get_mut(limit)
        {
            *slot = quota;
        }
    }

    async fn check_with(
        &self,
        key: &K,
        weights: &[u64],
        at_ns: Option<u64>,
    ) -> Result<Stamped<MultiDecision>, RateLimitError> {
        if weights.len() != self.limits.len() {
            return Err(RateLimitError::WeightCountMismatch {
                expected: self.limits.len(),
                given: weights.len(),
            });
        }
        let mut args = Vec::with_capacity(2 + weights.len());
        args.push("c".to_owned());
        args.push(key.to_string());
        args.extend(weights.iter().map(u64::to_string));
        let Answer {
            now: at_ns,
            quotas,
            items,
        } = match self.call(args, at_ns).await {
            Ok(answer) => answer,
            Err(RateLimitError::StoreUnavailable { message }) => return self.without_redis(weights, message),
            Err(e) => return Err(e),
        };
        let tag = text(items.first().ok_or_else(|| unavailable("an empty answer".into()))?)?;
        if tag == "W" {
            let index = int(items.get(1))?;
            let quota = parse_quota(&text(items.get(2).unwrap_or(&Value::Nil))?)?;
            let weight = usize::try_from(index)
                .ok()
                .and_then(|i| weights.get(i))
                .copied()
                .unwrap_or(0);
            return Err(RateLimitError::WeightExceedsBurst {
                weight,
                burst: quota.burst(),
            });
        }
        let items = ok_items(items, 2 + 5 * self.limits.len())?;
        let allowed = int(items.get(1))? == 1;
        let mut decisions = Vec::with_capacity(self.limits.len());
        for (i, chunk) in items[2..].chunks_exact(5).enumerate() {
            let quota = self.quota_at(&quotas, &chunk[0])?;
            self.saw(i, quota);
            let retry = int(chunk.get(4))?;
            decisions.push(Decision {
                allowed: int(chunk.get(1))? == 1,
                limit: quota.limit(),
                period_ns: quota.period_ns(),
                remaining: uint(chunk.get(2))?,
                reset_ns: uint(chunk.get(3))?,
                retry_after_ns: u64::try_from(retry).ok(),
            });
        }
        Ok(Stamped {
            at_ns,
            value: MultiDecision { allowed, decisions },
        })
    }

    /// A check's answer without Redis, as the failure policy says.
    fn without_redis(&self, weights: &[u64], message: String) -> Result<Stamped<MultiDecision>, RateLimitError> {
        let counters = &self.shared.counters;
        match self.shared.options.failure {
            FailurePolicy::Closed => {
                counters.failed_closed.fetch_add(1, Ordering::Relaxed);
                Err(unavailable(message))
            }
            FailurePolicy::Open => {
                let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
                for (quota, &weight) in known.iter().zip(weights) {
                    if weight > quota.burst() {
                        return Err(RateLimitError::WeightExceedsBurst {
                            weight,
                            burst: quota.burst(),
                        });
                    }
                }
                counters.failed_open.fetch_add(1, Ordering::Relaxed);
                // As a fresh key would be answered: the store's state is unknown.
                let decisions = known
                    .iter()
                    .zip(weights)
                    .map(|(quota, &weight)| Decision {
                        allowed: true,
                        limit: quota.limit(),
                        period_ns: quota.period_ns(),
                        remaining: quota.burst() - weight,
                        reset_ns: weight.saturating_mul(quota.emission_interval_ns()),
                        retry_after_ns: None,
                    })
                    .collect();
                Ok(Stamped {
                    at_ns: self.clock.now_ns(),
                    value: MultiDecision {
                        allowed: true,
                        decisions,
                    },
                })
            }
        }
    }

    async fn adjust_with(
        &self,
        key: &K,
        deltas: &[i64],
        at_ns: Option<u64>,
    ) -> Result<Stamped<Vec<Decision>>, RateLimitError> {
        if deltas.len() != self.limits.len() {
            return Err(RateLimitError::WeightCountMismatch {
                expected: self.limits.len(),
                given: deltas.len(),
            });
        }
        let mut args = Vec::with_capacity(2 + deltas.len());
        args.push("a".to_owned());
        args.push(key.to_string());
        args.extend(deltas.iter().map(i64::to_string));
        let Answer {
            now: at_ns,
            quotas,
            items,
        } = self.call(args, at_ns).await?;
        if text(items.first().unwrap_or(&Value::Nil))? == "A" {
            let index = usize::try_from(int(items.get(1))?).unwrap_or(0);
            return Err(RateLimitError::AdjustmentTooLarge {
                delta: deltas.get(index).copied().unwrap_or(0),
            });
        }
        let items = ok_items(items, 1 + 3 * self.limits.len())?;
        let mut value = Vec::with_capacity(self.limits.len());
        for (i, chunk) in items[1..].chunks_exact(3).enumerate() {
            let quota = self.quota_at(&quotas, &chunk[0])?;
            self.saw(i, quota);
            value.push(Decision {
                allowed: true,
                limit: quota.limit(),
                period_ns: quota.period_ns(),
                remaining: uint(chunk.get(1))?,
                reset_ns: uint(chunk.get(2))?,
                retry_after_ns: None,
            });
        }
        Ok(Stamped { at_ns, value })
    }

    async fn change(&self, args: Vec<String>, at_ns: Option<u64>) -> Result<(u64, Vec<Value>), RateLimitError> {
        let answer = self.call(args, at_ns).await?;
        Ok((answer.now, ok_items(answer.items, 1)?))
    }

    async fn set_quota_with(
        &self,
        limit: usize,
        quota: Quota,
        at_ns: Option<u64>,
    ) -> Result<Stamped<()>, RateLimitError> {
        self.check_index(limit)?;
        fits(&quota)?;
        let text = quota_text(&quota);
        let (at_ns, _) = self
            .change(vec!["s".into(), "-".into(), limit.to_string(), text.clone()], at_ns)
            .await?;
        if let Some(slot) = self
            .shared
            .defaults
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(limit)
        {
            *slot = text;
        }
        Ok(Stamped { at_ns, value: () })
    }

    async fn set_key_quota_with(
        &self,
        key: &K,
        limit: usize,
        quota: Quota,
        at_ns: Option<u64>,
    ) -> Result<Stamped<()>, RateLimitError> {
        self.check_index(limit)?;
        fits(&quota)?;
        let args = vec!["k".into(), key.to_string(), limit.to_string(), quota_text(&quota)];
        let (at_ns, _) = self.change(args, at_ns).await?;
        Ok(Stamped { at_ns, value: () })
    }

    async fn remove_key_quota_with(
        &self,
        key: &K,
        limit: usize,
        at_ns: Option<u64>,
    ) -> Result<Stamped<Option<Quota>>, RateLimitError> {
        self.check_index(limit)?;
        let (at_ns, items) = self
            .change(vec!["r".into(), key.to_string(), limit.to_string()], at_ns)
            .await?;
        let old = text(items.get(1).unwrap_or(&Value::Nil))?;
        let value = if old.is_empty() { None } else { Some(parse_quota(&old)?) };
        Ok(Stamped { at_ns, value })
    }
}

/// Test hooks: every operation at a time the caller gives instead of Redis `TIME`
/// (feature `testing`; the golden tests drive the script and the step functions of
/// `paygo_ratelimit::gcra` through the same times). Such a call runs alone, not batched;
/// its keys expire 10 minutes after their last write instead of when full, and it does
/// not move the store's latest time. Never for production: time must come from the server.
#[cfg(feature = "testing")]
impl<K: fmt::Display + Sync + ?Sized> RedisStore<K> {
    /// [`AsyncStore::check`] at `at_ns`.
    ///
    /// # Errors
    ///
    /// As [`AsyncStore::check`].
    pub async fn check_at(
        &self,
        key: &K,
        weights: &[u64],
        at_ns: u64,
    ) -> Result<Stamped<MultiDecision>, RateLimitError> {
        self.check_with(key, weights, Some(at_ns)).await
    }

    /// [`AsyncStore::adjust`] at `at_ns`.
    ///
    /// # Errors
    ///
    /// As [`AsyncStore::adjust`].
    pub async fn adjust_at(
        &self,
        key: &K,
        deltas: &[i64],
        at_ns: u64,
    ) -> Result<Stamped<Vec<Decision>>, RateLimitError> {
        self.adjust_with(key, deltas, Some(at_ns)).await
    }

    /// [`AsyncStore::set_quota`] at `at_ns`.
    ///
    /// # Errors
    ///
    /// As [`AsyncStore::set_quota`].
    pub async fn set_quota_at(&self, limit: usize, quota: Quota, at_ns: u64) -> Result<Stamped<()>, RateLimitError> {
        self.set_quota_with(limit, quota, Some(at_ns)).await
    }

    /// [`AsyncStore::set_key_quota`] at `at_ns`.
    ///
    /// # Errors
    ///
    /// As [`AsyncStore::set_key_quota`].
    pub async fn set_key_quota_at(
        &self,
        key: &K,
        limit: usize,
        quota: Quota,
        at_ns: u64,
    ) -> Result<Stamped<()>, RateLimitError> {
        self.set_key_quota_with(key, limit, quota, Some(at_ns)).await
    }

    /// [`AsyncStore::remove_key_quota`] at `at_ns`.
    ///
    /// # Errors
    ///
    /// As [`AsyncStore::remove_key_quota`].
    pub async fn remove_key_quota_at(
        &self,
        key: &K,
        limit: usize,
        at_ns: u64,
    ) -> Result<Stamped<Option<Quota>>, RateLimitError> {
        self.remove_key_quota_with(key, limit, Some(at_ns)).await
    }
}

impl<K: fmt::Display + Sync + ?Sized> AsyncStore<K> for RedisStore<K> {
    fn limits(&self) -> &[LimitSpec] {
        &self.limits
    }

    async fn check(&self, key: &K, weights: &[u64]) -> Result<Stamped<MultiDecision>, RateLimitError> {
        self.check_with(key, weights, None).await
    }

    async fn adjust(&self, key: &K, deltas: &[i64]) -> Result<Stamped<Vec<Decision>>, RateLimitError> {
        self.adjust_with(key, deltas, None).await
    }

    async fn quota_for(&self, key: &K, limit: usize) -> Result<Quota, RateLimitError> {
        self.check_index(limit)?;
        let answer = self
            .call(vec!["q".into(), key.to_string(), limit.to_string()], None)
            .await?;
        let items = ok_items(answer.items, 2)?;
        parse_quota(&text(&items[1])?)
    }

    async fn set_quota(&self, limit: usize, quota: Quota) -> Result<Stamped<()>, RateLimitError> {
        self.set_quota_with(limit, quota, None).await
    }

    async fn set_key_quota(&self, key: &K, limit: usize, quota: Quota) -> Result<Stamped<()>, RateLimitError> {
        self.set_key_quota_with(key, limit, quota, None).await
    }

    async fn remove_key_quota(&self, key: &K, limit: usize) -> Result<Stamped<Option<Quota>>, RateLimitError> {
        self.remove_key_quota_with(key, limit, None).await
    }

    async fn evict_full(&self) -> Result<usize, RateLimitError> {
        // Redis expires a key a second after it is full.
        Ok(0)
    }
}

impl Shared {
    fn set_defaults(&self, quotas: &[Quota]) {
        *self.defaults.write().unwrap_or_else(PoisonError::into_inner) = quotas.iter().map(quota_text).collect();
    }

    /// Whether a call may try Redis: `Ok(false)` while it answers; while it fails, `Err`
    /// (fail at once) during the back-off after the last failure and while another call is
    /// trying, else `Ok(true)`: this call is the one that tries.
    fn gate(&self) -> Result<bool, String> {
        if !self.down.load(Ordering::Acquire) {
            return Ok(false);
        }
        let since = *self.failing_since.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(since) = since
            && since.elapsed() < Duration::from_millis(self.options.backoff_ms)
        {
            return Err(format!(
                "Redis failed {} ms ago; trying again {} ms after a failure",
                since.elapsed().as_millis(),
                self.options.backoff_ms
            ));
        }
        if self.probing.swap(true, Ordering::AcqRel) {
            return Err("Redis is failing; another call is trying it".into());
        }
        Ok(true)
    }

    fn answered(&self) {
        if self.down.swap(false, Ordering::AcqRel) {
            *self.failing_since.lock().unwrap_or_else(PoisonError::into_inner) = None;
            let failed = self.failures_in_outage.swap(0, Ordering::AcqRel);
            (self.options.log.0)(&format!(
                "the rate-limit store answers again ({failed} operations failed meanwhile)"
            ));
        }
    }

    fn failed(&self, message: &str) {
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
        self.failures_in_outage.fetch_add(1, Ordering::Relaxed);
        *self.failing_since.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        if !self.down.swap(true, Ordering::AcqRel) {
            let policy = match self.options.failure {
                FailurePolicy::Open => "admitting checks (failure policy: open)",
                FailurePolicy::Closed => "refusing checks (failure policy: closed)",
            };
            (self.options.log.0)(&format!(
                "the rate-limit store is unavailable: {message}; {policy} until it answers"
            ));
        }
    }

    /// One script call for `batch`: its time and one result per operation. Loads the
    /// script again when the server has lost it (`NOSCRIPT`, after a restart).
    async fn script(&self, batch: &[Vec<String>], at_ns: Option<u64>) -> Result<Batch, RateLimitError> {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.sha).arg(1).arg(format!("{}:now", self.prefix));
        {
            let defaults = self.defaults.read().unwrap_or_else(PoisonError::into_inner);
            cmd.arg(&self.prefix)
                .arg(defaults.len())
                .arg(at_ns.map(|t| t.to_string()).unwrap_or_default());
            for quota in defaults.iter() {
                cmd.arg(quota);
            }
        }
        for op in batch {
            for arg in op {
                cmd.arg(arg);
            }
        }
        self.counters.script_calls.fetch_add(1, Ordering::Relaxed);
        let _in_flight = InFlight::new(&self.in_flight);
        let mut conn = self.conn.clone();
        // The client answers a server's error as an error or as a value: both are read.
        let no_script = |answer: &redis::RedisResult<Value>| match answer {
            Err(e) => e.kind() == ErrorKind::Server(ServerErrorKind::NoScript),
            Ok(Value::ServerError(e)) => e.kind() == Some(ServerErrorKind::NoScript),
            Ok(_) => false,
        };
        let mut answer = conn.send_packed_command(&cmd).await;
        if no_script(&answer) {
            // A server restarted (or flushed): load the script again, and call it again.
            self.counters.script_loads.fetch_add(1, Ordering::Relaxed);
            redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(SCRIPT)
                .query_async::<String>(&mut conn)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            answer = conn.send_packed_command(&cmd).await;
        }
        let answer = answer.map_err(|e| unavailable(e.to_string()))?;
        // The time, the quotas named, then each operation's length and items (limiter.lua).
        let mut flat = items(answer)?.into_iter();
        let now = text(&flat.next().unwrap_or(Value::Nil))?
            .parse::<u64>()
            .map_err(|_| unavailable("a time that is not a number".into()))?;
        let quotas: Arc<[Value]> = items(flat.next().unwrap_or(Value::Nil))?.into();
        let mut results = Vec::with_capacity(batch.len());
        while let Some(len) = flat.next() {
            let len = usize::try_from(int(Some(&len))?).map_err(|_| unavailable("a negative length".into()))?;
            let op: Vec<Value> = flat.by_ref().take(len).collect();
            if op.len() != len {
                return Err(unavailable("an answer cut short".into()));
            }
            results.push(op);
        }
        if results.len() != batch.len() {
            return Err(unavailable(format!(
                "{} results for {} operations",
                results.len(),
                batch.len()
            )));
        }
        Ok((now, quotas, results))
    }
}

/// A script call's answer: its time, the quotas named, each operation's items.
type Batch = (u64, Arc<[Value]>, Vec<Vec<Value>>);

/// The combiner: takes the operations waiting, as many as `batch_max`, sends them in one
/// script call, and hands each its result; at most `pipeline_depth` calls in flight, so
/// operations that arrive while they are gather into the next one (flat combining). Ends
/// when the store is dropped.
async fn combine(shared: Arc<Shared>, mut queue: mpsc::UnboundedReceiver<Pending>) {
    let mut batch = Vec::with_capacity(shared.options.batch_max);
    loop {
        let Ok(permit) = Arc::clone(&shared.permits).acquire_owned().await else {
            return;
        };
        let taken = queue.recv_many(&mut batch, shared.options.batch_max).await;
        if taken == 0 {
            return;
        }
        shared.queued.fetch_sub(taken, Ordering::AcqRel);
        let (ops, replies): (Vec<Vec<String>>, Vec<_>) = batch.drain(..).map(|p| (p.args, p.reply)).unzip();
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let answer = shared.script(&ops, None).await;
            drop(permit);
            match answer {
                Ok((now, quotas, results)) => {
                    for (reply, items) in replies.into_iter().zip(results) {
                        let quotas = Arc::clone(&quotas);
                        let _ = reply.send(Ok(Answer { now, quotas, items }));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        });
    }
}

// ------------------------------------------------------------------ answers

fn items(value: Value) -> Result<Vec<Value>, RateLimitError> {
    match value {
        Value::Array(items) => Ok(items),
        Value::ServerError(e) => Err(unavailable(format!("the script failed: {e:?}"))),
        other => Err(unavailable(format!("an answer that is not a list: {other:?}"))),
    }
}

/// The items of an `ok` answer, at least `len` of them.
fn ok_items(items: Vec<Value>, len: usize) -> Result<Vec<Value>, RateLimitError> {
    if items.len() < len || text(&items[0])? != "ok" {
        return Err(unavailable(format!(
            "an answer of {} items, expected {len}",
            items.len()
        )));
    }
    Ok(items)
}

fn text(value: &Value) -> Result<String, RateLimitError> {
    match value {
        Value::BulkString(bytes) => {
            String::from_utf8(bytes.clone()).map_err(|_| unavailable("a text that is not UTF-8".into()))
        }
        Value::SimpleString(s) => Ok(s.clone()),
        Value::Okay => Ok("OK".into()),
        other => Err(unavailable(format!("a text expected, got {other:?}"))),
    }
}

fn int(value: Option<&Value>) -> Result<i64, RateLimitError> {
    match value {
        Some(Value::Int(n)) => Ok(*n),
        other => Err(unavailable(format!("a number expected, got {other:?}"))),
    }
}

fn uint(value: Option<&Value>) -> Result<u64, RateLimitError> {
    u64::try_from(int(value)?).map_err(|_| unavailable("a negative number".into()))
}
