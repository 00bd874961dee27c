//! Common-sense routing of everyday prompts (`tests/data/everyday_prompts.json`, written here
//! and never trained on): the embedded default config with OpenAI and Anthropic keys set (so
//! `auto` spans their real models, none of which the artifact has outcomes of), the committed
//! artifact and the real potion encoder, at the default knob. Simple prompts should go to the
//! cheapest candidate, hard ones to a stronger one. What the current artifact achieves is
//! measured and printed; the assertions hold it to that floor (see docs/src/learned-routing.md
//! for the numbers and why the target of all 60 is not met).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "tests"
)]

use serde_json::{json, Value};
use std::path::Path;
use switchyard::config::Config;
use switchyard::format::request::ChatRequest;
use switchyard::route::learned::AutoRouter;

fn router() -> AutoRouter {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let env = |k: &str| {
        matches!(k, "OPENAI_API_KEY" | "ANTHROPIC_API_KEY").then(|| "sk-test".to_string())
    };
    let mut config = Config::parse(switchyard::config::DEFAULT_CONFIG, "default", &env).unwrap();
    let auto = config.auto.as_mut().unwrap();
    auto.artifact = root.join("models");
    auto.encoder = root.join("models/encoder-potion");
    auto.explore.onboard = 0.0;
    AutoRouter::load(auto).unwrap()
}

#[test]
fn everyday_prompts_are_routed_with_common_sense_at_the_default_knob() {
    let r = router();
    let prompts: Value = serde_json::from_str(include_str!("data/everyday_prompts.json")).unwrap();
    let mut cheapest_by_price: Vec<(String, f64)> = vec![];
    let mut tally = |kind: &str| -> (usize, usize, Vec<String>) {
        let list = prompts[kind].as_array().unwrap();
        let (mut cheap, mut shown) = (0, vec![]);
        for p in list {
            let req = ChatRequest::from_openai(
                json!({"model": "auto", "messages": [{"role": "user", "content": p}]}),
            )
            .unwrap();
            let (chain, d) = r
                .decide(&req, "default", r.default_cost_weight, &[])
                .unwrap();
            if cheapest_by_price.is_empty() {
                cheapest_by_price = d
                    .candidates
                    .iter()
                    .map(|c| (c.model.clone(), c.relative_cost))
                    .collect();
                cheapest_by_price.sort_by(|a, b| a.1.total_cmp(&b.1));
            }
            let is_cheapest = chain[0].id == cheapest_by_price[0].0;
            cheap += usize::from(is_cheapest);
            shown.push(format!(
                "{:<40} -> {}{}",
                p.as_str().unwrap().chars().take(40).collect::<String>(),
                chain[0].id,
                if d.unfamiliar { " (unfamiliar)" } else { "" }
            ));
        }
        (cheap, list.len(), shown)
    };
    let (simple_cheap, simple_n, simple_shown) = tally("simple");
    let (hard_cheap, hard_n, hard_shown) = tally("hard");
    for l in simple_shown.iter().chain(&hard_shown) {
        println!("{l}");
    }
    let right = simple_cheap + (hard_n - hard_cheap);
    println!(
        "simple -> cheapest: {simple_cheap}/{simple_n}; hard -> a stronger candidate: {}/{hard_n}; right: {right}/{}",
        hard_n - hard_cheap,
        simple_n + hard_n
    );
    assert!(simple_n >= 30 && hard_n >= 30);
    // Measured with the committed artifact on 2026-12-07: 49 of 60 (19/30 simple to the
    // cheapest, 30/30 hard to a stronger candidate); the target is 60. This floor catches a
    // regression below what holds now, not success.
    assert!(right >= 49, "{right}/60 routed with common sense");
    assert_eq!(
        hard_cheap, 0,
        "every hard prompt goes to a stronger candidate"
    );
}
