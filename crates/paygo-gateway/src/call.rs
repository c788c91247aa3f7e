//! One call as the gateway receives it ([`Call`]), once let through ([`Admitted`]), and
//! once charged ([`Completed`]).

use paygo_billing::{AutoTopUp, CustomerId, HoldId};
use paygo_credits::Credits;
use paygo_pricing::{Quote, ServiceTier, Usage, UsageSection};
use serde::{Deserialize, Serialize};

/// One API call as the gateway receives it (it borrows from the request: it serializes,
/// for logs and tests, and is not read back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Call<'a> {
    /// The call's id: its hold's idempotency key (a retried call sends the same).
    pub id: HoldId,
    /// The calling account.
    pub account: CustomerId,
    /// The model asked for.
    pub model: &'a str,
    /// Prompt tokens of the request.
    pub prompt_tokens: u64,
    /// The request's `max_tokens` (completion tokens of all kinds).
    pub max_output_tokens: u64,
    /// The service tier.
    pub service_tier: ServiceTier,
    /// The most of each non-token unit the call may use (images, seconds, characters),
    /// for models priced by them; `None` for a token-priced call. The hold covers them.
    pub units: Option<&'a Usage>,
}

impl<'a> Call<'a> {
    /// A standard-tier call of `model` priced by tokens.
    pub fn tokens(
        id: HoldId,
        account: CustomerId,
        model: &'a str,
        prompt_tokens: u64,
        max_output_tokens: u64,
    ) -> Call<'a> {
        Call {
            id,
            account,
            model,
            prompt_tokens,
            max_output_tokens,
            service_tier: ServiceTier::STANDARD,
            units: None,
        }
    }
}

/// A call the gateway let through: credits are held for it, and its rate-limit tokens
/// reserved. Keep it until the upstream answers, then [`Gateway::complete`] or
/// [`Gateway::fail`] it.
///
/// [`Gateway::complete`]: crate::Gateway::complete
/// [`Gateway::fail`]: crate::Gateway::fail
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admitted {
    /// The call's id, which is its hold's id.
    pub id: HoldId,
    /// The account.
    pub account: CustomerId,
    /// The model (its canonical id, aliases resolved).
    pub model: String,
    /// The service tier.
    pub service_tier: ServiceTier,
    /// The prompt tokens the request declared.
    pub prompt_tokens: u64,
    /// The non-token units the request declared.
    pub units: Option<Usage>,
    /// Credits held: the estimate, plus one for the remainder carrier.
    pub held: Credits,
    /// Tokens reserved on the plan's token limits (prompt plus `max_tokens`), adjusted to
    /// the actual usage when the call completes.
    pub reserved_tokens: u64,
    /// When the call was admitted, in nanoseconds since the Unix epoch: the prices in
    /// force then are the prices the call is charged at, whenever it completes.
    pub at_ns: u64,
    /// The rate-limit headers of the response.
    pub rate_limit_headers: Vec<(String, String)>,
}

/// A completed, charged call (serializes; a quote is not read back from JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Completed {
    /// The quote of the usage charged.
    pub quote: Quote,
    /// Credits charged (the remainder carrier's whole-credit charge, at most the hold).
    pub charged: Credits,
    /// Credits the call cost beyond the hold, recorded as uncollected (non-zero only when
    /// the upstream reported more usage than the request allowed).
    pub shortfall: Credits,
    /// The response's usage section and headers.
    pub usage: UsageSection,
    /// What the account's auto top-up rule decided.
    pub auto_top_up: AutoTopUp,
}
