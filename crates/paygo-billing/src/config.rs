//! Settings of the billing layer.

use paygo_credits::CreditRate;
use paygo_ledger::IdWindow;
use serde::{Deserialize, Serialize};

/// Settings of the billing layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingConfig {
    /// USD to credits (default 2,000,000 per dollar).
    pub credit_rate: CreditRate,
    /// Whether bonus grants are allowed (off: they are paused).
    pub bonus_enabled: bool,
    /// The longest hold timeout, in milliseconds.
    pub hold_timeout_max_ms: u64,
    /// The idempotency window (none by default: every reply is kept for ever). With one,
    /// command ids must be time-ordered ([`TransferId::from_time`](paygo_ledger::TransferId::from_time): `UUIDv7` or `ULID` read as
    /// a `u128`) and times nanoseconds since the Unix epoch; replies and closed holds
    /// older than the window leave memory, a retry that late is refused with
    /// [`Refusal::IdOlderThanWindow`](crate::Refusal::IdOlderThanWindow) (never applied twice), and the ledger underneath gets
    /// the same window. Used when the billing layer is created; a durable store keeps the
    /// window it was created with.
    pub id_window: Option<IdWindow>,
}

impl Default for BillingConfig {
    fn default() -> BillingConfig {
        BillingConfig {
            credit_rate: CreditRate::default(),
            bonus_enabled: false,
            hold_timeout_max_ms: 3_600_000,
            id_window: None,
        }
    }
}
