//! Durability: a write-ahead journal with group commit, snapshots, and recovery.
//!
//! A durable [`SharedLedger`] writes the inputs of each combining turn (the time and the
//! submissions) to its [`Storage`] and syncs them **before** it applies them and answers:
//! every acknowledged batch is durable, and replaying the journal through the deterministic
//! state machine rebuilds the same state, the same idempotency answers and the same open
//! holds. Submissions that arrive during a sync wait and go together in the next record
//! (group commit).
//!
//! [`FileStore`] is the embedded store: a directory of journal segments (records framed
//! with their length, a CRC32C and the BLAKE3-256 hash of the previous record) and
//! snapshots. `docs/ledger.md` describes the format and what happens on each kind of
//! damage. A [`Storage`] is the journal of **one writer** that holds the whole state in
//! memory (the directory lock enforces it): another medium for that journal (an object
//! store, a replicated log with one leader) can implement it, but a database that several
//! gateway replicas write at once cannot: replicas replaying one log of inputs would each
//! decide on their own state and diverge. Shared stores sit above the ledger instead, at
//! the billing layer's store trait (`paygo-billing`'s `BillingStore`).
//!
//! # Example
//!
//! ```
//! use paygo_credits::Credits;
//! use paygo_ledger::durable::{self, OpenOptions};
//! use paygo_ledger::{Account, AccountId, Event, EventResult, WallClock, Transfer, TransferId};
//!
//! let dir = std::env::temp_dir().join(format!("paygo-durable-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let (a, b) = (AccountId(1), AccountId(2));
//! let pay = Event::CreateTransfer(Transfer::new(TransferId(7), a, b, Credits::new(500)));
//! {
//!     let ledger = durable::open_ledger(&dir, WallClock, &OpenOptions::default())?;
//!     // Answered only once the batch is on disk.
//!     ledger.submit(vec![Event::CreateAccount(Account::new(a)), Event::CreateAccount(Account::new(b)), pay])?;
//! } // dropped: the directory is unlocked
//! // Reopened: the journal is replayed, and a retry answers as the first time.
//! let ledger = durable::open_ledger(&dir, WallClock, &OpenOptions::default())?;
//! assert_eq!(ledger.read(|l| l.account(b).map(|x| x.credits_posted))?, Some(500));
//! assert_eq!(ledger.submit(vec![pay])?, [EventResult::Exists]);
//! # drop(ledger);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The billing layer (`paygo-billing`) is another [`Durable`] machine on the same
//! storage.

pub(crate) mod checksum;
pub mod codec;
mod file;
mod manifest;

use std::path::Path;
use std::sync::mpsc;

use serde::{Deserialize, Serialize};

pub use checksum::{chain_hash, crc32c};
pub use file::FileStore;

use crate::shared::StateMachine;
use crate::{Clock, Event, Ledger, LedgerError, SharedLedger, Spare};
use codec::{EVENT_LEN, Put, Reader, bad};

/// A state machine whose commands and state have an exact encoding, so that it can be
/// journaled, snapshotted and replayed.
pub trait Durable: StateMachine + Sized {
    /// Names the machine in the store's manifest, so that a directory of one kind is never
    /// opened as another.
    const KIND: &'static str;

    /// Appends the encoding of `commands`.
    fn encode_commands(commands: &[Self::Command], out: &mut Vec<u8>);

    /// Reads `count` commands that [`Durable::encode_commands`] wrote, into `out`.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Decode`] for bytes that are not such commands.
    fn decode_commands(bytes: &[u8], count: usize, out: &mut Vec<Self::Command>) -> Result<(), LedgerError>;

    /// Appends the whole state.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Decode`] if a part of the state has no encoding (a bug).
    fn encode_state(&self, out: &mut Vec<u8>) -> Result<(), LedgerError>;

