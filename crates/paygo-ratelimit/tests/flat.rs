//! The lock-free `FlatStore`: a reference model through growth, sweeps and evictions,
//! a hammer test that races checks with table rebuilds, a million keys, churn, and the
//! key types.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::sync::Arc;
use std::thread;

use paygo_ratelimit::{
    FlatStore, FlatStoreOptions, ManualClock, Policy, PolicyName, Quota, QuotaOptions, RateLimitError, RateLimiter,
    Store, Unit,
};
use proptest::prelude::*;

#[path = "support/model.rs"]
mod model;
use model::Model;

/// Where failing cases are kept (committed, replayed first).
const REGRESSIONS: &str = "tests/flat.proptest-regressions";

fn any_quota() -> impl Strategy<Value = Quota> {
    (1u64..=50, 1u64..=5_000)
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

fn small_store<K: paygo_ratelimit::FlatKey + ?Sized>() -> FlatStore<K> {
    FlatStore::with_options(FlatStoreOptions { shards: 2, idle_ns: 0 })
}

proptest! {
    #![proptest_config(paygo_testkit::proptest_config(64, REGRESSIONS))]

    /// Hundreds of keys (so shards grow, sweep and rebuild in place), checks, peeks,
    /// adjustments and evictions: every answer matches a model that never forgets a key.
    #[test]
    fn matches_the_reference_model_through_growth_and_eviction(
        quota in any_quota(),
        ops in prop::collection::vec((0u64..400, 0u64..300, 0u8..12, 0u64..=100), 1..600),
    ) {
        let store: FlatStore<u64> = small_store();
        let mut models = vec![Model { debt_ns: 0, at_ns: 0 }; 300];
        let mut now = 0;
        for (gap, key, op, percent) in ops {
            now += gap;
            let model = &mut models[key as usize];
            model.drain(now);
            let weight = (quota.burst() * percent).div_ceil(100);
            match op {
                0..=7 => {
                    let got = store.check_and_update(&key, now, &quota, weight).unwrap();
                    prop_assert_eq!(got, model.check(&quota, weight, true));
                }
                8 => {
                    let got = store.peek(&key, now, &quota, weight).unwrap();
                    prop_assert_eq!(got, model.check(&quota, weight, false));
                }
                9 | 10 => {
                    let signed = i64::try_from(weight).unwrap();
                    let delta = if op == 9 { -signed } else { signed };
                    let got = store.adjust(&key, now, &quota, delta).unwrap();
                    model.adjust(&quota, delta);
                    prop_assert_eq!(u128::from(got.reset_ns), model.debt_ns);
                }
                _ => {
                    store.evict_full(now);
                }
            }
        }
        store.evict_full(now);
        for model in &mut models {
            model.drain(now);
        }
        let in_debt = models.iter().filter(|m| m.debt_ns > 0).count();
        prop_assert_eq!(store.len(), in_debt);
    }

    /// The same with string keys (128-bit fingerprints).
    #[test]
    fn string_keys_match_the_model(
        quota in any_quota(),
        ops in prop::collection::vec((0u64..400, 0usize..100, 0u64..=100), 1..300),
    ) {
        let store: FlatStore<String> = small_store();
        let names: Vec<String> = (0..100).map(|i| format!("sk-{i}")).collect();
        let mut models = vec![Model { debt_ns: 0, at_ns: 0 }; 100];
        let mut now = 0;
        for (gap, key, percent) in ops {
            now += gap;
            let model = &mut models[key];
            model.drain(now);
            let weight = (quota.burst() * percent).div_ceil(100);
            let got = store.check_and_update(&names[key], now, &quota, weight).unwrap();
            prop_assert_eq!(got, model.check(&quota, weight, true));
        }
    }
}

/// Threads race checks of shared keys with inserts that grow and rebuild the tables. The
/// time is frozen, so each shared key admits exactly its burst: a lost update would admit
/// more, a duplicated key would admit twice the burst.
#[test]
fn hammer_with_growth_admits_exactly_the_burst() {
    const SHARED: u64 = 64;
    let quota = Quota::per_hour(10_000, 50).unwrap();
    let store: Arc<FlatStore<u64>> = Arc::new(FlatStore::with_options(FlatStoreOptions { shards: 2, idle_ns: 0 }));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                let mut admitted = vec![0u64; SHARED as usize];
                for i in 0..40_000u64 {
                    let key = i % SHARED;
                    if store.check_and_update(&key, 1, &quota, 1).unwrap().allowed {
                        admitted[key as usize] += 1;
                    }
                    // A fresh key per step: shards keep growing under the checks.
                    store
                        .check_and_update(&(1_000_000 + t * 100_000 + i), 1, &quota, 1)
                        .unwrap();
                }
                admitted
            })
        })
        .collect();
    let mut totals = vec![0u64; SHARED as usize];
    for handle in threads {
        for (total, n) in totals.iter_mut().zip(handle.join().unwrap()) {
            *total += n;
        }
    }
    assert!(totals.iter().all(|&n| n == 50), "{totals:?}");
    assert_eq!(store.len(), SHARED as usize + 4 * 40_000);
}

