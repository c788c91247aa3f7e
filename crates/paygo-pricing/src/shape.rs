//! Readers for the usage objects upstreams return, each into the normalized [`Usage`].
//!
//! Every reader is strict where a mistake would be free usage and lenient where upstreams
//! grow: an object with none of its shape's counters is an error (never a zero usage), a
//! counter that belongs to another shape is an error naming that shape, a counter that is
//! not a non-negative integer is an error; any other extra field is accepted.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::{CompletionTokensDetails, PricingError, PromptTokensDetails, Usage};

/// The shape of a usage object, by the API that returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UsageShape {
    /// OpenAI Chat Completions (`prompt_tokens`, `completion_tokens`, `*_tokens_details`),
    /// which is also paygo's normalized form with its non-token units (`output_images`,
    /// `input_duration_ms`, ...). Most OpenAI-compatible upstreams answer in it.
    #[serde(rename = "openai_chat", alias = "chat")]
    OpenAiChat,
    /// The OpenAI Responses API (`input_tokens` including cached tokens, `output_tokens`
    /// including reasoning tokens, `input_tokens_details`, `output_tokens_details`).
    #[serde(rename = "openai_responses", alias = "responses")]
    OpenAiResponses,
    /// Anthropic Messages (`input_tokens` *excluding* cached tokens,
    /// `cache_read_input_tokens`, `cache_creation_input_tokens`, `cache_creation` with
    /// `ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens`, `output_tokens` including
    /// thinking, `server_tool_use.web_search_requests`).
    Anthropic,
    /// Google Gemini `usageMetadata` (`promptTokenCount` including cached tokens,
    /// `cachedContentTokenCount`, `candidatesTokenCount` *excluding* thoughts,
    /// `thoughtsTokenCount`, `toolUsePromptTokenCount`, and per-modality details), bare or
    /// wrapped in `{"usageMetadata": ...}`.
    Gemini,
}

impl UsageShape {
    /// Every shape.
    pub const ALL: [UsageShape; 4] = [
        UsageShape::OpenAiChat,
        UsageShape::OpenAiResponses,
        UsageShape::Anthropic,
        UsageShape::Gemini,
    ];

    /// The snake-case name (`"openai_chat"`).
    pub const fn name(self) -> &'static str {
        match self {
            UsageShape::OpenAiChat => "openai_chat",
            UsageShape::OpenAiResponses => "openai_responses",
            UsageShape::Anthropic => "anthropic",
            UsageShape::Gemini => "gemini",
        }
    }

    /// The shape with this name.
    pub fn from_name(name: &str) -> Option<UsageShape> {
        UsageShape::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The counters that identify this shape (at least one must be present).
    const fn counters(self) -> &'static [&'static str] {
        match self {
            UsageShape::OpenAiChat => &CHAT_COUNTERS,
            UsageShape::OpenAiResponses => &["input_tokens", "output_tokens", "total_tokens"],
            UsageShape::Anthropic => &[
                "input_tokens",
                "output_tokens",
                "cache_read_input_tokens",
                "cache_creation_input_tokens",
                "cache_creation",
            ],
            UsageShape::Gemini => &GEMINI_COUNTERS,
        }
    }

    /// Keys that, if present, say the object is of this shape and of no other.
    const fn own_keys(self) -> &'static [&'static str] {
        match self {
            UsageShape::OpenAiChat => &[
                "prompt_tokens",
                "completion_tokens",
                "prompt_tokens_details",
                "completion_tokens_details",
            ],
            UsageShape::OpenAiResponses => &["input_tokens_details", "output_tokens_details"],
            UsageShape::Anthropic => &[
                "cache_read_input_tokens",
                "cache_creation_input_tokens",
                "cache_creation",
            ],
            // Also `usageMetadata`, the wrapper: see `detect`.
            UsageShape::Gemini => &GEMINI_COUNTERS,
        }
    }

    /// Picks the shape from unambiguous keys.
    ///
    /// Anthropic's and the Responses API's objects share `input_tokens`/`output_tokens`;
    /// with neither's own keys present (no cache or details fields), a `total_tokens` means
    /// the Responses API, and otherwise Anthropic is chosen (both read the same quantities
    /// then).
    ///
    /// # Errors
    ///
    /// [`PricingError::EmptyUsage`] when no shape's counter is present;
    /// [`PricingError::UsageShapeMismatch`] when keys of two shapes are mixed.
    pub fn detect(value: &Value) -> Result<UsageShape, PricingError> {
        let map = object(value)?;
        if map.contains_key("usageMetadata") {
            return Ok(UsageShape::Gemini);
        }
        let mut found: Option<(UsageShape, &str)> = None;
        for shape in UsageShape::ALL {
            if let Some(key) = shape.own_keys().iter().find(|k| map.contains_key(**k)) {
                match found {
                    // The chat form's own keys win over a LiteLLM-style Anthropic extra.
                    Some((UsageShape::OpenAiChat, _)) if shape == UsageShape::Anthropic => {}
                    Some((first, _)) => {
                        return Err(PricingError::UsageShapeMismatch {
                            shape: first.name(),
                            field: (*key).to_owned(),
                            looks_like: shape.name(),
                        });
                    }
                    None => found = Some((shape, key)),
                }
            }
        }
        if let Some((shape, _)) = found {
            return Ok(shape);
        }
        if map.contains_key("input_tokens") || map.contains_key("output_tokens") {
            // Only the Responses API reports a total next to them.
            return Ok(if map.contains_key("total_tokens") {
                UsageShape::OpenAiResponses
            } else {
                UsageShape::Anthropic
            });
        }
        if CHAT_COUNTERS.iter().any(|k| map.contains_key(*k)) {
            return Ok(UsageShape::OpenAiChat);
        }
        Err(PricingError::EmptyUsage {
            shape: "any known",
            expected: "prompt_tokens/completion_tokens, input_tokens/output_tokens or promptTokenCount",
        })
    }
}

