//! Import of LiteLLM's `model_prices_and_context_window.json`.
//!
//! Every number is read from its JSON text, never through a float:
//! `2.9999900000000002e-06` is kept exactly as written. Entries that are not models
//! (`sample_spec`, rule tables) are skipped and listed; every key of a model that is neither
//! a known price nor known metadata is reported, and in strict mode is an error.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::quote::normalize_size;
use crate::spec::{
    Comparison, ContextTier, ModelSpec, PriceVersion, RateCard, ServiceTierPrices, TierRule, VariantPrice,
};
use crate::{Component, Mode, PriceBook, PricingError, ServiceTier};

/// How to import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImportOptions {
    /// Refuse keys that are not understood instead of reporting them.
    pub strict: bool,
    /// When the imported prices take effect (the catalog has no dates).
    pub valid_from: DateTime<Utc>,
}

impl Default for ImportOptions {
    /// Lenient, with prices in force since 1970-01-01.
    fn default() -> ImportOptions {
        ImportOptions {
            strict: false,
            valid_from: DateTime::<Utc>::UNIX_EPOCH,
        }
    }
}

/// What an import did not take as a price.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Models imported.
    pub models: usize,
    /// Image-size variants attached to a base model (`"hd/1024-x-1024/dall-e-3"` to
    /// `"dall-e-3"`).
    pub variants_attached: usize,
    /// Top-level entries skipped as not models, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Keys not understood, as (model, key).
    pub unknown_keys: Vec<(String, String)>,
}

/// Imports a catalog into a price book with the default credit rate and rounding.
///
/// # Errors
///
/// [`PricingError::InvalidBook`] for text that is not a JSON object;
/// [`PricingError::InvalidPrice`] for a price that is not a number or is negative;
/// [`PricingError::UnknownKeys`] in strict mode; the errors of [`PriceBook::new`].
///
/// # Example
///
/// ```
/// use paygo_pricing::litellm::{import, ImportOptions};
///
/// let (book, report) = import(r#"{
///   "sample_spec": {"input_cost_per_token": 0.0},
///   "gpt-4o": {"litellm_provider": "openai", "mode": "chat",
///              "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
///              "input_cost_per_token_batches": 1.25e-06, "supports_vision": true,
///              "some_new_cost_per_thing": 0.5}
/// }"#, &ImportOptions::default())?;
/// assert_eq!(book.len(), 1);
/// assert_eq!(report.skipped[0].0, "sample_spec");
/// assert_eq!(report.unknown_keys, [("gpt-4o".to_string(), "some_new_cost_per_thing".to_string())]);
/// # Ok::<(), paygo_pricing::PricingError>(())
/// ```
pub fn import(json: &str, options: &ImportOptions) -> Result<(PriceBook, ImportReport), PricingError> {
    let (specs, report) = import_specs(json, options)?;
    Ok((PriceBook::new(specs)?, report))
}

