//! The embedded store: a manifest, preallocated journal segments and snapshots in a
//! directory. `docs/ledger.md` describes the format and the fault model.

use std::fs::{self, File, TryLockError};
use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use super::checksum::{ChainHasher, HASH_LEN, crc32c};
use super::manifest::{MANIFEST, Manifest, Reach, SEGMENT_HEADER, Segment};
use super::storage::{Head, Loaded, Recovery, SnapshotJob, Storage};
use crate::LedgerError;

const LOCK: &str = "LOCK";
const SEGMENT_MAGIC: &[u8; 8] = b"PGYLJRN3";
const SNAPSHOT_MAGIC: &[u8; 8] = b"PGYLSNP3";
/// length, payload crc, seq, previous hash, header crc.
const RECORD_HEADER: usize = 52;
/// magic, seq, head hash, state length, state crc, header crc.
const SNAPSHOT_HEADER: usize = 64;
/// Records from this size on are hashed while another thread waits for their sync.
const OVERLAP_HASH_BYTES: usize = 64 << 10;
/// Snapshots kept: the newest and the one before (and the journal after the older one).
const SNAPSHOTS_KEPT: usize = 2;
/// Segment sizes are multiples of this.
const SEGMENT_ALIGN: u64 = 4096;
/// The size of a new journal segment by default.
pub(crate) const SEGMENT_BYTES_DEFAULT: u64 = 64 << 20;
/// The smallest segment size accepted (smaller sizes are rounded up to it).
const SEGMENT_BYTES_MIN: u64 = 4096;
/// Damaged regions are read in pieces of this size: memory never follows a file's size.
const SCAN_CHUNK: usize = 1 << 20;
/// A read-only load that meets damage while a writer may be appending tries again up to
/// this many times: damage is real only if it is found twice in the same place.
const READ_ATTEMPTS: u32 = 6;

