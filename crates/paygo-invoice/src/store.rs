//! Gapless sequence numbers: the [`SequenceStore`] trait, an in-memory store and a
//! file-backed journal.
//!
//! A number is never handed out on its own. [`SequenceStore::commit`] picks the next number
//! of a series, lets the caller seal the document that carries it (the record), and makes
//! the number and the record durable in one step. So a number exists exactly when its
//! document does: a failure or a crash before that step consumes nothing (no gap), and a
//! number once recorded is never handed out again (no reuse).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::journal::{
    Acknowledged, MARKER_FILE_NAME, RECORDS_START, Scan, SequenceRecord, Slot, copy_range, damage, decode_line,
    encode_line, encode_slot, io_error, is_format_1, is_unfinished_creation, marker_text, newest_slot, next_number,
    parse_marker, scan, slot_offset, torn_tail,
};
use crate::storage::{DiskStorage, Storage, StorageFile};
use crate::{DocumentId, InvoiceError, SeriesName};

/// Hands out gapless numbers per series, each recorded together with the document that
/// carries it.
///
/// Implementations must guarantee, for each series: numbers start at 1 and go up by one;
/// `commit` returns `Ok(n)` only once number `n` and its record are durable (for a store
/// that survives restarts); if `seal` or the write fails, number `n` is not consumed and
/// the next commit offers it again; concurrent commits are serialized.
pub trait SequenceStore: Send + Sync {
    /// Takes the next number of `series`, calls `seal(number)` for the record of the
    /// document that carries it, and records both.
    ///
    /// # Errors
    ///
    /// `seal`'s error (nothing is consumed); [`InvoiceError::Store`] for a failed write
    /// (nothing is consumed); [`InvoiceError::StorePoisoned`]; [`InvoiceError::Overflow`]
    /// past [`crate::SEQUENCE_MAX`].
    fn commit(
        &self,
        series: &SeriesName,
        key: &DocumentId,
        seal: &mut dyn FnMut(u64) -> Result<String, InvoiceError>,
    ) -> Result<u64, InvoiceError>;

    /// The last number of `series`, 0 when none was issued.
    ///
    /// # Errors
    ///
    /// [`InvoiceError::LockPoisoned`].
    fn last(&self, series: &SeriesName) -> Result<u64, InvoiceError>;

    /// Every record, in the order they were committed.
    ///
    /// # Errors
    ///
    /// [`InvoiceError::Store`] and [`InvoiceError::Journal`] when a durable store cannot
    /// read its records back.
    fn records(&self) -> Result<Vec<SequenceRecord>, InvoiceError>;

    /// Calls `visit` with every record, in the order they were committed, without holding
    /// them all at once (a durable store reads them one at a time). Stops at `visit`'s
    /// first error and returns it.
    ///
    /// # Errors
    ///
    /// As [`SequenceStore::records`], and `visit`'s error.
    fn for_each_record(
        &self,
        visit: &mut dyn FnMut(SequenceRecord) -> Result<(), InvoiceError>,
    ) -> Result<(), InvoiceError> {
        for record in self.records()? {
            visit(record)?;
        }
        Ok(())
    }
}

/// A store in memory: for tests, examples and services that persist documents themselves
/// (then they must restore the last numbers, see [`MemorySequenceStore::from_records`]).
#[derive(Debug, Default)]
pub struct MemorySequenceStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    last: HashMap<SeriesName, u64>,
    records: Vec<SequenceRecord>,
}

impl MemorySequenceStore {
    /// An empty store.
    pub fn new() -> MemorySequenceStore {
        MemorySequenceStore::default()
    }

    /// A store holding `records`, which must be gapless per series.
    ///
    /// # Errors
    ///
    /// [`InvoiceError::Inconsistent`] for a record that does not follow the last one of its
    /// series.
    pub fn from_records(records: Vec<SequenceRecord>) -> Result<MemorySequenceStore, InvoiceError> {
        let mut last: HashMap<SeriesName, u64> = HashMap::new();
        for record in &records {
            let expected = next_number(last.get(&record.series))?;
            if record.sequence != expected {
                return Err(InvoiceError::Inconsistent {
                    series: record.series.to_string(),
                    sequence: record.sequence,
                    reason: format!("expected number {expected} next"),
                });
            }
            last.insert(record.series.clone(), expected);
        }
        Ok(MemorySequenceStore {
            inner: Mutex::new(MemoryInner { last, records }),
        })
    }
}

