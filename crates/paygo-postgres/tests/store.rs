//! The PostgreSQL store against a real server (`PAYGO_TEST_POSTGRES_URL`; skipped with a
//! printed reason when unset, never in CI): the `BillingStore` contract suite, the
//! differential run against the embedded store, replicas racing on a few accounts and on
//! opening one, and bad input at the store's edge. Each test has a schema of its own,
//! dropped at the end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
#![allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)] // small generated values

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use paygo_billing::contract::{self, DifferentialOptions};
use paygo_billing::{
    BillingConfig, BillingError, BillingStore, CardKind, Command, CustomerId, EmbeddedStore, HoldId, PaymentMethod,
    Receipt, Refusal, TopUpId, block_on,
};
use paygo_credits::{Credits, Money};
use paygo_ledger::ManualClock;
use paygo_postgres::{PgOptions, PgStore, PostgresError, StoreClock};

const T0: u64 = 1_700_000_000_000_000_123;

/// The server's URL, or `None` (with the reason printed) when the tests cannot run here.
fn url() -> Option<String> {
    match std::env::var("PAYGO_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: PAYGO_TEST_POSTGRES_URL is not set (CI sets it; see .ci/run)");
            None
        }
    }
}

/// A runtime for the store's tasks: the test's own thread drives the futures with
/// `block_on`, as a caller on any executor would.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A schema of this test's own, dropped when it ends (also on failure).
struct Schema {
    url: String,
    name: String,
    rt: tokio::runtime::Runtime,
}

impl Schema {
    fn new(url: String, test: &str) -> Schema {
        let name = format!("t_{test}_{}", std::process::id());
        let rt = runtime();
        rt.block_on(paygo_postgres::drop_schema(&url, &name)).unwrap();
        Schema { url, name, rt }
    }

    fn options(&self) -> PgOptions {
        PgOptions::new(self.url.clone()).with_schema(&self.name)
    }

    fn open(&self, config: BillingConfig) -> PgStore {
        self.rt.block_on(PgStore::open(self.options(), config)).unwrap()
    }

    fn open_with(&self, options: PgOptions, config: BillingConfig) -> Result<PgStore, PostgresError> {
        self.rt.block_on(PgStore::open(options, config))
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = self.rt.block_on(paygo_postgres::drop_schema(&self.url, &self.name));
    }
}

