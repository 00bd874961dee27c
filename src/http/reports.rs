//! Reports over the logged traffic: `GET /v1/report` (a router's variants compared) and
//! `GET /v1/spend` (spend from the shared store, within the caller's scope).

use super::respond::Rejection;
use super::state::AppState;
use crate::error::GatewayError;
use crate::observe::report;
use axum::extract::Query;
use axum::{Extension, Json};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

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
