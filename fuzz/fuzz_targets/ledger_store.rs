//! The ledger's store on disk (`FileStore`): the manifest, the journal segments' and
//! records' framing, snapshots, and what recovery decides about damage.
//!
//! A real store is written in a directory (on `/dev/shm` when it exists) by the crate's own
//! writer, a durable handle over a `FileStore`; the input says what to submit and when to
//! snapshot, whether the writer closes the store or crashes (it is dropped without its
//! close), then how to damage the files. The store is then opened as a service would.
//!
//! Input: a settings byte (bit 0: ledger or billing; bits 1-2: segment size; bits 3-4:
//! automatic snapshots; bit 5: crash instead of close; bit 6: old segments archived), then
//! operations, each an opcode
//! and its bytes (see `Op`).
//!
//! Properties:
//! - without damage the store opens (read-write, read-only and audited) to exactly the
//!   state the writer reached;
//! - after damage to the files (not the manifest's contents) a store that opens has that
//!   state, or after a crash possibly the state before the last turn (a torn last record),
//!   or, after a crash, the state of an earlier turn when every record after it, in the
//!   newest segment, was damaged: a record whose header is lost has no known length, so
//!   what follows it cannot be told from the later sectors of a torn last record
//!   (`docs/ledger.md`, "Not detected");
//! - a store that opened reopens to the same state and head, read-only and audited too.

#![no_main]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use paygo_billing::Billing;
use paygo_fuzz::Bytes;
use paygo_fuzz::ledger_mem::{encode, gen_command, gen_event, new_billing};
use paygo_ledger::durable::{self, Durable, FileStore, Head, Loaded, OpenOptions, Recovery, Storage};
use paygo_ledger::{Clock, Ledger, LedgerError, ManualClock, SharedLedger};

const OPS_MAX: usize = 48;

/// A `FileStore` whose close is skipped unless `close` is set: dropping the handle then
/// leaves the store as a crash would (every record synced, the manifest not closed).
#[derive(Debug)]
struct Crashable {
    inner: FileStore,
    close: Arc<AtomicBool>,
}

