//! Benchmarks of invoicing: issuing (in memory and through the fsync'ed journal) and
//! rendering.
//!
//! Run with `cargo bench --bench invoice`.

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use chrono::NaiveDate;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use paygo::credits::{Currency, FxRate, Money};
use paygo::invoice::{
    DocumentId, DocumentKind, Draft, FileSequenceStore, Invoicing, LineInput, MemorySequenceStore, Party, Payment,
    PaymentMethod, RoundingRules, SequenceStore, Series, SeriesName,
};
use paygo::vat::{
    Country, CountryCode, Customer, LocationEvidence, NoOutsideEuRules, Seller, Supply, VatId, VatIdStatus, determine,
};

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()
}

/// A $100 top-up to a consumer in Germany (19 % VAT, VAT also in EUR).
fn draft(id: u64) -> Draft {
    let de: CountryCode = "DE".parse().unwrap();
    let party = |name: &str, country: &str, vat_id: Option<&str>| Party {
        name: name.into(),
        address: vec!["Heidestraße 17".into(), "51147 Köln".into()],
        country: country.parse().unwrap(),
        vat_id: vat_id.map(|v| VatId::parse(v).unwrap()),
    };
    let supply = Supply {
        seller: Seller {
            country: Country::Ireland,
            oss_registered: true,
        },
        customer: Customer {
            evidence: LocationEvidence {
                billing_country: Some(de),
                ip_country: Some(de),
                card_country: None,
            },
            vat_id: None,
        },
        date: day(),
    };
    Draft {
        id: DocumentId::new(&format!("topup-{id}")).unwrap(),
        series: SeriesName::new("INV-2026").unwrap(),
        seller: party("paygo Ltd", "IE", Some("IE6433435F")),
        buyer: party("Erika Mustermann", "DE", None),
        supply_date: day(),
        currency: Currency::USD,
        lines: vec![LineInput {
            description: "Prepaid API credits: 200,000,000 credits".into(),
            quantity: 1.into(),
            unit_price: Money::parse("100.00", Currency::USD).unwrap(),
        }],
        vat: determine(&supply, &|_: &VatId| VatIdStatus::Unknown, &NoOutsideEuRules).unwrap(),
        payment: Payment {
            method: PaymentMethod::Card,
            reference: format!("ch_{id}"),
            paid_on: Some(day()),
        },
        rules: RoundingRules::default(),
        national_fx: Some(FxRate::new(Currency::USD, Currency::EUR, "0.9234".parse().unwrap(), day()).unwrap()),
        buyer_reference: None,
        customer_number: None,
    }
}

fn open<S: SequenceStore>(store: S) -> Invoicing<S> {
    Invoicing::open(
        store,
        vec![
            Series::new("INV-2026", DocumentKind::Invoice, 6).unwrap(),
            Series::new("CN-2026", DocumentKind::CreditNote, 6).unwrap(),
        ],
    )
    .unwrap()
}

fn issuing(c: &mut Criterion) {
    const BATCH: u64 = 100;
    let mut group = c.benchmark_group("issue");
    group.throughput(Throughput::Elements(BATCH));
    let drafts: Vec<Draft> = (0..BATCH).map(draft).collect();
    group.bench_function("memory_store", |b| {
        b.iter_batched(
            || open(MemorySequenceStore::new()),
            |invoicing| {
                for d in &drafts {
                    black_box(invoicing.issue(d, day()).unwrap());
                }
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();

    // One fsync per document: bounded by the disk's sync latency, not by the CPU.
    let dir = std::env::temp_dir().join(format!("paygo-bench-journal-{}", std::process::id()));
    let invoicing = open(FileSequenceStore::open(&dir).unwrap());
    let mut group = c.benchmark_group("issue");
    group.throughput(Throughput::Elements(1));
    let mut next = 0u64;
    group.bench_function("file_store_fsync", |b| {
        b.iter(|| {
            next += 1;
            invoicing.issue(&draft(next), day()).unwrap()
        });
    });
    group.finish();
    drop(invoicing);
    let _ = std::fs::remove_dir_all(&dir);
}

fn rendering(c: &mut Criterion) {
    let doc = open(MemorySequenceStore::new()).issue(&draft(1), day()).unwrap();
    let mut group = c.benchmark_group("render");
    group.throughput(Throughput::Elements(1));
    group.bench_function("html", |b| b.iter(|| black_box(&doc).to_html()));
    group.bench_function("text", |b| b.iter(|| black_box(&doc).to_text()));
    group.bench_function("json", |b| b.iter(|| black_box(&doc).to_json().unwrap()));
    group.finish();
}

criterion_group!(benches, issuing, rendering);
criterion_main!(benches);
