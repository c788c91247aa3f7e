//! What the PostgreSQL server tests share: the server's options, a server process of this
//! test binary's own (a child that runs `child_server`, so that it can be killed with
//! SIGKILL), a client that records what was acknowledged, and the checks against the
//! database.

#![allow(dead_code)] // each test binary uses its own part

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use paygo_billing::{BillingConfig, BillingStore, CustomerId, EntryKind, HistoryQuery, HoldId};
use paygo_http::{Directory, ProxyOptions, SellerOptions, ServerBuilder, ServerOptions, UsageLog, serve};
use paygo_invoice::Party;
use paygo_postgres::{PgOptions, PgRecords, PgSequenceStore, PgStore};
use paygo_pricing::{DEFAULT_PRICES, PriceBook};
use paygo_ratelimit::Plan;
use paygo_time::SystemClock;
use paygo_vat::{Country, Seller, VatId};
use serde_json::{Value, json};

pub(crate) const ADMIN: &str = "admin-token-for-tests";
/// A hold lives this long: the dead replica's holds are released within it.
pub(crate) const HOLD_MS: u64 = 3_000;

/// A test's own schema, dropped when the test ends, also when it fails (from a thread of its
/// own: the test's runtime cannot block in `drop`).
pub(crate) struct TestSchema {
    pub(crate) url: String,
    pub(crate) name: String,
}

impl TestSchema {
    pub(crate) async fn new(url: &str, test: &str) -> TestSchema {
        let name = format!("t_{test}_{}", std::process::id());
        paygo_postgres::drop_schema(url, &name)
            .await
            .expect("the schema is dropped");
        TestSchema {
            url: url.to_owned(),
            name,
        }
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                let _ = rt.block_on(paygo_postgres::drop_schema(&url, &name));
            }
        })
        .join();
    }
}

/// The server's URL from the environment, or `None` with the reason printed.
pub(crate) fn url() -> Option<String> {
    match std::env::var("PAYGO_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: PAYGO_TEST_POSTGRES_URL is not set (CI sets it; see .ci/run)");
            None
        }
    }
}

pub(crate) fn options(dir: &Path, upstream: &str) -> ServerOptions {
    let mut proxy = ProxyOptions::new(upstream);
    proxy.admin_token = Some(ADMIN.into());
    proxy.upstream_timeout_ms = 1_000;
    proxy.stream_idle_timeout_ms = 1_000;
    ServerOptions {
        data_dir: dir.to_path_buf(),
        prices: PriceBook::from_json(DEFAULT_PRICES).expect("the embedded book"),
        plan: unlimited(),
        proxy,
        seller: SellerOptions {
            party: Party {
                name: "paygo Ltd".into(),
                address: vec!["1 Grand Canal Square".into()],
                country: "IE".parse().expect("IE"),
                vat_id: Some(VatId::parse("IE6433435F").expect("a VAT ID")),
            },
            vat: Seller {
                country: Country::Ireland,
                oss_registered: true,
            },
            series: "INV-2026".into(),
            credit_note_series: "CN-2026".into(),
        },
        usd_rates: BTreeMap::from([(paygo_credits::Currency::EUR, "0.92".parse().expect("a rate"))]),
        hold_timeout_ms: HOLD_MS,
    }
}

/// Pay As You Go with a quota the load never reaches: these tests are about the store.
fn unlimited() -> Plan {
    let mut plan = Plan::pay_as_you_go();
    plan.policies[0].quota = paygo_ratelimit::Quota::per_hour(1_000_000_000, 1_000_000).expect("a quota");
    plan
}

/// How often a replica reads what the others appended to the shared account directory.
pub(crate) const DIRECTORY_REFRESH_MS: u64 = 300;

