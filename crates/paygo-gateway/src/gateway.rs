//! [`Gateway`]: the flow of one call, over any [`BillingStore`] and any rate-limit
//! [`AsyncStore`], built from [`GatewayOptions`].

use std::path::Path;

use chrono::{DateTime, Utc};
use paygo_billing::{
    AutoTopUpRule, Balance, BillingConfig, BillingStore, Command, CustomerId, EmbeddedStore, PaymentMethod,
    PaymentOutcome, Receipt, Refusal, Reply, RequestId, TopUpId,
};
use paygo_credits::{Credits, ExactCredits, Money, RemainderCarrier};
use paygo_ledger::durable::OpenOptions;
use paygo_pricing::{EstimateRequest, PriceBook, Quote, QuoteRequest, Usage};
use paygo_ratelimit::{AsyncPlanLimiter, AsyncStore, InProcessStore, Plan, RateLimitError, Unit};
use paygo_time::Clock;

use crate::call::{Admitted, Call, Completed};
use crate::error::{GatewayError, Rejection};

/// How a gateway is set up.
#[derive(Debug, Clone)]
pub struct GatewayOptions<C> {
    /// The price book calls are estimated and charged with.
    pub prices: PriceBook,
    /// How long a hold lives without a capture or release, in milliseconds (a call that
    /// runs longer must extend it). Default 600,000 (10 minutes).
    pub hold_timeout_ms: u64,
    /// The gateway's clock: the time each call is priced at (read once per call). The
    /// stores own their own time (an in-process store is usually given the same clock).
    pub clock: C,
}

impl<C> GatewayOptions<C> {
    /// Options with `prices`, `clock` and the default hold timeout.
    pub fn new(prices: PriceBook, clock: C) -> GatewayOptions<C> {
        GatewayOptions {
            prices,
            hold_timeout_ms: 600_000,
            clock,
        }
    }
}

/// The gateway: what an AI API gateway does around each call, with nothing decided here:
/// each step calls the crate that owns it (prices, limits, balances).
///
/// 1. [`admit`](Gateway::admit): estimate the most the call can cost, **rate limit** the
///    account by its plan (one request, and the estimate's tokens on token limits, all or
///    nothing), and **hold** the estimate (no balance: refused, 403).
/// 2. The upstream call runs (not here: `paygo-http` forwards it).
/// 3. [`complete`](Gateway::complete): **quote** the actual usage at the prices of the
///    admission and **capture** its exact cost through the account's remainder carrier
///    (the rest of the hold is released), and give the token limits back what the call did
///    not use; or [`fail`](Gateway::fail): release the hold (a failed call costs
///    nothing); or [`settle_without_usage`](Gateway::settle_without_usage) when the
///    upstream never said what it used.
///
/// Every method is async and its future is `Send`; the gateway itself is `Send + Sync`, to
/// share across a server's tasks.
#[derive(Debug)]
pub struct Gateway<B, L, C> {
    prices: PriceBook,
    billing: B,
    limiter: AsyncPlanLimiter<CustomerId, L>,
    token_limits: bool,
    clock: C,
    hold_timeout_ms: u64,
}

/// The gateway with everything in this process: the embedded billing store and the
/// in-process rate-limit store, on one clock.
pub type InProcessGateway<C> = Gateway<EmbeddedStore<C>, InProcessStore<CustomerId, C>, C>;

impl<C: Clock + Clone + 'static> InProcessGateway<C> {
    /// A gateway in memory (nothing survives the process): `plan` is every account's plan
    /// unless [`Gateway::set_plan`] gives it another.
    ///
    /// # Errors
    ///
    /// [`paygo_billing::BillingError::Unavailable`] when the billing writer thread cannot
    /// start.
    pub fn in_memory(options: GatewayOptions<C>, plan: &Plan) -> Result<InProcessGateway<C>, GatewayError> {
        let billing = EmbeddedStore::in_memory(BillingConfig::default(), options.clock.clone())?;
        let limits = InProcessStore::with_clock(plan, options.clock.clone());
        Ok(Gateway::new(options, billing, limits))
    }

    /// A gateway whose billing is durable in `dir` (see [`EmbeddedStore::open`]).
    ///
    /// # Errors
    ///
    /// [`paygo_billing::BillingError::Unavailable`] when the store cannot be opened
    /// (locked by another process, damaged, foreign).
    pub fn durable(
        options: GatewayOptions<C>,
        plan: &Plan,
        dir: impl AsRef<Path>,
        billing: BillingConfig,
    ) -> Result<InProcessGateway<C>, GatewayError> {
        let store = EmbeddedStore::open(dir, billing, options.clock.clone(), &OpenOptions::default())?;
        let limits = InProcessStore::with_clock(plan, options.clock.clone());
        Ok(Gateway::new(options, store, limits))
    }
}

