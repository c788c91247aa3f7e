//! The billing machine on the ledger's durable store: a reopened store rebuilds the same
//! state and answers, keeps the settings it was created with and its outstanding auto
//! top-up requests, and is never opened as a store of another kind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
#![allow(clippy::cast_possible_wrap, clippy::cast_sign_loss, clippy::too_many_lines)]

use paygo_billing::{
    AutoTopUpRule, Billing, BillingConfig, CardKind, Command, PaymentMethod, PaymentOutcome, PaymentRef, Reference,
    TopUpAmount,
};
use paygo_billing::{CustomerId, GrantId, HoldId, RequestId, ReversalId, TopUpId};
use paygo_credits::{Credits, Money};
use paygo_ledger::durable::OpenOptions;
use paygo_ledger::{AccountBalance, Ledger, LedgerError, ManualClock, StateMachine, TransferRecord};
use paygo_testkit::store::TempDir;

fn no_auto_snapshot() -> OpenOptions {
    OpenOptions {
        snapshot_journal_bytes: None,
        ..OpenOptions::default()
    }
}

/// What two ledgers must agree on.
fn fingerprint(l: &Ledger) -> (Vec<AccountBalance>, Vec<TransferRecord>, u64) {
    (l.accounts().collect(), l.transfers().collect(), l.last_timestamp_ns())
}

fn usd(text: &str) -> Money {
    Money::usd(text.parse().unwrap())
}

fn billing_commands() -> Vec<Vec<Command>> {
    let card = PaymentMethod::Card(CardKind::Credit);
    let rule = AutoTopUpRule {
        enabled: true,
        threshold: Credits::new(5_000_000),
        amount: TopUpAmount::Fixed(usd("5.00")),
        method: card,
        requests_per_window_max: 3,
        window_ms: 60_000,
        backoff_ms: 1_000,
        backoff_max_ms: 8_000,
        monthly_cap: Some(usd("40.00")),
        disable_after_declines: Some(1),
        buyer_tax_id: Some(Reference::new("DE123456789").unwrap()),
        purchase_order: Some(Reference::new("PO 2026/17").unwrap()),
    };
    let mut out = vec![vec![
        Command::OpenAccount {
            customer: CustomerId(1),
        },
        Command::OpenAccount {
            customer: CustomerId(2),
        },
        Command::TopUp {
            id: TopUpId(1),
            customer: CustomerId(1),
            amount: usd("3.10"),
            method: card,
        },
        Command::TopUp {
            id: TopUpId(2),
            customer: CustomerId(2),
            amount: usd("1.00"),
            method: PaymentMethod::GiftCard,
        },
        Command::TopUp {
            id: TopUpId(3),
            customer: CustomerId(2),
            amount: usd("1.001"),
            method: PaymentMethod::PayPal,
        },
        Command::SetAutoTopUp {
            customer: CustomerId(1),
            rule: Some(rule),
        },
        Command::GrantBonus {
            id: GrantId(4),
            customer: CustomerId(1),
            amount: Credits::new(100),
            expires_at_ns: u64::MAX,
        },
    ]];
    for k in 0..30u128 {
        let hold = 100 + k;
        out.push(vec![
            Command::Hold {
                id: HoldId(hold),
                customer: CustomerId(1),
                amount: Credits::new(400_000),
                timeout_ms: 1 + (k as u64 % 3),
            },
            Command::Capture {
                hold: HoldId(hold),
                amount: Credits::new(100_000 + k as i64),
            },
            Command::Capture {
                hold: HoldId(hold),
                amount: Credits::new(900_000),
            },
            Command::Release { hold: HoldId(hold - 1) },
            // Reversals into arrears, and top-ups that settle them.
            Command::ReversePayment {
                id: ReversalId(k),
                customer: CustomerId(1 + k % 2),
                amount: usd(if k % 4 == 0 { "3.00" } else { "0.10" }),
                payment: if k % 3 == 0 {
                    PaymentRef::AutoTopUp(RequestId(k))
                } else {
                    PaymentRef::TopUp(TopUpId(k))
                },
            },
            Command::TopUp {
                id: TopUpId(1_000 + k),
                customer: CustomerId(1 + k % 2),
                amount: usd("1.00"),
                method: card,
            },
            Command::ReportPayment {
                request: RequestId(k / 2),
                outcome: if k % 3 == 0 {
                    PaymentOutcome::Declined
                } else {
                    PaymentOutcome::Succeeded
                },
            },
        ]);
    }
    out
}

