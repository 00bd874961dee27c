//! OpenAI-compatible upstreams (OpenAI, Groq, Together, vLLM, Ollama, ...): the canonical body
//! is sent as-is, with the upstream model name, so unknown fields pass through.

use super::client::{read_body, send_error, status_error, Endpoint};
use super::provider::{Call, ChunkStream, Provider, Reply};
use crate::config::ProviderConfig;
use crate::error::{FailureKind, UpstreamError};
use crate::format::sse;
use futures_util::future::BoxFuture;
use futures_util::stream::StreamExt;
use serde_json::{json, Value};
use std::sync::Arc;

pub struct OpenAiProvider {
    config: Arc<ProviderConfig>,
    http: reqwest::Client,
    url: Endpoint,
    embeddings_url: Endpoint,
    responses_url: Endpoint,
}

impl OpenAiProvider {
    pub fn new(config: Arc<ProviderConfig>, http: reqwest::Client) -> Self {
        let url = Endpoint::new(format!("{}/chat/completions", config.base_url));
        let embeddings_url = Endpoint::new(format!("{}/embeddings", config.base_url));
        let responses_url = Endpoint::new(format!("{}/responses", config.base_url));
        OpenAiProvider {
            config,
            http,
            url,
            embeddings_url,
            responses_url,
        }
    }

    fn post(
        &self,
        url: &Endpoint,
        body: &serde_json::Map<String, Value>,
    ) -> reqwest::RequestBuilder {
        let req = url.post(&self.http).json(body);
        match &self.config.api_key {
            Some(key) => req.bearer_auth(key),
            None => req,
        }
    }
}

/// A whole JSON answer of at most `limit` bytes that has the array `field`.
async fn json_answer(
    resp: reqwest::Response,
    limit: usize,
    field: &str,
) -> Result<Value, UpstreamError> {
    if !resp.status().is_success() {
        return Err(status_error(resp).await);
    }
    let bytes = read_body(resp, limit).await?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
        UpstreamError::new(
            FailureKind::Malformed,
            format!("upstream returned invalid JSON: {e}"),
        )
    })?;
    if v.get(field).and_then(Value::as_array).is_none() {
        return Err(UpstreamError::new(
            FailureKind::Malformed,
            format!("upstream response has no `{field}`"),
        ));
    }
    Ok(v)
}

impl Provider for OpenAiProvider {
    fn send(&self, call: Call) -> BoxFuture<'static, Result<Reply, UpstreamError>> {
        if let (Some(native), true) = (&call.native, self.config.responses) {
            return self.send_native(native, &call);
        }
        let mut body = (*call.body).clone();
        body.insert("model".into(), Value::String(call.model.upstream.clone()));
        if call.stream {
            body.insert("stream".into(), Value::Bool(true));
            // Always ask for usage so that cost and logs are exact; the relay drops the usage
            // chunk if the client did not ask for it.
            let opts = body.entry("stream_options").or_insert_with(|| json!({}));
            if let Some(o) = opts.as_object_mut() {
                o.insert("include_usage".into(), Value::Bool(true));
            }
        }
        let req = self.post(&self.url, &body);
        Box::pin(async move {
            let resp = req.send().await.map_err(send_error)?;
            if !call.stream {
                return Ok(Reply::Complete(
                    json_answer(resp, call.max_body_bytes, "choices").await?,
                ));
            }
            if !resp.status().is_success() {
                return Err(status_error(resp).await);
            }
            Ok(Reply::Stream(chunk_stream(resp)))
        })
    }

    fn embed(&self, call: Call) -> BoxFuture<'static, Result<Value, UpstreamError>> {
        let mut body = (*call.body).clone();
        body.insert("model".into(), Value::String(call.model.upstream.clone()));
        let req = self.post(&self.embeddings_url, &body);
        Box::pin(async move {
            let resp = req.send().await.map_err(send_error)?;
            json_answer(resp, call.max_body_bytes, "data").await
        })
    }
}

