//! Benchmarks of the ledger's durability: transfers through a durable handle with one
//! record and one `fdatasync` per batch of 8,190 (write-ahead: synced before applied), the
//! replay of a journal on open, and the cost of the record checksum (CRC32C) and of the
//! chain hash (BLAKE3-256) per MiB.
//!
//! Run with `cargo bench --bench ledger_durable`. The store is written under the system's
//! temp dir (set `TMPDIR` to bench another disk).

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]
#![allow(clippy::cast_possible_wrap)] // generated amounts are below 1000

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use paygo::ledger::durable::{self, OpenOptions};
use paygo::ledger::{Event, Ledger, ManualClock, SharedLedger};

const ACCOUNTS: u128 = 100_000;
/// Batches written to one store before a fresh one is made (outside the timing).
const BATCHES_PER_STORE: u64 = 64;

#[path = "support/ledger_workload.rs"]
mod workload;
use workload::{BATCH, fund_accounts};

fn bench_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("paygo-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn options() -> OpenOptions {
    OpenOptions {
        snapshot_journal_bytes: None,
        ..OpenOptions::default()
    }
}

/// A new durable store in `dir` with `ACCOUNTS` funded customer balances.
fn funded_store(dir: &Path, transfers: usize) -> SharedLedger<Ledger, ManualClock> {
    let _ = std::fs::remove_dir_all(dir);
    let capacity = ACCOUNTS as usize + 1;
    let shared = SharedLedger::open(
        dir,
        || Ledger::with_capacity(capacity, transfers + capacity),
        ManualClock::new(1),
        &options(),
    )
    .unwrap();
    fund_accounts(ACCOUNTS, |events| {
        shared.submit(events).unwrap();
    });
    shared
}

fn transfer_batches(batches: u64, seed: u64) -> Vec<Vec<Event>> {
    workload::transfer_batches(ACCOUNTS, batches, 0, seed)
}

/// The disk space the journal takes: its blocks, since segments are allocated whole
/// (sparse) when they are made.
fn journal_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("journal-"))
        .map(|e| e.metadata().unwrap().blocks() * 512)
        .sum()
}

fn durable_transfers(c: &mut Criterion) {
    let mut group = c.benchmark_group("durable");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    let batches = transfer_batches(BATCHES_PER_STORE, 42);
    let dir = bench_dir("durable");
    group.bench_function("batch_8190_one_sync", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let shared = funded_store(&dir, BATCH * BATCHES_PER_STORE as usize);
                let n = (iters - done).min(BATCHES_PER_STORE);
                let start = Instant::now();
                for batch in batches.iter().take(n as usize) {
                    black_box(shared.submit(batch.clone()).unwrap());
                }
                total += start.elapsed();
                done += n;
            }
            total
        });
    });
    group.finish();
    // Size on disk: a store with only the transfer batches after the funding.
    let before = {
        let shared = funded_store(&dir, BATCH * 8);
        drop(shared);
        journal_bytes(&dir)
    };
    {
        let shared = paygo::ledger::open_ledger(&dir, ManualClock::new(1), &options()).unwrap();
        for batch in batches.iter().take(8) {
            shared.submit(batch.clone()).unwrap();
        }
    }
    let per_transfer = (journal_bytes(&dir) - before) as f64 / (8 * BATCH) as f64;
    eprintln!("journal size on disk: {per_transfer:.1} bytes per transfer");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Group commit: 4 threads submit 128 transfers at a time; the submissions that wait during
/// a sync share the next record.
fn durable_group_commit(c: &mut Criterion) {
    const THREADS: usize = 4;
    const SUBMISSION: usize = 128;
    let mut group = c.benchmark_group("durable");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(10);
    let events: Vec<Event> = transfer_batches(BATCHES_PER_STORE, 43).into_iter().flatten().collect();
    let dir = bench_dir("group");
    let mut records_per_batch = 0.0;
    group.bench_function("4_threads_submitting_128", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let shared = funded_store(&dir, BATCH * BATCHES_PER_STORE as usize);
                let before = shared.head().unwrap().unwrap().records;
                let n = (iters - done).min(BATCHES_PER_STORE);
                let chunk = &events[..n as usize * BATCH];
                let start = Instant::now();
                std::thread::scope(|scope| {
                    for t in 0..THREADS {
                        let shared = &shared;
                        scope.spawn(move || {
                            for part in chunk.chunks(SUBMISSION).skip(t).step_by(THREADS) {
                                black_box(shared.submit(part.to_vec()).unwrap());
                            }
                        });
                    }
                });
                total += start.elapsed();
                let records = shared.head().unwrap().unwrap().records - before;
                records_per_batch = records as f64 / n as f64;
                done += n;
            }
            total
        });
    });
    group.finish();
    eprintln!(
        "group commit: {records_per_batch:.1} records (syncs) per 8,190 transfers submitted 128 at a time ({:.0} submissions)",
        (BATCH / SUBMISSION) as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn replay(c: &mut Criterion) {
    const BATCHES: u64 = 64;
    let mut group = c.benchmark_group("replay");
    // Throughput counts every event of the journal: the accounts and their funding
    // transfers, then the transfer batches.
    group.throughput(Throughput::Elements(BATCHES * BATCH as u64 + 2 * ACCOUNTS as u64 + 1));
    group.sample_size(10);
    let dir = bench_dir("replay");
    {
        let shared = funded_store(&dir, BATCH * BATCHES as usize);
        for batch in transfer_batches(BATCHES, 7) {
            shared.submit(batch).unwrap();
        }
    }
    group.bench_function("journal_64_batches_of_8190", |b| {
        b.iter(|| {
            let (ledger, recovery) = durable::load::<Ledger>(&dir).unwrap();
            assert_eq!(ledger.transfers_len(), BATCHES as usize * BATCH + ACCOUNTS as usize);
            black_box(recovery)
        });
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

fn checksums(c: &mut Criterion) {
    let mut group = c.benchmark_group("record_checks");
    let data: Vec<u8> = (0..1u32 << 20).map(|i| i.wrapping_mul(2_654_435_761) as u8).collect();
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("crc32c_1mib", |b| b.iter(|| durable::crc32c(black_box(&data))));
    group.bench_function("blake3_256_1mib", |b| {
        b.iter(|| durable::chain_hash(black_box(&data)));
    });
    group.finish();
}

criterion_group!(benches, checksums, durable_transfers, durable_group_commit, replay);
criterion_main!(benches);