#[test]
fn a_reopened_billing_has_the_same_state_and_replies() {
    let dir = TempDir::new("billing");
    let all = billing_commands();
    let now = 2_000_000_000;
    let mut reference = Billing::new(BillingConfig::default());
    {
        let shared = paygo_billing::open_billing(
            &dir.0,
            BillingConfig::default(),
            ManualClock::new(now),
            &no_auto_snapshot(),
        )
        .unwrap();
        for (i, commands) in all.iter().enumerate() {
            assert_eq!(
                shared.submit(commands.clone()).unwrap(),
                reference.apply_batch(now, commands).unwrap()
            );
            if i % 10 == 5 {
                // Snapshots hold replies, holds, lots and rules: replay after them too.
                shared.snapshot().unwrap();
            }
        }
    }
    // A different config is ignored: the stored one is the one the commands ran with.
    let other = BillingConfig {
        bonus_enabled: true,
        ..BillingConfig::default()
    };
    let shared = paygo_billing::open_billing(&dir.0, other, ManualClock::new(now), &no_auto_snapshot()).unwrap();
    assert_eq!(shared.read(|b| *b.config()).unwrap(), BillingConfig::default());
    // The auto top-up requests still waiting for a payment outcome survive the restart.
    assert_eq!(
        shared.read(Billing::outstanding_requests).unwrap(),
        reference.outstanding_requests()
    );
    for customer in [1, 2].map(CustomerId) {
        assert_eq!(
            shared.read(|b| b.balance(customer)).unwrap(),
            reference.balance(customer)
        );
        assert_eq!(
            shared.read(|b| b.arrears(customer)).unwrap(),
            reference.arrears(customer)
        );
        assert_eq!(
            shared.read(|b| b.auto_top_up(customer)).unwrap(),
            reference.auto_top_up(customer)
        );
    }
    // The commands made arrears, and requests that count against the monthly cap.
    assert!(reference.arrears(CustomerId(1)).unwrap() > Credits::ZERO);
    let auto = reference.auto_top_up(CustomerId(1)).unwrap();
    assert!(
        auto.outstanding.is_some() && !auto.month_requested.is_zero(),
        "{auto:?}"
    );
    assert_eq!(
        shared.read(|b| fingerprint(b.ledger())).unwrap(),
        fingerprint(reference.ledger())
    );
    for commands in &all {
        assert_eq!(
            shared.submit(commands.clone()).unwrap(),
            reference.apply_batch(now, commands).unwrap()
        );
    }
}

#[test]
fn a_ledger_store_is_not_opened_as_a_billing_store() {
    let kind = TempDir::new("kind");
    drop(paygo_ledger::open_ledger(&kind.0, ManualClock::new(1), &OpenOptions::default()).unwrap());
    let as_billing = paygo_billing::open_billing(
        &kind.0,
        BillingConfig::default(),
        ManualClock::new(1),
        &OpenOptions::default(),
    );
    assert!(matches!(as_billing, Err(LedgerError::Foreign { .. })), "{as_billing:?}");
}

mod encoding {
    //! The journal and snapshot encodings round-trip every command, reply and state,
    //! the fields of reversals, arrears and the auto top-up guardrails included.

    use paygo_billing::{
        AutoTopUpRule, Billing, BillingConfig, CardKind, Command, PaymentMethod, PaymentOutcome, PaymentRef, Reference,
        TopUpAmount,
    };
    use paygo_billing::{CustomerId, HoldId, RequestId, ReversalId, TopUpId};
    use paygo_credits::{Credits, Currency, Money};
    use paygo_ledger::durable::Durable;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;
    const DAY: u64 = 86_400_000 * MS;

    fn usd(cents: i64) -> Money {
        Money::from_minor(i128::from(cents), Currency::USD).unwrap()
    }

    fn reference() -> impl Strategy<Value = Option<Reference>> {
        prop::option::of("[A-Za-z0-9][A-Za-z0-9 /-]{0,38}[A-Za-z0-9]".prop_map(|t| Reference::new(&t).unwrap()))
    }

    fn rule() -> impl Strategy<Value = AutoTopUpRule> {
        (
            (any::<bool>(), 1..40_000_000i64, 100..3_000i64, any::<bool>()),
            (1..4u32, 1..100_000u64, 0..10_000u64),
            (
                prop::option::of(3_000..10_000i64),
                prop::option::of(1..5u32),
                reference(),
                reference(),
            ),
        )
            .prop_map(
                |(
                    (enabled, threshold, cents, fixed),
                    (per_window, window_ms, backoff_ms),
                    (cap, declines, tax, po),
                )| AutoTopUpRule {
                    enabled,
                    threshold: Credits::new(threshold),
                    amount: if fixed {
                        TopUpAmount::Fixed(usd(cents))
                    } else {
                        TopUpAmount::TargetBalance(Credits::new(threshold + cents * 20_000))
                    },
                    method: PaymentMethod::Card(CardKind::Debit),
                    requests_per_window_max: per_window,
                    window_ms,
                    backoff_ms,
                    backoff_max_ms: backoff_ms * 8,
                    monthly_cap: cap.map(usd),
                    disable_after_declines: declines,
                    buyer_tax_id: tax,
                    purchase_order: po,
                },
            )
    }

