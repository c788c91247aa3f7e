//! The usage log: one record per charged call (its request id, model, usage, credits and
//! USD), for `GET /v1/billing/usage` and `GET /v1/generation/{request_id}`.
//!
//! Records are appended to `usage.jsonl` in the data directory by one writer thread that
//! takes every waiting record into one write and one sync (group commit, as the billing
//! journal does), and a call's response is sent only once its record is synced. The
//! record follows the capture it describes: the ledger is the truth of what was charged,
//! and the log says what for. `docs/http.md` states what a crash between the two leaves.
//!
//! With the `postgres` feature, the log can instead be shared by every replica
//! (`UsageLog::shared`): each record is a row written once by request id, with the
//! hourly roll-up of its account and model updated in the same statement
//! (`paygo_postgres::PgRecords`); usage pages read the roll-ups for whole hours and the
//! records only for the partial hours at a range's ends. The records of a shared log are
//! kept for a retention period ([`UsageLog::prune`]); the roll-ups for good, so usage of an
//! older range is still answered, by the hour.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, PoisonError, RwLock};

use paygo_billing::CustomerId;
use paygo_credits::{Credits, Money};
use paygo_pricing::{ServiceTier, Usage};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::accounts::KeyId;
use crate::error::HttpError;
use crate::jsonl::open_lines;
use crate::sizing::Endpoint;

/// How a call's charge was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Settlement {
    /// The upstream's usage, quoted and captured.
    Usage,
    /// The upstream never said what it used: the gateway's settle-without-usage rule.
    WithoutUsage,
    /// The upstream said what it used in a form that cannot be read (a stream's final
    /// usage whose counters contradict each other, say): the request's bound captured,
    /// the prompt bound and the output limit the hold was sized on, so that the output is
    /// never free. The record's usage is that bound.
    Bound,
    /// The ledger holds the charge but its record was lost (a crash between the capture
    /// and the record's sync): rebuilt from the ledger by [`crate::Proxy::reconcile`],
    /// with the credits and the time of the charge, and no model or usage.
    Recovered,
}

/// One charged call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The request id (`x-request-id`).
    pub request_id: String,
    /// The account charged.
    pub account: CustomerId,
    /// The API key the call was made with (its id; `None` for a [`Settlement::Recovered`]
    /// record and for records written before keys were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<KeyId>,
    /// The model (its canonical id).
    pub model: String,
    /// The endpoint called (`None` for a [`Settlement::Recovered`] record).
    pub endpoint: Option<Endpoint>,
    /// The service tier it was priced at.
    #[serde(default = "standard_tier")]
    pub service_tier: ServiceTier,
    /// When the call was admitted, in nanoseconds since the Unix epoch.
    pub at_ns: u64,
    /// The usage charged (for [`Settlement::WithoutUsage`], what the request determined).
    pub usage: Usage,
    /// Credits charged.
    pub credits: Credits,
    /// Their value in USD (exact).
    pub usd: Money,
    /// Whether the response was streamed.
    pub streamed: bool,
    /// How the charge was settled.
    pub settlement: Settlement,
}

/// The standard tier, for records written before the tier was recorded.
fn standard_tier() -> ServiceTier {
    ServiceTier::STANDARD
}

/// A bucket of `GET /v1/billing/usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageBucket {
    /// The bucket's start, in nanoseconds since the Unix epoch.
    pub start_ns: u64,
    /// The model, when grouped by model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The API key, when grouped by key ([`UsageLog::usage_by_key`]; `None` there for
    /// calls whose key was not recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<KeyId>,
    /// Calls charged.
    pub calls: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Credits charged.
    pub credits: Credits,
    /// Their value in USD (the sum of the calls' exact values).
    pub usd: Money,
}

type Pending = (String, oneshot::Sender<Result<(), String>>);

#[derive(Debug, Default)]
pub(crate) struct Index {
    by_request: HashMap<String, Arc<CallRecord>>,
    /// Each account's records in the order they were written.
    by_account: HashMap<CustomerId, Vec<Arc<CallRecord>>>,
}

impl Index {
    fn insert(&mut self, record: CallRecord) {
        let record = Arc::new(record);
        if self
            .by_request
            .insert(record.request_id.clone(), Arc::clone(&record))
            .is_none()
        {
            self.by_account.entry(record.account).or_default().push(record);
        }
    }
}

