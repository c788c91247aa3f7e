//! What a call used, as the upstream reports it, and its split into priced quantities.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{Component, PricingError};

/// The usage of one API call: the OpenAI usage object that upstreams return, plus the
/// non-token units some models are billed in.
///
/// Token counts follow OpenAI's convention: `prompt_tokens` *includes* the cached, cache
/// write, audio and image prompt tokens listed in `prompt_tokens_details`, and
/// `completion_tokens` *includes* the reasoning, audio and image tokens listed in
/// `completion_tokens_details`. The text tokens are what remains. A detail larger than its
/// total is an error naming both, never a silent clamp.
///
/// Reading is strict where it matters and lenient where upstreams grow: an object with no
/// counter this form knows (`{}`, or Anthropic's `{"input_tokens": ...}`) is an error, never
/// a zero usage; a counter of another upstream's shape next to this form's own is an error
/// too; unknown *extra* fields next to recognized ones are accepted, because upstreams add
/// fields. Other upstreams' shapes are read by [`Usage::from_json`] with a
/// [`UsageShape`](crate::UsageShape).
///
/// # Example
///
/// ```
/// use paygo_pricing::Usage;
///
/// let usage: Usage = serde_json::from_str(r#"{
///     "prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
///     "prompt_tokens_details": {"cached_tokens": 1000},
///     "completion_tokens_details": {"reasoning_tokens": 120}
/// }"#)?;
/// assert_eq!(usage.prompt_tokens, 1200);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "crate::shape::UsageObject")]
pub struct Usage {
    /// Prompt tokens, all kinds included.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Completion tokens, all kinds included.
    #[serde(default)]
    pub completion_tokens: u64,
    /// `prompt_tokens + completion_tokens`, when the upstream reports it (checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    /// The kinds of prompt tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    /// The kinds of completion tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
    /// Citation tokens, outside `prompt_tokens` (search models that bill the sources read).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub citation_tokens: u64,
    /// Images given as input.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub input_images: u64,
    /// Images generated.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub output_images: u64,
    /// Size of the generated images, `"1024x1024"` (`"1024-x-1024"` is accepted too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<String>,
    /// Quality of the generated images (`"standard"`, `"hd"`, `"low"`, `"medium"`, `"high"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_quality: Option<String>,
    /// Input pixels.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub input_pixels: u64,
    /// Output pixels.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub output_pixels: u64,
    /// Duration of the input, in milliseconds, for models billed per second of input.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub input_duration_ms: u64,
    /// Duration of the output (speech, video), in milliseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub output_duration_ms: u64,
    /// Duration of input audio, in milliseconds, for chat models billed per audio second.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub input_audio_duration_ms: u64,
    /// Duration of input video, in milliseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub input_video_duration_ms: u64,
    /// Duration of output video, in milliseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub output_video_duration_ms: u64,
    /// Resolution of generated video (`"720p"`, `"1080p"`), for models priced by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_resolution: Option<String>,
    /// How long the call ran, in milliseconds, for models billed per second of running time.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub call_duration_ms: u64,
    /// Input characters.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub input_characters: u64,
    /// Output characters.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub output_characters: u64,
    /// Text messages sent into a realtime session.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub text_messages: u64,
    /// API requests this usage covers; absent means one (a quote is for one call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// Search or rerank queries.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub queries: u64,
    /// Web searches the model ran.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub web_searches: u64,
    /// Search context size of those searches (`"low"`, `"medium"`, `"high"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_context_size: Option<String>,
    /// Map-grounding queries the model ran.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub maps_queries: u64,
    /// Code-interpreter sessions the model opened.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub code_interpreter_sessions: u64,
    /// Pages processed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pages: u64,
    /// Pages annotated.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub annotation_pages: u64,
}

// serde's skip_serializing_if passes a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The kinds of prompt tokens: each is a part of `prompt_tokens`, and no two overlap (cached
/// audio tokens are counted in `cached_audio_tokens` only, not in `audio_tokens` or
/// `cached_tokens`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    /// Text tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cached_tokens: u64,
    /// Text tokens written to the prompt cache (5-minute lifetime).
    #[serde(default, alias = "cache_creation_tokens", skip_serializing_if = "is_zero")]
    pub cache_write_tokens: u64,
    /// Text tokens written to the prompt cache with a 1-hour lifetime.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_1h_tokens: u64,
    /// Text tokens written to the prompt cache with a 12-hour lifetime.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_12h_tokens: u64,
    /// Audio tokens not read from the cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub audio_tokens: u64,
    /// Audio tokens read from the cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cached_audio_tokens: u64,
    /// Audio tokens written to the cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_audio_tokens: u64,
    /// Image tokens not read from the cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub image_tokens: u64,
    /// Image tokens read from the cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cached_image_tokens: u64,
    /// Video tokens.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub video_tokens: u64,
}