    /// Reads a state that [`Durable::encode_state`] wrote, with room for about
    /// `journal_bytes` of journal to be replayed on it.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Decode`] for bytes that are not such a state, and
    /// [`LedgerError::InvariantViolated`] for a state whose invariants do not hold.
    fn decode_state(bytes: &[u8], journal_bytes: u64) -> Result<Self, LedgerError>;

    /// Called once the journal has been replayed.
    fn recovered(&mut self) {}

    /// For how many transfers in all a replay of about `journal_bytes` of journal on this
    /// state should prepare a [`Spare`] on another thread; `None` (the default) for none.
    fn spare_for(&self, journal_bytes: u64) -> Option<usize> {
        let _ = journal_bytes;
        None
    }

    /// Takes the room prepared during a replay (see [`Spare`]); dropped by default.
    fn add_spare(&mut self, spare: Spare) {
        drop(spare);
    }
}

impl Durable for Ledger {
    const KIND: &'static str = "ledger";

    fn encode_commands(commands: &[Event], out: &mut Vec<u8>) {
        out.reserve(commands.len() * EVENT_LEN);
        for e in commands {
            codec::put_event(out, e);
        }
    }

    fn decode_commands(bytes: &[u8], count: usize, out: &mut Vec<Event>) -> Result<(), LedgerError> {
        if Some(bytes.len()) != count.checked_mul(EVENT_LEN) {
            return Err(bad(format!(
                "{count} events take {} bytes, {} given",
                count.saturating_mul(EVENT_LEN),
                bytes.len()
            )));
        }
        out.reserve(count);
        for chunk in bytes.chunks_exact(EVENT_LEN) {
            out.push(codec::get_event(chunk)?);
        }
        Ok(())
    }

    fn encode_state(&self, out: &mut Vec<u8>) -> Result<(), LedgerError> {
        self.write_state(out);
        Ok(())
    }

    fn decode_state(bytes: &[u8], journal_bytes: u64) -> Result<Ledger, LedgerError> {
        let mut r = Reader::new(bytes);
        let more = usize::try_from(journal_bytes / EVENT_LEN as u64).unwrap_or(usize::MAX);
        let ledger = Ledger::read_state(&mut r, more)?;
        if !r.is_empty() {
            return Err(bad("bytes are left after the ledger's state"));
        }
        Ok(ledger)
    }

    fn spare_for(&self, journal_bytes: u64) -> Option<usize> {
        spare_room(self, journal_bytes / EVENT_LEN as u64)
    }

    fn add_spare(&mut self, spare: Spare) {
        Ledger::add_spare(self, spare);
    }
}

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
    /// Auditing only ([`verify`]): a later snapshot, to compare with the state replayed so
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

/// Where a durable handle keeps its journal and snapshots: the embedded [`FileStore`], or
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

/// Settings of a durable handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OpenOptions {
    /// Take a snapshot (in the combining thread, after its turn) once this many journal
    /// bytes were written since the last one, so that restart time stays bounded; `None`:
    /// only when [`SharedLedger::snapshot`] is called. Default 1 GiB (about ten million
    /// ledger transfers). Submissions wait only while the state is encoded in memory (and a
    /// journal segment is started); the snapshot's file is written and synced on a thread
    /// of its own while turns go on, and listed by the first turn after it is done. With an
    /// [`crate::IdWindow`], the state, and so the wait, is bounded by the window.
    pub snapshot_journal_bytes: Option<u64>,
    /// The size of each new journal segment, allocated whole when it is made (so that a
    /// shorter file is detected as damage): default 64 MiB; rounded up to 4 KiB, at least
    /// 4 KiB. A record larger than that gets a segment of its own size.
    pub segment_bytes: u64,
    /// Move the journal segments that snapshots make unnecessary into `archive/` inside
    /// the store instead of removing them (see [`FileStore::archive_journal`]); default
    /// off. With an [`crate::IdWindow`], turn it on to keep on disk the transfers that
    /// leave memory.
    pub archive_journal: bool,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions {
            snapshot_journal_bytes: Some(1 << 30),
            segment_bytes: file::SEGMENT_BYTES_DEFAULT,
            archive_journal: false,
        }
    }
}

