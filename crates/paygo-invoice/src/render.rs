//! Documents as JSON, plain text and one self-contained HTML page.

use std::fmt::Write;

use paygo_credits::{Decimal, Money};
use paygo_vat::{CountryCode, Treatment};

use crate::{Document, DocumentKind, InvoiceError, Party};

/// The width of the plain-text rendering, in characters.
pub const TEXT_WIDTH: usize = 78;

/// Escapes text for HTML (element content and attribute values).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A decimal with thousands separators and at least `min_dp` decimals: `1,234.50`.
pub(crate) fn group(value: Decimal, min_dp: u32) -> String {
    let text = value.to_string();
    let (sign, digits) = text.strip_prefix('-').map_or(("", text.as_str()), |d| ("-", d));
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let mut grouped = String::with_capacity(int.len() + int.len() / 3);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let mut frac = frac.to_owned();
    while frac.len() < min_dp as usize {
        frac.push('0');
    }
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

/// An amount with its minor-unit decimals and separators: `1,234.50`.
pub(crate) fn amount(money: &Money) -> String {
    group(money.amount(), u32::from(money.currency().exponent().unwrap_or(0)))
}

/// An amount and its currency code: `1,234.50 USD`.
pub(crate) fn money(money: &Money) -> String {
    format!("{} {}", amount(money), money.currency().code())
}

/// A unit price: as precise as given, at least the minor unit's decimals.
fn price(money: &Money) -> String {
    group(
        money.amount().normalize(),
        u32::from(money.currency().exponent().unwrap_or(0)),
    )
}

/// A country's English name, or its code when the table has none.
pub fn country_name(code: CountryCode) -> &'static str {
    const NAMES: [(&str, &str); 36] = [
        ("AT", "Austria"),
        ("BE", "Belgium"),
        ("BG", "Bulgaria"),
        ("CY", "Cyprus"),
        ("CZ", "Czechia"),
        ("DE", "Germany"),
        ("DK", "Denmark"),
        ("EE", "Estonia"),
        ("GR", "Greece"),
        ("ES", "Spain"),
        ("FI", "Finland"),
        ("FR", "France"),
        ("HR", "Croatia"),
        ("HU", "Hungary"),
        ("IE", "Ireland"),
        ("IT", "Italy"),
        ("LT", "Lithuania"),
        ("LU", "Luxembourg"),
        ("LV", "Latvia"),
        ("MT", "Malta"),
        ("NL", "Netherlands"),
        ("PL", "Poland"),
        ("PT", "Portugal"),
        ("RO", "Romania"),
        ("SE", "Sweden"),
        ("SI", "Slovenia"),
        ("SK", "Slovakia"),
        ("GB", "United Kingdom"),
        ("CH", "Switzerland"),
        ("NO", "Norway"),
        ("US", "United States"),
        ("CA", "Canada"),
        ("AU", "Australia"),
        ("JP", "Japan"),
        ("IN", "India"),
        ("BR", "Brazil"),
    ];
    NAMES
        .iter()
        .find(|(c, _)| *c == code.as_str())
        .map_or("", |(_, name)| *name)
}

fn country_line(code: CountryCode) -> String {
    match country_name(code) {
        "" => code.to_string(),
        name => format!("{name} ({code})"),
    }
}

fn rounding_line(doc: &Document) -> String {
    let rules = doc.rules();
    let rounding = match rules.rounding {
        paygo_credits::Rounding::Down => "down",
        paygo_credits::Rounding::Up => "up",
        paygo_credits::Rounding::TowardZero => "toward zero",
        paygo_credits::Rounding::AwayFromZero => "away from zero",
        paygo_credits::Rounding::HalfEven => "half to even",
        paygo_credits::Rounding::HalfUp => "half up",
        paygo_credits::Rounding::HalfDown => "half down",
    };
    let tax = match rules.tax {
        crate::TaxRounding::PerInvoice => "per VAT rate on the invoice total",
        crate::TaxRounding::PerLine => "per line",
    };
    format!(
        "Amounts are rounded to the {} minor unit ({rounding}); VAT is rounded {tax}.",
        doc.currency().code()
    )
}

