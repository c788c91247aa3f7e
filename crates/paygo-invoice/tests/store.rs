//! The sequence stores: gapless numbers across threads, failures, torn writes, damage and
//! the journal's lock. The crash tests are in `tests/crash.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

#[path = "support/common.rs"]
#[allow(dead_code)]
mod common;
#[path = "support/store.rs"]
mod store_support;

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;

use common::*;
use paygo_invoice::{FileSequenceStore, InvoiceError, JOURNAL_FILE_NAME, MemorySequenceStore, SequenceStore};
use store_support::{TempDir, commit, key, sequences, series};

#[test]
fn the_file_store_continues_after_reopening() {
    let dir = TempDir::new("reopen");
    {
        let store = FileSequenceStore::open(&dir.0).unwrap();
        assert_eq!(commit(&store, "INV-2026", "a").unwrap(), 1);
        assert_eq!(commit(&store, "CN-2026", "b").unwrap(), 1);
        assert_eq!(commit(&store, "INV-2026", "c").unwrap(), 2);
    }
    let store = FileSequenceStore::open(&dir.0).unwrap();
    assert_eq!(store.last(&series("INV-2026")).unwrap(), 2);
    assert_eq!(store.last(&series("CN-2026")).unwrap(), 1);
    assert_eq!(commit(&store, "INV-2026", "d").unwrap(), 3);
    let records = store.records().unwrap();
    assert_eq!(sequences(&records, "INV-2026"), [1, 2, 3]);
    assert_eq!(records[3].key.as_str(), "d");
    assert_eq!(records[3].body, "{\"doc\":\"d\",\"n\":3}");
}

#[test]
fn a_failed_seal_consumes_no_number() {
    let dir = TempDir::new("seal");
    let file = FileSequenceStore::open(&dir.0).unwrap();
    let memory = MemorySequenceStore::new();
    for store in [&file as &dyn SequenceStore, &memory] {
        assert_eq!(commit(store, "INV-2026", "a").unwrap(), 1);
        let failed = store.commit(&series("INV-2026"), &key("b"), &mut |_| {
            Err(InvoiceError::Overflow { operation: "injected" })
        });
        assert!(matches!(failed, Err(InvoiceError::Overflow { operation: "injected" })));
        assert_eq!(commit(store, "INV-2026", "c").unwrap(), 2);
        assert_eq!(sequences(&store.records().unwrap(), "INV-2026"), [1, 2]);
    }
}

#[test]
fn a_torn_last_write_is_cut_off_and_its_number_offered_again() {
    let dir = TempDir::new("torn");
    {
        let store = FileSequenceStore::open(&dir.0).unwrap();
        commit(&store, "INV-2026", "a").unwrap();
        commit(&store, "INV-2026", "b").unwrap();
    }
    let path = dir.0.join(JOURNAL_FILE_NAME);
    let whole = std::fs::metadata(&path).unwrap().len();
    // A crash in the middle of the third append: part of a line, no newline.
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(b"0123456789abcdef {\"series\":\"INV-2026\",\"seq")
        .unwrap();
    drop(file);
    let store = FileSequenceStore::open(&dir.0).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
    assert_eq!(commit(&store, "INV-2026", "c").unwrap(), 3);
    assert_eq!(sequences(&store.records().unwrap(), "INV-2026"), [1, 2, 3]);
}

#[test]
fn damage_before_valid_lines_is_an_error_not_a_repair() {
    let dir = TempDir::new("damage");
    {
        let store = FileSequenceStore::open(&dir.0).unwrap();
        commit(&store, "INV-2026", "a").unwrap();
        commit(&store, "INV-2026", "b").unwrap();
    }
    let path = dir.0.join(JOURNAL_FILE_NAME);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[20] ^= 0x01; // flip a bit in the first record
    std::fs::write(&path, &bytes).unwrap();
    let error = FileSequenceStore::open(&dir.0).unwrap_err();
    assert!(matches!(error, InvoiceError::Journal { line: 1, .. }), "{error}");
    // The journal is left as it was for a person to look at.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn threads_committing_to_the_file_store_get_every_number_once() {
    let dir = TempDir::new("threads");
    let store = Arc::new(FileSequenceStore::open(&dir.0).unwrap());
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                (0..10)
                    .map(|i| commit(store.as_ref(), "INV-2026", &format!("t{t}-{i}")).unwrap())
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut seen = BTreeSet::new();
    for handle in handles {
        for n in handle.join().unwrap() {
            assert!(seen.insert(n), "{n} twice");
        }
    }
    assert_eq!(seen, (1..=40).collect());
    drop(store);
    let reopened = FileSequenceStore::open(&dir.0).unwrap();
    assert_eq!(
        sequences(&reopened.records().unwrap(), "INV-2026"),
        (1..=40).collect::<Vec<_>>()
    );
}

#[test]
fn issued_documents_and_credits_survive_a_restart() {
    let dir = TempDir::new("restart");
    let (invoice, note) = {
        let invoicing = invoicing(FileSequenceStore::open(&dir.0).unwrap());
        let invoice = invoicing.issue(&de_draft("inv", "100.00"), day(2)).unwrap();
        let note = invoicing
            .issue_credit_note(
                &paygo_invoice::CreditNoteDraft {
                    id: key("cn"),
                    series: series("CN-2026"),
                    original: invoice.number().clone(),
                    reason: "goodwill".into(),
                    lines: vec![usd_line("30.00")],
                    refund: card("re_1"),
                },
                day(3),
            )
            .unwrap();
        (invoice, note)
    };
    let invoicing = invoicing(FileSequenceStore::open(&dir.0).unwrap());
    assert_eq!(invoicing.documents().unwrap(), [invoice.clone(), note]);
    assert_eq!(
        invoicing.credited(invoice.number()).unwrap().net.to_string(),
        "30.00 USD"
    );
    assert!(matches!(
        invoicing.issue(&de_draft("inv", "100.00"), day(2)),
        Err(InvoiceError::AlreadyIssued { .. })
    ));
    assert_eq!(
        invoicing
            .issue(&de_draft("inv2", "5.00"), day(4))
            .unwrap()
            .number()
            .sequence(),
        2
    );
}

// ---- crashes -------------------------------------------------------------------------

#[test]
fn a_damaged_whole_last_line_is_an_error_not_a_torn_write() {
    let dir = TempDir::new("damaged-last");
    {
        let store = FileSequenceStore::open(&dir.0).unwrap();
        commit(&store, "INV-2026", "a").unwrap();
        commit(&store, "INV-2026", "b").unwrap();
    }
    let path = dir.0.join(JOURNAL_FILE_NAME);
    let mut bytes = std::fs::read(&path).unwrap();
    // Flip a bit inside the last line; its line end is still there, so no crash made it.
    let last = bytes.len() - 5;
    bytes[last] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let error = FileSequenceStore::open(&dir.0).unwrap_err();
    assert!(matches!(error, InvoiceError::Journal { line: 2, .. }), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "the journal is left for a person");
}

#[test]
fn a_second_store_on_the_same_journal_is_refused_until_the_first_is_dropped() {
    let dir = TempDir::new("lock");
    let first = FileSequenceStore::open(&dir.0).unwrap();
    commit(&first, "INV-2026", "a").unwrap();
    let error = FileSequenceStore::open(&dir.0).unwrap_err();
    assert!(
        matches!(error, InvoiceError::Store { operation: "lock", .. }),
        "{error}"
    );
    drop(first);
    let second = FileSequenceStore::open(&dir.0).unwrap();
    assert_eq!(commit(&second, "INV-2026", "b").unwrap(), 2);
}
