//! Durability: a reopened store rebuilds the same state and answers; a torn tail is cut;
//! damage before the tail is an error naming the file and offset; a locked, foreign or
//! missing directory is refused with nothing written.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
#![allow(clippy::cast_possible_wrap, clippy::cast_sign_loss, clippy::too_many_lines)]

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use paygo_credits::Credits;
use paygo_ledger::durable::{self, Head, Loaded, OpenOptions, Recovery, Storage};
use paygo_ledger::{
    Account, AccountBalance, AccountId, Event, Ledger, LedgerError, ManualClock, SharedLedger, Transfer, TransferFlags,
    TransferId, TransferRecord,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use paygo_testkit::store::{Crashing, TempDir};

fn no_auto_snapshot() -> OpenOptions {
    OpenOptions {
        snapshot_journal_bytes: None,
        ..OpenOptions::default()
    }
}

/// What two ledgers must agree on.
fn fingerprint(l: &Ledger) -> (Vec<AccountBalance>, Vec<TransferRecord>, u64) {
    (l.accounts().collect(), l.transfers().collect(), l.last_timestamp_ns())
}

/// Seeded batches of accounts, transfers, holds (with timeouts), posts, voids, retries and
/// linked chains.
fn batches(seed: u64, count: usize) -> Vec<Vec<Event>> {
    let mut s = seed | 1;
    let mut next = move |n: u64| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s % n
    };
    let mut out = vec![
        (1..=6u128)
            .map(|a| {
                Event::CreateAccount(if a == 1 {
                    Account::new(AccountId(a))
                } else {
                    Account::balance(AccountId(a))
                })
            })
            .collect::<Vec<_>>(),
    ];
    out[0].push(Event::CreateTransfer(Transfer::new(
        TransferId(1),
        AccountId(1),
        AccountId(2),
        Credits::new(10_000),
    )));
    let mut id = 100u128;
    for _ in 0..count {
        let mut batch = Vec::new();
        for _ in 0..=next(12) {
            id += 1;
            let (d, c) = (1 + u128::from(next(6)), 1 + u128::from(next(6)));
            let amount = Credits::new(next(3_000) as i64);
            let mut t = match next(5) {
                0 => Transfer::pending(TransferId(id), AccountId(d), AccountId(c), amount, next(3)),
                1 => Transfer::post(TransferId(id), TransferId(id - 1 - u128::from(next(4))), amount),
                2 => Transfer::void(TransferId(id), TransferId(id - 1 - u128::from(next(4)))),
                3 => Transfer::new(
                    TransferId(id - u128::from(next(20))),
                    AccountId(d),
                    AccountId(c),
                    amount,
                ),
                _ => Transfer::new(TransferId(id), AccountId(d), AccountId(c), amount),
            };
            if next(4) == 0 {
                t = t.with_flags(TransferFlags::LINKED);
            }
            batch.push(Event::CreateTransfer(t));
        }
        out.push(batch);
    }
    out
}

#[test]
fn a_reopened_ledger_has_the_same_state_and_answers() {
    let dir = TempDir::new("reopen");
    let all = batches(7, 40);
    let clock_ns = 5_000_000_000;
    let mut reference = Ledger::new();
    {
        let shared = durable::open_ledger(&dir.0, ManualClock::new(clock_ns), &no_auto_snapshot()).unwrap();
        for (i, batch) in all.iter().enumerate() {
            assert_eq!(
                shared.submit(batch.clone()).unwrap(),
                reference.apply(clock_ns, batch).unwrap()
            );
            if i == 20 {
                shared.snapshot().unwrap();
            }
        }
        let head = shared.head().unwrap().unwrap();
        assert_eq!(head.records, all.len() as u64);
    }
    let shared = durable::open_ledger(&dir.0, ManualClock::new(clock_ns + 10), &no_auto_snapshot()).unwrap();
    let recovery = shared.recovery().unwrap().clone();
    assert_eq!(recovery.snapshot_records, 21);
    assert_eq!(recovery.records_replayed, all.len() as u64 - 21);
    assert_eq!(shared.read(fingerprint).unwrap(), fingerprint(&reference));
    // Retries answer as the first time: exists, already failed, and the same hold state.
    for batch in &all {
        let again = shared.submit(batch.clone()).unwrap();
        let expected = reference.apply(clock_ns + 10, batch).unwrap();
        assert_eq!(again, expected);
    }
    shared.read(Ledger::check_invariants).unwrap().unwrap();
    drop(shared);
    let (loaded, _) = durable::load::<Ledger>(&dir.0).unwrap();
    assert_eq!(fingerprint(&loaded), fingerprint(&reference));
}

