//! The rate at which money buys credits, and exchange rates between currencies.

use chrono::NaiveDate;
use iso_currency::Currency;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::decimal::{self, pow10};
use crate::money::{expect_currency, minor_exponent, parse_currency};
use crate::{Credits, CreditsError, ExactCredits, Money, Rounding};

/// The most decimal places a credit rate may have.
pub const CREDIT_RATE_MAX_SCALE: u32 = 6;

/// The most decimal places an exchange rate may have (central banks publish 4 to 6).
pub const FX_RATE_MAX_SCALE: u32 = 10;

/// How many credits one unit of a currency buys.
///
/// The default is the published rate: 2,000,000 credits per US dollar. Conversions go
/// both ways and each names its [`Rounding`]; nothing rounds implicitly.
///
/// # Example
///
/// ```
/// use paygo_credits::{CreditRate, Credits, Money, Rounding};
///
/// let rate = CreditRate::default();
/// let top_up = Money::usd("10.00".parse()?);
/// assert_eq!(rate.to_credits(&top_up, Rounding::Down)?, Credits::new(20_000_000));
///
/// // 1892 credits are $0.000946 exactly, and $0.01 once rounded up to a cent.
/// assert_eq!(rate.to_money_exact(Credits::new(1892))?.to_string(), "0.000946 USD");
/// assert_eq!(rate.to_money(Credits::new(1892), Rounding::Up)?.to_string(), "0.01 USD");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CreditRate {
    currency: Currency,
    credits_per_unit: Decimal,
}

impl Default for CreditRate {
    /// 2,000,000 credits per US dollar.
    fn default() -> CreditRate {
        CreditRate {
            currency: Currency::USD,
            credits_per_unit: Decimal::from(CreditRate::DEFAULT_CREDITS_PER_USD),
        }
    }
}

impl CreditRate {
    /// The published rate: 2,000,000 credits buy one US dollar's worth of calls.
    pub const DEFAULT_CREDITS_PER_USD: i64 = 2_000_000;

    /// A rate of `credits_per_unit` credits for one unit of `currency`.
    ///
    /// # Errors
    ///
    /// [`CreditsError::InvalidRate`] when the rate is not positive or has more than
    /// [`CREDIT_RATE_MAX_SCALE`] decimal places.
    pub fn new(currency: Currency, credits_per_unit: Decimal) -> Result<CreditRate, CreditsError> {
        let credits_per_unit = credits_per_unit.normalize();
        if credits_per_unit <= Decimal::ZERO {
            return Err(CreditsError::InvalidRate {
                value: credits_per_unit.to_string(),
                reason: "expected a positive number of credits per unit",
            });
        }
        if credits_per_unit.scale() > CREDIT_RATE_MAX_SCALE {
            return Err(CreditsError::InvalidRate {
                value: credits_per_unit.to_string(),
                reason: "expected at most 6 decimal places",
            });
        }
        Ok(CreditRate {
            currency,
            credits_per_unit,
        })
    }

    /// The currency credits are bought in.
    pub const fn currency(&self) -> Currency {
        self.currency
    }

    /// Credits per unit of the currency.
    pub const fn credits_per_unit(&self) -> Decimal {
        self.credits_per_unit
    }

    /// Whole credits for an amount of money, by a named rounding (a top-up usually rounds
    /// `Down`, so that no credit is given that was not paid for).
    ///
    /// # Errors
    ///
    /// [`CreditsError::CurrencyMismatch`] for money in another currency;
    /// [`CreditsError::Overflow`] when the credits are outside the range of [`Credits`].
    ///
    /// # Properties
    ///
    /// - `to_credits(m, Down) <= m · rate <= to_credits(m, Up)`, at most one credit apart;
    /// - monotone in `m` for every rounding;
    /// - `to_money(to_credits(m, r), r')` is within one rounding step of `m`.
    pub fn to_credits(&self, money: &Money, rounding: Rounding) -> Result<Credits, CreditsError> {
        const OP: &str = "converting money to credits";
        self.check_currency(money)?;
        let amount = money.amount();
        let divisor =
            pow10(amount.scale() + self.credits_per_unit.scale()).ok_or(CreditsError::Overflow { operation: OP })?;
        let credits = decimal::mul_div(amount.mantissa(), self.credits_per_unit.mantissa(), divisor, rounding)
            .ok_or(CreditsError::Overflow { operation: OP })?;
        i64::try_from(credits)
            .map(Credits::new)
            .map_err(|_| CreditsError::Overflow { operation: OP })
    }

    /// Exact, possibly fractional, credits for an amount (a per-token price in credits).
    ///
    /// # Errors
    ///
    /// [`CreditsError::CurrencyMismatch`] for money in another currency;
    /// [`CreditsError::Overflow`] when the exact product does not fit a `Decimal`.
    ///
    /// # Properties
    ///
    /// - `to_exact_credits(m).to_credits(r) == to_credits(m, r)` for every rounding.
    pub fn to_exact_credits(&self, money: &Money) -> Result<ExactCredits, CreditsError> {
        self.check_currency(money)?;
        decimal::checked_mul(money.amount(), self.credits_per_unit).map(ExactCredits::new)
    }

