//! The contract of [`SequenceStore`], as cases that every implementation runs (feature
//! `contract`): the memory and file stores' tests run them, and so does any other store's
//! (a database store runs them against a real server). A case panics with what broke.
//!
//! Every case takes a store and a `prefix` (uppercase letters and digits, at most 16
//! characters): it uses only series whose names start with it, so that cases can share
//! one store (a database schema) when each gets its own prefix ([`run_all`] gives them
//! `{prefix}C1`, `{prefix}C2`, ...). Records of other series may be in the store; the cases
//! look only at their own.
//!
//! What a document id (`key`) means to the store is not part of the trait's contract: the
//! memory and file stores record whatever they are given (the issuer refuses an id twice
//! before it commits), a store shared by several processes may refuse an id it already
//! holds. No case commits one id twice.
//!
//! ```
//! use paygo_invoice::MemorySequenceStore;
//!
//! paygo_invoice::contract::run_all(&MemorySequenceStore::new(), "DOC");
//! ```

// A case reports a broken promise by panicking, as a test does.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::collections::BTreeSet;

use crate::{DocumentId, InvoiceError, SequenceRecord, SequenceStore, SeriesName};

/// A case: the store, and the prefix of its series.
type Case<S> = fn(&S, &str);

/// Runs every case, each with its own prefix.
pub fn run_all<S: SequenceStore>(store: &S, prefix: &str) {
    let cases: [(&str, Case<S>); 5] = [
        ("numbers start at 1, per series", numbers_start_at_one_per_series),
        ("a failed seal consumes nothing", a_failed_seal_consumes_nothing),
        ("records are what was sealed", records_are_what_was_sealed),
        (
            "for_each_record stops at the first error",
            for_each_record_stops_at_the_first_error,
        ),
        ("concurrent commits are gapless", concurrent_commits_are_gapless),
    ];
    for (n, (_name, case)) in cases.iter().enumerate() {
        case(store, &format!("{prefix}C{}", n + 1));
    }
}

/// Series `name` under `prefix`.
fn series(prefix: &str, name: &str) -> SeriesName {
    SeriesName::new(&format!("{prefix}-{name}")).expect("the prefix and name make a series name")
}

/// A document id unique to the series and the tag.
fn key(series: &SeriesName, tag: &str) -> DocumentId {
    DocumentId::new(&format!("{series}/{tag}")).expect("the series and tag make a document id")
}

/// The body the cases seal: names the id and the number.
fn body(key: &DocumentId, n: u64) -> String {
    format!("{{\"doc\":\"{key}\",\"n\":{n}}}")
}

/// Commits a document `tag` to `series`, checking that the store sealed the number it returns.
fn commit<S: SequenceStore>(store: &S, series: &SeriesName, tag: &str) -> u64 {
    let key = key(series, tag);
    let mut sealed = Vec::new();
    let n = store
        .commit(series, &key, &mut |n| {
            sealed.push(n);
            Ok(body(&key, n))
        })
        .unwrap_or_else(|e| panic!("commit of {key} to {series} failed: {e}"));
    assert_eq!(sealed.last(), Some(&n), "the store returned {n} but sealed {sealed:?}");
    n
}

/// The store's records of series starting with `prefix`, in the store's order.
fn own_records<S: SequenceStore>(store: &S, prefix: &str) -> Vec<SequenceRecord> {
    let start = format!("{prefix}-");
    let mut records = store.records().expect("the store reads its records");
    records.retain(|r| r.series.as_str().starts_with(&start));
    records
}

fn numbers(records: &[SequenceRecord], series: &SeriesName) -> Vec<u64> {
    records
        .iter()
        .filter(|r| &r.series == series)
        .map(|r| r.sequence)
        .collect()
}

/// Numbers start at 1 and go up by one, each series on its own; `last` is 0 for a series
/// without numbers and the last number otherwise.
pub fn numbers_start_at_one_per_series<S: SequenceStore>(store: &S, prefix: &str) {
    let (a, b) = (series(prefix, "A"), series(prefix, "B"));
    assert_eq!(store.last(&a).unwrap(), 0, "a new series has no last number");
    assert_eq!(commit(store, &a, "1"), 1);
    assert_eq!(commit(store, &a, "2"), 2);
    assert_eq!(store.last(&b).unwrap(), 0, "another series is not touched");
    assert_eq!(commit(store, &b, "1"), 1);
    assert_eq!(commit(store, &a, "3"), 3);
    assert_eq!((store.last(&a).unwrap(), store.last(&b).unwrap()), (3, 1));
    let records = own_records(store, prefix);
    assert_eq!(numbers(&records, &a), [1, 2, 3]);
    assert_eq!(numbers(&records, &b), [1]);
}

