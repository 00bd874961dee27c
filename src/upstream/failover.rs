//! Failover execution: tries the plan's models in order until one answers. Streaming attempts
//! peek until the first token before committing, so a failover never leaks bytes to the client.

use crate::clock::millis_since;
use crate::config::ModelConfig;
use crate::error::{ErrorClass, FailureKind, UpstreamError};
use crate::error::{ErrorKind, GatewayError};
use crate::format::request::ChatRequest;
use crate::observe::metrics::Metrics;
use crate::route::RoutePlan;
use crate::upstream::cooldown::{Cooldowns, Gate};
use crate::upstream::provider::{Call, ChunkStream, Provider, Reply};
use axum::http::StatusCode;
use backon::BackoffBuilder;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio::time::timeout_at;

/// One try of one model, as reported in `metadata.attempts` and the log.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    pub model: String,
    pub provider: String,
    /// Why the model was not tried (`cooldown`); absent for real attempts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<&'static str>,
    pub success: bool,
    pub status: Option<u16>,
    pub error_kind: Option<FailureKind>,
    /// What the failure meant for the next step (retry, next model, stop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_class: Option<ErrorClass>,
    /// 0 for a model's first try, n for its n-th same-model retry.
    #[serde(skip_serializing_if = "is_zero")]
    pub retry: u32,
    /// Hedged requests: `won` for the one that served, `cancelled` for the other.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hedge: Option<&'static str>,
    /// A cancelled hedge's estimated cost (its prompt, which the provider read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    pub error: Option<String>,
    pub time_to_first_token_ms: Option<f64>,
    pub duration_ms: f64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The first same-model retry waits about this long (jittered), doubling up to the cap.
const RETRY_BASE: std::time::Duration = std::time::Duration::from_millis(100);
const RETRY_CAP: std::time::Duration = std::time::Duration::from_secs(2);

