//! The LiteLLM import of today's catalog, unit by unit and convention by convention.
//!
//! Each snippet is modelled on a real entry of LiteLLM 1.110.2's catalog (named in the test),
//! and each expected number is LiteLLM's own where paygo follows it (computed with
//! `litellm.cost_per_token` / `batch_cost_calculator` / `video_generation_cost` on that
//! entry), or paygo's documented convention where it deliberately differs (said in the test).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use chrono::{DateTime, TimeZone, Utc};
use paygo_credits::Decimal;
use paygo_pricing::litellm::{ImportOptions, ImportReport, KeyNote, detect_format, import, import_specs};
use paygo_pricing::{Component, LineKind, PriceBook, PricingError, Quote, QuoteRequest, ServiceTier, Usage};

fn d(text: &str) -> Decimal {
    paygo_credits::decimal::parse_scientific(text).unwrap()
}

fn utc(y: i32, mo: u32, day: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, day, h, mi, s).unwrap()
}

/// A Monday, noon UTC, outside every window of the snippets below.
fn monday_noon() -> DateTime<Utc> {
    utc(2026, 6, 1, 12, 0, 0)
}

fn strict() -> ImportOptions {
    ImportOptions {
        strict: true,
        ..ImportOptions::default()
    }
}

fn lenient(json: &str) -> (PriceBook, ImportReport) {
    import(json, &ImportOptions::default()).unwrap_or_else(|e| panic!("import failed: {e}\n{json}"))
}

fn usage(json: &str) -> Usage {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("usage {json}: {e}"))
}

fn quote_at(book: &PriceBook, model: &str, usage_json: &str, at: DateTime<Utc>, tier: ServiceTier) -> Quote {
    let u = usage(usage_json);
    book.quote(&QuoteRequest::new(model, &u, at).with_service_tier(tier))
        .unwrap_or_else(|e| panic!("quote {model} {usage_json}: {e}"))
}

fn quote(book: &PriceBook, model: &str, usage_json: &str) -> Quote {
    quote_at(book, model, usage_json, monday_noon(), ServiceTier::STANDARD)
}

fn quote_err(book: &PriceBook, model: &str, usage_json: &str) -> PricingError {
    let u = usage(usage_json);
    book.quote(&QuoteRequest::new(model, &u, monday_noon()))
        .expect_err("expected an error, not a price")
}

/// The unit price of a component's line.
fn unit(q: &Quote, component: Component) -> Decimal {
    q.lines
        .iter()
        .find(|l| l.kind == LineKind::Unit(component))
        .unwrap_or_else(|| panic!("no {component} line in {:?}", q.lines))
        .unit_usd
}

fn keys(notes: &[KeyNote]) -> Vec<(&str, &str)> {
    notes.iter().map(|n| (n.model.as_str(), n.key.as_str())).collect()
}

// ---------------------------------------------------------------------------------------
// off_peak_pricing: time windows
// ---------------------------------------------------------------------------------------

/// `deepseek-v4-flash` as in the catalog.
const DEEPSEEK_V4_FLASH: &str = r#"{"deepseek-v4-flash": {
  "cache_creation_input_token_cost": 0.0, "cache_read_input_token_cost": 6e-09,
  "input_cost_per_token": 3e-07, "input_cost_per_token_cache_hit": 6e-09,
  "litellm_provider": "deepseek", "max_input_tokens": 1000000, "mode": "chat",
  "off_peak_pricing": {"cache_read_input_token_cost": 3e-09, "input_cost_per_token": 1.5e-07,
    "output_cost_per_token": 6e-07,
    "windows": [{"hours_utc": ["00:00-01:00", "04:00-06:00", "10:00-00:00"], "weekdays": [1, 2, 3, 4, 5]},
                {"hours_utc": "00:00-00:00", "weekdays": [6, 7]}]},
  "output_cost_per_token": 1.2e-06, "supports_reasoning": true}}"#;

const DEEPSEEK_USAGE: &str =
    r#"{"prompt_tokens": 1000, "completion_tokens": 500, "prompt_tokens_details": {"cached_tokens": 200}}"#;

#[test]
fn off_peak_windows_of_deepseek_v4_flash_are_exact_to_the_second() {
    let (book, report) = lenient(DEEPSEEK_V4_FLASH);
    assert!(report.unknown_keys.is_empty(), "{:?}", report.unknown_keys);
    // 2026-06-01 is a Monday, 2026-06-06 a Saturday. LiteLLM: 0.0004206 off peak,
    // 0.0008412 at peak for this usage (800 × in + 200 × cache read + 500 × out).
    let off = d("0.0004206");
    let peak = d("0.0008412");
    let cases = [
        (utc(2026, 6, 1, 0, 0, 0), off),
        (utc(2026, 6, 1, 0, 59, 59), off),
        (utc(2026, 6, 1, 1, 0, 0), peak),
        (utc(2026, 6, 1, 3, 59, 59), peak),
        (utc(2026, 6, 1, 4, 0, 0), off),
        (utc(2026, 6, 1, 5, 59, 59), off),
        (utc(2026, 6, 1, 6, 0, 0), peak),
        (utc(2026, 6, 1, 9, 59, 59), peak),
        (utc(2026, 6, 1, 10, 0, 0), off),
        (utc(2026, 6, 1, 23, 59, 59), off),
        (utc(2026, 6, 5, 12, 0, 0), off),
        (utc(2026, 6, 5, 7, 0, 0), peak),
        // The weekend: the whole day ("00:00-00:00").
        (utc(2026, 6, 6, 7, 0, 0), off),
        (utc(2026, 6, 7, 1, 30, 0), off),
        (utc(2026, 6, 8, 1, 30, 0), peak),
    ];
    for (at, expected) in cases {
        let q = quote_at(&book, "deepseek-v4-flash", DEEPSEEK_USAGE, at, ServiceTier::STANDARD);
        assert_eq!(q.usd, expected, "at {at}: {:?}", q.lines);
        assert_eq!(
            q.window.as_deref(),
            (expected == off).then_some("off_peak"),
            "Quote::window at {at}"
        );
    }
}

#[test]
fn off_peak_replaces_only_the_prices_it_lists() {
    let (book, _) = lenient(DEEPSEEK_V4_FLASH);
    let u = r#"{"prompt_tokens": 1000, "completion_tokens": 0,
               "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 300}}"#;
    let q = quote_at(
        &book,
        "deepseek-v4-flash",
        u,
        utc(2026, 6, 1, 10, 0, 0),
        ServiceTier::STANDARD,
    );
    assert_eq!(unit(&q, Component::InputToken), d("1.5e-07"));
    assert_eq!(unit(&q, Component::CacheReadToken), d("3e-09"));
    // The catalog's explicit 0.0 cache-write price is not in the block: it stays 0.0.
    assert_eq!(unit(&q, Component::CacheWriteToken), Decimal::ZERO);
}

#[test]
fn off_peak_without_a_cache_price_falls_back_to_the_window_s_input_price() {
    let json = r#"{"m": {"litellm_provider": "deepseek", "mode": "chat",
        "input_cost_per_token": 4e-07, "output_cost_per_token": 1e-06,
        "output_cost_per_reasoning_token": 2e-06,
        "off_peak_pricing": {"input_cost_per_token": 2e-07, "output_cost_per_token": 5e-07,
                             "hours_utc": "16:30-00:30"}}}"#;
    let (book, _) = lenient(json);
    let u = r#"{"prompt_tokens": 100, "completion_tokens": 100,
               "prompt_tokens_details": {"cached_tokens": 40},
               "completion_tokens_details": {"reasoning_tokens": 30}}"#;
    let q = quote_at(&book, "m", u, utc(2026, 6, 2, 0, 15, 0), ServiceTier::STANDARD);
    assert_eq!(q.window.as_deref(), Some("off_peak"));
    // LiteLLM: a missing cache-read rate is the off-peak input rate; an explicit standard
    // reasoning price keeps its peak value.
    assert_eq!(unit(&q, Component::CacheReadToken), d("2e-07"));
    assert_eq!(unit(&q, Component::ReasoningToken), d("2e-06"));
    assert_eq!(unit(&q, Component::OutputToken), d("5e-07"));
    // Top-level hours_utc: every day, 16:30 inclusive to 00:30 exclusive.
    for (at, open) in [
        (utc(2026, 6, 6, 16, 29, 59), false),
        (utc(2026, 6, 6, 16, 30, 0), true),
        (utc(2026, 6, 7, 0, 29, 59), true),
        (utc(2026, 6, 7, 0, 30, 0), false),
    ] {
        let q = quote_at(&book, "m", u, at, ServiceTier::STANDARD);
        assert_eq!(q.window.is_some(), open, "at {at}");
    }
}

