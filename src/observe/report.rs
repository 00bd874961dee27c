//! Comparing the variants of a router on the logged traffic (`switchyard report --router NAME`,
//! `GET /v1/report?router=NAME`): per route and variant — e.g. the old artifact on 90 % of users
//! and a new one on 10 % — the requests, mean feedback (users and the judge) with a 95 %
//! interval, cost per 1k requests, time to first token p50 / p99, failover and error rates.
//! Reads the whole log directory: an operator's tool, not something to poll.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use switchyard_learn::logfiles::{feedback_scores, mean_for, read_records};
use switchyard_learn::score::quantile;

#[derive(Default)]
struct Group {
    requests: usize,
    errors: usize,
    failovers: usize,
    cost: f64,
    ttft: Vec<f64>,
    scores: Vec<f64>,
    artifacts: BTreeMap<String, usize>,
}

/// The comparison of `router`'s variants in the logs of `dir`.
pub fn compare(dir: &Path, router: &str) -> std::io::Result<Value> {
    let feedback = feedback_scores(dir)?;
    let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
    for r in read_records(dir, "requests")? {
        if r["router"].as_str() != Some(router) {
            continue;
        }
        let key = (
            r["route"].as_str().unwrap_or("").to_string(),
            r["variant"]
                .as_str()
                .or(r["learned"]["chosen"].as_str().map(|_| "auto"))
                .unwrap_or("")
                .to_string(),
        );
        let g = groups.entry(key).or_default();
        g.requests += 1;
        g.errors += usize::from(r["status"].as_u64() != Some(200));
        let attempts = r["attempts"].as_array().map_or(0, Vec::len);
        g.failovers += usize::from(attempts > 1);
        g.cost += r["cost_usd"].as_f64().unwrap_or(0.0);
        if let Some(t) = r["ttft_ms"].as_f64() {
            g.ttft.push(t);
        }
        if let Some(v) = r["learned"]["artifact_version"].as_str() {
            *g.artifacts.entry(v.to_string()).or_default() += 1;
        }
        let served = r["model"].as_str().unwrap_or("");
        if let Some(score) = r["request_id"]
            .as_str()
            .and_then(|id| mean_for(&feedback, id, served))
        {
            g.scores.push(score);
        }
    }
    let variants: Vec<Value> = groups
        .into_iter()
        .map(|((route, variant), mut g)| {
            g.ttft.sort_by(f64::total_cmp);
            let q = |level: f64| (!g.ttft.is_empty()).then(|| quantile(&g.ttft, level));
            let n = g.scores.len() as f64;
            let mean = (n > 0.0).then(|| g.scores.iter().sum::<f64>() / n);
            let ci = mean.filter(|_| n >= 2.0).map(|m| {
                let var = g.scores.iter().map(|s| (s - m).powi(2)).sum::<f64>() / (n - 1.0);
                let half = 1.96 * (var / n).sqrt();
                [m - half, m + half]
            });
            let per = |x: usize| x as f64 / g.requests.max(1) as f64;
            json!({
                "route": route, "variant": variant, "requests": g.requests,
                "feedback": {"requests_with_feedback": g.scores.len(), "mean": mean, "ci95": ci},
                "cost_per_1k_usd": 1000.0 * g.cost / g.requests.max(1) as f64,
                "ttft_ms": {"p50": q(0.5), "p99": q(0.99)},
                "failover_rate": per(g.failovers), "error_rate": per(g.errors),
                "artifact_versions": g.artifacts,
            })
        })
        .collect();
    let mut out = Map::new();
    out.insert("router".into(), json!(router));
    out.insert("logs".into(), json!(dir.display().to_string()));
    out.insert("variants".into(), Value::Array(variants));
    Ok(Value::Object(out))
}

/// The comparison as a markdown table.
pub fn markdown(report: &Value) -> String {
    let mut s = format!(
        "Router `{}` in {}\n\n| route | variant | requests | mean feedback [95 %] (n) | $ per 1k | TTFT p50 / p99 ms | failover | errors | artifacts |\n|---|---|---|---|---|---|---|---|---|\n",
        report["router"].as_str().unwrap_or(""),
        report["logs"].as_str().unwrap_or("")
    );
    let f = |v: &Value| v.as_f64().map_or("—".to_string(), |x| format!("{x:.3}"));
    for v in report["variants"].as_array().into_iter().flatten() {
        let fb = &v["feedback"];
        s.push_str(&format!(
            "| {} | {} | {} | {} [{}, {}] ({}) | ${:.4} | {} / {} | {:.1} % | {:.1} % | {} |\n",
            v["route"].as_str().unwrap_or(""),
            v["variant"].as_str().unwrap_or(""),
            v["requests"],
            f(&fb["mean"]),
            f(&fb["ci95"][0]),
            f(&fb["ci95"][1]),
            fb["requests_with_feedback"],
            v["cost_per_1k_usd"].as_f64().unwrap_or(0.0),
            f(&v["ttft_ms"]["p50"]),
            f(&v["ttft_ms"]["p99"]),
            100.0 * v["failover_rate"].as_f64().unwrap_or(0.0),
            100.0 * v["error_rate"].as_f64().unwrap_or(0.0),
            v["artifact_versions"]
                .as_object()
                .map(|m| m.keys().cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
        ));
    }
    s
}
