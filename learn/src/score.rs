//! Scoring: predicted cost at the served models' prices, the objective
//! `score = predicted_quality − uncertainty penalty − cost_weight × predicted_cost / reference_cost`, the order that
//! makes the fallback chain (with the policy for unfamiliar prompts), and the strong-share
//! calibration. The server, calibration at training time and the offline evals all score
//! through here.
//!
//! The cost unit ([`reference_cost`]) is what the priciest candidate charges for the artifact's
//! typical request (median training prompt and output lengths), fixed for a candidate set. So
//! a long prompt or a long expected answer costs more units than a short one and needs a larger
//! predicted quality gain to justify the expensive model, while `cost_weight` keeps one meaning:
//! the quality a typical request's strong-model cost must buy.
//!
//! A candidate the artifact has no data for is scored from its configured [`Prior`]; the
//! decision says so (`basis: "prior"`). Guardrails are not evaluated here (they need request
//! metadata and CEL); the gateway fills [`Scored::guardrails`] and [`Scored::eligible`] before
//! [`order`].

use crate::artifact::{Artifact, Predicted, Prediction, Support};
pub use crate::price::Price;
use crate::profile::Profile;
use crate::round6;
use serde::{Deserialize, Serialize};

/// The named knobs and their cost weights (`auto:best`, `auto:balanced`, `auto:cheap`).
pub const PRESETS: [(&str, f64); 3] = [("best", 0.0), ("balanced", 0.1), ("cheap", 0.3)];

/// What is assumed of a candidate with no outcome data: its probability of a good answer and,
/// optionally, its output tokens (default: the mean prediction of the candidates with data).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Prior {
    pub quality: f64,
    pub output_tokens: Option<f64>,
}

/// A candidate as scoring sees it: the served model id, its prices (which decide cost), and
/// the prior used when the artifact has no data for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Priced {
    pub model: String,
    pub price: Price,
    pub prior: Option<Prior>,
}

/// Where a candidate's predicted quality came from.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The artifact's models, trained on outcomes of this candidate.
    #[default]
    Data,
    /// The configured prior: the artifact has no outcomes of this candidate (nor a profile).
    Prior,
    /// The prior as the candidate's ability and the prompt's ease from the artifact's profile
    /// ([`crate::profile`]): a per-prompt prediction without outcomes of this candidate.
    Profile,
}

/// One guardrail's verdict for one candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Verdict {
    pub expression: String,
    pub passed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One candidate as scored for a request.
/// A logged decision of an older build may lack fields; they read as their defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct Scored {
    pub model: String,
    pub basis: Basis,
    pub predicted_quality: f64,
    pub predicted_output_tokens: f64,
    pub predicted_cost_usd: f64,
    /// The served model's prices (what off-policy evaluation re-scores with).
    pub price: Price,
    /// `predicted_cost_usd / reference_cost`: the cost term of the score before the weight.
    pub relative_cost: f64,
    /// Labelled neighbours of this candidate behind the prediction (0 for a prior).
    pub neighbours: usize,
    /// Their summed similarity weights ([`Prediction::evidence`]; 0 for a prior).
    pub evidence: f64,
    /// The standard error of `predicted_quality` ([`Prediction::standard_error`]; for a prior,
    /// one label's standard deviation at it, `sqrt(q (1 − q))`: a prior is a guess).
    pub standard_error: f64,
    /// Subtracted from the score for the prediction's uncertainty ([`Prediction::penalty`]; 0
    /// for a prior, which is taken as configured).
    pub penalty: f64,
    pub guardrails: Vec<Verdict>,
    pub score: f64,
    pub eligible: bool,
}

/// Every candidate scored for one prompt, and the prompt's support.
#[derive(Debug, Clone)]
pub struct Ranked {
    pub candidates: Vec<Scored>,
    pub support: Support,
}

/// What `auto` does with a prompt whose support is below the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Unfamiliar {
    /// The cheapest eligible candidate first (by predicted cost); with cost weight 0 (`auto:best`)
    /// the priciest, as for `strongest`.
    Cheapest,
    /// The priciest eligible candidate first.
    Strongest,
    /// Use the predictions as for any other prompt.
    Predict,
}

impl Unfamiliar {
    pub fn parse(s: &str) -> Option<Unfamiliar> {
        match s {
            "cheapest" => Some(Unfamiliar::Cheapest),
            "strongest" => Some(Unfamiliar::Strongest),
            "predict" => Some(Unfamiliar::Predict),
            _ => None,
        }
    }
}

