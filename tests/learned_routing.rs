//! Learned-routing logic with a deterministic fake encoder: the committed default artifact,
//! the default config's `[auto]` section, and no encoder files. Guardrails, candidate subsets,
//! the knob and the 400 when nothing is eligible are checked without ONNX Runtime or potion
//! (the real encoders are covered by `tests/encoder.rs` and `tests/auto.rs`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "tests and benches"
)]

use serde_json::json;
use std::path::Path;
use switchyard::config::Config;
use switchyard::format::request::ChatRequest;
use switchyard::route::learned::AutoRouter;
use switchyard_learn::embed::fake::FakeEncoder;

/// The default config's `[auto]` (three candidates: two with data, mock/mid on a prior) on the
/// committed artifact; `edit` changes the section first.
fn router_with(
    edit: impl FnOnce(&mut switchyard::config::AutoConfig),
) -> Result<AutoRouter, String> {
    let mut config = Config::embedded_default().expect("default config");
    let auto = config.auto.as_mut().expect("[auto] in the default config");
    auto.artifact = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    auto.explore.onboard = 0.0;
    edit(auto);
    // The fake claims the default artifact's encoder id and dimension.
    let fake = FakeEncoder::new("potion-base-8M", 256);
    AutoRouter::with_encoder(auto, Box::new(fake)).map_err(|e| e.to_string())
}

/// The default router, with every prompt counted as familiar (the fake encoder's vectors are
/// unlike any training prompt, so the default threshold would call them all unfamiliar).
fn router() -> AutoRouter {
    router_with(|a| a.min_support = Some(-1.0)).unwrap_or_else(|e| panic!("{e}"))
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
    assert_eq!(d.candidates.len(), 3);
    assert!(d.candidates.iter().all(|c| c.eligible));
    assert!(!d.unfamiliar && d.policy.is_none());
    let (cheap, _) = r.decide(&req, "cheap", 1.0, &[]).unwrap();
    // At weight 0 the higher score (predicted quality less its uncertainty penalty) wins; at
    // weight 1 the cost term dominates.
    let score = |id: &str| d.candidates.iter().find(|c| c.model == id).unwrap().score;
    assert!(score(&best[0].id) >= score(&best[1].id));
    assert!(score(&best[1].id) >= score(&best[2].id));
    assert_eq!(cheap[0].id, "mock/fast");
    assert_eq!(best.len(), 3, "every candidate stays in the chain");
}

#[test]
fn a_candidate_without_data_is_scored_from_its_prior_and_says_so() {
    let r = router();
    let req = request(
        json!({"model": "auto", "messages": [{"role": "user", "content": "Summarise the French revolution."}]}),
    );
    let (_, d) = r.decide(&req, "best", 0.0, &[]).unwrap();
    let mid = d.candidates.iter().find(|c| c.model == "mock/mid").unwrap();
    let smart = d
        .candidates
        .iter()
        .find(|c| c.model == "mock/smart")
        .unwrap();
    // The default artifact has a profile: mock/mid's prior (0.76) is its ability, and the
    // prompt's ease moves its prediction.
    assert_eq!(serde_json::to_value(mid.basis).unwrap(), "profile");
    assert_eq!(serde_json::to_value(smart.basis).unwrap(), "data");
    let ease = r.artifact.predict(&[0.0; 256], 10).ease;
    assert!(ease.is_some());
    assert_eq!(mid.neighbours, 0);
    assert!(mid.predicted_quality > 0.0 && mid.predicted_quality < 1.0);
    assert!(smart.neighbours > 0);
    // Every candidate has a prior: without [auto.priors] mock/mid gets its price tier's, and
    // the config says where it came from.
    let mut text = switchyard::config::DEFAULT_CONFIG
        .replace("priors = { \"mock/mid\" = { quality = 0.76 } }", "");
    text.push('\n');
    let c = switchyard::config::Config::parse(&text, "t.toml", &|_| None).unwrap();
    let auto = c.auto.unwrap();
    assert!(
        auto.prior_sources["mock/mid"].starts_with("price tier $5-20"),
        "{:?}",
        auto.prior_sources
    );
    assert!(auto.priors["mock/mid"].quality > auto.priors["mock/fast"].quality);
}

#[test]
fn unfamiliar_prompts_follow_the_policy_and_the_decision_says_so() {
    // Default threshold: the fake encoder's vectors are unlike every training prompt.
    let r = router_with(|_| {}).unwrap();
    assert!(
        r.min_support > 0.0,
        "the artifact's threshold: {}",
        r.min_support
    );
    let req = request(json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}));
    let (chain, d) = r.decide(&req, "balanced", 0.1, &[]).unwrap();
    assert!(
        d.unfamiliar && d.support.similarity < r.min_support,
        "{:?}",
        d.support
    );
    assert_eq!(
        d.policy,
        Some(switchyard_learn::score::Unfamiliar::Cheapest)
    );
    let ids: Vec<&str> = chain.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        ids,
        ["mock/fast", "mock/mid", "mock/smart"],
        "cheapest first"
    );
    let (chain, _) = r.decide(&req, "best", 0.0, &[]).unwrap();
    assert_eq!(chain[0].id, "mock/smart", "auto:best keeps the strongest");
    let strongest =
        router_with(|a| a.unfamiliar = switchyard_learn::score::Unfamiliar::Strongest).unwrap();
    assert_eq!(
        strongest.decide(&req, "balanced", 0.1, &[]).unwrap().0[0].id,
        "mock/smart"
    );
    assert_eq!(r.unfamiliar.load(std::sync::atomic::Ordering::Relaxed), 2);
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

/// `[auto] latency_weight` with live estimates: a slow top candidate loses its place, the
/// decision says which TTFTs it paid for, and guardrails read `model.ttft_p50_ms`.
#[test]
fn live_latency_weighs_on_the_score_and_guardrails_see_it() {
    use std::sync::Arc;
    use switchyard::live::LiveStats;
    let req = request(
        json!({"model": "auto", "messages": [{"role": "user", "content": "Prove that there are infinitely many primes."}]}),
    );
    let (best, d) = router().decide(&req, "best", 0.0, &[]).unwrap();
    assert!(d.live_ttft_ms.is_empty());
    let top = best[0].id.clone();
    let live = Arc::new(LiveStats::default());
    for _ in 0..5 {
        live.record(&top, true, 4000.0, 5000.0);
    }
    let weighted = router_with(|a| {
        a.min_support = Some(-1.0);
        a.latency_weight = 1.0;
    })
    .unwrap()
    .with_live(live.clone());
    let (chain, d) = weighted.decide(&req, "best", 0.0, &[]).unwrap();
    assert_ne!(chain[0].id, top, "4 s of TTFT costs 4 points of score");
    assert_eq!(d.live_ttft_ms.get(&top), Some(&4000.0));
    let guarded = router_with(|a| {
        a.min_support = Some(-1.0);
        a.guardrails = vec![Arc::new(
            switchyard::cel::CelExpr::compile("model.ttft_p50_ms < 1000").unwrap(),
        )];
    })
    .unwrap()
    .with_live(live);
    let (chain, d) = guarded.decide(&req, "best", 0.0, &[]).unwrap();
    assert!(
        chain.iter().all(|m| m.id != top),
        "the slow model fails the guardrail"
    );
    assert!(d.candidates.iter().any(|c| c.model == top && !c.eligible));
}
