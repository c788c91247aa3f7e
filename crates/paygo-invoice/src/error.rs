//! The one error type of this crate.

use chrono::NaiveDate;
use paygo_credits::CreditsError;
use paygo_vat::VatError;
use thiserror::Error;

/// Everything that can go wrong when drafting, numbering, issuing, crediting or rendering
/// a document, and when building a usage statement.
///
/// Messages are lowercase and say what was wrong and what was expected, so that a service
/// can pass them on to its caller unchanged. An error from [`crate::Invoicing`] means that
/// nothing was issued and no number was consumed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InvoiceError {
    /// A line priced in another currency than the document's.
    #[error("line {line} is priced in {found}, the document is in {expected}: expected every line in one currency")]
    CurrencyMismatch {
        /// The 1-based line number.
        line: usize,
        /// The document's currency.
        expected: &'static str,
        /// The line's currency.
        found: &'static str,
    },
    /// A line quantity that is zero or negative.
    #[error("line {line} has quantity {quantity}: expected a positive quantity (corrections go through credit notes)")]
    InvalidQuantity {
        /// The 1-based line number.
        line: usize,
        /// The quantity given.
        quantity: String,
    },
    /// A negative unit price.
    #[error("line {line} has unit price {price}: expected zero or more (corrections go through credit notes)")]
    NegativePrice {
        /// The 1-based line number.
        line: usize,
        /// The price given.
        price: String,
    },
    /// A text field that is empty, too long or holds control characters.
    #[error("invalid {field}: {reason}")]
    InvalidText {
        /// Which field ("buyer name", "line 2 description", ...).
        field: String,
        /// What was wrong and what was expected.
        reason: &'static str,
    },
    /// A document without lines.
    #[error("the document has no lines: expected at least one")]
    NoLines,
    /// More lines than a document may have.
    #[error("{given} lines given: a document has at most {max}")]
    TooManyLines {
        /// Lines given.
        given: usize,
        /// The limit ([`crate::LINES_MAX`]).
        max: usize,
    },
    /// A currency without a minor unit, which no invoice can be rounded to.
    #[error("currency {currency} has no minor unit: expected a currency such as USD, JPY or BHD")]
    NoMinorUnit {
        /// The currency's ISO 4217 code.
        currency: &'static str,
    },
    /// The seller snapshot has no VAT ID (Article 226(3) requires it).
    #[error("the seller has no VAT ID: an invoice must show the supplier's VAT identification number")]
    MissingSellerVatId,
    /// A reverse-charge supply whose buyer snapshot has no VAT ID (Article 226(4)).
    #[error("reverse charge needs the buyer's VAT ID on the invoice: expected the buyer snapshot to carry it")]
    MissingBuyerVatId,
    /// The determination was made for another VAT ID than the buyer snapshot's.
    #[error("the VAT determination used VAT ID {determined}, the buyer snapshot has {snapshot}: expected the same")]
    VatIdMismatch {
        /// The VAT ID the determination confirmed.
        determined: String,
        /// The buyer snapshot's VAT ID (or "none").
        snapshot: String,
    },
    /// VAT must also be shown in the national currency and no exchange rate was given.
    #[error("the VAT must also be shown in {to} (Article 230): expected an exchange rate from {from} to {to}")]
    MissingFxRate {
        /// The document's currency.
        from: &'static str,
        /// The national currency of the member state of supply.
        to: &'static str,
    },
    /// An exchange rate between the wrong currencies.
    #[error("exchange rate from {found_from} to {found_to} given: expected one from {from} to {to}")]
    WrongFxRate {
        /// The document's currency.
        from: &'static str,
        /// The national currency.
        to: &'static str,
        /// The rate's source currency.
        found_from: &'static str,
        /// The rate's target currency.
        found_to: &'static str,
    },
    /// A series name that is empty, too long or has characters outside `A-Z 0-9 - _ /`.
    #[error("invalid series name {input:?}: {reason}")]
    InvalidSeriesName {
        /// The name given, cut to 64 characters.
        input: String,
        /// What was expected.
        reason: &'static str,
    },
    /// A document id that is empty, too long or not printable ASCII.
    #[error("invalid document id {input:?}: {reason}")]
    InvalidDocumentId {
        /// The id given, cut to 64 characters.
        input: String,
        /// What was expected.
        reason: &'static str,
    },
    /// A document number that does not read `SERIES-000001`.
    #[error("invalid document number {input:?}: expected a series, a dash and digits, such as INV-2026-000001")]
    InvalidNumber {
        /// The text given, cut to 64 characters.
        input: String,
    },
    /// A series the issuer was not configured with.
    #[error("unknown series {series}: expected one of the series the issuer was opened with")]
    UnknownSeries {
        /// The series named.
        series: String,
    },
    /// An invoice in a credit-note series, or a credit note in an invoice series.
    #[error("series {series} numbers {series_kind}s: expected a series for {document_kind}s")]
    WrongSeriesKind {
        /// The series named.
        series: String,
        /// What the series numbers.
        series_kind: &'static str,
        /// What was being issued.
        document_kind: &'static str,
    },
    /// Two series of the same name, or a digit count outside 1 to 12.
    #[error("invalid series configuration: {reason}")]
    InvalidSeries {
        /// What was wrong.
        reason: String,
    },
    /// A draft whose id was already issued: issuing is not repeated.
    #[error("document {id} was already issued as {number}: a draft is issued once")]
    AlreadyIssued {
        /// The draft's id.
        id: String,
        /// The number it was issued under.
        number: String,
    },
    /// An issue date before the last document of the series (numbers follow dates).
    #[error(
        "issue date {date} is before {last}, the date of the last document of series {series}: numbers must follow dates"
    )]
    IssueDateBeforeLast {
        /// The series.
        series: String,
        /// The date given.
        date: NaiveDate,
        /// The last issue date of the series.
        last: NaiveDate,
    },
    /// A number that names no issued document.
    #[error("no document numbered {number}: expected the number of an issued invoice")]
    UnknownDocument {
        /// The number given.
        number: String,
    },
    /// A credit note for a document that is not an invoice.
    #[error("{number} is a credit note: expected an invoice to correct")]
    NotAnInvoice {
        /// The number given.
        number: String,
    },
    /// A credit note dated before the invoice it corrects.
    #[error(
        "credit note dated {date}, before the invoice it corrects ({original_date}): expected the same day or later"
    )]
    CreditNoteBeforeOriginal {
        /// The credit note's date.
        date: NaiveDate,
        /// The original's date.
        original_date: NaiveDate,
    },
    /// A credit note for more than what remains of the original.
    #[error(
        "credit of {requested} {what} on {original} exceeds what remains of it ({remaining}): expected at most that"
    )]
    CreditExceedsRemaining {
        /// The original invoice's number.
        original: String,
        /// "net" or "VAT".
        what: &'static str,
        /// The amount the credit note would credit.
        requested: String,
        /// What earlier credit notes left.
        remaining: String,
    },
    /// A VAT refund from a decision that is not an approval.
    #[error("the refund decision is not an approval ({decision}): expected RefundDecision::Approved")]
    RefundNotApproved {
        /// The decision, as text.
        decision: String,
    },
    /// An approved refund that does not fit the invoice (another number, a net amount,
    /// another currency).
    #[error("the approved refund does not fit invoice {original}: {reason}")]
    RefundMismatch {
        /// The invoice's number.
        original: String,
        /// What was wrong.
        reason: &'static str,
    },
    /// A VAT refund for an invoice taxed outside the EU member states.
    #[error("invoice {number} was not taxed in an EU member state: expected an invoice with EU VAT")]
    NotEuSupply {
        /// The invoice's number.
        number: String,
    },
    /// An arithmetic result outside the supported range.
    #[error("overflow in {operation}: the exact result is outside the supported range")]
    Overflow {
        /// What overflowed.
        operation: &'static str,
    },
    /// An I/O failure of the sequence store.
    #[error("sequence store: {operation} {path}: {message}")]
    Store {
        /// What was being done.
        operation: &'static str,
        /// The file or directory.
        path: String,
        /// The operating system's message.
        message: String,
    },
    /// A journal that cannot be read back as written: damage that could hide an
    /// acknowledged record (the journal cut back, emptied, deleted or damaged before its
    /// last record). The store refuses to open and leaves its files for a person to look at.
    #[error("sequence journal {path} record {line} (byte {offset}): {reason}")]
    Journal {
        /// The journal file.
        path: String,
        /// The 1-based record where the damage is (0 for the header slots or the file).
        line: usize,
        /// The byte offset in the file.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// A store whose write or sync failed: it refuses further numbers until it is reopened
    /// (opening reads the journal back and decides whether the failed record is there).
    #[error("the sequence store failed a write or a sync: reopen it before issuing again")]
    StorePoisoned,
    /// A commit to a store opened read-only.
    #[error("sequence store {path} was opened read-only: open it with FileSequenceStore::open to issue")]
    ReadOnlyStore {
        /// The journal file.
        path: String,
    },
    /// A lock poisoned by a panic in another thread.
    #[error("a lock was poisoned by a panic in another thread: expected the process to restart")]
    LockPoisoned,
    /// A record that disagrees with the document it carries.
    #[error("stored record {series}-{sequence} is inconsistent: {reason}")]
    Inconsistent {
        /// The record's series.
        series: String,
        /// The record's sequence number.
        sequence: u64,
        /// What disagreed.
        reason: String,
    },
    /// JSON encoding or decoding failed.
    #[error("json: {message}")]
    Json {
        /// `serde_json`'s message.
        message: String,
    },
    /// A usage statement's period or charges that do not fit.
    #[error("invalid statement: {reason}")]
    InvalidStatement {
        /// What was wrong and what was expected.
        reason: String,
    },
    /// Money arithmetic failed.
    #[error("money: {0}")]
    Money(#[from] CreditsError),
    /// A VAT rule failed.
    #[error("vat: {0}")]
    Vat(#[from] VatError),
}

impl From<serde_json::Error> for InvoiceError {
    fn from(error: serde_json::Error) -> InvoiceError {
        InvoiceError::Json {
            message: error.to_string(),
        }
    }
}
