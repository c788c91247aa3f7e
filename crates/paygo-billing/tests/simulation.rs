//! A seeded simulation of the billing layer against a reference model (the "auditor"):
//! random top-ups (some refused), holds, captures, releases, hold expiries, retries with the
//! same and with other bodies, bonus grants and lot expiries, auto top-up rules and payment
//! outcomes with the guardrails (monthly cap, switch-off after declines, references carried),
//! payment reversals and their arrears, and jumps of days across calendar months. Every
//! reply, every balance and arrears, every auto top-up status, the system accounts and the
//! auto top-up requests are compared after each command, and the ledger's invariants
//! checked.
//! `PAYGO_SIM_SEED=<seed>` replays one seed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
// Generated values are small, and the reference model mirrors the spec rule by rule.
#![allow(
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::too_many_lines,
    clippy::similar_names
)]

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use paygo_billing::{
    AmountRule, AutoTopUp, AutoTopUpRule, AutoTopUpStatus, BREAKAGE, Billing, BillingConfig, CardKind, Command,
    FUNDING, LOT_BASE, PROMOTIONS, PaymentMethod, PaymentOutcome, PaymentRef, RECEIVABLES, REVENUE, Receipt, Reference,
    Refusal, Reply, SwitchedOff, TopUpAmount, TopUpRequest,
};
use paygo_billing::{CustomerId, GrantId, HoldId, RequestId, ReversalId, TopUpId};
use paygo_credits::{Credits, Currency, Decimal, Money};
use paygo_ledger::durable::{self, OpenOptions};
use paygo_ledger::{AccountId, LedgerError, ManualClock, SharedLedger};

use paygo_testkit::faults::{Damage, Fault, Faults, Faulty, copy_dir, damage, leave};
use paygo_testkit::rng::Rng;

const RATE: i64 = 2_000_000;
const MS: u64 = 1_000_000;
const DAY: u64 = 86_400_000 * MS;

