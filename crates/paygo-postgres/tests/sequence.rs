//! The invoice numbering on PostgreSQL against a real server (`PAYGO_TEST_POSTGRES_URL`;
//! skipped with a printed reason when unset): the `SequenceStore` contract suite, gapless
//! numbers from threads and from two stores ("replicas") at once, failed and panicking
//! seals, ids recorded once, reopening, a broken connection, and `Invoicing` on top. Each
//! test has a schema of its own, dropped at the end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

#[path = "../../paygo-invoice/tests/support/common.rs"]
#[allow(dead_code)]
mod common;

use std::collections::BTreeSet;
use std::time::Instant;

use paygo_invoice::{
    CreditNoteDraft, DocumentId, InvoiceError, SEQUENCE_MAX, SequenceRecord, SequenceStore, SeriesName, contract,
};
use paygo_postgres::{PgSequenceStore, PostgresError};

/// The server's URL, or `None` (with the reason printed) when the tests cannot run here.
fn url() -> Option<String> {
    match std::env::var("PAYGO_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: PAYGO_TEST_POSTGRES_URL is not set (CI sets it; see .ci/run)");
            None
        }
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// A schema of this test's own, dropped when it ends (also on failure).
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    fn new(url: String, test: &str) -> Schema {
        let name = format!("seq_{test}_{}", std::process::id());
        block_on(paygo_postgres::drop_schema(&url, &name)).unwrap();
        Schema { url, name }
    }

    fn open(&self) -> PgSequenceStore {
        PgSequenceStore::open(&self.url, &self.name).unwrap()
    }

    /// Terminates the backends of connections named `app`; returns how many.
    fn terminate(&self, app: &str) -> usize {
        block_on(async {
            let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.unwrap();
            let task = tokio::spawn(connection);
            let rows = client
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                    &[&app],
                )
                .await
                .unwrap();
            drop(client);
            let _ = task.await;
            rows.iter().filter(|r| r.get::<_, bool>(0)).count()
        })
    }

    /// Runs `sql` (`{s}` is the schema) on a connection of its own.
    fn execute(&self, sql: &str) {
        let sql = sql.replace("{s}", &self.name);
        block_on(async {
            let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.unwrap();
            let task = tokio::spawn(connection);
            client.batch_execute(&sql).await.unwrap();
            drop(client);
            let _ = task.await;
        });
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = block_on(paygo_postgres::drop_schema(&self.url, &self.name));
    }
}

fn series(name: &str) -> SeriesName {
    SeriesName::new(name).unwrap()
}

fn key(id: &str) -> DocumentId {
    DocumentId::new(id).unwrap()
}

fn commit(store: &dyn SequenceStore, series_name: &str, id: &str) -> Result<u64, InvoiceError> {
    store.commit(&series(series_name), &key(id), &mut |n| {
        Ok(format!("{{\"doc\":\"{id}\",\"n\":{n}}}"))
    })
}

fn numbers(records: &[SequenceRecord], series_name: &str) -> Vec<u64> {
    records
        .iter()
        .filter(|r| r.series.as_str() == series_name)
        .map(|r| r.sequence)
        .collect()
}

#[test]
fn the_store_keeps_the_contract() {
    let Some(url) = url() else { return };
    let schema = Schema::new(url, "contract");
    contract::run_all(&schema.open(), "PG");
    contract::survives_reopening(&|| schema.open(), "PGREOPEN");
}

const THREADS: usize = 3;
const EACH: usize = 25;

