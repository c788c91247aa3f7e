//! The billing layer as a durable machine: its journal and snapshots on the ledger's
//! storage (`paygo_ledger::durable`), and the entry point that opens it in a directory.

use std::path::Path;

use paygo_ledger::durable::codec::{Reader, bad};
use paygo_ledger::durable::{self, Durable, OpenOptions};
use paygo_ledger::{Clock, LedgerError, SharedLedger, Spare};

use crate::codec;
use crate::command::Command;
use crate::config::BillingConfig;
use crate::machine::Billing;

/// A billing command makes one to three transfers and takes about 50 bytes of journal:
/// about 25 bytes of journal per transfer.
const JOURNAL_BYTES_PER_TRANSFER: u64 = 25;

impl Durable for Billing {
    const KIND: &'static str = "billing";

    fn encode_commands(commands: &[Command], out: &mut Vec<u8>) {
        for c in commands {
            codec::put_command(out, c);
        }
    }

    fn decode_commands(bytes: &[u8], count: usize, out: &mut Vec<Command>) -> Result<(), LedgerError> {
        let mut r = Reader::new(bytes);
        for _ in 0..count {
            out.push(codec::command(&mut r)?);
        }
        if !r.is_empty() {
            return Err(bad("bytes are left after the commands"));
        }
        Ok(())
    }

    fn encode_state(&self, out: &mut Vec<u8>) -> Result<(), LedgerError> {
        codec::put_state(out, self);
        Ok(())
    }

    fn decode_state(bytes: &[u8], journal_bytes: u64) -> Result<Billing, LedgerError> {
        let mut r = Reader::new(bytes);
        let more = usize::try_from(journal_bytes / JOURNAL_BYTES_PER_TRANSFER).unwrap_or(usize::MAX);
        let billing = codec::state(&mut r, more)?;
        if !r.is_empty() {
            return Err(bad("bytes are left after the billing state"));
        }
        Ok(billing)
    }

    fn spare_for(&self, journal_bytes: u64) -> Option<usize> {
        durable::spare_room(self.ledger(), journal_bytes / JOURNAL_BYTES_PER_TRANSFER)
    }

    fn add_spare(&mut self, spare: Spare) {
        self.add_ledger_spare(spare);
    }

    fn recovered(&mut self) {
        self.keep_outstanding_requests();
    }
}

/// Opens (or creates) a durable [`Billing`] in `dir`. `config` is used only when the
/// directory is new: afterwards the settings are part of the stored state, so that replay
/// runs with the settings the commands ran with. See [`SharedLedger::open`].
///
/// # Errors
///
/// As [`SharedLedger::open`].
pub fn open_billing<K: Clock>(
    dir: impl AsRef<Path>,
    config: BillingConfig,
    clock: K,
    options: &OpenOptions,
) -> Result<SharedLedger<Billing, K>, LedgerError> {
    SharedLedger::open(dir, move || Billing::new(config), clock, options)
}
