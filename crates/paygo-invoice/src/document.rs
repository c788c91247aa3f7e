//! Drafts, issued documents and how their amounts are computed.

use chrono::NaiveDate;
use paygo_credits::{Currency, Decimal, FxRate, Money, Rounding};
use paygo_vat::{Country, CountryCode, Determination, Reporting, Treatment, VatId, VatRate};
use serde::{Deserialize, Serialize};

use crate::party::check_text;
use crate::{DocumentId, DocumentKind, DocumentNumber, InvoiceError, Party, Payment, SeriesName};

/// The most lines a document may have.
pub const LINES_MAX: usize = 1_000;

/// The most decimal places of a line quantity.
pub const QUANTITY_MAX_SCALE: u32 = 6;

/// Where VAT is rounded to the minor unit: the two conventions billing systems use.
///
/// - [`TaxRounding::PerInvoice`] (the default): the VAT of each rate is computed once, on
///   the sum of the (rounded) line nets at that rate, and rounded once. This is the
///   convention of the EU VAT Directive's invoice content (Article 226(8) and (10): the
///   taxable amount per rate and the VAT payable) and gives the VAT closest to the exact.
/// - [`TaxRounding::PerLine`]: the VAT of each line is rounded, and the VAT of a rate is
///   the sum of the rounded line VATs (common in retail systems and some marketplaces); it
///   can differ from per-invoice rounding by up to half a minor unit per line.
///
/// Either way every amount on the document is a whole number of minor units and the
/// totals are exact sums of the amounts shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaxRounding {
    /// One rounding per VAT rate, on the sum of the line nets.
    #[default]
    PerInvoice,
    /// One rounding per line; the VAT of a rate is the sum of the lines' VAT.
    PerLine,
}

/// How a document's amounts are rounded: where VAT is rounded, and which [`Rounding`]
/// every rounding to the minor unit uses (line nets, VAT, the national-currency VAT).
///
/// The default is [`TaxRounding::PerInvoice`] with [`Rounding::HalfUp`], the commercial
/// rounding (half a cent goes up, away from zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RoundingRules {
    /// Per line or per invoice.
    pub tax: TaxRounding,
    /// The rounding to the currency's minor unit.
    pub rounding: Rounding,
}

impl Default for RoundingRules {
    /// Per invoice, half up.
    fn default() -> RoundingRules {
        RoundingRules {
            tax: TaxRounding::PerInvoice,
            rounding: Rounding::HalfUp,
        }
    }
}

/// A line as the caller gives it: what, how many, at what unit price (exclusive of VAT).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LineInput {
    /// The nature of the service (Article 226(6)).
    pub description: String,
    /// The quantity: positive, at most [`QUANTITY_MAX_SCALE`] decimals.
    #[serde(with = "decimal_text")]
    pub quantity: Decimal,
    /// The unit price exclusive of VAT, zero or more (Article 226(8)); any precision, the
    /// line's net is rounded to the minor unit.
    pub unit_price: Money,
}

/// An invoice before it is issued: everything but the number and the issue date.
///
/// A draft is a plain value: change it freely, issue it with
/// [`crate::Invoicing::issue`], or discard it with [`Draft::discard`] (no number was
/// taken, so nothing is left behind). Issuing validates it all before a number is taken.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Draft {
    /// The caller's id: issuing the same id twice is refused.
    pub id: DocumentId,
    /// The series that numbers it (an invoice series).
    pub series: SeriesName,
    /// The seller as it is today (must have a VAT ID).
    pub seller: Party,
    /// The buyer as it is today.
    pub buyer: Party,
    /// The date of the supply (for a top-up, the day it was paid).
    pub supply_date: NaiveDate,
    /// The document's currency: every line is in it.
    #[serde(with = "currency_code")]
    pub currency: Currency,
    /// The lines.
    pub lines: Vec<LineInput>,
    /// The VAT determination of the supply (from [`paygo_vat::determine`]).
    pub vat: Determination,
    /// How the top-up was paid.
    pub payment: Payment,
    /// How amounts are rounded.
    pub rules: RoundingRules,
    /// The exchange rate from the document's currency to the national currency of the
    /// member state of supply, needed when those differ and VAT is charged (Article 230).
    /// Ignored when not needed.
    pub national_fx: Option<FxRate>,
    /// The buyer's purchase-order number or reference (EN 16931 BT-13 / BT-10), shown on
    /// the invoice when given (business buyers ask for it, on automatic top-ups too).
    pub buyer_reference: Option<String>,
    /// The seller's number for the buyer (their account id), shown on the invoice when
    /// given: what a billing portal finds a customer's documents by.
    pub customer_number: Option<String>,
}

