//! Benchmarks of the credit and money math: conversions and allocation.
//!
//! Run with `cargo bench --bench credits`.

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use paygo::credits::{CreditRate, Credits, Currency, Decimal, ExactCredits, FxRate, Money, RemainderCarrier, Rounding};

fn conversions(c: &mut Criterion) {
    let rate = CreditRate::default();
    let mut group = c.benchmark_group("conversions");
    group.throughput(Throughput::Elements(1));
    let top_up = Money::parse("10.00", Currency::USD).unwrap();
    group.bench_function("money_to_credits", |b| {
        b.iter(|| rate.to_credits(black_box(&top_up), Rounding::Down).unwrap());
    });
    let price = Money::usd("0.00000015".parse().unwrap());
    group.bench_function("price_to_exact_credits", |b| {
        b.iter(|| rate.to_exact_credits(black_box(&price)).unwrap());
    });
    group.bench_function("credits_to_money_cents", |b| {
        b.iter(|| rate.to_money(black_box(Credits::new(1_892)), Rounding::Up).unwrap());
    });
    group.bench_function("credits_to_money_exact", |b| {
        b.iter(|| rate.to_money_exact(black_box(Credits::new(1_892))).unwrap());
    });
    let cost = ExactCredits::new("370.2".parse().unwrap());
    group.bench_function("exact_to_credits_half_even", |b| {
        b.iter(|| black_box(cost).to_credits(Rounding::HalfEven).unwrap());
    });
    let per_token = ExactCredits::new("0.3".parse().unwrap());
    group.bench_function("per_token_times_quantity", |b| {
        b.iter(|| {
            black_box(per_token)
                .checked_mul(black_box(Decimal::from(12_345)))
                .unwrap()
        });
    });
    let mut carrier = RemainderCarrier::new();
    group.bench_function("carrier_charge", |b| {
        b.iter(|| carrier.charge(black_box(cost)).unwrap());
    });
    let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
    let fx = FxRate::new(Currency::USD, Currency::PLN, "3.6512".parse().unwrap(), date).unwrap();
    let vat = Money::parse("23.00", Currency::USD).unwrap();
    group.bench_function("fx_convert", |b| {
        b.iter(|| fx.convert(black_box(&vat), Rounding::HalfUp).unwrap());
    });
    group.bench_function("parse_money", |b| {
        b.iter(|| Money::parse(black_box("1234.56"), Currency::USD).unwrap());
    });
    group.finish();
}

fn allocation(c: &mut Criterion) {
    let mut group = c.benchmark_group("allocation");
    for parts in [3usize, 100, 10_000] {
        let weights: Vec<u64> = (0..parts as u64).map(|i| (i * 7919) % 101).collect();
        group.throughput(Throughput::Elements(parts as u64));
        group.bench_with_input(BenchmarkId::new("credits", parts), &weights, |b, w| {
            b.iter(|| Credits::new(black_box(1_000_000_007)).allocate(w).unwrap());
        });
        let total = Money::parse("1000000.07", Currency::USD).unwrap();
        group.bench_with_input(BenchmarkId::new("money", parts), &weights, |b, w| {
            b.iter(|| black_box(&total).allocate(w).unwrap());
        });
    }
    group.finish();
}

criterion_group!(benches, conversions, allocation);
criterion_main!(benches);