/// Scores every candidate for one prompt with the artifact's predictions.
pub fn rank(
    artifact: &Artifact,
    candidates: &[Priced],
    (prompt_tokens, embedding, metadata): (u64, &[f32], &[f64]),
    cost_weight: f64,
) -> Ranked {
    let predicted = artifact.predict_with(embedding, prompt_tokens, metadata);
    rank_predicted(artifact, predicted, candidates, prompt_tokens, cost_weight)
}

/// [`rank`] from predictions already made (e.g. [`Artifact::predict_unseen`]).
pub fn rank_predicted(
    artifact: &Artifact,
    predicted: Predicted,
    candidates: &[Priced],
    prompt_tokens: u64,
    cost_weight: f64,
) -> Ranked {
    let reference = reference_cost(artifact, candidates);
    Ranked {
        candidates: rank_predictions(
            &predicted.predictions,
            predicted.ease,
            candidates,
            prompt_tokens,
            cost_weight,
            reference,
        ),
        support: predicted.support,
    }
}

/// The artifact's profile when a decision among `candidates` rests on it alone: none of them
/// has outcome data in the artifact. Its typical open-ended request is then the cost unit, and
/// its judged prompts decide whether a prompt is familiar.
pub fn on_profile<'a>(artifact: &'a Artifact, candidates: &[Priced]) -> Option<&'a Profile> {
    let profile = artifact.weights.profile.as_ref()?;
    candidates
        .iter()
        .all(|c| artifact.outcomes(&c.model) == 0)
        .then_some(profile)
}

/// The objective's cost unit: the largest cost, at the served models' prices, of the artifact's
/// typical request (its `cost_reference` prompt and output tokens; when no candidate has
/// outcome data, its profile's typical open-ended request).
pub fn reference_cost(artifact: &Artifact, candidates: &[Priced]) -> f64 {
    // Among candidates without outcome data, the profile's typical open-ended request.
    let profiled = on_profile(artifact, candidates).and_then(|p| p.reference_tokens);
    let (prompt, output) = match profiled {
        Some((p, o)) => (p as f64, o as f64),
        None => artifact.reference_tokens(),
    };
    candidates
        .iter()
        .map(|p| p.price.cost_usd(prompt, output))
        .fold(0.0, f64::max)
        .max(1e-12)
}

/// Scores candidates from any predictor's per-model quality and output tokens (the learned
/// artifact, or an evaluation baseline such as kNN), and candidates without predictions from
/// their prior: cost from the served model's prices and
/// `score = quality − penalty − cost_weight × cost / reference`. A candidate with neither prediction nor
/// prior is left out. Every candidate starts eligible.
pub fn rank_predictions(
    predictions: &[Prediction],
    ease: Option<f64>,
    candidates: &[Priced],
    prompt_tokens: u64,
    cost_weight: f64,
    reference: f64,
) -> Vec<Scored> {
    let mean_tokens =
        predictions.iter().map(|p| p.output_tokens).sum::<f64>() / predictions.len().max(1) as f64;
    candidates
        .iter()
        .filter_map(|c| {
            let (basis, quality, tokens, (neighbours, evidence, standard_error, penalty)) =
                match predictions.iter().find(|p| p.model == c.model) {
                    Some(p) => (
                        Basis::Data,
                        p.quality,
                        p.output_tokens,
                        (p.neighbours, p.evidence, p.standard_error, p.penalty),
                    ),
                    None => {
                        let prior = c.prior?;
                        let (basis, quality) = match ease {
                            Some(e) => (Basis::Profile, Profile::quality(e, prior.quality)),
                            None => (Basis::Prior, prior.quality),
                        };
                        let q = quality.clamp(0.0, 1.0);
                        (
                            basis,
                            quality,
                            prior.output_tokens.unwrap_or(mean_tokens),
                            (0, 0.0, round6((q * (1.0 - q)).sqrt()), 0.0),
                        )
                    }
                };
            let cost = c.price.cost_usd(prompt_tokens as f64, tokens);
            let quality = round6(quality);
            let relative_cost = round6(cost / reference);
            Some(Scored {
                model: c.model.clone(),
                basis,
                predicted_quality: quality,
                predicted_output_tokens: round6(tokens),
                predicted_cost_usd: cost,
                price: c.price,
                relative_cost,
                neighbours,
                evidence,
                standard_error,
                penalty,
                guardrails: vec![],
                score: round6(quality - penalty - cost_weight * relative_cost),
                eligible: true,
            })
        })
        .collect()
}

