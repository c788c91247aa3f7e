//! The size of a request: an upper bound on its prompt tokens, and its output limit.
//!
//! Before a request is forwarded upstream, a credit hold is placed for the most the call
//! can cost. That needs the prompt size, which the proxy cannot count exactly without the
//! model's tokenizer (which differs per provider, and for some is not public), so
//! [`size_request`] computes an **upper bound that is never below the true count**:
//!
//! - every piece of text is bounded by its length in UTF-8 bytes: a byte-level BPE
//!   tokenizer (OpenAI's `cl100k_base` and `o200k_base`, Llama 3, DeepSeek, Qwen) makes
//!   each token of at least one byte of its input, and a `SentencePiece` tokenizer with byte
//!   fallback (Gemini, Gemma, Llama 2) makes each token of at least one character or one
//!   byte, plus at most one leading space marker, which [`TEXT_PART_OVERHEAD_TOKENS`]
//!   covers;
//! - each message adds [`MESSAGE_OVERHEAD_TOKENS`] for the chat template's special tokens
//!   (OpenAI documents 3, plus 1 for a name; `ChatML` and Llama 3 templates use 4 to 5), and
//!   the reply adds [`REPLY_PRIMING_TOKENS`] (OpenAI documents 3);
//! - tool definitions, tool calls, response formats and every other structured part are
//!   bounded by the length of their JSON text (escaping only lengthens it), plus
//!   [`TOOLS_OVERHEAD_TOKENS`] once and [`TOOL_OVERHEAD_TOKENS`] per tool for the text the
//!   provider wraps them in (Anthropic's tool-use system prompt is 313 to 530 tokens);
//! - an image counts as the most tokens one image can cost on the model's family
//!   ([`image_tokens_max`]);
//! - content whose size cannot be bounded from the body (audio, files, references to
//!   earlier responses, built-in tools that feed search results into the prompt) is
//!   refused with [`HttpError::UnsupportedContent`] rather than guessed.
//!
//! The bound saturates at `u64::MAX` instead of overflowing: a saturated bound is still an
//! upper bound (and no balance covers it). See `docs/http.md` (the size of the hold) for the tightness
//! measured against OpenAI's tokenizers.

use std::io;

use paygo_pricing::{Component, ModelSpec, PriceBook, Usage};
use serde_json::{Map, Value};

use crate::HttpError;

/// Which OpenAI-compatible endpoint a body was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Endpoint {
    /// `POST /v1/chat/completions`.
    ChatCompletions,
    /// `POST /v1/responses`.
    Responses,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `POST /v1/images/generations`.
    ImageGenerations,
    /// `POST /v1/audio/speech`.
    AudioSpeech,
}

/// What the proxy needs to know about a request before calling upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSize {
    /// The `model` field as sent.
    pub model: String,
    /// An upper bound on the prompt tokens (all kinds: text, image, tool definitions),
    /// never below the count the upstream will report; 0 for image and speech models that
    /// price no input tokens.
    pub prompt_tokens: u64,
    /// The most completion tokens the call can produce: the request's `max_tokens`,
    /// `max_completion_tokens` or `max_output_tokens` (the larger if several are given),
    /// else the model's maximum from the price book; times `n` for several chat choices,
    /// plus the predicted output. 0 for embeddings.
    pub max_output_tokens: u64,
    /// The non-token units of the call for [`paygo_pricing::EstimateRequest::units`]:
    /// generated images (count, and the size and quality when the book prices that
    /// variant) and speech input characters; `None` for token-priced calls.
    pub units: Option<Usage>,
    /// Whether the request asks for a stream (`"stream": true`).
    pub stream: bool,
    /// Whether a streamed response will carry a usage chunk: chat's
    /// `stream_options.include_usage`; always true for the Responses API.
    pub include_usage: bool,
}

