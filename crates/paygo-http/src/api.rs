//! The router: the metered endpoints, the account endpoints of a key's own account, the
//! operator endpoints, `/v1/models`, `/healthz`, and the fallback (pass-through or 404).

use std::str::FromStr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use chrono::{DateTime, NaiveDate, Utc};
use paygo_billing::{AutoTopUpRule, BillingStore, CardKind, CustomerId, PaymentMethod, Refusal, TopUpId};
use paygo_credits::Money;
use paygo_gateway::{Buyer, GatewayError, Invoiced, PaidFor, PaidTopUp};
use paygo_invoice::SequenceStore;
use paygo_ratelimit::AsyncStore;
use paygo_time::Clock;
use paygo_vat::{CountryCode, LocationEvidence, VatId};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;

use crate::accounts::KeyId;
use crate::error::HttpError;
use crate::proxy::{Proxy, bearer, read_limited};
use crate::respond::ApiError;
use crate::sizing::Endpoint;

/// The router of a proxy: every endpoint of `docs/http.md`. Serve it with
/// `axum::serve`, and call [`Proxy::drain`] after a graceful shutdown.
pub fn router<B, L, C, S>(proxy: Arc<Proxy<B, L, C, S>>) -> Router
where
    B: BillingStore + 'static,
    L: AsyncStore<CustomerId> + 'static,
    C: Clock + 'static,
    S: SequenceStore + Send + Sync + 'static,
{
    let limit = proxy.options.body_limit_bytes;
    macro_rules! metered {
        ($endpoint:expr, $path:literal) => {
            post(
                |State(p): State<Arc<Proxy<B, L, C, S>>>, headers: HeaderMap, body: Result<Bytes, BytesRejection>| async move {
                    p.metered($endpoint, $path, headers, body).await
                },
            )
        };
    }
    let portal = proxy.options.portal.is_some();
    let router = Router::new()
        .route(
            "/v1/chat/completions",
            metered!(Endpoint::ChatCompletions, "/v1/chat/completions"),
        )
        .route("/v1/responses", metered!(Endpoint::Responses, "/v1/responses"))
        .route("/v1/embeddings", metered!(Endpoint::Embeddings, "/v1/embeddings"))
        .route(
            "/v1/images/generations",
            metered!(Endpoint::ImageGenerations, "/v1/images/generations"),
        )
        .route("/v1/audio/speech", metered!(Endpoint::AudioSpeech, "/v1/audio/speech"))
        .route("/v1/models", get(Proxy::<B, L, C, S>::on_models))
        .route("/v1/billing/balance", get(Proxy::<B, L, C, S>::on_balance))
        .route("/v1/billing/usage", get(Proxy::<B, L, C, S>::on_usage))
        .route("/v1/generation/{request_id}", get(Proxy::<B, L, C, S>::on_generation))
        .route("/admin/v1/accounts", post(Proxy::<B, L, C, S>::on_create_account))
        .route("/admin/v1/accounts/{id}", get(Proxy::<B, L, C, S>::on_account))
        .route("/admin/v1/accounts/{id}/keys", post(Proxy::<B, L, C, S>::on_create_key))
        .route("/admin/v1/keys/{key_id}", delete(Proxy::<B, L, C, S>::on_revoke_key))
        .route(
            "/admin/v1/accounts/{id}/portal-link",
            post(Proxy::<B, L, C, S>::on_portal_link),
        )
        .route(
            "/admin/v1/accounts/{id}/payments",
            post(Proxy::<B, L, C, S>::on_payment),
        )
        .route(
            "/admin/v1/accounts/{id}/auto-top-up",
            get(Proxy::<B, L, C, S>::on_get_auto_top_up).put(Proxy::<B, L, C, S>::on_put_auto_top_up),
        )
        .route("/healthz", get(Proxy::<B, L, C, S>::on_health));
    let router = if portal {
        router.merge(crate::portal::routes::<B, L, C, S>())
    } else {
        router
    };
    router
        .fallback(Proxy::<B, L, C, S>::on_fallback)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(proxy)
}

