//! The billing layer on per-customer shards ([`Shard`], [`run_batch`]) over in-memory
//! rows that hold only bytes, as a database does: the `BillingStore` contract suite, and a
//! differential run against the embedded store (same commands, every reply, balance,
//! history and outstanding request compared). The PostgreSQL store does the same steps
//! around SQL; this is the oracle for the steps themselves.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;

use paygo_billing::contract::{self, DifferentialOptions};
use paygo_billing::{
    Balance, BillingConfig, BillingError, BillingStore, ClosedHold, Command, CustomerId, EmbeddedStore, HistoryEntry,
    HistoryPage, HistoryQuery, HoldId, IdSpace, RequestId, Route, Rows, Shard, ShardNo, StoredReply, TopUpRequest,
    decode_request, encode_request, run_batch,
};
use paygo_credits::Credits;
use paygo_ledger::{Clock, ManualClock};

const T0: u64 = 1_700_000_000_000_000_123;

/// A stored reply row: the customer it routes to, the reply's bytes, a hold's closing.
struct IdRow {
    customer: Option<CustomerId>,
    reply: Vec<u8>,
    closing: Option<(CustomerId, Credits, Vec<u8>)>,
}

#[derive(Default)]
struct Tables {
    customers: BTreeMap<CustomerId, (Vec<u8>, Balance)>,
    next_shard: u64,
    ids: HashMap<(IdSpace, u128), IdRow>,
    entries: BTreeMap<CustomerId, Vec<HistoryEntry>>,
    /// Request, its customer, its bytes, outstanding.
    requests: BTreeMap<RequestId, (CustomerId, Vec<u8>, bool)>,
}

/// Per-customer shards over rows of bytes, one batch at a time.
struct MemoryShards {
    config: BillingConfig,
    clock: ManualClock,
    tables: Mutex<Tables>,
}

impl MemoryShards {
    fn new(config: BillingConfig, clock: ManualClock) -> MemoryShards {
        MemoryShards {
            config,
            clock,
            tables: Mutex::new(Tables::default()),
        }
    }

    fn apply(&self, commands: &[Command]) -> Result<Vec<paygo_billing::Reply>, BillingError> {
        let mut t = self.tables.lock().unwrap();
        let t = &mut *t;
        let ids = Route::ids(commands);
        let mut rows = Rows::new();
        for c in commands {
            match Route::of(c) {
                Route::Hold(h) => {
                    if let Some(row) = t.ids.get(&(IdSpace::Hold, h.0))
                        && let Some(customer) = row.customer
                    {
                        rows.hold_customers.insert(h, customer);
                    }
                }
                Route::Request(r) => {
                    if let Some((customer, _, _)) = t.requests.get(&r) {
                        rows.request_customers.insert(r, *customer);
                    }
                }
                Route::Customer(_) => {}
                _ => unreachable!(),
            }
        }
        let lock = Route::customers_to_lock(commands, &rows.hold_customers, &rows.request_customers);
        for c in &lock {
            if let Some((bytes, _)) = t.customers.get(c) {
                rows.shards.insert(*c, Shard::decode(bytes)?);
            }
        }
        for c in Route::customers_opened(commands) {
            if !t.customers.contains_key(&c) {
                t.next_shard += 1;
                rows.fresh.insert(c, ShardNo(t.next_shard));
            }
        }
        for (space, id) in ids {
            if let Some(row) = t.ids.get(&(space, id)) {
                rows.replies
                    .insert((space, id), StoredReply::decode(space, id, &row.reply)?);
                if let Some((customer, amount, closing)) = &row.closing {
                    rows.closed_holds
                        .insert(HoldId(id), ClosedHold::decode(HoldId(id), *customer, *amount, closing)?);
                }
            }
        }
        let outcome = run_batch(&self.config, self.clock.now_ns(), commands, rows)?;
        for w in outcome.writes {
            if let (Some(customer), Some((bytes, balance))) = (w.customer, w.state) {
                assert_eq!(w.created, !t.customers.contains_key(&customer), "insert or update");
                t.customers.insert(customer, (bytes, balance));
            }
            for r in &w.settled.replies {
                let customer = match r.command {
                    Command::Hold { customer, .. } => Some(customer),
                    _ => w.customer,
                };
                let old = t.ids.insert(
                    (r.space, r.id),
                    IdRow {
                        customer,
                        reply: r.encode(),
                        closing: None,
                    },
                );
                assert!(old.is_none(), "a stored reply is written once: {r:?}");
            }
            for h in &w.settled.closed_holds {
                let row = t
                    .ids
                    .get_mut(&(IdSpace::Hold, h.hold.0))
                    .expect("a closed hold was held");
                assert!(row.closing.is_none(), "a hold is closed once");
                row.closing = Some((h.customer, h.amount, h.encode()));
            }
            if let Some(customer) = w.customer {
                t.entries.entry(customer).or_default().extend(&w.settled.entries);
            }
            for q in &w.settled.requests {
                t.requests.insert(q.id, (q.customer, encode_request(q), true));
            }
            for r in &w.settled.requests_closed {
                t.requests.get_mut(r).expect("a closed request was emitted").2 = false;
            }
        }
        Ok(outcome.replies)
    }
}

impl BillingStore for MemoryShards {
    fn submit(
        &self,
        commands: Vec<Command>,
    ) -> impl Future<Output = Result<Vec<paygo_billing::Reply>, BillingError>> + Send {
        std::future::ready(self.apply(&commands))
    }

