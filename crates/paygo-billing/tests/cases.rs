//! Hand-made cases of the billing layer: the chart of accounts, top-ups and payment
//! methods, holds, bonus lots and their spend order, expiry, and auto top-up.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
// Generated values are small, and the reference model mirrors the spec rule by rule.
#![allow(
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::too_many_lines,
    clippy::similar_names
)]

use paygo_billing::{
    AmountRule, AutoTopUp, AutoTopUpRule, BREAKAGE, Billing, BillingConfig, CardKind, Command, FUNDING, PROMOTIONS,
    PaymentMethod, PaymentOutcome, REVENUE, Receipt, Refusal, TopUpAmount, codes,
};
use paygo_billing::{CustomerId, GrantId, HoldId, TopUpId};
use paygo_credits::{Credits, Currency, Decimal, Money};
use paygo_ledger::{PendingStatus, TransferId};

const MS: u64 = 1_000_000;
const T0: u64 = 1_000 * MS;
const CARD: PaymentMethod = PaymentMethod::Card(CardKind::Credit);

fn usd(cents: i128) -> Money {
    Money::from_minor(cents, Currency::USD).unwrap()
}

fn c(n: i64) -> Credits {
    Credits::new(n)
}

fn billing(bonus: bool) -> Billing {
    let mut b = Billing::new(BillingConfig {
        bonus_enabled: bonus,
        ..BillingConfig::default()
    });
    b.open_account(T0, CustomerId(1)).unwrap();
    b
}

#[test]
fn no_free_plan_and_top_ups_by_accepted_methods_only() {
    let mut b = billing(false);
    assert_eq!(b.balance(CustomerId(1)), Ok(c(0)));
    assert_eq!(
        b.hold(T0, HoldId(1), CustomerId(1), c(1), 1000),
        Err(Refusal::InsufficientCredits)
    );
    for (method, accepted) in [
        (PaymentMethod::Card(CardKind::Credit), true),
        (PaymentMethod::Card(CardKind::Debit), true),
        (PaymentMethod::PayPal, true),
        (PaymentMethod::Crypto, true),
        (PaymentMethod::Card(CardKind::Prepaid), false),
        (PaymentMethod::GiftCard, false),
    ] {
        let id = 100 + u128::from(b.ledger().transfers_len() as u64);
        let reply = b.top_up(T0, TopUpId(id), CustomerId(1), usd(100), method);
        assert_eq!(reply.is_ok(), accepted, "{method:?}: {reply:?}");
        if let Err(Refusal::PaymentMethodRefused(reason)) = reply {
            assert_eq!(Some(reason), method.refusal());
            assert!(reason.to_string().contains("not accepted"), "{reason}");
        }
    }
    assert_eq!(b.balance(CustomerId(1)), Ok(c(8_000_000))); // four accepted $1 top-ups
    assert_eq!(b.ledger().account(FUNDING).unwrap().posted_balance(), -8_000_000);
    let bad = [
        (
            Money::new(Decimal::new(1001, 3), Currency::USD),
            AmountRule::TopUpNotWholeCents,
        ),
        (Money::from_minor(100, Currency::EUR).unwrap(), AmountRule::TopUpNotUsd),
        (usd(0), AmountRule::TopUpNotPositive),
        (usd(-100), AmountRule::TopUpNotPositive),
    ];
    for (i, (amount, why)) in bad.into_iter().enumerate() {
        assert_eq!(
            b.top_up(T0, TopUpId(900 + i as u128), CustomerId(1), amount, CARD),
            Err(Refusal::InvalidAmount(why))
        );
    }
    assert_eq!(
        b.top_up(T0, TopUpId(999), CustomerId(7), usd(100), CARD),
        Err(Refusal::UnknownAccount)
    );
}

#[test]
fn a_retried_top_up_is_applied_once() {
    let mut b = billing(false);
    let first = b.top_up(T0, TopUpId(5), CustomerId(1), usd(1000), CARD);
    assert_eq!(first, Ok(Receipt::ToppedUp { credits: c(20_000_000) }));
    assert_eq!(b.top_up(T0, TopUpId(5), CustomerId(1), usd(1000), CARD), first);
    assert_eq!(
        b.top_up(T0, TopUpId(5), CustomerId(1), usd(2000), CARD),
        Err(Refusal::IdReused)
    );
    assert_eq!(b.balance(CustomerId(1)), Ok(c(20_000_000)));
}

