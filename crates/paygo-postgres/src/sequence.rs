//! The invoice numbering on PostgreSQL: [`PgSequenceStore`], a [`SequenceStore`] that every
//! gateway replica shares.

use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use paygo_invoice::{
    DocumentId, InvoiceError, RECORD_MAX_BYTES, SEQUENCE_MAX, SequenceRecord, SequenceStore, SeriesName,
};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Row, Statement};

use crate::error::{PostgresError, describe};
use crate::schema;

/// How long opening waits for a connection when the URL does not say.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a commit whose outcome is unknown waits for the lost transaction to end.
const RESOLVE_LOCK_TIMEOUT: &str = "10s";
/// Records read from the database at a time by [`SequenceStore::for_each_record`].
const RECORDS_CHUNK: i32 = 256;
/// The connection's `application_name` when the URL does not name one.
pub(crate) const APPLICATION_NAME: &str = "paygo-invoice";

/// Gapless invoice numbers in PostgreSQL, shared by every replica that opens the same
/// schema: the [`SequenceStore`] of [`paygo_invoice::Invoicing`] for a service that runs
/// several gateway processes on one database.
///
/// The tables are `invoice_series` (the last number of every series) and
/// `invoice_records` (every number with its record, primary key `(series, number)`).
/// [`SequenceStore::commit`] is one transaction: it locks the series' row
/// (`SELECT ... FOR UPDATE`, creating the row on a series' first number), takes
/// `last + 1`, calls `seal` with it, inserts the record, raises `last` and commits. The row
/// lock serializes the commits of one series across every process (the commits of other
/// series do not wait); a `seal` that fails (or panics), or a write that fails, rolls the
/// transaction back, so its number is offered again. `commit` returns `Ok(n)` only once
/// the transaction committed (durable as the server's `synchronous_commit` makes it).
///
/// A document id (`key`) is recorded once in the whole schema (a unique column): a commit
/// with an id already recorded, from this process or another, fails with
/// [`InvoiceError::AlreadyIssued`] before `seal` is called (or, when another replica
/// records the id at the same moment, when the record is written), and consumes nothing.
/// [`paygo_invoice::Invoicing`] refuses an id twice before it commits, but only among the
/// documents its own process knows; the column makes the refusal hold across replicas
/// (the memory and file stores, which one process owns, do not check ids).
///
/// # Blocking
///
/// The trait is synchronous: every method **blocks the calling thread** until the
/// database answered (`commit` for five round trips, the server's commit included, and
/// for as long as another process holds the series' lock). The store owns one thread with
/// a current-thread tokio runtime and one connection, which serves the calls one at a
/// time; a call sends its request to that thread and waits for the answer (`seal` and the
/// `visit` of [`SequenceStore::for_each_record`] run on the caller's thread). So it may be
/// called from any thread, inside a tokio runtime or not, but from an async task it holds
/// a worker thread of that runtime while it waits: call it from
/// `tokio::task::spawn_blocking` or `block_in_place` where that matters.
///
/// # Failures
///
/// A broken connection is opened again on the next call. A call while the database
/// cannot be reached fails with [`InvoiceError::Store`] after the connect timeout (the
/// URL's `connect_timeout`, 5 seconds when it has none); nothing is consumed.
///
/// If the connection is lost while the transaction commits (or `COMMIT` fails at all),
/// whether it committed is unknown to the client. The store then reconnects and looks: it locks the series' row,
/// which waits for the lost transaction to end (up to 10 seconds), and checks whether the
/// record is there. Found, the commit returns `Ok(n)`; not found, nothing was consumed and
/// it fails with [`InvoiceError::Store`]. If it cannot tell (the database is still
/// unreachable, or the lock wait timed out), it fails with [`InvoiceError::Store`] whose
/// message says that **the outcome is unknown**: the record may exist. Then the document
/// must not be treated as not issued: look for its id in [`SequenceStore::records`] (or
/// reopen the [`paygo_invoice::Invoicing`], which loads it) before issuing it again (a
/// retry with the same id fails with [`InvoiceError::AlreadyIssued`] if it was recorded).
///
/// ```
/// use paygo_invoice::{DocumentId, SequenceStore, SeriesName};
/// use paygo_postgres::PgSequenceStore;
///
/// // The project's machines run PostgreSQL; elsewhere this example has nothing to talk to.
/// let Ok(url) = std::env::var("PAYGO_TEST_POSTGRES_URL") else { return Ok(()) };
/// let schema = format!("doc_seq_{}", std::process::id());
/// let store = PgSequenceStore::open(&url, &schema)?;
/// let series = SeriesName::new("INV-2026")?;
/// let n = store.commit(&series, &DocumentId::new("topup-1")?, &mut |n| Ok(format!("{{\"n\":{n}}}")))?;
/// assert_eq!((n, store.last(&series)?), (1, 1));
/// // Another replica, opening the same schema, goes on from there.
/// let replica = PgSequenceStore::open(&url, &schema)?;
/// assert_eq!(replica.commit(&series, &DocumentId::new("topup-2")?, &mut |n| Ok(n.to_string()))?, 2);
/// # drop((store, replica));
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?
/// #     .block_on(paygo_postgres::drop_schema(&url, &schema))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The order of [`SequenceStore::records`] is the order in which the records were
/// written, which is the commit order within a series; records of other series committed
/// by concurrent transactions may appear in another order than their commits, and a
/// reader running at the same time as commits may see a later record before an earlier one
/// of another series commits.
#[derive(Debug)]
pub struct PgSequenceStore {
    requests: mpsc::UnboundedSender<Request>,
    worker: Option<JoinHandle<()>>,
    place: String,
}

