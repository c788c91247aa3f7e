//! Hand-written cases: known values, every error and its message.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use paygo_credits::{
    AccountCarriers, CreditRate, Credits, CreditsError, Currency, Decimal, ExactCredits, FxRate, Money,
    RemainderCarrier, Rounding, decimal,
};

fn d(text: &str) -> Decimal {
    decimal::parse_plain(text).unwrap()
}

#[test]
fn ten_dollars_is_twenty_million_credits() {
    let rate = CreditRate::default();
    let credits = rate
        .to_credits(&Money::parse("10.00", Currency::USD).unwrap(), Rounding::Down)
        .unwrap();
    assert_eq!(credits, Credits::new(20_000_000));
    assert_eq!(rate.to_money(credits, Rounding::Down).unwrap().to_string(), "10.00 USD");
}

#[test]
fn usage_section_figures_match_the_api() {
    // "credits_used": 1892, "usd_spent": 0.000946
    let rate = CreditRate::default();
    assert_eq!(rate.to_money_exact(Credits::new(1892)).unwrap().amount(), d("0.000946"));
}

#[test]
fn minor_units_follow_the_currency_exponent() {
    for (code, exponent) in [(Currency::USD, 2), (Currency::JPY, 0), (Currency::BHD, 3)] {
        let m = Money::new(d("1.23456"), code).round(Rounding::HalfEven).unwrap();
        assert_eq!(m.amount().scale(), exponent, "{code:?}");
    }
    assert_eq!(
        Money::new(d("2.5"), Currency::JPY)
            .round(Rounding::HalfEven)
            .unwrap()
            .amount(),
        d("2")
    );
    assert_eq!(
        Money::new(d("2.5"), Currency::JPY)
            .round(Rounding::HalfUp)
            .unwrap()
            .amount(),
        d("3")
    );
    assert_eq!(
        Money::new(d("-2.5"), Currency::JPY)
            .round(Rounding::HalfUp)
            .unwrap()
            .amount(),
        d("-3")
    );
    assert_eq!(
        Money::new(d("-2.5"), Currency::JPY)
            .round(Rounding::HalfDown)
            .unwrap()
            .amount(),
        d("-2")
    );
    assert_eq!(
        Money::new(d("-2.1"), Currency::JPY)
            .round(Rounding::Down)
            .unwrap()
            .amount(),
        d("-3")
    );
    assert_eq!(
        Money::new(d("-2.9"), Currency::JPY)
            .round(Rounding::TowardZero)
            .unwrap()
            .amount(),
        d("-2")
    );
    assert_eq!(
        Money::new(d("2.1"), Currency::JPY)
            .round(Rounding::AwayFromZero)
            .unwrap()
            .amount(),
        d("3")
    );
    assert_eq!(Money::from_minor(1999, Currency::EUR).unwrap().to_string(), "19.99 EUR");
    assert_eq!(Money::from_minor(1999, Currency::BHD).unwrap().to_string(), "1.999 BHD");
    assert_eq!(Money::parse("19.99", Currency::EUR).unwrap().to_minor().unwrap(), 1999);
}

#[test]
fn no_negative_zero() {
    let m = Money::new(d("-0.004"), Currency::USD)
        .round(Rounding::HalfEven)
        .unwrap();
    assert_eq!(m.to_string(), "0.00 USD");
    assert!(!m.is_negative());
}

