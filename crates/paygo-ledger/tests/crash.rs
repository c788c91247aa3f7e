//! Crash test: this test binary re-executes itself as a child that runs a load loop on a
//! durable ledger and prints each acknowledged transfer id once its batch is durable; the
//! parent kills it with SIGKILL at seeded random moments, reopens the store, and checks
//! that every acknowledged transfer is there, that no batch is half there, that the
//! invariants hold, and that writing goes on. Also: a second process cannot open the
//! directory for writing.
//!
//! `PAYGO_CRASH_SEED=<n>` replays a seed; `PAYGO_CRASH_ROUNDS=<n>` runs more rounds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use paygo_credits::Credits;
use paygo_ledger::durable::{self, OpenOptions};
use paygo_ledger::{Account, AccountId, Event, EventResult, Ledger, Transfer, TransferId, WallClock};

const CHILD_DIR: &str = "PAYGO_CRASH_CHILD_DIR";
const CHILD_MODE: &str = "PAYGO_CRASH_CHILD_MODE";
const BANK: AccountId = AccountId(1);
const CUSTOMERS: u128 = 8;
/// Transfers per batch: every batch is all there or not at all.
const BATCH: u128 = 20;
const LOAD_CODE: u16 = 7;
const FIRST_ID: u128 = 1 << 64;

/// The child's entry point: does nothing unless the parent set the environment.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    match std::env::var(CHILD_MODE).as_deref() {
        Ok("lock") => match durable::open_ledger(&dir, WallClock, &OpenOptions::default()) {
            Ok(_) => println!("lock: opened"),
            Err(e) => println!("lock: {e}"),
        },
        _ => load_forever(Path::new(&dir)),
    }
}