/// `at_ns` as a date-time (saturating at the year 2262, beyond which `u64` nanoseconds
/// still count but `chrono`'s nanoseconds do not).
fn date_time(at_ns: u64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(i64::try_from(at_ns).unwrap_or(i64::MAX))
}

/// The one reply of a one-command submission.
fn single(replies: Vec<Reply>) -> Result<Reply, GatewayError> {
    let n = replies.len();
    let mut replies = replies.into_iter();
    match (replies.next(), n) {
        (Some(reply), 1) => Ok(reply),
        _ => Err(GatewayError::Contract {
            what: format!("{n} replies to one command"),
        }),
    }
}

impl<B: BillingStore, L: AsyncStore<CustomerId>, C: Clock> Gateway<B, L, C> {
    /// A gateway over a billing store and a rate-limit store (whose limits are the default
    /// plan's policies).
    pub fn new(options: GatewayOptions<C>, billing: B, limits: L) -> Gateway<B, L, C> {
        let token_limits = limits.limits().iter().any(|l| l.unit == Unit::Tokens);
        Gateway {
            prices: options.prices,
            billing,
            limiter: AsyncPlanLimiter::new(limits),
            token_limits,
            clock: options.clock,
            hold_timeout_ms: options.hold_timeout_ms,
        }
    }

    /// The price book.
    pub fn prices(&self) -> &PriceBook {
        &self.prices
    }

    /// The billing store.
    pub fn billing(&self) -> &B {
        &self.billing
    }

    /// The rate limiter.
    pub fn limiter(&self) -> &AsyncPlanLimiter<CustomerId, L> {
        &self.limiter
    }

    /// The gateway's clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// How long a hold lives without a capture, release or extension, in milliseconds.
    pub fn hold_timeout_ms(&self) -> u64 {
        self.hold_timeout_ms
    }

    /// Runs one billing command.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Refused`] with the billing layer's refusal;
    /// [`GatewayError::Billing`] when the store is unavailable.
    pub async fn execute(&self, command: Command) -> Result<Receipt, GatewayError> {
        self.submit_one(command).await?.map_err(GatewayError::Refused)
    }

    async fn submit_one(&self, command: Command) -> Result<Reply, GatewayError> {
        single(self.billing.submit(vec![command]).await?)
    }

    /// Opens an account with 0 credits (there is no free plan).
    ///
    /// # Errors
    ///
    /// As [`Gateway::execute`].
    pub async fn open_account(&self, account: CustomerId) -> Result<Receipt, GatewayError> {
        self.execute(Command::OpenAccount { customer: account }).await
    }

    /// A paid top-up: the payment method is checked, the credits are added. (With VAT and
    /// an invoice: [`crate::TopUps`].)
    ///
    /// # Errors
    ///
    /// As [`Gateway::execute`] (a refused payment method among the refusals).
    pub async fn top_up(
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
        .await
    }

    /// Sets or removes an account's auto top-up rule.
    ///
    /// # Errors
    ///
    /// As [`Gateway::execute`].
    pub async fn set_auto_top_up(
        &self,
        account: CustomerId,
        rule: Option<AutoTopUpRule>,
    ) -> Result<Receipt, GatewayError> {
        self.execute(Command::SetAutoTopUp {
            customer: account,
            rule,
        })
        .await
    }

    /// Reports the outcome of an auto top-up payment.
    ///
    /// # Errors
    ///
    /// As [`Gateway::execute`].
    pub async fn report_payment(&self, request: RequestId, outcome: PaymentOutcome) -> Result<Receipt, GatewayError> {
        self.execute(Command::ReportPayment { request, outcome }).await
    }

    /// The account's balance now.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Billing`]: an unknown account, or the store unavailable.
    pub async fn balance(&self, account: CustomerId) -> Result<Balance, GatewayError> {
        Ok(self.billing.balance(account).await?)
    }

