//! How a customer pays, and what became of a payment.

use serde::{Deserialize, Serialize};

use crate::ids::{RequestId, TopUpId};

/// How the customer pays a top-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// A payment card of this kind.
    Card(CardKind),
    /// `PayPal`.
    PayPal,
    /// A cryptocurrency payment.
    Crypto,
    /// A gift card (refused).
    GiftCard,
}

/// The kind of a payment card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardKind {
    /// A credit card.
    Credit,
    /// A debit card.
    Debit,
    /// A prepaid card (refused).
    Prepaid,
}

impl PaymentMethod {
    /// Why this method is refused, if it is: prepaid and gift cards are not accepted.
    pub const fn refusal(self) -> Option<MethodRefusal> {
        match self {
            PaymentMethod::Card(CardKind::Prepaid) => Some(MethodRefusal::PrepaidCard),
            PaymentMethod::GiftCard => Some(MethodRefusal::GiftCard),
            _ => None,
        }
    }
}

/// The outcome of an auto top-up payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentOutcome {
    /// The payment went through.
    Succeeded,
    /// The payment was declined.
    Declined,
}

/// The payment a reversal names ([`Command::ReversePayment`](crate::Command::ReversePayment)),
/// recorded on the ledger's transfers for audit (the transfer code says which kind, the
/// `user_data` is the id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PaymentRef {
    /// A top-up ([`Command::TopUp`](crate::Command::TopUp)).
    TopUp(TopUpId),
    /// An auto top-up payment ([`Command::ReportPayment`](crate::Command::ReportPayment)).
    AutoTopUp(RequestId),
}

/// Why a payment method is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MethodRefusal {
    /// A prepaid card.
    #[error("prepaid cards are not accepted: pay with a credit or debit card, PayPal or crypto")]
    PrepaidCard,
    /// A gift card.
    #[error("gift cards are not accepted: pay with a credit or debit card, PayPal or crypto")]
    GiftCard,
}

pub(crate) const METHOD_REFUSALS: [MethodRefusal; 2] = [MethodRefusal::PrepaidCard, MethodRefusal::GiftCard];

impl MethodRefusal {
    /// Its byte in the store.
    pub(crate) fn code(self) -> u8 {
        // Two entries: the position always exists and fits a byte.
        METHOD_REFUSALS.iter().position(|r| *r == self).unwrap_or(0) as u8
    }

    /// The refusal stored as `code`.
    pub(crate) fn from_code(code: u8) -> Option<MethodRefusal> {
        METHOD_REFUSALS.get(usize::from(code)).copied()
    }
}
