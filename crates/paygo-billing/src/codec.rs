//! The exact encodings of commands, replies and the billing state, for the journal and
//! snapshots (`paygo_ledger::durable`). Money is written as its decimal text.

use std::collections::{BTreeSet, HashMap, VecDeque};

use paygo_credits::CreditRate;

use paygo_ledger::durable::codec::{Put, Reader, bad, put_money, put_result};
use paygo_ledger::{AccountId, Ledger, LedgerError, TransferId};

use crate::Command;
use crate::auto::{AutoState, AutoTopUp, AutoTopUpRule, SwitchedOff, TopUpAmount, TopUpRequest};
use crate::command::{AmountRule, Receipt, Refusal, Reply};
use crate::config::BillingConfig;
use crate::machine::{Billing, COMPACT_MIN, CustomerState, Hold, HoldStatus, IdKind, Lot};
use crate::payment::MethodRefusal;
use crate::payment::{CardKind, PaymentMethod, PaymentOutcome, PaymentRef};
use crate::reference::Reference;

fn put_opt_reference(out: &mut Vec<u8>, reference: Option<Reference>) {
    out.put_bool(reference.is_some());
    if let Some(reference) = reference {
        out.put_text(reference.as_str());
    }
}

fn opt_reference(r: &mut Reader<'_>) -> Result<Option<Reference>, LedgerError> {
    if !r.bool()? {
        return Ok(None);
    }
    let text = r.text()?;
    Reference::new(text)
        .map(Some)
        .map_err(|e| bad(format!("reference {text:?}: {e}")))
}

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
    out.put_bool(rule.monthly_cap.is_some());
    if let Some(cap) = &rule.monthly_cap {
        put_money(out, cap);
    }
    out.put_bool(rule.disable_after_declines.is_some());
    if let Some(n) = rule.disable_after_declines {
        out.put_u32(n);
    }
    put_opt_reference(out, rule.buyer_tax_id);
    put_opt_reference(out, rule.purchase_order);
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
        monthly_cap: if r.bool()? { Some(r.money()?) } else { None },
        disable_after_declines: if r.bool()? { Some(r.u32()?) } else { None },
        buyer_tax_id: opt_reference(r)?,
        purchase_order: opt_reference(r)?,
    })
}

/// Appends one command.
pub(crate) fn put_command(out: &mut Vec<u8>, c: &Command) {
    match c {
        Command::OpenAccount { customer } => {
            out.put_u8(1);
            out.put_u128(customer.0);
        }
        Command::TopUp {
            id,
            customer,
            amount,
            method,
        } => {
            out.put_u8(2);
            out.put_u128(id.0);
            out.put_u128(customer.0);
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
            out.put_u128(id.0);
            out.put_u128(customer.0);
            out.put_i64(amount.get());
            out.put_u64(*timeout_ms);
        }
        Command::Capture { hold, amount } => {
            out.put_u8(4);
            out.put_u128(hold.0);
            out.put_i64(amount.get());
        }
        Command::Release { hold } => {
            out.put_u8(5);
            out.put_u128(hold.0);
        }
        Command::CaptureCost { hold, cost } => {
            out.put_u8(9);
            out.put_u128(hold.0);
            out.put_text(&cost.to_string());
        }
        Command::GrantBonus {
            id,
            customer,
            amount,
            expires_at_ns,
        } => {
            out.put_u8(6);
            out.put_u128(id.0);
            out.put_u128(customer.0);
            out.put_i64(amount.get());
            out.put_u64(*expires_at_ns);
        }
        Command::SetAutoTopUp { customer, rule } => {
            out.put_u8(7);
            out.put_u128(customer.0);
            out.put_bool(rule.is_some());
            if let Some(rule) = rule {
                put_rule(out, rule);
            }
        }
        Command::ReportPayment { request, outcome } => {
            out.put_u8(8);
            out.put_u128(request.0);
            out.put_bool(*outcome == PaymentOutcome::Succeeded);
        }
        Command::ExtendHold { hold, timeout_ms } => {
            out.put_u8(11);
            out.put_u128(hold.0);
            out.put_u64(*timeout_ms);
        }
        Command::ReversePayment {
            id,
            customer,
            amount,
            payment,
        } => {
            out.put_u8(10);
            out.put_u128(id.0);
            out.put_u128(customer.0);
            put_money(out, amount);
            match payment {
                PaymentRef::TopUp(id) => {
                    out.put_u8(0);
                    out.put_u128(id.0);
                }
                PaymentRef::AutoTopUp(id) => {
                    out.put_u8(1);
                    out.put_u128(id.0);
                }
            }
        }
    }
}