/// What the store's thread is asked to do.
enum Request {
    Commit {
        series: SeriesName,
        key: DocumentId,
        steps: std_mpsc::Sender<Step>,
        sealed: oneshot::Receiver<String>,
    },
    Last {
        series: SeriesName,
        reply: std_mpsc::Sender<Result<u64, InvoiceError>>,
    },
    Records {
        /// A chunk of records at a time; an empty chunk ends them.
        chunks: std_mpsc::Sender<Result<Vec<SequenceRecord>, InvoiceError>>,
        /// One message for each next chunk the caller wants.
        more: mpsc::UnboundedReceiver<()>,
    },
    Stop,
}

/// What the store's thread tells a committing caller.
enum Step {
    /// Seal this number and send the record back.
    Seal(u64),
    /// The commit's outcome.
    Done(Result<u64, InvoiceError>),
}

impl PgSequenceStore {
    /// Connects to the database at `url` (the URL's `connect_timeout`, 5 seconds when it has
    /// none), brings `schema` to this build's version ([`crate::SCHEMA_VERSION`], under the
    /// same advisory lock and version check as [`crate::PgStore::open`]; the billing
    /// settings are not needed) and starts the store's thread. Blocks until that is done.
    ///
    /// # Errors
    ///
    /// [`PostgresError::InvalidUrl`], [`PostgresError::InvalidSchemaName`],
    /// [`PostgresError::Database`] (unreachable, or a statement refused),
    /// [`PostgresError::SchemaTooNew`], [`PostgresError::SchemaDamaged`].
    pub fn open(url: &str, schema: &str) -> Result<PgSequenceStore, PostgresError> {
        schema::check_name(schema)?;
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| PostgresError::InvalidUrl { reason: e.to_string() })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name(APPLICATION_NAME);
        }
        let (requests, receiver) = mpsc::unbounded_channel();
        let (opened_tx, opened_rx) = std_mpsc::channel();
        let mut worker = Worker {
            config,
            schema: schema.to_owned(),
            conn: None,
        };
        let thread = std::thread::Builder::new()
            .name("paygo-invoice-pg".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = opened_tx.send(Err(PostgresError::Database {
                            reason: format!("could not start the store's runtime: {e}"),
                        }));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let opened = worker.open().await;
                    let ok = opened.is_ok();
                    let _ = opened_tx.send(opened);
                    if ok {
                        worker.serve(receiver).await;
                    }
                });
            })
            .map_err(|e| PostgresError::Database {
                reason: format!("could not start the store's thread: {e}"),
            })?;
        let opened = opened_rx.recv().unwrap_or_else(|_| {
            Err(PostgresError::Database {
                reason: "the store's thread stopped while opening".into(),
            })
        });
        if let Err(error) = opened {
            let _ = thread.join();
            return Err(error);
        }
        Ok(PgSequenceStore {
            requests,
            worker: Some(thread),
            place: format!("postgresql schema {schema}"),
        })
    }

    fn error(&self, operation: &'static str, message: String) -> InvoiceError {
        InvoiceError::Store {
            operation,
            path: self.place.clone(),
            message,
        }
    }

    fn stopped(&self, operation: &'static str) -> InvoiceError {
        self.error(
            operation,
            "the store's thread stopped: expected it to run until the store is dropped".into(),
        )
    }

    fn send(&self, operation: &'static str, request: Request) -> Result<(), InvoiceError> {
        self.requests.send(request).map_err(|_| self.stopped(operation))
    }
}

