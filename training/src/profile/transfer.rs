//! Leave one dataset out: for each public dataset, the profile is fitted on the others and
//! routes the held-out dataset's prompts between the pair every dataset shares (GPT-4 Turbo and
//! Mixtral-8x7B), next to a kNN router fitted on the same other datasets, a random mix and each
//! model alone. The abilities of the pair come from the other datasets too, so nothing of the
//! held-out dataset is seen.

use super::{abilities, fit, Item};
use crate::embed::Cache;
use crate::eval::metrics::apgr;
use crate::outcomes::{STRONG, WEAK};
use serde::Serialize;
use std::collections::HashSet;
use switchyard_learn::profile::{logit, sigmoid, Profile};

/// Neighbours of the kNN baseline.
const K: usize = 20;
/// Strong-share steps of a routing curve.
const STEPS: usize = 50;

/// One held-out dataset's row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Held {
    pub dataset: String,
    pub prompts: usize,
    /// Good-answer rates of each model alone on it (the best single model is the strong one).
    pub strong_alone: f64,
    pub cheap_alone: f64,
    /// Pearson correlation of each method's predicted strong-minus-cheap gap with the observed one.
    pub profile_correlation: f64,
    pub knn_correlation: f64,
    /// APGR of routing by each method's predicted gap (0.5: a random mix).
    pub profile_apgr: f64,
    pub knn_apgr: f64,
    pub random_apgr: f64,
    /// The abilities of the pair learned from the other datasets.
    pub strong_ability: f64,
    pub cheap_ability: f64,
}

/// Runs the leave-one-dataset-out table over `items` (contaminated prompts never evaluated).
pub fn leave_one_out(
    items: &[Item],
    contaminated: &HashSet<String>,
    cache: &Cache,
    seed: u64,
) -> Vec<Held> {
    let mut datasets: Vec<&str> = items.iter().map(|it| it.dataset.as_str()).collect();
    datasets.sort_unstable();
    datasets.dedup();
    datasets
        .iter()
        .filter_map(|d| {
            let train: Vec<&Item> = items.iter().filter(|it| it.dataset != *d).collect();
            let test: Vec<&Item> = items
                .iter()
                .filter(|it| it.dataset == *d && !contaminated.contains(&it.id))
                .filter(|it| pair(it).is_some())
                .collect();
            if test.is_empty() {
                return None;
            }
            let profile = fit(&train, cache, seed);
            let ability = abilities(&train);
            let mean_ability = |model: &str| {
                let l: Vec<f64> = ability
                    .iter()
                    .filter(|((_, m), _)| m == model)
                    .map(|(_, r)| logit(*r))
                    .collect();
                sigmoid(l.iter().sum::<f64>() / l.len().max(1) as f64)
            };
            let (ps, pw) = (mean_ability(STRONG), mean_ability(WEAK));
            let observed: Vec<(f64, f64)> = test.iter().filter_map(|it| pair(it)).collect();
            let gap: Vec<f64> = observed.iter().map(|(s, w)| s - w).collect();
            let profile_gap: Vec<f64> = test
                .iter()
                .map(|it| {
                    let e = profile.ease.value(
                        &crate::fit::Example::new(
                            cache.embedded(&it.text),
                            0.0,
                            it.input_tokens,
                            0,
                        )
                        .x,
                    );
                    Profile::quality(e, ps) - Profile::quality(e, pw)
                })
                .collect();
            let labelled: Vec<(&[f32], f64)> = train
                .iter()
                .filter_map(|it| pair(it).map(|(s, w)| (cache.embedded(&it.text), s - w)))
                .collect();
            let knn_gap: Vec<f64> = test
                .iter()
                .map(|it| knn(cache.embedded(&it.text), &labelled))
                .collect();
            let n = observed.len() as f64;
            let (qs, qw) = (
                observed.iter().map(|o| o.0).sum::<f64>() / n,
                observed.iter().map(|o| o.1).sum::<f64>() / n,
            );
            Some(Held {
                dataset: d.to_string(),
                prompts: observed.len(),
                strong_alone: round3(qs),
                cheap_alone: round3(qw),
                profile_correlation: round3(pearson(&profile_gap, &gap)),
                knn_correlation: round3(pearson(&knn_gap, &gap)),
                profile_apgr: round3(routed_apgr(&profile_gap, &observed)),
                knn_apgr: round3(routed_apgr(&knn_gap, &observed)),
                random_apgr: 0.5,
                strong_ability: round3(ps),
                cheap_ability: round3(pw),
            })
        })
        .collect()
}

