//! Quotes API calls from JSON lines: the interface other tools drive.
//!
//! ```sh
//! cargo run --release --example quote -- --prices FILE [--format litellm|paygo|openrouter] [--strict] [--report]
//! ```
//!
//! Reads lines `{"model": "...", "usage": {<usage object>}, "usage_shape": "...",
//! "service_tier": "...", "at": "<RFC 3339>"}` from stdin and writes exactly one line per
//! input line, in order: `{"model": "...", "usd": "<exact>", "credits": <integer>,
//! "breakdown": [...]}` or `{"error": "...", "line": N}` (a blank line or one that is not
//! UTF-8 gets an error line too). `usage_shape` is `openai_chat` (the default form),
//! `openai_responses`, `anthropic` or `gemini`; without it the shape is detected from the
//! usage's keys. Without `"at"`, the prices in force now are used. Without `--format`, the
//! file's format is detected. `--report` prints the import report (every key not
//! understood or not applied, with the reason) as JSON on stdout instead of quoting.

use std::borrow::Cow;
use std::io::{BufRead, BufWriter, Write};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use paygo::pricing::litellm::{ImportOptions, ImportReport, detect_format, import};
use paygo::pricing::{PriceBook, QuoteLine, QuoteRequest, ServiceTier, Usage, UsageShape, openrouter};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    usage: serde_json::Value,
    #[serde(default)]
    usage_shape: Option<UsageShape>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    window: Option<&'a str>,
}

#[derive(Serialize)]
struct Failure {
    error: String,
    line: u64,
}

const USAGE: &str = "usage: quote --prices FILE [--format litellm|paygo|openrouter] [--strict] [--report]";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // Nothing more can be said if stderr itself cannot be written.
            let _ = writeln!(std::io::stderr(), "quote: {message}");
            ExitCode::FAILURE
        }
    }
}

fn load(text: &str, format: &str, strict: bool) -> Result<(PriceBook, Option<ImportReport>), String> {
    match format {
        "paygo" => Ok((PriceBook::from_json(text).map_err(|e| e.to_string())?, None)),
        "openrouter" => {
            let options = ImportOptions {
                strict,
                ..ImportOptions::default()
            };
            let (book, report) = openrouter::import(text, &options).map_err(|e| e.to_string())?;
            Ok((book, Some(report)))
        }
        "litellm" => {
            let options = ImportOptions {
                strict,
                ..ImportOptions::default()
            };
            let (book, report) = import(text, &options).map_err(|e| e.to_string())?;
            Ok((book, Some(report)))
        }
        other => Err(format!(
            "unknown format {other:?}, expected litellm, paygo or openrouter"
        )),
    }
}

fn run() -> Result<(), String> {
    let mut prices = None;
    let mut format = None;
    let mut strict = false;
    let mut print_report = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--prices" => prices = Some(args.next().ok_or(USAGE)?),
            "--format" => format = Some(args.next().ok_or(USAGE)?),
            "--strict" => strict = true,
            "--report" => print_report = true,
            "-h" | "--help" => {
                writeln!(std::io::stdout(), "{USAGE}").map_err(|e| format!("cannot write: {e}"))?;
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let path = prices.ok_or(USAGE)?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let format = match format {
        Some(f) => f,
        None => match detect_format(&text).map_err(|e| format!("{path}: {e}"))? {
            found @ ("paygo" | "openrouter" | "litellm") => found.to_owned(),
            other => {
                return Err(format!(
                    "{path} is {other}, not a price file of a known format (litellm, paygo, openrouter)"
                ));
            }
        },
    };
    let (book, report) = load(&text, &format, strict).map_err(|e| format!("{path} ({format} format): {e}"))?;
    if print_report {
        let report = report.unwrap_or_default();
        let json = serde_json::to_string_pretty(&report).map_err(|e| format!("cannot write the report: {e}"))?;
        writeln!(std::io::stdout(), "{json}").map_err(|e| format!("cannot write: {e}"))?;
        return Ok(());
    }
    if let Some(report) = &report {
        // A closed stderr must not stop the quotes.
        let _ = writeln!(
            std::io::stderr(),
            "quote: {} models, {} aliases, {} image variants, {} entries skipped, {} keys not understood, {} not applied, {} warnings (--report lists them)",
            report.models,
            report.aliases,
            report.variants_attached,
            report.skipped.len(),
            report.unknown_keys.len(),
            report.not_applied.len(),
            report.warnings.len()
        );
    }

    let now: DateTime<Utc> = std::time::SystemTime::now().into();
    let mut stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut bytes = Vec::new();
    let mut number: u64 = 0;
    loop {
        bytes.clear();
        let read = stdin
            .read_until(b'\n', &mut bytes)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
        if read == 0 {
            break;
        }
        number += 1;
        let line = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let written = match quote_line(&book, line, now) {
            Ok((input_model, quote)) => serde_json::to_writer(
                &mut out,
                &Output {
                    model: &input_model,
                    usd: quote.usd.normalize().to_string(),
                    credits: quote.credits.get(),
                    breakdown: &quote.lines,
                    window: quote.window.as_deref(),
                },
            ),
            Err(error) => serde_json::to_writer(&mut out, &Failure { error, line: number }),
        };
        written.map_err(|e| format!("cannot write: {e}"))?;
        out.write_all(b"\n").map_err(|e| format!("cannot write: {e}"))?;
    }
    out.flush().map_err(|e| format!("cannot write: {e}"))
}

fn quote_line(book: &PriceBook, line: &[u8], now: DateTime<Utc>) -> Result<(String, paygo::pricing::Quote), String> {
    let text = std::str::from_utf8(line).map_err(|e| format!("invalid input line: not UTF-8 ({e})"))?;
    if text.trim().is_empty() {
        return Err("invalid input line: blank, expected a JSON object".to_owned());
    }
    let input: Input<'_> = serde_json::from_str(text).map_err(|e| format!("invalid input line: {e}"))?;
    let usage = Usage::from_value(&input.usage, input.usage_shape).map_err(|e| e.to_string())?;
    let request =
        QuoteRequest::new(&input.model, &usage, input.at.unwrap_or(now)).with_service_tier(input.service_tier);
    let quote = book.quote(&request).map_err(|e| e.to_string())?;
    Ok((input.model.into_owned(), quote))
}
