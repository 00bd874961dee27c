//! `[judge]`: an LLM judge that grades a sample of `auto` answers off the request path; its
//! scores are stored as feedback with `source = "judge"`.

use super::models::ModelConfig;
use super::routers::RouterConfig;
use super::source::{ConfigError, Source};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The rubric used when `[judge] rubric` is not set.
pub const DEFAULT_RUBRIC: &str = "You grade an AI assistant's answer to a user's request. Judge correctness, helpfulness and completeness for what was asked. Reply with only a number between 0 (useless or wrong) and 1 (excellent).";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileJudge {
    model: Option<String>,
    sample_rate: Option<f64>,
    rubric: Option<String>,
    budget_usd_per_hour: Option<f64>,
    max_queue: Option<usize>,
    concurrency: Option<usize>,
    retries: Option<u32>,
    pairwise: Option<bool>,
}

/// The validated `[judge]` section.
#[derive(Debug, Clone)]
pub struct JudgeConfig {
    /// What grades: a served model id or `router/<name>` (with its fallbacks), never `auto`.
    pub model: String,
    /// Share of served `auto` requests that are judged.
    pub sample_rate: f64,
    pub rubric: String,
    /// Judging stops for the rest of the clock hour once its cost reaches this.
    pub budget_usd_per_hour: Option<f64>,
    /// Judgements waiting at most; more are dropped and counted.
    pub max_queue: usize,
    /// Judgements in flight at most.
    pub concurrency: usize,
    /// Further tries of a judgement that failed or answered without a score.
    pub retries: u32,
    /// Also answer the request with the runner-up candidate (a shadow request, off the request
    /// path) and ask the judge which answer is better: both models get a label for the prompt.
    pub pairwise: bool,
}

/// `[judge] model = "cheapest"`.
pub const CHEAPEST: &str = "cheapest";

/// The real chat model (not a mock, not an embedding model) with the lowest output price (then
/// input price), in config order on ties.
fn cheapest_real(models: &[Arc<ModelConfig>]) -> Option<String> {
    models
        .iter()
        .filter(|m| m.is_real_chat())
        .min_by(|a, b| {
            (a.output_price_per_mtok, a.input_price_per_mtok)
                .partial_cmp(&(b.output_price_per_mtok, b.input_price_per_mtok))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .map(|m| m.id.clone())
}

pub(super) fn judge(
    raw: Option<&FileJudge>,
    models: &[Arc<ModelConfig>],
    routers: &BTreeMap<String, Arc<RouterConfig>>,
    src: &Source,
) -> Result<Option<JudgeConfig>, ConfigError> {
    let Some(j) = raw else {
        return Ok(None);
    };
    let model = j.model.clone().ok_or_else(|| {
        src.err(
            "judge.model",
            "name the model that grades, e.g. model = \"openai/gpt-4o\" (a served model or router/<name>), or \"cheapest\"".into(),
        )
    })?;
    // `cheapest`: the cheapest real model the keys unlock; no judge when none does.
    let model = if model == CHEAPEST {
        match cheapest_real(models) {
            Some(m) => m,
            None => return Ok(None),
        }
    } else {
        model
    };
    let known = match model.strip_prefix("router/") {
        Some(r) => routers.contains_key(r),
        None => models.iter().any(|m| m.id == model),
    };
    if !known {
        return Err(src.err(
            "judge.model",
            format!("{model:?} is not a served model or router/<name> of this config (`auto` cannot judge)"),
        ));
    }
    let sample_rate = j.sample_rate.unwrap_or(0.1);
    if !(0.0..=1.0).contains(&sample_rate) {
        return Err(src.err(
            "judge.sample_rate",
            format!("{sample_rate} is not a share of requests in [0, 1]"),
        ));
    }
    if let Some(b) = j.budget_usd_per_hour.filter(|b| b.is_nan() || *b < 0.0) {
        return Err(src.err(
            "judge.budget_usd_per_hour",
            format!("{b} is not an amount of USD (≥ 0)"),
        ));
    }
    if j.rubric.as_deref().is_some_and(|r| r.trim().is_empty()) {
        return Err(src.err(
            "judge.rubric",
            "is empty; leave it out for the default rubric".into(),
        ));
    }
    Ok(Some(JudgeConfig {
        model,
        sample_rate,
        rubric: j.rubric.clone().unwrap_or_else(|| DEFAULT_RUBRIC.into()),
        budget_usd_per_hour: j.budget_usd_per_hour,
        max_queue: j.max_queue.unwrap_or(1000).max(1),
        concurrency: j.concurrency.unwrap_or(2).max(1),
        retries: j.retries.unwrap_or(1),
        pairwise: j.pairwise.unwrap_or(false),
    }))
}
