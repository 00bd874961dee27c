//! Upstream providers behind one small trait ([`provider::Provider`]): OpenAI-compatible,
//! Anthropic and the in-process mock, each wrapped so that no secret leaves in an error
//! ([`redact`]); failover along a plan's chain with cooldowns ([`failover`], [`cooldown`]),
//! a plan executed with TTFT hedging when asked ([`execute`]) and the continuation of a broken
//! stream ([`continuation`]).
//! Every provider speaks the canonical OpenAI chat-completions shape to the rest of
//! Switchyard. Imports `config`, `format`, `route` (the plan), `observe::metrics`, `error`;
//! `http` imports it.

pub mod anthropic;
pub mod client;
pub mod continuation;
pub mod cooldown;
pub mod execute;
pub mod failover;
pub mod mock;
pub mod openai;
pub mod provider;
pub mod redact;

pub use provider::{Call, ChunkStream, Provider, Reply};

use crate::config::{ProviderConfig, ProviderKind};
use std::sync::Arc;

/// Builds the provider for a config entry; its errors never carry one of `secrets`.
pub fn build(
    config: &Arc<ProviderConfig>,
    http: &reqwest::Client,
    secrets: &redact::Secrets,
) -> Arc<dyn Provider> {
    let inner: Arc<dyn Provider> = match config.kind {
        ProviderKind::OpenAi => Arc::new(openai::OpenAiProvider::new(config.clone(), http.clone())),
        ProviderKind::Anthropic => Arc::new(anthropic::AnthropicProvider::new(
            config.clone(),
            http.clone(),
        )),
        ProviderKind::Mock => Arc::new(mock::MockProvider),
    };
    Arc::new(redact::Redacting {
        inner,
        secrets: secrets.clone(),
    })
}