#[test]
fn two_replicas_and_their_threads_get_every_number_once() {
    let Some(url) = url() else { return };
    let schema = Schema::new(url, "replicas");
    let replicas = [schema.open(), schema.open()];
    let got: Vec<(String, u64)> = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for (r, store) in replicas.iter().enumerate() {
            for t in 0..THREADS {
                handles.push(scope.spawn(move || {
                    (0..EACH)
                        .map(|i| {
                            let s = if i % 3 == 2 { "CN-2026" } else { "INV-2026" };
                            (s.to_owned(), commit(store, s, &format!("r{r}-t{t}-{i}")).unwrap())
                        })
                        .collect::<Vec<_>>()
                }));
            }
        }
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let mut seen = BTreeSet::new();
    for (s, n) in &got {
        assert!(seen.insert((s.clone(), *n)), "{s} {n} handed out twice");
    }
    let count = |s: &str| got.iter().filter(|(name, _)| name == s).count() as u64;
    let (inv, cn) = (count("INV-2026"), count("CN-2026"));
    assert_eq!(inv + cn, (2 * THREADS * EACH) as u64);
    for store in &replicas {
        let records = store.records().unwrap();
        assert_eq!(numbers(&records, "INV-2026"), (1..=inv).collect::<Vec<_>>());
        assert_eq!(numbers(&records, "CN-2026"), (1..=cn).collect::<Vec<_>>());
        assert_eq!(store.last(&series("INV-2026")).unwrap(), inv);
        assert_eq!(store.last(&series("CN-2026")).unwrap(), cn);
        // Every record is the body its number was sealed with.
        for record in &records {
            let doc = record.key.as_str();
            assert_eq!(record.body, format!("{{\"doc\":\"{doc}\",\"n\":{}}}", record.sequence));
        }
    }
}

#[test]
fn a_failed_or_panicking_seal_consumes_nothing_and_releases_the_series() {
    let Some(url) = url() else { return };
    let schema = Schema::new(url, "seal");
    let (one, two) = (schema.open(), schema.open());
    assert_eq!(commit(&one, "INV-2026", "a").unwrap(), 1);
    let failed = one.commit(&series("INV-2026"), &key("b"), &mut |n| {
        assert_eq!(n, 2);
        Err(InvoiceError::Overflow { operation: "injected" })
    });
    assert!(matches!(failed, Err(InvoiceError::Overflow { operation: "injected" })));
    // The other replica is offered the number the failed seal did not use.
    assert_eq!(commit(&two, "INV-2026", "c").unwrap(), 2);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        one.commit(&series("INV-2026"), &key("d"), &mut |_| panic!("a seal that panics"))
    }));
    assert!(panicked.is_err());
    // The panicking caller's transaction was rolled back: both replicas go on with 3.
    assert_eq!(commit(&two, "INV-2026", "e").unwrap(), 3);
    assert_eq!(commit(&one, "INV-2026", "f").unwrap(), 4);
    let records = one.records().unwrap();
    assert_eq!(numbers(&records, "INV-2026"), [1, 2, 3, 4]);
    let keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["a", "c", "e", "f"]);
    // A record larger than a store accepts consumes nothing either.
    let large = one.commit(&series("INV-2026"), &key("g"), &mut |_| {
        Ok("x".repeat(paygo_invoice::RECORD_MAX_BYTES + 1))
    });
    assert!(matches!(large, Err(InvoiceError::Overflow { .. })), "{large:?}");
    assert_eq!(commit(&two, "INV-2026", "g").unwrap(), 5);
}

#[test]
fn an_id_is_recorded_once_across_replicas() {
    let Some(url) = url() else { return };
    let schema = Schema::new(url, "ids");
    let (one, two) = (schema.open(), schema.open());
    assert_eq!(commit(&one, "INV-2026", "pay-1").unwrap(), 1);
    for store in [&one, &two] {
        let mut sealed = false;
        let again = store.commit(&series("CN-2026"), &key("pay-1"), &mut |_| {
            sealed = true;
            Ok("{}".into())
        });
        assert!(!sealed, "refused before sealing");
        match again {
            Err(InvoiceError::AlreadyIssued { id, number }) => {
                assert_eq!((id.as_str(), number.as_str()), ("pay-1", "INV-2026-1"));
            }
            other => panic!("expected AlreadyIssued, got {other:?}"),
        }
    }
    assert_eq!(one.last(&series("CN-2026")).unwrap(), 0, "nothing consumed");
    assert_eq!(commit(&two, "INV-2026", "pay-2").unwrap(), 2);
    // Two replicas racing to record one id in two series: exactly one records it.
    for round in 0..10 {
        let id = format!("race-{round}");
        let results: Vec<Result<u64, InvoiceError>> = std::thread::scope(|scope| {
            let a = scope.spawn(|| commit(&one, "RACE-A", &id));
            let b = scope.spawn(|| commit(&two, "RACE-B", &id));
            vec![a.join().unwrap(), b.join().unwrap()]
        });
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 1, "round {round}: {results:?}");
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Err(InvoiceError::AlreadyIssued { .. }))),
            "round {round}: {results:?}"
        );
    }
    let records = one.records().unwrap();
    let raced = numbers(&records, "RACE-A").len() + numbers(&records, "RACE-B").len();
    assert_eq!(raced, 10);
    // Each race series is gapless (the loser's number was not consumed).
    for s in ["RACE-A", "RACE-B"] {
        let n = numbers(&records, s);
        assert_eq!(n, (1..=n.len() as u64).collect::<Vec<_>>());
    }
}

