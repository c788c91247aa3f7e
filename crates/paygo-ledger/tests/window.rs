//! The idempotency window: forgotten ids are answered by their time, never applied twice;
//! compaction changes memory, never answers or state; snapshots carry the window.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::HashMap;

use paygo_credits::Credits;
use paygo_ledger::durable::{self, Durable};
use paygo_ledger::{
    Account, AccountId, Event, EventResult, IdWindow, Ledger, ManualClock, SharedLedger, Transfer, TransferId,
};
use proptest::prelude::*;

const BANK: AccountId = AccountId(1);
const ALICE: AccountId = AccountId(2);
const MS: u64 = 1_000_000;
const SECOND: u64 = 1_000 * MS;
/// 2027-01-15 in nanoseconds since the Unix epoch.
const START: u64 = 1_800_000_000 * SECOND;
const WINDOW: IdWindow = IdWindow {
    past_ns: 60 * SECOND,
    ahead_ns: 5 * SECOND,
};

fn id(at_ns: u64, n: u128) -> TransferId {
    TransferId::from_time(at_ns / MS, n).unwrap()
}

fn ledger() -> Ledger {
    let mut l = Ledger::new().with_id_window(WINDOW);
    let got = l
        .apply(
            START,
            &[
                Event::CreateAccount(Account::new(BANK)),
                Event::CreateAccount(Account::balance(ALICE)),
            ],
        )
        .unwrap();
    assert_eq!(got, [EventResult::Ok; 2]);
    l
}

fn pay(id: TransferId, amount: i64) -> Event {
    Event::CreateTransfer(Transfer::new(id, BANK, ALICE, Credits::new(amount)))
}

#[test]
fn time_ordered_ids_carry_their_millisecond() {
    let t = TransferId::from_time(1_800_000_000_123, u128::MAX).unwrap();
    assert_eq!(t.time_ms(), 1_800_000_000_123);
    assert_eq!(t.0 & ((1 << 80) - 1), (1 << 80) - 1);
    assert!(TransferId::from_time(1 << 48, 0).is_err());
    // A UUIDv7 read as a big-endian u128 is such an id.
    let uuid_v7: u128 = 0x0190_f5d1_ab3c_7def_8123_4567_89ab_cdef;
    assert_eq!(TransferId(uuid_v7).time_ms(), 0x0190_f5d1_ab3c);
}

#[test]
fn a_retry_inside_the_window_exists_and_after_it_is_never_applied_again() {
    let mut l = ledger();
    let first = id(START, 1);
    assert_eq!(l.apply(START + SECOND, &[pay(first, 10)]).unwrap(), [EventResult::Ok]);
    // Retried 59 s later: the transfer is found.
    let got = l.apply(START + 59 * SECOND, &[pay(first, 10)]).unwrap();
    assert_eq!(got, [EventResult::Exists]);
    // Retried after the window, with or without a compaction: never applied.
    let mut compacted = l.clone();
    compacted.apply(START + 61 * SECOND, &[]).unwrap();
    compacted.compact();
    assert_eq!(compacted.transfers_in_memory(), 0);
    for l in [&mut l, &mut compacted] {
        let got = l.apply(START + 61 * SECOND, &[pay(first, 10)]).unwrap();
        assert_eq!(got, [EventResult::IdOlderThanWindow]);
        assert_eq!(l.account(ALICE).unwrap().credits_posted, 10);
        assert_eq!(l.transfer(first), None);
    }
    // A new id made now is applied.
    let got = l
        .apply(START + 62 * SECOND, &[pay(id(START + 62 * SECOND, 2), 5)])
        .unwrap();
    assert_eq!(got, [EventResult::Ok]);
    assert_eq!(l.account(ALICE).unwrap().credits_posted, 15);
}

#[test]
fn an_open_hold_outlives_the_window_and_can_still_be_posted() {
    let mut l = ledger();
    let funding = id(START, 1);
    let hold = id(START, 2);
    let events = [
        pay(funding, 100),
        Event::CreateTransfer(Transfer::pending(hold, ALICE, BANK, Credits::new(40), 0)),
    ];
    assert_eq!(l.apply(START, &events).unwrap(), [EventResult::Ok; 2]);
    let later = START + 3_600 * SECOND;
    l.apply(later, &[]).unwrap();
    l.compact();
    assert_eq!(l.transfers_in_memory(), 1, "only the open hold is kept");
    let post = Transfer::post(id(later, 3), hold, Credits::new(30));
    assert_eq!(
        l.apply(later, &[Event::CreateTransfer(post)]).unwrap(),
        [EventResult::Ok]
    );
    // Posted: the hold is closed, and once its id is forgotten a second post of it is
    // answered by the window, not applied.
    let again = Transfer::post(id(later, 4), hold, Credits::new(30));
    assert_eq!(
        l.apply(later, &[Event::CreateTransfer(again)]).unwrap(),
        [EventResult::PendingIdOlderThanWindow]
    );
    let alice = l.account(ALICE).unwrap();
    assert_eq!(
        (alice.credits_posted, alice.debits_posted, alice.debits_pending),
        (100, 30, 0)
    );
}

