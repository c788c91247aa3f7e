//! [`PgStore`]: the billing store on PostgreSQL. Submissions are combined into batches (one
//! transaction each, a few round trips whatever the batch's size); each batch locks the
//! rows of the customers it touches in ascending order, applies its commands on their
//! shards ([`paygo_billing::run_batch`]) and writes back what changed with one statement per
//! table (arrays unnested), pipelined.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use paygo_billing::{
    Balance, BillingConfig, BillingError, BillingStore, ClosedHold, Command, CustomerId, EntryKind, HistoryEntry,
    HistoryPage, HistoryQuery, HoldId, IdSpace, PaymentRef, Receipt, Reply, RequestId, Route, Rows, Shard, ShardNo,
    ShardWrite, StoredReply, TopUpRequest, decode_request, encode_request, run_batch,
};
use paygo_credits::Credits;
use paygo_gateway::{GatewayError, Joint, JointTopUps};
use paygo_invoice::{InvoiceError, Prepared, RECORD_MAX_BYTES, SEQUENCE_MAX};
use paygo_ledger::{AccountId, TransferId};
use paygo_time::Clock;
use tokio::sync::{Notify, oneshot};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::error::{PostgresError, describe};
use crate::ids::{id, ns, ns_back, uuid};
use crate::schema;

/// Where command times come from.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum StoreClock {
    /// The database server's clock (`clock_timestamp()`), read in each batch's transaction:
    /// one clock for every replica. The default.
    #[default]
    Database,
    /// A clock of this process (tests that move time by hand).
    Local(Arc<dyn Clock>),
}

impl std::fmt::Debug for StoreClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreClock::Database => f.write_str("Database"),
            StoreClock::Local(_) => f.write_str("Local"),
        }
    }
}

/// How to open a [`PgStore`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PgOptions {
    /// `postgres://USER@HOST[:PORT]/DATABASE` (key=value strings work too).
    pub url: String,
    /// The schema the store's tables live in (created if missing): one store per schema.
    pub schema: String,
    /// Batches in flight at once, each on its own connection.
    pub combiners: usize,
    /// Connections for reads, beside the combiners'.
    pub readers: usize,
    /// The most commands one batch (one transaction) carries.
    pub batch_max: usize,
    /// Where command times come from.
    pub clock: StoreClock,
    /// How long to wait for a connection before a call fails as unavailable.
    pub connect_timeout: Duration,
}

impl PgOptions {
    /// The defaults for `url`: schema `paygo`, 2 combiners (more split the queue into
    /// smaller batches that wait on each other's row locks: `benches/README.md`), 4 readers, batches of up to
    /// 4,096 commands, the database's clock, a 5-second connect timeout.
    pub fn new(url: impl Into<String>) -> PgOptions {
        PgOptions {
            url: url.into(),
            schema: "paygo".to_owned(),
            combiners: 2,
            readers: 4,
            batch_max: 4_096,
            clock: StoreClock::Database,
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// The same options in another schema.
    #[must_use]
    pub fn with_schema(mut self, schema: impl Into<String>) -> PgOptions {
        self.schema = schema.into();
        self
    }

    /// The same options with another clock.
    #[must_use]
    pub fn with_clock(mut self, clock: StoreClock) -> PgOptions {
        self.clock = clock;
        self
    }
}

/// Counters of a store's work since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgStats {
    /// Transactions committed.
    pub batches: u64,
    /// Commands they carried.
    pub commands: u64,
    /// Transactions run again after a conflict with another replica (an id or an account
    /// created by both at once) or a deadlock the server broke.
    pub retries: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    commands: AtomicU64,
    retries: AtomicU64,
}

struct Job {
    commands: Vec<Command>,
    answer: oneshot::Sender<Result<Vec<Reply>, BillingError>>,
}

/// One combiner's queue: the jobs of the customers that fall to it.
#[derive(Default)]
struct Lane {
    queue: Mutex<VecDeque<Job>>,
    wake: Notify,
}

/// How many holds one generation of [`HoldLanes`] remembers.
const HOLD_GENERATION: usize = 1 << 18;

/// Which lane each recent hold's customer falls to, so that a capture or release joins the
/// lane of its hold's customer (and so never races the hold's other commands in another
/// lane). Two generations of at most [`HOLD_GENERATION`] holds each: when the newer is
/// full it becomes the older and the older is dropped, so memory is bounded whatever
/// holds are never closed. A hold not found (dropped, or placed by another replica or
/// before a restart) goes to the lane of its id's hash: only a matter of speed, since a
/// batch that finds a customer's row changed under it runs again with the rows locked.
#[derive(Default)]
struct HoldLanes {
    generations: Mutex<[HashMap<HoldId, u8>; 2]>,
}

impl HoldLanes {
    fn remember(&self, hold: HoldId, lane: u8) {
        let mut g = self.generations.lock().unwrap_or_else(PoisonError::into_inner);
        if g[0].len() >= HOLD_GENERATION {
            g.swap(0, 1);
            g[0].clear();
        }
        g[0].insert(hold, lane);
    }

    /// The hold's lane, forgotten (a hold is closed once).
    fn take(&self, hold: HoldId) -> Option<u8> {
        let mut g = self.generations.lock().unwrap_or_else(PoisonError::into_inner);
        let [newer, older] = &mut *g;
        newer.remove(&hold).or_else(|| older.remove(&hold))
    }

