//! A billing store that fails: refused calls answer 503 before the upstream is called, and
//! a capture whose reply was lost is retried and charged once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use paygo_billing::{
    Balance, BillingConfig, BillingError, BillingStore, CardKind, Command, CustomerId, EmbeddedStore, HistoryPage,
    HistoryQuery, PaymentMethod, Reply, TopUpId, TopUpRequest,
};
use paygo_credits::Money;
use paygo_gateway::{Gateway, GatewayOptions, TopUpOptions, TopUps};
use paygo_http::{Directory, Proxy, ProxyOptions, UsageLog, router};
use paygo_invoice::{DocumentKind, Invoicing, MemorySequenceStore, Party, RoundingRules, Series, SeriesName};
use paygo_pricing::{DEFAULT_PRICES, PriceBook};
use paygo_ratelimit::{InProcessStore, Plan};
use paygo_testkit::upstream::{FakeUpstream, UpstreamOptions};
use paygo_time::SystemClock;
use paygo_vat::{Country, NoOutsideEuRules, Seller, VatId, VatIdStatus};
use serde_json::{Value, json};

/// The embedded store, made to fail on demand.
struct Flaky {
    inner: EmbeddedStore<SystemClock>,
    /// Every submission fails while this is non-zero.
    down: AtomicU32,
    /// The next this many submissions are applied, and their replies lost.
    lose_replies: AtomicU32,
}

fn unavailable() -> BillingError {
    BillingError::Unavailable {
        reason: "the test took the store down".into(),
    }
}

impl BillingStore for Flaky {
    fn submit(&self, commands: Vec<Command>) -> impl Future<Output = Result<Vec<Reply>, BillingError>> + Send {
        let down = self.down.load(Ordering::SeqCst) > 0;
        let lose = !down
            && self
                .lose_replies
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        let applied = (!down).then(|| self.inner.submit(commands));
        async move {
            let Some(applied) = applied else {
                return Err(unavailable());
            };
            let replies = applied.await;
            if lose { Err(unavailable()) } else { replies }
        }
    }

    fn balance(&self, customer: CustomerId) -> impl Future<Output = Result<Balance, BillingError>> + Send {
        self.inner.balance(customer)
    }

    fn auto_top_up(
        &self,
        customer: CustomerId,
    ) -> impl Future<Output = Result<paygo_billing::AutoTopUpStatus, BillingError>> + Send {
        self.inner.auto_top_up(customer)
    }

    fn history(
        &self,
        customer: CustomerId,
        query: HistoryQuery,
    ) -> impl Future<Output = Result<HistoryPage, BillingError>> + Send {
        self.inner.history(customer, query)
    }

    fn outstanding_requests(&self) -> impl Future<Output = Result<Vec<TopUpRequest>, BillingError>> + Send {
        self.inner.outstanding_requests()
    }
}

type FlakyProxy = Proxy<Flaky, InProcessStore<CustomerId, SystemClock>, SystemClock, MemorySequenceStore>;

async fn start(upstream: &FakeUpstream) -> (Arc<FlakyProxy>, String, String) {
    start_with_usage(upstream, UsageLog::in_memory()).await
}

