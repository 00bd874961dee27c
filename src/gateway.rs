//! Failover execution: tries the plan's models in order until one answers. Streaming attempts
//! peek until the first token before committing, so a failover never leaks bytes to the client.

use crate::config::ModelConfig;
use crate::error::{ErrorKind, GatewayError};
use crate::providers::{Call, ChunkStream, FailureKind, Provider, Reply, UpstreamError};
use crate::request::ChatRequest;
use crate::routing::RoutePlan;
use axum::http::StatusCode;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::time::timeout_at;

/// One try of one model, as reported in `metadata.attempts` and the log.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    pub model: String,
    pub provider: String,
    pub success: bool,
    pub status: Option<u16>,
    pub error_kind: Option<FailureKind>,
    pub error: Option<String>,
    pub time_to_first_token_ms: Option<f64>,
    pub duration_ms: f64,
}

/// The answer of the model that served.
pub enum Served {
    Complete(Value),
    /// A committed stream: the chunks read while peeking, then the rest.
    Stream {
        peeked: Vec<Value>,
        rest: ChunkStream,
        /// When the serving attempt started (its duration is finished by the relay).
        attempt_started: Instant,
        /// The attempt's total deadline, which still applies to the rest of the stream.
        deadline: tokio::time::Instant,
    },
}

/// The outcome of executing a plan.
pub struct Execution {
    pub attempts: Vec<AttemptRecord>,
    pub result: Result<(Arc<ModelConfig>, Served), GatewayError>,
}

impl Execution {
    /// Milliseconds spent waiting on upstreams.
    pub fn upstream_ms(&self) -> f64 {
        self.attempts.iter().map(|a| a.duration_ms).sum()
    }
}

fn ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// Whether a chunk carries the first token: content, a tool call, or a finish reason.
fn has_token(chunk: &Value) -> bool {
    chunk["choices"].as_array().is_some_and(|cs| {
        cs.iter().any(|c| {
            let d = &c["delta"];
            d["content"].as_str().is_some_and(|s| !s.is_empty())
                || d["tool_calls"].is_array()
                || d["refusal"].as_str().is_some_and(|s| !s.is_empty())
                || !c["finish_reason"].is_null()
        })
    })
}

/// Tries each model of the plan in order.
pub async fn execute(
    providers: &HashMap<String, Arc<dyn Provider>>,
    plan: &RoutePlan,
    req: &ChatRequest,
) -> Execution {
    let body: Arc<Map<String, Value>> = Arc::new(req.body.clone());
    let mut attempts = Vec::with_capacity(plan.chain.len());
    let mut last_error: Option<UpstreamError> = None;
    for model in &plan.chain {
        let Some(provider) = providers.get(&model.provider) else {
            continue;
        };
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + plan.timeout;
        let call = Call {
            model: model.clone(),
            body: body.clone(),
            stream: req.stream,
        };
        let outcome = if req.stream {
            let ttft_deadline = tokio::time::Instant::now() + plan.ttft_timeout.min(plan.timeout);
            let kind = if plan.ttft_timeout < plan.timeout {
                FailureKind::TtftTimeout
            } else {
                FailureKind::Timeout
            };
            match timeout_at(ttft_deadline, peek(provider.send(call))).await {
                Ok(Ok((peeked, rest))) => Ok(Served::Stream {
                    peeked,
                    rest,
                    attempt_started: started,
                    deadline,
                }),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(UpstreamError::new(
                    kind,
                    format!(
                        "no first token within {} ms",
                        plan.ttft_timeout.min(plan.timeout).as_millis()
                    ),
                )),
            }
        } else {
            match timeout_at(deadline, provider.send(call)).await {
                Ok(Ok(Reply::Complete(v))) => Ok(Served::Complete(v)),
                Ok(Ok(Reply::Stream(_))) => Err(UpstreamError::new(
                    FailureKind::Malformed,
                    "upstream streamed an answer to a non-streaming request",
                )),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(UpstreamError::new(
                    FailureKind::Timeout,
                    format!("no response within {} ms", plan.timeout.as_millis()),
                )),
            }
        };
        let elapsed = ms(started);
        match outcome {
            Ok(served) => {
                attempts.push(AttemptRecord {
                    model: model.id.clone(),
                    provider: model.provider.clone(),
                    success: true,
                    status: Some(200),
                    error_kind: None,
                    error: None,
                    time_to_first_token_ms: Some(elapsed),
                    duration_ms: elapsed,
                });
                return Execution {
                    attempts,
                    result: Ok((model.clone(), served)),
                };
            }
            Err(e) => {
                tracing::warn!(model = %model.id, error = %e, "attempt failed");
                attempts.push(AttemptRecord {
                    model: model.id.clone(),
                    provider: model.provider.clone(),
                    success: false,
                    status: e.status,
                    error_kind: Some(e.kind),
                    error: Some(e.message.clone()),
                    time_to_first_token_ms: None,
                    duration_ms: elapsed,
                });
                let retryable = e.retryable();
                last_error = Some(e);
                if !retryable {
                    break;
                }
            }
        }
    }
    let error = all_failed(&attempts, last_error);
    Execution {
        attempts,
        result: Err(error),
    }
}

