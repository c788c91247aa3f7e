//! The routes: one entry records the request, then each API answers.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

use super::sse::{self, Stop};
use super::{Directives, Gauge, RECENT_REQUESTS, SeenRequest, Shared};

/// The `created` of every answer: fixed, so that answers are deterministic.
pub(crate) const CREATED: u64 = 1_700_000_000;

#[derive(Debug, Clone, Copy)]
enum Route {
    Chat,
    Embeddings,
    Responses,
    Images,
    Speech,
    Models,
    NotFound,
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let at = |route: Route| {
        move |State(s): State<Arc<Shared>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes| async move {
            serve(route, &s, &method, &uri, &headers, &body).await
        }
    };
    Router::new()
        .route("/v1/chat/completions", post(at(Route::Chat)))
        .route("/v1/embeddings", post(at(Route::Embeddings)))
        .route("/v1/responses", post(at(Route::Responses)))
        .route("/v1/images/generations", post(at(Route::Images)))
        .route("/v1/audio/speech", post(at(Route::Speech)))
        .route("/v1/models", get(at(Route::Models)))
        .fallback(at(Route::NotFound))
        .with_state(shared)
}

async fn serve(
    route: Route,
    s: &Arc<Shared>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let _in_flight = Gauge::open(&s.in_flight);
    let authorization = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let json: Option<Value> = serde_json::from_slice(body).ok();
    record(s, method, uri, authorization.as_deref(), json.as_ref());
    if let Some(required) = &s.options.require_authorization
        && authorization.as_deref() != Some(required.as_str())
    {
        return error(
            401,
            "Incorrect API key provided: the fake upstream expects its configured key",
        );
    }
    let body = match (route, json) {
        (Route::Models, _) => return models(),
        (Route::NotFound, _) => return error(404, &format!("Unknown request URL: {method} {}", uri.path())),
        (_, Some(body @ Value::Object(_))) => body,
        (_, _) => return error(400, "the body is not a JSON object: expected an OpenAI request"),
    };
    match route {
        Route::Chat => chat(s, &body).await,
        Route::Embeddings => embeddings(s, &body).await,
        Route::Responses => responses(s, &body).await,
        Route::Images => images(s, &body).await,
        Route::Speech => speech(s, &body).await,
        Route::Models | Route::NotFound => error(404, "unreachable route"),
    }
}

fn record(s: &Shared, method: &Method, uri: &Uri, authorization: Option<&str>, body: Option<&Value>) {
    s.calls.fetch_add(1, Ordering::SeqCst);
    if body.is_some() {
        s.bodies.fetch_add(1, Ordering::SeqCst);
    }
    if let Some(auth) = authorization {
        let mut seen = s.authorizations.lock().unwrap();
        if !seen.iter().any(|a| a == auth) {
            seen.push(auth.to_owned());
        }
    }
    let mut recent = s.recent.lock().unwrap();
    if recent.len() == RECENT_REQUESTS {
        recent.pop_front();
    }
    recent.push_back(SeenRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        authorization: authorization.map(str::to_owned),
        body: body.cloned(),
    });
}

/// An OpenAI error body with `status`.
fn error(status: u16, message: &str) -> Response {
    let (kind, code) = match status {
        401 => ("invalid_request_error", json!("invalid_api_key")),
        404 => ("invalid_request_error", json!("unknown_url")),
        429 => ("requests", json!("rate_limit_exceeded")),
        500..=599 => ("server_error", Value::Null),
        _ => ("invalid_request_error", Value::Null),
    };
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
    }
    response
}

/// The latency, the directive's delay, then the directive's error if any.
async fn prelude(s: &Shared, d: &Directives) -> Option<Response> {
    let wait = s.options.latency_ms.saturating_add(d.delay_ms.unwrap_or(0));
    if !s.sleep(wait).await {
        return Some(error(503, "the fake upstream is shutting down"));
    }
    d.error
        .map(|code| error(code, &format!("fake error {code}, asked by a [fake:error] directive")))
}

