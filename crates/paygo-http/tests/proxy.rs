//! The proxy driven as its users drive it: a real HTTP client against the server on
//! loopback, in front of the fake upstream, with the durable embedded stores.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use paygo_billing::{BillingConfig, EmbeddedStore};
use paygo_http::{
    Directory, EmbeddedProxy, ProxyOptions, SellerOptions, ServerBuilder, ServerOptions, UsageLog, open_embedded, serve,
};
use paygo_invoice::{FileSequenceStore, Party};
use paygo_ledger::durable::OpenOptions;
use paygo_pricing::{DEFAULT_PRICES, PriceBook};
use paygo_ratelimit::{InProcessStore, Plan, Quota};
use paygo_testkit::store::TempDir;
use paygo_testkit::upstream::{FakeUpstream, UpstreamOptions};
use paygo_time::SystemClock;
use paygo_vat::{Country, Seller, VatId};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const ADMIN: &str = "admin-token-for-tests";
const UPSTREAM_KEY: &str = "sk-upstream-secret";

struct Harness {
    base: String,
    upstream: FakeUpstream,
    proxy: Arc<EmbeddedProxy<SystemClock>>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    client: reqwest::Client,
    dir: TempDir,
}

fn options(dir: &TempDir, upstream: &str) -> ServerOptions {
    let mut proxy = ProxyOptions::new(upstream);
    proxy.admin_token = Some(ADMIN.into());
    proxy.upstream_api_key = Some(UPSTREAM_KEY.into());
    proxy.upstream_timeout_ms = 2_000;
    proxy.stream_idle_timeout_ms = 1_000;
    proxy.body_limit_bytes = 256 << 10;
    ServerOptions {
        data_dir: dir.0.clone(),
        prices: PriceBook::from_json(DEFAULT_PRICES).expect("the embedded book"),
        plan: Plan::pay_as_you_go(),
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
        hold_timeout_ms: 600_000,
    }
}

/// A stopped server's proxy, once nothing else holds it.
async fn taken_back<P>(proxy: Arc<P>) -> P {
    match paygo_http::take_back(proxy, Duration::from_secs(10)).await {
        Ok(proxy) => proxy,
        Err(still) => panic!(
            "the proxy is still in use 10 s after the server stopped ({} handles)",
            Arc::strong_count(&still)
        ),
    }
}

impl Harness {
    async fn start(name: &str, change: impl FnOnce(&mut ServerOptions)) -> Harness {
        Harness::start_with(name, UpstreamOptions::default(), change).await
    }

    async fn start_with(name: &str, upstream: UpstreamOptions, change: impl FnOnce(&mut ServerOptions)) -> Harness {
        let upstream = FakeUpstream::start(upstream).await.expect("the fake upstream");
        let dir = TempDir::new(name);
        let mut options = options(&dir, &upstream.url());
        change(&mut options);
        Harness::serve(upstream, dir, options).await
    }

    async fn serve(upstream: FakeUpstream, dir: TempDir, options: ServerOptions) -> Harness {
        let proxy = open_embedded(options, SystemClock::new()).expect("the server opens");
        Harness::serve_proxy(upstream, dir, proxy).await
    }