/// The usage log (see the module docs). `Send + Sync`.
#[derive(Debug)]
pub struct UsageLog {
    index: RwLock<Index>,
    writer: Option<mpsc::Sender<Pending>>,
    syncs: Arc<AtomicU64>,
    /// Set by the writer when a write or a sync failed: it has failed closed.
    failed: Arc<AtomicBool>,
    /// The shared records, when shared (the index then stays empty).
    #[cfg(feature = "postgres")]
    shared: Option<paygo_postgres::PgRecords>,
    /// Records this process appended to a shared log.
    #[cfg(feature = "postgres")]
    appended: AtomicU64,
}

/// Nanoseconds in an hour.
#[cfg(feature = "postgres")]
const HOUR_NS: u64 = 3_600_000_000_000;

#[cfg(feature = "postgres")]
fn shared_error(e: impl std::fmt::Display) -> HttpError {
    HttpError::Storage {
        what: format!("the shared usage log: {e}"),
    }
}

impl UsageLog {
    /// A log in memory.
    pub fn in_memory() -> UsageLog {
        UsageLog {
            index: RwLock::new(Index::default()),
            writer: None,
            syncs: Arc::new(AtomicU64::new(0)),
            failed: Arc::new(AtomicBool::new(false)),
            #[cfg(feature = "postgres")]
            shared: None,
            #[cfg(feature = "postgres")]
            appended: AtomicU64::new(0),
        }
    }

    /// The log every replica on `records`' schema shares (see the module docs).
    #[cfg(feature = "postgres")]
    pub fn shared(records: paygo_postgres::PgRecords) -> UsageLog {
        UsageLog {
            shared: Some(records),
            ..UsageLog::in_memory()
        }
    }

    /// Opens (or creates) `usage.jsonl` in `dir` and starts its writer thread.
    ///
    /// # Errors
    ///
    /// [`HttpError::Storage`] when the file cannot be read or written or holds a line that
    /// is not a call record.
    pub fn open(dir: impl AsRef<Path>) -> Result<UsageLog, HttpError> {
        let path = dir.as_ref().join("usage.jsonl");
        let mut index = Index::default();
        let file = open_lines(&path, |record: CallRecord| {
            index.insert(record);
            Ok(())
        })?;
        UsageLog::with_file(file, index).map_err(|e| HttpError::Storage {
            what: format!("{}: {e}", path.display()),
        })
    }

