//! Exact credit and money math for paygo, the billing libraries of a pay-as-you-go AI
//! model API.
//!
//! A customer prepays money; the balance is kept in integer [`Credits`] (2,000,000 credits
//! per US dollar by default, see [`CreditRate`]); each API call is priced in exact,
//! possibly fractional, [`ExactCredits`] and charged in whole credits. Nothing here uses a
//! float, nothing rounds without a named [`Rounding`], and no arithmetic wraps or panics:
//! every operation that can fail returns a [`CreditsError`].
//!
//! ```
//! use paygo_credits::{decimal, CreditRate, Credits, Money, RemainderCarrier, Rounding};
//!
//! // A $10 top-up becomes 20,000,000 credits.
//! let rate = CreditRate::default();
//! let top_up = Money::usd("10.00".parse()?);
//! let balance = rate.to_credits(&top_up, Rounding::Down)?;
//! assert_eq!(balance, Credits::new(20_000_000));
//!
//! // A call of 1,000 prompt tokens at $0.15 and 200 completion tokens at $0.60 per
//! // million tokens: 300 + 240 = 540 credits exactly.
//! let per_million = |usd: &str| -> Result<_, paygo_credits::CreditsError> {
//!     let per_token = decimal::checked_div_pow10(decimal::parse_plain(usd)?, 6)?;
//!     rate.to_exact_credits(&Money::usd(per_token))
//! };
//! let cost = per_million("0.15")?
//!     .checked_mul(1_000.into())?
//!     .checked_add(per_million("0.60")?.checked_mul(200.into())?)?;
//! let mut carrier = RemainderCarrier::new();
//! let charged = carrier.charge(cost)?;
//! assert_eq!(charged, Credits::new(540));
//! assert_eq!(balance.checked_sub(charged), Some(Credits::new(19_999_460)));
//!
//! // Which is $0.00027, or $0.01 on an invoice rounded up to the cent.
//! assert_eq!(rate.to_money_exact(charged)?.to_string(), "0.00027 USD");
//! assert_eq!(rate.to_money(charged, Rounding::Up)?.to_string(), "0.01 USD");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The types
//!
//! - [`Credits`]: whole credits in an `i64`, checked arithmetic, allocation.
//! - [`ExactCredits`]: fractional credits, exact; [`ExactCredits::to_credits`] is the
//!   named step to whole credits.
//! - [`Money`]: an exact decimal in an ISO 4217 [`Currency`]; rounding to the minor unit
//!   (2 for USD, 0 for JPY, 3 for BHD) is explicit; allocation in minor units.
//! - [`CreditRate`]: money to credits and back, each way with a [`Rounding`].
//! - [`RemainderCarrier`] and [`AccountCarriers`]: whole-credit charges whose total stays
//!   within half a credit of the exact total, with no bias.
//! - [`FxRate`]: money from one currency to another at a dated rate.
//! - [`decimal`]: exact `Decimal` arithmetic and parsing (plain and scientific notation)
//!   that the other crates share.
//!
//! All amounts serialize with serde, always on: credits as JSON integers, every decimal
//! as a string.

pub mod allocate;
mod carrier;
mod credits;
pub mod decimal;
mod error;
mod exact;
mod money;
mod rate;
mod rounding;

pub use carrier::{AccountCarriers, RemainderCarrier};
pub use credits::Credits;
pub use error::{CreditsError, clip};
pub use exact::ExactCredits;
pub use iso_currency::Currency;
pub use money::Money;
pub use rate::{CREDIT_RATE_MAX_SCALE, CreditRate, FX_RATE_MAX_SCALE, FxRate};
pub use rounding::Rounding;
pub use rust_decimal::Decimal;
