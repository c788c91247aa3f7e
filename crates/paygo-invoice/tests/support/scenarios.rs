//! The documents of `examples/invoice.rs`, shared with the golden tests so that the files
//! under `tests/golden/` are exactly what the example writes.
//!
//! The including crate provides `credits`, `invoice` and `vat` at its root (the example
//! through `paygo::{credits, invoice, vat}`, the tests through the member crates).

use chrono::{NaiveDate, TimeZone, Utc};

use crate::credits::{CreditRate, Credits, Currency, FxRate, Money, Rounding};
use crate::invoice::{
    Charge, Document, DocumentId, DocumentKind, Draft, Invoicing, LineInput, MemorySequenceStore, Party, Payment,
    PaymentMethod, RoundingRules, Series, SeriesName, Statement, StatementRequest, VatRefundDraft,
};
use crate::vat::{
    Country, CountryCode, Customer, LocationEvidence, NoOutsideEuRules, RefundPolicy, RefundRequest, Seller, Supply,
    VatId, VatIdStatus, decide_refund, determine,
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn date(y: i32, m: u32, d: u32) -> Result<NaiveDate> {
    Ok(NaiveDate::from_ymd_opt(y, m, d).ok_or("invalid date")?)
}

fn party(name: &str, address: &[&str], country: &str, vat_id: Option<&str>) -> Result<Party> {
    Ok(Party {
        name: name.into(),
        address: address.iter().map(|l| (*l).to_owned()).collect(),
        country: country.parse()?,
        vat_id: vat_id.map(VatId::parse).transpose()?,
    })
}

/// The seller: an Irish company registered for the One-Stop Shop.
pub(crate) fn seller() -> Result<Party> {
    party(
        "paygo Ltd",
        &["1 Grand Canal Square", "Dublin D02 X576"],
        "IE",
        Some("IE6433435F"),
    )
}

/// An issuer with this year's invoice and credit-note series, in memory.
pub(crate) fn invoicing() -> Result<Invoicing<MemorySequenceStore>> {
    Ok(Invoicing::open(
        MemorySequenceStore::new(),
        vec![
            Series::new("INV-2026", DocumentKind::Invoice, 6)?,
            Series::new("CN-2026", DocumentKind::CreditNote, 6)?,
        ],
    )?)
}

/// A $100 top-up to `buyer`, determined from two pieces of evidence and the VAT ID's
/// confirmation.
fn top_up(
    id: &str,
    buyer: Party,
    evidence: &str,
    confirmation: VatIdStatus,
    payment: Payment,
    national_fx: Option<FxRate>,
) -> Result<Draft> {
    let day = date(2026, 3, 2)?;
    let country: CountryCode = evidence.parse()?;
    let supply = Supply {
        seller: Seller {
            country: Country::Ireland,
            oss_registered: true,
        },
        customer: Customer {
            evidence: LocationEvidence {
                billing_country: Some(country),
                ip_country: Some(country),
                card_country: None,
            },
            vat_id: buyer.vat_id,
        },
        date: day,
    };
    let price = Money::parse("100.00", Currency::USD)?;
    let credits: Credits = CreditRate::default().to_credits(&price, Rounding::Down)?;
    let credits = credits.get().to_string();
    let grouped: Vec<&str> = credits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|c| std::str::from_utf8(c).unwrap_or("?"))
        .collect();
    Ok(Draft {
        id: DocumentId::new(id)?,
        series: SeriesName::new("INV-2026")?,
        seller: seller()?,
        buyer,
        supply_date: day,
        currency: Currency::USD,
        lines: vec![LineInput {
            description: format!(
                "Prepaid API credits: {} credits at 2,000,000 per USD",
                grouped.join(",")
            ),
            quantity: 1.into(),
            unit_price: price,
        }],
        vat: determine(&supply, &move |_: &VatId| confirmation, &NoOutsideEuRules)?,
        payment,
        rules: RoundingRules::default(),
        national_fx,
        buyer_reference: None,
        customer_number: None,
    })
}

fn card(reference: &str, day: NaiveDate) -> Payment {
    Payment {
        method: PaymentMethod::Card,
        reference: reference.into(),
        paid_on: Some(day),
    }
}

