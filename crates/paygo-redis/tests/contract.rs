//! The `AsyncStore` contract (`paygo_ratelimit::testing::run_contract`, the suite the
//! in-process store passes) on the real server, the script run at times the test gives (the
//! `testing` hooks): the contract's limits refill within milliseconds (a 100 ms period), so
//! on a loaded machine the real `TIME` between two calls would change its answers (seen in
//! CI: 50 tokens admitted where 40 were left, because more than a millisecond had passed).
//! The script at Redis `TIME` is tested by `replicas.rs`, `adversarial.rs` and `restart.rs`.
//! Needs `PAYGO_TEST_REDIS_URL` (skipped with a printed reason when unset, never in CI).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use paygo_ratelimit::testing::{self, Harness};
use paygo_ratelimit::{AsyncStore, Decision, LimitSpec, MultiDecision, Plan, Quota, RateLimitError, Stamped};
use paygo_redis::{RedisOptions, RedisStore};

/// The Redis store, every call at the harness's time.
struct AtTime {
    store: RedisStore<u64>,
    now_ns: Arc<AtomicU64>,
}

impl AtTime {
    fn now(&self) -> u64 {
        self.now_ns.load(Ordering::SeqCst)
    }
}

impl AsyncStore<u64> for AtTime {
    fn limits(&self) -> &[LimitSpec] {
        self.store.limits()
    }

    async fn check(&self, key: &u64, weights: &[u64]) -> Result<Stamped<MultiDecision>, RateLimitError> {
        self.store.check_at(key, weights, self.now()).await
    }

    async fn adjust(&self, key: &u64, deltas: &[i64]) -> Result<Stamped<Vec<Decision>>, RateLimitError> {
        self.store.adjust_at(key, deltas, self.now()).await
    }

    async fn quota_for(&self, key: &u64, limit: usize) -> Result<Quota, RateLimitError> {
        self.store.quota_for(key, limit).await
    }

    async fn set_quota(&self, limit: usize, quota: Quota) -> Result<Stamped<()>, RateLimitError> {
        self.store.set_quota_at(limit, quota, self.now()).await
    }

    async fn set_key_quota(&self, key: &u64, limit: usize, quota: Quota) -> Result<Stamped<()>, RateLimitError> {
        self.store.set_key_quota_at(key, limit, quota, self.now()).await
    }

    async fn remove_key_quota(&self, key: &u64, limit: usize) -> Result<Stamped<Option<Quota>>, RateLimitError> {
        self.store.remove_key_quota_at(key, limit, self.now()).await
    }

    async fn evict_full(&self) -> Result<usize, RateLimitError> {
        self.store.evict_full().await
    }
}

struct OnRedis {
    prefix: support::TestPrefix,
    stores: u64,
    now_ns: Arc<AtomicU64>,
}

impl Harness for OnRedis {
    type Key = u64;
    type Store = AtTime;

    async fn store(&mut self, plan: &Plan) -> AtTime {
        self.stores += 1;
        let mut options = RedisOptions::new(self.prefix.url.clone(), self.prefix.nth(self.stores));
        // A slow CI machine: a check is never failed open here.
        options.timeout_ms = 5_000;
        AtTime {
            store: RedisStore::open(options, plan).await.expect("the store opens"),
            now_ns: Arc::clone(&self.now_ns),
        }
    }

    fn key(&mut self, index: u64) -> u64 {
        index
    }

    async fn wait_ns(&mut self, ns: u64) {
        self.now_ns.fetch_add(ns, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_holds_on_redis() {
    let Some(url) = support::url() else { return };
    let _lock = support::RedisLock::shared();
    for seed in [1, 2] {
        let mut harness = OnRedis {
            prefix: support::TestPrefix::new(&url, &format!("contract{seed}")),
            stores: 0,
            // 2026-12-03, as Redis would say it.
            now_ns: Arc::new(AtomicU64::new(1_796_300_000_000_000_000)),
        };
        testing::run_contract(&mut harness, seed).await.expect("no store error");
        let store = harness.store(&Plan::pay_as_you_go()).await.store;
        let stats = store.stats();
        assert_eq!(stats.failures, 0, "{stats:?}");
        assert_eq!(store.evict_full().await, Ok(0), "Redis expires keys itself");
    }
}
