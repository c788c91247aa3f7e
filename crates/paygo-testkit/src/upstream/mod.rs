//! A fake OpenAI-compatible upstream over real HTTP, for the metering proxy's tests and the
//! load benchmark (`benches/load/`). Deterministic: the same request gets the same answer.
//!
//! Routes: `POST /v1/chat/completions`, `/v1/embeddings`, `/v1/responses`,
//! `/v1/images/generations`, `/v1/audio/speech` and `GET /v1/models`; anything else is a 404
//! with an OpenAI error body. Chat and Responses stream (SSE) when `"stream": true`.
//!
//! Token counts: the prompt is `(characters of the contents + 4 per message) / 4`, rounded
//! up, which never exceeds the contents' UTF-8 length plus 4 per message. The completion is
//! `min(max_tokens, N)` words `"tok "`, where N is [`UpstreamOptions::completion_tokens`] or
//! the `[fake:tokens=N]` directive. Directives ([`Directives`]) in the last user message
//! inject errors, delays, cut or stalled streams, missing usage, and cached or reasoning
//! token counts in the usage details.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use paygo_testkit::upstream::{FakeUpstream, UpstreamOptions};
//!
//! let upstream = FakeUpstream::start(UpstreamOptions { latency_ms: 5, ..UpstreamOptions::default() }).await?;
//! // Point the proxy at upstream.url(), send "hello [fake:tokens=3]", then:
//! assert_eq!(upstream.calls(), 0);
//! upstream.shutdown().await;
//! # Ok(()) }
//! ```

mod directives;
mod routes;
mod sse;

pub use directives::Directives;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How many recent requests [`FakeUpstream::recent_requests`] keeps (older ones are
/// dropped, so that a load test's memory stays flat).
pub const RECENT_REQUESTS: usize = 256;

/// How the fake upstream behaves for every request (directives change one request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamOptions {
    /// Sleep this long before answering any request (the model's "thinking").
    pub latency_ms: u64,
    /// Sleep this long between two chunks of a stream.
    pub stream_chunk_delay_ms: u64,
    /// The completion length when the request sets no `[fake:tokens=N]`.
    pub completion_tokens: u64,
    /// When set, a request whose `Authorization` header is not exactly this value gets a
    /// 401 (`invalid_api_key`), as the real upstream would.
    pub require_authorization: Option<String>,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        UpstreamOptions {
            latency_ms: 0,
            stream_chunk_delay_ms: 0,
            completion_tokens: 20,
            require_authorization: None,
        }
    }
}

/// One request the fake upstream received.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The body, when it was JSON.
    pub body: Option<serde_json::Value>,
}

/// A counter of things open now (requests being answered, streams being sent).
#[derive(Debug)]
pub(crate) struct Gauge(Arc<AtomicU64>);

