//! How amounts, times, plans and names are written on the portal's pages (exactly: no
//! rounding that a page does not say).

use chrono::{DateTime, NaiveDate, Utc};
use paygo_billing::{PaymentMethod, TopUpAmount};
use paygo_credits::{Credits, Currency, Money};
use paygo_ratelimit::Plan;
use rust_decimal::Decimal;

use super::PortalError;

/// Credits with thousands separators.
pub(super) fn credits_text(credits: Credits) -> String {
    let n = credits.get();
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An exact USD amount: at least two decimals, every further one the amount has.
pub(super) fn usd_text(amount: Decimal) -> String {
    let mut a = amount.normalize();
    if a.scale() < 2 {
        a.rescale(2);
    }
    if a.is_sign_negative() {
        format!("-${}", a.abs())
    } else {
        format!("${a}")
    }
}

pub(super) fn money_text(money: &Money) -> String {
    if money.currency() == Currency::USD {
        usd_text(money.amount())
    } else {
        format!("{} {}", money.amount(), money.currency())
    }
}

pub(super) fn date_of(ns: u64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp_nanos(i64::try_from(ns).unwrap_or(i64::MAX)).date_naive()
}

pub(super) fn time_text(ns: u64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(i64::try_from(ns).unwrap_or(i64::MAX))
        .format("%Y-%m-%d %H:%M UTC")
        .to_string()
}

pub(super) fn day_start_ns(day: NaiveDate) -> u64 {
    day.and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_utc().timestamp_nanos_opt())
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0)
}

/// A plan's limits in words.
pub(super) fn plan_text(plan: &Plan) -> Vec<String> {
    plan.policies
        .iter()
        .map(|p| {
            let q = &p.quota;
            let period = match q.period_ns() {
                3_600_000_000_000 => "an hour".to_owned(),
                60_000_000_000 => "a minute".to_owned(),
                1_000_000_000 => "a second".to_owned(),
                86_400_000_000_000 => "a day".to_owned(),
                ns => format!("per {} s", ns / 1_000_000_000),
            };
            let unit = format!("{:?}", p.unit).to_lowercase();
            format!(
                "{} {unit} {period}, up to {} at once",
                credits_text(Credits::new(i64::try_from(q.limit()).unwrap_or(i64::MAX))),
                q.burst()
            )
        })
        .collect()
}

/// `n` and a noun, plural unless one.
pub(super) fn count_text(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A document number as a file name: letters, digits and `-`, anything else `_`.
pub(super) fn file_name(number: &str) -> String {
    number
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect()
}

pub(super) fn method_code(method: PaymentMethod) -> &'static str {
    match method {
        PaymentMethod::PayPal => "paypal",
        PaymentMethod::Crypto => "crypto",
        _ => "card",
    }
}

pub(super) fn method_text(method: PaymentMethod) -> &'static str {
    match method {
        PaymentMethod::PayPal => "PayPal account",
        PaymentMethod::Crypto => "crypto wallet",
        _ => "card",
    }
}

pub(super) fn amount_text(
    amount: &TopUpAmount,
    usd: &impl Fn(Credits) -> Result<String, PortalError>,
) -> Result<String, PortalError> {
    Ok(match amount {
        TopUpAmount::Fixed(m) => money_text(m),
        TopUpAmount::TargetBalance(c) => format!("enough to bring it to {}", usd(*c)?),
    })
}
