//! How the server is doing: `GET /metrics` (Prometheus text) and `GET /healthz`.

use super::state::AppState;
use crate::observe::judge::JudgeResult;
use crate::observe::metrics::header;
use axum::http::header;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde_json::{json, Value};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// What the in-memory tables that live across requests hold, and the most their configuration
/// lets them hold: the feedback index (`logging.feedback_window`), the analytics table
/// (`logging.analytics_rows`) and the embedding cache (`[auto] cache_size`).
fn memory_gauges(state: &AppState) -> String {
    let mut tables = vec![
        ("feedback_index", state.feedback.memory()),
        ("analytics", state.analytics.memory()),
    ];
    if let Ok(a) = &state.planner.auto.get() {
        tables.push(("embedding_cache", a.cache_memory()));
    }
    let mut out = String::new();
    for (name, help, limit) in [
        (
            "switchyard_memory_bytes",
            "Bytes held by an in-memory table (estimated from its entries and allocations).",
            false,
        ),
        (
            "switchyard_memory_limit_bytes",
            "The most an in-memory table can hold under the current configuration.",
            true,
        ),
    ] {
        header(&mut out, name, "gauge", help);
        for (table, (held, bound)) in &tables {
            let bytes = if limit { bound } else { held };
            out.push_str(&format!("{name}{{table=\"{table}\"}} {bytes}\n"));
        }
    }
    out
}