/// A handler's result.
type Answer = Result<Response, ApiError>;

fn json_body<T: for<'de> Deserialize<'de>>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(413, "request_too_large", "the request body is larger than the limit")
        } else {
            ApiError::new(400, "invalid_request", r.body_text())
        }
    })?;
    serde_json::from_slice(&body).map_err(|e| ApiError::from(HttpError::MalformedBody { reason: e.to_string() }))
}

impl<B, L, C, S> Proxy<B, L, C, S>
where
    B: BillingStore + 'static,
    L: AsyncStore<CustomerId> + 'static,
    C: Clock + 'static,
    S: SequenceStore + Send + Sync + 'static,
{
    /// Checks the operator's token (its hash compared in constant time); without an
    /// operator token the operator endpoints do not exist (404).
    fn check_admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(expected) = &self.admin else {
            return Err(ApiError::new(404, "not_found", "no such endpoint"));
        };
        let given = bearer(headers).map(|t| blake3::hash(t.as_bytes()));
        // blake3::Hash's equality is constant-time.
        if given.is_some_and(|g| g == *expected) {
            Ok(())
        } else {
            Err(ApiError::new(
                401,
                "invalid_admin_token",
                "the operator token is not valid",
            ))
        }
    }

    /// An account the operator names, which must exist.
    fn named_account(&self, id: &str) -> Result<CustomerId, ApiError> {
        let id = id
            .parse::<u128>()
            .map(CustomerId)
            .map_err(|_| ApiError::new(400, "invalid_account_id", "an account id is a positive integer"))?;
        self.directory
            .account(id)
            .map(|a| a.id)
            .ok_or_else(|| ApiError::from(HttpError::UnknownAccount { account: id }))
    }
}

/// The query of `GET /v1/billing/usage`.
#[derive(Debug, Deserialize)]
struct UsageQuery {
    from: Option<String>,
    to: Option<String>,
    bucket: Option<String>,
    group_by: Option<String>,
}

/// A time of a query: RFC 3339, a date (its midnight, UTC), or Unix seconds.
fn parse_time(field: &'static str, text: &str) -> Result<u64, ApiError> {
    let invalid = || {
        ApiError::from(HttpError::InvalidField {
            field,
            expected: "an RFC 3339 time, a date (YYYY-MM-DD) or Unix seconds",
        })
    };
    let at: DateTime<Utc> = if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        t.with_timezone(&Utc)
    } else if let Ok(d) = NaiveDate::from_str(text) {
        d.and_hms_opt(0, 0, 0).ok_or_else(invalid)?.and_utc()
    } else if let Ok(s) = text.parse::<i64>() {
        DateTime::from_timestamp(s, 0).ok_or_else(invalid)?
    } else {
        return Err(invalid());
    };
    at.timestamp_nanos_opt()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(invalid)
}

