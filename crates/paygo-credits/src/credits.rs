//! Whole credits, the unit every balance and every charge is kept in.

use std::fmt;
use std::iter::Sum;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::CreditsError;
use crate::allocate::allocate_units;
use crate::error::clip;

/// A whole number of credits, positive or negative.
///
/// Backed by an `i64`: ±9.2·10^18 credits, which is ±$4.6 trillion at the default rate of
/// 2,000,000 credits per dollar. All arithmetic is checked: it returns `None` or an error
/// and never wraps or panics, which is why `Credits` has no `+` or `-` operators.
/// It serializes as a bare JSON integer.
///
/// # Example
///
/// ```
/// use paygo_credits::Credits;
///
/// let balance = Credits::new(20_000_000);
/// let charge: Credits = "1892".parse()?;
/// assert_eq!(balance.checked_sub(charge), Some(Credits::new(19_998_108)));
/// assert_eq!(Credits::MAX.checked_add(Credits::new(1)), None);
///
/// let total: Result<Credits, _> = [charge, charge].into_iter().sum();
/// assert_eq!(total?, Credits::new(3784));
/// # Ok::<(), paygo_credits::CreditsError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Credits(i64);

impl Credits {
    /// No credits.
    pub const ZERO: Credits = Credits(0);
    /// The largest representable amount.
    pub const MAX: Credits = Credits(i64::MAX);
    /// The smallest representable amount.
    pub const MIN: Credits = Credits(i64::MIN);

    /// Wraps a count of credits.
    pub const fn new(credits: i64) -> Credits {
        Credits(credits)
    }

    /// The count of credits.
    pub const fn get(self) -> i64 {
        self.0
    }

    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Whether this is below zero.
    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// `self + rhs`, or `None` on overflow.
    ///
    /// # Properties
    ///
    /// - commutative and associative wherever it does not overflow;
    /// - `a.checked_add(b)?.checked_sub(b) == Some(a)`.
    #[must_use]
    pub const fn checked_add(self, rhs: Credits) -> Option<Credits> {
        match self.0.checked_add(rhs.0) {
            Some(v) => Some(Credits(v)),
            None => None,
        }
    }

    /// `self - rhs`, or `None` on overflow.
    #[must_use]
    pub const fn checked_sub(self, rhs: Credits) -> Option<Credits> {
        match self.0.checked_sub(rhs.0) {
            Some(v) => Some(Credits(v)),
            None => None,
        }
    }

    /// `self * factor` (for example a per-request price times a count), or `None` on
    /// overflow.
    #[must_use]
    pub const fn checked_mul(self, factor: i64) -> Option<Credits> {
        match self.0.checked_mul(factor) {
            Some(v) => Some(Credits(v)),
            None => None,
        }
    }

    /// `-self`, or `None` for [`Credits::MIN`].
    #[must_use]
    pub const fn checked_neg(self) -> Option<Credits> {
        match self.0.checked_neg() {
            Some(v) => Some(Credits(v)),
            None => None,
        }
    }

    /// `self + rhs` as a `Result`, for use with `?`.
    ///
    /// # Errors
    ///
    /// [`CreditsError::Overflow`] when the sum is outside the `i64` range.
    pub fn try_add(self, rhs: Credits) -> Result<Credits, CreditsError> {
        self.checked_add(rhs).ok_or(CreditsError::Overflow {
            operation: "credits addition",
        })
    }

    /// `self - rhs` as a `Result`, for use with `?`.
    ///
    /// # Errors
    ///
    /// [`CreditsError::Overflow`] when the difference is outside the `i64` range.
    pub fn try_sub(self, rhs: Credits) -> Result<Credits, CreditsError> {
        self.checked_sub(rhs).ok_or(CreditsError::Overflow {
            operation: "credits subtraction",
        })
    }

