//! The contract of an [`AsyncStore`], as functions any implementation runs (feature
//! `testing`): the in-process store runs them in `tests/async_store.rs`, a Redis store
//! (issue 18) runs the same ones on a real server.
//!
//! A store is driven through a [`Harness`] (make a store for a plan, name keys, let
//! time pass) and every answer is compared with the reference model of
//! `tests/support/model.rs` **at the time the store stamped it**, so the suite needs no
//! control of the store's clock: a manual clock makes the runs exact and fast, a real
//! one (Redis `TIME`) works the same way. Violations panic with what differed, as a test
//! should; store errors that the contract does not expect are returned.
//!
//! ```
//! use paygo_ratelimit::testing::{self, Harness};
//! use paygo_ratelimit::{InProcessStore, ManualClock, Plan};
//!
//! struct InProcess(ManualClock);
//!
//! impl Harness for InProcess {
//!     type Key = u64;
//!     type Store = InProcessStore<u64, ManualClock>;
//!     async fn store(&mut self, plan: &Plan) -> Self::Store {
//!         InProcessStore::with_clock(plan, self.0.clone())
//!     }
//!     fn key(&mut self, index: u64) -> u64 {
//!         index
//!     }
//!     async fn wait_ns(&mut self, ns: u64) {
//!         self.0.advance_ns(ns);
//!     }
//! }
//!
//! let mut harness = InProcess(ManualClock::new(1_764_000_000_000_000_000));
//! testing::block_on(testing::run_contract(&mut harness, 1))?;
//! # Ok::<(), paygo_ratelimit::RateLimitError>(())
//! ```

// A test suite reports a broken contract by panicking, as a test does: every public
// function here panics on a violation (and says so in the module docs).
#![allow(clippy::panic, clippy::missing_panics_doc)]

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use crate::async_store::{AsyncStore, Stamped};
use crate::error::RateLimitError;
use crate::gcra::Decision;
use crate::limiter::MultiDecision;
use crate::quota::{Plan, Policy, PolicyName, Quota, QuotaOptions, Unit};

// The reference model the property tests use, shared as is.
#[allow(clippy::unwrap_used, clippy::pedantic)]
#[path = "../tests/support/model.rs"]
mod model;
use model::{Model, Timelines};

/// How the contract drives a store.
pub trait Harness {
    /// The store's key type.
    type Key: Sync;
    /// The store under test.
    type Store: AsyncStore<Self::Key>;

    /// A fresh store whose limits are `plan`'s policies, in order, and that has seen no
    /// key (a Redis harness uses a new key prefix for each).
    fn store(&mut self, plan: &Plan) -> impl Future<Output = Self::Store>;

    /// A key, distinct for each index.
    fn key(&mut self, index: u64) -> Self::Key;

    /// Lets at least `ns` nanoseconds of the store's time pass (a manual clock advances;
    /// a real store sleeps).
    fn wait_ns(&mut self, ns: u64) -> impl Future<Output = ()>;
}

/// Runs a future to completion on this thread: polls it, and parks the thread until its
/// waker is called. Enough for the in-process store (its futures complete on the first
/// poll) and for tests; a real service uses its runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        thread::park();
    }
}

/// Every part of the contract, with random sequences from `seed`.
///
/// # Panics
///
/// On a violation of the contract, saying what differed (so does every function here).
///
/// # Errors
///
/// A store error the contract does not expect.
pub async fn run_contract<H: Harness>(harness: &mut H, seed: u64) -> Result<(), RateLimitError> {
    all_or_nothing(harness).await?;
    weights_and_adjust(harness).await?;
    random_sequence(harness, seed, 300, true).await?;
    random_sequence(harness, seed ^ 0x9e37_79b9_7f4a_7c15, 300, false).await?;
    quota_change_keeps_promise(harness, seed).await?;
    Ok(())
}

const PERIOD_NS: u64 = 100_000_000;

fn quota(limit: u64, burst: u64) -> Result<Quota, RateLimitError> {
    Quota::new(QuotaOptions {
        limit,
        period_ns: PERIOD_NS,
        burst,
    })
}

fn plan(quotas: &[(Unit, Quota)]) -> Result<Plan, RateLimitError> {
    let policies = quotas
        .iter()
        .enumerate()
        .map(|(i, &(unit, quota))| {
            Ok(Policy {
                name: PolicyName::new(&format!("l{i}"))?,
                unit,
                quota,
            })
        })
        .collect::<Result<_, RateLimitError>>()?;
    Ok(Plan {
        name: "contract".to_owned(),
        policies,
    })
}