#[test]
fn off_peak_applies_on_top_of_service_tiers_and_context_tiers() {
    let json = r#"{"m": {"litellm_provider": "deepseek", "mode": "chat",
        "input_cost_per_token": 4e-07, "output_cost_per_token": 1e-06,
        "input_cost_per_token_priority": 8e-07, "input_cost_per_token_above_128k_tokens": 9e-07,
        "off_peak_pricing": {"input_cost_per_token": 2e-07, "hours_utc": "00:00-00:00"}}}"#;
    let (book, _) = lenient(json);
    let at = utc(2026, 6, 3, 12, 0, 0);
    let q = quote_at(&book, "m", r#"{"prompt_tokens": 1000}"#, at, ServiceTier::PRIORITY);
    assert_eq!(unit(&q, Component::InputToken), d("2e-07"));
    let q = quote_at(&book, "m", r#"{"prompt_tokens": 200000}"#, at, ServiceTier::STANDARD);
    assert_eq!(unit(&q, Component::InputToken), d("2e-07"));
}

/// `tencent/deepseek-v4.1-flash`: the weekdays are those of Asia/Shanghai, the hours UTC.
#[test]
fn off_peak_weekdays_are_read_in_weekday_timezone_hours_in_utc() {
    // The catalog's own blocks give the same result under both calendars (see the notes),
    // so the weekend-only rule here makes the calendar visible. LiteLLM: 0.00015 inside,
    // 0.0003 outside, at exactly these instants.
    let json = r#"{
      "tencent/deepseek-v4.1-flash": {"litellm_provider": "tencent", "mode": "chat",
        "input_cost_per_token": 3e-07, "output_cost_per_token": 1.2e-06,
        "off_peak_pricing": {"input_cost_per_token": 1.5e-07, "weekday_timezone": "Asia/Shanghai",
          "windows": [{"hours_utc": "00:00-00:00", "weekdays": [6, 7]}]}},
      "utc-calendar": {"litellm_provider": "deepseek", "mode": "chat",
        "input_cost_per_token": 3e-07, "output_cost_per_token": 1.2e-06,
        "off_peak_pricing": {"input_cost_per_token": 1.5e-07,
          "windows": [{"hours_utc": "00:00-00:00", "weekdays": ["sat", "Sunday"]}]}},
      "hours-are-utc": {"litellm_provider": "tencent", "mode": "chat",
        "input_cost_per_token": 3e-07, "output_cost_per_token": 1.2e-06,
        "off_peak_pricing": {"input_cost_per_token": 1.5e-07, "weekday_timezone": "Asia/Shanghai",
          "windows": [{"hours_utc": "00:00-01:00", "weekdays": [1]}]}}
    }"#;
    let (book, report) = lenient(json);
    assert!(report.unknown_keys.is_empty(), "{:?}", report.unknown_keys);
    let u = r#"{"prompt_tokens": 1000}"#;
    let price = |model: &str, at: DateTime<Utc>| quote_at(&book, model, u, at, ServiceTier::STANDARD).usd;
    let (off, peak) = (d("0.00015"), d("0.0003"));
    // Friday 16:00 UTC is Saturday 00:00 in Shanghai.
    assert_eq!(price("tencent/deepseek-v4.1-flash", utc(2026, 6, 5, 15, 59, 59)), peak);
    assert_eq!(price("tencent/deepseek-v4.1-flash", utc(2026, 6, 5, 16, 0, 0)), off);
    assert_eq!(price("tencent/deepseek-v4.1-flash", utc(2026, 6, 7, 15, 59, 59)), off);
    assert_eq!(price("tencent/deepseek-v4.1-flash", utc(2026, 6, 7, 16, 0, 0)), peak);
    // Without weekday_timezone the calendar is UTC (and weekday names are read).
    assert_eq!(price("utc-calendar", utc(2026, 6, 5, 16, 0, 0)), peak);
    assert_eq!(price("utc-calendar", utc(2026, 6, 6, 0, 0, 0)), off);
    assert_eq!(price("utc-calendar", utc(2026, 6, 7, 23, 59, 59)), off);
    assert_eq!(price("utc-calendar", utc(2026, 6, 8, 0, 0, 0)), peak);
    // Monday 00:30 UTC is Monday 08:30 in Shanghai: open. Sunday 16:30 UTC is Monday
    // 00:30 in Shanghai, but 16:30 is not in the UTC hours: closed.
    assert_eq!(price("hours-are-utc", utc(2026, 6, 1, 0, 30, 0)), off);
    assert_eq!(price("hours-are-utc", utc(2026, 6, 7, 16, 30, 0)), peak);
    // The window is written in the zone's fixed offset.
    let spec = book.model("tencent/deepseek-v4.1-flash").unwrap();
    assert_eq!(spec.versions[0].windows[0].utc_offset.local_minus_utc(), 8 * 3600);
}

#[test]
fn off_peak_in_a_zone_without_a_fixed_offset_is_reported_not_guessed() {
    let json = r#"{"m": {"litellm_provider": "deepseek", "mode": "chat",
        "input_cost_per_token": 3e-07, "output_cost_per_token": 1.2e-06,
        "off_peak_pricing": {"input_cost_per_token": 1.5e-07, "weekday_timezone": "America/New_York",
          "windows": [{"hours_utc": "00:00-00:00", "weekdays": [6, 7]}]}}}"#;
    let (_, report) = lenient(json);
    assert_eq!(keys(&report.unknown_keys), [("m", "off_peak_pricing.weekday_timezone")]);
    let err = import(json, &strict()).unwrap_err();
    assert!(matches!(err, PricingError::UnknownKeys { count: 1, .. }), "{err}");
    assert!(err.to_string().contains("weekday_timezone"), "{err}");
}

#[test]
fn malformed_off_peak_blocks_are_errors_naming_the_model() {
    for (block, says) in [
        (r#"{"input_cost_per_token": 1e-07}"#, "never open"),
        (
            r#"{"input_cost_per_token": 1e-07, "hours_utc": "25:00-01:00"}"#,
            "25:00-01:00",
        ),
        (
            r#"{"input_cost_per_token": 1e-07, "windows": [{"hours_utc": "00:00-01:00", "weekdays": [8]}]}"#,
            "weekday 8",
        ),
        (
            r#"{"input_cost_per_token": 1e-07, "windows": [{"weekdays": [1]}]}"#,
            "without hours_utc",
        ),
    ] {
        let json = format!(
            r#"{{"m": {{"litellm_provider": "deepseek", "mode": "chat", "input_cost_per_token": 3e-07,
                 "off_peak_pricing": {block}}}}}"#
        );
        let err = import(&json, &ImportOptions::default()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("\"m\"") && text.contains("off_peak_pricing") && text.contains(says),
            "{block}: {text}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Per-second video by resolution, images by size
// ---------------------------------------------------------------------------------------

#[test]
fn video_per_second_by_resolution_fal_minimax() {
    let json = r#"{"fal_ai/minimax/h3/text-to-video": {"litellm_provider": "fal_ai", "mode": "video_generation",
        "output_cost_per_second": 0.13, "output_cost_per_second_480p": 0.05, "output_cost_per_second_768p": 0.06,
        "output_cost_per_second_2k": 0.13, "output_cost_per_second_4k": 0.16}}"#;
    let (book, report) = lenient(json);
    assert!(report.unknown_keys.is_empty(), "{:?}", report.unknown_keys);
    let m = "fal_ai/minimax/h3/text-to-video";
    // LiteLLM's video_generation_cost for 5 s: 768p 0.3; "2K" (lower-cased) 0.65; a label
    // without a key ("1280x720") and no label at all: the base price, 0.65.
    for (resolution, usd) in [
        (Some("768p"), "0.30"),
        (Some("480p"), "0.25"),
        (Some("2K"), "0.65"),
        (Some("4k"), "0.80"),
        (Some("1280x720"), "0.65"),
        (None, "0.65"),
    ] {
        let u = match resolution {
            Some(r) => format!(r#"{{"output_duration_ms": 5000, "video_resolution": "{r}"}}"#),
            None => r#"{"output_duration_ms": 5000}"#.to_owned(),
        };
        let q = quote(&book, m, &u);
        assert_eq!(q.usd, d(usd), "{resolution:?}: {:?}", q.lines);
    }
}

