//! paygo's own price-book file format (JSON), documented in `docs/pricing.md`.

use serde::{Deserialize, Serialize};

use crate::spec::{Markup, ModelSpec};
use crate::{PriceBook, PricingError};

/// The format tag every paygo price-book file starts with.
pub const PRICE_BOOK_FORMAT: &str = "paygo-prices/1";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BookFile {
    format: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    markup: Option<Markup>,
    models: Vec<ModelSpec>,
}

impl PriceBook {
    /// Loads a book from paygo's JSON format (`docs/pricing.md`): prices are decimal
    /// strings, read exactly.
    ///
    /// # Errors
    ///
    /// [`PricingError::InvalidBook`] for a file of another shape or format tag (with the
    /// line and column of the problem), and every error of [`PriceBook::new`].
    pub fn from_json(text: &str) -> Result<PriceBook, PricingError> {
        let file: BookFile =
            serde_json::from_str(text).map_err(|e| PricingError::InvalidBook { reason: e.to_string() })?;
        if file.format != PRICE_BOOK_FORMAT {
            return Err(PricingError::InvalidBook {
                reason: format!("format {:?} given, expected {PRICE_BOOK_FORMAT:?}", file.format),
            });
        }
        PriceBook::new(file.models)?.with_markup(file.markup)
    }

    /// Writes the book in paygo's JSON format, pretty-printed; [`PriceBook::from_json`]
    /// reads it back to an equal book.
    pub fn to_json(&self) -> String {
        let file = BookFile {
            format: PRICE_BOOK_FORMAT.to_owned(),
            markup: self.markup,
            models: self.specs.clone(),
        };
        // Serializing plain structs, maps with string keys and strings cannot fail.
        serde_json::to_string_pretty(&file).unwrap_or_default()
    }
}
