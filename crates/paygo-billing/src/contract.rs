//! The contract of [`BillingStore`], as cases that every implementation runs (feature
//! `contract`): the embedded store's tests run them, and so does any other store's (a
//! database store runs them against a real server). A case panics with what broke.
//!
//! Every case takes a store and a `base`: it uses only customers and ids in
//! `base ..= base + 2^32`, so that cases can share one store (a database schema) when
//! each gets its own base ([`run_all`] gives them `(n + 1) << 40`). The store must have
//! the default [`BillingConfig`](crate::BillingConfig): no idempotency window, bonuses off,
//! the default credit rate.
//!
//! ```
//! use paygo_billing::{BillingConfig, EmbeddedStore};
//! use paygo_ledger::ManualClock;
//!
//! let store = EmbeddedStore::in_memory(BillingConfig::default(), ManualClock::new(1_000_000_000))?;
//! paygo_billing::contract::run_all(&store);
//! # Ok::<(), paygo_billing::BillingError>(())
//! ```

// A case reports a broken promise by panicking, as a test does; its generated values are
// small (below 2^32), and `hold` and `held` are different things.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::similar_names
)]

use paygo_credits::{Credits, ExactCredits, Money};

use crate::auto::{AutoTopUp, AutoTopUpRule, TopUpAmount};
use crate::command::{Command, Receipt, Refusal, Reply};
use crate::embedded::block_on;
use crate::ids::{CustomerId, HoldId, RequestId, ReversalId, TopUpId};
use crate::payment::{CardKind, PaymentMethod, PaymentOutcome, PaymentRef};
use crate::store::{BillingStore, EntryKind, HistoryQuery};

const CARD: PaymentMethod = PaymentMethod::Card(CardKind::Credit);

/// A case: the store, and the base of its ids.
type Case<S> = fn(&S, u128);

/// Runs every case, each with its own base.
pub fn run_all<S: BillingStore>(store: &S) {
    let cases: [(&str, Case<S>); 8] = [
        ("a retry answers as the first call", retry_answers_as_the_first_call),
        ("a refusal changes nothing", refusals_change_nothing),
        ("a capture is at most its hold", capture_is_at_most_the_hold),
        ("concurrent holds never overspend", concurrent_holds_never_overspend),
        ("an auto top-up is requested once", auto_top_up_is_requested_once),
        ("balances add up", balances_add_up),
        (
            "history lists purchases and charges",
            history_lists_purchases_and_charges,
        ),
        (
            "a reversal claws back, arrears stop service",
            reversal_claws_back_and_arrears_stop_service,
        ),
    ];
    for (n, (_name, case)) in cases.iter().enumerate() {
        case(store, (n as u128 + 1) << 40);
    }
}

fn usd(cents: i64) -> Money {
    Money::from_minor(i128::from(cents), paygo_credits::Currency::USD).expect("cents are a USD amount")
}

fn submit<S: BillingStore>(store: &S, commands: Vec<Command>) -> Vec<Reply> {
    let n = commands.len();
    let replies = block_on(store.submit(commands)).expect("the store answers");
    assert_eq!(replies.len(), n, "one reply per command");
    replies
}

fn one<S: BillingStore>(store: &S, command: Command) -> Reply {
    submit(store, vec![command])[0]
}

fn balance<S: BillingStore>(store: &S, customer: CustomerId) -> Credits {
    block_on(store.balance(customer))
        .expect("the customer exists")
        .available
}

/// Opens `customer` and buys `cents` of credits for it.
fn funded<S: BillingStore>(store: &S, customer: CustomerId, top_up: TopUpId, cents: i64) {
    let replies = submit(
        store,
        vec![
            Command::OpenAccount { customer },
            Command::TopUp {
                id: top_up,
                customer,
                amount: usd(cents),
                method: CARD,
            },
        ],
    );
    assert_eq!(replies[0], Ok(Receipt::Opened), "open {customer}");
    assert!(
        matches!(replies[1], Ok(Receipt::ToppedUp { .. })),
        "top up {customer}: {:?}",
        replies[1]
    );
}

