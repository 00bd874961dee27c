//! The learned-routing decision (embed + predict + guardrails + rank) with the embedded default
//! config's `[auto]` section and the committed default artifact (`models/LATEST`).
//!
//! - `decision/miss/<tokens>`: a prompt the cache has not seen (20, 200 and 2,000 tokens; the
//!   encoder reads at most its token budget, 256);
//! - `decision/hit/200`: the same prompt again (embedding from the LRU cache);
//! - `decision/without_encoder/200`: predict + guardrails + rank from a ready embedding;
//! - `decision/concurrent2/200`: two threads deciding distinct prompts at once (per decision);
//! - `decision/real_models_miss/200`: a miss with OpenAI and Anthropic keys set (`auto` over
//!   their five real models on priors and the artifact's profile), and the same with the profile
//!   taken out (`real_models_miss_without_profile/200`).
//!
//! `cargo bench --bench decision` (needs the default artifact's encoder: `scripts/setup.sh`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "tests and benches"
)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use serde_json::json;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use switchyard::config::Config;
use switchyard::format::request::ChatRequest;
use switchyard::route::learned::AutoRouter;

const PARAGRAPH: &str =
    "The committee reviewed the quarterly budget, asked why travel costs rose by 14 percent, \
and requested a breakdown by department before the vote on Thursday. ";

fn router(cache_size: usize) -> AutoRouter {
    router_with(
        cache_size,
        Config::embedded_default().expect("default config"),
    )
}

/// The embedded default config with OpenAI and Anthropic keys set: `auto` over their real
/// models, none with outcome data (the profile's path: ease, its support, its cost unit).
fn router_real() -> AutoRouter {
    let env =
        |k: &str| matches!(k, "OPENAI_API_KEY" | "ANTHROPIC_API_KEY").then(|| "k".to_string());
    let config =
        Config::parse(switchyard::config::DEFAULT_CONFIG, "default", &env).expect("default config");
    router_with(0, config)
}

fn router_with(cache_size: usize, mut config: Config) -> AutoRouter {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let auto = config.auto.as_mut().expect("[auto] in the default config");
    auto.artifact = root.join("models");
    let dir = switchyard_learn::artifact::artifact_dir(&auto.artifact).expect("models/LATEST");
    let artifact = switchyard_learn::artifact::Artifact::load(&dir).expect("the default artifact");
    let id = &artifact.manifest.encoder.id;
    auto.encoder = root.join(switchyard_learn::embed::dir_for(id));
    auto.cache_size = cache_size;
    AutoRouter::load(auto).unwrap_or_else(|e| panic!("{e}"))
}

/// A request whose prompt has about `tokens` tokens (the gateway's estimate, 4 characters per
/// token; the encoder reads at most its budget), made unique by `n`.
fn request(tokens: usize, n: u64) -> ChatRequest {
    let mut text = format!("Case {n}. ");
    while (switchyard_learn::prompt::estimate_tokens(&text) as usize) < tokens {
        text.push_str(PARAGRAPH);
    }
    ChatRequest::from_openai(
        json!({"model": "auto", "messages": [{"role": "user", "content": text}]}),
    )
    .unwrap()
}

fn decisions(c: &mut Criterion) {
    let cold = router(0);
    let mut g = c.benchmark_group("decision");
    g.sample_size(30).measurement_time(Duration::from_secs(6));
    for tokens in [20, 200, 2000] {
        let reqs: Vec<ChatRequest> = (0..64).map(|n| request(tokens, n)).collect();
        let mut i = 0;
        g.bench_with_input(BenchmarkId::new("miss", tokens), &tokens, |b, _| {
            b.iter(|| {
                i += 1;
                cold.decide(&reqs[i % reqs.len()], "balanced", 0.15, &[])
                    .unwrap()
            })
        });
    }
    let real = router_real();
    let reqs: Vec<ChatRequest> = (0..64).map(|n| request(200, n)).collect();
    let mut i = 0;
    g.bench_function("real_models_miss/200", |b| {
        b.iter(|| {
            i += 1;
            real.decide(&reqs[i % reqs.len()], "balanced", 0.1, &[])
                .unwrap()
        })
    });
    // The same without the profile (each candidate at its flat prior): the profile's cost.
    let mut flat = router_real();
    flat.artifact.weights.profile = None;
    g.bench_function("real_models_miss_without_profile/200", |b| {
        b.iter(|| {
            i += 1;
            flat.decide(&reqs[i % reqs.len()], "balanced", 0.1, &[])
                .unwrap()
        })
    });
    let warm = router(1024);
    let req = request(200, 0);
    warm.decide(&req, "balanced", 0.15, &[]).unwrap();
    g.bench_function("hit/200", |b| {
        b.iter(|| warm.decide(&req, "balanced", 0.15, &[]).unwrap())
    });
    let embedding = warm
        .encoder
        .embed(&switchyard_learn::prompt::prompt_text(req.messages()))
        .unwrap();
    g.bench_function("without_encoder/200", |b| {
        b.iter(|| {
            warm.decide_embedded(&req, &embedding, "balanced", 0.15, &[])
                .unwrap()
        })
    });
    // Two threads at once: time per decision as each thread sees it.
    let reqs: Vec<ChatRequest> = (0..64).map(|n| request(200, n)).collect();
    let next = AtomicU64::new(0);
    g.bench_function("concurrent2/200", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| {
                        for _ in 0..iters {
                            let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                            cold.decide(&reqs[n % reqs.len()], "balanced", 0.15, &[])
                                .unwrap();
                        }
                    });
                }
            });
            started.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