    /// Commands on customers 1 and 2 with small ids, so that they meet: holds that are
    /// captured, requests that are reported, reversals that leave arrears.
    fn command() -> impl Strategy<Value = Command> {
        let customer = (1..3u128).prop_map(CustomerId);
        prop_oneof![
            (0..3u128).prop_map(|c| Command::OpenAccount {
                customer: CustomerId(c)
            }),
            (0..20u128, customer.clone(), 1..2_000i64).prop_map(|(id, customer, cents)| Command::TopUp {
                id: TopUpId(id),
                customer,
                amount: usd(cents),
                method: PaymentMethod::PayPal,
            }),
            (0..30u128, customer.clone(), 1..3_000_000i64, 1..200u64).prop_map(|(id, customer, amount, timeout_ms)| {
                Command::Hold {
                    id: HoldId(id),
                    customer,
                    amount: Credits::new(amount),
                    timeout_ms,
                }
            }),
            (0..30u128, 0..3_000_000i64).prop_map(|(hold, amount)| Command::Capture {
                hold: HoldId(hold),
                amount: Credits::new(amount),
            }),
            (customer.clone(), prop::option::of(rule()))
                .prop_map(|(customer, rule)| Command::SetAutoTopUp { customer, rule }),
            (0..8u128, any::<bool>()).prop_map(|(request, paid)| Command::ReportPayment {
                request: RequestId(request),
                outcome: if paid {
                    PaymentOutcome::Succeeded
                } else {
                    PaymentOutcome::Declined
                },
            }),
            (0..20u128, customer, 0..3_000i64, any::<bool>(), any::<u128>()).prop_map(
                |(id, customer, cents, top_up, payment)| Command::ReversePayment {
                    id: ReversalId(id),
                    customer,
                    amount: usd(cents),
                    payment: if top_up {
                        PaymentRef::TopUp(TopUpId(payment))
                    } else {
                        PaymentRef::AutoTopUp(RequestId(payment))
                    },
                }
            ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// A journal record decodes to the commands encoded, exactly and entirely.
        #[test]
        fn commands_round_trip(commands in prop::collection::vec(command(), 0..40)) {
            let mut bytes = Vec::new();
            Billing::encode_commands(&commands, &mut bytes);
            let mut back = Vec::new();
            Billing::decode_commands(&bytes, commands.len(), &mut back).unwrap();
            prop_assert_eq!(back, commands);
        }

        /// A snapshot taken at any point decodes to a state that encodes to the same bytes
        /// and answers every later command (and every retry) exactly as the original does.
        #[test]
        fn a_snapshot_answers_as_the_original(
            before in prop::collection::vec((command(), 0..3u8), 0..60),
            after in prop::collection::vec((command(), 0..3u8), 0..40),
        ) {
            let mut now = 10 * DAY;
            let step = |now: &mut u64, gap: u8| *now += match gap {
                0 => 0,
                1 => 7 * MS,
                _ => 11 * DAY, // months turn
            };
            let mut original = Billing::new(BillingConfig::default());
            for (command, gap) in &before {
                step(&mut now, *gap);
                let _ = original.execute(now, command);
            }
            let mut bytes = Vec::new();
            original.encode_state(&mut bytes).unwrap();
            let mut restored = Billing::decode_state(&bytes, 0).unwrap();
            let mut again = Vec::new();
            restored.encode_state(&mut again).unwrap();
            prop_assert!(again == bytes, "a decoded snapshot encodes to other bytes");
            for (command, gap) in before.iter().chain(&after) {
                step(&mut now, *gap);
                prop_assert_eq!(restored.execute(now, command), original.execute(now, command), "{:?}", command);
            }
            for customer in [1, 2].map(CustomerId) {
                prop_assert_eq!(restored.arrears(customer), original.arrears(customer));
                prop_assert_eq!(restored.auto_top_up(customer), original.auto_top_up(customer));
                prop_assert_eq!(restored.balance(customer), original.balance(customer));
            }
        }
    }
}
