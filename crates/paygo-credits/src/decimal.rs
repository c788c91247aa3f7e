//! Exact decimal arithmetic on top of `rust_decimal`.
//!
//! `rust_decimal` rounds silently when a product or a sum needs more than 96 bits or 28
//! decimal places. The functions here never do: they return the exact result or an
//! error. They also parse decimal text without passing through a float.

use rust_decimal::Decimal;

use crate::error::clip;
use crate::{CreditsError, Rounding};

/// The largest mantissa a `Decimal` holds: 2^96 − 1.
const MAX_MANTISSA: i128 = (1i128 << 96) - 1;

/// The most decimal places a `Decimal` holds.
pub const MAX_SCALE: u32 = 28;

/// Powers of ten that fit an `i128`: `10^0` to `10^38`.
const POW10: [i128; 39] = {
    let mut table = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// `10^exp`, for `exp` up to 38 (the largest power of ten below 2^127); `None` above.
pub fn pow10_checked(exp: u32) -> Option<i128> {
    pow10(exp)
}

/// `10^exp` for `exp <= 38`, the largest power of ten below 2^127.
pub(crate) fn pow10(exp: u32) -> Option<i128> {
    POW10.get(exp as usize).copied()
}

/// Builds a `Decimal` from a mantissa and a scale, removing trailing zeros only as far as
/// needed to fit. Never rounds: a value that does not fit exactly is an error.
pub(crate) fn from_parts(mut mantissa: i128, mut scale: u32, operation: &'static str) -> Result<Decimal, CreditsError> {
    // `unsigned_abs`: `i128::MIN.abs()` would overflow.
    let fits = |m: i128| m.unsigned_abs() <= MAX_MANTISSA.unsigned_abs();
    if scale <= MAX_SCALE && fits(mantissa) {
        return Decimal::try_from_i128_with_scale(mantissa, scale).map_err(|_| CreditsError::Overflow { operation });
    }
    if mantissa == 0 {
        // Zero at any scale is zero: keep as many places as a `Decimal` can.
        return Ok(Decimal::new(0, MAX_SCALE));
    }
    while (scale > MAX_SCALE || !fits(mantissa)) && scale > 0 && mantissa % 10 == 0 {
        mantissa /= 10;
        scale -= 1;
    }
    if scale > MAX_SCALE || !fits(mantissa) {
        return Err(CreditsError::Overflow { operation });
    }
    Decimal::try_from_i128_with_scale(mantissa, scale).map_err(|_| CreditsError::Overflow { operation })
}

/// The decimal `mantissa / 10^scale`, exactly.
///
/// # Errors
///
/// [`CreditsError::Overflow`] when it does not fit a `Decimal` (more than 96 bits, or more
/// than 28 decimal places that are not trailing zeros).
pub fn from_mantissa(mantissa: i128, scale: u32) -> Result<Decimal, CreditsError> {
    from_parts(mantissa, scale, "building a decimal")
}

/// The exact sum `a + b`.
///
/// # Errors
///
/// [`CreditsError::Overflow`] when the exact sum does not fit a `Decimal`.
///
/// # Properties
///
/// - commutative: `checked_add(a, b) == checked_add(b, a)`;
/// - exact: `checked_sub(checked_add(a, b)?, b)? == a` whenever both succeed.
pub fn checked_add(a: Decimal, b: Decimal) -> Result<Decimal, CreditsError> {
    const OP: &str = "decimal addition";
    // Fast path: same scale, and the sum of two 96-bit mantissas cannot overflow i128.
    if a.scale() == b.scale() {
        let sum = a.mantissa() + b.mantissa();
        if sum.unsigned_abs() <= MAX_MANTISSA.unsigned_abs() {
            return Decimal::try_from_i128_with_scale(sum, a.scale())
                .map_err(|_| CreditsError::Overflow { operation: OP });
        }
    }
    // Aligned at the finer scale, which the sum keeps (so 60.00 + 11.4 is 71.40) as far as
    // it fits.
    let scale = a.scale().max(b.scale());
    if let Some(sum) = aligned_sum(a, b, scale) {
        return from_parts(sum, scale, OP);
    }
    // A zero-padded operand (`1.000…0`, `0E-28`) can push the other past 128 bits when
    // aligned: without trailing zeros, the finer operand's last digit is not zero, so
    // neither is the sum's at that scale, and a sum that still does not fit has no exact
    // `Decimal`. The places given up are put back where they fit.
    let (na, nb) = (a.normalize(), b.normalize());
    let reduced = na.scale().max(nb.scale());
    let sum = aligned_sum(na, nb, reduced).ok_or(CreditsError::Overflow { operation: OP })?;
    match pow10(scale - reduced).and_then(|f| sum.checked_mul(f)) {
        Some(widened) => from_parts(widened, scale, OP),
        None => from_parts(sum, reduced, OP),
    }
}

/// `a + b` as a mantissa at `scale` (at least both operands' scales), if it fits 128 bits.
fn aligned_sum(a: Decimal, b: Decimal, scale: u32) -> Option<i128> {
    let ma = a.mantissa().checked_mul(pow10(scale - a.scale())?)?;
    let mb = b.mantissa().checked_mul(pow10(scale - b.scale())?)?;
    ma.checked_add(mb)
}

/// The exact difference `a - b`.
///
/// # Errors
///
/// [`CreditsError::Overflow`] when the exact difference does not fit a `Decimal`.
pub fn checked_sub(a: Decimal, b: Decimal) -> Result<Decimal, CreditsError> {
    checked_add(a, -b)
}

/// The exact product `a * b`.
///
/// # Errors
///
/// [`CreditsError::Overflow`] when the exact product does not fit a `Decimal` (more than
/// 96 bits of mantissa, or more than 28 decimal places that are not trailing zeros).
///
/// # Properties
///
/// - commutative, and exact: `checked_mul(a, 1) == a`; for integers it agrees with
///   integer multiplication.
pub fn checked_mul(a: Decimal, b: Decimal) -> Result<Decimal, CreditsError> {
    const OP: &str = "decimal multiplication";
    // Fast path: the mantissas' product fits and the scale is within range.
    let scale = a.scale() + b.scale();
    if scale <= MAX_SCALE
        && let Some(product) = a.mantissa().checked_mul(b.mantissa())
        && product.unsigned_abs() <= MAX_MANTISSA.unsigned_abs()
    {
        return Decimal::try_from_i128_with_scale(product, scale).map_err(|_| CreditsError::Overflow { operation: OP });
    }
    let (a, b) = (a.normalize(), b.normalize());
    let scale = a.scale() + b.scale();
    if let Some(product) = a.mantissa().checked_mul(b.mantissa()) {
        return from_parts(product, scale, OP);
    }
    // The product needs more than 127 bits: it can only fit a Decimal if dividing it by a
    // power of ten is exact and brings it under 2^96 with a scale of at most 28.
    let negative = a.is_sign_negative() != b.is_sign_negative();
    let wide = U256::mul(a.mantissa().unsigned_abs(), b.mantissa().unsigned_abs());
    for drop in 1..=scale {
        let Some(divisor) = pow10(drop) else { break };
        let Some((q, r)) = wide.div_rem(divisor.unsigned_abs()) else {
            continue;
        };
        if r != 0 {
            break;
        }
        if let Ok(q) = i128::try_from(q) {
            let q = if negative { -q } else { q };
            return from_parts(q, scale - drop, OP);
        }
    }
    Err(CreditsError::Overflow { operation: OP })
}

/// `value / 10^exp`, exactly: a price per million tokens to a price per token is
/// `checked_div_pow10(price, 6)`.
///
/// # Errors
///
/// [`CreditsError::Overflow`] when the result needs more than 28 decimal places.
///
/// # Properties
///
/// - `checked_mul(checked_div_pow10(v, e)?, 10^e)? == v`.
pub fn checked_div_pow10(value: Decimal, exp: u32) -> Result<Decimal, CreditsError> {
    const OP: &str = "dividing by a power of ten";
    let scale = value
        .scale()
        .checked_add(exp)
        .ok_or(CreditsError::Overflow { operation: OP })?;
    from_parts(value.mantissa(), scale, OP)
}

/// Rounds `a * b / d` to an integer with the given rounding, exactly.
///
/// `d` must be positive. Returns `None` when the rounded result does not fit an `i128` or
/// `d` is not positive.
pub(crate) fn mul_div(a: i128, b: i128, d: i128, rounding: Rounding) -> Option<i128> {
    if d <= 0 {
        return None;
    }
    if let Some(n) = a.checked_mul(b) {
        return rounding.div(n, d);
    }
    let negative = (a < 0) != (b < 0);
    let wide = U256::mul(a.unsigned_abs(), b.unsigned_abs());
    let (q, r) = wide.div_rem(d.unsigned_abs())?;
    let q = i128::try_from(q).ok()?;
    rounding.finish(if negative { -q } else { q }, r, d.unsigned_abs(), negative)
}

/// `floor(a · b / d)` and `(a · b) mod d` for non-negative `a`, `b` and positive `d`,
/// exactly (in 256 bits when the product needs them); `None` when the inputs are out of
/// that domain or the quotient does not fit an `i128`.
pub(crate) fn mul_div_rem(a: i128, b: i128, d: i128) -> Option<(i128, i128)> {
    if a < 0 || b < 0 || d <= 0 {
        return None;
    }
    if let Some(n) = a.checked_mul(b) {
        return Some((n / d, n % d));
    }
    let (q, r) = U256::mul(a.unsigned_abs(), b.unsigned_abs()).div_rem(d.unsigned_abs())?;
    Some((i128::try_from(q).ok()?, i128::try_from(r).ok()?))
}

/// Rounds `mantissa / 10^scale` to `to_scale` decimal places, returning the new mantissa.
pub(crate) fn rescale(mantissa: i128, scale: u32, to_scale: u32, rounding: Rounding) -> Option<i128> {
    if to_scale >= scale {
        mantissa.checked_mul(pow10(to_scale - scale)?)
    } else {
        rounding.div(mantissa, pow10(scale - to_scale)?)
    }
}

/// Rounds a decimal to `dp` decimal places with a named rounding. Never produces `-0`.
///
/// # Errors
///
/// [`CreditsError::Overflow`] when `dp` is above 28.
///
/// # Properties
///
/// - `round(x, dp, Down) <= x <= round(x, dp, Up)`;
/// - idempotent: rounding a rounded value again changes nothing.
pub fn round(value: Decimal, dp: u32, rounding: Rounding) -> Result<Decimal, CreditsError> {
    const OP: &str = "rounding";
    if dp > MAX_SCALE {
        return Err(CreditsError::Overflow { operation: OP });
    }
    if value.is_zero() {
        // `-0` comes out as `0`, with as many places as it had, up to `dp`.
        return Ok(Decimal::new(0, value.scale().min(dp)));
    }
    if value.scale() <= dp {
        return Ok(value);
    }
    let m = rescale(value.mantissa(), value.scale(), dp, rounding).ok_or(CreditsError::Overflow { operation: OP })?;
    from_parts(m, dp, OP)
}

/// Parses a plain decimal: an optional sign, digits, and optionally a point followed by
/// digits (`"10"`, `"-0.15"`, `"+3.000"`). No exponent, no separators, no spaces.
///
/// The scale of the text is kept (`"10.00"` stays two decimal places). A text with more
/// than 28 decimal places is accepted when the places beyond 28 are zeros and all its digits
/// together fit 38 digits; otherwise it is an overflow error.
///
/// # Errors
///
/// [`CreditsError::Parse`] for anything else, with the reason; [`CreditsError::Overflow`]
/// for a number beyond 96 bits or 28 significant decimal places.
///
/// # Properties
///
/// - never panics, on any string;
/// - `parse_plain(&d.to_string()) == Ok(d)` for every `Decimal` `d`.
pub fn parse_plain(text: &str) -> Result<Decimal, CreditsError> {
    parse(text, "decimal", false)
}

/// Parses a decimal that may use scientific notation, as JSON numbers do
/// (`"2.9999900000000002e-06"`, `"1E+3"`), exactly: the digits are kept as written.
///
/// # Errors
///
/// As [`parse_plain`], plus an exponent that is not an integer.
///
/// # Properties
///
/// - never panics; agrees with [`parse_plain`] on every text without an exponent.
pub fn parse_scientific(text: &str) -> Result<Decimal, CreditsError> {
    parse(text, "decimal", true)
}

pub(crate) fn parse(text: &str, what: &'static str, allow_exponent: bool) -> Result<Decimal, CreditsError> {
    const OP: &str = "parsing a decimal";
    let fail = |reason: &'static str| CreditsError::Parse {
        what,
        input: clip(text),
        reason,
    };
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(fail("empty text, expected digits such as 10.00"));
    }
    let (negative, rest) = match bytes[0] {
        b'-' => (true, &bytes[1..]),
        b'+' => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let (number, exponent) = match rest.iter().position(|&c| c == b'e' || c == b'E') {
        Some(at) if allow_exponent => (&rest[..at], Some(&rest[at + 1..])),
        Some(_) => {
            return Err(fail(
                "exponent notation is not accepted here, expected plain digits such as 0.000015",
            ));
        }
        None => (rest, None),
    };
    let (int_part, frac_part) = match number.iter().position(|&c| c == b'.') {
        Some(at) => (&number[..at], Some(&number[at + 1..])),
        None => (number, None),
    };
    if int_part.is_empty() {
        return Err(fail("expected a digit before the decimal point, such as 0.5"));
    }
    if frac_part.is_some_and(<[u8]>::is_empty) {
        return Err(fail("expected a digit after the decimal point, such as 5.0"));
    }
    let mut mantissa: i128 = 0;
    let mut scale: i64 = 0;
    for (i, &c) in int_part.iter().chain(frac_part.unwrap_or(&[])).enumerate() {
        if !c.is_ascii_digit() {
            return Err(fail("expected only digits, an optional sign and one decimal point"));
        }
        // Leading zeros cost nothing; trailing zeros beyond 96 bits are removed later.
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(i128::from(c - b'0')))
            .ok_or(CreditsError::Overflow { operation: OP })?;
        if i >= int_part.len() {
            scale += 1;
        }
    }
    if let Some(exp) = exponent {
        let (exp_negative, digits) = match exp.first() {
            Some(b'-') => (true, &exp[1..]),
            Some(b'+') => (false, &exp[1..]),
            _ => (false, exp),
        };
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(fail("expected an integer exponent after 'e', such as 1.5e-6"));
        }
        if mantissa == 0 {
            // Zero times any power of ten is zero, with the places written before the 'e'.
            return from_parts(0, u32::try_from(scale).unwrap_or(MAX_SCALE), OP);
        }
        // Leading zeros of the exponent are allowed (JSON allows them) and mean nothing.
        let digits = &digits[digits.iter().take_while(|&&d| d == b'0').count()..];
        if digits.len() > 4 {
            return Err(CreditsError::Overflow { operation: OP });
        }
        let mut value: i64 = 0;
        for &d in digits {
            value = value * 10 + i64::from(d - b'0');
        }
        scale += if exp_negative { value } else { -value };
    }
    if scale < 0 {
        let factor = u32::try_from(-scale)
            .ok()
            .and_then(pow10)
            .ok_or(CreditsError::Overflow { operation: OP })?;
        mantissa = mantissa
            .checked_mul(factor)
            .ok_or(CreditsError::Overflow { operation: OP })?;
        scale = 0;
    }
    // Trailing zeros past the last place a Decimal has say nothing: drop them; a digit
    // that is still past it is a value too small to hold, which is not an overflow.
    while scale > i64::from(MAX_SCALE) && mantissa % 10 == 0 && mantissa != 0 {
        mantissa /= 10;
        scale -= 1;
    }
    if scale > i64::from(MAX_SCALE) {
        return Err(fail(
            "more than 28 decimal places, expected an amount of at least 1e-28 (or zero)",
        ));
    }
    if negative {
        mantissa = -mantissa;
    }
    let scale = u32::try_from(scale).map_err(|_| CreditsError::Overflow { operation: OP })?;
    from_parts(mantissa, scale, OP)
}

