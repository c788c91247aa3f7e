//! Named roundings. Nothing in paygo rounds without naming one of these.

use rust_decimal::RoundingStrategy;
use serde::{Deserialize, Serialize};

/// How to round an exact value to a coarser unit (a whole credit, a cent).
///
/// "Down" and "up" are towards negative and positive infinity, so that
/// `Down <= exact <= Up` holds for every value, negative ones included.
///
/// # Example
///
/// ```
/// use paygo_credits::{ExactCredits, Rounding};
///
/// let x: ExactCredits = "2.5".parse()?;
/// assert_eq!(x.to_credits(Rounding::Down)?.get(), 2);
/// assert_eq!(x.to_credits(Rounding::Up)?.get(), 3);
/// assert_eq!(x.to_credits(Rounding::HalfEven)?.get(), 2);
/// assert_eq!(x.to_credits(Rounding::HalfUp)?.get(), 3);
/// # Ok::<(), paygo_credits::CreditsError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Towards negative infinity (floor): `2.7 -> 2`, `-2.1 -> -3`.
    Down,
    /// Towards positive infinity (ceiling): `2.1 -> 3`, `-2.7 -> -2`.
    Up,
    /// Towards zero (truncation): `2.7 -> 2`, `-2.7 -> -2`.
    TowardZero,
    /// Away from zero: `2.1 -> 3`, `-2.1 -> -3`.
    AwayFromZero,
    /// To the nearest; ties to the even neighbour (banker's rounding): `2.5 -> 2`, `3.5 -> 4`.
    HalfEven,
    /// To the nearest; ties away from zero (commercial rounding): `2.5 -> 3`, `-2.5 -> -3`.
    HalfUp,
    /// To the nearest; ties towards zero: `2.5 -> 2`, `-2.5 -> -2`.
    HalfDown,
}

impl Rounding {
    /// Every rounding, for tests and tables.
    pub const ALL: [Rounding; 7] = [
        Rounding::Down,
        Rounding::Up,
        Rounding::TowardZero,
        Rounding::AwayFromZero,
        Rounding::HalfEven,
        Rounding::HalfUp,
        Rounding::HalfDown,
    ];

    /// The equivalent `rust_decimal` strategy, for callers that round `Decimal`s themselves.
    pub fn strategy(self) -> RoundingStrategy {
        match self {
            Rounding::Down => RoundingStrategy::ToNegativeInfinity,
            Rounding::Up => RoundingStrategy::ToPositiveInfinity,
            Rounding::TowardZero => RoundingStrategy::ToZero,
            Rounding::AwayFromZero => RoundingStrategy::AwayFromZero,
            Rounding::HalfEven => RoundingStrategy::MidpointNearestEven,
            Rounding::HalfUp => RoundingStrategy::MidpointAwayFromZero,
            Rounding::HalfDown => RoundingStrategy::MidpointTowardZero,
        }
    }

    /// Rounds the exact quotient `numerator / denominator` to an integer.
    ///
    /// Returns `None` when the denominator is not positive (callers pass powers of ten and
    /// validated rates) or the result does not fit.
    pub(crate) fn div(self, numerator: i128, denominator: i128) -> Option<i128> {
        if denominator <= 0 {
            return None;
        }
        // Truncated quotient and remainder; neither can overflow for a positive denominator.
        // 64-bit division is several times faster than 128-bit, and the usual case.
        if let (Ok(n), Ok(d)) = (i64::try_from(numerator), i64::try_from(denominator)) {
            let (q, r) = (n / d, n % d);
            return self.finish(
                i128::from(q),
                u128::from(r.unsigned_abs()),
                u128::from(d.unsigned_abs()),
                n < 0,
            );
        }
        let q = numerator / denominator;
        let r = numerator % denominator;
        self.finish(q, r.unsigned_abs(), denominator.unsigned_abs(), numerator < 0)
    }

    /// Rounds `q ± r/d`, where `q` is the quotient truncated towards zero (carrying the
    /// sign), `r < d` the magnitude of the remainder and `negative` the sign of the exact
    /// value. Shared by the narrow and the 256-bit division paths.
    pub(crate) fn finish(self, q: i128, r: u128, d: u128, negative: bool) -> Option<i128> {
        if r == 0 {
            return Some(q);
        }
        let away = || if negative { q.checked_sub(1) } else { q.checked_add(1) };
        let rest = d - r;
        match self {
            Rounding::Down if negative => away(),
            Rounding::Up if !negative => away(),
            Rounding::Down | Rounding::Up | Rounding::TowardZero => Some(q),
            Rounding::AwayFromZero => away(),
            Rounding::HalfEven | Rounding::HalfUp | Rounding::HalfDown => match r.cmp(&rest) {
                std::cmp::Ordering::Less => Some(q),
                std::cmp::Ordering::Greater => away(),
                std::cmp::Ordering::Equal => match self {
                    Rounding::HalfUp => away(),
                    Rounding::HalfEven if q % 2 != 0 => away(),
                    _ => Some(q),
                },
            },
        }
    }
}