/// Tokens a chat template adds around one message (role markers, separators). OpenAI
/// documents 3 per message and 1 more for a `name`; `ChatML` and Llama 3 templates add 4 to
/// 5. The role and name themselves are counted as text.
pub const MESSAGE_OVERHEAD_TOKENS: u64 = 8;

/// Tokens added once to prime the reply (OpenAI documents 3: `<|start|>assistant<|message|>`),
/// and a beginning-of-sequence token for templates that have one.
pub const REPLY_PRIMING_TOKENS: u64 = 8;

/// Tokens added for each separate piece of text (a content part, an embedding input): a
/// `SentencePiece` tokenizer may put a leading space marker token before it.
pub const TEXT_PART_OVERHEAD_TOKENS: u64 = 1;

/// Tokens added once when a request has tool definitions: the text the provider wraps them
/// in (Anthropic's tool-use system prompt is 313 to 530 tokens by model; OpenAI's function
/// namespace header is under 20).
pub const TOOLS_OVERHEAD_TOKENS: u64 = 600;

/// Tokens added for each tool definition (and once for a response format) beyond the
/// length of its JSON text: OpenAI renders each function as a TypeScript-like declaration
/// (`type name = (_: {...}) => any;`) whose fixed words are not in the JSON.
pub const TOOL_OVERHEAD_TOKENS: u64 = 32;

/// Tokens added for each embedding input: begin and end markers some embedding models add.
pub const EMBEDDING_INPUT_OVERHEAD_TOKENS: u64 = 2;

/// The most output image tokens one generated image costs on a model priced by image
/// tokens and with no `max_output_tokens` in the book: `gpt-image-1` at high quality and
/// 1536×1024 is 6,240 tokens.
pub const IMAGE_OUTPUT_TOKENS_MAX: u64 = 6_240;

/// The most tokens one input image costs when the model's family is not known: the
/// largest documented figure of any family, `gpt-4o-mini`'s 2,833 + 5,667 × 8 tiles.
pub const IMAGE_TOKENS_UNKNOWN_FAMILY: u64 = 48_169;

/// The most tokens one input image can cost on `model`, at low detail when `low_detail`.
///
/// By the model id (a `provider/` prefix is ignored), from the providers' documented
/// formulas:
///
/// | family | low | high or auto |
/// | --- | --- | --- |
/// | `gpt-4o-mini` | 2,833 | 2,833 + 5,667 × 8 = 48,169 |
/// | `gpt-4.1-mini`, `gpt-4.1-nano`, `gpt-5-mini`, `gpt-5-nano`, `o4-mini` (32 px patches, at most 1,536, times at most 2.46) | 3,779 | 3,779 |
/// | `gpt-5` | 70 | 70 + 140 × 8 = 1,190 |
/// | `gpt-4o`, `gpt-4.1`, `gpt-4.5`, `gpt-4-turbo`, `chatgpt-4o` | 85 | 85 + 170 × 8 = 1,445 |
/// | `o1`, `o3` | 75 | 75 + 150 × 8 = 1,275 |
/// | `claude` (any) | 2,000 | 2,000 (Anthropic: about 1,600 at most, images are scaled down above it) |
/// | any other | 48,169 | 48,169 ([`IMAGE_TOKENS_UNKNOWN_FAMILY`]) |
///
/// 8 tiles of 512 px is the most a high-detail image can have: it is scaled to fit in
/// 2048×2048, then so that its short side is at most 768 px, so it is at most 2 × 4 tiles.
pub fn image_tokens_max(model: &str, low_detail: bool) -> u64 {
    let name = model.rsplit('/').next().unwrap_or(model).to_ascii_lowercase();
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| name.starts_with(p));
    let (low, high) = if starts(&["gpt-4o-mini"]) {
        (2_833, 48_169)
    } else if starts(&["gpt-4.1-mini", "gpt-4.1-nano", "gpt-5-mini", "gpt-5-nano", "o4-mini"]) {
        (3_779, 3_779)
    } else if starts(&["gpt-5"]) {
        (70, 1_190)
    } else if starts(&["gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-4-turbo", "chatgpt-4o"]) {
        (85, 1_445)
    } else if starts(&["o1", "o3"]) {
        (75, 1_275)
    } else if name.contains("claude") {
        (2_000, 2_000)
    } else {
        (IMAGE_TOKENS_UNKNOWN_FAMILY, IMAGE_TOKENS_UNKNOWN_FAMILY)
    };
    if low_detail { low } else { high }
}

