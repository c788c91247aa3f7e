//! Properties: normalization is idempotent, parsing never panics, refunds never exceed the
//! VAT charged, and VAT amounts are bracketed by their roundings.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use chrono::{Days, NaiveDate};
use paygo_credits::{Currency, Decimal, Money, Rounding};
use paygo_vat::{
    Country, InvoiceFacts, RefundDecision, RefundPolicy, RefundRequest, VatId, VatIdStatus, VatRate, decide_refund,
};
use proptest::prelude::*;

/// Failures are recorded next to this file (committed), and replayed first on every run.
/// Where failing cases are kept (committed, replayed first).
const REGRESSIONS: &str = "tests/properties.proptest-regressions";

/// Valid numbers of every country, written plainly.
const VALID: &[&str] = &[
    "ATU13585627",
    "BE0428759497",
    "BG175074752",
    "CY10259033P",
    "CZ25123891",
    "CZ7103192745",
    "DE136695976",
    "DK13585628",
    "EE100594102",
    "EL094259216",
    "ESB64717838",
    "ESX5253868R",
    "FI20774740",
    "FR40303265045",
    "FRK7399859412",
    "HR33392005961",
    "HU12892312",
    "IE6433435F",
    "IE8D79739I",
    "IT00743110157",
    "LT119511515",
    "LU15027442",
    "LV40003521600",
    "MT11679112",
    "NL004495445B01",
    "PL8567346215",
    "PT501964843",
    "RO18547290",
    "SE123456789701",
    "SI50223054",
    "SK2022749619",
    "XI432525179",
    "GB980780684",
    "GBGD100",
    "CHE109298651MWST",
    "NO987008644MVA",
];

/// A valid number dressed up: random case and separators between its characters.
fn dressed_valid() -> impl Strategy<Value = String> {
    (
        proptest::sample::select(VALID),
        proptest::collection::vec((any::<bool>(), 0usize..6), 20),
    )
        .prop_map(|(id, noise)| {
            let mut out = String::new();
            for (i, c) in id.chars().enumerate() {
                let (lower, sep) = noise[i % noise.len()];
                out.push(if lower { c.to_ascii_lowercase() } else { c });
                out.push_str(["", " ", ".", "-", "/", ""][sep]);
            }
            out
        })
}

/// Text that looks like a VAT ID: a known prefix (or two random letters) and a mix of
/// digits, letters and separators.
fn id_like() -> impl Strategy<Value = String> {
    let prefix = prop_oneof![
        proptest::sample::select(Country::ALL.to_vec()).prop_map(|c| if c == Country::Switzerland {
            "CHE".to_owned()
        } else {
            c.code().to_owned()
        }),
        "[A-Za-z]{2}",
        Just(String::new()),
    ];
    (prefix, "[0-9A-Za-z .\\-+*]{0,16}").prop_map(|(p, rest)| p + &rest)
}

proptest! {
    #![proptest_config(paygo_testkit::proptest_config(2_000, REGRESSIONS))]

    #[test]
    fn normalization_is_idempotent(text in dressed_valid()) {
        let id = VatId::parse(&text).unwrap();
        prop_assert_eq!(VatId::parse(id.as_str()), Ok(id));
        prop_assert_eq!(VatId::parse_in(id.country(), id.number()), Ok(id));
        prop_assert_eq!(VatId::parse_in(id.country(), id.as_str()), Ok(id));
    }

    #[test]
    fn whatever_parses_reparses_to_itself(text in id_like()) {
        if let Ok(id) = VatId::parse(&text) {
            prop_assert_eq!(VatId::parse(id.as_str()), Ok(id));
            prop_assert!(id.as_str().len() <= paygo_vat::VAT_ID_MAX_LEN);
        }
    }

    #[test]
    fn any_string_gives_a_result_or_an_error(text in any::<String>(), country in proptest::sample::select(Country::ALL.to_vec())) {
        let _ = VatId::parse(&text);
        let _ = VatId::parse_in(country, &text);
    }

    #[test]
    fn vat_is_bracketed_by_its_roundings(cents in 0i64..10_000_000_000, rate_bp in 0u32..=10_000) {
        let net = Money::new(Decimal::new(cents, 2), Currency::EUR);
        let rate = VatRate::new(Decimal::new(i64::from(rate_bp), 2)).unwrap();
        let exact = net.checked_mul(rate.fraction()).unwrap();
        let down = rate.vat_on(&net, Rounding::Down).unwrap();
        let up = rate.vat_on(&net, Rounding::Up).unwrap();
        prop_assert!(down <= exact && exact <= up);
        prop_assert!(up.checked_sub(&down).unwrap().amount() <= Decimal::new(1, 2));
    }
}

/// One step of a refund history: a request with a confirmation status, or an unrelated
/// credit note (a price correction) that returns part of what remains.
#[derive(Debug, Clone)]
enum Step {
    Request(VatIdStatus),
    PartialCreditNote { per_mille: u32 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => proptest::sample::select(vec![VatIdStatus::Valid, VatIdStatus::Invalid, VatIdStatus::Unknown]).prop_map(Step::Request),
        1 => (0u32..=1000).prop_map(|per_mille| Step::PartialCreditNote { per_mille }),
    ]
}

proptest! {
    #![proptest_config(paygo_testkit::proptest_config(1_000, REGRESSIONS))]

    #[test]
    fn refunds_never_exceed_the_vat_charged(
        vat_cents in 0i64..1_000_000_000,
        steps in proptest::collection::vec(step(), 1..12),
        days in 0u64..400,
    ) {
        let charged = Money::new(Decimal::new(vat_cents, 2), Currency::EUR);
        let invoice_date = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let mut credited = Money::parse("0.00", Currency::EUR).unwrap();
        let mut refunded = credited;
        for step in steps {
            match step {
                Step::PartialCreditNote { per_mille } => {
                    let remaining = charged.checked_sub(&credited).unwrap();
                    let part = remaining
                        .checked_mul(Decimal::new(i64::from(per_mille), 3))
                        .unwrap()
                        .round(Rounding::Down)
                        .unwrap();
                    credited = credited.checked_add(&part).unwrap();
                }
                Step::Request(status) => {
                    let request = RefundRequest {
                        invoice: InvoiceFacts {
                            number: "INV-1".into(),
                            date: invoice_date,
                            customer_country: Country::Germany,
                            net: Money::parse("100.00", Currency::EUR).unwrap(),
                            vat_charged: charged,
                            vat_already_credited: credited,
                        },
                        vat_id: VatId::parse("DE136695976").unwrap(),
                        confirmation: status,
                        requested_on: invoice_date.checked_add_days(Days::new(days)).unwrap(),
                    };
                    let decision = decide_refund(&request, &RefundPolicy::new(Country::Ireland)).unwrap();
                    if let RefundDecision::Approved { credit_note } = &decision {
                        prop_assert!(credit_note.net_reversed.is_zero());
                        prop_assert!(!credit_note.vat_reversed.is_negative() && !credit_note.vat_reversed.is_zero());
                        // Exactly what remains: the VAT charged minus every earlier credit note.
                        prop_assert_eq!(credit_note.vat_reversed, charged.checked_sub(&credited).unwrap());
                        credited = credited.checked_add(&credit_note.vat_reversed).unwrap();
                        refunded = refunded.checked_add(&credit_note.vat_reversed).unwrap();
                    }
                }
            }
            prop_assert!(credited <= charged, "credited {} > charged {}", credited, charged);
            prop_assert!(refunded <= charged);
        }
    }
}
