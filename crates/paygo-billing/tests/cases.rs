//! Hand-made cases of the billing layer: the chart of accounts, top-ups and payment
//! methods, holds, bonus lots and their spend order, expiry, auto top-up and its
//! guardrails, and payment reversals with their arrears.

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
    PaymentMethod, PaymentOutcome, PaymentRef, RECEIVABLES, REVENUE, Receipt, Reference, Refusal, SwitchedOff,
    TopUpAmount, codes,
};
use paygo_billing::{CustomerId, GrantId, HoldId, RequestId, ReversalId, TopUpId};
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

fn reverse(b: &mut Billing, now: u64, id: u128, cents: i128, top_up: u128) -> paygo_billing::Reply {
    b.reverse_payment(
        now,
        ReversalId(id),
        CustomerId(1),
        usd(cents),
        PaymentRef::TopUp(TopUpId(top_up)),
    )
}

fn posted(b: &Billing, account: paygo_ledger::AccountId) -> i128 {
    b.ledger().account(account).unwrap().posted_balance()
}

#[test]
fn a_reversal_claws_back_what_is_available_and_the_rest_is_arrears_until_a_top_up_settles_it() {
    let mut b = billing(false);
    b.top_up(T0, TopUpId(5), CustomerId(1), usd(1_000), CARD).unwrap(); // 20,000,000
    b.hold(T0, HoldId(10), CustomerId(1), c(5_000_000), 60_000).unwrap();
    // The chargeback takes the whole $10 back: 15,000,000 are available, 5,000,000 held.
    let reversed = reverse(&mut b, T0, 77, 1_000, 5).unwrap();
    assert_eq!(
        reversed,
        Receipt::Reversed {
            credits: c(20_000_000),
            recovered: c(15_000_000),
            arrears: c(5_000_000),
        }
    );
    assert_eq!(b.arrears(CustomerId(1)), Ok(c(5_000_000)));
    assert_eq!(b.balance(CustomerId(1)), Ok(c(-5_000_000)));
    assert_eq!(posted(&b, RECEIVABLES), -5_000_000);
    assert_eq!(posted(&b, FUNDING), 0);
    // The reversal moves all the credits from the customer, naming the reversed payment
    // (its kind in the code, its id in user_data); what the balance did not cover came
    // from receivables first, naming the customer.
    let reversal_transfers: Vec<_> = b
        .ledger()
        .transfers()
        .filter(|t| [codes::REVERSAL_OF_TOP_UP, codes::ARREARS_RECORDED].contains(&t.transfer.code))
        .map(|t| {
            (
                t.transfer.code,
                t.transfer.debit_account_id,
                t.transfer.amount,
                t.transfer.user_data,
            )
        })
        .collect();
    assert_eq!(
        reversal_transfers,
        [
            (codes::ARREARS_RECORDED, RECEIVABLES, c(5_000_000), 1),
            (codes::REVERSAL_OF_TOP_UP, paygo_ledger::AccountId(1), c(20_000_000), 5)
        ]
    );
    // Idempotent by its id: the same reply, and another body is refused.
    assert_eq!(reverse(&mut b, T0, 77, 1_000, 5), Ok(reversed));
    assert_eq!(reverse(&mut b, T0, 77, 999, 5), Err(Refusal::IdReused));
    assert_eq!(b.arrears(CustomerId(1)), Ok(c(5_000_000)));
    // No service while in arrears; the call in flight is still captured.
    assert_eq!(
        b.hold(T0, HoldId(11), CustomerId(1), c(1), 1_000),
        Err(Refusal::AccountInArrears { arrears: c(5_000_000) })
    );
    assert!(matches!(
        b.capture(T0, HoldId(10), c(3_000_000)),
        Ok(Receipt::Captured { .. })
    ));
    // The 2,000,000 released by the capture settle the arrears at once.
    assert_eq!(b.arrears(CustomerId(1)), Ok(c(3_000_000)));
    assert_eq!(b.balance(CustomerId(1)), Ok(c(-3_000_000)));
    // A $1 top-up settles 2,000,000 of the rest in the same chain; $5 more settle it all.
    b.top_up(T0, TopUpId(6), CustomerId(1), usd(100), CARD).unwrap();
    assert_eq!(b.arrears(CustomerId(1)), Ok(c(1_000_000)));
    b.top_up(T0, TopUpId(7), CustomerId(1), usd(500), CARD).unwrap();
    assert_eq!(b.arrears(CustomerId(1)), Ok(c(0)));
    assert_eq!(b.balance(CustomerId(1)), Ok(c(9_000_000)));
    assert_eq!(posted(&b, RECEIVABLES), 0);
    let settled: Vec<_> = b
        .ledger()
        .transfers()
        .filter(|t| t.transfer.code == codes::ARREARS_SETTLED)
        .map(|t| (t.transfer.amount, t.transfer.user_data))
        .collect();
    assert_eq!(settled, [(c(2_000_000), 0), (c(2_000_000), 6), (c(1_000_000), 7)]);
    assert!(b.hold(T0, HoldId(12), CustomerId(1), c(1), 1_000).is_ok());
    b.ledger().check_invariants().unwrap();
}