#[test]
fn hold_capture_release_and_expiry() {
    let mut b = billing(false);
    b.top_up(T0, TopUpId(5), CustomerId(1), usd(100), CARD).unwrap(); // 2,000,000 credits
    assert_eq!(
        b.hold(T0, HoldId(10), CustomerId(1), c(500_000), 1_000),
        Ok(Receipt::Held { amount: c(500_000) })
    );
    assert_eq!(b.balance(CustomerId(1)), Ok(c(1_500_000)));
    assert_eq!(
        b.capture(T0, HoldId(10), c(500_001)),
        Err(Refusal::CaptureExceedsHold {
            held: c(500_000),
            requested: c(500_001)
        })
    );
    let captured = b.capture(T0, HoldId(10), c(123_456)).unwrap();
    assert!(
        matches!(captured, Receipt::Captured { charged, released, .. } if charged == c(123_456) && released == c(376_544))
    );
    assert_eq!(b.balance(CustomerId(1)), Ok(c(2_000_000 - 123_456)));
    assert_eq!(b.ledger().account(REVENUE).unwrap().posted_balance(), 123_456);
    // Retries charge nothing more; other operations on the hold are refused.
    assert_eq!(b.capture(T0, HoldId(10), c(123_456)), Ok(captured));
    assert_eq!(b.capture(T0, HoldId(10), c(1)), Err(Refusal::HoldCaptured));
    assert_eq!(b.release(T0, HoldId(10)), Err(Refusal::HoldCaptured));
    // A failed call: release, idempotently.
    b.hold(T0, HoldId(11), CustomerId(1), c(1_000), 1_000).unwrap();
    assert_eq!(b.release(T0, HoldId(11)), Ok(Receipt::Released));
    assert_eq!(b.release(T0, HoldId(11)), Ok(Receipt::Released));
    assert_eq!(b.capture(T0, HoldId(11), c(1)), Err(Refusal::HoldReleased));
    // A forgotten hold expires and its credits come back.
    b.hold(T0, HoldId(12), CustomerId(1), c(1_000_000), 50).unwrap();
    assert_eq!(b.balance(CustomerId(1)), Ok(c(876_544)));
    assert_eq!(b.capture(T0 + 51 * MS, HoldId(12), c(5)), Err(Refusal::HoldExpired));
    assert_eq!(b.balance(CustomerId(1)), Ok(c(1_876_544)));
    assert_eq!(
        b.hold(T0, HoldId(13), CustomerId(1), c(0), 50),
        Err(Refusal::InvalidAmount(AmountRule::HoldNotPositive))
    );
    assert_eq!(
        b.hold(T0, HoldId(14), CustomerId(1), c(1), 0),
        Err(Refusal::InvalidTimeout)
    );
    assert_eq!(b.capture(T0, HoldId(77), c(1)), Err(Refusal::UnknownHold));
    b.ledger().check_invariants().unwrap();
}

#[test]
fn bonus_grants_are_paused_by_default() {
    let mut b = billing(false);
    let grant = Command::GrantBonus {
        id: GrantId(1),
        customer: CustomerId(1),
        amount: c(10),
        expires_at_ns: T0 + MS,
    };
    assert_eq!(b.execute(T0, &grant), Err(Refusal::BonusPaused));
    assert!(!BillingConfig::default().bonus_enabled);
}

