//! `GET /v1/models`: the models, routers and `auto`, with prices, cooldowns and the learned
//! router's state.

use super::state::AppState;
use axum::{Extension, Json};
use serde_json::{json, Value};
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
