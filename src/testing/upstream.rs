//! A scripted HTTP upstream speaking both OpenAI (`/v1/chat/completions`, `/v1/embeddings`) and
//! Anthropic (`/v1/messages`), for tests, demos and the load harness (`switchyard mock-upstream`).
//!
//! The requested model name is the script: `ok` (or any other name) answers, `status:429`
//! returns that status, `hang_headers`, `hang_ttft`, `drop_mid` and `malformed` misbehave as
//! named (see [`Script`]); `fault:…` names misbehave depending on what came before (see
//! [`Fault`]); `POST /_mock/delay` makes a model name wait before answering. The last [`RECORD_LIMIT`] requests are kept (so a long load run stays
//! in bounded memory); `GET /_mock/requests` returns them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test tooling: a scripted upstream that panics on its own bugs"
)]

use crate::config::mock::Script;
use crate::format::{anthropic, responses, sse};
use crate::upstream::mock::script;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Json;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// How many of the most recent requests are kept.
pub const RECORD_LIMIT: usize = 1000;

/// The most recent requests the mock has received: `{"path", "headers", "body"}`, oldest first.
pub type Recorded = Arc<Mutex<std::collections::VecDeque<Value>>>;

#[derive(Clone, Copy, PartialEq)]
enum Wire {
    OpenAi,
    Anthropic,
    /// OpenAI's Responses API, served natively (as OpenAI does).
    Responses,
}

#[derive(Clone)]
struct MockState {
    recorded: Recorded,
    /// Milliseconds to wait before answering, per requested model name (`POST /_mock/delay`).
    delays: Arc<Mutex<std::collections::HashMap<String, u64>>>,
    /// Per requested model name: requests seen and when the first came (for [`Fault`]s).
    seen: Arc<Mutex<std::collections::HashMap<String, (u32, std::time::Instant)>>>,
}

/// Faults of a real provider that depend on what came before, for the failover tests. The
/// model name is `fault:<what>`; anything after a `#` is ignored, so tests can use fresh
/// counters.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// `once_500`, `once_429`: the first request gets that status (a 429 says `Retry-After:
    /// 2`), later ones are answered.
    Once(u16),
    /// `down_ms_N`: 503 for N ms from the first request, then answered.
    DownFor(u64),
    /// `context`: a 400 `context_length_exceeded`.
    Context,
    /// `stall_mid`: streams a few tokens, then goes silent.
    StallMid,
    /// `bad_chunk`: a stream with one event that is not JSON.
    BadChunk,
    /// `no_done`: a whole stream that never sends `data: [DONE]`.
    NoDone,
    /// `cut_mid`: streams a few tokens, then the connection drops.
    CutMid,
    /// `no_prefill`: refuses (400) messages that end with an assistant message.
    NoPrefill,
    /// `slow_ttft_ms_N`: headers and the role chunk at once, the first token after N ms.
    SlowTtft(u64),
}

impl Fault {
    fn parse(model: &str) -> Option<Fault> {
        let what = model.strip_prefix("fault:")?.split('#').next()?;
        Some(match what {
            "once_500" => Fault::Once(500),
            "once_429" => Fault::Once(429),
            "context" => Fault::Context,
            "stall_mid" => Fault::StallMid,
            "bad_chunk" => Fault::BadChunk,
            "no_done" => Fault::NoDone,
            "cut_mid" => Fault::CutMid,
            "no_prefill" => Fault::NoPrefill,
            other => match other.strip_prefix("slow_ttft_ms_") {
                Some(ms) => Fault::SlowTtft(ms.parse().ok()?),
                None => Fault::DownFor(other.strip_prefix("down_ms_")?.parse().ok()?),
            },
        })
    }
}

/// A running mock upstream.
pub struct MockUpstream {
    pub addr: SocketAddr,
    pub recorded: Recorded,
    task: tokio::task::JoinHandle<()>,
}

