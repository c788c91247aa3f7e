//! VAT IDs: hand-written vectors for every country, valid and invalid of each kind, and the
//! error messages. The valid numbers are public examples (tax administrations' and
//! python-stdnum's documentation); the invalid ones are those with one rule broken.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use paygo_vat::{Country, VatError, VatId};

/// What parsing must give: the normalized number, or the kind of error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Valid(&'static str),
    Length,
    Format,
    Checksum,
    UnknownPrefix,
    MissingPrefix,
}

fn kind(result: &Result<VatId, VatError>) -> Want {
    match result {
        Ok(_) => Want::Valid(""),
        Err(VatError::WrongLength { .. }) => Want::Length,
        Err(VatError::BadFormat { .. }) => Want::Format,
        Err(VatError::BadChecksum { .. }) => Want::Checksum,
        Err(VatError::UnknownCountryPrefix { .. }) => Want::UnknownPrefix,
        Err(VatError::MissingCountryPrefix | VatError::EmptyVatId) => Want::MissingPrefix,
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

use Want::{Checksum, Format, Length, Valid};

/// Per country: valid numbers (with their normalized form) and one of each error kind.
const VECTORS: &[(Country, &str, Want)] = &[
    (Country::Austria, "ATU 142 43 102", Valid("ATU14243102")),
    (Country::Austria, "AT U13585627", Valid("ATU13585627")),
    (Country::Austria, "AT U13585626", Checksum),
    (Country::Austria, "ATU 151592092", Length),
    (Country::Austria, "AT1 142 43 102", Format),
    (Country::Belgium, "BE 428759497", Valid("BE0428759497")),
    (Country::Belgium, "BE (0)468.561.072", Valid("BE0468561072")),
    (Country::Belgium, "BE431150351", Checksum),
    (Country::Belgium, "BE 04287594971", Length),
    (Country::Belgium, "BE 02A2.239.951", Format),
    (Country::Belgium, "BE 2428759497", Format),
    (Country::Bulgaria, "BG 175074752", Valid("BG175074752")),
    (Country::Bulgaria, "BG 175074751", Checksum),
    (Country::Bulgaria, "BG 1750747521", Checksum),
    (Country::Bulgaria, "BG 17507475", Length),
    (Country::Bulgaria, "BG 10X8735941", Format),
    (Country::Cyprus, "CY-10259033P", Valid("CY10259033P")),
    (Country::Cyprus, "CY-10259033Z", Checksum),
    (Country::Cyprus, "CY-1225903322", Length),
    (Country::Cyprus, "CY-102590Z3P", Format),
    (Country::Cyprus, "CY-12259033P", Format),
    (Country::Czechia, "CZ 25123891", Valid("CZ25123891")),
    (Country::Czechia, "CZ 7103192745", Valid("CZ7103192745")),
    (Country::Czechia, "CZ 640903926", Valid("CZ640903926")),
    (Country::Czechia, "CZ 25123890", Checksum),
    (Country::Czechia, "CZ 2512389", Length),
    (Country::Czechia, "CZ 95123891", Format),
    (Country::Germany, "DE136695976", Valid("DE136695976")),
    (Country::Germany, "de 136.695.976", Valid("DE136695976")),
    (Country::Germany, "DE 136695978", Checksum),
    (Country::Germany, "DE 1366959761", Length),
    (Country::Germany, "DE 011125440", Format),
    (Country::Denmark, "DK 13585628", Valid("DK13585628")),
    (Country::Denmark, "DK 13585627", Checksum),
    (Country::Denmark, "DK 1358562", Length),
    (Country::Denmark, "DK 03585628", Format),
    (Country::Estonia, "EE 100594102", Valid("EE100594102")),
    (Country::Estonia, "EE 100594103", Checksum),
    (Country::Estonia, "EE 10059410", Length),
    (Country::Estonia, "EE 10059410X", Format),
    (Country::Greece, "EL 094259216", Valid("EL094259216")),
    (Country::Greece, "el-94259216", Valid("EL094259216")),
    (Country::Greece, "EL 123456781", Checksum),
    (Country::Greece, "EL 0942592161", Length),
    (Country::Greece, "EL 09425921A", Format),
    (Country::Spain, "ES B64717838", Valid("ESB64717838")),
    (Country::Spain, "ES 54362315K", Valid("ES54362315K")),
    (Country::Spain, "ES X-5253868-R", Valid("ESX5253868R")),
    (Country::Spain, "ES M-1234567-L", Valid("ESM1234567L")),
    (Country::Spain, "ES B64717839", Checksum),
    (Country::Spain, "ES 54362415K", Checksum),
    (Country::Spain, "ES B-583784312", Length),
    (Country::Spain, "ES I64717838", Format),
    (Country::Finland, "FI 20774740", Valid("FI20774740")),
    (Country::Finland, "FI 20774741", Checksum),
    (Country::Finland, "FI 2077474", Length),
    (Country::Finland, "FI 2077474O", Format),
    (Country::France, "FR 40 303 265 045", Valid("FR40303265045")),
    (Country::France, "FR K7399859412", Valid("FRK7399859412")),
    (Country::France, "FR 4Z123456782", Valid("FR4Z123456782")),
    (Country::France, "FR 84 323 140 391", Checksum),
    (Country::France, "FR000076090", Length),
    (Country::France, "FR IO334175221", Format),
    (Country::Croatia, "HR 33392005961", Valid("HR33392005961")),
    (Country::Croatia, "HR 33392005962", Checksum),
    (Country::Croatia, "HR 3339200596", Length),
    (Country::Croatia, "HR 3339200596X", Format),
    (Country::Hungary, "HU-12892312", Valid("HU12892312")),
    (Country::Hungary, "HU-12892313", Checksum),
    (Country::Hungary, "HU-128923120", Length),
    (Country::Hungary, "HU-1289231X", Format),
    (Country::Ireland, "IE 6433435F", Valid("IE6433435F")),
    (Country::Ireland, "IE 6433435OA", Valid("IE6433435OA")),
    (Country::Ireland, "IE 8D79739I", Valid("IE8D79739I")),
    (Country::Ireland, "IE 6433435E", Checksum),
    (Country::Ireland, "IE 6433435", Length),
    (Country::Ireland, "IE 4550C59S", Format),
    (Country::Italy, "IT 00743110157", Valid("IT00743110157")),
    (Country::Italy, "IT 00743110158", Checksum),
    (Country::Italy, "IT 0074311015", Length),
    (Country::Italy, "IT 00687129980", Format),
    (Country::Lithuania, "LT 119511515", Valid("LT119511515")),
    (Country::Lithuania, "LT 100001919017", Valid("LT100001919017")),
    (Country::Lithuania, "LT 100001919018", Checksum),
    (Country::Lithuania, "LT 1195115151", Length),
    (Country::Lithuania, "LT 100001354", Format),
    (Country::Luxembourg, "LU 150 274 42", Valid("LU15027442")),
    (Country::Luxembourg, "LU 150 274 43", Checksum),
    (Country::Luxembourg, "LU 150 274 4", Length),
    (Country::Luxembourg, "LU 150 274 4X", Format),
    (Country::Latvia, "LV 4000 3521 600", Valid("LV40003521600")),
    (Country::Latvia, "LV 161175-19997", Valid("LV16117519997")),
    (Country::Latvia, "LV 328673-00679", Valid("LV32867300679")),
    (Country::Latvia, "LV 40003521601", Checksum),
    (Country::Latvia, "LV 4000352160", Length),
    (Country::Latvia, "LV 161375-19997", Format),
    (Country::Malta, "MT 1167-9112", Valid("MT11679112")),
    (Country::Malta, "MT 1167-9113", Checksum),
    (Country::Malta, "MT 1167-911", Length),
    (Country::Malta, "MT 0167-9112", Format),
    (Country::Netherlands, "NL 004495445B01", Valid("NL004495445B01")),
    (Country::Netherlands, "NL4495445B01", Valid("NL004495445B01")),
    (Country::Netherlands, "NL002455799B11", Valid("NL002455799B11")),
    (Country::Netherlands, "NL 123456789B90", Checksum),
    (Country::Netherlands, "NL006866304B021", Length),
    (Country::Netherlands, "NL 009122746B00", Format),
    (Country::Poland, "PL 8567346215", Valid("PL8567346215")),
    (Country::Poland, "PL 8567346216", Checksum),
    (Country::Poland, "PL 856734621", Length),
    (Country::Poland, "PL 856734621X", Format),
    (Country::Portugal, "PT 501 964 843", Valid("PT501964843")),
    (Country::Portugal, "PT 501 964 842", Checksum),
    (Country::Portugal, "PT 501 964 84", Length),
    (Country::Portugal, "PT 001 964 843", Format),
    (Country::Romania, "RO 185 472 90", Valid("RO18547290")),
    (Country::Romania, "RO 1630615123457", Valid("RO1630615123457")),
    (Country::Romania, "RO 185 472 91", Checksum),
    (Country::Romania, "RO 185 472 901 23", Length),
    (Country::Romania, "RO 085 472 90", Format),
    (Country::Sweden, "SE 123456789701", Valid("SE123456789701")),
    (Country::Sweden, "SE 123456789101", Checksum),
    (Country::Sweden, "SE 55643359201", Length),
    (Country::Sweden, "SE 123456789702", Format),
    (Country::Slovenia, "SI 5022 3054", Valid("SI50223054")),
    (Country::Slovenia, "SI 50223055", Checksum),
    (Country::Slovenia, "SI 5022305", Length),
    (Country::Slovenia, "SI 0022 3054", Format),
    (Country::Slovakia, "SK 202 274 96 19", Valid("SK2022749619")),
    (Country::Slovakia, "SK 202 274 96 18", Checksum),
    (Country::Slovakia, "SK 202 274 96 1", Length),
    (Country::Slovakia, "SK 2010 237 945", Format),
    (Country::NorthernIreland, "XI 432525179", Valid("XI432525179")),
    (Country::NorthernIreland, "XI 432525178", Checksum),
    (Country::NorthernIreland, "XI 4325251", Length),
    (Country::NorthernIreland, "XI 43252517X", Format),
    (Country::UnitedKingdom, "GB 980 7806 84", Valid("GB980780684")),
    (Country::UnitedKingdom, "GB242338087388", Valid("GB242338087388")),
    (Country::UnitedKingdom, "GB GD100", Valid("GBGD100")),
    (Country::UnitedKingdom, "GB HA501", Valid("GBHA501")),
    (Country::UnitedKingdom, "GB GD888810003", Valid("GBGD888810003")),
    (Country::UnitedKingdom, "GB 802311781", Checksum),
    (Country::UnitedKingdom, "GB 9807806842", Length),
    (Country::UnitedKingdom, "GB 9807806B4", Format),
    (Country::UnitedKingdom, "GB GD600", Format),
    (Country::Switzerland, "CHE-109.298.651 TVA", Valid("CHE109298651TVA")),
    (Country::Switzerland, "CHE-100.155.212 MWST", Valid("CHE100155212MWST")),
    (Country::Switzerland, "CHE-107.787.577 IVA", Valid("CHE107787577IVA")),
    (Country::Switzerland, "che 116.046.681 tpv", Valid("CHE116046681TPV")),
    (Country::Switzerland, "CHE-109.298.652 TVA", Checksum),
    (Country::Switzerland, "CHE-109.298.65 TVA", Length),
    (Country::Switzerland, "CHE-107.787.577 ZZZ", Format),
    (Country::Switzerland, "CH 109.298.651 TVA", Format),
    (Country::Norway, "NO 987 008 644 MVA", Valid("NO987008644MVA")),
    (Country::Norway, "965 920 358 MVA", Valid("NO965920358MVA")),
    (Country::Norway, "NO 987 008 645 MVA", Checksum),
    (Country::Norway, "NO 987 008 64 MVA", Length),
    (Country::Norway, "NO 987 008 644", Format),
];

#[test]
fn every_vector_gives_what_it_should() {
    let mut failures = Vec::new();
    for &(country, input, want) in VECTORS {
        let got = VatId::parse(input);
        let ok = match (want, &got) {
            (Valid(normalized), Ok(id)) => id.as_str() == normalized && id.country() == country,
            (_, Err(e)) => {
                kind(&got) == want
                    && match e {
                        VatError::WrongLength { country: c, .. }
                        | VatError::BadFormat { country: c, .. }
                        | VatError::BadChecksum { country: c } => *c == country,
                        _ => true,
                    }
            }
            _ => false,
        };
        if !ok {
            failures.push(format!("{input:?}: wanted {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_country_has_each_kind_of_vector() {
    for country in Country::ALL {
        let of = |want: fn(Want) -> bool| VECTORS.iter().any(|&(c, _, w)| c == country && want(w));
        assert!(of(|w| matches!(w, Valid(_))), "{country}: no valid vector");
        assert!(of(|w| w == Checksum), "{country}: no checksum vector");
        assert!(of(|w| w == Length), "{country}: no length vector");
        assert!(of(|w| w == Format), "{country}: no format vector");
    }
}

#[test]
fn the_prefix_rules() {
    let unknown = VatId::parse("QQ 124567").unwrap_err();
    assert!(matches!(unknown, VatError::UnknownCountryPrefix { prefix } if prefix.as_str() == "QQ"));
    // Greece's VAT prefix is EL; GR is its ISO code, not a VAT prefix.
    assert!(matches!(
        VatId::parse("GR 094259216"),
        Err(VatError::UnknownCountryPrefix { .. })
    ));
    // The EU's OSS numbers (EU...) are not VAT IDs of a country.
    assert!(matches!(
        VatId::parse("EU372022452"),
        Err(VatError::UnknownCountryPrefix { .. })
    ));
    assert_eq!(VatId::parse("136695976"), Err(VatError::MissingCountryPrefix));
    assert_eq!(VatId::parse(""), Err(VatError::EmptyVatId));
    assert_eq!(VatId::parse(" .-/ "), Err(VatError::EmptyVatId));
    // A duplicated prefix is not stripped twice.
    assert!(VatId::parse("DE DE 246595415").is_err());
    assert!(VatId::parse("ATU ATU 65033803").is_err());
}

#[test]
fn separators_and_case_are_normalized() {
    for input in [
        "DE136695976",
        "de136695976",
        " DE 136 695 976 ",
        "DE-136.695.976",
        "DE:136/695/976",
        "De\t136695976",
    ] {
        assert_eq!(VatId::parse(input).unwrap().as_str(), "DE136695976", "{input:?}");
    }
    // Other characters are a format error, not silently dropped.
    assert!(matches!(
        VatId::parse("DE136,695,976"),
        Err(VatError::BadFormat {
            country: Country::Germany,
            ..
        })
    ));
    assert!(matches!(VatId::parse("DE136695976é"), Err(VatError::BadFormat { .. })));
}

#[test]
fn parse_in_accepts_the_number_with_or_without_its_prefix() {
    let cases = [
        (Country::Germany, "136695976", "DE136695976"),
        (Country::Germany, "DE 136695976", "DE136695976"),
        (Country::Greece, "094259216", "EL094259216"),
        (Country::Belgium, "0428.759.497", "BE0428759497"),
        (Country::Switzerland, "109.298.651 MWST", "CHE109298651MWST"),
        (Country::Switzerland, "CHE-109.298.651 MWST", "CHE109298651MWST"),
        (Country::Norway, "987 008 644 MVA", "NO987008644MVA"),
        (Country::France, "40303265045", "FR40303265045"),
        (Country::France, "FR40303265045", "FR40303265045"),
        (Country::Spain, "B64717838", "ESB64717838"),
    ];
    for (country, input, normalized) in cases {
        let id = VatId::parse_in(country, input).unwrap();
        assert_eq!((id.as_str(), id.country()), (normalized, country), "{input:?}");
    }
    assert_eq!(
        VatId::parse_in(Country::Germany, "136695978"),
        Err(VatError::BadChecksum {
            country: Country::Germany
        })
    );
}

#[test]
fn accessors_display_and_serde() {
    let id = VatId::parse("CHE-109.298.651 TVA").unwrap();
    assert_eq!(id.number(), "109298651TVA");
    assert_eq!(id.to_string(), "CHE109298651TVA");
    assert_eq!(format!("{id:?}"), "VatId(CHE109298651TVA)");
    let de: VatId = "DE136695976".parse().unwrap();
    assert_eq!(de.number(), "136695976");
    let json = serde_json::to_string(&de).unwrap();
    assert_eq!(json, "\"DE136695976\"");
    assert_eq!(serde_json::from_str::<VatId>("\"de 136 695 976\"").unwrap(), de);
    assert!(serde_json::from_str::<VatId>("\"DE136695978\"").is_err());
}

#[test]
fn error_messages_say_what_was_wrong_and_what_was_expected() {
    let message = |s: &str| VatId::parse(s).unwrap_err().to_string();
    assert_eq!(
        message("DE 136695978"),
        "DE VAT ID has a bad checksum: the check digits do not match the number"
    );
    assert_eq!(
        message("DE 1366959761"),
        "DE VAT ID has the wrong length: 10 characters after the prefix, expected 9 digits"
    );
    assert_eq!(
        message("DE 011125440"),
        "DE VAT ID has a bad format: the first digit cannot be 0"
    );
    assert_eq!(
        message("QQ124567"),
        "unknown VAT country prefix QQ: expected an EU prefix (AT, BE, ... with EL for Greece), XI, GB, CHE or NO"
    );
    assert_eq!(
        message("123"),
        "VAT ID has no country prefix: expected two letters such as DE before the number"
    );
}

#[test]
fn long_inputs_are_a_length_error_not_a_panic() {
    let long = format!("DE{}", "1".repeat(10_000));
    assert!(matches!(
        VatId::parse(&long),
        Err(VatError::WrongLength {
            country: Country::Germany,
            length: 10_000,
            ..
        })
    ));
}

#[test]
fn countries_and_codes() {
    assert_eq!(Country::ALL.iter().filter(|c| c.is_eu()).count(), 27);
    assert_eq!(Country::Greece.code(), "EL");
    assert_eq!(Country::Greece.iso_code(), "GR");
    assert_eq!(Country::from_iso("GR".parse().unwrap()), Some(Country::Greece));
    assert_eq!(Country::from_iso("EL".parse().unwrap()), None);
    assert_eq!(Country::from_iso("US".parse().unwrap()), None);
    assert!(!Country::NorthernIreland.is_eu());
    assert_eq!(serde_json::to_string(&Country::Greece).unwrap(), "\"EL\"");
    assert!("D1".parse::<paygo_vat::CountryCode>().is_err());
    for country in Country::ALL {
        assert_eq!(Country::from_code(country.code().parse().unwrap()), Some(country));
    }
}

#[test]
fn ascii_and_unicode_inputs_normalize_alike() {
    // The ASCII fast path and the Unicode path must agree on every ASCII character.
    for b in 0u8..128 {
        let c = char::from(b);
        let ascii = VatId::parse(&format!("DE136{c}695976"));
        let unicode = VatId::parse(&format!("DE136{c}695976\u{a0}"));
        assert_eq!(ascii, unicode, "character {b:#04x}");
    }
    // Unicode white space is a separator; other Unicode is a format error.
    assert_eq!(
        VatId::parse("DE\u{2009}136\u{a0}695\u{3000}976").unwrap().as_str(),
        "DE136695976"
    );
    assert!(matches!(
        VatId::parse("DE１３６６９５９７６"),
        Err(VatError::BadFormat { .. })
    ));
}

#[test]
fn belgian_check_digits_are_97_minus_the_remainder_never_an_alias() {
    // 04640867 % 97 = 96: the check is 01. python-stdnum also accepts 98 (01 + 97); no
    // such number is issued, and we follow the official rule.
    assert_eq!(VatId::parse("BE0464086701").unwrap().as_str(), "BE0464086701");
    assert_eq!(
        VatId::parse("BE0464086798"),
        Err(VatError::BadChecksum {
            country: Country::Belgium
        })
    );
    // 10729461 % 97 = 0: the check is 97, not 00.
    assert!(VatId::parse("BE1072946197").is_ok());
    assert_eq!(
        VatId::parse("BE1072946100"),
        Err(VatError::BadChecksum {
            country: Country::Belgium
        })
    );
}