#[test]
fn a_snapshot_keeps_the_window_and_what_is_forgotten() {
    let mut l = ledger();
    l.apply(START, &[pay(id(START, 1), 10)]).unwrap();
    l.apply(START + 90 * SECOND, &[pay(id(START + 90 * SECOND, 2), 10)])
        .unwrap();
    let mut bytes = Vec::new();
    Durable::encode_state(&l, &mut bytes).unwrap();
    let mut back = <Ledger as Durable>::decode_state(&bytes, 0).unwrap();
    assert_eq!(back.id_window(), Some(WINDOW));
    assert_eq!(back.forgotten_before_ns(), l.forgotten_before_ns());
    assert_eq!(back.transfers_len(), 1);
    // The same answers after the snapshot as before it.
    let probe = [pay(id(START, 1), 10), pay(id(START + 90 * SECOND, 2), 10)];
    let t = START + 91 * SECOND;
    assert_eq!(back.apply(t, &probe).unwrap(), l.apply(t, &probe).unwrap());
}

#[test]
fn a_durable_store_reopens_with_its_window() {
    let dir = std::env::temp_dir().join(format!("paygo-window-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let options = durable::OpenOptions::default();
        let handle = SharedLedger::open(&dir, ledger, ManualClock::new(START + SECOND), &options).unwrap();
        assert_eq!(handle.submit(vec![pay(id(START, 1), 10)]).unwrap(), [EventResult::Ok]);
        handle.snapshot().unwrap();
        assert_eq!(handle.submit(vec![pay(id(START, 2), 10)]).unwrap(), [EventResult::Ok]);
    }
    // Reopened with a ledger without a window: the store's window wins.
    let options = durable::OpenOptions::default();
    let handle = SharedLedger::open(&dir, Ledger::new, ManualClock::new(START + 120 * SECOND), &options).unwrap();
    assert_eq!(handle.read(Ledger::id_window).unwrap(), Some(WINDOW));
    let got = handle.submit(vec![pay(id(START, 1), 10)]).unwrap();
    assert_eq!(got, [EventResult::IdOlderThanWindow]);
    drop(handle);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn archived_segments_keep_the_history_the_window_forgets() {
    let dir = std::env::temp_dir().join(format!("paygo-window-archive-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let options = durable::OpenOptions {
        segment_bytes: 4096,
        snapshot_journal_bytes: None,
        archive_journal: true,
    };
    let clock = std::sync::Arc::new(ManualClock::new(START));
    let handle = SharedLedger::open(&dir, ledger, clock.clone(), &options).unwrap();
    let mut n = 0;
    for round in 0..6u64 {
        clock.set_ns(START + round * 30 * SECOND);
        let events: Vec<Event> = (0..40)
            .map(|_| {
                n += 1;
                pay(id(START + round * 30 * SECOND, n), 1)
            })
            .collect();
        assert!(handle.submit(events).unwrap().iter().all(|r| r.is_ok()));
        handle.snapshot().unwrap();
    }
    // Memory keeps the window (rounds 4 and 5, and round 3 at its edge); the journal of
    // every round is on disk, in the store or its archive.
    assert!(handle.read(Ledger::transfers_len).unwrap() <= 120);
    drop(handle);
    let archived = std::fs::read_dir(dir.join("archive")).unwrap().count();
    assert!(archived > 0, "no segment was archived");
    let (back, _) = durable::load::<Ledger>(&dir).unwrap();
    assert_eq!(back.account(ALICE).unwrap().credits_posted, 240);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One step of a client: a new transfer now, a retry of an earlier id, a hold, a post or
/// void of an earlier hold, or time passing.
#[derive(Debug, Clone)]
enum Step {
    Pay {
        amount: i64,
    },
    Retry {
        pick: usize,
    },
    Hold {
        amount: i64,
        timeout_ms: u64,
    },
    Post {
        pick: usize,
        amount: i64,
    },
    Void {
        pick: usize,
    },
    Wait {
        ms: u64,
    },
    /// An id minted `ms` before now (a client that held on to it).
    Stale {
        ms: u64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (1..50i64).prop_map(|amount| Step::Pay { amount }),
        3 => any::<usize>().prop_map(|pick| Step::Retry { pick }),
        2 => (1..50i64, 0..90_000u64).prop_map(|(amount, timeout_ms)| Step::Hold { amount, timeout_ms }),
        2 => (any::<usize>(), 1..60i64).prop_map(|(pick, amount)| Step::Post { pick, amount }),
        1 => any::<usize>().prop_map(|pick| Step::Void { pick }),
        3 => (0..40_000u64).prop_map(|ms| Step::Wait { ms }),
        1 => (0..120_000u64).prop_map(|ms| Step::Stale { ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Two copies of the same ledger, one compacted after every batch and one never: the
    /// same answers and the same snapshot bytes; no id is ever applied twice; an id inside
    /// the window that was applied answers `Exists`; one outside answers
    /// `IdOlderThanWindow`.
    #[test]
    fn compaction_never_changes_an_answer_and_no_id_applies_twice(
        steps in prop::collection::vec(step(), 1..120),
        batch in 1..6usize,
    ) {
        let mut eager = ledger();
        let mut lazy = ledger();
        eager.apply(START, &[pay(id(START, 0xF0), 1_000_000)]).unwrap();
        lazy.apply(START, &[pay(id(START, 0xF0), 1_000_000)]).unwrap();
        let mut now = START + SECOND;
        let mut sent: Vec<Event> = Vec::new();
        let mut holds: Vec<TransferId> = Vec::new();
        let mut applied: HashMap<TransferId, u64> = HashMap::new();
        let mut n = 1u128;
        for chunk in steps.chunks(batch) {
            let mut events = Vec::new();
            for s in chunk {
                n += 1;
                let fresh = id(now, n);
                let e = match *s {
                    Step::Pay { amount } => pay(fresh, amount),
                    Step::Retry { pick } if !sent.is_empty() => sent[pick % sent.len()],
                    Step::Hold { amount, timeout_ms } => {
                        holds.push(fresh);
                        Event::CreateTransfer(Transfer::pending(fresh, ALICE, BANK, Credits::new(amount), timeout_ms))
                    }
                    Step::Post { pick, amount } if !holds.is_empty() => {
                        Event::CreateTransfer(Transfer::post(fresh, holds[pick % holds.len()], Credits::new(amount)))
                    }
                    Step::Void { pick } if !holds.is_empty() => {
                        Event::CreateTransfer(Transfer::void(fresh, holds[pick % holds.len()]))
                    }
                    Step::Retry { .. } | Step::Post { .. } | Step::Void { .. } => continue,
                    Step::Wait { ms } => {
                        now += ms * MS;
                        continue;
                    }
                    Step::Stale { ms } => pay(id(now.saturating_sub(ms * MS), n), 3),
                };
                events.push(e);
            }
            let a = eager.apply(now, &events).unwrap();
            let b = lazy.apply(now, &events).unwrap();
            prop_assert_eq!(&a, &b);
            eager.compact();
            for (e, r) in events.iter().zip(&a) {
                let Event::CreateTransfer(t) = e else { continue };
                let time_ns = u128::from(t.id.time_ms()) * u128::from(MS);
                let floor = u128::from(now.saturating_sub(WINDOW.past_ns));
                if time_ns < floor {
                    prop_assert_eq!(*r, EventResult::IdOlderThanWindow);
                }
                if r.is_ok() {
                    prop_assert!(applied.insert(t.id, now).is_none(), "{:?} applied twice", t.id);
                } else if applied.contains_key(&t.id) && time_ns >= floor + u128::from(MS) {
                    // (A millisecond of margin: events are stamped a few nanoseconds after
                    // the batch's time, so the ledger's floor can be just above `floor`.)
                    prop_assert!(
                        matches!(*r, EventResult::Exists | EventResult::ExistsWithDifferentFlags
                            | EventResult::ExistsWithDifferentAmount | EventResult::ExistsWithDifferentPendingId
                            | EventResult::ExistsWithDifferentDebitAccountId
                            | EventResult::ExistsWithDifferentCreditAccountId),
                        "{:?} was applied, inside the window, and answered {:?}", t.id, r
                    );
                }
                sent.push(*e);
            }
            let (mut x, mut y) = (Vec::new(), Vec::new());
            Durable::encode_state(&eager, &mut x).unwrap();
            Durable::encode_state(&lazy, &mut y).unwrap();
            prop_assert!(x == y, "snapshots differ after compaction");
            prop_assert!(eager.transfers_in_memory() <= lazy.transfers_in_memory());
            eager.check_invariants().unwrap();
        }
        // Balances are exact: the compacted ledger's accounts equal the other's.
        prop_assert_eq!(eager.accounts().collect::<Vec<_>>(), lazy.accounts().collect::<Vec<_>>());
    }
}