impl SequenceStore for MemorySequenceStore {
    fn commit(
        &self,
        series: &SeriesName,
        key: &DocumentId,
        seal: &mut dyn FnMut(u64) -> Result<String, InvoiceError>,
    ) -> Result<u64, InvoiceError> {
        let mut inner = self.inner.lock().map_err(|_| InvoiceError::LockPoisoned)?;
        let next = next_number(inner.last.get(series))?;
        let body = seal(next)?;
        inner.records.push(SequenceRecord {
            series: series.clone(),
            sequence: next,
            key: key.clone(),
            body,
        });
        inner.last.insert(series.clone(), next);
        Ok(next)
    }

    fn last(&self, series: &SeriesName) -> Result<u64, InvoiceError> {
        let inner = self.inner.lock().map_err(|_| InvoiceError::LockPoisoned)?;
        Ok(inner.last.get(series).copied().unwrap_or(0))
    }

    fn records(&self) -> Result<Vec<SequenceRecord>, InvoiceError> {
        let inner = self.inner.lock().map_err(|_| InvoiceError::LockPoisoned)?;
        Ok(inner.records.clone())
    }
}

/// A durable store: a journal file, `sequence.journal`, and a marker, `sequence.store`, in a
/// directory of its own.
///
/// Each commit appends one record line (`<checksum> <record as JSON>`) and rewrites one of
/// the two *header slots* at the start of the file, which says how many records the store
/// has acknowledged, their total length, a chain checksum naming all of them, the last
/// number of every series, and carries a copy of the last record; then it syncs the file
/// once (`fdatasync`) and only then returns. The slots alternate, so a torn slot leaves the
/// other one, one record behind.
///
/// Opening reads the journal as a stream (memory bounded by the largest record, not by the
/// journal) and checks every line's checksum, that each series counts 1, 2, 3, … and that
/// the records agree with the newest valid slot. Then:
///
/// - the records the slot acknowledged are all there: a tail after them that can be one
///   torn append (an unacknowledged commit) is cut off, and its number is offered again;
/// - the last acknowledged record is missing, torn or damaged (a crash during its sync, or
///   damage): it is recovered from the slot's copy;
/// - anything else is damage that could hide an acknowledged number (the journal cut back,
///   emptied, deleted or damaged before its last record): opening fails with
///   [`InvoiceError::Journal`], naming the file, the record and the byte offset, and leaves
///   the files as they are for a person to look at.
///
/// So a number the store acknowledged is never handed out again, and no acknowledged
/// document is silently lost. The fault model and what the store promises for each fault
/// are in `docs/invoice.md`.
///
/// If a write or a sync fails, the store *fails closed*: what reached the disk is unknown
/// (after a failed `fsync` the kernel may have dropped the pages), so every later commit
/// fails with [`InvoiceError::StorePoisoned`] until the store is reopened, and opening
/// decides from the disk whether the failed commit's record is there (then its document is
/// issued and can be found by its id) or not (then its number is offered again).
///
/// One writer at a time: [`FileSequenceStore::open`] takes an exclusive advisory lock on the
/// journal (held until the store is dropped) and fails with [`InvoiceError::Store`]
/// (operation `lock`) while another store, in this process or another, holds it. The lock
/// belongs to the open file, so a child process forked while the store is open holds it
/// too until it execs (a moment, with `std::process::Command`): a reopen at that instant
/// fails and can simply be retried. [`FileSequenceStore::open_read_only`] takes no lock
/// and can inspect a journal while a writer runs.
#[derive(Debug)]
pub struct FileSequenceStore {
    storage: Box<dyn Storage>,
    path: PathBuf,
    read_only: bool,
    inner: Mutex<FileInner>,
}

#[derive(Debug)]
struct FileInner {
    file: Box<dyn StorageFile>,
    /// What the store has acknowledged (for a read-only store: when it was opened).
    ack: Acknowledged,
    /// Records and bytes of them in the journal file: all of `ack` except a record
    /// recovered from a slot by a read-only open (which does not write it back).
    journal_count: u64,
    journal_len: u64,
    recovered: Option<SequenceRecord>,
    store_id: u64,
    poisoned: bool,
}

