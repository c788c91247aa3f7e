//! Crashes of the file sequence store.
//!
//! These tests run this test binary again as a child process (the `crash_child` test,
//! which does nothing unless `PAYGO_INVOICE_CRASH_DIR` is set), let it die at a chosen
//! point (an abort between taking a number and recording it, or a SIGKILL at an arbitrary
//! moment of a loop of issues), and check what a restart finds. They live in a binary of
//! their own: a child forked while another test has a journal open holds a copy of that
//! file's descriptor (and so its lock) until it execs, which would make a reopen in the
//! other test fail now and then.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

#[path = "support/common.rs"]
#[allow(dead_code)]
mod common;
#[path = "support/store.rs"]
#[allow(dead_code)]
mod store_support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use paygo_invoice::{FileSequenceStore, InvoiceError, SequenceStore};
use store_support::{TempDir, commit, key, sequences, series};

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
