//! The result of each event, and the order in which the checks that produce them run.

use serde::{Deserialize, Serialize};

/// The result of one event of a batch. Every event gets exactly one.
///
/// The checks run in the order of the variants below (see `docs/ledger.md`), except the
/// window results at the end, whose place their docs give: an event that breaks several
/// rules reports the first. Results from [`EventResult::DebitAccountNotFound`] to
/// [`EventResult::ExceedsDebits`] depend on the ledger's state; an event that fails with one of them is remembered, and
/// a retry with the same id answers [`EventResult::AlreadyFailed`], so that a retry never
/// flips an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventResult {
    /// Applied.
    #[error("ok")]
    Ok,
    /// Another event of its linked chain failed, so this one was not applied.
    #[error("linked event failed: another event of the chain failed")]
    LinkedEventFailed,
    /// The batch ends inside a linked chain (its last event is linked).
    #[error("linked event chain open: the last event of a batch must not be linked")]
    LinkedEventChainOpen,
    /// Id 0.
    #[error("id must not be zero")]
    IdMustNotBeZero,
    /// Id `u128::MAX`.
    #[error("id must not be u128::MAX, which is reserved")]
    IdMustNotBeIntMax,
    /// A flag bit that has no meaning.
    #[error("reserved flag: a flag bit that is not defined is set")]
    ReservedFlag,
    /// Flags that exclude each other (pending with post, post with void, both balance
    /// limits on one account).
    #[error("flags are mutually exclusive")]
    FlagsAreMutuallyExclusive,
    /// A transfer without a debit account.
    #[error("debit account id must not be zero")]
    DebitAccountIdMustNotBeZero,
    /// A transfer without a credit account.
    #[error("credit account id must not be zero")]
    CreditAccountIdMustNotBeZero,
    /// A transfer from an account to itself.
    #[error("accounts must be different")]
    AccountsMustBeDifferent,
    /// A transfer that is neither post nor void names a pending transfer.
    #[error("pending id must be none: only a post or void names a pending transfer")]
    PendingIdMustBeNone,
    /// A post or void without a pending transfer.
    #[error("pending id must be set for a post or void")]
    PendingIdMustBeSet,
    /// A post or void that names itself.
    #[error("pending id must be different from the transfer's own id")]
    PendingIdMustBeDifferent,
    /// A timeout on a transfer that is not pending.
    #[error("timeout is reserved for pending transfers")]
    TimeoutReservedForPendingTransfer,
    /// An amount of zero or less where a positive one is needed.
    #[error("amount must be positive")]
    AmountMustBePositive,
    /// The id exists with the same body: the retry of an applied event.
    #[error("exists: applied before with the same body")]
    Exists,
    /// The id exists with other flags.
    #[error("exists with different flags")]
    ExistsWithDifferentFlags,
    /// The id exists with another debit account.
    #[error("exists with different debit account id")]
    ExistsWithDifferentDebitAccountId,
    /// The id exists with another credit account.
    #[error("exists with different credit account id")]
    ExistsWithDifferentCreditAccountId,
    /// The id exists with another amount.
    #[error("exists with different amount")]
    ExistsWithDifferentAmount,
    /// The id exists with another pending id.
    #[error("exists with different pending id")]
    ExistsWithDifferentPendingId,
    /// The id exists with another timeout.
    #[error("exists with different timeout")]
    ExistsWithDifferentTimeout,
    /// The id exists with another code.
    #[error("exists with different code")]
    ExistsWithDifferentCode,
    /// The id exists with other user data.
    #[error("exists with different user data")]
    ExistsWithDifferentUserData,
    /// The id failed before with a result that depends on the ledger's state; it stays
    /// failed, whatever the ledger's state is now.
    #[error("already failed: this id failed before and a retry cannot change that")]
    AlreadyFailed,
    /// The debit account does not exist.
    #[error("debit account not found")]
    DebitAccountNotFound,
    /// The credit account does not exist.
    #[error("credit account not found")]
    CreditAccountNotFound,
    /// The account to close does not exist.
    #[error("account not found")]
    AccountNotFound,
    /// The account is closed already.
    #[error("account already closed")]
    AccountAlreadyClosed,
    /// The pending transfer named does not exist.
    #[error("pending transfer not found")]
    PendingTransferNotFound,
    /// The transfer named is not a pending one.
    #[error("pending transfer not pending: the transfer named was not created as pending")]
    PendingTransferNotPending,
    /// The post or void names another debit account than the pending transfer.
    #[error("pending transfer has a different debit account id")]
    PendingTransferHasDifferentDebitAccountId,
    /// The post or void names another credit account than the pending transfer.
    #[error("pending transfer has a different credit account id")]
    PendingTransferHasDifferentCreditAccountId,
    /// The pending transfer was posted already.
    #[error("pending transfer already posted")]
    PendingTransferAlreadyPosted,
    /// The pending transfer was voided already.
    #[error("pending transfer already voided")]
    PendingTransferAlreadyVoided,
    /// The pending transfer expired at its timeout.
    #[error("pending transfer expired")]
    PendingTransferExpired,
    /// A post of more than the pending transfer holds.
    #[error("exceeds pending transfer amount: a post can take at most what was held")]
    ExceedsPendingTransferAmount,
    /// A void whose amount is neither zero nor the pending amount.
    #[error("pending transfer has a different amount")]
    PendingTransferHasDifferentAmount,
    /// The debit account is closed.
    #[error("debit account closed")]
    DebitAccountClosed,
    /// The credit account is closed.
    #[error("credit account closed")]
    CreditAccountClosed,
    /// Pending debits would pass 2^127.
    #[error("overflows debits pending")]
    OverflowsDebitsPending,
    /// Pending credits would pass 2^127.
    #[error("overflows credits pending")]
    OverflowsCreditsPending,
    /// Posted debits would pass 2^127.
    #[error("overflows debits posted")]
    OverflowsDebitsPosted,
    /// Posted credits would pass 2^127.
    #[error("overflows credits posted")]
    OverflowsCreditsPosted,
    /// The timeout would pass the end of time.
    #[error("overflows timeout")]
    OverflowsTimeout,
    /// The debit account would owe more than it holds (debits must not exceed credits):
    /// not enough balance. The API answers 403.
    #[error("exceeds credits: not enough balance")]
    ExceedsCredits,
    /// The credit account would receive more than its debits (credits must not exceed
    /// debits).
    #[error("exceeds debits")]
    ExceedsDebits,
    /// With an [`crate::IdWindow`]: the transfer's id is older than the window, so the
    /// ledger no longer knows whether a transfer with it was applied; nothing is applied.
    /// Checked after [`EventResult::AmountMustBePositive`] and before
    /// [`EventResult::Exists`]. A client that retries this late must ask (by the
    /// transfer's accounts or its own records) instead of retrying.
    #[error(
        "id is older than the idempotency window: a transfer with it may have been applied and forgotten; nothing was applied"
    )]
    IdOlderThanWindow,
    /// With an [`crate::IdWindow`]: the id's time is further ahead of the event's time
    /// than the window allows (a client clock that runs ahead, or not a time-ordered id).
    /// Checked right after [`EventResult::IdOlderThanWindow`].
    #[error("id is ahead of the idempotency window: its time is later than the event's time plus the allowed skew")]
    IdAheadOfWindow,
    /// With an [`crate::IdWindow`]: a post or void names a pending transfer whose id is
    /// older than the window and which is not an open hold (open holds are always kept):
    /// it was posted, voided or expired long ago, or never existed. Checked for a new
    /// transfer (after [`EventResult::AlreadyFailed`]), before its pending transfer is
    /// looked up; a retry of a post that was applied still answers
    /// [`EventResult::Exists`] while the post's own id is inside the window.
    #[error("pending id is older than the idempotency window and names no open hold")]
    PendingIdOlderThanWindow,
}