#[test]
fn the_last_number_of_a_series_is_bounded() {
    let Some(url) = url() else { return };
    let schema = Schema::new(url, "overflow");
    let store = schema.open();
    assert_eq!(commit(&store, "INV-2026", "a").unwrap(), 1);
    schema.execute(&format!(
        "UPDATE {{s}}.invoice_series SET last = {} WHERE series = 'INV-2026'",
        SEQUENCE_MAX - 1
    ));
    assert_eq!(commit(&store, "INV-2026", "b").unwrap(), SEQUENCE_MAX);
    assert!(matches!(
        commit(&store, "INV-2026", "c"),
        Err(InvoiceError::Overflow { .. })
    ));
    assert_eq!(store.last(&series("INV-2026")).unwrap(), SEQUENCE_MAX);
    // A gap made by hand is reported when the records are read.
    assert!(matches!(store.records(), Err(InvoiceError::Inconsistent { sequence, .. }) if sequence == SEQUENCE_MAX));
}

#[test]
fn a_broken_connection_is_opened_again() {
    let Some(url) = url() else { return };
    let schema = Schema::new(url.clone(), "reconnect");
    let app = format!("seq_reconnect_{}", std::process::id());
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = PgSequenceStore::open(&format!("{url}{sep}application_name={app}"), &schema.name).unwrap();
    assert_eq!(commit(&store, "INV-2026", "a").unwrap(), 1);
    for (round, id) in ["b", "c"].iter().enumerate() {
        assert_eq!(schema.terminate(&app), 1, "the store's one connection");
        std::thread::sleep(std::time::Duration::from_millis(50 * round as u64));
        assert_eq!(commit(&store, "INV-2026", id).unwrap(), round as u64 + 2);
    }
    // Reads reconnect too.
    assert_eq!(schema.terminate(&app), 1);
    assert_eq!(store.last(&series("INV-2026")).unwrap(), 3);
    assert_eq!(schema.terminate(&app), 1);
    assert_eq!(numbers(&store.records().unwrap(), "INV-2026"), [1, 2, 3]);
}

#[test]
fn a_failed_commit_statement_is_looked_into_and_consumes_nothing() {
    let Some(url) = url() else { return };
    let schema = Schema::new(url, "commit_fails");
    let store = schema.open();
    assert_eq!(commit(&store, "INV-2026", "a").unwrap(), 1);
    // A deferred check that fails at COMMIT, for one id: the commit statement itself fails.
    schema.execute(
        "CREATE FUNCTION {s}.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.key = 'refused' THEN RAISE EXCEPTION 'refused at commit'; END IF;
             RETURN NEW;
         END $$;
         CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON {s}.invoice_records
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {s}.refuse();",
    );
    match commit(&store, "INV-2026", "refused") {
        Err(InvoiceError::Store { message, .. }) => {
            assert!(message.contains("did not commit, nothing was consumed"), "{message}");
        }
        other => panic!("expected a store error, got {other:?}"),
    }
    assert_eq!(commit(&store, "INV-2026", "b").unwrap(), 2);
    assert_eq!(numbers(&store.records().unwrap(), "INV-2026"), [1, 2]);
}

#[test]
fn opening_checks_its_arguments_and_the_schema_version() {
    let Some(url) = url() else { return };
    assert!(matches!(
        PgSequenceStore::open(&url, "Bad-Name"),
        Err(PostgresError::InvalidSchemaName { .. })
    ));
    assert!(matches!(
        PgSequenceStore::open("not a url", "seq_x"),
        Err(PostgresError::InvalidUrl { .. })
    ));
    let schema = Schema::new(url, "version");
    drop(schema.open());
    schema.execute("UPDATE {s}.meta SET value = '99' WHERE key = 'schema_version'");
    assert!(matches!(
        PgSequenceStore::open(&schema.url, &schema.name),
        Err(PostgresError::SchemaTooNew { found: 99, .. })
    ));
}

