//! Benchmarks of the rate limiter against governor, in one run: a direct check, one hot
//! key, 100,000 `u64` keys, 100,000 string keys, and 2 threads on 100,000 keys.
//!
//! Each case runs each library on its default clock, which is the same clock source for
//! both (`quanta`, a calibrated TSC: paygo's `SystemClock` and governor's `QuantaClock`),
//! and each on `std::time::Instant` (`paygo_instant` through paygo's `Clock` trait,
//! `governor_instant` with `governor::clock::MonotonicClock`). The keyed stores are
//! paygo's `FlatStore` (the store for integer ids and strings) and governor's default
//! (`DashMap` with std's `SipHash`); `paygo_memory` is paygo's `MemoryStore` (any hashable
//! key). The quota admits almost every check (10^9 per second, burst 1,000), so each
//! check does the full read-modify-write of a key's state. A last group repeats the
//! direct and keyed cases on manual clocks, to compare the algorithms without the clocks.
//!
//! `paygo_async` is the asynchronous plan limiter a gateway calls (`AsyncPlanLimiter` over
//! the `InProcessStore` on a `FlatStore`, one limit), its future polled once (it completes
//! on its first poll); `paygo_multi` is the synchronous `MultiLimiter` on the same store,
//! to tell the async layer's cost from the multi-limit check's.
//!
//! Run with `cargo bench --bench ratelimit`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use governor::clock::{FakeRelativeClock, MonotonicClock};
use governor::{Quota as GovernorQuota, RateLimiter as GovernorLimiter};
use paygo::ratelimit::{
    AsyncPlanLimiter, Clock, DirectLimiter, FlatKey, FlatStore, InProcessStore, ManualClock, MultiLimiter, Plan,
    Policy, PolicyName, Quota, QuotaOptions, RateLimiter, SystemClock, Unit,
};

const KEYS: usize = 100_000;
const RATE_PER_SECOND: u32 = 1_000_000_000;
const BURST: u32 = 1_000;

fn paygo_quota() -> Quota {
    Quota::new(QuotaOptions {
        limit: u64::from(RATE_PER_SECOND),
        period_ns: 1_000_000_000,
        burst: u64::from(BURST),
    })
    .unwrap()
}

fn governor_quota() -> GovernorQuota {
    GovernorQuota::per_second(NonZeroU32::new(RATE_PER_SECOND).unwrap()).allow_burst(NonZeroU32::new(BURST).unwrap())
}

fn policy() -> Policy {
    Policy {
        name: PolicyName::new("bench").unwrap(),
        unit: Unit::Requests,
        quota: paygo_quota(),
    }
}

fn paygo_keyed<K: FlatKey + std::hash::Hash + Eq + Clone + Send + Sync>() -> RateLimiter<K, SystemClock, FlatStore<K>> {
    RateLimiter::with_clock_and_store(policy(), SystemClock::new(), FlatStore::new())
}

fn plan() -> Plan {
    Plan {
        name: "bench".to_owned(),
        policies: vec![policy()],
    }
}

type AsyncLimiter = AsyncPlanLimiter<u64, InProcessStore<u64, SystemClock, FlatStore<u64>>>;

fn paygo_async() -> AsyncLimiter {
    AsyncPlanLimiter::new(InProcessStore::with_clock_and_stores(
        &plan(),
        SystemClock::new(),
        |_| FlatStore::new(),
    ))
}

fn paygo_multi() -> MultiLimiter<u64, SystemClock, FlatStore<u64>> {
    MultiLimiter::with_clock_and_stores(&plan(), SystemClock::new(), |_| FlatStore::new())
}

/// Polls an in-process future once: it completes there.
fn first_poll<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("in-process futures complete on their first poll"),
    }
}

fn paygo_memory<K: std::hash::Hash + Eq + Clone + Send + Sync>() -> RateLimiter<K> {
    RateLimiter::new(policy())
}

/// `std::time::Instant` behind paygo's `Clock`, to compare with governor's `MonotonicClock`.
#[derive(Debug, Clone, Copy)]
struct StdClock {
    start: Instant,
}

impl StdClock {
    fn new() -> Self {
        StdClock { start: Instant::now() }
    }
}

