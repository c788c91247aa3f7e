//! Helpers shared by paygo's fuzz targets (`fuzz_targets/*.rs`, `docs/fuzzing.md`): a
//! reader of structured input, the properties every price book must keep, and in-memory
//! storages for the ledger's and the invoice store's public `Storage` traits.
//!
//! The targets panic on a broken property on purpose: a panic is what libFuzzer reports.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

pub mod invoice_mem;
pub mod ledger_mem;

use chrono::{DateTime, TimeZone, Utc};
use paygo_pricing::{EstimateRequest, PriceBook, QuoteRequest, Usage};

/// Reads structured values from fuzz input, returning zeros once it runs out (so that
/// every input is valid and shorter inputs are prefixes of longer ones).
#[derive(Debug)]
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Bytes<'a> {
        Bytes { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// Up to `n` bytes (fewer at the end).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// A piece with a 16-bit length before it.
    pub fn piece(&mut self) -> &'a [u8] {
        let n = usize::from(self.u16());
        self.take(n)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }
}

/// Times at which books are quoted: before, at and after common effective dates.
pub fn quote_times() -> [DateTime<Utc>; 3] {
    [
        DateTime::<Utc>::UNIX_EPOCH,
        Utc.with_ymd_and_hms(2025, 9, 29, 0, 0, 0).single().unwrap(),
        Utc.with_ymd_and_hms(2026, 7, 24, 12, 30, 0).single().unwrap(),
    ]
}

/// The properties of a book that loaded, whatever its source:
///
/// - paygo's own format reads back what it wrote (the same models and markup), and writing
///   that again gives the same text;
/// - quoting any model at a few times and usages never panics; a quote's lines sum to its
///   total, which is not negative, and its whole credits are within one of its exact ones;
/// - an estimate bounds the quote of a usage within its limits.
pub fn check_book(book: &PriceBook) {
    let json = book.to_json();
    let back = PriceBook::from_json(&json).unwrap_or_else(|e| panic!("to_json's output is refused: {e}\n{json}"));
    assert_eq!(back.models(), book.models(), "models differ after a round trip");
    assert_eq!(back.markup(), book.markup(), "markup differs after a round trip");
    assert_eq!(back.to_json(), json, "to_json is not stable");

    let usages = [
        Usage::tokens(1_000, 100),
        Usage::tokens(300_000, 5_000),
        serde_json::from_str::<Usage>(
            r#"{"prompt_tokens": 10000, "completion_tokens": 500,
                "prompt_tokens_details": {"cached_tokens": 8000, "audio_tokens": 100},
                "completion_tokens_details": {"reasoning_tokens": 200}}"#,
        )
        .unwrap(),
    ];
    // Bounded work per input: the first few models.
    for spec in book.models().iter().take(8) {
        let model = spec.id.as_str();
        for at in quote_times() {
            for usage in &usages {
                let Ok(quote) = book.quote(&QuoteRequest::new(model, usage, at)) else {
                    continue;
                };
                let mut sum = rust_decimal::Decimal::ZERO;
                for line in &quote.lines {
                    sum = sum
                        .checked_add(line.usd)
                        .expect("the lines overflow where the total did not");
                }
                assert_eq!(sum, quote.usd, "{model}: the lines do not sum to the total");
                assert!(
                    !quote.usd.is_sign_negative() || quote.usd.is_zero(),
                    "{model}: negative quote"
                );
                assert!(quote.credits.get() >= 0, "{model}: negative credits");
                if usage.prompt_tokens_details.is_none() {
                    let request = EstimateRequest::new(model, usage.prompt_tokens, usage.completion_tokens, at);
                    if let Ok(estimate) = book.estimate(&request) {
                        assert!(
                            estimate.usd >= quote.usd && estimate.credits >= quote.credits,
                            "{model}: estimate {estimate:?} below quote {quote:?}"
                        );
                    }
                }
            }
        }
    }
}

/// Whether `PAYGO_FUZZ_TRACE` is set: the targets then print what they do with an input
/// (for reading a crash, `docs/fuzzing.md`).
pub fn tracing() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("PAYGO_FUZZ_TRACE").is_some())
}

/// Prints when `PAYGO_FUZZ_TRACE` is set.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => {
        if $crate::tracing() {
            eprintln!($($arg)*);
        }
    };
}
