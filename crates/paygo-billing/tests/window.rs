//! The billing layer's idempotency window: a retry after the window is refused, never
//! applied twice; open holds outlive it; compaction changes memory, never a reply or the
//! state; a durable store keeps its window.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::HashMap;

use paygo_billing::{Billing, BillingConfig, CardKind, Command, PaymentMethod, PaymentRef, Receipt, Refusal};
use paygo_billing::{CustomerId, HoldId, ReversalId, TopUpId};
use paygo_credits::{Credits, Currency, Decimal, ExactCredits, Money};
use paygo_ledger::durable::{Durable, OpenOptions};
use paygo_ledger::{IdWindow, ManualClock, SharedLedger, TransferId};
use proptest::prelude::*;

const MS: u64 = 1_000_000;
const SECOND: u64 = 1_000 * MS;
/// 2027-01-15 in nanoseconds since the Unix epoch.
const START: u64 = 1_800_000_000 * SECOND;
const WINDOW: IdWindow = IdWindow {
    past_ns: 60 * SECOND,
    ahead_ns: 5 * SECOND,
};
const CARD: PaymentMethod = PaymentMethod::Card(CardKind::Credit);
const CUSTOMER: u128 = 7;

fn id(at_ns: u64, n: u128) -> u128 {
    TransferId::from_time_ns(at_ns, n).0
}

fn usd(cents: i128) -> Money {
    Money::from_minor(cents, Currency::USD).unwrap()
}

fn config() -> BillingConfig {
    BillingConfig {
        id_window: Some(WINDOW),
        ..BillingConfig::default()
    }
}

fn billing() -> Billing {
    let mut b = Billing::new(config());
    b.open_account(START, CustomerId(CUSTOMER)).unwrap();
    b
}

#[test]
fn a_top_up_retried_after_the_window_is_refused_not_credited_twice() {
    let mut b = billing();
    let top_up = id(START, 1);
    let first = b.top_up(START, TopUpId(top_up), CustomerId(CUSTOMER), usd(100), CARD);
    assert!(matches!(first, Ok(Receipt::ToppedUp { .. })), "{first:?}");
    let balance = b.balance(CustomerId(CUSTOMER)).unwrap();
    // Inside the window: the first reply again.
    assert_eq!(
        b.top_up(
            START + 59 * SECOND,
            TopUpId(top_up),
            CustomerId(CUSTOMER),
            usd(100),
            CARD
        ),
        first
    );
    // After it, with or without a compaction in between: refused, nothing credited.
    let mut compacted = b.clone();
    compacted.compact();
    for b in [&mut b, &mut compacted] {
        let late = b.top_up(
            START + 61 * SECOND,
            TopUpId(top_up),
            CustomerId(CUSTOMER),
            usd(100),
            CARD,
        );
        assert_eq!(late, Err(Refusal::IdOlderThanWindow));
        assert_eq!(b.balance(CustomerId(CUSTOMER)).unwrap(), balance);
    }
    // An id from the future is refused too.
    let ahead = id(START + 70 * SECOND, 2);
    assert_eq!(
        b.top_up(
            START + 61 * SECOND,
            TopUpId(ahead),
            CustomerId(CUSTOMER),
            usd(100),
            CARD
        ),
        Err(Refusal::IdAheadOfWindow)
    );
}

#[test]
fn a_reversal_needs_no_memory_of_the_payment_and_is_never_applied_twice() {
    let mut b = billing();
    let top_up = id(START, 1);
    b.top_up(START, TopUpId(top_up), CustomerId(CUSTOMER), usd(100), CARD)
        .unwrap();
    // Months later the top-up is long forgotten; its chargeback still claws the credits
    // back (it names the payment, and the billing layer need not know it).
    let later = START + 90 * 86_400 * SECOND;
    let reversal = Command::ReversePayment {
        id: ReversalId(id(later, 2)),
        customer: CustomerId(CUSTOMER),
        amount: usd(150),
        payment: PaymentRef::TopUp(TopUpId(top_up)),
    };
    let first = b.execute(later, &reversal);
    assert_eq!(
        first,
        Ok(Receipt::Reversed {
            credits: Credits::new(3_000_000),
            recovered: Credits::new(2_000_000),
            arrears: Credits::new(1_000_000),
        })
    );
    // Inside the window a retry answers the same; after it, it is refused, not applied.
    assert_eq!(b.execute(later + 59 * SECOND, &reversal), first);
    assert_eq!(
        b.execute(later + 61 * SECOND, &reversal),
        Err(Refusal::IdOlderThanWindow)
    );
    assert_eq!(b.arrears(CustomerId(CUSTOMER)), Ok(Credits::new(1_000_000)));
    assert_eq!(b.balance(CustomerId(CUSTOMER)), Ok(Credits::new(-1_000_000)));
}

