//! Auto top-up: the rule (the "Addon"), the requests it emits, and the decision after
//! each charge.

use std::collections::VecDeque;

use paygo_credits::{Credits, Currency, Money, Rounding};
use paygo_ledger::TransferId;
use serde::{Deserialize, Serialize};

use crate::command::{AmountRule, Receipt, Refusal, Reply};
use crate::ids::{CustomerId, RequestId};
use crate::machine::Billing;
use crate::payment::{PaymentMethod, PaymentOutcome};

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
}

#[derive(Debug, Clone, Default)]
pub(crate) struct AutoState {
    pub(crate) rule: Option<AutoTopUpRule>,
    pub(crate) outstanding: Option<u128>,
    pub(crate) recent_ns: VecDeque<u64>,
    pub(crate) declines: u32,
    pub(crate) blocked_until_ns: u64,
}

impl Billing {
    pub(crate) fn set_rule(&mut self, customer: u128, rule: Option<AutoTopUpRule>) -> Reply {
        if !self.customers.contains_key(&customer) {
            return Err(Refusal::UnknownAccount);
        }
        if let Some(r) = &rule {
            if let Some(reason) = r.method.refusal() {
                return Err(Refusal::PaymentMethodRefused(reason));
            }
            if r.threshold < Credits::ZERO {
                return Err(Refusal::InvalidAmount(AmountRule::ThresholdNegative));
            }
            match r.amount {
                TopUpAmount::Fixed(m) if m.currency() != Currency::USD || m.is_negative() || m.is_zero() => {
                    return Err(Refusal::InvalidAmount(AmountRule::AutoTopUpNotPositiveUsd));
                }
                TopUpAmount::TargetBalance(c) if c <= r.threshold => {
                    return Err(Refusal::InvalidAmount(AmountRule::TargetNotAboveThreshold));
                }
                // A fixed amount must buy credits as a top-up does (whole cents, in range),
                // so that a paid request always credits the account.
                TopUpAmount::Fixed(m) => {
                    self.credits_for(&m)?;
                }
                TopUpAmount::TargetBalance(_) => {}
            }
            if r.requests_per_window_max == 0 || r.window_ms == 0 {
                return Err(Refusal::InvalidAmount(AmountRule::RequestWindowEmpty));
            }
        }
        if let Some(state) = self.customers.get_mut(&customer) {
            state.auto.rule = rule;
        }
        Ok(Receipt::RuleSet)
    }

    pub(crate) fn decide_top_up(&mut self, now_ns: u64, customer: u128) -> AutoTopUp {
        let balance = self.balance(CustomerId(customer)).unwrap_or(Credits::ZERO);
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
            return AutoTopUp::Outstanding {
                request: RequestId(request),
            };
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
                None => RequestId(self.next_request),
                // `mint` would borrow all of `self` while `state` is borrowed.
                Some(_) => RequestId(TransferId::from_time_ns(now_ns, self.next_request).0),
            },
            customer: CustomerId(customer),
            amount,
            method: rule.method,
            at_ns: now_ns,
        };
        self.next_request += 1;
        auto.outstanding = Some(request.id.0);
        auto.recent_ns.push_back(now_ns);
        self.requests.insert(request.id.0, request);
        self.outbox.push(request);
        AutoTopUp::Requested(request)
    }

    pub(crate) fn report_now(&mut self, now_ns: u64, request: u128, outcome: PaymentOutcome) -> Reply {
        // The request stays outstanding (and listed by `outstanding_requests`) unless the
        // outcome is recorded: a paid request that could not be credited is never dropped.
        let req = *self.requests.get(&request).ok_or(Refusal::UnknownRequest)?;
        let credits = match outcome {
            PaymentOutcome::Succeeded => {
                let credits = self.credits_for(&req.amount)?;
                self.credit_purchase(now_ns, req.customer.0, credits, request)?;
                credits
            }
            PaymentOutcome::Declined => Credits::ZERO,
        };
        self.requests.remove(&request);
        let mut retry_after_ns = None;
        if let Some(state) = self.customers.get_mut(&req.customer.0) {
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

    /// Takes the auto top-up requests emitted since the last call.
    pub fn drain_requests(&mut self) -> Vec<TopUpRequest> {
        std::mem::take(&mut self.outbox)
    }

    /// The auto top-up requests still waiting for their payment's outcome, oldest first:
    /// what a service re-drives after a restart (a durable handle gives `&Billing` through
    /// [`paygo_ledger::SharedLedger::read`]).
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
}