#[test]
fn bonus_lots_are_spent_first_soonest_expiry_first_then_oldest_and_expire_to_breakage() {
    let mut b = billing(true);
    b.top_up(T0, TopUpId(5), CustomerId(1), usd(100), CARD).unwrap(); // 2,000,000 paid
    let grant = |b: &mut Billing, id: u128, amount: i64, expires: u64| {
        b.execute(
            T0,
            &Command::GrantBonus {
                id: GrantId(id),
                customer: CustomerId(1),
                amount: c(amount),
                expires_at_ns: expires,
            },
        )
        .unwrap()
    };
    let late = grant(&mut b, 1, 300, T0 + 500 * MS);
    let soon = grant(&mut b, 2, 200, T0 + 100 * MS);
    let soon_too = grant(&mut b, 3, 100, T0 + 100 * MS); // same expiry, granted later
    let lot = |r: Receipt| match r {
        Receipt::BonusGranted { lot } => lot,
        other => panic!("{other:?}"),
    };
    let (late, soon, soon_too) = (lot(late), lot(soon), lot(soon_too));
    assert_eq!(b.balance(CustomerId(1)), Ok(c(2_000_600)));
    assert_eq!(b.paid_balance(CustomerId(1)), Ok(c(2_000_000)));
    // 250 credits: 200 from the soonest lot, then 50 from the other one expiring with it.
    b.hold(T0, HoldId(10), CustomerId(1), c(250), 1_000).unwrap();
    b.capture(T0, HoldId(10), c(250)).unwrap();
    let available = |b: &Billing, id| b.ledger().account(id).unwrap().available();
    assert_eq!(
        (available(&b, soon), available(&b, soon_too), available(&b, late)),
        (0, 50, 300)
    );
    assert_eq!(b.paid_balance(CustomerId(1)), Ok(c(2_000_000)));
    // At expiry, what is left goes to breakage by a transfer; the paid balance is untouched.
    b.top_up(T0 + 100 * MS, TopUpId(6), CustomerId(1), usd(1), CARD)
        .unwrap();
    assert_eq!(available(&b, soon_too), 0);
    assert_eq!(b.ledger().account(BREAKAGE).unwrap().posted_balance(), 50);
    let expiry = b
        .ledger()
        .transfers()
        .find(|t| t.transfer.code == codes::BONUS_EXPIRY)
        .unwrap();
    assert_eq!(
        (expiry.transfer.debit_account_id, expiry.transfer.amount),
        (soon_too, c(50))
    );
    // 400 credits: the late lot's 300 first, then 100 paid.
    b.hold(T0 + 100 * MS, HoldId(11), CustomerId(1), c(400), 1_000).unwrap();
    b.capture(T0 + 100 * MS, HoldId(11), c(400)).unwrap();
    assert_eq!(available(&b, late), 0);
    assert_eq!(b.paid_balance(CustomerId(1)), Ok(c(2_020_000 - 100)));
    assert_eq!(b.ledger().account(PROMOTIONS).unwrap().posted_balance(), -600);
    b.ledger().check_invariants().unwrap();
}

#[test]
fn credits_held_on_a_lot_that_expires_go_to_breakage_when_released() {
    let mut b = billing(true);
    b.execute(
        T0,
        &Command::GrantBonus {
            id: GrantId(1),
            customer: CustomerId(1),
            amount: c(100),
            expires_at_ns: T0 + 10 * MS,
        },
    )
    .unwrap();
    b.hold(T0, HoldId(10), CustomerId(1), c(60), 1_000).unwrap();
    b.release(T0 + 20 * MS, HoldId(10)).unwrap();
    assert_eq!(b.ledger().account(BREAKAGE).unwrap().posted_balance(), 100);
    assert_eq!(b.balance(CustomerId(1)), Ok(c(0)));
}

fn rule(threshold: i64, amount: TopUpAmount) -> AutoTopUpRule {
    AutoTopUpRule {
        enabled: true,
        threshold: c(threshold),
        amount,
        method: CARD,
        requests_per_window_max: 2,
        window_ms: 1_000,
        backoff_ms: 100,
        backoff_max_ms: 250,
        monthly_cap: None,
        disable_after_declines: None,
        buyer_tax_id: None,
        purchase_order: None,
    }
}

fn spend(b: &mut Billing, now: u64, id: u128, credits: i64) -> AutoTopUp {
    b.hold(now, HoldId(id), CustomerId(1), c(credits), 1_000).unwrap();
    match b.capture(now, HoldId(id), c(credits)).unwrap() {
        Receipt::Captured { auto_top_up, .. } => auto_top_up,
        other => panic!("{other:?}"),
    }
}

#[test]
fn auto_top_up_is_asked_once_while_outstanding_and_compared_in_credits() {
    let mut b = billing(false);
    b.top_up(T0, TopUpId(5), CustomerId(1), usd(100), CARD).unwrap(); // 2,000,000
    assert_eq!(spend(&mut b, T0, 10, 1), AutoTopUp::NoRule);
    b.execute(
        T0,
        &Command::SetAutoTopUp {
            customer: CustomerId(1),
            rule: Some(rule(1_500_000, TopUpAmount::Fixed(usd(500)))),
        },
    )
    .unwrap();
    assert_eq!(spend(&mut b, T0, 11, 400_000), AutoTopUp::NotNeeded); // 1,599,999 left
    let requested = spend(&mut b, T0, 12, 100_000); // 1,499,999: one credit below
    let AutoTopUp::Requested(request) = requested else {
        panic!("{requested:?}")
    };
    assert_eq!((request.amount, request.customer), (usd(500), CustomerId(1)));
    assert_eq!(b.drain_requests(), [request]);
    // While it is outstanding, further charges ask nothing more.
    assert_eq!(spend(&mut b, T0, 13, 1), AutoTopUp::Outstanding { request: request.id });
    assert!(b.drain_requests().is_empty());
    // The payment succeeds: the credits arrive, once.
    let report = Command::ReportPayment {
        request: request.id,
        outcome: PaymentOutcome::Succeeded,
    };
    let recorded = b.execute(T0, &report).unwrap();
    assert_eq!(
        recorded,
        Receipt::PaymentRecorded {
            credits: c(10_000_000),
            retry_after_ns: None,
            rule_switched_off: false,
        }
    );
    assert_eq!(b.execute(T0, &report), Ok(recorded));
    assert_eq!(b.balance(CustomerId(1)), Ok(c(11_499_998)));
}

