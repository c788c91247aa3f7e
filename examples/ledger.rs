//! A command-line front to the durable ledger, thin over `paygo_ledger::durable`.
//!
//! ```text
//! cargo run --release --example ledger -- load --dir D --accounts N --transfers M [--batch B] [--segment-mib S]
//!     [--window-s W] [--archive yes|no] [--rss-every R]
//! cargo run --release --example ledger -- verify --dir D
//! cargo run --release --example ledger -- balance --dir D --account ID
//! cargo run --release --example ledger -- history --dir D --account ID
//! ```
//!
//! `load` creates the store if needed, opens and funds `N` customer accounts (account ids
//! `1..=N`, funded from the bank account `u128::MAX - 1`), then runs `M` transfers between
//! random accounts in batches of `B` (default 8,190), and prints `acked <id>` after each
//! durable batch: the id of the last transfer the ledger acknowledged, so that a test
//! killing the process knows what must have survived. Run again on the same directory, it
//! goes on after the transfers already there. New journal segments are `S` MiB (default 64).
//! `--window-s W` creates the store with an idempotency window of `W` seconds (see
//! `IdWindow`; a store keeps the window it was created with) and uses time-ordered ids;
//! `--archive yes` moves old journal segments into `archive/` instead of removing them;
//! `--rss-every R` prints the process's resident memory after every `R` transfers
//! (`rss <transfers> <KiB>`, read from `/proc/self/status`), to measure memory over a long
//! run.
//!
//! `verify`, `balance` and `history` only read, take no lock (they work while a writer
//! runs, and read up to its last whole record), and open a ledger store (what `load`
//! writes) or a billing store (what the gateway writes; `--account` is then the customer).
//! A missing or foreign directory is an error, and nothing is written.
//!
//! Exit status: 0 on success, 1 on an error of the store (or damage), 2 on wrong
//! arguments. Output that cannot be written (a closed pipe, a full disk) is not a reason to
//! panic: the status says what happened.

#![allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)] // generated amounts are below 1000

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use paygo::billing::{BREAKAGE, Billing, FUNDING, PROMOTIONS, REVENUE};
use paygo::credits::Credits;
use paygo::ledger::durable::{self, OpenOptions, Recovery};
use paygo::ledger::{
    Account, AccountBalance, AccountId, BATCH_EVENTS_MAX, Clock, Event, EventResult, IdWindow, Ledger, SharedLedger,
    Transfer, TransferId, WallClock,
};

/// Prints a line; a closed stdout (`| head`) is not an error of the ledger.
macro_rules! out {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Prints a line on stderr; one that cannot be written (`2>/dev/full`) is dropped, and
/// the exit status still says what happened (`eprintln!` would panic: exit 101).
macro_rules! err {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

const BANK: AccountId = AccountId(u128::MAX - 1);
/// The transfer code of `load`'s transfers (funding has code 2).
const LOAD_CODE: u16 = 1;
const FUNDING_CODE: u16 = 2;
const USAGE: &str = "usage:
  ledger load --dir D --accounts N --transfers M [--batch B] [--segment-mib S]
              [--window-s W] [--archive yes|no] [--rss-every R]
  ledger verify --dir D
  ledger balance --dir D --account ID
  ledger history --dir D --account ID";

enum Failure {
    Usage(String),
    Store(String),
}

impl From<paygo::ledger::LedgerError> for Failure {
    fn from(e: paygo::ledger::LedgerError) -> Failure {
        Failure::Store(e.to_string())
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(why)) => {
            err!("error: {why}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Store(why)) => {
            err!("error: {why}");
            ExitCode::from(1)
        }
    }
}

/// The `--name value` options after the command; every option must be known and given once.
fn options<'a>(args: &'a [String], known: &[&str]) -> Result<HashMap<&'a str, &'a str>, Failure> {
    let mut out = HashMap::new();
    let mut it = args.iter();
    while let Some(name) = it.next() {
        let key = name
            .strip_prefix("--")
            .filter(|k| known.contains(k))
            .ok_or_else(|| Failure::Usage(format!("unknown argument {name:?}")))?;
        let value = it
            .next()
            .ok_or_else(|| Failure::Usage(format!("{name} needs a value")))?;
        if out.insert(key, value.as_str()).is_some() {
            return Err(Failure::Usage(format!("{name} is given twice")));
        }
    }
    Ok(out)
}

fn required<'a>(opts: &HashMap<&str, &'a str>, name: &str) -> Result<&'a str, Failure> {
    opts.get(name)
        .copied()
        .ok_or_else(|| Failure::Usage(format!("--{name} is required")))
}

