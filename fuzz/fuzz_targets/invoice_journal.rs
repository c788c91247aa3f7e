//! The invoice sequence store's journal (`FileSequenceStore`): its header slots, record
//! lines, marker, the format-1 upgrade, and what opening decides about a tail or damage.
//! The store runs on an in-memory directory through its public `Storage` trait.
//!
//! Input: a mode byte. Mode 0 (bit 0 clear): a store written by the crate's own writer
//! (commits of series, ids and bodies from the input; some seals fail), then damage at
//! rest to its files. Mode 1: the rest of the input is a format-1 journal (one record line
//! after another, no slots, no marker), which opening upgrades.
//!
//! Properties:
//! - without damage the store opens, read-write and read-only, with exactly the records
//!   committed;
//! - after damage to bytes or files, a store that opens read-write has exactly the records
//!   committed (every one was acknowledged), or none if its marker was also lost (a store
//!   whose creation seemed interrupted); a line appended with a valid checksum may add one
//!   record after them; when the newest header slot was damaged the last record may be
//!   missing (the journal is then what a crash during the last commit leaves);
//! - the records of a store that opened are gapless per series; it reopens, read-write and
//!   read-only, to the same records; a commit then takes the next number and survives a
//!   reopen.

#![no_main]

use libfuzzer_sys::fuzz_target;
use paygo_fuzz::Bytes;
use paygo_fuzz::invoice_mem::MemDisk;
use paygo_invoice::{
    DocumentId, FileSequenceStore, InvoiceError, JOURNAL_FILE_NAME, MemorySequenceStore, RECORD_MAX_BYTES,
    SequenceRecord, SequenceStore, SeriesName,
};

const MARKER: &str = "sequence.store";
/// Where the second header slot and the records start (`docs/invoice.md`); only used to
/// aim damage, so a change in the format makes the target less sharp, not wrong.
const SLOT_BYTES: u64 = RECORD_MAX_BYTES as u64 + (64 << 10);
const RECORDS_START: u64 = 2 * SLOT_BYTES;
const SERIES: [&str; 3] = ["INV-2026", "CN-2026", "A/1"];

