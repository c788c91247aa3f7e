//! Import of LiteLLM's `model_prices_and_context_window.json`.
//!
//! Every number is read from its JSON text, never through a float:
//! `2.9999900000000002e-06` is kept exactly as written. Price keys are read by their
//! grammar ([`PriceKey`]): a unit, then context tiers, cache lifetimes, variants and
//! service tiers in any combination, so that a combination the catalog adds later is
//! understood without a code change. Entries that are not models (`sample_spec`, rule
//! tables) are skipped and listed; keys that are understood but deliberately not applied
//! (deployment surcharges, Databricks DBUs) are listed with the reason; every other key
//! that is not a price or known metadata is reported with the reason, and in strict mode is
//! an error, as is an implausible price. A key given twice, in a model or at the top, is
//! always an error: the usual JSON reading would keep the last value silently.

mod grammar;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use chrono::{DateTime, FixedOffset, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

pub use grammar::{KeyError, PriceKey};

use crate::quote::normalize_size;
use crate::spec::{
    Comparison, ContextTier, HourRange, ModelSpec, PriceVersion, PriceWindow, RateCard, ServiceTierPrices, TierRule,
    VariantPrice, WindowRule,
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

/// A key of a model that the import reports: the model, the key and why.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct KeyNote {
    /// The model's id.
    pub model: String,
    /// The key (`tiered_pricing.max_results_range` for a key inside a structure).
    pub key: String,
    /// Why it is reported.
    pub reason: String,
}

impl fmt::Display for KeyNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.model, self.key, self.reason)
    }
}

/// What an import did not take as a price, and what it doubts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Models imported.
    pub models: usize,
    /// `alias_of` entries attached to their target as aliases.
    pub aliases: usize,
    /// Image-size variants attached to a base model (`"hd/1024-x-1024/dall-e-3"` to
    /// `"dall-e-3"`).
    pub variants_attached: usize,
    /// Top-level entries skipped as not models, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Keys not understood, with the reason (an error in strict mode).
    pub unknown_keys: Vec<KeyNote>,
    /// Keys understood and deliberately not applied, with the reason (documented in
    /// `docs/pricing.md`; not an error in strict mode).
    pub not_applied: Vec<KeyNote>,
    /// Prices that are implausible for their unit (an error in strict mode).
    pub warnings: Vec<KeyNote>,
}

/// Imports a catalog into a price book with the default credit rate and rounding.
///
/// # Errors
///
/// [`PricingError::InvalidBook`] for text that is not a LiteLLM catalog (saying which
/// format it looks like), a model or key given twice, or an `alias_of` that names no
/// model; [`PricingError::InvalidPrice`] for a price that is not a number or is negative,
/// and in strict mode for an implausible one; [`PricingError::UnknownKeys`] in strict mode;
/// the errors of [`PriceBook::new`].
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
/// assert_eq!(report.unknown_keys[0].key, "some_new_cost_per_thing");
/// # Ok::<(), paygo_pricing::PricingError>(())
/// ```
pub fn import(json: &str, options: &ImportOptions) -> Result<(PriceBook, ImportReport), PricingError> {
    let (specs, report) = import_specs(json, options)?;
    Ok((PriceBook::new(specs)?, report))
}

/// What a price file looks like, from its first level: for a clear error when a file is
/// given in the wrong format.
///
/// # Errors
///
/// [`PricingError::InvalidBook`] for text that is not JSON.
pub fn detect_format(json: &str) -> Result<&'static str, PricingError> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| PricingError::InvalidBook {
        reason: format!("not JSON: {e}"),
    })?;
    Ok(match &value {
        serde_json::Value::Object(map) => {
            if map
                .get("format")
                .and_then(|f| f.as_str())
                .is_some_and(|f| f.starts_with("paygo-prices"))
            {
                "paygo"
            } else if map.get("data").is_some_and(serde_json::Value::is_array) {
                "openrouter"
            } else if map.values().any(|v| v.get("litellm_provider").is_some()) {
                "litellm"
            } else {
                "unknown object"
            }
        }
        serde_json::Value::Array(_) => "a JSON array",
        _ => "a JSON scalar",
    })
}

/// A format name of [`detect_format`] in a sentence.
fn describe(looks: &str) -> String {
    match looks {
        "paygo" => "a paygo price book (use the paygo format)".to_owned(),
        "openrouter" => "an OpenRouter model list (use the openrouter format)".to_owned(),
        "litellm" => "a LiteLLM catalog".to_owned(),
        "unknown object" => "an object without model entries".to_owned(),
        other => other.to_owned(),
    }
}

