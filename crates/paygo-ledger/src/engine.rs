//! The state machine: accounts, transfers, holds, linked chains and idempotency.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use std::hash::BuildHasher;

use hashbrown::HashTable;
use paygo_credits::Credits;

use crate::hash::IdBuild;
use crate::{
    Account, AccountBalance, AccountFlags, AccountId, Event, EventResult, IdWindow, LedgerError, PendingStatus,
    Transfer, TransferFlags, TransferId, TransferRecord,
};

/// A ledger with an [`IdWindow`] compacts its transfers when it holds this many, or twice
/// as many as after the last compaction, whichever is more.
const COMPACT_MIN: usize = 1 << 16;

/// The time of a time-ordered id, in nanoseconds since the Unix epoch (as `u128`: 2^48 ms
/// does not fit a `u64` of nanoseconds).
pub(crate) fn id_time_ns(id: u128) -> u128 {
    TransferId(id).time_ns()
}

/// The most events one batch may hold (TigerBeetle's figure for a 1 MiB message).
pub const BATCH_EVENTS_MAX: usize = 8190;

/// The largest total an account may reach by default, in credits: beyond it a transfer fails
/// with an `Overflows…` result. Keeps every balance representable as an `i128`.
pub const ACCOUNT_TOTAL_MAX: u128 = i128::MAX as u128;

const NS_PER_MS: u64 = 1_000_000;

/// An account and its balances, as the table keeps them: the [`Account`]'s fields laid out
/// flat with the totals, 112 bytes (the `Account` inside a row, with its padding, and the id
/// again as the key of a map, took 144).
#[derive(Debug, Clone)]
struct AccountRow {
    id: u128,
    user_data: u128,
    debits_pending: u128,
    debits_posted: u128,
    credits_pending: u128,
    credits_posted: u128,
    timestamp_ns: u64,
    flags: AccountFlags,
    code: u16,
    closed: bool,
}

// The size the docs above promise (at most; less where `u128` is aligned to 8 bytes).
const _: () = assert!(std::mem::size_of::<AccountRow>() <= 112);

impl AccountRow {
    fn new(a: &Account, timestamp_ns: u64) -> AccountRow {
        AccountRow {
            id: a.id.0,
            user_data: a.user_data,
            debits_pending: 0,
            debits_posted: 0,
            credits_pending: 0,
            credits_posted: 0,
            timestamp_ns,
            flags: a.flags,
            code: a.code,
            closed: false,
        }
    }

    fn account(&self) -> Account {
        Account {
            id: AccountId(self.id),
            flags: self.flags,
            code: self.code,
            user_data: self.user_data,
        }
    }
}

/// The accounts, found by the id in their row (a table of rows, not a map from id to row,
/// so that the id is not stored twice).
#[derive(Debug, Clone, Default)]
struct Accounts(HashTable<AccountRow>);

impl Accounts {
    fn with_capacity(accounts: usize) -> Accounts {
        Accounts(HashTable::with_capacity(accounts))
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn get(&self, id: &u128) -> Option<&AccountRow> {
        self.0.find(id_hash(*id), |r| r.id == *id)
    }

    fn get_mut(&mut self, id: &u128) -> Option<&mut AccountRow> {
        self.0.find_mut(id_hash(*id), |r| r.id == *id)
    }

    /// Both rows at once, with one probe each; the ids must differ (the table would panic).
    fn get_disjoint_mut(&mut self, [a, b]: [&u128; 2]) -> [Option<&mut AccountRow>; 2] {
        if a == b {
            return [None, None];
        }
        let ids = [*a, *b];
        self.0
            .get_disjoint_mut([id_hash(*a), id_hash(*b)], |i, r| ids.get(i) == Some(&r.id))
    }

    /// Adds a row whose id is not in the table yet; `false` (nothing changed) if it is.
    fn insert(&mut self, row: AccountRow) -> bool {
        let id = row.id;
        match self.0.entry(id_hash(id), |r| r.id == id, |r| id_hash(r.id)) {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(row);
                true
            }
        }
    }

    fn remove(&mut self, id: &u128) {
        if let Ok(entry) = self.0.find_entry(id_hash(*id), |r| r.id == *id) {
            entry.remove();
        }
    }

    fn values(&self) -> impl Iterator<Item = &AccountRow> + '_ {
        self.0.iter()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// The undo step that restores `r`'s four totals.
fn balances_undo(row: u128, r: &AccountRow) -> Undo {
    Undo::Balances {
        row,
        debits_pending: r.debits_pending,
        debits_posted: r.debits_posted,
        credits_pending: r.credits_pending,
        credits_posted: r.credits_posted,
    }
}

/// A transfer as the ledger keeps it: a [`TransferRecord`]'s fields in 128 bytes, where the
/// public type, with its `Option`s, takes 160 (and the record with its expiry took 176). A
/// ledger keeps every transfer, so this is the ledger's memory per transfer, and the memory a
/// growing ledger has to touch (page faults are a fifth of a replay's time; docs/ledger.md).
#[derive(Debug, Clone, Copy)]
struct Stored {
    id: u128,
    debit_account_id: u128,
    credit_account_id: u128,
    user_data: u128,
    /// The pending transfer of a post or void; 0 for none (0 is never a transfer's id, and
    /// a stored post or void names a stored transfer).
    pending_id: u128,
    amount: i64,
    timeout_ms: u64,
    timestamp_ns: u64,
    /// The amount posted, when the status is [`STATUS_POSTED`].
    posted: i64,
    code: u16,
    flags: TransferFlags,
    /// One of the `STATUS_…` constants.
    status: u8,
}

// The size the docs above promise (120 where `u128` is aligned to 8 bytes).
const _: () = assert!(std::mem::size_of::<Stored>() <= 128);

const STATUS_NONE: u8 = 0;
const STATUS_PENDING: u8 = 1;
const STATUS_POSTED: u8 = 2;
const STATUS_VOIDED: u8 = 3;
const STATUS_EXPIRED: u8 = 4;

impl Stored {
    fn placeholder() -> Stored {
        Stored::new(
            &Transfer::new(TransferId(0), AccountId(0), AccountId(0), Credits::ZERO),
            0,
            None,
        )
    }

    fn new(t: &Transfer, timestamp_ns: u64, status: Option<PendingStatus>) -> Stored {
        debug_assert!(
            t.pending_id != Some(TransferId(0)),
            "a stored post names a stored transfer"
        );
        let mut s = Stored {
            id: t.id.0,
            debit_account_id: t.debit_account_id.0,
            credit_account_id: t.credit_account_id.0,
            user_data: t.user_data,
            pending_id: t.pending_id.map_or(0, |p| p.0),
            amount: t.amount.get(),
            timeout_ms: t.timeout_ms,
            timestamp_ns,
            posted: 0,
            code: t.code,
            flags: t.flags,
            status: STATUS_NONE,
        };
        s.set_status(status);
        s
    }

    fn transfer(&self) -> Transfer {
        Transfer {
            id: TransferId(self.id),
            debit_account_id: AccountId(self.debit_account_id),
            credit_account_id: AccountId(self.credit_account_id),
            amount: Credits::new(self.amount),
            pending_id: (self.pending_id != 0).then_some(TransferId(self.pending_id)),
            timeout_ms: self.timeout_ms,
            code: self.code,
            flags: self.flags,
            user_data: self.user_data,
        }
    }

    fn record(&self) -> TransferRecord {
        TransferRecord {
            transfer: self.transfer(),
            timestamp_ns: self.timestamp_ns,
            status: self.status(),
        }
    }

    fn status(&self) -> Option<PendingStatus> {
        match self.status {
            STATUS_PENDING => Some(PendingStatus::Pending),
            STATUS_POSTED => Some(PendingStatus::Posted(Credits::new(self.posted))),
            STATUS_VOIDED => Some(PendingStatus::Voided),
            STATUS_EXPIRED => Some(PendingStatus::Expired),
            _ => None,
        }
    }

