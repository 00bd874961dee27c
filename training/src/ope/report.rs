//! What off-policy evaluation writes (`metrics.json`, read by the simulator too), and the page
//! and chart made from it.

use crate::eval::svg::{chart, Series, Style};
use serde::Serialize;
use std::collections::BTreeMap;

/// `metrics.json` of an off-policy evaluation.
#[derive(Debug, Serialize)]
pub struct OpeReport {
    pub artifact: String,
    pub logs: String,
    /// Logged `auto` decisions with feedback.
    pub decisions: usize,
    pub notes: Vec<String>,
    pub min_matches: usize,
    pub seed: u64,
    pub bootstrap_resamples: usize,
    pub cross_fit_folds: usize,
    pub new_policy: PolicyValue,
    /// The share of the logged prompts the new artifact sends to each model.
    pub new_policy_traffic_share: BTreeMap<String, f64>,
    pub logging_policy_observed: Observed,
    /// Each candidate alone.
    pub single_models: BTreeMap<String, PolicyValue>,
}

/// The mean feedback and cost observed under the logging policy.
#[derive(Debug, Serialize)]
pub struct Observed {
    pub quality: f64,
    pub cost_usd: f64,
}

/// A policy's estimated quality and cost on the logged traffic.
#[derive(Debug, Serialize)]
pub struct PolicyValue {
    /// Logged decisions whose served model the policy would have chosen.
    pub matches: usize,
    pub effective_sample_size: f64,
    pub quality: Estimates,
    pub cost_usd: Estimates,
}

/// Inverse-propensity and doubly robust estimates of one quantity.
#[derive(Debug, Serialize)]
pub struct Estimates {
    pub ips: Estimate,
    pub dr: Estimate,
}

/// An estimate with its 95 % interval, or why there is none (`value` null).
#[derive(Debug, Serialize)]
pub struct Estimate {
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci95: Option<[f64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// Cost against quality, DR estimates: the new artifact, each single model, and the logging
/// policy as observed (policies without an estimate are left out).
pub fn svg(m: &OpeReport) -> String {
    let point = |p: &PolicyValue| -> Option<(f64, f64)> {
        Some((p.cost_usd.dr.value? * 1000.0, p.quality.dr.value?))
    };
    let mut series: Vec<Series> = Vec::new();
    let mut add = |name: String, p: Option<(f64, f64)>| {
        if let Some(p) = p {
            series.push(Series {
                name,
                points: vec![p],
                style: Style::Points,
            });
        }
    };
    add("new artifact (DR)".into(), point(&m.new_policy));
    for (name, p) in &m.single_models {
        add(format!("always {name} (DR)"), point(p));
    }
    let logged = &m.logging_policy_observed;
    add(
        "logging policy (observed)".into(),
        Some((logged.cost_usd * 1000.0, logged.quality)),
    );
    chart(
        "Off-policy estimates on the logged traffic",
        "cost, $ per 1k requests",
        "mean feedback score",
        &series,
    )
}

/// `report.md`.
pub fn markdown(m: &OpeReport) -> String {
    let cell = |e: &Estimate| match (e.value, e.ci95) {
        (Some(v), Some([lo, hi])) => format!("{v:.4} [{lo:.4}, {hi:.4}]"),
        (Some(v), None) => format!("{v:.4}"),
        (None, _) => "no estimate (thin support)".into(),
    };
    let row = |name: &str, p: &PolicyValue| {
        format!(
            "| {name} | {} | {:.1} | {} | {} | {} | {} |\n",
            p.matches,
            p.effective_sample_size,
            cell(&p.quality.ips),
            cell(&p.quality.dr),
            cell(&p.cost_usd.ips),
            cell(&p.cost_usd.dr),
        )
    };
    let mut s = format!(
        "# Off-policy evaluation of artifact {}\n\nLogged `auto` decisions with feedback in `{}`: {}. {}\n\nEach policy re-decides the logged prompts among the candidates eligible then. IPS weighs the logged outcomes where its choice equals the served model by 1 / propensity; DR adds the artifact's own prediction for its choice and corrects it by the weighted residual. 95 % intervals: {} seeded bootstrap resamples of the decisions. No estimate is given where fewer than {} decisions agree with the policy or the effective sample size is below that.\n\nObserved under the logging policy: quality {:.4}, cost ${:.6} per request.\n\n| policy | agreeing decisions | effective sample size | quality, IPS | quality, DR | cost USD, IPS | cost USD, DR |\n|---|---|---|---|---|---|---|\n",
        m.artifact,
        m.logs,
        m.decisions,
        m.notes.first().map_or("", String::as_str),
        m.bootstrap_resamples,
        m.min_matches,
        m.logging_policy_observed.quality,
        m.logging_policy_observed.cost_usd,
    );
    s.push_str(&row("new artifact", &m.new_policy));
    for (name, p) in &m.single_models {
        s.push_str(&row(&format!("always {name}"), p));
    }
    s.push_str("\nTraffic share of the new artifact on these prompts: ");
    let parts: Vec<String> = m
        .new_policy_traffic_share
        .iter()
        .map(|(k, v)| format!("{k} {:.1} %", v * 100.0))
        .collect();
    s.push_str(&parts.join(", "));
    s.push_str("\n\n![cost vs quality](cost_quality.svg)\n");
    s
}