/// The journal's file name inside the store's directory.
pub const JOURNAL_FILE_NAME: &str = "sequence.journal";

/// What a marker file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Missing,
    Damaged,
    Id(u64),
}

fn read_marker(storage: &dyn Storage) -> Result<Marker, InvoiceError> {
    let path = storage.describe(MARKER_FILE_NAME);
    let Some(file) = storage
        .open(MARKER_FILE_NAME, true)
        .map_err(|e| io_error("open", &path, &e))?
    else {
        return Ok(Marker::Missing);
    };
    let mut bytes = vec![0u8; 128];
    let n = file.read_at(0, &mut bytes).map_err(|e| io_error("read", &path, &e))?;
    Ok(parse_marker(&bytes[..n]).map_or(Marker::Damaged, Marker::Id))
}

/// Writes the marker through a temporary file and a rename, so that it is whole or absent.
fn write_marker(storage: &dyn Storage, store_id: u64) -> Result<(), InvoiceError> {
    const TEMPORARY: &str = "sequence.store.new";
    let path = storage.describe(MARKER_FILE_NAME);
    let path = path.as_str();
    let io = |operation| move |e: std::io::Error| io_error(operation, path, &e);
    storage
        .remove(TEMPORARY)
        .map_err(io("remove the temporary marker of"))?;
    let file = storage.create(TEMPORARY).map_err(io("create the marker of"))?;
    file.write_at(0, marker_text(store_id).as_bytes())
        .and_then(|()| file.sync_data())
        .map_err(io("write the marker of"))?;
    drop(file);
    storage
        .rename(TEMPORARY, MARKER_FILE_NAME)
        .map_err(io("rename the marker of"))?;
    storage.sync_dir().map_err(io("sync the directory of"))
}

fn random_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// What opening found: what was acknowledged, and the repairs a writer makes.
struct Recovered {
    ack: Acknowledged,
    store_id: u64,
    /// The valid records in the file: the journal is cut back to their end.
    journal_count: u64,
    journal_len: u64,
    /// The last acknowledged record, missing from the file, recovered from the slot.
    from_slot: Option<(SequenceRecord, Vec<u8>)>,
    /// The length of the last record line in the file (when it is not recovered).
    last_len: u64,
}

/// Decides, from the newest slot and a scan of the records, what was acknowledged and
/// whether the rest is a torn tail (see [`FileSequenceStore`]).
fn recover(file: &dyn StorageFile, path: &str, marker: Marker, read_only: bool) -> Result<Recovered, InvoiceError> {
    let io = |e: std::io::Error| io_error("read", path, &e);
    let len = file.len().map_err(io)?;
    if len < RECORDS_START {
        return Err(damage(
            path,
            0,
            len,
            format!(
                "the journal is {len} bytes long, shorter than its two header slots ({RECORDS_START} bytes): it \
                 was truncated or emptied"
            ),
        ));
    }
    let Some(slot) = newest_slot(file).map_err(io)? else {
        return Err(damage(
            path,
            0,
            0,
            "neither header slot is whole: expected at least one slot saying what the store acknowledged".into(),
        ));
    };
    if let Marker::Id(id) = marker
        && id != slot.store_id
    {
        return Err(damage(
            path,
            0,
            0,
            format!(
                "the journal belongs to store {:016x}, the marker {MARKER_FILE_NAME} names store {id:016x}",
                slot.store_id
            ),
        ));
    }
    let n = slot.acknowledged.count;
    let region = len - RECORDS_START;
    let Scan {
        found,
        at_target,
        last_len,
    } = scan(file, path, RECORDS_START, region, n, &mut |_| Ok(()))?;
    let k = found.count;
    let kind = torn_tail(file, RECORDS_START, found.records_len, region).map_err(io)?;
    let tail = Tail {
        from: found.records_len,
        torn: kind.torn,
        zeros: kind.zeros,
    };
    if k >= n {
        all_acknowledged_found(path, &slot, found, at_target.as_ref(), &tail, read_only)
            .map(|recovered| Recovered { last_len, ..recovered })
    } else if k + 1 == n {
        last_from_slot(path, &slot, found, &tail)
    } else {
        Err(damage(
            path,
            k + 1,
            RECORDS_START + tail.from,
            format!(
                "the journal ends after record {k}, but the store acknowledged {n} records (header slot): \
                 acknowledged records were lost (the journal was cut back, emptied or damaged)"
            ),
        ))
    }
}

