//! The price components: every unit a model can be billed in.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::PricingError;

/// One billable unit of a model. A price book gives a USD price per unit for each
/// component the model is billed in; a quote multiplies it by the usage's quantity.
///
/// Token components split the OpenAI usage object without double counting:
///
/// - `prompt_tokens` is the sum of every component for which [`Component::is_prompt_token`]
///   holds (text, cache reads and writes of every lifetime, audio, cached audio, image,
///   cached image and video prompt tokens);
/// - `completion_tokens` is the sum of every component for which
///   [`Component::is_completion_token`] holds (text, reasoning, audio, image and video
///   output tokens).
///
/// New units are added as providers price them: match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
#[non_exhaustive]
pub enum Component {
    /// Text prompt tokens that were neither read from nor written to a cache.
    InputToken,
    /// Prompt tokens read from the provider's prompt cache.
    CacheReadToken,
    /// Prompt tokens written to the cache with the default (5-minute) lifetime.
    CacheWriteToken,
    /// Prompt tokens written to the cache with a 1-hour lifetime.
    #[serde(rename = "cache_write_1h_token")]
    CacheWrite1hToken,
    /// Prompt tokens written to the cache with a 12-hour lifetime.
    #[serde(rename = "cache_write_12h_token")]
    CacheWrite12hToken,
    /// Audio prompt tokens (not read from a cache).
    InputAudioToken,
    /// Audio prompt tokens read from the cache.
    CacheReadAudioToken,
    /// Audio prompt tokens written to the cache.
    CacheWriteAudioToken,
    /// Image prompt tokens (not read from a cache).
    InputImageToken,
    /// Image prompt tokens read from the cache.
    CacheReadImageToken,
    /// Video prompt tokens.
    InputVideoToken,
    /// Text completion tokens (not reasoning, audio, image or video).
    OutputToken,
    /// Reasoning ("thinking") completion tokens.
    ReasoningToken,
    /// Audio completion tokens.
    OutputAudioToken,
    /// Image completion tokens.
    OutputImageToken,
    /// Video completion tokens.
    OutputVideoToken,
    /// Citation tokens (search models that bill the sources they read, outside `prompt_tokens`).
    CitationToken,
    /// Input images, per image.
    InputImage,
    /// Generated images, per image (optionally by size and quality).
    OutputImage,
    /// Input pixels.
    InputPixel,
    /// Output pixels.
    OutputPixel,
    /// Seconds of input as the model bills it (audio for transcription models).
    InputSecond,
    /// Seconds of output (generated audio or video; optionally by video resolution).
    OutputSecond,
    /// Seconds of input audio (multimodal chat models).
    InputAudioSecond,
    /// Seconds of input video.
    InputVideoSecond,
    /// Seconds of output video.
    OutputVideoSecond,
    /// Seconds the call ran (provisioned-throughput entries priced by `cost_per_second`).
    CallSecond,
    /// Input characters (text-to-speech, some embedding models).
    InputCharacter,
    /// Output characters.
    OutputCharacter,
    /// Text messages sent into a realtime (voice) session.
    TextMessage,
    /// Requests (a fee per API call).
    Request,
    /// Search or rerank queries.
    Query,
    /// Web searches run by the model (optionally by search context size).
    WebSearch,
    /// Map-grounding queries run by the model.
    MapsQuery,
    /// Code-interpreter sessions the model opened.
    CodeInterpreterSession,
    /// Pages (OCR, document models).
    Page,
    /// Annotated pages (document models).
    AnnotationPage,
}

impl Component {
    /// The number of components.
    pub const COUNT: usize = 37;

