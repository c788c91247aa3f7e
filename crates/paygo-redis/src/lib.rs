//! paygo's shared rate-limit store on Redis: [`RedisStore`], an
//! [`AsyncStore`](paygo_ratelimit::AsyncStore) whose limits every gateway replica shares,
//! with the in-process store's decisions (GCRA with the rolling-window promise, weighted
//! checks all or nothing, reserve-then-adjust, per-key quotas and runtime changes that
//! keep the promise), computed by one Lua script ([`SCRIPT`]) at the time of the Redis
//! server (`TIME`).
//!
//! ```
//! use paygo_ratelimit::{AsyncPlanLimiter, Plan};
//! use paygo_redis::{RedisOptions, RedisStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let Ok(url) = std::env::var("PAYGO_TEST_REDIS_URL") else {
//!     eprintln!("skipped: PAYGO_TEST_REDIS_URL is not set");
//!     return Ok(());
//! };
//! let store: RedisStore<u64> = RedisStore::open(RedisOptions::new(url, "paygo-doc"), &Plan::pay_as_you_go()).await?;
//! let limiter = AsyncPlanLimiter::new(store);
//! let account = std::process::id().into(); // a key of this run's own
//! let checked = limiter.check_call(&account, 0).await?;
//! assert!(checked.value.allowed);
//! assert_eq!(checked.value.decisions[0].remaining, 59); // 60 at once, one taken
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(run())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - **The script** is loaded once and called with `EVALSHA` (loaded again after
//!   `NOSCRIPT`); each call carries a batch of operations, gathered from concurrent
//!   callers on one multiplexed connection ([`RedisOptions::pipeline_depth`],
//!   [`RedisOptions::batch_max`]).
//! - **Exact integers**: Lua numbers are doubles; the script keeps every value within
//!   2^53 by counting time relative to now and refusing quotas whose capacity exceeds
//!   [`CAPACITY_NS_MAX`] (2^52 ns, about 52 days) with
//!   [`RateLimitError::QuotaExceedsStore`](paygo_ratelimit::RateLimitError::QuotaExceedsStore).
//! - **Failure policy**: when Redis does not answer within [`RedisOptions::timeout_ms`], a
//!   check is admitted ([`FailurePolicy::Open`], the default) or refused
//!   ([`FailurePolicy::Closed`]); [`RedisStore::stats`] counts it, a log line says when it
//!   starts and ends, and the connection comes back by itself.
//!
//! `docs/ratelimit.md` ("The shared store on Redis") has the design, the failure policy
//! and the benchmark figures.

mod either;
mod error;
mod store;

pub use either::LimiterStore;
pub use error::RedisStoreError;
pub use store::{CAPACITY_NS_MAX, FailurePolicy, LogSink, RedisOptions, RedisStats, RedisStore, SCRIPT};