impl fmt::Display for UsageShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Gemini's counters (`usageMetadata`'s fields).
const GEMINI_COUNTERS: [&str; 6] = [
    "promptTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "cachedContentTokenCount",
    "toolUsePromptTokenCount",
    "totalTokenCount",
];

/// The chat form's counters: OpenAI's token counts and paygo's non-token units.
const CHAT_COUNTERS: [&str; 24] = [
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "citation_tokens",
    "input_images",
    "output_images",
    "input_pixels",
    "output_pixels",
    "input_duration_ms",
    "output_duration_ms",
    "input_audio_duration_ms",
    "input_video_duration_ms",
    "output_video_duration_ms",
    "call_duration_ms",
    "input_characters",
    "output_characters",
    "text_messages",
    "requests",
    "queries",
    "web_searches",
    "maps_queries",
    "code_interpreter_sessions",
    "pages",
    "annotation_pages",
];

/// Counters of other shapes that must not appear in an object read as `shape`.
fn foreign_keys(shape: UsageShape) -> impl Iterator<Item = (&'static str, UsageShape)> {
    const MARKERS: [(&str, UsageShape); 15] = [
        ("prompt_tokens", UsageShape::OpenAiChat),
        ("completion_tokens", UsageShape::OpenAiChat),
        ("input_tokens", UsageShape::OpenAiResponses),
        ("output_tokens", UsageShape::OpenAiResponses),
        ("input_tokens_details", UsageShape::OpenAiResponses),
        ("output_tokens_details", UsageShape::OpenAiResponses),
        ("promptTokenCount", UsageShape::Gemini),
        ("candidatesTokenCount", UsageShape::Gemini),
        ("thoughtsTokenCount", UsageShape::Gemini),
        ("cachedContentTokenCount", UsageShape::Gemini),
        ("totalTokenCount", UsageShape::Gemini),
        ("usageMetadata", UsageShape::Gemini),
        ("cache_read_input_tokens", UsageShape::Anthropic),
        ("cache_creation_input_tokens", UsageShape::Anthropic),
        ("cache_creation", UsageShape::Anthropic),
    ];
    MARKERS.into_iter().filter(move |(key, owner)| {
        *owner != shape
            && !shape.counters().contains(key)
            // LiteLLM's OpenAI-shaped usage repeats Anthropic's cache counts next to the
            // chat ones (already inside prompt_tokens_details): accepted, not read.
            && !(shape == UsageShape::OpenAiChat && *owner == UsageShape::Anthropic)
    })
}