impl MockUpstream {
    /// Starts on `listen` (port 0 picks a free port).
    pub async fn start(listen: &str) -> std::io::Result<MockUpstream> {
        let recorded: Recorded = Arc::default();
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/v1/messages", post(messages))
            .route("/v1/embeddings", post(embeddings))
            .route("/v1/responses", post(responses_api))
            .route("/_mock/requests", get(list).delete(clear))
            .route("/_mock/delay", post(set_delay))
            // Bodies as large as real providers take (inline images), not axum's 2 MB.
            .layer(axum::extract::DefaultBodyLimit::max(32 << 20))
            .with_state(MockState {
                recorded: recorded.clone(),
                delays: Arc::default(),
                seen: Arc::default(),
            });
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener.tap_io(crate::http::accept::nodelay), app).await;
        });
        Ok(MockUpstream {
            addr,
            recorded,
            task,
        })
    }

    /// The base URL to put in a provider's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Request bodies received so far.
    pub fn bodies(&self) -> Vec<Value> {
        self.recorded
            .lock()
            .unwrap()
            .iter()
            .map(|r| r["body"].clone())
            .collect()
    }

    /// Waits until the server task ends (it runs until the process exits).
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn list(State(s): State<MockState>) -> Json<Value> {
    Json(Value::Array(
        s.recorded.lock().unwrap().iter().cloned().collect(),
    ))
}

/// `POST /_mock/delay {"model": NAME, "ttft_ms": N}`: requests for NAME wait N ms before the
/// answer starts (tests steer a model's time to first token with it; 0 removes the delay).
async fn set_delay(State(s): State<MockState>, Json(v): Json<Value>) -> StatusCode {
    let (Some(model), Some(ms)) = (v["model"].as_str(), v["ttft_ms"].as_u64()) else {
        return StatusCode::BAD_REQUEST;
    };
    s.delays.lock().unwrap().insert(model.to_string(), ms);
    StatusCode::NO_CONTENT
}

async fn clear(State(s): State<MockState>) -> StatusCode {
    s.recorded.lock().unwrap().clear();
    StatusCode::NO_CONTENT
}

async fn openai(State(s): State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    serve(s, headers, body, Wire::OpenAi).await
}

async fn messages(State(s): State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    serve(s, headers, body, Wire::Anthropic).await
}

async fn responses_api(State(s): State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    serve(s, headers, body, Wire::Responses).await
}

/// `POST /v1/embeddings`: the model name is the script, as for chat; `ok` answers with
/// deterministic vectors.
async fn embeddings(State(s): State<MockState>, body: Bytes) -> Response {
    let Ok(original) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(error_body(Wire::OpenAi, 400, "invalid JSON")),
        )
            .into_response();
    };
    record(
        &s,
        "/v1/embeddings",
        serde_json::Map::new(),
        original.clone(),
    );
    let model = original["model"].as_str().unwrap_or("ok").to_string();
    match Script::parse(&model) {
        Script::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (
                status,
                Json(error_body(Wire::OpenAi, code, &format!("scripted {code}"))),
            )
                .into_response()
        }
        Script::HangHeaders | Script::HangTtft => std::future::pending().await,
        Script::Malformed | Script::DropMid => {
            ([("content-type", "application/json")], "{\"data\": [").into_response()
        }
        Script::Ok => {
            let body = original.as_object().cloned().unwrap_or_default();
            match script::embeddings_json(&body, &model) {
                Ok(v) => Json(v).into_response(),
                Err(m) => (
                    StatusCode::BAD_REQUEST,
                    Json(error_body(Wire::OpenAi, 400, &m)),
                )
                    .into_response(),
            }
        }
    }
}

/// Keeps a received request (the newest [`RECORD_LIMIT`]).
fn record(s: &MockState, path: &str, headers: serde_json::Map<String, Value>, body: Value) {
    let mut recorded = s.recorded.lock().unwrap();
    if recorded.len() >= RECORD_LIMIT {
        recorded.pop_front();
    }
    recorded.push_back(json!({"path": path, "headers": headers, "body": body}));
}

fn error_body(wire: Wire, status: u16, message: &str) -> Value {
    match wire {
        Wire::OpenAi | Wire::Responses => {
            json!({"error": {"message": message, "type": "mock_error", "param": null, "code": status}})
        }
        Wire::Anthropic => {
            json!({"type": "error", "error": {"type": "api_error", "message": message}})
        }
    }
}