/// Holds `held` for `customer` under `hold` and captures `charged` of it.
fn charged<S: BillingStore>(store: &S, customer: CustomerId, hold: HoldId, held: i64, charged: i64) {
    one(
        store,
        Command::Hold {
            id: hold,
            customer,
            amount: Credits::new(held),
            timeout_ms: 60_000,
        },
    )
    .expect("held");
    one(
        store,
        Command::Capture {
            hold,
            amount: Credits::new(charged),
        },
    )
    .expect("captured");
}

/// Every command with an id, sent twice: the second answer is the first, and the balance
/// moved once.
pub fn retry_answers_as_the_first_call<S: BillingStore>(store: &S, base: u128) {
    let customer = CustomerId(base + 1);
    assert_eq!(one(store, Command::OpenAccount { customer }), Ok(Receipt::Opened));
    let top_up = Command::TopUp {
        id: TopUpId(base + 2),
        customer,
        amount: usd(1_000),
        method: CARD,
    };
    let hold = Command::Hold {
        id: HoldId(base + 3),
        customer,
        amount: Credits::new(50_000),
        timeout_ms: 600_000,
    };
    let capture = Command::CaptureCost {
        hold: HoldId(base + 3),
        cost: ExactCredits::from(Credits::new(12_345)),
    };
    for command in [top_up, hold, capture] {
        let first = one(store, command);
        assert!(first.is_ok(), "{command:?}: {first:?}");
        // Alone, and inside a batch with other work.
        assert_eq!(one(store, command), first, "retry of {command:?}");
        let again = submit(store, vec![Command::OpenAccount { customer }, command]);
        assert_eq!(again[1], first, "retry of {command:?} in a batch");
    }
    assert_eq!(balance(store, customer), Credits::new(20_000_000 - 12_345));
    // The same id with another body is refused, and changes nothing.
    let other = Command::TopUp {
        id: TopUpId(base + 2),
        customer,
        amount: usd(2_000),
        method: CARD,
    };
    assert_eq!(one(store, other), Err(Refusal::IdReused));
    assert_eq!(balance(store, customer), Credits::new(20_000_000 - 12_345));
}

/// Refused commands leave every balance as it was.
pub fn refusals_change_nothing<S: BillingStore>(store: &S, base: u128) {
    let customer = CustomerId(base + 1);
    funded(store, customer, TopUpId(base + 2), 100);
    let before = balance(store, customer);
    let refused = [
        (
            Command::Hold {
                id: HoldId(base + 3),
                customer,
                amount: Credits::new(before.get() + 1),
                timeout_ms: 60_000,
            },
            Refusal::InsufficientCredits,
        ),
        (
            Command::Hold {
                id: HoldId(base + 4),
                customer: CustomerId(base + 99),
                amount: Credits::new(1),
                timeout_ms: 60_000,
            },
            Refusal::UnknownAccount,
        ),
        (
            Command::TopUp {
                id: TopUpId(base + 5),
                customer,
                amount: usd(100),
                method: PaymentMethod::GiftCard,
            },
            Refusal::PaymentMethodRefused(crate::MethodRefusal::GiftCard),
        ),
        (Command::OpenAccount { customer }, Refusal::AccountExists),
        (
            Command::Capture {
                hold: HoldId(base + 6),
                amount: Credits::new(1),
            },
            Refusal::UnknownHold,
        ),
        (
            Command::ReportPayment {
                request: RequestId(base + 7),
                outcome: PaymentOutcome::Succeeded,
            },
            Refusal::UnknownRequest,
        ),
    ];
    for (command, refusal) in refused {
        assert_eq!(one(store, command), Err(refusal), "{command:?}");
        assert_eq!(balance(store, customer), before, "after {command:?}");
    }
    assert!(
        block_on(store.balance(CustomerId(base + 99))).is_err(),
        "an unknown customer has no balance"
    );
}