/// An upper bound on the tokens of one piece of text: its UTF-8 length, plus
/// [`TEXT_PART_OVERHEAD_TOKENS`].
pub fn text_tokens_bound(text: &str) -> u64 {
    (text.len() as u64).saturating_add(TEXT_PART_OVERHEAD_TOKENS)
}

/// Sizes a request from its JSON body: the prompt-token bound, the output limit, the
/// non-token units and the streaming flags.
///
/// # Errors
///
/// - [`HttpError::MalformedBody`] when the body is not a JSON object;
/// - [`HttpError::MissingField`] for a missing `model`, `messages`, `input` or `prompt`;
/// - [`HttpError::InvalidField`] for a field of the wrong type or an impossible value
///   (an empty `messages`, a `max_tokens` of 0, an unknown image `detail`);
/// - [`HttpError::Pricing`] with [`paygo_pricing::PricingError::UnknownModel`] for a model
///   the price book does not have;
/// - [`HttpError::MaxTokensRequired`] when the request sets no output limit and the book
///   knows no maximum for the model;
/// - [`HttpError::UnsupportedContent`] for content whose size cannot be bounded: audio
///   input, files, `previous_response_id`, `conversation`, stored prompts, item
///   references, encrypted reasoning, built-in tools of the Responses API;
/// - [`HttpError::NotMeterable`] for a call whose cost could not be metered: a streamed
///   image generation, speech from a model priced by the audio it produces.
pub fn size_request(endpoint: Endpoint, body: &Value, prices: &PriceBook) -> Result<RequestSize, HttpError> {
    let body = body.as_object().ok_or_else(|| HttpError::MalformedBody {
        reason: format!("a JSON {} given, expected an object", kind(body)),
    })?;
    let model = match body.get("model") {
        None | Some(Value::Null) => return Err(HttpError::MissingField { field: "model" }),
        Some(Value::String(m)) => m.clone(),
        Some(_) => {
            return Err(HttpError::InvalidField {
                field: "model",
                expected: "a string naming the model",
            });
        }
    };
    let spec = prices.model(&model)?;
    match endpoint {
        Endpoint::ChatCompletions => chat(body, model, spec),
        Endpoint::Responses => responses(body, model, spec),
        Endpoint::Embeddings => embeddings(body, model),
        Endpoint::ImageGenerations => images(body, model, spec),
        Endpoint::AudioSpeech => speech(body, model, spec),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A running sum that saturates (an upper bound stays one).
#[derive(Debug, Default, Clone, Copy)]
struct Sum(u64);

impl Sum {
    fn add(&mut self, n: u64) {
        self.0 = self.0.saturating_add(n);
    }
}

/// Counts the bytes written to it.
struct ByteCount(u64);

impl io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len() as u64);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The length of a value's compact JSON text, plus [`TEXT_PART_OVERHEAD_TOKENS`].
fn json_tokens_bound(value: &impl serde::Serialize) -> Result<u64, HttpError> {
    let mut count = ByteCount(0);
    serde_json::to_writer(&mut count, value).map_err(|e| HttpError::MalformedBody {
        reason: format!("a value could not be written back as JSON: {e}"),
    })?;
    Ok(count.0.saturating_add(TEXT_PART_OVERHEAD_TOKENS))
}

fn present<'a>(body: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    body.get(field).filter(|v| !v.is_null())
}

/// A positive whole number of tokens, if given.
fn opt_limit(body: &Map<String, Value>, field: &'static str) -> Result<Option<u64>, HttpError> {
    match present(body, field) {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Ok(Some(n)),
            _ => Err(HttpError::InvalidField {
                field,
                expected: "a whole number above zero",
            }),
        },
    }
}

