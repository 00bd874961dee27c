//! Authentication as one layer in front of every route except the open ones listed in
//! [`OPEN_ROUTES`] (and `/metrics` when `server.metrics_public`). When router keys are
//! configured a request must send one (`Authorization: Bearer <key>` or `x-api-key`); the
//! matched key's index travels on as a [`Key`] extension (per-key admission uses it), and the
//! state the request was checked against as an `Arc<AppState>` extension, so the whole request
//! sees one config even if a reload lands meanwhile. A refusal
//! is a 401 in the endpoint's wire shape, and a refused chat request is logged like any other.

use super::respond::{error_response, new_request_id};
use super::state::{AppState, Reloadable};
use crate::error::{ErrorKind, GatewayError};
use crate::format::ClientFormat;
use crate::observe::record::{rejected, Caller};
use crate::store::keys::VirtualKey;
use crate::store::limits::Reservation;
use crate::store::scope::Scope;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;
use std::time::Instant;

/// Routes that never need a key.
pub const OPEN_ROUTES: [&str; 4] = [
    "/healthz",
    "/dashboard",
    "/dashboard/app.js",
    "/dashboard/chart.umd.min.js",
];

/// The router key a request authenticated with (`None` when no keys are configured).
#[derive(Debug, Clone, Default)]
pub struct Key {
    /// The index of a router key of the config.
    pub index: Option<usize>,
    /// A virtual key of the shared store, with its policy.
    pub virtual_key: Option<Arc<VirtualKey>>,
}

impl Key {
    /// What this key may read.
    pub fn scope(&self) -> Scope {
        match &self.virtual_key {
            None => Scope::All,
            Some(v) => match &v.team {
                Some(t) => Scope::Team(t.clone()),
                None => Scope::Key(v.id.clone()),
            },
        }
    }

    /// Who a request is recorded as made by: the key's id, its team and what its limits
    /// reserved.
    pub fn caller(&self, state: &AppState, reservation: Option<Reservation>) -> Caller {
        Caller {
            key: self.id(state),
            team: self.virtual_key.as_ref().and_then(|v| v.team.clone()),
            reservation,
        }
    }

    /// The key's id when the request authenticated with one: the virtual key's id, or a
    /// router key's [`key_id`].
    pub fn id(&self, state: &AppState) -> Option<String> {
        if let Some(v) = &self.virtual_key {
            return Some(v.id.clone());
        }
        self.index
            .and_then(|i| state.config.server.api_keys.get(i))
            .map(|k| key_id(k))
    }
}

/// The client format of an endpoint, for errors in its wire shape.
pub fn format_of(path: &str) -> ClientFormat {
    if path == ClientFormat::Anthropic.endpoint() {
        ClientFormat::Anthropic
    } else if path == ClientFormat::Responses.endpoint() || path == "/responses" {
        ClientFormat::Responses
    } else if path == ClientFormat::Embeddings.endpoint() || path == "/embeddings" {
        ClientFormat::Embeddings
    } else {
        ClientFormat::OpenAi
    }
}

/// The auth layer.
pub async fn layer(
    State(live): State<Arc<Reloadable>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let state = live.get();
    let open =
        OPEN_ROUTES.contains(&path) || (path == "/metrics" && state.config.server.metrics_public);
    if open {
        request.extensions_mut().insert(state);
        return next.run(request).await;
    }
    match authorize(&state, request.headers()) {
        Ok(key) => {
            request.extensions_mut().insert(key);
            request.extensions_mut().insert(state);
            next.run(request).await
        }
        Err(e) => {
            let format = format_of(path);
            let request_id = new_request_id();
            if is_chat(path) {
                let nobody = Caller::default();
                rejected(
                    &state.sinks(),
                    &request_id,
                    format,
                    Instant::now(),
                    &nobody,
                    &e,
                );
            }
            error_response(format, &e, &request_id)
        }
    }
}

/// The endpoints whose refusals are logged as requests.
fn is_chat(path: &str) -> bool {
    path == ClientFormat::OpenAi.endpoint()
        || path == "/chat/completions"
        || path == ClientFormat::Anthropic.endpoint()
        || path == ClientFormat::Responses.endpoint()
        || path == "/responses"
        || path == ClientFormat::Embeddings.endpoint()
        || path == "/embeddings"
}

/// Checks `Authorization: Bearer <key>` or `x-api-key` when router keys are configured;
/// `Some(index of the key)` when one matched.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<Key, GatewayError> {
    let keys = &state.config.server.api_keys;
    let virtual_keys = state.store.as_ref().and_then(|s| s.keys.as_ref());
    if keys.is_empty() && virtual_keys.is_none() {
        return Ok(Key::default());
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let given = bearer.or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    let Some(k) = given.map(str::trim) else {
        return Err(GatewayError::new(
            ErrorKind::Unauthorized,
            "missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`",
        ));
    };
    if let Some(i) = keys
        .iter()
        .position(|key| constant_time_eq(key.as_bytes(), k.as_bytes()))
    {
        return Ok(Key {
            index: Some(i),
            virtual_key: None,
        });
    }
    let found = match virtual_keys.map(|v| v.find(k)) {
        None => None,
        Some(Ok(found)) => found,
        Some(Err(stale)) => {
            return Err(GatewayError::new(
                ErrorKind::Overloaded,
                format!(
                    "virtual keys cannot be checked: the shared store has not answered for {} s ([store] keys_max_staleness), so a revocation could be missed",
                    stale.seconds
                ),
            )
            .with_retry_after(1))
        }
    };
    match found {
        Some(v) => Ok(Key {
            index: None,
            virtual_key: Some(v),
        }),
        None => Err(GatewayError::new(
            ErrorKind::Unauthorized,
            "incorrect API key provided (or the key was revoked)",
        )),
    }
}

/// The name a router key goes by in logs and analytics: `key-` and the first 8 hex digits of
/// its SHA-256, so that the key itself (a secret) is never written anywhere.
pub fn key_id(secret: &str) -> String {
    format!("key-{}", &crate::store::keys::hash(secret)[..8])
}

/// Compares two secrets in time that depends on their lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
