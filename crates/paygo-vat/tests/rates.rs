//! VAT rates on hand-picked dates: each change the table must know, the day before and the
//! day it took effect, and the errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use chrono::NaiveDate;
use paygo_credits::{Currency, Money, Rounding};
use paygo_vat::{Country, VatError, VatRate, rate_periods, rates_on, rates_start, standard_rate};

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

fn standard(country: Country, date: &str) -> String {
    standard_rate(country, day(date)).unwrap().to_string()
}

#[test]
fn temporary_and_recent_changes() {
    let cases = [
        // Germany's temporary 16 % (Zweites Corona-Steuerhilfegesetz).
        (Country::Germany, "2020-06-30", "19%"),
        (Country::Germany, "2020-07-01", "16%"),
        (Country::Germany, "2020-12-31", "16%"),
        (Country::Germany, "2021-01-01", "19%"),
        // Ireland's temporary 21 %.
        (Country::Ireland, "2020-08-31", "23%"),
        (Country::Ireland, "2020-09-01", "21%"),
        (Country::Ireland, "2021-02-28", "21%"),
        (Country::Ireland, "2021-03-01", "23%"),
        // Luxembourg's 16 % in 2023.
        (Country::Luxembourg, "2022-12-31", "17%"),
        (Country::Luxembourg, "2023-01-01", "16%"),
        (Country::Luxembourg, "2023-12-31", "16%"),
        (Country::Luxembourg, "2024-01-01", "17%"),
        // Recent increases.
        (Country::Finland, "2024-08-31", "24%"),
        (Country::Finland, "2024-09-01", "25.5%"),
        (Country::Slovakia, "2024-12-31", "20%"),
        (Country::Slovakia, "2025-01-01", "23%"),
        (Country::Estonia, "2023-12-31", "20%"),
        (Country::Estonia, "2024-01-01", "22%"),
        (Country::Estonia, "2025-06-30", "22%"),
        (Country::Estonia, "2025-07-01", "24%"),
        (Country::Romania, "2016-12-31", "20%"),
        (Country::Romania, "2017-01-01", "19%"),
        (Country::Romania, "2025-07-31", "19%"),
        (Country::Romania, "2025-08-01", "21%"),
        (Country::Greece, "2016-05-31", "23%"),
        (Country::Greece, "2016-06-01", "24%"),
        // Unchanged since before the table starts.
        (Country::Hungary, "2016-01-01", "27%"),
        (Country::Denmark, "2030-01-01", "25%"),
    ];
    for (country, date, want) in cases {
        assert_eq!(standard(country, date), want, "{country} on {date}");
    }
}