async fn start_with_usage(upstream: &FakeUpstream, usage: UsageLog) -> (Arc<FlakyProxy>, String, String) {
    let clock = SystemClock::new();
    let billing = Flaky {
        inner: EmbeddedStore::in_memory(BillingConfig::default(), clock).unwrap(),
        down: AtomicU32::new(0),
        lose_replies: AtomicU32::new(0),
    };
    let limits = InProcessStore::with_clock(&Plan::pay_as_you_go(), clock);
    let gateway = Gateway::new(
        GatewayOptions::new(PriceBook::from_json(DEFAULT_PRICES).unwrap(), clock),
        billing,
        limits,
    );
    let invoicing = Invoicing::open(
        MemorySequenceStore::new(),
        vec![Series::new("INV-2026", DocumentKind::Invoice, 6).unwrap()],
    )
    .unwrap();
    let topups = TopUps::new(
        invoicing,
        TopUpOptions {
            seller: Party {
                name: "paygo Ltd".into(),
                address: vec!["Dublin".into()],
                country: "IE".parse().unwrap(),
                vat_id: Some(VatId::parse("IE6433435F").unwrap()),
            },
            seller_vat: Seller {
                country: Country::Ireland,
                oss_registered: true,
            },
            series: SeriesName::new("INV-2026").unwrap(),
            credit_note_series: Some(SeriesName::new("CN-2026").unwrap()),
            credit_rate: paygo_credits::CreditRate::default(),
            rounding: RoundingRules::default(),
            confirmer: Arc::new(|_: &VatId| VatIdStatus::Valid),
            outside_eu: Arc::new(NoOutsideEuRules),
            fx: Arc::new(|_, _| None),
        },
    );
    let directory = Directory::in_memory();
    let (account, key) = directory.create_account("Acme", "IE", None, &[]).await.unwrap();
    gateway.open_account(account.id).await.unwrap();
    gateway
        .top_up(
            TopUpId(1),
            account.id,
            Money::usd("10.00".parse().unwrap()),
            PaymentMethod::Card(CardKind::Credit),
        )
        .await
        .unwrap();
    let proxy = Arc::new(
        Proxy::new(gateway, directory, usage, topups, {
            let mut options = ProxyOptions::new(upstream.url());
            options.admin_token = Some("admin".into());
            options
        })
        .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = router(Arc::clone(&proxy));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (proxy, base, key.secret)
}

async fn call(base: &str, key: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_answers_503_before_the_upstream_is_called() {
    let upstream = FakeUpstream::start(UpstreamOptions::default()).await.unwrap();
    let (proxy, base, key) = start(&upstream).await;
    proxy.gateway().billing().down.store(1, Ordering::SeqCst);
    let (status, body) = call(&base, &key).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "billing_unavailable");
    assert_eq!(upstream.calls(), 0);
    // Back up: calls go through again.
    proxy.gateway().billing().down.store(0, Ordering::SeqCst);
    assert_eq!(call(&base, &key).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_whose_reply_was_lost_is_retried_and_charged_once() {
    let upstream = FakeUpstream::start(UpstreamOptions {
        latency_ms: 200,
        ..UpstreamOptions::default()
    })
    .await
    .unwrap();
    let (proxy, base, key) = start(&upstream).await;
    let account = CustomerId(1);
    let before = proxy.gateway().balance(account).await.unwrap().available.get();
    let pending = tokio::spawn({
        let (base, key) = (base.clone(), key.clone());
        async move { call(&base, &key).await }
    });
    // While the upstream thinks: the capture's reply will be lost (it is applied).
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    proxy.gateway().billing().lose_replies.store(1, Ordering::SeqCst);
    let (status, body) = pending.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        proxy.gateway().billing().lose_replies.load(Ordering::SeqCst),
        0,
        "a reply was lost"
    );
    let credits = body["meta"]["usage"]["credits_used"].as_i64().unwrap();
    let after = proxy.gateway().balance(account).await.unwrap().available.get();
    assert_eq!(before - after, credits, "charged once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_whose_creation_was_cut_is_opened_by_its_first_payment() {
    let upstream = FakeUpstream::start(UpstreamOptions::default()).await.unwrap();
    let (proxy, base, _) = start(&upstream).await;
    let http = reqwest::Client::new();
    proxy.gateway().billing().down.store(1, Ordering::SeqCst);
    let created = http
        .post(format!("{base}/admin/v1/accounts"))
        .bearer_auth("admin")
        .json(&json!({"name": "Late Inc.", "country": "US"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 503, "the billing store is down");
    proxy.gateway().billing().down.store(0, Ordering::SeqCst);
    // The directory has it (id 2: the harness's account is 1); its key works once paid.
    let account = proxy.directory().account(CustomerId(2)).expect("in the directory");
    assert_eq!(account.name, "Late Inc.");
    let paid = http
        .post(format!("{base}/admin/v1/accounts/2/payments"))
        .bearer_auth("admin")
        .json(&json!({"payment_id": "pi_late", "usd": "1.00", "method": "card", "card_country": "US"}))
        .send()
        .await
        .unwrap();
    let status = paid.status();
    let body: Value = paid.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["credits_added"], 2_000_000);
}

/// A usage record that cannot be written after the call was charged (the shared usage log's
/// database failing: its table gone here) does not turn the answer into an error: the
/// client gets its answer and its charge (a 503 would say "not charged" and a retry would
/// pay twice), and the call is counted as unrecorded (rebuilt by `reconcile` at the next
/// start). Needs `PAYGO_TEST_POSTGRES_URL` and `psql`; skipped with the reason otherwise.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charged_call_whose_usage_record_fails_is_still_answered_and_counted() {
    let Some(url) = std::env::var("PAYGO_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) else {
        eprintln!("skipped: PAYGO_TEST_POSTGRES_URL is not set (CI sets it; see .ci/run)");
        return;
    };
    let schema = format!("t_usage_outage_{}", std::process::id());
    paygo_postgres::drop_schema(&url, &schema).await.unwrap();
    let records =
        paygo_postgres::PgRecords::open(&paygo_postgres::PgOptions::new(url.clone()).with_schema(schema.clone()))
            .await
            .unwrap();
    let upstream = FakeUpstream::start(UpstreamOptions::default()).await.unwrap();
    let (proxy, base, key) = start_with_usage(&upstream, UsageLog::shared(records)).await;
    let psql = |sql: String| {
        let status = std::process::Command::new("psql")
            .args([url.as_str(), "-q", "-v", "ON_ERROR_STOP=1", "-c", sql.as_str()])
            .status()
            .expect("psql runs");
        assert!(status.success(), "psql: {sql}");
    };
    let account = CustomerId(1);
    let before = proxy.gateway().balance(account).await.unwrap().available.get();
    psql(format!(
        "ALTER TABLE {schema}.usage_records RENAME TO usage_records_away"
    ));
    let started = std::time::Instant::now();
    let (status, body) = call(&base, &key).await;
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(paygo_http::RECORD_RETRY_MS));
    let credits = body["meta"]["usage"]["credits_used"].as_i64().unwrap();
    let after = proxy.gateway().balance(account).await.unwrap().available.get();
    assert_eq!(before - after, credits, "charged once, and told so");
    assert_eq!(proxy.unrecorded_calls(), 1);
    // The database back: the next call is recorded.
    psql(format!(
        "ALTER TABLE {schema}.usage_records_away RENAME TO usage_records"
    ));
    let (status, body) = call(&base, &key).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(proxy.unrecorded_calls(), 1);
    paygo_postgres::drop_schema(&url, &schema).await.unwrap();
}
