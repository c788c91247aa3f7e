//! Seller and buyer snapshots, payments, and the national currencies of VAT jurisdictions.

use std::fmt;

use chrono::NaiveDate;
use paygo_vat::{CountryCode, VatId};
use serde::{Deserialize, Serialize};

use crate::InvoiceError;

/// The longest name, address line, reference or description, in characters.
pub const TEXT_MAX_CHARS: usize = 200;

/// The most address lines of a party.
pub const ADDRESS_LINES_MAX: usize = 6;

/// A party (seller or buyer) as it was on the day a document was issued.
///
/// A document keeps its own copy: later changes to the customer never alter an issued
/// document (Article 226(5): full name and address; 226(3) and (4): VAT IDs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Party {
    /// The full name (a person's or a company's).
    pub name: String,
    /// The address, one line each (street, town and postcode, ...), without the country.
    pub address: Vec<String>,
    /// The country of the address (ISO 3166, `GR` for Greece).
    pub country: CountryCode,
    /// The VAT ID, if the party has given one.
    pub vat_id: Option<VatId>,
}

impl Party {
    pub(crate) fn validate(&self, role: &str) -> Result<(), InvoiceError> {
        check_text(&self.name, &format!("{role} name"))?;
        if self.address.is_empty() || self.address.len() > ADDRESS_LINES_MAX {
            return Err(InvoiceError::InvalidText {
                field: format!("{role} address"),
                reason: "expected 1 to 6 address lines",
            });
        }
        for (i, line) in self.address.iter().enumerate() {
            check_text(line, &format!("{role} address line {}", i + 1))?;
        }
        Ok(())
    }
}

/// Checks a one-line text field: not blank, at most [`TEXT_MAX_CHARS`] characters, no
/// control characters.
pub(crate) fn check_text(text: &str, field: &str) -> Result<(), InvoiceError> {
    let reason = if text.trim().is_empty() {
        Some("expected some text, not an empty or blank one")
    } else if text.chars().count() > TEXT_MAX_CHARS {
        Some("expected at most 200 characters")
    } else if text.chars().any(char::is_control) {
        Some("expected one line without control characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(InvoiceError::InvalidText {
            field: field.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// How a document was paid (an invoice) or refunded (a credit note).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// A debit or credit card.
    Card,
    /// PayPal.
    PayPal,
    /// A crypto-currency payment.
    Crypto,
    /// A bank transfer.
    BankTransfer,
}

impl fmt::Display for PaymentMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PaymentMethod::Card => "card",
            PaymentMethod::PayPal => "PayPal",
            PaymentMethod::Crypto => "crypto",
            PaymentMethod::BankTransfer => "bank transfer",
        })
    }
}

/// The payment of an invoice, or the refund of a credit note, in the document's currency.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Payment {
    /// The method.
    pub method: PaymentMethod,
    /// The payment provider's reference (a charge or refund id).
    pub reference: String,
    /// The day the money moved, if it has.
    pub paid_on: Option<NaiveDate>,
}