/// Reads one command.
pub(crate) fn command(r: &mut Reader<'_>) -> Result<Command, LedgerError> {
    Ok(match r.u8()? {
        1 => Command::OpenAccount {
            customer: r.u128()?.into(),
        },
        2 => Command::TopUp {
            id: r.u128()?.into(),
            customer: r.u128()?.into(),
            amount: r.money()?,
            method: method(r)?,
        },
        3 => Command::Hold {
            id: r.u128()?.into(),
            customer: r.u128()?.into(),
            amount: r.credits()?,
            timeout_ms: r.u64()?,
        },
        4 => Command::Capture {
            hold: r.u128()?.into(),
            amount: r.credits()?,
        },
        5 => Command::Release { hold: r.u128()?.into() },
        6 => Command::GrantBonus {
            id: r.u128()?.into(),
            customer: r.u128()?.into(),
            amount: r.credits()?,
            expires_at_ns: r.u64()?,
        },
        7 => Command::SetAutoTopUp {
            customer: r.u128()?.into(),
            rule: if r.bool()? { Some(rule(r)?) } else { None },
        },
        8 => Command::ReportPayment {
            request: r.u128()?.into(),
            outcome: if r.bool()? {
                PaymentOutcome::Succeeded
            } else {
                PaymentOutcome::Declined
            },
        },
        9 => Command::CaptureCost {
            hold: r.u128()?.into(),
            cost: r.text()?.parse().map_err(|e| bad(format!("a cost: {e}")))?,
        },
        10 => Command::ReversePayment {
            id: r.u128()?.into(),
            customer: r.u128()?.into(),
            amount: r.money()?,
            payment: match r.u8()? {
                0 => PaymentRef::TopUp(r.u128()?.into()),
                1 => PaymentRef::AutoTopUp(r.u128()?.into()),
                other => return Err(bad(format!("payment reference kind {other} is unknown"))),
            },
        },
        11 => Command::ExtendHold {
            hold: r.u128()?.into(),
            timeout_ms: r.u64()?,
        },
        other => return Err(bad(format!("command tag {other} is unknown"))),
    })
}

pub(crate) fn put_request(out: &mut Vec<u8>, q: &TopUpRequest) {
    out.put_u128(q.id.0);
    out.put_u128(q.customer.0);
    put_money(out, &q.amount);
    put_method(out, q.method);
    out.put_u64(q.at_ns);
    put_opt_reference(out, q.buyer_tax_id);
    put_opt_reference(out, q.purchase_order);
}

pub(crate) fn request(r: &mut Reader<'_>) -> Result<TopUpRequest, LedgerError> {
    Ok(TopUpRequest {
        id: r.u128()?.into(),
        customer: r.u128()?.into(),
        amount: r.money()?,
        method: method(r)?,
        at_ns: r.u64()?,
        buyer_tax_id: opt_reference(r)?,
        purchase_order: opt_reference(r)?,
    })
}

/// A reason's byte: [`MethodRefusal`]s and [`AmountRule`]s share one numbering (the
/// positions of the reason texts stored before they were enums; rules added since are
/// appended).
fn put_method_refusal(out: &mut Vec<u8>, reason: MethodRefusal) {
    out.put_u8(reason.code());
}

fn method_refusal(r: &mut Reader<'_>) -> Result<MethodRefusal, LedgerError> {
    let i = r.u8()?;
    MethodRefusal::from_code(i).ok_or_else(|| bad(format!("payment method refusal {i} is unknown")))
}

fn put_amount_rule(out: &mut Vec<u8>, rule: AmountRule) {
    out.put_u8(rule.code());
}