    fn set_status(&mut self, status: Option<PendingStatus>) {
        (self.status, self.posted) = match status {
            None => (STATUS_NONE, 0),
            Some(PendingStatus::Pending) => (STATUS_PENDING, 0),
            Some(PendingStatus::Posted(c)) => (STATUS_POSTED, c.get()),
            Some(PendingStatus::Voided) => (STATUS_VOIDED, 0),
            Some(PendingStatus::Expired) => (STATUS_EXPIRED, 0),
        };
    }

    fn is_pending(&self) -> bool {
        self.status == STATUS_PENDING
    }

    /// When a pending transfer with a timeout expires: its timestamp plus its timeout (which
    /// fitted when it was created); `None` for any other transfer, or once it is resolved.
    fn expires_at_ns(&self) -> Option<u64> {
        if !self.is_pending() || self.timeout_ms == 0 {
            return None;
        }
        expiry(self.timestamp_ns, self.timeout_ms)
    }
}

/// The hash of a transfer id in `transfer_index`.
fn id_hash(id: u128) -> u64 {
    IdBuild::default().hash_one(id)
}

/// The hash of the transfer at position `p` (every position in the index is in `transfers`).
fn position_hash(transfers: &[Stored], p: usize) -> u64 {
    id_hash(transfers.get(p).map_or(0, |s| s.id))
}

/// Room for a ledger's transfers, its pages touched in advance.
///
/// A ledger that grows into fresh memory waits for the operating system to map each page
/// the first time it writes it: a fifth of a replay's time (docs/ledger.md). A replay
/// prepares one of these on another thread while this one applies the first records, and
/// hands it over with [`Ledger::add_spare`] (through
/// [`Durable::add_spare`](crate::durable::Durable::add_spare)).
#[derive(Debug)]
pub struct Spare(Vec<Stored>);

impl Spare {
    /// Allocates room for `transfers` transfers and touches every page of it.
    pub fn prepare(transfers: usize) -> Spare {
        let mut room = Vec::with_capacity(transfers);
        room.resize(transfers, Stored::placeholder());
        room.clear();
        Spare(room)
    }
}

/// `ts` plus `timeout_ms`, if it fits.
fn expiry(ts: u64, timeout_ms: u64) -> Option<u64> {
    timeout_ms.checked_mul(NS_PER_MS).and_then(|ns| ts.checked_add(ns))
}

/// What to undo if a linked chain fails.
#[derive(Debug)]
enum Undo {
    AccountCreated(u128),
    AccountClosed(u128),
    Balances {
        row: u128,
        debits_pending: u128,
        debits_posted: u128,
        credits_pending: u128,
        credits_posted: u128,
    },
    TransferCreated(u128),
    StatusChanged {
        id: u128,
        status: Option<PendingStatus>,
    },
}

/// A deterministic, in-memory double-entry ledger of credits.
///
/// Batches of [`Event`]s are applied with [`Ledger::apply`], each with the time it is
/// applied at (no clock inside): the same batches at the same times give the same state and
/// the same results, which is what lets a journal replay them. Each event gets one
/// [`EventResult`].
///
/// # Invariants
///
/// After every batch (checked in debug builds, and by [`Ledger::check_invariants`]):
/// total debits equal total credits, pending and posted; no account with a balance limit
/// is beyond it; each account's pending totals equal the sum of its open holds; every
/// open hold with a timeout is in the expiry index.
///
/// # Example
///
/// ```
/// use paygo_credits::Credits;
/// use paygo_ledger::{Account, AccountId, Event, EventResult, Ledger, Transfer, TransferId};
///
/// let (bank, alice) = (AccountId(1), AccountId(2));
/// let mut ledger = Ledger::new();
/// let now = 1_000_000_000;
/// let results = ledger.apply(now, &[
///     Event::CreateAccount(Account::new(bank)),
///     Event::CreateAccount(Account::balance(alice)),
///     Event::CreateTransfer(Transfer::new(TransferId(10), bank, alice, Credits::new(500))),
///     // A hold of 200, then a post of 150 of it: 50 are released.
///     Event::CreateTransfer(Transfer::pending(TransferId(11), alice, bank, Credits::new(200), 60_000)),
///     Event::CreateTransfer(Transfer::post(TransferId(12), TransferId(11), Credits::new(150))),
///     // More than alice has: refused.
///     Event::CreateTransfer(Transfer::new(TransferId(13), alice, bank, Credits::new(351))),
/// ])?;
/// assert_eq!(results[..5], [EventResult::Ok; 5]);
/// assert_eq!(results[5], EventResult::ExceedsCredits);
/// assert_eq!(ledger.account(alice).map(|a| a.available()), Some(350));
/// // A retry of the failed transfer stays failed, even after a top-up.
/// let retry = ledger.apply(now + 1, &[
///     Event::CreateTransfer(Transfer::new(TransferId(14), bank, alice, Credits::new(1000))),
///     Event::CreateTransfer(Transfer::new(TransferId(13), alice, bank, Credits::new(351))),
/// ])?;
/// assert_eq!(retry, [EventResult::Ok, EventResult::AlreadyFailed]);
/// # Ok::<(), paygo_ledger::LedgerError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Ledger {
    /// Accounts by id, with their balances in the table itself (one probe per account),
    /// and their ids in creation order.
    accounts: Accounts,
    account_order: Vec<u128>,
    /// Transfers in creation order; `transfer_index` holds their positions, found by the
    /// id in the record they point to. Appending to a vector keeps the records' writes
    /// sequential, and the index takes 8 bytes a slot and a control byte (a map from id
    /// to position, 32 and one).
    transfers: Vec<Stored>,
    transfer_index: HashTable<usize>,
    failed: HashMap<u128, EventResult, IdBuild>,
    /// Holds by expiry time. Entries of holds posted or voided since stay until their time
    /// comes and are skipped then (lazy deletion: a post never searches the heap).
    expiries: BinaryHeap<Reverse<(u64, u128)>>,
    last_timestamp_ns: u64,
    total_max: u128,
    /// The idempotency window, if any (fixed when the ledger is made; kept in snapshots).
    window: Option<IdWindow>,
    /// With a window: ids whose time is before this are forgotten (answered
    /// [`EventResult::IdOlderThanWindow`]). Only grows; kept in snapshots, so that a store
    /// reopened never remembers less or answers differently.
    forgotten_before_ns: u64,
    /// With a window: compact when `transfers` reaches this length.
    compact_at_len: usize,
}

impl Default for Ledger {
    fn default() -> Ledger {
        Ledger {
            accounts: Accounts::default(),
            account_order: Vec::new(),
            transfers: Vec::new(),
            transfer_index: HashTable::new(),
            failed: HashMap::default(),
            expiries: BinaryHeap::new(),
            last_timestamp_ns: 0,
            total_max: ACCOUNT_TOTAL_MAX,
            window: None,
            forgotten_before_ns: 0,
            compact_at_len: COMPACT_MIN,
        }
    }
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// An empty ledger with room for `accounts` accounts and `transfers` transfers, its
    /// memory allocated and touched now, as TigerBeetle allocates at startup: until it holds
    /// more than that, a batch never waits for the operating system to map a page or for a
    /// table to grow. (A ledger created with [`Ledger::new`] grows as it goes.)
    pub fn with_capacity(accounts: usize, transfers: usize) -> Ledger {
        let mut ledger = Ledger {
            accounts: Accounts::with_capacity(accounts),
            account_order: Vec::with_capacity(accounts),
            transfers: Vec::with_capacity(transfers),
            transfer_index: HashTable::with_capacity(transfers),
            ..Ledger::default()
        };
        // Touch every page: fill with placeholders, then empty. `clear` keeps the capacity,
        // and the tables' buckets stay mapped.
        for i in 0..transfers {
            ledger
                .transfer_index
                .insert_unique(id_hash(i as u128), i, |&p| id_hash(p as u128));
        }
        ledger.transfer_index.clear();
        ledger.transfers.resize(transfers, Stored::placeholder());
        ledger.transfers.clear();
        for i in 0..accounts {
            ledger
                .accounts
                .insert(AccountRow::new(&Account::new(AccountId(i as u128)), 0));
        }
        ledger.accounts.clear();
        ledger.account_order.resize(accounts, 0);
        ledger.account_order.clear();
        ledger
    }

