//! A batch of commands over per-customer shards: where each command goes, what a store
//! reads and locks before it runs, and what it writes after. Storage-agnostic: a database
//! store does the reading, locking and writing around [`run_batch`] (paygo-postgres), and
//! the tests run the same steps over in-memory rows.
//!
//! The steps of one batch, in one transaction:
//!
//! 1. [`Route::of`]: the holds and payment requests the commands name, whose customers the
//!    store looks up ([`Route::customers_to_lock`] then gives every customer to lock).
//! 2. The store locks those customers' rows **in ascending id order** (so that two batches
//!    never wait on each other in a cycle), and reads, under the locks, their shards, the
//!    stored replies and closed holds the commands' ids name ([`Rows`]).
//! 3. [`run_batch`] applies the commands in order, each on its customer's shard, with what
//!    a retry needs given back first; then settles every shard touched ([`BatchOutcome`]).
//! 4. The store writes the shards and what they settled, and commits. A unique key on
//!    stored replies and on customers catches the one race the locks do not cover (two
//!    batches minting the same id for different customers, or opening the same account):
//!    the losing transaction rolls back and the store runs the batch again.

use std::collections::{BTreeSet, HashMap};

use crate::auto::AutoTopUp;
use crate::command::{Command, Receipt, Reply};
use crate::config::BillingConfig;
use crate::ids::{CustomerId, HoldId, RequestId};
use crate::shard::{ClosedHold, IdSpace, Settled, Shard, ShardNo, StoredReply};
use crate::store::{Balance, BillingError};

/// Where a command goes: the customer it names, or the hold or request it names (whose
/// customer the store knows), or nowhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Route {
    /// A command that names its customer.
    Customer(CustomerId),
    /// A capture, release or extension: the hold's customer.
    Hold(HoldId),
    /// A payment report: the request's customer.
    Request(RequestId),
}

impl Route {
    /// Where `command` goes.
    pub fn of(command: &Command) -> Route {
        match *command {
            Command::OpenAccount { customer }
            | Command::TopUp { customer, .. }
            | Command::Hold { customer, .. }
            | Command::GrantBonus { customer, .. }
            | Command::SetAutoTopUp { customer, .. }
            | Command::ReversePayment { customer, .. } => Route::Customer(customer),
            Command::Capture { hold, .. }
            | Command::CaptureCost { hold, .. }
            | Command::Release { hold }
            | Command::ExtendHold { hold, .. } => Route::Hold(hold),
            Command::ReportPayment { request, .. } => Route::Request(request),
        }
    }

    /// The customers whose rows a batch locks: those the commands name, and those of the
    /// holds and requests they name (`holds`, `requests`: what the store found), sorted
    /// and without repeats — the order to lock them in.
    pub fn customers_to_lock(
        commands: &[Command],
        holds: &HashMap<HoldId, CustomerId>,
        requests: &HashMap<RequestId, CustomerId>,
    ) -> Vec<CustomerId> {
        let set: BTreeSet<CustomerId> = commands
            .iter()
            .filter_map(|c| match Route::of(c) {
                Route::Customer(customer) => Some(customer),
                Route::Hold(hold) => holds.get(&hold).copied(),
                Route::Request(request) => requests.get(&request).copied(),
            })
            .collect();
        set.into_iter().collect()
    }

    /// The customers that `commands` open an account for: those that need a shard
    /// number if the store has no row for them.
    pub fn customers_opened(commands: &[Command]) -> Vec<CustomerId> {
        let set: BTreeSet<CustomerId> = commands
            .iter()
            .filter_map(|c| match *c {
                Command::OpenAccount { customer } => Some(customer),
                _ => None,
            })
            .collect();
        set.into_iter().collect()
    }

    /// The ids whose stored replies a batch reads: every command's own id
    /// ([`IdSpace::key_of`]), and the holds that captures, releases and extensions name
    /// (their hold reply and closing).
    pub fn ids(commands: &[Command]) -> Vec<(IdSpace, u128)> {
        let set: BTreeSet<(IdSpace, u128)> = commands
            .iter()
            .filter_map(|c| {
                IdSpace::key_of(c).or(match Route::of(c) {
                    Route::Hold(hold) => Some((IdSpace::Hold, hold.0)),
                    _ => None,
                })
            })
            .collect();
        set.into_iter().collect()
    }
}

/// What a store read for a batch, under the customers' locks.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Rows {
    /// The shards of the customers locked that have a row.
    pub shards: HashMap<CustomerId, Shard>,
    /// Shard numbers for the customers the batch opens ([`Route::customers_opened`]) that
    /// have no row: fresh from the store's sequence (a number not used is a gap, never a
    /// collision).
    pub fresh: HashMap<CustomerId, ShardNo>,
    /// Stored replies of the ids the commands name ([`Route::ids`]).
    pub replies: HashMap<(IdSpace, u128), StoredReply>,
    /// Closed holds the commands name.
    pub closed_holds: HashMap<HoldId, ClosedHold>,
    /// The customer of each hold the commands name that the store knows.
    pub hold_customers: HashMap<HoldId, CustomerId>,
    /// The customer of each request the commands name that the store knows.
    pub request_customers: HashMap<RequestId, CustomerId>,
}

impl Rows {
    /// Empty rows.
    pub fn new() -> Rows {
        Rows::default()
    }
}

