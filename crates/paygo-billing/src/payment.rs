//! How a customer pays, and what became of a payment.

use serde::{Deserialize, Serialize};

use crate::command::MethodRefusal;
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
