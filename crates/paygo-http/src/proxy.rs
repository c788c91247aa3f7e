//! [`Proxy`]: the state of the HTTP layer, and the path of one metered call that is not
//! streamed. Streaming is in `stream.rs`, the account and operator endpoints in `api.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use paygo_billing::{BillingError, BillingStore, CustomerId, EntryKind, HISTORY_PAGE_MAX, HistoryQuery, HoldId};
use paygo_credits::Money;
use paygo_gateway::{Admitted, Call, Completed, Gateway, GatewayError, TopUps};
use paygo_invoice::SequenceStore;
use paygo_pricing::{ServiceTier, Usage, UsageSection, UsageShape};
use paygo_ratelimit::AsyncStore;
use paygo_time::Clock;
use serde::Deserialize;
use tokio::sync::watch;

use crate::accounts::{Directory, KeyId};
use crate::error::HttpError;
use crate::respond::{ApiError, add_headers, usage_headers};
use crate::sizing::{Endpoint, RequestSize, size_request};
use crate::usage::{CallRecord, Settlement, UsageLog};

/// How the proxy is set up.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// The upstream's base URL (`http://host:port`, without `/v1`).
    pub upstream: String,
    /// The upstream's API key, sent as `Authorization: Bearer` on every upstream call
    /// (never the client's key).
    pub upstream_api_key: Option<String>,
    /// The largest request body accepted, in bytes (larger: 413). Default 4 MiB.
    pub body_limit_bytes: usize,
    /// The largest upstream response body read, in bytes (larger: 502, the hold released).
    /// Default 64 MiB.
    pub response_limit_bytes: usize,
    /// How long an upstream call may take to answer (the whole body, or a stream's
    /// headers), in milliseconds (then 504, the hold released). Default 300,000.
    pub upstream_timeout_ms: u64,
    /// The longest pause between two chunks of a stream, in milliseconds (then the stream
    /// is settled as cut). Default 120,000.
    pub stream_idle_timeout_ms: u64,
    /// The operator's token for `/admin/v1/...` (`Authorization: Bearer`); `None`: the
    /// operator endpoints answer 404.
    pub admin_token: Option<String>,
    /// Path prefixes forwarded to the upstream unmetered (after the key is checked); any
    /// other unknown path answers 404.
    pub pass_through: Vec<String>,
    /// The billing portal under `/portal` (`docs/portal.md`); `None`: no portal (404).
    pub portal: Option<crate::portal::PortalOptions>,
}

impl ProxyOptions {
    /// Options for `upstream` with the defaults.
    pub fn new(upstream: impl Into<String>) -> ProxyOptions {
        ProxyOptions {
            upstream: upstream.into(),
            upstream_api_key: None,
            body_limit_bytes: 4 << 20,
            response_limit_bytes: 64 << 20,
            upstream_timeout_ms: 300_000,
            stream_idle_timeout_ms: 120_000,
            admin_token: None,
            pass_through: Vec::new(),
            portal: None,
        }
    }
}

/// Calls in flight: each holds a guard; [`Proxy::drain`] waits for none.
#[derive(Debug)]
pub(crate) struct InFlight(watch::Sender<usize>);

/// One call in flight.
#[derive(Debug)]
pub(crate) struct InFlightGuard(watch::Sender<usize>);

impl InFlight {
    pub(crate) fn enter(&self) -> InFlightGuard {
        self.0.send_modify(|n| *n += 1);
        InFlightGuard(self.0.clone())
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The HTTP layer's state: the gateway (prices, limits, billing), the account directory,
/// the usage log, the top-up service, and the upstream client. Build one with
/// [`Proxy::new`] and mount [`crate::router`].
pub struct Proxy<B, L, C, S> {
    pub(crate) gateway: Gateway<B, L, C>,
    pub(crate) directory: Directory,
    pub(crate) usage: UsageLog,
    pub(crate) topups: TopUps<S>,
    pub(crate) client: reqwest::Client,
    pub(crate) upstream: String,
    pub(crate) upstream_auth: Option<HeaderValue>,
    pub(crate) admin: Option<blake3::Hash>,
    pub(crate) options: ProxyOptions,
    pub(crate) in_flight: InFlight,
    /// Calls charged whose usage record could not be written ([`Proxy::unrecorded_calls`]).
    pub(crate) unrecorded: AtomicU64,
    /// The accounts' plan, as the portal shows it.
    pub(crate) plan: Option<paygo_ratelimit::Plan>,
}

impl<B, L, C, S> std::fmt::Debug for Proxy<B, L, C, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("upstream", &self.upstream)
            .field("calls_in_flight", &*self.in_flight.0.borrow())
            .finish_non_exhaustive()
    }
}

