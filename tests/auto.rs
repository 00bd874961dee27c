//! Learned routing in the server: the real encoder (scripts/setup_encoder.sh) with a small
//! artifact written here, in front of the scripted mock upstream.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "tests and benches"
)]

mod common;

use common::artifacts::*;
use common::{chain, user, Harness, Options};
use serde_json::{json, Value};
use std::path::PathBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_picks_by_knob_explains_and_guards() {
    let dir = tmp("knob");
    write_artifact(&dir, None, "up/ok");
    let h = start(&dir, "up/ok").await;
    // Quality first: the strong model; cheap: quality minus cost still favours strong here
    // (equal prices), so move the knob with prices out of the picture via guardrails instead.
    let (status, headers, v) = h
        .chat(json!({"model": "auto", "messages": user("What is the capital of France?")}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["model"], "up/ok");
    assert_eq!(headers["x-switchyard-model"], "up/ok");
    let r = &v["metadata"]["routing"];
    assert_eq!(r["router"], "auto");
    assert_eq!(r["chosen"], "up/ok");
    assert_eq!(r["artifact_version"], "test-artifact");
    assert_eq!(r["knob"], "default");
    let cands = r["candidates"].as_array().unwrap();
    assert_eq!(cands.len(), 2);
    for c in cands {
        for key in [
            "model",
            "predicted_quality",
            "predicted_cost_usd",
            "guardrails",
            "score",
            "eligible",
        ] {
            assert!(c.get(key).is_some(), "candidate lacks {key}: {c}");
        }
    }
    assert!((cands[0]["predicted_quality"].as_f64().unwrap() - 0.9).abs() < 1e-6);
    assert_eq!(chain(&v["metadata"]), vec![("up/ok".to_string(), true)]);

    // A guardrail removes the strong model for free-plan users; the decision says why.
    let r: Value = h
        .post(
            "/v1/route",
            json!({"model": "auto", "metadata": {"plan": "free"}, "messages": user("x")}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["chain"], json!(["up/second"]));
    let strong = r["routing"]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["model"] == "up/ok")
        .unwrap()
        .clone();
    assert_eq!(strong["eligible"], false);
    assert_eq!(strong["guardrails"][0]["passed"], false);
    assert!(
        h.mock.bodies().len() == 1,
        "/v1/route sends nothing upstream"
    );

    // No candidate passes: 400 listing each candidate and the guardrail it failed.
    let (status, _, v) = h
        .chat(json!({"model": "auto", "metadata": {"block_all": true}, "messages": user("x")}))
        .await;
    assert_eq!(status, 400);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("up/ok failed !has(metadata.block_all)") && msg.contains("up/second failed"),
        "{msg}"
    );

    // The knob: a cost weight of 1 with a 0.3 quality gap and equal costs keeps strong;
    // bad knobs are 400s.
    let r: Value = h
        .post(
            "/v1/route",
            json!({"model": "auto", "router": {"cost_weight": 1.0}, "messages": user("x")}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["routing"]["cost_weight"], 1.0);
    let (status, _, v) = h
        .chat(json!({"model": "auto:lavish", "messages": user("x")}))
        .await;
    assert_eq!(status, 400, "{v}");
    let (status, _, _) = h
        .chat(json!({"model": "auto", "router": {"cost_weight": 3}, "messages": user("x")}))
        .await;
    assert_eq!(status, 400);

    // Identical prompts hit the embedding cache, visible in metrics.
    let m = h.metrics().await;
    assert!(
        m.contains("switchyard_embedding_cache_total{result=\"hit\"}"),
        "{m}"
    );
    let models: Value = h.get_json("/v1/models").await;
    let auto = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "auto")
        .unwrap()
        .clone();
    assert_eq!(auto["available"], true);
    assert_eq!(auto["artifact_version"], "test-artifact");
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranked_candidates_are_the_fallback_chain() {
    let dir = tmp("chain");
    write_artifact(&dir, None, "up/503");
    let h = start(&dir, "up/503").await;
    let (status, _, v) = h
        .chat(json!({"model": "auto", "stream": false, "messages": user("hello")}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["model"], "up/second");
    assert_eq!(
        chain(&v["metadata"]),
        vec![
            ("up/503".to_string(), false),
            ("up/second".to_string(), true)
        ]
    );
    std::fs::remove_dir_all(dir).ok();
}

/// A server whose `auto` chooses between `up/ok` (the top, at `auto:best`) and `up/second` on a
/// fresh test artifact, with `setting` (an exploration line of `[auto]`).
async fn start_exploring(name: &str, setting: &str) -> (PathBuf, Harness) {
    let dir = tmp(name);
    write_artifact(&dir, None, "up/ok");
    let extra = format!(
        "[auto]\nartifact = \"{}\"\nencoder = \"{}\"\ndefault_knob = \"best\"\ncandidates = [\"up/ok\", \"up/second\"]\n{setting}\n",
        dir.display(),
        encoder_dir().display()
    );
    let h = Harness::start_with(Options {
        extra,
        ..Options::default()
    })
    .await;
    (dir, h)
}

/// `[auto] onboard = 1` with exploration off: a candidate the artifact has fewer than
/// `onboard_outcomes` outcomes of (this test artifact has none) serves every decision where it
/// is not the top, says it was onboarded with its propensity, and `/v1/models` shows the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onboarding_serves_candidates_with_few_outcomes() {
    let (dir, h) = start_exploring("onboard", "onboard = 1.0").await;
    let auto = auto_model(&h).await;
    assert_eq!(
        (
            &auto["explore"]["share"],
            &auto["explore"]["onboard"],
            &auto["explore"]["onboard_outcomes"]
        ),
        (&json!(0.0), &json!(1.0), &json!(100)),
        "{auto}"
    );
    let (status, _, v) = h
        .chat(json!({"model": "auto", "stream": false, "messages": user("a new model's turn")}))
        .await;
    assert_eq!(status, 200, "{v}");
    let routing = &v["metadata"]["routing"];
    assert_eq!(v["model"], "up/second", "{routing}");
    assert_eq!(
        routing["exploration"],
        json!({"explored": true, "onboarding": true, "propensity": 1.0})
    );
    std::fs::remove_dir_all(dir).ok();
}

/// `[auto] explore = 1`: every decision serves the non-top candidate, says so with its
/// propensity in the response and the request log, and counts it; `metadata.explore = false`
/// opts a request out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exploration_serves_non_top_candidates_and_logs_propensities() {
    let (dir, h) = start_exploring("explore", "explore = 1.0").await;
    let auto = auto_model(&h).await;
    assert_eq!(auto["explore"]["share"], 1.0, "{auto}");
    for i in 0..3 {
        let (status, _, v) = h
            .chat(json!({"model": "auto", "stream": false, "messages": user(&format!("question {i}"))}))
            .await;
        assert_eq!(status, 200, "{v}");
        let routing = &v["metadata"]["routing"];
        assert_eq!(v["model"], "up/second", "{routing}");
        assert_eq!(routing["chosen"], "up/second");
        assert_eq!(
            routing["candidates"][0]["model"], "up/ok",
            "ranked order is kept"
        );
        assert_eq!(
            routing["exploration"],
            json!({"explored": true, "propensity": 1.0})
        );
    }
    let (_, _, v) = h
        .chat(json!({"model": "auto", "stream": false, "messages": user("no exploring"), "metadata": {"explore": false}}))
        .await;
    assert_eq!(v["model"], "up/ok");
    assert_eq!(
        v["metadata"]["routing"]["exploration"],
        json!({"explored": false, "propensity": 1.0, "skipped": "opted out (metadata.explore)"})
    );
    assert!(
        h.metrics()
            .await
            .contains("switchyard_auto_explorations_total 3"),
        "counted"
    );
    // The request log carries the propensity next to every candidate's score.
    let mut logged = vec![];
    for _ in 0..50 {
        logged = switchyard_learn::logfiles::read_records::<Value>(&h.log_dir, "requests").unwrap();
        if logged.len() >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let explored: Vec<&Value> = logged
        .iter()
        .map(|r| &r["learned"]["exploration"]["explored"])
        .collect();
    assert_eq!(
        explored.iter().filter(|e| **e == true).count(),
        3,
        "{logged:?}"
    );
    assert!(logged
        .iter()
        .all(|r| r["learned"]["candidates"][1]["score"].is_number()));
    std::fs::remove_dir_all(dir).ok();
}

/// `[judge]`: every sampled `auto` answer is graded by a served model off the request path and
/// stored as feedback (`source = "judge"`, about the model that served); a request that is not
/// `auto` is not judged; a judge that answers without a score is retried, then counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge_grades_auto_answers_into_feedback() {
    let dir = tmp("judge");
    write_artifact(&dir, None, "up/ok");
    for (judge, want, pairwise) in [
        ("mock/judge", "judged", false),
        ("mock/chatty", "unparsable", false),
        ("mock/judge", "judged", true),
    ] {
        let extra = format!(
            "[[models]]\nid = \"mock/judge\"\ninput_price_per_mtok = 1.0\noutput_price_per_mtok = 2.0\nmock = {{ reply = \"0.8\" }}\n[[models]]\nid = \"mock/chatty\"\nmock = {{ reply = \"What a lovely answer\" }}\n[judge]\nmodel = \"{judge}\"\nsample_rate = 1.0\nretries = 1\npairwise = {pairwise}\n[auto]\nartifact = \"{}\"\nencoder = \"{}\"\nonboard = 0\ncandidates = [\"up/ok\", \"up/second\"]\n",
            dir.display(),
            encoder_dir().display()
        );
        let h = Harness::start_with(Options {
            extra,
            ..Options::default()
        })
        .await;
        let mut ids = vec![];
        for i in 0..3 {
            let (status, _, v) = h
                .chat(json!({"model": "auto", "stream": false, "messages": user(&format!("grade me {i}"))}))
                .await;
            assert_eq!(status, 200, "{v}");
            ids.push(v["metadata"]["request_id"].as_str().unwrap().to_string());
        }
        let (status, _, _) = h
            .chat(json!({"model": "up/ok", "stream": false, "messages": user("not auto")}))
            .await;
        assert_eq!(status, 200);
        let line = format!("switchyard_judge_total{{result=\"{want}\"}} 3");
        let mut metrics = String::new();
        for _ in 0..100 {
            metrics = h.metrics().await;
            if metrics.contains(&line) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(metrics.contains(&line), "{judge}: {metrics}");
        let stored =
            switchyard_learn::logfiles::read_records::<Value>(&h.log_dir, "feedback").unwrap();
        if pairwise {
            // The runner-up answered too (a shadow request); both models got a label.
            assert_eq!(stored.len(), 6, "{stored:?}");
            for f in &stored {
                let (source, model, score) = (
                    f["source"].as_str().unwrap(),
                    f["model"].as_str().unwrap(),
                    f["score"].as_f64().unwrap(),
                );
                match source {
                    "judge-pairwise" => assert_eq!((model, score), ("up/ok", 0.8)),
                    "judge-pairwise-alternative" => {
                        assert_eq!(model, "up/second");
                        assert!((score - 0.2).abs() < 1e-9);
                    }
                    other => panic!("source {other}"),
                }
            }
        } else if want == "judged" {
            assert_eq!(stored.len(), 3, "{stored:?}");
            for f in &stored {
                assert_eq!(
                    (f["source"].as_str(), f["score"].as_f64()),
                    (Some("judge"), Some(0.8))
                );
                assert_eq!(f["model"], "up/ok");
                assert!(ids.contains(&f["request_id"].as_str().unwrap().to_string()));
                assert!(f["comment"]
                    .as_str()
                    .unwrap()
                    .starts_with("judge mock/judge ($"));
            }
            assert!(
                !metrics.contains("switchyard_judge_cost_usd_total 0\n"),
                "{metrics}"
            );
        } else {
            assert!(stored.is_empty(), "{stored:?}");
            assert!(
                metrics.contains("switchyard_judge_retries_total 3"),
                "{metrics}"
            );
        }
    }
    std::fs::remove_dir_all(dir).ok();
}

/// A staged rollout: a router's variants pin two artifacts, sticky by user; each user's requests
/// are decided by their variant's artifact, and `/v1/report` compares the variants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variants_pin_artifacts_for_a_staged_rollout_and_the_report_compares_them() {
    let (old, new) = (tmp("rollout-old"), tmp("rollout-new"));
    write_artifact(&old, None, "up/ok");
    write_artifact_with(&new, None, &[("up/ok", 0.6), ("up/second", 0.9)]);
    set_manifest(&new, |m| m["version"] = json!("new-artifact"));
    let extra = format!(
        "[auto]\nartifact = \"{}\"\nencoder = \"{}\"\ndefault_knob = \"best\"\nonboard = 0\ncandidates = [\"up/ok\", \"up/second\"]\n[routers.rollout]\ndefault = {{ variants = [{{ name = \"current\", auto = {{ knob = \"best\" }}, weight = 50 }}, {{ name = \"candidate\", auto = {{ knob = \"best\", artifact = \"{}\" }}, weight = 50 }}] }}\n",
        old.display(),
        encoder_dir().display(),
        new.display()
    );
    let h = Harness::start_with(Options {
        extra,
        ..Options::default()
    })
    .await;
    let mut seen = std::collections::BTreeMap::new();
    for u in 0..12 {
        for _ in 0..2 {
            let (status, _, v) = h
                .chat(json!({"model": "router/rollout", "stream": false, "user": format!("user-{u}"), "messages": user("which artifact?")}))
                .await;
            assert_eq!(status, 200, "{v}");
            let r = &v["metadata"]["routing"];
            let variant = r["variant"].as_str().unwrap().to_string();
            let (version, model) = (r["artifact_version"].clone(), v["model"].clone());
            match variant.as_str() {
                "current" => assert_eq!((version, model), (json!("test-artifact"), json!("up/ok"))),
                "candidate" => assert_eq!(
                    (version, model),
                    (json!("new-artifact"), json!("up/second"))
                ),
                other => panic!("variant {other}"),
            }
            let prev = seen.insert(u, variant.clone());
            assert!(prev.is_none() || prev == Some(variant), "sticky by user");
        }
    }
    assert_eq!(
        seen.values()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        2,
        "both variants serve some of 12 users: {seen:?}"
    );
    let mut variants = vec![];
    for _ in 0..50 {
        let report = h.get_json("/v1/report?router=rollout").await;
        variants = report["variants"].as_array().cloned().unwrap_or_default();
        if variants
            .iter()
            .map(|v| v["requests"].as_u64().unwrap_or(0))
            .sum::<u64>()
            == 24
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let by_name: std::collections::BTreeMap<&str, &Value> = variants
        .iter()
        .map(|v| (v["variant"].as_str().unwrap(), v))
        .collect();
    assert_eq!(by_name.len(), 2, "{variants:?}");
    assert!(
        by_name["candidate"]["artifact_versions"]["new-artifact"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        by_name["current"]["artifact_versions"]["test-artifact"]
            .as_u64()
            .unwrap()
            > 0
    );
    let bad = h.get("/v1/report?router=nope").await;
    assert_eq!(bad.status(), 400);
    std::fs::remove_dir_all(old).ok();
    std::fs::remove_dir_all(new).ok();
}

/// An artifact with a metadata feature: the request's `emotion` reaches the candidates' linear
/// models, so a frustrated caller is routed differently from a calm one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_features_of_the_artifact_change_the_decision() {
    let dir = tmp("metadata");
    write_artifact(&dir, None, "up/ok");
    let path = dir.join("weights.json");
    let mut w: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    w["metadata"] = json!([{"key": "emotion", "values": ["frustrated"]}]);
    for c in w["candidates"].as_array_mut().unwrap() {
        // up/ok's answers are much worse for a frustrated caller; up/second's are not.
        let drop = if c["model"] == "up/ok" { -1.0 } else { 0.0 };
        c["quality"]["weights"]
            .as_array_mut()
            .unwrap()
            .push(json!(drop));
        c["output_tokens"]["weights"]
            .as_array_mut()
            .unwrap()
            .push(json!(0.0));
    }
    write_atomic(&path, &w.to_string());
    let h = start(&dir, "up/ok").await;
    for (emotion, want) in [("calm", "up/ok"), ("frustrated", "up/second")] {
        let (status, _, v) = h
            .chat(json!({"model": "auto", "stream": false, "metadata": {"emotion": emotion}, "messages": user("my order is late")}))
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["model"], want, "{emotion}: {}", v["metadata"]["routing"]);
    }
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_mismatched_artifact_leaves_static_routes_working() {
    let h = start(&tmp("missing"), "up/ok").await;
    let (status, _, v) = h
        .chat(json!({"model": "auto", "messages": user("x")}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["code"], "auto_routing_unavailable");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("switchyard train"),
        "{v}"
    );
    let (status, _, _) = h
        .chat(json!({"model": "up/ok", "messages": user("x")}))
        .await;
    assert_eq!(status, 200);

    let dir = tmp("mismatch");
    write_artifact(&dir, Some("some-other-encoder"), "up/ok");
    let h = start(&dir, "up/ok").await;
    let (status, _, v) = h
        .chat(json!({"model": "auto", "messages": user("x")}))
        .await;
    assert_eq!(status, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("was trained with encoder"),
        "{v}"
    );
    std::fs::remove_dir_all(&dir).ok();

    // An artifact with outcomes of a model this config does not serve loads; that model is
    // never scored (the config's candidates are).
    write_artifact_with(&dir, None, &[("up/ok", 0.9), ("ghost/model", 0.5)]);
    let h = start(&dir, "up/ok").await;
    let auto = auto_model(&h).await;
    assert_eq!(auto["available"], true, "{auto}");
    let (status, _, v) = h
        .chat(json!({"model": "auto", "messages": user("x")}))
        .await;
    assert_eq!(status, 200, "{v}");
    let scored: Vec<&str> = v["metadata"]["routing"]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["model"].as_str())
        .collect();
    assert!(!scored.contains(&"ghost/model"), "{scored:?}");
    std::fs::remove_dir_all(dir).ok();
}
