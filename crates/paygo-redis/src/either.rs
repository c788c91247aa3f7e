//! [`LimiterStore`]: the in-process store or the Redis one, chosen when a server starts.

use std::fmt;
use std::hash::Hash;

use paygo_ratelimit::{AsyncStore, Decision, InProcessStore, LimitSpec, MultiDecision, Quota, RateLimitError, Stamped};
use paygo_time::{Clock, SystemClock};

use crate::store::RedisStore;

/// A rate-limit store chosen at startup (`examples/server.rs --limiter`): one type for a
/// server whose limits are in process or shared on Redis.
#[derive(Debug)]
#[non_exhaustive]
pub enum LimiterStore<K, C = SystemClock> {
    /// This process's own limits ([`InProcessStore`]).
    InProcess(InProcessStore<K, C>),
    /// Limits shared by every replica on one Redis ([`RedisStore`]).
    Redis(RedisStore<K>),
}

macro_rules! both {
    ($self:ident, $store:ident => $body:expr) => {
        match $self {
            LimiterStore::InProcess($store) => $body,
            LimiterStore::Redis($store) => $body,
        }
    };
}

impl<K, C> AsyncStore<K> for LimiterStore<K, C>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Display,
    C: Clock + Clone,
{
    fn limits(&self) -> &[LimitSpec] {
        both!(self, s => s.limits())
    }

    async fn check(&self, key: &K, weights: &[u64]) -> Result<Stamped<MultiDecision>, RateLimitError> {
        both!(self, s => s.check(key, weights).await)
    }

    async fn adjust(&self, key: &K, deltas: &[i64]) -> Result<Stamped<Vec<Decision>>, RateLimitError> {
        both!(self, s => s.adjust(key, deltas).await)
    }

    async fn quota_for(&self, key: &K, limit: usize) -> Result<Quota, RateLimitError> {
        both!(self, s => s.quota_for(key, limit).await)
    }

    async fn set_quota(&self, limit: usize, quota: Quota) -> Result<Stamped<()>, RateLimitError> {
        both!(self, s => s.set_quota(limit, quota).await)
    }

    async fn set_key_quota(&self, key: &K, limit: usize, quota: Quota) -> Result<Stamped<()>, RateLimitError> {
        both!(self, s => s.set_key_quota(key, limit, quota).await)
    }

    async fn remove_key_quota(&self, key: &K, limit: usize) -> Result<Stamped<Option<Quota>>, RateLimitError> {
        both!(self, s => s.remove_key_quota(key, limit).await)
    }

    async fn evict_full(&self) -> Result<usize, RateLimitError> {
        both!(self, s => s.evict_full().await)
    }
}