impl Gauge {
    fn open(counter: &Arc<AtomicU64>) -> Gauge {
        counter.fetch_add(1, Ordering::SeqCst);
        Gauge(Arc::clone(counter))
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The state the handlers share.
#[derive(Debug)]
pub(crate) struct Shared {
    options: UpstreamOptions,
    calls: AtomicU64,
    bodies: AtomicU64,
    next_id: AtomicU64,
    in_flight: Arc<AtomicU64>,
    open_streams: Arc<AtomicU64>,
    streams_completed: AtomicU64,
    streams_aborted: AtomicU64,
    authorizations: Mutex<Vec<String>>,
    recent: Mutex<VecDeque<SeenRequest>>,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    /// Resolves when the server shuts down.
    async fn shut_down(&self) {
        let mut rx = self.shutdown.clone();
        let _ = rx.wait_for(|down| *down).await;
    }

    /// Sleeps `ms`; false when the server shut down meanwhile.
    async fn sleep(&self, ms: u64) -> bool {
        if ms == 0 {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => true,
            () = self.shut_down() => false,
        }
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// A running fake upstream on `127.0.0.1`; see the module docs. Dropping it stops the
/// server abruptly; [`FakeUpstream::shutdown`] stops it gracefully.
#[derive(Debug)]
pub struct FakeUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl FakeUpstream {
    /// Binds `127.0.0.1:0` (a free port) and serves on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// The bind's error.
    pub async fn start(options: UpstreamOptions) -> std::io::Result<FakeUpstream> {
        FakeUpstream::bind(SocketAddr::from(([127, 0, 0, 1], 0)), options).await
    }

    /// Binds `addr` (for a fixed port, as the load benchmark's upstream binary does) and
    /// serves on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// The bind's error.
    pub async fn bind(addr: SocketAddr, options: UpstreamOptions) -> std::io::Result<FakeUpstream> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, shutdown) = watch::channel(false);
        let shared = Arc::new(Shared {
            options,
            calls: AtomicU64::new(0),
            bodies: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            in_flight: Arc::new(AtomicU64::new(0)),
            open_streams: Arc::new(AtomicU64::new(0)),
            streams_completed: AtomicU64::new(0),
            streams_aborted: AtomicU64::new(0),
            authorizations: Mutex::new(Vec::new()),
            recent: Mutex::new(VecDeque::with_capacity(RECENT_REQUESTS)),
            shutdown: shutdown.clone(),
        });
        let app = routes::router(Arc::clone(&shared));
        let mut signal = shutdown;
        // Each stream chunk goes out at once: with Nagle's algorithm a chunk written while
        // the previous one is unacknowledged waits for the peer's delayed ACK (about 40 ms).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = signal.wait_for(|down| *down).await;
                })
                .await
        });
        Ok(FakeUpstream {
            addr,
            shared,
            stop,
            server: Some(server),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash (the API is under `/v1`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received, on any route (404s included).
    pub fn calls(&self) -> u64 {
        self.shared.calls.load(Ordering::SeqCst)
    }

    /// Requests received on `path` (such as `"/v1/chat/completions"`), among the last
    /// [`RECENT_REQUESTS`].
    pub fn recent_calls_to(&self, path: &str) -> u64 {
        self.shared
            .recent
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .count() as u64
    }

    /// The distinct `Authorization` headers seen, in the order first seen (to test that a
    /// proxy forwards its upstream key and never the client's).
    pub fn seen_authorization(&self) -> Vec<String> {
        self.shared.authorizations.lock().unwrap().clone()
    }

    /// Requests whose body was JSON.
    pub fn bodies_seen(&self) -> u64 {
        self.shared.bodies.load(Ordering::SeqCst)
    }

    /// The last JSON body received, if any (to test what a proxy forwards, such as
    /// `stream_options.include_usage`).
    pub fn last_body(&self) -> Option<serde_json::Value> {
        self.shared
            .recent
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find_map(|r| r.body.clone())
    }

    /// The last [`RECENT_REQUESTS`] requests, oldest first.
    pub fn recent_requests(&self) -> Vec<SeenRequest> {
        self.shared.recent.lock().unwrap().iter().cloned().collect()
    }

    /// Requests being answered now (a stalled request stays here until its client goes away
    /// or the server stops; a stream counts in [`FakeUpstream::open_streams`] instead once its
    /// headers are sent).
    pub fn in_flight(&self) -> u64 {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Streams being sent now: one that drops to 0 after a client went away shows the proxy
    /// closed its upstream stream too.
    pub fn open_streams(&self) -> u64 {
        self.shared.open_streams.load(Ordering::SeqCst)
    }

    /// Streams sent to their end (`[DONE]` or `response.completed`).
    pub fn streams_completed(&self) -> u64 {
        self.shared.streams_completed.load(Ordering::SeqCst)
    }

    /// Streams that ended early: cut, ended early, or whose client went away.
    pub fn streams_aborted(&self) -> u64 {
        self.shared.streams_aborted.load(Ordering::SeqCst)
    }

    /// Stops accepting, releases stalled requests and streams, and waits (at most 5 s)
    /// for the connections to close before stopping the server outright.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(mut server) = self.server.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut server).await.is_err()
        {
            server.abort();
        }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
