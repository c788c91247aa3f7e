//! The attacks of issue 14 on the durable store, each turned into a test: losing,
//! emptying or truncating journal segments must be detected (`Corrupt`, never "ok" with
//! fewer acknowledged transfers), and only a torn, never-acknowledged last record may be
//! cut — with bounded work.
//!
//! Each store is built twice where it matters: closed cleanly (the handle dropped), and
//! crashed (the storage dropped without its clean close, as after `kill -9`). The tests use
//! only what the store's public API has always had, so that they run against older formats
//! too (they failed there).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use paygo_credits::Credits;
use paygo_ledger::durable::{self, OpenOptions};
use paygo_ledger::{Account, AccountId, Event, Ledger, LedgerError, ManualClock, SharedLedger, Transfer, TransferId};

use paygo_testkit::store::{Crashing, TempDir};

const BATCH: u128 = 5;

fn setup() -> Vec<Event> {
    vec![
        Event::CreateAccount(Account::new(AccountId(1))),
        Event::CreateAccount(Account::balance(AccountId(2))),
    ]
}

fn batch(n: u128) -> Vec<Event> {
    (0..BATCH)
        .map(|k| {
            Event::CreateTransfer(Transfer::new(
                TransferId(1 + n * BATCH + k),
                AccountId(1),
                AccountId(2),
                Credits::new(1),
            ))
        })
        .collect()
}

/// How the store's writer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Closed,
    Crashed,
}

/// A store with `before` acknowledged batches, a snapshot (which starts a new segment) if
/// `two_segments`, then `after` more; returns the transfers acknowledged.
fn build(dir: &Path, end: End, two_segments: bool, before: u128, after: u128) -> u128 {
    let clock = ManualClock::new(1_000);
    let crashing = (end == End::Crashed).then(|| Crashing::open(dir));
    let shared: SharedLedger<Ledger, ManualClock> = match crashing {
        Some(c) => SharedLedger::with_storage(Box::new(c), Ledger::new, clock, &OpenOptions::default()).unwrap(),
        None => paygo_ledger::open_ledger(dir, clock, &OpenOptions::default()).unwrap(),
    };
    shared.submit(setup()).unwrap();
    for n in 0..before {
        assert!(shared.submit(batch(n)).unwrap().iter().all(|r| r.is_ok()));
    }
    if two_segments {
        shared.snapshot().unwrap();
    }
    for n in before..before + after {
        assert!(shared.submit(batch(n)).unwrap().iter().all(|r| r.is_ok()));
    }
    (before + after) * BATCH
}

fn transfers(l: &Ledger) -> u128 {
    l.transfers().count() as u128
}

/// Every way of opening the damaged store reports `Corrupt` naming a journal segment (or
/// the manifest), and a writable open changes nothing.
fn assert_detected(dir: &Path, acked: u128, attack: &str) {
    let files = |dir: &Path| {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .filter(|(name, _)| name != "LOCK")
            .collect();
        v.sort();
        v
    };
    let before = files(dir);
    match durable::load::<Ledger>(dir) {
        Err(LedgerError::Corrupt { file, .. }) => {
            assert!(
                file.contains("journal-") || file.contains("MANIFEST"),
                "{attack}: {file}"
            );
        }
        Ok((l, r)) => panic!(
            "{attack}: load said ok with {} of {acked} acknowledged transfers ({r:?})",
            transfers(&l)
        ),
        Err(e) => panic!("{attack}: load: {e}"),
    }
    match durable::verify::<Ledger>(dir) {
        Err(LedgerError::Corrupt { .. }) => {}
        Ok((l, _)) => panic!("{attack}: verify said ok with {} of {acked}", transfers(&l)),
        Err(e) => panic!("{attack}: verify: {e}"),
    }
    let opened = paygo_ledger::open_ledger(dir, ManualClock::new(5_000), &OpenOptions::default());
    assert!(
        matches!(opened, Err(LedgerError::Corrupt { .. })),
        "{attack}: {opened:?}"
    );
    assert!(files(dir) == before, "{attack}: a refused open changed the files");
}

fn newest_segment(dir: &TempDir) -> std::path::PathBuf {
    dir.files("journal-").pop().unwrap()
}