#[test]
fn video_resolution_without_a_base_price_is_an_error_listing_the_known_ones() {
    let json = r#"{"v": {"litellm_provider": "fal_ai", "mode": "video_generation",
        "output_cost_per_second_1080p": 0.45, "output_cost_per_second_768p": 0.3}}"#;
    let (book, _) = lenient(json);
    assert_eq!(
        quote(
            &book,
            "v",
            r#"{"output_duration_ms": 2000, "video_resolution": "1080P"}"#
        )
        .usd,
        d("0.90")
    );
    let err = quote_err(&book, "v", r#"{"output_duration_ms": 2000, "video_resolution": "4k"}"#);
    assert!(matches!(err, PricingError::UnknownVariant { .. }), "{err}");
    assert!(
        err.to_string().contains("768p") && err.to_string().contains("1080p"),
        "{err}"
    );
    let err = quote_err(&book, "v", r#"{"output_duration_ms": 2000}"#);
    assert!(matches!(err, PricingError::UnknownVariant { .. }), "{err}");
}

/// `fal_ai/fal-ai/nano-banana-2`: priced by the request's `resolution` (0.5K, 1K, 2K, 4K).
#[test]
fn output_images_by_size_key_fal_nano_banana() {
    let json = r#"{"fal_ai/fal-ai/nano-banana-2": {"litellm_provider": "fal_ai", "mode": "image_generation",
        "output_cost_per_image": 0.08, "output_cost_per_image_0.5K": 0.06, "output_cost_per_image_1K": 0.08,
        "output_cost_per_image_2K": 0.12, "output_cost_per_image_4K": 0.16}}"#;
    let (book, report) = lenient(json);
    assert!(report.unknown_keys.is_empty(), "{:?}", report.unknown_keys);
    let m = "fal_ai/fal-ai/nano-banana-2";
    // LiteLLM (fal): output_cost_per_image_<resolution> × images; no resolution: the base.
    for (size, usd) in [("2K", "0.24"), ("0.5K", "0.12"), ("4K", "0.32"), ("1K", "0.16")] {
        let q = quote(&book, m, &format!(r#"{{"output_images": 2, "image_size": "{size}"}}"#));
        assert_eq!(q.usd, d(usd), "{size}: {:?}", q.lines);
    }
    assert_eq!(quote(&book, m, r#"{"output_images": 2}"#).usd, d("0.16"));
}

/// `xai/grok-imagine-image-2.0`: priced only by `input_cost_per_image` (and sizes).
#[test]
fn image_generation_priced_by_input_cost_per_image_bills_output_images() {
    let json = r#"{"xai/grok-imagine-image-2.0": {"litellm_provider": "xai", "mode": "image_generation",
        "input_cost_per_image": 0.06, "output_cost_per_image_1K": 0.04, "output_cost_per_image_2K": 0.06}}"#;
    let (book, report) = lenient(json);
    assert!(report.unknown_keys.is_empty(), "{:?}", report.unknown_keys);
    // paygo's convention: input_cost_per_image is the price of each image made. (LiteLLM's
    // xai calculator bills a generation without a resolution at the _1K price, 0.04: see the
    // report of this test's author.)
    let q = quote(&book, "xai/grok-imagine-image-2.0", r#"{"output_images": 3}"#);
    assert_eq!(q.usd, d("0.18"));
    assert_eq!(unit(&q, Component::OutputImage), d("0.06"));
    // The key is moved, not copied: input images are not priced by it any more.
    let err = quote_err(
        &book,
        "xai/grok-imagine-image-2.0",
        r#"{"input_images": 1, "output_images": 1}"#,
    );
    assert!(
        matches!(
            err,
            PricingError::UnpricedUnit {
                component: "input_image",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn image_generation_by_size_key_xai() {
    let json = r#"{"xai/grok-imagine-image-2.0": {"litellm_provider": "xai", "mode": "image_generation",
        "input_cost_per_image": 0.06, "output_cost_per_image_1K": 0.04, "output_cost_per_image_2K": 0.06}}"#;
    let (book, _) = lenient(json);
    let q = quote(
        &book,
        "xai/grok-imagine-image-2.0",
        r#"{"output_images": 2, "image_size": "1K"}"#,
    );
    assert_eq!(q.usd, d("0.08"), "{:?}", q.lines);
}

#[test]
fn image_generation_with_both_image_prices_keeps_each() {
    let json = r#"{"i": {"litellm_provider": "openai", "mode": "image_generation",
        "input_cost_per_image": 0.01, "output_cost_per_image": 0.04}}"#;
    let (book, _) = lenient(json);
    let q = quote(&book, "i", r#"{"input_images": 1, "output_images": 1}"#);
    assert_eq!(unit(&q, Component::InputImage), d("0.01"));
    assert_eq!(unit(&q, Component::OutputImage), d("0.04"));
}

/// `azure/gpt-image-1`: `output_cost_per_image_token` and no `output_cost_per_token`.
#[test]
fn output_image_token_price_is_the_output_price_when_that_is_absent_or_zero() {
    let json = r#"{
      "azure/gpt-image-1": {"litellm_provider": "azure", "mode": "image_generation",
        "cache_read_input_image_token_cost": 2.5e-06, "cache_read_input_token_cost": 1.25e-06,
        "input_cost_per_image_token": 1e-05, "input_cost_per_token": 5e-06, "output_cost_per_image_token": 4e-05},
      "zero-output": {"litellm_provider": "azure", "mode": "image_generation",
        "input_cost_per_token": 5e-06, "output_cost_per_token": 0.0, "output_cost_per_image_token": 4e-05},
      "own-output": {"litellm_provider": "azure", "mode": "image_generation",
        "input_cost_per_token": 5e-06, "output_cost_per_token": 1e-05, "output_cost_per_image_token": 4e-05}
    }"#;
    let (book, _) = lenient(json);
    let u = r#"{"prompt_tokens": 100, "completion_tokens": 1000}"#;
    // LiteLLM: 100 × 5e-06 + 1000 × 4e-05 = 0.0405.
    assert_eq!(quote(&book, "azure/gpt-image-1", u).usd, d("0.0405"));
    assert_eq!(quote(&book, "zero-output", u).usd, d("0.0405"));
    assert_eq!(quote(&book, "own-output", u).usd, d("0.0105"));
}

// ---------------------------------------------------------------------------------------
// Transcription, cost_per_second, text messages
// ---------------------------------------------------------------------------------------

#[test]
fn transcription_is_billed_once_per_audio_second_at_the_output_price_if_positive() {
    let json = r#"{
      "soniox/stt-async-v4": {"litellm_provider": "soniox", "mode": "audio_transcription",
        "input_cost_per_second": 0.0, "output_cost_per_second": 2.77778e-05},
      "whisper-1": {"litellm_provider": "openai", "mode": "audio_transcription",
        "input_cost_per_second": 0.0001, "output_cost_per_second": 0.0001},
      "deepgram/nova-3": {"litellm_provider": "deepgram", "mode": "audio_transcription",
        "input_cost_per_second": 7.167e-05, "output_cost_per_second": 0.0}
    }"#;
    let (book, report) = lenient(json);
    assert!(report.unknown_keys.is_empty(), "{:?}", report.unknown_keys);
    let minute = r#"{"input_duration_ms": 60000}"#;
    // LiteLLM (call_type transcription, 60 s): soniox 0.001666668, whisper 0.006 (not 0.012).
    assert_eq!(quote(&book, "soniox/stt-async-v4", minute).usd, d("0.001666668"));
    assert_eq!(quote(&book, "whisper-1", minute).usd, d("0.006"));
    assert_eq!(quote(&book, "deepgram/nova-3", minute).usd, d("0.0043002"));
    // One duration feeds the price: an output duration is not a second charge.
    let err = quote_err(
        &book,
        "whisper-1",
        r#"{"input_duration_ms": 60000, "output_duration_ms": 60000}"#,
    );
    assert!(
        matches!(
            err,
            PricingError::UnpricedUnit {
                component: "output_second",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn per_second_prices_of_speech_models_are_not_touched() {
    // The transcription convention is for transcription entries only.
    let json = r#"{"tts": {"litellm_provider": "openai", "mode": "audio_speech",
        "input_cost_per_second": 0.0, "output_cost_per_second": 0.0002}}"#;
    let (book, _) = lenient(json);
    assert_eq!(quote(&book, "tts", r#"{"output_duration_ms": 10000}"#).usd, d("0.002"));
    assert_eq!(
        quote(&book, "tts", r#"{"input_duration_ms": 10000}"#).usd,
        Decimal::ZERO
    );
}

/// `bedrock/*/1-month-commitment/cohere.command-text-v14`: `cost_per_second`.
#[test]
fn cost_per_second_bills_the_call_s_running_time() {
    let json = r#"{"bedrock/*/1-month-commitment/cohere.command-text-v14": {
        "cost_per_second": 0.011, "input_cost_per_second": 0.011, "litellm_provider": "bedrock",
        "max_input_tokens": 4096, "max_output_tokens": 4096, "mode": "chat"}}"#;
    let (book, report) = lenient(json);
    assert!(report.unknown_keys.is_empty(), "{:?}", report.unknown_keys);
    let m = "bedrock/*/1-month-commitment/cohere.command-text-v14";
    // LiteLLM: 0.011 × 2.5 s of response time = 0.0275 (booked as prompt cost).
    let q = quote(&book, m, r#"{"call_duration_ms": 2500}"#);
    assert_eq!(q.usd, d("0.0275"));
    assert_eq!(q.lines.len(), 1);
    assert_eq!(unit(&q, Component::CallSecond), d("0.011"));
    // No running time, only tokens: an error, not $0.
    let err = quote_err(&book, m, r#"{"prompt_tokens": 10, "completion_tokens": 10}"#);
    assert!(matches!(err, PricingError::UnpricedUnit { .. }), "{err}");
}

/// `xai/grok-voice-3.0`: text messages and seconds of a realtime session.
#[test]
fn text_messages_and_session_seconds() {
    let json = r#"{"xai/grok-voice-3.0": {"input_cost_per_second": 0.001333333333333,
        "input_cost_per_text_message": 0.004, "litellm_provider": "xai", "mode": "realtime"}}"#;
    let (book, report) = lenient(json);
    assert!(report.unknown_keys.is_empty(), "{:?}", report.unknown_keys);
    let q = quote(
        &book,
        "xai/grok-voice-3.0",
        r#"{"text_messages": 3, "input_duration_ms": 60000}"#,
    );
    assert_eq!(unit(&q, Component::TextMessage), d("0.004"));
    assert_eq!(q.usd, d("0.09199999999998"));
    let err = quote_err(&book, "xai/grok-voice-3.0", r#"{"prompt_tokens": 10}"#);
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

// ---------------------------------------------------------------------------------------
// Token units: 12-hour cache writes, cached audio and images, video, citations
// ---------------------------------------------------------------------------------------

/// `gpt-6-sol`: 12-hour cache writes with context and service-tier keys.
const GPT_6_SOL: &str = r#"{"gpt-6-sol": {"litellm_provider": "openai", "mode": "chat",
  "cache_creation_input_token_cost": 2.5e-06, "cache_creation_input_token_cost_above_12hr": 5e-06,
  "cache_creation_input_token_cost_above_12hr_above_272k_tokens": 1e-05,
  "cache_creation_input_token_cost_above_12hr_above_272k_tokens_batches": 5e-06,
  "cache_creation_input_token_cost_above_12hr_above_272k_tokens_flex": 5e-06,
  "cache_creation_input_token_cost_above_12hr_above_272k_tokens_priority": 2e-05,
  "cache_creation_input_token_cost_above_12hr_batches": 2.5e-06,
  "cache_creation_input_token_cost_above_12hr_flex": 2.5e-06,
  "cache_creation_input_token_cost_above_12hr_priority": 1e-05,
  "cache_creation_input_token_cost_above_272k_tokens": 5e-06,
  "cache_creation_input_token_cost_above_272k_tokens_flex": 2.5e-06,
  "cache_creation_input_token_cost_above_272k_tokens_priority": 1e-05,
  "cache_creation_input_token_cost_flex": 1.25e-06, "cache_creation_input_token_cost_priority": 5e-06,
  "cache_read_input_token_cost": 2e-07, "cache_read_input_token_cost_above_272k_tokens": 4e-07,
  "cache_read_input_token_cost_above_272k_tokens_flex": 2e-07,
  "cache_read_input_token_cost_above_272k_tokens_priority": 8e-07,
  "cache_read_input_token_cost_batches": 1e-07, "cache_read_input_token_cost_above_272k_tokens_batches": 2e-07,
  "cache_creation_input_token_cost_batches": 1.25e-06,
  "cache_creation_input_token_cost_above_272k_tokens_batches": 2.5e-06,
  "cache_read_input_token_cost_flex": 1e-07, "cache_read_input_token_cost_priority": 4e-07,
  "input_cost_per_token": 2e-06, "input_cost_per_token_above_272k_tokens": 4e-06,
  "input_cost_per_token_above_272k_tokens_flex": 2e-06, "input_cost_per_token_above_272k_tokens_priority": 8e-06,
  "input_cost_per_token_batches": 1e-06, "input_cost_per_token_above_272k_tokens_batches": 2e-06,
  "input_cost_per_token_flex": 1e-06, "input_cost_per_token_priority": 4e-06,
  "output_cost_per_token": 1e-05, "output_cost_per_token_above_272k_tokens": 1.5e-05,
  "output_cost_per_token_above_272k_tokens_flex": 7.5e-06, "output_cost_per_token_above_272k_tokens_priority": 3e-05,
  "output_cost_per_token_batches": 5e-06, "output_cost_per_token_above_272k_tokens_batches": 7.5e-06,
  "output_cost_per_token_flex": 5e-06, "output_cost_per_token_priority": 2e-05,
  "reasoning_contexts": ["auto", "current_turn", "all_turns"], "reasoning_modes": ["standard", "pro"],
  "regional_processing_uplift_multiplier_eu": 1.1, "fedramp_uplift_multiplier": 1.1,
  "search_context_cost_per_query": {"search_context_size_high": 0.01, "search_context_size_low": 0.01,
                                    "search_context_size_medium": 0.01}}}"#;

#[test]
fn twelve_hour_cache_writes_by_context_and_service_tier() {
    let (book, report) = lenient(GPT_6_SOL);
    assert!(report.unknown_keys.is_empty(), "{:?}", report.unknown_keys);
    assert_eq!(
        keys(&report.not_applied),
        [
            ("gpt-6-sol", "fedramp_uplift_multiplier"),
            ("gpt-6-sol", "regional_processing_uplift_multiplier_eu")
        ]
    );
    let small = r#"{"prompt_tokens": 1000, "prompt_tokens_details": {"cache_write_12h_tokens": 1000}}"#;
    let long = r#"{"prompt_tokens": 300000, "prompt_tokens_details": {"cache_write_12h_tokens": 1000}}"#;
    // LiteLLM (ephemeral_12h_input_tokens = 1000): standard 0.005 / 1.206, flex 0.0025 /
    // 0.603, priority 0.01 / 2.412.
    for (tier, small_usd, long_usd) in [
        (ServiceTier::STANDARD, "0.005", "1.206"),
        (ServiceTier::FLEX, "0.0025", "0.603"),
        (ServiceTier::PRIORITY, "0.01", "2.412"),
    ] {
        let q = quote_at(&book, "gpt-6-sol", small, monday_noon(), tier);
        assert_eq!(q.usd, d(small_usd), "{tier}: {:?}", q.lines);
        let q = quote_at(&book, "gpt-6-sol", long, monday_noon(), tier);
        assert_eq!(q.usd, d(long_usd), "{tier}: {:?}", q.lines);
        assert_eq!(q.context_tier_above_tokens, Some(272_000));
    }
    // Batch: the tier's own 12h keys (2.5e-06, and 5e-06 above 272k).
    let q = quote_at(&book, "gpt-6-sol", small, monday_noon(), ServiceTier::BATCH);
    assert_eq!(unit(&q, Component::CacheWrite12hToken), d("2.5e-06"));
    let q = quote_at(&book, "gpt-6-sol", long, monday_noon(), ServiceTier::BATCH);
    assert_eq!(unit(&q, Component::CacheWrite12hToken), d("5e-06"));
}

#[test]
fn twelve_hour_writes_without_their_price_are_five_minute_writes() {
    let json = r#"{"m": {"litellm_provider": "openai", "mode": "chat",
        "input_cost_per_token": 2e-06, "output_cost_per_token": 1e-05,
        "cache_creation_input_token_cost": 2.5e-06}}"#;
    let (book, _) = lenient(json);
    let q = quote(
        &book,
        "m",
        r#"{"prompt_tokens": 1000, "prompt_tokens_details": {"cache_write_12h_tokens": 600, "cache_write_1h_tokens": 400}}"#,
    );
    assert_eq!(unit(&q, Component::CacheWrite12hToken), d("2.5e-06"));
    assert_eq!(unit(&q, Component::CacheWrite1hToken), d("2.5e-06"));
    assert_eq!(q.usd, d("0.0025"));
}

/// `azure/gpt-realtime-2.1-2026-07-07`: cached audio and cached image tokens.
#[test]
fn cached_audio_and_image_tokens_at_their_own_prices() {
    let json = r#"{"azure/gpt-realtime-2.1-2026-07-07": {"litellm_provider": "azure", "mode": "realtime",
        "cache_creation_input_audio_token_cost": 4e-07, "cache_read_input_audio_token_cost": 4e-07,
        "cache_read_input_token_cost": 4e-07, "input_cost_per_audio_token": 3.2e-05,
        "input_cost_per_image_token": 5e-06, "input_cost_per_token": 4e-06,
        "output_cost_per_audio_token": 6.4e-05, "output_cost_per_token": 2.4e-05,
        "cache_read_input_image_token_cost": 5e-07, "provider_specific_entry": {"realtime_ga_only": 1}}}"#;
    let (book, report) = lenient(json);
    assert!(report.unknown_keys.is_empty(), "{:?}", report.unknown_keys);
    let m = "azure/gpt-realtime-2.1-2026-07-07";
    // LiteLLM prices prompt_tokens 1000 with cached_tokens 300 (of which audio 100 and
    // image 50), audio_tokens 500 (incl. the 100 cached) and image_tokens 50 (all cached)
    // at 0.014125. In paygo's normalized form no two counts overlap:
    let q = quote(
        &book,
        m,
        r#"{"prompt_tokens": 1000, "prompt_tokens_details": {"cached_tokens": 150,
            "cached_audio_tokens": 100, "cached_image_tokens": 50, "audio_tokens": 400}}"#,
    );
    assert_eq!(q.usd, d("0.014125"), "{:?}", q.lines);
    assert_eq!(unit(&q, Component::CacheReadAudioToken), d("4e-07"));
    assert_eq!(unit(&q, Component::CacheReadImageToken), d("5e-07"));
    // Audio written to the cache: paygo applies the catalog's cache_creation_input_audio_token_cost
    // (LiteLLM never reads that key and bills such writes as ordinary cache writes).
    let q = quote(
        &book,
        m,
        r#"{"prompt_tokens": 100, "prompt_tokens_details": {"cache_write_audio_tokens": 100}}"#,
    );
    assert_eq!(unit(&q, Component::CacheWriteAudioToken), d("4e-07"));
}