fn number(opts: &HashMap<&str, &str>, name: &str, min: u128, max: u128) -> Result<Option<u128>, Failure> {
    opts.get(name)
        .map(|text| {
            text.parse::<u128>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    Failure::Usage(format!(
                        "--{name} {text:?}: expected a whole number from {min} to {max}"
                    ))
                })
        })
        .transpose()
}

fn run(args: &[String]) -> Result<(), Failure> {
    let (command, rest) = args
        .split_first()
        .ok_or_else(|| Failure::Usage("a command is required".into()))?;
    match command.as_str() {
        "load" => {
            let opts = options(
                rest,
                &[
                    "dir",
                    "accounts",
                    "transfers",
                    "batch",
                    "segment-mib",
                    "window-s",
                    "archive",
                    "rss-every",
                ],
            )?;
            let dir = required(&opts, "dir")?;
            let accounts = number(&opts, "accounts", 2, 10_000_000)?
                .ok_or_else(|| Failure::Usage("--accounts is required".into()))?;
            let transfers = number(&opts, "transfers", 0, u128::from(u64::MAX))?
                .ok_or_else(|| Failure::Usage("--transfers is required".into()))?;
            let batch = number(&opts, "batch", 1, BATCH_EVENTS_MAX as u128)?.unwrap_or(BATCH_EVENTS_MAX as u128);
            let segment_mib = number(&opts, "segment-mib", 1, 1 << 20)?.unwrap_or(64);
            let window_s = number(&opts, "window-s", 1, 10 * 365 * 86_400)?;
            let archive_journal = match opts.get("archive").copied() {
                None | Some("no") => false,
                Some("yes") => true,
                Some(other) => return Err(Failure::Usage(format!("--archive {other:?}: expected yes or no"))),
            };
            let rss_every = number(&opts, "rss-every", 1, u128::from(u64::MAX))?.map(|n| n as u64);
            let options = OpenOptions {
                segment_bytes: (segment_mib as u64) << 20,
                archive_journal,
                ..OpenOptions::default()
            };
            let window = window_s.map(|s| IdWindow {
                past_ns: s as u64 * 1_000_000_000,
                ahead_ns: 60 * 1_000_000_000,
            });
            let run = Load {
                accounts,
                transfers: transfers as u64,
                batch: batch as usize,
                window,
                rss_every,
            };
            load(dir, &run, &options)
        }
        "verify" => {
            let opts = options(rest, &["dir"])?;
            verify(required(&opts, "dir")?)
        }
        "balance" | "history" => {
            let opts = options(rest, &["dir", "account"])?;
            let dir = required(&opts, "dir")?;
            let account = AccountId(
                number(&opts, "account", 1, u128::MAX - 1)?
                    .ok_or_else(|| Failure::Usage("--account is required".into()))?,
            );
            let billing = if durable::kind(dir)? == "billing" {
                Some(durable::load::<Billing>(dir)?.0)
            } else {
                None
            };
            let ledger = match &billing {
                Some(_) => None,
                None => Some(durable::load::<Ledger>(dir)?.0),
            };
            let ledger = billing.as_ref().map_or_else(|| ledger.as_ref(), |b| Some(b.ledger()));
            let Some(ledger) = ledger else {
                return Err(Failure::Store(format!("{dir} holds no ledger")));
            };
            let Some(balance) = ledger.account(account) else {
                return Err(Failure::Store(format!("account {account} does not exist in {dir}")));
            };
            if command == "balance" {
                print_balance(account, &balance);
                if let Some(b) = &billing {
                    // A customer of a billing store: what it can spend, and what it owes.
                    let customer = account.0;
                    if let (Ok(spendable), Ok(paid), Ok(uncollected), Ok(carrier)) = (
                        b.balance(paygo::billing::CustomerId(customer)),
                        b.paid_balance(paygo::billing::CustomerId(customer)),
                        b.uncollected(paygo::billing::CustomerId(customer)),
                        b.carrier(paygo::billing::CustomerId(customer)),
                    ) {
                        out!(
                            "customer {customer}: spendable {spendable} (paid {paid} and bonus lots, less holds), uncollected {uncollected}, carrier remainder {}",
                            carrier.remainder()
                        );
                    }
                }
            } else {
                history(ledger, account);
            }
            Ok(())
        }
        other => Err(Failure::Usage(format!("unknown command {other:?}"))),
    }
}