fn object(value: &Value) -> Result<&Map<String, Value>, PricingError> {
    value.as_object().ok_or_else(|| PricingError::MalformedUsage {
        reason: format!("{} given, expected a JSON object", kind(value)),
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A count: a non-negative integer, or absent (`null` is absent).
fn count(map: &Map<String, Value>, key: &'static str) -> Result<Option<u64>, PricingError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| PricingError::InvalidUsage {
            field: key,
            value: n.to_string(),
            expected: "a non-negative integer count",
        }),
        Some(other) => Err(PricingError::InvalidUsage {
            field: key,
            value: kind(other).to_owned(),
            expected: "a non-negative integer count",
        }),
    }
}

fn count0(map: &Map<String, Value>, key: &'static str) -> Result<u64, PricingError> {
    Ok(count(map, key)?.unwrap_or(0))
}

fn text(map: &Map<String, Value>, key: &'static str) -> Result<Option<String>, PricingError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(PricingError::InvalidUsage {
            field: key,
            value: kind(other).to_owned(),
            expected: "a string",
        }),
    }
}

fn nested<'a>(map: &'a Map<String, Value>, key: &'static str) -> Result<Option<&'a Map<String, Value>>, PricingError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(inner)) => Ok(Some(inner)),
        Some(other) => Err(PricingError::InvalidUsage {
            field: key,
            value: kind(other).to_owned(),
            expected: "an object",
        }),
    }
}

fn sum(parts: &[u64], what: &'static str) -> Result<u64, PricingError> {
    parts
        .iter()
        .try_fold(0u64, |acc, &n| acc.checked_add(n))
        .ok_or(PricingError::InvalidUsage {
            field: what,
            value: "more than 2^64".to_owned(),
            expected: "a count below 2^64",
        })
}

impl Usage {
    /// Reads a usage object of `shape`, or of the shape [`UsageShape::detect`] finds when
    /// `shape` is `None`.
    ///
    /// # Example
    ///
    /// ```
    /// use paygo_pricing::{Usage, UsageShape};
    ///
    /// // Anthropic's input_tokens excludes the cache: the prompt is 1000 + 3000 + 500.
    /// let usage = Usage::from_json(r#"{"input_tokens": 1000, "output_tokens": 200,
    ///     "cache_read_input_tokens": 3000, "cache_creation_input_tokens": 500}"#,
    ///     Some(UsageShape::Anthropic))?;
    /// assert_eq!(usage.prompt_tokens, 4500);
    ///
    /// // Nothing recognized is an error, never a free call.
    /// assert!(Usage::from_json("{}", None).is_err());
    /// assert!(Usage::from_json(r#"{"input_tokens": 10}"#, Some(UsageShape::OpenAiChat)).is_err());
    /// # Ok::<(), paygo_pricing::PricingError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`PricingError::MalformedUsage`] for text that is not a JSON object (or has a key
    /// twice); [`PricingError::EmptyUsage`] when none of the shape's counters is present;
    /// [`PricingError::UsageShapeMismatch`] for a counter of another shape;
    /// [`PricingError::InvalidUsage`] / [`PricingError::InconsistentUsage`] for counts that
    /// are not counts or contradict each other.
    pub fn from_json(text: &str, shape: Option<UsageShape>) -> Result<Usage, PricingError> {
        let object: UsageObject =
            serde_json::from_str(text).map_err(|e| PricingError::MalformedUsage { reason: e.to_string() })?;
        Usage::from_value(&Value::Object(object.0), shape)
    }