    /// Every component, in declaration order (the order of a quote's breakdown).
    pub const ALL: [Component; Component::COUNT] = [
        Component::InputToken,
        Component::CacheReadToken,
        Component::CacheWriteToken,
        Component::CacheWrite1hToken,
        Component::CacheWrite12hToken,
        Component::InputAudioToken,
        Component::CacheReadAudioToken,
        Component::CacheWriteAudioToken,
        Component::InputImageToken,
        Component::CacheReadImageToken,
        Component::InputVideoToken,
        Component::OutputToken,
        Component::ReasoningToken,
        Component::OutputAudioToken,
        Component::OutputImageToken,
        Component::OutputVideoToken,
        Component::CitationToken,
        Component::InputImage,
        Component::OutputImage,
        Component::InputPixel,
        Component::OutputPixel,
        Component::InputSecond,
        Component::OutputSecond,
        Component::InputAudioSecond,
        Component::InputVideoSecond,
        Component::OutputVideoSecond,
        Component::CallSecond,
        Component::InputCharacter,
        Component::OutputCharacter,
        Component::TextMessage,
        Component::Request,
        Component::Query,
        Component::WebSearch,
        Component::MapsQuery,
        Component::CodeInterpreterSession,
        Component::Page,
        Component::AnnotationPage,
    ];