fn opt_bool(body: &Map<String, Value>, field: &'static str) -> Result<bool, HttpError> {
    match present(body, field) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(HttpError::InvalidField {
            field,
            expected: "true or false",
        }),
    }
}

fn opt_str<'a>(body: &'a Map<String, Value>, field: &'static str) -> Result<Option<&'a str>, HttpError> {
    match present(body, field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(HttpError::InvalidField {
            field,
            expected: "a string",
        }),
    }
}

fn unsupported(what: impl Into<String>) -> HttpError {
    HttpError::UnsupportedContent { what: what.into() }
}

/// The output limit: the largest of the given fields, else the book's maximum.
fn output_limit(
    body: &Map<String, Value>,
    fields: &[&'static str],
    model: &str,
    spec: &ModelSpec,
) -> Result<u64, HttpError> {
    let mut requested: Option<u64> = None;
    for field in fields {
        if let Some(n) = opt_limit(body, field)? {
            requested = Some(requested.map_or(n, |r| r.max(n)));
        }
    }
    requested
        .or(spec.max_output_tokens)
        .ok_or_else(|| HttpError::MaxTokensRequired {
            model: model.to_owned(),
        })
}

/// Whether any price version of the model prices a component in its standard card.
fn prices_component(spec: &ModelSpec, wanted: impl Fn(Component) -> bool) -> bool {
    spec.versions.iter().any(|v| {
        v.prices.iter().any(|(c, _)| wanted(c))
            || v.context_tiers.iter().any(|t| t.prices.iter().any(|(c, _)| wanted(c)))
            || v.service_tiers
                .values()
                .any(|t| t.prices.iter().any(|(c, _)| wanted(c)))
    })
}

/// Tool definitions (`tools`, or the legacy `functions`): their JSON text and overheads.
fn tools_bound(body: &Map<String, Value>, field: &'static str, responses: bool) -> Result<u64, HttpError> {
    let Some(tools) = present(body, field) else {
        return Ok(0);
    };
    let tools = tools.as_array().ok_or(HttpError::InvalidField {
        field,
        expected: "an array of tool definitions",
    })?;
    if tools.is_empty() {
        return Ok(0);
    }
    let mut sum = Sum(TOOLS_OVERHEAD_TOKENS);
    for tool in tools {
        let object = tool.as_object().ok_or(HttpError::InvalidField {
            field,
            expected: "an array of tool definitions",
        })?;
        if responses {
            match object.get("type").and_then(Value::as_str) {
                Some("function" | "custom") => {}
                Some(other) => {
                    return Err(unsupported(format!(
                        "built-in tool `{}` (its results enter the prompt in amounts the request cannot bound); only function and custom tools can be held for",
                        other.chars().take(40).collect::<String>()
                    )));
                }
                None => {
                    return Err(HttpError::InvalidField {
                        field: "tools.type",
                        expected: "a string naming the tool type",
                    });
                }
            }
        }
        sum.add(TOOL_OVERHEAD_TOKENS);
        sum.add(json_tokens_bound(tool)?);
    }
    Ok(sum.0)
}

/// The image `detail`: whether it is `"low"`.
fn low_detail(value: Option<&Value>) -> Result<bool, HttpError> {
    match value {
        None | Some(Value::Null) => Ok(false),
        Some(Value::String(d)) => match d.as_str() {
            "low" => Ok(true),
            "high" | "auto" | "original" => Ok(false),
            _ => Err(HttpError::InvalidField {
                field: "detail",
                expected: "\"low\", \"high\" or \"auto\"",
            }),
        },
        Some(_) => Err(HttpError::InvalidField {
            field: "detail",
            expected: "\"low\", \"high\" or \"auto\"",
        }),
    }
}

fn text_field<'a>(part: &'a Map<String, Value>, field: &'static str) -> Result<&'a str, HttpError> {
    match part.get(field) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(HttpError::MissingField { field }),
        Some(_) => Err(HttpError::InvalidField {
            field,
            expected: "a string",
        }),
    }
}

