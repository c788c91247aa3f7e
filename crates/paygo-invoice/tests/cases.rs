//! The lifecycle and the bad inputs, case by case: each error is typed, and nothing is
//! half-issued (no number is used, the next document gets the next number).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

#[path = "support/common.rs"]
#[allow(dead_code)]
mod common;

use common::*;
use paygo_credits::{Currency, Money};
use paygo_invoice::{
    CreditNoteDraft, DocumentId, DocumentKind, DocumentNumber, InvoiceError, Invoicing, MemorySequenceStore,
    SequenceStore, Series, SeriesName, VatRefundDraft,
};
use paygo_vat::{Country, RefundDecision, RefundPolicy, RefundRequest, VatId, VatIdStatus, decide_refund};

fn number(text: &str) -> DocumentNumber {
    text.parse().unwrap()
}

/// `result` is the error `matches`, and the next invoice still gets number `next`.
fn refused(invoicing: &Invoicing<MemorySequenceStore>, error: &InvoiceError, next: u64) {
    let series = SeriesName::new("INV-2026").unwrap();
    assert_eq!(invoicing.store().last(&series).unwrap(), next - 1, "after {error}");
    let doc = invoicing.issue(
        &us_draft(&format!("after-{next}-{}", error.to_string().len()), "1.00"),
        day(2),
    );
    assert_eq!(doc.unwrap().number().sequence(), next, "after {error}");
}

#[test]
fn bad_drafts_are_typed_errors_and_use_no_number() {
    let invoicing = invoicing(MemorySequenceStore::new());
    invoicing.issue(&us_draft("first", "10.00"), day(2)).unwrap();
    let mut next = 2;
    let mut expect = |draft: paygo_invoice::Draft, check: &dyn Fn(&InvoiceError) -> bool| {
        let error = invoicing.issue(&draft, day(2)).unwrap_err();
        assert!(check(&error), "unexpected error: {error}");
        refused(&invoicing, &error, next);
        next += 1;
    };

    // Lines in two currencies.
    let mut d = us_draft("two-currencies", "10.00");
    d.lines.push(line("more", "1", "5.00", Currency::EUR));
    expect(d, &|e| {
        matches!(
            e,
            InvoiceError::CurrencyMismatch {
                line: 2,
                expected: "USD",
                found: "EUR"
            }
        ) && e.to_string() == "line 2 is priced in EUR, the document is in USD: expected every line in one currency"
    });

    // A negative quantity, and a zero one.
    for q in ["-1", "0"] {
        let mut d = us_draft(&format!("quantity{q}"), "10.00");
        d.lines[0] = line("credits", q, "10.00", Currency::USD);
        expect(d, &|e| matches!(e, InvoiceError::InvalidQuantity { line: 1, .. }));
    }

    // A negative price.
    expect(us_draft("negative-price", "-10.00"), &|e| {
        matches!(e, InvoiceError::NegativePrice { line: 1, .. })
    });

    // No lines.
    let mut d = us_draft("no-lines", "10.00");
    d.lines.clear();
    expect(d, &|e| matches!(e, InvoiceError::NoLines));

    // An unknown series, and an invoice in a credit-note series.
    let mut d = us_draft("unknown-series", "10.00");
    d.series = SeriesName::new("INV-2027").unwrap();
    expect(d, &|e| {
        e.to_string() == "unknown series INV-2027: expected one of the series the issuer was opened with"
    });
    let mut d = us_draft("wrong-kind", "10.00");
    d.series = SeriesName::new("CN-2026").unwrap();
    expect(d, &|e| matches!(e, InvoiceError::WrongSeriesKind { .. }));

    // The seller without a VAT ID; a blank buyer name; a buyer without an address.
    let mut d = us_draft("no-seller-vat", "10.00");
    d.seller.vat_id = None;
    expect(d, &|e| matches!(e, InvoiceError::MissingSellerVatId));
    let mut d = us_draft("blank-name", "10.00");
    d.buyer.name = "   ".into();
    expect(d, &|e| e.to_string().starts_with("invalid buyer name"));
    let mut d = us_draft("no-address", "10.00");
    d.buyer.address.clear();
    expect(d, &|e| e.to_string().starts_with("invalid buyer address"));

    // A reverse charge whose buyer snapshot lost the VAT ID, or has another one.
    let mut d = draft(
        "rc-no-id",
        party("Exemple SARL", "FR", None),
        determination("FR", Some("FR40303265045"), VatIdStatus::Valid),
        vec![usd_line("100.00")],
    );
    expect(d.clone(), &|e| matches!(e, InvoiceError::MissingBuyerVatId));
    d.id = DocumentId::new("rc-other-id").unwrap();
    d.buyer.vat_id = Some(VatId::parse("DE136695976").unwrap());
    expect(d, &|e| matches!(e, InvoiceError::VatIdMismatch { .. }));

    // German VAT on a USD invoice needs the VAT in EUR: no rate, or a rate to PLN.
    let mut d = de_draft("no-fx", "100.00");
    d.national_fx = None;
    expect(d, &|e| {
        e.to_string() == "the VAT must also be shown in EUR (Article 230): expected an exchange rate from USD to EUR"
    });
    let mut d = de_draft("wrong-fx", "100.00");
    d.national_fx = Some(usd_to(Currency::PLN, "3.95"));
    expect(d, &|e| matches!(e, InvoiceError::WrongFxRate { .. }));

    // A currency without a minor unit.
    let mut d = us_draft("gold", "10.00");
    d.currency = Currency::XAU;
    d.lines[0].unit_price = Money::new(10.into(), Currency::XAU);
    expect(d, &|e| matches!(e, InvoiceError::NoMinorUnit { currency: "XAU" }));
}

