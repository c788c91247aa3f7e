//! Series, document numbers and document ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::InvoiceError;
use paygo_credits::clip;

/// The longest series name.
pub const SERIES_NAME_MAX_LEN: usize = 32;

/// The longest document id.
pub const DOCUMENT_ID_MAX_LEN: usize = 64;

/// The largest sequence number a series hands out (twelve digits).
pub const SEQUENCE_MAX: u64 = 999_999_999_999;

/// What a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    /// An invoice.
    Invoice,
    /// A credit note: a document that corrects an invoice and names it (Article 219).
    CreditNote,
}

impl DocumentKind {
    /// `"invoice"` or `"credit note"`.
    pub const fn name(self) -> &'static str {
        match self {
            DocumentKind::Invoice => "invoice",
            DocumentKind::CreditNote => "credit note",
        }
    }
}

/// The name of a numbering series: `INV-2026`, `CN-2026`.
///
/// 1 to [`SERIES_NAME_MAX_LEN`] characters of `A-Z`, `0-9`, `-`, `_` and `/`, starting with
/// a letter or a digit. Serializes as the name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesName(String);

impl SeriesName {
    /// Validates a series name.
    ///
    /// # Errors
    ///
    /// [`InvoiceError::InvalidSeriesName`] for an empty or too long name or another
    /// character.
    pub fn new(name: &str) -> Result<SeriesName, InvoiceError> {
        let reason = if name.is_empty() {
            Some("expected at least one character")
        } else if name.len() > SERIES_NAME_MAX_LEN {
            Some("expected at most 32 characters")
        } else if !name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'/'))
        {
            Some("expected only A-Z, 0-9, '-', '_' and '/'")
        } else if !name.as_bytes()[0].is_ascii_alphanumeric() {
            Some("expected a letter or a digit first")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(InvoiceError::InvalidSeriesName {
                input: clip(name),
                reason,
            }),
            None => Ok(SeriesName(name.to_owned())),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SeriesName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SeriesName {
    type Err = InvoiceError;

    /// As [`SeriesName::new`].
    fn from_str(text: &str) -> Result<SeriesName, InvoiceError> {
        SeriesName::new(text)
    }
}

impl Serialize for SeriesName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SeriesName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        SeriesName::new(&text).map_err(serde::de::Error::custom)
    }
}

/// A numbering series: its name, what it numbers, and how many digits its numbers show.
///
/// ```
/// use paygo_invoice::{DocumentKind, Series};
///
/// let series = Series::new("INV-2026", DocumentKind::Invoice, 6)?;
/// assert_eq!(series.number(42)?.to_string(), "INV-2026-000042");
/// # Ok::<(), paygo_invoice::InvoiceError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Series {
    name: SeriesName,
    kind: DocumentKind,
    digits: u8,
}

impl Series {
    /// A series named `name` numbering documents of `kind`, zero-padded to `digits` digits.
    ///
    /// # Errors
    ///
    /// [`InvoiceError::InvalidSeriesName`]; [`InvoiceError::InvalidSeries`] for `digits`
    /// outside 1 to 12.
    pub fn new(name: &str, kind: DocumentKind, digits: u8) -> Result<Series, InvoiceError> {
        if !(1..=12).contains(&digits) {
            return Err(InvoiceError::InvalidSeries {
                reason: format!("{digits} digits: expected 1 to 12"),
            });
        }
        Ok(Series {
            name: SeriesName::new(name)?,
            kind,
            digits,
        })
    }

    /// The name.
    pub fn name(&self) -> &SeriesName {
        &self.name
    }

    /// What the series numbers.
    pub const fn kind(&self) -> DocumentKind {
        self.kind
    }

    /// The number of digits shown.
    pub const fn digits(&self) -> u8 {
        self.digits
    }

    /// The document number of sequence number `sequence` (1 is the first).
    ///
    /// # Errors
    ///
    /// [`InvoiceError::Overflow`] for 0 or a sequence above [`SEQUENCE_MAX`].
    pub fn number(&self, sequence: u64) -> Result<DocumentNumber, InvoiceError> {
        if sequence == 0 || sequence > SEQUENCE_MAX {
            return Err(InvoiceError::Overflow {
                operation: "document number",
            });
        }
        Ok(DocumentNumber {
            series: self.name.clone(),
            sequence,
            digits: self.digits,
        })
    }
}

/// A document's number: a series and a sequence number, written `INV-2026-000001`.
///
/// Serializes as that text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocumentNumber {
    series: SeriesName,
    sequence: u64,
    digits: u8,
}

impl DocumentNumber {
    /// The series.
    pub fn series(&self) -> &SeriesName {
        &self.series
    }

    /// The sequence number within the series (1 is the first).
    pub const fn sequence(&self) -> u64 {
        self.sequence
    }
}

impl fmt::Display for DocumentNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{:0width$}",
            self.series,
            self.sequence,
            width = usize::from(self.digits)
        )
    }
}

impl FromStr for DocumentNumber {
    type Err = InvoiceError;

    /// Parses `SERIES-digits`: the series is everything before the last dash.
    ///
    /// # Errors
    ///
    /// [`InvoiceError::InvalidNumber`] for another shape.
    fn from_str(text: &str) -> Result<DocumentNumber, InvoiceError> {
        let invalid = || InvoiceError::InvalidNumber { input: clip(text) };
        let (series, digits) = text.rsplit_once('-').ok_or_else(invalid)?;
        if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let sequence: u64 = digits.parse().map_err(|_| invalid())?;
        let series = SeriesName::new(series).map_err(|_| invalid())?;
        if sequence == 0 {
            return Err(invalid());
        }
        Ok(DocumentNumber {
            series,
            sequence,
            digits: u8::try_from(digits.len()).map_err(|_| invalid())?,
        })
    }
}

impl Serialize for DocumentNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DocumentNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The caller's id of a document (a draft and the document issued from it): the key that
/// makes issuing idempotent, such as the payment id of a top-up.
///
/// 1 to [`DOCUMENT_ID_MAX_LEN`] printable ASCII characters, no spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocumentId(String);

impl DocumentId {
    /// Validates an id.
    ///
    /// # Errors
    ///
    /// [`InvoiceError::InvalidDocumentId`] for an empty or too long id or a character that
    /// is not printable ASCII.
    pub fn new(id: &str) -> Result<DocumentId, InvoiceError> {
        let reason = if id.is_empty() {
            Some("expected at least one character")
        } else if id.len() > DOCUMENT_ID_MAX_LEN {
            Some("expected at most 64 characters")
        } else if !id.bytes().all(|b| b.is_ascii_graphic()) {
            Some("expected printable ASCII without spaces")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(InvoiceError::InvalidDocumentId {
                input: clip(id),
                reason,
            }),
            None => Ok(DocumentId(id.to_owned())),
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DocumentId {
    type Err = InvoiceError;

    /// As [`DocumentId::new`].
    fn from_str(text: &str) -> Result<DocumentId, InvoiceError> {
        DocumentId::new(text)
    }
}

impl Serialize for DocumentId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DocumentId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        DocumentId::new(&text).map_err(serde::de::Error::custom)
    }
}
