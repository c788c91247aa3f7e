//! The account directory and the usage log shared on PostgreSQL (paygo-http's `postgres`
//! feature, on in workspace runs; `PAYGO_TEST_POSTGRES_URL`, skipped with a printed reason
//! when unset, never in CI): two directories on one schema never give out one account id
//! and see each other's keys and revocations; the shared usage log answers every usage
//! query exactly as the in-memory log with the same records does.

#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::time::Duration;

use paygo_billing::CustomerId;
use paygo_credits::{Credits, Money};
use paygo_http::{CallRecord, Directory, Settlement, UsageLog};
use paygo_postgres::{PgOptions, PgRecords};
use paygo_pricing::{ServiceTier, Usage};
use proptest::prelude::*;

fn url() -> Option<String> {
    match std::env::var("PAYGO_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: PAYGO_TEST_POSTGRES_URL is not set (CI sets it; see .ci/run)");
            None
        }
    }
}

/// A schema of the test's own, dropped at the end (also on failure).
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    async fn new(url: String, test: &str) -> Schema {
        let name = format!("t_shared_{test}_{}", std::process::id());
        paygo_postgres::drop_schema(&url, &name).await.unwrap();
        Schema { url, name }
    }

    async fn records(&self) -> PgRecords {
        PgRecords::open(&PgOptions::new(self.url.clone()).with_schema(&self.name))
            .await
            .unwrap()
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(paygo_postgres::drop_schema(&url, &name))
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_directory() {
    let Some(url) = url() else { return };
    let schema = Schema::new(url, "directory").await;
    // A long refresh: what each sees of the other comes from reads on demand.
    let refresh = Duration::from_secs(3_600);
    let a = std::sync::Arc::new(Directory::shared(schema.records().await, refresh).await.unwrap());
    let b = std::sync::Arc::new(Directory::shared(schema.records().await, refresh).await.unwrap());
    // Accounts created on both at once: every id once.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let d = if i % 2 == 0 {
            std::sync::Arc::clone(&a)
        } else {
            std::sync::Arc::clone(&b)
        };
        tasks.push(tokio::spawn(async move {
            d.create_account(&format!("acct {i}"), "IE", None, &[]).await.unwrap()
        }));
    }
    let mut created = Vec::new();
    for t in tasks {
        created.push(t.await.unwrap());
    }
    let mut ids: Vec<u128> = created.iter().map(|(account, _)| account.id.0).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=16).collect::<Vec<_>>(), "every id given out once");
    // Every key works on both, at once (a key the directory does not know makes it read).
    for (account, key) in &created {
        for d in [&a, &b] {
            let found = d.authenticate_fresh(&key.secret).await.unwrap();
            assert_eq!(found.map(|(id, _)| id), Some(account.id));
        }
    }
    assert_eq!(a.accounts().len(), 16);
    assert_eq!(b.accounts(), a.accounts(), "the same directory on both");
    // A revocation on A: B refuses the key once it has read the stream (here on demand:
    // a change reads first).
    let (victim, key) = &created[3];
    a.revoke_key(&key.id).await.unwrap();
    assert!(a.authenticate(&key.secret).is_none());
    b.create_key(victim.id).await.unwrap();
    assert!(b.authenticate(&key.secret).is_none(), "revoked on A, refused on B");
    // Revoking twice, from the other replica: an unknown key.
    assert!(matches!(
        b.revoke_key(&key.id).await,
        Err(paygo_http::HttpError::UnknownKey { .. })
    ));
    // A portal sign-out on B: A refuses the session once it has read the stream.
    let t0 = 1_764_000_000 * 1_000_000_000;
    b.end_session("session-1", t0 + HOUR, t0).await.unwrap();
    assert!(b.session_ended("session-1"));
    a.create_key(victim.id).await.unwrap();
    assert!(a.session_ended("session-1"), "signed out on B, refused on A");
    // A third replica, started later, reads everything.
    let c = Directory::shared(schema.records().await, refresh).await.unwrap();
    assert_eq!(c.accounts(), a.accounts());
    assert!(c.session_ended("session-1"));
    assert!(!c.session_ended("session-2"));
    assert!(c.authenticate(&created[5].1.secret).is_some());
    assert!(c.authenticate(&key.secret).is_none());
    // Bad input is refused the same way as by a file directory.
    assert!(matches!(
        a.create_account("", "IE", None, &[]).await,
        Err(paygo_http::HttpError::InvalidField { field: "name", .. })
    ));
    assert!(matches!(
        a.create_key(CustomerId(999)).await,
        Err(paygo_http::HttpError::UnknownAccount { .. })
    ));
}

const HOUR: u64 = 3_600_000_000_000;
const T0: u64 = 1_764_000_000 * 1_000_000_000 / HOUR * HOUR;

