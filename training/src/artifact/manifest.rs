//! The manifest stage: the artifact's version (a hash of what it was fitted from) and its
//! `manifest.json`.

use super::data::{self, Rows};
use super::validate::Validation;
use crate::fit;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use switchyard_learn::artifact::{Artifact, FEATURE_SPEC, GOOD_ANSWER, SCHEMA_VERSION};
use switchyard_learn::embed::{Embed, Encoder};
use switchyard_learn::memory::Memory;
use switchyard_learn::schema::manifest::{
    Calibration, CandidateSummary, EncoderRef, Hyperparameters, LeftOut, Manifest, Metrics,
    Strengths, TrainingData,
};

/// The artifact version: the first 12 hex digits of a hash of its weights, its memory, the
/// data's hash, the seed, the split column and the encoder.
pub fn version(
    weights_json: &str,
    memory: &Memory,
    rows: &Rows,
    seed: u64,
    encoder: &str,
) -> String {
    let mut h = Sha256::new();
    h.update(weights_json.as_bytes());
    h.update(memory.to_bytes());
    h.update(format!("{}|{seed}|{}|{encoder}", rows.hash, rows.split).as_bytes());
    format!("{:x}", h.finalize())[..12].to_string()
}

/// What a fit knows when it writes the manifest.
pub struct Fitted<'a> {
    /// The served artifact (its manifest holds the cost reference so far).
    pub artifact: &'a Artifact,
    pub encoder: &'a Encoder,
    pub data: &'a Path,
    pub rows: &'a Rows,
    pub seed: u64,
    pub left_out: Vec<LeftOut>,
    pub strengths: BTreeMap<String, Strengths>,
    pub validation: Validation,
    /// Whether the served artifact was fitted again on the `train` and `val` rows.
    pub refit: bool,
}

pub fn manifest(version: &str, f: Fitted) -> Manifest {
    Manifest {
        schema_version: SCHEMA_VERSION,
        version: version.to_string(),
        encoder: EncoderRef {
            id: f.encoder.id().to_string(),
            model_sha256: f.encoder.manifest.model_sha256.clone(),
            dimension: f.encoder.dimension(),
            max_tokens: f.encoder.manifest.max_tokens,
        },
        candidates: f
            .artifact
            .weights
            .candidates
            .iter()
            .map(|c| CandidateSummary {
                model: c.model.clone(),
                origin: c.origin.clone(),
                rows: c.rows,
                base_rate: (c.base_rate * 1e4).round() / 1e4,
                input_price_per_mtok: c.input_price_per_mtok,
                output_price_per_mtok: c.output_price_per_mtok,
            })
            .collect(),
        feature_spec: FEATURE_SPEC.into(),
        good_answer_threshold: GOOD_ANSWER,
        training_data: TrainingData {
            path: f.data.display().to_string(),
            sha256: f.rows.hash.clone(),
            rows: f.rows.rows.len(),
            split_column: f.rows.split.clone(),
            prompts_per_split: data::split_sizes(&f.rows.rows),
            memory_prompts: f.artifact.memory.rows,
            // Only a refitted artifact names the rows it was refitted on, so that one fitted
            // with `--no-refit` has the manifest of the artifacts from before refitting existed.
            refit_on: f.refit.then(|| vec!["train".into(), "val".into()]),
        },
        seed: f.seed,
        left_out: f.left_out,
        hyperparameters: Some(Hyperparameters {
            ridge_strength: f.strengths,
            ridge_grid: fit::LAMBDAS.to_vec(),
            chosen_on:
                "validation squared error (output tokens: every benchmark weighted the same)".into(),
            blend: f.artifact.weights.blend.clone(),
        }),
        metrics: Some(Metrics {
            validation: f.validation.metrics,
        }),
        cost_reference: f.artifact.manifest.cost_reference.clone(),
        support: Some(f.validation.support),
        calibration: Some(Calibration {
            strong_model: f.artifact.strongest().to_string(),
            computed_on: "validation prompts".into(),
            prompts: f.validation.prompts,
            breakeven_quantiles: f.validation.calibration,
        }),
    }
}
