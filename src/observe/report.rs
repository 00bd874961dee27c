//! Comparing the variants of a router on the logged traffic (`switchyard report --router NAME`,
//! `GET /v1/report?router=NAME`): per route and variant — e.g. the old artifact on 90 % of users
//! and a new one on 10 % — the requests, mean feedback from users and from the judge with 95 %
//! intervals and a statement of whether the difference from the baseline arm is significant,
//! cost per 1k requests, TTFT p50 / p99, failover and error rates, artifact versions. The
//! numbers are the analytics table's experiments panel for that router.

use super::analytics::index::Index;
use super::analytics::query::{experiments, Filter};
use super::analytics::savings::savings;
use serde_json::{json, Value};
use std::path::Path;

/// The comparison of `router`'s variants in the logs of `dir` (read whole: an operator's tool).
pub fn compare(dir: &Path, router: &str) -> std::io::Result<Value> {
    let mut ix = Index::new(usize::MAX);
    ix.refresh(dir)?;
    Ok(of(&ix, router, dir))
}

/// The comparison of `router`'s variants in a table already read from `dir`.
pub fn of(ix: &Index, router: &str, dir: &Path) -> Value {
    let filter = Filter {
        router: Some(router.to_string()),
        ..Filter::all()
    };
    let arms = experiments(ix, &filter)["routers"][0]["arms"].clone();
    json!({
        "router": router,
        "logs": dir.display().to_string(),
        "variants": if arms.is_null() { json!([]) } else { arms },
        "savings": savings(ix, &filter)["overall"],
    })
}

/// The comparison as a markdown table.
pub fn markdown(report: &Value) -> String {
    let mut s = format!(
        "Router `{}` in {}\n\n| route | variant | requests | feedback [95 %] (n) | judge [95 %] (n) | $ per 1k | TTFT p50 / p99 ms | failover | errors | artifacts | against the baseline |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
        report["router"].as_str().unwrap_or(""),
        report["logs"].as_str().unwrap_or("")
    );
    let f = |v: &Value| v.as_f64().map_or("—".to_string(), |x| format!("{x:.3}"));
    let scores = |s: &Value| {
        format!(
            "{} [{}, {}] ({})",
            f(&s["mean"]),
            f(&s["ci95"][0]),
            f(&s["ci95"][1]),
            s["n"]
        )
    };
    let saved = &report["savings"];
    if saved["requests"].as_u64().unwrap_or(0) > 0 {
        let q = &saved["quality"];
        let quality = match q["status"].as_str() {
            Some("estimated") => format!(
                "quality {} served vs {} estimated on the baseline, difference {} [95 %: {}, {}]",
                f(&q["served"]),
                f(&q["baseline"]),
                f(&q["difference"]),
                f(&q["low"]),
                f(&q["high"])
            ),
            _ => q["message"].as_str().unwrap_or("").to_string(),
        };
        s = format!(
            "Savings of {} `auto` requests against each decision's baseline: ${:.4} spent, ${:.4} on the baseline, ${:.4} saved ({:.1} %); {quality}\n\n{s}",
            saved["requests"],
            saved["cost_usd"].as_f64().unwrap_or(0.0),
            saved["baseline_cost_usd"].as_f64().unwrap_or(0.0),
            saved["saved_usd"].as_f64().unwrap_or(0.0),
            100.0 * saved["saved_share"].as_f64().unwrap_or(0.0),
        );
    }
    for v in report["variants"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | ${:.4} | {} / {} | {:.1} % | {:.1} % | {} | {} |\n",
            v["route"].as_str().unwrap_or(""),
            v["variant"].as_str().unwrap_or(""),
            v["requests"],
            scores(&v["feedback"]),
            scores(&v["judge"]),
            v["cost_per_1k_requests_usd"].as_f64().unwrap_or(0.0),
            f(&v["ttft_ms"]["p50"]),
            f(&v["ttft_ms"]["p99"]),
            100.0 * v["failover_rate"].as_f64().unwrap_or(0.0),
            100.0 * v["error_rate"].as_f64().unwrap_or(0.0),
            v["artifact_versions"]
                .as_object()
                .map(|m| m.keys().cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            v["versus_baseline"]["statement"].as_str().unwrap_or(""),
        ));
    }
    s
}
