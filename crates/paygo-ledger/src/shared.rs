//! A handle that many threads share: their operations are combined into batches.

use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::durable::{self, Durable, FileStore, Head, OpenOptions, Recovery, SnapshotJob, Storage};
use crate::{BATCH_EVENTS_MAX, Clock, Event, EventResult, Ledger, LedgerError};

/// A deterministic state machine that applies batches of commands at a given time: the
/// [`Ledger`], or a layer built on it (the billing layer of `paygo-billing`).
pub trait StateMachine: Send {
    /// What a batch holds.
    type Command: Clone + Send;
    /// The reply to each command.
    type Reply: Clone + Send;
    /// The most commands one batch may hold.
    const BATCH_MAX: usize;

    /// Applies a batch at `now_ns`, one reply per command, in order.
    ///
    /// # Errors
    ///
    /// When the batch as a whole cannot be applied (too large); nothing is applied then.
    fn apply_batch(&mut self, now_ns: u64, commands: &[Self::Command]) -> Result<Vec<Self::Reply>, LedgerError>;
}

impl StateMachine for Ledger {
    type Command = Event;
    type Reply = EventResult;
    const BATCH_MAX: usize = BATCH_EVENTS_MAX;

    fn apply_batch(&mut self, now_ns: u64, commands: &[Event]) -> Result<Vec<EventResult>, LedgerError> {
        self.apply(now_ns, commands)
    }
}

struct Queue<C, R> {
    next_ticket: u64,
    waiting: Vec<(u64, Vec<C>)>,
    done: Vec<(u64, Result<Vec<R>, LedgerError>)>,
    combining: bool,
    broken: Option<String>,
}

/// Marks the handle broken and wakes every waiter if the combining thread unwinds, so
/// that no thread waits forever for a turn that will not come.
struct PanicGuard<'a, C, R> {
    queue: &'a Mutex<Queue<C, R>>,
    ready: &'a Condvar,
}

impl<C, R> Drop for PanicGuard<'_, C, R> {
    fn drop(&mut self) {
        // Only reached while unwinding: the normal path forgets the guard.
        if let Ok(mut queue) = self.queue.lock() {
            queue.combining = false;
            queue.broken = Some("the state machine panicked while applying a batch".to_owned());
        }
        self.ready.notify_all();
    }
}

/// A `Send + Sync` handle to a state machine that many request threads share.
///
/// Each call submits one batch (a linked chain must be whole within it). Submissions that
/// arrive while another thread is applying wait; the next thread to find the machine free
/// applies every waiting submission in one turn (flat combining), so under load the lock
/// is taken once per group instead of once per call, with no dedicated thread. Each
/// submission is applied as its own batch, so chains never cross submissions.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use paygo_credits::Credits;
/// use paygo_ledger::{Account, AccountId, Event, EventResult, Ledger, ManualClock, SharedLedger, Transfer, TransferId};
///
/// let shared = Arc::new(SharedLedger::new(Ledger::new(), ManualClock::new(1)));
/// shared.submit(vec![
///     Event::CreateAccount(Account::new(AccountId(1))),
///     Event::CreateAccount(Account::balance(AccountId(2))),
/// ])?;
/// let threads: Vec<_> = (0..4u128).map(|t| {
///     let shared = Arc::clone(&shared);
///     std::thread::spawn(move || {
///         let id = TransferId(100 + t);
///         let transfer = Transfer::new(id, AccountId(1), AccountId(2), Credits::new(10));
///         shared.submit(vec![Event::CreateTransfer(transfer)])
///     })
/// }).collect();
/// for t in threads {
///     assert_eq!(t.join().map_err(|_| "thread panicked")??, [EventResult::Ok]);
/// }
/// let balance = shared.read(|ledger| ledger.account(AccountId(2)).map(|a| a.posted_balance()))?;
/// assert_eq!(balance, Some(40));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Durability
///
/// A handle made by [`SharedLedger::open`] (or [`SharedLedger::with_storage`]) is
/// write-ahead: the combining thread appends the inputs of its turn (the time and every
/// submission) to the journal as one record and syncs it before it applies them and
/// answers, so every acknowledged batch survives a crash; submissions that arrive during
/// the sync go together in the next record (group commit). If the write or the sync fails,
/// nothing of the turn is applied, its callers get [`LedgerError::Unavailable`], and the
/// handle refuses further work until the store is opened again (the outcome of the failed
/// turn is unknown to its callers then: retries with the same ids are safe).
pub struct SharedLedger<M: StateMachine, K: Clock> {
    machine: Mutex<Inner<M>>,
    queue: Mutex<Queue<M::Command, M::Reply>>,
    ready: Condvar,
    clock: K,
    recovery: Option<Recovery>,
}