/// All or nothing: a check that one limit refuses consumes nothing on the others, reports
/// them unchanged and the refusing one with its retry-after; a weight above a burst is an
/// error that consumes nothing; a weight of 0 skips a limit; the weights must match the
/// limits.
///
/// # Errors
///
/// A store error the contract does not expect.
pub async fn all_or_nothing<H: Harness>(harness: &mut H) -> Result<(), RateLimitError> {
    let (requests, tokens) = (quota(10, 5)?, quota(1_000, 100)?);
    let store = harness
        .store(&plan(&[(Unit::Requests, requests), (Unit::Tokens, tokens)])?)
        .await;
    let key = harness.key(0);
    let first = store.check(&key, &[1, 60]).await?;
    assert!(first.value.allowed, "a fresh key's first check is admitted: {first:?}");
    assert_eq!(first.value.decisions.len(), 2);
    // 40 tokens are left; 50 are refused by the token limit alone.
    let refused = store.check(&key, &[1, 50]).await?;
    assert!(
        !refused.value.allowed,
        "50 tokens with 40 left are refused: {refused:?}"
    );
    let [req, tok] = [refused.value.decisions[0], refused.value.decisions[1]];
    assert!(
        req.allowed && req.retry_after_ns.is_none(),
        "the admitting limit is reported unchanged: {req:?}"
    );
    assert!(
        !tok.allowed && tok.retry_after_ns.is_some(),
        "the refusing limit says when: {tok:?}"
    );
    assert!(
        req.remaining >= 4,
        "the refusal took nothing from the request limit: {req:?}"
    );
    // Nothing was consumed: the rest of both bursts is still there (time only adds).
    let rest = store.check(&key, &[4, 40]).await?;
    assert!(rest.value.allowed, "a refusal consumed nothing: {rest:?}");
    // A weight above a burst is an error, and consumes nothing either.
    let other = harness.key(1);
    match store.check(&other, &[1, 101]).await {
        Err(RateLimitError::WeightExceedsBurst {
            weight: 101,
            burst: 100,
        }) => {}
        other => panic!("a weight above the burst is WeightExceedsBurst, got {other:?}"),
    }
    let full = store.check(&other, &[5, 100]).await?;
    assert!(full.value.allowed, "the failed check consumed nothing: {full:?}");
    // A weight of 0 skips its limit, even a limit that would refuse.
    let skipped = store.check(&other, &[0, 0]).await?;
    assert!(skipped.value.allowed && skipped.value.decisions.iter().all(|d| d.allowed));
    match store.check(&other, &[1]).await {
        Err(RateLimitError::WeightCountMismatch { expected: 2, given: 1 }) => {}
        other => panic!("one weight for two limits is WeightCountMismatch, got {other:?}"),
    }
    match store.adjust(&other, &[1, 2, 3]).await {
        Err(RateLimitError::WeightCountMismatch { expected: 2, given: 3 }) => {}
        other => panic!("three deltas for two limits is WeightCountMismatch, got {other:?}"),
    }
    match store.set_quota(2, requests).await {
        Err(RateLimitError::NoSuchLimit { index: 2, len: 2 }) => {}
        other => panic!("limit 2 of 2 is NoSuchLimit, got {other:?}"),
    }
    Ok(())
}