/// What follows the valid records: from where, whether it can be one torn append, whether
/// it is nothing but zeros.
struct Tail {
    from: u64,
    torn: bool,
    zeros: bool,
}

impl Tail {
    fn not_torn(&self, path: &str, k: u64) -> InvoiceError {
        damage(
            path,
            k + 1,
            RECORDS_START + self.from,
            "after the acknowledged records: a whole line that is not a valid record, or more than one line: \
             only the tail of one unacknowledged append may be cut"
                .into(),
        )
    }
}

/// Every record the slot acknowledged is in the journal (`found`, at least as many).
fn all_acknowledged_found(
    path: &str,
    slot: &Slot,
    found: Acknowledged,
    at_slot: Option<&Acknowledged>,
    tail: &Tail,
    read_only: bool,
) -> Result<Recovered, InvoiceError> {
    let (k, n) = (found.count, slot.acknowledged.count);
    if at_slot != Some(&slot.acknowledged) {
        return Err(damage(
            path,
            n,
            RECORDS_START,
            format!(
                "the first {n} records are not the ones the header slot says were acknowledged (their count, \
                 length, chain checksum or last numbers differ)"
            ),
        ));
    }
    // A writer's slot is at most one record behind its journal; a reader may find more
    // records, appended by a writer since it read the slots.
    if !read_only && (k > n + 1 || (k == n + 1 && !tail.zeros)) {
        return Err(damage(
            path,
            k,
            RECORDS_START + tail.from,
            format!(
                "the journal holds {k} records and more after them, the newest header slot {n}: a slot is at most \
                 one record behind"
            ),
        ));
    }
    if !tail.torn {
        return Err(tail.not_torn(path, k));
    }
    Ok(Recovered {
        store_id: slot.store_id,
        journal_count: k,
        journal_len: tail.from,
        ack: found,
        from_slot: None,
        last_len: 0,
    })
}

/// The last acknowledged record is missing, torn or damaged: its copy in the slot must be
/// it, following the records before it.
fn last_from_slot(path: &str, slot: &Slot, found: Acknowledged, tail: &Tail) -> Result<Recovered, InvoiceError> {
    let (k, n) = (found.count, slot.acknowledged.count);
    let copy = &slot.last_line;
    let decoded = copy
        .strip_suffix(b"\n")
        .and_then(decode_line)
        .filter(|(record, _)| next_number(found.last.get(&record.series)).ok() == Some(record.sequence));
    let mut after = found;
    if let Some((record, sum)) = &decoded {
        after.push(record, copy.len() as u64, *sum);
    }
    match decoded {
        Some((record, _)) if after == slot.acknowledged => {
            if !tail.torn {
                return Err(tail.not_torn(path, k));
            }
            Ok(Recovered {
                ack: after,
                store_id: slot.store_id,
                journal_count: k,
                journal_len: tail.from,
                from_slot: Some((record, copy.clone())),
                last_len: 0,
            })
        }
        _ => Err(damage(
            path,
            n,
            RECORDS_START + tail.from,
            format!(
                "acknowledged record {n} is missing or damaged, and the header slot's copy of it does not follow \
                 record {k}"
            ),
        )),
    }
}

impl FileSequenceStore {
    /// Opens (or creates) the store in directory `dir` for writing, cutting off a torn last
    /// write and recovering a lost last record from its copy (see [`FileSequenceStore`]).
    ///
    /// # Errors
    ///
    /// [`InvoiceError::Store`] for an I/O failure or when another store holds the journal
    /// open; [`InvoiceError::Journal`] for damage that could hide an acknowledged record.
    pub fn open(dir: impl AsRef<Path>) -> Result<FileSequenceStore, InvoiceError> {
        let dir = dir.as_ref();
        let storage =
            DiskStorage::create(dir).map_err(|e| io_error("create directory", &dir.display().to_string(), &e))?;
        FileSequenceStore::open_with(storage)
    }

