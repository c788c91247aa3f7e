//! A double-entry credit ledger for paygo, on TigerBeetle's data model, with a durable
//! journal.
//!
//! The [`Ledger`] is a deterministic state machine: accounts and immutable transfers with
//! caller-chosen 128-bit ids, two-phase transfers (hold, post in part or whole, void,
//! expiry at a timeout), linked chains that succeed or fail together, idempotent retries
//! that never flip an outcome, and one typed [`EventResult`] per event. Time is an input.
//!
//! ```
//! use paygo_credits::Credits;
//! use paygo_ledger::{Account, AccountId, Event, EventResult, Ledger, Transfer, TransferId};
//!
//! let (funding, customer, revenue) = (AccountId(1), AccountId(42), AccountId(2));
//! let mut ledger = Ledger::new();
//! let t = 1_000_000_000; // nanoseconds: time is an input
//! ledger.apply(t, &[
//!     Event::CreateAccount(Account::new(funding)),
//!     // A customer's balance may not go below zero.
//!     Event::CreateAccount(Account::balance(customer)),
//!     Event::CreateAccount(Account::new(revenue)),
//!     Event::CreateTransfer(Transfer::new(TransferId(1), funding, customer, Credits::new(10_000))),
//! ])?;
//! // Hold 5,000 for a call (60 s timeout), then post the 1,892 it cost: the rest is released.
//! let hold = Transfer::pending(TransferId(2), customer, revenue, Credits::new(5_000), 60_000);
//! let post = Transfer::post(TransferId(3), TransferId(2), Credits::new(1_892));
//! let results = ledger.apply(t, &[Event::CreateTransfer(hold), Event::CreateTransfer(post)])?;
//! assert_eq!(results, [EventResult::Ok, EventResult::Ok]);
//! assert_eq!(ledger.account(customer).map(|a| a.available()), Some(10_000 - 1_892));
//! // A retried post changes nothing.
//! assert_eq!(ledger.apply(t, &[Event::CreateTransfer(post)])?, [EventResult::Exists]);
//! # Ok::<(), paygo_ledger::LedgerError>(())
//! ```
//!
//! # The parts
//!
//! - [`Ledger`]: the engine; [`Event`], [`Transfer`], [`Account`], [`EventResult`].
//! - [`SharedLedger`]: a `Send + Sync` handle that many request threads share; their
//!   operations are combined into batches. It runs any [`StateMachine`]: the ledger, or a
//!   layer built on it (the billing operations of `paygo-billing`).
//! - [`durable`]: the write-ahead journal (group commit, a CRC32C per record, a `BLAKE3`
//!   chain), snapshots and crash recovery behind a [`durable::Storage`] trait, for any
//!   [`durable::Durable`] machine; [`durable::open_ledger`] opens a durable handle in a
//!   directory.
//!
//! `docs/ledger.md` documents the model, the result codes and their precedence, and the
//! durable store's format, fault model and promise.

pub mod durable;
mod engine;
mod hash;
mod result;
mod shared;
mod types;

pub use engine::{ACCOUNT_TOTAL_MAX, BATCH_EVENTS_MAX, Ledger, Spare};
pub use paygo_time::{Clock, ManualClock, WallClock};
pub use result::EventResult;
pub use shared::{SharedLedger, StateMachine};
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
