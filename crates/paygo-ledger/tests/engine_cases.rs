//! Hand-made cases: every result code, the precedence of checks, two-phase transfers,
//! expiry, linked chains and idempotency.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
// Generated values are small, and the reference model mirrors the spec rule by rule.
#![allow(
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::too_many_lines,
    clippy::similar_names
)]

use std::collections::BTreeSet;

use paygo_credits::Credits;
use paygo_ledger::EventResult as R;
use paygo_ledger::{
    Account, AccountFlags, AccountId, Event, EventResult, IdWindow, Ledger, LedgerError, PendingStatus, Transfer,
    TransferFlags, TransferId,
};

const BANK: AccountId = AccountId(1);
const ALICE: AccountId = AccountId(2); // debits must not exceed credits
const BOB: AccountId = AccountId(3); // credits must not exceed debits
const CAROL: AccountId = AccountId(4); // closed
const NOW: u64 = 1_000_000_000;

fn c(n: i64) -> Credits {
    Credits::new(n)
}

fn tid(n: u128) -> TransferId {
    TransferId(n)
}

fn t(id: u128, debit: AccountId, credit: AccountId, amount: i64) -> Event {
    Event::CreateTransfer(Transfer::new(tid(id), debit, credit, c(amount)))
}

/// A ledger with four accounts, Alice funded with 1000 and a hold of 100 (id 50) from her.
fn setup() -> Ledger {
    let mut ledger = Ledger::new();
    let results = ledger
        .apply(
            NOW,
            &[
                Event::CreateAccount(Account::new(BANK)),
                Event::CreateAccount(Account::balance(ALICE)),
                Event::CreateAccount(Account::new(BOB).with_flags(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)),
                Event::CreateAccount(Account::new(CAROL)),
                Event::CloseAccount {
                    id: CAROL,
                    linked: false,
                },
                t(10, BANK, ALICE, 1000),
                Event::CreateTransfer(Transfer::pending(tid(50), ALICE, BANK, c(100), 1_000)),
                t(60, BANK, ALICE, 5), // a plain transfer, to post "as if pending"
            ],
        )
        .unwrap();
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    ledger
}

fn one(ledger: &mut Ledger, event: Event) -> EventResult {
    ledger.apply(NOW + 10, &[event]).unwrap()[0]
}

