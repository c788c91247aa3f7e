//! One customer's billing state on its own: the unit a shared store (a database that
//! several gateway replicas write) keeps in a row, locks, and applies commands to with
//! exactly the rules of [`Billing`].
//!
//! A [`Shard`] is a [`Billing`] that holds one customer (or none, for commands that name
//! nothing the store knows). Each command runs through [`Billing::execute`], so a store
//! built on shards has the embedded store's rules by construction; what differs is only
//! where things live:
//!
//! - **Open state stays in the shard**: the balances, bonus lots, open holds (with their
//!   pending transfers), the auto top-up rule and its outstanding request, the remainder
//!   carrier, the uncollected total and the arrears. [`Shard::encode`] is small: it does
//!   not grow with the customer's history.
//! - **Settled state leaves it**: [`Shard::settle`] moves out the first replies by id,
//!   the holds that were closed, the ledger's settled transfers as history entries, and the
//!   requests emitted or closed, for the store to write to its tables.
//! - **What a retry needs comes back**: before a command that names an id the store has
//!   seen, the store gives the shard the stored reply ([`Shard::remember_reply`]) or the
//!   closed hold ([`Shard::remember_hold`]), so that the retry is answered as the first
//!   time, and an id reused with another body (by any customer) is refused.
//!
//! Ids the billing layer mints (bonus lot accounts, auto top-up request ids) come from a
//! range of the shard's own, `shard << 24` and up ([`ShardNo`]), so that they are unique
//! across every customer of the store. Transfer ids are the shard's own: unique within one
//! customer's history.

use std::collections::{BTreeSet, HashSet};

use paygo_credits::Credits;
use paygo_ledger::durable::codec::{Put, Reader, bad};
use paygo_ledger::{AccountId, LedgerError, TransferId, TransferRecord};
use serde::{Deserialize, Serialize};

use crate::auto::TopUpRequest;
use crate::codec;
use crate::command::{Command, Reply};
use crate::config::BillingConfig;
use crate::ids::{CustomerId, HoldId, RequestId};
use crate::machine::{Billing, Hold, HoldStatus, IdKind};
use crate::store::{Balance, BillingError, HistoryEntry, entry_of};

/// Bits of a shard's own id range: lot and request ids of shard `s` are `s << 24` plus 1
/// to `2^24 - 2^8` (sixteen million bonus grants and as many auto top-up requests per
/// customer).
pub const SHARD_ID_BITS: u32 = 24;

/// The largest shard number: ranges of `2^24` ids below the billing layer's counter limit.
pub const SHARD_NO_MAX: u64 = 1 << 39;

/// Ids a shard keeps in reserve at the end of its range: one command mints at most one lot
/// or one request, far fewer than this.
const RANGE_SPARE: u128 = 1 << 8;

/// A shard's number in its store: `1 ..= SHARD_NO_MAX`, given once when the customer's
/// account is opened (a database sequence). `ShardNo(0)` is the scratch shard: it holds
/// no customer, mints nothing, and answers commands that name an unknown customer, hold or
/// request exactly as the billing layer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShardNo(pub u64);

/// The kind of an id the billing layer remembers a first reply for: a top-up id and a hold
/// id may be the same number without naming the same operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IdSpace {
    /// [`Command::TopUp`] ids.
    TopUp,
    /// [`Command::Hold`] ids (captures, releases and extensions name them too).
    Hold,
    /// [`Command::GrantBonus`] ids.
    Grant,
    /// [`Command::ReportPayment`] ids: the auto top-up requests.
    Payment,
    /// [`Command::ReversePayment`] ids.
    Reversal,
}

impl IdSpace {
    /// The space's number in a store (`1 ..= 5`).
    pub const fn code(self) -> u8 {
        self.kind() as u8
    }

    /// The space stored as `code`.
    pub fn from_code(code: u8) -> Option<IdSpace> {
        IdKind::from_code(code).map(IdSpace::of)
    }

    const fn kind(self) -> IdKind {
        match self {
            IdSpace::TopUp => IdKind::TopUp,
            IdSpace::Hold => IdKind::Hold,
            IdSpace::Grant => IdKind::Grant,
            IdSpace::Payment => IdKind::Payment,
            IdSpace::Reversal => IdKind::Reversal,
        }
    }

