//! The operations of the billing layer, their receipts and their refusals.

use paygo_credits::{Credits, ExactCredits, Money};
use paygo_ledger::{AccountId, EventResult};
use serde::{Deserialize, Serialize};

use crate::auto::{AutoTopUp, AutoTopUpRule};
use crate::ids::{CustomerId, GrantId, HoldId, RequestId, ReversalId, TopUpId};
use crate::payment::{PaymentMethod, PaymentOutcome, PaymentRef};

/// One billing operation. Operations with an id are idempotent: a retry with the same
/// body gets the first reply again (success or refusal), a retry with another body is
/// refused, so a retry never charges twice and never flips an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Opens a customer account with 0 credits (no free plan).
    OpenAccount {
        /// The customer id, `1 ..= 2^127 - 1`.
        customer: CustomerId,
    },
    /// Buys credits.
    TopUp {
        /// The top-up's id.
        id: TopUpId,
        /// The customer.
        customer: CustomerId,
        /// What was paid, in USD.
        amount: Money,
        /// How.
        method: PaymentMethod,
    },
    /// Holds credits before a call.
    Hold {
        /// The hold's id.
        id: HoldId,
        /// The customer.
        customer: CustomerId,
        /// The most the call can cost.
        amount: Credits,
        /// When a forgotten hold expires, in milliseconds.
        timeout_ms: u64,
    },
    /// Charges the actual cost of a call, at most what was held; the rest is released.
    Capture {
        /// The hold.
        hold: HoldId,
        /// The actual cost.
        amount: Credits,
    },
    /// Charges a held call's exact cost through the customer's remainder carrier: the
    /// whole credits owed are the carrier's (within one credit of the cost, and within
    /// half a credit of the exact total over all the customer's charges).
    ///
    /// The call ran and cannot be un-run, so a cost above the hold (the upstream used more
    /// than the request allowed) is **not refused**: the whole hold is captured, never
    /// more (no overdraft), and the credits owed beyond it are the receipt's `shortfall`,
    /// added to the customer's uncollected total ([`Billing::uncollected`](crate::Billing::uncollected)) — recorded,
    /// never dropped. The carrier moves on as if the whole cost was owed, so that for every
    /// customer `Σ cost = Σ charged + uncollected + carrier remainder` exactly. The carrier
    /// and the uncollected total change only when the capture succeeds (a hold that expired
    /// first is [`Refusal::HoldExpired`] and changes neither).
    CaptureCost {
        /// The hold.
        hold: HoldId,
        /// The exact cost, in credits.
        cost: ExactCredits,
    },
    /// Releases a hold: the call failed and costs nothing.
    Release {
        /// The hold.
        hold: HoldId,
    },
    /// Grants bonus credits that expire (only when bonuses are enabled).
    GrantBonus {
        /// The grant's id.
        id: GrantId,
        /// The customer.
        customer: CustomerId,
        /// The credits.
        amount: Credits,
        /// When what is left of them expires.
        expires_at_ns: u64,
    },
    /// Sets or removes a customer's auto top-up rule.
    SetAutoTopUp {
        /// The customer.
        customer: CustomerId,
        /// The rule, or none.
        rule: Option<AutoTopUpRule>,
    },
    /// Reports the outcome of an auto top-up payment.
    ReportPayment {
        /// The request.
        request: RequestId,
        /// What happened.
        outcome: PaymentOutcome,
    },
    /// Reverses a payment (a chargeback, or a dispute lost): the provider took `amount`
    /// back, so the credits it bought are clawed back. What the customer's paid balance has
    /// available goes back to funding; the rest becomes the customer's **arrears**
    /// ([`Billing::arrears`](crate::Billing::arrears)), owed to funding through
    /// [`RECEIVABLES`](crate::RECEIVABLES). The balance may then be negative, and holds are
    /// refused ([`Refusal::AccountInArrears`]) until the arrears are settled, by a later
    /// top-up first of all. Bonus lots are not clawed back. Idempotent by `id`, like a
    /// top-up. The payment need not be known to the billing layer any more (a chargeback
    /// can come months later): `payment` is recorded on the ledger's transfers for audit.
    ReversePayment {
        /// The reversal's id (the provider's id of the dispute).
        id: ReversalId,
        /// The customer.
        customer: CustomerId,
        /// What the provider took back, in USD, whole cents, positive.
        amount: Money,
        /// The payment reversed.
        payment: PaymentRef,
    },
    /// Keeps an open hold alive for `timeout_ms` from now (a long stream): its pending
    /// transfers are voided and held again, for the same amounts from the same sources,
    /// with the new timeout, in one linked chain, so the credits never leave the hold.
    /// Repeating it extends again from its own time, which is harmless; a captured,
    /// released or expired hold cannot be extended.
    ExtendHold {
        /// The hold.
        hold: HoldId,
        /// The new timeout from now, in milliseconds (1 to the configured maximum).
        timeout_ms: u64,
    },
}

