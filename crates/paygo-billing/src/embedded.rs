//! The embedded [`BillingStore`]: the billing state machine in this process, behind the
//! ledger's shared handle (in memory, or durable in a directory), with a writer thread so
//! that no future blocks its executor on a sync.

use std::collections::VecDeque;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use paygo_ledger::durable::OpenOptions;
use paygo_ledger::{Clock, SharedLedger, StateMachine};

use crate::auto::TopUpRequest;
use crate::command::{Command, Reply};
use crate::config::BillingConfig;
use crate::durable::open_billing;
use crate::ids::CustomerId;
use crate::machine::Billing;
use crate::store::{Balance, BillingError, BillingStore, HistoryPage, HistoryQuery, history_of};

/// The embedded billing store: [`Billing`] behind a [`SharedLedger`], as a [`BillingStore`].
///
/// Submissions go to one writer thread, which takes every submission waiting and applies
/// them in one turn of the shared handle (for a durable handle: one journal record, synced
/// once: group commit), then wakes each caller's future. A future never blocks the thread
/// that polls it; reads (`balance`, `history`, `outstanding_requests`) take the state's
/// lock for as long as the read takes, and wait for at most one turn being applied (in a
/// durable handle the turn's sync happens under that lock).
///
/// One process owns the state (the directory lock of a durable store enforces it): several
/// gateway processes share billing through a database store, not through this one.
///
/// ```
/// use paygo_billing::{BillingConfig, BillingStore, CardKind, Command, CustomerId, EmbeddedStore, PaymentMethod, TopUpId};
/// use paygo_credits::{Credits, Money};
/// use paygo_ledger::ManualClock;
///
/// let store = EmbeddedStore::in_memory(BillingConfig::default(), ManualClock::new(1))?;
/// let customer = CustomerId(42);
/// let top_up = Command::TopUp {
///     id: TopUpId(7),
///     customer,
///     amount: Money::usd("10.00".parse()?),
///     method: PaymentMethod::Card(CardKind::Credit),
/// };
/// // Any executor: this one is the smallest there is.
/// let replies = paygo_billing::block_on(store.submit(vec![Command::OpenAccount { customer }, top_up]))?;
/// assert!(replies.iter().all(Result::is_ok));
/// let balance = paygo_billing::block_on(store.balance(customer))?;
/// assert_eq!(balance.available, Credits::new(20_000_000));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EmbeddedStore<K: Clock + 'static> {
    shared: Arc<Shared<K>>,
    writer: Option<JoinHandle<()>>,
}

impl<K: Clock + 'static> std::fmt::Debug for EmbeddedStore<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

