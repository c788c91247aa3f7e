//! Quotes API calls from JSON lines: the interface other tools drive.
//!
//! ```sh
//! cargo run --release --example quote -- --prices FILE [--format litellm|paygo] [--strict]
//! ```
//!
//! Reads lines `{"model": "...", "usage": {<OpenAI usage object>}, "service_tier": "...",
//! "at": "<RFC 3339>"}` from stdin and writes one line per input line, in order:
//! `{"model": "...", "usd": "<exact>", "credits": <integer>, "breakdown": [...]}` or
//! `{"error": "..."}`. Without `"at"`, the prices in force now are used.

use std::borrow::Cow;
use std::io::{BufRead, BufWriter, Write};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use paygo::pricing::litellm::{ImportOptions, import};
use paygo::pricing::{PriceBook, QuoteLine, QuoteRequest, ServiceTier, Usage};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    usage: Usage,
    #[serde(default)]
    service_tier: ServiceTier,
    at: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
struct Output<'a> {
    model: &'a str,
    usd: String,
    credits: i64,
    breakdown: &'a [QuoteLine],
}

#[derive(Serialize)]
struct Failure {
    error: String,
}

const USAGE: &str = "usage: quote --prices FILE [--format litellm|paygo] [--strict]";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // Nothing more to do if even this cannot be written: the exit code says it.
            let _ = warn(&format!("quote: {message}"));
            ExitCode::FAILURE
        }
    }
}

/// Writes a line to standard error. A stderr that cannot be written (`2>/dev/full`) must
/// not make the tool panic (exit 101), as `eprintln!` does: the caller gets the error.
fn warn(line: &str) -> std::io::Result<()> {
    writeln!(std::io::stderr(), "{line}")
}

fn run() -> Result<(), String> {
    let mut prices = None;
    let mut format = "litellm".to_owned();
    let mut strict = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--prices" => prices = Some(args.next().ok_or(USAGE)?),
            "--format" => format = args.next().ok_or(USAGE)?,
            "--strict" => strict = true,
            "-h" | "--help" => {
                writeln!(std::io::stdout(), "{USAGE}").map_err(|e| format!("cannot write: {e}"))?;
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let path = prices.ok_or(USAGE)?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let book = match format.as_str() {
        "paygo" => PriceBook::from_json(&text).map_err(|e| e.to_string())?,
        "litellm" => {
            let options = ImportOptions {
                strict,
                ..ImportOptions::default()
            };
            let (book, report) = import(&text, &options).map_err(|e| e.to_string())?;
            warn(&format!(
                "quote: {} models, {} image variants, {} entries skipped, {} keys not understood (see docs/pricing.md)",
                report.models,
                report.variants_attached,
                report.skipped.len(),
                report.unknown_keys.len()
            ))
            .map_err(|e| format!("cannot write to stderr: {e}"))?;
            book
        }
        other => return Err(format!("unknown format {other:?}, expected litellm or paygo")),
    };

    let now: DateTime<Utc> = std::time::SystemTime::now().into();
    let stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    for line in stdin.lines() {
        let line = line.map_err(|e| format!("cannot read stdin: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let written = match serde_json::from_str::<Input<'_>>(&line) {
            Err(e) => serde_json::to_writer(
                &mut out,
                &Failure {
                    error: format!("invalid input line: {e}"),
                },
            ),
            Ok(input) => {
                let request = QuoteRequest::new(&input.model, &input.usage, input.at.unwrap_or(now))
                    .with_service_tier(input.service_tier);
                match book.quote(&request) {
                    Ok(quote) => serde_json::to_writer(
                        &mut out,
                        &Output {
                            model: &input.model,
                            usd: quote.usd.normalize().to_string(),
                            credits: quote.credits.get(),
                            breakdown: &quote.lines,
                        },
                    ),
                    Err(e) => serde_json::to_writer(&mut out, &Failure { error: e.to_string() }),
                }
            }
        };
        written.map_err(|e| format!("cannot write: {e}"))?;
        out.write_all(b"\n").map_err(|e| format!("cannot write: {e}"))?;
    }
    out.flush().map_err(|e| format!("cannot write: {e}"))
}
