//! paygo: billing libraries for a pay-as-you-go AI model API.
//!
//! This umbrella crate re-exports the member crates, one module each behind a feature of
//! the same name (all on by default), adds the [`gateway`] flow that composes them, a
//! [`prelude`] of the types a gateway uses, and the [`simulation`] of a gateway day that the
//! `gateway` example runs.
//!
//! The flow of one call, in about twenty lines:
//!
//! ```
//! use paygo::prelude::*;
//!
//! let ledger = SharedLedger::new(Billing::new(BillingConfig::default()), ManualClock::new(1));
//! let prices = PriceBook::from_json(paygo::simulation::DEFAULT_PRICES)?;
//! let policy = Plan::pay_as_you_go().policies.remove(0); // 18,000 calls in any rolling hour
//! let gateway = Gateway::new(prices, policy, ManualClock::new(0), ledger, 600_000);
//! let (account, now) = (CustomerId(42), chrono::DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")?.to_utc());
//! gateway.open_account(account)?;
//! let call = Call { id: HoldId(1), account, model: "gpt-4o", prompt_tokens: 1_000, max_output_tokens: 500,
//!                    service_tier: ServiceTier::STANDARD, units: None };
//! // No balance: refused before the upstream is called (403).
//! assert!(matches!(gateway.admit(&call, now), Err(Rejection::InsufficientCredits)));
//! gateway.top_up(TopUpId(7), account, Money::usd("10.00".parse()?), PaymentMethod::Card(CardKind::Credit))?;
//! // Rate limit, estimate and hold; then the upstream call; then quote and capture.
//! let admitted = gateway.admit(&Call { id: HoldId(2), ..call }, now)?;
//! let usage: Usage = serde_json::from_str(r#"{"prompt_tokens": 1000, "completion_tokens": 120}"#)?;
//! let done = gateway.complete(&admitted, &usage, now)?;
//! assert_eq!(done.charged, Credits::new(7_400)); // 1,000 × $2.50/M + 120 × $10/M = $0.0037
//! let meta = serde_json::json!({"meta": {"usage": done.usage}});
//! assert_eq!(meta.to_string(), r#"{"meta":{"usage":{"credits_used":7400,"usd_spent":0.0037}}}"#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! | module | what it does |
//! |---|---|
//! | [`credits`] | integer credits, exact money, conversions with named rounding, allocation, remainder carrying |
//! | [`pricing`] | price books, exact quotes and estimates, LiteLLM catalog import |
//! | [`ledger`] | the double-entry credit ledger, its durable journal and snapshots |
//! | [`billing`] | accounts, top-ups, holds and captures, bonus lots, auto top-up, on the ledger |
//! | [`ratelimit`] | keyed limits per plan, exact over any rolling window |
//! | [`vat`] | VAT IDs, rates, tax determination, refund rules |
//! | [`invoice`] | gapless invoices and credit notes, usage statements |
//! | [`gateway`] | the flow of a call through all of them |

#[cfg(feature = "billing")]
pub use paygo_billing as billing;
#[cfg(feature = "credits")]
pub use paygo_credits as credits;
#[cfg(feature = "invoice")]
pub use paygo_invoice as invoice;
#[cfg(feature = "ledger")]
pub use paygo_ledger as ledger;
#[cfg(feature = "pricing")]
pub use paygo_pricing as pricing;
#[cfg(feature = "ratelimit")]
pub use paygo_ratelimit as ratelimit;
#[cfg(feature = "vat")]
pub use paygo_vat as vat;

#[cfg(feature = "gateway")]
pub mod gateway;
#[cfg(feature = "gateway")]
pub mod simulation;

/// The types a gateway uses, to import at once: `use paygo::prelude::*;`.
#[cfg(feature = "gateway")]
pub mod prelude {
    pub use crate::gateway::{Admitted, Call, Completed, Gateway, GatewayError, Rejection};
    pub use paygo_billing::{
        AutoTopUp, AutoTopUpRule, Billing, BillingConfig, CardKind, Command, CustomerId, HoldId, PaymentMethod,
        PaymentOutcome, Receipt, Refusal, RequestId, TopUpAmount, TopUpId,
    };
    pub use paygo_credits::{CreditRate, Credits, Currency, ExactCredits, Money, Rounding};
    pub use paygo_ledger::SharedLedger;
    pub use paygo_pricing::{EstimateRequest, PriceBook, Quote, QuoteRequest, ServiceTier, Usage, UsageSection};
    pub use paygo_ratelimit::Plan;
    pub use paygo_time::{Clock, ManualClock, SystemClock, WallClock};
}

/// The README's Rust snippets, compiled and run as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