    async fn serve_proxy(upstream: FakeUpstream, dir: TempDir, proxy: EmbeddedProxy<SystemClock>) -> Harness {
        let proxy = Arc::new(proxy);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, Arc::clone(&proxy), async move {
            let _ = stopped.await;
        }));
        Harness {
            base,
            upstream,
            proxy,
            stop: Some(stop),
            server: Some(server),
            client: reqwest::Client::new(),
            dir,
        }
    }

    /// Stops the server gracefully (every call settled) and gives back what a restart
    /// needs.
    async fn stop(mut self) -> (FakeUpstream, TempDir, Arc<EmbeddedProxy<SystemClock>>) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("the server task")
                .expect("the server stops cleanly");
        }
        (self.upstream, self.dir, self.proxy)
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A new account with `usd` paid by card; its id and key.
    async fn account(&self, usd: &str) -> (u128, String) {
        let (status, created) = self
            .admin(
                reqwest::Method::POST,
                "/admin/v1/accounts",
                Some(json!({"name": "Acme Ltd", "country": "IE", "vat_id": "IE6388047V"})),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let id = created["account_id"].as_u64().expect("an account id");
        let key = created["api_key"].as_str().expect("a key").to_owned();
        if usd != "0" {
            let (status, paid) = self
                .admin(
                    reqwest::Method::POST,
                    &format!("/admin/v1/accounts/{id}/payments"),
                    Some(json!({"payment_id": format!("pay-{id}"), "usd": usd, "method": "card"})),
                )
                .await;
            assert_eq!(status, 200, "{paid}");
        }
        (u128::from(id), key)
    }

    async fn post(&self, key: &str, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("the server answers")
    }

    async fn get(&self, key: &str, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(key)
            .send()
            .await
            .expect("the server answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn credits(&self, key: &str) -> i64 {
        let (status, balance) = self.get(key, "/v1/billing/balance").await;
        assert_eq!(status, 200, "{balance}");
        balance["credits"].as_i64().expect("credits")
    }
}

fn chat(text: &str) -> Value {
    json!({"model": "gpt-4o", "messages": [{"role": "user", "content": text}], "max_tokens": 100})
}

/// The data lines of a server-sent event stream.
fn events(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")).map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_charged_exactly_what_its_meta_says_and_the_upstream_never_sees_the_client_key() {
    let h = Harness::start("http-plain", |_| {}).await;
    let (_, key) = h.account("10.00").await;
    let before = h.credits(&key).await;
    assert_eq!(before, 20_000_000);
    let response = h.post(&key, "/v1/chat/completions", &chat("hello there")).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let body: Value = response.json().await.expect("json");
    let credits = body["meta"]["usage"]["credits_used"].as_i64().expect("meta credits");
    assert!(credits > 0);
    assert_eq!(
        headers["x-aimlapi-credits-used"].to_str().expect("ascii"),
        credits.to_string()
    );
    assert!(body["meta"]["usage"]["usd_spent"].is_number());
    assert!(headers.contains_key("x-request-id"));
    assert!(headers.contains_key("ratelimit-policy"));
    assert!(headers.contains_key("x-ratelimit-remaining-requests"));
    assert_eq!(h.credits(&key).await, before - credits);
    // The usage the generation endpoint reports is the same charge.
    let id = headers["x-request-id"].to_str().expect("ascii");
    let (status, generation) = h.get(&key, &format!("/v1/generation/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(generation["credits_used"].as_i64(), Some(credits));
    assert_eq!(generation["usage"]["prompt_tokens"], body["usage"]["prompt_tokens"]);
    // Another account cannot read it.
    let (_, other) = h.account("1.00").await;
    assert_eq!(h.get(&other, &format!("/v1/generation/{id}")).await.0, 404);
    let seen = h.upstream.seen_authorization();
    assert_eq!(seen, vec![format!("Bearer {UPSTREAM_KEY}")]);
    assert!(!seen.iter().any(|a| a.contains(&key)));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_checked() {
    let h = Harness::start("http-keys", |_| {}).await;
    let (id, key) = h.account("1.00").await;
    let no_key = h
        .client
        .post(format!("{}/v1/chat/completions", h.base))
        .json(&chat("x"))
        .send()
        .await
        .expect("answer");
    assert_eq!(no_key.status(), 401);
    assert!(
        no_key.headers().contains_key("x-request-id"),
        "refusals carry the id too"
    );
    let body: Value = no_key.json().await.expect("json");
    assert_eq!(body["error"]["type"], "authentication_error");
    // The same key with its last digit changed.
    let last = if key.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &key[..key.len() - 1]);
    assert_eq!(h.post(&wrong, "/v1/chat/completions", &chat("x")).await.status(), 401);
    // A second key works; revoked, it does not; the first still does.
    let (status, second) = h
        .admin(reqwest::Method::POST, &format!("/admin/v1/accounts/{id}/keys"), None)
        .await;
    assert_eq!(status, 201);
    let second_key = second["api_key"].as_str().expect("key").to_owned();
    assert_eq!(
        h.post(&second_key, "/v1/chat/completions", &chat("x")).await.status(),
        200
    );
    let key_id = second["key_id"].as_str().expect("key id");
    let (status, _) = h
        .admin(reqwest::Method::DELETE, &format!("/admin/v1/keys/{key_id}"), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        h.post(&second_key, "/v1/chat/completions", &chat("x")).await.status(),
        401
    );
    assert_eq!(h.post(&key, "/v1/chat/completions", &chat("x")).await.status(), 200);
    // The operator endpoints need the operator's token.
    let bad = h
        .client
        .post(format!("{}/admin/v1/accounts", h.base))
        .bearer_auth(&key)
        .json(&json!({"name": "x", "country": "IE"}))
        .send()
        .await
        .expect("answer");
    assert_eq!(bad.status(), 401);
    // Keys are stored hashed: the secret is nowhere in the data directory.
    for file in ["accounts.jsonl", "usage.jsonl"] {
        let text = std::fs::read_to_string(h.dir.0.join(file)).expect("the file");
        assert!(!text.contains(&key[9..]), "{file} holds a key");
        assert!(!text.contains("hello"), "{file} holds prompt content");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_happen_before_the_upstream_and_cost_nothing() {
    let h = Harness::start("http-refusals", |o| {
        o.plan.policies[0].quota = Quota::per_hour(18_000, 3).expect("a quota");
    })
    .await;
    let (_, poor) = h.account("0").await;
    let response = h.post(&poor, "/v1/chat/completions", &chat("x")).await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "insufficient_credits");
    let (_, key) = h.account("5.00").await;
    let unknown = h
        .post(
            &key,
            "/v1/chat/completions",
            &json!({"model": "no-such-model", "messages": [], "max_tokens": 5}),
        )
        .await;
    assert_eq!(unknown.status(), 400);
    let huge = "x".repeat(300 << 10);
    assert_eq!(h.post(&key, "/v1/chat/completions", &chat(&huge)).await.status(), 413);
    let not_json = h
        .client
        .post(format!("{}/v1/chat/completions", h.base))
        .bearer_auth(&key)
        .body("{not json")
        .send()
        .await
        .expect("answer");
    assert_eq!(not_json.status(), 400);
    assert_eq!(h.upstream.calls(), 0, "nothing refused reached the upstream");
    // A burst of 3: the fourth call is limited (the earlier refusals counted too).
    let mut limited = None;
    for _ in 0..6 {
        let r = h.post(&key, "/v1/chat/completions", &chat("x")).await;
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
    }
    let limited = limited.expect("a 429 within the burst");
    assert!(limited.headers().contains_key("retry-after"));
    let body: Value = limited.json().await.expect("json");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(h.get(&key, "/v1/no-such-path").await.0, 404);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_and_timeouts_release_the_hold() {
    let h = Harness::start("http-failures", |_| {}).await;
    let (_, key) = h.account("2.00").await;
    let before = h.credits(&key).await;
    let failed = h.post(&key, "/v1/chat/completions", &chat("[fake:error=500]")).await;
    assert_eq!(failed.status(), 502);
    let timed_out = h.post(&key, "/v1/chat/completions", &chat("[fake:stall]")).await;
    assert_eq!(timed_out.status(), 504);
    let refused = h.post(&key, "/v1/chat/completions", &chat("[fake:error=429]")).await;
    assert_eq!(refused.status(), 429);
    // The upstream refusing the operator's own key is not the client's 401: 502, and none
    // of the upstream's message (which may quote part of the operator's key).
    for code in [401, 403] {
        let refused = h
            .post(&key, "/v1/chat/completions", &chat(&format!("[fake:error={code}]")))
            .await;
        assert_eq!(refused.status(), 502);
        let body: Value = refused.json().await.expect("json");
        assert_eq!(body["error"]["code"], "upstream_auth_failed");
        assert!(!body.to_string().contains("fake error"), "{body}");
    }
    assert_eq!(h.credits(&key).await, before, "failed calls cost nothing");
    let mut stream_body = chat("[fake:stall]");
    stream_body["stream"] = json!(true);
    // A stream that stalls after its first chunk: settled without usage once the idle
    // timeout passes (something was produced: at least one credit).
    let stalled = h.post(&key, "/v1/chat/completions", &stream_body).await;
    assert_eq!(stalled.status(), 200);
    let text = stalled.text().await.expect("the stream ends");
    assert!(text.contains("upstream_stream_cut"), "{text}");
    let after = h.credits(&key).await;
    assert!(after < before && before - after <= 10_000, "{before} → {after}");
    h.stop().await;
}

/// A stalled stream is cut after the idle timeout even when the hold is extended more
/// often than that (every half hold timeout): an extension does not restart the idle
/// clock. (It did: with these settings the stall was never cut.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_is_cut_even_while_its_hold_is_extended() {
    let h = Harness::start("http-stall-extend", |o| {
        o.hold_timeout_ms = 1_000;
        o.proxy.upstream_timeout_ms = 900;
        o.proxy.stream_idle_timeout_ms = 800;
    })
    .await;
    let (_, key) = h.account("1.00").await;
    let mut body = chat("[fake:stall]");
    body["stream"] = json!(true);
    let started = std::time::Instant::now();
    let response = h.post(&key, "/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let text = tokio::time::timeout(Duration::from_secs(5), response.text())
        .await
        .expect("the stalled stream is cut within its idle timeout")
        .expect("the stream ends");
    assert!(text.contains("upstream_stream_cut"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_bill_the_final_usage_and_show_it_only_when_asked() {
    let h = Harness::start("http-stream", |_| {}).await;
    let (_, key) = h.account("10.00").await;
    for asked in [false, true] {
        let before = h.credits(&key).await;
        let mut body = chat("[fake:tokens=7] stream please");
        body["stream"] = json!(true);
        if asked {
            body["stream_options"] = json!({"include_usage": true});
        }
        let response = h.post(&key, "/v1/chat/completions", &body).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let text = response.text().await.expect("the stream");
        let data = events(&text);
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
        let chunks: Vec<Value> = data[..data.len() - 1]
            .iter()
            .map(|d| serde_json::from_str(d).expect("a JSON chunk"))
            .collect();
        let with_usage: Vec<&Value> = chunks.iter().filter(|c| c["usage"].is_object()).collect();
        assert_eq!(with_usage.len(), usize::from(asked), "{text}");
        let last = chunks.last().expect("a chunk");
        let credits = last["meta"]["usage"]["credits_used"]
            .as_i64()
            .expect("meta on the last chunk");
        if asked {
            assert_eq!(with_usage[0]["usage"]["completion_tokens"], 7);
        }
        let content: usize = chunks
            .iter()
            .filter(|c| c["choices"][0]["delta"]["content"].is_string())
            .count();
        assert!(content >= 1);
        assert_eq!(h.credits(&key).await, before - credits);
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_is_still_billed_for_what_was_produced() {
    let h = Harness::start("http-disconnect", |o| {
        o.proxy.stream_idle_timeout_ms = 5_000;
    })
    .await;
    let (id, key) = h.account("10.00").await;
    let before = h.credits(&key).await;
    let mut body = chat("[fake:tokens=40] long answer");
    body["stream"] = json!(true);
    let response = h.post(&key, "/v1/chat/completions", &body).await;
    let mut stream = response.bytes_stream();
    let first = stream.next().await.expect("a first chunk").expect("bytes");
    assert!(!first.is_empty());
    drop(stream);
    // The proxy reads the upstream to its end and charges.
    for _ in 0..100 {
        if h.proxy.calls_in_flight() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.proxy.calls_in_flight(), 0);
    let after = h.credits(&key).await;
    assert!(after < before, "the produced tokens were billed");
    // Billed by the final usage (40 completion tokens), not by the rule for cut streams.
    let records = h.proxy.usage().records(paygo_billing::CustomerId(id)).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].usage.completion_tokens, 40);
    assert_eq!(records[0].credits.get(), before - after);
    h.stop().await;
}

/// A call that is not streamed is billed too when its client hangs up while the upstream
/// is answering: the upstream's work is paid for whether or not the answer is read. (The
/// call used to run inside the connection's handler, which the server drops with the
/// connection: its hold stayed until it expired and the call was free.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_before_a_plain_answer_is_still_billed() {
    let h = Harness::start_with(
        "http-hang-up",
        UpstreamOptions {
            latency_ms: 400,
            ..UpstreamOptions::default()
        },
        |_| {},
    )
    .await;
    let (id, key) = h.account("10.00").await;
    let before = h.credits(&key).await;
    let address = h.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("a connection");
    let body = chat("hello").to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .expect("sent");
    // Hang up while the upstream thinks.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(h.upstream.calls(), 1, "the call reached the upstream");
    drop(stream);
    for _ in 0..150 {
        if h.proxy.calls_in_flight() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.proxy.calls_in_flight(), 0);
    let records = h.proxy.usage().records(paygo_billing::CustomerId(id)).await.unwrap();
    assert_eq!(records.len(), 1, "the call was charged and recorded");
    let after = h.credits(&key).await;
    assert!(records[0].credits.get() > 0);
    assert_eq!(
        records[0].credits.get(),
        before - after,
        "charged once, nothing left held"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_streams_and_streams_without_usage_are_settled_by_the_rule() {
    let h = Harness::start("http-cut", |_| {}).await;
    let (_, key) = h.account("10.00").await;
    for directive in ["[fake:cut=2]", "[fake:no-usage]"] {
        let before = h.credits(&key).await;
        let mut body = chat(directive);
        body["stream"] = json!(true);
        let response = h.post(&key, "/v1/chat/completions", &body).await;
        assert_eq!(response.status(), 200);
        let id = response
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().expect("ascii").to_owned());
        let text = response.text().await.expect("the stream");
        let after = h.credits(&key).await;
        assert!(after < before, "{directive}: produced tokens are never free");
        let data = events(&text);
        let meta = data
            .iter()
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .find(|c| c["meta"].is_object())
            .expect("a meta chunk");
        assert_eq!(meta["meta"]["usage"]["credits_used"].as_i64(), Some(before - after));
        if let Some(id) = id {
            let (_, generation) = h.get(&key, &format!("/v1/generation/{id}")).await;
            assert_eq!(generation["settlement"], "without_usage");
        }
    }
    // A Responses stream cut before `response.completed`: charged, and told so.
    let before = h.credits(&key).await;
    let body = json!({"model": "gpt-4o", "input": "[fake:cut=2]", "max_output_tokens": 50, "stream": true});
    let text = h
        .post(&key, "/v1/responses", &body)
        .await
        .text()
        .await
        .expect("the stream");
    let meta = events(&text)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|v| v["meta"].is_object())
        .expect("a meta event");
    assert_eq!(meta["type"], "paygo.usage");
    assert_eq!(
        meta["meta"]["usage"]["credits_used"].as_i64(),
        Some(before - h.credits(&key).await)
    );
    assert!(text.contains("upstream_stream_cut"), "{text}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_never_overspend_the_balance() {
    let h = Harness::start("http-concurrent", |o| {
        o.plan.policies[0].quota = Quota::per_hour(18_000, 1_000).expect("a quota");
    })
    .await;
    // $0.01 = 20,000 credits; each call holds about 1,000 + 100 × 10 credits' worth.
    let (_, key) = h.account("0.01").await;
    let start = h.credits(&key).await;
    let h = Arc::new(h);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let h = Arc::clone(&h);
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let mut body = chat(&format!("call {i}"));
            body["max_tokens"] = json!(500);
            let response = h.post(&key, "/v1/chat/completions", &body).await;
            let status = response.status().as_u16();
            let value: Value = response.json().await.unwrap_or(Value::Null);
            (status, value["meta"]["usage"]["credits_used"].as_i64().unwrap_or(0))
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    let mut charged = 0;
    for task in tasks {
        let (status, credits) = task.await.expect("a task");
        match status {
            200 => {
                ok += 1;
                charged += credits;
            }
            403 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(ok > 0 && refused > 0, "{ok} charged, {refused} refused");
    let end = h.credits(&key).await;
    assert!(end >= 0, "never below zero");
    assert_eq!(start - end, charged, "what clients saw is what was charged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_embeddings_and_models() {
    let h = Harness::start("http-other", |_| {}).await;
    let (_, key) = h.account("10.00").await;
    let before = h.credits(&key).await;
    let response = h
        .post(
            &key,
            "/v1/responses",
            &json!({"model": "gpt-4o", "input": "hello", "max_output_tokens": 50}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    let a = body["meta"]["usage"]["credits_used"].as_i64().expect("meta");
    let streamed = h
        .post(
            &key,
            "/v1/responses",
            &json!({"model": "gpt-4o", "input": "hello", "max_output_tokens": 50, "stream": true}),
        )
        .await;
    let text = streamed.text().await.expect("the stream");
    let completed = events(&text)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|v| v["type"] == "response.completed")
        .expect("the completed event");
    let b = completed["meta"]["usage"]["credits_used"]
        .as_i64()
        .expect("meta on completed");
    let embedded = h
        .post(
            &key,
            "/v1/embeddings",
            &json!({"model": "text-embedding-3-small", "input": ["one", "two"]}),
        )
        .await;
    assert_eq!(embedded.status(), 200);
    let body: Value = embedded.json().await.expect("json");
    let c = body["meta"]["usage"]["credits_used"].as_i64().expect("meta");
    assert_eq!(h.credits(&key).await, before - a - b - c);
    let (status, models) = h.get(&key, "/v1/models").await;
    assert_eq!(status, 200);
    assert!(
        models["data"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["id"] == "gpt-4o"))
    );
    // Usage by model adds up to the balance's change.
    let (status, usage) = h.get(&key, "/v1/billing/usage?bucket=1h&group_by=model").await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["total"]["credits"].as_i64(), Some(a + b + c));
    assert_eq!(usage["total"]["calls"].as_u64(), Some(3));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_are_idempotent_invoiced_and_refused_for_prepaid_cards() {
    let h = Harness::start("http-payments", |_| {}).await;
    let (id, key) = h.account("0").await;
    let pay = json!({"payment_id": "pi_123", "usd": "10.00", "method": "card"});
    let path = format!("/admin/v1/accounts/{id}/payments");
    let (status, first) = h.admin(reqwest::Method::POST, &path, Some(pay.clone())).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["credits_added"], 20_000_000);
    let (status, again) = h.admin(reqwest::Method::POST, &path, Some(pay)).await;
    assert_eq!(status, 200);
    assert_eq!(again["invoice_number"], first["invoice_number"]);
    assert_eq!(h.credits(&key).await, 20_000_000, "credited once");
    let (status, prepaid) = h
        .admin(
            reqwest::Method::POST,
            &path,
            Some(json!({"payment_id": "pi_2", "usd": "5.00", "method": "prepaid_card"})),
        )
        .await;
    assert_eq!(status, 402, "{prepaid}");
    assert!(
        prepaid["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("prepaid"))
    );
    // A consumer (no VAT ID) needs a second piece of location evidence.
    let (status, consumer) = h
        .admin(
            reqwest::Method::POST,
            "/admin/v1/accounts",
            Some(json!({"name": "Jane Doe", "country": "DE"})),
        )
        .await;
    assert_eq!(status, 201);
    let consumer_id = consumer["account_id"].as_u64().expect("id");
    let consumer_path = format!("/admin/v1/accounts/{consumer_id}/payments");
    let (status, _) = h
        .admin(
            reqwest::Method::POST,
            &consumer_path,
            Some(json!({"payment_id": "pi_3", "usd": "5.00", "method": "paypal"})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, paid) = h
        .admin(
            reqwest::Method::POST,
            &consumer_path,
            Some(json!({"payment_id": "pi_3", "usd": "5.00", "method": "paypal", "card_country": "DE"})),
        )
        .await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(paid["credits_added"], 10_000_000);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_balances_and_usage_survive_a_restart() {
    let h = Harness::start("http-restart", |_| {}).await;
    let (_, key) = h.account("3.00").await;
    let response = h.post(&key, "/v1/chat/completions", &chat("before the restart")).await;
    let id = response.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    assert_eq!(response.status(), 200);
    let balance = h.credits(&key).await;
    let (upstream, dir, proxy) = h.stop().await;
    // Its stores closed (their files unlocked) before they are opened again.
    drop(taken_back(proxy).await);
    let options = options(&dir, &upstream.url());
    let h = Harness::serve(upstream, dir, options).await;
    assert_eq!(h.credits(&key).await, balance);
    assert_eq!(h.get(&key, &format!("/v1/generation/{id}")).await.0, 200);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_outlives_its_hold_extends_it_and_is_charged_its_usage() {
    let slow = UpstreamOptions {
        stream_chunk_delay_ms: 150,
        ..UpstreamOptions::default()
    };
    // A one-second hold, a stream of about three seconds.
    let h = Harness::start_with("http-extend", slow, |o| {
        o.hold_timeout_ms = 1_000;
        o.proxy.upstream_timeout_ms = 900;
    })
    .await;
    let (id, key) = h.account("10.00").await;
    let before = h.credits(&key).await;
    let mut body = chat("[fake:tokens=20] slowly");
    body["stream"] = json!(true);
    let started = std::time::Instant::now();
    let response = h.post(&key, "/v1/chat/completions", &body).await;
    let text = response.text().await.expect("the stream");
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "the stream outlived the hold"
    );
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let records = h.proxy.usage().records(paygo_billing::CustomerId(id)).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].usage.completion_tokens, 20,
        "charged by its usage, not expired"
    );
    assert_eq!(h.credits(&key).await, before - records[0].credits.get());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usage_record_lost_in_a_crash_is_rebuilt_from_the_ledger() {
    let h = Harness::start("http-reconcile", |_| {}).await;
    let (_, key) = h.account("3.00").await;
    for text in ["one", "two"] {
        assert_eq!(h.post(&key, "/v1/chat/completions", &chat(text)).await.status(), 200);
    }
    let spent = 6_000_000 - h.credits(&key).await;
    let (upstream, dir, proxy) = h.stop().await;
    // Its stores closed (their files unlocked) before they are opened again.
    drop(taken_back(proxy).await);
    // The crash: the capture was durable, the last record never reached the disk.
    let path = dir.0.join("usage.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: Vec<&str> = text.lines().collect();
    assert_eq!(kept.len(), 2);
    std::fs::write(&path, format!("{}\n", kept[0])).unwrap();
    let options = options(&dir, &upstream.url());
    let h = Harness::serve(upstream, dir, options).await;
    assert_eq!(h.proxy.reconcile().await.unwrap(), 1);
    assert_eq!(h.proxy.reconcile().await.unwrap(), 0, "once");
    let (_, usage) = h.get(&key, "/v1/billing/usage?group_by=model").await;
    assert_eq!(usage["total"]["credits"].as_i64(), Some(spent), "{usage}");
    assert_eq!(usage["total"]["calls"].as_u64(), Some(2));
    assert!(
        usage["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["model"] == "unknown")
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_through_paths_reach_the_upstream_with_its_key_and_others_do_not() {
    let h = Harness::start("http-pass", |o| {
        o.proxy.pass_through = vec!["/v1/files".into()];
    })
    .await;
    let (_, key) = h.account("1.00").await;
    assert_eq!(h.get(&key, "/v1/batches").await.0, 404);
    assert_eq!(h.upstream.calls(), 0);
    // Forwarded unmetered: the fake upstream has no such route and answers its own 404.
    let (status, body) = h.get(&key, "/v1/files?purpose=batch").await;
    assert_eq!(status, 404);
    assert!(body["error"]["message"].is_string(), "{body}");
    assert_eq!(h.upstream.calls(), 1);
    assert_eq!(h.upstream.seen_authorization(), vec![format!("Bearer {UPSTREAM_KEY}")]);
    // Still behind the key.
    assert_eq!(h.get("sk-paygo-nothing", "/v1/files").await.0, 401);
    assert_eq!(h.upstream.calls(), 1);
    // A path that leaves the prefix once the upstream's URL is parsed (sent as raw bytes: an
    // HTTP client would resolve the dot segments itself) is not forwarded: it would reach
    // the metered chat endpoint unmetered.
    for path in [
        "/v1/files/%2e%2e/chat/completions",
        "/v1/files/../chat/completions",
        "/v1/files/.%2E/chat/completions",
        "/v1/files%2f..%2fchat/completions",
        "/v1/filesystem",
    ] {
        assert_eq!(raw_status(&h.base, "POST", path, &key).await, 404, "{path}");
    }
    assert_eq!(h.upstream.calls(), 1);
    assert_eq!(h.credits(&key).await, 2_000_000, "unmetered");
    h.stop().await;
}

/// The status of a request sent as raw bytes (the path exactly as given).
async fn raw_status(base: &str, method: &str, path: &str, key: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("a connection");
    let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("sent");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("an answer");
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_and_speech_are_charged_by_their_units_or_their_image_tokens() {
    let book = PriceBook::from_json(
        r#"{"format": "paygo-prices/1", "models": [
        {"id": "dall-e-3", "provider": "openai", "mode": "image_generation", "versions": [{
          "valid_from": "2024-01-01T00:00:00Z", "prices": {},
          "variants": [
            {"component": "output_image", "variant": "1024x1024/standard", "usd_per_unit": "0.04"},
            {"component": "output_image", "variant": "1024x1024/hd", "usd_per_unit": "0.08"}]}]},
        {"id": "gpt-image-1", "provider": "openai", "mode": "image_generation", "versions": [{
          "valid_from": "2025-04-01T00:00:00Z",
          "prices": {"input_token": "0.000005", "output_image_token": "0.00004"}}]},
        {"id": "tts-1", "provider": "openai", "mode": "audio_speech", "versions": [{
          "valid_from": "2024-01-01T00:00:00Z", "prices": {"input_character": "0.000015"}}]}
    ]}"#,
    )
    .unwrap();
    let h = Harness::start("http-media", |o| o.prices = book).await;
    let (_, key) = h.account("10.00").await;
    // Two HD images at $0.08: $0.16 = 320,000 credits.
    let response = h
        .post(
            &key,
            "/v1/images/generations",
            &json!({"model": "dall-e-3", "prompt": "a lighthouse", "n": 2, "size": "1024x1024", "quality": "hd"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["meta"]["usage"]["credits_used"], 320_000);
    // Eleven characters at $0.000015: 330 credits; the answer is audio, the usage in headers.
    let response = h
        .post(
            &key,
            "/v1/audio/speech",
            &json!({"model": "tts-1", "input": "hello world", "voice": "alloy"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-aimlapi-credits-used"], "330");
    assert!(!response.bytes().await.unwrap().is_empty());
    // Priced by image tokens: the upstream's usage (all its output tokens are image tokens).
    let response = h
        .post(
            &key,
            "/v1/images/generations",
            &json!({"model": "gpt-image-1", "prompt": "a lighthouse", "n": 1, "quality": "low", "size": "1024x1024"}),
        )
        .await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let tokens = body["usage"]["output_tokens"].as_u64().unwrap();
    let input = body["usage"]["input_tokens"].as_u64().unwrap();
    // input × $5/M + output × $40/M, in credits (2 per micro-dollar): 10 and 80 a token.
    let expected = i64::try_from(input * 10 + tokens * 80).unwrap();
    assert_eq!(body["meta"]["usage"]["credits_used"].as_i64(), Some(expected));
    h.stop().await;
}

/// The stores given to the builder are the ones the server uses: given every store, it
/// charges in the given ledger, knows the accounts of the given directory, logs calls in the
/// given usage log, and never makes its data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_given_its_stores_uses_them_and_leaves_its_data_directory_alone() {
    let upstream = FakeUpstream::start(UpstreamOptions::default())
        .await
        .expect("the fake upstream");
    let dir = TempDir::new("http-given-stores");
    let mut options = options(&dir, &upstream.url());
    let data_dir = dir.0.join("data");
    options.data_dir = data_dir.clone();
    let clock = SystemClock::new();
    let ledger = dir.0.join("elsewhere/ledger");
    let billing = EmbeddedStore::open(&ledger, BillingConfig::default(), clock, &OpenOptions::default())
        .expect("the ledger opens");
    let invoices = FileSequenceStore::open(dir.0.join("elsewhere/invoices")).expect("the numbering opens");
    let limits = InProcessStore::with_clock(&Plan::pay_as_you_go(), clock);
    let directory = Directory::in_memory();
    let (account, key) = directory
        .create_account("Acme Ltd", "IE", Some("IE6388047V"), &[])
        .await
        .expect("an account");
    let proxy = ServerBuilder::new(options, clock)
        .stores(billing, invoices)
        .limits(limits)
        .directory(directory)
        .usage(UsageLog::in_memory())
        .open()
        .expect("the server opens");
    let h = Harness::serve_proxy(upstream, dir, proxy).await;
    let (status, paid) = h
        .admin(
            reqwest::Method::POST,
            &format!("/admin/v1/accounts/{}/payments", account.id.0),
            Some(json!({"payment_id": "pay-given", "usd": "1.00", "method": "card"})),
        )
        .await;
    assert_eq!(status, 200, "{paid}");
    let response = h.post(&key.secret, "/v1/chat/completions", &chat("hello")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    let charged = body["meta"]["usage"]["credits_used"].as_i64().expect("meta credits");
    assert_eq!(h.credits(&key.secret).await, 2_000_000 - charged);
    assert_eq!(h.proxy.usage().len(), 1);
    let (_, dir, proxy) = h.stop().await;
    let proxy = taken_back(proxy).await;
    assert!(!data_dir.exists(), "the data directory was made");
    drop(proxy);
    // The charge is in the given ledger.
    let billing = EmbeddedStore::open(
        &ledger,
        BillingConfig::default(),
        SystemClock::new(),
        &OpenOptions::default(),
    )
    .expect("the ledger opens again");
    let balance = paygo_billing::BillingStore::balance(&billing, account.id)
        .await
        .expect("a balance");
    assert_eq!(balance.available.get(), 2_000_000 - charged);
    drop(dir);
}

/// An upstream that answers every call with the same body and content type (usage shapes
/// the fake upstream does not make).
async fn fixed_upstream(content_type: &'static str, body: String) -> String {
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move { ([(axum::http::header::CONTENT_TYPE, content_type)], body) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// An upstream that answers every call with the same JSON body.
async fn fixed_json_upstream(answer: Value) -> String {
    fixed_upstream("application/json", answer.to_string()).await
}

/// dall-e-3 priced per image only (HD 1024x1024 at $0.08).
const PER_IMAGE_BOOK: &str = r#"{"format": "paygo-prices/1", "models": [
    {"id": "dall-e-3", "provider": "openai", "mode": "image_generation", "versions": [{
      "valid_from": "2024-01-01T00:00:00Z", "prices": {},
      "variants": [{"component": "output_image", "variant": "1024x1024/hd", "usd_per_unit": "0.08"}]}]}
]}"#;

/// Usage the upstream reports but that cannot be read (here the total contradicts the
/// counters, as an OpenAI-compatible gateway in front of a thinking model may report) is
/// not "no usage": the call is not charged its prompt alone with its output free, it
/// answers 502 `usage_unpriceable` with the hold released, as usage that cannot be priced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_that_cannot_be_read_is_refused_not_charged_as_no_usage() {
    let url = fixed_json_upstream(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 198, "total_tokens": 623}
    }))
    .await;
    let upstream = FakeUpstream::start(UpstreamOptions::default())
        .await
        .expect("the fake upstream");
    let dir = TempDir::new("http-unreadable-usage");
    let options = options(&dir, &url);
    let h = Harness::serve(upstream, dir, options).await;
    let (_, key) = h.account("1.00").await;
    let response = h.post(&key, "/v1/chat/completions", &chat("hello")).await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "usage_unpriceable", "{body}");
    assert_eq!(h.credits(&key).await, 2_000_000, "the hold was released");
    h.stop().await;
}

/// An image model priced per image is charged per image when the upstream reports token
/// counts beside the images (zeros here): the request's units are kept with the reported
/// usage, not replaced by it (which quoted $0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_priced_per_image_are_charged_per_image_whatever_tokens_are_reported() {
    let url = fixed_json_upstream(json!({
        "created": 1, "data": [{"b64_json": "aGk="}],
        "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    }))
    .await;
    let book = PriceBook::from_json(PER_IMAGE_BOOK).unwrap();
    let upstream = FakeUpstream::start(UpstreamOptions::default())
        .await
        .expect("the fake upstream");
    let dir = TempDir::new("http-images-per-image");
    let mut first = options(&dir, &url);
    first.prices = book;
    let h = Harness::serve(upstream, dir, first).await;
    let (_, key) = h.account("1.00").await;
    let response = h
        .post(
            &key,
            "/v1/images/generations",
            &json!({"model": "dall-e-3", "prompt": "a lighthouse", "n": 1, "size": "1024x1024", "quality": "hd"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    // $0.08 = 160,000 credits.
    assert_eq!(body["meta"]["usage"]["credits_used"], 160_000, "{body}");
    assert_eq!(h.credits(&key).await, 2_000_000 - 160_000);
    h.stop().await;
    // A usage beside the images that cannot be read (empty here) is left out: still per image.
    let url = fixed_json_upstream(json!({"created": 1, "data": [{"b64_json": "aGk="}], "usage": {}})).await;
    let upstream = FakeUpstream::start(UpstreamOptions::default())
        .await
        .expect("the fake upstream");
    let dir = TempDir::new("http-images-empty-usage");
    let mut second = options(&dir, &url);
    second.prices = PriceBook::from_json(PER_IMAGE_BOOK).unwrap();
    let h = Harness::serve(upstream, dir, second).await;
    let (_, key) = h.account("1.00").await;
    let response = h
        .post(
            &key,
            "/v1/images/generations",
            &json!({"model": "dall-e-3", "prompt": "a lighthouse", "size": "1024x1024", "quality": "hd"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(h.credits(&key).await, 2_000_000 - 160_000);
    h.stop().await;
}

/// A stream whose final usage cannot be read is charged the request's bound (the prompt
/// bound and the output limit the hold was sized on), recorded as `bound`: not the prompt
/// alone, as if no usage had come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_usage_cannot_be_read_is_charged_its_bound() {
    let chunk = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": null}]});
    let usage = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [],
        "usage": {"prompt_tokens": 20, "completion_tokens": 198, "total_tokens": 623}});
    let events = format!("data: {chunk}\n\ndata: {usage}\n\ndata: [DONE]\n\n");
    let url = fixed_upstream("text/event-stream", events).await;
    let upstream = FakeUpstream::start(UpstreamOptions::default())
        .await
        .expect("the fake upstream");
    let dir = TempDir::new("http-stream-unreadable");
    let options = options(&dir, &url);
    let h = Harness::serve(upstream, dir, options).await;
    let (id, key) = h.account("1.00").await;
    let before = h.credits(&key).await;
    let mut body = chat("hello");
    body["stream"] = json!(true);
    body["max_tokens"] = json!(100);
    let response = h.post(&key, "/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("the stream ends");
    assert!(text.contains("\"meta\""), "{text}");
    let records = h.proxy.usage().records(paygo_billing::CustomerId(id)).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].settlement, paygo_http::Settlement::Bound);
    assert_eq!(records[0].usage.completion_tokens, 100, "the output limit");
    assert_eq!(records[0].credits.get(), before - h.credits(&key).await);
    h.stop().await;
}
