//! Redis failing under the store: the failure policies, and the server restarted in the
//! middle of the load with its data lost. In a binary of its own, holding the Redis tests'
//! lock exclusively (`support::RedisLock`): no other test of this crate sees the outage.
//!
//! Needs `PAYGO_TEST_REDIS_URL` on this machine (127.0.0.1 or localhost: the test stops and
//! starts `redis-server` itself); skipped with a printed reason otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

#[path = "support/server.rs"]
mod server;
mod support;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use paygo_ratelimit::{AsyncStore, Plan, RateLimitError};
use paygo_redis::{FailurePolicy, LogSink, RedisOptions, RedisStore};
use paygo_testkit::store::TempDir;
use paygo_testkit::upstream::{FakeUpstream, UpstreamOptions};

use server::{Replica, Spec};

/// The replica processes run this (see `server::child_main`); in a normal run it does nothing.
#[test]
fn child_server() {
    server::child_main();
}

fn ping(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
        return false;
    };
    redis::cmd("PING").query::<String>(&mut conn).is_ok()
}

fn command(url: &str, cmd: &redis::Cmd) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_connection()?;
    cmd.query(&mut conn)
}

/// The port of a local Redis URL, or `None` (printed) when the server is not on this machine.
fn local_port(url: &str) -> Option<u16> {
    let rest = url.strip_prefix("redis://")?;
    let host_port = rest.split('/').next()?;
    let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, "6379"));
    if host != "127.0.0.1" && host != "localhost" {
        eprintln!("skipped: the Redis of PAYGO_TEST_REDIS_URL is not on this machine; this test restarts it");
        return None;
    }
    port.parse().ok()
}