#[test]
fn reduced_rates_come_with_the_period() {
    let de = rates_on(Country::Germany, day("2020-07-01")).unwrap();
    assert_eq!(de.reduced(), ["5".parse::<VatRate>().unwrap()]);
    assert_eq!((de.from(), de.to()), (day("2020-07-01"), Some(day("2020-12-31"))));
    let fr = rates_on(Country::France, day("2024-01-01")).unwrap();
    assert_eq!(fr.super_reduced(), Some("2.1".parse().unwrap()));
    assert_eq!(
        fr.reduced().iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["5.5%", "10%"]
    );
    assert_eq!(rates_on(Country::Denmark, day("2024-01-01")).unwrap().reduced(), []);
    assert_eq!(
        rates_on(Country::Ireland, day("2024-01-01")).unwrap().parking(),
        Some("13.5".parse().unwrap())
    );
    assert!(rates_on(Country::Germany, day("2026-01-01")).unwrap().to().is_none());
    // Lithuania's 9 % became 12 % on 2026-01-01 (vatnode / TEDB, 2026-09-29).
    let reduced = |date: &str| {
        rates_on(Country::Lithuania, day(date))
            .unwrap()
            .reduced()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(reduced("2025-12-31"), ["5%", "9%"]);
    assert_eq!(reduced("2026-01-01"), ["5%", "12%"]);
    assert_eq!(standard(Country::Lithuania, "2026-01-01"), "21%");
}

#[test]
fn every_member_state_has_rates_from_2016_on_and_periods_tile() {
    for country in Country::ALL.into_iter().filter(|c| c.is_eu()) {
        let periods = rate_periods(country).unwrap();
        assert_eq!(periods[0].from(), rates_start());
        for pair in periods.windows(2) {
            assert_eq!(pair[0].to().unwrap().succ_opt(), Some(pair[1].from()), "{country}");
        }
        assert!(periods.last().unwrap().to().is_none());
        for date in ["2016-01-01", "2020-07-01", "2026-11-25", "2100-12-31"] {
            let period = rates_on(country, day(date)).unwrap();
            assert!(period.contains(day(date)));
            assert_eq!(period.country(), country);
        }
    }
}

#[test]
fn a_date_before_the_table_is_an_error_not_a_guess() {
    let err = standard_rate(Country::Germany, day("2015-12-31")).unwrap_err();
    assert_eq!(
        err,
        VatError::DateBeforeRates {
            country: Country::Germany,
            date: day("2015-12-31"),
            first: day("2016-01-01"),
        }
    );
    assert_eq!(
        err.to_string(),
        "no VAT rate for DE on 2015-12-31: the rate table starts on 2016-01-01"
    );
}

#[test]
fn countries_outside_the_eu_have_no_rates_here() {
    for country in [
        Country::UnitedKingdom,
        Country::NorthernIreland,
        Country::Switzerland,
        Country::Norway,
    ] {
        assert_eq!(
            standard_rate(country, day("2024-01-01")),
            Err(VatError::NoRates { country })
        );
    }
}

#[test]
fn vat_on_rounds_with_the_named_rounding() {
    let rate: VatRate = "19".parse().unwrap();
    let net = Money::parse("19.99", Currency::EUR).unwrap();
    assert_eq!(rate.vat_on(&net, Rounding::HalfUp).unwrap().to_string(), "3.80 EUR");
    assert_eq!(rate.vat_on(&net, Rounding::Down).unwrap().to_string(), "3.79 EUR");
    let fi: VatRate = "25.5".parse().unwrap();
    assert_eq!(fi.fraction().to_string(), "0.255");
    assert_eq!(
        fi.vat_on(&Money::parse("10.00", Currency::EUR).unwrap(), Rounding::HalfUp)
            .unwrap()
            .to_string(),
        "2.55 EUR"
    );
    assert!(VatRate::ZERO.vat_on(&net, Rounding::Up).unwrap().is_zero());
}

#[test]
fn vat_rate_parsing_and_serde() {
    assert!(matches!("101".parse::<VatRate>(), Err(VatError::InvalidRate { .. })));
    assert!(matches!("-1".parse::<VatRate>(), Err(VatError::InvalidRate { .. })));
    assert!(matches!(
        "1.00001".parse::<VatRate>(),
        Err(VatError::InvalidRate { .. })
    ));
    assert!(matches!("1e2".parse::<VatRate>(), Err(VatError::Money(_))));
    let rate: VatRate = "25.50".parse().unwrap();
    assert_eq!(rate.to_string(), "25.5%");
    assert_eq!(serde_json::to_string(&rate).unwrap(), "\"25.5\"");
    assert_eq!(serde_json::from_str::<VatRate>("\"25.5\"").unwrap(), rate);
}

#[test]
fn national_currencies_follow_the_euro_area_by_date() {
    // The changeovers, the day before and the day of.
    assert_eq!(Country::Croatia.national_currency(day("2022-12-31")), Currency::HRK);
    assert_eq!(Country::Croatia.national_currency(day("2023-01-01")), Currency::EUR);
    assert_eq!(Country::Bulgaria.national_currency(day("2025-12-31")), Currency::BGN);
    assert_eq!(Country::Bulgaria.national_currency(day("2026-01-01")), Currency::EUR);
    // Every jurisdiction outside the euro area, and the count of those in it.
    let outside = [
        (Country::Czechia, Currency::CZK),
        (Country::Denmark, Currency::DKK),
        (Country::Hungary, Currency::HUF),
        (Country::Poland, Currency::PLN),
        (Country::Romania, Currency::RON),
        (Country::Sweden, Currency::SEK),
        (Country::NorthernIreland, Currency::GBP),
        (Country::UnitedKingdom, Currency::GBP),
        (Country::Switzerland, Currency::CHF),
        (Country::Norway, Currency::NOK),
    ];
    let today = day("2026-11-25");
    for (country, currency) in outside {
        assert_eq!(country.national_currency(today), currency, "{country}");
    }
    let euro = Country::ALL
        .iter()
        .filter(|c| c.national_currency(today) == Currency::EUR)
        .count();
    // 21 euro-area member states on 2026-01-01 (the 20 of 2023, and Bulgaria).
    assert_eq!(euro, 21);
}