    /// The log on `file` (open for appending), holding `index`: its writer thread started.
    pub(crate) fn with_file(file: File, index: Index) -> std::io::Result<UsageLog> {
        let (tx, rx) = mpsc::channel::<Pending>();
        let syncs = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicBool::new(false));
        let (counter, flag) = (Arc::clone(&syncs), Arc::clone(&failed));
        std::thread::Builder::new()
            .name("paygo-usage-log".into())
            .spawn(move || write_loop(file, &rx, &counter, &flag))?;
        Ok(UsageLog {
            index: RwLock::new(index),
            writer: Some(tx),
            syncs,
            failed,
            #[cfg(feature = "postgres")]
            shared: None,
            #[cfg(feature = "postgres")]
            appended: AtomicU64::new(0),
        })
    }

    /// Whether the log's file has failed closed: a write or a sync failed, and nothing more
    /// is appended until the log is opened again (a restart; `Proxy::reconcile` then
    /// rebuilds the records of calls charged since). The proxy refuses metered calls
    /// meanwhile (503, before the upstream and the charge). A log in memory or shared
    /// never has (a shared log's failures are the database's, and pass).
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Appends `record` and returns once it is synced (at once for a log in memory). A
    /// record with a request id already logged changes nothing.
    ///
    /// # Errors
    ///
    /// [`HttpError::Storage`] when the write or the sync failed.
    pub async fn append(&self, record: CallRecord) -> Result<(), HttpError> {
        #[cfg(feature = "postgres")]
        if let Some(shared) = &self.shared {
            let body = serde_json::to_string(&record).map_err(shared_error)?;
            let row = paygo_postgres::UsageRow {
                key: &record.request_id,
                account: record.account.0,
                at_ns: record.at_ns,
                model: &record.model,
                prompt_tokens: record.usage.prompt_tokens,
                completion_tokens: record.usage.completion_tokens,
                credits: record.credits.get(),
                usd: record.usd.amount(),
                body: &body,
            };
            if shared.put_usage(&row).await.map_err(shared_error)? {
                self.appended.fetch_add(1, Ordering::Relaxed);
            }
            return Ok(());
        }
        let known = self
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .by_request
            .contains_key(&record.request_id);
        if known {
            return Ok(());
        }
        if let Some(writer) = &self.writer {
            let mut line = serde_json::to_string(&record).map_err(|e| HttpError::Storage { what: e.to_string() })?;
            line.push('\n');
            let (tx, rx) = oneshot::channel();
            writer.send((line, tx)).map_err(|_| HttpError::Storage {
                what: "the usage log's writer has stopped".into(),
            })?;
            rx.await
                .map_err(|_| HttpError::Storage {
                    what: "the usage log's writer has stopped".into(),
                })?
                .map_err(|what| HttpError::Storage { what })?;
        }
        self.index
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(record);
        Ok(())
    }

    /// The record of a request id.
    ///
    /// # Errors
    ///
    /// [`HttpError::Storage`] when a shared log cannot be read.
    // Async for the shared store (the `postgres` feature); without it the work is in memory.
    #[cfg_attr(not(feature = "postgres"), allow(clippy::unused_async))]
    pub async fn generation(&self, request_id: &str) -> Result<Option<Arc<CallRecord>>, HttpError> {
        #[cfg(feature = "postgres")]
        if let Some(shared) = &self.shared {
            return match shared.usage_record(request_id).await.map_err(shared_error)? {
                Some(body) => Ok(Some(Arc::new(serde_json::from_str(&body).map_err(shared_error)?))),
                None => Ok(None),
            };
        }
        Ok(self
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .by_request
            .get(request_id)
            .cloned())
    }

    /// An account's usage admitted in `from_ns .. to_ns`, in buckets of `bucket_ns`
    /// (aligned to the Unix epoch), optionally split by model; buckets in time order
    /// (then by model).
    ///
    /// # Errors
    ///
    /// [`HttpError::InvalidField`] for an empty range or a zero bucket (or, for a shared
    /// log, a bucket that is not a whole number of hours, or a bound that is not a whole
    /// hour before the log's horizon: see [`UsageLog::prune`]);
    /// [`HttpError::Credits`] if a sum leaves the range of credits; [`HttpError::Storage`]
    /// when a shared log cannot be read.
    // Async for the shared store (the `postgres` feature); without it the work is in memory.
    #[cfg_attr(not(feature = "postgres"), allow(clippy::unused_async))]
    pub async fn usage(
        &self,
        account: CustomerId,
        from_ns: u64,
        to_ns: u64,
        bucket_ns: u64,
        by_model: bool,
    ) -> Result<Vec<UsageBucket>, HttpError> {
        check_range(from_ns, to_ns, bucket_ns)?;
        let mut buckets = Buckets::new(bucket_ns, by_model);
        #[cfg(feature = "postgres")]
        if let Some(shared) = &self.shared {
            if !bucket_ns.is_multiple_of(HOUR_NS) {
                return Err(HttpError::InvalidField {
                    field: "bucket",
                    expected: "a whole number of hours",
                });
            }
            // Whole hours from the roll-ups; the partial hours at the ends from the records.
            let first_hour = from_ns.div_ceil(HOUR_NS).saturating_mul(HOUR_NS);
            let end_hour = to_ns - to_ns % HOUR_NS;
            if first_hour < end_hour {
                for hour in shared
                    .usage_hours(account.0, first_hour, end_hour)
                    .await
                    .map_err(shared_error)?
                {
                    buckets.add(
                        hour.hour_ns,
                        &hour.model,
                        Sums {
                            calls: hour.calls,
                            prompt_tokens: hour.prompt_tokens,
                            completion_tokens: hour.completion_tokens,
                            credits: Credits::new(hour.credits),
                            usd: hour.usd,
                        },
                    )?;
                }
            }
            let edges = if first_hour < end_hour {
                vec![(from_ns, first_hour), (end_hour, to_ns)]
            } else {
                vec![(from_ns, to_ns)]
            };
            for (from, to) in edges {
                if from >= to {
                    continue;
                }
                let bodies = match shared.usage_records(account.0, from, to).await {
                    Ok(bodies) => bodies,
                    Err(paygo_postgres::PostgresError::Pruned { .. }) => {
                        return Err(HttpError::InvalidField {
                            field: "from",
                            expected: "a whole hour (usage older than the usage retention is kept by the hour)",
                        });
                    }
                    Err(e) => return Err(shared_error(e)),
                };
                for body in bodies {
                    let record: CallRecord = serde_json::from_str(&body).map_err(shared_error)?;
                    buckets.add_record(&record)?;
                }
            }
            return Ok(buckets.done());
        }
        self.add_in_memory(account, from_ns, to_ns, &mut buckets)?;
        Ok(buckets.done())
    }

    /// An account's usage admitted in `from_ns .. to_ns`, in buckets of `bucket_ns`, split by
    /// the API key each call was made with (a bucket without a key for calls whose key was
    /// not recorded: rebuilt records, and records older than keys in records). Read from
    /// the calls' records, not the roll-ups: with a shared log, only for the usage
    /// retention.
    ///
    /// # Errors
    ///
    /// [`HttpError::InvalidField`] for an empty range or a zero bucket, or (shared log) a
    /// range that starts before the log's horizon; [`HttpError::Credits`];
    /// [`HttpError::Storage`] when a shared log cannot be read.
    // Async for the shared store (the `postgres` feature); without it the work is in memory.
    #[cfg_attr(not(feature = "postgres"), allow(clippy::unused_async))]
    pub async fn usage_by_key(
        &self,
        account: CustomerId,
        from_ns: u64,
        to_ns: u64,
        bucket_ns: u64,
    ) -> Result<Vec<UsageBucket>, HttpError> {
        check_range(from_ns, to_ns, bucket_ns)?;
        let mut buckets = Buckets::by_key(bucket_ns);
        #[cfg(feature = "postgres")]
        if let Some(shared) = &self.shared {
            let bodies = match shared.usage_records(account.0, from_ns, to_ns).await {
                Ok(bodies) => bodies,
                Err(paygo_postgres::PostgresError::Pruned { .. }) => {
                    return Err(HttpError::InvalidField {
                        field: "from",
                        expected: "a time within the usage retention (usage by key is kept as long as each call's record)",
                    });
                }
                Err(e) => return Err(shared_error(e)),
            };
            for body in bodies {
                let record: CallRecord = serde_json::from_str(&body).map_err(shared_error)?;
                buckets.add_record(&record)?;
            }
            return Ok(buckets.done());
        }
        self.add_in_memory(account, from_ns, to_ns, &mut buckets)?;
        Ok(buckets.done())
    }

    /// Whether other replicas write to this log too (`UsageLog::shared`).
    pub fn is_shared(&self) -> bool {
        #[cfg(feature = "postgres")]
        if self.shared.is_some() {
            return true;
        }
        false
    }

    /// How many records the log holds (for a shared log: how many this process added).
    pub fn len(&self) -> usize {
        #[cfg(feature = "postgres")]
        if self.shared.is_some() {
            return usize::try_from(self.appended.load(Ordering::Relaxed)).unwrap_or(usize::MAX);
        }
        self.index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .by_request
            .len()
    }

    /// Whether the log holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many writes (each one sync) the writer made: fewer than the records appended
    /// when concurrent calls shared a sync (0 for a log in memory).
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Deletes the records of calls admitted before `before_ns` from a shared log, and
    /// returns how many (every replica may run it, at any time). The hourly roll-ups stay:
    /// usage of those hours is still answered, by the hour; what goes is each call's own
    /// record (`GET /v1/generation/{request_id}` answers 404 for it) and the detail of
    /// partial hours (a usage range that starts or ends inside an hour before the horizon
    /// is refused, never answered short). The horizon only rises; a record older than it is
    /// never written again (its call is in the roll-up already).
    ///
    /// A log that is not shared keeps every record (its file is the record) and returns 0.
    ///
    /// # Errors
    ///
    /// [`HttpError::Storage`] when a shared log cannot be written.
    // Async for the shared store (the `postgres` feature); without it there is nothing to do.
    #[cfg_attr(not(feature = "postgres"), allow(clippy::unused_async))]
    pub async fn prune(&self, before_ns: u64) -> Result<u64, HttpError> {
        #[cfg(feature = "postgres")]
        if let Some(shared) = &self.shared {
            return shared.prune_usage(before_ns).await.map_err(shared_error);
        }
        let _ = before_ns;
        Ok(0)
    }

    /// The log's horizon: calls admitted before it may have no record any more
    /// ([`UsageLog::prune`]); 0 for a log that is not shared.
    ///
    /// # Errors
    ///
    /// [`HttpError::Storage`] when a shared log cannot be read.
    // Async for the shared store (the `postgres` feature); without it there is nothing to read.
    #[cfg_attr(not(feature = "postgres"), allow(clippy::unused_async))]
    pub async fn horizon_ns(&self) -> Result<u64, HttpError> {
        #[cfg(feature = "postgres")]
        if let Some(shared) = &self.shared {
            return shared.usage_horizon().await.map_err(shared_error);
        }
        Ok(0)
    }

    /// Whether a record has this request id.
    ///
    /// # Errors
    ///
    /// [`HttpError::Storage`] when a shared log cannot be read.
    // Async for the shared store (the `postgres` feature); without it the work is in memory.
    #[cfg_attr(not(feature = "postgres"), allow(clippy::unused_async))]
    pub async fn contains(&self, request_id: &str) -> Result<bool, HttpError> {
        #[cfg(feature = "postgres")]
        if self.shared.is_some() {
            return Ok(self.generation(request_id).await?.is_some());
        }
        Ok(self
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .by_request
            .contains_key(request_id))
    }

    /// Every record of `account`, in the order written (for a shared log: by time, those
    /// from its horizon on).
    ///
    /// # Errors
    ///
    /// [`HttpError::Storage`] when a shared log cannot be read.
    // Async for the shared store (the `postgres` feature); without it the work is in memory.
    #[cfg_attr(not(feature = "postgres"), allow(clippy::unused_async))]
    pub async fn records(&self, account: CustomerId) -> Result<Vec<Arc<CallRecord>>, HttpError> {
        #[cfg(feature = "postgres")]
        if let Some(shared) = &self.shared {
            let horizon = shared.usage_horizon().await.map_err(shared_error)?;
            let bodies = shared
                .usage_records(account.0, horizon, u64::MAX)
                .await
                .map_err(shared_error)?;
            return bodies
                .iter()
                .map(|b| serde_json::from_str(b).map(Arc::new).map_err(shared_error))
                .collect();
        }
        Ok(self
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .by_account
            .get(&account)
            .cloned()
            .unwrap_or_default())
    }
}