struct Shared<K: Clock> {
    ledger: SharedLedger<Billing, K>,
    queue: Mutex<Queue>,
    ready: Condvar,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

struct Job {
    commands: Vec<Command>,
    slot: Arc<Slot>,
}

/// One submission's answer, once the writer has it.
type Answer = Result<Vec<Reply>, BillingError>;

/// Where the writer thread leaves one submission's answer, and the waker of the future
/// that waits for it.
#[derive(Default)]
struct Slot {
    state: Mutex<(Option<Answer>, Option<Waker>)>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, (Option<Answer>, Option<Waker>)> {
        // The slot holds plain data that is never left half-written: a poisoned lock
        // (a panic elsewhere while holding it) still holds a consistent value.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fill(&self, answer: Answer) {
        let waker = {
            let mut state = self.lock();
            state.0 = Some(answer);
            state.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The future of one submission.
struct Submitted {
    slot: Arc<Slot>,
}

impl Future for Submitted {
    type Output = Answer;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        let mut state = self.slot.lock();
        if let Some(answer) = state.0.take() {
            return Poll::Ready(answer);
        }
        state.1 = Some(cx.waker().clone());
        Poll::Pending
    }
}

fn closed() -> BillingError {
    BillingError::Unavailable {
        reason: "the embedded store was closed".into(),
    }
}

impl<K: Clock + 'static> EmbeddedStore<K> {
    /// A store over `ledger` (in memory or durable).
    ///
    /// # Errors
    ///
    /// [`BillingError::Unavailable`] if the writer thread cannot be started.
    pub fn new(ledger: SharedLedger<Billing, K>) -> Result<EmbeddedStore<K>, BillingError> {
        let shared = Arc::new(Shared {
            ledger,
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
        });
        let worker = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("paygo-billing-writer".into())
            .spawn(move || worker.write_loop())
            .map_err(|e| BillingError::Unavailable {
                reason: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(EmbeddedStore {
            shared,
            writer: Some(writer),
        })
    }

    /// A store in memory (nothing survives the process: for tests and examples).
    ///
    /// # Errors
    ///
    /// [`BillingError::Unavailable`] if the writer thread cannot be started.
    pub fn in_memory(config: BillingConfig, clock: K) -> Result<EmbeddedStore<K>, BillingError> {
        EmbeddedStore::new(SharedLedger::new(Billing::new(config), clock))
    }

    /// A durable store in `dir` (created if new; `config` is used only then): see
    /// [`open_billing`].
    ///
    /// # Errors
    ///
    /// [`BillingError::Unavailable`] with the ledger's reason (locked, corrupt, foreign,
    /// I/O).
    pub fn open(
        dir: impl AsRef<Path>,
        config: BillingConfig,
        clock: K,
        options: &OpenOptions,
    ) -> Result<EmbeddedStore<K>, BillingError> {
        EmbeddedStore::new(open_billing(dir, config, clock, options)?)
    }

    /// The shared handle underneath (to read the state machine, or snapshot it).
    pub fn ledger(&self) -> &SharedLedger<Billing, K> {
        &self.shared.ledger
    }
}

impl<K: Clock> Shared<K> {
    fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        // The queue is never left half-updated by a panic (pushes and drains are single
        // calls), so a poisoned lock still holds a consistent queue.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The writer thread: takes every waiting submission (up to the batch limit), applies
    /// them in one turn, answers each.
    fn write_loop(&self) {
        loop {
            let jobs = {
                let mut queue = self.lock_queue();
                while queue.jobs.is_empty() && !queue.closed {
                    queue = self.ready.wait(queue).unwrap_or_else(PoisonError::into_inner);
                }
                if queue.jobs.is_empty() {
                    return;
                }
                let mut taken = Vec::new();
                let mut commands = 0usize;
                while let Some(job) = queue.jobs.front() {
                    if !taken.is_empty() && commands + job.commands.len() > Billing::BATCH_MAX {
                        break;
                    }
                    commands += job.commands.len();
                    if let Some(job) = queue.jobs.pop_front() {
                        taken.push(job);
                    }
                }
                taken
            };
            let lengths: Vec<usize> = jobs.iter().map(|j| j.commands.len()).collect();
            let all: Vec<Command> = jobs.iter().flat_map(|j| j.commands.iter().copied()).collect();
            match self.ledger.submit(all) {
                Ok(replies) => {
                    let mut replies = replies.into_iter();
                    for (job, len) in jobs.into_iter().zip(lengths) {
                        job.slot.fill(Ok(replies.by_ref().take(len).collect()));
                    }
                }
                Err(error) => {
                    let error = BillingError::from(error);
                    for job in jobs {
                        job.slot.fill(Err(error.clone()));
                    }
                }
            }
        }
    }
}

impl<K: Clock + 'static> Drop for EmbeddedStore<K> {
    fn drop(&mut self) {
        self.shared.lock_queue().closed = true;
        self.shared.ready.notify_all();
        // The writer answers what is queued, then stops; a writer that panicked has
        // nothing left to answer.
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        for job in self.shared.lock_queue().jobs.drain(..) {
            job.slot.fill(Err(closed()));
        }
    }
}

impl<K: Clock + 'static> BillingStore for EmbeddedStore<K> {
    fn submit(&self, commands: Vec<Command>) -> impl Future<Output = Result<Vec<Reply>, BillingError>> + Send {
        let slot = Arc::new(Slot::default());
        if commands.len() > Billing::BATCH_MAX {
            slot.fill(Err(BillingError::BatchTooLarge {
                commands: commands.len(),
                max: Billing::BATCH_MAX,
            }));
        } else if commands.is_empty() {
            slot.fill(Ok(Vec::new()));
        } else {
            let mut queue = self.shared.lock_queue();
            if queue.closed {
                slot.fill(Err(closed()));
            } else {
                queue.jobs.push_back(Job {
                    commands,
                    slot: Arc::clone(&slot),
                });
                self.shared.ready.notify_one();
            }
        }
        Submitted { slot }
    }

    fn balance(&self, customer: CustomerId) -> impl Future<Output = Result<Balance, BillingError>> + Send {
        let answer = self
            .shared
            .ledger
            .read(|b| Balance::of(b, customer))
            .map_err(BillingError::from)
            .and_then(|r| r);
        std::future::ready(answer)
    }

    fn auto_top_up(
        &self,
        customer: CustomerId,
    ) -> impl Future<Output = Result<crate::AutoTopUpStatus, BillingError>> + Send {
        let answer = self
            .shared
            .ledger
            .read(|b| crate::store::auto_top_up_of(b, customer))
            .map_err(BillingError::from)
            .and_then(|r| r);
        std::future::ready(answer)
    }

    fn history(
        &self,
        customer: CustomerId,
        query: HistoryQuery,
    ) -> impl Future<Output = Result<HistoryPage, BillingError>> + Send {
        let answer = self
            .shared
            .ledger
            .read(|b| history_of(b, customer, &query))
            .map_err(BillingError::from)
            .and_then(|r| r);
        std::future::ready(answer)
    }

    fn outstanding_requests(&self) -> impl Future<Output = Result<Vec<TopUpRequest>, BillingError>> + Send {
        std::future::ready(
            self.shared
                .ledger
                .read(Billing::outstanding_requests)
                .map_err(BillingError::from),
        )
    }
}

/// Runs a future to completion on this thread: the smallest executor there is (it parks
/// the thread until the future's waker is called). For tests, examples and the contract
/// suite; a service uses its own runtime (tokio).
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}
