//! The auto top-up rule at work: setting it, deciding after each charge, recording the
//! payment's outcome, and what a portal shows of it.

use paygo_credits::{Credits, Currency, Money, Rounding};
use paygo_ledger::TransferId;

use crate::auto::{AutoTopUp, AutoTopUpRule, AutoTopUpStatus, SwitchedOff, TopUpAmount, TopUpRequest};
use crate::calendar::month_bounds_ns;
use crate::command::{AmountRule, Receipt, Refusal, Reply};
use crate::ids::{CustomerId, RequestId};
use crate::machine::Billing;
use crate::payment::PaymentOutcome;

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

/// Cents of a whole-cent USD amount.
fn cents(money: &Money) -> Option<i128> {
    money.to_minor().ok()
}
