//! One try of one model: what `metadata.attempts` and the request log report of it.

use serde::{Deserialize, Serialize};

/// How an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Could not connect or the request could not be sent.
    Connect,
    /// The upstream answered with an error status.
    Status,
    /// The attempt exceeded its total timeout.
    Timeout,
    /// Streaming: no first token within the TTFT timeout.
    TtftTimeout,
    /// The upstream's body was not what its protocol promises.
    Malformed,
    /// The stream ended early or the connection dropped.
    StreamBroken,
}

/// What a failure means for the next step: retry the same model, move on, or stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// 429: retried after its `Retry-After` when that fits, else the next model.
    RateLimited,
    /// 5xx: retried once more on the same model (backoff), then the next model.
    ServerError,
    /// No connection, or reset before an answer: retried like a 5xx.
    Connection,
    /// A time limit passed: the next model.
    Timeout,
    /// The stream broke before its first token: retried like a 5xx.
    Stream,
    /// The body broke the protocol: the next model.
    Malformed,
    /// The prompt is longer than the model's context window: a model with a larger one.
    ContextLength,
    /// The provider's content filter refused: not retried; the reason goes to the client.
    ContentFilter,
    /// The provider refused the credentials: not retried.
    Auth,
    /// Any other 4xx: not retried.
    BadRequest,
}

/// Why a model of the chain was not tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Skipped {
    /// The model is cooling down after failures.
    Cooldown,
    /// The prompt does not fit the model's context window.
    ContextWindow,
}

impl FailureKind {
    /// The kind as the log spells it.
    pub fn as_str(&self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::Status => "status",
            FailureKind::Timeout => "timeout",
            FailureKind::TtftTimeout => "ttft_timeout",
            FailureKind::Malformed => "malformed",
            FailureKind::StreamBroken => "stream_broken",
        }
    }
}

impl Skipped {
    /// The reason as the log spells it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Skipped::Cooldown => "cooldown",
            Skipped::ContextWindow => "context_window",
        }
    }
}

/// A hedged request's two attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Hedge {
    /// The attempt that served.
    Won,
    /// The attempt cancelled when the other one answered first.
    Cancelled,
}

/// One try of one model, as reported in `metadata.attempts` and the log. Only `model` is
/// required of a record read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AttemptRecord {
    pub model: String,
    #[serde(default)]
    pub provider: String,
    /// Why the model was not tried; absent for real attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<Skipped>,
    #[serde(default)]
    pub success: bool,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub error_kind: Option<FailureKind>,
    /// What the failure meant for the next step (retry, next model, stop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<ErrorClass>,
    /// 0 for a model's first try, n for its n-th same-model retry.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retry: u32,
    /// Hedged requests: which of the two served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hedge: Option<Hedge>,
    /// A cancelled hedge's estimated cost (its prompt, which the provider read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub time_to_first_token_ms: Option<f64>,
    #[serde(default)]
    pub duration_ms: f64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl AttemptRecord {
    /// A failed attempt of `model` with nothing else known yet; the other cases override fields.
    pub fn new(model: &str, provider: &str) -> AttemptRecord {
        AttemptRecord {
            model: model.to_string(),
            provider: provider.to_string(),
            skipped: None,
            success: false,
            status: None,
            error_kind: None,
            error_class: None,
            retry: 0,
            hedge: None,
            cost_usd: None,
            error: None,
            time_to_first_token_ms: None,
            duration_ms: 0.0,
        }
    }

    /// The record without the upstream's own words (which may quote the prompt): an error
    /// text is kept only when Switchyard wrote it (timeouts).
    pub fn without_upstream_text(&self) -> AttemptRecord {
        let ours = self.skipped.is_some()
            || matches!(
                self.error_kind,
                Some(FailureKind::Timeout | FailureKind::TtftTimeout)
            );
        AttemptRecord {
            error: self.error.as_ref().map(|e| {
                if ours {
                    e.clone()
                } else {
                    "upstream text withheld".into()
                }
            }),
            ..self.clone()
        }
    }
}