    /// The hold's lane, kept (an extension leaves the hold open).
    fn get(&self, hold: HoldId) -> Option<u8> {
        let g = self.generations.lock().unwrap_or_else(PoisonError::into_inner);
        g[0].get(&hold).or_else(|| g[1].get(&hold)).copied()
    }
}

/// A 64-bit mix of an id (the finalizer of `SplitMix64` over both halves): spreads sequential
/// ids over lanes and slots.
fn mix(id: u128) -> u64 {
    #[allow(clippy::cast_possible_truncation)] // the two halves, on purpose
    let mut z = (id as u64) ^ ((id >> 64) as u64).rotate_left(32);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Inner {
    pool: Pool,
    config: BillingConfig,
    clock: StoreClock,
    batch_max: usize,
    sql: Sql,
    /// One lane a combiner: a customer's commands always go to the same lane, so that two
    /// combiners' batches seldom race on one customer's row.
    lanes: Box<[Lane]>,
    holds: HoldLanes,
    closed: AtomicBool,
    counters: Counters,
    runtime: tokio::runtime::Handle,
}

/// The billing store on PostgreSQL: every gateway replica that opens the same schema shares
/// one set of balances (see `docs/postgres.md`).
///
/// Opened inside a tokio runtime with more than one worker thread (its batches run as tasks
/// of that runtime); its futures can then be polled from any executor. Dropping it stops
/// its tasks once the batches in flight are answered.
///
/// ```no_run
/// use paygo_billing::{BillingConfig, BillingStore, Command, CustomerId};
/// use paygo_postgres::{PgOptions, PgStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let options = PgOptions::new("postgres://postgres@127.0.0.1/test");
/// let store = PgStore::open(options, BillingConfig::default()).await?;
/// let replies = store.submit(vec![Command::OpenAccount { customer: CustomerId(42) }]).await?;
/// assert!(replies[0].is_ok());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
    /// Dropped with the last clone: stops the combiners.
    _guard: Arc<CloseOnDrop>,
}

struct CloseOnDrop(Arc<Inner>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::SeqCst);
        for lane in &self.0.lanes {
            lane.wake.notify_waiters();
        }
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects, brings the schema to this build's version ([`crate::SCHEMA_VERSION`]),
    /// checks that `config` is the store's, and starts the combiners.
    ///
    /// # Errors
    ///
    /// [`PostgresError::InvalidUrl`], [`PostgresError::InvalidSchemaName`],
    /// [`PostgresError::InvalidOption`], [`PostgresError::Database`] (unreachable, or a
    /// statement refused), [`PostgresError::SchemaTooNew`], [`PostgresError::SchemaDamaged`],
    /// [`PostgresError::ConfigMismatch`].
    pub async fn open(options: PgOptions, config: BillingConfig) -> Result<PgStore, PostgresError> {
        schema::check_name(&options.schema)?;
        if options.combiners == 0 || options.combiners > 64 {
            return Err(PostgresError::InvalidOption {
                option: "combiners",
                reason: format!("{} given, expected 1 to 64", options.combiners),
            });
        }
        let batch_limit = <paygo_billing::Billing as paygo_ledger::StateMachine>::BATCH_MAX;
        if options.batch_max == 0 || options.batch_max > batch_limit {
            return Err(PostgresError::InvalidOption {
                option: "batch_max",
                reason: format!("{} given, expected 1 to {batch_limit}", options.batch_max),
            });
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| PostgresError::InvalidOption {
            option: "runtime",
            reason: "open the store inside a tokio runtime".to_owned(),
        })?;
        let pool = pool_for(&options, options.combiners + options.readers.max(1))?;
        {
            let mut client = pool
                .get()
                .await
                .map_err(|e| PostgresError::Database { reason: pool_error(&e) })?;
            schema::migrate(&mut client, &options.schema, Some(&config)).await?;
        }
        let inner = Arc::new(Inner {
            pool,
            config,
            clock: options.clock,
            batch_max: options.batch_max,
            sql: Sql::new(&options.schema),
            lanes: (0..options.combiners).map(|_| Lane::default()).collect(),
            holds: HoldLanes::default(),
            closed: AtomicBool::new(false),
            counters: Counters::default(),
            runtime: runtime.clone(),
        });
        for lane in 0..options.combiners {
            let worker = Arc::clone(&inner);
            runtime.spawn(async move { worker.combine(lane).await });
        }
        Ok(PgStore {
            _guard: Arc::new(CloseOnDrop(Arc::clone(&inner))),
            inner,
        })
    }

    /// What the store has done since it was opened.
    pub fn stats(&self) -> PgStats {
        let c = &self.inner.counters;
        PgStats {
            batches: c.batches.load(Ordering::Relaxed),
            commands: c.commands.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
        }
    }

    /// Sums over every customer, from their stored shards: what an auditor checks. Reads
    /// every row (one query), so it is for tests and audits, not the request path.
    ///
    /// # Errors
    ///
    /// [`BillingError::Unavailable`]; [`BillingError::Corrupt`] for a shard that does not
    /// decode.
    pub async fn audit(&self) -> Result<Audit, BillingError> {
        let inner = Arc::clone(&self.inner);
        spawned(&self.inner.runtime, async move { inner.audit().await }).await
    }

    /// Deletes what the idempotency window has forgotten
    /// ([`BillingConfig::id_window`](paygo_billing::BillingConfig::id_window)): stored
    /// replies and closed holds whose id is older than the window, and settled auto top-up
    /// requests as old. A command with such an id is refused
    /// ([`paygo_billing::Refusal::IdOlderThanWindow`]) whether or not its row is still
    /// there, so removing it changes no answer. Open holds are never removed (a hold row
    /// routes its capture: only those whose hold was closed go, and holds live far less
    /// than a window). History entries and the hourly roll-ups are kept: they are the
    /// customers' statements. Run it from one replica now and then (a day's rows at a
    /// time, in chunks of 10,000 rows per transaction). Without a window nothing is
    /// forgotten and nothing is removed.
    ///
    /// # Errors
    ///
    /// [`BillingError::Unavailable`].
    pub async fn prune(&self) -> Result<Pruned, BillingError> {
        let inner = Arc::clone(&self.inner);
        spawned(&self.inner.runtime, async move { inner.prune().await }).await
    }

    /// The charges of `customer` by UTC hour, from the roll-up written with each capture:
    /// `(hour start in ns, charges, credits)` for the hours in `from_ns .. to_ns`.
    ///
    /// # Errors
    ///
    /// [`BillingError::Unavailable`]; [`BillingError::Corrupt`] for a negative time.
    pub async fn charges_by_hour(
        &self,
        customer: CustomerId,
        from_ns: u64,
        to_ns: u64,
    ) -> Result<Vec<(u64, u64, Credits)>, BillingError> {
        let inner = Arc::clone(&self.inner);
        spawned(&self.inner.runtime, async move {
            let client = inner.client().await?;
            let rows = client
                .query(
                    &inner.sql.charges_by_hour,
                    &[&uuid(customer.0), &ns(from_ns)?, &ns(to_ns)?],
                )
                .await
                .map_err(unavailable)?;
            rows.iter()
                .map(|r| {
                    let charges: i64 = r.get(1);
                    Ok((
                        ns_back(r.get(0))?,
                        u64::try_from(charges).unwrap_or(0),
                        Credits::new(r.get(2)),
                    ))
                })
                .collect()
        })
        .await
    }
}

/// What [`PgStore::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pruned {
    /// Stored replies (and the closed holds in them) older than the window.
    pub replies: u64,
    /// Auto top-up requests settled and older than the window.
    pub requests: u64,
}

/// Rows one prune statement deletes at most: short transactions, never a long lock.
const PRUNE_CHUNK: i64 = 10_000;

/// What [`PgStore::audit`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Audit {
    /// Customers with an account.
    pub customers: u64,
    /// Credits ever sold (top-ups and paid auto top-ups, less reversals): minus the
    /// funding accounts, summed over the shards.
    pub sold: i128,
    /// Credits ever granted as bonuses.
    pub granted: i128,
    /// The customers' balances and open holds (their ledger accounts and lots), summed.
    pub held_by_customers: i128,
    /// Credits earned by calls.
    pub revenue: i128,
    /// Bonus credits expired unspent.
    pub breakage: i128,
    /// Minus the customers' arrears.
    pub receivables: i128,
}

impl Audit {
    /// Whether the books balance: what was sold and granted is what the customers hold,
    /// what calls earned, what expired, less what is owed.
    pub fn conserved(&self) -> bool {
        self.sold + self.granted == self.held_by_customers + self.revenue + self.breakage + self.receivables
    }
}

/// Runs `future` on the store's runtime, so that the caller's executor may be any.
async fn spawned<T: Send + 'static>(
    runtime: &tokio::runtime::Handle,
    future: impl std::future::Future<Output = Result<T, BillingError>> + Send + 'static,
) -> Result<T, BillingError> {
    runtime.spawn(future).await.map_err(|e| BillingError::Unavailable {
        reason: format!("the store's task failed: {e}"),
    })?
}

