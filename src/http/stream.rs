//! Relays a committed upstream stream to the client as server-sent events in the client's
//! format; the metadata arrives in the final event, and the request is recorded when the
//! stream ends.

use super::admission::Ticket;
use super::rescue::{continue_on, Splice};
use super::respond::{set_common_headers, usage_of};
use super::state::AppState;
use crate::clock::millis_since;
use crate::config::ModelConfig;
use crate::error::{FailureKind, UpstreamError};
use crate::format::sse::{write_data, write_event, DONE};
use crate::format::{anthropic, responses, ClientFormat};
use crate::observe::record::{finish, overhead_ms, Ending, RequestContext};
use crate::upstream::failover::Served;
use crate::upstream::ChunkStream;
use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use switchyard_learn::schema::AttemptRecord;
use tokio::sync::mpsc;

/// Encodes canonical chunks for the client.
enum ChunkWriter {
    OpenAi,
    Anthropic(anthropic::stream::FromOpenAi),
    Responses(Box<responses::stream::FromOpenAi>),
    /// An upstream serving the Responses API natively: its events, passed through.
    Passthrough(responses::stream::Passthrough),
}

impl ChunkWriter {
    fn chunk(&mut self, c: &Value, out: &mut Vec<u8>) {
        match self {
            ChunkWriter::OpenAi => write_data(out, c),
            ChunkWriter::Anthropic(enc) => {
                for (name, ev) in enc.chunk(c) {
                    write_event(out, name, &ev);
                }
            }
            ChunkWriter::Responses(enc) => {
                for (name, ev) in enc.chunk(c) {
                    write_event(out, name, &ev);
                }
            }
            ChunkWriter::Passthrough(p) => {
                if let Some((name, ev)) = p.event(c.clone()) {
                    write_event(out, &name, &ev);
                }
            }
        }
    }
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
/// The response is returned at once; a task relays the stream and holds the admission ticket
/// until the stream ends.
pub fn stream_response(
    state: Arc<AppState>,
    ctx: RequestContext,
    ticket: Ticket,
    s: CommittedStream,
) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let overhead = overhead_ms(ctx.started, &s.attempts);
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
    tokio::spawn(async move {
        relay(state, ctx, s, tx).await;
        drop(ticket);
    });
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
    let native = s
        .peeked
        .first()
        .and_then(|c| c["type"].as_str())
        .is_some_and(|t| t.starts_with("response."));
    let mut encoder = match ctx.format {
        ClientFormat::Responses if native => {
            ChunkWriter::Passthrough(responses::stream::Passthrough::new(&s.model.id))
        }
        ClientFormat::OpenAi | ClientFormat::Embeddings => ChunkWriter::OpenAi,
        ClientFormat::Anthropic => ChunkWriter::Anthropic(anthropic::stream::FromOpenAi::new(
            &ctx.request_id,
            &s.model.id,
        )),
        ClientFormat::Responses => {
            ChunkWriter::Responses(Box::new(responses::stream::FromOpenAi::new(
                &ctx.request_id,
                &s.model.id,
                ctx.echo.clone().unwrap_or_default(),
            )))
        }
    };
    let mut usage: Option<(u64, u64)> = None;
    let mut broken: Option<(FailureKind, String)> = None;
    let mut client_gone = false;
    let mut buf = Vec::new();
    let mut pending = std::mem::take(&mut s.peeked).into_iter();
    // Mid-stream rescue: the answer so far (kept only while a rescue may need it), and after
    // one, where it happened and the splice that drops a repeated start.
    let mut rescues_left = if native {
        0
    } else {
        state.config.server.failover.rescue_attempts
    };
    let mut answer = Answer {
        head: String::new(),
        keep: if state.config.logging.log_text {
            state.config.logging.max_text_bytes
        } else {
            0
        },
        chars: 0,
        bytes: 0,
        whole: (rescues_left > 0).then(String::new),
    };
    let mut rescue: Option<Value> = None;
    let mut splice: Option<Splice> = None;
    let mut chars_before_rescue = 0u64;
    'relay: loop {
        loop {
            let next = match pending.next() {
                Some(c) => Some(Ok(c)),
                // Batch whatever the upstream has ready into one write; flush before waiting.
                None => match ready_soon(&mut s.rest).await {
                    Some(item) => item,
                    None => {
                        if !flush(&tx, &mut buf).await {
                            client_gone = true;
                            break;
                        }
                        // The total deadline, or the idle limit between chunks if that comes first.
                        let idle = state.config.server.failover.stream_idle_timeout;
                        let stall_at = tokio::time::Instant::now() + idle;
                        match tokio::time::timeout_at(s.deadline.min(stall_at), s.rest.next()).await
                        {
                            Ok(item) => item,
                            Err(_) if stall_at < s.deadline => {
                                state.metrics.stream_stalls.fetch_add(1, Ordering::Relaxed);
                                broken = Some((
                                FailureKind::Timeout,
                                format!(
                                    "the upstream stream stalled: no chunk for {} ms (server.stream_idle_timeout)",
                                    idle.as_millis()
                                ),
                            ));
                                break;
                            }
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
            if native {
                if let Some(t) = chunk["delta"]
                    .as_str()
                    .filter(|_| chunk["type"] == "response.output_text.delta")
                {
                    answer.push(t);
                }
                encoder.chunk(&chunk, &mut buf);
                if let ChunkWriter::Passthrough(p) = &encoder {
                    usage = p.usage().or(usage);
                }
                continue;
            }
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
            if let Some(sp) = splice.as_mut() {
                let finishing = !chunk["choices"][0]["finish_reason"].is_null();
                let piece = chunk["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap_or("");
                let out = sp.feed(piece, finishing);
                if out.is_some() {
                    splice = None;
                }
                chunk["choices"][0]["delta"]["content"] = json!(out.unwrap_or_default());
            }
            if let Some(t) = chunk["choices"][0]["delta"]["content"].as_str() {
                answer.push(t);
            }
            encoder.chunk(&chunk, &mut buf);
        }
        // A continuation that ended while its start was held: what is left of it.
        if let Some(rest) = splice
            .take()
            .map(|mut sp| sp.flush())
            .filter(|r| !r.is_empty())
        {
            answer.push(&rest);
            let c = json!({"id": chunk_id, "object": "chat.completion.chunk", "model": model_id,
                       "choices": [{"index": 0, "delta": {"content": rest}, "finish_reason": null}]});
            encoder.chunk(&c, &mut buf);
        }
        if let Some(a) = s.attempts.last_mut() {
            a.duration_ms = millis_since(s.attempt_started);
            if let Some((kind, reason)) = &broken {
                // It served bytes, then failed: a failed attempt (the log says stream_interrupted).
                state.cooldowns.failure(&a.model, None, &state.metrics);
                a.success = false;
                a.error_kind = Some(*kind);
                a.error = Some(reason.clone());
            }
        }
        let Some((_, reason)) = broken.clone().filter(|_| rescues_left > 0 && !client_gone) else {
            break 'relay;
        };
        // Rescue: what was sent reaches the client now, then the rest of the chain continues it.
        rescues_left -= 1;
        if !flush(&tx, &mut buf).await {
            client_gone = true;
            break 'relay;
        }
        let sent = answer.whole.as_deref().unwrap_or_default();
        let Some(exec) = continue_on(&state, &ctx, &s.model, sent).await else {
            break 'relay;
        };
        s.attempts.extend(exec.attempts);
        match exec.result {
            Ok((
                model,
                Served::Stream {
                    peeked,
                    rest,
                    attempt_started,
                    deadline,
                },
            )) => {
                state.metrics.stream_rescues.fetch_add(1, Ordering::Relaxed);
                rescue = Some(json!({
                    "rescued_at_chars": sent.chars().count(), "from": s.model.id,
                    "finished_by": model.id, "prefill": model.prefill, "reason": reason,
                }));
                chars_before_rescue = answer.chars;
                splice = Some(Splice::new(sent));
                if rescues_left == 0 {
                    answer.whole = None;
                }
                (s.model, s.rest, s.attempt_started, s.deadline) =
                    (model, rest, attempt_started, deadline);
                pending = peeked.into_iter();
                broken = None;
            }
            Ok((_, Served::Complete(_))) => break 'relay,
            Err(e) => {
                broken = broken.map(|(k, r)| {
                    (
                        k,
                        format!(
                            "{r}; the rescue on the rest of the chain failed too: {}",
                            e.message
                        ),
                    )
                });
                break 'relay;
            }
        }
    }
    // After a rescue the rescuer's usage covers its part; the part before is estimated.
    let before = switchyard_learn::prompt::estimate_tokens_of_chars(chars_before_rescue);
    let (prompt_tokens, completion_tokens) =
        usage.map(|(p, c)| (p, c + before)).unwrap_or_else(|| {
            (
                ctx.req.prompt_tokens,
                switchyard_learn::prompt::estimate_tokens_of_chars(answer.chars),
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
        &state.sinks(),
        &ctx,
        Ending {
            status: 200,
            model: Some(&s.model),
            attempts: &s.attempts,
            prompt_tokens,
            completion_tokens,
            completion_text: Some(&answer.head),
            completion_bytes: answer.bytes,
            error: error.as_deref(),
            stream_interrupted: broken.is_some(),
            rescue: rescue.as_ref(),
        },
    );
    if client_gone {
        return;
    }
    match (&broken, &mut encoder) {
        (Some(_), ChunkWriter::OpenAi) => write_data(
            &mut buf,
            &json!({"error": {"message": error, "type": "upstream_error", "param": null,
                              "code": "stream_interrupted", "metadata": meta}}),
        ),
        (Some(_), ChunkWriter::Anthropic(_)) => write_event(
            &mut buf,
            "error",
            &json!({"type": "error", "error": {"type": "api_error", "message": error, "metadata": meta}}),
        ),
        (None, ChunkWriter::OpenAi) => {
            let mut last = json!({"id": chunk_id, "object": "chat.completion.chunk", "created": crate::clock::unix_secs(),
                                  "model": model_id, "choices": [], "metadata": meta});
            if ctx.req.include_usage {
                last["usage"] = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                       "total_tokens": prompt_tokens + completion_tokens});
            }
            write_data(&mut buf, &last);
            buf.extend_from_slice(DONE);
        }
        (Some(_), ChunkWriter::Responses(enc)) => {
            for (name, ev) in enc.failed(error.as_deref().unwrap_or("stream interrupted"), meta) {
                write_event(&mut buf, name, &ev);
            }
        }
        (None, ChunkWriter::Responses(enc)) => {
            for (name, ev) in enc.finish(prompt_tokens, completion_tokens, meta) {
                write_event(&mut buf, name, &ev);
            }
        }
        (Some(_), ChunkWriter::Passthrough(p)) => {
            let (name, ev) = p.failed(error.as_deref().unwrap_or("stream interrupted"), meta);
            write_event(&mut buf, &name, &ev);
        }
        (None, ChunkWriter::Passthrough(p)) => {
            if let Some((name, ev)) = p.finish(meta) {
                write_event(&mut buf, &name, &ev);
            }
        }
        (None, ChunkWriter::Anthropic(enc)) => {
            for (name, ev) in enc.finish(prompt_tokens, completion_tokens, meta) {
                write_event(&mut buf, name, &ev);
            }
        }
    }
    let _ = tx.send(Bytes::from(buf)).await;
}

/// The upstream's next chunk if it is ready now or after the runtime has run other ready
/// tasks once: the upstream connection's task hands its decoded chunks over one at a time, so
/// a burst already in its buffer becomes ready one yield later. `None`: nothing that soon.
async fn ready_soon(rest: &mut ChunkStream) -> Option<Option<Result<Value, UpstreamError>>> {
    if let Some(item) = rest.next().now_or_never() {
        return Some(item);
    }
    tokio::task::yield_now().await;
    rest.next().now_or_never()
}

/// Sends what is buffered to the client; false when the client has gone.
async fn flush(tx: &mpsc::Sender<Bytes>, buf: &mut Vec<u8>) -> bool {
    buf.is_empty() || tx.send(Bytes::from(std::mem::take(buf))).await.is_ok()
}

/// The answer relayed so far: its head as logged (up to `keep` bytes: `max_text_bytes`, or 0
/// without text logging), its whole size, and the whole text while a rescue may need it.
struct Answer {
    head: String,
    keep: usize,
    chars: u64,
    bytes: usize,
    whole: Option<String>,
}

impl Answer {
    fn push(&mut self, t: &str) {
        self.chars += t.chars().count() as u64;
        self.bytes += t.len();
        for c in t.chars() {
            if self.head.len() >= self.keep {
                break;
            }
            self.head.push(c);
        }
        if let Some(w) = &mut self.whole {
            w.push_str(t);
        }
    }
}
