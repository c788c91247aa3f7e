//! EU VAT for paygo, the billing libraries of a pay-as-you-go AI model API: VAT IDs,
//! dated VAT rates, tax determination for electronically supplied services, and the rules
//! for refunding VAT to a business that gives its VAT ID after paying.
//!
//! Nothing here does I/O: confirming a VAT ID with VIES is a [`VatIdConfirmer`] the caller
//! passes in, dates are inputs, and the rate table is compiled in. Amounts are exact
//! [`paygo_credits::Money`].
//!
//! ```
//! use chrono::NaiveDate;
//! use paygo_credits::{Currency, Money, Rounding};
//! use paygo_vat::*;
//!
//! // A VAT ID, normalized and checked (format and check digits) without allocating.
//! let id = VatId::parse("fr 40 303 265 045")?;
//! assert_eq!((id.as_str(), id.country()), ("FR40303265045", Country::France));
//!
//! // The rate in force on a date.
//! let day = "2025-07-01".parse::<NaiveDate>()?;
//! assert_eq!(standard_rate(Country::Estonia, day)?.to_string(), "24%");
//!
//! // A French consumer of an Irish seller registered for the OSS: French VAT.
//! let fr: CountryCode = "FR".parse()?;
//! let supply = Supply {
//!     seller: Seller { country: Country::Ireland, oss_registered: true },
//!     customer: Customer {
//!         evidence: LocationEvidence { billing_country: Some(fr), ip_country: Some(fr), card_country: None },
//!         vat_id: None,
//!     },
//!     date: day,
//! };
//! let outcome = determine(&supply, &|_: &VatId| VatIdStatus::Unknown, &NoOutsideEuRules)?;
//! assert_eq!((outcome.treatment, outcome.reporting), (Treatment::Consumer, Reporting::Oss));
//! let vat = outcome.rate.vat_on(&Money::parse("50.00", Currency::EUR)?, Rounding::HalfUp)?;
//! assert_eq!(vat.to_string(), "10.00 EUR");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The parts
//!
//! - [`VatId`]: parse and validate VAT IDs of the 27 EU member states (`EL` for Greece),
//!   Northern Ireland (`XI`), the UK (`GB`), Switzerland (`CHE`) and Norway (`NO`); the
//!   error says which rule failed.
//! - [`rates_on`], [`standard_rate`], [`VatRate`]: standard and reduced rates per member
//!   state and date, from 2016-01-01.
//! - [`determine`]: consumer, reverse charge, domestic business or outside the EU, from
//!   the seller, the location evidence and the VAT ID's confirmation.
//! - [`decide_refund`]: approve, reject or retry a request for the VAT of an invoice back.
//!
//! The legal basis of each rule is in `docs/vat.md`.

mod checks;
mod country;
mod determine;
mod error;
mod id;
mod rates;
mod refund;

pub use country::{Country, CountryCode};
pub use determine::{
    Customer, Determination, EvidenceKind, ForeignTax, LocationEvidence, NoOutsideEuRules, OutsideEuRules,
    REVERSE_CHARGE_MENTION, Reporting, Seller, Supply, Treatment, VatIdConfirmer, VatIdStatus, determine,
};
pub use error::VatError;
pub use id::{VAT_ID_MAX_LEN, VatId};
pub use rates::{RatePeriod, VatRate, rate_periods, rates_on, rates_start, standard_rate};
pub use refund::{
    CreditNoteLines, DEFAULT_REQUEST_LIMIT_DAYS, InvoiceFacts, RefundDecision, RefundPolicy, RefundRequest,
    RejectReason, RetryReason, decide_refund,
};