    /// Opens the store in directory `dir` for reading only: no lock is taken (a writer may
    /// run at the same time) and nothing is written (a torn tail is left in place, a record
    /// recovered from its copy is kept in memory). It sees the records acknowledged when it
    /// was opened; [`SequenceStore::commit`] fails with [`InvoiceError::ReadOnlyStore`].
    ///
    /// # Errors
    ///
    /// [`InvoiceError::Store`] for an I/O failure or a directory without a store;
    /// [`InvoiceError::Journal`] for damage that could hide an acknowledged record.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<FileSequenceStore, InvoiceError> {
        FileSequenceStore::open_read_only_with(DiskStorage::existing(dir))
    }

    /// [`FileSequenceStore::open`] on any [`Storage`] (a simulated disk, in tests).
    ///
    /// # Errors
    ///
    /// As [`FileSequenceStore::open`].
    pub fn open_with(storage: impl Storage + 'static) -> Result<FileSequenceStore, InvoiceError> {
        FileSequenceStore::open_boxed(Box::new(storage))
    }

    fn open_boxed(storage: Box<dyn Storage>) -> Result<FileSequenceStore, InvoiceError> {
        let path = storage.describe(JOURNAL_FILE_NAME);
        let path_ref = path.as_str();
        let io = |operation| move |e: std::io::Error| io_error(operation, path_ref, &e);
        let marker = read_marker(storage.as_ref())?;
        let file = match storage.open(JOURNAL_FILE_NAME, false).map_err(io("open"))? {
            Some(file) => file,
            None if marker != Marker::Missing => return Err(missing_journal(&path)),
            None => match storage.create(JOURNAL_FILE_NAME) {
                Ok(file) => file,
                // Another process created it meanwhile: open that one (its lock decides).
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => storage
                    .open(JOURNAL_FILE_NAME, false)
                    .map_err(io("open"))?
                    .ok_or_else(|| missing_journal(&path))?,
                Err(e) => return Err(io("create")(e)),
            },
        };
        // An exclusive advisory lock, held as long as the file is open: a second store on
        // the same journal (in this process or another) would hand out the same numbers.
        if !file.try_lock().map_err(io("lock"))? {
            return Err(InvoiceError::Store {
                operation: "lock",
                path: path.clone(),
                message: "the journal is already open in another store: expected one store per journal".into(),
            });
        }
        let len = file.len().map_err(io("read"))?;
        if marker == Marker::Missing && is_format_1(file.as_ref()).map_err(io("read"))? {
            upgrade_format_1(storage.as_ref(), file.as_ref(), &path)?;
            drop(file);
            return FileSequenceStore::open_boxed(storage);
        }
        let fresh = marker == Marker::Missing
            && is_unfinished_creation(file.as_ref(), len).map_err(io("read"))?
            && newest_slot(file.as_ref())
                .map_err(io("read"))?
                .is_none_or(|slot| slot.acknowledged.count == 0);
        let recovered = if fresh {
            // A new store, or one whose creation a crash interrupted (the marker is written
            // after the journal, and before any commit): nothing was ever acknowledged.
            let store_id = random_id();
            let slot = encode_slot(&Acknowledged::empty(), store_id, &[])?;
            file.set_len(0)
                .and_then(|()| file.write_at(0, &slot))
                .and_then(|()| file.set_len(RECORDS_START))
                .and_then(|()| file.sync_data())
                .and_then(|()| storage.sync_dir())
                .map_err(io("create"))?;
            Recovered {
                ack: Acknowledged::empty(),
                store_id,
                journal_count: 0,
                journal_len: 0,
                from_slot: None,
                last_len: 0,
            }
        } else {
            recover(file.as_ref(), &path, marker, false)?
        };
        // Repairs: cut the torn tail, write back a record recovered from its copy. Then the
        // last record and its slot are written again and synced: a failed `fsync` before
        // this open may have left them in the page cache only (the kernel can mark dirty
        // pages clean after a write-back error), where this open read them.
        let end = RECORDS_START + recovered.journal_len;
        if end < len {
            file.set_len(end).map_err(io("cut the torn tail of"))?;
        }
        if recovered.ack.count > 0 {
            let last_line = if let Some((_, line)) = &recovered.from_slot {
                line.clone()
            } else {
                let mut line = vec![0u8; usize::try_from(recovered.last_len).unwrap_or(0)];
                let got = file.read_at(end - recovered.last_len, &mut line).map_err(io("read"))?;
                line.truncate(got);
                line
            };
            let last_at = RECORDS_START + recovered.ack.records_len - last_line.len() as u64;
            let slot = encode_slot(&recovered.ack, recovered.store_id, &last_line)?;
            file.write_at(last_at, &last_line)
                .and_then(|()| file.write_at(slot_offset(recovered.ack.count), &slot))
                .and_then(|()| file.sync_data())
                .map_err(io("sync"))?;
        } else if end < len {
            file.sync_data().map_err(io("sync"))?;
        }
        if marker != Marker::Id(recovered.store_id) {
            write_marker(storage.as_ref(), recovered.store_id)?;
        }
        let ack = recovered.ack;
        Ok(FileSequenceStore {
            storage,
            path: PathBuf::from(path),
            read_only: false,
            inner: Mutex::new(FileInner {
                file,
                journal_count: ack.count,
                journal_len: ack.records_len,
                ack,
                recovered: None,
                store_id: recovered.store_id,
                poisoned: false,
            }),
        })
    }

    /// [`FileSequenceStore::open_read_only`] on any [`Storage`].
    ///
    /// # Errors
    ///
    /// As [`FileSequenceStore::open_read_only`].
    pub fn open_read_only_with(storage: impl Storage + 'static) -> Result<FileSequenceStore, InvoiceError> {
        let storage: Box<dyn Storage> = Box::new(storage);
        let path = storage.describe(JOURNAL_FILE_NAME);
        let marker = read_marker(storage.as_ref())?;
        let opened = storage
            .open(JOURNAL_FILE_NAME, true)
            .map_err(|e| io_error("open", &path, &e))?;
        if let Some(file) = &opened
            && marker == Marker::Missing
            && is_format_1(file.as_ref()).map_err(|e| io_error("read", &path, &e))?
        {
            return Err(InvoiceError::Store {
                operation: "open",
                path,
                message: "the journal is in format 1 (no header slots): open it once with FileSequenceStore::open, \
                          which upgrades it, before opening it read-only"
                    .into(),
            });
        }
        let Some(file) = opened else {
            return Err(if marker == Marker::Missing {
                InvoiceError::Store {
                    operation: "open",
                    path,
                    message: "no sequence store here: expected a directory a store was opened in".into(),
                }
            } else {
                missing_journal(&path)
            });
        };
        // A writer running at the same time can tear the slot being read: try again.
        let mut attempt = 0;
        let recovered = loop {
            match recover(file.as_ref(), &path, marker, true) {
                Err(InvoiceError::Journal { .. }) if attempt < 2 => attempt += 1,
                other => break other?,
            }
        };
        Ok(FileSequenceStore {
            storage,
            path: PathBuf::from(path),
            read_only: true,
            inner: Mutex::new(FileInner {
                file,
                ack: recovered.ack,
                journal_count: recovered.journal_count,
                journal_len: recovered.journal_len,
                recovered: recovered.from_slot.map(|(record, _)| record),
                store_id: recovered.store_id,
                poisoned: false,
            }),
        })
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the store was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The storage the store keeps its files in.
    pub fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, FileInner>, InvoiceError> {
        self.inner.lock().map_err(|_| InvoiceError::LockPoisoned)
    }

    fn path_str(&self) -> String {
        self.path.display().to_string()
    }
}

