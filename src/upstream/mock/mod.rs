//! The in-process mock provider: scripted answers and failures with no network and no keys,
//! configured per model (`mock = { script = "status:503" }`).

pub mod script;

use crate::config::mock::Script;
use crate::error::{FailureKind, UpstreamError};
use crate::upstream::provider::{Call, Provider, Reply};
use futures_util::future::BoxFuture;
use futures_util::stream::StreamExt;
use std::time::Duration;

pub struct MockProvider;

impl Provider for MockProvider {
    fn send(&self, call: Call) -> BoxFuture<'static, Result<Reply, UpstreamError>> {
        Box::pin(async move {
            let behaviour = &call.model.mock;
            if behaviour.latency_ms > 0 {
                tokio::time::sleep(Duration::from_millis(behaviour.latency_ms)).await;
            }
            let script = behaviour.script();
            match script {
                Script::Status(code) => {
                    return Err(UpstreamError::status(
                        code,
                        format!("mock {code} from {}", call.model.id),
                    ))
                }
                Script::HangHeaders => std::future::pending::<()>().await,
                Script::Malformed => {
                    return Err(UpstreamError::new(
                        FailureKind::Malformed,
                        "mock returned invalid JSON",
                    ))
                }
                Script::Ok | Script::HangTtft | Script::DropMid => {}
            }
            let answer = script::answer(&call.body, &call.model.id, behaviour.reply.as_deref());
            let id = format!("chatcmpl-mock-{}", uuid::Uuid::new_v4().simple());
            let created = crate::clock::unix_secs();
            if !call.stream {
                if script == Script::HangTtft {
                    std::future::pending::<()>().await;
                }
                return Ok(Reply::Complete(script::completion_json(
                    &answer,
                    &call.model.upstream,
                    &id,
                    created,
                )));
            }
            let chunks = script::chunks_json(&answer, &call.model.upstream, &id, created, true);
            let delay = Duration::from_millis(behaviour.chunk_delay_ms);
            let stream = futures_util::stream::iter(chunks.into_iter().enumerate()).then(
                move |(i, c)| async move {
                    if i > 0 && !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    match script {
                        Script::HangTtft if i > 0 => std::future::pending().await,
                        Script::DropMid if i > 3 => Err(UpstreamError::new(
                            FailureKind::StreamBroken,
                            "mock dropped the stream",
                        )),
                        _ => Ok(c),
                    }
                },
            );
            // Stop after the first error, as a real connection would.
            let stream = stream.scan(false, |failed, item| {
                let out = if *failed { None } else { Some(item) };
                if let Some(Err(_)) = &out {
                    *failed = true;
                }
                futures_util::future::ready(out)
            });
            Ok(Reply::Stream(stream.boxed()))
        })
    }

    fn embed(&self, call: Call) -> BoxFuture<'static, Result<serde_json::Value, UpstreamError>> {
        Box::pin(async move {
            let behaviour = &call.model.mock;
            if behaviour.latency_ms > 0 {
                tokio::time::sleep(Duration::from_millis(behaviour.latency_ms)).await;
            }
            match behaviour.script() {
                Script::Status(code) => Err(UpstreamError::status(
                    code,
                    format!("mock {code} from {}", call.model.id),
                )),
                Script::HangHeaders | Script::HangTtft => std::future::pending().await,
                Script::Malformed | Script::DropMid => Err(UpstreamError::new(
                    FailureKind::Malformed,
                    "mock returned invalid JSON",
                )),
                Script::Ok => script::embeddings_json(&call.body, &call.model.upstream)
                    .map_err(|m| UpstreamError::status(400, m)),
            }
        })
    }
}
