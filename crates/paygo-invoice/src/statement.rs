//! Usage statements: what an account's calls cost over a period, per model and per day.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, NaiveDate, Utc};
use paygo_credits::{Credits, Currency, Money};
use serde::{Deserialize, Serialize};

use crate::document::currency_code;
use crate::party::check_text;
use crate::render::{escape_html, group, page_foot, page_head};
use crate::{InvoiceError, TEXT_WIDTH};

/// The longest period of a statement, in days.
pub const STATEMENT_DAYS_MAX: i64 = 366;

/// One charged call, as the ledger recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Charge {
    /// The model called.
    pub model: String,
    /// When the call was charged.
    pub at: DateTime<Utc>,
    /// The credits charged, zero or more.
    pub credits: Credits,
    /// The same charge in money (the response's `usd_spent`), exact, zero or more.
    pub cost: Money,
}

/// What to total: whose charges, which days (UTC, both included), in which currency.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StatementRequest {
    /// The account, as printed on the statement.
    pub account: String,
    /// The first day of the period.
    pub first_day: NaiveDate,
    /// The last day of the period (included).
    pub last_day: NaiveDate,
    /// The currency of the charges' cost (USD for paygo).
    #[serde(with = "currency_code")]
    pub currency: Currency,
}

/// Calls, credits and cost, summed exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UsageTotals {
    /// The number of charges.
    pub calls: u64,
    /// The credits charged.
    pub credits: Credits,
    /// The cost, exact (not rounded to cents: the sum of the charges' exact costs).
    pub cost: Money,
}

impl UsageTotals {
    fn zero(currency: Currency) -> UsageTotals {
        UsageTotals {
            calls: 0,
            credits: Credits::ZERO,
            cost: Money::zero(currency),
        }
    }

    fn add(&mut self, charge: &Charge) -> Result<(), InvoiceError> {
        const OP: InvoiceError = InvoiceError::Overflow {
            operation: "statement totals",
        };
        self.calls = self.calls.checked_add(1).ok_or(OP)?;
        self.credits = self.credits.checked_add(charge.credits).ok_or(OP)?;
        self.cost = self.cost.checked_add(&charge.cost)?;
        Ok(())
    }
}

/// The totals of one model.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelUsage {
    /// The model.
    pub model: String,
    /// Its totals.
    pub totals: UsageTotals,
}

/// The totals of one day (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DayUsage {
    /// The day.
    pub day: NaiveDate,
    /// Its totals.
    pub totals: UsageTotals,
}

/// A usage statement: the totals of a period, per model and per day.
///
/// ```
/// use chrono::{NaiveDate, TimeZone, Utc};
/// use paygo_credits::{Credits, Currency, Money};
/// use paygo_invoice::{Charge, StatementRequest, Statement};
///
/// let charge = |model: &str, day: u32, credits: i64, usd: &str| -> Result<Charge, Box<dyn std::error::Error>> {
///     Ok(Charge {
///         model: model.into(),
///         at: Utc.with_ymd_and_hms(2026, 3, day, 12, 0, 0).single().ok_or("time")?,
///         credits: Credits::new(credits),
///         cost: Money::new(usd.parse()?, Currency::USD),
///     })
/// };
/// let request = StatementRequest {
///     account: "acct_42".into(),
///     first_day: NaiveDate::from_ymd_opt(2026, 3, 1).ok_or("date")?,
///     last_day: NaiveDate::from_ymd_opt(2026, 3, 31).ok_or("date")?,
///     currency: Currency::USD,
/// };
/// let charges = [charge("gpt-4o", 2, 1892, "0.000946")?, charge("gpt-4o", 3, 8000, "0.004")?];
/// let statement = Statement::build(&request, &charges)?;
/// assert_eq!(statement.total.credits, Credits::new(9892));
/// assert_eq!(statement.total.cost.to_string(), "0.004946 USD");
/// assert_eq!(statement.per_model[0].totals.calls, 2);
/// assert_eq!(statement.per_day.len(), 31);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Statement {
    /// What was asked for.
    pub request: StatementRequest,
    /// The totals of the period.
    pub total: UsageTotals,
    /// Per model, the most credits first (then by name).
    pub per_model: Vec<ModelUsage>,
    /// Per day, every day of the period in order (days without calls included).
    pub per_day: Vec<DayUsage>,
    /// Charges given that fall outside the period (not counted).
    pub outside_period: u64,
}

