//! Builds what the client receives: whole responses, relayed streams, and errors, in the
//! client's wire format, each carrying Switchyard's metadata; and the request's log record and
//! metrics once it is over.

use crate::anthropic;
use crate::config::ModelConfig;
use crate::error::{ErrorKind, GatewayError};
use crate::gateway::AttemptRecord;
use crate::metrics::RequestSample;
use crate::providers::{ChunkStream, FailureKind};
use crate::request::{estimate_tokens, ChatRequest};
use crate::routing::RoutePlan;
use crate::server::AppState;
use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// The wire format the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFormat {
    /// `/v1/chat/completions`
    OpenAi,
    /// `/v1/messages`
    Anthropic,
}

impl ClientFormat {
    pub fn endpoint(self) -> &'static str {
        match self {
            ClientFormat::OpenAi => "/v1/chat/completions",
            ClientFormat::Anthropic => "/v1/messages",
        }
    }
}

/// One request on its way through the gateway.
pub struct RequestContext {
    pub request_id: String,
    pub format: ClientFormat,
    pub started: Instant,
    pub started_unix_ms: u64,
    pub req: ChatRequest,
    pub plan: RoutePlan,
    /// The admission ticket, held until the response is complete (streams included).
    pub _ticket: crate::admission::Ticket,
}

/// How a request ended, for metadata, metrics and the log.
struct Outcome<'a> {
    status: u16,
    model: Option<&'a ModelConfig>,
    attempts: &'a [AttemptRecord],
    prompt_tokens: u64,
    completion_tokens: u64,
    /// The answer as kept for the log (while streaming, only its head).
    completion_text: Option<&'a str>,
    /// The whole answer's size in bytes.
    completion_bytes: usize,
    error: Option<&'a str>,
    stream_interrupted: bool,
}

/// One line of the request log.
#[derive(Serialize)]
struct LogRecord<'a> {
    ts: String,
    ts_ms: u64,
    request_id: &'a str,
    endpoint: &'a str,
    status: u16,
    user: Option<&'a str>,
    metadata: Option<&'a Map<String, Value>>,
    requested_model: Option<&'a str>,
    router: Option<&'a str>,
    route: Option<&'a str>,
    variant: Option<&'a str>,
    reason: Option<&'a str>,
    model: Option<&'a str>,
    provider: Option<&'a str>,
    stream: bool,
    attempts: &'a [AttemptRecord],
    ttft_ms: Option<f64>,
    duration_ms: f64,
    overhead_ms: f64,
    prompt_tokens: u64,
    completion_tokens: u64,
    cost_usd: f64,
    error: Option<&'a str>,
    stream_interrupted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion: Option<&'a str>,
}

/// The log's `error` for a failed request when `logging.log_text = false`.
const WITHHELD_ERROR: &str =
    "upstream text withheld (logging.log_text = false); see each attempt's status and error_kind";

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

/// Milliseconds spent inside Switchyard so far: elapsed time minus time spent on upstreams.
fn overhead_ms(ctx: &RequestContext, attempts: &[AttemptRecord]) -> f64 {
    let upstream: f64 = attempts.iter().map(|a| a.duration_ms).sum();
    ((ms(ctx.started.elapsed()) - upstream).max(0.0) * 1000.0).round() / 1000.0
}