#[test]
fn the_billing_store_and_the_numbering_share_one_schema() {
    let Some(url) = url() else { return };
    let schema = Schema::new(url, "shared");
    // The numbering first (it migrates without billing settings), then the billing store,
    // which records its settings; then the numbering again.
    let numbering = schema.open();
    assert_eq!(commit(&numbering, "INV-2026", "a").unwrap(), 1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let options = paygo_postgres::PgOptions::new(schema.url.clone()).with_schema(&schema.name);
    let billing = runtime
        .block_on(paygo_postgres::PgStore::open(
            options.clone(),
            paygo_billing::BillingConfig::default(),
        ))
        .unwrap();
    drop(billing);
    let again = schema.open();
    assert_eq!(commit(&again, "INV-2026", "b").unwrap(), 2);
    // The billing settings are still checked by the billing store.
    let mut other = paygo_billing::BillingConfig::default();
    other.bonus_enabled = !other.bonus_enabled;
    assert!(matches!(
        runtime.block_on(paygo_postgres::PgStore::open(options, other)),
        Err(PostgresError::ConfigMismatch { .. })
    ));
}

#[test]
fn commits_from_inside_a_tokio_runtime_work() {
    let Some(url) = url() else { return };
    let schema = Schema::new(url, "in_runtime");
    let store = std::sync::Arc::new(schema.open());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let numbers: Vec<u64> = runtime.block_on(async {
        let tasks: Vec<_> = (0..4)
            .map(|t| {
                let store = std::sync::Arc::clone(&store);
                // As an axum handler would call it: on a worker thread of the runtime.
                tokio::spawn(async move { commit(store.as_ref(), "INV-2026", &format!("task-{t}")).unwrap() })
            })
            .collect();
        let mut numbers = Vec::new();
        for task in tasks {
            numbers.push(task.await.unwrap());
        }
        numbers
    });
    let mut sorted = numbers.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [1, 2, 3, 4]);
}

#[test]
fn invoicing_issues_on_the_store_and_finds_its_documents_after_reopening() {
    let Some(url) = url() else { return };
    let schema = Schema::new(url, "invoicing");
    let (invoice, note) = {
        let invoicing = common::invoicing(schema.open());
        let invoice = invoicing
            .issue(&common::de_draft("inv", "100.00"), common::day(2))
            .unwrap();
        assert_eq!(invoice.number().to_string(), "INV-2026-000001");
        let note = invoicing
            .issue_credit_note(
                &CreditNoteDraft {
                    id: key("cn"),
                    series: series("CN-2026"),
                    original: invoice.number().clone(),
                    reason: "goodwill".into(),
                    lines: vec![common::usd_line("30.00")],
                    refund: common::card("re_1"),
                },
                common::day(3),
            )
            .unwrap();
        (invoice, note)
    };
    // Another replica (or a restart) opens the same schema and sees the documents.
    let invoicing = common::invoicing(schema.open());
    assert_eq!(invoicing.documents().unwrap(), [invoice.clone(), note]);
    assert_eq!(
        invoicing.credited(invoice.number()).unwrap().net.to_string(),
        "30.00 USD"
    );
    assert!(matches!(
        invoicing.issue(&common::de_draft("inv", "100.00"), common::day(2)),
        Err(InvoiceError::AlreadyIssued { .. })
    ));
    assert_eq!(
        invoicing
            .issue(&common::de_draft("inv2", "5.00"), common::day(4))
            .unwrap()
            .number()
            .sequence(),
        2
    );
}

/// Commits a measured run makes.
const N: usize = 400;