#[test]
fn cached_audio_without_its_price_is_audio_and_by_tier_its_tier_price() {
    // `gemini-2.5-flash`: cache_read_input_audio_token_cost with a _priority variant.
    let json = r#"{
      "gemini-2.5-flash": {"litellm_provider": "vertex_ai-language-models", "mode": "chat",
        "cache_read_input_audio_token_cost": 1e-07, "cache_read_input_audio_token_cost_priority": 1.8e-07,
        "cache_read_input_token_cost": 3e-08, "input_cost_per_audio_token": 1e-06,
        "input_cost_per_audio_token_priority": 1.8e-06, "input_cost_per_token": 3e-07,
        "input_cost_per_token_priority": 5.4e-07, "output_cost_per_token": 2.5e-06},
      "no-cached-audio-price": {"litellm_provider": "openai", "mode": "chat",
        "input_cost_per_audio_token": 1e-06, "input_cost_per_token": 3e-07, "output_cost_per_token": 2.5e-06}
    }"#;
    let (book, _) = lenient(json);
    let u = r#"{"prompt_tokens": 100, "prompt_tokens_details": {"cached_audio_tokens": 100}}"#;
    let q = quote_at(&book, "gemini-2.5-flash", u, monday_noon(), ServiceTier::PRIORITY);
    assert_eq!(unit(&q, Component::CacheReadAudioToken), d("1.8e-07"));
    let q = quote_at(&book, "gemini-2.5-flash", u, monday_noon(), ServiceTier::FLEX);
    assert_eq!(unit(&q, Component::CacheReadAudioToken), d("1e-07"));
    let q = quote(&book, "no-cached-audio-price", u);
    assert_eq!(unit(&q, Component::CacheReadAudioToken), d("1e-06"));
}

/// `vertex_ai/gemini-3.8-live`: video tokens on both sides.
#[test]
fn video_tokens_in_and_out() {
    let json = r#"{
      "vertex_ai/gemini-3.8-live": {"litellm_provider": "vertex_ai", "mode": "realtime",
        "input_cost_per_audio_token": 3e-06, "input_cost_per_image_token": 1e-06, "input_cost_per_token": 7.5e-07,
        "input_cost_per_video_per_second": 3.3333333333333335e-05, "input_cost_per_video_token": 1e-06,
        "output_cost_per_audio_token": 1.2e-05, "output_cost_per_token": 4.5e-06, "output_cost_per_video_token": 1e-06},
      "text-only": {"litellm_provider": "openai", "mode": "chat",
        "input_cost_per_token": 7.5e-07, "output_cost_per_token": 4.5e-06}
    }"#;
    let (book, report) = lenient(json);
    assert!(report.unknown_keys.is_empty(), "{:?}", report.unknown_keys);
    let u = r#"{"prompt_tokens": 1000, "completion_tokens": 500,
               "prompt_tokens_details": {"video_tokens": 400},
               "completion_tokens_details": {"video_tokens": 100}}"#;
    // LiteLLM: 0.00085 prompt + 0.0019 completion.
    let q = quote(&book, "vertex_ai/gemini-3.8-live", u);
    assert_eq!(q.usd, d("0.00275"), "{:?}", q.lines);
    assert_eq!(unit(&q, Component::InputVideoToken), d("1e-06"));
    assert_eq!(unit(&q, Component::OutputVideoToken), d("1e-06"));
    // A model without video-token prices: an error (paygo has no fallback for video
    // tokens; LiteLLM would bill them as text).
    let err = quote_err(&book, "text-only", u);
    assert!(
        matches!(
            err,
            PricingError::UnpricedUnit {
                component: "input_video_token",
                ..
            }
        ),
        "{err}"
    );
}

