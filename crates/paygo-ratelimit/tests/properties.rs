//! The limiter's promises, as property tests on a manual clock. Each property is also
//! stated in the docs of the type it tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use paygo_ratelimit::{
    Clock, Decision, ManualClock, MemoryStore, MemoryStoreOptions, MultiLimiter, Plan, Policy, PolicyName, Quota,
    QuotaOptions, RateLimiter, Store, Unit,
};
use proptest::prelude::*;

#[path = "support/model.rs"]
mod model;
use model::{Model, Timelines};

/// Failures are recorded next to this file (committed), and replayed first on every run.
/// Where failing cases are kept (committed, replayed first).
const REGRESSIONS: &str = "tests/properties.proptest-regressions";

/// Quotas that keep the rolling-window promise: small limits and periods so that a few
/// hundred arrivals span several periods.
fn window_quota() -> impl Strategy<Value = Quota> {
    (1u64..=40, 1u64..=5_000)
        .prop_flat_map(|(limit, period_ns)| (Just(limit), Just(period_ns), 1..=limit))
        .prop_map(|(limit, period_ns, burst)| {
            Quota::new(QuotaOptions {
                limit,
                period_ns,
                burst,
            })
            .unwrap()
        })
}

/// Any quota, with or without the promise.
fn any_quota() -> impl Strategy<Value = Quota> {
    prop_oneof![
        window_quota(),
        (1u64..=40, 1u64..=5_000, 1u64..=60).prop_map(|(limit, period_ns, burst)| {
            Quota::without_window_bound(QuotaOptions {
                limit,
                period_ns,
                burst,
            })
            .unwrap()
        }),
    ]
}

fn policy(quota: Quota) -> Policy {
    Policy {
        name: PolicyName::new("p").unwrap(),
        unit: Unit::Requests,
        quota,
    }
}

fn limiter(quota: Quota, clock: &ManualClock) -> RateLimiter<u64, ManualClock> {
    RateLimiter::with_clock_and_store(policy(quota), clock.clone(), MemoryStore::new())
}

/// Arrivals: (gap before it in ns, weight as a fraction of the burst in percent).
fn arrivals() -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop::collection::vec(
        (
            prop_oneof![3 => Just(0u64), 5 => 0u64..50, 2 => 0u64..3_000],
            0u64..=100,
        ),
        1..300,
    )
}

/// Runs arrivals against a fresh key (starting at `start_ns`) and returns the admitted
/// (time, weight) pairs.
fn run(quota: Quota, start_ns: u64, arrivals: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let clock = ManualClock::new(start_ns);
    let limiter = limiter(quota, &clock);
    let mut admitted = Vec::new();
    for &(gap, percent) in arrivals {
        let now = clock.advance_ns(gap);
        let weight = (quota.burst() * percent).div_ceil(100).max(1);
        let decision = limiter.check_n(&1, weight).unwrap();
        if decision.allowed {
            admitted.push((now, weight));
        }
    }
    admitted
}

/// The most units admitted in any half-open window `[t, t + window_ns)`; the worst
/// window starts at an admission.
fn max_in_window(admitted: &[(u64, u64)], window_ns: u64) -> u64 {
    let mut best = 0;
    let mut end = 0;
    let mut sum = 0;
    for start in 0..admitted.len() {
        while end < admitted.len() && admitted[end].0 < admitted[start].0 + window_ns {
            sum += admitted[end].1;
            end += 1;
        }
        best = best.max(sum);
        sum -= admitted[start].1;
    }
    best
}

