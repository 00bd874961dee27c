//! The trained router artifact and its predictions: one implementation used by training
//! (validation metrics, calibration), evals and the server.
//!
//! An artifact is a directory `models/router-<version>/` with:
//! - `manifest.json`: schema version, version, encoder id/checksum/dimension, candidates (served
//!   model ids, where their data came from), feature spec, training-data hash, seed,
//!   hyper-parameters, the cost reference, the support threshold and validation metrics;
//! - `weights.json`: the blend settings and, per candidate, a linear quality model and a
//!   linear model of ln(1 + output tokens) on the shared prompt features;
//! - `memory.bin`: the training prompts' embeddings and every candidate's labels for them
//!   ([`crate::memory`]).
//!
//! Candidates are served model ids (`mock/smart`, `openai/gpt-4o`): benchmark outcomes are
//! attached to the served model they stand for at import, so adding a candidate is data plus
//! configuration, never code. Per candidate, on top of the shared prompt representation (the
//! embedding):
//! - quality: `knn_weight × kNN rate + (1 − knn_weight) × clamp(linear, 0, 1)`, where the kNN rate
//!   is the candidate's good-answer rate over the `k` most similar training prompts it has a label
//!   for (a tenth of its labelled prompts, at least 5, when it has fewer than `10 k`: a model with
//!   little production feedback is judged by the prompts most like this one, not by its overall
//!   rate), shrunk towards its overall rate by `shrinkage` pseudo-counts and shifted by what the
//!   linear model learned the request's metadata does to the candidate (the neighbours do not see
//!   metadata), and the linear part is a ridge regression of "good answer" on the features
//!   ([`features`], then the metadata indicators);
//! - output tokens: `exp(ridge prediction of ln(1 + tokens)) − 1`, so the content of the prompt
//!   (an essay request, a multiple-choice letter) sets the predicted length, not only its size.
//!
//! The support of a decision is the mean cosine similarity of the `support_k` nearest training
//! prompts: how well the training data covers the prompt.

pub use crate::features::{features, metadata_features, metadata_value, MetadataFeature};
pub use crate::knn::Blend;
use crate::knn::{knn_rate, standard_error};
pub use crate::linear::Linear;
use crate::memory::Memory;
pub use crate::memory::Support;
use crate::price::Price;
use crate::profile::Profile;
use crate::round6;
use crate::schema::manifest::Manifest;
use crate::LearnError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Version of the artifact format.
pub const SCHEMA_VERSION: u32 = 2;
/// Human-readable feature spec, stored in the manifest and checked at load.
pub const FEATURE_SPEC: &str =
    "sqrt(dimension) * embedding[dimension] ++ [ln(1 + prompt_tokens) / 8]";
/// Quality at or above which an outcome counts as a good answer.
pub const GOOD_ANSWER: f64 = 0.75;

/// One candidate (a served model id) of the artifact.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Candidate {
    pub model: String,
    /// Where its outcomes came from, e.g. `routellm:gpt-4-1106-preview` or `feedback`.
    pub origin: String,
    /// Training prompts with an outcome for it.
    pub rows: usize,
    /// Its good-answer rate over those prompts.
    pub base_rate: f64,
    /// Prices its training costs were computed with (offline evals score with these).
    pub input_price_per_mtok: f64,
    pub output_price_per_mtok: f64,
    pub quality: Linear,
    /// Predicts ln(1 + output tokens).
    pub output_tokens: Linear,
    /// Mean of each metadata indicator over its training rows: the mix its neighbours' labels
    /// were observed under, so the kNN rate is shifted by the request's metadata relative to
    /// that mix. Empty (artifacts before this field): shifted from zero.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metadata_mean: Vec<f64>,
}

impl Candidate {
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
    pub blend: Blend,
    pub candidates: Vec<Candidate>,
    /// Metadata keys used as features, after the prompt features (none for most artifacts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metadata: Vec<MetadataFeature>,
    /// The prompt's ease for candidates without outcome data ([`crate::profile`]); absent in
    /// artifacts trained without public multi-model data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
}

