//! Many threads through one shared handle: nothing lost, nothing posted twice, and the
//! final balances equal the sum of what each thread was told succeeded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
// Generated values are small, and the reference model mirrors the spec rule by rule.
#![allow(
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::too_many_lines,
    clippy::similar_names
)]

use std::sync::Arc;

use paygo_credits::Credits;
use paygo_ledger::{Account, AccountId, Event, EventResult, Ledger, SharedLedger, Transfer, TransferId, WallClock};

const THREADS: u128 = 4;
const ACCOUNTS: u128 = 8;

#[test]
fn hammering_the_shared_ledger_loses_and_doubles_nothing() {
    let shared = Arc::new(SharedLedger::new(Ledger::new(), WallClock));
    let mut setup = vec![Event::CreateAccount(Account::new(AccountId(100)))];
    for a in 1..=ACCOUNTS {
        setup.push(Event::CreateAccount(Account::balance(AccountId(a))));
        setup.push(Event::CreateTransfer(Transfer::new(
            TransferId(1_000_000 + a),
            AccountId(100),
            AccountId(a),
            Credits::new(1_000),
        )));
    }
    assert!(shared.submit(setup).unwrap().iter().all(|r| r.is_ok()));
    let workers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                let mut ok: Vec<Transfer> = Vec::new();
                let mut x = thread as u64 + 1;
                for i in 0..1_500u128 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let from = AccountId(1 + u128::from(x % ACCOUNTS as u64));
                    let to = AccountId(1 + u128::from((x >> 8) % ACCOUNTS as u64));
                    let id = TransferId(thread * 1_000_000_000 + i + 1);
                    let t = Transfer::new(id, from, to, Credits::new(1 + (x >> 16) as i64 % 300));
                    let mut batch = vec![Event::CreateTransfer(t)];
                    // Every tenth call retries a transfer that succeeded before.
                    if i % 10 == 0 && !ok.is_empty() {
                        batch.push(Event::CreateTransfer(ok[(x as usize) % ok.len()]));
                    }
                    let results = shared.submit(batch).unwrap();
                    if results[0] == EventResult::Ok {
                        ok.push(t);
                    }
                    if let Some(retry) = results.get(1) {
                        assert_eq!(*retry, EventResult::Exists, "a retry was applied twice");
                    }
                }
                ok
            })
        })
        .collect();
    let mut expected = [0i128; ACCOUNTS as usize + 1];
    for a in 1..=ACCOUNTS {
        expected[a as usize] = 1_000;
    }
    let mut applied = 0usize;
    for worker in workers {
        for t in worker.join().unwrap() {
            expected[t.debit_account_id.0 as usize] -= i128::from(t.amount.get());
            expected[t.credit_account_id.0 as usize] += i128::from(t.amount.get());
            applied += 1;
        }
    }
    let ledger = Arc::try_unwrap(shared).unwrap().into_inner().unwrap();
    for a in 1..=ACCOUNTS {
        let balance = ledger.account(AccountId(a)).unwrap();
        assert_eq!(balance.posted_balance(), expected[a as usize], "account {a}");
        assert!(balance.posted_balance() >= 0);
    }
    assert_eq!(ledger.transfers_len(), applied + ACCOUNTS as usize);
    ledger.check_invariants().unwrap();
}