/// Records metrics and the log line; returns the response metadata.
fn finish(state: &AppState, ctx: &RequestContext, o: Outcome) -> Value {
    let duration = ms(ctx.started.elapsed());
    let overhead = overhead_ms(ctx, o.attempts);
    let cost = o
        .model
        .map(|m| m.cost_usd(o.prompt_tokens, o.completion_tokens))
        .unwrap_or(0.0);
    // The serving attempt is the last one; a stream that broke after its first token still
    // served (its attempt is marked failed, see `relay`).
    let ttft = o
        .model
        .and(o.attempts.split_last())
        .and_then(|(serving, before)| {
            serving.time_to_first_token_ms.map(|t| {
                // TTFT as the client sees it: everything before the serving attempt's first token.
                before.iter().map(|a| a.duration_ms).sum::<f64>() + t
            })
        });
    state.metrics.record(&RequestSample {
        endpoint: ctx.format.endpoint(),
        status: o.status,
        attempts: o
            .attempts
            .iter()
            .filter(|a| a.skipped.is_none())
            .map(|a| (a.model.as_str(), a.success))
            .collect(),
        served_model: o.model.map(|m| m.id.as_str()),
        duration_secs: duration / 1000.0,
        ttft_secs: ttft.map(|t| t / 1000.0),
        overhead_secs: overhead / 1000.0,
        prompt_tokens: o.prompt_tokens,
        completion_tokens: o.completion_tokens,
        cost_usd: cost,
        stream_interrupted: o.stream_interrupted,
    });
    if let Some(m) = o.model {
        let mut models = vec![m.id.clone()];
        models.extend(
            o.attempts
                .iter()
                .filter(|a| a.model != m.id)
                .map(|a| a.model.clone()),
        );
        state.feedback.remember(&ctx.request_id, models);
    }
    let d = &ctx.plan.decision;
    let log_text = state.config.logging.log_text;
    let messages = ctx.req.body.get("messages");
    // Without text logging, an upstream's own words (which may quote the prompt) stay out of
    // the log too: each attempt keeps its kind and status.
    let withheld: Vec<AttemptRecord>;
    let (logged_attempts, logged_error) = if log_text {
        (o.attempts, o.error)
    } else {
        withheld = o
            .attempts
            .iter()
            .map(AttemptRecord::without_upstream_text)
            .collect();
        let error = o.error.map(|_| WITHHELD_ERROR);
        (&withheld[..], error)
    };
    let completion = o
        .completion_text
        .filter(|_| log_text)
        .map(|t| crate::logstore::clip(t, o.completion_bytes, state.config.logging.max_text_bytes));
    state.logs.log(&LogRecord {
        ts: crate::util::rfc3339_millis(ctx.started_unix_ms),
        ts_ms: ctx.started_unix_ms,
        request_id: &ctx.request_id,
        endpoint: ctx.format.endpoint(),
        status: o.status,
        user: ctx.req.user.as_deref(),
        metadata: Some(&ctx.req.metadata),
        requested_model: ctx.req.model.as_deref(),
        router: d.router.as_deref(),
        route: d.route.as_deref(),
        variant: d.variant.as_deref(),
        reason: Some(&d.reason),
        model: o.model.map(|m| m.id.as_str()),
        provider: o.model.map(|m| m.provider.as_str()),
        stream: ctx.req.stream,
        attempts: logged_attempts,
        ttft_ms: ttft,
        duration_ms: duration,
        overhead_ms: overhead,
        prompt_tokens: o.prompt_tokens,
        completion_tokens: o.completion_tokens,
        cost_usd: cost,
        error: logged_error,
        stream_interrupted: o.stream_interrupted,
        prompt: messages.filter(|_| log_text),
        completion: completion.as_deref(),
    });
    json!({
        "request_id": ctx.request_id,
        "model": o.model.map(|m| m.id.as_str()),
        "provider": o.model.map(|m| m.provider.as_str()),
        "routing": d,
        "attempts": o.attempts,
        "time_to_first_token_ms": ttft,
        "total_duration_ms": duration,
        "overhead_ms": overhead,
        "cost_usd": cost,
        "usage": {"prompt_tokens": o.prompt_tokens, "completion_tokens": o.completion_tokens},
    })
}

