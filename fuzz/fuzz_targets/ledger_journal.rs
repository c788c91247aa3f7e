//! The ledger's journal records: what recovery replays after a snapshot. The records are
//! handed to the public `SharedLedger::with_storage` by an in-memory `Storage`, as a store
//! on disk hands them once their framing and checksums passed, so every record's bytes
//! reach the decoding of turns and commands (`ledger_store` fuzzes the framing).
//!
//! Input: a kind byte (bit 0: ledger or billing; bit 1: the snapshot is the next piece of
//! input instead of a small machine the crate built), then records, each a u16 length and
//! its bytes.
//!
//! Properties, when recovery succeeds:
//! - replaying the same store again gives the same state (determinism);
//! - the state reached is a snapshot that reads back to the same bytes;
//! - the ledger's invariants hold;
//! - each submission's commands re-encode to bytes that decode to the same commands;
//! - a batch submitted through the recovered handle is journaled, and recovering the store
//!   then rebuilds exactly the state the handle has.

#![no_main]

use libfuzzer_sys::fuzz_target;
use paygo_billing::Billing;
use paygo_fuzz::Bytes;
use paygo_fuzz::ledger_mem::{MemStore, encode, encode_shared, new_billing, open, snapshot_round_trip};
use paygo_ledger::durable::Durable;
use paygo_ledger::{Ledger, StateMachine};

const RECORDS_MAX: usize = 32;

/// The submissions of a turn as the handle writes them (`docs/ledger.md`): the time, the
/// count of submissions, then for each its command count, byte length and bytes.
fn submissions(payload: &[u8]) -> Option<Vec<(usize, &[u8])>> {
    let mut b = Bytes::new(payload);
    if payload.len() < 12 {
        return None;
    }
    let _now = b.u64();
    let n = b.u32();
    let mut out = Vec::new();
    for _ in 0..n {
        let count = b.u32() as usize;
        let len = b.u32() as usize;
        let bytes = b.take(len);
        if bytes.len() < len {
            return None;
        }
        out.push((count, bytes));
    }
    b.is_empty().then_some(out)
}

fn check<M: Durable>(start: Vec<u8>, records: &[Vec<u8>], init: fn() -> M, ledger: fn(&M) -> &Ledger)
where
    M::Command: PartialEq + std::fmt::Debug,
{
    let what = M::KIND;
    let store = MemStore::new(start, records.to_vec());
    let Ok(shared) = open(&store.copy(), init, 0) else {
        return;
    };
    let state = encode_shared(&shared);
    let again = open(&store.copy(), init, 0).expect("a store that recovered once is refused the second time");
    assert_eq!(
        encode_shared(&again),
        state,
        "{what}: two replays of the same journal differ"
    );
    drop(again);
    let back: M = snapshot_round_trip(&state, what);
    ledger(&back)
        .check_invariants()
        .unwrap_or_else(|e| panic!("{what}: a replayed state breaks the invariants: {e}"));

    // Every submission that replayed decoded: its commands round-trip through the codec.
    let mut last = Vec::new();
    for payload in records {
        let Some(subs) = submissions(payload) else {
            panic!("{what}: a record replayed but is not a turn");
        };
        for (count, bytes) in subs {
            let mut commands = Vec::new();
            M::decode_commands(bytes, count, &mut commands).expect("a submission replayed but does not decode");
            let mut encoded = Vec::new();
            M::encode_commands(&commands, &mut encoded);
            let mut again = Vec::new();
            M::decode_commands(&encoded, commands.len(), &mut again)
                .unwrap_or_else(|e| panic!("{what}: re-encoded commands are refused: {e}"));
            assert_eq!(again, commands, "{what}: commands change through the codec");
            last = commands;
        }
    }

    // Live and replayed agree: submit the last batch again through a handle on the store,
    // then recover the store it wrote.
    let live_store = store.copy();
    let live = open(&live_store, init, 1 << 40).expect("the copy recovers as the original did");
    if last.len() <= M::BATCH_MAX {
        let _ = live.submit(last);
    }
    let live_state = encode_shared(&live);
    drop(live);
    let replayed = open(&live_store.copy(), init, 0).expect("a store the handle wrote is refused");
    assert_eq!(
        encode_shared(&replayed),
        live_state,
        "{what}: replay differs from what the handle applied"
    );
}

fn start_ledger() -> Vec<u8> {
    let mut ledger = Ledger::new();
    let _ = ledger.apply(1_000, &paygo_fuzz::ledger_mem::ledger_events());
    encode(&ledger)
}

fn start_billing() -> Vec<u8> {
    let mut billing = new_billing();
    let _ = billing.apply_batch(1_000, &paygo_fuzz::ledger_mem::billing_commands());
    encode(&billing)
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let kind = b.u8();
    let billing = kind & 1 == 1;
    let start = if kind & 2 == 2 {
        b.piece().to_vec()
    } else if billing {
        start_billing()
    } else {
        start_ledger()
    };
    let mut records = Vec::new();
    while !b.is_empty() && records.len() < RECORDS_MAX {
        records.push(b.piece().to_vec());
    }
    if billing {
        check::<Billing>(start, &records, new_billing, Billing::ledger);
    } else {
        check::<Ledger>(start, &records, Ledger::new, |l| l);
    }
});
