//! The billing portal: server-rendered pages under `/portal` where a customer signs in with
//! an API key of their account and sees their balance, usage, invoices, auto top-up,
//! billing details, payment methods and API keys (`docs/portal.md`).
//!
//! Pages are HTML built with `maud` (every value escaped by default); one stylesheet and no
//! script. A session is a cookie the server signs (BLAKE3 keyed hash under the portal
//! secret): the account, the key it was opened with, its expiry and a nonce; `HttpOnly`,
//! `SameSite=Strict`, `Secure` when configured (behind TLS). Nothing is kept server-side but
//! the nonces of sessions signed out before they expired, in the account directory, so
//! replicas that share the secret and the directory accept each other's sessions and refuse
//! each other's signed-out ones. A session ends when it expires, when its key is revoked, or
//! when it is signed out. Every form carries a CSRF token bound to
//! the session (the sign-in form: to a pre-session cookie); every route reads the account
//! from the session only, never from the URL, so one account never reaches another's pages
//! or documents (a document of another account answers 404, as an unknown one does).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use paygo_billing::{
    AutoTopUpRule, AutoTopUpStatus, BillingStore, CardKind, CustomerId, PaymentMethod, SwitchedOff, TopUpAmount,
};
use paygo_credits::{Credits, Currency, Money};
use paygo_gateway::VatRefund;
use paygo_invoice::{Document, DocumentKind, SequenceStore};
use paygo_ratelimit::{AsyncStore, Plan};
use paygo_time::Clock;
use paygo_vat::{VatId, VatIdStatus};
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::accounts::{Details, KeyId, KeyOptions};
use crate::error::HttpError;
use crate::proxy::Proxy;
use crate::usage::UsageBucket;

/// The session cookie's name.
const SESSION_COOKIE: &str = "paygo_session";
/// The pre-session cookie of the sign-in form (its CSRF token is bound to it).
const SIGNIN_COOKIE: &str = "paygo_signin";
/// Nanoseconds in a day.
const DAY_NS: u64 = 86_400_000_000_000;
/// How long a one-time sign-in link is valid, in nanoseconds.
const LINK_TTL_NS: u64 = 15 * 60 * 1_000_000_000;
/// The key id of a session opened by a one-time link (no API key: it ends when it expires
/// or is signed out).
const LINK_KEY: &str = "link";
/// The longest usage range a page or CSV covers, in days.
const USAGE_DAYS_MAX: i64 = 366;
/// The stylesheet.
const CSS: &str = include_str!("portal.css");
/// The script (the VAT ID check as it is typed; the pages work without it).
const JS: &str = include_str!("portal.js");
/// The content security policy of the portal's pages: nothing but this origin's stylesheet,
/// forms posted to this origin, never framed.
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// The policy of a document page: its own inline style (it is a standalone file), nothing
/// else, no script at all.
const DOCUMENT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";

/// The portal's secret: signs session cookies and CSRF tokens. Replicas that should accept
/// each other's sessions share it.
#[derive(Clone)]
pub struct PortalSecret([u8; 32]);

impl PortalSecret {
    /// The secret of 32 bytes.
    pub fn new(bytes: [u8; 32]) -> PortalSecret {
        PortalSecret(bytes)
    }

    /// A new random secret.
    ///
    /// # Errors
    ///
    /// [`HttpError::Random`] when the operating system's random source fails.
    pub fn random() -> Result<PortalSecret, HttpError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| HttpError::Random { reason: e.to_string() })?;
        Ok(PortalSecret(bytes))
    }

    /// The secret from 64 hex digits.
    ///
    /// # Errors
    ///
    /// [`HttpError::Config`] for anything else.
    pub fn from_hex(text: &str) -> Result<PortalSecret, HttpError> {
        blake3::Hash::from_hex(text.trim())
            .map(|h| PortalSecret(*h.as_bytes()))
            .map_err(|_| HttpError::Config {
                what: "the portal secret: expected 64 hex digits (32 bytes)".into(),
            })
    }

    /// The secret kept in `portal.secret` in `dir` (created, readable by its owner only, on
    /// first use), so that sessions survive a restart.
    ///
    /// # Errors
    ///
    /// [`HttpError::Storage`] when the file cannot be read or written;
    /// [`HttpError::Config`] when it holds something else than a secret.
    pub fn load_or_create(dir: impl AsRef<std::path::Path>) -> Result<PortalSecret, HttpError> {
        let path = dir.as_ref().join("portal.secret");
        let storage = |e: std::io::Error| HttpError::Storage {
            what: format!("{}: {e}", path.display()),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => PortalSecret::from_hex(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret = PortalSecret::random()?;
                let hex = blake3::Hash::from(secret.0).to_hex().to_string();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(&path).map_err(storage)?;
                std::io::Write::write_all(&mut file, hex.as_bytes()).map_err(storage)?;
                file.sync_all().map_err(storage)?;
                Ok(secret)
            }
            Err(e) => Err(storage(e)),
        }
    }
}

impl std::fmt::Debug for PortalSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PortalSecret(..)")
    }
}

/// Confirms VAT IDs with VIES (or a cache of it): what a VAT ID a customer gives in the
/// portal is checked with, for reverse charge and VAT refunds.
#[derive(Clone)]
pub struct Vies(pub Arc<dyn paygo_vat::VatIdConfirmer + Send + Sync>);

impl std::fmt::Debug for Vies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vies(..)")
    }
}

/// How the portal is set up ([`crate::ProxyOptions::portal`]).
#[derive(Debug, Clone)]
pub struct PortalOptions {
    /// Signs sessions and CSRF tokens.
    pub secret: PortalSecret,
    /// How long a session lasts, in milliseconds. Default 8 hours.
    pub session_ttl_ms: u64,
    /// Whether cookies are marked `Secure` (the server is reached over TLS, usually through
    /// a proxy in front of it). Default false; also set for a request that arrives with
    /// `X-Forwarded-Proto: https`.
    pub secure_cookies: bool,
    /// How VAT IDs customers give are confirmed. `None` (the default): they stay
    /// unconfirmed until the operator registers them (VAT is charged; a VAT refund
    /// answers "not decided yet"), so that a well-formed number nobody checked never
    /// takes VAT off an invoice or gives VAT back. IDs the operator registered are
    /// confirmed either way.
    pub vies: Option<Vies>,
}

impl PortalOptions {
    /// Options with `secret` and the defaults.
    pub fn new(secret: PortalSecret) -> PortalOptions {
        PortalOptions {
            secret,
            session_ttl_ms: 8 * 3_600_000,
            secure_cookies: false,
            vies: None,
        }
    }
}

/// A verified session.
#[derive(Debug, Clone)]
struct Session {
    account: CustomerId,
    key: KeyId,
    expires_ns: u64,
    nonce: String,
    /// The signed part of the cookie (the CSRF token is derived from it).
    payload: String,
}

/// 16 random bytes in hex.
fn nonce() -> Result<String, HttpError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| HttpError::Random { reason: e.to_string() })?;
    let mut out = String::with_capacity(32);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    Ok(out)
}

fn mac(secret: &PortalSecret, purpose: &str, payload: &str) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new_keyed(&secret.0);
    hasher.update(purpose.as_bytes());
    hasher.update(b"\0");
    hasher.update(payload.as_bytes());
    hasher.finalize()
}

/// Whether `given` (hex) is the MAC `expected`, compared in constant time.
fn mac_matches(given: &str, expected: &blake3::Hash) -> bool {
    // blake3::Hash's equality is constant-time.
    blake3::Hash::from_hex(given).is_ok_and(|g| g == *expected)
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A form's fields (`application/x-www-form-urlencoded`), later ones winning.
fn form_fields(body: &[u8]) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    for pair in body.split(|b| *b == b'&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        fields.insert(percent_decode(k), percent_decode(v));
    }
    fields
}

fn percent_decode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Credits with thousands separators.
fn credits_text(credits: Credits) -> String {
    let n = credits.get();
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An exact USD amount: at least two decimals, every further one the amount has.
fn usd_text(amount: Decimal) -> String {
    let mut a = amount.normalize();
    if a.scale() < 2 {
        a.rescale(2);
    }
    if a.is_sign_negative() {
        format!("-${}", a.abs())
    } else {
        format!("${a}")
    }
}

fn money_text(money: &Money) -> String {
    if money.currency() == Currency::USD {
        usd_text(money.amount())
    } else {
        format!("{} {}", money.amount(), money.currency())
    }
}

fn date_of(ns: u64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp_nanos(i64::try_from(ns).unwrap_or(i64::MAX)).date_naive()
}

fn time_text(ns: u64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(i64::try_from(ns).unwrap_or(i64::MAX))
        .format("%Y-%m-%d %H:%M UTC")
        .to_string()
}

fn day_start_ns(day: NaiveDate) -> u64 {
    day.and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_utc().timestamp_nanos_opt())
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0)
}

/// A plan's limits in words.
fn plan_text(plan: &Plan) -> Vec<String> {
    plan.policies
        .iter()
        .map(|p| {
            let q = &p.quota;
            let period = match q.period_ns() {
                3_600_000_000_000 => "an hour".to_owned(),
                60_000_000_000 => "a minute".to_owned(),
                1_000_000_000 => "a second".to_owned(),
                86_400_000_000_000 => "a day".to_owned(),
                ns => format!("per {} s", ns / 1_000_000_000),
            };
            let unit = format!("{:?}", p.unit).to_lowercase();
            format!(
                "{} {unit} {period}, up to {} at once",
                credits_text(Credits::new(i64::try_from(q.limit()).unwrap_or(i64::MAX))),
                q.burst()
            )
        })
        .collect()
}

