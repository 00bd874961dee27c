//! Criterion benches for the per-request work Switchyard adds: parsing, CEL routing with sticky
//! variants, and Anthropic ↔ OpenAI translation.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "tests and benches"
)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use serde_json::json;
use switchyard::config::{Config, DEFAULT_CONFIG};
use switchyard::format::request::ChatRequest;
use switchyard::route::RoutingTable;

fn bench(c: &mut Criterion) {
    let config = Config::parse(DEFAULT_CONFIG, "default", &|_| None).unwrap();
    let table = RoutingTable::new(&config);
    let body = json!({
        "model": "router/demo", "user": "user-42", "metadata": {"plan": "pro", "language": "en"},
        "messages": [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "Explain CEL in two sentences."}],
        "temperature": 0.2, "max_tokens": 200,
    });
    let raw = serde_json::to_vec(&body).unwrap();
    c.bench_function("parse_request", |b| {
        b.iter(|| {
            ChatRequest::from_openai(serde_json::from_slice(black_box(&raw)).unwrap()).unwrap()
        })
    });
    let req = ChatRequest::from_openai(body.clone()).unwrap();
    c.bench_function("plan_router_cel_sticky", |b| {
        b.iter(|| table.plan(black_box(&req), "rid").unwrap())
    });
    let direct = ChatRequest::from_openai(
        json!({"model": "mock/fast", "messages": [{"role": "user", "content": "x"}]}),
    )
    .unwrap();
    c.bench_function("plan_direct_model", |b| {
        b.iter(|| table.plan(black_box(&direct), "rid").unwrap())
    });
    let anth = json!({"model": "mock/fast", "max_tokens": 100, "system": "sys",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]});
    c.bench_function("anthropic_request_to_openai", |b| {
        b.iter(|| {
            switchyard::format::anthropic::request::to_openai(black_box(anth.clone())).unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
