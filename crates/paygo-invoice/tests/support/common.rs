//! Builders shared by the integration tests.

use chrono::NaiveDate;
use paygo_credits::{Currency, Decimal, FxRate, Money};
use paygo_invoice::{
    DocumentId, DocumentKind, Draft, Invoicing, LineInput, Party, Payment, PaymentMethod, RoundingRules, SequenceStore,
    Series, SeriesName,
};
use paygo_vat::{
    Country, CountryCode, Customer, Determination, LocationEvidence, NoOutsideEuRules, Reporting, Seller, Supply,
    Treatment, VatId, VatIdStatus, VatRate, determine,
};

pub(crate) fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
}

pub(crate) fn party(name: &str, country: &str, vat_id: Option<&str>) -> Party {
    Party {
        name: name.into(),
        address: vec!["1 Main Street".into(), "1000 Town".into()],
        country: country.parse().unwrap(),
        vat_id: vat_id.map(|v| VatId::parse(v).unwrap()),
    }
}

pub(crate) fn seller() -> Party {
    party("paygo Ltd", "IE", Some("IE6433435F"))
}

/// The determination for a customer in `country` (ISO), with `vat_id` confirmed as `status`.
pub(crate) fn determination(country: &str, vat_id: Option<&str>, status: VatIdStatus) -> Determination {
    let code: CountryCode = country.parse().unwrap();
    let supply = Supply {
        seller: Seller {
            country: Country::Ireland,
            oss_registered: true,
        },
        customer: Customer {
            evidence: LocationEvidence {
                billing_country: Some(code),
                ip_country: Some(code),
                card_country: None,
            },
            vat_id: vat_id.map(|v| VatId::parse(v).unwrap()),
        },
        date: day(2),
    };
    determine(&supply, &move |_: &VatId| status, &NoOutsideEuRules).unwrap()
}

/// A foreign tax at `rate` outside the EU (no national-currency VAT needed).
pub(crate) fn foreign_tax(rate: VatRate) -> Determination {
    Determination {
        treatment: Treatment::OtherJurisdiction,
        place_of_supply: "CH".parse().unwrap(),
        rate,
        mention: None,
        reporting: Reporting::NotEuVat,
        vat_id: None,
        dissenting_evidence: None,
    }
}

pub(crate) fn line(description: &str, quantity: &str, price: &str, currency: Currency) -> LineInput {
    LineInput {
        description: description.into(),
        quantity: quantity.parse::<Decimal>().unwrap(),
        unit_price: Money::new(price.parse().unwrap(), currency),
    }
}

pub(crate) fn usd_line(price: &str) -> LineInput {
    line("API credits", "1", price, Currency::USD)
}

pub(crate) fn card(reference: &str) -> Payment {
    Payment {
        method: PaymentMethod::Card,
        reference: reference.into(),
        paid_on: Some(day(2)),
    }
}

pub(crate) fn usd_to(currency: Currency, rate: &str) -> FxRate {
    FxRate::new(Currency::USD, currency, rate.parse().unwrap(), day(1)).unwrap()
}

/// A draft of a top-up in USD to a consumer in `country`.
pub(crate) fn draft(id: &str, buyer: Party, vat: Determination, lines: Vec<LineInput>) -> Draft {
    Draft {
        id: DocumentId::new(id).unwrap(),
        series: SeriesName::new("INV-2026").unwrap(),
        seller: seller(),
        buyer,
        supply_date: day(2),
        currency: Currency::USD,
        lines,
        vat,
        payment: card(&format!("ch_{id}")),
        rules: RoundingRules::default(),
        national_fx: None,
        buyer_reference: None,
        customer_number: None,
    }
}

/// A draft to a consumer in the US (no VAT, no exchange rate needed).
pub(crate) fn us_draft(id: &str, price: &str) -> Draft {
    draft(
        id,
        party("Jane Doe", "US", None),
        determination("US", None, VatIdStatus::Unknown),
        vec![usd_line(price)],
    )
}

/// A draft to a consumer in Germany, with the EUR rate.
pub(crate) fn de_draft(id: &str, price: &str) -> Draft {
    let mut d = draft(
        id,
        party("Erika Mustermann", "DE", None),
        determination("DE", None, VatIdStatus::Unknown),
        vec![usd_line(price)],
    );
    d.national_fx = Some(usd_to(Currency::EUR, "0.9234"));
    d
}

pub(crate) fn series() -> Vec<Series> {
    vec![
        Series::new("INV-2026", DocumentKind::Invoice, 6).unwrap(),
        Series::new("CN-2026", DocumentKind::CreditNote, 6).unwrap(),
    ]
}

pub(crate) fn invoicing<S: SequenceStore>(store: S) -> Invoicing<S> {
    Invoicing::open(store, series()).unwrap()
}
