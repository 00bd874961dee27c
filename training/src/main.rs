//! `switchyard-train` (also `switchyard train`): outcome data → embeddings → predictors →
//! a versioned router artifact under `models/router-<version>/`.
//!
//! - `import`: RouteLLM outcome files + logged requests with feedback → `data/outcomes.parquet`
//! - `fit`: outcome table → embedding cache → linfa models → artifact, manifest and report
//! - `eval`: an artifact against static baselines on held-out outcomes → `evals/reports/<version>/`
//! - no subcommand: import, then fit

mod embed;
mod eval;
mod fit;
mod outcomes;

use clap::{Parser, ValueEnum};
use polars::prelude::*;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;
use switchyard_learn::artifact::{
    Artifact, Candidate, Weights, FEATURE_SPEC, GOOD_ANSWER, SCHEMA_VERSION,
};
use switchyard_learn::embed::{Embed, Encoder};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Step {
    /// Build the outcome table (Parquet) from the benchmark data and logged feedback.
    Import,
    /// Train a router artifact from the outcome table.
    Fit,
    /// Import, then fit.
    All,
    /// Evaluate an artifact against static baselines on held-out outcomes.
    Eval,
}

#[derive(Parser)]
#[command(
    name = "switchyard-train",
    about = "Train Switchyard's learned router from outcome data"
)]
struct Cli {
    #[arg(value_enum, default_value = "all")]
    step: Step,
    /// RouteLLM outcome data (mmlu/, gsm8k/, mt_bench/).
    #[arg(long, default_value = "data/routellm")]
    src: PathBuf,
    /// Gateway log dir with requests-*.ndjson and feedback-*.ndjson.
    #[arg(long, default_value = "logs")]
    logs: PathBuf,
    /// The outcome table (written by import, read by fit).
    #[arg(long, default_value = "data/outcomes.parquet")]
    data: PathBuf,
    /// Seed of the split assignment.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The prompt encoder: models/encoder-potion (potion-base-8M, static) or models/encoder
    /// (MiniLM, ONNX).
    #[arg(long, default_value = "models/encoder-potion")]
    encoder: PathBuf,
    #[arg(long, default_value = "data/cache/embeddings.parquet")]
    cache: PathBuf,
    /// Directory that receives router-<version>/.
    #[arg(long, default_value = "models")]
    out: PathBuf,
    /// fit: the split column, `split` (random by prompt, default) or `split_subject` (whole
    /// subjects held out). eval: the side to evaluate, `test` (default) or `val`; the split
    /// column is the artifact's.
    #[arg(long)]
    split: Option<String>,
    /// eval: the artifact (a router-<version> dir, or a dir with LATEST).
    #[arg(long, default_value = "models")]
    artifact: PathBuf,
    /// eval: where report directories are written.
    #[arg(long, default_value = "evals/reports")]
    reports: PathBuf,
    /// eval: bootstrap resamples for the confidence intervals.
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// eval: also write every learned decision (prompt, knob, chosen model) to this NDJSON file.
    #[arg(long)]
    decisions: Option<PathBuf>,
    /// Embedding threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.step {
        Step::Import => import(&cli).map(|_| ()),
        Step::Fit => fit_artifact(&cli).map(|_| ()),
        Step::All => import(&cli).and_then(|_| fit_artifact(&cli).map(|_| ())),
        Step::Eval => eval::run(&eval::Args {
            artifact: &cli.artifact,
            data: &cli.data,
            cache: &cli.cache,
            encoder: &cli.encoder,
            partition: cli.split.as_deref().unwrap_or("test"),
            reports: &cli.reports,
            seed: cli.seed,
            bootstrap: cli.bootstrap,
            threads: cli.threads,
            decisions: cli.decisions.as_deref(),
        })
        .map(|_| ()),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn import(a: &Cli) -> Result<DataFrame, String> {
    let t = Instant::now();
    let (mut rows, contaminated) = outcomes::read_routellm(&a.src)?;
    let models: HashSet<String> = rows.iter().map(|r| r.model.clone()).collect();
    let (feedback, notes) = outcomes::read_feedback(&a.logs, &models)?;
    for n in &notes {
        eprintln!("note: {n}");
    }
    let n_feedback = feedback.len();
    rows.extend(feedback);
    let mut df = outcomes::table(rows, &contaminated, a.seed)?;
    outcomes::write_parquet(&mut df, &a.data)?;
    let summary = df
        .clone()
        .lazy()
        .group_by_stable([col("source"), col("split")])
        .agg([
            col("prompt_id").n_unique().alias("prompts"),
            len().alias("rows"),
        ])
        .sort(["source", "split"], SortMultipleOptions::default())
        .collect()
        .map_err(|e| e.to_string())?;
    eprintln!(
        "imported {} outcome rows ({} from feedback, {} contaminated prompts kept out of test) into {} in {:.1}s\n{summary}",
        df.height(),
        n_feedback,
        contaminated.len(),
        a.data.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(df)
}

/// One outcome row as training and evaluation need it.
pub struct Outcome {
    prompt_id: String,
    prompt: String,
    /// What the encoder sees for the prompt ([`embed::encoder_text`]).
    text: String,
    source: String,
    model: String,
    quality: f64,
    input_tokens: u64,
    output_tokens: u64,
    cost_usd: f64,
    split: String,
}

fn load_outcomes(df: &DataFrame, split_col: &str) -> Result<Vec<Outcome>, String> {
    let s = |n: &str| {
        df.column(n)
            .and_then(|c| c.str().cloned())
            .map_err(|e| format!("column {n}: {e}"))
    };
    let f = |n: &str| {
        df.column(n)
            .and_then(|c| c.cast(&DataType::Float64))
            .and_then(|c| c.f64().cloned())
            .map_err(|e| format!("column {n}: {e}"))
    };
    let (ids, prompts, models, splits, sources) = (
        s("prompt_id")?,
        s("prompt")?,
        s("model")?,
        s(split_col)?,
        s("source")?,
    );
    let (quality, it, ot, cost) = (
        f("quality")?,
        f("input_tokens")?,
        f("output_tokens")?,
        f("cost_usd")?,
    );
    Ok((0..df.height())
        .map(|i| Outcome {
            prompt_id: ids.get(i).unwrap_or("").to_string(),
            prompt: prompts.get(i).unwrap_or("").to_string(),
            text: embed::encoder_text(prompts.get(i).unwrap_or("")),
            source: sources.get(i).unwrap_or("").to_string(),
            model: models.get(i).unwrap_or("").to_string(),
            quality: quality.get(i).unwrap_or(0.0),
            input_tokens: it.get(i).unwrap_or(0.0) as u64,
            output_tokens: ot.get(i).unwrap_or(0.0) as u64,
            cost_usd: cost.get(i).unwrap_or(0.0),
            split: splits.get(i).unwrap_or("").to_string(),
        })
        .collect())
}

fn fit_artifact(a: &Cli) -> Result<PathBuf, String> {
    let (data, seed) = (&a.data, a.seed);
    let t0 = Instant::now();
    let split = a.split.as_deref().unwrap_or("split");
    if split != "split" && split != "split_subject" {
        return Err(format!(
            "--split must be `split` or `split_subject`, not {split:?}"
        ));
    }
    let df = outcomes::read_parquet(data)?;
    let rows = load_outcomes(&df, split)?;
    for (name, want) in [("train", true), ("val", true)] {
        if want && !rows.iter().any(|r| r.split == name) {
            return Err(format!(
                "{}: the {name} split of column {split:?} is empty",
                data.display(),
            ));
        }
    }
    let mut data_hash = Sha256::new();
    let mut lines: Vec<String> = rows
        .iter()
        .map(|r| format!("{}|{}|{}|{}\n", r.prompt_id, r.model, r.quality, r.split))
        .collect();
    lines.sort();
    for l in &lines {
        data_hash.update(l.as_bytes());
    }
    let data_hash = format!("{:x}", data_hash.finalize());

    let encoder = Encoder::load(&a.encoder, a.threads.max(1), 1).map_err(|e| e.to_string())?;
    let mut cache = embed::Cache::load(&a.cache, encoder.id(), encoder.dimension())?;
    let texts: Vec<String> = rows.iter().map(|r| r.text.clone()).collect();
    let t_embed = Instant::now();
    cache.fill(&encoder, &texts, a.threads)?;
    cache.save(&a.cache)?;
    let embed_secs = t_embed.elapsed().as_secs_f64();

    let models: BTreeSet<&str> = rows.iter().map(|r| r.model.as_str()).collect();
    let mut candidates = Vec::new();
    let mut val_metrics = BTreeMap::new();
    let mut alphas = BTreeMap::new();
    let t_fit = Instant::now();
    for model in &models {
        let Some((pin, pout)) = outcomes::price(model) else {
            return Err(format!(
                "{}: model {model:?} has no price in the price table (training/src/outcomes.rs)",
                data.display()
            ));
        };
        let examples: Vec<(fit::Example, &str)> = rows
            .iter()
            .filter(|r| r.model == *model)
            .map(|r| {
                let e = cache.get(&r.text).expect("filled above");
                (
                    fit::Example::new(e, r.quality, r.input_tokens, r.output_tokens),
                    r.split.as_str(),
                )
            })
            .collect();
        let train: Vec<&fit::Example> = examples
            .iter()
            .filter(|(_, s)| *s == "train")
            .map(|(e, _)| e)
            .collect();
        let val: Vec<&fit::Example> = examples
            .iter()
            .filter(|(_, s)| *s == "val")
            .map(|(e, _)| e)
            .collect();
        if train.is_empty() || val.is_empty() {
            return Err(format!("model {model}: empty train or validation split"));
        }
        eprint!("fitting {model}: ");
        // The L2 grid runs on `threads` threads; each fit is independent and deterministic.
        let per_thread = fit::ALPHAS.len().div_ceil(a.threads.max(1));
        let fits: Vec<Result<(f64, f64, switchyard_learn::artifact::Logistic), String>> =
            std::thread::scope(|sc| {
                let handles: Vec<_> = fit::ALPHAS
                    .chunks(per_thread)
                    .map(|alphas| {
                        let (train, val) = (&train, &val);
                        sc.spawn(move || {
                            alphas
                                .iter()
                                .map(|&alpha| {
                                    let m = fit::fit_logistic(train, alpha)?;
                                    Ok((fit::log_loss(&m, val), alpha, m))
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| {
                        h.join()
                            .unwrap_or_else(|_| vec![Err("a fitting thread panicked".to_string())])
                    })
                    .collect()
            });
        let mut best: Option<(f64, f64, switchyard_learn::artifact::Logistic)> = None;
        for f in fits {
            let (loss, alpha, m) = f?;
            eprint!("alpha {alpha} → val log-loss {loss:.4}; ");
            if best.as_ref().is_none_or(|b| loss < b.0) {
                best = Some((loss, alpha, m));
            }
        }
        eprintln!();
        let (_, alpha, quality) = best.expect("ALPHAS is not empty");
        val_metrics.insert(model.to_string(), fit::metrics(&quality, &val));
        alphas.insert(model.to_string(), alpha);
        candidates.push(Candidate {
            model: model.to_string(),
            input_price_per_mtok: pin,
            output_price_per_mtok: pout,
            quality,
            output_tokens: fit::fit_output_tokens(&train),
        });
    }
    let fit_secs = t_fit.elapsed().as_secs_f64();
    let weights = Weights {
        schema_version: SCHEMA_VERSION,
        feature_spec: FEATURE_SPEC.to_string(),
        dimension: encoder.dimension(),
        candidates,
    };
    let weights_json = serde_json::to_string(&weights).map_err(|e| e.to_string())?;
    let version = {
        let mut h = Sha256::new();
        h.update(weights_json.as_bytes());
        h.update(format!("{data_hash}|{seed}|{split}|{}", encoder.id()).as_bytes());
        format!("{:x}", h.finalize())[..12].to_string()
    };
    let split_sizes: BTreeMap<&str, usize> = ["train", "val", "test"]
        .iter()
        .map(|s| {
            (
                *s,
                rows.iter()
                    .filter(|r| r.split == *s)
                    .map(|r| &r.prompt_id)
                    .collect::<HashSet<_>>()
                    .len(),
            )
        })
        .collect();
    // The objective's cost unit is priced at the median training prompt length.
    let cost_reference = {
        let mut seen = HashSet::new();
        let mut tokens: Vec<u64> = rows
            .iter()
            .filter(|r| r.split == "train" && seen.insert(r.prompt_id.as_str()))
            .map(|r| switchyard_learn::prompt::single_turn_tokens(&r.prompt))
            .collect();
        tokens.sort_unstable();
        json!({"prompt_tokens": tokens[tokens.len() / 2], "computed_on": "median of the training prompts"})
    };
    // The strong-share knob: break-even cost weights of the validation prompts.
    let probe = Artifact {
        manifest: json!({ "cost_reference": cost_reference }),
        weights: weights.clone(),
    };
    let mut seen = HashSet::new();
    let val_prompts: Vec<(&str, &[f32])> = rows
        .iter()
        .filter(|r| r.split == "val" && seen.insert(r.prompt_id.as_str()))
        .map(|r| {
            (
                r.prompt.as_str(),
                cache.get(&r.text).expect("filled above").as_slice(),
            )
        })
        .collect();
    let calibration = eval::learned_calibration(&probe, &val_prompts);
    let manifest = json!({
        "schema_version": SCHEMA_VERSION,
        "version": version,
        "encoder": {"id": encoder.id(), "model_sha256": encoder.manifest.model_sha256, "dimension": encoder.dimension(), "max_tokens": encoder.manifest.max_tokens},
        "candidates": weights.candidates.iter().map(|c| json!({"model": c.model, "input_price_per_mtok": c.input_price_per_mtok, "output_price_per_mtok": c.output_price_per_mtok})).collect::<Vec<_>>(),
        "feature_spec": FEATURE_SPEC,
        "good_answer_threshold": GOOD_ANSWER,
        "training_data": {"path": data.display().to_string(), "sha256": data_hash, "rows": rows.len(), "split_column": split, "prompts_per_split": split_sizes},
        "seed": seed,
        "hyperparameters": {"l2_alpha": alphas, "alpha_grid": fit::ALPHAS, "chosen_on": "validation log-loss"},
        "metrics": {"validation": val_metrics},
        "cost_reference": cost_reference,
        "calibration": {"strong_model": probe.strongest(), "computed_on": "validation prompts", "prompts": val_prompts.len(), "breakeven_quantiles": calibration},
    });
    let artifact = Artifact {
        manifest: manifest.clone(),
        weights,
    };
    let dir = a.out.join(format!("router-{version}"));
    artifact
        .write(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(
        dir.join("report.md"),
        report(
            &manifest,
            cache.hits,
            cache.computed,
            embed_secs,
            fit_secs,
            t0.elapsed().as_secs_f64(),
        ),
    )
    .map_err(|e| e.to_string())?;
    // The server's default: the most recently trained artifact.
    // Written then renamed, so a watching server never reads half a name.
    let tmp = a.out.join(".LATEST.tmp");
    std::fs::write(&tmp, format!("router-{version}\n"))
        .and_then(|_| std::fs::rename(&tmp, a.out.join("LATEST")))
        .map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {} (embeddings: {} cached, {} computed in {embed_secs:.1}s; fit {fit_secs:.1}s; total {:.1}s)",
        dir.display(),
        cache.hits,
        cache.computed,
        t0.elapsed().as_secs_f64()
    );
    for (m, v) in &val_metrics {
        eprintln!(
            "  {m}: validation accuracy {} AUC {} Brier {} ECE {}",
            v["accuracy"], v["auc"], v["brier"], v["ece"]
        );
    }
    println!("{}", dir.display());
    Ok(dir)
}

fn report(
    m: &serde_json::Value,
    hits: usize,
    computed: usize,
    embed_secs: f64,
    fit_secs: f64,
    total: f64,
) -> String {
    let mut r = String::new();
    let _ = writeln!(
        r,
        "# Router artifact {}\n",
        m["version"].as_str().unwrap_or("")
    );
    let _ = writeln!(
        r,
        "- Encoder: `{}` (dimension {}), features: `{}`",
        m["encoder"]["id"].as_str().unwrap_or(""),
        m["encoder"]["dimension"],
        m["feature_spec"].as_str().unwrap_or("")
    );
    let _ = writeln!(
        r,
        "- Training data: `{}` ({} rows, sha256 `{}`), split column `{}`, seed {}",
        m["training_data"]["path"].as_str().unwrap_or(""),
        m["training_data"]["rows"],
        m["training_data"]["sha256"].as_str().unwrap_or(""),
        m["training_data"]["split_column"].as_str().unwrap_or(""),
        m["seed"]
    );
    let _ = writeln!(
        r,
        "- Prompts per split: {}",
        m["training_data"]["prompts_per_split"]
    );
    let _ = writeln!(
        r,
        "- Label: good answer when quality ≥ {}; L2 strength chosen on validation log-loss from {}",
        m["good_answer_threshold"], m["hyperparameters"]["alpha_grid"]
    );
    let _ = writeln!(r, "- Time: embeddings {hits} cached + {computed} computed in {embed_secs:.1}s; fitting {fit_secs:.1}s; total {total:.1}s\n");
    let _ = writeln!(r, "## Validation metrics\n\n| model | n | positive rate | accuracy | AUC | Brier | ECE | log-loss | L2 alpha |\n|---|---|---|---|---|---|---|---|---|");
    if let Some(v) = m["metrics"]["validation"].as_object() {
        for (model, x) in v {
            let _ = writeln!(
                r,
                "| {model} | {} | {} | {} | {} | {} | {} | {} | {} |",
                x["n"],
                x["positive_rate"],
                x["accuracy"],
                x["auc"],
                x["brier"],
                x["ece"],
                x["log_loss"],
                m["hyperparameters"]["l2_alpha"][model]
            );
        }
    }
    r
}
