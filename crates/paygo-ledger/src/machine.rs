//! The trait of what a [`SharedLedger`](crate::SharedLedger) runs and a durable store
//! journals: a deterministic state machine.

use crate::LedgerError;

/// A deterministic state machine that applies batches of commands at a given time: the
/// [`Ledger`](crate::Ledger), or a layer built on it (the billing layer of `paygo-billing`).
pub trait StateMachine: Send {
    /// What a batch holds.
    type Command: Clone + Send;
    /// The reply to each command.
    type Reply: Clone + Send;
    /// The most commands one batch may hold.
    const BATCH_MAX: usize;

    /// Applies a batch at `now_ns`, one reply per command, in order.
    ///
    /// # Errors
    ///
    /// When the batch as a whole cannot be applied (too large); nothing is applied then.
    fn apply_batch(&mut self, now_ns: u64, commands: &[Self::Command]) -> Result<Vec<Self::Reply>, LedgerError>;
}