/// A pool of at most `size` connections to `options.url`.
pub(crate) fn pool_for(options: &PgOptions, size: usize) -> Result<Pool, PostgresError> {
    let mut pg: tokio_postgres::Config = options
        .url
        .parse()
        .map_err(|e: tokio_postgres::Error| PostgresError::InvalidUrl { reason: e.to_string() })?;
    pg.connect_timeout(options.connect_timeout);
    pg.application_name("paygo");
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(options.connect_timeout))
        .create_timeout(Some(options.connect_timeout))
        .build()
        .map_err(|e| PostgresError::InvalidOption {
            option: "pool",
            reason: e.to_string(),
        })
}

#[allow(clippy::needless_pass_by_value)] // the function of `map_err`
fn unavailable(error: tokio_postgres::Error) -> BillingError {
    BillingError::Unavailable {
        reason: describe(&error),
    }
}

pub(crate) fn pool_error(error: &deadpool_postgres::PoolError) -> String {
    match error {
        deadpool_postgres::PoolError::Backend(e) => describe(e),
        other => other.to_string(),
    }
}

/// How a batch's transaction failed.
enum Failure {
    /// A conflict another transaction caused (a unique key both wrote, a deadlock the
    /// server broke): nothing was applied, run the batch again.
    Conflict(String),
    /// Anything else, as the trait reports it.
    Fatal(BillingError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(error: tokio_postgres::Error) -> Failure {
        use tokio_postgres::error::SqlState;
        match error.code() {
            Some(code)
                if *code == SqlState::UNIQUE_VIOLATION
                    || *code == SqlState::T_R_DEADLOCK_DETECTED
                    || *code == SqlState::T_R_SERIALIZATION_FAILURE =>
            {
                Failure::Conflict(describe(&error))
            }
            _ => Failure::Fatal(unavailable(error)),
        }
    }
}

impl From<BillingError> for Failure {
    fn from(error: BillingError) -> Failure {
        Failure::Fatal(error)
    }
}

/// A joint top-up's invoice, numbered in the batch's transaction.
struct InvoiceStep {
    prepared: Prepared,
    /// The number it took, once recorded.
    number: Option<u64>,
    /// Its id was recorded already: the transaction was rolled back.
    already: bool,
    /// Why it could not be sealed or recorded.
    error: Option<InvoiceError>,
}

impl JointTopUps for PgStore {
    fn top_up_invoiced(
        &self,
        command: Command,
        invoice: Prepared,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Joint, GatewayError>> + Send + '_>> {
        let inner = Arc::clone(&self.inner);
        let runtime = self.inner.runtime.clone();
        Box::pin(async move {
            spawned(&runtime, async move {
                let mut step = InvoiceStep {
                    prepared: invoice,
                    number: None,
                    already: false,
                    error: None,
                };
                // A connection of the pool's (the combiners keep theirs).
                let mut conn = None;
                let replies = inner.run(&mut conn, &[command], Some(&mut step)).await;
                if let Some(e) = step.error.take() {
                    return Ok(Err(GatewayError::Invoice(e)));
                }
                let reply = match replies {
                    Ok(replies) => replies.into_iter().next().ok_or_else(|| BillingError::Unavailable {
                        reason: "a joint top-up answered no reply".into(),
                    })?,
                    Err(e) => return Ok(Err(GatewayError::Billing(e))),
                };
                Ok(Ok(match (step.already, step.number) {
                    (true, _) => Joint::AlreadyIssued,
                    (false, Some(number)) => Joint::Issued {
                        reply,
                        number,
                        invoice: Box::new(step.prepared),
                    },
                    (false, None) => Joint::NotCredited { reply },
                }))
            })
            .await
            .unwrap_or_else(|e| Err(GatewayError::Billing(e)))
        })
    }
}

/// Attempts of one batch before its callers are told the store is unavailable.
const ATTEMPTS: u32 = 8;

impl Inner {
    async fn client(&self) -> Result<deadpool_postgres::Object, BillingError> {
        self.pool
            .get()
            .await
            .map_err(|e| BillingError::Unavailable { reason: pool_error(&e) })
    }

    /// The lane of a job: that of its first command's customer (a job's commands seldom
    /// name more than one; the versioned updates keep it right when they do). Remembers the lane of
    /// the holds it places, for their captures.
    fn lane_of(&self, commands: &[Command]) -> usize {
        let n = self.lanes.len();
        // At most 64 lanes (checked on open): a lane fits a byte.
        #[allow(clippy::cast_possible_truncation)]
        let by_id = |id: u128| (mix(id) % n as u64) as u8;
        let lane = match commands.first() {
            Some(Command::ExtendHold { hold, .. }) => self.holds.get(*hold).unwrap_or_else(|| by_id(hold.0)),
            Some(first) => match Route::of(first) {
                Route::Customer(c) => by_id(c.0),
                Route::Hold(h) => self.holds.take(h).unwrap_or_else(|| by_id(h.0)),
                Route::Request(r) => by_id(r.0),
                // A route this store does not know yet: any lane is right.
                _ => 0,
            },
            None => 0,
        };
        for c in commands {
            if let Command::Hold { id, customer, .. } = c {
                self.holds.remember(*id, by_id(customer.0));
            }
        }
        usize::from(lane).min(n - 1)
    }

    /// Takes waiting jobs of `lane`, up to the batch limit (at least one job).
    fn take(&self, lane: usize) -> Vec<Job> {
        let mut queue = self.lanes[lane].queue.lock().unwrap_or_else(PoisonError::into_inner);
        let mut jobs = Vec::new();
        let mut commands = 0;
        while let Some(job) = queue.front() {
            if !jobs.is_empty() && commands + job.commands.len() > self.batch_max {
                break;
            }
            commands += job.commands.len();
            if let Some(job) = queue.pop_front() {
                jobs.push(job);
            }
        }
        jobs
    }

    /// A combiner: takes what is waiting in its lane, runs it as one transaction, answers;
    /// until the store is dropped.
    async fn combine(self: Arc<Inner>, lane: usize) {
        // The combiner's own connection, kept from one batch to the next.
        let mut conn: Option<deadpool_postgres::Object> = None;
        loop {
            let notified = self.lanes[lane].wake.notified();
            let jobs = self.take(lane);
            if jobs.is_empty() {
                if self.closed.load(Ordering::SeqCst) {
                    return;
                }
                notified.await;
                continue;
            }
            let commands: Vec<Command> = jobs.iter().flat_map(|j| j.commands.iter().copied()).collect();
            let answer = self.run(&mut conn, &commands, None).await;
            match answer {
                Ok(replies) => {
                    let mut replies = replies.into_iter();
                    for job in jobs {
                        let mine: Vec<Reply> = replies.by_ref().take(job.commands.len()).collect();
                        // A caller that stopped waiting is no longer interested.
                        let _ = job.answer.send(Ok(mine));
                    }
                }
                Err(error) => {
                    for job in jobs {
                        let _ = job.answer.send(Err(error.clone()));
                    }
                }
            }
        }
    }

