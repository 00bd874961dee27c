//! Learned routing in the server: the real encoder (scripts/setup_encoder.sh) with a small
//! artifact written here, in front of the scripted mock upstream.

mod common;

use common::{chain, user, Harness, Options};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use switchyard::predictor::{
    Artifact, Candidate, Logistic, OutputTokens, Weights, FEATURE_SPEC, SCHEMA_VERSION,
};

fn encoder_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/encoder")
}

/// An artifact whose "strong" candidate is better (p ≈ 0.9) and "weak" worse (p ≈ 0.6),
/// each predicting 100 output tokens; `encoder_id` None = the real encoder's id.
fn write_artifact(dir: &Path, encoder_id: Option<&str>) {
    let enc: Value = serde_json::from_str(
        &std::fs::read_to_string(encoder_dir().join("manifest.json")).unwrap(),
    )
    .unwrap();
    let candidate = |name: &str, p: f64| Candidate {
        model: name.into(),
        input_price_per_mtok: 1.0,
        output_price_per_mtok: 1.0,
        quality: Logistic {
            weights: vec![0.0; 385],
            bias: (p / (1.0 - p)).ln(),
        },
        output_tokens: OutputTokens {
            intercept: 100f64.ln(),
            slope: 0.0,
        },
    };
    Artifact {
        manifest: json!({"version": "test-artifact", "encoder": {"id": encoder_id.map(Value::from).unwrap_or(enc["encoder_id"].clone()), "dimension": 384}}),
        weights: Weights {
            schema_version: SCHEMA_VERSION,
            feature_spec: FEATURE_SPEC.into(),
            dimension: 384,
            candidates: vec![candidate("strong", 0.9), candidate("weak", 0.6)],
        },
    }
    .write(dir)
    .unwrap();
}

async fn start(artifact: &Path, strong: &str) -> Harness {
    let extra = format!(
        "[auto]\nartifact = \"{}\"\nencoder = \"{}\"\ndefault_knob = \"best\"\ncandidates = {{ \"strong\" = \"{strong}\", \"weak\" = \"up/second\" }}\nguardrails = ['!(has(metadata.plan) && metadata.plan == \"free\") || model.id != \"{strong}\"', 'model.context_window >= request.prompt_tokens + 256', '!has(metadata.block_all)']\n",
        artifact.display(),
        encoder_dir().display()
    );
    Harness::start_with(Options {
        extra,
        ..Options::default()
    })
    .await
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sy-auto-{name}-{}", std::process::id()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_picks_by_knob_explains_and_guards() {
    let dir = tmp("knob");
    write_artifact(&dir, None);
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
    let m = h
        .http
        .get(format!("{}/metrics", h.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("switchyard_embedding_cache_total{result=\"hit\"}"),
        "{m}"
    );
    let models: Value = h
        .http
        .get(format!("{}/v1/models", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    write_artifact(&dir, None);
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
    write_artifact(&dir, Some("some-other-encoder"));
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
    std::fs::remove_dir_all(dir).ok();
}