#[test]
fn a_reversal_checks_its_amount_and_leaves_bonus_lots_alone() {
    let mut b = billing(true);
    for (i, (amount, why)) in [
        (
            Money::from_minor(100, Currency::EUR).unwrap(),
            AmountRule::ReversalNotUsd,
        ),
        (
            Money::new(Decimal::new(1001, 3), Currency::USD),
            AmountRule::ReversalNotWholeCents,
        ),
        (usd(0), AmountRule::ReversalNotPositive),
        (usd(-5), AmountRule::ReversalNotPositive),
    ]
    .into_iter()
    .enumerate()
    {
        let reply = b.reverse_payment(
            T0,
            ReversalId(i as u128),
            CustomerId(1),
            amount,
            PaymentRef::AutoTopUp(RequestId(3)),
        );
        assert_eq!(reply, Err(Refusal::InvalidAmount(why)));
    }
    assert_eq!(
        b.reverse_payment(T0, ReversalId(9), CustomerId(2), usd(1), PaymentRef::TopUp(TopUpId(1))),
        Err(Refusal::UnknownAccount)
    );
    // A bonus lot is not clawed back: the whole reversal is arrears, and the lot, though
    // left, cannot be spent while they are owed.
    b.execute(
        T0,
        &Command::GrantBonus {
            id: GrantId(1),
            customer: CustomerId(1),
            amount: c(100),
            expires_at_ns: T0 + 1_000 * MS,
        },
    )
    .unwrap();
    assert_eq!(
        b.reverse_payment(
            T0,
            ReversalId(20),
            CustomerId(1),
            usd(1),
            PaymentRef::AutoTopUp(RequestId(3))
        ),
        Ok(Receipt::Reversed {
            credits: c(20_000),
            recovered: c(0),
            arrears: c(20_000),
        })
    );
    assert_eq!(b.balance(CustomerId(1)), Ok(c(100 - 20_000)));
    assert_eq!(posted(&b, PROMOTIONS), -100);
    assert_eq!(
        b.hold(T0, HoldId(1), CustomerId(1), c(50), 1_000),
        Err(Refusal::AccountInArrears { arrears: c(20_000) })
    );
    assert_eq!(
        b.ledger()
            .transfers()
            .filter(|t| t.transfer.code == codes::REVERSAL_OF_AUTO_TOP_UP)
            .map(|t| t.transfer.user_data)
            .collect::<Vec<_>>(),
        [3]
    );
}