fn payment_line(doc: &Document) -> String {
    let p = doc.payment();
    let gross = doc.totals().gross;
    match (doc.kind(), p.paid_on) {
        (DocumentKind::Invoice, Some(day)) => format!(
            "Paid {} by {} on {day}, reference {}.",
            money(&gross),
            p.method,
            p.reference
        ),
        (DocumentKind::Invoice, None) => format!("To be paid by {}, reference {}.", p.method, p.reference),
        (DocumentKind::CreditNote, Some(day)) => format!(
            "Refunded {} by {} on {day}, reference {}.",
            money(&gross.neg()),
            p.method,
            p.reference
        ),
        (DocumentKind::CreditNote, None) => format!(
            "To be refunded: {} by {}, reference {}.",
            money(&gross.neg()),
            p.method,
            p.reference
        ),
    }
}

fn national_line(doc: &Document) -> Option<String> {
    doc.national_vat().map(|n| {
        format!(
            "VAT in {} (Article 230 of Directive 2006/112/EC): {}, at {} {} per {}, rate of {}.",
            n.vat.currency().code(),
            money(&n.vat),
            n.fx.rate(),
            n.fx.to().code(),
            n.fx.from().code(),
            n.fx.date()
        )
    })
}

fn place_line(doc: &Document) -> String {
    let place = country_line(doc.tax().place_of_supply);
    match doc.tax().treatment {
        Treatment::Consumer | Treatment::DomesticBusiness | Treatment::OtherJurisdiction => {
            format!("Place of supply: {place}.")
        }
        Treatment::ReverseCharge => format!("Place of supply: {place}, where the customer accounts for the VAT."),
        Treatment::OutsideEu => format!("Place of supply: {place}."),
    }
}

/// The notes under the totals, in order: mention, legal note, correction, national VAT,
/// payment, the buyer's reference, the customer number, place of supply, rounding.
fn notes(doc: &Document) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(note) = &doc.tax().note {
        notes.push(note.clone());
    }
    notes.extend(national_line(doc));
    notes.push(payment_line(doc));
    if let Some(reference) = doc.buyer_reference() {
        notes.push(format!("Your reference: {reference}."));
    }
    if let Some(number) = doc.customer_number() {
        notes.push(format!("Customer number: {number}."));
    }
    notes.push(place_line(doc));
    notes.push(rounding_line(doc));
    notes
}

fn party_lines(party: &Party) -> Vec<String> {
    let mut lines = vec![party.name.clone()];
    lines.extend(party.address.iter().cloned());
    lines.push(country_line(party.country));
    lines
}

/// Wraps text at `width` characters, on spaces where it can.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        let mut word = word.to_owned();
        while word.chars().count() > width {
            if !current.is_empty() {
                lines.push(std::mem::take(&mut current));
            }
            let head: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            lines.push(head);
        }
        if current.is_empty() {
            current = word;
        } else if current.chars().count() + 1 + word.chars().count() <= width {
            current.push(' ');
            current.push_str(&word);
        } else {
            lines.push(std::mem::replace(&mut current, word));
        }
    }
    if !current.is_empty() || lines.is_empty() {
        lines.push(current);
    }
    lines
}

fn quantity(q: Decimal) -> String {
    group(q.normalize(), 0)
}