/// Reads chunks until the first token; returns them and the rest of the stream.
async fn peek(
    send: futures_util::future::BoxFuture<'static, Result<Reply, UpstreamError>>,
) -> Result<(Vec<Value>, ChunkStream), UpstreamError> {
    let mut stream = match send.await? {
        Reply::Stream(s) => s,
        Reply::Complete(_) => {
            return Err(UpstreamError::new(
                FailureKind::Malformed,
                "upstream answered a streaming request without streaming",
            ))
        }
    };
    let mut peeked = Vec::new();
    loop {
        match stream.next().await {
            Some(Ok(chunk)) => {
                let token = has_token(&chunk);
                peeked.push(chunk);
                if token {
                    return Ok((peeked, stream));
                }
            }
            Some(Err(e)) => return Err(e),
            None => return Ok((peeked, stream)),
        }
    }
}

/// The client error when no attempt succeeded.
fn all_failed(attempts: &[AttemptRecord], last: Option<UpstreamError>) -> GatewayError {
    let chain = json!({ "attempts": attempts });
    let Some(last) = last else {
        return GatewayError::new(
            ErrorKind::UpstreamFailed,
            "no provider is available for any model in the chain",
        )
        .with_details(chain);
    };
    if !last.retryable() {
        let status = last
            .status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::BAD_REQUEST);
        return GatewayError::new(
            ErrorKind::UpstreamRejected,
            format!(
                "{} rejected the request: {}",
                attempts
                    .last()
                    .map(|a| a.model.as_str())
                    .unwrap_or("upstream"),
                last.message
            ),
        )
        .with_status(status)
        .with_details(chain);
    }
    let all_timeouts = attempts.iter().all(|a| {
        matches!(
            a.error_kind,
            Some(FailureKind::Timeout | FailureKind::TtftTimeout)
        )
    });
    let kind = if all_timeouts {
        ErrorKind::UpstreamTimeout
    } else {
        ErrorKind::UpstreamFailed
    };
    let summary: Vec<String> = attempts
        .iter()
        .map(|a| format!("{}: {}", a.model, a.error.as_deref().unwrap_or("failed")))
        .collect();
    GatewayError::new(
        kind,
        format!(
            "all {} attempt(s) failed: {}",
            attempts.len(),
            summary.join("; ")
        ),
    )
    .with_details(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_token_detection() {
        assert!(!has_token(
            &json!({"choices": [{"delta": {"role": "assistant", "content": ""}, "finish_reason": null}]})
        ));
        assert!(has_token(
            &json!({"choices": [{"delta": {"content": "Hi"}, "finish_reason": null}]})
        ));
        assert!(has_token(
            &json!({"choices": [{"delta": {"tool_calls": []}, "finish_reason": null}]})
        ));
        assert!(has_token(
            &json!({"choices": [{"delta": {}, "finish_reason": "stop"}]})
        ));
        assert!(!has_token(&json!({"choices": [], "usage": {}})));
    }
}