/// What a store writes for one shard after a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShardWrite {
    /// The customer, or `None` for the scratch shard (commands that named nothing known).
    pub customer: Option<CustomerId>,
    /// The shard's number.
    pub no: ShardNo,
    /// The shard to store ([`Shard::encode`]), and its balance for the row's columns;
    /// `None` when the shard holds no account (only its settled replies are stored).
    pub state: Option<(Vec<u8>, Balance)>,
    /// Whether the row is new (an insert, not an update).
    pub created: bool,
    /// What the shard settled.
    pub settled: Settled,
}

/// The outcome of [`run_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchOutcome {
    /// One reply per command, in order.
    pub replies: Vec<Reply>,
    /// What to write, by customer (ascending), the scratch shard last.
    pub writes: Vec<ShardWrite>,
}

/// Settles every shard a batch touched: what to write, by customer, the scratch shard last.
fn writes_of(
    mut shards: HashMap<CustomerId, Shard>,
    existing: &BTreeSet<CustomerId>,
    scratch: Option<Shard>,
) -> Result<Vec<ShardWrite>, BillingError> {
    let mut customers: Vec<CustomerId> = shards.keys().copied().collect();
    customers.sort_unstable();
    let mut writes = Vec::with_capacity(customers.len() + 1);
    for c in customers {
        let Some(shard) = shards.get_mut(&c) else { continue };
        let settled = shard.settle();
        let state = match shard.customer() {
            Some(held) => Some((shard.encode(), shard.balance(held)?)),
            None => None,
        };
        writes.push(ShardWrite {
            customer: Some(c),
            no: shard.no(),
            state,
            created: !existing.contains(&c),
            settled,
        });
    }
    if let Some(mut s) = scratch {
        writes.push(ShardWrite {
            customer: None,
            no: s.no(),
            state: None,
            created: false,
            settled: s.settle(),
        });
    }
    Ok(writes)
}

/// Applies `commands` at `now_ns` on the shards in `rows` (see the module's docs): in
/// order, each on the shard of its customer, with the stored reply of its id (or its
/// hold's closing) given back first, exactly as one [`crate::Billing`] would answer them.
///
/// # Errors
///
/// [`BillingError::Corrupt`] for a shard number out of range.
pub fn run_batch(
    config: &BillingConfig,
    now_ns: u64,
    commands: &[Command],
    rows: Rows,
) -> Result<BatchOutcome, BillingError> {
    let Rows {
        shards: loaded,
        fresh,
        replies: stored,
        closed_holds,
        hold_customers,
        request_customers,
    } = rows;
    let existing: BTreeSet<CustomerId> = loaded.keys().copied().collect();
    let mut shards: HashMap<CustomerId, Shard> = loaded;
    let mut scratch: Option<Shard> = None;
    // Replies and routes made by this batch, for the commands after them.
    let mut batch_replies: HashMap<(IdSpace, u128), StoredReply> = HashMap::new();
    let mut batch_holds: HashMap<HoldId, CustomerId> = HashMap::new();
    let mut batch_requests: HashMap<RequestId, CustomerId> = HashMap::new();
    let mut replies = Vec::with_capacity(commands.len());
    for command in commands {
        let customer = match Route::of(command) {
            Route::Customer(c) => Some(c),
            Route::Hold(h) => hold_customers.get(&h).or_else(|| batch_holds.get(&h)).copied(),
            Route::Request(r) => request_customers.get(&r).or_else(|| batch_requests.get(&r)).copied(),
        };
        let shard = match customer {
            Some(c) => match shards.entry(c) {
                std::collections::hash_map::Entry::Occupied(slot) => slot.into_mut(),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    // No row: a shard that an open makes real, or that refuses as one machine
                    // refuses commands for an unknown account.
                    let no = fresh.get(&c).copied().unwrap_or(ShardNo(0));
                    slot.insert(Shard::new(*config, no)?)
                }
            },
            None => match &mut scratch {
                Some(s) => s,
                None => scratch.insert(Shard::new(*config, ShardNo(0))?),
            },
        };
        let key = IdSpace::key_of(command);
        if let Some(key) = key
            && let Some(first) = stored.get(&key).or_else(|| batch_replies.get(&key))
        {
            shard.remember_reply(*first);
        }
        if let Route::Hold(h) = Route::of(command) {
            if let Some(first) = stored
                .get(&(IdSpace::Hold, h.0))
                .or_else(|| batch_replies.get(&(IdSpace::Hold, h.0)))
            {
                shard.remember_reply(*first);
            }
            if let Some(closed) = closed_holds.get(&h) {
                shard.remember_hold(*closed);
            }
        }
        let reply = shard.execute(now_ns, command);
        // The first reply to an id, if the store did not have one: a later command of the
        // batch with that id, on another shard, is answered from it.
        if let Some((space, id)) = key
            && !stored.contains_key(&(space, id))
        {
            batch_replies.entry((space, id)).or_insert(StoredReply {
                space,
                id,
                command: *command,
                reply,
            });
        }
        if let (Command::Hold { id, .. }, Some(c)) = (command, customer) {
            batch_holds.entry(*id).or_insert(c);
        }
        if let (
            Ok(Receipt::Captured {
                auto_top_up: AutoTopUp::Requested(request),
                ..
            }),
            Some(c),
        ) = (reply, customer)
        {
            batch_requests.insert(request.id, c);
        }
        replies.push(reply);
    }
    let writes = writes_of(shards, &existing, scratch)?;
    Ok(BatchOutcome { replies, writes })
}
