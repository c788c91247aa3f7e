//! The algebra of quotes, as property tests: each is also stated in the `# Properties`
//! section of the type or function it tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use chrono::{DateTime, Utc};
use paygo_credits::{CreditRate, Decimal, Money};
use paygo_pricing::{
    Comparison, CompletionTokensDetails, Component, ContextTier, EstimateRequest, Markup, Mode, ModelSpec, PriceBook,
    PriceVersion, PromptTokensDetails, QuoteRequest, RateCard, ServiceTier, ServiceTierPrices, TierCount, TierRule,
    Usage,
};
use proptest::prelude::*;

/// Where failing cases are kept (committed, replayed first).
const REGRESSIONS: &str = "tests/properties.proptest-regressions";

/// A USD price per unit with up to 12 decimals (prices like $0.00000015).
fn price() -> impl Strategy<Value = Decimal> {
    (0i64..5_000_000, 6u32..=12).prop_map(|(m, s)| Decimal::from_i128_with_scale(i128::from(m), s))
}

/// A card pricing every component, so that every generated usage has a quote.
fn card() -> impl Strategy<Value = RateCard> {
    proptest::collection::vec(price(), Component::COUNT).prop_map(|prices| {
        let mut card = RateCard::new();
        for (c, p) in Component::ALL.into_iter().zip(prices) {
            card.insert(c, p);
        }
        card
    })
}

/// A card whose every price is the base's plus something: tiers never get cheaper.
fn dearer(base: &RateCard, extra: &[Decimal]) -> RateCard {
    let mut card = RateCard::new();
    for (k, (c, p)) in base.iter().enumerate() {
        card.insert(c, p + extra[k % extra.len()]);
    }
    card
}

prop_compose! {
    fn model()(
        base in card(),
        extra in proptest::collection::vec(price(), 1..4),
        threshold in 1u64..5_000,
        has_tier in any::<bool>(),
        batch in proptest::option::of(card()),
        all_tokens in any::<bool>(),
        at_least in any::<bool>(),
        markup in proptest::option::of((0i64..50, 0i64..1000)),
        variants in proptest::collection::btree_map("[a-z]{1,3}", price(), 0..3),
    ) -> ModelSpec {
        let mut version = PriceVersion::new(DateTime::<Utc>::UNIX_EPOCH, base.clone());
        if has_tier {
            version.context_tiers.push(ContextTier { above_tokens: threshold, prices: dearer(&base, &extra) });
        }
        if let Some(batch) = batch {
            version.service_tiers.insert(ServiceTier::BATCH, ServiceTierPrices { prices: batch, context_tiers: vec![] });
        }
        for (k, p) in variants {
            version.variants.push(paygo_pricing::VariantPrice { component: Component::OutputImage, variant: k, usd_per_unit: p });
        }
        ModelSpec {
            id: "m".into(),
            aliases: vec!["alias".into()],
            provider: "p".into(),
            mode: Mode::Chat,
            tier_rule: TierRule {
                counted: if all_tokens { TierCount::AllTokens } else { TierCount::PromptTokens },
                comparison: if at_least { Comparison::AtLeast } else { Comparison::Above },
            },
            markup: markup.map(|(p, f)| Markup { percent: Decimal::from(p), fixed_usd: Decimal::new(f, 6) }),
            max_output_tokens: None,
            versions: vec![version],
        }
    }
}

/// An amount for every component, at its index in `Component::ALL`.
type Amounts = [u64; Component::COUNT];

fn amounts() -> impl Strategy<Value = Amounts> {
    proptest::collection::vec(0u64..3_000, Component::COUNT).prop_map(|v| {
        let mut a = [0u64; Component::COUNT];
        a.copy_from_slice(&v);
        a
    })
}

