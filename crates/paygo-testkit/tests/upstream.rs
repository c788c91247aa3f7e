//! The fake upstream over real HTTP: every route, every directive, the counters.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use paygo_testkit::upstream::{FakeUpstream, UpstreamOptions};
use serde_json::{Value, json};

async fn start() -> (FakeUpstream, reqwest::Client) {
    start_with(UpstreamOptions::default()).await
}

async fn start_with(options: UpstreamOptions) -> (FakeUpstream, reqwest::Client) {
    (FakeUpstream::start(options).await.unwrap(), reqwest::Client::new())
}

async fn post(client: &reqwest::Client, up: &FakeUpstream, path: &str, body: &Value) -> reqwest::Response {
    client
        .post(format!("{}{path}", up.url()))
        .bearer_auth("sk-upstream")
        .json(body)
        .send()
        .await
        .unwrap()
}

fn chat_body(text: &str) -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]})
}

/// The SSE frames of a body read to its end (or to its first error), and whether it ended
/// with an error.
async fn sse_frames(response: reqwest::Response) -> (Vec<String>, bool) {
    let mut text = Vec::new();
    let mut stream = response.bytes_stream();
    let mut failed = false;
    while let Some(chunk) = stream.next().await {
        let Ok(bytes) = chunk else {
            failed = true;
            break;
        };
        text.extend_from_slice(&bytes);
    }
    let text = String::from_utf8(text).unwrap();
    assert!(
        failed || text.is_empty() || text.ends_with("\n\n"),
        "a clean stream ends on a frame boundary: {text:?}"
    );
    (
        text.split("\n\n")
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect(),
        failed,
    )
}

fn data_of(frame: &str) -> &str {
    frame.lines().find_map(|l| l.strip_prefix("data: ")).unwrap()
}

fn chunks(frames: &[String]) -> Vec<Value> {
    frames
        .iter()
        .map(|f| data_of(f))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn content_deltas(chunks: &[Value]) -> usize {
    chunks
        .iter()
        .filter(|c| c.pointer("/choices/0/delta/content").and_then(Value::as_str) == Some("tok "))
        .count()
}

#[tokio::test]
async fn chat_answers_in_openai_shape_with_consistent_usage() {
    let (up, client) = start().await;
    let response = post(&client, &up, "/v1/chat/completions", &chat_body("hello there")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(body["created"].is_u64());
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    let usage = &body["usage"];
    let (p, c) = (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    );
    assert_eq!(usage["total_tokens"].as_u64().unwrap(), p + c);
    assert_eq!(c, UpstreamOptions::default().completion_tokens);
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(
        content.split_whitespace().count() as u64,
        c,
        "one word a completion token"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(up.calls(), 1);
    assert_eq!(up.bodies_seen(), 1);
    assert_eq!(up.last_body().unwrap(), chat_body("hello there"));
    up.shutdown().await;
}

#[tokio::test]
async fn prompt_tokens_stay_within_the_byte_bound_and_grow_with_the_prompt() {
    let (up, client) = start().await;
    let long = "long text ".repeat(200);
    let cases: Vec<Vec<&str>> = vec![
        vec![""],
        vec!["a"],
        vec!["hello world, how are you today?"],
        vec!["système", "réponse à la question"],
        vec!["日本語のテキストです", "🦀🦀🦀🦀", "x"],
        vec![&long],
    ];
    let mut previous_chars = None;
    let mut previous_tokens = 0;
    for contents in &cases {
        let messages: Vec<Value> = contents.iter().map(|c| json!({"role": "user", "content": c})).collect();
        let body: Value = post(
            &client,
            &up,
            "/v1/chat/completions",
            &json!({"model": "m", "messages": messages}),
        )
        .await
        .json()
        .await
        .unwrap();
        let prompt = body["usage"]["prompt_tokens"].as_u64().unwrap();
        let bytes: usize = contents.iter().map(|c| c.len()).sum();
        let bound = (bytes + 4 * contents.len()) as u64;
        assert!(prompt <= bound, "{contents:?}: {prompt} tokens > {bound}");
        assert!(prompt >= 1, "a message costs at least one token");
        let chars: usize = contents.iter().map(|c| c.chars().count()).sum::<usize>() + 4 * contents.len();
        if let Some(prev) = previous_chars
            && chars > prev
        {
            assert!(prompt >= previous_tokens, "more text, no fewer tokens");
        }
        previous_chars = Some(chars);
        previous_tokens = prompt;
    }
    // Parts arrays count like strings.
    let parts =
        json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}]});
    let a: Value = post(&client, &up, "/v1/chat/completions", &parts)
        .await
        .json()
        .await
        .unwrap();
    let b: Value = post(&client, &up, "/v1/chat/completions", &chat_body("hello there"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a["usage"], b["usage"]);
    up.shutdown().await;
}

