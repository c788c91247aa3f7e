//! Hand-made cases: every unit, every bug class LiteLLM's users report, every error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use chrono::{DateTime, TimeZone, Utc};
use paygo_credits::{CreditRate, Credits, Decimal, Rounding};
use paygo_pricing::litellm::{ImportOptions, import};
use paygo_pricing::{
    Component, EstimateRequest, LineKind, Markup, Mode, ModelSpec, PriceBook, PriceVersion, PricingError, Quote,
    QuoteRequest, RateCard, ServiceTier, TierRule, Usage, UsageSection,
};

const CATALOG: &str = include_str!("fixtures/litellm_small.json");

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap()
}

fn d(text: &str) -> Decimal {
    paygo_credits::decimal::parse_scientific(text).unwrap()
}

fn book() -> PriceBook {
    import(CATALOG, &ImportOptions::default()).unwrap().0
}

fn usage(json: &str) -> Usage {
    serde_json::from_str(json).unwrap()
}

fn quote(model: &str, json: &str) -> Result<Quote, PricingError> {
    book().quote(&QuoteRequest::new(model, &usage(json), at()))
}

fn line(q: &Quote, component: Component) -> (Decimal, Decimal) {
    let l = q.lines.iter().find(|l| l.kind == LineKind::Unit(component)).unwrap();
    (l.quantity, l.unit_usd)
}

#[test]
fn plain_tokens() {
    let q = quote("gpt-4o", r#"{"prompt_tokens": 1000, "completion_tokens": 500}"#).unwrap();
    assert_eq!(q.usd, d("0.0075"));
    assert_eq!(q.credits, Credits::new(15_000));
    assert_eq!(q.lines.len(), 2);
}

#[test]
fn cached_tokens_are_part_of_the_prompt_and_billed_once_at_the_cache_rate() {
    let q = quote(
        "gpt-4o",
        r#"{"prompt_tokens": 1000, "completion_tokens": 0, "prompt_tokens_details": {"cached_tokens": 600}}"#,
    )
    .unwrap();
    assert_eq!(line(&q, Component::InputToken), (d("400"), d("2.5e-06")));
    assert_eq!(line(&q, Component::CacheReadToken), (d("600"), d("1.25e-06")));
    // 400 × 2.5 + 600 × 1.25 per million, not 1000 × 2.5 + 600 × 1.25.
    assert_eq!(q.usd, d("0.00175"));
}

#[test]
fn cached_tokens_without_a_cache_price_are_billed_at_the_input_rate_not_zero() {
    let q = quote(
        "grok-4",
        r#"{"prompt_tokens": 1000, "completion_tokens": 0, "prompt_tokens_details": {"cached_tokens": 1000}}"#,
    )
    .unwrap();
    assert_eq!(line(&q, Component::CacheReadToken), (d("1000"), d("3e-06")));
}

#[test]
fn deepseek_cache_hit_key_is_the_cache_read_price() {
    let q = quote(
        "deepseek/deepseek-chat",
        r#"{"prompt_tokens": 1000, "completion_tokens": 0, "prompt_tokens_details": {"cached_tokens": 1000}}"#,
    )
    .unwrap();
    assert_eq!(line(&q, Component::CacheReadToken).1, d("2.8e-08"));
}

#[test]
fn cache_writes_of_both_lifetimes() {
    let q = quote(
        "claude-sonnet-4-5",
        r#"{"prompt_tokens": 1000, "completion_tokens": 0,
            "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 200, "cache_write_1h_tokens": 300}}"#,
    )
    .unwrap();
    assert_eq!(line(&q, Component::InputToken), (d("400"), d("3e-06")));
    assert_eq!(line(&q, Component::CacheReadToken), (d("100"), d("3e-07")));
    assert_eq!(line(&q, Component::CacheWriteToken), (d("200"), d("3.75e-06")));
    assert_eq!(line(&q, Component::CacheWrite1hToken), (d("300"), d("6e-06")));
    // Anthropic's field name is accepted as an alias.
    let q2 = quote(
        "claude-sonnet-4-5",
        r#"{"prompt_tokens": 1000, "completion_tokens": 0, "prompt_tokens_details": {"cache_creation_tokens": 200}}"#,
    )
    .unwrap();
    assert_eq!(line(&q2, Component::CacheWriteToken).0, d("200"));
}

#[test]
fn a_context_tier_moves_the_whole_request_to_the_higher_rates() {
    let below = quote(
        "claude-sonnet-4-5",
        r#"{"prompt_tokens": 200000, "completion_tokens": 1000}"#,
    )
    .unwrap();
    assert_eq!(below.context_tier_above_tokens, None);
    assert_eq!(below.usd, d("0.615")); // 200000 × 3 + 1000 × 15 per million
    let above = quote(
        "claude-sonnet-4-5",
        r#"{"prompt_tokens": 200001, "completion_tokens": 1000,
            "prompt_tokens_details": {"cached_tokens": 100000, "cache_write_1h_tokens": 1}}"#,
    )
    .unwrap();
    assert_eq!(above.context_tier_above_tokens, Some(200_000));
    assert_eq!(line(&above, Component::InputToken).1, d("6e-06"));
    assert_eq!(line(&above, Component::CacheReadToken).1, d("6e-07"));
    assert_eq!(line(&above, Component::CacheWrite1hToken).1, d("1.2e-05"));
    assert_eq!(line(&above, Component::OutputToken).1, d("2.25e-05"));
}