impl AttemptRecord {
    /// A failed attempt of `model` with nothing else known yet; the other cases override fields.
    fn of(model: &ModelConfig) -> AttemptRecord {
        AttemptRecord {
            model: model.id.clone(),
            provider: model.provider.clone(),
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

    /// A try of `model` that served after `elapsed` ms (its first token, when streaming).
    fn served(model: &ModelConfig, elapsed: f64, retry: u32) -> AttemptRecord {
        AttemptRecord {
            success: true,
            status: Some(200),
            time_to_first_token_ms: Some(elapsed),
            duration_ms: elapsed,
            retry,
            ..AttemptRecord::of(model)
        }
    }

    /// A try of `model` that failed with `e` after `elapsed` ms.
    fn failed(model: &ModelConfig, e: &UpstreamError, elapsed: f64, retry: u32) -> AttemptRecord {
        AttemptRecord {
            status: e.status,
            error_kind: Some(e.kind),
            error_class: Some(e.class()),
            error: Some(e.message.clone()),
            duration_ms: elapsed,
            retry,
            ..AttemptRecord::of(model)
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
pub struct Outcome<T> {
    pub attempts: Vec<AttemptRecord>,
    pub result: Result<(Arc<ModelConfig>, T), GatewayError>,
}

/// The outcome of a chat request.
pub type Execution = Outcome<Served>;

/// Whether a chunk carries the first token: content, a tool call, or a finish reason (or,
/// from an upstream serving the Responses API natively, an output delta or the end).
fn has_token(chunk: &Value) -> bool {
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

/// Tries each model of the plan in order, skipping models in cooldown (unless nothing else is
/// left) and stopping at the request's deadline: a chat completion, streamed or whole.
/// `native` is a Responses API request as sent, for upstreams that serve it themselves.
pub async fn execute(
    providers: &HashMap<String, Arc<dyn Provider>>,
    plan: &RoutePlan,
    req: &ChatRequest,
    native: Option<Arc<Map<String, Value>>>,
    guards: &Guards<'_>,
) -> Execution {
    let body: Arc<Map<String, Value>> = Arc::new(req.body.clone());
    let attempt = |provider: &Arc<dyn Provider>, model: &Arc<ModelConfig>, limits: Limits| {
        let call = Call {
            model: model.clone(),
            body: body.clone(),
            stream: req.stream,
            max_body_bytes: guards.max_upstream_body_bytes,
            native: native.clone(),
        };
        chat_attempt(provider.send(call), plan, guards, req.stream, limits)
    };
    if plan.hedge && req.stream {
        if let Some(out) = hedged(providers, plan, guards, req.prompt_tokens, attempt).await {
            return out;
        }
    }
    run_chain(providers, plan, guards, attempt).await
}

/// Without live first-token times, hedging waits this share of the first-token limit.
const HEDGE_UNMEASURED_SHARE: u32 = 2;

/// TTFT hedging (a router's `hedge = true`, streaming): when the chain's first model has not
/// sent its first token within its live p95 TTFT (without one, half its first-token limit),
/// the next model starts too. The first to send a first token serves; the other is cancelled
/// (its attempt says `hedge: "cancelled"`, with the cost its prompt is estimated to have
/// incurred). When both fail, the rest of the chain goes on as usual. `None` when hedging does
/// not apply: fewer than two models, or the first cooling down.
async fn hedged<F, Fut>(
    providers: &HashMap<String, Arc<dyn Provider>>,
    plan: &RoutePlan,
    guards: &Guards<'_>,
    prompt_tokens: u64,
    attempt: F,
) -> Option<Execution>
where
    F: Fn(&Arc<dyn Provider>, &Arc<ModelConfig>, Limits) -> Fut + Copy,
    Fut: std::future::Future<Output = Result<Served, UpstreamError>>,
{
    let mut usable = plan
        .chain
        .iter()
        .enumerate()
        .filter_map(|(i, m)| providers.get(&m.provider).map(|p| (i, p, m)));
    let ((_, pa, a), (ib, pb, b)) = (usable.next()?, usable.next()?);
    if guards.cooldowns.gate(&a.id) != Gate::Pass {
        return None;
    }
    let request_deadline = guards.deadline.map(|d| tokio::time::Instant::now() + d);
    let first_limit = ttft_limit(plan, guards, true);
    let after = guards
        .live
        .estimate(&a.id)
        .ttft_p95_ms
        .map(|ms| std::time::Duration::from_secs_f64(ms / 1000.0))
        .unwrap_or(first_limit / HEDGE_UNMEASURED_SHARE);
    let (la, mut attempts) = (
        limits_from_now(plan, first_limit, request_deadline),
        Vec::new(),
    );
    let fa = attempt(pa, a, la);
    tokio::pin!(fa);
    let early = tokio::select! {
        r = &mut fa => Some(r),
        _ = tokio::time::sleep(after) => None,
    };
    let record = |model: &Arc<ModelConfig>, limits: &Limits, r: &Result<Served, UpstreamError>| {
        let elapsed = millis_since(limits.started);
        report(guards, model, r);
        match r {
            Ok(_) => AttemptRecord::served(model, elapsed, 0),
            Err(e) => AttemptRecord::failed(model, e, elapsed, 0),
        }
    };
    let mut rest_from = ib;
    match early {
        // Decided before the hedge was due: a plain first attempt.
        Some(r) => {
            attempts.push(record(a, &la, &r));
            if let Ok(served) = r {
                return Some(Outcome {
                    attempts,
                    result: Ok((a.clone(), served)),
                });
            }
        }
        None => {
            guards.metrics.hedges.fetch_add(1, Ordering::Relaxed);
            let lb = limits_from_now(plan, ttft_limit(plan, guards, false), request_deadline);
            let fb = attempt(pb, b, lb);
            tokio::pin!(fb);
            let (mut a_open, mut b_open) = (true, true);
            while a_open || b_open {
                let (model, other, limits, other_limits, r) = tokio::select! {
                    r = &mut fa, if a_open => { a_open = false; (a, b, &la, &lb, r) }
                    r = &mut fb, if b_open => { b_open = false; (b, a, &lb, &la, r) }
                };
                let mut rec = record(model, limits, &r);
                match r {
                    Ok(served) => {
                        rec.hedge = Some("won");
                        let cancelled = AttemptRecord {
                            hedge: Some("cancelled"),
                            error: Some(format!(
                                "cancelled: the hedged request to {} sent its first token first",
                                model.id
                            )),
                            cost_usd: Some(other.cost_usd(prompt_tokens, 0)),
                            duration_ms: millis_since(other_limits.started),
                            ..AttemptRecord::of(other)
                        };
                        if a_open || b_open {
                            attempts.push(cancelled);
                        }
                        attempts.push(rec);
                        return Some(Outcome {
                            attempts,
                            result: Ok((model.clone(), served)),
                        });
                    }
                    Err(_) => attempts.push(rec),
                }
            }
            rest_from = ib + 1;
        }
    }
    // Both failed (or the first failed early): the rest of the chain as usual.
    let rest = RoutePlan {
        chain: plan.chain[rest_from..].to_vec(),
        ..plan.clone()
    };
    let mut out = run_chain(providers, &rest, guards, attempt).await;
    attempts.append(&mut out.attempts);
    out.attempts = attempts;
    Some(out)
}

/// What a model without prefill is asked after the answer so far, to continue it.
pub const CONTINUE: &str = "Continue your previous message exactly where it stops. Do not repeat any of it and do not comment on it.";

/// Continues a stream that broke after `sent` reached the client, on the models of `plan`
/// (the rest of its chain): each gets the request with the answer so far as an assistant
/// message, which a model with `prefill` continues; others get the instruction [`CONTINUE`]
/// after it. A prefill refused with a 4xx is sent once more without it, so a wrong `prefill`
/// setting never reaches the client as a 400.
pub async fn continue_stream(
    providers: &HashMap<String, Arc<dyn Provider>>,
    plan: &RoutePlan,
    req: &ChatRequest,
    sent: &str,
    guards: &Guards<'_>,
) -> Execution {
    let with = |prefill: bool| -> Arc<Map<String, Value>> {
        let mut body = req.body.clone();
        if let Some(Value::Array(m)) = body.get_mut("messages") {
            m.push(json!({"role": "assistant", "content": sent}));
            if !prefill {
                m.push(json!({"role": "user", "content": CONTINUE}));
            }
        }
        Arc::new(body)
    };
    let (prefilled, instructed) = (with(true), with(false));
    run_chain(providers, plan, guards, |provider, model, limits| {
        let call = |body: &Arc<Map<String, Value>>| Call {
            model: model.clone(),
            body: body.clone(),
            stream: true,
            max_body_bytes: guards.max_upstream_body_bytes,
            native: None,
        };
        let first = provider.send(call(if model.prefill {
            &prefilled
        } else {
            &instructed
        }));
        let again = model.prefill.then(|| provider.send(call(&instructed)));
        async move {
            match (chat_attempt(first, plan, guards, true, limits).await, again) {
                (Err(e), Some(again))
                    if e.status
                        .is_some_and(|s| (400..500).contains(&s) && s != 429) =>
                {
                    chat_attempt(again, plan, guards, true, limits).await
                }
                (r, _) => r,
            }
        }
    })
    .await
}

/// One chat attempt within its limits: a stream is peeked until its first token.
async fn chat_attempt(
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
) -> Outcome<T>
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
                skipped: Some("context_window"),
                error: Some(format!(
                    "skipped: its context window ({} tokens) is no larger than the one the prompt exceeded ({w})",
                    model.context_window
                )),
                ..AttemptRecord::of(model)
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
                    skipped: Some("cooldown"),
                    error: Some(format!(
                        "skipped: cooling down after repeated failures ({} ms left)",
                        left.as_millis()
                    )),
                    ..AttemptRecord::of(model)
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
                    attempts.push(AttemptRecord::served(model, elapsed, retry));
                    return Outcome {
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
            attempts.push(AttemptRecord::failed(model, &e, elapsed, retry));
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
    Outcome {
        attempts,
        result: Err(error),
    }
}

/// The first-token limit of an attempt: shorter while a fallback follows it, never past the
/// attempt's total timeout.
fn ttft_limit(plan: &RoutePlan, guards: &Guards, has_fallback: bool) -> std::time::Duration {
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
fn limits_from_now(
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
fn report(guards: &Guards, model: &ModelConfig, result: &Result<impl Sized, UpstreamError>) {
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
fn bounded(
    own: tokio::time::Instant,
    request: Option<tokio::time::Instant>,
) -> (tokio::time::Instant, bool) {
    match request {
        Some(r) if r < own => (r, true),
        _ => (own, false),
    }
}

fn deadline_error(guards: &Guards) -> UpstreamError {
    UpstreamError::new(
        FailureKind::Timeout,
        format!(
            "the request's deadline of {} ms (server.deadline) passed",
            guards.deadline.unwrap_or_default().as_millis()
        ),
    )
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