/// A usage query's range and bucket, checked.
fn check_range(from_ns: u64, to_ns: u64, bucket_ns: u64) -> Result<(), HttpError> {
    if from_ns >= to_ns {
        return Err(HttpError::InvalidField {
            field: "from",
            expected: "a time before `to`",
        });
    }
    if bucket_ns == 0 {
        return Err(HttpError::InvalidField {
            field: "bucket",
            expected: "1h or 1d",
        });
    }
    Ok(())
}

impl UsageLog {
    /// Adds the in-memory records of `account` admitted in `from_ns .. to_ns` to `buckets`.
    fn add_in_memory(
        &self,
        account: CustomerId,
        from_ns: u64,
        to_ns: u64,
        buckets: &mut Buckets,
    ) -> Result<(), HttpError> {
        let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
        for record in index.by_account.get(&account).map(Vec::as_slice).unwrap_or_default() {
            if record.at_ns >= from_ns && record.at_ns < to_ns {
                buckets.add_record(record)?;
            }
        }
        Ok(())
    }
}

/// What a bucket adds up.
#[derive(Clone, Copy)]
struct Sums {
    calls: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    credits: Credits,
    usd: Decimal,
}

impl Sums {
    fn of(record: &CallRecord) -> Sums {
        Sums {
            calls: 1,
            prompt_tokens: record.usage.prompt_tokens,
            completion_tokens: record.usage.completion_tokens,
            credits: record.credits,
            usd: record.usd.amount(),
        }
    }
}

