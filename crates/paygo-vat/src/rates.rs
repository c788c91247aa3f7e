//! VAT rates of the 27 EU member states with the dates they were in force, from the
//! crate's own table (`data/rates.tsv`, compiled in and parsed once).

use std::fmt;
use std::sync::OnceLock;

use chrono::NaiveDate;
use paygo_credits::{Decimal, Money, Rounding, decimal};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Country, VatError};

/// The rate table, as written in the crate (facts: rates and dates).
const TABLE_TSV: &str = include_str!("../data/rates.tsv");

/// A VAT rate in percent, exact: `19`, `25.5`, `0`.
///
/// Between 0 and 100 inclusive, at most 4 decimal places. Serializes as a string of the
/// percent (`"25.5"`), never a float.
///
/// ```
/// use paygo_vat::VatRate;
/// use paygo_credits::{Money, Rounding, Currency};
///
/// let rate: VatRate = "19".parse()?;
/// let vat = rate.vat_on(&Money::parse("19.99", Currency::EUR)?, Rounding::HalfUp)?;
/// assert_eq!(vat.to_string(), "3.80 EUR");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VatRate(Decimal);

impl VatRate {
    /// Zero percent (reverse charge, out of scope).
    pub const ZERO: VatRate = VatRate(Decimal::ZERO);

    /// A rate of `percent` percent.
    ///
    /// # Errors
    ///
    /// [`VatError::InvalidRate`] for a rate below 0, above 100 or with more than 4 decimal
    /// places.
    pub fn new(percent: Decimal) -> Result<VatRate, VatError> {
        let percent = percent.normalize();
        if percent.is_sign_negative() && !percent.is_zero() || percent > Decimal::ONE_HUNDRED || percent.scale() > 4 {
            return Err(VatError::InvalidRate {
                value: percent.to_string(),
            });
        }
        Ok(VatRate(percent))
    }

    /// The rate in percent: `19` for 19 %.
    pub const fn percent(&self) -> Decimal {
        self.0
    }

    /// The rate as a fraction: `0.19` for 19 %. Exact.
    pub fn fraction(&self) -> Decimal {
        // At most 4 decimal places and at most 100, so two more places always fit.
        decimal::checked_div_pow10(self.0, 2).unwrap_or(Decimal::ZERO)
    }

    /// The VAT on a net amount, rounded to the currency's minor unit with the named rounding.
    ///
    /// # Errors
    ///
    /// [`VatError::Money`] when the amount's currency has no minor unit or the product
    /// overflows.
    ///
    /// # Properties
    ///
    /// - `vat_on(net, Down) <= net * rate <= vat_on(net, Up)`;
    /// - a zero rate gives zero.
    pub fn vat_on(&self, net: &Money, rounding: Rounding) -> Result<Money, VatError> {
        Ok(net.checked_mul(self.fraction())?.round(rounding)?)
    }
}

impl std::str::FromStr for VatRate {
    type Err = VatError;

    /// Parses a plain decimal percent (`"19"`, `"25.5"`).
    ///
    /// # Errors
    ///
    /// [`VatError::Money`] for text that is not a plain decimal; [`VatError::InvalidRate`]
    /// as [`VatRate::new`].
    fn from_str(text: &str) -> Result<VatRate, VatError> {
        VatRate::new(decimal::parse_plain(text)?)
    }
}

impl fmt::Debug for VatRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VatRate({}%)", self.0)
    }
}

impl fmt::Display for VatRate {
    /// `19%`, `25.5%`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

impl Serialize for VatRate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for VatRate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The rates of one country over one period of time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RatePeriod {
    country: Country,
    from: NaiveDate,
    to: Option<NaiveDate>,
    standard: VatRate,
    reduced: Vec<VatRate>,
    super_reduced: Option<VatRate>,
    parking: Option<VatRate>,
}

impl RatePeriod {
    /// The country.
    pub const fn country(&self) -> Country {
        self.country
    }

    /// The first day of the period (for a country's first period, the table's start,
    /// 2016-01-01, even if the rates were in force before).
    pub const fn from(&self) -> NaiveDate {
        self.from
    }

    /// The last day of the period, inclusive; `None` while it is in force.
    pub const fn to(&self) -> Option<NaiveDate> {
        self.to
    }

    /// The standard rate.
    pub const fn standard(&self) -> VatRate {
        self.standard
    }

    /// The reduced rates, ascending (may be empty).
    pub fn reduced(&self) -> &[VatRate] {
        &self.reduced
    }

    /// The super-reduced rate (below 5 %), if the country has one.
    pub const fn super_reduced(&self) -> Option<VatRate> {
        self.super_reduced
    }

    /// The parking rate, if the country has one.
    pub const fn parking(&self) -> Option<VatRate> {
        self.parking
    }

    /// Whether `date` falls in the period.
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.from <= date && self.to.is_none_or(|to| date <= to)
    }
}

/// The first date the rate table covers: 2016-01-01.
pub fn rates_start() -> NaiveDate {
    // 2016-01-01 is a valid date: the fallback is never taken.
    NaiveDate::from_ymd_opt(2016, 1, 1).unwrap_or(NaiveDate::MIN)
}

type Table = Vec<Vec<RatePeriod>>;

fn table() -> Result<&'static Table, VatError> {
    static TABLE: OnceLock<Result<Table, VatError>> = OnceLock::new();
    TABLE
        .get_or_init(|| parse_table(TABLE_TSV))
        .as_ref()
        .map_err(Clone::clone)
}