impl Drop for PgSequenceStore {
    fn drop(&mut self) {
        let _ = self.requests.send(Request::Stop);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl SequenceStore for PgSequenceStore {
    fn commit(
        &self,
        series: &SeriesName,
        key: &DocumentId,
        seal: &mut dyn FnMut(u64) -> Result<String, InvoiceError>,
    ) -> Result<u64, InvoiceError> {
        const OPERATION: &str = "commit to";
        let (steps_tx, steps) = std_mpsc::channel();
        let (sealed_tx, sealed) = oneshot::channel();
        self.send(
            OPERATION,
            Request::Commit {
                series: series.clone(),
                key: key.clone(),
                steps: steps_tx,
                sealed,
            },
        )?;
        let mut sealed_tx = Some(sealed_tx);
        loop {
            match steps.recv().map_err(|_| self.stopped(OPERATION))? {
                Step::Seal(n) => {
                    // Dropping the sender (seal's error, a record too large, a panic in
                    // seal) rolls the transaction back: nothing is consumed.
                    let record = seal(n)?;
                    if record.len() > RECORD_MAX_BYTES {
                        return Err(InvoiceError::Overflow {
                            operation: "sequence record size",
                        });
                    }
                    if let Some(sender) = sealed_tx.take() {
                        let _ = sender.send(record);
                    }
                }
                Step::Done(outcome) => return outcome,
            }
        }
    }

    fn last(&self, series: &SeriesName) -> Result<u64, InvoiceError> {
        const OPERATION: &str = "read the last number of";
        let (reply, answer) = std_mpsc::channel();
        self.send(
            OPERATION,
            Request::Last {
                series: series.clone(),
                reply,
            },
        )?;
        answer.recv().map_err(|_| self.stopped(OPERATION))?
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
        const OPERATION: &str = "read the records of";
        let (chunks_tx, chunks) = std_mpsc::channel();
        let (more, more_rx) = mpsc::unbounded_channel();
        self.send(
            OPERATION,
            Request::Records {
                chunks: chunks_tx,
                more: more_rx,
            },
        )?;
        // The numbers seen so far: a record that does not follow its series' last one is
        // damage (the tables were changed by hand).
        let mut last: HashMap<SeriesName, u64> = HashMap::new();
        loop {
            let chunk = chunks.recv().map_err(|_| self.stopped(OPERATION))??;
            if chunk.is_empty() {
                return Ok(());
            }
            for record in chunk {
                let expected = last.get(&record.series).copied().unwrap_or(0) + 1;
                if record.sequence != expected {
                    return Err(InvoiceError::Inconsistent {
                        series: record.series.to_string(),
                        sequence: record.sequence,
                        reason: format!("expected number {expected} next in {}", self.place),
                    });
                }
                last.insert(record.series.clone(), expected);
                visit(record)?;
            }
            more.send(()).map_err(|_| self.stopped(OPERATION))?;
        }
    }
}

/// The store's thread: one connection, opened again when it breaks, serving one request at
/// a time.
struct Worker {
    config: tokio_postgres::Config,
    schema: String,
    conn: Option<Conn>,
}

/// A connection and its prepared statements.
struct Conn {
    client: Client,
    lock: Statement,
    create: Statement,
    find_key: Statement,
    write: Statement,
    last: Statement,
    records: Statement,
}

impl Conn {
    async fn connect(config: &tokio_postgres::Config, schema: &str) -> Result<Conn, tokio_postgres::Error> {
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let s = schema;
        let lock = client
            .prepare(&format!(
                "SELECT last FROM {s}.invoice_series WHERE series = $1 FOR UPDATE"
            ))
            .await?;
        let create = client
            .prepare(&format!(
                "INSERT INTO {s}.invoice_series (series, last) VALUES ($1, 0) ON CONFLICT (series) DO NOTHING"
            ))
            .await?;
        let find_key = client
            .prepare(&format!(
                "SELECT series, number FROM {s}.invoice_records WHERE key = $1"
            ))
            .await?;
        let write = client
            .prepare(&format!(
                "WITH written AS (
                     INSERT INTO {s}.invoice_records (series, number, key, record) VALUES ($1, $2, $3, $4)
                 )
                 UPDATE {s}.invoice_series SET last = $2 WHERE series = $1 AND last = $2 - 1"
            ))
            .await?;
        let last = client
            .prepare(&format!("SELECT last FROM {s}.invoice_series WHERE series = $1"))
            .await?;
        let records = client
            .prepare(&format!(
                "SELECT series, number, key, record FROM {s}.invoice_records ORDER BY position"
            ))
            .await?;
        Ok(Conn {
            client,
            lock,
            create,
            find_key,
            write,
            last,
            records,
        })
    }
}

impl Worker {
    fn error(&self, operation: &'static str, message: String) -> InvoiceError {
        InvoiceError::Store {
            operation,
            path: format!("postgresql schema {}", self.schema),
            message,
        }
    }