#[test]
fn errors_say_what_was_wrong_and_what_was_expected() {
    let cases: Vec<(CreditsError, &str)> = vec![
        (
            Money::parse("10.001", Currency::USD).unwrap_err(),
            "3 decimal places given, USD allows 2",
        ),
        (
            Money::parse("1.5", Currency::JPY).unwrap_err(),
            "1 decimal places given, JPY allows 0",
        ),
        (
            "12 XYZ".parse::<Money>().unwrap_err(),
            "unknown currency code \"XYZ\": expected an ISO 4217 code such as USD",
        ),
        (
            Money::parse("1,000.00", Currency::USD).unwrap_err(),
            "invalid amount \"1,000.00\": expected only digits, an optional sign and one decimal point",
        ),
        (
            Money::parse("", Currency::USD).unwrap_err(),
            "invalid amount \"\": empty text, expected digits such as 10.00",
        ),
        (
            Money::parse("1e3", Currency::USD).unwrap_err(),
            "invalid amount \"1e3\": exponent notation is not accepted here, expected plain digits such as 0.000015",
        ),
        (
            "1.5".parse::<Credits>().unwrap_err(),
            "invalid credits \"1.5\": credits are whole numbers, a decimal point is not accepted",
        ),
        (
            "ten".parse::<Credits>().unwrap_err(),
            "invalid credits \"ten\": expected only digits with an optional sign, such as 2000000",
        ),
        (
            "99999999999999999999".parse::<Credits>().unwrap_err(),
            "overflow in parsing credits: the exact result is outside the supported range",
        ),
        (
            Money::usd(d("1"))
                .checked_add(&Money::new(d("1"), Currency::EUR))
                .unwrap_err(),
            "currency mismatch: USD expected, EUR given",
        ),
        (
            CreditRate::new(Currency::USD, d("-1")).unwrap_err(),
            "invalid rate -1: expected a positive number of credits per unit",
        ),
        (
            CreditRate::new(Currency::USD, d("0.0000001")).unwrap_err(),
            "invalid rate 0.0000001: expected at most 6 decimal places",
        ),
        (
            Credits::new(5).allocate::<u8>(&[]).unwrap_err(),
            "allocation needs at least one weight, none given",
        ),
        (
            Credits::new(5).allocate(&[0u8, 0]).unwrap_err(),
            "allocation weights sum to zero: expected at least one positive weight",
        ),
        (
            Credits::new(5).allocate(&[1i32, -2]).unwrap_err(),
            "negative allocation weight -2 at index 1: expected zero or more",
        ),
        (
            Money::usd(d("10.005")).allocate(&[1u8, 1]).unwrap_err(),
            "10.005 USD is not a whole number of minor units: round it to 2 decimal places first",
        ),
        (
            Money::new(d("1"), Currency::XAU).round(Rounding::Down).unwrap_err(),
            "currency XAU has no minor unit: expected a currency such as USD, JPY or BHD",
        ),
        (
            CreditRate::new(Currency::USD, d("3"))
                .unwrap()
                .to_money_exact(Credits::new(1))
                .unwrap_err(),
            "1 credits at 3 per USD has no exact decimal value within 28 decimal places: expected a rounding to be named",
        ),
        (
            RemainderCarrier::from_remainder(ExactCredits::new(d("0.6"))).unwrap_err(),
            "remainder 0.6 is outside the carrier's range: expected between -0.5 and 0.5 credit",
        ),
        (
            CreditRate::default()
                .to_credits(&Money::new(d("1"), Currency::EUR), Rounding::Down)
                .unwrap_err(),
            "currency mismatch: USD expected, EUR given",
        ),
    ];
    for (error, message) in cases {
        assert_eq!(error.to_string(), message);
    }
}

#[test]
fn long_garbage_is_clipped_in_messages() {
    let long = "x".repeat(10_000);
    let message = long.parse::<Credits>().unwrap_err().to_string();
    assert!(message.len() < 200, "{message}");
}