/// Logs a request that failed before any upstream was tried (bad JSON, unknown model, ...).
pub fn log_rejected(
    state: &AppState,
    request_id: &str,
    format: ClientFormat,
    started: Instant,
    err: &GatewayError,
) {
    let now = crate::util::unix_millis();
    state.metrics.record(&RequestSample {
        endpoint: format.endpoint(),
        status: err.status.as_u16(),
        attempts: vec![],
        served_model: None,
        duration_secs: started.elapsed().as_secs_f64(),
        ttft_secs: None,
        overhead_secs: started.elapsed().as_secs_f64(),
        prompt_tokens: 0,
        completion_tokens: 0,
        cost_usd: 0.0,
        stream_interrupted: false,
    });
    state.logs.log(&json!({
        "ts": crate::util::rfc3339_millis(now), "ts_ms": now, "request_id": request_id,
        "endpoint": format.endpoint(), "status": err.status.as_u16(), "error": err.message,
        "attempts": [], "duration_ms": ms(started.elapsed()),
    }));
}

/// An error in the client's format, with the request id header.
pub fn error_response(format: ClientFormat, err: &GatewayError, request_id: &str) -> Response {
    let body = match format {
        ClientFormat::OpenAi => err.openai_body(),
        ClientFormat::Anthropic => err.anthropic_body(),
    };
    let mut resp = (err.status, axum::Json(body)).into_response();
    set_header(&mut resp, "x-switchyard-request-id", request_id);
    if let Some(secs) = err.retry_after {
        set_header(&mut resp, "retry-after", &secs.to_string());
    }
    // The body may be unread: the client must not send its next request on this connection.
    if matches!(
        err.kind,
        ErrorKind::BodyTooLarge | ErrorKind::RequestTimeout
    ) {
        set_header(&mut resp, "connection", "close");
    }
    resp
}

/// Logs a failed execution and returns its error response.
pub fn failed_response(
    state: &AppState,
    ctx: &RequestContext,
    attempts: &[AttemptRecord],
    err: &GatewayError,
) -> Response {
    let meta = finish(
        state,
        ctx,
        Outcome {
            status: err.status.as_u16(),
            model: None,
            attempts,
            prompt_tokens: 0,
            completion_tokens: 0,
            completion_text: None,
            completion_bytes: 0,
            error: Some(&err.message),
            stream_interrupted: false,
        },
    );
    let err = err
        .clone()
        .with_details(json!({"attempts": attempts, "metadata": meta}));
    error_response(ctx.format, &err, &ctx.request_id)
}

