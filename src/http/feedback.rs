//! `POST /v1/feedback`: a score or thumbs for a served request, validated against the log and
//! stored before the reply.

use super::body::read_json;
use super::respond::Rejection;
use super::state::AppState;
use crate::error::{ErrorKind, GatewayError};
use axum::body::Body;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use serde_json::{json, Value};
use std::sync::Arc;

pub async fn feedback(
    Extension(state): Extension<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, Rejection> {
    let mut ticket = state.admission.admit(None, &state.metrics)?;
    let value = read_json(&state, &headers, body, &mut ticket).await?;
    let f = state.feedback.validate(&value)?;
    let store = state.clone();
    let f2 = f.clone();
    let replaced = tokio::task::spawn_blocking(move || store.feedback.store(&f2))
        .await
        .map_err(|e| {
            GatewayError::new(ErrorKind::Internal, format!("feedback writer failed: {e}"))
        })??;
    Ok(Json(json!({
        "object": "feedback", "request_id": f.request_id, "source": f.source, "score": f.score,
        "thumbs": f.thumbs, "model": f.model, "replaced": replaced,
    })))
}
