//! The price components: every unit a model can be billed in.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One billable unit of a model. A price book gives a USD price per unit for each
/// component the model is billed in; a quote multiplies it by the usage's quantity.
///
/// Token components split the OpenAI usage object without double counting:
///
/// - `prompt_tokens` is the sum of `InputToken`, `CacheReadToken`, `CacheWriteToken`,
///   `CacheWrite1hToken`, `InputAudioToken` and `InputImageToken`;
/// - `completion_tokens` is the sum of `OutputToken`, `ReasoningToken`, `OutputAudioToken`
///   and `OutputImageToken`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
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
    /// Audio prompt tokens.
    InputAudioToken,
    /// Image prompt tokens.
    InputImageToken,
    /// Text completion tokens (not reasoning, audio or image).
    OutputToken,
    /// Reasoning ("thinking") completion tokens.
    ReasoningToken,
    /// Audio completion tokens.
    OutputAudioToken,
    /// Image completion tokens.
    OutputImageToken,
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
    /// Input characters (text-to-speech, some embedding models).
    InputCharacter,
    /// Output characters.
    OutputCharacter,
    /// Requests (a fee per API call).
    Request,
    /// Search or rerank queries.
    Query,
    /// Web searches run by the model (optionally by search context size).
    WebSearch,
    /// Pages (OCR, document models).
    Page,
    /// Annotated pages (document models).
    AnnotationPage,
}

impl Component {
    /// The number of components.
    pub const COUNT: usize = 26;

    /// Every component, in declaration order (the order of a quote's breakdown).
    pub const ALL: [Component; Component::COUNT] = [
        Component::InputToken,
        Component::CacheReadToken,
        Component::CacheWriteToken,
        Component::CacheWrite1hToken,
        Component::InputAudioToken,
        Component::InputImageToken,
        Component::OutputToken,
        Component::ReasoningToken,
        Component::OutputAudioToken,
        Component::OutputImageToken,
        Component::InputImage,
        Component::OutputImage,
        Component::InputPixel,
        Component::OutputPixel,
        Component::InputSecond,
        Component::OutputSecond,
        Component::InputAudioSecond,
        Component::InputVideoSecond,
        Component::OutputVideoSecond,
        Component::InputCharacter,
        Component::OutputCharacter,
        Component::Request,
        Component::Query,
        Component::WebSearch,
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
            Component::InputAudioToken => "input_audio_token",
            Component::InputImageToken => "input_image_token",
            Component::OutputToken => "output_token",
            Component::ReasoningToken => "reasoning_token",
            Component::OutputAudioToken => "output_audio_token",
            Component::OutputImageToken => "output_image_token",
            Component::InputImage => "input_image",
            Component::OutputImage => "output_image",
            Component::InputPixel => "input_pixel",
            Component::OutputPixel => "output_pixel",
            Component::InputSecond => "input_second",
            Component::OutputSecond => "output_second",
            Component::InputAudioSecond => "input_audio_second",
            Component::InputVideoSecond => "input_video_second",
            Component::OutputVideoSecond => "output_video_second",
            Component::InputCharacter => "input_character",
            Component::OutputCharacter => "output_character",
            Component::Request => "request",
            Component::Query => "query",
            Component::WebSearch => "web_search",
            Component::Page => "page",
            Component::AnnotationPage => "annotation_page",
        }
    }

    /// The component with this name.
    pub fn from_name(name: &str) -> Option<Component> {
        Component::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether the quantity is a count of prompt-side tokens (which a pre-authorization
    /// estimate bounds by the prompt size).
    pub const fn is_prompt_token(self) -> bool {
        matches!(
            self,
            Component::InputToken
                | Component::CacheReadToken
                | Component::CacheWriteToken
                | Component::CacheWrite1hToken
                | Component::InputAudioToken
                | Component::InputImageToken
        )
    }

    /// Whether the quantity is a count of completion-side tokens (bounded by `max_tokens`).
    pub const fn is_completion_token(self) -> bool {
        matches!(
            self,
            Component::OutputToken
                | Component::ReasoningToken
                | Component::OutputAudioToken
                | Component::OutputImageToken
        )
    }

    /// The component whose price applies when this one has none, if any: a documented
    /// provider convention, not a guess (see `docs/pricing.md`).
    ///
    /// - cache reads and writes without their own price are billed as ordinary input
    ///   tokens (the provider gives no discount and charges no premium);
    /// - a 1-hour cache write without its own price is billed as a 5-minute write;
    /// - reasoning tokens without their own price are output tokens;
    /// - image prompt tokens without their own price are ordinary input tokens (vision
    ///   models count images into the prompt).
    ///
    /// Audio and image *output*, and every non-token unit, have no fallback: usage of them
    /// on a model without their price is an error.
    pub const fn fallback(self) -> Option<Component> {
        match self {
            Component::CacheReadToken | Component::CacheWriteToken | Component::InputImageToken => {
                Some(Component::InputToken)
            }
            Component::CacheWrite1hToken => Some(Component::CacheWriteToken),
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceTier {
    /// The default tier (OpenAI calls it `"default"`, accepted as an alias).
    #[default]
    #[serde(alias = "default")]
    Standard,
    /// Batch jobs (typically half price).
    Batch,
    /// Priority processing.
    Priority,
    /// Flex processing (slower, cheaper).
    Flex,
}

impl ServiceTier {
    /// Every tier.
    pub const ALL: [ServiceTier; 4] = [
        ServiceTier::Standard,
        ServiceTier::Batch,
        ServiceTier::Priority,
        ServiceTier::Flex,
    ];

    /// The snake-case name.
    pub const fn name(self) -> &'static str {
        match self {
            ServiceTier::Standard => "standard",
            ServiceTier::Batch => "batch",
            ServiceTier::Priority => "priority",
            ServiceTier::Flex => "flex",
        }
    }
}

impl fmt::Display for ServiceTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