/// A capture charges at most what was held; above it, a plain capture is refused and an
/// exact cost is capped at the hold with the rest recorded as uncollected.
pub fn capture_is_at_most_the_hold<S: BillingStore>(store: &S, base: u128) {
    let customer = CustomerId(base + 1);
    funded(store, customer, TopUpId(base + 2), 100);
    let start = balance(store, customer);
    let hold = HoldId(base + 3);
    let held = one(
        store,
        Command::Hold {
            id: hold,
            customer,
            amount: Credits::new(1_000),
            timeout_ms: 60_000,
        },
    );
    assert_eq!(
        held,
        Ok(Receipt::Held {
            amount: Credits::new(1_000)
        })
    );
    assert_eq!(balance(store, customer), Credits::new(start.get() - 1_000), "held");
    let above = one(
        store,
        Command::Capture {
            hold,
            amount: Credits::new(1_001),
        },
    );
    assert_eq!(
        above,
        Err(Refusal::CaptureExceedsHold {
            held: Credits::new(1_000),
            requested: Credits::new(1_001),
        })
    );
    // An exact cost above the hold: the hold is charged, the rest is recorded.
    let cost = one(
        store,
        Command::CaptureCost {
            hold,
            cost: ExactCredits::from(Credits::new(1_500)),
        },
    );
    match cost {
        Ok(Receipt::Captured { charged, shortfall, .. }) => {
            assert_eq!(charged, Credits::new(1_000));
            assert_eq!(shortfall, Credits::new(500));
        }
        other => panic!("capture above the hold: {other:?}"),
    }
    assert_eq!(balance(store, customer), Credits::new(start.get() - 1_000));
    let detail = block_on(store.balance(customer)).expect("the customer exists");
    assert_eq!(detail.uncollected, Credits::new(500));
    // A released hold costs nothing.
    let free = HoldId(base + 4);
    one(
        store,
        Command::Hold {
            id: free,
            customer,
            amount: Credits::new(700),
            timeout_ms: 60_000,
        },
    )
    .expect("held");
    assert_eq!(one(store, Command::Release { hold: free }), Ok(Receipt::Released));
    assert_eq!(balance(store, customer), Credits::new(start.get() - 1_000));
}

/// Threads race to hold more than the balance: exactly as many holds succeed as it
/// covers, never one more.
pub fn concurrent_holds_never_overspend<S: BillingStore>(store: &S, base: u128) {
    let customer = CustomerId(base + 1);
    funded(store, customer, TopUpId(base + 2), 1); // $0.01: 20,000 credits
    let (threads, per_thread) = (4u128, 10u128);
    let held: u32 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut ok = 0u32;
                    for i in 0..per_thread {
                        let reply = one(
                            store,
                            Command::Hold {
                                id: HoldId(base + 1_000 + t * per_thread + i),
                                customer,
                                amount: Credits::new(1_000),
                                timeout_ms: 600_000,
                            },
                        );
                        match reply {
                            Ok(_) => ok += 1,
                            Err(Refusal::InsufficientCredits) => {}
                            Err(other) => panic!("hold: {other:?}"),
                        }
                    }
                    ok
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("a worker")).sum()
    });
    assert_eq!(held, 20, "20,000 credits cover 20 holds of 1,000 out of 40 tried");
    assert_eq!(balance(store, customer), Credits::ZERO);
}

