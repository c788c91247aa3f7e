//! Exact amounts of money in an ISO 4217 currency.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use iso_currency::Currency;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::allocate::allocate_units;
use crate::decimal;
use crate::error::clip;
use crate::{CreditsError, Rounding};

/// An exact decimal amount in one currency.
///
/// Arithmetic only combines amounts of the same currency, and is exact: sums and products
/// never round; rounding to the currency's minor unit (2 decimals for USD, 0 for JPY, 3
/// for BHD) is a separate step that names its [`Rounding`].
///
/// Two amounts are equal when their currencies are and their values are, whatever the
/// number of written decimals (`10.0 USD == 10.00 USD`); amounts in different currencies
/// are not ordered. Serializes as `{"amount": "10.00", "currency": "USD"}`, the amount a
/// string so that no JSON reader turns it into a float.
///
/// # Example
///
/// ```
/// use paygo_credits::{Money, Rounding};
/// use iso_currency::Currency;
///
/// let price = Money::parse("19.99", Currency::EUR)?;
/// let vat = price.checked_mul("0.19".parse()?)?;                // 3.7981 EUR, exact
/// assert_eq!(vat.round(Rounding::HalfUp)?.to_string(), "3.80 EUR");
///
/// // Too precise for a payable amount, with an error that says so:
/// let err = Money::parse("10.001", Currency::USD).unwrap_err();
/// assert_eq!(err.to_string(), "3 decimal places given, USD allows 2");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// An exact amount, with any number of decimals (an unrounded VAT amount, a price
    /// per token).
    pub const fn new(amount: Decimal, currency: Currency) -> Money {
        Money { amount, currency }
    }

    /// An amount in US dollars, the currency credits are bought in.
    pub const fn usd(amount: Decimal) -> Money {
        Money::new(amount, Currency::USD)
    }

    /// Zero in `currency`.
    pub const fn zero(currency: Currency) -> Money {
        Money::new(Decimal::ZERO, currency)
    }

    /// An amount from a count of minor units: `from_minor(1999, EUR)` is 19.99 EUR.
    ///
    /// # Errors
    ///
    /// [`CreditsError::NoMinorUnit`] for a currency without one;
    /// [`CreditsError::Overflow`] beyond the range of `Decimal`.
    pub fn from_minor(minor_units: i128, currency: Currency) -> Result<Money, CreditsError> {
        let exponent = minor_exponent(currency)?;
        decimal::from_parts(minor_units, u32::from(exponent), "money from minor units").map(|a| Money::new(a, currency))
    }

    /// Parses a payable amount: plain decimal text with at most as many decimals as the
    /// currency's minor unit (`"10.00"` or `"10"` for USD; `"1000"` for JPY).
    ///
    /// # Errors
    ///
    /// [`CreditsError::TooManyDecimals`] ("3 decimal places given, USD allows 2"),
    /// [`CreditsError::Parse`] for text that is not a plain decimal,
    /// [`CreditsError::NoMinorUnit`] for a currency without a minor unit,
    /// [`CreditsError::Overflow`] for a number beyond `Decimal`.
    pub fn parse(text: &str, currency: Currency) -> Result<Money, CreditsError> {
        let amount = decimal::parse(text, "amount", false)?;
        let allowed = minor_exponent(currency)?;
        if amount.scale() > u32::from(allowed) {
            return Err(CreditsError::TooManyDecimals {
                given: amount.scale(),
                currency: currency.code(),
                allowed,
            });
        }
        Ok(Money::new(amount, currency))
    }

    /// The exact amount.
    pub const fn amount(&self) -> Decimal {
        self.amount
    }

    /// The currency.
    pub const fn currency(&self) -> Currency {
        self.currency
    }

    /// Whether the amount is zero.
    pub fn is_zero(&self) -> bool {
        self.amount.is_zero()
    }

    /// Whether the amount is below zero.
    pub fn is_negative(&self) -> bool {
        self.amount.is_sign_negative() && !self.amount.is_zero()
    }

    /// `self + rhs`, exactly.
    ///
    /// # Errors
    ///
    /// [`CreditsError::CurrencyMismatch`] for another currency; [`CreditsError::Overflow`]
    /// when the exact sum does not fit.
    ///
    /// # Properties
    ///
    /// - commutative; `a + b - b == a` exactly.
    pub fn checked_add(&self, rhs: &Money) -> Result<Money, CreditsError> {
        self.same_currency(rhs)?;
        decimal::checked_add(self.amount, rhs.amount).map(|a| Money::new(a, self.currency))
    }

    /// `self - rhs`, exactly.
    ///
    /// # Errors
    ///
    /// As [`Money::checked_add`].
    pub fn checked_sub(&self, rhs: &Money) -> Result<Money, CreditsError> {
        self.same_currency(rhs)?;
        decimal::checked_sub(self.amount, rhs.amount).map(|a| Money::new(a, self.currency))
    }

    /// `self * factor` (a quantity, a tax rate), exactly, in the same currency.
    ///
    /// # Errors
    ///
    /// [`CreditsError::Overflow`] when the exact product does not fit.
    pub fn checked_mul(&self, factor: Decimal) -> Result<Money, CreditsError> {
        decimal::checked_mul(self.amount, factor).map(|a| Money::new(a, self.currency))
    }

    /// `Ok` when the amount is in `expected`.
    ///
    /// # Errors
    ///
    /// [`CreditsError::CurrencyMismatch`] naming both currencies otherwise.
    pub fn expect_currency(&self, expected: Currency) -> Result<(), CreditsError> {
        expect_currency(expected, self)
    }

    /// `-self`.
    #[must_use]
    pub fn neg(&self) -> Money {
        if self.amount.is_zero() {
            // Never `-0`: zero has no sign.
            return Money::new(Decimal::new(0, self.amount.scale()), self.currency);
        }
        Money::new(-self.amount, self.currency)
    }

    /// Sums amounts of one currency exactly; an empty list sums to zero in `currency`.
    ///
    /// # Errors
    ///
    /// [`CreditsError::CurrencyMismatch`] if any amount is in another currency;
    /// [`CreditsError::Overflow`] when a partial sum does not fit.
    pub fn checked_sum<'a, I: IntoIterator<Item = &'a Money>>(
        currency: Currency,
        items: I,
    ) -> Result<Money, CreditsError> {
        items
            .into_iter()
            .try_fold(Money::zero(currency), |acc, m| acc.checked_add(m))
    }

    /// Rounds to the currency's minor unit with a named rounding.
    ///
    /// # Errors
    ///
    /// [`CreditsError::NoMinorUnit`] for a currency without one (XAU, XDR, ...).
    ///
    /// # Properties
    ///
    /// - `round(Down) <= self <= round(Up)`, at most one minor unit apart;
    /// - `HalfEven` and `HalfUp` differ only when `self` lies exactly halfway;
    /// - idempotent, and the identity on amounts that are already whole minor units.
    pub fn round(&self, rounding: Rounding) -> Result<Money, CreditsError> {
        let exponent = minor_exponent(self.currency)?;
        decimal::round(self.amount, u32::from(exponent), rounding).map(|a| Money::new(a, self.currency))
    }

    /// Rounds to `dp` decimal places (finer than the minor unit, as for a per-unit price).
    ///
    /// # Errors
    ///
    /// [`CreditsError::Overflow`] for `dp` above 28.
    pub fn round_dp(&self, dp: u32, rounding: Rounding) -> Result<Money, CreditsError> {
        decimal::round(self.amount, dp, rounding).map(|a| Money::new(a, self.currency))
    }

    /// Whether the amount is a whole number of minor units (`10.00` and `10.000` USD are;
    /// `10.005` USD is not).
    ///
    /// # Errors
    ///
    /// [`CreditsError::NoMinorUnit`] for a currency without one.
    pub fn is_rounded(&self) -> Result<bool, CreditsError> {
        Ok(self.round(Rounding::TowardZero)?.amount == self.amount)
    }

    /// The amount as a count of minor units: 19.99 EUR is 1999.
    ///
    /// # Errors
    ///
    /// [`CreditsError::NotRounded`] when the amount is not a whole number of minor units
    /// (round it first); [`CreditsError::NoMinorUnit`] for a currency without one.
    pub fn to_minor(&self) -> Result<i128, CreditsError> {
        let exponent = minor_exponent(self.currency)?;
        let normalized = self.amount.normalize();
        if normalized.scale() > u32::from(exponent) {
            return Err(CreditsError::NotRounded {
                amount: self.amount.to_string(),
                currency: self.currency.code(),
                allowed: exponent,
            });
        }
        decimal::rescale(
            normalized.mantissa(),
            normalized.scale(),
            u32::from(exponent),
            Rounding::TowardZero,
        )
        .ok_or(CreditsError::Overflow {
            operation: "money to minor units",
        })
    }

    /// Splits the amount by integer weights in whole minor units, nothing lost: the parts
    /// sum exactly to `self` (largest remainder, as [`crate::Credits::allocate`]).
    ///
    /// # Errors
    ///
    /// [`CreditsError::NotRounded`] when the amount is not whole minor units; the weight
    /// errors of [`crate::Credits::allocate`].
    ///
    /// # Properties
    ///
    /// - the parts sum exactly to `self` and are whole minor units;
    /// - zero weights get zero.
    ///
    /// # Example
    ///
    /// ```
    /// use paygo_credits::Money;
    ///
    /// let parts = Money::usd("100".parse()?).allocate(&[1u8, 1, 1])?;
    /// let shown: Vec<String> = parts.iter().map(ToString::to_string).collect();
    /// assert_eq!(shown, ["33.34 USD", "33.33 USD", "33.33 USD"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn allocate<W: Copy + Into<i128>>(&self, weights: &[W]) -> Result<Vec<Money>, CreditsError> {
        let units = self.to_minor()?;
        allocate_units(units, weights)?
            .into_iter()
            .map(|part| Money::from_minor(part, self.currency))
            .collect()
    }

    fn same_currency(&self, other: &Money) -> Result<(), CreditsError> {
        expect_currency(self.currency, other)
    }
}

