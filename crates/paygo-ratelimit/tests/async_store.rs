//! The async store seam: the contract (`paygo_ratelimit::testing`) on the in-process
//! store over both synchronous stores, its futures `Send` and done on their first poll,
//! its answers the same as the synchronous multi-limiter's, and the plan limiter a
//! gateway calls.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use paygo_ratelimit::testing::{self, Harness};
use paygo_ratelimit::{
    AsyncPlanLimiter, AsyncStore, Clock, FlatStore, InProcessStore, ManualClock, MemoryStore, MemoryStoreOptions,
    MultiLimiter, NS_PER_MINUTE, Plan, Policy, PolicyName, Quota, RateLimitError, Unit,
};

/// A Unix time in late 2025, where every store starts.
const START_NS: u64 = 1_764_000_000_000_000_000;

struct Memory(ManualClock);

impl Harness for Memory {
    type Key = u64;
    // A store that sweeps on every insertion, so forgetting keys is part of the contract run.
    type Store = InProcessStore<u64, ManualClock, MemoryStore<u64>>;
    async fn store(&mut self, plan: &Plan) -> Self::Store {
        let options = MemoryStoreOptions {
            shards: 2,
            sweep_len_min: 1,
            idle_ns: 0,
        };
        InProcessStore::with_clock_and_stores(plan, self.0.clone(), |_| MemoryStore::with_options(options))
    }
    fn key(&mut self, index: u64) -> u64 {
        index.wrapping_mul(0x9e37_79b9)
    }
    async fn wait_ns(&mut self, ns: u64) {
        self.0.advance_ns(ns);
    }
}

struct Flat(ManualClock);

impl Harness for Flat {
    type Key = String;
    type Store = InProcessStore<String, ManualClock, FlatStore<String>>;
    async fn store(&mut self, plan: &Plan) -> Self::Store {
        InProcessStore::with_clock_and_stores(plan, self.0.clone(), |_| FlatStore::new())
    }
    fn key(&mut self, index: u64) -> String {
        format!("sk-{index}")
    }
    async fn wait_ns(&mut self, ns: u64) {
        self.0.advance_ns(ns);
    }
}

/// Polls once: the in-process futures must be done by then.
fn first_poll<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an in-process future was pending on its first poll"),
    }
}

#[test]
fn the_contract_holds_for_the_in_process_store_over_a_memory_store() {
    for seed in 0..48 {
        let mut harness = Memory(ManualClock::new(START_NS + seed));
        testing::block_on(testing::run_contract(&mut harness, seed)).unwrap();
    }
}

#[test]
fn the_contract_holds_for_the_in_process_store_over_a_flat_store() {
    for seed in 100..148 {
        let mut harness = Flat(ManualClock::new(START_NS));
        testing::block_on(testing::run_contract(&mut harness, seed)).unwrap();
    }
}

#[test]
fn the_contract_holds_from_time_zero_too() {
    // A clock at 1970: a never-seen key's state (0) is then "now", still full.
    let mut harness = Memory(ManualClock::new(0));
    testing::block_on(testing::run_contract(&mut harness, 7)).unwrap();
}

