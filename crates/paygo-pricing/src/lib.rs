//! Price books for hundreds of AI models, exact quotes in USD and credits,
//! pre-authorization estimates, and an importer for LiteLLM's price catalog.
//!
//! ```
//! use paygo_pricing::{PriceBook, QuoteRequest, EstimateRequest, Usage};
//! use chrono::{TimeZone, Utc};
//!
//! let book = PriceBook::from_json(r#"{
//!   "format": "paygo-prices/1",
//!   "models": [{
//!     "id": "claude-sonnet-4-5", "provider": "anthropic", "mode": "chat",
//!     "versions": [{
//!       "valid_from": "2025-09-29T00:00:00Z",
//!       "prices": {"input_token": "0.000003", "output_token": "0.000015",
//!                  "cache_read_token": "0.0000003", "cache_write_token": "0.00000375"},
//!       "context_tiers": [{"above_tokens": 200000,
//!                          "prices": {"input_token": "0.000006", "output_token": "0.0000225"}}]
//!     }]
//!   }]
//! }"#)?;
//! let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().ok_or("date")?;
//!
//! // 10,000 prompt tokens of which 8,000 were read from the cache; 500 completion tokens.
//! let usage: Usage = serde_json::from_str(
//!     r#"{"prompt_tokens": 10000, "completion_tokens": 500,
//!         "prompt_tokens_details": {"cached_tokens": 8000}}"#)?;
//! let quote = book.quote(&QuoteRequest::new("claude-sonnet-4-5", &usage, at))?;
//! // 2,000 × $3/M + 8,000 × $0.30/M + 500 × $15/M = $0.0159 = 31,800 credits
//! assert_eq!(quote.usd, "0.0159".parse()?);
//! assert_eq!(quote.credits.get(), 31_800);
//! assert_eq!(quote.lines.len(), 3);
//!
//! // Above 200k prompt tokens the whole request moves to the higher rates.
//! let long = Usage::tokens(250_000, 1_000);
//! let quote = book.quote(&QuoteRequest::new("claude-sonnet-4-5", &long, at))?;
//! assert_eq!(quote.usd, "1.5225".parse()?);
//!
//! // Before the call: the most it can cost, to hold on the balance.
//! let estimate = book.estimate(&EstimateRequest::new("claude-sonnet-4-5", 10_000, 4_096, at))?;
//! assert!(estimate.credits >= book.quote(&QuoteRequest::new("claude-sonnet-4-5", &usage, at))?.credits);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What is priced how
//!
//! - [`Usage`] is the OpenAI usage object (prompt tokens include cached, cache-write,
//!   audio and image tokens; completion tokens include reasoning, audio and image tokens)
//!   plus non-token units. It is split into one quantity per [`Component`] without
//!   double counting; details larger than their totals are an error.
//! - A [`PriceBook`] holds [`ModelSpec`]s: ids, aliases, provider, [`Mode`], and price
//!   versions over time, each with a [`RateCard`] of exact USD prices per unit, context
//!   tiers, service tiers ([`ServiceTier`]) and variants (image size and quality, video
//!   resolution, search context size).
//! - A [`Quote`] has a line per component, the exact USD total and credits; a
//!   [`Markup`] is its own line. An [`Estimate`] bounds every quote within the request's
//!   limits. A [`UsageSection`] is the response's `usage` object and headers.
//! - Unknown models, units without a price and malformed prices are [`PricingError`]s,
//!   never $0.
//!
//! See `docs/pricing.md` for the file format, the tier and fallback rules and the
//! differences from LiteLLM.

mod book;
mod component;
mod error;
mod file;
mod hash;
pub mod litellm;
pub mod openrouter;
mod quote;
mod shape;
mod spec;
mod usage;

pub use book::{CONTEXT_TIERS_MAX, MODELS_MAX, PriceBook, WINDOWS_MAX};
pub use component::{Component, Mode, ServiceTier};
pub use error::PricingError;
pub use file::PRICE_BOOK_FORMAT;
pub use quote::{Estimate, EstimateRequest, LineKind, Quote, QuoteLine, QuoteRequest, UsageSection};
pub use shape::UsageShape;
pub use spec::{
    Comparison, ContextTier, HourRange, Markup, ModelSpec, PriceVersion, PriceWindow, RateCard, ServiceTierPrices,
    TierCount, TierRule, VariantPrice, WindowRule,
};
pub use usage::{CompletionTokensDetails, PromptTokensDetails, Usage};

/// A small price book in paygo's own format: eight well-known models (`gpt-4o`,
/// `gpt-4o-mini`, `o3`, `claude-sonnet-4-5`, `claude-haiku-4-5`, `gemini-2.5-pro`,
/// `deepseek-chat`, `text-embedding-3-small`) at their published list prices, for examples,
/// tests and the day simulation. Read it with [`PriceBook::from_json`]; a deployment
/// imports its upstream's catalog instead ([`litellm`], [`openrouter`]).
pub const DEFAULT_PRICES: &str = include_str!("../data/default_prices.json");