#[test]
fn an_auto_top_up_settles_arrears_first_and_a_target_balance_counts_them() {
    let mut b = billing(false);
    b.top_up(T0, TopUpId(5), CustomerId(1), usd(1_000), CARD).unwrap(); // 20,000,000
    b.execute(
        T0,
        &Command::SetAutoTopUp {
            customer: CustomerId(1),
            rule: Some(rule(1_000_000, TopUpAmount::TargetBalance(c(4_000_000)))),
        },
    )
    .unwrap();
    b.hold(T0, HoldId(10), CustomerId(1), c(15_000_000), 60_000).unwrap();
    reverse(&mut b, T0, 1, 1_000, 5).unwrap(); // recovers 5,000,000, owes 15,000,000
    let Receipt::Captured { auto_top_up, .. } = b.capture(T0, HoldId(10), c(15_000_000)).unwrap() else {
        panic!()
    };
    // The balance is -15,000,000: reaching 4,000,000 takes 19,000,000 credits, $9.50.
    let AutoTopUp::Requested(request) = auto_top_up else {
        panic!("{auto_top_up:?}")
    };
    assert_eq!(request.amount, usd(950));
    let paid = b.execute(
        T0,
        &Command::ReportPayment {
            request: request.id,
            outcome: PaymentOutcome::Succeeded,
        },
    );
    assert_eq!(
        paid,
        Ok(Receipt::PaymentRecorded {
            credits: c(19_000_000),
            retry_after_ns: None,
            rule_switched_off: false,
        })
    );
    assert_eq!(b.arrears(CustomerId(1)), Ok(c(0)));
    assert_eq!(b.balance(CustomerId(1)), Ok(c(4_000_000)));
    assert_eq!(posted(&b, RECEIVABLES), 0);
}

/// 2027-01-15T08:00:00Z, and the first instants of February and March 2027.
const JAN_2027: u64 = 1_800_000_000 * 1_000 * MS;
const FEB_2027: u64 = 1_801_440_000 * 1_000 * MS;
const MAR_2027: u64 = FEB_2027 + 28 * 86_400 * 1_000 * MS;

#[test]
fn the_monthly_cap_holds_per_calendar_month_and_a_decline_gives_its_amount_back() {
    let mut b = Billing::new(BillingConfig::default());
    b.open_account(JAN_2027, CustomerId(1)).unwrap();
    b.top_up(JAN_2027, TopUpId(5), CustomerId(1), usd(100), CARD).unwrap(); // 2,000,000
    let mut capped = rule(100_000_000, TopUpAmount::Fixed(usd(500)));
    capped.requests_per_window_max = 100;
    capped.monthly_cap = Some(usd(1_200));
    b.execute(
        JAN_2027,
        &Command::SetAutoTopUp {
            customer: CustomerId(1),
            rule: Some(capped),
        },
    )
    .unwrap();
    let mut hold = 10;
    let mut spend = |b: &mut Billing, now: u64| {
        hold += 1;
        spend_at(b, now, hold)
    };
    let report = |b: &mut Billing, now: u64, decision: AutoTopUp, outcome| {
        let AutoTopUp::Requested(q) = decision else {
            panic!("{decision:?}")
        };
        b.execute(now, &Command::ReportPayment { request: q.id, outcome })
            .unwrap()
    };
    // $5 and $5: $10 of $12.
    let first = spend(&mut b, JAN_2027);
    report(&mut b, JAN_2027, first, PaymentOutcome::Succeeded);
    let second = spend(&mut b, JAN_2027);
    report(&mut b, JAN_2027, second, PaymentOutcome::Succeeded);
    assert_eq!(b.auto_top_up(CustomerId(1)).unwrap().month_requested, usd(1_000));
    // A third $5 would make $15: not requested, and said until when.
    assert_eq!(
        spend(&mut b, JAN_2027),
        AutoTopUp::MonthlyCapReached { until_ns: FEB_2027 }
    );
    assert_eq!(b.drain_requests().len(), 2);
    // February: the cap starts again; a declined payment gives its $5 back to the month.
    let third = spend(&mut b, FEB_2027);
    report(&mut b, FEB_2027, third, PaymentOutcome::Declined);
    let status = b.auto_top_up(CustomerId(1)).unwrap();
    assert_eq!((status.month_start_ns, status.month_requested), (FEB_2027, usd(0)));
    let after_backoff = FEB_2027 + 100 * MS;
    for _ in 0..2 {
        let q = spend(&mut b, after_backoff);
        report(&mut b, after_backoff, q, PaymentOutcome::Succeeded);
    }
    assert_eq!(
        spend(&mut b, MAR_2027 - 1),
        AutoTopUp::MonthlyCapReached { until_ns: MAR_2027 }
    );
    assert!(matches!(spend(&mut b, MAR_2027), AutoTopUp::Requested(_)));
}

