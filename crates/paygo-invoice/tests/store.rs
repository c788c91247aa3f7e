//! The sequence stores: gapless numbers across threads, failures, torn writes and crashes.
//!
//! The crash tests run this test binary again as a child process (the `crash_child` test,
//! which does nothing unless `PAYGO_INVOICE_CRASH_DIR` is set), let it die at a chosen
//! point (an abort between taking a number and recording it, or a SIGKILL at an arbitrary
//! moment of a loop of issues), and check what a restart finds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

#[path = "support/common.rs"]
#[allow(dead_code)]
mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::*;
use paygo_invoice::{
    DocumentId, FileSequenceStore, InvoiceError, JOURNAL_FILE_NAME, MemorySequenceStore, SequenceRecord, SequenceStore,
    SeriesName,
};

/// A fresh directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("paygo-invoice-{name}-{}-{nanos}", std::process::id()));
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn series(name: &str) -> SeriesName {
    SeriesName::new(name).unwrap()
}

fn key(text: &str) -> DocumentId {
    DocumentId::new(text).unwrap()
}

fn commit(store: &dyn SequenceStore, series_name: &str, id: &str) -> Result<u64, InvoiceError> {
    store.commit(&series(series_name), &key(id), &mut |n| {
        Ok(format!("{{\"doc\":\"{id}\",\"n\":{n}}}"))
    })
}

fn sequences(records: &[SequenceRecord], series_name: &str) -> Vec<u64> {
    records
        .iter()
        .filter(|r| r.series.as_str() == series_name)
        .map(|r| r.sequence)
        .collect()
}

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

const DIR_VAR: &str = "PAYGO_INVOICE_CRASH_DIR";
const MODE_VAR: &str = "PAYGO_INVOICE_CRASH_MODE";

/// The child side: does nothing in a normal test run.
#[test]
fn crash_child() {
    let (Some(dir), Some(mode)) = (std::env::var_os(DIR_VAR), std::env::var(MODE_VAR).ok()) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let stdout = std::io::stdout();
    match mode.as_str() {
        // Take numbers 1 to 3 normally; take number 4 and die before it is recorded.
        "abort-in-seal" => {
            let store = FileSequenceStore::open(&dir).unwrap();
            for id in ["a", "b", "c"] {
                commit(&store, "INV-2026", id).unwrap();
            }
            let _ = store.commit(&series("INV-2026"), &key("d"), &mut |_| std::process::abort());
        }
        // Issue invoices in a loop, printing each once it is returned, until killed.
        "issue-forever" => {
            let invoicing = invoicing(FileSequenceStore::open(&dir).unwrap());
            for i in 0.. {
                let doc = invoicing
                    .issue(&us_draft(&format!("loop-{i}"), "1.00"), day(2))
                    .unwrap();
                let mut out = stdout.lock();
                writeln!(out, "ISSUED {} {}", doc.id(), doc.number().sequence()).unwrap();
                out.flush().unwrap();
            }
        }
        other => panic!("unknown mode {other}"),
    }
}

fn child(dir: &Path, mode: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(DIR_VAR, dir)
        .env(MODE_VAR, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_crash_between_taking_and_recording_a_number_leaves_no_gap_and_no_reuse() {
    let dir = TempDir::new("abort");
    let status = child(&dir.0, "abort-in-seal").wait().unwrap();
    assert!(!status.success(), "the child must have died");
    let store = FileSequenceStore::open(&dir.0).unwrap();
    // Number 4 was taken but never recorded: it is not consumed (no gap)...
    assert_eq!(store.last(&series("INV-2026")).unwrap(), 3);
    // ...and the next document gets it, the only one ever to carry it (no reuse).
    assert_eq!(commit(&store, "INV-2026", "e").unwrap(), 4);
    let records = store.records().unwrap();
    assert_eq!(sequences(&records, "INV-2026"), [1, 2, 3, 4]);
    assert_eq!(records[3].key.as_str(), "e");
}

#[test]
fn a_kill_at_any_moment_keeps_every_returned_invoice_and_leaves_no_gap() {
    for round in 0..3 {
        let dir = TempDir::new(&format!("kill{round}"));
        let mut process = child(&dir.0, "issue-forever");
        let mut lines = BufReader::new(process.stdout.take().unwrap()).lines();
        // Let it issue a few (more each round), then kill it wherever it is.
        let mut acknowledged = Vec::new();
        while acknowledged.len() < 3 + round * 7 {
            // The test harness prints its own lines too.
            let line = lines.next().unwrap().unwrap();
            let Some((id, n)) = line.strip_prefix("ISSUED ").and_then(|l| l.split_once(' ')) else {
                continue;
            };
            acknowledged.push((id.to_owned(), n.parse::<u64>().unwrap()));
        }
        process.kill().unwrap();
        process.wait().unwrap();

        let invoicing = invoicing(FileSequenceStore::open(&dir.0).unwrap());
        let docs = invoicing.documents().unwrap();
        let numbers: Vec<u64> = docs.iter().map(|d| d.number().sequence()).collect();
        assert_eq!(numbers, (1..=docs.len() as u64).collect::<Vec<_>>(), "gapless");
        assert!(docs.len() >= acknowledged.len());
        for (id, n) in &acknowledged {
            let doc = invoicing
                .get_by_id(&key(id))
                .unwrap()
                .expect("an acknowledged invoice is durable");
            assert_eq!(doc.number().sequence(), *n);
        }
        // Issued but not yet acknowledged when killed: found by id, never issued again.
        for doc in &docs[acknowledged.len()..] {
            let again = invoicing.issue(&us_draft(doc.id().as_str(), "1.00"), day(2));
            assert!(matches!(again, Err(InvoiceError::AlreadyIssued { .. })));
        }
        let next = invoicing.issue(&us_draft("after", "1.00"), day(2)).unwrap();
        assert_eq!(next.number().sequence(), docs.len() as u64 + 1);
    }
}

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
