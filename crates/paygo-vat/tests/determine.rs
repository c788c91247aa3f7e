//! Tax determination: one test per outcome and per evidence rule.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use chrono::NaiveDate;
use paygo_vat::{
    Country, CountryCode, Customer, EvidenceKind, ForeignTax, LocationEvidence, NoOutsideEuRules, OutsideEuRules,
    Reporting, Seller, Supply, Treatment, VatError, VatId, VatIdStatus, VatRate, determine,
};

fn code(text: &str) -> CountryCode {
    text.parse().unwrap()
}

fn evidence(billing: Option<&str>, ip: Option<&str>, card: Option<&str>) -> LocationEvidence {
    LocationEvidence {
        billing_country: billing.map(code),
        ip_country: ip.map(code),
        card_country: card.map(code),
    }
}

fn supply(seller: Country, oss: bool, evidence: LocationEvidence, vat_id: Option<&str>) -> Supply {
    Supply {
        seller: Seller {
            country: seller,
            oss_registered: oss,
        },
        customer: Customer {
            evidence,
            vat_id: vat_id.map(|s| VatId::parse(s).unwrap()),
        },
        date: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
    }
}

const VALID: fn(&VatId) -> VatIdStatus = |_| VatIdStatus::Valid;
const INVALID: fn(&VatId) -> VatIdStatus = |_| VatIdStatus::Invalid;
const UNKNOWN: fn(&VatId) -> VatIdStatus = |_| VatIdStatus::Unknown;

#[test]
fn consumer_in_another_member_state_pays_its_rate_through_the_oss() {
    let s = supply(Country::Ireland, true, evidence(Some("FR"), Some("FR"), None), None);
    let d = determine(&s, &UNKNOWN, &NoOutsideEuRules).unwrap();
    assert_eq!(d.treatment, Treatment::Consumer);
    assert_eq!(d.place_of_supply, code("FR"));
    assert_eq!(d.rate.to_string(), "20%");
    assert_eq!(d.reporting, Reporting::Oss);
    assert_eq!(d.mention, None);
}

#[test]
fn consumer_of_a_seller_outside_the_oss_must_be_registered_there() {
    let s = supply(Country::Ireland, false, evidence(Some("DE"), None, Some("DE")), None);
    let d = determine(&s, &UNKNOWN, &NoOutsideEuRules).unwrap();
    assert_eq!(
        (d.rate.to_string(), d.reporting),
        ("19%".into(), Reporting::RegisterInCustomerCountry)
    );
}

#[test]
fn consumer_in_the_sellers_country_is_domestic() {
    let s = supply(
        Country::Ireland,
        true,
        evidence(Some("IE"), Some("IE"), Some("IE")),
        None,
    );
    let d = determine(&s, &UNKNOWN, &NoOutsideEuRules).unwrap();
    assert_eq!((d.rate.to_string(), d.reporting), ("23%".into(), Reporting::Domestic));
}

#[test]
fn greece_is_gr_in_evidence_and_el_in_vat_ids() {
    let s = supply(Country::Ireland, true, evidence(Some("GR"), Some("GR"), None), None);
    let d = determine(&s, &UNKNOWN, &NoOutsideEuRules).unwrap();
    assert_eq!((d.place_of_supply, d.rate.to_string()), (code("GR"), "24%".into()));
}

#[test]
fn two_agreeing_pieces_win_and_the_third_is_reported() {
    let s = supply(
        Country::Ireland,
        true,
        evidence(Some("FR"), Some("NL"), Some("FR")),
        None,
    );
    let d = determine(&s, &UNKNOWN, &NoOutsideEuRules).unwrap();
    assert_eq!(d.place_of_supply, code("FR"));
    assert_eq!(d.dissenting_evidence, Some(EvidenceKind::IpAddress));
}

#[test]
fn one_piece_of_evidence_is_not_enough() {
    let s = supply(Country::Ireland, true, evidence(Some("FR"), None, None), None);
    assert_eq!(
        determine(&s, &UNKNOWN, &NoOutsideEuRules),
        Err(VatError::InsufficientEvidence { given: 1 })
    );
}

#[test]
fn a_conflict_is_reported_as_such() {
    let s = supply(Country::Ireland, true, evidence(Some("FR"), Some("NL"), None), None);
    let err = determine(&s, &UNKNOWN, &NoOutsideEuRules).unwrap_err();
    assert_eq!(
        err,
        VatError::EvidenceConflict {
            first: EvidenceKind::BillingAddress,
            first_country: code("FR"),
            second: EvidenceKind::IpAddress,
            second_country: code("NL"),
        }
    );
    assert_eq!(
        err.to_string(),
        "location evidence conflicts: the billing address says FR, the IP address says NL; two that agree are required"
    );
    let three = supply(
        Country::Ireland,
        true,
        evidence(Some("FR"), Some("NL"), Some("DE")),
        None,
    );
    assert!(matches!(
        determine(&three, &UNKNOWN, &NoOutsideEuRules),
        Err(VatError::EvidenceConflict { .. })
    ));
}