#[test]
fn declines_back_off_and_the_window_limit_is_reported_not_silent() {
    let mut b = billing(false);
    b.top_up(T0, TopUpId(5), CustomerId(1), usd(100), CARD).unwrap();
    b.execute(
        T0,
        &Command::SetAutoTopUp {
            customer: CustomerId(1),
            rule: Some(rule(3_000_000, TopUpAmount::TargetBalance(c(4_000_000)))),
        },
    )
    .unwrap();
    let AutoTopUp::Requested(first) = spend(&mut b, T0, 10, 1) else {
        panic!()
    };
    // Target 4,000,000 from 1,999,999: 2,000,001 credits, rounded up to the cent.
    assert_eq!(first.amount, usd(101));
    let declined = Command::ReportPayment {
        request: first.id,
        outcome: PaymentOutcome::Declined,
    };
    assert_eq!(
        b.execute(T0, &declined),
        Ok(Receipt::PaymentRecorded {
            credits: c(0),
            retry_after_ns: Some(T0 + 100 * MS),
            rule_switched_off: false,
        })
    );
    assert_eq!(
        spend(&mut b, T0 + 50 * MS, 11, 1),
        AutoTopUp::BackingOff {
            until_ns: T0 + 100 * MS
        }
    );
    let AutoTopUp::Requested(second) = spend(&mut b, T0 + 100 * MS, 12, 1) else {
        panic!()
    };
    let declined = Command::ReportPayment {
        request: second.id,
        outcome: PaymentOutcome::Declined,
    };
    // The second decline in a row waits twice as long.
    assert_eq!(
        b.execute(T0 + 100 * MS, &declined),
        Ok(Receipt::PaymentRecorded {
            credits: c(0),
            retry_after_ns: Some(T0 + 300 * MS),
            rule_switched_off: false,
        })
    );
    // Two requests in the 1 s window: the limit is reached and said so.
    assert_eq!(
        spend(&mut b, T0 + 400 * MS, 13, 1),
        AutoTopUp::WindowLimitReached {
            until_ns: T0 + 1_000 * MS
        }
    );
    let AutoTopUp::Requested(_) = spend(&mut b, T0 + 1_000 * MS, 14, 1) else {
        panic!()
    };
    // A disabled rule says so too.
    let mut off = rule(3_000_000, TopUpAmount::Fixed(usd(100)));
    off.enabled = false;
    b.execute(
        T0,
        &Command::SetAutoTopUp {
            customer: CustomerId(1),
            rule: Some(off),
        },
    )
    .unwrap();
    assert_eq!(spend(&mut b, T0 + 1_000 * MS, 15, 1), AutoTopUp::Disabled);
    // Rules with refused methods or impossible amounts are refused.
    let mut prepaid = rule(1, TopUpAmount::Fixed(usd(100)));
    prepaid.method = PaymentMethod::Card(CardKind::Prepaid);
    assert!(matches!(
        b.execute(
            T0,
            &Command::SetAutoTopUp {
                customer: CustomerId(1),
                rule: Some(prepaid)
            }
        ),
        Err(Refusal::PaymentMethodRefused(_))
    ));
    assert!(
        b.execute(
            T0,
            &Command::SetAutoTopUp {
                customer: CustomerId(1),
                rule: Some(rule(10, TopUpAmount::TargetBalance(c(5))))
            }
        )
        .is_err()
    );
}

#[test]
fn auto_top_up_amounts_must_buy_credits_like_a_top_up() {
    let mut b = billing(false);
    let sub_cent = rule(1, TopUpAmount::Fixed(Money::new(Decimal::new(10001, 3), Currency::USD)));
    assert_eq!(
        b.execute(
            T0,
            &Command::SetAutoTopUp {
                customer: CustomerId(1),
                rule: Some(sub_cent)
            }
        ),
        Err(Refusal::InvalidAmount(AmountRule::TopUpNotWholeCents))
    );
    let huge = rule(1, TopUpAmount::Fixed(usd(1_000_000_000_000_000)));
    assert_eq!(
        b.execute(
            T0,
            &Command::SetAutoTopUp {
                customer: CustomerId(1),
                rule: Some(huge)
            }
        ),
        Err(Refusal::InvalidAmount(AmountRule::TopUpOutOfRange))
    );
}