impl Draft {
    /// Discards the draft. Only drafts can be discarded: an issued document is corrected
    /// by a credit note, never removed.
    pub fn discard(self) {}
}

/// A line of an issued document, with its amounts rounded to the minor unit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Line {
    description: String,
    #[serde(with = "decimal_text")]
    quantity: Decimal,
    unit_price: Money,
    vat_rate: VatRate,
    net: Money,
    vat: Option<Money>,
}

impl Line {
    /// The nature of the service.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The quantity (negative on a credit note: it reverses).
    pub const fn quantity(&self) -> Decimal {
        self.quantity
    }

    /// The unit price exclusive of VAT, as given.
    pub const fn unit_price(&self) -> &Money {
        &self.unit_price
    }

    /// The VAT rate applied.
    pub const fn vat_rate(&self) -> VatRate {
        self.vat_rate
    }

    /// `quantity × unit_price`, rounded to the minor unit.
    pub const fn net(&self) -> &Money {
        &self.net
    }

    /// The line's VAT, rounded: only with [`TaxRounding::PerLine`].
    pub const fn vat(&self) -> Option<&Money> {
        self.vat.as_ref()
    }
}

/// The VAT of one rate: the taxable amount and the VAT (Article 226(8) to (10)).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaxLine {
    rate: VatRate,
    taxable: Money,
    vat: Money,
}

impl TaxLine {
    /// The rate.
    pub const fn rate(&self) -> VatRate {
        self.rate
    }

    /// The taxable amount at this rate (the sum of its lines' nets).
    pub const fn taxable(&self) -> &Money {
        &self.taxable
    }

    /// The VAT at this rate.
    pub const fn vat(&self) -> &Money {
        &self.vat
    }
}

/// A document's totals: `gross = net + vat`, each the exact sum of the amounts shown.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Totals {
    /// The sum of the lines' nets.
    pub net: Money,
    /// The sum of the tax lines' VAT.
    pub vat: Money,
    /// `net + vat`: what was paid (or, on a credit note, what is given back, negative).
    pub gross: Money,
}

/// The VAT in the national currency of the member state of supply (Article 230).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NationalVat {
    /// The VAT total, converted and rounded to the national currency's minor unit.
    pub vat: Money,
    /// The rate used and its date.
    pub fx: FxRate,
}

/// How the supply was taxed, as the document states it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaxTreatment {
    /// The treatment from the determination.
    pub treatment: Treatment,
    /// Where the supply is taxed (ISO 3166).
    pub place_of_supply: CountryCode,
    /// How the seller reports the VAT.
    pub reporting: Reporting,
    /// The mention the invoice must carry ("Reverse charge", Article 226(11a)), if any.
    pub mention: Option<String>,
    /// The legal note for a supply without VAT (Article 226(11)), if any.
    pub note: Option<String>,
}

/// The note on a reverse-charged supply.
pub const REVERSE_CHARGE_NOTE: &str = "VAT to be accounted for by the customer (Article 196 of Directive 2006/112/EC).";

/// The note on a supply outside the EU.
pub const OUTSIDE_EU_NOTE: &str =
    "Not subject to EU VAT: the place of supply is outside the EU (Articles 44 and 58 of Directive 2006/112/EC).";

/// What a credit note corrects (Article 219: it refers specifically to the original).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Correction {
    /// The original invoice's number.
    pub original: DocumentNumber,
    /// The original invoice's issue date.
    pub original_issue_date: NaiveDate,
    /// Why the original is corrected.
    pub reason: String,
    /// For a VAT refund: the VAT ID the customer gave and the mention of the corrected
    /// supply.
    pub vat_refund: Option<VatRefundFacts>,
}

