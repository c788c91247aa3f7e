//! Usage objects (`Usage::from_json`), without a shape (detected) and with each of the
//! four shapes (OpenAI chat, OpenAI responses, Anthropic, Gemini), then priced.
//!
//! Input: a shape byte (0 to 3: that shape declared too; other values: detection only),
//! then UTF-8 JSON text.
//!
//! Properties:
//! - an object read without a shape reads the same with the shape detected for it;
//! - a usage serializes to the chat form, which reads back (serde and the chat shape's own
//!   reader) to the same usage;
//! - a usage is priced against a book with every unit priced without panicking; a quote's
//!   lines sum to its total, and the usage read back prices the same.

#![no_main]

use std::sync::OnceLock;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use paygo_pricing::{
    Component, ContextTier, Mode, ModelSpec, PriceBook, PriceVersion, QuoteRequest, RateCard, TierRule, Usage,
    UsageShape,
};
use rust_decimal::Decimal;
use serde_json::Value;

fn book() -> &'static PriceBook {
    static BOOK: OnceLock<PriceBook> = OnceLock::new();
    BOOK.get_or_init(|| {
        let mut card = RateCard::new();
        let mut above = RateCard::new();
        for (i, c) in Component::ALL.into_iter().enumerate() {
            let n = i64::try_from(i).unwrap() + 1;
            card = card.with(c, Decimal::new(n * 7 + 3, 8));
            above = above.with(c, Decimal::new(n * 11 + 5, 8));
        }
        let mut version = PriceVersion::new(Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(), card);
        version.context_tiers.push(ContextTier {
            above_tokens: 200_000,
            prices: above,
        });
        PriceBook::new(vec![ModelSpec {
            id: "every-unit".into(),
            aliases: Vec::new(),
            provider: "fuzz".into(),
            mode: Mode::Chat,
            tier_rule: TierRule::default(),
            markup: None,
            max_output_tokens: None,
            versions: vec![version],
        }])
        .expect("the book of every unit")
    })
}

/// The quote's total, or `None` when the usage cannot be priced.
fn price(usage: &Usage) -> Option<Decimal> {
    let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let quote = book().quote(&QuoteRequest::new("every-unit", usage, at)).ok()?;
    let mut sum = Decimal::ZERO;
    for line in &quote.lines {
        sum = sum
            .checked_add(line.usd)
            .expect("lines overflow where the total did not");
    }
    assert_eq!(sum, quote.usd, "the lines do not sum to the total");
    Some(quote.usd)
}

fn check(usage: &Usage, text: &str) {
    let priced = price(usage);
    let chat = serde_json::to_string(usage).unwrap();
    let back: Usage = serde_json::from_str(&chat).unwrap_or_else(|e| panic!("{chat} is refused: {e}"));
    assert_eq!(&back, usage, "{text}: serde round trip");
    if let Ok(read) = Usage::from_json(&chat, Some(UsageShape::OpenAiChat)) {
        assert_eq!(
            price(&read),
            priced,
            "{text}: priced differently once written in the chat form {chat}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if let Ok(usage) = Usage::from_json(text, None) {
        let value: Value = serde_json::from_str(text).expect("a usage that read is JSON");
        let shape = UsageShape::detect(&value).expect("a usage that read has a shape");
        assert_eq!(
            Usage::from_json(text, Some(shape)).as_ref(),
            Ok(&usage),
            "{text}: as {shape:?}"
        );
        check(&usage, text);
    }
    if let Some(&shape) = UsageShape::ALL.get(usize::from(which))
        && let Ok(usage) = Usage::from_json(text, Some(shape))
    {
        check(&usage, text);
    }
});
