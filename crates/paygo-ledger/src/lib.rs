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
//! - [`durable`]: the write-ahead journal (group commit, a CRC32C per record, a `BLAKE3`
//!   chain), snapshots and crash recovery behind a [`durable::Storage`] trait;
//!   [`durable::open_billing`] and [`durable::open_ledger`] open a durable handle in a
//!   directory.
//!
//! `docs/ledger.md` documents the model, the result codes and their precedence, the chart
//! of accounts, the spend order, the auto top-up rules, and the durable store's format and
//! promise.

pub mod billing;
pub mod durable;
mod engine;
mod hash;
mod result;
mod shared;
mod types;

pub use engine::{ACCOUNT_TOTAL_MAX, BATCH_EVENTS_MAX, Ledger, Spare};
pub use result::EventResult;
pub use shared::{Clock, ManualClock, SharedLedger, StateMachine, SystemClock};
pub use types::{
    Account, AccountBalance, AccountFlags, AccountId, Event, IdWindow, PendingStatus, Transfer, TransferFlags,
    TransferId, TransferRecord,
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
    /// A file or directory of the durable store could not be read or written.
    #[error("cannot {op} {path}: {message}")]
    Io {
        /// What was being done ("write", "sync", ...).
        op: String,
        /// The file or directory.
        path: String,
        /// The operating system's message.
        message: String,
    },
    /// A file of the durable store is damaged, truncated or missing in a way that could
    /// hide acknowledged data (or no snapshot is usable): nothing is skipped, the store
    /// refuses to open.
    #[error("corrupt {file} at byte {offset}: {what}")]
    Corrupt {
        /// The file.
        file: String,
        /// Where the damaged record or header starts.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// Bytes that passed their checksum do not decode (a format from another version, or
    /// a bug); the store wraps it in [`LedgerError::Corrupt`] with the file and offset.
    #[error("cannot decode: {what}")]
    Decode {
        /// What is wrong.
        what: String,
    },
    /// Another process (or handle) has the directory open for writing (one writer at a
    /// time; readers take no lock).
    #[error("directory {dir} is locked: another process or handle has it open for writing (one writer at a time)")]
    Locked {
        /// The directory.
        dir: String,
    },
    /// The directory is not a paygo ledger store (other files and no `MANIFEST`), or holds
    /// a store of another kind or format.
    #[error("directory {dir} is not a paygo ledger store: {why}")]
    Foreign {
        /// The directory.
        dir: String,
        /// What was found instead.
        why: String,
    },
    /// The directory does not exist (or holds no store yet), and only reading was asked for.
    #[error("directory {dir} does not exist or holds no ledger: expected a directory written by a durable ledger")]
    MissingDirectory {
        /// The directory.
        dir: String,
    },
    /// A time that does not fit in a time-ordered id's 48 bits of milliseconds.
    #[error("time {unix_ms} ms does not fit a time-ordered id: expected at most 2^48 - 1 ms since the Unix epoch")]
    IdTime {
        /// The milliseconds given.
        unix_ms: u64,
    },
    /// The shared handle's state machine panicked in another thread, or its storage failed:
    /// nothing more can be applied through it.
    #[error("ledger unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
}
