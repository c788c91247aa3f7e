//! Server replicas on one Redis for the tests: each a process of its own (this test binary
//! started again, running `child_main`), with its own data directory and ledger, its rate
//! limits in a `RedisStore` that writes every decision it answers to a log file (the
//! server's own record of what it admitted, with Redis's time), and a client that records
//! what each response said.

#![allow(dead_code)] // each test binary uses its own part

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use paygo_billing::CustomerId;
use paygo_http::{ProxyOptions, SellerOptions, ServerBuilder, ServerOptions, serve};
use paygo_invoice::Party;
use paygo_pricing::{DEFAULT_PRICES, PriceBook};
use paygo_ratelimit::{
    AsyncStore, Decision, LimitSpec, MultiDecision, Plan, Policy, PolicyName, Quota, QuotaOptions, RateLimitError,
    Stamped, Unit,
};
use paygo_redis::{FailurePolicy, RedisOptions, RedisStore};
use paygo_time::SystemClock;
use paygo_vat::{Country, Seller, VatId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub(crate) const ADMIN: &str = "admin-token-for-tests";
/// The plan's period: two seconds, so that a few seconds of load cross many windows.
pub(crate) const PERIOD_NS: u64 = 2_000_000_000;

/// The plan every replica serves: `limit` requests per 2 s, `burst` at once.
pub(crate) fn plan(limit: u64, burst: u64) -> Plan {
    Plan {
        name: "replicas".into(),
        policies: vec![Policy {
            name: PolicyName::new("rp2s").expect("a name"),
            unit: Unit::Requests,
            quota: Quota::new(QuotaOptions {
                limit,
                period_ns: PERIOD_NS,
                burst,
            })
            .expect("a quota"),
        }],
    }
}

/// What a child server is told.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Spec {
    pub(crate) redis: String,
    pub(crate) prefix: String,
    pub(crate) dir: PathBuf,
    pub(crate) upstream: String,
    pub(crate) log: PathBuf,
    pub(crate) closed: bool,
    pub(crate) limit: u64,
    pub(crate) burst: u64,
}

/// One line of a server's decision log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Logged {
    pub(crate) at_ns: u64,
    pub(crate) decision: Option<MultiDecision>,
    pub(crate) error: Option<String>,
}

/// A `RedisStore` that appends every check's answer to a file, one JSON line each.
pub(crate) struct Recording {
    store: RedisStore<CustomerId>,
    log: Mutex<std::fs::File>,
}

impl Recording {
    fn write(&self, line: &Logged) {
        let mut text = serde_json::to_string(line).expect("json");
        text.push('\n');
        let mut file = self.log.lock().expect("the log");
        file.write_all(text.as_bytes()).expect("the log is written");
    }
}

impl AsyncStore<CustomerId> for Recording {
    fn limits(&self) -> &[LimitSpec] {
        self.store.limits()
    }

    async fn check(&self, key: &CustomerId, weights: &[u64]) -> Result<Stamped<MultiDecision>, RateLimitError> {
        let before = self.store.stats().failed_open;
        let answer = self.store.check(key, weights).await;
        let line = match &answer {
            // A fail-open answer is marked: it is not Redis's (the counter moved; under
            // concurrency another check may have moved it, which only marks more).
            Ok(s) if self.store.stats().failed_open > before => Logged {
                at_ns: s.at_ns,
                decision: Some(s.value.clone()),
                error: Some("failed open".into()),
            },
            Ok(s) => Logged {
                at_ns: s.at_ns,
                decision: Some(s.value.clone()),
                error: None,
            },
            Err(e) => Logged {
                at_ns: 0,
                decision: None,
                error: Some(e.to_string()),
            },
        };
        self.write(&line);
        answer
    }

    async fn adjust(&self, key: &CustomerId, deltas: &[i64]) -> Result<Stamped<Vec<Decision>>, RateLimitError> {
        self.store.adjust(key, deltas).await
    }

    async fn quota_for(&self, key: &CustomerId, limit: usize) -> Result<Quota, RateLimitError> {
        self.store.quota_for(key, limit).await
    }

    async fn set_quota(&self, limit: usize, quota: Quota) -> Result<Stamped<()>, RateLimitError> {
        self.store.set_quota(limit, quota).await
    }

    async fn set_key_quota(&self, key: &CustomerId, limit: usize, quota: Quota) -> Result<Stamped<()>, RateLimitError> {
        self.store.set_key_quota(key, limit, quota).await
    }

    async fn remove_key_quota(&self, key: &CustomerId, limit: usize) -> Result<Stamped<Option<Quota>>, RateLimitError> {
        self.store.remove_key_quota(key, limit).await
    }