fn load_forever(dir: &Path) {
    // Tiny snapshots, so that kills also land during snapshots.
    let options = OpenOptions {
        snapshot_journal_bytes: Some(16 << 10),
        // Small segments, so that kills also land during segment rolls.
        segment_bytes: 8 << 10,
        ..OpenOptions::default()
    };
    let shared = durable::open_ledger(dir, WallClock, &options).unwrap();
    let mut setup = vec![Event::CreateAccount(Account::new(BANK))];
    for c in 0..CUSTOMERS {
        setup.push(Event::CreateAccount(Account::balance(AccountId(10 + c))));
    }
    for r in shared.submit(setup).unwrap() {
        assert!(matches!(r, EventResult::Ok | EventResult::Exists), "{r:?}");
    }
    let done = shared
        .read(|l| l.transfers().filter(|t| t.transfer.code == LOAD_CODE).count())
        .unwrap() as u128;
    let mut next = FIRST_ID + done;
    loop {
        let batch: Vec<Event> = (0..BATCH)
            .map(|k| {
                let t = Transfer::new(
                    TransferId(next + k),
                    BANK,
                    AccountId(10 + (next + k) % CUSTOMERS),
                    Credits::new(3),
                )
                .with_code(LOAD_CODE);
                Event::CreateTransfer(t)
            })
            .collect();
        let results = shared.submit(batch).unwrap();
        assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
        next += BATCH;
        // Printed only once the batch is durable and applied.
        println!("acked {}", next - 1);
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn child(dir: &Path, mode: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "crash_child", "--nocapture", "--test-threads", "1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_MODE, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    cmd
}

/// Checks the store after a kill; returns the number of load transfers in it and whether
/// a torn tail was found.
fn check(dir: &Path, acked: Option<u128>) -> (u128, bool) {
    let (ledger, recovery) = durable::load::<Ledger>(dir).unwrap_or_else(|e| panic!("reopening failed: {e}"));
    ledger.check_invariants().unwrap();
    let ids: Vec<u128> = ledger
        .transfers()
        .filter(|t| t.transfer.code == LOAD_CODE)
        .map(|t| t.transfer.id.0)
        .collect();
    let n = ids.len() as u128;
    // Whole batches only, in order, with no gap.
    assert_eq!(n % BATCH, 0, "a batch is half applied: {n} transfers ({recovery:?})");
    assert!(
        ids.iter().enumerate().all(|(k, id)| *id == FIRST_ID + k as u128),
        "ids have a gap"
    );
    if let Some(last) = acked {
        assert!(
            FIRST_ID + n > last,
            "acknowledged transfer {last} is missing: {n} transfers recovered ({recovery:?})"
        );
    }
    // Every credit moved is accounted for: the customers hold exactly what the bank sent.
    let held: i128 = (0..CUSTOMERS)
        .filter_map(|c| ledger.account(AccountId(10 + c)))
        .map(|a| a.posted_balance())
        .sum();
    assert_eq!(held, 3 * n.cast_signed());
    (n, recovery.torn_bytes > 0)
}

#[test]
fn killed_at_random_moments_the_ledger_keeps_every_acknowledged_batch() {
    if std::env::var(CHILD_DIR).is_ok() {
        return;
    }
    let seed: u64 = std::env::var("PAYGO_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_2026);
    let rounds: usize = std::env::var("PAYGO_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    let dir = TempDir(std::env::temp_dir().join(format!("paygo-crash-{}-{seed}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    println!("crash test seed {seed} (replay with PAYGO_CRASH_SEED={seed})");
    let mut rng = seed | 1;
    let started = Instant::now();
    let mut total_acked = 0;
    let mut torn = 0;
    for round in 0..rounds {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Most kills land in the load loop; some during start-up and recovery.
        let delay = Duration::from_millis(5 + rng % 120);
        let mut process = child(&dir.0, "load").spawn().unwrap();
        let stdout = process.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut last = None;
            let mut count = 0;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(id) = line.strip_prefix("acked ") {
                    last = Some(id.parse::<u128>().unwrap());
                    count += 1;
                }
            }
            (last, count)
        });
        std::thread::sleep(delay);
        process.kill().unwrap();
        let status = process.wait().unwrap();
        let (acked, count) = reader.join().unwrap();
        assert!(!status.success(), "round {round}: the child ended by itself: {status}");
        total_acked += count;
        if dir.0.join("MANIFEST").exists() {
            torn += usize::from(check(&dir.0, acked).1);
        } else {
            assert_eq!(acked, None, "round {round}: acknowledged without a store");
        }
    }
    assert!(
        total_acked > 0,
        "no batch was acknowledged in any round: the kills came too early"
    );
    // Writing goes on after the last kill.
    {
        let shared = durable::open_ledger(&dir.0, WallClock, &OpenOptions::default()).unwrap();
        let before = shared
            .read(|l| l.transfers().filter(|t| t.transfer.code == LOAD_CODE).count())
            .unwrap() as u128;
        let batch = (0..BATCH)
            .map(|k| {
                Event::CreateTransfer(
                    Transfer::new(TransferId(FIRST_ID + before + k), BANK, AccountId(10), Credits::new(3))
                        .with_code(LOAD_CODE),
                )
            })
            .collect();
        assert!(shared.submit(batch).unwrap().iter().all(|r| r.is_ok()));
    }
    check(&dir.0, None);
    println!(
        "{rounds} kills, {total_acked} acknowledged batches, {torn} torn tails found, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_second_process_cannot_open_the_directory_for_writing() {
    if std::env::var(CHILD_DIR).is_ok() {
        return;
    }
    let dir = TempDir(std::env::temp_dir().join(format!("paygo-lock-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let run = |dir: &Path| {
        let out = child(dir, "lock").output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let holder = durable::open_ledger(&dir.0, WallClock, &OpenOptions::default()).unwrap();
    let refused = run(&dir.0);
    assert!(
        refused.contains("lock: directory") && refused.contains("is locked"),
        "{refused}"
    );
    drop(holder);
    let opened = run(&dir.0);
    assert!(opened.contains("lock: opened"), "{opened}");
}