    /// The same ledger with a lower limit on any account's totals (pending or posted,
    /// debits or credits), at most [`ACCOUNT_TOTAL_MAX`]: a transfer that would pass it
    /// fails with an `Overflows…` result.
    #[must_use]
    pub fn with_account_total_max(mut self, total_max: u128) -> Ledger {
        self.total_max = total_max.min(ACCOUNT_TOTAL_MAX);
        self
    }

    /// The same ledger with an idempotency window (see [`IdWindow`]): transfer ids must
    /// then be time-ordered and the clock given to [`Ledger::apply`] nanoseconds since the
    /// Unix epoch. Memory then holds the transfers of the window, open holds and accounts
    /// (at most about twice the window's transfers between compactions), not every
    /// transfer ever made. Set it on a new ledger: it is kept in snapshots and a durable
    /// store keeps the window it was created with.
    #[must_use]
    pub fn with_id_window(mut self, window: IdWindow) -> Ledger {
        self.window = Some(window);
        self
    }

    /// The idempotency window, if the ledger has one.
    pub fn id_window(&self) -> Option<IdWindow> {
        self.window
    }

    /// With a window: ids whose time (nanoseconds since the Unix epoch) is before this are
    /// forgotten and answered [`EventResult::IdOlderThanWindow`]; 0 without a window.
    pub fn forgotten_before_ns(&self) -> u64 {
        self.forgotten_before_ns
    }

    /// Whether a stored transfer is still part of the ledger's state: always without a
    /// window; with one, if its id is not forgotten or it is an open hold.
    fn is_kept(&self, s: &Stored) -> bool {
        self.window.is_none() || s.is_pending() || id_time_ns(s.id) >= u128::from(self.forgotten_before_ns)
    }

    /// Drops from memory the transfers and remembered failures that are forgotten (see
    /// [`IdWindow`]), and the expiry entries of holds no longer open. Only memory changes:
    /// the answers to every event and the state stay the same, since forgotten ids are
    /// answered by their time. A ledger with a window does this on its own when its
    /// transfers double; this does it now (it takes time linear in the transfers held).
    /// Nothing happens without a window.
    pub fn compact(&mut self) {
        if self.window.is_none() {
            return;
        }
        let floor = u128::from(self.forgotten_before_ns);
        self.transfers.retain(|s| s.is_pending() || id_time_ns(s.id) >= floor);
        self.transfer_index.clear();
        let transfers = &self.transfers;
        for (p, s) in transfers.iter().enumerate() {
            self.transfer_index
                .insert_unique(id_hash(s.id), p, |&q| position_hash(transfers, q));
        }
        self.failed.retain(|&id, _| id_time_ns(id) >= floor);
        let expiries = std::mem::take(&mut self.expiries).into_vec();
        self.expiries = expiries
            .into_iter()
            .filter(|Reverse((at, id))| self.stored(*id).is_some_and(|s| s.expires_at_ns() == Some(*at)))
            .collect();
        self.compact_at_len = self.transfers.len().saturating_mul(2).max(COMPACT_MIN);
    }

    /// Moves out of memory every transfer that is neither an open hold nor kept by `keep`,
    /// and every remembered failure, and returns the transfers moved out, in the order
    /// they were applied. Balances, open holds and their expiries stay: the ledger's
    /// state is the same, only its memory of settled transfers is gone.
    ///
    /// For a store that keeps settled transfers elsewhere (a database table) and a caller
    /// that never submits an id twice (the billing layer mints a fresh id for every
    /// transfer): after this, the id of a transfer moved out is no longer recognised as a
    /// duplicate, and a post or void naming a pending transfer moved out is answered
    /// [`EventResult::PendingTransferNotFound`]. `keep` sees each settled transfer once.
    pub fn take_transfers(&mut self, mut keep: impl FnMut(&TransferRecord) -> bool) -> Vec<TransferRecord> {
        let mut taken = Vec::new();
        let mut kept = Vec::with_capacity(self.transfers.len());
        for stored in std::mem::take(&mut self.transfers) {
            if stored.is_pending() || keep(&stored.record()) {
                kept.push(stored);
            } else {
                taken.push(stored.record());
            }
        }
        self.transfers = kept;
        self.transfer_index.clear();
        let transfers = &self.transfers;
        for (p, s) in transfers.iter().enumerate() {
            self.transfer_index
                .insert_unique(id_hash(s.id), p, |&q| position_hash(transfers, q));
        }
        self.failed.clear();
        let expiries = std::mem::take(&mut self.expiries).into_vec();
        self.expiries = expiries
            .into_iter()
            .filter(|Reverse((at, id))| self.stored(*id).is_some_and(|s| s.expires_at_ns() == Some(*at)))
            .collect();
        taken
    }

    /// With a window, at a batch's time: moves the forgotten-before time on, and compacts
    /// when the transfers held have doubled. Out of line, so that the path without a
    /// window stays as small as it was.
    #[cold]
    #[inline(never)]
    fn advance_window(&mut self, batch_ts: u64) {
        if let Some(window) = self.window {
            self.forgotten_before_ns = self.forgotten_before_ns.max(batch_ts.saturating_sub(window.past_ns));
            if self.transfers.len() >= self.compact_at_len {
                self.compact();
            }
        }
    }

    /// With `window`, the time (ns) before which ids are forgotten at event time `ts`.
    fn floor_ns(&self, window: IdWindow, ts: u64) -> u128 {
        u128::from(ts.saturating_sub(window.past_ns).max(self.forgotten_before_ns))
    }

    /// With a window, the answer to a transfer whose id is outside it, at event time `ts`.
    #[cold]
    #[inline(never)]
    fn window_check(&self, t: &Transfer, ts: u64) -> Option<EventResult> {
        let window = self.window?;
        let floor = self.floor_ns(window, ts);
        let time = id_time_ns(t.id.0);
        if time < floor {
            return Some(EventResult::IdOlderThanWindow);
        }
        if time > u128::from(ts) + u128::from(window.ahead_ns) {
            return Some(EventResult::IdAheadOfWindow);
        }
        None
    }

    /// With a window, whether a new post or void at event time `ts` names a pending
    /// transfer that is forgotten (older than the window and not an open hold).
    #[cold]
    #[inline(never)]
    fn pending_forgotten(&self, t: &Transfer, ts: u64) -> bool {
        let (Some(window), Some(pending)) = (self.window, t.pending_id) else {
            return false;
        };
        id_time_ns(pending.0) < self.floor_ns(window, ts) && !self.stored(pending.0).is_some_and(Stored::is_pending)
    }

    /// Applies a batch at time `now_ns` (nanoseconds of the caller's clock) and returns one
    /// result per event, in order.
    ///
    /// Before the events, every hold whose timeout has passed at the batch's time expires
    /// (its amount is released). Each event gets a timestamp: the batch's time (or one past
    /// the previous batch's last timestamp, if the clock went back) plus its position, so
    /// timestamps are unique and increasing. A linked chain (events flagged linked, ended
    /// by the first that is not) succeeds or fails as a whole: when one event fails, it
    /// reports its own result and the others [`EventResult::LinkedEventFailed`].
    ///
    /// # Errors
    ///
    /// [`LedgerError::BatchTooLarge`] for more than [`BATCH_EVENTS_MAX`] events; nothing
    /// is applied then.
    pub fn apply(&mut self, now_ns: u64, events: &[Event]) -> Result<Vec<EventResult>, LedgerError> {
        if events.len() > BATCH_EVENTS_MAX {
            return Err(LedgerError::BatchTooLarge {
                events: events.len(),
                max: BATCH_EVENTS_MAX,
            });
        }
        let batch_ts = now_ns.max(self.last_timestamp_ns.saturating_add(1));
        self.expire(batch_ts);
        if self.window.is_some() {
            self.advance_window(batch_ts);
        }
        let mut results = vec![EventResult::Ok; events.len()];
        // A chain still open at the end of the batch is refused as a whole.
        let open_from = match events.last() {
            Some(last) if last.is_linked() => {
                let start = events.iter().rposition(|e| !e.is_linked()).map_or(0, |i| i + 1);
                for r in &mut results[start..] {
                    *r = EventResult::LinkedEventChainOpen;
                }
                start
            }
            _ => events.len(),
        };
        let mut undo: Vec<Undo> = Vec::new();
        let mut chain_start: Option<usize> = None;
        let mut i = 0;
        while i < open_from {
            let event = &events[i];
            let ts = batch_ts.saturating_add(i as u64);
            let linked = event.is_linked();
            if linked && chain_start.is_none() {
                chain_start = Some(i);
                undo.clear();
            }
            let log = chain_start.map(|_| &mut undo);
            let result = self.apply_one(event, ts, log);
            results[i] = result;
            if !result.is_ok() {
                self.remember_failure(event, result);
                if let Some(start) = chain_start.take() {
                    self.rollback(&mut undo);
                    let end = (i..open_from)
                        .find(|&j| !events[j].is_linked())
                        .unwrap_or(open_from - 1);
                    for (j, r) in results.iter_mut().enumerate().take(end + 1).skip(start) {
                        if j != i {
                            *r = EventResult::LinkedEventFailed;
                        }
                    }
                    i = end + 1;
                    continue;
                }
            }
            if !linked {
                chain_start = None;
            }
            i += 1;
        }
        self.last_timestamp_ns = batch_ts.saturating_add(events.len().saturating_sub(1) as u64);
        debug_assert!(self.check_invariants().is_ok(), "{:?}", self.check_invariants());
        Ok(results)
    }

