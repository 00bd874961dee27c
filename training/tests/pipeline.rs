//! End to end on a fixture of real rows: import (with logged feedback) → fit → the artifact
//! loads and predicts; determinism; grouped splits; warm embedding cache.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "tests and benches"
)]

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use switchyard_learn::artifact::Artifact;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn train(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard-train"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "switchyard-train {args:?} failed:\n{stderr}"
    );
    String::from_utf8_lossy(&out.stdout).to_string() + &stderr
}

/// A gateway log dir with three served requests and feedback on them (one for a model the
/// benchmark data does not know, one for a request that is not in the log, one for a request
/// logged with a propensity outside (0, 1]).
fn write_logs(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let req = |id: &str, model: &str, text: &str| {
        let mut r = json!({"request_id": id, "model": model, "attempts": [{"model": model, "success": true}],
               "prompt": [{"role": "user", "content": text}], "prompt_tokens": 20, "completion_tokens": 40,
               "metadata": {"plan": if id == "r1" { "pro" } else { "free" }}});
        if id == "r3" {
            // A damaged log: a propensity no policy has.
            r["learned"] = json!({"exploration": {"explored": false, "propensity": 1.7}});
        }
        r.to_string()
    };
    std::fs::write(
        dir.join("requests-0001.ndjson"),
        [
            req("r1", "mock/smart", "Explain the Krebs cycle briefly."),
            req("r2", "mock/other", "hello"),
            req("r3", "mock/fast", "What is 17 * 23?"),
        ]
        .join("\n")
            + "\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("feedback-0001.ndjson"),
        [
            json!({"request_id": "r1", "source": "user", "score": 0.0, "model": "mock/smart"}),
            json!({"request_id": "r1", "source": "user", "score": 1.0, "model": "mock/smart"}),
            json!({"request_id": "r2", "source": "user", "score": 1.0, "model": "mock/other"}),
            json!({"request_id": "r3", "source": "judge", "score": 0.25, "model": "mock/fast"}),
            json!({"request_id": "r9", "source": "user", "score": 1.0, "model": "mock/smart"}),
        ]
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join("\n")
            + "\n",
    )
    .unwrap();
}

