//! Checks per second and latency percentiles through paygo's Redis store against the plain
//! GCRA script of go-redis/redis_rate, on the same Redis, in one run (`docs/ratelimit.md`,
//! "The shared store on Redis", has the figures):
//!
//! - **single**: one caller, one check after another (a check's round trip);
//! - **concurrent**: `CONCURRENCY` callers at once: paygo's checks gathered into one script
//!   call per batch on one connection; redis_rate's script called once per check two ways:
//!   `redis_rate` on one multiplexed connection, which pipelines the calls of all callers
//!   (a client-side batching redis_rate itself does not do), and `rr_pooled` as go-redis runs
//!   it, a pool of `POOL` connections (go-redis's default: 10 per core) with one call in
//!   flight on each, a round trip per check.
//!
//! The baseline script below is written for this benchmark from redis_rate's published
//! algorithm (GCRA on a TAT in floating seconds since 2017, time from `TIME`, `SET ... EX`);
//! it is not their file. Needs `PAYGO_BENCH_REDIS_URL` or `PAYGO_TEST_REDIS_URL`.
//!
//! ```sh
//! PAYGO_TEST_REDIS_URL=redis://127.0.0.1:6379 cargo bench -p paygo-redis --bench vs_redis_rate
//! ```
//! Knobs: `SECONDS` per measure (default 3), `ROUNDS` (default 3, the median is shown),
//! `CONCURRENCY` (default 64), `DEPTH` (paygo's `pipeline_depth`, default 2), `POOL` (default
//! 10 per core), `ONLY` (`paygo`, `redis_rate` or `rr_pooled`: one subject, for profiling).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
// Knobs are small positive numbers; one main, start to end; names in prose.
#![allow(clippy::cast_sign_loss, clippy::too_many_lines, clippy::doc_markdown)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paygo_ratelimit::{AsyncStore, Plan};
use paygo_redis::{LogSink, RedisOptions, RedisStore};
use redis::aio::{ConnectionManager, MultiplexedConnection};
use tokio::sync::Semaphore;

/// GCRA as redis_rate does it: one key, its TAT in seconds (a float) since 2017-01-01.
const BASELINE: &str = r"
local key = KEYS[1]
local burst, rate, period, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local interval = period / rate
local t = redis.call('TIME')
local now = (t[1] - 1483228800) + t[2] / 1000000
local tat = tonumber(redis.call('GET', key) or now)
if tat < now then tat = now end
local new_tat = tat + interval * cost
local diff = now - (new_tat - interval * burst)
if diff < 0 then
  return {0, 0, tostring(-diff), tostring(tat - now)}
end
local reset_after = new_tat - now
if reset_after > 0 then
  redis.call('SET', key, new_tat, 'EX', math.ceil(reset_after))
end
return {cost, math.floor(diff / interval), '-1', tostring(reset_after)}
";

#[derive(Clone)]
enum Subject {
    Paygo(Arc<RedisStore<u64>>),
    Baseline {
        conn: ConnectionManager,
        sha: String,
        prefix: String,
    },
    /// Connections each with at most one call in flight, as a go-redis pool hands them out:
    /// a caller takes any free one, and waits only while none is free.
    Pooled {
        free: Arc<Mutex<Vec<MultiplexedConnection>>>,
        permits: Arc<Semaphore>,
        sha: String,
        prefix: String,
    },
}

fn baseline_call(sha: &str, prefix: &str, key: u64) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(sha)
        .arg(1)
        .arg(format!("{prefix}:{key}"))
        .arg(60)
        .arg(18_000)
        .arg(3_600)
        .arg(1);
    cmd
}

impl Subject {
    async fn check(&self, key: u64) {
        match self {
            Subject::Paygo(store) => {
                store.check(&key, &[1]).await.expect("paygo answers");
            }
            Subject::Baseline { conn, sha, prefix } => {
                let mut conn = conn.clone();
                let _: redis::Value = baseline_call(sha, prefix, key)
                    .query_async(&mut conn)
                    .await
                    .expect("the baseline answers");
            }
            Subject::Pooled {
                free,
                permits,
                sha,
                prefix,
            } => {
                // A permit for each free connection: holding one, a connection is there.
                let _permit = permits.acquire().await.expect("the pool stays open");
                let mut conn = free.lock().unwrap().pop().expect("a permit means a free connection");
                let _: redis::Value = baseline_call(sha, prefix, key)
                    .query_async(&mut conn)
                    .await
                    .expect("the baseline answers");
                free.lock().unwrap().push(conn);
            }
        }
    }
}

struct Measure {
    per_s: f64,
    p50_us: f64,
    p99_us: f64,
}

