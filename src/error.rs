//! One error type for everything a client can be told, and how it renders in the OpenAI and
//! Anthropic wire shapes.

use axum::http::StatusCode;
use serde_json::{json, Value};

/// An error returned to a client. Knows its HTTP status, OpenAI `type` and `code`.
#[derive(Debug, Clone)]
pub struct GatewayError {
    pub status: StatusCode,
    pub kind: ErrorKind,
    pub message: String,
    pub param: Option<String>,
    /// Extra JSON merged into the error object (e.g. the attempt chain on a 502).
    pub details: Option<Value>,
    /// Seconds for the `Retry-After` header (shed requests, upstream rate limits).
    pub retry_after: Option<u64>,
}

/// The broad classes of error, each with a fixed status and OpenAI error `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidJson,
    InvalidRequest,
    ModelNotFound,
    Unauthorized,
    /// The key may not use this model or router.
    Forbidden,
    BodyTooLarge,
    /// The client did not send its request in time.
    RequestTimeout,
    /// Too many requests of this key (or every upstream answered 429).
    RateLimited,
    /// The server is at its in-flight limit.
    Overloaded,
    /// Every attempt failed (or the one attempt failed with a retryable error).
    UpstreamFailed,
    /// Every attempt timed out.
    UpstreamTimeout,
    /// A non-retryable 4xx from the upstream, passed through with its status.
    UpstreamRejected,
    /// Learned routing was asked for but is not available.
    AutoUnavailable,
    NotFound,
    /// The path exists, but not for this method.
    MethodNotAllowed,
    Internal,
}

impl ErrorKind {
    fn status(self) -> StatusCode {
        match self {
            ErrorKind::InvalidJson | ErrorKind::InvalidRequest | ErrorKind::AutoUnavailable => {
                StatusCode::BAD_REQUEST
            }
            ErrorKind::ModelNotFound | ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::UpstreamFailed => StatusCode::BAD_GATEWAY,
            ErrorKind::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::UpstreamRejected => StatusCode::BAD_REQUEST,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// OpenAI's error `type`.
    fn openai_type(self) -> &'static str {
        match self {
            ErrorKind::Unauthorized => "authentication_error",
            ErrorKind::Forbidden => "permission_error",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::Overloaded => "server_error",
            ErrorKind::UpstreamFailed | ErrorKind::UpstreamTimeout => "upstream_error",
            ErrorKind::Internal => "server_error",
            _ => "invalid_request_error",
        }
    }

    /// OpenAI's error `code`.
    fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidJson => "invalid_json",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::ModelNotFound => "model_not_found",
            ErrorKind::Unauthorized => "invalid_api_key",
            ErrorKind::Forbidden => "model_not_allowed",
            ErrorKind::BodyTooLarge => "request_too_large",
            ErrorKind::RequestTimeout => "request_timeout",
            ErrorKind::RateLimited => "rate_limit_exceeded",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::UpstreamFailed => "all_attempts_failed",
            ErrorKind::UpstreamTimeout => "upstream_timeout",
            ErrorKind::UpstreamRejected => "upstream_rejected",
            ErrorKind::AutoUnavailable => "auto_routing_unavailable",
            ErrorKind::NotFound => "not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::Internal => "internal_error",
        }
    }

    /// Anthropic's error `type`.
    fn anthropic_type(self, status: StatusCode) -> &'static str {
        match status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            529 => "overloaded_error",
            _ => match self {
                ErrorKind::UpstreamTimeout => "timeout_error",
                ErrorKind::Overloaded => "overloaded_error",
                _ => "api_error",
            },
        }
    }
}

impl GatewayError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        GatewayError {
            status: kind.status(),
            kind,
            message: message.into(),
            param: None,
            details: None,
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn invalid(message: impl Into<String>, param: &str) -> Self {
        GatewayError::new(ErrorKind::InvalidRequest, message).with_param(param)
    }