fn print_balance(account: AccountId, balance: &AccountBalance) {
    out!(
        "account {account}: balance {} (posted credits {} - posted debits {}), pending debits {}, pending credits {}, available {}{}",
        balance.posted_balance(),
        balance.credits_posted,
        balance.debits_posted,
        balance.debits_pending,
        balance.credits_pending,
        balance.available(),
        if balance.closed { ", closed" } else { "" },
    );
}

/// What `load` runs.
struct Load {
    accounts: u128,
    transfers: u64,
    batch: usize,
    window: Option<IdWindow>,
    rss_every: Option<u64>,
}

/// The resident memory of this process in KiB, from `/proc/self/status` (Linux).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn load(dir: &str, run: &Load, options: &OpenOptions) -> Result<(), Failure> {
    let Load {
        accounts,
        transfers,
        batch,
        window,
        rss_every,
    } = *run;
    let init = move || match window {
        Some(w) => Ledger::new().with_id_window(w),
        None => Ledger::new(),
    };
    let shared = SharedLedger::open(dir, init, WallClock, options)?;
    let window = shared.read(Ledger::id_window)?;
    // Setup is idempotent: a rerun gets `exists` for what is there already.
    let mut setup = vec![Event::CreateAccount(Account::new(BANK))];
    for a in 1..=accounts {
        setup.push(Event::CreateAccount(Account::balance(AccountId(a))));
        setup.push(Event::CreateTransfer(
            Transfer::new(funding_id(window, a)?, BANK, AccountId(a), Credits::new(1 << 40)).with_code(FUNDING_CODE),
        ));
        if setup.len() >= BATCH_EVENTS_MAX - 1 || a == accounts {
            let results = shared.submit(std::mem::take(&mut setup))?;
            if let Some(bad) = results
                .iter()
                .find(|r| !matches!(r, EventResult::Ok | EventResult::Exists))
            {
                return Err(Failure::Store(format!("setting up the accounts failed: {bad}")));
            }
        }
    }
    let done = shared.read(|l| l.transfers().filter(|t| t.transfer.code == LOAD_CODE).count())? as u64;
    let mut id = u128::from(done);
    let start = Instant::now();
    let mut slowest = std::time::Duration::ZERO;
    let mut left = transfers;
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ done;
    while left > 0 {
        let n = left.min(batch as u64);
        let mut events = Vec::with_capacity(n as usize);
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let debit = 1 + u128::from(x % accounts as u64);
            let credit = 1 + (debit + u128::from((x >> 32) % (accounts as u64 - 1))) % accounts;
            id += 1;
            let tid = match window {
                // Time-ordered: the millisecond now, the counter below it.
                Some(_) => TransferId::from_time(WallClock.now_ns() / 1_000_000, id)?,
                None => TransferId(id),
            };
            events.push(Event::CreateTransfer(
                Transfer::new(
                    tid,
                    AccountId(debit),
                    AccountId(credit),
                    Credits::new(1 + ((x >> 48) % 1000) as i64),
                )
                .with_code(LOAD_CODE),
            ));
        }
        let submitted = Instant::now();
        shared.submit(events)?;
        slowest = slowest.max(submitted.elapsed());
        out!("acked {id}");
        left -= n;
        let done = transfers - left;
        if let Some(every) = rss_every
            && (done / every != (done - n) / every || left == 0)
        {
            let held = shared.read(Ledger::transfers_in_memory)?;
            out!(
                "rss {done} {} KiB, {held} transfers in memory",
                rss_kib().map_or_else(|| "unknown".into(), |k| k.to_string())
            );
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let rate = if seconds > 0.0 { transfers as f64 / seconds } else { 0.0 };
    out!("loaded {transfers} transfers in {seconds:.3} s: {rate:.0} transfers/s");
    // The longest a batch waited (an automatic snapshot's pause shows here).
    out!("slowest batch {:.1} ms", slowest.as_secs_f64() * 1e3);
    Ok(())
}

