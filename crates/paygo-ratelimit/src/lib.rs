//! Keyed rate limits for paygo, the billing libraries of a pay-as-you-go AI model API.
//!
//! A GCRA (generic cell rate algorithm) limiter: each key's whole state is one atomic
//! 64-bit word, its theoretical arrival time, kept in a sharded map. Quotas are data, can
//! differ per key and change at runtime (each key's state is carried into the new quota,
//! so that a window that contains a change admits at most what the more generous quota
//! allows); several limits can apply to one request (a per-second burst, the hourly
//! quota, tokens per minute), all or nothing; weighted checks reserve tokens before a call
//! and adjust after it. Every decision carries the
//! limit, the remaining units, the reset time and the retry-after, and renders the IETF
//! `RateLimit` headers and the OpenAI-style `x-ratelimit-*` headers.
//!
//! [`Quota::new`] keeps a **rolling-window promise**: no window of one period ever
//! admits more than the limit, a fresh key's first period included. The Pay As You Go
//! plan allows 18,000 requests in any rolling hour, 60 at once (`docs/ratelimit.md`
//! derives the bound and the choice).
//!
//! ```
//! use paygo_ratelimit::{Clock, ManualClock, MemoryStore, NS_PER_HOUR, Plan, RateLimiter};
//!
//! let clock = ManualClock::new(0);
//! let payg = Plan::pay_as_you_go().policies.remove(0);
//! let limiter: RateLimiter<u64, _> = RateLimiter::with_clock_and_store(payg, clock.clone(), MemoryStore::new());
//!
//! // A fresh account sends as fast as it can for an hour: exactly 18,000 get through.
//! let mut admitted = 0;
//! while clock.now_ns() < NS_PER_HOUR {
//!     let decision = limiter.check(&42)?;
//!     if decision.allowed {
//!         admitted += 1;
//!     } else {
//!         // retry_after is exact: waiting that long always succeeds.
//!         clock.advance_ns(decision.retry_after_ns.unwrap_or(1));
//!     }
//! }
//! assert_eq!(admitted, 18_000);
//! # Ok::<(), paygo_ratelimit::RateLimitError>(())
//! ```
//!
//! # The types
//!
//! - [`Quota`]: a limit per period with a burst; [`Quota::new`] keeps the rolling-window
//!   promise, [`Quota::without_window_bound`] is the governor-style opt-out.
//! - [`Policy`] (a named quota and its [`Unit`]) and [`Plan`] (the policies that apply
//!   together).
//! - [`DirectLimiter`]: one limit, no key. [`RateLimiter`]: one limit per key, with
//!   per-key overrides and runtime changes. [`MultiLimiter`]: several limits per key.
//! - [`Decision`] and [`MultiDecision`]; [`headers`] renders them.
//! - [`Store`]: where keyed state lives, in the process. [`FlatStore`] is the store for
//!   integer ids and strings (lock-free checks); [`MemoryStore`] takes any hashable key (a
//!   sharded map).
//! - [`AsyncStore`]: the asynchronous seam where the store reads the time itself (a
//!   shared Redis store uses `TIME`): several limits of one key all or nothing, with
//!   weights, reserve-then-adjust, per-key and class quota changes, every answer
//!   [`Stamped`] with the store's time. [`InProcessStore`] implements it over the
//!   synchronous stores; [`AsyncPlanLimiter`] is what a gateway calls. With the `testing`
//!   feature, `testing` holds its contract as a test suite any implementation runs.
//! - [`Clock`], with [`SystemClock`] and [`ManualClock`]: re-exported from `paygo-time`,
//!   the workspace's one story of time (nanoseconds since the Unix epoch).
//! - [`gcra`]: the step functions every store computes with, public so that a store in
//!   another language (a Redis Lua script) can be tested against them.
//!
//! Everything serializes with serde (always on); quotas are validated when read.

mod async_store;
mod error;
mod flat;
pub mod gcra;
mod hash;
pub mod headers;
mod limiter;
mod quota;
mod requota;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
// The reference model `testing` shares with the tests names the crate by its name.
#[cfg(feature = "testing")]
extern crate self as paygo_ratelimit;

pub use async_store::{AsyncPlanLimiter, AsyncStore, InProcessStore, LimitSpec, Stamped};
pub use error::RateLimitError;
pub use flat::{FlatKey, FlatStore, FlatStoreOptions};
pub use gcra::Decision;
pub use hash::{FoldBuildHasher, FoldHasher};
pub use limiter::{DirectLimiter, EVICT_GRACE_NS, MultiDecision, MultiLimiter, RateLimiter};
pub use paygo_time::{Clock, ManualClock, SystemClock};
pub use quota::{
    CAPACITY_NS_MAX, NS_PER_HOUR, NS_PER_MINUTE, NS_PER_SECOND, PAY_AS_YOU_GO_BURST, PAY_AS_YOU_GO_LIMIT, Plan, Policy,
    PolicyName, Quota, QuotaOptions, Unit,
};
pub use store::{MemoryStore, MemoryStoreOptions, SHARDS_MAX, Store};