impl Statement {
    /// Totals the charges that fall in the period.
    ///
    /// # Errors
    ///
    /// [`InvoiceError::InvalidStatement`] for a period that ends before it starts or is
    /// longer than [`STATEMENT_DAYS_MAX`] days, a charge with negative credits or cost, or a
    /// cost in another currency; [`InvoiceError::InvalidText`] for a blank account or
    /// model name; [`InvoiceError::Overflow`].
    ///
    /// # Properties
    ///
    /// - the per-model totals and the per-day totals each sum exactly to the total;
    /// - `total.calls + outside_period` is the number of charges given.
    pub fn build(request: &StatementRequest, charges: &[Charge]) -> Result<Statement, InvoiceError> {
        check_text(&request.account, "account")?;
        let days = request.last_day.signed_duration_since(request.first_day).num_days() + 1;
        if !(1..=STATEMENT_DAYS_MAX).contains(&days) {
            return Err(InvoiceError::InvalidStatement {
                reason: format!(
                    "the period {} to {} has {days} days: expected 1 to {STATEMENT_DAYS_MAX}",
                    request.first_day, request.last_day
                ),
            });
        }
        let days = usize::try_from(days).map_err(|_| InvoiceError::Overflow {
            operation: "statement period",
        })?;
        let currency = request.currency;
        let mut total = UsageTotals::zero(currency);
        let mut per_model: BTreeMap<&str, UsageTotals> = BTreeMap::new();
        let mut per_day: BTreeMap<NaiveDate, UsageTotals> = request
            .first_day
            .iter_days()
            .take(days)
            .map(|d| (d, UsageTotals::zero(currency)))
            .collect();
        let mut outside_period = 0u64;
        for (i, charge) in charges.iter().enumerate() {
            check_text(&charge.model, &format!("model of charge {}", i + 1))?;
            if charge.credits.is_negative() || charge.cost.is_negative() {
                return Err(InvoiceError::InvalidStatement {
                    reason: format!(
                        "charge {} is negative: expected credits and cost of zero or more",
                        i + 1
                    ),
                });
            }
            if charge.cost.currency() != currency {
                return Err(InvoiceError::InvalidStatement {
                    reason: format!(
                        "charge {} costs {}: expected {}",
                        i + 1,
                        charge.cost.currency().code(),
                        currency.code()
                    ),
                });
            }
            let Some(day) = per_day.get_mut(&charge.at.date_naive()) else {
                outside_period += 1;
                continue;
            };
            day.add(charge)?;
            total.add(charge)?;
            per_model
                .entry(charge.model.as_str())
                .or_insert_with(|| UsageTotals::zero(currency))
                .add(charge)?;
        }
        let mut per_model: Vec<ModelUsage> = per_model
            .into_iter()
            .map(|(model, totals)| ModelUsage {
                model: model.to_owned(),
                totals,
            })
            .collect();
        per_model.sort_by(|a, b| b.totals.credits.cmp(&a.totals.credits).then(a.model.cmp(&b.model)));
        Ok(Statement {
            request: request.clone(),
            total,
            per_model,
            per_day: per_day
                .into_iter()
                .map(|(day, totals)| DayUsage { day, totals })
                .collect(),
            outside_period,
        })
    }