struct Inner<M: StateMachine> {
    machine: M,
    journal: Option<Journal<M>>,
}

/// The journal of a durable handle.
struct Journal<M: StateMachine> {
    storage: Box<dyn Storage>,
    encode: fn(&[M::Command], &mut Vec<u8>),
    encode_state: fn(&M, &mut Vec<u8>) -> Result<(), LedgerError>,
    buf: Vec<u8>,
    snapshot_journal_bytes: Option<u64>,
    snapshot_failed: bool,
    /// An automatic snapshot being written on its own thread.
    writing: Option<JoinHandle<(SnapshotJob, Result<(), LedgerError>)>>,
}

impl<M: StateMachine> Drop for Journal<M> {
    fn drop(&mut self) {
        // A snapshot being written is finished first (listed if it was written whole).
        let _ = self.finish_writing(true);
        // A clean close records where the journal ends; if it fails, the next open
        // recovers as after a crash.
        let _ = self.storage.close();
    }
}

impl<M: StateMachine> Journal<M> {
    /// Writes a snapshot of the state now, waiting for it (and for one being written).
    fn snapshot(&mut self, machine: &M) -> Result<Head, LedgerError> {
        self.finish_writing(true)?;
        let mut job = self.begin(machine)?;
        job.run()?;
        self.storage.finish_snapshot(&job)?;
        Ok(self.storage.head())
    }

    /// Encodes the state (the only part a submission waits for) and begins a snapshot.
    fn begin(&mut self, machine: &M) -> Result<SnapshotJob, LedgerError> {
        let mut state = Vec::new();
        (self.encode_state)(machine, &mut state)?;
        self.storage.begin_snapshot(state)
    }

    /// Begins an automatic snapshot and writes it on its own thread, unless one is being
    /// written.
    fn snapshot_in_background(&mut self, machine: &M) {
        if self.writing.is_some() {
            return;
        }
        match self.begin(machine) {
            // Saved whole already (a storage without the split): listed now, no thread.
            Ok(job) if job.is_done() => {
                if self.storage.finish_snapshot(&job).is_err() {
                    self.snapshot_failed = true;
                }
            }
            Ok(mut job) => {
                let spawned = std::thread::Builder::new()
                    .name("paygo-snapshot".into())
                    .spawn(move || {
                        let written = job.run();
                        (job, written)
                    });
                match spawned {
                    Ok(handle) => self.writing = Some(handle),
                    Err(_) => self.snapshot_failed = true,
                }
            }
            Err(_) => self.snapshot_failed = true,
        }
    }

    /// Lists the snapshot being written once it is (waiting for it if `wait`); a snapshot
    /// that could not be written is dropped (the older ones stay in use) and no other is
    /// begun automatically until [`SharedLedger::snapshot`] succeeds.
    fn finish_writing(&mut self, wait: bool) -> Result<(), LedgerError> {
        let Some(handle) = self.writing.take_if(|h| wait || h.is_finished()) else {
            return Ok(());
        };
        let (job, written) = handle.join().map_err(|_| LedgerError::Unavailable {
            reason: "the snapshot thread panicked".into(),
        })?;
        let listed = written.and_then(|()| self.storage.finish_snapshot(&job));
        if listed.is_err() {
            self.snapshot_failed = true;
        }
        listed
    }
}

impl<M: StateMachine, K: Clock> std::fmt::Debug for SharedLedger<M, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLedger").finish_non_exhaustive()
    }
}