    /// Runs one batch, again after a conflict, on the combiner's own connection (`conn`:
    /// opened when missing, dropped after a failure that may have left it unusable).
    async fn run(
        &self,
        conn: &mut Option<deadpool_postgres::Object>,
        commands: &[Command],
        mut invoice: Option<&mut InvoiceStep>,
    ) -> Result<Vec<Reply>, BillingError> {
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_micros(200 << attempt.min(6))).await;
            }
            let client = match conn {
                Some(client) => client,
                None => conn.insert(self.client().await?),
            };
            let result = self
                .transaction(client, commands, attempt > 0, invoice.as_deref_mut())
                .await;
            if result.is_err() {
                // Never leave a transaction open on a connection that is used again: roll
                // back, or give the connection up (dropped from the pool, closed).
                if client.batch_execute("ROLLBACK").await.is_err()
                    && let Some(broken) = conn.take()
                {
                    drop(deadpool_postgres::Object::take(broken));
                }
            }
            match result {
                Ok(replies) => {
                    self.counters.batches.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .commands
                        .fetch_add(commands.len() as u64, Ordering::Relaxed);
                    return Ok(replies);
                }
                Err(Failure::Conflict(why)) => last = why,
                Err(Failure::Fatal(error)) => return Err(error),
            }
        }
        Err(BillingError::Unavailable {
            reason: format!("a batch conflicted with other replicas {ATTEMPTS} times in a row; last: {last}"),
        })
    }

    /// The time of a batch: the local clock, or the database's as read in the batch.
    fn batch_time_ns(&self, database_us: Option<i64>) -> Result<u64, Failure> {
        match (&self.clock, database_us) {
            (StoreClock::Local(clock), _) => Ok(clock.now_ns()),
            (StoreClock::Database, Some(micros)) => Ok(database_ns(micros)?),
            (StoreClock::Database, None) => Err(Failure::Fatal(BillingError::Unavailable {
                reason: "the database's clock was not read".to_owned(),
            })),
        }
    }

    /// One batch in one transaction (the module's docs; `paygo_billing::sharded`), in four
    /// round trips: statements that do not depend on each other's answers go out together
    /// (the server runs them in the order sent, so a read sent after the customers' rows
    /// sees them or later). `lock`: read the customers' rows `FOR UPDATE` (a batch run
    /// again after a conflict).
    #[allow(clippy::too_many_lines)] // the steps of one transaction, in order
    async fn transaction(
        &self,
        client: &deadpool_postgres::Object,
        commands: &[Command],
        lock: bool,
        invoice: Option<&mut InvoiceStep>,
    ) -> Result<Vec<Reply>, Failure> {
        let sql = &self.sql;
        let (route_st, customers_st, fresh_st, replies_st, now_st) = tokio::try_join!(
            client.prepare_cached(&sql.route),
            client.prepare_cached(if lock { &sql.customers_locked } else { &sql.customers }),
            client.prepare_cached(&sql.fresh),
            client.prepare_cached(&sql.replies),
            client.prepare_cached(&sql.now),
        )?;
        let (s1, s2, s3, s4, s5, s6, s7, s8) = tokio::try_join!(
            client.prepare_cached(&sql.insert_customers),
            client.prepare_cached(&sql.update_customers),
            client.prepare_cached(&sql.insert_replies),
            client.prepare_cached(&sql.close_holds),
            client.prepare_cached(&sql.insert_entries),
            client.prepare_cached(&sql.upsert_hourly),
            client.prepare_cached(&sql.insert_requests),
            client.prepare_cached(&sql.close_requests),
        )?;
        // Round trip 1: begin, and find where captures and payment reports go.
        let mut holds: Vec<Uuid> = Vec::new();
        let mut requests: Vec<Uuid> = Vec::new();
        for c in commands {
            match Route::of(c) {
                Route::Hold(h) => holds.push(uuid(h.0)),
                Route::Request(r) => requests.push(uuid(r.0)),
                _ => {}
            }
        }
        let (begun, routed) = tokio::join!(client.batch_execute("BEGIN"), async {
            if holds.is_empty() && requests.is_empty() {
                Ok(Vec::new())
            } else {
                client.query(&route_st, &[&holds, &requests]).await
            }
        });
        begun?;
        let mut rows = Rows::new();
        for row in routed? {
            let kind: i16 = row.get(0);
            let (what, customer): (Uuid, Uuid) = (row.get(1), row.get(2));
            if kind == 2 {
                rows.hold_customers.insert(HoldId(id(what)), CustomerId(id(customer)));
            } else {
                rows.request_customers
                    .insert(RequestId(id(what)), CustomerId(id(customer)));
            }
        }
        // Round trip 2: the customers' rows and their versions (no lock on a first attempt:
        // the updates of round trip 3 are conditional on the versions read here; locked, in
        // ascending order, on a later attempt), then shard numbers for
        // accounts the batch may open, the stored replies and closed holds of the ids named
        // (read after the rows, so never older than them), and the time.
        let touched = Route::customers_to_lock(commands, &rows.hold_customers, &rows.request_customers);
        let customer_ids: Vec<Uuid> = touched.iter().map(|c| uuid(c.0)).collect();
        let opened = Route::customers_opened(commands);
        let fresh_n = i32::try_from(opened.len()).unwrap_or(i32::MAX);
        let keys = Route::ids(commands);
        let spaces: Vec<i16> = keys.iter().map(|(s, _)| i16::from(s.code())).collect();
        let key_ids: Vec<Uuid> = keys.iter().map(|(_, i)| uuid(*i)).collect();
        let database_clock = matches!(self.clock, StoreClock::Database);
        // `biased`: sent and polled in the order written. PostgreSQL runs a transaction's
        // pipelined statements in that order, and once one fails every later one fails
        // only with "current transaction is aborted" (25P02); by default `try_join!`
        // starts polling at a rotating future, and could report one of those instead of
        // the failure (a deadlock, a unique key) that says the batch can be run again
        // (test: `a_replica_that_loses_a_race_to_open_a_customer_runs_its_batch_again`).
        let (locked, numbers, replies, now) = tokio::try_join!(
            biased;
            async { client.query(&customers_st, &[&customer_ids]).await },
            async {
                if opened.is_empty() {
                    Ok(Vec::new())
                } else {
                    client.query(&fresh_st, &[&fresh_n]).await
                }
            },
            async {
                if keys.is_empty() {
                    Ok(Vec::new())
                } else {
                    client.query(&replies_st, &[&spaces, &key_ids]).await
                }
            },
            async {
                if database_clock {
                    client.query_one(&now_st, &[]).await.map(|r| Some(r.get::<_, i64>(0)))
                } else {
                    Ok(None)
                }
            },
        )?;
        let mut versions = HashMap::with_capacity(locked.len());
        for row in locked {
            let customer = CustomerId(id(row.get(0)));
            let state: &[u8] = row.get(1);
            rows.shards.insert(customer, Shard::decode(state)?);
            versions.insert(customer, row.get::<_, i64>(2));
        }
        // Numbers for opened customers that have a row already stay unused: a gap in the
        // sequence, never a collision.
        for (c, row) in opened.iter().zip(numbers) {
            if !rows.shards.contains_key(c) {
                let no: i64 = row.get(0);
                rows.fresh.insert(*c, ShardNo(u64::try_from(no).unwrap_or(0)));
            }
        }
        for row in replies {
            let code: i16 = row.get(0);
            let space = u8::try_from(code)
                .ok()
                .and_then(IdSpace::from_code)
                .ok_or_else(|| BillingError::Corrupt {
                    reason: format!("a stored reply of id space {code}"),
                })?;
            let key = id(row.get(1));
            let customer: Option<Uuid> = row.get(2);
            let reply: &[u8] = row.get(3);
            rows.replies
                .insert((space, key), StoredReply::decode(space, key, reply)?);
            let (amount, closing): (Option<i64>, Option<&[u8]>) = (row.get(4), row.get(5));
            if let (IdSpace::Hold, Some(customer), Some(amount), Some(closing)) = (space, customer, amount, closing) {
                let hold = HoldId(key);
                let closed = ClosedHold::decode(hold, CustomerId(id(customer)), Credits::new(amount), closing)?;
                rows.closed_holds.insert(hold, closed);
            }
        }
        // Apply.
        let now_ns = self.batch_time_ns(now)?;
        let outcome = run_batch(&self.config, now_ns, commands, rows)?;
        // Round trip 3: write back, one statement a table.
        let w = Writes::of(&outcome.writes, &versions)?;
        let at = ns(now_ns)?;
        // `biased`, as for round trip 2: the first failure in statement order is reported.
        let (_, updated, _, closed, _, _, _, _) = tokio::try_join!(
            biased;
            async {
                let c = &w.new;
                let params: [&(dyn ToSql + Sync); 9] = [
                    &c.customer,
                    &c.shard,
                    &c.state,
                    &c.available,
                    &c.paid,
                    &c.bonus,
                    &c.uncollected,
                    &c.arrears,
                    &at,
                ];
                write(client, &s1, c.customer.len(), &params).await
            },
            async {
                let c = &w.updated;
                let params: [&(dyn ToSql + Sync); 9] = [
                    &c.customer,
                    &c.state,
                    &c.available,
                    &c.paid,
                    &c.bonus,
                    &c.uncollected,
                    &c.arrears,
                    &c.version,
                    &at,
                ];
                write(client, &s2, c.customer.len(), &params).await
            },
            async {
                let params: [&(dyn ToSql + Sync); 6] = [
                    &w.reply_spaces,
                    &w.reply_ids,
                    &w.reply_customers,
                    &w.replies,
                    &w.reply_held,
                    &at,
                ];
                write(client, &s3, w.reply_ids.len(), &params).await
            },
            async {
                let params: [&(dyn ToSql + Sync); 4] = [&w.closed_ids, &w.closed_amounts, &w.closings, &at];
                write(client, &s4, w.closed_ids.len(), &params).await
            },
            async {
                let params: [&(dyn ToSql + Sync); 6] = [
                    &w.entry_customers,
                    &w.entry_at,
                    &w.entry_transfers,
                    &w.entry_kinds,
                    &w.entry_refs,
                    &w.entry_credits,
                ];
                write(client, &s5, w.entry_customers.len(), &params).await
            },
            async {
                let params: [&(dyn ToSql + Sync); 4] =
                    [&w.hour_customers, &w.hour_at, &w.hour_charges, &w.hour_credits];
                write(client, &s6, w.hour_customers.len(), &params).await
            },
            async {
                let params: [&(dyn ToSql + Sync); 4] =
                    [&w.request_ids, &w.request_customers, &w.request_at, &w.request_bodies];
                write(client, &s7, w.request_ids.len(), &params).await
            },
            async {
                let params: [&(dyn ToSql + Sync); 1] = [&w.closed_requests];
                write(client, &s8, w.closed_requests.len(), &params).await
            },
        )?;
        if updated != w.updated.customer.len() as u64 {
            // Another replica changed a customer's row since this batch read it: run the
            // batch again on what it wrote.
            return Err(Failure::Conflict(format!(
                "{} of {} customer rows changed since the batch read them",
                w.updated.customer.len() as u64 - updated.min(w.updated.customer.len() as u64),
                w.updated.customer.len()
            )));
        }
        if closed != w.closed_ids.len() as u64 {
            return Err(Failure::Fatal(BillingError::Corrupt {
                reason: format!(
                    "{} holds were closed but {closed} of them have an open hold row",
                    w.closed_ids.len()
                ),
            }));
        }
        // A joint top-up: its invoice takes the next number of its series in this same
        // transaction, if the command credited.
        if let Some(step) = invoice {
            let credited = matches!(
                outcome.replies.first(),
                Some(Ok(Receipt::ToppedUp { .. } | Receipt::PaymentRecorded { .. }))
            );
            if credited && !self.record_invoice(client, step).await? {
                // Recorded already (by another replica, or an earlier call): nothing of
                // this transaction is kept.
                client.batch_execute("ROLLBACK").await?;
                return Ok(outcome.replies);
            }
        }
        // Round trip 4.
        client.batch_execute("COMMIT").await?;
        Ok(outcome.replies)
    }

    /// Records `step`'s invoice with the next number of its series, on `client`'s open
    /// transaction; `false` (nothing written, `step.already` set) when its id is recorded
    /// already.
    async fn record_invoice(
        &self,
        client: &deadpool_postgres::Object,
        step: &mut InvoiceStep,
    ) -> Result<bool, Failure> {
        let sql = &self.sql;
        let series = step.prepared.series().as_str().to_owned();
        let key = step.prepared.id().as_str().to_owned();
        if client.query_opt(&sql.invoice_key, &[&key]).await?.is_some() {
            step.already = true;
            return Ok(false);
        }
        client.execute(&sql.invoice_series_new, &[&series]).await?;
        let last: i64 = client.query_one(&sql.invoice_series_lock, &[&series]).await?.get(0);
        let fatal = |e: InvoiceError, step: &mut InvoiceStep| {
            let reason = e.to_string();
            step.error = Some(e);
            Failure::Fatal(BillingError::Unavailable { reason })
        };
        let Some(n) = u64::try_from(last)
            .ok()
            .and_then(|l| l.checked_add(1))
            .filter(|n| *n <= SEQUENCE_MAX)
        else {
            return Err(fatal(
                InvoiceError::Overflow {
                    operation: "sequence number",
                },
                step,
            ));
        };
        let record = match step.prepared.seal(n) {
            Ok(record) if record.len() <= RECORD_MAX_BYTES => record,
            Ok(_) => {
                return Err(fatal(
                    InvoiceError::Overflow {
                        operation: "sequence record size",
                    },
                    step,
                ));
            }
            Err(e) => return Err(fatal(e, step)),
        };
        // `n` is at most SEQUENCE_MAX, within a bigint.
        let number = i64::try_from(n).unwrap_or(i64::MAX);
        client
            .execute(&sql.invoice_insert, &[&series, &number, &key, &record])
            .await?;
        client.execute(&sql.invoice_series_raise, &[&series, &number]).await?;
        step.number = Some(n);
        Ok(true)
    }

    async fn prune(&self) -> Result<Pruned, BillingError> {
        let Some(window) = self.config.id_window else {
            return Ok(Pruned::default());
        };
        let client = self.client().await?;
        let now_ns = match &self.clock {
            StoreClock::Local(clock) => clock.now_ns(),
            StoreClock::Database => {
                let row = client.query_one(&self.sql.now, &[]).await.map_err(unavailable)?;
                database_ns(row.get(0))?
            }
        };
        // Ids are time-ordered (a window needs them so): every id below the first id of
        // the window's first millisecond is older than the window.
        let floor = TransferId::from_time_ns(now_ns.saturating_sub(window.past_ns), 0);
        let floor = uuid(floor.0);
        let mut pruned = Pruned::default();
        for (sql, count) in [
            (&self.sql.prune_replies, &mut pruned.replies),
            (&self.sql.prune_requests, &mut pruned.requests),
        ] {
            loop {
                let n = client
                    .execute(sql, &[&floor, &PRUNE_CHUNK])
                    .await
                    .map_err(unavailable)?;
                *count += n;
                if n < PRUNE_CHUNK.unsigned_abs() {
                    break;
                }
            }
        }
        Ok(pruned)
    }

    async fn audit(&self) -> Result<Audit, BillingError> {
        use paygo_billing::{BREAKAGE, FUNDING, PROMOTIONS, RECEIVABLES, REVENUE};
        let client = self.client().await?;
        let rows = client.query(&self.sql.all_shards, &[]).await.map_err(unavailable)?;
        let mut audit = Audit {
            customers: 0,
            sold: 0,
            granted: 0,
            held_by_customers: 0,
            revenue: 0,
            breakage: 0,
            receivables: 0,
        };
        for row in rows {
            let shard = Shard::decode(row.get(0))?;
            audit.customers += 1;
            let ledger = shard.billing().ledger();
            let posted = |a: AccountId| ledger.account(a).map_or(0, |b| b.posted_balance());
            audit.sold -= posted(FUNDING);
            audit.granted -= posted(PROMOTIONS);
            audit.revenue += posted(REVENUE);
            audit.breakage += posted(BREAKAGE);
            audit.receivables += posted(RECEIVABLES);
            for account in ledger.accounts() {
                if ![FUNDING, PROMOTIONS, REVENUE, BREAKAGE, RECEIVABLES].contains(&account.account.id) {
                    audit.held_by_customers += account.posted_balance();
                }
            }
        }
        Ok(audit)
    }

    async fn auto_top_up(&self, customer: CustomerId) -> Result<paygo_billing::AutoTopUpStatus, BillingError> {
        let client = self.client().await?;
        let row = client
            .query_opt(&self.sql.shard_and_now, &[&uuid(customer.0)])
            .await
            .map_err(unavailable)?
            .ok_or(BillingError::UnknownCustomer { customer })?;
        let shard = Shard::decode(row.get(0))?;
        paygo_billing::auto_top_up_of(shard.billing(), customer)
    }

    async fn balance(&self, customer: CustomerId) -> Result<Balance, BillingError> {
        let client = self.client().await?;
        let row = client
            .query_opt(&self.sql.shard_and_now, &[&uuid(customer.0)])
            .await
            .map_err(unavailable)?
            .ok_or(BillingError::UnknownCustomer { customer })?;
        let shard = Shard::decode(row.get(0))?;
        let now_ns = match &self.clock {
            StoreClock::Local(clock) => clock.now_ns(),
            StoreClock::Database => database_ns(row.get(1))?,
        };
        shard.balance_at(now_ns, customer)
    }

    async fn history(&self, customer: CustomerId, query: HistoryQuery) -> Result<HistoryPage, BillingError> {
        if query.limit == 0 || query.limit > paygo_billing::HISTORY_PAGE_MAX {
            return Err(BillingError::PageLimit {
                limit: query.limit,
                max: paygo_billing::HISTORY_PAGE_MAX,
            });
        }
        let client = self.client().await?;
        let c = uuid(customer.0);
        if client
            .query_opt(&self.sql.exists, &[&c])
            .await
            .map_err(unavailable)?
            .is_none()
        {
            return Err(BillingError::UnknownCustomer { customer });
        }
        let before = match query.before_ns {
            Some(b) => ns(b)?,
            None => i64::MAX,
        };
        let limit = i64::try_from(query.limit + 1).unwrap_or(i64::MAX);
        let rows = client
            .query(&self.sql.history, &[&c, &before, &limit])
            .await
            .map_err(unavailable)?;
        let mut entries = rows.iter().map(entry_of_row).collect::<Result<Vec<_>, _>>()?;
        let more = entries.len() > query.limit;
        entries.truncate(query.limit);
        let next = if more { entries.last().map(|e| e.at_ns) } else { None };
        Ok(HistoryPage { entries, next })
    }

    async fn outstanding(&self) -> Result<Vec<TopUpRequest>, BillingError> {
        let client = self.client().await?;
        let rows = client.query(&self.sql.outstanding, &[]).await.map_err(unavailable)?;
        rows.iter().map(|r| decode_request(r.get(0))).collect()
    }
}

