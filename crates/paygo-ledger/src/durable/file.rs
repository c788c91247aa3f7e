//! The embedded store: journal segments and snapshots in a directory.

use std::fs::{self, File, TryLockError};
use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use super::checksum::{ChainHasher, Crc32c, HASH_LEN, crc32c};
use super::{Head, Loaded, Recovery, Storage};
use crate::LedgerError;

const MANIFEST: &str = "MANIFEST";
const LOCK: &str = "LOCK";
const FORMAT: &str = "2";
const SEGMENT_MAGIC: &[u8; 8] = b"PGYLJRN1";
const SNAPSHOT_MAGIC: &[u8; 8] = b"PGYLSNP1";
/// magic, first seq, previous hash, crc, reserved.
const SEGMENT_HEADER: u64 = 56;
/// length, crc, seq, previous hash.
const RECORD_HEADER: usize = 48;
/// magic, seq, head hash, state length, crc, reserved.
const SNAPSHOT_HEADER: usize = 64;
/// Records from this size on are hashed while another thread waits for their sync.
const OVERLAP_HASH_BYTES: usize = 64 << 10;
/// Snapshots kept: the newest and the one before (and the journal after the older one).
const SNAPSHOTS_KEPT: usize = 2;

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

fn segment_name(first: u64) -> String {
    format!("journal-{first:020}.log")
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

fn segment_header(first: u64, prev: &[u8; HASH_LEN]) -> Vec<u8> {
    let mut h = Vec::with_capacity(SEGMENT_HEADER as usize);
    h.extend_from_slice(SEGMENT_MAGIC);
    h.extend_from_slice(&first.to_le_bytes());
    h.extend_from_slice(prev);
    let crc = crc32c(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h.extend_from_slice(&[0u8; 4]);
    h
}

/// Checks a segment header: its first record and the hash before it.
fn parse_segment_header(b: &[u8]) -> Result<(u64, [u8; HASH_LEN]), String> {
    if b.len() < SEGMENT_HEADER as usize {
        return Err("the segment header is incomplete".into());
    }
    if &b[..8] != SEGMENT_MAGIC {
        return Err("the segment does not start with the journal's magic bytes".into());
    }
    if le_u32(&b[48..]) != crc32c(&b[..48]) || le_u32(&b[52..]) != 0 {
        return Err("the segment header's checksum does not match".into());
    }
    Ok((le_u64(&b[8..]), hash_of(&b[16..])))
}

/// The checksum of a record: over its length, seq, previous hash and payload.
fn record_crc(header: &[u8], payload: &[u8]) -> u32 {
    let mut c = Crc32c::new();
    c.update(&header[0..4]);
    c.update(&header[8..RECORD_HEADER]);
    c.update(payload);
    c.finish()
}

fn record_hash(header: &[u8], payload: &[u8]) -> [u8; HASH_LEN] {
    let mut h = ChainHasher::new();
    h.update(header);
    h.update(payload);
    h.finish()
}

/// The store in a directory: `MANIFEST` (what it is), `LOCK` (held by the writer),
/// `journal-<first seq>.log` segments and `snapshot-<seq>.snap` snapshots. See
/// `docs/ledger.md` for the format.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    writable: bool,
    _lock: Option<File>,
    /// The segment being appended to, its first seq and its length.
    current: Option<(File, PathBuf, u64, u64)>,
    /// First seqs of the segments on disk, ascending.
    segments: Vec<u64>,
    /// Seqs of the snapshots on disk, ascending.
    snapshots: Vec<u64>,
    head: Head,
    since_snapshot: u64,
    loaded: bool,
    failed: Option<String>,
    /// Load from the oldest snapshot kept, so that every record kept is checked.
    audit: bool,
}

impl FileStore {
    /// Opens the store in `dir` for `kind` (see [`super::Durable::KIND`]). Writable: creates
    /// the directory and the store if needed and locks it; read-only: writes nothing. Call
    /// [`Storage::load`] next.
    ///
    /// # Errors
    ///
    /// [`LedgerError::MissingDirectory`] (read-only, no directory or no store in it);
    /// [`LedgerError::Foreign`] for a directory with other files and no `MANIFEST`, or a
    /// store of another kind or format; [`LedgerError::Locked`] when another writer has it;
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
        let manifest_path = dir.join(MANIFEST);
        let manifest = match fs::read_to_string(&manifest_path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(io("read", &manifest_path, &e)),
        };
        let Some(manifest) = manifest else {
            // No manifest: only an empty directory (or one left by a crash while it was
            // being created) becomes a store.
            let entries = fs::read_dir(dir).map_err(|e| io("list", dir, &e))?;
            for entry in entries {
                let entry = entry.map_err(|e| io("list", dir, &e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
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
            let lock = lock(dir, true)?;
            let tmp = dir.join("MANIFEST.tmp");
            let text = format!("paygo-ledger durable store\nformat: {FORMAT}\nkind: {kind}\n");
            write_synced(&tmp, text.as_bytes())?;
            fs::rename(&tmp, &manifest_path).map_err(|e| io("rename", &tmp, &e))?;
            sync_dir(dir)?;
            return Ok(FileStore::new(dir, true, lock));
        };
        let mut lines = manifest.lines();
        let format = manifest.lines().find_map(|l| l.strip_prefix("format: "));
        let found = manifest.lines().find_map(|l| l.strip_prefix("kind: "));
        if lines.next() != Some("paygo-ledger durable store") || format != Some(FORMAT) {
            return Err(LedgerError::Foreign {
                dir: shown,
                why: format!("its {MANIFEST} is not that of a format {FORMAT} paygo ledger store"),
            });
        }
        if found != Some(kind) {
            return Err(LedgerError::Foreign {
                dir: shown,
                why: format!("it holds a {} store, a {kind} store was expected", found.unwrap_or("?")),
            });
        }
        let lock = lock(dir, writable)?;
        Ok(FileStore::new(dir, writable, lock))
    }

    fn new(dir: &Path, writable: bool, lock: Option<File>) -> FileStore {
        FileStore {
            dir: dir.to_path_buf(),
            writable,
            _lock: lock,
            current: None,
            segments: Vec::new(),
            snapshots: Vec::new(),
            head: Head::default(),
            since_snapshot: 0,
            loaded: false,
            failed: None,
            audit: false,
        }
    }

    /// The same store, loading from the oldest snapshot it keeps instead of the newest,
    /// so that [`Storage::load`] reads and checks every record the directory holds (for
    /// `verify`); the state is the same.
    #[must_use]
    pub fn audit(mut self) -> FileStore {
        self.audit = true;
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn list(&self) -> Result<(Vec<u64>, Vec<u64>), LedgerError> {
        let (mut segments, mut snapshots) = (Vec::new(), Vec::new());
        for entry in fs::read_dir(&self.dir).map_err(|e| io("list", &self.dir, &e))? {
            let entry = entry.map_err(|e| io("list", &self.dir, &e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(first) = parse_name(&name, "journal-", ".log") {
                segments.push(first);
            } else if let Some(seq) = parse_name(&name, "snapshot-", ".snap") {
                snapshots.push(seq);
            } else if self.writable && Path::new(&name).extension().is_some_and(|e| e == "tmp") {
                // A snapshot whose write was interrupted: never renamed, so never used.
                let path = entry.path();
                fs::remove_file(&path).map_err(|e| io("remove", &path, &e))?;
            }
        }
        segments.sort_unstable();
        snapshots.sort_unstable();
        Ok((segments, snapshots))
    }

    /// Reads and checks a snapshot: its seq, head hash and state.
    fn read_snapshot(&self, seq: u64) -> Result<(Head, Vec<u8>), LedgerError> {
        let path = self.dir.join(snapshot_name(seq));
        let mut bytes = fs::read(&path).map_err(|e| io("read", &path, &e))?;
        let fail = |what: &str| Err(corrupt(&path, 0, what));
        if bytes.len() < SNAPSHOT_HEADER || &bytes[..8] != SNAPSHOT_MAGIC {
            return fail("not a snapshot (no magic bytes)");
        }
        let len = le_u64(&bytes[48..]);
        if Some(bytes.len() as u64) != len.checked_add(SNAPSHOT_HEADER as u64) {
            return fail("its length does not match its header");
        }
        let mut c = Crc32c::new();
        c.update(&bytes[..56]);
        c.update(&bytes[SNAPSHOT_HEADER..]);
        if c.finish() != le_u32(&bytes[56..]) || le_u32(&bytes[60..]) != 0 {
            return fail("its checksum does not match");
        }
        if le_u64(&bytes[8..]) != seq {
            return fail("its seq differs from its name");
        }
        let head = Head {
            records: seq,
            hash: hash_of(&bytes[16..]),
        };
        // The state in place: no second copy of what can be a large file.
        bytes.drain(..SNAPSHOT_HEADER);
        Ok((head, bytes))
    }

    /// The newest snapshot that passes its checks (the oldest, auditing); the damaged
    /// ones passed over are listed in `skipped`.
    #[allow(clippy::type_complexity)]
    fn choose_snapshot(
        &self,
        snapshots: &[u64],
        skipped: &mut Vec<String>,
    ) -> Result<Option<(Head, Vec<u8>)>, LedgerError> {
        let order: Vec<u64> = if self.audit {
            snapshots.to_vec()
        } else {
            snapshots.iter().rev().copied().collect()
        };
        for seq in order {
            match self.read_snapshot(seq) {
                Ok(found) => return Ok(Some(found)),
                Err(e @ LedgerError::Corrupt { .. }) => skipped.push(e.to_string()),
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    fn new_segment(&mut self, first: u64) -> Result<(), LedgerError> {
        let path = self.dir.join(segment_name(first));
        let mut file = fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(|e| io("create", &path, &e))?;
        file.write_all(&segment_header(first, &self.head.hash))
            .and_then(|()| file.sync_data())
            .map_err(|e| io("write", &path, &e))?;
        sync_dir(&self.dir)?;
        if !self.segments.contains(&first) {
            self.segments.push(first);
            self.segments.sort_unstable();
        }
        self.current = Some((file, path, first, SEGMENT_HEADER));
        Ok(())
    }

    fn open_for_append(&mut self, first: u64, end: u64) -> Result<(), LedgerError> {
        let path = self.dir.join(segment_name(first));
        let file = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| io("open", &path, &e))?;
        let len = file.metadata().map_err(|e| io("read", &path, &e))?.len();
        if len != end {
            // Cut the torn tail before anything new is written after it.
            file.set_len(end)
                .and_then(|()| file.sync_all())
                .map_err(|e| io("truncate", &path, &e))?;
        }
        let mut file = file;
        file.seek(SeekFrom::Start(end)).map_err(|e| io("seek", &path, &e))?;
        self.current = Some((file, path, first, end));
        Ok(())
    }

    /// The steps of a snapshot after its rename: the directory sync, a new segment, and the
    /// removal of what no snapshot needs any more.
    fn finish_snapshot(&mut self, seq: u64) -> Result<(), LedgerError> {
        sync_dir(&self.dir)?;
        if !self.snapshots.contains(&seq) {
            self.snapshots.push(seq);
        }
        self.since_snapshot = 0;
        // Start a new segment, so that older ones can be removed once they are not needed.
        let rotate = match &self.current {
            Some((_, _, first, len)) => *first != seq && *len > SEGMENT_HEADER,
            None => true,
        };
        if rotate {
            self.new_segment(seq)?;
        }
        self.remove_old()
    }

    fn remove_old(&mut self) -> Result<(), LedgerError> {
        if self.snapshots.len() <= SNAPSHOTS_KEPT {
            return Ok(());
        }
        let keep_from = self.snapshots[self.snapshots.len() - SNAPSHOTS_KEPT];
        for seq in self.snapshots.iter().filter(|&&s| s < keep_from) {
            let path = self.dir.join(snapshot_name(*seq));
            fs::remove_file(&path).map_err(|e| io("remove", &path, &e))?;
        }
        self.snapshots.retain(|&s| s >= keep_from);
        // A segment whose records all come before the older kept snapshot is not needed.
        let firsts = self.segments.clone();
        for w in firsts.windows(2) {
            if w[1] <= keep_from {
                let path = self.dir.join(segment_name(w[0]));
                fs::remove_file(&path).map_err(|e| io("remove", &path, &e))?;
                self.segments.retain(|&s| s != w[0]);
            }
        }
        sync_dir(&self.dir)
    }
}

fn lock(dir: &Path, writable: bool) -> Result<Option<File>, LedgerError> {
    let path = dir.join(LOCK);
    let file = if writable {
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io("create", &path, &e))?
    } else {
        match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("open", &path, &e)),
        }
    };
    let locked = if writable {
        file.try_lock()
    } else {
        file.try_lock_shared()
    };
    match locked {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Err(LedgerError::Locked {
            dir: dir.display().to_string(),
        }),
        Err(TryLockError::Error(e)) => Err(io("lock", &path, &e)),
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), LedgerError> {
    let mut f = File::create(path).map_err(|e| io("create", path, &e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_data())
        .map_err(|e| io("write", path, &e))
}

/// What the reader thread sends: a record to apply, in order.
struct Item {
    seq: u64,
    payload: Vec<u8>,
    path: PathBuf,
    offset: u64,
}

/// Where the journal ends.
struct Tail {
    /// The last segment's first seq and the end of its last whole record.
    segment: Option<(u64, u64)>,
    /// Whether the last segment's header itself was torn (it is rewritten).
    header_torn: bool,
    torn_bytes: u64,
    head: Head,
}

/// Whether a whole, valid record with a seq at or after `min_seq` starts anywhere in
/// `rest` after its first byte.
fn valid_record_after(rest: &[u8], min_seq: u64) -> bool {
    (1..rest.len().saturating_sub(RECORD_HEADER - 1)).any(|at| {
        let h = &rest[at..at + RECORD_HEADER];
        let s = le_u64(&h[8..]);
        let len = le_u32(h) as usize;
        s >= min_seq
            && s - min_seq < 1 << 32
            && at + RECORD_HEADER + len <= rest.len()
            && record_crc(h, &rest[at + RECORD_HEADER..at + RECORD_HEADER + len]) == le_u32(&h[4..])
    })
}

/// Reads the segments from `start` on, checking every record, and sends those from
/// `from_seq` on. Runs in its own thread, so that checking overlaps applying.
#[allow(clippy::too_many_lines)] // one pass with every check in order, as docs/ledger.md lists them
fn read_journal(
    dir: &Path,
    segments: &[u64],
    from_seq: u64,
    snapshot_head: Head,
    tx: &mpsc::SyncSender<Item>,
    pool: &mpsc::Receiver<Vec<u8>>,
) -> Result<Tail, LedgerError> {
    let mut head = Head::default();
    let mut tail = Tail {
        segment: None,
        header_torn: false,
        torn_bytes: 0,
        head: snapshot_head,
    };
    let mut header = [0u8; RECORD_HEADER];
    for (i, &first) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let path = dir.join(segment_name(first));
        let file = File::open(&path).map_err(|e| io("open", &path, &e))?;
        let file_len = file.metadata().map_err(|e| io("read", &path, &e))?.len();
        let mut reader = BufReader::with_capacity(64 << 10, file);
        let mut seg_header = vec![0u8; SEGMENT_HEADER as usize];
        let got = read_full(&mut reader, &mut seg_header).map_err(|e| io("read", &path, &e))?;
        let parsed = if got == seg_header.len() {
            parse_segment_header(&seg_header)
        } else {
            Err("the segment header is incomplete".into())
        };
        let (seg_first, prev) = match parsed {
            Ok(p) => p,
            Err(why) => {
                // A crash while a new segment was being started leaves a torn header; it
                // holds no record then.
                let rest = read_rest(&path, 0)?;
                let expected = if i == 0 { snapshot_head.records } else { head.records };
                if last && !valid_record_after(&rest, first) && first == expected {
                    tail.segment = Some((first, 0));
                    tail.header_torn = true;
                    tail.torn_bytes = file_len;
                    if i > 0 {
                        tail.head = head;
                    }
                    return Ok(tail);
                }
                return Err(corrupt(&path, 0, why));
            }
        };
        if seg_first != first {
            return Err(corrupt(
                &path,
                0,
                format!("the header says it starts at record {seg_first}"),
            ));
        }
        if i == 0 {
            head = Head {
                records: first,
                hash: prev,
            };
            if first == from_seq && prev != snapshot_head.hash {
                return Err(corrupt(&path, 0, "the journal does not continue the snapshot's chain"));
            }
        } else if first != head.records || prev != head.hash {
            return Err(corrupt(
                &path,
                0,
                format!(
                    "the segment does not continue the previous one (record {first}, {} expected, or another hash)",
                    head.records
                ),
            ));
        }
        let mut offset = SEGMENT_HEADER;
        loop {
            let got = read_full(&mut reader, &mut header).map_err(|e| io("read", &path, &e))?;
            if got == 0 {
                break;
            }
            let len = le_u32(&header) as usize;
            let whole = got == RECORD_HEADER && offset + (RECORD_HEADER + len) as u64 <= file_len;
            // Buffers come back from the applying side, so that a record's memory is
            // mapped once, not once per record.
            let mut payload = pool.try_recv().unwrap_or_default();
            let mut problem = None;
            if whole {
                payload.resize(len, 0);
                reader.read_exact(&mut payload).map_err(|e| io("read", &path, &e))?;
                if record_crc(&header, &payload) != le_u32(&header[4..]) {
                    problem = Some("the record's checksum does not match".to_owned());
                }
            } else {
                problem = Some("the record is incomplete".to_owned());
            }
            if let Some(what) = problem {
                let rest = read_rest(&path, offset)?;
                // Every append is synced before the next one starts, so only the very last
                // record can be torn: one that is incomplete, or damaged and ending exactly
                // at the end of the file. Damage anywhere else is corruption.
                let at_end = whole && offset + (RECORD_HEADER + len) as u64 == file_len;
                if last && (!whole || at_end) && !valid_record_after(&rest, head.records + 1) {
                    tail.torn_bytes = file_len - offset;
                    break;
                }
                return Err(corrupt(&path, offset, what));
            }
            let seq = le_u64(&header[8..]);
            if seq != head.records {
                return Err(corrupt(
                    &path,
                    offset,
                    format!("record {seq} found, {} expected", head.records),
                ));
            }
            if hash_of(&header[16..]) != head.hash {
                return Err(corrupt(
                    &path,
                    offset,
                    "the record does not name the hash of the record before it (the chain is broken)",
                ));
            }
            if seq == from_seq && head.hash != snapshot_head.hash {
                return Err(corrupt(
                    &path,
                    offset,
                    "the journal does not continue the snapshot's chain",
                ));
            }
            head = Head {
                records: seq + 1,
                hash: record_hash(&header, &payload),
            };
            if seq >= from_seq {
                let item = Item {
                    seq,
                    payload,
                    path: path.clone(),
                    offset,
                };
                if tx.send(item).is_err() {
                    // The applying side stopped on an error of its own, which it reports.
                    return Ok(tail);
                }
            }
            offset += (RECORD_HEADER + len) as u64;
        }
        tail.segment = Some((first, offset));
    }
    if head.records < from_seq && !segments.is_empty() {
        let path = dir.join(segment_name(segments[segments.len() - 1]));
        return Err(corrupt(
            &path,
            0,
            format!(
                "the journal ends at record {}, before the snapshot's {from_seq}",
                head.records
            ),
        ));
    }
    if head.records >= from_seq {
        tail.head = head;
    }
    Ok(tail)
}

/// Reads until `buf` is full or the end of the file; returns how much was read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn read_rest(path: &Path, offset: u64) -> Result<Vec<u8>, LedgerError> {
    let mut f = File::open(path).map_err(|e| io("open", path, &e))?;
    f.seek(SeekFrom::Start(offset)).map_err(|e| io("seek", path, &e))?;
    let mut rest = Vec::new();
    f.read_to_end(&mut rest).map_err(|e| io("read", path, &e))?;
    Ok(rest)
}

impl Storage for FileStore {
    fn load(&mut self, visit: &mut dyn FnMut(Loaded<'_>) -> Result<(), LedgerError>) -> Result<Recovery, LedgerError> {
        let (segments, snapshots) = self.list()?;
        let mut recovery = Recovery::default();
        let chosen = self.choose_snapshot(&snapshots, &mut recovery.skipped_snapshots)?;
        self.segments.clone_from(&segments);
        // Snapshots newer than the chosen one failed their checks: they must never count
        // as one of the snapshots kept (removing the good one they would replace).
        let chosen_seq = chosen.as_ref().map_or(u64::MAX, |(h, _)| h.records);
        self.snapshots = snapshots.iter().copied().filter(|&s| s <= chosen_seq).collect();
        let Some((snap_head, state)) = chosen else {
            if snapshots.is_empty() && segments.is_empty() {
                recovery.fresh = true;
                self.loaded = true;
                return Ok(recovery);
            }
            let what = match recovery.skipped_snapshots.first() {
                Some(why) => format!("no usable snapshot: {why}"),
                None => "journal segments without a snapshot".to_owned(),
            };
            return Err(corrupt(&self.dir, 0, what));
        };
        // Replay from the last segment that starts at or before the snapshot.
        let start = segments.iter().rposition(|&f| f <= snap_head.records).unwrap_or(0);
        let replayed: Vec<u64> = segments[start..].to_vec();
        if let Some(&first) = replayed.first()
            && first > snap_head.records
        {
            return Err(corrupt(
                &self.dir.join(segment_name(first)),
                0,
                format!("records {} to {} are missing", snap_head.records, first - 1),
            ));
        }
        let mut journal_bytes = 0;
        for &f in &replayed {
            let path = self.dir.join(segment_name(f));
            journal_bytes += fs::metadata(&path).map_err(|e| io("read", &path, &e))?.len();
        }
        recovery.snapshot_records = snap_head.records;
        visit(Loaded::Snapshot {
            records: snap_head.records,
            state: &state,
            journal_bytes,
        })
        .map_err(|e| corrupt(&self.dir.join(snapshot_name(snap_head.records)), 0, e.to_string()))?;
        drop(state);
        let dir = self.dir.clone();
        let (tx, rx) = mpsc::sync_channel::<Item>(4);
        let (give_back, pool) = mpsc::channel::<Vec<u8>>();
        let (tail, applied) = std::thread::scope(|scope| {
            let reader = scope.spawn(move || read_journal(&dir, &replayed, snap_head.records, snap_head, &tx, &pool));
            let mut applied: Result<u64, LedgerError> = Ok(0);
            for item in &rx {
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
        recovery.torn_bytes = tail.torn_bytes;
        recovery.head = tail.head;
        self.head = tail.head;
        if self.writable {
            match tail.segment {
                Some((first, _)) if tail.header_torn => self.new_segment(first)?,
                Some((first, end)) => self.open_for_append(first, end)?,
                None => self.new_segment(self.head.records)?,
            }
            // The journal replayed counts towards the next automatic snapshot, so that a
            // process restarted often still takes one (restart time stays bounded).
            self.since_snapshot = journal_bytes;
        }
        self.loaded = true;
        Ok(recovery)
    }

    fn append(&mut self, payload: &[u8]) -> Result<(), LedgerError> {
        if let Some(why) = &self.failed {
            return Err(LedgerError::Unavailable { reason: why.clone() });
        }
        let Some((file, path, _, len)) = self.current.as_mut() else {
            return Err(LedgerError::Unavailable {
                reason: "the store is not open for writing (load it first)".into(),
            });
        };
        let Ok(payload_len) = u32::try_from(payload.len()) else {
            return Err(LedgerError::Unavailable {
                reason: format!("a record of {} bytes is beyond the 4 GiB limit", payload.len()),
            });
        };
        let mut header = [0u8; RECORD_HEADER];
        header[0..4].copy_from_slice(&payload_len.to_le_bytes());
        header[8..16].copy_from_slice(&self.head.records.to_le_bytes());
        header[16..48].copy_from_slice(&self.head.hash);
        let crc = record_crc(&header, payload);
        header[4..8].copy_from_slice(&crc.to_le_bytes());
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
            self.failed = Some(format!("the journal failed ({e}): reopen the ledger"));
            return Err(e);
        }
        *len += (RECORD_HEADER + payload.len()) as u64;
        self.head = Head {
            records: self.head.records + 1,
            hash,
        };
        self.since_snapshot += (RECORD_HEADER + payload.len()) as u64;
        Ok(())
    }

    fn save_snapshot(&mut self, state: &[u8]) -> Result<(), LedgerError> {
        if !self.writable || !self.loaded {
            return Err(LedgerError::Unavailable {
                reason: "the store is not open for writing".into(),
            });
        }
        if let Some(why) = &self.failed {
            return Err(LedgerError::Unavailable { reason: why.clone() });
        }
        let seq = self.head.records;
        let mut header = Vec::with_capacity(SNAPSHOT_HEADER);
        header.extend_from_slice(SNAPSHOT_MAGIC);
        header.extend_from_slice(&seq.to_le_bytes());
        header.extend_from_slice(&self.head.hash);
        header.extend_from_slice(&(state.len() as u64).to_le_bytes());
        let mut c = Crc32c::new();
        c.update(&header);
        c.update(state);
        header.extend_from_slice(&c.finish().to_le_bytes());
        header.extend_from_slice(&[0u8; 4]);
        let name = snapshot_name(seq);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let path = self.dir.join(&name);
        {
            let mut f = File::create(&tmp).map_err(|e| io("create", &tmp, &e))?;
            f.write_all(&header)
                .and_then(|()| f.write_all(state))
                .and_then(|()| f.sync_data())
                .map_err(|e| io("write", &tmp, &e))?;
        }
        fs::rename(&tmp, &path).map_err(|e| io("rename", &tmp, &e))?;
        // From here on the snapshot may be what the next open starts from: if anything
        // after the rename fails, the store takes no more records (they could land in a
        // segment that the next open would not replay) until it is reopened.
        let after = self.finish_snapshot(seq);
        if let Err(e) = &after {
            self.failed = Some(format!("a snapshot could not be completed ({e}): reopen the ledger"));
        }
        after
    }

    fn head(&self) -> Head {
        self.head
    }

    fn bytes_since_snapshot(&self) -> u64 {
        self.since_snapshot
    }
}
