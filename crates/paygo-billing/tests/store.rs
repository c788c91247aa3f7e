//! The `BillingStore` contract on the embedded store, in memory and durable (each case on
//! its own store, and all of them on one), plus what only the embedded store promises:
//! group commit through the writer thread, answers after a reopen, and a closed store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use paygo_billing::contract;
use paygo_billing::{
    BillingConfig, BillingError, BillingStore, CardKind, Command, CustomerId, EmbeddedStore, HoldId, PaymentMethod,
    Receipt, TopUpId, block_on,
};
use paygo_credits::{Credits, Money};
use paygo_ledger::ManualClock;
use paygo_ledger::durable::OpenOptions;
use paygo_testkit::store::TempDir;

const T0: u64 = 1_700_000_000_000_000_000;

fn memory() -> EmbeddedStore<ManualClock> {
    EmbeddedStore::in_memory(BillingConfig::default(), ManualClock::new(T0)).unwrap()
}

fn durable(dir: &TempDir) -> EmbeddedStore<ManualClock> {
    EmbeddedStore::open(
        &dir.0,
        BillingConfig::default(),
        ManualClock::new(T0),
        &OpenOptions::default(),
    )
    .unwrap()
}

macro_rules! cases {
    ($($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                contract::$case(&memory(), 0);
                let dir = TempDir::new(stringify!($case));
                contract::$case(&durable(&dir), 0);
            }
        )*
    };
}

cases!(
    retry_answers_as_the_first_call,
    refusals_change_nothing,
    capture_is_at_most_the_hold,
    concurrent_holds_never_overspend,
    auto_top_up_is_requested_once,
    balances_add_up,
    history_lists_purchases_and_charges,
    reversal_claws_back_and_arrears_stop_service
);

#[test]
fn every_case_on_one_shared_store() {
    contract::run_all(&memory());
    let dir = TempDir::new("run-all");
    contract::run_all(&durable(&dir));
}

#[test]
fn a_reopened_store_answers_retries_as_before() {
    let dir = TempDir::new("reopen");
    let customer = CustomerId(7);
    let top_up = Command::TopUp {
        id: TopUpId(1),
        customer,
        amount: Money::usd("2.50".parse().unwrap()),
        method: PaymentMethod::Card(CardKind::Debit),
    };
    let first = {
        let store = durable(&dir);
        block_on(store.submit(vec![Command::OpenAccount { customer }, top_up])).unwrap()
    };
    let store = durable(&dir);
    assert_eq!(block_on(store.submit(vec![top_up])).unwrap()[0], first[1]);
    assert_eq!(
        block_on(store.balance(customer)).unwrap().available,
        Credits::new(5_000_000)
    );
}

#[test]
fn concurrent_submissions_share_turns_and_each_gets_its_own_replies() {
    let store = memory();
    let customers: Vec<CustomerId> = (1..=64).map(CustomerId).collect();
    std::thread::scope(|scope| {
        for &customer in &customers {
            let store = &store;
            scope.spawn(move || {
                let replies = block_on(store.submit(vec![
                    Command::OpenAccount { customer },
                    Command::TopUp {
                        id: TopUpId(customer.0),
                        customer,
                        amount: Money::usd("0.01".parse().unwrap()),
                        method: PaymentMethod::PayPal,
                    },
                    Command::Hold {
                        id: HoldId(customer.0),
                        customer,
                        amount: Credits::new(customer.0 as i64),
                        timeout_ms: 1_000,
                    },
                ]))
                .unwrap();
                assert_eq!(replies[0], Ok(Receipt::Opened));
                assert_eq!(
                    replies[1],
                    Ok(Receipt::ToppedUp {
                        credits: Credits::new(20_000)
                    })
                );
                // Each caller's replies are its own: the hold it asked for, not another's.
                assert_eq!(
                    replies[2],
                    Ok(Receipt::Held {
                        amount: Credits::new(customer.0 as i64)
                    })
                );
            });
        }
    });
    for customer in customers {
        let expected = 20_000 - customer.0 as i64;
        assert_eq!(
            block_on(store.balance(customer)).unwrap().available,
            Credits::new(expected)
        );
    }
}

#[test]
fn oversized_and_empty_submissions_are_answered_without_a_turn() {
    let store = memory();
    assert_eq!(block_on(store.submit(Vec::new())).unwrap(), Vec::new());
    let too_many = vec![
        Command::OpenAccount {
            customer: CustomerId(1)
        };
        8_191
    ];
    assert!(matches!(
        block_on(store.submit(too_many)),
        Err(BillingError::BatchTooLarge {
            commands: 8_191,
            max: 8_190
        })
    ));
    assert!(matches!(
        block_on(store.balance(CustomerId(1))),
        Err(BillingError::UnknownCustomer { .. })
    ));
}

#[test]
fn a_store_whose_directory_is_locked_is_unavailable() {
    let dir = TempDir::new("locked");
    let _first = durable(&dir);
    let second = EmbeddedStore::open(
        &dir.0,
        BillingConfig::default(),
        ManualClock::new(T0),
        &OpenOptions::default(),
    );
    assert!(matches!(second, Err(BillingError::Unavailable { .. })), "{second:?}");
}