    const fn of(kind: IdKind) -> IdSpace {
        match kind {
            IdKind::TopUp => IdSpace::TopUp,
            IdKind::Hold => IdSpace::Hold,
            IdKind::Grant => IdSpace::Grant,
            IdKind::Payment => IdSpace::Payment,
            IdKind::Reversal => IdSpace::Reversal,
        }
    }

    /// The id under which `command`'s first reply is remembered, if it has one: top-ups,
    /// holds, grants, payment reports and reversals. Captures, releases and extensions are
    /// answered through their hold ([`ClosedHold`]); opening an account and setting a rule
    /// need no id.
    pub fn key_of(command: &Command) -> Option<(IdSpace, u128)> {
        match *command {
            Command::TopUp { id, .. } => Some((IdSpace::TopUp, id.0)),
            Command::Hold { id, .. } => Some((IdSpace::Hold, id.0)),
            Command::GrantBonus { id, .. } => Some((IdSpace::Grant, id.0)),
            Command::ReportPayment { request, .. } => Some((IdSpace::Payment, request.0)),
            Command::ReversePayment { id, .. } => Some((IdSpace::Reversal, id.0)),
            Command::OpenAccount { .. }
            | Command::SetAutoTopUp { .. }
            | Command::Capture { .. }
            | Command::CaptureCost { .. }
            | Command::Release { .. }
            | Command::ExtendHold { .. } => None,
        }
    }
}

/// The first reply to a command with an id: what a store keeps so that a retry, on any
/// replica, is answered the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StoredReply {
    /// The id's space.
    pub space: IdSpace,
    /// The id.
    pub id: u128,
    /// The command first applied with it.
    pub command: Command,
    /// Its reply.
    pub reply: Reply,
}

impl StoredReply {
    /// The command and reply as bytes (the id and its space are the store's key).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        codec::put_command_reply(&mut out, &(self.command, self.reply));
        out
    }

    /// Reads what [`StoredReply::encode`] wrote, under the store's key.
    ///
    /// # Errors
    ///
    /// [`BillingError::Corrupt`] when the bytes are not an encoded command and reply, or
    /// the command does not have this id.
    pub fn decode(space: IdSpace, id: u128, bytes: &[u8]) -> Result<StoredReply, BillingError> {
        let mut r = Reader::new(bytes);
        let (command, reply) = codec::command_reply(&mut r).map_err(corrupt)?;
        if !r.is_empty() {
            return Err(corrupt(bad("bytes are left after a stored reply")));
        }
        if IdSpace::key_of(&command) != Some((space, id)) {
            return Err(corrupt(bad(format!(
                "a stored reply under {space:?} {id} holds a command with another id"
            ))));
        }
        Ok(StoredReply {
            space,
            id,
            command,
            reply,
        })
    }
}

/// A hold that was captured, released or found expired: what a store keeps so that a
/// retried capture or release is answered as the first one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClosedHold {
    /// The hold.
    pub hold: HoldId,
    /// Its customer.
    pub customer: CustomerId,
    /// What was held.
    pub amount: Credits,
    /// Captured (`true`), or released or expired (`false`).
    pub captured: bool,
    /// The command that closed it.
    pub command: Command,
    /// Its reply.
    pub reply: Reply,
}

impl ClosedHold {
    /// The closing as bytes (the hold, its customer and amount are the store's columns).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.put_bool(self.captured);
        codec::put_command_reply(&mut out, &(self.command, self.reply));
        out
    }

    /// Reads what [`ClosedHold::encode`] wrote.
    ///
    /// # Errors
    ///
    /// [`BillingError::Corrupt`] when the bytes are not an encoded closing.
    pub fn decode(
        hold: HoldId,
        customer: CustomerId,
        amount: Credits,
        bytes: &[u8],
    ) -> Result<ClosedHold, BillingError> {
        let mut r = Reader::new(bytes);
        let captured = r.bool().map_err(corrupt)?;
        let (command, reply) = codec::command_reply(&mut r).map_err(corrupt)?;
        if !r.is_empty() {
            return Err(corrupt(bad("bytes are left after a closed hold")));
        }
        Ok(ClosedHold {
            hold,
            customer,
            amount,
            captured,
            command,
            reply,
        })
    }
}

/// Encodes an auto top-up request (a store's row).
pub fn encode_request(request: &TopUpRequest) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    codec::put_request(&mut out, request);
    out
}