/// The example's documents, in the order they are issued: (a) a consumer in Germany,
/// (b) a business in France with a confirmed VAT ID, (c) a customer in the United States,
/// (d) a consumer in Poland, and the credit note that refunds (d)'s VAT once the customer
/// gives a confirmed Polish VAT ID.
pub(crate) fn documents() -> Result<Vec<Document>> {
    let invoicing = invoicing()?;
    let day = date(2026, 3, 2)?;
    let rate_day = date(2026, 3, 1)?;
    let mut docs = Vec::new();

    let germany = top_up(
        "topup-de-0001",
        party("Erika Mustermann", &["Heidestraße 17", "51147 Köln"], "DE", None)?,
        "DE",
        VatIdStatus::Unknown,
        card("ch_3QaDE0001", day),
        Some(FxRate::new(Currency::USD, Currency::EUR, "0.9234".parse()?, rate_day)?),
    )?;
    docs.push(invoicing.issue(&germany, day)?);

    let france = top_up(
        "topup-fr-0002",
        party(
            "Société Exemple SARL",
            &["12 rue de la Paix", "75002 Paris"],
            "FR",
            Some("FR40303265045"),
        )?,
        "FR",
        VatIdStatus::Valid,
        Payment {
            method: PaymentMethod::BankTransfer,
            reference: "SEPA-2026-03-0002".into(),
            paid_on: Some(day),
        },
        None,
    )?;
    docs.push(invoicing.issue(&france, day)?);

    let united_states = top_up(
        "topup-us-0003",
        party(
            "Acme Robotics Inc.",
            &["500 Market Street", "San Francisco, CA 94105"],
            "US",
            None,
        )?,
        "US",
        VatIdStatus::Unknown,
        Payment {
            method: PaymentMethod::PayPal,
            reference: "PAYID-NB3X0003".into(),
            paid_on: Some(day),
        },
        None,
    )?;
    docs.push(invoicing.issue(&united_states, day)?);

    let poland = top_up(
        "topup-pl-0004",
        party("Jan Kowalski", &["ul. Marszałkowska 10", "00-590 Warszawa"], "PL", None)?,
        "PL",
        VatIdStatus::Unknown,
        card("ch_3QaPL0004", day),
        Some(FxRate::new(Currency::USD, Currency::PLN, "3.9512".parse()?, rate_day)?),
    )?;
    let invoice = invoicing.issue(&poland, day)?;
    docs.push(invoice.clone());

    // On 2026-03-20 the customer gives a Polish VAT ID, which VIES confirms.
    let requested_on = date(2026, 3, 20)?;
    let request = RefundRequest {
        invoice: invoicing.refund_facts(invoice.number())?,
        vat_id: VatId::parse("PL8567346215")?,
        confirmation: VatIdStatus::Valid,
        requested_on,
    };
    let decision = decide_refund(&request, &RefundPolicy::new(Country::Ireland))?;
    let refund = VatRefundDraft {
        id: DocumentId::new("vat-refund-pl-0004")?,
        series: SeriesName::new("CN-2026")?,
        original: invoice.number().clone(),
        refund: card("re_3QaPL0004", requested_on),
    };
    docs.push(invoicing.issue_vat_refund(&refund, &decision, requested_on)?);
    Ok(docs)
}

/// A month of usage of one account: a few models, calls on most days.
pub(crate) fn statement() -> Result<Statement> {
    let rate = CreditRate::default();
    let models = [
        ("gpt-4o", 8_000i64),
        ("claude-sonnet-4", 12_345),
        ("flux-pro", 100_000),
        ("whisper-1", 3_000),
    ];
    let mut charges = Vec::new();
    for day in 1..=31u32 {
        for (i, (model, credits)) in models.iter().enumerate() {
            let count = (day * 7 + u32::try_from(i)? * 3) % 5;
            for call in 0..count {
                let credits = Credits::new(credits + i64::from(day) * 17 + i64::from(call));
                charges.push(Charge {
                    model: (*model).to_owned(),
                    at: Utc
                        .with_ymd_and_hms(2026, 3, day, 8 + call, 15, 0)
                        .single()
                        .ok_or("invalid time")?,
                    credits,
                    cost: rate.to_money_exact(credits)?,
                });
            }
        }
    }
    let request = StatementRequest {
        account: "acct_7Q2XK (Erika Mustermann)".into(),
        first_day: date(2026, 3, 1)?,
        last_day: date(2026, 3, 31)?,
        currency: Currency::USD,
    };
    Ok(Statement::build(&request, &charges)?)
}