/// A clock the test moves while the handle reads it.
struct Shared(std::sync::Arc<ManualClock>);
impl paygo_ledger::Clock for Shared {
    fn now_ns(&self) -> u64 {
        self.0.now_ns()
    }
}

#[test]
fn time_and_expiry_replay_exactly() {
    let dir = TempDir::new("expiry");
    let clock = std::sync::Arc::new(ManualClock::new(1_000_000_000));
    let all = batches(99, 60);
    let mut reference = Ledger::new();
    {
        let shared = durable::open_ledger(&dir.0, Shared(clock.clone()), &no_auto_snapshot()).unwrap();
        for batch in &all {
            let now = paygo_ledger::Clock::now_ns(&*clock);
            assert_eq!(
                shared.submit(batch.clone()).unwrap(),
                reference.apply(now, batch).unwrap()
            );
            clock.advance_ns(1_000_000);
        }
    }
    let (loaded, recovery) = durable::load::<Ledger>(&dir.0).unwrap();
    assert_eq!(recovery.records_replayed, all.len() as u64);
    assert_eq!(fingerprint(&loaded), fingerprint(&reference));
}

#[test]
fn a_second_writer_is_refused_and_readers_work_while_the_writer_runs() {
    let dir = TempDir::new("lock");
    let first = durable::open_ledger(&dir.0, ManualClock::new(1), &no_auto_snapshot()).unwrap();
    let second = durable::open_ledger(&dir.0, ManualClock::new(1), &no_auto_snapshot());
    assert!(matches!(second, Err(LedgerError::Locked { .. })), "{second:?}");
    first.submit(batches(1, 0).remove(0)).unwrap();
    // Readers take no lock: they read up to the last whole record, while records go on
    // being appended (and segments rolled, and snapshots taken) by the writer.
    let all = batches(17, 300);
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            for (i, batch) in all.iter().enumerate() {
                first.submit(batch.clone()).unwrap();
                if i % 100 == 99 {
                    first.snapshot().unwrap();
                }
            }
        });
        let mut seen = 0;
        while !writer.is_finished() {
            let (loaded, _) = durable::load::<Ledger>(&dir.0).unwrap();
            loaded.check_invariants().unwrap();
            assert!(loaded.transfers_len() >= seen, "a later read saw fewer transfers");
            seen = loaded.transfers_len();
            let (verified, _) = durable::verify::<Ledger>(&dir.0).unwrap();
            assert!(verified.transfers_len() >= seen);
        }
    });
    let told = first.read(fingerprint).unwrap();
    let (loaded, _) = durable::load::<Ledger>(&dir.0).unwrap();
    assert_eq!(fingerprint(&loaded), told);
    drop(first);
    durable::open_ledger(&dir.0, ManualClock::new(1), &no_auto_snapshot()).unwrap();
}

#[test]
fn foreign_missing_and_mismatched_directories_are_refused_untouched() {
    let dir = TempDir::new("foreign");
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::write(dir.0.join("notes.txt"), b"mine").unwrap();
    let opened = durable::open_ledger(&dir.0, ManualClock::new(1), &OpenOptions::default());
    assert!(matches!(opened, Err(LedgerError::Foreign { .. })), "{opened:?}");
    assert!(matches!(
        durable::load::<Ledger>(&dir.0),
        Err(LedgerError::Foreign { .. })
    ));
    let names: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["notes.txt"], "nothing is written to a foreign directory");

    let missing = TempDir::new("missing");
    let loaded = durable::load::<Ledger>(&missing.0);
    assert!(
        matches!(loaded, Err(LedgerError::MissingDirectory { .. })),
        "{loaded:?}"
    );
    assert!(!missing.0.exists(), "reading never creates the directory");
}

