//! Streaming: the upstream's server-sent events are passed on as they arrive, the usage
//! is read from the final usage chunk (chat) or the `response.completed` event
//! (Responses API), the call is charged, and the last events carry the `meta` usage.
//!
//! One task per stream reads the upstream to its end whatever the client does: a client
//! that disconnects stops receiving, not the metering, so what was produced is billed.
//! The task extends the hold every half hold timeout while the stream runs.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use futures_util::StreamExt;
use paygo_billing::{BillingStore, CustomerId};
use paygo_gateway::Admitted;
use paygo_invoice::SequenceStore;
use paygo_pricing::{Usage, UsageShape};
use paygo_ratelimit::AsyncStore;
use paygo_time::Clock;
use tokio::sync::mpsc;

use crate::accounts::KeyId;
use crate::proxy::{InFlightGuard, Proxy, call_record, meta_json, with_meta};
use crate::respond::add_headers;
use crate::sizing::{Endpoint, RequestSize};
use crate::usage::Settlement;

/// Events waiting for a slow client; beyond them the upstream is read no faster.
const CLIENT_BUFFER_EVENTS: usize = 64;

/// The largest event kept whole; a longer line without an event end is a broken stream.
const EVENT_BYTES_MAX: usize = 16 << 20;

/// Starts the stream's task and answers with the client's event stream.
pub(crate) fn start<B, L, C, S>(
    proxy: Arc<Proxy<B, L, C, S>>,
    admitted: Admitted,
    endpoint: Endpoint,
    size: &RequestSize,
    upstream: reqwest::Response,
    (request_id, key): (String, KeyId),
    guard: InFlightGuard,
) -> Response
where
    B: BillingStore + 'static,
    L: AsyncStore<CustomerId> + 'static,
    C: Clock + 'static,
    S: SequenceStore + Send + Sync + 'static,
{
    let (tx, rx) = mpsc::channel::<Bytes>(CLIENT_BUFFER_EVENTS);
    let headers = admitted.rate_limit_headers.clone();
    let pump = Pump {
        endpoint,
        include_usage: size.include_usage || endpoint == Endpoint::Responses,
        tx,
        client_gone: false,
        produced: false,
        usage: None,
        unreadable: false,
        bound: Usage {
            prompt_tokens: size.prompt_tokens,
            completion_tokens: size.max_output_tokens,
            ..size.units.clone().unwrap_or_default()
        },
        held_back: None,
        done: false,
        first_chunk: None,
        key,
    };
    tokio::spawn(async move {
        pump.run(proxy, admitted, upstream, request_id).await;
        // Counted out only once the task holds the proxy no more: whoever waits for the calls
        // in flight (`Proxy::drain`) may then take the proxy back.
        drop(guard);
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    }));
    let mut response = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response();
    add_headers(
        response.headers_mut(),
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
    );
    response
}

/// How the upstream's stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// It ended (with `[DONE]`, or its last event).
    Finished,
    /// It stopped sending for longer than the idle timeout.
    Idle,
    /// The connection failed, or an event was too long.
    Broken,
}

// Four independent facts of one stream (what the client asked, whether it is still there,
// whether anything was produced, whether the upstream said it was done).
#[allow(clippy::struct_excessive_bools)]
struct Pump {
    endpoint: Endpoint,
    include_usage: bool,
    tx: mpsc::Sender<Bytes>,
    client_gone: bool,
    /// Whether any event other than the usage was produced.
    produced: bool,
    usage: Option<Usage>,
    /// Whether the upstream sent a final usage that could not be read.
    unreadable: bool,
    /// The request's bound (what the hold was sized on): charged when the usage sent
    /// cannot be read.
    bound: Usage,
    /// The usage chunk (chat) or the completed event's data (Responses), kept to add the
    /// `meta` usage once charged.
    held_back: Option<Vec<u8>>,
    /// `[DONE]` seen.
    done: bool,
    /// The first chunk's data (chat): its id, created and model make the meta chunk.
    first_chunk: Option<serde_json::Value>,
    /// The API key the call was made with (its id, for the usage record).
    key: KeyId,
}

