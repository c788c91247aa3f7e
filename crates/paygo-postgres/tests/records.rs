//! `PgRecords` against a real server (`PAYGO_TEST_POSTGRES_URL`; skipped with a printed
//! reason when unset, never in CI): streams are dense and never appended on a stale view,
//! usage records are written once and their roll-ups add up exactly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use paygo_postgres::{Appended, PgOptions, PgRecords, UsageRow};
use rust_decimal::Decimal;

fn url() -> Option<String> {
    match std::env::var("PAYGO_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: PAYGO_TEST_POSTGRES_URL is not set (CI sets it; see .ci/run)");
            None
        }
    }
}

struct Schema {
    url: String,
    name: String,
}

impl Schema {
    async fn new(url: String, test: &str) -> Schema {
        let name = format!("t_rec_{test}_{}", std::process::id());
        paygo_postgres::drop_schema(&url, &name).await.unwrap();
        Schema { url, name }
    }

    fn options(&self) -> PgOptions {
        PgOptions::new(self.url.clone()).with_schema(&self.name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // A runtime of its own: the test's may be gone by now.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(paygo_postgres::drop_schema(&url, &name))
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_dense_and_never_appended_on_a_stale_view() {
    let Some(url) = url() else { return };
    let schema = Schema::new(url, "streams").await;
    let a = PgRecords::open(&schema.options()).await.unwrap();
    let b = PgRecords::open(&schema.options()).await.unwrap();
    assert_eq!(a.append_after("dir", 0, "one").await.unwrap(), Appended::At(1));
    // B has read nothing: its append is refused until it reads.
    assert_eq!(b.append_after("dir", 0, "stale").await.unwrap(), Appended::Behind);
    let seen = b.read("dir", 0, 100).await.unwrap();
    assert_eq!(seen, vec![(1, "one".to_owned())]);
    assert_eq!(b.append_after("dir", 1, "two").await.unwrap(), Appended::At(2));
    // Other streams are apart.
    assert_eq!(a.append_after("other", 0, "x").await.unwrap(), Appended::At(1));
    // Many writers racing from one view: exactly one wins each round, and the stream holds
    // every winner once, in order.
    for (after, round) in (2..).zip(0..20) {
        let racers: Vec<_> = (0..4)
            .map(|w| {
                let store = if w % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move { store.append_after("dir", after, &format!("r{round}w{w}")).await })
            })
            .collect();
        let mut won = 0;
        for r in racers {
            match r.await.unwrap().unwrap() {
                Appended::At(n) => {
                    assert_eq!(n, after + 1);
                    won += 1;
                }
                Appended::Behind => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(won, 1, "round {round}");
    }
    let all = a.read("dir", 0, 1000).await.unwrap();
    assert_eq!(all.len(), 22);
    assert!(
        all.iter().enumerate().all(|(i, (seq, _))| *seq == i as u64 + 1),
        "dense"
    );
    assert_eq!(a.read("dir", 20, 1).await.unwrap().len(), 1, "the limit holds");
    assert!(matches!(
        a.append_after("dir", u64::MAX, "x").await,
        Err(paygo_postgres::PostgresError::InvalidOption { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_records_are_written_once_and_roll_up_exactly() {
    const HOUR: u64 = 3_600_000_000_000;
    let Some(url) = url() else { return };
    let schema = Schema::new(url, "usage").await;
    let store = PgRecords::open(&schema.options()).await.unwrap();
    let t0 = 1_764_000_000 * 1_000_000_000 / HOUR * HOUR;
    let row = |key: &'static str, at_ns: u64, model: &'static str, usd: &str| UsageRow {
        key,
        account: 7,
        at_ns,
        model,
        prompt_tokens: 10,
        completion_tokens: 5,
        credits: 200_000,
        usd: usd.parse::<Decimal>().unwrap(),
        body: key,
    };
    assert!(store.put_usage(&row("a", t0 + 1, "m1", "0.1")).await.unwrap());
    assert!(store.put_usage(&row("b", t0 + 2, "m1", "0.2")).await.unwrap());
    assert!(
        store
            .put_usage(&row("c", t0 + HOUR, "m2", "0.000000001"))
            .await
            .unwrap()
    );
    // A retried record changes nothing, its roll-up included.
    assert!(!store.put_usage(&row("a", t0 + 1, "m1", "0.1")).await.unwrap());
    let other = UsageRow {
        account: 8,
        ..row("d", t0, "m1", "5")
    };
    assert!(store.put_usage(&other).await.unwrap());
    let hours = store.usage_hours(7, t0, t0 + 2 * HOUR).await.unwrap();
    assert_eq!(hours.len(), 2);
    assert_eq!(
        (hours[0].hour_ns, hours[0].model.as_str(), hours[0].calls),
        (t0, "m1", 2)
    );
    assert_eq!(
        hours[0].usd,
        "0.3".parse::<Decimal>().unwrap(),
        "exact: 0.1 + 0.2 is 0.3"
    );
    assert_eq!(
        (hours[0].prompt_tokens, hours[0].completion_tokens, hours[0].credits),
        (20, 10, 400_000)
    );
    assert_eq!(
        (hours[1].hour_ns, hours[1].model.as_str(), hours[1].calls),
        (t0 + HOUR, "m2", 1)
    );
    assert_eq!(hours[1].usd, "0.000000001".parse::<Decimal>().unwrap());
    assert_eq!(store.usage_hours(7, t0 + HOUR, t0 + 2 * HOUR).await.unwrap().len(), 1);
    assert_eq!(store.usage_record("b").await.unwrap().as_deref(), Some("b"));
    assert_eq!(store.usage_record("zz").await.unwrap(), None);
    assert_eq!(store.usage_records(7, t0, t0 + 3).await.unwrap(), vec!["a", "b"]);
    assert_eq!(
        store.usage_records(7, t0 + 2, t0 + 2 * HOUR).await.unwrap(),
        vec!["b", "c"]
    );
    assert!(store.usage_records(9, 0, u64::MAX).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_deletes_old_records_keeps_the_hours_and_refuses_what_it_could_miscount() {
    const HOUR: u64 = 3_600_000_000_000;
    let Some(url) = url() else { return };
    let schema = Schema::new(url, "prune").await;
    let store = PgRecords::open(&schema.options()).await.unwrap();
    // Another replica on the same schema.
    let replica = PgRecords::open(&schema.options()).await.unwrap();
    let t0 = 1_764_000_000 * 1_000_000_000 / HOUR * HOUR;
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    // Ten calls in each of three hours, account 7.
    for (i, key) in keys.iter().enumerate() {
        let at_ns = t0 + (i as u64 / 10) * HOUR + i as u64;
        let row = UsageRow {
            key,
            account: 7,
            at_ns,
            model: "m",
            prompt_tokens: 1,
            completion_tokens: 1,
            credits: 3,
            usd: "0.0000015".parse().unwrap(),
            body: key,
        };
        assert!(store.put_usage(&row).await.unwrap());
    }
    assert_eq!(store.usage_horizon().await.unwrap(), 0);
    // Prune the first hour and a half.
    let horizon = t0 + HOUR + HOUR / 2;
    assert_eq!(
        store.prune_usage(horizon).await.unwrap(),
        20,
        "the records before the horizon"
    );
    assert_eq!(replica.usage_horizon().await.unwrap(), horizon);
    // A lower horizon never lowers it, and finds nothing more.
    assert_eq!(replica.prune_usage(t0).await.unwrap(), 0);
    assert_eq!(store.usage_horizon().await.unwrap(), horizon);
    // The hours stay, exactly.
    let hours = replica.usage_hours(7, t0, t0 + 3 * HOUR).await.unwrap();
    assert_eq!(
        hours.iter().map(|h| (h.calls, h.credits)).collect::<Vec<_>>(),
        vec![(10, 30), (10, 30), (10, 30)]
    );
    assert_eq!(hours[0].usd, "0.000015".parse::<Decimal>().unwrap());
    // Raw records: gone before the horizon, a range starting before it is refused (never
    // answered short), one starting at it is whole.
    assert_eq!(replica.usage_record("k0").await.unwrap(), None);
    assert_eq!(replica.usage_record("k29").await.unwrap().as_deref(), Some("k29"));
    assert!(matches!(
        replica.usage_records(7, t0 + HOUR, t0 + 3 * HOUR).await,
        Err(paygo_postgres::PostgresError::Pruned { before_ns }) if before_ns == horizon
    ));
    assert_eq!(
        replica.usage_records(7, horizon, t0 + 3 * HOUR).await.unwrap().len(),
        10
    );
    // A pruned record written again (a retry, a rebuild) is refused: its call is in the
    // roll-up already, and would count twice.
    let again = UsageRow {
        key: "k0",
        account: 7,
        at_ns: t0,
        model: "m",
        prompt_tokens: 1,
        completion_tokens: 1,
        credits: 3,
        usd: "0.0000015".parse().unwrap(),
        body: "k0",
    };
    assert!(matches!(
        replica.put_usage(&again).await,
        Err(paygo_postgres::PostgresError::Pruned { .. })
    ));
    assert_eq!(replica.usage_hours(7, t0, t0 + HOUR).await.unwrap()[0].calls, 10);
    // A record still kept, written again, is a plain duplicate.
    let kept = UsageRow {
        key: "k29",
        at_ns: t0 + 2 * HOUR + 29,
        body: "k29",
        ..again
    };
    assert!(!replica.put_usage(&kept).await.unwrap());
}
