//! The seam between the billing rules and where billing state lives: the [`BillingStore`]
//! trait, the values it answers with, and [`BillingError`].
//!
//! A store applies [`Command`]s with exactly the rules of [`Billing`] (spend order, holds
//! and captures, auto top-up decisions and back-off, the credits a top-up buys): the
//! embedded store ([`EmbeddedStore`](crate::EmbeddedStore)) runs the state machine itself
//! behind the ledger's durable journal; a store on a database that several gateway replicas
//! share (PostgreSQL, a later crate) implements the same trait and is checked by the same
//! contract suite (`paygo_billing::contract`, feature `contract`).

use std::future::Future;

use paygo_credits::Credits;
use paygo_ledger::{AccountId, LedgerError, TransferId, TransferRecord};
use serde::{Deserialize, Serialize};

use crate::auto::{AutoTopUpStatus, TopUpRequest};
use crate::chart::{BREAKAGE, FUNDING, codes};
use crate::command::{Command, Refusal, Reply};
use crate::ids::{CustomerId, HoldId};
use crate::machine::Billing;

/// Errors of a billing store (the refusal of one command is its [`Reply`], not an error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BillingError {
    /// More commands in one call than a store takes at once.
    #[error("{commands} commands given in one call, at most {max} are allowed: split them")]
    BatchTooLarge {
        /// Commands given.
        commands: usize,
        /// The limit.
        max: usize,
    },
    /// A read named a customer the store does not know.
    #[error("unknown customer {customer}: open the account first")]
    UnknownCustomer {
        /// The customer asked for.
        customer: CustomerId,
    },
    /// A history page of 0 entries, or more than [`HISTORY_PAGE_MAX`].
    #[error("a history page of {limit} entries was asked for: expected 1 to {max}")]
    PageLimit {
        /// The limit given.
        limit: usize,
        /// The largest page.
        max: usize,
    },
    /// Stored billing state that does not decode (a database row damaged or written by
    /// another version): nothing was applied; the store refuses to guess.
    #[error("stored billing state is damaged: {reason}")]
    Corrupt {
        /// What was wrong.
        reason: String,
    },
    /// The store cannot take or answer commands now (its storage failed, it was closed, or
    /// the database is unreachable). Whether a command of the failed call was applied is
    /// unknown: retry it with the same ids, which is always safe.
    #[error("billing store unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl From<LedgerError> for BillingError {
    fn from(error: LedgerError) -> BillingError {
        match error {
            LedgerError::BatchTooLarge { events, max } => BillingError::BatchTooLarge { commands: events, max },
            other => BillingError::Unavailable {
                reason: other.to_string(),
            },
        }
    }
}

/// A customer's balance, as a billing page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Balance {
    /// The customer.
    pub customer: CustomerId,
    /// Credits the customer can spend now: paid and bonus, less what is held, less the
    /// arrears of a reversed payment (so it may be negative).
    pub available: Credits,
    /// The paid part of `available`.
    pub paid: Credits,
    /// The bonus part of `available` (unexpired lots).
    pub bonus: Credits,
    /// Credits owed by exact cost beyond the holds and never charged
    /// ([`Command::CaptureCost`]).
    pub uncollected: Credits,
    /// Credits owed after a payment reversal that the balance did not cover
    /// ([`Command::ReversePayment`]): holds are refused until a top-up settles them.
    pub arrears: Credits,
}

impl Balance {
    /// The balance of `customer` in `billing`.
    ///
    /// # Errors
    ///
    /// [`BillingError::UnknownCustomer`].
    pub fn of(billing: &Billing, customer: CustomerId) -> Result<Balance, BillingError> {
        let unknown = |_: Refusal| BillingError::UnknownCustomer { customer };
        let available = billing.balance(customer).map_err(unknown)?;
        let paid = billing.paid_balance(customer).map_err(unknown)?;
        let arrears = billing.arrears(customer).map_err(unknown)?;
        Ok(Balance {
            customer,
            available,
            paid,
            // Both are within the customer's i64 range; available is paid + bonus − arrears.
            bonus: Credits::new(available.get().saturating_sub(paid.get()).saturating_add(arrears.get())),
            uncollected: billing.uncollected(customer).map_err(unknown)?,
            arrears,
        })
    }
}

/// The most entries one history page holds.
pub const HISTORY_PAGE_MAX: usize = 1_000;

/// Which page of a customer's history to read: newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HistoryQuery {
    /// Entries strictly older than this ledger time (the `next` of the previous page);
    /// `None` for the newest page.
    pub before_ns: Option<u64>,
    /// At most this many entries, `1 ..= HISTORY_PAGE_MAX`.
    pub limit: usize,
}

impl HistoryQuery {
    /// The newest `limit` entries.
    pub const fn newest(limit: usize) -> HistoryQuery {
        HistoryQuery { before_ns: None, limit }
    }