/// An object read with each key once, values kept as raw JSON text (keys borrowed from the
/// text where they have no escapes).
struct Entries<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

/// A key of an [`Entries`] object.
type Key<'a> = Cow<'a, str>;

impl<'de: 'a, 'a> Deserialize<'de> for Entries<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Unique;

        impl<'de> Visitor<'de> for Unique {
            type Value = Entries<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object in which each key appears once")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Entries<'de>, A::Error> {
                let mut entries: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::new();
                while let Some((BorrowedKey(key), value)) = access.next_entry::<BorrowedKey<'de>, &'de RawValue>()? {
                    entries.push((key, value));
                }
                let mut names: Vec<&str> = entries.iter().map(|(k, _)| k.as_ref()).collect();
                names.sort_unstable();
                if let Some(twice) = names.windows(2).find_map(|p| match p {
                    [a, b] if a == b => Some(*a),
                    _ => None,
                }) {
                    return Err(serde::de::Error::custom(format!(
                        "{twice:?} is given twice, expected each key once"
                    )));
                }
                Ok(Entries(entries))
            }
        }

        deserializer.deserialize_map(Unique)
    }
}

/// A JSON object key, borrowed from the text when it has no escapes.
struct BorrowedKey<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for BorrowedKey<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = BorrowedKey<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<BorrowedKey<'de>, E> {
                Ok(BorrowedKey(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<BorrowedKey<'de>, E> {
                Ok(BorrowedKey(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E>(self, v: String) -> Result<BorrowedKey<'de>, E> {
                Ok(BorrowedKey(Cow::Owned(v)))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Imports a catalog into model specs (to adjust them before building a book).
///
/// # Errors
///
/// As [`import`], except the book-building errors.
pub fn import_specs(json: &str, options: &ImportOptions) -> Result<(Vec<ModelSpec>, ImportReport), PricingError> {
    let entries: Entries<'_> = serde_json::from_str(json).map_err(|e| {
        let reason = match detect_format(json) {
            Ok("litellm") => format!("LiteLLM catalog: {e}"),
            Ok(looks) => format!("not a LiteLLM catalog (it looks like {}): {e}", describe(looks)),
            Err(_) => format!("not a LiteLLM catalog: not JSON: {e}"),
        };
        PricingError::InvalidBook { reason }
    })?;
    let mut entries = entries.0;
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut report = ImportReport::default();
    let mut specs: Vec<ModelSpec> = Vec::with_capacity(entries.len());
    let mut sized: Vec<(SizedKey, Decimal)> = Vec::new();
    let mut aliases: Vec<(String, String)> = Vec::new();
    for (key, raw) in &entries {
        if key == "sample_spec" {
            report
                .skipped
                .push((key.to_string(), "documentation of the format, not a model".to_owned()));
            continue;
        }
        if !raw.get().starts_with('{') {
            report.skipped.push((key.to_string(), "not an object".to_owned()));
            continue;
        }
        let fields: Entries<'_> = serde_json::from_str(raw.get()).map_err(|e| PricingError::InvalidBook {
            reason: format!("model {key:?}: {e}"),
        })?;
        let fields: BTreeMap<Key<'_>, &RawValue> = fields.0.into_iter().collect();
        if let Some(target) = fields.get("alias_of") {
            let target: String = serde_json::from_str(target.get()).map_err(|_| PricingError::InvalidBook {
                reason: format!("model {key:?}: alias_of is not a string, expected the id of another model"),
            })?;
            aliases.push((key.to_string(), target));
            continue;
        }
        let Some(provider) = fields.get("litellm_provider") else {
            report
                .skipped
                .push((key.to_string(), "no litellm_provider: not a model".to_owned()));
            continue;
        };
        let provider: String = serde_json::from_str(provider.get()).map_err(|_| PricingError::InvalidBook {
            reason: format!("model {key:?}: litellm_provider is not a string"),
        })?;
        let mode = fields
            .get("mode")
            .and_then(|m| serde_json::from_str::<String>(m.get()).ok())
            .map_or_else(|| Mode::Other("unspecified".to_owned()), |m| Mode::from_name(&m));
        let version = import_prices(key, &mode, &fields, options, &mut report)?;
        if let Some(sized_key) = SizedKey::parse(key)
            && let Some(price) = sized_key.price_per_image(&version)
        {
            sized.push((sized_key, price));
        }
        specs.push(ModelSpec {
            id: key.to_string(),
            aliases: Vec::new(),
            tier_rule: tier_rule(&provider),
            provider,
            mode,
            markup: None,
            max_output_tokens: max_output_tokens(key, &fields, &mut report),
            versions: vec![version],
        });
    }
    if specs.is_empty() {
        let looks = detect_format(json).unwrap_or("not JSON");
        return Err(PricingError::InvalidBook {
            reason: format!(
                "no model entries (objects with litellm_provider): not a LiteLLM catalog, it looks like {}",
                describe(looks)
            ),
        });
    }
    attach(&mut specs, aliases, sized, &mut report)?;
    if options.strict {
        if let Some(first) = report.unknown_keys.first() {
            return Err(PricingError::UnknownKeys {
                count: report.unknown_keys.len(),
                first: first.to_string(),
            });
        }
        if let Some(w) = report.warnings.first() {
            return Err(PricingError::InvalidPrice {
                model: w.model.clone(),
                key: w.key.clone(),
                reason: format!("{} (strict mode)", w.reason),
            });
        }
    }
    report.models = specs.len();
    Ok((specs, report))
}