fn io(op: &str, path: &Path, e: &std::io::Error) -> LedgerError {
    LedgerError::Io {
        op: op.to_owned(),
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn corrupt(file: &Path, offset: u64, what: impl Into<String>) -> LedgerError {
    LedgerError::Corrupt {
        file: file.display().to_string(),
        offset,
        what: what.into(),
    }
}

/// Writes the snapshot of record `seq` (head hash `hash`) to its file: a temp file,
/// written and synced, renamed, the directory synced. On an error the temp file is
/// removed and nothing is listed.
fn write_snapshot_file(dir: &Path, seq: u64, hash: &[u8; HASH_LEN], state: &[u8]) -> Result<(), LedgerError> {
    let mut header = [0u8; SNAPSHOT_HEADER];
    header[..8].copy_from_slice(SNAPSHOT_MAGIC);
    header[8..16].copy_from_slice(&seq.to_le_bytes());
    header[16..48].copy_from_slice(hash);
    header[48..56].copy_from_slice(&(state.len() as u64).to_le_bytes());
    header[56..60].copy_from_slice(&crc32c(state).to_le_bytes());
    let crc = crc32c(&header[..60]);
    header[60..64].copy_from_slice(&crc.to_le_bytes());
    let name = snapshot_name(seq);
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(&name);
    let written = (|| {
        let mut f = File::create(&tmp).map_err(|e| io("create", &tmp, &e))?;
        f.write_all(&header)
            .and_then(|()| f.write_all(state))
            .and_then(|()| f.sync_all())
            .map_err(|e| io("write", &tmp, &e))?;
        fs::rename(&tmp, &path).map_err(|e| io("rename", &tmp, &e))?;
        sync_dir(dir)
    })();
    if written.is_err() {
        // Not listed: the previous snapshots stay in use, and records can go on.
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// The directory inside the store that archived journal segments move to.
const ARCHIVE: &str = "archive";

fn segment_name(index: u64) -> String {
    format!("journal-{index:020}.log")
}

fn snapshot_name(seq: u64) -> String {
    format!("snapshot-{seq:020}.snap")
}

fn parse_name(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

fn sync_dir(dir: &Path) -> Result<(), LedgerError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("sync directory", dir, &e))
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn hash_of(b: &[u8]) -> [u8; HASH_LEN] {
    let mut h = [0u8; HASH_LEN];
    h.copy_from_slice(&b[..HASH_LEN]);
    h
}

fn segment_header(first: u64, prev: &[u8; HASH_LEN], bytes: u64) -> [u8; SEGMENT_HEADER as usize] {
    let mut h = [0u8; SEGMENT_HEADER as usize];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..16].copy_from_slice(&first.to_le_bytes());
    h[16..48].copy_from_slice(prev);
    h[48..56].copy_from_slice(&bytes.to_le_bytes());
    let crc = crc32c(&h[..56]);
    h[56..60].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a segment header: its first record, the hash before it and its size.
fn parse_segment_header(b: &[u8]) -> Result<(u64, [u8; HASH_LEN], u64), String> {
    if &b[..8] != SEGMENT_MAGIC {
        return Err("the segment does not start with the journal's magic bytes".into());
    }
    if le_u32(&b[56..]) != crc32c(&b[..56]) || le_u32(&b[60..]) != 0 {
        return Err("the segment header's checksum does not match".into());
    }
    Ok((le_u64(&b[8..]), hash_of(&b[16..]), le_u64(&b[48..])))
}

fn record_header(payload: &[u8], seq: u64, prev: &[u8; HASH_LEN]) -> Option<[u8; RECORD_HEADER]> {
    let len = u32::try_from(payload.len()).ok()?;
    let mut h = [0u8; RECORD_HEADER];
    h[0..4].copy_from_slice(&len.to_le_bytes());
    h[4..8].copy_from_slice(&crc32c(payload).to_le_bytes());
    h[8..16].copy_from_slice(&seq.to_le_bytes());
    h[16..48].copy_from_slice(prev);
    let crc = crc32c(&h[..48]);
    h[48..52].copy_from_slice(&crc.to_le_bytes());
    Some(h)
}

/// Whether a record header's own checksum holds (a header of zeros never does).
fn header_ok(h: &[u8]) -> bool {
    crc32c(&h[..48]) == le_u32(&h[48..])
}

fn record_hash(header: &[u8], payload: &[u8]) -> [u8; HASH_LEN] {
    let mut h = ChainHasher::new();
    h.update(header);
    h.update(payload);
    h.finish()
}

fn round_up(n: u64, to: u64) -> u64 {
    n.div_ceil(to).saturating_mul(to)
}

/// The store in a directory: `MANIFEST` (what it holds and how far its journal reached),
/// `LOCK` (held by the one writer), `journal-<n>.log` segments (preallocated) and
/// `snapshot-<seq>.snap` snapshots. See `docs/ledger.md` for the format and the fault model.
#[derive(Debug)]
// Independent switches of the store (mode, state, audit, archive), each a plain yes/no.
#[allow(clippy::struct_excessive_bools)]
pub struct FileStore {
    dir: PathBuf,
    kind: String,
    writable: bool,
    _lock: Option<File>,
    segment_bytes: u64,
    manifest: Manifest,
    /// The segment being appended to.
    current: Option<Current>,
    head: Head,
    since_snapshot: u64,
    loaded: bool,
    failed: Option<String>,
    /// Load from the oldest snapshot kept, so that every record kept is checked, and
    /// check every snapshot kept against the journal.
    audit: bool,
    /// Move journal segments no longer needed into `archive/` instead of removing them.
    archive: bool,
    /// A snapshot begun and not listed yet: its record and size.
    pending_snapshot: Option<(u64, u64)>,
}

#[derive(Debug)]
struct Current {
    file: File,
    path: PathBuf,
    index: u64,
    first: u64,
    bytes: u64,
    /// Where the next record goes.
    end: u64,
}

impl FileStore {
    /// Opens the store in `dir` for `kind` (see [`super::Durable::KIND`]). Writable: creates
    /// the directory and the store if needed and locks it; read-only: writes nothing and
    /// takes no lock, so that it works while a writer runs (it reads up to the last whole
    /// record). Call [`Storage::load`] next.
    ///
    /// # Errors
    ///
    /// [`LedgerError::MissingDirectory`] (read-only, no directory or no store in it);
    /// [`LedgerError::Foreign`] for a directory with other files and no `MANIFEST`, or a
    /// store of another kind or format; [`LedgerError::Corrupt`] for a damaged `MANIFEST`,
    /// or journal files without one; [`LedgerError::Locked`] when another writer has it;
    /// [`LedgerError::Io`].
    pub fn open(dir: &Path, kind: &str, writable: bool) -> Result<FileStore, LedgerError> {
        let shown = dir.display().to_string();
        match fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(LedgerError::Foreign {
                    dir: shown,
                    why: "it is a file, not a directory".into(),
                });
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if !writable {
                    return Err(LedgerError::MissingDirectory { dir: shown });
                }
                fs::create_dir_all(dir).map_err(|e| io("create directory", dir, &e))?;
                if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                    sync_dir(parent)?;
                }
            }
            Err(e) => return Err(io("read", dir, &e)),
        }
        // Read first, so that nothing is written to a foreign directory (not even LOCK).
        let found = read_manifest(dir, Some(kind))?;
        if found.is_none() {
            // No manifest: only an empty directory (or one left by a crash while it was
            // being created) becomes a store.
            for name in list_names(dir)? {
                if parse_name(&name, "journal-", ".log").is_some() || parse_name(&name, "snapshot-", ".snap").is_some()
                {
                    return Err(corrupt(
                        &dir.join(MANIFEST),
                        0,
                        format!("missing: the directory holds {name} but no {MANIFEST}"),
                    ));
                }
                if name != LOCK && name != "MANIFEST.tmp" {
                    return Err(LedgerError::Foreign {
                        dir: shown,
                        why: format!("it holds other files ({name:?}) and no {MANIFEST}"),
                    });
                }
            }
            if !writable {
                return Err(LedgerError::MissingDirectory { dir: shown });
            }
        }
        // The writer then locks and reads again, so that no other writer changes it meanwhile.
        let lock = if writable { Some(lock(dir)?) } else { None };
        let found = if writable {
            read_manifest(dir, Some(kind))?
        } else {
            found
        };
        let manifest = if let Some(m) = found {
            m
        } else {
            let m = Manifest::new(kind);
            write_manifest_file(dir, &m)?;
            m
        };
        Ok(FileStore {
            dir: dir.to_path_buf(),
            kind: kind.to_owned(),
            writable,
            _lock: lock,
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            manifest,
            current: None,
            head: Head::default(),
            since_snapshot: 0,
            archive: false,
            pending_snapshot: None,
            loaded: false,
            failed: None,
            audit: false,
        })
    }

    /// The same store, making its new journal segments `bytes` long (rounded up to 4 KiB,
    /// at least 4 KiB; a record larger than that gets a segment of its own size). Segments
    /// are allocated whole when they are made, so that a shorter file is damage.
    #[must_use]
    pub fn segment_bytes(mut self, bytes: u64) -> FileStore {
        self.segment_bytes = round_up(bytes.max(SEGMENT_BYTES_MIN), SEGMENT_ALIGN);
        self
    }

    /// The same store, moving the journal segments that snapshots make unnecessary into the
    /// `archive/` directory inside the store, instead of removing them: the history of
    /// every transfer stays on disk, for audits and for transfers a ledger with an
    /// [`crate::IdWindow`] no longer keeps in memory. The archive is never read back by
    /// the store; it grows with the journal (about 104 bytes a transfer).
    #[must_use]
    pub fn archive_journal(mut self, archive: bool) -> FileStore {
        self.archive = archive;
        self
    }

    /// The same store, loading from the oldest snapshot it keeps instead of the newest,
    /// so that [`Storage::load`] reads and checks every record the directory holds, and
    /// checking that every snapshot kept is intact and equal to the state the journal
    /// replays to at its position (for `verify`); the state is the same.
    #[must_use]
    pub fn audit(mut self) -> FileStore {
        self.audit = true;
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn segment_path(&self, index: u64) -> PathBuf {
        self.dir.join(segment_name(index))
    }

    /// Rewrites the manifest (the next generation); a failure leaves the store unable to
    /// take records until it is reopened.
    fn save_manifest(&mut self) -> Result<(), LedgerError> {
        self.manifest.generation += 1;
        let saved = write_manifest_file(&self.dir, &self.manifest);
        if let Err(e) = &saved {
            self.failed = Some(format!("the manifest could not be written ({e}): reopen the ledger"));
        }
        saved
    }

    /// Makes a new segment for records from `first` on, with room for `need` bytes:
    /// written whole under a temp name, synced, renamed, the directory synced. It is not
    /// listed in the manifest yet (so that a crash leaves it as an unlisted leftover).
    fn make_segment(&self, index: u64, first: u64, need: u64) -> Result<Current, LedgerError> {
        let bytes = self
            .segment_bytes
            .max(round_up(SEGMENT_HEADER.saturating_add(need), SEGMENT_ALIGN));
        let path = self.segment_path(index);
        let tmp = self.dir.join(format!("{}.tmp", segment_name(index)));
        let mut file = fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&tmp)
            .map_err(|e| io("create", &tmp, &e))?;
        file.set_len(bytes)
            .and_then(|()| file.write_all(&segment_header(first, &self.head.hash, bytes)))
            .and_then(|()| file.sync_all())
            .map_err(|e| io("write", &tmp, &e))?;
        fs::rename(&tmp, &path).map_err(|e| io("rename", &tmp, &e))?;
        sync_dir(&self.dir)?;
        Ok(Current {
            file,
            path,
            index,
            first,
            bytes,
            end: SEGMENT_HEADER,
        })
    }

    /// Starts a new segment at the head for a record of `need` bytes, and lists it.
    fn roll(&mut self, need: u64) -> Result<(), LedgerError> {
        let next = self.manifest.segments.last().map_or(0, |g| g.index + 1);
        let made = self.make_segment(next, self.head.records, need);
        let cur = match made {
            Ok(c) => c,
            Err(e) => {
                self.failed = Some(format!(
                    "a new journal segment could not be made ({e}): reopen the ledger"
                ));
                return Err(e);
            }
        };
        // An empty segment (a snapshot's, too small for this record) is replaced.
        let replaced = self
            .current
            .as_ref()
            .filter(|c| c.end == SEGMENT_HEADER && c.first == self.head.records)
            .map(|c| c.index);
        if let Some(old) = replaced {
            self.manifest.segments.retain(|g| g.index != old);
        }
        self.manifest.segments.push(Segment {
            index: cur.index,
            first: cur.first,
            bytes: cur.bytes,
        });
        self.manifest.reach = Reach {
            records: self.head.records,
            offset: SEGMENT_HEADER,
            hash: self.head.hash,
        };
        self.manifest.closed = false;
        self.current = Some(cur);
        self.save_manifest()?;
        if let Some(old) = replaced {
            let path = self.segment_path(old);
            fs::remove_file(&path).map_err(|e| io("remove", &path, &e))?;
        }
        Ok(())
    }

    /// Reads and checks a snapshot listed with `listed` bytes: its seq, head hash and state.
    fn read_snapshot(&self, seq: u64, listed: u64) -> Result<(Head, Vec<u8>), LedgerError> {
        let path = self.dir.join(snapshot_name(seq));
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(corrupt(&path, 0, format!("missing: {MANIFEST} names it")));
            }
            Err(e) => return Err(io("open", &path, &e)),
        };
        let len = file.metadata().map_err(|e| io("read", &path, &e))?.len();
        let fail = |what: &str| Err(corrupt(&path, 0, what));
        let mut header = [0u8; SNAPSHOT_HEADER];
        if len < SNAPSHOT_HEADER as u64 {
            return fail("it is shorter than its header");
        }
        file.read_exact(&mut header).map_err(|e| io("read", &path, &e))?;
        if &header[..8] != SNAPSHOT_MAGIC || crc32c(&header[..60]) != le_u32(&header[60..]) {
            return fail("its header is damaged (magic bytes or checksum)");
        }
        let state_len = le_u64(&header[48..]);
        if Some(listed) != state_len.checked_add(SNAPSHOT_HEADER as u64) {
            return fail("its size differs from the one the manifest lists");
        }
        if len != listed {
            return fail("its file size differs from the one its header and the manifest give");
        }
        if le_u64(&header[8..]) != seq {
            return fail("its seq differs from its name");
        }
        let state_len = usize::try_from(state_len).map_err(|_| corrupt(&path, 0, "too large for this machine"))?;
        let mut state = vec![0u8; state_len];
        file.read_exact(&mut state).map_err(|e| io("read", &path, &e))?;
        if crc32c(&state) != le_u32(&header[56..]) {
            return fail("its checksum does not match");
        }
        let head = Head {
            records: seq,
            hash: hash_of(&header[16..]),
        };
        Ok((head, state))
    }

    /// Loads once; see [`Storage::load`].
    #[allow(clippy::too_many_lines)] // the steps of recovery in order, as docs/ledger.md lists them
    fn load_once(
        &mut self,
        visit: &mut dyn FnMut(Loaded<'_>) -> Result<(), LedgerError>,
    ) -> Result<Recovery, LedgerError> {
        let manifest = read_manifest(&self.dir, Some(&self.kind))?
            .ok_or_else(|| corrupt(&self.dir.join(MANIFEST), 0, "missing: the store's manifest was removed"))?;
        let names = list_names(&self.dir)?;
        let mut recovery = Recovery::default();
        if manifest.is_new() {
            // Created, and nothing written yet: leftovers of a crash during creation go.
            if self.writable {
                for name in names.iter().filter(|n| is_ours(n)) {
                    remove(&self.dir.join(name))?;
                }
                sync_dir(&self.dir)?;
            }
            recovery.fresh = true;
            self.manifest = manifest;
            self.loaded = true;
            return Ok(recovery);
        }
        // Every file the manifest lists must be there, whole.
        for g in &manifest.segments {
            let path = self.segment_path(g.index);
            let len = match fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Err(corrupt(
                        &path,
                        0,
                        format!(
                            "missing: {MANIFEST} names this segment (records from {} on): acknowledged records are lost",
                            g.first
                        ),
                    ));
                }
                Err(e) => return Err(io("read", &path, &e)),
            };
            if len < g.bytes {
                return Err(truncated(&path, len, g.bytes));
            }
        }
        // The snapshot to start from: the newest that passes its checks (auditing: all
        // must pass, and replay starts from the oldest).
        let mut chosen = None;
        let mut check = None;
        if self.audit {
            for &(seq, bytes) in &manifest.snapshots {
                let (head, state) = self.read_snapshot(seq, bytes)?;
                if chosen.is_none() {
                    chosen = Some((head, state));
                } else if seq == manifest.snapshots.last().map_or(0, |s| s.0) {
                    check = Some((seq, state));
                }
            }
        } else {
            for &(seq, bytes) in manifest.snapshots.iter().rev() {
                match self.read_snapshot(seq, bytes) {
                    Ok(found) => {
                        chosen = Some(found);
                        break;
                    }
                    Err(e @ LedgerError::Corrupt { .. }) => recovery.skipped_snapshots.push(e.to_string()),
                    Err(e) => return Err(e),
                }
            }
        }
        let Some((snap_head, state)) = chosen else {
            let why = recovery.skipped_snapshots.first().cloned().unwrap_or_default();
            return Err(corrupt(&self.dir, 0, format!("no usable snapshot: {why}")));
        };
        // Replay from the last segment that starts at or before the snapshot.
        let Some(start) = manifest.segments.iter().rposition(|g| g.first <= snap_head.records) else {
            return Err(corrupt(
                &self.dir.join(MANIFEST),
                0,
                format!("no segment holds record {}", snap_head.records),
            ));
        };
        let replayed: Vec<Segment> = manifest.segments[start..].to_vec();
        // Room for the journal, from the sizes the manifest lists (never a file's size):
        // the full segments, and the newest as far as it had reached.
        let mut journal_bytes = 0u64;
        for (i, g) in replayed.iter().enumerate() {
            // The manifest's checks keep each size at least a header, and the reach within
            // the newest segment; the sum saturates all the same.
            journal_bytes = journal_bytes.saturating_add(if i + 1 == replayed.len() {
                manifest.reach.offset.saturating_sub(SEGMENT_HEADER)
            } else {
                g.bytes.saturating_sub(SEGMENT_HEADER)
            });
        }
        recovery.snapshot_records = snap_head.records;
        let snap_path = self.dir.join(snapshot_name(snap_head.records));
        visit(Loaded::Snapshot {
            records: snap_head.records,
            state: &state,
            journal_bytes,
        })
        .map_err(|e| corrupt(&snap_path, 0, e.to_string()))?;
        drop(state);
        let plan = Plan {
            segments: replayed
                .iter()
                .map(|g| (g.first, g.bytes, self.segment_path(g.index)))
                .collect(),
            from_seq: snap_head.records,
            snapshot: snap_head,
            reach: manifest.reach,
            closed: manifest.closed,
        };
        let (tx, rx) = mpsc::sync_channel::<Item>(4);
        let (give_back, pool) = mpsc::channel::<Vec<u8>>();
        let mut check = check.map(|(seq, state)| (seq, state, self.dir.join(snapshot_name(seq))));
        let (tail, applied) = std::thread::scope(|scope| {
            let plan = &plan;
            let reader = scope.spawn(move || read_journal(plan, &tx, &pool));
            let mut applied: Result<u64, LedgerError> = Ok(0);
            for item in &rx {
                if let Some((seq, state, path)) = check.take_if(|c| c.0 == item.seq)
                    && let Err(e) = visit(Loaded::Check {
                        records: seq,
                        state: &state,
                    })
                {
                    applied = Err(corrupt(&path, 0, e.to_string()));
                    break;
                }
                let done = visit(Loaded::Record {
                    seq: item.seq,
                    payload: &item.payload,
                });
                let _ = give_back.send(item.payload);
                match done {
                    Ok(()) => {
                        if let Ok(n) = applied.as_mut() {
                            *n += 1;
                        }
                    }
                    Err(e) => {
                        applied = Err(corrupt(&item.path, item.offset, e.to_string()));
                        break;
                    }
                }
            }
            drop(rx);
            let tail = reader.join().unwrap_or_else(|_| {
                Err(LedgerError::Unavailable {
                    reason: "the journal reader panicked".into(),
                })
            });
            (tail, applied)
        });
        let tail = tail?;
        recovery.records_replayed = applied?;
        if let Some((seq, state, path)) = check.take() {
            if tail.head.records != seq {
                return Err(corrupt(
                    &path,
                    0,
                    format!("the journal ends at record {}, before this snapshot", tail.head.records),
                ));
            }
            visit(Loaded::Check {
                records: seq,
                state: &state,
            })
            .map_err(|e| corrupt(&path, 0, e.to_string()))?;
        }
        // The journal reaches every snapshot it keeps.
        if let Some(&(newest, _)) = manifest.snapshots.last()
            && tail.head.records < newest
        {
            return Err(corrupt(
                &self.dir.join(snapshot_name(newest)),
                0,
                format!("the journal ends at record {}, before this snapshot", tail.head.records),
            ));
        }
        let leftovers = self.leftovers(&manifest, &names, tail.head.records)?;
        recovery.torn_bytes = (tail.torn_end - tail.end) + tail.beyond;
        recovery.head = tail.head;
        self.head = tail.head;
        if self.writable {
            for path in &leftovers {
                remove(path)?;
            }
            let Some(last) = manifest.segments.last().copied() else {
                return Err(corrupt(&self.dir.join(MANIFEST), 0, "it lists no segment"));
            };
            let path = self.segment_path(last.index);
            let mut file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| io("open", &path, &e))?;
            // Cut what is not journal: bytes past the segment's size (a tail a crash
            // extended), and the torn record (zeroed, so that no byte of it is read again).
            if tail.beyond > 0 {
                file.set_len(last.bytes).map_err(|e| io("truncate", &path, &e))?;
            }
            zero(&mut file, &path, tail.end, tail.torn_end)?;
            // Also writes back what a failed sync of an earlier handle in this process may
            // have left unwritten.
            file.sync_all().map_err(|e| io("sync", &path, &e))?;
            file.seek(SeekFrom::Start(tail.end))
                .map_err(|e| io("seek", &path, &e))?;
            if !leftovers.is_empty() {
                sync_dir(&self.dir)?;
            }
            self.current = Some(Current {
                file,
                path,
                index: last.index,
                first: last.first,
                bytes: last.bytes,
                end: tail.end,
            });
            self.manifest = manifest;
            // From now on records may follow: the manifest no longer says the journal ends.
            self.manifest.reach = Reach {
                records: tail.head.records,
                offset: tail.end,
                hash: tail.head.hash,
            };
            self.manifest.closed = false;
            self.save_manifest()?;
            // The journal replayed counts towards the next automatic snapshot, so that a
            // process restarted often still takes one (restart time stays bounded).
            self.since_snapshot = tail.bytes;
        } else {
            self.manifest = manifest;
        }
        self.loaded = true;
        Ok(recovery)
    }

    /// The files the manifest does not list: left by a crash between making a file and
    /// listing it (or between unlisting and removing it). A leftover that could hold
    /// acknowledged data means the manifest is older than the files: corruption.
    fn leftovers(&self, manifest: &Manifest, names: &[String], records: u64) -> Result<Vec<PathBuf>, LedgerError> {
        let mut out = Vec::new();
        let newest_snapshot = manifest.snapshots.last().map_or(0, |s| s.0);
        for name in names {
            let path = self.dir.join(name);
            if let Some(index) = parse_name(name, "journal-", ".log") {
                if manifest.segments.iter().any(|g| g.index == index) {
                    continue;
                }
                // A segment made for a roll or a snapshot and not listed yet, or one a
                // roll replaced (empty), or one older than every listed one: records are
                // written only into listed segments, so a newer one holds none.
                if index > manifest.segments.first().map_or(0, |g| g.index)
                    && let Some(seq) = holds_records(&path)?
                {
                    return Err(corrupt(
                        &path,
                        0,
                        format!("{MANIFEST} does not list this segment, but it holds record {seq}"),
                    ));
                }
                out.push(path);
            } else if let Some(seq) = parse_name(name, "snapshot-", ".snap") {
                if manifest.snapshots.iter().any(|s| s.0 == seq) {
                    continue;
                }
                if seq > newest_snapshot && seq > records {
                    return Err(corrupt(
                        &path,
                        0,
                        format!(
                            "{MANIFEST} does not list this snapshot of record {seq}, and the journal ends before it at record {records}"
                        ),
                    ));
                }
                out.push(path);
            } else if is_ours(name) && Path::new(name).extension().is_some_and(|e| e == "tmp") {
                out.push(path);
            }
        }
        Ok(out)
    }

    /// The files a snapshot at `seq` makes unnecessary: snapshots beyond the kept ones, and
    /// segments whose records all come before the older kept snapshot.
    fn unlist_old(&mut self) -> Vec<PathBuf> {
        let mut gone = Vec::new();
        let m = &mut self.manifest;
        if m.snapshots.len() > SNAPSHOTS_KEPT {
            let drop_n = m.snapshots.len() - SNAPSHOTS_KEPT;
            for (seq, _) in m.snapshots.drain(..drop_n) {
                gone.push(self.dir.join(snapshot_name(seq)));
            }
        }
        let keep_from = m.snapshots.first().map_or(0, |s| s.0);
        while m.segments.len() > 1 && m.segments[1].first <= keep_from {
            let g = m.segments.remove(0);
            gone.push(self.dir.join(segment_name(g.index)));
        }
        gone
    }

    /// Refuses to write to a store opened read-only, not loaded, or failed.
    fn check_writable(&self) -> Result<(), LedgerError> {
        if !self.writable || !self.loaded {
            return Err(LedgerError::Unavailable {
                reason: "the store is not open for writing".into(),
            });
        }
        if let Some(why) = &self.failed {
            return Err(LedgerError::Unavailable { reason: why.clone() });
        }
        Ok(())
    }

    /// Starts a new segment at record `seq` (the head) unless the current one starts there
    /// empty, and lists it. A failure fails the store closed.
    fn rotate_for_snapshot(&mut self, seq: u64) -> Result<(), LedgerError> {
        let rotate = match &self.current {
            Some(c) => c.first != seq || c.end > SEGMENT_HEADER,
            None => true,
        };
        if !rotate {
            return Ok(());
        }
        let made = (|| {
            let next = self.manifest.segments.last().map_or(0, |g| g.index + 1);
            let cur = self.make_segment(next, seq, 0)?;
            self.manifest.segments.push(Segment {
                index: cur.index,
                first: cur.first,
                bytes: cur.bytes,
            });
            self.manifest.reach = Reach {
                records: seq,
                offset: SEGMENT_HEADER,
                hash: self.head.hash,
            };
            self.manifest.closed = false;
            self.current = Some(cur);
            self.save_manifest()
        })();
        if let Err(e) = &made {
            self.fail_closed("a journal segment for a snapshot could not be made", e);
        }
        made
    }

    /// Lists the snapshot of record `seq` (`bytes` long, written and synced), then removes
    /// (or archives) the files it makes unnecessary. A failure fails the store closed.
    fn list_snapshot(&mut self, seq: u64, bytes: u64) -> Result<(), LedgerError> {
        let listed = (|| {
            self.manifest.snapshots.retain(|s| s.0 != seq);
            self.manifest.snapshots.push((seq, bytes));
            let gone = self.unlist_old();
            // Every record up to the head is durable: the journal has reached it.
            let offset = self.current.as_ref().map_or(SEGMENT_HEADER, |c| c.end);
            self.manifest.reach = Reach {
                records: self.head.records,
                offset,
                hash: self.head.hash,
            };
            self.manifest.closed = false;
            self.save_manifest()?;
            let archive = self.dir.join(ARCHIVE);
            for path in &gone {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                if self.archive && parse_name(name, "journal-", ".log").is_some() {
                    fs::create_dir_all(&archive).map_err(|e| io("create", &archive, &e))?;
                    let to = archive.join(name);
                    fs::rename(path, &to).map_err(|e| io("archive", path, &e))?;
                } else {
                    remove(path)?;
                }
            }
            if self.archive && archive.is_dir() {
                sync_dir(&archive)?;
            }
            sync_dir(&self.dir)
        })();
        if let Err(e) = &listed {
            self.fail_closed("a snapshot could not be completed", e);
        }
        listed
    }

    fn fail_closed(&mut self, why: &str, e: &LedgerError) {
        self.failed = Some(format!("{why} ({e}): reopen the ledger"));
    }
}