    /// Sums credits, reporting overflow instead of wrapping. The same as
    /// `iter.sum::<Result<Credits, CreditsError>>()`.
    ///
    /// # Errors
    ///
    /// [`CreditsError::Overflow`] as soon as a partial sum leaves the `i64` range.
    pub fn checked_sum<I: IntoIterator<Item = Credits>>(items: I) -> Result<Credits, CreditsError> {
        items.into_iter().try_fold(Credits::ZERO, Credits::try_add)
    }

    /// Splits these credits by integer weights with nothing lost: the parts sum exactly to
    /// `self`. Each part gets its share rounded down; the credits left over go one each to
    /// the parts with the largest remainders (the earlier part on a tie), so a zero weight
    /// never receives anything. A negative total is split as the negation of its absolute
    /// value.
    ///
    /// # Errors
    ///
    /// [`CreditsError::NoWeights`], [`CreditsError::ZeroTotalWeight`] and
    /// [`CreditsError::NegativeWeight`] for weights that define no split.
    ///
    /// # Properties
    ///
    /// - the parts sum exactly to `self`;
    /// - a part whose weight is zero is zero;
    /// - every part is within one credit of its exact share `self · w / Σw`;
    /// - `(-x).allocate(w)` is the negation of `x.allocate(w)`;
    /// - deterministic: the same input gives the same output.
    ///
    /// # Example
    ///
    /// ```
    /// use paygo_credits::Credits;
    ///
    /// let parts = Credits::new(100).allocate(&[1u32, 1, 1])?;
    /// assert_eq!(parts, [Credits::new(34), Credits::new(33), Credits::new(33)]);
    /// let parts = Credits::new(5).allocate(&[0u32, 3, 7])?;
    /// assert_eq!(parts, [Credits::new(0), Credits::new(2), Credits::new(3)]); // 1.5 and 3.5: the tie goes to the earlier
    /// # Ok::<(), paygo_credits::CreditsError>(())
    /// ```
    pub fn allocate<W: Copy + Into<i128>>(self, weights: &[W]) -> Result<Vec<Credits>, CreditsError> {
        allocate_units(i128::from(self.0), weights)?
            .into_iter()
            .map(|part| {
                // Every part lies between 0 and the total, so it fits an i64.
                i64::try_from(part).map(Credits).map_err(|_| CreditsError::Overflow {
                    operation: "allocation",
                })
            })
            .collect()
    }
}

impl From<i64> for Credits {
    fn from(credits: i64) -> Credits {
        Credits(credits)
    }
}

impl From<Credits> for i64 {
    fn from(credits: Credits) -> i64 {
        credits.0
    }
}

impl fmt::Display for Credits {
    /// The bare integer, as in the API's `credits_used`: `1892`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for Credits {
    type Err = CreditsError;

    /// Parses a whole number with an optional sign: `"1892"`, `"-5"`, `"+0"`.
    ///
    /// # Errors
    ///
    /// [`CreditsError::Parse`] for anything else (decimals, spaces, separators, empty
    /// text); [`CreditsError::Overflow`] beyond the `i64` range.
    fn from_str(text: &str) -> Result<Credits, CreditsError> {
        let fail = |reason| CreditsError::Parse {
            what: "credits",
            input: clip(text),
            reason,
        };
        let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
        if digits.is_empty() {
            return Err(fail("expected a whole number such as 2000000"));
        }
        if digits.contains('.') && digits.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
            return Err(fail("credits are whole numbers, a decimal point is not accepted"));
        }
        if !digits.bytes().all(|c| c.is_ascii_digit()) {
            return Err(fail("expected only digits with an optional sign, such as 2000000"));
        }
        text.parse::<i64>().map(Credits).map_err(|_| CreditsError::Overflow {
            operation: "parsing credits",
        })
    }
}

impl Sum<Credits> for Result<Credits, CreditsError> {
    fn sum<I: Iterator<Item = Credits>>(iter: I) -> Self {
        Credits::checked_sum(iter)
    }
}

impl<'a> Sum<&'a Credits> for Result<Credits, CreditsError> {
    fn sum<I: Iterator<Item = &'a Credits>>(iter: I) -> Self {
        Credits::checked_sum(iter.copied())
    }
}
