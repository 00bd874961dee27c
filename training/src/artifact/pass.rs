//! One pass of fitting: the outcome memory and every candidate's ridge models (quality, the
//! metadata effect, output tokens), with the ridge strengths chosen or given.

use super::MIN_PROPENSITY;
use crate::labelled::{examples, Labelled};
use crate::{embed, fit, outcomes};
use std::collections::{BTreeMap, BTreeSet};
use switchyard_learn::artifact::{Blend, Candidate, GOOD_ANSWER};
use switchyard_learn::hash::stable_hash;
use switchyard_learn::memory::{self, Memory};
use switchyard_learn::schema::manifest::Strengths;

/// One pass of fitting on the rows of the `train` split: the outcome memory, every
/// candidate's models, and the ridge strengths, chosen (quality and metadata effect by
/// cross-validation on the training rows, output tokens on the `val` rows). With `chosen`, the
/// refit: those strengths, on the `train` and `val` rows.
#[allow(
    clippy::expect_used,
    reason = "the rows were kept to the models fitted"
)]
pub fn fit_pass(
    rows: &[Labelled],
    models: &[&str],
    (cache, blend, seed): (&embed::Cache, &Blend, u64),
    (prompt_width, metadata_width): (usize, usize),
    chosen: Option<&BTreeMap<String, Strengths>>,
) -> (Memory, Vec<Candidate>, BTreeMap<String, Strengths>) {
    // The rows fitted on: `train`, and `val` too when refitting.
    let fitted = |r: &Labelled| r.split == "train" || (chosen.is_some() && r.split == "val");
    // The outcome memory: one row per training prompt, a label per candidate. Built first:
    // the metadata effects are fitted on its leave-one-out kNN residuals.
    let mut train_prompts: BTreeMap<&str, (&str, Vec<i8>)> = BTreeMap::new();
    for r in rows.iter().filter(|r| fitted(r)) {
        let m = models
            .iter()
            .position(|m| *m == r.model)
            .expect("a candidate");
        let entry = train_prompts
            .entry(r.prompt_id.as_str())
            .or_insert((r.text.as_str(), vec![memory::UNKNOWN; models.len()]));
        entry.1[m] = if r.quality >= GOOD_ANSWER {
            memory::GOOD
        } else {
            memory::NOT_GOOD
        };
    }
    let memory = Memory::build(
        &train_prompts
            .values()
            .map(|(t, _)| cache.embedded(t))
            .collect::<Vec<_>>(),
        train_prompts
            .values()
            .flat_map(|(_, l)| l.iter().copied())
            .collect(),
        models.len(),
    );
    let mut candidates = Vec::new();
    let mut lambdas = BTreeMap::new();
    // One strength to try, or the whole grid.
    let grid = |model: &str, pick: fn(&Strengths) -> f64, all: &'static [f64]| -> Vec<f64> {
        chosen.map_or(all.to_vec(), |c| vec![pick(&c[model])])
    };
    for (mi, model) in models.iter().enumerate() {
        let mine: Vec<&Labelled> = rows.iter().filter(|r| r.model == *model).collect();
        let sources: BTreeSet<&str> = mine.iter().map(|r| r.source_model.as_str()).collect();
        let (pin, pout) = sources
            .iter()
            .find_map(|s| outcomes::price(s))
            .unwrap_or((0.0, 0.0));
        // Its rows fitted on, and its validation rows.
        let (fitted_mine, val_mine): (Vec<&Labelled>, Vec<&Labelled>) = (
            mine.iter().copied().filter(|r| fitted(r)).collect(),
            mine.iter().copied().filter(|r| r.split == "val").collect(),
        );
        let ((train, train_sources), (val, val_sources)) =
            (examples(&fitted_mine, cache), examples(&val_mine, cache));
        let (train, val): (Vec<&fit::Example>, Vec<&fit::Example>) =
            (train.iter().collect(), val.iter().collect());
        let ones = vec![1.0; train.len()];
        // Its good-answer rate over the traffic, not over the prompts routing sent it: each
        // training outcome weighs 1 / propensity (self-normalised inverse-propensity weighting,
        // propensities clipped at MIN_PROPENSITY), so a model served mostly where the others
        // were predicted to fail (a new model on its prior) is not taken to be that bad
        // everywhere. Its kNN rate shrinks towards this.
        let inverse: Vec<f64> = fitted_mine
            .iter()
            .map(|r| 1.0 / r.propensity.max(MIN_PROPENSITY))
            .collect();
        let base_rate = train
            .iter()
            .zip(&inverse)
            .map(|(e, w)| w * e.good())
            .sum::<f64>()
            / inverse.iter().sum::<f64>();
        let metadata_mean: Vec<f64> = (0..metadata_width)
            .map(|i| train.iter().map(|e| e.x[prompt_width + i]).sum::<f64>() / train.len() as f64)
            .collect();
        // Quality: ridge on the prompt features; then, with metadata features, what the
        // request's metadata adds to the leave-one-out kNN rate of each training prompt (so
        // that a signal which routing has confounded with topics, e.g. calm callers sent to a
        // model on the prompts it is good at, is not credited with the topics' effect).
        let prompt_only = |v: &[&fit::Example]| -> Vec<fit::Example> {
            v.iter().map(|e| e.prompt_part(prompt_width)).collect()
        };
        let ptrain = prompt_only(&train);
        let ptrain: Vec<&fit::Example> = ptrain.iter().collect();
        // Ridge strengths by cross-validation on the training rows (folds by prompt): a
        // candidate with little feedback has a handful of validation rows, too few to choose on.
        let folds: Vec<usize> = fitted_mine
            .iter()
            .map(|r| {
                (stable_hash(&format!("{seed}:cv:{}", r.prompt_id)) % fit::FOLDS as u64) as usize
            })
            .collect();
        let lq = fit::cross_validate(
            &ptrain,
            &folds,
            (fit::Example::good, |v| v.clamp(0.0, 1.0)),
            &grid(model, |s| s.quality, &fit::LAMBDAS),
        );
        let prompt_quality = fit::Gram::new(&ptrain, &ones).ridge(&ptrain, fit::Example::good, lq);
        let (quality, lm) = if metadata_width == 0 {
            (prompt_quality, None)
        } else {
            // Each training prompt's kNN rate without its own row: what the neighbours say
            // without the metadata, the baseline its effect is fitted against.
            let rtrain: Vec<fit::Example> = train
                .iter()
                .zip(&fitted_mine)
                .map(|(e, r)| {
                    let embedding = cache.embedded(&r.text);
                    let knn = fit::knn_left_out(&memory, blend, (mi, base_rate), embedding);
                    e.metadata_part(prompt_width, e.good() - knn)
                })
                .collect();
            let rtrain: Vec<&fit::Example> = rtrain.iter().collect();
            let lm = fit::cross_validate(
                &rtrain,
                &folds,
                (|e: &fit::Example| e.quality, |v| v),
                &grid(
                    model,
                    |s| s.metadata_effect.unwrap_or(0.0),
                    &fit::EFFECT_LAMBDAS,
                ),
            );
            let effect =
                fit::Gram::new(&rtrain, &ones).ridge(&rtrain, |e: &fit::Example| e.quality, lm);
            (
                prompt_quality.with_effect(&effect.weights, &metadata_mean),
                Some(lm),
            )
        };
        // Answer lengths: every benchmark weighs the same, so the few long-answer prompts
        // (MT-Bench) are not drowned by the one-letter MMLU answers.
        // Chosen on the same balance of validation prompts.
        let balanced = fit::balanced_weights(&train_sources);
        let (output_tokens, lt, _) = fit::fit_best(
            &fit::Gram::new(&train, &balanced).light_penalty_from(prompt_width),
            &train,
            (&val, &fit::balanced_weights(&val_sources)),
            (fit::Example::log_output, |v| v),
            &grid(model, |s| s.output_tokens, &fit::LAMBDAS),
        );
        if chosen.is_none() {
            eprintln!("fitted {model}: ridge strength {lq} (quality), {lt} (output tokens), {lm:?} (metadata effect)");
        }
        lambdas.insert(
            model.to_string(),
            Strengths {
                quality: lq,
                output_tokens: lt,
                metadata_effect: lm,
            },
        );
        candidates.push(Candidate {
            model: model.to_string(),
            origin: sources
                .iter()
                .map(|s| {
                    if s == model {
                        "feedback".to_string()
                    } else {
                        format!("routellm:{s}")
                    }
                })
                .collect::<Vec<_>>()
                .join("+"),
            rows: train.len(),
            base_rate,
            input_price_per_mtok: pin,
            output_price_per_mtok: pout,
            quality,
            output_tokens,
            metadata_mean,
        });
    }
    (memory, candidates, lambdas)
}