    /// The account and its balances.
    pub fn account(&self, id: AccountId) -> Option<AccountBalance> {
        self.accounts.get(&id.0).map(balance_of)
    }

    /// The transfer with this id (with a window: `None` once forgotten, unless it is an
    /// open hold).
    pub fn transfer(&self, id: TransferId) -> Option<TransferRecord> {
        self.stored(id.0).filter(|s| self.is_kept(s)).map(Stored::record)
    }

    /// The result a transfer id failed with, if it did (so that a retry answers
    /// [`EventResult::AlreadyFailed`]); `None` once forgotten.
    pub fn failure(&self, id: TransferId) -> Option<EventResult> {
        let kept = self.window.is_none() || id_time_ns(id.0) >= u128::from(self.forgotten_before_ns);
        self.failed.get(&id.0).copied().filter(|_| kept)
    }

    /// How many accounts the ledger holds.
    pub fn accounts_len(&self) -> usize {
        self.accounts.len()
    }

    /// How many transfers the ledger holds (with a window: those not forgotten, and open
    /// holds).
    pub fn transfers_len(&self) -> usize {
        if self.window.is_none() {
            return self.transfers.len();
        }
        self.transfers.iter().filter(|s| self.is_kept(s)).count()
    }

    /// How many transfers are in memory, forgotten ones not yet compacted away included.
    pub fn transfers_in_memory(&self) -> usize {
        self.transfers.len()
    }