macro_rules! cases {
    ($($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                let Some(url) = url() else { return };
                let schema = Schema::new(url, stringify!($case));
                let store = schema.open(BillingConfig::default());
                contract::$case(&store, 0);
                let audit = block_on(store.audit()).unwrap();
                assert!(audit.conserved(), "{audit:?}");
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
fn every_case_on_one_schema() {
    let Some(url) = url() else { return };
    let schema = Schema::new(url, "run_all");
    contract::run_all(&schema.open(BillingConfig::default()));
}

/// The same seeded stream of every command to the embedded store and to this one, with
/// clocks moved together: every reply, balance, history and outstanding request the same.
#[test]
fn answers_as_the_embedded_store() {
    let Some(url) = url() else { return };
    let schema = Schema::new(url, "differential");
    let config = BillingConfig {
        bonus_enabled: true,
        ..BillingConfig::default()
    };
    let seeds: u64 = std::env::var("PAYGO_PG_DIFF_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    for seed in 0..seeds {
        let (clock_a, clock_b) = (ManualClock::new(T0), ManualClock::new(T0));
        let reference = EmbeddedStore::in_memory(config, clock_a.clone()).unwrap();
        let store = schema
            .open_with(
                schema
                    .options()
                    .with_clock(StoreClock::Local(Arc::new(clock_b.clone()))),
                config,
            )
            .unwrap();
        let advance = |ns: u64| {
            clock_a.advance_ns(ns);
            clock_b.advance_ns(ns);
        };
        contract::differential(
            &reference,
            &store,
            &advance,
            DifferentialOptions {
                seed,
                steps: 200,
                // Each seed its own customers and ids in the one schema.
                base: u128::from(seed + 1) << 40,
            },
        );
        let audit = block_on(store.audit()).unwrap();
        assert!(audit.conserved(), "seed {seed}: {audit:?}");
    }
}

const CARD: PaymentMethod = PaymentMethod::Card(CardKind::Credit);

/// Replicas (stores with pools of their own) on threads, hammering three accounts with
/// holds, captures, releases and top-ups, every submission sent twice (a retry): no hold is
/// ever granted beyond the balance, every id is applied once, and the books balance.
#[test]
fn replicas_racing_on_a_few_accounts_never_overspend() {
    let Some(url) = url() else { return };
    let schema = Schema::new(url, "replicas");
    let replicas: Vec<PgStore> = (0..3).map(|_| schema.open(BillingConfig::default())).collect();
    let customers: Vec<CustomerId> = (1..=3).map(CustomerId).collect();
    for (i, &customer) in customers.iter().enumerate() {
        let replies = block_on(replicas[i].submit(vec![
            Command::OpenAccount { customer },
            Command::TopUp {
                id: TopUpId(customer.0),
                customer,
                amount: Money::usd("0.50".parse().unwrap()),
                method: CARD,
            },
        ]))
        .unwrap();
        assert!(replies.iter().all(Result::is_ok), "{replies:?}");
    }
    let bought = Arc::new(AtomicI64::new(3 * 1_000_000));
    let charged = Arc::new(AtomicI64::new(0));
    std::thread::scope(|scope| {
        for t in 0..6u128 {
            let store = replicas[(t % 3) as usize].clone();
            let customers = customers.clone();
            let (bought, charged) = (Arc::clone(&bought), Arc::clone(&charged));
            scope.spawn(move || {
                let mut state = 0x2545_F491_4F6C_DD1D_u64 ^ (t as u64 + 1);
                let mut rnd = move |n: u64| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state % n
                };
                for i in 0..150u128 {
                    let id = 1_000_000 + t * 10_000 + i;
                    let customer = customers[rnd(3) as usize];
                    if rnd(10) == 0 {
                        let top_up = Command::TopUp {
                            id: TopUpId(id),
                            customer,
                            amount: Money::usd("0.10".parse().unwrap()),
                            method: CARD,
                        };
                        let first = block_on(store.submit(vec![top_up])).unwrap();
                        let again = block_on(store.submit(vec![top_up])).unwrap();
                        assert_eq!(first, again, "a retried top-up");
                        if let Ok(Receipt::ToppedUp { credits }) = first[0] {
                            bought.fetch_add(credits.get(), Ordering::SeqCst);
                        }
                        continue;
                    }
                    let amount = Credits::new(1 + rnd(150_000) as i64);
                    let hold = Command::Hold {
                        id: HoldId(id),
                        customer,
                        amount,
                        timeout_ms: 600_000,
                    };
                    match block_on(store.submit(vec![hold])).unwrap()[0] {
                        Ok(_) => {}
                        Err(Refusal::InsufficientCredits) => continue,
                        Err(other) => panic!("hold: {other:?}"),
                    }
                    let finish = if rnd(4) == 0 {
                        Command::Release { hold: HoldId(id) }
                    } else {
                        Command::Capture {
                            hold: HoldId(id),
                            amount: Credits::new(rnd(amount.get() as u64 + 1) as i64),
                        }
                    };
                    let first = block_on(store.submit(vec![finish])).unwrap();
                    let again = block_on(store.submit(vec![finish])).unwrap();
                    assert_eq!(first, again, "a retried {finish:?}");
                    if let Ok(Receipt::Captured { charged: c, .. }) = first[0] {
                        charged.fetch_add(c.get(), Ordering::SeqCst);
                    }
                }
            });
        }
    });
    let mut total = 0;
    for &customer in &customers {
        let balance = block_on(replicas[0].balance(customer)).unwrap();
        assert!(balance.available >= Credits::ZERO, "{balance:?}");
        total += balance.available.get();
    }
    assert_eq!(
        total,
        bought.load(Ordering::SeqCst) - charged.load(Ordering::SeqCst),
        "every top-up and every charge applied once"
    );
    let audit = block_on(replicas[1].audit()).unwrap();
    assert!(audit.conserved(), "{audit:?}");
    assert_eq!(audit.sold, i128::from(bought.load(Ordering::SeqCst)));
    assert_eq!(audit.revenue, i128::from(charged.load(Ordering::SeqCst)));
}

/// A batch that finds a customer's row changed since it read it (another replica's commit
/// in between) is rolled back and run again with the rows locked: made to happen for sure
/// by changing the row in a transaction of the test's own that commits only once the
/// store's update waits for it.
#[test]
fn a_row_changed_under_a_batch_runs_it_again() {
    let Some(url) = url() else { return };
    let schema = Schema::new(url.clone(), "conflict");
    let store = schema.open(BillingConfig::default());
    let customer = CustomerId(5);
    let replies = block_on(store.submit(vec![
        Command::OpenAccount { customer },
        Command::TopUp {
            id: TopUpId(5),
            customer,
            amount: Money::usd("1.00".parse().unwrap()),
            method: CARD,
        },
    ]))
    .unwrap();
    assert!(replies.iter().all(Result::is_ok), "{replies:?}");
    let name = schema.name.clone();
    schema.rt.block_on(async move {
        let (other, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let (watch, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        // The other "replica": the row changed (a version raised) but not committed yet.
        other.batch_execute("BEGIN").await.unwrap();
        let changed = other
            .execute(&format!("UPDATE {name}.customers SET version = version + 1"), &[])
            .await
            .unwrap();
        assert_eq!(changed, 1);
        let before = store.stats();
        let submit = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .submit(vec![Command::Hold {
                        id: HoldId(77),
                        customer,
                        amount: Credits::new(1_000),
                        timeout_ms: 60_000,
                    }])
                    .await
            })
        };
        // Wait until the store's conditional update waits for the uncommitted change.
        let mut waited = false;
        for _ in 0..500 {
            let n: i64 = watch
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                      WHERE application_name = 'paygo' AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if n > 0 {
                waited = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(waited, "the store's update never waited for the other transaction");
        other.batch_execute("COMMIT").await.unwrap();
        let replies = submit.await.unwrap().unwrap();
        assert!(matches!(replies[0], Ok(Receipt::Held { .. })), "{replies:?}");
        let stats = store.stats();
        assert_eq!(
            stats.retries - before.retries,
            1,
            "run again once, with the rows locked"
        );
        assert_eq!(stats.batches - before.batches, 1);
        let balance = store.balance(customer).await.unwrap();
        assert_eq!(balance.available, Credits::new(2_000_000 - 1_000));
    });
}

/// Two replicas open the same customer at once: both read that it does not exist, both
/// send their writes, and the one whose insert comes second fails with a unique key
/// violation - a conflict the store runs again - while every later statement of its
/// pipelined transaction fails with "current transaction is aborted" (25P02). The store
/// must report the first failure in statement order: the conflict, not a 25P02 (which it
/// would answer as `Unavailable`). Made to happen for sure: a trigger of the test's own
/// holds each insert into the customers table until both replicas wait in it. Run five
/// times, because without the statements polled in order (`try_join!`'s `biased;`) which
/// failure is seen first is random (found in CI, session 12; with `biased;` removed from
/// the write round trip this test fails).
#[test]
fn a_replica_that_loses_a_race_to_open_a_customer_runs_its_batch_again() {
    let Some(url) = url() else { return };
    let schema = Schema::new(url.clone(), "abort_order");
    let replicas = [
        schema.open(BillingConfig::default()),
        schema.open(BillingConfig::default()),
    ];
    let name = schema.name.clone();
    schema.rt.block_on(async move {
        let (gate, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        gate.batch_execute(&format!(
            "CREATE FUNCTION {name}.gate() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN PERFORM pg_advisory_xact_lock_shared(hashtext('{name}')); RETURN NEW; END $$;
             CREATE TRIGGER gate BEFORE INSERT ON {name}.customers
             FOR EACH ROW EXECUTE FUNCTION {name}.gate();"
        ))
        .await
        .unwrap();
        for round in 0..5u128 {
            let customer = CustomerId(100 + round);
            let before: Vec<_> = replicas.iter().map(PgStore::stats).collect();
            gate.execute("SELECT pg_advisory_lock(hashtext($1))", &[&name])
                .await
                .unwrap();
            let submits: Vec<_> = replicas
                .iter()
                .enumerate()
                .map(|(r, store)| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        store
                            .submit(vec![
                                Command::OpenAccount { customer },
                                Command::TopUp {
                                    id: TopUpId(1_000 * round + r as u128),
                                    customer,
                                    amount: Money::usd("1.00".parse().unwrap()),
                                    method: CARD,
                                },
                            ])
                            .await
                    })
                })
                .collect();
            // Wait until both replicas' inserts wait at the gate.
            let mut waiting = 0;
            for _ in 0..1_000 {
                waiting = gate
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity
                          WHERE wait_event = 'advisory' AND query LIKE '%' || $1 || '.customers%'",
                        &[&name],
                    )
                    .await
                    .unwrap()
                    .get::<_, i64>(0);
                if waiting == 2 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            assert_eq!(waiting, 2, "round {round}: both replicas' inserts wait at the gate");
            gate.execute("SELECT pg_advisory_unlock(hashtext($1))", &[&name])
                .await
                .unwrap();
            let mut opened = 0;
            for submit in submits {
                let replies = submit
                    .await
                    .unwrap()
                    .unwrap_or_else(|e| panic!("round {round}: the replica that lost the race failed its batch: {e}"));
                match &replies[0] {
                    Ok(Receipt::Opened) => opened += 1,
                    Err(Refusal::AccountExists) => {}
                    other => panic!("round {round}: {other:?}"),
                }
                assert!(matches!(replies[1], Ok(Receipt::ToppedUp { .. })), "{replies:?}");
            }
            assert_eq!(opened, 1, "round {round}: one replica opened the account");
            let retries: u64 = replicas
                .iter()
                .zip(&before)
                .map(|(s, b)| s.stats().retries - b.retries)
                .sum();
            assert_eq!(retries, 1, "round {round}: the loser ran its batch again, once");
            let balance = replicas[0].balance(customer).await.unwrap();
            assert_eq!(
                balance.available,
                Credits::new(2 * 2_000_000),
                "round {round}: both top-ups"
            );
        }
    });
}

/// Bad input at the store's edge: a schema of a newer version, other billing settings, a
/// bad schema name, a bad URL, an oversized batch, an id reused for another command.
#[test]
fn bad_input_gets_typed_errors() {
    let Some(url) = url() else { return };
    let schema = Schema::new(url, "edges");
    let store = schema.open(BillingConfig::default());
    // Another replica with other settings is refused.
    let other = BillingConfig {
        bonus_enabled: true,
        ..BillingConfig::default()
    };
    assert!(matches!(
        schema.open_with(schema.options(), other),
        Err(PostgresError::ConfigMismatch { .. })
    ));
    assert!(matches!(
        schema.open_with(schema.options().with_schema("Robert'); DROP"), BillingConfig::default()),
        Err(PostgresError::InvalidSchemaName { .. })
    ));
    assert!(matches!(
        schema.open_with(PgOptions::new("postgres://[::1"), BillingConfig::default()),
        Err(PostgresError::InvalidUrl { .. })
    ));
    let too_many = vec![
        Command::OpenAccount {
            customer: CustomerId(1)
        };
        5_000
    ];
    assert!(matches!(
        block_on(store.submit(too_many)),
        Err(BillingError::BatchTooLarge { commands: 5_000, .. })
    ));
    // One id, two customers: the second is refused, whichever replica asks.
    let customers = [CustomerId(1), CustomerId(2)];
    for customer in customers {
        block_on(store.submit(vec![Command::OpenAccount { customer }])).unwrap();
    }
    let top_up = |customer| Command::TopUp {
        id: TopUpId(9),
        customer,
        amount: Money::usd("1.00".parse().unwrap()),
        method: CARD,
    };
    assert!(block_on(store.submit(vec![top_up(customers[0])])).unwrap()[0].is_ok());
    let second = schema.open(BillingConfig::default());
    assert_eq!(
        block_on(second.submit(vec![top_up(customers[1])])).unwrap()[0],
        Err(Refusal::IdReused)
    );
    // A schema migrated by a newer build is not touched.
    schema.rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .execute(
                &format!(
                    "UPDATE {}.meta SET value = '99' WHERE key = 'schema_version'",
                    schema.name
                ),
                &[],
            )
            .await
            .unwrap();
    });
    assert!(matches!(
        schema.open_with(schema.options(), BillingConfig::default()),
        Err(PostgresError::SchemaTooNew {
            found: 99,
            supported: paygo_postgres::SCHEMA_VERSION
        })
    ));
}

