//! The VAT refund rules: one test per rule and per outcome.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use chrono::NaiveDate;
use paygo_credits::{Currency, Money};
use paygo_vat::{
    Country, DEFAULT_REQUEST_LIMIT_DAYS, InvoiceFacts, RefundDecision, RefundPolicy, RefundRequest, RejectReason,
    RetryReason, VatError, VatId, VatIdStatus, decide_refund,
};

fn eur(text: &str) -> Money {
    Money::parse(text, Currency::EUR).unwrap()
}

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

/// A German customer's €100 top-up from an Irish seller, charged 19 % German VAT.
fn request() -> RefundRequest {
    RefundRequest {
        invoice: InvoiceFacts {
            number: "INV-2026-000042".into(),
            date: day("2026-03-01"),
            customer_country: Country::Germany,
            net: eur("100.00"),
            vat_charged: eur("19.00"),
            vat_already_credited: eur("0.00"),
        },
        vat_id: VatId::parse("DE136695976").unwrap(),
        confirmation: VatIdStatus::Valid,
        requested_on: day("2026-03-20"),
    }
}

fn policy() -> RefundPolicy {
    RefundPolicy::new(Country::Ireland)
}

fn rejected(request: &RefundRequest) -> RejectReason {
    match decide_refund(request, &policy()).unwrap() {
        RefundDecision::Rejected { reason } => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn approved_refunds_the_vat_through_a_credit_note_of_the_vat_lines_only() {
    let decision = decide_refund(&request(), &policy()).unwrap();
    let RefundDecision::Approved { credit_note } = &decision else {
        panic!("expected approval, got {decision:?}");
    };
    assert_eq!(credit_note.vat_reversed, eur("19.00"));
    assert_eq!(credit_note.original_invoice, "INV-2026-000042");
    assert_eq!(credit_note.customer_vat_id.as_str(), "DE136695976");
    assert_eq!(credit_note.mention, "Reverse charge");
    assert_eq!(decision.refund(), Some(&eur("19.00")));
}

#[test]
fn rule_the_net_is_never_refunded() {
    let RefundDecision::Approved { credit_note } = decide_refund(&request(), &policy()).unwrap() else {
        panic!("expected approval");
    };
    assert!(credit_note.net_reversed.is_zero());
    assert_eq!(credit_note.net_reversed.currency(), Currency::EUR);
}

#[test]
fn rule_refundable_is_vat_charged_minus_earlier_credit_notes() {
    let mut r = request();
    r.invoice.vat_already_credited = eur("4.75");
    assert_eq!(decide_refund(&r, &policy()).unwrap().refund(), Some(&eur("14.25")));
}

#[test]
fn rule_nothing_is_refunded_twice() {
    let mut r = request();
    let first = decide_refund(&r, &policy()).unwrap();
    r.invoice.vat_already_credited = first.refund().copied().unwrap();
    assert_eq!(rejected(&r), RejectReason::AlreadyRefunded);
}

#[test]
fn rule_no_vat_charged_nothing_to_refund() {
    let mut r = request();
    r.invoice.vat_charged = eur("0.00");
    assert_eq!(rejected(&r), RejectReason::NoVatCharged);
}

#[test]
fn rule_unknown_confirmation_is_retry_later_not_a_rejection() {
    let mut r = request();
    r.confirmation = VatIdStatus::Unknown;
    let decision = decide_refund(&r, &policy()).unwrap();
    assert_eq!(
        decision,
        RefundDecision::RetryLater {
            reason: RetryReason::ConfirmationUnavailable
        }
    );
    assert_eq!(decision.refund(), None);
}

#[test]
fn rule_invalid_vat_id_is_rejected() {
    let mut r = request();
    r.confirmation = VatIdStatus::Invalid;
    assert_eq!(rejected(&r), RejectReason::VatIdInvalid);
}

#[test]
fn rule_vat_id_country_must_match_the_invoice() {
    let mut r = request();
    r.vat_id = VatId::parse("FR40303265045").unwrap();
    let reason = rejected(&r);
    assert_eq!(
        reason,
        RejectReason::CountryMismatch {
            vat_id_country: Country::France,
            invoice_country: Country::Germany
        }
    );
    assert_eq!(
        reason.to_string(),
        "the VAT ID is from FR but the VAT was charged for DE: they must match"
    );
}

#[test]
fn rule_vat_id_of_the_sellers_country_means_no_reverse_charge() {
    let mut r = request();
    r.invoice.customer_country = Country::Ireland;
    r.invoice.vat_charged = eur("23.00");
    r.vat_id = VatId::parse("IE 6433435F").unwrap();
    assert_eq!(rejected(&r), RejectReason::SellerCountry);
}

#[test]
fn rule_vat_id_outside_the_eu_is_no_eu_reverse_charge() {
    let mut r = request();
    r.invoice.customer_country = Country::NorthernIreland;
    r.vat_id = VatId::parse("XI432525179").unwrap();
    assert_eq!(rejected(&r), RejectReason::NotEuVatId);
}

#[test]
fn rule_a_non_eu_vat_id_is_rejected_as_such_before_any_country_comparison() {
    // An XI ID on an invoice charged for GB: not "XI does not match GB", but no EU reverse charge.
    let mut r = request();
    r.invoice.customer_country = Country::UnitedKingdom;
    r.vat_id = VatId::parse("XI432525179").unwrap();
    assert_eq!(rejected(&r), RejectReason::NotEuVatId);
    // A GB ID on a German invoice.
    let mut r = request();
    r.vat_id = VatId::parse("GB980780684").unwrap();
    assert_eq!(rejected(&r), RejectReason::NotEuVatId);
}

#[test]
fn rule_time_limit_default_is_365_days_inclusive() {
    assert_eq!(DEFAULT_REQUEST_LIMIT_DAYS, 365);
    let mut r = request();
    r.requested_on = day("2027-03-01"); // 365 days later: still in time
    assert!(decide_refund(&r, &policy()).unwrap().refund().is_some());
    r.requested_on = day("2027-03-02");
    assert_eq!(
        rejected(&r),
        RejectReason::TooLate {
            days: 366,
            limit_days: 365
        }
    );
}

#[test]
fn rule_time_limit_is_configurable() {
    let mut r = request();
    r.requested_on = day("2026-04-01"); // 31 days
    let strict = RefundPolicy {
        request_limit_days: 30,
        ..policy()
    };
    assert!(matches!(
        decide_refund(&r, &strict).unwrap(),
        RefundDecision::Rejected {
            reason: RejectReason::TooLate { days: 31, .. }
        }
    ));
}

#[test]
fn rule_a_late_request_is_rejected_even_when_the_confirmation_is_unknown() {
    let mut r = request();
    r.requested_on = day("2028-01-01");
    r.confirmation = VatIdStatus::Unknown;
    assert!(matches!(rejected(&r), RejectReason::TooLate { .. }));
}

#[test]
fn inconsistent_facts_are_errors_not_decisions() {
    let mut r = request();
    r.invoice.vat_already_credited = eur("19.01");
    assert!(matches!(
        decide_refund(&r, &policy()),
        Err(VatError::InvalidRequest { .. })
    ));
    let mut r = request();
    r.invoice.vat_charged = eur("-19.00");
    assert!(matches!(
        decide_refund(&r, &policy()),
        Err(VatError::InvalidRequest { .. })
    ));
    let mut r = request();
    r.requested_on = day("2026-02-28");
    assert!(matches!(
        decide_refund(&r, &policy()),
        Err(VatError::InvalidRequest { .. })
    ));
    let mut r = request();
    r.invoice.vat_already_credited = Money::parse("0.00", Currency::USD).unwrap();
    assert!(matches!(decide_refund(&r, &policy()), Err(VatError::Money(_))));
    let mut r = request();
    r.invoice.net = Money::parse("100.00", Currency::USD).unwrap();
    assert!(matches!(decide_refund(&r, &policy()), Err(VatError::Money(_))));
    // The credit note must name the invoice it corrects.
    let mut r = request();
    r.invoice.number = " ".into();
    assert!(matches!(
        decide_refund(&r, &policy()),
        Err(VatError::InvalidRequest { .. })
    ));
}

#[test]
fn decisions_serialize_with_their_reason() {
    let mut r = request();
    r.confirmation = VatIdStatus::Unknown;
    let json = serde_json::to_value(decide_refund(&r, &policy()).unwrap()).unwrap();
    assert_eq!(json["decision"], "retry_later");
    assert_eq!(json["reason"]["reason"], "confirmation_unavailable");
    let json = serde_json::to_value(decide_refund(&request(), &policy()).unwrap()).unwrap();
    assert_eq!(json["credit_note"]["vat_reversed"]["amount"], "19.00");
    assert_eq!(json["credit_note"]["net_reversed"]["amount"], "0");
}
