//! The trained router artifact and its scoring: one implementation used by training (validation
//! metrics), evals and the server.
//!
//! An artifact is a directory `models/router-<version>/` with:
//! - `manifest.json`: schema version, version, encoder id/checksum/dimension, candidates with
//!   prices, feature spec, training-data hash, seed, hyper-parameters and validation metrics;
//! - `weights.json`: per candidate, a logistic model of quality and a log-linear model of output
//!   tokens (format below); no polars or linfa is needed to load it.
//!
//! Features ([`features`]): the prompt embedding scaled by √dimension (unit-variance-ish
//! components, which keeps the optimiser well conditioned) followed by `ln(1 + prompt_tokens) / 8`.
//! Quality: `p = sigmoid(w · x + b)`, the probability of a good answer (quality ≥ 0.75).
//! Output tokens: `exp(a + c · ln(1 + prompt_tokens))`. Cost: prices × tokens.

use crate::price::Price;
use crate::LearnError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Version of the artifact format.
pub const SCHEMA_VERSION: u32 = 1;
/// Human-readable feature spec, stored in the manifest and checked at load.
pub const FEATURE_SPEC: &str =
    "sqrt(dimension) * embedding[dimension] ++ [ln(1 + prompt_tokens) / 8]";
/// Quality at or above which an outcome counts as a good answer for the classifier.
pub const GOOD_ANSWER: f64 = 0.75;

/// The feature vector for a prompt.
pub fn features(embedding: &[f32], prompt_tokens: u64) -> Vec<f64> {
    let scale = (embedding.len() as f64).sqrt();
    let mut x: Vec<f64> = embedding.iter().map(|v| f64::from(*v) * scale).collect();
    x.push((1.0 + prompt_tokens as f64).ln() / 8.0);
    x
}

/// Logistic quality model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Logistic {
    pub weights: Vec<f64>,
    pub bias: f64,
}

impl Logistic {
    pub fn probability(&self, x: &[f64]) -> f64 {
        let z: f64 = self.weights.iter().zip(x).map(|(w, v)| w * v).sum::<f64>() + self.bias;
        1.0 / (1.0 + (-z).exp())
    }
}

/// `output_tokens = exp(intercept + slope · ln(1 + prompt_tokens))`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputTokens {
    pub intercept: f64,
    pub slope: f64,
}

impl OutputTokens {
    pub fn predict(&self, prompt_tokens: u64) -> f64 {
        (self.intercept + self.slope * (1.0 + prompt_tokens as f64).ln()).exp()
    }
}

/// The artifact directory: `dir` itself, or the one named by `dir/LATEST`.
pub fn artifact_dir(dir: &Path) -> Result<PathBuf, LearnError> {
    if dir.join("weights.json").is_file() {
        return Ok(dir.to_path_buf());
    }
    let latest = dir.join("LATEST");
    match std::fs::read_to_string(&latest) {
        Ok(name) => Ok(dir.join(name.trim())),
        Err(_) => Err(LearnError::BadFile(format!(
            "no trained router artifact in {} (no weights.json and no LATEST); create one with `switchyard train` \
             (after `cargo build --release -p switchyard-training`)",
            dir.display()
        ))),
    }
}

/// One candidate model of the artifact.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Candidate {
    pub model: String,
    pub input_price_per_mtok: f64,
    pub output_price_per_mtok: f64,
    pub quality: Logistic,
    pub output_tokens: OutputTokens,
}

impl Candidate {
    /// The prices the candidate was trained with.
    pub fn price(&self) -> Price {
        Price {
            input_per_mtok: self.input_price_per_mtok,
            output_per_mtok: self.output_price_per_mtok,
        }
    }
}

/// `weights.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Weights {
    pub schema_version: u32,
    pub feature_spec: String,
    pub dimension: usize,
    pub candidates: Vec<Candidate>,
}

/// The prediction for one candidate and one prompt.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Prediction {
    pub model: String,
    pub quality: f64,
    pub output_tokens: f64,
    pub cost_usd: f64,
}

/// A loaded artifact.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub manifest: Value,
    pub weights: Weights,
}