    /// Puts an account on `plan` (its policies must be limits of the rate-limit store);
    /// its current usage is carried into the new quotas.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::NoSuchPolicy`] for a policy the store has no limit for; the
    /// store's errors.
    pub async fn set_plan(&self, account: CustomerId, plan: &Plan) -> Result<(), RateLimitError> {
        self.limiter.set_key_plan(&account, plan).await
    }

    /// Steps 1 and 2: the estimate, the rate limit and the hold. The time is read once;
    /// the call is charged at the prices in force then.
    ///
    /// # Errors
    ///
    /// A [`Rejection`]: unpriceable (400/404, before anything is counted), rate limited
    /// (429), insufficient credits (403), another refusal of the billing layer, or a store
    /// unavailable (503). A rejection after the rate limit gives its tokens back.
    pub async fn admit(&self, call: &Call<'_>) -> Result<Admitted, Rejection> {
        let at_ns = self.clock.now_ns();
        let request = EstimateRequest {
            service_tier: call.service_tier,
            units: call.units,
            ..EstimateRequest::new(call.model, call.prompt_tokens, call.max_output_tokens, date_time(at_ns))
        };
        let estimate = self.prices.estimate(&request)?;
        let reserved_tokens = call.prompt_tokens.saturating_add(call.max_output_tokens);
        let checked = self.limiter.check_call(&call.account, reserved_tokens).await?;
        let headers: Vec<(String, String)> = self
            .limiter
            .headers(&checked.value)
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        if !checked.value.allowed {
            return Err(Rejection::RateLimited {
                retry_after_ns: checked.value.retry_after_ns().unwrap_or(0),
                headers,
            });
        }
        // A charge through the remainder carrier can be up to one credit above its cost.
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
        let refusal = match self.submit_one(command).await {
            Ok(Ok(_)) => {
                return Ok(Admitted {
                    id: call.id,
                    account: call.account,
                    model: estimate.model.to_string(),
                    service_tier: call.service_tier,
                    prompt_tokens: call.prompt_tokens,
                    units: call.units.cloned(),
                    held,
                    reserved_tokens,
                    at_ns,
                    rate_limit_headers: headers,
                });
            }
            Ok(Err(Refusal::InsufficientCredits)) => Rejection::InsufficientCredits,
            Ok(Err(other)) => Rejection::Refused(other),
            Err(GatewayError::Billing(e)) => Rejection::Billing(e),
            // A store that answers one command with another number of replies.
            Err(other) => Rejection::Billing(paygo_billing::BillingError::Unavailable {
                reason: other.to_string(),
            }),
        };
        // The call will not run: its tokens go back (the request itself stays counted).
        // Should that fail, the limit is only stricter than it should be for a while.
        let _ = self.give_back_tokens(&call.account, reserved_tokens).await;
        Err(refusal)
    }

    /// Gives `tokens` back to the account's token limits.
    async fn give_back_tokens(&self, account: &CustomerId, tokens: u64) -> Result<(), RateLimitError> {
        self.adjust_tokens(account, -i64::try_from(tokens).unwrap_or(i64::MAX))
            .await
    }

    async fn adjust_tokens(&self, account: &CustomerId, delta: i64) -> Result<(), RateLimitError> {
        if self.token_limits && delta != 0 {
            self.limiter.adjust_tokens(account, delta).await?;
        }
        Ok(())
    }

    /// Step 3 on success: quote the usage at the admission's prices and capture its exact
    /// cost through the account's remainder carrier; the token limits are adjusted to the
    /// tokens used. A retry (the same admitted call and usage) answers the same and charges
    /// nothing more.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Pricing`] when the usage cannot be priced (the hold is released
    /// first: the call is not charged, and the caller learns why); the billing layer's
    /// refusals ([`Refusal::HoldExpired`] if the call outlived its hold); the store's
    /// errors.
    pub async fn complete(&self, admitted: &Admitted, usage: &Usage) -> Result<Completed, GatewayError> {
        let request = QuoteRequest::new(&admitted.model, usage, date_time(admitted.at_ns))
            .with_service_tier(admitted.service_tier);
        let quote = match self.prices.quote(&request) {
            Ok(quote) => quote,
            Err(e) => {
                self.fail(admitted).await?;
                return Err(e.into());
            }
        };
        let used = usage
            .total_tokens
            .unwrap_or_else(|| usage.prompt_tokens.saturating_add(usage.completion_tokens));
        let cost = quote.exact_credits;
        let completed = self.capture(admitted, quote, cost).await?;
        let delta = i128::from(used) - i128::from(admitted.reserved_tokens);
        let delta = i64::try_from(delta).unwrap_or(if delta < 0 { i64::MIN } else { i64::MAX });
        // The charge is recorded whatever the limiter says: a failed adjustment leaves the
        // token limit stricter (or, for a call that used more than it reserved, laxer)
        // for one window, never a wrong charge.
        let _ = self.adjust_tokens(&admitted.account, delta).await;
        Ok(completed)
    }