/// The usage whose split gives exactly these amounts (the request count included).
fn usage_of(a: &Amounts) -> Usage {
    let q = |c: Component| a[c.index()];
    let side = |f: fn(Component) -> bool| Component::ALL.into_iter().filter(|c| f(*c)).map(q).sum::<u64>();
    Usage {
        prompt_tokens: side(Component::is_prompt_token),
        completion_tokens: side(Component::is_completion_token),
        total_tokens: None,
        prompt_tokens_details: Some(PromptTokensDetails {
            cached_tokens: q(Component::CacheReadToken),
            cache_write_tokens: q(Component::CacheWriteToken),
            cache_write_1h_tokens: q(Component::CacheWrite1hToken),
            cache_write_12h_tokens: q(Component::CacheWrite12hToken),
            audio_tokens: q(Component::InputAudioToken),
            cached_audio_tokens: q(Component::CacheReadAudioToken),
            cache_write_audio_tokens: q(Component::CacheWriteAudioToken),
            image_tokens: q(Component::InputImageToken),
            cached_image_tokens: q(Component::CacheReadImageToken),
            video_tokens: q(Component::InputVideoToken),
        }),
        completion_tokens_details: Some(CompletionTokensDetails {
            reasoning_tokens: q(Component::ReasoningToken),
            audio_tokens: q(Component::OutputAudioToken),
            image_tokens: q(Component::OutputImageToken),
            video_tokens: q(Component::OutputVideoToken),
        }),
        citation_tokens: q(Component::CitationToken),
        input_images: q(Component::InputImage),
        output_images: q(Component::OutputImage),
        input_pixels: q(Component::InputPixel),
        output_pixels: q(Component::OutputPixel),
        input_duration_ms: q(Component::InputSecond),
        output_duration_ms: q(Component::OutputSecond),
        input_audio_duration_ms: q(Component::InputAudioSecond),
        input_video_duration_ms: q(Component::InputVideoSecond),
        output_video_duration_ms: q(Component::OutputVideoSecond),
        call_duration_ms: q(Component::CallSecond),
        input_characters: q(Component::InputCharacter),
        output_characters: q(Component::OutputCharacter),
        text_messages: q(Component::TextMessage),
        requests: Some(q(Component::Request)),
        queries: q(Component::Query),
        web_searches: q(Component::WebSearch),
        maps_queries: q(Component::MapsQuery),
        code_interpreter_sessions: q(Component::CodeInterpreterSession),
        pages: q(Component::Page),
        annotation_pages: q(Component::AnnotationPage),
        ..Usage::default()
    }
}

#[test]
fn usage_of_splits_back_into_its_amounts() {
    // The generator above is only a test of every component if the split is exact: check
    // it with a quote that prices each component at 1 and lists one line per component.
    let mut card = RateCard::new();
    for c in Component::ALL {
        card.insert(c, Decimal::ONE);
    }
    let spec = ModelSpec {
        id: "m".into(),
        aliases: vec![],
        provider: "p".into(),
        mode: Mode::Chat,
        tier_rule: TierRule::default(),
        markup: None,
        max_output_tokens: None,
        versions: vec![PriceVersion::new(DateTime::<Utc>::UNIX_EPOCH, card)],
    };
    let book = PriceBook::new(vec![spec]).unwrap();
    let mut a = [0u64; Component::COUNT];
    for (i, slot) in a.iter_mut().enumerate() {
        *slot = 1000 + i as u64;
    }
    let q = book
        .quote(&QuoteRequest::new("m", &usage_of(&a), DateTime::<Utc>::UNIX_EPOCH))
        .unwrap();
    // Every component but the image count, which the image tokens measure already.
    let charged: Vec<Component> = Component::ALL
        .into_iter()
        .filter(|c| *c != Component::OutputImage)
        .collect();
    assert_eq!(q.lines.len(), charged.len());
    for (line, c) in q.lines.iter().zip(charged) {
        assert_eq!(line.kind, paygo_pricing::LineKind::Unit(c));
        let expected = Decimal::from(a[c.index()])
            / if line.quantity.scale() > 0 {
                Decimal::from(1000)
            } else {
                Decimal::ONE
            };
        assert_eq!(line.quantity, expected, "{c}");
    }
}

fn tier() -> impl Strategy<Value = ServiceTier> {
    proptest::sample::select(vec![ServiceTier::STANDARD, ServiceTier::BATCH, ServiceTier::PRIORITY])
}

