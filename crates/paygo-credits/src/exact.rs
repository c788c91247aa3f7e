//! Fractional credits, exact, for prices below one credit per unit.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::decimal;
use crate::{Credits, CreditsError, Rounding};

/// An exact, possibly fractional, number of credits.
///
/// Per-token prices are fractions of a credit: $0.15 per million tokens is 0.3 credits a
/// token at the default rate. Quantities times such prices are summed as `ExactCredits`
/// and turned into whole [`Credits`] once, by a named [`Rounding`] (or through a
/// [`crate::RemainderCarrier`]). Arithmetic is exact: it returns an error rather than
/// round. Serializes as a decimal string without trailing zeros (`"0.3"`), never as a float.
///
/// # Example
///
/// ```
/// use paygo_credits::{CreditRate, ExactCredits, Money, Rounding};
/// use rust_decimal::Decimal;
///
/// let rate = CreditRate::default();                       // 2,000,000 credits per USD
/// let per_token = rate.to_exact_credits(&Money::usd("0.00000015".parse()?))?;
/// assert_eq!(per_token.to_string(), "0.3");
/// let cost = per_token.checked_mul(Decimal::from(1_234))?;  // 370.2 credits
/// assert_eq!(cost.to_credits(Rounding::Up)?.get(), 371);
/// let (whole, rest) = cost.split(Rounding::Down)?;
/// assert_eq!((whole.get(), rest.to_string()), (370, "0.2".to_string()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExactCredits(Decimal);

impl ExactCredits {
    /// Zero credits.
    pub const ZERO: ExactCredits = ExactCredits(Decimal::ZERO);

    /// Wraps an exact decimal number of credits.
    pub const fn new(credits: Decimal) -> ExactCredits {
        ExactCredits(credits)
    }

    /// The decimal value.
    pub const fn get(self) -> Decimal {
        self.0
    }

    /// `self + rhs`, exactly.
    ///
    /// # Errors
    ///
    /// [`CreditsError::Overflow`] when the exact sum does not fit a `Decimal`.
    pub fn checked_add(self, rhs: ExactCredits) -> Result<ExactCredits, CreditsError> {
        decimal::checked_add(self.0, rhs.0).map(ExactCredits)
    }

    /// `self - rhs`, exactly.
    ///
    /// # Errors
    ///
    /// [`CreditsError::Overflow`] when the exact difference does not fit a `Decimal`.
    pub fn checked_sub(self, rhs: ExactCredits) -> Result<ExactCredits, CreditsError> {
        decimal::checked_sub(self.0, rhs.0).map(ExactCredits)
    }

    /// `self * factor`, exactly (a unit price times a quantity).
    ///
    /// # Errors
    ///
    /// [`CreditsError::Overflow`] when the exact product does not fit a `Decimal`.
    pub fn checked_mul(self, factor: Decimal) -> Result<ExactCredits, CreditsError> {
        decimal::checked_mul(self.0, factor).map(ExactCredits)
    }

    /// Whole credits by the given rounding.
    ///
    /// # Errors
    ///
    /// [`CreditsError::Overflow`] when the rounded value is outside the range of [`Credits`].
    ///
    /// # Properties
    ///
    /// - `to_credits(Down) <= self <= to_credits(Up)`, and the two differ by at most one;
    /// - `HalfEven` and `HalfUp` give the same result except on exact ties (`x.5`);
    /// - monotone: `a <= b` implies `a.to_credits(r) <= b.to_credits(r)` for every `r`.
    pub fn to_credits(self, rounding: Rounding) -> Result<Credits, CreditsError> {
        const OP: &str = "rounding exact credits";
        let whole = decimal::rescale(self.0.mantissa(), self.0.scale(), 0, rounding)
            .ok_or(CreditsError::Overflow { operation: OP })?;
        i64::try_from(whole)
            .map(Credits::new)
            .map_err(|_| CreditsError::Overflow { operation: OP })
    }

    /// Whole credits by the given rounding, and the exact rest (`self - whole`).
    ///
    /// # Errors
    ///
    /// As [`ExactCredits::to_credits`].
    ///
    /// # Properties
    ///
    /// - `whole + rest == self` exactly.
    pub fn split(self, rounding: Rounding) -> Result<(Credits, ExactCredits), CreditsError> {
        let whole = self.to_credits(rounding)?;
        let rest = self.checked_sub(ExactCredits::from(whole))?;
        Ok((whole, rest))
    }
}

impl From<Credits> for ExactCredits {
    fn from(credits: Credits) -> ExactCredits {
        ExactCredits(Decimal::from(credits.get()))
    }
}

impl fmt::Display for ExactCredits {
    /// The decimal value without trailing zeros or a unit: `0.3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.normalize(), f)
    }
}

impl FromStr for ExactCredits {
    type Err = CreditsError;

    /// Parses plain decimal text such as `"0.3"` or `"-12.25"`.
    ///
    /// # Errors
    ///
    /// [`CreditsError::Parse`] or [`CreditsError::Overflow`], as [`decimal::parse_plain`].
    fn from_str(text: &str) -> Result<ExactCredits, CreditsError> {
        decimal::parse(text, "exact credits", false).map(ExactCredits)
    }
}

impl Serialize for ExactCredits {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ExactCredits {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
