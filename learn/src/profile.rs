//! The model-agnostic part of an artifact: a prompt's *ease*, learned from public outcomes of
//! many models on many datasets, so that a candidate the artifact has no outcomes for still gets
//! a per-prompt prediction from its public profile (its prior quality).
//!
//! The model is a Rasch (one-parameter item response) model:
//! `logit P(good answer | prompt x, model m) = ease(x) + logit(ability_m)`, where `ability_m` is
//! the model's probability of a good answer on a typical prompt (its prior, from the catalog or
//! `[auto.priors]`) and `ease(x)` is a ridge regression on the prompt features. An easy prompt
//! (ease ≫ 0) is answered well by every model, so the cheapest wins; on a hard one the
//! abilities' gap shows. Training targets, per prompt: the logit of its smoothed good-answer rate
//! over the models that answered it, minus those models' mean logit ability on its dataset.

use crate::linear::Linear;
use crate::memory::{Memory, Support};
use serde::{Deserialize, Serialize};

/// Probabilities are clamped to `[CLAMP, 1 − CLAMP]` before their logit.
pub const CLAMP: f64 = 0.02;

/// `weights.json`'s `profile`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Profile {
    /// `ease(x)` on the artifact's prompt features.
    pub ease: Linear,
    /// The datasets it was fitted on (`mmlu`, `gsm8k`, `mt_bench`, `arena_bench`, …).
    pub datasets: Vec<String>,
    /// Prompts and (prompt, model) outcomes behind it.
    pub prompts: usize,
    pub outcomes: usize,
    /// The ridge strength chosen on held-out prompts.
    pub lambda: f64,
    /// The open-ended judged prompts (`memory_datasets`) whose embeddings are in `profile.bin`:
    /// a prompt unlike all of them has no public evidence that a stronger model pays off on it,
    /// so a decision among candidates without outcome data treats it as unfamiliar.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub memory_datasets: Vec<String>,
    /// Mean cosine similarity of the `support_k` nearest of those prompts below which a prompt
    /// is unfamiliar: the 5th percentile of the memory prompts' own (leave-one-out) support.
    #[serde(default)]
    pub support_threshold: f64,
    #[serde(default)]
    pub support_k: usize,
    /// The typical open-ended request (median prompt and answer tokens of the memory's
    /// datasets): the cost unit of a decision among candidates without outcome data, whose
    /// traffic is a user's requests rather than the artifact's benchmark questions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_tokens: Option<(u64, u64)>,
    /// `profile.bin`, read with the artifact.
    #[serde(skip)]
    pub memory: Option<Memory>,
}

impl Profile {
    /// The probability of a good answer of a model of prior quality `ability` on a prompt of
    /// ease `ease`.
    pub fn quality(ease: f64, ability: f64) -> f64 {
        sigmoid(ease + logit(ability))
    }
}

impl Profile {
    /// How well the profile's judged prompts cover a prompt (`None` without a memory).
    pub fn support(&self, embedding: &[f32]) -> Option<Support> {
        let memory = self.memory.as_ref()?;
        Some(memory.support(&memory.similarities(embedding), self.support_k.max(1)))
    }
}

pub fn logit(p: f64) -> f64 {
    let p = p.clamp(CLAMP, 1.0 - CLAMP);
    (p / (1.0 - p)).ln()
}

pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_of_zero_ease_gives_each_model_its_prior() {
        assert!((Profile::quality(0.0, 0.8) - 0.8).abs() < 1e-12);
    }

    #[test]
    fn easy_prompts_close_the_gap_and_middling_ones_open_it() {
        let gap = |ease| Profile::quality(ease, 0.9) - Profile::quality(ease, 0.6);
        assert!(gap(3.0) < gap(0.0) / 3.0);
        assert!(gap(-1.0) > gap(3.0));
    }
}
