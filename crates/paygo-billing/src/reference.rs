//! A short reference text carried by value: a buyer's tax ID or a purchase-order
//! reference on an automatic top-up, so that its invoice can show them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A reference of up to [`Reference::LEN_MAX`] bytes of printable text (a buyer's tax ID,
/// a purchase-order number), stored inline so that it is `Copy` (and so are the
/// [`Command`](crate::Command)s that carry it). Validated when it is made; serialized as
/// its text.
///
/// ```
/// use paygo_billing::{Reference, ReferenceError};
///
/// let po: Reference = "PO-2026-0042".parse()?;
/// assert_eq!(po.as_str(), "PO-2026-0042");
/// assert_eq!(Reference::new(""), Err(ReferenceError::Empty));
/// assert_eq!(Reference::new("a\nb"), Err(ReferenceError::NotPrintable { at: 1 }));
/// # Ok::<(), ReferenceError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// The text's bytes, then zeros (so that the derived comparisons are the text's).
    bytes: [u8; Reference::LEN_MAX],
    len: u8,
}

/// Why a text is not a [`Reference`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReferenceError {
    /// An empty text.
    #[error("a reference must not be empty")]
    Empty,
    /// A text longer than [`Reference::LEN_MAX`] bytes.
    #[error("a reference is at most 40 bytes, {len} given")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A control character (a line break, a tab, ...), or a space at either end.
    #[error("a reference is printable text without spaces at its ends: byte {at} is not")]
    NotPrintable {
        /// The byte offset of the first character that is not allowed.
        at: usize,
    },
}

impl Reference {
    /// The longest reference, in bytes of UTF-8.
    pub const LEN_MAX: usize = 40;

    /// A reference from `text`: 1 to [`Reference::LEN_MAX`] bytes of UTF-8 with no
    /// control character and no white space at either end.
    ///
    /// # Errors
    ///
    /// [`ReferenceError`]: the rule `text` broke.
    pub fn new(text: &str) -> Result<Reference, ReferenceError> {
        if text.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if text.len() > Reference::LEN_MAX {
            return Err(ReferenceError::TooLong { len: text.len() });
        }
        if let Some((at, _)) = text.char_indices().find(|(_, ch)| ch.is_control()) {
            return Err(ReferenceError::NotPrintable { at });
        }
        if text.starts_with(char::is_whitespace) {
            return Err(ReferenceError::NotPrintable { at: 0 });
        }
        if let Some(last) = text.chars().next_back().filter(|ch| ch.is_whitespace()) {
            return Err(ReferenceError::NotPrintable {
                at: text.len() - last.len_utf8(),
            });
        }
        let mut bytes = [0; Reference::LEN_MAX];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        // At most 40: fits a byte.
        let len = text.len() as u8;
        Ok(Reference { bytes, len })
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // The bytes were copied from a `&str` up to `len`, and cut nowhere else: valid UTF-8.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Reference, ReferenceError> {
        Reference::new(text)
    }
}

impl TryFrom<&str> for Reference {
    type Error = ReferenceError;

    fn try_from(text: &str) -> Result<Reference, ReferenceError> {
        Reference::new(text)
    }
}

impl Serialize for Reference {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Reference, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Reference::new(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design

    use proptest::prelude::*;

    use super::{Reference, ReferenceError};

    #[test]
    fn the_rules_and_their_errors() {
        assert_eq!(Reference::new(""), Err(ReferenceError::Empty));
        assert_eq!(
            Reference::new(&"x".repeat(41)),
            Err(ReferenceError::TooLong { len: 41 })
        );
        assert_eq!(Reference::new(&"x".repeat(40)).unwrap().as_str().len(), 40);
        assert_eq!(Reference::new("ab\tc"), Err(ReferenceError::NotPrintable { at: 2 }));
        assert_eq!(Reference::new(" ab"), Err(ReferenceError::NotPrintable { at: 0 }));
        assert_eq!(Reference::new("ab "), Err(ReferenceError::NotPrintable { at: 2 }));
        assert_eq!(Reference::new("DE 123 456 789").unwrap().as_str(), "DE 123 456 789");
        // 20 two-byte characters are 40 bytes; 21 are too long.
        assert!(Reference::new(&"é".repeat(20)).is_ok());
        assert_eq!(
            Reference::new(&"é".repeat(21)),
            Err(ReferenceError::TooLong { len: 42 })
        );
        assert!(serde_json::from_str::<Reference>("\"\"").is_err());
        assert!(serde_json::from_str::<Reference>(&format!("\"{}\"", "x".repeat(41))).is_err());
    }

    proptest! {
        /// A text is accepted exactly when it follows the rules, and an accepted one
        /// reads back as itself, through `Display` and through JSON.
        #[test]
        fn accepted_exactly_by_the_rules_and_round_trips(text in "\\PC{0,30}|[ -~]{0,45}|.{0,12}") {
            let allowed = !text.is_empty()
                && text.len() <= 40
                && !text.chars().any(char::is_control)
                && text.trim() == text;
            match Reference::new(&text) {
                Ok(r) => {
                    prop_assert!(allowed, "{text:?} accepted");
                    prop_assert_eq!(r.as_str(), text.as_str());
                    prop_assert_eq!(r.to_string(), text.clone());
                    let json = serde_json::to_string(&r).unwrap();
                    prop_assert_eq!(&json, &serde_json::to_string(&text).unwrap());
                    prop_assert_eq!(serde_json::from_str::<Reference>(&json).unwrap(), r);
                }
                Err(_) => prop_assert!(!allowed, "{text:?} refused"),
            }
        }

        /// Two references compare as their texts do.
        #[test]
        fn equal_exactly_when_the_texts_are(a in "[a-c]{1,3}", b in "[a-c]{1,3}") {
            let (x, y) = (Reference::new(&a).unwrap(), Reference::new(&b).unwrap());
            prop_assert_eq!(x == y, a == b);
            prop_assert_eq!(x.cmp(&y), a.cmp(&b));
        }
    }
}
