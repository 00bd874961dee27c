//! `POST /v1/embeddings`: routed like chat — a model, a router (CEL routes, sticky variants)
//! or an explicit `models` list, with failover before the answer — to the OpenAI-compatible
//! and mock models of the chain (Anthropic has no embeddings API; `auto` chooses chat models
//! and is refused). Usage and cost are logged like any request.

use super::admission::Ticket;
use super::auth::Key;
use super::body::admit_and_read;
use super::policy::{self, Reserve};
use super::respond::{failed_response, set_common_headers, Begun};
use super::state::AppState;
use crate::config::ProviderKind;
use crate::error::GatewayError;
use crate::format::request::{ChatRequest, SWITCHYARD_FIELDS};
use crate::format::{embeddings, ClientFormat};
use crate::observe::record::{finish, overhead_ms, Ending};
use crate::route::RoutePlan;
use crate::store::limits::Reservation;
use crate::upstream::failover::{self, run_chain, within};
use crate::upstream::Call;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{json, Value};
use std::sync::Arc;

pub async fn embeddings(
    Extension(state): Extension<Arc<AppState>>,
    Extension(key): Extension<Key>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let format = ClientFormat::Embeddings;
    let begun = Begun::now();
    let (req, plan, _ticket, reservation) =
        match prepare(&state, &key, &headers, body, &begun.request_id).await {
            Ok(x) => x,
            Err(error) => return begun.refuse(&state, format, &key.caller(&state, None), error),
        };
    let ctx = begun.context(key.caller(&state, reservation), format, req, plan, None);
    let guards = state.guards();
    let body = Arc::new(ctx.req.body.clone());
    let failover::ChainResult { attempts, result } = run_chain(
        &state.providers,
        &ctx.plan,
        &guards,
        |provider, model, limits| {
            let call = Call {
                model: model.clone(),
                body: body.clone(),
                stream: false,
                max_body_bytes: guards.max_upstream_body_bytes,
                native: None,
            };
            within(limits, &ctx.plan, &guards, provider.embed(call))
        },
    )
    .await;
    let (model, mut answer) = match result {
        Ok(x) => x,
        Err(e) => return failed_response(&state, &ctx, &attempts, &e),
    };
    let tokens = answer["usage"]["prompt_tokens"]
        .as_u64()
        .unwrap_or(ctx.req.prompt_tokens);
    let overhead = overhead_ms(ctx.started, &attempts);
    let meta = finish(
        &state.sinks(),
        &ctx,
        Ending {
            status: 200,
            model: Some(&model),
            attempts: &attempts,
            prompt_tokens: tokens,
            completion_tokens: 0,
            completion_text: None,
            completion_bytes: 0,
            error: None,
            stream_interrupted: false,
            rescue: None,
        },
    );
    answer["model"] = json!(model.id);
    answer["metadata"] = meta;
    let mut resp = (StatusCode::OK, axum::Json(answer)).into_response();
    set_common_headers(&mut resp, &ctx, &model, overhead);
    resp
}

/// Admits, reads, validates and plans an embeddings request; the chain keeps only models
/// whose provider has embeddings.
async fn prepare(
    state: &AppState,
    key: &Key,
    headers: &HeaderMap,
    body: Body,
    request_id: &str,
) -> Result<(ChatRequest, RoutePlan, Ticket, Option<Reservation>), GatewayError> {
    let (value, ticket) = admit_and_read(state, key, headers, body).await?;
    let Value::Object(body) = value else {
        return Err(GatewayError::invalid(
            "the request body must be a JSON object",
            "body",
        ));
    };
    let texts = embeddings::inputs(&body).map_err(|m| GatewayError::invalid(m, "input"))?;
    let model = body.get("model").and_then(Value::as_str).unwrap_or("");
    if model == "auto" || model.starts_with("auto:") {
        return Err(GatewayError::invalid(
            "learned routing (`auto`) chooses chat models; name an embedding model or a router",
            "model",
        ));
    }
    // Routing sees the request as chat does: model, models, metadata, user and the text.
    let mut routing = serde_json::Map::new();
    for k in SWITCHYARD_FIELDS.into_iter().chain(["user"]) {
        if let Some(v) = body.get(k) {
            routing.insert(k.into(), v.clone());
        }
    }
    routing.insert(
        "messages".into(),
        json!([{"role": "user", "content": texts.join("\n")}]),
    );
    let mut req = ChatRequest::from_openai(Value::Object(routing))?;
    policy::allow(key, &mut req)?;
    req.body = body;
    for k in SWITCHYARD_FIELDS {
        req.body.remove(k);
    }
    let mut plan = state.planner.plan(&req, request_id).await?;
    if plan.decision.learned.is_some() {
        return Err(GatewayError::invalid(
            "this route uses learned routing (`auto`), which chooses chat models; embeddings need a model route",
            "model",
        ));
    }
    let before: Vec<String> = plan.chain.iter().map(|m| m.id.clone()).collect();
    plan.chain.retain(|m| {
        state
            .config
            .providers
            .get(&m.provider)
            .is_some_and(|p| p.kind != ProviderKind::Anthropic)
    });
    if plan.chain.is_empty() {
        return Err(GatewayError::invalid(
            format!(
                "no model of the chain ({}) offers embeddings: Anthropic has no embeddings API",
                before.join(", ")
            ),
            "model",
        ));
    }
    let reservation = policy::limit(state, key, &req, &plan, Reserve::Embeddings).await?;
    Ok((req, plan, ticket, reservation))
}