fn amount_rule(r: &mut Reader<'_>) -> Result<AmountRule, LedgerError> {
    let i = r.u8()?;
    AmountRule::from_code(i).ok_or_else(|| bad(format!("amount rule {i} is unknown")))
}

fn put_decision(out: &mut Vec<u8>, decision: &AutoTopUp) {
    match decision {
        AutoTopUp::NoRule => out.put_u8(1),
        AutoTopUp::Disabled => out.put_u8(2),
        AutoTopUp::NotNeeded => out.put_u8(3),
        AutoTopUp::Requested(q) => {
            out.put_u8(4);
            put_request(out, q);
        }
        AutoTopUp::Outstanding { request } => {
            out.put_u8(5);
            out.put_u128(request.0);
        }
        AutoTopUp::BackingOff { until_ns } => {
            out.put_u8(6);
            out.put_u64(*until_ns);
        }
        AutoTopUp::WindowLimitReached { until_ns } => {
            out.put_u8(7);
            out.put_u64(*until_ns);
        }
        AutoTopUp::MonthlyCapReached { until_ns } => {
            out.put_u8(8);
            out.put_u64(*until_ns);
        }
    }
}

fn put_reply(out: &mut Vec<u8>, reply: &Reply) {
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
                    put_decision(out, auto_top_up);
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
                    rule_switched_off,
                } => {
                    out.put_u8(8);
                    out.put_i64(credits.get());
                    out.put_opt_u64(*retry_after_ns);
                    out.put_bool(*rule_switched_off);
                }
                Receipt::HoldExtended { until_ns } => {
                    out.put_u8(10);
                    out.put_u64(*until_ns);
                }
                Receipt::Reversed {
                    credits,
                    recovered,
                    arrears,
                } => {
                    out.put_u8(9);
                    out.put_i64(credits.get());
                    out.put_i64(recovered.get());
                    out.put_i64(arrears.get());
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
                    put_method_refusal(out, *reason);
                }
                Refusal::InvalidAmount(reason) => {
                    out.put_u8(6);
                    put_amount_rule(out, *reason);
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
                Refusal::CountersExhausted => out.put_u8(20),
                Refusal::AccountInArrears { arrears } => {
                    out.put_u8(19);
                    out.put_i64(arrears.get());
                }
                Refusal::Ledger(result) => {
                    out.put_u8(16);
                    put_result(out, *result);
                }
            }
        }
    }
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
                    5 => AutoTopUp::Outstanding {
                        request: r.u128()?.into(),
                    },
                    6 => AutoTopUp::BackingOff { until_ns: r.u64()? },
                    7 => AutoTopUp::WindowLimitReached { until_ns: r.u64()? },
                    8 => AutoTopUp::MonthlyCapReached { until_ns: r.u64()? },
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
                rule_switched_off: r.bool()?,
            },
            9 => Receipt::Reversed {
                credits: r.credits()?,
                recovered: r.credits()?,
                arrears: r.credits()?,
            },
            10 => Receipt::HoldExtended { until_ns: r.u64()? },
            other => return Err(bad(format!("receipt {other} is unknown"))),
        }))
    } else {
        Ok(Err(match tag {
            1 => Refusal::InsufficientCredits,
            2 => Refusal::UnknownAccount,
            3 => Refusal::AccountExists,
            4 => Refusal::InvalidCustomerId,
            5 => Refusal::PaymentMethodRefused(method_refusal(r)?),
            6 => Refusal::InvalidAmount(amount_rule(r)?),
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
            20 => Refusal::CountersExhausted,
            19 => Refusal::AccountInArrears { arrears: r.credits()? },
            other => return Err(bad(format!("refusal {other} is unknown"))),
        }))
    }
}

pub(crate) fn put_command_reply(out: &mut Vec<u8>, (c, reply): &(Command, Reply)) {
    put_command(out, c);
    put_reply(out, reply);
}

pub(crate) fn command_reply(r: &mut Reader<'_>) -> Result<(Command, Reply), LedgerError> {
    Ok((command(r)?, reply(r)?))
}

