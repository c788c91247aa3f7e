//! Auto top-up: the rule (the "Addon") and its guardrails (a window of requests, a
//! back-off after declines, a monthly cap, a switch-off after declines in a row), the
//! requests it emits, and the decision after each charge.

use std::collections::VecDeque;

use paygo_credits::{Credits, Money};
use serde::{Deserialize, Serialize};

use crate::ids::{CustomerId, RequestId};
use crate::payment::PaymentMethod;
use crate::reference::Reference;

/// How much an auto top-up buys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopUpAmount {
    /// A fixed amount of money.
    Fixed(Money),
    /// Enough to bring the balance to this many credits (rounded up to the cent).
    TargetBalance(Credits),
}

/// An auto top-up rule (the "Addon"): when a charge leaves the balance below `threshold`
/// credits, ask for a payment of `amount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AutoTopUpRule {
    /// Whether the rule is on.
    pub enabled: bool,
    /// The balance, in credits, below which a top-up is asked for. Compared in credits,
    /// never in money.
    pub threshold: Credits,
    /// How much to buy.
    pub amount: TopUpAmount,
    /// How the payment is made.
    pub method: PaymentMethod,
    /// At most this many requests per window.
    pub requests_per_window_max: u32,
    /// The window, in milliseconds.
    pub window_ms: u64,
    /// The wait after a declined payment, in milliseconds; doubled after each further
    /// decline in a row, up to `backoff_max_ms`.
    pub backoff_ms: u64,
    /// The longest wait after declines, in milliseconds.
    pub backoff_max_ms: u64,
    /// The most the rule may request in one UTC calendar month, in USD (whole cents): a
    /// request that would take the month's requested amounts above it is not made
    /// ([`AutoTopUp::MonthlyCapReached`]); a declined payment gives its amount back to its
    /// month. None: no cap.
    pub monthly_cap: Option<Money>,
    /// After this many declined payments in a row, the rule switches itself off
    /// (`enabled` becomes false), says so in the decline's
    /// [`Receipt::PaymentRecorded`](crate::Receipt::PaymentRecorded), and shows why in
    /// [`Billing::auto_top_up`](crate::Billing::auto_top_up). Setting the rule again switches it on. None: never.
    pub disable_after_declines: Option<u32>,
    /// The buyer's tax ID, copied into each request so that the invoice can show it.
    pub buyer_tax_id: Option<Reference>,
    /// The buyer's purchase-order reference, copied into each request likewise.
    pub purchase_order: Option<Reference>,
}

/// A request for an auto top-up payment, emitted once while it is outstanding. The payment
/// happens outside; its outcome comes back through [`Command::ReportPayment`](crate::Command::ReportPayment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TopUpRequest {
    /// The request's id (what the outcome is reported against).
    pub id: RequestId,
    /// The customer.
    pub customer: CustomerId,
    /// The amount to charge.
    pub amount: Money,
    /// How.
    pub method: PaymentMethod,
    /// When it was emitted.
    pub at_ns: u64,
    /// The buyer's tax ID, from the rule, for the invoice.
    pub buyer_tax_id: Option<Reference>,
    /// The buyer's purchase-order reference, from the rule, for the invoice.
    pub purchase_order: Option<Reference>,
}

/// What the auto top-up rule decided after a charge. Every case is reported, so that a
/// rule never stops silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AutoTopUp {
    /// The customer has no rule.
    NoRule,
    /// The rule is disabled.
    Disabled,
    /// The balance is at or above the threshold.
    NotNeeded,
    /// A payment was asked for.
    Requested(TopUpRequest),
    /// A request is outstanding already; no second one.
    Outstanding {
        /// The outstanding request.
        request: RequestId,
    },
    /// Declined payments: waiting before asking again.
    BackingOff {
        /// When asking is allowed again.
        until_ns: u64,
    },
    /// The window's limit of requests is reached.
    WindowLimitReached {
        /// When the oldest request leaves the window.
        until_ns: u64,
    },
    /// The request would take this month's requested amounts above the rule's
    /// `monthly_cap`: not made.
    MonthlyCapReached {
        /// The start of the next UTC calendar month, when the cap starts again from zero.
        until_ns: u64,
    },
}

/// Why an auto top-up rule switched itself off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SwitchedOff {
    /// `disable_after_declines` payments were declined in a row.
    Declines {
        /// The declines in a row.
        declines: u32,
        /// When the last of them was reported.
        at_ns: u64,
    },
}

/// A customer's auto top-up, as a portal shows it ([`Billing::auto_top_up`](crate::Billing::auto_top_up)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AutoTopUpStatus {
    /// The rule (switched off: `enabled` is false).
    pub rule: Option<AutoTopUpRule>,
    /// Whether the rule switched itself off, and why; cleared when the rule is set again.
    pub switched_off: Option<SwitchedOff>,
    /// Payments declined in a row (since the last success, or the rule was set).
    pub declines_in_a_row: u32,
    /// The request waiting for its payment's outcome.
    pub outstanding: Option<RequestId>,
    /// After declines: no request before this time.
    pub backing_off_until_ns: Option<u64>,
    /// The start of the UTC calendar month that `month_requested` counts (the month of
    /// the latest request).
    pub month_start_ns: u64,
    /// What the rule requested in that month (less declined payments): what its
    /// `monthly_cap` is compared with.
    pub month_requested: Money,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct AutoState {
    pub(crate) rule: Option<AutoTopUpRule>,
    pub(crate) outstanding: Option<u128>,
    pub(crate) recent_ns: VecDeque<u64>,
    pub(crate) declines: u32,
    pub(crate) blocked_until_ns: u64,
    pub(crate) switched_off: Option<SwitchedOff>,
    /// The month that `month_cents` counts: its first nanosecond.
    pub(crate) month_start_ns: u64,
    /// Cents requested in that month, less declined payments.
    pub(crate) month_cents: i128,
}