    /// [`Usage::from_json`] for an already parsed value.
    ///
    /// # Errors
    ///
    /// As [`Usage::from_json`].
    pub fn from_value(value: &Value, shape: Option<UsageShape>) -> Result<Usage, PricingError> {
        let shape = match shape {
            Some(s) => s,
            None => UsageShape::detect(value)?,
        };
        let mut map = object(value)?;
        if shape == UsageShape::Gemini
            && let Some(inner) = nested(map, "usageMetadata")?
        {
            map = inner;
        }
        if let Some((key, owner)) = foreign_keys(shape).find(|(k, _)| map.contains_key(*k)) {
            return Err(PricingError::UsageShapeMismatch {
                shape: shape.name(),
                field: key.to_owned(),
                looks_like: owner.name(),
            });
        }
        if !shape
            .counters()
            .iter()
            .any(|k| map.get(*k).is_some_and(|v| !v.is_null()))
        {
            return Err(PricingError::EmptyUsage {
                shape: shape.name(),
                expected: match shape {
                    UsageShape::OpenAiChat => "prompt_tokens, completion_tokens or a unit such as output_images",
                    UsageShape::OpenAiResponses => "input_tokens or output_tokens",
                    UsageShape::Anthropic => "input_tokens, output_tokens or a cache count",
                    UsageShape::Gemini => "promptTokenCount or candidatesTokenCount",
                },
            });
        }
        let usage = match shape {
            UsageShape::OpenAiChat => read_chat(map)?,
            UsageShape::OpenAiResponses => read_responses(map)?,
            UsageShape::Anthropic => read_anthropic(map)?,
            UsageShape::Gemini => read_gemini(map)?,
        };
        // The split must be consistent now, not at quote time only.
        usage.quantities()?;
        Ok(usage)
    }
}

fn details<T: for<'de> Deserialize<'de>>(
    map: &Map<String, Value>,
    key: &'static str,
) -> Result<Option<T>, PricingError> {
    match nested(map, key)? {
        None => Ok(None),
        Some(inner) => serde_json::from_value(Value::Object(inner.clone()))
            .map(Some)
            .map_err(|e| PricingError::MalformedUsage {
                reason: format!("{key}: {e}"),
            }),
    }
}

