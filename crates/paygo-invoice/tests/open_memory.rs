//! Opening a large journal takes memory bounded by the largest record, not by the journal
//! (issue 14, point 5: a 120 MB journal took 238 MB to open).
//!
//! The store is opened in a child process (this test binary run again, as in
//! `tests/crash.rs`), which reports its peak resident memory (`VmHWM` in
//! `/proc/self/status`) before and after the open: a fresh process, so the peak belongs to
//! the open. Linux only; elsewhere the test says it is skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

#[path = "support/store.rs"]
#[allow(dead_code)]
mod store_support;

use std::io::Write;
use std::process::Command;

use paygo_invoice::{FileSequenceStore, JOURNAL_FILE_NAME, SequenceStore};
use store_support::{TempDir, key, series};

const DIR_VAR: &str = "PAYGO_INVOICE_OPEN_MEMORY_DIR";
const RECORDS: u64 = 400;

/// Peak resident set size of this process in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The child side: does nothing in a normal test run.
#[test]
fn open_child() {
    let Some(dir) = std::env::var_os(DIR_VAR) else {
        return;
    };
    let before = peak_rss().unwrap();
    let store = FileSequenceStore::open(&dir).unwrap();
    let after = peak_rss().unwrap();
    assert_eq!(store.last(&series("INV-2026")).unwrap(), RECORDS);
    let mut out = std::io::stdout().lock();
    writeln!(out, "PEAK {before} {after}").unwrap();
    out.flush().unwrap();
}

#[test]
fn opening_a_large_journal_takes_bounded_memory() {
    if peak_rss().is_none() {
        println!("skipped: no /proc/self/status to read the peak resident memory from");
        return;
    }
    let dir = TempDir::new("open-memory");
    // 400 records of 100 KB: a 40 MB journal.
    let body = "x".repeat(100_000);
    {
        let store = FileSequenceStore::open(&dir.0).unwrap();
        for n in 0..RECORDS {
            store
                .commit(&series("INV-2026"), &key(&format!("d{n}")), &mut |_| {
                    Ok(format!("\"{body}\""))
                })
                .unwrap();
        }
    }
    let journal_bytes = std::fs::metadata(dir.0.join(JOURNAL_FILE_NAME)).unwrap().len();
    assert!(journal_bytes > 40_000_000, "{journal_bytes}");
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "open_child", "--nocapture", "--test-threads=1"])
        .env(DIR_VAR, &dir.0)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let line = stdout.lines().find_map(|l| l.split("PEAK ").nth(1)).unwrap();
    let (before, after) = line.split_once(' ').unwrap();
    let (before, after): (u64, u64) = (before.parse().unwrap(), after.parse().unwrap());
    let grown = after.saturating_sub(before);
    println!("opening a {journal_bytes}-byte journal raised the peak resident memory by {grown} bytes");
    assert!(
        grown < 8_000_000,
        "opening a {journal_bytes}-byte journal raised the peak resident memory by {grown} bytes"
    );
}