/// What buckets are split by besides time.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Split {
    Nothing,
    Model,
    Key,
}

/// Buckets of [`UsageLog::usage`] being added up.
struct Buckets {
    bucket_ns: u64,
    split: Split,
    sums: std::collections::BTreeMap<(u64, Option<String>, Option<KeyId>), UsageBucket>,
}

impl Buckets {
    fn new(bucket_ns: u64, by_model: bool) -> Buckets {
        Buckets {
            bucket_ns,
            split: if by_model { Split::Model } else { Split::Nothing },
            sums: std::collections::BTreeMap::new(),
        }
    }

    fn by_key(bucket_ns: u64) -> Buckets {
        Buckets {
            bucket_ns,
            split: Split::Key,
            sums: std::collections::BTreeMap::new(),
        }
    }

    fn add_record(&mut self, record: &CallRecord) -> Result<(), HttpError> {
        self.add_keyed(record.at_ns, &record.model, record.key_id.as_ref(), Sums::of(record))
    }

    // The hourly roll-ups' sums (the shared log's, under the `postgres` feature).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    fn add(&mut self, at_ns: u64, model: &str, sums: Sums) -> Result<(), HttpError> {
        self.add_keyed(at_ns, model, None, sums)
    }

    fn add_keyed(&mut self, at_ns: u64, model: &str, key: Option<&KeyId>, sums: Sums) -> Result<(), HttpError> {
        let start_ns = at_ns - at_ns % self.bucket_ns;
        let model = (self.split == Split::Model).then(|| model.to_owned());
        let key_id = if self.split == Split::Key { key.cloned() } else { None };
        let bucket = self
            .sums
            .entry((start_ns, model.clone(), key_id.clone()))
            .or_insert_with(|| UsageBucket {
                start_ns,
                model,
                key_id,
                calls: 0,
                prompt_tokens: 0,
                completion_tokens: 0,
                credits: Credits::ZERO,
                usd: Money::usd(Decimal::ZERO),
            });
        bucket.calls = bucket.calls.saturating_add(sums.calls);
        bucket.prompt_tokens = bucket.prompt_tokens.saturating_add(sums.prompt_tokens);
        bucket.completion_tokens = bucket.completion_tokens.saturating_add(sums.completion_tokens);
        bucket.credits = bucket.credits.try_add(sums.credits)?;
        bucket.usd = Money::usd(
            bucket
                .usd
                .amount()
                .checked_add(sums.usd)
                .ok_or(HttpError::InvalidField {
                    field: "usd",
                    expected: "a sum within range",
                })?,
        );
        Ok(())
    }

    fn done(self) -> Vec<UsageBucket> {
        self.sums.into_values().collect()
    }
}