    fn db_error(&self, operation: &'static str, error: &tokio_postgres::Error) -> InvoiceError {
        self.error(operation, describe(error))
    }

    /// The first connection: migrates the schema, then prepares the statements.
    async fn open(&mut self) -> Result<(), PostgresError> {
        let (mut client, connection) = self.config.connect(NoTls).await?;
        let task = tokio::spawn(async move {
            let _ = connection.await;
        });
        schema::migrate(&mut client, &self.schema, None).await?;
        drop(client);
        let _ = task.await;
        self.conn = Some(Conn::connect(&self.config, &self.schema).await?);
        Ok(())
    }

    /// The connection, opened again if it broke.
    async fn conn(&mut self) -> Result<&mut Conn, tokio_postgres::Error> {
        let conn = match self.conn.take() {
            Some(conn) if !conn.client.is_closed() => conn,
            _ => Conn::connect(&self.config, &self.schema).await?,
        };
        Ok(self.conn.insert(conn))
    }

    async fn serve(&mut self, mut requests: mpsc::UnboundedReceiver<Request>) {
        while let Some(request) = requests.recv().await {
            match request {
                Request::Commit {
                    series,
                    key,
                    steps,
                    sealed,
                } => {
                    let outcome = self.commit(&series, &key, &steps, sealed).await;
                    let _ = steps.send(Step::Done(outcome));
                }
                Request::Last { series, reply } => {
                    let last = self.last(&series).await;
                    let _ = reply.send(last);
                }
                Request::Records { chunks, more } => self.records(&chunks, more).await,
                Request::Stop => break,
            }
        }
    }

