//! A top-up's credits and its invoice number in one transaction (`JointTopUps` for
//! `PgStore`, through `TopUps::with_joint`) against a real server (`PAYGO_TEST_POSTGRES_URL`;
//! skipped with a printed reason when unset, never in CI): credited and numbered together,
//! neither when the invoice's write fails, once across two replicas, nothing for a refused
//! payment, numbers without gaps throughout.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::sync::Arc;

use chrono::NaiveDate;
use paygo_billing::{BillingConfig, BillingStore, CardKind, Command, CustomerId, PaymentMethod, TopUpId};
use paygo_credits::{CreditRate, Credits, Money};
use paygo_gateway::{Buyer, GatewayError, PaidFor, PaidTopUp, TopUpOptions, TopUps};
use paygo_invoice::{DocumentKind, Invoicing, Party, RoundingRules, SequenceStore, Series, SeriesName};
use paygo_postgres::{PgOptions, PgSequenceStore, PgStore};
use paygo_vat::{Country, LocationEvidence, NoOutsideEuRules, Seller, VatId, VatIdStatus};

fn url() -> Option<String> {
    match std::env::var("PAYGO_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: PAYGO_TEST_POSTGRES_URL is not set (CI sets it; see .ci/run)");
            None
        }
    }
}

/// One replica: its billing store, its invoice numbering and its top-up service, on the
/// schema every replica shares.
struct Replica {
    billing: PgStore,
    topups: TopUps<PgSequenceStore>,
}

async fn replica(url: &str, schema: &str) -> Replica {
    let billing = PgStore::open(PgOptions::new(url).with_schema(schema), BillingConfig::default())
        .await
        .unwrap();
    let (url2, schema2) = (url.to_owned(), schema.to_owned());
    let numbers = tokio::task::spawn_blocking(move || PgSequenceStore::open(&url2, &schema2))
        .await
        .unwrap()
        .unwrap();
    let invoicing = Invoicing::open(
        numbers,
        vec![Series::new("INV-2026", DocumentKind::Invoice, 6).unwrap()],
    )
    .unwrap();
    let options = TopUpOptions {
        seller: Party {
            name: "paygo Ltd".into(),
            address: vec!["1 Grand Canal Square".into()],
            country: "IE".parse().unwrap(),
            vat_id: Some(VatId::parse("IE6433435F").unwrap()),
        },
        seller_vat: Seller {
            country: Country::Ireland,
            oss_registered: true,
        },
        series: SeriesName::new("INV-2026").unwrap(),
        credit_note_series: None,
        credit_rate: CreditRate::default(),
        rounding: RoundingRules::default(),
        confirmer: Arc::new(|_: &VatId| VatIdStatus::Valid),
        outside_eu: Arc::new(NoOutsideEuRules),
        fx: Arc::new(|_, _| None),
    };
    let topups = TopUps::new(invoicing, options).with_joint(Arc::new(billing.clone()));
    Replica { billing, topups }
}

fn paid(id: u128, customer: CustomerId, reference: &str) -> PaidTopUp {
    let us = "US".parse().unwrap();
    PaidTopUp {
        paid_for: PaidFor::TopUp { id: TopUpId(id) },
        customer,
        amount: Money::usd("10.00".parse().unwrap()),
        method: PaymentMethod::Card(CardKind::Credit),
        reference: reference.into(),
        paid_on: NaiveDate::from_ymd_opt(2026, 12, 3).unwrap(),
        buyer: Buyer {
            name: "Ada Inc".into(),
            address: vec!["1 Main St".into()],
            evidence: LocationEvidence {
                billing_country: Some(us),
                ip_country: Some(us),
                card_country: None,
            },
            vat_id: None,
        },
        purchase_order: None,
    }
}