    /// The component's position in [`Component::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The snake-case name used in files, quotes and errors (`"cache_read_token"`).
    pub const fn name(self) -> &'static str {
        match self {
            Component::InputToken => "input_token",
            Component::CacheReadToken => "cache_read_token",
            Component::CacheWriteToken => "cache_write_token",
            Component::CacheWrite1hToken => "cache_write_1h_token",
            Component::CacheWrite12hToken => "cache_write_12h_token",
            Component::InputAudioToken => "input_audio_token",
            Component::CacheReadAudioToken => "cache_read_audio_token",
            Component::CacheWriteAudioToken => "cache_write_audio_token",
            Component::InputImageToken => "input_image_token",
            Component::CacheReadImageToken => "cache_read_image_token",
            Component::InputVideoToken => "input_video_token",
            Component::OutputToken => "output_token",
            Component::ReasoningToken => "reasoning_token",
            Component::OutputAudioToken => "output_audio_token",
            Component::OutputImageToken => "output_image_token",
            Component::OutputVideoToken => "output_video_token",
            Component::CitationToken => "citation_token",
            Component::InputImage => "input_image",
            Component::OutputImage => "output_image",
            Component::InputPixel => "input_pixel",
            Component::OutputPixel => "output_pixel",
            Component::InputSecond => "input_second",
            Component::OutputSecond => "output_second",
            Component::InputAudioSecond => "input_audio_second",
            Component::InputVideoSecond => "input_video_second",
            Component::OutputVideoSecond => "output_video_second",
            Component::CallSecond => "call_second",
            Component::InputCharacter => "input_character",
            Component::OutputCharacter => "output_character",
            Component::TextMessage => "text_message",
            Component::Request => "request",
            Component::Query => "query",
            Component::WebSearch => "web_search",
            Component::MapsQuery => "maps_query",
            Component::CodeInterpreterSession => "code_interpreter_session",
            Component::Page => "page",
            Component::AnnotationPage => "annotation_page",
        }
    }

    /// The component with this name.
    pub fn from_name(name: &str) -> Option<Component> {
        Component::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether the quantity is a count of prompt-side tokens (part of `prompt_tokens`, which
    /// a pre-authorization estimate bounds by the prompt size).
    pub const fn is_prompt_token(self) -> bool {
        matches!(
            self,
            Component::InputToken
                | Component::CacheReadToken
                | Component::CacheWriteToken
                | Component::CacheWrite1hToken
                | Component::CacheWrite12hToken
                | Component::InputAudioToken
                | Component::CacheReadAudioToken
                | Component::CacheWriteAudioToken
                | Component::InputImageToken
                | Component::CacheReadImageToken
                | Component::InputVideoToken
        )
    }

    /// Whether the quantity is a count of completion-side tokens (part of
    /// `completion_tokens`, bounded by `max_tokens`).
    pub const fn is_completion_token(self) -> bool {
        matches!(
            self,
            Component::OutputToken
                | Component::ReasoningToken
                | Component::OutputAudioToken
                | Component::OutputImageToken
                | Component::OutputVideoToken
        )
    }

    /// The component whose price applies when this one has none, if any: a documented
    /// provider convention, not a guess (see `docs/pricing.md`).
    ///
    /// - cache reads and writes without their own price are billed as the same kind of
    ///   token not cached (text, audio or image: the provider gives no discount and
    ///   charges no premium);
    /// - 1-hour and 12-hour cache writes without their own price are billed as 5-minute
    ///   writes (LiteLLM's rule for every long-lifetime write);
    /// - reasoning tokens without their own price are output tokens;
    /// - image prompt tokens without their own price are ordinary input tokens (vision
    ///   models count images into the prompt).
    ///
    /// Audio, image and video *output*, video input, citation tokens and every non-token
    /// unit have no fallback: usage of them on a model without their price is an error.
    pub const fn fallback(self) -> Option<Component> {
        match self {
            Component::CacheReadToken | Component::CacheWriteToken | Component::InputImageToken => {
                Some(Component::InputToken)
            }
            Component::CacheWrite1hToken | Component::CacheWrite12hToken => Some(Component::CacheWriteToken),
            Component::CacheReadAudioToken | Component::CacheWriteAudioToken => Some(Component::InputAudioToken),
            Component::CacheReadImageToken => Some(Component::InputImageToken),
            Component::ReasoningToken => Some(Component::OutputToken),
            _ => None,
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What kind of model an entry is, as the catalog says.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Chat completions.
    Chat,
    /// Legacy text completions.
    Completion,
    /// The Responses API.
    Responses,
    /// Embeddings.
    Embedding,
    /// Image generation.
    ImageGeneration,
    /// Image editing.
    ImageEdit,
    /// Speech to text.
    AudioTranscription,
    /// Text to speech.
    AudioSpeech,
    /// Video generation.
    VideoGeneration,
    /// Reranking.
    Rerank,
    /// Moderation.
    Moderation,
    /// Search.
    Search,
    /// Optical character recognition.
    Ocr,
    /// Realtime (streaming audio) sessions.
    Realtime,
    /// A mode this crate has no name for, kept as written.
    Other(String),
}

impl Mode {
    /// The mode with this catalog name (`"image_generation"`), or [`Mode::Other`].
    pub fn from_name(name: &str) -> Mode {
        match name {
            "chat" => Mode::Chat,
            "completion" => Mode::Completion,
            "responses" => Mode::Responses,
            "embedding" => Mode::Embedding,
            "image_generation" => Mode::ImageGeneration,
            "image_edit" => Mode::ImageEdit,
            "audio_transcription" => Mode::AudioTranscription,
            "audio_speech" => Mode::AudioSpeech,
            "video_generation" => Mode::VideoGeneration,
            "rerank" => Mode::Rerank,
            "moderation" => Mode::Moderation,
            "search" => Mode::Search,
            "ocr" => Mode::Ocr,
            "realtime" => Mode::Realtime,
            other => Mode::Other(other.to_owned()),
        }
    }
}

/// The service tier a call ran at; each tier can have its own prices.
///
/// A tier is a name, not a closed list, because providers keep adding them (`batch`,
/// `flex`, `priority`, `ultrafast`, `balanced`, ...): 1 to [`ServiceTier::NAME_LEN_MAX`]
/// characters of `a-z`, `0-9` and `_`, case-insensitive on input. `"default"` (OpenAI's
/// name for the standard tier), `"batches"` (LiteLLM's key suffix) and `"fast"` (which
/// LiteLLM prices at the priority tier's keys) are read as [`ServiceTier::STANDARD`],
/// [`ServiceTier::BATCH`] and [`ServiceTier::PRIORITY`]. A tier a model has no prices for
/// is billed at the standard tier's prices.
///
/// # Example
///
/// ```
/// use paygo_pricing::ServiceTier;
///
/// assert_eq!(ServiceTier::new("Default")?, ServiceTier::STANDARD);
/// let ultrafast = ServiceTier::new("ultrafast")?;
/// assert_eq!(ultrafast.name(), "ultrafast");
/// assert!(ServiceTier::new("not a tier").is_err());
/// # Ok::<(), paygo_pricing::PricingError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceTier {
    // The name's bytes, zero-padded (so that the derived order is the names' order).
    bytes: [u8; ServiceTier::NAME_LEN_MAX],
    len: u8,
}

impl ServiceTier {
    /// The longest tier name.
    pub const NAME_LEN_MAX: usize = 23;
    /// The default tier.
    pub const STANDARD: ServiceTier = ServiceTier::known("standard");
    /// Batch jobs (typically half price).
    pub const BATCH: ServiceTier = ServiceTier::known("batch");
    /// Priority processing.
    pub const PRIORITY: ServiceTier = ServiceTier::known("priority");
    /// Flex processing (slower, cheaper).
    pub const FLEX: ServiceTier = ServiceTier::known("flex");

    /// A tier from a constant name that is known to be valid.
    const fn known(name: &str) -> ServiceTier {
        let mut bytes = [0u8; ServiceTier::NAME_LEN_MAX];
        let src = name.as_bytes();
        let mut i = 0;
        while i < src.len() {
            bytes[i] = src[i];
            i += 1;
        }
        ServiceTier {
            bytes,
            len: src.len() as u8,
        }
    }

    /// The tier with this name (lower-cased; `"default"` is the standard tier and
    /// `"batches"` the batch tier).
    ///
    /// # Errors
    ///
    /// [`PricingError::InvalidServiceTier`] for an empty name, one longer than
    /// [`ServiceTier::NAME_LEN_MAX`], or one with a character outside `a-z`, `0-9`, `_`.
    pub fn new(name: &str) -> Result<ServiceTier, PricingError> {
        let invalid = || PricingError::InvalidServiceTier {
            name: name.chars().take(40).collect(),
        };
        if name.is_empty() || name.len() > ServiceTier::NAME_LEN_MAX {
            return Err(invalid());
        }
        let mut bytes = [0u8; ServiceTier::NAME_LEN_MAX];
        for (slot, b) in bytes.iter_mut().zip(name.bytes()) {
            let b = b.to_ascii_lowercase();
            if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                return Err(invalid());
            }
            *slot = b;
        }
        let tier = ServiceTier {
            bytes,
            len: name.len() as u8,
        };
        Ok(match tier.name() {
            "default" => ServiceTier::STANDARD,
            "batches" => ServiceTier::BATCH,
            // LiteLLM prices a "fast" call at the priority tier's prices.
            "fast" => ServiceTier::PRIORITY,
            _ => tier,
        })
    }

    /// The tier's name (`"standard"`, `"batch"`, `"ultrafast"`).
    pub fn name(&self) -> &str {
        // Built only from ASCII bytes (checked in `new`, constants in `known`).
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("standard")
    }

    /// Whether this is the standard tier.
    pub fn is_standard(self) -> bool {
        self == ServiceTier::STANDARD
    }
}

impl Default for ServiceTier {
    fn default() -> ServiceTier {
        ServiceTier::STANDARD
    }
}

impl fmt::Display for ServiceTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Debug for ServiceTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceTier({:?})", self.name())
    }
}

impl std::str::FromStr for ServiceTier {
    type Err = PricingError;

    fn from_str(s: &str) -> Result<ServiceTier, PricingError> {
        ServiceTier::new(s)
    }
}

impl Serialize for ServiceTier {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for ServiceTier {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        ServiceTier::new(&text).map_err(serde::de::Error::custom)
    }
}