/// Commits a second, from one thread and from two replicas with two threads each (run with
/// `--ignored --nocapture`).
#[test]
#[ignore = "a measurement: run by hand"]
fn measure_commit_rate() {
    let Some(url) = url() else { return };
    let schema = Schema::new(url, "measure");
    let one = schema.open();
    let mut runs = Vec::new();
    for run in 0..5 {
        let start = Instant::now();
        for i in 0..N {
            commit(&one, "SINGLE", &format!("s{run}-{i}")).unwrap();
        }
        runs.push(N as f64 / start.elapsed().as_secs_f64());
    }
    runs.sort_by(f64::total_cmp);
    println!("one thread, one series: median {:.0} commits/s ({runs:.0?})", runs[2]);
    let two = schema.open();
    for (label, series_of) in [
        ("one series", (|_: usize| "SHARED".to_owned()) as fn(usize) -> String),
        ("a series per thread", |t: usize| format!("OWN-{t}")),
    ] {
        let mut runs = Vec::new();
        for run in 0..5 {
            let start = Instant::now();
            std::thread::scope(|scope| {
                for (r, store) in [&one, &two].into_iter().enumerate() {
                    for t in 0..2 {
                        let s = series_of(r * 2 + t);
                        scope.spawn(move || {
                            for i in 0..N / 4 {
                                commit(store, &s, &format!("c{label}{run}-{r}-{t}-{i}").replace(' ', "_")).unwrap();
                            }
                        });
                    }
                }
            });
            runs.push(N as f64 / start.elapsed().as_secs_f64());
        }
        runs.sort_by(f64::total_cmp);
        println!(
            "two replicas x two threads, {label}: median {:.0} commits/s ({runs:.0?})",
            runs[2]
        );
    }
}

/// Two issuers on one schema (two replicas): a draft issued by one is refused as issued by
/// the other, which then learns it with `Invoicing::refresh` and finds the same document —
/// what the gateway does when a payment is reported again on another replica.
#[test]
fn a_document_issued_by_another_replica_is_learnt_not_issued_again() {
    use chrono::NaiveDate;
    use paygo_credits::{Currency, Money};
    use paygo_invoice::{
        DocumentKind, Draft, Invoicing, LineInput, Party, Payment, PaymentMethod, RoundingRules, Series,
    };
    use paygo_vat::{
        Country, CountryCode, Customer, LocationEvidence, NoOutsideEuRules, Seller, Supply, VatId, VatIdStatus,
        determine,
    };
    let Some(url) = url() else { return };
    let schema = Schema::new(url, "learnt");
    let series = || vec![Series::new("INV-2026", DocumentKind::Invoice, 6).unwrap()];
    let a = Invoicing::open(schema.open(), series()).unwrap();
    let b = Invoicing::open(schema.open(), series()).unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
    let us: CountryCode = "US".parse().unwrap();
    let party = |name: &str, country: CountryCode, vat_id| Party {
        name: name.into(),
        address: vec!["1 Main Street".into()],
        country,
        vat_id,
    };
    let supply = Supply {
        seller: Seller {
            country: Country::Ireland,
            oss_registered: true,
        },
        customer: Customer {
            evidence: LocationEvidence {
                billing_country: Some(us),
                ip_country: Some(us),
                card_country: None,
            },
            vat_id: None,
        },
        date: day,
    };
    let draft = Draft {
        id: DocumentId::new("pay-1").unwrap(),
        series: SeriesName::new("INV-2026").unwrap(),
        seller: party(
            "paygo Ltd",
            "IE".parse().unwrap(),
            Some(VatId::parse("IE6433435F").unwrap()),
        ),
        buyer: party("Jane Doe", us, None),
        supply_date: day,
        currency: Currency::USD,
        lines: vec![LineInput {
            description: "API credits".into(),
            quantity: 1.into(),
            unit_price: Money::parse("10.00", Currency::USD).unwrap(),
        }],
        vat: determine(&supply, &|_: &VatId| VatIdStatus::Unknown, &NoOutsideEuRules).unwrap(),
        payment: Payment {
            method: PaymentMethod::Card,
            reference: "pay-1".into(),
            paid_on: Some(day),
        },
        rules: RoundingRules::default(),
        national_fx: None,
        buyer_reference: None,
        customer_number: None,
    };
    let issued = a.issue(&draft, day).unwrap();
    assert!(b.get_by_id(&draft.id).unwrap().is_none(), "B has not read it yet");
    assert!(matches!(b.issue(&draft, day), Err(InvoiceError::AlreadyIssued { .. })));
    assert_eq!(b.refresh().unwrap(), 1);
    assert_eq!(b.get_by_id(&draft.id).unwrap(), Some(issued.clone()));
    assert_eq!(b.refresh().unwrap(), 0, "nothing new the second time");
    // B numbers on after A's number.
    let next = Draft {
        id: DocumentId::new("pay-2").unwrap(),
        ..draft
    };
    assert_eq!(
        b.issue(&next, day).unwrap().number().sequence(),
        issued.number().sequence() + 1
    );
}