/// `GET /metrics`: the auth layer asks for the router key unless `server.metrics_public`.
pub async fn metrics(Extension(state): Extension<Arc<AppState>>) -> impl IntoResponse {
    let mut text = state.metrics.render();
    text.push_str(&live_gauges(&state.live));
    header(
        &mut text,
        "switchyard_model_next_probe_ms",
        "gauge",
        "Models whose circuit is open: milliseconds until one request probes them.",
    );
    for (model, ms) in state.cooldowns.open() {
        text.push_str(&format!(
            "switchyard_model_next_probe_ms{{model=\"{model}\"}} {ms}\n"
        ));
    }
    if let Some(store) = &state.store {
        text.push_str(&store_metrics(store));
    }
    text.push_str(&memory_gauges(&state));
    if let Ok(a) = &state.planner.auto.get() {
        text.push_str(&format!(
            "# HELP switchyard_embedding_cache_total Prompt-embedding cache lookups of learned routing.\n# TYPE switchyard_embedding_cache_total counter\nswitchyard_embedding_cache_total{{result=\"hit\"}} {}\nswitchyard_embedding_cache_total{{result=\"miss\"}} {}\n",
            a.cache_hits.load(Relaxed),
            a.cache_misses.load(Relaxed)
        ));
        text.push_str(&format!(
            "# HELP switchyard_auto_decisions_total Learned-routing decisions by the support of the prompt (unfamiliar: below min_support, decided by the [auto] unfamiliar policy).\n# TYPE switchyard_auto_decisions_total counter\nswitchyard_auto_decisions_total{{support=\"familiar\"}} {}\nswitchyard_auto_decisions_total{{support=\"unfamiliar\"}} {}\n",
            a.familiar.load(Relaxed),
            a.unfamiliar.load(Relaxed)
        ));
        text.push_str(&format!(
            "# HELP switchyard_auto_explorations_total Learned-routing decisions that served an explored (non-top) candidate ([auto] explore).\n# TYPE switchyard_auto_explorations_total counter\nswitchyard_auto_explorations_total {}\n",
            a.explorer.explored.load(Relaxed)
        ));
    }
    if state.config.judge.is_some() {
        let j = &state.judge;
        text.push_str("# HELP switchyard_judge_total LLM-judge judgements of sampled auto answers by result.\n# TYPE switchyard_judge_total counter\n");
        for r in JudgeResult::ALL {
            text.push_str(&format!(
                "switchyard_judge_total{{result=\"{}\"}} {}\n",
                r.label(),
                j.counted(r)
            ));
        }
        text.push_str(&format!(
            "# HELP switchyard_judge_retries_total Judge tries repeated after a failure or an answer without a score.\n# TYPE switchyard_judge_retries_total counter\nswitchyard_judge_retries_total {}\n# HELP switchyard_judge_cost_usd_total What judging cost.\n# TYPE switchyard_judge_cost_usd_total counter\nswitchyard_judge_cost_usd_total {}\n",
            j.retries.load(Relaxed),
            j.cost_usd()
        ));
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// Reads one estimate of a model.
type Reading = fn(&crate::live::Estimate) -> Option<f64>;

/// The live estimates as Prometheus gauges (models with attempts in the window).
fn live_gauges(live: &crate::live::LiveStats) -> String {
    let all = live.all();
    let mut text = String::new();
    let gauges: [(&str, &str, Reading); 3] = [
        ("switchyard_model_ttft_p50_ms", "Live time to first token of a model (decaying weighted median of its recent attempts).", |e| e.ttft_p50_ms),
        ("switchyard_model_latency_p50_ms", "Live total latency of a model (decaying weighted median of its recent attempts).", |e| e.latency_p50_ms),
        ("switchyard_model_error_rate", "Live share of a model's recent attempts that failed (decaying weighted mean).", |e| e.error_rate),
    ];
    for (name, help, get) in gauges {
        header(&mut text, name, "gauge", help);
        for (model, e) in &all {
            if let Some(v) = get(e) {
                text.push_str(&format!("{name}{{model=\"{model}\"}} {v}\n"));
            }
        }
    }
    text
}

/// The shared store's counters as Prometheus text.
fn store_metrics(store: &crate::store::Store) -> String {
    use std::sync::atomic::AtomicU64;
    // One counter with a label, one line per label value.
    let counter =
        |text: &mut String, name: &str, help: &str, label: &str, values: &[(&str, &AtomicU64)]| {
            header(text, name, "counter", help);
            for (value, n) in values {
                text.push_str(&format!(
                    "{name}{{{label}=\"{value}\"}} {}\n",
                    n.load(Relaxed)
                ));
            }
        };
    let mut text = String::new();
    if let Some(w) = &store.writer {
        let s = &w.stats;
        counter(
            &mut text,
            "switchyard_store_records_total",
            "Request records sent to PostgreSQL, by outcome.",
            "outcome",
            &[
                ("written", &s.written),
                ("dropped", &s.dropped),
                ("failed", &s.failed),
                ("lost", &s.lost),
            ],
        );
        let gauges: [(&str, &str, u64); 2] = [
            (
                "switchyard_store_queue",
                "Records waiting for the PostgreSQL writer.",
                s.queued.load(Relaxed),
            ),
            (
                "switchyard_store_spool",
                "Records whose write failed, waiting to be written again.",
                s.spooled.load(Relaxed),
            ),
        ];
        for (name, help, v) in gauges {
            header(&mut text, name, "gauge", help);
            text.push_str(&format!("{name} {v}\n"));
        }
    }
    if let Some(pg) = &store.pg {
        header(
            &mut text,
            "switchyard_store_up",
            "gauge",
            "1 while the connection to PostgreSQL is up.",
        );
        text.push_str(&format!(
            "switchyard_store_up{{store=\"postgres\"}} {}\n",
            u8::from(pg.health().0)
        ));
        header(
            &mut text,
            "switchyard_store_reconnects_total",
            "counter",
            "Connections to PostgreSQL re-established after one ended.",
        );
        text.push_str(&format!(
            "switchyard_store_reconnects_total {}\n",
            pg.reconnects.load(Relaxed)
        ));
    }
    if let Some(keys) = &store.keys {
        header(
            &mut text,
            "switchyard_keys_age_seconds",
            "gauge",
            "Seconds since the virtual keys were last reloaded.",
        );
        text.push_str(&format!(
            "switchyard_keys_age_seconds {}\n",
            keys.staleness_secs()
        ));
    }
    if let Some(l) = &store.limits {
        counter(
            &mut text,
            "switchyard_limit_redis_errors_total",
            "Limit decisions made without Redis, by what the key's on_redis_error chose.",
            "decision",
            &[
                ("admitted", &l.redis_errors_admitted),
                ("refused", &l.redis_errors_refused),
            ],
        );
        counter(
            &mut text,
            "switchyard_limit_events_total",
            "Budget counters rebuilt from the store's spend, and reservations that could not be settled.",
            "event",
            &[("seeded", &l.seeded), ("settle_failed", &l.settle_errors)],
        );
    }
    text
}

/// `GET /healthz`: `ok`, or `degraded` with what is down when a shared store does not answer
/// (the replica still serves; records wait in the spool, and virtual keys are refused once the
/// keys are older than `[store] keys_max_staleness`). Always 200: the replica is alive.
pub async fn healthz(Extension(state): Extension<Arc<AppState>>) -> Json<Value> {
    let Some(store) = &state.store else {
        return Json(json!({"status": "ok"}));
    };
    let mut report = serde_json::Map::new();
    let mut ok = true;
    if let Some(pg) = &store.pg {
        let (up, down_since_ms) = pg.health();
        ok &= up;
        report.insert(
            "postgres".into(),
            json!({"up": up, "down_since_ms": down_since_ms,
                   "reconnects": pg.reconnects.load(Relaxed),
                   "spooled_records": store.writer.as_ref().map(|w| w.stats.spooled.load(Relaxed))}),
        );
    }
    if let Some(keys) = &store.keys {
        report.insert(
            "keys".into(),
            json!({"age_s": keys.staleness_secs(), "usable": keys.usable()}),
        );
        ok &= keys.usable();
    }
    if let Some(limits) = &store.limits {
        let up = limits.ping().await;
        ok &= up;
        report.insert("redis".into(), json!({"up": up}));
    }
    Json(json!({"status": if ok { "ok" } else { "degraded" }, "store": report}))
}
