//! `GET /v1/analytics/{panel}` (traffic, models, costs, failovers, learned, experiments,
//! requests, filters) and `GET /v1/analytics/requests/{id}`: the JSON the dashboard draws,
//! computed from the request log by [`crate::observe::analytics`]. Each takes the window and
//! filters of [`Filter::parse`], within what the caller's key may see (a virtual key: its
//! team's requests, or its own; router keys: all); errors are OpenAI-shaped.

use super::auth::Key;
use super::respond::Rejection;
use super::state::AppState;
use crate::error::{ErrorKind, GatewayError};
use crate::observe::analytics::{self, index::Index, query, query::Filter};
use axum::extract::{Path, Query};
use axum::{Extension, Json};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use switchyard_learn::schema::LogRecord;

/// What computes a panel.
type Panel = fn(&Index, &Filter) -> Value;

/// The panels and what computes each.
const PANELS: [(&str, Panel); 7] = [
    ("traffic", query::traffic),
    ("models", query::models),
    ("costs", query::costs),
    ("failovers", query::failovers),
    ("learned", query::learned),
    ("savings", crate::observe::analytics::savings::savings),
    ("experiments", query::experiments),
];

/// Most requests `requests?limit=` lists.
const MAX_LIMIT: usize = 1000;

pub async fn panel(
    Extension(state): Extension<Arc<AppState>>,
    Extension(key): Extension<Key>,
    Path(panel): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Rejection> {
    let filter = Filter::parse(&q, crate::clock::unix_millis())
        .map_err(|(param, m)| GatewayError::invalid(m, &param))?
        .within(key.scope());
    let run: Box<dyn FnOnce(&Index) -> Value + Send> = match panel.as_str() {
        "filters" => Box::new(move |ix| query::filters(ix, &filter)),
        "requests" => {
            let limit = match q.get("limit") {
                None => 50,
                Some(v) => v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        GatewayError::invalid(
                            format!("`limit` must be a number from 1 to {MAX_LIMIT}, got {v:?}"),
                            "limit",
                        )
                    })?,
            };
            Box::new(move |ix| query::recent(ix, &filter, limit))
        }
        name => {
            let Some((_, f)) = PANELS.iter().find(|(p, _)| *p == name) else {
                return Err(GatewayError::new(
                    ErrorKind::NotFound,
                    format!(
                        "no analytics panel {name:?}; there are {}, filters, requests and requests/{{id}}",
                        PANELS.map(|(p, _)| p).join(", ")
                    ),
                )
                .into());
            };
            let f = *f;
            Box::new(move |ix| f(ix, &filter))
        }
    };
    Ok(Json(read(&state, run).await?))
}

/// `GET /v1/analytics/requests/{id}`: one request as logged, with its feedback; a request
/// outside the key's scope is answered like an unknown id.
pub async fn request(
    Extension(state): Extension<Arc<AppState>>,
    Extension(key): Extension<Key>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Rejection> {
    let scope = key.scope();
    let visible =
        move |record: &LogRecord| scope.sees(record.team.as_deref(), record.key.as_deref());
    if let Some(pg) = state.store.as_ref().and_then(|s| s.pg.clone()) {
        let record = pg
            .request_record(&id)
            .await
            .map_err(|e| GatewayError::new(ErrorKind::Internal, format!("reading the store: {e}")))?
            .filter(&visible);
        let key = id.clone();
        let feedback = read(
            &state,
            Box::new(move |ix| analytics::feedback_json(ix, &key)),
        )
        .await?;
        return record
            .map(|r| Json(serde_json::json!({"record": r, "feedback": feedback})))
            .ok_or_else(|| not_logged().into());
    }
    let found = read(&state, Box::new(move |ix| analytics::request(ix, &id)))
        .await?
        .map_err(|e| GatewayError::new(ErrorKind::Internal, format!("reading the log: {e}")))?
        .filter(|(record, _)| visible(record));
    found
        .map(|(record, feedback)| Json(serde_json::json!({"record": record, "feedback": feedback})))
        .ok_or_else(|| not_logged().into())
}

fn not_logged() -> GatewayError {
    GatewayError::new(
        ErrorKind::NotFound,
        "no logged request with this id (unknown, not yet written, or older than the rows analytics keeps)",
    )
}

/// Runs `f` on the caught-up table (files, or the shared store), off the async runtime.
pub(super) async fn read<T: Send + 'static>(
    state: &AppState,
    f: Box<dyn FnOnce(&Index) -> T + Send>,
) -> Result<T, GatewayError> {
    let a = state.analytics.clone();
    if let Some(pg) = state.store.as_ref().and_then(|s| s.pg.clone()) {
        let lines = a.fetch_store(&pg).await.map_err(|e| {
            GatewayError::new(ErrorKind::Internal, format!("reading the store: {e}"))
        })?;
        return tokio::task::spawn_blocking(move || a.read_with(lines, f))
            .await
            .map_err(|e| GatewayError::new(ErrorKind::Internal, e.to_string()));
    }
    if !state.config.logging.enabled {
        return Err(GatewayError::invalid(
            "analytics reads the request log; enable [logging]",
            "logging",
        ));
    }
    // What requests already answered have queued is on disk before the table catches up.
    state.logs.flush().await;
    tokio::task::spawn_blocking(move || a.read(f))
        .await
        .map_err(|e| GatewayError::new(ErrorKind::Internal, e.to_string()))?
        .map_err(|e| GatewayError::new(ErrorKind::Internal, format!("reading the log: {e}")))
}
