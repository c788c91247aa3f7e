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
use crate::store::{BillingError, BillingStore, EntryKind, HistoryQuery};

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
    // What a portal shows: the rule as set, the request waiting, nothing switched off.
    let status = block_on(store.auto_top_up(customer)).expect("the store answers");
    assert_eq!(status.rule, Some(rule));
    assert_eq!(status.outstanding, Some(request.id));
    assert_eq!((status.switched_off, status.declines_in_a_row), (None, 0));
    assert_eq!(status.month_requested, usd(500));
    let stranger = CustomerId(base + 99);
    assert_eq!(
        block_on(store.auto_top_up(stranger)),
        Err(BillingError::UnknownCustomer { customer: stranger })
    );
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

/// The settings of a [`differential`] run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DifferentialOptions {
    /// The seed of the command stream.
    pub seed: u64,
    /// How many submissions (of one to four commands each).
    pub steps: usize,
    /// The base of the customers and ids used (as the cases' `base`).
    pub base: u128,
}

/// A store's names for the ids it minted (auto top-up requests, bonus lots), numbered in
/// the order they were first seen: two stores that agree see them in the same order.
#[derive(Debug, Default)]
struct Names {
    requests: Vec<u128>,
    lots: Vec<u128>,
}

impl Names {
    fn ordinal(list: &mut Vec<u128>, id: u128) -> u128 {
        if let Some(p) = list.iter().position(|&x| x == id) {
            p as u128 + 1
        } else {
            list.push(id);
            list.len() as u128
        }
    }

    fn request(&mut self, id: RequestId) -> RequestId {
        RequestId(Names::ordinal(&mut self.requests, id.0))
    }

    fn decision(&mut self, d: AutoTopUp) -> AutoTopUp {
        match d {
            AutoTopUp::Requested(mut q) => {
                q.id = self.request(q.id);
                AutoTopUp::Requested(q)
            }
            AutoTopUp::Outstanding { request } => AutoTopUp::Outstanding {
                request: self.request(request),
            },
            other => other,
        }
    }

    fn reply(&mut self, reply: Reply) -> Reply {
        Ok(match reply? {
            Receipt::Captured {
                charged,
                released,
                shortfall,
                auto_top_up,
            } => Receipt::Captured {
                charged,
                released,
                shortfall,
                auto_top_up: self.decision(auto_top_up),
            },
            Receipt::BonusGranted { lot } => Receipt::BonusGranted {
                lot: paygo_ledger::AccountId(Names::ordinal(&mut self.lots, lot.0)),
            },
            other => other,
        })
    }

    /// The store's own id of request number `ordinal`, or `unknown` (an id of the run's
    /// own range, which no store mints).
    fn real_request(&self, ordinal: u128, unknown: u128) -> RequestId {
        let i = ordinal as usize;
        RequestId(if i >= 1 && i <= self.requests.len() {
            self.requests[i - 1]
        } else {
            unknown
        })
    }
}

