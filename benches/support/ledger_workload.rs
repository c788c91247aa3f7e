//! The workload shared by the ledger benches: a seeded generator, the funding of customer
//! balances, and batches of random transfers between them.

use paygo::credits::Credits;
use paygo::ledger::{Account, AccountId, BATCH_EVENTS_MAX, Event, Transfer, TransferId};

/// Events per batch: the largest batch the ledger takes.
pub(crate) const BATCH: usize = BATCH_EVENTS_MAX;

/// A xorshift64 generator: cheap, and a seed gives the same workload on every run.
pub(crate) struct XorShift(pub(crate) u64);

impl XorShift {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Hands `submit` the batches that create a bank account and `accounts` customer balances
/// (ids `1..=accounts`), each funded from the bank with plenty; the first batch is the bank.
pub(crate) fn fund_accounts(accounts: u128, mut submit: impl FnMut(Vec<Event>)) {
    let bank = AccountId(u128::MAX - 1);
    submit(vec![Event::CreateAccount(Account::new(bank))]);
    let mut events = Vec::with_capacity(BATCH);
    for a in 1..=accounts {
        events.push(Event::CreateAccount(Account::balance(AccountId(a))));
        events.push(Event::CreateTransfer(Transfer::new(
            TransferId(u128::MAX - 1 - a),
            bank,
            AccountId(a),
            Credits::new(1 << 40),
        )));
        if events.len() >= BATCH - 1 {
            submit(std::mem::replace(&mut events, Vec::with_capacity(BATCH)));
        }
    }
    submit(events);
}

/// `batches` full batches of transfers between random distinct customers of `1..=accounts`,
/// with ids from `first_id + 1` on and amounts of 1 to 1000 credits.
pub(crate) fn transfer_batches(accounts: u128, batches: u64, first_id: u128, seed: u64) -> Vec<Vec<Event>> {
    let mut rng = XorShift(seed);
    let mut id = first_id;
    (0..batches)
        .map(|_| {
            (0..BATCH)
                .map(|_| {
                    let x = rng.next();
                    let debit = 1 + u128::from(x % accounts as u64);
                    let mut credit = 1 + u128::from((x >> 24) % accounts as u64);
                    if credit == debit {
                        credit = debit % accounts + 1;
                    }
                    id += 1;
                    Event::CreateTransfer(Transfer::new(
                        TransferId(id),
                        AccountId(debit),
                        AccountId(credit),
                        Credits::new(1 + ((x >> 48) % 1000) as i64),
                    ))
                })
                .collect()
        })
        .collect()
}