proptest! {
    #![proptest_config(paygo_testkit::proptest_config(256, REGRESSIONS))]

    /// The rolling-window promise: over any window of the period, never more than the
    /// limit, a fresh key's first period included; and any quota stays within its stated
    /// `max_admitted_in_window_ns` for any window length.
    #[test]
    fn never_more_than_the_quota_in_any_window(
        quota in window_quota(),
        start_ns in prop_oneof![Just(0u64), 0u64..1_000_000_000],
        arrivals in arrivals(),
    ) {
        let admitted = run(quota, start_ns, &arrivals);
        prop_assert!(max_in_window(&admitted, quota.period_ns()) <= quota.limit());
    }

    #[test]
    fn any_quota_within_its_window_bound(
        quota in any_quota(),
        arrivals in arrivals(),
        window_ns in 1u64..20_000,
    ) {
        let admitted = run(quota, 0, &arrivals);
        prop_assert!(max_in_window(&admitted, window_ns) <= quota.max_admitted_in_window_ns(window_ns));
    }

    /// The bound is tight: a fresh key taking everything it can gets exactly
    /// `max_admitted_per_period()` in its first period.
    #[test]
    fn greedy_fresh_key_reaches_the_bound(quota in any_quota(), start_ns in 0u64..1_000_000) {
        let clock = ManualClock::new(start_ns);
        let limiter = limiter(quota, &clock);
        let mut admitted = 0;
        while clock.now_ns() < start_ns + quota.period_ns() {
            let d = limiter.check(&9).unwrap();
            if d.allowed {
                admitted += 1;
            } else {
                let retry = d.retry_after_ns.unwrap();
                prop_assert!(retry > 0);
                clock.advance_ns(retry);
            }
        }
        prop_assert_eq!(admitted, quota.max_admitted_per_period());
    }

    /// A client at exactly the quota's sustained rate (one unit per emission interval, or
    /// `n` units every `n` intervals) is never refused, whatever its phase.
    #[test]
    fn exact_rate_is_never_refused(
        quota in any_quota(),
        start_ns in 0u64..1_000_000,
        percent in 1u64..=100,
        count in 1usize..400,
    ) {
        let clock = ManualClock::new(start_ns);
        let limiter = limiter(quota, &clock);
        let weight = (quota.burst() * percent).div_ceil(100);
        for _ in 0..count {
            prop_assert!(limiter.check_n(&3, weight).unwrap().allowed);
            clock.advance_ns(weight * quota.emission_interval_ns());
        }
    }

    /// retry-after is exact: a nanosecond before it the same check is refused, at it the
    /// check is admitted. remaining is exact: that many more units are admitted at once,
    /// and one more is refused.
    #[test]
    fn retry_after_and_remaining_are_exact(
        quota in any_quota(),
        arrivals in arrivals(),
        percent in 1u64..=100,
    ) {
        let clock = ManualClock::new(0);
        let limiter = limiter(quota, &clock);
        for &(gap, p) in &arrivals {
            clock.advance_ns(gap);
            let weight = (quota.burst() * p).div_ceil(100).max(1);
            limiter.check_n(&5, weight).unwrap();
        }
        // remaining, from a peek and from a check.
        let now = clock.now_ns();
        let peek = limiter.peek_n_at(&5, 0, now).unwrap();
        let fresh = limiter.peek_n_at(&5, peek.remaining, now).unwrap();
        prop_assert!(fresh.allowed);
        if peek.remaining < quota.burst() {
            prop_assert!(!limiter.peek_n_at(&5, peek.remaining + 1, now).unwrap().allowed);
        }
        // retry-after for a weight that is refused now.
        let weight = (quota.burst() * percent).div_ceil(100);
        let d = limiter.peek_n_at(&5, weight, now).unwrap();
        if let Some(retry) = d.retry_after_ns {
            prop_assert!(!d.allowed);
            prop_assert!(retry > 0);
            prop_assert!(!limiter.peek_n_at(&5, weight, now + retry - 1).unwrap().allowed);
            let later = limiter.check_n_at(&5, weight, now + retry).unwrap();
            prop_assert!(later.allowed);
        } else {
            prop_assert!(d.allowed);
            let check = limiter.check_n_at(&5, weight, now).unwrap();
            prop_assert!(check.allowed);
            // After the check, `remaining` single units more fit, and not one more.
            for _ in 0..check.remaining {
                prop_assert!(limiter.check_n_at(&5, 1, now).unwrap().allowed);
            }
            prop_assert!(!limiter.check_n_at(&5, 1, now).unwrap().allowed);
        }
    }

    /// The limiter agrees with a reference model, a leaky bucket of "debt" written
    /// independently in 128-bit arithmetic, through checks, peeks, adjustments and
    /// quota changes at runtime (which convert the debt; `tests/requota.rs` has more).
    #[test]
    fn matches_the_reference_model(
        quotas in prop::collection::vec(any_quota(), 1..4),
        ops in prop::collection::vec((0u64..4_000, 0u8..10, 0u64..=100, 0usize..4), 1..200),
    ) {
        let clock = ManualClock::new(0);
        let limiter = limiter(quotas[0], &clock);
        let mut model = Model { debt_ns: 0, at_ns: 0 };
        // A key never checked: what the class floor stands for.
        let mut unseen = model;
        let mut quota = quotas[0];
        let mut timelines = Timelines::new(quota);
        for (gap, op, percent, q) in ops {
            let now = clock.advance_ns(gap);
            model.drain(now);
            unseen.drain(now);
            let weight = (quota.burst() * percent).div_ceil(100);
            match op {
                0..=5 => {
                    let got = limiter.check_n(&11, weight).unwrap();
                    let want = model.check(&quota, weight, true);
                    prop_assert_eq!(got, want);
                }
                6 => {
                    let got = limiter.peek_n(&11, weight).unwrap();
                    let want = model.check(&quota, weight, false);
                    prop_assert_eq!(got, want);
                }
                7 | 8 => {
                    let signed = i64::try_from(weight).unwrap();
                    let delta = if op == 7 { -signed } else { signed };
                    let got = limiter.adjust(&11, delta).unwrap();
                    model.adjust_above(&quota, delta, unseen.debt_ns);
                    prop_assert_eq!(got.reset_ns, model.debt_ns as u64);
                }
                _ => {
                    quota = quotas[q % quotas.len()];
                    limiter.set_quota(quota).unwrap();
                    model.debt_ns = timelines.converted(model.debt_ns, &quota);
                    unseen.debt_ns = timelines.converted(unseen.debt_ns, &quota);
                    timelines = timelines.then(quota);
                }
            }
        }
    }

    /// Several limits: a refusal consumes nothing from any limit, and an admission
    /// consumes from every limit.
    #[test]
    fn multi_limit_is_all_or_nothing(
        quotas in prop::collection::vec(any_quota(), 1..4),
        ops in prop::collection::vec((0u64..2_000, prop::collection::vec(0u64..=100, 4)), 1..100),
    ) {
        let plan = Plan {
            name: "test".to_owned(),
            policies: quotas.iter().map(|q| policy(*q)).collect(),
        };
        let clock = ManualClock::new(0);
        let limiter: MultiLimiter<u64, _> = MultiLimiter::with_clock(&plan, clock.clone());
        for (gap, percents) in ops {
            let now = clock.advance_ns(gap);
            let weights: Vec<u64> = quotas
                .iter()
                .zip(&percents)
                .map(|(q, p)| (q.burst() * p).div_ceil(100))
                .collect();
            let before: Vec<Decision> = limiter.limiters().iter().map(|l| l.peek_n_at(&1, 0, now).unwrap()).collect();
            // A weight of 0 skips its limit, even one in debt (the retries below admit
            // checks at later times, which can leave a debt beyond the capacity now).
            let each_admits = limiter
                .limiters()
                .iter()
                .zip(&weights)
                .all(|(l, w)| *w == 0 || l.peek_n_at(&1, *w, now).unwrap().allowed);
            let d = limiter.check_weights(&1, &weights).unwrap();
            prop_assert_eq!(d.allowed, each_admits);
            let after: Vec<Decision> = limiter.limiters().iter().map(|l| l.peek_n_at(&1, 0, now).unwrap()).collect();
            for ((b, a), (q, w)) in before.iter().zip(&after).zip(quotas.iter().zip(&weights)) {
                let consumed = if d.allowed { w * q.emission_interval_ns() } else { 0 };
                prop_assert_eq!(a.reset_ns, b.reset_ns + consumed);
            }
            if !d.allowed {
                let retry = d.retry_after_ns().unwrap();
                prop_assert!(limiter.check_weights_at(&1, &weights, now + retry).unwrap().allowed);
            }
        }
    }
}

