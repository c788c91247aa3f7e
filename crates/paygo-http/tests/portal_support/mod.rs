//! A server with the billing portal on, in front of the fake upstream, and a client that
//! keeps the portal's cookies as a browser does (shared by `tests/portal.rs` and
//! `tests/portal_browser.rs`).

#![allow(dead_code, unreachable_pub)] // each test file uses a part; `pub` for the files that include it

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use paygo_http::{
    EmbeddedProxy, PortalOptions, PortalSecret, ProxyOptions, SellerOptions, ServerOptions, Vies, open_embedded, serve,
};
use paygo_invoice::Party;
use paygo_pricing::{DEFAULT_PRICES, PriceBook};
use paygo_ratelimit::Plan;
use paygo_testkit::store::TempDir;
use paygo_testkit::upstream::{FakeUpstream, UpstreamOptions};
use paygo_time::SystemClock;
use paygo_vat::{Country, Seller, VatId, VatIdStatus};
use serde_json::{Value, json};

pub const ADMIN: &str = "admin-token-for-portal-tests";

pub struct Server {
    pub base: String,
    pub upstream: FakeUpstream,
    pub proxy: Arc<EmbeddedProxy<SystemClock>>,
    pub http: reqwest::Client,
    pub dir: TempDir,
}

/// An account made through the operator API.
pub struct Account {
    pub id: u128,
    pub key: String,
    pub key_id: String,
}

impl Server {
    /// A server whose VIES confirms every well-formed VAT ID but two: `DE811569869` (no
    /// answer) and `FR40303265045` (not registered).
    pub async fn start(name: &str, session_ttl_ms: u64) -> Server {
        let vies = |id: &VatId| match id.to_string().as_str() {
            "DE811569869" => VatIdStatus::Unknown,
            "FR40303265045" => VatIdStatus::Invalid,
            _ => VatIdStatus::Valid,
        };
        Server::start_with(name, session_ttl_ms, Some(Vies(Arc::new(vies)))).await
    }

    /// A server with `vies` (or none: VAT IDs customers give stay unconfirmed).
    pub async fn start_with(name: &str, session_ttl_ms: u64, vies: Option<Vies>) -> Server {
        let upstream = FakeUpstream::start(UpstreamOptions::default())
            .await
            .expect("the fake upstream");
        let dir = TempDir::new(name);
        let mut proxy = ProxyOptions::new(upstream.url());
        proxy.admin_token = Some(ADMIN.into());
        proxy.upstream_timeout_ms = 5_000;
        let mut portal = PortalOptions::new(PortalSecret::random().expect("a secret"));
        portal.session_ttl_ms = session_ttl_ms;
        portal.vies = vies;
        proxy.portal = Some(portal);
        let options = ServerOptions {
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
        };
        let proxy = Arc::new(open_embedded(options, SystemClock::new()).expect("the server opens"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        tokio::spawn(serve(listener, Arc::clone(&proxy), std::future::pending()));
        Server {
            base,
            upstream,
            proxy,
            http: reqwest::Client::new(),
            dir,
        }
    }

    pub async fn admin(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .expect("the server answers");
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// An account in Germany (a consumer until it gives a VAT ID), paid `usd` by a German
    /// card: its invoice charges German VAT.
    pub async fn account(&self, name: &str, usd: &str, payment: &str) -> Account {
        let created = self
            .admin(
                "/admin/v1/accounts",
                json!({"name": name, "country": "DE", "address": ["Unter den Linden 1", "10117 Berlin"]}),
            )
            .await;
        let id = created["account_id"].as_u64().expect("an id");
        if usd != "0" {
            self.admin(
                &format!("/admin/v1/accounts/{id}/payments"),
                json!({"payment_id": payment, "usd": usd, "method": "card", "card_country": "DE"}),
            )
            .await;
        }
        Account {
            id: u128::from(id),
            key: created["api_key"].as_str().expect("a key").to_owned(),
            key_id: created["key_id"].as_str().expect("a key id").to_owned(),
        }
    }

    /// One chat call through the proxy; the credits it was charged.
    pub async fn call(&self, key: &str, model: &str) -> i64 {
        let response = self
            .http
            .post(format!("{}/v1/chat/completions", self.base))
            .bearer_auth(key)
            .json(&json!({"model": model, "max_tokens": 40, "messages": [{"role": "user", "content": "hello there"}]}))
            .send()
            .await
            .expect("the server answers");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        body["meta"]["usage"]["credits_used"].as_i64().expect("charged")
    }

    pub async fn credits(&self, key: &str) -> i64 {
        let balance: Value = self
            .http
            .get(format!("{}/v1/billing/balance", self.base))
            .bearer_auth(key)
            .send()
            .await
            .expect("the server answers")
            .json()
            .await
            .expect("json");
        balance["credits"].as_i64().expect("credits")
    }
}

/// A client that keeps cookies as a browser does (per name, for `/portal`), follows no
/// redirect, and reads forms' CSRF tokens.
pub struct Browser {
    pub base: String,
    http: reqwest::Client,
    pub cookies: HashMap<String, String>,
    /// `X-Forwarded-Proto` to send, if any.
    pub forwarded_proto: Option<&'static str>,
}

pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    /// The first form's CSRF token.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF token")
            + 19;
        self.body[at..at + 64].to_owned()
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .collect()
    }
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client"),
            cookies: HashMap::new(),
            forwarded_proto: None,
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let mut request = request.header("cookie", self.cookie_header());
        if let Some(proto) = self.forwarded_proto {
            request = request.header("x-forwarded-proto", proto);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.expect("a body");
        let page = Page { status, headers, body };
        for set in page.set_cookies() {
            let pair = set.split(';').next().unwrap_or_default();
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() || set.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        page
    }

    /// The bytes at `path`, with this browser's cookies.
    pub async fn get_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("the server answers");
        let status = response.status().as_u16();
        (status, response.bytes().await.expect("a body").to_vec())
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }

    /// Signs in with `key`; the page it lands on.
    pub async fn sign_in(&mut self, key: &str) -> Page {
        let form = self.get("/portal/sign-in").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.csrf();
        self.post("/portal/sign-in", &[("csrf", &csrf), ("key", key)]).await
    }
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
