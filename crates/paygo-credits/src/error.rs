//! The one error type of this crate.

use thiserror::Error;

/// Everything that can go wrong in credit and money math.
///
/// Messages are lowercase and say what was wrong and what was expected, so that a
/// service can pass them on to its caller unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CreditsError {
    /// Text that is not a number of the expected form.
    #[error("invalid {what} {input:?}: {reason}")]
    Parse {
        /// What was being parsed ("credits", "amount", ...).
        what: &'static str,
        /// The offending text, cut to 64 characters.
        input: String,
        /// What was wrong and what was expected.
        reason: &'static str,
    },
    /// An amount with more decimal places than its currency's minor unit allows.
    #[error("{given} decimal places given, {currency} allows {allowed}")]
    TooManyDecimals {
        /// Decimal places in the input.
        given: u32,
        /// The currency's ISO 4217 code.
        currency: &'static str,
        /// Decimal places the currency allows.
        allowed: u16,
    },
    /// A currency code that ISO 4217 does not define.
    #[error("unknown currency code {code:?}: expected an ISO 4217 code such as USD")]
    UnknownCurrency {
        /// The code given, cut to 64 characters.
        code: String,
    },
    /// Rounding to the minor unit of a currency that has none (gold, SDR, ...).
    #[error("currency {currency} has no minor unit: expected a currency such as USD, JPY or BHD")]
    NoMinorUnit {
        /// The currency's ISO 4217 code.
        currency: &'static str,
    },
    /// Two amounts in different currencies were combined.
    #[error("currency mismatch: {expected} expected, {found} given")]
    CurrencyMismatch {
        /// The currency the operation works in.
        expected: &'static str,
        /// The currency it was given.
        found: &'static str,
    },
    /// The exact result does not fit the type (credits: 64-bit; decimals: 96 bits with
    /// at most 28 decimal places).
    #[error("overflow in {operation}: the exact result is outside the supported range")]
    Overflow {
        /// The operation that overflowed.
        operation: &'static str,
    },
    /// A rate (credit rate or exchange rate) that is zero, negative or too precise.
    #[error("invalid rate {value}: {reason}")]
    InvalidRate {
        /// The rate given.
        value: String,
        /// What was expected.
        reason: &'static str,
    },
    /// An allocation with no weights at all.
    #[error("allocation needs at least one weight, none given")]
    NoWeights,
    /// An allocation whose weights are all zero.
    #[error("allocation weights sum to zero: expected at least one positive weight")]
    ZeroTotalWeight,
    /// An allocation weight below zero.
    #[error("negative allocation weight {weight} at index {index}: expected zero or more")]
    NegativeWeight {
        /// Position of the weight.
        index: usize,
        /// The weight given.
        weight: i128,
    },
    /// An amount that is not a whole number of its currency's minor units, where one is
    /// needed (allocation, minor-unit conversion).
    #[error("{amount} {currency} is not a whole number of minor units: round it to {allowed} decimal places first")]
    NotRounded {
        /// The amount as text.
        amount: String,
        /// The currency's ISO 4217 code.
        currency: &'static str,
        /// Decimal places of the minor unit.
        allowed: u16,
    },
    /// A value that has no exact decimal form within 28 decimal places.
    #[error("{what} has no exact decimal value within 28 decimal places: expected a rounding to be named")]
    Inexact {
        /// The value that could not be expressed.
        what: String,
    },
    /// A remainder outside the carrier's range of −½ to ½ credit.
    #[error("remainder {value} is outside the carrier's range: expected between -0.5 and 0.5 credit")]
    RemainderOutOfRange {
        /// The remainder given.
        value: String,
    },
}

/// Cuts user-supplied text for an error message, so a huge input cannot make a huge error:
/// at most 64 characters, then `…`. The other paygo crates quote their inputs with it too.
///
/// ```
/// assert_eq!(paygo_credits::clip("short"), "short");
/// assert_eq!(paygo_credits::clip(&"x".repeat(100)).chars().count(), 65);
/// ```
pub fn clip(text: &str) -> String {
    const MAX_CHARS: usize = 64;
    if text.chars().count() <= MAX_CHARS {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(MAX_CHARS).collect();
        cut.push('…');
        cut
    }
}