    /// Every account, in creation order.
    pub fn accounts(&self) -> impl Iterator<Item = AccountBalance> + '_ {
        self.account_order
            .iter()
            .filter_map(|id| self.accounts.get(id))
            .map(balance_of)
    }

    /// Every transfer, in creation order (with a window: those not forgotten, and open
    /// holds; the journal keeps the others).
    pub fn transfers(&self) -> impl Iterator<Item = TransferRecord> + '_ {
        self.transfers.iter().filter(|s| self.is_kept(s)).map(Stored::record)
    }

    /// The timestamp of the last event applied.
    pub fn last_timestamp_ns(&self) -> u64 {
        self.last_timestamp_ns
    }

    /// Checks the invariants (see the type's docs), in time linear in the ledger's size.
    ///
    /// # Errors
    ///
    /// [`LedgerError::InvariantViolated`] with the first invariant found broken.
    pub fn check_invariants(&self) -> Result<(), LedgerError> {
        let fail = |what: String| Err(LedgerError::InvariantViolated { what });
        let (mut dp, mut dpo, mut cp, mut cpo) = (0u128, 0u128, 0u128, 0u128);
        for row in self.accounts.values() {
            let totals = [
                row.debits_pending,
                row.debits_posted,
                row.credits_pending,
                row.credits_posted,
            ];
            if totals.iter().any(|&t| t > self.total_max) {
                return fail(format!(
                    "account {} has a total above the limit of {}",
                    row.id, self.total_max
                ));
            }
            // Each total is at most `total_max` (≤ i128::MAX), so the sums of two below
            // cannot overflow; the sums over all accounts can, and are checked.
            let (Some(a), Some(b), Some(c), Some(d)) = (
                dp.checked_add(row.debits_pending),
                dpo.checked_add(row.debits_posted),
                cp.checked_add(row.credits_pending),
                cpo.checked_add(row.credits_posted),
            ) else {
                return fail(format!("the accounts' totals overflow at account {}", row.id));
            };
            (dp, dpo, cp, cpo) = (a, b, c, d);
            let flags = row.flags;
            if flags.contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
                && row.debits_pending + row.debits_posted > row.credits_posted
            {
                return fail(format!("account {} has debits beyond its credits", row.id));
            }
            if flags.contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
                && row.credits_pending + row.credits_posted > row.debits_posted
            {
                return fail(format!("account {} has credits beyond its debits", row.id));
            }
        }
        if dp != cp || dpo != cpo {
            return fail(format!(
                "debits {dp}/{dpo} differ from credits {cp}/{cpo} (pending/posted)"
            ));
        }
        let mut held: HashMap<u128, (u128, u128), IdBuild> = HashMap::default();
        let scheduled: HashSet<(u64, u128)> = self.expiries.iter().map(|Reverse(e)| *e).collect();
        for stored in &self.transfers {
            if stored.is_pending() {
                let amount = u128::from(stored.amount.unsigned_abs());
                let debits = &mut held.entry(stored.debit_account_id).or_default().0;
                let Some(sum) = debits.checked_add(amount) else {
                    return fail(format!("the holds on account {} overflow", stored.debit_account_id));
                };
                *debits = sum;
                let credits = &mut held.entry(stored.credit_account_id).or_default().1;
                let Some(sum) = credits.checked_add(amount) else {
                    return fail(format!("the holds on account {} overflow", stored.credit_account_id));
                };
                *credits = sum;
                if let Some(at) = stored.expires_at_ns()
                    && !scheduled.contains(&(at, stored.id))
                {
                    return fail(format!("hold {} is missing from the expiry index", stored.id));
                }
            }
        }
        for row in self.accounts.values() {
            let (debits, credits) = held.get(&row.id).copied().unwrap_or_default();
            if debits != row.debits_pending || credits != row.credits_pending {
                return fail(format!("account {}: pending totals differ from its open holds", row.id));
            }
        }
        Ok(())
    }

    /// The position of the transfer with this id.
    fn position(&self, id: u128) -> Option<usize> {
        let transfers = &self.transfers;
        self.transfer_index
            .find(id_hash(id), |&p| transfers.get(p).is_some_and(|s| s.id == id))
            .copied()
    }

    fn stored(&self, id: u128) -> Option<&Stored> {
        self.position(id).and_then(|p| self.transfers.get(p))
    }

    fn stored_mut(&mut self, id: u128) -> Option<&mut Stored> {
        self.position(id).and_then(|p| self.transfers.get_mut(p))
    }

    fn append(&mut self, stored: Stored) {
        let hash = id_hash(stored.id);
        self.transfers.push(stored);
        // Pushed first, so that every position the index holds, and hashes again when it
        // grows, is in `transfers`.
        let transfers = &self.transfers;
        self.transfer_index
            .insert_unique(hash, transfers.len() - 1, |&p| position_hash(transfers, p));
    }

    fn remember_failure(&mut self, event: &Event, result: EventResult) {
        if let Event::CreateTransfer(t) = event
            && result.is_transient()
            && result != EventResult::AlreadyFailed
        {
            self.failed.insert(t.id.0, result);
        }
    }

    /// Voids every hold whose timeout is at or before `ts`.
    fn expire(&mut self, ts: u64) {
        while let Some(&Reverse((at, id))) = self.expiries.peek() {
            if at > ts {
                break;
            }
            self.expiries.pop();
            // Skip entries of holds that were posted, voided or rolled back since.
            let Some(stored) = self.stored_mut(id) else {
                continue;
            };
            if stored.expires_at_ns() != Some(at) {
                continue;
            }
            stored.status = STATUS_EXPIRED;
            let (amount, dr, cr) = (stored.amount, stored.debit_account_id, stored.credit_account_id);
            self.release(amount, dr, cr);
        }
    }

    /// Takes a hold's amount off the pending totals of its two accounts.
    fn release(&mut self, amount: i64, debit_account_id: u128, credit_account_id: u128) {
        let amount = u128::from(amount.unsigned_abs());
        for (id, debit) in [(debit_account_id, true), (credit_account_id, false)] {
            if let Some(r) = self.accounts.get_mut(&id) {
                // A hold's amount is part of the pending total it was added to.
                if debit {
                    r.debits_pending -= amount;
                } else {
                    r.credits_pending -= amount;
                }
            }
        }
    }

    fn snapshot(&self, row: u128) -> Option<Undo> {
        self.accounts.get(&row).map(|r| balances_undo(row, r))
    }

    fn rollback(&mut self, undo: &mut Vec<Undo>) {
        while let Some(step) = undo.pop() {
            match step {
                Undo::AccountCreated(id) => {
                    self.accounts.remove(&id);
                    self.account_order.pop();
                }
                Undo::AccountClosed(id) => {
                    if let Some(r) = self.accounts.get_mut(&id) {
                        r.closed = false;
                    }
                }
                Undo::Balances {
                    row,
                    debits_pending,
                    debits_posted,
                    credits_pending,
                    credits_posted,
                } => {
                    if let Some(r) = self.accounts.get_mut(&row) {
                        r.debits_pending = debits_pending;
                        r.debits_posted = debits_posted;
                        r.credits_pending = credits_pending;
                        r.credits_posted = credits_posted;
                    }
                }
                Undo::TransferCreated(id) => {
                    // Undone in reverse order: the transfer is the last one appended.
                    let transfers = &self.transfers;
                    if let Ok(entry) = self
                        .transfer_index
                        .find_entry(id_hash(id), |&p| transfers.get(p).is_some_and(|s| s.id == id))
                    {
                        entry.remove();
                    }
                    self.transfers.pop();
                }
                Undo::StatusChanged { id, status } => {
                    if let Some(s) = self.stored_mut(id) {
                        s.set_status(status);
                    }
                }
            }
        }
    }

    fn apply_one(&mut self, event: &Event, ts: u64, undo: Option<&mut Vec<Undo>>) -> EventResult {
        match event {
            Event::CreateAccount(account) => self.create_account(account, ts, undo),
            Event::CreateTransfer(transfer) => self.create_transfer(transfer, ts, undo),
            Event::CloseAccount { id, .. } => self.close_account(*id, undo),
        }
    }

    fn create_account(&mut self, a: &Account, ts: u64, undo: Option<&mut Vec<Undo>>) -> EventResult {
        if a.id.0 == 0 {
            return EventResult::IdMustNotBeZero;
        }
        if a.id.0 == u128::MAX {
            return EventResult::IdMustNotBeIntMax;
        }
        if a.flags.has_reserved() {
            return EventResult::ReservedFlag;
        }
        if a.flags
            .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS | AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
        {
            return EventResult::FlagsAreMutuallyExclusive;
        }
        if let Some(row) = self.accounts.get(&a.id.0) {
            let existing = &row.account();
            let strip = |f: AccountFlags| AccountFlags(f.0 & !AccountFlags::LINKED.0);
            return if strip(existing.flags) != strip(a.flags) {
                EventResult::ExistsWithDifferentFlags
            } else if existing.code != a.code {
                EventResult::ExistsWithDifferentCode
            } else if existing.user_data != a.user_data {
                EventResult::ExistsWithDifferentUserData
            } else {
                EventResult::Exists
            };
        }
        self.account_order.push(a.id.0);
        self.accounts.insert(AccountRow::new(a, ts));
        if let Some(log) = undo {
            log.push(Undo::AccountCreated(a.id.0));
        }
        EventResult::Ok
    }

    fn close_account(&mut self, id: AccountId, undo: Option<&mut Vec<Undo>>) -> EventResult {
        if id.0 == 0 {
            return EventResult::IdMustNotBeZero;
        }
        let Some(row) = self.accounts.get_mut(&id.0) else {
            return EventResult::AccountNotFound;
        };
        if row.closed {
            return EventResult::AccountAlreadyClosed;
        }
        row.closed = true;
        if let Some(log) = undo {
            log.push(Undo::AccountClosed(id.0));
        }
        EventResult::Ok
    }

    fn create_transfer(&mut self, t: &Transfer, ts: u64, undo: Option<&mut Vec<Undo>>) -> EventResult {
        if let Some(result) = validate(t) {
            return result;
        }
        if self.window.is_some()
            && let Some(result) = self.window_check(t, ts)
        {
            return result;
        }
        if let Some(existing) = self.stored(t.id.0) {
            return compare(&existing.transfer(), t);
        }
        if !self.failed.is_empty() && self.failed.contains_key(&t.id.0) {
            return EventResult::AlreadyFailed;
        }
        if self.window.is_some() && self.pending_forgotten(t, ts) {
            return EventResult::PendingIdOlderThanWindow;
        }
        if t.flags.contains(TransferFlags::POST_PENDING) || t.flags.contains(TransferFlags::VOID_PENDING) {
            self.resolve_pending(t, ts, undo)
        } else {
            self.move_amount(t, ts, undo)
        }
    }

    fn move_amount(&mut self, t: &Transfer, ts: u64, undo: Option<&mut Vec<Undo>>) -> EventResult {
        let (dr, cr) = (t.debit_account_id.0, t.credit_account_id.0);
        if dr == cr {
            // `validate` refused this already; checked again so that the result stays this
            // one (`get_disjoint_mut` answers "not found" for one id asked twice).
            return EventResult::AccountsMustBeDifferent;
        }
        // One probe per account, for the checks and the update alike.
        let [d, c] = self.accounts.get_disjoint_mut([&dr, &cr]);
        let Some(d) = d else {
            return EventResult::DebitAccountNotFound;
        };
        let Some(c) = c else {
            return EventResult::CreditAccountNotFound;
        };
        if d.closed {
            return EventResult::DebitAccountClosed;
        }
        if c.closed {
            return EventResult::CreditAccountClosed;
        }
        // `validate` checked the amount is positive.
        let amount = u128::from(t.amount.get().unsigned_abs());
        let pending = t.flags.contains(TransferFlags::PENDING);
        let total_max = self.total_max;
        let fits = |total: u128| total.checked_add(amount).is_some_and(|v| v <= total_max);
        if pending {
            if !fits(d.debits_pending) {
                return EventResult::OverflowsDebitsPending;
            }
            if !fits(c.credits_pending) {
                return EventResult::OverflowsCreditsPending;
            }
        } else {
            if !fits(d.debits_posted) {
                return EventResult::OverflowsDebitsPosted;
            }
            if !fits(c.credits_posted) {
                return EventResult::OverflowsCreditsPosted;
            }
        }
        let expires_at_ns = if pending && t.timeout_ms > 0 {
            match expiry(ts, t.timeout_ms) {
                Some(at) => Some(at),
                None => return EventResult::OverflowsTimeout,
            }
        } else {
            None
        };
        if d.flags.contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
            && d.debits_pending + d.debits_posted + amount > d.credits_posted
        {
            return EventResult::ExceedsCredits;
        }
        if c.flags.contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
            && c.credits_pending + c.credits_posted + amount > c.debits_posted
        {
            return EventResult::ExceedsDebits;
        }
        if let Some(log) = undo {
            log.push(balances_undo(dr, d));
            log.push(balances_undo(cr, c));
            // A rolled-back hold leaves its expiry entry behind; `expire` skips it.
            log.push(Undo::TransferCreated(t.id.0));
        }
        if pending {
            d.debits_pending += amount;
            c.credits_pending += amount;
        } else {
            d.debits_posted += amount;
            c.credits_posted += amount;
        }
        if let Some(at) = expires_at_ns {
            self.expiries.push(Reverse((at, t.id.0)));
        }
        self.append(Stored::new(t, ts, pending.then_some(PendingStatus::Pending)));
        EventResult::Ok
    }

    fn resolve_pending(&mut self, t: &Transfer, ts: u64, undo: Option<&mut Vec<Undo>>) -> EventResult {
        // `validate` checked that a post or void names a pending id.
        let pending_id = t.pending_id.unwrap_or_default();
        let Some(stored) = self.stored(pending_id.0) else {
            return EventResult::PendingTransferNotFound;
        };
        let p = stored.transfer();
        if !p.flags.contains(TransferFlags::PENDING) {
            return EventResult::PendingTransferNotPending;
        }
        if t.debit_account_id.0 != 0 && t.debit_account_id != p.debit_account_id {
            return EventResult::PendingTransferHasDifferentDebitAccountId;
        }
        if t.credit_account_id.0 != 0 && t.credit_account_id != p.credit_account_id {
            return EventResult::PendingTransferHasDifferentCreditAccountId;
        }
        match stored.status() {
            Some(PendingStatus::Posted(_)) => return EventResult::PendingTransferAlreadyPosted,
            Some(PendingStatus::Voided) => return EventResult::PendingTransferAlreadyVoided,
            Some(PendingStatus::Expired) => return EventResult::PendingTransferExpired,
            Some(PendingStatus::Pending) | None => {}
        }
        let post = t.flags.contains(TransferFlags::POST_PENDING);
        let amount = if post {
            if t.amount > p.amount {
                return EventResult::ExceedsPendingTransferAmount;
            }
            t.amount
        } else {
            if !t.amount.is_zero() && t.amount != p.amount {
                return EventResult::PendingTransferHasDifferentAmount;
            }
            p.amount
        };
        let (dr, cr) = (p.debit_account_id.0, p.credit_account_id.0);
        let mut undo = undo;
        if let Some(log) = undo.as_deref_mut() {
            log.push(Undo::StatusChanged {
                id: pending_id.0,
                status: Some(PendingStatus::Pending),
            });
            // Its expiry, if any, comes back with the status: it is derived from it.
            log.push(Undo::TransferCreated(t.id.0));
        }
        // Release the hold and post what is posted, one table probe per account. Posting at
        // most what was held keeps both totals within what they were with the hold, so no
        // limit or overflow check is needed. The pending transfer's accounts existed when it
        // was created, and accounts are never removed (outside a rolled-back chain, which
        // also removes the hold).
        let held = u128::from(p.amount.get().unsigned_abs());
        let posted = if post {
            u128::from(amount.get().unsigned_abs())
        } else {
            0
        };
        if let Some(log) = undo {
            log.extend(self.snapshot(dr));
            log.extend(self.snapshot(cr));
        }
        if let Some(d) = self.accounts.get_mut(&dr) {
            d.debits_pending -= held;
            d.debits_posted += posted;
        }
        if let Some(c) = self.accounts.get_mut(&cr) {
            c.credits_pending -= held;
            c.credits_posted += posted;
        }
        if let Some(s) = self.stored_mut(pending_id.0) {
            s.set_status(Some(if post {
                PendingStatus::Posted(amount)
            } else {
                PendingStatus::Voided
            }));
        }
        // The body is kept as the caller sent it, so that a retry compares equal.
        self.append(Stored::new(t, ts, None));
        EventResult::Ok
    }
}