const CONTENT_EXPECTED: &str = "a string, null or an array of content parts";

/// The bound of a message's `content`: a string, null, or an array of typed parts.
fn content_bound(content: &Value, model: &str) -> Result<u64, HttpError> {
    match content {
        Value::Null => Ok(0),
        Value::String(s) => Ok(text_tokens_bound(s)),
        Value::Array(parts) => {
            let mut sum = Sum::default();
            for part in parts {
                sum.add(part_bound(part, model)?);
            }
            Ok(sum.0)
        }
        _ => Err(HttpError::InvalidField {
            field: "content",
            expected: CONTENT_EXPECTED,
        }),
    }
}

/// One content part, of chat (`text`, `image_url`) or of the Responses API (`input_text`,
/// `output_text`, `input_image`).
fn part_bound(part: &Value, model: &str) -> Result<u64, HttpError> {
    let part = part.as_object().ok_or(HttpError::InvalidField {
        field: "content",
        expected: CONTENT_EXPECTED,
    })?;
    let kind = match part.get("type") {
        Some(Value::String(t)) => t.as_str(),
        None | Some(Value::Null) => return Err(HttpError::MissingField { field: "content.type" }),
        Some(_) => {
            return Err(HttpError::InvalidField {
                field: "content.type",
                expected: "a string naming the part type",
            });
        }
    };
    match kind {
        "text" | "input_text" | "output_text" => Ok(text_tokens_bound(text_field(part, "text")?)),
        "refusal" => Ok(text_tokens_bound(text_field(part, "refusal")?)),
        "image_url" => {
            let detail = match part.get("image_url") {
                Some(Value::String(_)) => None,
                Some(Value::Object(image)) => image.get("detail"),
                None | Some(Value::Null) => return Err(HttpError::MissingField { field: "image_url" }),
                Some(_) => {
                    return Err(HttpError::InvalidField {
                        field: "image_url",
                        expected: "an object with a url, or a url string",
                    });
                }
            };
            Ok(image_tokens_max(model, low_detail(detail)?))
        }
        "input_image" => Ok(image_tokens_max(model, low_detail(part.get("detail"))?)),
        "input_audio" => Err(unsupported(
            "audio input (its tokens depend on its duration, which the body does not give)",
        )),
        "file" | "input_file" => Err(unsupported("file input (its tokens depend on the file's contents)")),
        other => Err(unsupported(format!(
            "content part of type `{}`",
            other.chars().take(40).collect::<String>()
        ))),
    }
}

