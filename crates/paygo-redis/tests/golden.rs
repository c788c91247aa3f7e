//! Golden tests: the script against the Rust it re-implements, on the real server, through
//! the same random sequences of (time, weight, quota), with the time given to the script
//! (`RedisStore::check_at` and friends, feature `testing`):
//!
//! - every check and adjustment equals the GCRA step functions of `paygo_ratelimit::gcra`
//!   on a TAT the test keeps (quotas of every shape the store accepts, weights above the
//!   burst included);
//! - every answer of a store with two limits, three keys, and runtime quota changes of the
//!   default and of single keys equals the in-process store's on a manual clock at the
//!   same times.
//!
//! Needs `PAYGO_TEST_REDIS_URL` (skipped with a printed reason when unset, never in CI).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod support;

use paygo_ratelimit::gcra::{self, Outcome};
use paygo_ratelimit::{
    AsyncStore, InProcessStore, ManualClock, Plan, Policy, PolicyName, Quota, QuotaOptions, RateLimitError, Unit,
};
use paygo_redis::{CAPACITY_NS_MAX, RedisOptions, RedisStore, RedisStoreError};
use proptest::prelude::*;

/// 2027: a Unix time in nanoseconds, well above 2^53 (the script must split it).
const T0: u64 = 1_800_000_000_123_456_789;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn plan(quotas: &[(Unit, Quota)]) -> Plan {
    Plan {
        name: "golden".into(),
        policies: quotas
            .iter()
            .enumerate()
            .map(|(i, &(unit, quota))| Policy {
                name: PolicyName::new(&format!("l{i}")).unwrap(),
                unit,
                quota,
            })
            .collect(),
    }
}

fn quota_strategy() -> impl Strategy<Value = Result<Quota, RateLimitError>> {
    (1u64..=5_000, 0u64..=100, 1_000u64..=86_400_000_000_000, any::<bool>()).prop_map(
        |(limit, burst_pct, period_ns, window)| {
            let burst = (limit * burst_pct / 100).max(1);
            let options = QuotaOptions {
                limit,
                period_ns,
                burst,
            };
            if window {
                Quota::new(options)
            } else {
                Quota::without_window_bound(options)
            }
        },
    )
}

#[derive(Debug, Clone)]
enum Step {
    Wait(u64),
    Check(u64),
    Adjust(i64),
}

fn steps() -> impl Strategy<Value = Vec<(u64, u8, u64, i64)>> {
    // (wait in 1/64ths of an interval, what, weight in 1/64ths of the burst + a bit, delta)
    prop::collection::vec((0u64..=256, 0u8..10, 0u64..=70, -80i64..=80), 1..60)
}