fn set_header(resp: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

fn usage_of(v: &Value) -> Option<(u64, u64)> {
    let u = v.get("usage")?;
    Some((
        u.get("prompt_tokens")?.as_u64()?,
        u.get("completion_tokens")?.as_u64()?,
    ))
}

/// A whole answer, in the client's format, with `metadata`.
pub fn complete_response(
    state: &AppState,
    ctx: &RequestContext,
    attempts: &[AttemptRecord],
    model: &ModelConfig,
    mut completion: Value,
) -> Response {
    let text = completion["choices"][0]["message"]["content"]
        .as_str()
        .map(String::from);
    let (prompt_tokens, completion_tokens) = usage_of(&completion).unwrap_or_else(|| {
        (
            ctx.req.prompt_tokens,
            text.as_deref().map(estimate_tokens).unwrap_or(0),
        )
    });
    let overhead = overhead_ms(ctx, attempts);
    let meta = finish(
        state,
        ctx,
        Outcome {
            status: 200,
            model: Some(model),
            attempts,
            prompt_tokens,
            completion_tokens,
            completion_text: text.as_deref(),
            completion_bytes: text.as_deref().map_or(0, str::len),
            error: None,
            stream_interrupted: false,
        },
    );
    completion["model"] = Value::String(model.id.clone());
    completion["id"] = Value::String(format!("chatcmpl-{}", ctx.request_id));
    let mut body = match ctx.format {
        ClientFormat::OpenAi => completion,
        ClientFormat::Anthropic => anthropic::response::from_openai(&completion, &model.id),
    };
    body["metadata"] = meta;
    let mut resp = (StatusCode::OK, axum::Json(body)).into_response();
    set_common_headers(&mut resp, ctx, model, overhead);
    resp
}

fn set_common_headers(
    resp: &mut Response,
    ctx: &RequestContext,
    model: &ModelConfig,
    overhead: f64,
) {
    set_header(resp, "x-switchyard-request-id", &ctx.request_id);
    set_header(resp, "x-switchyard-model", &model.id);
    set_header(resp, "x-switchyard-overhead-ms", &format!("{overhead:.3}"));
}

/// Encodes canonical chunks for the client.
enum Encoder {
    OpenAi,
    Anthropic(anthropic::stream::FromOpenAi),
}

impl Encoder {
    fn chunk(&mut self, c: &Value, out: &mut Vec<u8>) {
        match self {
            Encoder::OpenAi => sse_data(out, c),
            Encoder::Anthropic(enc) => {
                for (name, ev) in enc.chunk(c) {
                    sse_event(out, name, &ev);
                }
            }
        }
    }
}

fn sse_data(out: &mut Vec<u8>, v: &Value) {
    out.extend_from_slice(b"data: ");
    let _ = serde_json::to_writer(&mut *out, v);
    out.extend_from_slice(b"\n\n");
}

fn sse_event(out: &mut Vec<u8>, name: &str, v: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\n");
    sse_data(out, v);
}

/// A committed stream of the serving model.
pub struct CommittedStream {
    pub model: Arc<ModelConfig>,
    pub attempts: Vec<AttemptRecord>,
    pub peeked: Vec<Value>,
    pub rest: ChunkStream,
    pub attempt_started: Instant,
    pub deadline: tokio::time::Instant,
}

/// Relays a committed stream to the client. The metadata arrives in the final event; a stream
/// that breaks after bytes were sent ends with an explicit error event, never a quiet `[DONE]`.
pub fn stream_response(state: Arc<AppState>, ctx: RequestContext, s: CommittedStream) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let overhead = overhead_ms(&ctx, &s.attempts);
    let mut resp = Response::new(Body::from_stream(futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx)) },
    )));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    set_common_headers(&mut resp, &ctx, &s.model, overhead);
    tokio::spawn(relay(state, ctx, s, tx));
    resp
}