async fn sql(url: &str, statement: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.batch_execute(statement).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_and_invoice_number_commit_together_or_not_at_all() {
    let Some(url) = url() else { return };
    let schema = format!("t_joint_{}", std::process::id());
    paygo_postgres::drop_schema(&url, &schema).await.unwrap();
    let a = replica(&url, &schema).await;
    let customer = CustomerId(1);
    a.billing.submit(vec![Command::OpenAccount { customer }]).await.unwrap();
    let balance = |r: &Replica| {
        let billing = r.billing.clone();
        async move { billing.balance(customer).await.unwrap().available }
    };

    // Credited and numbered together.
    let first = a.topups.record(&a.billing, &paid(1, customer, "pay-1")).await.unwrap();
    assert_eq!(first.credits, Credits::new(20_000_000));
    assert_eq!(first.invoice.number().to_string(), "INV-2026-000001");
    assert_eq!(balance(&a).await, Credits::new(20_000_000));

    // The invoice's write fails inside the transaction (a trigger of the test's): the
    // credits are not kept either, and no number is used.
    sql(
        &url,
        &format!(
            "CREATE FUNCTION {schema}.refuse() RETURNS trigger AS $$ BEGIN
               IF NEW.key = 'pay-boom' THEN RAISE EXCEPTION 'refused by the test'; END IF;
               RETURN NEW; END $$ LANGUAGE plpgsql;
             CREATE TRIGGER refuse BEFORE INSERT ON {schema}.invoice_records
               FOR EACH ROW EXECUTE FUNCTION {schema}.refuse();"
        ),
    )
    .await;
    let failed = a.topups.record(&a.billing, &paid(2, customer, "pay-boom")).await;
    assert!(matches!(failed, Err(GatewayError::Billing(_))), "{failed:?}");
    assert_eq!(
        balance(&a).await,
        Credits::new(20_000_000),
        "no credits without their invoice"
    );
    assert_eq!(
        a.topups
            .invoicing()
            .store()
            .last(&SeriesName::new("INV-2026").unwrap())
            .unwrap(),
        1,
        "no number used"
    );
    sql(&url, &format!("DROP TRIGGER refuse ON {schema}.invoice_records")).await;
    // Reported again once the cause is gone: both, once, with the next number.
    let boom = a
        .topups
        .record(&a.billing, &paid(2, customer, "pay-boom"))
        .await
        .unwrap();
    assert_eq!(boom.invoice.number().to_string(), "INV-2026-000002");
    assert_eq!(balance(&a).await, Credits::new(40_000_000));

    // Another replica gets the same report (a webhook retried elsewhere): the invoice it
    // finds, the credits once.
    let b = replica(&url, &schema).await;
    let again = b
        .topups
        .record(&b.billing, &paid(2, customer, "pay-boom"))
        .await
        .unwrap();
    assert_eq!(again.invoice, boom.invoice);
    assert_eq!(again.credits, Credits::new(20_000_000));
    assert_eq!(balance(&b).await, Credits::new(40_000_000));
    // Both replicas at once, new payments: every number once, no gap.
    let (p3, p4) = (paid(3, customer, "pay-3"), paid(4, customer, "pay-4"));
    let (x, y) = tokio::join!(a.topups.record(&a.billing, &p3), b.topups.record(&b.billing, &p4));
    let mut numbers = vec![
        x.unwrap().invoice.number().to_string(),
        y.unwrap().invoice.number().to_string(),
    ];
    numbers.sort();
    assert_eq!(numbers, ["INV-2026-000003", "INV-2026-000004"]);
    assert_eq!(balance(&a).await, Credits::new(80_000_000));

    // A refused payment (an account that does not exist): nothing credited, no number.
    let refused = a.topups.record(&a.billing, &paid(5, CustomerId(99), "pay-5")).await;
    assert!(matches!(refused, Err(GatewayError::Refused(_))), "{refused:?}");
    assert_eq!(
        b.topups
            .invoicing()
            .store()
            .last(&SeriesName::new("INV-2026").unwrap())
            .unwrap(),
        4
    );
    drop((a, b));
    paygo_postgres::drop_schema(&url, &schema).await.unwrap();
}
