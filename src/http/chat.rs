//! The chat endpoints (`/v1/chat/completions`, `/v1/messages`, `/v1/responses`) and `/v1/route`: admit, read,
//! translate, plan, execute with failover, respond. Each handler is the request path in order.

use super::admission::Ticket;
use super::auth::Key;
use super::body::admit_and_read;
use super::policy::{self, Reserve};
use super::respond::{complete_response, failed_response, new_request_id, Begun, Rejection};
use super::state::AppState;
use super::stream::{stream_response, CommittedStream};
use crate::error::GatewayError;
use crate::format::request::ChatRequest;
use crate::format::responses::response::Echo;
use crate::format::{anthropic, responses, ClientFormat};
use crate::route::RoutePlan;
use crate::store::limits::Reservation;
use crate::upstream::failover::{Execution, Served};
use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::{Extension, Json};
use serde_json::json;
use std::sync::Arc;

pub async fn chat_completions(
    Extension(state): Extension<Arc<AppState>>,
    Extension(key): Extension<Key>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, ClientFormat::OpenAi, key, headers, body).await
}

pub async fn messages(
    Extension(state): Extension<Arc<AppState>>,
    Extension(key): Extension<Key>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, ClientFormat::Anthropic, key, headers, body).await
}

pub async fn responses(
    Extension(state): Extension<Arc<AppState>>,
    Extension(key): Extension<Key>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, ClientFormat::Responses, key, headers, body).await
}

async fn handle(
    state: Arc<AppState>,
    format: ClientFormat,
    key: Key,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let begun = Begun::now();
    let (req, plan, ticket, echo, reservation) = match prepare(
        &state,
        format,
        &key,
        &headers,
        body,
        &begun.request_id,
        Reserve::Chat,
    )
    .await
    {
        Ok(x) => x,
        Err(error) => return begun.refuse(&state, format, &key.caller(&state, None), error),
    };
    let ctx = begun.context(key.caller(&state, reservation), format, req, plan, echo);
    let guards = state.guards();
    let Execution { attempts, result } = crate::upstream::execute::execute(
        &state.providers,
        &ctx.plan,
        &ctx.req,
        ctx.echo.as_ref().map(|e| e.native.clone()),
        &guards,
    )
    .await;
    match result {
        Ok((model, Served::Complete(v))) => complete_response(&state, &ctx, &attempts, &model, v),
        Ok((
            model,
            Served::Stream {
                peeked,
                rest,
                attempt_started,
                deadline,
            },
        )) => stream_response(
            state.clone(),
            ctx,
            ticket,
            CommittedStream {
                model,
                attempts,
                peeked,
                rest,
                attempt_started,
                deadline,
            },
        ),
        Err(e) => failed_response(&state, &ctx, &attempts, &e),
    }
}

/// A request ready to execute: canonical request, plan, admission ticket, for the
/// Responses API what its answer echoes, and what the key's limits reserved for it.
type Prepared = (
    ChatRequest,
    RoutePlan,
    Ticket,
    Option<Echo>,
    Option<Reservation>,
);

/// Admits, reads, parses and plans a request.
async fn prepare(
    state: &AppState,
    format: ClientFormat,
    key: &Key,
    headers: &HeaderMap,
    body: Body,
    request_id: &str,
    reserve: Reserve,
) -> Result<Prepared, GatewayError> {
    let (value, ticket) = admit_and_read(state, key, headers, body).await?;
    let (value, echo) = match format {
        ClientFormat::OpenAi | ClientFormat::Embeddings => (value, None),
        ClientFormat::Anthropic => (anthropic::request::to_openai(value)?, None),
        ClientFormat::Responses => {
            let echo = Echo::of(&value);
            let max = state.config.server.max_media_bytes;
            (responses::request::to_openai(value, max)?, Some(echo))
        }
    };
    let mut req = ChatRequest::from_openai(value)?;
    req.media.check_size(state.config.server.max_media_bytes)?;
    policy::allow(key, &mut req)?;
    req.pacing = policy::pacing(state, key).await;
    let plan = state.planner.plan(&req, request_id).await?;
    let reservation = policy::limit(state, key, &req, &plan, reserve).await?;
    Ok((req, plan, ticket, echo, reservation))
}

/// `POST /v1/route`: the routing decision for a chat body; nothing is sent upstream.
pub async fn route(
    Extension(state): Extension<Arc<AppState>>,
    Extension(key): Extension<Key>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, Rejection> {
    let request_id = new_request_id();
    let (req, plan, _ticket, _, _) = prepare(
        &state,
        ClientFormat::OpenAi,
        &key,
        &headers,
        body,
        &request_id,
        Reserve::Nothing,
    )
    .await
    .map_err(|error| Rejection {
        format: ClientFormat::OpenAi,
        request_id: request_id.clone(),
        error,
    })?;
    Ok(Json(json!({
        "object": "route", "request_id": request_id, "model": plan.chain.first().map(|m| m.id.clone()),
        "chain": plan.chain.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
        "prompt_tokens": req.prompt_tokens, "routing": plan.decision,
    })))
}
