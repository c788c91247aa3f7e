//! The top-up service: a paid top-up is credited once and invoiced once with the VAT of
//! its buyer, however often the payment is reported; an auto top-up request is invoiced
//! when reported paid; a refused payment credits and invoices nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::sync::Arc;

use chrono::NaiveDate;
use paygo_billing::{
    AutoTopUp, AutoTopUpRule, BillingConfig, BillingStore, CardKind, Command, CustomerId, EmbeddedStore, HoldId,
    PaymentMethod, Receipt, Reference, Refusal, TopUpAmount, TopUpId, block_on,
};
use paygo_credits::{CreditRate, Credits, Currency, FxRate, Money};
use paygo_gateway::{Buyer, GatewayError, PaidFor, PaidTopUp, TopUpOptions, TopUps, VatRefund};
use paygo_invoice::{DocumentKind, Invoicing, MemorySequenceStore, Party, RoundingRules, Series, SeriesName};
use paygo_time::ManualClock;
use paygo_vat::{Country, LocationEvidence, NoOutsideEuRules, Seller, VatId, VatIdStatus};

const DAY: (i32, u32, u32) = (2026, 11, 24);

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(DAY.0, DAY.1, DAY.2).unwrap()
}

fn service() -> TopUps<MemorySequenceStore> {
    let invoicing = Invoicing::open(
        MemorySequenceStore::new(),
        vec![
            Series::new("INV-2026", DocumentKind::Invoice, 6).unwrap(),
            Series::new("CN-2026", DocumentKind::CreditNote, 6).unwrap(),
        ],
    )
    .unwrap();
    TopUps::new(
        invoicing,
        TopUpOptions {
            seller: Party {
                name: "paygo Ltd".into(),
                address: vec!["1 Grand Canal Square".into(), "Dublin D02 X576".into()],
                country: "IE".parse().unwrap(),
                vat_id: Some(VatId::parse("IE6433435F").unwrap()),
            },
            seller_vat: Seller {
                country: Country::Ireland,
                oss_registered: true,
            },
            series: SeriesName::new("INV-2026").unwrap(),
            credit_note_series: Some(SeriesName::new("CN-2026").unwrap()),
            credit_rate: CreditRate::default(),
            rounding: RoundingRules::default(),
            // VIES as the tests need it: one number it has no answer for, one it does not
            // know, every other registered.
            confirmer: Arc::new(|id: &VatId| match id.to_string().as_str() {
                "DE811569869" => VatIdStatus::Unknown,
                "FR40303265045" => VatIdStatus::Invalid,
                _ => VatIdStatus::Valid,
            }),
            outside_eu: Arc::new(NoOutsideEuRules),
            // The rates of the day; any other currency has none (an invoice that needs one
            // is refused).
            fx: Arc::new(|to: Currency, on: NaiveDate| {
                let rate = match to {
                    Currency::PLN => "3.9871",
                    Currency::EUR => "0.9213",
                    _ => return None,
                };
                Some(FxRate::new(Currency::USD, to, rate.parse().unwrap(), on).unwrap())
            }),
        },
    )
}

fn store() -> EmbeddedStore<ManualClock> {
    EmbeddedStore::in_memory(BillingConfig::default(), ManualClock::new(1_763_985_600_000_000_000)).unwrap()
}

fn buyer(country: &str, vat_id: Option<&str>) -> Buyer {
    let code = country.parse().unwrap();
    Buyer {
        name: "Ada".into(),
        address: vec!["1 Main St".into()],
        evidence: LocationEvidence {
            billing_country: Some(code),
            ip_country: Some(code),
            card_country: None,
        },
        vat_id: vat_id.map(|v| VatId::parse(v).unwrap()),
    }
}

fn paid(id: u128, customer: CustomerId, dollars: &str, buyer: Buyer) -> PaidTopUp {
    PaidTopUp {
        paid_for: PaidFor::TopUp { id: TopUpId(id) },
        customer,
        amount: Money::usd(dollars.parse().unwrap()),
        method: PaymentMethod::Card(CardKind::Credit),
        reference: format!("ch_{id}"),
        paid_on: day(),
        buyer,
        purchase_order: None,
    }
}