/// A successful operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Receipt {
    /// The account was opened.
    Opened,
    /// Credits were bought.
    ToppedUp {
        /// Credits added.
        credits: Credits,
    },
    /// Credits are held.
    Held {
        /// How much.
        amount: Credits,
    },
    /// A hold was captured.
    Captured {
        /// Credits charged.
        charged: Credits,
        /// Credits released.
        released: Credits,
        /// Credits the call cost beyond what was held, and so beyond what was charged:
        /// zero, except for a [`Command::CaptureCost`] above its hold. Recorded in the
        /// customer's uncollected total ([`Billing::uncollected`](crate::Billing::uncollected)).
        shortfall: Credits,
        /// What the auto top-up rule decided.
        auto_top_up: AutoTopUp,
    },
    /// A hold was released (or had expired).
    Released,
    /// Bonus credits were granted as a lot.
    BonusGranted {
        /// The lot's account.
        lot: AccountId,
    },
    /// The auto top-up rule was set.
    RuleSet,
    /// A payment's outcome was recorded.
    PaymentRecorded {
        /// Credits added (zero when declined).
        credits: Credits,
        /// After a decline: when the rule may ask again.
        retry_after_ns: Option<u64>,
        /// Whether this decline switched the rule off (its `disable_after_declines`-th in a
        /// row): a caller notifies the customer. See [`Billing::auto_top_up`](crate::Billing::auto_top_up).
        rule_switched_off: bool,
    },
    /// A hold was extended ([`Command::ExtendHold`]).
    HoldExtended {
        /// When it now expires, in nanoseconds of the billing layer's clock (the command's
        /// time plus the timeout; the ledger's stamps may put it a few nanoseconds later).
        until_ns: u64,
    },
    /// A payment was reversed ([`Command::ReversePayment`]): `credits = recovered + arrears`.
    Reversed {
        /// The credits the reversed amount bought (as a top-up of it would).
        credits: Credits,
        /// The part taken back from the customer's paid balance to funding.
        recovered: Credits,
        /// The part the balance did not cover, added to the customer's arrears.
        arrears: Credits,
    },
}