/// The kinds of completion tokens (each is a part of `completion_tokens`; no two overlap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CompletionTokensDetails {
    /// Reasoning tokens.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reasoning_tokens: u64,
    /// Audio tokens.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub audio_tokens: u64,
    /// Image tokens.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub image_tokens: u64,
    /// Video tokens.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub video_tokens: u64,
}

/// A usage split into a quantity per [`Component`], checked for consistency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Quantities {
    /// Each component's quantity, as an integer at the component's [`quantity_scale`].
    pub(crate) amounts: [u64; Component::COUNT],
    /// Bit `i` set when component `i` has a non-zero amount (so that a quote visits only
    /// the few components a call used, in component order).
    pub(crate) used: u64,
    pub(crate) counted_prompt_tokens: u64,
    pub(crate) counted_all_tokens: u64,
}

// The used-components mask holds one bit a component.
const _: () = assert!(Component::COUNT <= 64);

impl Quantities {
    /// The components with a non-zero amount, in component order.
    pub(crate) fn used(&self) -> impl Iterator<Item = Component> + '_ {
        let mut bits = self.used;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Component::ALL.get(i).copied()
        })
    }

    /// The quantity of a component as an exact decimal (seconds from milliseconds).
    pub(crate) fn decimal(&self, component: Component) -> Decimal {
        Decimal::from_i128_with_scale(i128::from(self.amounts[component.index()]), quantity_scale(component))
    }
}

/// The decimal scale of a component's integer quantity: 3 for durations (milliseconds of a
/// per-second price), 0 for everything else. The one place this rule is written.
pub(crate) const fn quantity_scale(component: Component) -> u32 {
    if is_duration(component) { 3 } else { 0 }
}

/// Whether a component's quantity is a duration in milliseconds (priced per second).
pub(crate) const fn is_duration(component: Component) -> bool {
    matches!(
        component,
        Component::InputSecond
            | Component::OutputSecond
            | Component::InputAudioSecond
            | Component::InputVideoSecond
            | Component::OutputVideoSecond
            | Component::CallSecond
    )
}