/// Weights and reserve-then-adjust, exactly: a reservation, a give-back, an overrun past
/// the burst that later checks wait out with the exact retry-after, and a give-back that
/// stops at full.
///
/// # Errors
///
/// A store error the contract does not expect.
pub async fn weights_and_adjust<H: Harness>(harness: &mut H) -> Result<(), RateLimitError> {
    let tokens = quota(1_000, 100)?;
    let store = harness.store(&plan(&[(Unit::Tokens, tokens)])?).await;
    let key = harness.key(0);
    let mut model = Model { debt_ns: 0, at_ns: 0 };
    let step = |model: &mut Model, at_ns: u64| model.drain(at_ns.max(model.at_ns));
    let reserved = store.check(&key, &[80]).await?;
    model.at_ns = reserved.at_ns;
    let expected = model.check(&tokens, 80, true);
    assert_eq!(reserved.value.decisions[0], expected, "reserving 80 of 100");
    // The call used 30: 50 go back.
    let back = store.adjust(&key, &[-50]).await?;
    step(&mut model, back.at_ns);
    model.adjust(&tokens, -50);
    assert_eq!(back.value[0], adjusted(&tokens, &model), "giving back 50");
    // Another call reserved 70 and used 170: 100 more, past the burst.
    let reserved = store.check(&key, &[70]).await?;
    step(&mut model, reserved.at_ns);
    let expected = model.check(&tokens, 70, true);
    assert_eq!(reserved.value.decisions[0], expected, "reserving 70");
    let more = store.adjust(&key, &[100]).await?;
    step(&mut model, more.at_ns);
    model.adjust(&tokens, 100);
    assert_eq!(more.value[0], adjusted(&tokens, &model), "taking 100 more");
    assert_eq!(more.value[0].remaining, 0);
    // Later checks wait the overrun out, with the exact retry-after.
    let refused = store.check(&key, &[1]).await?;
    step(&mut model, refused.at_ns);
    let expected = model.check(&tokens, 1, true);
    assert_eq!(refused.value.decisions[0], expected, "a check during the overrun");
    assert!(!refused.value.allowed);
    let retry = refused.value.retry_after_ns().unwrap_or(0);
    harness.wait_ns(retry).await;
    let after = store.check(&key, &[1]).await?;
    step(&mut model, after.at_ns);
    assert!(after.value.allowed, "admitted after the retry-after");
    assert_eq!(after.value.decisions[0], model.check(&tokens, 1, true));
    // Giving back more than was taken stops at full.
    let all = store.adjust(&key, &[-1_000]).await?;
    step(&mut model, all.at_ns);
    model.adjust(&tokens, -1_000);
    assert_eq!(all.value[0], adjusted(&tokens, &model));
    assert_eq!((all.value[0].remaining, all.value[0].reset_ns), (100, 0));
    Ok(())
}

/// The decision an adjustment reports for a key whose debt (after it) the model holds.
fn adjusted(quota: &Quota, model: &Model) -> Decision {
    state(quota, model.debt_ns)
}

/// A limit's state at a debt, as an admitted decision (what a skipped limit reports).
fn state(quota: &Quota, debt_ns: u128) -> Decision {
    let mut at = Model { debt_ns, at_ns: 0 };
    Decision {
        allowed: true,
        retry_after_ns: None,
        ..at.check(quota, 0, false)
    }
}

/// A small seeded generator (xorshift64*), so the suite needs no dependency.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `-max..=max` (`max` below 2^62).
    fn signed(&mut self, max: u64) -> i64 {
        let max = i64::try_from(max).unwrap_or(i64::MAX / 2);
        i64::try_from(self.upto(max.unsigned_abs() * 2)).unwrap_or(0) - max
    }

    /// Uniform enough in `0..=max`.
    fn upto(&mut self, max: u64) -> u64 {
        self.next() % max.saturating_add(1).max(1)
    }
}

/// The model of one limit: its class (timelines and the floor every key of it owes) and
/// its keys.
#[derive(Clone)]
struct LimitModel {
    class: Timelines,
    floor: Model,
    keys: HashMap<u64, KeyModel>,
}

#[derive(Clone)]
struct KeyModel {
    debt: Model,
    own: Option<Timelines>,
}

impl LimitModel {
    fn new(quota: Quota) -> Self {
        LimitModel {
            class: Timelines::new(quota),
            floor: Model { debt_ns: 0, at_ns: 0 },
            keys: HashMap::new(),
        }
    }

    fn drain(&mut self, now_ns: u64) {
        let now_ns = now_ns.max(self.floor.at_ns);
        self.floor.drain(now_ns);
        for key in self.keys.values_mut() {
            key.debt.drain(now_ns.max(key.debt.at_ns));
        }
    }

    fn key(&mut self, key: u64, now_ns: u64) -> &mut KeyModel {
        self.drain(now_ns);
        let at_ns = self.floor.at_ns;
        self.keys.entry(key).or_insert(KeyModel {
            debt: Model { debt_ns: 0, at_ns },
            own: None,
        })
    }

    fn quota(&self, key: u64) -> Quota {
        match self.keys.get(&key).and_then(|k| k.own.as_ref()) {
            Some(own) => own.current(),
            None => self.class.current(),
        }
    }

    /// The floor a key's debt is read against: the class's, or none for an override.
    fn floor_ns(&self, key: u64) -> u128 {
        match self.keys.get(&key).and_then(|k| k.own.as_ref()) {
            Some(_) => 0,
            None => self.floor.debt_ns,
        }
    }

