//! What the HTTP layer shares between replicas beside the balances: ordered streams of
//! records every replica keeps in memory (the account directory), and the usage records of
//! charged calls with their hourly roll-ups. Schema versions 4 and 5
//! (`migrations/0004_records.sql`, `migrations/0005_usage_retention.sql`).

use deadpool_postgres::Pool;
use rust_decimal::Decimal;

use crate::error::{PostgresError, describe};
use crate::ids::{ns, ns_back, uuid};
use crate::schema;
use crate::store::{PgOptions, pool_error, pool_for};

/// The answer of [`PgRecords::append_after`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Appended {
    /// Appended with this sequence number.
    At(u64),
    /// Not appended: the stream has records after the one given (read them, then decide
    /// again).
    Behind,
}

/// One charged call for [`PgRecords::put_usage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageRow<'a> {
    /// The call's request id: a record is written once per key.
    pub key: &'a str,
    /// The account charged.
    pub account: u128,
    /// When the call was admitted, in nanoseconds since the Unix epoch.
    pub at_ns: u64,
    /// The model.
    pub model: &'a str,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Credits charged.
    pub credits: i64,
    /// Their value in USD, exact.
    pub usd: Decimal,
    /// The whole record, as the caller reads it back ([`PgRecords::usage_record`]).
    pub body: &'a str,
}

/// The calls of one account, UTC hour and model ([`PgRecords::usage_hours`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageHour {
    /// The hour's start, in nanoseconds since the Unix epoch.
    pub hour_ns: u64,
    /// The model.
    pub model: String,
    /// Calls.
    pub calls: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Credits charged.
    pub credits: i64,
    /// Their value in USD (the exact sum).
    pub usd: Decimal,
}

/// Nanoseconds in an hour.
const HOUR_NS: u64 = 3_600_000_000_000;

/// Records one prune statement deletes at most: short transactions, never a long lock.
const USAGE_PRUNE_CHUNK: i64 = 10_000;

/// Streams and usage records in PostgreSQL, shared by every replica that opens the same
/// schema (see the module docs). `Clone` shares the pool.
#[derive(Clone)]
pub struct PgRecords {
    pool: Pool,
    sql: std::sync::Arc<Sql>,
}

impl std::fmt::Debug for PgRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRecords").finish_non_exhaustive()
    }
}

struct Sql {
    append: String,
    read: String,
    put_usage: String,
    usage_record: String,
    usage_records: String,
    usage_hours: String,
    horizon: String,
    raise_horizon: String,
    prune_usage: String,
}

fn database(error: &tokio_postgres::Error) -> PostgresError {
    PostgresError::Database {
        reason: describe(error),
    }
}