/// Opens (or creates) a durable [`Ledger`] in `dir`: the entry point for the engine alone.
/// See [`SharedLedger::open`].
///
/// # Errors
///
/// As [`SharedLedger::open`].
pub fn open_ledger<K: Clock>(
    dir: impl AsRef<Path>,
    clock: K,
    options: &OpenOptions,
) -> Result<SharedLedger<Ledger, K>, LedgerError> {
    SharedLedger::open(dir, Ledger::new, clock, options)
}

/// The kind of store in `dir` ([`Durable::KIND`]: `"ledger"` or `"billing"`), read from its
/// manifest without writing anything: for a tool that opens either.
///
/// # Errors
///
/// [`LedgerError::MissingDirectory`] for a directory that does not exist or holds no
/// store; [`LedgerError::Foreign`] for one that holds something else (or a store of
/// another format); [`LedgerError::Corrupt`] for a damaged manifest; [`LedgerError::Io`].
pub fn kind(dir: impl AsRef<Path>) -> Result<String, LedgerError> {
    let dir = dir.as_ref();
    let missing = || LedgerError::MissingDirectory {
        dir: dir.display().to_string(),
    };
    if !dir.is_dir() {
        return Err(missing());
    }
    match file::read_manifest(dir, None)? {
        Some(m) => Ok(m.kind),
        None => Err(missing()),
    }
}

/// Loads the state stored in `dir` without writing anything (no lock is taken, a torn
/// tail is ignored, not cut): for `balance` and `history`. It works while a writer has
/// the store open, and then reads up to the last whole record.
///
/// # Errors
///
/// [`LedgerError::MissingDirectory`] for a directory that does not exist or holds no
/// store; [`LedgerError::Foreign`]; [`LedgerError::Corrupt`] (found twice in the same
/// place: a writer at work can make a read meet a record half written, and the read is
/// then made again); [`LedgerError::Unavailable`] if a writer changed the store under each
/// of several reads; [`LedgerError::Io`].
pub fn load<M: Durable>(dir: impl AsRef<Path>) -> Result<(M, Recovery), LedgerError> {
    let store = FileStore::open(dir.as_ref(), M::KIND, false)?;
    load_from(dir.as_ref(), store)
}

/// As [`load`], but from the oldest snapshot kept, so that every record in the directory
/// is read and its checksum and chain checked, and strict about snapshots: every snapshot
/// kept must be intact, and the newest must equal the state the journal replays to at its
/// position (what `verify` runs). The state is the same as [`load`]'s.
///
/// # Errors
///
/// As [`load`]; also [`LedgerError::Corrupt`] naming a damaged or missing snapshot, or
/// one that differs from the journal (where [`load`] passes over it and recovers from an
/// older one).
pub fn verify<M: Durable>(dir: impl AsRef<Path>) -> Result<(M, Recovery), LedgerError> {
    let store = FileStore::open(dir.as_ref(), M::KIND, false)?.audit();
    load_from(dir.as_ref(), store)
}

/// Room for the ledger's transfers and `more` from the journal; `None` when the journal
/// adds none.
/// The room for a [`Spare`]: the ledger's transfers and `more` (what a replay of the
/// journal left is expected to add), `None` when there is nothing to prepare. For the
/// [`Durable::spare_for`] of a machine built on the ledger.
pub fn spare_room(ledger: &Ledger, more: u64) -> Option<usize> {
    let more = usize::try_from(more).ok().filter(|&m| m > 0)?;
    ledger.transfers_len().checked_add(more)
}

/// Replays a read-only `store` of `dir`; a fresh (empty) store is a missing directory.
fn load_from<M: Durable>(dir: &Path, mut store: FileStore) -> Result<(M, Recovery), LedgerError> {
    let (machine, recovery) = recover::<M>(&mut store)?;
    let dir = dir.display().to_string();
    machine
        .ok_or(LedgerError::MissingDirectory { dir })
        .map(|m| (m, recovery))
}

