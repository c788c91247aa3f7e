//! The one error type of this crate (what goes wrong when a store is opened; the store's
//! calls answer [`RateLimitError`], as every `AsyncStore` does).

use paygo_ratelimit::RateLimitError;
use thiserror::Error;

/// What can go wrong when a [`RedisStore`](crate::RedisStore) is opened.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// A URL the client cannot read.
    #[error("invalid Redis URL: {message}; expected redis://HOST:PORT[/DB]")]
    InvalidUrl {
        /// What the client said.
        message: String,
    },
    /// The server did not answer (down, unreachable, or slower than the connect timeout).
    #[error("cannot reach Redis: {message}; expected a server at the URL (is redis-server running?)")]
    Unreachable {
        /// What the client said.
        message: String,
    },
    /// An option out of its range.
    #[error("invalid option {name}: {reason}")]
    InvalidOption {
        /// The option's name.
        name: &'static str,
        /// What was wrong and what was expected.
        reason: &'static str,
    },
    /// A prefix that cannot name the store's keys.
    #[error("invalid key prefix {prefix:?}: expected 1 to 64 characters from A-Z a-z 0-9 - _ . : / and no braces")]
    InvalidPrefix {
        /// The prefix given, cut to 64 characters.
        prefix: String,
    },
    /// A plan the store cannot hold (a quota too large for the script's arithmetic, or no
    /// limit at all).
    #[error("the plan cannot be kept on Redis: {0}")]
    Plan(#[from] RateLimitError),
    /// The server answered something the script never answers (another program's keys
    /// under the store's prefix, or a version mismatch).
    #[error("unexpected answer from Redis: {message}")]
    Protocol {
        /// What was unexpected.
        message: String,
    },
}
