//! The validation stage: the first fit's predictions on the `val` prompts give each
//! candidate's classification metrics, the support threshold below which a prompt is
//! unfamiliar, and the strong-share calibration.

use crate::labelled::Labelled;
use crate::{embed, eval, fit};
use std::collections::{BTreeMap, HashSet};
use switchyard_learn::artifact::{Artifact, Blend, Predicted, GOOD_ANSWER};
use switchyard_learn::schema::manifest::{Classification, SupportThreshold};

/// What validation measured.
pub struct Validation {
    /// Per candidate.
    pub metrics: BTreeMap<String, Classification>,
    pub support: SupportThreshold,
    /// Break-even cost weights of the validation prompts (the strong-share knob).
    pub calibration: Vec<f64>,
    /// Validation prompts.
    pub prompts: usize,
}

pub fn validate(
    probe: &Artifact,
    rows: &[Labelled],
    models: &[&str],
    cache: &embed::Cache,
    blend: &Blend,
) -> Validation {
    let mut seen = HashSet::new();
    let val_prompts: Vec<(&str, &[f32])> = rows
        .iter()
        .filter(|r| r.split == "val" && seen.insert(r.prompt_id.as_str()))
        .map(|r| (r.prompt.as_str(), cache.embedded(&r.text)))
        .collect();
    // One prediction per validation prompt (and prompt-token count): every candidate's row of
    // a prompt reads its own entry from it.
    let mut val_predicted: BTreeMap<(&str, u64, &str), Predicted> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.split == "val") {
        val_predicted
            .entry((
                r.prompt_id.as_str(),
                r.input_tokens,
                r.metadata_json.as_str(),
            ))
            .or_insert_with(|| {
                probe.predict_with(cache.embedded(&r.text), r.input_tokens, &r.metadata)
            });
    }
    // Validation metrics of the blended predictions (and of each part), per candidate.
    let mut val_metrics = BTreeMap::new();
    for (m, model) in models.iter().enumerate() {
        let mut parts: [Vec<(f64, bool)>; 3] = Default::default();
        for r in rows
            .iter()
            .filter(|r| r.split == "val" && r.model == *model)
        {
            let p = &val_predicted[&(
                r.prompt_id.as_str(),
                r.input_tokens,
                r.metadata_json.as_str(),
            )]
                .predictions[m];
            let good = r.quality >= GOOD_ANSWER;
            parts[0].push((p.quality, good));
            parts[1].push((p.quality_linear, good));
            parts[2].push((p.quality_knn, good));
        }
        let mut v = fit::metrics(&parts[0]);
        v.linear_part = Some(Box::new(fit::metrics(&parts[1])));
        v.knn_part = Some(Box::new(fit::metrics(&parts[2])));
        val_metrics.insert(model.to_string(), v);
    }
    // Support: the similarity of validation prompts to the training prompts (it does not
    // depend on the token count); prompts below the 1st percentile are unfamiliar.
    let mut seen = HashSet::new();
    let mut supports: Vec<f64> = val_predicted
        .iter()
        .filter(|((id, _, _), _)| seen.insert(*id))
        .map(|(_, p)| p.support.similarity)
        .collect();
    supports.sort_by(f64::total_cmp);
    let q = |l: f64| (switchyard_learn::score::quantile(&supports, l) * 1e4).round() / 1e4;
    let support = SupportThreshold {
        threshold: q(0.01),
        threshold_quantile: 0.01,
        measure: format!(
            "mean cosine similarity of the {} nearest training prompts",
            blend.support_k
        ),
        computed_on: "validation prompts".into(),
        validation_quantiles: [("p01", 0.01), ("p05", 0.05), ("p50", 0.5)]
            .into_iter()
            .map(|(k, l)| (k.to_string(), q(l)))
            .collect(),
    };
    // The strong-share knob: break-even cost weights of the validation prompts.
    let calibration = eval::learned_calibration(probe, &val_prompts);
    Validation {
        metrics: val_metrics,
        support,
        calibration,
        prompts: val_prompts.len(),
    }
}