#[test]
fn confirmed_vat_id_of_another_member_state_is_reverse_charge() {
    // No location evidence is needed for a business: its VAT ID says where it is.
    let s = supply(Country::Ireland, true, LocationEvidence::default(), Some("DE136695976"));
    let d = determine(&s, &VALID, &NoOutsideEuRules).unwrap();
    assert_eq!(d.treatment, Treatment::ReverseCharge);
    assert_eq!(d.rate, VatRate::ZERO);
    assert_eq!(d.mention.as_deref(), Some("Reverse charge"));
    assert_eq!(d.reporting, Reporting::ByCustomer);
    assert_eq!(d.place_of_supply, code("DE"));
    assert_eq!(d.vat_id.map(|(_, status)| status), Some(VatIdStatus::Valid));
}

#[test]
fn confirmed_vat_id_of_the_sellers_country_is_charged_normally() {
    let s = supply(Country::Germany, true, LocationEvidence::default(), Some("DE136695976"));
    let d = determine(&s, &VALID, &NoOutsideEuRules).unwrap();
    assert_eq!(d.treatment, Treatment::DomesticBusiness);
    assert_eq!((d.rate.to_string(), d.mention), ("19%".into(), None));
    assert_eq!(d.reporting, Reporting::Domestic);
}

#[test]
fn unconfirmed_or_invalid_vat_id_is_treated_as_a_consumer() {
    let ev = evidence(Some("DE"), Some("DE"), None);
    for (confirmer, status) in [(UNKNOWN, VatIdStatus::Unknown), (INVALID, VatIdStatus::Invalid)] {
        let s = supply(Country::Ireland, true, ev, Some("DE136695976"));
        let d = determine(&s, &confirmer, &NoOutsideEuRules).unwrap();
        assert_eq!((d.treatment, d.rate.to_string()), (Treatment::Consumer, "19%".into()));
        assert_eq!(d.vat_id.map(|(_, s)| s), Some(status));
    }
}

#[test]
fn customer_outside_the_eu_is_out_of_scope_by_default() {
    let s = supply(Country::Ireland, true, evidence(Some("US"), Some("US"), None), None);
    let d = determine(&s, &UNKNOWN, &NoOutsideEuRules).unwrap();
    assert_eq!(
        (d.treatment, d.rate, d.reporting),
        (Treatment::OutsideEu, VatRate::ZERO, Reporting::NotEuVat)
    );
    // A confirmed UK VAT ID is outside the EU too (and XI is, for services).
    for id in [
        "GB980780684",
        "XI432525179",
        "CHE-109.298.651 TVA",
        "NO 987 008 644 MVA",
    ] {
        let s = supply(Country::Ireland, true, LocationEvidence::default(), Some(id));
        assert_eq!(
            determine(&s, &VALID, &NoOutsideEuRules).unwrap().treatment,
            Treatment::OutsideEu,
            "{id}"
        );
    }
}

/// A hook that taxes UK consumers at 20 % and leaves businesses to reverse charge.
struct UkRules;

impl OutsideEuRules for UkRules {
    fn tax(
        &self,
        country: CountryCode,
        vat_id: Option<(VatId, VatIdStatus)>,
        _date: NaiveDate,
    ) -> Result<Option<ForeignTax>, VatError> {
        let business = matches!(vat_id, Some((_, VatIdStatus::Valid)));
        Ok((country.as_str() == "GB" && !business).then(|| ForeignTax {
            rate: "20".parse().unwrap(),
            mention: None,
        }))
    }
}

#[test]
fn the_hook_decides_for_gb_ch_and_no() {
    let s = supply(Country::Ireland, true, evidence(Some("GB"), Some("GB"), None), None);
    let d = determine(&s, &UNKNOWN, &UkRules).unwrap();
    assert_eq!(
        (d.treatment, d.rate.to_string()),
        (Treatment::OtherJurisdiction, "20%".into())
    );
    let b2b = supply(Country::Ireland, true, LocationEvidence::default(), Some("GB980780684"));
    assert_eq!(
        determine(&b2b, &VALID, &UkRules).unwrap().treatment,
        Treatment::OutsideEu
    );
}

/// A hook that records the country it was asked about and taxes every supply at 1 %.
struct Recorder(std::cell::Cell<Option<CountryCode>>);

