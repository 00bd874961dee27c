//! An artifact that predicts the same quality and output tokens for every prompt, for tests
//! and demos of the serving path.

use crate::artifact::{Artifact, Blend, Candidate, Linear, Weights, FEATURE_SPEC, SCHEMA_VERSION};
use crate::memory::{Memory, UNKNOWN};
use crate::schema::Manifest;

/// One candidate of [`Artifact::uniform`]: served id, probability of a good answer, output
/// tokens and the price per million tokens (input and output alike).
pub struct UniformCandidate<'a> {
    pub model: &'a str,
    pub quality: f64,
    pub output_tokens: f64,
    pub price_per_mtok: f64,
}

impl Artifact {
    /// An artifact that predicts the same quality and output tokens for every prompt (for tests
    /// and demos of the serving path): zero weights, and a memory of one prompt (`anchor`) that
    /// no candidate has a label for, so the kNN part falls back to each candidate's rate.
    pub fn uniform(
        manifest: Manifest,
        anchor: &[f32],
        candidates: &[UniformCandidate],
    ) -> Artifact {
        let d = anchor.len();
        let zero = |bias: f64| Linear {
            weights: vec![0.0; d + 1],
            bias,
        };
        Artifact {
            manifest,
            weights: Weights {
                schema_version: SCHEMA_VERSION,
                feature_spec: FEATURE_SPEC.into(),
                dimension: d,
                blend: Blend {
                    knn_weight: 0.5,
                    k: 1,
                    shrinkage: 1.0,
                    support_k: 1,
                    similarity_tau: None,
                    pessimism: None,
                },
                metadata: vec![],
                profile: None,
                candidates: candidates
                    .iter()
                    .map(|c| Candidate {
                        model: c.model.into(),
                        origin: "uniform".into(),
                        rows: 0,
                        base_rate: c.quality,
                        input_price_per_mtok: c.price_per_mtok,
                        output_price_per_mtok: c.price_per_mtok,
                        quality: zero(c.quality),
                        output_tokens: zero((1.0 + c.output_tokens).ln()),
                        metadata_mean: vec![],
                    })
                    .collect(),
            },
            memory: Memory::build(&[anchor], vec![UNKNOWN; candidates.len()], candidates.len()),
        }
    }
}
