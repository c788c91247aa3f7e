//! Signing in and out: the signed session cookie, CSRF tokens, the sign-in form and
//! one-time sign-in links.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use maud::{DOCTYPE, Markup, html};
use paygo_billing::{BillingStore, CustomerId};
use paygo_invoice::SequenceStore;
use paygo_ratelimit::AsyncStore;
use paygo_time::Clock;

use super::{
    LINK_KEY, LINK_TTL_NS, PageResult, PortalError, PortalSecret, SESSION_COOKIE, SIGNIN_COOKIE, html_response,
    redirect,
};
use crate::accounts::KeyId;
use crate::error::HttpError;
use crate::proxy::Proxy;

/// A verified session.
#[derive(Debug, Clone)]
pub(super) struct Session {
    pub(super) account: CustomerId,
    pub(super) key: KeyId,
    pub(super) expires_ns: u64,
    pub(super) nonce: String,
    /// The signed part of the cookie (the CSRF token is derived from it).
    pub(super) payload: String,
}

/// 16 random bytes in hex.
pub(super) fn nonce() -> Result<String, HttpError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| HttpError::Random { reason: e.to_string() })?;
    let mut out = String::with_capacity(32);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    Ok(out)
}

pub(super) fn mac(secret: &PortalSecret, purpose: &str, payload: &str) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new_keyed(&secret.0);
    hasher.update(purpose.as_bytes());
    hasher.update(b"\0");
    hasher.update(payload.as_bytes());
    hasher.finalize()
}

/// Whether `given` (hex) is the MAC `expected`, compared in constant time.
pub(super) fn mac_matches(given: &str, expected: &blake3::Hash) -> bool {
    // blake3::Hash's equality is constant-time.
    blake3::Hash::from_hex(given).is_ok_and(|g| g == *expected)
}

pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
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
pub(super) fn form_fields(body: &[u8]) -> HashMap<String, String> {
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

pub(super) fn percent_decode(bytes: &[u8]) -> String {
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

pub(super) fn sign_in_page(csrf: &str, error: Option<&str>) -> Markup {
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

// axum handlers are async by their signature, whether or not a page awaits anything.
#[allow(clippy::unused_async)]
impl<B, L, C, S> Proxy<B, L, C, S>
where
    B: BillingStore + 'static,
    L: AsyncStore<CustomerId> + 'static,
    C: Clock + 'static,
    S: SequenceStore + Send + Sync + 'static,
{
    /// The request's session, verified: signed by this portal's secret, not expired, not
    /// signed out, its key still active on its account.
    pub(super) fn session(&self, headers: &HeaderMap) -> Result<Session, PortalError> {
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

    pub(super) fn csrf_token(&self, session: &Session) -> Result<String, PortalError> {
        Ok(mac(&self.portal_options()?.secret, "csrf", &session.payload)
            .to_hex()
            .to_string())
    }

    /// The session of a form post, with its fields, after checking its CSRF token.
    pub(super) fn posted(
        &self,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<(Session, HashMap<String, String>), PortalError> {
        let session = self.session(headers)?;
        let fields = form_fields(body);
        let expected = mac(&self.portal_options()?.secret, "csrf", &session.payload);
        if !fields.get("csrf").is_some_and(|t| mac_matches(t, &expected)) {
            return Err(PortalError::Forbidden);
        }
        Ok((session, fields))
    }

    pub(super) fn secure(&self, headers: &HeaderMap) -> bool {
        self.options.portal.as_ref().is_some_and(|p| p.secure_cookies)
            || headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("https"))
    }

    pub(super) fn set_cookie(
        &self,
        response: &mut Response,
        headers: &HeaderMap,
        name: &str,
        value: &str,
        max_age_s: u64,
    ) {
        let secure = if self.secure(headers) { "; Secure" } else { "" };
        let text = format!("{name}={value}; Path=/portal; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}");
        if let Ok(v) = HeaderValue::from_str(&text) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }

    pub(super) async fn portal_sign_in_form(State(p): State<Arc<Self>>, headers: HeaderMap) -> PageResult {
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

    pub(super) async fn portal_sign_in(State(p): State<Arc<Self>>, headers: HeaderMap, body: Bytes) -> PageResult {
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
    pub(super) fn verify_link(&self, token: &str) -> Result<(CustomerId, u64, String), PortalError> {
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
    pub(super) async fn portal_link_form(
        State(p): State<Arc<Self>>,
        headers: HeaderMap,
        Path(token): Path<String>,
    ) -> PageResult {
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

    pub(super) async fn portal_link_sign_in(
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

    pub(super) async fn portal_sign_out(State(p): State<Arc<Self>>, headers: HeaderMap, body: Bytes) -> PageResult {
        let (session, _) = p.posted(&headers, &body)?;
        p.directory
            .end_session(&session.nonce, session.expires_ns, p.now_ns())
            .await?;
        let mut response = redirect("/portal/sign-in");
        p.set_cookie(&mut response, &headers, SESSION_COOKIE, "", 0);
        Ok(response)
    }
}
