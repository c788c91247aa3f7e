//! Gapless sequence numbers: the [`SequenceStore`] trait, an in-memory store and a
//! file-backed journal.
//!
//! A number is never handed out on its own. [`SequenceStore::commit`] picks the next number
//! of a series, lets the caller seal the document that carries it (the record), and makes
//! the number and the record durable in one step. So a number exists exactly when its
//! document does: a failure or a crash before that step consumes nothing (no gap), and a
//! number once recorded is never handed out again (no reuse).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::number::SEQUENCE_MAX;
use crate::{DocumentId, InvoiceError, SeriesName};

/// The largest record a store accepts, in bytes (a bound on a journal line).
pub const RECORD_MAX_BYTES: usize = 1 << 20;

/// A number and the record that carries it, as a store keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SequenceRecord {
    /// The series.
    pub series: SeriesName,
    /// The number within the series (1 is the first).
    pub sequence: u64,
    /// The id of the document that carries the number.
    pub key: DocumentId,
    /// The document, as the sealing step wrote it (the issued document's JSON).
    pub body: String,
}

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
}

fn next_number(last: Option<&u64>) -> Result<u64, InvoiceError> {
    let next = last.copied().unwrap_or(0).checked_add(1).filter(|n| *n <= SEQUENCE_MAX);
    next.ok_or(InvoiceError::Overflow {
        operation: "sequence number",
    })
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

/// A store in an append-only journal file, `sequence.journal` in a directory of its own.
///
/// Each commit appends one line, `<checksum> <record as JSON>`, and calls `fsync` before it
/// returns: the number is durable together with its document. The first open creates the
/// file and syncs the directory too. If the write fails the file is cut back to its length
/// before the write; if even that fails, the store refuses further commits
/// ([`InvoiceError::StorePoisoned`]) until it is reopened.
///
/// Opening reads the journal back and checks every line's checksum and that the numbers of
/// each series follow each other. A crash in the middle of an append leaves a torn last
/// line without its line end: since its commit never returned, no document carries its
/// number, so opening cuts it off and the number is offered again. A whole line (one that
/// ends in a line end) that fails its checksum is not a torn write but damage, and opening
/// fails with [`InvoiceError::Journal`], leaving the file as it was.
///
/// One store at a time may have a journal open: `open` takes an exclusive advisory lock on
/// the file (held until the store is dropped) and fails with [`InvoiceError::Store`] if
/// another store, in this process or another, holds it. The lock belongs to the open file,
/// so a child process forked while the store is open holds it too until it execs (a
/// moment, with `std::process::Command`): a reopen at that instant fails with `lock`
/// and can simply be retried.
///
/// One case is not covered: if the append's `fsync` fails *and* cutting the file back fails,
/// the commit returns an error and the store is poisoned, yet the line may have reached the
/// disk. A restart then reads it back as issued; the caller saw an error and holds no
/// document with that number, so the series shows a number whose document must be
/// recovered from the journal record (which carries the sealed body).
#[derive(Debug)]
pub struct FileSequenceStore {
    path: PathBuf,
    inner: Mutex<FileInner>,
}

#[derive(Debug)]
struct FileInner {
    file: File,
    len: u64,
    last: HashMap<SeriesName, u64>,
    poisoned: bool,
}

/// The journal's file name inside the store's directory.
pub const JOURNAL_FILE_NAME: &str = "sequence.journal";

fn io_error(operation: &'static str, path: &Path, error: &std::io::Error) -> InvoiceError {
    InvoiceError::Store {
        operation,
        path: path.display().to_string(),
        message: error.to_string(),
    }
}

/// FNV-1a, 64 bits: enough to tell a torn or damaged line from a whole one.
fn checksum(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn encode(record: &SequenceRecord) -> Result<Vec<u8>, InvoiceError> {
    let json = serde_json::to_string(record)?;
    let mut line = format!("{:016x} ", checksum(json.as_bytes())).into_bytes();
    line.extend_from_slice(json.as_bytes());
    line.push(b'\n');
    Ok(line)
}

fn decode(line: &[u8]) -> Option<SequenceRecord> {
    let text = std::str::from_utf8(line).ok()?;
    let (sum, json) = text.split_once(' ')?;
    let sum = u64::from_str_radix(sum, 16).ok()?;
    if sum != checksum(json.as_bytes()) {
        return None;
    }
    serde_json::from_str(json).ok()
}

/// A journal's records, the last number of each series, and the length of its valid prefix.
type Journal = (Vec<SequenceRecord>, HashMap<SeriesName, u64>, u64);

/// Reads and checks the journal (gapless per series); a torn tail is left out of the valid
/// prefix.
fn read_journal(path: &Path, bytes: &[u8]) -> Result<Journal, InvoiceError> {
    let mut records = Vec::new();
    let mut last: HashMap<SeriesName, u64> = HashMap::new();
    let mut valid_len = 0usize;
    let mut offset = 0usize;
    let mut line_no = 0usize;
    while offset < bytes.len() {
        line_no += 1;
        let Some(end) = bytes[offset..].iter().position(|b| *b == b'\n').map(|i| offset + i) else {
            // The last chunk has no line end: the write that made it was torn. It is cut off.
            break;
        };
        let Some(record) = decode(&bytes[offset..end]) else {
            // A whole line (it ends in '\n') that does not decode was not torn by a crash:
            // the journal is damaged, and numbers must not be reissued past it.
            return Err(InvoiceError::Journal {
                path: path.display().to_string(),
                line: line_no,
                reason: "line does not decode: expected a hex checksum, a space and a JSON record; only a \
                         final line without a line end is treated as a torn write"
                    .into(),
            });
        };
        let expected = next_number(last.get(&record.series))?;
        if record.sequence != expected {
            return Err(InvoiceError::Journal {
                path: path.display().to_string(),
                line: line_no,
                reason: format!(
                    "series {} number {} follows {}: expected {expected}",
                    record.series,
                    record.sequence,
                    expected - 1
                ),
            });
        }
        last.insert(record.series.clone(), expected);
        records.push(record);
        offset = end + 1;
        valid_len = offset;
    }
    Ok((records, last, valid_len as u64))
}

impl FileSequenceStore {
    /// Opens (or creates) the journal in directory `dir`, cutting off a torn last write.
    ///
    /// # Errors
    ///
    /// [`InvoiceError::Store`] for an I/O failure or when another store holds the journal
    /// open; [`InvoiceError::Journal`] for a damaged journal.
    pub fn open(dir: impl AsRef<Path>) -> Result<FileSequenceStore, InvoiceError> {
        let dir = dir.as_ref();
        let dir_existed = dir.is_dir();
        std::fs::create_dir_all(dir).map_err(|e| io_error("create directory", dir, &e))?;
        let path = dir.join(JOURNAL_FILE_NAME);
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| io_error("open", &path, &e))?;
        if !existed {
            file.sync_all().map_err(|e| io_error("sync", &path, &e))?;
            sync_dir(dir)?;
            if !dir_existed && let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        // An exclusive advisory lock, held as long as the file is open: a second store on
        // the same journal (in this process or another) would hand out the same numbers.
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(InvoiceError::Store {
                    operation: "lock",
                    path: path.display().to_string(),
                    message: "the journal is already open in another store: expected one store per journal".into(),
                });
            }
            Err(std::fs::TryLockError::Error(error)) => return Err(io_error("lock", &path, &error)),
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| io_error("read", &path, &e))?;
        let (_, last, valid_len) = read_journal(&path, &bytes)?;
        if valid_len < bytes.len() as u64 {
            file.set_len(valid_len)
                .map_err(|e| io_error("cut the torn tail of", &path, &e))?;
            file.sync_all().map_err(|e| io_error("sync", &path, &e))?;
        }
        Ok(FileSequenceStore {
            path,
            inner: Mutex::new(FileInner {
                file,
                len: valid_len,
                last,
                poisoned: false,
            }),
        })
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn sync_dir(dir: &Path) -> Result<(), InvoiceError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("sync directory", dir, &e))
}