async fn serve(s: MockState, headers: HeaderMap, raw: Bytes, wire: Wire) -> Response {
    let Ok(original) = serde_json::from_slice::<Value>(&raw) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(error_body(wire, 400, "invalid JSON")),
        )
            .into_response();
    };
    let header_json: serde_json::Map<String, Value> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), Value::String(v.to_str().ok()?.to_string()))))
        .collect();
    let path = match wire {
        Wire::OpenAi => "/v1/chat/completions",
        Wire::Anthropic => "/v1/messages",
        Wire::Responses => "/v1/responses",
    };
    record(&s, path, header_json, original.clone());
    let model = original["model"].as_str().unwrap_or("ok").to_string();
    let stream = original["stream"].as_bool().unwrap_or(false);
    let echo = responses::response::Echo::of(&original);
    let translated = match wire {
        Wire::OpenAi => Ok(original),
        Wire::Anthropic => anthropic::request::to_openai(original),
        Wire::Responses => responses::request::to_openai(original, usize::MAX),
    };
    let body = match translated {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(error_body(wire, 400, &e.message)),
            )
                .into_response()
        }
    };
    let body = body.as_object().cloned().unwrap_or_default();
    let delay = s.delays.lock().unwrap().get(&model).copied().unwrap_or(0);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let fault = Fault::parse(&model);
    let (count, first) = {
        let mut seen = s.seen.lock().unwrap();
        let e = seen
            .entry(model.clone())
            .or_insert((0, std::time::Instant::now()));
        e.0 += 1;
        *e
    };
    let failing = match fault {
        Some(Fault::Once(code)) if count == 1 => Some((code, "scripted failure".to_string())),
        Some(Fault::DownFor(ms)) if first.elapsed().as_millis() < u128::from(ms) => {
            Some((503, "scripted outage".to_string()))
        }
        Some(Fault::Context) => Some((
            400,
            "This model's maximum context length is 1000 tokens. However, your messages resulted in 5000 tokens.".to_string(),
        )),
        Some(Fault::NoPrefill)
            if body
                .get("messages")
                .and_then(Value::as_array)
                .and_then(|m| m.last())
                .is_some_and(|m| m["role"] == "assistant") =>
        {
            Some((400, "assistant message prefill is not supported".to_string()))
        }
        _ => None,
    };
    if let Some((code, message)) = failing {
        let mut body = error_body(wire, code, &message);
        if fault == Some(Fault::Context) {
            body["error"]["code"] = json!("context_length_exceeded");
        }
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, Json(body)).into_response();
        if code == 429 {
            resp.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("2"));
        }
        return resp;
    }
    let script = Script::parse(&model);
    match script {
        Script::Status(code) => {
            // Like a careless real upstream, the error quotes what it received (the key and
            // the prompt), and a 429 says when to come back.
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let auth = headers
                .get("authorization")
                .or_else(|| headers.get("x-api-key"))
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let message = format!(
                "scripted {code}: received credentials {auth:?} and prompt {:?}",
                crate::format::request::last_user_text(&body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            );
            let mut resp = (status, Json(error_body(wire, code, &message))).into_response();
            if code == 429 {
                resp.headers_mut()
                    .insert("retry-after", axum::http::HeaderValue::from_static("1"));
            }
            return resp;
        }
        Script::HangHeaders => std::future::pending::<()>().await,
        Script::HangTtft if !stream => std::future::pending::<()>().await,
        Script::Malformed if !stream => {
            return ([("content-type", "application/json")], "{\"choices\": [").into_response()
        }
        _ => {}
    }
    // Faulty models answer as `ok` does, so that another model can finish their answer.
    let answer = script::answer(&body, if fault.is_some() { "ok" } else { &model }, None);
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = crate::clock::unix_secs();
    if !stream {
        let completion = script::completion_json(&answer, &model, &id, created);
        let out = match wire {
            Wire::OpenAi => completion,
            Wire::Anthropic => anthropic::response::from_openai(&completion, &model),
            Wire::Responses => responses::response::from_openai(
                &completion,
                &format!("mock{}", uuid::Uuid::new_v4().simple()),
                &echo,
                (answer.prompt_tokens, answer.completion_tokens),
            ),
        };
        if script == Script::DropMid {
            let text = out.to_string();
            let half = Bytes::from(text[..text.len() / 2].to_string());
            return stream_body(vec![half], true, false);
        }
        return Json(out).into_response();
    }
    let include_usage = body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let chunks = script::chunks_json(
        &answer,
        &model,
        &id,
        created,
        include_usage || wire != Wire::OpenAi,
    );
    let mut events: Vec<Bytes> = Vec::new();
    match wire {
        Wire::OpenAi => {
            for c in &chunks {
                let mut out = Vec::new();
                sse::write_data(&mut out, c);
                events.push(Bytes::from(out));
            }
            if fault != Some(Fault::NoDone) {
                events.push(Bytes::from_static(sse::DONE));
            }
        }
        Wire::Responses => {
            let mut enc = responses::stream::FromOpenAi::new(
                &format!("mock{}", uuid::Uuid::new_v4().simple()),
                &model,
                echo,
            );
            let mut all: Vec<(&str, Value)> = chunks.iter().flat_map(|c| enc.chunk(c)).collect();
            all.extend(enc.finish(answer.prompt_tokens, answer.completion_tokens, Value::Null));
            events.extend(named_events(all));
        }
        Wire::Anthropic => {
            let mut enc = anthropic::stream::FromOpenAi::new(&id, &model);
            let mut all: Vec<(&str, Value)> = chunks.iter().flat_map(|c| enc.chunk(c)).collect();
            all.extend(enc.finish(answer.prompt_tokens, answer.completion_tokens, Value::Null));
            events.extend(named_events(all));
        }
    }
    if fault == Some(Fault::BadChunk) {
        events.insert(
            2.min(events.len()),
            Bytes::from_static(b"data: {\"choices\": [{\"delta\": \n\n"),
        );
    }
    if let Some(Fault::SlowTtft(ms)) = fault {
        // The first event at once, the rest (the first token on) after `ms`.
        let rest = events.split_off(1.min(events.len()));
        let later = futures_util::stream::once(async move {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            futures_util::stream::iter(rest.into_iter().map(Ok::<Bytes, std::io::Error>))
        })
        .flatten();
        let head = futures_util::stream::iter(events.into_iter().map(Ok::<Bytes, std::io::Error>));
        return sse_response(Body::from_stream(head.chain(later)));
    }
    match script {
        _ if fault == Some(Fault::StallMid) => {
            stream_body(events.into_iter().take(4).collect(), false, true)
        }
        _ if fault == Some(Fault::CutMid) => {
            let keep = if wire == Wire::Responses { 6 } else { 4 };
            stream_body(events.into_iter().take(keep).collect(), true, false)
        }
        Script::HangTtft => stream_body(events.into_iter().take(1).collect(), false, true),
        // A few tokens in, then the connection drops (a Responses stream opens with 4 events
        // that carry no text).
        Script::DropMid => {
            let keep = if wire == Wire::Responses { 6 } else { 4 };
            stream_body(events.into_iter().take(keep).collect(), true, false)
        }
        Script::Malformed => stream_body(
            vec![Bytes::from_static(b"data: {\"choices\": [\n\n")],
            false,
            false,
        ),
        _ => stream_body(events, false, false),
    }
}

/// Named SSE events, one write each.
fn named_events(all: Vec<(&str, Value)>) -> impl Iterator<Item = Bytes> + '_ {
    all.into_iter().map(|(name, ev)| {
        let mut out = Vec::new();
        sse::write_event(&mut out, name, &ev);
        Bytes::from(out)
    })
}

/// A streaming body of `events`; then either an abrupt connection drop, a hang, or the end.
fn stream_body(events: Vec<Bytes>, drop_after: bool, hang_after: bool) -> Response {
    let head = futures_util::stream::iter(events.into_iter().map(Ok::<Bytes, std::io::Error>));
    let tail = futures_util::stream::once(async move {
        if hang_after {
            std::future::pending::<()>().await;
        }
        if drop_after {
            // Give the client time to read what was sent, then break the connection.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "scripted drop",
            ));
        }
        Ok(Bytes::new())
    });
    sse_response(Body::from_stream(head.chain(tail)))
}

/// An event-stream response with this body.
fn sse_response(body: Body) -> Response {
    let mut resp = Response::new(body);
    resp.headers_mut()
        .insert("content-type", "text/event-stream".parse().unwrap());
    resp
}