/// Upgrades a journal of format 1 (record lines from the first byte, no header slots, no
/// marker) in place: its valid records (a torn last line, without its line end, is left out,
/// as format 1 did) are copied after two new header slots into a new file, which then
/// replaces the old one by a rename. Format 1 could not tell a truncated journal from a
/// short one, so the upgrade takes the records as they are.
fn upgrade_format_1(storage: &dyn Storage, old: &dyn StorageFile, path: &str) -> Result<(), InvoiceError> {
    const TEMPORARY: &str = "sequence.journal.new";
    let io = |operation| move |e: std::io::Error| io_error(operation, path, &e);
    let len = old.len().map_err(io("read"))?;
    let mut last_line = Vec::new();
    let Scan { found, .. } = scan(old, path, 0, len, 0, &mut |record| {
        last_line = encode_line(&record)?.0;
        Ok(())
    })?;
    // Format 1's rule: only a final line without a line end is a torn write.
    let tail = len - found.records_len;
    let mut rest = vec![0u8; usize::try_from(tail.min(crate::RECORD_MAX_BYTES as u64 + 1)).unwrap_or(0)];
    let got = old.read_at(found.records_len, &mut rest).map_err(io("read"))?;
    if tail > crate::RECORD_MAX_BYTES as u64 || rest[..got].contains(&b'\n') {
        return Err(damage(
            path,
            found.count + 1,
            found.records_len,
            "a whole line that does not decode (format 1 journal): expected a hex checksum, a space and a JSON \
             record; only a final line without a line end is a torn write"
                .into(),
        ));
    }
    let store_id = random_id();
    let slot = encode_slot(&found, store_id, &last_line)?;
    storage
        .remove(TEMPORARY)
        .map_err(io("remove the temporary journal of"))?;
    let new = storage
        .create(TEMPORARY)
        .map_err(io("create the upgraded journal of"))?;
    new.write_at(slot_offset(found.count), &slot)
        .and_then(|()| new.set_len(RECORDS_START))
        .and_then(|()| copy_range(old, 0, new.as_ref(), RECORDS_START, found.records_len))
        .and_then(|()| new.sync_data())
        .map_err(io("write the upgraded journal of"))?;
    drop(new);
    storage.rename(TEMPORARY, JOURNAL_FILE_NAME).map_err(io("replace"))?;
    storage.sync_dir().map_err(io("sync the directory of"))?;
    write_marker(storage, store_id)
}