/// Attaches `alias_of` entries to their target as aliases (no chains), and
/// `[quality/]WxH/model` entries to `model` as priced image variants.
fn attach(
    specs: &mut [ModelSpec],
    aliases: Vec<(String, String)>,
    sized: Vec<(SizedKey, Decimal)>,
    report: &mut ImportReport,
) -> Result<(), PricingError> {
    let positions: HashMap<String, usize> = specs.iter().enumerate().map(|(i, s)| (s.id.clone(), i)).collect();
    // `"alias": {"alias_of": "target"}`: another name of the target (no chains).
    for (alias, target) in aliases {
        match positions.get(&target) {
            Some(&i) => {
                specs[i].aliases.push(alias);
                report.aliases += 1;
            }
            None => {
                return Err(PricingError::InvalidBook {
                    reason: format!("model {alias:?}: alias_of {target:?} names no model of the catalog"),
                });
            }
        }
    }
    // Attach "[quality/]WxH/model" entries to "model" as priced image variants.
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
    Ok(())
}

/// A catalog key of the form `[quality/]WxH/model` (an image size, with a quality).
struct SizedKey {
    quality: Option<String>,
    size: String,
    base: String,
}

impl SizedKey {
    /// `[quality/]WxH/model`, or the same behind a provider prefix
    /// (`fal_ai/low/1024-x-768/openai/gpt-image-2` sizes `fal_ai/openai/gpt-image-2`).
    fn parse(key: &str) -> Option<SizedKey> {
        SizedKey::parse_bare(key).or_else(|| {
            let (provider, rest) = key.split_once('/')?;
            let mut inner = SizedKey::parse_bare(rest)?;
            inner.base = format!("{provider}/{}", inner.base);
            Some(inner)
        })
    }

    fn parse_bare(key: &str) -> Option<SizedKey> {
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
        // Image-generation rows have their per-pixel price moved to output_pixel.
        let per_pixel = version
            .prices
            .get(Component::OutputPixel)
            .or(version.prices.get(Component::InputPixel))?;
        let (w, h) = self.size.split_once('x')?;
        let pixels = w.parse::<u64>().ok()?.checked_mul(h.parse::<u64>().ok()?)?;
        paygo_credits::decimal::checked_mul(per_pixel, Decimal::from(pixels)).ok()
    }
}

/// How a provider's context tiers are picked: xAI's threshold is inclusive (`>=`, LiteLLM's
/// `_INCLUSIVE_THRESHOLD_PROVIDERS`), the others' strict (`>`).
fn tier_rule(provider: &str) -> TierRule {
    let comparison = if provider == "xai" {
        Comparison::AtLeast
    } else {
        Comparison::Above
    };
    TierRule {
        comparison,
        ..TierRule::default()
    }
}

/// The entry's `max_output_tokens`, when it is a whole number of tokens above zero; any
/// other value is reported as not applied (the model then has no output maximum, and a
/// request for it must set its own limit).
fn max_output_tokens(model: &str, fields: &BTreeMap<Key<'_>, &RawValue>, report: &mut ImportReport) -> Option<u64> {
    let raw = fields.get("max_output_tokens")?;
    match serde_json::from_str::<u64>(raw.get()) {
        Ok(n) if n > 0 => Some(n),
        _ => {
            report.not_applied.push(note(
                model,
                "max_output_tokens",
                format!(
                    "{} given, expected a whole number of tokens above zero",
                    clip(raw.get())
                ),
            ));
            None
        }
    }
}