impl Document {
    /// The document as pretty-printed JSON: every amount a string, nothing lost.
    ///
    /// # Errors
    ///
    /// [`InvoiceError::Json`] (not expected: every field serializes).
    pub fn to_json(&self) -> Result<String, InvoiceError> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// The document as plain text, [`TEXT_WIDTH`] characters wide: every field of Article
    /// 226, the totals, the mentions, and for a credit note the invoice it corrects.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut String) -> std::fmt::Result {
        let rule = "-".repeat(TEXT_WIDTH);
        writeln!(out, "{} {}", self.title().to_uppercase(), self.number())?;
        writeln!(out, "{}", "=".repeat(TEXT_WIDTH))?;
        writeln!(out, "Issue date:       {}", self.issue_date())?;
        writeln!(out, "Date of supply:   {}", self.supply_date())?;
        if let Some(c) = self.correction() {
            writeln!(
                out,
                "Corrects:         invoice {} of {} (Art. 219)",
                c.original, c.original_issue_date
            )?;
        }
        for (title, party) in [("Seller", self.seller()), ("Buyer", self.buyer())] {
            writeln!(out)?;
            writeln!(out, "{title}")?;
            for line in party_lines(party) {
                writeln!(out, "  {line}")?;
            }
            if let Some(id) = party.vat_id {
                writeln!(out, "  VAT ID: {id}")?;
            }
            if title == "Buyer"
                && let Some(refund) = self.correction().and_then(|c| c.vat_refund.as_ref())
            {
                writeln!(
                    out,
                    "  VAT ID (given after the invoice, confirmed): {}",
                    refund.customer_vat_id
                )?;
            }
        }
        if let Some(c) = self.correction() {
            writeln!(out)?;
            for (i, line) in wrap(&format!("Reason: {}", c.reason), TEXT_WIDTH).iter().enumerate() {
                writeln!(out, "{}{line}", if i == 0 { "" } else { "  " })?;
            }
        }
        writeln!(out)?;
        self.write_text_lines(out, &rule)?;
        let totals = self.totals();
        writeln!(out, "{:<58}{:>20}", "Total excluding VAT", money(&totals.net))?;
        writeln!(out, "{:<58}{:>20}", "Total VAT", money(&totals.vat))?;
        let label = match self.kind() {
            DocumentKind::Invoice => "TOTAL",
            DocumentKind::CreditNote => "TOTAL CREDITED",
        };
        writeln!(out, "{label:<58}{:>20}", money(&totals.gross))?;
        if let Some(mention) = &self.tax().mention {
            writeln!(out)?;
            writeln!(out, "*** {mention} ***")?;
        }
        writeln!(out)?;
        for note in notes(self) {
            for line in wrap(&note, TEXT_WIDTH) {
                writeln!(out, "{line}")?;
            }
        }
        Ok(())
    }

    /// The lines and the VAT per rate, as a table.
    fn write_text_lines(&self, out: &mut String, rule: &str) -> std::fmt::Result {
        let code = self.currency().code();
        writeln!(
            out,
            "{:<32}  {:>8}  {:>12}  {:>6}  {:>12}",
            "Description",
            "Quantity",
            "Unit price",
            "VAT",
            format!("Amount {code}")
        )?;
        writeln!(out, "{rule}")?;
        for line in self.lines() {
            let wrapped = wrap(line.description(), 32);
            for (i, part) in wrapped.iter().enumerate() {
                if i + 1 < wrapped.len() {
                    writeln!(out, "{part}")?;
                } else {
                    writeln!(
                        out,
                        "{part:<32}  {:>8}  {:>12}  {:>6}  {:>12}",
                        quantity(line.quantity()),
                        price(line.unit_price()),
                        line.vat_rate().to_string(),
                        amount(line.net())
                    )?;
                }
            }
            if let Some(vat) = line.vat() {
                writeln!(
                    out,
                    "{:<32}  {:>8}  {:>12}  {:>6}  {:>12}",
                    "  VAT of this line",
                    "",
                    "",
                    "",
                    amount(vat)
                )?;
            }
        }
        writeln!(out, "{rule}")?;
        for tax in self.taxes() {
            let label = format!("VAT {} on {}", tax.rate(), money(tax.taxable()));
            writeln!(out, "{label:<58}{:>20}", money(tax.vat()))?;
        }
        Ok(())
    }

    /// The document as one self-contained HTML page (inline CSS, no scripts, no external
    /// resources), for a billing portal and for printing. All text is escaped.
    pub fn to_html(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_html(&mut out);
        out
    }

    fn write_html(&self, out: &mut String) -> std::fmt::Result {
        let e = escape_html;
        let title = format!("{} {}", self.title(), self.number());
        page_head(out, &title)?;
        writeln!(out, "<header>")?;
        writeln!(
            out,
            "<div><h1>{}</h1><p class=\"number\">{}</p></div>",
            self.title(),
            e(&self.number().to_string())
        )?;
        writeln!(out, "<dl class=\"dates\">")?;
        writeln!(out, "<dt>Issue date</dt><dd>{}</dd>", self.issue_date())?;
        writeln!(out, "<dt>Date of supply</dt><dd>{}</dd>", self.supply_date())?;
        if let Some(c) = self.correction() {
            writeln!(
                out,
                "<dt>Corrects invoice</dt><dd>{} of {}</dd>",
                e(&c.original.to_string()),
                c.original_issue_date
            )?;
        }
        writeln!(out, "</dl>\n</header>")?;
        writeln!(out, "<section class=\"parties\">")?;
        for (role, party) in [("Seller", self.seller()), ("Buyer", self.buyer())] {
            writeln!(out, "<div class=\"party\"><h2>{role}</h2>")?;
            let lines: Vec<String> = party_lines(party).iter().map(|l| e(l)).collect();
            writeln!(out, "<p><strong>{}</strong>", lines.first().map_or("", String::as_str))?;
            for line in lines.iter().skip(1) {
                writeln!(out, "<br>{line}")?;
            }
            writeln!(out, "</p>")?;
            if let Some(id) = party.vat_id {
                writeln!(out, "<p class=\"vatid\">VAT ID {}</p>", e(id.as_str()))?;
            }
            if role == "Buyer"
                && let Some(refund) = self.correction().and_then(|c| c.vat_refund.as_ref())
            {
                writeln!(
                    out,
                    "<p class=\"vatid\">VAT ID {} <span class=\"muted\">(given after the invoice, confirmed)</span></p>",
                    e(refund.customer_vat_id.as_str())
                )?;
            }
            writeln!(out, "</div>")?;
        }
        writeln!(out, "</section>")?;
        if let Some(c) = self.correction() {
            writeln!(
                out,
                "<section class=\"correction\"><p>This credit note corrects invoice <strong>{}</strong> of {} \
                 (Article 219 of Directive 2006/112/EC).</p><p>{}</p></section>",
                e(&c.original.to_string()),
                c.original_issue_date,
                e(&c.reason)
            )?;
        }
        if let Some(mention) = &self.tax().mention {
            writeln!(out, "<p class=\"mention\">{}</p>", e(mention))?;
        }
        self.write_html_amounts(out)?;
        writeln!(out, "<section class=\"notes\">")?;
        for note in notes(self) {
            writeln!(out, "<p>{}</p>", e(&note))?;
        }
        writeln!(out, "</section>")?;
        writeln!(
            out,
            "<footer>{} &middot; VAT ID {} &middot; {} {}</footer>",
            e(&self.seller().name),
            e(&self.seller().vat_id.map(|id| id.to_string()).unwrap_or_default()),
            self.title(),
            e(&self.number().to_string())
        )?;
        page_foot(out)
    }

    /// The lines, the VAT per rate and the totals.
    fn write_html_amounts(&self, out: &mut String) -> std::fmt::Result {
        let e = escape_html;
        let code = self.currency().code();
        writeln!(out, "<table class=\"lines\">")?;
        writeln!(
            out,
            "<thead><tr><th>Description</th><th class=\"num\">Quantity</th><th class=\"num\">Unit price</th>\
             <th class=\"num\">VAT rate</th><th class=\"num\">Amount ({code})</th></tr></thead>\n<tbody>"
        )?;
        for line in self.lines() {
            write!(out, "<tr><td>{}", e(line.description()))?;
            if let Some(vat) = line.vat() {
                write!(out, "<div class=\"muted\">VAT of this line: {}</div>", e(&money(vat)))?;
            }
            writeln!(
                out,
                "</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                e(&quantity(line.quantity())),
                e(&price(line.unit_price())),
                e(&line.vat_rate().to_string()),
                e(&amount(line.net()))
            )?;
        }
        writeln!(out, "</tbody>\n</table>")?;
        writeln!(out, "<div class=\"summary\">")?;
        writeln!(
            out,
            "<table class=\"taxes\"><thead><tr><th>VAT rate</th><th class=\"num\">Taxable amount</th>\
             <th class=\"num\">VAT</th></tr></thead><tbody>"
        )?;
        for tax in self.taxes() {
            writeln!(
                out,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                e(&tax.rate().to_string()),
                e(&money(tax.taxable())),
                e(&money(tax.vat()))
            )?;
        }
        writeln!(out, "</tbody></table>")?;
        let totals = self.totals();
        let label = match self.kind() {
            DocumentKind::Invoice => "Total",
            DocumentKind::CreditNote => "Total credited",
        };
        writeln!(out, "<table class=\"totals\"><tbody>")?;
        writeln!(
            out,
            "<tr><th>Total excluding VAT</th><td class=\"num\">{}</td></tr>",
            e(&money(&totals.net))
        )?;
        writeln!(
            out,
            "<tr><th>Total VAT</th><td class=\"num\">{}</td></tr>",
            e(&money(&totals.vat))
        )?;
        writeln!(
            out,
            "<tr class=\"grand\"><th>{label}</th><td class=\"num\">{}</td></tr>",
            e(&money(&totals.gross))
        )?;
        if let Some(n) = self.national_vat() {
            writeln!(
                out,
                "<tr class=\"national\"><th>of which VAT in {}</th><td class=\"num\">{}</td></tr>",
                n.vat.currency().code(),
                e(&money(&n.vat))
            )?;
        }
        writeln!(out, "</tbody></table>\n</div>")
    }
}