/// One server-sent event: its `event:` name and its `data:` lines joined.
struct Event {
    name: Option<String>,
    data: String,
}

fn parse_event(raw: &[u8]) -> Option<Event> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut name = None;
    let mut data = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
        } else if let Some(rest) = line.strip_prefix("event:") {
            name = Some(rest.trim().to_owned());
        }
    }
    Some(Event { name, data })
}

/// The end of the first event in `buf` (the index after its blank line), if complete.
/// The search starts at `from` (bytes before it were searched already, less the two a
/// separator can straddle).
fn event_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from.saturating_sub(2);
    while i + 1 < buf.len() {
        if buf[i] == b'\n' && buf[i + 1] == b'\n' {
            return Some(i + 2);
        }
        if buf[i] == b'\n' && buf[i + 1] == b'\r' && buf.get(i + 2) == Some(&b'\n') {
            return Some(i + 3);
        }
        i += 1;
    }
    None
}

impl Pump {
    async fn send(&mut self, bytes: Bytes) {
        if !self.client_gone && self.tx.send(bytes).await.is_err() {
            // The client went away: keep reading the upstream, to bill what it produced.
            self.client_gone = true;
        }
    }

    /// Handles one complete event (`raw` with its blank line).
    async fn on_event(&mut self, raw: Bytes) {
        let Some(event) = parse_event(&raw) else {
            self.produced = true;
            self.send(raw).await;
            return;
        };
        if self.endpoint == Endpoint::Responses {
            self.on_responses_event(raw, event).await;
        } else {
            self.on_chat_event(raw, event).await;
        }
    }

