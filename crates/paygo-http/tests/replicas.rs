//! Two server replicas, each a process of its own, on one PostgreSQL schema, under load;
//! one is killed with SIGKILL in the middle of it, and every request it left unanswered is
//! sent again to the other. Nothing acknowledged is lost, nothing is applied twice, and the
//! dead replica's holds are released by their timeout. The replicas share the accounts,
//! keys and usage records too: a key made on one works at once on the other, a key revoked
//! on one is refused by the other within its refresh interval, and every acknowledged call
//! is in the usage log whichever replica is asked. Needs `PAYGO_TEST_POSTGRES_URL`
//! (skipped with a printed reason when unset, never in CI) and paygo-http's `postgres`
//! feature (on in workspace runs).

#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod pg;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paygo_testkit::store::TempDir;
use paygo_testkit::upstream::{FakeUpstream, UpstreamOptions};
use serde_json::{Value, json};

use pg::{Acknowledged, HOLD_MS, Replica};

/// The replica processes run this (see `pg::child_main`); in a normal run it does nothing.
#[test]
fn child_server() {
    pg::child_main();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one scenario, step by step
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
    let b = Replica::start("child_server", &url, &schema, &dir_b.0, &upstream.url());
    let client = reqwest::Client::new();
    // Accounts made on A (ids 1, 2, 3: never one id twice), then one on B: each replica
    // knows the other's keys at once.
    let mut accounts = Vec::new();
    for _ in 0..2 {
        accounts.push(pg::account(&client, &a.base).await);
    }
    accounts.push(pg::account(&client, &b.base).await);
    let ids: Vec<u64> = accounts.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [1, 2, 3], "account ids are given out once across replicas");
    for (i, (_, key)) in accounts.iter().enumerate() {
        let other = if i < 2 { &b.base } else { &a.base };
        let balance = client
            .get(format!("{other}/v1/billing/balance"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(balance.status(), 200, "a key made on one replica works on the other");
    }
    // A key revoked on B is refused by A within A's refresh interval.
    let (status, extra) = pg::admin(
        &client,
        &b.base,
        &format!("/admin/v1/accounts/{}/keys", ids[0]),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{extra}");
    let (extra_id, extra_key) = (
        extra["key_id"].as_str().unwrap().to_owned(),
        extra["api_key"].as_str().unwrap().to_owned(),
    );
    let on_a = |key: String| {
        let (client, base) = (client.clone(), a.base.clone());
        async move {
            client
                .get(format!("{base}/v1/billing/balance"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(on_a(extra_key.clone()).await, 200);
    let revoked = client
        .delete(format!("{}/admin/v1/keys/{extra_id}", b.base))
        .bearer_auth(pg::ADMIN)
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success(), "{}", revoked.status());
    tokio::time::sleep(Duration::from_millis(pg::DIRECTORY_REFRESH_MS * 2 + 200)).await;
    assert_eq!(on_a(extra_key).await, 401, "a key revoked on B is refused on A");
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
    // Every acknowledged call is in the shared usage log, A's as well as B's, asked of B.
    for (&hold, &credits) in seen.calls.iter().step_by(7) {
        let id = format!("req_{hold:032x}");
        let key = &accounts[0].1;
        let answer = client
            .get(format!("{}/v1/generation/{id}", b.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        // The call may be another account's: then B answers 404 for this key, as for any
        // call not of the key's account; asked with the right key below.
        if answer.status() == 404 {
            let mut found = false;
            for (_, key) in &accounts[1..] {
                let again = client
                    .get(format!("{}/v1/generation/{id}", b.base))
                    .bearer_auth(key)
                    .send()
                    .await
                    .unwrap();
                if again.status() == 200 {
                    let body: Value = again.json().await.unwrap();
                    assert_eq!(body["credits_used"].as_i64(), Some(credits), "{body}");
                    found = true;
                    break;
                }
            }
            assert!(found, "acknowledged call {id} is in the shared usage log");
        } else {
            assert_eq!(answer.status(), 200);
            let body: Value = answer.json().await.unwrap();
            assert_eq!(body["credits_used"].as_i64(), Some(credits), "{body}");
        }
    }
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
