//! Reading a request body: within `server.max_body_bytes`, the admission body budget,
//! `server.read_timeout` and `server.max_json_values`, then parsed as JSON. A shed request's
//! body is drained into nothing so its client gets the answer instead of a reset.

use super::admission::Ticket;
use super::state::AppState;
use crate::error::{ErrorKind, GatewayError};
use crate::format::request::json_values_exceed;
use axum::body::Body;
use axum::http::{header, HeaderMap};
use serde_json::Value;

/// Reads a JSON body within `server.max_body_bytes`.
pub async fn read_json(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    ticket: &mut Ticket,
) -> Result<Value, GatewayError> {
    let limit = state.config.server.max_body_bytes;
    let too_large = || {
        GatewayError::new(
            ErrorKind::BodyTooLarge,
            format!("the request body is larger than the limit of {limit} bytes (server.max_body_bytes)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    if let Err(e) = state
        .admission
        .admit_body(ticket, declared.unwrap_or(limit), &state.metrics)
    {
        discard(body, state).await;
        return Err(e);
    }
    let read = state.config.server.read_timeout;
    let bytes = tokio::time::timeout(read, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| {
            GatewayError::new(
                ErrorKind::RequestTimeout,
                format!(
                    "the request body did not arrive within {} ms (server.read_timeout)",
                    read.as_millis()
                ),
            )
        })?
        .map_err(|e| {
            if is_length_limit(&e) {
                too_large()
            } else {
                GatewayError::new(
                    ErrorKind::InvalidRequest,
                    format!("could not read the request body: {e}"),
                )
            }
        })?;
    let max_values = state.config.server.max_json_values;
    if json_values_exceed(&bytes, max_values) {
        return Err(GatewayError::new(
            ErrorKind::BodyTooLarge,
            format!("the request body holds more than {max_values} JSON values (server.max_json_values)"),
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        GatewayError::new(
            ErrorKind::InvalidJson,
            format!("We could not parse the JSON body of your request: {e}"),
        )
    })
}

/// Reads a shed request's body into nothing (within the body limit and read timeout), so the
/// client gets its 503/429 instead of a connection reset; it holds no memory.
pub async fn discard(body: Body, state: &AppState) {
    use http_body_util::BodyExt;
    let mut body = body;
    let (mut left, deadline) = (
        state.config.server.max_body_bytes,
        tokio::time::Instant::now() + state.config.server.read_timeout,
    );
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await {
        let n = frame.data_ref().map_or(0, |d| d.len());
        match left.checked_sub(n) {
            Some(l) => left = l,
            None => return,
        }
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Admits a request (in-flight and per-key bounds) and reads its JSON body within the limits;
/// a refused request's body is drained so the connection stays usable.
pub async fn admit_and_read(
    state: &AppState,
    key: &super::auth::Key,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Value, Ticket), GatewayError> {
    let mut ticket = match state.admission.admit(key.index, &state.metrics) {
        Ok(t) => t,
        Err(e) => {
            discard(body, state).await;
            return Err(e);
        }
    };
    let value = read_json(state, headers, body, &mut ticket).await?;
    Ok((value, ticket))
}