impl Storage for Crashable {
    fn load(&mut self, visit: &mut dyn FnMut(Loaded<'_>) -> Result<(), LedgerError>) -> Result<Recovery, LedgerError> {
        self.inner.load(visit)
    }
    fn append(&mut self, payload: &[u8]) -> Result<(), LedgerError> {
        self.inner.append(payload)
    }
    fn save_snapshot(&mut self, state: &[u8]) -> Result<(), LedgerError> {
        self.inner.save_snapshot(state)
    }
    fn head(&self) -> Head {
        self.inner.head()
    }
    fn bytes_since_snapshot(&self) -> u64 {
        self.inner.bytes_since_snapshot()
    }
    fn close(&mut self) -> Result<(), LedgerError> {
        if self.close.load(Ordering::Relaxed) {
            self.inner.close()
        } else {
            Ok(())
        }
    }
}

/// A clock the target moves while the handle holds a clone.
#[derive(Debug, Clone)]
struct SharedClock(Arc<AtomicU64>);

impl Clock for SharedClock {
    fn now_ns(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A fresh directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("paygo-fuzz-store-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The files of the store, sorted, without the lock.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|it| it.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    names.retain(|p| p.is_file() && p.file_name().is_some_and(|n| n != "LOCK"));
    names.sort();
    names
}

/// How a damage changes what may be recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Damage {
    None,
    /// Bytes of the files changed: recovery must refuse, or find the state written.
    Files,
    /// The manifest's contents were rewritten with a valid checksum (not damage a disk
    /// does): recovery may decide anything, consistently.
    Forged,
}

/// Rewrites a manifest line chosen by the input (a number in it, its removal, a copy, or
/// text from the input), then its checksum line (`docs/ledger.md`).
fn forge_manifest(dir: &Path, b: &mut Bytes<'_>) -> bool {
    let path = dir.join("MANIFEST");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return false;
    };
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.retain(|l| !l.starts_with("crc32c: "));
    if lines.is_empty() {
        return false;
    }
    let at = usize::from(b.u8()) % lines.len();
    let value = match b.u8() % 4 {
        0 => u64::from(b.u8()),
        1 => u64::from(b.u16()),
        2 => b.u64(),
        _ => 4096 * u64::from(b.u8()),
    };
    let line = &mut lines[at];
    match b.u8() % 5 {
        // Remove the line.
        0 => {
            lines.remove(at);
        }
        // Replace its last number.
        1 => {
            if let Some((head, _)) = line.rsplit_once(' ') {
                *line = format!("{head} {value}");
            }
        }
        // Replace one of its fields after the name.
        2 => {
            let mut parts: Vec<String> = line.split(' ').map(str::to_owned).collect();
            if parts.len() >= 2 {
                let i = 1 + usize::from(b.u8()) % (parts.len() - 1);
                parts[i] = value.to_string();
                *line = parts.join(" ");
            }
        }
        // Replace it with text from the input (any lines: the manifest's grammar).
        4 => {
            *line = String::from_utf8_lossy(b.piece()).into_owned();
        }
        // Close or reopen it.
        _ => {
            if line.starts_with("closed: ") {
                let closed = if line.ends_with("yes") {
                    "closed: no"
                } else {
                    "closed: yes"
                };
                line.clear();
                line.push_str(closed);
            } else {
                let copy = line.clone();
                lines.insert(at, copy);
            }
        }
    }
    let mut body = String::new();
    for l in &lines {
        body.push_str(l);
        body.push('\n');
    }
    let crc = durable::crc32c(body.as_bytes());
    let _ = writeln!(body, "crc32c: {crc:08x}");
    std::fs::write(&path, body).is_ok()
}

/// Applies one damage operation to the files.
fn damage(dir: &Path, op: u8, b: &mut Bytes<'_>) -> Damage {
    if op % 8 == 7 {
        return if forge_manifest(dir, b) {
            Damage::Forged
        } else {
            Damage::None
        };
    }
    let list = files(dir);
    if list.is_empty() {
        return Damage::None;
    }
    let path = &list[usize::from(b.u8()) % list.len()];
    let Ok(mut bytes) = std::fs::read(path) else {
        return Damage::None;
    };
    let len = bytes.len();
    // Offsets near the end of a file are as likely as near its start.
    let raw = usize::from(b.u16());
    let offset = if raw & 1 == 0 {
        (raw >> 1) % (len + 1)
    } else {
        len.saturating_sub((raw >> 1) % (len + 1))
    };
    match op % 8 {
        0 | 1 => {
            if offset < len {
                let x = b.u8();
                bytes[offset] ^= if x == 0 { 1 } else { x };
            }
        }
        2 => bytes.truncate(offset),
        3 => {
            let n = usize::from(b.u8()) + 1;
            for byte in bytes.iter_mut().skip(offset).take(n) {
                *byte = 0;
            }
        }
        4 => bytes.extend_from_slice(b.piece()),
        5 => {
            let _ = std::fs::remove_file(path);
            return Damage::Files;
        }
        _ => {
            // A copy under another name of the store's: a leftover of a crash or a stray.
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let other = match b.u8() % 4 {
                0 => format!("{name}.tmp"),
                1 => "journal-00000000000000000099.log".to_owned(),
                2 => "snapshot-00000000000000000099.snap".to_owned(),
                _ => "snapshot-00000000000000000000.snap".to_owned(),
            };
            let _ = std::fs::write(dir.join(other), &bytes);
            return Damage::Files;
        }
    }
    let _ = std::fs::write(path, &bytes);
    Damage::Files
}

/// The state and head of a store opened for writing, closed again when this returns.
fn open_rw<M: Durable>(dir: &Path, init: fn() -> M) -> Result<(Vec<u8>, Head, bool), LedgerError> {
    let shared = SharedLedger::open(dir, init, ManualClock::new(0), &OpenOptions::default())?;
    let state = shared.read(encode).expect("the machine panicked");
    let head = shared
        .head()
        .expect("the machine panicked")
        .expect("a durable handle has a head");
    let fresh = shared.recovery().is_some_and(|r| r.fresh);
    Ok((state, head, fresh))
}

/// The records a handle has written (its head).
fn records_of<M: Durable, C: Clock>(shared: &SharedLedger<M, C>) -> u64 {
    shared.head().ok().flatten().map_or(0, |h| h.records)
}

/// What the writer left: the state after its last turn and, if any, before it; and the
/// state at each head (records written) it reached.
struct Written {
    last: Vec<u8>,
    before_last: Option<Vec<u8>>,
    by_records: Vec<(u64, Vec<u8>)>,
}

/// The records of the newest journal segment as written: (seq, start, end) in the file, and
/// the file's path and bytes.
struct Newest {
    path: PathBuf,
    bytes: Vec<u8>,
    records: Vec<(u64, usize, usize)>,
}

/// Reads the newest segment's records by their headers (`docs/ledger.md`: a 64-byte segment
/// header, then records of a 52-byte header and the payload).
fn newest_segment(dir: &Path) -> Option<Newest> {
    let path = files(dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("journal-") && n.ends_with(".log"))
        })
        .max()?;
    let bytes = std::fs::read(&path).ok()?;
    let mut records = Vec::new();
    let mut at = 64;
    while at + 52 <= bytes.len() {
        let header = &bytes[at..at + 52];
        let crc = u32::from_le_bytes(header[48..52].try_into().ok()?);
        if durable::crc32c(&header[..48]) != crc {
            break;
        }
        let len = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
        let seq = u64::from_le_bytes(header[8..16].try_into().ok()?);
        let end = at + 52 + len;
        if end > bytes.len() {
            break;
        }
        records.push((seq, at, end));
        at = end;
    }
    Some(Newest { path, bytes, records })
}

