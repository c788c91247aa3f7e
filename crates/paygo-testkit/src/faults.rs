//! Fault injection for the durable store (docs/ledger.md, "Storage fault model"): a
//! `Storage` that wraps the `FileStore` and, when the simulation asks, fails a record's
//! write or fsync (EIO or ENOSPC), or "crashes" while writing it, or fails a snapshot's
//! write; and the damage the disk may then leave or do later, applied to the files between
//! a crash and the next open: a lost unsynced tail, torn sectors, a header of zeros, a
//! zero-filled extended tail; and, to acknowledged data, bit flips, lost writes, truncated
//! and deleted files. The simulations check every outcome against their reference models:
//! everything acknowledged is recovered, or the open reports `Corrupt` — never less.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use paygo_ledger::LedgerError;
use paygo_ledger::durable::{FileStore, Head, Loaded, Recovery, SnapshotJob, Storage};

use crate::rng::Rng;
use crate::store::segment_files;

/// The segment header's size in format 3 (a record that starts a segment starts there).
const SEGMENT_HEADER: u64 = 64;
/// A record header's size in format 3.
const RECORD_HEADER: u64 = 52;

/// What goes wrong with the next record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The write fails (EIO, or ENOSPC); `landed`: part or all of it reached the file.
    Write {
        /// ENOSPC rather than EIO.
        enospc: bool,
        /// Part or all of the record reached the file.
        landed: bool,
    },
    /// The write succeeds and its fsync fails (EIO, or ENOSPC): the record may or may not
    /// be on the disk afterwards.
    Sync {
        /// ENOSPC rather than EIO.
        enospc: bool,
    },
    /// The process dies while the record is being written (before it is acknowledged).
    Crash,
}

impl Fault {
    /// A fault drawn from `rng` (fsync errors twice as often as each other kind).
    pub fn pick(rng: &mut Rng) -> Fault {
        match rng.below(5) {
            0 => Fault::Write {
                enospc: rng.chance(50),
                landed: false,
            },
            1 => Fault::Write {
                enospc: rng.chance(50),
                landed: true,
            },
            2 | 3 => Fault::Sync { enospc: rng.chance(50) },
            _ => Fault::Crash,
        }
    }

    /// What the fault is, for a failing run's message.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Write { landed: false, .. } => "write error, nothing written",
            Fault::Write { landed: true, .. } => "write error, part written",
            Fault::Sync { .. } => "fsync error",
            Fault::Crash => "crash while writing",
        }
    }
}

/// A record's bytes in a segment file: from its start to its last non-zero byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The segment file.
    pub path: PathBuf,
    /// The record's first byte.
    pub start: u64,
    /// One past its last non-zero byte.
    pub end: u64,
}

/// What the storage and the simulation share.
#[derive(Debug, Default)]
pub struct Faults {
    /// The fault for the next record, set by the simulation.
    pub next: Option<Fault>,
    /// Fail the next snapshot's write (ENOSPC).
    pub snapshot_fails: bool,
    /// Appends that reached the storage.
    pub appends: u64,
    /// A fault was injected: the store is in an unknown state, so it is never closed
    /// cleanly (as a `FileStore` that failed), and no further append is expected.
    pub failed: bool,
    /// Where the record of the failed turn landed, if it did.
    pub in_doubt: Option<Placement>,
    /// The records acknowledged (their append returned), in order.
    pub acked: Vec<Placement>,
}

/// The store with faults injected.
#[derive(Debug)]
pub struct Faulty {
    inner: FileStore,
    dir: PathBuf,
    faults: Arc<Mutex<Faults>>,
}

impl Faulty {
    /// A `FileStore` of `kind` in `dir` with `segment_bytes` segments, whose faults come
    /// from `faults`.
    pub fn open(dir: &Path, kind: &str, segment_bytes: u64, faults: Arc<Mutex<Faults>>) -> Faulty {
        Faulty {
            inner: FileStore::open(dir, kind, true).unwrap().segment_bytes(segment_bytes),
            dir: dir.to_path_buf(),
            faults,
        }
    }
}

/// Where the last append landed: what changed in the segments.
fn locate(before: &[(PathBuf, Vec<u8>)], after: &[(PathBuf, Vec<u8>)]) -> Option<Placement> {
    for (path, bytes) in after {
        if let Some((_, old)) = before.iter().find(|(p, _)| p == path) {
            let first = (0..bytes.len()).find(|&i| old.get(i) != Some(&bytes[i]));
            if let Some(first) = first {
                let last = (0..bytes.len()).rev().find(|&i| old.get(i) != Some(&bytes[i])).unwrap();
                return Some(Placement {
                    path: path.clone(),
                    start: first as u64,
                    end: last as u64 + 1,
                });
            }
        } else {
            // A new segment: the record is the first after its header.
            let last = bytes.iter().rposition(|&b| b != 0).unwrap();
            if last as u64 >= SEGMENT_HEADER {
                return Some(Placement {
                    path: path.clone(),
                    start: SEGMENT_HEADER,
                    end: last as u64 + 1,
                });
            }
        }
    }
    None
}