/// Reads what [`encode_request`] wrote.
///
/// # Errors
///
/// [`BillingError::Corrupt`] when the bytes are not an encoded request.
pub fn decode_request(bytes: &[u8]) -> Result<TopUpRequest, BillingError> {
    let mut r = Reader::new(bytes);
    let request = codec::request(&mut r).map_err(corrupt)?;
    if !r.is_empty() {
        return Err(corrupt(bad("bytes are left after a request")));
    }
    Ok(request)
}

#[allow(clippy::needless_pass_by_value)] // for `map_err`
fn corrupt(error: LedgerError) -> BillingError {
    BillingError::Corrupt {
        reason: error.to_string(),
    }
}

/// What a shard settled since its last [`Shard::settle`]: for the store's tables, in the
/// same transaction as the shard's new state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settled {
    /// First replies by id, new since the last settle (not those given back by
    /// [`Shard::remember_reply`]).
    pub replies: Vec<StoredReply>,
    /// Holds closed since the last settle.
    pub closed_holds: Vec<ClosedHold>,
    /// The customer's history entries (purchases, charges, grants, expiries, reversals),
    /// oldest first, as [`crate::history_of`] lists them.
    pub entries: Vec<HistoryEntry>,
    /// Auto top-up requests emitted.
    pub requests: Vec<TopUpRequest>,
    /// Requests whose outcome was recorded: no longer outstanding.
    pub requests_closed: Vec<RequestId>,
}

/// One customer's billing state (see the module's docs).
#[derive(Debug, Clone)]
pub struct Shard {
    no: ShardNo,
    billing: Billing,
    /// The first replies given back by the store: already stored, never settled again.
    known_replies: HashSet<(IdKind, u128)>,
    /// The closed holds given back by the store.
    known_holds: HashSet<u128>,
    /// Requests outstanding when the shard was made or last settled.
    outstanding: BTreeSet<u128>,
}

impl Shard {
    /// A new shard, holding no customer yet: an [`Command::OpenAccount`] opens one.
    ///
    /// # Errors
    ///
    /// [`BillingError::Corrupt`] for a shard number above [`SHARD_NO_MAX`].
    pub fn new(config: BillingConfig, no: ShardNo) -> Result<Shard, BillingError> {
        let mut billing = Billing::new(config);
        set_range(&mut billing, no)?;
        Ok(Shard {
            no,
            billing,
            known_replies: HashSet::new(),
            known_holds: HashSet::new(),
            outstanding: BTreeSet::new(),
        })
    }

    /// The shard's number.
    pub fn no(&self) -> ShardNo {
        self.no
    }

    /// The billing state, to read.
    pub fn billing(&self) -> &Billing {
        &self.billing
    }

    /// The customer the shard holds, once an account is open.
    pub fn customer(&self) -> Option<CustomerId> {
        self.billing.customers.keys().next().map(|&c| CustomerId(c))
    }

    /// The customer's balance, as of the shard's last command.
    ///
    /// # Errors
    ///
    /// [`BillingError::UnknownCustomer`] when the shard holds no such customer.
    pub fn balance(&self, customer: CustomerId) -> Result<Balance, BillingError> {
        Balance::of(&self.billing, customer)
    }

    /// The customer's balance at `now_ns`: as of the shard's last command, with the holds
    /// and bonus lots that ran out since then expired (on a copy: the shard is unchanged),
    /// as the customer's next command would find it.
    ///
    /// # Errors
    ///
    /// [`BillingError::UnknownCustomer`] when the shard holds no such customer.
    pub fn balance_at(&self, now_ns: u64, customer: CustomerId) -> Result<Balance, BillingError> {
        let mut now = self.billing.clone();
        now.sweep(now_ns);
        now.settle_arrears(now_ns);
        Balance::of(&now, customer)
    }

    /// The auto top-up requests waiting for their payment's outcome.
    pub fn outstanding_requests(&self) -> Vec<TopUpRequest> {
        self.billing.outstanding_requests()
    }

    /// Gives back a first reply that the store keeps: a later command with the same id is
    /// answered from it (or refused as [`crate::Refusal::IdReused`] with another body).
    /// Ignored when the shard has a reply for that id already.
    pub fn remember_reply(&mut self, stored: StoredReply) {
        let key = (stored.space.kind(), stored.id);
        if let std::collections::hash_map::Entry::Vacant(slot) = self.billing.replies.entry(key) {
            slot.insert(Box::new((stored.command, stored.reply)));
            self.known_replies.insert(key);
        }
    }