#[tokio::test]
async fn completion_length_is_the_smaller_of_the_cap_and_the_asked_length() {
    let (up, client) = start_with(UpstreamOptions {
        completion_tokens: 7,
        ..UpstreamOptions::default()
    })
    .await;
    for (text, cap_key, cap, expected, finish) in [
        ("hi", None, 0, 7, "stop"),
        ("hi [fake:tokens=3]", None, 0, 3, "stop"),
        ("hi [fake:tokens=30]", Some("max_tokens"), 5, 5, "length"),
        ("hi", Some("max_completion_tokens"), 2, 2, "length"),
        ("hi", Some("max_tokens"), 100, 7, "stop"),
        ("hi [fake:tokens=0]", None, 0, 0, "stop"),
    ] {
        let mut body = chat_body(text);
        if let Some(key) = cap_key {
            body[key] = json!(cap);
        }
        let answer: Value = post(&client, &up, "/v1/chat/completions", &body)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            answer["usage"]["completion_tokens"], expected,
            "{text} {cap_key:?} {cap}"
        );
        assert_eq!(answer["choices"][0]["finish_reason"], finish, "{text}");
        let words = answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .count();
        assert_eq!(words as u64, expected);
    }
    up.shutdown().await;
}

#[tokio::test]
async fn the_same_request_gets_the_same_answer_but_a_new_id() {
    let (up, client) = start().await;
    let body = chat_body("deterministic [fake:tokens=4]");
    let mut a: Value = post(&client, &up, "/v1/chat/completions", &body)
        .await
        .json()
        .await
        .unwrap();
    let mut b: Value = post(&client, &up, "/v1/chat/completions", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(a["id"], b["id"]);
    a["id"] = Value::Null;
    b["id"] = Value::Null;
    assert_eq!(a, b);
    up.shutdown().await;
}

#[tokio::test]
async fn authorization_headers_are_recorded_and_can_be_required() {
    let options = UpstreamOptions {
        require_authorization: Some("Bearer sk-upstream".into()),
        ..UpstreamOptions::default()
    };
    let (up, client) = start_with(options).await;
    let url = format!("{}/v1/chat/completions", up.url());
    let ok = client
        .post(&url)
        .bearer_auth("sk-upstream")
        .json(&chat_body("a"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let again = client
        .post(&url)
        .bearer_auth("sk-upstream")
        .json(&chat_body("a"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let wrong = client
        .post(&url)
        .bearer_auth("sk-client")
        .json(&chat_body("a"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let err: Value = wrong.json().await.unwrap();
    assert_eq!(err["error"]["code"], "invalid_api_key");
    let none = client.post(&url).json(&chat_body("a")).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(
        up.seen_authorization(),
        vec!["Bearer sk-upstream".to_owned(), "Bearer sk-client".to_owned()]
    );
    assert_eq!(up.calls(), 4);
    let recent = up.recent_requests();
    assert_eq!(recent.len(), 4);
    assert_eq!(recent[3].authorization, None);
    assert_eq!(recent[0].path, "/v1/chat/completions");
    assert_eq!(up.recent_calls_to("/v1/chat/completions"), 4);
    up.shutdown().await;
}

#[tokio::test]
async fn error_directives_answer_openai_error_bodies() {
    let (up, client) = start().await;
    for (code, kind) in [
        (500u16, "server_error"),
        (429, "requests"),
        (503, "server_error"),
        (400, "invalid_request_error"),
    ] {
        for stream in [false, true] {
            let mut body = chat_body(&format!("x [fake:error={code}]"));
            body["stream"] = json!(stream);
            let response = post(&client, &up, "/v1/chat/completions", &body).await;
            assert_eq!(response.status().as_u16(), code);
            assert_eq!(response.headers().get("retry-after").is_some(), code == 429);
            let err: Value = response.json().await.unwrap();
            assert_eq!(err["error"]["type"], kind);
            assert!(err["error"]["message"].as_str().unwrap().contains(&code.to_string()));
        }
    }
    // Directives are read from the last user message only.
    let body = json!({"model": "m", "messages": [
        {"role": "user", "content": "[fake:error=500]"}, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "fine"}]});
    assert_eq!(post(&client, &up, "/v1/chat/completions", &body).await.status(), 200);
    // A typo is a 400, not a silent success.
    let typo = post(&client, &up, "/v1/chat/completions", &chat_body("[fake:eror=500]")).await;
    assert_eq!(typo.status(), 400);
    up.shutdown().await;
}

#[tokio::test]
async fn bad_requests_and_unknown_routes_get_error_bodies() {
    let (up, client) = start().await;
    let missing = post(&client, &up, "/v1/chat/completions", &json!({"model": "m"})).await;
    assert_eq!(missing.status(), 400);
    let not_json = client
        .post(format!("{}/v1/chat/completions", up.url()))
        .body("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    assert!(not_json.json::<Value>().await.unwrap()["error"]["message"].is_string());
    let unknown = client.get(format!("{}/v1/nothing", up.url())).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.json::<Value>().await.unwrap()["error"]["code"], "unknown_url");
    assert_eq!(up.calls(), 3);
    assert_eq!(up.bodies_seen(), 1);
    up.shutdown().await;
}

#[tokio::test]
async fn latency_and_delay_directives_hold_the_answer() {
    let (up, client) = start_with(UpstreamOptions {
        latency_ms: 50,
        ..UpstreamOptions::default()
    })
    .await;
    let t = Instant::now();
    assert_eq!(
        post(&client, &up, "/v1/chat/completions", &chat_body("a"))
            .await
            .status(),
        200
    );
    assert!(t.elapsed() >= Duration::from_millis(50));
    let t = Instant::now();
    assert_eq!(
        post(&client, &up, "/v1/chat/completions", &chat_body("a [fake:delay=150]"))
            .await
            .status(),
        200
    );
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "latency plus delay: {:?}",
        t.elapsed()
    );
    up.shutdown().await;
}

#[tokio::test]
async fn no_usage_drops_the_usage() {
    let (up, client) = start().await;
    let body: Value = post(&client, &up, "/v1/chat/completions", &chat_body("a [fake:no-usage]"))
        .await
        .json()
        .await
        .unwrap();
    assert!(body.get("usage").is_none());
    assert_eq!(body["object"], "chat.completion");
    up.shutdown().await;
}

#[tokio::test]
async fn streams_send_role_then_one_chunk_a_token_then_usage_only_when_asked() {
    let (up, client) = start_with(UpstreamOptions {
        completion_tokens: 5,
        ..UpstreamOptions::default()
    })
    .await;
    let plain: Value = post(&client, &up, "/v1/chat/completions", &chat_body("stream me"))
        .await
        .json()
        .await
        .unwrap();
    for include_usage in [false, true] {
        let mut body = chat_body("stream me");
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": include_usage});
        let response = post(&client, &up, "/v1/chat/completions", &body).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let (frames, failed) = sse_frames(response).await;
        assert!(!failed);
        assert_eq!(data_of(frames.last().unwrap()), "[DONE]");
        let chunks = chunks(&frames);
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
        assert_eq!(content_deltas(&chunks), 5);
        let usage: Vec<&Value> = chunks.iter().filter(|c| c["usage"].is_object()).collect();
        if include_usage {
            assert_eq!(usage.len(), 1);
            assert_eq!(usage[0]["choices"], json!([]));
            assert_eq!(
                usage[0]["usage"], plain["usage"],
                "the stream's usage is the plain answer's"
            );
            assert!(
                std::ptr::eq(usage[0], chunks.last().unwrap()),
                "usage is the last chunk"
            );
        } else {
            assert!(usage.is_empty());
        }
        let finish: Vec<&Value> = chunks
            .iter()
            .filter(|c| c["choices"][0]["finish_reason"].is_string())
            .collect();
        assert_eq!(finish.len(), 1);
    }
    assert_eq!(up.streams_completed(), 2);
    assert_eq!(up.open_streams(), 0);
    up.shutdown().await;
}

#[tokio::test]
async fn stream_no_usage_never_sends_the_usage_chunk() {
    let (up, client) = start().await;
    let mut body = chat_body("a [fake:no-usage][fake:tokens=3]");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (frames, failed) = sse_frames(post(&client, &up, "/v1/chat/completions", &body).await).await;
    assert!(!failed);
    assert_eq!(data_of(frames.last().unwrap()), "[DONE]");
    let chunks = chunks(&frames);
    assert!(chunks.iter().all(|c| !c["usage"].is_object()));
    assert_eq!(content_deltas(&chunks), 3);
    up.shutdown().await;
}

#[tokio::test]
async fn cut_aborts_the_connection_after_k_chunks() {
    let (up, client) = start().await;
    for k in [0usize, 2, 5] {
        let mut body = chat_body(&format!("a [fake:cut={k}]"));
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
        let (frames, failed) = sse_frames(post(&client, &up, "/v1/chat/completions", &body).await).await;
        assert!(failed, "the body ends in an error");
        assert!(frames.iter().all(|f| data_of(f) != "[DONE]"));
        let chunks = chunks(&frames);
        assert_eq!(content_deltas(&chunks), k);
        assert!(chunks.iter().all(|c| !c["usage"].is_object()));
    }
    assert_eq!(up.streams_aborted(), 3);
    assert_eq!(up.streams_completed(), 0);
    up.shutdown().await;
}

#[tokio::test]
async fn end_stops_the_stream_cleanly_after_k_chunks() {
    let (up, client) = start().await;
    let mut body = chat_body("a [fake:end=4]");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (frames, failed) = sse_frames(post(&client, &up, "/v1/chat/completions", &body).await).await;
    assert!(!failed);
    let chunks = chunks(&frames);
    assert_eq!(content_deltas(&chunks), 4);
    assert!(frames.iter().all(|f| data_of(f) != "[DONE]"));
    assert!(chunks.iter().all(|c| !c["usage"].is_object()));
    up.shutdown().await;
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn stall_holds_the_request_until_the_client_goes_away() {
    let (up, client) = start().await;
    let url = format!("{}/v1/chat/completions", up.url());
    let slow = client
        .post(&url)
        .json(&chat_body("a [fake:stall]"))
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(slow.unwrap_err().is_timeout());
    eventually("the stalled request is released when its client goes", || {
        up.in_flight() == 0
    })
    .await;

    let mut body = chat_body("a [fake:stall]");
    body["stream"] = json!(true);
    let response = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let first = String::from_utf8(stream.next().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(first.contains("\"role\":\"assistant\""));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.next())
            .await
            .is_err(),
        "nothing after the first"
    );
    assert_eq!(up.open_streams(), 1);
    drop(stream);
    eventually("the stalled stream closes when its client goes", || {
        up.open_streams() == 0
    })
    .await;
    up.shutdown().await;
}

#[tokio::test]
async fn shutdown_releases_stalled_requests_promptly() {
    let (up, client) = start().await;
    let url = format!("{}/v1/chat/completions", up.url());
    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.post(&url).json(&chat_body("a [fake:stall]")).send().await }
    });
    eventually("the request arrives", || up.in_flight() == 1).await;
    let t = Instant::now();
    up.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let answer = pending.await.unwrap();
    assert!(answer.is_err() || answer.unwrap().status() == 503);
}

#[tokio::test]
async fn chunk_delay_spaces_the_chunks() {
    let options = UpstreamOptions {
        stream_chunk_delay_ms: 20,
        completion_tokens: 5,
        ..UpstreamOptions::default()
    };
    let (up, client) = start_with(options).await;
    let mut body = chat_body("a");
    body["stream"] = json!(true);
    let t = Instant::now();
    let response = post(&client, &up, "/v1/chat/completions", &body).await;
    let first_byte = t.elapsed();
    let (frames, _) = sse_frames(response).await;
    // role, 5 contents, finish, [DONE]: 7 gaps.
    assert_eq!(frames.len(), 8);
    assert!(t.elapsed() >= Duration::from_millis(7 * 20), "{:?}", t.elapsed());
    assert!(
        first_byte < Duration::from_millis(7 * 20),
        "headers come first: {first_byte:?}"
    );
    up.shutdown().await;
}

#[tokio::test]
async fn embeddings_count_tokens_and_return_vectors() {
    let (up, client) = start().await;
    let body = json!({"model": "text-embedding-3-small", "input": ["hello world", "another text"], "dimensions": 16});
    let answer: Value = post(&client, &up, "/v1/embeddings", &body).await.json().await.unwrap();
    assert_eq!(answer["object"], "list");
    let data = answer["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    assert_eq!(data[0]["embedding"].as_array().unwrap().len(), 16);
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);
    let prompt = answer["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(answer["usage"]["total_tokens"].as_u64().unwrap(), prompt);
    assert!(prompt >= 1 && prompt <= ("hello world".len() + "another text".len()) as u64);
    let tokens: Value = post(
        &client,
        &up,
        "/v1/embeddings",
        &json!({"model": "e", "input": [1, 2, 3, 4]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(tokens["usage"]["prompt_tokens"], 4);
    let b64: Value = post(
        &client,
        &up,
        "/v1/embeddings",
        &json!({"model": "e", "input": "x", "encoding_format": "base64"}),
    )
    .await
    .json()
    .await
    .unwrap();
    // 8 f32 are 32 bytes: 44 base64 characters.
    assert_eq!(b64["data"][0]["embedding"].as_str().unwrap().len(), 44);
    let failing = post(
        &client,
        &up,
        "/v1/embeddings",
        &json!({"model": "e", "input": "x [fake:error=500]"}),
    )
    .await;
    assert_eq!(failing.status(), 500);
    let no_usage: Value = post(
        &client,
        &up,
        "/v1/embeddings",
        &json!({"model": "e", "input": "x [fake:no-usage]"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(no_usage.get("usage").is_none());
    up.shutdown().await;
}

#[tokio::test]
async fn responses_answer_with_usage_plain_and_streamed() {
    let (up, client) = start_with(UpstreamOptions {
        completion_tokens: 6,
        ..UpstreamOptions::default()
    })
    .await;
    let body = json!({"model": "gpt-4o-mini", "instructions": "be brief", "input": "say something"});
    let plain: Value = post(&client, &up, "/v1/responses", &body).await.json().await.unwrap();
    assert_eq!(plain["object"], "response");
    assert_eq!(plain["status"], "completed");
    let usage = &plain["usage"];
    assert_eq!(usage["output_tokens"], 6);
    let input = usage["input_tokens"].as_u64().unwrap();
    assert!(input >= 1 && input <= ("be brief".len() + "say something".len() + 8) as u64);
    assert_eq!(usage["total_tokens"].as_u64().unwrap(), input + 6);
    assert_eq!(
        plain["output"][0]["content"][0]["text"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .count(),
        6
    );

    let capped: Value = post(
        &client,
        &up,
        "/v1/responses",
        &json!({"model": "m", "input": "x", "max_output_tokens": 2}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(capped["usage"]["output_tokens"], 2);
    assert_eq!(capped["status"], "incomplete");

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let response = post(&client, &up, "/v1/responses", &streamed).await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let (frames, failed) = sse_frames(response).await;
    assert!(!failed);
    let events: Vec<&str> = frames
        .iter()
        .map(|f| f.lines().next().unwrap().strip_prefix("event: ").unwrap())
        .collect();
    assert_eq!(events[0], "response.created");
    assert_eq!(*events.last().unwrap(), "response.completed");
    assert_eq!(events.iter().filter(|e| **e == "response.output_text.delta").count(), 6);
    let completed: Value = serde_json::from_str(data_of(frames.last().unwrap())).unwrap();
    assert_eq!(completed["response"]["usage"], plain["usage"]);
    let numbers: Vec<u64> = frames
        .iter()
        .map(|f| {
            serde_json::from_str::<Value>(data_of(f)).unwrap()["sequence_number"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1));

    // Directives: from a list of input items, the last user item.
    let listed = json!({"model": "m", "stream": true, "input": [{"role": "user", "content": [{"type": "input_text", "text": "go [fake:cut=3]"}]}]});
    let (frames, failed) = sse_frames(post(&client, &up, "/v1/responses", &listed).await).await;
    assert!(failed);
    assert!(frames.iter().all(|f| !f.contains("response.completed")));
    assert_eq!(
        frames
            .iter()
            .filter(|f| f.starts_with("event: response.output_text.delta"))
            .count(),
        3
    );

    let mut no_usage = streamed.clone();
    no_usage["input"] = json!("x [fake:no-usage]");
    let (frames, _) = sse_frames(post(&client, &up, "/v1/responses", &no_usage).await).await;
    let completed: Value = serde_json::from_str(data_of(frames.last().unwrap())).unwrap();
    assert!(completed["response"]["usage"].is_null());
    up.shutdown().await;
}

#[tokio::test]
async fn images_speech_and_models() {
    let (up, client) = start().await;
    let urls: Value = post(
        &client,
        &up,
        "/v1/images/generations",
        &json!({"model": "dall-e-2", "prompt": "a cat", "n": 3}),
    )
    .await
    .json()
    .await
    .unwrap();
    let data = urls["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    assert!(data.iter().all(|d| d["url"].is_string()));
    let b64: Value = post(
        &client,
        &up,
        "/v1/images/generations",
        &json!({"model": "gpt-image-1", "prompt": "a cat", "quality": "low"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(
        b64["data"][0]["b64_json"].as_str().unwrap().starts_with("iVBORw0KGgo"),
        "a PNG"
    );
    assert_eq!(b64["usage"]["output_tokens"], 272);
    let bad_n = post(&client, &up, "/v1/images/generations", &json!({"prompt": "a", "n": 0})).await;
    assert_eq!(bad_n.status(), 400);

    let speech = post(
        &client,
        &up,
        "/v1/audio/speech",
        &json!({"model": "tts-1", "input": "hello", "voice": "alloy"}),
    )
    .await;
    assert_eq!(speech.status(), 200);
    assert_eq!(speech.headers()["content-type"], "audio/mpeg");
    let short = speech.bytes().await.unwrap().len();
    let longer = post(
        &client,
        &up,
        "/v1/audio/speech",
        &json!({"model": "tts-1", "input": "hello again", "voice": "alloy"}),
    )
    .await
    .bytes()
    .await
    .unwrap()
    .len();
    assert!(short > 0 && longer > short);
    let failing = post(
        &client,
        &up,
        "/v1/audio/speech",
        &json!({"model": "tts-1", "input": "x [fake:error=429]"}),
    )
    .await;
    assert_eq!(failing.status(), 429);

    let models: Value = client
        .get(format!("{}/v1/models", up.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    assert!(
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "gpt-4o-mini")
    );
    assert_eq!(up.calls(), 7);
    up.shutdown().await;
}

#[tokio::test]
async fn cached_and_reasoning_directives_set_the_usage_details_capped_at_their_totals() {
    let (up, client) = start().await;
    for (cached, reasoning) in [(3u64, 2u64), (0, 0), (1_000_000, 1_000_000)] {
        let text = format!("some prompt text here [fake:tokens=5][fake:cached={cached}][fake:reasoning={reasoning}]");
        let chat: Value = post(&client, &up, "/v1/chat/completions", &chat_body(&text))
            .await
            .json()
            .await
            .unwrap();
        let usage = &chat["usage"];
        let prompt = usage["prompt_tokens"].as_u64().unwrap();
        assert_eq!(
            usage["prompt_tokens_details"]["cached_tokens"].as_u64(),
            Some(cached.min(prompt))
        );
        assert_eq!(
            usage["completion_tokens_details"]["reasoning_tokens"].as_u64(),
            Some(reasoning.min(5))
        );
        let body = json!({"model": "gpt-4o-mini", "input": text});
        let resp: Value = post(&client, &up, "/v1/responses", &body).await.json().await.unwrap();
        let usage = &resp["usage"];
        let input = usage["input_tokens"].as_u64().unwrap();
        assert_eq!(
            usage["input_tokens_details"]["cached_tokens"].as_u64(),
            Some(cached.min(input))
        );
        assert_eq!(
            usage["output_tokens_details"]["reasoning_tokens"].as_u64(),
            Some(reasoning.min(5))
        );
    }
    // The streamed usage chunk carries the same details.
    let mut body = chat_body("prompt [fake:tokens=4][fake:cached=2][fake:reasoning=3]");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (frames, failed) = sse_frames(post(&client, &up, "/v1/chat/completions", &body).await).await;
    assert!(!failed);
    let last = chunks(&frames)
        .into_iter()
        .rev()
        .find(|c| c["usage"].is_object())
        .unwrap();
    assert_eq!(
        last["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64(),
        Some(2)
    );
    assert_eq!(
        last["usage"]["completion_tokens_details"]["reasoning_tokens"].as_u64(),
        Some(3)
    );
    up.shutdown().await;
}