/// The shared style of every page: readable on screen, clean on A4 paper.
pub(crate) const STYLE: &str = "
*{box-sizing:border-box}
body{margin:0;background:#eef0f3;color:#1d2433;font:14px/1.45 -apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif}
main{max-width:820px;margin:24px auto;background:#fff;padding:40px 48px;border-radius:6px;box-shadow:0 1px 4px rgba(0,0,0,.12)}
header{display:flex;justify-content:space-between;align-items:flex-start;border-bottom:3px solid #1d2433;padding-bottom:16px;margin-bottom:24px}
h1{margin:0;font-size:28px;letter-spacing:.5px}
h2{margin:0 0 6px;font-size:12px;text-transform:uppercase;letter-spacing:1px;color:#5b6475}
.number{margin:4px 0 0;font-size:16px;font-weight:600;font-family:ui-monospace,Menlo,Consolas,monospace}
dl.dates{display:grid;grid-template-columns:auto auto;gap:2px 16px;margin:0;text-align:right}
dl.dates dt{color:#5b6475}
dl.dates dd{margin:0;font-weight:600}
.parties{display:flex;gap:32px;margin-bottom:20px}
.party{flex:1;background:#f7f8fa;border:1px solid #e1e4ea;border-radius:4px;padding:12px 16px}
.party p{margin:0}
.party .vatid{margin-top:6px;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px}
.party .vatid .muted{font-family:inherit}
.correction{border-left:4px solid #b7791f;background:#fffaf0;padding:8px 14px;margin-bottom:16px}
.correction p{margin:4px 0}
.mention{display:inline-block;border:2px solid #1d2433;padding:4px 12px;font-weight:700;font-size:15px;margin:0 0 16px}
table{border-collapse:collapse;width:100%}
th{text-align:left;font-weight:600}
.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
table.lines{margin-bottom:16px}
table.lines th{border-bottom:2px solid #1d2433;padding:6px 8px;font-size:12px;text-transform:uppercase;letter-spacing:.5px;color:#5b6475}
table.lines td{border-bottom:1px solid #e1e4ea;padding:8px;vertical-align:top}
.muted{color:#5b6475;font-size:12px}
.summary{display:flex;justify-content:space-between;gap:32px;align-items:flex-start;margin-bottom:20px}
table.taxes{width:48%}
table.taxes th,table.taxes td{padding:4px 8px;border-bottom:1px solid #e1e4ea;font-size:13px}
table.taxes th{color:#5b6475;font-size:12px}
table.totals{width:44%}
table.totals th,table.totals td{padding:4px 8px}
table.totals tr.national th,table.totals tr.national td{color:#5b6475;font-size:13px;font-weight:400}
table.totals tr.grand th,table.totals tr.grand td{border-top:2px solid #1d2433;font-size:17px;font-weight:700;padding-top:8px}
.notes{border-top:1px solid #e1e4ea;padding-top:12px;font-size:13px;color:#333b4d}
.notes p{margin:0 0 6px}
footer{margin-top:24px;font-size:11px;color:#7a8293;text-align:center}
.bar{background:#4a6fa5;height:10px;border-radius:2px;min-width:1px}
@media print{body{background:#fff}main{margin:0;max-width:none;box-shadow:none;border-radius:0;padding:0}@page{size:A4;margin:16mm}tr{break-inside:avoid}}
";

pub(crate) fn page_head(out: &mut String, title: &str) -> std::fmt::Result {
    writeln!(out, "<!DOCTYPE html>")?;
    writeln!(out, "<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">")?;
    writeln!(
        out,
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    )?;
    writeln!(out, "<title>{}</title>", escape_html(title))?;
    writeln!(out, "<style>{STYLE}</style>\n</head>\n<body>\n<main>")
}

pub(crate) fn page_foot(out: &mut String) -> std::fmt::Result {
    writeln!(out, "</main>\n</body>\n</html>")
}