    fn auto_top_up(
        &self,
        customer: CustomerId,
    ) -> impl Future<Output = Result<paygo_billing::AutoTopUpStatus, BillingError>> + Send {
        let t = self.tables.lock().unwrap();
        std::future::ready(match t.customers.get(&customer) {
            Some((bytes, _)) => {
                Shard::decode(bytes).and_then(|shard| paygo_billing::auto_top_up_of(shard.billing(), customer))
            }
            None => Err(BillingError::UnknownCustomer { customer }),
        })
    }

    fn balance(&self, customer: CustomerId) -> impl Future<Output = Result<Balance, BillingError>> + Send {
        let t = self.tables.lock().unwrap();
        std::future::ready(
            t.customers
                .get(&customer)
                .map(|(_, b)| *b)
                .ok_or(BillingError::UnknownCustomer { customer }),
        )
    }

    fn history(
        &self,
        customer: CustomerId,
        query: HistoryQuery,
    ) -> impl Future<Output = Result<HistoryPage, BillingError>> + Send {
        let t = self.tables.lock().unwrap();
        let answer = if query.limit == 0 || query.limit > paygo_billing::HISTORY_PAGE_MAX {
            Err(BillingError::PageLimit {
                limit: query.limit,
                max: paygo_billing::HISTORY_PAGE_MAX,
            })
        } else if !t.customers.contains_key(&customer) {
            Err(BillingError::UnknownCustomer { customer })
        } else {
            let older: Vec<HistoryEntry> = t
                .entries
                .get(&customer)
                .map(|e| {
                    e.iter()
                        .rev()
                        .filter(|e| query.before_ns.is_none_or(|b| e.at_ns < b))
                        .copied()
                        .collect()
                })
                .unwrap_or_default();
            let more = older.len() > query.limit;
            let entries: Vec<HistoryEntry> = older.into_iter().take(query.limit).collect();
            let next = if more { entries.last().map(|e| e.at_ns) } else { None };
            Ok(HistoryPage { entries, next })
        };
        std::future::ready(answer)
    }

    fn outstanding_requests(&self) -> impl Future<Output = Result<Vec<TopUpRequest>, BillingError>> + Send {
        let t = self.tables.lock().unwrap();
        let answer: Result<Vec<TopUpRequest>, BillingError> = t
            .requests
            .values()
            .filter(|(_, _, outstanding)| *outstanding)
            .map(|(_, bytes, _)| decode_request(bytes))
            .collect();
        std::future::ready(answer)
    }
}

fn shards() -> MemoryShards {
    MemoryShards::new(BillingConfig::default(), ManualClock::new(T0))
}

#[test]
fn the_contract_holds_on_shards() {
    contract::run_all(&shards());
}

#[test]
fn shards_answer_as_one_machine() {
    let seeds: u64 = std::env::var("PAYGO_DIFF_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let from: u64 = std::env::var("PAYGO_DIFF_FROM")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    for seed in from..from + seeds {
        let config = BillingConfig {
            bonus_enabled: true,
            ..BillingConfig::default()
        };
        let (clock_a, clock_b) = (ManualClock::new(T0), ManualClock::new(T0));
        let reference = EmbeddedStore::in_memory(config, clock_a.clone()).unwrap();
        let other = MemoryShards::new(config, clock_b.clone());
        let advance = |ns: u64| {
            clock_a.advance_ns(ns);
            clock_b.advance_ns(ns);
        };
        contract::differential(
            &reference,
            &other,
            &advance,
            DifferentialOptions {
                seed,
                steps: 300,
                base: 0,
            },
        );
    }
}

/// A shard's bytes hold its open state only: a customer with thousands of settled calls
/// encodes as small as one with none.
#[test]
fn a_shard_does_not_grow_with_its_history() {
    let store = shards();
    let customer = CustomerId(7);
    let open = vec![
        Command::OpenAccount { customer },
        Command::TopUp {
            id: paygo_billing::TopUpId(1),
            customer,
            amount: paygo_credits::Money::usd("100.00".parse().unwrap()),
            method: paygo_billing::PaymentMethod::PayPal,
        },
    ];
    assert!(store.apply(&open).unwrap().iter().all(Result::is_ok));
    let size = || store.tables.lock().unwrap().customers[&customer].0.len();
    let mut sizes = Vec::new();
    for i in 0..3_000u128 {
        let hold = HoldId(10 + i);
        let replies = store
            .apply(&[
                Command::Hold {
                    id: hold,
                    customer,
                    amount: Credits::new(1_000),
                    timeout_ms: 60_000,
                },
                Command::Capture {
                    hold,
                    amount: Credits::new(700),
                },
            ])
            .unwrap();
        assert!(replies.iter().all(Result::is_ok), "{replies:?}");
        if i == 10 || i == 2_999 {
            sizes.push(size());
        }
    }
    // Packed, a shard's size moves by a few bytes as its counters and balances gain
    // non-zero digits; it must not grow with the 3,000 settled pairs (about 200 bytes each
    // if they were kept).
    assert!(
        sizes[1] <= sizes[0] + 16,
        "the shard's bytes stay about the same size: {sizes:?}"
    );
    // Retries of an old call are still answered from the stored rows.
    let again = store
        .apply(&[Command::Capture {
            hold: HoldId(10),
            amount: Credits::new(700),
        }])
        .unwrap();
    assert!(matches!(again[0], Ok(paygo_billing::Receipt::Captured { charged, .. }) if charged == Credits::new(700)));
    let balance = paygo_billing::block_on(store.balance(customer)).unwrap();
    assert_eq!(balance.available, Credits::new(200_000_000 - 3_000 * 700));
}