impl SequenceStore for FileSequenceStore {
    fn commit(
        &self,
        series: &SeriesName,
        key: &DocumentId,
        seal: &mut dyn FnMut(u64) -> Result<String, InvoiceError>,
    ) -> Result<u64, InvoiceError> {
        let mut inner = self.inner.lock().map_err(|_| InvoiceError::LockPoisoned)?;
        if inner.poisoned {
            return Err(InvoiceError::StorePoisoned);
        }
        let next = next_number(inner.last.get(series))?;
        let body = seal(next)?;
        let line = encode(&SequenceRecord {
            series: series.clone(),
            sequence: next,
            key: key.clone(),
            body,
        })?;
        if line.len() > RECORD_MAX_BYTES {
            return Err(InvoiceError::Overflow {
                operation: "journal record size",
            });
        }
        let written = inner.file.write_all(&line).and_then(|()| inner.file.sync_data());
        if let Err(error) = written {
            let len = inner.len;
            if inner.file.set_len(len).and_then(|()| inner.file.sync_data()).is_err() {
                inner.poisoned = true;
            }
            return Err(io_error("append to", &self.path, &error));
        }
        inner.len += line.len() as u64;
        inner.last.insert(series.clone(), next);
        Ok(next)
    }

    fn last(&self, series: &SeriesName) -> Result<u64, InvoiceError> {
        let inner = self.inner.lock().map_err(|_| InvoiceError::LockPoisoned)?;
        Ok(inner.last.get(series).copied().unwrap_or(0))
    }

    fn records(&self) -> Result<Vec<SequenceRecord>, InvoiceError> {
        let inner = self.inner.lock().map_err(|_| InvoiceError::LockPoisoned)?;
        let mut bytes = Vec::new();
        File::open(&self.path)
            .and_then(|f| f.take(inner.len).read_to_end(&mut bytes))
            .map_err(|e| io_error("read", &self.path, &e))?;
        Ok(read_journal(&self.path, &bytes)?.0)
    }
}
