//! VAT identification numbers: normalization, the country prefix, and each country's rules.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::checks::{self, BODY_MAX};
use crate::{Country, CountryCode, VatError};

/// The longest normalized VAT ID: `CHE123456789MWST`.
pub const VAT_ID_MAX_LEN: usize = 3 + BODY_MAX;

/// How many significant characters normalization keeps on the stack; more is a length error.
const SCRATCH_LEN: usize = 32;

/// A VAT identification number whose format and check digits are valid for its country.
///
/// Held normalized, on the stack (it is `Copy` and parsing never allocates): upper case, no
/// separators, with its country prefix (`DE136695976`, `EL094259216`, `CHE109298651MWST`,
/// `NO987008644MVA`), and with a leading zero restored where a country lets it be dropped
/// (Belgium, Greece, the Netherlands).
///
/// A valid `VatId` is well formed, not necessarily registered: whether the tax office knows
/// it is a separate question, answered by a [`crate::VatIdConfirmer`] (VIES for the EU).
///
/// Serializes as its normalized text.
///
/// # Example
///
/// ```
/// use paygo_vat::{Country, VatError, VatId};
///
/// let id = VatId::parse("de 136.695.976")?;
/// assert_eq!(id.as_str(), "DE136695976");
/// assert_eq!(id.country(), Country::Germany);
///
/// // Without the prefix when the country is known:
/// assert_eq!(VatId::parse_in(Country::Belgium, "428.759.497")?.as_str(), "BE0428759497");
///
/// // The error names the rule that failed:
/// assert_eq!(VatId::parse("DE136695978"), Err(VatError::BadChecksum { country: Country::Germany }));
/// assert!(matches!(VatId::parse("QQ124567"), Err(VatError::UnknownCountryPrefix { .. })));
/// # Ok::<(), VatError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VatId {
    country: Country,
    len: u8,
    bytes: [u8; VAT_ID_MAX_LEN],
}

const SKIP: u8 = 0;
const BAD: u8 = 0x80;

/// What normalization does with each ASCII character: `SKIP` a separator, `BAD` a character
/// that has no place in a VAT ID, or the (upper-case) byte to keep. Agrees with
/// [`Scratch::take`], which handles the rest of Unicode.
const ASCII: [u8; 128] = {
    let mut table = [BAD; 128];
    let mut c = 0;
    while c < 128 {
        let b = c as u8;
        if b.is_ascii_alphanumeric() || b == b'+' || b == b'*' {
            table[c] = b.to_ascii_uppercase();
        } else if b.is_ascii_whitespace() || b == 0x0b || matches!(b, b'.' | b'-' | b'/' | b':' | b'(' | b')') {
            table[c] = SKIP;
        }
        c += 1;
    }
    table
};

/// The significant characters of an input, upper case, on the stack.
struct Scratch {
    bytes: [u8; SCRATCH_LEN],
    /// Significant characters seen (may exceed `SCRATCH_LEN`).
    total: usize,
    /// Whether a character other than a letter, digit, separator, `+` or `*` was seen.
    bad: bool,
}

impl Scratch {
    /// Drops separators (white space, `.`, `-`, `/`, `:`, `(`, `)`), upper-cases letters,
    /// and notes any other character.
    fn new(text: &str) -> Scratch {
        let mut s = Scratch {
            bytes: [0; SCRATCH_LEN],
            total: 0,
            bad: false,
        };
        if text.is_ascii() {
            // The common case, byte by byte through a table.
            for &b in text.as_bytes() {
                match ASCII[usize::from(b & 0x7f)] {
                    SKIP => {}
                    BAD => s.bad = true,
                    keep => {
                        if s.total < SCRATCH_LEN {
                            s.bytes[s.total] = keep;
                        }
                        s.total += 1;
                    }
                }
            }
        } else {
            for c in text.chars() {
                s.take(c);
            }
        }
        s
    }

