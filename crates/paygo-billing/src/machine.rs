//! The billing layer's state machine: its state, the dispatch of commands, accounts and
//! top-ups.

use std::collections::{BTreeSet, HashMap};

use paygo_credits::{Credits, Currency, Money, RemainderCarrier, Rounding};
use paygo_ledger::StateMachine;
use paygo_ledger::{Account, AccountId, Event, EventResult, Ledger, LedgerError, Transfer, TransferFlags, TransferId};

use crate::auto::{AutoState, TopUpRequest};
use crate::chart::{BREAKAGE, FUNDING, LOT_BASE, PROMOTIONS, RECEIVABLES, REVENUE, codes};
use crate::command::{AmountRule, Command, Receipt, Refusal, Reply};
use crate::config::BillingConfig;
use crate::ids::{CustomerId, HoldId, TopUpId};
use crate::payment::PaymentMethod;

/// The kinds of idempotent operation, each with ids of its own: a top-up and a hold may
/// share an id without meaning the same operation. The discriminants are the store's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum IdKind {
    TopUp = 1,
    Hold = 2,
    Grant = 3,
    Payment = 4,
    Reversal = 5,
}

impl IdKind {
    /// The kind stored as `code`.
    pub(crate) fn from_code(code: u8) -> Option<IdKind> {
        [
            IdKind::TopUp,
            IdKind::Hold,
            IdKind::Grant,
            IdKind::Payment,
            IdKind::Reversal,
        ]
        .into_iter()
        .find(|k| *k as u8 == code)
    }
}

/// Commands are refused once an id counter reaches this (2^64 - 2^40): a stored state's
/// counters are below 2^64 (`codec.rs`), and one command mints far fewer than 2^40 ids
/// (its transfers are one per lot of the customer and a few more, its lots and requests
/// one), so a command never takes a counter past what a store holds. Found by fuzzing
/// (`docs/fuzzing.md`, L4).
pub(crate) const COUNTERS_SOFT_MAX: u128 = (1 << 64) - (1 << 40);

