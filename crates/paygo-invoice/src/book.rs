//! Issuing: numbers, the lifecycle, and what each invoice has been credited.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use chrono::NaiveDate;
use paygo_credits::{Currency, Money};
use paygo_vat::{Country, InvoiceFacts, RefundDecision, Reporting, Treatment};
use serde::{Deserialize, Serialize};

use crate::document::{
    Correction, CreditParts, REVERSE_CHARGE_NOTE, TaxTreatment, VatRefundFacts, build_credit_note, build_invoice,
    price, vat_reversal,
};
use crate::{
    Document, DocumentId, DocumentKind, DocumentNumber, Draft, InvoiceError, LineInput, Payment, SequenceStore, Series,
    SeriesName,
};

/// A credit note that corrects part or all of an invoice's lines: net and VAT reversed at
/// the original's rate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CreditNoteDraft {
    /// The caller's id.
    pub id: DocumentId,
    /// A credit-note series.
    pub series: SeriesName,
    /// The invoice corrected.
    pub original: DocumentNumber,
    /// Why (printed on the credit note).
    pub reason: String,
    /// What is credited, positive: the credit note shows these quantities reversed.
    pub lines: Vec<LineInput>,
    /// How the money goes back.
    pub refund: Payment,
}

/// A credit note that refunds the VAT of an invoice, from an approved refund decision.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VatRefundDraft {
    /// The caller's id.
    pub id: DocumentId,
    /// A credit-note series.
    pub series: SeriesName,
    /// The invoice whose VAT is refunded.
    pub original: DocumentNumber,
    /// How the VAT goes back (in the invoice's currency, the currency it was paid in).
    pub refund: Payment,
}

/// An invoice checked and built, waiting for its number ([`Invoicing::prepare`]). `Send`:
/// it may be numbered on another thread.
#[derive(Debug, Clone)]
pub struct Prepared {
    series: Series,
    doc: Document,
    sealed: Option<u64>,
}

impl Prepared {
    /// The series it takes a number of.
    pub fn series(&self) -> &SeriesName {
        self.series.name()
    }

    /// Its id (recorded once per store).
    pub fn id(&self) -> &DocumentId {
        self.doc.id()
    }

    /// Its record with the number `n` of its series (what the store writes under that
    /// number); the last number sealed is the one [`Invoicing::adopt`] expects.
    ///
    /// # Errors
    ///
    /// [`InvoiceError::Overflow`] past [`crate::SEQUENCE_MAX`]; a serialization error.
    pub fn seal(&mut self, n: u64) -> Result<String, InvoiceError> {
        self.doc.set_number(self.series.number(n)?);
        self.sealed = Some(n);
        Ok(serde_json::to_string(&self.doc)?)
    }
}

/// What credit notes have taken off an invoice so far, as positive amounts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Credited {
    /// Net credited.
    pub net: Money,
    /// VAT credited.
    pub vat: Money,
    /// The credit notes, in the order they were issued.
    pub credit_notes: Vec<DocumentNumber>,
}

impl Credited {
    /// Nothing credited yet, in `currency`.
    fn none(currency: Currency) -> Credited {
        Credited {
            net: Money::zero(currency),
            vat: Money::zero(currency),
            credit_notes: Vec::new(),
        }
    }
}

type Key = (SeriesName, u64);

fn key(number: &DocumentNumber) -> Key {
    (number.series().clone(), number.sequence())
}

#[derive(Debug, Default)]
struct State {
    order: Vec<Key>,
    docs: HashMap<Key, Document>,
    by_id: HashMap<DocumentId, Key>,
    credited: HashMap<Key, Credited>,
    last_date: HashMap<SeriesName, NaiveDate>,
}

