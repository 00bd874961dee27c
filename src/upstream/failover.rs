//! Failover execution: tries the plan's models in order until one answers. Streaming attempts
//! peek until the first token before committing, so a failover never leaks bytes to the client.

use crate::clock::millis_since;
use crate::config::ModelConfig;
use crate::error::{ErrorClass, FailureKind, UpstreamError};
use crate::error::{ErrorKind, GatewayError};
use crate::observe::metrics::Metrics;
use crate::route::RoutePlan;
use crate::upstream::cooldown::{Cooldowns, Gate};
use crate::upstream::provider::{ChunkStream, Provider, Reply};
use axum::http::StatusCode;
use backon::BackoffBuilder;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use switchyard_learn::schema::{AttemptRecord, Skipped};
use tokio::time::timeout_at;

/// The first same-model retry waits about this long (jittered), doubling up to the cap.
const RETRY_BASE: std::time::Duration = std::time::Duration::from_millis(100);
const RETRY_CAP: std::time::Duration = std::time::Duration::from_secs(2);

/// A failed attempt of `model` with nothing else known yet; the other cases override fields.
pub(super) fn attempt_of(model: &ModelConfig) -> AttemptRecord {
    AttemptRecord::new(&model.id, &model.provider)
}

/// A try of `model` that served after `elapsed` ms (its first token, when streaming).
pub(super) fn served_attempt(model: &ModelConfig, elapsed: f64, retry: u32) -> AttemptRecord {
    AttemptRecord {
        success: true,
        status: Some(200),
        time_to_first_token_ms: Some(elapsed),
        duration_ms: elapsed,
        retry,
        ..attempt_of(model)
    }
}

