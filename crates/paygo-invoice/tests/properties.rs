//! Properties of issued documents, as property tests: totals add up to the last minor unit
//! in currencies with 0, 2 and 3 decimals; credit notes never exceed their invoice (against
//! a reference model); numbering from several threads has no gap and no duplicate.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

#[path = "support/common.rs"]
#[allow(dead_code)]
mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::*;
use paygo_credits::{Currency, Decimal, Money, Rounding};
use paygo_invoice::{
    CreditNoteDraft, DocumentId, InvoiceError, Invoicing, LineInput, MemorySequenceStore, RoundingRules, SeriesName,
    TaxRounding,
};
use paygo_vat::VatRate;
use proptest::prelude::*;

/// Where failing cases are kept (committed, replayed first).
const REGRESSIONS: &str = "tests/properties.proptest-regressions";

/// JPY (0 decimals), EUR (2) and BHD (3).
fn any_currency() -> impl Strategy<Value = Currency> {
    proptest::sample::select(vec![Currency::JPY, Currency::EUR, Currency::BHD])
}

fn any_rules() -> impl Strategy<Value = RoundingRules> {
    (
        proptest::sample::select(vec![TaxRounding::PerInvoice, TaxRounding::PerLine]),
        proptest::sample::select(Rounding::ALL.to_vec()),
    )
        .prop_map(|(tax, rounding)| RoundingRules { tax, rounding })
}

/// Rates from 0 % to 27 % with up to 2 decimals (25.5 %, 7.7 %, ...).
fn any_rate() -> impl Strategy<Value = VatRate> {
    (0i64..=2_700).prop_map(|m| VatRate::new(Decimal::new(m, 2)).unwrap())
}

/// 1 to 8 lines: quantities up to 1,000 with up to 3 decimals, unit prices up to 10,000
/// with up to 6 decimals (finer than any minor unit, as per-token prices are).
fn any_lines(currency: Currency) -> impl Strategy<Value = Vec<LineInput>> {
    proptest::collection::vec((1i64..=1_000_000, 0u32..=3, 0i64..=10_000_000_000, 0u32..=6), 1..=8).prop_map(
        move |specs| {
            specs
                .into_iter()
                .enumerate()
                .map(|(i, (q, qs, p, ps))| LineInput {
                    description: format!("line {i}"),
                    quantity: Decimal::new(q, qs),
                    unit_price: Money::new(Decimal::new(p, ps), currency),
                })
                .collect()
        },
    )
}