/// What a VAT-refund credit note states besides the original buyer snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VatRefundFacts {
    /// The customer's VAT ID, confirmed, given after the invoice.
    pub customer_vat_id: VatId,
    /// The mention for the corrected supply: "Reverse charge".
    pub mention: String,
}

/// An issued invoice or credit note. Immutable: it has no setters, and it is corrected
/// only by a credit note that names it.
///
/// Every amount is a whole number of minor units of its currency; the totals are the exact
/// sums of the lines and tax lines shown. On a credit note the quantities and amounts are
/// negative: an invoice plus its credit notes is what remains owed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Document {
    kind: DocumentKind,
    number: DocumentNumber,
    id: DocumentId,
    issue_date: NaiveDate,
    supply_date: NaiveDate,
    seller: Party,
    buyer: Party,
    #[serde(with = "currency_code")]
    currency: Currency,
    lines: Vec<Line>,
    taxes: Vec<TaxLine>,
    totals: Totals,
    tax: TaxTreatment,
    national_vat: Option<NationalVat>,
    payment: Payment,
    rules: RoundingRules,
    correction: Option<Correction>,
    /// Absent in documents issued before it existed, and when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    buyer_reference: Option<String>,
    /// Absent in documents issued before it existed, and when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    customer_number: Option<String>,
}

impl Document {
    /// Invoice or credit note.
    pub const fn kind(&self) -> DocumentKind {
        self.kind
    }

    /// The number (Article 226(2)).
    pub const fn number(&self) -> &DocumentNumber {
        &self.number
    }

    /// The caller's id of the draft it was issued from.
    pub const fn id(&self) -> &DocumentId {
        &self.id
    }

    /// The date of issue (Article 226(1)).
    pub const fn issue_date(&self) -> NaiveDate {
        self.issue_date
    }

    /// The date of the supply (Article 226(7)).
    pub const fn supply_date(&self) -> NaiveDate {
        self.supply_date
    }

    /// The seller as it was on the issue date.
    pub const fn seller(&self) -> &Party {
        &self.seller
    }

    /// The buyer as it was on the issue date (for a credit note: the original's buyer).
    pub const fn buyer(&self) -> &Party {
        &self.buyer
    }

    /// The currency of every amount but the national-currency VAT.
    pub const fn currency(&self) -> Currency {
        self.currency
    }

    /// The lines.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// The VAT per rate.
    pub fn taxes(&self) -> &[TaxLine] {
        &self.taxes
    }

    /// The totals.
    pub const fn totals(&self) -> &Totals {
        &self.totals
    }

    /// How the supply was taxed.
    pub const fn tax(&self) -> &TaxTreatment {
        &self.tax
    }

    /// The VAT in the national currency, when required (Article 230).
    pub const fn national_vat(&self) -> Option<&NationalVat> {
        self.national_vat.as_ref()
    }

    /// The payment (invoice) or refund (credit note).
    pub const fn payment(&self) -> &Payment {
        &self.payment
    }

    /// The buyer's purchase-order number or reference, if the draft gave one (a credit
    /// note carries its original's).
    pub fn buyer_reference(&self) -> Option<&str> {
        self.buyer_reference.as_deref()
    }

    /// The seller's number for the buyer, if the draft gave one (a credit note carries its
    /// original's).
    pub fn customer_number(&self) -> Option<&str> {
        self.customer_number.as_deref()
    }

    /// The rounding rules the amounts were computed with.
    pub const fn rules(&self) -> RoundingRules {
        self.rules
    }

    /// What a credit note corrects; `None` for an invoice.
    pub const fn correction(&self) -> Option<&Correction> {
        self.correction.as_ref()
    }

