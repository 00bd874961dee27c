//! The read-only endpoints: `GET /v1/models` (models, routers and `auto`, with prices, cooldowns
//! and the learned router's state), `GET /metrics` (Prometheus text) and `GET /healthz`.

use super::respond::Rejection;
use super::state::AppState;
use crate::error::GatewayError;
use crate::observe::judge::JudgeResult;
use crate::observe::metrics::header;
use crate::observe::report;
use axum::extract::Query;
use axum::http::header;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

pub async fn list_models(Extension(state): Extension<Arc<AppState>>) -> Json<Value> {
    let table = &state.planner.table;
    let mut data: Vec<Value> = table
        .models
        .iter()
        .map(|m| {
            json!({
                "id": m.id, "object": "model", "created": 0, "owned_by": m.provider, "type": "model",
                "upstream": m.upstream, "input_price_per_mtok": m.input_price_per_mtok,
                "output_price_per_mtok": m.output_price_per_mtok, "context_window": m.context_window,
                "max_output_tokens": m.max_output_tokens, "tags": m.tags,
                "cooldown": state.cooldowns.describe(&m.id),
                "live": state.live.estimate(&m.id),
            })
        })
        .collect();
    for r in &table.routers {
        data.push(json!({
            "id": format!("router/{}", r.name), "object": "model", "created": 0, "owned_by": "switchyard",
            "type": "router", "routes": r.routes.iter().map(|x| &x.name).chain([&r.default.name]).collect::<Vec<_>>(),
        }));
    }
    data.push(match &state.planner.auto.get() {
        Ok(a) => {
            let e = a.explorer.settings();
            json!({
            "id": "auto", "object": "model", "created": 0, "owned_by": "switchyard", "type": "auto", "available": true,
            "artifact_version": a.artifact.version(), "encoder": a.encoder.id(),
            "candidates": a.candidates(),
            "unfamiliar": {"policy": a.policy, "min_support": a.min_support},
            "explore": {"share": e.share, "budget_usd_per_hour": e.budget_usd_per_hour,
                "onboard": e.onboard, "onboard_outcomes": e.onboard_outcomes},
            "knobs": ["auto:best", "auto:balanced", "auto:cheap"], "strong_share_calibrated": a.calibration.is_some(),
            })
        }
        Err(why) => json!({
            "id": "auto", "object": "model", "created": 0, "owned_by": "switchyard", "type": "auto",
            "available": false, "reason": why.to_string(),
        }),
    });
    Json(json!({"object": "list", "data": data}))
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

/// `GET /v1/report?router=NAME`: the router's variants compared on the logged traffic.
pub async fn report(
    Extension(state): Extension<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Rejection> {
    Ok(Json(report_of(&state, &q).await?))
}

async fn report_of(state: &AppState, q: &HashMap<String, String>) -> Result<Value, GatewayError> {
    let router = q
        .get("router")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            GatewayError::invalid(
                "`router` is required, e.g. /v1/report?router=main",
                "router",
            )
        })?
        .trim_start_matches("router/")
        .to_string();
    if !state.config.routers.contains_key(&router) {
        return Err(GatewayError::invalid(
            format!("no router {router:?} in this config"),
            "router",
        ));
    }
    if !state.config.logging.enabled {
        return Err(GatewayError::invalid(
            "the report reads the request log; enable [logging]",
            "router",
        ));
    }
    let dir = state.config.logging.dir.clone();
    super::analytics::read(state, Box::new(move |ix| report::of(ix, &router, &dir))).await
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

/// `GET /v1/spend?by=key|team|model|router|day&window=30d`: spend from the shared store.
/// A virtual key sees its team's spend (or its own).
pub async fn spend(
    Extension(state): Extension<Arc<AppState>>,
    Extension(key): Extension<super::auth::Key>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Rejection> {
    let pg = state
        .store
        .as_ref()
        .and_then(|s| s.pg.clone())
        .ok_or_else(|| {
            GatewayError::invalid(
                "spend reads the shared store; configure [store] postgres_env",
                "by",
            )
        })?;
    let by = q.get("by").map_or("key", String::as_str);
    let window = q.get("window").map_or("30d", String::as_str);
    let span = crate::config::parse_duration(window).map_err(|_| {
        GatewayError::invalid(
            format!("`window` must be a duration such as 1h or 30d, got {window:?}"),
            "window",
        )
    })?;
    let since = crate::clock::unix_millis().saturating_sub(span.as_millis() as u64);
    let rows = pg
        .spend(by, since, &key.scope())
        .await
        .map_err(|e| GatewayError::invalid(e.to_string(), "by"))?;
    Ok(Json(
        json!({"object": "spend", "by": by, "since_ms": since, "rows": rows}),
    ))
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
