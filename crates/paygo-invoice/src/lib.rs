//! Invoices for paygo, the billing libraries of a pay-as-you-go AI model API: gapless
//! numbered invoices and credit notes with EU VAT, the credit note of a VAT refund, and
//! usage statements, rendered as JSON, plain text and a self-contained HTML page.
//!
//! ```
//! use chrono::NaiveDate;
//! use paygo_credits::{Currency, FxRate, Money};
//! use paygo_invoice::*;
//! use paygo_vat::*;
//!
//! let invoicing = Invoicing::open(
//!     MemorySequenceStore::new(),
//!     vec![Series::new("INV-2026", DocumentKind::Invoice, 6)?, Series::new("CN-2026", DocumentKind::CreditNote, 6)?],
//! )?;
//! let day = NaiveDate::from_ymd_opt(2026, 3, 2).ok_or("date")?;
//! let pl: CountryCode = "PL".parse()?;
//! let party = |name: &str, country: CountryCode, vat_id| Party {
//!     name: name.into(),
//!     address: vec!["ul. Prosta 1".into(), "00-001 Warszawa".into()],
//!     country,
//!     vat_id,
//! };
//!
//! // A consumer in Poland tops up $100: Polish VAT at 23 %, also shown in PLN (Art. 230).
//! let supply = Supply {
//!     seller: Seller { country: Country::Ireland, oss_registered: true },
//!     customer: Customer {
//!         evidence: LocationEvidence { billing_country: Some(pl), ip_country: Some(pl), card_country: None },
//!         vat_id: None,
//!     },
//!     date: day,
//! };
//! let draft = Draft {
//!     id: DocumentId::new("topup-7")?,
//!     series: SeriesName::new("INV-2026")?,
//!     seller: party("paygo Ltd", "IE".parse()?, Some(VatId::parse("IE6433435F")?)),
//!     buyer: party("Jan Kowalski", pl, None),
//!     supply_date: day,
//!     currency: Currency::USD,
//!     lines: vec![LineInput {
//!         description: "API credits: 200,000,000 credits".into(),
//!         quantity: 1.into(),
//!         unit_price: Money::parse("100.00", Currency::USD)?,
//!     }],
//!     vat: determine(&supply, &|_: &VatId| VatIdStatus::Unknown, &NoOutsideEuRules)?,
//!     payment: Payment { method: PaymentMethod::Card, reference: "ch_7".into(), paid_on: Some(day) },
//!     rules: RoundingRules::default(),
//!     national_fx: Some(FxRate::new(Currency::USD, Currency::PLN, "3.9512".parse()?, day)?),
//!     buyer_reference: None,
//!     customer_number: None,
//! };
//! let invoice = invoicing.issue(&draft, day)?;
//! assert_eq!(invoice.totals().gross.to_string(), "123.00 USD");
//! assert_eq!(invoice.national_vat().map(|n| n.vat.to_string()), Some("90.88 PLN".into()));
//!
//! // Later the customer gives a confirmed Polish VAT ID: the VAT comes back by credit note.
//! let request = RefundRequest {
//!     invoice: invoicing.refund_facts(invoice.number())?,
//!     vat_id: VatId::parse("PL8567346215")?,
//!     confirmation: VatIdStatus::Valid,
//!     requested_on: day,
//! };
//! let decision = decide_refund(&request, &RefundPolicy::new(Country::Ireland))?;
//! let refund = VatRefundDraft {
//!     id: DocumentId::new("refund-7")?,
//!     series: SeriesName::new("CN-2026")?,
//!     original: invoice.number().clone(),
//!     refund: Payment { method: PaymentMethod::Card, reference: "re_7".into(), paid_on: Some(day) },
//! };
//! let note = invoicing.issue_vat_refund(&refund, &decision, day)?;
//! assert_eq!(note.number().to_string(), "CN-2026-000001");
//! assert_eq!((note.totals().net.to_string(), note.totals().vat.to_string()), ("0.00 USD".into(), "-23.00 USD".into()));
//! assert!(note.to_text().contains("Reverse charge"));
//! assert!(note.to_html().contains("INV-2026-000001"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The parts
//!
//! - [`Draft`] → [`Invoicing::issue`] → [`Document`]: a draft is a plain value; issuing
//!   checks everything, takes the next number of the draft's [`Series`] and returns an
//!   immutable document (seller and buyer snapshots, lines, VAT per rate, totals, the
//!   reverse-charge mention, the VAT in the national currency).
//! - [`Invoicing::issue_credit_note`] and [`Invoicing::issue_vat_refund`]: the only way to
//!   correct an invoice; the credit notes of an invoice never exceed it ([`Credited`]).
//! - [`SequenceStore`]: gapless numbers, each recorded with its document in one durable
//!   step; [`MemorySequenceStore`] and [`FileSequenceStore`] (an fsync'ed journal that
//!   detects truncation and loss, over a [`Storage`]). The trait's contract is a suite of
//!   cases every store runs (`contract`, feature `contract`).
//! - [`RoundingRules`]: every amount in the currency's minor unit; VAT rounded per
//!   invoice (default) or per line ([`TaxRounding`]).
//! - [`Document::to_json`], [`Document::to_text`], [`Document::to_html`].
//! - [`Statement`]: a usage statement per model and per day, in credits and money.
//!
//! Numbering, rounding, the lifecycle and the refund flow are explained in
//! `docs/invoice.md`.

mod book;
#[cfg(feature = "contract")]
pub mod contract;
mod document;
mod error;
mod journal;
mod number;
mod party;
mod render;
mod statement;
mod storage;
mod store;

pub use book::{CreditNoteDraft, Credited, Invoicing, Prepared, VatRefundDraft};
pub use document::{
    Correction, Document, Draft, LINES_MAX, Line, LineInput, NationalVat, OUTSIDE_EU_NOTE, QUANTITY_MAX_SCALE,
    REVERSE_CHARGE_NOTE, RoundingRules, TaxLine, TaxRounding, TaxTreatment, Totals, VatRefundFacts,
};
pub use error::InvoiceError;
pub use journal::{RECORD_MAX_BYTES, SequenceRecord};
pub use number::{
    DOCUMENT_ID_MAX_LEN, DocumentId, DocumentKind, DocumentNumber, SEQUENCE_MAX, SERIES_NAME_MAX_LEN, Series,
    SeriesName,
};
pub use party::{ADDRESS_LINES_MAX, Party, Payment, PaymentMethod, TEXT_MAX_CHARS};
pub use render::{TEXT_WIDTH, country_name, escape_html};
pub use statement::{Charge, DayUsage, ModelUsage, STATEMENT_DAYS_MAX, Statement, StatementRequest, UsageTotals};
pub use storage::{DiskStorage, Storage, StorageFile};
pub use store::{FileSequenceStore, JOURNAL_FILE_NAME, MemorySequenceStore, SequenceStore};
