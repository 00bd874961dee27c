//! `[providers]` and `[[models]]`: upstream endpoints and keys, served models and their prices.
//! An optional provider whose key is missing is left out with its models.

use super::mock::MockBehaviour;
use super::source::{ConfigError, Source};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use switchyard_learn::score::Price;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileProvider {
    kind: String,
    base_url: Option<String>,
    /// An environment variable that, when set, replaces `base_url` (a proxy, a regional
    /// endpoint, or a test's scripted upstream).
    base_url_env: Option<String>,
    api_key_env: Option<String>,
    /// When true and the key's env var is unset, the provider and its models are left out.
    #[serde(default)]
    optional: bool,
    /// An OpenAI-kind upstream that serves the Responses API itself (`POST {base_url}/responses`):
    /// `/v1/responses` requests are passed through to it instead of translated to chat.
    #[serde(default)]
    responses: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileModel {
    id: String,
    upstream: Option<String>,
    input_price_per_mtok: Option<f64>,
    output_price_per_mtok: Option<f64>,
    context_window: Option<u64>,
    max_output_tokens: Option<u64>,
    #[serde(default)]
    tags: Vec<String>,
    mock: Option<MockBehaviour>,
    /// Whether the upstream continues an assistant message at the end of the messages
    /// (prefill); default by provider kind: Anthropic and mock yes, OpenAI-compatible no.
    prefill: Option<bool>,
}

/// Which wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
    Mock,
}

#[derive(Debug)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    /// The key itself, read from the environment at load time. Never logged.
    pub api_key: Option<String>,
    /// Serves `/responses` natively (Responses API requests pass through).
    pub responses: bool,
}

/// One upstream model and what it costs.
#[derive(Debug)]
pub struct ModelConfig {
    /// `provider/model`
    pub id: String,
    pub provider: String,
    pub upstream: String,
    pub input_price_per_mtok: f64,
    pub output_price_per_mtok: f64,
    pub context_window: u64,
    pub max_output_tokens: u64,
    pub tags: Vec<String>,
    pub mock: MockBehaviour,
    /// Continues an assistant message at the end of the messages (used by mid-stream rescue).
    pub prefill: bool,
    /// Served by a `mock` provider (in-process, no key): not a real model.
    pub mock_provider: bool,
}

impl ModelConfig {
    /// The served model's prices.
    pub fn price(&self) -> Price {
        Price {
            input_per_mtok: self.input_price_per_mtok,
            output_per_mtok: self.output_price_per_mtok,
        }
    }

    /// A real model that writes text: not served by a mock provider, not an embedding model.
    /// `auto`'s `"available"` candidates and the default judge are drawn from these.
    pub fn is_real_chat(&self) -> bool {
        !self.mock_provider && !self.id.contains("embedding")
    }

    /// Price of a call in USD.
    pub fn cost_usd(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        self.price()
            .cost_usd(prompt_tokens as f64, completion_tokens as f64)
    }
}

/// The providers of a config by name.
pub type Providers = BTreeMap<String, Arc<ProviderConfig>>;

/// Validates `[providers]`; returns them and the names of optional providers left out.
pub(super) fn providers(
    raw: &BTreeMap<String, FileProvider>,
    src: &Source,
) -> Result<(Providers, HashSet<String>), ConfigError> {
    let err = |key: &str, reason: String| src.err(key, reason);
    let env = src.env;
    // Providers: an optional provider whose key is missing is left out with its models.
    let mut providers = BTreeMap::new();
    let mut skipped = HashSet::new();
    for (name, p) in raw {
        let key = format!("providers.{name}");
        let kind = match p.kind.as_str() {
            "openai" => ProviderKind::OpenAi,
            "anthropic" => ProviderKind::Anthropic,
            "mock" => ProviderKind::Mock,
            other => {
                return Err(err(
                    &format!("{key}.kind"),
                    format!("unknown provider kind {other:?}; expected \"openai\", \"anthropic\" or \"mock\""),
                ))
            }
        };
        let from_env = p
            .base_url_env
            .as_deref()
            .and_then(env)
            .filter(|v| !v.is_empty());
        let base_url = match (from_env.as_ref().or(p.base_url.as_ref()), kind) {
            (Some(u), _) => u.trim_end_matches('/').to_string(),
            (None, ProviderKind::OpenAi) => "https://api.openai.com/v1".into(),
            (None, ProviderKind::Anthropic) => "https://api.anthropic.com/v1".into(),
            (None, ProviderKind::Mock) => String::new(),
        };
        if kind != ProviderKind::Mock
            && !(base_url.starts_with("http://") || base_url.starts_with("https://"))
        {
            return Err(err(
                &format!("{key}.base_url"),
                format!("{base_url:?} is not an http:// or https:// URL"),
            ));
        }
        if p.responses && kind != ProviderKind::OpenAi {
            return Err(err(
                &format!("{key}.responses"),
                "only an OpenAI-kind provider can serve the Responses API natively".into(),
            ));
        }
        let api_key = match &p.api_key_env {
            Some(var) => match env(var).filter(|v| !v.is_empty()) {
                Some(v) => Some(v),
                None if p.optional => {
                    skipped.insert(name.clone());
                    continue;
                }
                None => {
                    return Err(err(
                        &format!("{key}.api_key_env"),
                        format!("environment variable {var} is not set (set it, or mark the provider `optional = true`)"),
                    ))
                }
            },
            None => None,
        };
        providers.insert(
            name.clone(),
            Arc::new(ProviderConfig {
                name: name.clone(),
                kind,
                base_url,
                api_key,
                responses: p.responses,
            }),
        );
    }

    Ok((providers, skipped))
}