fn truncated(path: &Path, len: u64, bytes: u64) -> LedgerError {
    corrupt(
        path,
        len,
        format!(
            "the segment is {len} bytes long, {bytes} were allocated: it was truncated (acknowledged records may be lost)"
        ),
    )
}

/// A journal segment, a snapshot, or the temp file of one of them or of the manifest.
fn is_ours(name: &str) -> bool {
    let base = name.strip_suffix(".tmp").unwrap_or(name);
    base == "MANIFEST" && name != base
        || parse_name(base, "journal-", ".log").is_some()
        || parse_name(base, "snapshot-", ".snap").is_some()
}

fn remove(path: &Path) -> Result<(), LedgerError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("remove", path, &e)),
    }
}

fn list_names(dir: &Path) -> Result<Vec<String>, LedgerError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io("list", dir, &e))? {
        let entry = entry.map_err(|e| io("list", dir, &e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort_unstable();
    Ok(names)
}

pub(crate) fn read_manifest(dir: &Path, kind: Option<&str>) -> Result<Option<Manifest>, LedgerError> {
    let path = dir.join(MANIFEST);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("read", &path, &e)),
    };
    // A manifest is a few hundred bytes; anything far larger is not one.
    if bytes.len() > 1 << 20 {
        return Err(corrupt(&path, 0, "far too large to be a manifest"));
    }
    let text = String::from_utf8(bytes).map_err(|_| corrupt(&path, 0, "not text"))?;
    Manifest::parse(&text, &path, dir, kind).map(Some)
}