fn injected(op: &str, enospc: bool) -> LedgerError {
    LedgerError::Io {
        op: op.into(),
        path: "(injected)".into(),
        message: if enospc {
            "No space left on device (os error 28)".into()
        } else {
            "Input/output error (os error 5)".into()
        },
    }
}

impl Storage for Faulty {
    fn load(&mut self, visit: &mut dyn FnMut(Loaded<'_>) -> Result<(), LedgerError>) -> Result<Recovery, LedgerError> {
        self.inner.load(visit)
    }

    fn append(&mut self, payload: &[u8]) -> Result<(), LedgerError> {
        let mut f = self.faults.lock().unwrap();
        f.appends += 1;
        if f.failed {
            return Err(LedgerError::Unavailable {
                reason: "an append after a failure reached the storage".into(),
            });
        }
        let fault = f.next.take();
        let before = segment_files(&self.dir);
        if !matches!(fault, Some(Fault::Write { landed: false, .. })) {
            self.inner.append(payload)?;
        }
        let placed = locate(&before, &segment_files(&self.dir));
        match fault {
            None => {
                f.acked.extend(placed);
                Ok(())
            }
            Some(fault) => {
                f.failed = true;
                f.in_doubt = placed;
                Err(match fault {
                    Fault::Write { enospc, .. } => injected("write", enospc),
                    Fault::Sync { enospc } => injected("sync", enospc),
                    Fault::Crash => LedgerError::Unavailable {
                        reason: "the process died (injected)".into(),
                    },
                })
            }
        }
    }

    fn save_snapshot(&mut self, state: &[u8]) -> Result<(), LedgerError> {
        let mut f = self.faults.lock().unwrap();
        if std::mem::take(&mut f.snapshot_fails) {
            return Err(injected("write", true));
        }
        drop(f);
        self.inner.save_snapshot(state)
    }

    /// As the `FileStore`'s (the segment boundary now, the file on the handle's snapshot
    /// thread), with the injected failure in the job that writes the file.
    fn begin_snapshot(&mut self, state: Vec<u8>) -> Result<SnapshotJob, LedgerError> {
        let fails = std::mem::take(&mut self.faults.lock().unwrap().snapshot_fails);
        let job = self.inner.begin_snapshot(state)?;
        if fails {
            return Ok(SnapshotJob::new(job.records(), || Err(injected("write", true))));
        }
        Ok(job)
    }

    fn finish_snapshot(&mut self, job: &SnapshotJob) -> Result<(), LedgerError> {
        if self.faults.lock().unwrap().failed {
            // As a FileStore that failed: it lists nothing more.
            return Err(LedgerError::Unavailable {
                reason: "a snapshot listed after a failure".into(),
            });
        }
        self.inner.finish_snapshot(job)
    }

    fn head(&self) -> Head {
        self.inner.head()
    }

    fn bytes_since_snapshot(&self) -> u64 {
        self.inner.bytes_since_snapshot()
    }

    fn close(&mut self) -> Result<(), LedgerError> {
        if self.faults.lock().unwrap().failed {
            // As a FileStore that failed: never closed cleanly.
            Ok(())
        } else {
            self.inner.close()
        }
    }
}

/// What the disk leaves of the record of a failed turn, after the crash or restart that
/// follows (seeded). Returns whether the record is still whole.
pub fn leave(rng: &mut Rng, fault: Fault, placed: Option<&Placement>) -> (bool, &'static str) {
    let Some(p) = placed else {
        return (false, "nothing written");
    };
    let mut bytes = std::fs::read(&p.path).unwrap();
    let (start, end) = (p.start as usize, p.end as usize);
    let keep = match fault {
        Fault::Write { .. } | Fault::Crash => rng.chance(20),
        Fault::Sync { .. } => rng.chance(40),
    };
    if keep {
        return (true, "kept whole");
    }
    let what = match rng.below(5) {
        0 => {
            // The unsynced tail is lost: zeros from some point on.
            let cut = start + rng.below((end - start) as u64) as usize;
            bytes[cut..end].fill(0);
            "lost tail"
        }
        1 => {
            // Torn sectors: some 512-byte sectors of the write landed, others did not.
            let mut at = start - start % 512;
            let mut any = false;
            while at < end {
                if rng.chance(50) || (!any && at + 512 >= end) {
                    let (a, b) = (at.max(start), (at + 512).min(end));
                    bytes[a..b].fill(0);
                    any = true;
                }
                at += 512;
            }
            "torn sectors"
        }
        2 => {
            // The header's sector did not land, the rest did.
            bytes[start..(start + RECORD_HEADER as usize).min(end)].fill(0);
            "header of zeros"
        }
        3 => {
            // Nothing landed, and the file was extended with zeros past its size.
            bytes[start..end].fill(0);
            let len = bytes.len();
            bytes.resize(len + 4096 * (1 + rng.below(4) as usize), 0);
            "zero-filled extended tail"
        }
        _ => {
            // A sector torn in the middle: its bytes half old (zeros), half new.
            let mid = start + rng.below((end - start) as u64) as usize;
            let to = (mid + 1 + rng.below(256) as usize).min(end);
            bytes[mid..to].fill(0);
            "torn inside a sector"
        }
    };
    // A record that happened to be all zeros where it was torn is still whole.
    let whole = std::fs::read(&p.path).unwrap() == bytes;
    std::fs::write(&p.path, &bytes).unwrap();
    (whole, what)
}

/// Damage to acknowledged data, applied to a copy of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// One bit of an acknowledged record flipped.
    FlipRecordBit,
    /// An acknowledged record zeroed.
    ZeroRecord,
    /// A segment cut short inside acknowledged records.
    TruncateSegment,
    /// A segment file lost.
    DeleteSegment,
    /// The `MANIFEST` lost.
    DeleteManifest,
    /// One bit of the `MANIFEST` flipped.
    FlipManifest,
    /// One bit of the newest snapshot flipped.
    FlipNewestSnapshot,
    /// The newest snapshot lost.
    DeleteNewestSnapshot,
}