/// The writer thread: every waiting line in one write and one sync.
fn write_loop(mut file: File, rx: &mpsc::Receiver<Pending>, syncs: &AtomicU64, failed: &AtomicBool) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let mut bytes = Vec::with_capacity(batch.iter().map(|(l, _)| l.len()).sum());
        for (line, _) in &batch {
            bytes.extend_from_slice(line.as_bytes());
        }
        let result = file
            .write_all(&bytes)
            .and_then(|()| file.sync_data())
            .map_err(|e| format!("usage.jsonl: {e}"));
        syncs.fetch_add(1, Ordering::Relaxed);
        if result.is_err() {
            // Before the replies: a call told of the failure finds the log failed.
            failed.store(true, Ordering::Relaxed);
        }
        for (_, reply) in batch {
            let _ = reply.send(result.clone());
        }
        if result.is_err() {
            // Fail closed: after a failed write or sync nothing more is acknowledged.
            while let Ok((_, reply)) = rx.recv() {
                let _ = reply.send(Err("usage.jsonl: an earlier write failed; reopen the log".into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

    use super::*;

    fn record(n: u64) -> CallRecord {
        CallRecord {
            request_id: format!("req_{n}"),
            account: CustomerId(1),
            key_id: None,
            model: "gpt-4o".to_owned(),
            endpoint: None,
            service_tier: paygo_pricing::ServiceTier::STANDARD,
            at_ns: n,
            usage: Usage::default(),
            credits: Credits::new(2),
            usd: Money::usd(rust_decimal::Decimal::new(1, 6)),
            streamed: false,
            settlement: Settlement::Usage,
        }
    }

    /// A write that fails (a file the writer cannot write: read-only here, a full disk in
    /// life) fails the log closed: that append and every later one fail, and
    /// `has_failed` says so (the proxy then refuses calls before charging them).
    #[tokio::test]
    async fn a_failed_write_fails_the_log_closed() {
        let dir = paygo_testkit::store::TempDir::new("usage-fails-closed");
        let path = dir.0.join("usage.jsonl");
        std::fs::create_dir_all(&dir.0).unwrap();
        std::fs::write(&path, b"").unwrap();
        let log = UsageLog::with_file(File::open(&path).unwrap(), Index::default()).unwrap();
        assert!(!log.has_failed());
        assert!(matches!(log.append(record(1)).await, Err(HttpError::Storage { .. })));
        assert!(log.has_failed());
        assert!(matches!(log.append(record(2)).await, Err(HttpError::Storage { .. })));
        assert!(log.is_empty());
        let healthy = UsageLog::open(&dir.0).unwrap();
        healthy.append(record(3)).await.unwrap();
        assert!(!healthy.has_failed());
        assert!(!UsageLog::in_memory().has_failed());
    }
}