#[test]
fn xai_thresholds_are_inclusive_and_tiered_pricing_ranges_work() {
    let at_threshold = quote("grok-4", r#"{"prompt_tokens": 128000, "completion_tokens": 0}"#).unwrap();
    assert_eq!(line(&at_threshold, Component::InputToken).1, d("6e-06"));
    let one_below = quote("grok-4", r#"{"prompt_tokens": 127999, "completion_tokens": 0}"#).unwrap();
    assert_eq!(line(&one_below, Component::InputToken).1, d("3e-06"));
    // dashscope: start < tokens ≤ end, so exactly 256000 stays in the first range.
    let edge = quote(
        "dashscope/qwen-flash",
        r#"{"prompt_tokens": 256000, "completion_tokens": 0}"#,
    )
    .unwrap();
    assert_eq!(line(&edge, Component::InputToken).1, d("5e-08"));
    let over = quote(
        "dashscope/qwen-flash",
        r#"{"prompt_tokens": 256001, "completion_tokens": 10}"#,
    )
    .unwrap();
    assert_eq!(line(&over, Component::InputToken).1, d("2.5e-07"));
    assert_eq!(line(&over, Component::OutputToken).1, d("2e-06"));
}

#[test]
fn reasoning_tokens_at_their_own_price_or_the_output_price() {
    let json =
        r#"{"prompt_tokens": 10, "completion_tokens": 1000, "completion_tokens_details": {"reasoning_tokens": 800}}"#;
    let o3 = quote("o3", json).unwrap();
    assert_eq!(line(&o3, Component::ReasoningToken), (d("800"), d("1.2e-05")));
    assert_eq!(line(&o3, Component::OutputToken), (d("200"), d("8e-06")));
    let gpt = quote("gpt-4o", json).unwrap();
    assert_eq!(line(&gpt, Component::ReasoningToken), (d("800"), d("1e-05")));
}

#[test]
fn audio_tokens_at_the_audio_rate_and_refused_on_a_text_model() {
    let json = r#"{"prompt_tokens": 1000, "completion_tokens": 500,
                   "prompt_tokens_details": {"audio_tokens": 400},
                   "completion_tokens_details": {"audio_tokens": 300}}"#;
    let q = quote("gpt-4o-audio-preview", json).unwrap();
    assert_eq!(line(&q, Component::InputAudioToken), (d("400"), d("4e-05")));
    assert_eq!(line(&q, Component::OutputAudioToken), (d("300"), d("8e-05")));
    assert_eq!(line(&q, Component::InputToken).0, d("600"));
    assert_eq!(line(&q, Component::OutputToken).0, d("200"));
    let err = quote("gpt-4o", json).unwrap_err();
    assert_eq!(
        err.to_string(),
        "model \"gpt-4o\" has no price for input_audio_token (400 given): expected usage the model is priced for"
    );
}

#[test]
fn image_tokens_at_the_image_rate() {
    let q = quote(
        "gpt-image-1",
        r#"{"prompt_tokens": 1000, "completion_tokens": 4000,
            "prompt_tokens_details": {"image_tokens": 800}, "completion_tokens_details": {"image_tokens": 4000}}"#,
    )
    .unwrap();
    assert_eq!(line(&q, Component::InputImageToken), (d("800"), d("1e-05")));
    assert_eq!(line(&q, Component::OutputImageToken), (d("4000"), d("4e-05")));
    assert_eq!(line(&q, Component::InputToken), (d("200"), d("5e-06")));
    // A vision model without an image-token price counts image tokens as input tokens.
    let v = quote(
        "gpt-4o",
        r#"{"prompt_tokens": 100, "completion_tokens": 0, "prompt_tokens_details": {"image_tokens": 85}}"#,
    )
    .unwrap();
    assert_eq!(line(&v, Component::InputImageToken).1, d("2.5e-06"));
}

