//! The storage seam: what a [`Storage`] keeps for a durable handle (a journal of turns and
//! snapshots), and the values it hands back ([`Head`], [`Loaded`], [`Recovery`],
//! [`SnapshotJob`]).

use serde::{Deserialize, Serialize};

use crate::LedgerError;

/// The head of a journal: how many records it holds and the hash of the last one (the
/// head of the chain; all zeros before the first record).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Head {
    /// Records written since the store was created.
    pub records: u64,
    /// BLAKE3-256 of the last record.
    pub hash: [u8; 32],
}

impl Head {
    /// The hash in hexadecimal.
    pub fn hash_hex(&self) -> String {
        use std::fmt::Write;
        self.hash.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}

/// What a storage hands to [`Storage::load`]'s visitor, in order: at most one snapshot,
/// then the records after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded<'a> {
    /// The state after the first `records` records.
    Snapshot {
        /// Records the snapshot covers.
        records: u64,
        /// The encoded state.
        state: &'a [u8],
        /// About how many bytes of journal follow (to size the tables).
        journal_bytes: u64,
    },
    /// One record: the inputs of one turn.
    Record {
        /// Its position (0 for the first record ever written).
        seq: u64,
        /// The bytes that were appended.
        payload: &'a [u8],
    },
    /// Auditing only ([`verify`](super::verify)): a later snapshot, to compare with the state replayed so
    /// far (after the first `records` records); the visitor fails if they differ.
    Check {
        /// Records the snapshot covers.
        records: u64,
        /// Its encoded state.
        state: &'a [u8],
    },
}

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Recovery {
    /// Whether the store was empty (a new ledger).
    pub fresh: bool,
    /// Records covered by the snapshot that was loaded.
    pub snapshot_records: u64,
    /// Records replayed after it.
    pub records_replayed: u64,
    /// Commands replayed after it.
    pub commands_replayed: u64,
    /// Bytes after the last whole record that are not journal: a torn last record (a
    /// crash while it was being written: it was never acknowledged), or a tail that a
    /// crash added past the segment's size. Cut when opened for writing; read-only,
    /// ignored.
    pub torn_bytes: u64,
    /// Newer snapshots that were damaged and passed over (an older one and the journal
    /// after it rebuilt the same state), with the reason.
    pub skipped_snapshots: Vec<String>,
    /// The head after recovery.
    pub head: Head,
}

/// The part of a snapshot that can run away from the handle's lock: writing and syncing
/// its file (see [`Storage::begin_snapshot`]).
pub struct SnapshotJob {
    records: u64,
    write: Option<Box<dyn FnOnce() -> Result<(), LedgerError> + Send>>,
}

impl SnapshotJob {
    /// A job for the snapshot of the state after `records` records, which `write` writes.
    pub fn new(records: u64, write: impl FnOnce() -> Result<(), LedgerError> + Send + 'static) -> SnapshotJob {
        SnapshotJob {
            records,
            write: Some(Box::new(write)),
        }
    }

    /// A job with nothing left to do: the snapshot after `records` records is written.
    pub fn done(records: u64) -> SnapshotJob {
        SnapshotJob { records, write: None }
    }

    /// The records the snapshot covers.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Whether nothing is left to write (a storage that saved the snapshot whole in
    /// [`Storage::begin_snapshot`], or a job that ran).
    pub fn is_done(&self) -> bool {
        self.write.is_none()
    }

    /// Writes the snapshot (once; later calls do nothing).
    ///
    /// # Errors
    ///
    /// [`LedgerError::Io`]: the snapshot is not listed, the older ones stay in use.
    pub fn run(&mut self) -> Result<(), LedgerError> {
        self.write.take().map_or(Ok(()), |write| write())
    }
}

impl std::fmt::Debug for SnapshotJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotJob")
            .field("records", &self.records)
            .field("written", &self.write.is_none())
            .finish()
    }
}

/// Where a durable handle keeps its journal and snapshots: the embedded [`FileStore`](super::FileStore), or
/// another backend. Implementations must make an appended record durable before
/// [`Storage::append`] returns, and keep records in order.
pub trait Storage: Send + std::fmt::Debug {
    /// Visits the newest usable snapshot and every record after it, in order, checking
    /// each, and prepares the store for appending.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Corrupt`] for damage before the tail (naming where), or an error of
    /// the visitor (wrapped with where the record is); [`LedgerError::Io`].
    fn load(&mut self, visit: &mut dyn FnMut(Loaded<'_>) -> Result<(), LedgerError>) -> Result<Recovery, LedgerError>;

    /// Appends one record and makes it durable before returning. After an error the store
    /// refuses further appends until it is loaded again.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Io`] (nothing is acknowledged then), [`LedgerError::Unavailable`]
    /// after an earlier failure.
    fn append(&mut self, payload: &[u8]) -> Result<(), LedgerError>;

    /// Saves a snapshot of the state after every record appended so far, durably; the
    /// journal before an older snapshot may then be removed.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Io`]; the previous snapshots stay usable.
    fn save_snapshot(&mut self, state: &[u8]) -> Result<(), LedgerError>;

    /// Starts a snapshot of the state after every record appended so far, for a handle
    /// that writes it away from its lock: does now what must happen at this position of
    /// the journal, and returns the [`SnapshotJob`] that writes the state (run on another
    /// thread, while records go on) and then [`Storage::finish_snapshot`], which lists it.
    /// The default writes the whole snapshot now with [`Storage::save_snapshot`] and
    /// returns a job with nothing left to do.
    ///
    /// # Errors
    ///
    /// As [`Storage::save_snapshot`].
    fn begin_snapshot(&mut self, state: Vec<u8>) -> Result<SnapshotJob, LedgerError> {
        self.save_snapshot(&state)?;
        Ok(SnapshotJob::done(self.head().records))
    }

    /// Lists a snapshot whose job ran without error, so that recovery may start from it
    /// and older files may go. The default does nothing (the default
    /// [`Storage::begin_snapshot`] saved it whole).
    ///
    /// # Errors
    ///
    /// [`LedgerError::Io`]; the store then refuses appends until loaded again.
    fn finish_snapshot(&mut self, job: &SnapshotJob) -> Result<(), LedgerError> {
        let _ = job;
        Ok(())
    }

    /// The head of the journal.
    fn head(&self) -> Head;

    /// Bytes appended since the last snapshot.
    fn bytes_since_snapshot(&self) -> u64;

    /// Closes the store cleanly (the handle calls it when it is dropped): records where
    /// the journal ends, so that the next open knows it exactly. Appends are refused
    /// afterwards. A store that is never closed (a crash) is recovered all the same. The
    /// default does nothing.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Io`]; the store is then recovered as after a crash.
    fn close(&mut self) -> Result<(), LedgerError> {
        Ok(())
    }
}
