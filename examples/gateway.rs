//! The main job: a day of an AI API gateway, end to end over HTTP, on every paygo crate.
//!
//! ```sh
//! cargo run --release --example gateway -- [--accounts N] [--requests N] [--seed N]
//!     [--prices FILE [--format litellm|paygo]] [--out DIR] [--ledger-dir DIR] [--quiet]
//! ```
//!
//! The day starts the metering proxy (`paygo-http`, every store embedded in one data
//! directory) and a fake OpenAI-compatible upstream on `127.0.0.1`, on one simulated
//! clock. Accounts are created and paid through the operator's endpoints, and every call
//! is an HTTP request with the account's API key: the plan's rate limit, a hold sized from
//! the request body, the upstream call (chat completions, some streamed, and embeddings;
//! some fail, a few streams are cut), then the charge of the usage the upstream reported
//! (or the release). Auto top-ups are paid or declined by a simulated payment, every paid
//! top-up is invoiced, and each account gets a usage statement. The run ends with a
//! summary table and the consistency checks of the ledger against everything the day
//! reported and the usage the clients saw.
//!
//! The stores are durable: every hold and capture is journaled and synced before it is
//! acknowledged, in `--ledger-dir` (also `--data-dir`: the proxy's data directory, with
//! `ledger/`, `invoices/`, `accounts.jsonl` and `usage.jsonl`; a new or empty folder, kept)
//! or a temporary folder. All of it is `paygo_sim::run_day`; this file parses
//! arguments, shows progress and writes files.

use std::path::PathBuf;

use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use paygo_sim::{DayOptions, DayReport, PriceSource, run_day};

const USAGE: &str = "usage: gateway [--accounts N] [--requests N] [--seed N] [--prices FILE [--format litellm|paygo]] [--out DIR] [--ledger-dir DIR] [--quiet]";

struct Args {
    options: DayOptions,
    out: PathBuf,
    quiet: bool,
}

fn parse() -> Result<Option<Args>, String> {
    let mut options = DayOptions::default();
    let mut out = PathBuf::from("target/gateway-day");
    let mut quiet = false;
    let mut prices: Option<String> = None;
    let mut format: Option<String> = None;
    let mut args = std::env::args().skip(1);
    let number = |value: Option<String>, name: &str| -> Result<u64, String> {
        value
            .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))?
            .parse()
            .map_err(|_| format!("{name} needs a whole number\n{USAGE}"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--accounts" => {
                options.accounts = usize::try_from(number(args.next(), "--accounts")?).map_err(|e| e.to_string())?;
            }
            "--requests" => {
                options.requests = usize::try_from(number(args.next(), "--requests")?).map_err(|e| e.to_string())?;
            }
            "--seed" => options.seed = number(args.next(), "--seed")?,
            "--prices" => prices = Some(args.next().ok_or(USAGE)?),
            "--format" => format = Some(args.next().ok_or(USAGE)?),
            "--out" => out = PathBuf::from(args.next().ok_or(USAGE)?),
            "--ledger-dir" | "--data-dir" => options.ledger_dir = Some(PathBuf::from(args.next().ok_or(USAGE)?)),
            "--quiet" => quiet = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if options.accounts == 0 || options.accounts > 10_000 {
        return Err(format!("--accounts must be 1 to 10000\n{USAGE}"));
    }
    match (prices, format) {
        (None, Some(_)) => {
            return Err(format!(
                "--format needs --prices FILE: it says the file's format\n{USAGE}"
            ));
        }
        (None, None) => {}
        (Some(path), format) => {
            let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
            let format = match format {
                Some(f) => f,
                None => paygo::pricing::litellm::detect_format(&text)
                    .map_err(|e| format!("{path}: {e}"))?
                    .to_owned(),
            };
            options.prices = match format.as_str() {
                "litellm" => PriceSource::LiteLlm(text),
                "paygo" => PriceSource::Paygo(text),
                other => {
                    return Err(format!(
                        "{path}: format {other:?}, expected litellm or paygo (--format litellm|paygo)"
                    ));
                }
            };
        }
    }
    Ok(Some(Args { options, out, quiet }))
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gateway: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let Some(args) = parse()? else { return Ok(()) };
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {pos}/{len} calls ({per_sec})")
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
    );
    bar.set_message("a day of traffic");
    let report = run_day(&args.options, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    let written = report.write(&args.out).map_err(|e| e.to_string())?;
    if !args.quiet {
        print_summary(&report, &written, &args.out);
    }
    if report.consistent() {
        Ok(())
    } else {
        Err("the consistency check failed (see above)".into())
    }
}

fn print_summary(report: &DayReport, written: &[String], out: &std::path::Path) {
    println!(
        "a gateway day on {} models: {}",
        report.models.len(),
        report.models.join(", ")
    );
    println!();
    println!(
        "{:<30} {:>2} {:>7} {:>9} {:>7} {:>9} {:>7} {:>7} {:>7} {:>12} {:>12}",
        "account", "cc", "top-ups", "usd", "calls", "completed", "failed", "429", "403", "credits", "usd spent"
    );
    for a in &report.accounts {
        let usd = format!("{}.{:02}", a.top_up_cents / 100, a.top_up_cents % 100);
        let spent = paygo::credits::CreditRate::default()
            .to_money_exact(paygo::credits::Credits::new(a.credits_spent))
            .map(|m| m.amount().to_string())
            .unwrap_or_default();
        println!(
            "{:<30} {:>2} {:>7} {:>9} {:>7} {:>9} {:>7} {:>7} {:>7} {:>12} {:>12}",
            a.name.chars().take(30).collect::<String>(),
            a.country,
            a.top_ups,
            usd,
            a.calls,
            a.completed,
            a.failed_upstream,
            a.refused_rate_limit,
            a.refused_balance,
            a.credits_spent,
            spent
        );
    }
    println!();
    let t = &report.traffic;
    println!(
        "over HTTP: {} requests to the proxy, {} of them calls ({} streamed, {} with the usage chunk, {} cut; {} embeddings); {} reached the upstream",
        t.requests, t.calls, t.streamed, t.streamed_with_usage, t.cut_streams, t.embeddings, t.upstream_requests
    );
    println!("a response's usage section: {}", report.sample_usage_section);
    println!(
        "{} invoices and {} statements written to {} ({} files, listed in manifest.txt)",
        report.invoices.len(),
        report.statements.len(),
        out.display(),
        written.len()
    );
    println!();
    for check in &report.checks {
        println!(
            "[{}] {} ({})",
            if check.ok { "ok" } else { "FAILED" },
            check.what,
            check.detail
        );
    }
}