impl State {
    /// What the original of credit note `doc` will have been credited once `doc` is in:
    /// computed before the document is committed, so that recording it cannot fail after.
    fn credit_after(&self, doc: &Document) -> Result<Option<(Key, Credited)>, InvoiceError> {
        let Some(correction) = doc.correction() else {
            return Ok(None);
        };
        let original = key(&correction.original);
        let currency = doc.currency();
        let mut entry = self
            .credited
            .get(&original)
            .cloned()
            .unwrap_or_else(|| Credited::none(currency));
        entry.net = entry.net.checked_sub(&doc.totals().net)?;
        entry.vat = entry.vat.checked_sub(&doc.totals().vat)?;
        Ok(Some((original, entry)))
    }

    /// Records an issued document (infallible: see [`State::credit_after`]).
    fn apply(&mut self, doc: Document, credit: Option<(Key, Credited)>) {
        let k = key(doc.number());
        if let Some((original, mut entry)) = credit {
            entry.credit_notes.push(doc.number().clone());
            self.credited.insert(original, entry);
        }
        self.by_id.insert(doc.id().clone(), k.clone());
        self.last_date.insert(k.0.clone(), doc.issue_date());
        self.order.push(k.clone());
        self.docs.insert(k, doc);
    }

    fn credited(&self, original: &Document) -> Credited {
        self.credited
            .get(&key(original.number()))
            .cloned()
            .unwrap_or_else(|| Credited::none(original.currency()))
    }

    fn original(&self, number: &DocumentNumber, date: NaiveDate) -> Result<&Document, InvoiceError> {
        let original = self
            .docs
            .get(&key(number))
            .ok_or_else(|| InvoiceError::UnknownDocument {
                number: number.to_string(),
            })?;
        if original.kind() != DocumentKind::Invoice {
            return Err(InvoiceError::NotAnInvoice {
                number: number.to_string(),
            });
        }
        if date < original.issue_date() {
            return Err(InvoiceError::CreditNoteBeforeOriginal {
                date,
                original_date: original.issue_date(),
            });
        }
        Ok(original)
    }
}

/// Issues invoices and credit notes: numbers them from a [`SequenceStore`], keeps every
/// issued document, and tracks what each invoice has been credited.
///
/// The lifecycle: a [`Draft`] is issued once into an immutable [`Document`]; an issued
/// invoice is corrected only by credit notes that name it, and the credit notes of an
/// invoice never take off more net or more VAT than it has. Issuing checks everything
/// before a number is taken; an error means nothing was issued and no number was used.
/// Issuing is serialized (one at a time), which is what gapless numbering needs.
///
/// ```
/// use chrono::NaiveDate;
/// use paygo_credits::{Currency, Money};
/// use paygo_invoice::*;
/// use paygo_vat::*;
///
/// let invoicing = Invoicing::open(
///     MemorySequenceStore::new(),
///     vec![Series::new("INV-2026", DocumentKind::Invoice, 6)?, Series::new("CN-2026", DocumentKind::CreditNote, 6)?],
/// )?;
/// let day = NaiveDate::from_ymd_opt(2026, 3, 2).ok_or("date")?;
/// let us: CountryCode = "US".parse()?;
/// let party = |name: &str, country: CountryCode, vat_id| Party {
///     name: name.into(),
///     address: vec!["1 Main Street".into()],
///     country,
///     vat_id,
/// };
/// let supply = Supply {
///     seller: Seller { country: Country::Ireland, oss_registered: true },
///     customer: Customer {
///         evidence: LocationEvidence { billing_country: Some(us), ip_country: Some(us), card_country: None },
///         vat_id: None,
///     },
///     date: day,
/// };
/// let draft = Draft {
///     id: DocumentId::new("topup-1")?,
///     series: SeriesName::new("INV-2026")?,
///     seller: party("paygo Ltd", "IE".parse()?, Some(VatId::parse("IE6433435F")?)),
///     buyer: party("Jane Doe", us, None),
///     supply_date: day,
///     currency: Currency::USD,
///     lines: vec![LineInput {
///         description: "API credits".into(),
///         quantity: 1.into(),
///         unit_price: Money::parse("100.00", Currency::USD)?,
///     }],
///     vat: determine(&supply, &|_: &VatId| VatIdStatus::Unknown, &NoOutsideEuRules)?,
///     payment: Payment { method: PaymentMethod::Card, reference: "ch_1".into(), paid_on: Some(day) },
///     rules: RoundingRules::default(),
///     national_fx: None,
///     buyer_reference: None,
///     customer_number: None,
/// };
/// let invoice = invoicing.issue(&draft, day)?;
/// assert_eq!(invoice.number().to_string(), "INV-2026-000001");
/// assert_eq!(invoice.totals().gross.to_string(), "100.00 USD");
/// assert!(matches!(invoicing.issue(&draft, day), Err(InvoiceError::AlreadyIssued { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Invoicing<S> {
    store: S,
    series: HashMap<SeriesName, Series>,
    state: Mutex<State>,
}