#[test]
fn snapshots_rotate_the_journal_and_keep_the_previous_one() {
    let dir = TempDir::new("rotate");
    let all = batches(3, 30);
    let options = OpenOptions {
        snapshot_journal_bytes: Some(2_000),
        ..OpenOptions::default()
    };
    let mut reference = Ledger::new();
    {
        let shared = durable::open_ledger(&dir.0, ManualClock::new(9), &options).unwrap();
        for batch in &all {
            assert_eq!(
                shared.submit(batch.clone()).unwrap(),
                reference.apply(9, batch).unwrap()
            );
        }
    }
    let files: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let snapshots = files.iter().filter(|f| f.starts_with("snapshot-")).count();
    assert_eq!(snapshots, 2, "{files:?}");
    assert!(
        files.iter().filter(|f| f.starts_with("journal-")).count() <= 3,
        "{files:?}"
    );
    // The newest snapshot damaged: the older one and the journal after it give the same state.
    let mut newest = files.iter().filter(|f| f.starts_with("snapshot-")).collect::<Vec<_>>();
    newest.sort();
    let path = dir.0.join(newest[1]);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 1;
    bytes[at] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let (loaded, recovery) = durable::load::<Ledger>(&dir.0).unwrap();
    assert_eq!(recovery.skipped_snapshots.len(), 1, "{recovery:?}");
    assert_eq!(fingerprint(&loaded), fingerprint(&reference));
}

/// Segments of 16 KiB in the tests that damage them byte by byte.
const SMALL_SEGMENT: u64 = 16 << 10;

/// A small journal of one segment, closed cleanly or crashed; its reference states after
/// each record, where each record starts, and where each one's last non-zero byte ends
/// (changing a byte before it damages the record; a record may end in zeros).
fn small_journal(dir: &Path, crash: bool) -> (PathBuf, Vec<Ledger>, Vec<u64>, Vec<u64>) {
    let all = batches(11, 6);
    let mut reference = Ledger::new();
    let mut states = vec![reference.clone()];
    let store = durable::FileStore::open(dir, "ledger", true)
        .unwrap()
        .segment_bytes(SMALL_SEGMENT);
    let mut crashing = Crashing::with(store, dir);
    crashing.crash = crash;
    crashing.track.store(true, Ordering::SeqCst);
    let placements = crashing.placements.clone();
    {
        let shared = SharedLedger::with_storage(
            Box::new(crashing),
            Ledger::new,
            ManualClock::new(77),
            &no_auto_snapshot(),
        )
        .unwrap();
        for batch in &all {
            shared.submit(batch.clone()).unwrap();
            reference.apply(77, batch).unwrap();
            states.push(reference.clone());
        }
    }
    let placements = placements.lock().unwrap().clone();
    let segment = placements[0].0.clone();
    assert!(placements.iter().all(|p| p.0 == segment), "one segment");
    let starts: Vec<u64> = placements.iter().map(|p| p.1).collect();
    let bytes = std::fs::read(&segment).unwrap();
    let ends = (0..starts.len())
        .map(|i| {
            let next = starts.get(i + 1).map_or(bytes.len(), |&n| n as usize);
            bytes[..next].iter().rposition(|&b| b != 0).unwrap() as u64 + 1
        })
        .collect();
    (segment, states, starts, ends)
}

fn copy_of(dir: &TempDir, name: &str) -> TempDir {
    dir.copy(name)
}

