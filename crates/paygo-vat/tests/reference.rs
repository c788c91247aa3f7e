//! Opt-in checks against reference data kept outside the project:
//!
//! - `PAYGO_STDNUM_DIR`: a folder with python-stdnum's VAT test vectors
//!   (`eu_vat_vectors.tsv`, `module_docstring_vectors.tsv`, `test_gb_vat.doctest`,
//!   `test_ch_vat.doctest`, `test_no_mva.doctest`);
//! - `PAYGO_VAT_RATES_DIR`: a folder with `eu27-standard-rate-history-since-2016.tsv`,
//!   `ibericode-vat-rates.json` and `vatnode-eu-vat-rates-data-*.json`.
//!
//! Each test says so and passes when its variable is not set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::NaiveDate;
use paygo_credits::decimal;
use paygo_vat::{Country, VatError, VatId, VatRate, rates_on, standard_rate};

fn folder(variable: &str) -> Option<PathBuf> {
    let dir = std::env::var_os(variable).map(PathBuf::from);
    if dir.is_none() {
        eprintln!("skipped: set {variable} to the reference data folder to run this test");
    }
    dir
}

fn read(dir: &std::path::Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
}

/// The error kind python-stdnum's expectation names, for ours.
fn our_kind(result: &Result<VatId, VatError>) -> &'static str {
    match result {
        Ok(_) => "valid",
        Err(VatError::WrongLength { .. }) => "invalid_length",
        Err(VatError::BadChecksum { .. }) => "invalid_checksum",
        Err(VatError::BadFormat { .. }) => "invalid_format",
        Err(_) => "invalid_prefix",
    }
}

#[test]
fn vat_ids_agree_with_python_stdnum() {
    let Some(dir) = folder("PAYGO_STDNUM_DIR") else { return };
    let (mut checked, mut skipped, mut kind_differs) = (0, 0, Vec::new());
    let mut failures = Vec::new();
    for line in read(&dir, "eu_vat_vectors.tsv").lines().skip(1) {
        let (expected, input) = line.split_once('\t').unwrap();
        let compact: String = input
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_uppercase();
        if compact.starts_with("EU") || compact.starts_with("IM") {
            skipped += 1; // OSS identification numbers: not a country's VAT ID
            continue;
        }
        let got = VatId::parse(input);
        checked += 1;
        if (expected == "valid") != got.is_ok() {
            failures.push(format!("{input:?}: stdnum {expected}, ours {got:?}"));
        } else if expected != "valid" && expected != "invalid_duplicated_prefix" {
            let ours = our_kind(&got);
            let same = ours == expected || (expected == "invalid_component" && ours == "invalid_format");
            if !same {
                kind_differs.push(format!("{input:?}: stdnum {expected}, ours {ours}"));
            }
        }
    }
    for line in read(&dir, "module_docstring_vectors.tsv").lines().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        let (cc, input, result, compact) = (fields[0], fields[2], fields[3], fields[4]);
        let country = match cc {
            "gr" => Country::Greece,
            "gb" => Country::UnitedKingdom,
            other => Country::from_code(other.parse().unwrap()).unwrap(),
        };
        let got = VatId::parse_in(country, input);
        checked += 1;
        match (result, &got) {
            ("valid", Ok(id)) => {
                let want = compact.strip_prefix("RO").unwrap_or(compact);
                if id.number() != want {
                    failures.push(format!("{input:?}: stdnum compacts to {compact}, ours {id}"));
                }
            }
            ("error", Err(_)) => {}
            _ => failures.push(format!("{input:?}: stdnum {result}, ours {got:?}")),
        }
    }
    for (file, prefix) in [
        ("test_gb_vat.doctest", "GB"),
        ("test_ch_vat.doctest", ""),
        ("test_no_mva.doctest", ""),
    ] {
        let text = read(&dir, file);
        let start = text.find("numbers = '''").unwrap();
        let end = text[start + 13..].find("'''").unwrap() + start + 13;
        for line in text[start + 13..end].lines() {
            let input = line.trim_start_matches("...").trim();
            if input.is_empty() {
                continue;
            }
            checked += 1;
            let input = if input.starts_with(prefix) {
                input.to_owned()
            } else {
                format!("{prefix}{input}")
            };
            if let Err(e) = VatId::parse(&input) {
                failures.push(format!("{input:?} ({file}): stdnum valid, ours {e}"));
            }
        }
    }
    eprintln!(
        "python-stdnum: {checked} vectors checked, {skipped} OSS numbers skipped, {} with another error kind",
        kind_differs.len()
    );
    for line in &kind_differs {
        eprintln!("  error kind differs (both invalid): {line}");
    }
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

fn rate(text: &str) -> VatRate {
    VatRate::new(decimal::parse_plain(text).unwrap()).unwrap()
}

/// Puts every bare JSON number in quotes, so that rates are read from their text and never
/// through a float.
fn quote_numbers(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + 1024);
    let (mut in_string, mut escaped, mut in_number) = (false, false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        let starts_number = c.is_ascii_digit() || c == '-';
        let number_char = starts_number || matches!(c, '.' | 'e' | 'E' | '+');
        if starts_number && !in_number {
            out.push('"');
            in_number = true;
        } else if !number_char && in_number {
            out.push('"');
            in_number = false;
        }
        if c == '"' {
            in_string = true;
        }
        out.push(c);
    }
    out
}

type History = Vec<(Country, NaiveDate, Option<NaiveDate>, VatRate)>;