#[test]
fn issuing_twice_is_refused_and_names_the_number() {
    let invoicing = invoicing(MemorySequenceStore::new());
    let draft = us_draft("topup-1", "10.00");
    let doc = invoicing.issue(&draft, day(2)).unwrap();
    let error = invoicing.issue(&draft, day(2)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "document topup-1 was already issued as INV-2026-000001: a draft is issued once"
    );
    assert_eq!(invoicing.get_by_id(&draft.id).unwrap(), Some(doc.clone()));
    assert_eq!(invoicing.get(&number("INV-2026-000001")).unwrap(), Some(doc));
    refused(&invoicing, &error, 2);
}

#[test]
fn numbers_follow_dates_within_a_series() {
    let invoicing = invoicing(MemorySequenceStore::new());
    invoicing.issue(&us_draft("a", "1.00"), day(5)).unwrap();
    let error = invoicing.issue(&us_draft("b", "1.00"), day(4)).unwrap_err();
    assert!(matches!(error, InvoiceError::IssueDateBeforeLast { .. }), "{error}");
    assert_eq!(
        invoicing
            .issue(&us_draft("b", "1.00"), day(5))
            .unwrap()
            .number()
            .sequence(),
        2
    );
}

#[test]
fn an_issued_invoice_keeps_its_snapshots() {
    let invoicing = invoicing(MemorySequenceStore::new());
    let mut draft = de_draft("snap", "100.00");
    let doc = invoicing.issue(&draft, day(2)).unwrap();
    // The customer moves; the issued document does not change, and the store holds it as issued.
    draft.buyer.address = vec!["Neue Straße 1".into()];
    draft.discard();
    let again = invoicing.get(doc.number()).unwrap().unwrap();
    assert_eq!(again.buyer().address, ["1 Main Street", "1000 Town"]);
    assert_eq!(again, doc);
    let stored = invoicing.store().records().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        serde_json::from_str::<paygo_invoice::Document>(&stored[0].body).unwrap(),
        doc
    );
}

#[test]
fn the_german_invoice_shows_vat_in_eur() {
    let invoicing = invoicing(MemorySequenceStore::new());
    let doc = invoicing.issue(&de_draft("de", "100.00"), day(2)).unwrap();
    assert_eq!(doc.totals().vat.to_string(), "19.00 USD");
    let national = doc.national_vat().unwrap();
    assert_eq!(national.vat.to_string(), "17.54 EUR"); // 19 × 0.9234 = 17.5446
    assert_eq!(national.fx.date(), day(1));
    assert_eq!(Country::Poland.national_currency(day(2)), Currency::PLN);
    assert_eq!(Country::Bulgaria.national_currency(day(2)), Currency::EUR);
}

