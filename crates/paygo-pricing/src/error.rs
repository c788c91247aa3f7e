//! The one error type of this crate.

use thiserror::Error;

use paygo_credits::CreditsError;

/// Everything that can go wrong when loading prices or quoting a call.
///
/// There is no "price not found, assume zero": an unknown model, a unit without a price or
/// a malformed price is always one of these.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PricingError {
    /// No model with this id or alias.
    #[error("unknown model {model:?}: {}", suggestion_text(.suggestions))]
    UnknownModel {
        /// The id asked for, cut to 128 characters.
        model: String,
        /// The nearest known ids, best first (at most three).
        suggestions: Vec<String>,
    },
    /// The usage has a unit the model has no price for.
    #[error("model {model:?} has no price for {component} ({quantity} given): expected usage the model is priced for")]
    UnpricedUnit {
        /// The model's id.
        model: String,
        /// The unpriced component.
        component: &'static str,
        /// How much of it the usage had.
        quantity: String,
    },
    /// The usage names a variant (image size and quality, video resolution, search context
    /// size) that the model has no price for, or omits one the model needs.
    #[error("model {model:?} has no {component} price for {variant:?}: expected one of {known}")]
    UnknownVariant {
        /// The model's id.
        model: String,
        /// The component.
        component: &'static str,
        /// The variant asked for ("" when none was given).
        variant: String,
        /// The variants the model has, comma-separated.
        known: String,
    },
    /// The model has no price version in force at the usage's time.
    #[error("model {model:?} has no price in force at {at}: its first price starts at {first_valid_from}")]
    NoPriceAt {
        /// The model's id.
        model: String,
        /// The time asked for (RFC 3339).
        at: String,
        /// When its earliest version starts (RFC 3339).
        first_valid_from: String,
    },
    /// Usage counts that contradict each other (a detail larger than its total).
    #[error("inconsistent usage: {detail} ({detail_value}) exceeds {total} ({total_value})")]
    InconsistentUsage {
        /// The detail count, e.g. `prompt_tokens_details.cached_tokens`.
        detail: &'static str,
        /// Its value (for sums, the sum).
        detail_value: u64,
        /// The total it must not exceed, e.g. `prompt_tokens`.
        total: &'static str,
        /// The total's value.
        total_value: u64,
    },
    /// A usage quantity that is negative or otherwise not a count.
    #[error("invalid usage: {field} is {value}, expected {expected}")]
    InvalidUsage {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A usage object with none of the counters of the shape it is read as.
    #[error("usage has no counter of {shape} usage (a zero usage must still say so): expected {expected}")]
    EmptyUsage {
        /// The shape it was read as.
        shape: &'static str,
        /// The counters that shape has.
        expected: &'static str,
    },
    /// A usage object with a counter of another upstream's shape than the one it is read as.
    #[error(
        "usage field {field:?} belongs to {looks_like} usage, not {shape} usage: expected the fields of {shape} usage, or the {looks_like} shape declared"
    )]
    UsageShapeMismatch {
        /// The shape it was read as.
        shape: &'static str,
        /// The field of another shape.
        field: String,
        /// The shape that field belongs to.
        looks_like: &'static str,
    },
    /// A usage text that is not a JSON object of counts.
    #[error("invalid usage: {reason}")]
    MalformedUsage {
        /// What was wrong.
        reason: String,
    },
    /// A service tier name that is not a name.
    #[error("invalid service tier {name:?}: expected 1 to 23 characters of a-z, 0-9 and _")]
    InvalidServiceTier {
        /// The name given, cut to 40 characters.
        name: String,
    },
    /// A price that is negative, malformed or not a number.
    #[error("invalid price for model {model:?}, {key}: {reason}")]
    InvalidPrice {
        /// The model's id.
        model: String,
        /// The price key in the file.
        key: String,
        /// What was wrong and what was expected.
        reason: String,
    },
    /// Two models claim the same id or alias.
    #[error("duplicate model id or alias {id:?}: used by {first:?} and {second:?}")]
    Duplicate {
        /// The id or alias.
        id: String,
        /// The model that had it first.
        first: String,
        /// The model that claimed it again.
        second: String,
    },
    /// A price-book file that is not of the expected shape.
    #[error("invalid price book: {reason}")]
    InvalidBook {
        /// What was wrong, with its place in the file where known.
        reason: String,
    },
    /// Keys the LiteLLM importer does not understand, in strict mode.
    #[error("{count} price keys not understood (strict mode), first: {first}")]
    UnknownKeys {
        /// How many keys were not understood.
        count: usize,
        /// The first one, as `model: key`.
        first: String,
    },
    /// A markup that is negative.
    #[error("invalid markup: {reason}")]
    InvalidMarkup {
        /// What was wrong.
        reason: &'static str,
    },
    /// Exact arithmetic failed (an amount beyond range).
    #[error(transparent)]
    Credits(#[from] CreditsError),
}

fn suggestion_text(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        "expected a model id or alias of the price book".to_owned()
    } else {
        format!(
            "expected a model id of the price book, such as {}",
            suggestions.join(", ")
        )
    }
}
