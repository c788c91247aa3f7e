//! The schema: embedded, versioned migrations applied in one transaction under an advisory
//! lock (so that replicas starting together migrate once), the version check that refuses a
//! newer schema, and the billing settings every replica must share.

use paygo_billing::BillingConfig;
use tokio_postgres::Client;

use crate::error::PostgresError;

/// The migrations, in order: version `n` is `MIGRATIONS[n - 1]`. `{s}` is the schema.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_billing.sql"),
    include_str!("../migrations/0002_invoices.sql"),
    include_str!("../migrations/0003_write_path.sql"),
    include_str!("../migrations/0004_records.sql"),
    include_str!("../migrations/0005_usage_retention.sql"),
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Checks a schema name: a plain lowercase identifier, so that it can be spliced into
/// statements without quoting.
pub(crate) fn check_name(name: &str) -> Result<(), PostgresError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(PostgresError::InvalidSchemaName { name: name.to_owned() })
    }
}

/// The settings that decide every reply, as the store records them: replicas with other
/// settings would answer the same command differently.
pub(crate) fn fingerprint(config: &BillingConfig) -> String {
    let window = match config.id_window {
        None => "none".to_owned(),
        Some(w) => format!("{}ns/{}ns", w.past_ns, w.ahead_ns),
    };
    format!(
        "credit_rate={}:{} bonus_enabled={} hold_timeout_max_ms={} id_window={window}",
        config.credit_rate.currency().code(),
        config.credit_rate.credits_per_unit(),
        config.bonus_enabled,
        config.hold_timeout_max_ms,
    )
}

/// Brings `schema` to [`SCHEMA_VERSION`] (creating it if new) and, given billing settings,
/// records them or checks them against those recorded. The invoice numbering
/// ([`crate::PgSequenceStore`]) does not depend on them and gives none.
pub(crate) async fn migrate(
    client: &mut Client,
    schema: &str,
    config: Option<&BillingConfig>,
) -> Result<u32, PostgresError> {
    check_name(schema)?;
    let tx = client.transaction().await?;
    // One migrator at a time per schema: the lock is held to the end of the transaction.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('paygo-postgres/' || $1))",
        &[&schema],
    )
    .await?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.meta (key text PRIMARY KEY, value text NOT NULL);"
    ))
    .await?;
    let found = tx
        .query_opt(
            &format!("SELECT value FROM {schema}.meta WHERE key = 'schema_version'"),
            &[],
        )
        .await?;
    let version: u32 = match found {
        None => 0,
        Some(row) => {
            let text: String = row.get(0);
            text.parse().map_err(|_| PostgresError::SchemaDamaged {
                reason: format!("schema_version is {text:?}, not a number"),
            })?
        }
    };
    if version > SCHEMA_VERSION {
        return Err(PostgresError::SchemaTooNew {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    for (n, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(&sql.replace("{s}", schema)).await?;
        tx.execute(
            &format!(
                "INSERT INTO {schema}.meta (key, value) VALUES ('schema_version', $1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            ),
            &[&(n + 1).to_string()],
        )
        .await?;
    }
    if let Some(config) = config {
        check_settings(&tx, schema, config).await?;
    }
    tx.commit().await?;
    Ok(SCHEMA_VERSION)
}

/// Records the billing settings, or checks them against those recorded.
async fn check_settings(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
    config: &BillingConfig,
) -> Result<(), PostgresError> {
    let given = fingerprint(config);
    let stored = tx
        .query_opt(
            &format!("SELECT value FROM {schema}.meta WHERE key = 'billing_config'"),
            &[],
        )
        .await?;
    match stored {
        None => {
            tx.execute(
                &format!("INSERT INTO {schema}.meta (key, value) VALUES ('billing_config', $1)"),
                &[&given],
            )
            .await?;
        }
        Some(row) => {
            let stored: String = row.get(0);
            if stored != given {
                return Err(PostgresError::ConfigMismatch { stored, given });
            }
        }
    }
    Ok(())
}