    /// Checks the limit.
    fn check(&self) -> Result<(), BillingError> {
        if self.limit == 0 || self.limit > HISTORY_PAGE_MAX {
            return Err(BillingError::PageLimit {
                limit: self.limit,
                max: HISTORY_PAGE_MAX,
            });
        }
        Ok(())
    }
}

/// What moved a customer's balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EntryKind {
    /// Credits bought (a top-up, or a paid auto top-up request): the payment's id.
    Purchase {
        /// The top-up's id, or the auto top-up request's.
        payment: u128,
    },
    /// A call's charge (a captured hold).
    Charge {
        /// The hold (the call's id).
        hold: HoldId,
    },
    /// Bonus credits granted.
    BonusGrant {
        /// The lot's account.
        lot: AccountId,
    },
    /// What was left of a bonus lot, expired.
    BonusExpiry {
        /// The lot's account.
        lot: AccountId,
    },
    /// A payment reversed (a chargeback): the credits it bought, clawed back (what the
    /// balance did not cover is arrears, [`Balance::arrears`]).
    Reversal {
        /// The reversed payment.
        payment: crate::PaymentRef,
    },
}

/// One movement of a customer's balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When, in nanoseconds of the store's clock (unique per ledger transfer).
    pub at_ns: u64,
    /// The ledger transfer.
    pub transfer: TransferId,
    /// What it was.
    #[serde(flatten)]
    pub kind: EntryKind,
    /// Credits in (positive) or out (negative).
    pub credits: Credits,
}

/// One page of history, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HistoryPage {
    /// The entries.
    pub entries: Vec<HistoryEntry>,
    /// The `before_ns` of the next (older) page, if there are older entries.
    pub next: Option<u64>,
}

/// A customer's history from the ledger of `billing`: purchases, charges, bonus grants and
/// expiries, and payment reversals, newest first, so that the entries add up to the
/// balance ([`Balance::available`]) while the window keeps them. Holds and releases do not
/// move the balance for good, and recording or settling arrears moves the paid balance and
/// the arrears together, so none of them is listed. With an idempotency window, transfers older than the window have left
/// memory: the page ends there (the journal's archive keeps them).
///
/// # Errors
///
/// [`BillingError::UnknownCustomer`]; [`BillingError::PageLimit`].
pub fn history_of(billing: &Billing, customer: CustomerId, query: &HistoryQuery) -> Result<HistoryPage, BillingError> {
    query.check()?;
    billing
        .balance(customer)
        .map_err(|_| BillingError::UnknownCustomer { customer })?;
    let ledger = billing.ledger();
    let customer = customer.0;
    // Lots are granted to the customer before anything draws on them.
    let lots: Vec<AccountId> = ledger
        .transfers()
        .filter(|r| r.transfer.code == codes::BONUS_GRANT && r.transfer.user_data == customer)
        .map(|r| r.transfer.credit_account_id)
        .collect();
    let is_lot = |a: AccountId| lots.contains(&a);
    // A post names its pending transfer, whose debit account is the source.
    let source_of = |p: TransferId| ledger.transfer(p).map(|p| p.transfer.debit_account_id);
    let all: Vec<HistoryEntry> = ledger
        .transfers()
        .filter_map(|record| entry_of(&record, customer, &is_lot, &source_of))
        .collect();
    let older: Vec<HistoryEntry> = all
        .into_iter()
        .rev()
        .filter(|e| query.before_ns.is_none_or(|b| e.at_ns < b))
        .collect();
    let more = older.len() > query.limit;
    let entries: Vec<HistoryEntry> = older.into_iter().take(query.limit).collect();
    let next = if more { entries.last().map(|e| e.at_ns) } else { None };
    Ok(HistoryPage { entries, next })
}