/// Keys of a model entry that are metadata, not prices.
fn is_metadata(key: &str) -> bool {
    const EXACT: [&str; 33] = [
        "litellm_provider",
        "mode",
        "source",
        "deprecation_date",
        "deprecation_source",
        "successor_model",
        "output_vector_size",
        "rpm",
        "tpm",
        "metadata",
        "comment",
        "prompt_cache_min_tokens",
        "web_search_billing_unit",
        "tool_use_system_prompt_tokens",
        "use_openai_responses_path",
        "gemini_native_audio",
        "gemini_audio_only_live",
        "uses_embed_content",
        "audio_transcription_config",
        "vertex_ai_audio_api",
        "display_name",
        "model_vendor",
        "model_version",
        "rules",
        "default_reasoning_effort",
        "reasoning_contexts",
        "reasoning_effort_levels",
        "reasoning_modes",
        "thinking_always_on",
        "thinking_on_by_default",
        "aliases",
        "alias_of",
        "key",
    ];
    const PREFIXES: [&str; 5] = ["supports_", "supported_", "max_", "bedrock_", "token_count_"];
    PREFIXES.iter().any(|p| key.starts_with(p)) || EXACT.contains(&key)
}

/// Keys understood and deliberately not applied, with the reason (docs/pricing.md).
fn not_applied(key: &str) -> Option<&'static str> {
    Some(match key {
        "input_dbu_cost_per_token" | "output_dbu_cost_per_token" => {
            "Databricks DBUs: the entry's USD per-token prices are the ones applied"
        }
        "fedramp_uplift_multiplier" => {
            "a surcharge for FedRAMP deployments (LiteLLM applies it only to calls made with data_residency fedramp): a deployment's terms, not a call's"
        }
        "regional_processing_uplift_multiplier_eu" | "regional_processing_uplift_multiplier_us" => {
            "a surcharge for regional data processing (LiteLLM applies it only with a data_residency): a deployment's terms, not a call's"
        }
        "regional_endpoint_uplift_multiplier" => {
            "a surcharge for regional (non-global) endpoints: a deployment's terms, not a call's"
        }
        "provider_specific_entry" => {
            "provider multipliers (Anthropic fast mode, inference geography) and flags: not inputs of a quote"
        }
        "search_free_requests" => {
            "a free search quota shared across calls and models over a period (LiteLLM does not apply it either): every search is billed"
        }
        _ => return None,
    })
}

/// Keys paygo does not read, with the reason (reported as not understood).
fn unsupported(key: &str) -> Option<&'static str> {
    Some(match key {
        "explicit_cache_read_input_token_cost" => {
            "explicit (ephemeral) cache reads: no usage field tells them apart from ordinary cache reads, which are billed at cache_read_input_token_cost"
        }
        "ocr_cost_per_credit" => "provider credits are not a unit of the usage object",
        "guardrail_cost_per_unit" => "guardrail policy units are not a unit of the usage object",
        "computer_use_input_cost_per_1k_tokens"
        | "computer_use_output_cost_per_1k_tokens"
        | "file_search_cost_per_1k_calls"
        | "file_search_cost_per_gb_per_day"
        | "vector_store_cost_per_gb_per_day" => "tool and storage fees are not units of the usage object",
        _ => return None,
    })
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
    paygo_credits::clip(text)
}

/// The service tiers LiteLLM's catalog and cost code name; another tier suffix is imported
/// as a tier of that name, with a warning (a misspelt suffix would otherwise be a new tier).
const KNOWN_TIERS: [&str; 7] = [
    "standard",
    "batch",
    "flex",
    "priority",
    "ultrafast",
    "balanced",
    "decisions",
];

/// The most a plausible price per token (or per character or pixel) is: $0.01, i.e.
/// $10,000 per million. Above it, a per-million price was likely pasted into a per-token
/// field.
const PER_TOKEN_USD_MAX: Decimal = Decimal::from_parts(1, 0, 0, false, 2);