    /// Captures `cost` for `admitted` through the remainder carrier, never more than the
    /// hold, and reports it with `quote`.
    async fn capture(&self, admitted: &Admitted, quote: Quote, cost: ExactCredits) -> Result<Completed, GatewayError> {
        let receipt = self
            .execute(Command::CaptureCost {
                hold: admitted.id,
                cost,
            })
            .await?;
        let Receipt::Captured {
            charged,
            shortfall,
            auto_top_up,
            ..
        } = receipt
        else {
            return Err(GatewayError::Contract {
                what: format!("a capture answered {receipt:?}"),
            });
        };
        let usage = quote
            .usage_section(charged)
            .map_err(|source| GatewayError::ChargedUnreported { charged, source })?;
        Ok(Completed {
            quote,
            charged,
            shortfall,
            usage,
            auto_top_up,
        })
    }

    /// Step 3 on failure (an upstream error, a timeout, a refused request): release the
    /// hold, and give the reserved tokens back. The call costs nothing. A retry answers
    /// the same.
    ///
    /// # Errors
    ///
    /// The billing layer's refusals ([`Refusal::HoldCaptured`] for a call already
    /// charged); the store's errors.
    pub async fn fail(&self, admitted: &Admitted) -> Result<(), GatewayError> {
        self.execute(Command::Release { hold: admitted.id }).await?;
        let _ = self.give_back_tokens(&admitted.account, admitted.reserved_tokens).await;
        Ok(())
    }

    /// Keeps a long call's hold alive (a stream that outlives the hold's timeout): the hold
    /// is renewed for the gateway's hold timeout from now, with the same credits. Call it
    /// before the hold expires (for example every half timeout while a stream runs);
    /// returns when the hold now expires, in nanoseconds of the billing store's clock.
    ///
    /// # Errors
    ///
    /// [`Refusal::HoldExpired`] when it expired already (the call can no longer be
    /// charged: its credits went back), [`Refusal::HoldCaptured`] /
    /// [`Refusal::HoldReleased`] for a finished call; the store's errors.
    pub async fn extend_hold(&self, admitted: &Admitted) -> Result<u64, GatewayError> {
        let command = Command::ExtendHold {
            hold: admitted.id,
            timeout_ms: self.hold_timeout_ms,
        };
        match self.execute(command).await? {
            Receipt::HoldExtended { until_ns } => Ok(until_ns),
            other => Err(GatewayError::Contract {
                what: format!("an extension answered {other:?}"),
            }),
        }
    }

    /// Step 3 when the upstream ran but never said what it used (a stream cut before its
    /// usage chunk, a response without usage). The documented rule (`docs/gateway.md`):
    /// charge **what the request itself determines** — its prompt tokens and the non-token
    /// units it declared, at the admission's prices, with no output tokens — and at least
    /// one credit (something was produced), never more than the hold. The reserved tokens
    /// stay counted (the output is unknown).
    ///
    /// # Errors
    ///
    /// As [`Gateway::complete`].
    pub async fn settle_without_usage(&self, admitted: &Admitted) -> Result<Completed, GatewayError> {
        let mut usage = admitted.units.clone().unwrap_or_default();
        usage.prompt_tokens = admitted.prompt_tokens;
        usage.completion_tokens = 0;
        usage.total_tokens = None;
        let request = QuoteRequest::new(&admitted.model, &usage, date_time(admitted.at_ns))
            .with_service_tier(admitted.service_tier);
        // The request was priced when it was admitted, so its own part prices too; an
        // error here is reported, and the hold stays for the caller to decide.
        let quote = self.prices.quote(&request)?;
        // Something was produced: at least one credit.
        let cost = quote.exact_credits.max(ExactCredits::from(Credits::new(1)));
        self.capture(admitted, quote, cost).await
    }
}
