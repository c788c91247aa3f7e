//! The one error type of this crate.

use chrono::NaiveDate;
use paygo_credits::CreditsError;
use thiserror::Error;

use crate::{Country, CountryCode, EvidenceKind};

/// Everything that can go wrong in VAT ID validation, rate lookup, tax determination and
/// refund decisions.
///
/// Messages are lowercase and say what was wrong and what was expected, so that a service
/// can pass them on to its caller unchanged. The VAT ID variants never quote the input and
/// never allocate, so validation stays allocation-free even when it fails.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum VatError {
    /// A VAT ID with nothing in it but separators.
    #[error("empty VAT ID: expected a country prefix and a number, such as DE136695976")]
    EmptyVatId,
    /// A VAT ID that does not start with two letters (and is not a Norwegian number ending in MVA).
    #[error("VAT ID has no country prefix: expected two letters such as DE before the number")]
    MissingCountryPrefix,
    /// Two letters that are not the VAT prefix of a supported country.
    #[error(
        "unknown VAT country prefix {prefix}: expected an EU prefix (AT, BE, ... with EL for Greece), XI, GB, CHE or NO"
    )]
    UnknownCountryPrefix {
        /// The two letters given.
        prefix: CountryCode,
    },
    /// A VAT ID whose number part has the wrong number of characters.
    #[error("{country} VAT ID has the wrong length: {length} characters after the prefix, expected {expected}")]
    WrongLength {
        /// The country of the prefix.
        country: Country,
        /// Characters after the prefix, separators removed.
        length: usize,
        /// The lengths the country uses.
        expected: &'static str,
    },
    /// A VAT ID whose characters are not of the country's format.
    #[error("{country} VAT ID has a bad format: {reason}")]
    BadFormat {
        /// The country of the prefix.
        country: Country,
        /// What was wrong and what was expected.
        reason: &'static str,
    },
    /// A VAT ID of the right form whose check digits do not match.
    #[error("{country} VAT ID has a bad checksum: the check digits do not match the number")]
    BadChecksum {
        /// The country of the prefix.
        country: Country,
    },
    /// Text that is not a two-letter country code.
    #[error("invalid country code {input:?}: expected two ASCII letters such as DE")]
    InvalidCountryCode {
        /// The text given, cut to 16 characters.
        input: String,
    },
    /// A country this crate holds no VAT rates for (only the 27 EU member states).
    #[error("no VAT rates for {country}: the rate table holds the 27 EU member states")]
    NoRates {
        /// The country asked for.
        country: Country,
    },
    /// A VAT rate below 0 %, above 100 % or with more than 4 decimal places.
    #[error("invalid VAT rate {value}%: expected a percent from 0 to 100 with at most 4 decimal places")]
    InvalidRate {
        /// The rate given, in percent.
        value: String,
    },
    /// A date before the rate table starts.
    #[error("no VAT rate for {country} on {date}: the rate table starts on {first}")]
    DateBeforeRates {
        /// The country asked for.
        country: Country,
        /// The date asked for.
        date: NaiveDate,
        /// The first date the table covers.
        first: NaiveDate,
    },
    /// The compiled-in rate table is malformed (a build defect, caught by the tests).
    #[error("rate table line {line}: {reason}")]
    RateTable {
        /// The 1-based line of `data/rates.tsv`.
        line: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// The seller is not established in an EU member state.
    #[error("seller country {country} is not an EU member state: expected the country of an EU establishment")]
    SellerOutsideEu {
        /// The country given.
        country: Country,
    },
    /// Fewer than two pieces of location evidence for a consumer.
    #[error("not enough location evidence: {given} piece(s) given, two that agree are required")]
    InsufficientEvidence {
        /// How many pieces were given.
        given: usize,
    },
    /// Location evidence that does not contain two agreeing pieces.
    #[error(
        "location evidence conflicts: {first} says {first_country}, {second} says {second_country}; two that agree are required"
    )]
    EvidenceConflict {
        /// One piece of evidence.
        first: EvidenceKind,
        /// The country it points to.
        first_country: CountryCode,
        /// Another piece that disagrees.
        second: EvidenceKind,
        /// The country it points to.
        second_country: CountryCode,
    },
    /// A refund request whose facts are inconsistent (a negative amount, more credited than
    /// charged, a request dated before the invoice).
    #[error("invalid refund request: {reason}")]
    InvalidRequest {
        /// What was wrong and what was expected.
        reason: &'static str,
    },
    /// Money arithmetic failed (currency mismatch, overflow).
    #[error("money: {0}")]
    Money(#[from] CreditsError),
}