impl Ledger {
    /// Reserves room for `transfers` more transfers (replay calls it with the journal's
    /// size, so that the tables do not grow step by step). Unlike [`Ledger::with_capacity`]
    /// it does not touch the memory.
    pub fn reserve(&mut self, transfers: usize) {
        self.transfers.reserve(transfers);
        let stored = &self.transfers;
        self.transfer_index.reserve(transfers, |&p| position_hash(stored, p));
    }

    /// Moves the transfers into room prepared with [`Spare::prepare`] (on another thread,
    /// say), if it holds at least as many as the room they are in: from then on, until it
    /// is full, appending a transfer never waits for a page to be mapped. A smaller spare
    /// is dropped.
    pub fn add_spare(&mut self, spare: Spare) {
        let Spare(mut room) = spare;
        if room.capacity() >= self.transfers.capacity() {
            room.clear();
            room.extend_from_slice(&self.transfers);
            self.transfers = room;
        }
    }

    /// Appends the whole state (a snapshot's body), as [`Durable::encode_state`] does; a
    /// machine built on the ledger embeds it in its own state with this.
    ///
    /// [`Durable::encode_state`]: crate::durable::Durable::encode_state
    pub fn write_state(&self, out: &mut Vec<u8>) {
        use crate::durable::codec::{Put, put_event, put_result};
        // Room for the whole state at once (an account is 177 bytes, a transfer 130): no
        // copy of a growing buffer while the handle's lock is held.
        let kept = if self.window.is_none() {
            self.transfers.len()
        } else {
            self.transfers_len()
        };
        out.reserve(
            64usize
                .saturating_add(self.account_order.len().saturating_mul(177))
                .saturating_add(kept.saturating_mul(130))
                .saturating_add(self.failed.len().saturating_mul(17)),
        );
        out.put_u64(self.last_timestamp_ns);
        out.put_u128(self.total_max);
        // The idempotency window (store format 4): a tag, then the window and the time
        // before which ids are forgotten.
        match self.window {
            None => out.put_u8(0),
            Some(window) => {
                out.put_u8(1);
                out.put_u64(window.past_ns);
                out.put_u64(window.ahead_ns);
                out.put_u64(self.forgotten_before_ns);
            }
        }
        out.put_len(self.account_order.len());
        for id in &self.account_order {
            let Some(row) = self.accounts.get(id) else { continue };
            put_event(out, &Event::CreateAccount(row.account()));
            out.put_bool(row.closed);
            for v in [
                row.debits_pending,
                row.debits_posted,
                row.credits_pending,
                row.credits_posted,
            ] {
                out.put_u128(v);
            }
            out.put_u64(row.timestamp_ns);
        }
        // Forgotten transfers are not part of the state: a snapshot is the same whenever
        // the ledger last compacted.
        out.put_len(self.transfers_len());
        for s in self.transfers.iter().filter(|s| self.is_kept(s)) {
            put_event(out, &Event::CreateTransfer(s.transfer()));
            out.put_u64(s.timestamp_ns);
            // The status tags are the snapshot's: 0 none, 1 pending, 2 posted, 3 voided, 4
            // expired.
            out.put_u8(s.status);
            out.put_i64(s.posted);
            out.put_opt_u64(s.expires_at_ns());
        }
        let mut failed: Vec<(u128, EventResult)> = self
            .failed
            .iter()
            .filter(|(id, _)| self.failure(TransferId(**id)).is_some())
            .map(|(k, v)| (*k, *v))
            .collect();
        failed.sort_unstable();
        out.put_len(failed.len());
        for (id, result) in failed {
            out.put_u128(id);
            put_result(out, result);
        }
    }