/// A try of `model` that failed with `e` after `elapsed` ms.
pub(super) fn failed_attempt(
    model: &ModelConfig,
    e: &UpstreamError,
    elapsed: f64,
    retry: u32,
) -> AttemptRecord {
    AttemptRecord {
        status: e.status,
        error_kind: Some(e.kind),
        error_class: Some(e.class()),
        error: Some(e.message.clone()),
        duration_ms: elapsed,
        retry,
        ..attempt_of(model)
    }
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

/// The outcome of executing a plan: every attempt, and the model that served with its answer.
pub struct ChainResult<T> {
    pub attempts: Vec<AttemptRecord>,
    pub result: Result<(Arc<ModelConfig>, T), GatewayError>,
}

/// The outcome of a chat request.
pub type Execution = ChainResult<Served>;

/// Whether a chunk carries the first token: content, a tool call, or a finish reason (or,
/// from an upstream serving the Responses API natively, an output delta or the end).
pub(super) fn has_token(chunk: &Value) -> bool {
    if let Some(t) = chunk["type"].as_str() {
        return matches!(
            t,
            "response.output_text.delta"
                | "response.function_call_arguments.delta"
                | "response.refusal.delta"
                | "response.completed"
                | "response.incomplete"
                | "response.failed"
        );
    }
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

/// What bounds a plan's execution besides its per-attempt timeouts.
pub struct Guards<'a> {
    pub cooldowns: &'a Cooldowns,
    pub metrics: &'a Metrics,
    /// Total time for the whole chain (`server.deadline`).
    pub deadline: Option<std::time::Duration>,
    /// The largest whole answer body read from an upstream.
    pub max_upstream_body_bytes: usize,
    /// Retries and the limits that decide when to move on.
    pub failover: &'a crate::config::server::Failover,
    /// Live first-token times (hedging waits a model's p95).
    pub live: &'a crate::live::LiveStats,
}

/// The limits of one attempt: its own timeouts cut short by the request's deadline.
#[derive(Clone, Copy)]
pub struct Limits {
    /// When the attempt started.
    pub started: Instant,
    /// The attempt's total deadline, and whether it is the request's (`server.deadline`).
    pub deadline: tokio::time::Instant,
    pub by_request: bool,
    /// Streaming: the deadline for the first token, and whether it is the request's.
    pub ttft_deadline: tokio::time::Instant,
    pub ttft_by_request: bool,
    /// The first-token limit this attempt got (shorter while a fallback follows).
    pub ttft_limit: std::time::Duration,
}

/// One chat attempt within its limits: a stream is peeked until its first token.
pub(super) async fn chat_attempt(
    send: futures_util::future::BoxFuture<'static, Result<Reply, UpstreamError>>,
    plan: &RoutePlan,
    guards: &Guards<'_>,
    stream: bool,
    limits: Limits,
) -> Result<Served, UpstreamError> {
    if stream {
        let ttft_limit = limits.ttft_limit;
        let kind = if ttft_limit < plan.timeout && !limits.ttft_by_request {
            FailureKind::TtftTimeout
        } else {
            FailureKind::Timeout
        };
        match timeout_at(limits.ttft_deadline, peek(send)).await {
            Ok(Ok((peeked, rest))) => Ok(Served::Stream {
                peeked,
                rest,
                attempt_started: limits.started,
                deadline: limits.deadline,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) if limits.ttft_by_request => Err(deadline_error(guards)),
            Err(_) => Err(UpstreamError::new(
                kind,
                format!("no first token within {} ms", ttft_limit.as_millis()),
            )),
        }
    } else {
        match within(limits, plan, guards, send).await? {
            Reply::Complete(v) => Ok(Served::Complete(v)),
            Reply::Stream(_) => Err(UpstreamError::new(
                FailureKind::Malformed,
                "upstream streamed an answer to a non-streaming request",
            )),
        }
    }
}

/// Awaits a whole (non-streamed) answer within the attempt's total timeout.
pub async fn within<T>(
    limits: Limits,
    plan: &RoutePlan,
    guards: &Guards<'_>,
    send: impl std::future::Future<Output = Result<T, UpstreamError>>,
) -> Result<T, UpstreamError> {
    match timeout_at(limits.deadline, send).await {
        Ok(r) => r,
        Err(_) if limits.by_request => Err(deadline_error(guards)),
        Err(_) => Err(UpstreamError::new(
            FailureKind::Timeout,
            format!("no response within {} ms", plan.timeout.as_millis()),
        )),
    }
}

/// The failover loop: `attempt` sends to one model within its [`Limits`]; each try becomes an
/// [`AttemptRecord`], retryable failures feed the cooldowns, and the first success serves.
pub async fn run_chain<T, F, Fut>(
    providers: &HashMap<String, Arc<dyn Provider>>,
    plan: &RoutePlan,
    guards: &Guards<'_>,
    mut attempt: F,
) -> ChainResult<T>
where
    F: FnMut(&Arc<dyn Provider>, &Arc<ModelConfig>, Limits) -> Fut,
    Fut: std::future::Future<Output = Result<T, UpstreamError>>,
{
    let request_deadline = guards.deadline.map(|d| tokio::time::Instant::now() + d);
    let retries = plan.retries.unwrap_or(guards.failover.retries);
    let mut attempts = Vec::with_capacity(plan.chain.len());
    let mut last_error: Option<UpstreamError> = None;
    let mut retry_afters = Vec::new();
    // After a context-length refusal only models with a larger window are worth a try.
    let mut exceeded_window: Option<u64> = None;
    'chain: for (i, model) in plan.chain.iter().enumerate() {
        let Some(provider) = providers.get(&model.provider) else {
            continue;
        };
        if let Some(w) = exceeded_window.filter(|w| model.context_window <= *w) {
            attempts.push(AttemptRecord {
                skipped: Some(Skipped::ContextWindow),
                error: Some(format!(
                    "skipped: its context window ({} tokens) is no larger than the one the prompt exceeded ({w})",
                    model.context_window
                )),
                ..attempt_of(model)
            });
            continue;
        }
        let last_resort = i + 1 == plan.chain.len()
            && attempts.iter().all(|a: &AttemptRecord| a.skipped.is_some());
        if let Gate::Skip(left) = guards.cooldowns.gate(&model.id) {
            if !last_resort {
                guards
                    .metrics
                    .cooldown_skips
                    .fetch_add(1, Ordering::Relaxed);
                attempts.push(AttemptRecord {
                    skipped: Some(Skipped::Cooldown),
                    error: Some(format!(
                        "skipped: cooling down after repeated failures ({} ms left)",
                        left.as_millis()
                    )),
                    ..attempt_of(model)
                });
                continue;
            }
        }
        // While a fallback follows, a slow first token moves on sooner.
        let has_fallback = plan.chain[i + 1..]
            .iter()
            .any(|m| providers.contains_key(&m.provider));
        let ttft = ttft_limit(plan, guards, has_fallback);
        // Built at the first retry only: most attempts never need it.
        let mut backoff = None;
        let mut retry = 0;
        loop {
            if request_deadline.is_some_and(|d| d <= tokio::time::Instant::now()) {
                break 'chain;
            }
            let limits = limits_from_now(plan, ttft, request_deadline);
            let outcome = attempt(provider, model, limits).await;
            let elapsed = millis_since(limits.started);
            report(guards, model, &outcome);
            let e = match outcome {
                Ok(served) => {
                    attempts.push(served_attempt(model, elapsed, retry));
                    return ChainResult {
                        attempts,
                        result: Ok((model.clone(), served)),
                    };
                }
                Err(e) => e,
            };
            // The upstream's words stay out of stderr (they may quote the prompt); the
            // request log has them when `logging.log_text` allows.
            tracing::warn!(model = %model.id, kind = ?e.kind, status = ?e.status, retry, "attempt failed");
            let class = e.class();
            attempts.push(failed_attempt(model, &e, elapsed, retry));
            let retryable = e.retryable();
            if e.status == Some(429) {
                retry_afters.push(e.retry_after);
            }
            // Same model again: after its Retry-After when it sent one that is short enough,
            // else after a jittered backoff; only when that still fits the request's deadline.
            let wait = if retry < retries && e.same_model_retry() {
                match (class, e.retry_after) {
                    (ErrorClass::RateLimited, Some(ra)) => {
                        (ra <= guards.failover.retry_max_wait).then_some(ra)
                    }
                    _ => backoff
                        .get_or_insert_with(|| {
                            backon::ExponentialBuilder::default()
                                .with_min_delay(RETRY_BASE)
                                .with_max_delay(RETRY_CAP)
                                .with_jitter()
                                .without_max_times()
                                .build()
                        })
                        .next(),
                }
            } else {
                None
            }
            .filter(|w| request_deadline.is_none_or(|d| tokio::time::Instant::now() + *w < d));
            last_error = Some(e);
            match (class, wait) {
                (ErrorClass::ContextLength, _) => {
                    exceeded_window = Some(model.context_window);
                    continue 'chain;
                }
                _ if !retryable => break 'chain,
                (_, Some(w)) => {
                    guards.metrics.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(w).await;
                    retry += 1;
                }
                (_, None) => continue 'chain,
            }
        }
    }
    let error = all_failed(&attempts, last_error, &retry_afters);
    ChainResult {
        attempts,
        result: Err(error),
    }
}

/// The first-token limit of an attempt: shorter while a fallback follows it, never past the
/// attempt's total timeout.
pub(super) fn ttft_limit(
    plan: &RoutePlan,
    guards: &Guards,
    has_fallback: bool,
) -> std::time::Duration {
    let ttft = if has_fallback {
        plan.ttft_timeout
            .min(guards.failover.ttft_timeout_with_fallback)
    } else {
        plan.ttft_timeout
    };
    ttft.min(plan.timeout)
}

/// The limits of an attempt starting now with first-token limit `ttft`, cut short by the
/// request's deadline.
pub(super) fn limits_from_now(
    plan: &RoutePlan,
    ttft: std::time::Duration,
    request_deadline: Option<tokio::time::Instant>,
) -> Limits {
    let now = tokio::time::Instant::now();
    let (deadline, by_request) = bounded(now + plan.timeout, request_deadline);
    let (ttft_deadline, ttft_by_request) = bounded(now + ttft, request_deadline);
    Limits {
        started: Instant::now(),
        deadline,
        by_request,
        ttft_deadline,
        ttft_by_request,
        ttft_limit: ttft,
    }
}

/// Tells the cooldowns how an attempt of `model` ended (only retryable failures count).
pub(super) fn report(
    guards: &Guards,
    model: &ModelConfig,
    result: &Result<impl Sized, UpstreamError>,
) {
    match result {
        Ok(_) => guards.cooldowns.success(&model.id),
        Err(e) if e.retryable() => {
            guards
                .cooldowns
                .failure(&model.id, e.retry_after, guards.metrics)
        }
        Err(_) => {}
    }
}

/// The earlier of an attempt's own deadline and the request's; whether the request's won.
pub(super) fn bounded(
    own: tokio::time::Instant,
    request: Option<tokio::time::Instant>,
) -> (tokio::time::Instant, bool) {
    match request {
        Some(r) if r < own => (r, true),
        _ => (own, false),
    }
}

pub(super) fn deadline_error(guards: &Guards) -> UpstreamError {
    UpstreamError::new(
        FailureKind::Timeout,
        format!(
            "the request's deadline of {} ms (server.deadline) passed",
            guards.deadline.unwrap_or_default().as_millis()
        ),
    )
}

/// Reads chunks until the first token; returns them and the rest of the stream.
pub(super) async fn peek(
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

/// The client error when no attempt succeeded. When every model tried answered 429, the
/// client gets 429 too, with the smallest `Retry-After` the upstreams sent.
fn all_failed(
    attempts: &[AttemptRecord],
    last: Option<UpstreamError>,
    retry_afters: &[Option<std::time::Duration>],
) -> GatewayError {
    let chain = json!({ "attempts": attempts });
    let Some(last) = last else {
        let message = if attempts.is_empty() {
            "no provider is available for any model in the chain"
        } else {
            "the request's deadline (server.deadline) passed before any model could be tried"
        };
        return GatewayError::new(ErrorKind::UpstreamFailed, message).with_details(chain);
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
    let tried: Vec<&AttemptRecord> = attempts.iter().filter(|a| a.skipped.is_none()).collect();
    let summary: Vec<String> = attempts
        .iter()
        .map(|a| format!("{}: {}", a.model, a.error.as_deref().unwrap_or("failed")))
        .collect();
    let summary = format!(
        "all {} attempt(s) failed: {}",
        attempts.len(),
        summary.join("; ")
    );
    if !tried.is_empty() && tried.iter().all(|a| a.status == Some(429)) {
        let mut err = GatewayError::new(
            ErrorKind::RateLimited,
            format!("every model is rate limited; {summary}"),
        )
        .with_details(chain);
        if let Some(after) = retry_afters.iter().flatten().min() {
            err = err.with_retry_after(after.as_secs_f64().ceil() as u64);
        }
        return err;
    }
    let all_timeouts = tried.iter().all(|a| {
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
    GatewayError::new(kind, summary).with_details(chain)
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