/// The id of account `a`'s funding transfer: fixed without a window (so that a rerun
/// finds it), time-ordered with one (a rerun outside the window is answered
/// `id_older_than_window` for the old one and funds again with a new one).
fn funding_id(window: Option<IdWindow>, a: u128) -> Result<TransferId, Failure> {
    Ok(match window {
        None => TransferId(u128::MAX - 1 - a),
        Some(_) => TransferId::from_time(WallClock.now_ns() / 1_000_000, (1 << 79) | a)?,
    })
}

fn verify(dir: &str) -> Result<(), Failure> {
    let start = Instant::now();
    // From the oldest snapshot kept: every record in the directory is read and checked,
    // and every snapshot kept is checked against the journal.
    let (billing, ledger, recovery) = if durable::kind(dir)? == "billing" {
        let (b, r) = durable::verify::<Billing>(dir)?;
        (Some(b), None, r)
    } else {
        let (l, r) = durable::verify::<Ledger>(dir)?;
        (None, Some(l), r)
    };
    let ledger = billing.as_ref().map_or_else(|| ledger.as_ref(), |b| Some(b.ledger()));
    let Some(ledger) = ledger else {
        return Err(Failure::Store(format!("{dir} holds no ledger")));
    };
    ledger.check_invariants()?;
    let (mut debits, mut credits, mut pending) = (0u128, 0u128, 0u128);
    for a in ledger.accounts() {
        debits += a.debits_posted;
        credits += a.credits_posted;
        pending += a.debits_pending;
    }
    out!(
        "ok: checksums, chain, snapshots and invariants hold ({:.3} s)",
        start.elapsed().as_secs_f64()
    );
    report(&recovery);
    out!(
        "accounts: {}, transfers: {}",
        ledger.accounts_len(),
        ledger.transfers_len()
    );
    out!("posted debits: {debits}, posted credits: {credits}, pending: {pending}");
    if let Some(b) = &billing {
        let posted = |id: AccountId| ledger.account(id).map_or(0, |a| a.posted_balance());
        let customers = ledger.accounts().filter(|a| a.account.code == 1).count();
        out!(
            "billing: {customers} customers; sold {} credits, revenue {}, breakage {}, promotions {}; {} payment requests outstanding",
            -posted(FUNDING),
            posted(REVENUE),
            posted(BREAKAGE),
            -posted(PROMOTIONS),
            b.outstanding_requests().len()
        );
    }
    out!("head of the chain: {}", recovery.head.hash_hex());
    Ok(())
}

fn report(recovery: &Recovery) {
    out!(
        "records: {} ({} in the snapshot, {} replayed, {} commands)",
        recovery.head.records,
        recovery.snapshot_records,
        recovery.records_replayed,
        recovery.commands_replayed
    );
    if recovery.torn_bytes > 0 {
        out!(
            "torn tail: {} bytes after the last whole record (a crash mid-write, or a writer at work; cut on the next open for writing)",
            recovery.torn_bytes
        );
    }
}

fn history(ledger: &Ledger, account: AccountId) {
    let mut out = std::io::stdout().lock();
    for record in ledger.transfers() {
        let t = &record.transfer;
        // A post or void names its pending transfer's accounts.
        let (debit, credit) = match t.pending_id.and_then(|p| ledger.transfer(p)) {
            Some(p) if t.debit_account_id.0 == 0 => (p.transfer.debit_account_id, p.transfer.credit_account_id),
            _ => (t.debit_account_id, t.credit_account_id),
        };
        if debit != account && credit != account {
            continue;
        }
        let sign = if debit == account { "-" } else { "+" };
        // A closed pipe (`| head`) ends the listing.
        let written = writeln!(
            out,
            "{} transfer {} {sign}{} ({} -> {}) code {}{}",
            record.timestamp_ns,
            t.id,
            t.amount,
            debit,
            credit,
            t.code,
            match record.status {
                Some(status) => format!(" {status:?}"),
                None => String::new(),
            }
        );
        if written.is_err() {
            return;
        }
    }
}