    async fn evict_full(&self) -> Result<usize, RateLimitError> {
        self.store.evict_full().await
    }
}

fn options(dir: &Path, upstream: &str, plan: Plan) -> ServerOptions {
    let mut proxy = ProxyOptions::new(upstream);
    proxy.admin_token = Some(ADMIN.into());
    proxy.upstream_timeout_ms = 2_000;
    ServerOptions {
        data_dir: dir.to_path_buf(),
        prices: PriceBook::from_json(DEFAULT_PRICES).expect("the embedded book"),
        plan,
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
        hold_timeout_ms: 10_000,
    }
}

/// The child's part: when this test binary is started by [`Replica::start`], it serves
/// until it is killed; in a normal test run it does nothing.
pub(crate) fn child_main() {
    let Ok(spec) = std::env::var("PAYGO_CHILD_SERVER") else {
        return;
    };
    let spec: Spec = serde_json::from_str(&spec).expect("the child's spec");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let plan = plan(spec.limit, spec.burst);
        let mut redis = RedisOptions::new(spec.redis.clone(), spec.prefix.clone());
        redis.failure = if spec.closed {
            FailurePolicy::Closed
        } else {
            FailurePolicy::Open
        };
        redis.timeout_ms = 250;
        let store = RedisStore::open(redis, &plan).await.expect("the Redis store opens");
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&spec.log)
            .expect("the decision log");
        let limits = Recording {
            store,
            log: Mutex::new(log),
        };
        let proxy = Arc::new(
            ServerBuilder::new(options(&spec.dir, &spec.upstream, plan), SystemClock::new())
                .limits(limits)
                .open()
                .expect("the server opens"),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        println!("listening on http://{}", listener.local_addr().expect("an address"));
        let _ = std::io::stdout().flush();
        serve(listener, proxy, std::future::pending()).await.expect("served");
    });
}

/// A server replica in a process of its own.
pub(crate) struct Replica {
    pub(crate) base: String,
    child: Child,
}

impl Replica {
    pub(crate) fn start(test: &str, spec: &Spec) -> Replica {
        let mut child = Command::new(std::env::current_exe().expect("this test binary"))
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env("PAYGO_CHILD_SERVER", serde_json::to_string(spec).expect("json"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the child starts");
        let stdout = child.stdout.take().expect("its output");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines.next().expect("the child prints its address").expect("a line");
            if let Some(at) = line.find("listening on ") {
                break line[at + "listening on ".len()..].trim().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Replica { base, child }
    }

    /// Whether the process is still running (it never exits by itself: an exit is a crash).
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The decisions a server logged, in file order.
pub(crate) fn read_log(path: &Path) -> Vec<Logged> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a log line"))
        .collect()
}

pub(crate) async fn admin(client: &reqwest::Client, base: &str, path: &str, body: Value) -> (u16, Value) {
    let response = client
        .post(format!("{base}{path}"))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A new account on `base`: its id and key.
pub(crate) async fn account(client: &reqwest::Client, base: &str) -> (u64, String) {
    let (status, created) = admin(
        client,
        base,
        "/admin/v1/accounts",
        json!({"name": "Acme Ltd", "country": "IE", "vat_id": "IE6388047V"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    (
        created["account_id"].as_u64().expect("an id"),
        created["api_key"].as_str().expect("a key").to_owned(),
    )
}

/// $5.00 on `base`'s own ledger for `account`.
pub(crate) async fn pay(client: &reqwest::Client, base: &str, account: u64, payment: &str) {
    let body = json!({"payment_id": payment, "usd": "5.00", "method": "card"});
    let (status, answer) = admin(client, base, &format!("/admin/v1/accounts/{account}/payments"), body).await;
    assert_eq!(status, 200, "payment {payment}: {answer}");
}

/// What a client saw of one call.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) replica: usize,
    pub(crate) status: u16,
    /// The rate-limit headers, lowercased names, sorted.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) sent: std::time::Instant,
    pub(crate) answered: std::time::Instant,
}

/// The header names `paygo_ratelimit::headers::all` writes, lowercased.
pub(crate) fn is_rate_limit_header(name: &str) -> bool {
    name == "ratelimit" || name == "ratelimit-policy" || name == "retry-after" || name.starts_with("x-ratelimit-")
}

/// One chat call to `base`.
pub(crate) async fn call(client: &reqwest::Client, replica: usize, base: &str, key: &str) -> Option<Seen> {
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5});
    let sent = std::time::Instant::now();
    let response = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(n, _)| is_rate_limit_header(n.as_str()))
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("?").to_owned()))
        .collect();
    headers.sort();
    let _ = response.bytes().await;
    Some(Seen {
        replica,
        status,
        headers,
        sent,
        answered: std::time::Instant::now(),
    })
}