fn rfc3339(ns: u64) -> String {
    DateTime::from_timestamp_nanos(i64::try_from(ns).unwrap_or(i64::MAX))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `POST /admin/v1/accounts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    name: String,
    country: String,
    #[serde(default)]
    vat_id: Option<String>,
    #[serde(default)]
    address: Vec<String>,
}

/// `POST /admin/v1/accounts/{id}/payments`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPayment {
    payment_id: String,
    usd: String,
    method: String,
    /// The country of the card's issuing bank, as the payment provider reports it.
    #[serde(default)]
    card_country: Option<String>,
    /// The country of the customer's IP address at checkout.
    #[serde(default)]
    ip_country: Option<String>,
}

/// An optional country code of a payment's evidence.
fn evidence_country(field: &'static str, code: Option<&str>) -> Result<Option<CountryCode>, ApiError> {
    code.map(|c| {
        CountryCode::from_str(c).map_err(|_| {
            ApiError::from(HttpError::InvalidField {
                field,
                expected: "an ISO 3166 alpha-2 code in capitals, such as \"IE\"",
            })
        })
    })
    .transpose()
}

fn payment_method(name: &str) -> Result<PaymentMethod, ApiError> {
    Ok(match name {
        "card" => PaymentMethod::Card(CardKind::Credit),
        "debit_card" => PaymentMethod::Card(CardKind::Debit),
        "prepaid_card" => PaymentMethod::Card(CardKind::Prepaid),
        "paypal" => PaymentMethod::PayPal,
        "crypto" => PaymentMethod::Crypto,
        "gift_card" => PaymentMethod::GiftCard,
        _ => {
            return Err(ApiError::from(HttpError::InvalidField {
                field: "method",
                expected: "card, debit_card, paypal, crypto, prepaid_card or gift_card",
            }));
        }
    })
}

/// A payment id as a top-up id: the first 127 bits of its BLAKE3 hash (the same id for
/// the same payment, on every replica).
fn top_up_id(payment_id: &str) -> TopUpId {
    let hash = blake3::hash(payment_id.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&hash.as_bytes()[..16]);
    TopUpId((u128::from_be_bytes(first) >> 1).max(1))
}

/// `PUT /admin/v1/accounts/{id}/auto-top-up`: `{"rule": <rule> | null}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    rule: Option<AutoTopUpRule>,
}