/// What the upstream's JSON answer holds that billing reads: its usage, if any.
#[derive(Deserialize)]
struct UsageOnly<'a> {
    #[serde(borrow, default)]
    usage: Option<&'a serde_json::value::RawValue>,
}

/// The `meta` object of a charged call: `{"usage": {"credits_used": N, "usd_spent": X}}`,
/// with the exact decimal written as a JSON number.
pub(crate) fn meta_json(section: &UsageSection) -> String {
    format!(
        r#"{{"usage":{{"credits_used":{},"usd_spent":{}}}}}"#,
        section.credits_used.get(),
        section.usd_spent.normalize()
    )
}

/// `object` (a JSON object's text) with `"meta": meta` added as its last member; `None`
/// if it is not an object.
pub(crate) fn with_meta(object: &[u8], meta: &str) -> Option<Vec<u8>> {
    let end = object.iter().rposition(|b| !b.is_ascii_whitespace())?;
    if object.first().copied() != Some(b'{') || object[end] != b'}' {
        return None;
    }
    let inner_empty = object[1..end].iter().all(u8::is_ascii_whitespace);
    let mut out = Vec::with_capacity(end + meta.len() + 10);
    out.extend_from_slice(&object[..end]);
    if !inner_empty {
        out.push(b',');
    }
    out.extend_from_slice(b"\"meta\":");
    out.extend_from_slice(meta.as_bytes());
    out.push(b'}');
    Some(out)
}

/// The request id of a call: `req_` and its hold id in hex.
/// How old a charge must be for [`Proxy::reconcile`] to rebuild its missing record in a
/// shared usage log.
const SHARED_RECONCILE_GRACE_NS: u64 = 60_000_000_000;
/// How far after a shared usage log's horizon a charge must be for [`Proxy::reconcile`] to
/// rebuild its missing record: a day, so that a prune running at the same time (which
/// raises the horizon by the time since the last one) cannot delete a record that
/// reconcile has just found missing and then writes again.
const SHARED_RECONCILE_HORIZON_MARGIN_NS: u64 = 24 * 3_600_000_000_000;

/// How long a charged call's usage record is retried while a shared usage log is
/// unavailable, in milliseconds, before the call is answered without it
/// ([`Proxy::unrecorded_calls`]).
pub const RECORD_RETRY_MS: u64 = 5_000;

pub(crate) fn request_id(hold: HoldId) -> String {
    format!("req_{:032x}", hold.0)
}