/// `perplexity/sonar-deep-research`: citation tokens, outside `prompt_tokens`.
#[test]
fn citation_tokens() {
    let json = r#"{"perplexity/sonar-deep-research": {"citation_cost_per_token": 2e-06,
        "input_cost_per_token": 2e-06, "litellm_provider": "perplexity", "mode": "chat",
        "output_cost_per_reasoning_token": 3e-06, "output_cost_per_token": 8e-06,
        "search_context_cost_per_query": {"search_context_size_high": 0.005, "search_context_size_low": 0.005,
                                          "search_context_size_medium": 0.005}}}"#;
    let (book, report) = lenient(json);
    assert!(report.unknown_keys.is_empty(), "{:?}", report.unknown_keys);
    let m = "perplexity/sonar-deep-research";
    // LiteLLM: 1000 × 2e-06 + 2000 citation × 2e-06 + 500 × 8e-06 = 0.01.
    let q = quote(
        &book,
        m,
        r#"{"prompt_tokens": 1000, "completion_tokens": 500, "citation_tokens": 2000}"#,
    );
    assert_eq!(q.usd, d("0.01"));
    assert_eq!(unit(&q, Component::CitationToken), d("2e-06"));
    let err = quote_err(
        &lenient(r#"{"t": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06}}"#).0,
        "t",
        r#"{"prompt_tokens": 10, "citation_tokens": 10}"#,
    );
    assert!(
        matches!(
            err,
            PricingError::UnpricedUnit {
                component: "citation_token",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn maps_queries_and_code_interpreter_sessions() {
    // `gemini-2.5-flash`'s google_maps_grounding_cost_per_query; the session price as in
    // `sample_spec` (the catalog has no model with one today).
    let json = r#"{"m": {"litellm_provider": "vertex_ai-language-models", "mode": "chat",
        "input_cost_per_token": 3e-07, "output_cost_per_token": 2.5e-06,
        "google_maps_grounding_cost_per_query": 0.025, "code_interpreter_cost_per_session": 0.03}}"#;
    let (book, report) = lenient(json);
    assert!(report.unknown_keys.is_empty(), "{:?}", report.unknown_keys);
    let q = quote(&book, "m", r#"{"maps_queries": 2, "code_interpreter_sessions": 3}"#);
    assert_eq!(unit(&q, Component::MapsQuery), d("0.025"));
    assert_eq!(unit(&q, Component::CodeInterpreterSession), d("0.03"));
    assert_eq!(q.usd, d("0.14"));
}

// ---------------------------------------------------------------------------------------
// Service tiers: batch half price, tier reasoning, new tier names
// ---------------------------------------------------------------------------------------

#[test]
fn batch_token_prices_missing_from_the_batch_tier_are_half_the_standard_ones() {
    // Only an output batch price: LiteLLM's batch_cost_calculator halves the standard input
    // and cache-read prices: 600 × 1e-06 + 400 × 2.5e-07 + 500 × 4e-06 = 0.0027.
    let json = r#"{"m": {"litellm_provider": "openai", "mode": "chat",
        "input_cost_per_token": 2e-06, "output_cost_per_token": 8e-06, "cache_read_input_token_cost": 5e-07,
        "cache_creation_input_token_cost": 2.5e-06, "output_cost_per_token_batches": 4e-06}}"#;
    let (book, _) = lenient(json);
    let u = r#"{"prompt_tokens": 1000, "completion_tokens": 500, "prompt_tokens_details": {"cached_tokens": 400}}"#;
    let q = quote_at(&book, "m", u, monday_noon(), ServiceTier::BATCH);
    assert_eq!(q.usd, d("0.0027"), "{:?}", q.lines);
    assert_eq!(unit(&q, Component::InputToken), d("1e-06"));
    assert_eq!(unit(&q, Component::OutputToken), d("4e-06"));
    let q = quote_at(
        &book,
        "m",
        r#"{"prompt_tokens": 100, "prompt_tokens_details": {"cache_write_tokens": 100}}"#,
        monday_noon(),
        ServiceTier::BATCH,
    );
    assert_eq!(unit(&q, Component::CacheWriteToken), d("1.25e-06"));
    // Only an input batch price: the output is half the standard one (LiteLLM: the same).
    let json = r#"{"m": {"litellm_provider": "openai", "mode": "chat",
        "input_cost_per_token": 2e-06, "output_cost_per_token": 8e-06, "input_cost_per_token_batches": 1e-06}}"#;
    let (book, _) = lenient(json);
    let q = quote_at(
        &book,
        "m",
        r#"{"prompt_tokens": 1000, "completion_tokens": 500}"#,
        monday_noon(),
        ServiceTier::BATCH,
    );
    assert_eq!(q.usd, d("0.003"));
    // A model with no batch key at all has no batch tier: batch calls are standard-priced
    // (LiteLLM's service_tier "batch" on a normal call does the same).
    let json = r#"{"m": {"litellm_provider": "openai", "mode": "chat",
        "input_cost_per_token": 2e-06, "output_cost_per_token": 8e-06}}"#;
    let (book, _) = lenient(json);
    let q = quote_at(
        &book,
        "m",
        r#"{"prompt_tokens": 1000, "completion_tokens": 500}"#,
        monday_noon(),
        ServiceTier::BATCH,
    );
    assert_eq!(q.usd, d("0.006"));
}

/// `gemini-2.5-flash`: a standard reasoning price, and flex/priority/batch output prices.
const GEMINI_25_FLASH: &str = r#"{"gemini-2.5-flash": {"litellm_provider": "vertex_ai-language-models", "mode": "chat",
  "input_cost_per_token": 3e-07, "input_cost_per_token_batches": 1.5e-07, "input_cost_per_token_flex": 1.5e-07,
  "input_cost_per_token_priority": 5.4e-07, "output_cost_per_reasoning_token": 2.5e-06,
  "output_cost_per_token": 2.5e-06, "output_cost_per_token_batches": 1.25e-06,
  "output_cost_per_token_flex": 1.25e-06, "output_cost_per_token_priority": 4.5e-06,
  "search_free_requests": {"count": 1500, "period": "day", "shared_group": "gemini-2-flash"}}}"#;

const REASONING_USAGE: &str = r#"{"prompt_tokens": 1000, "completion_tokens": 500,
    "completion_tokens_details": {"reasoning_tokens": 300}}"#;

#[test]
fn tier_reasoning_is_the_tier_s_output_price() {
    let (book, report) = lenient(GEMINI_25_FLASH);
    assert_eq!(
        keys(&report.not_applied),
        [("gemini-2.5-flash", "search_free_requests")]
    );
    // LiteLLM: standard 0.00155, flex 0.000775, priority 0.00279.
    for (tier, usd, reasoning) in [
        (ServiceTier::STANDARD, "0.00155", "2.5e-06"),
        (ServiceTier::FLEX, "0.000775", "1.25e-06"),
        (ServiceTier::PRIORITY, "0.00279", "4.5e-06"),
    ] {
        let q = quote_at(&book, "gemini-2.5-flash", REASONING_USAGE, monday_noon(), tier);
        assert_eq!(q.usd, d(usd), "{tier}: {:?}", q.lines);
        assert_eq!(unit(&q, Component::ReasoningToken), d(reasoning), "{tier}");
    }
    // A tier without its own output price keeps the standard reasoning price.
    let json = r#"{"m": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 3e-07,
        "output_cost_per_token": 2e-06, "output_cost_per_reasoning_token": 3e-06, "input_cost_per_token_flex": 1e-07}}"#;
    let (book, _) = lenient(json);
    let q = quote_at(&book, "m", REASONING_USAGE, monday_noon(), ServiceTier::FLEX);
    assert_eq!(unit(&q, Component::ReasoningToken), d("3e-06"));
}

#[test]
fn batch_reasoning_is_billed_at_the_batch_output_price() {
    let (book, _) = lenient(GEMINI_25_FLASH);
    // LiteLLM's batch_cost_calculator: every completion token at the batch output price,
    // 500 × 1.25e-06 = 0.000625, plus 1000 × 1.5e-07 = 0.00015. (paygo's own rule, half
    // of a missing token price, gives the same 1.25e-06 here.) paygo today: 0.00115, the
    // 300 reasoning tokens at the full standard 2.5e-06.
    let q = quote_at(
        &book,
        "gemini-2.5-flash",
        REASONING_USAGE,
        monday_noon(),
        ServiceTier::BATCH,
    );
    assert_eq!(unit(&q, Component::ReasoningToken), d("1.25e-06"));
    assert_eq!(q.usd, d("0.000775"), "{:?}", q.lines);
}