/// Why a page could not be shown.
#[derive(Debug)]
enum PortalError {
    /// No valid session: to the sign-in page.
    SignIn,
    /// Not found (or another account's).
    NotFound,
    /// A form's CSRF token is missing or wrong.
    Forbidden,
    /// The request is wrong: shown to the customer.
    BadRequest(String),
    /// Something failed on our side.
    Internal(String),
}

impl From<HttpError> for PortalError {
    fn from(e: HttpError) -> PortalError {
        match e {
            HttpError::InvalidField { field, expected } => {
                PortalError::BadRequest(format!("{field}: expected {expected}"))
            }
            HttpError::UnknownAccount { .. } | HttpError::UnknownKey { .. } => PortalError::NotFound,
            other => PortalError::Internal(other.to_string()),
        }
    }
}

fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        let (status, title, text) = match self {
            PortalError::SignIn => return redirect("/portal/sign-in"),
            PortalError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such page or document in your account.".to_owned(),
            ),
            PortalError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form is no longer valid (it was opened in another session). Go back, reload the page and try again.".to_owned(),
            ),
            PortalError::BadRequest(text) => (StatusCode::BAD_REQUEST, "Please check your input", text),
            // What failed goes to the operator's log, not to the page (a store's message
            // can name its internals); the customer learns that it was not their doing.
            PortalError::Internal(what) => {
                eprintln!("paygo-http portal: {what}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on our side",
                    "Try again in a moment; if it keeps failing, contact support.".to_owned(),
                )
            }
        };
        html_response(
            status,
            html! {
                (DOCTYPE)
                html lang="en" {
                    head { meta charset="utf-8"; title { (title) " · Billing portal" } link rel="stylesheet" href="/portal/static/portal.css"; }
                    body { main { h1 { (title) } p { (text) } p { a href="/portal" { "Back to the billing portal" } } } }
                }
            },
        )
    }
}

type PageResult = Result<Response, PortalError>;

/// The portal's sections, in the navigation's order.
const NAV: [(&str, &str); 7] = [
    ("/portal", "Overview"),
    ("/portal/usage", "Usage"),
    ("/portal/invoices", "Invoices"),
    ("/portal/auto-top-up", "Auto top-up"),
    ("/portal/billing-details", "Billing details"),
    ("/portal/payment-methods", "Payment methods"),
    ("/portal/keys", "API keys"),
];

/// The routes under `/portal`.
pub(crate) fn routes<B, L, C, S>() -> Router<Arc<Proxy<B, L, C, S>>>
where
    B: BillingStore + 'static,
    L: AsyncStore<CustomerId> + 'static,
    C: Clock + 'static,
    S: SequenceStore + Send + Sync + 'static,
{
    Router::new()
        .route("/portal", get(Proxy::<B, L, C, S>::portal_overview))
        .route(
            "/portal/sign-in",
            get(Proxy::<B, L, C, S>::portal_sign_in_form).post(Proxy::<B, L, C, S>::portal_sign_in),
        )
        .route("/portal/sign-out", post(Proxy::<B, L, C, S>::portal_sign_out))
        .route(
            "/portal/link/{token}",
            get(Proxy::<B, L, C, S>::portal_link_form).post(Proxy::<B, L, C, S>::portal_link_sign_in),
        )
        .route("/portal/usage", get(Proxy::<B, L, C, S>::portal_usage))
        .route("/portal/usage.csv", get(Proxy::<B, L, C, S>::portal_usage_csv))
        .route("/portal/invoices", get(Proxy::<B, L, C, S>::portal_invoices))
        .route("/portal/invoices.zip", get(Proxy::<B, L, C, S>::portal_invoices_zip))
        .route("/portal/invoices/{number}", get(Proxy::<B, L, C, S>::portal_invoice))
        .route(
            "/portal/invoices/{number}/download",
            get(Proxy::<B, L, C, S>::portal_invoice_download),
        )
        .route(
            "/portal/auto-top-up",
            get(Proxy::<B, L, C, S>::portal_auto_top_up).post(Proxy::<B, L, C, S>::portal_save_auto_top_up),
        )
        .route(
            "/portal/billing-details",
            get(Proxy::<B, L, C, S>::portal_details).post(Proxy::<B, L, C, S>::portal_save_details),
        )
        .route("/portal/vat-refund", post(Proxy::<B, L, C, S>::portal_vat_refund))
        .route(
            "/portal/payment-methods",
            get(Proxy::<B, L, C, S>::portal_payment_methods),
        )
        .route(
            "/portal/keys",
            get(Proxy::<B, L, C, S>::portal_keys).post(Proxy::<B, L, C, S>::portal_create_key),
        )
        .route(
            "/portal/keys/{key_id}/revoke",
            post(Proxy::<B, L, C, S>::portal_revoke_key),
        )
        .route("/portal/static/portal.css", get(portal_css))
        .route("/portal/static/portal.js", get(portal_js))
        .route("/portal/vat-check", get(Proxy::<B, L, C, S>::portal_vat_check))
}

async fn portal_js() -> Response {
    static_file(JS, "text/javascript; charset=utf-8")
}

/// The query of `/portal/vat-check`.
#[derive(Debug, Deserialize)]
struct VatCheck {
    id: String,
}

async fn portal_css() -> Response {
    static_file(CSS, "text/css; charset=utf-8")
}

/// One of the portal's static files, cached for an hour.
fn static_file(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// The query of the usage page and its CSV.
#[derive(Debug, Deserialize)]
struct UsageRange {
    from: Option<String>,
    to: Option<String>,
    group: Option<String>,
}

/// A usage page's range and grouping, checked.
struct Range {
    from: NaiveDate,
    /// The last day, included.
    to: NaiveDate,
    group: Group,
}

/// What a usage page splits the spend by, besides the day.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    Model,
    Key,
    Day,
}

impl Group {
    fn code(self) -> &'static str {
        match self {
            Group::Model => "model",
            Group::Key => "key",
            Group::Day => "day",
        }
    }
}

fn parse_range(query: &UsageRange, today: NaiveDate) -> Result<Range, PortalError> {
    let day = |field: &str, text: &Option<String>, default: NaiveDate| match text.as_deref().filter(|t| !t.is_empty()) {
        None => Ok(default),
        Some(t) => NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .map_err(|_| PortalError::BadRequest(format!("{field}: expected a date such as 2026-12-01, got {t:?}"))),
    };
    let to = day("to", &query.to, today)?;
    let from = day("from", &query.from, to - chrono::Duration::days(29))?;
    if from > to {
        return Err(PortalError::BadRequest("from: expected a day on or before `to`".into()));
    }
    if (to - from).num_days() >= USAGE_DAYS_MAX {
        return Err(PortalError::BadRequest(format!(
            "the range: expected at most {USAGE_DAYS_MAX} days"
        )));
    }
    let group = match query.group.as_deref() {
        None | Some("" | "model") => Group::Model,
        Some("key") => Group::Key,
        Some("day") => Group::Day,
        Some(other) => {
            return Err(PortalError::BadRequest(format!(
                "group: expected model, key or day, got {other:?}"
            )));
        }
    };
    Ok(Range { from, to, group })
}

/// Sums of usage buckets.
#[derive(Clone, Default)]
struct Totals {
    calls: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    credits: i64,
    usd: Decimal,
}

impl Totals {
    fn add(&mut self, b: &UsageBucket) -> Result<(), PortalError> {
        let overflow = || PortalError::Internal("a usage sum is out of range".into());
        self.calls = self.calls.checked_add(b.calls).ok_or_else(overflow)?;
        self.prompt_tokens = self.prompt_tokens.checked_add(b.prompt_tokens).ok_or_else(overflow)?;
        self.completion_tokens = self
            .completion_tokens
            .checked_add(b.completion_tokens)
            .ok_or_else(overflow)?;
        self.credits = self.credits.checked_add(b.credits.get()).ok_or_else(overflow)?;
        self.usd = self.usd.checked_add(b.usd.amount()).ok_or_else(overflow)?;
        Ok(())
    }
}

/// The label of a chart's top line: the largest bar's USD.
fn top_of<K>(rows: &[(K, Totals)]) -> String {
    rows.iter()
        .max_by_key(|(_, t)| t.credits)
        .map_or_else(|| "$0.00".to_owned(), |(_, t)| usd_text(t.usd))
}