/// Sends the same seeded stream of commands to two stores and compares every reply, then
/// every balance, the outstanding auto top-up requests and the histories: a store built
/// differently (a database) must answer exactly as the reference (the embedded store).
///
/// The stream covers every command: accounts opened twice, top-ups by every method and
/// some refused amounts, holds with short timeouts that expire, captures within and above
/// their holds, exact costs, releases, extensions, bonus grants with expiries, auto
/// top-up rules, payment outcomes, reversals, retries with the same and with another body,
/// and ids reused across customers. `advance(ns)` moves both stores' clocks on by `ns`
/// (from seconds to days, so holds, lots and months run out). Both stores need the same
/// [`BillingConfig`](crate::BillingConfig), with bonuses enabled to cover grants.
///
/// Ids the stores mint (lot accounts, request ids) are compared by the order they were
/// first seen, and history entries by kind and amount, in order (their transfer ids and
/// times are a store's own numbering and stamps).
#[allow(clippy::too_many_lines)] // one generator, one comparison
pub fn differential<A: BillingStore, B: BillingStore>(
    reference: &A,
    other: &B,
    advance: &dyn Fn(u64),
    options: DifferentialOptions,
) {
    let base = options.base;
    let mut state = options.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut rnd = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n.max(1)
    };
    let customers: Vec<CustomerId> = (1..=4).map(|c| CustomerId(base + c)).collect();
    let (mut names_a, mut names_b) = (Names::default(), Names::default());
    let mut holds: Vec<HoldId> = Vec::new();
    let mut sent: Vec<Command> = Vec::new();
    let mut next_id = base + 1_000;
    let methods = [
        CARD,
        PaymentMethod::Card(CardKind::Debit),
        PaymentMethod::PayPal,
        PaymentMethod::Crypto,
        PaymentMethod::Card(CardKind::Prepaid),
        PaymentMethod::GiftCard,
    ];
    for step in 0..options.steps {
        // Never whole milliseconds: a store stamps its events a few nanoseconds apart from
        // another (each customer's shard counts its own), so a hold's expiry may differ by
        // those nanoseconds; the stream never lands on them.
        let jitter = 1 + rnd(999_000);
        match rnd(20) {
            0 => advance(60_000_000_000 + rnd(300) * 1_000_000_000 + jitter),
            1 if rnd(10) == 0 => advance(rnd(40) * 86_400_000_000_000 + jitter),
            _ => advance(rnd(3_000) * 1_000_000 + jitter),
        }
        let n = 1 + rnd(4) as usize;
        // Commands as the stream means them; payment reports name a request by its
        // ordinal, translated to each store's own id below.
        let mut batch: Vec<(Command, Option<u128>)> = Vec::with_capacity(n);
        for _ in 0..n {
            next_id += 1;
            let id = next_id;
            let customer = customers[rnd(customers.len() as u64) as usize];
            let method = methods[(rnd(12) as usize).min(methods.len() - 1)];
            let command = match rnd(100) {
                0..=5 if !sent.is_empty() => {
                    let mut c = sent[rnd(sent.len() as u64) as usize];
                    if rnd(3) == 0 {
                        match &mut c {
                            Command::TopUp { customer, .. } | Command::Hold { customer, .. } => {
                                *customer = customers[rnd(customers.len() as u64) as usize];
                            }
                            Command::Capture { amount, .. } => *amount = Credits::new(amount.get() + 1),
                            _ => {}
                        }
                    }
                    (c, None)
                }
                6..=8 => (Command::OpenAccount { customer }, None),
                9..=20 => {
                    let cents = match rnd(10) {
                        0 => 0,
                        1 => -100,
                        _ => 1 + rnd(2_000) as i64,
                    };
                    let amount = if rnd(30) == 0 {
                        Money::new("1.005".parse().expect("a decimal"), paygo_credits::Currency::USD)
                    } else {
                        usd(cents)
                    };
                    (
                        Command::TopUp {
                            id: TopUpId(id),
                            customer,
                            amount,
                            method,
                        },
                        None,
                    )
                }
                21..=45 => {
                    holds.push(HoldId(id));
                    let timeout_ms = match rnd(10) {
                        0 => 0,
                        1..=3 => 1_000 + rnd(5_000),
                        _ => 600_000,
                    };
                    (
                        Command::Hold {
                            id: HoldId(id),
                            customer,
                            amount: Credits::new(rnd(3_000_000) as i64),
                            timeout_ms,
                        },
                        None,
                    )
                }
                46..=75 if !holds.is_empty() => {
                    let hold = holds[holds.len() - 1 - (rnd(holds.len().min(6) as u64) as usize)];
                    let c = match rnd(10) {
                        0..=4 => Command::Capture {
                            hold,
                            amount: Credits::new(rnd(2_000_000) as i64),
                        },
                        5..=6 => Command::CaptureCost {
                            hold,
                            cost: format!("{}.{}", rnd(2_500_000), rnd(1_000))
                                .parse()
                                .expect("an exact amount"),
                        },
                        7..=8 => Command::Release { hold },
                        _ => Command::ExtendHold {
                            hold,
                            timeout_ms: 1 + rnd(600_000),
                        },
                    };
                    (c, None)
                }
                76..=81 => (
                    Command::GrantBonus {
                        id: crate::GrantId(id),
                        customer,
                        amount: Credits::new(rnd(500_000) as i64),
                        expires_at_ns: if rnd(5) == 0 { 0 } else { u64::MAX / 2 },
                    },
                    None,
                ),
                82..=86 => {
                    let rule = (rnd(6) != 0).then(|| AutoTopUpRule {
                        enabled: rnd(8) != 0,
                        threshold: Credits::new(rnd(30_000_000) as i64),
                        amount: if rnd(2) == 0 {
                            TopUpAmount::Fixed(usd(100 + rnd(2_000) as i64))
                        } else {
                            TopUpAmount::TargetBalance(Credits::new(30_000_000 + rnd(10_000_000) as i64))
                        },
                        method,
                        requests_per_window_max: 1 + rnd(3) as u32,
                        window_ms: 60_000 + rnd(3_600_000),
                        backoff_ms: 1_000 + rnd(60_000),
                        backoff_max_ms: 600_000,
                        monthly_cap: (rnd(3) == 0).then(|| usd(1_000 + rnd(10_000) as i64)),
                        disable_after_declines: (rnd(2) == 0).then(|| 1 + rnd(3) as u32),
                        buyer_tax_id: None,
                        purchase_order: None,
                    });
                    (Command::SetAutoTopUp { customer, rule }, None)
                }
                87..=93 => {
                    let ordinal = 1 + u128::from(rnd(names_a.requests.len() as u64 + 1));
                    let outcome = if rnd(3) == 0 {
                        PaymentOutcome::Declined
                    } else {
                        PaymentOutcome::Succeeded
                    };
                    (
                        Command::ReportPayment {
                            request: RequestId(ordinal),
                            outcome,
                        },
                        Some(ordinal),
                    )
                }
                _ => (
                    Command::ReversePayment {
                        id: ReversalId(id),
                        customer,
                        amount: usd(1 + rnd(3_000) as i64),
                        payment: PaymentRef::TopUp(TopUpId(
                            base + 1_000 + u128::from(rnd((id - base - 1_000 + 1) as u64)),
                        )),
                    },
                    None,
                ),
            };
            batch.push(command);
        }
        let translate = |names: &Names| -> Vec<Command> {
            batch
                .iter()
                .map(|(c, ordinal)| match (c, ordinal) {
                    (Command::ReportPayment { outcome, .. }, Some(k)) => Command::ReportPayment {
                        request: names.real_request(*k, base + 999),
                        outcome: *outcome,
                    },
                    _ => *c,
                })
                .collect()
        };
        let (to_a, to_b) = (translate(&names_a), translate(&names_b));
        let got_a = submit(reference, to_a.clone());
        let got_b = submit(other, to_b);
        for (i, (ra, rb)) in got_a.into_iter().zip(got_b).enumerate() {
            let (ra, rb) = (names_a.reply(ra), names_b.reply(rb));
            assert_eq!(
                ra, rb,
                "seed {} step {step}: the stores answer {:?} differently (batch {:?})",
                options.seed, to_a[i], to_a
            );
        }
        sent.extend(batch.iter().filter(|(_, o)| o.is_none()).map(|(c, _)| *c));
        if step % 25 == 24 || step + 1 == options.steps {
            // A read shows the state as of the customer's last command (the embedded store
            // sweeps every customer's expiries at any command, a store of shards only the
            // customer's own): a refused hold (amount 0) brings each customer up to now in
            // both before they are compared.
            let touch: Vec<Command> = customers
                .iter()
                .map(|&customer| {
                    next_id += 1;
                    Command::Hold {
                        id: HoldId(next_id),
                        customer,
                        amount: Credits::ZERO,
                        timeout_ms: 1,
                    }
                })
                .collect();
            assert_eq!(submit(reference, touch.clone()), submit(other, touch));
            compare_reads(
                reference,
                other,
                &customers,
                &mut names_a,
                &mut names_b,
                options.seed,
                step,
            );
        }
    }
}