fn parse_table(text: &str) -> Result<Table, VatError> {
    let mut table: Table = vec![Vec::new(); 27];
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let fail = |reason: &'static str| VatError::RateTable { line: line_no, reason };
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let &[code, from, standard, reduced, super_reduced, parking] = fields.as_slice() else {
            return Err(fail("expected 6 tab-separated fields"));
        };
        let country = code
            .parse()
            .ok()
            .and_then(Country::from_code)
            .filter(|c| c.is_eu())
            .ok_or(fail("expected the VAT prefix of an EU member state"))?;
        let from = NaiveDate::parse_from_str(from, "%Y-%m-%d").map_err(|_| fail("expected a date YYYY-MM-DD"))?;
        let rate = |text: &str| text.parse::<VatRate>().map_err(|_| fail("expected a rate in percent"));
        let optional = |text: &str| if text == "-" { Ok(None) } else { rate(text).map(Some) };
        let reduced = if reduced == "-" {
            Vec::new()
        } else {
            reduced.split(',').map(rate).collect::<Result<Vec<_>, _>>()?
        };
        let periods = &mut table[country as usize];
        if let Some(last) = periods.last_mut() {
            if last.from >= from {
                return Err(fail("rows of a country must be in date order"));
            }
            last.to = from.pred_opt();
        } else if from != rates_start() {
            return Err(fail("a country's first row must start on 2016-01-01"));
        }
        periods.push(RatePeriod {
            country,
            from,
            to: None,
            standard: rate(standard)?,
            reduced,
            super_reduced: optional(super_reduced)?,
            parking: optional(parking)?,
        });
    }
    if table.iter().any(Vec::is_empty) {
        return Err(VatError::RateTable {
            line: text.lines().count(),
            reason: "every EU member state needs at least one row",
        });
    }
    Ok(table)
}

/// Every rate period of an EU member state, oldest first.
///
/// # Errors
///
/// [`VatError::NoRates`] for a country outside the EU; [`VatError::RateTable`] if the
/// compiled-in table is malformed (a build defect that the crate's tests catch).
pub fn rate_periods(country: Country) -> Result<&'static [RatePeriod], VatError> {
    if !country.is_eu() {
        return Err(VatError::NoRates { country });
    }
    table()?
        .get(country as usize)
        .map(Vec::as_slice)
        .ok_or(VatError::NoRates { country })
}

/// The rates of an EU member state in force on `date`.
///
/// # Errors
///
/// [`VatError::NoRates`] for a country outside the EU; [`VatError::DateBeforeRates`] for a
/// date before 2016-01-01; [`VatError::RateTable`] as [`rate_periods`].
///
/// # Example
///
/// ```
/// use chrono::NaiveDate;
/// use paygo_vat::{rates_on, Country};
///
/// let day = "2020-07-01".parse::<NaiveDate>()?;
/// assert_eq!(rates_on(Country::Germany, day)?.standard().to_string(), "16%");
/// assert!(rates_on(Country::Germany, "2015-12-31".parse()?).is_err()); // before the table
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn rates_on(country: Country, date: NaiveDate) -> Result<&'static RatePeriod, VatError> {
    let periods = rate_periods(country)?;
    let index = periods.partition_point(|p| p.from <= date);
    match index.checked_sub(1).and_then(|i| periods.get(i)) {
        Some(period) => Ok(period),
        None => Err(VatError::DateBeforeRates {
            country,
            date,
            first: rates_start(),
        }),
    }
}

/// The standard rate of an EU member state on `date`.
///
/// # Errors
///
/// As [`rates_on`].
pub fn standard_rate(country: Country, date: NaiveDate) -> Result<VatRate, VatError> {
    rates_on(country, date).map(RatePeriod::standard)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(text: &str) -> Option<&'static str> {
        match parse_table(text) {
            Err(VatError::RateTable { reason, .. }) => Some(reason),
            _ => None,
        }
    }

    #[test]
    fn the_error_names_the_line() {
        let text = "# comment\n\nDE\t2016-01-01\t19\t7\t-\t-\nDE\t2016-01-01\t16\t5\t-\t-";
        assert_eq!(
            parse_table(text).map(|_| ()),
            Err(VatError::RateTable {
                line: 4,
                reason: "rows of a country must be in date order"
            })
        );
    }

    #[test]
    fn the_compiled_in_table_parses() {
        assert!(parse_table(TABLE_TSV).is_ok());
    }

    #[test]
    fn malformed_tables_are_reported_with_their_line() {
        assert_eq!(reason("DE\t2016-01-01\t19"), Some("expected 6 tab-separated fields"));
        assert_eq!(
            reason("GB\t2016-01-01\t20\t5\t-\t-"),
            Some("expected the VAT prefix of an EU member state")
        );
        assert_eq!(
            reason("DE\t2016-13-01\t19\t7\t-\t-"),
            Some("expected a date YYYY-MM-DD")
        );
        assert_eq!(
            reason("DE\t2016-01-01\t19%\t7\t-\t-"),
            Some("expected a rate in percent")
        );
        assert_eq!(
            reason("DE\t2017-01-01\t19\t7\t-\t-"),
            Some("a country's first row must start on 2016-01-01")
        );
        assert_eq!(
            reason("DE\t2016-01-01\t19\t7\t-\t-\nDE\t2016-01-01\t16\t5\t-\t-"),
            Some("rows of a country must be in date order")
        );
        assert_eq!(
            reason("DE\t2016-01-01\t19\t7\t-\t-"),
            Some("every EU member state needs at least one row")
        );
    }
}
