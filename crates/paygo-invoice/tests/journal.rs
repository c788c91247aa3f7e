//! Attacks on the journal file of the file sequence store (issue 14, point 2): whatever is
//! done to `sequence.journal`, a number already acknowledged is never handed out again and
//! no acknowledged document is silently lost: the store either recovers it or refuses to
//! open.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

#[path = "support/store.rs"]
#[allow(dead_code)]
mod store_support;

use std::path::Path;

use paygo_invoice::{FileSequenceStore, InvoiceError, JOURNAL_FILE_NAME, SequenceStore};
use store_support::{TempDir, commit, record_start, sequences, series};

const ISSUED: u64 = 60;

/// A store with invoices 1 to `ISSUED` of series INV-2026, each acknowledged, then closed.
fn issued(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    let store = FileSequenceStore::open(&dir.0).unwrap();
    for n in 1..=ISSUED {
        assert_eq!(commit(&store, "INV-2026", &format!("doc-{n}")).unwrap(), n);
    }
    dir
}

fn journal(dir: &TempDir) -> std::path::PathBuf {
    dir.0.join(JOURNAL_FILE_NAME)
}

fn cut(path: &Path, len: u64) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_len(len).unwrap();
    file.sync_all().unwrap();
}

/// What every attack must leave: the store refuses to open (the damage is reported), or it
/// opens with every acknowledged number and document and numbers on after them.
fn never_reissued(dir: &TempDir) -> Result<(), InvoiceError> {
    let store = FileSequenceStore::open(&dir.0)?;
    let records = store.records().unwrap();
    assert_eq!(
        sequences(&records, "INV-2026"),
        (1..=ISSUED).collect::<Vec<_>>(),
        "an acknowledged number is missing"
    );
    for record in &records {
        assert_eq!(record.key.as_str(), format!("doc-{}", record.sequence));
    }
    assert_eq!(store.last(&series("INV-2026")).unwrap(), ISSUED);
    assert_eq!(commit(&store, "INV-2026", "after").unwrap(), ISSUED + 1);
    Ok(())
}

#[test]
fn a_journal_cut_back_at_a_line_end_is_refused() {
    let dir = issued("cut-line-end");
    let at = record_start(&journal(&dir), 41);
    cut(&journal(&dir), at);
    let error = never_reissued(&dir).expect_err("40 of 60 acknowledged records are gone");
    assert!(matches!(error, InvoiceError::Journal { .. }), "{error}");
}

#[test]
fn a_journal_cut_back_inside_a_line_is_refused() {
    let dir = issued("cut-mid-line");
    let at = record_start(&journal(&dir), 41) + 9;
    cut(&journal(&dir), at);
    let error = never_reissued(&dir).expect_err("40 of 60 acknowledged records are gone");
    assert!(matches!(error, InvoiceError::Journal { .. }), "{error}");
}

#[test]
fn an_emptied_journal_is_refused() {
    let dir = issued("empty");
    cut(&journal(&dir), 0);
    let error = never_reissued(&dir).expect_err("every acknowledged record is gone");
    assert!(matches!(error, InvoiceError::Journal { .. }), "{error}");
}

#[test]
fn a_deleted_journal_is_refused() {
    let dir = issued("deleted");
    std::fs::remove_file(journal(&dir)).unwrap();
    let error = never_reissued(&dir).expect_err("every acknowledged record is gone");
    assert!(matches!(error, InvoiceError::Journal { .. }), "{error}");
}

#[test]
fn removing_only_the_final_newline_reissues_nothing() {
    let dir = issued("final-newline");
    let len = std::fs::metadata(journal(&dir)).unwrap().len();
    cut(&journal(&dir), len - 1);
    never_reissued(&dir).unwrap();
}

#[test]
fn cutting_the_last_acknowledged_record_anywhere_reissues_nothing() {
    for (i, into) in [0u64, 1, 17, 18, 100].into_iter().enumerate() {
        let dir = issued(&format!("last-record-{i}"));
        let at = record_start(&journal(&dir), ISSUED) + into;
        cut(&journal(&dir), at);
        // The last record is acknowledged: it is recovered, or the store refuses to open.
        if let Err(error) = never_reissued(&dir) {
            assert!(matches!(error, InvoiceError::Journal { .. }), "{error}");
        }
    }
}

#[test]
fn zeroing_the_last_acknowledged_record_reissues_nothing() {
    let dir = issued("zero-last");
    let at = record_start(&journal(&dir), ISSUED);
    let len = std::fs::metadata(journal(&dir)).unwrap().len();
    let mut bytes = std::fs::read(journal(&dir)).unwrap();
    bytes[at as usize..len as usize].fill(0);
    std::fs::write(journal(&dir), &bytes).unwrap();
    if let Err(error) = never_reissued(&dir) {
        assert!(matches!(error, InvoiceError::Journal { .. }), "{error}");
    }
}