    /// A Responses API event: the last one (`response.completed`, `.incomplete` or
    /// `.failed`) carries the usage and is held back until the call is charged.
    async fn on_responses_event(&mut self, raw: Bytes, event: Event) {
        let data_type = event.name.or_else(|| {
            serde_json::from_str::<serde_json::Value>(&event.data)
                .ok()
                .and_then(|v| v["type"].as_str().map(str::to_owned))
        });
        let last = matches!(
            data_type.as_deref(),
            Some("response.completed" | "response.incomplete" | "response.failed")
        );
        if !last {
            self.produced = true;
            self.send(raw).await;
            return;
        }
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&event.data) {
            let usage = &value["response"]["usage"];
            if usage.is_object() {
                self.read_usage(Usage::from_value(usage, Some(UsageShape::OpenAiResponses)));
            }
        }
        self.held_back = Some(event.data.into_bytes());
        self.done = true;
    }

    /// Keeps the final usage the upstream sent, or notes that it could not be read (never
    /// taken as "no usage", which would charge the prompt alone).
    fn read_usage(&mut self, read: Result<Usage, paygo_pricing::PricingError>) {
        self.unreadable = read.is_err();
        self.usage = read.ok();
    }

    /// A chat completion chunk: the usage chunk is held back; `"usage"` members are removed
    /// when the client did not ask for them.
    async fn on_chat_event(&mut self, raw: Bytes, event: Event) {
        if event.data.trim() == "[DONE]" {
            self.done = true;
            return;
        }
        if event.data.contains("\"usage\"")
            && let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&event.data)
        {
            self.remember_first(&value);
            if value["usage"].is_object() {
                self.read_usage(Usage::from_value(&value["usage"], Some(UsageShape::OpenAiChat)));
                if value["choices"].as_array().is_none_or(Vec::is_empty) {
                    self.held_back = Some(event.data.into_bytes());
                    return;
                }
            }
            if !self.include_usage {
                // The usage (on a content chunk) or `"usage": null` (on every chunk): the
                // client did not ask for it.
                if let Some(object) = value.as_object_mut() {
                    object.remove("usage");
                }
                self.produced = true;
                self.send(Bytes::from(format!("data: {value}\n\n"))).await;
                return;
            }
        }
        if self.first_chunk.is_none()
            && let Ok(value) = serde_json::from_str::<serde_json::Value>(&event.data)
        {
            self.remember_first(&value);
        }
        self.produced = true;
        self.send(raw).await;
    }

    fn remember_first(&mut self, value: &serde_json::Value) {
        if self.first_chunk.is_none() {
            self.first_chunk = Some(serde_json::json!({
                "id": value["id"], "object": "chat.completion.chunk", "created": value["created"],
                "model": value["model"], "choices": [],
            }));
        }
    }

    async fn run<B, L, C, S>(
        mut self,
        proxy: Arc<Proxy<B, L, C, S>>,
        admitted: Admitted,
        upstream: reqwest::Response,
        request_id: String,
    ) where
        B: BillingStore + 'static,
        L: AsyncStore<CustomerId> + 'static,
        C: Clock + 'static,
        S: SequenceStore + Send + Sync + 'static,
    {
        let idle = Duration::from_millis(proxy.options.stream_idle_timeout_ms);
        let extend_every = Duration::from_millis((proxy.gateway.hold_timeout_ms() / 2).max(1));
        let mut next_extend = tokio::time::Instant::now() + extend_every;
        // One deadline, moved by data only: a hold extension must not restart it (it did,
        // and a stalled stream whose idle timeout exceeded half the hold's timeout was
        // never cut, its hold extended for ever).
        let mut idle_until = tokio::time::Instant::now() + idle;
        let mut body = upstream.bytes_stream();
        let mut buf = BytesMut::new();
        // How much of `buf` was searched for an event's end.
        let mut searched = 0;
        let end = loop {
            tokio::select! {
                next = tokio::time::timeout_at(idle_until, body.next()) => match next {
                    Err(_) => break End::Idle,
                    Ok(None) => break End::Finished,
                    Ok(Some(Err(_))) => break End::Broken,
                    Ok(Some(Ok(chunk))) => {
                        idle_until = tokio::time::Instant::now() + idle;
                        buf.extend_from_slice(&chunk);
                        while let Some(end) = event_end(&buf, searched) {
                            let raw = buf.split_to(end).freeze();
                            searched = 0;
                            self.on_event(raw).await;
                        }
                        searched = buf.len();
                        if buf.len() > EVENT_BYTES_MAX {
                            break End::Broken;
                        }
                        if self.done {
                            // Nothing after the last event (or `[DONE]`) matters.
                            break End::Finished;
                        }
                    }
                },
                () = tokio::time::sleep_until(next_extend) => {
                    // A failed extension is not fatal here: the capture reports an expired
                    // hold, and the stream is then settled as it can be.
                    let _ = proxy.gateway.extend_hold(&admitted).await;
                    next_extend += extend_every;
                }
            }
        };
        if !buf.is_empty() && end == End::Finished {
            let raw = buf.split().freeze();
            self.on_event(raw).await;
        }
        self.finish(&proxy, &admitted, &request_id, end).await;
    }

    /// Charges the stream, records it, and sends the last events: the usage (with `meta`),
    /// then `[DONE]`, or an error event for a stream that was cut.
    async fn finish<B, L, C, S>(&mut self, proxy: &Proxy<B, L, C, S>, admitted: &Admitted, request_id: &str, end: End)
    where
        B: BillingStore + 'static,
        L: AsyncStore<CustomerId> + 'static,
        C: Clock + 'static,
        S: SequenceStore + Send + Sync + 'static,
    {
        let bound = self.usage.is_none() && self.unreadable;
        let usage = if bound {
            Some(self.bound.clone())
        } else {
            self.usage.take()
        };
        let charged = match proxy.settle(admitted, usage, self.produced).await {
            Ok(mut charged) => {
                if bound {
                    charged.settlement = Settlement::Bound;
                }
                charged
            }
            Err(e) => {
                let body = serde_json::json!({"error": {"message": e.message, "type": "api_error", "code": e.code}});
                self.send(Bytes::from(format!("data: {body}\n\n"))).await;
                return;
            }
        };
        let record = call_record(admitted, self.endpoint, request_id, &self.key, &charged, true);
        proxy.record(record).await;
        let completed = &charged.completed;
        let meta = meta_json(&completed.usage);
        let last =
            match (self.endpoint, self.held_back.take()) {
                (Endpoint::Responses, Some(data)) => {
                    let data = with_meta(&data, &meta).unwrap_or(data);
                    let mut text = b"event: response.completed\ndata: ".to_vec();
                    if let Some(name) = serde_json::from_slice::<serde_json::Value>(&data)
                        .ok()
                        .and_then(|v| v["type"].as_str().map(str::to_owned))
                    {
                        text = format!("event: {name}\ndata: ").into_bytes();
                    }
                    text.extend_from_slice(&data);
                    text.extend_from_slice(b"\n\n");
                    Some(text)
                }
                // Cut before `response.completed`: the charge still has its event.
                (Endpoint::Responses, None) => {
                    let data = with_meta(br#"{"type":"paygo.usage"}"#, &meta).unwrap_or_default();
                    let mut text = b"event: paygo.usage\ndata: ".to_vec();
                    text.extend_from_slice(&data);
                    text.extend_from_slice(b"\n\n");
                    Some(text)
                }
                (_, held) => {
                    let base =
                        match held {
                            Some(data) if self.include_usage => data,
                            _ => serde_json::to_vec(&self.first_chunk.take().unwrap_or_else(
                                || serde_json::json!({"object": "chat.completion.chunk", "choices": []}),
                            ))
                            .unwrap_or_default(),
                        };
                    with_meta(&base, &meta).map(|data| {
                        let mut text = b"data: ".to_vec();
                        text.extend_from_slice(&data);
                        text.extend_from_slice(b"\n\n");
                        text
                    })
                }
            };
        if let Some(last) = last {
            self.send(Bytes::from(last)).await;
        }
        if end != End::Finished || !self.done {
            // The client learns that the stream was cut (and what it was charged, above).
            let message = match end {
                End::Idle => "the upstream stopped sending: the stream was cut",
                _ => "the upstream's stream ended early",
            };
            let body =
                serde_json::json!({"error": {"message": message, "type": "api_error", "code": "upstream_stream_cut"}});
            self.send(Bytes::from(format!("data: {body}\n\n"))).await;
        } else if self.endpoint != Endpoint::Responses {
            self.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

    use super::*;
    use proptest::prelude::*;

    /// Splits `stream` at `cuts` and reads its events as the pump does.
    fn read(stream: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut buf = BytesMut::new();
        let mut searched = 0;
        let mut out = Vec::new();
        let mut start = 0;
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        points.push(stream.len());
        points.sort_unstable();
        for end in points {
            buf.extend_from_slice(&stream[start..end.max(start)]);
            start = end.max(start);
            while let Some(end) = event_end(&buf, searched) {
                out.push(buf.split_to(end).to_vec());
                searched = 0;
            }
            searched = buf.len();
        }
        out
    }

    proptest! {
        /// However the network cuts a stream into chunks, the same events come out.
        #[test]
        fn events_do_not_depend_on_how_the_stream_is_cut(
            events in proptest::collection::vec("[a-z {}:\"\\[\\]]{0,40}", 1..12),
            crlf in any::<bool>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..20),
        ) {
            let sep = if crlf { "\r\n\r\n" } else { "\n\n" };
            let stream: String = events.iter().fold(String::new(), |mut all, e| {
                all.push_str("data: ");
                all.push_str(e);
                all.push_str(sep);
                all
            });
            let whole = read(stream.as_bytes(), &[]);
            prop_assert_eq!(whole.len(), events.len());
            prop_assert_eq!(read(stream.as_bytes(), &cuts), whole.clone());
            for (raw, event) in whole.iter().zip(&events) {
                prop_assert_eq!(&parse_event(raw).unwrap().data, event);
            }
        }
    }
}