    /// The debt a check of `key` at `now_ns` sees.
    fn effective(&mut self, key: u64, now_ns: u64) -> u128 {
        let debt = self.key(key, now_ns).debt.debt_ns;
        debt.max(self.floor_ns(key))
    }

    fn set_quota(&mut self, to: Quota, now_ns: u64) {
        self.drain(now_ns);
        let floor = self.floor.debt_ns;
        for key in self.keys.values_mut().filter(|k| k.own.is_none()) {
            key.debt.debt_ns = self.class.converted(key.debt.debt_ns.max(floor), &to);
        }
        self.floor.debt_ns = self.class.converted(floor, &to);
        self.class = self.class.then(to);
    }

    fn set_key_quota(&mut self, key: u64, to: Quota, now_ns: u64) {
        let effective = self.effective(key, now_ns);
        let from = self
            .keys
            .get(&key)
            .and_then(|k| k.own.clone())
            .unwrap_or_else(|| self.class.clone());
        let entry = self.key(key, now_ns);
        entry.debt.debt_ns = from.converted(effective, &to);
        entry.own = Some(from.then(to));
    }

    fn remove_key_quota(&mut self, key: u64, now_ns: u64) -> Option<Quota> {
        let default = self.class.current();
        let floor = {
            self.drain(now_ns);
            self.floor.debt_ns
        };
        let entry = self.key(key, now_ns);
        let own = entry.own.take()?;
        entry.debt.debt_ns = own.converted(entry.debt.debt_ns, &default).max(floor);
        self.class.join(&own.then(default));
        Some(own.current())
    }
}

/// The expected answer of a multi-limit check at `now_ns`, applied to the models.
fn expect_check(limits: &mut [LimitModel], key: u64, weights: &[u64], now_ns: u64) -> MultiDecision {
    let mut trials = Vec::with_capacity(limits.len());
    for (limit, &weight) in limits.iter_mut().zip(weights) {
        let quota = limit.quota(key);
        let debt_ns = limit.effective(key, now_ns);
        let mut trial = Model { debt_ns, at_ns: now_ns };
        let decision = trial.check(&quota, weight, false);
        trials.push((quota, debt_ns, weight, decision));
    }
    let allowed = trials.iter().all(|&(_, _, weight, d)| weight == 0 || d.allowed);
    let mut decisions = Vec::with_capacity(trials.len());
    for (limit, &(quota, debt_ns, weight, decision)) in limits.iter_mut().zip(&trials) {
        decisions.push(if weight == 0 {
            state(&quota, debt_ns)
        } else if allowed {
            let mut taken = Model { debt_ns, at_ns: now_ns };
            let decision = taken.check(&quota, weight, true);
            limit.key(key, now_ns).debt.debt_ns = taken.debt_ns;
            decision
        } else if decision.allowed {
            state(&quota, debt_ns)
        } else {
            decision
        });
    }
    MultiDecision { allowed, decisions }
}

/// The expected answer of an adjustment at `now_ns`, applied to the models.
fn expect_adjust(limits: &mut [LimitModel], key: u64, deltas: &[i64], now_ns: u64) -> Vec<Decision> {
    let mut decisions = Vec::with_capacity(limits.len());
    for (limit, &delta) in limits.iter_mut().zip(deltas) {
        let quota = limit.quota(key);
        if delta == 0 {
            let debt_ns = limit.effective(key, now_ns);
            decisions.push(state(&quota, debt_ns));
            continue;
        }
        let floor_ns = {
            limit.drain(now_ns);
            limit.floor_ns(key)
        };
        let entry = limit.key(key, now_ns);
        entry.debt.adjust_above(&quota, delta, floor_ns);
        decisions.push(state(&quota, entry.debt.debt_ns));
    }
    decisions
}

/// What a limit admitted of one key, and the quotas in force for it since when: enough to
/// check the rolling-window promise.
#[derive(Default)]
struct Admitted {
    units: Vec<(u64, u64)>,
    quotas: Vec<(u64, Quota)>,
}

