//! VAT IDs and rates from the command line.
//!
//! - `cargo run --release --example vat -- check` reads VAT IDs from standard input, one
//!   per line, and writes one JSON line each, in order:
//!   `{"input": "...", "valid": true, "country": "DE", "normalized": "DE136695976"}` or
//!   `{"input": "...", "valid": false, "error": "..."}`.
//! - `cargo run --release --example vat -- rate CC YYYY-MM-DD` prints the standard rate in
//!   force in country `CC` (its VAT prefix, `EL` for Greece; the ISO code `GR` works too)
//!   on that date.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use chrono::NaiveDate;
use paygo::vat::{Country, CountryCode, VatId, standard_rate};

const USAGE: &str = "usage: vat check < ids.txt\n       vat rate CC YYYY-MM-DD";

fn check() -> Result<(), Box<dyn std::error::Error>> {
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in stdin.lock().lines() {
        let input = line?;
        // JSON strings through serde_json (escaping); the line itself in the documented order.
        let quoted = serde_json::to_string(&input)?;
        match VatId::parse(&input) {
            Ok(id) => write!(
                out,
                r#"{{"input": {quoted}, "valid": true, "country": "{}", "normalized": "{id}"}}"#,
                id.country().code()
            )?,
            Err(error) => write!(
                out,
                r#"{{"input": {quoted}, "valid": false, "error": {}}}"#,
                serde_json::to_string(&error.to_string())?
            )?,
        }
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

fn rate(code: &str, date: &str) -> Result<(), Box<dyn std::error::Error>> {
    let code: CountryCode = code.parse()?;
    // A VAT prefix (EL for Greece) or, failing that, an ISO code (GR).
    let country = Country::from_code(code)
        .or_else(|| Country::from_iso(code))
        .ok_or_else(|| format!("unknown country {code}: expected a VAT prefix such as DE or EL"))?;
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .map_err(|e| format!("invalid date {date:?}: {e}, expected YYYY-MM-DD"))?;
    writeln!(std::io::stdout(), "{}", standard_rate(country, date)?)?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["check"] => check(),
        ["rate", code, date] => rate(code, date),
        _ => Err(USAGE.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Not `eprintln!`, which panics (exit 101) when stderr cannot be written
            // (`2>/dev/full`): then nothing more can be said, and the exit code says it.
            let _ = writeln!(std::io::stderr(), "error: {error}");
            ExitCode::FAILURE
        }
    }
}