/// Imports a catalog into model specs (to adjust them before building a book).
///
/// # Errors
///
/// As [`import`], except the book-building errors.
pub fn import_specs(json: &str, options: &ImportOptions) -> Result<(Vec<ModelSpec>, ImportReport), PricingError> {
    let entries: BTreeMap<String, &RawValue> = serde_json::from_str(json).map_err(|e| PricingError::InvalidBook {
        reason: format!("catalog: {e}"),
    })?;
    let mut report = ImportReport::default();
    let mut specs: Vec<ModelSpec> = Vec::with_capacity(entries.len());
    let mut sized: Vec<(SizedKey, Decimal)> = Vec::new();
    for (key, raw) in &entries {
        if key == "sample_spec" {
            report
                .skipped
                .push((key.clone(), "documentation of the format, not a model".to_owned()));
            continue;
        }
        let Ok(fields) = serde_json::from_str::<BTreeMap<String, &RawValue>>(raw.get()) else {
            report.skipped.push((key.clone(), "not an object".to_owned()));
            continue;
        };
        let Some(provider) = fields.get("litellm_provider") else {
            report
                .skipped
                .push((key.clone(), "no litellm_provider: not a model".to_owned()));
            continue;
        };
        let provider: String = serde_json::from_str(provider.get()).map_err(|_| PricingError::InvalidBook {
            reason: format!("model {key:?}: litellm_provider is not a string"),
        })?;
        let mode = fields
            .get("mode")
            .and_then(|m| serde_json::from_str::<String>(m.get()).ok())
            .map_or_else(|| Mode::Other("unspecified".to_owned()), |m| Mode::from_name(&m));
        let version = import_prices(key, &fields, options, &mut report)?;
        if let Some(sized_key) = SizedKey::parse(key)
            && let Some(price) = sized_key.price_per_image(&version)
        {
            sized.push((sized_key, price));
        }
        let comparison = if provider == "xai" {
            Comparison::AtLeast
        } else {
            Comparison::Above
        };
        specs.push(ModelSpec {
            id: key.clone(),
            aliases: Vec::new(),
            provider,
            mode,
            tier_rule: TierRule {
                comparison,
                ..TierRule::default()
            },
            markup: None,
            versions: vec![version],
        });
    }
    // Attach "[quality/]WxH/model" entries to "model" as priced image variants.
    let positions: HashMap<String, usize> = specs.iter().enumerate().map(|(i, s)| (s.id.clone(), i)).collect();
    for (sized_key, price) in sized {
        if let Some(&i) = positions.get(&sized_key.base) {
            let variant = match &sized_key.quality {
                Some(q) => format!("{}/{q}", sized_key.size),
                None => sized_key.size.clone(),
            };
            let version = &mut specs[i].versions[0];
            if !version
                .variants
                .iter()
                .any(|v| v.component == Component::OutputImage && v.variant == variant)
            {
                version.variants.push(VariantPrice {
                    component: Component::OutputImage,
                    variant,
                    usd_per_unit: price,
                });
                report.variants_attached += 1;
            }
        }
    }
    if options.strict && !report.unknown_keys.is_empty() {
        let (model, key) = &report.unknown_keys[0];
        return Err(PricingError::UnknownKeys {
            count: report.unknown_keys.len(),
            first: format!("{model}: {key}"),
        });
    }
    report.models = specs.len();
    Ok((specs, report))
}

/// A catalog key of the form `[quality/]WxH/model` (an image size, with a quality).
struct SizedKey {
    quality: Option<String>,
    size: String,
    base: String,
}

impl SizedKey {
    fn parse(key: &str) -> Option<SizedKey> {
        let is_size = |s: &str| {
            let mut parts = s.split("-x-");
            matches!((parts.next(), parts.next(), parts.next()), (Some(w), Some(h), None)
                if !w.is_empty() && !h.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) && h.bytes().all(|b| b.is_ascii_digit()))
        };
        let mut parts = key.splitn(3, '/');
        let first = parts.next()?;
        let second = parts.next()?;
        if is_size(first) {
            let rest = parts
                .next()
                .map_or_else(|| second.to_owned(), |r| format!("{second}/{r}"));
            return Some(SizedKey {
                quality: None,
                size: normalize_size(first),
                base: rest,
            });
        }
        let third = parts.next()?;
        if first.bytes().all(|b| b.is_ascii_lowercase()) && is_size(second) {
            return Some(SizedKey {
                quality: Some(first.to_owned()),
                size: normalize_size(second),
                base: third.to_owned(),
            });
        }
        None
    }

    /// The price of one image of this size: the entry's per-image price, or its per-pixel
    /// price times the pixels (LiteLLM's own formula for these entries).
    fn price_per_image(&self, version: &PriceVersion) -> Option<Decimal> {
        if let Some(p) = version
            .prices
            .get(Component::OutputImage)
            .or(version.prices.get(Component::InputImage))
        {
            return Some(p);
        }
        let per_pixel = version.prices.get(Component::InputPixel)?;
        let (w, h) = self.size.split_once('x')?;
        let pixels = w.parse::<u64>().ok()?.checked_mul(h.parse::<u64>().ok()?)?;
        paygo_credits::decimal::checked_mul(per_pixel, Decimal::from(pixels)).ok()
    }
}

/// Keys of a model entry that are metadata, not prices.
fn is_metadata(key: &str) -> bool {
    const EXACT: [&str; 22] = [
        "litellm_provider",
        "mode",
        "source",
        "deprecation_date",
        "output_vector_size",
        "rpm",
        "tpm",
        "metadata",
        "comment",
        "prompt_cache_min_tokens",
        "web_search_billing_unit",
        "tool_use_system_prompt_tokens",
        "provider_specific_entry",
        "use_openai_responses_path",
        "gemini_native_audio",
        "gemini_audio_only_live",
        "uses_embed_content",
        "audio_transcription_config",
        "display_name",
        "model_vendor",
        "model_version",
        "rules",
    ];
    const PREFIXES: [&str; 4] = ["supports_", "supported_", "max_", "bedrock_"];
    EXACT.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p))
}

