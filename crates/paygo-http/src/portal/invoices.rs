//! The invoices page, one document, its download and a period's ZIP (only the
//! session's account's documents).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use chrono::NaiveDate;
use maud::{PreEscaped, html};
use paygo_billing::{BillingStore, CustomerId};
use paygo_invoice::{Document, DocumentKind, SequenceStore};
use paygo_ratelimit::AsyncStore;
use paygo_time::Clock;

use super::text::{date_of, file_name, money_text};
use super::usage_pages::UsageRange;
use super::{DOCUMENT_CSP, PageResult, PortalError, html_response};
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
    /// The documents (invoices and credit notes) of `account`, in the order they were
    /// issued.
    pub(super) fn documents_of(&self, account: CustomerId) -> Result<Vec<Document>, PortalError> {
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
    pub(super) fn document_of(&self, account: CustomerId, number: &str) -> Result<Document, PortalError> {
        self.documents_of(account)?
            .into_iter()
            .find(|d| d.number().to_string() == number)
            .ok_or(PortalError::NotFound)
    }

    pub(super) async fn portal_invoices(State(p): State<Arc<Self>>, headers: HeaderMap) -> PageResult {
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
    pub(super) async fn portal_invoices_zip(
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

    pub(super) async fn portal_invoice(
        State(p): State<Arc<Self>>,
        headers: HeaderMap,
        Path(number): Path<String>,
    ) -> PageResult {
        let session = p.session(&headers)?;
        let doc = p.document_of(session.account, &number)?;
        let mut response = html_response(StatusCode::OK, PreEscaped(doc.to_html()));
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DOCUMENT_CSP));
        Ok(response)
    }

    pub(super) async fn portal_invoice_download(
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
}
