//! A double-entry credit ledger for paygo, on TigerBeetle's data model, and the billing
//! operations of a pay-as-you-go API on top of it.
//!
//! The [`Ledger`] is a deterministic state machine: accounts and immutable transfers with
//! caller-chosen 128-bit ids, two-phase transfers (hold, post in part or whole, void,
//! expiry at a timeout), linked chains that succeed or fail together, idempotent retries
//! that never flip an outcome, and one typed [`EventResult`] per event. Time is an input.
//!
//! ```
//! use paygo_credits::{Credits, Money};
//! use paygo_ledger::billing::{Billing, BillingConfig, PaymentMethod, CardKind, Refusal};
//!
//! let mut billing = Billing::new(BillingConfig::default());
//! let (customer, t) = (42, 1_000_000_000);
//! billing.open_account(t, customer)?;
//! // No free plan: a hold without balance is refused (the API answers 403).
//! assert_eq!(billing.hold(t, 1, customer, Credits::new(10), 60_000), Err(Refusal::InsufficientCredits));
//!
//! // A $10 top-up by card is 20,000,000 credits.
//! let card = PaymentMethod::Card(CardKind::Credit);
//! billing.top_up(t, 7, customer, Money::usd("10.00".parse()?), card)?;
//! // Hold the estimate before the call, capture the actual cost after it.
//! billing.hold(t, 2, customer, Credits::new(5_000), 60_000)?;
//! billing.capture(t, 2, Credits::new(1_892))?;
//! assert_eq!(billing.balance(customer)?, Credits::new(20_000_000 - 1_892));
//! // A retried capture charges nothing more.
//! billing.capture(t, 2, Credits::new(1_892))?;
//! assert_eq!(billing.balance(customer)?, Credits::new(19_998_108));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The parts
//!
//! - [`Ledger`]: the engine; [`Event`], [`Transfer`], [`Account`], [`EventResult`].
//! - [`billing`]: the chart of accounts, top-ups (non-refundable, payment method checked),
//!   holds and captures, bonus lots with expiry and spend order (paused by default), and
//!   auto top-up.
//! - [`SharedLedger`]: a `Send + Sync` handle that many request threads share; their
//!   operations are combined into batches.
//!
//! `docs/ledger.md` documents the model, the result codes and their precedence, the chart
//! of accounts, the spend order and the auto top-up rules.

pub mod billing;
mod engine;
mod hash;
mod result;
mod shared;
mod types;

pub use engine::{ACCOUNT_TOTAL_MAX, BATCH_EVENTS_MAX, Ledger};
pub use result::EventResult;
pub use shared::{Clock, ManualClock, SharedLedger, StateMachine, SystemClock};
pub use types::{
    Account, AccountBalance, AccountFlags, AccountId, Event, PendingStatus, Transfer, TransferFlags, TransferId,
    TransferRecord,
};

/// Errors of the ledger's API (the results of events are [`EventResult`]s, not errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// A batch with more events than the limit.
    #[error("batch of {events} events given, at most {max} are allowed")]
    BatchTooLarge {
        /// Events given.
        events: usize,
        /// The limit.
        max: usize,
    },
    /// An invariant does not hold (a bug: please report it with the batch that caused it).
    #[error("ledger invariant violated: {what}")]
    InvariantViolated {
        /// Which one, and where.
        what: String,
    },
    /// The shared handle's state machine panicked in another thread, or its storage failed:
    /// nothing more can be applied through it.
    #[error("ledger unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
}
