//! Hold+capture pairs per second on PostgreSQL, two ways in one run: paygo's batched
//! store ([`PgStore`]: concurrent submissions combined into one transaction per batch) and a
//! naive ledger written the usual way (one transaction per command, `SELECT ... FOR UPDATE`
//! on the account row, no batching). Same customers, same concurrency, same runtime.
//!
//! Run with `cargo bench -p paygo-postgres --bench pairs` (see `benches/README.md` for the
//! knobs). Reads `PAYGO_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1/test`),
//! uses the schemas `bench_batched` and `bench_naive` and drops both at the end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // a bench fails loudly
#![allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)] // small counts and ids
#![allow(clippy::too_many_lines)] // the steps of a run, in order

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use paygo_billing::{
    BillingConfig, BillingStore, CardKind, Command, CustomerId, HoldId, PaymentMethod, Receipt, TopUpId,
};
use paygo_credits::{Credits, Money};
use paygo_postgres::{PgOptions, PgStore};
use tokio_postgres::NoTls;

/// What a pair holds, and what its capture charges (the rest is released).
const HOLD: i64 = 1_000;
const CHARGE: i64 = 700;
/// Each customer's top-up: $10,000 = 20,000,000,000 credits, 28 million pairs.
const TOP_UP_USD: &str = "10000.00";
const TOP_UP_CREDITS: i64 = 20_000_000_000;
/// Customer ids: the wide set starts at 1, the hot set at `HOT_BASE`.
const HOT_BASE: u64 = 1_000_000;
const BATCHED_SCHEMA: &str = "bench_batched";
const NAIVE_SCHEMA: &str = "bench_naive";

// ---------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------

struct Settings {
    url: String,
    warmup: Duration,
    measure: Duration,
    reps: usize,
    concurrency: Vec<usize>,
    customers: Vec<u64>,
    naive_pools: Vec<usize>,
    combiners: Option<usize>,
    prefill: Duration,
    analyze: bool,
}

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}: {s:?} is not a number"))
        })
        .collect()
}

fn env_secs(name: &str, default: f64) -> Duration {
    let value = std::env::var(name).map_or(default, |s| {
        s.parse().unwrap_or_else(|_| panic!("{name}: {s:?} is not seconds"))
    });
    Duration::from_secs_f64(value)
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            url: std::env::var("PAYGO_TEST_POSTGRES_URL")
                .ok()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1/test".to_owned()),
            warmup: env_secs("PAIRS_WARMUP_SECS", 2.0),
            measure: env_secs("PAIRS_SECS", 10.0),
            reps: env_list("PAIRS_REPS", "3")[0],
            concurrency: env_list("PAIRS_CONCURRENCY", "16,64,256"),
            customers: env_list("PAIRS_CUSTOMERS", "1000,10")
                .into_iter()
                .map(|n| n as u64)
                .collect(),
            naive_pools: env_list("PAIRS_NAIVE_POOLS", "8,32"),
            combiners: std::env::var("PAIRS_COMBINERS").ok().map(|s| s.parse().unwrap()),
            prefill: env_secs("PAIRS_PREFILL_SECS", 5.0),
            analyze: std::env::var("PAIRS_ANALYZE").map_or(true, |v| v != "0"),
        }
    }
}

/// The first id of a set of `n` customers: the wide set and the hot set do not overlap.
fn base_of(n: u64, settings: &Settings) -> u64 {
    let largest = settings.customers.iter().copied().max().unwrap_or(0);
    if n == largest { 1 } else { HOT_BASE * (1 + n) }
}

// ---------------------------------------------------------------------------------------
// CPU accounting from /proc
// ---------------------------------------------------------------------------------------

/// utime + stime of a `/proc/<pid>/stat` line, and the process's name.
fn stat_ticks(line: &str) -> Option<(String, u64)> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let name = line[open + 1..close].to_owned();
    let fields: Vec<&str> = line[close + 1..].split_whitespace().collect();
    // After the name: state is field 3, utime 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// CPU ticks of every `postgres` process now alive, by pid.