proptest! {
    #![proptest_config(paygo_testkit::proptest_config(256, REGRESSIONS))]

    #[test]
    fn breakdown_sums_exactly_and_credits_follow_usd(spec in model(), a in amounts(), t in tier()) {
        let book = PriceBook::new(vec![spec]).unwrap();
        let usage = usage_of(&a);
        let q = book.quote(&QuoteRequest::new("m", &usage, DateTime::<Utc>::UNIX_EPOCH).with_service_tier(t)).unwrap();
        let sum: Decimal = q.lines.iter().map(|l| l.usd).sum();
        prop_assert_eq!(sum, q.usd);
        for l in &q.lines {
            prop_assert_eq!(l.quantity * l.unit_usd, l.usd);
        }
        prop_assert_eq!(q.exact_credits, CreditRate::default().to_exact_credits(&Money::usd(q.usd)).unwrap());
        prop_assert!(paygo_credits::ExactCredits::from(q.credits) >= q.exact_credits);
    }

    #[test]
    fn quote_is_monotone_in_every_quantity(
        spec in model(), a in amounts(), which in 0usize..Component::COUNT, more in 1u64..300_000, t in tier()
    ) {
        let book = PriceBook::new(vec![spec]).unwrap();
        let base = usage_of(&a);
        let mut bigger = a;
        bigger[which] += more;
        // The documented exception: image tokens added next to an image count replace the
        // per-image charge.
        prop_assume!(!(Component::ALL[which] == Component::OutputImageToken && a[which] == 0 && a[Component::OutputImage.index()] > 0));
        let bigger = usage_of(&bigger);
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let q1 = book.quote(&QuoteRequest::new("m", &base, at).with_service_tier(t)).unwrap();
        let q2 = book.quote(&QuoteRequest::new("m", &bigger, at).with_service_tier(t)).unwrap();
        prop_assert!(q2.usd >= q1.usd, "{} then {}", q1.usd, q2.usd);
        prop_assert!(q2.credits >= q1.credits);
    }

    #[test]
    fn estimate_is_never_below_the_quote(
        spec in model(), a in amounts(), slack_in in 0u64..5_000, slack_out in 0u64..5_000, t in tier()
    ) {
        let book = PriceBook::new(vec![spec]).unwrap();
        let usage = usage_of(&a);
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let q = book.quote(&QuoteRequest::new("m", &usage, at).with_service_tier(t)).unwrap();
        let units = Usage { prompt_tokens: 0, completion_tokens: 0, prompt_tokens_details: None, completion_tokens_details: None, ..usage.clone() };
        let e = book.estimate(&EstimateRequest {
            model: "alias",
            prompt_tokens: usage.prompt_tokens + slack_in,
            max_output_tokens: usage.completion_tokens + slack_out,
            units: Some(&units),
            service_tier: t,
            at,
        }).unwrap();
        prop_assert!(e.usd >= q.usd, "estimate {} below quote {}", e.usd, q.usd);
        prop_assert!(e.credits >= q.credits);
    }

    #[test]
    fn a_book_round_trips_through_its_file(specs in proptest::collection::vec(model(), 1..4)) {
        let specs: Vec<ModelSpec> = specs.into_iter().enumerate().map(|(i, mut s)| {
            s.id = format!("m{i}");
            s.aliases = vec![format!("a{i}")];
            s
        }).collect();
        let book = PriceBook::new(specs).unwrap();
        let back = PriceBook::from_json(&book.to_json()).unwrap();
        prop_assert_eq!(back.models(), book.models());
        prop_assert_eq!(back.to_json(), book.to_json());
    }

    #[test]
    fn usage_parsing_never_panics(text in ".{0,200}") {
        let _ = serde_json::from_str::<Usage>(&text);
        let _ = PriceBook::from_json(&text);
        let _ = paygo_pricing::litellm::import(&text, &paygo_pricing::litellm::ImportOptions::default());
    }

    #[test]
    fn litellm_numbers_are_read_exactly(m in 1u64..10_000_000_000, e in 1u32..=12) {
        let text = format!("{m}e-{e:02}");
        let json = format!(r#"{{"x": {{"litellm_provider": "p", "input_cost_per_token": {text}}}}}"#);
        let (book, _) = paygo_pricing::litellm::import(&json, &paygo_pricing::litellm::ImportOptions::default()).unwrap();
        let got = book.models()[0].versions[0].prices.get(Component::InputToken).unwrap();
        prop_assert_eq!(got, Decimal::from_i128_with_scale(i128::from(m), e));
    }
}
