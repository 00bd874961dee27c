//! `POST /v1/feedback`: a score or thumbs for a served request, validated against the log (or,
//! with `[store]`, the shared store: any replica may have served it) and stored before the reply,
//! with the key that gave it. A virtual key gives feedback only on its own requests; sources the
//! server writes (`judge…`) are refused.

use super::auth::Key;
use super::body::read_json;
use super::respond::Rejection;
use super::state::AppState;
use crate::error::{ErrorKind, GatewayError};
use crate::observe::feedback::{Giver, Served};
use crate::store::scope::Scope;
use axum::body::Body;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use serde_json::{json, Value};
use std::sync::Arc;

pub async fn feedback(
    Extension(state): Extension<Arc<AppState>>,
    Extension(key): Extension<Key>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, Rejection> {
    let giver = Giver {
        key: key.id(&state),
        admin: key.scope() == Scope::All,
    };
    let mut ticket = state.admission.admit(None, &state.metrics)?;
    let value = read_json(&state, &headers, body, &mut ticket).await?;
    let pg = state.store.as_ref().and_then(|s| s.pg.clone());
    if let (Some(pg), Some(id)) = (&pg, value.get("request_id").and_then(Value::as_str)) {
        // Served by another replica: the shared store knows it.
        if !state.feedback.knows(id) {
            let served = pg.request_served(id).await.map_err(|e| {
                GatewayError::new(ErrorKind::Internal, format!("looking the request up: {e}"))
            })?;
            if let Some((models, key)) = served {
                state.feedback.remember(id, Served { models, key });
            }
        }
    }
    let f = state.feedback.validate(&value, &giver)?;
    let store = state.clone();
    let f2 = f.clone();
    let replaced = tokio::task::spawn_blocking(move || store.feedback.store(&f2))
        .await
        .map_err(|e| {
            GatewayError::new(ErrorKind::Internal, format!("feedback writer failed: {e}"))
        })??;
    if let Some(pg) = pg {
        pg.upsert_feedback(&f.row()).await.map_err(|e| {
            GatewayError::new(ErrorKind::Internal, format!("storing feedback: {e}"))
        })?;
    }
    Ok(Json(json!({
        "object": "feedback", "request_id": f.request_id, "source": f.source, "score": f.score,
        "thumbs": f.thumbs, "model": f.model, "replaced": replaced,
    })))
}