#[test]
fn service_tiers_the_catalog_adds_are_read_as_names() {
    let json = r#"{"m": {"litellm_provider": "openai", "mode": "chat",
        "input_cost_per_token": 1e-05, "output_cost_per_token": 5e-05,
        "input_cost_per_token_ultrafast": 6e-05, "output_cost_per_token_ultrafast": 0.0003,
        "input_cost_per_token_above_272k_tokens_ultrafast": 0.00012,
        "input_cost_per_token_balanced": 7e-06}}"#;
    let (book, report) = lenient(json);
    assert!(report.unknown_keys.is_empty(), "{:?}", report.unknown_keys);
    let ultrafast = ServiceTier::new("ultrafast").unwrap();
    let q = quote_at(
        &book,
        "m",
        r#"{"prompt_tokens": 1000, "completion_tokens": 10}"#,
        monday_noon(),
        ultrafast,
    );
    assert_eq!(unit(&q, Component::InputToken), d("6e-05"));
    assert_eq!(unit(&q, Component::OutputToken), d("0.0003"));
    assert_eq!(q.service_tier.name(), "ultrafast");
    let q = quote_at(&book, "m", r#"{"prompt_tokens": 300000}"#, monday_noon(), ultrafast);
    assert_eq!(unit(&q, Component::InputToken), d("0.00012"));
    let balanced = ServiceTier::new("Balanced").unwrap();
    let q = quote_at(
        &book,
        "m",
        r#"{"prompt_tokens": 1000, "completion_tokens": 10}"#,
        monday_noon(),
        balanced,
    );
    assert_eq!(unit(&q, Component::InputToken), d("7e-06"));
    assert_eq!(unit(&q, Component::OutputToken), d("5e-05"));
    // A tier the model has no prices for is the standard tier.
    let other = ServiceTier::new("scale").unwrap();
    let q = quote_at(&book, "m", r#"{"prompt_tokens": 1000}"#, monday_noon(), other);
    assert_eq!(unit(&q, Component::InputToken), d("1e-05"));
}

// ---------------------------------------------------------------------------------------
// tiered_pricing, alias_of
// ---------------------------------------------------------------------------------------

/// `dashscope/qwen-flash`: prompt ranges.
#[test]
fn tiered_pricing_ranges_and_their_fills() {
    let json = r#"{"dashscope/qwen-flash": {"litellm_provider": "dashscope", "mode": "chat",
        "tiered_pricing": [
          {"input_cost_per_token": 5e-08, "output_cost_per_token": 4e-07, "range": [0, 256000.0]},
          {"input_cost_per_token": 2.5e-07, "output_cost_per_token": 2e-06, "range": [256000.0, 1000000.0]}]}}"#;
    let (book, report) = lenient(json);
    assert!(report.unknown_keys.is_empty(), "{:?}", report.unknown_keys);
    let m = "dashscope/qwen-flash";
    // LiteLLM: 256,000 prompt tokens are the first range (start < n <= end): 0.01284;
    // 256,001 the second: 0.06420025.
    assert_eq!(
        quote(&book, m, r#"{"prompt_tokens": 256000, "completion_tokens": 100}"#).usd,
        d("0.01284")
    );
    assert_eq!(
        quote(&book, m, r#"{"prompt_tokens": 256001, "completion_tokens": 100}"#).usd,
        d("0.06420025")
    );
    // Above every range: the last one.
    let q = quote(&book, m, r#"{"prompt_tokens": 2000000}"#);
    assert_eq!(unit(&q, Component::InputToken), d("2.5e-07"));
    // A range prices every token of the request: cache reads and writes at its input
    // price, reasoning at its output price.
    let q = quote(
        &book,
        m,
        r#"{"prompt_tokens": 300000, "completion_tokens": 100,
            "prompt_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 1000},
            "completion_tokens_details": {"reasoning_tokens": 50}}"#,
    );
    assert_eq!(unit(&q, Component::CacheReadToken), d("2.5e-07"));
    assert_eq!(unit(&q, Component::CacheWriteToken), d("2.5e-07"));
    assert_eq!(unit(&q, Component::ReasoningToken), d("2e-06"));
}

#[test]
fn alias_of_names_the_target_and_a_missing_target_is_an_error() {
    let json = r#"{
      "global.anthropic.claude-opus-5-5": {"litellm_provider": "bedrock_converse", "mode": "chat",
        "input_cost_per_token": 5e-06, "output_cost_per_token": 2.5e-05},
      "bedrock/claude-opus-latest": {"alias_of": "global.anthropic.claude-opus-5-5"}
    }"#;
    let (book, report) = lenient(json);
    assert_eq!(report.aliases, 1);
    assert_eq!(report.models, 1);
    let q = quote(
        &book,
        "bedrock/claude-opus-latest",
        r#"{"prompt_tokens": 1000, "completion_tokens": 100}"#,
    );
    assert_eq!(&*q.model, "global.anthropic.claude-opus-5-5");
    assert_eq!(q.usd, d("0.0075"));
    assert_eq!(
        book.model("global.anthropic.claude-opus-5-5").unwrap().aliases,
        ["bedrock/claude-opus-latest"]
    );

    let missing = r#"{
      "a": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06},
      "bedrock/claude-fable-latest": {"alias_of": "global.anthropic.claude-fable-5-1"}
    }"#;
    let err = import(missing, &ImportOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PricingError::InvalidBook { .. }), "{text}");
    assert!(
        text.contains("bedrock/claude-fable-latest") && text.contains("global.anthropic.claude-fable-5-1"),
        "{text}"
    );
    // No chains: an alias of an alias names no model either.
    let chain = r#"{
      "a": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06},
      "b": {"alias_of": "a"}, "c": {"alias_of": "b"}
    }"#;
    let err = import(chain, &ImportOptions::default()).unwrap_err();
    assert!(err.to_string().contains("\"c\""), "{err}");
    let err = import(
        r#"{"a": {"litellm_provider": "openai", "mode": "chat"}, "b": {"alias_of": 5}}"#,
        &ImportOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("alias_of is not a string"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Files that are not what they claim to be
// ---------------------------------------------------------------------------------------

#[test]
fn a_model_given_twice_is_an_error_naming_it() {
    let json = r#"{
      "gpt-4o": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 2.5e-06},
      "gpt-4o": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 0.0}
    }"#;
    let err = import(json, &ImportOptions::default()).unwrap_err();
    assert!(matches!(err, PricingError::InvalidBook { .. }), "{err}");
    assert!(err.to_string().contains("\"gpt-4o\" is given twice"), "{err}");
}

#[test]
fn a_model_given_twice_is_not_called_another_format() {
    let json = r#"{
      "gpt-4o": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 2.5e-06},
      "gpt-4o": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 0.0}
    }"#;
    let err = import(json, &ImportOptions::default()).unwrap_err().to_string();
    assert!(!err.contains("not a LiteLLM catalog"), "{err}");
}

#[test]
fn a_key_given_twice_inside_a_model_is_an_error_naming_both() {
    let json = r#"{"gpt-4o": {"litellm_provider": "openai", "mode": "chat",
        "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05, "input_cost_per_token": 0.0}}"#;
    let err = import(json, &ImportOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("gpt-4o") && text.contains("\"input_cost_per_token\" is given twice"),
        "{text}"
    );
    // Inside nested blocks too: a window's price, a tiered_pricing entry, a search size.
    for nested in [
        r#""off_peak_pricing": {"input_cost_per_token": 1e-07, "hours_utc": "00:00-01:00", "input_cost_per_token": 0.0}"#,
        r#""tiered_pricing": [{"range": [0, 1000], "input_cost_per_token": 1e-07, "input_cost_per_token": 0.0}]"#,
        r#""search_context_cost_per_query": {"search_context_size_low": 0.01, "search_context_size_low": 0.0}"#,
    ] {
        let json = format!(
            r#"{{"m": {{"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06, {nested}}}}}"#
        );
        let err = import(&json, &ImportOptions::default()).unwrap_err().to_string();
        assert!(err.contains("given twice") && err.contains("\"m\""), "{nested}: {err}");
    }
}

