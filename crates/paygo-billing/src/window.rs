//! The idempotency window: time-ordered ids, forgotten replies, compaction.

use paygo_ledger::TransferId;

use crate::command::{Command, Refusal};
use crate::machine::{Billing, COMPACT_MIN, HoldStatus, IdKind};

impl Billing {
    /// A new id from `counter` at `now_ns`: the counter itself without a window,
    /// time-ordered with one.
    pub(crate) fn mint(&self, now_ns: u64, counter: u128) -> u128 {
        match self.config.id_window {
            None => counter,
            Some(_) => TransferId::from_time_ns(now_ns, counter).0,
        }
    }

    pub(crate) fn next_transfer_id(&mut self, now_ns: u64) -> TransferId {
        let id = TransferId(self.mint(now_ns, self.next_transfer));
        self.next_transfer += 1;
        id
    }

    /// With a window: ids whose time is before this are forgotten (the ledger's, which
    /// [`Billing::execute`] moves on first).
    pub(crate) fn forgotten_before_ns(&self) -> u128 {
        u128::from(self.ledger.forgotten_before_ns())
    }

    /// Whether the hold is open: not captured or released, and its pending transfers
    /// still pending in the ledger (not expired).
    pub(crate) fn hold_open(&self, id: u128) -> bool {
        self.holds.get(&id).is_some_and(|h| {
            h.status == HoldStatus::Open
                && h.parts.first().is_some_and(|(pending, _, _)| {
                    self.ledger
                        .transfer(*pending)
                        .is_some_and(|t| t.status == Some(paygo_ledger::PendingStatus::Pending))
                })
        })
    }

    /// Whether a reply or hold keyed by `id` is still part of the state: always without a
    /// window; with one, if the id is not forgotten, or it is an open hold or an
    /// outstanding payment request.
    pub(crate) fn is_kept(&self, id: u128) -> bool {
        self.config.id_window.is_none()
            || TransferId(id).time_ns() >= self.forgotten_before_ns()
            || self.hold_open(id)
            || self.requests.contains_key(&id)
    }

    /// With a window, refuses a command whose id is forgotten or too far ahead.
    pub(crate) fn window_check(&self, now_ns: u64, command: &Command) -> Result<(), Refusal> {
        let Some(window) = self.config.id_window else {
            return Ok(());
        };
        let id = match *command {
            Command::OpenAccount { .. } | Command::SetAutoTopUp { .. } => return Ok(()),
            Command::TopUp { id, .. } => id.0,
            Command::Hold { id, .. } => id.0,
            Command::GrantBonus { id, .. } => id.0,
            Command::ReversePayment { id, .. } => id.0,
            Command::Capture { hold, .. }
            | Command::CaptureCost { hold, .. }
            | Command::Release { hold }
            | Command::ExtendHold { hold, .. } => hold.0,
            Command::ReportPayment { request, .. } => request.0,
        };
        if !self.is_kept(id) {
            return Err(Refusal::IdOlderThanWindow);
        }
        if TransferId(id).time_ns() > u128::from(now_ns) + u128::from(window.ahead_ns) {
            return Err(Refusal::IdAheadOfWindow);
        }
        Ok(())
    }

    /// With a window ([`BillingConfig::id_window`](crate::BillingConfig::id_window)): drops forgotten replies and closed
    /// holds from memory now, and compacts the ledger underneath ([`Ledger::compact`](paygo_ledger::Ledger::compact)).
    /// Only memory changes, never a reply or the state. The billing layer does this on
    /// its own as it grows; nothing happens without a window.
    pub fn compact(&mut self) {
        if self.config.id_window.is_none() {
            return;
        }
        self.ledger.compact();
        // Capacity is kept: memory stays where the window's peak put it.
        let replies: Vec<(IdKind, u128)> = self
            .replies
            .keys()
            .filter(|(_, id)| !self.is_kept(*id))
            .copied()
            .collect();
        for key in replies {
            self.replies.remove(&key);
        }
        let holds: Vec<u128> = self.holds.keys().filter(|id| !self.is_kept(**id)).copied().collect();
        for id in holds {
            self.holds.remove(&id);
        }
        self.compact_at_len = (self.replies.len() + self.holds.len())
            .saturating_mul(2)
            .max(COMPACT_MIN);
    }
}
