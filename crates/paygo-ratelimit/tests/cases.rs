//! Worked cases: bad quotas, the Pay As You Go plan, runtime changes, weighted limits,
//! headers, many threads and a million keys.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::sync::Arc;
use std::thread;

use paygo_ratelimit::{
    Clock, DirectLimiter, ManualClock, MemoryStore, MemoryStoreOptions, MultiLimiter, NS_PER_HOUR, NS_PER_MINUTE,
    NS_PER_SECOND, Plan, Policy, PolicyName, Quota, QuotaOptions, RateLimitError, RateLimiter, Store, SystemClock,
    Unit, headers,
};

fn policy(name: &str, unit: Unit, quota: Quota) -> Policy {
    Policy {
        name: PolicyName::new(name).unwrap(),
        unit,
        quota,
    }
}

/// A multi-limiter on `clock` for a plan of `policies`.
fn multi<K: std::hash::Hash + Eq + Clone + Send + Sync>(
    policies: Vec<Policy>,
    clock: &ManualClock,
) -> MultiLimiter<K, ManualClock> {
    let plan = Plan {
        name: "p".to_owned(),
        policies,
    };
    MultiLimiter::with_clock(&plan, clock.clone())
}

/// The value of the header `name`.
fn header(headers: &[(&'static str, String)], name: &str) -> Option<String> {
    headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone())
}

fn manual<K: std::hash::Hash + Eq + Clone + Send + Sync>(
    quota: Quota,
    clock: &ManualClock,
) -> RateLimiter<K, ManualClock> {
    RateLimiter::with_clock_and_store(policy("p", Unit::Requests, quota), clock.clone(), MemoryStore::new())
}

#[test]
fn bad_quotas_are_errors() {
    let q = |limit, period_ns, burst| {
        Quota::new(QuotaOptions {
            limit,
            period_ns,
            burst,
        })
    };
    assert_eq!(q(0, 1, 1), Err(RateLimitError::ZeroLimit));
    assert_eq!(q(1, 0, 1), Err(RateLimitError::ZeroPeriod));
    assert_eq!(q(1, 1, 0), Err(RateLimitError::ZeroBurst));
    assert_eq!(
        q(18_000, NS_PER_HOUR, 18_001),
        Err(RateLimitError::BurstExceedsLimit {
            burst: 18_001,
            limit: 18_000
        })
    );
    assert!(matches!(
        q(u64::MAX, u64::MAX, u64::MAX),
        Err(RateLimitError::QuotaTooLarge { .. })
    ));
    // The opt-out accepts a burst above the limit, and still refuses zeros.
    let opt_out = Quota::without_window_bound(QuotaOptions {
        limit: 10,
        period_ns: NS_PER_SECOND,
        burst: 20,
    })
    .unwrap();
    assert!(!opt_out.keeps_window_bound());
    assert_eq!(opt_out.max_admitted_per_period(), 29);
    assert_eq!(
        Quota::without_window_bound(QuotaOptions {
            limit: 10,
            period_ns: 0,
            burst: 1
        }),
        Err(RateLimitError::ZeroPeriod)
    );
    let message = q(5, 1, 6).unwrap_err().to_string();
    assert!(message.starts_with("burst 6 is larger than the limit 5"), "{message}");
    assert!(PolicyName::new("").is_err());
    assert!(PolicyName::new("pay as you go").is_err());
    assert!(PolicyName::new(&"x".repeat(65)).is_err());
}

#[test]
fn pay_as_you_go_keeps_18000_per_rolling_hour() {
    let payg = Quota::pay_as_you_go();
    assert_eq!(payg, Quota::per_hour(18_000, 60).unwrap());
    assert_eq!(payg.emission_interval_ns(), 200_657_712);
    assert_eq!(payg.max_admitted_per_period(), 18_000);
    // One more unit of burst would break the promise at this interval...
    assert_eq!(payg.max_admitted_per_period() - payg.burst() + 61, 18_001);
    // ...and Quota::new pays for it with a slower interval instead.
    assert_eq!(Quota::per_hour(18_000, 61).unwrap().max_admitted_per_period(), 18_000);
    assert_eq!(Plan::pay_as_you_go().policies[0].quota, payg);
}

/// governor's `Quota::per_hour(18000)` has burst = limit: a fresh key's first hour
/// admits 35,999; the Pay As You Go quota admits 18,000, in every hour.
#[test]
fn greedy_first_hours_payg_versus_governor_style() {
    let governor_like = Quota::without_window_bound(QuotaOptions {
        limit: 18_000,
        period_ns: NS_PER_HOUR,
        burst: 18_000,
    })
    .unwrap();
    for (quota, first_hour) in [(Quota::pay_as_you_go(), 18_000), (governor_like, 35_999)] {
        let clock = ManualClock::new(0);
        let limiter = manual::<u64>(quota, &clock);
        let mut per_hour = [0u64; 3];
        while clock.now_ns() < 3 * NS_PER_HOUR {
            let d = limiter.check(&1).unwrap();
            if d.allowed {
                per_hour[(clock.now_ns() / NS_PER_HOUR) as usize] += 1;
            } else {
                clock.advance_ns(d.retry_after_ns.unwrap());
            }
        }
        assert_eq!(per_hour[0], first_hour);
        assert!(per_hour[1] <= quota.max_admitted_per_period());
    }
}

#[test]
fn quota_changes_take_effect_on_the_next_check() {
    let clock = ManualClock::new(0);
    let limiter = manual::<u64>(Quota::per_second(10, 1).unwrap(), &clock);
    assert!(limiter.check(&1).unwrap().allowed);
    assert!(!limiter.check(&1).unwrap().allowed);
    // A larger burst (T = 166,666,667 ns, 5 at once) fills at the new rate: key 1 owes
    // its unit in the new units plus the 4 units of new burst, 5 x T, the whole burst.
    let raised = Quota::per_second(10, 5).unwrap();
    limiter.set_quota(raised).unwrap();
    assert_eq!(limiter.quota(), raised);
    let refused = limiter.check(&1).unwrap();
    assert_eq!(refused.retry_after_ns, Some(166_666_667));
    // So does every other key: one never seen may have used the old quota fully.
    let fresh = limiter.check(&4).unwrap();
    assert_eq!((fresh.allowed, fresh.remaining), (true, 0));
    clock.advance_ns(4 * 166_666_667);
    assert_eq!(limiter.peek_n(&4, 0).unwrap().remaining, 4);

    // A per-key override (custom contract), then back to the default.
    let contract = Quota::per_second(1_000, 100).unwrap();
    limiter.set_key_quota(2, contract).unwrap();
    assert_eq!(limiter.quota_for(&2), contract);
    assert_eq!(limiter.check_n(&2, 100).unwrap().limit, 1_000);
    assert_eq!(
        limiter.check_n(&3, 100),
        Err(RateLimitError::WeightExceedsBurst { weight: 100, burst: 5 })
    );
    assert_eq!(limiter.remove_key_quota(&2).unwrap(), Some(contract));
    assert_eq!(limiter.quota_for(&2).limit(), 10);
    // Key 2 took its 100 at this instant: the default (5 at once) has nothing left for
    // it, or one instant would hold 105 where no quota in force allows more than 100.
    let after = limiter.check(&2).unwrap();
    assert!(!after.allowed);
    assert_eq!(after.reset_ns, 5 * 166_666_667);
}

#[test]
fn tokens_per_minute_reserve_then_adjust() {
    let clock = ManualClock::new(0);
    let tpm = Quota::per_minute(90_000, 30_000).unwrap();
    let limiter: RateLimiter<String, _> =
        RateLimiter::with_clock_and_store(policy("tpm", Unit::Tokens, tpm), clock.clone(), MemoryStore::new());
    let key = "sk-account-1".to_owned();
    let reserved = limiter.check_n(&key, 20_000).unwrap();
    assert!(reserved.allowed);
    assert_eq!(reserved.remaining, 10_000);
    // The call used 12,000 tokens: 8,000 come back.
    assert_eq!(limiter.adjust(&key, -8_000).unwrap().remaining, 18_000);
    // Another call used 25,000 against an estimate of 18,000: the 7,000 extra are owed.
    assert!(limiter.check_n(&key, 18_000).unwrap().allowed);
    let owed = limiter.adjust(&key, 7_000).unwrap();
    assert_eq!(owed.remaining, 0);
    assert!(owed.reset_ns > tpm.capacity_ns());
    let refused = limiter.check_n(&key, 1).unwrap();
    assert!(!refused.allowed);
    clock.advance_ns(refused.retry_after_ns.unwrap());
    assert!(limiter.check_n(&key, 1).unwrap().allowed);
    // Giving back more than was taken stops at "full".
    clock.advance_ns(NS_PER_HOUR);
    assert_eq!(limiter.adjust(&key, -1_000_000).unwrap().remaining, 30_000);
    assert_eq!(
        limiter.adjust(&key, i64::MAX),
        Err(RateLimitError::AdjustmentTooLarge { delta: i64::MAX })
    );
}

#[test]
fn multi_limit_refusal_consumes_nothing() {
    let plan = Plan {
        name: "pro".to_owned(),
        policies: vec![
            policy("burst", Unit::Requests, Quota::per_second(2, 2).unwrap()),
            policy("payg", Unit::Requests, Quota::pay_as_you_go()),
            policy("tpm", Unit::Tokens, Quota::per_minute(10_000, 5_000).unwrap()),
        ],
    };
    let clock = ManualClock::new(0);
    let limiter: MultiLimiter<u128, _> = MultiLimiter::with_clock(&plan, clock.clone());
    let key = u128::MAX - 7;
    assert!(limiter.check_weights(&key, &[1, 1, 4_000]).unwrap().allowed);
    let refused = limiter.check_weights(&key, &[1, 1, 4_000]).unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.decisions[0].remaining, 1);
    assert_eq!(refused.decisions[1].remaining, 59);
    assert_eq!(refused.decisions[2].remaining, 1_000);
    assert!(limiter.check_weights(&key, &[1, 1, 1_000]).unwrap().allowed);
    let refused = limiter.check(&key).unwrap();
    assert!(!refused.allowed);
    // "2 per second, 2 at once": T = 1 s, so the third request waits a whole second.
    assert_eq!(refused.retry_after_ns(), Some(NS_PER_SECOND));
    let headers = limiter.headers(&refused);
    assert_eq!(
        headers[0],
        (
            "RateLimit-Policy",
            "\"burst\";q=2;w=1, \"payg\";q=18000;w=3600, \"tpm\";q=10000;w=60".to_owned()
        )
    );
    assert_eq!(headers[2], ("Retry-After", "1".to_owned()));
    assert_eq!(headers[5].0, "x-ratelimit-reset-requests");
    assert_eq!(headers[6], ("x-ratelimit-limit-tokens", "10000".to_owned()));
    assert_eq!(
        limiter.check_weights(&key, &[1]),
        Err(RateLimitError::WeightCountMismatch { expected: 3, given: 1 })
    );
    assert!(matches!(
        limiter.adjust(&key, 3, 1),
        Err(RateLimitError::NoSuchLimit { index: 3, len: 3 })
    ));
    // A weight above a burst is an error before anything is consumed.
    let before = limiter.limiters()[0].peek_n(&key, 0).unwrap();
    assert!(limiter.check_weights(&key, &[1, 1, 5_001]).is_err());
    assert_eq!(limiter.limiters()[0].peek_n(&key, 0).unwrap(), before);
}

