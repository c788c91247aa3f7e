//! The `AsyncStore` contract (`paygo_ratelimit::testing::run_contract`, the suite the
//! in-process store passes) on the real server, with Redis `TIME`: every answer equals the
//! reference model's at the time Redis stamped it. Needs `PAYGO_TEST_REDIS_URL` (skipped
//! with a printed reason when unset, never in CI).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod support;

use std::time::Duration;

use paygo_ratelimit::testing::{self, Harness};
use paygo_ratelimit::{AsyncStore, Plan};
use paygo_redis::{RedisOptions, RedisStore};

struct OnRedis {
    prefix: support::TestPrefix,
    stores: u64,
}

impl Harness for OnRedis {
    type Key = u64;
    type Store = RedisStore<u64>;

    async fn store(&mut self, plan: &Plan) -> RedisStore<u64> {
        self.stores += 1;
        let mut options = RedisOptions::new(self.prefix.url.clone(), self.prefix.nth(self.stores));
        // A slow CI machine: a check is never failed open here.
        options.timeout_ms = 5_000;
        RedisStore::open(options, plan).await.expect("the store opens")
    }

    fn key(&mut self, index: u64) -> u64 {
        index
    }

    async fn wait_ns(&mut self, ns: u64) {
        tokio::time::sleep(Duration::from_nanos(ns)).await;
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
        };
        testing::run_contract(&mut harness, seed).await.expect("no store error");
        let store = harness.store(&Plan::pay_as_you_go()).await;
        let stats = store.stats();
        assert_eq!(stats.failures, 0, "{stats:?}");
        assert_eq!(store.evict_full().await, Ok(0), "Redis expires keys itself");
    }
}