#[test]
fn deleting_the_newest_segment_is_detected() {
    for end in [End::Closed, End::Crashed] {
        let dir = TempDir::new("attack-delete");
        let acked = build(&dir.0, end, true, 20, 30);
        assert_eq!(dir.files("journal-").len(), 2, "{:?}", dir.names());
        std::fs::remove_file(newest_segment(&dir)).unwrap();
        assert_detected(&dir.0, acked, &format!("{end:?}, newest segment deleted"));
    }
}

#[test]
fn emptying_the_newest_segment_is_detected() {
    for end in [End::Closed, End::Crashed] {
        let dir = TempDir::new("attack-empty");
        let acked = build(&dir.0, end, true, 20, 30);
        std::fs::File::create(newest_segment(&dir)).unwrap();
        assert_detected(&dir.0, acked, &format!("{end:?}, newest segment emptied"));
    }
}

#[test]
fn truncating_the_newest_segment_is_detected() {
    for end in [End::Closed, End::Crashed] {
        for keep in [1, 2, 3] {
            let dir = TempDir::new("attack-truncate");
            let acked = build(&dir.0, end, true, 20, 30);
            let path = newest_segment(&dir);
            let len = std::fs::metadata(&path).unwrap().len();
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(len * keep / 4).unwrap();
            drop(file);
            assert_detected(&dir.0, acked, &format!("{end:?}, newest segment cut to {keep}/4"));
        }
    }
}

#[test]
fn deleting_the_journal_of_a_one_segment_store_is_detected_not_an_empty_ledger() {
    for end in [End::Closed, End::Crashed] {
        let dir = TempDir::new("attack-one-segment");
        let acked = build(&dir.0, end, false, 20, 0);
        let segments = dir.files("journal-");
        assert_eq!(segments.len(), 1);
        std::fs::remove_file(&segments[0]).unwrap();
        assert_detected(&dir.0, acked, &format!("{end:?}, the only segment deleted"));
    }
}

#[test]
fn truncating_a_segment_in_its_middle_is_corrupt_not_a_torn_tail() {
    for end in [End::Closed, End::Crashed] {
        // The older segment of two, and the only one of one.
        for two in [true, false] {
            let dir = TempDir::new("attack-middle");
            let acked = build(&dir.0, end, two, 40, if two { 10 } else { 0 });
            let path = dir.files("journal-")[0].clone();
            let len = std::fs::metadata(&path).unwrap().len();
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(len / 2).unwrap();
            drop(file);
            assert_detected(
                &dir.0,
                acked,
                &format!("{end:?}, two segments {two}, cut in the middle"),
            );
        }
    }
}

/// A crashed store whose last record was being written when it crashed (it was never
/// acknowledged): its bytes are damaged by `tear`, and the store must open with exactly
/// the acknowledged transfers, the torn record cut, and writing going on.
fn torn_last_record(name: &str, tear: impl Fn(&mut Vec<u8>, usize)) {
    let dir = TempDir::new(name);
    let acked = build(&dir.0, End::Crashed, false, 20, 0);
    // The record in flight: written, then the crash came before its reply.
    {
        let crashing = Crashing::open(&dir.0);
        let placements = crashing.placements.clone();
        crashing.track.store(true, Ordering::SeqCst);
        let shared = SharedLedger::with_storage(
            Box::new(crashing),
            Ledger::new,
            ManualClock::new(9_000),
            &OpenOptions::default(),
        )
        .unwrap();
        let _ = shared.submit(batch(999));
        let (path, start, _) = placements.lock().unwrap().last().cloned().unwrap();
        drop(shared);
        assert!(start > 0, "the record in flight started a segment");
        let mut bytes = std::fs::read(&path).unwrap();
        tear(&mut bytes, start as usize);
        std::fs::write(&path, &bytes).unwrap();
    }
    let (loaded, recovery) = durable::load::<Ledger>(&dir.0).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(transfers(&loaded), acked, "{name}: {recovery:?}");
    assert!(recovery.torn_bytes > 0, "{name}: {recovery:?}");
    loaded.check_invariants().unwrap();
    // Writable: the torn record is cut and writing goes on after the last whole record.
    {
        let shared = paygo_ledger::open_ledger(&dir.0, ManualClock::new(10_000), &OpenOptions::default()).unwrap();
        assert!(shared.submit(batch(500)).unwrap().iter().all(|r| r.is_ok()));
    }
    let (loaded, recovery) = durable::load::<Ledger>(&dir.0).unwrap();
    assert_eq!(transfers(&loaded), acked + BATCH, "{name}: {recovery:?}");
    assert_eq!(recovery.torn_bytes, 0, "{name}: the torn bytes were not cut");
}

