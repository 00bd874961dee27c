//! Training on logged `auto` traffic alone (`--src none`): a metadata signal that routing has
//! confounded with topics is not credited with the topics' effect, and off-policy evaluation
//! cross-fits twins of the artifact (or says why it cannot); feedback is weighed by its inverse
//! propensity, and the served artifact is refitted on the validation rows too (`--no-refit`:
//! not).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "tests and benches"
)]

use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use switchyard_learn::artifact::{artifact_dir, Artifact};
use switchyard_learn::embed::Encoder;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn train(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard-train"))
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

const MATH: [&str; 6] = ["seven", "eleven", "forty", "ninety", "twelve", "sixty"];
const POEMS: [&str; 6] = ["rivers", "autumn", "the sea", "lanterns", "winter", "a fox"];

/// Logged `auto` decisions between `m/a` and `m/b` with feedback: `m/a` is good at arithmetic
/// and poor at poems whatever the caller's mood, but the logging policy sent it calm callers'
/// arithmetic and frustrated callers' poems (so mood and topic are confounded in its rows);
/// `m/b` is middling everywhere and saw both moods on both topics. `propensity(model, topic)`
/// is what the log says the policy had of serving `model` (topic 0 arithmetic, 1 poems).
fn write_logs(dir: &Path, propensity: fn(&str, usize) -> f64) {
    std::fs::create_dir_all(dir).unwrap();
    let (mut requests, mut feedback) = (Vec::new(), Vec::new());
    let mut i = 0;
    for round in 0..8 {
        for (t, words) in [MATH, POEMS].iter().enumerate() {
            for (j, w) in words.iter().enumerate() {
                for (model, emotion) in [
                    ("m/a", if t == 0 { "calm" } else { "frustrated" }),
                    (
                        "m/b",
                        if (j + round) % 2 == 0 {
                            "calm"
                        } else {
                            "frustrated"
                        },
                    ),
                ] {
                    i += 1;
                    let text = if t == 0 {
                        format!("what is {w} plus {w} times {round}? show the arithmetic")
                    } else {
                        format!("write a short poem about {w}, verse {round}")
                    };
                    let id = format!("r{i}");
                    let candidates: Vec<Value> = [("m/a", 1.0), ("m/b", 2.0)]
                        .iter()
                        .map(|(m, price)| {
                            json!({"model": m, "eligible": true, "predicted_quality": 0.5,
                                   "predicted_output_tokens": 20.0,
                                   "price": {"input_per_mtok": price, "output_per_mtok": price}})
                        })
                        .collect();
                    requests.push(json!({
                        "request_id": id, "model": model, "prompt": [{"role": "user", "content": text}],
                        "prompt_tokens": 20, "completion_tokens": 20, "cost_usd": 0.00004,
                        "metadata": {"emotion": emotion},
                        "learned": {"candidates": candidates, "chosen": model, "cost_weight": 0.1,
                                    "prompt_tokens": 20, "exploration": {"explored": false, "propensity": propensity(model, t)}},
                    }));
                    // m/a: good on arithmetic, poor on poems; m/b: alternating.
                    let good = match (model, t) {
                        ("m/a", 0) => (i % 10) != 0,
                        ("m/a", _) => (i % 10) == 0,
                        _ => i % 2 == 0,
                    };
                    feedback.push(json!({"request_id": id, "source": "user", "model": model,
                                         "score": if good { 1.0 } else { 0.0 }}));
                }
            }
        }
    }
    let lines = |v: &[Value]| {
        v.iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    };
    std::fs::write(dir.join("requests-0001.ndjson"), lines(&requests)).unwrap();
    std::fs::write(dir.join("feedback-0001.ndjson"), lines(&feedback)).unwrap();
}

/// The arguments every step shares: the logs in `tmp/logs`, the outcome table, embedding cache
/// and audit in `tmp`, the committed potion encoder.
/// The shared flags a step takes (`--data`, `--cache`, `--encoder`, `--logs`, `--audit`), for
/// the test's directory.
fn common_args(tmp: &Path, flags: &[&str]) -> Vec<String> {
    let at = |p: &str| tmp.join(p).display().to_string();
    let encoder = root().join("models/encoder-potion").display().to_string();
    [
        ("--logs", at("logs")),
        ("--data", at("outcomes.parquet")),
        ("--cache", at("cache.parquet")),
        ("--encoder", encoder),
        ("--audit", at("audit.md")),
    ]
    .into_iter()
    .filter(|(f, _)| flags.contains(f))
    .flat_map(|(f, v)| [f.to_string(), v])
    .collect()
}

/// Every step's flags: `all` takes them all.
const ALL: [&str; 5] = ["--logs", "--data", "--cache", "--encoder", "--audit"];
/// What `ope` takes of them.
const OPE: [&str; 3] = ["--logs", "--cache", "--encoder"];
/// What `eval` takes of them.
const EVAL: [&str; 3] = ["--data", "--cache", "--encoder"];
/// What `import` takes of them.
const IMPORT: [&str; 3] = ["--logs", "--data", "--audit"];

#[test]
fn confounded_metadata_is_not_credited_and_ope_cross_fits() {
    let tmp = std::env::temp_dir().join(format!("sy-loop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let logs = tmp.join("logs");
    write_logs(&logs, |_, _| 0.5);
    let encoder = root().join("models/encoder-potion");
    let path = |p: &str| tmp.join(p).display().to_string();
    let args = |flags: &[&str]| common_args(&tmp, flags);
    let (all, ope_flags) = (args(&ALL), args(&OPE));
    let common: Vec<&str> = all.iter().map(String::as_str).collect();
    let ope_common: Vec<&str> = ope_flags.iter().map(String::as_str).collect();
    let (ok, log) = train(
        &[
            &["all", "--src", "none", "--features", "emotion", "--out"],
            &[path("models").as_str()][..],
            &common[..],
        ]
        .concat(),
    );
    assert!(ok, "{log}");
    let artifact = Artifact::load(&artifact_dir(&tmp.join("models")).unwrap()).unwrap();
    let enc = Encoder::load(&encoder, 1, 1).unwrap();
    let predict = |text: &str, emotion: &str| -> f64 {
        let e = &enc.embed_all(&[text]).unwrap()[0];
        let md: Map<String, Value> = json!({"emotion": emotion}).as_object().unwrap().clone();
        let p = artifact.predict_with(e, 20, &artifact.metadata_features(&md));
        p.predictions
            .iter()
            .find(|p| p.model == "m/a")
            .unwrap()
            .quality
    };
    let math = "what is forty plus eleven times 2? show the arithmetic";
    let poem = "write a short poem about lanterns, verse 2";
    let (math_calm, math_frustrated) = (predict(math, "calm"), predict(math, "frustrated"));
    let poem_calm = predict(poem, "calm");
    assert!(
        math_calm - poem_calm > 0.4,
        "m/a is predicted by topic: arithmetic {math_calm:.3}, poems {poem_calm:.3}"
    );
    assert!(
        (math_calm - math_frustrated).abs() < 0.15,
        "the mood, confounded with the topic by routing, is not credited with it: calm {math_calm:.3}, frustrated {math_frustrated:.3}"
    );

    // Off-policy evaluation: five twins, each trained without one fold's prompts, then a report.
    let models = path("models");
    let reports = path("reports");
    let ope = |extra: &[&str]| {
        train(
            &[
                &[
                    "ope",
                    "--artifact",
                    &models,
                    "--reports",
                    &reports,
                    "--bootstrap",
                    "20",
                    "--min-matches",
                    "5",
                ][..],
                extra,
                &ope_common[..],
            ]
            .concat(),
        )
    };
    let (ok, log) = ope(&[]);
    assert!(ok, "{log}");
    let report = PathBuf::from(
        log.lines()
            .rfind(|l| l.starts_with(&reports))
            .unwrap()
            .trim(),
    );
    assert!(
        log.contains("cross-fitting: training a twin without"),
        "{log}"
    );
    for fold in ["fold-0", "fold-4"] {
        assert!(
            artifact_dir(&report.join("twins").join(fold)).is_ok(),
            "twin {fold} in {}",
            report.display()
        );
    }
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("metrics.json")).unwrap())
            .unwrap();
    assert_eq!(metrics["cross_fit_folds"], 5, "{metrics}");
    // The doubly robust estimate of the new policy's quality: a number, with an interval.
    let dr = &metrics["new_policy"]["quality"]["dr"];
    let value = dr["value"].as_f64().expect("a DR value");
    let (lo, hi) = (
        dr["ci95"][0].as_f64().expect("a lower bound"),
        dr["ci95"][1].as_f64().expect("an upper bound"),
    );
    assert!(
        (0.0..=1.0).contains(&value) && lo <= hi && hi - lo < 0.5,
        "{metrics}"
    );

    // Without the training data, cross-fitting cannot work: it says so and how to go on.
    std::fs::rename(tmp.join("outcomes.parquet"), tmp.join("moved.parquet")).unwrap();
    let (ok, log) = ope(&[]);
    assert!(!ok && log.contains("--cross-fit 0"), "{log}");
    let (ok, log) = ope(&["--cross-fit", "0"]);
    assert!(ok, "the artifact itself can still be evaluated: {log}");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn feedback_is_weighed_by_inverse_propensity_and_the_refit_uses_the_validation_rows() {
    let tmp = std::env::temp_dir().join(format!("sy-ips-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let logs = tmp.join("logs");
    // m/a answered as many arithmetic prompts (mostly good) as poems (mostly poor), but the
    // policy chose it for arithmetic nine times in ten and explored it on poems one time in
    // ten: over the traffic, poems are where it would mostly serve, so its rate is low.
    write_logs(&logs, |model, topic| match (model, topic) {
        ("m/a", 0) => 0.9,
        ("m/a", _) => 0.1,
        _ => 0.5,
    });
    let path = |p: &str| tmp.join(p).display().to_string();
    let args = |flags: &[&str]| common_args(&tmp, flags);
    let (all, eval_flags, ope_flags) = (args(&ALL), args(&EVAL), args(&OPE));
    let common: Vec<&str> = all.iter().map(String::as_str).collect();
    let fit = |out: &str, extra: &[&str]| {
        let (ok, log) = train(
            &[
                &["all", "--src", "none", "--out", &path(out)][..],
                extra,
                &common[..],
            ]
            .concat(),
        );
        assert!(ok, "{log}");
        Artifact::load(&artifact_dir(&tmp.join(out)).unwrap()).unwrap()
    };
    let plain = fit("plain", &["--no-refit"]);
    let base_rate = |a: &Artifact, m: &str| {
        a.weights
            .candidates
            .iter()
            .find(|c| c.model == m)
            .unwrap()
            .base_rate
    };
    // Unweighted about 0.5; weighted (0.9·n/0.9 + 0.1·n/0.1) / (n/0.9 + n/0.1) ≈ 0.18.
    assert!(
        base_rate(&plain, "m/a") < 0.3,
        "m/a's rate over the traffic: {}",
        base_rate(&plain, "m/a")
    );
    // m/b, all of whose logged answers are good, stays at 1 whatever the weights.
    assert!(base_rate(&plain, "m/b") > 0.99);
    assert!(plain.manifest.training_data.refit_on.is_none());

    // By default the served artifact is refitted: its memory holds the validation prompts too,
    // the manifest says so, its validation metrics are the first fit's, and it is not evaluated
    // on them.
    let refit = fit("refit", &[]);
    let td = &refit.manifest.training_data;
    assert_eq!(td.refit_on, Some(vec!["train".into(), "val".into()]));
    let split = |s: &str| td.prompts_per_split[s];
    assert_eq!(refit.memory.rows, split("train") + split("val"), "{td:?}");
    assert_eq!(plain.memory.rows, split("train"));
    assert_eq!(
        refit.manifest.metrics, plain.manifest.metrics,
        "validation metrics are measured before the refit"
    );
    let refit_dir = artifact_dir(&tmp.join("refit"))
        .unwrap()
        .display()
        .to_string();
    let reports = path("reports");
    let on_refit = |step: &[&str]| {
        let flags = if step[0] == "ope" {
            &ope_flags
        } else {
            &eval_flags
        };
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        train(
            &[
                step,
                &["--artifact", &refit_dir, "--reports", &reports][..],
                &flags[..],
            ]
            .concat(),
        )
    };
    let (ok, log) = on_refit(&["eval", "--partition", "val"]);
    assert!(!ok && log.contains("--partition test"), "{log}");
    // Off-policy evaluation's twins are refitted the same way.
    let (ok, log) = on_refit(&[
        "ope",
        "--cross-fit",
        "2",
        "--bootstrap",
        "10",
        "--min-matches",
        "5",
    ]);
    assert!(ok, "{log}");
    let report = PathBuf::from(
        log.lines()
            .rfind(|l| l.starts_with(&path("reports")))
            .unwrap()
            .trim(),
    );
    let twin =
        Artifact::load(&artifact_dir(&report.join("twins").join("fold-0")).unwrap()).unwrap();
    assert_eq!(
        twin.manifest.training_data.refit_on,
        Some(vec!["train".into(), "val".into()])
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn public_data_mapped_onto_models_the_logs_never_served_is_left_out_with_a_note() {
    // `switchyard train --logs DIR` for a config that serves m/a and m/b (the logs name no
    // other model): by default the public data would become candidates mock/smart and
    // mock/fast, which that config does not serve (the server refuses such an artifact), so
    // import leaves it out and says how to keep it.
    let tmp = std::env::temp_dir().join(format!("sy-unmapped-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    write_logs(&tmp.join("logs"), |_, _| 0.5);
    let common = common_args(&tmp, &IMPORT);
    let common: Vec<&str> = common.iter().map(String::as_str).collect();
    let src = root().join("data/routellm").display().to_string();
    let import = |extra: &[&str]| {
        let (ok, log) = train(&[&["import", "--src", &src][..], extra, &common[..]].concat());
        assert!(ok, "{log}");
        log
    };
    let log = import(&[]);
    assert!(
        log.contains("the public data in")
            && log
                .contains("is left out: without --map it is a prior for mock/fast and mock/smart")
            && log.contains("name only m/a, m/b;")
            && log.contains("--map gpt-4-1106-preview=m/a"),
        "{log}"
    );
    assert!(
        log.contains("imported 192 outcome rows (192 from feedback"),
        "{log}"
    );
    // Mapped onto the served models, it is their prior.
    let log = import(&[
        "--map",
        "gpt-4-1106-preview=m/b",
        "--map",
        "mistralai/Mixtral-8x7B-Instruct-v0.1=m/a",
    ]);
    assert!(!log.contains("is left out"), "{log}");
    let rows: usize = log
        .split("imported ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(rows > 10_000, "{log}");
    // A log that names mock/smart (here as an `auto` candidate that did not serve) comes from a
    // config that serves it: the default map stands.
    let line = json!({"request_id": "x1", "model": "m/a", "prompt": [{"role": "user", "content": "hello"}],
                      "learned": {"candidates": [{"model": "m/a"}, {"model": "mock/smart"}]}});
    std::fs::write(tmp.join("logs/requests-0002.ndjson"), format!("{line}\n")).unwrap();
    let log = import(&[]);
    assert!(!log.contains("is left out"), "{log}");
    let _ = std::fs::remove_dir_all(&tmp);
}
