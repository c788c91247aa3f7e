//! The VAT refund rules: a business that gives its VAT ID after paying gets the VAT back,
//! and only the VAT, once, through a credit note that names the original invoice.

use std::fmt;

use chrono::NaiveDate;
use paygo_credits::Money;
use serde::{Deserialize, Serialize};

use crate::{Country, REVERSE_CHARGE_MENTION, VatError, VatId, VatIdStatus};

/// The default time limit on refund requests: 365 days after the invoice date.
pub const DEFAULT_REQUEST_LIMIT_DAYS: u32 = 365;

/// The seller's refund policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RefundPolicy {
    /// The seller's own member state: a VAT ID from there means no reverse charge.
    pub seller_country: Country,
    /// How many days after the invoice date a request is still accepted (the day of the
    /// invoice plus this many days; [`DEFAULT_REQUEST_LIMIT_DAYS`] by default).
    pub request_limit_days: u32,
}

impl RefundPolicy {
    /// The policy of a seller in `seller_country` with the default time limit.
    pub const fn new(seller_country: Country) -> RefundPolicy {
        RefundPolicy {
            seller_country,
            request_limit_days: DEFAULT_REQUEST_LIMIT_DAYS,
        }
    }
}

/// The facts of the invoice a refund is asked for, as the invoice records them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InvoiceFacts {
    /// The invoice's number (the credit note names it).
    pub number: String,
    /// The invoice date.
    pub date: NaiveDate,
    /// The customer's country the VAT was charged for.
    pub customer_country: Country,
    /// The net amount (the top-up: never refunded).
    pub net: Money,
    /// The VAT charged on the invoice.
    pub vat_charged: Money,
    /// The VAT already returned by earlier credit notes on this invoice.
    pub vat_already_credited: Money,
}

/// A customer's request for the VAT of an invoice back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RefundRequest {
    /// The invoice.
    pub invoice: InvoiceFacts,
    /// The VAT ID the customer now gives (well formed by construction).
    pub vat_id: VatId,
    /// What the confirmation (VIES) said about it.
    pub confirmation: VatIdStatus,
    /// The date of the request.
    pub requested_on: NaiveDate,
}

/// What the credit note must reverse: the VAT lines only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CreditNoteLines {
    /// The number of the invoice the credit note corrects.
    pub original_invoice: String,
    /// The net to reverse: always zero (top-ups are not refundable).
    pub net_reversed: Money,
    /// The VAT to reverse, positive.
    pub vat_reversed: Money,
    /// The customer's VAT ID, to print on the credit note.
    pub customer_vat_id: VatId,
    /// The mention for the corrected supply: "Reverse charge".
    pub mention: String,
}

/// Why a request was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum RejectReason {
    /// The invoice charged no VAT: there is nothing to refund.
    NoVatCharged,
    /// Earlier credit notes already returned all the VAT.
    AlreadyRefunded,
    /// The request came after the time limit.
    TooLate {
        /// Days from the invoice date to the request.
        days: i64,
        /// The limit.
        limit_days: u32,
    },
    /// The VAT ID's country is not the country the VAT was charged for.
    CountryMismatch {
        /// The VAT ID's country.
        vat_id_country: Country,
        /// The invoice's customer country.
        invoice_country: Country,
    },
    /// A VAT ID of the seller's own member state: domestic VAT applies, no reverse charge.
    SellerCountry,
    /// A VAT ID outside the EU (XI, GB, CH, NO): no EU reverse charge.
    NotEuVatId,
    /// The tax administration says the VAT ID is not valid.
    VatIdInvalid,
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::NoVatCharged => f.write_str("the invoice charged no VAT: there is nothing to refund"),
            RejectReason::AlreadyRefunded => {
                f.write_str("earlier credit notes already returned all the VAT of this invoice")
            }
            RejectReason::TooLate { days, limit_days } => write!(
                f,
                "the request came {days} days after the invoice: refunds are requested within {limit_days} days"
            ),
            RejectReason::CountryMismatch {
                vat_id_country,
                invoice_country,
            } => write!(
                f,
                "the VAT ID is from {vat_id_country} but the VAT was charged for {invoice_country}: they must match"
            ),
            RejectReason::SellerCountry => f.write_str(
                "the VAT ID is from the seller's own country: domestic VAT applies, there is no reverse charge",
            ),
            RejectReason::NotEuVatId => f.write_str("the VAT ID is not from an EU member state: no EU reverse charge"),
            RejectReason::VatIdInvalid => {
                f.write_str("the VAT ID is not registered: the tax administration says it is invalid")
            }
        }
    }
}

/// Why a request must wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum RetryReason {
    /// The VAT ID could not be confirmed (VIES gave no answer).
    ConfirmationUnavailable,
}

impl fmt::Display for RetryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryReason::ConfirmationUnavailable => {
                f.write_str("the VAT ID could not be confirmed now: ask again when the confirmation service answers")
            }
        }
    }
}

/// The decision on a refund request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum RefundDecision {
    /// Refund `credit_note.vat_reversed` through a credit note with these lines.
    Approved {
        /// The credit note's lines.
        credit_note: CreditNoteLines,
    },
    /// No refund.
    Rejected {
        /// Why.
        reason: RejectReason,
    },
    /// No decision yet: ask again later.
    RetryLater {
        /// Why.
        reason: RetryReason,
    },
}