fn plausibility(component: Component, price: Decimal) -> Option<String> {
    let small_unit = component.is_prompt_token()
        || component.is_completion_token()
        || matches!(
            component,
            Component::CitationToken
                | Component::InputCharacter
                | Component::OutputCharacter
                | Component::InputPixel
                | Component::OutputPixel
        );
    (small_unit && price > PER_TOKEN_USD_MAX).then(|| {
        format!(
            "${price} per {} is above ${PER_TOKEN_USD_MAX} ($10,000 per million): a per-million price in a per-unit field?",
            component.name()
        )
    })
}

#[derive(Default)]
struct TierCards {
    base: RateCard,
    above: BTreeMap<u64, RateCard>,
}

/// Everything an import of one model collects before it becomes a [`PriceVersion`].
#[derive(Default)]
struct Collected {
    tiers: BTreeMap<ServiceTier, TierCards>,
    variants: Vec<VariantPrice>,
    windows: Vec<PriceWindow>,
}

fn note(model: &str, key: &str, reason: impl Into<String>) -> KeyNote {
    KeyNote {
        model: model.to_owned(),
        key: key.to_owned(),
        reason: reason.into(),
    }
}

fn import_prices(
    model: &str,
    mode: &Mode,
    fields: &BTreeMap<Key<'_>, &RawValue>,
    options: &ImportOptions,
    report: &mut ImportReport,
) -> Result<PriceVersion, PricingError> {
    let mut got = Collected::default();
    for (key, raw) in fields {
        if is_metadata(key) {
            continue;
        }
        if let Some(reason) = not_applied(key) {
            report.not_applied.push(note(model, key, reason));
            continue;
        }
        if let Some(reason) = unsupported(key) {
            report.unknown_keys.push(note(model, key, reason));
            continue;
        }
        match key.as_ref() {
            "search_context_cost_per_query" => import_search_sizes(model, key, raw, &mut got, report)?,
            "tiered_pricing" => import_tiered(model, raw, got.tiers.entry(ServiceTier::STANDARD).or_default(), report)?,
            "off_peak_pricing" => import_off_peak(model, raw, &mut got, report)?,
            _ => match PriceKey::parse(key) {
                Ok(parsed) => {
                    let price = match number(model, key, raw) {
                        Ok(p) => p,
                        // A number paygo cannot hold exactly (a float with more than 28
                        // decimal places) leaves the unit unpriced, so that its usage is an
                        // error, never $0; strict mode refuses the catalog.
                        Err(PricingError::InvalidPrice { reason, .. })
                            if !options.strict && reason.contains("decimal places") =>
                        {
                            report.unknown_keys.push(note(model, key, reason));
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    if price.is_sign_negative() && !price.is_zero() {
                        return Err(PricingError::InvalidPrice {
                            model: model.to_owned(),
                            key: key.to_string(),
                            reason: format!("{price} is negative, expected a price of zero or more"),
                        });
                    }
                    if let Some(reason) = plausibility(parsed.component, price) {
                        report.warnings.push(note(model, key, reason));
                    }
                    if !KNOWN_TIERS.contains(&parsed.service_tier.name()) {
                        report.warnings.push(note(
                            model,
                            key,
                            format!(
                                "service tier {:?} is not one LiteLLM names ({}): a misspelt suffix?",
                                parsed.service_tier.name(),
                                KNOWN_TIERS.join(", ")
                            ),
                        ));
                    }
                    place(model, key, parsed, price, &mut got, report);
                }
                Err(e) => report.unknown_keys.push(note(model, key, e.0)),
            },
        }
    }
    conventions(mode, &mut got);
    let mut tiers = got.tiers;
    let standard = tiers.remove(&ServiceTier::STANDARD).unwrap_or_default();
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
        variants: got.variants,
        windows: got.windows,
    })
}

/// Puts one parsed price where it belongs.
fn place(model: &str, key: &str, parsed: PriceKey, price: Decimal, got: &mut Collected, report: &mut ImportReport) {
    if let Some(variant) = parsed.variant {
        if parsed.above_tokens.is_some() || !parsed.service_tier.is_standard() {
            report.unknown_keys.push(note(
                model,
                key,
                "a variant price by context or service tier: variants have one price a version",
            ));
            return;
        }
        got.variants.push(VariantPrice {
            component: parsed.component,
            variant,
            usd_per_unit: price,
        });
        return;
    }
    let cards = got.tiers.entry(parsed.service_tier).or_default();
    match parsed.above_tokens {
        None => cards.base.insert(parsed.component, price),
        Some(t) => cards.above.entry(t).or_default().insert(parsed.component, price),
    };
}

