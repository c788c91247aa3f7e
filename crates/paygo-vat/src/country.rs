//! Countries: the VAT jurisdictions this crate knows, and ISO 3166 country codes.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use paygo_credits::Currency;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::VatError;

/// A two-letter ISO 3166-1 alpha-2 country code, upper case (`DE`, `GR`, `US`), as location
/// evidence carries it (billing address, IP geolocation, card BIN).
///
/// Any two ASCII letters are accepted: the code is evidence, not a claim that the country
/// exists. Serializes as its two letters.
///
/// ```
/// use paygo_vat::CountryCode;
///
/// let code: CountryCode = "de".parse()?;
/// assert_eq!(code.as_str(), "DE");
/// # Ok::<(), paygo_vat::VatError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// A code from two ASCII letters of either case; `None` for anything else.
    pub const fn from_letters(a: u8, b: u8) -> Option<CountryCode> {
        if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() {
            Some(CountryCode([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
        } else {
            None
        }
    }

    /// The two letters.
    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII letters by construction, so this is always valid UTF-8.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    /// The two letters as bytes.
    pub const fn as_bytes(&self) -> [u8; 2] {
        self.0
    }
}

impl FromStr for CountryCode {
    type Err = VatError;

    /// Parses two ASCII letters, either case (surrounding spaces are not accepted).
    ///
    /// # Errors
    ///
    /// [`VatError::InvalidCountryCode`] for anything but two letters.
    fn from_str(text: &str) -> Result<CountryCode, VatError> {
        match text.as_bytes() {
            &[a, b] => CountryCode::from_letters(a, b),
            _ => None,
        }
        .ok_or_else(|| VatError::InvalidCountryCode {
            input: text.chars().take(16).collect(),
        })
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountryCode({})", self.as_str())
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CountryCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CountryCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

macro_rules! countries {
    ($($(#[$doc:meta])* $name:ident = $code:literal, $iso:literal, $eu:literal;)*) => {
        /// A VAT jurisdiction: the 27 EU member states, Northern Ireland (`XI`), the United
        /// Kingdom (`GB`), Switzerland (`CH`) and Norway (`NO`).
        ///
        /// Serializes as its VAT prefix ([`Country::code`]): `EL` for Greece, `XI` for
        /// Northern Ireland.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum Country {
            $($(#[$doc])* #[serde(rename = $code)] $name,)*
        }

        impl Country {
            /// Every country, in the order of the enum (the EU states alphabetically by VAT
            /// prefix, then XI, GB, CH, NO).
            pub const ALL: [Country; 31] = [$(Country::$name,)*];

            /// The VAT prefix: `DE`, `EL` for Greece, `XI` for Northern Ireland, `CH` for
            /// Switzerland (whose numbers themselves start with `CHE`).
            pub const fn code(self) -> &'static str {
                match self { $(Country::$name => $code,)* }
            }

            /// The ISO 3166-1 code of the country: `GR` for Greece, `GB` for Northern Ireland.
            pub const fn iso_code(self) -> &'static str {
                match self { $(Country::$name => $iso,)* }
            }

            /// Whether the country is an EU member state (Northern Ireland is not, for
            /// services).
            pub const fn is_eu(self) -> bool {
                match self { $(Country::$name => $eu,)* }
            }

            /// The country of a VAT prefix (`EL`, not `GR`, for Greece; `XI`, `GB`, `CH`, `NO`).
            pub fn from_code(code: CountryCode) -> Option<Country> {
                let [a, b] = code.0;
                // Both are upper-case ASCII letters by construction.
                let index = usize::from(a.wrapping_sub(b'A')) * 26 + usize::from(b.wrapping_sub(b'A'));
                BY_CODE.get(index).copied().flatten()
            }
        }
    };
}

countries! {
    /// Austria.
    Austria = "AT", "AT", true;
    /// Belgium.
    Belgium = "BE", "BE", true;
    /// Bulgaria.
    Bulgaria = "BG", "BG", true;
    /// Cyprus.
    Cyprus = "CY", "CY", true;
    /// Czechia.
    Czechia = "CZ", "CZ", true;
    /// Germany.
    Germany = "DE", "DE", true;
    /// Denmark.
    Denmark = "DK", "DK", true;
    /// Estonia.
    Estonia = "EE", "EE", true;
    /// Greece: VAT prefix `EL`, ISO code `GR`.
    Greece = "EL", "GR", true;
    /// Spain.
    Spain = "ES", "ES", true;
    /// Finland.
    Finland = "FI", "FI", true;
    /// France.
    France = "FR", "FR", true;
    /// Croatia.
    Croatia = "HR", "HR", true;
    /// Hungary.
    Hungary = "HU", "HU", true;
    /// Ireland.
    Ireland = "IE", "IE", true;
    /// Italy.
    Italy = "IT", "IT", true;
    /// Lithuania.
    Lithuania = "LT", "LT", true;
    /// Luxembourg.
    Luxembourg = "LU", "LU", true;
    /// Latvia.
    Latvia = "LV", "LV", true;
    /// Malta.
    Malta = "MT", "MT", true;
    /// The Netherlands.
    Netherlands = "NL", "NL", true;
    /// Poland.
    Poland = "PL", "PL", true;
    /// Portugal.
    Portugal = "PT", "PT", true;
    /// Romania.
    Romania = "RO", "RO", true;
    /// Sweden.
    Sweden = "SE", "SE", true;
    /// Slovenia.
    Slovenia = "SI", "SI", true;
    /// Slovakia.
    Slovakia = "SK", "SK", true;
    /// Northern Ireland (VAT prefix `XI`, UK numbers; part of the EU VAT area for goods only).
    NorthernIreland = "XI", "GB", false;
    /// The United Kingdom (`GB`).
    UnitedKingdom = "GB", "GB", false;
    /// Switzerland (`CH`; VAT numbers `CHE-123.456.789 MWST`).
    Switzerland = "CH", "CH", false;
    /// Norway (`NO`; VAT numbers `NO 123 456 789 MVA`).
    Norway = "NO", "NO", false;
}

/// Countries by VAT prefix, indexed by `(first letter - A) * 26 + (second letter - A)`.
const BY_CODE: [Option<Country>; 26 * 26] = {
    let mut table = [None; 26 * 26];
    let mut i = 0;
    while i < Country::ALL.len() {
        let code = Country::ALL[i].code().as_bytes();
        table[(code[0] - b'A') as usize * 26 + (code[1] - b'A') as usize] = Some(Country::ALL[i]);
        i += 1;
    }
    table
};

impl Country {
    /// The jurisdiction of an ISO 3166 code from location evidence: `GR` is Greece, `GB` is
    /// the United Kingdom (location evidence cannot tell Northern Ireland apart). `None`
    /// for a country this crate has no rules for (outside the EU, GB, CH and NO).
    pub fn from_iso(code: CountryCode) -> Option<Country> {
        match code.as_str() {
            "GR" => Some(Country::Greece),
            "EL" | "XI" => None,
            _ => Country::from_code(code),
        }
    }

    /// The ISO code as a [`CountryCode`].
    pub fn iso(self) -> CountryCode {
        let b = self.iso_code().as_bytes();
        CountryCode([b[0], b[1]])
    }

    /// The national currency on `date`: the currency in which an invoice in another one
    /// must also show its VAT (Article 230 of the VAT Directive).
    ///
    /// The euro area as of each date: Croatia uses the euro from 2023-01-01 and Bulgaria
    /// from 2026-01-01 (before, the kuna and the lev). Every jurisdiction is listed, so a
    /// new one cannot fall into the euro by default.
    ///
    /// ```
    /// use chrono::NaiveDate;
    /// use paygo_credits::Currency;
    /// use paygo_vat::Country;
    ///
    /// let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
    /// assert_eq!(Country::Poland.national_currency(day(2026, 3, 1)), Currency::PLN);
    /// assert_eq!(Country::Bulgaria.national_currency(day(2025, 12, 31)), Currency::BGN);
    /// assert_eq!(Country::Bulgaria.national_currency(day(2026, 1, 1)), Currency::EUR);
    /// ```
    pub fn national_currency(self, date: NaiveDate) -> Currency {
        let on_or_after = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).is_some_and(|day| date >= day);
        match self {
            Country::Bulgaria if !on_or_after(2026, 1, 1) => Currency::BGN,
            Country::Croatia if !on_or_after(2023, 1, 1) => Currency::HRK,
            Country::Czechia => Currency::CZK,
            Country::Denmark => Currency::DKK,
            Country::Hungary => Currency::HUF,
            Country::Poland => Currency::PLN,
            Country::Romania => Currency::RON,
            Country::Sweden => Currency::SEK,
            Country::NorthernIreland | Country::UnitedKingdom => Currency::GBP,
            Country::Switzerland => Currency::CHF,
            Country::Norway => Currency::NOK,
            Country::Austria
            | Country::Belgium
            | Country::Bulgaria
            | Country::Cyprus
            | Country::Germany
            | Country::Estonia
            | Country::Greece
            | Country::Spain
            | Country::Finland
            | Country::France
            | Country::Croatia
            | Country::Ireland
            | Country::Italy
            | Country::Lithuania
            | Country::Luxembourg
            | Country::Latvia
            | Country::Malta
            | Country::Netherlands
            | Country::Portugal
            | Country::Slovenia
            | Country::Slovakia => Currency::EUR,
        }
    }
}

impl fmt::Display for Country {
    /// The VAT prefix ([`Country::code`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}