/// The prompt details of the chat form, read by hand so that the forms upstreams and
/// LiteLLM produce are all understood:
///
/// - `cache_write_tokens` and its other name `cache_creation_tokens` (LiteLLM writes both;
///   they must agree);
/// - `cache_creation_token_details` (LiteLLM: `ephemeral_5m/30m/1h/12h_input_tokens`,
///   counted inside the writes): the 1-hour and 12-hour parts are moved to
///   `cache_write_1h_tokens` / `cache_write_12h_tokens`;
/// - `cached_tokens_details` (OpenAI realtime: `text/audio/image_tokens`, counted inside
///   both `cached_tokens` and `audio_tokens`/`image_tokens`): the audio and image parts are
///   moved to `cached_audio_tokens` / `cached_image_tokens`,
///
/// so that the parts stay disjoint.
fn chat_prompt_details(map: &Map<String, Value>) -> Result<Option<PromptTokensDetails>, PricingError> {
    let Some(raw) = nested(map, "prompt_tokens_details")? else {
        return Ok(None);
    };
    let writes = match (count(raw, "cache_write_tokens")?, count(raw, "cache_creation_tokens")?) {
        (Some(a), Some(b)) if a != b => {
            return Err(PricingError::InconsistentUsage {
                detail: "prompt_tokens_details.cache_creation_tokens",
                detail_value: b,
                total: "prompt_tokens_details.cache_write_tokens (the same count)",
                total_value: a,
            });
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => 0,
    };
    let mut details = PromptTokensDetails {
        cached_tokens: count0(raw, "cached_tokens")?,
        cache_write_tokens: writes,
        cache_write_1h_tokens: count0(raw, "cache_write_1h_tokens")?,
        cache_write_12h_tokens: count0(raw, "cache_write_12h_tokens")?,
        audio_tokens: count0(raw, "audio_tokens")?,
        cached_audio_tokens: count0(raw, "cached_audio_tokens")?,
        cache_write_audio_tokens: count0(raw, "cache_write_audio_tokens")?,
        image_tokens: count0(raw, "image_tokens")?,
        cached_image_tokens: count0(raw, "cached_image_tokens")?,
        video_tokens: count0(raw, "video_tokens")?,
    };
    let take = |from: &mut u64, n: u64, detail: &'static str, total: &'static str| {
        *from = from.checked_sub(n).ok_or(PricingError::InconsistentUsage {
            detail,
            detail_value: n,
            total,
            total_value: *from,
        })?;
        Ok::<(), PricingError>(())
    };
    if let Some(by_ttl) = nested(raw, "cache_creation_token_details")? {
        let hour = count0(by_ttl, "ephemeral_1h_input_tokens")?;
        let half_day = count0(by_ttl, "ephemeral_12h_input_tokens")?;
        take(
            &mut details.cache_write_tokens,
            sum(&[hour, half_day], "cache_creation_token_details")?,
            "cache_creation_token_details (1h + 12h)",
            "prompt_tokens_details.cache_write_tokens",
        )?;
        details.cache_write_1h_tokens = sum(&[details.cache_write_1h_tokens, hour], "cache_write_1h_tokens")?;
        details.cache_write_12h_tokens = sum(&[details.cache_write_12h_tokens, half_day], "cache_write_12h_tokens")?;
    }
    if let Some(cached) = nested(raw, "cached_tokens_details")? {
        let audio = count0(cached, "audio_tokens")?;
        let image = count0(cached, "image_tokens")?;
        take(
            &mut details.cached_tokens,
            sum(&[audio, image], "cached_tokens_details")?,
            "cached_tokens_details (audio + image)",
            "prompt_tokens_details.cached_tokens",
        )?;
        take(
            &mut details.audio_tokens,
            audio,
            "cached_tokens_details.audio_tokens",
            "prompt_tokens_details.audio_tokens",
        )?;
        take(
            &mut details.image_tokens,
            image,
            "cached_tokens_details.image_tokens",
            "prompt_tokens_details.image_tokens",
        )?;
        details.cached_audio_tokens = sum(&[details.cached_audio_tokens, audio], "cached_audio_tokens")?;
        details.cached_image_tokens = sum(&[details.cached_image_tokens, image], "cached_image_tokens")?;
    }
    Ok(Some(details))
}

fn read_chat(map: &Map<String, Value>) -> Result<Usage, PricingError> {
    Ok(Usage {
        prompt_tokens: count0(map, "prompt_tokens")?,
        completion_tokens: count0(map, "completion_tokens")?,
        total_tokens: count(map, "total_tokens")?,
        prompt_tokens_details: chat_prompt_details(map)?,
        completion_tokens_details: details::<CompletionTokensDetails>(map, "completion_tokens_details")?,
        citation_tokens: count0(map, "citation_tokens")?,
        input_images: count0(map, "input_images")?,
        output_images: count0(map, "output_images")?,
        image_size: text(map, "image_size")?,
        image_quality: text(map, "image_quality")?,
        input_pixels: count0(map, "input_pixels")?,
        output_pixels: count0(map, "output_pixels")?,
        input_duration_ms: count0(map, "input_duration_ms")?,
        output_duration_ms: count0(map, "output_duration_ms")?,
        input_audio_duration_ms: count0(map, "input_audio_duration_ms")?,
        input_video_duration_ms: count0(map, "input_video_duration_ms")?,
        output_video_duration_ms: count0(map, "output_video_duration_ms")?,
        video_resolution: text(map, "video_resolution")?,
        call_duration_ms: count0(map, "call_duration_ms")?,
        input_characters: count0(map, "input_characters")?,
        output_characters: count0(map, "output_characters")?,
        text_messages: count0(map, "text_messages")?,
        requests: count(map, "requests")?,
        queries: count0(map, "queries")?,
        web_searches: count0(map, "web_searches")?,
        search_context_size: text(map, "search_context_size")?,
        maps_queries: count0(map, "maps_queries")?,
        code_interpreter_sessions: count0(map, "code_interpreter_sessions")?,
        pages: count0(map, "pages")?,
        annotation_pages: count0(map, "annotation_pages")?,
    })
}

fn read_responses(map: &Map<String, Value>) -> Result<Usage, PricingError> {
    let input = nested(map, "input_tokens_details")?;
    let output = nested(map, "output_tokens_details")?;
    let read = |d: Option<&Map<String, Value>>, key: &'static str| match d {
        Some(d) => count0(d, key),
        None => Ok(0),
    };
    let cached = read(input, "cached_tokens")?;
    let input_audio = read(input, "audio_tokens")?;
    let input_image = read(input, "image_tokens")?;
    let reasoning = read(output, "reasoning_tokens")?;
    let output_audio = read(output, "audio_tokens")?;
    let output_image = read(output, "image_tokens")?;
    Ok(Usage {
        prompt_tokens: count0(map, "input_tokens")?,
        completion_tokens: count0(map, "output_tokens")?,
        total_tokens: count(map, "total_tokens")?,
        prompt_tokens_details: (cached > 0 || input_audio > 0 || input_image > 0).then_some(PromptTokensDetails {
            cached_tokens: cached,
            audio_tokens: input_audio,
            image_tokens: input_image,
            ..PromptTokensDetails::default()
        }),
        completion_tokens_details: (reasoning > 0 || output_audio > 0 || output_image > 0).then_some(
            CompletionTokensDetails {
                reasoning_tokens: reasoning,
                audio_tokens: output_audio,
                image_tokens: output_image,
                ..CompletionTokensDetails::default()
            },
        ),
        ..Usage::default()
    })
}

