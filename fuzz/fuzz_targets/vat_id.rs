//! VAT identification numbers: `VatId::parse`, `VatId::parse_in` for every country, and
//! the JSON form.
//!
//! Input: a country byte, then UTF-8 text (inputs that are not UTF-8 are skipped).
//!
//! Properties, for an id that parses:
//! - it is normalized: at most `VAT_ID_MAX_LEN` characters of `A-Z`, `0-9`, `+`, `*`,
//!   starting with its country's prefix, and parsing it again gives the same id;
//! - it parses the same from its number within its country, with or without the prefix;
//! - its JSON form reads back to it;
//! - `parse_in` gives an id of the country asked for.

#![no_main]

use libfuzzer_sys::fuzz_target;
use paygo_vat::{Country, VAT_ID_MAX_LEN, VatId};

fn normalized(id: VatId, text: &str) {
    let s = id.as_str();
    assert!(s.len() <= VAT_ID_MAX_LEN, "{text:?} gives {s}, too long");
    assert!(
        s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'+' || b == b'*'),
        "{text:?} gives {s}, not normalized"
    );
    assert_eq!(
        VatId::parse(s),
        Ok(id),
        "{text:?} gives {s}, which does not parse back to itself"
    );
    assert_eq!(id.to_string(), s);
    assert!(s.ends_with(id.number()), "{s}: its number is not its end");
    let country = id.country();
    assert_eq!(VatId::parse_in(country, id.number()), Ok(id), "{s} from its number");
    assert_eq!(VatId::parse_in(country, s), Ok(id), "{s} within its country");
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(
        serde_json::from_str::<VatId>(&json).ok(),
        Some(id),
        "{s}: JSON round trip"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if let Ok(id) = VatId::parse(text) {
        normalized(id, text);
    }
    let countries = Country::ALL;
    let country = countries[usize::from(which) % countries.len()];
    if let Ok(id) = VatId::parse_in(country, text) {
        assert_eq!(
            id.country(),
            country,
            "{text:?} in {country:?} gives an id of {:?}",
            id.country()
        );
        normalized(id, text);
    }
});