fn postgres_ticks() -> HashMap<u32, u64> {
    let mut total = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return total;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(line) = std::fs::read_to_string(entry.path().join("stat"))
            && let Some((comm, ticks)) = stat_ticks(&line)
            && comm == "postgres"
        {
            total.insert(pid, ticks);
        }
    }
    total
}

/// Ticks spent between two samples by the processes alive at the second (a process that
/// started in between counts whole; one that ended in between is lost).
fn ticks_between(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> u64 {
    after
        .iter()
        .map(|(pid, t)| t.saturating_sub(before.get(pid).copied().unwrap_or(0)))
        .sum()
}

fn own_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|l| stat_ticks(&l))
        .map_or(0, |(_, t)| t)
}

/// Busy ticks of the whole machine (all CPUs), from /proc/stat.
fn machine_busy_ticks() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(line) = text.lines().next() else { return 0 };
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|s| s.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal ...
    v.iter().take(8).sum::<u64>() - v.get(3).copied().unwrap_or(0) - v.get(4).copied().unwrap_or(0)
}

fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

struct CpuSample {
    postgres: HashMap<u32, u64>,
    own: u64,
    machine: u64,
}

impl CpuSample {
    fn now() -> CpuSample {
        CpuSample {
            postgres: postgres_ticks(),
            own: own_ticks(),
            machine: machine_busy_ticks(),
        }
    }
}

/// The server's WAL insert position in bytes: the whole cluster's WAL, ours and anyone's.
async fn wal_position(url: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    let task = tokio::spawn(connection);
    let row = client
        .query_one("SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8", &[])
        .await
        .unwrap();
    drop(client);
    let _ = task.await;
    row.get(0)
}

// ---------------------------------------------------------------------------------------
// The two variants
// ---------------------------------------------------------------------------------------

/// The naive ledger: one transaction per command, row locks, prepared statements.
struct Naive {
    pool: Pool,
    sql: NaiveSql,
}

/// The naive ledger's statements, prepared once per connection (`prepare_cached`).
struct NaiveSql {
    lock_account: String,
    add_held: String,
    insert_hold: String,
    insert_hold_entry: String,
    lock_hold: String,
    charge_account: String,
    close_hold: String,
    insert_charge_entry: String,
}

impl NaiveSql {
    fn new() -> NaiveSql {
        NaiveSql {
            lock_account: sql("SELECT balance, held FROM {s}.accounts WHERE id = $1 FOR UPDATE"),
            add_held: sql("UPDATE {s}.accounts SET held = held + $2 WHERE id = $1"),
            insert_hold: sql("INSERT INTO {s}.holds (id, account, amount, status) VALUES ($1, $2, $3, 0)"),
            insert_hold_entry: sql("INSERT INTO {s}.entries (account, hold, kind, amount) VALUES ($1, $2, 1, $3)"),
            lock_hold: sql("SELECT account, amount, status FROM {s}.holds WHERE id = $1 FOR UPDATE"),
            charge_account: sql("UPDATE {s}.accounts SET balance = balance - $2, held = held - $3 WHERE id = $1"),
            close_hold: sql("UPDATE {s}.holds SET status = 1 WHERE id = $1"),
            insert_charge_entry: sql("INSERT INTO {s}.entries (account, hold, kind, amount) VALUES ($1, $2, 2, $3)"),
        }
    }
}

fn sql(template: &str) -> String {
    template.replace("{s}", NAIVE_SCHEMA)
}