/// `"search_context_cost_per_query": {"search_context_size_low": 0.01, ...}`.
fn import_search_sizes(
    model: &str,
    key: &str,
    raw: &RawValue,
    got: &mut Collected,
    report: &mut ImportReport,
) -> Result<(), PricingError> {
    let sizes: Entries<'_> = serde_json::from_str(raw.get()).map_err(|e| PricingError::InvalidPrice {
        model: model.to_owned(),
        key: key.to_owned(),
        reason: format!("expected an object of search_context_size_<size>: price ({e})"),
    })?;
    for (size_key, price) in sizes.0 {
        match size_key.strip_prefix("search_context_size_") {
            Some(size) => got.variants.push(VariantPrice {
                component: Component::WebSearch,
                variant: size.to_owned(),
                usd_per_unit: number(model, &format!("{key}.{size_key}"), price)?,
            }),
            None => report.unknown_keys.push(note(
                model,
                &format!("{key}.{size_key}"),
                "expected search_context_size_<size>",
            )),
        }
    }
    Ok(())
}

/// The provider conventions LiteLLM applies, written into the imported prices so that the
/// book says what it charges (docs/pricing.md, "Conventions of the import").
fn conventions(mode: &Mode, got: &mut Collected) {
    let standard_base = got
        .tiers
        .get(&ServiceTier::STANDARD)
        .map(|t| t.base.clone())
        .unwrap_or_default();
    // Image-generation output tokens priced only per image token: every output token is one.
    if let Some(cards) = got.tiers.get_mut(&ServiceTier::STANDARD) {
        let text_out = cards.base.get(Component::OutputToken);
        if let Some(image_out) = cards.base.get(Component::OutputImageToken)
            && text_out.is_none_or(|p| p.is_zero())
            && !image_out.is_zero()
        {
            cards.base.insert(Component::OutputToken, image_out);
        }
    }
    // Transcription: one duration, the audio's; the output price when it is positive, else
    // the input price (whisper gives both: it is billed once).
    if *mode == Mode::AudioTranscription
        && let Some(cards) = got.tiers.get_mut(&ServiceTier::STANDARD)
    {
        let output = cards.base.remove(Component::OutputSecond);
        if let Some(p) = output
            && !p.is_zero()
        {
            cards.base.insert(Component::InputSecond, p);
        }
    }
    // Image generation priced only per pixel: input_cost_per_pixel is the price of each
    // pixel made (LiteLLM's image cost reads it so; output_cost_per_pixel, often 0.0 in these
    // rows, is not read there).
    if matches!(mode, Mode::ImageGeneration)
        && let Some(cards) = got.tiers.get_mut(&ServiceTier::STANDARD)
        && cards.base.get(Component::OutputImage).is_none()
        && cards.base.get(Component::InputImage).is_none()
        && let Some(p) = cards.base.remove(Component::InputPixel)
    {
        cards.base.insert(Component::OutputPixel, p);
    }
    // Image generation priced only by input_cost_per_image: that is the price of each image
    // made (LiteLLM's reading of these entries).
    if matches!(mode, Mode::ImageGeneration)
        && let Some(cards) = got.tiers.get_mut(&ServiceTier::STANDARD)
        && cards.base.get(Component::OutputImage).is_none()
        && let Some(p) = cards.base.remove(Component::InputImage)
    {
        cards.base.insert(Component::OutputImage, p);
    }
    // Batch: a token price without its own batch price is half the standard one (the
    // provider convention behind every _batches price in the catalog), at the base and at
    // each of the standard tier's context thresholds.
    let standard_above = got
        .tiers
        .get(&ServiceTier::STANDARD)
        .map(|t| t.above.clone())
        .unwrap_or_default();
    if let Some(batch) = got.tiers.get_mut(&ServiceTier::BATCH) {
        let halve = |from: &RateCard, into: &mut RateCard| {
            for (c, p) in from.iter() {
                if (c.is_prompt_token() || c.is_completion_token())
                    && into.get(c).is_none()
                    && let Ok(half) = paygo_credits::decimal::checked_mul(p, Decimal::new(5, 1))
                {
                    into.insert(c, half);
                }
            }
        };
        halve(&standard_base, &mut batch.base);
        for (threshold, card) in &standard_above {
            halve(card, batch.above.entry(*threshold).or_default());
        }
    }
    // Another tier that prices output but not reasoning bills reasoning at its own output
    // price, not at the standard reasoning price.
    if standard_base.get(Component::ReasoningToken).is_some() {
        for (tier, cards) in &mut got.tiers {
            if tier.is_standard() || *tier == ServiceTier::BATCH {
                continue;
            }
            for card in std::iter::once(&mut cards.base).chain(cards.above.values_mut()) {
                if card.get(Component::ReasoningToken).is_none()
                    && let Some(out) = card.get(Component::OutputToken)
                {
                    card.insert(Component::ReasoningToken, out);
                }
            }
        }
    }
}