    /// The statement as pretty-printed JSON.
    ///
    /// # Errors
    ///
    /// [`InvoiceError::Json`] (not expected).
    pub fn to_json(&self) -> Result<String, InvoiceError> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// The statement as plain text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut String) -> std::fmt::Result {
        let r = &self.request;
        let code = r.currency.code();
        let dp = self.cost_dp();
        let rule = "-".repeat(TEXT_WIDTH);
        writeln!(out, "USAGE STATEMENT {}", r.account)?;
        writeln!(out, "{}", "=".repeat(TEXT_WIDTH))?;
        writeln!(
            out,
            "Period: {} to {} (UTC days, both included)",
            r.first_day, r.last_day
        )?;
        writeln!(
            out,
            "Total:  {} calls, {} credits, {} {code}",
            group(self.total.calls.into(), 0),
            credits(self.total.credits),
            cost(&self.total.cost, dp)
        )?;
        for (title, rows) in [
            (
                "Model",
                self.per_model
                    .iter()
                    .map(|m| (m.model.clone(), &m.totals))
                    .collect::<Vec<_>>(),
            ),
            (
                "Day",
                self.per_day
                    .iter()
                    .filter(|d| d.totals.calls > 0)
                    .map(|d| (d.day.to_string(), &d.totals))
                    .collect(),
            ),
        ] {
            writeln!(out)?;
            writeln!(
                out,
                "{title:<32}  {:>8}  {:>16}  {:>14}",
                "Calls",
                "Credits",
                format!("Cost {code}")
            )?;
            writeln!(out, "{rule}")?;
            for (name, totals) in rows {
                let name = if name.chars().count() > 32 {
                    format!("{}…", name.chars().take(31).collect::<String>())
                } else {
                    name
                };
                writeln!(
                    out,
                    "{name:<32}  {:>8}  {:>16}  {:>14}",
                    group(totals.calls.into(), 0),
                    credits(totals.credits),
                    cost(&totals.cost, dp)
                )?;
            }
        }
        if self.outside_period > 0 {
            writeln!(out)?;
            writeln!(
                out,
                "{} charges outside the period were not counted.",
                self.outside_period
            )?;
        }
        writeln!(out)?;
        writeln!(
            out,
            "Costs are exact (not rounded to the cent); days without calls are omitted."
        )?;
        Ok(())
    }

    /// The statement as one self-contained HTML page, with a bar per day.
    pub fn to_html(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_html(&mut out);
        out
    }

    fn write_html(&self, out: &mut String) -> std::fmt::Result {
        let e = escape_html;
        let r = &self.request;
        let code = r.currency.code();
        let dp = self.cost_dp();
        page_head(out, &format!("Usage statement {}", r.account))?;
        writeln!(
            out,
            "<header><div><h1>Usage statement</h1><p class=\"number\">{}</p></div>\
             <dl class=\"dates\"><dt>From</dt><dd>{}</dd><dt>To</dt><dd>{}</dd></dl></header>",
            e(&r.account),
            r.first_day,
            r.last_day
        )?;
        writeln!(
            out,
            "<table class=\"totals\" style=\"width:100%\"><tbody><tr><th>Calls</th><td class=\"num\">{}</td></tr>\
             <tr><th>Credits</th><td class=\"num\">{}</td></tr>\
             <tr class=\"grand\"><th>Cost</th><td class=\"num\">{} {code}</td></tr></tbody></table>",
            group(self.total.calls.into(), 0),
            credits(self.total.credits),
            e(&cost(&self.total.cost, dp))
        )?;
        writeln!(out, "<h2 style=\"margin-top:24px\">Per model</h2>")?;
        writeln!(
            out,
            "<table class=\"lines\"><thead><tr><th>Model</th><th class=\"num\">Calls</th><th class=\"num\">Credits</th>\
             <th class=\"num\">Cost ({code})</th></tr></thead><tbody>"
        )?;
        for m in &self.per_model {
            writeln!(
                out,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                e(&m.model),
                group(m.totals.calls.into(), 0),
                credits(m.totals.credits),
                e(&cost(&m.totals.cost, dp))
            )?;
        }
        writeln!(out, "</tbody></table>")?;
        writeln!(out, "<h2 style=\"margin-top:24px\">Per day</h2>")?;
        writeln!(
            out,
            "<table class=\"lines\"><thead><tr><th>Day</th><th style=\"width:40%\"></th><th class=\"num\">Calls</th>\
             <th class=\"num\">Credits</th><th class=\"num\">Cost ({code})</th></tr></thead><tbody>"
        )?;
        let max = self
            .per_day
            .iter()
            .map(|d| i128::from(d.totals.credits.get()))
            .max()
            .unwrap_or(0);
        for d in &self.per_day {
            // Integer percent of the busiest day: display only, no money involved.
            let percent = if max > 0 {
                i128::from(d.totals.credits.get()) * 100 / max
            } else {
                0
            };
            writeln!(
                out,
                "<tr><td>{}</td><td><div class=\"bar\" style=\"width:{percent}%\"></div></td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                d.day,
                group(d.totals.calls.into(), 0),
                credits(d.totals.credits),
                e(&cost(&d.totals.cost, dp))
            )?;
        }
        writeln!(out, "</tbody></table>")?;
        if self.outside_period > 0 {
            writeln!(
                out,
                "<p class=\"muted\">{} charges outside the period were not counted.</p>",
                self.outside_period
            )?;
        }
        writeln!(
            out,
            "<footer>Costs are exact sums of each call's cost, not rounded to the cent. Days are UTC.</footer>"
        )?;
        page_foot(out)
    }
}

fn credits(c: Credits) -> String {
    group(c.get().into(), 0)
}

impl Statement {
    /// The decimals every cost is shown with: the most any of them needs, at least the
    /// currency's minor unit, so that the columns line up.
    fn cost_dp(&self) -> u32 {
        let minor = u32::from(self.request.currency.exponent().unwrap_or(0));
        self.per_day
            .iter()
            .map(|d| &d.totals)
            .chain(self.per_model.iter().map(|m| &m.totals))
            .map(|t| t.cost.amount().normalize().scale())
            .chain([self.total.cost.amount().normalize().scale(), minor])
            .max()
            .unwrap_or(minor)
    }
}

fn cost(m: &Money, dp: u32) -> String {
    group(m.amount().normalize(), dp)
}
