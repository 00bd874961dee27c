//! What the client receives when a request ends without a stream: a whole answer or an error,
//! in the client's wire format, with Switchyard's metadata and headers. Errors become responses
//! here ([`Rejection`] lets handlers use `?`).

use super::state::AppState;
use crate::config::ModelConfig;
use crate::error::{ErrorKind, GatewayError};
use crate::format::request::ChatRequest;
use crate::format::responses::response::Echo;
use crate::format::ClientFormat;
use crate::format::{anthropic, responses};
use crate::observe::record::{finish, overhead_ms, rejected, Caller, Ending, RequestContext};
use crate::route::RoutePlan;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::time::Instant;
use switchyard_learn::prompt::estimate_tokens;
use switchyard_learn::schema::AttemptRecord;

/// A request refused before it reached an upstream, rendered in its endpoint's wire shape with
/// its request id. Handlers return `Result<_, Rejection>` and use `?`.
pub struct Rejection {
    pub format: ClientFormat,
    pub request_id: String,
    pub error: GatewayError,
}

impl Rejection {
    /// A rejection of an OpenAI-shaped endpoint with a fresh request id.
    pub fn openai(error: GatewayError) -> Rejection {
        Rejection {
            format: ClientFormat::OpenAi,
            request_id: new_request_id(),
            error,
        }
    }
}

impl From<GatewayError> for Rejection {
    fn from(error: GatewayError) -> Rejection {
        Rejection::openai(error)
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        error_response(self.format, &self.error, &self.request_id)
    }
}

/// A request as it arrives: its id and when it started.
pub struct Begun {
    pub request_id: String,
    pub started: Instant,
    pub started_unix_ms: u64,
}

impl Begun {
    pub fn now() -> Begun {
        Begun {
            request_id: new_request_id(),
            started: Instant::now(),
            started_unix_ms: crate::clock::unix_millis(),
        }
    }

    /// A request refused before any upstream was tried: logged (with the key that made it, so
    /// that its team sees it), and answered in its format.
    pub fn refuse(
        self,
        state: &AppState,
        format: ClientFormat,
        caller: &Caller,
        error: GatewayError,
    ) -> Response {
        rejected(
            &state.sinks(),
            &self.request_id,
            format,
            self.started,
            caller,
            &error,
        );
        error_response(format, &error, &self.request_id)
    }

    /// The context of a request that was planned.
    pub fn context(
        self,
        caller: Caller,
        format: ClientFormat,
        req: ChatRequest,
        plan: RoutePlan,
        echo: Option<Echo>,
    ) -> RequestContext {
        RequestContext {
            caller,
            request_id: self.request_id,
            format,
            started: self.started,
            started_unix_ms: self.started_unix_ms,
            req,
            plan,
            echo,
        }
    }
}

/// A new request id (32 hex digits).
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// An error in the client's format, with the request id header.
pub fn error_response(format: ClientFormat, err: &GatewayError, request_id: &str) -> Response {
    let body = match format {
        ClientFormat::OpenAi | ClientFormat::Responses | ClientFormat::Embeddings => {
            err.openai_body()
        }
        ClientFormat::Anthropic => err.anthropic_body(),
    };
    let mut resp = (err.status, axum::Json(body)).into_response();
    set_header(&mut resp, "x-switchyard-request-id", request_id);
    if let Some(secs) = err.retry_after {
        set_header(&mut resp, "retry-after", &secs.to_string());
    }
    // The body may be unread: the client must not send its next request on this connection.
    if matches!(
        err.kind,
        ErrorKind::BodyTooLarge | ErrorKind::RequestTimeout
    ) {
        set_header(&mut resp, "connection", "close");
    }
    resp
}

/// Logs a failed execution and returns its error response.
pub fn failed_response(
    state: &AppState,
    ctx: &RequestContext,
    attempts: &[AttemptRecord],
    err: &GatewayError,
) -> Response {
    let meta = finish(
        &state.sinks(),
        ctx,
        Ending {
            status: err.status.as_u16(),
            model: None,
            attempts,
            prompt_tokens: 0,
            completion_tokens: 0,
            completion_text: None,
            completion_bytes: 0,
            error: Some(&err.message),
            stream_interrupted: false,
            rescue: None,
        },
    );
    let err = err
        .clone()
        .with_details(json!({"attempts": attempts, "metadata": meta}));
    error_response(ctx.format, &err, &ctx.request_id)
}

pub(super) fn set_header(resp: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

pub(super) fn usage_of(v: &Value) -> Option<(u64, u64)> {
    let u = v.get("usage")?;
    Some((
        u.get("prompt_tokens")?.as_u64()?,
        u.get("completion_tokens")?.as_u64()?,
    ))
}

/// A whole answer, in the client's format, with `metadata`.
pub fn complete_response(
    state: &AppState,
    ctx: &RequestContext,
    attempts: &[AttemptRecord],
    model: &ModelConfig,
    mut completion: Value,
) -> Response {
    // An upstream serving the Responses API natively answered with a `response` object.
    let native = completion["object"] == "response";
    let text = if native {
        Some(responses::response::output_text(&completion))
    } else {
        completion["choices"][0]["message"]["content"]
            .as_str()
            .map(String::from)
    };
    let usage = if native {
        responses::response::usage_tokens(&completion)
    } else {
        usage_of(&completion)
    };
    let (prompt_tokens, completion_tokens) = usage.unwrap_or_else(|| {
        (
            ctx.req.prompt_tokens,
            text.as_deref().map(estimate_tokens).unwrap_or(0),
        )
    });
    let overhead = overhead_ms(ctx.started, attempts);
    let meta = finish(
        &state.sinks(),
        ctx,
        Ending {
            status: 200,
            model: Some(model),
            attempts,
            prompt_tokens,
            completion_tokens,
            completion_text: text.as_deref(),
            completion_bytes: text.as_deref().map_or(0, str::len),
            error: None,
            stream_interrupted: false,
            rescue: None,
        },
    );
    completion["model"] = Value::String(model.id.clone());
    if native {
        completion["metadata"] = meta;
        let mut resp = (StatusCode::OK, axum::Json(completion)).into_response();
        set_common_headers(&mut resp, ctx, model, overhead);
        return resp;
    }
    completion["id"] = Value::String(format!("chatcmpl-{}", ctx.request_id));
    let mut body = match ctx.format {
        ClientFormat::OpenAi | ClientFormat::Embeddings => completion,
        ClientFormat::Anthropic => anthropic::response::from_openai(&completion, &model.id),
        ClientFormat::Responses => responses::response::from_openai(
            &completion,
            &ctx.request_id,
            &ctx.echo.clone().unwrap_or_default(),
            (prompt_tokens, completion_tokens),
        ),
    };
    body["metadata"] = meta;
    let mut resp = (StatusCode::OK, axum::Json(body)).into_response();
    set_common_headers(&mut resp, ctx, model, overhead);
    resp
}

pub(super) fn set_common_headers(
    resp: &mut Response,
    ctx: &RequestContext,
    model: &ModelConfig,
    overhead: f64,
) {
    set_header(resp, "x-switchyard-request-id", &ctx.request_id);
    set_header(resp, "x-switchyard-model", &model.id);
    set_header(resp, "x-switchyard-overhead-ms", &format!("{overhead:.3}"));
}
