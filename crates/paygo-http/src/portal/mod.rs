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
//!
//! This module holds the routes, the errors and the page frame; the pages are in one
//! submodule per area (`session`, `usage_pages`, `invoices`, `settings`, `keys`), and `text`
//! writes amounts, times and plans.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use paygo_billing::{BillingStore, CustomerId};
use paygo_invoice::SequenceStore;
use paygo_ratelimit::AsyncStore;
use paygo_time::Clock;

use crate::error::HttpError;
use crate::proxy::Proxy;

mod invoices;
mod keys;
mod session;
mod settings;
mod text;
mod usage_pages;

use session::Session;

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
}

#[cfg(test)]
mod tests {
    use paygo_credits::Credits;

    use super::session::{form_fields, mac, mac_matches};
    use super::text::{credits_text, usd_text};
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
