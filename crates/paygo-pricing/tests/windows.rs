//! Properties of the price-key grammar, of time windows and of service-tier names.
//!
//! - `PriceKey::to_litellm` then `PriceKey::parse` gives the key back, and a key composed of
//!   a base and its modifiers in any order parses to the same key;
//! - a quote inside a window uses the window's price, and the boundaries are exact to the
//!   second: the start is in, one second before it and the end are out; ranges that wrap
//!   past midnight and ranges whose start equals their end (the whole day) included, in
//!   any fixed offset;
//! - `ServiceTier::new` accepts exactly the names it documents and reads back its own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use chrono::{DateTime, Datelike, Duration, FixedOffset, TimeZone, Timelike, Utc};
use paygo_credits::Decimal;
use paygo_pricing::litellm::PriceKey;
use paygo_pricing::{
    Component, HourRange, Mode, ModelSpec, PriceBook, PriceVersion, PriceWindow, PricingError, QuoteRequest, RateCard,
    ServiceTier, ServiceTierPrices, TierRule, Usage, WindowRule,
};
use proptest::prelude::*;

/// Where failing cases are kept (committed, replayed first).
const REGRESSIONS: &str = "tests/windows.proptest-regressions";

// ---------------------------------------------------------------------------------------
// The key grammar
// ---------------------------------------------------------------------------------------

/// Components with a LiteLLM key (web searches are priced by a nested object instead).
fn keyed_components() -> Vec<Component> {
    Component::ALL
        .into_iter()
        .filter(|c| {
            PriceKey {
                component: *c,
                above_tokens: None,
                service_tier: ServiceTier::STANDARD,
                variant: None,
            }
            .to_litellm()
            .is_some()
        })
        .collect()
}

/// A tier word as the catalog writes them: a lower-case letter, then letters and digits.
/// (`above` and `token` are words of the grammar itself.)
fn tier_word() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{0,14}".prop_filter("a word of the grammar", |w| w != "above" && w != "token")
}

fn tier() -> impl Strategy<Value = ServiceTier> {
    prop_oneof![
        Just(ServiceTier::STANDARD),
        Just(ServiceTier::BATCH),
        Just(ServiceTier::FLEX),
        Just(ServiceTier::PRIORITY),
        tier_word().prop_map(|w| ServiceTier::new(&w).unwrap()),
    ]
}

fn threshold() -> impl Strategy<Value = u64> {
    prop_oneof![(1u64..2_000).prop_map(|k| k * 1000), 1u64..100_000]
}

/// A variant label for the components that have them.
fn variant(component: Component) -> BoxedStrategy<Option<String>> {
    match component {
        Component::OutputSecond => proptest::option::of("[0-9]{1,4}[pk]").boxed(),
        Component::OutputImage => {
            proptest::option::of(prop_oneof!["[0-9]{1,4}", "[0-9]{1,2}[kK]", "[0-9]\\.[0-9][kK]"]).boxed()
        }
        _ => Just(None).boxed(),
    }
}

fn price_key() -> impl Strategy<Value = PriceKey> {
    proptest::sample::select(keyed_components()).prop_flat_map(|component| {
        (
            Just(component),
            proptest::option::of(threshold()),
            tier(),
            variant(component),
        )
            .prop_map(|(component, above_tokens, service_tier, variant)| PriceKey {
                component,
                above_tokens,
                service_tier,
                variant: variant.map(|v| v.to_ascii_lowercase()),
            })
    })
}

/// A key written from its parts, modifiers shuffled, as the catalog may write it.
#[derive(Debug, Clone)]
struct Composed {
    text: String,
    expected: PriceKey,
}

