//! The algebra of credit and money math, as property tests. Each property is also stated
//! in the `# Properties` section of the function it tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::str::FromStr;

use chrono::NaiveDate;
use paygo_credits::{
    CreditRate, Credits, CreditsError, Currency, Decimal, ExactCredits, FxRate, Money, RemainderCarrier, Rounding,
    decimal,
};
use proptest::prelude::*;

/// A decimal with up to 12 integer digits and up to 10 decimals, either sign.
fn any_decimal() -> impl Strategy<Value = Decimal> {
    (-999_999_999_999_999_999i64..=999_999_999_999_999_999i64, 0u32..=10)
        .prop_map(|(m, s)| Decimal::from_i128_with_scale(i128::from(m), s))
}

/// A non-negative USD amount below $10^9 with up to 8 decimals.
fn usd_amount() -> impl Strategy<Value = Money> {
    (0i64..=100_000_000_000_000_000i64, 0u32..=8)
        .prop_map(|(m, s)| Money::usd(Decimal::from_i128_with_scale(i128::from(m), s)))
}

fn any_rounding() -> impl Strategy<Value = Rounding> {
    proptest::sample::select(Rounding::ALL.to_vec())
}

/// Credit rates: the default, small and large integers, and fractional ones.
fn any_rate() -> impl Strategy<Value = CreditRate> {
    prop_oneof![
        Just(CreditRate::default()),
        (1i64..=10_000_000_000i64, 0u32..=6).prop_map(|(m, s)| {
            CreditRate::new(Currency::USD, Decimal::from_i128_with_scale(i128::from(m), s)).unwrap()
        }),
    ]
}

fn currency_with_exponent() -> impl Strategy<Value = Currency> {
    proptest::sample::select(vec![
        Currency::USD,
        Currency::EUR,
        Currency::JPY,
        Currency::BHD,
        Currency::CLF,
    ])
}

/// Failures are recorded next to this file (committed), and replayed first on every run.
/// Where failing cases are kept (committed, replayed first).
const REGRESSIONS: &str = "tests/properties.proptest-regressions";