fn write_manifest_file(dir: &Path, m: &Manifest) -> Result<(), LedgerError> {
    let tmp = dir.join("MANIFEST.tmp");
    let path = dir.join(MANIFEST);
    let mut f = File::create(&tmp).map_err(|e| io("create", &tmp, &e))?;
    f.write_all(m.render().as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| io("write", &tmp, &e))?;
    fs::rename(&tmp, &path).map_err(|e| io("rename", &tmp, &e))?;
    sync_dir(dir)
}

fn lock(dir: &Path) -> Result<File, LedgerError> {
    let path = dir.join(LOCK);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io("create", &path, &e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(LedgerError::Locked {
            dir: dir.display().to_string(),
        }),
        Err(TryLockError::Error(e)) => Err(io("lock", &path, &e)),
    }
}

/// Overwrites `from..to` of `file` with zeros, a piece at a time.
fn zero(file: &mut File, path: &Path, from: u64, to: u64) -> Result<(), LedgerError> {
    if to <= from {
        return Ok(());
    }
    let zeros = vec![0u8; SCAN_CHUNK.min(usize::try_from(to - from).unwrap_or(SCAN_CHUNK))];
    file.seek(SeekFrom::Start(from)).map_err(|e| io("seek", path, &e))?;
    let mut at = from;
    while at < to {
        let n = zeros.len().min(usize::try_from(to - at).unwrap_or(zeros.len()));
        file.write_all(&zeros[..n]).map_err(|e| io("write", path, &e))?;
        at += n as u64;
    }
    Ok(())
}