impl EventResult {
    /// Every result, in precedence order, except the three window results at the end
    /// (added later; their place in the order is in their docs). A result's position
    /// here is its code in the journal and snapshots.
    pub const ALL: [EventResult; 50] = [
        EventResult::Ok,
        EventResult::LinkedEventFailed,
        EventResult::LinkedEventChainOpen,
        EventResult::IdMustNotBeZero,
        EventResult::IdMustNotBeIntMax,
        EventResult::ReservedFlag,
        EventResult::FlagsAreMutuallyExclusive,
        EventResult::DebitAccountIdMustNotBeZero,
        EventResult::CreditAccountIdMustNotBeZero,
        EventResult::AccountsMustBeDifferent,
        EventResult::PendingIdMustBeNone,
        EventResult::PendingIdMustBeSet,
        EventResult::PendingIdMustBeDifferent,
        EventResult::TimeoutReservedForPendingTransfer,
        EventResult::AmountMustBePositive,
        EventResult::Exists,
        EventResult::ExistsWithDifferentFlags,
        EventResult::ExistsWithDifferentDebitAccountId,
        EventResult::ExistsWithDifferentCreditAccountId,
        EventResult::ExistsWithDifferentAmount,
        EventResult::ExistsWithDifferentPendingId,
        EventResult::ExistsWithDifferentTimeout,
        EventResult::ExistsWithDifferentCode,
        EventResult::ExistsWithDifferentUserData,
        EventResult::AlreadyFailed,
        EventResult::DebitAccountNotFound,
        EventResult::CreditAccountNotFound,
        EventResult::AccountNotFound,
        EventResult::AccountAlreadyClosed,
        EventResult::PendingTransferNotFound,
        EventResult::PendingTransferNotPending,
        EventResult::PendingTransferHasDifferentDebitAccountId,
        EventResult::PendingTransferHasDifferentCreditAccountId,
        EventResult::PendingTransferAlreadyPosted,
        EventResult::PendingTransferAlreadyVoided,
        EventResult::PendingTransferExpired,
        EventResult::ExceedsPendingTransferAmount,
        EventResult::PendingTransferHasDifferentAmount,
        EventResult::DebitAccountClosed,
        EventResult::CreditAccountClosed,
        EventResult::OverflowsDebitsPending,
        EventResult::OverflowsCreditsPending,
        EventResult::OverflowsDebitsPosted,
        EventResult::OverflowsCreditsPosted,
        EventResult::OverflowsTimeout,
        EventResult::ExceedsCredits,
        EventResult::ExceedsDebits,
        EventResult::IdOlderThanWindow,
        EventResult::IdAheadOfWindow,
        EventResult::PendingIdOlderThanWindow,
    ];

    /// Whether the event was applied.
    pub const fn is_ok(self) -> bool {
        matches!(self, EventResult::Ok)
    }

    /// Whether this result depends on the ledger's state, so that the id is remembered as
    /// failed.
    pub const fn is_transient(self) -> bool {
        (self as u8) >= (EventResult::DebitAccountNotFound as u8) && (self as u8) <= (EventResult::ExceedsDebits as u8)
    }
}
