//! Scoring: predicted cost at the served models' prices, the objective
//! `score = predicted_quality − cost_weight × predicted_cost / reference_cost`, the order that
//! makes the fallback chain, and the strong-share calibration. The server, calibration at
//! training time and the offline evals all score through here.
//!
//! The cost unit ([`reference_cost`]) is what the priciest candidate charges for the artifact's
//! typical prompt (median training prompt length), fixed for a candidate set. So a long prompt
//! costs more units than a short one and needs a larger predicted quality gain to justify the
//! expensive model, while `cost_weight` keeps one meaning: the quality a typical prompt's
//! strong-model cost must buy.
//!
//! Guardrails are not evaluated here (they need request metadata and CEL); the gateway fills
//! [`Scored::guardrails`] and [`Scored::eligible`] before [`order`].

use crate::artifact::{Artifact, Prediction};
pub use crate::price::Price;
use serde::Serialize;

/// A candidate as scoring sees it: the artifact's name for it, the served model id, and the
/// served model's prices (which decide cost; the artifact gives tokens and quality).
#[derive(Debug, Clone, PartialEq)]
pub struct Priced {
    pub artifact_model: String,
    pub model: String,
    pub price: Price,
}

/// One guardrail's verdict for one candidate.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub expression: String,
    pub passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One candidate as scored for a request.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    pub model: String,
    pub artifact_model: String,
    pub predicted_quality: f64,
    pub predicted_output_tokens: f64,
    pub predicted_cost_usd: f64,
    /// `predicted_cost_usd / reference_cost`: the cost term of the score before the weight.
    pub relative_cost: f64,
    pub guardrails: Vec<Verdict>,
    pub score: f64,
    pub eligible: bool,
}

/// Scores every candidate for one prompt with the artifact's predictions.
pub fn rank(
    artifact: &Artifact,
    candidates: &[Priced],
    prompt_tokens: u64,
    embedding: &[f32],
    cost_weight: f64,
) -> Vec<Scored> {
    let predictions = artifact.predict(embedding, prompt_tokens);
    let reference = reference_cost(artifact, candidates);
    rank_predictions(
        &predictions,
        candidates,
        prompt_tokens,
        cost_weight,
        reference,
    )
}

/// The objective's cost unit: the largest cost, at the served models' prices, of the artifact's
/// typical prompt (its `cost_reference.prompt_tokens`) with each candidate's predicted output.
pub fn reference_cost(artifact: &Artifact, candidates: &[Priced]) -> f64 {
    let tokens = artifact.reference_prompt_tokens();
    candidates
        .iter()
        .filter_map(|p| {
            let c = artifact
                .weights
                .candidates
                .iter()
                .find(|c| c.model == p.artifact_model)?;
            Some(
                p.price
                    .cost_usd(tokens as f64, c.output_tokens.predict(tokens)),
            )
        })
        .fold(0.0, f64::max)
        .max(1e-12)
}

/// Scores candidates from any predictor's per-model quality and output tokens (the learned
/// artifact, or an evaluation baseline such as kNN): cost from the served model's prices and
/// `score = quality − cost_weight × cost / reference`. Every candidate starts eligible.
pub fn rank_predictions(
    predictions: &[Prediction],
    candidates: &[Priced],
    prompt_tokens: u64,
    cost_weight: f64,
    reference: f64,
) -> Vec<Scored> {
    candidates
        .iter()
        .filter_map(|c| {
            let p = predictions.iter().find(|p| p.model == c.artifact_model)?;
            let cost = c.price.cost_usd(prompt_tokens as f64, p.output_tokens);
            let quality = round6(p.quality);
            let relative_cost = round6(cost / reference);
            Some(Scored {
                model: c.model.clone(),
                artifact_model: c.artifact_model.clone(),
                predicted_quality: quality,
                predicted_output_tokens: round6(p.output_tokens),
                predicted_cost_usd: cost,
                relative_cost,
                guardrails: vec![],
                score: round6(quality - cost_weight * relative_cost),
                eligible: true,
            })
        })
        .collect()
}

/// Orders scored candidates as the fallback chain: eligible first, then by score (stable, so
/// the first listed wins a tie). The first one, if eligible, is the choice.
pub fn order(scored: &mut [Scored]) {
    scored.sort_by(|a, b| {
        b.eligible
            .cmp(&a.eligible)
            .then(b.score.total_cmp(&a.score))
    });
}

/// The artifact's candidates priced as in training, for offline scoring (calibration and
/// evals) without a server config.
pub fn artifact_candidates(artifact: &Artifact) -> Vec<Priced> {
    artifact
        .weights
        .candidates
        .iter()
        .map(|c| Priced {
            artifact_model: c.model.clone(),
            model: c.model.clone(),
            price: c.price(),
        })
        .collect()
}

/// Bound on break-even cost weights, so calibration tables stay finite.
const BREAKEVEN_LIMIT: f64 = 10.0;

/// The largest cost weight at which candidate `strong` still wins this prompt under the
/// [`rank_predictions`] objective (clamped to ±10). The strong-share knob is calibrated on these.
pub fn breakeven(scored: &[Scored], strong: &str) -> f64 {
    let Some(s) = scored.iter().find(|c| c.artifact_model == strong) else {
        return -BREAKEVEN_LIMIT;
    };
    let mut bound = BREAKEVEN_LIMIT;
    for c in scored.iter().filter(|c| c.artifact_model != strong) {
        let dq = s.predicted_quality - c.predicted_quality;
        let dc = s.relative_cost - c.relative_cost;
        let b = if dc > 0.0 {
            dq / dc
        } else if dq >= 0.0 {
            BREAKEVEN_LIMIT
        } else {
            -BREAKEVEN_LIMIT
        };
        bound = bound.min(b);
    }
    bound.clamp(-BREAKEVEN_LIMIT, BREAKEVEN_LIMIT)
}

/// The strong-share calibration stored in an artifact's manifest: break-even cost weights of
/// validation prompts at quantile levels 0, 1, …, 100 %.
pub fn calibration_table(mut breakevens: Vec<f64>) -> Vec<f64> {
    breakevens.sort_by(f64::total_cmp);
    (0..=100)
        .map(|i| quantile(&breakevens, i as f64 / 100.0))
        .collect()
}

/// Linear-interpolated quantile of sorted values.
pub fn quantile(sorted: &[f64], level: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = level.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The cost weight that sends about `share` of prompts (0–1) to the strong candidate, read
/// from a calibration table: the (1 − share) quantile of the break-even weights.
pub fn cost_weight_for_share(table: &[f64], share: f64) -> f64 {
    quantile(table, 1.0 - share)
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}
