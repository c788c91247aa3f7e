//! The flow of one AI API call through paygo, without HTTP: rate limit, estimate and hold
//! before the call; quote and capture (or release) after it; over any billing store
//! ([`paygo_billing::BillingStore`]) and any rate-limit store
//! ([`paygo_ratelimit::AsyncStore`]).
//!
//! ```
//! use paygo_billing::{block_on, CardKind, CustomerId, HoldId, PaymentMethod, TopUpId};
//! use paygo_credits::{Credits, Money};
//! use paygo_gateway::{Call, Gateway, GatewayOptions, Rejection};
//! use paygo_pricing::{PriceBook, Usage, DEFAULT_PRICES};
//! use paygo_ratelimit::Plan;
//! use paygo_time::ManualClock;
//!
//! let options = GatewayOptions::new(PriceBook::from_json(DEFAULT_PRICES)?, ManualClock::new(1_764_000_000_000_000_000));
//! let gateway = Gateway::in_memory(options, &Plan::pay_as_you_go())?; // 18,000 calls an hour
//! let account = CustomerId(42);
//! block_on(async {
//!     gateway.open_account(account).await?;
//!     let call = Call::tokens(HoldId(1), account, "gpt-4o", 1_000, 500);
//!     // No balance: refused before the upstream is called (403).
//!     assert!(matches!(gateway.admit(&call).await, Err(Rejection::InsufficientCredits)));
//!     let card = PaymentMethod::Card(CardKind::Credit);
//!     gateway.top_up(TopUpId(7), account, Money::usd("10.00".parse()?), card).await?;
//!     let admitted = gateway.admit(&Call { id: HoldId(2), ..call }).await?; // limit, estimate, hold
//!     // ... the upstream call runs; its usage comes back ...
//!     let usage: Usage = serde_json::from_str(r#"{"prompt_tokens": 1000, "completion_tokens": 120}"#)?;
//!     let done = gateway.complete(&admitted, &usage).await?;
//!     assert_eq!(done.charged, Credits::new(7_400)); // 1,000 × $2.50/M + 120 × $10/M = $0.0037
//!     assert_eq!(gateway.balance(account).await?.available, Credits::new(20_000_000 - 7_400));
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`Gateway`] (built from [`GatewayOptions`]): `admit`, `complete`, `fail`,
//!   `settle_without_usage`, and the account operations (`open_account`, `top_up`,
//!   `balance`, `set_plan`, auto top-up). [`InProcessGateway`] has both stores in this
//!   process.
//! - [`Call`], [`Admitted`], [`Completed`]; [`Rejection`] and [`GatewayError`], each with
//!   its HTTP [`Status`].
//! - [`TopUps`]: a payment reported → credits → VAT determination → invoice.
//!
//! Nothing here decides a price, a balance or a limit: each step calls the crate that owns
//! it. `docs/gateway.md` describes the flow, the time story and the rules for calls
//! without usage.

mod call;
mod error;
mod gateway;
mod topups;

pub use call::{Admitted, Call, Completed};
pub use error::{GatewayError, Rejection, Status};
pub use gateway::{Gateway, GatewayOptions, InProcessGateway};
pub use topups::{Buyer, FxRates, Invoiced, Joint, JointTopUps, PaidFor, PaidTopUp, TopUpOptions, TopUps, VatRefund};