/// The contract can fail: a store that drops every give-back and every quota change's
/// conversion is caught.
#[test]
fn the_contract_catches_a_store_that_forgets_adjustments() {
    struct Forgetful(InProcessStore<u64, ManualClock>);
    impl AsyncStore<u64> for Forgetful {
        fn limits(&self) -> &[paygo_ratelimit::LimitSpec] {
            self.0.limits()
        }
        fn check(
            &self,
            key: &u64,
            weights: &[u64],
        ) -> impl Future<Output = Result<paygo_ratelimit::Stamped<paygo_ratelimit::MultiDecision>, RateLimitError>> + Send
        {
            self.0.check(key, weights)
        }
        fn adjust(
            &self,
            key: &u64,
            deltas: &[i64],
        ) -> impl Future<Output = Result<paygo_ratelimit::Stamped<Vec<paygo_ratelimit::Decision>>, RateLimitError>> + Send
        {
            // Positive adjustments only: a give-back is lost.
            let kept: Vec<i64> = deltas.iter().map(|&d| d.max(0)).collect();
            async move { self.0.adjust(key, &kept).await }
        }
        fn quota_for(&self, key: &u64, limit: usize) -> impl Future<Output = Result<Quota, RateLimitError>> + Send {
            self.0.quota_for(key, limit)
        }
        fn set_quota(
            &self,
            limit: usize,
            quota: Quota,
        ) -> impl Future<Output = Result<paygo_ratelimit::Stamped<()>, RateLimitError>> + Send {
            self.0.set_quota(limit, quota)
        }
        fn set_key_quota(
            &self,
            key: &u64,
            limit: usize,
            quota: Quota,
        ) -> impl Future<Output = Result<paygo_ratelimit::Stamped<()>, RateLimitError>> + Send {
            self.0.set_key_quota(key, limit, quota)
        }
        fn remove_key_quota(
            &self,
            key: &u64,
            limit: usize,
        ) -> impl Future<Output = Result<paygo_ratelimit::Stamped<Option<Quota>>, RateLimitError>> + Send {
            self.0.remove_key_quota(key, limit)
        }
        fn evict_full(&self) -> impl Future<Output = Result<usize, RateLimitError>> + Send {
            self.0.evict_full()
        }
    }
    struct Harnessed(ManualClock);
    impl Harness for Harnessed {
        type Key = u64;
        type Store = Forgetful;
        async fn store(&mut self, plan: &Plan) -> Forgetful {
            Forgetful(InProcessStore::with_clock(plan, self.0.clone()))
        }
        fn key(&mut self, index: u64) -> u64 {
            index
        }
        async fn wait_ns(&mut self, ns: u64) {
            self.0.advance_ns(ns);
        }
    }
    let caught = std::panic::catch_unwind(|| {
        let mut harness = Harnessed(ManualClock::new(START_NS));
        testing::block_on(testing::weights_and_adjust(&mut harness))
    });
    assert!(caught.is_err(), "a lost give-back must fail the contract");
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

fn tiers(rph: u64, tpm: u64) -> Plan {
    Plan {
        name: "tier".to_owned(),
        policies: vec![
            Policy {
                name: PolicyName::new("rph").unwrap(),
                unit: Unit::Requests,
                quota: Quota::per_hour(rph, 60).unwrap(),
            },
            Policy {
                name: PolicyName::new("tpm").unwrap(),
                unit: Unit::Tokens,
                quota: Quota::per_minute(tpm, tpm / 2).unwrap(),
            },
        ],
    }
}

#[test]
fn futures_are_send_and_done_on_the_first_poll() {
    let clock = ManualClock::new(START_NS);
    let store: InProcessStore<String, _, FlatStore<String>> =
        InProcessStore::with_clock_and_stores(&tiers(18_000, 40_000), clock.clone(), |_| FlatStore::new());
    let key = "sk-1".to_owned();
    let checked = first_poll(assert_send(store.check(&key, &[1, 100]))).unwrap();
    assert_eq!(checked.at_ns, START_NS);
    first_poll(assert_send(store.adjust(&key, &[0, -50]))).unwrap();
    first_poll(assert_send(store.set_quota(0, Quota::per_hour(100, 10).unwrap()))).unwrap();
    first_poll(assert_send(store.set_key_quota(
        &key,
        1,
        Quota::per_minute(10, 10).unwrap(),
    )))
    .unwrap();
    first_poll(assert_send(store.remove_key_quota(&key, 1))).unwrap();
    first_poll(assert_send(store.quota_for(&key, 1))).unwrap();
    first_poll(assert_send(store.evict_full())).unwrap();
    let limiter = AsyncPlanLimiter::new(store);
    first_poll(assert_send(limiter.check_call(&key, 10))).unwrap();
    first_poll(assert_send(limiter.adjust_tokens(&key, -5))).unwrap();
    first_poll(assert_send(limiter.set_key_plan(&key, &tiers(36_000, 100_000)))).unwrap();
    // Nothing is done before the first poll: a future dropped unpolled consumed nothing.
    let other = "sk-2".to_owned();
    for _ in 0..1_000 {
        drop(limiter.check_call(&other, 1));
    }
    let first = first_poll(limiter.check_call(&other, 1)).unwrap();
    // The class quota of limit 0 is now 100 per hour, burst 10.
    assert_eq!(first.value.decisions[0].remaining, 9);
}

#[test]
fn the_async_store_answers_as_the_sync_multi_limiter_does() {
    let clock = ManualClock::new(START_NS);
    let plan = tiers(1_000, 6_000);
    let sync: MultiLimiter<u64, _> = MultiLimiter::with_clock(&plan, clock.clone());
    let store: InProcessStore<u64, _> = InProcessStore::with_clock(&plan, clock.clone());
    let mut x = 12_345u64;
    for i in 0..5_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = x % 5;
        let weights = [1, x % 3_001];
        if i % 7 == 3 {
            let delta = i64::try_from(x % 2_001).unwrap() - 1_000;
            let a = sync.adjust(&key, 1, delta).unwrap();
            let b = first_poll(store.adjust(&key, &[0, delta])).unwrap();
            assert_eq!(a, b.value[1]);
        } else {
            let a = sync.check_weights(&key, &weights).unwrap();
            let b = first_poll(store.check(&key, &weights)).unwrap();
            assert_eq!(a, b.value, "check {i}");
            assert_eq!(b.at_ns, clock.now_ns());
        }
        clock.advance_ns(x % 50_000_000);
    }
}