fn chat(body: &Map<String, Value>, model: String, spec: &ModelSpec) -> Result<RequestSize, HttpError> {
    let messages = match body.get("messages") {
        None | Some(Value::Null) => return Err(HttpError::MissingField { field: "messages" }),
        Some(Value::Array(m)) => m,
        Some(_) => {
            return Err(HttpError::InvalidField {
                field: "messages",
                expected: "an array of message objects",
            });
        }
    };
    if messages.is_empty() {
        return Err(HttpError::InvalidField {
            field: "messages",
            expected: "at least one message",
        });
    }
    let mut sum = Sum(REPLY_PRIMING_TOKENS);
    for message in messages {
        let message = message.as_object().ok_or(HttpError::InvalidField {
            field: "messages",
            expected: "an array of message objects",
        })?;
        text_field(message, "role")?;
        sum.add(MESSAGE_OVERHEAD_TOKENS);
        for (key, value) in message {
            match key.as_str() {
                "role" | "name" | "tool_call_id" | "refusal" => {
                    if let Value::String(s) = value {
                        sum.add(text_tokens_bound(s));
                    } else if !value.is_null() {
                        return Err(HttpError::InvalidField {
                            field: "messages.name, role, tool_call_id or refusal",
                            expected: "a string",
                        });
                    }
                }
                "content" => sum.add(content_bound(value, &model)?),
                "audio" if !value.is_null() => {
                    return Err(unsupported(
                        "a reference to an earlier audio response (messages.audio): its tokens are not in the body",
                    ));
                }
                // tool_calls, function_call and any field the template may render: their JSON.
                _ => sum.add(json_tokens_bound(value)?),
            }
        }
    }
    sum.add(tools_bound(body, "tools", false)?);
    sum.add(tools_bound(body, "functions", false)?);
    for field in ["response_format", "tool_choice", "function_call"] {
        if let Some(value) = present(body, field) {
            sum.add(TOOL_OVERHEAD_TOKENS);
            sum.add(json_tokens_bound(value)?);
        }
    }
    let limit = output_limit(body, &["max_completion_tokens", "max_tokens"], &model, spec)?;
    let choices = opt_limit(body, "n")?.unwrap_or(1);
    let mut output = Sum(limit.saturating_mul(choices));
    // Predicted output: tokens of the prediction that are not used are billed as output.
    if let Some(prediction) = present(body, "prediction") {
        let content = prediction
            .as_object()
            .and_then(|p| p.get("content"))
            .ok_or(HttpError::InvalidField {
                field: "prediction",
                expected: "an object with a content",
            })?;
        output.add(content_bound(content, &model)?);
    }
    let stream = opt_bool(body, "stream")?;
    let include_usage = match present(body, "stream_options") {
        None => false,
        Some(Value::Object(options)) => opt_bool(options, "include_usage")?,
        Some(_) => {
            return Err(HttpError::InvalidField {
                field: "stream_options",
                expected: "an object",
            });
        }
    };
    Ok(RequestSize {
        model,
        prompt_tokens: sum.0,
        max_output_tokens: output.0,
        units: None,
        stream,
        include_usage,
    })
}

/// One item of a Responses API `input` array.
fn response_item_bound(item: &Value, model: &str) -> Result<u64, HttpError> {
    let item = item.as_object().ok_or(HttpError::InvalidField {
        field: "input",
        expected: "a string or an array of input items",
    })?;
    let kind = match item.get("type") {
        Some(Value::String(t)) => t.as_str(),
        None | Some(Value::Null) if item.contains_key("role") => "message",
        None | Some(Value::Null) => return Err(HttpError::MissingField { field: "input.type" }),
        Some(_) => {
            return Err(HttpError::InvalidField {
                field: "input.type",
                expected: "a string naming the item type",
            });
        }
    };
    let mut sum = Sum(MESSAGE_OVERHEAD_TOKENS);
    match kind {
        "message" => {
            sum.add(text_tokens_bound(text_field(item, "role")?));
            for (key, value) in item {
                match key.as_str() {
                    "role" | "type" | "id" | "status" => {}
                    "content" => sum.add(content_bound(value, model)?),
                    _ => sum.add(json_tokens_bound(value)?),
                }
            }
        }
        "function_call" | "function_call_output" | "custom_tool_call" | "custom_tool_call_output" => {
            sum.add(json_tokens_bound(item)?);
        }
        "reasoning" => {
            if present(item, "encrypted_content").is_some() {
                return Err(unsupported(
                    "encrypted reasoning (its tokens cannot be counted from the body)",
                ));
            }
            sum.add(json_tokens_bound(item)?);
        }
        other => {
            return Err(unsupported(format!(
                "input item of type `{}` (its tokens are not in the body)",
                other.chars().take(40).collect::<String>()
            )));
        }
    }
    Ok(sum.0)
}