impl Admitted {
    /// Every window of `PERIOD_NS` that starts at an admission holds at most what the
    /// most generous quota in force during it allows in that window.
    fn check_windows(&self, what: &str) {
        for (i, &(start, _)) in self.units.iter().enumerate() {
            let end = start.saturating_add(PERIOD_NS);
            let held: u64 = self.units[i..]
                .iter()
                .take_while(|(t, _)| *t < end)
                .map(|(_, w)| w)
                .sum();
            let bound = self
                .quotas
                .iter()
                .enumerate()
                .filter(|&(j, &(from, _))| {
                    let until = self.quotas.get(j + 1).map_or(u64::MAX, |&(next, _)| next);
                    from < end && until > start
                })
                .map(|(_, (_, q))| q.max_admitted_in_window_ns(PERIOD_NS))
                .max()
                .unwrap_or(0);
            assert!(
                held <= bound,
                "{what}: {held} units in the window from {start} ns, more than {bound}"
            );
        }
    }
}

/// A random sequence of checks (random weights, now and then above a burst), waits and,
/// with `adjustments`, reserve-then-adjust steps, on three keys and two limits with random
/// quotas: every answer equals the reference model's at the stamped time, the stamps never
/// go backwards, and without adjustments (whose give-backs are not admissions) no window
/// of a period admits more than the quota.
///
/// # Errors
///
/// A store error the contract does not expect.
pub async fn random_sequence<H: Harness>(
    harness: &mut H,
    seed: u64,
    steps: usize,
    adjustments: bool,
) -> Result<(), RateLimitError> {
    let mut rng = Rng::new(seed);
    let limit = 5 + rng.upto(35);
    let requests = quota(limit, 1 + rng.upto(limit - 1))?;
    let limit = 1_000 + rng.upto(4_000);
    let tokens = quota(limit, 1 + rng.upto(limit - 1))?;
    let quotas = [requests, tokens];
    let store = harness
        .store(&plan(&[(Unit::Requests, requests), (Unit::Tokens, tokens)])?)
        .await;
    let keys: Vec<H::Key> = (0..3).map(|i| harness.key(i)).collect();
    let mut limits: Vec<LimitModel> = quotas.iter().map(|&q| LimitModel::new(q)).collect();
    let mut admitted: Vec<Vec<Admitted>> = (0..3)
        .map(|_| {
            quotas
                .iter()
                .map(|&q| Admitted {
                    units: Vec::new(),
                    quotas: vec![(0, q)],
                })
                .collect()
        })
        .collect();
    let mut last_ns = 0;
    for step in 0..steps {
        let k = rng.upto(2);
        let key = &keys[k as usize];
        let roll = rng.upto(99);
        if roll < 30 {
            let t = requests.emission_interval_ns();
            let wait = match rng.upto(2) {
                0 => rng.upto(t / 2),
                1 => rng.upto(3 * t),
                _ => 1,
            };
            harness.wait_ns(wait).await;
            continue;
        }
        if adjustments && roll < 45 {
            let deltas = [rng.signed(2), rng.signed(tokens.burst())];
            let answer = store.adjust(key, &deltas).await?;
            assert!(
                answer.at_ns >= last_ns,
                "time went back from {last_ns} to {}",
                answer.at_ns
            );
            last_ns = answer.at_ns;
            let expected = expect_adjust(&mut limits, k, &deltas, answer.at_ns);
            assert_eq!(
                answer.value, expected,
                "step {step}: adjust {deltas:?} of key {k} at {}",
                answer.at_ns
            );
            continue;
        }
        let mut weights = [rng.upto(requests.burst().min(3)), rng.upto(tokens.burst())];
        let too_heavy = rng.upto(30) == 0;
        if too_heavy {
            weights[1] = tokens.burst() + 1 + rng.upto(10);
        }
        let answer = store.check(key, &weights).await;
        if too_heavy {
            match answer {
                Err(RateLimitError::WeightExceedsBurst { .. }) => continue,
                other => panic!("step {step}: a weight above the burst is WeightExceedsBurst, got {other:?}"),
            }
        }
        let Stamped { at_ns, value } = answer?;
        assert!(at_ns >= last_ns, "time went back from {last_ns} to {at_ns}");
        last_ns = at_ns;
        let expected = expect_check(&mut limits, k, &weights, at_ns);
        assert_eq!(value, expected, "step {step}: check {weights:?} of key {k} at {at_ns}");
        if value.allowed {
            for (record, &weight) in admitted[k as usize].iter_mut().zip(&weights) {
                if weight > 0 {
                    record.units.push((at_ns, weight));
                }
            }
        }
    }
    if !adjustments {
        for (k, records) in admitted.iter().enumerate() {
            for (i, record) in records.iter().enumerate() {
                record.check_windows(&format!("key {k}, limit {i}"));
            }
        }
    }
    Ok(())
}

