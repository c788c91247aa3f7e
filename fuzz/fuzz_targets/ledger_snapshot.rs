//! The ledger's snapshot decoding (`Durable::decode_state`, what recovery reads from a
//! `snapshot-*.snap` file), for both machines, and the engine running on what it decoded.
//!
//! Input: a kind byte (bit 0: ledger or billing), a command count, a time (u64), a state
//! (u16 length, then its bytes), then command bytes.
//!
//! Properties: a state that decodes passes the ledger's invariants and is a fixed point of
//! encode-then-decode; the engine applies commands to it without panicking, and the state
//! it reaches still passes the invariants and still round-trips through a snapshot.

#![no_main]

use libfuzzer_sys::fuzz_target;
use paygo_billing::Billing;
use paygo_fuzz::Bytes;
use paygo_fuzz::ledger_mem::{encode, snapshot_round_trip};
use paygo_ledger::Ledger;
use paygo_ledger::durable::Durable;

fn check<M: Durable>(state: &[u8], count: usize, commands: &[u8], now_ns: u64, ledger: fn(&M) -> &Ledger) {
    let what = M::KIND;
    let Ok(machine) = M::decode_state(state, 0) else {
        return;
    };
    ledger(&machine)
        .check_invariants()
        .unwrap_or_else(|e| panic!("{what}: a decoded state breaks the invariants: {e}"));
    let mut machine = snapshot_round_trip::<M>(&encode(&machine), what);
    let mut decoded = Vec::new();
    if M::decode_commands(commands, count, &mut decoded).is_ok() {
        let _ = machine.apply_batch(now_ns, &decoded);
        ledger(&machine)
            .check_invariants()
            .unwrap_or_else(|e| panic!("{what}: the engine broke the invariants of a decoded state: {e}"));
        snapshot_round_trip::<M>(&encode(&machine), what);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let kind = b.u8();
    let count = usize::from(b.u8());
    let now_ns = b.u64();
    let state = b.piece();
    let commands = b.rest();
    if kind & 1 == 0 {
        check::<Ledger>(state, count, commands, now_ns, |l| l);
    } else {
        check::<Billing>(state, count, commands, now_ns, Billing::ledger);
    }
});
