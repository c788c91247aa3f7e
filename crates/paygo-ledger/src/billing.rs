//! The billing operations of a pay-as-you-go API, as transfers between a documented chart
//! of accounts (`docs/ledger.md`).
//!
//! | account | id | flags | what its balance means |
//! |---|---|---|---|
//! | a customer's balance | the customer id | debits must not exceed credits | credits the customer can spend |
//! | a bonus lot | `LOT_BASE + n` | debits must not exceed credits | what is left of one bonus grant |
//! | top-up funding | [`FUNDING`] | none | minus the credits ever sold |
//! | usage revenue | [`REVENUE`] | none | credits earned by calls |
//! | breakage | [`BREAKAGE`] | none | bonus credits that expired unspent |
//! | promotions | [`PROMOTIONS`] | none | minus the bonus credits ever granted |
//!
//! Credits enter a customer's balance only from funding (a paid top-up) or, as a lot, from
//! promotions; they leave it only to revenue (a captured hold) or, for a lot, to breakage
//! (expiry). No operation moves credits back to funding: top-ups are non-refundable.

use std::collections::{BTreeSet, HashMap, VecDeque};

use paygo_credits::{CreditRate, Credits, Currency, ExactCredits, Money, RemainderCarrier, Rounding};
use serde::{Deserialize, Serialize};

use crate::engine::id_time_ns;
use crate::shared::StateMachine;
use crate::{
    Account, AccountId, Event, EventResult, IdWindow, Ledger, LedgerError, Transfer, TransferFlags, TransferId,
};

/// With a window, the billing layer drops forgotten replies and holds from memory when it
/// holds this many, or twice as many as after the last time, whichever is more.
const COMPACT_MIN: usize = 1 << 14;

/// The top-up funding account: credits sold come from here.
pub const FUNDING: AccountId = AccountId(u128::MAX - 1);
/// The usage revenue account: captured holds go here.
pub const REVENUE: AccountId = AccountId(u128::MAX - 2);
/// The breakage account: expired bonus credits go here.
pub const BREAKAGE: AccountId = AccountId(u128::MAX - 3);
/// The promotions account: bonus credits come from here.
pub const PROMOTIONS: AccountId = AccountId(u128::MAX - 4);
/// Bonus lot accounts are numbered from here; customer ids must be below it.
pub const LOT_BASE: u128 = 1 << 127;

/// Account codes of the chart.
pub mod codes {
    /// A customer's paid balance.
    pub const CUSTOMER: u16 = 1;
    /// A bonus lot.
    pub const LOT: u16 = 2;
    /// Top-up funding.
    pub const FUNDING: u16 = 10;
    /// Usage revenue.
    pub const REVENUE: u16 = 11;
    /// Breakage.
    pub const BREAKAGE: u16 = 12;
    /// Promotions.
    pub const PROMOTIONS: u16 = 13;
    /// Transfer code of a top-up.
    pub const TOP_UP: u16 = 1;
    /// Transfer code of usage (holds, posts and voids).
    pub const USAGE: u16 = 2;
    /// Transfer code of a bonus grant.
    pub const BONUS_GRANT: u16 = 3;
    /// Transfer code of a bonus expiry.
    pub const BONUS_EXPIRY: u16 = 4;
}

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
    pub const fn refusal(self) -> Option<&'static str> {
        match self {
            PaymentMethod::Card(CardKind::Prepaid) => {
                Some("prepaid cards are not accepted: pay with a credit or debit card, PayPal or crypto")
            }
            PaymentMethod::GiftCard => {
                Some("gift cards are not accepted: pay with a credit or debit card, PayPal or crypto")
            }
            _ => None,
        }
    }
}

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
}

/// A request for an auto top-up payment, emitted once while it is outstanding. The payment
/// happens outside; its outcome comes back through [`Command::ReportPayment`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TopUpRequest {
    /// The request's id (what the outcome is reported against).
    pub id: u128,
    /// The customer.
    pub customer: u128,
    /// The amount to charge.
    pub amount: Money,
    /// How.
    pub method: PaymentMethod,
    /// When it was emitted.
    pub at_ns: u64,
}

/// What the auto top-up rule decided after a charge. Every case is reported, so that a
/// rule never stops silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
        request: u128,
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

