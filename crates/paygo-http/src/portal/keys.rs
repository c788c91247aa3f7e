//! The API keys page: the account's keys, a new key shown once, revoking.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use maud::{Markup, html};
use paygo_billing::{BillingStore, CustomerId};
use paygo_invoice::SequenceStore;
use paygo_ratelimit::AsyncStore;
use paygo_time::Clock;

use super::session::Session;
use super::text::time_text;
use super::{PageResult, PortalError, SESSION_COOKIE, html_response, redirect};
use crate::accounts::{KeyId, KeyOptions};
use crate::error::HttpError;
use crate::proxy::Proxy;

// axum handlers are async by their signature, whether or not a page awaits anything.
#[allow(clippy::unused_async)]
impl<B, L, C, S> Proxy<B, L, C, S>
where
    B: BillingStore + 'static,
    L: AsyncStore<CustomerId> + 'static,
    C: Clock + 'static,
    S: SequenceStore + Send + Sync + 'static,
{
    pub(super) fn keys_page(
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

    pub(super) async fn portal_keys(State(p): State<Arc<Self>>, headers: HeaderMap) -> PageResult {
        let session = p.session(&headers)?;
        Ok(html_response(StatusCode::OK, p.keys_page(&session, None, None)?))
    }

    pub(super) async fn portal_create_key(State(p): State<Arc<Self>>, headers: HeaderMap, body: Bytes) -> PageResult {
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

    pub(super) async fn portal_revoke_key(
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
