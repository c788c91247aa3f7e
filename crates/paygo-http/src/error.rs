//! [`HttpError`]: everything that can go wrong in the HTTP layer, each with the status and
//! OpenAI-style error it answers with.

use paygo_billing::CustomerId;
use paygo_credits::CreditsError;
use paygo_pricing::PricingError;

/// What went wrong in the HTTP layer: a request that cannot be sized or forwarded, a key
/// or account that does not exist, a store or an upstream that failed, a bad setting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The request body is not the JSON object the endpoint takes.
    #[error("malformed request body: {reason}")]
    MalformedBody {
        /// What was wrong.
        reason: String,
    },
    /// A field the endpoint needs is missing.
    #[error("missing field `{field}`: the request needs it")]
    MissingField {
        /// The field.
        field: &'static str,
    },
    /// A field has the wrong type or an impossible value.
    #[error("invalid field `{field}`: expected {expected}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// The request sets no output limit and the price book knows no maximum for the model,
    /// so the most the call can cost is unknown: it is refused rather than guessed.
    #[error("`max_tokens` is required for model `{model}`: the price book has no output maximum for it")]
    MaxTokensRequired {
        /// The model.
        model: String,
    },
    /// The request holds content whose size in tokens cannot be bounded (so it could not
    /// be held for): refused before the upstream is called.
    #[error("unsupported content: {what}")]
    UnsupportedContent {
        /// What it was.
        what: String,
    },
    /// The request would be served without a way to meter it exactly (its usage is not
    /// reported, and the request does not determine it): refused before the upstream is
    /// called, rather than served for less than it costs.
    #[error("this call cannot be metered: {what}")]
    NotMeterable {
        /// What cannot be metered, and what would be.
        what: String,
    },
    /// The model or the request cannot be priced.
    #[error(transparent)]
    Pricing(#[from] PricingError),
    /// A store of the HTTP layer (the account directory, the usage log) failed.
    #[error("storage failed: {what}")]
    Storage {
        /// What failed.
        what: String,
    },
    /// No account has this id.
    #[error("no account {account}: create it first")]
    UnknownAccount {
        /// The id.
        account: CustomerId,
    },
    /// No active key has this id.
    #[error("no active key `{key_id}`")]
    UnknownKey {
        /// The key id.
        key_id: String,
    },
    /// The operating system's random source failed (no key is made without it).
    #[error("the random source failed: {reason}")]
    Random {
        /// Why.
        reason: String,
    },
    /// Credit arithmetic left its range.
    #[error(transparent)]
    Credits(#[from] CreditsError),
    /// A setting of the proxy is wrong (the server refuses to start).
    #[error("bad setting: {what}")]
    Config {
        /// What was wrong, and what was expected.
        what: String,
    },
}