    pub fn with_param(mut self, param: &str) -> Self {
        self.param = Some(param.to_string());
        self
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// `{"error": {"message", "type", "param", "code", ...details}}`
    pub fn openai_body(&self) -> Value {
        let mut err = json!({
            "message": self.message,
            "type": self.kind.openai_type(),
            "param": self.param,
            "code": self.kind.code(),
        });
        merge_details(&mut err, &self.details);
        json!({ "error": err })
    }

    /// `{"type": "error", "error": {"type", "message", ...details}}`
    pub fn anthropic_body(&self) -> Value {
        let mut err = json!({
            "type": self.kind.anthropic_type(self.status),
            "message": self.message,
        });
        merge_details(&mut err, &self.details);
        json!({ "type": "error", "error": err })
    }
}

fn merge_details(err: &mut Value, details: &Option<Value>) {
    if let (Some(Value::Object(extra)), Some(obj)) = (details, err.as_object_mut()) {
        for (k, v) in extra {
            obj.insert(k.clone(), v.clone());
        }
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.status,
            self.kind.code(),
            self.message
        )
    }
}

impl std::error::Error for GatewayError {}

pub use switchyard_learn::schema::{ErrorClass, FailureKind};

/// A failed upstream call.
#[derive(Debug, Clone)]
pub struct UpstreamError {
    pub kind: FailureKind,
    pub status: Option<u16>,
    pub message: String,
    /// The upstream's `Retry-After` (or `retry-after-ms`), when it sent one.
    pub retry_after: Option<std::time::Duration>,
    /// The provider's error code or type (`context_length_exceeded`, ...), when it sent one.
    pub code: Option<String>,
}

impl UpstreamError {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        UpstreamError {
            kind,
            status: None,
            message: message.into(),
            retry_after: None,
            code: None,
        }
    }

    pub fn status(status: u16, message: impl Into<String>) -> Self {
        UpstreamError {
            kind: FailureKind::Status,
            status: Some(status),
            message: message.into(),
            retry_after: None,
            code: None,
        }
    }

    pub fn with_retry_after(mut self, after: Option<std::time::Duration>) -> Self {
        self.retry_after = after;
        self
    }

    pub fn with_code(mut self, code: Option<String>) -> Self {
        self.code = code;
        self
    }

    /// Whether the next model of the chain should be tried: everything except 4xx other than 429.
    pub fn retryable(&self) -> bool {
        match self.status {
            Some(s) => s == 429 || s >= 500 || s == 408,
            None => true,
        }
    }

    /// What the failure means for the next step.
    pub fn class(&self) -> ErrorClass {
        let said = |words: &[&str]| {
            let code = self.code.as_deref().unwrap_or("").to_ascii_lowercase();
            let message = self.message.to_ascii_lowercase();
            words
                .iter()
                .any(|w| code.contains(w) || message.contains(w))
        };
        match (self.status, self.kind) {
            (Some(429), _) => ErrorClass::RateLimited,
            (Some(401 | 403), _) => ErrorClass::Auth,
            (Some(408), _) => ErrorClass::Timeout,
            (Some(400 | 413 | 422), _)
                if said(&[
                    "context_length_exceeded",
                    "maximum context length",
                    "context window",
                    "prompt is too long",
                    "too many tokens",
                ]) =>
            {
                ErrorClass::ContextLength
            }
            (Some(400 | 422), _)
                if said(&[
                    "content_filter",
                    "content_policy",
                    "content management policy",
                ]) =>
            {
                ErrorClass::ContentFilter
            }
            (Some(s), _) if s >= 500 => ErrorClass::ServerError,
            (Some(_), _) => ErrorClass::BadRequest,
            (None, FailureKind::Connect) => ErrorClass::Connection,
            (None, FailureKind::Timeout | FailureKind::TtftTimeout) => ErrorClass::Timeout,
            (None, FailureKind::StreamBroken) => ErrorClass::Stream,
            (None, FailureKind::Malformed) => ErrorClass::Malformed,
            (None, FailureKind::Status) => ErrorClass::ServerError,
        }
    }

    /// Whether trying the same model again may help (5xx, 429, resets).
    pub fn same_model_retry(&self) -> bool {
        matches!(
            self.class(),
            ErrorClass::RateLimited
                | ErrorClass::ServerError
                | ErrorClass::Connection
                | ErrorClass::Stream
        )
    }
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "HTTP {s}: {}", self.message),
            None => write!(f, "{:?}: {}", self.kind, self.message),
        }
    }
}