impl<M: StateMachine, K: Clock> SharedLedger<M, K> {
    /// Shares `machine`, timing batches with `clock`.
    pub fn new(machine: M, clock: K) -> SharedLedger<M, K> {
        SharedLedger {
            machine: Mutex::new(Inner { machine, journal: None }),
            queue: Mutex::new(Queue {
                next_ticket: 0,
                waiting: Vec::new(),
                done: Vec::new(),
                combining: false,
                broken: None,
            }),
            ready: Condvar::new(),
            clock,
            recovery: None,
        }
    }

    /// Applies `commands` as one batch and returns their replies.
    ///
    /// # Errors
    ///
    /// [`LedgerError::BatchTooLarge`] for more than the machine's batch limit;
    /// [`LedgerError::Unavailable`] if the machine panicked in another thread.
    pub fn submit(&self, commands: Vec<M::Command>) -> Result<Vec<M::Reply>, LedgerError> {
        if commands.len() > M::BATCH_MAX {
            return Err(LedgerError::BatchTooLarge {
                events: commands.len(),
                max: M::BATCH_MAX,
            });
        }
        let mut queue = self.lock_queue()?;
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.waiting.push((ticket, commands));
        loop {
            if let Some(at) = queue.done.iter().position(|(t, _)| *t == ticket) {
                return queue.done.swap_remove(at).1;
            }
            if let Some(reason) = &queue.broken {
                return Err(LedgerError::Unavailable { reason: reason.clone() });
            }
            if queue.combining {
                queue = self.ready.wait(queue).map_err(|_| LedgerError::Unavailable {
                    reason: "a thread panicked".into(),
                })?;
                continue;
            }
            // This thread combines: it applies every waiting submission, its own included.
            queue.combining = true;
            let group = std::mem::take(&mut queue.waiting);
            drop(queue);
            let guard = PanicGuard {
                queue: &self.queue,
                ready: &self.ready,
            };
            let finished = self.combine(group);
            std::mem::forget(guard);
            queue = self.lock_queue()?;
            queue.combining = false;
            match finished {
                Ok(replies) => queue.done.extend(replies),
                Err(reason) => queue.broken = Some(reason),
            }
            self.ready.notify_all();
        }
    }

    /// Reads the machine's state.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Unavailable`] if the machine panicked in another thread.
    pub fn read<T>(&self, f: impl FnOnce(&M) -> T) -> Result<T, LedgerError> {
        let machine = self.lock_machine()?;
        Ok(f(&machine.machine))
    }

    /// Takes the machine back.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Unavailable`] if the machine panicked in another thread.
    pub fn into_inner(self) -> Result<M, LedgerError> {
        self.machine
            .into_inner()
            .map(|inner| inner.machine)
            .map_err(|_| LedgerError::Unavailable {
                reason: "a thread panicked".into(),
            })
    }

    #[allow(clippy::type_complexity)]
    fn combine(
        &self,
        group: Vec<(u64, Vec<M::Command>)>,
    ) -> Result<Vec<(u64, Result<Vec<M::Reply>, LedgerError>)>, String> {
        let mut inner = self
            .machine
            .lock()
            .map_err(|_| "a thread panicked while applying a batch".to_owned())?;
        let now = self.clock.now_ns();
        let Inner { machine, journal } = &mut *inner;
        // A snapshot written since the last turn is listed now.
        if let Some(j) = journal.as_mut() {
            let _ = j.finish_writing(false);
        }
        // Write-ahead: the turn's inputs are durable before any of them is applied.
        if let Some(j) = journal.as_mut() {
            durable::encode_turn(&mut j.buf, now, &group, j.encode);
            j.storage.append(&j.buf).map_err(|e| {
                format!("the journal failed, nothing of the batch was applied ({e}): reopen the ledger")
            })?;
        }
        let replies = group
            .into_iter()
            .map(|(ticket, commands)| (ticket, machine.apply_batch(now, &commands)))
            .collect();
        if let Some(j) = journal.as_mut()
            && let Some(limit) = j.snapshot_journal_bytes
            && !j.snapshot_failed
            && j.storage.bytes_since_snapshot() >= limit
        {
            // The turn is durable and applied whatever happens here. The state is encoded
            // now; its file is written and synced on another thread while turns go on, and
            // listed by a later turn. A failed snapshot leaves the older one in place, and
            // `snapshot()` reports the error.
            j.snapshot_in_background(machine);
        }
        Ok(replies)
    }