/// Captures that take a balance below its auto top-up threshold, from several threads at
/// once: exactly one request is emitted while it is outstanding; its payment credits once.
pub fn auto_top_up_is_requested_once<S: BillingStore>(store: &S, base: u128) {
    let customer = CustomerId(base + 1);
    funded(store, customer, TopUpId(base + 2), 100); // 2,000,000 credits
    let rule = AutoTopUpRule {
        enabled: true,
        threshold: Credits::new(1_900_000),
        amount: TopUpAmount::Fixed(usd(500)),
        method: CARD,
        requests_per_window_max: 10,
        window_ms: 3_600_000,
        backoff_ms: 1_000,
        backoff_max_ms: 60_000,
        monthly_cap: None,
        disable_after_declines: None,
        buyer_tax_id: None,
        purchase_order: None,
    };
    assert_eq!(
        one(
            store,
            Command::SetAutoTopUp {
                customer,
                rule: Some(rule)
            }
        ),
        Ok(Receipt::RuleSet)
    );
    let decisions: Vec<AutoTopUp> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4u128)
            .map(|t| {
                scope.spawn(move || {
                    let mut seen = Vec::new();
                    for i in 0..5u128 {
                        let hold = HoldId(base + 100 + t * 5 + i);
                        let held = one(
                            store,
                            Command::Hold {
                                id: hold,
                                customer,
                                amount: Credits::new(10_000),
                                timeout_ms: 600_000,
                            },
                        );
                        assert!(held.is_ok(), "{held:?}");
                        match one(
                            store,
                            Command::Capture {
                                hold,
                                amount: Credits::new(10_000),
                            },
                        ) {
                            Ok(Receipt::Captured { auto_top_up, .. }) => seen.push(auto_top_up),
                            other => panic!("capture: {other:?}"),
                        }
                    }
                    seen
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("a worker")).collect()
    });
    let requested: Vec<_> = decisions
        .iter()
        .filter_map(|d| match d {
            AutoTopUp::Requested(r) => Some(*r),
            _ => None,
        })
        .collect();
    assert_eq!(requested.len(), 1, "one request while it is outstanding: {decisions:?}");
    let request = requested[0];
    assert_eq!(request.customer, customer);
    assert_eq!(request.amount, usd(500));
    let outstanding = block_on(store.outstanding_requests()).expect("the store answers");
    assert_eq!(outstanding.iter().filter(|r| r.customer == customer).count(), 1);
    let before = balance(store, customer);
    let paid = Command::ReportPayment {
        request: request.id,
        outcome: PaymentOutcome::Succeeded,
    };
    let first = one(store, paid);
    assert_eq!(first.map(|r| matches!(r, Receipt::PaymentRecorded { .. })), Ok(true));
    assert_eq!(one(store, paid), first, "a repeated report answers the same");
    assert_eq!(balance(store, customer), Credits::new(before.get() + 10_000_000));
    let outstanding = block_on(store.outstanding_requests()).expect("the store answers");
    assert!(outstanding.iter().all(|r| r.customer != customer));
}

/// A seeded mix of top-ups, holds, captures and releases over three customers, in batches
/// and retried: every balance is what was bought less what was charged, as the receipts
/// said.
pub fn balances_add_up<S: BillingStore>(store: &S, base: u128) {
    let customers: Vec<CustomerId> = (1..=3).map(|c| CustomerId(base + c)).collect();
    let mut bought = [0i64; 3];
    let mut charged = [0i64; 3];
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (base as u64);
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    for (c, customer) in customers.iter().enumerate() {
        funded(store, *customer, TopUpId(base + 10 + c as u128), 100);
        bought[c] += 2_000_000;
    }
    let mut id = base + 1_000;
    for _ in 0..60 {
        let c = next(3) as usize;
        let customer = customers[c];
        id += 1;
        if next(4) == 0 {
            let cents = 1 + next(300) as i64;
            let top_up = Command::TopUp {
                id: TopUpId(id),
                customer,
                amount: usd(cents),
                method: CARD,
            };
            let replies = submit(store, vec![top_up, top_up]);
            assert_eq!(replies[0], replies[1]);
            if let Ok(Receipt::ToppedUp { credits }) = replies[0] {
                bought[c] += credits.get();
            }
            continue;
        }
        let amount = Credits::new(1 + next(200_000) as i64);
        let hold = Command::Hold {
            id: HoldId(id),
            customer,
            amount,
            timeout_ms: 600_000,
        };
        if one(store, hold).is_err() {
            continue;
        }
        let finish = if next(5) == 0 {
            Command::Release { hold: HoldId(id) }
        } else {
            Command::Capture {
                hold: HoldId(id),
                amount: Credits::new(next(amount.get() as u64 + 1) as i64),
            }
        };
        let replies = submit(store, vec![finish, finish]);
        assert_eq!(replies[0], replies[1], "a retried {finish:?}");
        if let Ok(Receipt::Captured { charged: x, .. }) = replies[0] {
            charged[c] += x.get();
        }
    }
    for (c, customer) in customers.iter().enumerate() {
        assert_eq!(
            balance(store, *customer),
            Credits::new(bought[c] - charged[c]),
            "customer {customer}: bought {}, charged {}",
            bought[c],
            charged[c]
        );
    }
}