    /// Reads a state written by [`Ledger::write_state`] from `r`, with room for
    /// `transfers_more` transfers beyond it, and checks its invariants.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Decode`] for bytes that are not such a state, and
    /// [`LedgerError::InvariantViolated`] for a state whose invariants do not hold.
    pub fn read_state(r: &mut crate::durable::codec::Reader<'_>, transfers_more: usize) -> Result<Ledger, LedgerError> {
        use crate::durable::codec::{EVENT_LEN, bad, get_event};
        let last_timestamp_ns = r.u64()?;
        let total_max = r.u128()?;
        let (window, forgotten_before_ns) = get_window(r)?;
        let accounts = r.len()?;
        let mut ledger = Ledger {
            accounts: Accounts::with_capacity(accounts),
            account_order: Vec::with_capacity(accounts),
            last_timestamp_ns,
            total_max: total_max.min(ACCOUNT_TOTAL_MAX),
            window,
            forgotten_before_ns,
            ..Ledger::default()
        };
        for _ in 0..accounts {
            let Event::CreateAccount(account) = get_event(r.take(EVENT_LEN)?)? else {
                return Err(bad("an account was expected in the snapshot"));
            };
            if account.id.0 == 0 || account.id.0 == u128::MAX {
                return Err(bad(format!("account id {} cannot have been created", account.id)));
            }
            let row = AccountRow {
                closed: r.bool()?,
                debits_pending: r.u128()?,
                debits_posted: r.u128()?,
                credits_pending: r.u128()?,
                credits_posted: r.u128()?,
                timestamp_ns: r.u64()?,
                ..AccountRow::new(&account, 0)
            };
            if !ledger.accounts.insert(row) {
                return Err(bad(format!("account {} appears twice in the snapshot", account.id)));
            }
            ledger.account_order.push(account.id.0);
        }
        let transfers = r.len()?;
        ledger.reserve(transfers.saturating_add(transfers_more));
        for _ in 0..transfers {
            let Event::CreateTransfer(transfer) = get_event(r.take(EVENT_LEN)?)? else {
                return Err(bad("a transfer was expected in the snapshot"));
            };
            let timestamp_ns = r.u64()?;
            let (tag, posted) = (r.u8()?, r.i64()?);
            let status = match tag {
                0 => None,
                1 => Some(PendingStatus::Pending),
                2 => Some(PendingStatus::Posted(Credits::new(posted))),
                3 => Some(PendingStatus::Voided),
                4 => Some(PendingStatus::Expired),
                other => return Err(bad(format!("pending status {other} is unknown"))),
            };
            let expires_at_ns = r.opt_u64()?;
            if ledger.position(transfer.id.0).is_some() {
                return Err(bad(format!("transfer {} appears twice in the snapshot", transfer.id)));
            }
            // Only transfers that passed the checks are stored: one that fails them (an id of
            // 0, a post naming transfer 0, …) or whose status does not fit its flags cannot
            // have been written by the engine, and would break what the engine relies on.
            if let Some(result) = validate(&transfer) {
                return Err(bad(format!("transfer {} fails its own checks ({result})", transfer.id)));
            }
            ledger.check_pending_named(&transfer)?;
            if status.is_some() != transfer.flags.contains(TransferFlags::PENDING) {
                return Err(bad(format!(
                    "transfer {}'s pending status does not fit its flags",
                    transfer.id
                )));
            }
            let stored = Stored::new(&transfer, timestamp_ns, status);
            if stored.expires_at_ns() != expires_at_ns {
                return Err(bad(format!(
                    "transfer {}'s expiry does not follow from its time, timeout and status",
                    transfer.id
                )));
            }
            if !ledger.is_kept(&stored) {
                return Err(bad(format!(
                    "transfer {} is older than the window and not an open hold: it cannot have been kept",
                    transfer.id
                )));
            }
            if let Some(at) = expires_at_ns {
                ledger.expiries.push(Reverse((at, transfer.id.0)));
            }
            ledger.append(stored);
        }
        let failed = r.len()?;
        for _ in 0..failed {
            let id = r.u128()?;
            let result = r.result()?;
            ledger.failed.insert(id, result);
        }
        ledger.compact_at_len = ledger.transfers.len().saturating_mul(2).max(COMPACT_MIN);
        ledger.check_invariants()?;
        Ok(ledger)
    }
}

impl Ledger {
    /// For a snapshot being read: a stored post or void names a transfer stored before it
    /// (the engine refuses one whose pending transfer it cannot find, so never stores one
    /// naming 0), unless, with a window, that transfer was forgotten.
    fn check_pending_named(&self, transfer: &Transfer) -> Result<(), LedgerError> {
        if let Some(pending) = transfer.pending_id
            && self.position(pending.0).is_none()
            && (pending.0 == 0
                || self.window.is_none()
                || id_time_ns(pending.0) >= u128::from(self.forgotten_before_ns))
        {
            return Err(crate::durable::codec::bad(format!(
                "transfer {} names pending transfer {pending}, which the snapshot does not hold before it",
                transfer.id
            )));
        }
        Ok(())
    }
}

/// Reads the window part of a state: the window, if any, and the time before which ids
/// are forgotten.
fn get_window(r: &mut crate::durable::codec::Reader<'_>) -> Result<(Option<IdWindow>, u64), LedgerError> {
    match r.u8()? {
        0 => Ok((None, 0)),
        1 => {
            let window = IdWindow {
                past_ns: r.u64()?,
                ahead_ns: r.u64()?,
            };
            Ok((Some(window), r.u64()?))
        }
        other => Err(crate::durable::codec::bad(format!(
            "window tag {other} is unknown: expected 0 or 1"
        ))),
    }
}

/// The checks of a transfer on its own, before the ledger's state is read.
fn validate(t: &Transfer) -> Option<EventResult> {
    let f = t.flags;
    let result = if t.id.0 == 0 {
        EventResult::IdMustNotBeZero
    } else if t.id.0 == u128::MAX {
        EventResult::IdMustNotBeIntMax
    } else if f.has_reserved() {
        EventResult::ReservedFlag
    } else if [
        TransferFlags::PENDING | TransferFlags::POST_PENDING,
        TransferFlags::PENDING | TransferFlags::VOID_PENDING,
        TransferFlags::POST_PENDING | TransferFlags::VOID_PENDING,
    ]
    .iter()
    .any(|&pair| f.contains(pair))
    {
        EventResult::FlagsAreMutuallyExclusive
    } else if f.contains(TransferFlags::POST_PENDING) || f.contains(TransferFlags::VOID_PENDING) {
        match t.pending_id {
            None => EventResult::PendingIdMustBeSet,
            Some(p) if p == t.id => EventResult::PendingIdMustBeDifferent,
            Some(_) if t.timeout_ms != 0 => EventResult::TimeoutReservedForPendingTransfer,
            Some(_) if f.contains(TransferFlags::POST_PENDING) && t.amount <= Credits::ZERO => {
                EventResult::AmountMustBePositive
            }
            Some(_) if t.amount < Credits::ZERO => EventResult::AmountMustBePositive,
            Some(_) => return None,
        }
    } else if t.debit_account_id.0 == 0 {
        EventResult::DebitAccountIdMustNotBeZero
    } else if t.credit_account_id.0 == 0 {
        EventResult::CreditAccountIdMustNotBeZero
    } else if t.debit_account_id == t.credit_account_id {
        EventResult::AccountsMustBeDifferent
    } else if t.pending_id.is_some() {
        EventResult::PendingIdMustBeNone
    } else if t.timeout_ms != 0 && !f.contains(TransferFlags::PENDING) {
        EventResult::TimeoutReservedForPendingTransfer
    } else if t.amount <= Credits::ZERO {
        EventResult::AmountMustBePositive
    } else {
        return None;
    };
    Some(result)
}

/// The result of a retry: exists, or the first field that differs.
fn compare(existing: &Transfer, t: &Transfer) -> EventResult {
    let strip = |f: TransferFlags| TransferFlags(f.0 & !TransferFlags::LINKED.0);
    if strip(existing.flags) != strip(t.flags) {
        EventResult::ExistsWithDifferentFlags
    } else if existing.debit_account_id != t.debit_account_id {
        EventResult::ExistsWithDifferentDebitAccountId
    } else if existing.credit_account_id != t.credit_account_id {
        EventResult::ExistsWithDifferentCreditAccountId
    } else if existing.amount != t.amount {
        EventResult::ExistsWithDifferentAmount
    } else if existing.pending_id != t.pending_id {
        EventResult::ExistsWithDifferentPendingId
    } else if existing.timeout_ms != t.timeout_ms {
        EventResult::ExistsWithDifferentTimeout
    } else if existing.code != t.code {
        EventResult::ExistsWithDifferentCode
    } else if existing.user_data != t.user_data {
        EventResult::ExistsWithDifferentUserData
    } else {
        EventResult::Exists
    }
}