fn spend_at(b: &mut Billing, now: u64, id: u128) -> AutoTopUp {
    b.hold(now, HoldId(id), CustomerId(1), c(1), 1_000).unwrap();
    match b.capture(now, HoldId(id), c(1)).unwrap() {
        Receipt::Captured { auto_top_up, .. } => auto_top_up,
        other => panic!("{other:?}"),
    }
}

#[test]
fn declines_in_a_row_switch_the_rule_off_and_setting_it_again_switches_it_on() {
    let mut b = billing(false);
    b.top_up(T0, TopUpId(5), CustomerId(1), usd(100), CARD).unwrap();
    let mut careful = rule(100_000_000, TopUpAmount::Fixed(usd(500)));
    careful.requests_per_window_max = 100;
    careful.disable_after_declines = Some(2);
    careful.buyer_tax_id = Some(Reference::new("DE123456789").unwrap());
    careful.purchase_order = Some("PO-2026-0042".parse().unwrap());
    let set = Command::SetAutoTopUp {
        customer: CustomerId(1),
        rule: Some(careful),
    };
    b.execute(T0, &set).unwrap();
    let mut now = T0;
    let mut switched = Vec::new();
    for hold in 10..12 {
        let AutoTopUp::Requested(q) = spend_at(&mut b, now, hold) else {
            panic!()
        };
        // The invoice of an automatic top-up can show the buyer's references.
        assert_eq!(
            (q.buyer_tax_id, q.purchase_order),
            (careful.buyer_tax_id, careful.purchase_order)
        );
        let Receipt::PaymentRecorded { rule_switched_off, .. } = b
            .execute(
                now,
                &Command::ReportPayment {
                    request: q.id,
                    outcome: PaymentOutcome::Declined,
                },
            )
            .unwrap()
        else {
            panic!()
        };
        switched.push(rule_switched_off);
        now += 1_000 * MS;
    }
    // The second decline in a row switched it off, and said so.
    assert_eq!(switched, [false, true]);
    let status = b.auto_top_up(CustomerId(1)).unwrap();
    assert_eq!(
        status.switched_off,
        Some(SwitchedOff::Declines {
            declines: 2,
            at_ns: now - 1_000 * MS
        })
    );
    assert_eq!(status.declines_in_a_row, 2);
    assert!(!status.rule.unwrap().enabled);
    assert_eq!(spend_at(&mut b, now, 20), AutoTopUp::Disabled);
    // Setting it again switches it on, from zero declines.
    b.execute(now, &set).unwrap();
    let status = b.auto_top_up(CustomerId(1)).unwrap();
    assert_eq!((status.switched_off, status.declines_in_a_row), (None, 0));
    assert!(matches!(spend_at(&mut b, now, 21), AutoTopUp::Requested(_)));
    // The guardrails' own rules.
    for (broken, why) in [
        (
            AutoTopUpRule {
                monthly_cap: Some(usd(0)),
                ..careful
            },
            AmountRule::MonthlyCapNotPositiveUsd,
        ),
        (
            AutoTopUpRule {
                monthly_cap: Some(Money::from_minor(1_000, Currency::EUR).unwrap()),
                ..careful
            },
            AmountRule::MonthlyCapNotPositiveUsd,
        ),
        (
            AutoTopUpRule {
                monthly_cap: Some(usd(499)),
                ..careful
            },
            AmountRule::AutoTopUpAboveMonthlyCap,
        ),
        (
            AutoTopUpRule {
                disable_after_declines: Some(0),
                ..careful
            },
            AmountRule::DeclineLimitZero,
        ),
    ] {
        let set = Command::SetAutoTopUp {
            customer: CustomerId(1),
            rule: Some(broken),
        };
        assert_eq!(b.execute(now, &set), Err(Refusal::InvalidAmount(why)));
    }
}