/// One billing operation. Operations with an id are idempotent: a retry with the same
/// body gets the first reply again (success or refusal), a retry with another body is
/// refused, so a retry never charges twice and never flips an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Opens a customer account with 0 credits (no free plan).
    OpenAccount {
        /// The customer id, `1 ..= 2^127 - 1`.
        customer: u128,
    },
    /// Buys credits.
    TopUp {
        /// The top-up's id.
        id: u128,
        /// The customer.
        customer: u128,
        /// What was paid, in USD.
        amount: Money,
        /// How.
        method: PaymentMethod,
    },
    /// Holds credits before a call.
    Hold {
        /// The hold's id.
        id: u128,
        /// The customer.
        customer: u128,
        /// The most the call can cost.
        amount: Credits,
        /// When a forgotten hold expires, in milliseconds.
        timeout_ms: u64,
    },
    /// Charges the actual cost of a call, at most what was held; the rest is released.
    Capture {
        /// The hold.
        hold: u128,
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
    /// added to the customer's uncollected total ([`Billing::uncollected`]) — recorded,
    /// never dropped. The carrier moves on as if the whole cost was owed, so that for every
    /// customer `Σ cost = Σ charged + uncollected + carrier remainder` exactly. The carrier
    /// and the uncollected total change only when the capture succeeds (a hold that expired
    /// first is [`Refusal::HoldExpired`] and changes neither).
    CaptureCost {
        /// The hold.
        hold: u128,
        /// The exact cost, in credits.
        cost: ExactCredits,
    },
    /// Releases a hold: the call failed and costs nothing.
    Release {
        /// The hold.
        hold: u128,
    },
    /// Grants bonus credits that expire (only when bonuses are enabled).
    GrantBonus {
        /// The grant's id.
        id: u128,
        /// The customer.
        customer: u128,
        /// The credits.
        amount: Credits,
        /// When what is left of them expires.
        expires_at_ns: u64,
    },
    /// Sets or removes a customer's auto top-up rule.
    SetAutoTopUp {
        /// The customer.
        customer: u128,
        /// The rule, or none.
        rule: Option<AutoTopUpRule>,
    },
    /// Reports the outcome of an auto top-up payment.
    ReportPayment {
        /// The request.
        request: u128,
        /// What happened.
        outcome: PaymentOutcome,
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
        /// customer's uncollected total ([`Billing::uncollected`]).
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
    PaymentMethodRefused(&'static str),
    /// An amount that is not allowed.
    #[error("invalid amount: {0}")]
    InvalidAmount(&'static str),
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
    /// With an idempotency window ([`BillingConfig::id_window`]): the command's id (a
    /// top-up, hold, grant or payment request id, or the hold a capture or release names)
    /// is older than the window, so the billing layer no longer knows its first reply;
    /// nothing was done. A hold still open is never forgotten.
    #[error("id is older than the idempotency window: its first reply is forgotten; nothing was done")]
    IdOlderThanWindow,
    /// With an idempotency window: the id's time is later than the command's time plus
    /// the allowed skew (a client clock ahead, or an id that is not time-ordered).
    #[error("id is ahead of the idempotency window: its time is later than now plus the allowed skew")]
    IdAheadOfWindow,
}

/// The reply to a [`Command`].
pub type Reply = Result<Receipt, Refusal>;

/// Settings of the billing layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingConfig {
    /// USD to credits (default 2,000,000 per dollar).
    pub credit_rate: CreditRate,
    /// Whether bonus grants are allowed (off: they are paused).
    pub bonus_enabled: bool,
    /// The longest hold timeout, in milliseconds.
    pub hold_timeout_max_ms: u64,
    /// The idempotency window (none by default: every reply is kept for ever). With one,
    /// command ids must be time-ordered ([`TransferId::from_time`]: `UUIDv7` or `ULID` read as
    /// a `u128`) and times nanoseconds since the Unix epoch; replies and closed holds
    /// older than the window leave memory, a retry that late is refused with
    /// [`Refusal::IdOlderThanWindow`] (never applied twice), and the ledger underneath gets
    /// the same window. Used when the billing layer is created; a durable store keeps the
    /// window it was created with.
    pub id_window: Option<IdWindow>,
}

impl Default for BillingConfig {
    fn default() -> BillingConfig {
        BillingConfig {
            credit_rate: CreditRate::default(),
            bonus_enabled: false,
            hold_timeout_max_ms: 3_600_000,
            id_window: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lot {
    account: AccountId,
    expires_at_ns: u64,
    granted_at_ns: u64,
}

#[derive(Debug, Clone, Default)]
struct AutoState {
    rule: Option<AutoTopUpRule>,
    outstanding: Option<u128>,
    recent_ns: VecDeque<u64>,
    declines: u32,
    blocked_until_ns: u64,
}

#[derive(Debug, Clone, Default)]
struct CustomerState {
    lots: Vec<Lot>,
    auto: AutoState,
    /// The sub-credit remainder of the customer's charges by exact cost.
    carrier: RemainderCarrier,
    /// Credits owed by exact cost beyond the holds, never charged (see
    /// [`Command::CaptureCost`]).
    uncollected: Credits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HoldStatus {
    Open,
    Captured,
    Released,
}

#[derive(Debug, Clone)]
struct Hold {
    customer: u128,
    amount: Credits,
    /// Pending transfer, source account, amount held from it: in spend order.
    parts: Vec<(TransferId, AccountId, Credits)>,
    status: HoldStatus,
    reply: Option<(Command, Reply)>,
}

/// The billing layer: a [`Ledger`] and the state that the operations need (lots, holds,
/// auto top-up rules, replies for idempotency). Deterministic: the same commands at the
/// same times give the same state and replies, so it can be journaled and replayed.
#[derive(Debug, Clone)]
pub struct Billing {
    ledger: Ledger,
    config: BillingConfig,
    customers: HashMap<u128, CustomerState>,
    holds: HashMap<u128, Hold>,
    replies: HashMap<(u8, u128), (Command, Reply)>,
    requests: HashMap<u128, TopUpRequest>,
    lot_expiries: BTreeSet<(u64, u128)>,
    expired_lots: BTreeSet<u128>,
    lot_owner: HashMap<u128, u128>,
    outbox: Vec<TopUpRequest>,
    next_transfer: u128,
    next_lot: u128,
    next_request: u128,
    /// With a window: compact when `replies` and `holds` hold this many together.
    compact_at_len: usize,
}

impl Billing {
    /// A billing layer with the system accounts of the chart created.
    pub fn new(config: BillingConfig) -> Billing {
        let mut ledger = match config.id_window {
            Some(window) => Ledger::new().with_id_window(window),
            None => Ledger::new(),
        };
        let system = [
            (FUNDING, codes::FUNDING),
            (REVENUE, codes::REVENUE),
            (BREAKAGE, codes::BREAKAGE),
            (PROMOTIONS, codes::PROMOTIONS),
        ]
        .map(|(id, code)| Event::CreateAccount(Account::new(id).with_code(code)));
        // Four events at time 0 on an empty ledger: below the batch limit, valid ids.
        let _ = ledger.apply(0, &system);
        Billing {
            ledger,
            config,
            customers: HashMap::new(),
            holds: HashMap::new(),
            replies: HashMap::new(),
            requests: HashMap::new(),
            lot_expiries: BTreeSet::new(),
            expired_lots: BTreeSet::new(),
            lot_owner: HashMap::new(),
            outbox: Vec::new(),
            next_transfer: 1,
            next_lot: 1,
            next_request: 1,
            compact_at_len: COMPACT_MIN,
        }
    }

    /// The ledger underneath, to read.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Gives the ledger underneath memory for its next transfers (see [`crate::Spare`]).
    pub(crate) fn add_ledger_spare(&mut self, spare: crate::Spare) {
        self.ledger.add_spare(spare);
    }

    /// The settings.
    pub fn config(&self) -> &BillingConfig {
        &self.config
    }

    /// Takes the auto top-up requests emitted since the last call.
    pub fn drain_requests(&mut self) -> Vec<TopUpRequest> {
        std::mem::take(&mut self.outbox)
    }

    /// The auto top-up requests still waiting for their payment's outcome, oldest first:
    /// what a service re-drives after a restart (a durable handle gives `&Billing` through
    /// [`crate::SharedLedger::read`]).
    pub fn outstanding_requests(&self) -> Vec<TopUpRequest> {
        let mut outstanding: Vec<TopUpRequest> = self.requests.values().copied().collect();
        outstanding.sort_unstable_by_key(|q| q.id);
        outstanding
    }

    /// After recovery, the outbox holds the requests still waiting for their payment's
    /// outcome (replay refilled it with every request ever emitted).
    pub(crate) fn keep_outstanding_requests(&mut self) {
        self.outbox = self.outstanding_requests();
    }

    /// The credits a customer can spend now: the paid balance and the unexpired bonus lots,
    /// less what is held.
    ///
    /// # Errors
    ///
    /// [`Refusal::UnknownAccount`].
    pub fn balance(&self, customer: u128) -> Result<Credits, Refusal> {
        let state = self.customers.get(&customer).ok_or(Refusal::UnknownAccount)?;
        let mut total = self.available(AccountId(customer));
        for lot in &state.lots {
            total = total.saturating_add(self.available(lot.account));
        }
        Ok(Credits::new(i64::try_from(total).unwrap_or(i64::MAX)))
    }

    /// The paid part of a customer's balance (without bonus lots), less what is held.
    ///
    /// # Errors
    ///
    /// [`Refusal::UnknownAccount`].
    pub fn paid_balance(&self, customer: u128) -> Result<Credits, Refusal> {
        if !self.customers.contains_key(&customer) {
            return Err(Refusal::UnknownAccount);
        }
        Ok(Credits::new(
            i64::try_from(self.available(AccountId(customer))).unwrap_or(i64::MAX),
        ))
    }

    fn available(&self, account: AccountId) -> i128 {
        self.ledger.account(account).map_or(0, |a| a.available())
    }

    /// Applies one command at `now_ns`. Lots and holds whose time has passed expire first.
    ///
    /// # Errors
    ///
    /// The [`Refusal`] of the command; nothing is changed then.
    pub fn execute(&mut self, now_ns: u64, command: &Command) -> Reply {
        self.sweep(now_ns);
        self.window_check(now_ns, command)?;
        match *command {
            Command::OpenAccount { customer } => self.open(now_ns, customer),
            Command::TopUp {
                id,
                customer,
                amount,
                method,
            } => self.once(1, id, command, |b| b.top_up_now(now_ns, id, customer, amount, method)),
            Command::Hold {
                id,
                customer,
                amount,
                timeout_ms,
            } => self.once(2, id, command, |b| b.hold_now(now_ns, id, customer, amount, timeout_ms)),
            Command::Capture { hold, amount } => self.capture_now(now_ns, command, hold, amount, Credits::ZERO),
            Command::CaptureCost { hold, cost } => self.capture_cost_now(now_ns, command, hold, cost),
            Command::Release { hold } => self.release_now(now_ns, command, hold),
            Command::GrantBonus {
                id,
                customer,
                amount,
                expires_at_ns,
            } => self.once(3, id, command, |b| b.grant_now(now_ns, customer, amount, expires_at_ns)),
            Command::SetAutoTopUp { customer, rule } => self.set_rule(customer, rule),
            Command::ReportPayment { request, outcome } => {
                self.once(4, request, command, |b| b.report_now(now_ns, request, outcome))
            }
        }
    }

    /// Opens a customer account (see [`Command::OpenAccount`]).
    ///
    /// # Errors
    ///
    /// The [`Refusal`] of the command.
    pub fn open_account(&mut self, now_ns: u64, customer: u128) -> Reply {
        self.execute(now_ns, &Command::OpenAccount { customer })
    }

    /// Buys credits (see [`Command::TopUp`]).
    ///
    /// # Errors
    ///
    /// The [`Refusal`] of the command.
    pub fn top_up(&mut self, now_ns: u64, id: u128, customer: u128, amount: Money, method: PaymentMethod) -> Reply {
        self.execute(
            now_ns,
            &Command::TopUp {
                id,
                customer,
                amount,
                method,
            },
        )
    }

    /// Holds credits before a call (see [`Command::Hold`]).
    ///
    /// # Errors
    ///
    /// The [`Refusal`] of the command; [`Refusal::InsufficientCredits`] without balance.
    pub fn hold(&mut self, now_ns: u64, id: u128, customer: u128, amount: Credits, timeout_ms: u64) -> Reply {
        self.execute(
            now_ns,
            &Command::Hold {
                id,
                customer,
                amount,
                timeout_ms,
            },
        )
    }

    /// Charges a held call's actual cost (see [`Command::Capture`]).
    ///
    /// # Errors
    ///
    /// The [`Refusal`] of the command.
    pub fn capture(&mut self, now_ns: u64, hold: u128, amount: Credits) -> Reply {
        self.execute(now_ns, &Command::Capture { hold, amount })
    }

    /// Releases a hold (see [`Command::Release`]).
    ///
    /// # Errors
    ///
    /// The [`Refusal`] of the command.
    pub fn release(&mut self, now_ns: u64, hold: u128) -> Reply {
        self.execute(now_ns, &Command::Release { hold })
    }

    fn once(&mut self, kind: u8, id: u128, command: &Command, run: impl FnOnce(&mut Billing) -> Reply) -> Reply {
        if let Some((first, reply)) = self.replies.get(&(kind, id)) {
            return if first == command {
                *reply
            } else {
                Err(Refusal::IdReused)
            };
        }
        let reply = run(self);
        self.replies.insert((kind, id), (*command, reply));
        reply
    }

    /// A new id from `counter` at `now_ns`: the counter itself without a window,
    /// time-ordered with one.
    fn mint(&self, now_ns: u64, counter: u128) -> u128 {
        match self.config.id_window {
            None => counter,
            Some(_) => TransferId::from_time_ns(now_ns, counter).0,
        }
    }

    fn next_transfer_id(&mut self, now_ns: u64) -> TransferId {
        let id = TransferId(self.mint(now_ns, self.next_transfer));
        self.next_transfer += 1;
        id
    }

    /// With a window: ids whose time is before this are forgotten (the ledger's, which
    /// [`Billing::execute`] moves on first).
    fn forgotten_before_ns(&self) -> u128 {
        u128::from(self.ledger.forgotten_before_ns())
    }

    /// Whether the hold is open: not captured or released, and its pending transfers
    /// still pending in the ledger (not expired).
    fn hold_open(&self, id: u128) -> bool {
        self.holds.get(&id).is_some_and(|h| {
            h.status == HoldStatus::Open
                && h.parts.first().is_some_and(|(pending, _, _)| {
                    self.ledger
                        .transfer(*pending)
                        .is_some_and(|t| t.status == Some(crate::PendingStatus::Pending))
                })
        })
    }

    /// Whether a reply or hold keyed by `id` is still part of the state: always without a
    /// window; with one, if the id is not forgotten, or it is an open hold or an
    /// outstanding payment request.
    fn is_kept(&self, id: u128) -> bool {
        self.config.id_window.is_none()
            || id_time_ns(id) >= self.forgotten_before_ns()
            || self.hold_open(id)
            || self.requests.contains_key(&id)
    }

    /// With a window, refuses a command whose id is forgotten or too far ahead.
    fn window_check(&self, now_ns: u64, command: &Command) -> Result<(), Refusal> {
        let Some(window) = self.config.id_window else {
            return Ok(());
        };
        let id = match *command {
            Command::OpenAccount { .. } | Command::SetAutoTopUp { .. } => return Ok(()),
            Command::TopUp { id, .. } | Command::Hold { id, .. } | Command::GrantBonus { id, .. } => id,
            Command::Capture { hold, .. } | Command::CaptureCost { hold, .. } | Command::Release { hold } => hold,
            Command::ReportPayment { request, .. } => request,
        };
        if !self.is_kept(id) {
            return Err(Refusal::IdOlderThanWindow);
        }
        if id_time_ns(id) > u128::from(now_ns) + u128::from(window.ahead_ns) {
            return Err(Refusal::IdAheadOfWindow);
        }
        Ok(())
    }

    /// With a window ([`BillingConfig::id_window`]): drops forgotten replies and closed
    /// holds from memory now, and compacts the ledger underneath ([`Ledger::compact`]).
    /// Only memory changes, never a reply or the state. The billing layer does this on
    /// its own as it grows; nothing happens without a window.
    pub fn compact(&mut self) {
        if self.config.id_window.is_none() {
            return;
        }
        self.ledger.compact();
        // Capacity is kept: memory stays where the window's peak put it.
        let replies: Vec<(u8, u128)> = self
            .replies
            .keys()
            .filter(|(_, id)| !self.is_kept(*id))
            .copied()
            .collect();
        for key in replies {
            self.replies.remove(&key);
        }
        let holds: Vec<u128> = self.holds.keys().filter(|id| !self.is_kept(**id)).copied().collect();
        for id in holds {
            self.holds.remove(&id);
        }
        self.compact_at_len = (self.replies.len() + self.holds.len())
            .saturating_mul(2)
            .max(COMPACT_MIN);
    }

    /// Applies events that the billing layer built; a batch of its own making is never
    /// above the limit.
    fn apply(&mut self, now_ns: u64, events: &[Event]) -> Vec<EventResult> {
        self.ledger
            .apply(now_ns, events)
            .unwrap_or_else(|_| vec![EventResult::LinkedEventChainOpen; events.len()])
    }

    /// Applies `events` as one linked chain (all or none: every event but the last gets
    /// `LINKED`) and returns the failure that broke it, if any (not the
    /// `LinkedEventFailed` of the events that only went down with it).
    fn apply_chain(&mut self, now_ns: u64, events: &mut [Event]) -> Option<EventResult> {
        if let Some((_, linked)) = events.split_last_mut() {
            for event in linked {
                if let Event::CreateTransfer(t) = event {
                    *t = t.with_flags(TransferFlags::LINKED);
                }
            }
        }
        self.apply(now_ns, events)
            .into_iter()
            .find(|r| !r.is_ok() && *r != EventResult::LinkedEventFailed)
    }

    fn open(&mut self, now_ns: u64, customer: u128) -> Reply {
        if customer == 0 || customer >= LOT_BASE {
            return Err(Refusal::InvalidCustomerId);
        }
        if self.customers.contains_key(&customer) {
            return Err(Refusal::AccountExists);
        }
        let account = Account::balance(AccountId(customer)).with_code(codes::CUSTOMER);
        match self.apply(now_ns, &[Event::CreateAccount(account)])[0] {
            EventResult::Ok => {
                self.customers.insert(customer, CustomerState::default());
                Ok(Receipt::Opened)
            }
            other => Err(Refusal::Ledger(other)),
        }
    }

    fn credits_for(&self, amount: &Money) -> Result<Credits, Refusal> {
        if amount.currency() != Currency::USD {
            return Err(Refusal::InvalidAmount("top-ups are in USD"));
        }
        if !amount.is_rounded().unwrap_or(false) {
            return Err(Refusal::InvalidAmount("a top-up is whole cents"));
        }
        let credits = self
            .config
            .credit_rate
            .to_credits(amount, Rounding::Down)
            .map_err(|_| Refusal::InvalidAmount("a top-up must fit the credit range"))?;
        if credits <= Credits::ZERO {
            return Err(Refusal::InvalidAmount("a top-up must be positive"));
        }
        Ok(credits)
    }

    fn top_up_now(&mut self, now_ns: u64, id: u128, customer: u128, amount: Money, method: PaymentMethod) -> Reply {
        if let Some(reason) = method.refusal() {
            return Err(Refusal::PaymentMethodRefused(reason));
        }
        if !self.customers.contains_key(&customer) {
            return Err(Refusal::UnknownAccount);
        }
        let credits = self.credits_for(&amount)?;
        self.credit_purchase(now_ns, customer, credits, id)?;
        Ok(Receipt::ToppedUp { credits })
    }

    /// Moves purchased `credits` from the funding account to `customer`, tagged with the
    /// top-up (or auto top-up request) id `source`.
    fn credit_purchase(&mut self, now_ns: u64, customer: u128, credits: Credits, source: u128) -> Result<(), Refusal> {
        let transfer = Transfer::new(self.next_transfer_id(now_ns), FUNDING, AccountId(customer), credits)
            .with_code(codes::TOP_UP)
            .with_user_data(source);
        match self.apply(now_ns, &[Event::CreateTransfer(transfer)])[0] {
            EventResult::Ok => Ok(()),
            other => Err(Refusal::Ledger(other)),
        }
    }

    fn hold_now(&mut self, now_ns: u64, id: u128, customer: u128, amount: Credits, timeout_ms: u64) -> Reply {
        let state = self.customers.get(&customer).ok_or(Refusal::UnknownAccount)?;
        if amount <= Credits::ZERO {
            return Err(Refusal::InvalidAmount("a hold must be positive"));
        }
        if timeout_ms == 0 || timeout_ms > self.config.hold_timeout_max_ms {
            return Err(Refusal::InvalidTimeout);
        }
        // Spend order: bonus lots first, soonest expiry first, then oldest; then paid.
        let mut sources: Vec<(u64, u64, AccountId)> = state
            .lots
            .iter()
            .filter(|lot| lot.expires_at_ns > now_ns)
            .map(|lot| (lot.expires_at_ns, lot.granted_at_ns, lot.account))
            .collect();
        sources.sort_unstable();
        let mut left = i128::from(amount.get());
        let mut plan: Vec<(AccountId, Credits)> = Vec::new();
        for account in sources.iter().map(|s| s.2).chain(std::iter::once(AccountId(customer))) {
            if left == 0 {
                break;
            }
            let take = self.available(account).min(left);
            if take > 0 {
                // `take` is at most `left`, which started as an i64.
                plan.push((account, Credits::new(take as i64)));
                left -= take;
            }
        }
        if left > 0 {
            return Err(Refusal::InsufficientCredits);
        }
        let mut events = Vec::with_capacity(plan.len());
        let mut parts = Vec::with_capacity(plan.len());
        for (source, credits) in &plan {
            let tid = self.next_transfer_id(now_ns);
            let t = Transfer::pending(tid, *source, REVENUE, *credits, timeout_ms)
                .with_code(codes::USAGE)
                .with_user_data(id);
            events.push(Event::CreateTransfer(t));
            parts.push((tid, *source, *credits));
        }
        if let Some(bad) = self.apply_chain(now_ns, &mut events) {
            return Err(if bad == EventResult::ExceedsCredits {
                Refusal::InsufficientCredits
            } else {
                Refusal::Ledger(bad)
            });
        }
        self.holds.insert(
            id,
            Hold {
                customer,
                amount,
                parts,
                status: HoldStatus::Open,
                reply: None,
            },
        );
        Ok(Receipt::Held { amount })
    }

    fn capture_now(&mut self, now_ns: u64, command: &Command, id: u128, amount: Credits, shortfall: Credits) -> Reply {
        let hold = self.holds.get(&id).ok_or(Refusal::UnknownHold)?;
        if let Some((first, reply)) = &hold.reply {
            return if first == command {
                *reply
            } else {
                Err(match hold.status {
                    HoldStatus::Released => Refusal::HoldReleased,
                    _ => Refusal::HoldCaptured,
                })
            };
        }
        if amount < Credits::ZERO {
            return Err(Refusal::InvalidAmount("a capture must not be negative"));
        }
        if amount > hold.amount {
            return Err(Refusal::CaptureExceedsHold {
                held: hold.amount,
                requested: amount,
            });
        }
        let customer = hold.customer;
        let held_total = hold.amount;
        let sweep = self.touches_expired_lot(&hold.parts);
        let mut left = amount;
        let mut events = Vec::with_capacity(hold.parts.len());
        for (pending, _, held) in &hold.parts {
            let take = if left < *held { left } else { *held };
            left = Credits::new(left.get() - take.get());
            // `next_transfer_id()` would borrow all of `self` while `hold` is borrowed.
            let tid = TransferId(self.mint(now_ns, self.next_transfer));
            self.next_transfer += 1;
            let t = if take > Credits::ZERO {
                Transfer::post(tid, *pending, take)
            } else {
                Transfer::void(tid, *pending)
            }
            .with_code(codes::USAGE)
            .with_user_data(id);
            events.push(Event::CreateTransfer(t));
        }
        let failure = self.apply_chain(now_ns, &mut events);
        // Credits released back to an expired lot are not spendable: sweep them before the
        // auto top-up rule looks at the balance.
        if sweep {
            self.sweep_expired(now_ns);
        }
        let reply = match failure {
            None => {
                let auto_top_up = self.decide_top_up(now_ns, customer);
                let released = Credits::new(held_total.get() - amount.get());
                Ok(Receipt::Captured {
                    charged: amount,
                    released,
                    shortfall,
                    auto_top_up,
                })
            }
            // With a window, an expired hold's pending transfers may be forgotten already.
            Some(EventResult::PendingTransferExpired | EventResult::PendingIdOlderThanWindow) => {
                Err(Refusal::HoldExpired)
            }
            Some(other) => Err(Refusal::Ledger(other)),
        };
        if let Some(h) = self.holds.get_mut(&id) {
            // The reply is kept (for retries) only once the hold is final; after another
            // refusal the hold stays open and can still be captured or released.
            let status = match reply {
                Ok(_) => Some(HoldStatus::Captured),
                Err(Refusal::HoldExpired) => Some(HoldStatus::Released),
                Err(_) => None,
            };
            if let Some(status) = status {
                h.status = status;
                h.reply = Some((*command, reply));
            }
        }
        reply
    }

    fn capture_cost_now(&mut self, now_ns: u64, command: &Command, id: u128, cost: ExactCredits) -> Reply {
        let hold = self.holds.get(&id).ok_or(Refusal::UnknownHold)?;
        let (customer, held_credits, replayed) = (hold.customer, hold.amount, hold.reply.is_some());
        if replayed {
            // A retry answers as the first time; a different body is refused there.
            return self.capture_now(now_ns, command, id, Credits::ZERO, Credits::ZERO);
        }
        if cost.get().is_sign_negative() && !cost.get().is_zero() {
            return Err(Refusal::InvalidAmount("a cost must not be negative"));
        }
        let state = self.customers.get(&customer);
        let mut carrier = state.map(|c| c.carrier).unwrap_or_default();
        let owed = carrier
            .charge(cost)
            .map_err(|_| Refusal::InvalidAmount("a cost must fit the credit range"))?;
        // Above the hold: the hold is charged, never more, and the rest is recorded.
        let (charged, shortfall) = if owed <= held_credits {
            (owed, Credits::ZERO)
        } else {
            (held_credits, Credits::new(owed.get() - held_credits.get()))
        };
        let uncollected = state
            .map_or(Credits::ZERO, |c| c.uncollected)
            .get()
            .checked_add(shortfall.get())
            .ok_or(Refusal::InvalidAmount(
                "the uncollected total must fit the credit range",
            ))?;
        let reply = self.capture_now(now_ns, command, id, charged, shortfall);
        if matches!(reply, Ok(Receipt::Captured { .. }))
            && let Some(state) = self.customers.get_mut(&customer)
        {
            state.carrier = carrier;
            state.uncollected = Credits::new(uncollected);
        }
        reply
    }

    /// Credits a customer owed by exact cost beyond its holds and was never charged: the
    /// sum of the `shortfall`s of its captures (see [`Command::CaptureCost`]).
    ///
    /// # Errors
    ///
    /// [`Refusal::UnknownAccount`].
    pub fn uncollected(&self, customer: u128) -> Result<Credits, Refusal> {
        self.customers
            .get(&customer)
            .map(|c| c.uncollected)
            .ok_or(Refusal::UnknownAccount)
    }

    /// The customer's remainder carrier (the exact credits owed but not yet charged).
    ///
    /// # Errors
    ///
    /// [`Refusal::UnknownAccount`].
    pub fn carrier(&self, customer: u128) -> Result<RemainderCarrier, Refusal> {
        self.customers
            .get(&customer)
            .map(|c| c.carrier)
            .ok_or(Refusal::UnknownAccount)
    }

    fn release_now(&mut self, now_ns: u64, command: &Command, id: u128) -> Reply {
        let hold = self.holds.get(&id).ok_or(Refusal::UnknownHold)?;
        if let Some((first, reply)) = &hold.reply {
            return if first == command {
                *reply
            } else if hold.status == HoldStatus::Captured {
                Err(Refusal::HoldCaptured)
            } else {
                Ok(Receipt::Released)
            };
        }
        let sweep = self.touches_expired_lot(&hold.parts);
        let mut events = Vec::with_capacity(hold.parts.len());
        for (pending, _, _) in &hold.parts {
            // `next_transfer_id()` would borrow all of `self` while `hold` is borrowed.
            let t = Transfer::void(TransferId(self.mint(now_ns, self.next_transfer)), *pending)
                .with_code(codes::USAGE)
                .with_user_data(id);
            self.next_transfer += 1;
            events.push(Event::CreateTransfer(t));
        }
        let reply = match self.apply_chain(now_ns, &mut events) {
            // A hold that expired is released already (with a window, its pending
            // transfers may be forgotten already).
            None | Some(EventResult::PendingTransferExpired | EventResult::PendingIdOlderThanWindow) => {
                Ok(Receipt::Released)
            }
            Some(other) => Err(Refusal::Ledger(other)),
        };
        // Credits released back to an expired lot go to breakage at once.
        if sweep {
            self.sweep_expired(now_ns);
        }
        if let Some(h) = self.holds.get_mut(&id)
            && reply.is_ok()
        {
            h.status = HoldStatus::Released;
            h.reply = Some((*command, reply));
        }
        reply
    }

    /// Whether a hold drew on a lot that has expired: what it gives back must then be
    /// swept to breakage (applying transfers never changes the set of expired lots, so
    /// this can be asked before they are applied).
    fn touches_expired_lot(&self, parts: &[(TransferId, AccountId, Credits)]) -> bool {
        parts.iter().any(|(_, source, _)| self.expired_lots.contains(&source.0))
    }

    fn grant_now(&mut self, now_ns: u64, customer: u128, amount: Credits, expires_at_ns: u64) -> Reply {
        if !self.config.bonus_enabled {
            return Err(Refusal::BonusPaused);
        }
        if !self.customers.contains_key(&customer) {
            return Err(Refusal::UnknownAccount);
        }
        if amount <= Credits::ZERO {
            return Err(Refusal::InvalidAmount("a bonus must be positive"));
        }
        if expires_at_ns <= now_ns {
            return Err(Refusal::InvalidAmount("a bonus must expire in the future"));
        }
        let lot = AccountId(LOT_BASE + self.next_lot);
        self.next_lot += 1;
        let account = Account::balance(lot)
            .with_code(codes::LOT)
            .with_flags(crate::AccountFlags::LINKED);
        let grant = Transfer::new(self.next_transfer_id(now_ns), PROMOTIONS, lot, amount)
            .with_code(codes::BONUS_GRANT)
            .with_user_data(customer);
        let results = self.apply(now_ns, &[Event::CreateAccount(account), Event::CreateTransfer(grant)]);
        if let Some(bad) = results.iter().find(|r| !r.is_ok()) {
            return Err(Refusal::Ledger(*bad));
        }
        if let Some(state) = self.customers.get_mut(&customer) {
            state.lots.push(Lot {
                account: lot,
                expires_at_ns,
                granted_at_ns: now_ns,
            });
        }
        self.lot_expiries.insert((expires_at_ns, lot.0));
        self.lot_owner.insert(lot.0, customer);
        Ok(Receipt::BonusGranted { lot })
    }

    fn set_rule(&mut self, customer: u128, rule: Option<AutoTopUpRule>) -> Reply {
        if !self.customers.contains_key(&customer) {
            return Err(Refusal::UnknownAccount);
        }
        if let Some(r) = &rule {
            if let Some(reason) = r.method.refusal() {
                return Err(Refusal::PaymentMethodRefused(reason));
            }
            if r.threshold < Credits::ZERO {
                return Err(Refusal::InvalidAmount("the threshold must not be negative"));
            }
            match r.amount {
                TopUpAmount::Fixed(m) if m.currency() != Currency::USD || m.is_negative() || m.is_zero() => {
                    return Err(Refusal::InvalidAmount("an auto top-up is a positive USD amount"));
                }
                TopUpAmount::TargetBalance(c) if c <= r.threshold => {
                    return Err(Refusal::InvalidAmount("the target balance must be above the threshold"));
                }
                // A fixed amount must buy credits as a top-up does (whole cents, in range),
                // so that a paid request always credits the account.
                TopUpAmount::Fixed(m) => {
                    self.credits_for(&m)?;
                }
                TopUpAmount::TargetBalance(_) => {}
            }
            if r.requests_per_window_max == 0 || r.window_ms == 0 {
                return Err(Refusal::InvalidAmount(
                    "the request window must allow at least one request",
                ));
            }
        }
        if let Some(state) = self.customers.get_mut(&customer) {
            state.auto.rule = rule;
        }
        Ok(Receipt::RuleSet)
    }

    fn decide_top_up(&mut self, now_ns: u64, customer: u128) -> AutoTopUp {
        let balance = self.balance(customer).unwrap_or(Credits::ZERO);
        let rate = self.config.credit_rate;
        let Some(state) = self.customers.get_mut(&customer) else {
            return AutoTopUp::NoRule;
        };
        let auto = &mut state.auto;
        let Some(rule) = auto.rule else {
            return AutoTopUp::NoRule;
        };
        if !rule.enabled {
            return AutoTopUp::Disabled;
        }
        if balance >= rule.threshold {
            return AutoTopUp::NotNeeded;
        }
        if let Some(request) = auto.outstanding {
            return AutoTopUp::Outstanding { request };
        }
        if now_ns < auto.blocked_until_ns {
            return AutoTopUp::BackingOff {
                until_ns: auto.blocked_until_ns,
            };
        }
        let window_ns = rule.window_ms.saturating_mul(1_000_000);
        while auto
            .recent_ns
            .front()
            .is_some_and(|&t| t.saturating_add(window_ns) <= now_ns)
        {
            auto.recent_ns.pop_front();
        }
        if auto.recent_ns.len() >= rule.requests_per_window_max as usize {
            let oldest = auto.recent_ns.front().copied().unwrap_or(now_ns);
            return AutoTopUp::WindowLimitReached {
                until_ns: oldest.saturating_add(window_ns),
            };
        }
        let amount = match rule.amount {
            TopUpAmount::Fixed(m) => m,
            TopUpAmount::TargetBalance(target) => {
                let needed = Credits::new(target.get().saturating_sub(balance.get()));
                match rate.to_money(needed, Rounding::Up) {
                    Ok(m) => m,
                    Err(_) => return AutoTopUp::Disabled,
                }
            }
        };
        let request = TopUpRequest {
            id: match self.config.id_window {
                None => self.next_request,
                // `mint` would borrow all of `self` while `state` is borrowed.
                Some(_) => TransferId::from_time_ns(now_ns, self.next_request).0,
            },
            customer,
            amount,
            method: rule.method,
            at_ns: now_ns,
        };
        self.next_request += 1;
        auto.outstanding = Some(request.id);
        auto.recent_ns.push_back(now_ns);
        self.requests.insert(request.id, request);
        self.outbox.push(request);
        AutoTopUp::Requested(request)
    }

    fn report_now(&mut self, now_ns: u64, request: u128, outcome: PaymentOutcome) -> Reply {
        // The request stays outstanding (and listed by `outstanding_requests`) unless the
        // outcome is recorded: a paid request that could not be credited is never dropped.
        let req = *self.requests.get(&request).ok_or(Refusal::UnknownRequest)?;
        let credits = match outcome {
            PaymentOutcome::Succeeded => {
                let credits = self.credits_for(&req.amount)?;
                self.credit_purchase(now_ns, req.customer, credits, request)?;
                credits
            }
            PaymentOutcome::Declined => Credits::ZERO,
        };
        self.requests.remove(&request);
        let mut retry_after_ns = None;
        if let Some(state) = self.customers.get_mut(&req.customer) {
            let auto = &mut state.auto;
            auto.outstanding = None;
            match outcome {
                PaymentOutcome::Succeeded => auto.declines = 0,
                PaymentOutcome::Declined => {
                    auto.declines = auto.declines.saturating_add(1);
                    let (base, max) = auto.rule.map_or((0, 0), |r| (r.backoff_ms, r.backoff_max_ms));
                    let factor = 1u64.checked_shl(auto.declines - 1).unwrap_or(u64::MAX);
                    let wait_ms = base.saturating_mul(factor).min(max);
                    auto.blocked_until_ns = now_ns.saturating_add(wait_ms.saturating_mul(1_000_000));
                    retry_after_ns = Some(auto.blocked_until_ns);
                }
            }
        }
        Ok(Receipt::PaymentRecorded {
            credits,
            retry_after_ns,
        })
    }

    /// Expires the holds and the lots whose time has come: what is left of a lot goes to
    /// breakage.
    fn sweep(&mut self, now_ns: u64) {
        // An empty batch: the ledger voids the holds whose timeout has passed, so that the
        // balances read below are those of `now_ns`.
        let _ = self.ledger.apply(now_ns, &[]);
        if self.config.id_window.is_some() && self.replies.len() + self.holds.len() >= self.compact_at_len {
            self.compact();
        }
        while let Some(&(at, lot)) = self.lot_expiries.first() {
            if at > now_ns {
                break;
            }
            self.lot_expiries.pop_first();
            self.expired_lots.insert(lot);
        }
        if !self.expired_lots.is_empty() {
            self.sweep_expired(now_ns);
        }
    }

    fn sweep_expired(&mut self, now_ns: u64) {
        let lots: Vec<u128> = self.expired_lots.iter().copied().collect();
        for lot in lots {
            let account = AccountId(lot);
            let available = self.available(account);
            if available > 0 {
                // A lot holds at most what was granted, an i64.
                let t = Transfer::new(
                    self.next_transfer_id(now_ns),
                    account,
                    BREAKAGE,
                    Credits::new(available as i64),
                )
                .with_code(codes::BONUS_EXPIRY);
                let _ = self.apply(now_ns, &[Event::CreateTransfer(t)]);
            }
            let drained = self
                .ledger
                .account(account)
                .is_none_or(|a| a.debits_pending == 0 && a.available() <= 0);
            if drained {
                self.expired_lots.remove(&lot);
                if let Some(owner) = self.lot_owner.remove(&lot)
                    && let Some(state) = self.customers.get_mut(&owner)
                {
                    state.lots.retain(|l| l.account != account);
                }
            }
        }
    }
}

impl StateMachine for Billing {
    type Command = Command;
    type Reply = Reply;
    const BATCH_MAX: usize = crate::BATCH_EVENTS_MAX;

    fn apply_batch(&mut self, now_ns: u64, commands: &[Command]) -> Result<Vec<Reply>, LedgerError> {
        if commands.len() > Self::BATCH_MAX {
            return Err(LedgerError::BatchTooLarge {
                events: commands.len(),
                max: Self::BATCH_MAX,
            });
        }
        Ok(commands.iter().map(|c| self.execute(now_ns, c)).collect())
    }
}

/// Every reason text a [`Refusal`] may carry: a snapshot stores a reason as its position here.
const REASONS: [&str; 17] = [
    "prepaid cards are not accepted: pay with a credit or debit card, PayPal or crypto",
    "gift cards are not accepted: pay with a credit or debit card, PayPal or crypto",
    "top-ups are in USD",
    "a top-up is whole cents",
    "a top-up must fit the credit range",
    "a top-up must be positive",
    "a hold must be positive",
    "a capture must not be negative",
    "a bonus must be positive",
    "a bonus must expire in the future",
    "the threshold must not be negative",
    "an auto top-up is a positive USD amount",
    "the target balance must be above the threshold",
    "the request window must allow at least one request",
    "a cost must not be negative",
    "a cost must fit the credit range",
    "the uncollected total must fit the credit range",
];

/// The exact encodings of commands, replies and the billing state, for the journal and
/// snapshots (`crate::durable`). Money is written as its decimal text.
pub(crate) mod codec {
    use std::collections::{BTreeSet, HashMap, VecDeque};

    use paygo_credits::CreditRate;

    use super::{
        AutoState, AutoTopUp, AutoTopUpRule, Billing, BillingConfig, CardKind, Command, CustomerState, Hold,
        HoldStatus, Lot, PaymentMethod, PaymentOutcome, REASONS, Receipt, Refusal, Reply, TopUpAmount, TopUpRequest,
    };
    use crate::durable::codec::{Put, Reader, bad, put_money, put_result};
    use crate::{AccountId, Ledger, LedgerError, TransferId};

    fn put_method(out: &mut Vec<u8>, m: PaymentMethod) {
        out.put_u8(match m {
            PaymentMethod::Card(CardKind::Credit) => 0,
            PaymentMethod::Card(CardKind::Debit) => 1,
            PaymentMethod::Card(CardKind::Prepaid) => 2,
            PaymentMethod::PayPal => 3,
            PaymentMethod::Crypto => 4,
            PaymentMethod::GiftCard => 5,
        });
    }

    fn method(r: &mut Reader<'_>) -> Result<PaymentMethod, LedgerError> {
        Ok(match r.u8()? {
            0 => PaymentMethod::Card(CardKind::Credit),
            1 => PaymentMethod::Card(CardKind::Debit),
            2 => PaymentMethod::Card(CardKind::Prepaid),
            3 => PaymentMethod::PayPal,
            4 => PaymentMethod::Crypto,
            5 => PaymentMethod::GiftCard,
            other => return Err(bad(format!("payment method {other} is unknown"))),
        })
    }

    fn put_rule(out: &mut Vec<u8>, rule: &AutoTopUpRule) {
        out.put_bool(rule.enabled);
        out.put_i64(rule.threshold.get());
        match &rule.amount {
            TopUpAmount::Fixed(m) => {
                out.put_u8(0);
                put_money(out, m);
            }
            TopUpAmount::TargetBalance(c) => {
                out.put_u8(1);
                out.put_i64(c.get());
            }
        }
        put_method(out, rule.method);
        out.put_u32(rule.requests_per_window_max);
        out.put_u64(rule.window_ms);
        out.put_u64(rule.backoff_ms);
        out.put_u64(rule.backoff_max_ms);
    }

    fn rule(r: &mut Reader<'_>) -> Result<AutoTopUpRule, LedgerError> {
        Ok(AutoTopUpRule {
            enabled: r.bool()?,
            threshold: r.credits()?,
            amount: match r.u8()? {
                0 => TopUpAmount::Fixed(r.money()?),
                1 => TopUpAmount::TargetBalance(r.credits()?),
                other => return Err(bad(format!("top-up amount kind {other} is unknown"))),
            },
            method: method(r)?,
            requests_per_window_max: r.u32()?,
            window_ms: r.u64()?,
            backoff_ms: r.u64()?,
            backoff_max_ms: r.u64()?,
        })
    }

    /// Appends one command.
    pub(crate) fn put_command(out: &mut Vec<u8>, c: &Command) {
        match c {
            Command::OpenAccount { customer } => {
                out.put_u8(1);
                out.put_u128(*customer);
            }
            Command::TopUp {
                id,
                customer,
                amount,
                method,
            } => {
                out.put_u8(2);
                out.put_u128(*id);
                out.put_u128(*customer);
                put_money(out, amount);
                put_method(out, *method);
            }
            Command::Hold {
                id,
                customer,
                amount,
                timeout_ms,
            } => {
                out.put_u8(3);
                out.put_u128(*id);
                out.put_u128(*customer);
                out.put_i64(amount.get());
                out.put_u64(*timeout_ms);
            }
            Command::Capture { hold, amount } => {
                out.put_u8(4);
                out.put_u128(*hold);
                out.put_i64(amount.get());
            }
            Command::Release { hold } => {
                out.put_u8(5);
                out.put_u128(*hold);
            }
            Command::CaptureCost { hold, cost } => {
                out.put_u8(9);
                out.put_u128(*hold);
                out.put_text(&cost.to_string());
            }
            Command::GrantBonus {
                id,
                customer,
                amount,
                expires_at_ns,
            } => {
                out.put_u8(6);
                out.put_u128(*id);
                out.put_u128(*customer);
                out.put_i64(amount.get());
                out.put_u64(*expires_at_ns);
            }
            Command::SetAutoTopUp { customer, rule } => {
                out.put_u8(7);
                out.put_u128(*customer);
                out.put_bool(rule.is_some());
                if let Some(rule) = rule {
                    put_rule(out, rule);
                }
            }
            Command::ReportPayment { request, outcome } => {
                out.put_u8(8);
                out.put_u128(*request);
                out.put_bool(*outcome == PaymentOutcome::Succeeded);
            }
        }
    }

    /// Reads one command.
    pub(crate) fn command(r: &mut Reader<'_>) -> Result<Command, LedgerError> {
        Ok(match r.u8()? {
            1 => Command::OpenAccount { customer: r.u128()? },
            2 => Command::TopUp {
                id: r.u128()?,
                customer: r.u128()?,
                amount: r.money()?,
                method: method(r)?,
            },
            3 => Command::Hold {
                id: r.u128()?,
                customer: r.u128()?,
                amount: r.credits()?,
                timeout_ms: r.u64()?,
            },
            4 => Command::Capture {
                hold: r.u128()?,
                amount: r.credits()?,
            },
            5 => Command::Release { hold: r.u128()? },
            6 => Command::GrantBonus {
                id: r.u128()?,
                customer: r.u128()?,
                amount: r.credits()?,
                expires_at_ns: r.u64()?,
            },
            7 => Command::SetAutoTopUp {
                customer: r.u128()?,
                rule: if r.bool()? { Some(rule(r)?) } else { None },
            },
            8 => Command::ReportPayment {
                request: r.u128()?,
                outcome: if r.bool()? {
                    PaymentOutcome::Succeeded
                } else {
                    PaymentOutcome::Declined
                },
            },
            9 => Command::CaptureCost {
                hold: r.u128()?,
                cost: r.text()?.parse().map_err(|e| bad(format!("a cost: {e}")))?,
            },
            other => return Err(bad(format!("command tag {other} is unknown"))),
        })
    }

    fn put_request(out: &mut Vec<u8>, q: &TopUpRequest) {
        out.put_u128(q.id);
        out.put_u128(q.customer);
        put_money(out, &q.amount);
        put_method(out, q.method);
        out.put_u64(q.at_ns);
    }

    fn request(r: &mut Reader<'_>) -> Result<TopUpRequest, LedgerError> {
        Ok(TopUpRequest {
            id: r.u128()?,
            customer: r.u128()?,
            amount: r.money()?,
            method: method(r)?,
            at_ns: r.u64()?,
        })
    }

    fn put_reason(out: &mut Vec<u8>, reason: &str) -> Result<(), LedgerError> {
        let i = REASONS
            .iter()
            .position(|r| *r == reason)
            .ok_or_else(|| bad(format!("refusal reason {reason:?} is not in the list of reasons")))?;
        out.put_u8(i as u8);
        Ok(())
    }

    fn reason(r: &mut Reader<'_>) -> Result<&'static str, LedgerError> {
        let i = r.u8()?;
        REASONS
            .get(usize::from(i))
            .copied()
            .ok_or_else(|| bad(format!("refusal reason {i} is unknown")))
    }

    fn put_reply(out: &mut Vec<u8>, reply: &Reply) -> Result<(), LedgerError> {
        match reply {
            Ok(receipt) => {
                out.put_u8(0);
                match receipt {
                    Receipt::Opened => out.put_u8(1),
                    Receipt::ToppedUp { credits } => {
                        out.put_u8(2);
                        out.put_i64(credits.get());
                    }
                    Receipt::Held { amount } => {
                        out.put_u8(3);
                        out.put_i64(amount.get());
                    }
                    Receipt::Captured {
                        charged,
                        released,
                        shortfall,
                        auto_top_up,
                    } => {
                        out.put_u8(4);
                        out.put_i64(charged.get());
                        out.put_i64(released.get());
                        out.put_i64(shortfall.get());
                        match auto_top_up {
                            AutoTopUp::NoRule => out.put_u8(1),
                            AutoTopUp::Disabled => out.put_u8(2),
                            AutoTopUp::NotNeeded => out.put_u8(3),
                            AutoTopUp::Requested(q) => {
                                out.put_u8(4);
                                put_request(out, q);
                            }
                            AutoTopUp::Outstanding { request } => {
                                out.put_u8(5);
                                out.put_u128(*request);
                            }
                            AutoTopUp::BackingOff { until_ns } => {
                                out.put_u8(6);
                                out.put_u64(*until_ns);
                            }
                            AutoTopUp::WindowLimitReached { until_ns } => {
                                out.put_u8(7);
                                out.put_u64(*until_ns);
                            }
                        }
                    }
                    Receipt::Released => out.put_u8(5),
                    Receipt::BonusGranted { lot } => {
                        out.put_u8(6);
                        out.put_u128(lot.0);
                    }
                    Receipt::RuleSet => out.put_u8(7),
                    Receipt::PaymentRecorded {
                        credits,
                        retry_after_ns,
                    } => {
                        out.put_u8(8);
                        out.put_i64(credits.get());
                        out.put_opt_u64(*retry_after_ns);
                    }
                }
            }
            Err(refusal) => {
                out.put_u8(1);
                match refusal {
                    Refusal::InsufficientCredits => out.put_u8(1),
                    Refusal::UnknownAccount => out.put_u8(2),
                    Refusal::AccountExists => out.put_u8(3),
                    Refusal::InvalidCustomerId => out.put_u8(4),
                    Refusal::PaymentMethodRefused(reason) => {
                        out.put_u8(5);
                        put_reason(out, reason)?;
                    }
                    Refusal::InvalidAmount(reason) => {
                        out.put_u8(6);
                        put_reason(out, reason)?;
                    }
                    Refusal::InvalidTimeout => out.put_u8(7),
                    Refusal::UnknownHold => out.put_u8(8),
                    Refusal::HoldExpired => out.put_u8(9),
                    Refusal::HoldReleased => out.put_u8(10),
                    Refusal::HoldCaptured => out.put_u8(11),
                    Refusal::CaptureExceedsHold { held, requested } => {
                        out.put_u8(12);
                        out.put_i64(held.get());
                        out.put_i64(requested.get());
                    }
                    Refusal::IdReused => out.put_u8(13),
                    Refusal::BonusPaused => out.put_u8(14),
                    Refusal::UnknownRequest => out.put_u8(15),
                    Refusal::IdOlderThanWindow => out.put_u8(17),
                    Refusal::IdAheadOfWindow => out.put_u8(18),
                    Refusal::Ledger(result) => {
                        out.put_u8(16);
                        put_result(out, *result);
                    }
                }
            }
        }
        Ok(())
    }

    fn reply(r: &mut Reader<'_>) -> Result<Reply, LedgerError> {
        let ok = match r.u8()? {
            0 => true,
            1 => false,
            other => return Err(bad(format!("reply kind {other} is unknown"))),
        };
        let tag = r.u8()?;
        if ok {
            Ok(Ok(match tag {
                1 => Receipt::Opened,
                2 => Receipt::ToppedUp { credits: r.credits()? },
                3 => Receipt::Held { amount: r.credits()? },
                4 => Receipt::Captured {
                    charged: r.credits()?,
                    released: r.credits()?,
                    shortfall: r.credits()?,
                    auto_top_up: match r.u8()? {
                        1 => AutoTopUp::NoRule,
                        2 => AutoTopUp::Disabled,
                        3 => AutoTopUp::NotNeeded,
                        4 => AutoTopUp::Requested(request(r)?),
                        5 => AutoTopUp::Outstanding { request: r.u128()? },
                        6 => AutoTopUp::BackingOff { until_ns: r.u64()? },
                        7 => AutoTopUp::WindowLimitReached { until_ns: r.u64()? },
                        other => return Err(bad(format!("auto top-up decision {other} is unknown"))),
                    },
                },
                5 => Receipt::Released,
                6 => Receipt::BonusGranted {
                    lot: AccountId(r.u128()?),
                },
                7 => Receipt::RuleSet,
                8 => Receipt::PaymentRecorded {
                    credits: r.credits()?,
                    retry_after_ns: r.opt_u64()?,
                },
                other => return Err(bad(format!("receipt {other} is unknown"))),
            }))
        } else {
            Ok(Err(match tag {
                1 => Refusal::InsufficientCredits,
                2 => Refusal::UnknownAccount,
                3 => Refusal::AccountExists,
                4 => Refusal::InvalidCustomerId,
                5 => Refusal::PaymentMethodRefused(reason(r)?),
                6 => Refusal::InvalidAmount(reason(r)?),
                7 => Refusal::InvalidTimeout,
                8 => Refusal::UnknownHold,
                9 => Refusal::HoldExpired,
                10 => Refusal::HoldReleased,
                11 => Refusal::HoldCaptured,
                12 => Refusal::CaptureExceedsHold {
                    held: r.credits()?,
                    requested: r.credits()?,
                },
                13 => Refusal::IdReused,
                14 => Refusal::BonusPaused,
                15 => Refusal::UnknownRequest,
                16 => Refusal::Ledger(r.result()?),
                17 => Refusal::IdOlderThanWindow,
                18 => Refusal::IdAheadOfWindow,
                other => return Err(bad(format!("refusal {other} is unknown"))),
            }))
        }
    }

    fn put_command_reply(out: &mut Vec<u8>, (c, reply): &(Command, Reply)) -> Result<(), LedgerError> {
        put_command(out, c);
        put_reply(out, reply)
    }

    fn command_reply(r: &mut Reader<'_>) -> Result<(Command, Reply), LedgerError> {
        Ok((command(r)?, reply(r)?))
    }

    fn sorted<K: Ord + Copy, V>(map: &HashMap<K, V>) -> Vec<(K, &V)> {
        let mut v: Vec<(K, &V)> = map.iter().map(|(k, v)| (*k, v)).collect();
        v.sort_unstable_by_key(|(k, _)| *k);
        v
    }

    /// Appends the whole billing state (a snapshot's body), the ledger's included.
    pub(crate) fn put_state(out: &mut Vec<u8>, b: &Billing) -> Result<(), LedgerError> {
        // Settings.
        out.put_text(b.config.credit_rate.currency().code());
        out.put_text(&b.config.credit_rate.credits_per_unit().to_string());
        out.put_bool(b.config.bonus_enabled);
        out.put_u64(b.config.hold_timeout_max_ms);
        out.put_u128(b.next_transfer);
        out.put_u128(b.next_lot);
        out.put_u128(b.next_request);
        let customers = sorted(&b.customers);
        out.put_len(customers.len());
        for (id, state) in customers {
            out.put_u128(id);
            out.put_len(state.lots.len());
            for lot in &state.lots {
                out.put_u128(lot.account.0);
                out.put_u64(lot.expires_at_ns);
                out.put_u64(lot.granted_at_ns);
            }
            let auto = &state.auto;
            out.put_bool(auto.rule.is_some());
            if let Some(rule) = &auto.rule {
                put_rule(out, rule);
            }
            out.put_opt_u128(auto.outstanding);
            out.put_len(auto.recent_ns.len());
            for t in &auto.recent_ns {
                out.put_u64(*t);
            }
            out.put_u32(auto.declines);
            out.put_u64(auto.blocked_until_ns);
            out.put_text(&state.carrier.remainder().to_string());
            out.put_i64(state.uncollected.get());
        }
        // Forgotten holds and replies are not part of the state (see `Billing::is_kept`):
        // a snapshot is the same whenever the billing layer last compacted.
        let mut holds = sorted(&b.holds);
        holds.retain(|(id, _)| b.is_kept(*id));
        out.put_len(holds.len());
        for (id, hold) in holds {
            out.put_u128(id);
            out.put_u128(hold.customer);
            out.put_i64(hold.amount.get());
            out.put_len(hold.parts.len());
            for (t, a, c) in &hold.parts {
                out.put_u128(t.0);
                out.put_u128(a.0);
                out.put_i64(c.get());
            }
            out.put_u8(match hold.status {
                HoldStatus::Open => 0,
                HoldStatus::Captured => 1,
                HoldStatus::Released => 2,
            });
            out.put_bool(hold.reply.is_some());
            if let Some(cr) = &hold.reply {
                put_command_reply(out, cr)?;
            }
        }
        let mut replies = sorted(&b.replies);
        replies.retain(|((_, id), _)| b.is_kept(*id));
        out.put_len(replies.len());
        for ((kind, id), cr) in replies {
            out.put_u8(kind);
            out.put_u128(id);
            put_command_reply(out, cr)?;
        }
        let requests = sorted(&b.requests);
        out.put_len(requests.len());
        for (_, q) in requests {
            put_request(out, q);
        }
        out.put_len(b.lot_expiries.len());
        for (at, lot) in &b.lot_expiries {
            out.put_u64(*at);
            out.put_u128(*lot);
        }
        out.put_len(b.expired_lots.len());
        for lot in &b.expired_lots {
            out.put_u128(*lot);
        }
        let owners = sorted(&b.lot_owner);
        out.put_len(owners.len());
        for (lot, owner) in owners {
            out.put_u128(lot);
            out.put_u128(*owner);
        }
        b.ledger.encode_state(out);
        Ok(())
    }

    /// Reads a state written by [`put_state`].
    #[allow(clippy::too_many_lines)] // one reader per field, in the writer's order
    pub(crate) fn state(r: &mut Reader<'_>, transfers_more: usize) -> Result<Billing, LedgerError> {
        let code = r.text()?;
        let currency =
            paygo_credits::Currency::from_code(code).ok_or_else(|| bad(format!("currency {code:?} is unknown")))?;
        let per_unit = r.text()?;
        let per_unit =
            paygo_credits::decimal::parse_plain(per_unit).map_err(|e| bad(format!("credit rate {per_unit:?}: {e}")))?;
        let credit_rate = CreditRate::new(currency, per_unit).map_err(|e| bad(format!("credit rate: {e}")))?;
        let config = BillingConfig {
            credit_rate,
            bonus_enabled: r.bool()?,
            hold_timeout_max_ms: r.u64()?,
            // The ledger's state holds the window; set from it below.
            id_window: None,
        };
        let (next_transfer, next_lot, next_request) = (r.u128()?, r.u128()?, r.u128()?);
        // Counters a writer can reach: one a step, so below 2^64 for any ledger that ever
        // ran (and so far from where the next id, lot account or request would overflow).
        // Found by fuzzing (docs/fuzzing.md, L1).
        for (name, value) in [
            ("next transfer", next_transfer),
            ("next lot", next_lot),
            ("next request", next_request),
        ] {
            if value == 0 || value >= 1 << 64 {
                return Err(bad(format!(
                    "the {name} counter is {value}: expected 1 to 2^64 - 1, as a writer leaves it"
                )));
            }
        }
        let mut customers = HashMap::new();
        for _ in 0..r.len()? {
            let id = r.u128()?;
            let mut lots = Vec::new();
            for _ in 0..r.len()? {
                lots.push(Lot {
                    account: AccountId(r.u128()?),
                    expires_at_ns: r.u64()?,
                    granted_at_ns: r.u64()?,
                });
            }
            let rule = if r.bool()? { Some(rule(r)?) } else { None };
            let outstanding = r.opt_u128()?;
            let mut recent_ns = VecDeque::new();
            for _ in 0..r.len()? {
                recent_ns.push_back(r.u64()?);
            }
            let auto = AutoState {
                rule,
                outstanding,
                recent_ns,
                declines: r.u32()?,
                blocked_until_ns: r.u64()?,
            };
            let remainder: paygo_credits::ExactCredits =
                r.text()?.parse().map_err(|e| bad(format!("a remainder: {e}")))?;
            let carrier = paygo_credits::RemainderCarrier::from_remainder(remainder)
                .map_err(|e| bad(format!("a remainder: {e}")))?;
            let uncollected = r.credits()?;
            if uncollected < paygo_credits::Credits::ZERO {
                return Err(bad(format!("an uncollected total of {uncollected} is negative")));
            }
            customers.insert(
                id,
                CustomerState {
                    lots,
                    auto,
                    carrier,
                    uncollected,
                },
            );
        }
        let mut holds = HashMap::new();
        for _ in 0..r.len()? {
            let id = r.u128()?;
            let customer = r.u128()?;
            let amount = r.credits()?;
            let mut parts = Vec::new();
            for _ in 0..r.len()? {
                parts.push((TransferId(r.u128()?), AccountId(r.u128()?), r.credits()?));
            }
            let status = match r.u8()? {
                0 => HoldStatus::Open,
                1 => HoldStatus::Captured,
                2 => HoldStatus::Released,
                other => return Err(bad(format!("hold status {other} is unknown"))),
            };
            let reply = if r.bool()? { Some(command_reply(r)?) } else { None };
            holds.insert(
                id,
                Hold {
                    customer,
                    amount,
                    parts,
                    status,
                    reply,
                },
            );
        }
        let mut replies = HashMap::new();
        for _ in 0..r.len()? {
            let kind = r.u8()?;
            let id = r.u128()?;
            replies.insert((kind, id), command_reply(r)?);
        }
        let mut requests = HashMap::new();
        for _ in 0..r.len()? {
            let q = request(r)?;
            requests.insert(q.id, q);
        }
        let mut lot_expiries = BTreeSet::new();
        for _ in 0..r.len()? {
            lot_expiries.insert((r.u64()?, r.u128()?));
        }
        let mut expired_lots = BTreeSet::new();
        for _ in 0..r.len()? {
            expired_lots.insert(r.u128()?);
        }
        let mut lot_owner = HashMap::new();
        for _ in 0..r.len()? {
            lot_owner.insert(r.u128()?, r.u128()?);
        }
        let ledger = Ledger::decode_state(r, transfers_more)?;
        let config = BillingConfig {
            id_window: ledger.id_window(),
            ..config
        };
        let mut billing = Billing {
            ledger,
            config,
            customers,
            holds,
            replies,
            requests,
            lot_expiries,
            expired_lots,
            lot_owner,
            outbox: Vec::new(),
            next_transfer,
            next_lot,
            next_request,
            compact_at_len: 0,
        };
        billing.compact_at_len = (billing.replies.len() + billing.holds.len())
            .saturating_mul(2)
            .max(super::COMPACT_MIN);
        // The outbox of a restored state: the requests still waiting for their outcome.
        billing.keep_outstanding_requests();
        Ok(billing)
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used, clippy::panic)]
        use super::super::REASONS;

        /// Every reason literal of `billing.rs` is in `REASONS`, so a snapshot can store it.
        #[test]
        fn every_refusal_reason_is_listed() {
            let all = include_str!("billing.rs");
            let source = &all[..all.find("pub(crate) mod codec").unwrap()];
            let mut found = 0;
            for marker in ["InvalidAmount(", "Some("] {
                for (at, _) in source.match_indices(marker) {
                    let rest = source[at + marker.len()..].trim_start();
                    if let Some(lit) = rest.strip_prefix('"') {
                        let text = &lit[..lit.find('"').unwrap()];
                        assert!(REASONS.contains(&text), "reason {text:?} is missing from REASONS");
                        found += 1;
                    }
                }
            }
            assert!(found >= REASONS.len(), "found {found} reason literals");
        }
    }
}