    async fn commit(
        &mut self,
        series: &SeriesName,
        key: &DocumentId,
        steps: &std_mpsc::Sender<Step>,
        sealed: oneshot::Receiver<String>,
    ) -> Result<u64, InvoiceError> {
        const OPERATION: &str = "commit to";
        let mut sealed = Some(sealed);
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            let conn = match self.conn().await {
                Ok(conn) => conn,
                Err(e) => return Err(self.db_error(OPERATION, &e)),
            };
            let outcome = try_commit(conn, series, key, steps, &mut sealed).await;
            match outcome {
                Err(Attempt::Database(e)) if broken(&conn.client, &e) => {
                    self.conn = None;
                    // A connection that broke while idle (a restarted server, a killed
                    // backend) is found out by the first statement: before the caller was
                    // asked to seal, the commit can start again on a new connection.
                    if attempt > 1 || sealed.is_none() {
                        break Err(Attempt::Database(e));
                    }
                }
                outcome => break outcome,
            }
        };
        match outcome {
            Ok(n) => Ok(n),
            Err(Attempt::Invoice(error)) => Err(error),
            Err(Attempt::Database(e)) => Err(self.db_error(OPERATION, &e)),
            Err(Attempt::Abandoned) => Err(self.error(
                OPERATION,
                "the caller abandoned the commit (its seal failed): rolled back".into(),
            )),
            Err(Attempt::Unknown { n, error }) => {
                let reason = describe(&error);
                self.conn = None;
                match self.resolve(series, key, n).await {
                    Ok(true) => Ok(n),
                    Ok(false) => Err(self.error(
                        OPERATION,
                        format!(
                            "committing number {n} of series {series} (document {key}) failed: {reason}; checked on \
                             a new connection: the transaction did not commit, nothing was consumed"
                        ),
                    )),
                    Err(e) => Err(self.error(
                        OPERATION,
                        format!(
                            "committing number {n} of series {series} (document {key}) failed: {reason}; the \
                             outcome is unknown (checking on a new connection failed: {}): the record may exist, \
                             look for document {key} before issuing it again",
                            describe(&e)
                        ),
                    )),
                }
            }
        }
    }

    /// Whether number `n` of `series` was recorded for `key` by a transaction whose commit
    /// lost its connection: locking the series' row waits for that transaction to end.
    async fn resolve(&mut self, series: &SeriesName, key: &DocumentId, n: u64) -> Result<bool, tokio_postgres::Error> {
        let conn = self.conn().await?;
        let tx = conn.client.transaction().await?;
        tx.batch_execute(&format!("SET LOCAL lock_timeout = '{RESOLVE_LOCK_TIMEOUT}'"))
            .await?;
        tx.query_opt(&conn.lock, &[&series.as_str()]).await?;
        let found = tx.query_opt(&conn.find_key, &[&key.as_str()]).await?;
        tx.rollback().await?;
        let Some(row) = found else { return Ok(false) };
        let (s, number): (&str, i64) = (row.try_get(0)?, row.try_get(1)?);
        Ok(s == series.as_str() && u64::try_from(number) == Ok(n))
    }

    async fn last(&mut self, series: &SeriesName) -> Result<u64, InvoiceError> {
        const OPERATION: &str = "read the last number of";
        let mut attempt = 0;
        let row = loop {
            attempt += 1;
            let conn = match self.conn().await {
                Ok(conn) => conn,
                Err(e) => return Err(self.db_error(OPERATION, &e)),
            };
            let read = conn.client.query_opt(&conn.last, &[&series.as_str()]).await;
            match read {
                Ok(row) => break row,
                Err(e) if broken(&conn.client, &e) => {
                    self.conn = None;
                    // A read can be repeated on a new connection.
                    if attempt > 1 {
                        return Err(self.db_error(OPERATION, &e));
                    }
                }
                Err(e) => return Err(self.db_error(OPERATION, &e)),
            }
        };
        let Some(row) = row else { return Ok(0) };
        let last: i64 = row.try_get(0).map_err(|e| self.db_error(OPERATION, &e))?;
        u64::try_from(last).map_err(|_| InvoiceError::Inconsistent {
            series: series.to_string(),
            sequence: 0,
            reason: format!("the last number is {last}, negative"),
        })
    }