fn responses(body: &Map<String, Value>, model: String, spec: &ModelSpec) -> Result<RequestSize, HttpError> {
    for (field, what) in [
        (
            "previous_response_id",
            "previous_response_id (the earlier conversation is not in the body)",
        ),
        (
            "conversation",
            "conversation (the stored conversation is not in the body)",
        ),
        ("prompt", "a stored prompt template (its text is not in the body)"),
    ] {
        if present(body, field).is_some() {
            return Err(unsupported(what));
        }
    }
    let mut sum = Sum(REPLY_PRIMING_TOKENS);
    match body.get("input") {
        None | Some(Value::Null) => return Err(HttpError::MissingField { field: "input" }),
        Some(Value::String(s)) => {
            sum.add(MESSAGE_OVERHEAD_TOKENS);
            sum.add(text_tokens_bound(s));
        }
        Some(Value::Array(items)) => {
            for item in items {
                sum.add(response_item_bound(item, &model)?);
            }
        }
        Some(_) => {
            return Err(HttpError::InvalidField {
                field: "input",
                expected: "a string or an array of input items",
            });
        }
    }
    if let Some(instructions) = opt_str(body, "instructions")? {
        sum.add(MESSAGE_OVERHEAD_TOKENS);
        sum.add(text_tokens_bound(instructions));
    }
    sum.add(tools_bound(body, "tools", true)?);
    for field in ["text", "tool_choice"] {
        if let Some(value) = present(body, field) {
            sum.add(TOOL_OVERHEAD_TOKENS);
            sum.add(json_tokens_bound(value)?);
        }
    }
    let limit = output_limit(body, &["max_output_tokens"], &model, spec)?;
    Ok(RequestSize {
        model,
        prompt_tokens: sum.0,
        max_output_tokens: limit,
        units: None,
        stream: opt_bool(body, "stream")?,
        include_usage: true,
    })
}

const EMBEDDING_INPUT_EXPECTED: &str =
    "a string, an array of strings, an array of token ids or an array of arrays of token ids, not empty";

fn embeddings(body: &Map<String, Value>, model: String) -> Result<RequestSize, HttpError> {
    let invalid = || HttpError::InvalidField {
        field: "input",
        expected: EMBEDDING_INPUT_EXPECTED,
    };
    let token_ids = |items: &[Value]| -> Result<u64, HttpError> {
        if items.is_empty() || !items.iter().all(|t| t.as_u64().is_some()) {
            return Err(invalid());
        }
        Ok(items.len() as u64)
    };
    let prompt_tokens = match body.get("input") {
        None | Some(Value::Null) => return Err(HttpError::MissingField { field: "input" }),
        Some(Value::String(s)) => text_tokens_bound(s).saturating_add(EMBEDDING_INPUT_OVERHEAD_TOKENS),
        Some(Value::Array(items)) => match items.first() {
            Some(Value::String(_)) => {
                let mut sum = Sum::default();
                for item in items {
                    let text = item.as_str().ok_or_else(invalid)?;
                    sum.add(text_tokens_bound(text).saturating_add(EMBEDDING_INPUT_OVERHEAD_TOKENS));
                }
                sum.0
            }
            Some(Value::Number(_)) => token_ids(items)?,
            Some(Value::Array(_)) => {
                let mut sum = Sum::default();
                for item in items {
                    sum.add(token_ids(item.as_array().ok_or_else(invalid)?)?);
                }
                sum.0
            }
            _ => return Err(invalid()),
        },
        Some(_) => return Err(invalid()),
    };
    Ok(RequestSize {
        model,
        prompt_tokens,
        max_output_tokens: 0,
        units: None,
        stream: false,
        include_usage: false,
    })
}

/// `"1024-X-1024"` as `"1024x1024"`, as the price book keys variants.
fn normalize_variant(key: &str) -> String {
    key.to_ascii_lowercase().replace("-x-", "x")
}

