//! Auto top-up, billing details with VAT refunds, the VAT ID check and payment methods.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use maud::{Markup, html};
use paygo_billing::{
    AutoTopUpRule, AutoTopUpStatus, BillingStore, CardKind, CustomerId, PaymentMethod, SwitchedOff, TopUpAmount,
};
use paygo_credits::{Credits, Money};
use paygo_gateway::VatRefund;
use paygo_invoice::{DocumentKind, SequenceStore};
use paygo_ratelimit::AsyncStore;
use paygo_time::Clock;
use paygo_vat::{VatId, VatIdStatus};
use rust_decimal::Decimal;
use serde::Deserialize;

use super::session::Session;
use super::text::{date_of, method_code, money_text, time_text};
use super::{PageResult, PortalError, html_response};
use crate::accounts::Details;
use crate::proxy::Proxy;

/// The query of `/portal/vat-check`.
#[derive(Debug, Deserialize)]
pub(super) struct VatCheck {
    pub(super) id: String,
}

/// A positive USD amount in whole cents from a form field.
pub(super) fn usd_field(fields: &HashMap<String, String>, name: &str, label: &str) -> Result<Option<Money>, String> {
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
pub(super) fn rule_of<B, L, C, S>(
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

// axum handlers are async by their signature, whether or not a page awaits anything.
#[allow(clippy::unused_async)]
impl<B, L, C, S> Proxy<B, L, C, S>
where
    B: BillingStore + 'static,
    L: AsyncStore<CustomerId> + 'static,
    C: Clock + 'static,
    S: SequenceStore + Send + Sync + 'static,
{
    /// The auto top-up as the billing store keeps it (the rule it applies, and the state of
    /// its guardrails).
    pub(super) async fn auto_status(&self, account: CustomerId) -> Result<AutoTopUpStatus, PortalError> {
        self.gateway
            .billing()
            .auto_top_up(account)
            .await
            .map_err(|e| PortalError::Internal(e.to_string()))
    }

    pub(super) fn auto_top_up_page(
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

    pub(super) async fn portal_auto_top_up(State(p): State<Arc<Self>>, headers: HeaderMap) -> PageResult {
        let session = p.session(&headers)?;
        let status = p.auto_status(session.account).await?;
        Ok(html_response(
            StatusCode::OK,
            p.auto_top_up_page(&session, &status, None)?,
        ))
    }

    pub(super) async fn portal_save_auto_top_up(
        State(p): State<Arc<Self>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> PageResult {
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

    pub(super) fn details_page(&self, session: &Session, messages: &[(&str, String)]) -> Result<Markup, PortalError> {
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
    pub(super) fn refundable(&self, account: CustomerId) -> Result<Vec<String>, PortalError> {
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
    pub(super) fn refund_all(&self, account: CustomerId) -> Result<Vec<(&'static str, String)>, PortalError> {
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

    pub(super) async fn portal_vat_refund(State(p): State<Arc<Self>>, headers: HeaderMap, body: Bytes) -> PageResult {
        let (session, _) = p.posted(&headers, &body)?;
        let outcomes = p.refund_all(session.account)?;
        let messages: Vec<(&str, String)> = outcomes.into_iter().collect();
        Ok(html_response(StatusCode::OK, p.details_page(&session, &messages)?))
    }

    pub(super) async fn portal_details(State(p): State<Arc<Self>>, headers: HeaderMap) -> PageResult {
        let session = p.session(&headers)?;
        Ok(html_response(StatusCode::OK, p.details_page(&session, &[])?))
    }

    pub(super) async fn portal_save_details(State(p): State<Arc<Self>>, headers: HeaderMap, body: Bytes) -> PageResult {
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
    pub(super) async fn portal_vat_check(
        State(p): State<Arc<Self>>,
        headers: HeaderMap,
        Query(q): Query<VatCheck>,
    ) -> PageResult {
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

    pub(super) async fn portal_payment_methods(State(p): State<Arc<Self>>, headers: HeaderMap) -> PageResult {
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
}