fn composed() -> impl Strategy<Value = Composed> {
    let cache_write = prop_oneof![
        Just(Component::CacheWriteToken),
        Just(Component::CacheWrite1hToken),
        Just(Component::CacheWrite12hToken),
    ];
    let any_component = proptest::sample::select(keyed_components());
    (
        prop_oneof![cache_write, any_component],
        any::<bool>(),
        any::<bool>(),
        tier(),
    )
        .prop_flat_map(|(component, with_threshold, k_form, service_tier)| {
            (
                Just(component),
                proptest::option::of(1u64..5_000).prop_map(move |n| n.filter(|_| with_threshold)),
                Just(k_form),
                Just(service_tier),
                variant(component),
                any::<bool>(),
                any::<u64>(),
            )
        })
        .prop_map(
            |(component, threshold, k_form, service_tier, variant, batches_spelling, seed)| {
                let (base, lifetime) = match component {
                    Component::CacheWrite1hToken => ("cache_creation_input_token_cost".to_owned(), Some("above_1hr")),
                    Component::CacheWrite12hToken => ("cache_creation_input_token_cost".to_owned(), Some("above_12hr")),
                    c => {
                        let key = PriceKey {
                            component: c,
                            above_tokens: None,
                            service_tier: ServiceTier::STANDARD,
                            variant: None,
                        };
                        (key.to_litellm().unwrap(), None)
                    }
                };
                let mut modifiers: Vec<String> = Vec::new();
                if let Some(l) = lifetime {
                    modifiers.push(l.to_owned());
                }
                let above_tokens = threshold.map(|n| {
                    if k_form {
                        modifiers.push(format!("above_{n}k_tokens"));
                        n * 1000
                    } else {
                        modifiers.push(format!("above_{n}_tokens"));
                        n
                    }
                });
                if let Some(v) = &variant {
                    modifiers.push(v.clone());
                }
                if !service_tier.is_standard() {
                    let word = if service_tier == ServiceTier::BATCH && batches_spelling {
                        "batches".to_owned()
                    } else {
                        service_tier.name().to_owned()
                    };
                    modifiers.push(word);
                }
                // A Fisher-Yates shuffle from the drawn seed.
                let mut state = seed | 1;
                for i in (1..modifiers.len()).rev() {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let j = usize::try_from(state % (i as u64 + 1)).unwrap();
                    modifiers.swap(i, j);
                }
                let mut text = base;
                for m in &modifiers {
                    text.push('_');
                    text.push_str(m);
                }
                Composed {
                    text,
                    expected: PriceKey {
                        component,
                        above_tokens,
                        service_tier,
                        variant: variant.map(|v| v.to_ascii_lowercase()),
                    },
                }
            },
        )
}

proptest! {
    #![proptest_config(paygo_testkit::proptest_config(512, REGRESSIONS))]

    #[test]
    fn a_key_written_by_to_litellm_parses_back(key in price_key()) {
        let text = key.to_litellm().unwrap();
        let parsed = PriceKey::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(parsed, key, "{}", text);
    }

    #[test]
    fn a_key_composed_in_any_order_parses_to_its_parts(c in composed()) {
        let parsed = PriceKey::parse(&c.text).map_err(|e| TestCaseError::fail(format!("{}: {e}", c.text)))?;
        prop_assert_eq!(&parsed, &c.expected, "{}", c.text);
        // And its canonical spelling is read the same.
        let canonical = parsed.to_litellm().unwrap();
        prop_assert_eq!(PriceKey::parse(&canonical).unwrap(), c.expected, "{}", canonical);
    }

    #[test]
    fn a_modifier_given_twice_is_refused(c in composed(), n in 1u64..100) {
        let twice_threshold = format!("{}_above_{n}k_tokens", c.text);
        if c.expected.above_tokens.is_some() {
            prop_assert!(PriceKey::parse(&twice_threshold).is_err(), "{}", twice_threshold);
        }
        if !c.expected.service_tier.is_standard() {
            let twice_tier = format!("{}_flex", c.text);
            prop_assert!(PriceKey::parse(&twice_tier).is_err(), "{}", twice_tier);
        }
    }

    #[test]
    fn parsing_never_panics(text in "[a-z0-9_.KkAB]{0,80}") {
        let _ = PriceKey::parse(&text);
    }
}