/// The handlers: associated functions of the proxy, so that its bounds are written once.
// axum takes handlers as async functions, also those that never wait.
#[allow(clippy::unused_async)]
impl<B, L, C, S> Proxy<B, L, C, S>
where
    B: BillingStore + 'static,
    L: AsyncStore<CustomerId> + 'static,
    C: Clock + 'static,
    S: SequenceStore + Send + Sync + 'static,
{
    async fn on_models(State(p): State<Arc<Self>>) -> Response {
        let data: Vec<serde_json::Value> = p
            .gateway
            .prices()
            .models()
            .iter()
            .map(|m| json!({"id": m.id, "object": "model", "owned_by": m.provider, "mode": m.mode}))
            .collect();
        axum::Json(json!({"object": "list", "data": data})).into_response()
    }

    async fn on_balance(State(p): State<Arc<Self>>, headers: HeaderMap) -> Answer {
        let account = p.authenticate(&headers).await?;
        let balance = p.gateway.balance(account).await?;
        let rate = p.gateway.prices().credit_rate();
        let usd = |c| {
            rate.to_money_exact(c)
                .map(|m| m.amount().normalize().to_string())
                .map_err(|e| ApiError::from(HttpError::Credits(e)))
        };
        Ok(axum::Json(json!({
            "credits": balance.available.get(),
            "usd": usd(balance.available)?,
            "paid_credits": balance.paid.get(),
            "bonus_credits": balance.bonus.get(),
            "arrears_credits": balance.arrears.get(),
        }))
        .into_response())
    }

    async fn on_usage(
        State(p): State<Arc<Self>>,
        headers: HeaderMap,
        query: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
    ) -> Answer {
        const HOUR_NS: u64 = 3_600_000_000_000;
        let account = p.authenticate(&headers).await?;
        let Query(query) = query.map_err(|e| ApiError::new(400, "invalid_request", e.body_text()))?;
        let (bucket_name, bucket_ns) = match query.bucket.as_deref() {
            None | Some("1d") => ("1d", 24 * HOUR_NS),
            Some("1h") => ("1h", HOUR_NS),
            Some(_) => {
                return Err(ApiError::from(HttpError::InvalidField {
                    field: "bucket",
                    expected: "1h or 1d",
                }));
            }
        };
        let by_model = match query.group_by.as_deref() {
            None | Some("") => false,
            Some("model") => true,
            Some(_) => {
                return Err(ApiError::from(HttpError::InvalidField {
                    field: "group_by",
                    expected: "model, or nothing",
                }));
            }
        };
        let to_ns = match &query.to {
            Some(t) => parse_time("to", t)?,
            None => p.gateway.clock().now_ns().saturating_add(1),
        };
        let from_ns = match &query.from {
            Some(f) => parse_time("from", f)?,
            None => to_ns.saturating_sub(30 * 24 * HOUR_NS),
        };
        let buckets = p.usage.usage(account, from_ns, to_ns, bucket_ns, by_model).await?;
        let mut total_credits = paygo_credits::Credits::ZERO;
        let mut total_usd = Decimal::ZERO;
        let mut total_calls = 0u64;
        let data: Vec<serde_json::Value> = buckets
            .iter()
            .map(|b| {
                total_credits = total_credits.checked_add(b.credits).unwrap_or(total_credits);
                total_usd = total_usd.checked_add(b.usd.amount()).unwrap_or(total_usd);
                total_calls = total_calls.saturating_add(b.calls);
                let mut v = json!({
                    "start": rfc3339(b.start_ns), "calls": b.calls, "prompt_tokens": b.prompt_tokens,
                    "completion_tokens": b.completion_tokens, "credits": b.credits.get(), "usd": b.usd.amount().normalize().to_string(),
                });
                if let Some(model) = &b.model {
                    v["model"] = json!(model);
                }
                v
            })
            .collect();
        Ok(axum::Json(json!({
            "object": "list", "from": rfc3339(from_ns), "to": rfc3339(to_ns), "bucket": bucket_name,
            "data": data,
            "total": {"calls": total_calls, "credits": total_credits.get(), "usd": total_usd.normalize().to_string()},
        }))
        .into_response())
    }

    async fn on_generation(State(p): State<Arc<Self>>, headers: HeaderMap, Path(request_id): Path<String>) -> Answer {
        let account = p.authenticate(&headers).await?;
        // Another account's call is as unknown as a call that never was.
        let record = p
            .usage
            .generation(&request_id)
            .await?
            .filter(|r| r.account == account)
            .ok_or_else(|| {
                ApiError::new(
                    404,
                    "generation_not_found",
                    "no charged call of this account has this id",
                )
            })?;
        Ok(axum::Json(json!({
            "id": record.request_id, "model": record.model, "endpoint": record.endpoint,
            "service_tier": record.service_tier,
            "created": rfc3339(record.at_ns), "usage": record.usage, "credits_used": record.credits.get(),
            "usd_spent": record.usd.amount().normalize().to_string(), "streamed": record.streamed, "settlement": record.settlement,
        }))
        .into_response())
    }

    async fn on_create_account(
        State(p): State<Arc<Self>>,
        headers: HeaderMap,
        body: Result<Bytes, BytesRejection>,
    ) -> Answer {
        p.check_admin(&headers)?;
        let new: NewAccount = json_body(body)?;
        CountryCode::from_str(&new.country).map_err(|_| {
            ApiError::from(HttpError::InvalidField {
                field: "country",
                expected: "an ISO 3166 alpha-2 code in capitals, such as \"IE\"",
            })
        })?;
        if let Some(vat_id) = &new.vat_id {
            VatId::parse(vat_id).map_err(|e| ApiError::new(400, "invalid_vat_id", e.to_string()))?;
        }
        let (account, key) = p
            .directory
            .create_account(&new.name, &new.country, new.vat_id.as_deref(), &new.address)
            .await?;
        match p.gateway.open_account(account.id).await {
            Ok(_) | Err(GatewayError::Refused(Refusal::AccountExists)) => {}
            Err(e) => return Err(e.into()),
        }
        Ok((
            StatusCode::CREATED,
            axum::Json(json!({"account_id": account.id.0, "api_key": key.secret, "key_id": key.id})),
        )
            .into_response())
    }

    async fn on_account(State(p): State<Arc<Self>>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
        p.check_admin(&headers)?;
        let id = p.named_account(&id)?;
        let account = p
            .directory
            .account(id)
            .ok_or_else(|| ApiError::from(HttpError::UnknownAccount { account: id }))?;
        let balance = p.gateway.balance(id).await?;
        Ok(axum::Json(json!({
            "account_id": id.0, "name": account.name, "country": account.country, "vat_id": account.vat_id,
            "credits": balance.available.get(), "uncollected_credits": balance.uncollected.get(),
            "arrears_credits": balance.arrears.get(),
        }))
        .into_response())
    }

    async fn on_create_key(State(p): State<Arc<Self>>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
        p.check_admin(&headers)?;
        let id = p.named_account(&id)?;
        let key = p.directory.create_key(id).await?;
        Ok((
            StatusCode::CREATED,
            axum::Json(json!({"account_id": id.0, "api_key": key.secret, "key_id": key.id})),
        )
            .into_response())
    }

    async fn on_portal_link(State(p): State<Arc<Self>>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
        p.check_admin(&headers)?;
        let id = p.named_account(&id)?;
        if p.options.portal.is_none() {
            return Err(ApiError::new(404, "not_found", "the billing portal is off"));
        }
        let (path, expires_ns) = p.portal_link(id)?;
        Ok((
            StatusCode::CREATED,
            axum::Json(json!({"account_id": id.0, "url": path, "expires_at_ns": expires_ns})),
        )
            .into_response())
    }

    async fn on_revoke_key(State(p): State<Arc<Self>>, headers: HeaderMap, Path(key_id): Path<String>) -> Answer {
        p.check_admin(&headers)?;
        p.directory.revoke_key(&KeyId(key_id)).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    }

    async fn on_payment(
        State(p): State<Arc<Self>>,
        headers: HeaderMap,
        Path(id): Path<String>,
        body: Result<Bytes, BytesRejection>,
    ) -> Answer {
        p.check_admin(&headers)?;
        let id = p.named_account(&id)?;
        let new: NewPayment = json_body(body)?;
        if new.payment_id.is_empty() || new.payment_id.len() > 100 {
            return Err(HttpError::InvalidField {
                field: "payment_id",
                expected: "the provider's payment id, 1 to 100 bytes",
            }
            .into());
        }
        let amount: Decimal = new.usd.parse().map_err(|_| {
            ApiError::from(HttpError::InvalidField {
                field: "usd",
                expected: "a decimal string such as \"10.00\"",
            })
        })?;
        if amount <= Decimal::ZERO || amount.normalize().scale() > 2 {
            return Err(HttpError::InvalidField {
                field: "usd",
                expected: "a positive amount in whole cents",
            }
            .into());
        }
        let method = payment_method(&new.method)?;
        if let Some(refusal) = method.refusal() {
            return Err(ApiError::new(
                402,
                "payment_method_refused",
                format!("payment method refused: {refusal}"),
            ));
        }
        let account = p
            .directory
            .account(id)
            .ok_or_else(|| ApiError::from(HttpError::UnknownAccount { account: id }))?;
        let country = CountryCode::from_str(&account.country)
            .map_err(|_| ApiError::new(500, "internal_error", "the account's country is not a country code"))?;
        let vat_id = account
            .vat_id
            .as_deref()
            .map(VatId::parse)
            .transpose()
            .map_err(|e| ApiError::new(500, "internal_error", e.to_string()))?;
        let paid_on =
            DateTime::from_timestamp_nanos(i64::try_from(p.gateway.clock().now_ns()).unwrap_or(i64::MAX)).date_naive();
        let paid = PaidTopUp {
            paid_for: PaidFor::TopUp {
                id: top_up_id(&new.payment_id),
            },
            customer: id,
            amount: Money::usd(amount),
            method,
            reference: new.payment_id.clone(),
            paid_on,
            buyer: Buyer {
                name: account.name.clone(),
                // An invoice shows at least one address line: the country's code when the
                // operator gave no address (docs/http.md).
                address: if account.address.is_empty() {
                    vec![account.country.clone()]
                } else {
                    account.address.clone()
                },
                evidence: LocationEvidence {
                    billing_country: Some(country),
                    ip_country: evidence_country("ip_country", new.ip_country.as_deref())?,
                    card_country: evidence_country("card_country", new.card_country.as_deref())?,
                },
                vat_id,
            },
            purchase_order: account.purchase_order.clone(),
        };
        // An account whose creation was cut between the directory and the billing store
        // (the store was down) is opened now: a payment never fails for that.
        match p.gateway.open_account(id).await {
            Ok(_) | Err(GatewayError::Refused(Refusal::AccountExists)) => {}
            Err(e) => return Err(e.into()),
        }
        let invoiced = match p.record_payment(paid).await? {
            Ok(invoiced) => invoiced,
            Err(GatewayError::Vat(e)) => {
                return Err(ApiError::new(
                    400,
                    "vat_undetermined",
                    format!(
                        "{e}: nothing was credited; a consumer's country needs two agreeing pieces of evidence: the account's country and the payment's `card_country` or `ip_country`"
                    ),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let balance = p.gateway.balance(id).await?;
        Ok(axum::Json(json!({
            "payment_id": new.payment_id, "account_id": id.0, "credits_added": invoiced.credits.get(),
            "invoice_number": invoiced.invoice.number().to_string(), "balance_credits": balance.available.get(),
        }))
        .into_response())
    }

    async fn on_get_auto_top_up(State(p): State<Arc<Self>>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
        p.check_admin(&headers)?;
        let id = p.named_account(&id)?;
        let rule = p.directory.account(id).and_then(|a| a.auto_top_up);
        Ok(axum::Json(json!({"account_id": id.0, "rule": rule})).into_response())
    }

    async fn on_put_auto_top_up(
        State(p): State<Arc<Self>>,
        headers: HeaderMap,
        Path(id): Path<String>,
        body: Result<Bytes, BytesRejection>,
    ) -> Answer {
        p.check_admin(&headers)?;
        let id = p.named_account(&id)?;
        let body: RuleBody = json_body(body)?;
        p.gateway.set_auto_top_up(id, body.rule).await?;
        p.directory.set_auto_top_up(id, body.rule).await?;
        Ok(axum::Json(json!({"account_id": id.0, "rule": body.rule})).into_response())
    }

    /// Records a payment's credits and its invoice in a task of its own: both are recorded
    /// even if the payment service hangs up meanwhile (a dropped handler would leave the
    /// credits without their invoice until the payment was reported again).
    async fn record_payment(self: &Arc<Self>, paid: PaidTopUp) -> Result<Result<Invoiced, GatewayError>, ApiError> {
        let p = Arc::clone(self);
        tokio::spawn(async move { p.topups.record(p.gateway.billing(), &paid).await })
            .await
            .map_err(|_| ApiError::new(500, "internal_error", "the payment failed inside the proxy"))
    }

    /// `ok`, or 503 naming the store that has failed closed (the usage log's or the
    /// account directory's file: calls, or changes, are refused until a restart), so that a
    /// load balancer or a monitor takes the replica out.
    async fn on_health(State(p): State<Arc<Self>>) -> Response {
        let mut failed = Vec::new();
        if p.usage.has_failed() {
            failed.push("the usage log");
        }
        if p.directory.has_failed() {
            failed.push("the account directory");
        }
        if failed.is_empty() {
            "ok".into_response()
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "failed closed: {} (an earlier write failed); restart the server",
                    failed.join(", ")
                ),
            )
                .into_response()
        }
    }

    /// Any other path: forwarded unmetered when it is under a configured pass-through prefix
    /// (the key checked first), else 404.
    async fn on_fallback(
        State(p): State<Arc<Self>>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Result<Bytes, BytesRejection>,
    ) -> Answer {
        let path = uri.path();
        if !passes_through(path, &p.options.pass_through) {
            return Err(ApiError::new(
                404,
                "not_found",
                format!("no such endpoint: {method} {path}"),
            ));
        }
        p.authenticate(&headers).await?;
        let body =
            body.map_err(|_| ApiError::new(413, "request_too_large", "the request body is larger than the limit"))?;
        let target = format!("{}{}", p.upstream, uri.path_and_query().map_or(path, |pq| pq.as_str()));
        let mut request = p.client.request(method, target).body(body);
        if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
            request = request.header(header::CONTENT_TYPE, content_type.clone());
        }
        if let Some(auth) = &p.upstream_auth {
            request = request.header(header::AUTHORIZATION, auth.clone());
        }
        let timeout = std::time::Duration::from_millis(p.options.upstream_timeout_ms);
        let response = request
            .timeout(timeout)
            .send()
            .await
            .map_err(|_| ApiError::new(502, "upstream_unreachable", "the upstream could not be reached"))?;
        if crate::proxy::upstream_refused_the_operator(response.status()) {
            return Err(crate::proxy::upstream_auth_failed(response.status()));
        }
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let bytes = read_limited(response, p.options.response_limit_bytes).await?;
        let mut out = (status, bytes).into_response();
        if let Some(ct) = content_type {
            out.headers_mut().insert(header::CONTENT_TYPE, ct);
        }
        Ok(out)
    }
}

/// Whether `path` is forwarded unmetered: under one of `prefixes` at a segment boundary
/// (`/v1/files` covers `/v1/files` and `/v1/files/...`, not `/v1/filesystem`), with no
/// segment that the upstream's URL would resolve away. A `.` or `..` segment, written out
/// or percent-encoded (`%2e%2e`), is removed when the upstream URL is parsed, so
/// `/v1/files/%2e%2e/chat/completions` would reach the metered endpoint unmetered; an
/// encoded slash or a backslash (a slash to a URL parser, and to some servers) could do the
/// same. Such a path is never forwarded.
fn passes_through(path: &str, prefixes: &[String]) -> bool {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || path.contains('\\') {
        return false;
    }
    let dot_segment = lower.split('/').any(|segment| {
        let segment = segment.replace("%2e", ".");
        segment == "." || segment == ".."
    });
    if dot_segment {
        return false;
    }
    prefixes.iter().any(|prefix| {
        path.strip_prefix(prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/'))
    })
}

#[cfg(test)]
mod tests {
    use super::passes_through;

    #[test]
    fn only_paths_under_a_prefix_and_without_dot_segments_pass_through() {
        let prefixes = vec!["/v1/files".to_owned(), "/v1/batches/".to_owned()];
        for ok in [
            "/v1/files",
            "/v1/files/",
            "/v1/files/file-abc/content",
            "/v1/batches/b1",
            "/v1/files/a.b/..c",
        ] {
            assert!(passes_through(ok, &prefixes), "{ok}");
        }
        for refused in [
            "/v1/filesystem",
            "/v1/batches",
            "/v1/chat/completions",
            "/v1/files/../chat/completions",
            "/v1/files/%2e%2e/chat/completions",
            "/v1/files/%2E%2e/responses",
            "/v1/files/.%2E/responses",
            "/v1/files/%2e./responses",
            "/v1/files/./x",
            "/v1/files/%2e",
            "/v1/files/..",
            "/v1/files/x%2f..%2fchat",
            "/v1/files/x%2F%2E%2E",
            "/v1/files/x%5c..%5cchat",
            "/v1/files/x\\..\\chat",
        ] {
            assert!(!passes_through(refused, &prefixes), "{refused}");
        }
        assert!(!passes_through("/v1/files", &[]));
    }
}