fn balance_of(row: &AccountRow) -> AccountBalance {
    AccountBalance {
        account: row.account(),
        closed: row.closed,
        debits_pending: row.debits_pending,
        debits_posted: row.debits_posted,
        credits_pending: row.credits_pending,
        credits_posted: row.credits_posted,
        timestamp_ns: row.timestamp_ns,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::durable::codec::Reader;

    /// A ledger with a hold of id `hold` between two accounts.
    fn with_hold(hold: u128) -> Ledger {
        let mut ledger = Ledger::new();
        let results = ledger
            .apply(
                1,
                &[
                    Event::CreateAccount(Account::new(AccountId(1))),
                    Event::CreateAccount(Account::new(AccountId(2))),
                    Event::CreateTransfer(Transfer::pending(
                        TransferId(hold),
                        AccountId(1),
                        AccountId(2),
                        Credits::new(5),
                        1_000,
                    )),
                ],
            )
            .unwrap();
        assert!(results.iter().all(|r| r.is_ok()));
        ledger
    }

    fn decode(bytes: &[u8]) -> Result<Ledger, LedgerError> {
        Ledger::read_state(&mut Reader::new(bytes), 0)
    }

    /// The snapshot of `with_hold(hold)` with the hold's 16 id bytes replaced.
    fn doctored(hold: u128, new_id: u128) -> Vec<u8> {
        let mut bytes = Vec::new();
        with_hold(hold).write_state(&mut bytes);
        let at = bytes.windows(16).position(|w| w == hold.to_le_bytes()).unwrap();
        bytes[at..at + 16].copy_from_slice(&new_id.to_le_bytes());
        bytes
    }

    #[test]
    fn a_snapshot_round_trips_and_keeps_the_hold_s_expiry() {
        let hold = 0x5EED_0000_0000_0000_0000_0000_0000_0001;
        let ledger = with_hold(hold);
        let mut bytes = Vec::new();
        ledger.write_state(&mut bytes);
        let mut back = decode(&bytes).unwrap();
        assert_eq!(
            back.transfers().collect::<Vec<_>>(),
            ledger.transfers().collect::<Vec<_>>()
        );
        // The hold (the batch's third event, timestamp 3) expires at 3 + 1 s, in the
        // decoded ledger too: still held a nanosecond before, expired at that time.
        back.apply(1_000_000_002, &[]).unwrap();
        assert_eq!(
            back.transfer(TransferId(hold)).and_then(|t| t.status),
            Some(PendingStatus::Pending)
        );
        back.apply(1_000_000_003, &[]).unwrap();
        assert_eq!(
            back.transfer(TransferId(hold)).and_then(|t| t.status),
            Some(PendingStatus::Expired)
        );
    }

    #[test]
    fn a_spare_takes_the_transfers_over_only_if_it_is_as_large() {
        let hold = 7;
        let mut ledger = with_hold(hold);
        ledger.reserve(100);
        let before: Vec<TransferRecord> = ledger.transfers().collect();
        // Smaller than the room the transfers are in: dropped, nothing moves.
        ledger.add_spare(Spare::prepare(10));
        assert!(ledger.transfers.capacity() >= 101);
        ledger.add_spare(Spare::prepare(5_000));
        assert!(ledger.transfers.capacity() >= 5_000);
        assert_eq!(ledger.transfers().collect::<Vec<_>>(), before);
        // The index still finds the hold, and the ledger goes on.
        let post = Transfer::post(TransferId(8), TransferId(hold), Credits::new(5));
        assert_eq!(
            ledger.apply(2, &[Event::CreateTransfer(post)]).unwrap(),
            [EventResult::Ok]
        );
        assert_eq!(
            ledger.transfer(TransferId(hold)).and_then(|t| t.status),
            Some(PendingStatus::Posted(Credits::new(5)))
        );
    }

    #[test]
    fn a_snapshot_holding_a_transfer_the_engine_would_refuse_is_corrupt() {
        let hold = 0x5EED_0000_0000_0000_0000_0000_0000_0001;
        assert!(decode(&doctored(hold, hold + 1)).is_ok());
        for bad_id in [0, u128::MAX] {
            let err = decode(&doctored(hold, bad_id)).unwrap_err();
            assert!(err.to_string().contains("fails its own checks"), "{err}");
        }
    }

    #[test]
    fn a_snapshot_post_must_name_a_transfer_stored_before_it() {
        let hold = 0x5EED_0000_0000_0000_0000_0000_0000_0001;
        let mut ledger = with_hold(hold);
        let post = Transfer::post(TransferId(hold + 1), TransferId(hold), Credits::new(5));
        assert_eq!(
            ledger.apply(2, &[Event::CreateTransfer(post)]).unwrap(),
            [EventResult::Ok]
        );
        let mut bytes = Vec::new();
        ledger.write_state(&mut bytes);
        assert!(decode(&bytes).is_ok());
        // The post's pending id is the last place the hold's id is written.
        let at = bytes.windows(16).rposition(|w| w == hold.to_le_bytes()).unwrap();
        for named in [0, 99, hold + 1] {
            let mut doctored = bytes.clone();
            doctored[at..at + 16].copy_from_slice(&named.to_le_bytes());
            let err = decode(&doctored).unwrap_err();
            assert!(matches!(err, LedgerError::Decode { .. }), "{named}: {err}");
        }
    }

    /// The snapshot of two accounts 0xA1 and 0xB2 (one transfer of 5 between them) with
    /// account `id`'s four totals (pending and posted debits, pending and posted credits)
    /// replaced.
    fn with_totals(edits: &[(u128, [u128; 4])]) -> Vec<u8> {
        let mut ledger = Ledger::new();
        let events = [
            Event::CreateAccount(Account::new(AccountId(0xA1))),
            Event::CreateAccount(Account::new(AccountId(0xB2))),
            Event::CreateAccount(Account::new(AccountId(0xC3))),
            Event::CreateTransfer(Transfer::new(
                TransferId(9),
                AccountId(0xA1),
                AccountId(0xB2),
                Credits::new(5),
            )),
        ];
        assert!(ledger.apply(1, &events).unwrap().iter().all(|r| r.is_ok()));
        let mut bytes = Vec::new();
        ledger.write_state(&mut bytes);
        for (id, totals) in edits {
            // An account's totals follow its event (whose id is 8 bytes in) and its closed flag.
            let at = bytes.windows(16).position(|w| w == id.to_le_bytes()).unwrap();
            let mut field = at - 8 + crate::durable::codec::EVENT_LEN + 1;
            for total in totals {
                bytes[field..field + 16].copy_from_slice(&total.to_le_bytes());
                field += 16;
            }
        }
        bytes
    }

    #[test]
    fn a_snapshot_with_totals_beyond_the_limit_or_overflowing_sums_is_corrupt() {
        // Unchanged, and a consistent edit: fine.
        assert!(decode(&with_totals(&[])).is_ok());
        assert!(decode(&with_totals(&[(0xA1, [0, 7, 0, 0]), (0xB2, [0, 0, 0, 7])])).is_ok());
        let half = 1u128 << 127;
        let max = ACCOUNT_TOTAL_MAX;
        for edits in [
            // Above the limit, balanced by wrapping: 2 × 2^127 debits against 0 credits.
            vec![(0xA1, [0, half, 0, 0]), (0xB2, [0, half, 0, 0])],
            // Each at the limit, the sum overflows.
            vec![(0xA1, [0, max, 0, 0]), (0xB2, [0, max, 0, 0]), (0xC3, [0, max, 0, 0])],
            vec![
                (0xA1, [max, 0, 0, 0]),
                (0xB2, [max, 0, max, 0]),
                (0xC3, [max, 0, max, 0]),
            ],
        ] {
            let err = decode(&with_totals(&edits)).unwrap_err();
            assert!(matches!(err, LedgerError::InvariantViolated { .. }), "{err}");
        }
    }

    #[test]
    fn a_snapshot_whose_status_does_not_fit_the_flags_is_corrupt() {
        let hold = 0x5EED_0000_0000_0000_0000_0000_0000_0001;
        let mut bytes = Vec::new();
        with_hold(hold).write_state(&mut bytes);
        // The status tag follows the transfer's event and timestamp: pending (1) becomes none.
        let at = bytes.windows(16).position(|w| w == hold.to_le_bytes()).unwrap();
        let event_start = at - 8;
        let tag = event_start + crate::durable::codec::EVENT_LEN + 8;
        assert_eq!(bytes[tag], STATUS_PENDING);
        bytes[tag] = STATUS_NONE;
        let err = decode(&bytes).unwrap_err();
        assert!(err.to_string().contains("does not fit its flags"), "{err}");
    }
}
