//! The overview and the usage pages: spend by day, model and key, the chart and the CSV.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use chrono::{Datelike, NaiveDate};
use maud::{Markup, html};
use paygo_billing::{BillingStore, CustomerId};
use paygo_credits::Credits;
use paygo_invoice::SequenceStore;
use paygo_ratelimit::AsyncStore;
use paygo_time::Clock;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::text::{amount_text, count_text, credits_text, date_of, day_start_ns, method_text, plan_text, usd_text};
use super::{DAY_NS, PageResult, PortalError, USAGE_DAYS_MAX, html_response};
use crate::proxy::Proxy;
use crate::usage::UsageBucket;

/// The query of the usage page and its CSV.
#[derive(Debug, Deserialize)]
pub(super) struct UsageRange {
    pub(super) from: Option<String>,
    pub(super) to: Option<String>,
    pub(super) group: Option<String>,
}

/// A usage page's range and grouping, checked.
pub(super) struct Range {
    pub(super) from: NaiveDate,
    /// The last day, included.
    pub(super) to: NaiveDate,
    pub(super) group: Group,
}

/// What a usage page splits the spend by, besides the day.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Group {
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

pub(super) fn parse_range(query: &UsageRange, today: NaiveDate) -> Result<Range, PortalError> {
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
pub(super) struct Totals {
    pub(super) calls: u64,
    pub(super) prompt_tokens: u64,
    pub(super) completion_tokens: u64,
    pub(super) credits: i64,
    pub(super) usd: Decimal,
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
pub(super) fn top_of<K>(rows: &[(K, Totals)]) -> String {
    rows.iter()
        .max_by_key(|(_, t)| t.credits)
        .map_or_else(|| "$0.00".to_owned(), |(_, t)| usd_text(t.usd))
}

/// A bar chart of `bars` (label, value in credits, its USD text) as SVG, scaled to the
/// largest; the numbers are in the table next to it.
pub(super) fn bar_chart(title: &str, id: &str, bars: &[(String, i64, String)], top: &str) -> Markup {
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
    /// Spend (credits, USD) of `account` in `from_ns .. to_ns`.
    pub(super) async fn spend(&self, account: CustomerId, from_ns: u64, to_ns: u64) -> Result<Totals, PortalError> {
        let mut totals = Totals::default();
        if from_ns < to_ns {
            for b in self.usage.usage(account, from_ns, to_ns, DAY_NS, false).await? {
                totals.add(&b)?;
            }
        }
        Ok(totals)
    }

    pub(super) async fn portal_overview(State(p): State<Arc<Self>>, headers: HeaderMap) -> PageResult {
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

    pub(super) async fn usage_buckets(
        &self,
        account: CustomerId,
        range: &Range,
    ) -> Result<Vec<UsageBucket>, PortalError> {
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
    pub(super) fn group_label(&self, account: CustomerId, b: &UsageBucket) -> Option<String> {
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

    pub(super) async fn portal_usage(
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

    pub(super) async fn portal_usage_csv(
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
}