/// Whether an unlisted segment holds a record (it should not); the first record's seq.
fn holds_records(path: &Path) -> Result<Option<u64>, LedgerError> {
    let mut file = File::open(path).map_err(|e| io("open", path, &e))?;
    let len = file.metadata().map_err(|e| io("read", path, &e))?.len();
    let mut header = [0u8; SEGMENT_HEADER as usize];
    if len < SEGMENT_HEADER {
        return Err(corrupt(path, 0, "an unlisted segment shorter than a segment header"));
    }
    file.read_exact(&mut header).map_err(|e| io("read", path, &e))?;
    // Segments are made under a temp name with their header synced: a named one with a
    // damaged header was not made by this store.
    let (first, _, _) = parse_segment_header(&header).map_err(|why| corrupt(path, 0, why))?;
    let after = scan_after(path, SEGMENT_HEADER - 1, len, first)?;
    Ok(after.found.map(|(_, seq)| seq))
}

/// What follows the end of a journal in its last segment.
struct After {
    /// A valid record that starts after `from`: its offset and seq.
    found: Option<(u64, u64)>,
    /// The end of the last byte that is not zero (at least `from`).
    nonzero_end: u64,
}

/// Reads `from..to` of a segment in bounded pieces: is there a whole, valid record with a
/// seq of at least `min_seq` starting after `from`, and where do the non-zero bytes end?
/// Memory is one piece; time is linear in `to - from` (at most a segment's size).
fn scan_after(path: &Path, from: u64, to: u64, min_seq: u64) -> Result<After, LedgerError> {
    let mut file = File::open(path).map_err(|e| io("open", path, &e))?;
    file.seek(SeekFrom::Start(from)).map_err(|e| io("seek", path, &e))?;
    let mut check = File::open(path).map_err(|e| io("open", path, &e))?;
    let keep = RECORD_HEADER - 1;
    let mut buf = vec![0u8; SCAN_CHUNK + keep];
    let (mut base, mut have) = (from, 0usize);
    let mut after = After {
        found: None,
        nonzero_end: from,
    };
    // Each record takes at least a header, so seqs past this cannot fit.
    let seq_span = (to.saturating_sub(from) / RECORD_HEADER as u64).saturating_add(1);
    loop {
        let want = usize::try_from((buf.len() as u64).min(to.saturating_sub(base))).unwrap_or(buf.len());
        while have < want {
            match file.read(&mut buf[have..want]) {
                Ok(0) => break,
                Ok(n) => have += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(io("read", path, &e)),
            }
        }
        let chunk = &buf[..have];
        if let Some(i) = chunk.iter().rposition(|&b| b != 0) {
            after.nonzero_end = after.nonzero_end.max(base + i as u64 + 1);
            // A valid header is never all zeros, so only a piece with data can hold one.
            for x in 0..have.saturating_sub(keep) {
                let at = base + x as u64;
                if at <= from {
                    continue;
                }
                let h = &chunk[x..x + RECORD_HEADER];
                let seq = le_u64(&h[8..]);
                let len = u64::from(le_u32(h));
                if seq < min_seq || seq - min_seq > seq_span || at + RECORD_HEADER as u64 + len > to || !header_ok(h) {
                    continue;
                }
                if payload_crc(&mut check, path, at + RECORD_HEADER as u64, len)? == le_u32(&h[4..]) {
                    after.found = Some((at, seq));
                    return Ok(after);
                }
            }
        }
        if have < want || base + have as u64 >= to || have <= keep {
            return Ok(after);
        }
        buf.copy_within(have - keep..have, 0);
        base += (have - keep) as u64;
        have = keep;
    }
}