    /// Gives back a closed hold that the store keeps: a retried capture or release is
    /// answered as the first time. Ignored when the shard has that hold already.
    pub fn remember_hold(&mut self, closed: ClosedHold) {
        let id = closed.hold.0;
        if let std::collections::hash_map::Entry::Vacant(slot) = self.billing.holds.entry(id) {
            slot.insert(Hold {
                customer: closed.customer.0,
                amount: closed.amount,
                parts: Vec::new(),
                status: if closed.captured {
                    HoldStatus::Captured
                } else {
                    HoldStatus::Released
                },
                reply: Some(Box::new((closed.command, closed.reply))),
            });
            self.known_holds.insert(id);
        }
    }

    /// Applies one command at `now_ns` ([`Billing::execute`]). A shard whose id range is
    /// used up refuses every command ([`crate::Refusal::CountersExhausted`]).
    ///
    /// # Errors
    ///
    /// The command's [`crate::Refusal`]: nothing was changed then.
    pub fn execute(&mut self, now_ns: u64, command: &Command) -> Reply {
        self.billing.execute(now_ns, command)
    }

    /// Moves the settled state out of the shard (see [`Settled`]).
    pub fn settle(&mut self) -> Settled {
        let b = &mut self.billing;
        // First replies by id, the store's own excepted.
        let mut replies: Vec<StoredReply> = b
            .replies
            .drain()
            .filter(|(key, _)| !self.known_replies.contains(key))
            .map(|((kind, id), stored)| StoredReply {
                space: IdSpace::of(kind),
                id,
                command: stored.0,
                reply: stored.1,
            })
            .collect();
        replies.sort_unstable_by_key(|r| (r.space, r.id));
        self.known_replies.clear();
        // Closed holds.
        let closed: Vec<u128> = b
            .holds
            .iter()
            .filter(|(_, h)| h.status != HoldStatus::Open)
            .map(|(&id, _)| id)
            .collect();
        let mut closed_holds = Vec::new();
        for id in closed {
            if let Some(h) = b.holds.remove(&id)
                && !self.known_holds.contains(&id)
                && let Some(stored) = h.reply
            {
                closed_holds.push(ClosedHold {
                    hold: HoldId(id),
                    customer: CustomerId(h.customer),
                    amount: h.amount,
                    captured: h.status == HoldStatus::Captured,
                    command: stored.0,
                    reply: stored.1,
                });
            }
        }
        closed_holds.sort_unstable_by_key(|h| h.hold);
        self.known_holds.clear();
        // Settled transfers: every one but the pending parts of open holds (an expired
        // part of a hold not closed yet stays, so that its capture is answered
        // `HoldExpired` as in one machine).
        let open_parts: HashSet<u128> = b
            .holds
            .values()
            .flat_map(|h| h.parts.iter().map(|(t, _, _)| t.0))
            .collect();
        let taken = b.ledger.take_transfers(|r| open_parts.contains(&r.transfer.id.0));
        let entries = entries_of(b, &taken);
        let requests = b.drain_requests();
        let now: BTreeSet<u128> = b.requests.keys().copied().collect();
        let requests_closed = self.outstanding.difference(&now).map(|&r| RequestId(r)).collect();
        self.outstanding = now;
        Settled {
            replies,
            closed_holds,
            entries,
            requests,
            requests_closed,
        }
    }

    /// The shard as bytes: its number and its open state (call [`Shard::settle`] first, or
    /// the settled state is kept in it too).
    ///
    /// The state is written with its runs of zero bytes shortened (a zero and the run's length): most of
    /// a shard is the zero high halves of 128-bit ledger amounts and ids, and a store
    /// rewrites a customer's shard on every batch that touches the customer.
    pub fn encode(&self) -> Vec<u8> {
        let mut state = Vec::with_capacity(1024);
        codec::put_state(&mut state, &self.billing);
        let mut out = Vec::with_capacity(state.len() / 3 + 16);
        out.put_u8(SHARD_FORMAT);
        out.put_u64(self.no.0);
        pack_zeros(&state, &mut out);
        out
    }

