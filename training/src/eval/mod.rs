//! `switchyard-train eval` (also `switchyard eval`): the learned router against static
//! baselines on held-out outcome data, written to `evals/reports/<artifact-version>/`.
//!
//! Every router is a choice of one candidate per prompt at each knob setting. The learned
//! router's choices come from [`switchyard_learn::score::rank`], the server's scoring code, on the
//! same embeddings and request estimates the server computes. The report's metrics are
//! defined in [`metrics`] and restated in `report.md`.

mod baselines;
mod learned;
pub mod metrics;
mod report;
mod subset;
pub(crate) mod svg;

use baselines::{knn_router, rule_router};
pub use learned::learned_calibration;
use learned::{output_token_errors, sweep, validation_table};
pub(crate) use subset::resample;
use subset::{evaluate_subset, SubsetResult};

use crate::labelled::{self, Labelled};
use crate::{embed, outcomes};
use metrics::{summarize, Ends, Point, Summary};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use switchyard_learn::artifact::{artifact_dir, Artifact, Predicted, Prediction, GOOD_ANSWER};
use switchyard_learn::prompt::single_turn_tokens;
use switchyard_learn::score::{
    artifact_candidates, breakeven, calibration_table, cost_weight_for_share, order, rank,
    rank_predictions, reference_cost, Priced, Scored, Unfamiliar, PRESETS,
};

/// Strong-call share targets of the knob sweep: 0, 4, …, 100 % (26 points).
pub fn share_targets() -> Vec<f64> {
    (0..=25).map(|i| i as f64 / 25.0).collect()
}

/// What `eval` needs.
pub struct Args<'a> {
    pub artifact: &'a Path,
    pub data: &'a Path,
    pub cache: &'a Path,
    pub encoder: &'a Path,
    /// `test` (default) or `val`.
    pub partition: &'a str,
    pub reports: &'a Path,
    pub seed: u64,
    pub bootstrap: usize,
    pub threads: usize,
    /// Also write every learned decision (prompt, knob, chosen model) as NDJSON here.
    pub decisions: Option<&'a Path>,
}

/// One prompt with every candidate's observed outcome.
struct Prompt {
    id: String,
    prompt: String,
    text: String,
    source: String,
    /// MMLU subject, MT-Bench category, or the benchmark's one category.
    category: String,
    split: String,
    /// Per candidate (artifact order).
    quality: Vec<f64>,
    cost: Vec<f64>,
    output_tokens: Vec<f64>,
}

/// A router's choices: per knob point, the candidate index chosen for each prompt.
struct Curve {
    name: String,
    knobs: Vec<Value>,
    choices: Vec<Vec<usize>>,
}

/// A line of progress on stderr.
struct Progress {
    what: &'static str,
    total: usize,
    last: usize,
}

impl Progress {
    fn new(what: &'static str, total: usize) -> Progress {
        Progress {
            what,
            total,
            last: usize::MAX,
        }
    }