/// The CRC32C of `len` bytes at `at`, read a piece at a time.
fn payload_crc(file: &mut File, path: &Path, at: u64, len: u64) -> Result<u32, LedgerError> {
    file.seek(SeekFrom::Start(at)).map_err(|e| io("seek", path, &e))?;
    let mut buf = vec![0u8; SCAN_CHUNK.min(usize::try_from(len).unwrap_or(SCAN_CHUNK))];
    let mut crc = super::checksum::Crc32c::new();
    let mut left = len;
    while left > 0 {
        let n = buf.len().min(usize::try_from(left).unwrap_or(buf.len()));
        file.read_exact(&mut buf[..n]).map_err(|e| io("read", path, &e))?;
        crc.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(crc.finish())
}

/// What the reader thread sends: a record to apply, in order.
struct Item {
    seq: u64,
    payload: Vec<u8>,
    path: PathBuf,
    offset: u64,
}

/// What to read: the segments (first seq, size, path) from the one holding the snapshot's
/// position, and what the manifest says about the end.
struct Plan {
    segments: Vec<(u64, u64, PathBuf)>,
    from_seq: u64,
    snapshot: Head,
    reach: Reach,
    closed: bool,
}

/// Where the journal ends.
struct Tail {
    head: Head,
    /// The end of the last whole record in the last segment.
    end: u64,
    /// The end of the bytes after it that are not zeros (a torn record); `end` if none.
    torn_end: u64,
    /// Bytes past the last segment's size.
    beyond: u64,
    /// Bytes of records read from the snapshot's position on.
    bytes: u64,
}

/// Why the records of a segment stop.
enum Stop {
    /// No room for another record header.
    Full,
    /// A header of zeros: nothing was written there.
    Zeros,
    /// A damaged record (torn, or corrupt: the caller decides), and where it ends if its
    /// header is intact.
    Damaged(&'static str, Option<u64>),
}

impl Stop {
    fn what(&self) -> &'static str {
        match self {
            Stop::Full => "the segment is full",
            Stop::Zeros => "nothing was written here (zeros)",
            Stop::Damaged(what, _) => what,
        }
    }
}

/// Reads the segments of `plan`, checking every record, and sends those from the
/// snapshot's position on. Runs in its own thread, so that checking overlaps applying.
#[allow(clippy::too_many_lines)] // one pass with every check in order, as docs/ledger.md lists them
fn read_journal(plan: &Plan, tx: &mpsc::SyncSender<Item>, pool: &mpsc::Receiver<Vec<u8>>) -> Result<Tail, LedgerError> {
    let mut head = plan.snapshot;
    let mut started = false;
    // Where and why the previous segment's records stopped.
    let mut stopped: Option<(PathBuf, u64, &'static str)> = None;
    let mut bytes = 0u64;
    let mut header = [0u8; RECORD_HEADER];
    let reach = plan.reach;
    for (i, (first, size, path)) in plan.segments.iter().enumerate() {
        let (first, size) = (*first, *size);
        let last = i + 1 == plan.segments.len();
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(corrupt(path, 0, format!("missing: {MANIFEST} names this segment")));
            }
            Err(e) => return Err(io("open", path, &e)),
        };
        let file_len = file.metadata().map_err(|e| io("read", path, &e))?.len();
        if file_len < size {
            return Err(truncated(path, file_len, size));
        }
        if size < SEGMENT_HEADER {
            return Err(corrupt(
                path,
                0,
                "the manifest lists a size smaller than a segment header",
            ));
        }
        let mut reader = BufReader::with_capacity(64 << 10, file);
        let mut seg_header = [0u8; SEGMENT_HEADER as usize];
        reader.read_exact(&mut seg_header).map_err(|e| io("read", path, &e))?;
        let (seg_first, prev, seg_size) = parse_segment_header(&seg_header).map_err(|why| corrupt(path, 0, why))?;
        if seg_first != first || seg_size != size {
            return Err(corrupt(
                path,
                0,
                format!(
                    "the header says records from {seg_first} on and {seg_size} bytes, {MANIFEST} says {first} and {size}"
                ),
            ));
        }
        if started {
            if first != head.records || prev != head.hash {
                return Err(match stopped.take() {
                    Some((p, at, why)) => corrupt(
                        &p,
                        at,
                        format!(
                            "{why} at record {}, but the next segment starts at record {first}: records are missing or damaged",
                            head.records
                        ),
                    ),
                    None => corrupt(path, 0, "the segment does not continue the previous one (another hash)"),
                });
            }
        } else {
            if first > plan.from_seq || (first == plan.from_seq && prev != plan.snapshot.hash) {
                return Err(corrupt(path, 0, "the journal does not continue the snapshot's chain"));
            }
            head = Head {
                records: first,
                hash: prev,
            };
            started = true;
        }
        let mut offset = SEGMENT_HEADER;
        let at_reach = |head: &Head, offset: u64| -> Result<(), LedgerError> {
            if last && head.records == reach.records && head.hash != reach.hash {
                return Err(corrupt(
                    path,
                    offset,
                    format!(
                        "the journal differs here from the one {MANIFEST} recorded at record {} (another chain hash)",
                        reach.records
                    ),
                ));
            }
            Ok(())
        };
        at_reach(&head, offset)?;
        let stop = loop {
            if offset + RECORD_HEADER as u64 > size {
                break Stop::Full;
            }
            reader.read_exact(&mut header).map_err(|e| io("read", path, &e))?;
            if header.iter().all(|&b| b == 0) {
                break Stop::Zeros;
            }
            if !header_ok(&header) {
                break Stop::Damaged("the record's header checksum does not match", None);
            }
            // The header is whole (its checksum holds): from here on a mismatch is not a
            // torn header.
            let len = le_u32(&header) as usize;
            if offset + (RECORD_HEADER + len) as u64 > size {
                return Err(corrupt(path, offset, "the record's length runs past the segment's end"));
            }
            let seq = le_u64(&header[8..]);
            if seq != head.records {
                return Err(corrupt(
                    path,
                    offset,
                    format!("record {seq} found, {} expected", head.records),
                ));
            }
            if hash_of(&header[16..]) != head.hash {
                return Err(corrupt(
                    path,
                    offset,
                    "the record does not name the hash of the record before it (the chain is broken)",
                ));
            }
            // Buffers come back from the applying side, so that a record's memory is
            // mapped once, not once per record.
            let mut payload = pool.try_recv().unwrap_or_default();
            payload.resize(len, 0);
            reader.read_exact(&mut payload).map_err(|e| io("read", path, &e))?;
            if crc32c(&payload) != le_u32(&header[4..]) {
                let end = offset + (RECORD_HEADER + len) as u64;
                break Stop::Damaged("the record's checksum does not match", Some(end));
            }
            if seq == plan.from_seq && head.hash != plan.snapshot.hash {
                return Err(corrupt(
                    path,
                    offset,
                    "the journal does not continue the snapshot's chain",
                ));
            }
            head = Head {
                records: seq + 1,
                hash: record_hash(&header, &payload),
            };
            let record_at = offset;
            offset += (RECORD_HEADER + len) as u64;
            if seq >= plan.from_seq {
                bytes += (RECORD_HEADER + len) as u64;
                let item = Item {
                    seq,
                    payload,
                    path: path.clone(),
                    offset: record_at,
                };
                if tx.send(item).is_err() {
                    // The applying side stopped on an error of its own, which it reports.
                    return Ok(Tail {
                        head,
                        end: offset,
                        torn_end: offset,
                        beyond: 0,
                        bytes,
                    });
                }
            }
            at_reach(&head, offset)?;
        };
        if !last {
            stopped = Some((path.clone(), offset, stop.what()));
            continue;
        }
        // The last segment: where its records stop is the end of the journal, if that is
        // not before the position the manifest recorded, and nothing valid follows.
        if head.records < reach.records {
            return Err(corrupt(
                path,
                offset,
                format!(
                    "{} at record {}, but {MANIFEST} records that the journal reached record {}: acknowledged records are lost",
                    stop.what(),
                    head.records,
                    reach.records
                ),
            ));
        }
        // After a clean close the journal ends exactly where the manifest says: nothing
        // to look for after it.
        let clean = plan.closed && head.records == reach.records && !matches!(stop, Stop::Damaged(..));
        let torn_end = if clean {
            offset
        } else {
            let after = scan_after(path, offset, size, head.records)?;
            if let Some((at, seq)) = after.found {
                return Err(corrupt(
                    path,
                    offset,
                    format!(
                        "{} at record {}, but a valid record ({seq}) follows at byte {at}: damage, not a torn write",
                        stop.what(),
                        head.records
                    ),
                ));
            }
            // Appends are synced one after the other: a record with bytes written after
            // it was synced before them, so it was acknowledged; only the last can be torn.
            if let Stop::Damaged(what, Some(end)) = stop
                && after.nonzero_end > end
            {
                return Err(corrupt(
                    path,
                    offset,
                    format!(
                        "{what} at record {}, and bytes were written after it (up to byte {}): it is not a torn last record",
                        head.records, after.nonzero_end
                    ),
                ));
            }
            after.nonzero_end.max(offset)
        };
        return Ok(Tail {
            head,
            end: offset,
            torn_end,
            beyond: file_len - size,
            bytes,
        });
    }
    Err(corrupt(Path::new(MANIFEST), 0, "it lists no segment to read"))
}