async fn measure(subject: &Subject, callers: usize, seconds: f64) -> Measure {
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for c in 0..callers {
        let subject = subject.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(100_000);
            let mut key = c as u64 * 1_000_003;
            while Instant::now() < until {
                key = (key + 1) % 100_000;
                let start = Instant::now();
                subject.check(key).await;
                latencies.push(start.elapsed().as_nanos() as u64);
            }
            latencies
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)] as f64 / 1_000.0;
    Measure {
        per_s: all.len() as f64 / elapsed,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let Some(url) = std::env::var("PAYGO_BENCH_REDIS_URL")
        .ok()
        .or_else(|| std::env::var("PAYGO_TEST_REDIS_URL").ok())
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: set PAYGO_BENCH_REDIS_URL or PAYGO_TEST_REDIS_URL");
        return;
    };
    // `cargo test --benches` runs this with --bench absent: measure nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let env = |k: &str, d: f64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let (seconds, rounds, concurrency, pool_size) = (
        env("SECONDS", 3.0),
        env("ROUNDS", 3.0) as usize,
        env("CONCURRENCY", 64.0) as usize,
        env("POOL", 10.0 * cores as f64) as usize,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let prefix = format!("bench-{}", std::process::id());
        let mut options = RedisOptions::new(url.clone(), prefix.clone());
        options.log = LogSink::none();
        options.timeout_ms = 5_000;
        options.pipeline_depth = env("DEPTH", options.pipeline_depth as f64) as usize;
        let store = Arc::new(RedisStore::<u64>::open(options, &Plan::pay_as_you_go()).await.unwrap());
        let client = redis::Client::open(url.as_str()).unwrap();
        let conn = ConnectionManager::new(client.clone()).await.unwrap();
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(BASELINE)
            .query_async(&mut conn.clone())
            .await
            .unwrap();
        let mut pool = Vec::with_capacity(pool_size);
        for _ in 0..pool_size {
            pool.push(client.get_multiplexed_async_connection().await.unwrap());
        }
        let only = std::env::var("ONLY").unwrap_or_default();
        let subjects: Vec<(&str, Subject)> = [
            (
                "redis_rate",
                Subject::Baseline {
                    conn: conn.clone(),
                    sha: sha.clone(),
                    prefix: format!("{{{prefix}}}:rr"),
                },
            ),
            (
                "rr_pooled",
                Subject::Pooled {
                    free: Arc::new(Mutex::new(pool)),
                    permits: Arc::new(Semaphore::new(pool_size)),
                    sha,
                    prefix: format!("{{{prefix}}}:rp"),
                },
            ),
            ("paygo", Subject::Paygo(Arc::clone(&store))),
        ]
        .into_iter()
        .filter(|(name, _)| only.is_empty() || only == *name)
        .collect();
        println!(
            "== {cores} cores, load {}; {rounds} rounds of {seconds} s each, medians; concurrency {concurrency}, pool {pool_size}",
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .split(' ')
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        );
        for (label, callers) in [("single", 1), ("concurrent", concurrency)] {
            let mut results: Vec<(&str, Vec<Measure>)> = subjects.iter().map(|(n, _)| (*n, Vec::new())).collect();
            // Warm-up, then the subjects in turn, round after round.
            for (_, s) in &subjects {
                measure(s, callers, 0.5).await;
            }
            for _ in 0..rounds {
                for (i, (_, s)) in subjects.iter().enumerate() {
                    results[i].1.push(measure(s, callers, seconds).await);
                }
            }
            let mut per_s = Vec::new();
            for (name, ms) in &results {
                let m = (
                    median(ms.iter().map(|m| m.per_s).collect()),
                    median(ms.iter().map(|m| m.p50_us).collect()),
                    median(ms.iter().map(|m| m.p99_us).collect()),
                );
                per_s.push(m.0);
                println!(
                    "{label:>10} {name:>10}: {:>9.0} checks/s  p50 {:>7.1} us  p99 {:>7.1} us",
                    m.0, m.1, m.2
                );
            }
            let paygo = subjects.iter().position(|(n, _)| *n == "paygo");
            for (i, (name, _)) in subjects.iter().enumerate() {
                if let Some(p) = paygo
                    && i != p
                {
                    println!("{label:>10} paygo / {name}: {:.2}x checks/s", per_s[p] / per_s[i]);
                }
            }
        }
        let stats = store.stats();
        println!(
            "paygo: {} checks in {} script calls ({:.1} a call)",
            stats.operations,
            stats.script_calls,
            stats.operations as f64 / stats.script_calls.max(1) as f64
        );
    });
    // The benchmark's keys: the class hash and the time stay, the rest expire.
    if let Ok(client) = redis::Client::open(std::env::var("PAYGO_TEST_REDIS_URL").unwrap_or_default().as_str())
        && let Ok(mut conn) = client.get_connection()
    {
        let prefix = format!("{{bench-{}}}", std::process::id());
        let _: redis::RedisResult<u64> = redis::cmd("DEL")
            .arg(format!("{prefix}:c:0"))
            .arg(format!("{prefix}:now"))
            .query(&mut conn);
    }
}