#[test]
fn the_plan_limiter_checks_calls_adjusts_tokens_and_moves_keys_between_plans() {
    let clock = ManualClock::new(START_NS);
    let limiter = AsyncPlanLimiter::new(InProcessStore::<u64, _>::with_clock(
        &tiers(18_000, 40_000),
        clock.clone(),
    ));
    assert_eq!(limiter.limit_index("tpm"), Some(1));
    assert_eq!(limiter.limit_index("nope"), None);
    // A call reserves one request and its estimate.
    let call = testing::block_on(limiter.check_call(&1, 15_000)).unwrap();
    assert!(call.value.allowed);
    assert_eq!(
        (call.value.decisions[0].remaining, call.value.decisions[1].remaining),
        (59, 5_000)
    );
    // The estimate was high: give back 10,000.
    let back = testing::block_on(limiter.adjust_tokens(&1, -10_000)).unwrap();
    assert_eq!((back.value[0].remaining, back.value[1].remaining), (59, 15_000));
    // An estimate above the burst can never pass: an error, not a refusal.
    assert!(matches!(
        testing::block_on(limiter.check_call(&1, 20_001)),
        Err(RateLimitError::WeightExceedsBurst {
            weight: 20_001,
            burst: 20_000
        })
    ));
    // 15,001 is refused and consumes no request.
    let refused = testing::block_on(limiter.check_call(&1, 15_001)).unwrap();
    assert!(!refused.value.allowed);
    assert_eq!(refused.value.decisions[0].remaining, 59);
    let headers = limiter.headers(&refused.value);
    assert!(headers.iter().any(|(name, _)| *name == "Retry-After"), "{headers:?}");
    // Account 1 moves to a larger tier: its used tokens are carried over, the larger
    // burst fills at the new rate (docs/ratelimit.md), so it cannot take 50,000 at once ...
    testing::block_on(limiter.set_key_plan(&1, &tiers(36_000, 100_000))).unwrap();
    assert_eq!(
        testing::block_on(limiter.store().quota_for(&1, 1)).unwrap(),
        Quota::per_minute(100_000, 50_000).unwrap()
    );
    assert!(!testing::block_on(limiter.check_call(&1, 50_000)).unwrap().value.allowed);
    // ... but can a minute later.
    clock.advance_ns(NS_PER_MINUTE);
    assert!(testing::block_on(limiter.check_call(&1, 50_000)).unwrap().value.allowed);
    // A plan that names a limit the store lacks changes nothing.
    let mut odd = tiers(100, 200);
    odd.policies[1].name = PolicyName::new("tokens-per-day").unwrap();
    assert!(matches!(
        testing::block_on(limiter.set_key_plan(&1, &odd)),
        Err(RateLimitError::NoSuchPolicy { .. })
    ));
    assert_eq!(
        testing::block_on(limiter.store().quota_for(&1, 0)).unwrap(),
        Quota::per_hour(36_000, 60).unwrap()
    );
    // A plan naming only some limits puts the others back on their defaults.
    let mut only_requests = tiers(5_000, 2);
    only_requests.policies.truncate(1);
    testing::block_on(limiter.set_key_plan(&1, &only_requests)).unwrap();
    assert_eq!(
        testing::block_on(limiter.store().quota_for(&1, 1)).unwrap(),
        Quota::per_minute(40_000, 20_000).unwrap()
    );
    // A class change reaches every key without its own quota.
    testing::block_on(limiter.set_quota(0, Quota::per_hour(100, 1).unwrap())).unwrap();
    assert_eq!(
        testing::block_on(limiter.store().quota_for(&2, 0)).unwrap(),
        Quota::per_hour(100, 1).unwrap()
    );
    assert_eq!(
        testing::block_on(limiter.store().quota_for(&1, 0)).unwrap(),
        Quota::per_hour(5_000, 60).unwrap()
    );
}
