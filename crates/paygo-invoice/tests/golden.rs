//! Golden tests: the text, HTML and JSON of the example's documents and usage statement
//! (`cargo run --example invoice -- --out DIR` writes the same files).
//!
//! After an intended change of a renderer, regenerate the files with
//! `UPDATE_GOLDEN=1 cargo test -p paygo-invoice --test golden` and review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::path::PathBuf;

use paygo_credits as credits;
use paygo_invoice as invoice;
use paygo_vat as vat;

#[path = "support/scenarios.rs"]
#[allow(dead_code)]
mod scenarios;

fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; create it with UPDATE_GOLDEN=1", path.display()));
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| expected.lines().count().min(actual.lines().count()) + 1, |i| i + 1);
        panic!(
            "{name} differs from its golden file at line {line}:\n  golden: {:?}\n  actual: {:?}\n\
             if the change is intended: UPDATE_GOLDEN=1 cargo test -p paygo-invoice --test golden",
            expected.lines().nth(line - 1),
            actual.lines().nth(line - 1)
        );
    }
}

#[test]
fn example_documents_render_as_their_golden_files() {
    let docs = scenarios::documents().unwrap();
    let numbers: Vec<String> = docs.iter().map(|d| d.number().to_string()).collect();
    assert_eq!(
        numbers,
        [
            "INV-2026-000001",
            "INV-2026-000002",
            "INV-2026-000003",
            "INV-2026-000004",
            "CN-2026-000001"
        ]
    );
    for doc in &docs {
        let stem = doc.number().to_string();
        check(&format!("{stem}.txt"), &doc.to_text());
        check(&format!("{stem}.html"), &doc.to_html());
        check(&format!("{stem}.json"), &doc.to_json().unwrap());
    }
}

#[test]
fn example_statement_renders_as_its_golden_files() {
    let statement = scenarios::statement().unwrap();
    check("usage-statement.txt", &statement.to_text());
    check("usage-statement.html", &statement.to_html());
    check("usage-statement.json", &statement.to_json().unwrap());
}