    /// Money for whole credits, rounded to the currency's minor unit by a named rounding.
    ///
    /// # Errors
    ///
    /// [`CreditsError::NoMinorUnit`] for a currency without one; [`CreditsError::Overflow`]
    /// when the amount does not fit.
    ///
    /// # Properties
    ///
    /// - `to_money(c, Down) <= c / rate <= to_money(c, Up)`, at most one minor unit apart;
    /// - monotone in `c`.
    pub fn to_money(&self, credits: Credits, rounding: Rounding) -> Result<Money, CreditsError> {
        let exponent = u32::from(minor_exponent(self.currency)?);
        self.to_money_dp(credits, exponent, rounding)
    }

    /// Money for whole credits, rounded to `dp` decimal places (finer than the minor unit,
    /// as the API's `usd_spent` is).
    ///
    /// # Errors
    ///
    /// [`CreditsError::Overflow`] when `dp` is above 28 or the amount does not fit.
    pub fn to_money_dp(&self, credits: Credits, dp: u32, rounding: Rounding) -> Result<Money, CreditsError> {
        const OP: &str = "converting credits to money";
        if dp > decimal::MAX_SCALE {
            return Err(CreditsError::Overflow { operation: OP });
        }
        // credits / (m / 10^s) rounded to dp places = round(credits · 10^(s+dp) / m) / 10^dp
        let scale_up = pow10(self.credits_per_unit.scale() + dp).ok_or(CreditsError::Overflow { operation: OP })?;
        let Some(units) = decimal::mul_div(
            i128::from(credits.get()),
            scale_up,
            self.credits_per_unit.mantissa(),
            rounding,
        ) else {
            // Too many digits at `dp` places, unless the value is exact with fewer (then
            // rounding changes nothing): $2·10^11 to 28 places is still $2·10^11.
            return match self.to_money_exact(credits) {
                Ok(exact) if exact.amount().scale() <= dp => Ok(exact),
                _ => Err(CreditsError::Overflow { operation: OP }),
            };
        };
        decimal::from_parts(units, dp, OP).map(|a| Money::new(a, self.currency))
    }

    /// The exact money value of whole credits: 1892 credits are $0.000946 at the default
    /// rate, which divides every credit count exactly.
    ///
    /// # Errors
    ///
    /// [`CreditsError::Inexact`] when the value has no exact decimal form in 28 places
    /// (possible at a rate such as 3 credits per unit; name a rounding with
    /// [`CreditRate::to_money_dp`] then).
    ///
    /// # Properties
    ///
    /// - `to_credits(to_money_exact(c)?, r) == c` for every rounding.
    pub fn to_money_exact(&self, credits: Credits) -> Result<Money, CreditsError> {
        const OP: &str = "converting credits to money";
        let inexact = || CreditsError::Inexact {
            what: format!(
                "{credits} credits at {} per {}",
                self.credits_per_unit,
                self.currency.code()
            ),
        };
        // credits / (m / 10^s) = credits·10^s / m. Reduce the fraction; it has a finite
        // decimal form exactly when the reduced denominator is 2^a·5^b, and then needs
        // max(a, b) decimal places.
        let numerator = i128::from(credits.get())
            .checked_mul(pow10(self.credits_per_unit.scale()).ok_or(CreditsError::Overflow { operation: OP })?)
            .ok_or(CreditsError::Overflow { operation: OP })?;
        let mantissa = self.credits_per_unit.mantissa();
        let divisor = gcd(numerator.unsigned_abs(), mantissa.unsigned_abs());
        let mut denominator = mantissa.unsigned_abs() / divisor;
        let (mut twos, mut fives) = (0u32, 0u32);
        while denominator.is_multiple_of(2) {
            denominator /= 2;
            twos += 1;
        }
        while denominator.is_multiple_of(5) {
            denominator /= 5;
            fives += 1;
        }
        let dp = twos.max(fives);
        if denominator != 1 || dp > decimal::MAX_SCALE {
            return Err(inexact());
        }
        // Exact: the division below has no remainder, so any rounding gives the value.
        self.to_money_dp(credits, dp, Rounding::TowardZero)
    }

    fn check_currency(&self, money: &Money) -> Result<(), CreditsError> {
        expect_currency(self.currency, money)
    }
}

/// Greatest common divisor (binary algorithm); `gcd(0, n) == n`.
fn gcd(mut a: u128, mut b: u128) -> u128 {
    if a == 0 {
        return b;
    }
    if b == 0 {
        return a;
    }
    let shift = (a | b).trailing_zeros();
    a >>= a.trailing_zeros();
    loop {
        b >>= b.trailing_zeros();
        if a > b {
            std::mem::swap(&mut a, &mut b);
        }
        b -= a;
        if b == 0 {
            return a << shift;
        }
    }
}

/// Wire form shared by the two rate types' serde impls.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreditRateWire {
    currency: String,
    credits_per_unit: String,
}

