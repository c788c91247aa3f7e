//! The billing machine on the ledger's durable store: a reopened store rebuilds the same
//! state and answers, keeps the settings it was created with and its outstanding auto
//! top-up requests, and is never opened as a store of another kind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
#![allow(clippy::cast_possible_wrap, clippy::cast_sign_loss, clippy::too_many_lines)]

use paygo_billing::{
    AutoTopUpRule, Billing, BillingConfig, CardKind, Command, PaymentMethod, PaymentOutcome, TopUpAmount,
};
use paygo_billing::{CustomerId, GrantId, HoldId, RequestId, TopUpId};
use paygo_credits::{Credits, Money};
use paygo_ledger::durable::{self, OpenOptions};
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
    for customer in [1, 2] {
        assert_eq!(
            shared.read(|b| b.balance(CustomerId(customer))).unwrap(),
            reference.balance(CustomerId(customer))
        );
    }
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
    drop(durable::open_ledger(&kind.0, ManualClock::new(1), &OpenOptions::default()).unwrap());
    let as_billing = paygo_billing::open_billing(
        &kind.0,
        BillingConfig::default(),
        ManualClock::new(1),
        &OpenOptions::default(),
    );
    assert!(matches!(as_billing, Err(LedgerError::Foreign { .. })), "{as_billing:?}");
}