impl OpenAiProvider {
    /// A Responses API request passed through to `{base_url}/responses`: the answer is the
    /// upstream's `response` object, or its typed events (each item one event's data).
    fn send_native(
        &self,
        native: &serde_json::Map<String, Value>,
        call: &Call,
    ) -> BoxFuture<'static, Result<Reply, UpstreamError>> {
        let mut body = native.clone();
        body.insert("model".into(), Value::String(call.model.upstream.clone()));
        body.insert("stream".into(), Value::Bool(call.stream));
        let req = self.post(&self.responses_url, &body);
        let (stream, limit) = (call.stream, call.max_body_bytes);
        Box::pin(async move {
            let resp = req.send().await.map_err(send_error)?;
            if !stream {
                return Ok(Reply::Complete(json_answer(resp, limit, "output").await?));
            }
            if !resp.status().is_success() {
                return Err(status_error(resp).await);
            }
            Ok(Reply::Stream(event_stream(resp)))
        })
    }
}

/// A native Responses event stream → the events' JSON values. It ends after the terminal
/// event (`response.completed`, `.incomplete` or `.failed`); an end before one is a broken
/// stream, and an `error` event is the upstream failing mid-stream.
fn event_stream(resp: reqwest::Response) -> ChunkStream {
    let events = sse::events(resp.bytes_stream().boxed());
    futures_util::stream::unfold((events, false), |(mut events, finished)| async move {
        if finished {
            return None;
        }
        let item = match events.next().await {
            Some(Ok(ev)) => match serde_json::from_str::<Value>(&ev.data) {
                Ok(v) if v["type"] == "error" => Err(UpstreamError::new(
                    FailureKind::StreamBroken,
                    format!("upstream sent an error event: {}", v["message"]),
                )),
                Ok(v) => {
                    let last = matches!(
                        v["type"].as_str(),
                        Some("response.completed" | "response.incomplete" | "response.failed")
                    );
                    return Some((Ok(v), (events, last)));
                }
                Err(e) => Err(UpstreamError::new(
                    FailureKind::Malformed,
                    format!("upstream sent an invalid event: {e}"),
                )),
            },
            Some(Err(e)) => Err(e),
            None => Err(UpstreamError::new(
                FailureKind::StreamBroken,
                "upstream stream ended before response.completed",
            )),
        };
        Some((item, (events, true)))
    })
    .boxed()
}

/// OpenAI SSE → chunk JSON values. Ends at `[DONE]`, or at the end of a stream that already
/// sent its `finish_reason` (some upstreams never send `[DONE]`); an end before either is a
/// broken stream. A chunk that is not valid JSON is skipped and counted
/// ([`sse::MALFORMED_SKIPPED`]), as one bad line should not cost the whole answer.
fn chunk_stream(resp: reqwest::Response) -> ChunkStream {
    let events = sse::events(resp.bytes_stream().boxed());
    futures_util::stream::unfold(
        (events, false, false),
        |(mut events, finished, done)| async move {
            if done {
                return None;
            }
            loop {
                let item = match events.next().await {
                    Some(Ok(ev)) if ev.data.trim() == "[DONE]" => return None,
                    Some(Ok(ev)) => match serde_json::from_str::<Value>(&ev.data) {
                        Ok(v) if v.get("error").is_some() => Err(UpstreamError::new(
                            FailureKind::StreamBroken,
                            format!("upstream sent an error event: {}", v["error"]),
                        )),
                        Ok(v) => {
                            let finishes = v["choices"]
                                .as_array()
                                .is_some_and(|cs| cs.iter().any(|c| !c["finish_reason"].is_null()));
                            return Some((Ok(v), (events, finished || finishes, false)));
                        }
                        Err(_) => {
                            sse::MALFORMED_SKIPPED
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            continue;
                        }
                    },
                    Some(Err(e)) => Err(e),
                    None if finished => return None,
                    None => Err(UpstreamError::new(
                        FailureKind::StreamBroken,
                        "upstream stream ended without [DONE] or a finish_reason",
                    )),
                };
                return Some((item, (events, finished, true)));
            }
        },
    )
    .boxed()
}
