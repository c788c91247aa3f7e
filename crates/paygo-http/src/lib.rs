//! paygo's request path over HTTP: an OpenAI-compatible metering proxy. Every call is
//! authenticated by an API key, rate limited by the account's plan, held for the most it
//! can cost (sized from the request body), forwarded upstream with the operator's key,
//! and charged exactly what its usage says (streams: the final usage chunk) — or released
//! when it fails. All of it through [`paygo_gateway::Gateway`].
//!
//! ```
//! use std::sync::Arc;
//! use paygo_http::{ProxyOptions, ServerOptions, SellerOptions, open_embedded, serve};
//! # use paygo_testkit::upstream::{FakeUpstream, UpstreamOptions};
//! # fn seller() -> SellerOptions { SellerOptions {
//! #     party: paygo_invoice::Party { name: "paygo Ltd".into(), address: vec!["Dublin".into()],
//! #         country: "IE".parse().unwrap(), vat_id: Some(paygo_vat::VatId::parse("IE6433435F").unwrap()) },
//! #     vat: paygo_vat::Seller { country: paygo_vat::Country::Ireland, oss_registered: true },
//! #     series: "INV-2026".into(), credit_note_series: "CN-2026".into() } }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let upstream = FakeUpstream::start(UpstreamOptions::default()).await?; // an OpenAI-compatible model
//! # let dir = paygo_testkit::store::TempDir::new("http-doc");
//! let mut proxy = ProxyOptions::new(upstream.url());
//! proxy.admin_token = Some("operator-secret".into());
//! let options = ServerOptions {
//!     data_dir: dir.0.clone(),
//!     prices: paygo_pricing::PriceBook::from_json(paygo_pricing::DEFAULT_PRICES)?,
//!     plan: paygo_ratelimit::Plan::pay_as_you_go(),
//!     proxy,
//!     seller: seller(),
//!     usd_rates: [(paygo_credits::Currency::EUR, "0.92".parse()?)].into(),
//!     hold_timeout_ms: 600_000,
//! };
//! let server = Arc::new(open_embedded(options, paygo_time::SystemClock::new())?);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let base = format!("http://{}", listener.local_addr()?);
//! tokio::spawn(serve(listener, server, std::future::pending()));
//!
//! let http = reqwest::Client::new();
//! let account: serde_json::Value = http.post(format!("{base}/admin/v1/accounts"))
//!     .bearer_auth("operator-secret")
//!     .json(&serde_json::json!({"name": "Acme GmbH", "country": "DE", "vat_id": "DE136695976"}))
//!     .send().await?.json().await?;
//! let (id, key) = (&account["account_id"], account["api_key"].as_str().unwrap_or_default());
//! http.post(format!("{base}/admin/v1/accounts/{id}/payments"))
//!     .bearer_auth("operator-secret")
//!     .json(&serde_json::json!({"payment_id": "pi_1", "usd": "10.00", "method": "card"}))
//!     .send().await?.error_for_status()?;
//! let answer: serde_json::Value = http.post(format!("{base}/v1/chat/completions"))
//!     .bearer_auth(key)
//!     .json(&serde_json::json!({"model": "gpt-4o", "max_tokens": 50,
//!                               "messages": [{"role": "user", "content": "hello"}]}))
//!     .send().await?.json().await?;
//! let charged = answer["meta"]["usage"]["credits_used"].as_i64().unwrap_or_default();
//! let balance: serde_json::Value = http.get(format!("{base}/v1/billing/balance"))
//!     .bearer_auth(key).send().await?.json().await?;
//! assert_eq!(balance["credits"].as_i64(), Some(20_000_000 - charged));
//! # Ok(()) }
//! ```
//!
//! - [`Proxy`] (from [`ProxyOptions`]) and [`router`]: mount the endpoints in any axum
//!   service; [`open_embedded`] and [`serve`]: the server with every store in one data
//!   directory and a graceful shutdown (`examples/server.rs`); [`ServerBuilder`]: the
//!   same with some stores given instead (PostgreSQL, Redis: shared by replicas).
//! - [`sizing`]: the hold's size from a request body (an upper bound on its prompt tokens,
//!   never below the true count).
//! - [`Directory`]: accounts and their keys (256 random bits, kept as BLAKE3 hashes).
//! - [`UsageLog`]: one record per charged call, for the usage endpoints.
//! - The billing portal under `/portal` ([`PortalOptions`] in [`ProxyOptions::portal`]):
//!   balance, usage, invoices, auto top-up, billing details and VAT refunds, keys
//!   (`docs/portal.md`).
//!
//! `docs/http.md` has the endpoints, the stream rules, the error table and what a crash can
//! leave.

mod accounts;
mod api;
mod error;
mod jsonl;
mod portal;
mod proxy;
mod respond;
pub mod server;
#[cfg(feature = "postgres")]
mod shared;
pub mod sizing;
mod stream;
mod usage;
mod zip;

pub use accounts::{Account, Details, Directory, KEY_PREFIX, KeyId, KeyInfo, KeyOptions, NewKey};
pub use api::router;
pub use error::HttpError;
pub use portal::{PortalOptions, PortalSecret, Vies};
pub use proxy::{Proxy, ProxyOptions, RECORD_RETRY_MS};
pub use server::{
    EmbeddedProxy, EmbeddedStores, GivenLimits, GivenStores, InProcessLimits, SellerOptions, ServerBuilder,
    ServerOptions, ServerProxy, open_embedded, serve, take_back,
};
pub use usage::{CallRecord, Settlement, UsageBucket, UsageLog};
