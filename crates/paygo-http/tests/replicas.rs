//! Two server replicas, each a process of its own, on one PostgreSQL schema, under load;
//! one is killed with SIGKILL in the middle of it, and every request it left unanswered is
//! sent again to the other. Nothing acknowledged is lost, nothing is applied twice, and the
//! dead replica's holds are released by their timeout. Needs `PAYGO_TEST_POSTGRES_URL`
//! (skipped with a printed reason when unset, never in CI).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod pg;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paygo_testkit::store::TempDir;
use paygo_testkit::upstream::{FakeUpstream, UpstreamOptions};

use pg::{Acknowledged, HOLD_MS, Replica};

/// The replica processes run this (see `pg::child_main`); in a normal run it does nothing.
#[test]
fn child_server() {
    pg::child_main();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_load_loses_nothing_acknowledged() {
    let Some(url) = pg::url() else { return };
    let guard = pg::TestSchema::new(&url, "replicas").await;
    let schema = guard.name.clone();
    // Calls take a while upstream, so that some are in flight when the replica dies.
    let upstream = FakeUpstream::start(UpstreamOptions {
        latency_ms: 40,
        ..UpstreamOptions::default()
    })
    .await
    .unwrap();
    let (dir_a, dir_b) = (TempDir::new("replica-a"), TempDir::new("replica-b"));
    let mut a = Replica::start("child_server", &url, &schema, &dir_a.0, &upstream.url());
    let client = reqwest::Client::new();
    // The accounts and keys live in each replica's data directory: made on A, copied to B
    // before B starts (the balances are in the database, shared).
    let mut accounts = Vec::new();
    for _ in 0..3 {
        accounts.push(pg::account(&client, &a.base).await);
    }
    std::fs::create_dir_all(&dir_b.0).unwrap();
    std::fs::copy(dir_a.0.join("accounts.jsonl"), dir_b.0.join("accounts.jsonl")).unwrap();
    let b = Replica::start("child_server", &url, &schema, &dir_b.0, &upstream.url());
    let seen = Arc::new(Mutex::new(Acknowledged::default()));
    for (i, (id, _)) in accounts.iter().enumerate() {
        for p in 0..2 {
            let payment = format!("pay-{i}-{p}");
            let bases = [a.base.as_str(), b.base.as_str()];
            pg::pay(&client, &bases[p % 2..], *id, &payment).await;
            seen.lock().unwrap().payments.insert(payment, *id);
        }
    }
    // Load on both; A dies after a second; what A left unanswered goes to B.
    let started = Instant::now();
    let (a_base, b_base) = (a.base.clone(), b.base.clone());
    let mut clients = Vec::new();
    for t in 0..8usize {
        let (client, seen) = (client.clone(), Arc::clone(&seen));
        let (a_base, b_base) = (a_base.clone(), b_base.clone());
        let key = accounts[t % accounts.len()].1.clone();
        let account = accounts[t % accounts.len()].0;
        clients.push(tokio::spawn(async move {
            let mut n = 0u32;
            while started.elapsed() < Duration::from_millis(2_500) {
                n += 1;
                let base = if n.is_multiple_of(2) { &a_base } else { &b_base };
                if !pg::call(&client, base, &key, &seen).await && base == &a_base {
                    // No answer from A: the same request again, to B (a new call there).
                    pg::call(&client, &b_base, &key, &seen).await;
                }
                if n.is_multiple_of(6) {
                    // A payment now and then, retried on the other replica until acknowledged.
                    let payment = format!("load-{t}-{n}");
                    pg::pay(&client, &[a_base.as_str(), b_base.as_str()], account, &payment).await;
                    seen.lock().unwrap().payments.insert(payment, account);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    a.kill();
    let killed_at = Instant::now();
    for c in clients {
        c.await.unwrap();
    }
    // The dead replica's holds expire after their timeout.
    tokio::time::sleep(Duration::from_millis(HOLD_MS + 500).saturating_sub(killed_at.elapsed())).await;
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        seen.calls.len() > 50,
        "the load ran: {} calls acknowledged",
        seen.calls.len()
    );
    assert!(seen.unanswered > 0, "some calls were cut by the kill: {seen:?}");
    let ids: Vec<u64> = accounts.iter().map(|(id, _)| *id).collect();
    let extra = pg::check(&url, &schema, &ids, &seen).await;
    eprintln!(
        "{} calls acknowledged, {} unanswered (A died), {} charged without an answer, {} payments",
        seen.calls.len(),
        seen.unanswered,
        extra,
        seen.payments.len()
    );
    drop(b);
    drop(guard);
}