    /// The head of the journal (records written and the hash at the head of the chain),
    /// or `None` for a handle without storage.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Unavailable`] if the machine panicked in another thread.
    pub fn head(&self) -> Result<Option<Head>, LedgerError> {
        let inner = self.lock_machine()?;
        Ok(inner.journal.as_ref().map(|j| j.storage.head()))
    }

    /// What recovery found when the handle was opened (`None` for a handle without
    /// storage).
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }

    fn lock_machine(&self) -> Result<MutexGuard<'_, Inner<M>>, LedgerError> {
        self.machine.lock().map_err(|_| LedgerError::Unavailable {
            reason: "a thread panicked".into(),
        })
    }

    #[allow(clippy::type_complexity)]
    fn lock_queue(&self) -> Result<MutexGuard<'_, Queue<M::Command, M::Reply>>, LedgerError> {
        self.queue.lock().map_err(|_| LedgerError::Unavailable {
            reason: "a thread panicked".into(),
        })
    }
}

impl<M: Durable, K: Clock> SharedLedger<M, K> {
    /// Opens the durable store in `dir` (creating the directory and the store if they do
    /// not exist), recovers the machine — the newest valid snapshot, then the journal after
    /// it — and shares it. `init` makes the machine of a new store only; afterwards the
    /// machine, its settings included, comes from the store. The directory stays locked
    /// for writing until the handle is dropped.
    ///
    /// See [`crate::durable`] for an example.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Locked`] when another process or handle has the directory open;
    /// [`LedgerError::Foreign`] for a directory that is not a store of this kind (nothing
    /// is written to it); [`LedgerError::Corrupt`] for damage before the journal's tail,
    /// naming the file and offset; [`LedgerError::Io`].
    pub fn open(
        dir: impl AsRef<Path>,
        init: impl FnOnce() -> M,
        clock: K,
        options: &OpenOptions,
    ) -> Result<SharedLedger<M, K>, LedgerError> {
        let store = FileStore::open(dir.as_ref(), M::KIND, true)?
            .segment_bytes(options.segment_bytes)
            .archive_journal(options.archive_journal);
        SharedLedger::with_storage(Box::new(store), init, clock, options)
    }

    /// As [`SharedLedger::open`], with any [`Storage`] (a database, or a [`FileStore`]
    /// opened by hand).
    ///
    /// # Errors
    ///
    /// As [`SharedLedger::open`], from the storage.
    pub fn with_storage(
        mut storage: Box<dyn Storage>,
        init: impl FnOnce() -> M,
        clock: K,
        options: &OpenOptions,
    ) -> Result<SharedLedger<M, K>, LedgerError> {
        let (machine, recovery) = durable::recover::<M>(storage.as_mut())?;
        let mut journal = Journal {
            storage,
            encode: M::encode_commands,
            encode_state: M::encode_state,
            buf: Vec::new(),
            snapshot_journal_bytes: options.snapshot_journal_bytes,
            snapshot_failed: false,
            writing: None,
        };
        let machine = if let Some(machine) = machine {
            machine
        } else {
            // A new store: its first snapshot records the machine as made, settings
            // included, so that replay always starts from the same state.
            let machine = init();
            journal.snapshot(&machine)?;
            machine
        };
        let mut shared = SharedLedger::new(machine, clock);
        if let Ok(inner) = shared.machine.get_mut() {
            inner.journal = Some(journal);
        }
        shared.recovery = Some(recovery);
        Ok(shared)
    }

    /// Writes a snapshot of the state now (the combining thread waits meanwhile), so that
    /// a restart replays only the journal after it; older segments are then removed.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Unavailable`] for a handle without storage or after a failure;
    /// [`LedgerError::Io`] (the older snapshot stays in use).
    pub fn snapshot(&self) -> Result<Head, LedgerError> {
        let mut inner = self.lock_machine()?;
        let Inner { machine, journal } = &mut *inner;
        let journal = journal.as_mut().ok_or_else(|| LedgerError::Unavailable {
            reason: "the handle has no storage".into(),
        })?;
        let head = journal.snapshot(machine)?;
        journal.snapshot_failed = false;
        Ok(head)
    }
}