/// Orders scored candidates as the fallback chain: eligible first, then by score (stable, so
/// the first listed wins a tie). With `unfamiliar` set (the prompt's support is below the
/// threshold), its policy orders the eligible candidates instead. The first one, if eligible,
/// is the choice.
pub fn order(scored: &mut [Scored], unfamiliar: Option<Unfamiliar>, cost_weight: f64) {
    let by_cost_up = |a: &Scored, b: &Scored| a.relative_cost.total_cmp(&b.relative_cost);
    scored.sort_by(|a, b| {
        let policy = match unfamiliar {
            Some(Unfamiliar::Cheapest) if cost_weight > 0.0 => by_cost_up(a, b),
            Some(Unfamiliar::Cheapest | Unfamiliar::Strongest) => by_cost_up(b, a),
            Some(Unfamiliar::Predict) | None => b.score.total_cmp(&a.score),
        };
        b.eligible.cmp(&a.eligible).then(policy)
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
            model: c.model.clone(),
            price: c.price(),
            prior: None,
        })
        .collect()
}

/// Bound on break-even cost weights, so calibration tables stay finite.
const BREAKEVEN_LIMIT: f64 = 10.0;

/// The largest cost weight at which candidate `strong` still wins this prompt under the
/// [`rank_predictions`] objective (clamped to ±10). The strong-share knob is calibrated on these.
pub fn breakeven(scored: &[Scored], strong: &str) -> f64 {
    let Some(s) = scored.iter().find(|c| c.model == strong) else {
        return -BREAKEVEN_LIMIT;
    };
    let mut bound = BREAKEVEN_LIMIT;
    for c in scored.iter().filter(|c| c.model != strong) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(model: &str, score: f64, relative_cost: f64, eligible: bool) -> Scored {
        Scored {
            model: model.into(),
            basis: Basis::Data,
            predicted_quality: 0.0,
            predicted_output_tokens: 0.0,
            predicted_cost_usd: 0.0,
            price: Price {
                input_per_mtok: 0.0,
                output_per_mtok: 0.0,
            },
            relative_cost,
            neighbours: 0,
            evidence: 0.0,
            standard_error: 0.0,
            penalty: 0.0,
            guardrails: vec![],
            score,
            eligible,
        }
    }

    fn heads(unfamiliar: Option<Unfamiliar>, weight: f64) -> Vec<String> {
        let mut v = vec![
            scored("strong", 0.9, 1.0, true),
            scored("mid", 0.5, 0.3, true),
            scored("cheap", 0.1, 0.01, false),
            scored("cheapest-eligible", 0.2, 0.1, true),
        ];
        order(&mut v, unfamiliar, weight);
        v.into_iter().map(|s| s.model).collect()
    }

    #[test]
    fn unfamiliar_policies_order_eligible_candidates() {
        assert_eq!(heads(None, 0.1)[0], "strong");
        assert_eq!(heads(Some(Unfamiliar::Predict), 0.1)[0], "strong");
        let cheap = heads(Some(Unfamiliar::Cheapest), 0.1);
        assert_eq!(cheap, ["cheapest-eligible", "mid", "strong", "cheap"]);
        assert_eq!(heads(Some(Unfamiliar::Cheapest), 0.0)[0], "strong");
        assert_eq!(heads(Some(Unfamiliar::Strongest), 0.3)[0], "strong");
    }

    #[test]
    fn prior_candidates_are_scored_and_say_so() {
        let preds = vec![Prediction {
            model: "a".into(),
            quality: 0.6,
            quality_linear: 0.6,
            quality_knn: 0.6,
            neighbours: 7,
            evidence: 7.0,
            standard_error: 0.1,
            penalty: 0.0,
            output_tokens: 100.0,
        }];
        let price = Price {
            input_per_mtok: 1.0,
            output_per_mtok: 1.0,
        };
        let cands = vec![
            Priced {
                model: "a".into(),
                price,
                prior: None,
            },
            Priced {
                model: "b".into(),
                price,
                prior: Some(Prior {
                    quality: 0.8,
                    output_tokens: None,
                }),
            },
            Priced {
                model: "c".into(),
                price,
                prior: None,
            },
        ];
        let s = rank_predictions(&preds, None, &cands, 100, 0.0, 1.0);
        assert_eq!(
            s.len(),
            2,
            "a candidate with neither data nor prior is left out"
        );
        assert_eq!(
            (
                s[1].basis,
                s[1].predicted_quality,
                s[1].predicted_output_tokens
            ),
            (Basis::Prior, 0.8, 100.0)
        );
        assert_eq!((s[0].basis, s[0].neighbours), (Basis::Data, 7));
    }
}
