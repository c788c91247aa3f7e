//! LiteLLM's price-key grammar: a base key naming the unit, then modifiers in any order.
//!
//! ```text
//! key      = base modifier*
//! base     = "input_cost_per_token" | "output_cost_per_token" | "cache_read_input_token_cost"
//!          | "cache_creation_input_token_cost" | "output_cost_per_reasoning_token" | ...
//!            (one per unit: see BASES)
//! modifier = "_above_" N ["k"] "_tokens"      a context tier above N (thousand) prompt tokens
//!          | "_above_1hr" | "_above_12hr"     a cache-write lifetime (cache_creation keys only)
//!          | "_" RESOLUTION                   a video resolution: 480p, 720p, 2k, 4k, ...
//!                                             (output_cost_per_second only)
//!          | "_" SIZE                         an image size: 1K, 0.5K, 512, 1024, ...
//!                                             (output_cost_per_image only)
//!          | "_" TIER                         a service tier: batches, flex, priority,
//!                                             ultrafast, balanced, or any other word
//! ```
//!
//! Each modifier kind appears at most once. A key that does not parse says why.

use std::fmt::{self, Write};

use crate::{Component, ServiceTier};

/// A price key of LiteLLM's catalog, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PriceKey {
    /// The unit priced.
    pub component: Component,
    /// The context tier: prices for requests above this many prompt tokens.
    pub above_tokens: Option<u64>,
    /// The service tier (standard when the key has no tier suffix).
    pub service_tier: ServiceTier,
    /// A video resolution or image size label, lower-cased (`"720p"`, `"1k"`).
    pub variant: Option<String>,
}

/// The base keys, one per unit; aliases after the canonical name of the same component.
/// The cache lifetimes are modifiers of `cache_creation_input_token_cost`.
const BASES: [(&str, Component); 35] = [
    ("input_cost_per_token", Component::InputToken),
    ("output_cost_per_token", Component::OutputToken),
    ("cache_read_input_token_cost", Component::CacheReadToken),
    ("input_cost_per_token_cache_hit", Component::CacheReadToken),
    ("cache_creation_input_token_cost", Component::CacheWriteToken),
    ("cache_read_input_audio_token_cost", Component::CacheReadAudioToken),
    ("cache_creation_input_audio_token_cost", Component::CacheWriteAudioToken),
    ("cache_read_input_image_token_cost", Component::CacheReadImageToken),
    ("input_cost_per_audio_token", Component::InputAudioToken),
    ("output_cost_per_audio_token", Component::OutputAudioToken),
    ("input_cost_per_image_token", Component::InputImageToken),
    ("output_cost_per_image_token", Component::OutputImageToken),
    ("input_cost_per_video_token", Component::InputVideoToken),
    ("output_cost_per_video_token", Component::OutputVideoToken),
    ("output_cost_per_reasoning_token", Component::ReasoningToken),
    ("citation_cost_per_token", Component::CitationToken),
    ("input_cost_per_image", Component::InputImage),
    ("output_cost_per_image", Component::OutputImage),
    ("input_cost_per_pixel", Component::InputPixel),
    ("output_cost_per_pixel", Component::OutputPixel),
    ("input_cost_per_second", Component::InputSecond),
    ("output_cost_per_second", Component::OutputSecond),
    ("input_cost_per_audio_per_second", Component::InputAudioSecond),
    ("input_cost_per_video_per_second", Component::InputVideoSecond),
    ("output_cost_per_video_per_second", Component::OutputVideoSecond),
    ("cost_per_second", Component::CallSecond),
    ("input_cost_per_character", Component::InputCharacter),
    ("output_cost_per_character", Component::OutputCharacter),
    ("input_cost_per_text_message", Component::TextMessage),
    ("input_cost_per_request", Component::Request),
    ("input_cost_per_query", Component::Query),
    ("google_maps_grounding_cost_per_query", Component::MapsQuery),
    ("code_interpreter_cost_per_session", Component::CodeInterpreterSession),
    ("ocr_cost_per_page", Component::Page),
    ("annotation_cost_per_page", Component::AnnotationPage),
];

