//! Secrets never travel on an upstream's words. An upstream may echo what it received (its
//! `Authorization` header, the URL) in an error body or a mid-stream error event; every such
//! text reaches the client's error, `metadata.attempts`, the log and stderr. [`Redacting`] wraps
//! each provider and replaces every configured secret, by value, before any of them sees it.

use super::provider::{Call, ChunkStream, Provider, Reply};
use crate::config::Config;
use crate::error::UpstreamError;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use std::sync::Arc;

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Every secret value of a config: provider API keys and router API keys.
#[derive(Clone, Default)]
pub struct Secrets(Arc<Vec<String>>);

impl Secrets {
    pub fn of(config: &Config) -> Secrets {
        let mut values: Vec<String> = config
            .providers
            .values()
            .filter_map(|p| p.api_key.clone())
            .chain(config.server.api_keys.iter().cloned())
            .chain(config.store.iter().flat_map(|s| {
                [s.postgres_url.clone(), s.redis_url.clone()]
                    .into_iter()
                    .flatten()
            }))
            .filter(|v| !v.is_empty())
            .collect();
        // Longest first, so a secret that contains another is replaced whole.
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Secrets(Arc::new(values))
    }

    /// The text with every secret replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in self.0.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        out
    }

    fn error(&self, mut e: UpstreamError) -> UpstreamError {
        e.message = self.redact(&e.message);
        e
    }
}

/// A provider whose errors, before the response and inside a stream, carry no secret.
pub struct Redacting {
    pub inner: Arc<dyn Provider>,
    pub secrets: Secrets,
}

impl Provider for Redacting {
    fn send(&self, call: Call) -> BoxFuture<'static, Result<Reply, UpstreamError>> {
        let (send, secrets) = (self.inner.send(call), self.secrets.clone());
        Box::pin(async move {
            match send.await {
                Err(e) => Err(secrets.error(e)),
                Ok(Reply::Complete(v)) => Ok(Reply::Complete(v)),
                Ok(Reply::Stream(s)) => {
                    let s: ChunkStream = s
                        .map(move |item| item.map_err(|e| secrets.error(e)))
                        .boxed();
                    Ok(Reply::Stream(s))
                }
            }
        })
    }

    fn embed(&self, call: Call) -> BoxFuture<'static, Result<serde_json::Value, UpstreamError>> {
        let (embed, secrets) = (self.inner.embed(call), self.secrets.clone());
        Box::pin(async move { embed.await.map_err(|e| secrets.error(e)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_secret_is_replaced_longest_first() {
        let s = Secrets(Arc::new(vec!["sk-abcdef-long".into(), "sk-abc".into()]));
        assert_eq!(
            s.redact("got Bearer sk-abcdef-long and sk-abc, twice: sk-abc"),
            "got Bearer [REDACTED] and [REDACTED], twice: [REDACTED]"
        );
        assert_eq!(s.redact("nothing here"), "nothing here");
    }
}