#[test]
fn the_new_commands_and_receipts_have_a_json_form() {
    let command = Command::ReversePayment {
        id: ReversalId(3),
        customer: CustomerId(1),
        amount: usd(1_250),
        payment: PaymentRef::AutoTopUp(RequestId(9)),
    };
    let json = serde_json::to_value(command).unwrap();
    assert_eq!(json["reverse_payment"]["payment"]["auto_top_up"], 9);
    assert_eq!(serde_json::from_value::<Command>(json).unwrap(), command);
    let mut with_refs = rule(1, TopUpAmount::Fixed(usd(500)));
    with_refs.purchase_order = Some(Reference::new("PO 7").unwrap());
    let json = serde_json::to_value(with_refs).unwrap();
    assert_eq!(json["purchase_order"], "PO 7");
    assert_eq!(serde_json::from_value::<AutoTopUpRule>(json).unwrap(), with_refs);
    let refusal = Refusal::AccountInArrears { arrears: c(5) };
    assert!(refusal.to_string().contains("arrears"), "{refusal}");
    let json = serde_json::to_string(&Err::<Receipt, _>(refusal)).unwrap();
    assert_eq!(
        serde_json::from_str::<paygo_billing::Reply>(&json).unwrap(),
        Err(refusal)
    );
}

#[test]
fn an_extended_hold_outlives_its_first_timeout_and_keeps_its_credits() {
    let mut b = billing(true);
    let customer = CustomerId(1);
    b.top_up(T0, TopUpId(1), customer, usd(100), CARD).unwrap();
    b.execute(
        T0,
        &Command::GrantBonus {
            id: GrantId(2),
            customer,
            amount: c(300),
            expires_at_ns: T0 + 3_600_000 * MS,
        },
    )
    .unwrap();
    // The hold draws on the bonus lot first, then on the paid balance: two parts.
    b.hold(T0, HoldId(7), customer, c(1_000), 1_000).unwrap();
    let held = b.balance(customer).unwrap();
    assert_eq!(held, c(2_000_000 + 300 - 1_000));
    let extend = Command::ExtendHold {
        hold: HoldId(7),
        timeout_ms: 5_000,
    };
    let receipt = b.execute(T0 + 900 * MS, &extend).unwrap();
    let Receipt::HoldExtended { until_ns } = receipt else {
        panic!("{receipt:?}")
    };
    assert_eq!(until_ns, T0 + 5_900 * MS);
    // The credits never left the hold.
    assert_eq!(b.balance(customer).unwrap(), held);
    // Past the first timeout, the hold is still open and captures.
    let t = T0 + 3_000 * MS;
    assert_eq!(b.balance(customer).unwrap(), held);
    let captured = b.capture(t, HoldId(7), c(800)).unwrap();
    assert!(matches!(captured, Receipt::Captured { charged, .. } if charged == c(800)));
    assert_eq!(b.balance(customer).unwrap(), c(2_000_000 + 300 - 800));
    // A closed hold cannot be extended.
    assert_eq!(b.execute(t, &extend), Err(Refusal::HoldCaptured));
    b.ledger().check_invariants().unwrap();
}

#[test]
fn a_hold_cannot_be_extended_once_expired_or_beyond_the_maximum() {
    let mut b = billing(false);
    let customer = CustomerId(1);
    b.top_up(T0, TopUpId(1), customer, usd(100), CARD).unwrap();
    b.hold(T0, HoldId(7), customer, c(1_000), 1_000).unwrap();
    let too_long = Command::ExtendHold {
        hold: HoldId(7),
        timeout_ms: 3_600_001,
    };
    assert_eq!(b.execute(T0, &too_long), Err(Refusal::InvalidTimeout));
    let late = Command::ExtendHold {
        hold: HoldId(7),
        timeout_ms: 1_000,
    };
    // After its timeout the hold is gone, and its credits are back.
    assert_eq!(b.execute(T0 + 2_000 * MS, &late), Err(Refusal::HoldExpired));
    assert_eq!(b.balance(customer).unwrap(), c(2_000_000));
    assert_eq!(
        b.execute(
            T0,
            &Command::ExtendHold {
                hold: HoldId(8),
                timeout_ms: 1_000
            }
        ),
        Err(Refusal::UnknownHold)
    );
}