/// The canonical base key of a component (the first row that names it), and the
/// lifetime modifier that 1-hour and 12-hour writes add to it.
fn base_of(component: Component) -> Option<(&'static str, Option<&'static str>)> {
    match component {
        Component::CacheWrite1hToken => Some(("cache_creation_input_token_cost", Some("_above_1hr"))),
        Component::CacheWrite12hToken => Some(("cache_creation_input_token_cost", Some("_above_12hr"))),
        Component::WebSearch => None,
        _ => BASES
            .iter()
            .find(|(_, c)| *c == component)
            .map(|(name, _)| (*name, None)),
    }
}

/// Why a key is not a price key paygo reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// A video resolution label: `480p`, `1080p`, `2k`, `4k`.
fn is_resolution(segment: &str) -> bool {
    segment.strip_suffix(['p', 'k']).is_some_and(all_digits)
}

/// An image size label: `512`, `1024`, `1K`, `2K`, `0.5K`.
fn is_image_size(segment: &str) -> bool {
    match segment.strip_suffix(['K', 'k']) {
        Some(number) => match number.split_once('.') {
            Some((whole, fraction)) => all_digits(whole) && all_digits(fraction),
            None => all_digits(number),
        },
        None => all_digits(segment),
    }
}

fn is_tier_word(segment: &str) -> bool {
    segment.len() <= ServiceTier::NAME_LEN_MAX
        && segment.starts_with(|c: char| c.is_ascii_lowercase())
        && segment.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl PriceKey {
    /// Parses a catalog key.
    ///
    /// # Errors
    ///
    /// A [`KeyError`] saying why the key is not a price key: no known unit, an unknown
    /// modifier, a modifier given twice or on a unit it does not apply to.
    pub fn parse(key: &str) -> Result<PriceKey, KeyError> {
        let (base, component) = BASES
            .iter()
            .filter(|(name, _)| key.starts_with(name) && matches!(key.as_bytes().get(name.len()), None | Some(b'_')))
            .max_by_key(|(name, _)| name.len())
            .ok_or_else(|| KeyError("no unit this key prices is known (expected <input|output|cache_...>_cost_per_<unit> or <...>_token_cost)".to_owned()))?;
        let mut parsed = PriceKey {
            component: *component,
            above_tokens: None,
            service_tier: ServiceTier::STANDARD,
            variant: None,
        };
        let mut tier_seen = false;
        let mut lifetime_seen = false;
        let rest = &key[base.len()..];
        let segments: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest[1..].split('_').collect()
        };
        let mut i = 0;
        while i < segments.len() {
            let segment = segments[i];
            let next = segments.get(i + 1).copied();
            let after = segments.get(i + 2).copied();
            if segment == "above" {
                match (next, after) {
                    (Some(n), Some("tokens")) if parse_threshold(n).is_some() => {
                        if parsed.above_tokens.is_some() {
                            return Err(KeyError("two context thresholds (_above_N_tokens)".to_owned()));
                        }
                        parsed.above_tokens = parse_threshold(n);
                        i += 3;
                    }
                    (Some(lifetime @ ("1hr" | "12hr")), _) => {
                        if parsed.component != Component::CacheWriteToken || lifetime_seen {
                            return Err(KeyError(format!(
                                "cache lifetime _above_{lifetime} on a key that is not a cache write, or given twice"
                            )));
                        }
                        lifetime_seen = true;
                        parsed.component = if lifetime == "1hr" {
                            Component::CacheWrite1hToken
                        } else {
                            Component::CacheWrite12hToken
                        };
                        i += 2;
                    }
                    (Some(n), Some("interval")) if n.ends_with('s') => {
                        return Err(KeyError(format!(
                            "a tier by video length (above {n} intervals) is not a context tier; paygo has no usage field for it"
                        )));
                    }
                    _ => {
                        return Err(KeyError(
                            "_above_ must be followed by N[k]_tokens, 1hr or 12hr".to_owned(),
                        ));
                    }
                }
                continue;
            }
            let variant_kind = match parsed.component {
                Component::OutputSecond if is_resolution(segment) => Some(segment.to_ascii_lowercase()),
                Component::OutputImage if is_image_size(segment) => Some(segment.to_ascii_lowercase()),
                _ => None,
            };
            if let Some(variant) = variant_kind {
                if parsed.variant.is_some() {
                    return Err(KeyError("two variant labels".to_owned()));
                }
                parsed.variant = Some(variant);
            } else if is_tier_word(segment) {
                if tier_seen {
                    return Err(KeyError(format!("a second service tier suffix _{segment}")));
                }
                tier_seen = true;
                parsed.service_tier = ServiceTier::new(segment).map_err(|e| KeyError(e.to_string()))?;
            } else {
                return Err(KeyError(format!(
                    "_{segment} is not a context tier, cache lifetime, variant or service tier"
                )));
            }
            i += 1;
        }
        Ok(parsed)
    }

    /// The key in LiteLLM's canonical spelling: base, lifetime, variant, threshold, tier;
    /// [`PriceKey::parse`] reads it back to an equal key. `None` when the key has no
    /// spelling that reads back the same: a web-search price (a structure, not a key), or a
    /// service tier whose name the grammar would read as something else (`on_demand`,
    /// `2x`, `above`, `token` after `input_cost_per_image`, `4k` after
    /// `output_cost_per_second`).
    pub fn to_litellm(&self) -> Option<String> {
        let key = self.spell()?;
        (PriceKey::parse(&key).as_ref() == Ok(self)).then_some(key)
    }

    fn spell(&self) -> Option<String> {
        let (base, lifetime) = base_of(self.component)?;
        let mut key = String::from(base);
        if let Some(l) = lifetime {
            key.push_str(l);
        }
        if let Some(v) = &self.variant {
            key.push('_');
            key.push_str(v);
        }
        // Writing to a String cannot fail.
        if let Some(n) = self.above_tokens {
            if n % 1000 == 0 && n > 0 {
                let _ = write!(key, "_above_{}k_tokens", n / 1000);
            } else {
                let _ = write!(key, "_above_{n}_tokens");
            }
        }
        if !self.service_tier.is_standard() {
            key.push('_');
            key.push_str(if self.service_tier == ServiceTier::BATCH {
                "batches"
            } else {
                self.service_tier.name()
            });
        }
        Some(key)
    }
}