fn read_anthropic(map: &Map<String, Value>) -> Result<Usage, PricingError> {
    let uncached = count0(map, "input_tokens")?;
    let read = count0(map, "cache_read_input_tokens")?;
    let written_total = count(map, "cache_creation_input_tokens")?;
    let (five_minutes, one_hour) = match nested(map, "cache_creation")? {
        Some(by_ttl) => {
            let five = count0(by_ttl, "ephemeral_5m_input_tokens")?;
            let hour = count0(by_ttl, "ephemeral_1h_input_tokens")?;
            let parts = sum(&[five, hour], "cache_creation")?;
            if let Some(total) = written_total
                && total != parts
            {
                return Err(PricingError::InconsistentUsage {
                    detail: "cache_creation.ephemeral_5m_input_tokens + ephemeral_1h_input_tokens",
                    detail_value: parts,
                    total: "cache_creation_input_tokens",
                    total_value: total,
                });
            }
            (five, hour)
        }
        None => (written_total.unwrap_or(0), 0),
    };
    let web_searches = match nested(map, "server_tool_use")? {
        Some(tools) => count0(tools, "web_search_requests")?,
        None => 0,
    };
    Ok(Usage {
        prompt_tokens: sum(&[uncached, read, five_minutes, one_hour], "input_tokens + cache tokens")?,
        completion_tokens: count0(map, "output_tokens")?,
        prompt_tokens_details: (read > 0 || five_minutes > 0 || one_hour > 0).then_some(PromptTokensDetails {
            cached_tokens: read,
            cache_write_tokens: five_minutes,
            cache_write_1h_tokens: one_hour,
            ..PromptTokensDetails::default()
        }),
        web_searches,
        ..Usage::default()
    })
}

/// Gemini's per-modality token counts: `[{"modality": "AUDIO", "tokenCount": 10}, ...]`.
#[derive(Default)]
struct Modalities {
    audio: u64,
    image: u64,
    video: u64,
}

fn modalities(map: &Map<String, Value>, key: &'static str) -> Result<Modalities, PricingError> {
    let mut out = Modalities::default();
    let list = match map.get(key) {
        None | Some(Value::Null) => return Ok(out),
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(PricingError::InvalidUsage {
                field: key,
                value: kind(other).to_owned(),
                expected: "a list of {modality, tokenCount}",
            });
        }
    };
    for entry in list {
        let entry = object(entry)?;
        let n = count0(entry, "tokenCount")?;
        match text(entry, "modality")?.as_deref() {
            Some("AUDIO") => out.audio = sum(&[out.audio, n], key)?,
            Some("IMAGE") => out.image = sum(&[out.image, n], key)?,
            Some("VIDEO") => out.video = sum(&[out.video, n], key)?,
            // Text and document tokens are the text remainder.
            _ => {}
        }
    }
    Ok(out)
}