/// A server on PostgreSQL (`schema`: balances, invoice numbers, accounts, keys and usage
/// records, all shared), in this process, until `stop` completes. Its address is sent
/// back once it listens.
pub(crate) async fn run_server(
    url: &str,
    schema: &str,
    dir: &Path,
    upstream: &str,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
    listening: tokio::sync::oneshot::Sender<String>,
) {
    let billing = PgStore::open(PgOptions::new(url).with_schema(schema), BillingConfig::default())
        .await
        .expect("the billing store opens");
    let (u, s) = (url.to_owned(), schema.to_owned());
    let invoices = tokio::task::spawn_blocking(move || PgSequenceStore::open(&u, &s))
        .await
        .expect("the task")
        .expect("the numbering opens");
    let records = PgRecords::open(&PgOptions::new(url).with_schema(schema))
        .await
        .expect("the shared records open");
    let directory = Directory::shared(records.clone(), std::time::Duration::from_millis(DIRECTORY_REFRESH_MS))
        .await
        .expect("the shared directory opens");
    let usage = UsageLog::shared(records);
    let proxy = Arc::new(
        ServerBuilder::new(options(dir, upstream), SystemClock::new())
            .stores(billing, invoices)
            .directory(directory)
            .usage(usage)
            .open()
            .expect("the server opens"),
    );
    proxy.reconcile().await.expect("reconciled");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let _ = listening.send(format!("http://{}", listener.local_addr().expect("an address")));
    serve(listener, proxy, stop).await.expect("served");
}

/// The child's part: when this test binary is started by [`Replica::start`], it serves
/// until it is killed; in a normal test run it does nothing.
pub(crate) fn child_main() {
    let Ok(spec) = std::env::var("PAYGO_CHILD_SERVER") else {
        return;
    };
    let spec: Value = serde_json::from_str(&spec).expect("the child's spec");
    let text = |k: &str| spec[k].as_str().expect("a field").to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let dir = std::path::PathBuf::from(text("dir"));
        let server = tokio::spawn({
            let (url, schema, upstream) = (text("url"), text("schema"), text("upstream"));
            async move { run_server(&url, &schema, &dir, &upstream, std::future::pending(), tx).await }
        });
        let base = rx.await.expect("the server listens");
        println!("listening on {base}");
        let _ = std::io::Write::flush(&mut std::io::stdout());
        let _ = server.await;
    });
}

/// A server replica in a process of its own (this test binary, running `child_main`).
pub(crate) struct Replica {
    pub(crate) base: String,
    child: Child,
}

impl Replica {
    pub(crate) fn start(test: &str, url: &str, schema: &str, dir: &Path, upstream: &str) -> Replica {
        let spec = json!({"url": url, "schema": schema, "dir": dir, "upstream": upstream}).to_string();
        let mut child = Command::new(std::env::current_exe().expect("this test binary"))
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env("PAYGO_CHILD_SERVER", spec)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the child starts");
        let stdout = child.stdout.take().expect("its output");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines.next().expect("the child prints its address").expect("a line");
            // The test harness's own "test child_server ... " may start the line.
            if let Some(at) = line.find("listening on ") {
                break line[at + "listening on ".len()..].trim().to_owned();
            }
        };
        // Keep reading its output so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Replica { base, child }
    }

    /// SIGKILL: no shutdown, no drain, nothing flushed.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the clients saw acknowledged.
#[derive(Debug, Default)]
pub(crate) struct Acknowledged {
    /// Calls answered 200: the hold (from `x-request-id`) and the credits `meta` said.
    pub(crate) calls: BTreeMap<u128, i64>,
    /// Calls that got no answer (the replica died) or an error status.
    pub(crate) unanswered: u64,
    /// Statuses of failed calls.
    pub(crate) failures: BTreeMap<u16, u64>,
    /// Payments acknowledged, by payment id: the account.
    pub(crate) payments: BTreeMap<String, u64>,
}