#[test]
fn import_fit_load_predict_deterministically() {
    let tmp = std::env::temp_dir().join(format!("sy-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let logs = tmp.join("logs");
    write_logs(&logs);
    let fixture = root().join("training/tests/fixtures/routellm-small");
    let data = tmp.join("outcomes.parquet");
    let common = |out: &Path| {
        vec![
            "--src".to_string(),
            fixture.display().to_string(),
            "--logs".into(),
            logs.display().to_string(),
            "--data".into(),
            data.display().to_string(),
            "--cache".into(),
            tmp.join("cache.parquet").display().to_string(),
            "--encoder".into(),
            root().join("models/encoder").display().to_string(),
            "--out".into(),
            out.display().to_string(),
            "--audit".into(),
            tmp.join("audit.md").display().to_string(),
        ]
    };
    let args1 = common(&tmp.join("a"));
    let log1 = train(&args1.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        log1.contains("1 feedback row(s) name a request id that is not in the request log"),
        "feedback for an unknown request is counted: {log1}"
    );
    assert!(
        log1.contains("1 feedback row(s) answer requests whose logged propensity (learned.exploration.propensity) is outside (0, 1]"),
        "a propensity outside (0, 1] is counted: {log1}"
    );
    assert!(
        log1.contains("model mock/other: 1 training and 0 validation rows")
            || log1.contains("model mock/other: 0 training and 1 validation rows")
            || log1.contains("model mock/other: 0 training and 0 validation rows"),
        "a model with too little feedback is left out, and said so: {log1}"
    );

    // The outcome table: feedback joined (last per request and source), no prompt on both sides.
    let df = polars::prelude::LazyFrame::scan_parquet(
        polars::prelude::PlRefPath::new(data.to_string_lossy().as_ref()),
        Default::default(),
    )
    .unwrap()
    .collect()
    .unwrap();
    let col = |n: &str| df.column(n).unwrap().str().unwrap().clone();
    let (ids, sources, splits, subj) = (
        col("prompt_id"),
        col("source"),
        col("split"),
        col("split_subject"),
    );
    let quality = df.column("quality").unwrap().f64().unwrap().clone();
    let feedback: Vec<f64> = (0..df.height())
        .filter(|&i| sources.get(i) == Some("feedback"))
        .map(|i| quality.get(i).unwrap())
        .collect();
    assert_eq!(
        feedback,
        vec![1.0, 1.0, 0.25],
        "last feedback per (request, source) wins; every served model's feedback is kept"
    );
    for split in [&splits, &subj] {
        let mut side = std::collections::HashMap::new();
        for i in 0..df.height() {
            let prev = side.insert(ids.get(i).unwrap(), split.get(i).unwrap());
            assert!(
                prev.is_none() || prev == split.get(i),
                "prompt {} on both sides",
                ids.get(i).unwrap()
            );
        }
    }
    let held_out_subjects: std::collections::HashSet<&str> = (0..df.height())
        .filter(|&i| sources.get(i) == Some("mmlu") && subj.get(i) == Some("test"))
        .map(|i| {
            df.column("category")
                .unwrap()
                .str()
                .unwrap()
                .get(i)
                .unwrap()
        })
        .collect();
    for s in &held_out_subjects {
        let any_train = (0..df.height()).any(|i| {
            df.column("category").unwrap().str().unwrap().get(i) == Some(s)
                && subj.get(i) == Some("train")
        });
        assert!(!any_train, "subject {s} is held out whole");
    }

    let dir1 = log1
        .lines()
        .find(|l| l.contains("router-") && !l.contains(' '))
        .unwrap()
        .trim()
        .to_string();
    let a = Artifact::load(Path::new(&dir1)).unwrap();
    assert_eq!(a.weights.candidates.len(), 2);
    assert_eq!(a.manifest.left_out[0].model, "mock/other");
    let rows = a.manifest.training_data.rows;
    assert_eq!(
        rows,
        6 * 30 * 2 + 60 * 2 + 160 + 2,
        "benchmark rows plus two feedback rows"
    );
    // Candidates are the served models the benchmark pair was mapped onto (default --map).
    let names: Vec<&str> = a
        .weights
        .candidates
        .iter()
        .map(|c| c.model.as_str())
        .collect();
    assert_eq!(names, ["mock/fast", "mock/smart"]);
    assert_eq!(
        a.weights.candidates[1].origin,
        "routellm:gpt-4-1106-preview+feedback"
    );
    assert!(
        a.weights.candidates[1].input_price_per_mtok
            > a.weights.candidates[0].input_price_per_mtok * 10.0
    );
    let p = a.predict(&vec![0.05f32; 384], 120);
    assert_eq!(p.predictions.len(), 2);
    assert!(p
        .predictions
        .iter()
        .all(|p| (0.0..=1.0).contains(&p.quality) && p.output_tokens >= 1.0 && p.neighbours > 0));
    assert!((-1.0..=1.0).contains(&p.support.similarity));
    assert!(a.support_threshold().is_some());
    assert!(std::fs::read_to_string(tmp.join("audit.md"))
        .unwrap()
        .contains("| benchmark | subject | model |"));
    let val = &a.manifest.metrics.as_ref().unwrap().validation["mock/smart"];
    assert!(val.auc.is_some() && val.brier.unwrap() < 0.5, "{val:?}");

    // Same data and seed on the same machine: byte-identical artifact, whether every
    // embedding comes from the cache (b) or is computed again (c).
    let fit_with = |out: &str, cache: Option<&str>, extra: &[&str]| {
        let mut args = common(&tmp.join(out));
        if let Some(c) = cache {
            let i = args.iter().position(|a| a == "--cache").unwrap();
            args[i + 1] = tmp.join(c).display().to_string();
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        // `fit` reads the table, not the sources import read.
        for flag in ["--src", "--logs", "--audit"] {
            let i = args.iter().position(|a| a == flag).unwrap();
            args.drain(i..i + 2);
        }
        let mut fit_args: Vec<&str> = vec!["fit"];
        fit_args.extend(args.iter().map(String::as_str));
        let log = train(&fit_args);
        let dir = log
            .lines()
            .find(|l| l.contains("router-") && !l.contains(' '))
            .unwrap()
            .trim()
            .to_string();
        (log, dir)
    };
    let fit_again = |out: &str, cache: Option<&str>| fit_with(out, cache, &[]);
    let (log2, dir2) = fit_again("b", None);
    assert!(log2.contains(" 0 computed"), "warm cache: {log2}");
    let (log3, dir3) = fit_again("c", Some("cold-cache.parquet"));
    assert!(log3.contains(" 0 cached"), "cold cache: {log3}");
    for dir in [&dir2, &dir3] {
        for f in ["weights.json", "manifest.json", "memory.bin"] {
            let (x, y) = (
                std::fs::read(Path::new(&dir1).join(f)).unwrap(),
                std::fs::read(Path::new(dir).join(f)).unwrap(),
            );
            assert!(x == y, "{f} differs between identical runs ({dir})");
        }
        assert_eq!(Path::new(&dir1).file_name(), Path::new(dir).file_name());
    }

    // A metadata key as a feature: the logged `plan` is kept in the outcome table, its training
    // values become indicators after the prompt features, and the artifact loads with them.
    let plans = df.column("metadata").unwrap().str().unwrap().clone();
    assert!(
        (0..df.height()).any(|i| plans.get(i) == Some(r#"{"plan":"free"}"#)),
        "metadata kept for feedback rows"
    );
    let (_, dir) = fit_with("features", None, &["--features", "plan"]);
    let a = Artifact::load(Path::new(&dir)).unwrap();
    assert_eq!(a.weights.metadata.len(), 1);
    assert_eq!(a.weights.metadata[0].key, "plan");
    let width = 384 + 1 + a.weights.metadata[0].values.len();
    assert!(a
        .weights
        .candidates
        .iter()
        .all(|c| c.quality.weights.len() == width));
    std::fs::remove_dir_all(&tmp).ok();
}