proptest! {
    #![proptest_config(paygo_testkit::proptest_config(256, REGRESSIONS))]

    /// Dropping full keys changes no answer: a store that sweeps on every insertion and
    /// is evicted at random times answers like a model that remembers every key.
    #[test]
    fn eviction_changes_no_answer(
        quota in any_quota(),
        ops in prop::collection::vec((0u64..3_000, 0u64..6, 0u64..=100, any::<bool>()), 1..300),
    ) {
        let store: MemoryStore<u64> = MemoryStore::with_options(MemoryStoreOptions {
            shards: 2,
            sweep_len_min: 1,
            idle_ns: 0,
        });
        let mut models: Vec<Model> = (0..6).map(|_| Model { debt_ns: 0, at_ns: 0 }).collect();
        let mut now = 0;
        for (gap, key, percent, evict) in ops {
            now += gap;
            if evict {
                store.evict_full(now);
            }
            let model = &mut models[key as usize];
            model.drain(now);
            let weight = (quota.burst() * percent).div_ceil(100);
            let got = store.check_and_update(&key, now, &quota, weight).unwrap();
            prop_assert_eq!(got, model.check(&quota, weight, true));
        }
        // Whatever is still held is in debt, or was full for less than one sweep.
        store.evict_full(now);
        let in_debt = models
            .iter_mut()
            .map(|m| {
                m.drain(now);
                m.debt_ns
            })
            .filter(|debt| *debt > 0)
            .count();
        prop_assert_eq!(store.len(), in_debt);
    }
}