    /// Streams the records in chunks, from one snapshot (a repeatable-read transaction),
    /// sending the next chunk each time the caller asks for it.
    async fn records(
        &mut self,
        chunks: &std_mpsc::Sender<Result<Vec<SequenceRecord>, InvoiceError>>,
        mut more: mpsc::UnboundedReceiver<()>,
    ) {
        const OPERATION: &str = "read the records of";
        let mut attempt = 0;
        let streamed = loop {
            attempt += 1;
            let conn = match self.conn().await {
                Ok(conn) => conn,
                Err(e) => break Err(Attempt::Database(e)),
            };
            let mut sent = false;
            match stream_records(conn, chunks, &mut more, &mut sent).await {
                Err(Attempt::Database(e)) if broken(&conn.client, &e) => {
                    self.conn = None;
                    // Before the first chunk went out, the read can start again.
                    if attempt > 1 || sent {
                        break Err(Attempt::Database(e));
                    }
                }
                outcome => break outcome,
            }
        };
        let error = match streamed {
            Ok(()) | Err(Attempt::Abandoned) => return,
            Err(Attempt::Database(e) | Attempt::Unknown { error: e, .. }) => self.db_error(OPERATION, &e),
            Err(Attempt::Invoice(error)) => error,
        };
        let _ = chunks.send(Err(error));
    }
}

/// Why an attempt did not succeed.
enum Attempt {
    /// The driver's error: nothing was consumed.
    Database(tokio_postgres::Error),
    /// An error for the caller as it is: nothing was consumed.
    Invoice(InvoiceError),
    /// The caller stopped waiting (its seal or visit failed): rolled back.
    Abandoned,
    /// The connection broke while the transaction committed: number `n` may be recorded.
    Unknown { n: u64, error: tokio_postgres::Error },
}

impl From<tokio_postgres::Error> for Attempt {
    fn from(error: tokio_postgres::Error) -> Attempt {
        Attempt::Database(error)
    }
}

impl From<InvoiceError> for Attempt {
    fn from(error: InvoiceError) -> Attempt {
        Attempt::Invoice(error)
    }
}

/// One commit's transaction on `conn` (see [`PgSequenceStore`]).
async fn try_commit(
    conn: &mut Conn,
    series: &SeriesName,
    key: &DocumentId,
    steps: &std_mpsc::Sender<Step>,
    sealed: &mut Option<oneshot::Receiver<String>>,
) -> Result<u64, Attempt> {
    let name = series.as_str();
    let tx = conn.client.transaction().await?;
    let row = if let Some(row) = tx.query_opt(&conn.lock, &[&name]).await? {
        row
    } else {
        // The series' first number: create its row (another process may do so at the same
        // moment: then its row is locked and waited for), then lock it.
        tx.execute(&conn.create, &[&name]).await?;
        tx.query_one(&conn.lock, &[&name]).await?
    };
    if let Some(found) = tx.query_opt(&conn.find_key, &[&key.as_str()]).await? {
        return Err(already_issued(key, &found)?.into());
    }
    let last: i64 = row.try_get(0)?;
    let n = u64::try_from(last)
        .ok()
        .and_then(|last| last.checked_add(1))
        .filter(|n| *n <= SEQUENCE_MAX)
        .ok_or(InvoiceError::Overflow {
            operation: "sequence number",
        })?;
    let Some(sealed) = sealed.take() else {
        return Err(Attempt::Abandoned);
    };
    if steps.send(Step::Seal(n)).is_err() {
        tx.rollback().await?;
        return Err(Attempt::Abandoned);
    }
    // The sender is dropped when the caller's seal failed or panicked: roll back.
    let Ok(record) = sealed.await else {
        tx.rollback().await?;
        return Err(Attempt::Abandoned);
    };
    let number = i64::try_from(n).map_err(|_| InvoiceError::Overflow {
        operation: "sequence number",
    })?;
    let updated = match tx.execute(&conn.write, &[&name, &number, &key.as_str(), &record]).await {
        Ok(updated) => updated,
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            // Another process recorded this id at the same moment (in another series).
            drop(tx);
            return match conn.client.query_opt(&conn.find_key, &[&key.as_str()]).await? {
                Some(found) => Err(already_issued(key, &found)?.into()),
                None => Err(Attempt::Database(e)),
            };
        }
        Err(e) => return Err(e.into()),
    };
    if updated != 1 {
        return Err(InvoiceError::Inconsistent {
            series: series.to_string(),
            sequence: n,
            reason: "the series' last number changed while it was locked".into(),
        }
        .into());
    }
    // Any failure of COMMIT is looked into: a broken connection leaves the outcome
    // unknown, and even an error the server sent may follow a commit (a backend terminated
    // while it waited for a synchronous standby has committed locally).
    tx.commit().await.map_err(|error| Attempt::Unknown { n, error })?;
    Ok(n)
}