#[test]
fn a_cost_above_the_hold_captures_the_hold_and_records_the_shortfall() {
    // Issue 14: hold 1,000, exact cost 1,500.3 captured the hold and dropped the rest.
    let mut b = billing(false);
    b.top_up(T0, TopUpId(5), CustomerId(1), usd(100), CARD).unwrap();
    let before = b.balance(CustomerId(1)).unwrap();
    b.hold(T0, HoldId(10), CustomerId(1), c(1_000), 1_000).unwrap();
    let capture = Command::CaptureCost {
        hold: HoldId(10),
        cost: "1500.3".parse().unwrap(),
    };
    let first = b.execute(T0, &capture).unwrap();
    assert!(
        matches!(first, Receipt::Captured { charged, released, shortfall, .. }
            if charged == c(1_000) && released == c(0) && shortfall == c(500)),
        "{first:?}"
    );
    // Never an overdraft: the hold is what was charged.
    assert_eq!(b.balance(CustomerId(1)).unwrap(), Credits::new(before.get() - 1_000));
    // Nothing dropped: cost = charged + uncollected + the carrier's remainder.
    assert_eq!(b.uncollected(CustomerId(1)), Ok(c(500)));
    assert_eq!(b.carrier(CustomerId(1)).unwrap().remainder().to_string(), "0.3");
    // A retry answers the same and records nothing twice.
    assert_eq!(b.execute(T0, &capture), Ok(first));
    assert_eq!(b.uncollected(CustomerId(1)), Ok(c(500)));
    // The carrier moved on: the next exact cost completes the credit.
    b.hold(T0, HoldId(11), CustomerId(1), c(100), 1_000).unwrap();
    let next = b
        .execute(
            T0,
            &Command::CaptureCost {
                hold: HoldId(11),
                cost: "0.7".parse().unwrap(),
            },
        )
        .unwrap();
    assert!(
        matches!(next, Receipt::Captured { charged, shortfall, .. } if charged == c(1) && shortfall == c(0)),
        "{next:?}"
    );
    assert!(b.carrier(CustomerId(1)).unwrap().remainder().get().is_zero());
    // A whole-credit capture above the hold is still refused (the caller chose the amount),
    // and changes nothing.
    b.hold(T0, HoldId(12), CustomerId(1), c(100), 1_000).unwrap();
    assert_eq!(
        b.capture(T0, HoldId(12), c(101)),
        Err(Refusal::CaptureExceedsHold {
            held: c(100),
            requested: c(101)
        })
    );
    assert_eq!(b.uncollected(CustomerId(1)), Ok(c(500)));
}

#[test]
fn a_cost_above_an_expired_hold_changes_neither_carrier_nor_uncollected() {
    let mut b = billing(false);
    b.top_up(T0, TopUpId(5), CustomerId(1), usd(100), CARD).unwrap();
    b.hold(T0, HoldId(10), CustomerId(1), c(100), 1).unwrap();
    let late = T0 + 5 * MS;
    let capture = Command::CaptureCost {
        hold: HoldId(10),
        cost: "150.5".parse().unwrap(),
    };
    assert_eq!(b.execute(late, &capture), Err(Refusal::HoldExpired));
    assert_eq!(b.uncollected(CustomerId(1)), Ok(c(0)));
    assert!(b.carrier(CustomerId(1)).unwrap().remainder().get().is_zero());
}

#[test]
fn holds_are_pending_transfers_in_the_ledger() {
    let mut b = billing(false);
    b.top_up(T0, TopUpId(5), CustomerId(1), usd(100), CARD).unwrap();
    b.hold(T0, HoldId(10), CustomerId(1), c(7), 1_000).unwrap();
    let hold = b.ledger().transfers().find(|t| t.status.is_some()).unwrap();
    assert_eq!(hold.status, Some(PendingStatus::Pending));
    assert_eq!(hold.transfer.user_data, 10);
    b.release(T0, HoldId(10)).unwrap();
    assert_eq!(
        b.ledger().transfer(TransferId(hold.transfer.id.0)).unwrap().status,
        Some(PendingStatus::Voided)
    );
}