    fn take(&mut self, c: char) {
        if c.is_ascii_alphanumeric() || c == '+' || c == '*' {
            if self.total < SCRATCH_LEN {
                // `c` is ASCII here, so the cast keeps it whole.
                self.bytes[self.total] = (c as u8).to_ascii_uppercase();
            }
            self.total += 1;
        } else if !(c.is_whitespace() || matches!(c, '.' | '-' | '/' | ':' | '(' | ')')) {
            self.bad = true;
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.bytes[..self.total.min(SCRATCH_LEN)]
    }
}

impl VatId {
    /// Parses and validates a VAT ID that starts with its country prefix (`DE`, `EL` for
    /// Greece, `XI`, `GB`, `CHE` for Switzerland, `NO`); a Norwegian number may leave the
    /// prefix out since its `MVA` suffix names the country.
    ///
    /// Spaces, dots, dashes, slashes, colons and parentheses are ignored and letters may be
    /// lower case: `"be (0)428.759.497"`, `"CHE-109.298.651 TVA"`.
    ///
    /// # Errors
    ///
    /// The first rule that fails: [`VatError::EmptyVatId`], [`VatError::MissingCountryPrefix`],
    /// [`VatError::UnknownCountryPrefix`], [`VatError::WrongLength`], [`VatError::BadFormat`]
    /// or [`VatError::BadChecksum`].
    ///
    /// # Properties
    ///
    /// - never panics, on any string;
    /// - normalization is idempotent: `VatId::parse(id.as_str()) == Ok(id)`.
    pub fn parse(text: &str) -> Result<VatId, VatError> {
        let scratch = Scratch::new(text);
        let b = scratch.bytes();
        if scratch.total == 0 {
            return Err(VatError::EmptyVatId);
        }
        let (country, body) = match b {
            [x, y, rest @ ..] if x.is_ascii_alphabetic() && y.is_ascii_alphabetic() => {
                let code = CountryCode::from_letters(*x, *y).ok_or(VatError::MissingCountryPrefix)?;
                match Country::from_code(code) {
                    Some(Country::Switzerland) => match rest {
                        [b'E', body @ ..] => (Country::Switzerland, body),
                        _ => {
                            return Err(VatError::BadFormat {
                                country: Country::Switzerland,
                                reason: "expected CHE, 9 digits and the suffix MWST, TVA, IVA or TPV",
                            });
                        }
                    },
                    Some(country) => (country, rest),
                    None => return Err(VatError::UnknownCountryPrefix { prefix: code }),
                }
            }
            _ if b.ends_with(b"MVA") => (Country::Norway, b),
            _ => return Err(VatError::MissingCountryPrefix),
        };
        VatId::finish(country, body, &scratch, b.len() - body.len())
    }

    /// Parses and validates a VAT ID of a known country, with or without its prefix
    /// (`"136695976"` or `"DE136695976"` for Germany; `"109.298.651 MWST"` or
    /// `"CHE-109.298.651 MWST"` for Switzerland).
    ///
    /// A French number of 11 characters is always read as a number without prefix, since
    /// its 2-character key may itself be the letters `FR`.
    ///
    /// # Errors
    ///
    /// As [`VatId::parse`], except the prefix errors.
    pub fn parse_in(country: Country, text: &str) -> Result<VatId, VatError> {
        let scratch = Scratch::new(text);
        let b = scratch.bytes();
        if scratch.total == 0 {
            return Err(VatError::EmptyVatId);
        }
        let prefix = id_prefix(country);
        let keep = country == Country::France && b.len() == 11;
        let body = match b.strip_prefix(prefix) {
            Some(body) if !keep => body,
            _ => b,
        };
        VatId::finish(country, body, &scratch, b.len() - body.len())
    }

    fn finish(country: Country, body: &[u8], scratch: &Scratch, prefix_len: usize) -> Result<VatId, VatError> {
        if scratch.bad {
            return Err(VatError::BadFormat {
                country,
                reason: "unexpected character: expected letters and digits, separated only by spaces, dots, dashes, slashes or colons",
            });
        }
        if scratch.total > SCRATCH_LEN {
            return Err(VatError::WrongLength {
                country,
                length: scratch.total - prefix_len,
                expected: "at most 13 characters",
            });
        }
        let body = checks::check(country, body)?;
        let prefix = id_prefix(country);
        let mut bytes = [0; VAT_ID_MAX_LEN];
        let len = prefix.len() + body.len;
        // Fixed-size copies (the body's unused bytes are zero): at most 3 + 13 bytes.
        for (to, from) in bytes.iter_mut().zip(prefix.iter().chain(&body.bytes)) {
            *to = *from;
        }
        Ok(VatId {
            country,
            len: len as u8,
            bytes,
        })
    }

    /// The country of the number.
    pub const fn country(&self) -> Country {
        self.country
    }

    /// The normalized number with its prefix: `DE136695976`.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters and digits (and `+`, `*`) are ever stored.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }

    /// The number without its country prefix: `136695976` (for Switzerland, what follows
    /// `CHE`: `109298651MWST`).
    pub fn number(&self) -> &str {
        self.as_str().get(id_prefix(self.country).len()..).unwrap_or("")
    }
}

/// The prefix of a country's VAT numbers: its VAT code (`DE`, `EL`, `XI`), and `CHE` for
/// Switzerland's UID.
fn id_prefix(country: Country) -> &'static [u8] {
    match country {
        Country::Switzerland => b"CHE",
        _ => country.code().as_bytes(),
    }
}

impl fmt::Debug for VatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VatId({})", self.as_str())
    }
}

impl fmt::Display for VatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VatId {
    type Err = VatError;

    /// As [`VatId::parse`].
    fn from_str(text: &str) -> Result<VatId, VatError> {
        VatId::parse(text)
    }
}

impl Serialize for VatId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for VatId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        VatId::parse(&text).map_err(serde::de::Error::custom)
    }
}