/// Validates `[[models]]` against the providers.
pub(super) fn models(
    raw: &[FileModel],
    providers: &BTreeMap<String, Arc<ProviderConfig>>,
    skipped: &HashSet<String>,
    src: &Source,
) -> Result<Vec<Arc<ModelConfig>>, ConfigError> {
    let err = |key: &str, reason: String| src.err(key, reason);
    let mut models: Vec<Arc<ModelConfig>> = Vec::new();
    for (i, m) in raw.iter().enumerate() {
        let key = format!("models[{i}]");
        let Some((provider, name)) = m.id.split_once('/') else {
            return Err(err(
                &format!("{key}.id"),
                format!("model id {:?} must look like \"provider/model\"", m.id),
            ));
        };
        if skipped.contains(provider) {
            continue;
        }
        if !providers.contains_key(provider) {
            return Err(err(
                &format!("{key}.id"),
                format!("model {:?} names provider {provider:?}, which is not defined under [providers]", m.id),
            ));
        }
        if models.iter().any(|x| x.id == m.id) {
            return Err(err(
                &format!("{key}.id"),
                format!("model {:?} is defined twice", m.id),
            ));
        }
        // What the config leaves out comes from the catalog, then from the defaults.
        let known = super::catalog::find(&m.id);
        let input = m
            .input_price_per_mtok
            .or(known.map(|k| k.input))
            .unwrap_or(0.0);
        let output = m
            .output_price_per_mtok
            .or(known.map(|k| k.output))
            .unwrap_or(0.0);
        if input < 0.0 || output < 0.0 {
            return Err(err(&key, "prices must not be negative".into()));
        }
        models.push(Arc::new(ModelConfig {
            id: m.id.clone(),
            provider: provider.to_string(),
            upstream: m
                .upstream
                .clone()
                .or_else(|| known.and_then(|k| k.upstream.clone()))
                .unwrap_or_else(|| name.to_string()),
            input_price_per_mtok: input,
            output_price_per_mtok: output,
            context_window: m
                .context_window
                .or(known.map(|k| k.context))
                .unwrap_or(128_000),
            max_output_tokens: m
                .max_output_tokens
                .or(known.map(|k| k.max_output).filter(|n| *n > 0))
                .unwrap_or(4_096),
            tags: m.tags.clone(),
            mock: m.mock.clone().unwrap_or_default(),
            prefill: m.prefill.unwrap_or_else(|| {
                providers
                    .get(provider)
                    .is_some_and(|p| p.kind != ProviderKind::OpenAi)
            }),
            mock_provider: providers
                .get(provider)
                .is_some_and(|p| p.kind == ProviderKind::Mock),
        }));
    }
    Ok(models)
}

/// Finds a model by id for a config key, or says which models exist.
pub(super) fn find_model(
    models: &[Arc<ModelConfig>],
    key: &str,
    id: &str,
    src: &Source,
) -> Result<Arc<ModelConfig>, ConfigError> {
    models.iter().find(|m| m.id == id).cloned().ok_or_else(|| {
        src.err(
            key,
            format!(
                "unknown model {id:?}; defined models: {}",
                models
                    .iter()
                    .map(|m| m.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}