/// Replays `storage` into a machine; `None` when the store is fresh.
pub(crate) fn recover<M: Durable>(storage: &mut dyn Storage) -> Result<(Option<M>, Recovery), LedgerError> {
    let mut machine: Option<M> = None;
    let mut commands: Vec<M::Command> = Vec::new();
    let mut replayed = 0u64;
    // Room for the machine, prepared on another thread while this one applies the first
    // records, and taken between two records.
    let (give, spares) = mpsc::sync_channel::<Spare>(1);
    let mut give = Some(give);
    let loaded = std::thread::scope(|scope| {
        let loaded = storage.load(&mut |item| match item {
            Loaded::Snapshot {
                state, journal_bytes, ..
            } => {
                // A storage may start again (a reader racing a writer): from scratch.
                replayed = 0;
                let m = M::decode_state(state, journal_bytes)?;
                if let Some(transfers) = m.spare_for(journal_bytes)
                    && let Some(give) = give.take()
                {
                    scope.spawn(move || {
                        // Fails only if the replay is over; the room is dropped then.
                        let _ = give.send(Spare::prepare(transfers));
                    });
                }
                machine = Some(m);
                Ok(())
            }
            Loaded::Record { payload, .. } => {
                let m = machine
                    .as_mut()
                    .ok_or_else(|| bad("a record comes before any snapshot"))?;
                if let Ok(spare) = spares.try_recv() {
                    m.add_spare(spare);
                }
                replayed += replay_turn(m, payload, &mut commands)?;
                Ok(())
            }
            Loaded::Check { records, state } => {
                let m = machine
                    .as_ref()
                    .ok_or_else(|| bad("a snapshot check comes before any snapshot"))?;
                let mut mine = Vec::with_capacity(state.len());
                m.encode_state(&mut mine)?;
                if mine != state {
                    return Err(bad(format!(
                        "this snapshot differs from the state the journal replays to at record {records}"
                    )));
                }
                Ok(())
            }
        });
        // Unblocks the preparing thread, if it is still running, before the scope waits
        // for it.
        drop(spares);
        loaded
    });
    let mut recovery = loaded?;
    recovery.commands_replayed = replayed;
    if let Some(m) = machine.as_mut() {
        m.recovered();
    }
    Ok((machine, recovery))
}

/// Appends a turn: its time, then each submission's command count, byte length and bytes.
pub(crate) fn encode_turn<C>(
    out: &mut Vec<u8>,
    now_ns: u64,
    submissions: &[(u64, Vec<C>)],
    encode: fn(&[C], &mut Vec<u8>),
) {
    out.clear();
    out.put_u64(now_ns);
    out.put_u32(submissions.len() as u32);
    for (_, commands) in submissions {
        out.put_u32(commands.len() as u32);
        let at = out.len();
        out.put_u32(0);
        encode(commands, out);
        let bytes = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&bytes.to_le_bytes());
    }
}

/// Applies the submissions of a turn as the handle did; returns how many commands.
fn replay_turn<M: Durable>(
    machine: &mut M,
    payload: &[u8],
    commands: &mut Vec<M::Command>,
) -> Result<u64, LedgerError> {
    let mut r = Reader::new(payload);
    let now_ns = r.u64()?;
    let submissions = r.u32()?;
    let mut total = 0u64;
    for _ in 0..submissions {
        let count = r.u32()? as usize;
        let bytes = r.u32()? as usize;
        commands.clear();
        M::decode_commands(r.take(bytes)?, count, commands)?;
        // A batch the handle refused as a whole was never queued; any other error is
        // deterministic and was the reply then too.
        let _ = machine.apply_batch(now_ns, commands);
        total += count as u64;
    }
    if !r.is_empty() {
        return Err(bad("bytes are left after the turn's submissions"));
    }
    Ok(total)
}
