//! Property tests: whatever the events, the ledger's invariants hold and no credit is
//! created or lost.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
// Generated values are small, and the reference model mirrors the spec rule by rule.
#![allow(
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::too_many_lines,
    clippy::similar_names
)]

use paygo_credits::Credits;
use paygo_ledger::{Account, AccountFlags, AccountId, Event, Ledger, Transfer, TransferFlags, TransferId};
use proptest::prelude::*;

/// Where failing cases are kept (committed, replayed first).
const REGRESSIONS: &str = "tests/properties.proptest-regressions";

fn event() -> impl Strategy<Value = Event> {
    let account = (1u128..6).prop_map(AccountId);
    let id = (1u128..60).prop_map(TransferId);
    let amount = (-2i64..400).prop_map(Credits::new);
    prop_oneof![
        (account.clone(), 0u16..3, any::<bool>()).prop_map(|(id, f, linked)| {
            let flags = match f {
                0 => AccountFlags::NONE,
                1 => AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
                _ => AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
            };
            let flags = if linked { flags | AccountFlags::LINKED } else { flags };
            Event::CreateAccount(Account::new(id).with_flags(flags))
        }),
        (
            id.clone(),
            account.clone(),
            account.clone(),
            amount.clone(),
            any::<bool>(),
            0u64..3_000,
            any::<bool>()
        )
            .prop_map(|(id, d, c, a, pending, timeout, linked)| {
                let t = if pending {
                    Transfer::pending(id, d, c, a, timeout)
                } else {
                    Transfer::new(id, d, c, a)
                };
                Event::CreateTransfer(if linked { t.with_flags(TransferFlags::LINKED) } else { t })
            }),
        (id.clone(), id, amount, any::<bool>()).prop_map(|(id, p, a, post)| {
            Event::CreateTransfer(if post {
                Transfer::post(id, p, a)
            } else {
                Transfer::void(id, p)
            })
        }),
    ]
}

proptest! {
    #![proptest_config(paygo_testkit::proptest_config(128, REGRESSIONS))]

    #[test]
    fn invariants_hold_after_every_batch(
        batches in proptest::collection::vec((0u64..2_000, proptest::collection::vec(event(), 0..16)), 1..20)
    ) {
        let mut ledger = Ledger::new();
        // An unlimited account that funds the others.
        ledger.apply(1, &[Event::CreateAccount(Account::new(AccountId(9)))]).unwrap();
        let mut now = 1_000_000;
        for (step_ms, events) in batches {
            now += step_ms * 1_000_000;
            let results = ledger.apply(now, &events).unwrap();
            prop_assert_eq!(results.len(), events.len());
            prop_assert!(ledger.check_invariants().is_ok(), "{:?}", ledger.check_invariants());
            // No credit is created or lost: the sum of posted balances is zero.
            let total: i128 = ledger.accounts().map(|a| a.posted_balance()).sum();
            prop_assert_eq!(total, 0);
            for a in ledger.accounts() {
                if a.account.flags.contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS) {
                    prop_assert!(a.available() >= 0);
                }
            }
        }
    }

    #[test]
    fn replaying_the_same_batches_gives_the_same_ledger(
        batches in proptest::collection::vec((0u64..2_000, proptest::collection::vec(event(), 0..16)), 1..12)
    ) {
        let run = || {
            let mut ledger = Ledger::new();
            let mut now = 1_000_000;
            let mut all = Vec::new();
            for (step_ms, events) in &batches {
                now += step_ms * 1_000_000;
                all.extend(ledger.apply(now, events).unwrap());
            }
            (all, ledger.accounts().collect::<Vec<_>>())
        };
        prop_assert_eq!(run(), run());
    }
}