impl<B, L, C, S> Proxy<B, L, C, S>
where
    B: BillingStore + 'static,
    L: AsyncStore<CustomerId> + 'static,
    C: Clock + 'static,
    S: SequenceStore + Send + Sync + 'static,
{
    /// A proxy over `gateway`, `directory`, `usage` and `topups`.
    ///
    /// # Errors
    ///
    /// [`HttpError::Config`] for an upstream URL that is not `http://` or `https://`, an
    /// upstream key that cannot be a header, or an HTTP client that cannot be built.
    pub fn new(
        gateway: Gateway<B, L, C>,
        directory: Directory,
        usage: UsageLog,
        topups: TopUps<S>,
        options: ProxyOptions,
    ) -> Result<Proxy<B, L, C, S>, HttpError> {
        let upstream = options.upstream.trim_end_matches('/').to_owned();
        if !(upstream.starts_with("http://") || upstream.starts_with("https://")) {
            return Err(HttpError::Config {
                what: format!("upstream `{upstream}`: expected an http:// or https:// URL"),
            });
        }
        let upstream_auth = options
            .upstream_api_key
            .as_deref()
            .map(|key| {
                let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| HttpError::Config {
                    what: "the upstream API key holds characters a header cannot carry".into(),
                })?;
                value.set_sensitive(true);
                Ok::<_, HttpError>(value)
            })
            .transpose()?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| HttpError::Config {
                what: format!("the HTTP client: {e}"),
            })?;
        if options.upstream_timeout_ms >= gateway.hold_timeout_ms() {
            return Err(HttpError::Config {
                what: format!(
                    "the upstream timeout ({} ms) must be shorter than the hold timeout ({} ms): a call must end before its hold expires",
                    options.upstream_timeout_ms,
                    gateway.hold_timeout_ms()
                ),
            });
        }
        let admin = options.admin_token.as_deref().map(|t| blake3::hash(t.as_bytes()));
        Ok(Proxy {
            gateway,
            directory,
            usage,
            topups,
            client,
            upstream,
            upstream_auth,
            admin,
            options,
            in_flight: InFlight(watch::channel(0).0),
            unrecorded: AtomicU64::new(0),
            plan: None,
        })
    }

    /// The proxy with its top-ups recorded through `joint`: each payment's credits and its
    /// invoice's number in one transaction (`paygo_postgres::PgStore`, given the same
    /// database as the billing store and the invoice numbering).
    #[must_use]
    pub fn with_joint_top_ups(mut self, joint: Arc<dyn paygo_gateway::JointTopUps>) -> Self {
        self.topups.set_joint(joint);
        self
    }

    /// The proxy with `plan` as the accounts' plan the portal shows (the limiter enforces
    /// its own copy).
    #[must_use]
    pub fn with_plan(mut self, plan: paygo_ratelimit::Plan) -> Self {
        self.plan = Some(plan);
        self
    }

    /// The gateway.
    pub fn gateway(&self) -> &Gateway<B, L, C> {
        &self.gateway
    }

    /// The account directory.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The usage log.
    pub fn usage(&self) -> &UsageLog {
        &self.usage
    }

    /// The top-up service.
    pub fn topups(&self) -> &TopUps<S> {
        &self.topups
    }

    /// Calls charged and answered whose usage record could not be written (the usage log's
    /// file failed, or a shared log stayed unavailable for [`RECORD_RETRY_MS`]) since this
    /// proxy started. Each is in the ledger; its record is rebuilt by [`Proxy::reconcile`]
    /// at the next start (without its model and token counts), so the usage endpoints
    /// miss it until then.
    pub fn unrecorded_calls(&self) -> u64 {
        self.unrecorded.load(Ordering::Relaxed)
    }

    /// Calls in flight now (streams being read included).
    pub fn calls_in_flight(&self) -> usize {
        *self.in_flight.0.borrow()
    }

    /// Waits until no call is in flight: every admitted call is charged or released (for
    /// a graceful shutdown, after the listener has stopped taking connections).
    pub async fn drain(&self) {
        let mut rx = self.in_flight.0.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Deletes the usage records of calls older than `retention` (by the gateway's clock)
    /// from a shared usage log ([`UsageLog::prune`]: the hourly roll-ups stay) and returns
    /// how many; a log that is not shared keeps everything (0). Any replica may run it, as
    /// often as it likes (the server example: hourly, `--usage-retention-days`).
    ///
    /// # Errors
    ///
    /// [`HttpError::Storage`] when the shared log cannot be written.
    pub async fn prune_usage(&self, retention: std::time::Duration) -> Result<u64, HttpError> {
        let retention_ns = u64::try_from(retention.as_nanos()).unwrap_or(u64::MAX);
        let before_ns = self.gateway.clock().now_ns().saturating_sub(retention_ns);
        self.usage.prune(before_ns).await
    }

    /// Opens the billing accounts of directory accounts the store does not have (their
    /// creation was cut), and rebuilds the usage records a crash lost: every charge in an account's ledger history
    /// whose call has no record gets one ([`Settlement::Recovered`]: the credits and time
    /// from the ledger, the model `"unknown"`, no usage), so that the usage endpoints always
    /// add up to what the ledger charged. Run it once after opening, before serving;
    /// returns how many records were rebuilt. With a shared usage log, charges of the last
    /// minute are left alone (another replica may still be writing their records), and so
    /// are charges before the log's horizon and a day after it (their records were pruned
    /// on purpose: [`Proxy::prune_usage`]).
    ///
    /// # Errors
    ///
    /// [`HttpError::Storage`] when the billing store or the usage log fails.
    pub async fn reconcile(&self) -> Result<usize, HttpError> {
        let mut rebuilt = 0;
        let rate = self.gateway.prices().credit_rate();
        // A log other replicas write to: a charge of the last minute may be a call another
        // replica is still answering (its record follows its capture): left to it.
        let newest_ns = if self.usage.is_shared() {
            self.gateway.clock().now_ns().saturating_sub(SHARED_RECONCILE_GRACE_NS)
        } else {
            u64::MAX
        };
        // Charges before the horizon (and a margin) had their records pruned on purpose:
        // their calls are in the hourly roll-ups.
        let oldest_ns = match self.usage.horizon_ns().await? {
            0 => 0,
            horizon => horizon.saturating_add(SHARED_RECONCILE_HORIZON_MARGIN_NS),
        };
        for account in self.directory.accounts() {
            let mut query = HistoryQuery::newest(HISTORY_PAGE_MAX);
            loop {
                let page = match self.gateway.billing().history(account.id, query).await {
                    Ok(page) => page,
                    // An account the ledger never opened (a crash, or the store down, right
                    // after the directory line): nothing was charged; it is opened now.
                    Err(BillingError::UnknownCustomer { .. }) => {
                        match self.gateway.open_account(account.id).await {
                            Ok(_)
                            | Err(paygo_gateway::GatewayError::Refused(paygo_billing::Refusal::AccountExists)) => {}
                            Err(e) => return Err(HttpError::Storage { what: e.to_string() }),
                        }
                        break;
                    }
                    Err(e) => return Err(HttpError::Storage { what: e.to_string() }),
                };
                for entry in &page.entries {
                    let EntryKind::Charge { hold } = entry.kind else {
                        continue;
                    };
                    if entry.at_ns > newest_ns || entry.at_ns < oldest_ns {
                        continue;
                    }
                    let request_id = request_id(hold);
                    if self.usage.contains(&request_id).await? {
                        continue;
                    }
                    let credits = paygo_credits::Credits::new(entry.credits.get().saturating_neg());
                    let usd = rate.to_money_exact(credits).map_err(HttpError::Credits)?;
                    self.usage
                        .append(CallRecord {
                            request_id,
                            account: account.id,
                            key_id: None,
                            model: "unknown".into(),
                            endpoint: None,
                            service_tier: ServiceTier::STANDARD,
                            at_ns: entry.at_ns,
                            usage: Usage::default(),
                            credits,
                            usd,
                            streamed: false,
                            settlement: Settlement::Recovered,
                        })
                        .await?;
                    rebuilt += 1;
                }
                match page.next {
                    Some(before) => query.before_ns = Some(before),
                    None => break,
                }
            }
        }
        Ok(rebuilt)
    }

    /// The account of the request's `Authorization: Bearer` key.
    pub(crate) async fn authenticate(&self, headers: &HeaderMap) -> Result<CustomerId, ApiError> {
        Ok(self.authenticate_key(headers).await?.0)
    }

    /// The account and the key of the request's `Authorization: Bearer` key.
    pub(crate) async fn authenticate_key(&self, headers: &HeaderMap) -> Result<(CustomerId, KeyId), ApiError> {
        let key = bearer(headers)
            .ok_or_else(|| ApiError::new(401, "missing_api_key", "no API key: send `Authorization: Bearer <key>`"))?;
        let (account, key) = self
            .directory
            .authenticate_fresh(key)
            .await?
            .ok_or_else(|| ApiError::new(401, "invalid_api_key", "the API key is not valid"))?;
        self.directory.touch(&key, self.gateway.clock().now_ns());
        Ok((account, key))
    }

    /// A new call id: time-ordered (the clock's millisecond above 80 random bits), so that
    /// ids are unique across replicas and usable with an idempotency window.
    fn call_id(&self) -> Result<HoldId, ApiError> {
        let mut low = [0u8; 16];
        getrandom::fill(&mut low[6..]).map_err(|e| ApiError::from(HttpError::Random { reason: e.to_string() }))?;
        let ms = u128::from(self.gateway.clock().now_ns() / 1_000_000);
        Ok(HoldId((ms << 80) | u128::from_be_bytes(low)))
    }

    /// A metered call: authenticate, size, admit (rate limit and hold), forward, settle.
    pub(crate) async fn metered(
        self: Arc<Self>,
        endpoint: Endpoint,
        path: &'static str,
        headers: HeaderMap,
        body: Result<Bytes, BytesRejection>,
    ) -> Response {
        let guard = self.in_flight.enter();
        // Every answer carries the call's id, refusals and failures included.
        let id = match self.call_id() {
            Ok(id) => id,
            Err(e) => return e.into_response(),
        };
        let request_id = request_id(id);
        // A task of its own, not the connection's handler: the server drops a handler
        // when its client hangs up, and a call dropped between the upstream's answer and
        // its charge would be free (its hold only expires). The task runs to the charge
        // whether or not anyone reads the answer.
        let call = tokio::spawn({
            let request_id = request_id.clone();
            async move {
                self.metered_inner(endpoint, path, &headers, body, (id, request_id), guard)
                    .await
            }
        });
        let mut response = match call.await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => e.into_response(),
            Err(_) => ApiError::new(500, "internal_error", "the call failed inside the proxy").into_response(),
        };
        add_headers(response.headers_mut(), [("x-request-id", request_id.as_str())]);
        response
    }

    async fn metered_inner(
        self: Arc<Self>,
        endpoint: Endpoint,
        path: &'static str,
        headers: &HeaderMap,
        body: Result<Bytes, BytesRejection>,
        (id, request_id): (HoldId, String),
        guard: InFlightGuard,
    ) -> Result<Response, ApiError> {
        let (account, key) = self.authenticate_key(headers).await?;
        let body = body.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    413,
                    "request_too_large",
                    format!(
                        "the request body is larger than the limit of {} bytes",
                        self.options.body_limit_bytes
                    ),
                )
            } else {
                ApiError::new(400, "invalid_request", rejection.body_text())
            }
        })?;
        let mut value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::from(HttpError::MalformedBody {
                reason: format!("expected a JSON object: {e}"),
            })
        })?;
        let size = size_request(endpoint, &value, self.gateway.prices())?;
        let service_tier = service_tier(&value)?;
        let call = Call {
            id,
            account,
            model: &size.model,
            prompt_tokens: size.prompt_tokens,
            max_output_tokens: size.max_output_tokens,
            service_tier,
            units: size.units.as_ref(),
        };
        if self.usage.has_failed() {
            // Its record could not be written: refused before it is charged (the log
            // fails closed until the server is restarted).
            return Err(ApiError::new(
                503,
                "store_unavailable",
                "the usage log cannot be written (an earlier write failed); nothing was charged",
            ));
        }
        let admitted = self.gateway.admit(&call).await?;
        // Streams always ask the upstream for their usage (the client sees it only if it
        // asked).
        let upstream_body = if size.stream && endpoint == Endpoint::ChatCompletions && !size.include_usage {
            if let Some(object) = value.as_object_mut() {
                object.insert("stream_options".into(), serde_json::json!({"include_usage": true}));
            }
            Bytes::from(serde_json::to_vec(&value).map_err(|e| ApiError::new(500, "internal_error", e.to_string()))?)
        } else {
            body
        };
        let mut request = self
            .client
            .post(format!("{}{path}", self.upstream))
            .header(header::CONTENT_TYPE, "application/json")
            .body(upstream_body);
        if let Some(auth) = &self.upstream_auth {
            request = request.header(header::AUTHORIZATION, auth.clone());
        }
        // One deadline for the whole upstream call (its answer's headers, and its body when
        // it is not streamed): shorter than the hold's timeout (checked in `Proxy::new`).
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.options.upstream_timeout_ms);
        if size.stream {
            let sent = tokio::time::timeout_at(deadline, request.send()).await;
            let upstream = match self.upstream_answer(&admitted, sent).await {
                Ok(upstream) => upstream,
                Err(e) => return Err(e),
            };
            return Ok(crate::stream::start(
                self,
                admitted,
                endpoint,
                &size,
                upstream,
                (request_id, key),
                guard,
            ));
        }
        let sent = tokio::time::timeout_at(deadline, request.send()).await;
        let upstream = self.upstream_answer(&admitted, sent).await?;
        let bytes =
            match tokio::time::timeout_at(deadline, read_limited(upstream, self.options.response_limit_bytes)).await {
                Ok(Ok(bytes)) => bytes,
                Ok(Err(e)) => return Err(self.release(&admitted, e).await),
                Err(_) => {
                    let e = ApiError::new(504, "upstream_timeout", "the upstream did not answer in time");
                    return Err(self.release(&admitted, e).await);
                }
            };
        self.answer_plain(&admitted, endpoint, &size, &request_id, &key, bytes)
            .await
    }

    /// Charges a call that was not streamed and answers with its body, `meta` added.
    async fn answer_plain(
        &self,
        admitted: &Admitted,
        endpoint: Endpoint,
        size: &RequestSize,
        request_id: &str,
        key: &KeyId,
        bytes: Bytes,
    ) -> Result<Response, ApiError> {
        let usage = if endpoint == Endpoint::AudioSpeech {
            // Speech answers audio: it is charged by the units of its request.
            size.units.clone()
        } else {
            let parsed: Result<UsageOnly<'_>, _> = serde_json::from_slice(&bytes);
            let Ok(parsed) = parsed else {
                let e = ApiError::new(502, "upstream_malformed", "the upstream's answer is not a JSON object");
                return Err(self.release(admitted, e).await);
            };
            // Images report usage only for models priced by image tokens (the Responses
            // API's shape); the others are charged by the units of their request.
            let shape = if matches!(endpoint, Endpoint::Responses | Endpoint::ImageGenerations) {
                UsageShape::OpenAiResponses
            } else {
                UsageShape::OpenAiChat
            };
            let reported = match parsed.usage.filter(|raw| raw.get() != "null") {
                None => None,
                Some(raw) => match Usage::from_json(raw.get(), Some(shape)) {
                    Ok(usage) => Some(usage),
                    // An image's price is in the request's units: an unreadable usage
                    // beside them is left out (a model priced by image tokens then cannot
                    // be quoted from the units alone, and answers 502 below).
                    Err(_) if endpoint == Endpoint::ImageGenerations => None,
                    // Usage the upstream reported but that cannot be read (counters that
                    // contradict each other, a counter of another API): as a usage that
                    // cannot be priced, never as no usage (which would charge the prompt
                    // alone and leave the output free).
                    Err(e) => {
                        let e = ApiError::new(
                            502,
                            "usage_unpriceable",
                            format!("the upstream's usage cannot be read: {e}"),
                        );
                        return Err(self.release(admitted, e).await);
                    }
                },
            };
            if endpoint == Endpoint::ImageGenerations {
                image_usage(reported, size.units.as_ref())
            } else {
                reported
            }
        };
        let body = bytes;
        let charged = self.settle(admitted, usage, true).await?;
        self.record(call_record(admitted, endpoint, request_id, key, &charged, false))
            .await;
        let completed = &charged.completed;
        let mut response = if endpoint == Endpoint::AudioSpeech {
            (StatusCode::OK, [(header::CONTENT_TYPE, "audio/mpeg")], body).into_response()
        } else {
            let meta = meta_json(&completed.usage);
            let body = with_meta(&body, &meta).unwrap_or_else(|| body.to_vec());
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        };
        let headers = response.headers_mut();
        add_headers(
            headers,
            admitted
                .rate_limit_headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str())),
        );
        add_headers(
            headers,
            usage_headers(&completed.usage)
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str())),
        );
        Ok(response)
    }

    /// The upstream's answer to a sent request, or the error to answer with (the hold
    /// released): a timeout (504), a failed connection or a 5xx (502), a refusal of the
    /// operator's credentials (401 or 403: 502 `upstream_auth_failed`), or the upstream's
    /// other 4xx passed on.
    pub(crate) async fn upstream_answer(
        &self,
        admitted: &Admitted,
        sent: Result<Result<reqwest::Response, reqwest::Error>, tokio::time::error::Elapsed>,
    ) -> Result<reqwest::Response, ApiError> {
        let error = match sent {
            Err(_) => ApiError::new(504, "upstream_timeout", "the upstream did not answer in time"),
            Ok(Err(e)) if e.is_timeout() => {
                ApiError::new(504, "upstream_timeout", "the upstream did not answer in time")
            }
            Ok(Err(_)) => ApiError::new(502, "upstream_unreachable", "the upstream could not be reached"),
            Ok(Ok(response)) if response.status().is_success() => return Ok(response),
            Ok(Ok(response)) if upstream_refused_the_operator(response.status()) => {
                upstream_auth_failed(response.status())
            }
            Ok(Ok(response)) if response.status().is_client_error() => {
                let status = response.status().as_u16();
                let text = read_limited(response, 64 << 10)
                    .await
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let message = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| format!("the upstream refused the request ({status})"));
                ApiError::new(status, "upstream_refused", message)
            }
            Ok(Ok(response)) => ApiError::new(
                502,
                "upstream_error",
                format!("the upstream failed ({})", response.status().as_u16()),
            ),
        };
        Err(self.release(admitted, error).await)
    }

    /// Releases the hold of a call that failed, and answers `error` (or 503 if the
    /// release itself could not be recorded: the hold then expires on its own).
    pub(crate) async fn release(&self, admitted: &Admitted, error: ApiError) -> ApiError {
        match self.gateway.fail(admitted).await {
            Ok(()) => error,
            Err(e) => ApiError::from(e),
        }
    }

    /// Appends a charged call's usage record. The call is charged, so no failure here fails
    /// it: its answer is paid for, and a client told "not charged" (503) would pay twice by
    /// retrying. A shared log that is unavailable is retried for up to
    /// [`RECORD_RETRY_MS`]; a record still not written is counted
    /// ([`Proxy::unrecorded_calls`]) and rebuilt from the ledger by [`Proxy::reconcile`] at
    /// the next start. A log whose file failed is not retried (it has failed closed; the
    /// next calls are refused before they are charged).
    pub(crate) async fn record(&self, record: CallRecord) {
        let give_up = tokio::time::Instant::now() + Duration::from_millis(RECORD_RETRY_MS);
        let mut attempt = 0u32;
        loop {
            match self.usage.append(record.clone()).await {
                Ok(()) => return,
                Err(_) if !self.usage.has_failed() && tokio::time::Instant::now() < give_up => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 << attempt.min(4))).await;
                }
                Err(_) => {
                    self.unrecorded.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }

    /// Charges a call: its usage quoted and captured, or, without usage, the gateway's
    /// settle-without-usage rule when something was produced (or the hold released when
    /// nothing was). A store that is unavailable (a database restarting) is retried, the
    /// capture being idempotent, for up to half the hold's timeout: the call was made and
    /// its answer may be out already, so giving up early would make it free.
    pub(crate) async fn settle(
        &self,
        admitted: &Admitted,
        usage: Option<Usage>,
        produced: bool,
    ) -> Result<Charged, ApiError> {
        let mut attempt = 0u32;
        let give_up = tokio::time::Instant::now() + Duration::from_millis(self.gateway.hold_timeout_ms() / 2);
        loop {
            let result = match &usage {
                Some(usage) => self
                    .gateway
                    .complete(admitted, usage)
                    .await
                    .map(|c| (c, Settlement::Usage)),
                None if produced => self
                    .gateway
                    .settle_without_usage(admitted)
                    .await
                    .map(|c| (c, Settlement::WithoutUsage)),
                None => {
                    return Err(self
                        .release(
                            admitted,
                            ApiError::new(502, "upstream_error", "the upstream produced nothing"),
                        )
                        .await);
                }
            };
            match result {
                Err(GatewayError::Billing(paygo_billing::BillingError::Unavailable { .. }))
                    if tokio::time::Instant::now() < give_up =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 << attempt.min(4))).await;
                }
                Err(e) => return Err(ApiError::from(e)),
                Ok((completed, settlement)) => {
                    return Ok(Charged {
                        completed,
                        settlement,
                        usage,
                    });
                }
            }
        }
    }
}

