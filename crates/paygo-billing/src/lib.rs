//! The billing operations of a pay-as-you-go AI model API, on paygo's double-entry ledger:
//! customer accounts, top-ups (non-refundable, payment method checked), holds before a call
//! and captures after it, bonus lots with expiry and a spend order, auto top-up with its
//! guardrails, and payment reversals (chargebacks) with the arrears they leave.
//!
//! ```
//! use paygo_credits::{Credits, Money};
//! use paygo_billing::{Billing, BillingConfig, CardKind, CustomerId, HoldId, PaymentMethod, Refusal, TopUpId};
//!
//! let mut billing = Billing::new(BillingConfig::default());
//! let (customer, t) = (CustomerId(42), 1_000_000_000);
//! billing.open_account(t, customer)?;
//! // No free plan: a hold without balance is refused (the API answers 403).
//! let refused = billing.hold(t, HoldId(1), customer, Credits::new(10), 60_000);
//! assert_eq!(refused, Err(Refusal::InsufficientCredits));
//!
//! // A $10 top-up by card is 20,000,000 credits.
//! let card = PaymentMethod::Card(CardKind::Credit);
//! billing.top_up(t, TopUpId(7), customer, Money::usd("10.00".parse()?), card)?;
//! // Hold the estimate before the call, capture the actual cost after it.
//! billing.hold(t, HoldId(2), customer, Credits::new(5_000), 60_000)?;
//! billing.capture(t, HoldId(2), Credits::new(1_892))?;
//! assert_eq!(billing.balance(customer)?, Credits::new(20_000_000 - 1_892));
//! // A retried capture charges nothing more.
//! billing.capture(t, HoldId(2), Credits::new(1_892))?;
//! assert_eq!(billing.balance(customer)?, Credits::new(19_998_108));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The chart of accounts
//!
//! Every operation is a set of transfers between these accounts (`docs/billing.md`):
//!
//! | account | id | flags | what its balance means |
//! |---|---|---|---|
//! | a customer's balance | the customer id | debits must not exceed credits | credits the customer can spend |
//! | a bonus lot | `LOT_BASE + n` | debits must not exceed credits | what is left of one bonus grant |
//! | top-up funding | [`FUNDING`] | none | minus the credits ever sold |
//! | usage revenue | [`REVENUE`] | none | credits earned by calls |
//! | breakage | [`BREAKAGE`] | none | bonus credits that expired unspent |
//! | promotions | [`PROMOTIONS`] | none | minus the bonus credits ever granted |
//! | receivables | [`RECEIVABLES`] | none | minus the customers' arrears (reversals not covered) |
//!
//! Credits enter a customer's balance only from funding (a paid top-up) or, as a lot, from
//! promotions; they leave it only to revenue (a captured hold), to funding (a payment
//! reversal the provider imposed: [`Command::ReversePayment`]), to receivables (arrears
//! settled) or, for a lot, to breakage (expiry). Top-ups are non-refundable: no API
//! refunds them. A reversal the balance does not cover is owed from receivables to
//! funding, so that `Σ arrears = −balance(RECEIVABLES)`.
//!
//! # The parts
//!
//! - [`Billing`]: the deterministic state machine; [`Command`], [`Receipt`], [`Refusal`].
//! - [`open_billing`]: a durable, shared handle in a directory (the ledger's journal,
//!   snapshots and recovery, `paygo_ledger::durable`).
//! - [`AutoTopUpRule`] and [`AutoTopUp`]: the auto top-up rule, its guardrails (a monthly
//!   cap, a switch-off after declines in a row, the buyer's [`Reference`]s carried on each
//!   request) and its decisions; [`Billing::auto_top_up`] shows its state.
//! - [`Command::ReversePayment`], [`Billing::arrears`]: payment reversals and arrears.
//! - [`BillingStore`]: where billing state lives, as an async trait that shared stores (a
//!   database several gateway replicas write) implement with the same rules;
//!   [`EmbeddedStore`] is the embedded one (the machine in this process, durable through
//!   the ledger's journal). The trait's contract is a suite of cases every store runs
//!   (`contract`, feature `contract`), with a differential run that compares two stores
//!   answer by answer (`contract::differential`).
//! - [`Shard`] and [`run_batch`]: one customer's billing state on its own, and a batch of
//!   commands over such shards, for stores that keep each customer in a row of its own and
//!   lock only the customers a batch touches (paygo-postgres); the rules are still
//!   [`Billing::execute`]'s.

mod auto;
mod calendar;
mod chart;
mod codec;
mod command;
mod config;
#[cfg(feature = "contract")]
pub mod contract;
mod decide;
mod durable;
mod embedded;
mod extend;
mod holds;
mod ids;
mod lots;
mod machine;
mod payment;
mod reference;
mod reversal;
mod shard;
mod sharded;
mod store;
mod window;

pub use auto::{AutoTopUp, AutoTopUpRule, AutoTopUpStatus, SwitchedOff, TopUpAmount, TopUpRequest};
pub use chart::{BREAKAGE, FUNDING, LOT_BASE, PROMOTIONS, RECEIVABLES, REVENUE, codes};
pub use command::{AmountRule, Command, Receipt, Refusal, Reply};
pub use config::BillingConfig;
pub use durable::open_billing;
pub use embedded::{EmbeddedStore, block_on};
pub use ids::{CustomerId, GrantId, HoldId, RequestId, ReversalId, TopUpId};
pub use machine::Billing;
pub use payment::{CardKind, MethodRefusal, PaymentMethod, PaymentOutcome, PaymentRef};
pub use reference::{Reference, ReferenceError};
pub use shard::{
    ClosedHold, IdSpace, SHARD_ID_BITS, SHARD_NO_MAX, Settled, Shard, ShardNo, StoredReply, decode_request,
    encode_request,
};
pub use sharded::{BatchOutcome, Route, Rows, ShardWrite, run_batch};
pub use store::{
    Balance, BillingError, BillingStore, EntryKind, HISTORY_PAGE_MAX, HistoryEntry, HistoryPage, HistoryQuery,
    auto_top_up_of, history_of,
};
