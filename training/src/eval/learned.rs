//! The learned router as the eval runs it: the server's choice for a prompt, the knob sweep,
//! validation and output-token tables, and the strong-share calibration table.

use super::*;

/// The candidate index the server would choose: the head of the same ordering as its chain.
fn chosen(names: &[String], mut scored: Vec<Scored>, unfamiliar: bool, cost_weight: f64) -> usize {
    order(
        &mut scored,
        unfamiliar.then_some(Unfamiliar::Cheapest),
        cost_weight,
    );
    scored
        .first()
        .filter(|c| c.eligible)
        .and_then(|c| names.iter().position(|n| *n == c.model))
        .unwrap_or(0)
}

/// A predictor's choices at each cost weight (the outer index) for every prompt, ordered as
/// the server orders its chain; `unfamiliar` prompts follow the default policy.
pub(super) fn sweep(
    preds: &[Vec<Prediction>],
    prompts: &[&Prompt],
    unfamiliar: &[bool],
    (candidates, reference): (&[Priced], f64),
    weights: &[f64],
    names: &[String],
) -> Vec<Vec<usize>> {
    weights
        .iter()
        .map(|w| {
            preds
                .iter()
                .zip(prompts)
                .zip(unfamiliar)
                .map(|((ps, p), u)| {
                    let tokens = single_turn_tokens(&p.prompt);
                    chosen(
                        names,
                        rank_predictions(ps, None, candidates, tokens, *w, reference),
                        *u,
                        *w,
                    )
                })
                .collect()
        })
        .collect()
}

/// The strong-share calibration of any predictor from its validation predictions.
pub(super) fn validation_table(
    preds: &[Vec<Prediction>],
    val: &[&Prompt],
    (candidates, reference): (&[Priced], f64),
    strong: &str,
) -> Vec<f64> {
    calibration_table(
        preds
            .iter()
            .zip(val)
            .map(|(ps, p)| {
                let tokens = single_turn_tokens(&p.prompt);
                breakeven(
                    &rank_predictions(ps, None, candidates, tokens, 0.0, reference),
                    strong,
                )
            })
            .collect(),
    )
}

/// Median relative error of predicted output tokens, per benchmark and candidate:
/// (benchmark, model, prompts, median |predicted − observed| / observed, median observed).
pub(super) fn output_token_errors(
    prompts: &[&Prompt],
    preds: &[Vec<Prediction>],
    names: &[String],
) -> Vec<report::OutputError> {
    let mut sources: Vec<&str> = prompts.iter().map(|p| p.source.as_str()).collect();
    sources.sort_unstable();
    sources.dedup();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        switchyard_learn::score::quantile(&v, 0.5)
    };
    let mut out = Vec::new();
    for s in sources {
        for (m, name) in names.iter().enumerate() {
            let pairs: Vec<(f64, f64)> = prompts
                .iter()
                .zip(preds)
                .filter(|(p, _)| p.source == s)
                .map(|(p, ps)| (ps[m].output_tokens, p.output_tokens[m].max(1.0)))
                .collect();
            out.push(report::OutputError {
                source: s.to_string(),
                model: name.clone(),
                n: pairs.len(),
                median_relative_error: median(
                    pairs.iter().map(|(p, o)| (p - o).abs() / o).collect(),
                ),
                median_predicted: median(pairs.iter().map(|(p, _)| *p).collect()),
                median_observed: median(pairs.iter().map(|(_, o)| *o).collect()),
            });
        }
    }
    out
}

/// Break-even weights of the learned router on validation prompts: the artifact's strong-share
/// calibration table (also used by training to write it).
pub fn learned_calibration(artifact: &Artifact, val: &[(&str, &[f32])]) -> Vec<f64> {
    let candidates = artifact_candidates(artifact);
    let strong = artifact.strongest().to_string();
    calibration_table(
        val.iter()
            .map(|(prompt, e)| {
                let tokens = single_turn_tokens(prompt);
                breakeven(
                    &rank(artifact, &candidates, (tokens, e, &[]), 0.0).candidates,
                    &strong,
                )
            })
            .collect(),
    )
}