/// A non-streaming `[fake:stall]`: no answer until the server stops (or the client goes
/// away, which drops this future).
async fn stall(s: &Shared) -> Response {
    s.shut_down().await;
    error(503, "the fake upstream shut down while stalled")
}

/// The text of a message content: a string, or the `text` of its parts.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// The prompt's token count: `(chars + 4 per item) / 4`, rounded up; never more than the
/// UTF-8 length plus 4 per item, since a character is at least one byte.
pub(crate) fn estimate_tokens(chars: u64, items: u64) -> u64 {
    chars.saturating_add(items.saturating_mul(4)).div_ceil(4)
}

fn chars(text: &str) -> u64 {
    text.chars().count() as u64
}

fn model_of(body: &Value, default: &str) -> String {
    body.get("model").and_then(Value::as_str).unwrap_or(default).to_owned()
}

/// The completion length and finish reason: `min(cap, wanted)`, `"length"` when capped.
fn completion_length(s: &Shared, d: &Directives, cap: Option<u64>) -> (u64, bool) {
    let wanted = d.tokens.unwrap_or(s.options.completion_tokens);
    let n = cap.map_or(wanted, |cap| cap.min(wanted));
    (n, n < wanted)
}

/// The cached prompt tokens and reasoning completion tokens the directives ask for, each
/// capped at its total (`prompt`, `completion`).
fn details(d: &Directives, prompt: u64, completion: u64) -> (u64, u64) {
    (
        d.cached.unwrap_or(0).min(prompt),
        d.reasoning.unwrap_or(0).min(completion),
    )
}

fn words(n: u64) -> String {
    "tok ".repeat(usize::try_from(n).unwrap_or(usize::MAX / 8))
}

fn is_true(body: &Value, pointer: &str) -> bool {
    body.pointer(pointer).and_then(Value::as_bool) == Some(true)
}

fn cap_of(body: &Value, keys: &[&str]) -> Option<u64> {
    keys.iter().find_map(|k| body.get(*k).and_then(Value::as_u64))
}

/// Where a stream with `head` frames before its K content frames stops.
fn stop_of(d: &Directives, head: usize, n: u64) -> Stop {
    let at = |k: u64| head + usize::try_from(k.min(n)).unwrap_or(usize::MAX - head);
    if d.stall {
        Stop::Stall(head)
    } else if let Some(k) = d.cut {
        Stop::Abort(at(k))
    } else if let Some(k) = d.end {
        Stop::End(at(k))
    } else {
        Stop::Complete
    }
}