/// A price key inside a structure (`tiered_pricing`, `off_peak_pricing`), which must be a
/// plain unit price: no context, tier or variant modifier (the structure is the modifier).
fn plain_price(
    model: &str,
    structure: &str,
    key: &str,
    value: &RawValue,
    card: &mut RateCard,
    report: &mut ImportReport,
) -> Result<(), PricingError> {
    let place = format!("{structure}.{key}");
    match PriceKey::parse(key) {
        Ok(PriceKey {
            component,
            above_tokens: None,
            service_tier,
            variant: None,
        }) if service_tier.is_standard() => {
            card.insert(component, number(model, &place, value)?);
        }
        Ok(_) => report.unknown_keys.push(note(
            model,
            &place,
            format!("a context, tier or variant modifier inside {structure}"),
        )),
        Err(e) => report.unknown_keys.push(note(model, &place, e.0)),
    }
    Ok(())
}

/// `tiered_pricing`: a list of `{"range": [start, end], <price keys>}`; a request whose
/// prompt is above `start` (and at most `end`) is priced at that entry, so each entry with
/// a positive start is a context tier above `start`. A tier prices every token of the
/// request: cache reads and writes it does not price are billed at its input price, and
/// reasoning at its output price (LiteLLM's rule for these tables).
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
    let entries: Vec<&RawValue> = serde_json::from_str(raw.get()).map_err(|_| invalid("expected a list of objects"))?;
    let mut parsed: Vec<BTreeMap<Key<'_>, &RawValue>> = Vec::with_capacity(entries.len());
    for entry in entries {
        let fields: Entries<'_> = serde_json::from_str(entry.get()).map_err(|e| invalid(&format!("an entry: {e}")))?;
        parsed.push(fields.0.into_iter().collect());
    }
    // Tiers by something other than the prompt's tokens (search results, ...) are not
    // context tiers: report them rather than misprice.
    if let Some(other) = parsed
        .iter()
        .find_map(|e| (!e.contains_key("range")).then(|| e.keys().find(|k| k.ends_with("_range"))))
    {
        let what = other.map_or_else(
            || "tiered_pricing (an entry without range)".to_owned(),
            |k| format!("tiered_pricing.{k}"),
        );
        report.unknown_keys.push(note(
            model,
            &what,
            "tiers by something other than the prompt's tokens (such as the number of search results): no usage field selects them",
        ));
        return Ok(());
    }
    for entry in parsed {
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
            plain_price(model, "tiered_pricing", key, value, card, report)?;
        }
        if let Some(input) = card.get(Component::InputToken) {
            for c in [Component::CacheReadToken, Component::CacheWriteToken] {
                if card.get(c).is_none() {
                    card.insert(c, input);
                }
            }
        }
        if card.get(Component::ReasoningToken).is_none()
            && let Some(out) = card.get(Component::OutputToken)
        {
            card.insert(Component::ReasoningToken, out);
        }
    }
    Ok(())
}

/// The fixed UTC offset of a time zone without daylight saving time, by IANA name.
fn zone_offset(name: &str) -> Option<FixedOffset> {
    let minutes: i32 = match name {
        "UTC" | "Etc/UTC" | "GMT" | "Etc/GMT" => 0,
        "Asia/Shanghai" | "Asia/Hong_Kong" | "Asia/Taipei" | "Asia/Singapore" | "PRC" => 8 * 60,
        "Asia/Tokyo" | "Asia/Seoul" => 9 * 60,
        "Asia/Kolkata" => 5 * 60 + 30,
        _ => return None,
    };
    FixedOffset::east_opt(minutes * 60)
}

/// ISO weekday from a number 1..=7 or a name (`"mon"`, `"Monday"`).
fn weekday(value: &serde_json::Value) -> Option<u8> {
    match value {
        serde_json::Value::Number(n) => n.as_u64().filter(|d| (1..=7).contains(d)).map(|d| d as u8),
        serde_json::Value::String(s) => {
            const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
            let lower = s.trim().to_ascii_lowercase();
            NAMES.iter().position(|n| lower.starts_with(n)).map(|i| i as u8 + 1)
        }
        _ => None,
    }
}

