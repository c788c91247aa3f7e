//! paygo's billing store on PostgreSQL: one set of balances for every gateway replica,
//! exact (integer credits, `bigint`), batched, and crash-safe (a reply is given only after
//! its transaction committed).
//!
//! ```
//! use paygo_billing::{BillingConfig, BillingStore, CardKind, Command, CustomerId, PaymentMethod, TopUpId};
//! use paygo_credits::{Credits, Money};
//! use paygo_postgres::{PgOptions, PgStore};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The project's machines run PostgreSQL; elsewhere this example has nothing to talk to.
//! let Ok(url) = std::env::var("PAYGO_TEST_POSTGRES_URL") else { return Ok(()) };
//! let schema = format!("doc_{}", std::process::id());
//! let store = PgStore::open(PgOptions::new(url).with_schema(&schema), BillingConfig::default()).await?;
//! let customer = CustomerId(42);
//! let top_up = Command::TopUp {
//!     id: TopUpId(7),
//!     customer,
//!     amount: Money::usd("10.00".parse()?),
//!     method: PaymentMethod::Card(CardKind::Credit),
//! };
//! let replies = store.submit(vec![Command::OpenAccount { customer }, top_up]).await?;
//! assert!(replies.iter().all(Result::is_ok));
//! // A retry, from this replica or any other, answers the same and buys nothing more.
//! assert_eq!(store.submit(vec![top_up]).await?, replies[1..]);
//! assert_eq!(store.balance(customer).await?.available, Credits::new(20_000_000));
//! # drop(store);
//! # paygo_postgres::drop_schema(&std::env::var("PAYGO_TEST_POSTGRES_URL")?, &schema).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # How it works
//!
//! Each customer's billing state is a row: a [`paygo_billing::Shard`] (the customer's
//! balances, bonus lots, open holds and auto top-up rule, encoded) with its balance in
//! columns. A batch of commands (many callers' submissions combined, in lanes by customer)
//! is one transaction: it reads the rows of the customers it touches with their versions,
//! applies the commands with the billing layer's own rules ([`paygo_billing::run_batch`]),
//! and writes back the shards **only if their versions are still those it read**, the
//! first reply of every id (primary key `(space, id)`: the idempotency), closed holds,
//! history entries, hourly charge roll-ups and auto top-up requests, one statement a
//! table. A batch that lost a race with another replica is rolled back and run again with
//! the rows locked, so two replicas can never both spend the same credits; the store's
//! sums are derived per customer (no hot row: see `docs/postgres.md`).
//!
//! # The parts
//!
//! - [`PgStore`], [`PgOptions`], [`StoreClock`]: the store, implementing
//!   [`paygo_billing::BillingStore`].
//! - [`SCHEMA_VERSION`]: the migrations are embedded and applied on open; a newer schema is
//!   refused ([`PostgresError::SchemaTooNew`]).
//! - [`PgStore::audit`]: conservation over every customer, for tests and audits;
//!   [`PgStore::prune`] ([`Pruned`]): what the idempotency window forgot, deleted;
//!   [`PgStore::charges_by_hour`]: the hourly roll-ups; [`PgStore::stats`] ([`PgStats`]).
//! - [`PgRecords`] ([`Appended`], [`UsageRow`], [`UsageHour`]): what the HTTP layer shares
//!   between replicas: ordered streams appended only on the newest view (the account
//!   directory), and usage records with their hourly roll-ups by model, kept for a
//!   retention ([`PgRecords::prune_usage`]).
//! - [`PgStore`] is also a [`paygo_gateway::JointTopUps`]: a top-up's credits and its
//!   invoice number in one transaction (`paygo_gateway::TopUps::with_joint`).
//! - [`PgSequenceStore`]: the invoice numbering ([`paygo_invoice::SequenceStore`]) in the
//!   same database, gapless per series across every replica (blocking calls, served by a
//!   thread of its own).

mod error;
mod ids;
mod records;
mod schema;
mod sequence;
mod store;

pub use error::PostgresError;
pub use records::{Appended, PgRecords, UsageHour, UsageRow};
pub use schema::SCHEMA_VERSION;
pub use sequence::PgSequenceStore;
pub use store::{Audit, PgOptions, PgStats, PgStore, Pruned, StoreClock};

/// Drops `schema` and everything in it: for tests that made a schema of their own.
///
/// # Errors
///
/// [`PostgresError::InvalidUrl`], [`PostgresError::InvalidSchemaName`],
/// [`PostgresError::Database`].
pub async fn drop_schema(url: &str, schema: &str) -> Result<(), PostgresError> {
    schema::check_name(schema)?;
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| PostgresError::InvalidUrl { reason: e.to_string() })?;
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    let task = tokio::spawn(connection);
    let dropped = client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await;
    drop(client);
    let _ = task.await;
    dropped.map_err(PostgresError::from)
}
