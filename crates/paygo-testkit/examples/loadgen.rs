//! The load generator of `benches/load/run.sh`: OpenAI chat calls over N keep-alive HTTP/1.1
//! connections, closed-loop (as fast as answers come) or open-loop at a fixed rate, plain or
//! streamed; prints one JSON line of results.
//!
//! ```sh
//! cargo run --release -p paygo-testkit --features upstream --example loadgen -- \
//!     --url http://127.0.0.1:PORT/v1/chat/completions [--key KEY] [--model M] [--label NAME]
//!     [--connections N] [--duration S] [--warmup S] [--rate PER_S] [--stream] [--max-tokens N]
//!     [--threads N]
//! ```
//!
//! Open-loop latencies of a call that found every connection busy count from its scheduled
//! time, not from when a connection was free, so a slow server's queueing shows in them (no
//! coordinated omission); a call that found a connection idle counts from when it was sent,
//! so that the timer's millisecond granularity is not charged to the server. A streamed call
//! Calls still due when the duration is over are not sent (counted as `unsent`), so a server
//! slower than the rate ends the run on time. A streamed call also records its time to first byte: the first body bytes (the role chunk). A call counts
//! as an error on a transport error or a status other than 200, and as bad when its body lacks
//! the usage (plain) or the `[DONE]` (streamed).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;

/// How late past the end a due call may still be sent (the timer wakes up to a millisecond or
/// so late; a backlog longer than this is the server's).
const DEADLINE_GRACE: Duration = Duration::from_millis(100);

/// A call not answered by then is an error.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

const USAGE: &str = "usage: loadgen --url URL [--key KEY] [--model M] [--label NAME] [--connections N] [--duration S] \
                     [--warmup S] [--rate PER_S] [--stream] [--max-tokens N] [--threads N]";

#[derive(Debug, Clone)]
struct Args {
    url: String,
    key: String,
    model: String,
    label: String,
    connections: u64,
    duration: f64,
    warmup: f64,
    rate: Option<f64>,
    stream: bool,
    max_tokens: u64,
    threads: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: String::new(),
        key: "sk-load".into(),
        model: "gpt-4o-mini".into(),
        label: "load".into(),
        connections: 32,
        duration: 10.0,
        warmup: 2.0,
        rate: None,
        stream: false,
        max_tokens: 20,
        threads: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--stream" {
            args.stream = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |v: &str| v.parse::<f64>().map_err(|_| format!("{flag} {v}: expected a number"));
        let count = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag} {v}: expected a whole number"))
        };
        match flag.as_str() {
            "--url" => args.url = value,
            "--key" => args.key = value,
            "--model" => args.model = value,
            "--label" => args.label = value,
            "--connections" => args.connections = count(&value)?.max(1),
            "--duration" => args.duration = number(&value)?.max(0.001),
            "--warmup" => args.warmup = number(&value)?.max(0.0),
            "--rate" => args.rate = Some(number(&value)?).filter(|r| *r > 0.0),
            "--max-tokens" => args.max_tokens = count(&value)?,
            "--threads" => args.threads = usize::try_from(count(&value)?.max(1)).unwrap_or(1),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    if args.url.is_empty() {
        return Err(format!("--url is missing\n{USAGE}"));
    }
    Ok(args)
}

/// `http://HOST:PORT/PATH` into the address to connect to, the Host header and the path.
fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: expected an http:// URL"))?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    Ok((
        host.to_owned(),
        if path.is_empty() {
            "/".to_owned()
        } else {
            path.to_owned()
        },
    ))
}

/// What one worker measured.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    ttfb_us: Vec<u32>,
    errors: u64,
    bad: u64,
}

struct Target {
    host: String,
    path: String,
    key: String,
    body: Bytes,
    stream: bool,
}

async fn connect(target: &Target) -> Result<SendRequest<Full<Bytes>>, String> {
    let tcp = tokio::net::TcpStream::connect(&target.host)
        .await
        .map_err(|e| format!("connect {}: {e}", target.host))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(sender)
}

enum Outcome {
    Ok { ttfb: Option<Duration> },
    Bad,
    Error,
}