/// The prediction for one candidate and one prompt.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Prediction {
    pub model: String,
    /// Probability of a good answer (the blend).
    pub quality: f64,
    pub quality_linear: f64,
    pub quality_knn: f64,
    /// Labelled neighbours of this candidate among the `k` nearest training prompts.
    pub neighbours: usize,
    /// How much this candidate's labels near the prompt count: the sum of its neighbours'
    /// similarity weights (a neighbour as close as the nearest training prompt counts 1).
    /// Exploration favours candidates with little evidence where the request is.
    pub evidence: f64,
    /// The standard error of `quality`: its kNN part's, `knn_weight × sqrt(q̃ (1 − q̃)) ×
    /// spread` (see [`Blend::pessimism`]). Exploration weighs candidates by it.
    pub standard_error: f64,
    /// What scoring subtracts for the uncertainty of `quality`: `pessimism × standard_error`.
    pub penalty: f64,
    pub output_tokens: f64,
}

/// Every candidate's prediction for a prompt and the prompt's support.
#[derive(Debug, Clone, PartialEq)]
pub struct Predicted {
    pub predictions: Vec<Prediction>,
    pub support: Support,
    /// The prompt's ease ([`crate::profile`]), when the artifact has a profile.
    pub ease: Option<f64>,
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

/// A loaded artifact.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub manifest: Manifest,
    pub weights: Weights,
    pub memory: Memory,
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
        let manifest: Manifest = serde_json::from_value(read("manifest.json")?).map_err(|e| {
            bad(format!(
                "{}/manifest.json has the wrong shape: {e}; retrain with `switchyard train`",
                dir.display()
            ))
        })?;
        let raw = read("weights.json")?;
        let schema = raw["schema_version"].as_u64().unwrap_or(0);
        if schema != u64::from(SCHEMA_VERSION) || raw["feature_spec"] != FEATURE_SPEC {
            return Err(bad(format!(
                "{} has schema {schema} / features {}; this build reads schema {SCHEMA_VERSION} / {FEATURE_SPEC:?}; retrain with `switchyard train`",
                dir.display(),
                raw["feature_spec"]
            )));
        }
        let weights: Weights = serde_json::from_value(raw).map_err(|e| {
            bad(format!(
                "{}/weights.json has the wrong shape: {e}",
                dir.display()
            ))
        })?;
        let memory = Memory::read(&dir.join("memory.bin"))?;
        let mut weights = weights;
        if let Some(p) = weights
            .profile
            .as_mut()
            .filter(|p| !p.memory_datasets.is_empty())
        {
            p.memory = Some(Memory::read(&dir.join("profile.bin"))?);
        }
        let d = weights.dimension;
        if memory.dimension != d || memory.models != weights.candidates.len() {
            return Err(bad(format!(
                "{}: memory.bin holds {} models of dimension {}, weights.json {} of dimension {d}; retrain with `switchyard train`",
                dir.display(),
                memory.models,
                memory.dimension,
                weights.candidates.len()
            )));
        }
        // The embedding, the prompt-length feature, then one indicator per metadata value.
        let width = d
            + 1
            + weights
                .metadata
                .iter()
                .map(|f| f.values.len())
                .sum::<usize>();
        for c in &weights.candidates {
            if c.quality.weights.len() != width || c.output_tokens.weights.len() != width {
                return Err(bad(format!(
                    "{}: candidate {} has {} / {} weights, expected {}",
                    dir.display(),
                    c.model,
                    c.quality.weights.len(),
                    c.output_tokens.weights.len(),
                    width
                )));
            }
        }
        Ok(Artifact {
            manifest,
            weights,
            memory,
        })
    }

    /// Writes `manifest.json`, `weights.json` and `memory.bin` (the same bytes for the same values).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("memory.bin"), self.memory.to_bytes())?;
        if let Some(m) = self
            .weights
            .profile
            .as_ref()
            .and_then(|p| p.memory.as_ref())
        {
            std::fs::write(dir.join("profile.bin"), m.to_bytes())?;
        }
        std::fs::write(
            dir.join("weights.json"),
            serde_json::to_string(&self.weights)? + "\n",
        )?;
        std::fs::write(
            dir.join("manifest.json"),
            serde_json::to_string_pretty(&self.manifest)? + "\n",
        )?;
        Ok(())
    }

    /// The artifact version from its manifest.
    pub fn version(&self) -> &str {
        if self.manifest.version.is_empty() {
            "unknown"
        } else {
            &self.manifest.version
        }
    }

    /// The artifact's typical prompt (`cost_reference`: median training prompt tokens and
    /// median observed output tokens): the request at which the objective's cost unit is priced.
    pub fn reference_tokens(&self) -> (f64, f64) {
        let r = &self.manifest.cost_reference;
        (r.prompt_tokens as f64, r.output_tokens as f64)
    }

    /// The support below which a prompt is unfamiliar (`support.threshold` in the manifest).
    pub fn support_threshold(&self) -> Option<f64> {
        self.manifest.support.as_ref().map(|s| s.threshold)
    }

    /// Whether the artifact was refitted on its validation rows after validation
    /// (`training_data.refit_on` in the manifest): they are no longer held out from it.
    pub fn refitted(&self) -> bool {
        self.manifest.training_data.refit_on.is_some()
    }

    /// How many training outcomes of served model `model` the artifact has (0 for a model it
    /// does not know).
    pub fn outcomes(&self, model: &str) -> usize {
        self.weights
            .candidates
            .iter()
            .find(|c| c.model == model)
            .map_or(0, |c| c.rows)
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
        let table = &self.manifest.calibration.as_ref()?.breakeven_quantiles;
        (table.len() == 101).then(|| table.clone())
    }

    /// The metadata indicators this artifact's linear models read, for a request's metadata.
    pub fn metadata_features(&self, metadata: &Map<String, Value>) -> Vec<f64> {
        metadata_features(&self.weights.metadata, metadata)
    }

    /// Predicted quality and output tokens of every candidate for one prompt, and its support.
    pub fn predict(&self, embedding: &[f32], prompt_tokens: u64) -> Predicted {
        self.predict_with(embedding, prompt_tokens, &[])
    }

    /// [`Artifact::predict`] with the request's metadata indicators ([`Artifact::metadata_features`]).
    pub fn predict_with(
        &self,
        embedding: &[f32],
        prompt_tokens: u64,
        metadata: &[f64],
    ) -> Predicted {
        self.predict_from(
            self.memory.similarities(embedding),
            embedding,
            prompt_tokens,
            metadata,
        )
    }

    /// [`Artifact::predict_with`] as if the prompt had not been trained on: its own memory rows
    /// are left out ([`crate::memory::leave_out_same`]). Off-policy evaluation re-decides logged
    /// prompts this way, so that an artifact is not credited with recalling their outcomes.
    pub fn predict_unseen(
        &self,
        embedding: &[f32],
        prompt_tokens: u64,
        metadata: &[f64],
    ) -> Predicted {
        let mut similarities = self.memory.similarities(embedding);
        crate::memory::leave_out_same(&mut similarities);
        self.predict_from(similarities, embedding, prompt_tokens, metadata)
    }

    fn predict_from(
        &self,
        similarities: Vec<f32>,
        embedding: &[f32],
        prompt_tokens: u64,
        metadata: &[f64],
    ) -> Predicted {
        let b = &self.weights.blend;
        // Deep enough that every candidate's neighbours usually lie in it (labels that cover
        // half the rows or more); a candidate's neighbours beyond it are searched for in full.
        let ranked = self
            .memory
            .ranked(&similarities, 2 * b.k.max(b.support_k) + 32);
        let support = ranked.support(b.support_k);
        let mut x = features(embedding, prompt_tokens);
        x.extend_from_slice(metadata);
        let predictions = self
            .weights
            .candidates
            .iter()
            .enumerate()
            .map(|(m, c)| {
                let near = knn_rate(
                    &self.memory,
                    b,
                    (m, c.base_rate),
                    (&ranked, support.nearest),
                );
                let linear = c.quality.value(&x).clamp(0.0, 1.0);
                // The kNN rate does not see metadata: shift it by what the linear model learned
                // the request's metadata does to this candidate, relative to the mix of
                // metadata its labels were observed under (0 without metadata features).
                let prompt_width = x.len() - metadata.len();
                let metadata_effect: f64 = c
                    .quality
                    .weights
                    .iter()
                    .skip(prompt_width)
                    .zip(metadata)
                    .enumerate()
                    .map(|(i, (w, v))| w * (v - c.metadata_mean.get(i).copied().unwrap_or(0.0)))
                    .sum();
                let knn = (near.rate + metadata_effect).clamp(0.0, 1.0);
                let quality = b.knn_weight * knn + (1.0 - b.knn_weight) * linear;
                // The blend's uncertainty is its kNN part's: the linear part is a ridge fit
                // over all the candidate's rows, its variance small next to a few neighbours'.
                let error = b.knn_weight * standard_error(knn, near.evidence, near.spread);
                Prediction {
                    model: c.model.clone(),
                    quality,
                    standard_error: round6(error),
                    penalty: round6(b.pessimism.unwrap_or(0.0) * error),
                    quality_linear: linear,
                    quality_knn: knn,
                    neighbours: near.neighbours,
                    evidence: round6(near.evidence),
                    output_tokens: (c.output_tokens.value(&x).exp() - 1.0).max(1.0),
                }
            })
            .collect();
        let prompt_width = x.len() - metadata.len();
        let ease = self
            .weights
            .profile
            .as_ref()
            .map(|p| p.ease.value(&x[..prompt_width]));
        Predicted {
            predictions,
            support,
            ease,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{GOOD, NOT_GOOD, SAME_PROMPT, UNKNOWN};
    use crate::uniform::UniformCandidate;
    use serde_json::json;

    /// Two candidates on one topic (prompts along the first axis): "many" has 200 labels there,
    /// 90 % good, "few" 3, all good; a far prompt (second axis) carries labels of neither kind.
    fn two_candidates(pessimism: Option<f64>) -> Artifact {
        let unit = |v: [f32; 3]| {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.map(|x| x / n).to_vec()
        };
        let near: Vec<Vec<f32>> = (0..200)
            .map(|i| unit([1.0, 0.002 * i as f32, 0.0]))
            .collect();
        let mut rows: Vec<&[f32]> = near.iter().map(Vec::as_slice).collect();
        let far = [0.0f32, 0.0, 1.0];
        rows.push(&far);
        let mut labels = Vec::new();
        for i in 0..200 {
            labels.push(if i % 10 == 0 { NOT_GOOD } else { GOOD });
            labels.push(if i < 3 { GOOD } else { UNKNOWN });
        }
        labels.extend([UNKNOWN, UNKNOWN]);
        let mut a = Artifact::uniform(
            Manifest::default(),
            &far,
            &[
                UniformCandidate {
                    model: "many",
                    quality: 0.8,
                    output_tokens: 10.0,
                    price_per_mtok: 1.0,
                },
                UniformCandidate {
                    model: "few",
                    quality: 0.8,
                    output_tokens: 10.0,
                    price_per_mtok: 1.0,
                },
            ],
        );
        a.memory = Memory::build(&rows, labels, 2);
        a.weights.blend = Blend {
            knn_weight: 1.0,
            k: 100,
            shrinkage: 5.0,
            support_k: 5,
            similarity_tau: Some(0.1),
            pessimism,
        };
        a
    }

    #[test]
    fn evidence_counts_close_labels_and_pessimism_discounts_thin_ones() {
        // The first training prompt of `two_candidates`.
        let query = [1.0f32, 0.0, 0.0];
        let p = two_candidates(Some(1.0)).predict(&query, 10);
        let (many, few) = (&p.predictions[0], &p.predictions[1]);
        assert!(many.evidence > 5.0 * few.evidence.max(0.1), "{p:?}");
        assert!(
            few.quality > many.quality,
            "three good labels rate higher: {p:?}"
        );
        assert!(
            few.penalty > 2.0 * many.penalty && many.penalty > 0.0,
            "{p:?}"
        );
        assert!(
            few.quality - few.penalty < many.quality - many.penalty,
            "on three labels the thin candidate does not win: {p:?}"
        );
        let plain = two_candidates(None).predict(&query, 10);
        assert!(plain.predictions.iter().all(|x| x.penalty == 0.0));
        // Leaving the prompt's own rows out: a query equal to a training prompt no longer
        // sees its label.
        let a = two_candidates(None);
        let seen = a.predict(&query, 10);
        let unseen = a.predict_unseen(&query, 10, &[]);
        assert!(seen.support.nearest > 0.999, "{seen:?}");
        assert!(unseen.support.nearest < SAME_PROMPT as f64, "{unseen:?}");
        assert!(unseen.predictions[1].evidence < seen.predictions[1].evidence);
    }

    #[test]
    fn metadata_indicators_follow_the_spec() {
        let spec = vec![
            MetadataFeature {
                key: "emotion".into(),
                values: vec!["calm".into(), "frustrated".into()],
            },
            MetadataFeature {
                key: "tier".into(),
                values: vec!["1".into(), "2".into()],
            },
        ];
        let m = |v: serde_json::Value| v.as_object().unwrap().clone();
        assert_eq!(
            metadata_features(&spec, &m(json!({"emotion": "frustrated", "tier": 2}))),
            vec![0.0, 1.0, 0.0, 1.0]
        );
        assert_eq!(
            metadata_features(&spec, &m(json!({"emotion": "angry"}))),
            vec![0.0; 4],
            "unseen values and missing keys set nothing"
        );
    }
}
