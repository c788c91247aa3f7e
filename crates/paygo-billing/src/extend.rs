//! Extending a hold: a long call (a stream) keeps its credits held past the first timeout.

use paygo_ledger::{Event, EventResult, Transfer};

use crate::chart::{REVENUE, codes};
use crate::command::{Receipt, Refusal, Reply};
use crate::machine::{Billing, HoldStatus};

/// Nanoseconds in a millisecond.
const NS_PER_MS: u64 = 1_000_000;

impl Billing {
    /// See [`Command::ExtendHold`](crate::Command::ExtendHold).
    pub(crate) fn extend_now(&mut self, now_ns: u64, id: u128, timeout_ms: u64) -> Reply {
        let hold = self.holds.get(&id).ok_or(Refusal::UnknownHold)?;
        match hold.status {
            HoldStatus::Captured => return Err(Refusal::HoldCaptured),
            HoldStatus::Released => return Err(Refusal::HoldReleased),
            HoldStatus::Open => {}
        }
        if timeout_ms == 0 || timeout_ms > self.config.hold_timeout_max_ms {
            return Err(Refusal::InvalidTimeout);
        }
        if !self.hold_open(id) {
            return Err(Refusal::HoldExpired);
        }
        let parts = hold.parts.clone();
        let mut events = Vec::with_capacity(parts.len() * 2);
        let mut renewed = Vec::with_capacity(parts.len());
        for (pending, source, amount) in parts {
            let void = Transfer::void(self.next_transfer_id(now_ns), pending)
                .with_code(codes::USAGE)
                .with_user_data(id);
            let again = self.next_transfer_id(now_ns);
            let hold_again = Transfer::pending(again, source, REVENUE, amount, timeout_ms)
                .with_code(codes::USAGE)
                .with_user_data(id);
            events.push(Event::CreateTransfer(void));
            events.push(Event::CreateTransfer(hold_again));
            renewed.push((again, source, amount));
        }
        if let Some(bad) = self.apply_chain(now_ns, &mut events) {
            return Err(match bad {
                EventResult::PendingTransferExpired | EventResult::PendingIdOlderThanWindow => Refusal::HoldExpired,
                other => Refusal::Ledger(other),
            });
        }
        if let Some(h) = self.holds.get_mut(&id) {
            h.parts = renewed;
        }
        // The ledger stamps each transfer at the batch time or a few nanoseconds after, and
        // its timeout runs from its stamp: the hold expires at this time or just after.
        Ok(Receipt::HoldExtended {
            until_ns: now_ns.saturating_add(timeout_ms.saturating_mul(NS_PER_MS)),
        })
    }
}