#[test]
fn every_result_code_is_reached() {
    let mut seen = BTreeSet::new();
    let mut check = |ledger: &mut Ledger, events: &[Event], want: &[EventResult]| {
        let got = ledger.apply(NOW + 10, events).unwrap();
        assert_eq!(got, want, "{events:?}");
        seen.extend(got);
    };
    let linked = |e: Event| match e {
        Event::CreateTransfer(t) => Event::CreateTransfer(t.with_flags(TransferFlags::LINKED)),
        other => other,
    };
    let l = &mut setup();
    check(l, &[t(100, BANK, ALICE, 1)], &[R::Ok]);
    check(
        l,
        &[linked(t(101, BANK, ALICE, 1)), t(102, ALICE, BANK, 5000)],
        &[R::LinkedEventFailed, R::ExceedsCredits],
    );
    check(
        l,
        &[t(103, BANK, ALICE, 1), linked(t(104, BANK, ALICE, 1))],
        &[R::Ok, R::LinkedEventChainOpen],
    );
    check(l, &[t(0, BANK, ALICE, 1)], &[R::IdMustNotBeZero]);
    check(l, &[t(u128::MAX, BANK, ALICE, 1)], &[R::IdMustNotBeIntMax]);
    let mut odd = Transfer::new(tid(105), BANK, ALICE, c(1));
    odd.flags = TransferFlags(1 << 12);
    check(l, &[Event::CreateTransfer(odd)], &[R::ReservedFlag]);
    let both = Transfer::pending(tid(106), BANK, ALICE, c(1), 0).with_flags(TransferFlags::POST_PENDING);
    check(l, &[Event::CreateTransfer(both)], &[R::FlagsAreMutuallyExclusive]);
    check(l, &[t(107, AccountId(0), ALICE, 1)], &[R::DebitAccountIdMustNotBeZero]);
    check(l, &[t(108, BANK, AccountId(0), 1)], &[R::CreditAccountIdMustNotBeZero]);
    check(l, &[t(109, BANK, BANK, 1)], &[R::AccountsMustBeDifferent]);
    let mut named = Transfer::new(tid(110), BANK, ALICE, c(1));
    named.pending_id = Some(tid(50));
    check(l, &[Event::CreateTransfer(named)], &[R::PendingIdMustBeNone]);
    let mut unnamed = Transfer::post(tid(111), tid(50), c(1));
    unnamed.pending_id = None;
    check(l, &[Event::CreateTransfer(unnamed)], &[R::PendingIdMustBeSet]);
    check(
        l,
        &[Event::CreateTransfer(Transfer::post(tid(112), tid(112), c(1)))],
        &[R::PendingIdMustBeDifferent],
    );
    let mut timed = Transfer::new(tid(113), BANK, ALICE, c(1));
    timed.timeout_ms = 5;
    check(
        l,
        &[Event::CreateTransfer(timed)],
        &[R::TimeoutReservedForPendingTransfer],
    );
    check(l, &[t(114, BANK, ALICE, 0)], &[R::AmountMustBePositive]);
    check(l, &[t(10, BANK, ALICE, 1000)], &[R::Exists]);
    check(
        l,
        &[Event::CreateTransfer(Transfer::pending(
            tid(10),
            BANK,
            ALICE,
            c(1000),
            0,
        ))],
        &[R::ExistsWithDifferentFlags],
    );
    check(l, &[t(10, BOB, ALICE, 1000)], &[R::ExistsWithDifferentDebitAccountId]);
    check(l, &[t(10, BANK, BOB, 1000)], &[R::ExistsWithDifferentCreditAccountId]);
    check(l, &[t(10, BANK, ALICE, 999)], &[R::ExistsWithDifferentAmount]);
    let retry_post = |pending: u128| Event::CreateTransfer(Transfer::post(tid(120), tid(pending), c(10)));
    check(l, &[retry_post(50)], &[R::Ok]);
    check(l, &[retry_post(51)], &[R::ExistsWithDifferentPendingId]);
    check(
        l,
        &[Event::CreateTransfer(Transfer::pending(
            tid(121),
            ALICE,
            BANK,
            c(1),
            10,
        ))],
        &[R::Ok],
    );
    check(
        l,
        &[Event::CreateTransfer(Transfer::pending(
            tid(121),
            ALICE,
            BANK,
            c(1),
            11,
        ))],
        &[R::ExistsWithDifferentTimeout],
    );
    check(
        l,
        &[Event::CreateTransfer(
            Transfer::new(tid(10), BANK, ALICE, c(1000)).with_code(9),
        )],
        &[R::ExistsWithDifferentCode],
    );
    check(
        l,
        &[Event::CreateTransfer(
            Transfer::new(tid(10), BANK, ALICE, c(1000)).with_user_data(9),
        )],
        &[R::ExistsWithDifferentUserData],
    );
    check(l, &[t(102, ALICE, BANK, 1)], &[R::AlreadyFailed]);
    check(l, &[t(130, AccountId(77), ALICE, 1)], &[R::DebitAccountNotFound]);
    check(l, &[t(131, BANK, AccountId(77), 1)], &[R::CreditAccountNotFound]);
    check(
        l,
        &[Event::CloseAccount {
            id: AccountId(77),
            linked: false,
        }],
        &[R::AccountNotFound],
    );
    check(
        l,
        &[Event::CloseAccount {
            id: CAROL,
            linked: false,
        }],
        &[R::AccountAlreadyClosed],
    );
    check(
        l,
        &[Event::CreateTransfer(Transfer::post(tid(132), tid(999), c(1)))],
        &[R::PendingTransferNotFound],
    );
    check(
        l,
        &[Event::CreateTransfer(Transfer::post(tid(133), tid(60), c(1)))],
        &[R::PendingTransferNotPending],
    );
    check(
        l,
        &[Event::CreateTransfer(Transfer::pending(
            tid(140),
            ALICE,
            BANK,
            c(50),
            0,
        ))],
        &[R::Ok],
    );
    let mut wrong_debit = Transfer::post(tid(134), tid(140), c(1));
    wrong_debit.debit_account_id = BANK;
    check(
        l,
        &[Event::CreateTransfer(wrong_debit)],
        &[R::PendingTransferHasDifferentDebitAccountId],
    );
    let mut wrong_credit = Transfer::post(tid(135), tid(140), c(1));
    wrong_credit.credit_account_id = ALICE;
    check(
        l,
        &[Event::CreateTransfer(wrong_credit)],
        &[R::PendingTransferHasDifferentCreditAccountId],
    );
    check(
        l,
        &[Event::CreateTransfer(Transfer::post(tid(136), tid(50), c(1)))],
        &[R::PendingTransferAlreadyPosted],
    );
    check(
        l,
        &[Event::CreateTransfer(Transfer::void(tid(137), tid(140)))],
        &[R::Ok],
    );
    check(
        l,
        &[Event::CreateTransfer(Transfer::void(tid(138), tid(140)))],
        &[R::PendingTransferAlreadyVoided],
    );
    check(
        l,
        &[Event::CreateTransfer(Transfer::pending(
            tid(141),
            ALICE,
            BANK,
            c(50),
            0,
        ))],
        &[R::Ok],
    );
    check(
        l,
        &[Event::CreateTransfer(Transfer::post(tid(139), tid(141), c(51)))],
        &[R::ExceedsPendingTransferAmount],
    );
    let mut odd_void = Transfer::void(tid(142), tid(141));
    odd_void.amount = c(7);
    check(
        l,
        &[Event::CreateTransfer(odd_void)],
        &[R::PendingTransferHasDifferentAmount],
    );
    check(l, &[t(143, CAROL, BANK, 1)], &[R::DebitAccountClosed]);
    check(l, &[t(144, BANK, CAROL, 1)], &[R::CreditAccountClosed]);
    check(l, &[t(145, ALICE, BANK, 100_000)], &[R::ExceedsCredits]);
    check(l, &[t(146, BANK, BOB, 1)], &[R::ExceedsDebits]);
    let huge = Transfer::pending(tid(147), BANK, ALICE, c(1), u64::MAX / 2);
    check(l, &[Event::CreateTransfer(huge)], &[R::OverflowsTimeout]);
    // Accounts: flags, existence.
    check(
        l,
        &[Event::CreateAccount(Account::new(AccountId(0)))],
        &[R::IdMustNotBeZero],
    );
    let both_limits = Account::new(AccountId(5))
        .with_flags(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS | AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS);
    check(l, &[Event::CreateAccount(both_limits)], &[R::FlagsAreMutuallyExclusive]);
    check(l, &[Event::CreateAccount(Account::balance(ALICE))], &[R::Exists]);

    // The overflow results, with a low limit on totals.
    let mut small = Ledger::new().with_account_total_max(1_000);
    small
        .apply(
            NOW,
            &[
                Event::CreateAccount(Account::new(BANK)),
                Event::CreateAccount(Account::new(ALICE)),
                Event::CreateAccount(Account::new(BOB)),
                t(1, BANK, ALICE, 900),
            ],
        )
        .unwrap();
    let pending = |id: u128, debit: AccountId, credit: AccountId, amount: i64| {
        Event::CreateTransfer(Transfer::pending(tid(id), debit, credit, c(amount), 0))
    };
    for (events, want) in [
        (vec![t(2, BANK, ALICE, 101)], vec![R::OverflowsDebitsPosted]),
        (vec![t(3, BOB, ALICE, 101)], vec![R::OverflowsCreditsPosted]),
        (vec![pending(4, BANK, ALICE, 1001)], vec![R::OverflowsDebitsPending]),
        (
            vec![pending(5, BANK, ALICE, 600), pending(6, BOB, ALICE, 401)],
            vec![R::Ok, R::OverflowsCreditsPending],
        ),
    ] {
        let got = small.apply(NOW + 10, &events).unwrap();
        assert_eq!(got, want, "{events:?}");
        seen.extend(got);
    }

    // Expiry.
    let l = &mut setup();
    let got = l
        .apply(
            NOW + 2_000_000_000,
            &[Event::CreateTransfer(Transfer::post(tid(200), tid(50), c(1)))],
        )
        .unwrap();
    assert_eq!(got, [R::PendingTransferExpired]);
    seen.extend(got);

    // The idempotency window (tests/window.rs has the rest).
    let hour = 3_600_000_000_000;
    let mut w = Ledger::new().with_id_window(IdWindow {
        past_ns: hour,
        ahead_ns: 60_000_000_000,
    });
    let now = 1_800_000_000_000_000_000; // 2027-01-15, in ns since the Unix epoch
    let at = |ns: u64| TransferId::from_time(ns / 1_000_000, 7).unwrap();
    let events = [
        Event::CreateAccount(Account::new(BANK)),
        Event::CreateAccount(Account::new(ALICE)),
        Event::CreateTransfer(Transfer::new(at(now - 2 * hour), BANK, ALICE, c(1))),
        Event::CreateTransfer(Transfer::new(at(now + 2 * hour), BANK, ALICE, c(1))),
        Event::CreateTransfer(Transfer::post(at(now), at(now - 2 * hour), c(1))),
    ];
    let got = w.apply(now, &events).unwrap();
    assert_eq!(
        got[2..],
        [R::IdOlderThanWindow, R::IdAheadOfWindow, R::PendingIdOlderThanWindow]
    );
    seen.extend(got);

    let missing: Vec<_> = EventResult::ALL.iter().filter(|r| !seen.contains(r)).collect();
    assert!(missing.is_empty(), "never reached: {missing:?}");
}