/// A refused operation, with the reason. Nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Refusal {
    /// Not enough credits (the API answers 403).
    #[error("insufficient credits: the balance does not cover the amount")]
    InsufficientCredits,
    /// A payment of the customer was reversed and the balance did not cover it: service is
    /// refused until a top-up settles the arrears (the API answers 402, payment required).
    #[error("account in arrears: {arrears} credits are owed after a payment reversal; a top-up settles them")]
    AccountInArrears {
        /// The credits owed.
        arrears: Credits,
    },
    /// No account for this customer.
    #[error("unknown account: open it first")]
    UnknownAccount,
    /// The account exists already.
    #[error("account exists already")]
    AccountExists,
    /// A customer id outside `1 ..= 2^127 - 1`.
    #[error("invalid customer id: expected 1 to 2^127 - 1")]
    InvalidCustomerId,
    /// A payment method that is not accepted.
    #[error("payment method refused: {0}")]
    PaymentMethodRefused(MethodRefusal),
    /// An amount that is not allowed: the rule it broke.
    #[error("invalid amount: {0}")]
    InvalidAmount(AmountRule),
    /// A hold timeout of 0 or above the maximum.
    #[error("invalid hold timeout: expected 1 ms to the configured maximum")]
    InvalidTimeout,
    /// No hold with this id.
    #[error("unknown hold")]
    UnknownHold,
    /// The hold expired before it was captured.
    #[error("hold expired: the call took longer than the hold's timeout")]
    HoldExpired,
    /// The hold was released already.
    #[error("hold released already")]
    HoldReleased,
    /// The hold was captured already (with another amount).
    #[error("hold captured already")]
    HoldCaptured,
    /// A capture above what was held: never an overdraft.
    #[error("capture exceeds hold: {requested} requested, {held} held")]
    CaptureExceedsHold {
        /// Credits held.
        held: Credits,
        /// Credits asked for.
        requested: Credits,
    },
    /// The id was used before for another operation or body.
    #[error("id reused with a different operation or body")]
    IdReused,
    /// Bonus grants are paused.
    #[error("bonus credits are paused")]
    BonusPaused,
    /// No outstanding auto top-up request with this id.
    #[error("unknown or settled payment request")]
    UnknownRequest,
    /// The ledger refused a transfer for a reason the billing layer does not expect.
    #[error("ledger refused the operation: {0}")]
    Ledger(EventResult),
    /// With an idempotency window ([`BillingConfig::id_window`](crate::BillingConfig::id_window)): the command's id (a
    /// top-up, hold, grant or payment request id, or the hold a capture or release names)
    /// is older than the window, so the billing layer no longer knows its first reply;
    /// nothing was done. A hold still open is never forgotten.
    #[error("id is older than the idempotency window: its first reply is forgotten; nothing was done")]
    IdOlderThanWindow,
    /// With an idempotency window: the id's time is later than the command's time plus
    /// the allowed skew (a client clock ahead, or an id that is not time-ordered).
    #[error("id is ahead of the idempotency window: its time is later than now plus the allowed skew")]
    IdAheadOfWindow,
    /// The billing layer's own id counters (transfers, lots, payment requests) are within
    /// 2^40 of 2^64, the most a store holds: no command is applied any more. A writer that
    /// makes a billion ids a second reaches it after five centuries; a store that claims to
    /// be there was made by hand.
    #[error("the billing layer's id counters are exhausted: no command can be applied")]
    CountersExhausted,
}

/// The reply to a [`Command`].
pub type Reply = Result<Receipt, Refusal>;

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