/// The history lists each purchase and charge once, newest first, with the right signs,
/// and pages through them.
pub fn history_lists_purchases_and_charges<S: BillingStore>(store: &S, base: u128) {
    let customer = CustomerId(base + 1);
    funded(store, customer, TopUpId(base + 2), 100);
    // Another customer's purchase and charge, in between: not in this customer's history.
    let other = CustomerId(base + 50);
    funded(store, other, TopUpId(base + 51), 100);
    charged(store, other, HoldId(base + 52), 5_000, 4_000);
    for i in 0..3u128 {
        charged(store, customer, HoldId(base + 10 + i), 5_000, 1_000 + i as i64);
    }
    let page = block_on(store.history(customer, HistoryQuery::newest(10))).expect("history");
    let kinds: Vec<(EntryKind, i64)> = page.entries.iter().map(|e| (e.kind, e.credits.get())).collect();
    assert_eq!(
        kinds,
        vec![
            (
                EntryKind::Charge {
                    hold: HoldId(base + 12)
                },
                -1_002
            ),
            (
                EntryKind::Charge {
                    hold: HoldId(base + 11)
                },
                -1_001
            ),
            (
                EntryKind::Charge {
                    hold: HoldId(base + 10)
                },
                -1_000
            ),
            (EntryKind::Purchase { payment: base + 2 }, 2_000_000),
        ]
    );
    assert_eq!(page.next, None);
    assert!(page.entries.windows(2).all(|w| w[0].at_ns > w[1].at_ns), "newest first");
    // Two at a time: the same entries, in the same order.
    let first = block_on(store.history(customer, HistoryQuery::newest(2))).expect("history");
    let rest = block_on(store.history(
        customer,
        HistoryQuery {
            before_ns: first.next,
            limit: 2,
        },
    ))
    .expect("history");
    let paged: Vec<_> = first.entries.iter().chain(&rest.entries).copied().collect();
    assert_eq!(paged, page.entries);
    assert!(block_on(store.history(customer, HistoryQuery::newest(0))).is_err());
}

/// A payment reversed after most of its credits were spent: what is left is taken back,
/// the rest is arrears (the balance goes negative), holds are refused until a top-up
/// settles them, and a retried reversal takes nothing more.
pub fn reversal_claws_back_and_arrears_stop_service<S: BillingStore>(store: &S, base: u128) {
    let customer = CustomerId(base + 1);
    funded(store, customer, TopUpId(base + 2), 100); // $1: 2,000,000 credits
    charged(store, customer, HoldId(base + 3), 1_500_000, 1_500_000);
    let reversal = Command::ReversePayment {
        id: ReversalId(base + 4),
        customer,
        amount: usd(100),
        payment: PaymentRef::TopUp(TopUpId(base + 2)),
    };
    let reversed = one(store, reversal);
    assert_eq!(
        reversed,
        Ok(Receipt::Reversed {
            credits: Credits::new(2_000_000),
            recovered: Credits::new(500_000),
            arrears: Credits::new(1_500_000),
        })
    );
    assert_eq!(one(store, reversal), reversed, "a retried reversal answers the same");
    let balance_now = block_on(store.balance(customer)).expect("the customer exists");
    assert_eq!(balance_now.available, Credits::new(-1_500_000));
    assert_eq!(balance_now.arrears, Credits::new(1_500_000));
    let refused = one(
        store,
        Command::Hold {
            id: HoldId(base + 5),
            customer,
            amount: Credits::new(1),
            timeout_ms: 60_000,
        },
    );
    assert_eq!(
        refused,
        Err(Refusal::AccountInArrears {
            arrears: Credits::new(1_500_000)
        })
    );
    // A $1 top-up pays the arrears first.
    let topped = one(
        store,
        Command::TopUp {
            id: TopUpId(base + 6),
            customer,
            amount: usd(100),
            method: CARD,
        },
    );
    assert!(topped.is_ok(), "{topped:?}");
    let settled = block_on(store.balance(customer)).expect("the customer exists");
    assert_eq!(
        (settled.available, settled.arrears),
        (Credits::new(500_000), Credits::ZERO)
    );
    let held = one(
        store,
        Command::Hold {
            id: HoldId(base + 7),
            customer,
            amount: Credits::new(1),
            timeout_ms: 60_000,
        },
    );
    assert!(held.is_ok(), "{held:?}");
}