    /// The title: "Invoice" or "Credit note".
    pub const fn title(&self) -> &'static str {
        match self.kind {
            DocumentKind::Invoice => "Invoice",
            DocumentKind::CreditNote => "Credit note",
        }
    }

    pub(crate) fn set_number(&mut self, number: DocumentNumber) {
        self.number = number;
    }

    /// Checks what the type promises, for a document read back from a store: the totals
    /// are the sums of the lines and tax lines, every amount is in minor units.
    pub(crate) fn check(&self) -> Result<(), String> {
        let sum = |items: &mut dyn Iterator<Item = &Money>| Money::checked_sum(self.currency, items);
        let net = sum(&mut self.lines.iter().map(|l| &l.net)).map_err(|e| e.to_string())?;
        let vat = sum(&mut self.taxes.iter().map(|t| &t.vat)).map_err(|e| e.to_string())?;
        let gross = net.checked_add(&vat).map_err(|e| e.to_string())?;
        if net != self.totals.net || vat != self.totals.vat || gross != self.totals.gross {
            return Err("the totals are not the sums of the lines and taxes".into());
        }
        for amount in [&self.totals.net, &self.totals.vat, &self.totals.gross] {
            if !amount.is_rounded().map_err(|e| e.to_string())? {
                return Err(format!("{amount} is not a whole number of minor units"));
            }
        }
        Ok(())
    }
}

/// An amount rounded to its currency's minor unit and written with exactly that many
/// decimals (`100` becomes `100.00 USD`).
pub(crate) fn to_minor(money: &Money, rounding: Rounding) -> Result<Money, InvoiceError> {
    let rounded = money.round(rounding)?;
    Ok(Money::from_minor(rounded.to_minor()?, money.currency())?)
}

/// The priced lines, the taxes and the totals of a list of lines at one rate, all positive.
pub(crate) struct Priced {
    pub(crate) lines: Vec<Line>,
    pub(crate) taxes: Vec<TaxLine>,
    pub(crate) totals: Totals,
}

/// Prices lines at one VAT rate with the given rules.
pub(crate) fn price(
    currency: Currency,
    inputs: &[LineInput],
    rate: VatRate,
    rules: RoundingRules,
) -> Result<Priced, InvoiceError> {
    if currency.exponent().is_none() {
        return Err(InvoiceError::NoMinorUnit {
            currency: currency.code(),
        });
    }
    if inputs.is_empty() {
        return Err(InvoiceError::NoLines);
    }
    if inputs.len() > LINES_MAX {
        return Err(InvoiceError::TooManyLines {
            given: inputs.len(),
            max: LINES_MAX,
        });
    }
    let zero = Money::zero(currency);
    let mut lines = Vec::with_capacity(inputs.len());
    let mut taxable = zero;
    let mut line_vat_sum = zero;
    for (i, input) in inputs.iter().enumerate() {
        let n = i + 1;
        check_text(&input.description, &format!("line {n} description"))?;
        if input.quantity <= Decimal::ZERO || input.quantity.scale() > QUANTITY_MAX_SCALE {
            return Err(InvoiceError::InvalidQuantity {
                line: n,
                quantity: input.quantity.to_string(),
            });
        }
        if input.unit_price.currency() != currency {
            return Err(InvoiceError::CurrencyMismatch {
                line: n,
                expected: currency.code(),
                found: input.unit_price.currency().code(),
            });
        }
        if input.unit_price.is_negative() {
            return Err(InvoiceError::NegativePrice {
                line: n,
                price: input.unit_price.to_string(),
            });
        }
        let net = to_minor(&input.unit_price.checked_mul(input.quantity)?, rules.rounding)?;
        let vat = match rules.tax {
            TaxRounding::PerLine => {
                let vat = to_minor(&net.checked_mul(rate.fraction())?, rules.rounding)?;
                line_vat_sum = line_vat_sum.checked_add(&vat)?;
                Some(vat)
            }
            TaxRounding::PerInvoice => None,
        };
        taxable = taxable.checked_add(&net)?;
        lines.push(Line {
            description: input.description.clone(),
            quantity: input.quantity,
            unit_price: input.unit_price,
            vat_rate: rate,
            net,
            vat,
        });
    }
    let vat = match rules.tax {
        TaxRounding::PerLine => line_vat_sum,
        TaxRounding::PerInvoice => to_minor(&taxable.checked_mul(rate.fraction())?, rules.rounding)?,
    };
    let gross = taxable.checked_add(&vat)?;
    Ok(Priced {
        lines,
        taxes: vec![TaxLine { rate, taxable, vat }],
        totals: Totals {
            net: taxable,
            vat,
            gross,
        },
    })
}

