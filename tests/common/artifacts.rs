//! Artifacts and servers for the learned-routing integration tests (`tests/auto*.rs`): a small
//! uniform artifact for the real encoder, a server with `[auto]` over it, and helpers to edit an
//! artifact in place and wait for the server to reload it.

use super::{Harness, Options};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use switchyard_learn::artifact::Artifact;
use switchyard_learn::uniform::UniformCandidate;

pub fn encoder_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/encoder")
}

/// An artifact whose `strong` candidate is better (p = 0.9) and `up/second` worse (p = 0.6),
/// each predicting 100 output tokens at equal prices; `encoder_id` None = the real encoder's id.
pub fn write_artifact(dir: &Path, encoder_id: Option<&str>, strong: &str) {
    write_artifact_with(dir, encoder_id, &[(strong, 0.9), ("up/second", 0.6)]);
}

/// An artifact with these candidates and probabilities of a good answer.
pub fn write_artifact_with(dir: &Path, encoder_id: Option<&str>, candidates: &[(&str, f64)]) {
    let enc: Value = serde_json::from_str(
        &std::fs::read_to_string(encoder_dir().join("manifest.json")).unwrap(),
    )
    .unwrap();
    let candidates: Vec<UniformCandidate> = candidates
        .iter()
        .map(|(model, quality)| UniformCandidate {
            model,
            quality: *quality,
            output_tokens: 100.0,
            price_per_mtok: 1.0,
        })
        .collect();
    Artifact::uniform(
        serde_json::from_value(json!({"version": "test-artifact", "encoder": {"id": encoder_id.map(Value::from).unwrap_or(enc["encoder_id"].clone()), "dimension": 384, "max_tokens": 256, "model_sha256": ""}, "cost_reference": {"prompt_tokens": 100, "output_tokens": 100}}))
        .unwrap(),
        &[0.0; 384],
        &candidates,
    )
    .write(dir)
    .unwrap();
}

pub async fn start(artifact: &Path, strong: &str) -> Harness {
    let extra = format!(
        "[auto]\nartifact = \"{}\"\nencoder = \"{}\"\ndefault_knob = \"best\"\nonboard = 0\ncandidates = [\"{strong}\", \"up/second\"]\nguardrails = ['!(has(metadata.plan) && metadata.plan == \"free\") || model.id != \"{strong}\"', 'model.context_window >= request.prompt_tokens + 256', '!has(metadata.block_all)']\n",
        artifact.display(),
        encoder_dir().display()
    );
    Harness::start_with(Options {
        extra,
        ..Options::default()
    })
    .await
}

pub fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sy-auto-{name}-{}", std::process::id()))
}

/// Writes a file by rename, as a deploy tool would, so a watching server never reads half of it.
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

pub fn set_manifest(dir: &Path, edit: impl Fn(&mut Value)) {
    let path = dir.join("manifest.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut m);
    write_atomic(&path, &m.to_string());
}

pub async fn auto_model(h: &Harness) -> Value {
    let v: Value = h.get_json("/v1/models").await;
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "auto")
        .unwrap()
        .clone()
}

pub async fn wait_for_version(h: &Harness, version: &str) {
    for _ in 0..100 {
        if auto_model(h).await["artifact_version"] == version {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("artifact {version} was not loaded: {}", auto_model(h).await);
}