fn images(body: &Map<String, Value>, model: String, spec: &ModelSpec) -> Result<RequestSize, HttpError> {
    if opt_bool(body, "stream")? {
        // Its usage comes in `image_generation.completed` events, which the stream reader
        // (chat and Responses events) does not meter.
        return Err(HttpError::NotMeterable {
            what: "a streamed image generation; ask without `stream`".into(),
        });
    }
    let prompt = match body.get("prompt") {
        None | Some(Value::Null) => return Err(HttpError::MissingField { field: "prompt" }),
        Some(Value::String(p)) => p,
        Some(_) => {
            return Err(HttpError::InvalidField {
                field: "prompt",
                expected: "a string",
            });
        }
    };
    let n = opt_limit(body, "n")?.unwrap_or(1);
    let size = opt_str(body, "size")?
        .filter(|s| !s.eq_ignore_ascii_case("auto"))
        .map(normalize_variant);
    let quality = opt_str(body, "quality")?
        .filter(|q| !q.eq_ignore_ascii_case("auto"))
        .map(str::to_ascii_lowercase);
    // Name the size (and quality) only when the book prices exactly that variant; otherwise
    // the estimate takes the dearest image price, which is an upper bound too.
    let keys: Vec<String> = spec
        .versions
        .iter()
        .flat_map(|v| &v.variants)
        .filter(|v| v.component == Component::OutputImage)
        .map(|v| normalize_variant(&v.variant))
        .collect();
    let (image_size, image_quality) = match (&size, &quality) {
        (Some(s), Some(q)) if keys.contains(&format!("{s}/{q}")) => (size.clone(), quality.clone()),
        (Some(s), _) if keys.contains(s) => (size.clone(), None),
        (Some(_), _) if keys.is_empty() && prices_component(spec, |c| c == Component::OutputPixel) => {
            (size.clone(), None)
        }
        _ => (None, None),
    };
    let prompt_tokens = if prices_component(spec, Component::is_prompt_token) {
        text_tokens_bound(prompt).saturating_add(MESSAGE_OVERHEAD_TOKENS)
    } else {
        0
    };
    let max_output_tokens = if prices_component(spec, Component::is_completion_token) {
        spec.max_output_tokens
            .unwrap_or(IMAGE_OUTPUT_TOKENS_MAX)
            .saturating_mul(n)
    } else {
        0
    };
    Ok(RequestSize {
        model,
        prompt_tokens,
        max_output_tokens,
        units: Some(Usage {
            output_images: n,
            image_size,
            image_quality,
            ..Usage::default()
        }),
        stream: false,
        include_usage: false,
    })
}

fn speech(body: &Map<String, Value>, model: String, spec: &ModelSpec) -> Result<RequestSize, HttpError> {
    let input = match body.get("input") {
        None | Some(Value::Null) => return Err(HttpError::MissingField { field: "input" }),
        Some(Value::String(s)) => s,
        Some(_) => {
            return Err(HttpError::InvalidField {
                field: "input",
                expected: "a string",
            });
        }
    };
    // The answer is audio without usage: only what the request determines can be charged
    // (its characters, or its text tokens, bounded). A model priced by what it produces
    // (audio tokens, seconds) would have that part free.
    if prices_component(spec, |c| c != Component::InputCharacter && !c.is_prompt_token()) {
        return Err(HttpError::NotMeterable {
            what: format!(
                "model `{model}` on /v1/audio/speech is priced by the audio it produces, which the endpoint does not report"
            ),
        });
    }
    let instructions = opt_str(body, "instructions")?;
    let prompt_tokens = if prices_component(spec, Component::is_prompt_token) {
        let mut sum = Sum(REPLY_PRIMING_TOKENS);
        sum.add(MESSAGE_OVERHEAD_TOKENS);
        sum.add(text_tokens_bound(input));
        if let Some(i) = instructions {
            sum.add(MESSAGE_OVERHEAD_TOKENS);
            sum.add(text_tokens_bound(i));
        }
        sum.0
    } else {
        0
    };
    let units = prices_component(spec, |c| c == Component::InputCharacter).then(|| Usage {
        input_characters: input.chars().count() as u64,
        ..Usage::default()
    });
    Ok(RequestSize {
        model,
        prompt_tokens,
        // Refused above for a model that prices its output.
        max_output_tokens: 0,
        units,
        stream: false,
        include_usage: false,
    })
}
