//! Benchmarks of the billing layer and the gateway in process: a hold and its capture on
//! the `Billing` machine (the layer above the ledger's hold+capture pairs), and a whole call
//! through the in-process gateway (estimate, rate limit, hold, quote, capture, token
//! adjustment), its futures run by `block_on`. First figures for later comparisons.
//!
//! Run with `cargo bench --bench gateway`.

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use paygo::prelude::*;

const T0: u64 = 1_764_000_000_000_000_000;

fn billing_hold_capture(c: &mut Criterion) {
    let mut group = c.benchmark_group("billing");
    group.throughput(Throughput::Elements(1));
    group.bench_function("hold_capture_pair", |b| {
        let mut billing = paygo::billing::Billing::new(BillingConfig::default());
        let customer = CustomerId(1);
        billing.open_account(T0, customer).unwrap();
        // Enough credits for any number of iterations: each call charges 100.
        billing
            .top_up(
                T0,
                TopUpId(1),
                customer,
                Money::usd("1000000.00".parse().unwrap()),
                PaymentMethod::PayPal,
            )
            .unwrap();
        let mut id = 0u128;
        b.iter(|| {
            id += 1;
            billing
                .hold(T0, HoldId(id), customer, Credits::new(1_000), 60_000)
                .unwrap();
            black_box(billing.capture(T0, HoldId(id), Credits::new(100)).unwrap());
        });
    });
    group.finish();
}

fn gateway_call(c: &mut Criterion) {
    let mut group = c.benchmark_group("gateway");
    group.throughput(Throughput::Elements(1));
    group.bench_function("admit_complete_in_memory", |b| {
        let clock = ManualClock::new(T0);
        let options = GatewayOptions::new(PriceBook::from_json(DEFAULT_PRICES).unwrap(), clock.clone());
        let gateway = Gateway::in_memory(options, &Plan::pay_as_you_go()).unwrap();
        let account = CustomerId(1);
        block_on(async {
            gateway.open_account(account).await.unwrap();
            let money = Money::usd("1000000.00".parse().unwrap());
            gateway
                .top_up(TopUpId(1), account, money, PaymentMethod::PayPal)
                .await
                .unwrap();
        });
        let usage: Usage = serde_json::from_str(r#"{"prompt_tokens": 1000, "completion_tokens": 120}"#).unwrap();
        let mut id = 0u128;
        b.iter(|| {
            id += 1;
            // One call a second: well within the plan's 18,000 in any rolling hour.
            clock.advance_ns(1_000_000_000);
            let call = Call::tokens(HoldId(id), account, "gpt-4o", 1_000, 500);
            let done = block_on(async {
                let admitted = gateway.admit(&call).await.unwrap();
                gateway.complete(&admitted, &usage).await.unwrap()
            });
            black_box(done);
        });
    });
    group.finish();
}

criterion_group!(benches, billing_hold_capture, gateway_call);
criterion_main!(benches);
