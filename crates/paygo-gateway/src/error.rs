//! Why a call was not let through ([`Rejection`]), what went wrong after it was
//! ([`GatewayError`]), and the HTTP status and error code of each ([`Status`]).

use paygo_billing::{BillingError, Refusal};
use paygo_credits::{Credits, CreditsError};
use paygo_pricing::PricingError;
use paygo_ratelimit::RateLimitError;
use serde::{Deserialize, Serialize};

/// The HTTP status and the machine-readable error code of an answer (the `error.code` of
/// an OpenAI-style error body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Status {
    /// The HTTP status code.
    pub http: u16,
    /// The error code, in `snake_case`.
    pub code: &'static str,
}

impl Status {
    const fn new(http: u16, code: &'static str) -> Status {
        Status { http, code }
    }
}

/// The status of a billing refusal: the caller's mistake (4xx), never the server's.
fn refusal_status(refusal: &Refusal) -> Status {
    match refusal {
        Refusal::InsufficientCredits => Status::new(403, "insufficient_credits"),
        Refusal::AccountInArrears { .. } => Status::new(402, "payment_required"),
        Refusal::UnknownAccount => Status::new(404, "unknown_account"),
        Refusal::IdReused => Status::new(409, "id_reused"),
        Refusal::IdOlderThanWindow => Status::new(409, "id_older_than_window"),
        Refusal::AccountExists => Status::new(409, "account_exists"),
        Refusal::HoldExpired => Status::new(409, "hold_expired"),
        Refusal::HoldReleased | Refusal::HoldCaptured => Status::new(409, "hold_closed"),
        Refusal::PaymentMethodRefused(_) => Status::new(402, "payment_method_refused"),
        // A ledger result the billing layer did not expect is a bug of ours.
        Refusal::Ledger(_) => Status::new(500, "ledger_refused"),
        Refusal::CountersExhausted => Status::new(503, "billing_exhausted"),
        _ => Status::new(400, "invalid_request"),
    }
}

/// Why a call was not let through. Nothing was charged; a refusal after the rate limit
/// gave back the tokens it reserved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The plan's rate limit: answer 429 with these headers (`Retry-After` among them).
    #[error("rate limited: retry after {retry_after_ns} ns")]
    RateLimited {
        /// Nanoseconds until the same call would be admitted.
        retry_after_ns: u64,
        /// The response headers.
        headers: Vec<(String, String)>,
    },
    /// Not enough credits for the call's estimate: answer 403; top up to continue.
    #[error("insufficient credits: the balance does not cover the most this call can cost; top up to continue")]
    InsufficientCredits,
    /// The model or the request cannot be priced (an unknown model, an unpriced unit, a
    /// service tier the model does not offer): answer 400. Nothing is ever free by
    /// accident.
    #[error(transparent)]
    Pricing(#[from] PricingError),
    /// The billing layer refused the hold for another reason.
    #[error("billing refused the hold: {0}")]
    Refused(Refusal),
    /// The billing store is unavailable: answer 503 (safe to retry with the same call id).
    #[error(transparent)]
    Billing(#[from] BillingError),
    /// The rate limiter failed (its store is unreachable, or the estimate is larger than
    /// a token limit's burst and could never be admitted).
    #[error("rate limiter: {0}")]
    RateLimiter(#[from] RateLimitError),
}

impl Rejection {
    /// The HTTP status and error code to answer with.
    pub fn status(&self) -> Status {
        match self {
            Rejection::RateLimited { .. } => Status::new(429, "rate_limit_exceeded"),
            Rejection::InsufficientCredits => Status::new(403, "insufficient_credits"),
            Rejection::Pricing(PricingError::UnknownModel { .. }) => Status::new(404, "model_not_found"),
            Rejection::Pricing(_) => Status::new(400, "unpriceable_request"),
            Rejection::Refused(refusal) => refusal_status(refusal),
            Rejection::Billing(BillingError::Unavailable { .. }) => Status::new(503, "billing_unavailable"),
            Rejection::Billing(_) => Status::new(500, "billing_error"),
            // A weight no window can admit is the request's fault.
            Rejection::RateLimiter(RateLimitError::WeightExceedsBurst { .. }) => {
                Status::new(400, "request_exceeds_rate_limit")
            }
            Rejection::RateLimiter(_) => Status::new(503, "rate_limiter_unavailable"),
        }
    }
}

/// What went wrong after a call was admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The usage could not be priced (an unknown shape or unit): the hold was released, so
    /// the call was not charged. Never billed as zero silently: the caller sees this.
    #[error("usage could not be priced, the hold was released: {0}")]
    Pricing(#[from] PricingError),
    /// The billing layer refused the operation.
    #[error("billing refused: {0}")]
    Refused(Refusal),
    /// The billing store is unavailable (whether the operation was applied is unknown:
    /// retry it, which is safe).
    #[error(transparent)]
    Billing(#[from] BillingError),
    /// Exact credit arithmetic failed (an amount beyond range).
    #[error(transparent)]
    Credits(#[from] CreditsError),
    /// The call was charged (`charged` credits, recorded; a retry answers the same) but
    /// what the response reports about it could not be computed.
    #[error("charged {charged} credits, but the usage could not be reported: {source}")]
    ChargedUnreported {
        /// The credits charged.
        charged: Credits,
        /// Why the report failed.
        source: PricingError,
    },
    /// The VAT of a top-up could not be determined.
    #[error(transparent)]
    Vat(#[from] paygo_vat::VatError),
    /// A top-up's invoice could not be issued (its credits are recorded: report the
    /// payment again once the cause is fixed, and it is invoiced once).
    #[error(transparent)]
    Invoice(#[from] paygo_invoice::InvoiceError),
    /// A store answered something its contract does not allow (a bug of the store).
    #[error("the billing store broke its contract: {what}")]
    Contract {
        /// What it answered.
        what: String,
    },
}

impl GatewayError {
    /// The HTTP status and error code to answer with.
    pub fn status(&self) -> Status {
        match self {
            GatewayError::Pricing(_) => Status::new(502, "usage_unpriceable"),
            GatewayError::Refused(refusal) => refusal_status(refusal),
            GatewayError::Billing(BillingError::Unavailable { .. }) => Status::new(503, "billing_unavailable"),
            GatewayError::Billing(_) | GatewayError::Contract { .. } => Status::new(500, "billing_error"),
            GatewayError::Vat(_) => Status::new(400, "vat_undetermined"),
            GatewayError::Invoice(_) => Status::new(500, "invoice_not_issued"),
            GatewayError::Credits(_) | GatewayError::ChargedUnreported { .. } => Status::new(500, "internal_error"),
        }
    }
}