/// The usage of an image generation: what the upstream reported (its output tokens are all
/// image tokens, in the Images API) together with the request's units (how many images,
/// their size and quality), so that a model priced per image is charged per image even
/// when the upstream reports token counts (zeros, say) beside them; the pricing charges
/// the two measures of the same images once (by image tokens when the model prices them).
/// Without a reported usage, the request's units alone.
fn image_usage(reported: Option<Usage>, units: Option<&Usage>) -> Option<Usage> {
    let Some(mut usage) = reported else {
        return units.cloned();
    };
    let details = usage.completion_tokens_details.get_or_insert_with(Default::default);
    details.image_tokens = usage.completion_tokens;
    if let Some(units) = units {
        usage.output_images = units.output_images;
        usage.image_size.clone_from(&units.image_size);
        usage.image_quality.clone_from(&units.image_quality);
    }
    Some(usage)
}

/// Whether an upstream answer refuses the operator rather than the request: 401 (its key is
/// wrong or expired) and 403 (its account may not do this). Passed on, they would tell
/// the customer that *their* key is wrong, and the upstream's message can quote part of the
/// operator's key.
pub(crate) fn upstream_refused_the_operator(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 401 | 403)
}

/// The answer to an upstream that refused the operator: 502, a fixed message (the
/// upstream's is not passed on).
pub(crate) fn upstream_auth_failed(status: reqwest::StatusCode) -> ApiError {
    ApiError::new(
        502,
        "upstream_auth_failed",
        format!(
            "the upstream refused the service's own credentials ({}); nothing was charged",
            status.as_u16()
        ),
    )
}