    /// Reads what [`Shard::encode`] wrote.
    ///
    /// # Errors
    ///
    /// [`BillingError::Corrupt`] when the bytes are not an encoded shard (or one of another
    /// format version).
    pub fn decode(bytes: &[u8]) -> Result<Shard, BillingError> {
        let mut r = Reader::new(bytes);
        let format = r.u8().map_err(corrupt)?;
        let no = ShardNo(r.u64().map_err(corrupt)?);
        let unpacked;
        let mut r = match format {
            SHARD_FORMAT_PLAIN => r,
            SHARD_FORMAT => {
                unpacked = unpack_zeros(r.rest(), SHARD_BYTES_MAX).map_err(corrupt)?;
                Reader::new(&unpacked)
            }
            other => {
                return Err(corrupt(bad(format!(
                    "a shard of format {other}: expected {SHARD_FORMAT_PLAIN} or {SHARD_FORMAT}"
                ))));
            }
        };
        let mut billing = codec::state(&mut r, 0).map_err(corrupt)?;
        if !r.is_empty() {
            return Err(corrupt(bad("bytes are left after a shard")));
        }
        // Restoring refills the outbox with the outstanding requests: they were settled.
        billing.outbox.clear();
        billing.counter_limit = range_of(no)?.1;
        if billing.customers.len() > 1 {
            return Err(corrupt(bad(format!(
                "a shard holds {} customers: expected at most one",
                billing.customers.len()
            ))));
        }
        let outstanding = billing.requests.keys().copied().collect();
        Ok(Shard {
            no,
            billing,
            known_replies: HashSet::new(),
            known_holds: HashSet::new(),
            outstanding,
        })
    }
}

/// The version of [`Shard::encode`]'s layout: the state with its zero runs packed.
const SHARD_FORMAT: u8 = 2;

/// The first layout, the state as it is (still read).
const SHARD_FORMAT_PLAIN: u8 = 1;

/// The largest unpacked state a shard may have: a bound on what damaged bytes can make the
/// reader allocate (a shard with a hundred thousand open holds is far below it).
const SHARD_BYTES_MAX: usize = 256 << 20;