#[test]
fn a_torn_last_record_whose_header_reads_as_zeros_is_cut() {
    torn_last_record("torn-zero-header", |bytes, start| {
        bytes[start..start + 64].fill(0);
    });
}

#[test]
fn a_torn_last_record_with_a_wrong_but_small_length_is_cut() {
    torn_last_record("torn-small-length", |bytes, start| {
        // The length's low byte torn: a shorter record that still fits in the file.
        bytes[start] = bytes[start].wrapping_sub(8);
    });
    torn_last_record("torn-length-zero", |bytes, start| {
        bytes[start..start + 4].fill(0);
    });
}

#[test]
fn a_torn_last_record_followed_by_a_zero_filled_extended_tail_is_cut() {
    torn_last_record("torn-zero-tail", |bytes, start| {
        // What some filesystems leave after a crash: the file extended, the data not
        // written (zeros where the record should be), and more zeros after.
        let len = bytes.len();
        bytes[start..].fill(0);
        bytes.resize(len + (4 << 20), 0);
    });
}

#[test]
fn a_large_zero_tail_past_the_journal_is_cut_without_reading_it() {
    let dir = TempDir::new("attack-huge-tail");
    let acked = build(&dir.0, End::Crashed, false, 20, 0);
    let path = newest_segment(&dir);
    let len = std::fs::metadata(&path).unwrap().len();
    // Sparse: 512 MiB of zeros that take no disk space (a format that reads the rest of
    // a segment into memory, or reserves room from a file's size, would take that much).
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len + (512 << 20)).unwrap();
    drop(file);
    let started = Instant::now();
    let (loaded, recovery) = durable::load::<Ledger>(&dir.0).unwrap();
    println!("a 512 MiB zero tail: {:.3} s", started.elapsed().as_secs_f64());
    assert_eq!(transfers(&loaded), acked);
    assert!(recovery.torn_bytes >= 512 << 20, "{recovery:?}");
    drop(paygo_ledger::open_ledger(&dir.0, ManualClock::new(1), &OpenOptions::default()).unwrap());
    assert!(std::fs::metadata(&path).unwrap().len() <= len, "the tail was not cut");
}

#[test]
fn a_damaged_length_in_a_large_segment_is_corruption_found_in_bounded_time() {
    let dir = TempDir::new("attack-length-byte");
    let crashing = Crashing::open(&dir.0);
    let (placements, track) = (crashing.placements.clone(), crashing.track.clone());
    track.store(false, Ordering::SeqCst);
    let shared = SharedLedger::with_storage(
        Box::new(crashing),
        Ledger::new,
        ManualClock::new(1),
        &OpenOptions::default(),
    )
    .unwrap();
    shared.submit(setup()).unwrap();
    // About 20 MiB of journal in one segment, the damaged record in its first half.
    let big = |n: u128| -> Vec<Event> {
        (0..2_000u128)
            .map(|k| {
                Event::CreateTransfer(Transfer::new(
                    TransferId(1 + n * 2_000 + k),
                    AccountId(1),
                    AccountId(2),
                    Credits::new(1),
                ))
            })
            .collect()
    };
    for n in 0..100 {
        track.store(n == 30, Ordering::SeqCst);
        shared.submit(big(n)).unwrap();
    }
    drop(shared); // a crash: not closed
    let (path, start, _) = placements.lock().unwrap()[0].clone();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[start as usize + 2] ^= 0x01; // one bit of the length's third byte
    std::fs::write(&path, &bytes).unwrap();
    let started = Instant::now();
    let loaded = durable::load::<Ledger>(&dir.0);
    println!(
        "one damaged length byte in a {} MiB segment: {:.3} s",
        bytes.len() >> 20,
        started.elapsed().as_secs_f64()
    );
    match loaded {
        Err(LedgerError::Corrupt { offset, .. }) => assert_eq!(offset, start),
        other => panic!("expected corruption at {start}, got {other:?}"),
    }
}