/// Runtime quota changes keep the rolling-window promise: a greedy key (one unit as soon
/// as it is admitted) and two quieter ones go through a class burst raise, a key's own
/// lower quota and its removal, and a class lowering, at random times. Every answer equals
/// the model's (which converts debts as `docs/ratelimit.md` says), and no window of a
/// period holds more than the most generous quota in force during it allows.
///
/// # Errors
///
/// A store error the contract does not expect.
pub async fn quota_change_keeps_promise<H: Harness>(harness: &mut H, seed: u64) -> Result<(), RateLimitError> {
    let mut rng = Rng::new(seed ^ 0x5bd1_e995);
    let start = quota(60, 10)?;
    let changes = [
        Change::Class(quota(60, 40)?),
        Change::Key(0, quota(30, 5)?),
        Change::RemoveKey(0),
        Change::Class(quota(40, 20)?),
    ];
    let store = harness.store(&plan(&[(Unit::Requests, start)])?).await;
    let keys: Vec<H::Key> = (0..3).map(|i| harness.key(i)).collect();
    let mut limits = vec![LimitModel::new(start)];
    let mut admitted: Vec<Admitted> = (0..3)
        .map(|_| Admitted {
            units: Vec::new(),
            quotas: vec![(0, start)],
        })
        .collect();
    let mut last_ns = 0;
    let mut next_change = 0;
    let mut change_after = 1 + rng.upto(2 * 60);
    let mut checks = 0;
    while next_change < changes.len() || checks < change_after + 2 * 60 {
        if next_change < changes.len() && checks >= change_after {
            let at_ns = apply(&store, &keys, &mut limits, &mut admitted, changes[next_change]).await?;
            assert!(at_ns >= last_ns, "time went back from {last_ns} to {at_ns}");
            last_ns = at_ns;
            next_change += 1;
            change_after = checks + 1 + rng.upto(2 * 60);
        }
        // The greedy key most of the time; key 1 now and then; key 2 (never seen before
        // the first change) after it.
        let k: u64 = match rng.upto(9) {
            0 => 1,
            1 if next_change > 0 => 2,
            _ => 0,
        };
        let Stamped { at_ns, value } = store.check(&keys[k as usize], &[1]).await?;
        checks += 1;
        assert!(at_ns >= last_ns, "time went back from {last_ns} to {at_ns}");
        last_ns = at_ns;
        let expected = expect_check(&mut limits, k, &[1], at_ns);
        assert_eq!(
            value, expected,
            "check {checks} of key {k} at {at_ns}, after {next_change} changes"
        );
        if value.allowed {
            admitted[k as usize].units.push((at_ns, 1));
        } else if k == 0 {
            harness.wait_ns(value.retry_after_ns().unwrap_or(1)).await;
        }
    }
    for (k, record) in admitted.iter().enumerate() {
        record.check_windows(&format!("key {k} across quota changes"));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Change {
    Class(Quota),
    Key(u64, Quota),
    RemoveKey(u64),
}

async fn apply<K: Sync, S: AsyncStore<K>>(
    store: &S,
    keys: &[K],
    limits: &mut [LimitModel],
    admitted: &mut [Admitted],
    change: Change,
) -> Result<u64, RateLimitError> {
    let limit = &mut limits[0];
    let at_ns = match change {
        Change::Class(to) => {
            let at_ns = store.set_quota(0, to).await?.at_ns;
            limit.set_quota(to, at_ns);
            at_ns
        }
        Change::Key(k, to) => {
            let at_ns = store.set_key_quota(&keys[k as usize], 0, to).await?.at_ns;
            limit.set_key_quota(k, to, at_ns);
            at_ns
        }
        Change::RemoveKey(k) => {
            let Stamped { at_ns, value } = store.remove_key_quota(&keys[k as usize], 0).await?;
            let expected = limit.remove_key_quota(k, at_ns);
            assert_eq!(value, expected, "the quota a removal returns");
            at_ns
        }
    };
    for (k, record) in admitted.iter_mut().enumerate() {
        let quota = limit.quota(k as u64);
        assert_eq!(
            store.quota_for(&keys[k], 0).await?,
            quota,
            "key {k}'s quota after {change:?}"
        );
        record.quotas.push((at_ns, quota));
    }
    Ok(at_ns)
}
