//! Three server replicas, each a process of its own, share one Redis; one account hammers
//! them all at once. From the servers' own logs of their decisions (each stamped with
//! Redis's time):
//!
//! - no rolling window of the plan's period holds more admitted calls than the quota;
//! - the decisions of all three replicas, in Redis's time order, are exactly one GCRA
//!   sequence (`paygo_ratelimit::gcra::check` replayed over them gives each one), so the
//!   replicas agree on the account's state at every moment;
//! - every 200 and 429 a client got carries the headers (`RateLimit`, `RateLimit-Policy`,
//!   `Retry-After`, `x-ratelimit-*`) of one of those decisions, whichever replica answered,
//!   and there are as many of each as the logs say.
//!
//! Needs `PAYGO_TEST_REDIS_URL` (skipped with a printed reason when unset, never in CI).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

#[path = "support/server.rs"]
mod server;
mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paygo_ratelimit::gcra;
use paygo_ratelimit::headers;
use paygo_testkit::store::TempDir;
use paygo_testkit::upstream::{FakeUpstream, UpstreamOptions};

use server::{Logged, PERIOD_NS, Replica, Spec};

/// The replica processes run this (see `server::child_main`); in a normal run it does nothing.
#[test]
fn child_server() {
    server::child_main();
}

const LIMIT: u64 = 40;
const BURST: u64 = 8;

#[allow(clippy::too_many_lines)] // one scenario, start to end
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_redis_keep_one_quota_and_agree_on_the_headers() {
    let Some(url) = support::url() else { return };
    let _lock = support::RedisLock::shared();
    let prefix = support::TestPrefix::new(&url, "replicas");
    let upstream = FakeUpstream::start(UpstreamOptions::default()).await.unwrap();
    let dirs: Vec<TempDir> = (0..3).map(|i| TempDir::new(&format!("redis-replica-{i}"))).collect();
    let logs: Vec<_> = dirs.iter().map(|d| d.0.with_extension("decisions.jsonl")).collect();
    let spec = |i: usize| Spec {
        redis: url.clone(),
        prefix: prefix.prefix.clone(),
        dir: dirs[i].0.clone(),
        upstream: upstream.url(),
        log: logs[i].clone(),
        closed: false,
        limit: LIMIT,
        burst: BURST,
    };
    let client = reqwest::Client::new();
    let a = Replica::start("child_server", &spec(0));
    let (account, key) = server::account(&client, &a.base).await;
    // The accounts and keys live in each replica's data directory: made on A, copied to the
    // others before they start; each has its own ledger, paid into.
    for dir in &dirs[1..] {
        std::fs::create_dir_all(&dir.0).unwrap();
        std::fs::copy(dirs[0].0.join("accounts.jsonl"), dir.0.join("accounts.jsonl")).unwrap();
    }
    let mut replicas = vec![
        a,
        Replica::start("child_server", &spec(1)),
        Replica::start("child_server", &spec(2)),
    ];
    for (i, r) in replicas.iter().enumerate() {
        server::pay(&client, &r.base, account, &format!("pay-{i}")).await;
    }
    // Bursts at the window edges: six clients as fast as answers come, all three replicas
    // in turn, for three periods.
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut clients = Vec::new();
    for t in 0..6usize {
        let (client, bases, key, seen) = (client.clone(), bases.clone(), key.clone(), Arc::clone(&seen));
        clients.push(tokio::spawn(async move {
            let mut n = t;
            while started.elapsed() < Duration::from_nanos(3 * PERIOD_NS) {
                n += 1;
                let replica = n % bases.len();
                if let Some(s) = server::call(&client, replica, &bases[replica], &key).await {
                    seen.lock().unwrap().push(s);
                }
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    for r in &mut replicas {
        assert!(r.alive(), "a replica died");
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let mut logged: Vec<Logged> = logs.iter().flat_map(|l| server::read_log(l)).collect();
    assert!(
        logged.iter().all(|l| l.error.is_none()),
        "every check answered by Redis"
    );

    // 1. The promise, on Redis's time: no window of a period admits more than the quota.
    let plan = server::plan(LIMIT, BURST);
    let quota = plan.policies[0].quota;
    let mut admitted: Vec<u64> = logged
        .iter()
        .filter(|l| l.decision.as_ref().unwrap().allowed)
        .map(|l| l.at_ns)
        .collect();
    admitted.sort_unstable();
    for (i, &start) in admitted.iter().enumerate() {
        let held = admitted[i..].iter().take_while(|&&t| t < start + PERIOD_NS).count() as u64;
        assert!(
            held <= LIMIT,
            "{held} calls admitted in the period from {start} ns: more than {LIMIT}"
        );
    }
    let refused = logged.len() - admitted.len();
    assert!(
        admitted.len() as u64 > 2 * BURST,
        "the load ran: {} admitted",
        admitted.len()
    );
    assert!(refused > 100, "the load was refused often: {refused} refusals");

    // 2. One GCRA sequence: in Redis's time order (at one instant, by the debt each
    // decision reports, a refusal after the admission that left that debt), each decision
    // is the step function's.
    let key_of = |l: &Logged| {
        let d = l.decision.as_ref().unwrap().decisions[0];
        (l.at_ns, d.reset_ns, !d.allowed)
    };
    logged.sort_by_key(key_of);
    let mut tat = 0u64;
    for (i, l) in logged.iter().enumerate() {
        let out = gcra::check(tat, l.at_ns, &quota, 1).unwrap();
        assert_eq!(
            out.decision,
            l.decision.as_ref().unwrap().decisions[0],
            "decision {i} at {}",
            l.at_ns
        );
        tat = out.new_tat.unwrap_or(tat);
    }

    // 3. Every response's headers are those of one logged decision, whichever replica
    // answered: the same multiset.
    let spec = &plan.policies[0];
    let mut expected: BTreeMap<(u16, Vec<(String, String)>), i64> = BTreeMap::new();
    for l in &logged {
        let d = &l.decision.as_ref().unwrap().decisions[0];
        let mut h: Vec<(String, String)> = headers::all(&[(&spec.name, spec.unit, d)])
            .into_iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v))
            .collect();
        h.sort();
        *expected.entry((if d.allowed { 200 } else { 429 }, h)).or_default() += 1;
    }
    let mut got: BTreeMap<(u16, Vec<(String, String)>), i64> = BTreeMap::new();
    let mut by_replica = [0u64; 3];
    for s in &seen {
        assert!(
            s.status == 200 || s.status == 429,
            "status {} from replica {}",
            s.status,
            s.replica
        );
        by_replica[s.replica] += 1;
        if s.status == 429 {
            assert!(
                s.headers.iter().any(|(n, _)| n == "retry-after"),
                "a 429 says when: {s:?}"
            );
        }
        *got.entry((s.status, s.headers.clone())).or_default() += 1;
    }
    assert!(
        by_replica.iter().all(|&n| n > 20),
        "every replica answered: {by_replica:?}"
    );
    assert_eq!(got, expected, "the responses' headers are the logged decisions'");
    eprintln!(
        "{} calls on 3 replicas ({by_replica:?}): {} admitted, {refused} refused, quota {LIMIT} per {} s",
        seen.len(),
        admitted.len(),
        PERIOD_NS / 1_000_000_000
    );
    drop(replicas);
    for log in &logs {
        let _ = std::fs::remove_file(log);
    }
}
