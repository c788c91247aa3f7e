//! paygo: billing libraries for a pay-as-you-go AI model API.
//!
//! This umbrella crate re-exports the member crates, one module each behind a feature of
//! the same name (all on by default), and a [`prelude`] of what a service on paygo uses.
//! A service on paygo, in about twenty lines (rate limit, estimate, hold, the call,
//! capture, the usage section, the balance):
//!
//! ```
//! use paygo::prelude::*;
//!
//! let clock = ManualClock::new(1_764_000_000_000_000_000); // or SystemClock::new()
//! let gateway = Gateway::in_memory(GatewayOptions::new(PriceBook::from_json(DEFAULT_PRICES)?, clock), &Plan::pay_as_you_go())?;
//! let account = CustomerId(42);
//! block_on(async {
//!     gateway.open_account(account).await?;
//!     let card = PaymentMethod::Card(CardKind::Credit);
//!     gateway.top_up(TopUpId(7), account, Money::usd("10.00".parse()?), card).await?;
//!     // Before the call: the plan's rate limit (18,000 an hour), the estimate, the hold.
//!     let admitted = gateway.admit(&Call::tokens(HoldId(1), account, "gpt-4o", 1_000, 500)).await?;
//!     // ... the upstream call runs, and reports what it used ...
//!     let usage: Usage = serde_json::from_str(r#"{"prompt_tokens": 1000, "completion_tokens": 120}"#)?;
//!     let done = gateway.complete(&admitted, &usage).await?; // quote and capture; the rest is released
//!     let meta = serde_json::json!({"meta": {"usage": done.usage}});
//!     assert_eq!(meta.to_string(), r#"{"meta":{"usage":{"credits_used":7400,"usd_spent":0.0037}}}"#);
//!     assert_eq!(gateway.balance(account).await?.available, Credits::new(20_000_000 - 7_400));
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! | module | what it does |
//! |---|---|
//! | [`credits`] | integer credits, exact money, conversions with named rounding, allocation, remainder carrying |
//! | [`time`] | one clock trait (nanoseconds since the Unix epoch) and its clocks |
//! | [`pricing`] | price books, exact quotes and estimates, LiteLLM and OpenRouter catalog import |
//! | [`ledger`] | the double-entry credit ledger, its durable journal and snapshots |
//! | [`billing`] | accounts, top-ups, holds and captures, bonus lots, auto top-up, and the store trait |
//! | [`ratelimit`] | keyed limits per plan, exact over any rolling window, in process or in a shared store |
//! | [`vat`] | VAT IDs, rates, tax determination, refund rules |
//! | [`invoice`] | gapless invoices and credit notes, usage statements |
//! | [`gateway`] | the flow of a call through all of them, and the top-up service |

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
pub use paygo_gateway as gateway;
/// The HTTP layer (feature `http`, off by default): the metering proxy.
#[cfg(feature = "http")]
pub use paygo_http as http;
#[cfg(feature = "postgres")]
pub use paygo_postgres as postgres;
#[cfg(feature = "redis")]
pub use paygo_redis as redis;
#[cfg(feature = "time")]
pub use paygo_time as time;

/// What a service on paygo uses, to import at once: `use paygo::prelude::*;`. Every name is
/// the item's own (no renames).
#[cfg(feature = "gateway")]
pub mod prelude {
    pub use paygo_billing::{
        AutoTopUp, AutoTopUpRule, Balance, BillingConfig, BillingStore, CardKind, Command, CustomerId, EmbeddedStore,
        HoldId, PaymentMethod, PaymentOutcome, Receipt, Refusal, RequestId, TopUpAmount, TopUpId, block_on,
    };
    pub use paygo_credits::{CreditRate, Credits, Currency, ExactCredits, Money, Rounding};
    pub use paygo_gateway::{
        Admitted, Call, Completed, Gateway, GatewayError, GatewayOptions, InProcessGateway, Rejection, Status, TopUps,
    };
    pub use paygo_pricing::{DEFAULT_PRICES, PriceBook, Quote, ServiceTier, Usage, UsageSection};
    pub use paygo_ratelimit::{InProcessStore, Plan};
    pub use paygo_time::{Clock, ManualClock, SystemClock, WallClock};
}

/// The README's Rust snippets, compiled and run as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
