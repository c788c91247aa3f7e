//! Auto top-up: the rule (the "Addon") and its guardrails (a window of requests, a
//! back-off after declines, a monthly cap, a switch-off after declines in a row), the
//! requests it emits, and the decision after each charge.

use std::collections::VecDeque;

use paygo_credits::{Credits, Currency, Money, Rounding};
use paygo_ledger::TransferId;
use serde::{Deserialize, Serialize};

use crate::calendar::month_bounds_ns;
use crate::command::{AmountRule, Receipt, Refusal, Reply};
use crate::ids::{CustomerId, RequestId};
use crate::machine::Billing;
use crate::payment::{PaymentMethod, PaymentOutcome};
use crate::reference::Reference;

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
    /// The most the rule may request in one UTC calendar month, in USD (whole cents): a
    /// request that would take the month's requested amounts above it is not made
    /// ([`AutoTopUp::MonthlyCapReached`]); a declined payment gives its amount back to its
    /// month. None: no cap.
    pub monthly_cap: Option<Money>,
    /// After this many declined payments in a row, the rule switches itself off
    /// (`enabled` becomes false), says so in the decline's
    /// [`Receipt::PaymentRecorded`](crate::Receipt::PaymentRecorded), and shows why in
    /// [`Billing::auto_top_up`]. Setting the rule again switches it on. None: never.
    pub disable_after_declines: Option<u32>,
    /// The buyer's tax ID, copied into each request so that the invoice can show it.
    pub buyer_tax_id: Option<Reference>,
    /// The buyer's purchase-order reference, copied into each request likewise.
    pub purchase_order: Option<Reference>,
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
    /// The buyer's tax ID, from the rule, for the invoice.
    pub buyer_tax_id: Option<Reference>,
    /// The buyer's purchase-order reference, from the rule, for the invoice.
    pub purchase_order: Option<Reference>,
}

/// What the auto top-up rule decided after a charge. Every case is reported, so that a
/// rule never stops silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
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
    /// The request would take this month's requested amounts above the rule's
    /// `monthly_cap`: not made.
    MonthlyCapReached {
        /// The start of the next UTC calendar month, when the cap starts again from zero.
        until_ns: u64,
    },
}

/// Why an auto top-up rule switched itself off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SwitchedOff {
    /// `disable_after_declines` payments were declined in a row.
    Declines {
        /// The declines in a row.
        declines: u32,
        /// When the last of them was reported.
        at_ns: u64,
    },
}

/// A customer's auto top-up, as a portal shows it ([`Billing::auto_top_up`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AutoTopUpStatus {
    /// The rule (switched off: `enabled` is false).
    pub rule: Option<AutoTopUpRule>,
    /// Whether the rule switched itself off, and why; cleared when the rule is set again.
    pub switched_off: Option<SwitchedOff>,
    /// Payments declined in a row (since the last success, or the rule was set).
    pub declines_in_a_row: u32,
    /// The request waiting for its payment's outcome.
    pub outstanding: Option<RequestId>,
    /// After declines: no request before this time.
    pub backing_off_until_ns: Option<u64>,
    /// The start of the UTC calendar month that `month_requested` counts (the month of
    /// the latest request).
    pub month_start_ns: u64,
    /// What the rule requested in that month (less declined payments): what its
    /// `monthly_cap` is compared with.
    pub month_requested: Money,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct AutoState {
    pub(crate) rule: Option<AutoTopUpRule>,
    pub(crate) outstanding: Option<u128>,
    pub(crate) recent_ns: VecDeque<u64>,
    pub(crate) declines: u32,
    pub(crate) blocked_until_ns: u64,
    pub(crate) switched_off: Option<SwitchedOff>,
    /// The month that `month_cents` counts: its first nanosecond.
    pub(crate) month_start_ns: u64,
    /// Cents requested in that month, less declined payments.
    pub(crate) month_cents: i128,
}