/// The customer's history entry for one ledger transfer, if it is one: `is_lot` says
/// whether an account is one of the customer's bonus lots, `source_of` finds the account a
/// pending transfer debits. Shared by [`history_of`] and the shards' settled history
/// ([`crate::Shard::settle`]), so that both list the same entries.
pub(crate) fn entry_of(
    record: &TransferRecord,
    customer: u128,
    is_lot: &dyn Fn(AccountId) -> bool,
    source_of: &dyn Fn(TransferId) -> Option<AccountId>,
) -> Option<HistoryEntry> {
    let own = AccountId(customer);
    let t = record.transfer;
    let entry = |kind, credits: i64| HistoryEntry {
        at_ns: record.timestamp_ns,
        transfer: t.id,
        kind,
        credits: Credits::new(credits),
    };
    match t.code {
        codes::TOP_UP if t.credit_account_id == own && t.debit_account_id == FUNDING => {
            Some(entry(EntryKind::Purchase { payment: t.user_data }, t.amount.get()))
        }
        codes::BONUS_GRANT if t.user_data == customer => Some(entry(
            EntryKind::BonusGrant {
                lot: t.credit_account_id,
            },
            t.amount.get(),
        )),
        codes::BONUS_EXPIRY if t.credit_account_id == BREAKAGE && is_lot(t.debit_account_id) => Some(entry(
            EntryKind::BonusExpiry {
                lot: t.debit_account_id,
            },
            -t.amount.get(),
        )),
        codes::REVERSAL_OF_TOP_UP | codes::REVERSAL_OF_AUTO_TOP_UP
            if t.debit_account_id == own && t.credit_account_id == FUNDING =>
        {
            let payment = if t.code == codes::REVERSAL_OF_TOP_UP {
                crate::PaymentRef::TopUp(crate::TopUpId(t.user_data))
            } else {
                crate::PaymentRef::AutoTopUp(crate::RequestId(t.user_data))
            };
            Some(entry(EntryKind::Reversal { payment }, -t.amount.get()))
        }
        codes::USAGE if t.flags.contains(paygo_ledger::TransferFlags::POST_PENDING) => {
            let source = t.pending_id.and_then(source_of);
            source.is_some_and(|s| s == own || is_lot(s)).then(|| {
                entry(
                    EntryKind::Charge {
                        hold: HoldId(t.user_data),
                    },
                    -t.amount.get(),
                )
            })
        }
        _ => None,
    }
}

/// Where billing state lives: the seam that the embedded store and shared stores (a
/// database that several gateway replicas write) implement, with the same rules.
///
/// - `submit` applies commands in order and answers one [`Reply`] each, **only once they
///   are durable**. Commands with ids are idempotent: a retry (the same id and body)
///   answers the first reply and changes nothing, on any replica; so after
///   [`BillingError::Unavailable`] a caller retries with the same ids.
/// - A hold succeeds only if the balance covers it at that instant, across every user of
///   the store; a capture never charges more than its hold; an auto top-up request is
///   emitted once (see [`crate::AutoTopUp`]).
/// - The store owns its clock: command times come from it (the embedded store's clock, a
///   database's `now()`), never from the caller.
///
/// Futures are `Send` (for tokio and other work-stealing executors) and must not block
/// the thread that polls them on I/O.
///
/// The contract is written down as a suite of cases any implementation runs
/// (`paygo_billing::contract::run_all`, feature `contract`).
pub trait BillingStore: Send + Sync {
    /// Applies `commands` in order; one reply each, in the same order.
    ///
    /// # Errors
    ///
    /// [`BillingError::BatchTooLarge`] beyond the store's batch limit (nothing applied);
    /// [`BillingError::Unavailable`] when the store failed (unknown whether applied: retry
    /// with the same ids).
    fn submit(&self, commands: Vec<Command>) -> impl Future<Output = Result<Vec<Reply>, BillingError>> + Send;

    /// The customer's balance now.
    ///
    /// # Errors
    ///
    /// [`BillingError::UnknownCustomer`]; [`BillingError::Unavailable`].
    fn balance(&self, customer: CustomerId) -> impl Future<Output = Result<Balance, BillingError>> + Send;

    /// A page of the customer's history, newest first.
    ///
    /// # Errors
    ///
    /// [`BillingError::UnknownCustomer`]; [`BillingError::PageLimit`];
    /// [`BillingError::Unavailable`].
    fn history(
        &self,
        customer: CustomerId,
        query: HistoryQuery,
    ) -> impl Future<Output = Result<HistoryPage, BillingError>> + Send;

    /// The auto top-up requests waiting for their payment's outcome, oldest first: what a
    /// service drives (charges, then reports with [`Command::ReportPayment`]), also after a
    /// restart.
    ///
    /// # Errors
    ///
    /// [`BillingError::Unavailable`].
    fn outstanding_requests(&self) -> impl Future<Output = Result<Vec<TopUpRequest>, BillingError>> + Send;

    /// The customer's auto top-up as a billing portal shows it: the rule, whether it
    /// switched itself off after declined payments (and why), the declines in a row, the
    /// request waiting for its payment, the backoff, and what the month has requested.
    ///
    /// # Errors
    ///
    /// [`BillingError::UnknownCustomer`]; [`BillingError::Unavailable`].
    fn auto_top_up(&self, customer: CustomerId) -> impl Future<Output = Result<AutoTopUpStatus, BillingError>> + Send;
}

/// [`Billing::auto_top_up`] with an unknown customer as [`BillingError::UnknownCustomer`].
///
/// # Errors
///
/// [`BillingError::UnknownCustomer`].
pub fn auto_top_up_of(billing: &Billing, customer: CustomerId) -> Result<AutoTopUpStatus, BillingError> {
    billing
        .auto_top_up(customer)
        .map_err(|_| BillingError::UnknownCustomer { customer })
}
