//! The gateway flow, composed from the crates: what an AI API gateway does around each call.
//!
//! 1. **Rate limit** the account by its plan ([`paygo_ratelimit`]): a refusal is a 429
//!    with `Retry-After` and `RateLimit` headers.
//! 2. **Estimate** the most the call can cost from its prompt size and `max_tokens`
//!    ([`paygo_pricing::PriceBook::estimate`]), and **hold** that many credits
//!    ([`paygo_billing`]): without balance the call is refused (403).
//! 3. The upstream call runs.
//! 4. On success, **quote** the actual usage and **capture** its exact cost from the hold:
//!    the ledger charges it in whole credits through the account's remainder carrier
//!    ([`paygo_credits::RemainderCarrier`], journaled with the ledger) and releases the rest;
//!    the response carries the usage section. On failure, **release** the hold: a failed
//!    call costs nothing.
//! 5. The capture's receipt says whether an auto top-up was requested; the payment happens
//!    outside and its outcome is reported back.
//!
//! Nothing here decides a price, a balance or a limit: each step calls the crate that owns
//! it. The gateway only carries values from one to the next.

use chrono::{DateTime, Utc};
use paygo_billing::{
    AutoTopUp, AutoTopUpRule, Billing, Command, CustomerId, HoldId, PaymentMethod, PaymentOutcome, Receipt, Refusal,
    Reply, RequestId, TopUpId,
};
use paygo_credits::{Credits, Money, RemainderCarrier};
use paygo_ledger::{Clock, LedgerError, SharedLedger};
use paygo_pricing::{EstimateRequest, PriceBook, PricingError, Quote, QuoteRequest, ServiceTier, Usage, UsageSection};
use paygo_ratelimit::{Decision, MemoryStore, Policy, RateLimiter};

/// One API call as the gateway receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call<'a> {
    /// The call's id (the hold's idempotency key).
    pub id: HoldId,
    /// The calling account.
    pub account: CustomerId,
    /// The model asked for.
    pub model: &'a str,
    /// Prompt tokens of the request.
    pub prompt_tokens: u64,
    /// The request's `max_tokens`.
    pub max_output_tokens: u64,
    /// The service tier.
    pub service_tier: ServiceTier,
    /// The most of each non-token unit the call may use (images, seconds, characters),
    /// for models priced by them; `None` for a token-priced call. The hold covers them.
    pub units: Option<&'a Usage>,
}

/// A call the gateway let through: credits are held for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The call's id, which is its hold's id.
    pub id: HoldId,
    /// The account.
    pub account: CustomerId,
    /// The model.
    pub model: String,
    /// The service tier.
    pub service_tier: ServiceTier,
    /// Credits held: the estimate, plus one for the remainder carrier.
    pub held: Credits,
    /// The rate-limit headers of the response.
    pub rate_limit_headers: Vec<(&'static str, String)>,
}