async fn chat(s: &Arc<Shared>, body: &Value) -> Response {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return error(400, "`messages` is missing: expected an array of messages");
    };
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| content_text(m.get("content")))
        .unwrap_or_default();
    let d = match Directives::parse(&last_user) {
        Ok(d) => d,
        Err(e) => return error(400, &e),
    };
    if let Some(r) = prelude(s, &d).await {
        return r;
    }
    let prompt_chars: u64 = messages.iter().map(|m| chars(&content_text(m.get("content")))).sum();
    let prompt = estimate_tokens(prompt_chars, messages.len() as u64);
    let (n, capped) = completion_length(s, &d, cap_of(body, &["max_completion_tokens", "max_tokens"]));
    let finish = if capped { "length" } else { "stop" };
    let model = model_of(body, "gpt-4o-mini");
    let id = format!("chatcmpl-fake-{}", s.next_id());
    let (cached, reasoning) = details(&d, prompt, n);
    let usage = json!({
        "prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n,
        "prompt_tokens_details": {"cached_tokens": cached}, "completion_tokens_details": {"reasoning_tokens": reasoning},
    });
    if is_true(body, "/stream") {
        let include_usage = is_true(body, "/stream_options/include_usage");
        let chunk = |delta: Value, finish: Option<&str>| {
            let mut c = json!({
                "id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            });
            if include_usage {
                c["usage"] = Value::Null;
            }
            sse::data(&c)
        };
        let mut frames = vec![chunk(
            json!({"role": "assistant", "content": "", "refusal": null}),
            None,
        )];
        frames.extend((0..n).map(|_| chunk(json!({"content": "tok "}), None)));
        frames.push(chunk(json!({}), Some(finish)));
        if include_usage && !d.no_usage {
            frames.push(sse::data(&json!({
                "id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                "system_fingerprint": "fp_fake", "choices": [], "usage": usage,
            })));
        }
        frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
        return sse::respond(Arc::clone(s), frames, stop_of(&d, 1, n));
    }
    if d.stall {
        return stall(s).await;
    }
    let mut answer = json!({
        "id": id, "object": "chat.completion", "created": CREATED, "model": model, "system_fingerprint": "fp_fake",
        "choices": [{
            "index": 0, "message": {"role": "assistant", "content": words(n), "refusal": null},
            "logprobs": null, "finish_reason": finish,
        }],
    });
    if !d.no_usage {
        answer["usage"] = usage;
    }
    axum::Json(answer).into_response()
}

/// One embedding input: text, or token ids.
enum Input {
    Text(String),
    Tokens(u64),
}

fn embedding_inputs(input: Option<&Value>) -> Option<Vec<Input>> {
    let tokens = |v: &Vec<Value>| v.iter().all(Value::is_u64).then_some(Input::Tokens(v.len() as u64));
    match input? {
        Value::String(text) => Some(vec![Input::Text(text.clone())]),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_u64) => Some(vec![tokens(items)?]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Some(Input::Text(text.clone())),
                Value::Array(ids) => tokens(ids),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// FNV-1a, for deterministic fake vectors.
fn fnv(bytes: &[u8], seed: u64) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325 ^ seed, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

async fn embeddings(s: &Arc<Shared>, body: &Value) -> Response {
    let Some(inputs) = embedding_inputs(body.get("input")) else {
        return error(
            400,
            "`input` is missing or malformed: expected a string, strings, or token ids",
        );
    };
    let last_text = inputs.iter().rev().find_map(|i| match i {
        Input::Text(t) => Some(t.as_str()),
        Input::Tokens(_) => None,
    });
    let d = match Directives::parse(last_text.unwrap_or("")) {
        Ok(d) => d,
        Err(e) => return error(400, &e),
    };
    if let Some(r) = prelude(s, &d).await {
        return r;
    }
    if d.stall {
        return stall(s).await;
    }
    let dims = body
        .get("dimensions")
        .and_then(Value::as_u64)
        .unwrap_or(8)
        .clamp(1, 4096);
    let base64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let mut prompt = 0u64;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let seed = match input {
                Input::Text(text) => {
                    prompt += estimate_tokens(chars(text), 0);
                    fnv(text.as_bytes(), 0)
                }
                Input::Tokens(n) => {
                    prompt += n;
                    fnv(&n.to_le_bytes(), 1)
                }
            };
            let vector: Vec<f32> = (0..dims)
                .map(|i| (fnv(&i.to_le_bytes(), seed) % 2001) as f32 / 1000.0 - 1.0)
                .collect();
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64_encode(&bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let mut answer = json!({"object": "list", "data": data, "model": model_of(body, "text-embedding-3-small")});
    if !d.no_usage {
        answer["usage"] = json!({"prompt_tokens": prompt, "total_tokens": prompt});
    }
    axum::Json(answer).into_response()
}

/// The Responses API's input: its characters, its items (the instructions count as one)
/// and the text of the last user item; `None` when `input` is missing.
fn responses_input(body: &Value) -> Option<(u64, u64, String)> {
    let (mut prompt_chars, mut items, mut last_user) = (0u64, 0u64, String::new());
    if let Some(instructions) = body.get("instructions").and_then(Value::as_str) {
        prompt_chars += chars(instructions);
        items += 1;
    }
    match body.get("input")? {
        Value::String(text) => {
            prompt_chars += chars(text);
            items += 1;
            last_user.clone_from(text);
        }
        Value::Array(list) => {
            for item in list {
                let text = match item.get("output").and_then(Value::as_str) {
                    Some(output) => output.to_owned(),
                    None => content_text(item.get("content")),
                };
                prompt_chars += chars(&text);
                items += 1;
                if item.get("role").and_then(Value::as_str) == Some("user") {
                    last_user = text;
                }
            }
        }
        _ => return None,
    }
    Some((prompt_chars, items, last_user))
}

async fn responses(s: &Arc<Shared>, body: &Value) -> Response {
    let Some((prompt_chars, items, last_user)) = responses_input(body) else {
        return error(400, "`input` is missing: expected a string or a list of input items");
    };
    let d = match Directives::parse(&last_user) {
        Ok(d) => d,
        Err(e) => return error(400, &e),
    };
    if let Some(r) = prelude(s, &d).await {
        return r;
    }
    let input_tokens = estimate_tokens(prompt_chars, items);
    let (n, capped) = completion_length(s, &d, cap_of(body, &["max_output_tokens"]));
    let model = model_of(body, "gpt-4o-mini");
    let serial = s.next_id();
    let (id, item_id) = (format!("resp_fake_{serial}"), format!("msg_fake_{serial}"));
    let (cached, reasoning) = details(&d, input_tokens, n);
    let usage = json!({
        "input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": n, "output_tokens_details": {"reasoning_tokens": reasoning}, "total_tokens": input_tokens + n,
    });
    let text = words(n);
    let part = json!({"type": "output_text", "text": text, "annotations": []});
    let item = json!({"type": "message", "id": item_id, "status": "completed", "role": "assistant", "content": [part]});
    let response = |status: &str, output: Value, usage: Value| {
        let incomplete = if capped && status == "incomplete" {
            json!({"reason": "max_output_tokens"})
        } else {
            Value::Null
        };
        json!({
            "id": id, "object": "response", "created_at": CREATED, "status": status, "model": model,
            "output": output, "incomplete_details": incomplete, "usage": usage,
        })
    };
    let done = if capped { "incomplete" } else { "completed" };
    let final_usage = if d.no_usage { Value::Null } else { usage };
    if is_true(body, "/stream") {
        let mut seq = 0u64;
        let mut ev = |name: &str, mut v: Value| {
            v["type"] = json!(name);
            v["sequence_number"] = json!(seq);
            seq += 1;
            sse::event(name, &v)
        };
        let empty_part = json!({"type": "output_text", "text": "", "annotations": []});
        let at = json!({"item_id": item_id, "output_index": 0, "content_index": 0});
        let with = |mut base: Value, key: &str, v: Value| {
            base[key] = v;
            base
        };
        let mut frames = vec![
            ev(
                "response.created",
                json!({"response": response("in_progress", json!([]), Value::Null)}),
            ),
            ev(
                "response.in_progress",
                json!({"response": response("in_progress", json!([]), Value::Null)}),
            ),
            ev(
                "response.output_item.added",
                json!({"output_index": 0, "item": {"type": "message", "id": item_id, "status": "in_progress", "role": "assistant", "content": []}}),
            ),
            ev("response.content_part.added", with(at.clone(), "part", empty_part)),
        ];
        for _ in 0..n {
            frames.push(ev(
                "response.output_text.delta",
                with(at.clone(), "delta", json!("tok ")),
            ));
        }
        frames.push(ev("response.output_text.done", with(at.clone(), "text", json!(text))));
        frames.push(ev("response.content_part.done", with(at, "part", part)));
        frames.push(ev(
            "response.output_item.done",
            json!({"output_index": 0, "item": item}),
        ));
        let last = if capped {
            "response.incomplete"
        } else {
            "response.completed"
        };
        frames.push(ev(
            last,
            json!({"response": response(done, json!([item]), final_usage)}),
        ));
        let stop = if d.stall { Stop::Stall(1) } else { stop_of(&d, 4, n) };
        return sse::respond(Arc::clone(s), frames, stop);
    }
    if d.stall {
        return stall(s).await;
    }
    axum::Json(response(done, json!([item]), final_usage)).into_response()
}

/// A 1x1 PNG, the image of every fake generation.
const PNG_1X1: [u8; 67] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0a, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00,
    0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

async fn images(s: &Arc<Shared>, body: &Value) -> Response {
    let Some(prompt) = body.get("prompt").and_then(Value::as_str) else {
        return error(400, "`prompt` is missing: expected a string");
    };
    let d = match Directives::parse(prompt) {
        Ok(d) => d,
        Err(e) => return error(400, &e),
    };
    if let Some(r) = prelude(s, &d).await {
        return r;
    }
    if d.stall {
        return stall(s).await;
    }
    let n = body.get("n").and_then(Value::as_u64).unwrap_or(1);
    if !(1..=10).contains(&n) {
        return error(400, &format!("`n` is {n}: expected 1 to 10"));
    }
    let model = model_of(body, "dall-e-2");
    let gpt_image = model.starts_with("gpt-image");
    let b64 = match body.get("response_format").and_then(Value::as_str) {
        Some(format) => format == "b64_json",
        None => gpt_image,
    };
    let serial = s.next_id();
    let data: Vec<Value> = (0..n)
        .map(|i| {
            if b64 {
                json!({"b64_json": base64_encode(&PNG_1X1)})
            } else {
                json!({"url": format!("https://fake-upstream.invalid/images/{serial}-{i}.png")})
            }
        })
        .collect();
    let mut answer = json!({"created": CREATED, "data": data});
    if gpt_image && !d.no_usage {
        // gpt-image-1's output tokens a 1024x1024 image: 272 low, 1056 medium, 4160 high.
        let per_image = match body.get("quality").and_then(Value::as_str) {
            Some("low") => 272,
            Some("high") => 4160,
            _ => 1056,
        };
        let input = estimate_tokens(chars(prompt), 0);
        answer["usage"] = json!({
            "input_tokens": input, "output_tokens": per_image * n, "total_tokens": input + per_image * n,
            "input_tokens_details": {"text_tokens": input, "image_tokens": 0},
        });
    }
    axum::Json(answer).into_response()
}

async fn speech(s: &Arc<Shared>, body: &Value) -> Response {
    let Some(input) = body.get("input").and_then(Value::as_str) else {
        return error(400, "`input` is missing: expected the text to speak");
    };
    let d = match Directives::parse(input) {
        Ok(d) => d,
        Err(e) => return error(400, &e),
    };
    if let Some(r) = prelude(s, &d).await {
        return r;
    }
    if d.stall {
        return stall(s).await;
    }
    let content_type = match body.get("response_format").and_then(Value::as_str).unwrap_or("mp3") {
        "opus" => "audio/ogg",
        "aac" => "audio/aac",
        "flac" => "audio/flac",
        "wav" => "audio/wav",
        "pcm" => "audio/pcm",
        _ => "audio/mpeg",
    };
    // A fake MPEG frame header, then 32 bytes a character: the length grows with the input.
    let mut audio = vec![0xff, 0xf3, 0x44, 0xc4];
    audio.resize(4 + 32 * input.chars().count(), 0);
    ([(CONTENT_TYPE, content_type)], audio).into_response()
}

fn models() -> Response {
    let ids = [
        "gpt-4o-mini",
        "gpt-4o",
        "text-embedding-3-small",
        "gpt-image-1",
        "dall-e-2",
        "tts-1",
    ];
    let data: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": CREATED, "owned_by": "fake-upstream"}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// Standard base64 with padding (RFC 4648).
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextet = |shift: u32| char::from(ALPHABET[((n >> shift) & 63) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{base64_encode, estimate_tokens};

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn the_estimate_never_exceeds_bytes_plus_four_per_item() {
        for text in ["", "a", "hello world", "héllo wörld", "日本語のテキスト", "🦀🦀🦀"] {
            for items in 0..4u64 {
                let chars = text.chars().count() as u64;
                let est = estimate_tokens(chars, items);
                assert!(est <= text.len() as u64 + 4 * items, "{text:?} {items}");
                assert!(est * 4 >= chars + 4 * items, "rounded up");
            }
        }
    }
}