#[test]
fn headers_render_drafts_and_openai_style() {
    let clock = ManualClock::new(0);
    let limiter = manual::<u64>(Quota::pay_as_you_go(), &clock);
    let first = limiter.check(&1).unwrap();
    assert_eq!(
        limiter.headers(&first),
        vec![
            ("RateLimit-Policy", "\"p\";q=18000;w=3600".to_owned()),
            ("RateLimit", "\"p\";r=59;t=1".to_owned()),
            ("x-ratelimit-limit-requests", "18000".to_owned()),
            ("x-ratelimit-remaining-requests", "59".to_owned()),
            ("x-ratelimit-reset-requests", "201ms".to_owned()),
        ]
    );
    assert_eq!(headers::duration_text(0), "0s");
    assert_eq!(headers::duration_text(1), "1ms");
    assert_eq!(headers::duration_text(1_500_000_000), "1.5s");
    assert_eq!(headers::duration_text(6 * NS_PER_MINUTE), "6m0s");
    assert_eq!(headers::duration_text(NS_PER_HOUR + 1_020_000_000), "1h0m1.02s");
    assert_eq!(headers::ceil_seconds(1), 1);
    assert_eq!(headers::ceil_seconds(NS_PER_SECOND), 1);
}

#[test]
fn serde_round_trips_and_validates() {
    let payg = Quota::pay_as_you_go();
    let json = serde_json::to_string(&payg).unwrap();
    assert_eq!(
        json,
        r#"{"limit":18000,"period_ns":3600000000000,"burst":60,"window_bound":true}"#
    );
    assert_eq!(serde_json::from_str::<Quota>(&json).unwrap(), payg);
    assert!(serde_json::from_str::<Quota>(r#"{"limit":5,"period_ns":1,"burst":6,"window_bound":true}"#).is_err());
    assert!(serde_json::from_str::<Quota>(r#"{"limit":5,"period_ns":1,"burst":6,"window_bound":false}"#).is_ok());
    let plan = Plan::pay_as_you_go();
    let text = serde_json::to_string(&plan).unwrap();
    assert_eq!(serde_json::from_str::<Plan>(&text).unwrap(), plan);
    assert!(serde_json::from_str::<PolicyName>(r#""bad name""#).is_err());
}

/// Many threads on one key with a shared manual clock that they advance themselves:
/// every admission is recorded with its time, and no window of the period holds more
/// than the limit.
#[test]
fn hammer_one_key_never_exceeds_the_quota() {
    let quota = Quota::new(QuotaOptions {
        limit: 50,
        period_ns: 100_000,
        burst: 10,
    })
    .unwrap();
    let clock = ManualClock::new(0);
    let limiter = Arc::new(manual::<u64>(quota, &clock));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let limiter = Arc::clone(&limiter);
            let clock = clock.clone();
            thread::spawn(move || {
                let mut seed = t.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                let mut admitted = Vec::new();
                for _ in 0..20_000 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let now = clock.advance_ns(seed % 64);
                    if limiter.check_n_at(&7, 1, now).unwrap().allowed {
                        admitted.push(now);
                    }
                }
                admitted
            })
        })
        .collect();
    let mut all: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    all.sort_unstable();
    let mut end = 0;
    for start in 0..all.len() {
        while end < all.len() && all[end] < all[start] + quota.period_ns() {
            end += 1;
        }
        assert!(
            end - start <= 50,
            "{} admitted in a window from {}",
            end - start,
            all[start]
        );
    }
    // The clock ran for many periods, and most of the quota was used.
    let periods = clock.now_ns() / quota.period_ns();
    assert!(
        all.len() as u64 >= periods * 40,
        "{} admitted over {periods} periods",
        all.len()
    );
}

/// Real time, real threads, a direct limiter and a keyed one: the total admitted never
/// exceeds what the quota allows over the elapsed time.
#[test]
fn hammer_real_clock_total_within_quota() {
    let quota = Quota::new(QuotaOptions {
        limit: 1_000,
        period_ns: 10_000_000,
        burst: 100,
    })
    .unwrap();
    let clock = SystemClock::new();
    // The clock reads Unix time: the window is from here to the end.
    let start_ns = clock.now_ns();
    let direct = Arc::new(DirectLimiter::with_clock(quota, clock));
    let keyed: Arc<RateLimiter<u64, SystemClock>> = Arc::new(RateLimiter::with_clock_and_store(
        policy("p", Unit::Requests, quota),
        clock,
        MemoryStore::new(),
    ));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let direct = Arc::clone(&direct);
            let keyed = Arc::clone(&keyed);
            thread::spawn(move || {
                let mut counts = (0u64, 0u64);
                for i in 0..20_000u64 {
                    counts.0 += u64::from(direct.check().unwrap().allowed);
                    counts.1 += u64::from(keyed.check(&(i % 2)).unwrap().allowed);
                }
                counts
            })
        })
        .collect();
    let (direct_total, keyed_total) = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let bound = quota.max_admitted_in_window_ns(clock.now_ns() - start_ns + 1);
    assert!(direct_total <= bound, "{direct_total} > {bound}");
    assert!(keyed_total <= 2 * bound, "{keyed_total} > {}", 2 * bound);
    assert!(direct_total >= quota.burst());
}

/// A million keys: each takes one unit, all are held, the table costs what
/// `docs/ratelimit.md` says, and once they are full again eviction drops them all.
#[test]
fn a_million_keys_then_eviction() {
    const KEYS: u64 = 1_000_000;
    let quota = Quota::per_second(10, 10).unwrap();
    let store: MemoryStore<u64> = MemoryStore::new();
    for key in 0..KEYS {
        assert!(store.check_and_update(&key, 0, &quota, 1).unwrap().allowed);
    }
    assert_eq!(store.len(), KEYS as usize);
    let bytes = store.table_bytes();
    let per_key = bytes as f64 / KEYS as f64;
    println!("{KEYS} u64 keys: {bytes} table bytes, {per_key:.1} bytes per key");
    // 16-byte entries plus a control byte, at a load factor between 7/16 and 7/8.
    assert!((17.0..=40.0).contains(&per_key), "{per_key} bytes per key");
    // Still in debt a nanosecond before the unit is earned back: nothing is dropped.
    assert_eq!(store.evict_full(quota.emission_interval_ns() - 1), 0);
    assert_eq!(store.evict_full(quota.emission_interval_ns()), KEYS as usize);
    assert!(store.is_empty());
    assert!(store.table_bytes() < bytes / 100);
}

/// Keys that come and go are swept by inserts alone: a stream of a million distinct keys,
/// each seen once, never holds more than a few sweeps' worth.
#[test]
fn churn_of_a_million_keys_stays_bounded() {
    let quota = Quota::per_second(1_000, 1).unwrap(); // full again 1 ms after a check
    let store: MemoryStore<u64> = MemoryStore::with_options(MemoryStoreOptions {
        shards: 16,
        sweep_len_min: 256,
        idle_ns: 1_000_000, // dropped 1 ms after they are full
    });
    let mut largest = 0;
    for key in 0..1_000_000u64 {
        // 10 new keys per microsecond: about 10,000 keys are in debt or idle for less
        // than 1 ms at any time.
        let now = key * 100;
        store.check_and_update(&key, now, &quota, 1).unwrap();
        if key % 10_000 == 0 {
            largest = largest.max(store.len());
        }
    }
    assert!(largest <= 60_000, "{largest} keys held");
}

#[test]
fn string_and_u128_keys_and_store_trait_objects() {
    let quota = Quota::per_second(3, 3).unwrap();
    let store: Box<dyn Store<String>> = Box::new(MemoryStore::new());
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
    // A refused or zero-weight check of a fresh key stores nothing.
    let store: MemoryStore<u128> = MemoryStore::new();
    assert!(store.check_and_update(&1, 0, &quota, 0).unwrap().allowed);
    assert!(store.check_and_update(&2, 0, &quota, 4).is_err());
    assert!(store.is_empty());
}

#[test]
fn direct_limiter_runtime_change_and_adjust() {
    let clock = ManualClock::new(5);
    let limiter = DirectLimiter::with_clock(Quota::per_second(4, 2).unwrap(), clock.clone());
    assert!(limiter.check_n(2).unwrap().allowed);
    assert!(!limiter.check().unwrap().allowed);
    assert_eq!(limiter.adjust(-1).unwrap().remaining, 1);
    assert!(limiter.check().unwrap().allowed);
    // per_second(100, 100) keeps its promise with T = 1 s: 100 at once, then 1 a
    // second, slower than the old 3 a second. The key may have used the old rate, so
    // the new burst fills at the new rate: 2 units owed become the whole new burst.
    limiter.set_quota(Quota::per_second(100, 100).unwrap());
    assert_eq!(limiter.quota().limit(), 100);
    assert_eq!(limiter.check_n(90).unwrap().retry_after_ns, Some(90 * NS_PER_SECOND));
    clock.advance_ns(90 * NS_PER_SECOND);
    assert!(limiter.check_n(90).unwrap().allowed);
}

/// A clock that goes backwards makes checks stricter, never looser.
#[test]
fn backwards_clock_is_safe() {
    let clock = ManualClock::new(NS_PER_SECOND);
    let limiter = manual::<u64>(Quota::per_second(10, 2).unwrap(), &clock);
    assert!(limiter.check_n(&1, 2).unwrap().allowed);
    clock.set_ns(0);
    let d = limiter.check(&1).unwrap();
    assert!(!d.allowed);
    assert!(d.retry_after_ns.unwrap() > NS_PER_SECOND);
}

// Found by review (2026-11-25).

#[test]
fn openai_headers_of_a_refusal_come_from_the_limit_that_refused() {
    let clock = ManualClock::new(0);
    let policies = || {
        vec![
            policy("second", Unit::Requests, Quota::per_second(10, 10).unwrap()),
            policy("hour", Unit::Requests, Quota::per_hour(2, 2).unwrap()),
        ]
    };
    let limiter = multi::<u64>(policies(), &clock);
    assert!(limiter.check(&1).unwrap().allowed);
    assert!(limiter.check(&1).unwrap().allowed);
    let refused = limiter.check(&1).unwrap();
    assert!(!refused.allowed);
    let headers = limiter.headers(&refused);
    assert_eq!(header(&headers, "x-ratelimit-limit-requests").as_deref(), Some("2"));
    assert_eq!(header(&headers, "x-ratelimit-remaining-requests").as_deref(), Some("0"));
    // While both admit, the one with fewer units left speaks: the hour limit, 1 left.
    let other = multi::<u64>(policies(), &clock);
    let first = other.check(&2).unwrap();
    let headers = other.headers(&first);
    assert_eq!(header(&headers, "x-ratelimit-remaining-requests").as_deref(), Some("1"));
}

#[test]
fn a_weight_of_zero_skips_a_limit_even_one_in_debt() {
    let clock = ManualClock::new(0);
    let limiter = multi::<u64>(
        vec![
            policy("rpm", Unit::Requests, Quota::per_minute(60, 10).unwrap()),
            policy("tpm", Unit::Tokens, Quota::per_minute(1_000, 1_000).unwrap()),
        ],
        &clock,
    );
    assert!(limiter.check_weights(&1, &[1, 1_000]).unwrap().allowed);
    // The call used far more than it reserved: the token limit is in debt.
    limiter.adjust(&1, 1, 500).unwrap();
    assert!(!limiter.check_weights(&1, &[1, 1]).unwrap().allowed);
    let skipping = limiter.check_weights(&1, &[1, 0]).unwrap();
    assert!(skipping.allowed);
    assert!(skipping.decisions[1].allowed);
    assert_eq!(skipping.decisions[1].remaining, 0);
}

#[test]
fn eviction_keeps_a_grace_for_checks_with_an_older_reading() {
    let clock = ManualClock::new(0);
    let quota = Quota::per_second(10, 10).unwrap();
    let limiter = manual::<u64>(quota, &clock);
    // The whole burst: with the window bound, T is 1 s, so the key is full again at 10 s.
    assert!(limiter.check_n(&1, 10).unwrap().allowed);
    let full_at = 10 * NS_PER_SECOND;
    clock.set_ns(full_at);
    assert_eq!(limiter.evict_full(), 0);
    clock.set_ns(full_at + paygo_ratelimit::EVICT_GRACE_NS - 1);
    assert_eq!(limiter.evict_full(), 0);
    clock.set_ns(full_at + paygo_ratelimit::EVICT_GRACE_NS);
    assert_eq!(limiter.evict_full(), 1);
}