/// Why a call was not let through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The plan's rate limit: answer 429 with these headers (`Retry-After` among them).
    #[error("rate limited: retry after {retry_after_ns} ns")]
    RateLimited {
        /// Nanoseconds until the same call would be admitted.
        retry_after_ns: u64,
        /// The response headers.
        headers: Vec<(&'static str, String)>,
    },
    /// Not enough credits for the estimate: answer 403.
    #[error("insufficient credits: top up to continue")]
    InsufficientCredits,
    /// The model or the request cannot be priced (unknown model, unpriced unit): answer 400.
    #[error(transparent)]
    Pricing(#[from] PricingError),
    /// The ledger refused the hold for another reason.
    #[error("ledger refused the hold: {0}")]
    Ledger(Refusal),
    /// The ledger is unavailable (its storage failed): answer 503.
    #[error(transparent)]
    Unavailable(#[from] LedgerError),
    /// The rate limiter failed (a quota beyond its range).
    #[error("rate limiter: {0}")]
    RateLimiter(String),
}

/// A completed, charged call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// The quote of the actual usage.
    pub quote: Quote,
    /// Credits charged (the carrier's whole-credit charge, at most what was held).
    pub charged: Credits,
    /// Credits the quote called for (rounded up) beyond what was charged: non-zero only when
    /// the upstream reported more usage than the request allowed, so the hold capped it.
    pub shortfall: Credits,
    /// The response's usage section and headers.
    pub usage: UsageSection,
    /// What the account's auto top-up rule decided.
    pub auto_top_up: AutoTopUp,
}

/// Errors after a call was admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The usage could not be priced; the hold was released.
    #[error(transparent)]
    Pricing(#[from] PricingError),
    /// The ledger refused the operation.
    #[error("ledger refused: {0}")]
    Refused(Refusal),
    /// The ledger is unavailable.
    #[error(transparent)]
    Unavailable(#[from] LedgerError),
    /// Exact credit arithmetic failed (an amount beyond range).
    #[error(transparent)]
    Credits(#[from] paygo_credits::CreditsError),
    /// The call was charged (`charged` credits, recorded in the ledger; a retry of the
    /// capture answers the same) but what the response reports about it could not be
    /// computed: an amount beyond what the credit rate can show.
    #[error("charged {charged} credits, but the usage could not be reported: {source}")]
    ChargedUnreported {
        /// The credits charged.
        charged: Credits,
        /// Why the report failed.
        source: PricingError,
    },
}

/// The gateway: a price book, a rate limiter per plan, and the billing ledger behind a
/// shared handle (in memory, or durable with `paygo_ledger::durable::open_billing`).
pub struct Gateway<R: Clock, L: Clock> {
    prices: PriceBook,
    limiter: RateLimiter<CustomerId, R, MemoryStore<CustomerId>>,
    ledger: SharedLedger<Billing, L>,
    hold_timeout_ms: u64,
}

impl<R: Clock, L: Clock> std::fmt::Debug for Gateway<R, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("models", &self.prices.len())
            .finish_non_exhaustive()
    }
}

impl<R: Clock, L: Clock> Gateway<R, L> {
    /// A gateway over these parts; holds expire after `hold_timeout_ms`.
    pub fn new(
        prices: PriceBook,
        policy: Policy,
        rate_clock: R,
        ledger: SharedLedger<Billing, L>,
        hold_timeout_ms: u64,
    ) -> Gateway<R, L> {
        Gateway {
            prices,
            limiter: RateLimiter::with_clock_and_store(policy, rate_clock, MemoryStore::new()),
            ledger,
            hold_timeout_ms,
        }
    }

    /// The price book.
    pub fn prices(&self) -> &PriceBook {
        &self.prices
    }

    /// The billing ledger's handle.
    pub fn ledger(&self) -> &SharedLedger<Billing, L> {
        &self.ledger
    }

    /// The rate limiter.
    pub fn limiter(&self) -> &RateLimiter<CustomerId, R, MemoryStore<CustomerId>> {
        &self.limiter
    }

    /// Runs one billing command through the shared handle.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Refused`] with the ledger's refusal; [`GatewayError::Unavailable`].
    pub fn execute(&self, command: Command) -> Result<Receipt, GatewayError> {
        self.submit_one(command)?.map_err(GatewayError::Refused)
    }

    /// Submits one command and returns its one reply.
    fn submit_one(&self, command: Command) -> Result<Reply, LedgerError> {
        // One command in, one reply out; a missing reply is a broken handle.
        self.ledger
            .submit(vec![command])?
            .into_iter()
            .next()
            .ok_or_else(|| LedgerError::Unavailable {
                reason: "no reply".into(),
            })
    }

    /// Opens an account with 0 credits.
    ///
    /// # Errors
    ///
    /// As [`Gateway::execute`].
    pub fn open_account(&self, account: CustomerId) -> Result<Receipt, GatewayError> {
        self.execute(Command::OpenAccount { customer: account })
    }

    /// A paid top-up: the payment method is checked, the credits are added.
    ///
    /// # Errors
    ///
    /// As [`Gateway::execute`] (a refused payment method among the refusals).
    pub fn top_up(
        &self,
        id: TopUpId,
        account: CustomerId,
        amount: Money,
        method: PaymentMethod,
    ) -> Result<Receipt, GatewayError> {
        self.execute(Command::TopUp {
            id,
            customer: account,
            amount,
            method,
        })
    }

    /// Sets an account's auto top-up rule.
    ///
    /// # Errors
    ///
    /// As [`Gateway::execute`].
    pub fn set_auto_top_up(&self, account: CustomerId, rule: Option<AutoTopUpRule>) -> Result<Receipt, GatewayError> {
        self.execute(Command::SetAutoTopUp {
            customer: account,
            rule,
        })
    }

    /// Reports the outcome of an auto top-up payment.
    ///
    /// # Errors
    ///
    /// As [`Gateway::execute`].
    pub fn report_payment(&self, request: RequestId, outcome: PaymentOutcome) -> Result<Receipt, GatewayError> {
        self.execute(Command::ReportPayment { request, outcome })
    }

    /// Steps 1 and 2: the rate limit, the estimate and the hold.
    ///
    /// # Errors
    ///
    /// A [`Rejection`]: rate limited (429), insufficient credits (403), unpriceable (400).
    pub fn admit(&self, call: &Call<'_>, at: DateTime<Utc>) -> Result<Admitted, Rejection> {
        let decision: Decision = self.limiter.check(&call.account).map_err(|e| Rejection::RateLimited {
            retry_after_ns: 0,
            headers: vec![("x-error", e.to_string())],
        })?;
        let headers = self.limiter.headers(&decision);
        if !decision.allowed {
            return Err(Rejection::RateLimited {
                retry_after_ns: decision.retry_after_ns.unwrap_or(0),
                headers,
            });
        }
        let request = EstimateRequest {
            service_tier: call.service_tier,
            units: call.units,
            ..EstimateRequest::new(call.model, call.prompt_tokens, call.max_output_tokens, at)
        };
        let estimate = self.prices.estimate(&request)?;
        // A charge through the remainder carrier can be above its own cost.
        let held = Credits::new(
            estimate
                .credits
                .get()
                .saturating_add(RemainderCarrier::CHARGE_ABOVE_COST_MAX.get()),
        );
        let command = Command::Hold {
            id: call.id,
            customer: call.account,
            amount: held,
            timeout_ms: self.hold_timeout_ms,
        };
        match self.submit_one(command)? {
            Ok(_) => Ok(Admitted {
                id: call.id,
                account: call.account,
                model: estimate.model.to_string(),
                service_tier: call.service_tier,
                held,
                rate_limit_headers: headers,
            }),
            Err(Refusal::InsufficientCredits) => Err(Rejection::InsufficientCredits),
            Err(other) => Err(Rejection::Ledger(other)),
        }
    }

    /// Step 4 on success: quote the usage and capture its exact cost through the account's
    /// remainder carrier.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Pricing`] when the usage cannot be priced (the hold is released
    /// first); the ledger's refusals.
    pub fn complete(&self, admitted: &Admitted, usage: &Usage, at: DateTime<Utc>) -> Result<Completed, GatewayError> {
        let request = QuoteRequest::new(&admitted.model, usage, at).with_service_tier(admitted.service_tier);
        let quote = match self.prices.quote(&request) {
            Ok(q) => q,
            Err(e) => {
                self.fail(admitted)?;
                return Err(e.into());
            }
        };
        // The ledger charges the exact cost through the account's remainder carrier, and
        // never more than the hold.
        let capture = Command::CaptureCost {
            hold: admitted.id,
            cost: quote.exact_credits,
        };
        match self.execute(capture)? {
            Receipt::Captured {
                charged, auto_top_up, ..
            } => {
                // From here on the charge is recorded: a failure says so.
                let unreported = |source: PricingError| GatewayError::ChargedUnreported { charged, source };
                // Non-zero only when the upstream used more than the request allowed.
                let owed = quote
                    .exact_credits
                    .to_credits(paygo_credits::Rounding::Up)
                    .map_err(|e| unreported(e.into()))?;
                let shortfall = Credits::new(owed.get().saturating_sub(charged.get()).max(0));
                Ok(Completed {
                    usage: quote.usage_section(charged).map_err(unreported)?,
                    quote,
                    charged,
                    shortfall,
                    auto_top_up,
                })
            }
            other => Err(GatewayError::Unavailable(LedgerError::Unavailable {
                reason: format!("unexpected receipt {other:?}"),
            })),
        }
    }

    /// Step 4 on failure: release the hold; the call costs nothing.
    ///
    /// # Errors
    ///
    /// The ledger's refusals.
    pub fn fail(&self, admitted: &Admitted) -> Result<Receipt, GatewayError> {
        self.execute(Command::Release { hold: admitted.id })
    }
}