/// The rule an amount broke (each message says what was expected).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AmountRule {
    /// A top-up in another currency.
    #[error("top-ups are in USD")]
    TopUpNotUsd,
    /// A top-up with fractions of a cent.
    #[error("a top-up is whole cents")]
    TopUpNotWholeCents,
    /// A top-up whose credits do not fit the credit range.
    #[error("a top-up must fit the credit range")]
    TopUpOutOfRange,
    /// A top-up of zero or less.
    #[error("a top-up must be positive")]
    TopUpNotPositive,
    /// A hold of zero or less.
    #[error("a hold must be positive")]
    HoldNotPositive,
    /// A negative capture.
    #[error("a capture must not be negative")]
    CaptureNegative,
    /// A bonus of zero or less.
    #[error("a bonus must be positive")]
    BonusNotPositive,
    /// A bonus that expires at or before its grant.
    #[error("a bonus must expire in the future")]
    BonusExpiryNotFuture,
    /// An auto top-up threshold below zero.
    #[error("the threshold must not be negative")]
    ThresholdNegative,
    /// An auto top-up amount that is not a positive USD amount.
    #[error("an auto top-up is a positive USD amount")]
    AutoTopUpNotPositiveUsd,
    /// A refill-to balance at or below the threshold.
    #[error("the target balance must be above the threshold")]
    TargetNotAboveThreshold,
    /// An auto top-up window that allows no request.
    #[error("the request window must allow at least one request")]
    RequestWindowEmpty,
    /// A negative exact cost.
    #[error("a cost must not be negative")]
    CostNegative,
    /// An exact cost beyond the credit range.
    #[error("a cost must fit the credit range")]
    CostOutOfRange,
    /// A shortfall that would take the uncollected total beyond the credit range.
    #[error("the uncollected total must fit the credit range")]
    UncollectedOutOfRange,
    /// A reversal in another currency.
    #[error("a reversal is in USD")]
    ReversalNotUsd,
    /// A reversal with fractions of a cent.
    #[error("a reversal is whole cents")]
    ReversalNotWholeCents,
    /// A reversal whose credits do not fit the credit range.
    #[error("a reversal must fit the credit range")]
    ReversalOutOfRange,
    /// A reversal of zero or less.
    #[error("a reversal must be positive")]
    ReversalNotPositive,
    /// A reversal that would take the customer's arrears beyond the credit range.
    #[error("the arrears must fit the credit range")]
    ArrearsOutOfRange,
    /// A monthly cap that is not a positive USD amount in whole cents.
    #[error("a monthly cap is a positive USD amount in whole cents")]
    MonthlyCapNotPositiveUsd,
    /// A fixed auto top-up amount above the monthly cap: no request could ever be made.
    #[error("the fixed auto top-up amount must not exceed the monthly cap")]
    AutoTopUpAboveMonthlyCap,
    /// A limit of zero declines in a row.
    #[error("disable_after_declines must be at least 1")]
    DeclineLimitZero,
}

/// Method refusals and amount rules share one byte numbering in the store (the positions
/// of the reason texts that format 4 stored before they were enums; rules added since are
/// appended).
const METHOD_REFUSALS: [MethodRefusal; 2] = [MethodRefusal::PrepaidCard, MethodRefusal::GiftCard];
const AMOUNT_RULES: [AmountRule; 23] = [
    AmountRule::TopUpNotUsd,
    AmountRule::TopUpNotWholeCents,
    AmountRule::TopUpOutOfRange,
    AmountRule::TopUpNotPositive,
    AmountRule::HoldNotPositive,
    AmountRule::CaptureNegative,
    AmountRule::BonusNotPositive,
    AmountRule::BonusExpiryNotFuture,
    AmountRule::ThresholdNegative,
    AmountRule::AutoTopUpNotPositiveUsd,
    AmountRule::TargetNotAboveThreshold,
    AmountRule::RequestWindowEmpty,
    AmountRule::CostNegative,
    AmountRule::CostOutOfRange,
    AmountRule::UncollectedOutOfRange,
    AmountRule::ReversalNotUsd,
    AmountRule::ReversalNotWholeCents,
    AmountRule::ReversalOutOfRange,
    AmountRule::ReversalNotPositive,
    AmountRule::ArrearsOutOfRange,
    AmountRule::MonthlyCapNotPositiveUsd,
    AmountRule::AutoTopUpAboveMonthlyCap,
    AmountRule::DeclineLimitZero,
];

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

impl AmountRule {
    /// Its byte in the store (after the method refusals').
    pub(crate) fn code(self) -> u8 {
        // 23 entries: the position always exists, and 2 + 22 fits a byte.
        (METHOD_REFUSALS.len() + AMOUNT_RULES.iter().position(|r| *r == self).unwrap_or(0)) as u8
    }

    /// The rule stored as `code`.
    pub(crate) fn from_code(code: u8) -> Option<AmountRule> {
        usize::from(code)
            .checked_sub(METHOD_REFUSALS.len())
            .and_then(|i| AMOUNT_RULES.get(i))
            .copied()
    }
}