#[test]
fn an_open_hold_outlives_the_window_and_a_closed_one_is_forgotten() {
    let mut b = billing();
    b.top_up(START, TopUpId(id(START, 1)), CustomerId(CUSTOMER), usd(100), CARD)
        .unwrap();
    let hold = id(START, 2);
    b.hold(
        START,
        HoldId(hold),
        CustomerId(CUSTOMER),
        Credits::new(5_000),
        3_600_000,
    )
    .unwrap();
    // Half an hour later (the window is a minute), the hold is still open.
    let later = START + 1_800 * SECOND;
    b.compact();
    assert_eq!(
        b.hold(
            later,
            HoldId(hold),
            CustomerId(CUSTOMER),
            Credits::new(5_000),
            3_600_000
        ),
        Ok(Receipt::Held {
            amount: Credits::new(5_000)
        }),
        "a retry of an open hold still gets its reply"
    );
    let captured = b.capture(later, HoldId(hold), Credits::new(1_234)).unwrap();
    assert!(matches!(captured, Receipt::Captured { charged, .. } if charged == Credits::new(1_234)));
    let balance = b.balance(CustomerId(CUSTOMER)).unwrap();
    // Closed, and its id is older than the window: a retried capture is refused, not
    // charged again.
    b.compact();
    assert_eq!(
        b.capture(later, HoldId(hold), Credits::new(1_234)),
        Err(Refusal::IdOlderThanWindow)
    );
    assert_eq!(b.release(later, HoldId(hold)), Err(Refusal::IdOlderThanWindow));
    assert_eq!(b.balance(CustomerId(CUSTOMER)).unwrap(), balance);
}

#[test]
fn an_expired_hold_is_expired_inside_the_window_and_forgotten_after_it() {
    let mut b = billing();
    b.top_up(START, TopUpId(id(START, 1)), CustomerId(CUSTOMER), usd(100), CARD)
        .unwrap();
    let hold = id(START + 30 * SECOND, 2);
    b.hold(
        START + 30 * SECOND,
        HoldId(hold),
        CustomerId(CUSTOMER),
        Credits::new(5_000),
        10_000,
    )
    .unwrap();
    let before = b.balance(CustomerId(CUSTOMER)).unwrap();
    assert_eq!(
        b.capture(START + 45 * SECOND, HoldId(hold), Credits::new(1)),
        Err(Refusal::HoldExpired)
    );
    assert_eq!(
        b.capture(START + 100 * SECOND, HoldId(hold), Credits::new(1)),
        Err(Refusal::IdOlderThanWindow)
    );
    assert_eq!(
        b.balance(CustomerId(CUSTOMER)).unwrap(),
        Credits::new(before.get() + 5_000)
    );
}