/// Checks `record` and adds its document to `state`; a document `state` has already is
/// skipped when `known_ok` (and then must be the same number), an error otherwise. Returns
/// whether it was added.
fn load(state: &mut State, record: &crate::SequenceRecord, known_ok: bool) -> Result<bool, InvoiceError> {
    let inconsistent = |reason: String| InvoiceError::Inconsistent {
        series: record.series.to_string(),
        sequence: record.sequence,
        reason,
    };
    let doc: Document = serde_json::from_str(&record.body)?;
    if doc.number().series() != &record.series || doc.number().sequence() != record.sequence {
        return Err(inconsistent(format!("the document is numbered {}", doc.number())));
    }
    if doc.id() != &record.key {
        return Err(inconsistent(format!("the document's id is {}", doc.id())));
    }
    if let Some(known) = state.by_id.get(doc.id()) {
        if known_ok && *known == key(doc.number()) {
            return Ok(false);
        }
        return Err(inconsistent(format!("id {} is issued twice", doc.id())));
    }
    if state.docs.contains_key(&key(doc.number())) {
        return Err(inconsistent(format!("number {} is issued twice", doc.number())));
    }
    doc.check().map_err(inconsistent)?;
    let credit = state.credit_after(&doc)?;
    state.apply(doc, credit);
    Ok(true)
}