impl Clock for StdClock {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

fn paygo_keyed_instant<K: FlatKey + std::hash::Hash + Eq + Clone + Send + Sync>()
-> RateLimiter<K, StdClock, FlatStore<K>> {
    RateLimiter::with_clock_and_store(policy(), StdClock::new(), FlatStore::new())
}

fn string_keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("sk-account-{i:08}")).collect()
}

fn direct(c: &mut Criterion) {
    let mut group = c.benchmark_group("direct");
    group.throughput(Throughput::Elements(1));
    let paygo = DirectLimiter::new(paygo_quota());
    group.bench_function("paygo", |b| b.iter(|| black_box(paygo.check().unwrap().allowed)));
    let paygo = DirectLimiter::with_clock(paygo_quota(), StdClock::new());
    group.bench_function("paygo_instant", |b| {
        b.iter(|| black_box(paygo.check().unwrap().allowed));
    });
    let governor = GovernorLimiter::direct(governor_quota());
    group.bench_function("governor", |b| b.iter(|| black_box(governor.check().is_ok())));
    let governor = GovernorLimiter::direct_with_clock(governor_quota(), MonotonicClock);
    group.bench_function("governor_instant", |b| b.iter(|| black_box(governor.check().is_ok())));
    group.finish();
}

fn hot_key(c: &mut Criterion) {
    let mut group = c.benchmark_group("hot_key");
    group.throughput(Throughput::Elements(1));
    let paygo = paygo_keyed::<u64>();
    group.bench_function("paygo", |b| {
        b.iter(|| black_box(paygo.check(black_box(&42)).unwrap().allowed));
    });
    let paygo = paygo_keyed_instant::<u64>();
    group.bench_function("paygo_instant", |b| {
        b.iter(|| black_box(paygo.check(black_box(&42)).unwrap().allowed));
    });
    let paygo = paygo_async();
    group.bench_function("paygo_async", |b| {
        b.iter(|| black_box(first_poll(paygo.check_call(black_box(&42), 0)).unwrap().value.allowed));
    });
    let paygo = paygo_multi();
    group.bench_function("paygo_multi", |b| {
        b.iter(|| black_box(paygo.check(black_box(&42)).unwrap().allowed));
    });
    let governor = GovernorLimiter::keyed(governor_quota());
    group.bench_function("governor", |b| {
        b.iter(|| black_box(governor.check_key(black_box(&42u64)).is_ok()));
    });
    let governor = GovernorLimiter::dashmap_with_clock(governor_quota(), MonotonicClock);
    group.bench_function("governor_instant", |b| {
        b.iter(|| black_box(governor.check_key(black_box(&42u64)).is_ok()));
    });
    group.finish();
}

fn u64_keys(c: &mut Criterion) {
    let mut group = c.benchmark_group("u64_keys_100k");
    group.throughput(Throughput::Elements(1));
    let paygo = paygo_keyed::<u64>();
    let mut i = 0u64;
    group.bench_function("paygo", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS as u64;
            black_box(paygo.check(&i).unwrap().allowed)
        });
    });
    let paygo = paygo_keyed_instant::<u64>();
    let mut i = 0u64;
    group.bench_function("paygo_instant", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS as u64;
            black_box(paygo.check(&i).unwrap().allowed)
        });
    });
    let paygo = paygo_memory::<u64>();
    let mut i = 0u64;
    group.bench_function("paygo_memory", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS as u64;
            black_box(paygo.check(&i).unwrap().allowed)
        });
    });
    let paygo = paygo_async();
    let mut i = 0u64;
    group.bench_function("paygo_async", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS as u64;
            black_box(first_poll(paygo.check_call(&i, 0)).unwrap().value.allowed)
        });
    });
    let governor = GovernorLimiter::keyed(governor_quota());
    let mut i = 0u64;
    group.bench_function("governor", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS as u64;
            black_box(governor.check_key(&i).is_ok())
        });
    });
    let governor = GovernorLimiter::dashmap_with_clock(governor_quota(), MonotonicClock);
    let mut i = 0u64;
    group.bench_function("governor_instant", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS as u64;
            black_box(governor.check_key(&i).is_ok())
        });
    });
    group.finish();
}