#[test]
fn credit_notes_correct_only_invoices_and_never_exceed_them() {
    let invoicing = invoicing(MemorySequenceStore::new());
    let invoice = invoicing.issue(&de_draft("inv", "100.00"), day(2)).unwrap();
    let credit = |id: &str, original: &DocumentNumber, price: &str, date| {
        invoicing.issue_credit_note(
            &CreditNoteDraft {
                id: DocumentId::new(id).unwrap(),
                series: SeriesName::new("CN-2026").unwrap(),
                original: original.clone(),
                reason: "goodwill".into(),
                lines: vec![usd_line(price)],
                refund: card("re_1"),
            },
            date,
        )
    };
    assert!(matches!(
        credit("cn1", invoice.number(), "1.00", day(1)),
        Err(InvoiceError::CreditNoteBeforeOriginal { .. })
    ));
    let note = credit("cn1", invoice.number(), "60.00", day(3)).unwrap();
    assert_eq!(note.kind(), DocumentKind::CreditNote);
    assert_eq!(note.number().to_string(), "CN-2026-000001");
    assert_eq!(note.totals().gross.to_string(), "-71.40 USD");
    assert_eq!(note.lines()[0].quantity(), (-1).into());
    assert_eq!(note.buyer(), invoice.buyer());
    assert_eq!(note.correction().unwrap().original, *invoice.number());
    assert_eq!(note.national_vat().unwrap().vat.to_string(), "-10.53 EUR");

    let error = credit("cn2", invoice.number(), "40.01", day(3)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "credit of 40.01 USD net on INV-2026-000001 exceeds what remains of it (40.00 USD): expected at most that"
    );
    assert!(matches!(
        credit("cn2", note.number(), "1.00", day(3)),
        Err(InvoiceError::NotAnInvoice { .. })
    ));
    assert!(matches!(
        credit("cn2", &number("INV-2026-000009"), "1.00", day(3)),
        Err(InvoiceError::UnknownDocument { .. })
    ));
    // What remains can be credited, to the cent; then nothing more.
    let last = credit("cn2", invoice.number(), "40.00", day(3)).unwrap();
    assert_eq!(last.number().sequence(), 2);
    let credited = invoicing.credited(invoice.number()).unwrap();
    assert_eq!(
        (credited.net, credited.vat),
        (invoice.totals().net, invoice.totals().vat)
    );
    assert_eq!(credited.credit_notes.len(), 2);
    assert!(matches!(
        credit("cn3", invoice.number(), "0.01", day(3)),
        Err(InvoiceError::CreditExceedsRemaining { .. })
    ));
}

fn refund_request(invoicing: &Invoicing<MemorySequenceStore>, original: &DocumentNumber) -> RefundRequest {
    RefundRequest {
        invoice: invoicing.refund_facts(original).unwrap(),
        vat_id: VatId::parse("DE136695976").unwrap(),
        confirmation: VatIdStatus::Valid,
        requested_on: day(20),
    }
}

#[test]
fn the_vat_refund_reverses_only_the_vat_once() {
    let invoicing = invoicing(MemorySequenceStore::new());
    let invoice = invoicing.issue(&de_draft("inv", "100.00"), day(2)).unwrap();
    let policy = RefundPolicy::new(Country::Ireland);
    let decision = decide_refund(&refund_request(&invoicing, invoice.number()), &policy).unwrap();
    let draft = VatRefundDraft {
        id: DocumentId::new("refund").unwrap(),
        series: SeriesName::new("CN-2026").unwrap(),
        original: invoice.number().clone(),
        refund: card("re_1"),
    };
    let note = invoicing.issue_vat_refund(&draft, &decision, day(20)).unwrap();
    assert_eq!(note.totals().net, Money::zero(Currency::USD));
    assert_eq!(note.totals().vat.to_string(), "-19.00 USD");
    assert_eq!(note.tax().mention.as_deref(), Some("Reverse charge"));
    assert_eq!(note.buyer(), invoice.buyer());
    let refund = note.correction().unwrap().vat_refund.as_ref().unwrap();
    assert_eq!(refund.customer_vat_id.as_str(), "DE136695976");
    assert_eq!(
        note.national_vat().unwrap().vat.neg(),
        invoice.national_vat().unwrap().vat
    );
    let text = note.to_text();
    assert!(
        text.contains("INV-2026-000001") && text.contains("Refunded 19.00 USD by card"),
        "{text}"
    );

    // A second request is rejected by the rules; forcing the old decision is refused here.
    let again = decide_refund(&refund_request(&invoicing, invoice.number()), &policy).unwrap();
    assert!(matches!(again, RefundDecision::Rejected { .. }));
    let mut draft2 = draft.clone();
    draft2.id = DocumentId::new("refund-2").unwrap();
    let error = invoicing.issue_vat_refund(&draft2, &again, day(20)).unwrap_err();
    assert!(matches!(error, InvoiceError::RefundNotApproved { .. }), "{error}");
    let error = invoicing.issue_vat_refund(&draft2, &decision, day(20)).unwrap_err();
    assert!(
        matches!(error, InvoiceError::CreditExceedsRemaining { what: "VAT", .. }),
        "{error}"
    );
}