pub(crate) async fn admin(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    body: Value,
) -> reqwest::Result<(u16, Value)> {
    let response = client
        .post(format!("{base}{path}"))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// A new account on `base`: its id and key.
pub(crate) async fn account(client: &reqwest::Client, base: &str) -> (u64, String) {
    let (status, created) = admin(
        client,
        base,
        "/admin/v1/accounts",
        json!({"name": "Acme Ltd", "country": "IE", "vat_id": "IE6388047V"}),
    )
    .await
    .expect("the server answers");
    assert_eq!(status, 201, "{created}");
    (
        created["account_id"].as_u64().expect("an id"),
        created["api_key"].as_str().expect("a key").to_owned(),
    )
}

/// A payment of $1.00, sent to each of `bases` in turn until one acknowledges it (a retry
/// with the same payment id).
pub(crate) async fn pay(client: &reqwest::Client, bases: &[&str], account: u64, payment: &str) {
    for round in 0..50 {
        let base = bases[round % bases.len()];
        let body = json!({"payment_id": payment, "usd": "1.00", "method": "card"});
        match admin(client, base, &format!("/admin/v1/accounts/{account}/payments"), body).await {
            Ok((200, _)) => return,
            Ok((status, body)) if status != 503 => panic!("payment {payment}: {status} {body}"),
            _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    panic!("payment {payment} was never acknowledged");
}

/// One chat call; records what came back.
pub(crate) async fn call(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    seen: &std::sync::Mutex<Acknowledged>,
) -> bool {
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 40});
    let sent = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await;
    let seen_now = |f: &mut dyn FnMut(&mut Acknowledged)| f(&mut seen.lock().expect("the record"));
    let Ok(response) = sent else {
        seen_now(&mut |a| a.unanswered += 1);
        return false;
    };
    let status = response.status().as_u16();
    let request = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("req_"))
        .and_then(|hex| u128::from_str_radix(hex, 16).ok());
    let Ok(body) = response.json::<Value>().await else {
        seen_now(&mut |a| a.unanswered += 1);
        return false;
    };
    if status != 200 {
        seen_now(&mut |a| *a.failures.entry(status).or_default() += 1);
        return false;
    }
    let credits = body["meta"]["usage"]["credits_used"]
        .as_i64()
        .expect("meta.usage.credits_used");
    let hold = request.expect("a request id");
    seen_now(&mut |a| {
        assert!(a.calls.insert(hold, credits).is_none(), "one request id per call");
    });
    true
}

/// The database agrees with what was acknowledged: every acknowledged call charged once with
/// the credits its meta said, every acknowledged payment credited once, no credit held any
/// more (holds of a dead replica expired), and the books balance. Returns the number of
/// charges the ledger has beyond those acknowledged (calls cut by a crash after their
/// capture committed).
pub(crate) async fn check(url: &str, schema: &str, accounts: &[u64], seen: &Acknowledged) -> usize {
    let store = PgStore::open(PgOptions::new(url).with_schema(schema), BillingConfig::default())
        .await
        .expect("the store opens");
    let mut charges: BTreeMap<u128, i64> = BTreeMap::new();
    let mut purchases = 0usize;
    for &account in accounts {
        let customer = CustomerId(u128::from(account));
        let mut query = HistoryQuery::newest(paygo_billing::HISTORY_PAGE_MAX);
        let mut total = 0i64;
        loop {
            let page = store.history(customer, query).await.expect("the history");
            for e in &page.entries {
                total += e.credits.get();
                match e.kind {
                    EntryKind::Charge { hold: HoldId(h) } => {
                        assert!(charges.insert(h, -e.credits.get()).is_none(), "hold {h} charged twice");
                    }
                    EntryKind::Purchase { .. } => {
                        assert_eq!(e.credits.get(), 2_000_000, "a $1.00 payment");
                        purchases += 1;
                    }
                    other => panic!("unexpected entry {other:?}"),
                }
            }
            match page.next {
                Some(before) => query.before_ns = Some(before),
                None => break,
            }
        }
        let balance = store.balance(customer).await.expect("the balance");
        assert_eq!(
            balance.available.get(),
            total,
            "account {account}: nothing is held any more, and the balance is its history"
        );
    }
    for (hold, credits) in &seen.calls {
        assert_eq!(
            charges.get(hold),
            Some(credits),
            "acknowledged call {hold:x} charged as its meta said"
        );
    }
    assert_eq!(
        purchases,
        seen.payments.len(),
        "every acknowledged payment credited once"
    );
    let audit = store.audit().await.expect("the audit");
    assert!(audit.conserved(), "{audit:?}");
    charges.len() - seen.calls.len()
}