#[test]
fn a_durable_billing_store_keeps_its_window() {
    let dir = std::env::temp_dir().join(format!("paygo-billing-window-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let options = OpenOptions::default();
    {
        let handle = SharedLedger::open(&dir, billing, ManualClock::new(START), &options).unwrap();
        let reply = handle
            .submit(vec![Command::TopUp {
                id: TopUpId(id(START, 1)),
                customer: CustomerId(CUSTOMER),
                amount: usd(100),
                method: CARD,
            }])
            .unwrap();
        assert!(reply[0].is_ok());
    }
    let clock = ManualClock::new(START + 120 * SECOND);
    let handle = paygo_billing::open_billing(&dir, BillingConfig::default(), clock, &options).unwrap();
    assert_eq!(handle.read(|b| b.config().id_window).unwrap(), Some(WINDOW));
    let late = handle
        .submit(vec![Command::TopUp {
            id: TopUpId(id(START, 1)),
            customer: CustomerId(CUSTOMER),
            amount: usd(100),
            method: CARD,
        }])
        .unwrap();
    assert_eq!(late, [Err(Refusal::IdOlderThanWindow)]);
    drop(handle);
    let _ = std::fs::remove_dir_all(&dir);
}

#[derive(Debug, Clone)]
enum Step {
    TopUp { cents: i128 },
    Reverse { cents: i128 },
    Hold { amount: i64, timeout_ms: u64 },
    Capture { pick: usize, amount: i64 },
    CaptureCost { pick: usize, millis: i64 },
    Release { pick: usize },
    Retry { pick: usize },
    Wait { ms: u64 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (1..500i128).prop_map(|cents| Step::TopUp { cents }),
        1 => (1..800i128).prop_map(|cents| Step::Reverse { cents }),
        3 => (1..50_000i64, 1..90_000u64).prop_map(|(amount, timeout_ms)| Step::Hold { amount, timeout_ms }),
        2 => (any::<usize>(), 0..60_000i64).prop_map(|(pick, amount)| Step::Capture { pick, amount }),
        1 => (any::<usize>(), 0..90_000_000i64).prop_map(|(pick, millis)| Step::CaptureCost { pick, millis }),
        1 => any::<usize>().prop_map(|pick| Step::Release { pick }),
        3 => any::<usize>().prop_map(|pick| Step::Retry { pick }),
        3 => (0..40_000u64).prop_map(|ms| Step::Wait { ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// One billing layer compacted after every command, one never: the same replies,
    /// balances and snapshot bytes; a top-up id credits at most once whenever it is
    /// retried.
    #[test]
    fn compaction_never_changes_a_reply_and_no_top_up_credits_twice(
        steps in prop::collection::vec(step(), 1..100),
    ) {
        let (mut eager, mut lazy) = (billing(), billing());
        let mut now = START;
        let mut sent: Vec<Command> = Vec::new();
        let mut holds: Vec<u128> = Vec::new();
        let mut credited: HashMap<u128, i64> = HashMap::new();
        let mut n = 0u128;
        for s in steps {
            n += 1;
            let command = match s {
                Step::TopUp { cents } => Command::TopUp { id: TopUpId(id(now, n)), customer: CustomerId(CUSTOMER), amount: usd(cents), method: CARD },
                Step::Reverse { cents } => Command::ReversePayment {
                    id: ReversalId(id(now, n)),
                    customer: CustomerId(CUSTOMER),
                    amount: usd(cents),
                    payment: PaymentRef::TopUp(TopUpId(n)),
                },
                Step::Hold { amount, timeout_ms } => {
                    holds.push(id(now, n));
                    Command::Hold { id: HoldId(id(now, n)), customer: CustomerId(CUSTOMER), amount: Credits::new(amount), timeout_ms }
                }
                Step::Capture { pick, amount } if !holds.is_empty() => {
                    Command::Capture { hold: HoldId(holds[pick % holds.len()]), amount: Credits::new(amount) }
                }
                Step::CaptureCost { pick, millis } if !holds.is_empty() => Command::CaptureCost {
                    hold: HoldId(holds[pick % holds.len()]),
                    cost: ExactCredits::new(Decimal::new(millis, 3)),
                },
                Step::Release { pick } if !holds.is_empty() => Command::Release { hold: HoldId(holds[pick % holds.len()]) },
                Step::Retry { pick } if !sent.is_empty() => sent[pick % sent.len()],
                Step::Wait { ms } => {
                    now += ms * MS;
                    continue;
                }
                _ => continue,
            };
            let a = eager.execute(now, &command);
            let b = lazy.execute(now, &command);
            prop_assert_eq!(a, b);
            eager.compact();
            if let (Command::TopUp { id, .. }, Ok(Receipt::ToppedUp { credits })) = (command, a) {
                credited.entry(id.0).or_insert(credits.get());
            }
            sent.push(command);
            let (mut x, mut y) = (Vec::new(), Vec::new());
            Durable::encode_state(&eager, &mut x).unwrap();
            Durable::encode_state(&lazy, &mut y).unwrap();
            prop_assert!(x == y, "snapshots differ after compaction");
        }
        // Credits sold (the funding account's debits) are the distinct top-ups' credits:
        // no retry, early or late, credited twice.
        let sold: i64 = credited.values().sum();
        let funding = lazy.ledger().account(paygo_billing::FUNDING).unwrap();
        prop_assert_eq!(funding.debits_posted, u128::try_from(sold).unwrap());
        prop_assert_eq!(eager.balance(CustomerId(CUSTOMER)), lazy.balance(CustomerId(CUSTOMER)));
        prop_assert_eq!(eager.uncollected(CustomerId(CUSTOMER)), lazy.uncollected(CustomerId(CUSTOMER)));
        prop_assert_eq!(eager.arrears(CustomerId(CUSTOMER)), lazy.arrears(CustomerId(CUSTOMER)));
    }
}

/// Found by fuzzing (docs/fuzzing.md, L1): a billing snapshot with an id counter no writer
/// can reach is refused, instead of overflowing at the next grant or transfer.
#[test]
fn a_billing_snapshot_with_unreachable_counters_is_refused() {
    let mut b = Billing::new(BillingConfig {
        bonus_enabled: true,
        ..BillingConfig::default()
    });
    b.open_account(1, CustomerId(1)).unwrap();
    let mut state = Vec::new();
    b.encode_state(&mut state).unwrap();
    assert!(<Billing as Durable>::decode_state(&state, 0).is_ok());
    // The settings ("USD" and "2000000" as length-prefixed texts, a bool, a u64), then
    // the three counters.
    let first = 8 + 3 + 8 + 7 + 1 + 8;
    for counter in 0..3 {
        for value in [0u128, 1 << 64, 1 << 127, u128::MAX] {
            let mut doctored = state.clone();
            let at = first + 16 * counter;
            assert_eq!(u128::from_le_bytes(doctored[at..at + 16].try_into().unwrap()), 1);
            doctored[at..at + 16].copy_from_slice(&value.to_le_bytes());
            let err = <Billing as Durable>::decode_state(&doctored, 0).unwrap_err();
            assert!(err.to_string().contains("counter"), "{err}");
        }
    }
}