#[test]
fn a_tail_lost_from_any_offset_after_a_crash_recovers_the_whole_records_before_it() {
    let dir = TempDir::new("lost-tail");
    let (segment, states, starts, ends) = small_journal(&dir.0, true);
    let original = std::fs::read(&segment).unwrap();
    let copy = copy_of(&dir, "lost-tail-copy");
    let target = copy.0.join(segment.file_name().unwrap());
    let end = *ends.last().unwrap();
    for cut in (starts[0]..end).filter(|c| c % 5 == 0 || starts.iter().any(|b| c.abs_diff(*b) < 60)) {
        // What a crash leaves of unsynced writes in a preallocated segment: zeros.
        let mut bytes = original.clone();
        bytes[cut as usize..end as usize].fill(0);
        std::fs::write(&target, &bytes).unwrap();
        let (loaded, recovery) = durable::load::<Ledger>(&copy.0).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        // The records whose bytes are all before the cut survive; the next one is torn
        // and cut (and the ones after it are lost with it: a crash tears only the last,
        // but zeros from here on leave nothing that could show they were written).
        let whole = ends.iter().filter(|&&e| e <= cut).count();
        assert_eq!(recovery.records_replayed, whole as u64, "cut at {cut}");
        assert_eq!(fingerprint(&loaded), fingerprint(&states[whole]), "cut at {cut}");
        loaded.check_invariants().unwrap();
    }
    // Writable: the torn record (garbage where its second half should be) is zeroed and
    // writing goes on after the last whole record.
    let cut = u64::midpoint(starts[3], starts[4]);
    let mut bytes = original.clone();
    bytes[cut as usize..starts[4] as usize].fill(0xAB);
    bytes[starts[4] as usize..end as usize].fill(0);
    std::fs::write(&target, &bytes).unwrap();
    let (_, recovery) = durable::load::<Ledger>(&copy.0).unwrap();
    assert_eq!(recovery.records_replayed, 3);
    assert_eq!(recovery.torn_bytes, starts[4] - starts[3]);
    {
        let shared = durable::open_ledger(&copy.0, ManualClock::new(77), &no_auto_snapshot()).unwrap();
        assert_eq!(shared.recovery().unwrap().torn_bytes, starts[4] - starts[3]);
        shared
            .submit(vec![Event::CreateAccount(Account::new(AccountId(999)))])
            .unwrap();
    }
    let (loaded, recovery) = durable::load::<Ledger>(&copy.0).unwrap();
    assert_eq!(recovery.records_replayed, 4);
    assert_eq!(recovery.torn_bytes, 0);
    assert!(loaded.account(AccountId(999)).is_some());
}

