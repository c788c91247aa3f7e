//! Adversarial timing on the real server, with Redis `TIME`: bursts at the edges of the
//! window, quotas raised and lowered at runtime while two stores (two replicas) hammer one
//! key, and weights larger than the burst. Every admission is counted at the time Redis
//! stamped it. Needs `PAYGO_TEST_REDIS_URL` (skipped with a printed reason when unset,
//! never in CI).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use paygo_ratelimit::{AsyncStore, Plan, Policy, PolicyName, Quota, QuotaOptions, RateLimitError, Unit};
use paygo_redis::{RedisOptions, RedisStore};

fn quota(limit: u64, period_ns: u64, burst: u64) -> Quota {
    Quota::new(QuotaOptions {
        limit,
        period_ns,
        burst,
    })
    .unwrap()
}

fn plan(quotas: &[(Unit, Quota)]) -> Plan {
    Plan {
        name: "adversarial".into(),
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

async fn open(prefix: &str, url: &str, plan: &Plan) -> RedisStore<u64> {
    let mut options = RedisOptions::new(url, prefix);
    options.timeout_ms = 5_000;
    RedisStore::open(options, plan).await.unwrap()
}

/// The most any window of `period_ns` holds, over admissions (time, units).
fn most_in_a_window(admitted: &[(u64, u64)], period_ns: u64) -> u64 {
    let mut sorted = admitted.to_vec();
    sorted.sort_unstable();
    (0..sorted.len())
        .map(|i| {
            sorted[i..]
                .iter()
                .take_while(|(t, _)| *t < sorted[i].0 + period_ns)
                .map(|(_, w)| w)
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_at_the_window_edges_never_pass_the_quota() {
    let Some(url) = support::url() else { return };
    let _lock = support::RedisLock::shared();
    let prefix = support::TestPrefix::new(&url, "edges");
    // governor's shape with the promise: the whole limit at once, 10 per 300 ms.
    let period: u64 = 300_000_000;
    let q = quota(10, period, 10);
    let store = open(&prefix.prefix, &url, &plan(&[(Unit::Requests, q)])).await;
    let mut admitted = Vec::new();
    let first = store.check(&1, &[10]).await.unwrap();
    assert!(first.value.allowed);
    admitted.push((first.at_ns, 10));
    // Just before the window ends, then at its edge and after: whatever can be taken, one
    // unit at a time, as fast as Redis answers.
    let until = first.at_ns + 3 * period;
    let mut last = first.at_ns;
    while last < until {
        let answer = store.check(&1, &[1]).await.unwrap();
        last = answer.at_ns;
        if answer.value.allowed {
            admitted.push((answer.at_ns, 1));
        } else {
            // Sleep to just before the retry-after, then hammer across the edge.
            let wait = answer.value.retry_after_ns().unwrap();
            tokio::time::sleep(Duration::from_nanos(wait.saturating_sub(2_000_000))).await;
        }
    }
    let most = most_in_a_window(&admitted, period);
    assert!(most <= 10, "{most} admitted in one window of 300 ms: {admitted:?}");
    assert!(admitted.len() >= 3, "the edges were reached: {admitted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_raised_and_lowered_under_two_replicas_keep_the_promise() {
    let Some(url) = support::url() else { return };
    let _lock = support::RedisLock::shared();
    let prefix = support::TestPrefix::new(&url, "requota");
    let period: u64 = 400_000_000;
    let start = quota(40, period, 5);
    let raised = quota(40, period, 30);
    let lowered = quota(20, period, 5);
    let p = plan(&[(Unit::Requests, start)]);
    let stores = [
        Arc::new(open(&prefix.prefix, &url, &p).await),
        Arc::new(open(&prefix.prefix, &url, &p).await),
    ];
    let admitted = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..4 {
        let (store, admitted, stop) = (Arc::clone(&stores[t % 2]), Arc::clone(&admitted), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let answer = store.check(&9, &[1]).await.unwrap();
                if answer.value.allowed {
                    admitted.lock().unwrap().push((answer.at_ns, 1));
                }
            }
        }));
    }
    let mut changes = Vec::new();
    tokio::time::sleep(Duration::from_millis(500)).await;
    changes.push((stores[0].set_quota(0, raised).await.unwrap().at_ns, raised));
    tokio::time::sleep(Duration::from_millis(350)).await;
    changes.push((stores[1].set_quota(0, lowered).await.unwrap().at_ns, lowered));
    tokio::time::sleep(Duration::from_millis(350)).await;
    changes.push((stores[0].set_key_quota(&9, 0, raised).await.unwrap().at_ns, raised));
    tokio::time::sleep(Duration::from_millis(350)).await;
    let removed = stores[1].remove_key_quota(&9, 0).await.unwrap();
    assert_eq!(removed.value, Some(raised));
    changes.push((removed.at_ns, lowered));
    tokio::time::sleep(Duration::from_millis(600)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(stores[0].quota_for(&9, 0).await.unwrap(), lowered);
    let mut admitted = std::mem::take(&mut *admitted.lock().unwrap());
    admitted.sort_unstable();
    // Each window of a period holds at most what the most generous quota in force during
    // it allows.
    let in_force = |from: u64, to: u64| {
        let mut quotas = vec![start];
        let mut current = start;
        for &(at, q) in &changes {
            if at < to && at >= from {
                quotas.push(q);
            }
            if at < from {
                current = q;
            }
        }
        quotas.push(current);
        quotas
            .iter()
            .map(|q| q.max_admitted_in_window_ns(period))
            .max()
            .unwrap()
    };
    for (i, &(s, _)) in admitted.iter().enumerate() {
        let held = admitted[i..].iter().take_while(|(t, _)| *t < s + period).count() as u64;
        let bound = in_force(s, s + period);
        assert!(
            held <= bound,
            "{held} admitted in the window from {s}, more than {bound}"
        );
    }
    assert!(admitted.len() > 40, "the load ran: {}", admitted.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weight_larger_than_the_burst_is_refused_with_a_clear_error() {
    let Some(url) = support::url() else { return };
    let _lock = support::RedisLock::shared();
    let prefix = support::TestPrefix::new(&url, "heavy");
    let p = plan(&[
        (Unit::Requests, quota(100, 60_000_000_000, 10)),
        (Unit::Tokens, quota(40_000, 60_000_000_000, 20_000)),
    ]);
    let store = open(&prefix.prefix, &url, &p).await;
    let refused = store.check(&5, &[1, 20_001]).await;
    assert_eq!(
        refused,
        Err(RateLimitError::WeightExceedsBurst {
            weight: 20_001,
            burst: 20_000
        })
    );
    assert_eq!(
        refused.unwrap_err().to_string(),
        "weight 20001 exceeds the burst 20000: such a request can never be admitted; expected at most 20000"
    );
    // Nothing was taken from either limit.
    let full = store.check(&5, &[10, 20_000]).await.unwrap();
    assert!(full.value.allowed, "{full:?}");
    // A quota the script cannot hold exactly is refused with its own error.
    // 18,000 an hour, all at once: T is an hour, the capacity 18,000 hours (above 2^52 ns).
    let huge = Quota::per_hour(18_000, 18_000).unwrap();
    let error = store.set_quota(1, huge).await.unwrap_err();
    assert!(matches!(error, RateLimitError::QuotaExceedsStore { .. }), "{error}");
    assert!(error.to_string().contains("too large for this store"), "{error}");
}
