//! The variables CEL expressions see — one builder for router conditions and learned-routing
//! guardrails: `request.*` (facts about the request), `metadata.*`, each metadata key whose
//! name is an identifier as a bare variable, and, for guardrails, `model.*` (the candidate).
//! The names `request`, `metadata` and `model` always mean these, whatever the metadata holds.

use crate::cel::Bindings;
use crate::config::ModelConfig;
use crate::format::request::ChatRequest;
use crate::live::Estimate;
use serde_json::{json, Value};

/// Names a metadata key cannot take as a bare variable.
const RESERVED: [&str; 3] = ["request", "metadata", "model"];

/// The facts about a request that expressions read as `request.*`.
fn request_facts(req: &ChatRequest) -> Value {
    json!({
        "model": req.model,
        "message_count": req.messages().len(),
        "prompt_tokens": req.prompt_tokens,
        "has_tools": req.has_tools(),
        "last_user_message": req.last_user_text(),
        "user": req.user.clone().unwrap_or_default(),
        "stream": req.stream,
        "has_images": req.media.images > 0,
        "has_audio": req.media.audio > 0,
    })
}

/// The `model.*` facts that come from the live estimates.
const LIVE_FACTS: [&str; 4] = [
    "ttft_p50_ms",
    "latency_p50_ms",
    "error_rate",
    "live_samples",
];

/// Whether an expression's text names a live fact (so its candidates' estimates are needed).
pub fn reads_live(source: &str) -> bool {
    LIVE_FACTS.iter().any(|f| source.contains(f))
}

/// What a guardrail reads as `model.*` for a candidate: its config and its live estimates
/// (`ttft_p50_ms`, `latency_p50_ms`, `error_rate`: 0 when it has no recent attempts, which
/// `live_samples` tells).
pub fn model_facts(model: &ModelConfig, live: &Estimate) -> Value {
    json!({
        "id": model.id, "provider": model.provider, "input_price_per_mtok": model.input_price_per_mtok,
        "output_price_per_mtok": model.output_price_per_mtok, "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens, "tags": model.tags,
        "ttft_p50_ms": live.ttft_p50_ms.unwrap_or(0.0), "latency_p50_ms": live.latency_p50_ms.unwrap_or(0.0),
        "error_rate": live.error_rate.unwrap_or(0.0), "live_samples": live.samples,
    })
}

/// The variables of one request, built once and read by every expression evaluated for it.
pub struct Vars<'a> {
    req: &'a ChatRequest,
    facts: Value,
    metadata: Value,
}

impl<'a> Vars<'a> {
    pub fn of(req: &'a ChatRequest) -> Vars<'a> {
        Vars {
            req,
            facts: request_facts(req),
            metadata: Value::Object(req.metadata.clone()),
        }
    }

    /// The request's variables, bound once for every expression evaluated for it (a guardrail
    /// adds `model` for each candidate with [`Bindings::with`]).
    pub fn bindings(&self) -> Bindings<'static> {
        let mut vars: Vec<(&str, &Value)> = self
            .req
            .metadata
            .iter()
            .filter(|(k, _)| is_identifier(k) && !RESERVED.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        vars.push(("request", &self.facts));
        vars.push(("metadata", &self.metadata));
        Bindings::new(&vars)
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