impl Priced {
    /// The same amounts reversed, for a credit note.
    pub(crate) fn negate(self) -> Priced {
        Priced {
            lines: self
                .lines
                .into_iter()
                .map(|l| Line {
                    quantity: -l.quantity,
                    net: l.net.neg(),
                    vat: l.vat.map(|v| v.neg()),
                    ..l
                })
                .collect(),
            taxes: self
                .taxes
                .into_iter()
                .map(|t| TaxLine {
                    rate: t.rate,
                    taxable: t.taxable.neg(),
                    vat: t.vat.neg(),
                })
                .collect(),
            totals: Totals {
                net: self.totals.net.neg(),
                vat: self.totals.vat.neg(),
                gross: self.totals.gross.neg(),
            },
        }
    }
}

/// The legal note of a treatment without VAT.
fn note(treatment: Treatment) -> Option<String> {
    match treatment {
        Treatment::ReverseCharge => Some(REVERSE_CHARGE_NOTE.to_owned()),
        Treatment::OutsideEu => Some(OUTSIDE_EU_NOTE.to_owned()),
        Treatment::Consumer | Treatment::DomesticBusiness | Treatment::OtherJurisdiction => None,
    }
}

/// The VAT in the national currency, when Article 230 asks for it: the supply is taxed in
/// an EU member state whose currency is not the document's, and VAT is charged.
pub(crate) fn national_vat(
    currency: Currency,
    place: CountryCode,
    supply_date: NaiveDate,
    vat_total: &Money,
    fx: Option<&FxRate>,
    rounding: Rounding,
) -> Result<Option<NationalVat>, InvoiceError> {
    let Some(country) = Country::from_iso(place).filter(|c| c.is_eu()) else {
        return Ok(None);
    };
    let national = country.national_currency(supply_date);
    if national == currency || vat_total.is_zero() {
        return Ok(None);
    }
    let Some(fx) = fx else {
        return Err(InvoiceError::MissingFxRate {
            from: currency.code(),
            to: national.code(),
        });
    };
    if fx.from() != currency || fx.to() != national {
        return Err(InvoiceError::WrongFxRate {
            from: currency.code(),
            to: national.code(),
            found_from: fx.from().code(),
            found_to: fx.to().code(),
        });
    }
    // Converted as a positive amount and negated for a credit note, so that a full
    // reversal shows exactly the original's national amount whatever the rounding.
    let converted = fx.convert(&Money::new(vat_total.amount().abs(), currency), rounding)?;
    let vat = if vat_total.is_negative() {
        converted.neg()
    } else {
        converted
    };
    Ok(Some(NationalVat { vat, fx: *fx }))
}

/// Everything an issued invoice has, with a placeholder number; validated.
pub(crate) fn build_invoice(
    draft: &Draft,
    placeholder: DocumentNumber,
    issue_date: NaiveDate,
) -> Result<Document, InvoiceError> {
    draft.seller.validate("seller")?;
    draft.buyer.validate("buyer")?;
    if draft.seller.vat_id.is_none() {
        return Err(InvoiceError::MissingSellerVatId);
    }
    check_text(&draft.payment.reference, "payment reference")?;
    if let Some(reference) = &draft.buyer_reference {
        check_text(reference, "buyer reference")?;
    }
    if let Some(number) = &draft.customer_number {
        check_text(number, "customer number")?;
    }
    let vat = &draft.vat;
    if matches!(vat.treatment, Treatment::ReverseCharge | Treatment::DomesticBusiness) {
        let determined = vat.vat_id.map(|(id, _)| id);
        match (determined, draft.buyer.vat_id) {
            (_, None) => return Err(InvoiceError::MissingBuyerVatId),
            (Some(d), Some(s)) if d == s => {}
            (d, s) => {
                return Err(InvoiceError::VatIdMismatch {
                    determined: d.map_or_else(|| "none".to_owned(), |id| id.to_string()),
                    snapshot: s.map_or_else(|| "none".to_owned(), |id| id.to_string()),
                });
            }
        }
    }
    let priced = price(draft.currency, &draft.lines, vat.rate, draft.rules)?;
    let national_vat = national_vat(
        draft.currency,
        vat.place_of_supply,
        draft.supply_date,
        &priced.totals.vat,
        draft.national_fx.as_ref(),
        draft.rules.rounding,
    )?;
    Ok(Document {
        kind: DocumentKind::Invoice,
        number: placeholder,
        id: draft.id.clone(),
        issue_date,
        supply_date: draft.supply_date,
        seller: draft.seller.clone(),
        buyer: draft.buyer.clone(),
        currency: draft.currency,
        lines: priced.lines,
        taxes: priced.taxes,
        totals: priced.totals,
        tax: TaxTreatment {
            treatment: vat.treatment,
            place_of_supply: vat.place_of_supply,
            reporting: vat.reporting,
            mention: vat.mention.clone(),
            note: note(vat.treatment),
        },
        national_vat,
        payment: draft.payment.clone(),
        rules: draft.rules,
        correction: None,
        buyer_reference: draft.buyer_reference.clone(),
        customer_number: draft.customer_number.clone(),
    })
}