/// The held-out table as markdown.
pub fn markdown(rows: &[Held]) -> String {
    let mut s = String::from(
        "| held-out dataset | prompts | GPT-4 alone | Mixtral alone | profile corr | kNN corr | profile APGR | kNN APGR | random APGR |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        s += &format!(
            "| {} | {} | {:.3} | {:.3} | {:+.3} | {:+.3} | {:.3} | {:.3} | {:.3} |\n",
            r.dataset,
            r.prompts,
            r.strong_alone,
            r.cheap_alone,
            r.profile_correlation,
            r.knn_correlation,
            r.profile_apgr,
            r.knn_apgr,
            r.random_apgr
        );
    }
    s
}

/// (strong good, cheap good) on a prompt both answered.
fn pair(it: &Item) -> Option<(f64, f64)> {
    let of = |m: &str| it.outcomes.iter().find(|(x, _)| x == m).map(|(_, g)| *g);
    Some((of(STRONG)?, of(WEAK)?))
}

/// Mean gap of the `K` most similar labelled prompts.
fn knn(e: &[f32], labelled: &[(&[f32], f64)]) -> f64 {
    let mut sims: Vec<(f32, f64)> = labelled
        .iter()
        .map(|(v, g)| (v.iter().zip(e).map(|(a, b)| a * b).sum::<f32>(), *g))
        .collect();
    let k = K.min(sims.len());
    if k == 0 {
        return 0.0;
    }
    sims.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
    sims[..k].iter().map(|s| s.1).sum::<f64>() / k as f64
}

/// APGR of sending the prompts with the largest predicted gap to the strong model, at strong
/// shares 0, 2, …, 100 % (cost: the strong share).
fn routed_apgr(predicted: &[f64], observed: &[(f64, f64)]) -> f64 {
    let mut order: Vec<usize> = (0..observed.len()).collect();
    order.sort_by(|a, b| predicted[*b].total_cmp(&predicted[*a]));
    let n = observed.len();
    let points: Vec<(f64, f64)> = (0..=STEPS)
        .map(|i| {
            let m = (i * n + STEPS / 2) / STEPS;
            let mut strong = vec![false; n];
            for &j in &order[..m] {
                strong[j] = true;
            }
            let q = observed
                .iter()
                .zip(&strong)
                .map(|((s, w), st)| if *st { s } else { w })
                .sum::<f64>()
                / n as f64;
            (i as f64 / STEPS as f64, q)
        })
        .collect();
    let (qs, qw) = (points[STEPS].1, points[0].1);
    apgr(&points, (0.0, qw), (1.0, qs)).unwrap_or(f64::NAN)
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    if va == 0.0 || vb == 0.0 {
        0.0
    } else {
        cov / (va * vb).sqrt()
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Appends the table to the eval report in `dir` (`report.md`) and writes `transfer.json`.
pub fn write(
    dir: &std::path::Path,
    public: &std::path::Path,
    e: &crate::cli::Embedding,
    seed: u64,
) -> Result<(), String> {
    if !super::present(public) {
        return Ok(());
    }
    let (rows, contaminated) = super::public_rows(public)?;
    let items = super::items(&rows);
    let cache = super::embedded(&items, e)?;
    let table = leave_one_out(&items, &contaminated, &cache, seed);
    let json = serde_json::to_string_pretty(&table).map_err(|e| e.to_string())? + "\n";
    let path = dir.join("transfer.json");
    std::fs::write(&path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    let report = dir.join("report.md");
    let mut text =
        std::fs::read_to_string(&report).map_err(|e| format!("{}: {e}", report.display()))?;
    text += &format!(
        "\n## Transfer: leave one dataset out\n\nThe artifact's profile (a prompt's ease, [`switchyard_learn::profile`]) fitted on every public dataset but one, routing the held-out one between GPT-4 Turbo and Mixtral-8x7B (the pair all {} datasets share; their abilities also from the other datasets), next to a kNN router (k = {K}, the mean observed gap of the most similar prompts of the other datasets) and a random mix. APGR: the area under the quality-gap-recovered curve over strong shares 0–100 %; correlation: of the predicted with the observed per-prompt gap. RouteLLM's contaminated prompts are not evaluated.\n\n{}",
        table.len(),
        markdown(&table)
    );
    std::fs::write(&report, text).map_err(|e| format!("{}: {e}", report.display()))?;
    eprintln!(
        "transfer: {} held-out datasets → {}",
        table.len(),
        path.display()
    );
    Ok(())
}