proptest! {
    #![proptest_config(paygo_testkit::proptest_config(512, REGRESSIONS))]

    /// The store's hasher tells distinct byte strings apart (every length, every tail
    /// byte), and is a function of its input.
    #[test]
    fn hasher_separates_distinct_strings(
        a in prop::collection::vec(any::<u8>(), 0..40),
        b in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        use std::hash::BuildHasher;
        let hasher = paygo_ratelimit::FoldBuildHasher::with_seeds(7, 11);
        prop_assert_eq!(hasher.hash_one(&a), hasher.hash_one(a.clone()));
        if a != b {
            prop_assert_ne!(hasher.hash_one(&a), hasher.hash_one(&b));
            let mut longer = a.clone();
            longer.push(0);
            prop_assert_ne!(hasher.hash_one(&a), hasher.hash_one(&longer));
        }
    }
}

proptest! {
    #![proptest_config(paygo_testkit::proptest_config(256, REGRESSIONS))]

    /// The public step functions (`paygo_ratelimit::gcra`, what a Redis script is
    /// golden-tested against) are the reference model: a check from any state at any
    /// Unix-scale time decides, reports and writes what the model does; an adjustment
    /// writes the model's debt; a key is full exactly when its TAT is not after the time.
    #[test]
    fn the_public_step_functions_are_the_model(
        quota in any_quota(),
        now_ns in 0u64..=2_000_000_000_000_000_000,
        ahead_ns in prop_oneof![Just(0u64), 0u64..20_000, 0u64..400_000],
        behind in any::<bool>(),
        weight_pct in 0u64..=100,
        delta in -200i64..=200,
    ) {
        use paygo_ratelimit::gcra;
        // A TAT behind the time (full) or ahead of it (in debt, possibly past the capacity).
        let tat = if behind { now_ns.saturating_sub(ahead_ns) } else { now_ns + ahead_ns };
        let weight = quota.burst() * weight_pct / 100;
        let debt_ns = u128::from(tat.saturating_sub(now_ns));
        let mut model = Model { debt_ns, at_ns: now_ns };
        let expected = model.check(&quota, weight, true);
        let outcome = gcra::check(tat, now_ns, &quota, weight).unwrap();
        prop_assert_eq!(outcome.decision, expected);
        let written = (expected.allowed && weight > 0).then(|| now_ns + model.debt_ns as u64);
        prop_assert_eq!(outcome.new_tat, written);
        prop_assert_eq!(gcra::is_full(tat, now_ns), debt_ns == 0);

        let (new_tat, decision) = gcra::adjust(tat, now_ns, &quota, delta).unwrap();
        let mut model = Model { debt_ns, at_ns: now_ns };
        model.adjust(&quota, delta);
        prop_assert_eq!(new_tat, now_ns + model.debt_ns as u64);
        prop_assert_eq!(decision, gcra::decision(&quota, true, model.debt_ns as u64, None));
        prop_assert!(decision.allowed && decision.retry_after_ns.is_none());
    }
}