fn missing_journal(path: &str) -> InvoiceError {
    damage(
        path,
        0,
        0,
        format!(
            "the journal is missing, but the marker {MARKER_FILE_NAME} says this store was created: acknowledged \
             records may be lost"
        ),
    )
}

impl SequenceStore for FileSequenceStore {
    fn commit(
        &self,
        series: &SeriesName,
        key: &DocumentId,
        seal: &mut dyn FnMut(u64) -> Result<String, InvoiceError>,
    ) -> Result<u64, InvoiceError> {
        let mut inner = self.lock()?;
        if self.read_only {
            return Err(InvoiceError::ReadOnlyStore { path: self.path_str() });
        }
        if inner.poisoned {
            return Err(InvoiceError::StorePoisoned);
        }
        let next = next_number(inner.ack.last.get(series))?;
        let body = seal(next)?;
        let record = SequenceRecord {
            series: series.clone(),
            sequence: next,
            key: key.clone(),
            body,
        };
        let (line, sum) = encode_line(&record)?;
        let mut ack = inner.ack.clone();
        ack.push(&record, line.len() as u64, sum);
        let slot = encode_slot(&ack, inner.store_id, &line)?;
        // The record, then the slot that acknowledges it, then one sync for both.
        let written = inner
            .file
            .write_at(RECORDS_START + inner.ack.records_len, &line)
            .and_then(|()| inner.file.write_at(slot_offset(ack.count), &slot))
            .and_then(|()| inner.file.sync_data());
        if let Err(error) = written {
            // Fail closed: what reached the disk is unknown until the journal is read again.
            inner.poisoned = true;
            return Err(io_error("append to", &self.path_str(), &error));
        }
        inner.journal_count = ack.count;
        inner.journal_len = ack.records_len;
        inner.ack = ack;
        Ok(next)
    }

    fn last(&self, series: &SeriesName) -> Result<u64, InvoiceError> {
        Ok(self.lock()?.ack.last.get(series).copied().unwrap_or(0))
    }

    fn records(&self) -> Result<Vec<SequenceRecord>, InvoiceError> {
        let mut records = Vec::new();
        self.for_each_record(&mut |record| {
            records.push(record);
            Ok(())
        })?;
        Ok(records)
    }

    fn for_each_record(
        &self,
        visit: &mut dyn FnMut(SequenceRecord) -> Result<(), InvoiceError>,
    ) -> Result<(), InvoiceError> {
        let inner = self.lock()?;
        let path = self.path_str();
        let found = scan(
            inner.file.as_ref(),
            &path,
            RECORDS_START,
            inner.journal_len,
            inner.journal_count,
            visit,
        )?
        .found;
        if found.count != inner.journal_count || found.records_len != inner.journal_len {
            return Err(damage(
                &path,
                found.count + 1,
                RECORDS_START + found.records_len,
                format!(
                    "the journal changed while the store had it open: expected {} records",
                    inner.journal_count
                ),
            ));
        }
        if let Some(record) = &inner.recovered {
            visit(record.clone())?;
        }
        Ok(())
    }
}