/// The parts of a credit note that differ from its original.
pub(crate) struct CreditParts {
    pub(crate) id: DocumentId,
    pub(crate) placeholder: DocumentNumber,
    pub(crate) issue_date: NaiveDate,
    pub(crate) priced: Priced,
    pub(crate) refund: Payment,
    pub(crate) correction: Correction,
    pub(crate) tax: TaxTreatment,
}

/// A credit note of `original`: the original's parties, currency, supply date, tax
/// treatment and exchange rate; the given (negative) amounts.
pub(crate) fn build_credit_note(original: &Document, parts: CreditParts) -> Result<Document, InvoiceError> {
    check_text(&parts.refund.reference, "refund reference")?;
    check_text(&parts.correction.reason, "credit note reason")?;
    let national_vat = national_vat(
        original.currency,
        original.tax.place_of_supply,
        original.supply_date,
        &parts.priced.totals.vat,
        original.national_vat.as_ref().map(|n| &n.fx),
        original.rules.rounding,
    )?;
    Ok(Document {
        kind: DocumentKind::CreditNote,
        number: parts.placeholder,
        id: parts.id,
        issue_date: parts.issue_date,
        supply_date: original.supply_date,
        seller: original.seller.clone(),
        buyer: original.buyer.clone(),
        currency: original.currency,
        lines: parts.priced.lines,
        taxes: parts.priced.taxes,
        totals: parts.priced.totals,
        tax: parts.tax,
        national_vat,
        payment: parts.refund,
        rules: original.rules,
        correction: Some(parts.correction),
        buyer_reference: original.buyer_reference.clone(),
        customer_number: original.customer_number.clone(),
    })
}

/// A VAT-only reversal: one line with no net and one tax line with the VAT reversed.
pub(crate) fn vat_reversal(
    description: String,
    rate: VatRate,
    vat_reversed: &Money,
    rounding: Rounding,
) -> Result<Priced, InvoiceError> {
    let currency = vat_reversed.currency();
    let zero = to_minor(&Money::zero(currency), rounding)?;
    let vat = to_minor(&vat_reversed.neg(), rounding)?;
    Ok(Priced {
        lines: vec![Line {
            description,
            quantity: Decimal::ONE,
            unit_price: zero,
            vat_rate: rate,
            net: zero,
            vat: Some(vat),
        }],
        taxes: vec![TaxLine {
            rate,
            taxable: zero,
            vat,
        }],
        totals: Totals {
            net: zero,
            vat,
            gross: vat,
        },
    })
}

/// Decimals as strings in JSON, parsed exactly.
pub(crate) mod decimal_text {
    use paygo_credits::{Decimal, decimal};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        decimal::parse_plain(&text).map_err(serde::de::Error::custom)
    }
}

/// Currencies as their ISO 4217 code in JSON.
pub(crate) mod currency_code {
    use paygo_credits::Currency;
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::trivially_copy_pass_by_ref)] // serde's `with` passes a reference
    pub(crate) fn serialize<S: Serializer>(value: &Currency, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(value.code())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Currency, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Currency::from_code(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown currency code {text:?}: expected ISO 4217")))
    }
}
