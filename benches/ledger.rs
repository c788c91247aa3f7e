//! Benchmarks of the ledger: transfers in full batches with 10k, 100k and 1M accounts
//! (idempotency index on: every transfer is inserted by id), hold+capture pairs, and the
//! shared handle from 2 threads.
//!
//! Run with `cargo bench --bench ledger`.

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]
#![allow(clippy::cast_possible_wrap)] // generated amounts are below 1000

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use paygo::credits::Credits;
use paygo::ledger::{Account, AccountId, Event, Ledger, ManualClock, SharedLedger, Transfer, TransferId};

/// Batches applied to one ledger before a fresh one is built (outside the timing), so
/// that memory stays bounded however many iterations criterion asks for.
const BATCHES_PER_LEDGER: u64 = 64;

#[path = "support/ledger_workload.rs"]
mod workload;
use workload::{BATCH, XorShift, fund_accounts, transfer_batches};

/// `accounts` customer balances (debits must not exceed credits), each funded with plenty.
fn funded_ledger(accounts: u128) -> Ledger {
    let mut ledger = Ledger::with_capacity(
        accounts as usize + 1,
        BATCH * BATCHES_PER_LEDGER as usize + accounts as usize,
    );
    let mut now = 1;
    fund_accounts(accounts, |events| {
        ledger.apply(now, &events).unwrap();
        now += 1;
    });
    ledger
}

fn transfers(c: &mut Criterion) {
    let mut group = c.benchmark_group("transfers");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    for accounts in [10_000u128, 100_000, 1_000_000] {
        let batches = transfer_batches(accounts, BATCHES_PER_LEDGER, 1, 42);
        group.bench_with_input(BenchmarkId::new("batch_8190", accounts), &accounts, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    // A fresh ledger each round, built outside the timing (a clone would not
                    // keep the room reserved for transfers).
                    let mut ledger = funded_ledger(accounts);
                    let n = (iters - done).min(BATCHES_PER_LEDGER);
                    let start = Instant::now();
                    for (k, batch) in batches.iter().take(n as usize).enumerate() {
                        black_box(ledger.apply(1_000 + k as u64, batch).unwrap());
                    }
                    total += start.elapsed();
                    done += n;
                }
                total
            });
        });
    }
    group.finish();
}

fn hold_capture(c: &mut Criterion) {
    const ACCOUNTS: u128 = 100_000;
    const PAIRS: usize = BATCH / 2;
    let mut group = c.benchmark_group("hold_capture");
    group.throughput(Throughput::Elements(PAIRS as u64));
    group.sample_size(20);
    let revenue = AccountId(u128::MAX - 2);
    let fresh = || {
        let mut ledger = funded_ledger(ACCOUNTS);
        ledger
            .apply(10, &[Event::CreateAccount(Account::new(revenue))])
            .unwrap();
        ledger
    };
    let mut rng = XorShift(7);
    let mut id = 1u128;
    // Each batch: 4095 holds, then the 4095 posts of the previous batch's holds.
    let batches: Vec<Vec<Event>> = (0..=BATCHES_PER_LEDGER)
        .map(|_| {
            (0..PAIRS)
                .map(|_| {
                    let x = rng.next();
                    id += 1;
                    Event::CreateTransfer(Transfer::pending(
                        TransferId(id),
                        AccountId(1 + u128::from(x % ACCOUNTS as u64)),
                        revenue,
                        Credits::new(5_000),
                        60_000,
                    ))
                })
                .collect()
        })
        .collect();
    let mut post_id = 1u128 << 100;
    let with_posts: Vec<Vec<Event>> = batches
        .iter()
        .enumerate()
        .map(|(k, holds)| {
            let mut events = holds.clone();
            if k > 0 {
                for prev in &batches[k - 1] {
                    let Event::CreateTransfer(t) = prev else { unreachable!() };
                    post_id += 1;
                    events.push(Event::CreateTransfer(Transfer::post(
                        TransferId(post_id),
                        t.id,
                        Credits::new(1_892),
                    )));
                }
            }
            events
        })
        .collect();
    group.bench_function("pairs_100k_accounts", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let mut ledger = fresh();
                ledger.apply(100, &with_posts[0]).unwrap();
                let n = (iters - done).min(BATCHES_PER_LEDGER);
                let start = Instant::now();
                for (k, batch) in with_posts.iter().skip(1).take(n as usize).enumerate() {
                    black_box(ledger.apply(1_000 + k as u64, batch).unwrap());
                }
                total += start.elapsed();
                done += n;
            }
            total
        });
    });
    group.finish();
}

fn shared_two_threads(c: &mut Criterion) {
    const ACCOUNTS: u128 = 100_000;
    const SUBMISSION: usize = 128;
    let mut group = c.benchmark_group("shared_handle");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    let batches = transfer_batches(ACCOUNTS, BATCHES_PER_LEDGER, 1, 99);
    group.bench_function("2_threads_128_per_call", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let n = (iters - done).min(BATCHES_PER_LEDGER) as usize;
                let shared = Arc::new(SharedLedger::new(funded_ledger(ACCOUNTS), ManualClock::new(1_000)));
                let chunks: Vec<Vec<Event>> = batches
                    .iter()
                    .take(n)
                    .flat_map(|b| b.chunks(SUBMISSION).map(<[Event]>::to_vec))
                    .collect();
                let (left, right) = chunks.split_at(chunks.len() / 2);
                let (left, right) = (left.to_vec(), right.to_vec());
                let start = Instant::now();
                let workers: Vec<_> = [left, right]
                    .into_iter()
                    .map(|mine| {
                        let shared = Arc::clone(&shared);
                        std::thread::spawn(move || {
                            for chunk in mine {
                                black_box(shared.submit(chunk).unwrap());
                            }
                        })
                    })
                    .collect();
                for w in workers {
                    w.join().unwrap();
                }
                total += start.elapsed();
                done += n as u64;
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, transfers, hold_capture, shared_two_threads);
criterion_main!(benches);
