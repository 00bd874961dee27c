//! The HTTP face, in the order a request meets it: the accept loop ([`accept`]), the auth layer
//! ([`auth`]), admission ([`admission`]: in-flight and per-key limits, body budget), body
//! reading ([`body`]), the handlers ([`chat`], [`embeddings`], [`feedback`], [`models`],
//! [`analytics`], [`reports`], [`status`], [`dashboard`], [`fallback`]) and how outcomes become
//! responses ([`respond`], [`stream`], [`rescue`]). [`state`] holds what a request reads.
//! Imports everything below it; only `app` imports it.

pub mod accept;
pub mod admission;
pub mod analytics;
pub mod auth;
pub mod body;
pub mod chat;
pub mod dashboard;
pub mod embeddings;
pub mod fallback;
pub mod feedback;
pub mod models;
pub mod policy;
pub mod reports;
pub mod rescue;
pub mod respond;
pub mod state;
pub mod status;
pub mod stream;

use axum::routing::{get, post};
use state::Reloadable;
use std::sync::Arc;

/// The axum router with every endpoint, behind the auth layer.
pub fn router(live: Arc<Reloadable>) -> axum::Router {
    axum::Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/chat/completions", post(chat::chat_completions))
        .route("/v1/messages", post(chat::messages))
        .route("/v1/responses", post(chat::responses))
        .route("/responses", post(chat::responses))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/embeddings", post(embeddings::embeddings))
        .route("/v1/models", get(models::list_models))
        .route("/v1/feedback", post(feedback::feedback))
        .route("/v1/route", post(chat::route))
        .route("/v1/report", get(reports::report))
        .route("/v1/spend", get(reports::spend))
        .route("/v1/analytics/{panel}", get(analytics::panel))
        .route("/v1/analytics/requests/{id}", get(analytics::request))
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/app.js", get(dashboard::script))
        .route("/dashboard/chart.umd.min.js", get(dashboard::chart_js))
        .route("/healthz", get(status::healthz))
        .route("/metrics", get(status::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            live.clone(),
            auth::layer,
        ))
        .fallback(fallback::not_found)
        .method_not_allowed_fallback(fallback::method_not_allowed)
        .with_state(live)
}