/// Appends `bytes` to `out` with every run of zero bytes written as a zero and the run's
/// length (LEB128, at least 1); other bytes as they are. Exact: [`unpack_zeros`] gives the
/// bytes back.
pub(crate) fn pack_zeros(bytes: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0 {
            let start = i;
            while i < bytes.len() && bytes[i] == 0 {
                i += 1;
            }
            out.push(0);
            let mut run = i - start;
            loop {
                #[allow(clippy::cast_possible_truncation)] // the low seven bits
                let low = (run & 0x7f) as u8;
                run >>= 7;
                if run == 0 {
                    out.push(low);
                    break;
                }
                out.push(low | 0x80);
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
}

/// Reads what [`pack_zeros`] wrote, refusing more than `max` bytes out.
///
/// # Errors
///
/// [`LedgerError`] (corrupt) when a run's length is cut off, zero, longer than 64 bits,
/// or when the bytes would unpack to more than `max`.
pub(crate) fn unpack_zeros(packed: &[u8], max: usize) -> Result<Vec<u8>, LedgerError> {
    let mut out = Vec::with_capacity(packed.len().saturating_mul(3).min(max));
    let mut i = 0;
    while i < packed.len() {
        let b = packed[i];
        i += 1;
        if b != 0 {
            if out.len() >= max {
                return Err(bad(format!("a packed shard unpacks to more than {max} bytes")));
            }
            out.push(b);
            continue;
        }
        let mut run: u64 = 0;
        let mut shift = 0u32;
        loop {
            let Some(&byte) = packed.get(i) else {
                return Err(bad("a packed shard ends inside the length of a zero run"));
            };
            i += 1;
            if shift >= 63 && byte > 1 {
                return Err(bad("a zero run's length does not fit in 64 bits"));
            }
            run |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        let run = usize::try_from(run).unwrap_or(usize::MAX);
        if run == 0 {
            return Err(bad("a zero run of length 0"));
        }
        if run > max - out.len() {
            return Err(bad(format!("a packed shard unpacks to more than {max} bytes")));
        }
        out.resize(out.len() + run, 0);
    }
    Ok(out)
}

/// The first id of shard `no`'s range and the counter value it is refused at.
fn range_of(no: ShardNo) -> Result<(u128, u128), BillingError> {
    if no.0 > SHARD_NO_MAX {
        return Err(BillingError::Corrupt {
            reason: format!("shard number {} is above the largest, {SHARD_NO_MAX}", no.0),
        });
    }
    let base = u128::from(no.0) << SHARD_ID_BITS;
    let end = base + (1 << SHARD_ID_BITS) - RANGE_SPARE;
    // The scratch shard (0) has the range below every real one's; it never mints from it,
    // since it never holds an account (and is never stored).
    Ok((base + 1, end))
}

fn set_range(billing: &mut Billing, no: ShardNo) -> Result<(), BillingError> {
    let (first, end) = range_of(no)?;
    billing.next_lot = first;
    billing.next_request = first;
    billing.counter_limit = end;
    Ok(())
}

/// The history entries of `taken` (a shard's settled transfers, in order), as
/// [`crate::history_of`] lists them.
fn entries_of(b: &Billing, taken: &[TransferRecord]) -> Vec<HistoryEntry> {
    let Some(customer) = b.customers.keys().next().copied() else {
        return Vec::new();
    };
    let is_lot = |a: AccountId| b.lot_owner.get(&a.0) == Some(&customer);
    let source_of = |pending: TransferId| {
        taken
            .iter()
            .find(|r| r.transfer.id == pending)
            .map(|r| r.transfer.debit_account_id)
            .or_else(|| b.ledger.transfer(pending).map(|r| r.transfer.debit_account_id))
    };
    taken
        .iter()
        .filter_map(|record| entry_of(record, customer, &is_lot, &source_of))
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn zero_runs_pack_to_a_zero_and_their_length() {
        let mut out = Vec::new();
        pack_zeros(&[7, 0, 0, 0, 9], &mut out);
        assert_eq!(out, [7, 0, 3, 9]);
        let mut long = Vec::new();
        pack_zeros(&[0; 300], &mut long);
        assert_eq!(long, [0, 0xac, 0x02]);
        assert_eq!(unpack_zeros(&long, 300).map(|v| v.len()), Ok(300));
        assert!(unpack_zeros(&long, 299).is_err(), "more than the bound is refused");
        assert!(unpack_zeros(&[0], 10).is_err(), "a run without its length");
        assert!(unpack_zeros(&[0, 0], 10).is_err(), "a run of length 0");
        assert!(unpack_zeros(&[0, 0x80], 10).is_err(), "a length cut off");
        let too_long = [0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert!(unpack_zeros(&too_long, usize::MAX).is_err(), "a length above 64 bits");
    }

    #[test]
    fn a_shard_of_the_first_format_still_reads() {
        let mut shard = Shard::new(BillingConfig::default(), ShardNo(3)).expect("a shard");
        let reply = shard.execute(
            1,
            &Command::OpenAccount {
                customer: CustomerId(9),
            },
        );
        assert!(reply.is_ok(), "{reply:?}");
        let packed = shard.encode();
        assert!(
            packed.len() < 400,
            "a new account's shard packs small: {} bytes",
            packed.len()
        );
        let mut plain = vec![SHARD_FORMAT_PLAIN];
        plain.extend_from_slice(&packed[1..9]);
        plain.extend(unpack_zeros(&packed[9..], SHARD_BYTES_MAX).expect("unpacks"));
        let (a, b) = (
            Shard::decode(&packed).expect("packed"),
            Shard::decode(&plain).expect("plain"),
        );
        assert_eq!(a.encode(), b.encode());
        assert_eq!(a.encode(), packed);
    }

    proptest! {
        #[test]
        fn packing_is_exact(bytes in proptest::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..2000)) {
            let mut packed = Vec::new();
            pack_zeros(&bytes, &mut packed);
            prop_assert!(packed.len() <= bytes.len() + bytes.len() / 2 + 1);
            prop_assert_eq!(unpack_zeros(&packed, bytes.len()), Ok(bytes));
        }

        #[test]
        fn any_bytes_unpack_or_are_refused_within_the_bound(packed in proptest::collection::vec(any::<u8>(), 0..200), max in 0usize..5000) {
            if let Ok(out) = unpack_zeros(&packed, max) {
                prop_assert!(out.len() <= max);
                let mut again = Vec::new();
                pack_zeros(&out, &mut again);
                prop_assert_eq!(unpack_zeros(&again, max), Ok(out));
            }
        }
    }
}