impl<S: SequenceStore> Invoicing<S> {
    /// An issuer numbering from `store` into `series`, with every document the store
    /// already holds (of any series, configured or not) loaded and checked.
    ///
    /// # Errors
    ///
    /// [`InvoiceError::InvalidSeries`] for two series of one name; the store's read
    /// errors; [`InvoiceError::Inconsistent`] or [`InvoiceError::Json`] for a record that
    /// is not the document its number says.
    pub fn open(store: S, series: Vec<Series>) -> Result<Invoicing<S>, InvoiceError> {
        let mut by_name = HashMap::new();
        for s in series {
            if let Some(dup) = by_name.insert(s.name().clone(), s) {
                return Err(InvoiceError::InvalidSeries {
                    reason: format!("series {} is given twice: expected each name once", dup.name()),
                });
            }
        }
        let mut state = State::default();
        store.for_each_record(&mut |record| load(&mut state, &record, false).map(|_| ()))?;
        Ok(Invoicing {
            store,
            series: by_name,
            state: Mutex::new(state),
        })
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Loads the documents the store holds that this issuer does not know yet (issued by
    /// another process on a store that several share, such as `paygo_postgres`'s), checked
    /// as [`Invoicing::open`] checks them; returns how many. It reads every record: for the
    /// rare moment a draft turns out issued elsewhere ([`InvoiceError::AlreadyIssued`] from a
    /// shared store), not for every issue.
    ///
    /// # Errors
    ///
    /// As [`Invoicing::open`]; [`InvoiceError::LockPoisoned`].
    pub fn refresh(&self) -> Result<usize, InvoiceError> {
        let mut state = self.lock()?;
        let mut loaded = 0;
        self.store.for_each_record(&mut |record| {
            if load(&mut state, &record, true)? {
                loaded += 1;
            }
            Ok(())
        })?;
        Ok(loaded)
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, InvoiceError> {
        self.state.lock().map_err(|_| InvoiceError::LockPoisoned)
    }

    /// The configured series `name`, checked for `kind`, `id` and `date`.
    fn series_for(
        &self,
        state: &State,
        name: &SeriesName,
        kind: DocumentKind,
        id: &DocumentId,
        date: NaiveDate,
    ) -> Result<&Series, InvoiceError> {
        let series = self.series.get(name).ok_or_else(|| InvoiceError::UnknownSeries {
            series: name.to_string(),
        })?;
        if series.kind() != kind {
            return Err(InvoiceError::WrongSeriesKind {
                series: name.to_string(),
                series_kind: series.kind().name(),
                document_kind: kind.name(),
            });
        }
        if let Some(k) = state.by_id.get(id) {
            let number = state
                .docs
                .get(k)
                .map_or_else(|| format!("{}-{}", k.0, k.1), |d| d.number().to_string());
            return Err(InvoiceError::AlreadyIssued {
                id: id.to_string(),
                number,
            });
        }
        if let Some(last) = state.last_date.get(name).filter(|last| date < **last) {
            return Err(InvoiceError::IssueDateBeforeLast {
                series: name.to_string(),
                date,
                last: *last,
            });
        }
        Ok(series)
    }

    /// Takes the next number of `series` for `doc` and records both durably.
    fn commit(&self, state: &mut State, series: &Series, mut doc: Document) -> Result<Document, InvoiceError> {
        let credit = state.credit_after(&doc)?;
        let id = doc.id().clone();
        // The store seals the document with the number it takes; the last number sealed is
        // the one the document carries.
        let mut sealed = None;
        let sequence = self.store.commit(series.name(), &id, &mut |n| {
            doc.set_number(series.number(n)?);
            sealed = Some(n);
            Ok(serde_json::to_string(&doc)?)
        })?;
        if sealed != Some(sequence) {
            return Err(InvoiceError::Inconsistent {
                series: series.name().to_string(),
                sequence,
                reason: "the store returned another number than it sealed".into(),
            });
        }
        // A number is never handed out twice: a store that did (a damaged journal read
        // back short) is stopped here, before the document reaches the caller.
        if let Some(existing) = state.docs.get(&(series.name().clone(), sequence)) {
            return Err(InvoiceError::Inconsistent {
                series: series.name().to_string(),
                sequence,
                reason: format!(
                    "the store handed out a number document {} already carries",
                    existing.id()
                ),
            });
        }
        state.apply(doc.clone(), credit);
        Ok(doc)
    }

    /// Issues a draft as an invoice dated `issue_date`, numbered with the next number of
    /// its series.
    ///
    /// # Errors
    ///
    /// Nothing is issued and no number is used on any error: the draft's errors (lines in
    /// another currency, a quantity not positive, a negative price, no lines, a text that
    /// is blank or too long, the seller's VAT ID missing, a reverse charge without the
    /// buyer's VAT ID, a missing or wrong exchange rate); [`InvoiceError::UnknownSeries`],
    /// [`InvoiceError::WrongSeriesKind`], [`InvoiceError::AlreadyIssued`] (issuing twice),
    /// [`InvoiceError::IssueDateBeforeLast`]; the store's errors.
    ///
    /// # Properties
    ///
    /// - every amount is a whole number of minor units; each line's net is its exact
    ///   amount rounded; `totals.net`, `totals.vat` and `totals.gross` are the exact sums
    ///   of the lines and tax lines shown, and `gross = net + vat`;
    /// - the VAT is rounded per line or per invoice as the rules say, and the two differ
    ///   by at most one minor unit per line;
    /// - the numbers of a series, issued from any number of threads, are 1, 2, 3, …
    ///   with no gap and no repeat.
    pub fn issue(&self, draft: &Draft, issue_date: NaiveDate) -> Result<Document, InvoiceError> {
        let mut state = self.lock()?;
        let series = self.series_for(&state, &draft.series, DocumentKind::Invoice, &draft.id, issue_date)?;
        let doc = build_invoice(draft, series.number(1)?, issue_date)?;
        self.commit(&mut state, series, doc)
    }

    /// An invoice ready to be numbered by a store other than this book's own: for a
    /// service that records the invoice in the same transaction as something else (a
    /// top-up's credits, `paygo_postgres`). The draft is checked as [`Invoicing::issue`]
    /// checks it; [`Prepared::seal`] gives the record of a number, and
    /// [`Invoicing::adopt`] takes the document once that record is committed, in the
    /// same store this book reads ([`Invoicing::refresh`] finds it otherwise).
    ///
    /// # Errors
    ///
    /// As [`Invoicing::issue`], the store's own errors aside.
    pub fn prepare(&self, draft: &Draft, issue_date: NaiveDate) -> Result<Prepared, InvoiceError> {
        let state = self.lock()?;
        let series = self.series_for(&state, &draft.series, DocumentKind::Invoice, &draft.id, issue_date)?;
        let doc = build_invoice(draft, series.number(1)?, issue_date)?;
        Ok(Prepared {
            series: series.clone(),
            doc,
            sealed: None,
        })
    }

    /// The document of `prepared`, committed elsewhere with the number `sequence` it was
    /// last sealed with, taken into this book.
    ///
    /// # Errors
    ///
    /// [`InvoiceError::Inconsistent`] when `prepared` was not sealed with `sequence`, or
    /// this book holds another document with that number; [`InvoiceError::LockPoisoned`].
    pub fn adopt(&self, prepared: Prepared, sequence: u64) -> Result<Document, InvoiceError> {
        let mut state = self.lock()?;
        let Prepared { series, doc, sealed } = prepared;
        if sealed != Some(sequence) {
            return Err(InvoiceError::Inconsistent {
                series: series.name().to_string(),
                sequence,
                reason: "the document was not sealed with the number committed".into(),
            });
        }
        if let Some(existing) = state.docs.get(&(series.name().clone(), sequence)) {
            if existing.id() == doc.id() {
                return Ok(existing.clone());
            }
            return Err(InvoiceError::Inconsistent {
                series: series.name().to_string(),
                sequence,
                reason: format!("the number committed is document {}'s already", existing.id()),
            });
        }
        let credit = state.credit_after(&doc)?;
        state.apply(doc.clone(), credit);
        Ok(doc)
    }

    /// Issues a credit note that reverses the given lines of an invoice, at its rate.
    ///
    /// # Errors
    ///
    /// As [`Invoicing::issue`], and [`InvoiceError::UnknownDocument`],
    /// [`InvoiceError::NotAnInvoice`], [`InvoiceError::CreditNoteBeforeOriginal`],
    /// [`InvoiceError::CreditExceedsRemaining`] when the invoice's credit notes would take
    /// off more net or VAT than it has.
    ///
    /// # Properties
    ///
    /// - a credit note is issued exactly when its net and its VAT fit in what earlier
    ///   credit notes left, so the credit notes of an invoice never total more than it.
    pub fn issue_credit_note(&self, draft: &CreditNoteDraft, issue_date: NaiveDate) -> Result<Document, InvoiceError> {
        let mut state = self.lock()?;
        let series = self.series_for(&state, &draft.series, DocumentKind::CreditNote, &draft.id, issue_date)?;
        let original = state.original(&draft.original, issue_date)?;
        let rate = invoice_rate(original);
        let priced = price(original.currency(), &draft.lines, rate, original.rules())?;
        let credited = state.credited(original);
        let totals = original.totals();
        check_remaining(original, "net", &totals.net, &credited.net, &priced.totals.net)?;
        check_remaining(original, "VAT", &totals.vat, &credited.vat, &priced.totals.vat)?;
        let doc = build_credit_note(
            original,
            CreditParts {
                id: draft.id.clone(),
                placeholder: series.number(1)?,
                issue_date,
                priced: priced.negate(),
                refund: draft.refund.clone(),
                correction: Correction {
                    original: original.number().clone(),
                    original_issue_date: original.issue_date(),
                    reason: draft.reason.clone(),
                    vat_refund: None,
                },
                tax: original.tax().clone(),
            },
        )?;
        self.commit(&mut state, series, doc)
    }

    /// The facts of an invoice that [`paygo_vat::decide_refund`] needs, with the VAT its
    /// credit notes already returned.
    ///
    /// # Errors
    ///
    /// [`InvoiceError::UnknownDocument`], [`InvoiceError::NotAnInvoice`];
    /// [`InvoiceError::NotEuSupply`] for an invoice not taxed in an EU member state.
    pub fn refund_facts(&self, original: &DocumentNumber) -> Result<InvoiceFacts, InvoiceError> {
        let state = self.lock()?;
        let doc = state.original(original, NaiveDate::MAX)?;
        let country = Country::from_iso(doc.tax().place_of_supply)
            .filter(|c| c.is_eu())
            .ok_or_else(|| InvoiceError::NotEuSupply {
                number: original.to_string(),
            })?;
        Ok(InvoiceFacts {
            number: doc.number().to_string(),
            date: doc.issue_date(),
            customer_country: country,
            net: doc.totals().net,
            vat_charged: doc.totals().vat,
            vat_already_credited: state.credited(doc).vat,
        })
    }

    /// Issues the credit note of an approved VAT refund: it reverses only the VAT of the
    /// original (no net), names it, carries the original buyer snapshot, the customer's
    /// VAT ID and the mention "Reverse charge", and states the refund in the invoice's
    /// currency (and the VAT in the national currency at the original's rate).
    ///
    /// # Errors
    ///
    /// As [`Invoicing::issue_credit_note`], and [`InvoiceError::RefundNotApproved`] for a
    /// decision that is not an approval, [`InvoiceError::RefundMismatch`] for one that
    /// names another invoice, reverses net, or is in another currency.
    pub fn issue_vat_refund(
        &self,
        draft: &VatRefundDraft,
        decision: &RefundDecision,
        issue_date: NaiveDate,
    ) -> Result<Document, InvoiceError> {
        let lines = match decision {
            RefundDecision::Approved { credit_note } => credit_note,
            RefundDecision::Rejected { reason } => {
                return Err(InvoiceError::RefundNotApproved {
                    decision: format!("rejected: {reason}"),
                });
            }
            RefundDecision::RetryLater { reason } => {
                return Err(InvoiceError::RefundNotApproved {
                    decision: format!("retry later: {reason}"),
                });
            }
        };
        let mut state = self.lock()?;
        let series = self.series_for(&state, &draft.series, DocumentKind::CreditNote, &draft.id, issue_date)?;
        let original = state.original(&draft.original, issue_date)?;
        let mismatch = |reason| InvoiceError::RefundMismatch {
            original: original.number().to_string(),
            reason,
        };
        if lines.original_invoice != original.number().to_string() {
            return Err(mismatch("the decision names another invoice"));
        }
        if !lines.net_reversed.is_zero() {
            return Err(mismatch("a VAT refund reverses VAT only: expected no net reversed"));
        }
        if lines.vat_reversed.currency() != original.currency() {
            return Err(mismatch("the refund is in another currency than the invoice"));
        }
        if !lines.vat_reversed.is_rounded()? || lines.vat_reversed.is_negative() || lines.vat_reversed.is_zero() {
            return Err(mismatch("expected a positive VAT amount in whole minor units"));
        }
        let credited = state.credited(original);
        check_remaining(
            original,
            "VAT",
            &original.totals().vat,
            &credited.vat,
            &lines.vat_reversed,
        )?;
        let rate = invoice_rate(original);
        let id = lines.customer_vat_id;
        let priced = vat_reversal(
            format!(
                "Reversal of the VAT charged on invoice {} ({rate} on {})",
                original.number(),
                crate::render::money(&original.totals().net)
            ),
            rate,
            &lines.vat_reversed,
            original.rules().rounding,
        )?;
        let doc = build_credit_note(
            original,
            CreditParts {
                id: draft.id.clone(),
                placeholder: series.number(1)?,
                issue_date,
                priced,
                refund: draft.refund.clone(),
                correction: Correction {
                    original: original.number().clone(),
                    original_issue_date: original.issue_date(),
                    reason: format!(
                        "VAT refund: the customer gave its VAT ID {id}, confirmed; the supply is reverse charged."
                    ),
                    vat_refund: Some(VatRefundFacts {
                        customer_vat_id: id,
                        mention: lines.mention.clone(),
                    }),
                },
                tax: TaxTreatment {
                    treatment: Treatment::ReverseCharge,
                    place_of_supply: original.tax().place_of_supply,
                    reporting: Reporting::ByCustomer,
                    mention: Some(lines.mention.clone()),
                    note: Some(REVERSE_CHARGE_NOTE.to_owned()),
                },
            },
        )?;
        self.commit(&mut state, series, doc)
    }

    /// The document numbered `number`.
    ///
    /// # Errors
    ///
    /// [`InvoiceError::LockPoisoned`].
    pub fn get(&self, number: &DocumentNumber) -> Result<Option<Document>, InvoiceError> {
        Ok(self.lock()?.docs.get(&key(number)).cloned())
    }

    /// The document issued from the draft with id `id` (after a crash, the way to find
    /// out whether a draft was issued).
    ///
    /// # Errors
    ///
    /// [`InvoiceError::LockPoisoned`].
    pub fn get_by_id(&self, id: &DocumentId) -> Result<Option<Document>, InvoiceError> {
        let state = self.lock()?;
        Ok(state.by_id.get(id).and_then(|k| state.docs.get(k)).cloned())
    }

    /// What credit notes have taken off invoice `number` (zero when none).
    ///
    /// # Errors
    ///
    /// [`InvoiceError::UnknownDocument`], [`InvoiceError::NotAnInvoice`].
    pub fn credited(&self, number: &DocumentNumber) -> Result<Credited, InvoiceError> {
        let state = self.lock()?;
        let doc = state.original(number, NaiveDate::MAX)?;
        Ok(state.credited(doc))
    }

    /// Every document, in the order they were issued.
    ///
    /// # Errors
    ///
    /// [`InvoiceError::LockPoisoned`].
    pub fn documents(&self) -> Result<Vec<Document>, InvoiceError> {
        let state = self.lock()?;
        Ok(state.order.iter().filter_map(|k| state.docs.get(k)).cloned().collect())
    }
}

/// The VAT rate of an invoice: it has exactly one tax line by construction (`price`).
fn invoice_rate(invoice: &Document) -> paygo_vat::VatRate {
    invoice
        .taxes()
        .first()
        .map_or(paygo_vat::VatRate::ZERO, crate::TaxLine::rate)
}

/// `credited + requested <= total` for the original's net or VAT (`what`; all positive).
fn check_remaining(
    original: &Document,
    what: &'static str,
    total: &Money,
    credited: &Money,
    requested: &Money,
) -> Result<(), InvoiceError> {
    let remaining = total.checked_sub(credited)?;
    if requested > &remaining {
        return Err(InvoiceError::CreditExceedsRemaining {
            original: original.number().to_string(),
            what,
            requested: requested.to_string(),
            remaining: remaining.to_string(),
        });
    }
    Ok(())
}