/// One of a batch's writes: `statement` with `params` (arrays of `rows` elements each), or
/// nothing when the batch has no such rows.
async fn write(
    client: &deadpool_postgres::Object,
    statement: &tokio_postgres::Statement,
    rows: usize,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, tokio_postgres::Error> {
    if rows == 0 {
        return Ok(0);
    }
    client.execute(statement, params).await
}

/// Nanoseconds from the database clock's microseconds since the epoch.
fn database_ns(micros: i64) -> Result<u64, BillingError> {
    u64::try_from(micros)
        .ok()
        .and_then(|m| m.checked_mul(1_000))
        .ok_or_else(|| BillingError::Corrupt {
            reason: format!("the database's clock reads {micros} us since the epoch"),
        })
}

fn entry_of_row(row: &tokio_postgres::Row) -> Result<HistoryEntry, BillingError> {
    let kind: i16 = row.get(3);
    let reference = id(row.get(4));
    let kind = match kind {
        1 => EntryKind::Purchase { payment: reference },
        2 => EntryKind::Charge {
            hold: HoldId(reference),
        },
        3 => EntryKind::BonusGrant {
            lot: AccountId(reference),
        },
        4 => EntryKind::BonusExpiry {
            lot: AccountId(reference),
        },
        5 => EntryKind::Reversal {
            payment: PaymentRef::TopUp(paygo_billing::TopUpId(reference)),
        },
        6 => EntryKind::Reversal {
            payment: PaymentRef::AutoTopUp(RequestId(reference)),
        },
        other => {
            return Err(BillingError::Corrupt {
                reason: format!("a history entry of kind {other}"),
            });
        }
    };
    Ok(HistoryEntry {
        at_ns: ns_back(row.get(0))?,
        transfer: TransferId(id(row.get(2))),
        kind,
        credits: Credits::new(row.get(5)),
    })
}

/// An entry's kind and reference as columns.
fn entry_columns(kind: &EntryKind) -> Result<(i16, u128), BillingError> {
    Ok(match *kind {
        EntryKind::Purchase { payment } => (1, payment),
        EntryKind::Charge { hold } => (2, hold.0),
        EntryKind::BonusGrant { lot } => (3, lot.0),
        EntryKind::BonusExpiry { lot } => (4, lot.0),
        EntryKind::Reversal {
            payment: PaymentRef::TopUp(t),
        } => (5, t.0),
        EntryKind::Reversal {
            payment: PaymentRef::AutoTopUp(r),
        } => (6, r.0),
        other => {
            return Err(BillingError::Corrupt {
                reason: format!("a history entry this store cannot write: {other:?}"),
            });
        }
    })
}

/// Customer rows as columns.
#[derive(Default)]
struct CustomerColumns {
    customer: Vec<Uuid>,
    shard: Vec<i64>,
    state: Vec<Vec<u8>>,
    available: Vec<i64>,
    paid: Vec<i64>,
    bonus: Vec<i64>,
    uncollected: Vec<i64>,
    arrears: Vec<i64>,
    /// For an update: the row's version the batch read (the update is conditional on it).
    version: Vec<i64>,
}

/// Everything a batch writes, as one array per column.
#[derive(Default)]
struct Writes {
    new: CustomerColumns,
    updated: CustomerColumns,
    reply_spaces: Vec<i16>,
    reply_ids: Vec<Uuid>,
    reply_customers: Vec<Option<Uuid>>,
    replies: Vec<Vec<u8>>,
    reply_held: Vec<bool>,
    closed_ids: Vec<Uuid>,
    closed_amounts: Vec<i64>,
    closings: Vec<Vec<u8>>,
    entry_customers: Vec<Uuid>,
    entry_at: Vec<i64>,
    entry_transfers: Vec<Uuid>,
    entry_kinds: Vec<i16>,
    entry_refs: Vec<Uuid>,
    entry_credits: Vec<i64>,
    hour_customers: Vec<Uuid>,
    hour_at: Vec<i64>,
    hour_charges: Vec<i64>,
    hour_credits: Vec<i64>,
    request_ids: Vec<Uuid>,
    request_customers: Vec<Uuid>,
    request_at: Vec<i64>,
    request_bodies: Vec<Vec<u8>>,
    closed_requests: Vec<Uuid>,
}

/// Nanoseconds in an hour.
const HOUR_NS: u64 = 3_600_000_000_000;

impl Writes {
    /// The writes of a batch; `versions`: the version of every customer row it read.
    fn of(writes: &[ShardWrite], versions: &HashMap<CustomerId, i64>) -> Result<Writes, BillingError> {
        let mut w = Writes::default();
        let mut hours: BTreeMap<(Uuid, i64), (i64, i64)> = BTreeMap::new();
        let mut replies: Vec<&StoredReply> = Vec::new();
        let mut reply_customer: HashMap<(IdSpace, u128), Option<CustomerId>> = HashMap::new();
        let mut closed: Vec<&ClosedHold> = Vec::new();
        for write in writes {
            if let (Some(customer), Some((state, balance))) = (write.customer, &write.state) {
                let columns = if write.created { &mut w.new } else { &mut w.updated };
                columns.customer.push(uuid(customer.0));
                columns.shard.push(i64::try_from(write.no.0).unwrap_or(i64::MAX));
                columns.state.push(state.clone());
                columns.available.push(balance.available.get());
                columns.paid.push(balance.paid.get());
                columns.bonus.push(balance.bonus.get());
                columns.uncollected.push(balance.uncollected.get());
                columns.arrears.push(balance.arrears.get());
                if !write.created {
                    let version = versions.get(&customer).ok_or_else(|| BillingError::Corrupt {
                        reason: format!("customer {} is updated but its row was not read", customer.0),
                    })?;
                    columns.version.push(*version);
                }
            }
            for r in &write.settled.replies {
                // A hold's reply routes its capture: it names the hold's customer.
                let customer = match r.command {
                    Command::Hold { customer, .. } => Some(customer),
                    _ => write.customer,
                };
                reply_customer.insert((r.space, r.id), customer);
                replies.push(r);
            }
            closed.extend(&write.settled.closed_holds);
            if let Some(customer) = write.customer {
                let c = uuid(customer.0);
                for e in &write.settled.entries {
                    let (kind, reference) = entry_columns(&e.kind)?;
                    w.entry_customers.push(c);
                    w.entry_at.push(ns(e.at_ns)?);
                    w.entry_transfers.push(uuid(e.transfer.0));
                    w.entry_kinds.push(kind);
                    w.entry_refs.push(uuid(reference));
                    w.entry_credits.push(e.credits.get());
                    if let EntryKind::Charge { .. } = e.kind {
                        let hour = ns(e.at_ns - e.at_ns % HOUR_NS)?;
                        let slot = hours.entry((c, hour)).or_default();
                        slot.0 += 1;
                        slot.1 += -e.credits.get();
                    }
                }
            }
            for q in &write.settled.requests {
                w.request_ids.push(uuid(q.id.0));
                w.request_customers.push(uuid(q.customer.0));
                w.request_at.push(ns(q.at_ns)?);
                w.request_bodies.push(encode_request(q));
            }
            w.closed_requests
                .extend(write.settled.requests_closed.iter().map(|r| uuid(r.0)));
        }
        // Keys in one order in every transaction: two that write the same keys wait on
        // each other in that order, never in a cycle.
        replies.sort_unstable_by_key(|r| (r.space, r.id));
        for r in replies {
            w.reply_spaces.push(i16::from(r.space.code()));
            w.reply_ids.push(uuid(r.id));
            w.reply_customers.push(
                reply_customer
                    .get(&(r.space, r.id))
                    .copied()
                    .flatten()
                    .map(|c| uuid(c.0)),
            );
            w.replies.push(r.encode());
            w.reply_held.push(matches!(
                (r.command, r.reply),
                (Command::Hold { .. }, Ok(Receipt::Held { .. }))
            ));
        }
        closed.sort_unstable_by_key(|h| h.hold);
        for h in closed {
            w.closed_ids.push(uuid(h.hold.0));
            w.closed_amounts.push(h.amount.get());
            w.closings.push(h.encode());
        }
        for ((c, hour), (charges, credits)) in hours {
            w.hour_customers.push(c);
            w.hour_at.push(hour);
            w.hour_charges.push(charges);
            w.hour_credits.push(credits);
        }
        Ok(w)
    }
}

impl BillingStore for PgStore {
    fn submit(&self, commands: Vec<Command>) -> impl Future<Output = Result<Vec<Reply>, BillingError>> + Send {
        let inner = Arc::clone(&self.inner);
        async move {
            let max = inner.batch_max;
            if commands.len() > max {
                return Err(BillingError::BatchTooLarge {
                    commands: commands.len(),
                    max,
                });
            }
            if commands.is_empty() {
                return Ok(Vec::new());
            }
            if inner.closed.load(Ordering::SeqCst) {
                return Err(BillingError::Unavailable {
                    reason: "the PostgreSQL store was closed".to_owned(),
                });
            }
            let (answer, wait) = oneshot::channel();
            let lane = &inner.lanes[inner.lane_of(&commands)];
            lane.queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_back(Job { commands, answer });
            lane.wake.notify_one();
            wait.await.map_err(|_| BillingError::Unavailable {
                reason: "the PostgreSQL store stopped before answering".to_owned(),
            })?
        }
    }

    fn balance(&self, customer: CustomerId) -> impl Future<Output = Result<Balance, BillingError>> + Send {
        let inner = Arc::clone(&self.inner);
        let runtime = self.inner.runtime.clone();
        async move { spawned(&runtime, async move { inner.balance(customer).await }).await }
    }

    fn history(
        &self,
        customer: CustomerId,
        query: HistoryQuery,
    ) -> impl Future<Output = Result<HistoryPage, BillingError>> + Send {
        let inner = Arc::clone(&self.inner);
        let runtime = self.inner.runtime.clone();
        async move { spawned(&runtime, async move { inner.history(customer, query).await }).await }
    }

    fn outstanding_requests(&self) -> impl Future<Output = Result<Vec<TopUpRequest>, BillingError>> + Send {
        let inner = Arc::clone(&self.inner);
        let runtime = self.inner.runtime.clone();
        async move { spawned(&runtime, async move { inner.outstanding().await }).await }
    }

    fn auto_top_up(
        &self,
        customer: CustomerId,
    ) -> impl Future<Output = Result<paygo_billing::AutoTopUpStatus, BillingError>> + Send {
        let inner = Arc::clone(&self.inner);
        let runtime = self.inner.runtime.clone();
        async move { spawned(&runtime, async move { inner.auto_top_up(customer).await }).await }
    }
}

use std::future::Future;

/// The statements, with the schema spliced in (checked: a plain identifier).
struct Sql {
    route: String,
    customers: String,
    /// The same, the rows locked in ascending order: for a batch run again after a conflict,
    /// so that it waits for the batches it races instead of losing to them again.
    customers_locked: String,
    fresh: String,
    replies: String,
    now: String,
    insert_customers: String,
    update_customers: String,
    insert_replies: String,
    close_holds: String,
    insert_entries: String,
    upsert_hourly: String,
    insert_requests: String,
    close_requests: String,
    shard_and_now: String,
    exists: String,
    history: String,
    outstanding: String,
    charges_by_hour: String,
    all_shards: String,
    prune_replies: String,
    prune_requests: String,
    invoice_key: String,
    invoice_series_new: String,
    invoice_series_lock: String,
    invoice_insert: String,
    invoice_series_raise: String,
}

const NOW_US: &str = "(extract(epoch FROM clock_timestamp()) * 1000000)::int8";

impl Sql {
    fn new(s: &str) -> Sql {
        Sql {
            route: format!(
                "SELECT 2::int2, id, customer FROM {s}.replies
                  WHERE space = 2 AND id = ANY($1::uuid[]) AND customer IS NOT NULL
                 UNION ALL
                 SELECT 4::int2, request, customer FROM {s}.requests WHERE request = ANY($2::uuid[])"
            ),
            customers: format!("SELECT customer, state, version FROM {s}.customers WHERE customer = ANY($1::uuid[])"),
            customers_locked: format!(
                "SELECT customer, state, version FROM {s}.customers WHERE customer = ANY($1::uuid[])
                 ORDER BY customer FOR UPDATE"
            ),
            fresh: format!("SELECT nextval('{s}.shard_no') FROM generate_series(1, $1::int4)"),
            replies: format!(
                "SELECT r.space, r.id, r.customer, r.reply, r.hold_amount, r.closing
                   FROM {s}.replies r
                   JOIN unnest($1::int2[], $2::uuid[]) AS k(space, id) ON r.space = k.space AND r.id = k.id"
            ),
            now: format!("SELECT {NOW_US}"),
            insert_customers: format!(
                "INSERT INTO {s}.customers
                   (customer, shard, state, available, paid, bonus, uncollected, arrears, updated_ns)
                 SELECT u.*, $9::int8 FROM unnest($1::uuid[], $2::int8[], $3::bytea[], $4::int8[], $5::int8[],
                   $6::int8[], $7::int8[], $8::int8[])
                   AS u(customer, shard, state, available, paid, bonus, uncollected, arrears)"
            ),
            update_customers: format!(
                "UPDATE {s}.customers c SET state = u.state, available = u.available, paid = u.paid,
                   bonus = u.bonus, uncollected = u.uncollected, arrears = u.arrears, updated_ns = $9::int8,
                   version = c.version + 1
                 FROM unnest($1::uuid[], $2::bytea[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[],
                   $8::int8[]) AS u(customer, state, available, paid, bonus, uncollected, arrears, version)
                 WHERE c.customer = u.customer AND c.version = u.version"
            ),
            insert_replies: format!(
                "INSERT INTO {s}.replies (space, id, customer, reply, held, at_ns)
                 SELECT u.*, $6::int8 FROM unnest($1::int2[], $2::uuid[], $3::uuid[], $4::bytea[], $5::bool[])
                   AS u(space, id, customer, reply, held)"
            ),
            close_holds: format!(
                "UPDATE {s}.replies r SET hold_amount = u.amount, closing = u.closing, closed_ns = $4::int8
                 FROM unnest($1::uuid[], $2::int8[], $3::bytea[]) AS u(id, amount, closing)
                 WHERE r.space = 2 AND r.id = u.id AND r.closing IS NULL"
            ),
            insert_entries: format!(
                "INSERT INTO {s}.entries (customer, at_ns, transfer, kind, ref, credits)
                 SELECT * FROM unnest($1::uuid[], $2::int8[], $3::uuid[], $4::int2[], $5::uuid[], $6::int8[])"
            ),
            upsert_hourly: format!(
                "INSERT INTO {s}.charges_hourly (customer, hour_ns, charges, credits)
                 SELECT * FROM unnest($1::uuid[], $2::int8[], $3::int8[], $4::int8[])
                 ON CONFLICT (customer, hour_ns) DO UPDATE
                   SET charges = {s}.charges_hourly.charges + excluded.charges,
                       credits = {s}.charges_hourly.credits + excluded.credits"
            ),
            insert_requests: format!(
                "INSERT INTO {s}.requests (request, customer, at_ns, body, outstanding)
                 SELECT u.*, true FROM unnest($1::uuid[], $2::uuid[], $3::int8[], $4::bytea[])
                   AS u(request, customer, at_ns, body)"
            ),
            close_requests: format!("UPDATE {s}.requests SET outstanding = false WHERE request = ANY($1::uuid[])"),
            shard_and_now: format!("SELECT state, {NOW_US} FROM {s}.customers WHERE customer = $1"),
            exists: format!("SELECT 1 FROM {s}.customers WHERE customer = $1"),
            history: format!(
                "SELECT at_ns, customer, transfer, kind, ref, credits FROM {s}.entries
                 WHERE customer = $1 AND at_ns < $2 ORDER BY at_ns DESC LIMIT $3"
            ),
            outstanding: format!("SELECT body FROM {s}.requests WHERE outstanding ORDER BY request"),
            charges_by_hour: format!(
                "SELECT hour_ns, charges, credits FROM {s}.charges_hourly
                 WHERE customer = $1 AND hour_ns >= $2 AND hour_ns < $3 ORDER BY hour_ns"
            ),
            all_shards: format!("SELECT state FROM {s}.customers"),
            // A hold's row goes only once the hold is closed; every other reply is final.
            // Every id space named, so that the primary key's index serves the id range.
            invoice_key: format!("SELECT 1 FROM {s}.invoice_records WHERE key = $1"),
            invoice_series_new: format!(
                "INSERT INTO {s}.invoice_series (series, last) VALUES ($1, 0) ON CONFLICT (series) DO NOTHING"
            ),
            invoice_series_lock: format!("SELECT last FROM {s}.invoice_series WHERE series = $1 FOR UPDATE"),
            invoice_insert: format!(
                "INSERT INTO {s}.invoice_records (series, number, key, record) VALUES ($1, $2, $3, $4)"
            ),
            invoice_series_raise: format!("UPDATE {s}.invoice_series SET last = $2 WHERE series = $1"),
            prune_replies: format!(
                "DELETE FROM {s}.replies WHERE ctid IN (
                   SELECT ctid FROM {s}.replies
                   WHERE space = ANY('{{1,2,3,4,5}}'::int2[]) AND id < $1
                     AND (NOT held OR closing IS NOT NULL) LIMIT $2)"
            ),
            prune_requests: format!(
                "DELETE FROM {s}.requests WHERE ctid IN (
                   SELECT ctid FROM {s}.requests WHERE request < $1 AND NOT outstanding LIMIT $2)"
            ),
        }
    }
}