impl Usage {
    /// A usage of `prompt_tokens` text prompt tokens and `completion_tokens` text output
    /// tokens, nothing else.
    pub fn tokens(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            ..Usage::default()
        }
    }

    /// Splits the usage into a quantity per component.
    ///
    /// # Errors
    ///
    /// [`PricingError::InconsistentUsage`] when details exceed their totals or
    /// `total_tokens` differs from the sum.
    pub(crate) fn quantities(&self) -> Result<Quantities, PricingError> {
        let p = self.prompt_tokens_details.unwrap_or_default();
        let c = self.completion_tokens_details.unwrap_or_default();
        let text_in = remainder(
            self.prompt_tokens,
            "prompt_tokens",
            &[
                p.cached_tokens,
                p.cache_write_tokens,
                p.cache_write_1h_tokens,
                p.cache_write_12h_tokens,
                p.audio_tokens,
                p.cached_audio_tokens,
                p.cache_write_audio_tokens,
                p.image_tokens,
                p.cached_image_tokens,
                p.video_tokens,
            ],
            &PROMPT_PARTS,
            "the sum of prompt_tokens_details",
        )?;
        let text_out = remainder(
            self.completion_tokens,
            "completion_tokens",
            &[c.reasoning_tokens, c.audio_tokens, c.image_tokens, c.video_tokens],
            &COMPLETION_PARTS,
            "the sum of completion_tokens_details",
        )?;
        let all_tokens =
            self.prompt_tokens
                .checked_add(self.completion_tokens)
                .ok_or_else(|| PricingError::InvalidUsage {
                    field: "prompt_tokens + completion_tokens",
                    value: "more than 2^64".to_owned(),
                    expected: "a count below 2^64",
                })?;
        if let Some(total) = self.total_tokens
            && total != all_tokens
        {
            return Err(PricingError::InvalidUsage {
                field: "total_tokens",
                value: total.to_string(),
                expected: "prompt_tokens + completion_tokens",
            });
        }
        let mut amounts = [0u64; Component::COUNT];
        let mut used = 0u64;
        let mut set = |component: Component, n: u64| {
            amounts[component.index()] = n;
            used |= u64::from(n != 0) << component.index();
        };
        set(Component::InputToken, text_in);
        set(Component::CacheReadToken, p.cached_tokens);
        set(Component::CacheWriteToken, p.cache_write_tokens);
        set(Component::CacheWrite1hToken, p.cache_write_1h_tokens);
        set(Component::CacheWrite12hToken, p.cache_write_12h_tokens);
        set(Component::InputAudioToken, p.audio_tokens);
        set(Component::CacheReadAudioToken, p.cached_audio_tokens);
        set(Component::CacheWriteAudioToken, p.cache_write_audio_tokens);
        set(Component::InputImageToken, p.image_tokens);
        set(Component::CacheReadImageToken, p.cached_image_tokens);
        set(Component::InputVideoToken, p.video_tokens);
        set(Component::OutputToken, text_out);
        set(Component::ReasoningToken, c.reasoning_tokens);
        set(Component::OutputAudioToken, c.audio_tokens);
        set(Component::OutputImageToken, c.image_tokens);
        set(Component::OutputVideoToken, c.video_tokens);
        set(Component::CitationToken, self.citation_tokens);
        set(Component::InputImage, self.input_images);
        set(Component::OutputImage, self.output_images);
        set(Component::InputPixel, self.input_pixels);
        set(Component::OutputPixel, self.output_pixels);
        set(Component::InputSecond, self.input_duration_ms);
        set(Component::OutputSecond, self.output_duration_ms);
        set(Component::InputAudioSecond, self.input_audio_duration_ms);
        set(Component::InputVideoSecond, self.input_video_duration_ms);
        set(Component::OutputVideoSecond, self.output_video_duration_ms);
        set(Component::CallSecond, self.call_duration_ms);
        set(Component::InputCharacter, self.input_characters);
        set(Component::OutputCharacter, self.output_characters);
        set(Component::TextMessage, self.text_messages);
        set(Component::Request, self.requests.unwrap_or(1));
        set(Component::Query, self.queries);
        set(Component::WebSearch, self.web_searches);
        set(Component::MapsQuery, self.maps_queries);
        set(Component::CodeInterpreterSession, self.code_interpreter_sessions);
        set(Component::Page, self.pages);
        set(Component::AnnotationPage, self.annotation_pages);
        Ok(Quantities {
            used,
            amounts,
            counted_prompt_tokens: self.prompt_tokens,
            counted_all_tokens: all_tokens,
        })
    }
}

/// The names of the prompt details, in the order `quantities` passes their values.
const PROMPT_PARTS: [&str; 10] = [
    "prompt_tokens_details.cached_tokens",
    "prompt_tokens_details.cache_write_tokens",
    "prompt_tokens_details.cache_write_1h_tokens",
    "prompt_tokens_details.cache_write_12h_tokens",
    "prompt_tokens_details.audio_tokens",
    "prompt_tokens_details.cached_audio_tokens",
    "prompt_tokens_details.cache_write_audio_tokens",
    "prompt_tokens_details.image_tokens",
    "prompt_tokens_details.cached_image_tokens",
    "prompt_tokens_details.video_tokens",
];

/// The names of the completion details, in the order `quantities` passes their values.
const COMPLETION_PARTS: [&str; 4] = [
    "completion_tokens_details.reasoning_tokens",
    "completion_tokens_details.audio_tokens",
    "completion_tokens_details.image_tokens",
    "completion_tokens_details.video_tokens",
];

/// `total - Σ parts`, or an error naming the first part (or the sum) that exceeds it.
fn remainder<const N: usize>(
    total: u64,
    total_name: &'static str,
    parts: &[u64; N],
    names: &[&'static str; N],
    sum_name: &'static str,
) -> Result<u64, PricingError> {
    // The usual case first: the parts fit their total.
    let fits = parts.iter().try_fold(0u64, |acc, &v| acc.checked_add(v));
    if let Some(sum) = fits
        && sum <= total
    {
        return Ok(total - sum);
    }
    if let Some((name, &value)) = names.iter().zip(parts).find(|(_, v)| **v > total) {
        return Err(PricingError::InconsistentUsage {
            detail: name,
            detail_value: value,
            total: total_name,
            total_value: total,
        });
    }
    Err(PricingError::InconsistentUsage {
        detail: sum_name,
        detail_value: parts.iter().fold(0u64, |acc, &v| acc.saturating_add(v)),
        total: total_name,
        total_value: total,
    })
}
