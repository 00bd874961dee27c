//! Anthropic Messages API upstreams: the canonical body is translated to Anthropic's shape and
//! the answer (or stream) back to OpenAI's.

use super::client::{read_body, send_error, status_error, Endpoint};
use super::provider::{Call, Provider, Reply};
use crate::config::ProviderConfig;
use crate::error::{FailureKind, UpstreamError};
use crate::format::anthropic::{request, response, stream::ToOpenAi};
use crate::format::sse;
use futures_util::future::BoxFuture;
use futures_util::stream::StreamExt;
use serde_json::Value;
use std::sync::Arc;

/// The Messages API version Switchyard speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

pub struct AnthropicProvider {
    config: Arc<ProviderConfig>,
    http: reqwest::Client,
    url: Endpoint,
}

impl AnthropicProvider {
    pub fn new(config: Arc<ProviderConfig>, http: reqwest::Client) -> Self {
        let url = Endpoint::new(format!("{}/messages", config.base_url));
        AnthropicProvider { config, http, url }
    }
}

impl Provider for AnthropicProvider {
    fn send(&self, call: Call) -> BoxFuture<'static, Result<Reply, UpstreamError>> {
        let mut body = match request::from_openai(
            &call.body,
            &call.model.upstream,
            call.model.max_output_tokens,
        ) {
            Ok(b) => b,
            Err(why) => {
                let e = UpstreamError::status(400, format!("{}: {why}", call.model.id));
                return Box::pin(async move { Err(e) });
            }
        };
        body["stream"] = Value::Bool(call.stream);
        let mut req = self
            .url
            .post(&self.http)
            .header("anthropic-version", ANTHROPIC_VERSION)
            .json(&body);
        if let Some(key) = &self.config.api_key {
            req = req.header("x-api-key", key);
        }
        Box::pin(async move {
            let resp = req.send().await.map_err(send_error)?;
            if !resp.status().is_success() {
                return Err(status_error(resp).await);
            }
            let created = crate::clock::unix_secs();
            if !call.stream {
                let bytes = read_body(resp, call.max_body_bytes).await?;
                let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
                    UpstreamError::new(
                        FailureKind::Malformed,
                        format!("upstream returned invalid JSON: {e}"),
                    )
                })?;
                return Ok(Reply::Complete(response::to_openai(&v, created)?));
            }
            let events = sse::events(resp.bytes_stream().boxed());
            let state = (
                events,
                ToOpenAi::new(created),
                Vec::<Value>::new().into_iter(),
                false,
            );
            let chunks = futures_util::stream::unfold(
                state,
                |(mut events, mut conv, mut pending, done)| async move {
                    loop {
                        if let Some(c) = pending.next() {
                            return Some((Ok(c), (events, conv, pending, done)));
                        }
                        if done || conv.finished {
                            return None;
                        }
                        match events.next().await {
                            Some(Ok(ev)) => match serde_json::from_str::<Value>(&ev.data) {
                                Ok(v) => match conv.event(&v) {
                                    Ok(chunks) => pending = chunks.into_iter(),
                                    Err(e) => return Some((Err(e), (events, conv, pending, true))),
                                },
                                // One bad event does not cost the answer: skipped, counted.
                                Err(_) => {
                                    crate::format::sse::MALFORMED_SKIPPED
                                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                }
                            },
                            Some(Err(e)) => return Some((Err(e), (events, conv, pending, true))),
                            None => {
                                let err = UpstreamError::new(
                                    FailureKind::StreamBroken,
                                    "upstream stream ended without message_stop",
                                );
                                return Some((Err(err), (events, conv, pending, true)));
                            }
                        }
                    }
                },
            );
            Ok(Reply::Stream(chunks.boxed()))
        })
    }
}