fn sorted<K: Ord + Copy, V>(map: &HashMap<K, V>) -> Vec<(K, &V)> {
    let mut v: Vec<(K, &V)> = map.iter().map(|(k, v)| (*k, v)).collect();
    v.sort_unstable_by_key(|(k, _)| *k);
    v
}

/// Appends the whole billing state (a snapshot's body), the ledger's included.
pub(crate) fn put_state(out: &mut Vec<u8>, b: &Billing) {
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
        out.put_i64(state.arrears.get());
        match auto.switched_off {
            None => out.put_u8(0),
            Some(SwitchedOff::Declines { declines, at_ns }) => {
                out.put_u8(1);
                out.put_u32(declines);
                out.put_u64(at_ns);
            }
        }
        out.put_u64(auto.month_start_ns);
        // Never negative (see `state`).
        out.put_u128(auto.month_cents.unsigned_abs());
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
            put_command_reply(out, cr);
        }
    }
    let mut replies = sorted(&b.replies);
    replies.retain(|((_, id), _)| b.is_kept(*id));
    out.put_len(replies.len());
    for ((kind, id), cr) in replies {
        out.put_u8(kind as u8);
        out.put_u128(id);
        put_command_reply(out, cr);
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
    b.ledger.write_state(out);
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
        let (declines, blocked_until_ns) = (r.u32()?, r.u64()?);
        let remainder: paygo_credits::ExactCredits = r.text()?.parse().map_err(|e| bad(format!("a remainder: {e}")))?;
        let carrier =
            paygo_credits::RemainderCarrier::from_remainder(remainder).map_err(|e| bad(format!("a remainder: {e}")))?;
        let uncollected = r.credits()?;
        if uncollected < paygo_credits::Credits::ZERO {
            return Err(bad(format!("an uncollected total of {uncollected} is negative")));
        }
        let arrears = r.credits()?;
        if arrears < paygo_credits::Credits::ZERO {
            return Err(bad(format!("arrears of {arrears} are negative")));
        }
        let switched_off = match r.u8()? {
            0 => None,
            1 => Some(SwitchedOff::Declines {
                declines: r.u32()?,
                at_ns: r.u64()?,
            }),
            other => return Err(bad(format!("switch-off reason {other} is unknown"))),
        };
        let month_start_ns = r.u64()?;
        let month_cents = r.u128()?;
        let month_cents = i128::try_from(month_cents).map_err(|_| {
            bad(format!(
                "a month's requested {month_cents} cents are beyond the i128 range"
            ))
        })?;
        let auto = AutoState {
            rule,
            outstanding,
            recent_ns,
            declines,
            blocked_until_ns,
            switched_off,
            month_start_ns,
            month_cents,
        };
        customers.insert(
            id,
            CustomerState {
                lots,
                auto,
                carrier,
                uncollected,
                arrears,
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
        let reply = if r.bool()? {
            Some(Box::new(command_reply(r)?))
        } else {
            None
        };
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
        let code = r.u8()?;
        let kind = IdKind::from_code(code).ok_or_else(|| bad(format!("id kind {code} is unknown")))?;
        let id = r.u128()?;
        replies.insert((kind, id), Box::new(command_reply(r)?));
    }
    let mut requests = HashMap::new();
    for _ in 0..r.len()? {
        let q = request(r)?;
        requests.insert(q.id.0, q);
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
    let ledger = Ledger::read_state(r, transfers_more)?;
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
        in_arrears: BTreeSet::new(),
        compact_at_len: 0,
        counter_limit: crate::machine::COUNTERS_SOFT_MAX,
    };
    billing.in_arrears = billing
        .customers
        .iter()
        .filter(|(_, c)| c.arrears > paygo_credits::Credits::ZERO)
        .map(|(id, _)| *id)
        .collect();
    billing.compact_at_len = (billing.replies.len() + billing.holds.len())
        .saturating_mul(2)
        .max(COMPACT_MIN);
    // The outbox of a restored state: the requests still waiting for their outcome.
    billing.keep_outstanding_requests();
    Ok(billing)
}