fn read_gemini(map: &Map<String, Value>) -> Result<Usage, PricingError> {
    let prompt = sum(
        &[
            count0(map, "promptTokenCount")?,
            count0(map, "toolUsePromptTokenCount")?,
        ],
        "promptTokenCount + toolUsePromptTokenCount",
    )?;
    let candidates = count0(map, "candidatesTokenCount")?;
    let thoughts = count0(map, "thoughtsTokenCount")?;
    // Some responses count the thoughts inside the candidates already: the total says so.
    let thoughts_inside = count(map, "totalTokenCount")?
        .is_some_and(|total| Some(total) == prompt.checked_add(candidates))
        && thoughts > 0;
    let cached = count0(map, "cachedContentTokenCount")?;
    let prompt_by = modalities(map, "promptTokensDetails")?;
    let cached_by = modalities(map, "cacheTokensDetails")?;
    let out_by = modalities(map, "candidatesTokensDetails")?;
    let less = |a: u64, b: u64, detail: &'static str, total: &'static str| {
        a.checked_sub(b).ok_or(PricingError::InconsistentUsage {
            detail,
            detail_value: b,
            total,
            total_value: a,
        })
    };
    let cached_audio = cached_by.audio;
    let cached_image = cached_by.image;
    let cached_media = sum(&[cached_audio, cached_image, cached_by.video], "cacheTokensDetails")?;
    let cached_text = less(cached, cached_media, "cacheTokensDetails", "cachedContentTokenCount")?;
    let details = PromptTokensDetails {
        // Cached video is billed as cached text: there is no cached-video price.
        cached_tokens: cached_text.saturating_add(cached_by.video),
        audio_tokens: less(
            prompt_by.audio,
            cached_audio,
            "cacheTokensDetails AUDIO",
            "promptTokensDetails AUDIO",
        )?,
        cached_audio_tokens: cached_audio,
        image_tokens: less(
            prompt_by.image,
            cached_image,
            "cacheTokensDetails IMAGE",
            "promptTokensDetails IMAGE",
        )?,
        cached_image_tokens: cached_image,
        video_tokens: less(
            prompt_by.video,
            cached_by.video,
            "cacheTokensDetails VIDEO",
            "promptTokensDetails VIDEO",
        )?,
        ..PromptTokensDetails::default()
    };
    let completion = CompletionTokensDetails {
        reasoning_tokens: thoughts,
        audio_tokens: out_by.audio,
        image_tokens: out_by.image,
        video_tokens: out_by.video,
    };
    Ok(Usage {
        prompt_tokens: prompt,
        completion_tokens: if thoughts_inside {
            candidates
        } else {
            sum(&[candidates, thoughts], "candidatesTokenCount + thoughtsTokenCount")?
        },
        prompt_tokens_details: (details != PromptTokensDetails::default()).then_some(details),
        completion_tokens_details: (completion != CompletionTokensDetails::default()).then_some(completion),
        ..Usage::default()
    })
}

/// A JSON object in which a key given twice is an error, at every level (the usual map
/// keeps the last value silently: a `"prompt_tokens": 0` after the real count).
pub(crate) struct UsageObject(pub(crate) Map<String, Value>);

/// Any JSON value, with every object in it read with each key once.
struct UniqueValue(Value);

impl<'de> Deserialize<'de> for UniqueValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor).map(UniqueValue)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value in which each key of an object appears once")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // A count that is not an integer is refused when it is read as a count.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(UniqueVisitor)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueValue(v)) = access.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some((key, UniqueValue(value))) = access.next_entry::<String, UniqueValue>()? {
            if map.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "{key} is given twice, expected each key once"
                )));
            }
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

impl<'de> Deserialize<'de> for UsageObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match deserializer.deserialize_any(UniqueVisitor)? {
            Value::Object(map) => Ok(UsageObject(map)),
            other => Err(serde::de::Error::custom(format!(
                "{} given, expected a usage object",
                kind(&other)
            ))),
        }
    }
}

impl TryFrom<UsageObject> for Usage {
    type Error = PricingError;

    /// The normalized form (OpenAI Chat Completions plus paygo's units), strictly.
    fn try_from(object: UsageObject) -> Result<Usage, PricingError> {
        Usage::from_value(&Value::Object(object.0), Some(UsageShape::OpenAiChat))
    }
}