impl Naive {
    async fn create(url: &str, customers: &[(u64, u64)], pool_size: usize) -> Naive {
        let naive = Naive::connect(url, pool_size);
        let client = naive.pool.get().await.unwrap();
        client
            .batch_execute(&sql("DROP SCHEMA IF EXISTS {s} CASCADE;
                 CREATE SCHEMA {s};
                 CREATE TABLE {s}.accounts (id bigint PRIMARY KEY, balance bigint NOT NULL, held bigint NOT NULL);
                 CREATE TABLE {s}.holds (id bigint PRIMARY KEY, account bigint NOT NULL, amount bigint NOT NULL,
                                         status smallint NOT NULL);
                 CREATE TABLE {s}.entries (id bigserial PRIMARY KEY, account bigint NOT NULL, hold bigint NOT NULL,
                                           kind smallint NOT NULL, amount bigint NOT NULL,
                                           at timestamptz NOT NULL DEFAULT now());"))
            .await
            .unwrap();
        for &(base, n) in customers {
            client
                .execute(
                    &sql("INSERT INTO {s}.accounts (id, balance, held)
                          SELECT g, $3, 0 FROM generate_series($1::int8, $2::int8) g"),
                    &[&(base as i64), &((base + n - 1) as i64), &TOP_UP_CREDITS],
                )
                .await
                .unwrap();
        }
        client.batch_execute(&sql("ANALYZE {s}.accounts")).await.unwrap();
        naive
    }

    fn connect(url: &str, pool_size: usize) -> Naive {
        let mut pg: tokio_postgres::Config = url.parse().unwrap();
        pg.application_name("paygo-bench-naive");
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .unwrap();
        Naive {
            pool,
            sql: NaiveSql::new(),
        }
    }

    /// BEGIN; lock the account; check; update held, insert the hold and its entry; COMMIT.
    async fn hold(&self, id: i64, account: i64, amount: i64) -> Result<bool, tokio_postgres::Error> {
        let q = &self.sql;
        let mut client = self.pool.get().await.unwrap();
        let tx = client.transaction().await?;
        let lock = tx.prepare_cached(&q.lock_account).await?;
        let row = tx.query_one(&lock, &[&account]).await?;
        let (balance, held): (i64, i64) = (row.get(0), row.get(1));
        if balance - held < amount {
            tx.rollback().await?;
            return Ok(false);
        }
        let (update, insert_hold, insert_entry) = tokio::try_join!(
            tx.prepare_cached(&q.add_held),
            tx.prepare_cached(&q.insert_hold),
            tx.prepare_cached(&q.insert_hold_entry),
        )?;
        // The three writes are independent: pipelined on the connection, one round trip.
        tokio::try_join!(
            async { tx.execute(&update, &[&account, &amount]).await },
            async { tx.execute(&insert_hold, &[&id, &account, &amount]).await },
            async { tx.execute(&insert_entry, &[&account, &id, &amount]).await },
        )?;
        tx.commit().await?;
        Ok(true)
    }

    /// BEGIN; lock the hold; lock its account; update the balances and the hold, insert the
    /// transfer; COMMIT. Returns the credits charged (none if the hold was not open).
    async fn capture(&self, id: i64, charge: i64) -> Result<Option<i64>, tokio_postgres::Error> {
        let q = &self.sql;
        let mut client = self.pool.get().await.unwrap();
        let tx = client.transaction().await?;
        let lock_hold = tx.prepare_cached(&q.lock_hold).await?;
        let Some(hold_row) = tx.query_opt(&lock_hold, &[&id]).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        let (account, amount, status): (i64, i64, i16) = (hold_row.get(0), hold_row.get(1), hold_row.get(2));
        if status != 0 || charge > amount {
            tx.rollback().await?;
            return Ok(None);
        }
        let lock_account = tx.prepare_cached(&q.lock_account).await?;
        let row = tx.query_one(&lock_account, &[&account]).await?;
        let (balance, held): (i64, i64) = (row.get(0), row.get(1));
        assert!(held >= amount && balance >= charge, "naive ledger out of balance");
        let (update, close, insert_entry) = tokio::try_join!(
            tx.prepare_cached(&q.charge_account),
            tx.prepare_cached(&q.close_hold),
            tx.prepare_cached(&q.insert_charge_entry),
        )?;
        tokio::try_join!(
            async { tx.execute(&update, &[&account, &charge, &amount]).await },
            async { tx.execute(&close, &[&id]).await },
            async { tx.execute(&insert_entry, &[&account, &id, &charge]).await },
        )?;
        tx.commit().await?;
        Ok(Some(charge))
    }

    /// Charged entries, the balances' shortfall, open holds, held credits.
    async fn check(&self, customers: &[(u64, u64)]) -> (i64, i64, i64, i64) {
        let client = self.pool.get().await.unwrap();
        let accounts: i64 = customers.iter().map(|&(_, n)| n as i64).sum();
        let row = client
            .query_one(
                &sql(
                    "SELECT (SELECT coalesce(sum(amount), 0)::int8 FROM {s}.entries WHERE kind = 2),
                             (SELECT ($1::int8 * count(*) - coalesce(sum(balance), 0))::int8 FROM {s}.accounts),
                             (SELECT count(*) FROM {s}.holds WHERE status = 0),
                             (SELECT coalesce(sum(held), 0)::int8 FROM {s}.accounts),
                             (SELECT count(*) FROM {s}.accounts)",
                ),
                &[&TOP_UP_CREDITS],
            )
            .await
            .unwrap();
        let n: i64 = row.get(4);
        assert_eq!(n, accounts, "naive accounts");
        (row.get(0), row.get(1), row.get(2), row.get(3))
    }
}

#[derive(Clone)]
enum Variant {
    Batched(PgStore),
    Naive(Arc<Naive>, usize),
}

impl Variant {
    fn name(&self) -> String {
        match self {
            Variant::Batched(_) => "batched PgStore".to_owned(),
            Variant::Naive(_, pool) => format!("naive, pool {pool}"),
        }
    }

    /// One hold and its capture; the credits charged.
    async fn pair(&self, customer: u64, hold_id: u64) -> Result<i64, String> {
        match self {
            Variant::Batched(store) => {
                let held = store
                    .submit(vec![Command::Hold {
                        id: HoldId(u128::from(hold_id)),
                        customer: CustomerId(u128::from(customer)),
                        amount: Credits::new(HOLD),
                        timeout_ms: 600_000,
                    }])
                    .await
                    .map_err(|e| format!("hold: {e}"))?;
                match held.first() {
                    Some(Ok(Receipt::Held { .. })) => {}
                    other => return Err(format!("hold: {other:?}")),
                }
                let captured = store
                    .submit(vec![Command::Capture {
                        hold: HoldId(u128::from(hold_id)),
                        amount: Credits::new(CHARGE),
                    }])
                    .await
                    .map_err(|e| format!("capture: {e}"))?;
                match captured.first() {
                    Some(Ok(Receipt::Captured { charged, .. })) => Ok(charged.get()),
                    other => Err(format!("capture: {other:?}")),
                }
            }
            Variant::Naive(naive, _) => {
                let (hold, customer) = (hold_id as i64, customer as i64);
                if !naive
                    .hold(hold, customer, HOLD)
                    .await
                    .map_err(|e| format!("hold: {e}"))?
                {
                    return Err("hold: refused".to_owned());
                }
                naive
                    .capture(hold, CHARGE)
                    .await
                    .map_err(|e| format!("capture: {e}"))?
                    .ok_or_else(|| "capture: refused".to_owned())
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// One run
// ---------------------------------------------------------------------------------------

struct Run {
    pairs_per_s: f64,
    p50_us: u32,
    p99_us: u32,
    batches_per_s: f64,
    commands_per_batch: f64,
    retries: u64,
    postgres_cpu: f64,
    own_cpu: f64,
    /// CPU time per pair measured: less sensitive to other load than pairs/s.
    postgres_us_per_pair: f64,
    own_us_per_pair: f64,
    /// WAL written per pair measured (the whole cluster's WAL).
    wal_bytes_per_pair: f64,
    other_cpu: f64,
    /// Credits charged by every pair acknowledged, warm-up and tail included.
    charged: i64,
    errors: u64,
}

const WARMING: u8 = 0;
const MEASURING: u8 = 1;
const STOPPING: u8 = 2;

async fn run_once(
    variant: &Variant,
    (base, n): (u64, u64),
    concurrency: usize,
    (warmup, measure): (Duration, Duration),
    url: &str,
    next_hold: &Arc<AtomicU64>,
    tck: u64,
) -> Run {
    let phase = Arc::new(AtomicU8::new(WARMING));
    let mut tasks = Vec::with_capacity(concurrency);
    for t in 0..concurrency {
        let (variant, phase, next_hold) = (variant.clone(), Arc::clone(&phase), Arc::clone(next_hold));
        tasks.push(tokio::spawn(async move {
            // A small xorshift per task: which customer each pair charges.
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let mut latencies: Vec<u32> = Vec::new();
            let (mut charged, mut errors, mut first_error) = (0i64, 0u64, None);
            while phase.load(Ordering::Relaxed) != STOPPING {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let customer = base + x % n;
                let hold = next_hold.fetch_add(1, Ordering::Relaxed);
                let start = Instant::now();
                match variant.pair(customer, hold).await {
                    Ok(c) => charged += c,
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                        continue;
                    }
                }
                if phase.load(Ordering::Relaxed) == MEASURING {
                    latencies.push(u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX));
                }
            }
            (latencies, charged, errors, first_error)
        }));
    }
    tokio::time::sleep(warmup).await;
    let stats0 = match variant {
        Variant::Batched(s) => Some(s.stats()),
        Variant::Naive(..) => None,
    };
    let wal0 = wal_position(url).await;
    let cpu0 = CpuSample::now();
    let t0 = Instant::now();
    phase.store(MEASURING, Ordering::Relaxed);
    tokio::time::sleep(measure).await;
    phase.store(STOPPING, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu1 = CpuSample::now();
    let wal1 = wal_position(url).await;
    let stats1 = match variant {
        Variant::Batched(s) => Some(s.stats()),
        Variant::Naive(..) => None,
    };
    let mut latencies = Vec::new();
    let (mut charged, mut errors) = (0, 0);
    for task in tasks {
        let (l, c, e, first) = tokio::time::timeout(Duration::from_secs(120), task)
            .await
            .expect("a pair took more than 2 minutes")
            .unwrap();
        latencies.extend(l);
        charged += c;
        errors += e;
        if let Some(first) = first {
            eprintln!("  error: {first}");
        }
    }
    latencies.sort_unstable();
    let pct = |p: usize| latencies.get(latencies.len() * p / 100).copied().unwrap_or(0);
    let cores = |ticks: u64| ticks as f64 / tck as f64 / elapsed * 100.0;
    let (pg, own, machine) = (
        ticks_between(&cpu0.postgres, &cpu1.postgres),
        cpu1.own.saturating_sub(cpu0.own),
        cpu1.machine.saturating_sub(cpu0.machine),
    );
    let per_pair = |ticks: u64| ticks as f64 / tck as f64 * 1e6 / (latencies.len().max(1) as f64);
    let (batches_per_s, commands_per_batch, retries) = match (stats0, stats1) {
        (Some(a), Some(b)) => {
            let batches = b.batches - a.batches;
            (
                batches as f64 / elapsed,
                (b.commands - a.commands) as f64 / batches.max(1) as f64,
                b.retries - a.retries,
            )
        }
        _ => (0.0, 0.0, 0),
    };
    Run {
        pairs_per_s: latencies.len() as f64 / elapsed,
        p50_us: pct(50),
        p99_us: pct(99),
        batches_per_s,
        commands_per_batch,
        retries,
        postgres_cpu: cores(pg),
        own_cpu: cores(own),
        postgres_us_per_pair: per_pair(pg),
        wal_bytes_per_pair: (wal1 - wal0) as f64 / (latencies.len().max(1) as f64),
        own_us_per_pair: per_pair(own),
        other_cpu: cores(machine.saturating_sub(pg + own)),
        charged,
        errors,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

// ---------------------------------------------------------------------------------------
// Setup and checks
// ---------------------------------------------------------------------------------------

async fn open_batched(settings: &Settings, customers: &[(u64, u64)]) -> PgStore {
    paygo_postgres::drop_schema(&settings.url, BATCHED_SCHEMA)
        .await
        .unwrap();
    let mut options = PgOptions::new(settings.url.clone()).with_schema(BATCHED_SCHEMA);
    if let Some(c) = settings.combiners {
        options.combiners = c;
    }
    let store = PgStore::open(options, BillingConfig::default()).await.unwrap();
    let mut top_up_id = 1u128;
    for &(base, n) in customers {
        let mut commands = Vec::new();
        for c in base..base + n {
            let customer = CustomerId(u128::from(c));
            commands.push(Command::OpenAccount { customer });
            commands.push(Command::TopUp {
                id: TopUpId(top_up_id),
                customer,
                amount: Money::usd(TOP_UP_USD.parse().unwrap()),
                method: PaymentMethod::Card(CardKind::Credit),
            });
            top_up_id += 1;
        }
        for chunk in commands.chunks(1_000) {
            let replies = store.submit(chunk.to_vec()).await.unwrap();
            for r in replies {
                match r {
                    Ok(Receipt::Opened) => {}
                    Ok(Receipt::ToppedUp { credits }) => assert_eq!(credits.get(), TOP_UP_CREDITS),
                    other => panic!("setup: {other:?}"),
                }
            }
        }
    }
    store
}

/// The books of both variants against the pairs acknowledged: panics on a difference.
async fn check(variant: &Variant, customers: &[(u64, u64)], acknowledged: i64) -> String {
    match variant {
        Variant::Batched(store) => {
            let audit = store.audit().await.unwrap();
            assert!(audit.conserved(), "PgStore audit not conserved: {audit:?}");
            assert_eq!(
                audit.revenue,
                i128::from(acknowledged),
                "PgStore revenue differs from the captures acknowledged"
            );
            format!(
                "revenue {} = acknowledged, conserved, {} customers",
                audit.revenue, audit.customers
            )
        }
        Variant::Naive(naive, _) => {
            let (charged, spent, open, held) = naive.check(customers).await;
            assert_eq!(
                charged, acknowledged,
                "naive charged entries differ from the captures acknowledged"
            );
            assert_eq!(
                spent, acknowledged,
                "naive balances differ from the captures acknowledged"
            );
            assert_eq!((open, held), (0, 0), "naive holds left open");
            format!("sum(charges) {charged} = acknowledged = balances spent, no open hold")
        }
    }
}

// ---------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------

struct Row {
    variant: String,
    customers: u64,
    concurrency: usize,
    runs: Vec<Run>,
}

fn main() {
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench(settings));
}

async fn bench(settings: Settings) {
    let tck = clock_ticks_per_second();
    let customers: Vec<(u64, u64)> = settings.customers.iter().map(|&n| (base_of(n, &settings), n)).collect();
    println!("pairs: hold {HOLD} + capture {CHARGE} credits per pair, fresh hold id each");
    println!("url: {}", settings.url);
    println!(
        "warm-up {:?}, measured {:?}, {} repetitions, concurrency {:?}, customers {:?}, naive pools {:?}, \
         tokio workers {}, CLK_TCK {tck}, prefill {:?}, analyze {}",
        settings.warmup,
        settings.measure,
        settings.reps,
        settings.concurrency,
        settings.customers,
        settings.naive_pools,
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        settings.prefill,
        settings.analyze,
    );

    let store = open_batched(&settings, &customers).await;
    let mut variants = vec![Variant::Batched(store.clone())];
    let mut first = true;
    for &pool in &settings.naive_pools {
        // One schema for the naive variants: the first creates it, the others share it.
        let naive = if first {
            Naive::create(&settings.url, &customers, pool).await
        } else {
            Naive::connect(&settings.url, pool)
        };
        first = false;
        variants.push(Variant::Naive(Arc::new(naive), pool));
    }
    let next_hold = Arc::new(AtomicU64::new(1));
    let mut acknowledged = vec![0i64; variants.len()];
    // Prefill: some pairs on every variant, so that the tables hold closed holds and
    // history, then ANALYZE (what autovacuum does to a live store within a minute or so;
    // until then the planner works from empty-table guesses: see benches/README.md).
    if !settings.prefill.is_zero() {
        for (i, variant) in variants.iter().enumerate() {
            let (base, n) = customers[0];
            let run = run_once(
                variant,
                (base, n),
                64,
                (Duration::ZERO, settings.prefill),
                &settings.url,
                &next_hold,
                tck,
            )
            .await;
            assert_eq!(run.errors, 0, "prefill pairs failed");
            acknowledged[i] += run.charged;
            println!("prefill {:<16} {:.0} pairs/s", variant.name(), run.pairs_per_s);
        }
    }
    if settings.analyze {
        let (client, connection) = tokio_postgres::connect(&settings.url, NoTls).await.unwrap();
        let task = tokio::spawn(connection);
        let mut analyze = format!(
            "ANALYZE {BATCHED_SCHEMA}.customers, {BATCHED_SCHEMA}.replies, {BATCHED_SCHEMA}.entries, \
             {BATCHED_SCHEMA}.charges_hourly, {BATCHED_SCHEMA}.requests;"
        );
        if variants.len() > 1 {
            let _ = write!(
                analyze,
                "ANALYZE {NAIVE_SCHEMA}.accounts, {NAIVE_SCHEMA}.holds, {NAIVE_SCHEMA}.entries;"
            );
        }
        client.batch_execute(&analyze).await.unwrap();
        drop(client);
        let _ = task.await;
        println!("analyzed both schemas (PAIRS_ANALYZE=0 to skip)");
    }
    // The naive variants share one schema: their acknowledgements add up.
    let mut rows = Vec::new();
    for &(base, n) in &customers {
        for &concurrency in &settings.concurrency {
            let mut row_runs: Vec<Vec<Run>> = variants.iter().map(|_| Vec::new()).collect();
            for rep in 0..settings.reps {
                // Interleaved: every variant runs once per repetition, so drift in the
                // machine's load falls on all of them alike.
                for (i, variant) in variants.iter().enumerate() {
                    let times = (settings.warmup, settings.measure);
                    let run = run_once(variant, (base, n), concurrency, times, &settings.url, &next_hold, tck).await;
                    acknowledged[i] += run.charged;
                    let total: i64 = match variant {
                        Variant::Batched(_) => acknowledged[i],
                        Variant::Naive(..) => acknowledged[1..].iter().sum(),
                    };
                    let verdict = check(variant, &customers, total).await;
                    println!(
                        "  {:<16} customers {n:>5} conc {concurrency:>4} rep {}: {:>8.0} pairs/s p50 {:>6} us p99 {:>6} us \
                         pg {:>4.0}% ({:.0} us/pair) bench {:>4.0}% ({:.0} us/pair) other {:>3.0}% WAL {:.0} B/pair{}{} | {verdict}",
                        variant.name(),
                        rep + 1,
                        run.pairs_per_s,
                        run.p50_us,
                        run.p99_us,
                        run.postgres_cpu,
                        run.postgres_us_per_pair,
                        run.own_cpu,
                        run.own_us_per_pair,
                        run.other_cpu,
                        run.wal_bytes_per_pair,
                        if run.batches_per_s > 0.0 {
                            format!(
                                " batches/s {:.0} cmds/batch {:.1} retries {}",
                                run.batches_per_s, run.commands_per_batch, run.retries
                            )
                        } else {
                            String::new()
                        },
                        if run.errors > 0 {
                            format!(" ERRORS {}", run.errors)
                        } else {
                            String::new()
                        },
                    );
                    assert_eq!(run.errors, 0, "pairs failed");
                    row_runs[i].push(run);
                }
            }
            for (variant, runs) in variants.iter().zip(row_runs) {
                rows.push(Row {
                    variant: variant.name(),
                    customers: n,
                    concurrency,
                    runs,
                });
            }
        }
    }

    println!();
    println!("{}", table(&rows));
    drop(variants);
    drop(store);
    tokio::time::sleep(Duration::from_millis(200)).await;
    if std::env::var_os("PAIRS_KEEP_SCHEMAS").is_some() {
        println!("kept schemas {BATCHED_SCHEMA} and {NAIVE_SCHEMA} (PAIRS_KEEP_SCHEMAS)");
        return;
    }
    paygo_postgres::drop_schema(&settings.url, BATCHED_SCHEMA)
        .await
        .unwrap();
    paygo_postgres::drop_schema(&settings.url, NAIVE_SCHEMA).await.unwrap();
    println!("dropped schemas {BATCHED_SCHEMA} and {NAIVE_SCHEMA}");
}

fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "medians of the repetitions (CPU as % of one core; 'other' = the machine's busy time less PostgreSQL and the bench)"
    );
    let _ = writeln!(
        out,
        "| variant | customers | concurrency | pairs/s | p50 pair | p99 pair | batches/s | cmds/batch | PostgreSQL CPU | bench CPU | PostgreSQL CPU/pair | bench CPU/pair | WAL/pair | other CPU |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for row in rows {
        let m = |f: fn(&Run) -> f64| median(row.runs.iter().map(f).collect());
        let batched = row.variant.starts_with("batched");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {:.2} ms | {:.2} ms | {} | {} | {:.0}% | {:.0}% | {:.0} us | {:.0} us | {:.0} B | {:.0}% |",
            row.variant,
            row.customers,
            row.concurrency,
            m(|r| r.pairs_per_s),
            m(|r| f64::from(r.p50_us)) / 1000.0,
            m(|r| f64::from(r.p99_us)) / 1000.0,
            if batched {
                format!("{:.0}", m(|r| r.batches_per_s))
            } else {
                "-".to_owned()
            },
            if batched {
                format!("{:.1}", m(|r| r.commands_per_batch))
            } else {
                "-".to_owned()
            },
            m(|r| r.postgres_cpu),
            m(|r| r.own_cpu),
            m(|r| r.postgres_us_per_pair),
            m(|r| r.own_us_per_pair),
            m(|r| r.wal_bytes_per_pair),
            m(|r| r.other_cpu),
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| customers | concurrency | batched pairs/s | best naive pairs/s | ratio |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|");
    let mut keys: Vec<(u64, usize)> = rows.iter().map(|r| (r.customers, r.concurrency)).collect();
    keys.dedup();
    for (customers, concurrency) in keys {
        let of = |batched: bool| {
            rows.iter()
                .filter(|r| {
                    r.customers == customers
                        && r.concurrency == concurrency
                        && r.variant.starts_with("batched") == batched
                })
                .map(|r| median(r.runs.iter().map(|x| x.pairs_per_s).collect()))
                .fold(0.0, f64::max)
        };
        let (b, n) = (of(true), of(false));
        let _ = writeln!(
            out,
            "| {customers} | {concurrency} | {b:.0} | {n:.0} | {:.1}x |",
            if n > 0.0 { b / n } else { 0.0 }
        );
    }
    out
}