fn decode(quota: &Quota, raw: &[(u64, u8, u64, i64)]) -> Vec<Step> {
    let t = quota.emission_interval_ns();
    // Bursts here are at most 5,000.
    let burst = i64::try_from(quota.burst()).unwrap();
    raw.iter()
        .map(|&(wait, what, weight, delta)| match what {
            0..=2 => Step::Wait((t / 64).max(1).saturating_mul(wait)),
            3..=7 => Step::Check(quota.burst() * weight / 64 + u64::from(weight > 64)),
            _ => Step::Adjust(delta.clamp(-burst * 2, burst) / 4),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_script_takes_the_step_functions_decisions(quota in quota_strategy(), raw in steps()) {
        let Some(url) = support::url() else { return Ok(()) };
        let Ok(quota) = quota else { return Ok(()) };
        let _lock = support::RedisLock::shared();
        let prefix = support::TestPrefix::new(&url, "golden-steps");
        runtime().block_on(async {
            let options = RedisOptions::new(url.clone(), prefix.prefix.clone());
            let opened = RedisStore::<u64>::open(options, &plan(&[(Unit::Tokens, quota)])).await;
            if quota.capacity_ns() > CAPACITY_NS_MAX {
                match opened {
                    Err(RedisStoreError::Plan(RateLimitError::QuotaExceedsStore { .. })) => return,
                    other => panic!("a quota above the store's capacity is refused: {other:?}"),
                }
            }
            let store = opened.expect("the store opens");
            let (mut now, mut tat) = (T0, 0u64);
            for (i, step) in decode(&quota, &raw).into_iter().enumerate() {
                match step {
                    Step::Wait(ns) => now += ns,
                    Step::Check(weight) => {
                        let got = store.check_at(&7, &[weight], now).await;
                        match gcra::check(tat, now, &quota, weight) {
                            Ok(Outcome { new_tat, mut decision }) => {
                                // A weight of 0 skips its limit (the AsyncStore contract):
                                // the key's state, admitted, even past its capacity.
                                if weight == 0 {
                                    decision.allowed = true;
                                    decision.retry_after_ns = None;
                                }
                                let got = got.expect("the script answers");
                                assert_eq!(got.at_ns, now);
                                assert_eq!(got.value.decisions[0], decision, "step {i}: check {weight} at {now}");
                                assert_eq!(got.value.allowed, decision.allowed);
                                tat = new_tat.unwrap_or(tat);
                            }
                            Err(expected) => assert_eq!(got, Err(expected), "step {i}: check {weight}"),
                        }
                    }
                    Step::Adjust(delta) => {
                        let got = store.adjust_at(&7, &[delta], now).await;
                        let (new_tat, decision) = gcra::adjust(tat, now, &quota, delta).unwrap();
                        let debt = new_tat - now;
                        if debt > CAPACITY_NS_MAX {
                            assert_eq!(got, Err(RateLimitError::AdjustmentTooLarge { delta }), "step {i}");
                            continue;
                        }
                        assert_eq!(got.expect("the script answers").value[0], decision, "step {i}: adjust {delta} at {now}");
                        tat = new_tat;
                    }
                }
            }
        });
    }
}

#[derive(Debug, Clone)]
enum Op {
    Wait(u64),
    Check(u64, [u64; 2]),
    Adjust(u64, [i64; 2]),
    SetQuota(usize, Quota),
    SetKeyQuota(u64, usize, Quota),
    RemoveKeyQuota(u64, usize),
    QuotaFor(u64, usize),
}

const PERIOD_NS: u64 = 1_000_000_000;

fn small_quota() -> impl Strategy<Value = Quota> {
    (5u64..=60, 1u64..=100).prop_map(|(limit, pct)| {
        let burst = (limit * pct / 100).max(1);
        Quota::new(QuotaOptions {
            limit,
            period_ns: PERIOD_NS,
            burst,
        })
        .unwrap()
    })
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        6 => (1u64..=60_000_000).prop_map(Op::Wait),
        10 => (0u64..3, 0u64..=8, 0u64..=8).prop_map(|(k, a, b)| Op::Check(k, [a, b])),
        3 => (0u64..3, -6i64..=6, -6i64..=6).prop_map(|(k, a, b)| Op::Adjust(k, [a, b])),
        1 => (0usize..2, small_quota()).prop_map(|(l, q)| Op::SetQuota(l, q)),
        1 => (0u64..3, 0usize..2, small_quota()).prop_map(|(k, l, q)| Op::SetKeyQuota(k, l, q)),
        1 => (0u64..3, 0usize..2).prop_map(|(k, l)| Op::RemoveKeyQuota(k, l)),
        1 => (0u64..3, 0usize..2).prop_map(|(k, l)| Op::QuotaFor(k, l)),
    ];
    prop::collection::vec(op, 1..120)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn the_script_answers_as_the_in_process_store(a in small_quota(), b in small_quota(), ops in ops()) {
        let Some(url) = support::url() else { return Ok(()) };
        let _lock = support::RedisLock::shared();
        let prefix = support::TestPrefix::new(&url, "golden-store");
        let plan = plan(&[(Unit::Requests, a), (Unit::Tokens, b)]);
        runtime().block_on(async {
            let clock = ManualClock::new(T0);
            let reference: InProcessStore<u64, _> = InProcessStore::with_clock(&plan, clock.clone());
            let store = RedisStore::<u64>::open(RedisOptions::new(url.clone(), prefix.prefix.clone()), &plan)
                .await
                .expect("the store opens");
            for (i, op) in ops.into_iter().enumerate() {
                let now = clock.now_ns();
                match op {
                    Op::Wait(ns) => {
                        clock.advance_ns(ns);
                    }
                    Op::Check(k, w) => assert_eq!(
                        store.check_at(&k, &w, now).await,
                        reference.check(&k, &w).await,
                        "op {i}: check {w:?} of key {k}"
                    ),
                    Op::Adjust(k, d) => assert_eq!(
                        store.adjust_at(&k, &d, now).await,
                        reference.adjust(&k, &d).await,
                        "op {i}: adjust {d:?} of key {k}"
                    ),
                    Op::SetQuota(l, q) => assert_eq!(
                        store.set_quota_at(l, q, now).await,
                        reference.set_quota(l, q).await,
                        "op {i}: set_quota {l} {q:?}"
                    ),
                    Op::SetKeyQuota(k, l, q) => assert_eq!(
                        store.set_key_quota_at(&k, l, q, now).await,
                        reference.set_key_quota(&k, l, q).await,
                        "op {i}: set_key_quota {k} {l} {q:?}"
                    ),
                    Op::RemoveKeyQuota(k, l) => assert_eq!(
                        store.remove_key_quota_at(&k, l, now).await,
                        reference.remove_key_quota(&k, l).await,
                        "op {i}: remove_key_quota {k} {l}"
                    ),
                    Op::QuotaFor(k, l) => assert_eq!(
                        store.quota_for(&k, l).await,
                        reference.quota_for(&k, l).await,
                        "op {i}: quota_for {k} {l}"
                    ),
                }
            }
        });
    }
}

use paygo_ratelimit::Clock as _;
