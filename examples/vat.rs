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
    let mut stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut bytes = Vec::new();
    // One output line per input line, always: a line that is not UTF-8 is answered with an
    // error line too (its text shown with replacement characters), not the end of the stream.
    while {
        bytes.clear();
        stdin.read_until(b'\n', &mut bytes)? > 0
    } {
        let line = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let input = String::from_utf8_lossy(line);
        // JSON strings through serde_json (escaping); the line itself in the documented order.
        let quoted = serde_json::to_string(&input)?;
        if std::str::from_utf8(line).is_err() {
            write!(
                out,
                r#"{{"input": {quoted}, "valid": false, "error": "the line is not UTF-8, expected a VAT ID in text"}}"#
            )?;
            out.write_all(b"\n")?;
            continue;
        }
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