    fn tick(&mut self, done: usize) {
        let pct = (done * 100).checked_div(self.total).unwrap_or(100) / 5 * 5;
        if pct != self.last {
            self.last = pct;
            eprint!("\r{}: {pct:3}% ({done}/{})", self.what, self.total);
            if done >= self.total {
                eprintln!();
            }
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Groups outcome rows into prompts that have an outcome for every candidate, sorted by id.
/// Fails if a prompt id appears in two splits (the no-leak rule).
fn prompts(rows: Vec<Labelled>, models: &[String]) -> Result<Vec<Prompt>, String> {
    let mut by_id: BTreeMap<String, Prompt> = BTreeMap::new();
    for r in rows {
        let Some(m) = models.iter().position(|m| *m == r.model) else {
            continue;
        };
        let p = by_id.entry(r.prompt_id.clone()).or_insert_with(|| Prompt {
            id: r.prompt_id.clone(),
            prompt: r.prompt.clone(),
            text: r.text.clone(),
            source: r.source.clone(),
            category: r.category.clone(),
            split: r.split.clone(),
            quality: vec![f64::NAN; models.len()],
            cost: vec![f64::NAN; models.len()],
            output_tokens: vec![f64::NAN; models.len()],
        });
        if p.split != r.split {
            return Err(format!(
                "prompt {} is in both the {} and {} splits; the outcome table leaks evaluation prompts",
                r.prompt_id, p.split, r.split
            ));
        }
        p.quality[m] = r.quality;
        p.cost[m] = r.cost_usd;
        p.output_tokens[m] = r.output_tokens as f64;
    }
    Ok(by_id
        .into_values()
        .filter(|p| p.quality.iter().all(|q| !q.is_nan()))
        .collect())
}

/// The sorted-ids hash printed in the report, so two reports can be checked for the same prompts.
fn ids_hash(prompts: &[&Prompt]) -> String {
    let mut ids: Vec<&str> = prompts.iter().map(|p| p.id.as_str()).collect();
    ids.sort_unstable();
    sha256_hex(ids.join("\n").as_bytes())
}

/// The two single models a curve is measured between, by candidate index.
#[derive(Debug, Clone, Copy)]
pub(super) struct Anchors {
    pub cheap: usize,
    pub strong: usize,
}

/// Runs the evaluation and writes the report directory; returns its path.
pub fn run(a: &Args) -> Result<PathBuf, String> {
    let t0 = Instant::now();
    if a.partition != "test" && a.partition != "val" {
        return Err(format!(
            "--partition must be `test` or `val` for eval, not {:?}",
            a.partition
        ));
    }
    let dir = artifact_dir(a.artifact).map_err(|e| e.to_string())?;
    let artifact = Artifact::load(&dir).map_err(|e| e.to_string())?;
    let version = artifact.version().to_string();
    let table = artifact.calibration().ok_or_else(|| {
        format!(
            "{} has no strong-share calibration (trained by an older build); retrain with `switchyard train`",
            dir.display()
        )
    })?;
    if a.partition == "val" && artifact.refitted() {
        return Err(format!(
            "{} was refitted on its validation rows: evaluate it on --partition test (or fit with --no-refit)",
            dir.display()
        ));
    }
    let split_col = Some(artifact.manifest.training_data.split_column.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "split".into());
    let names: Vec<String> = artifact
        .weights
        .candidates
        .iter()
        .map(|c| c.model.clone())
        .collect();
    let strong = names
        .iter()
        .position(|m| m == artifact.strongest())
        .ok_or_else(|| format!("{} has no candidates", dir.display()))?;
    let cheap = (0..names.len())
        .min_by(|&x, &y| {
            let (cx, cy) = (
                &artifact.weights.candidates[x],
                &artifact.weights.candidates[y],
            );
            (cx.output_price_per_mtok, cx.input_price_per_mtok)
                .partial_cmp(&(cy.output_price_per_mtok, cy.input_price_per_mtok))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .unwrap_or(strong);
    let anchors = Anchors { cheap, strong };

    let data_sha =
        sha256_hex(&std::fs::read(a.data).map_err(|e| format!("{}: {e}", a.data.display()))?);
    let df = outcomes::read_parquet(a.data)?;
    let all = prompts(labelled::load(&df, &split_col)?, &names)?;
    let by_split = |s: &str| {
        all.iter()
            .filter(|p| p.split == s)
            .collect::<Vec<&Prompt>>()
    };
    let (train, val, eval) = (by_split("train"), by_split("val"), by_split(a.partition));
    if eval.is_empty() || val.is_empty() || train.is_empty() {
        return Err(format!(
            "{}: split column {split_col:?} needs train, val and {} prompts with outcomes for every candidate ({} / {} / {})",
            a.data.display(),
            a.partition,
            train.len(),
            val.len(),
            eval.len()
        ));
    }

    // Embeddings (cached): the same encoder as the artifact, the same text as the server.
    let texts: Vec<String> = all.iter().map(|p| p.text.clone()).collect();
    let cache = embed::for_artifact(&artifact, a.encoder, a.cache, &texts, a.threads)?;
    let emb = |p: &Prompt| cache.embedded(&p.text);

    let candidates = artifact_candidates(&artifact);
    let targets = share_targets();

    // Learned router: the server's scoring at each calibrated knob point, on val and eval
    // prompts, with the server's default policy for prompts below the support threshold.
    let scored_prompts: Vec<&Prompt> = val.iter().chain(eval.iter()).copied().collect();
    let weights: Vec<f64> = targets
        .iter()
        .map(|s| cost_weight_for_share(&table, *s))
        .collect();
    let reference = reference_cost(&artifact, &candidates);
    let threshold = artifact.support_threshold().unwrap_or(f64::NEG_INFINITY);
    let mut progress = Progress::new("learned router", scored_prompts.len());
    let predicted: Vec<Predicted> = scored_prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            progress.tick(i + 1);
            artifact.predict(emb(p), single_turn_tokens(&p.prompt))
        })
        .collect();
    let (blend, unfamiliar): (Vec<Vec<Prediction>>, Vec<bool>) = predicted
        .into_iter()
        .map(|p| (p.predictions, p.support.similarity < threshold))
        .unzip();
    let sweep_of = |preds: &[Vec<Prediction>], weights: &[f64]| {
        sweep(
            preds,
            &scored_prompts,
            &unfamiliar,
            (&candidates, reference),
            weights,
            &names,
        )
    };
    let learned = sweep_of(&blend, &weights);
    // The server's named knobs on the evaluated prompts.
    let preset_weights: Vec<f64> = PRESETS.iter().map(|(_, w)| *w).collect();
    let preset_choices = sweep_of(&blend, &preset_weights);
    // Each part of the blend alone, with its own validation calibration: why the blend.
    let part = |f: fn(&Prediction) -> f64| -> Vec<Vec<Prediction>> {
        blend
            .iter()
            .map(|ps| {
                ps.iter()
                    .map(|p| Prediction {
                        quality: f(p),
                        ..p.clone()
                    })
                    .collect()
            })
            .collect()
    };
    let nv = val.len();
    let mut part_curves = Vec::new();
    for (label, preds) in [
        ("learned: linear part alone", part(|p| p.quality_linear)),
        (
            "learned: kNN part alone (k=100, shrunk)",
            part(|p| p.quality_knn),
        ),
    ] {
        let t = validation_table(&preds[..nv], &val, (&candidates, reference), &names[strong]);
        let w: Vec<f64> = targets
            .iter()
            .map(|s| cost_weight_for_share(&t, *s))
            .collect();
        part_curves.push(Curve {
            name: label.into(),
            knobs: vec![],
            choices: sweep_of(&preds, &w)
                .iter()
                .map(|c| c[nv..].to_vec())
                .collect(),
        });
    }
    let predicted: Vec<Vec<f64>> = blend
        .iter()
        .map(|ps| ps.iter().map(|p| p.quality).collect())
        .collect();
    let eval_part = |choices: &[Vec<usize>]| -> Vec<Vec<usize>> {
        choices.iter().map(|c| c[nv..].to_vec()).collect()
    };
    let knob_values: Vec<Value> = targets
        .iter()
        .zip(&weights)
        .map(|(s, w)| json!({"strong_share_target": s, "cost_weight": w}))
        .collect();

    // kNN baseline on the same embeddings: k chosen on validation APGR.
    let knn = knn_router(
        (&train, &val, &eval),
        artifact.refitted(),
        &emb,
        &names,
        (&candidates, reference),
        anchors,
        a.threads,
    );

    // Rule-based baseline: keywords, or prompt length at validation quantiles.
    let rule = rule_router(&val, &eval, anchors);

    let oracle: Vec<usize> = eval
        .iter()
        .map(|p| {
            (0..names.len())
                .max_by(|&x, &y| {
                    p.quality[x]
                        .total_cmp(&p.quality[y])
                        .then(p.cost[y].total_cmp(&p.cost[x]))
                })
                .unwrap_or(strong)
        })
        .collect();
    let mut curves = vec![
        Curve {
            name: "learned".into(),
            knobs: knob_values,
            choices: eval_part(&learned),
        },
        knn.1,
        rule,
    ];
    curves.extend(part_curves);

    // Subsets: pooled, subject-balanced (every MMLU subject, MT-Bench category and GSM8K count
    // the same, so one large subject cannot dominate), and each benchmark.
    let ones = vec![1.0; eval.len()];
    let subjects: Vec<String> = eval
        .iter()
        .map(|p| format!("{}/{}", p.source, p.category))
        .collect();
    let balanced =
        crate::fit::balanced_weights(&subjects.iter().map(String::as_str).collect::<Vec<_>>());
    let all_idx: Vec<usize> = (0..eval.len()).collect();
    let mmlu_idx: Vec<usize> = (0..eval.len())
        .filter(|&i| eval[i].source == "mmlu")
        .collect();
    let mut subsets: Vec<(String, Vec<usize>, &[f64])> = vec![
        ("pooled".into(), all_idx.clone(), &ones),
        ("subject-balanced".into(), all_idx, &balanced),
    ];
    if mmlu_idx.len() >= 10 {
        subsets.push(("mmlu-subject-balanced".into(), mmlu_idx, &balanced));
    }
    let mut sources: Vec<&str> = eval.iter().map(|p| p.source.as_str()).collect();
    sources.sort_unstable();
    sources.dedup();
    for s in sources {
        let idx: Vec<usize> = (0..eval.len()).filter(|&i| eval[i].source == s).collect();
        if idx.len() >= 10 {
            subsets.push((s.to_string(), idx, &ones));
        }
    }
    let mut results = Vec::new();
    let mut progress = Progress::new("bootstrap", subsets.len());
    for (i, (name, idx, w)) in subsets.iter().enumerate() {
        results.push(evaluate_subset(
            name,
            idx,
            (&eval, w),
            &curves,
            &oracle,
            names.len(),
            anchors,
            a.seed,
            a.bootstrap,
        ));
        progress.tick(i + 1);
    }
    let presets: Vec<(&str, f64, Point)> = PRESETS
        .iter()
        .zip(&preset_choices)
        .map(|((name, w), choice)| {
            let all: Vec<usize> = (0..eval.len()).collect();
            (
                *name,
                *w,
                subset::point(&choice[nv..], &all, (&eval, &ones), strong),
            )
        })
        .collect();
    let output_errors = output_token_errors(&eval, &blend[nv..], &names);
    let unfamiliar_share =
        unfamiliar[nv..].iter().filter(|u| **u).count() as f64 / eval.len().max(1) as f64;

    // Calibration on the evaluated prompts: predicted P(good) deciles vs observed good rate.
    let calibration: Vec<(String, Vec<report::Decile>)> = names
        .iter()
        .enumerate()
        .map(|(m, name)| {
            let mut pairs: Vec<(f64, f64)> = (0..eval.len())
                .map(|i| {
                    (
                        predicted[nv + i][m],
                        f64::from(u8::from(eval[i].quality[m] >= GOOD_ANSWER)),
                    )
                })
                .collect();
            pairs.sort_by(|x, y| x.0.total_cmp(&y.0));
            let bins = (0..10)
                .filter_map(|b| {
                    let (lo, hi) = (b * pairs.len() / 10, (b + 1) * pairs.len() / 10);
                    let chunk = &pairs[lo..hi];
                    (!chunk.is_empty()).then(|| {
                        let n = chunk.len() as f64;
                        (
                            chunk.iter().map(|c| c.0).sum::<f64>() / n,
                            chunk.iter().map(|c| c.1).sum::<f64>() / n,
                            chunk.len(),
                        )
                    })
                })
                .collect();
            (name.clone(), bins)
        })
        .collect();

    if let Some(path) = a.decisions {
        let mut out = String::new();
        for (i, p) in eval.iter().enumerate() {
            for (k, s) in targets.iter().enumerate() {
                out.push_str(
                    &json!({"prompt_id": p.id, "prompt": p.prompt, "strong_share": s, "cost_weight": weights[k], "chosen": names[curves[0].choices[k][i]]})
                        .to_string(),
                );
                out.push('\n');
            }
        }
        std::fs::write(path, out).map_err(|e| format!("{}: {e}", path.display()))?;
    }

    let out = a.reports.join(&version);
    let ctx = report::Context {
        version: &version,
        artifact_dir: &dir,
        data: a.data,
        data_sha: &data_sha,
        seed: a.seed,
        bootstrap: a.bootstrap,
        split_col: &split_col,
        partition: a.partition,
        sizes: [train.len(), val.len(), eval.len()],
        test_ids: ids_hash(&eval),
        train_val_ids: ids_hash(&train.iter().chain(val.iter()).copied().collect::<Vec<_>>()),
        names: &names,
        strong,
        cheap,
        knn_k: knn.0,
        knobs: &curves[0].knobs,
        presets: &presets,
        subsets: &results,
        calibration: &calibration,
        encoder_id: &artifact.manifest.encoder.id,
        output_errors: &output_errors,
        support: (threshold, unfamiliar_share),
    };
    report::write(&out, &ctx)?;
    eprintln!(
        "wrote {} ({} {} prompts, {:.1}s)",
        out.display(),
        eval.len(),
        a.partition,
        t0.elapsed().as_secs_f64()
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::subset::resample;
    use super::*;

    #[test]
    fn resampling_is_seeded_and_stays_in_the_subset() {
        let subset = vec![3, 5, 8, 13];
        let a = resample(&subset, 42, 7);
        assert_eq!(a, resample(&subset, 42, 7));
        assert_ne!(a, resample(&subset, 43, 7));
        assert!(a.iter().all(|i| subset.contains(i)));
    }

    #[test]
    fn resamples_of_nearby_rounds_are_independent() {
        // For seeds 1, 2 and 42 the resample of round r + j used to be round r's shifted by j
        // draws (over 8 shifts and 300 rounds: 1180, 1180 and 298 such pairs).
        let n = 400;
        let subset: Vec<usize> = (0..n).collect();
        for seed in [1, 2, 42] {
            let rounds: Vec<Vec<usize>> = (0..300).map(|r| resample(&subset, seed, r)).collect();
            for j in 1..=8 {
                for (a, b) in rounds.iter().zip(&rounds[j..]) {
                    let shared = a[j..].iter().zip(b).filter(|(x, y)| x == y).count();
                    assert!(
                        shared < n / 10,
                        "seed {seed}: rounds {j} apart share {shared} draws"
                    );
                }
            }
            // The bootstrap distribution of a mean is centred on it: the median of 300
            // resampled means of 0..n within a fifth of a standard error of the mean.
            let mut means: Vec<f64> = rounds
                .iter()
                .map(|r| r.iter().sum::<usize>() as f64 / n as f64)
                .collect();
            means.sort_by(f64::total_cmp);
            let se = (((n * n - 1) as f64 / 12.0) / n as f64).sqrt();
            let centre = (n - 1) as f64 / 2.0;
            assert!(
                (means[150] - centre).abs() < 0.2 * se,
                "seed {seed}: median {} against {centre} (se {se})",
                means[150]
            );
        }
    }

    #[test]
    fn leaking_prompt_is_refused() {
        let row = |split: &str, model: &str| Labelled {
            prompt_id: "p1".into(),
            prompt: "hi".into(),
            text: "hi".into(),
            source: "mmlu".into(),
            category: "x".into(),
            model: model.into(),
            source_model: model.into(),
            quality: 1.0,
            input_tokens: 4,
            output_tokens: 2,
            cost_usd: 0.0,
            split: split.into(),
            metadata: vec![],
            metadata_json: String::new(),
            propensity: 1.0,
        };
        let models = vec!["a".to_string(), "b".to_string()];
        let err = prompts(vec![row("train", "a"), row("test", "b")], &models)
            .err()
            .unwrap();
        assert!(err.contains("both the train and test splits"), "{err}");
        assert_eq!(
            prompts(vec![row("test", "a"), row("test", "b")], &models)
                .unwrap()
                .len(),
            1
        );
    }
}