impl Storage for FileStore {
    fn load(&mut self, visit: &mut dyn FnMut(Loaded<'_>) -> Result<(), LedgerError>) -> Result<Recovery, LedgerError> {
        if self.writable {
            return self.load_once(visit);
        }
        // Read-only, a writer may be appending and removing files meanwhile: damage is
        // real only if it is found twice in the same place (file and offset).
        let place = |e: &LedgerError| match e {
            LedgerError::Corrupt { file, offset, .. } => Some((file.clone(), *offset)),
            _ => None,
        };
        let mut last: Option<(String, u64)> = None;
        for attempt in 0..READ_ATTEMPTS {
            match self.load_once(visit) {
                Err(e @ LedgerError::Corrupt { .. }) => {
                    if last.is_some() && last == place(&e) {
                        return Err(e);
                    }
                    last = place(&e);
                    std::thread::sleep(std::time::Duration::from_millis(5 << attempt));
                }
                other => return other,
            }
        }
        Err(LedgerError::Unavailable {
            reason: format!(
                "the store changed under each of {READ_ATTEMPTS} reads (a writer at work), each time in another place: read it again"
            ),
        })
    }

    fn append(&mut self, payload: &[u8]) -> Result<(), LedgerError> {
        if let Some(why) = &self.failed {
            return Err(LedgerError::Unavailable { reason: why.clone() });
        }
        let Some(cur) = self.current.as_ref() else {
            return Err(LedgerError::Unavailable {
                reason: "the store is not open for writing (load it first)".into(),
            });
        };
        let Some(header) = record_header(payload, self.head.records, &self.head.hash) else {
            return Err(LedgerError::Unavailable {
                reason: format!("a record of {} bytes is beyond the 4 GiB limit", payload.len()),
            });
        };
        let need = (RECORD_HEADER + payload.len()) as u64;
        if cur.end + need > cur.bytes {
            self.roll(need)?;
        }
        let Some(cur) = self.current.as_mut() else {
            return Err(LedgerError::Unavailable {
                reason: "the store is not open for writing".into(),
            });
        };
        let (file, path) = (&mut cur.file, &cur.path);
        let written = file
            .write_all(&header)
            .and_then(|()| file.write_all(payload))
            .map_err(|e| io("write", path, &e));
        // The record's hash is needed only by the next record: for a large record it is
        // computed while another thread waits for the sync.
        let (synced, hash) = if payload.len() >= OVERLAP_HASH_BYTES && written.is_ok() {
            let file = &*file;
            std::thread::scope(|scope| {
                let sync = scope.spawn(|| file.sync_data());
                let hash = record_hash(&header, payload);
                let synced = sync
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("the sync thread panicked")));
                (synced, hash)
            })
        } else {
            (file.sync_data(), record_hash(&header, payload))
        };
        let written = written.and_then(|()| synced.map_err(|e| io("sync", path, &e)));
        if let Err(e) = written {
            // After a failed write or sync the file's state is unknown (the kernel may have
            // dropped the pages it could not write): no further record, until reopened.
            self.fail_closed("the journal failed", &e);
            return Err(e);
        }
        cur.end += need;
        self.head = Head {
            records: self.head.records + 1,
            hash,
        };
        self.since_snapshot += need;
        Ok(())
    }

    fn save_snapshot(&mut self, state: &[u8]) -> Result<(), LedgerError> {
        self.check_writable()?;
        let seq = self.head.records;
        write_snapshot_file(&self.dir, seq, &self.head.hash, state)?;
        // From here on a failure leaves the store unable to take records until reopened
        // (the next open removes the unlisted snapshot or segment).
        let listed = self
            .rotate_for_snapshot(seq)
            .and_then(|()| self.list_snapshot(seq, (SNAPSHOT_HEADER + state.len()) as u64));
        self.since_snapshot = 0;
        listed
    }

    fn begin_snapshot(&mut self, state: Vec<u8>) -> Result<SnapshotJob, LedgerError> {
        self.check_writable()?;
        let seq = self.head.records;
        // The segment boundary at the snapshot is made and listed now, before any later
        // record is appended: records after the snapshot go to the new segment, and older
        // segments can be removed once the snapshot is listed.
        self.rotate_for_snapshot(seq)?;
        self.since_snapshot = 0;
        let (dir, hash) = (self.dir.clone(), self.head.hash);
        let bytes = (SNAPSHOT_HEADER + state.len()) as u64;
        self.pending_snapshot = Some((seq, bytes));
        Ok(SnapshotJob::new(seq, move || {
            write_snapshot_file(&dir, seq, &hash, &state)
        }))
    }

    fn finish_snapshot(&mut self, job: &SnapshotJob) -> Result<(), LedgerError> {
        let Some((seq, bytes)) = self.pending_snapshot.take().filter(|p| p.0 == job.records()) else {
            return Err(LedgerError::Unavailable {
                reason: format!("no snapshot of record {} was begun", job.records()),
            });
        };
        self.check_writable()?;
        self.list_snapshot(seq, bytes)
    }

    fn head(&self) -> Head {
        self.head
    }

    fn bytes_since_snapshot(&self) -> u64 {
        self.since_snapshot
    }

    fn close(&mut self) -> Result<(), LedgerError> {
        if !self.writable || !self.loaded || self.failed.is_some() {
            return Ok(());
        }
        let Some(cur) = &self.current else {
            return Ok(());
        };
        // The journal ends exactly here: the next open need not look past it, and a
        // journal that ends earlier is damage.
        self.manifest.reach = Reach {
            records: self.head.records,
            offset: cur.end,
            hash: self.head.hash,
        };
        self.manifest.closed = true;
        self.save_manifest()?;
        self.failed = Some("the store was closed".into());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_header_of_zeros_never_passes_its_checksum() {
        assert!(!header_ok(&[0u8; RECORD_HEADER]));
        let h = record_header(b"payload", 3, &[9u8; 32]).unwrap();
        assert!(header_ok(&h));
    }
}
