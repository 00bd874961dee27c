//! An artifact's `manifest.json`: what it was trained on and how, what it measured, and the
//! numbers serving reads (cost reference, support threshold, strong-share calibration). The
//! trainer writes it; the gateway, the evals and the tests read it. Fields are in alphabetical
//! order, as the manifest has always been written.

use crate::knn::Blend;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An artifact's `manifest.json`. Everything but the cost reference is descriptive, so a
/// manifest of an older trainer that lacks a section still loads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Manifest {
    #[serde(default)]
    pub calibration: Option<Calibration>,
    #[serde(default)]
    pub candidates: Vec<CandidateSummary>,
    pub cost_reference: CostReference,
    #[serde(default)]
    pub encoder: EncoderRef,
    #[serde(default)]
    pub feature_spec: String,
    #[serde(default)]
    pub good_answer_threshold: f64,
    #[serde(default)]
    pub hyperparameters: Option<Hyperparameters>,
    /// Models with too few rows to fit, left out of the artifact.
    #[serde(default)]
    pub left_out: Vec<LeftOut>,
    #[serde(default)]
    pub metrics: Option<Metrics>,
    #[serde(default)]
    pub schema_version: u32,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub support: Option<SupportThreshold>,
    #[serde(default)]
    pub training_data: TrainingData,
    #[serde(default)]
    pub version: String,
}

/// The strong-share knob's calibration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct Calibration {
    /// 101 break-even cost weights at validation quantile levels 0–100 %.
    pub breakeven_quantiles: Vec<f64>,
    pub computed_on: String,
    pub prompts: usize,
    pub strong_model: String,
}

/// One candidate as the manifest summarises it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct CandidateSummary {
    /// The share of its training outcomes that were good answers.
    pub base_rate: f64,
    pub input_price_per_mtok: f64,
    pub model: String,
    /// Where its outcomes came from (`routellm:<model>`, `feedback`, ...).
    pub origin: String,
    pub output_price_per_mtok: f64,
    pub rows: usize,
}

/// The typical request at which the objective's cost unit is priced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CostReference {
    #[serde(default)]
    pub computed_on: String,
    pub output_tokens: u64,
    pub prompt_tokens: u64,
}

/// The prompt encoder the artifact was trained with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct EncoderRef {
    pub dimension: usize,
    pub id: String,
    pub max_tokens: usize,
    pub model_sha256: String,
}

/// The hyperparameters chosen, and on what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Hyperparameters {
    pub blend: Blend,
    pub chosen_on: String,
    pub ridge_grid: Vec<f64>,
    /// The ridge strengths chosen per candidate.
    pub ridge_strength: BTreeMap<String, Strengths>,
}

/// The ridge strengths of one candidate's models.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Strengths {
    pub metadata_effect: Option<f64>,
    pub output_tokens: f64,
    pub quality: f64,
}

/// A model left out of the artifact for lack of rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LeftOut {
    pub model: String,
    pub train_rows: usize,
    pub validation_rows: usize,
}

/// What the artifact measured on its validation prompts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Metrics {
    /// Per candidate.
    pub validation: BTreeMap<String, Classification>,
}

/// How well predicted probabilities of a good answer classify the outcomes (all `None`
/// without outcomes; `auc` also with one class only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Classification {
    pub accuracy: Option<f64>,
    pub auc: Option<f64>,
    pub brier: Option<f64>,
    pub ece: Option<f64>,
    /// The same for the kNN part of the blend alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knn_part: Option<Box<Classification>>,
    /// The same for the linear part alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear_part: Option<Box<Classification>>,
    pub log_loss: Option<f64>,
    pub n: usize,
    pub positive_rate: Option<f64>,
}

/// The support below which a prompt counts as unfamiliar.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SupportThreshold {
    #[serde(default)]
    pub computed_on: String,
    #[serde(default)]
    pub measure: String,
    pub threshold: f64,
    #[serde(default)]
    pub threshold_quantile: f64,
    /// `p01`, `p05`, `p50` of the validation prompts' support.
    #[serde(default)]
    pub validation_quantiles: BTreeMap<String, f64>,
}

/// The outcome table the artifact was trained on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct TrainingData {
    pub memory_prompts: usize,
    pub path: String,
    pub prompts_per_split: BTreeMap<String, usize>,
    /// The splits the served artifact was fitted on again after validation (absent: the
    /// validation prompts are still held out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refit_on: Option<Vec<String>>,
    pub rows: usize,
    pub sha256: String,
    pub split_column: String,
}