#[test]
fn files_of_other_formats_are_refused_saying_what_they_look_like() {
    let paygo = r#"{"format": "paygo-prices/1", "models": [{"id": "m", "provider": "openai", "mode": "chat",
        "versions": [{"valid_from": "2025-01-01T00:00:00Z", "prices": {"input_token": "0.000001"}}]}]}"#;
    let openrouter = include_str!("fixtures/openrouter_small.json");
    for (text, looks) in [
        (paygo, "a paygo price book"),
        (openrouter, "an OpenRouter model list"),
        (r#"[{"litellm_provider": "openai"}]"#, "a JSON array"),
        (r#"{"a": 1, "b": "two", "c": [3]}"#, "an object without model entries"),
        (
            r#"{"sample_spec": {"input_cost_per_token": 0.0}}"#,
            "an object without model entries",
        ),
        ("42", "a JSON scalar"),
    ] {
        let err = import(text, &ImportOptions::default()).unwrap_err();
        assert!(matches!(err, PricingError::InvalidBook { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("not a LiteLLM catalog") && message.contains(&format!("looks like {looks}")),
            "{looks}: {message}"
        );
    }
    let err = import("{not json", &ImportOptions::default()).unwrap_err();
    assert!(err.to_string().contains("not JSON"), "{err}");
}

#[test]
fn detect_format_names_each_format() {
    assert_eq!(detect_format(DEEPSEEK_V4_FLASH).unwrap(), "litellm");
    assert_eq!(
        detect_format(include_str!("fixtures/openrouter_small.json")).unwrap(),
        "openrouter"
    );
    assert_eq!(
        detect_format(r#"{"format": "paygo-prices/1", "models": []}"#).unwrap(),
        "paygo"
    );
    assert_eq!(detect_format("[]").unwrap(), "a JSON array");
    assert_eq!(detect_format("null").unwrap(), "a JSON scalar");
    assert_eq!(detect_format(r#"{"x": {"y": 1}}"#).unwrap(), "unknown object");
    assert!(detect_format("").is_err());
}

// ---------------------------------------------------------------------------------------
// Prices that are not plausible, and keys that are not understood
// ---------------------------------------------------------------------------------------

#[test]
fn a_price_finer_than_28_decimal_places_says_so() {
    let json = r#"{"m": {"litellm_provider": "openai", "mode": "chat",
        "input_cost_per_token": 1e-30, "output_cost_per_token": 1e-06}}"#;
    // Lenient: the key is reported and left unpriced (its usage is then an error, never $0).
    let (book, report) = lenient(json);
    assert_eq!(report.unknown_keys[0].key, "input_cost_per_token");
    assert!(
        report.unknown_keys[0].reason.contains("decimal places"),
        "{}",
        report.unknown_keys[0]
    );
    assert!(
        book.quote(&QuoteRequest::new(
            "m",
            &Usage::tokens(1, 0),
            chrono::DateTime::UNIX_EPOCH
        ))
        .is_err()
    );
    // Strict: refused, saying why.
    let err = import(json, &strict()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PricingError::InvalidPrice { .. }), "{text}");
    assert!(
        text.contains("\"m\"") && text.contains("input_cost_per_token"),
        "{text}"
    );
    assert!(text.contains("decimal places"), "{text}");
    assert!(!text.contains("overflow"), "{text}");
    // Trailing zeros past the 28th place are not digits: 1.000e-25 is read.
    let json = r#"{"m": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1.000e-25}}"#;
    let (book, _) = lenient(json);
    assert_eq!(
        book.models()[0].versions[0].prices.get(Component::InputToken),
        Some(d("1e-25"))
    );
}

#[test]
fn prices_that_are_not_numbers_or_negative_are_errors_naming_the_key() {
    for (price, says) in [
        (r#""0.5""#, "expected a number"),
        ("true", "expected a number"),
        ("null", "expected a number"),
    ] {
        let json =
            format!(r#"{{"m": {{"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": {price}}}}}"#);
        let err = import(&json, &ImportOptions::default()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("input_cost_per_token") && text.contains(says),
            "{price}: {text}"
        );
    }
    let json = r#"{"m": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": -1e-06}}"#;
    let err = import(json, &ImportOptions::default()).unwrap_err();
    assert!(matches!(err, PricingError::InvalidPrice { .. }), "{err}");
    assert!(err.to_string().contains("negative"), "{err}");
}

#[test]
fn an_implausible_per_token_price_is_a_warning_and_in_strict_mode_an_error() {
    let json = r#"{"m": {"litellm_provider": "openai", "mode": "chat",
        "input_cost_per_token": 0.5, "output_cost_per_token": 0.01, "output_cost_per_image": 40.0,
        "cache_read_input_token_cost": 0.02}}"#;
    let (_, report) = lenient(json);
    // $0.01 per token is still plausible; per-image prices are not per-token prices.
    assert_eq!(
        keys(&report.warnings),
        [("m", "cache_read_input_token_cost"), ("m", "input_cost_per_token")]
    );
    assert!(
        report.warnings[1].reason.contains("per-million"),
        "{}",
        report.warnings[1]
    );
    let err = import(json, &strict()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PricingError::InvalidPrice { .. }), "{text}");
    assert!(text.contains("\"m\"") && text.contains("strict"), "{text}");
}

#[test]
fn strict_mode_refuses_each_remaining_unsupported_key() {
    let base = r#""litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06"#;
    for (extra, key) in [
        (
            r#""explicit_cache_read_input_token_cost": 1e-07"#,
            "explicit_cache_read_input_token_cost",
        ),
        (r#""ocr_cost_per_credit": 0.015"#, "ocr_cost_per_credit"),
        (r#""guardrail_cost_per_unit": 0.00075"#, "guardrail_cost_per_unit"),
        (
            r#""computer_use_input_cost_per_1k_tokens": 3.0"#,
            "computer_use_input_cost_per_1k_tokens",
        ),
        (
            r#""file_search_cost_per_1k_calls": 2.5"#,
            "file_search_cost_per_1k_calls",
        ),
        (
            r#""vector_store_cost_per_gb_per_day": 0.1"#,
            "vector_store_cost_per_gb_per_day",
        ),
        (
            r#""input_cost_per_video_per_second_above_8s_interval": 0.0001"#,
            "input_cost_per_video_per_second_above_8s_interval",
        ),
        (
            r#""tiered_pricing": [{"max_results_range": [1, 10], "input_cost_per_query": 0.005}]"#,
            "tiered_pricing.max_results_range",
        ),
        (r#""some_new_cost_per_thing": 0.5"#, "some_new_cost_per_thing"),
        (
            r#""input_cost_per_token_above_200k": 2e-06"#,
            "input_cost_per_token_above_200k",
        ),
        (
            r#""output_cost_per_second_720p_batches": 0.1"#,
            "output_cost_per_second_720p_batches",
        ),
    ] {
        let json = format!(r#"{{"m": {{{base}, {extra}}}}}"#);
        let (_, report) = lenient(&json);
        assert_eq!(keys(&report.unknown_keys), [("m", key)], "{extra}");
        assert!(!report.unknown_keys[0].reason.is_empty());
        let err = import(&json, &strict()).unwrap_err();
        assert!(
            matches!(err, PricingError::UnknownKeys { count: 1, .. }),
            "{extra}: {err}"
        );
        assert!(err.to_string().contains(&format!("m: {key}: ")), "{err}");
    }
}

#[test]
fn keys_understood_and_not_applied_pass_strict_mode() {
    let json = r#"{"m": {"litellm_provider": "databricks", "mode": "chat",
        "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
        "input_dbu_cost_per_token": 1.4e-05, "output_dbu_cost_per_token": 2.8e-05,
        "fedramp_uplift_multiplier": 1.1, "regional_processing_uplift_multiplier_us": 1.1,
        "regional_endpoint_uplift_multiplier": 1.1, "provider_specific_entry": {"fast": 6.0},
        "search_free_requests": {"count": 1500}, "supports_vision": true, "max_tokens": 8192,
        "metadata": {"notes": "x"}, "deprecation_date": "2027-01-01"}}"#;
    let (_, report) = import(json, &strict()).unwrap();
    assert!(
        report.unknown_keys.is_empty() && report.warnings.is_empty(),
        "{report:?}"
    );
    assert_eq!(report.not_applied.len(), 7, "{:?}", report.not_applied);
    assert!(
        report
            .not_applied
            .iter()
            .all(|n| n.model == "m" && !n.reason.is_empty())
    );
}

#[test]
fn import_specs_reads_the_same_prices_as_import() {
    let (specs, report) = import_specs(GPT_6_SOL, &ImportOptions::default()).unwrap();
    let (book, report2) = import(GPT_6_SOL, &ImportOptions::default()).unwrap();
    assert_eq!(specs, book.models());
    assert_eq!(report, report2);
    // The catalog's service tiers, as names.
    let tiers: Vec<&str> = specs[0].versions[0]
        .service_tiers
        .keys()
        .map(ServiceTier::name)
        .collect();
    assert_eq!(tiers, ["batch", "flex", "priority"]);
}

// ---------------------------------------------------------------------------------------
// OpenRouter's model list
// ---------------------------------------------------------------------------------------

const OPENROUTER: &str = include_str!("fixtures/openrouter_small.json");

fn openrouter(json: &str) -> (PriceBook, ImportReport) {
    paygo_pricing::openrouter::import(json, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn openrouter_and_litellm_quote_the_same_model_at_the_same_price() {
    let (or_book, report) = openrouter(OPENROUTER);
    assert!(report.unknown_keys.is_empty(), "{:?}", report.unknown_keys);
    // The same model and prices as LiteLLM writes them.
    let litellm = r#"{
      "anthropic/claude-sonnet-4.5": {"litellm_provider": "openrouter", "mode": "chat",
        "input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
        "cache_read_input_token_cost": 3e-07, "cache_creation_input_token_cost": 3.75e-06,
        "input_cost_per_image": 0.0048},
      "openai/gpt-4o-mini": {"litellm_provider": "openrouter", "mode": "chat",
        "input_cost_per_token": 1.5e-07, "output_cost_per_token": 6e-07,
        "cache_read_input_token_cost": 7.5e-08, "input_cost_per_image": 0.000217}
    }"#;
    let (ll_book, _) = lenient(litellm);
    let usages = [
        r#"{"prompt_tokens": 10000, "completion_tokens": 800, "input_images": 2,
            "prompt_tokens_details": {"cached_tokens": 4000, "cache_write_tokens": 1000}}"#,
        r#"{"prompt_tokens": 1, "completion_tokens": 0}"#,
        r#"{"prompt_tokens": 123457, "completion_tokens": 98765, "prompt_tokens_details": {"cached_tokens": 100000}}"#,
    ];
    for model in ["anthropic/claude-sonnet-4.5", "openai/gpt-4o-mini"] {
        for u in usages {
            if model == "openai/gpt-4o-mini" && u.contains("cache_write_tokens") {
                continue; // no cache-write price on that model, in either list
            }
            let a = quote(&or_book, model, u);
            let b = quote(&ll_book, model, u);
            assert_eq!(a.usd, b.usd, "{model} {u}: {:?} against {:?}", a.lines, b.lines);
            assert_eq!(a.credits, b.credits);
        }
    }
    // 5000 × 3e-06 + 4000 × 3e-07 + 1000 × 3.75e-06 + 800 × 1.5e-05 + 2 × 0.0048.
    assert_eq!(
        quote(&or_book, "anthropic/claude-sonnet-4.5", usages[0]).usd,
        d("0.04155")
    );
}

#[test]
fn openrouter_routers_with_minus_one_prices_are_skipped_and_reported() {
    let (book, report) = openrouter(OPENROUTER);
    assert_eq!(report.models, 4);
    assert_eq!(book.len(), 4);
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    assert_eq!(report.skipped[0].0, "openrouter/auto");
    assert!(report.skipped[0].1.contains("-1"), "{:?}", report.skipped);
    let err = book
        .quote(&QuoteRequest::new(
            "openrouter/auto",
            &Usage::tokens(1, 1),
            monday_noon(),
        ))
        .unwrap_err();
    assert!(matches!(err, PricingError::UnknownModel { .. }), "{err}");
}

#[test]
fn openrouter_entries_keep_provider_mode_and_unit_prices() {
    let (book, _) = openrouter(OPENROUTER);
    let spec = book.model("google/gemini-2.5-flash-image").unwrap();
    assert_eq!(spec.mode, paygo_pricing::Mode::ImageGeneration);
    assert_eq!(spec.provider, "google");
    assert_eq!(
        book.model("anthropic/claude-sonnet-4.5").unwrap().mode,
        paygo_pricing::Mode::Chat
    );
    let q = quote(&book, "anthropic/claude-sonnet-4.5", r#"{"web_searches": 2}"#);
    assert_eq!(q.usd, d("0.02"));
}

#[test]
fn openrouter_refuses_other_formats_and_bad_prices() {
    let err = paygo_pricing::openrouter::import(DEEPSEEK_V4_FLASH, &ImportOptions::default()).unwrap_err();
    assert!(err.to_string().contains("looks like litellm"), "{err}");
    let err = paygo_pricing::openrouter::import(
        r#"{"data": [{"id": "a/b", "pricing": {"prompt": 0.000001}}]}"#,
        &ImportOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, PricingError::InvalidPrice { .. }) && err.to_string().contains("pricing.prompt"),
        "{err}"
    );
    let twice = r#"{"data": [{"id": "a/b", "pricing": {"prompt": "0.000001"}},
                             {"id": "a/b", "pricing": {"prompt": "0"}}]}"#;
    let err = paygo_pricing::openrouter::import(twice, &ImportOptions::default()).unwrap_err();
    assert!(err.to_string().contains("a/b"), "{err}");
    let unknown = r#"{"data": [{"id": "a/b", "pricing": {"prompt": "0.000001", "input_audio_cache": "0"}}]}"#;
    let (_, report) = openrouter(unknown);
    assert_eq!(keys(&report.unknown_keys), [("a/b", "pricing.input_audio_cache")]);
    let err = paygo_pricing::openrouter::import(unknown, &strict()).unwrap_err();
    assert!(matches!(err, PricingError::UnknownKeys { count: 1, .. }), "{err}");
}

#[test]
fn openrouter_price_given_twice_is_an_error() {
    let twice = r#"{"data": [{"id": "a/b", "pricing": {"prompt": "0.000001", "prompt": "0"}}]}"#;
    let err = paygo_pricing::openrouter::import(twice, &ImportOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("prompt") && err.to_string().contains("twice"),
        "{err}"
    );
}

#[test]
fn openrouter_reasoning_priced_zero_is_billed_as_output() {
    let (book, _) = openrouter(OPENROUTER);
    // OpenRouter: "Reasoning tokens are considered output tokens and charged accordingly".
    let q = quote(
        &book,
        "deepseek/deepseek-r1",
        r#"{"prompt_tokens": 1000, "completion_tokens": 1000, "completion_tokens_details": {"reasoning_tokens": 600}}"#,
    );
    assert_eq!(q.usd, d("0.0024"), "{:?}", q.lines);
}

// ---------------------------------------------------------------------------------------
// What the import builds survives paygo's own file and bounds estimates
// ---------------------------------------------------------------------------------------

#[test]
fn an_imported_book_with_windows_tiers_and_variants_round_trips_through_paygo_s_file() {
    let inner = |json: &str| -> String {
        let t = json.trim();
        t.strip_prefix('{').unwrap().strip_suffix('}').unwrap().to_owned()
    };
    let both = format!(
        "{{{}, {}, {}}}",
        inner(DEEPSEEK_V4_FLASH),
        inner(GPT_6_SOL),
        r#""v": {"litellm_provider": "fal_ai", "mode": "video_generation",
               "output_cost_per_second": 0.13, "output_cost_per_second_768p": 0.06}"#
    );
    let (book, _) = lenient(&both);
    let text = book.to_json();
    let back = PriceBook::from_json(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(back.models(), book.models());
    for at in [utc(2026, 6, 1, 0, 30, 0), utc(2026, 6, 1, 12, 0, 0)] {
        let a = quote_at(&book, "deepseek-v4-flash", DEEPSEEK_USAGE, at, ServiceTier::STANDARD);
        let b = quote_at(&back, "deepseek-v4-flash", DEEPSEEK_USAGE, at, ServiceTier::STANDARD);
        assert_eq!(a, b);
    }
    let tier = ServiceTier::new("flex").unwrap();
    let long = r#"{"prompt_tokens": 300000, "prompt_tokens_details": {"cache_write_12h_tokens": 1000}}"#;
    assert_eq!(
        quote_at(&book, "gpt-6-sol", long, monday_noon(), tier),
        quote_at(&back, "gpt-6-sol", long, monday_noon(), tier)
    );
}

#[test]
fn an_estimate_covers_every_window_of_the_call() {
    let (book, _) = lenient(DEEPSEEK_V4_FLASH);
    // Asked inside the off-peak window, the estimate still covers the peak price: the call
    // may end after the window closes.
    let at = utc(2026, 6, 1, 0, 59, 59);
    let e = book
        .estimate(&paygo_pricing::EstimateRequest::new("deepseek-v4-flash", 1000, 500, at))
        .unwrap();
    for t in [at, utc(2026, 6, 1, 1, 0, 0)] {
        let q = quote_at(
            &book,
            "deepseek-v4-flash",
            r#"{"prompt_tokens": 1000, "completion_tokens": 500}"#,
            t,
            ServiceTier::STANDARD,
        );
        assert!(e.credits >= q.credits, "{} < {} at {t}", e.credits, q.credits);
    }
    // Per-second units are bounded by the units given.
    let json = r#"{"c": {"cost_per_second": 0.011, "litellm_provider": "bedrock", "mode": "chat"}}"#;
    let (book, _) = lenient(json);
    let units = usage(r#"{"call_duration_ms": 10000}"#);
    let mut request = paygo_pricing::EstimateRequest::new("c", 0, 0, monday_noon());
    request.units = Some(&units);
    let e = book.estimate(&request).unwrap();
    assert_eq!(e.usd, d("0.11"));
}

#[test]
fn key_notes_read_model_key_and_reason() {
    let note = KeyNote {
        model: "m".into(),
        key: "k".into(),
        reason: "why".into(),
    };
    assert_eq!(note.to_string(), "m: k: why");
    let (_, report) = lenient(
        r#"{"m": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06,
        "guardrail_cost_per_unit": 0.00075}}"#,
    );
    assert_eq!(
        report.unknown_keys[0].to_string(),
        "m: guardrail_cost_per_unit: guardrail policy units are not a unit of the usage object"
    );
}

#[test]
fn image_generation_priced_per_pixel_bills_each_image_by_its_size() {
    // azure_ai/FLUX.2-flex and the azure sized rows: input_cost_per_pixel is the price of each
    // pixel made; output_cost_per_pixel 0.0 beside it is not read (LiteLLM's image cost).
    let json = r#"{"azure/low/1024-x-1024/gpt-image-1": {"litellm_provider": "azure", "mode": "image_generation",
        "input_cost_per_pixel": 1.0490417e-08, "output_cost_per_pixel": 0.0}}"#;
    let (book, _) = lenient(json);
    let id = "azure/low/1024-x-1024/gpt-image-1";
    let usage: Usage = serde_json::from_str(r#"{"output_images": 2, "image_size": "1024x1024"}"#).unwrap();
    let q = book
        .quote(&QuoteRequest::new(id, &usage, chrono::DateTime::UNIX_EPOCH))
        .unwrap();
    // 2 × 1024 × 1024 × 1.0490417e-08 (LiteLLM: 0.021999998992384)
    assert_eq!(q.usd, d("0.021999998992384"));
    // Pixels given directly are priced the same, never at the listed 0.0.
    let pixels: Usage = serde_json::from_str(r#"{"output_pixels": 2097152}"#).unwrap();
    let p = book
        .quote(&QuoteRequest::new(id, &pixels, chrono::DateTime::UNIX_EPOCH))
        .unwrap();
    assert_eq!(p.usd, q.usd);
    // Without a size there is no pixel count: an error, never $0.
    let no_size: Usage = serde_json::from_str(r#"{"output_images": 1}"#).unwrap();
    assert!(
        book.quote(&QuoteRequest::new(id, &no_size, chrono::DateTime::UNIX_EPOCH))
            .is_err()
    );
}

/// `max_output_tokens` becomes the model's output maximum; a value that is not a whole
/// number above zero leaves none and is reported, never read as 0.
#[test]
fn max_output_tokens_is_imported() {
    let json = r#"{
        "a": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06,
              "max_input_tokens": 128000, "max_output_tokens": 16384, "max_tokens": 16384},
        "b": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06, "max_tokens": 4096},
        "c": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06, "max_output_tokens": 0},
        "d": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06, "max_output_tokens": "8k"}
    }"#;
    let (book, report) = lenient(json);
    let max = |id: &str| book.model(id).unwrap().max_output_tokens;
    assert_eq!(max("a"), Some(16_384));
    // The legacy max_tokens is sometimes the context window: not taken as the output maximum.
    assert_eq!(max("b"), None);
    assert_eq!((max("c"), max("d")), (None, None));
    let noted: Vec<_> = report
        .not_applied
        .iter()
        .filter(|n| n.key == "max_output_tokens")
        .map(|n| &*n.model)
        .collect();
    assert_eq!(noted, ["c", "d"]);
    assert!(report.unknown_keys.is_empty(), "{:?}", report.unknown_keys);
    // Strict mode accepts it too: the key is understood.
    assert!(
        import(
            json,
            &ImportOptions {
                strict: true,
                ..ImportOptions::default()
            }
        )
        .is_ok()
    );
}

/// The bundled book gives every chat model an output maximum, and a book file round-trips it.
#[test]
fn default_book_has_output_maxima() {
    let book = PriceBook::from_json(paygo_pricing::DEFAULT_PRICES).unwrap();
    for spec in book.models() {
        assert_eq!(
            spec.max_output_tokens.is_some(),
            spec.mode == paygo_pricing::Mode::Chat,
            "{}",
            spec.id
        );
        let text = serde_json::to_string(spec).unwrap();
        assert_eq!(&serde_json::from_str::<paygo_pricing::ModelSpec>(&text).unwrap(), spec);
    }
    assert_eq!(book.model("o3").unwrap().max_output_tokens, Some(100_000));
}