#[test]
fn precedence_reports_the_first_broken_rule() {
    let mut l = setup();
    // Zero id and zero amount and same accounts: the id is checked first.
    assert_eq!(one(&mut l, t(0, BANK, BANK, 0)), EventResult::IdMustNotBeZero);
    // Same accounts and zero amount: accounts first.
    assert_eq!(one(&mut l, t(300, BANK, BANK, 0)), EventResult::AccountsMustBeDifferent);
    // An existing id with another amount and an unknown account: exists checks come before
    // the ledger's state.
    assert_eq!(
        one(&mut l, t(10, BANK, ALICE, 5)),
        EventResult::ExistsWithDifferentAmount
    );
    // Unknown debit and credit accounts: debit first.
    assert_eq!(
        one(&mut l, t(301, AccountId(80), AccountId(81), 5)),
        EventResult::DebitAccountNotFound
    );
}

#[test]
fn two_phase_transfers_release_what_is_not_posted() {
    let mut l = setup();
    assert_eq!(l.account(ALICE).unwrap().available(), 905);
    assert_eq!(
        one(&mut l, Event::CreateTransfer(Transfer::post(tid(400), tid(50), c(30)))),
        EventResult::Ok
    );
    let alice = l.account(ALICE).unwrap();
    assert_eq!(
        (alice.debits_pending, alice.debits_posted, alice.available()),
        (0, 30, 975)
    );
    assert_eq!(l.transfer(tid(50)).unwrap().status, Some(PendingStatus::Posted(c(30))));
}

