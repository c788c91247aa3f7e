//! Benchmarks of VAT ID validation over a mix of countries, and of rate lookups.
//!
//! Run with `cargo bench --bench vat`. The `mix` figure is for the whole mix: divide the
//! time by its element count (criterion also prints elements per second) for the time per ID.

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use chrono::NaiveDate;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use paygo::vat::{Country, VatId, standard_rate};

/// One valid number of each of the 31 countries (two forms for some), as customers type
/// them: with spaces, dots and dashes, some in lower case.
const MIX: &[&str] = &[
    "ATU 142 43 102",
    "BE 0428.759.497",
    "BG 175074752",
    "CY-10259033P",
    "CZ 25123891",
    "DE 136 695 976",
    "DK 13585628",
    "EE 100594102",
    "EL 094259216",
    "ES B64717838",
    "FI 20774740",
    "FR 40 303 265 045",
    "HR 33392005961",
    "HU-12892312",
    "IE 6433435F",
    "IT 00743110157",
    "LT 119511515",
    "LU 150 274 42",
    "LV 4000 3521 600",
    "MT 1167-9112",
    "NL 004495445B01",
    "PL 8567346215",
    "PT 501 964 843",
    "RO 185 472 90",
    "SE 123456789701",
    "SI 5022 3054",
    "SK 202 274 96 19",
    "XI 432525179",
    "GB 980 7806 84",
    "CHE-109.298.651 MWST",
    "NO 987 008 644 MVA",
    "de136695976",
];

fn validation(c: &mut Criterion) {
    let mut group = c.benchmark_group("vat_id");
    group.throughput(Throughput::Elements(MIX.len() as u64));
    group.bench_function("mix_valid", |b| {
        b.iter(|| {
            for id in MIX {
                black_box(VatId::parse(black_box(id)).unwrap());
            }
        });
    });
    let invalid: Vec<String> = MIX.iter().map(|s| format!("{s}1")).collect();
    group.bench_function("mix_invalid", |b| {
        b.iter(|| {
            for id in &invalid {
                black_box(VatId::parse(black_box(id)).unwrap_err());
            }
        });
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("de_compact", |b| {
        b.iter(|| VatId::parse(black_box("DE136695976")).unwrap());
    });
    group.finish();

    let mut group = c.benchmark_group("vat_rate");
    group.throughput(Throughput::Elements(1));
    let date = NaiveDate::from_ymd_opt(2025, 7, 1).unwrap();
    group.bench_function("standard_rate", |b| {
        b.iter(|| standard_rate(black_box(Country::Estonia), black_box(date)).unwrap());
    });
    group.finish();
}

criterion_group!(benches, validation);
criterion_main!(benches);