/// Whether `error` means that the connection is gone (closed, an I/O error, or the server
/// terminating the session: SQLSTATE class 57, operator intervention).
fn broken(client: &Client, error: &tokio_postgres::Error) -> bool {
    client.is_closed()
        || error.is_closed()
        || std::error::Error::source(error).is_some_and(<dyn std::error::Error>::is::<std::io::Error>)
        || error.code().is_some_and(|code| code.code().starts_with("57"))
}

/// [`InvoiceError::AlreadyIssued`] for `key`, found recorded in `row` (series, number).
fn already_issued(key: &DocumentId, row: &Row) -> Result<InvoiceError, tokio_postgres::Error> {
    let (series, number): (&str, i64) = (row.try_get(0)?, row.try_get(1)?);
    Ok(InvoiceError::AlreadyIssued {
        id: key.to_string(),
        number: format!("{series}-{number}"),
    })
}

/// Sends the records in chunks from one snapshot, each chunk when the caller asks for it,
/// then an empty chunk.
async fn stream_records(
    conn: &mut Conn,
    chunks: &std_mpsc::Sender<Result<Vec<SequenceRecord>, InvoiceError>>,
    more: &mut mpsc::UnboundedReceiver<()>,
    sent: &mut bool,
) -> Result<(), Attempt> {
    let tx = conn
        .client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let portal = tx.bind(&conn.records, &[]).await?;
    loop {
        let rows = tx.query_portal(&portal, RECORDS_CHUNK).await?;
        let end = rows.is_empty();
        let chunk = rows.iter().map(record).collect::<Result<Vec<_>, _>>()?;
        if chunks.send(Ok(chunk)).is_err() {
            return Err(Attempt::Abandoned);
        }
        *sent = true;
        if end {
            break;
        }
        if more.recv().await.is_none() {
            // The caller stopped (visit's error): the transaction is rolled back.
            return Err(Attempt::Abandoned);
        }
    }
    tx.commit().await?;
    Ok(())
}

/// A record row: series, number, key, record.
fn record(row: &Row) -> Result<SequenceRecord, Attempt> {
    let series: &str = row.try_get(0)?;
    let number: i64 = row.try_get(1)?;
    let key: &str = row.try_get(2)?;
    let body: String = row.try_get(3)?;
    let inconsistent = |reason: String| InvoiceError::Inconsistent {
        series: series.to_owned(),
        sequence: u64::try_from(number).unwrap_or(0),
        reason,
    };
    let sequence = u64::try_from(number).map_err(|_| inconsistent(format!("number {number} is negative")))?;
    Ok(SequenceRecord {
        series: SeriesName::new(series).map_err(|e| inconsistent(format!("the series name is invalid: {e}")))?,
        sequence,
        key: DocumentId::new(key).map_err(|e| inconsistent(format!("the document id is invalid: {e}")))?,
        body,
    })
}