#[test]
fn a_paid_top_up_is_credited_and_invoiced_once_with_the_buyers_vat() {
    let (topups, billing) = (service(), store());
    let customer = CustomerId(1);
    block_on(billing.submit(vec![Command::OpenAccount { customer }])).unwrap();
    // A consumer in Poland: Polish VAT (23%) through the OSS, shown in złoty too.
    let report = paid(7, customer, "10.00", buyer("PL", None));
    let first = block_on(topups.record(&billing, &report)).unwrap();
    assert_eq!(first.credits, Credits::new(20_000_000));
    // The credits' price is the net amount: VAT is on top.
    let totals = first.invoice.totals();
    assert_eq!(totals.net, Money::usd("10.00".parse().unwrap()));
    assert_eq!(totals.vat, Money::usd("2.30".parse().unwrap()));
    assert_eq!(totals.gross, Money::usd("12.30".parse().unwrap()));
    assert!(first.invoice.national_vat().is_some(), "VAT in PLN (Article 230)");
    assert_eq!(first.invoice.buyer().country.to_string(), "PL");
    // The webhook is delivered again: the same credits, the same invoice, nothing more.
    let again = block_on(topups.record(&billing, &report)).unwrap();
    assert_eq!(again, first);
    assert_eq!(
        block_on(billing.balance(customer)).unwrap().available,
        Credits::new(20_000_000)
    );
    assert_eq!(topups.invoicing().documents().unwrap().len(), 1);
    // A German business with a confirmed VAT ID: reverse charge, no VAT.
    let other = CustomerId(2);
    block_on(billing.submit(vec![Command::OpenAccount { customer: other }])).unwrap();
    let b2b = block_on(topups.record(&billing, &paid(8, other, "100.00", buyer("DE", Some("DE136695976"))))).unwrap();
    assert_eq!(b2b.invoice.totals().vat, Money::usd("0.00".parse().unwrap()));
    assert_eq!(b2b.invoice.number().to_string(), "INV-2026-000002");
}

#[test]
fn a_refused_payment_credits_and_invoices_nothing() {
    let (topups, billing) = (service(), store());
    let customer = CustomerId(1);
    block_on(billing.submit(vec![Command::OpenAccount { customer }])).unwrap();
    let mut gift = paid(9, customer, "10.00", buyer("FR", None));
    gift.method = PaymentMethod::GiftCard;
    let refused = block_on(topups.record(&billing, &gift)).unwrap_err();
    assert!(matches!(
        refused,
        GatewayError::Refused(Refusal::PaymentMethodRefused(_))
    ));
    let unknown = block_on(topups.record(&billing, &paid(10, CustomerId(5), "10.00", buyer("FR", None)))).unwrap_err();
    assert_eq!(unknown, GatewayError::Refused(Refusal::UnknownAccount));
    assert!(topups.invoicing().documents().unwrap().is_empty());
    assert_eq!(block_on(billing.balance(customer)).unwrap().available, Credits::ZERO);
}