/// A charged call: what the gateway answered, how it was settled, and the usage charged
/// (`None` when settled without usage).
#[derive(Debug)]
pub(crate) struct Charged {
    pub(crate) completed: Completed,
    pub(crate) settlement: Settlement,
    pub(crate) usage: Option<Usage>,
}

/// The usage log's record of a charged call.
pub(crate) fn call_record(
    admitted: &Admitted,
    endpoint: Endpoint,
    request_id: &str,
    key: &KeyId,
    charged: &Charged,
    streamed: bool,
) -> CallRecord {
    let usage = charged.usage.clone().unwrap_or_else(|| {
        // Settled without usage: what the request itself determined.
        let mut usage = admitted.units.clone().unwrap_or_default();
        usage.prompt_tokens = admitted.prompt_tokens;
        usage
    });
    CallRecord {
        request_id: request_id.to_owned(),
        account: admitted.account,
        key_id: Some(key.clone()),
        model: admitted.model.clone(),
        endpoint: Some(endpoint),
        service_tier: admitted.service_tier,
        at_ns: admitted.at_ns,
        usage,
        credits: charged.completed.charged,
        usd: Money::usd(charged.completed.usage.usd_spent),
        streamed,
        settlement: charged.settlement,
    }
}

/// The service tier the body asks for (`service_tier`; `auto` and `default` are the
/// standard tier).
fn service_tier(value: &serde_json::Value) -> Result<ServiceTier, ApiError> {
    match value.get("service_tier") {
        None | Some(serde_json::Value::Null) => Ok(ServiceTier::STANDARD),
        Some(serde_json::Value::String(s)) if s == "auto" || s == "default" => Ok(ServiceTier::STANDARD),
        Some(serde_json::Value::String(s)) => ServiceTier::new(s).map_err(|e| ApiError::from(HttpError::Pricing(e))),
        Some(_) => Err(ApiError::from(HttpError::InvalidField {
            field: "service_tier",
            expected: "a string such as \"auto\", \"flex\" or \"priority\"",
        })),
    }
}