fn record(n: usize, account: u128, at_ns: u64, model: usize, micro_usd: u32) -> CallRecord {
    let usd = rust_decimal::Decimal::new(i64::from(micro_usd), 6);
    CallRecord {
        request_id: format!("req_{n}"),
        account: CustomerId(account),
        key_id: Some(paygo_http::KeyId(format!("key_{}", n % 3))),
        model: ["gpt-4o-mini", "claude-sonnet", "llama"][model].to_owned(),
        endpoint: None,
        service_tier: ServiceTier::STANDARD,
        at_ns,
        usage: Usage {
            prompt_tokens: n as u64 * 3,
            completion_tokens: n as u64,
            ..Usage::default()
        },
        credits: Credits::new(i64::from(micro_usd) * 2),
        usd: Money::usd(usd),
        streamed: false,
        settlement: Settlement::Usage,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Roll-ups for whole hours and records for the partial hours at the ends give every
    /// bucket exactly what adding up the records gives, for any range and bucket.
    #[test]
    fn the_shared_usage_log_answers_as_the_in_memory_one(
        calls in proptest::collection::vec((0u128..2, 0u64..(50 * HOUR), 0usize..3, 0u32..5_000_000), 1..60),
        ranges in proptest::collection::vec((0u64..(52 * HOUR), 1u64..(52 * HOUR), any::<bool>(), any::<bool>()), 1..6),
    ) {
        let Some(url) = url() else { return Ok(()) };
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let schema = Schema::new(url, "usage").await;
            let shared = UsageLog::shared(schema.records().await);
            let memory = UsageLog::in_memory();
            for (n, &(account, at, model, micro)) in calls.iter().enumerate() {
                let r = record(n, account, T0 + at, model, micro);
                shared.append(r.clone()).await.unwrap();
                // A retry changes nothing.
                shared.append(r.clone()).await.unwrap();
                memory.append(r).await.unwrap();
            }
            for &(from, len, daily, by_model) in &ranges {
                let (from, to) = (T0 + from, T0 + from + len);
                let bucket = if daily { 24 * HOUR } else { HOUR };
                for account in 0..2 {
                    let want = memory.usage(CustomerId(account), from, to, bucket, by_model).await.unwrap();
                    let got = shared.usage(CustomerId(account), from, to, bucket, by_model).await.unwrap();
                    assert_eq!(got, want, "account {account}, {from}..{to}, bucket {bucket}, by model {by_model}");
                    let want = memory.usage_by_key(CustomerId(account), from, to, bucket).await.unwrap();
                    let got = shared.usage_by_key(CustomerId(account), from, to, bucket).await.unwrap();
                    assert_eq!(got, want, "by key: account {account}, {from}..{to}, bucket {bucket}");
                }
            }
            let some = &calls[0];
            let first = shared.generation("req_0").await.unwrap().expect("the first record");
            assert_eq!(first.account, CustomerId(some.0));
            assert!(shared.generation("req_none").await.unwrap().is_none());
            assert!(shared.contains("req_0").await.unwrap());
        });
    }
}

/// Whether the shared log can answer `from .. to` exactly once its records before
/// `horizon` are pruned: the partial hours at the range's ends are read from the records,
/// so each end that is not a whole hour must be at or after the horizon.
fn answerable(from: u64, to: u64, horizon: u64) -> bool {
    let first_hour = from.div_ceil(HOUR) * HOUR;
    let end_hour = to - to % HOUR;
    if first_hour >= end_hour {
        return from >= horizon;
    }
    (from == first_hour || from >= horizon) && (end_hour == to || end_hour >= horizon)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// Pruned records leave every answer that the hourly roll-ups can give unchanged, and
    /// a range that would need a pruned record is refused, never answered short; pruned
    /// calls are neither found nor written again.
    #[test]
    fn a_pruned_log_answers_by_the_hour_or_refuses(
        calls in proptest::collection::vec((0u64..(12 * HOUR), 0usize..3, 0u32..5_000_000), 1..40),
        horizon in 0u64..(12 * HOUR),
        ranges in proptest::collection::vec((0u64..12, 0u64..HOUR, 1u64..12, 0u64..HOUR, any::<bool>()), 1..8),
    ) {
        let Some(url) = url() else { return Ok(()) };
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let schema = Schema::new(url, "pruned").await;
            let shared = UsageLog::shared(schema.records().await);
            let memory = UsageLog::in_memory();
            for (n, &(at, model, micro)) in calls.iter().enumerate() {
                let r = record(n, 1, T0 + at, model, micro);
                shared.append(r.clone()).await.unwrap();
                memory.append(r).await.unwrap();
            }
            let horizon = T0 + horizon;
            let before = calls.iter().filter(|c| T0 + c.0 < horizon).count() as u64;
            assert_eq!(shared.prune(horizon).await.unwrap(), before);
            assert_eq!(shared.horizon_ns().await.unwrap(), horizon);
            for &(from_h, from_off, len_h, to_off, aligned) in &ranges {
                let from = T0 + from_h * HOUR + if aligned { 0 } else { from_off };
                let to = from - from % HOUR + len_h * HOUR + if aligned { 0 } else { to_off };
                if from >= to {
                    continue;
                }
                let want = memory.usage(CustomerId(1), from, to, HOUR, true).await.unwrap();
                let got = shared.usage(CustomerId(1), from, to, HOUR, true).await;
                if answerable(from, to, horizon) {
                    assert_eq!(got.unwrap(), want, "{from}..{to}, horizon {horizon}");
                } else {
                    assert!(
                        matches!(got, Err(paygo_http::HttpError::InvalidField { field: "from", .. })),
                        "{from}..{to} needs pruned records (horizon {horizon}): {got:?}"
                    );
                }
            }
            for (n, &(at, model, micro)) in calls.iter().enumerate() {
                let id = format!("req_{n}");
                let kept = T0 + at >= horizon;
                assert_eq!(shared.contains(&id).await.unwrap(), kept, "{id}");
                if !kept {
                    // A pruned call written again is refused: it would count twice.
                    assert!(shared.append(record(n, 1, T0 + at, model, micro)).await.is_err());
                }
            }
            assert_eq!(shared.records(CustomerId(1)).await.unwrap().len() as u64, calls.len() as u64 - before);
        });
    }
}