/// The hand-transcribed history (vatnode / TEDB): country, from, to, standard.
fn load_history(dir: &std::path::Path) -> History {
    read(dir, "eu27-standard-rate-history-since-2016.tsv")
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let code = if f[0] == "GR" { "EL" } else { f[0] };
            let country = Country::from_code(code.parse().unwrap()).unwrap();
            (country, day(f[1]), (!f[2].is_empty()).then(|| day(f[2])), rate(f[3]))
        })
        .collect()
}

type Ibericode = BTreeMap<Country, Vec<(NaiveDate, VatRate, Vec<VatRate>)>>;

/// ibericode: country -> `[(effective_from, standard, reduced set)]`.
fn load_ibericode(dir: &std::path::Path) -> Ibericode {
    let json: serde_json::Value = serde_json::from_str(&quote_numbers(&read(dir, "ibericode-vat-rates.json"))).unwrap();
    let mut ibericode = Ibericode::new();
    for (cc, periods) in json["items"].as_object().unwrap() {
        let Some(country) = Country::from_iso(cc.parse().unwrap()).filter(|c| c.is_eu()) else {
            continue;
        };
        for p in periods.as_array().unwrap() {
            let from = p["effective_from"].as_str().unwrap();
            let from = if from == "0000-01-01" {
                NaiveDate::MIN
            } else {
                day(from)
            };
            let rates = p["rates"].as_object().unwrap();
            let mut reduced: Vec<VatRate> = ["reduced", "reduced1", "reduced2", "press_publications"]
                .iter()
                .filter_map(|k| rates.get(*k).map(|v| rate(v.as_str().unwrap())))
                .collect();
            reduced.sort();
            reduced.dedup();
            ibericode
                .entry(country)
                .or_default()
                .push((from, rate(rates["standard"].as_str().unwrap()), reduced));
        }
    }
    ibericode
}

#[test]
fn standard_rates_agree_day_by_day_with_the_reference_history() {
    let Some(dir) = folder("PAYGO_VAT_RATES_DIR") else {
        return;
    };
    let last = day("2026-09-29");

    let history = load_history(&dir);
    let ibericode = load_ibericode(&dir);

    let (mut days_checked, mut failures, mut reduced_differs) = (0u64, Vec::new(), BTreeMap::new());
    for country in Country::ALL.into_iter().filter(|c| c.is_eu()) {
        let mut date = day("2016-01-01");
        while date <= last {
            let ours = rates_on(country, date).unwrap();
            let tsv = history
                .iter()
                .find(|(c, from, to, _)| *c == country && *from <= date && to.is_none_or(|to| date <= to))
                .map(|h| h.3);
            let iber = ibericode[&country]
                .iter()
                .filter(|p| p.0 <= date)
                .max_by_key(|p| p.0)
                .unwrap();
            if tsv != Some(ours.standard()) || iber.1 != ours.standard() {
                failures.push(format!(
                    "{country} {date}: ours {}, history {tsv:?}, ibericode {}",
                    ours.standard(),
                    iber.1
                ));
            }
            if iber.2 != ours.reduced() {
                reduced_differs
                    .entry((country, format!("ours {:?} ibericode {:?}", ours.reduced(), iber.2)))
                    .or_insert((date, date))
                    .1 = date;
            }
            days_checked += 1;
            date = date.succ_opt().unwrap();
        }
    }

    // vatnode's current rates (2026-09-29): the standard rate in force that day.
    let mut current = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.starts_with("vatnode-eu-vat-rates-data-") {
            continue;
        }
        let json: serde_json::Value = serde_json::from_str(&quote_numbers(&read(&dir, &name))).unwrap();
        let version = day(json["version"].as_str().unwrap());
        for (cc, r) in json["rates"].as_object().unwrap() {
            let Some(country) = Country::from_iso(cc.parse().unwrap()).filter(|c| c.is_eu()) else {
                continue;
            };
            let theirs = rate(r["standard"].as_str().unwrap());
            current += 1;
            if standard_rate(country, version).unwrap() != theirs {
                failures.push(format!("{country} on {version}: ours differs from vatnode {theirs}"));
            }
            // The other rates, for information (vatnode lists regional rates as reduced ones).
            let ours = rates_on(country, version).unwrap();
            let mut reduced: Vec<VatRate> = r["reduced"]
                .as_array()
                .map(|a| a.iter().map(|v| rate(v.as_str().unwrap())).collect())
                .unwrap_or_default();
            reduced.sort();
            reduced.dedup();
            let optional = |key: &str| r.get(key).and_then(|v| v.as_str()).map(rate);
            let theirs_rest = (reduced, optional("super_reduced"), optional("parking"));
            let ours_rest = (ours.reduced().to_vec(), ours.super_reduced(), ours.parking());
            if theirs_rest != ours_rest {
                eprintln!(
                    "  other rates differ from vatnode {version} (information only) {country}: ours {ours_rest:?} vatnode {theirs_rest:?}"
                );
            }
        }
    }

    eprintln!(
        "rates: {days_checked} country-days checked against the history and ibericode, {current} current rates against vatnode"
    );
    for ((country, what), (from, to)) in &reduced_differs {
        eprintln!("  reduced rates differ (information only) {country} {from}..{to}: {what}");
    }
    assert!(
        failures.is_empty(),
        "{} disagreements, first: {:?}",
        failures.len(),
        failures.first()
    );
}
