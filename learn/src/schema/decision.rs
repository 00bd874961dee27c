//! The learned part of a routing decision (`metadata.routing.learned` and the log's `learned`):
//! every candidate's prediction and score, the served model's exploration propensity and the
//! artifact version, which training and off-policy evaluation read back.

use crate::artifact::Support;
use crate::score::{Scored, Unfamiliar};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The learned part of a routing decision. A decision logged by an older build may lack
/// fields; they read as their defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct LearnedDecision {
    pub candidates: Vec<Scored>,
    pub chosen: String,
    pub knob: String,
    pub cost_weight: f64,
    /// The prompt's token estimate the costs were predicted for.
    pub prompt_tokens: u64,
    /// How well the training data covers the prompt, and whether it is below `min_support`.
    pub support: Support,
    pub unfamiliar: bool,
    /// The `[auto] unfamiliar` policy that ordered the candidates, when the prompt is unfamiliar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Unfamiliar>,
    /// Exploration: whether the served model was explored and its propensity.
    pub exploration: Draw,
    pub artifact_version: String,
    pub encoder_id: String,
    pub embedding_cache_hit: bool,
    /// Time in the decision itself (embedding, prediction, guardrails, ranking).
    pub decision_ms: f64,
    /// Time waiting for a decision slot on the bounded blocking pool.
    pub queue_ms: f64,
    /// `[auto] latency_weight` and the live TTFT p50 (ms) each candidate's score paid for.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub live_ttft_ms: BTreeMap<String, f64>,
    /// The savings ledger's baseline: the candidate the request would have gone to without
    /// `auto` (`[auto] baseline`, else the eligible candidate with the highest predicted cost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// Budget pacing: the caller's key spent its budget faster than its window passed, so the
    /// cost weight was raised (`cost_weight` is after pacing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pacing: Option<Pacing>,
    /// Image and audio parts the request had: the decision embedded its text only.
    #[serde(default, skip_serializing_if = "NonText::is_empty")]
    pub non_text_parts: NonText,
}

/// Budget pacing of one decision: the budget furthest ahead of its window's time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Pacing {
    /// `daily` or `monthly`.
    pub budget: String,
    /// Share of the budget spent, and share of its window (UTC day or month) gone.
    pub spent_share: f64,
    pub elapsed_share: f64,
    /// How far spend runs ahead of time, in [0, 1]: `(spent − elapsed) / (1 − elapsed)`; 1 when
    /// the budget is spent.
    pub pressure: f64,
    /// The cost weight before pacing raised it to `w + (1 − w) × pressure`.
    pub cost_weight_before: f64,
}

impl Pacing {
    /// The pacing of a budget `spent_share` spent with `elapsed_share` of its window gone, or
    /// `None` when spend is not ahead of time.
    pub fn of(budget: &str, spent_share: f64, elapsed_share: f64) -> Option<Pacing> {
        let elapsed = elapsed_share.clamp(0.0, 1.0);
        let ahead = spent_share - elapsed;
        if ahead <= 0.0 {
            return None;
        }
        let pressure = (ahead / (1.0 - elapsed).max(1e-6)).clamp(0.0, 1.0);
        Some(Pacing {
            budget: budget.to_string(),
            spent_share: (spent_share * 1e4).round() / 1e4,
            elapsed_share: (elapsed * 1e4).round() / 1e4,
            pressure: (pressure * 1e4).round() / 1e4,
            cost_weight_before: 0.0,
        })
    }

    /// The cost weight `w` raised by this pacing.
    pub fn paced(&self, w: f64) -> f64 {
        w + (1.0 - w) * self.pressure
    }
}

/// The image and audio parts of a request's messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NonText {
    pub images: usize,
    pub audio: usize,
}

impl NonText {
    pub fn is_empty(&self) -> bool {
        self.images == 0 && self.audio == 0
    }
}

/// What exploration did to one decision (by default: nothing, the served model chosen with
/// probability 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct Draw {
    /// Whether the served model is an explored (non-top) candidate.
    pub explored: bool,
    /// Whether it was explored by the onboarding share (`[auto] onboard`: a candidate with few
    /// outcomes in the artifact) rather than by `explore`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub onboarding: bool,
    /// Probability with which the policy chose the served model: `1 − share − onboarded` for
    /// the top candidate, `share × weight / (sum of the non-top weights)` for an explored one,
    /// plus, for a candidate with few outcomes, its onboarding chance; 1 when exploration was
    /// off, opted out, over budget or had nothing to choose from.
    pub propensity: f64,
    /// Why exploration did not apply, when it was configured but did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<Cow<'static, str>>,
}

impl Default for Draw {
    fn default() -> Draw {
        Draw {
            explored: false,
            onboarding: false,
            propensity: 1.0,
            skipped: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Pacing;

    #[test]
    fn pacing_rises_with_spend_ahead_of_time_and_is_absent_on_pace() {
        // Half the day gone, a quarter spent: on pace, no pacing.
        assert!(Pacing::of("daily", 0.25, 0.5).is_none());
        // Half the day gone, three quarters spent: half way from on pace to spent.
        let p = Pacing::of("daily", 0.75, 0.5).unwrap();
        assert_eq!(p.pressure, 0.5);
        assert!((p.paced(0.1) - 0.55).abs() < 1e-12);
        // Spent: the knob at its cheapest end.
        assert_eq!(Pacing::of("monthly", 1.0, 0.3).unwrap().paced(0.1), 1.0);
    }
}