#[test]
fn a_refund_decision_must_fit_its_invoice() {
    let invoicing = invoicing(MemorySequenceStore::new());
    let first = invoicing.issue(&de_draft("one", "100.00"), day(2)).unwrap();
    let second = invoicing.issue(&de_draft("two", "50.00"), day(2)).unwrap();
    let decision = decide_refund(
        &refund_request(&invoicing, first.number()),
        &RefundPolicy::new(Country::Ireland),
    );
    let draft = VatRefundDraft {
        id: DocumentId::new("refund").unwrap(),
        series: SeriesName::new("CN-2026").unwrap(),
        original: second.number().clone(),
        refund: card("re_1"),
    };
    let error = invoicing
        .issue_vat_refund(&draft, &decision.unwrap(), day(20))
        .unwrap_err();
    assert!(matches!(error, InvoiceError::RefundMismatch { .. }), "{error}");
    // No VAT outside the EU: there are no refund facts to ask with.
    let us = invoicing.issue(&us_draft("us", "10.00"), day(2)).unwrap();
    assert!(matches!(
        invoicing.refund_facts(us.number()),
        Err(InvoiceError::NotEuSupply { .. })
    ));
}

#[test]
fn html_escapes_every_text() {
    let invoicing = invoicing(MemorySequenceStore::new());
    let mut d = us_draft("xss", "10.00");
    d.buyer.name = "<script>alert(\"x\")</script> & Co".into();
    d.lines[0].description = "Credits <b>bold</b> 'quoted'".into();
    let html = invoicing.issue(&d, day(2)).unwrap().to_html();
    assert!(!html.contains("<script>") && !html.contains("<b>"));
    assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co"));
    assert!(html.contains("&#39;quoted&#39;"));
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("src="),
        "self-contained"
    );
}

#[test]
fn numbers_and_ids_are_validated() {
    assert_eq!(number("INV-2026-000042").sequence(), 42);
    assert_eq!(number("INV-2026-000042").series().as_str(), "INV-2026");
    for bad in ["", "INV", "INV-", "INV-2026-0", "inv-1", "INV-12a", "-000001"] {
        assert!(bad.parse::<DocumentNumber>().is_err(), "{bad:?}");
    }
    assert!(SeriesName::new("INV 2026").is_err());
    assert!(SeriesName::new(&"A".repeat(33)).is_err());
    assert!(DocumentId::new("has space").is_err());
    assert!(DocumentId::new("").is_err());
    assert!(Series::new("INV", DocumentKind::Invoice, 0).is_err());
    let duplicate = vec![
        Series::new("INV", DocumentKind::Invoice, 6).unwrap(),
        Series::new("INV", DocumentKind::CreditNote, 6).unwrap(),
    ];
    assert!(matches!(
        Invoicing::open(MemorySequenceStore::new(), duplicate),
        Err(InvoiceError::InvalidSeries { .. })
    ));
}

#[test]
fn the_buyers_reference_is_shown_kept_and_carried_to_its_credit_note() {
    let invoicing = invoicing(MemorySequenceStore::new());
    let mut draft = de_draft("po", "100.00");
    draft.buyer_reference = Some("   ".into());
    assert!(matches!(
        invoicing.issue(&draft, day(2)),
        Err(InvoiceError::InvalidText { .. })
    ));
    draft.buyer_reference = Some("PO-2026-0042".into());
    let doc = invoicing.issue(&draft, day(2)).unwrap();
    assert_eq!(doc.buyer_reference(), Some("PO-2026-0042"));
    assert!(doc.to_text().contains("Your reference: PO-2026-0042."));
    assert!(doc.to_html().contains("Your reference: PO-2026-0042."));
    let json = doc.to_json().unwrap();
    assert!(json.contains("\"buyer_reference\": \"PO-2026-0042\""), "{json}");
    assert_eq!(serde_json::from_str::<paygo_invoice::Document>(&json).unwrap(), doc);
    // Without one, the document is as before: no line, no JSON field.
    let plain = invoicing.issue(&de_draft("plain", "10.00"), day(2)).unwrap();
    assert_eq!(plain.buyer_reference(), None);
    assert!(!plain.to_json().unwrap().contains("buyer_reference"));
    let note = invoicing
        .issue_credit_note(
            &CreditNoteDraft {
                id: DocumentId::new("po-cn").unwrap(),
                series: SeriesName::new("CN-2026").unwrap(),
                original: doc.number().clone(),
                reason: "goodwill".into(),
                lines: vec![usd_line("10.00")],
                refund: card("re_po"),
            },
            day(3),
        )
        .unwrap();
    assert_eq!(note.buyer_reference(), Some("PO-2026-0042"));
}