fn start_redis(port: u16) {
    let status = Command::new("redis-server")
        .args([
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            &port.to_string(),
        ])
        .args(["--save", "", "--appendonly", "no"])
        .status()
        .expect("redis-server runs");
    assert!(status.success(), "redis-server started");
    // A test run under `nice` would leave the server nice too: back to the usual priority
    // (root may; otherwise it stays as it is).
    for _ in 0..50 {
        let info = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "info", "server"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if let Some(pid) = info.lines().find_map(|l| l.strip_prefix("process_id:")) {
            let _ = Command::new("renice").args(["-n", "0", "-p", pid.trim()]).output();
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts Redis again if the test left it down (it failed in the middle).
struct Restore {
    url: String,
    port: u16,
}

impl Drop for Restore {
    fn drop(&mut self) {
        if !ping(&self.url) {
            start_redis(self.port);
            for _ in 0..50 {
                if ping(&self.url) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn capture() -> (LogSink, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let lines = Arc::clone(&lines);
        LogSink(Arc::new(move |line: &str| lines.lock().unwrap().push(line.to_owned())))
    };
    (sink, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_redis_does_not_answer_follows_the_failure_policy() {
    let Some(url) = support::url() else { return };
    let _lock = tokio::task::spawn_blocking(support::RedisLock::exclusive)
        .await
        .unwrap();
    let prefix = support::TestPrefix::new(&url, "policy");
    let key = "secret-account-4711".to_owned();
    let plan = Plan::pay_as_you_go();
    let mut stores = Vec::new();
    let mut captured = Vec::new();
    for failure in [FailurePolicy::Open, FailurePolicy::Closed] {
        let (sink, lines) = capture();
        let mut options = RedisOptions::new(url.clone(), prefix.prefix.clone());
        options.failure = failure;
        options.timeout_ms = 100;
        options.backoff_ms = 300;
        options.log = sink;
        let store: RedisStore<String> = RedisStore::open(options, &plan).await.unwrap();
        assert!(store.check(&key, &[1]).await.unwrap().value.allowed);
        stores.push(store);
        captured.push(lines);
    }
    let (open, closed) = (&stores[0], &stores[1]);
    // Redis holds every script call for 1.5 s: longer than the timeout.
    command(&url, redis::cmd("CLIENT").arg("PAUSE").arg(1_500).arg("WRITE")).unwrap();
    let paused = Instant::now();
    let answer = open.check(&key, &[1]).await.unwrap();
    assert!(answer.value.allowed, "fail open admits: {answer:?}");
    assert_eq!(answer.value.decisions[0].remaining, 59, "answered as a fresh key");
    assert_eq!(
        closed.check(&key, &[1]).await.map(|_| ()),
        Err(RateLimitError::StoreUnavailable {
            message: "no answer within 100 ms".into()
        }),
        "fail closed refuses"
    );
    assert!(
        paused.elapsed() < Duration::from_secs(1),
        "each call gave up after its timeout"
    );
    // During the back-off a call fails at once, without waiting for a timeout.
    let quick = Instant::now();
    assert!(closed.check(&key, &[1]).await.is_err());
    assert!(open.check(&key, &[1]).await.unwrap().value.allowed);
    assert!(quick.elapsed() < Duration::from_millis(50), "{:?}", quick.elapsed());
    // A weight above the burst is refused even without Redis.
    assert!(matches!(
        open.check(&key, &[61]).await,
        Err(RateLimitError::WeightExceedsBurst { weight: 61, burst: 60 })
    ));
    let (o, c) = (open.stats(), closed.stats());
    assert_eq!((o.failed_open, o.failed_closed), (2, 0), "{o:?}");
    assert_eq!((c.failed_open, c.failed_closed), (0, 2), "{c:?}");
    assert!(o.failures >= 2 && c.failures >= 2, "{o:?} {c:?}");
    // Back by itself once Redis answers again.
    tokio::time::sleep(Duration::from_millis(1_600).saturating_sub(paused.elapsed())).await;
    let mut back = None;
    for _ in 0..50 {
        if let Ok(answer) = closed.check(&key, &[1]).await {
            back = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let back = back.expect("the closed store answers again");
    assert!(back.value.allowed);
    assert!(open.check(&key, &[1]).await.is_ok());
    for (lines, policy) in captured.iter().zip(["open", "closed"]) {
        let lines = lines.lock().unwrap();
        assert!(lines.len() >= 2, "{lines:?}");
        assert!(
            lines[0].contains("unavailable") && lines[0].contains(policy),
            "{lines:?}"
        );
        assert!(lines.iter().any(|l| l.contains("answers again")), "{lines:?}");
        assert!(
            !lines.iter().any(|l| l.contains("4711")),
            "no key in a log line: {lines:?}"
        );
    }
}

/// What calls to one replica got, split by when they ran.
#[derive(Default, Debug)]
struct Phases {
    during: Vec<u16>,
    after: Vec<u16>,
}

#[allow(clippy::too_many_lines)] // one scenario, start to end
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_mid_load_keeps_the_policy_and_recovers() {
    let Some(url) = support::url() else { return };
    let Some(port) = local_port(&url) else { return };
    let _lock = tokio::task::spawn_blocking(support::RedisLock::exclusive)
        .await
        .unwrap();
    let restore = Restore { url: url.clone(), port };
    let prefix = support::TestPrefix::new(&url, "restart");
    let upstream = FakeUpstream::start(UpstreamOptions::default()).await.unwrap();
    let dirs: Vec<TempDir> = (0..2).map(|i| TempDir::new(&format!("redis-restart-{i}"))).collect();
    let logs: Vec<_> = dirs.iter().map(|d| d.0.with_extension("decisions.jsonl")).collect();
    // Replica 0 fails open, replica 1 fails closed; both share the limits.
    let spec = |i: usize| Spec {
        redis: url.clone(),
        prefix: prefix.prefix.clone(),
        dir: dirs[i].0.clone(),
        upstream: upstream.url(),
        log: logs[i].clone(),
        closed: i == 1,
        limit: 40,
        burst: 8,
    };
    let client = reqwest::Client::new();
    let a = Replica::start("child_server", &spec(0));
    let (account, key) = server::account(&client, &a.base).await;
    std::fs::create_dir_all(&dirs[1].0).unwrap();
    std::fs::copy(dirs[0].0.join("accounts.jsonl"), dirs[1].0.join("accounts.jsonl")).unwrap();
    let mut replicas = vec![a, Replica::start("child_server", &spec(1))];
    for (i, r) in replicas.iter().enumerate() {
        server::pay(&client, &r.base, account, &format!("pay-{i}")).await;
    }
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for t in 0..4usize {
        let (client, bases, key, seen, stop) = (
            client.clone(),
            bases.clone(),
            key.clone(),
            Arc::clone(&seen),
            Arc::clone(&stop),
        );
        clients.push(tokio::spawn(async move {
            let mut n = t;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let replica = n % bases.len();
                if let Some(s) = server::call(&client, replica, &bases[replica], &key).await {
                    seen.lock().unwrap().push(s);
                }
                // Not every call at full speed: the outage should see a steady stream.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // Redis stops without saving: its data is gone.
    let _ = command(&url, redis::cmd("SHUTDOWN").arg("NOSAVE"));
    while ping(&url) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let down_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let up_from = Instant::now();
    tokio::task::spawn_blocking(move || start_redis(port)).await.unwrap();
    while !ping(&url) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let up_at = Instant::now();
    let up_ns = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    for r in &mut replicas {
        assert!(r.alive(), "a replica died (a panic?)");
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let mut phases = [Phases::default(), Phases::default()];
    for s in &seen {
        if s.sent > down_at && s.answered < up_from {
            phases[s.replica].during.push(s.status);
        } else if s.sent > up_at + Duration::from_secs(1) {
            phases[s.replica].after.push(s.status);
        }
    }
    let [open, closed] = &phases;
    // The policy during the outage: fail open admits every call, fail closed refuses each
    // with 503 (rate_limiter_unavailable).
    assert!(open.during.len() > 10 && closed.during.len() > 10, "{phases:?}");
    assert!(open.during.iter().all(|&s| s == 200), "fail open: {:?}", open.during);
    assert!(
        closed.during.iter().all(|&s| s == 503),
        "fail closed: {:?}",
        closed.during
    );
    // Recovered: Redis decides again on both (429s are back), no 503 any more.
    for (i, p) in phases.iter().enumerate() {
        assert!(
            p.after.iter().all(|&s| s == 200 || s == 429),
            "replica {i} after: {:?}",
            p.after
        );
        assert!(
            p.after.contains(&429) && p.after.contains(&200),
            "replica {i} limits again: {:?}",
            p.after
        );
    }
    // And the promise holds again, on Redis's time, from the restart on.
    let mut admitted: Vec<u64> = logs
        .iter()
        .flat_map(|l| server::read_log(l))
        .filter(|l| l.error.is_none() && l.at_ns > up_ns && l.decision.as_ref().unwrap().allowed)
        .map(|l| l.at_ns)
        .collect();
    admitted.sort_unstable();
    assert!(admitted.len() > 8, "admitted after the restart: {}", admitted.len());
    for (i, &start) in admitted.iter().enumerate() {
        let held = admitted[i..]
            .iter()
            .take_while(|&&t| t < start + server::PERIOD_NS)
            .count();
        assert!(
            held <= 40,
            "{held} admitted in the period from {start} ns after the restart"
        );
    }
    let failed_open = logs
        .iter()
        .flat_map(|l| server::read_log(l))
        .filter(|l| l.error.as_deref() == Some("failed open"))
        .count();
    assert!(
        failed_open >= open.during.len(),
        "the open replica's fail-open answers are counted"
    );
    eprintln!(
        "{} calls; during the outage: open replica {} (all 200), closed replica {} (all 503); {} admitted after it",
        seen.len(),
        open.during.len(),
        closed.during.len(),
        admitted.len()
    );
    drop(replicas);
    drop(restore);
    for log in &logs {
        let _ = std::fs::remove_file(log);
    }
}