#[test]
fn an_auto_top_up_request_reported_paid_is_invoiced() {
    let (topups, billing) = (service(), store());
    let customer = CustomerId(1);
    let card = PaymentMethod::Card(CardKind::Debit);
    let rule = AutoTopUpRule {
        enabled: true,
        threshold: Credits::new(1_000_000),
        amount: TopUpAmount::Fixed(Money::usd("5.00".parse().unwrap())),
        method: card,
        requests_per_window_max: 3,
        window_ms: 3_600_000,
        backoff_ms: 1_000,
        backoff_max_ms: 60_000,
        monthly_cap: None,
        disable_after_declines: None,
        // A business with a German VAT ID and a purchase order on file for automatic top-ups.
        buyer_tax_id: Some(Reference::new("DE136695976").unwrap()),
        purchase_order: Some(Reference::new("PO-4471").unwrap()),
    };
    let replies = block_on(billing.submit(vec![
        Command::OpenAccount { customer },
        Command::TopUp {
            id: TopUpId(1),
            customer,
            amount: Money::usd("1.00".parse().unwrap()),
            method: card,
        },
        Command::SetAutoTopUp {
            customer,
            rule: Some(rule),
        },
        Command::Hold {
            id: HoldId(1),
            customer,
            amount: Credits::new(1_500_000),
            timeout_ms: 60_000,
        },
        Command::Capture {
            hold: HoldId(1),
            amount: Credits::new(1_500_000),
        },
    ]))
    .unwrap();
    let Ok(Receipt::Captured {
        auto_top_up: AutoTopUp::Requested(request),
        ..
    }) = replies[4]
    else {
        panic!("{:?}", replies[4])
    };
    let report = PaidTopUp::for_request(&request, "ch_auto_1".into(), day(), buyer("DE", None));
    let invoiced = block_on(topups.record(&billing, &report)).unwrap();
    assert_eq!(invoiced.credits, Credits::new(10_000_000));
    // The rule's tax ID made it a reverse-charge invoice, with the purchase order on it.
    assert_eq!(invoiced.invoice.totals().gross, Money::usd("5.00".parse().unwrap()));
    assert_eq!(
        invoiced.invoice.buyer().vat_id,
        Some(VatId::parse("DE136695976").unwrap())
    );
    assert_eq!(invoiced.invoice.buyer_reference(), Some("PO-4471"));
    assert!(invoiced.invoice.to_text().contains("Your reference: PO-4471."));
    assert_eq!(block_on(topups.record(&billing, &report)).unwrap(), invoiced);
    assert_eq!(
        block_on(billing.balance(customer)).unwrap().available,
        Credits::new(2_000_000 - 1_500_000 + 10_000_000)
    );
}

#[test]
fn vat_paid_before_a_vat_id_is_given_back_by_one_credit_note() {
    let (topups, billing) = (service(), store());
    let customer = CustomerId(1);
    block_on(billing.submit(vec![Command::OpenAccount { customer }])).unwrap();
    // A German business pays before giving its VAT ID: German VAT (19%).
    let invoice = block_on(topups.record(&billing, &paid(9, customer, "100.00", buyer("DE", None))))
        .unwrap()
        .invoice;
    assert_eq!(invoice.totals().vat, Money::usd("19.00".parse().unwrap()));
    let later = day() + chrono::Duration::days(10);
    // VIES does not answer for this one: no decision, nothing issued.
    let unknown = VatId::parse("DE811569869").unwrap();
    assert!(matches!(
        topups.refund_vat(invoice.number(), unknown, later).unwrap(),
        VatRefund::RetryLater(_)
    ));
    // Not registered: rejected, nothing issued.
    let invalid = VatId::parse("FR40303265045").unwrap();
    assert!(matches!(
        topups.refund_vat(invoice.number(), invalid, later).unwrap(),
        VatRefund::Rejected(_)
    ));
    assert_eq!(topups.invoicing().documents().unwrap().len(), 1);
    // Confirmed: the VAT (only) comes back by a credit note that names the invoice.
    let valid = VatId::parse("DE136695976").unwrap();
    let VatRefund::CreditNote(note) = topups.refund_vat(invoice.number(), valid, later).unwrap() else {
        panic!("a confirmed VAT ID within the time limit is refunded");
    };
    assert_eq!(note.number().to_string(), "CN-2026-000001");
    assert_eq!(note.totals().net, Money::usd("0.00".parse().unwrap()));
    assert_eq!(note.totals().vat, Money::usd("-19.00".parse().unwrap()));
    assert_eq!(note.correction().unwrap().original, *invoice.number());
    assert_eq!(note.customer_number(), Some("1"));
    // Asked again: the same credit note, nothing more.
    assert_eq!(
        topups.refund_vat(invoice.number(), valid, later).unwrap(),
        VatRefund::CreditNote(note.clone())
    );
    assert_eq!(topups.invoicing().documents().unwrap().len(), 2);
    // An unknown invoice is an error, not a decision.
    let unknown_number = topups.invoicing().documents().unwrap()[1].number().clone();
    assert!(
        topups.refund_vat(&unknown_number, valid, later).is_err(),
        "a credit note is not an invoice"
    );
}