/// `n` and a noun, plural unless one.
fn count_text(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A bar chart of `bars` (label, value in credits, its USD text) as SVG, scaled to the
/// largest; the numbers are in the table next to it.
fn bar_chart(title: &str, id: &str, bars: &[(String, i64, String)], top: &str) -> Markup {
    const W: i64 = 720;
    const H: i64 = 180;
    const LEFT: i64 = 8;
    const BOTTOM: i64 = 24;
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    let n = i64::try_from(bars.len()).unwrap_or(1).max(1);
    let slot = (W - LEFT) / n;
    let width = (slot * 7 / 10).max(1);
    let label_every = (n / 12).max(1);
    html! {
        svg class="chart" viewBox=(format!("0 0 {W} {}", H + BOTTOM)) role="img" aria-labelledby=(format!("{id}-title")) {
            title id=(format!("{id}-title")) { (title) " (the numbers are in the table below)" }
            line class="axis" x1=(LEFT) y1=(H) x2=(W) y2=(H) {}
            line class="axis" x1=(LEFT) y1="10" x2=(W) y2="10" stroke-dasharray="3 4" {}
            text x=(LEFT + 4) y="8" { (top) }
            @for (i, (label, value, usd)) in bars.iter().enumerate() {
                @let i = i64::try_from(i).unwrap_or(0);
                @let h = i64::try_from(i128::from((*value).max(0)) * i128::from(H - 10) / i128::from(max)).unwrap_or(0);
                @let x = LEFT + i * slot + (slot - width) / 2;
                rect class="bar" x=(x) y=(H - h) width=(width) height=(h) {
                    title { (label) ": " (usd) }
                }
                @if i % label_every == 0 {
                    text x=(x) y=(H + 16) { (label) }
                }
            }
        }
    }
}

// axum handlers are async by their signature, whether or not a page awaits anything.
#[allow(clippy::unused_async)]
impl<B, L, C, S> Proxy<B, L, C, S>
where
    B: BillingStore + 'static,
    L: AsyncStore<CustomerId> + 'static,
    C: Clock + 'static,
    S: SequenceStore + Send + Sync + 'static,
{
    fn portal_options(&self) -> Result<&PortalOptions, PortalError> {
        self.options.portal.as_ref().ok_or(PortalError::NotFound)
    }

    fn now_ns(&self) -> u64 {
        self.gateway.clock().now_ns()
    }

    /// The request's session, verified: signed by this portal's secret, not expired, not
    /// signed out, its key still active on its account.
    fn session(&self, headers: &HeaderMap) -> Result<Session, PortalError> {
        let options = self.portal_options()?;
        let value = cookie(headers, SESSION_COOKIE).ok_or(PortalError::SignIn)?;
        let (payload, given) = value.rsplit_once('.').ok_or(PortalError::SignIn)?;
        if !mac_matches(given, &mac(&options.secret, "session", payload)) {
            return Err(PortalError::SignIn);
        }
        let mut parts = payload.split('.');
        let (Some(account), Some(key), Some(expires), Some(nonce), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(PortalError::SignIn);
        };
        let account = CustomerId(account.parse().map_err(|_| PortalError::SignIn)?);
        let expires_ns: u64 = expires.parse().map_err(|_| PortalError::SignIn)?;
        let key = KeyId(key.to_owned());
        let live = if key.0 == LINK_KEY {
            self.directory.account(account).is_some()
        } else {
            self.directory.key_account(&key) == Some(account)
        };
        if expires_ns <= self.now_ns() || self.directory.session_ended(nonce) || !live {
            return Err(PortalError::SignIn);
        }
        Ok(Session {
            account,
            key,
            expires_ns,
            nonce: nonce.to_owned(),
            payload: payload.to_owned(),
        })
    }

    fn csrf_token(&self, session: &Session) -> Result<String, PortalError> {
        Ok(mac(&self.portal_options()?.secret, "csrf", &session.payload)
            .to_hex()
            .to_string())
    }

    /// The session of a form post, with its fields, after checking its CSRF token.
    fn posted(&self, headers: &HeaderMap, body: &Bytes) -> Result<(Session, HashMap<String, String>), PortalError> {
        let session = self.session(headers)?;
        let fields = form_fields(body);
        let expected = mac(&self.portal_options()?.secret, "csrf", &session.payload);
        if !fields.get("csrf").is_some_and(|t| mac_matches(t, &expected)) {
            return Err(PortalError::Forbidden);
        }
        Ok((session, fields))
    }

    fn secure(&self, headers: &HeaderMap) -> bool {
        self.options.portal.as_ref().is_some_and(|p| p.secure_cookies)
            || headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("https"))
    }

    fn set_cookie(&self, response: &mut Response, headers: &HeaderMap, name: &str, value: &str, max_age_s: u64) {
        let secure = if self.secure(headers) { "; Secure" } else { "" };
        let text = format!("{name}={value}; Path=/portal; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}");
        if let Ok(v) = HeaderValue::from_str(&text) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }

    /// A page of the signed-in portal: the navigation, the account, the sign-out form.
    fn page(&self, session: &Session, current: &str, title: &str, body: &Markup) -> Result<Markup, PortalError> {
        let csrf = self.csrf_token(session)?;
        let name = self
            .directory
            .account(session.account)
            .map(|a| a.name)
            .unwrap_or_default();
        Ok(html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · Billing portal" }
                    link rel="stylesheet" href="/portal/static/portal.css";
                }
                body {
                    a class="skip" href="#main" { "Skip to content" }
                    header {
                        div class="bar" {
                            span class="brand" { "Billing portal" }
                            nav aria-label="Billing portal" {
                                ul {
                                    @for (href, label) in NAV {
                                        li {
                                            @if href == current {
                                                a href=(href) aria-current="page" { (label) }
                                            } @else {
                                                a href=(href) { (label) }
                                            }
                                        }
                                    }
                                }
                            }
                            form method="post" action="/portal/sign-out" {
                                span class="who" { (name) " · account " (session.account.0) " " }
                                input type="hidden" name="csrf" value=(csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                    main id="main" {
                        h1 { (title) }
                        (body)
                    }
                }
            }
        })
    }

    async fn portal_sign_in_form(State(p): State<Arc<Self>>, headers: HeaderMap) -> PageResult {
        let options = p.portal_options()?;
        if p.session(&headers).is_ok() {
            return Ok(redirect("/portal"));
        }
        let pre = nonce()?;
        let token = mac(&options.secret, "sign-in", &pre).to_hex().to_string();
        let mut response = html_response(StatusCode::OK, sign_in_page(&token, None));
        p.set_cookie(&mut response, &headers, SIGNIN_COOKIE, &pre, 3600);
        Ok(response)
    }

    async fn portal_sign_in(State(p): State<Arc<Self>>, headers: HeaderMap, body: Bytes) -> PageResult {
        let options = p.portal_options()?;
        let fields = form_fields(&body);
        let pre = cookie(&headers, SIGNIN_COOKIE).unwrap_or_default();
        let expected = mac(&options.secret, "sign-in", &pre);
        if pre.is_empty() || !fields.get("csrf").is_some_and(|t| mac_matches(t, &expected)) {
            return Err(PortalError::Forbidden);
        }
        let token = expected.to_hex().to_string();
        let key = fields.get("key").map(|k| k.trim()).unwrap_or_default();
        let Some((account, key_id)) = p.directory.authenticate_fresh(key).await? else {
            return Ok(html_response(
                StatusCode::UNAUTHORIZED,
                sign_in_page(
                    &token,
                    Some("That API key is not valid: check it, or ask for a new one."),
                ),
            ));
        };
        let now = p.now_ns();
        let ttl_ns = options.session_ttl_ms.saturating_mul(1_000_000);
        let expires_ns = now.saturating_add(ttl_ns);
        let payload = format!("{}.{}.{expires_ns}.{}", account.0, key_id.0, nonce()?);
        let value = format!("{payload}.{}", mac(&options.secret, "session", &payload).to_hex());
        let mut response = redirect("/portal");
        p.set_cookie(
            &mut response,
            &headers,
            SESSION_COOKIE,
            &value,
            options.session_ttl_ms / 1000,
        );
        p.set_cookie(&mut response, &headers, SIGNIN_COOKIE, "", 0);
        Ok(response)
    }

    /// A one-time sign-in link for `account` (the operator API's
    /// `POST /admin/v1/accounts/{id}/portal-link`): its path and when it expires (ns).
    ///
    /// # Errors
    ///
    /// [`HttpError::Config`] when the portal is off; [`HttpError::Random`].
    pub(crate) fn portal_link(&self, account: CustomerId) -> Result<(String, u64), HttpError> {
        let options = self.options.portal.as_ref().ok_or_else(|| HttpError::Config {
            what: "the billing portal is off".into(),
        })?;
        let expires_ns = self.now_ns().saturating_add(LINK_TTL_NS);
        let payload = format!("{}.{expires_ns}.{}", account.0, nonce()?);
        let mac = mac(&options.secret, "link", &payload);
        Ok((format!("/portal/link/{payload}.{}", mac.to_hex()), expires_ns))
    }

    /// A link's account, expiry and nonce, if it is one this portal signed and it has not
    /// expired.
    fn verify_link(&self, token: &str) -> Result<(CustomerId, u64, String), PortalError> {
        let options = self.portal_options()?;
        let invalid =
            || PortalError::BadRequest("This sign-in link is not valid or has expired: ask for a new one.".into());
        let (payload, given) = token.rsplit_once('.').ok_or_else(invalid)?;
        if !mac_matches(given, &mac(&options.secret, "link", payload)) {
            return Err(invalid());
        }
        let mut parts = payload.split('.');
        let (Some(account), Some(expires), Some(nonce), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let account = CustomerId(account.parse().map_err(|_| invalid())?);
        let expires_ns: u64 = expires.parse().map_err(|_| invalid())?;
        if expires_ns <= self.now_ns() || self.directory.account(account).is_none() {
            return Err(invalid());
        }
        Ok((account, expires_ns, nonce.to_owned()))
    }

    /// A link's page: a button that signs in (a link is never used by merely opening it,
    /// as mail scanners and previews do).
    async fn portal_link_form(State(p): State<Arc<Self>>, headers: HeaderMap, Path(token): Path<String>) -> PageResult {
        let options = p.portal_options()?;
        let (account, _, _) = p.verify_link(&token)?;
        let name = p.directory.account(account).map(|a| a.name).unwrap_or_default();
        let pre = nonce()?;
        let csrf = mac(&options.secret, "sign-in", &pre).to_hex().to_string();
        let page = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { "Sign in · Billing portal" }
                    link rel="stylesheet" href="/portal/static/portal.css";
                }
                body {
                    main class="signin" {
                        h1 { "Billing portal" }
                        p { "Sign in to the billing portal of " strong { (name) } " (account " (account.0) ")." }
                        form method="post" action=(format!("/portal/link/{token}")) {
                            input type="hidden" name="csrf" value=(csrf);
                            p { button type="submit" { "Sign in" } }
                        }
                        p class="muted" { "This link works once and for 15 minutes." }
                    }
                }
            }
        };
        let mut response = html_response(StatusCode::OK, page);
        p.set_cookie(&mut response, &headers, SIGNIN_COOKIE, &pre, 3600);
        Ok(response)
    }

    async fn portal_link_sign_in(
        State(p): State<Arc<Self>>,
        headers: HeaderMap,
        Path(token): Path<String>,
        body: Bytes,
    ) -> PageResult {
        let options = p.portal_options()?;
        let fields = form_fields(&body);
        let pre = cookie(&headers, SIGNIN_COOKIE).unwrap_or_default();
        if pre.is_empty()
            || !fields
                .get("csrf")
                .is_some_and(|t| mac_matches(t, &mac(&options.secret, "sign-in", &pre)))
        {
            return Err(PortalError::Forbidden);
        }
        let (account, expires_ns, link) = p.verify_link(&token)?;
        if !p.directory.use_link(&link, expires_ns).await? {
            return Err(PortalError::BadRequest(
                "This sign-in link was used already: each link works once. Ask for a new one, or sign in with an API key.".into(),
            ));
        }
        let ttl_ns = options.session_ttl_ms.saturating_mul(1_000_000);
        let session_expires = p.now_ns().saturating_add(ttl_ns);
        let payload = format!("{}.{LINK_KEY}.{session_expires}.{}", account.0, nonce()?);
        let value = format!("{payload}.{}", mac(&options.secret, "session", &payload).to_hex());
        let mut response = redirect("/portal");
        p.set_cookie(
            &mut response,
            &headers,
            SESSION_COOKIE,
            &value,
            options.session_ttl_ms / 1000,
        );
        p.set_cookie(&mut response, &headers, SIGNIN_COOKIE, "", 0);
        Ok(response)
    }

    async fn portal_sign_out(State(p): State<Arc<Self>>, headers: HeaderMap, body: Bytes) -> PageResult {
        let (session, _) = p.posted(&headers, &body)?;
        p.directory
            .end_session(&session.nonce, session.expires_ns, p.now_ns())
            .await?;
        let mut response = redirect("/portal/sign-in");
        p.set_cookie(&mut response, &headers, SESSION_COOKIE, "", 0);
        Ok(response)
    }

    /// Spend (credits, USD) of `account` in `from_ns .. to_ns`.
    async fn spend(&self, account: CustomerId, from_ns: u64, to_ns: u64) -> Result<Totals, PortalError> {
        let mut totals = Totals::default();
        if from_ns < to_ns {
            for b in self.usage.usage(account, from_ns, to_ns, DAY_NS, false).await? {
                totals.add(&b)?;
            }
        }
        Ok(totals)
    }

    async fn portal_overview(State(p): State<Arc<Self>>, headers: HeaderMap) -> PageResult {
        let session = p.session(&headers)?;
        let account = session.account;
        let balance = p
            .gateway
            .balance(account)
            .await
            .map_err(|e| PortalError::Internal(e.to_string()))?;
        let rate = p.gateway.prices().credit_rate();
        let usd = |c: Credits| {
            rate.to_money_exact(c)
                .map(|m| usd_text(m.amount()))
                .map_err(|e| PortalError::Internal(e.to_string()))
        };
        let now = p.now_ns();
        let today = date_of(now);
        let month = today.with_day(1).unwrap_or(today);
        let today_spend = p.spend(account, day_start_ns(today), now.saturating_add(1)).await?;
        let month_spend = p.spend(account, day_start_ns(month), now.saturating_add(1)).await?;
        let rule = p.auto_status(account).await?.rule;
        let plan = p.plan.as_ref().map(|plan| (plan.name.clone(), plan_text(plan)));
        let body = html! {
            div class="cards" {
                div class="card" {
                    div class="label" { "Balance" }
                    div class="big" data-testid="balance-usd" { (usd(balance.available)?) }
                    div class="sub" data-testid="balance-credits" { (credits_text(balance.available)) " credits" }
                }
                div class="card" {
                    div class="label" { "Paid / bonus credits" }
                    div class="big" { (credits_text(balance.paid)) }
                    div class="sub" { "paid · " (credits_text(balance.bonus)) " bonus" }
                }
                div class="card" {
                    div class="label" { "Spent today (UTC)" }
                    div class="big" data-testid="spend-today" { (usd_text(today_spend.usd)) }
                    div class="sub" { (credits_text(Credits::new(today_spend.credits))) " credits · " (count_text(today_spend.calls, "call")) }
                }
                div class="card" {
                    div class="label" { "Spent this month" }
                    div class="big" data-testid="spend-month" { (usd_text(month_spend.usd)) }
                    div class="sub" { (credits_text(Credits::new(month_spend.credits))) " credits · " (count_text(month_spend.calls, "call")) }
                }
            }
            @if balance.arrears.get() > 0 || balance.uncollected.get() > 0 {
                p class="notice error" {
                    "Owed: " (credits_text(balance.arrears)) " credits after a reversed payment, "
                    (credits_text(balance.uncollected)) " credits not yet collected. Calls are refused until a top-up settles them."
                }
            }
            section class="panel" {
                h2 { "Plan" }
                @match &plan {
                    Some((name, limits)) => {
                        p { strong { (name) } }
                        ul { @for l in limits { li { (l) } } }
                    }
                    None => { p { "Pay as you go." } }
                }
                p class="muted" { "2,000,000 credits = $1. Every call is charged in credits at the model's price; the USD figures are exact." }
            }
            section class="panel" {
                h2 { "Auto top-up" }
                @match rule {
                    Some(r) if r.enabled => {
                        p { "On: when the balance falls below " (credits_text(r.threshold)) " credits (" (usd(r.threshold)?) "), "
                            (amount_text(&r.amount, &usd)?) " is charged to your " (method_text(r.method)) "." }
                    }
                    _ => { p { "Off. " a href="/portal/auto-top-up" { "Switch it on" } " to never run out of credits." } }
                }
            }
        };
        Ok(html_response(
            StatusCode::OK,
            p.page(&session, "/portal", "Overview", &body)?,
        ))
    }

    async fn usage_buckets(&self, account: CustomerId, range: &Range) -> Result<Vec<UsageBucket>, PortalError> {
        let from = day_start_ns(range.from);
        let to = day_start_ns(range.to + chrono::Duration::days(1));
        Ok(match range.group {
            Group::Key => self.usage.usage_by_key(account, from, to, DAY_NS).await?,
            group => {
                self.usage
                    .usage(account, from, to, DAY_NS, group == Group::Model)
                    .await?
            }
        })
    }

    /// What a bucket of the page's grouping is called: its model, or its key (by name and
    /// end when the key is active, by id when it was revoked).
    fn group_label(&self, account: CustomerId, b: &UsageBucket) -> Option<String> {
        if let Some(m) = &b.model {
            return Some(m.clone());
        }
        let key = b.key_id.as_ref()?;
        let active = self.directory.keys(account).into_iter().find(|k| k.id == *key);
        Some(match active {
            Some(k) => format!(
                "{} (sk-paygo-…{})",
                k.name.unwrap_or_else(|| key.0.clone()),
                k.last4.unwrap_or_else(|| "????".to_owned())
            ),
            None => format!("{} (revoked)", key.0),
        })
    }

    async fn portal_usage(
        State(p): State<Arc<Self>>,
        headers: HeaderMap,
        Query(query): Query<UsageRange>,
    ) -> PageResult {
        let session = p.session(&headers)?;
        let range = parse_range(&query, date_of(p.now_ns()))?;
        let buckets = p.usage_buckets(session.account, &range).await?;
        // Per day (every day of the range, empty ones too) and per model.
        let mut days: Vec<(NaiveDate, Totals)> = Vec::new();
        let mut day = range.from;
        while day <= range.to {
            days.push((day, Totals::default()));
            day += chrono::Duration::days(1);
        }
        let mut models: std::collections::BTreeMap<String, Totals> = std::collections::BTreeMap::new();
        let unrecorded = "(key not recorded)".to_owned();
        let mut all = Totals::default();
        for b in &buckets {
            let d = date_of(b.start_ns);
            let i = usize::try_from((d - range.from).num_days()).unwrap_or(0);
            if let Some((_, t)) = days.get_mut(i) {
                t.add(b)?;
            }
            match (range.group, p.group_label(session.account, b)) {
                (Group::Day, _) => {}
                (_, Some(label)) => models.entry(label).or_default().add(b)?,
                (_, None) => models.entry(unrecorded.clone()).or_default().add(b)?,
            }
            all.add(b)?;
        }
        let day_bars: Vec<(String, i64, String)> = days
            .iter()
            .map(|(d, t)| (d.format("%m-%d").to_string(), t.credits, usd_text(t.usd)))
            .collect();
        let model_bars: Vec<(String, i64, String)> = models
            .iter()
            .map(|(m, t)| (m.clone(), t.credits, usd_text(t.usd)))
            .collect();
        let group = range.group.code();
        let (per, per_title) = match range.group {
            Group::Key => ("API key", "Spend per API key"),
            _ => ("Model", "Spend per model"),
        };
        let csv = format!("/portal/usage.csv?from={}&to={}&group={group}", range.from, range.to);
        let body = html! {
            form class="filters" method="get" action="/portal/usage" {
                div { label for="from" { "From" } input type="date" id="from" name="from" value=(range.from); }
                div { label for="to" { "To" } input type="date" id="to" name="to" value=(range.to); }
                div {
                    label for="group" { "Group by" }
                    select id="group" name="group" {
                        option value="model" selected[range.group == Group::Model] { "Model" }
                        option value="key" selected[range.group == Group::Key] { "API key" }
                        option value="day" selected[range.group == Group::Day] { "Day only" }
                    }
                }
                div { button type="submit" { "Show" } }
                div { a class="button secondary" href=(csv) download { "Download CSV" } }
            }
            div class="cards" {
                div class="card" { div class="label" { "Spend in the range" } div class="big" data-testid="usage-total-usd" { (usd_text(all.usd)) } div class="sub" data-testid="usage-total-credits" { (credits_text(Credits::new(all.credits))) " credits" } }
                div class="card" { div class="label" { "Calls" } div class="big" data-testid="usage-calls" { (all.calls) } }
                div class="card" { div class="label" { "Tokens" } div class="big" { (all.prompt_tokens + all.completion_tokens) } div class="sub" { (all.prompt_tokens) " in · " (all.completion_tokens) " out" } }
            }
            h2 { "Spend per day" }
            (bar_chart("Spend per day", "chart-days", &day_bars, &top_of(&days)))
            table id="usage-days" {
                caption { "Spend per day (UTC)" }
                thead { tr { th scope="col" { "Day" } th class="num" scope="col" { "Calls" } th class="num" scope="col" { "Credits" } th class="num" scope="col" { "USD" } } }
                tbody {
                    @for (d, t) in &days {
                        @if t.calls > 0 {
                            tr { th scope="row" { (d) } td class="num" { (t.calls) } td class="num" { (credits_text(Credits::new(t.credits))) } td class="num" { (usd_text(t.usd)) } }
                        }
                    }
                }
            }
            @if range.group != Group::Day {
                h2 { (per_title) }
                (bar_chart(per_title, "chart-models", &model_bars, &top_of(&models.iter().map(|(m, t)| (m.clone(), t.clone())).collect::<Vec<_>>())))
                table id="usage-models" {
                    caption { (per_title) }
                    thead { tr { th scope="col" { (per) } th class="num" scope="col" { "Calls" } th class="num" scope="col" { "Prompt tokens" } th class="num" scope="col" { "Completion tokens" } th class="num" scope="col" { "Credits" } th class="num" scope="col" { "USD" } } }
                    tbody {
                        @for (m, t) in &models {
                            tr { th scope="row" { (m) } td class="num" { (t.calls) } td class="num" { (t.prompt_tokens) } td class="num" { (t.completion_tokens) } td class="num" { (credits_text(Credits::new(t.credits))) } td class="num" { (usd_text(t.usd)) } }
                        }
                    }
                }
            }
        };
        Ok(html_response(
            StatusCode::OK,
            p.page(&session, "/portal/usage", "Usage", &body)?,
        ))
    }

    async fn portal_usage_csv(
        State(p): State<Arc<Self>>,
        headers: HeaderMap,
        Query(query): Query<UsageRange>,
    ) -> PageResult {
        let session = p.session(&headers)?;
        let range = parse_range(&query, date_of(p.now_ns()))?;
        let buckets = p.usage_buckets(session.account, &range).await?;
        let column = if range.group == Group::Key { "key_id" } else { "model" };
        let mut csv = format!("date,{column},calls,prompt_tokens,completion_tokens,credits,usd\r\n");
        for b in &buckets {
            let model = b
                .model
                .as_deref()
                .or(b.key_id.as_ref().map(|k| k.0.as_str()))
                .unwrap_or("");
            // A model id with a comma, quote or line break is quoted, its quotes doubled.
            let model = if model.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", model.replace('"', "\"\""))
            } else {
                model.to_owned()
            };
            let _ = write!(
                csv,
                "{},{model},{},{},{},{},{}\r\n",
                date_of(b.start_ns),
                b.calls,
                b.prompt_tokens,
                b.completion_tokens,
                b.credits.get(),
                b.usd.amount().normalize()
            );
        }
        let name = format!("usage-{}-{}-{}.csv", session.account.0, range.from, range.to);
        let mut response = csv.into_response();
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(response)
    }

    /// The documents (invoices and credit notes) of `account`, in the order they were
    /// issued.
    fn documents_of(&self, account: CustomerId) -> Result<Vec<Document>, PortalError> {
        let number = account.0.to_string();
        let docs: Vec<Document> = self
            .topups
            .invoicing()
            .documents()
            .map_err(|e| PortalError::Internal(e.to_string()))?
            .into_iter()
            .filter(|d| d.customer_number() == Some(number.as_str()))
            .collect();
        Ok(docs)
    }

    /// The document numbered `number` if it is `account`'s (else not found, as an unknown
    /// number is).
    fn document_of(&self, account: CustomerId, number: &str) -> Result<Document, PortalError> {
        self.documents_of(account)?
            .into_iter()
            .find(|d| d.number().to_string() == number)
            .ok_or(PortalError::NotFound)
    }

    async fn portal_invoices(State(p): State<Arc<Self>>, headers: HeaderMap) -> PageResult {
        let session = p.session(&headers)?;
        // Documents issued by other replicas since this one last looked.
        p.topups
            .invoicing()
            .refresh()
            .map_err(|e| PortalError::Internal(e.to_string()))?;
        let mut docs = p.documents_of(session.account)?;
        docs.reverse();
        let credited: HashMap<String, Vec<String>> = {
            let mut map: HashMap<String, Vec<String>> = HashMap::new();
            for d in &docs {
                if let Some(c) = d.correction() {
                    map.entry(c.original.to_string())
                        .or_default()
                        .push(d.number().to_string());
                }
            }
            map
        };
        let today = date_of(p.now_ns());
        let first = docs.last().map_or(today, Document::issue_date);
        // (`docs` is newest first here.)
        let body = html! {
            @if docs.is_empty() {
                p { "No invoices yet: each top-up is invoiced when it is paid." }
            } @else {
                form class="filters" method="get" action="/portal/invoices.zip" {
                    div { label for="zip-from" { "From" } input type="date" id="zip-from" name="from" value=(first); }
                    div { label for="zip-to" { "To" } input type="date" id="zip-to" name="to" value=(today); }
                    div { button type="submit" { "Download all as ZIP" } }
                }
                table id="invoices" {
                    caption { "Invoices and credit notes, newest first" }
                    thead { tr {
                        th scope="col" { "Number" } th scope="col" { "Type" } th scope="col" { "Date" }
                        th class="num" scope="col" { "Net" } th class="num" scope="col" { "VAT" } th class="num" scope="col" { "Total" }
                        th scope="col" { "Status" } th scope="col" { span class="skip" { "Actions" } }
                    } }
                    tbody {
                        @for d in &docs {
                            @let number = d.number().to_string();
                            tr {
                                th scope="row" { a href=(format!("/portal/invoices/{number}")) { (number) } }
                                td { @if d.kind() == DocumentKind::Invoice { "Invoice" } @else { "Credit note" } }
                                td { (d.issue_date()) }
                                td class="num" { (money_text(&d.totals().net)) }
                                td class="num" { (money_text(&d.totals().vat)) }
                                td class="num" { (money_text(&d.totals().gross)) }
                                td {
                                    @if let Some(c) = d.correction() {
                                        "Credits " (c.original.to_string())
                                    } @else if let Some(notes) = credited.get(&number) {
                                        "Paid · credited by " (notes.join(", "))
                                    } @else {
                                        "Paid"
                                    }
                                }
                                td { a href=(format!("/portal/invoices/{number}/download")) download { "Download" } }
                            }
                        }
                    }
                }
            }
        };
        Ok(html_response(
            StatusCode::OK,
            p.page(&session, "/portal/invoices", "Invoices", &body)?,
        ))
    }

    /// Every document of the account issued in a period (`from`, `to`: days, both
    /// included; the whole history when absent), as one ZIP of their HTML files.
    async fn portal_invoices_zip(
        State(p): State<Arc<Self>>,
        headers: HeaderMap,
        Query(query): Query<UsageRange>,
    ) -> PageResult {
        let session = p.session(&headers)?;
        let parse = |field: &str, text: Option<&str>| -> Result<Option<NaiveDate>, PortalError> {
            match text.filter(|t| !t.is_empty()) {
                None => Ok(None),
                Some(t) => NaiveDate::parse_from_str(t, "%Y-%m-%d").map(Some).map_err(|_| {
                    PortalError::BadRequest(format!("{field}: expected a date such as 2026-12-01, got {t:?}"))
                }),
            }
        };
        let from = parse("from", query.from.as_deref())?.unwrap_or(NaiveDate::MIN);
        let to = parse("to", query.to.as_deref())?.unwrap_or(NaiveDate::MAX);
        if from > to {
            return Err(PortalError::BadRequest("from: expected a day on or before `to`".into()));
        }
        p.topups
            .invoicing()
            .refresh()
            .map_err(|e| PortalError::Internal(e.to_string()))?;
        let mut docs = p.documents_of(session.account)?;
        docs.retain(|d| d.issue_date() >= from && d.issue_date() <= to);
        let files: Vec<(String, NaiveDate, Vec<u8>)> = docs
            .iter()
            .map(|d| {
                (
                    format!("{}.html", file_name(&d.number().to_string())),
                    d.issue_date(),
                    d.to_html().into_bytes(),
                )
            })
            .collect();
        let zip = crate::zip::stored(&files)?;
        let name = match (query.from.as_deref(), query.to.as_deref()) {
            (Some(f), Some(t)) if !f.is_empty() && !t.is_empty() => {
                format!("invoices-{}-{from}-{to}.zip", session.account.0)
            }
            _ => format!("invoices-{}.zip", session.account.0),
        };
        let mut response = zip.into_response();
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(response)
    }

    async fn portal_invoice(State(p): State<Arc<Self>>, headers: HeaderMap, Path(number): Path<String>) -> PageResult {
        let session = p.session(&headers)?;
        let doc = p.document_of(session.account, &number)?;
        let mut response = html_response(StatusCode::OK, PreEscaped(doc.to_html()));
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DOCUMENT_CSP));
        Ok(response)
    }

    async fn portal_invoice_download(
        State(p): State<Arc<Self>>,
        headers: HeaderMap,
        Path(number): Path<String>,
    ) -> PageResult {
        let session = p.session(&headers)?;
        let doc = p.document_of(session.account, &number)?;
        let mut response = html_response(StatusCode::OK, PreEscaped(doc.to_html()));
        let h = response.headers_mut();
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DOCUMENT_CSP));
        let file = file_name(&number);
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}.html\"")) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        Ok(response)
    }

    /// The auto top-up as the billing store keeps it (the rule it applies, and the state of
    /// its guardrails).
    async fn auto_status(&self, account: CustomerId) -> Result<AutoTopUpStatus, PortalError> {
        self.gateway
            .billing()
            .auto_top_up(account)
            .await
            .map_err(|e| PortalError::Internal(e.to_string()))
    }

    fn auto_top_up_page(
        &self,
        session: &Session,
        status: &AutoTopUpStatus,
        message: Option<(&str, &str)>,
    ) -> Result<Markup, PortalError> {
        let csrf = self.csrf_token(session)?;
        let rule = status.rule;
        let rate = self.gateway.prices().credit_rate();
        let usd_of = |c: Credits| {
            rate.to_money_exact(c)
                .map(|m| m.amount().normalize().to_string())
                .unwrap_or_default()
        };
        let enabled = rule.is_some_and(|r| r.enabled);
        let threshold = rule.map_or_else(|| "5".to_owned(), |r| usd_of(r.threshold));
        let (fixed, amount) = match rule.map(|r| r.amount) {
            Some(TopUpAmount::Fixed(m)) => (true, m.amount().normalize().to_string()),
            Some(TopUpAmount::TargetBalance(c)) => (false, usd_of(c)),
            None => (true, "20".to_owned()),
        };
        let cap = rule
            .and_then(|r| r.monthly_cap)
            .map(|m| m.amount().normalize().to_string())
            .unwrap_or_default();
        let method = rule.map_or("card", |r| method_code(r.method));
        let body = html! {
            @if let Some((class, text)) = &message {
                p class=(format!("notice {class}")) role="status" { (text) }
            }
            p { "When your balance falls below the threshold, we charge your payment method and add the credits. "
                "Each top-up is invoiced like any other." }
            form method="post" action="/portal/auto-top-up" {
                input type="hidden" name="csrf" value=(csrf);
                div class="check" {
                    input type="checkbox" id="enabled" name="enabled" value="on" checked[enabled];
                    label for="enabled" { "Auto top-up is on" }
                }
                label for="threshold" { "Threshold, USD " span class="hint" { "(top up when the balance falls below this)" } }
                input type="text" inputmode="decimal" id="threshold" name="threshold" value=(threshold) required;
                fieldset {
                    legend { "Amount" }
                    div class="radio" {
                        input type="radio" id="kind-fixed" name="kind" value="fixed" checked[fixed];
                        label for="kind-fixed" { "A fixed amount" }
                        input type="radio" id="kind-refill" name="kind" value="refill" checked[!fixed];
                        label for="kind-refill" { "Refill the balance to" }
                    }
                    label for="amount" { "USD" }
                    input type="text" inputmode="decimal" id="amount" name="amount" value=(amount) required;
                }
                label for="cap" { "Monthly cap, USD " span class="hint" { "(optional: no more than this is charged in a calendar month)" } }
                input type="text" inputmode="decimal" id="cap" name="cap" value=(cap);
                label for="method" { "Payment method" }
                select id="method" name="method" {
                    option value="card" selected[method == "card"] { "Card (credit or debit)" }
                    option value="paypal" selected[method == "paypal"] { "PayPal" }
                    option value="crypto" selected[method == "crypto"] { "Crypto" }
                }
                p { button type="submit" { "Save" } }
            }
            @if let Some(SwitchedOff::Declines { declines, at_ns }) = status.switched_off {
                p class="notice error" role="alert" data-testid="switched-off" {
                    "Auto top-up switched itself off on " (time_text(at_ns)) " after " (declines)
                    " declined payments in a row. Check your payment method, then save this form to switch it on again."
                }
            }
            @if let Some(r) = rule {
                section class="panel" {
                    h2 { "Guardrails" }
                    ul {
                        @if status.declines_in_a_row > 0 {
                            li { strong { (status.declines_in_a_row) " declined payment(s) in a row." } }
                        }
                        @if let Some(until) = status.backing_off_until_ns.filter(|u| *u > self.now_ns()) {
                            li { "Waiting after a decline: no top-up before " (time_text(until)) "." }
                        }
                        @if status.outstanding.is_some() {
                            li { "A top-up is being paid now." }
                        }
                        li { "Requested this month: " (money_text(&status.month_requested))
                            @if let Some(cap) = r.monthly_cap { " of the " (money_text(&cap)) " cap" } "." }
                        li { "At most " (r.requests_per_window_max) " top-ups per " (r.window_ms / 3_600_000) " hours." }
                        @if let Some(n) = r.disable_after_declines {
                            li { "Switched off after " (n) " declined payments in a row; saving this form switches it on again." }
                        }
                        li { "After a declined payment, the next try waits " (r.backoff_ms / 60_000) " minutes, doubling up to " (r.backoff_max_ms / 3_600_000) " hours." }
                    }
                }
            }
        };
        self.page(session, "/portal/auto-top-up", "Auto top-up", &body)
    }

    async fn portal_auto_top_up(State(p): State<Arc<Self>>, headers: HeaderMap) -> PageResult {
        let session = p.session(&headers)?;
        let status = p.auto_status(session.account).await?;
        Ok(html_response(
            StatusCode::OK,
            p.auto_top_up_page(&session, &status, None)?,
        ))
    }

    async fn portal_save_auto_top_up(State(p): State<Arc<Self>>, headers: HeaderMap, body: Bytes) -> PageResult {
        let (session, fields) = p.posted(&headers, &body)?;
        let status = p.auto_status(session.account).await?;
        let rule = match rule_of(&fields, status.rule, &p) {
            Ok(rule) => rule,
            Err(text) => {
                return Ok(html_response(
                    StatusCode::BAD_REQUEST,
                    p.auto_top_up_page(&session, &status, Some(("error", &text)))?,
                ));
            }
        };
        p.gateway
            .set_auto_top_up(session.account, Some(rule))
            .await
            .map_err(|e| PortalError::Internal(e.to_string()))?;
        p.directory.set_auto_top_up(session.account, Some(rule)).await?;
        let text = if rule.enabled {
            "Saved: auto top-up is on."
        } else {
            "Saved: auto top-up is off."
        };
        let status = p.auto_status(session.account).await?;
        Ok(html_response(
            StatusCode::OK,
            p.auto_top_up_page(&session, &status, Some(("ok", text)))?,
        ))
    }

    fn details_page(&self, session: &Session, messages: &[(&str, String)]) -> Result<Markup, PortalError> {
        let csrf = self.csrf_token(session)?;
        let account = self.directory.account(session.account).ok_or(PortalError::NotFound)?;
        let vat = account.vat_id.as_deref().map(|v| {
            let status = VatId::parse(v).ok().map(|id| self.topups.confirm_vat_id(&id));
            (v.to_owned(), status)
        });
        let refundable = self.refundable(session.account)?;
        let body = html! {
            @for (class, text) in messages {
                p class=(format!("notice {class}")) role="status" { (text) }
            }
            p { "Invoices issued from now on show these details." }
            form method="post" action="/portal/billing-details" {
                input type="hidden" name="csrf" value=(csrf);
                label for="name" { "Name or company" }
                input type="text" id="name" name="name" value=(account.name) required maxlength="200" autocomplete="organization";
                label for="address" { "Address " span class="hint" { "(one line per line, up to 6)" } }
                textarea id="address" name="address" autocomplete="street-address" { (account.address.join("\n")) }
                label for="country" { "Country " span class="hint" { "(two letters, such as DE)" } }
                input type="text" id="country" name="country" value=(account.country) required maxlength="2" autocomplete="country";
                label for="vat_id" { "VAT ID " span class="hint" { "(businesses in the EU: with its country prefix, such as DE136695976)" } }
                input type="text" id="vat_id" name="vat_id" value=(account.vat_id.clone().unwrap_or_default()) maxlength="20" aria-describedby="vat-state";
                p id="vat-state" class="hint" aria-live="polite" {
                    @match &vat {
                        Some((id, Some(VatIdStatus::Valid))) => { "VAT ID " (id) ": confirmed by VIES. Invoices are reverse charged." }
                        Some((id, Some(VatIdStatus::Invalid))) => { "VAT ID " (id) ": VIES says it is not registered. VAT is charged." }
                        Some((id, Some(_))) => { "VAT ID " (id) ": VIES did not answer; it is asked again with each payment." }
                        Some((id, None)) => { "VAT ID " (id) ": not a valid VAT ID." }
                        None => { "No VAT ID: VAT of your country is charged." }
                    }
                }
                label for="purchase_order" { "Purchase-order reference " span class="hint" { "(optional: shown on invoices, automatic top-ups included)" } }
                input type="text" id="purchase_order" name="purchase_order" value=(account.purchase_order.clone().unwrap_or_default()) maxlength="100";
                p { button type="submit" { "Save" } }
            }
            @if !refundable.is_empty() && vat.as_ref().is_some_and(|(_, s)| s.is_some()) {
                section class="panel" {
                    h2 { "VAT you paid before giving your VAT ID" }
                    p { "These invoices charged VAT that a confirmed VAT ID lets you have back: " (refundable.join(", ")) "." }
                    form method="post" action="/portal/vat-refund" {
                        input type="hidden" name="csrf" value=(csrf);
                        button type="submit" { "Ask for the VAT back" }
                    }
                }
            }
        };
        let body = html! { (body) script src="/portal/static/portal.js" {} };
        self.page(session, "/portal/billing-details", "Billing details", &body)
    }

    /// The account's invoices with VAT not yet credited back, by number.
    fn refundable(&self, account: CustomerId) -> Result<Vec<String>, PortalError> {
        let mut out = Vec::new();
        for d in self.documents_of(account)? {
            if d.kind() != DocumentKind::Invoice || d.totals().vat.amount() <= Decimal::ZERO {
                continue;
            }
            let credited = self
                .topups
                .invoicing()
                .credited(d.number())
                .map_err(|e| PortalError::Internal(e.to_string()))?;
            if credited.vat.amount() < d.totals().vat.amount() {
                out.push(d.number().to_string());
            }
        }
        Ok(out)
    }

    /// Asks for the VAT of every refundable invoice of the account back with its VAT ID,
    /// and says what each came to.
    fn refund_all(&self, account: CustomerId) -> Result<Vec<(&'static str, String)>, PortalError> {
        let Some(vat_id) = self
            .directory
            .account(account)
            .and_then(|a| a.vat_id)
            .and_then(|v| VatId::parse(&v).ok())
        else {
            return Ok(vec![("error", "Give a valid VAT ID first.".to_owned())]);
        };
        let today = date_of(self.now_ns());
        let mut out = Vec::new();
        for number in self.refundable(account)? {
            let parsed = self
                .documents_of(account)?
                .into_iter()
                .find(|d| d.number().to_string() == number)
                .ok_or(PortalError::NotFound)?;
            let outcome = self
                .topups
                .refund_vat(parsed.number(), vat_id, today)
                .map_err(|e| PortalError::Internal(e.to_string()))?;
            out.push(match outcome {
                VatRefund::CreditNote(note) => (
                    "ok",
                    format!(
                        "VAT refund for {number} approved: credit note {} gives back {}.",
                        note.number(),
                        money_text(&Money::new(-note.totals().vat.amount(), note.totals().vat.currency()))
                    ),
                ),
                VatRefund::Rejected(reason) => ("error", format!("VAT refund for {number} rejected: {reason}.")),
                VatRefund::RetryLater(reason) => (
                    "notice",
                    format!("VAT refund for {number} not decided yet: {reason}. Try again later."),
                ),
                _ => ("notice", format!("VAT refund for {number}: no decision.")),
            });
        }
        Ok(out)
    }

    async fn portal_vat_refund(State(p): State<Arc<Self>>, headers: HeaderMap, body: Bytes) -> PageResult {
        let (session, _) = p.posted(&headers, &body)?;
        let outcomes = p.refund_all(session.account)?;
        let messages: Vec<(&str, String)> = outcomes.into_iter().collect();
        Ok(html_response(StatusCode::OK, p.details_page(&session, &messages)?))
    }

    async fn portal_details(State(p): State<Arc<Self>>, headers: HeaderMap) -> PageResult {
        let session = p.session(&headers)?;
        Ok(html_response(StatusCode::OK, p.details_page(&session, &[])?))
    }

    async fn portal_save_details(State(p): State<Arc<Self>>, headers: HeaderMap, body: Bytes) -> PageResult {
        let (session, fields) = p.posted(&headers, &body)?;
        let field = |k: &str| fields.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
        let optional = |k: &str| Some(field(k)).filter(|v| !v.is_empty());
        let vat_id = optional("vat_id").map(|v| v.replace([' ', '.', '-'], "").to_uppercase());
        if let Some(v) = &vat_id
            && let Err(e) = VatId::parse(v)
        {
            return Ok(html_response(
                StatusCode::BAD_REQUEST,
                p.details_page(&session, &[("error", format!("VAT ID {v}: {e}"))])?,
            ));
        }
        let details = Details {
            name: field("name"),
            address: field("address")
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
            country: field("country").to_uppercase(),
            vat_id,
            purchase_order: optional("purchase_order"),
        };
        let before = p.directory.account(session.account).and_then(|a| a.vat_id);
        let new_vat_id = details.vat_id.clone();
        if let Err(e) = p.directory.set_details(session.account, details).await {
            return match PortalError::from(e) {
                PortalError::BadRequest(text) => Ok(html_response(
                    StatusCode::BAD_REQUEST,
                    p.details_page(&session, &[("error", text)])?,
                )),
                other => Err(other),
            };
        }
        let mut messages = vec![("ok", "Saved: invoices from now on show these details.".to_owned())];
        // A VAT ID given (or changed) after paying VAT: the refund is asked for at once.
        if new_vat_id.is_some() && new_vat_id != before {
            messages.extend(p.refund_all(session.account)?);
        }
        Ok(html_response(StatusCode::OK, p.details_page(&session, &messages)?))
    }

    /// A VAT ID's verdict as it is typed: paygo-vat's format and check digits, then (when
    /// well formed) the confirmation.
    async fn portal_vat_check(State(p): State<Arc<Self>>, headers: HeaderMap, Query(q): Query<VatCheck>) -> PageResult {
        p.session(&headers)?;
        let typed = q.id.replace([' ', '.', '-'], "").to_uppercase();
        let (valid, text) = match VatId::parse(&typed) {
            Err(e) => (false, format!("{typed}: {e}")),
            Ok(id) => {
                let proxy = Arc::clone(&p);
                // The confirmer may ask VIES over the network: off the async workers.
                let status = tokio::task::spawn_blocking(move || proxy.topups.confirm_vat_id(&id))
                    .await
                    .map_err(|e| PortalError::Internal(e.to_string()))?;
                match status {
                    VatIdStatus::Valid => (true, format!("{typed}: well formed and confirmed by VIES.")),
                    VatIdStatus::Invalid => (
                        false,
                        format!("{typed}: well formed, but VIES says it is not registered."),
                    ),
                    VatIdStatus::Unknown => (
                        true,
                        format!("{typed}: well formed; VIES did not answer now, it is asked again with each payment."),
                    ),
                }
            }
        };
        let mut response = axum::Json(serde_json::json!({"valid": valid, "text": text})).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(response)
    }

    async fn portal_payment_methods(State(p): State<Arc<Self>>, headers: HeaderMap) -> PageResult {
        let session = p.session(&headers)?;
        let body = html! {
            table {
                caption { "How you can pay for credits" }
                thead { tr { th scope="col" { "Method" } th scope="col" { "Accepted" } th scope="col" { "Notes" } } }
                tbody {
                    tr { th scope="row" { "Credit and debit cards" } td { "Yes" } td { "Visa, Mastercard, American Express. Used for auto top-ups too." } }
                    tr { th scope="row" { "PayPal" } td { "Yes" } td { "" } }
                    tr { th scope="row" { "Crypto" } td { "Yes" } td { "Paid in full before the credits are added." } }
                    tr { th scope="row" { "Prepaid cards" } td { "No" } td { "Refused: a prepaid card cannot be charged again for auto top-ups or disputes." } }
                    tr { th scope="row" { "Gift cards" } td { "No" } td { "Refused." } }
                }
            }
            p class="muted" { "Credits do not expire. Each payment is invoiced with the VAT of your country (or reverse charge with a valid EU VAT ID)." }
        };
        Ok(html_response(
            StatusCode::OK,
            p.page(&session, "/portal/payment-methods", "Payment methods", &body)?,
        ))
    }

    fn keys_page(
        &self,
        session: &Session,
        new_key: Option<(&str, &str)>,
        error: Option<&str>,
    ) -> Result<Markup, PortalError> {
        let csrf = self.csrf_token(session)?;
        let keys = self.directory.keys(session.account);
        let body = html! {
            @if let Some((id, secret)) = new_key {
                div class="notice ok" role="status" {
                    p { strong { "Your new key " (id) } ": copy it now, it is shown only once." }
                    code class="secret" data-testid="new-key" { (secret) }
                }
            }
            @if let Some(text) = error {
                p class="notice error" role="alert" { (text) }
            }
            table id="keys" {
                caption { "Active API keys" }
                thead { tr { th scope="col" { "Name" } th scope="col" { "Key" } th scope="col" { "Created" } th scope="col" { "Last used" } th scope="col" { span class="skip" { "Actions" } } } }
                tbody {
                    @for k in &keys {
                        tr {
                            th scope="row" { (k.name.clone().unwrap_or_else(|| "(no name)".to_owned())) }
                            td { code { "sk-paygo-…" (k.last4.clone().unwrap_or_else(|| "????".to_owned())) } " " span class="muted" { (k.id.0) } }
                            td { (k.created_ns.map_or_else(|| "—".to_owned(), time_text)) }
                            td { (k.last_used_ns.map_or_else(|| "not since this server started".to_owned(), time_text)) }
                            td {
                                form class="inline" method="post" action=(format!("/portal/keys/{}/revoke", k.id.0)) {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button class="danger" type="submit" aria-label=(format!("Revoke {}", k.id.0)) {
                                        "Revoke"
                                        @if k.id == session.key { " (signs you out)" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Create a key" }
            form method="post" action="/portal/keys" {
                input type="hidden" name="csrf" value=(csrf);
                label for="key-name" { "Name " span class="hint" { "(what it is for, such as \"production\")" } }
                input type="text" id="key-name" name="name" maxlength="100" required;
                p { button type="submit" { "Create key" } }
            }
        };
        self.page(session, "/portal/keys", "API keys", &body)
    }

    async fn portal_keys(State(p): State<Arc<Self>>, headers: HeaderMap) -> PageResult {
        let session = p.session(&headers)?;
        Ok(html_response(StatusCode::OK, p.keys_page(&session, None, None)?))
    }

    async fn portal_create_key(State(p): State<Arc<Self>>, headers: HeaderMap, body: Bytes) -> PageResult {
        let (session, fields) = p.posted(&headers, &body)?;
        let name = fields.get("name").map(|n| n.trim().to_owned()).unwrap_or_default();
        let options = KeyOptions {
            name: Some(name.as_str()),
            created_ns: Some(p.now_ns()),
        };
        match p.directory.create_key_with(session.account, options).await {
            Ok(key) => {
                let mut response = html_response(
                    StatusCode::OK,
                    p.keys_page(&session, Some((&key.id.0, &key.secret)), None)?,
                );
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                Ok(response)
            }
            Err(HttpError::InvalidField { expected, .. }) => Ok(html_response(
                StatusCode::BAD_REQUEST,
                p.keys_page(&session, None, Some(&format!("The name: expected {expected}.")))?,
            )),
            Err(e) => Err(e.into()),
        }
    }

    async fn portal_revoke_key(
        State(p): State<Arc<Self>>,
        headers: HeaderMap,
        Path(key_id): Path<String>,
        body: Bytes,
    ) -> PageResult {
        let (session, _) = p.posted(&headers, &body)?;
        let key = KeyId(key_id);
        // Only a key of the session's own account.
        if p.directory.key_account(&key) != Some(session.account) {
            return Err(PortalError::NotFound);
        }
        p.directory.revoke_key(&key).await?;
        if key == session.key {
            let mut response = redirect("/portal/sign-in");
            p.set_cookie(&mut response, &headers, SESSION_COOKIE, "", 0);
            return Ok(response);
        }
        Ok(html_response(StatusCode::OK, p.keys_page(&session, None, None)?))
    }
}

/// A document number as a file name: letters, digits and `-`, anything else `_`.
fn file_name(number: &str) -> String {
    number
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect()
}

fn sign_in_page(csrf: &str, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Sign in · Billing portal" }
                link rel="stylesheet" href="/portal/static/portal.css";
            }
            body {
                main class="signin" {
                    h1 { "Billing portal" }
                    p { "Sign in with an API key of your account to see your balance, usage and invoices." }
                    @if let Some(text) = error {
                        p class="notice error" role="alert" { (text) }
                    }
                    form method="post" action="/portal/sign-in" {
                        input type="hidden" name="csrf" value=(csrf);
                        label for="key" { "API key" }
                        input type="password" id="key" name="key" required autocomplete="off" placeholder="sk-paygo-…";
                        p { button type="submit" { "Sign in" } }
                    }
                    p class="muted" { "The key is checked and forgotten: the session cookie never contains it." }
                }
            }
        }
    }
}

fn method_code(method: PaymentMethod) -> &'static str {
    match method {
        PaymentMethod::PayPal => "paypal",
        PaymentMethod::Crypto => "crypto",
        _ => "card",
    }
}

fn method_text(method: PaymentMethod) -> &'static str {
    match method {
        PaymentMethod::PayPal => "PayPal account",
        PaymentMethod::Crypto => "crypto wallet",
        _ => "card",
    }
}

fn amount_text(
    amount: &TopUpAmount,
    usd: &impl Fn(Credits) -> Result<String, PortalError>,
) -> Result<String, PortalError> {
    Ok(match amount {
        TopUpAmount::Fixed(m) => money_text(m),
        TopUpAmount::TargetBalance(c) => format!("enough to bring it to {}", usd(*c)?),
    })
}

/// A positive USD amount in whole cents from a form field.
fn usd_field(fields: &HashMap<String, String>, name: &str, label: &str) -> Result<Option<Money>, String> {
    let text = fields
        .get(name)
        .map(|t| t.trim().trim_start_matches('$'))
        .unwrap_or_default();
    if text.is_empty() {
        return Ok(None);
    }
    let amount: Decimal = text
        .parse()
        .map_err(|_| format!("{label}: expected an amount in USD such as 20 or 12.50, got {text:?}"))?;
    if amount <= Decimal::ZERO || amount.normalize().scale() > 2 || amount > Decimal::from(100_000) {
        return Err(format!(
            "{label}: expected a positive amount in whole cents, at most $100,000, got {text:?}"
        ));
    }
    Ok(Some(Money::usd(amount)))
}

/// The rule the auto top-up form asks for, from the current rule (or the defaults).
fn rule_of<B, L, C, S>(
    fields: &HashMap<String, String>,
    current: Option<AutoTopUpRule>,
    proxy: &Proxy<B, L, C, S>,
) -> Result<AutoTopUpRule, String>
where
    B: BillingStore + 'static,
    L: AsyncStore<CustomerId> + 'static,
    C: Clock + 'static,
    S: SequenceStore + Send + Sync + 'static,
{
    let rate = proxy.gateway.prices().credit_rate();
    let credits_of = |m: &Money, label: &str| {
        rate.to_credits(m, paygo_credits::Rounding::Down)
            .map_err(|e| format!("{label}: {e}"))
    };
    let threshold = usd_field(fields, "threshold", "Threshold")?.ok_or("Threshold: expected an amount in USD")?;
    let amount = usd_field(fields, "amount", "Amount")?.ok_or("Amount: expected an amount in USD")?;
    let amount = match fields.get("kind").map(String::as_str) {
        Some("refill") => {
            if amount <= threshold {
                return Err("Refill to: expected more than the threshold".into());
            }
            TopUpAmount::TargetBalance(credits_of(&amount, "Refill to")?)
        }
        Some("fixed") | None => TopUpAmount::Fixed(amount),
        Some(other) => return Err(format!("Amount: expected fixed or refill, got {other:?}")),
    };
    let method = match fields.get("method").map(String::as_str) {
        Some("card") | None => PaymentMethod::Card(CardKind::Credit),
        Some("paypal") => PaymentMethod::PayPal,
        Some("crypto") => PaymentMethod::Crypto,
        Some(other) => {
            return Err(format!(
                "Payment method: expected card, paypal or crypto, got {other:?}"
            ));
        }
    };
    let base = current.unwrap_or(AutoTopUpRule {
        enabled: false,
        threshold: Credits::ZERO,
        amount,
        method,
        requests_per_window_max: 3,
        window_ms: 86_400_000,
        backoff_ms: 3_600_000,
        backoff_max_ms: 86_400_000,
        monthly_cap: None,
        disable_after_declines: Some(3),
        buyer_tax_id: None,
        purchase_order: None,
    });
    Ok(AutoTopUpRule {
        enabled: fields.get("enabled").is_some_and(|v| v == "on"),
        threshold: credits_of(&threshold, "Threshold")?,
        amount,
        method: match (base.method, method) {
            // A card kept as it was given (its kind), if the card is still the choice.
            (PaymentMethod::Card(kind), PaymentMethod::Card(_)) => PaymentMethod::Card(kind),
            (_, m) => m,
        },
        monthly_cap: usd_field(fields, "cap", "Monthly cap")?,
        ..base
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_are_decoded() {
        let f = form_fields(b"a=1+2&b=%3Cscript%3E&c=&d&csrf=ab%zz");
        assert_eq!(f["a"], "1 2");
        assert_eq!(f["b"], "<script>");
        assert_eq!(f["c"], "");
        assert_eq!(f["d"], "");
        assert_eq!(f["csrf"], "ab%zz");
    }

    #[test]
    fn amounts_are_shown_exactly() {
        assert_eq!(usd_text("10".parse().unwrap_or_default()), "$10.00");
        assert_eq!(usd_text("0.0000005".parse().unwrap_or_default()), "$0.0000005");
        assert_eq!(usd_text("-1.5".parse().unwrap_or_default()), "-$1.50");
        assert_eq!(credits_text(Credits::new(20_000_000)), "20,000,000");
        assert_eq!(credits_text(Credits::new(-1_234)), "-1,234");
        assert_eq!(credits_text(Credits::new(999)), "999");
    }

    #[test]
    fn a_forged_or_altered_session_is_refused() {
        let secret = PortalSecret::new([7; 32]);
        let payload = "3.key_0123456789abcdef.99.00ff";
        let good = mac(&secret, "session", payload).to_hex().to_string();
        assert!(mac_matches(&good, &mac(&secret, "session", payload)));
        assert!(!mac_matches(
            &good,
            &mac(&secret, "session", "4.key_0123456789abcdef.99.00ff")
        ));
        assert!(!mac_matches(
            &good,
            &mac(&PortalSecret::new([8; 32]), "session", payload)
        ));
        // A session's MAC is not its CSRF token.
        assert!(!mac_matches(&good, &mac(&secret, "csrf", payload)));
        assert!(!mac_matches("not hex", &mac(&secret, "session", payload)));
    }
}