impl Artifact {
    /// Loads and checks an artifact directory.
    pub fn load(dir: &Path) -> Result<Artifact, LearnError> {
        let bad = LearnError::BadFile;
        let read = |name: &str| -> Result<Value, LearnError> {
            let p = dir.join(name);
            let text = std::fs::read_to_string(&p).map_err(|e| {
                bad(format!(
                    "cannot read {}: {e}; create an artifact with `switchyard train`",
                    p.display()
                ))
            })?;
            serde_json::from_str(&text)
                .map_err(|e| bad(format!("{} is not valid JSON: {e}", p.display())))
        };
        let manifest = read("manifest.json")?;
        let weights: Weights = serde_json::from_value(read("weights.json")?).map_err(|e| {
            bad(format!(
                "{}/weights.json has the wrong shape: {e}",
                dir.display()
            ))
        })?;
        if weights.schema_version != SCHEMA_VERSION || weights.feature_spec != FEATURE_SPEC {
            return Err(bad(format!(
                "{} has schema {} / features {:?}; this build reads schema {SCHEMA_VERSION} / {FEATURE_SPEC:?}; retrain with `switchyard train`",
                dir.display(),
                weights.schema_version,
                weights.feature_spec
            )));
        }
        if manifest["cost_reference"]["prompt_tokens"]
            .as_u64()
            .is_none()
        {
            return Err(bad(format!(
                "{}/manifest.json has no cost_reference.prompt_tokens (trained by an older build); retrain with `switchyard train`",
                dir.display()
            )));
        }
        for c in &weights.candidates {
            if c.quality.weights.len() != weights.dimension + 1 {
                return Err(bad(format!(
                    "{}: candidate {} has {} weights, expected {}",
                    dir.display(),
                    c.model,
                    c.quality.weights.len(),
                    weights.dimension + 1
                )));
            }
        }
        Ok(Artifact { manifest, weights })
    }

    /// Writes `manifest.json` and `weights.json` (deterministic bytes for the same values).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("manifest.json"),
            serde_json::to_string_pretty(&self.manifest)? + "\n",
        )?;
        std::fs::write(
            dir.join("weights.json"),
            serde_json::to_string(&self.weights)? + "\n",
        )?;
        Ok(())
    }

    /// The artifact version from its manifest.
    pub fn version(&self) -> &str {
        self.manifest["version"].as_str().unwrap_or("unknown")
    }

    /// Prompt tokens of the artifact's typical prompt (`cost_reference.prompt_tokens`, the
    /// median of the training prompts): the size at which the objective's cost unit is priced.
    pub fn reference_prompt_tokens(&self) -> u64 {
        self.manifest["cost_reference"]["prompt_tokens"]
            .as_u64()
            .unwrap_or(0)
    }

    /// The candidate with the highest prices: the "strong" model of the strong-share knob.
    pub fn strongest(&self) -> &str {
        self.weights
            .candidates
            .iter()
            .max_by(|a, b| {
                (a.output_price_per_mtok, a.input_price_per_mtok)
                    .partial_cmp(&(b.output_price_per_mtok, b.input_price_per_mtok))
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .map(|c| c.model.as_str())
            .unwrap_or("")
    }

    /// The strong-share calibration (`manifest.calibration.breakeven_quantiles`, 101 cost
    /// weights at validation quantile levels 0–100 %), if the artifact has one.
    pub fn calibration(&self) -> Option<Vec<f64>> {
        let v = self.manifest["calibration"]["breakeven_quantiles"].as_array()?;
        let table: Vec<f64> = v.iter().filter_map(Value::as_f64).collect();
        (table.len() == 101).then_some(table)
    }

    /// Predicted quality, output tokens and cost of every candidate for one prompt.
    pub fn predict(&self, embedding: &[f32], prompt_tokens: u64) -> Vec<Prediction> {
        let x = features(embedding, prompt_tokens);
        self.weights
            .candidates
            .iter()
            .map(|c| {
                let output_tokens = c.output_tokens.predict(prompt_tokens);
                Prediction {
                    model: c.model.clone(),
                    quality: c.quality.probability(&x),
                    output_tokens,
                    cost_usd: c.price().cost_usd(prompt_tokens as f64, output_tokens),
                }
            })
            .collect()
    }
}