/// Cents of a whole-cent USD amount.
fn cents(money: &Money) -> Option<i128> {
    money.to_minor().ok()
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
            if let Some(cap) = r.monthly_cap {
                if cap.currency() != Currency::USD
                    || cap.is_negative()
                    || cap.is_zero()
                    || !cap.is_rounded().unwrap_or(false)
                {
                    return Err(Refusal::InvalidAmount(AmountRule::MonthlyCapNotPositiveUsd));
                }
                if let TopUpAmount::Fixed(m) = r.amount
                    && m.amount() > cap.amount()
                {
                    return Err(Refusal::InvalidAmount(AmountRule::AutoTopUpAboveMonthlyCap));
                }
            }
            if r.disable_after_declines == Some(0) {
                return Err(Refusal::InvalidAmount(AmountRule::DeclineLimitZero));
            }
        }
        if let Some(state) = self.customers.get_mut(&customer) {
            // Setting the rule (again) switches it on: declines in a row start from zero.
            // The month's requested amount stays: it is money asked for this month.
            state.auto.rule = rule;
            state.auto.switched_off = None;
            state.auto.declines = 0;
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
        // The monthly cap: what was requested this UTC month, this request included.
        let Some(amount_cents) = cents(&amount) else {
            return AutoTopUp::Disabled;
        };
        let (month_start_ns, next_month_ns) = month_bounds_ns(now_ns);
        if auto.month_start_ns != month_start_ns {
            auto.month_start_ns = month_start_ns;
            auto.month_cents = 0;
        }
        let month_cents = auto.month_cents.saturating_add(amount_cents);
        if let Some(cap) = rule.monthly_cap
            && cents(&cap).is_none_or(|cap| month_cents > cap)
        {
            return AutoTopUp::MonthlyCapReached {
                until_ns: next_month_ns,
            };
        }
        auto.month_cents = month_cents;
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
            buyer_tax_id: rule.buyer_tax_id,
            purchase_order: rule.purchase_order,
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
        let mut rule_switched_off = false;
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
                    // A declined payment gives its amount back to its month.
                    if month_bounds_ns(req.at_ns).0 == auto.month_start_ns {
                        let back = cents(&req.amount).unwrap_or(0);
                        auto.month_cents = auto.month_cents.saturating_sub(back).max(0);
                    }
                    if let Some(rule) = &mut auto.rule
                        && rule.enabled
                        && rule.disable_after_declines.is_some_and(|n| auto.declines >= n)
                    {
                        rule.enabled = false;
                        auto.switched_off = Some(SwitchedOff::Declines {
                            declines: auto.declines,
                            at_ns: now_ns,
                        });
                        rule_switched_off = true;
                    }
                }
            }
        }
        Ok(Receipt::PaymentRecorded {
            credits,
            retry_after_ns,
            rule_switched_off,
        })
    }

    /// A customer's auto top-up: the rule, whether it switched itself off and why, the
    /// declines in a row, the outstanding request, the back-off, and what was requested
    /// this month (what a billing portal shows).
    ///
    /// # Errors
    ///
    /// [`Refusal::UnknownAccount`].
    pub fn auto_top_up(&self, customer: CustomerId) -> Result<AutoTopUpStatus, Refusal> {
        let auto = &self.customers.get(&customer.0).ok_or(Refusal::UnknownAccount)?.auto;
        Ok(AutoTopUpStatus {
            rule: auto.rule,
            switched_off: auto.switched_off,
            declines_in_a_row: auto.declines,
            outstanding: auto.outstanding.map(RequestId),
            backing_off_until_ns: (auto.blocked_until_ns > 0).then_some(auto.blocked_until_ns),
            month_start_ns: auto.month_start_ns,
            month_requested: Money::from_minor(auto.month_cents, Currency::USD)
                .unwrap_or_else(|_| Money::zero(Currency::USD)),
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