/// `Ok` when `money` is in `expected`, else [`CreditsError::CurrencyMismatch`].
pub(crate) fn expect_currency(expected: Currency, money: &Money) -> Result<(), CreditsError> {
    if money.currency == expected {
        Ok(())
    } else {
        Err(CreditsError::CurrencyMismatch {
            expected: expected.code(),
            found: money.currency.code(),
        })
    }
}

/// The number of decimals of a currency's minor unit.
pub(crate) fn minor_exponent(currency: Currency) -> Result<u16, CreditsError> {
    currency.exponent().ok_or(CreditsError::NoMinorUnit {
        currency: currency.code(),
    })
}

/// Looks up an ISO 4217 code (upper case, as written on invoices).
pub(crate) fn parse_currency(code: &str) -> Result<Currency, CreditsError> {
    Currency::from_code(code).ok_or_else(|| CreditsError::UnknownCurrency { code: clip(code) })
}

impl PartialOrd for Money {
    /// Amounts of one currency compare by value; amounts of different currencies are not
    /// comparable (`None`).
    fn partial_cmp(&self, other: &Money) -> Option<Ordering> {
        (self.currency == other.currency).then(|| self.amount.cmp(&other.amount))
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({} {})", self.amount, self.currency.code())
    }
}

impl fmt::Display for Money {
    /// The amount as held, then the code: `10.00 USD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency.code())
    }
}