/// The first nanosecond of the UTC month of `now` and of the next one, counted the slow
/// way: whole years from 1970, then whole months.
fn month_of(now: u64) -> (u64, u64) {
    let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let (mut start, mut year) = (0u64, 1970u64);
    loop {
        for month in 1..=12u64 {
            let days = match month {
                2 if leap(year) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            let next = start + days * DAY;
            if now < next {
                return (start, next);
            }
            start = next;
        }
        year += 1;
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Src {
    Paid,
    Lot(usize),
}

#[derive(Clone, Debug)]
struct ALot {
    account: u128,
    expires: u64,
    granted: u64,
    remaining: i64,
    held: i64,
    drained: bool,
}

#[derive(Clone, Debug, Default)]
struct ACustomer {
    paid: i64,
    paid_held: i64,
    lots: Vec<ALot>,
    rule: Option<AutoTopUpRule>,
    outstanding: Option<u128>,
    recent: VecDeque<u64>,
    declines: u32,
    blocked_until: u64,
    /// The remainder carrier: exact credits owed but not yet charged.
    carry: Decimal,
    /// Whole credits owed beyond the holds (a cost above its hold), never charged.
    uncollected: i64,
    /// Credits a reversal clawed back that the paid balance did not cover.
    arrears: i64,
    switched_off: Option<SwitchedOff>,
    month_start: u64,
    month_cents: i128,
}

#[derive(Clone, Debug)]
struct AHold {
    customer: CustomerId,
    amount: i64,
    parts: Vec<(Src, i64)>,
    expires: u64,
    open: bool,
    captured: bool,
    reply: Option<(Command, Reply)>,
}

/// The reference model of the billing rules, written without the ledger: plain numbers per
/// customer, lot and hold.
#[derive(Clone, Default)]
struct Auditor {
    customers: BTreeMap<CustomerId, ACustomer>,
    holds: BTreeMap<HoldId, AHold>,
    replies: BTreeMap<(u8, u128), (Command, Reply)>,
    requests: BTreeMap<RequestId, TopUpRequest>,
    emitted: Vec<TopUpRequest>,
    next_lot: u128,
    next_request: u128,
    revenue: i64,
    breakage: i64,
    sold: i64,
    /// Credits clawed back by reversals (back to funding, from the customer or receivables).
    reversed: i64,
    promoted: i64,
    bonus_enabled: bool,
}

impl Auditor {
    fn release_parts(&mut self, customer: CustomerId, parts: &[(Src, i64)]) {
        let c = self.customers.get_mut(&customer).unwrap();
        for (src, amount) in parts {
            match src {
                Src::Paid => c.paid_held -= amount,
                Src::Lot(i) => c.lots[*i].held -= amount,
            }
        }
    }

    fn sweep(&mut self, now: u64) {
        let expired: Vec<HoldId> = self
            .holds
            .iter()
            .filter(|(_, h)| h.open && h.expires <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let h = self.holds.get_mut(&id).unwrap();
            h.open = false;
            let (customer, parts) = (h.customer, h.parts.clone());
            self.release_parts(customer, &parts);
        }
        for c in self.customers.values_mut() {
            for lot in &mut c.lots {
                if !lot.drained && lot.expires <= now {
                    let available = lot.remaining - lot.held;
                    if available > 0 {
                        lot.remaining -= available;
                        self.breakage += available;
                    }
                    if lot.held == 0 && lot.remaining - lot.held <= 0 {
                        lot.drained = true;
                    }
                }
            }
        }
    }

    fn balance(&self, customer: CustomerId) -> i64 {
        let c = &self.customers[&customer];
        c.paid - c.paid_held - c.arrears
            + c.lots
                .iter()
                .filter(|l| !l.drained)
                .map(|l| l.remaining - l.held)
                .sum::<i64>()
    }

    fn once(
        &mut self,
        kind: u8,
        id: impl Into<u128>,
        command: &Command,
        run: impl FnOnce(&mut Auditor) -> Reply,
    ) -> Reply {
        let id = id.into();
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

    fn credits_for(amount: &Money) -> Result<i64, Refusal> {
        if amount.currency() != Currency::USD {
            return Err(Refusal::InvalidAmount(AmountRule::TopUpNotUsd));
        }
        let cents = amount.amount() * Decimal::from(100);
        if cents.fract() != Decimal::ZERO {
            return Err(Refusal::InvalidAmount(AmountRule::TopUpNotWholeCents));
        }
        let credits = i64::try_from(cents.mantissa() / 10i128.pow(cents.scale())).unwrap() * (RATE / 100);
        if credits <= 0 {
            return Err(Refusal::InvalidAmount(AmountRule::TopUpNotPositive));
        }
        Ok(credits)
    }

    /// Settles arrears from what each paid balance in arrears has available.
    fn settle(&mut self) {
        for c in self.customers.values_mut() {
            let settled = (c.paid - c.paid_held).clamp(0, c.arrears);
            c.paid -= settled;
            c.arrears -= settled;
        }
    }

    /// Buys `credits` for `customer`: its arrears are settled from them first.
    fn buy(&mut self, customer: CustomerId, credits: i64) {
        let c = self.customers.get_mut(&customer).unwrap();
        let settled = credits.min(c.arrears);
        c.paid += credits - settled;
        c.arrears -= settled;
        self.sold += credits;
    }

    fn reversal_credits(amount: &Money) -> Result<i64, Refusal> {
        Auditor::credits_for(amount).map_err(|e| match e {
            Refusal::InvalidAmount(AmountRule::TopUpNotUsd) => Refusal::InvalidAmount(AmountRule::ReversalNotUsd),
            Refusal::InvalidAmount(AmountRule::TopUpNotWholeCents) => {
                Refusal::InvalidAmount(AmountRule::ReversalNotWholeCents)
            }
            _ => Refusal::InvalidAmount(AmountRule::ReversalNotPositive),
        })
    }

    fn status(&self, customer: CustomerId) -> AutoTopUpStatus {
        let c = &self.customers[&customer];
        AutoTopUpStatus {
            rule: c.rule,
            switched_off: c.switched_off,
            declines_in_a_row: c.declines,
            outstanding: c.outstanding.map(RequestId),
            backing_off_until_ns: (c.blocked_until > 0).then_some(c.blocked_until),
            month_start_ns: c.month_start,
            month_requested: Money::from_minor(c.month_cents, Currency::USD).unwrap(),
        }
    }

    fn execute(&mut self, now: u64, command: &Command) -> Reply {
        self.sweep(now);
        self.settle();
        let reply = self.dispatch(now, command);
        self.settle();
        reply
    }

    fn dispatch(&mut self, now: u64, command: &Command) -> Reply {
        match *command {
            Command::OpenAccount { customer } => {
                if customer == CustomerId(0) || customer >= CustomerId(LOT_BASE) {
                    return Err(Refusal::InvalidCustomerId);
                }
                if self.customers.contains_key(&customer) {
                    return Err(Refusal::AccountExists);
                }
                self.customers.insert(customer, ACustomer::default());
                Ok(Receipt::Opened)
            }
            Command::TopUp {
                id,
                customer,
                amount,
                method,
            } => self.once(1, id, command, |a| {
                if let Some(reason) = method.refusal() {
                    return Err(Refusal::PaymentMethodRefused(reason));
                }
                if !a.customers.contains_key(&customer) {
                    return Err(Refusal::UnknownAccount);
                }
                let credits = Auditor::credits_for(&amount)?;
                a.buy(customer, credits);
                Ok(Receipt::ToppedUp {
                    credits: Credits::new(credits),
                })
            }),
            Command::Hold {
                id,
                customer,
                amount,
                timeout_ms,
            } => self.once(2, id, command, |a| {
                let Some(c) = a.customers.get_mut(&customer) else {
                    return Err(Refusal::UnknownAccount);
                };
                if c.arrears > 0 {
                    return Err(Refusal::AccountInArrears {
                        arrears: Credits::new(c.arrears),
                    });
                }
                if amount.get() <= 0 {
                    return Err(Refusal::InvalidAmount(AmountRule::HoldNotPositive));
                }
                if timeout_ms == 0 || timeout_ms > 3_600_000 {
                    return Err(Refusal::InvalidTimeout);
                }
                let mut order: Vec<usize> = (0..c.lots.len())
                    .filter(|&i| !c.lots[i].drained && c.lots[i].expires > now)
                    .collect();
                order.sort_by_key(|&i| (c.lots[i].expires, c.lots[i].granted, c.lots[i].account));
                let mut left = amount.get();
                let mut parts = Vec::new();
                for src in order.into_iter().map(Src::Lot).chain([Src::Paid]) {
                    let available = match src {
                        Src::Lot(i) => c.lots[i].remaining - c.lots[i].held,
                        Src::Paid => c.paid - c.paid_held,
                    };
                    let take = available.min(left);
                    if take > 0 {
                        parts.push((src, take));
                        left -= take;
                    }
                }
                if left > 0 {
                    return Err(Refusal::InsufficientCredits);
                }
                for (src, take) in &parts {
                    match src {
                        Src::Lot(i) => c.lots[*i].held += take,
                        Src::Paid => c.paid_held += take,
                    }
                }
                let expires = now + timeout_ms * MS;
                a.holds.insert(
                    id,
                    AHold {
                        customer,
                        amount: amount.get(),
                        parts,
                        expires,
                        open: true,
                        captured: false,
                        reply: None,
                    },
                );
                Ok(Receipt::Held { amount })
            }),
            Command::Capture { hold, amount } => {
                let Some(h) = self.holds.get(&hold).cloned() else {
                    return Err(Refusal::UnknownHold);
                };
                self.capture(now, command, hold, &h, amount, 0)
            }
            Command::CaptureCost { hold, cost } => {
                let Some(h) = self.holds.get(&hold).cloned() else {
                    return Err(Refusal::UnknownHold);
                };
                if let Some((first, reply)) = &h.reply {
                    return if first == command {
                        *reply
                    } else if h.captured || h.open {
                        Err(Refusal::HoldCaptured)
                    } else {
                        Err(Refusal::HoldReleased)
                    };
                }
                if cost.get().is_sign_negative() && !cost.get().is_zero() {
                    return Err(Refusal::InvalidAmount(AmountRule::CostNegative));
                }
                // The carrier, written out: round half to even, carry the rest.
                let total = self.customers[&h.customer].carry + cost.get();
                let whole = total.round_dp_with_strategy(0, paygo_credits::Rounding::HalfEven.strategy());
                let charged = i64::try_from(whole.mantissa() / 10i128.pow(whole.scale())).unwrap();
                // Above the hold: the hold is charged, the rest is recorded as uncollected,
                // and the carrier moves on as if all of it was charged.
                let shortfall = (charged - h.amount).max(0);
                let reply = self.capture(now, command, hold, &h, Credits::new(charged - shortfall), shortfall);
                if reply.is_ok() {
                    let c = self.customers.get_mut(&h.customer).unwrap();
                    c.carry = total - whole;
                    c.uncollected += shortfall;
                }
                reply
            }
            Command::ExtendHold { hold, timeout_ms } => {
                let Some(h) = self.holds.get(&hold).cloned() else {
                    return Err(Refusal::UnknownHold);
                };
                if h.reply.is_some() {
                    return Err(if h.captured {
                        Refusal::HoldCaptured
                    } else {
                        Refusal::HoldReleased
                    });
                }
                if timeout_ms == 0 || timeout_ms > 3_600_000 {
                    return Err(Refusal::InvalidTimeout);
                }
                if !h.open {
                    return Err(Refusal::HoldExpired);
                }
                let until_ns = now + timeout_ms * MS;
                if let Some(stored) = self.holds.get_mut(&hold) {
                    stored.expires = until_ns;
                }
                Ok(Receipt::HoldExtended { until_ns })
            }
            Command::Release { hold } => {
                let Some(h) = self.holds.get(&hold).cloned() else {
                    return Err(Refusal::UnknownHold);
                };
                if let Some((first, reply)) = &h.reply {
                    return if first == command {
                        *reply
                    } else if h.captured {
                        Err(Refusal::HoldCaptured)
                    } else {
                        Ok(Receipt::Released)
                    };
                }
                if h.open {
                    self.release_parts(h.customer, &h.parts);
                    self.sweep(now);
                }
                let stored = self.holds.get_mut(&hold).unwrap();
                stored.open = false;
                stored.reply = Some((*command, Ok(Receipt::Released)));
                Ok(Receipt::Released)
            }
            Command::GrantBonus {
                id,
                customer,
                amount,
                expires_at_ns,
            } => self.once(3, id, command, |a| {
                if !a.bonus_enabled {
                    return Err(Refusal::BonusPaused);
                }
                let Some(c) = a.customers.get_mut(&customer) else {
                    return Err(Refusal::UnknownAccount);
                };
                if amount.get() <= 0 {
                    return Err(Refusal::InvalidAmount(AmountRule::BonusNotPositive));
                }
                if expires_at_ns <= now {
                    return Err(Refusal::InvalidAmount(AmountRule::BonusExpiryNotFuture));
                }
                a.next_lot += 1;
                let account = LOT_BASE + a.next_lot;
                c.lots.push(ALot {
                    account,
                    expires: expires_at_ns,
                    granted: now,
                    remaining: amount.get(),
                    held: 0,
                    drained: false,
                });
                a.promoted += amount.get();
                Ok(Receipt::BonusGranted {
                    lot: AccountId(account),
                })
            }),
            Command::SetAutoTopUp { customer, rule } => {
                let Some(c) = self.customers.get_mut(&customer) else {
                    return Err(Refusal::UnknownAccount);
                };
                c.rule = rule;
                c.switched_off = None;
                c.declines = 0;
                Ok(Receipt::RuleSet)
            }
            Command::ReportPayment { request, outcome } => self.once(4, request, command, |a| {
                let Some(req) = a.requests.remove(&request) else {
                    return Err(Refusal::UnknownRequest);
                };
                let credits = if outcome == PaymentOutcome::Succeeded {
                    let credits = Auditor::credits_for(&req.amount)?;
                    a.buy(req.customer, credits);
                    credits
                } else {
                    0
                };
                let c = a.customers.get_mut(&req.customer).unwrap();
                c.outstanding = None;
                let mut retry_after_ns = None;
                let mut rule_switched_off = false;
                if outcome == PaymentOutcome::Succeeded {
                    c.declines = 0;
                } else {
                    c.declines += 1;
                    // A rule removed while its request was outstanding waits nothing.
                    let wait = c.rule.map_or(0, |rule| {
                        (rule.backoff_ms << (c.declines - 1).min(40)).min(rule.backoff_max_ms)
                    });
                    c.blocked_until = now + wait * MS;
                    retry_after_ns = Some(c.blocked_until);
                    if month_of(req.at_ns).0 == c.month_start {
                        c.month_cents = (c.month_cents - req.amount.to_minor().unwrap()).max(0);
                    }
                    if let Some(rule) = &mut c.rule
                        && rule.enabled
                        && rule.disable_after_declines.is_some_and(|n| c.declines >= n)
                    {
                        rule.enabled = false;
                        c.switched_off = Some(SwitchedOff::Declines {
                            declines: c.declines,
                            at_ns: now,
                        });
                        rule_switched_off = true;
                    }
                }
                Ok(Receipt::PaymentRecorded {
                    credits: Credits::new(credits),
                    retry_after_ns,
                    rule_switched_off,
                })
            }),
            Command::ReversePayment {
                id, customer, amount, ..
            } => self.once(5, id, command, |a| {
                if !a.customers.contains_key(&customer) {
                    return Err(Refusal::UnknownAccount);
                }
                let credits = Auditor::reversal_credits(&amount)?;
                let c = a.customers.get_mut(&customer).unwrap();
                let recovered = (c.paid - c.paid_held).clamp(0, credits);
                c.paid -= recovered;
                c.arrears += credits - recovered;
                a.reversed += credits;
                Ok(Receipt::Reversed {
                    credits: Credits::new(credits),
                    recovered: Credits::new(recovered),
                    arrears: Credits::new(credits - recovered),
                })
            }),
        }
    }

    fn capture(
        &mut self,
        now: u64,
        command: &Command,
        hold: HoldId,
        h: &AHold,
        amount: Credits,
        shortfall: i64,
    ) -> Reply {
        if let Some((first, reply)) = &h.reply {
            return if first == command {
                *reply
            } else if h.captured {
                Err(Refusal::HoldCaptured)
            } else if !h.open {
                Err(Refusal::HoldReleased)
            } else {
                Err(Refusal::HoldCaptured)
            };
        }
        if amount.get() < 0 {
            return Err(Refusal::InvalidAmount(AmountRule::CaptureNegative));
        }
        if amount.get() > h.amount {
            return Err(Refusal::CaptureExceedsHold {
                held: Credits::new(h.amount),
                requested: amount,
            });
        }
        let reply = if h.open {
            self.release_parts(h.customer, &h.parts);
            let mut left = amount.get();
            let c = self.customers.get_mut(&h.customer).unwrap();
            for (src, held) in &h.parts {
                let take = left.min(*held);
                left -= take;
                match src {
                    Src::Lot(i) => c.lots[*i].remaining -= take,
                    Src::Paid => c.paid -= take,
                }
            }
            self.revenue += amount.get();
            self.sweep(now);
            let auto_top_up = self.decide(now, h.customer);
            Ok(Receipt::Captured {
                charged: amount,
                released: Credits::new(h.amount - amount.get()),
                shortfall: Credits::new(shortfall),
                auto_top_up,
            })
        } else {
            Err(Refusal::HoldExpired)
        };
        let stored = self.holds.get_mut(&hold).unwrap();
        stored.open = false;
        stored.captured = reply.is_ok();
        stored.reply = Some((*command, reply));
        reply
    }

    fn decide(&mut self, now: u64, customer: CustomerId) -> AutoTopUp {
        let balance = self.balance(customer);
        let c = self.customers.get_mut(&customer).unwrap();
        let Some(rule) = c.rule else { return AutoTopUp::NoRule };
        if !rule.enabled {
            return AutoTopUp::Disabled;
        }
        if balance >= rule.threshold.get() {
            return AutoTopUp::NotNeeded;
        }
        if let Some(request) = c.outstanding {
            return AutoTopUp::Outstanding {
                request: RequestId(request),
            };
        }
        if now < c.blocked_until {
            return AutoTopUp::BackingOff {
                until_ns: c.blocked_until,
            };
        }
        let window = rule.window_ms * MS;
        while c.recent.front().is_some_and(|&t| t + window <= now) {
            c.recent.pop_front();
        }
        if c.recent.len() >= rule.requests_per_window_max as usize {
            return AutoTopUp::WindowLimitReached {
                until_ns: c.recent[0] + window,
            };
        }
        let amount = match rule.amount {
            TopUpAmount::Fixed(m) => m,
            TopUpAmount::TargetBalance(target) => {
                let needed = target.get() - balance;
                let cents = (needed + RATE / 100 - 1) / (RATE / 100);
                Money::from_minor(i128::from(cents), Currency::USD).unwrap()
            }
        };
        let (month_start, next_month) = month_of(now);
        if c.month_start != month_start {
            c.month_start = month_start;
            c.month_cents = 0;
        }
        let month_cents = c.month_cents + amount.to_minor().unwrap();
        if rule
            .monthly_cap
            .is_some_and(|cap| month_cents > cap.to_minor().unwrap())
        {
            return AutoTopUp::MonthlyCapReached { until_ns: next_month };
        }
        c.month_cents = month_cents;
        self.next_request += 1;
        let request = TopUpRequest {
            id: RequestId(self.next_request),
            customer,
            amount,
            method: rule.method,
            at_ns: now,
            buyer_tax_id: rule.buyer_tax_id,
            purchase_order: rule.purchase_order,
        };
        c.outstanding = Some(request.id.0);
        c.recent.push_back(now);
        self.requests.insert(request.id, request);
        self.emitted.push(request);
        AutoTopUp::Requested(request)
    }
}

fn random_command(
    rng: &mut Rng,
    auditor: &Auditor,
    now: u64,
    next_id: &mut u128,
    history: &mut Vec<Command>,
) -> Command {
    let customer = 1 + u128::from(rng.below(5));
    let method = match rng.below(20) {
        0 => PaymentMethod::Card(CardKind::Prepaid),
        1 => PaymentMethod::GiftCard,
        2..=3 => PaymentMethod::PayPal,
        4 => PaymentMethod::Crypto,
        5..=9 => PaymentMethod::Card(CardKind::Debit),
        _ => PaymentMethod::Card(CardKind::Credit),
    };
    let command = match rng.below(100) {
        0..=4 if !history.is_empty() => {
            // A retry: the same command again, or one field changed.
            let mut c = history[rng.below(history.len() as u64) as usize];
            if rng.chance(40) {
                match &mut c {
                    Command::TopUp { amount, .. } => *amount = Money::from_minor(777, Currency::USD).unwrap(),
                    Command::Hold { amount, .. } | Command::Capture { amount, .. } => {
                        *amount = Credits::new(amount.get() + 1);
                    }
                    Command::GrantBonus { amount, .. } => *amount = Credits::new(amount.get() + 1),
                    Command::ReversePayment { amount, .. } => *amount = Money::from_minor(778, Currency::USD).unwrap(),
                    _ => {}
                }
            }
            return c;
        }
        5..=7 => Command::OpenAccount {
            customer: if rng.chance(10) {
                CustomerId(0)
            } else {
                CustomerId(customer)
            },
        },
        22..=24 => {
            let amount = match rng.below(12) {
                0 => Money::new(Decimal::new(1234, 3), Currency::USD),
                1 => Money::from_minor(500, Currency::EUR).unwrap(),
                2 => Money::from_minor(0, Currency::USD).unwrap(),
                _ => Money::from_minor(i128::from(1 + rng.below(3_000)), Currency::USD).unwrap(),
            };
            *next_id += 1;
            // The payment reversed need not be known (a chargeback can come months late).
            let payment = if rng.chance(50) {
                PaymentRef::TopUp(TopUpId(u128::from(rng.below(u64::MAX))))
            } else {
                PaymentRef::AutoTopUp(RequestId(u128::from(rng.below(100))))
            };
            Command::ReversePayment {
                id: ReversalId(*next_id),
                customer: CustomerId(customer),
                amount,
                payment,
            }
        }
        8..=21 => {
            let amount = match rng.below(12) {
                0 => Money::new(Decimal::new(1234, 3), Currency::USD),
                1 => Money::from_minor(500, Currency::EUR).unwrap(),
                2 => Money::from_minor(0, Currency::USD).unwrap(),
                _ => Money::from_minor(i128::from(1 + rng.below(2_000)), Currency::USD).unwrap(),
            };
            *next_id += 1;
            Command::TopUp {
                id: TopUpId(*next_id),
                customer: CustomerId(customer),
                amount,
                method,
            }
        }
        25..=54 => {
            *next_id += 1;
            let amount = Credits::new(match rng.below(20) {
                0 => 0,
                1 => 50_000_000,
                _ => 1 + rng.below(3_000_000) as i64,
            });
            let timeout_ms = match rng.below(20) {
                0 => 0,
                1 => 4_000_000,
                _ => 1 + rng.below(100), // hold times and steps never tie (see `run`)
            };
            Command::Hold {
                id: HoldId(*next_id),
                customer: CustomerId(customer),
                amount,
                timeout_ms,
            }
        }
        55..=79 => {
            let prefer_open = rng.chance(85);
            let open: Vec<(HoldId, i64)> = auditor
                .holds
                .iter()
                .filter(|(_, h)| !prefer_open || (h.open && h.expires > now))
                .map(|(id, h)| (*id, h.amount))
                .collect();
            if open.is_empty() {
                return Command::Capture {
                    hold: HoldId(424_242),
                    amount: Credits::new(1),
                };
            }
            let (hold, held) = open[rng.below(open.len() as u64) as usize];
            let amount = match rng.below(12) {
                0 => held + 1,
                1 => -1,
                2 => 0,
                _ => rng.below(held as u64 + 1) as i64,
            };
            if rng.chance(40) {
                // The exact cost in tenths of a credit, charged through the carrier (above the
                // hold about one time in six).
                let tenths = i64::try_from(rng.below(12 * held as u64 + 20)).unwrap_or(0) - i64::from(rng.chance(3));
                return Command::CaptureCost {
                    hold,
                    cost: paygo_credits::ExactCredits::new(Decimal::new(tenths, 1)),
                };
            }
            Command::Capture {
                hold,
                amount: Credits::new(amount),
            }
        }
        80..=87 => {
            let ids: Vec<HoldId> = auditor.holds.keys().copied().collect();
            let hold = if ids.is_empty() {
                HoldId(424_243)
            } else {
                ids[rng.below(ids.len() as u64) as usize]
            };
            if rng.chance(30) {
                // A long stream renews its hold (now and then with a timeout out of range).
                let timeout_ms = [0, 1, 2, 5, 3_600_000, 3_600_001][rng.below(6) as usize];
                Command::ExtendHold { hold, timeout_ms }
            } else {
                Command::Release { hold }
            }
        }
        88..=92 => {
            *next_id += 1;
            let amount = Credits::new(if rng.chance(5) {
                0
            } else {
                1 + rng.below(4_000_000) as i64
            });
            let expires_at_ns = if rng.chance(5) {
                now
            } else {
                now + (1 + rng.below(200)) * MS * 10 + MS / 2 + 333
            };
            Command::GrantBonus {
                id: GrantId(*next_id),
                customer: CustomerId(customer),
                amount,
                expires_at_ns,
            }
        }
        93..=95 => {
            let fixed_cents = i128::from(100 + rng.below(900));
            let amount = if rng.chance(50) {
                TopUpAmount::Fixed(Money::from_minor(fixed_cents, Currency::USD).unwrap())
            } else {
                TopUpAmount::TargetBalance(Credits::new(60_000_001 + rng.below(5_000_000) as i64))
            };
            // A cap at or above a fixed amount (a rule with one below is refused).
            let cap_cents = fixed_cents + i128::from(rng.below(3_000));
            let rule = (!rng.chance(15)).then(|| AutoTopUpRule {
                enabled: !rng.chance(10),
                threshold: Credits::new(1 + rng.below(60_000_000) as i64),
                amount,
                method: PaymentMethod::Card(CardKind::Credit),
                requests_per_window_max: 1 + rng.below(3) as u32,
                window_ms: 50 + rng.below(500),
                backoff_ms: 10 + rng.below(100),
                backoff_max_ms: 200,
                monthly_cap: rng
                    .chance(50)
                    .then(|| Money::from_minor(cap_cents, Currency::USD).unwrap()),
                disable_after_declines: rng.chance(40).then(|| 1 + rng.below(3) as u32),
                buyer_tax_id: rng.chance(30).then(|| Reference::new("DE 123 456 789").unwrap()),
                purchase_order: rng
                    .chance(30)
                    .then(|| Reference::new(&format!("PO-{}", rng.below(1_000))).unwrap()),
            });
            Command::SetAutoTopUp {
                customer: CustomerId(customer),
                rule,
            }
        }
        _ if auditor.requests.is_empty() && rng.chance(50) => {
            *next_id += 1;
            Command::Hold {
                id: HoldId(*next_id),
                customer: CustomerId(customer),
                amount: Credits::new(1 + rng.below(1_000_000) as i64),
                timeout_ms: 50,
            }
        }
        _ => {
            let ids: Vec<RequestId> = auditor.requests.keys().copied().collect();
            let request = if ids.is_empty() {
                RequestId(99_999)
            } else {
                ids[rng.below(ids.len() as u64) as usize]
            };
            let outcome = if rng.chance(60) {
                PaymentOutcome::Succeeded
            } else {
                PaymentOutcome::Declined
            };
            Command::ReportPayment { request, outcome }
        }
    };
    history.push(command);
    command
}

/// How often the rare cases happened, so that a run that never reached one fails.
#[derive(Debug, Default)]
struct Seen {
    /// Captures with a shortfall (a cost above the hold).
    shortfalls: usize,
    /// Reversals the paid balance did not cover.
    arrears: usize,
    /// Holds refused for arrears.
    refused_in_arrears: usize,
    /// Top-ups that settled arrears.
    settled_by_top_up: usize,
    /// Auto top-ups refused by the monthly cap.
    capped: usize,
    /// Declines that switched a rule off.
    switched_off: usize,
    /// Requests that carried a reference.
    with_reference: usize,
}

/// Runs a seed, adding what it saw to `seen`.
fn run(seed: u64, steps: usize, bonus_enabled: bool, seen: &mut Seen) {
    let mut rng = Rng(seed);
    let config = BillingConfig {
        bonus_enabled,
        ..BillingConfig::default()
    };
    let mut billing = Billing::new(config);
    let mut auditor = Auditor {
        bonus_enabled,
        ..Auditor::default()
    };
    let mut now: u64 = 1_000_000 * MS;
    let mut next_id: u128 = 1000;
    let mut history = Vec::new();
    for customer in 1..=4u128 {
        let c = Command::OpenAccount {
            customer: CustomerId(customer),
        };
        assert_eq!(billing.execute(now, &c), auditor.execute(now, &c));
    }
    for step in 0..steps {
        // Time moves in whole milliseconds plus one microsecond, hold timeouts are whole
        // milliseconds and bonus expiries fall 500.333 µs past a millisecond: an expiry
        // never ties with a command (fewer than 500 steps pass within any hold's or lot's
        // life), so the auditor need not model the ledger's nanosecond timestamps.
        if rng.chance(40) {
            now += (1 + rng.below(30)) * MS + 1_000;
        }
        if rng.chance(1) {
            // Days later: holds and lots expire, and calendar months turn.
            now += (1 + rng.below(40)) * DAY + 1_000;
        }
        let command = random_command(&mut rng, &auditor, now, &mut next_id, &mut history);
        let arrears_before = match command {
            Command::TopUp { customer, .. } => billing.arrears(customer).map_or(0, Credits::get),
            _ => 0,
        };
        let got = billing.execute(now, &command);
        let want = auditor.execute(now, &command);
        if std::env::var("PAYGO_SIM_TRACE").is_ok() {
            println!("{step} @{now}: {command:?} -> {got:?}");
        }
        assert_eq!(got, want, "seed {seed}, step {step}: {command:?}");
        match got {
            Ok(Receipt::Captured { shortfall, .. }) if shortfall > Credits::ZERO => seen.shortfalls += 1,
            Ok(Receipt::Reversed { arrears, .. }) if arrears > Credits::ZERO => seen.arrears += 1,
            Ok(Receipt::ToppedUp { .. }) if arrears_before > 0 => seen.settled_by_top_up += 1,
            Err(Refusal::AccountInArrears { .. }) => seen.refused_in_arrears += 1,
            Ok(Receipt::PaymentRecorded {
                rule_switched_off: true,
                ..
            }) => seen.switched_off += 1,
            _ => {}
        }
        match got {
            Ok(Receipt::Captured {
                auto_top_up: AutoTopUp::MonthlyCapReached { .. },
                ..
            }) => seen.capped += 1,
            Ok(Receipt::Captured {
                auto_top_up: AutoTopUp::Requested(q),
                ..
            }) if q.buyer_tax_id.is_some() || q.purchase_order.is_some() => seen.with_reference += 1,
            _ => {}
        }
        assert_eq!(
            billing.drain_requests(),
            std::mem::take(&mut auditor.emitted),
            "seed {seed}, step {step}: requests"
        );
        for (customer, a) in auditor.customers.clone() {
            assert_eq!(
                billing.balance(customer).unwrap().get(),
                auditor.balance(customer),
                "seed {seed}, step {step}: balance of {customer}"
            );
            assert_eq!(
                (
                    billing.uncollected(customer).unwrap().get(),
                    billing.carrier(customer).unwrap().remainder().get()
                ),
                (a.uncollected, a.carry),
                "seed {seed}, step {step}: uncollected and carrier of {customer}"
            );
            assert_eq!(
                billing.arrears(customer).unwrap().get(),
                a.arrears,
                "seed {seed}, step {step}: arrears of {customer}"
            );
            assert_eq!(
                billing.auto_top_up(customer).unwrap(),
                auditor.status(customer),
                "seed {seed}, step {step}: auto top-up of {customer}"
            );
        }
        let posted = |id: AccountId| billing.ledger().account(id).unwrap().posted_balance();
        assert_eq!(
            posted(REVENUE),
            i128::from(auditor.revenue),
            "seed {seed}, step {step}: revenue"
        );
        assert_eq!(
            posted(BREAKAGE),
            i128::from(auditor.breakage),
            "seed {seed}, step {step}: breakage"
        );
        assert_eq!(
            posted(FUNDING),
            -i128::from(auditor.sold - auditor.reversed),
            "seed {seed}, step {step}: funding"
        );
        // Σ arrears = -receivables.
        assert_eq!(
            posted(RECEIVABLES),
            -i128::from(auditor.customers.values().map(|c| c.arrears).sum::<i64>()),
            "seed {seed}, step {step}: receivables"
        );
        assert_eq!(
            posted(PROMOTIONS),
            -i128::from(auditor.promoted),
            "seed {seed}, step {step}: promotions"
        );
        billing
            .ledger()
            .check_invariants()
            .unwrap_or_else(|e| panic!("seed {seed}, step {step}: {e}"));
    }
}

#[test]
fn billing_matches_the_auditor() {
    if let Ok(seed) = std::env::var("PAYGO_SIM_SEED") {
        let seed = seed.parse().expect("PAYGO_SIM_SEED is a number");
        run(seed, 2_000, true, &mut Seen::default());
        return;
    }
    let seeds: u64 = std::env::var("PAYGO_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let mut seen = Seen::default();
    for seed in 0..seeds {
        run(seed, 400, seed % 5 != 0, &mut seen);
    }
    println!("{seen:#?}");
    let Seen {
        shortfalls,
        arrears,
        refused_in_arrears,
        settled_by_top_up,
        capped,
        switched_off,
        with_reference,
    } = seen;
    for (what, count) in [
        ("a capture cost above its hold", shortfalls),
        ("a reversal into arrears", arrears),
        ("a hold refused for arrears", refused_in_arrears),
        ("a top-up settling arrears", settled_by_top_up),
        ("an auto top-up at the monthly cap", capped),
        ("a rule switched off by declines", switched_off),
        ("a request carrying a reference", with_reference),
    ] {
        assert!(count > 0, "no {what} was simulated: {seen:#?}");
    }
}

/// Whether the billing state is the auditor's: every balance, uncollected total and
/// carrier, the system accounts, and the payment requests waiting for an outcome.
fn same(billing: &Billing, auditor: &Auditor) -> Result<(), String> {
    for (customer, a) in &auditor.customers {
        let got = (
            billing.balance(*customer).map_err(|e| e.to_string())?.get(),
            billing.uncollected(*customer).map_err(|e| e.to_string())?.get(),
            billing.carrier(*customer).map_err(|e| e.to_string())?.remainder().get(),
        );
        if got != (auditor.balance(*customer), a.uncollected, a.carry) {
            return Err(format!("customer {customer} differs: {got:?}"));
        }
        if billing.arrears(*customer).map_err(|e| e.to_string())?.get() != a.arrears {
            return Err(format!("the arrears of {customer} differ"));
        }
        if billing.auto_top_up(*customer).map_err(|e| e.to_string())? != auditor.status(*customer) {
            return Err(format!("the auto top-up of {customer} differs"));
        }
    }
    let posted = |id: AccountId| billing.ledger().account(id).map_or(0, |a| a.posted_balance());
    let got = (
        posted(REVENUE),
        posted(BREAKAGE),
        posted(FUNDING),
        posted(PROMOTIONS),
        posted(RECEIVABLES),
    );
    let want = (
        i128::from(auditor.revenue),
        i128::from(auditor.breakage),
        -i128::from(auditor.sold - auditor.reversed),
        -i128::from(auditor.promoted),
        -i128::from(auditor.customers.values().map(|c| c.arrears).sum::<i64>()),
    );
    if got != want {
        return Err(format!("system accounts {got:?}, the auditor has {want:?}"));
    }
    let outstanding: Vec<TopUpRequest> = auditor.requests.values().copied().collect();
    if billing.outstanding_requests() != outstanding {
        return Err("the outstanding payment requests differ".into());
    }
    billing.ledger().check_invariants().map_err(|e| e.to_string())
}

/// The simulation's clock, moved by the simulation while the handle reads it.
struct SimClock(Arc<ManualClock>);

impl paygo_ledger::Clock for SimClock {
    fn now_ns(&self) -> u64 {
        paygo_ledger::Clock::now_ns(&*self.0)
    }
}

const SEGMENT_BYTES: u64 = 8 << 10;

fn open_faulty(
    dir: &Path,
    config: BillingConfig,
    clock: &Arc<ManualClock>,
    faults: &Arc<Mutex<Faults>>,
) -> SharedLedger<Billing, SimClock> {
    let options = OpenOptions {
        snapshot_journal_bytes: Some(16 << 10),
        segment_bytes: SEGMENT_BYTES,
        archive_journal: false,
    };
    let store = Faulty::open(dir, "billing", SEGMENT_BYTES, faults.clone());
    SharedLedger::with_storage(
        Box::new(store),
        move || Billing::new(config),
        SimClock(clock.clone()),
        &options,
    )
    .unwrap_or_else(|e| panic!("reopening after a fault: {e}"))
}

/// What the faulted runs saw.
#[derive(Debug, Default)]
struct FaultStats {
    faults: BTreeMap<&'static str, usize>,
    in_doubt_kept: usize,
    in_doubt_gone: usize,
    detected: BTreeMap<String, usize>,
}

/// The billing simulation through a durable handle whose storage fails at seeded
/// moments (see `tests/support/faults.rs` and the engine's `run_durable`): every reply is
/// the auditor's; after a fault the handle refuses further work until reopened, and the
/// reopened state is the auditor's with or without the command whose outcome was unknown;
/// damaged copies are refused or equal the auditor.
fn run_durable(seed: u64, steps: usize, stats: &mut FaultStats) {
    let dir = std::env::temp_dir().join(format!("paygo-billing-faults-{}-{seed}", std::process::id()));
    let copy = std::env::temp_dir().join(format!("paygo-billing-faults-copy-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut rng = Rng(seed);
    let mut frng = Rng(seed ^ 0xFA17_5EED);
    let config = BillingConfig {
        bonus_enabled: true,
        ..BillingConfig::default()
    };
    let mut auditor = Auditor {
        bonus_enabled: true,
        ..Auditor::default()
    };
    let mut now: u64 = 1_000_000 * MS;
    let clock = Arc::new(ManualClock::new(now));
    let faults = Arc::new(Mutex::new(Faults::default()));
    let mut shared = open_faulty(&dir, config, &clock, &faults);
    let mut next_id: u128 = 1000;
    let mut history = Vec::new();
    for customer in 1..=4u128 {
        let c = Command::OpenAccount {
            customer: CustomerId(customer),
        };
        assert_eq!(shared.submit(vec![c]).unwrap(), vec![auditor.execute(now, &c)]);
    }
    for step in 0..steps {
        let at = format!("seed {seed}, step {step}");
        if rng.chance(40) {
            now += (1 + rng.below(30)) * MS + 1_000;
        }
        if rng.chance(1) {
            // Days later: holds and lots expire, and calendar months turn.
            now += (1 + rng.below(40)) * DAY + 1_000;
        }
        clock.set_ns(now);
        let command = random_command(&mut rng, &auditor, now, &mut next_id, &mut history);
        let fault = frng.chance(6).then(|| Fault::pick(&mut frng));
        faults.lock().unwrap().next = fault;
        match shared.submit(vec![command]) {
            Ok(got) => {
                assert!(fault.is_none(), "{at}: {fault:?} was not reported");
                assert_eq!(got, vec![auditor.execute(now, &command)], "{at}: {command:?}");
            }
            Err(LedgerError::Unavailable { .. }) => {
                let fault = fault.unwrap_or_else(|| panic!("{at}: refused without a fault"));
                *stats.faults.entry(fault.name()).or_default() += 1;
                let appends = faults.lock().unwrap().appends;
                let again = shared.submit(vec![Command::OpenAccount {
                    customer: CustomerId(1),
                }]);
                assert!(matches!(again, Err(LedgerError::Unavailable { .. })), "{at}: {again:?}");
                assert_eq!(
                    faults.lock().unwrap().appends,
                    appends,
                    "{at}: an append after the failure"
                );
                drop(shared);
                let placed = faults.lock().unwrap().in_doubt.take();
                let (whole, _) = leave(&mut frng, fault, placed.as_ref());
                {
                    let mut f = faults.lock().unwrap();
                    f.failed = false;
                    if whole {
                        f.acked.extend(placed);
                    }
                }
                shared = open_faulty(&dir, config, &clock, &faults);
                // Its callers could not know the outcome; the test knows what the disk
                // kept: a whole record is replayed, a torn one is cut.
                let recovered = shared.read(Billing::clone).unwrap();
                if whole {
                    let _ = auditor.execute(now, &command);
                    stats.in_doubt_kept += 1;
                } else {
                    stats.in_doubt_gone += 1;
                }
                same(&recovered, &auditor)
                    .unwrap_or_else(|e| panic!("{at}: after {fault:?} (record whole: {whole}): {command:?}: {e}"));
            }
            Err(other) => panic!("{at}: {other}"),
        }
        auditor.emitted.clear();
        same(&shared.read(Billing::clone).unwrap(), &auditor).unwrap_or_else(|e| panic!("{at}: {e}"));
        if frng.chance(5) {
            faults.lock().unwrap().snapshot_fails = frng.chance(30);
            let _ = shared.snapshot();
        }
        if frng.chance(5) {
            drop(shared);
            shared = open_faulty(&dir, config, &clock, &faults);
            same(&shared.read(Billing::clone).unwrap(), &auditor).unwrap_or_else(|e| panic!("{at}: restarted: {e}"));
        }
        if frng.chance(8) {
            let closed = frng.chance(50);
            if closed {
                drop(shared);
                copy_dir(&dir, &copy);
                shared = open_faulty(&dir, config, &clock, &faults);
            } else {
                copy_dir(&dir, &copy);
            }
            let d = Damage::ALL[frng.below(Damage::ALL.len() as u64) as usize];
            let acked = faults.lock().unwrap().acked.clone();
            if damage(&mut frng, &copy, &dir, &acked, closed, d) {
                match durable::load::<Billing>(&copy) {
                    Err(LedgerError::Corrupt { .. }) => {}
                    Ok((b, _)) => {
                        same(&b, &auditor).unwrap_or_else(|e| panic!("{at}: {d:?}: load said ok with less: {e}"));
                    }
                    Err(e) => panic!("{at}: {d:?}: load: {e}"),
                }
                match durable::verify::<Billing>(&copy) {
                    Err(LedgerError::Corrupt { .. }) => *stats.detected.entry(format!("{d:?}")).or_default() += 1,
                    other => panic!("{at}: {d:?}: verify did not refuse the damage: {:?}", other.map(|_| ())),
                }
            }
            let _ = std::fs::remove_dir_all(&copy);
        }
    }
    drop(shared);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn durable_billing_survives_injected_storage_faults() {
    let mut stats = FaultStats::default();
    if let Ok(seed) = std::env::var("PAYGO_SIM_SEED") {
        run_durable(seed.parse().expect("PAYGO_SIM_SEED is a number"), 2_000, &mut stats);
        println!("{stats:#?}");
        return;
    }
    let seeds: u64 = std::env::var("PAYGO_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    for seed in 0..seeds {
        run_durable(seed, 400, &mut stats);
    }
    println!("{stats:#?}");
    assert_eq!(stats.faults.len(), 4, "{stats:#?}");
    assert!(stats.in_doubt_kept > 0 && stats.in_doubt_gone > 0, "{stats:#?}");
    assert!(stats.detected.len() >= 6, "{stats:#?}");
}