#[test]
fn images_by_size_and_quality() {
    let hd = quote(
        "dall-e-3",
        r#"{"output_images": 2, "image_size": "1024x1024", "image_quality": "hd"}"#,
    )
    .unwrap();
    // LiteLLM's per-pixel price times 1024 × 1024 pixels, exactly.
    assert_eq!(line(&hd, Component::OutputImage), (d("2"), d("0.07999586304")));
    let standard = quote(
        "dall-e-3",
        r#"{"output_images": 1, "image_size": "1024-x-1792", "image_quality": "standard"}"#,
    )
    .unwrap();
    assert_eq!(line(&standard, Component::OutputImage).1, d("0.07998799872"));
    // A size the catalog does not list takes the model's base per-image price.
    let other = quote("dall-e-3", r#"{"output_images": 1, "image_size": "512x512"}"#).unwrap();
    assert_eq!(line(&other, Component::OutputImage).1, d("0.04"));
    let low = quote(
        "gpt-image-1.5",
        r#"{"output_images": 3, "image_size": "1024x1024", "image_quality": "low"}"#,
    )
    .unwrap();
    assert_eq!(low.usd, d("0.027"));
    let err = quote("gpt-image-1.5", r#"{"output_images": 1, "image_size": "4096x4096"}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "model \"gpt-image-1.5\" has no output_image price for \"4096x4096\": expected one of 1024x1024/low"
    );
}

#[test]
fn pixels_seconds_characters_requests_queries_searches_pages() {
    let whisper = quote("whisper-1", r#"{"input_duration_ms": 61500}"#).unwrap();
    assert_eq!(line(&whisper, Component::InputSecond), (d("61.5"), d("0.0001")));
    assert_eq!(whisper.usd, d("0.00615"));
    let tts = quote("tts-1", r#"{"input_characters": 1000}"#).unwrap();
    assert_eq!(tts.usd, d("0.015"));
    let veo = quote(
        "veo-3.1",
        r#"{"output_duration_ms": 8000, "video_resolution": "1080p"}"#,
    )
    .unwrap();
    assert_eq!(veo.usd, d("0.64"));
    let veo720 = quote("veo-3.1", r#"{"output_duration_ms": 8000, "video_resolution": "720p"}"#).unwrap();
    assert_eq!(veo720.usd, d("0.40"));
    let mm = quote(
        "multimodalembedding",
        r#"{"input_characters": 100, "input_images": 2, "input_video_duration_ms": 4000}"#,
    )
    .unwrap();
    assert_eq!(mm.usd, d("0.00222")); // 100 × 2e-7 + 2 × 1e-4 + 4 × 5e-4
    let ocr = quote("mistral-ocr", r#"{"pages": 10, "annotation_pages": 2}"#).unwrap();
    assert_eq!(ocr.usd, d("0.016"));
    let rerank = quote("cohere/rerank-v3.5", r#"{"queries": 3}"#).unwrap();
    assert_eq!(rerank.usd, d("0.006"));
    let sonar = quote(
        "perplexity/sonar-pro",
        r#"{"prompt_tokens": 1000, "completion_tokens": 100}"#,
    )
    .unwrap();
    assert_eq!(line(&sonar, Component::Request), (d("1"), d("0.005")));
    assert_eq!(sonar.usd, d("0.0095"));
    let search = quote(
        "claude-sonnet-4-5",
        r#"{"prompt_tokens": 10, "completion_tokens": 0, "web_searches": 2, "search_context_size": "medium"}"#,
    )
    .unwrap();
    assert_eq!(line(&search, Component::WebSearch), (d("2"), d("0.01")));
    let audio_seconds = quote(
        "gemini-2.5-flash-native-audio",
        r#"{"prompt_tokens": 10, "completion_tokens": 0, "input_audio_duration_ms": 2500}"#,
    )
    .unwrap();
    assert_eq!(line(&audio_seconds, Component::InputAudioSecond).0, d("2.5"));
}

#[test]
fn service_tiers_use_their_own_prices_and_the_standard_ones_for_the_rest() {
    let u =
        usage(r#"{"prompt_tokens": 1000, "completion_tokens": 100, "prompt_tokens_details": {"cached_tokens": 500}}"#);
    let b = book();
    let q = |tier| {
        b.quote(&QuoteRequest::new("gpt-4o", &u, at()).with_service_tier(tier))
            .unwrap()
    };
    let batch = q(ServiceTier::BATCH);
    assert_eq!(line(&batch, Component::InputToken).1, d("1.25e-06"));
    // gpt-4o has no batch cache price: half the standard one, the batch convention.
    assert_eq!(line(&batch, Component::CacheReadToken).1, d("6.25e-07"));
    let priority = q(ServiceTier::PRIORITY);
    assert_eq!(line(&priority, Component::CacheReadToken).1, d("2.125e-06"));
    // No flex prices: standard.
    assert_eq!(q(ServiceTier::FLEX).usd, q(ServiceTier::STANDARD).usd);
    // A service tier's own context tier.
    let long = Usage::tokens(300_000, 0);
    let p = b
        .quote(&QuoteRequest::new("gpt-5.4", &long, at()).with_service_tier(ServiceTier::PRIORITY))
        .unwrap();
    assert_eq!(line(&p, Component::InputToken).1, d("1e-05"));
}

#[test]
fn float_looking_prices_are_kept_exactly() {
    let q = quote(
        "float/noise",
        r#"{"prompt_tokens": 1000000, "completion_tokens": 1000000}"#,
    )
    .unwrap();
    assert_eq!(
        line(&q, Component::InputToken).1.to_string(),
        "0.0000029999900000000002"
    );
    assert_eq!(q.usd.normalize().to_string(), "12.9999900000000002");
    let plain = quote("gpt-4o", r#"{"prompt_tokens": 3, "completion_tokens": 0}"#).unwrap();
    assert_eq!(plain.usd.normalize().to_string(), "0.0000075"); // not 7.500000000000001e-06
}

#[test]
fn unknown_models_are_errors_with_suggestions_never_zero() {
    let err = quote("gpt-4o-mini", r#"{"prompt_tokens": 1}"#).unwrap_err();
    match &err {
        PricingError::UnknownModel { suggestions, .. } => assert_eq!(suggestions[0], "gpt-4o"),
        other => panic!("{other:?}"),
    }
    let err = quote("openai/gpt-4o", r#"{"prompt_tokens": 1}"#).unwrap_err();
    assert!(err.to_string().contains("such as gpt-4o"), "{err}");
    let err = quote("free/model", r#"{"prompt_tokens": 1}"#).unwrap_err();
    assert!(
        matches!(
            err,
            PricingError::UnpricedUnit {
                component: "input_token",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn inconsistent_usage_names_the_count() {
    let cases = [
        (
            r#"{"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 11}}"#,
            "inconsistent usage: prompt_tokens_details.cached_tokens (11) exceeds prompt_tokens (10)",
        ),
        (
            r#"{"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 6, "audio_tokens": 5}}"#,
            "inconsistent usage: the sum of prompt_tokens_details (11) exceeds prompt_tokens (10)",
        ),
        (
            r#"{"completion_tokens": 5, "completion_tokens_details": {"reasoning_tokens": 6}}"#,
            "inconsistent usage: completion_tokens_details.reasoning_tokens (6) exceeds completion_tokens (5)",
        ),
        (
            r#"{"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 11}"#,
            "invalid usage: total_tokens is 11, expected prompt_tokens + completion_tokens",
        ),
    ];
    for (json, message) in cases {
        // Refused when the usage is read, before any quote.
        let err = serde_json::from_str::<Usage>(json).unwrap_err().to_string();
        assert!(err.starts_with(message), "{err}");
        assert_eq!(Usage::from_json(json, None).unwrap_err().to_string(), message);
    }
    // null details, as some upstreams send, are no details.
    assert!(quote("gpt-4o", r#"{"prompt_tokens": 5, "prompt_tokens_details": null}"#).is_ok());
}

#[test]
fn price_versions_by_date() {
    let v = |y, price: &str| {
        PriceVersion::new(
            Utc.with_ymd_and_hms(y, 1, 1, 0, 0, 0).unwrap(),
            RateCard::new().with(Component::InputToken, d(price)),
        )
    };
    let spec = ModelSpec {
        id: "m".into(),
        aliases: vec![],
        provider: "p".into(),
        mode: Mode::Chat,
        tier_rule: TierRule::default(),
        markup: None,
        max_output_tokens: None,
        versions: vec![v(2026, "0.000002"), v(2025, "0.000001")],
    };
    let b = PriceBook::new(vec![spec]).unwrap();
    let u = Usage::tokens(1_000_000, 0);
    let on = |y, m, day| {
        b.quote(&QuoteRequest::new(
            "m",
            &u,
            Utc.with_ymd_and_hms(y, m, day, 0, 0, 0).unwrap(),
        ))
    };
    assert_eq!(on(2025, 6, 1).unwrap().usd, d("1"));
    assert_eq!(on(2026, 1, 1).unwrap().usd, d("2"));
    assert_eq!(
        on(2024, 12, 31).unwrap_err().to_string(),
        "model \"m\" has no price in force at 2024-12-31T00:00:00Z: its first price starts at 2025-01-01T00:00:00Z"
    );
}

#[test]
fn markup_is_its_own_line() {
    let b = book()
        .with_markup(Some(Markup {
            percent: d("10"),
            fixed_usd: d("0.001"),
        }))
        .unwrap();
    let u = Usage::tokens(1000, 500);
    let q = b.quote(&QuoteRequest::new("gpt-4o", &u, at())).unwrap();
    let last = q.lines.last().unwrap();
    assert_eq!(last.kind, LineKind::Markup);
    assert_eq!(last.usd, d("0.00175")); // 10% of 0.0075 + 0.001
    assert_eq!(q.usd, d("0.00925"));
    assert!(
        book()
            .with_markup(Some(Markup {
                percent: d("-1"),
                fixed_usd: d("0")
            }))
            .is_err()
    );
}

#[test]
fn usage_section_and_headers() {
    let q = quote("gpt-4o", r#"{"prompt_tokens": 300, "completion_tokens": 114}"#).unwrap();
    assert_eq!(q.credits, Credits::new(3780));
    let section = q.usage_section(q.credits).unwrap();
    let json = serde_json::to_string(&serde_json::json!({"meta": {"usage": section}})).unwrap();
    assert_eq!(json, r#"{"meta":{"usage":{"credits_used":3780,"usd_spent":0.00189}}}"#);
    assert_eq!(
        section.headers(),
        [
            ("x-aimlapi-credits-used", "3780".to_string()),
            ("x-aimlapi-usd-spent", "0.00189".to_string())
        ]
    );
    let three = CreditRate::new(paygo_credits::Currency::USD, d("3")).unwrap();
    let odd = UsageSection::new(Credits::new(1), three).unwrap();
    assert_eq!(odd.usd_spent.to_string(), "0.333333333333");
    // Beyond 12 places of 96 bits at an inexact rate: an error, never a made-up $0.
    assert!(UsageSection::new(Credits::new(1_000_000_000_000_000_000), three).is_err());
    // At the default rate every count has an exact value, the largest included.
    let max = UsageSection::new(Credits::MAX, CreditRate::default()).unwrap();
    assert_eq!(max.usd_spent.to_string(), "4611686018427.3879035");
}

#[test]
fn credits_round_up_by_default_and_as_configured() {
    // 1 token at $0.15/M is 0.3 credits.
    let spec = ModelSpec {
        id: "m".into(),
        aliases: vec!["alias".into()],
        provider: "p".into(),
        mode: Mode::Chat,
        tier_rule: TierRule::default(),
        markup: None,
        max_output_tokens: None,
        versions: vec![PriceVersion::new(
            DateTime::<Utc>::UNIX_EPOCH,
            RateCard::new().with(Component::InputToken, d("0.00000015")),
        )],
    };
    let b = PriceBook::new(vec![spec]).unwrap();
    let u = Usage::tokens(1, 0);
    let q = b.quote(&QuoteRequest::new("alias", &u, at())).unwrap();
    assert_eq!(&*q.model, "m");
    assert_eq!(
        (q.exact_credits.to_string(), q.credits),
        ("0.3".to_string(), Credits::new(1))
    );
    let b = b.with_credit_rounding(Rounding::HalfEven);
    assert_eq!(
        b.quote(&QuoteRequest::new("m", &u, at())).unwrap().credits,
        Credits::ZERO
    );
}

#[test]
fn bad_books_are_errors() {
    let spec = |id: &str, alias: &str, price: &str| ModelSpec {
        id: id.into(),
        aliases: vec![alias.into()],
        provider: "p".into(),
        mode: Mode::Chat,
        tier_rule: TierRule::default(),
        markup: None,
        max_output_tokens: None,
        versions: vec![PriceVersion::new(
            DateTime::<Utc>::UNIX_EPOCH,
            RateCard::new().with(Component::InputToken, d(price)),
        )],
    };
    let err = PriceBook::new(vec![spec("a", "x", "1"), spec("b", "x", "1")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "duplicate model id or alias \"x\": used by \"a\" and \"b\""
    );
    let err = PriceBook::new(vec![spec("a", "b", "-0.1")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid price for model \"a\", versions[1970-01-01T00:00:00Z].prices.input_token: -0.1 is negative, expected a price of zero or more"
    );
    let err = import(
        r#"{"m": {"litellm_provider": "x", "input_cost_per_token": "cheap"}}"#,
        &ImportOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid price for model \"m\", input_cost_per_token: \"cheap\" given, expected a number"
    );
    let err = PriceBook::from_json(r#"{"format": "paygo-prices/9", "models": []}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid price book: format \"paygo-prices/9\" given, expected \"paygo-prices/1\""
    );
    let err = PriceBook::from_json(
        r#"{"format": "paygo-prices/1", "models": [{"id": "m", "provider": "p", "mode": "chat",
        "versions": [{"valid_from": "2025-01-01T00:00:00Z", "prices": {"input_tokens": "1"}}]}]}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown variant `input_tokens`"), "{err}");
    // A key given twice is refused, not read as its last value (which would price the
    // tokens at 0 here).
    let err = PriceBook::from_json(
        r#"{"format": "paygo-prices/1", "models": [{"id": "m", "provider": "p", "mode": "chat",
        "versions": [{"valid_from": "2025-01-01T00:00:00Z",
        "prices": {"input_token": "0.000003", "input_token": "0"}}]}]}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("input_token is given twice"), "{err}");
    let err = PriceBook::from_json(
        r#"{"format": "paygo-prices/1", "models": [{"id": "m", "provider": "p", "mode": "chat",
        "versions": [{"valid_from": "2025-01-01T00:00:00Z", "prices": {"input_token": "1"},
        "service_tiers": {"batch": {"prices": {"input_token": "0.5"}},
                          "batch": {"prices": {"input_token": "0"}}}}]}]}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("batch is given twice"), "{err}");
}

#[test]
fn litellm_import_reports_what_it_does_not_understand() {
    let (b, report) = import(CATALOG, &ImportOptions::default()).unwrap();
    let skipped: Vec<&str> = report.skipped.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(skipped, ["fallback_generalizations", "last_updated", "sample_spec"]);
    let unknown: Vec<(&str, &str)> = report
        .unknown_keys
        .iter()
        .map(|n| (n.model.as_str(), n.key.as_str()))
        .collect();
    assert_eq!(
        unknown,
        [(
            "multimodalembedding",
            "input_cost_per_video_per_second_above_8s_interval"
        )]
    );
    assert!(
        report.unknown_keys[0].reason.contains("video length"),
        "{}",
        report.unknown_keys[0]
    );
    let not_applied: Vec<(&str, &str)> = report
        .not_applied
        .iter()
        .map(|n| (n.model.as_str(), n.key.as_str()))
        .collect();
    assert_eq!(not_applied, [("databricks/dbrx", "input_dbu_cost_per_token")]);
    assert_eq!(report.variants_attached, 3);
    assert_eq!(b.len(), report.models);
    let strict = import(
        CATALOG,
        &ImportOptions {
            strict: true,
            ..ImportOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        strict.to_string(),
        "1 price keys not understood (strict mode), first: multimodalembedding: input_cost_per_video_per_second_above_8s_interval: a tier by video length (above 8s intervals) is not a context tier; paygo has no usage field for it"
    );
}

#[test]
fn estimate_covers_the_dearest_split_and_tier() {
    let b = book();
    let e = b
        .estimate(&EstimateRequest::new("claude-sonnet-4-5", 1000, 1000, at()))
        .unwrap();
    // Every prompt token at the dearest prompt price (1h cache write, $6/M) and every
    // completion token at $15/M.
    assert_eq!(e.usd, d("0.021"));
    let worst = quote(
        "claude-sonnet-4-5",
        r#"{"prompt_tokens": 1000, "completion_tokens": 1000, "prompt_tokens_details": {"cache_write_1h_tokens": 1000}}"#,
    )
    .unwrap();
    assert_eq!(worst.usd, e.usd);
    assert_eq!(e.credits, Credits::new(42_000));
    // With all tokens counted, the limits can reach the tier above 200k.
    let long = b
        .estimate(&EstimateRequest::new("claude-sonnet-4-5", 200_000, 1, at()))
        .unwrap();
    assert_eq!(long.usd, d("1.2000150")); // 200k × $6/M (1h write, below the tier) + 1 × $15/M
    let units = usage(r#"{"output_images": 2}"#);
    let img = b
        .estimate(&EstimateRequest {
            units: Some(&units),
            ..EstimateRequest::new("dall-e-3", 0, 0, at())
        })
        .unwrap();
    assert_eq!(img.usd, d("0.15999172608")); // the dearest size: 2 × 0.07999586304 (hd)
    let bad = usage(r#"{"prompt_tokens": 1}"#);
    assert!(
        b.estimate(&EstimateRequest {
            units: Some(&bad),
            ..EstimateRequest::new("gpt-4o", 0, 0, at())
        })
        .is_err()
    );
}

#[test]
fn a_paygo_book_round_trips() {
    let b = book()
        .with_markup(Some(Markup {
            percent: d("5"),
            fixed_usd: d("0"),
        }))
        .unwrap();
    let text = b.to_json();
    let back = PriceBook::from_json(&text).unwrap();
    assert_eq!(back.models(), b.models());
    assert_eq!(back.markup(), b.markup());
    assert_eq!(back.to_json(), text);
}

#[test]
fn breakdown_serializes_for_the_quote_example() {
    let q = quote("whisper-1", r#"{"input_duration_ms": 1500}"#).unwrap();
    let json = serde_json::to_string(&q.lines).unwrap();
    assert_eq!(
        json,
        r#"[{"component":"input_second","quantity":1.5,"unit_usd":"0.0001","usd":"0.00015"}]"#
    );
}

#[test]
fn a_quote_reports_only_its_own_service_tier_s_context_threshold() {
    // Only the batch tier has a context tier (above 100k); the standard tier has none.
    let b = PriceBook::from_json(
        r#"{"format": "paygo-prices/1", "models": [{"id": "m", "provider": "p", "mode": "chat",
        "versions": [{"valid_from": "2025-01-01T00:00:00Z",
        "prices": {"input_token": "0.000003"},
        "service_tiers": {"batch": {"prices": {"input_token": "0.0000015"},
            "context_tiers": [{"above_tokens": 100000, "prices": {"input_token": "0.000002"}}]}}}]}]}"#,
    )
    .unwrap();
    let long = usage(r#"{"prompt_tokens": 150000, "completion_tokens": 0}"#);
    let standard = b.quote(&QuoteRequest::new("m", &long, at())).unwrap();
    assert_eq!(standard.usd.to_string(), "0.450000");
    assert_eq!(standard.context_tier_above_tokens, None);
    let batch = b
        .quote(&QuoteRequest::new("m", &long, at()).with_service_tier(ServiceTier::BATCH))
        .unwrap();
    assert_eq!(batch.usd.to_string(), "0.300000");
    assert_eq!(batch.context_tier_above_tokens, Some(100_000));
}
