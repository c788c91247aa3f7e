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
use store_support::{TempDir, commit, key, record_start, sequences, series};

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
    let first = record_start(&path, 1) as usize;
    bytes[first + 20] ^= 0x01; // flip a bit in the first record
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
fn a_damaged_last_record_is_recovered_from_its_copy_in_the_header() {
    let dir = TempDir::new("damaged-last");
    {
        let store = FileSequenceStore::open(&dir.0).unwrap();
        commit(&store, "INV-2026", "a").unwrap();
        commit(&store, "INV-2026", "b").unwrap();
    }
    let path = dir.0.join(JOURNAL_FILE_NAME);
    let whole = std::fs::read(&path).unwrap();
    // Flip a bit inside the last record, line end kept: damage, or a crash that wrote the
    // record's sectors out of order. Record 2 was acknowledged: its copy in the newest
    // header slot brings it back.
    let mut bytes = whole.clone();
    let last = bytes.len() - 5;
    bytes[last] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let store = FileSequenceStore::open(&dir.0).unwrap();
    let records = store.records().unwrap();
    assert_eq!(sequences(&records, "INV-2026"), [1, 2]);
    assert_eq!(records[1].body, "{\"doc\":\"b\",\"n\":2}");
    assert_eq!(std::fs::read(&path).unwrap(), whole, "the journal is repaired");
    assert_eq!(commit(&store, "INV-2026", "c").unwrap(), 3);
}

#[test]
fn a_damaged_record_before_the_last_is_an_error_not_a_repair() {
    let dir = TempDir::new("damaged-middle");
    {
        let store = FileSequenceStore::open(&dir.0).unwrap();
        for id in ["a", "b", "c"] {
            commit(&store, "INV-2026", id).unwrap();
        }
    }
    let path = dir.0.join(JOURNAL_FILE_NAME);
    let mut bytes = std::fs::read(&path).unwrap();
    let second = record_start(&path, 2) as usize;
    bytes[second + 40] ^= 0x01;
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

// ---- read-only opening and format 1 ----------------------------------------------------

#[test]
fn a_read_only_store_reads_while_a_writer_runs_and_writes_nothing() {
    let dir = TempDir::new("read-only");
    let writer = FileSequenceStore::open(&dir.0).unwrap();
    commit(&writer, "INV-2026", "a").unwrap();
    commit(&writer, "CN-2026", "b").unwrap();
    // No lock is needed: the writer keeps running.
    let reader = FileSequenceStore::open_read_only(&dir.0).unwrap();
    assert!(reader.is_read_only());
    assert_eq!(reader.last(&series("INV-2026")).unwrap(), 1);
    assert_eq!(reader.records().unwrap().len(), 2);
    assert!(matches!(
        commit(&reader, "INV-2026", "c"),
        Err(InvoiceError::ReadOnlyStore { .. })
    ));
    // The writer goes on; a reader opened later sees the new record, the first one what it
    // saw when it was opened.
    assert_eq!(commit(&writer, "INV-2026", "c").unwrap(), 2);
    assert_eq!(reader.records().unwrap().len(), 2);
    let later = FileSequenceStore::open_read_only(&dir.0).unwrap();
    assert_eq!(sequences(&later.records().unwrap(), "INV-2026"), [1, 2]);
}

#[test]
fn a_read_only_store_recovers_in_memory_and_leaves_the_files_alone() {
    let dir = TempDir::new("read-only-recover");
    {
        let store = FileSequenceStore::open(&dir.0).unwrap();
        commit(&store, "INV-2026", "a").unwrap();
        commit(&store, "INV-2026", "b").unwrap();
    }
    let path = dir.0.join(JOURNAL_FILE_NAME);
    let at = record_start(&path, 2);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(at + 3)
        .unwrap();
    let cut = std::fs::read(&path).unwrap();
    let reader = FileSequenceStore::open_read_only(&dir.0).unwrap();
    let records = reader.records().unwrap();
    assert_eq!(sequences(&records, "INV-2026"), [1, 2]);
    assert_eq!(records[1].key.as_str(), "b");
    assert_eq!(std::fs::read(&path).unwrap(), cut, "a reader writes nothing");
    // Damage is reported to a reader as to a writer.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(at - 1)
        .unwrap();
    assert!(matches!(
        FileSequenceStore::open_read_only(&dir.0),
        Err(InvoiceError::Journal { .. })
    ));
}

#[test]
fn a_read_only_open_of_a_directory_without_a_store_is_an_error() {
    let dir = TempDir::new("read-only-none");
    std::fs::create_dir_all(&dir.0).unwrap();
    assert!(matches!(
        FileSequenceStore::open_read_only(&dir.0),
        Err(InvoiceError::Store { operation: "open", .. })
    ));
}

/// FNV-1a 64, as format 1 wrote it.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[test]
fn a_format_1_journal_is_upgraded_in_place_with_its_records() {
    let dir = TempDir::new("format-1");
    std::fs::create_dir_all(&dir.0).unwrap();
    let mut journal = Vec::new();
    for (n, id) in [(1, "a"), (2, "b")] {
        let json = format!(
            "{{\"series\":\"INV-2026\",\"sequence\":{n},\"key\":\"{id}\",\"body\":\"{{\\\"doc\\\":\\\"{id}\\\",\\\"n\\\":{n}}}\"}}"
        );
        journal.extend_from_slice(format!("{:016x} {json}\n", fnv(json.as_bytes())).as_bytes());
    }
    // A torn third line, as format 1 left it after a crash.
    journal.extend_from_slice(b"0123456789abcdef {\"series\":\"INV");
    std::fs::write(dir.0.join(JOURNAL_FILE_NAME), &journal).unwrap();
    assert!(
        FileSequenceStore::open_read_only(&dir.0).is_err(),
        "a reader does not upgrade"
    );
    {
        let store = FileSequenceStore::open(&dir.0).unwrap();
        let records = store.records().unwrap();
        assert_eq!(sequences(&records, "INV-2026"), [1, 2]);
        assert_eq!(records[1].body, "{\"doc\":\"b\",\"n\":2}");
        assert_eq!(commit(&store, "INV-2026", "c").unwrap(), 3);
    }
    // Upgraded: now truncation is detected.
    let path = dir.0.join(JOURNAL_FILE_NAME);
    let at = record_start(&path, 2);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(at)
        .unwrap();
    assert!(matches!(
        FileSequenceStore::open(&dir.0),
        Err(InvoiceError::Journal { .. })
    ));
}