/// A seal that fails consumes nothing: its error comes back as it was, the number is offered
/// again, and no record is kept.
pub fn a_failed_seal_consumes_nothing<S: SequenceStore>(store: &S, prefix: &str) {
    let a = series(prefix, "A");
    assert_eq!(commit(store, &a, "1"), 1);
    let mut offered = None;
    let failed = store.commit(&a, &key(&a, "failed"), &mut |n| {
        offered = Some(n);
        Err(InvoiceError::Overflow { operation: "injected" })
    });
    assert!(
        matches!(failed, Err(InvoiceError::Overflow { operation: "injected" })),
        "the seal's error comes back: {failed:?}"
    );
    assert_eq!(offered, Some(2), "the seal was offered the next number");
    assert_eq!(store.last(&a).unwrap(), 1, "nothing consumed");
    assert_eq!(commit(store, &a, "2"), 2, "the number is offered again");
    let records = own_records(store, prefix);
    assert_eq!(numbers(&records, &a), [1, 2]);
    assert!(
        records.iter().all(|r| r.key != key(&a, "failed")),
        "no record of the failed seal"
    );
}

/// The records hold the series, the number, the id and the body as sealed, in the order
/// they were committed; `for_each_record` visits the same records as `records`.
pub fn records_are_what_was_sealed<S: SequenceStore>(store: &S, prefix: &str) {
    let (a, b) = (series(prefix, "A"), series(prefix, "B"));
    let order = [(&a, "x"), (&b, "y"), (&a, "z"), (&b, "w")];
    let committed: Vec<(SeriesName, u64, DocumentId)> = order
        .iter()
        .map(|(s, tag)| ((*s).clone(), commit(store, s, tag), key(s, tag)))
        .collect();
    let records = own_records(store, prefix);
    let expected: Vec<SequenceRecord> = committed
        .into_iter()
        .map(|(series, sequence, key)| SequenceRecord {
            body: body(&key, sequence),
            series,
            sequence,
            key,
        })
        .collect();
    assert_eq!(records, expected);
    let mut visited = Vec::new();
    store
        .for_each_record(&mut |record| {
            if record.series.as_str().starts_with(&format!("{prefix}-")) {
                visited.push(record);
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(visited, expected, "for_each_record visits what records returns");
}

/// `for_each_record` stops at `visit`'s first error and returns it.
pub fn for_each_record_stops_at_the_first_error<S: SequenceStore>(store: &S, prefix: &str) {
    let a = series(prefix, "A");
    for tag in ["1", "2", "3"] {
        commit(store, &a, tag);
    }
    let mut visits = 0;
    let result = store.for_each_record(&mut |_| {
        visits += 1;
        Err(InvoiceError::Overflow { operation: "visit" })
    });
    assert!(
        matches!(result, Err(InvoiceError::Overflow { operation: "visit" })),
        "visit's error comes back: {result:?}"
    );
    assert_eq!(visits, 1, "no visit after the first error");
    // The store still works.
    assert_eq!(commit(store, &a, "4"), 4);
}

/// Commits from several threads at once get every number once, with no gap.
pub fn concurrent_commits_are_gapless<S: SequenceStore>(store: &S, prefix: &str) {
    const THREADS: u64 = 4;
    const EACH: u64 = 10;
    let (a, b) = (series(prefix, "A"), series(prefix, "B"));
    let got: Vec<Vec<(SeriesName, u64)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (a, b) = (&a, &b);
                scope.spawn(move || {
                    (0..EACH)
                        .map(|i| {
                            // Threads 0 and 1 only number series A; 2 and 3 alternate.
                            let s = if t < 2 || i % 2 == 0 { a } else { b };
                            (s.clone(), commit(store, s, &format!("t{t}-{i}")))
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut seen = BTreeSet::new();
    for (s, n) in got.into_iter().flatten() {
        assert!(seen.insert((s.clone(), n)), "{s} number {n} handed out twice");
    }
    let a_count = seen.iter().filter(|(s, _)| s == &a).count() as u64;
    let b_count = seen.len() as u64 - a_count;
    assert_eq!(a_count + b_count, THREADS * EACH);
    let expected = |count: u64| (1..=count).collect::<Vec<u64>>();
    let records = own_records(store, prefix);
    assert_eq!(numbers(&records, &a), expected(a_count), "series A gapless, in order");
    assert_eq!(numbers(&records, &b), expected(b_count), "series B gapless, in order");
    assert_eq!((store.last(&a).unwrap(), store.last(&b).unwrap()), (a_count, b_count));
}

/// A durable store keeps its numbers and records across reopening: `open` opens the same
/// store again (the previous one is dropped first).
pub fn survives_reopening<S: SequenceStore>(open: &dyn Fn() -> S, prefix: &str) {
    let (a, b) = (series(prefix, "A"), series(prefix, "B"));
    let before = {
        let store = open();
        assert_eq!(commit(&store, &a, "1"), 1);
        assert_eq!(commit(&store, &b, "1"), 1);
        assert_eq!(commit(&store, &a, "2"), 2);
        own_records(&store, prefix)
    };
    let store = open();
    assert_eq!(own_records(&store, prefix), before, "the records survive");
    assert_eq!((store.last(&a).unwrap(), store.last(&b).unwrap()), (2, 1));
    assert_eq!(commit(&store, &a, "3"), 3, "numbering goes on");
}