impl RefundDecision {
    /// The VAT to refund: `Some` only when approved.
    pub fn refund(&self) -> Option<&Money> {
        match self {
            RefundDecision::Approved { credit_note } => Some(&credit_note.vat_reversed),
            _ => None,
        }
    }
}

/// Decides a refund request. The rules, in the order they are applied:
///
/// 1. the facts must be consistent (else an error, not a decision);
/// 2. no VAT charged: rejected; all of it already credited: rejected;
/// 3. after the time limit: rejected;
/// 4. a VAT ID from outside the EU (XI, GB, CH, NO): rejected; from another country than
///    the invoice's customer country: rejected; from the seller's own country: rejected (no
///    reverse charge, the VAT was due);
/// 5. confirmation invalid: rejected; unknown: retry later;
/// 6. approved: the VAT charged minus what earlier credit notes returned, never the net.
///
/// # Errors
///
/// [`VatError::InvalidRequest`] for a negative amount, more VAT credited than charged, a
/// request dated before the invoice, or an empty invoice number; [`VatError::Money`] when the amounts are not in one
/// currency.
///
/// # Properties
///
/// - an approved refund is positive and at most `vat_charged - vat_already_credited`;
/// - the net is never refunded (`net_reversed` is zero);
/// - across any sequence of requests that add each refund to `vat_already_credited`, the
///   total refunded never exceeds the VAT charged.
///
/// # Example
///
/// ```
/// use chrono::NaiveDate;
/// use paygo_credits::{Currency, Money};
/// use paygo_vat::*;
///
/// let eur = |s: &str| Money::parse(s, Currency::EUR);
/// let request = RefundRequest {
///     invoice: InvoiceFacts {
///         number: "INV-2026-000042".into(),
///         date: "2026-03-01".parse::<NaiveDate>()?,
///         customer_country: Country::Germany,
///         net: eur("100.00")?,
///         vat_charged: eur("19.00")?,
///         vat_already_credited: eur("0.00")?,
///     },
///     vat_id: VatId::parse("DE136695976")?,
///     confirmation: VatIdStatus::Valid,
///     requested_on: "2026-03-20".parse::<NaiveDate>()?,
/// };
/// let decision = decide_refund(&request, &RefundPolicy::new(Country::Ireland))?;
/// assert_eq!(decision.refund(), Some(&eur("19.00")?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decide_refund(request: &RefundRequest, policy: &RefundPolicy) -> Result<RefundDecision, VatError> {
    let invoice = &request.invoice;
    let remaining = invoice.vat_charged.checked_sub(&invoice.vat_already_credited)?;
    invoice.net.expect_currency(invoice.vat_charged.currency())?;
    if invoice.net.is_negative() || invoice.vat_charged.is_negative() || invoice.vat_already_credited.is_negative() {
        return Err(VatError::InvalidRequest {
            reason: "an amount is negative: expected the invoice's net, VAT charged and VAT credited, each zero or more",
        });
    }
    if remaining.is_negative() {
        return Err(VatError::InvalidRequest {
            reason: "more VAT credited than charged: expected earlier credit notes to return at most the VAT charged",
        });
    }
    if invoice.number.trim().is_empty() {
        return Err(VatError::InvalidRequest {
            reason: "the invoice number is empty: expected the number of the invoice the credit note corrects",
        });
    }
    let days = request.requested_on.signed_duration_since(invoice.date).num_days();
    if days < 0 {
        return Err(VatError::InvalidRequest {
            reason: "the request is dated before the invoice: expected a request on or after the invoice date",
        });
    }
    let reject = |reason| Ok(RefundDecision::Rejected { reason });
    if invoice.vat_charged.is_zero() {
        return reject(RejectReason::NoVatCharged);
    }
    if remaining.is_zero() {
        return reject(RejectReason::AlreadyRefunded);
    }
    if days > i64::from(policy.request_limit_days) {
        return reject(RejectReason::TooLate {
            days,
            limit_days: policy.request_limit_days,
        });
    }
    let id_country = request.vat_id.country();
    // A non-EU ID first: an XI (Northern Ireland) ID on an invoice for GB is no EU reverse
    // charge, and saying "XI does not match GB" would send the customer the wrong way.
    if !id_country.is_eu() {
        return reject(RejectReason::NotEuVatId);
    }
    if id_country != invoice.customer_country {
        return reject(RejectReason::CountryMismatch {
            vat_id_country: id_country,
            invoice_country: invoice.customer_country,
        });
    }
    if id_country == policy.seller_country {
        return reject(RejectReason::SellerCountry);
    }
    match request.confirmation {
        VatIdStatus::Invalid => reject(RejectReason::VatIdInvalid),
        VatIdStatus::Unknown => Ok(RefundDecision::RetryLater {
            reason: RetryReason::ConfirmationUnavailable,
        }),
        VatIdStatus::Valid => Ok(RefundDecision::Approved {
            credit_note: CreditNoteLines {
                original_invoice: invoice.number.clone(),
                net_reversed: Money::zero(invoice.net.currency()),
                vat_reversed: remaining,
                customer_vat_id: request.vat_id,
                mention: REVERSE_CHARGE_MENTION.to_owned(),
            },
        }),
    }
}
