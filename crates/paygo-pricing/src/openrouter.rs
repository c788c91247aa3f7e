//! Import of `OpenRouter`'s model list (the `/api/v1/models` response).
//!
//! ```json
//! {"data": [{"id": "openai/gpt-4o", "context_length": 128000,
//!            "architecture": {"modality": "text+image->text"},
//!            "pricing": {"prompt": "0.0000025", "completion": "0.00001", "request": "0",
//!                        "image": "0.003613", "web_search": "0", "internal_reasoning": "0",
//!                        "input_cache_read": "0.00000125", "input_cache_write": "0"},
//!            "top_provider": {"context_length": 128000, "max_completion_tokens": 16384}}]}
//! ```
//!
//! Prices are decimal strings in USD per token (or per unit), read exactly. The mapping:
//! `prompt` → `input_token`, `completion` → `output_token`, `input_cache_read` →
//! `cache_read_token`, `input_cache_write` → `cache_write_token`, `internal_reasoning` →
//! `reasoning_token`, `audio` → `input_audio_token`, `image` → `input_image` (per input
//! image), `request` → `request`, `web_search` → `web_search`. A price of `"0"` is a free
//! unit, as the list says, except `internal_reasoning: "0"`, which means reasoning is
//! billed as completion tokens (the output price applies); a key given twice is an error; a negative price (`"-1"`, `OpenRouter`'s "varies" for routers) is
//! not a price: the model is skipped and reported. Other pricing keys are reported as not
//! understood (an error in strict mode). The provider is the id's prefix (`openai`).

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;

use crate::litellm::{ImportOptions, ImportReport, KeyNote};
use crate::spec::{ModelSpec, PriceVersion, RateCard, TierRule};
use crate::{Component, Mode, PriceBook, PricingError};

#[derive(Deserialize)]
struct ModelList {
    data: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    id: String,
    #[serde(default, deserialize_with = "crate::spec::unique_map_option")]
    pricing: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    architecture: Option<Architecture>,
}

#[derive(Deserialize)]
struct Architecture {
    #[serde(default)]
    modality: Option<String>,
    #[serde(default)]
    output_modalities: Option<Vec<String>>,
}

fn component(key: &str) -> Option<Component> {
    Some(match key {
        "prompt" => Component::InputToken,
        "completion" => Component::OutputToken,
        "input_cache_read" => Component::CacheReadToken,
        "input_cache_write" => Component::CacheWriteToken,
        "internal_reasoning" => Component::ReasoningToken,
        "audio" => Component::InputAudioToken,
        "image" => Component::InputImage,
        "request" => Component::Request,
        "web_search" => Component::WebSearch,
        _ => return None,
    })
}

/// Imports an `OpenRouter` model list into a price book with the default credit rate.
///
/// # Example
///
/// ```
/// use paygo_pricing::litellm::ImportOptions;
/// use paygo_pricing::{openrouter, QuoteRequest, Usage};
///
/// let (book, _report) = openrouter::import(r#"{"data": [{"id": "openai/gpt-4o",
///     "pricing": {"prompt": "0.0000025", "completion": "0.00001", "request": "0"}}]}"#,
///     &ImportOptions::default())?;
/// let quote = book.quote(&QuoteRequest::new("openai/gpt-4o", &Usage::tokens(1000, 200), chrono::DateTime::UNIX_EPOCH))?;
/// assert_eq!(quote.credits.get(), 9_000);
/// # Ok::<(), paygo_pricing::PricingError>(())
/// ```
///
/// # Errors
///
/// [`PricingError::InvalidBook`] for text that is not an `OpenRouter` model list (saying
/// which format it looks like) or a model listed twice; [`PricingError::InvalidPrice`] for
/// a price that is not a decimal string; [`PricingError::UnknownKeys`] in strict mode; the
/// errors of [`PriceBook::new`].
pub fn import(json: &str, options: &ImportOptions) -> Result<(PriceBook, ImportReport), PricingError> {
    let list: ModelList = serde_json::from_str(json).map_err(|e| {
        let looks = crate::litellm::detect_format(json).unwrap_or("not JSON");
        PricingError::InvalidBook {
            reason: format!("not an `OpenRouter` model list (it looks like {looks}): {e}"),
        }
    })?;
    let mut report = ImportReport::default();
    let mut specs = Vec::with_capacity(list.data.len());
    'models: for entry in list.data {
        let Some(pricing) = entry.pricing else {
            report.skipped.push((entry.id, "no pricing".to_owned()));
            continue;
        };
        let mut prices = RateCard::new();
        for (key, value) in &pricing {
            let Some(c) = component(key) else {
                report.unknown_keys.push(KeyNote {
                    model: entry.id.clone(),
                    key: format!("pricing.{key}"),
                    reason: "not a price key of OpenRouter's list that paygo knows".to_owned(),
                });
                continue;
            };
            let invalid = |reason: String| PricingError::InvalidPrice {
                model: entry.id.clone(),
                key: format!("pricing.{key}"),
                reason,
            };
            let text = value
                .as_str()
                .ok_or_else(|| invalid(format!("{value} given, expected a decimal string")))?;
            let price: Decimal = paygo_credits::decimal::parse_scientific(text).map_err(|e| invalid(e.to_string()))?;
            // OpenRouter lists "0" for internal reasoning when reasoning is billed as
            // completion tokens: no price of its own, so the output price applies.
            if c == Component::ReasoningToken && price.is_zero() {
                continue;
            }
            if price.is_sign_negative() && !price.is_zero() {
                report.skipped.push((
                    entry.id.clone(),
                    format!("pricing.{key} is {text}: a price that varies by route, not a price"),
                ));
                continue 'models;
            }
            prices.insert(c, price);
        }
        let makes_images = entry.architecture.as_ref().is_some_and(|a| {
            a.output_modalities
                .as_ref()
                .is_some_and(|m| m.iter().any(|x| x == "image"))
                || a.modality
                    .as_deref()
                    .and_then(|m| m.split_once("->"))
                    .is_some_and(|(_, out)| out.contains("image"))
        });
        let provider = entry.id.split_once('/').map_or("openrouter", |(p, _)| p).to_owned();
        specs.push(ModelSpec {
            id: entry.id,
            aliases: Vec::new(),
            provider,
            mode: if makes_images {
                Mode::ImageGeneration
            } else {
                Mode::Chat
            },
            tier_rule: TierRule::default(),
            markup: None,
            max_output_tokens: None,
            versions: vec![PriceVersion::new(options.valid_from, prices)],
        });
    }
    if options.strict
        && let Some(first) = report.unknown_keys.first()
    {
        return Err(PricingError::UnknownKeys {
            count: report.unknown_keys.len(),
            first: first.to_string(),
        });
    }
    report.models = specs.len();
    Ok((PriceBook::new(specs)?, report))
}
