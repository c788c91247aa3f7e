//! Amount and decimal text: `decimal::parse_plain` and `parse_scientific`, `Credits`,
//! `ExactCredits` and `Money` from text, `Money::parse` for payable amounts, and the JSON
//! forms of money, credits and rates.
//!
//! Input: UTF-8 text (other bytes are skipped).
//!
//! Properties:
//! - a parsed decimal displays as text that parses back to the same value and scale, and
//!   equals what `rust_decimal` reads from the same text when that accepts it;
//! - plain and scientific parsing agree on text without an exponent; a scientific value
//!   displays as plain text that parses back to it;
//! - credits parse exactly when the text is an `i64` (`str::parse`), to the same value;
//! - exact credits, money and rates round-trip through their text and JSON forms;
//! - a payable amount has at most its currency's decimals and converts to minor units and
//!   back unchanged.

#![no_main]

use std::str::FromStr;

use libfuzzer_sys::fuzz_target;
use paygo_credits::{CreditRate, Credits, Currency, Decimal, ExactCredits, Money, decimal};

fn same(a: Decimal, b: Decimal, what: &str) {
    assert_eq!(a, b, "{what}: values differ");
    assert_eq!(a.scale(), b.scale(), "{what}: scales differ ({a} and {b})");
}

fn decimals(text: &str) {
    let plain = decimal::parse_plain(text);
    let scientific = decimal::parse_scientific(text);
    if let Ok(d) = plain {
        let back = decimal::parse_plain(&d.to_string()).unwrap_or_else(|e| panic!("{d} does not parse back: {e}"));
        same(back, d, "plain round trip");
        if let Ok(theirs) = Decimal::from_str_exact(text) {
            assert_eq!(theirs, d, "rust_decimal reads {text:?} as {theirs}, paygo as {d}");
        }
    }
    if !text.contains(['e', 'E']) {
        assert_eq!(plain, scientific, "plain and scientific disagree on {text:?}");
    }
    if let Ok(d) = scientific {
        let back = decimal::parse_plain(&d.to_string()).unwrap_or_else(|e| panic!("{d} does not parse back: {e}"));
        same(back, d, "scientific round trip");
    }
}

fn amounts(text: &str) {
    assert_eq!(
        Credits::from_str(text).ok().map(Credits::get),
        text.parse::<i64>().ok(),
        "credits and i64 disagree on {text:?}"
    );
    if let Ok(c) = Credits::from_str(text) {
        assert_eq!(Credits::from_str(&c.to_string()), Ok(c));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Credits>(&json).ok(), Some(c));
    }
    if let Ok(x) = ExactCredits::from_str(text) {
        let back = ExactCredits::from_str(&x.to_string()).unwrap_or_else(|e| panic!("{x} does not parse back: {e}"));
        assert_eq!(back, x, "exact credits round trip");
        let json = serde_json::to_string(&x).unwrap();
        assert_eq!(serde_json::from_str::<ExactCredits>(&json).ok(), Some(x));
    }
    if let Ok(m) = Money::from_str(text) {
        let back = Money::from_str(&m.to_string()).unwrap_or_else(|e| panic!("{m} does not parse back: {e}"));
        assert_eq!(back, m, "money round trip");
        same(back.amount(), m.amount(), "money round trip");
        let json = serde_json::to_string(&m).unwrap();
        let from_json = serde_json::from_str::<Money>(&json).unwrap_or_else(|e| panic!("{json} is refused: {e}"));
        same(from_json.amount(), m.amount(), "money JSON round trip");
    }
    for currency in [Currency::USD, Currency::JPY, Currency::BHD, Currency::EUR] {
        if let Ok(m) = Money::parse(text, currency) {
            let allowed = currency.exponent().unwrap_or(0);
            assert!(m.amount().scale() <= u32::from(allowed), "{m} has too many decimals");
            let minor = m.to_minor().unwrap_or_else(|e| panic!("{m} has no minor units: {e}"));
            let back = Money::from_minor(minor, currency).unwrap_or_else(|e| panic!("{minor} minor units: {e}"));
            assert_eq!(back, m, "minor units round trip");
        }
    }
}

fn json(text: &str) {
    if let Ok(m) = serde_json::from_str::<Money>(text) {
        let again = serde_json::to_string(&m).unwrap();
        let back: Money = serde_json::from_str(&again).unwrap_or_else(|e| panic!("{again} is refused: {e}"));
        same(back.amount(), m.amount(), "money JSON");
    }
    if let Ok(rate) = serde_json::from_str::<CreditRate>(text) {
        let again = serde_json::to_string(&rate).unwrap();
        let back: CreditRate = serde_json::from_str(&again).unwrap_or_else(|e| panic!("{again} is refused: {e}"));
        assert_eq!(back, rate, "credit rate JSON round trip");
    }
    if let Ok(x) = serde_json::from_str::<ExactCredits>(text) {
        let again = serde_json::to_string(&x).unwrap();
        assert_eq!(serde_json::from_str::<ExactCredits>(&again).ok(), Some(x));
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    decimals(text);
    amounts(text);
    json(text);
});