impl FromStr for Money {
    type Err = CreditsError;

    /// Parses `"<amount> <CODE>"` as [`Display`](fmt::Display) writes it, exactly, with any
    /// number of decimals. Use [`Money::parse`] for a payable amount.
    ///
    /// # Errors
    ///
    /// [`CreditsError::Parse`] for another shape, [`CreditsError::UnknownCurrency`] for an
    /// unknown code.
    fn from_str(text: &str) -> Result<Money, CreditsError> {
        let Some((amount, code)) = text.split_once(' ') else {
            return Err(CreditsError::Parse {
                what: "money",
                input: clip(text),
                reason: "expected an amount, one space and a currency code, such as 10.00 USD",
            });
        };
        let currency = parse_currency(code)?;
        Ok(Money::new(decimal::parse(amount, "amount", false)?, currency))
    }
}

/// The wire form: `{"amount": "10.00", "currency": "USD"}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MoneyWire<'a> {
    #[serde(borrow)]
    amount: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    currency: std::borrow::Cow<'a, str>,
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        MoneyWire {
            amount: self.amount.to_string().into(),
            currency: self.currency.code().into(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = MoneyWire::deserialize(deserializer)?;
        let currency = parse_currency(&wire.currency).map_err(serde::de::Error::custom)?;
        let amount = decimal::parse(&wire.amount, "amount", false).map_err(serde::de::Error::custom)?;
        Ok(Money::new(amount, currency))
    }
}