fn str_keys(c: &mut Criterion) {
    let keys = string_keys();
    let mut group = c.benchmark_group("string_keys_100k");
    group.throughput(Throughput::Elements(1));
    let paygo = paygo_keyed::<String>();
    let mut i = 0;
    group.bench_function("paygo", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(paygo.check(&keys[i]).unwrap().allowed)
        });
    });
    let paygo = paygo_keyed_instant::<String>();
    let mut i = 0;
    group.bench_function("paygo_instant", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(paygo.check(&keys[i]).unwrap().allowed)
        });
    });
    let governor = GovernorLimiter::keyed(governor_quota());
    let mut i = 0;
    group.bench_function("governor", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(governor.check_key(&keys[i]).is_ok())
        });
    });
    let governor = GovernorLimiter::dashmap_with_clock(governor_quota(), MonotonicClock);
    let mut i = 0;
    group.bench_function("governor_instant", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(governor.check_key(&keys[i]).is_ok())
        });
    });
    group.finish();
}

/// Two threads share the work of `iters` checks on 100,000 keys (each thread walks the
/// keys from its own offset); the time is the wall time of both.
fn two_threads(iters: u64, check: &(dyn Fn(u64) -> bool + Sync)) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            s.spawn(move || {
                let mut key = t * (KEYS as u64 / 2);
                for _ in 0..iters / 2 {
                    key = (key + 1) % KEYS as u64;
                    black_box(check(key));
                }
            });
        }
    });
    start.elapsed()
}

fn threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("two_threads_u64_keys_100k");
    group.throughput(Throughput::Elements(1));
    let paygo = paygo_keyed::<u64>();
    group.bench_function("paygo", |b| {
        b.iter_custom(|iters| two_threads(iters, &|k| paygo.check(&k).unwrap().allowed));
    });
    let paygo = paygo_keyed_instant::<u64>();
    group.bench_function("paygo_instant", |b| {
        b.iter_custom(|iters| two_threads(iters, &|k| paygo.check(&k).unwrap().allowed));
    });
    let governor = GovernorLimiter::keyed(governor_quota());
    group.bench_function("governor", |b| {
        b.iter_custom(|iters| two_threads(iters, &|k| governor.check_key(&k).is_ok()));
    });
    let governor = GovernorLimiter::dashmap_with_clock(governor_quota(), MonotonicClock);
    group.bench_function("governor_instant", |b| {
        b.iter_custom(|iters| two_threads(iters, &|k| governor.check_key(&k).is_ok()));
    });
    group.finish();
}

/// The same cases on manual clocks that never move: the algorithms and stores alone.
fn manual_clocks(c: &mut Criterion) {
    let mut group = c.benchmark_group("manual_clock");
    group.throughput(Throughput::Elements(1));
    let clock = ManualClock::new(0);
    let fake = FakeRelativeClock::default();
    // A quota whose burst outlasts the benchmark at a frozen time would refuse every
    // check after the burst; advance both clocks by one interval per check instead.
    let paygo = DirectLimiter::with_clock(paygo_quota(), clock.clone());
    group.bench_function("direct/paygo", |b| {
        b.iter(|| {
            clock.advance_ns(1);
            black_box(paygo.check().unwrap().allowed)
        });
    });
    let governor = GovernorLimiter::direct_with_clock(governor_quota(), fake.clone());
    group.bench_function("direct/governor", |b| {
        b.iter(|| {
            fake.advance(Duration::from_nanos(1));
            black_box(governor.check().is_ok())
        });
    });
    let paygo: RateLimiter<u64, ManualClock, FlatStore<u64>> =
        RateLimiter::with_clock_and_store(policy(), clock.clone(), FlatStore::new());
    let mut i = 0u64;
    group.bench_function("u64_keys_100k/paygo", |b| {
        b.iter(|| {
            clock.advance_ns(1);
            i = (i + 1) % KEYS as u64;
            black_box(paygo.check(&i).unwrap().allowed)
        });
    });
    let governor = GovernorLimiter::dashmap_with_clock(governor_quota(), fake.clone());
    let mut i = 0u64;
    group.bench_function("u64_keys_100k/governor", |b| {
        b.iter(|| {
            fake.advance(Duration::from_nanos(1));
            i = (i + 1) % KEYS as u64;
            black_box(governor.check_key(&i).is_ok())
        });
    });
    group.finish();
}

criterion_group!(benches, direct, hot_key, u64_keys, str_keys, threads, manual_clocks);
criterion_main!(benches);