proptest! {
    #![proptest_config(paygo_testkit::proptest_config(512, REGRESSIONS))]

    #[test]
    fn down_le_exact_le_up_for_credits(x in any_decimal()) {
        let x = ExactCredits::new(x);
        let down = x.to_credits(Rounding::Down).unwrap();
        let up = x.to_credits(Rounding::Up).unwrap();
        prop_assert!(ExactCredits::from(down) <= x && x <= ExactCredits::from(up));
        prop_assert!(up.get() - down.get() <= 1);
        for r in Rounding::ALL {
            let c = x.to_credits(r).unwrap();
            prop_assert!(c == down || c == up, "{r:?} gave {c} outside [{down}, {up}]");
        }
    }

    #[test]
    fn half_even_and_half_up_differ_only_on_ties(x in any_decimal()) {
        let x = ExactCredits::new(x);
        let even = x.to_credits(Rounding::HalfEven).unwrap();
        let up = x.to_credits(Rounding::HalfUp).unwrap();
        let frac = (x.get() - x.get().trunc()).abs();
        let tie = frac == Decimal::new(5, 1);
        if tie {
            // On a tie, half-up goes away from zero and half-even to the even neighbour.
            prop_assert!(up.get() % 2 != 0 || even == up);
            prop_assert_eq!(even.get() % 2, 0);
        } else {
            prop_assert_eq!(even, up);
        }
    }

    #[test]
    fn rounding_agrees_with_rust_decimal(x in any_decimal(), dp in 0u32..=6, r in any_rounding()) {
        let ours = decimal::round(x, dp, r).unwrap();
        let theirs = x.round_dp_with_strategy(dp, r.strategy());
        prop_assert_eq!(ours, theirs);
    }

    #[test]
    fn money_round_brackets_the_exact_amount(m in any_decimal(), c in currency_with_exponent()) {
        let money = Money::new(m, c);
        let down = money.round(Rounding::Down).unwrap();
        let up = money.round(Rounding::Up).unwrap();
        prop_assert!(down <= money && money <= up);
        prop_assert!(down.round(Rounding::HalfEven).unwrap() == down, "idempotent");
        let unit = Decimal::new(1, u32::from(c.exponent().unwrap()));
        prop_assert!(up.amount() - down.amount() <= unit);
    }

    #[test]
    fn money_to_credits_is_bracketed_and_monotone(
        a in usd_amount(), b in usd_amount(), rate in any_rate(), r in any_rounding()
    ) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let lo_c = rate.to_credits(&lo, r);
        let hi_c = rate.to_credits(&hi, r);
        if let (Ok(lo_c), Ok(hi_c)) = (lo_c, hi_c) {
            prop_assert!(lo_c <= hi_c, "monotone");
            let exact = rate.to_exact_credits(&lo).unwrap();
            prop_assert!(ExactCredits::from(rate.to_credits(&lo, Rounding::Down).unwrap()) <= exact);
            prop_assert!(exact <= ExactCredits::from(rate.to_credits(&lo, Rounding::Up).unwrap()));
            prop_assert_eq!(exact.to_credits(r).unwrap(), lo_c);
        } else {
            // Overflow is only allowed when the exact value is beyond i64 credits.
            let exact = rate.to_exact_credits(&hi).unwrap().get();
            prop_assert!(exact.abs() > Decimal::from(i64::MAX / 2));
        }
    }

    #[test]
    fn money_credits_money_stays_within_one_rounding_step(
        cents in 0i64..=100_000_000_000_000, rate in any_rate(), r1 in any_rounding(), r2 in any_rounding()
    ) {
        // Money → credits → money: the credit step loses at most one credit and the way
        // back at most one cent, so the result is within one credit's worth plus one cent.
        let money = Money::from_minor(i128::from(cents), Currency::USD).unwrap();
        let Ok(credits) = rate.to_credits(&money, r1) else { return Ok(()); };
        let back = rate.to_money(credits, r2).unwrap();
        let one_credit = rate.to_money_dp(Credits::new(1), 28, Rounding::Up).unwrap().amount();
        let diff = (back.amount() - money.amount()).abs();
        prop_assert!(diff <= one_credit + Decimal::new(1, 2), "{money} -> {credits} -> {back}");
        // At the default rate a cent is a whole number of credits, so the round trip is exact.
        if rate == CreditRate::default() {
            prop_assert_eq!(back, money);
        }
    }

    #[test]
    fn credits_to_money_is_bracketed_and_monotone(
        a in -1_000_000_000_000_000i64..=1_000_000_000_000_000, b in -1_000_000_000_000_000i64..=1_000_000_000_000_000,
        rate in any_rate(), r in any_rounding()
    ) {
        let (lo, hi) = (Credits::new(a.min(b)), Credits::new(a.max(b)));
        prop_assert!(rate.to_money(lo, r).unwrap() <= rate.to_money(hi, r).unwrap());
        let down = rate.to_money(lo, Rounding::Down).unwrap();
        let up = rate.to_money(lo, Rounding::Up).unwrap();
        // down ≤ lo / rate ≤ up, checked in credits: down·rate ≤ lo ≤ up·rate.
        prop_assert!(decimal::checked_mul(down.amount(), rate.credits_per_unit()).unwrap() <= Decimal::from(lo.get()));
        prop_assert!(decimal::checked_mul(up.amount(), rate.credits_per_unit()).unwrap() >= Decimal::from(lo.get()));
        prop_assert!(up.amount() - down.amount() <= Decimal::new(1, 2));
    }

    #[test]
    fn exact_money_at_the_default_rate_round_trips(c in any::<i64>(), r in any_rounding()) {
        let rate = CreditRate::default();
        let money = rate.to_money_exact(Credits::new(c)).unwrap();
        prop_assert_eq!(rate.to_credits(&money, r).unwrap(), Credits::new(c));
    }

    #[test]
    fn exact_money_round_trips_or_is_reported_inexact(c in any::<i64>(), rate in any_rate(), r in any_rounding()) {
        match rate.to_money_exact(Credits::new(c)) {
            Ok(money) => prop_assert_eq!(rate.to_credits(&money, r).unwrap(), Credits::new(c)),
            Err(CreditsError::Inexact { .. }) => {
                // Then no scale within 28 places is exact: the bracket at 28 places is open.
                let down = rate.to_money_dp(Credits::new(c), 28, Rounding::Down);
                let up = rate.to_money_dp(Credits::new(c), 28, Rounding::Up);
                if let (Ok(down), Ok(up)) = (down, up) {
                    prop_assert_ne!(down, up);
                }
            }
            Err(e) => prop_assert!(matches!(e, CreditsError::Overflow { .. }), "{e}"),
        }
    }

    #[test]
    fn allocation_sums_exactly_and_skips_zero_weights(
        total in any::<i64>(), weights in proptest::collection::vec(0u32..1000, 1..40)
    ) {
        let total = Credits::new(total);
        match total.allocate(&weights) {
            Ok(parts) => {
                prop_assert_eq!(parts.len(), weights.len());
                prop_assert_eq!(Credits::checked_sum(parts.iter().copied()).unwrap(), total);
                let sum_w: i128 = weights.iter().map(|&w| i128::from(w)).sum();
                for (part, &w) in parts.iter().zip(&weights) {
                    if w == 0 {
                        prop_assert_eq!(*part, Credits::ZERO);
                    }
                    // Within one credit of the exact share.
                    let exact = i128::from(total.get()) * i128::from(w);
                    let scaled = i128::from(part.get()) * sum_w;
                    prop_assert!((scaled - exact).abs() < sum_w, "part {part} far from share");
                }
                let negated = total.checked_neg().map(|n| n.allocate(&weights).unwrap());
                if let Some(negated) = negated {
                    let flipped: Vec<Credits> = parts.iter().map(|p| p.checked_neg().unwrap()).collect();
                    prop_assert_eq!(negated, flipped);
                }
            }
            Err(e) => {
                prop_assert!(weights.iter().all(|&w| w == 0));
                prop_assert_eq!(e, CreditsError::ZeroTotalWeight);
            }
        }
    }

    #[test]
    fn money_allocation_sums_exactly(
        minor in -1_000_000_000_000i64..1_000_000_000_000, c in currency_with_exponent(),
        weights in proptest::collection::vec(0i64..50, 1..12)
    ) {
        let money = Money::from_minor(i128::from(minor), c).unwrap();
        if let Ok(parts) = money.allocate(&weights) {
            prop_assert_eq!(Money::checked_sum(c, &parts).unwrap(), money);
            for (p, &w) in parts.iter().zip(&weights) {
                prop_assert!(p.is_rounded().unwrap());
                if w == 0 { prop_assert!(p.is_zero()); }
            }
        } else {
            prop_assert!(weights.iter().all(|&w| w == 0));
        }
    }

    #[test]
    fn carrier_error_stays_below_one_credit(
        costs in proptest::collection::vec((0i64..5_000_000, 0u32..=7), 1..2_000)
    ) {
        let mut carrier = RemainderCarrier::new();
        let mut charged = Decimal::ZERO;
        let mut exact = Decimal::ZERO;
        for (m, s) in costs {
            let cost = ExactCredits::new(Decimal::from_i128_with_scale(i128::from(m), s));
            let whole = carrier.charge(cost).unwrap();
            prop_assert!(!whole.is_negative());
            prop_assert!((Decimal::from(whole.get()) - cost.get()).abs() <= Decimal::ONE);
            charged += Decimal::from(whole.get());
            exact += cost.get();
            prop_assert_eq!(charged + carrier.remainder().get(), exact);
            prop_assert!((charged - exact).abs() <= Decimal::new(5, 1));
        }
    }

    #[test]
    fn parsers_never_panic(text in ".{0,40}") {
        let _ = Credits::from_str(&text);
        let _ = ExactCredits::from_str(&text);
        let _ = Money::from_str(&text);
        let _ = Money::parse(&text, Currency::USD);
        let _ = decimal::parse_plain(&text);
        let _ = decimal::parse_scientific(&text);
        let _ = serde_json::from_str::<Money>(&text);
    }

    #[test]
    fn number_like_text_never_panics(text in "[-+]?[0-9]{0,45}(\\.[0-9]{0,40})?([eE][-+]?[0-9]{0,6})?") {
        for d in [decimal::parse_plain(&text), decimal::parse_scientific(&text)].into_iter().flatten() {
            prop_assert_eq!(decimal::parse_plain(&d.to_string()).unwrap(), d);
        }
        let _ = Credits::from_str(&text);
    }

    #[test]
    fn decimal_display_round_trips(d in any_decimal()) {
        prop_assert_eq!(decimal::parse_plain(&d.to_string()).unwrap(), d);
        prop_assert_eq!(decimal::parse_plain(&d.to_string()).unwrap().scale(), d.scale());
    }

    #[test]
    fn exact_add_and_mul_agree_with_rust_decimal_when_it_is_exact(a in any_decimal(), b in any_decimal()) {
        prop_assert_eq!(decimal::checked_add(a, b).unwrap(), a + b);
        prop_assert_eq!(decimal::checked_sub(decimal::checked_add(a, b).unwrap(), b).unwrap(), a);
        if let Ok(p) = decimal::checked_mul(a, b) {
            prop_assert_eq!(p, a * b);
        }
    }

    #[test]
    fn fx_conversion_is_bracketed_and_monotone(
        a in 0i64..1_000_000_000_000, b in 0i64..1_000_000_000_000, rate_m in 1i64..100_000_000, rate_s in 0u32..=8,
        to in currency_with_exponent(), r in any_rounding()
    ) {
        prop_assume!(to != Currency::USD);
        let date = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let fx = FxRate::new(Currency::USD, to, Decimal::from_i128_with_scale(i128::from(rate_m), rate_s), date).unwrap();
        let (lo, hi) = (Money::from_minor(a.min(b).into(), Currency::USD).unwrap(), Money::from_minor(a.max(b).into(), Currency::USD).unwrap());
        prop_assert!(fx.convert(&lo, r).unwrap() <= fx.convert(&hi, r).unwrap());
        let exact = lo.amount() * fx.rate();
        prop_assert!(fx.convert(&lo, Rounding::Down).unwrap().amount() <= exact);
        prop_assert!(fx.convert(&lo, Rounding::Up).unwrap().amount() >= exact);
    }

    #[test]
    fn serde_round_trips(m in any_decimal(), c in currency_with_exponent(), credits in any::<i64>()) {
        let money = Money::new(m, c);
        let json = serde_json::to_string(&money).unwrap();
        let back: Money = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, money);
        prop_assert_eq!(back.amount().scale(), money.amount().scale());
        let json = serde_json::to_string(&Credits::new(credits)).unwrap();
        prop_assert_eq!(&json, &credits.to_string());
        prop_assert_eq!(serde_json::from_str::<Credits>(&json).unwrap(), Credits::new(credits));
    }
}

/// The carrier over long sequences (up to 100,000 charges), fewer cases.
mod long_sequences {
    use super::*;

    proptest! {
        #![proptest_config(paygo_testkit::proptest_config(16, REGRESSIONS))]

        #[test]
        fn carrier_error_stays_below_one_credit_over_100k_charges(
            seed_costs in proptest::collection::vec((0i64..2_000_000, 0u32..=6), 50_000..=100_000)
        ) {
            let mut carrier = RemainderCarrier::new();
            let mut charged: i64 = 0;
            let mut exact = ExactCredits::ZERO;
            for (m, s) in seed_costs {
                let cost = ExactCredits::new(Decimal::from_i128_with_scale(i128::from(m), s));
                charged += carrier.charge(cost).unwrap().get();
                exact = exact.checked_add(cost).unwrap();
            }
            let error = (Decimal::from(charged) - exact.get()).abs();
            prop_assert!(error <= Decimal::new(5, 1), "error {error}");
        }
    }
}