impl Serialize for CreditRate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        CreditRateWire {
            currency: self.currency.code().to_owned(),
            credits_per_unit: self.credits_per_unit.to_string(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CreditRate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = CreditRateWire::deserialize(deserializer)?;
        let currency = parse_currency(&wire.currency).map_err(serde::de::Error::custom)?;
        let rate = decimal::parse(&wire.credits_per_unit, "credit rate", false).map_err(serde::de::Error::custom)?;
        CreditRate::new(currency, rate).map_err(serde::de::Error::custom)
    }
}

/// An exchange rate: one unit of `from` is worth `rate` units of `to`, as published on
/// `date` (for example the ECB reference rate used to show VAT in a national currency).
///
/// # Example
///
/// ```
/// use paygo_credits::{FxRate, Money, Rounding};
/// use iso_currency::Currency;
/// use chrono::NaiveDate;
///
/// let date = NaiveDate::from_ymd_opt(2026, 11, 24).ok_or("bad date")?;
/// let usd_pln = FxRate::new(Currency::USD, Currency::PLN, "3.6512".parse()?, date)?;
/// let vat = Money::parse("23.00", Currency::USD)?;
/// assert_eq!(usd_pln.convert(&vat, Rounding::HalfUp)?.to_string(), "83.98 PLN");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "FxRateWire", into = "FxRateWire")]
pub struct FxRate {
    from: Currency,
    to: Currency,
    rate: Decimal,
    date: NaiveDate,
}

impl FxRate {
    /// A rate of `rate` units of `to` per unit of `from`, published on `date`.
    ///
    /// # Errors
    ///
    /// [`CreditsError::InvalidRate`] when the rate is not positive, has more than
    /// [`FX_RATE_MAX_SCALE`] decimal places, or converts a currency to itself at a rate
    /// other than 1.
    pub fn new(from: Currency, to: Currency, rate: Decimal, date: NaiveDate) -> Result<FxRate, CreditsError> {
        let rate = rate.normalize();
        let reason = if rate <= Decimal::ZERO {
            Some("expected a positive exchange rate")
        } else if rate.scale() > FX_RATE_MAX_SCALE {
            Some("expected at most 10 decimal places")
        } else if from == to && rate != Decimal::ONE {
            Some("a currency converts to itself at 1")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(CreditsError::InvalidRate {
                value: rate.to_string(),
                reason,
            }),
            None => Ok(FxRate { from, to, rate, date }),
        }
    }

    /// The currency converted from.
    pub const fn from(&self) -> Currency {
        self.from
    }

    /// The currency converted to.
    pub const fn to(&self) -> Currency {
        self.to
    }

    /// Units of `to` per unit of `from`.
    pub const fn rate(&self) -> Decimal {
        self.rate
    }

    /// The date the rate was published for.
    pub const fn date(&self) -> NaiveDate {
        self.date
    }

    /// Converts money in `from` into `to`, rounded to `to`'s minor unit by a named rounding.
    ///
    /// # Errors
    ///
    /// [`CreditsError::CurrencyMismatch`] for money not in `from`;
    /// [`CreditsError::NoMinorUnit`] when `to` has none; [`CreditsError::Overflow`] when
    /// the result does not fit.
    ///
    /// # Properties
    ///
    /// - `convert(m, Down) <= m · rate <= convert(m, Up)`, at most one minor unit apart;
    /// - monotone in `m`.
    pub fn convert(&self, money: &Money, rounding: Rounding) -> Result<Money, CreditsError> {
        const OP: &str = "currency conversion";
        expect_currency(self.from, money)?;
        let exponent = u32::from(minor_exponent(self.to)?);
        let amount = money.amount();
        let scale = amount.scale() + self.rate.scale();
        let units = if scale >= exponent {
            let divisor = pow10(scale - exponent).ok_or(CreditsError::Overflow { operation: OP })?;
            decimal::mul_div(amount.mantissa(), self.rate.mantissa(), divisor, rounding)
        } else {
            let factor = pow10(exponent - scale).ok_or(CreditsError::Overflow { operation: OP })?;
            amount
                .mantissa()
                .checked_mul(self.rate.mantissa())
                .and_then(|p| p.checked_mul(factor))
        }
        .ok_or(CreditsError::Overflow { operation: OP })?;
        decimal::from_parts(units, exponent, OP).map(|a| Money::new(a, self.to))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FxRateWire {
    from: String,
    to: String,
    rate: String,
    date: NaiveDate,
}

impl From<FxRate> for FxRateWire {
    fn from(fx: FxRate) -> FxRateWire {
        FxRateWire {
            from: fx.from.code().to_owned(),
            to: fx.to.code().to_owned(),
            rate: fx.rate.to_string(),
            date: fx.date,
        }
    }
}

impl TryFrom<FxRateWire> for FxRate {
    type Error = CreditsError;

    fn try_from(wire: FxRateWire) -> Result<FxRate, CreditsError> {
        let rate = decimal::parse(&wire.rate, "exchange rate", false)?;
        FxRate::new(parse_currency(&wire.from)?, parse_currency(&wire.to)?, rate, wire.date)
    }
}