/// Balances, outstanding requests and histories of two stores, compared.
fn compare_reads<A: BillingStore, B: BillingStore>(
    reference: &A,
    other: &B,
    customers: &[CustomerId],
    names_a: &mut Names,
    names_b: &mut Names,
    seed: u64,
    step: usize,
) {
    for &customer in customers {
        let (a, b) = (block_on(reference.balance(customer)), block_on(other.balance(customer)));
        assert_eq!(
            a.is_ok(),
            b.is_ok(),
            "seed {seed} step {step}: balance of {customer}: {a:?} against {b:?}"
        );
        assert_eq!(a.ok(), b.ok(), "seed {seed} step {step}: balance of {customer}");
        let (ha, hb) = (
            block_on(reference.history(customer, HistoryQuery::newest(crate::HISTORY_PAGE_MAX))),
            block_on(other.history(customer, HistoryQuery::newest(crate::HISTORY_PAGE_MAX))),
        );
        let plain = |page: Result<crate::HistoryPage, _>, names: &mut Names| {
            page.ok().map(|p| {
                p.entries
                    .iter()
                    .map(|e| {
                        let kind = match e.kind {
                            EntryKind::BonusGrant { lot } => EntryKind::BonusGrant {
                                lot: paygo_ledger::AccountId(Names::ordinal(&mut names.lots, lot.0)),
                            },
                            EntryKind::BonusExpiry { lot } => EntryKind::BonusExpiry {
                                lot: paygo_ledger::AccountId(Names::ordinal(&mut names.lots, lot.0)),
                            },
                            // An auto top-up's purchase names its request.
                            EntryKind::Purchase { payment } if names.requests.contains(&payment) => {
                                EntryKind::Purchase {
                                    payment: u128::MAX - names.request(RequestId(payment)).0,
                                }
                            }
                            EntryKind::Reversal {
                                payment: PaymentRef::AutoTopUp(r),
                            } => EntryKind::Reversal {
                                payment: PaymentRef::AutoTopUp(names.request(r)),
                            },
                            other => other,
                        };
                        (kind, e.credits)
                    })
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            plain(ha, names_a),
            plain(hb, names_b),
            "seed {seed} step {step}: history of {customer}"
        );
    }
    let outstanding = |requests: Vec<crate::TopUpRequest>, names: &mut Names| {
        let mut mine: Vec<_> = requests
            .into_iter()
            .filter(|q| customers.contains(&q.customer))
            .map(|mut q| {
                q.id = names.request(q.id);
                q
            })
            .collect();
        mine.sort_unstable_by_key(|q| q.id);
        mine
    };
    let a = outstanding(
        block_on(reference.outstanding_requests()).expect("the store answers"),
        names_a,
    );
    let b = outstanding(
        block_on(other.outstanding_requests()).expect("the store answers"),
        names_b,
    );
    assert_eq!(a, b, "seed {seed} step {step}: outstanding requests");
}