#[test]
fn to_litellm_round_trips_for_every_valid_tier_name() {
    let mut wrong = Vec::new();
    for (component, tier) in [
        (Component::InputToken, "on_demand"),
        (Component::InputToken, "2x"),
        (Component::InputToken, "above"),
        (Component::InputImage, "token"),
        (Component::OutputImage, "token"),
        (Component::OutputSecond, "4k"),
    ] {
        let key = PriceKey {
            component,
            above_tokens: None,
            service_tier: ServiceTier::new(tier).unwrap(),
            variant: None,
        };
        // No LiteLLM spelling is a fine answer; a spelling that means another key is not.
        if let Some(text) = key.to_litellm()
            && PriceKey::parse(&text).ok() != Some(key.clone())
        {
            let parsed = PriceKey::parse(&text);
            wrong.push((text, parsed));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// A key, and its component, threshold, tier name and variant.
type Expected = (&'static str, Component, Option<u64>, &'static str, Option<&'static str>);

#[test]
fn catalog_keys_parse_as_documented() {
    let cases: [Expected; 12] = [
        ("input_cost_per_token", Component::InputToken, None, "standard", None),
        (
            "cache_creation_input_token_cost_above_12hr_above_272k_tokens_batches",
            Component::CacheWrite12hToken,
            Some(272_000),
            "batch",
            None,
        ),
        (
            "cache_creation_input_token_cost_above_1hr_above_200k_tokens",
            Component::CacheWrite1hToken,
            Some(200_000),
            "standard",
            None,
        ),
        (
            "input_cost_per_token_priority_above_200k_tokens",
            Component::InputToken,
            Some(200_000),
            "priority",
            None,
        ),
        (
            "input_cost_per_audio_token_above_200k_tokens_flex",
            Component::InputAudioToken,
            Some(200_000),
            "flex",
            None,
        ),
        (
            "output_cost_per_second_2k",
            Component::OutputSecond,
            None,
            "standard",
            Some("2k"),
        ),
        (
            "output_cost_per_image_0.5K",
            Component::OutputImage,
            None,
            "standard",
            Some("0.5k"),
        ),
        (
            "output_cost_per_image_1024",
            Component::OutputImage,
            None,
            "standard",
            Some("1024"),
        ),
        (
            "input_cost_per_token_cache_hit",
            Component::CacheReadToken,
            None,
            "standard",
            None,
        ),
        (
            "input_cost_per_token_decisions",
            Component::InputToken,
            None,
            "decisions",
            None,
        ),
        (
            "cache_read_input_audio_token_cost_priority",
            Component::CacheReadAudioToken,
            None,
            "priority",
            None,
        ),
        ("ocr_cost_per_page_batches", Component::Page, None, "batch", None),
    ];
    for (text, component, above, tier, variant) in cases {
        let key = PriceKey::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(key.component, component, "{text}");
        assert_eq!(key.above_tokens, above, "{text}");
        assert_eq!(key.service_tier.name(), tier, "{text}");
        assert_eq!(key.variant.as_deref(), variant, "{text}");
    }
    for (bad, says) in [
        ("input_dbu_cost_per_token", "no unit"),
        ("input_cost_per_tokens", "no unit"),
        ("input_cost_per_token_above_200k", "_above_"),
        ("input_cost_per_token_above_1hr", "not a cache write"),
        ("input_cost_per_token_flex_priority", "second service tier"),
        ("output_cost_per_second_720p_1080p", "two variant"),
        ("input_cost_per_video_per_second_above_8s_interval", "video length"),
        ("input_cost_per_token_Flex", "_Flex"),
    ] {
        let err = PriceKey::parse(bad).unwrap_err();
        assert!(err.to_string().contains(says), "{bad}: {err}");
    }
}

// ---------------------------------------------------------------------------------------
// Time windows
// ---------------------------------------------------------------------------------------

const NORMAL: &str = "0.000002";
const WINDOW: &str = "0.000001";

fn d(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn book_with(window: PriceWindow) -> PriceBook {
    let mut version = PriceVersion::new(
        Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap(),
        RateCard::new()
            .with(Component::InputToken, d(NORMAL))
            .with(Component::OutputToken, d("0.00001")),
    );
    // A priority tier too: the window replaces its price as well.
    version.service_tiers.insert(
        ServiceTier::PRIORITY,
        ServiceTierPrices {
            prices: RateCard::new().with(Component::InputToken, d("0.000004")),
            context_tiers: Vec::new(),
        },
    );
    version.windows.push(window);
    PriceBook::new(vec![ModelSpec {
        id: "w".into(),
        aliases: Vec::new(),
        provider: "test".into(),
        mode: Mode::Chat,
        tier_rule: TierRule::default(),
        markup: None,
        max_output_tokens: None,
        versions: vec![version],
    }])
    .unwrap()
}

fn window(offset_minutes: i32, weekdays: Vec<u8>, hours: Vec<HourRange>) -> PriceWindow {
    PriceWindow {
        name: "off_peak".into(),
        utc_offset: FixedOffset::east_opt(offset_minutes * 60).unwrap(),
        rules: vec![WindowRule { weekdays, hours }],
        prices: RateCard::new().with(Component::InputToken, d(WINDOW)),
    }
}

/// The input price a quote at `at` uses, and the window it names.
fn priced_at(book: &PriceBook, at: DateTime<Utc>, tier: ServiceTier) -> (Decimal, Option<String>) {
    let usage = Usage::tokens(1, 0);
    let q = book
        .quote(&QuoteRequest::new("w", &usage, at).with_service_tier(tier))
        .unwrap();
    (q.usd, q.window)
}

/// The reference model: is `at` in `[start, end)` of the day (wrapping; start == end is
/// the whole day) on one of `weekdays` (empty: any), both read at the offset?
fn open_reference(offset_minutes: i32, weekdays: &[u8], start: u16, end: u16, at: DateTime<Utc>) -> bool {
    let local = at + Duration::minutes(i64::from(offset_minutes));
    let day = u8::try_from(local.weekday().number_from_monday()).unwrap();
    let second = local.num_seconds_from_midnight();
    let (s, e) = (u32::from(start) * 60, u32::from(end) * 60);
    let in_hours = match s.cmp(&e) {
        std::cmp::Ordering::Less => s <= second && second < e,
        std::cmp::Ordering::Greater => second >= s || second < e,
        std::cmp::Ordering::Equal => true,
    };
    (weekdays.is_empty() || weekdays.contains(&day)) && in_hours
}

fn minute() -> impl Strategy<Value = u16> {
    prop_oneof![Just(0u16), Just(1439u16), 0u16..1440, (0u16..24).prop_map(|h| h * 60)]
}

fn offset() -> impl Strategy<Value = i32> {
    prop_oneof![
        Just(0),
        Just(480),
        Just(-300),
        Just(330),
        Just(-720),
        Just(840),
        -720i32..=840
    ]
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    // 2024-01-01 to 2028-01-01, to the second.
    (1_704_067_200i64..1_830_297_600).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap())
}

proptest! {
    #![proptest_config(paygo_testkit::proptest_config(512, REGRESSIONS))]

    #[test]
    fn a_quote_uses_the_window_price_exactly_when_the_window_is_open(
        offset_minutes in offset(),
        weekdays in proptest::collection::btree_set(1u8..=7, 0..4),
        start in minute(), end in minute(),
        at in instant(),
        priority in any::<bool>(),
    ) {
        let weekdays: Vec<u8> = weekdays.into_iter().collect();
        let range = HourRange { start_minute: start, end_minute: end };
        let book = book_with(window(offset_minutes, weekdays.clone(), vec![range]));
        let tier = if priority { ServiceTier::PRIORITY } else { ServiceTier::STANDARD };
        let closed_price = if priority { d("0.000004") } else { d(NORMAL) };
        let open = open_reference(offset_minutes, &weekdays, start, end, at);
        let (usd, name) = priced_at(&book, at, tier);
        prop_assert_eq!(usd, if open { d(WINDOW) } else { closed_price }, "at {} range {}", at, range);
        prop_assert_eq!(name.is_some(), open);
    }

    #[test]
    fn window_boundaries_are_exact_to_the_second(
        offset_minutes in offset(),
        start in minute(), end in minute(),
        day in 0i64..1460,
    ) {
        let range = HourRange { start_minute: start, end_minute: end };
        let book = book_with(window(offset_minutes, Vec::new(), vec![range]));
        let zone = FixedOffset::east_opt(offset_minutes * 60).unwrap();
        let midnight = zone
            .from_local_datetime(
                &(chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + Duration::days(day))
                    .and_hms_opt(0, 0, 0)
                    .unwrap(),
            )
            .unwrap()
            .with_timezone(&Utc);
        let at_start = midnight + Duration::minutes(i64::from(start));
        let at_end = midnight + Duration::minutes(i64::from(end));
        let second = Duration::seconds(1);
        let price = |at: DateTime<Utc>| priced_at(&book, at, ServiceTier::STANDARD).0;
        prop_assert_eq!(price(at_start), d(WINDOW), "start {}", at_start);
        prop_assert_eq!(price(at_end - second), d(WINDOW), "last second {}", at_end - second);
        if start == end {
            // The whole day: every boundary is inside.
            prop_assert_eq!(price(at_start - second), d(WINDOW));
            prop_assert_eq!(price(at_end), d(WINDOW));
        } else {
            prop_assert_eq!(price(at_start - second), d(NORMAL), "second before start {}", at_start - second);
            prop_assert_eq!(price(at_end), d(NORMAL), "end {}", at_end);
        }
    }

    #[test]
    fn hour_ranges_read_back_what_they_write(start in 0u16..1440, end in 0u16..1440) {
        let range = HourRange { start_minute: start, end_minute: end };
        let text = range.to_string();
        prop_assert_eq!(text.parse::<HourRange>().unwrap(), range);
        let json = serde_json::to_string(&range).unwrap();
        prop_assert_eq!(serde_json::from_str::<HourRange>(&json).unwrap(), range);
    }

    #[test]
    fn weekday_windows_in_plus_eight_follow_the_local_calendar(at in instant(), day in 1u8..=7) {
        // A whole-day window on one weekday of UTC+08:00.
        let book = book_with(window(480, vec![day], vec!["00:00-00:00".parse().unwrap()]));
        let local_day = (at + Duration::hours(8)).weekday().number_from_monday();
        let expected = if u32::from(day) == local_day { d(WINDOW) } else { d(NORMAL) };
        prop_assert_eq!(priced_at(&book, at, ServiceTier::STANDARD).0, expected);
    }
}

#[test]
fn wrapped_and_whole_day_ranges_by_hand() {
    let at = |h: u32, m: u32, s: u32| Utc.with_ymd_and_hms(2026, 6, 3, h, m, s).unwrap();
    let book = book_with(window(0, Vec::new(), vec!["22:00-02:00".parse().unwrap()]));
    let price = |t: DateTime<Utc>| priced_at(&book, t, ServiceTier::STANDARD).0;
    assert_eq!(price(at(21, 59, 59)), d(NORMAL));
    assert_eq!(price(at(22, 0, 0)), d(WINDOW));
    assert_eq!(price(at(0, 0, 0)), d(WINDOW));
    assert_eq!(price(at(1, 59, 59)), d(WINDOW));
    assert_eq!(price(at(2, 0, 0)), d(NORMAL));
    // "10:00-00:00": 00:00 itself is not in it.
    let book = book_with(window(0, Vec::new(), vec!["10:00-00:00".parse().unwrap()]));
    let price = |t: DateTime<Utc>| priced_at(&book, t, ServiceTier::STANDARD).0;
    assert_eq!(price(at(23, 59, 59)), d(WINDOW));
    assert_eq!(price(at(0, 0, 0)), d(NORMAL));
    // Start equal to end: the whole day.
    let book = book_with(window(0, Vec::new(), vec!["07:00-07:00".parse().unwrap()]));
    for t in [at(0, 0, 0), at(6, 59, 59), at(7, 0, 0), at(23, 59, 59)] {
        assert_eq!(priced_at(&book, t, ServiceTier::STANDARD).0, d(WINDOW), "{t}");
    }
    // Saturday in UTC+08:00: from Friday 16:00 UTC to Saturday 16:00 UTC.
    let book = book_with(window(480, vec![6], vec!["00:00-00:00".parse().unwrap()]));
    let price = |t: DateTime<Utc>| priced_at(&book, t, ServiceTier::STANDARD).0;
    let friday = |h, m, s| Utc.with_ymd_and_hms(2026, 6, 5, h, m, s).unwrap();
    let saturday = |h, m, s| Utc.with_ymd_and_hms(2026, 6, 6, h, m, s).unwrap();
    assert_eq!(price(friday(15, 59, 59)), d(NORMAL));
    assert_eq!(price(friday(16, 0, 0)), d(WINDOW));
    assert_eq!(price(saturday(15, 59, 59)), d(WINDOW));
    assert_eq!(price(saturday(16, 0, 0)), d(NORMAL));
}

#[test]
fn hour_ranges_refuse_what_is_not_a_time_of_day() {
    for bad in [
        "24:00-01:00",
        "9:00-10:00",
        "09:60-10:00",
        "0900-1000",
        "09:00",
        "09:00-",
        "-09:00",
        "aa:bb-cc:dd",
        "",
    ] {
        let err = bad.parse::<HourRange>().unwrap_err();
        assert!(matches!(err, PricingError::InvalidBook { .. }), "{bad}: {err}");
        assert!(err.to_string().contains("HH:MM-HH:MM"), "{err}");
    }
    assert_eq!(
        " 09:00 - 10:30 ".parse::<HourRange>().unwrap(),
        HourRange {
            start_minute: 540,
            end_minute: 630
        }
    );
}

#[test]
fn a_window_with_a_weekday_out_of_range_or_no_hours_is_refused() {
    let spec = |w: PriceWindow| {
        let mut version = PriceVersion::new(
            Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap(),
            RateCard::new().with(Component::InputToken, d(NORMAL)),
        );
        version.windows.push(w);
        ModelSpec {
            id: "w".into(),
            aliases: Vec::new(),
            provider: "test".into(),
            mode: Mode::Chat,
            tier_rule: TierRule::default(),
            markup: None,
            max_output_tokens: None,
            versions: vec![version],
        }
    };
    for (w, says) in [
        (window(0, vec![0], vec!["00:00-01:00".parse().unwrap()]), "weekday 0"),
        (window(0, vec![8], vec!["00:00-01:00".parse().unwrap()]), "weekday 8"),
        (window(0, Vec::new(), Vec::new()), "without hours"),
    ] {
        let err = PriceBook::new(vec![spec(w)]).unwrap_err();
        assert!(err.to_string().contains(says), "{err}");
    }
    let mut no_rules = window(0, Vec::new(), Vec::new());
    no_rules.rules.clear();
    assert!(
        PriceBook::new(vec![spec(no_rules)])
            .unwrap_err()
            .to_string()
            .contains("rules")
    );
    let mut negative = window(0, Vec::new(), vec!["00:00-01:00".parse().unwrap()]);
    negative.prices = RateCard::new().with(Component::InputToken, d("-0.000001"));
    assert!(matches!(
        PriceBook::new(vec![spec(negative)]).unwrap_err(),
        PricingError::InvalidPrice { .. }
    ));
}

// ---------------------------------------------------------------------------------------
// Service-tier names
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(paygo_testkit::proptest_config(1024, REGRESSIONS))]

    #[test]
    fn a_tier_name_reads_back_as_itself(
        name in prop_oneof![
            "[a-zA-Z0-9_]{1,23}",
            proptest::sample::select(vec!["default", "DEFAULT", "batches", "Batches", "fast", "FAST", "standard"])
                .prop_map(str::to_owned),
        ],
    ) {
        let tier = ServiceTier::new(&name).unwrap();
        let lower = name.to_ascii_lowercase();
        let expected = match lower.as_str() {
            "default" => "standard",
            "batches" => "batch",
            // LiteLLM prices a "fast" call at the priority tier's keys.
            "fast" => "priority",
            other => other,
        };
        prop_assert_eq!(tier.name(), expected);
        prop_assert_eq!(ServiceTier::new(tier.name()).unwrap(), tier);
        prop_assert_eq!(tier.to_string().parse::<ServiceTier>().unwrap(), tier);
        let json = serde_json::to_string(&tier).unwrap();
        prop_assert_eq!(serde_json::from_str::<ServiceTier>(&json).unwrap(), tier);
        prop_assert_eq!(tier.is_standard(), expected == "standard");
        // Case does not make another tier.
        prop_assert_eq!(ServiceTier::new(&name.to_ascii_uppercase()).unwrap(), tier);
    }

    #[test]
    fn names_outside_the_alphabet_or_too_long_are_refused(
        prefix in "[a-z0-9_]{0,10}",
        bad in "[^a-zA-Z0-9_]",
        suffix in "[a-z0-9_]{0,10}",
    ) {
        let name = format!("{prefix}{bad}{suffix}");
        let err = ServiceTier::new(&name).unwrap_err();
        prop_assert!(matches!(err, PricingError::InvalidServiceTier { .. }), "{:?}: {}", name, err);
        prop_assert!(serde_json::from_str::<ServiceTier>(&serde_json::to_string(&name).unwrap()).is_err());
    }

    #[test]
    fn tier_names_order_like_their_text(a in "[a-z0-9_]{1,23}", b in "[a-z0-9_]{1,23}") {
        let (ta, tb) = (ServiceTier::new(&a).unwrap(), ServiceTier::new(&b).unwrap());
        prop_assert_eq!(ta.cmp(&tb), ta.name().cmp(tb.name()));
        prop_assert_eq!(ta == tb, ta.name() == tb.name());
    }
}

#[test]
fn tier_name_limits_and_constants() {
    assert!(ServiceTier::new("").is_err());
    assert!(ServiceTier::new(&"a".repeat(ServiceTier::NAME_LEN_MAX)).is_ok());
    let err = ServiceTier::new(&"a".repeat(ServiceTier::NAME_LEN_MAX + 1)).unwrap_err();
    assert!(err.to_string().contains("1 to 23 characters"), "{err}");
    assert!(ServiceTier::new("flex ").is_err());
    assert!(ServiceTier::new("flex-1").is_err());
    assert!(ServiceTier::new("flé").is_err());
    // A long name is cut in the message, not copied whole.
    let long = "x".repeat(200) + "-";
    let PricingError::InvalidServiceTier { name } = ServiceTier::new(&long).unwrap_err() else {
        panic!("not InvalidServiceTier");
    };
    assert_eq!(name.chars().count(), 40);
    for (tier, name) in [
        (ServiceTier::STANDARD, "standard"),
        (ServiceTier::BATCH, "batch"),
        (ServiceTier::PRIORITY, "priority"),
        (ServiceTier::FLEX, "flex"),
    ] {
        assert_eq!(tier.name(), name);
        assert_eq!(ServiceTier::new(name).unwrap(), tier);
        assert_eq!(ServiceTier::new(&name.to_ascii_uppercase()).unwrap(), tier);
    }
    assert_eq!(ServiceTier::new("Default").unwrap(), ServiceTier::STANDARD);
    assert_eq!(ServiceTier::new("BATCHES").unwrap(), ServiceTier::BATCH);
    assert_eq!(ServiceTier::new("fast").unwrap(), ServiceTier::PRIORITY);
    assert_eq!(ServiceTier::default(), ServiceTier::STANDARD);
    assert_eq!(format!("{:?}", ServiceTier::FLEX), "ServiceTier(\"flex\")");
}