proptest! {
    #![proptest_config(paygo_testkit::proptest_config(256, REGRESSIONS))]

    /// Every amount is a whole number of minor units; the totals are the exact sums of the
    /// rounded lines and taxes; each line's net is its exact amount rounded; the VAT is
    /// rounded per line or per invoice as the rules say.
    #[test]
    fn totals_are_sums_of_rounded_lines_and_taxes(
        (currency, lines) in any_currency().prop_flat_map(|c| (Just(c), any_lines(c))),
        rate in any_rate(),
        rules in any_rules(),
    ) {
        let invoicing = invoicing(MemorySequenceStore::new());
        let mut d = draft("p1", party("Buyer AG", "CH", None), foreign_tax(rate), lines.clone());
        d.currency = currency;
        d.rules = rules;
        let doc = invoicing.issue(&d, day(2)).unwrap();
        let minor = |m: &Money| m.currency() == currency && m.is_rounded().unwrap();
        let mut net_sum = Money::zero(currency);
        let mut line_vat_sum = Money::zero(currency);
        for (line, input) in doc.lines().iter().zip(&lines) {
            let exact = input.unit_price.checked_mul(input.quantity).unwrap();
            prop_assert_eq!(line.net(), &exact.round(rules.rounding).unwrap());
            prop_assert!(minor(line.net()));
            net_sum = net_sum.checked_add(line.net()).unwrap();
            match rules.tax {
                TaxRounding::PerLine => {
                    let vat = line.vat().unwrap();
                    prop_assert!(minor(vat));
                    prop_assert_eq!(vat, &rate.vat_on(line.net(), rules.rounding).unwrap());
                    line_vat_sum = line_vat_sum.checked_add(vat).unwrap();
                }
                TaxRounding::PerInvoice => prop_assert!(line.vat().is_none()),
            }
        }
        let totals = doc.totals();
        let tax_sum = Money::checked_sum(currency, doc.taxes().iter().map(paygo_invoice::TaxLine::vat)).unwrap();
        prop_assert_eq!(&totals.net, &net_sum);
        prop_assert_eq!(&totals.vat, &tax_sum);
        prop_assert_eq!(&totals.gross, &net_sum.checked_add(&tax_sum).unwrap());
        prop_assert!(minor(&totals.net) && minor(&totals.vat) && minor(&totals.gross));
        let expected_vat = match rules.tax {
            TaxRounding::PerLine => line_vat_sum,
            TaxRounding::PerInvoice => rate.vat_on(&net_sum, rules.rounding).unwrap(),
        };
        prop_assert_eq!(&totals.vat, &expected_vat);
        // The JSON form reads back as the same document.
        let back: paygo_invoice::Document = serde_json::from_str(&doc.to_json().unwrap()).unwrap();
        prop_assert_eq!(&back, &doc);
    }

    /// Per-line and per-invoice VAT differ by at most one minor unit per line (each line's
    /// rounding moves by less than one unit, and so does the invoice's).
    #[test]
    fn per_line_and_per_invoice_vat_stay_close(
        (currency, lines) in any_currency().prop_flat_map(|c| (Just(c), any_lines(c))),
        rate in any_rate(),
        rounding in proptest::sample::select(Rounding::ALL.to_vec()),
    ) {
        let vat = |tax| {
            let invoicing = invoicing(MemorySequenceStore::new());
            let mut d = draft("p2", party("Buyer AG", "CH", None), foreign_tax(rate), lines.clone());
            d.currency = currency;
            d.rules = RoundingRules { tax, rounding };
            invoicing.issue(&d, day(2)).unwrap().totals().vat.to_minor().unwrap()
        };
        let diff = (vat(TaxRounding::PerLine) - vat(TaxRounding::PerInvoice)).abs();
        prop_assert!(diff <= lines.len() as i128, "differ by {diff} minor units over {} lines", lines.len());
    }
}

proptest! {
    #![proptest_config(paygo_testkit::proptest_config(64, REGRESSIONS))]

    /// Against a reference model of what remains: a credit note is issued exactly when its
    /// net and VAT fit in what remains, and the credit notes of an invoice never total more
    /// than it, whatever is asked.
    #[test]
    fn credit_notes_never_exceed_the_original(
        price_cents in 1i64..=100_000,
        quantity in 1i64..=5,
        requests in proptest::collection::vec((1i64..=3, 1i64..=60_000), 1..8),
    ) {
        let invoicing = invoicing(MemorySequenceStore::new());
        let price = Decimal::new(price_cents, 2).to_string();
        let mut d = de_draft("orig", &price);
        d.lines[0].quantity = quantity.into();
        let invoice = invoicing.issue(&d, day(2)).unwrap();
        let (net, vat) = (invoice.totals().net, invoice.totals().vat);
        let (mut model_net, mut model_vat) = (Money::zero(Currency::USD), Money::zero(Currency::USD));
        for (i, (q, cents)) in requests.into_iter().enumerate() {
            let draft = CreditNoteDraft {
                id: DocumentId::new(&format!("cn{i}")).unwrap(),
                series: SeriesName::new("CN-2026").unwrap(),
                original: invoice.number().clone(),
                reason: "partial credit".into(),
                lines: vec![line("credit", &q.to_string(), &Decimal::new(cents, 2).to_string(), Currency::USD)],
                refund: card("re"),
            };
            // The model: the amounts this credit note would take off, and whether they fit.
            let want_net = Money::new(Decimal::new(q * cents, 2), Currency::USD);
            let want_vat = VatRate::new(19.into()).unwrap().vat_on(&want_net, Rounding::HalfUp).unwrap();
            let fits = model_net.checked_add(&want_net).unwrap() <= net && model_vat.checked_add(&want_vat).unwrap() <= vat;
            match invoicing.issue_credit_note(&draft, day(3)) {
                Ok(note) => {
                    prop_assert!(fits);
                    prop_assert_eq!(&note.totals().net, &want_net.neg());
                    prop_assert_eq!(&note.totals().vat, &want_vat.neg());
                    model_net = model_net.checked_add(&want_net).unwrap();
                    model_vat = model_vat.checked_add(&want_vat).unwrap();
                }
                Err(InvoiceError::CreditExceedsRemaining { .. }) => prop_assert!(!fits),
                Err(other) => prop_assert!(false, "unexpected error {other}"),
            }
            let credited = invoicing.credited(invoice.number()).unwrap();
            prop_assert_eq!(&credited.net, &model_net);
            prop_assert_eq!(&credited.vat, &model_vat);
            prop_assert!(credited.net <= net && credited.vat <= vat);
        }
    }
}

