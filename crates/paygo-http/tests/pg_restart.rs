//! The server on PostgreSQL while PostgreSQL is stopped for a second and started again
//! (`pg_ctlcluster`), under load: a call made while it is down is refused at once with 503,
//! calls already past their hold wait for it (their capture is retried) and none hangs or
//! gets another error, the server recovers by itself, and nothing acknowledged is lost.
//! Needs `PAYGO_TEST_POSTGRES_URL` and the right to run `pg_ctlcluster` (the project's
//! machines); skipped with a printed reason otherwise. Alone in its test binary: it stops
//! the server every other test uses. Built with paygo-http's `postgres` feature (on in
//! workspace runs): the server shares its accounts and usage records in the database too.

#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod pg;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paygo_testkit::store::TempDir;
use paygo_testkit::upstream::{FakeUpstream, UpstreamOptions};

use pg::Acknowledged;

/// `pg_ctlcluster VERSION main ACTION`, for the one cluster of `/etc/postgresql`.
fn cluster(action: &str) -> Result<(), String> {
    let versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .map_err(|e| format!("/etc/postgresql: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    let [version] = versions.as_slice() else {
        return Err(format!(
            "expected one cluster version in /etc/postgresql, found {versions:?}"
        ));
    };
    let status = std::process::Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", version, "main", action])
        .status()
        .map_err(|e| format!("pg_ctlcluster: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("pg_ctlcluster {action}: {status}"))
    }
}

#[allow(clippy::too_many_lines)] // one scenario, start to end
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_load_fails_calls_with_503_and_the_server_recovers() {
    let Some(url) = pg::url() else { return };
    if cluster("status").is_err() {
        eprintln!("skipped: pg_ctlcluster cannot manage the local cluster here");
        return;
    }
    let guard = pg::TestSchema::new(&url, "restart").await;
    let schema = guard.name.clone();
    let upstream = FakeUpstream::start(UpstreamOptions {
        latency_ms: 10,
        ..UpstreamOptions::default()
    })
    .await
    .unwrap();
    let dir = TempDir::new("pg-restart");
    let (listening, base) = tokio::sync::oneshot::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let (url, schema, dir, upstream) = (url.clone(), schema.clone(), dir.0.clone(), upstream.url());
        async move {
            pg::run_server(
                &url,
                &schema,
                &dir,
                &upstream,
                async move {
                    let _ = stopped.await;
                },
                listening,
            )
            .await;
        }
    });
    let base = base.await.unwrap();
    let client = reqwest::Client::new();
    let (account, key) = pg::account(&client, &base).await;
    let seen = Arc::new(Mutex::new(Acknowledged::default()));
    pg::pay(&client, &[&base], account, "before").await;
    seen.lock().unwrap().payments.insert("before".into(), account);
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (client, seen, base, key) = (client.clone(), Arc::clone(&seen), base.clone(), key.clone());
        clients.push(tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            while started.elapsed() < Duration::from_secs(6) {
                let t = Instant::now();
                pg::call(&client, &base, &key, &seen).await;
                slowest = slowest.max(t.elapsed());
            }
            slowest
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::spawn_blocking(|| cluster("stop"))
        .await
        .unwrap()
        .expect("PostgreSQL stops");
    let stopped_at = Instant::now();
    // While it is down, a new call is refused at once with 503, before the upstream.
    let mut probes = Vec::new();
    while stopped_at.elapsed() < Duration::from_secs(1) {
        let response = client
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 40}))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        probes.push(response.map(|r| r.status().as_u16()).map_err(|e| e.to_string()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started_again = tokio::task::spawn_blocking(|| cluster("start")).await.unwrap();
    // Whatever happened, the server must be running again for the tests after this one.
    if started_again.is_err() {
        let _ = cluster("start");
    }
    started_again.expect("PostgreSQL starts again");
    assert!(
        probes.iter().all(|p| *p == Ok(503)),
        "calls made while PostgreSQL was down: {probes:?}"
    );
    let mut slowest = Duration::ZERO;
    for c in clients {
        slowest = slowest.max(c.await.unwrap());
    }
    // Recovered by itself: a call after the outage is answered.
    let recovered = Instant::now();
    while !pg::call(&client, &base, &key, &seen).await {
        assert!(
            recovered.elapsed() < Duration::from_secs(10),
            "the server did not recover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    server.await.unwrap();
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    eprintln!(
        "{} calls acknowledged, failures by status {:?}, {} unanswered, slowest call {slowest:?}",
        seen.calls.len(),
        seen.failures,
        seen.unanswered
    );
    assert!(
        seen.failures.keys().all(|&s| s == 503),
        "while PostgreSQL is down calls fail with 503, nothing else: {:?}",
        seen.failures
    );
    assert_eq!(seen.unanswered, 0, "every call got an answer");
    assert!(
        slowest < Duration::from_millis(pg::HOLD_MS),
        "no call hung: the slowest took {slowest:?}"
    );
    pg::check(&url, &schema, &[account], &seen).await;
    drop(guard);
}
