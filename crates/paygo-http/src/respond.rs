//! Answers: errors in OpenAI's shape (`{"error": {"message", "type", "code"}}`), the
//! status of every failure, and the headers every metered response carries.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use paygo_gateway::{GatewayError, Rejection};
use paygo_pricing::{PricingError, UsageSection};

use crate::error::HttpError;

/// An error answer: the status, OpenAI's error `type` and `code`, a message, and headers.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) headers: Vec<(String, String)>,
}

impl ApiError {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub(crate) fn with_headers(mut self, headers: Vec<(String, String)>) -> ApiError {
        self.headers = headers;
        self
    }

    /// OpenAI's error `type` for a status.
    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            403 if self.code == "insufficient_credits" => "insufficient_quota",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            _ => "api_error",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": {"message": self.message, "type": self.kind(), "code": self.code}
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        add_headers(
            response.headers_mut(),
            self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        );
        response
    }
}

/// Adds `headers`, skipping any whose name or value is not a valid header (none of ours).
pub(crate) fn add_headers<'a>(map: &mut HeaderMap, headers: impl IntoIterator<Item = (&'a str, &'a str)>) {
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()),
            HeaderValue::from_str(value),
        ) {
            map.append(name, value);
        }
    }
}

/// The usage headers of a charged call.
pub(crate) fn usage_headers(section: &UsageSection) -> Vec<(String, String)> {
    section.headers().into_iter().map(|(n, v)| (n.to_owned(), v)).collect()
}

impl From<HttpError> for ApiError {
    fn from(e: HttpError) -> ApiError {
        let message = e.to_string();
        match e {
            HttpError::Pricing(PricingError::UnknownModel { .. }) => ApiError::new(400, "model_not_found", message),
            HttpError::Pricing(_) | HttpError::NotMeterable { .. } => {
                ApiError::new(400, "unpriceable_request", message)
            }
            HttpError::MaxTokensRequired { .. } => ApiError::new(400, "max_tokens_required", message),
            HttpError::UnknownAccount { .. } => ApiError::new(404, "unknown_account", message),
            HttpError::UnknownKey { .. } => ApiError::new(404, "unknown_key", message),
            HttpError::Storage { .. } | HttpError::Random { .. } => ApiError::new(503, "store_unavailable", message),
            HttpError::Credits(_) | HttpError::Config { .. } => ApiError::new(500, "internal_error", message),
            _ => ApiError::new(400, "invalid_request", message),
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> ApiError {
        let status = rejection.status();
        let message = rejection.to_string();
        match rejection {
            Rejection::RateLimited { headers, .. } => ApiError::new(429, status.code, message).with_headers(headers),
            // The contract: an unknown model is a bad request (400), before any
            // upstream call.
            Rejection::Pricing(PricingError::UnknownModel { .. }) => ApiError::new(400, status.code, message),
            _ => ApiError::new(status.http, status.code, message),
        }
    }
}

impl From<GatewayError> for ApiError {
    fn from(e: GatewayError) -> ApiError {
        let status = e.status();
        ApiError::new(status.http, status.code, e.to_string())
    }
}