/// A price key's parts: component, context threshold and service tier.
fn parse_price_key(key: &str) -> Option<(Component, Option<u64>, ServiceTier)> {
    let mut rest = key;
    let mut threshold = None;
    let mut tier = ServiceTier::Standard;
    // The tier suffix and the threshold suffix come in either order.
    for _ in 0..2 {
        if tier == ServiceTier::Standard {
            for (suffix, t) in [
                ("_batches", ServiceTier::Batch),
                ("_priority", ServiceTier::Priority),
                ("_flex", ServiceTier::Flex),
            ] {
                if let Some(stripped) = rest.strip_suffix(suffix) {
                    rest = stripped;
                    tier = t;
                    break;
                }
            }
        }
        if threshold.is_none()
            && let Some(stripped) = rest.strip_suffix("_tokens")
            && let Some((head, number)) = stripped.rsplit_once("_above_")
        {
            let (digits, scale) = match number.strip_suffix('k') {
                Some(d) => (d, 1000),
                None => (number, 1),
            };
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                threshold = Some(digits.parse::<u64>().ok()?.checked_mul(scale)?);
                rest = head;
            }
        }
    }
    let component = match rest {
        "input_cost_per_token" => Component::InputToken,
        "output_cost_per_token" => Component::OutputToken,
        "cache_read_input_token_cost" | "input_cost_per_token_cache_hit" => Component::CacheReadToken,
        "cache_creation_input_token_cost" => Component::CacheWriteToken,
        "cache_creation_input_token_cost_above_1hr" => Component::CacheWrite1hToken,
        "input_cost_per_audio_token" => Component::InputAudioToken,
        "output_cost_per_audio_token" => Component::OutputAudioToken,
        "input_cost_per_image_token" => Component::InputImageToken,
        "output_cost_per_image_token" => Component::OutputImageToken,
        "output_cost_per_reasoning_token" => Component::ReasoningToken,
        "input_cost_per_image" => Component::InputImage,
        "output_cost_per_image" => Component::OutputImage,
        "input_cost_per_pixel" => Component::InputPixel,
        "output_cost_per_pixel" => Component::OutputPixel,
        "input_cost_per_second" => Component::InputSecond,
        "output_cost_per_second" => Component::OutputSecond,
        "input_cost_per_audio_per_second" => Component::InputAudioSecond,
        "input_cost_per_video_per_second" => Component::InputVideoSecond,
        "output_cost_per_video_per_second" => Component::OutputVideoSecond,
        "input_cost_per_character" => Component::InputCharacter,
        "output_cost_per_character" => Component::OutputCharacter,
        "input_cost_per_request" => Component::Request,
        "input_cost_per_query" => Component::Query,
        "ocr_cost_per_page" => Component::Page,
        "annotation_cost_per_page" => Component::AnnotationPage,
        _ => return None,
    };
    Some((component, threshold, tier))
}

fn number(model: &str, key: &str, raw: &RawValue) -> Result<Decimal, PricingError> {
    let text = raw.get();
    let invalid = |reason: String| PricingError::InvalidPrice {
        model: model.to_owned(),
        key: key.to_owned(),
        reason,
    };
    if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Err(invalid(format!("{} given, expected a number", clip(text))));
    }
    paygo_credits::decimal::parse_scientific(text).map_err(|e| invalid(e.to_string()))
}

fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

#[derive(Default)]
struct TierCards {
    base: RateCard,
    above: BTreeMap<u64, RateCard>,
}

