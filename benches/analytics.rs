//! The analytics endpoints on a log of 1 M requests, through the real server on loopback.
//!
//! Writes `target/bench-analytics/requests-bench-000.ndjson` (1 M realistic records: a third of
//! them `auto` decisions with three scored candidates, 5 % failovers, 1 % errors, prompt and
//! answer text) and feedback on 10 % of them, once; starts the server with that log dir and
//! reports how long the analytics table takes to read the log (`index build`), then times:
//!
//! - `analytics/<panel>`: `GET /v1/analytics/<panel>?window=all` over all 1 M rows;
//! - `analytics/<panel>_filtered`: the same with `model=` and `router=` filters;
//! - `analytics/request_by_id`: the drill-down of one request.
//!
//! `cargo bench --bench analytics` (about 2 minutes, most of it writing and reading the log).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "tests and benches"
)]

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use switchyard::app::Server;
use switchyard::config::Config;

const ROWS: u64 = 1_000_000;
const MODELS: [&str; 4] = ["mock/fast", "mock/smart", "mock/mid", "mock/flaky"];
const START_MS: u64 = 1_796_000_000_000;

fn record(i: u64) -> serde_json::Value {
    let model = MODELS[(i % 3) as usize];
    let auto = i.is_multiple_of(3);
    let failover = i % 20 == 1;
    let error = i % 100 == 7;
    let mut attempts = vec![];
    if failover {
        attempts.push(json!({"model": "mock/flaky", "provider": "mock", "success": false, "status": 503, "error_kind": "status", "error": "unavailable", "time_to_first_token_ms": null, "duration_ms": 1.5}));
    }
    attempts.push(json!({"model": model, "provider": "mock", "success": !error, "status": if error {500} else {200}, "error_kind": if error {json!("status")} else {json!(null)}, "error": null, "time_to_first_token_ms": 40.0 + (i % 97) as f64, "duration_ms": 300.0 + (i % 503) as f64}));
    let knob = ["balanced", "cheap", "best"][(i % 7 % 3) as usize];
    let learned = auto.then(|| {
        let candidates: Vec<_> = MODELS[..3].iter().enumerate().map(|(k, m)| json!({
            "model": m, "basis": "learned", "predicted_quality": 0.6 + 0.1 * k as f64, "predicted_output_tokens": 180.0,
            "predicted_cost_usd": 0.0001 * (k + 1) as f64, "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
            "relative_cost": 0.5, "neighbours": 40, "score": 0.5 - 0.1 * k as f64, "eligible": true,
            "guardrails": [{"expression": "model.context_window >= request.prompt_tokens + 256", "passed": true}],
        })).collect();
        json!({"candidates": candidates, "chosen": model, "knob": knob,
               "cost_weight": 0.3, "prompt_tokens": 120, "support": {"mean_similarity": 0.7, "threshold": 0.4}, "unfamiliar": i.is_multiple_of(11),
               "exploration": {"explored": i.is_multiple_of(13), "propensity": 0.9}, "artifact_version": "bench-artifact",
               "encoder_id": "potion", "embedding_cache_hit": false, "decision_ms": 0.2 + (i % 10) as f64 / 100.0, "queue_ms": 0.0})
    });
    let (router, route, variant) = if auto {
        ("auto", None, None)
    } else {
        (
            "demo",
            Some("default"),
            Some(if i.is_multiple_of(2) { "a" } else { "b" }),
        )
    };
    json!({
        "ts": "2026-12-01T00:00:00.000Z", "ts_ms": START_MS + i * 50, "request_id": format!("{:032x}", i + 1),
        "endpoint": "/v1/chat/completions", "status": if error {502} else {200}, "key": format!("key-{:08x}", i % 5),
        "user": format!("user-{}", i % 5000), "metadata": {"plan": "pro"}, "requested_model": "router/demo",
        "router": router, "route": route, "variant": variant, "reason": "bench", "learned": learned,
        "model": if error {json!(null)} else {json!(model)}, "provider": "mock", "stream": i.is_multiple_of(2), "attempts": attempts,
        "ttft_ms": 40.0 + (i % 97) as f64, "duration_ms": 300.0 + (i % 503) as f64, "overhead_ms": 0.2,
        "prompt_tokens": 120, "completion_tokens": 180, "cost_usd": 0.0002, "error": null, "stream_interrupted": false,
        "prompt": [{"role": "user", "content": "Summarise the quarterly budget review and list the three largest cost increases by department."}],
        "completion": "The committee reviewed the budget. Travel rose 14 percent, software licences 9 percent and contractors 6 percent.",
    })
}