/// `"HH:MM-HH:MM"` or a list of them, in UTC, moved `shift` minutes east.
fn shifted_hours(value: &serde_json::Value, shift: i32) -> Result<Vec<HourRange>, String> {
    let texts: Vec<&str> = match value {
        serde_json::Value::String(s) => vec![s.as_str()],
        serde_json::Value::Array(list) => list
            .iter()
            .map(|v| v.as_str().ok_or_else(|| "hours_utc has a non-string entry".to_owned()))
            .collect::<Result<_, _>>()?,
        _ => return Err("hours_utc is neither a string nor a list".to_owned()),
    };
    texts
        .into_iter()
        .map(|t| {
            let utc: HourRange = t.parse().map_err(|e: PricingError| e.to_string())?;
            let move_by = |m: u16| ((i32::from(m) + shift).rem_euclid(1440)) as u16;
            Ok(HourRange {
                start_minute: move_by(utc.start_minute),
                end_minute: move_by(utc.end_minute),
            })
        })
        .collect()
}

/// `off_peak_pricing`: prices that replace the others inside recurring windows. Hours are
/// in UTC; weekdays are read in `weekday_timezone` (default UTC); the window is written in
/// that zone's fixed offset, each UTC range shifted into it.
fn import_off_peak(
    model: &str,
    raw: &RawValue,
    got: &mut Collected,
    report: &mut ImportReport,
) -> Result<(), PricingError> {
    let invalid = |reason: String| PricingError::InvalidPrice {
        model: model.to_owned(),
        key: "off_peak_pricing".to_owned(),
        reason,
    };
    let block: Entries<'_> =
        serde_json::from_str(raw.get()).map_err(|e| invalid(format!("expected an object: {e}")))?;
    let block: BTreeMap<Key<'_>, &RawValue> = block.0.into_iter().collect();
    let zone = match block.get("weekday_timezone") {
        None => Some(FixedOffset::east_opt(0).ok_or_else(|| invalid("no UTC".to_owned()))?),
        Some(z) => serde_json::from_str::<String>(z.get())
            .ok()
            .and_then(|n| zone_offset(n.trim())),
    };
    let Some(zone) = zone else {
        report.unknown_keys.push(note(
            model,
            "off_peak_pricing.weekday_timezone",
            "a time zone that is not a fixed offset paygo knows (UTC, Asia/Shanghai, ...): the window cannot be placed exactly",
        ));
        return Ok(());
    };
    let shift = zone.local_minus_utc() / 60;
    let hours = |value: &serde_json::Value| shifted_hours(value, shift).map_err(invalid);
    let mut rules = Vec::new();
    let mut prices = RateCard::new();
    for (key, value) in &block {
        match key.as_ref() {
            "weekday_timezone" => {}
            "hours_utc" => {
                let v: serde_json::Value = serde_json::from_str(value.get()).map_err(|e| invalid(e.to_string()))?;
                rules.push(WindowRule {
                    weekdays: Vec::new(),
                    hours: hours(&v)?,
                });
            }
            "windows" => {
                let list: Vec<serde_json::Value> =
                    serde_json::from_str(value.get()).map_err(|e| invalid(format!("windows: {e}")))?;
                for rule in &list {
                    let days = match rule.get("weekdays") {
                        None => Vec::new(),
                        Some(serde_json::Value::Array(days)) => days
                            .iter()
                            .map(|d| {
                                weekday(d).ok_or_else(|| {
                                    invalid(format!("weekday {d} given, expected 1 to 7 or a day's name"))
                                })
                            })
                            .collect::<Result<_, _>>()?,
                        Some(other) => return Err(invalid(format!("weekdays {other} given, expected a list"))),
                    };
                    let h = rule
                        .get("hours_utc")
                        .ok_or_else(|| invalid("a window without hours_utc".to_owned()))?;
                    rules.push(WindowRule {
                        weekdays: days,
                        hours: hours(h)?,
                    });
                }
            }
            _ => plain_price(model, "off_peak_pricing", key, value, &mut prices, report)?,
        }
    }
    if rules.is_empty() {
        return Err(invalid(
            "no hours_utc and no windows: the window is never open".to_owned(),
        ));
    }
    got.windows.push(PriceWindow {
        name: "off_peak".to_owned(),
        utc_offset: zone,
        rules,
        prices,
    });
    Ok(())
}
