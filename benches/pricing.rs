//! Benchmarks of pricing: quotes (model lookup included) and loading a catalog.
//!
//! Run with `cargo bench --bench pricing`. The catalog load reads LiteLLM's catalog from
//! `PAYGO_LITELLM_CATALOG` (for example the `model_prices_and_context_window_backup.json`
//! that `pip install litellm` ships; or `../shared/data/litellm_model_prices.json` when
//! present) and otherwise a synthetic catalog of 3,000 models with the same kinds of keys.

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::fmt::Write;
use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use paygo::pricing::litellm::{ImportOptions, import};
use paygo::pricing::{EstimateRequest, PriceBook, QuoteRequest, Usage, UsageShape};

const FIXTURE: &str = include_str!("../crates/paygo-pricing/tests/fixtures/litellm_small.json");

fn catalog() -> (String, &'static str) {
    let path =
        std::env::var("PAYGO_LITELLM_CATALOG").unwrap_or_else(|_| "../shared/data/litellm_model_prices.json".into());
    if let Ok(text) = std::fs::read_to_string(&path) {
        return (text, "litellm catalog");
    }
    // 3,000 synthetic models shaped like the catalog's chat entries.
    let mut text = String::from("{");
    for i in 0..3000 {
        if i > 0 {
            text.push(',');
        }
        write!(
            text,
            r#""provider{p}/model-{i}": {{"litellm_provider": "provider{p}", "mode": "chat", "max_input_tokens": 128000,
            "max_output_tokens": 16384, "supports_function_calling": true, "supports_vision": true,
            "input_cost_per_token": {i}e-09, "output_cost_per_token": 1.{i}e-06, "cache_read_input_token_cost": 2.5e-07,
            "input_cost_per_token_above_200k_tokens": 5e-06, "output_cost_per_token_above_200k_tokens": 2.25e-05,
            "input_cost_per_token_batches": 1.25e-06, "output_cost_per_token_batches": 5e-06}}"#,
            p = i % 40
        )
        .unwrap();
    }
    text.push('}');
    (text, "synthetic 3,000 models")
}

fn quotes(c: &mut Criterion) {
    let book = import(FIXTURE, &ImportOptions::default()).unwrap().0;
    let at = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
    let chat: Usage = serde_json::from_str(
        r#"{"prompt_tokens": 1200, "completion_tokens": 350, "prompt_tokens_details": {"cached_tokens": 800}}"#,
    )
    .unwrap();
    let long = Usage::tokens(250_000, 2_000);
    let image: Usage =
        serde_json::from_str(r#"{"output_images": 1, "image_size": "1024x1024", "image_quality": "hd"}"#).unwrap();
    let mut group = c.benchmark_group("quote");
    group.throughput(Throughput::Elements(1));
    group.bench_function("chat_gpt-4o", |b| {
        b.iter(|| book.quote(black_box(&QuoteRequest::new("gpt-4o", &chat, at))).unwrap());
    });
    group.bench_function("tiered_claude_above_200k", |b| {
        b.iter(|| {
            book.quote(black_box(&QuoteRequest::new("claude-sonnet-4-5", &long, at)))
                .unwrap()
        });
    });
    group.bench_function("image_dall-e-3_hd", |b| {
        b.iter(|| {
            book.quote(black_box(&QuoteRequest::new("dall-e-3", &image, at)))
                .unwrap()
        });
    });
    group.bench_function("estimate_chat", |b| {
        b.iter(|| {
            book.estimate(black_box(&EstimateRequest::new("gpt-4o", 1200, 4096, at)))
                .unwrap()
        });
    });
    group.finish();

    // The same quote against the whole catalog, so the lookup is in a table of ~3,000 ids.
    let (text, what) = catalog();
    let big = import(&text, &ImportOptions::default()).unwrap().0;
    let id = if what == "litellm catalog" {
        "gpt-4o"
    } else {
        "provider7/model-7"
    };
    let mut group = c.benchmark_group("quote_in_catalog");
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("chat ({what})"), |b| {
        b.iter(|| big.quote(black_box(&QuoteRequest::new(id, &chat, at))).unwrap());
    });
    // A model with an off-peak window: the window is looked up on every quote.
    if big.model("deepseek-v4-flash").is_ok() {
        group.bench_function(format!("chat_off_peak_window ({what})"), |b| {
            b.iter(|| {
                big.quote(black_box(&QuoteRequest::new("deepseek-v4-flash", &chat, at)))
                    .unwrap()
            });
        });
    }
    group.finish();

    // Reading an upstream's usage object strictly (the proxy does it once a call).
    let mut group = c.benchmark_group("usage_read");
    group.throughput(Throughput::Elements(1));
    let openai = r#"{"prompt_tokens": 1200, "completion_tokens": 350, "total_tokens": 1550,
        "prompt_tokens_details": {"cached_tokens": 800}, "completion_tokens_details": {"reasoning_tokens": 100}}"#;
    let anthropic = r#"{"input_tokens": 400, "output_tokens": 350, "cache_read_input_tokens": 800,
        "cache_creation_input_tokens": 0, "service_tier": "standard"}"#;
    group.bench_function("openai_chat", |b| {
        b.iter(|| Usage::from_json(black_box(openai), Some(UsageShape::OpenAiChat)).unwrap());
    });
    group.bench_function("anthropic", |b| {
        b.iter(|| Usage::from_json(black_box(anthropic), Some(UsageShape::Anthropic)).unwrap());
    });
    group.finish();
}

fn load(c: &mut Criterion) {
    let (text, what) = catalog();
    let models = import(&text, &ImportOptions::default()).unwrap().0.len();
    let mut group = c.benchmark_group("load");
    group.sample_size(20);
    group.throughput(Throughput::Elements(models as u64));
    group.bench_function(format!("litellm_import ({what}, {models} models)"), |b| {
        b.iter(|| import(black_box(&text), &ImportOptions::default()).unwrap());
    });
    let book = import(&text, &ImportOptions::default()).unwrap().0;
    let own = book.to_json();
    group.bench_function(format!("paygo_format ({models} models)"), |b| {
        b.iter(|| PriceBook::from_json(black_box(&own)).unwrap());
    });
    group.finish();
}

criterion_group!(benches, quotes, load);
criterion_main!(benches);