/// Whether every record of `newest` from seq `from` on was changed by the damage, and the
/// newest segment holds seq `from`.
fn all_damaged_from(newest: &Newest, from: u64) -> bool {
    let now = std::fs::read(&newest.path).unwrap_or_default();
    let mut cut = newest.records.iter().filter(|(seq, _, _)| *seq >= from).peekable();
    if cut.peek().is_none_or(|(seq, _, _)| *seq != from) {
        return false;
    }
    cut.all(|&(_, start, end)| now.get(start..end) != newest.bytes.get(start..end))
}

/// Writes the store with the crate's writer, as the input says, then closes it or crashes.
fn write<M: Durable>(
    dir: &Path,
    settings: u8,
    b: &mut Bytes<'_>,
    init: fn() -> M,
    command: fn(&mut Bytes<'_>) -> M::Command,
) -> Written {
    let segment_bytes = 4096 << (2 * ((settings >> 1) & 3));
    let auto = match (settings >> 3) & 3 {
        0 => None,
        1 => Some(256),
        2 => Some(2048),
        _ => Some(16_384),
    };
    let close = Arc::new(AtomicBool::new(settings & 0x20 == 0));
    let clock = SharedClock(Arc::new(AtomicU64::new(1_000)));
    let archive = settings & 0x40 != 0;
    let store = FileStore::open(dir, M::KIND, true)
        .expect("a new store")
        .segment_bytes(segment_bytes)
        .archive_journal(archive);
    let options = OpenOptions {
        snapshot_journal_bytes: auto,
        segment_bytes,
        archive_journal: archive,
    };
    let storage = Crashable {
        inner: store,
        close: Arc::clone(&close),
    };
    let shared =
        SharedLedger::with_storage(Box::new(storage), init, clock.clone(), &options).expect("a new store opens");
    // The states after each turn; the first is the new machine's.
    let mut states = vec![shared.read(encode).expect("the machine panicked")];
    let mut by_records = vec![(records_of(&shared), states[0].clone())];
    let mut ops = 0;
    while !b.is_empty() && ops < OPS_MAX {
        ops += 1;
        let op = b.u8();
        match op >> 5 {
            0..=3 => {
                let n = usize::from(op & 0x1f) + 1;
                let commands: Vec<M::Command> = (0..n).map(|_| command(b)).collect();
                let _ = shared.submit(commands);
                states.push(shared.read(encode).expect("the machine panicked"));
                by_records.push((records_of(&shared), states[states.len() - 1].clone()));
            }
            4 => {
                let _ = shared.snapshot();
            }
            5 => {
                clock.0.fetch_add(u64::from(b.u16()) * 1_000_000, Ordering::Relaxed);
            }
            // The writer is done: damage follows.
            _ => break,
        }
    }
    let last = states.pop().expect("at least the first state");
    Written {
        last,
        before_last: states.pop(),
        by_records,
    }
}

/// Damages the files as the rest of the input says: what kind of damage, and whether the
/// manifest was removed.
fn damage_all(dir: &Path, b: &mut Bytes<'_>) -> (Damage, bool) {
    let mut damaged = Damage::None;
    let mut manifest_removed = false;
    for _ in 0..8 {
        if b.is_empty() {
            break;
        }
        let op = b.u8();
        let exists = dir.join("MANIFEST").exists();
        let d = damage(dir, op, b);
        manifest_removed |= exists && !dir.join("MANIFEST").exists();
        damaged = match (damaged, d) {
            (Damage::Forged, _) | (_, Damage::Forged) => Damage::Forged,
            (Damage::Files, _) | (_, Damage::Files) => Damage::Files,
            _ => Damage::None,
        };
    }
    (damaged, manifest_removed)
}

fn run<M: Durable>(settings: u8, b: &mut Bytes<'_>, init: fn() -> M, command: fn(&mut Bytes<'_>) -> M::Command) {
    let what = M::KIND;
    let dir = TempDir::new();
    let crash = settings & 0x20 != 0;
    let written = write(&dir.0, settings, b, init, command);
    let newest = newest_segment(&dir.0);
    let (damaged, manifest_removed) = damage_all(&dir.0, b);

    let (state, head, fresh) = match open_rw(&dir.0, init) {
        Ok(found) => found,
        Err(e) => {
            assert!(damaged != Damage::None, "{what}: an undamaged store is refused: {e}");
            return;
        }
    };
    match damaged {
        Damage::None => assert_eq!(state, written.last, "{what}: an undamaged store recovers another state"),
        Damage::Files => {
            let earlier_turn_after_damage = crash
                && newest.as_ref().is_some_and(|n| all_damaged_from(n, head.records))
                && written
                    .by_records
                    .iter()
                    .any(|(records, s)| *records == head.records && *s == state);
            let allowed = state == written.last
                || (crash && written.before_last.as_ref() == Some(&state))
                || earlier_turn_after_damage
                || (fresh && manifest_removed);
            assert!(
                allowed,
                "{what}: damage that was not refused changed the state recovered"
            );
        }
        Damage::Forged => {}
    }
    // Opened once (and repaired), the store reads the same every way.
    let (again, head_again, _) = open_rw(&dir.0, init).unwrap_or_else(|e| panic!("{what}: refused on reopening: {e}"));
    assert_eq!(again, state, "{what}: reopening recovers another state");
    assert_eq!(head_again, head, "{what}: reopening finds another head");
    let (read, _) =
        durable::load::<M>(&dir.0).unwrap_or_else(|e| panic!("{what}: refused read-only after opening: {e}"));
    assert_eq!(encode(&read), state, "{what}: read-only loading recovers another state");
    assert_eq!(durable::kind(&dir.0).ok().as_deref(), Some(what));
    match durable::verify::<M>(&dir.0) {
        Ok((audited, _)) => assert_eq!(encode(&audited), state, "{what}: verify recovers another state"),
        Err(e) => assert!(
            damaged != Damage::None,
            "{what}: verify refuses an undamaged store: {e}"
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let settings = b.u8();
    if settings & 1 == 0 {
        run::<Ledger>(settings, &mut b, Ledger::new, gen_event);
    } else {
        run::<Billing>(settings, &mut b, new_billing, gen_command);
    }
});