#[test]
fn holds_expire_at_their_timeout_and_release_everything() {
    let mut l = setup();
    // The hold of 100 was the setup batch's seventh event (timestamp NOW + 6) with a 1 s
    // timeout: still held a nanosecond before, released at it.
    l.apply(NOW + 1_000_000_005, &[]).unwrap();
    assert_eq!(l.account(ALICE).unwrap().debits_pending, 100);
    l.apply(NOW + 1_000_000_006, &[]).unwrap();
    assert_eq!(l.account(ALICE).unwrap().debits_pending, 0);
    assert_eq!(l.transfer(tid(50)).unwrap().status, Some(PendingStatus::Expired));
    assert_eq!(
        one(&mut l, Event::CreateTransfer(Transfer::void(tid(401), tid(50)))),
        EventResult::PendingTransferExpired
    );
}

#[test]
fn a_failed_chain_leaves_nothing_behind() {
    let mut l = setup();
    let before: Vec<_> = l.accounts().collect();
    let chain = [
        Event::CreateAccount(Account::balance(AccountId(9)).with_flags(AccountFlags::LINKED)),
        Event::CreateTransfer(Transfer::new(tid(500), BANK, AccountId(9), c(10)).with_flags(TransferFlags::LINKED)),
        Event::CreateTransfer(Transfer::post(tid(501), tid(50), c(100)).with_flags(TransferFlags::LINKED)),
        Event::CreateTransfer(Transfer::new(tid(502), AccountId(9), BANK, c(11))),
    ];
    let results = l.apply(NOW + 1, &chain).unwrap();
    assert_eq!(
        results,
        [
            EventResult::LinkedEventFailed,
            EventResult::LinkedEventFailed,
            EventResult::LinkedEventFailed,
            EventResult::ExceedsCredits
        ]
    );
    assert_eq!(l.accounts().collect::<Vec<_>>(), before);
    assert!(l.transfer(tid(500)).is_none() && l.transfer(tid(501)).is_none());
    assert_eq!(l.transfer(tid(50)).unwrap().status, Some(PendingStatus::Pending));
    l.check_invariants().unwrap();
    // The events that only failed with their chain can be retried; the one that failed
    // itself cannot.
    assert_eq!(one(&mut l, t(500, BANK, ALICE, 10)), EventResult::Ok);
    assert_eq!(one(&mut l, t(502, ALICE, BANK, 11)), EventResult::AlreadyFailed);
}

#[test]
fn batches_have_a_limit_and_timestamps_increase() {
    let mut l = Ledger::new();
    let big = vec![
        Event::CloseAccount {
            id: AccountId(1),
            linked: false
        };
        paygo_ledger::BATCH_EVENTS_MAX + 1
    ];
    assert_eq!(
        l.apply(NOW, &big),
        Err(LedgerError::BatchTooLarge {
            events: 8191,
            max: 8190
        })
    );
    l.apply(
        NOW,
        &[
            Event::CreateAccount(Account::new(BANK)),
            Event::CreateAccount(Account::new(ALICE)),
        ],
    )
    .unwrap();
    // A clock that goes back: timestamps still increase.
    l.apply(NOW - 500, &[t(1, BANK, ALICE, 1)]).unwrap();
    assert!(l.transfer(tid(1)).unwrap().timestamp_ns > l.account(ALICE).unwrap().timestamp_ns);
}
