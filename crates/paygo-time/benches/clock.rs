//! The cost of a clock reading: paygo's `SystemClock` (quanta's TSC, anchored at the Unix
//! epoch), a bare quanta read (the rate limiter's clock before paygo-time),
//! `std::time::Instant`, `SystemTime::now()` and a `ManualClock`.
//!
//! Run with `cargo bench -p paygo-time`.

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::{Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use paygo_time::{Clock, ManualClock, SystemClock};

fn reads(c: &mut Criterion) {
    let mut group = c.benchmark_group("clock_read");
    let clock = SystemClock::new();
    group.bench_function("system_clock", |b| b.iter(|| black_box(black_box(&clock).now_ns())));
    let quanta = quanta::Clock::new();
    let start = quanta.raw();
    group.bench_function("quanta_delta", |b| {
        b.iter(|| black_box(quanta.delta_as_nanos(start, quanta.raw())));
    });
    let instant = Instant::now();
    group.bench_function("instant", |b| b.iter(|| black_box(instant.elapsed().as_nanos() as u64)));
    group.bench_function("system_time", |b| b.iter(|| black_box(SystemTime::now())));
    let manual = ManualClock::new(0);
    group.bench_function("manual_clock", |b| b.iter(|| black_box(black_box(&manual).now_ns())));
    group.finish();
}

criterion_group!(benches, reads);
criterion_main!(benches);