impl Damage {
    /// Every kind of damage.
    pub const ALL: [Damage; 8] = [
        Damage::FlipRecordBit,
        Damage::ZeroRecord,
        Damage::TruncateSegment,
        Damage::DeleteSegment,
        Damage::DeleteManifest,
        Damage::FlipManifest,
        Damage::FlipNewestSnapshot,
        Damage::DeleteNewestSnapshot,
    ];
}

fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && !name.ends_with(".tmp")
        })
        .collect();
    out.sort();
    out
}

/// Applies `damage` to the store in `dir` (a copy), at a seeded place among the records
/// in `acked` (placements in the original directory `orig`). `closed`: whether the store
/// was closed cleanly; if not, the last acknowledged record is spared the damages a
/// crash's torn write cannot be told from (docs/ledger.md: the one caveat). Returns false
/// if there was nothing to damage.
pub fn damage(rng: &mut Rng, dir: &Path, orig: &Path, acked: &[Placement], closed: bool, d: Damage) -> bool {
    let copy_of = |p: &Placement| dir.join(p.path.strip_prefix(orig).unwrap());
    let records: Vec<&Placement> = acked
        .iter()
        .enumerate()
        .filter(|(i, p)| copy_of(p).exists() && (closed || i + 1 < acked.len()))
        .map(|(_, p)| p)
        .collect();
    match d {
        Damage::FlipRecordBit | Damage::ZeroRecord => {
            let Some(p) = records.get(rng.below(records.len().max(1) as u64) as usize).copied() else {
                return false;
            };
            let path = copy_of(p);
            let mut bytes = std::fs::read(&path).unwrap();
            if d == Damage::FlipRecordBit {
                let at = p.start + rng.below(p.end - p.start);
                bytes[at as usize] ^= 1 << rng.below(8);
            } else {
                bytes[p.start as usize..p.end as usize].fill(0);
            }
            std::fs::write(&path, bytes).unwrap();
        }
        Damage::TruncateSegment | Damage::DeleteSegment => {
            let segments = files(dir, "journal-");
            let Some(path) = segments.get(rng.below(segments.len().max(1) as u64) as usize) else {
                return false;
            };
            if d == Damage::DeleteSegment {
                std::fs::remove_file(path).unwrap();
            } else {
                let len = std::fs::metadata(path).unwrap().len();
                let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
                f.set_len(rng.below(len)).unwrap();
            }
        }
        Damage::DeleteManifest => std::fs::remove_file(dir.join("MANIFEST")).unwrap(),
        Damage::FlipManifest => {
            let path = dir.join("MANIFEST");
            let mut bytes = std::fs::read(&path).unwrap();
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] ^= 1 << rng.below(7);
            std::fs::write(&path, bytes).unwrap();
        }
        Damage::FlipNewestSnapshot | Damage::DeleteNewestSnapshot => {
            // The newest snapshot the MANIFEST lists: one still being written (unlisted)
            // holds nothing acknowledged, and the next open removes it.
            let Some(path) = newest_listed_snapshot(dir) else {
                return false;
            };
            if d == Damage::DeleteNewestSnapshot {
                std::fs::remove_file(&path).unwrap();
            } else {
                let mut bytes = std::fs::read(&path).unwrap();
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] ^= 1 << rng.below(8);
                std::fs::write(&path, bytes).unwrap();
            }
        }
    }
    true
}

/// The newest snapshot file that the store's MANIFEST lists.
fn newest_listed_snapshot(dir: &Path) -> Option<PathBuf> {
    let manifest = std::fs::read_to_string(dir.join("MANIFEST")).ok()?;
    let seq = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("snapshot: "))
        .filter_map(|rest| rest.split(' ').next()?.parse::<u64>().ok())
        .max()?;
    Some(dir.join(format!("snapshot-{seq:020}.snap")))
}

/// A copy of a directory, under the system's temp dir, as a crash would leave it: a file
/// that a snapshot thread renames or removes while it is copied is left out (the crash
/// came before it), as its temp file would be.
pub fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "LOCK" && entry.file_type().is_ok_and(|t| t.is_file()) {
            match std::fs::copy(entry.path(), to.join(entry.file_name())) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("copying {}: {e}", entry.path().display()),
            }
        }
    }
}