impl PgRecords {
    /// Connects (a pool of `options.readers` connections, at least one) and brings the
    /// schema to this build's version ([`crate::SCHEMA_VERSION`]).
    ///
    /// # Errors
    ///
    /// [`PostgresError::InvalidUrl`], [`PostgresError::InvalidSchemaName`],
    /// [`PostgresError::InvalidOption`], [`PostgresError::Database`],
    /// [`PostgresError::SchemaTooNew`], [`PostgresError::SchemaDamaged`].
    pub async fn open(options: &PgOptions) -> Result<PgRecords, PostgresError> {
        schema::check_name(&options.schema)?;
        let pool = pool_for(options, options.readers.max(1))?;
        {
            let mut client = pool
                .get()
                .await
                .map_err(|e| PostgresError::Database { reason: pool_error(&e) })?;
            schema::migrate(&mut client, &options.schema, None).await?;
        }
        let s = &options.schema;
        let sql = Sql {
            append: format!(
                "INSERT INTO {s}.streams (stream, seq, body) VALUES ($1, $2, $3)
                 ON CONFLICT (stream, seq) DO NOTHING RETURNING seq"
            ),
            read: format!("SELECT seq, body FROM {s}.streams WHERE stream = $1 AND seq > $2 ORDER BY seq LIMIT $3"),
            put_usage: format!(
                "WITH r AS (
                   INSERT INTO {s}.usage_records (key, account, at_ns, body)
                   SELECT $1, $2, $3, $4 FROM {s}.usage_pruned WHERE $3 >= before_ns
                   ON CONFLICT (key) DO NOTHING RETURNING 1)
                 INSERT INTO {s}.usage_hourly AS h
                   (account, hour_ns, model, calls, prompt_tokens, completion_tokens, credits, usd)
                 SELECT $2, $5, $6, 1, $7, $8, $9, $10::text::numeric FROM r
                 ON CONFLICT (account, hour_ns, model) DO UPDATE SET
                   calls = h.calls + 1,
                   prompt_tokens = h.prompt_tokens + excluded.prompt_tokens,
                   completion_tokens = h.completion_tokens + excluded.completion_tokens,
                   credits = h.credits + excluded.credits,
                   usd = h.usd + excluded.usd
                 RETURNING 1"
            ),
            usage_record: format!("SELECT body FROM {s}.usage_records WHERE key = $1"),
            usage_records: format!(
                "SELECT body FROM {s}.usage_records
                 WHERE account = $1 AND at_ns >= $2 AND at_ns < $3 ORDER BY at_ns, key"
            ),
            usage_hours: format!(
                "SELECT hour_ns, model, calls, prompt_tokens, completion_tokens, credits, usd::text
                   FROM {s}.usage_hourly
                  WHERE account = $1 AND hour_ns >= $2 AND hour_ns < $3 ORDER BY hour_ns, model"
            ),
            horizon: format!("SELECT before_ns FROM {s}.usage_pruned"),
            raise_horizon: format!(
                "UPDATE {s}.usage_pruned SET before_ns = greatest(before_ns, $1) RETURNING before_ns"
            ),
            prune_usage: format!(
                "DELETE FROM {s}.usage_records WHERE key = ANY(ARRAY(
                   SELECT key FROM {s}.usage_records WHERE at_ns < $1 LIMIT $2))"
            ),
        };
        Ok(PgRecords {
            pool,
            sql: std::sync::Arc::new(sql),
        })
    }

    /// Runs the prepared statement `sql` with `params` on a pooled connection.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, PostgresError> {
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| PostgresError::Database { reason: pool_error(&e) })?;
        let st = client.prepare_cached(sql).await.map_err(|e| database(&e))?;
        client.query(&st, params).await.map_err(|e| database(&e))
    }

    /// Appends `body` to `stream` as the record after `after` (the last sequence number the
    /// caller has read; 0 for none), if the stream has nothing after it yet: a
    /// compare-and-append, so that a writer never appends on a stale view.
    ///
    /// # Errors
    ///
    /// [`PostgresError::InvalidOption`] for `after` out of range; [`PostgresError::Database`].
    pub async fn append_after(&self, stream: &str, after: u64, body: &str) -> Result<Appended, PostgresError> {
        let next = after
            .checked_add(1)
            .and_then(|n| i64::try_from(n).ok())
            .ok_or_else(|| PostgresError::InvalidOption {
                option: "after",
                reason: format!("{after} is beyond the largest sequence number"),
            })?;
        let n = self.query(&self.sql.append, &[&stream, &next, &body]).await?.len();
        // `next` is positive: it was checked above.
        Ok(if n == 1 {
            Appended::At(next.unsigned_abs())
        } else {
            Appended::Behind
        })
    }

    /// Up to `limit` records of `stream` after sequence number `after`, in order.
    ///
    /// # Errors
    ///
    /// [`PostgresError::Database`].
    pub async fn read(&self, stream: &str, after: u64, limit: u32) -> Result<Vec<(u64, String)>, PostgresError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let rows = self
            .query(&self.sql.read, &[&stream, &after, &i64::from(limit)])
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, i64>(0).unsigned_abs(), r.get::<_, String>(1)))
            .collect())
    }

    /// Writes a call's record and adds it to its hour's roll-up, in one statement (one
    /// transaction); a record whose key is already written changes nothing. Returns whether
    /// it was new.
    ///
    /// # Errors
    ///
    /// [`PostgresError::InvalidOption`] for a time or a token count out of range;
    /// [`PostgresError::Pruned`] for a record admitted before the usage horizon (it may have
    /// been written and pruned: writing it again would count its call twice in the
    /// roll-up); [`PostgresError::Database`].
    pub async fn put_usage(&self, row: &UsageRow<'_>) -> Result<bool, PostgresError> {
        let at = ns(row.at_ns).map_err(|e| PostgresError::InvalidOption {
            option: "at_ns",
            reason: e.to_string(),
        })?;
        let hour = ns(row.at_ns - row.at_ns % HOUR_NS).map_err(|e| PostgresError::InvalidOption {
            option: "at_ns",
            reason: e.to_string(),
        })?;
        let tokens = |n: u64, option: &'static str| {
            i64::try_from(n).map_err(|_| PostgresError::InvalidOption {
                option,
                reason: format!("{n} is beyond a bigint"),
            })
        };
        let prompt = tokens(row.prompt_tokens, "prompt_tokens")?;
        let completion = tokens(row.completion_tokens, "completion_tokens")?;
        let usd = row.usd.to_string();
        let n = self
            .query(
                &self.sql.put_usage,
                &[
                    &row.key,
                    &uuid(row.account),
                    &at,
                    &row.body,
                    &hour,
                    &row.model,
                    &prompt,
                    &completion,
                    &row.credits,
                    &usd,
                ],
            )
            .await?
            .len();
        if n == 0 {
            // Written before, or refused as older than the horizon: which one?
            let before_ns = self.horizon().await?;
            if row.at_ns < before_ns {
                return Err(PostgresError::Pruned { before_ns });
            }
        }
        Ok(n == 1)
    }

    /// The usage horizon: records admitted before it may have been pruned (0 when none
    /// was).
    ///
    /// # Errors
    ///
    /// [`PostgresError::Database`]; [`PostgresError::SchemaDamaged`] when the horizon's row
    /// is missing.
    pub async fn usage_horizon(&self) -> Result<u64, PostgresError> {
        self.horizon().await
    }

    async fn horizon(&self) -> Result<u64, PostgresError> {
        let rows = self.query(&self.sql.horizon, &[]).await?;
        let row = rows.first().ok_or_else(|| PostgresError::SchemaDamaged {
            reason: "usage_pruned has no row".to_owned(),
        })?;
        ns_back(row.get(0)).map_err(|e| PostgresError::SchemaDamaged { reason: e.to_string() })
    }

    /// Deletes the usage records admitted before `before_ns` (the hourly roll-ups stay:
    /// usage of those hours is still answered by the hour), in chunks of 10,000 rows per
    /// transaction. First raises the horizon to `before_ns` (never lowers it), so that from
    /// then on a range starting before it is refused by [`PgRecords::usage_records`] rather
    /// than answered short, and a record older than it is refused by
    /// [`PgRecords::put_usage`]. Any replica may run it, at any time; returns how many
    /// records it deleted.
    ///
    /// # Errors
    ///
    /// [`PostgresError::InvalidOption`] for a time past 2262; [`PostgresError::Database`].
    pub async fn prune_usage(&self, before_ns: u64) -> Result<u64, PostgresError> {
        let before = ns(before_ns).map_err(|e| PostgresError::InvalidOption {
            option: "before_ns",
            reason: e.to_string(),
        })?;
        let rows = self.query(&self.sql.raise_horizon, &[&before]).await?;
        // Nothing is deleted unless the horizon was raised first.
        let horizon: i64 = rows
            .first()
            .map(|r| r.get(0))
            .ok_or_else(|| PostgresError::SchemaDamaged {
                reason: "usage_pruned has no row".to_owned(),
            })?;
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| PostgresError::Database { reason: pool_error(&e) })?;
        let st = client
            .prepare_cached(&self.sql.prune_usage)
            .await
            .map_err(|e| database(&e))?;
        let mut deleted = 0;
        loop {
            let n = client
                .execute(&st, &[&horizon, &USAGE_PRUNE_CHUNK])
                .await
                .map_err(|e| database(&e))?;
            deleted += n;
            if n < USAGE_PRUNE_CHUNK.unsigned_abs() {
                return Ok(deleted);
            }
        }
    }

    /// The record written under `key`.
    ///
    /// # Errors
    ///
    /// [`PostgresError::Database`].
    pub async fn usage_record(&self, key: &str) -> Result<Option<String>, PostgresError> {
        let rows = self.query(&self.sql.usage_record, &[&key]).await?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    /// The records of `account` admitted in `from_ns .. to_ns`, in time order.
    ///
    /// # Errors
    ///
    /// [`PostgresError::Pruned`] when `from_ns` is before the usage horizon (some of the
    /// range's records may have been deleted); [`PostgresError::Database`].
    pub async fn usage_records(&self, account: u128, from_ns: u64, to_ns: u64) -> Result<Vec<String>, PostgresError> {
        let (from, to) = (clamp(from_ns), clamp(to_ns));
        let rows = self
            .query(&self.sql.usage_records, &[&uuid(account), &from, &to])
            .await?;
        // The horizon is read after the records: it is raised before a record is deleted,
        // so a deletion the read above missed records shows here.
        let before_ns = self.horizon().await?;
        if from_ns < before_ns {
            return Err(PostgresError::Pruned { before_ns });
        }
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The hourly roll-ups of `account` for the hours starting in `from_ns .. to_ns`, by
    /// hour then model.
    ///
    /// # Errors
    ///
    /// [`PostgresError::Database`]; [`PostgresError::SchemaDamaged`] for a stored value out
    /// of range.
    pub async fn usage_hours(&self, account: u128, from_ns: u64, to_ns: u64) -> Result<Vec<UsageHour>, PostgresError> {
        let (from, to) = (clamp(from_ns), clamp(to_ns));
        let rows = self.query(&self.sql.usage_hours, &[&uuid(account), &from, &to]).await?;
        let damaged = |what: String| PostgresError::SchemaDamaged { reason: what };
        rows.iter()
            .map(|r| {
                let count = |i: usize| {
                    u64::try_from(r.get::<_, i64>(i))
                        .map_err(|_| damaged("a negative count in usage_hourly".to_owned()))
                };
                let usd: String = r.get(6);
                Ok(UsageHour {
                    hour_ns: ns_back(r.get(0)).map_err(|e| damaged(e.to_string()))?,
                    model: r.get(1),
                    calls: count(2)?,
                    prompt_tokens: count(3)?,
                    completion_tokens: count(4)?,
                    credits: r.get(5),
                    usd: usd
                        .parse()
                        .map_err(|e| damaged(format!("a usd sum {usd:?} in usage_hourly: {e}")))?,
                })
            })
            .collect()
    }
}

/// A time as the tables keep it, times past 2262 as the largest.
fn clamp(at_ns: u64) -> i64 {
    i64::try_from(at_ns).unwrap_or(i64::MAX)
}
