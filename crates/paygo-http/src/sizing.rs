//! TEMPORARY (lead's local stand-in until the helper's version lands).
use paygo_pricing::{PriceBook, Usage};
use crate::HttpError;
/// x
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Endpoint { /// x
ChatCompletions, /// x
Responses, /// x
Embeddings, /// x
ImageGenerations, /// x
AudioSpeech }
/// x
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSize { /// x
pub model: String, /// x
pub prompt_tokens: u64, /// x
pub max_output_tokens: u64, /// x
pub units: Option<Usage>, /// x
pub stream: bool, /// x
pub include_usage: bool }
/// x
/// # Errors
/// x
pub fn size_request(endpoint: Endpoint, body: &serde_json::Value, prices: &PriceBook) -> Result<RequestSize, HttpError> {
    let model = body["model"].as_str().ok_or(HttpError::MissingField { field: "model" })?.to_owned();
    prices.model(&model)?;
    let text = body.to_string();
    let max = body["max_tokens"].as_u64().or(body["max_output_tokens"].as_u64()).unwrap_or(if endpoint == Endpoint::Embeddings {0} else {4096});
    Ok(RequestSize { model, prompt_tokens: text.len() as u64 + 100, max_output_tokens: max, units: None,
      stream: body["stream"].as_bool().unwrap_or(false),
      include_usage: body["stream_options"]["include_usage"].as_bool().unwrap_or(false) })
}