impl OutsideEuRules for Recorder {
    fn tax(
        &self,
        country: CountryCode,
        _vat_id: Option<(VatId, VatIdStatus)>,
        _date: NaiveDate,
    ) -> Result<Option<ForeignTax>, VatError> {
        self.0.set(Some(country));
        Ok(Some(ForeignTax {
            rate: "1".parse().unwrap(),
            mention: None,
        }))
    }
}

#[test]
fn the_hook_is_asked_with_the_iso_code_of_gb_ch_and_no() {
    for (id, iso) in [
        ("GB980780684", "GB"),
        ("CHE-109.298.651 TVA", "CH"),
        ("NO 987 008 644 MVA", "NO"),
    ] {
        let hook = Recorder(std::cell::Cell::new(None));
        let s = supply(Country::Ireland, true, LocationEvidence::default(), Some(id));
        let d = determine(&s, &VALID, &hook).unwrap();
        assert_eq!(hook.0.get(), Some(code(iso)), "{id}");
        assert_eq!(
            (d.treatment, d.place_of_supply),
            (Treatment::OtherJurisdiction, code(iso))
        );
        assert_eq!(d.reporting, Reporting::NotEuVat);
    }
    for place in ["CH", "NO"] {
        let hook = Recorder(std::cell::Cell::new(None));
        let s = supply(Country::Ireland, true, evidence(Some(place), Some(place), None), None);
        assert_eq!(determine(&s, &UNKNOWN, &hook).unwrap().place_of_supply, code(place));
        assert_eq!(hook.0.get(), Some(code(place)));
    }
}

#[test]
fn an_xi_vat_id_is_the_uk_for_electronic_services_never_reverse_charge() {
    // Northern Ireland is in the EU VAT area for goods only: a confirmed XI ID for an
    // electronically supplied service goes to the hook as GB.
    let hook = Recorder(std::cell::Cell::new(None));
    let s = supply(Country::Ireland, true, LocationEvidence::default(), Some("XI432525179"));
    let d = determine(&s, &VALID, &hook).unwrap();
    assert_eq!(hook.0.get(), Some(code("GB")));
    assert_eq!(d.place_of_supply, code("GB"));
    assert_ne!(d.treatment, Treatment::ReverseCharge);
    assert_eq!(d.mention, None);
}

#[test]
fn el_and_xi_in_evidence_are_greece_and_the_uk_never_outside_the_eu_by_mistake() {
    let s = supply(Country::Ireland, true, evidence(Some("EL"), Some("GR"), None), None);
    let d = determine(&s, &UNKNOWN, &NoOutsideEuRules).unwrap();
    assert_eq!((d.treatment, d.place_of_supply), (Treatment::Consumer, code("GR")));
    assert_eq!(d.rate.to_string(), "24%");
    let hook = Recorder(std::cell::Cell::new(None));
    let s = supply(Country::Ireland, true, evidence(Some("XI"), Some("GB"), None), None);
    assert_eq!(determine(&s, &UNKNOWN, &hook).unwrap().place_of_supply, code("GB"));
    assert_eq!(hook.0.get(), Some(code("GB")));
}

#[test]
fn the_seller_must_be_established_in_the_eu() {
    let s = supply(
        Country::UnitedKingdom,
        true,
        evidence(Some("FR"), Some("FR"), None),
        None,
    );
    assert_eq!(
        determine(&s, &UNKNOWN, &NoOutsideEuRules),
        Err(VatError::SellerOutsideEu {
            country: Country::UnitedKingdom
        })
    );
}

#[test]
fn the_rate_is_the_one_in_force_on_the_date() {
    let mut s = supply(Country::Ireland, true, evidence(Some("DE"), Some("DE"), None), None);
    s.date = NaiveDate::from_ymd_opt(2020, 10, 1).unwrap();
    assert_eq!(
        determine(&s, &UNKNOWN, &NoOutsideEuRules).unwrap().rate.to_string(),
        "16%"
    );
    s.date = NaiveDate::from_ymd_opt(2015, 10, 1).unwrap();
    assert!(matches!(
        determine(&s, &UNKNOWN, &NoOutsideEuRules),
        Err(VatError::DateBeforeRates { .. })
    ));
}

#[test]
fn determinations_serialize() {
    let s = supply(Country::Ireland, true, LocationEvidence::default(), Some("DE136695976"));
    let d = determine(&s, &VALID, &NoOutsideEuRules).unwrap();
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["treatment"], "reverse_charge");
    assert_eq!(json["rate"], "0");
    assert_eq!(json["mention"], "Reverse charge");
    assert_eq!(json["place_of_supply"], "DE");
}
