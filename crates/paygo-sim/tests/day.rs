//! The main job at a small size with a fixed seed, over real HTTP on loopback: every figure
//! it reports is checked against the others, and the example's output folder against what
//! it says it wrote.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use paygo_credits::{CreditRate, Credits, ExactCredits};
use paygo_sim::{DayOptions, run_day};

fn small() -> DayOptions {
    DayOptions {
        accounts: 9,
        requests: 1_500,
        seed: 11,
        ..DayOptions::default()
    }
}

#[test]
fn a_small_day_is_consistent_in_every_figure() {
    let mut last = (0, 0);
    let report = run_day(&small(), &mut |done, total| last = (done, total)).unwrap();
    for check in &report.checks {
        assert!(check.ok, "{}: {}", check.what, check.detail);
    }
    // 1,500 calls plus the 150 of the burst, all reported by the progress callback.
    assert_eq!(last, (1_650, 1_650));
    let sent: u64 = report.accounts.iter().map(|a| a.calls).sum();
    assert_eq!(sent, 1_650);
    for a in &report.accounts {
        // Every refusal and outcome counted once.
        assert_eq!(
            a.completed + a.failed_upstream + a.refused_rate_limit + a.refused_balance,
            a.calls,
            "{}",
            a.name
        );
        // No credit created or lost in the account.
        assert_eq!(a.balance, a.top_up_credits - a.credits_spent, "{}", a.name);
        assert!(a.balance >= 0);
        // Credits bought are the money paid at 2,000,000 per dollar.
        assert_eq!(
            i128::from(a.top_up_credits),
            i128::from(a.top_up_cents) * 20_000,
            "{}",
            a.name
        );
        // The charged credits are within half a credit of the exact quotes.
        let exact: ExactCredits = a.exact_credits_quoted.parse().unwrap();
        let gap = exact
            .checked_sub(ExactCredits::from(Credits::new(a.credits_spent)))
            .unwrap()
            .get()
            .abs();
        assert!(gap <= "0.5".parse().unwrap(), "{}: {gap}", a.name);
        // The statement agrees with the account.
        let (_, statement) = report.statements.iter().find(|(id, _)| *id == a.id).unwrap();
        let json: serde_json::Value = serde_json::from_str(&statement.to_json().unwrap()).unwrap();
        assert_eq!(json["total"]["calls"].as_u64(), Some(a.completed), "{}", a.name);
        assert_eq!(json["total"]["credits"].as_i64(), Some(a.credits_spent), "{}", a.name);
    }
    // Every call went over HTTP: some streamed (some asking for the usage chunk, a few
    // cut), some embeddings; only the calls let through reached the upstream.
    let t = &report.traffic;
    assert_eq!(t.calls, 1_650);
    assert!(t.requests > t.calls, "the operator's and account requests come on top");
    assert!(t.streamed > 0 && t.streamed_with_usage > 0 && t.streamed_with_usage < t.streamed);
    assert!(t.cut_streams > 0 && t.embeddings > 0);
    let let_through: u64 = report.accounts.iter().map(|a| a.completed + a.failed_upstream).sum();
    assert_eq!(t.upstream_requests, let_through);
    assert_eq!(report.accounts.iter().map(|a| a.streamed).sum::<u64>(), t.streamed);
    assert_eq!(
        report.accounts.iter().map(|a| a.cut_streams).sum::<u64>(),
        t.cut_streams
    );
    // The bursting account met its rate limit; some account ran out of credits.
    assert!(report.accounts[1].refused_rate_limit > 0);
    assert!(report.accounts.iter().any(|a| a.refused_balance > 0));
    assert!(report.accounts.iter().any(|a| a.auto_top_ups_requested > 0));
    // A prepaid card was refused, with its reason, and did not top up.
    assert_eq!(report.accounts[2].refused_payment_methods, 1);
    // One invoice per paid top-up, numbered without gaps, each for what was paid.
    let top_ups: u64 = report.accounts.iter().map(|a| a.top_ups).sum();
    assert_eq!(report.invoices.len() as u64, top_ups);
    let net_cents: i64 = report.accounts.iter().map(|a| a.top_up_cents).sum();
    let invoiced: i128 = report.invoices.iter().map(|d| d.totals().net.to_minor().unwrap()).sum();
    assert_eq!(invoiced, i128::from(net_cents));
    for (i, doc) in report.invoices.iter().enumerate() {
        assert_eq!(doc.number().to_string(), format!("INV-2026-{:06}", i + 1));
    }
    // The response's usage section has the provider's shape.
    let usage: serde_json::Value = serde_json::from_str(&report.sample_usage_section).unwrap();
    let credits = usage["meta"]["usage"]["credits_used"].as_i64().unwrap();
    let usd = CreditRate::default().to_money_exact(Credits::new(credits)).unwrap();
    assert_eq!(
        usage["meta"]["usage"]["usd_spent"].to_string(),
        usd.amount().normalize().to_string()
    );
}

#[test]
fn the_same_seed_gives_the_same_day() {
    let a = run_day(&small(), &mut |_, _| {}).unwrap();
    let b = run_day(&small(), &mut |_, _| {}).unwrap();
    assert_eq!(a.accounts, b.accounts);
    assert_eq!(a.invoices.len(), b.invoices.len());
}

#[test]
fn the_output_folder_holds_every_document_the_day_lists() {
    // The example writes its folder with `DayReport::write`; so does this test.
    let report = run_day(
        &DayOptions {
            accounts: 4,
            requests: 300,
            ..small()
        },
        &mut |_, _| {},
    )
    .unwrap();
    let out = std::env::temp_dir().join(format!("paygo-gateway-test-{}", std::process::id()));
    let written = report.write(&out).unwrap();
    let manifest = std::fs::read_to_string(out.join("manifest.txt")).unwrap();
    let listed: Vec<&str> = manifest.lines().collect();
    assert_eq!(listed, written);
    // Three files per invoice and per statement, and the summary.
    assert_eq!(listed.len(), 3 * (report.invoices.len() + report.statements.len()) + 1);
    assert!(listed.contains(&"invoices/INV-2026-000001.html"));
    for file in &listed {
        let meta = std::fs::metadata(out.join(file)).unwrap_or_else(|_| panic!("{file} is listed but missing"));
        assert!(meta.len() > 0, "{file} is empty");
    }
    let mut on_disk = 0;
    for dir in ["invoices", "statements"] {
        on_disk += std::fs::read_dir(out.join(dir)).unwrap().count();
    }
    assert_eq!(
        on_disk + 1,
        listed.len(),
        "files on disk that the manifest does not list"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["accounts"].as_array().map(Vec::len), Some(4));
    std::fs::remove_dir_all(&out).unwrap();
}
