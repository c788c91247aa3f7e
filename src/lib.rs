//! paygo: billing libraries for a pay-as-you-go AI model API.
//!
//! This umbrella crate re-exports the member crates, one module each, so a service can
//! depend on `paygo` alone and turn off what it does not use with features.
//!
//! ```
//! use paygo::credits::{CreditRate, Credits, Money, Rounding};
//!
//! let credits = CreditRate::default().to_credits(&Money::usd("10".parse()?), Rounding::Down)?;
//! assert_eq!(credits, Credits::new(20_000_000));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

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

/// The README's Rust snippets, compiled and run as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