/// The key of an `Authorization: Bearer <key>` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim())
        .filter(|k| !k.is_empty())
}

/// Reads a response body of at most `limit` bytes.
pub(crate) async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if out.len() + chunk.len() > limit {
                    return Err(ApiError::new(
                        502,
                        "upstream_too_large",
                        format!("the upstream's answer is larger than {limit} bytes"),
                    ));
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(Bytes::from(out)),
            Err(e) if e.is_timeout() => {
                return Err(ApiError::new(
                    504,
                    "upstream_timeout",
                    "the upstream did not answer in time",
                ));
            }
            Err(_) => return Err(ApiError::new(502, "upstream_error", "the upstream's answer was cut")),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

    use std::sync::Arc;

    use paygo_testkit::store::TempDir;
    use paygo_testkit::upstream::{FakeUpstream, UpstreamOptions};
    use serde_json::json;

    use crate::server::{SellerOptions, ServerBuilder, ServerOptions};
    use crate::usage::{Index, UsageLog};
    use crate::{ProxyOptions, router};

    /// Once the usage log's file has failed closed, a call is refused with 503 before
    /// anything is held and before the upstream is called: it could be charged but not
    /// recorded.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_usage_log_refuses_calls_before_they_are_charged() {
        let upstream = FakeUpstream::start(UpstreamOptions::default()).await.unwrap();
        let dir = TempDir::new("proxy-failed-usage-log");
        std::fs::create_dir_all(&dir.0).unwrap();
        let log_path = dir.0.join("read-only-usage.jsonl");
        std::fs::write(&log_path, b"").unwrap();
        // A handle the writer cannot write through: its first write fails the log.
        let usage = UsageLog::with_file(std::fs::File::open(&log_path).unwrap(), Index::default()).unwrap();
        let mut proxy_options = ProxyOptions::new(upstream.url());
        proxy_options.admin_token = Some("admin".into());
        let options = ServerOptions {
            data_dir: dir.0.join("data"),
            prices: paygo_pricing::PriceBook::from_json(paygo_pricing::DEFAULT_PRICES).unwrap(),
            plan: paygo_ratelimit::Plan::pay_as_you_go(),
            proxy: proxy_options,
            seller: SellerOptions {
                party: paygo_invoice::Party {
                    name: "paygo Ltd".into(),
                    address: vec!["Dublin".into()],
                    country: "IE".parse().unwrap(),
                    vat_id: Some(paygo_vat::VatId::parse("IE6433435F").unwrap()),
                },
                vat: paygo_vat::Seller {
                    country: paygo_vat::Country::Ireland,
                    oss_registered: true,
                },
                series: "INV-2026".into(),
                credit_note_series: "CN-2026".into(),
            },
            usd_rates: [(paygo_credits::Currency::EUR, "0.92".parse().unwrap())].into(),
            hold_timeout_ms: 600_000,
        };
        let proxy = Arc::new(
            ServerBuilder::new(options, paygo_time::SystemClock::new())
                .usage(usage)
                .open()
                .unwrap(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = router(Arc::clone(&proxy));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = reqwest::Client::new();
        let created: serde_json::Value = http
            .post(format!("{base}/admin/v1/accounts"))
            .bearer_auth("admin")
            .json(&json!({"name": "Acme GmbH", "country": "DE", "vat_id": "DE136695976"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let (account, key) = (
            created["account_id"].as_u64().unwrap(),
            created["api_key"].as_str().unwrap().to_owned(),
        );
        http.post(format!("{base}/admin/v1/accounts/{account}/payments"))
            .bearer_auth("admin")
            .json(&json!({"payment_id": "p1", "usd": "1.00", "method": "card"}))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
        let call = || {
            http.post(format!("{base}/v1/chat/completions"))
                .bearer_auth(&key)
                .json(&json!({"model": "gpt-4o", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}))
                .send()
        };
        // The first call is charged; its record fails and fails the log (the call is
        // still answered: it was paid for).
        assert_eq!(call().await.unwrap().status(), 200);
        assert!(proxy.usage().has_failed());
        assert_eq!(proxy.unrecorded_calls(), 1);
        let balance = proxy
            .gateway()
            .balance(paygo_billing::CustomerId(u128::from(account)))
            .await
            .unwrap();
        // The next is refused before the upstream and before any hold.
        let refused = call().await.unwrap();
        assert_eq!(refused.status(), 503);
        assert!(refused.headers().contains_key("x-request-id"));
        let body: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "store_unavailable");
        assert_eq!(upstream.calls(), 1);
        let after = proxy
            .gateway()
            .balance(paygo_billing::CustomerId(u128::from(account)))
            .await
            .unwrap();
        assert_eq!(after.available, balance.available, "nothing held or charged");
        // A monitor sees it.
        let health = http.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 503);
        assert!(health.text().await.unwrap().contains("the usage log"));
    }
}