/// A million keys: all held, the tables cost what `docs/ratelimit.md` says, and once the
/// keys are full again eviction drops them all and their slots are reused.
#[test]
fn a_million_keys_then_eviction() {
    const KEYS: u64 = 1_000_000;
    let quota = Quota::per_second(10, 10).unwrap();
    let store: FlatStore<u64> = FlatStore::new();
    for key in 0..KEYS {
        assert!(store.check_and_update(&key, 0, &quota, 1).unwrap().allowed);
    }
    assert_eq!(store.len(), KEYS as usize);
    let bytes = store.table_bytes();
    let per_key = bytes as f64 / KEYS as f64;
    println!("{KEYS} u64 keys: {bytes} table bytes, {per_key:.1} bytes per key");
    // 16-byte slots at a load between 40% and 81%, plus outgrown tables (at most as much).
    assert!((19.0..=80.0).contains(&per_key), "{per_key} bytes per key");
    assert_eq!(store.evict_full(quota.emission_interval_ns() - 1), 0);
    assert_eq!(store.evict_full(quota.emission_interval_ns()), KEYS as usize);
    assert!(store.is_empty());
    // The slots are reused: a second million keys needs no more memory.
    for key in KEYS..2 * KEYS {
        store.check_and_update(&key, 0, &quota, 1).unwrap();
    }
    assert_eq!(store.table_bytes(), bytes);
}

/// Keys that come and go are swept by inserts alone: memory stays bounded.
#[test]
fn churn_of_a_million_keys_stays_bounded() {
    let quota = Quota::per_second(1_000, 1).unwrap(); // full again 1 ms after a check
    let store: FlatStore<u64> = FlatStore::with_options(FlatStoreOptions {
        shards: 16,
        idle_ns: 1_000_000,
    });
    let mut largest = 0;
    for key in 0..1_000_000u64 {
        store.check_and_update(&key, key * 100, &quota, 1).unwrap();
        if key % 10_000 == 0 {
            largest = largest.max(store.len());
        }
    }
    assert!(largest <= 60_000, "{largest} keys held");
    // About 20,000 keys held at once: well under the million seen.
    assert!(store.table_bytes() < 4_000_000, "{} bytes", store.table_bytes());
}

#[test]
fn key_types_and_limits() {
    let quota = Quota::per_second(3, 3).unwrap();
    let store: Box<dyn Store<String>> = Box::new(FlatStore::<String>::new());
    for _ in 0..3 {
        assert!(store.check_and_update(&"k".to_owned(), 0, &quota, 1).unwrap().allowed);
    }
    assert!(!store.check_and_update(&"k".to_owned(), 0, &quota, 1).unwrap().allowed);
    assert!(
        store
            .check_and_update(&"other".to_owned(), 0, &quota, 3)
            .unwrap()
            .allowed
    );

    let store: FlatStore<str> = FlatStore::new();
    assert!(store.check_and_update("a", 0, &quota, 3).unwrap().allowed);
    assert!(!store.check_and_update("a", 0, &quota, 1).unwrap().allowed);

    // u128 ids that differ only in their high half are distinct keys.
    let store: FlatStore<u128> = FlatStore::new();
    assert!(store.check_and_update(&1, 0, &quota, 3).unwrap().allowed);
    assert!(store.check_and_update(&(1 | (1 << 64)), 0, &quota, 3).unwrap().allowed);
    assert!(!store.check_and_update(&1, 0, &quota, 1).unwrap().allowed);
    // A refused, zero-weight or give-back operation on a fresh key stores nothing.
    assert!(store.check_and_update(&7, 0, &quota, 0).unwrap().allowed);
    assert!(store.check_and_update(&8, 0, &quota, 4).is_err());
    assert!(store.adjust(&9, 0, &quota, -2).unwrap().allowed);
    assert!(store.peek(&10, 0, &quota, 1).unwrap().allowed);
    assert_eq!(store.len(), 2);

    // TATs are held below 2^62 ns (146 years; the top two bits are the markers and the
    // change stamp).
    let store: FlatStore<u64> = FlatStore::new();
    let last = (1 << 62) - 1 - quota.emission_interval_ns();
    assert!(store.check_and_update(&1, last, &quota, 1).unwrap().allowed);
    assert_eq!(
        store.check_and_update(&2, last + 1, &quota, 1),
        Err(RateLimitError::TimeOverflow { now_ns: last + 1 })
    );
}

/// The limiter on a `FlatStore`, with per-key overrides, as the crate docs show for the
/// `MemoryStore`.
#[test]
fn rate_limiter_on_a_flat_store() {
    let clock = ManualClock::new(0);
    let policy = Policy {
        name: PolicyName::new("payg").unwrap(),
        unit: Unit::Requests,
        quota: Quota::pay_as_you_go(),
    };
    let limiter: RateLimiter<u64, ManualClock, FlatStore<u64>> =
        RateLimiter::with_clock_and_store(policy, clock.clone(), FlatStore::new());
    for _ in 0..60 {
        assert!(limiter.check(&7).unwrap().allowed);
    }
    assert_eq!(limiter.check(&7).unwrap().retry_after_ns, Some(200_657_712));
    clock.advance_ns(200_657_711);
    assert!(!limiter.check(&7).unwrap().allowed);
    clock.advance_ns(1);
    assert!(limiter.check(&7).unwrap().allowed);
    limiter
        .set_key_quota(8, Quota::per_hour(100_000, 1_000).unwrap())
        .unwrap();
    assert!(limiter.check_n(&8, 1_000).unwrap().allowed);
}