/// With an idempotency window, `prune` removes the replies and closed holds the window has
/// forgotten, keeps open holds, and changes no answer: the same commands on the embedded
/// store (same settings, same clock) answer the same before and after.
#[test]
fn prune_forgets_only_what_the_window_forgot() {
    use paygo_ledger::{IdWindow, TransferId};
    let Some(url) = url() else { return };
    let schema = Schema::new(url, "prune");
    let config = BillingConfig {
        id_window: Some(IdWindow {
            past_ns: 3_600_000_000_000,
            ahead_ns: 60_000_000_000,
        }),
        ..BillingConfig::default()
    };
    let t0: u64 = 1_796_000_000_000_000_000; // December 2026
    let (clock_a, clock_b) = (ManualClock::new(t0), ManualClock::new(t0));
    let reference = EmbeddedStore::in_memory(config, clock_a.clone()).unwrap();
    let store = schema
        .open_with(
            schema
                .options()
                .with_clock(StoreClock::Local(Arc::new(clock_b.clone()))),
            config,
        )
        .unwrap();
    let both = |commands: Vec<Command>| {
        let a = block_on(reference.submit(commands.clone())).unwrap();
        let b = block_on(store.submit(commands)).unwrap();
        assert_eq!(a, b);
        b
    };
    let id = |n: u128| TransferId::from_time_ns(t0, n).0;
    let customer = CustomerId(5);
    let top_up = Command::TopUp {
        id: TopUpId(id(1)),
        customer,
        amount: Money::usd("0.01".parse().unwrap()),
        method: CARD,
    };
    let hold = |n: u128, credits: i64| Command::Hold {
        id: HoldId(id(n)),
        customer,
        amount: Credits::new(credits),
        timeout_ms: 60_000,
    };
    let capture = |n: u128| Command::Capture {
        hold: HoldId(id(n)),
        amount: Credits::new(1_000),
    };
    let first = both(vec![
        Command::OpenAccount { customer },
        top_up,
        hold(2, 5_000),
        capture(2),
        hold(3, 5_000),
        hold(4, 1_000_000),
    ]);
    assert!(first[..5].iter().all(Result::is_ok), "{first:?}");
    assert_eq!(first[5], Err(Refusal::InsufficientCredits));
    // Within the window nothing goes, and retries answer as the first time.
    assert_eq!(block_on(store.prune()).unwrap(), paygo_postgres::Pruned::default());
    assert_eq!(
        both(vec![top_up, capture(2)]),
        first[1..=3].iter().step_by(2).copied().collect::<Vec<_>>()
    );
    // Two hours on: the top-up, the closed hold and the refused one are forgotten; the hold
    // never closed stays (its row routes a capture).
    clock_a.advance_ns(2 * 3_600_000_000_000);
    clock_b.advance_ns(2 * 3_600_000_000_000);
    let pruned = block_on(store.prune()).unwrap();
    assert_eq!(pruned.replies, 3, "{pruned:?}");
    let late = both(vec![top_up, capture(2), capture(3), hold(4, 1)]);
    assert!(late.iter().all(|r| *r == Err(Refusal::IdOlderThanWindow)), "{late:?}");
    assert_eq!(
        block_on(store.balance(customer)).unwrap(),
        block_on(reference.balance(customer)).unwrap()
    );
    assert_eq!(block_on(store.prune()).unwrap(), paygo_postgres::Pruned::default());
}