proptest! {
    #![proptest_config(paygo_testkit::proptest_config(24, REGRESSIONS))]

    /// Threads issuing at once get every number of the series exactly once, with no gap,
    /// and every document is kept.
    #[test]
    fn numbering_from_threads_has_no_gap_and_no_duplicate(threads in 2usize..=6, per_thread in 1usize..=25) {
        let invoicing: Arc<Invoicing<MemorySequenceStore>> = Arc::new(invoicing(MemorySequenceStore::new()));
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let invoicing = Arc::clone(&invoicing);
                std::thread::spawn(move || {
                    let mut numbers = Vec::new();
                    for i in 0..per_thread {
                        let doc = invoicing.issue(&us_draft(&format!("t{t}-{i}"), "10.00"), day(2)).unwrap();
                        numbers.push((doc.id().to_string(), doc.number().sequence()));
                    }
                    numbers
                })
            })
            .collect();
        let mut seen = BTreeSet::new();
        for handle in handles {
            for (_, sequence) in handle.join().unwrap() {
                prop_assert!(seen.insert(sequence), "number {sequence} handed out twice");
            }
        }
        let n = (threads * per_thread) as u64;
        prop_assert_eq!(seen, (1..=n).collect::<BTreeSet<u64>>());
        let docs = invoicing.documents().unwrap();
        prop_assert_eq!(docs.len() as u64, n);
    }
}

proptest! {
    #![proptest_config(paygo_testkit::proptest_config(64, REGRESSIONS))]

    /// A statement's per-model and per-day totals each sum exactly to its total, and every
    /// charge is either counted or reported outside the period.
    #[test]
    fn statement_totals_add_up(
        charges in proptest::collection::vec((0usize..4, 0i64..40 * 86_400, 0i64..10_000_000), 0..200),
    ) {
        use chrono::{DateTime, NaiveDate};
        use paygo_credits::{CreditRate, Credits};
        use paygo_invoice::{Charge, Statement, StatementRequest};
        let rate = CreditRate::default();
        let start = DateTime::from_timestamp(1_772_323_200, 0).unwrap(); // 2026-03-01 00:00 UTC
        let charges: Vec<Charge> = charges
            .into_iter()
            .map(|(m, s, c)| Charge {
                model: ["a", "b", "c", "d"][m].to_owned(),
                at: start + chrono::Duration::seconds(s - 5 * 86_400),
                credits: Credits::new(c),
                cost: rate.to_money_exact(Credits::new(c)).unwrap(),
            })
            .collect();
        let request = StatementRequest {
            account: "acct".into(),
            first_day: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
            last_day: NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
            currency: Currency::USD,
        };
        let s = Statement::build(&request, &charges).unwrap();
        prop_assert_eq!(s.total.calls + s.outside_period, charges.len() as u64);
        prop_assert_eq!(s.per_day.len(), 31);
        for parts in [
            s.per_model.iter().map(|m| &m.totals).collect::<Vec<_>>(),
            s.per_day.iter().map(|d| &d.totals).collect(),
        ] {
            prop_assert_eq!(parts.iter().map(|t| t.calls).sum::<u64>(), s.total.calls);
            prop_assert_eq!(Credits::checked_sum(parts.iter().map(|t| t.credits)).unwrap(), s.total.credits);
            prop_assert_eq!(Money::checked_sum(Currency::USD, parts.iter().map(|t| &t.cost)).unwrap(), s.total.cost);
        }
        let counted = charges.iter().filter(|c| c.at.date_naive() >= request.first_day && c.at.date_naive() <= request.last_day);
        prop_assert_eq!(Credits::checked_sum(counted.map(|c| c.credits)).unwrap(), s.total.credits);
    }
}
