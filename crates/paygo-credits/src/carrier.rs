//! Charging whole credits while carrying the exact sub-credit remainder.

use std::collections::HashMap;
use std::hash::Hash;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{Credits, CreditsError, ExactCredits, Rounding};

/// Charges whole credits for exact, fractional costs and carries the difference to the
/// next charge of the same account.
///
/// The policy (see `docs/DESIGN.md`): each charge is `round_half_even(remainder + cost)`
/// and the new remainder is what that rounding left out. The remainder therefore always
/// lies in `[-½, ½]` credit, so after any sequence of charges the total charged differs
/// from the exact total by at most half a credit — and its sign follows the data, with
/// ties broken to even, so neither the customer nor the provider is favoured on average.
/// A cost of `c ≥ 0` is never charged as a negative amount, and each charge is within
/// one credit of its own exact cost: a hold must allow `ceil(cost) + 1` credits.
///
/// One carrier belongs to one account; persist it (it serializes as its remainder) next
/// to the account's balance. [`AccountCarriers`] keeps one per key.
///
/// # Example
///
/// ```
/// use paygo_credits::{ExactCredits, RemainderCarrier};
///
/// let mut carrier = RemainderCarrier::new();
/// let cost: ExactCredits = "0.3".parse()?;            // 0.3 credits a call
/// let charged: Vec<i64> = (0..10)
///     .map(|_| carrier.charge(cost).map(|c| c.get()))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(charged, [0, 1, 0, 0, 0, 1, 0, 0, 1, 0]);  // 0.3 · 10 = 3 exactly
/// assert_eq!(charged.iter().sum::<i64>(), 3);
/// assert!(carrier.remainder().get().is_zero());
/// # Ok::<(), paygo_credits::CreditsError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "ExactCredits", into = "ExactCredits")]
pub struct RemainderCarrier {
    remainder: ExactCredits,
}

impl RemainderCarrier {
    /// The most a charge can be above its own cost: one credit (the remainder carried in
    /// from earlier charges is at most half a credit, and rounding adds at most half).
    /// A hold sized for a cost needs this much more.
    pub const CHARGE_ABOVE_COST_MAX: Credits = Credits::new(1);

    /// A carrier with nothing carried.
    pub const fn new() -> RemainderCarrier {
        RemainderCarrier {
            remainder: ExactCredits::ZERO,
        }
    }

    /// A carrier resumed from a persisted remainder.
    ///
    /// # Errors
    ///
    /// [`CreditsError::RemainderOutOfRange`] when the remainder is outside `[-½, ½]`,
    /// which no carrier produces.
    pub fn from_remainder(remainder: ExactCredits) -> Result<RemainderCarrier, CreditsError> {
        let half = Decimal::new(5, 1);
        if remainder.get().abs() > half {
            return Err(CreditsError::RemainderOutOfRange {
                value: remainder.to_string(),
            });
        }
        Ok(RemainderCarrier { remainder })
    }

    /// What has been charged minus what was owed exactly, so far, negated: the exact
    /// credits owed but not yet charged (negative when more was charged).
    pub const fn remainder(&self) -> ExactCredits {
        self.remainder
    }

    /// The whole credits to charge for an exact cost, carrying the rest. On error the
    /// carrier is left unchanged.
    ///
    /// # Errors
    ///
    /// [`CreditsError::Overflow`] when the cost does not fit [`Credits`].
    ///
    /// # Properties
    ///
    /// - after any sequence of charges, `Σ charged + remainder == Σ cost` exactly, and
    ///   `|remainder| <= ½`, so `|Σ charged − Σ cost| <= ½` credit;
    /// - each charge is within one credit of its cost, and is never negative for a
    ///   non-negative cost.
    pub fn charge(&mut self, cost: ExactCredits) -> Result<Credits, CreditsError> {
        let total = self.remainder.checked_add(cost)?;
        let (whole, rest) = total.split(Rounding::HalfEven)?;
        self.remainder = rest;
        Ok(whole)
    }
}

impl From<RemainderCarrier> for ExactCredits {
    fn from(carrier: RemainderCarrier) -> ExactCredits {
        carrier.remainder
    }
}

impl TryFrom<ExactCredits> for RemainderCarrier {
    type Error = CreditsError;

    fn try_from(remainder: ExactCredits) -> Result<RemainderCarrier, CreditsError> {
        RemainderCarrier::from_remainder(remainder)
    }
}

/// One [`RemainderCarrier`] per account key.
///
/// # Example
///
/// ```
/// use paygo_credits::{AccountCarriers, ExactCredits};
///
/// let mut carriers = AccountCarriers::new();
/// let cost: ExactCredits = "0.5".parse()?;
/// assert_eq!(carriers.charge(&"acct-1", cost)?.get(), 0); // ½ → 0 (ties to even)
/// assert_eq!(carriers.charge(&"acct-2", cost)?.get(), 0); // a separate remainder
/// assert_eq!(carriers.charge(&"acct-1", cost)?.get(), 1); // 1 → 1
/// # Ok::<(), paygo_credits::CreditsError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct AccountCarriers<K> {
    carriers: HashMap<K, RemainderCarrier>,
}

impl<K: Hash + Eq + Clone> AccountCarriers<K> {
    /// No accounts yet.
    pub fn new() -> AccountCarriers<K> {
        AccountCarriers {
            carriers: HashMap::new(),
        }
    }

    /// Charges `cost` to `account` (see [`RemainderCarrier::charge`]).
    ///
    /// # Errors
    ///
    /// As [`RemainderCarrier::charge`]; the account's remainder is unchanged on error.
    pub fn charge(&mut self, account: &K, cost: ExactCredits) -> Result<Credits, CreditsError> {
        if let Some(carrier) = self.carriers.get_mut(account) {
            return carrier.charge(cost);
        }
        let mut carrier = RemainderCarrier::new();
        let whole = carrier.charge(cost)?;
        self.carriers.insert(account.clone(), carrier);
        Ok(whole)
    }

    /// The account's carrier, if it has been charged.
    pub fn get(&self, account: &K) -> Option<&RemainderCarrier> {
        self.carriers.get(account)
    }

    /// Every account with its carrier, to persist them.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &RemainderCarrier)> {
        self.carriers.iter()
    }
}