fn import_prices(
    model: &str,
    fields: &BTreeMap<String, &RawValue>,
    options: &ImportOptions,
    report: &mut ImportReport,
) -> Result<PriceVersion, PricingError> {
    let mut tiers: BTreeMap<ServiceTier, TierCards> = BTreeMap::new();
    let mut variants: Vec<VariantPrice> = Vec::new();
    for (key, raw) in fields {
        if is_metadata(key) {
            continue;
        }
        if let Some((component, threshold, tier)) = parse_price_key(key) {
            let price = number(model, key, raw)?;
            let cards = tiers.entry(tier).or_default();
            match threshold {
                None => cards.base.insert(component, price),
                Some(t) => cards.above.entry(t).or_default().insert(component, price),
            };
        } else if key == "output_cost_per_second_1080p" {
            let price = number(model, key, raw)?;
            variants.push(VariantPrice {
                component: Component::OutputSecond,
                variant: "1080p".to_owned(),
                usd_per_unit: price,
            });
        } else if key == "search_context_cost_per_query" {
            let sizes: BTreeMap<String, &RawValue> =
                serde_json::from_str(raw.get()).map_err(|_| PricingError::InvalidPrice {
                    model: model.to_owned(),
                    key: key.clone(),
                    reason: "expected an object of search_context_size_<size>: price".to_owned(),
                })?;
            for (size_key, price) in sizes {
                match size_key.strip_prefix("search_context_size_") {
                    Some(size) => variants.push(VariantPrice {
                        component: Component::WebSearch,
                        variant: size.to_owned(),
                        usd_per_unit: number(model, &format!("{key}.{size_key}"), price)?,
                    }),
                    None => report
                        .unknown_keys
                        .push((model.to_owned(), format!("{key}.{size_key}"))),
                }
            }
        } else if key == "tiered_pricing" {
            import_tiered(model, raw, tiers.entry(ServiceTier::Standard).or_default(), report)?;
        } else {
            report.unknown_keys.push((model.to_owned(), key.clone()));
        }
    }
    let standard = tiers.remove(&ServiceTier::Standard).unwrap_or_default();
    let to_context = |above: BTreeMap<u64, RateCard>| -> Vec<ContextTier> {
        above
            .into_iter()
            .map(|(above_tokens, prices)| ContextTier { above_tokens, prices })
            .collect()
    };
    Ok(PriceVersion {
        valid_from: options.valid_from,
        prices: standard.base,
        context_tiers: to_context(standard.above),
        service_tiers: tiers
            .into_iter()
            .map(|(tier, cards)| {
                (
                    tier,
                    ServiceTierPrices {
                        prices: cards.base,
                        context_tiers: to_context(cards.above),
                    },
                )
            })
            .collect(),
        variants,
    })
}

/// `tiered_pricing`: a list of `{"range": [start, end], <price keys>}`; a request whose
/// prompt is above `start` (and at most `end`) is priced at that entry, so each entry with
/// a positive start is a context tier above `start`.
fn import_tiered(
    model: &str,
    raw: &RawValue,
    cards: &mut TierCards,
    report: &mut ImportReport,
) -> Result<(), PricingError> {
    let invalid = |reason: &str| PricingError::InvalidPrice {
        model: model.to_owned(),
        key: "tiered_pricing".to_owned(),
        reason: reason.to_owned(),
    };
    let entries: Vec<BTreeMap<String, &RawValue>> =
        serde_json::from_str(raw.get()).map_err(|_| invalid("expected a list of objects"))?;
    // Tiers by something other than the prompt's tokens (search results, ...) are not
    // context tiers: report them rather than misprice.
    if let Some(other) = entries
        .iter()
        .find_map(|e| (!e.contains_key("range")).then(|| e.keys().find(|k| k.ends_with("_range"))))
    {
        let what = other.map_or_else(
            || "tiered_pricing (an entry without range)".to_owned(),
            |k| format!("tiered_pricing.{k}"),
        );
        report.unknown_keys.push((model.to_owned(), what));
        return Ok(());
    }
    for entry in entries {
        let range = entry.get("range").ok_or_else(|| invalid("an entry has no range"))?;
        let bounds: Vec<&RawValue> = serde_json::from_str(range.get()).map_err(|_| invalid("range is not a list"))?;
        let start = bounds.first().ok_or_else(|| invalid("range is empty"))?;
        let start = number(model, "tiered_pricing.range", start)?;
        let start = u64::try_from(start.trunc().mantissa() / 10i128.pow(start.trunc().scale()))
            .map_err(|_| invalid("range start is negative"))?;
        let card = if start == 0 {
            &mut cards.base
        } else {
            cards.above.entry(start).or_default()
        };
        for (key, value) in &entry {
            if key == "range" {
                continue;
            }
            match parse_price_key(key) {
                Some((component, None, ServiceTier::Standard)) => {
                    card.insert(component, number(model, &format!("tiered_pricing.{key}"), value)?);
                }
                _ => report
                    .unknown_keys
                    .push((model.to_owned(), format!("tiered_pricing.{key}"))),
            }
        }
    }
    Ok(())
}
