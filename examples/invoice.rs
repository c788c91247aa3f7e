//! Invoices for a $100 top-up, written as HTML, text and JSON.
//!
//! `cargo run --example invoice -- --out DIR` issues invoices to (a) a consumer in
//! Germany, (b) a business in France with a confirmed VAT ID (reverse charge), (c) a
//! customer in the United States, (d) a consumer in Poland who later gives a confirmed
//! Polish VAT ID and gets the VAT back through a credit note (VAT also in PLN); writes each
//! document as `<number>.html`, `.txt` and `.json` into DIR, with a month's usage statement
//! (`usage-statement.*`), and prints a one-line summary of each.
//!
//! The documents are built in `crates/paygo-invoice/tests/support/scenarios.rs`, which the
//! golden tests share, so the files written here are the ones under
//! `crates/paygo-invoice/tests/golden/`. Numbers come from an in-memory store, so every run
//! writes the same files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use paygo::{credits, invoice, vat};

#[path = "../crates/paygo-invoice/tests/support/scenarios.rs"]
mod scenarios;

const USAGE: &str = "usage: invoice --out DIR";

fn summary(doc: &invoice::Document) -> String {
    let totals = doc.totals();
    let rate = doc.taxes().first().map(|t| t.rate().to_string()).unwrap_or_default();
    let mut parts = vec![format!(
        "{:<16} {:<12} {:<22} {}  net {:>8}  VAT {:>7} ({rate:>3})  total {:>8} {}",
        doc.number().to_string(),
        doc.title(),
        doc.buyer().name,
        doc.tax().place_of_supply,
        totals.net.amount(),
        totals.vat.amount(),
        totals.gross.amount(),
        doc.currency().code()
    )];
    if let Some(national) = doc.national_vat() {
        parts.push(format!("VAT {}", national.vat));
    }
    if let Some(mention) = &doc.tax().mention {
        parts.push(format!("[{mention}]"));
    }
    if let Some(correction) = doc.correction() {
        parts.push(format!("corrects {}", correction.original));
    }
    parts.join("  ")
}

fn write(dir: &Path, name: &str, text: &str) -> Result<(), Box<dyn std::error::Error>> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

fn run(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // Not `println!`, which panics when standard output cannot be written.
    let mut out = std::io::stdout().lock();
    for doc in scenarios::documents()? {
        let stem = doc.number().to_string();
        write(dir, &format!("{stem}.html"), &doc.to_html())?;
        write(dir, &format!("{stem}.txt"), &doc.to_text())?;
        write(dir, &format!("{stem}.json"), &doc.to_json()?)?;
        writeln!(out, "{}", summary(&doc))?;
    }
    let statement = scenarios::statement()?;
    write(dir, "usage-statement.html", &statement.to_html())?;
    write(dir, "usage-statement.txt", &statement.to_text())?;
    write(dir, "usage-statement.json", &statement.to_json()?)?;
    writeln!(
        out,
        "{:<16} {:<12} {:<22} {} calls, {} credits, {} USD over {} models",
        "usage-statement",
        "Statement",
        statement.request.account,
        statement.total.calls,
        statement.total.credits,
        statement.total.cost.amount().normalize(),
        statement.per_model.len()
    )?;
    writeln!(out, "wrote {}", dir.display())?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [flag, dir] if flag == "--out" => run(&PathBuf::from(dir)),
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