/// One call on `sender`; a transport error drops the connection (the worker reconnects).
async fn call(sender: &mut Option<SendRequest<Full<Bytes>>>, target: &Target, start: Instant) -> Outcome {
    if sender.as_ref().is_none_or(SendRequest::is_closed) {
        match connect(target).await {
            Ok(s) => *sender = Some(s),
            Err(_) => return Outcome::Error,
        }
    }
    let Some(s) = sender.as_mut() else {
        return Outcome::Error;
    };
    if s.ready().await.is_err() {
        *sender = None;
        return Outcome::Error;
    }
    let request = hyper::Request::post(target.path.as_str())
        .header(HOST, target.host.as_str())
        .header(CONTENT_TYPE, "application/json")
        .header(AUTHORIZATION, format!("Bearer {}", target.key))
        .body(Full::new(target.body.clone()));
    let Ok(request) = request else { return Outcome::Error };
    let Ok(response) = s.send_request(request).await else {
        *sender = None;
        return Outcome::Error;
    };
    let ok_status = response.status() == hyper::StatusCode::OK;
    let mut body = response.into_body();
    let mut ttfb = None;
    let mut tail: Vec<u8> = Vec::new();
    let mut has_usage = false;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            *sender = None;
            return Outcome::Error;
        };
        if let Some(data) = frame.data_ref() {
            if ttfb.is_none() && !data.is_empty() {
                ttfb = Some(start.elapsed());
            }
            // Keep enough to see "[DONE]" at the end and "completion_tokens" across frame cuts.
            tail.extend_from_slice(data);
            if !has_usage && contains(&tail, b"\"completion_tokens\"") {
                has_usage = true;
            }
            if tail.len() > 256 {
                tail.drain(..tail.len() - 64);
            }
        }
    }
    if !ok_status {
        return Outcome::Error;
    }
    let complete = if target.stream {
        contains(&tail, b"[DONE]")
    } else {
        has_usage
    };
    if complete {
        Outcome::Ok {
            ttfb: ttfb.filter(|_| target.stream),
        }
    } else {
        Outcome::Bad
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The calls scheduled in `seconds` at `rate` a second (both checked non-negative).
#[allow(clippy::cast_sign_loss)]
fn due_calls(seconds: f64, rate: f64) -> u64 {
    (seconds * rate).ceil().max(0.0) as u64
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// One connection's loop: closed (next call when the answer is in) or open (each call at its
/// scheduled time, taken from the shared counter).
async fn worker(
    target: Arc<Target>,
    args: Arc<Args>,
    begin: Instant,
    next: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
) -> Tally {
    let measure_from = begin + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let mut tally = Tally::default();
    let mut sender = None;
    loop {
        let scheduled = match args.rate {
            None => Instant::now(),
            Some(rate) => {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let at = begin + Duration::from_secs_f64(i as f64 / rate);
                if at >= end {
                    break;
                }
                if Instant::now() < at {
                    // Idle until the call is due: count from the wake-up, so that the timer's
                    // millisecond granularity is not charged to the server.
                    tokio::time::sleep_until(at.into()).await;
                    Instant::now()
                } else {
                    // Every connection was busy: the wait is the server's, count it.
                    at
                }
            }
        };
        // Calls still due at the end are not sent (a server slower than the rate leaves them);
        // a due call whose timer woke a little late still is.
        let now = Instant::now();
        if (args.rate.is_none() && now >= end) || now >= end + DEADLINE_GRACE {
            break;
        }
        sent.fetch_add(1, Ordering::Relaxed);
        // A call counts when it is sent after the warm-up (an overloaded server's backlog of
        // calls due during the warm-up counts too: its latency is from their due time).
        let counted = Instant::now() >= measure_from;
        let timed = tokio::time::timeout(CALL_TIMEOUT, call(&mut sender, &target, scheduled)).await;
        let outcome = timed.unwrap_or_else(|_| {
            sender = None;
            Outcome::Error
        });
        if !counted {
            continue;
        }
        match outcome {
            Outcome::Ok { ttfb } => {
                tally.latencies_us.push(micros(scheduled.elapsed()));
                if let Some(t) = ttfb {
                    tally.ttfb_us.push(micros(t));
                }
            }
            Outcome::Bad => tally.bad += 1,
            Outcome::Error => {
                tally.errors += 1;
                // Do not spin on a refused connection.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    tally
}

fn percentiles(mut v: Vec<u32>) -> serde_json::Value {
    if v.is_empty() {
        return serde_json::Value::Null;
    }
    v.sort_unstable();
    // Nearest rank: the smallest value with at least `permille` thousandths at or below it.
    let at = |permille: usize| {
        let rank = (permille * v.len()).div_ceil(1000).clamp(1, v.len());
        f64::from(v[rank - 1]) / 1000.0
    };
    let mean = v.iter().map(|x| f64::from(*x)).sum::<f64>() / v.len() as f64 / 1000.0;
    serde_json::json!({
        "p50": at(500), "p90": at(900), "p99": at(990), "p999": at(999),
        "max": at(1000), "mean": (mean * 1000.0).round() / 1000.0,
    })
}

async fn run(args: Args) -> Result<serde_json::Value, String> {
    let (host, path) = split_url(&args.url)?;
    let mut body = serde_json::json!({
        "model": args.model,
        "messages": [{"role": "user", "content": "Write one short sentence about load testing."}],
        "max_tokens": args.max_tokens,
    });
    if args.stream {
        body["stream"] = serde_json::json!(true);
        body["stream_options"] = serde_json::json!({"include_usage": true});
    }
    let target = Arc::new(Target {
        host,
        path,
        key: args.key.clone(),
        body: Bytes::from(body.to_string()),
        stream: args.stream,
    });
    // Fail fast when nothing listens.
    drop(connect(&target).await?);
    let args = Arc::new(args);
    let begin = Instant::now() + Duration::from_millis(50);
    let next = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..args.connections)
        .map(|_| {
            tokio::spawn(worker(
                Arc::clone(&target),
                Arc::clone(&args),
                begin,
                Arc::clone(&next),
                Arc::clone(&sent),
            ))
        })
        .collect();
    let mut all = Tally::default();
    for w in workers {
        let t = w.await.map_err(|e| format!("a worker failed: {e}"))?;
        all.latencies_us.extend(t.latencies_us);
        all.ttfb_us.extend(t.ttfb_us);
        all.errors += t.errors;
        all.bad += t.bad;
    }
    let ok = all.latencies_us.len() as u64;
    // Open loop: the calls that were due before the end but never sent.
    let unsent = args
        .rate
        .map(|rate| due_calls(args.warmup + args.duration, rate).saturating_sub(sent.load(Ordering::Relaxed)));
    Ok(serde_json::json!({
        "label": args.label,
        "mode": if args.rate.is_some() { "open" } else { "closed" },
        "stream": args.stream,
        "url": args.url,
        "connections": args.connections,
        "rate": args.rate,
        "duration_s": args.duration,
        "ok": ok,
        "errors": all.errors,
        "bad": all.bad,
        "unsent": unsent,
        "rps": (ok as f64 / args.duration * 10.0).round() / 10.0,
        "latency_ms": percentiles(all.latencies_us),
        "ttfb_ms": percentiles(all.ttfb_us),
    }))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(result) => {
            println!("{result}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
