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
    /// Image and audio parts the request had: the decision embedded its text only.
    #[serde(default, skip_serializing_if = "NonText::is_empty")]
    pub non_text_parts: NonText,
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