/// FNV-1a 64, the checksum of a record line (`docs/invoice.md`).
fn fnv(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn line(json: &[u8]) -> Vec<u8> {
    let mut out = format!("{:016x} ", fnv(json)).into_bytes();
    out.extend_from_slice(json);
    out.push(b'\n');
    out
}

fn records(store: &FileSequenceStore) -> Vec<SequenceRecord> {
    store
        .records()
        .unwrap_or_else(|e| panic!("an open store cannot list its records: {e}"))
}

fn gapless(records: &[SequenceRecord]) {
    if let Err(e) = MemorySequenceStore::from_records(records.to_vec()) {
        panic!("the records of an open store have a gap: {e}");
    }
}

/// A document id from input bytes (printable ASCII, 1 to 64 characters).
fn key(b: &mut Bytes<'_>) -> DocumentId {
    let n = usize::from(b.u8() % 12) + 1;
    let raw = b.take(n);
    let text: String = raw.iter().map(|c| char::from(b'!' + c % 94)).collect();
    DocumentId::new(&text).unwrap_or_else(|_| DocumentId::new("k").unwrap())
}

/// What the damage phase did.
#[derive(Debug, Default)]
#[allow(clippy::struct_excessive_bools)] // independent facts about the damage done
struct Damage {
    any: bool,
    /// A line with a valid checksum was appended: it may be taken as one more record.
    valid_line: bool,
    /// The marker was removed or changed.
    marker: bool,
    /// The newest header slot was changed: with the last line damaged too, the journal is
    /// then what a crash in the middle of the last commit leaves (its line and slot torn
    /// before the sync), which opening rightly reads as a commit that never happened.
    newest_slot: bool,
}

fn damage(disk: &MemDisk, b: &mut Bytes<'_>, d: &mut Damage, count: u64) {
    let op = b.u8();
    let len = disk.len(JOURNAL_FILE_NAME).unwrap_or(0);
    let base = match b.u8() % 5 {
        0 => 0,
        1 => SLOT_BYTES,
        2 => RECORDS_START,
        3 => len,
        _ => len / 2,
    };
    let delta = i64::from(b.u16().cast_signed());
    let at = base.saturating_add_signed(delta).min(len);
    paygo_fuzz::trace!("damage op {} at {at} (journal {len} bytes)", op % 9);
    // Whether [from, to) reaches into the newest slot.
    let slot = (count % 2) * SLOT_BYTES;
    let mut touch = |from: u64, to: u64| d.newest_slot |= from < slot + SLOT_BYTES && to > slot;
    match op % 9 {
        0 | 1 => {
            let x = b.u8();
            disk.change(JOURNAL_FILE_NAME, |c| {
                let mut byte = [0u8];
                if c.read(at, &mut byte) == 1 {
                    touch(at, at + 1);
                    byte[0] ^= if x == 0 { 1 } else { x };
                    c.write(at, &byte);
                }
            });
        }
        2 => {
            touch(at, u64::MAX);
            disk.change(JOURNAL_FILE_NAME, |c| c.set_len(at));
        }
        3 => {
            let n = usize::from(b.u8()) + 1;
            disk.change(JOURNAL_FILE_NAME, |c| {
                let end = (at + n as u64).min(c.len());
                touch(at, end);
                c.write(at, &vec![0u8; usize::try_from(end - at).unwrap()]);
            });
        }
        4 => {
            let bytes = b.piece();
            disk.change(JOURNAL_FILE_NAME, |c| c.write(c.len(), bytes));
        }
        5 => {
            // A whole line with a valid checksum over JSON from the input.
            let bytes = line(b.piece());
            disk.change(JOURNAL_FILE_NAME, |c| c.write(c.len(), &bytes));
            d.valid_line = true;
        }
        6 => {
            disk.change(JOURNAL_FILE_NAME, |c| c.set_len(c.len() + u64::from(b.u16())));
        }
        7 => {
            disk.put(MARKER, b.piece());
            d.marker = true;
        }
        _ => {
            if b.u8() & 1 == 0 {
                disk.delete(MARKER);
                d.marker = true;
            } else {
                disk.delete(JOURNAL_FILE_NAME);
            }
        }
    }
    d.any = true;
}

/// The checks on a store that opened read-write with `found` records.
fn reopen_and_commit(disk: &MemDisk, found: &[SequenceRecord]) {
    gapless(found);
    let read_only = FileSequenceStore::open_read_only_with(disk.clone())
        .unwrap_or_else(|e| panic!("refused read-only after opening read-write: {e}"));
    assert_eq!(records(&read_only), found, "read-only sees other records");
    drop(read_only);
    let store = FileSequenceStore::open_with(disk.clone()).unwrap_or_else(|e| panic!("refused on reopening: {e}"));
    assert_eq!(records(&store), found, "reopening finds other records");
    let series = SeriesName::new(SERIES[0]).unwrap();
    let last = store.last(&series).unwrap();
    let n = store
        .commit(&series, &DocumentId::new("after-reopen").unwrap(), &mut |n| {
            Ok(format!("{{\"n\":{n}}}"))
        })
        .unwrap_or_else(|e| panic!("a commit after reopening fails: {e}"));
    assert_eq!(n, last + 1, "a commit after reopening skips or reuses a number");
    drop(store);
    let store = FileSequenceStore::open_with(disk.clone()).unwrap_or_else(|e| panic!("refused after a commit: {e}"));
    let after = records(&store);
    assert_eq!(&after[..after.len() - 1], found, "a commit changed earlier records");
    assert_eq!(after.last().map(|r| r.sequence), Some(n));
}

fn written(b: &mut Bytes<'_>) {
    let disk = MemDisk::new();
    let mut expected: Vec<SequenceRecord> = Vec::new();
    {
        let mut store = FileSequenceStore::open_with(disk.clone()).expect("a new store opens");
        let mut ops = 0;
        while !b.is_empty() && ops < 24 {
            ops += 1;
            let op = b.u8();
            if op >= 0xf0 {
                break;
            }
            if op >= 0xe0 {
                paygo_fuzz::trace!("reopen");
                drop(store);
                store = FileSequenceStore::open_with(disk.clone()).expect("the writer's store reopens");
                assert_eq!(
                    records(&store),
                    expected,
                    "the writer's store reopens with other records"
                );
                continue;
            }
            let series = SeriesName::new(SERIES[usize::from(op) % SERIES.len()]).unwrap();
            let key = key(b);
            let body = String::from_utf8_lossy(b.piece()).into_owned();
            let fail = op & 0x10 != 0;
            let result = store.commit(&series, &key, &mut |_| {
                if fail {
                    Err(InvoiceError::LockPoisoned)
                } else {
                    Ok(body.clone())
                }
            });
            paygo_fuzz::trace!(
                "commit {series} {key:?} ({} bytes, fails: {fail}): {result:?}",
                body.len()
            );
            match result {
                Ok(n) => expected.push(SequenceRecord {
                    series,
                    sequence: n,
                    key,
                    body,
                }),
                Err(e) => assert!(fail, "a commit failed: {e}"),
            }
        }
    }
    let mut d = Damage::default();
    let mut damages = 0;
    while !b.is_empty() && damages < 6 {
        damages += 1;
        damage(&disk, b, &mut d, expected.len() as u64);
    }
    // Read-only first, on a copy: it must not write, and must agree with the writer.
    let before = disk.copy();
    let read_only = FileSequenceStore::open_read_only_with(before.clone()).map(|s| records(&s));
    if !d.any {
        assert_eq!(
            read_only.as_ref().ok(),
            Some(&expected),
            "read-only on an undamaged store"
        );
    }
    let opened = FileSequenceStore::open_with(disk.clone());
    let store = match opened {
        Ok(store) => store,
        Err(e) => {
            assert!(d.any, "an undamaged store is refused: {e}");
            return;
        }
    };
    let found = records(&store);
    drop(store);
    paygo_fuzz::trace!("read-only open: {read_only:?}\nread-write open: {found:?}");
    let torn_last = d.newest_slot && !expected.is_empty() && found[..] == expected[..expected.len() - 1];
    let same = found == expected
        || torn_last
        || (d.valid_line && found.len() == expected.len() + 1 && found[..expected.len()] == expected[..])
        || (d.marker && found.is_empty());
    assert!(
        same,
        "a store that opened lost or changed acknowledged records: {found:?}, expected {expected:?}"
    );
    if let Ok(seen) = &read_only {
        // A reader may recover one record more than a writer keeps only in one case: a
        // valid line appended after the acknowledged ones.
        assert!(
            seen == &found || d.valid_line || d.marker || torn_last,
            "read-only and read-write opens disagree: {seen:?} and {found:?}"
        );
    }
    reopen_and_commit(&disk, &found);
}

fn format_1(bytes: &[u8]) {
    let disk = MemDisk::new();
    disk.put(JOURNAL_FILE_NAME, bytes);
    let Ok(store) = FileSequenceStore::open_with(disk.clone()) else {
        return;
    };
    let found = records(&store);
    drop(store);
    reopen_and_commit(&disk, &found);
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    if b.u8() & 1 == 0 {
        written(&mut b);
    } else {
        format_1(b.rest());
    }
});