#[test]
fn after_a_clean_close_any_lost_tail_is_corruption() {
    let dir = TempDir::new("closed-tail");
    let (segment, _, starts, ends) = small_journal(&dir.0, false);
    let original = std::fs::read(&segment).unwrap();
    let end = *ends.last().unwrap();
    for cut in (starts[0]..end).step_by(7) {
        let mut bytes = original.clone();
        bytes[cut as usize..end as usize].fill(0);
        std::fs::write(&segment, &bytes).unwrap();
        match durable::load::<Ledger>(&dir.0) {
            Err(LedgerError::Corrupt { offset, .. }) => {
                let damaged = ends.iter().position(|&e| e > cut).unwrap();
                assert_eq!(offset, starts[damaged], "cut at {cut}");
            }
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn flipped_bits_are_an_error_naming_the_place_or_a_torn_last_record() {
    for crash in [true, false] {
        let dir = TempDir::new("flip");
        let (segment, states, starts, ends) = small_journal(&dir.0, crash);
        let original = std::fs::read(&segment).unwrap();
        let copy = copy_of(&dir, "flip-copy");
        let target = copy.0.join(segment.file_name().unwrap());
        let (last_start, end) = (*starts.last().unwrap(), *ends.last().unwrap());
        let n = states.len() - 1;
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        for round in 0..400 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            // Most flips in the records, some in the header and the free space after.
            let at = if round % 4 == 0 {
                s % original.len() as u64
            } else {
                s % (end + 64)
            };
            let bit = 1u8 << (s >> 61);
            let mut damaged = original.clone();
            damaged[at as usize] ^= bit;
            std::fs::write(&target, &damaged).unwrap();
            match durable::load::<Ledger>(&copy.0) {
                Ok((loaded, recovery)) => {
                    assert!(at >= last_start, "flip at {at} was not detected");
                    // A flip after the records changes nothing; one in the last record is
                    // taken for a torn write, after a crash only, and that record is cut.
                    let got = fingerprint(&loaded);
                    let cut = crash && got == fingerprint(&states[n - 1]);
                    assert!(cut || got == fingerprint(&states[n]), "flip at {at}: {recovery:?}");
                    assert!(cut || at >= end, "flip at {at} in the last record");
                }
                Err(LedgerError::Corrupt { file, offset, .. }) => {
                    assert!(Path::new(&file).extension().is_some_and(|e| e == "log"), "{file}");
                    // The error names the start of the damaged record (or the header).
                    let expected = starts.iter().rev().find(|&&b| b <= at).copied().unwrap_or(0);
                    assert_eq!(offset, expected, "flip at {at}, crash {crash}");
                    assert!(
                        !crash || at < last_start || at < starts[0],
                        "flip at {at}: the last record is torn, not corrupt"
                    );
                }
                Err(other) => panic!("flip at {at}: unexpected {other}"),
            }
        }
    }
}

#[test]
fn damage_in_the_last_two_records_is_corruption_not_a_torn_tail() {
    // Every append is synced before the next one: only the very last record can be torn.
    // A damaged record with bytes written after it is corruption, and nothing is cut.
    for crash in [true, false] {
        let dir = TempDir::new("two-last");
        let (segment, _, starts, _) = small_journal(&dir.0, crash);
        let mut bytes = std::fs::read(&segment).unwrap();
        let (second_last, last) = (starts[starts.len() - 2] as usize, starts[starts.len() - 1] as usize);
        bytes[second_last + 60] ^= 1;
        bytes[last + 60] ^= 1;
        std::fs::write(&segment, &bytes).unwrap();
        match durable::load::<Ledger>(&dir.0) {
            Err(LedgerError::Corrupt { offset, .. }) => assert_eq!(offset, second_last as u64),
            other => panic!("expected corruption, got {other:?}"),
        }
        // A writable open refuses too, and leaves the file as it was.
        assert!(durable::open_ledger(&dir.0, ManualClock::new(1), &no_auto_snapshot()).is_err());
        assert_eq!(std::fs::read(&segment).unwrap(), bytes);
    }
}

#[test]
fn a_damaged_only_snapshot_is_an_error_not_an_empty_ledger() {
    let dir = TempDir::new("snapshot");
    small_journal(&dir.0, false);
    let path = dir.0.join(format!("snapshot-{:020}.snap", 0));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[20] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let loaded = durable::load::<Ledger>(&dir.0);
    assert!(matches!(loaded, Err(LedgerError::Corrupt { .. })), "{loaded:?}");
}

fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        cases: 12,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/durable.proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    /// Replay is exact: for any seeded run, with or without a snapshot in the middle, the
    /// recovered ledger equals the one that answered.
    #[test]
    fn replay_rebuilds_the_ledger_that_answered(seed in 1u64.., count in 1usize..25, snapshot_at in 0usize..30) {
        let dir = TempDir::new("prop");
        let all = batches(seed, count);
        let mut reference = Ledger::new();
        {
            let shared = durable::open_ledger(&dir.0, ManualClock::new(seed % 1_000), &no_auto_snapshot()).unwrap();
            for (i, batch) in all.iter().enumerate() {
                prop_assert_eq!(shared.submit(batch.clone()).unwrap(), reference.apply(seed % 1_000, batch).unwrap());
                if i == snapshot_at {
                    shared.snapshot().unwrap();
                }
            }
        }
        let (loaded, _) = durable::load::<Ledger>(&dir.0).unwrap();
        prop_assert_eq!(fingerprint(&loaded), fingerprint(&reference));
    }
}

/// A storage that fails after a number of appends: another backend, through the trait.
#[derive(Debug)]
struct Flaky {
    inner: durable::FileStore,
    appends_left: u64,
}

impl Storage for Flaky {
    fn load(&mut self, visit: &mut dyn FnMut(Loaded<'_>) -> Result<(), LedgerError>) -> Result<Recovery, LedgerError> {
        self.inner.load(visit)
    }

    fn append(&mut self, payload: &[u8]) -> Result<(), LedgerError> {
        if self.appends_left == 0 {
            return Err(LedgerError::Io {
                op: "write".into(),
                path: "flaky".into(),
                message: "no space left on device".into(),
            });
        }
        self.appends_left -= 1;
        self.inner.append(payload)
    }

    fn save_snapshot(&mut self, state: &[u8]) -> Result<(), LedgerError> {
        self.inner.save_snapshot(state)
    }

    fn head(&self) -> Head {
        self.inner.head()
    }

    fn bytes_since_snapshot(&self) -> u64 {
        self.inner.bytes_since_snapshot()
    }
}

#[test]
fn a_failed_append_applies_nothing_and_the_handle_refuses_further_work() {
    let dir = TempDir::new("flaky");
    let all = batches(5, 4);
    let mut reference = Ledger::new();
    {
        let store = durable::FileStore::open(&dir.0, "ledger", true).unwrap();
        let flaky = Flaky {
            inner: store,
            appends_left: 2,
        };
        let shared =
            SharedLedger::with_storage(Box::new(flaky), Ledger::new, ManualClock::new(50), &no_auto_snapshot())
                .unwrap();
        for batch in &all[..2] {
            assert_eq!(
                shared.submit(batch.clone()).unwrap(),
                reference.apply(50, batch).unwrap()
            );
        }
        let failed = shared.submit(all[2].clone());
        assert!(matches!(failed, Err(LedgerError::Unavailable { .. })), "{failed:?}");
        // Nothing of the failed turn was applied, and nothing more is taken.
        assert_eq!(shared.read(fingerprint).unwrap(), fingerprint(&reference));
        let refused = shared.submit(all[3].clone());
        assert!(matches!(refused, Err(LedgerError::Unavailable { .. })), "{refused:?}");
        assert_eq!(shared.read(fingerprint).unwrap(), fingerprint(&reference));
    }
    // Reopened: what was acknowledged is there, and writing goes on.
    let shared = durable::open_ledger(&dir.0, ManualClock::new(50), &no_auto_snapshot()).unwrap();
    assert_eq!(shared.read(fingerprint).unwrap(), fingerprint(&reference));
    assert_eq!(
        shared.submit(all[2].clone()).unwrap(),
        reference.apply(50, &all[2]).unwrap()
    );
}

#[test]
fn verify_reads_every_record_kept_and_agrees_with_load() {
    let dir = TempDir::new("verify");
    let all = batches(21, 30);
    {
        let shared = durable::open_ledger(&dir.0, ManualClock::new(3), &no_auto_snapshot()).unwrap();
        for (i, batch) in all.iter().enumerate() {
            shared.submit(batch.clone()).unwrap();
            if i % 10 == 9 {
                shared.snapshot().unwrap();
            }
        }
    }
    let (loaded, from_newest) = durable::load::<Ledger>(&dir.0).unwrap();
    let (verified, from_oldest) = durable::verify::<Ledger>(&dir.0).unwrap();
    assert_eq!(fingerprint(&loaded), fingerprint(&verified));
    assert_eq!(from_newest.snapshot_records, 30);
    assert_eq!(from_oldest.snapshot_records, 20);
    assert_eq!(from_oldest.records_replayed, 11);
    assert_eq!(from_newest.records_replayed, 1);
    assert_eq!(from_oldest.head, from_newest.head);
}

#[test]
fn many_threads_share_records_and_replay_to_the_state_they_were_told() {
    let dir = TempDir::new("group");
    let shared =
        std::sync::Arc::new(durable::open_ledger(&dir.0, paygo_ledger::WallClock, &no_auto_snapshot()).unwrap());
    shared
        .submit(vec![
            Event::CreateAccount(Account::new(AccountId(1))),
            Event::CreateAccount(Account::balance(AccountId(2))),
        ])
        .unwrap();
    let threads: Vec<_> = (0..4u128)
        .map(|t| {
            let shared = std::sync::Arc::clone(&shared);
            std::thread::spawn(move || {
                for k in 0..40u128 {
                    let id = TransferId(1_000 * (t + 1) + k);
                    let transfer = Transfer::new(id, AccountId(1), AccountId(2), Credits::new(1));
                    assert!(shared.submit(vec![Event::CreateTransfer(transfer)]).unwrap()[0].is_ok());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let head = shared.head().unwrap().unwrap();
    // 161 submissions; waiting ones share a record (how many depends on the scheduler).
    assert!(head.records <= 161, "{head:?}");
    let told = shared.read(fingerprint).unwrap();
    drop(shared);
    let (loaded, recovery) = durable::load::<Ledger>(&dir.0).unwrap();
    assert_eq!(recovery.commands_replayed, 162);
    assert_eq!(fingerprint(&loaded), told);
    assert_eq!(loaded.account(AccountId(2)).unwrap().posted_balance(), 160);
}

/// Rewrites a snapshot file's state with `change`, with valid checksums.
fn doctor_snapshot(path: &Path, change: impl Fn(&mut [u8])) {
    let mut bytes = std::fs::read(path).unwrap();
    change(&mut bytes[64..]);
    let state_crc = durable::crc32c(&bytes[64..]);
    bytes[56..60].copy_from_slice(&state_crc.to_le_bytes());
    let header_crc = durable::crc32c(&bytes[..60]);
    bytes[60..64].copy_from_slice(&header_crc.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn verify_refuses_a_damaged_or_untrue_newest_snapshot_that_load_passes_over() {
    let build = |name: &str| {
        let dir = TempDir::new(name);
        let shared = durable::open_ledger(&dir.0, ManualClock::new(3), &no_auto_snapshot()).unwrap();
        for (i, batch) in batches(23, 20).into_iter().enumerate() {
            shared.submit(batch).unwrap();
            if i % 10 == 9 {
                shared.snapshot().unwrap();
            }
        }
        let told = shared.read(fingerprint).unwrap();
        drop(shared);
        durable::verify::<Ledger>(&dir.0).unwrap();
        (dir, told)
    };
    // Damaged: load passes over it (the older snapshot and the journal give the same
    // state); verify names it.
    let (dir, told) = build("verify-damaged");
    let newest = dir.files("snapshot-").pop().unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 0x10;
    std::fs::write(&newest, bytes).unwrap();
    let (loaded, recovery) = durable::load::<Ledger>(&dir.0).unwrap();
    assert_eq!(fingerprint(&loaded), told);
    assert_eq!(recovery.skipped_snapshots.len(), 1);
    match durable::verify::<Ledger>(&dir.0) {
        Err(LedgerError::Corrupt { file, .. }) => assert_eq!(Path::new(&file), newest),
        other => panic!("verify: {other:?}"),
    }
    // Intact checksums, but a state that is not the journal's (its clock moved): only a
    // comparison with the replay finds it.
    let (dir, _) = build("verify-untrue");
    let newest = dir.files("snapshot-").pop().unwrap();
    doctor_snapshot(&newest, |state| state[0] ^= 1);
    durable::load::<Ledger>(&dir.0).unwrap();
    match durable::verify::<Ledger>(&dir.0) {
        Err(LedgerError::Corrupt { file, what, .. }) => {
            assert_eq!(Path::new(&file), newest);
            assert!(what.contains("differs"), "{what}");
        }
        other => panic!("verify: {other:?}"),
    }
    // Missing: the same.
    let (dir, _) = build("verify-missing");
    let newest = dir.files("snapshot-").pop().unwrap();
    std::fs::remove_file(&newest).unwrap();
    assert!(matches!(
        durable::verify::<Ledger>(&dir.0),
        Err(LedgerError::Corrupt { .. })
    ));
}

/// A `FileStore` whose snapshot jobs wait for the test to open a gate before they write.
#[derive(Debug)]
struct Gated {
    inner: durable::FileStore,
    gate: std::sync::Arc<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>,
    begun: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
}

impl Storage for Gated {
    fn load(&mut self, visit: &mut dyn FnMut(Loaded<'_>) -> Result<(), LedgerError>) -> Result<Recovery, LedgerError> {
        self.inner.load(visit)
    }
    fn append(&mut self, payload: &[u8]) -> Result<(), LedgerError> {
        self.inner.append(payload)
    }
    fn save_snapshot(&mut self, state: &[u8]) -> Result<(), LedgerError> {
        self.inner.save_snapshot(state)
    }
    fn begin_snapshot(&mut self, state: Vec<u8>) -> Result<durable::SnapshotJob, LedgerError> {
        let mut job = self.inner.begin_snapshot(state)?;
        let records = job.records();
        self.begun.lock().unwrap().push(records);
        let gate = self.gate.clone();
        Ok(durable::SnapshotJob::new(records, move || {
            let _ = gate.lock().unwrap().recv();
            job.run()
        }))
    }
    fn finish_snapshot(&mut self, job: &durable::SnapshotJob) -> Result<(), LedgerError> {
        self.inner.finish_snapshot(job)
    }
    fn head(&self) -> Head {
        self.inner.head()
    }
    fn bytes_since_snapshot(&self) -> u64 {
        self.inner.bytes_since_snapshot()
    }
    fn close(&mut self) -> Result<(), LedgerError> {
        self.inner.close()
    }
}

fn listed_snapshots(dir: &Path) -> Vec<u64> {
    std::fs::read_to_string(dir.join("MANIFEST"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("snapshot: "))
        .map(|rest| rest.split(' ').next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn an_automatic_snapshot_is_written_while_submissions_go_on_and_listed_after() {
    let dir = TempDir::new("async-snapshot");
    let (open_gate, gate) = std::sync::mpsc::channel();
    let begun = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let store = durable::FileStore::open(&dir.0, "ledger", true).unwrap();
    let gated = Gated {
        inner: store,
        gate: std::sync::Arc::new(std::sync::Mutex::new(gate)),
        begun: begun.clone(),
    };
    // The new store's first snapshot (record 0) is written at once: let it through.
    open_gate.send(()).unwrap();
    let options = OpenOptions {
        snapshot_journal_bytes: Some(2_000),
        ..OpenOptions::default()
    };
    let shared = SharedLedger::with_storage(Box::new(gated), Ledger::new, ManualClock::new(9), &options).unwrap();
    let mut reference = Ledger::new();
    let all = batches(5, 40);
    let mut batches = all.iter();
    // Until an automatic snapshot is begun.
    while begun.lock().unwrap().len() < 2 {
        let batch = batches.next().unwrap();
        assert_eq!(
            shared.submit(batch.clone()).unwrap(),
            reference.apply(9, batch).unwrap()
        );
    }
    let snapshot = begun.lock().unwrap()[1];
    // Its file is held back: submissions still go on, and it is not listed.
    for batch in batches.by_ref().take(5) {
        assert_eq!(
            shared.submit(batch.clone()).unwrap(),
            reference.apply(9, batch).unwrap()
        );
    }
    assert_eq!(listed_snapshots(&dir.0), [0]);
    // A crash now (a copy of the files): everything acknowledged is recovered from the
    // older snapshot and the journal.
    let crashed = dir.copy("async-snapshot-crash");
    let (loaded, recovery) = durable::load::<Ledger>(&crashed.0).unwrap();
    assert_eq!(recovery.snapshot_records, 0);
    assert_eq!(fingerprint(&loaded), fingerprint(&reference));
    // Written: the next turn lists it.
    open_gate.send(()).unwrap();
    let mut listed = false;
    for batch in batches.by_ref() {
        assert_eq!(
            shared.submit(batch.clone()).unwrap(),
            reference.apply(9, batch).unwrap()
        );
        if listed_snapshots(&dir.0).contains(&snapshot) {
            listed = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(listed, "snapshot {snapshot} was never listed");
    // Later snapshots are let through as they come; the reopened store starts from the
    // newest listed one and equals the reference.
    for _ in 0..100 {
        let _ = open_gate.send(());
    }
    drop(shared);
    let (loaded, recovery) = durable::load::<Ledger>(&dir.0).unwrap();
    assert!(recovery.snapshot_records >= snapshot, "{recovery:?}");
    assert_eq!(fingerprint(&loaded), fingerprint(&reference));
}