/// A 256-bit unsigned integer, only for the rare products that need more than 127 bits.
#[derive(Debug, Clone, Copy)]
struct U256 {
    hi: u128,
    lo: u128,
}

impl U256 {
    /// The full product of two 128-bit integers.
    fn mul(a: u128, b: u128) -> U256 {
        const MASK: u128 = u64::MAX as u128;
        let (a1, a0) = (a >> 64, a & MASK);
        let (b1, b0) = (b >> 64, b & MASK);
        let p00 = a0 * b0;
        let p01 = a0 * b1;
        let p10 = a1 * b0;
        let p11 = a1 * b1;
        // Each partial product is below 2^128; sum the middle column with its carries.
        let mid = (p00 >> 64) + (p01 & MASK) + (p10 & MASK);
        let lo = (p00 & MASK) | (mid << 64);
        let hi = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
        U256 { hi, lo }
    }

    /// Quotient and remainder by `d`, which must be nonzero and below 2^127. `None` when
    /// the quotient needs more than 128 bits or `d` is out of that range.
    fn div_rem(self, d: u128) -> Option<(u128, u128)> {
        if d == 0 || d >> 127 != 0 {
            return None;
        }
        if self.hi >= d {
            return None;
        }
        // Schoolbook binary long division over the low 128 bits; the remainder starts as
        // the high half, which is below d.
        let mut rem = self.hi;
        let mut quotient: u128 = 0;
        for bit in (0..128).rev() {
            // rem < d < 2^127, so the shift cannot overflow.
            rem = (rem << 1) | ((self.lo >> bit) & 1);
            quotient <<= 1;
            if rem >= d {
                rem -= d;
                quotient |= 1;
            }
        }
        Some((quotient, rem))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_product_and_division_agree_with_small_cases() {
        let p = U256::mul(u128::MAX, u128::MAX);
        // (2^128 − 1)^2 = 2^256 − 2^129 + 1
        assert_eq!(p.lo, 1);
        assert_eq!(p.hi, u128::MAX - 1);
        let p = U256::mul(10u128.pow(30), 10u128.pow(30));
        let (q, r) = p.div_rem(10u128.pow(25)).unwrap();
        assert_eq!((q, r), (10u128.pow(35), 0));
    }

    #[test]
    fn mul_div_rem_is_exact_past_128_bits() {
        // Expected values computed with arbitrary-precision integers.
        assert_eq!(
            mul_div_rem(i128::MAX, 3, 7),
            Some((72_917_650_054_486_813_599_294_558_735_378_902_454, 3))
        );
        let (a, b, d) = ((1i128 << 100) + 12_345, (1i128 << 90) + 777, (1i128 << 70) + 99);
        assert_eq!(
            mul_div_rem(a, b, d),
            Some((
                1_329_227_995_784_915_872_792_343_816_744_992_768,
                11_034_861_110_009_421_057
            ))
        );
        assert_eq!(mul_div_rem(17, 5, 4), Some((21, 1)));
        // The quotient does not fit; out of domain.
        assert_eq!(mul_div_rem(i128::MAX, i128::MAX, 3), None);
        assert_eq!(mul_div_rem(-1, 5, 4), None);
        assert_eq!(mul_div_rem(1, 5, 0), None);
    }

    #[test]
    fn mul_div_wide_path_rounds_like_the_narrow_one() {
        // 10^30 · 3 / 7 through the narrow path and 10^30 · 3·10^10 / 7·10^10 through the wide one.
        for rounding in Rounding::ALL {
            let narrow = mul_div(10i128.pow(30), 3, 7, rounding);
            let wide = mul_div(10i128.pow(30), 3 * 10i128.pow(10), 7 * 10i128.pow(10), rounding);
            assert_eq!(narrow, wide, "{rounding:?}");
            let narrow = mul_div(-(10i128.pow(30)), 3, 7, rounding);
            let wide = mul_div(-(10i128.pow(30)), 3 * 10i128.pow(10), 7 * 10i128.pow(10), rounding);
            assert_eq!(narrow, wide, "{rounding:?}");
        }
    }

    #[test]
    fn the_most_negative_mantissa_is_an_error_not_a_panic() {
        assert!(from_mantissa(i128::MIN, 0).is_err());
        assert!(from_mantissa(i128::MIN, 40).is_err());
        assert!(from_mantissa(i128::MAX, 0).is_err());
    }

    #[test]
    fn parse_keeps_scientific_digits_exactly() {
        let d = parse_scientific("2.9999900000000002e-06").unwrap();
        assert_eq!(d.to_string(), "0.0000029999900000000002");
        assert_eq!(parse_scientific("1E+3").unwrap().to_string(), "1000");
        assert_eq!(parse_scientific("1.5e2").unwrap().to_string(), "150");
        assert!(parse_plain("1e3").is_err());
    }

    #[test]
    fn mul_needing_more_than_127_bits_is_exact_or_an_error() {
        // 5^40 · 2^40 = 10^40, scaled down by 10^12 → 10^28 exactly.
        let a = Decimal::from_i128_with_scale(5i128.pow(40), 12);
        let b = Decimal::from_i128_with_scale(2i128.pow(40), 0);
        assert_eq!(
            checked_mul(a, b).unwrap(),
            Decimal::from_i128_with_scale(10i128.pow(28), 0)
        );
        let big = Decimal::MAX;
        assert!(checked_mul(big, big).is_err());
    }
}