#[test]
fn overflow_is_an_error_not_a_wrap() {
    assert_eq!(Credits::MAX.checked_add(Credits::new(1)), None);
    assert_eq!(Credits::MIN.checked_sub(Credits::new(1)), None);
    assert_eq!(Credits::MAX.checked_mul(2), None);
    assert_eq!(Credits::MIN.checked_neg(), None);
    let total: Result<Credits, _> = [Credits::MAX, Credits::new(1)].into_iter().sum();
    assert!(matches!(total, Err(CreditsError::Overflow { .. })));
    // $10 trillion is beyond i64 credits at the default rate.
    let huge = Money::usd(d("10000000000000"));
    assert!(matches!(
        CreditRate::default().to_credits(&huge, Rounding::Down),
        Err(CreditsError::Overflow { .. })
    ));
    // $1 trillion fits.
    let trillion = Money::usd(d("1000000000000"));
    assert_eq!(
        CreditRate::default().to_credits(&trillion, Rounding::Down).unwrap(),
        Credits::new(2_000_000_000_000_000_000)
    );
    assert!(decimal::checked_mul(Decimal::MAX, d("2")).is_err());
    assert!(decimal::checked_add(Decimal::MAX, d("1")).is_err());
    assert!(decimal::checked_add(Decimal::MAX, d("0.1")).is_err());
}

#[test]
fn exact_arithmetic_never_rounds_silently() {
    // rust_decimal would round this product to 28 places; the exact helper refuses.
    let a = d("0.1234567890123456789012345678");
    assert!(decimal::checked_mul(a, a).is_err());
    assert_eq!(
        decimal::checked_mul(d("0.5"), d("0.0000000000000000000000000002")).unwrap(),
        decimal::parse_scientific("1E-28").unwrap()
    );
    assert_eq!(decimal::checked_div_pow10(d("0.15"), 6).unwrap(), d("0.00000015"));
}

#[test]
fn a_product_of_exactly_minus_two_to_the_127_is_an_overflow_not_a_panic() {
    // -2^64 * 2^63 = i128::MIN: the mantissas' product fits an i128 but has no absolute value.
    let a = Decimal::from_i128_with_scale(-(1i128 << 64), 0);
    let b = Decimal::from_i128_with_scale(1i128 << 63, 0);
    assert!(matches!(
        decimal::checked_mul(a, b),
        Err(paygo_credits::CreditsError::Overflow { .. })
    ));
}

#[test]
fn fractional_credits_for_per_token_prices() {
    let rate = CreditRate::default();
    let per_token = rate.to_exact_credits(&Money::usd(d("0.00000015"))).unwrap();
    assert_eq!(per_token, ExactCredits::new(d("0.3")));
    let (whole, rest) = per_token
        .checked_mul(Decimal::from(7))
        .unwrap()
        .split(Rounding::Down)
        .unwrap();
    assert_eq!((whole, rest), (Credits::new(2), ExactCredits::new(d("0.1"))));
}

#[test]
fn carrier_ties_alternate_so_nobody_is_favoured() {
    let mut carrier = RemainderCarrier::new();
    let half = ExactCredits::new(d("0.5"));
    let charged: Vec<i64> = (0..8).map(|_| carrier.charge(half).unwrap().get()).collect();
    assert_eq!(charged, [0, 1, 0, 1, 0, 1, 0, 1]);
    let mut carriers = AccountCarriers::new();
    assert_eq!(carriers.charge(&1u64, half).unwrap(), Credits::ZERO);
    assert_eq!(carriers.get(&1).unwrap().remainder(), half);
    assert_eq!(carriers.iter().count(), 1);
}

#[test]
fn carrier_serializes_as_its_remainder_and_validates_it() {
    let mut carrier = RemainderCarrier::new();
    carrier.charge(ExactCredits::new(d("0.3"))).unwrap();
    assert_eq!(serde_json::to_string(&carrier).unwrap(), "\"0.3\"");
    assert_eq!(serde_json::from_str::<RemainderCarrier>("\"0.3\"").unwrap(), carrier);
    assert!(serde_json::from_str::<RemainderCarrier>("\"0.7\"").is_err());
}

