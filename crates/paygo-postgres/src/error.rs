//! The errors of connecting to and preparing a PostgreSQL store (a command's failure is a
//! [`paygo_billing::BillingError`], as for every billing store).

/// Why a PostgreSQL store could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The connection URL does not parse.
    #[error("invalid PostgreSQL URL: {reason}; expected postgres://USER@HOST[:PORT]/DATABASE")]
    InvalidUrl {
        /// What was wrong.
        reason: String,
    },
    /// A schema name that is not a plain identifier.
    #[error("invalid schema name {name:?}: expected 1 to 63 of a-z, 0-9 and _, not starting with a digit")]
    InvalidSchemaName {
        /// The name given.
        name: String,
    },
    /// An option out of its range.
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The option.
        option: &'static str,
        /// What was expected.
        reason: String,
    },
    /// The database could not be reached or refused a statement.
    #[error("database error: {reason}")]
    Database {
        /// The driver's message.
        reason: String,
    },
    /// The schema was migrated by a newer version of paygo-postgres: this one does not know
    /// its tables and refuses to touch them.
    #[error(
        "the schema is at version {found}, newer than this build's {supported}: upgrade paygo before starting it on this database"
    )]
    SchemaTooNew {
        /// The schema's version.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// The schema has no version (an unfinished migration, or tables made by hand).
    #[error("the schema's version is unreadable: {reason}")]
    SchemaDamaged {
        /// What was found.
        reason: String,
    },
    /// Records older than the usage horizon were pruned ([`crate::PgRecords::prune_usage`]):
    /// a range that starts before it may miss some, and a record older than it is not
    /// written again (its call is already in the hourly roll-up).
    #[error(
        "usage records admitted before {before_ns} ns since the epoch were pruned: expected a time at or after it (older usage is kept by the hour)"
    )]
    Pruned {
        /// The horizon, in nanoseconds since the Unix epoch.
        before_ns: u64,
    },
    /// The store was opened with billing settings other than those it was created with:
    /// every replica must run the same rules.
    #[error("billing settings differ from the store's: it has {stored}, this process was given {given}")]
    ConfigMismatch {
        /// The settings stored with the schema.
        stored: String,
        /// The settings given.
        given: String,
    },
}

impl From<tokio_postgres::Error> for PostgresError {
    fn from(error: tokio_postgres::Error) -> PostgresError {
        PostgresError::Database {
            reason: describe(&error),
        }
    }
}

/// The driver's error with the server's message, code and detail when there is one.
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({}; {detail})", db.message(), db.code().code()),
            None => format!("{} ({})", db.message(), db.code().code()),
        },
        None => error.to_string(),
    }
}