/// The bench log, written once (kept under target/ for later runs).
fn log_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-analytics");
    let done = dir.join(".complete");
    if done.exists() {
        return dir;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let started = Instant::now();
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(dir.join("requests-bench-000.ndjson")).unwrap(),
    );
    let mut fb = std::io::BufWriter::new(
        std::fs::File::create(dir.join("feedback-bench-000.ndjson")).unwrap(),
    );
    for i in 0..ROWS {
        serde_json::to_writer(&mut out, &record(i)).unwrap();
        out.write_all(b"\n").unwrap();
        if i % 10 == 2 {
            let model = MODELS[(i % 3) as usize];
            let line = json!({"ts_ms": START_MS + i * 50 + 1000, "request_id": format!("{:032x}", i + 1), "source": if i % 20 == 2 {"judge"} else {"user"}, "score": (i % 5) as f64 / 4.0, "model": model});
            serde_json::to_writer(&mut fb, &line).unwrap();
            fb.write_all(b"\n").unwrap();
        }
    }
    out.flush().unwrap();
    fb.flush().unwrap();
    std::fs::write(done, "").unwrap();
    let size = std::fs::metadata(dir.join("requests-bench-000.ndjson"))
        .unwrap()
        .len();
    eprintln!(
        "wrote {ROWS} records ({:.0} MB) in {:.1} s",
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    dir
}

fn bench(c: &mut Criterion) {
    let dir = log_dir();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let toml = format!(
        "[logging]\ndir = {:?}\n\n[providers.mock]\nkind = \"mock\"\n\n[[models]]\nid = \"mock/fast\"\n",
        dir.display().to_string()
    );
    let config = Config::parse(&toml, "bench", &|_| None).unwrap();
    let server = rt.block_on(Server::start(config, "127.0.0.1:0")).unwrap();
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            let r = http.get(url).send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            r.bytes().await.unwrap().len()
        }
    };
    let started = Instant::now();
    let rows = rt.block_on(async {
        let r = http
            .get(format!("{base}/v1/analytics/filters"))
            .send()
            .await;
        let v: serde_json::Value = r.unwrap().json().await.unwrap();
        v["rows"].as_u64().unwrap()
    });
    let build = started.elapsed().as_secs_f64();
    eprintln!(
        "index build: {rows} rows in {build:.1} s ({:.0} records/s; the first query waits for it)",
        rows as f64 / build
    );
    assert_eq!(rows, ROWS);
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.trim_start_matches("VmRSS:").trim().to_string())
        })
        .unwrap_or_default();
    eprintln!("resident memory with the table built (server and bench in one process): {rss}");

    let mut g = c.benchmark_group("analytics");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for panel in [
        "traffic",
        "models",
        "costs",
        "failovers",
        "learned",
        "experiments",
        "requests",
        "filters",
    ] {
        g.bench_function(panel, |b| {
            b.iter(|| rt.block_on(get(format!("/v1/analytics/{panel}?window=all"))))
        });
    }
    for panel in ["traffic", "models", "learned"] {
        g.bench_function(format!("{panel}_filtered"), |b| {
            b.iter(|| {
                rt.block_on(get(format!(
                    "/v1/analytics/{panel}?window=all&model=mock/fast&router=auto"
                )))
            })
        });
    }
    g.bench_function("request_by_id", |b| {
        b.iter(|| rt.block_on(get(format!("/v1/analytics/requests/{:032x}", 777_777))))
    });
    g.finish();
    rt.block_on(server.stop());
}

criterion_group!(benches, bench);
criterion_main!(benches);