#[test]
fn money_serde_shape() {
    let m = Money::parse("10.00", Currency::USD).unwrap();
    assert_eq!(
        serde_json::to_string(&m).unwrap(),
        r#"{"amount":"10.00","currency":"USD"}"#
    );
    let back: Money = serde_json::from_str(r#"{"amount":"10.00","currency":"USD"}"#).unwrap();
    assert_eq!(back.amount().to_string(), "10.00");
    let err = serde_json::from_str::<Money>(r#"{"amount":10.0,"currency":"USD"}"#).unwrap_err();
    assert!(err.to_string().contains("expected a string"), "{err}");
    let err = serde_json::from_str::<Money>(r#"{"amount":"1","currency":"usd"}"#).unwrap_err();
    assert!(err.to_string().contains("unknown currency code"), "{err}");
    assert_eq!(serde_json::to_string(&Credits::new(1892)).unwrap(), "1892");
    assert!(serde_json::from_str::<Credits>("18.92").is_err());
}

#[test]
fn rates_serialize_with_string_decimals() {
    let rate = CreditRate::default();
    let json = serde_json::to_string(&rate).unwrap();
    assert_eq!(json, r#"{"currency":"USD","credits_per_unit":"2000000"}"#);
    assert_eq!(serde_json::from_str::<CreditRate>(&json).unwrap(), rate);
    let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
    let fx = FxRate::new(Currency::EUR, Currency::PLN, d("4.2345"), date).unwrap();
    let json = serde_json::to_string(&fx).unwrap();
    assert_eq!(json, r#"{"from":"EUR","to":"PLN","rate":"4.2345","date":"2026-11-24"}"#);
    assert_eq!(serde_json::from_str::<FxRate>(&json).unwrap(), fx);
    assert!(serde_json::from_str::<FxRate>(r#"{"from":"EUR","to":"PLN","rate":"-1","date":"2026-11-24"}"#).is_err());
}

#[test]
fn fx_shows_vat_in_a_national_currency() {
    let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
    let fx = FxRate::new(Currency::USD, Currency::PLN, d("3.6512"), date).unwrap();
    let vat = Money::parse("23.00", Currency::USD).unwrap();
    assert_eq!(fx.convert(&vat, Rounding::HalfUp).unwrap().to_string(), "83.98 PLN");
    assert!(
        fx.convert(&Money::new(d("1"), Currency::EUR), Rounding::HalfUp)
            .is_err()
    );
    assert!(FxRate::new(Currency::USD, Currency::USD, d("2"), date).is_err());
    let to_jpy = FxRate::new(Currency::USD, Currency::JPY, d("151.5"), date).unwrap();
    assert_eq!(
        to_jpy
            .convert(&Money::usd(d("1.01")), Rounding::HalfEven)
            .unwrap()
            .to_string(),
        "153 JPY"
    );
}

#[test]
fn money_equality_ignores_written_scale_and_orders_within_a_currency() {
    assert_eq!(Money::usd(d("10.0")), Money::usd(d("10.00")));
    assert!(Money::usd(d("1")) < Money::usd(d("2")));
    assert_eq!(Money::usd(d("1")).partial_cmp(&Money::new(d("2"), Currency::EUR)), None);
    assert_eq!("10.00 USD".parse::<Money>().unwrap().to_string(), "10.00 USD");
}

// Found by review (2026-11-25): sums, zeros and conversions that fit were refused, and a
// zero could come out as `-0`.

#[test]
fn a_zero_padded_operand_does_not_make_a_sum_overflow() {
    let padded_zero = Decimal::from_i128_with_scale(0, 28);
    let padded_one = d("1.0000000000000000000000000000");
    let big = Decimal::from(100_000_000_000_000_000_000i128);
    assert_eq!(
        decimal::checked_add(Decimal::from(100_000_000_000i64), padded_zero).unwrap(),
        d("100000000000")
    );
    assert_eq!(
        decimal::checked_add(big, padded_one).unwrap(),
        d("100000000000000000001")
    );
    assert_eq!(
        decimal::checked_sub(big, padded_one).unwrap(),
        d("99999999999999999999")
    );
    // A sum whose last digit really is at 28 places and needs more than 96 bits still fails.
    assert!(decimal::checked_add(big, d("0.0000000000000000000000000001")).is_err());
    // The remainder carrier holding a zero remainder at 28 places takes a large cost.
    let mut carrier = RemainderCarrier::new();
    let exact = ExactCredits::new(Decimal::from_i128_with_scale(0, 28));
    carrier.charge(exact).unwrap();
    let cost = ExactCredits::new(d("20000000000.5"));
    assert_eq!(carrier.charge(cost).unwrap(), Credits::new(20_000_000_000));
}

#[test]
fn zero_is_never_negative_and_any_scale_of_zero_is_zero() {
    let minus_zero = -Decimal::ZERO;
    assert!(
        !decimal::round(minus_zero, 2, Rounding::HalfEven)
            .unwrap()
            .is_sign_negative()
    );
    let neg = Money::usd(Decimal::ZERO).neg();
    assert_eq!(neg.to_string(), "0 USD");
    assert_eq!(
        serde_json::to_string(&neg).unwrap(),
        r#"{"amount":"0","currency":"USD"}"#
    );
    // A zero at a scale far beyond 28 is built at once (it used to loop once per place).
    assert!(decimal::from_mantissa(0, u32::MAX).unwrap().is_zero());
    assert!(decimal::checked_div_pow10(Decimal::ZERO, u32::MAX).unwrap().is_zero());
}

#[test]
fn rounding_beyond_28_places_is_an_overflow_as_documented() {
    assert!(matches!(
        decimal::round(d("1.5"), 29, Rounding::Up),
        Err(CreditsError::Overflow { .. })
    ));
    assert_eq!(decimal::round(d("1.5"), 28, Rounding::Up).unwrap(), d("1.5"));
}

#[test]
fn zero_with_any_exponent_and_exponents_with_leading_zeros_parse() {
    assert!(decimal::parse_scientific("0e39").unwrap().is_zero());
    assert!(decimal::parse_scientific("0E+9999").unwrap().is_zero());
    assert!(decimal::parse_scientific("-0.0e-99999").unwrap().is_zero());
    assert_eq!(
        decimal::parse_scientific("1e-00028").unwrap(),
        d("0.0000000000000000000000000001")
    );
    assert_eq!(decimal::parse_scientific("15E+0003").unwrap(), d("15000"));
    assert!(decimal::parse_scientific("1e").is_err());
    assert!(matches!(
        decimal::parse_scientific("1e99999"),
        Err(CreditsError::Overflow { .. })
    ));
}

#[test]
fn credits_to_money_at_many_places_fits_when_the_value_does() {
    let rate = CreditRate::default();
    let money = rate
        .to_money_dp(Credits::new(400_000_000_000_000_000), 28, Rounding::Down)
        .unwrap();
    assert_eq!(money.amount(), d("200000000000"));
    // An inexact value at a rate of 3 credits per unit needs all 28 places: too many digits.
    let three = CreditRate::new(Currency::USD, d("3")).unwrap();
    assert!(
        three
            .to_money_dp(Credits::new(400_000_000_000_000_000), 28, Rounding::Down)
            .is_err()
    );
    assert_eq!(
        three.to_money_dp(Credits::new(1), 28, Rounding::Down).unwrap().amount(),
        d("0.3333333333333333333333333333")
    );
}

#[test]
fn a_value_too_small_to_hold_is_not_an_overflow() {
    use paygo_credits::decimal::parse_scientific;
    let err = parse_scientific("1e-30").unwrap_err().to_string();
    assert!(err.contains("more than 28 decimal places"), "{err}");
    assert!(!err.contains("overflow"), "{err}");
    // Trailing zeros past the 28th place are not digits of the value.
    assert_eq!(
        parse_scientific("1000e-31").unwrap().to_string(),
        "0.0000000000000000000000000001"
    );
    assert_eq!(
        parse_scientific("1e-28").unwrap().to_string(),
        "0.0000000000000000000000000001"
    );
    assert!(parse_scientific("1e40").is_err());
}
