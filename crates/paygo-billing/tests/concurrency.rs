//! Many threads through one shared billing handle: every charge a thread was told of is
//! charged once, and the final balances equal what each thread was told.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
#![allow(clippy::cast_possible_wrap, clippy::similar_names)] // generated values are small; hold and held

use std::sync::Arc;

use paygo_billing::{Billing, BillingConfig, CardKind, Command, PaymentMethod, Receipt, Refusal};
use paygo_billing::{CustomerId, HoldId, TopUpId};
use paygo_credits::{Credits, Currency, Money};
use paygo_ledger::{SharedLedger, WallClock};

const THREADS: u128 = 4;

#[test]
fn hammering_billing_charges_exactly_what_threads_were_told() {
    let shared = Arc::new(SharedLedger::new(Billing::new(BillingConfig::default()), WallClock));
    let usd = |cents| Money::from_minor(cents, Currency::USD).unwrap();
    for customer in 1..=THREADS {
        let replies = shared
            .submit(vec![
                Command::OpenAccount {
                    customer: CustomerId(customer),
                },
                Command::TopUp {
                    id: TopUpId(customer),
                    customer: CustomerId(customer),
                    amount: usd(100),
                    method: PaymentMethod::Card(CardKind::Debit),
                },
            ])
            .unwrap();
        assert!(replies.iter().all(Result::is_ok));
    }
    let workers: Vec<_> = (1..=THREADS)
        .map(|customer| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                let mut charged = 0i64;
                for i in 0..600u128 {
                    let hold = customer * 1_000_000 + i;
                    let held = shared
                        .submit(vec![Command::Hold {
                            id: HoldId(hold),
                            customer: CustomerId(customer),
                            amount: Credits::new(5_000),
                            timeout_ms: 60_000,
                        }])
                        .unwrap();
                    if held[0] == Err(Refusal::InsufficientCredits) {
                        continue;
                    }
                    let cost = Credits::new(1 + (i as i64 * 37) % 5_000);
                    let capture = Command::Capture {
                        hold: HoldId(hold),
                        amount: cost,
                    };
                    // The capture is sent twice, as a client retrying after a timeout would.
                    let first = shared.submit(vec![capture]).unwrap();
                    let again = shared.submit(vec![capture]).unwrap();
                    assert_eq!(first, again);
                    if let Ok(Receipt::Captured { charged: c, .. }) = first[0] {
                        charged += c.get();
                    }
                }
                (customer, charged)
            })
        })
        .collect();
    let results: Vec<(u128, i64)> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let billing = Arc::try_unwrap(shared).unwrap().into_inner().unwrap();
    for (customer, charged) in results {
        assert_eq!(
            billing.balance(CustomerId(customer)).unwrap().get(),
            2_000_000 - charged,
            "customer {customer}"
        );
    }
    billing.ledger().check_invariants().unwrap();
}