/// `272k` → 272,000; `128` → 128.
fn parse_threshold(text: &str) -> Option<u64> {
    let (digits, scale) = match text.strip_suffix('k') {
        Some(d) => (d, 1000),
        None => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn key(text: &str) -> PriceKey {
        PriceKey::parse(text).unwrap()
    }

    #[test]
    fn composed_keys() {
        let k = key("cache_creation_input_token_cost_above_12hr_above_272k_tokens_batches");
        assert_eq!(k.component, Component::CacheWrite12hToken);
        assert_eq!(k.above_tokens, Some(272_000));
        assert_eq!(k.service_tier, ServiceTier::BATCH);
        let k = key("input_cost_per_token_priority_above_200k_tokens");
        assert_eq!((k.above_tokens, k.service_tier), (Some(200_000), ServiceTier::PRIORITY));
        let k = key("output_cost_per_second_768p");
        assert_eq!(
            (k.component, k.variant.as_deref()),
            (Component::OutputSecond, Some("768p"))
        );
        let k = key("output_cost_per_image_0.5K");
        assert_eq!(k.variant.as_deref(), Some("0.5k"));
        assert_eq!(
            key("input_cost_per_token_cache_hit").component,
            Component::CacheReadToken
        );
        assert_eq!(key("input_cost_per_token_balanced").service_tier.name(), "balanced");
        assert_eq!(key("cost_per_second").component, Component::CallSecond);
        assert_eq!(
            key("output_cost_per_image_token_batches").component,
            Component::OutputImageToken
        );
    }

    #[test]
    fn refusals_say_why() {
        for bad in [
            "input_dbu_cost_per_token",
            "input_cost_per_video_per_second_above_8s_interval",
            "input_cost_per_token_above_200k_tokens_above_100k_tokens",
            "input_cost_per_token_flex_priority",
            "input_cost_per_token_above_1hr",
            "input_cost_per_tokens",
        ] {
            assert!(PriceKey::parse(bad).is_err(), "{bad}");
        }
    }
}