/// With a window, the billing layer drops forgotten replies and holds from memory when it
/// holds this many, or twice as many as after the last time, whichever is more.
pub(crate) const COMPACT_MIN: usize = 1 << 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lot {
    pub(crate) account: AccountId,
    pub(crate) expires_at_ns: u64,
    pub(crate) granted_at_ns: u64,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct CustomerState {
    pub(crate) lots: Vec<Lot>,
    pub(crate) auto: AutoState,
    /// The sub-credit remainder of the customer's charges by exact cost.
    pub(crate) carrier: RemainderCarrier,
    /// Credits owed by exact cost beyond the holds, never charged (see
    /// [`Command::CaptureCost`]).
    pub(crate) uncollected: Credits,
    /// Credits clawed back by payment reversals that the paid balance did not cover, not
    /// settled yet (see [`Command::ReversePayment`]).
    pub(crate) arrears: Credits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HoldStatus {
    Open,
    Captured,
    Released,
}

#[derive(Debug, Clone)]
pub(crate) struct Hold {
    pub(crate) customer: u128,
    pub(crate) amount: Credits,
    /// Pending transfer, source account, amount held from it: in spend order.
    pub(crate) parts: Vec<(TransferId, AccountId, Credits)>,
    pub(crate) status: HoldStatus,
    /// The command that closed the hold and its reply (boxed: most holds are small, and
    /// a reply can carry a whole auto top-up request).
    pub(crate) reply: Option<Box<(Command, Reply)>>,
}

/// The billing layer: a [`Ledger`] and the state that the operations need (lots, holds,
/// auto top-up rules, replies for idempotency). Deterministic: the same commands at the
/// same times give the same state and replies, so it can be journaled and replayed.
#[derive(Debug, Clone)]
pub struct Billing {
    pub(crate) ledger: Ledger,
    pub(crate) config: BillingConfig,
    pub(crate) customers: HashMap<u128, CustomerState>,
    pub(crate) holds: HashMap<u128, Hold>,
    /// First replies by id, boxed: a `Command` and a `Reply` are sized for their largest
    /// variants (a rule, a request with references), far above a typical entry.
    pub(crate) replies: HashMap<(IdKind, u128), Box<(Command, Reply)>>,
    pub(crate) requests: HashMap<u128, TopUpRequest>,
    pub(crate) lot_expiries: BTreeSet<(u64, u128)>,
    pub(crate) expired_lots: BTreeSet<u128>,
    pub(crate) lot_owner: HashMap<u128, u128>,
    pub(crate) outbox: Vec<TopUpRequest>,
    pub(crate) next_transfer: u128,
    pub(crate) next_lot: u128,
    pub(crate) next_request: u128,
    /// The customers whose arrears are above zero (derived from `customers`).
    pub(crate) in_arrears: BTreeSet<u128>,
    /// With a window: compact when `replies` and `holds` hold this many together.
    pub(crate) compact_at_len: usize,
    /// Commands are refused once the lot or request counter reaches this: the billing
    /// layer's limit, or the end of a shard's own id range ([`crate::Shard`]). Not part
    /// of the stored state (a shard's number gives it).
    pub(crate) counter_limit: u128,
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
            (RECEIVABLES, codes::RECEIVABLES),
        ]
        .map(|(id, code)| Event::CreateAccount(Account::new(id).with_code(code)));
        // Five events at time 0 on an empty ledger: below the batch limit, valid ids.
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
            in_arrears: BTreeSet::new(),
            compact_at_len: COMPACT_MIN,
            counter_limit: COUNTERS_SOFT_MAX,
        }
    }

    /// The ledger underneath, to read.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Gives the ledger underneath memory for its next transfers (see [`paygo_ledger::Spare`]).
    pub(crate) fn add_ledger_spare(&mut self, spare: paygo_ledger::Spare) {
        self.ledger.add_spare(spare);
    }

    /// The settings.
    pub fn config(&self) -> &BillingConfig {
        &self.config
    }

    /// The customer's balance: the paid balance and the unexpired bonus lots, less what is
    /// held, less the arrears of a payment reversal ([`Billing::arrears`]): negative when
    /// the arrears are more than the rest.
    ///
    /// # Errors
    ///
    /// [`Refusal::UnknownAccount`].
    pub fn balance(&self, customer: CustomerId) -> Result<Credits, Refusal> {
        let customer = customer.0;
        let state = self.customers.get(&customer).ok_or(Refusal::UnknownAccount)?;
        let mut total = self.available(AccountId(customer));
        for lot in &state.lots {
            total = total.saturating_add(self.available(lot.account));
        }
        total = total.saturating_sub(i128::from(state.arrears.get()));
        Ok(Credits::new(i64::try_from(total).unwrap_or(if total < 0 {
            i64::MIN
        } else {
            i64::MAX
        })))
    }

    /// The paid part of a customer's balance (without bonus lots), less what is held. Not
    /// less the arrears ([`Billing::arrears`]): for a customer in arrears it is 0, since
    /// paid credits that become available settle the arrears at once.
    ///
    /// # Errors
    ///
    /// [`Refusal::UnknownAccount`].
    pub fn paid_balance(&self, customer: CustomerId) -> Result<Credits, Refusal> {
        let customer = customer.0;
        if !self.customers.contains_key(&customer) {
            return Err(Refusal::UnknownAccount);
        }
        Ok(Credits::new(
            i64::try_from(self.available(AccountId(customer))).unwrap_or(i64::MAX),
        ))
    }

    pub(crate) fn available(&self, account: AccountId) -> i128 {
        self.ledger.account(account).map_or(0, |a| a.available())
    }

    /// Applies one command at `now_ns`. Lots and holds whose time has passed expire first.
    ///
    /// # Errors
    ///
    /// The [`Refusal`] of the command; nothing is changed then.
    pub fn execute(&mut self, now_ns: u64, command: &Command) -> Reply {
        // Before anything mints an id: a store holds counters below 2^64, and no command
        // mints 2^40 of them, so a state that decodes still decodes after any command.
        if self.next_transfer >= COUNTERS_SOFT_MAX
            || self.next_lot >= self.counter_limit
            || self.next_request >= self.counter_limit
        {
            return Err(Refusal::CountersExhausted);
        }
        self.sweep(now_ns);
        // Credits back on a paid balance in arrears (a hold expired) settle it first.
        self.settle_arrears(now_ns);
        self.window_check(now_ns, command)?;
        let reply = self.dispatch(now_ns, command);
        self.settle_arrears(now_ns);
        reply
    }

    fn dispatch(&mut self, now_ns: u64, command: &Command) -> Reply {
        match *command {
            Command::OpenAccount { customer } => self.open(now_ns, customer.0),
            Command::TopUp {
                id,
                customer,
                amount,
                method,
            } => self.once(IdKind::TopUp, id.0, command, |b| {
                b.top_up_now(now_ns, id.0, customer.0, amount, method)
            }),
            Command::Hold {
                id,
                customer,
                amount,
                timeout_ms,
            } => self.once(IdKind::Hold, id.0, command, |b| {
                b.hold_now(now_ns, id.0, customer.0, amount, timeout_ms)
            }),
            Command::Capture { hold, amount } => self.capture_now(now_ns, command, hold.0, amount, Credits::ZERO),
            Command::CaptureCost { hold, cost } => self.capture_cost_now(now_ns, command, hold.0, cost),
            Command::Release { hold } => self.release_now(now_ns, command, hold.0),
            Command::GrantBonus {
                id,
                customer,
                amount,
                expires_at_ns,
            } => self.once(IdKind::Grant, id.0, command, |b| {
                b.grant_now(now_ns, customer.0, amount, expires_at_ns)
            }),
            Command::SetAutoTopUp { customer, rule } => self.set_rule(customer.0, rule),
            Command::ReportPayment { request, outcome } => self.once(IdKind::Payment, request.0, command, |b| {
                b.report_now(now_ns, request.0, outcome)
            }),
            Command::ReversePayment {
                id,
                customer,
                amount,
                payment,
            } => self.once(IdKind::Reversal, id.0, command, |b| {
                b.reverse_now(now_ns, customer.0, amount, payment)
            }),
            Command::ExtendHold { hold, timeout_ms } => self.extend_now(now_ns, hold.0, timeout_ms),
        }
    }

    /// Opens a customer account (see [`Command::OpenAccount`]).
    ///
    /// # Errors
    ///
    /// The [`Refusal`] of the command.
    pub fn open_account(&mut self, now_ns: u64, customer: CustomerId) -> Reply {
        self.execute(now_ns, &Command::OpenAccount { customer })
    }

    /// Buys credits (see [`Command::TopUp`]).
    ///
    /// # Errors
    ///
    /// The [`Refusal`] of the command.
    pub fn top_up(
        &mut self,
        now_ns: u64,
        id: TopUpId,
        customer: CustomerId,
        amount: Money,
        method: PaymentMethod,
    ) -> Reply {
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
    pub fn hold(&mut self, now_ns: u64, id: HoldId, customer: CustomerId, amount: Credits, timeout_ms: u64) -> Reply {
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
    pub fn capture(&mut self, now_ns: u64, hold: HoldId, amount: Credits) -> Reply {
        self.execute(now_ns, &Command::Capture { hold, amount })
    }

    /// Releases a hold (see [`Command::Release`]).
    ///
    /// # Errors
    ///
    /// The [`Refusal`] of the command.
    pub fn release(&mut self, now_ns: u64, hold: HoldId) -> Reply {
        self.execute(now_ns, &Command::Release { hold })
    }

    pub(crate) fn once(
        &mut self,
        kind: IdKind,
        id: u128,
        command: &Command,
        run: impl FnOnce(&mut Billing) -> Reply,
    ) -> Reply {
        if let Some(stored) = self.replies.get(&(kind, id)) {
            let (first, reply) = &**stored;
            return if first == command {
                *reply
            } else {
                Err(Refusal::IdReused)
            };
        }
        let reply = run(self);
        self.replies.insert((kind, id), Box::new((*command, reply)));
        reply
    }

    /// Applies events that the billing layer built; a batch of its own making is never
    /// above the limit.
    pub(crate) fn apply(&mut self, now_ns: u64, events: &[Event]) -> Vec<EventResult> {
        self.ledger
            .apply(now_ns, events)
            .unwrap_or_else(|_| vec![EventResult::LinkedEventChainOpen; events.len()])
    }

    /// Applies `events` as one linked chain (all or none: every event but the last gets
    /// `LINKED`) and returns the failure that broke it, if any (not the
    /// `LinkedEventFailed` of the events that only went down with it).
    pub(crate) fn apply_chain(&mut self, now_ns: u64, events: &mut [Event]) -> Option<EventResult> {
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

    pub(crate) fn open(&mut self, now_ns: u64, customer: u128) -> Reply {
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

    pub(crate) fn credits_for(&self, amount: &Money) -> Result<Credits, Refusal> {
        if amount.currency() != Currency::USD {
            return Err(Refusal::InvalidAmount(AmountRule::TopUpNotUsd));
        }
        if !amount.is_rounded().unwrap_or(false) {
            return Err(Refusal::InvalidAmount(AmountRule::TopUpNotWholeCents));
        }
        let credits = self
            .config
            .credit_rate
            .to_credits(amount, Rounding::Down)
            .map_err(|_| Refusal::InvalidAmount(AmountRule::TopUpOutOfRange))?;
        if credits <= Credits::ZERO {
            return Err(Refusal::InvalidAmount(AmountRule::TopUpNotPositive));
        }
        Ok(credits)
    }

    pub(crate) fn top_up_now(
        &mut self,
        now_ns: u64,
        id: u128,
        customer: u128,
        amount: Money,
        method: PaymentMethod,
    ) -> Reply {
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
    /// top-up (or auto top-up request) id `source`; in the same linked chain, settles the
    /// customer's arrears from them first.
    pub(crate) fn credit_purchase(
        &mut self,
        now_ns: u64,
        customer: u128,
        credits: Credits,
        source: u128,
    ) -> Result<(), Refusal> {
        let transfer = Transfer::new(self.next_transfer_id(now_ns), FUNDING, AccountId(customer), credits)
            .with_code(codes::TOP_UP)
            .with_user_data(source);
        let arrears = self.customers.get(&customer).map_or(Credits::ZERO, |c| c.arrears);
        let settled = arrears.min(credits);
        let mut events = vec![Event::CreateTransfer(transfer)];
        if settled > Credits::ZERO {
            events.push(self.settlement(now_ns, customer, settled, source));
        }
        match self.apply_chain(now_ns, &mut events) {
            None => {
                if settled > Credits::ZERO {
                    self.set_arrears(customer, Credits::new(arrears.get() - settled.get()));
                }
                Ok(())
            }
            Some(other) => Err(Refusal::Ledger(other)),
        }
    }
}

impl StateMachine for Billing {
    type Command = Command;
    type Reply = Reply;
    const BATCH_MAX: usize = paygo_ledger::BATCH_EVENTS_MAX;

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use paygo_ledger::durable::Durable;

    use super::*;

    /// The fuzzing finding L4: a state whose counters a store holds (below 2^64) ran
    /// commands that took a counter past it, and its next snapshot was refused. Now the
    /// commands are refused and the state round-trips.
    #[test]
    fn counters_near_their_limit_refuse_commands_and_the_state_still_round_trips() {
        let t = 1_000_000_000;
        let mut b = Billing::new(BillingConfig::default());
        b.open_account(t, CustomerId(1)).unwrap();
        b.next_transfer = (1 << 64) - 2;
        let top_up = Command::TopUp {
            id: TopUpId(1),
            customer: CustomerId(1),
            amount: Money::usd("1.00".parse().unwrap()),
            method: crate::PaymentMethod::PayPal,
        };
        assert_eq!(b.execute(t, &top_up), Err(Refusal::CountersExhausted));
        let mut bytes = Vec::new();
        b.encode_state(&mut bytes).unwrap();
        let back = Billing::decode_state(&bytes, 0).unwrap();
        assert_eq!(back.next_transfer, (1 << 64) - 2);
        // Just below the soft limit, commands still run.
        b.next_transfer = COUNTERS_SOFT_MAX - 10;
        assert!(b.execute(t, &top_up).is_ok());
        let mut bytes = Vec::new();
        b.encode_state(&mut bytes).unwrap();
        assert!(Billing::decode_state(&bytes, 0).is_ok());
    }
}