async fn relay(
    state: Arc<AppState>,
    ctx: RequestContext,
    mut s: CommittedStream,
    tx: mpsc::Sender<Bytes>,
) {
    let model_id = Value::String(s.model.id.clone());
    let chunk_id = Value::String(format!("chatcmpl-{}", ctx.request_id));
    let mut encoder = match ctx.format {
        ClientFormat::OpenAi => Encoder::OpenAi,
        ClientFormat::Anthropic => Encoder::Anthropic(anthropic::stream::FromOpenAi::new(
            &ctx.request_id,
            &s.model.id,
        )),
    };
    // The answer as logged: its head up to `max_text_bytes` kept, its whole size counted.
    let keep = if state.config.logging.log_text {
        state.config.logging.max_text_bytes
    } else {
        0
    };
    let mut text = String::new();
    let (mut text_chars, mut text_bytes) = (0u64, 0usize);
    let mut usage: Option<(u64, u64)> = None;
    let mut broken: Option<(FailureKind, String)> = None;
    let mut client_gone = false;
    let mut buf = Vec::new();
    let mut pending = std::mem::take(&mut s.peeked).into_iter();
    loop {
        let next = match pending.next() {
            Some(c) => Some(Ok(c)),
            // Batch whatever the upstream has ready into one write; flush before waiting.
            None => match s.rest.next().now_or_never() {
                Some(item) => item,
                None => {
                    if !buf.is_empty()
                        && tx
                            .send(Bytes::from(std::mem::take(&mut buf)))
                            .await
                            .is_err()
                    {
                        client_gone = true;
                        break;
                    }
                    match tokio::time::timeout_at(s.deadline, s.rest.next()).await {
                        Ok(item) => item,
                        Err(_) => {
                            broken = Some((
                                FailureKind::Timeout,
                                "the upstream exceeded the total timeout mid-stream".into(),
                            ));
                            break;
                        }
                    }
                }
            },
        };
        let mut chunk = match next {
            None => break,
            Some(Err(e)) => {
                broken = Some((e.kind, e.to_string()));
                break;
            }
            Some(Ok(c)) => c,
        };
        if let Some(u) = usage_of(&chunk) {
            usage = Some(u);
        }
        let has_choices = chunk["choices"].as_array().is_some_and(|c| !c.is_empty());
        if !has_choices {
            continue; // the usage chunk: folded into the final chunk below
        }
        if let Some(obj) = chunk.as_object_mut() {
            obj.remove("usage");
            obj.insert("model".into(), model_id.clone());
            obj.insert("id".into(), chunk_id.clone());
        }
        if let Some(t) = chunk["choices"][0]["delta"]["content"].as_str() {
            text_chars += t.chars().count() as u64;
            text_bytes += t.len();
            for c in t.chars() {
                if text.len() >= keep {
                    break;
                }
                text.push(c);
            }
        }
        encoder.chunk(&chunk, &mut buf);
    }
    if let Some(a) = s.attempts.last_mut() {
        a.duration_ms = ms(s.attempt_started.elapsed());
        if let Some((kind, reason)) = &broken {
            // It served bytes, then failed: a failed attempt (the log says stream_interrupted).
            state.cooldowns.failure(&a.model, None, &state.metrics);
            a.success = false;
            a.error_kind = Some(*kind);
            a.error = Some(reason.clone());
        }
    }
    let (prompt_tokens, completion_tokens) = usage.unwrap_or_else(|| {
        (
            ctx.req.prompt_tokens,
            crate::request::estimate_tokens_of_chars(text_chars),
        )
    });
    let error = match (&broken, client_gone) {
        (Some((_, reason)), _) => Some(format!(
            "stream interrupted after bytes were sent: {reason}"
        )),
        (None, true) => Some("client disconnected before the stream finished".to_string()),
        _ => None,
    };
    let meta = finish(
        &state,
        &ctx,
        Outcome {
            status: 200,
            model: Some(&s.model),
            attempts: &s.attempts,
            prompt_tokens,
            completion_tokens,
            completion_text: Some(&text),
            completion_bytes: text_bytes,
            error: error.as_deref(),
            stream_interrupted: broken.is_some(),
        },
    );
    if client_gone {
        return;
    }
    match (&broken, &mut encoder) {
        (Some(_), Encoder::OpenAi) => sse_data(
            &mut buf,
            &json!({"error": {"message": error, "type": "upstream_error", "param": null,
                              "code": "stream_interrupted", "metadata": meta}}),
        ),
        (Some(_), Encoder::Anthropic(_)) => sse_event(
            &mut buf,
            "error",
            &json!({"type": "error", "error": {"type": "api_error", "message": error, "metadata": meta}}),
        ),
        (None, Encoder::OpenAi) => {
            let mut last = json!({"id": chunk_id, "object": "chat.completion.chunk", "created": crate::util::unix_secs(),
                                  "model": model_id, "choices": [], "metadata": meta});
            if ctx.req.include_usage {
                last["usage"] = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                       "total_tokens": prompt_tokens + completion_tokens});
            }
            sse_data(&mut buf, &last);
            buf.extend_from_slice(b"data: [DONE]\n\n");
        }
        (None, Encoder::Anthropic(enc)) => {
            for (name, ev) in enc.finish(prompt_tokens, completion_tokens, meta) {
                sse_event(&mut buf, name, &ev);
            }
        }
    }
    let _ = tx.send(Bytes::from(buf)).await;
}
