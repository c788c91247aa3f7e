//! A handle that many threads share: their operations are combined into batches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{BATCH_EVENTS_MAX, Event, EventResult, Ledger, LedgerError};

/// Where the time comes from: nanoseconds, never going back by the ledger's rules (the
/// ledger keeps timestamps increasing even if a clock does go back).
pub trait Clock: Send + Sync {
    /// The time now, in nanoseconds.
    fn now_ns(&self) -> u64;
}

/// The system clock: nanoseconds since 1970-01-01 UTC.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// A clock that moves only when told to, for tests and simulations.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ns: AtomicU64,
}

impl ManualClock {
    /// A clock at `now_ns`.
    pub fn new(now_ns: u64) -> ManualClock {
        ManualClock {
            now_ns: AtomicU64::new(now_ns),
        }
    }

    /// Sets the time.
    pub fn set(&self, now_ns: u64) {
        self.now_ns.store(now_ns, Ordering::SeqCst);
    }

    /// Moves the time forward by `ns`.
    pub fn advance(&self, ns: u64) {
        self.now_ns.fetch_add(ns, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.now_ns.load(Ordering::SeqCst)
    }
}

/// A deterministic state machine that applies batches of commands at a given time: the
/// [`Ledger`], or the [`crate::billing::Billing`] layer on top of it.
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
pub struct SharedLedger<M: StateMachine, K: Clock> {
    machine: Mutex<M>,
    queue: Mutex<Queue<M::Command, M::Reply>>,
    ready: Condvar,
    clock: K,
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
            machine: Mutex::new(machine),
            queue: Mutex::new(Queue {
                next_ticket: 0,
                waiting: Vec::new(),
                done: Vec::new(),
                combining: false,
                broken: None,
            }),
            ready: Condvar::new(),
            clock,
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
        let machine = self.machine.lock().map_err(|_| LedgerError::Unavailable {
            reason: "a thread panicked".into(),
        })?;
        Ok(f(&machine))
    }

    /// Takes the machine back.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Unavailable`] if the machine panicked in another thread.
    pub fn into_inner(self) -> Result<M, LedgerError> {
        self.machine.into_inner().map_err(|_| LedgerError::Unavailable {
            reason: "a thread panicked".into(),
        })
    }

    #[allow(clippy::type_complexity)]
    fn combine(
        &self,
        group: Vec<(u64, Vec<M::Command>)>,
    ) -> Result<Vec<(u64, Result<Vec<M::Reply>, LedgerError>)>, String> {
        let mut machine = self
            .machine
            .lock()
            .map_err(|_| "a thread panicked while applying a batch".to_owned())?;
        let now = self.clock.now_ns();
        Ok(group
            .into_iter()
            .map(|(ticket, commands)| (ticket, machine.apply_batch(now, &commands)))
            .collect())
    }

    #[allow(clippy::type_complexity)]
    fn lock_queue(&self) -> Result<MutexGuard<'_, Queue<M::Command, M::Reply>>, LedgerError> {
        self.queue.lock().map_err(|_| LedgerError::Unavailable {
            reason: "a thread panicked".into(),
        })
    }
}
