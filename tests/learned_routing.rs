//! Learned-routing logic with a deterministic fake encoder: the committed default artifact,
//! the default config's `[auto]` section, and no encoder files. Guardrails, candidate subsets,
//! the knob and the 400 when nothing is eligible are checked without ONNX Runtime or potion
//! (the real encoders are covered by `tests/encoder.rs` and `tests/auto.rs`).

use serde_json::json;
use std::path::Path;
use switchyard::config::Config;
use switchyard::format::request::ChatRequest;
use switchyard::route::learned::AutoRouter;
use switchyard_learn::embed::fake::FakeEncoder;

fn router() -> AutoRouter {
    let mut config = Config::embedded_default().expect("default config");
    let auto = config.auto.as_mut().expect("[auto] in the default config");
    auto.artifact = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    // The fake claims the default artifact's encoder id and dimension.
    let fake = FakeEncoder::new("potion-base-8M", 256);
    AutoRouter::with_encoder(auto, Box::new(fake)).unwrap_or_else(|e| panic!("{e}"))
}

fn request(body: serde_json::Value) -> ChatRequest {
    ChatRequest::from_openai(body).unwrap()
}

#[test]
fn knob_moves_the_choice_from_strong_to_cheap() {
    let r = router();
    let req = request(
        json!({"model": "auto", "messages": [{"role": "user", "content": "Prove that there are infinitely many primes."}]}),
    );
    let (best, d) = r.decide(&req, "best", 0.0, &[]).unwrap();
    assert_eq!(d.candidates.len(), 2);
    assert!(d.candidates.iter().all(|c| c.eligible));
    let (cheap, _) = r.decide(&req, "cheap", 1.0, &[]).unwrap();
    // At weight 0 the higher predicted quality wins; at weight 1 the cost term dominates.
    let quality = |id: &str| {
        d.candidates
            .iter()
            .find(|c| c.model == id)
            .unwrap()
            .predicted_quality
    };
    assert!(quality(&best[0].id) >= quality(&best[1].id));
    assert_eq!(cheap[0].id, "mock/fast");
    assert_eq!(best.len(), 2, "both candidates stay in the chain");
}

#[test]
fn guardrails_drop_candidates_and_say_why() {
    let r = router();
    // Every price is above -1, so `max_price_per_mtok = -1` fails both: the 400 lists each.
    let req = request(
        json!({"model": "auto", "metadata": {"max_price_per_mtok": -1},
        "messages": [{"role": "user", "content": "hi"}]}),
    );
    let e = r.decide(&req, "balanced", 0.1, &[]).unwrap_err();
    assert_eq!(e.status.as_u16(), 400);
    assert!(e.message.contains("mock/smart failed"), "{}", e.message);
    assert!(e.message.contains("mock/fast failed"), "{}", e.message);
    // A non-identifier metadata key is ignored as a variable but still under `metadata`.
    let req = request(
        json!({"model": "auto", "metadata": {"max-price": 1, "model": "x"},
        "messages": [{"role": "user", "content": "hi"}]}),
    );
    let (_, d) = r.decide(&req, "balanced", 0.1, &[]).unwrap();
    assert!(d
        .candidates
        .iter()
        .all(|c| c.eligible && c.guardrails.len() == 2));
}

#[test]
fn a_route_subset_limits_the_candidates() {
    let r = router();
    let req = request(json!({"model": "auto", "messages": [{"role": "user", "content": "hello"}]}));
    let (chain, d) = r
        .decide(&req, "best", 0.0, &["mock/fast".to_string()])
        .unwrap();
    assert_eq!(chain.len(), 1);
    assert_eq!(chain[0].id, "mock/fast");
    assert_eq!(d.chosen, "mock/fast");
    assert_eq!(d.encoder_id, "potion-base-8M");
}

#[test]
fn the_same_prompt_hits_the_embedding_cache() {
    let r = router();
    let req =
        request(json!({"model": "auto", "messages": [{"role": "user", "content": "same words"}]}));
    let (_, first) = r.decide(&req, "balanced", 0.1, &[]).unwrap();
    let (_, second) = r.decide(&req, "balanced", 0.1, &[]).unwrap();
    assert!(!first.embedding_cache_hit);
    assert!(second.embedding_cache_hit);
    assert_eq!(first.chosen, second.chosen);
}
