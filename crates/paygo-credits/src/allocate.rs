//! Splitting an integer total by integer weights, nothing lost (largest remainder).

use crate::CreditsError;

/// The most parts one allocation may have; a bound so that a bad input cannot ask for an
/// unbounded amount of memory or time.
pub const MAX_PARTS: usize = 1_000_000;

/// Splits `total` units by `weights` (see [`crate::Credits::allocate`] for the rules).
pub(crate) fn allocate_units<W: Copy + Into<i128>>(total: i128, weights: &[W]) -> Result<Vec<i128>, CreditsError> {
    const OP: &str = "allocation";
    if weights.is_empty() {
        return Err(CreditsError::NoWeights);
    }
    if weights.len() > MAX_PARTS {
        return Err(CreditsError::Overflow { operation: OP });
    }
    let mut sum: i128 = 0;
    for (index, weight) in weights.iter().enumerate() {
        let weight: i128 = (*weight).into();
        if weight < 0 {
            return Err(CreditsError::NegativeWeight { index, weight });
        }
        sum = sum
            .checked_add(weight)
            .ok_or(CreditsError::Overflow { operation: OP })?;
    }
    if sum == 0 {
        return Err(CreditsError::ZeroTotalWeight);
    }
    let negative = total < 0;
    let magnitude = total.checked_abs().ok_or(CreditsError::Overflow { operation: OP })?;
    let mut parts = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    let mut given: i128 = 0;
    for (index, weight) in weights.iter().enumerate() {
        let weight: i128 = (*weight).into();
        // floor(magnitude · w / sum) and its remainder, in 256 bits when needed.
        let (share, rem) =
            crate::decimal::mul_div_rem(magnitude, weight, sum).ok_or(CreditsError::Overflow { operation: OP })?;
        given = given
            .checked_add(share)
            .ok_or(CreditsError::Overflow { operation: OP })?;
        parts.push(share);
        if rem > 0 {
            remainders.push((rem, index));
        }
    }
    let mut left = magnitude - given;
    // Largest remainder first; on equal remainders the earlier part wins.
    remainders.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, index) in remainders {
        if left == 0 {
            break;
        }
        parts[index] += 1;
        left -= 1;
    }
    // Σ floor shares ≥ magnitude − (#parts with a remainder), so the loop hands out all.
    debug_assert_eq!(left, 0);
    if negative {
        for part in &mut parts {
            *part = -*part;
        }
    }
    Ok(parts)
}
